/*
 * table.h - kvstat's rows of results in one of three forms: NDJSON (one
 * object per row, the default; the number and string rules of
 * docs/ndjson.md#exact-rules-what-the-writer-does-and-the-tests-hold-it-to),
 * TSV with a header line (spreadsheets, gnuplot), or an aligned table for
 * people (-H).
 *
 * NDJSON and TSV rows are appended to the output buffer as they end; the
 * human table is held until table_finish, which knows every column width.
 */
#ifndef KVSTAT_TABLE_H
#define KVSTAT_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

enum table_format { TABLE_NDJSON, TABLE_TSV, TABLE_HUMAN };

struct table {
    enum table_format fmt;
    struct buf *out;         /* borrowed */
    const char *const *cols; /* borrowed, ncols names */
    size_t ncols;
    size_t col;     /* cells written in the current row */
    int header_out; /* TSV header written */
    /* Human form: every cell's text, and whether it is right-aligned. */
    struct buf cells;
    size_t *ends;
    unsigned char *right;
    size_t n_cells, cap_cells;
    int oom;
};

/* Sets up a table writing to out (both borrowed until table_finish). */
void table_init(struct table *tb, enum table_format fmt, struct buf *out,
                const char *const *cols, size_t ncols);

/* Cells of the current row, in column order. */
void table_str(struct table *tb, const char *s, size_t n);
void table_u64(struct table *tb, uint64_t v);
void table_i64(struct table *tb, int64_t v);
void table_double(struct table *tb, double v);
void table_null(struct table *tb);

/* Ends the row (it must have ncols cells). */
void table_end_row(struct table *tb);

/* Writes the human table.  Returns 0, or -1 when memory ran out. */
int table_finish(struct table *tb);

/* Frees what the table holds.  Accepts NULL. */
void table_free(struct table *tb);

#endif
