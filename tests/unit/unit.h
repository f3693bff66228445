/*
 * unit.h - the smallest test harness that cannot lie: every check prints a
 * TAP line ("ok N - ..." or "not ok N - ..."), failures are counted, and
 * unit_done() turns the count into the exit status.  scripts/run-tests adds
 * the lines of every test binary and bats file into one total.
 */
#ifndef KVTAP_UNIT_H
#define KVTAP_UNIT_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int unit_n, unit_failed;

/* Records one check; returns cond so a test can stop on failure. */
static inline int
unit_check(int cond, const char *file, int line, const char *what)
{
    unit_n++;
    if (cond) {
        printf("ok %d - %s\n", unit_n, what);
    } else {
        unit_failed++;
        printf("not ok %d - %s\n#   at %s:%d\n", unit_n, what, file, line);
    }
    return cond;
}

#define CHECK(cond, what) unit_check(!!(cond), __FILE__, __LINE__, (what))

/* Equality of two unsigned values, printing both on failure. */
#define CHECK_U64(got, want, what)                                             \
    do {                                                                       \
        uint64_t g_ = (uint64_t)(got), w_ = (uint64_t)(want);                  \
        if (!CHECK(g_ == w_, (what)))                                          \
            printf("#   got %" PRIu64 ", want %" PRIu64 "\n", g_, w_);         \
    } while (0)

/* Equality of two NUL-terminated strings, printing both on failure. */
#define CHECK_STR(got, want, what)                                             \
    do {                                                                       \
        const char *g_ = (got), *w_ = (want);                                  \
        if (!CHECK(g_ != NULL && strcmp(g_, w_) == 0, (what)))                 \
            printf("#   got  %s\n#   want %s\n", g_ ? g_ : "(null)", w_);      \
    } while (0)

/*
 * The next of a deterministic stream of test inputs (Marsaglia's
 * xorshift64), so that a randomized test explores the same cases on every
 * run.  *state is the test's own, any value but 0.
 */
static inline uint64_t
unit_rand(uint64_t *state)
{
    uint64_t x = *state;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

static inline int
unit_done(void)
{
    printf("1..%d\n", unit_n);
    return unit_failed == 0 && unit_n > 0 ? 0 : 1;
}

#endif
