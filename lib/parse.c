/*
 * parse.c - strict number and duration parsing for command-line flags.
 */
#include "parse.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int
parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long v;

    /* strtoull accepts a sign and leading blanks; a flag value may not. */
    if (s == NULL || !isdigit((unsigned char)s[0])) {
        errno = EINVAL;
        return -1;
    }
    errno = 0;
    v = strtoull(s, &end, 10);
    if (*end != '\0') {
        errno = EINVAL;
        return -1;
    }
    if (errno == ERANGE || v < min || v > max) {
        errno = ERANGE;
        return -1;
    }
    *out = v;
    return 0;
}

/* Parses a non-negative decimal number and returns where it stopped. */
static int
parse_number(const char *s, double *v, const char **rest)
{
    char *end;

    if (s == NULL || !(isdigit((unsigned char)s[0]) || s[0] == '.')) {
        errno = EINVAL;
        return -1;
    }
    errno = 0;
    *v = strtod(s, &end);
    /* strtod also reads "inf", "nan" and hex; only plain decimals pass. */
    for (const char *p = s; p < end; p++) {
        if (!isdigit((unsigned char)*p) && *p != '.') {
            errno = EINVAL;
            return -1;
        }
    }
    if (end == s || errno == ERANGE || !isfinite(*v)) {
        errno = EINVAL;
        return -1;
    }
    *rest = end;
    return 0;
}

int
parse_duration_ms(const char *s, uint64_t *out_ms)
{
    static const struct {
        const char *unit;
        double ms;
    } units[] = {
        {"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
    const char *rest;
    double v;

    if (parse_number(s, &v, &rest) == -1)
        return -1;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(rest, units[i].unit) != 0)
            continue;
        double ms = ceil(v * units[i].ms);
        if (ms > 1e15) {
            errno = ERANGE;
            return -1;
        }
        *out_ms = (uint64_t)ms;
        return 0;
    }
    errno = EINVAL;
    return -1;
}

int
parse_size(const char *s, uint64_t *out)
{
    static const struct {
        char suffix;
        unsigned shift;
    } units[] = {{'K', 10}, {'M', 20}, {'G', 30}};
    char digits[32];
    size_t n = s != NULL ? strlen(s) : 0;
    unsigned shift = 0;
    uint64_t v;

    if (n == 0) {
        errno = EINVAL;
        return -1;
    }
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (s[n - 1] == units[i].suffix) {
            shift = units[i].shift;
            n--;
            break;
        }
    }
    /* A copy without the suffix, so that parse_u64 checks the digits. */
    if (n >= sizeof digits) {
        errno = ERANGE;
        return -1;
    }
    memcpy(digits, s, n);
    digits[n] = '\0';
    if (parse_u64(digits, 0, UINT64_MAX >> shift, &v) == -1)
        return -1;
    *out = v << shift;
    return 0;
}

int
parse_rate(const char *s, double *per_sec)
{
    static const struct {
        const char *unit;
        double secs;
    } units[] = {{"", 1}, {"/s", 1}, {"/m", 60}, {"/h", 3600}};
    const char *rest;
    double v;

    if (parse_number(s, &v, &rest) == -1)
        return -1;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(rest, units[i].unit) == 0 && v > 0) {
            *per_sec = v / units[i].secs;
            return 0;
        }
    }
    errno = EINVAL;
    return -1;
}
