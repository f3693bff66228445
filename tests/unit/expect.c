/*
 * expect.c - the python-written expectations of the unit tests (expect.h).
 */
#include "expect.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int
hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

uint8_t *
expect_unhex(const char *s, size_t *n)
{
    uint8_t *out = malloc(strlen(s) / 2 + 1);
    size_t k = 0;

    if (out == NULL)
        return NULL;
    while (*s != '\0') {
        if (*s == ' ') {
            s++;
            continue;
        }
        int hi = hex_digit(s[0]), lo = hi < 0 ? -1 : hex_digit(s[1]);
        if (lo < 0) {
            free(out);
            return NULL;
        }
        out[k++] = (uint8_t)(hi << 4 | lo);
        s += 2;
    }
    *n = k;
    return out;
}

/* Splits "kind arg hex" into row; returns -1 when a part is missing. */
static int
parse_row(char *line, struct expect_row *row)
{
    char *kind = strtok(line, " \n");
    char *arg = strtok(NULL, " \n");
    char *hex = strtok(NULL, " \n");

    if (kind == NULL || arg == NULL || hex == NULL)
        return -1;
    row->kind = strdup(kind);
    row->arg = strdup(arg);
    row->want = expect_unhex(hex, &row->n);
    return row->kind && row->arg && row->want ? 0 : -1;
}

struct expect_row *
expect_load(const char *path, size_t *n)
{
    FILE *f = fopen(path, "r");
    struct expect_row *rows = NULL;
    size_t cap = 0;
    char *line = NULL;
    size_t len = 0;

    *n = 0;
    if (f == NULL) {
        perror(path);
        return NULL;
    }
    while (getline(&line, &len, f) != -1) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            struct expect_row *r = realloc(rows, cap * sizeof *r);
            if (r == NULL)
                goto fail;
            rows = r;
        }
        memset(&rows[*n], 0, sizeof rows[*n]);
        (*n)++;
        if (parse_row(line, &rows[*n - 1]) == -1) {
            fprintf(stderr, "%s: bad line %zu\n", path, *n);
            goto fail;
        }
    }
    free(line);
    fclose(f);
    return rows;
fail:
    free(line);
    fclose(f);
    expect_free(rows, *n);
    *n = 0;
    return NULL;
}

void
expect_free(struct expect_row *rows, size_t n)
{
    for (size_t i = 0; i < n && rows != NULL; i++) {
        free(rows[i].kind);
        free(rows[i].arg);
        free(rows[i].want);
    }
    free(rows);
}
