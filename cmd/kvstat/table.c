/*
 * table.c - see table.h.
 */
#include "table.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fmt.h"

void
table_init(struct table *tb, enum table_format fmt, struct buf *out,
           const char *const *cols, size_t ncols)
{
    memset(tb, 0, sizeof *tb);
    tb->fmt = fmt;
    tb->out = out;
    tb->cols = cols;
    tb->ncols = ncols;
}

/* Human form: keeps the text of one cell. */
static void
keep_cell(struct table *tb, const char *s, size_t n, int right)
{
    if (tb->n_cells == tb->cap_cells) {
        size_t nc = tb->cap_cells ? tb->cap_cells * 2 : 64;
        size_t *e = realloc(tb->ends, nc * sizeof *e);
        unsigned char *r;

        if (e == NULL) {
            tb->oom = 1;
            return;
        }
        tb->ends = e;
        r = realloc(tb->right, nc);
        if (r == NULL) {
            tb->oom = 1;
            return;
        }
        tb->right = r;
        tb->cap_cells = nc;
    }
    buf_put(&tb->cells, s, n);
    tb->ends[tb->n_cells] = tb->cells.len;
    tb->right[tb->n_cells++] = (unsigned char)right;
}

/* The separator and key before a cell; the TSV header before a row. */
static void
cell_start(struct table *tb)
{
    assert(tb->col < tb->ncols);
    if (tb->fmt == TABLE_TSV && !tb->header_out) {
        for (size_t i = 0; i < tb->ncols; i++) {
            buf_puts(tb->out, tb->cols[i]);
            buf_putc(tb->out, i + 1 < tb->ncols ? '\t' : '\n');
        }
        tb->header_out = 1;
    }
    if (tb->fmt == TABLE_NDJSON) {
        buf_putc(tb->out, tb->col == 0 ? '{' : ',');
        buf_put_json_str(tb->out, tb->cols[tb->col], strlen(tb->cols[tb->col]));
        buf_putc(tb->out, ':');
    } else if (tb->fmt == TABLE_TSV && tb->col > 0) {
        buf_putc(tb->out, '\t');
    }
    tb->col++;
}

/* A number or null: the same text in every form. */
static void
put_plain(struct table *tb, const char *s, size_t n)
{
    if (tb->fmt == TABLE_HUMAN) {
        tb->col++;
        keep_cell(tb, s, n, 1);
        return;
    }
    cell_start(tb);
    buf_put(tb->out, s, n);
}

void
table_str(struct table *tb, const char *s, size_t n)
{
    if (tb->fmt == TABLE_HUMAN) {
        tb->col++;
        keep_cell(tb, s, n, 0);
        return;
    }
    cell_start(tb);
    if (tb->fmt == TABLE_NDJSON) {
        buf_put_json_str(tb->out, s, n);
        return;
    }
    /* A tab or newline inside a TSV field would shift the columns. */
    for (size_t i = 0; i < n; i++)
        buf_putc(tb->out,
                 s[i] == '\t' || s[i] == '\n' || s[i] == '\r' ? ' ' : s[i]);
}

void
table_u64(struct table *tb, uint64_t v)
{
    char tmp[24];

    put_plain(tb, tmp, fmt_u64(tmp, v));
}

void
table_i64(struct table *tb, int64_t v)
{
    char tmp[24];

    put_plain(tb, tmp, fmt_i64(tmp, v));
}

/*
 * People read 0.8375 better than 0.8375000953674316: the human table
 * rounds to 4 significant digits, and to 3 decimals from 1000 up so that
 * timestamps keep their fraction.  The machine forms keep every digit.
 */
static size_t
human_double(char *dst, size_t cap, double v)
{
    int n;

    if (v == floor(v) && fabs(v) < 1e15)
        return fmt_double(dst, v);
    n = snprintf(dst, cap, fabs(v) >= 1000 ? "%.3f" : "%.4g", v);
    if (n < 0 || (size_t)n >= cap)
        return fmt_double(dst, v);
    if (fabs(v) >= 1000) {
        while (dst[n - 1] == '0')
            n--;
        if (dst[n - 1] == '.')
            n--;
    }
    return (size_t)n;
}

void
table_double(struct table *tb, double v)
{
    char tmp[FMT_DOUBLE_MAX + 320];

    if (tb->fmt == TABLE_HUMAN && isfinite(v))
        put_plain(tb, tmp, human_double(tmp, sizeof tmp, v));
    else
        put_plain(tb, tmp, fmt_double(tmp, v));
}

void
table_null(struct table *tb)
{
    if (tb->fmt == TABLE_NDJSON)
        put_plain(tb, "null", 4);
    else if (tb->fmt == TABLE_TSV)
        put_plain(tb, "", 0);
    else
        put_plain(tb, "-", 1);
}

void
table_end_row(struct table *tb)
{
    assert(tb->col == tb->ncols);
    if (tb->fmt == TABLE_NDJSON)
        buf_puts(tb->out, "}\n");
    else if (tb->fmt == TABLE_TSV)
        buf_putc(tb->out, '\n');
    tb->col = 0;
}

static void
pad(struct buf *b, size_t n)
{
    while (n-- > 0)
        buf_putc(b, ' ');
}

int
table_finish(struct table *tb)
{
    size_t *w;

    if (tb->fmt != TABLE_HUMAN)
        return 0;
    if (tb->oom || tb->cells.oom || (w = calloc(tb->ncols, sizeof *w)) == NULL)
        return -1;
    for (size_t c = 0; c < tb->ncols; c++)
        w[c] = strlen(tb->cols[c]);
    for (size_t i = 0; i < tb->n_cells; i++) {
        size_t len = tb->ends[i] - (i ? tb->ends[i - 1] : 0);

        if (len > w[i % tb->ncols])
            w[i % tb->ncols] = len;
    }
    /* The header aligns like the column under it. */
    for (size_t c = 0; c < tb->ncols; c++) {
        size_t len = strlen(tb->cols[c]);
        int right = tb->n_cells > c && tb->right[c];

        if (right)
            pad(tb->out, w[c] - len);
        buf_puts(tb->out, tb->cols[c]);
        if (c + 1 < tb->ncols)
            pad(tb->out, (right ? 0 : w[c] - len) + 2);
    }
    buf_putc(tb->out, '\n');
    for (size_t i = 0; i < tb->n_cells; i++) {
        size_t c = i % tb->ncols, start = i ? tb->ends[i - 1] : 0;
        size_t len = tb->ends[i] - start;

        if (tb->right[i])
            pad(tb->out, w[c] - len);
        buf_put(tb->out, tb->cells.p + start, len);
        if (c + 1 < tb->ncols)
            pad(tb->out, (tb->right[i] ? 0 : w[c] - len) + 2);
        else
            buf_putc(tb->out, '\n');
    }
    free(w);
    return 0;
}

void
table_free(struct table *tb)
{
    if (tb == NULL)
        return;
    buf_free(&tb->cells);
    free(tb->ends);
    free(tb->right);
    tb->ends = NULL;
    tb->right = NULL;
}
