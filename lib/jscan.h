/*
 * jscan.h - the JSON lexical layer shared by the NDJSON reader (ndjson_read.c)
 * and kvindex's request scanner: a cursor over a byte range, whitespace,
 * strings, numbers, strict integers, hash text, token id arrays, skipping
 * a value, and object/array iteration.  No DOM is built; callers read
 * values in place in one pass.
 *
 * Ownership: the scanner borrows the input bytes; strings without escapes
 * point into them, escaped strings are decoded into the scanner's arena
 * (both live as long as their owner keeps them).  Nothing else allocates.
 *
 * Errors: every function that fails returns -1, leaves s->i at the byte
 * that is wrong (s->n at the end of the input), and sets s->error.  When
 * s->err is not NULL it also gets a plain message ("unterminated string");
 * a caller with its own wording leaves err NULL and words s->error itself.
 * Nothing is read outside [s->s, s->s + s->n).
 */
#ifndef KVTAP_JSCAN_H
#define KVTAP_JSCAN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "event.h"

/* Nesting deeper than this is refused by jscan_skip (no deep recursion). */
#define JSCAN_MAX_DEPTH 64

enum jscan_error {
    JSCAN_E_NONE,
    JSCAN_E_EXPECT,       /* a required byte (s->want) is missing */
    JSCAN_E_NOT_STRING,   /* a string was required */
    JSCAN_E_CONTROL,      /* a raw control byte inside a string */
    JSCAN_E_UNTERMINATED, /* a string runs to the end of the input */
    JSCAN_E_UESCAPE,      /* \u not followed by four hex digits */
    JSCAN_E_ESCAPE,       /* an unknown escape */
    JSCAN_E_UTF8,         /* a skipped string that is not valid UTF-8 */
    JSCAN_E_NOMEM,        /* the arena is out of memory */
    JSCAN_E_NUMBER,       /* a number against RFC 8259's grammar */
    JSCAN_E_LITERAL,      /* a misspelled true, false or null */
    JSCAN_E_END,          /* the input ends where a value should be */
    JSCAN_E_DEPTH,        /* values nest deeper than JSCAN_MAX_DEPTH */
    JSCAN_E_OBJECT_SEP,   /* neither ',' nor '}' after a member */
    JSCAN_E_ARRAY_SEP,    /* neither ',' nor ']' after an element */
    JSCAN_E_NOT_UINT,     /* a non-negative integer was required */
    JSCAN_E_RANGE,        /* an integer beyond the caller's bounds */
    JSCAN_E_NOT_INT,      /* a fraction, exponent or leading zero */
    JSCAN_E_HASH_RANGE,   /* hex hash text longer than 64 bits */
    JSCAN_E_HASH_HEX,     /* hex hash text with a non-hex digit */
    JSCAN_E_HASH_TEXT,    /* hash text neither decimal nor 0x-hex */
    JSCAN_E_TOKEN,        /* a token id with a leading zero or > 2^32-1 */
    JSCAN_E_NOT_BOOL,     /* true or false was required */
};

struct jscan {
    const char *s; /* the input, borrowed */
    size_t n;
    size_t i;            /* cursor */
    struct arena *arena; /* decoded strings; NULL keeps them escaped */
    char *err;           /* may be NULL */
    size_t errlen;
    enum jscan_error error; /* why the last call failed */
    char want;              /* the byte JSCAN_E_EXPECT wanted */
};

/*
 * A number's text s[start, end).  Without an exponent, its digits read as
 * one integer, the point left out, are mag (unless ovf), of which the last
 * frac are after the point: when is_int, mag is its magnitude.
 */
struct jscan_num {
    size_t start, end;
    int is_int; /* no fraction, no exponent */
    int neg;
    int ovf;      /* the digits do not fit in 64 bits */
    int frac;     /* digits after the point; -1 with an exponent */
    uint64_t mag; /* the digits, the point left out */
};

void jscan_init(struct jscan *s, const char *p, size_t n, struct arena *a,
                char *err, size_t errlen);

/*
 * Skips blanks.  Inline because both readers call it between every two
 * tokens; compact input costs one test.
 */
static inline void
jscan_ws(struct jscan *s)
{
    if (s->i < s->n && (unsigned char)s->s[s->i] > ' ')
        return;
    while (s->i < s->n) {
        char c = s->s[s->i];
        if (c != ' ' && c != '\t' && c != '\r' && c != '\n')
            break;
        s->i++;
    }
}

/* Skips blanks; returns the next byte or -1 at the end. */
static inline int
jscan_peek(struct jscan *s)
{
    jscan_ws(s);
    return s->i < s->n ? (unsigned char)s->s[s->i] : -1;
}

/* The value of hex digit c, or -1. */
int jscan_hex_digit(int c);

/* Consumes byte c (after blanks), or fails with JSCAN_E_EXPECT. */
int jscan_expect(struct jscan *s, char c);

