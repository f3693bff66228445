/*
 * wiretext.c - the wire tests' msgpack notation and batch rendering (see
 * wiretext.h).
 */
#include "wiretext.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pack.h"

void
wiretext_put(struct wiretext_bytes *b, const void *p, size_t n)
{
    if (b->n + n > sizeof b->p) {
        fprintf(stderr, "test payload too large\n");
        exit(2);
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

static int
hexval(int c)
{
    return isdigit(c) ? c - '0' : tolower(c) - 'a' + 10;
}

static const char *
skip_ws(const char *s)
{
    while (*s == ' ' || *s == ',' || *s == ':' || *s == '\n')
        s++;
    return s;
}

/* Compiles one value of the notation at s into pk; returns the rest. */
static const char *
mp_value(const char *s, struct pack *pk)
{
    s = skip_ws(s);
    if (*s == '[' || *s == '{') {
        char close = *s == '[' ? ']' : '}';
        struct buf body = {0};
        struct pack sub;
        size_t n = 0;
        pack_init(&sub, &body);
        s = skip_ws(s + 1);
        while (*s != close) {
            s = skip_ws(mp_value(s, &sub));
            n++;
        }
        if (close == ']')
            pack_array(pk, n);
        else
            pack_map(pk, n / 2);
        buf_put(pk->out, body.p, body.len);
        pack_free(&sub);
        buf_free(&body);
        return s + 1;
    }
    if (*s == '"' || ((*s == 'h' || *s == 'x') && s[1] == '"')) {
        char kind = *s == '"' ? 's' : *s++;
        const char *e = strchr(s + 1, '"');
        if (kind == 's') {
            pack_str(pk, s + 1, (size_t)(e - s - 1));
            return e + 1;
        }
        uint8_t raw[4096];
        size_t n = 0;
        for (const char *q = s + 1; q < e; q++) {
            if (*q == ' ')
                continue;
            raw[n++] = (uint8_t)(hexval(q[0]) << 4 | hexval(q[1]));
            q++;
        }
        if (kind == 'h')
            pack_bin(pk, raw, n);
        else
            buf_put(pk->out, raw, n);
        return e + 1;
    }
    if (strncmp(s, "nil", 3) == 0) {
        pack_nil(pk);
        return s + 3;
    }
    if (strncmp(s, "true", 4) == 0) {
        pack_bool(pk, 1);
        return s + 4;
    }
    if (strncmp(s, "false", 5) == 0) {
        pack_bool(pk, 0);
        return s + 5;
    }
    char *end;
    size_t len = strspn(s, "-+0123456789.e");
    if (memchr(s, '.', len) != NULL) {
        pack_f64(pk, strtod(s, &end));
        return end;
    }
    if (*s == '-') {
        pack_int(pk, strtoll(s, &end, 10));
        return end;
    }
    if (isdigit((unsigned char)*s)) {
        pack_uint(pk, strtoull(s, &end, 10));
        return end;
    }
    fprintf(stderr, "bad notation at: %s\n", s);
    exit(2);
}

void
wiretext_parse(const char *s, struct wiretext_bytes *b)
{
    struct buf out = {0};
    struct pack pk;

    pack_init(&pk, &out);
    s = skip_ws(s);
    while (*s)
        s = skip_ws(mp_value(s, &pk));
    if (pack_error(&pk) != NULL || out.len > sizeof b->p) {
        fprintf(stderr, "test payload not compiled: %s\n",
                pack_error(&pk) ? pack_error(&pk) : "too large");
        exit(2);
    }
    if (out.len > 0)
        memcpy(b->p, out.p, out.len);
    b->n = out.len;
    pack_free(&pk);
    buf_free(&out);
}

/* ---- rendering a decoded batch -------------------------------------- */

static void
dump_hash(struct buf *o, const struct kv_hash *h)
{
    buf_put_u64(o, h->v);
    if (h->digest != NULL) {
        buf_puts(o, "/");
        buf_put_hex(o, h->digest, h->digest_len);
    }
}

static void
dump_event(struct buf *o, const struct kv_event *ev)
{
    if (ev->type == KV_DECODE_ERROR) {
        buf_puts(o, "ERR ");
        buf_put(o, ev->error.p, ev->error.n);
        return;
    }
    if (ev->type == KV_SKIPPED) {
        buf_puts(o, "SKIP ");
        buf_put(o, ev->tag.p, ev->tag.n);
        buf_puts(o, "*");
        buf_put_u64(o, ev->count);
        return;
    }
    buf_put_u64(o, ev->index);
    buf_puts(o, ":");
    buf_puts(o, kv_type_name(ev->type));
    for (int f = 0; f < KV_F_COUNT; f++) {
        if (!(ev->present & KV_BIT(f)))
            continue;
        buf_puts(o, " ");
        buf_puts(o, kv_fields[f].name);
        buf_puts(o, "=");
        if (ev->isnull & KV_BIT(f)) {
            buf_puts(o, "nil");
            continue;
        }
        switch (kv_fields[f].kind) {
        case KV_K_HASHES:
            buf_puts(o, "[");
            for (size_t i = 0; i < ev->n_hashes; i++) {
                if (i)
                    buf_puts(o, ",");
                dump_hash(o, &ev->hashes[i]);
            }
            buf_puts(o, "]");
            break;
        case KV_K_HASH:
            dump_hash(o, &ev->parent);
            break;
        case KV_K_TOKENS:
            buf_puts(o, ev->token_pairs   ? "pairs["
                        : ev->token_mixed ? "mixed["
                                          : "[");
            for (size_t i = 0; i < ev->n_tokens * (ev->token_pairs ? 2 : 1);
                 i++) {
                if (i)
                    buf_puts(o, ",");
                buf_put_u64(o, ev->tokens[i]);
            }
            buf_puts(o, "]");
            break;
        case KV_K_INT:
            buf_put_i64(o, ev->num[f]);
            break;
        case KV_K_STR:
            buf_puts(o, "'");
            buf_put(o, ev->str[f].p, ev->str[f].n);
            buf_puts(o, "'");
            break;
        case KV_K_HASHV:
            buf_put_u64(o, (uint64_t)ev->num[f]);
            break;
        case KV_K_RAW:
            buf_puts(o, "x");
            buf_put_hex(o, ev->raw[f].p, ev->raw[f].n);
            break;
        }
    }
    for (size_t i = 0; i < ev->n_unknown; i++) {
        const struct kv_unknown *u = &ev->unknown[i];
        buf_puts(o, " ");
        if (u->pos >= 0) {
            buf_puts(o, "@");
            buf_put_i64(o, u->pos);
        } else
            buf_put(o, u->key.p, u->key.n);
        buf_puts(o, "=x");
        buf_put_hex(o, u->val.p, u->val.n);
    }
}

void
wiretext_dump(struct buf *o, int rc, const struct kv_batch *b, const char *err)
{
    buf_clear(o);
    if (rc != 0) {
        buf_puts(o, "FAIL ");
        buf_puts(o, err);
    } else {
        buf_puts(o, "ts=");
        buf_put_double(o, b->ts);
        buf_puts(o, " rank=");
        if (b->has_rank)
            buf_put_i64(o, b->rank);
        else
            buf_puts(o, "nil");
        for (size_t i = 0; i < b->n_events; i++) {
            buf_puts(o, "; ");
            dump_event(o, &b->events[i]);
        }
    }
    buf_putc(o, '\0');
}
