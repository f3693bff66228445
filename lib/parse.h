/*
 * parse.h - strict parsing of the numbers and durations that flags take.
 *
 * Every parser reads the whole string (end pointer checked), rejects empty
 * input, signs where none is allowed and values out of range, and returns
 * 0 or -1 (errno EINVAL or ERANGE).  The caller names the flag in its error.
 */
#ifndef KVTAP_PARSE_H
#define KVTAP_PARSE_H

#include <stdint.h>

/* A decimal integer in [min, max]. */
int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/*
 * A duration: "250ms", "5s", "2m", "1h", or a bare number of seconds;
 * decimals allowed ("1.5s", "0.2").  The result is in milliseconds, rounded
 * up so that a positive duration never becomes 0.
 */
int parse_duration_ms(const char *s, uint64_t *out_ms);

/*
 * A size in bytes: a decimal integer, optionally followed by K, M or G
 * (powers of 1024, as in "64K" or "1M").  Values over UINT64_MAX are
 * ERANGE.
 */
int parse_size(const char *s, uint64_t *out);

/* A rate "N", "N/s", "N/m" or "N/h" in events per second (N > 0). */
int parse_rate(const char *s, double *per_sec);

#endif
