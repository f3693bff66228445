/*
 * json.h - a small validating JSON scanner for kvindex requests and replies.
 *
 * Requests are one JSON object per line; most are tiny, but match carries
 * thousands of tokens and sits on the hot path, so it is read in one pass
 * without building a DOM.  Strings without escapes point into the input;
 * escaped ones are decoded into a caller arena.
 */
#ifndef KVINDEX_JSON_H
#define KVINDEX_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "event.h"

struct jscan {
    const char *p;
    const char *end;
    struct arena *arena; /* for decoded strings; may be NULL (then -1) */
    char *err;
    size_t errlen;
};

void jscan_init(struct jscan *s, const char *p, size_t n, struct arena *a,
                char *err, size_t errlen);

/* Skips blanks; returns the next byte or -1 at the end. */
int jscan_peek(struct jscan *s);

/* Consumes byte c (after blanks) or fails with an error. */
int jscan_expect(struct jscan *s, char c);

/*
 * Iterates an object: call with first = 1 after '{' was consumed.  Returns 1
 * with the member's key in *key (and the ':' consumed), 0 at '}', -1 on a
 * syntax error.
 */
int jscan_member(struct jscan *s, int first, struct kv_str *key);

/*
 * Iterates an array: call with first = 1 after '[' was consumed.  Returns 1
 * when an element follows, 0 at ']', -1 on a syntax error.
 */
int jscan_element(struct jscan *s, int first);

/* Validates and skips one value; *raw (may be NULL) gets its text. */
int jscan_skip(struct jscan *s, struct kv_str *raw);

/* A string (decoded).  Returns 0, or -1 when the value is not a string. */
int jscan_string(struct jscan *s, struct kv_str *out);

/* Consumes null if it is next; returns 1 if it did, else 0. */
int jscan_null(struct jscan *s);

/* A non-negative JSON integer up to max. */
int jscan_u64(struct jscan *s, uint64_t max, uint64_t *out);

/* A signed 64-bit JSON integer. */
int jscan_i64(struct jscan *s, int64_t *out);

/*
 * A 64-bit hash the way ndjson.md accepts it: a decimal string, a
 * "0x"-prefixed hex string, or a JSON integer (negative values as their
 * two's-complement bit pattern).
 */
int jscan_hash(struct jscan *s, uint64_t *out);

/*
 * Finds the first top-level member called name in the object text p[0..n)
 * and returns its raw value text in *raw.  Returns 1 when found (the text
 * after it is not checked), 0 when absent, -1 when the text is not a valid
 * JSON object up to the member.
 */
int json_find_member(const char *p, size_t n, const char *name,
                     struct kv_str *raw);

#endif
