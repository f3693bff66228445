/*
 * expect.h - expected bytes written by python msgpack, for the unit tests.
 *
 * tests/peer/pack_expect.py writes tests/data/pack_expect.txt: lines
 * "kind argument hex" ('#' lines are comments).  The tests compare what
 * kvtap writes with the hex, so no test computes an expected encoding.
 */
#ifndef KVTAP_TEST_EXPECT_H
#define KVTAP_TEST_EXPECT_H

#include <stddef.h>
#include <stdint.h>

#define EXPECT_PACK "tests/data/pack_expect.txt"

struct expect_row {
    char *kind;
    char *arg;
    uint8_t *want; /* the bytes of the hex */
    size_t n;
};

/*
 * Reads every row of path.  Returns the rows (caller frees them with
 * expect_free) and their count in *n, or NULL when the file cannot be
 * read or a line is malformed (the reason on stderr).
 */
struct expect_row *expect_load(const char *path, size_t *n);

void expect_free(struct expect_row *rows, size_t n);

/*
 * Decodes the hex text s (blanks ignored) into a malloc'd buffer (caller
 * frees); NULL on a bad digit.
 */
uint8_t *expect_unhex(const char *s, size_t *n);

#endif