/* true or false (after blanks) into *out (1 or 0); 0, or -1. */
int jscan_bool(struct jscan *s, int *out);

/*
 * Consumes null if it is next (after blanks); returns 1 if it did, else 0.
 * Inline because the reader asks it before every engine field's value.
 */
static inline int
jscan_null(struct jscan *s)
{
    jscan_ws(s);
    if (s->n - s->i >= 4 && memcmp(s->s + s->i, "null", 4) == 0) {
        s->i += 4;
        return 1;
    }
    return 0;
}

/*
 * A string (after blanks).  *out borrows the input when the string has no
 * escapes or the scanner has no arena, and is decoded into the arena
 * otherwise: \uXXXX as UTF-8, surrogate pairs joined, a lone surrogate as
 * U+FFFD (JSON allows it, UTF-8 cannot hold it).
 */
int jscan_string(struct jscan *s, struct kv_str *out);

/* A number per RFC 8259 at the cursor (no blanks skipped). */
int jscan_number(struct jscan *s, struct jscan_num *num);

/*
 * A number jscan_number() read, as the double strtod gives.  Returns 0, or
 * -1 (JSCAN_E_NOMEM) when a very long text finds no arena memory for its
 * terminated copy.
 */
int jscan_num_double(struct jscan *s, const struct jscan_num *num, double *out);

/*
 * A non-negative integer up to max: digits only, no leading zero, no
 * fraction or exponent (JSCAN_E_NOT_UINT, JSCAN_E_RANGE, JSCAN_E_NOT_INT).
 */
int jscan_u64(struct jscan *s, uint64_t max, uint64_t *out);

/* A signed 64-bit integer under jscan_u64's rules. */
int jscan_i64(struct jscan *s, int64_t *out);

/*
 * Hash text: a decimal u64 or "0x"-prefixed hex of at most 16 digits.
 * Returns 0, or -1 with *why set (JSCAN_E_HASH_*).
 */
int jscan_hash_text(const char *p, size_t n, uint64_t *out,
                    enum jscan_error *why);

/*
 * At a '"': the common hash form, a quoted decimal of 1 to 20 digits that
 * fits in 64 bits, read in three words without the string scanner.
 * Returns 1 with the cursor after the closing quote, or 0 with the cursor
 * where it was for anything else (hex, an escape, too close to the end of
 * the text, a bad hash), which the general path then reads or rejects.
 */
int jscan_hash_digits(struct jscan *s, uint64_t *out);

/*
 * A 64-bit hash the way ndjson.md accepts it: a decimal string, a
 * "0x"-prefixed hex string, or a JSON integer (negative values as their
 * two's-complement bit pattern).
 */
int jscan_hash(struct jscan *s, uint64_t *out);

/*
 * Reads token ids (0..2^32-1, no leading zero, no fraction) of an array
 * into dst[0..room), room > 0, 8 digits at a time.  Call with first = 1
 * right after '[', then with first = 0 while it returns 0.  Returns 1 when
 * the closing ']' was consumed, 0 when dst is full and more ids follow,
 * -1 on an error (s->i at the bad token or separator).  *got is the number
 * of ids stored, also on an error.
 */
int jscan_tokens(struct jscan *s, int first, uint32_t *dst, size_t room,
                 size_t *got);

/*
 * jscan_tokens reads ids with AVX-512 (VBMI2) where the CPU has it, else
 * with SSE2.  With portable = 1 it keeps to SSE2 until called again with
 * 0, so tests and benchmarks can check and time both on one machine; not
 * to be called while another thread reads tokens.  Returns the name of
 * the instruction set jscan_tokens now uses ("avx512vbmi2", "sse2", or
 * "swar" where neither is compiled in).  Static storage.
 */
const char *jscan_tokens_simd(int portable);

/*
 * Iterates an object: call with first = 1 after '{' was consumed.  Returns
 * 1 with the member's key in *key (and the ':' consumed), 0 at '}', -1 on
 * a syntax error.
 */
int jscan_member(struct jscan *s, int first, struct kv_str *key);

/*
 * Iterates an array: call with first = 1 after '[' was consumed.  Returns
 * 1 when an element follows, 0 at ']', -1 on a syntax error.
 */
int jscan_element(struct jscan *s, int first);

/*
 * Validates and skips one value; *raw (may be NULL) gets its text.  The
 * text is checked as strictly as a decoder would check it (every escape,
 * and UTF-8 in strings), so a caller can copy it into its own output as
 * valid JSON without decoding it.  Nesting is tracked without recursion.
 */
int jscan_skip(struct jscan *s, struct kv_str *raw);

/*
 * Finds the first top-level member called name in the object text p[0..n)
 * and returns its raw value text in *raw (borrowed from p).  Returns 1
 * when found (the text after it is not checked), 0 when absent, -1 when
 * the text is not a valid JSON object up to the member.  Escaped keys are
 * compared as they are written.
 */
int jscan_find(const char *p, size_t n, const char *name, struct kv_str *raw);

#endif
