/*
 * kvproto.c - parsing kvindex requests and writing their replies
 * (kvproto.h).
 *
 * Requests are read with the one-pass scanner of jscan.h rather than a DOM:
 * a match carries a few thousand token ids and its round trip is the number
 * routers care about.  Replies are written straight into the output buffer.
 */
#include "kvproto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fmt.h"
#include "jscan.h"
#include "kvreport.h"
#include "snapshot.h"
#include "vec.h"

/* The version is the Makefile's VERSION, and nowhere else. */
#ifndef KVTAP_VERSION
#error "KVTAP_VERSION comes from the Makefile (-DKVTAP_VERSION)"
#endif

static const char *const op_names[KVPROTO_OP_COUNT] = {
    "ping", "match", "keys", "lookup", "pods", "stats", "dump", "clear"};

const char *
kvproto_op_name(enum kvproto_op op)
{
    return (unsigned)op < KVPROTO_OP_COUNT ? op_names[op] : "?";
}

/* One parsed request; strings point into the line or the arena. */
struct req {
    struct kv_str id; /* raw JSON text; p == NULL: absent */
    int op;           /* enum kvproto_op, -1 when unknown */
    struct kv_str op_name;
    struct kv_str model;
    struct kv_str lora;
    int has_tokens, has_keys, has_hashes, has_pods, has_pod, has_rank;
    int has_prompts;
    size_t n_tokens, n_keys, n_hashes, n_pods, n_prompts;
    uint64_t *hashes; /* block_hashes (lookup) */
    struct kv_str pod;
    int64_t rank;
    uint64_t block_size;
    int ages; /* pods: add last_event_age_s */
};

void
kvproto_init(struct kvproto *p, struct kv_index *ix,
             const struct index_opts *io, kvproto_stats_fn fn, void *ctx)
{
    memset(p, 0, sizeof *p);
    p->ix = ix;
    p->io = io;
    p->stats_fn = fn;
    p->stats_ctx = ctx;
    p->may_change = 1; /* a server narrows it per client */
}

void
kvproto_free(struct kvproto *p)
{
    if (p == NULL)
        return;
    arena_free(&p->arena);
    index_match_result_free(&p->mr);
    buf_free(&p->media);
    buf_free(&p->heads);
    free(p->head_at);
    free(p->head_len);
    buf_free(&p->tail);
    free(p->tokens);
    free(p->prompt_ends);
    free(p->u64s);
    free(p->pods);
    memset(p, 0, sizeof *p);
}

/* A string or null (null leaves *out empty). */
static int
read_opt_string(struct jscan *s, struct kv_str *out)
{
    if (jscan_null(s)) {
        out->p = NULL;
        out->n = 0;
        return 0;
    }
    return jscan_string(s, out);
}

/*
 * An array of unsigned 32-bit integers into the reusable token vector from
 * offset base; *end gets the offset after the last one.  This is the bulk
 * of a match request, so the scanner reads it in runs straight into the
 * vector instead of one call per element.
 */
static int
read_token_array(struct kvproto *p, struct jscan *s, size_t base, size_t *end)
{
    size_t n = base, got;
    int rc, first = 1;

    if (jscan_expect(s, '[') < 0)
        return -1;
    do {
        if (n == p->tokens_cap && vec_grow((void **)&p->tokens, &p->tokens_cap,
                                           n + 1, sizeof *p->tokens) < 0) {
            snprintf(s->err, s->errlen, "out of memory");
            return -1;
        }
        rc = jscan_tokens(s, first, p->tokens + n, p->tokens_cap - n, &got);
        n += got;
        first = 0;
    } while (rc == 0);
    if (rc < 0)
        return -1;
    *end = n;
    return 0;
}

/* "tokens": one prompt. */
static int
read_tokens(struct kvproto *p, struct jscan *s, struct req *r)
{
    if (r->has_prompts) {
        snprintf(s->err, s->errlen, "give tokens or prompts, not both");
        return -1;
    }
    if (read_token_array(p, s, 0, &r->n_tokens) < 0)
        return -1;
    r->has_tokens = 1;
    return 0;
}

/*
 * "prompts": an array of token arrays (a batched match), one after another
 * in the token vector, each one's end in prompt_ends.  A prompt that does
 * not parse fails the whole request, named by its index.
 */
static int
read_prompts(struct kvproto *p, struct jscan *s, struct req *r)
{
    size_t end = 0;
    int first = 1, e;
    char why[160];

    if (r->has_tokens) {
        snprintf(s->err, s->errlen, "give tokens or prompts, not both");
        return -1;
    }
    if (jscan_expect(s, '[') < 0)
        return -1;
    r->n_prompts = 0;
    while ((e = jscan_element(s, first)) == 1) {
        first = 0;
        if (r->n_prompts == KVPROTO_MAX_PROMPTS) {
            snprintf(s->err, s->errlen, "more than %d prompts",
                     KVPROTO_MAX_PROMPTS);
            return -1;
        }
        if (vec_grow((void **)&p->prompt_ends, &p->prompt_ends_cap,
                     r->n_prompts + 1, sizeof *p->prompt_ends) < 0) {
            snprintf(s->err, s->errlen, "out of memory");
            return -1;
        }
        if (read_token_array(p, s, end, &end) < 0) {
            snprintf(why, sizeof why, "%.159s", s->err);
            snprintf(s->err, s->errlen, "prompt %zu: %s", r->n_prompts, why);
            return -1;
        }
        p->prompt_ends[r->n_prompts++] = end;
    }
    if (e < 0)
        return -1;
    if (r->n_prompts == 0) {
        snprintf(s->err, s->errlen, "an empty list");
        return -1;
    }
    r->has_prompts = 1;
    return 0;
}

/* An array of hashes into the reusable u64 vector from offset base. */
static int
read_hashes(struct kvproto *p, struct jscan *s, size_t base, size_t *n)
{
    int first = 1, e;
    uint64_t v;

    if (jscan_expect(s, '[') < 0)
        return -1;
    *n = 0;
    while ((e = jscan_element(s, first)) == 1) {
        first = 0;
        if (jscan_hash(s, &v) < 0)
            return -1;
        if (vec_grow((void **)&p->u64s, &p->u64s_cap, base + *n + 1,
                     sizeof *p->u64s) < 0) {
            snprintf(s->err, s->errlen, "out of memory");
            return -1;
        }
        p->u64s[base + (*n)++] = v;
    }
    return e;
}

/* "pods": ["a", {"pod":"b","dp_rank":0}, ...] */
static int
read_pods(struct kvproto *p, struct jscan *s, struct req *r)
{
    int first = 1, e, m, mf;
    struct kv_str key;
    struct index_pod_ref ref;

    if (jscan_expect(s, '[') < 0)
        return -1;
    r->n_pods = 0;
    while ((e = jscan_element(s, first)) == 1) {
        first = 0;
        memset(&ref, 0, sizeof ref);
        if (jscan_peek(s) == '{') {
            s->i++;
            mf = 1;
            while ((m = jscan_member(s, mf, &key)) == 1) {
                mf = 0;
                if (kv_str_eq(key, "pod")) {
                    if (jscan_string(s, &ref.pod) < 0)
                        return -1;
                } else if (kv_str_eq(key, "dp_rank")) {
                    if (!jscan_null(s)) {
                        if (jscan_i64(s, &ref.rank) < 0)
                            return -1;
                        ref.has_rank = 1;
                    }
                } else if (jscan_skip(s, NULL) < 0) {
                    return -1;
                }
            }
            if (m < 0)
                return -1;
            if (ref.pod.p == NULL) {
                snprintf(s->err, s->errlen, "pods: an object needs \"pod\"");
                return -1;
            }
        } else if (jscan_string(s, &ref.pod) < 0) {
            return -1;
        }
        if (vec_grow((void **)&p->pods, &p->pods_cap, r->n_pods + 1,
                     sizeof *p->pods) < 0) {
            snprintf(s->err, s->errlen, "out of memory");
            return -1;
        }
        p->pods[r->n_pods++] = ref;
    }
    r->has_pods = 1;
    return e;
}

static int
parse_op(struct req *r)
{
    for (int i = 0; i < KVPROTO_OP_COUNT; i++)
        if (kv_str_eq(r->op_name, op_names[i]))
            return i;
    return -1;
}

/*
 * Parses the request object in one pass; unknown members are skipped.
 */
static int
parse_req(struct kvproto *p, const char *line, size_t len, struct req *r,
          char *err, size_t errlen)
{
    struct jscan s;
    struct kv_str key;
    int first = 1, m;

    memset(r, 0, sizeof *r);
    r->op = -1;
    jscan_init(&s, line, len, &p->arena, err, errlen);
    if (jscan_peek(&s) != '{') {
        snprintf(err, errlen, "a request is a JSON object");
        return -1;
    }
    s.i++;
    while ((m = jscan_member(&s, first, &key)) == 1) {
        int rc = 0;
        first = 0;
        if (kv_str_eq(key, "id")) {
            /* jscan_skip checks escapes and UTF-8 too, so the id's text can
             * be echoed byte for byte and the reply stays valid JSON. */
            rc = jscan_skip(&s, &r->id);
        } else if (kv_str_eq(key, "op")) {
            rc = jscan_string(&s, &r->op_name);
            r->op = rc == 0 ? parse_op(r) : -1;
        } else if (kv_str_eq(key, "model")) {
            rc = read_opt_string(&s, &r->model);
        } else if (kv_str_eq(key, "lora_name")) {
            rc = read_opt_string(&s, &r->lora);
        } else if (kv_str_eq(key, "tokens")) {
            rc = read_tokens(p, &s, r);
        } else if (kv_str_eq(key, "prompts")) {
            rc = read_prompts(p, &s, r);
        } else if (kv_str_eq(key, "keys")) {
            /* keys take the front of u64s; block_hashes follow them. */
            if (r->has_hashes) {
                snprintf(err, errlen, "give keys or block_hashes, not both");
                return -1;
            }
            rc = read_hashes(p, &s, 0, &r->n_keys);
            r->has_keys = 1;
        } else if (kv_str_eq(key, "block_hashes")) {
            if (r->has_keys) {
                snprintf(err, errlen, "give keys or block_hashes, not both");
                return -1;
            }
            rc = read_hashes(p, &s, 0, &r->n_hashes);
            r->has_hashes = 1;
        } else if (kv_str_eq(key, "pods")) {
            rc = read_pods(p, &s, r);
        } else if (kv_str_eq(key, "pod")) {
            rc = jscan_string(&s, &r->pod);
            r->has_pod = 1;
        } else if (kv_str_eq(key, "dp_rank")) {
            if (!jscan_null(&s)) {
                rc = jscan_i64(&s, &r->rank);
                r->has_rank = 1;
            }
        } else if (kv_str_eq(key, "block_size")) {
            rc = jscan_u64(&s, UINT32_MAX, &r->block_size);
        } else if (kv_str_eq(key, "ages")) {
            rc = jscan_bool(&s, &r->ages);
        } else {
            rc = jscan_skip(&s, NULL); /* unknown members are ignored */
        }
        if (rc < 0) {
            /* Name the member whose value was wrong. */
            char why[160];
            snprintf(why, sizeof why, "%.159s", err);
            snprintf(err, errlen, "%.*s: %s", (int)(key.n > 40 ? 40 : key.n),
                     key.p, why);
            return -1;
        }
    }
    if (m < 0)
        return -1;
    if (jscan_peek(&s) != -1) {
        snprintf(err, errlen, "trailing text after the request object");
        return -1;
    }
    if (r->op_name.p == NULL) {
        snprintf(err, errlen, "missing \"op\"");
        return -1;
    }
    if (r->op < 0) {
        snprintf(err, errlen, "unknown op \"%.*s\"",
                 (int)(r->op_name.n > 40 ? 40 : r->op_name.n), r->op_name.p);
        return -1;
    }
    r->hashes = p->u64s;
    return 0;
}

static void
put_id(struct buf *out, const struct req *r)
{
    buf_puts(out, "{\"id\":");
    if (r != NULL && r->id.p != NULL)
        buf_put(out, r->id.p, r->id.n);
    else
        buf_puts(out, "null");
}

static void
put_error(struct kvproto *p, struct buf *out, const struct req *r,
          const char *msg)
{
    /* Error texts quote member and model names from the request; the one
     * escaper turns bytes that are not UTF-8 into U+FFFD, so the reply
     * stays JSON (found by tests/fuzz/fuzz_request.c). */
    put_id(out, r);
    buf_puts(out, ",\"ok\":false,\"error\":");
    buf_put_json_str(out, msg, strlen(msg));
    buf_puts(out, "}\n");
    p->errors++;
}

void
kvproto_reply_error(struct kvproto *p, struct buf *out, const char *msg)
{
    put_error(p, out, NULL, msg);
}

static void
fill_query(struct kvproto *p, const struct req *r, struct index_query *q)
{
    memset(q, 0, sizeof *q);
    q->model = r->model;
    q->lora_name = r->lora;
    if (r->has_tokens) {
        q->tokens = p->tokens;
        q->n_tokens = r->n_tokens;
    }
    if (r->has_keys) {
        q->keys = p->u64s;
        q->n_keys = r->n_keys;
    }
    if (r->has_pods) {
        q->pods = p->pods;
        q->n_pods = r->n_pods;
    }
    q->block_size = (uint32_t)r->block_size;
}

/* Appends ",\"name\":v" to a small text under construction. */
static char *
put_member_u64(char *o, const char *name, size_t nlen, uint64_t v)
{
    memcpy(o, name, nlen);
    o += nlen;
    return o + fmt_u64(o, v);
}

#define LIT(s) s, sizeof(s) - 1
#define PUT_LIT(o, s) (memcpy((o), (s), sizeof(s) - 1), (o) + sizeof(s) - 1)

/*
 * The first members of pod m's element in a match's "matches",
 * {"pod":...,"dp_rank":..., the bytes kvreport_pod would make: made the
 * first time the pod matches, then copied.  Sixty-four pods in an answer
 * are common, and their names and ranks never change.  Returns the text,
 * its length in *len, or NULL when out of memory.
 */
static const char *
match_head(struct kvproto *p, const struct index_match *m, size_t *len)
{
    uint32_t id = m->pod_id, cap, *at, *n;
    size_t pn;
    char *o;

    if (id >= p->heads_cap) {
        for (cap = p->heads_cap ? p->heads_cap : 64; cap <= id; cap *= 2)
            ;
        if ((at = realloc(p->head_at, cap * sizeof *at)) == NULL)
            return NULL;
        p->head_at = at;
        if ((n = realloc(p->head_len, cap * sizeof *n)) == NULL)
            return NULL;
        p->head_len = n;
        memset(n + p->heads_cap, 0, (cap - p->heads_cap) * sizeof *n);
        p->heads_cap = cap;
    }
    if (p->head_len[id] == 0) {
        pn = m->pod != NULL ? strlen(m->pod) : 0;
        if (p->heads.len > UINT32_MAX - fmt_json_str_bound(pn) - 64 ||
            buf_reserve(&p->heads, fmt_json_str_bound(pn) + 64) < 0)
            return NULL;
        o = p->heads.p + p->heads.len;
        o = PUT_LIT(o, "{\"pod\":");
        o = m->pod != NULL ? fmt_json_str(o, m->pod, pn) : PUT_LIT(o, "null");
        o = PUT_LIT(o, ",\"dp_rank\":");
        o = m->has_rank ? o + fmt_i64(o, m->rank) : PUT_LIT(o, "null");
        p->head_at[id] = (uint32_t)p->heads.len;
        p->head_len[id] = (uint32_t)(o - (p->heads.p + p->heads.len));
        p->heads.len = (size_t)(o - p->heads.p);
    }
    *len = p->head_len[id];
    return p->heads.p + p->head_at[id];
}

/*
 * The members of an element after dp_rank, into p->tail: the same for
 * every pod of the answer at one depth, on the same media, as degraded,
 * so made once for each such run (answers come by depth).
 */
static void
match_tail(struct kvproto *p, const struct index_match *m,
           const struct index_match_result *mr, const struct buf *media)
{
    char *o;

    buf_clear(&p->tail);
    /* The media, and under 100 bytes of members and numbers. */
    if (buf_reserve(&p->tail, media->len + 100) < 0)
        return;
    o = p->tail.p;
    o = put_member_u64(o, LIT(",\"depth\":"), m->depth);
    o = put_member_u64(o, LIT(",\"tokens\":"),
                       (uint64_t)m->depth * mr->block_size);
    o = put_member_u64(o, LIT(",\"percent\":"),
                       mr->blocks ? (uint64_t)m->depth * 100 / mr->blocks : 0);
    o = PUT_LIT(o, ",\"media\":");
    memcpy(o, media->p, media->len);
    o += media->len;
    o = m->degraded ? PUT_LIT(o, ",\"degraded\":true}")
                    : PUT_LIT(o, ",\"degraded\":false}");
    p->tail.len = (size_t)(o - p->tail.p);
}

/*
 * Forgets the reply pieces kept across requests, so that a request after
 * one that ran out of memory starts them afresh (a struct buf that ran out
 * stays out until freed).
 */
static void
match_pieces_reset(struct kvproto *p)
{
    buf_free(&p->heads);
    buf_free(&p->tail);
    buf_free(&p->media);
    if (p->heads_cap > 0)
        memset(p->head_len, 0, p->heads_cap * sizeof *p->head_len);
}

/* Answers one prompt's query q: the data object of a match. */
static int
put_match(struct kvproto *p, const struct index_query *q, struct buf *out,
          char *err, size_t errlen)
{
    struct index_match_result *mr = &p->mr;
    struct buf *media = &p->media;
    const struct index_match *prev = NULL;

    if (index_match(p->ix, q, mr, err, errlen) < 0)
        return -1;
    buf_puts(out, "{\"block_size\":");
    buf_put_u64(out, mr->block_size);
    buf_puts(out, ",\"blocks\":");
    buf_put_u64(out, mr->blocks);
    buf_puts(out, ",\"matches\":[");
    for (size_t i = 0; i < mr->n; i++) {
        const struct index_match *m = &mr->m[i];
        const char *head;
        size_t hn;
        char *o;

        /* The media list (nearly always the same) and the tail are made
         * only when they change. */
        int new_media = prev == NULL || m->media != prev->media;

        if (new_media) {
            buf_clear(media);
            kvreport_media(p->ix, m->media, media);
        }
        if (new_media || m->depth != prev->depth ||
            m->degraded != prev->degraded)
            match_tail(p, m, mr, media);
        prev = m;
        head = match_head(p, m, &hn);
        if (head == NULL || p->tail.oom || media->oom ||
            buf_reserve(out, 1 + hn + p->tail.len) < 0) {
            match_pieces_reset(p);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        o = out->p + out->len;
        if (i > 0)
            *o++ = ',';
        memcpy(o, head, hn);
        memcpy(o + hn, p->tail.p, p->tail.len);
        out->len = (size_t)(o + hn + p->tail.len - out->p);
    }
    buf_puts(out, "]}");
    return 0;
}

/*
 * A match: one prompt ("tokens" or "keys"), or a batch ("prompts"), whose
 * "results" are what each prompt alone would answer, in request order.
 * Any prompt's error fails the whole request: the errors index_match gives
 * are the namespace's, the same for every prompt.
 */
static int
op_match(struct kvproto *p, const struct req *r, struct buf *out, char *err,
         size_t errlen)
{
    struct index_query q;
    size_t start = 0;

    if (r->has_prompts && r->has_keys) {
        snprintf(err, errlen, "give keys or prompts, not both");
        return -1;
    }
    if (r->has_prompts) {
        fill_query(p, r, &q);
        buf_puts(out, "{\"results\":[");
        for (size_t i = 0; i < r->n_prompts; i++) {
            q.tokens = p->tokens + start;
            q.n_tokens = p->prompt_ends[i] - start;
            start = p->prompt_ends[i];
            if (i > 0)
                buf_putc(out, ',');
            if (put_match(p, &q, out, err, errlen) < 0)
                return -1;
        }
        buf_puts(out, "]}");
        return 0;
    }
    if (r->has_tokens == r->has_keys) {
        snprintf(err, errlen, "match needs \"tokens\" or \"keys\"");
        return -1;
    }
    fill_query(p, r, &q);
    return put_match(p, &q, out, err, errlen);
}

static int
op_keys(struct kvproto *p, const struct req *r, struct buf *out, char *err,
        size_t errlen)
{
    struct index_query q;
    uint64_t *keys = NULL;
    size_t n = 0;

    if (!r->has_tokens) {
        snprintf(err, errlen, "keys needs \"tokens\"");
        return -1;
    }
    fill_query(p, r, &q);
    if (index_keys(p->ix, &q, &keys, &n, err, errlen) < 0)
        return -1;
    buf_puts(out, "{\"keys\":[");
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            buf_putc(out, ',');
        buf_putc(out, '"');
        buf_put_u64(out, keys[i]);
        buf_putc(out, '"');
    }
    buf_puts(out, "]}");
    free(keys);
    return 0;
}

static void
pod_ref(const struct req *r, struct index_pod_ref *ref)
{
    memset(ref, 0, sizeof *ref);
    ref->pod = r->pod;
    ref->has_rank = r->has_rank;
    ref->rank = r->rank;
}

static int
op_clear(struct kvproto *p, const struct req *r, struct buf *out, char *err,
         size_t errlen)
{
    struct index_pod_ref ref;
    uint64_t n;

    if (!r->has_pod) {
        snprintf(err, errlen, "clear needs \"pod\"");
        return -1;
    }
    if (!p->may_change) {
        snprintf(err, errlen,
                 "permission denied: clear needs the server's uid or "
                 "--admin-gid");
        return -1;
    }
    pod_ref(r, &ref);
    n = index_clear_pod(p->ix, &ref);
    buf_puts(out, "{\"removed\":");
    buf_put_u64(out, n);
    buf_putc(out, '}');
    return 0;
}

static int
op_stats(struct kvproto *p, const struct req *r, struct buf *out, char *err,
         size_t errlen)
{
    buf_puts(out, "{\"version\":\"" KVTAP_VERSION "\"");
    kvreport_stats(p->ix, out);
    if (p->stats_fn != NULL)
        p->stats_fn(p->stats_ctx, out);
    buf_puts(out, ",\"queries\":{");
    for (int i = 0; i < KVPROTO_OP_COUNT; i++) {
        if (i > 0)
            buf_putc(out, ',');
        buf_putc(out, '"');
        buf_puts(out, op_names[i]);
        buf_puts(out, "\":");
        /* This request is counted once it is answered; include it. */
        buf_put_u64(out, p->served[i] + (i == KVPROTO_STATS));
    }
    buf_puts(out, "},\"query_errors\":");
    buf_put_u64(out, p->errors);
    buf_putc(out, '}');
    return 0;
}

/* A NUL-terminated copy of s in the request's arena, or NULL. */
static const char *
arena_str(struct arena *a, struct kv_str s)
{
    char *c = arena_alloc(a, s.n + 1);

    if (c != NULL) {
        memcpy(c, s.p, s.n);
        c[s.n] = '\0';
    }
    return c;
}

static int
op_lookup(struct kvproto *p, const struct req *r, struct buf *out, char *err,
          size_t errlen)
{
    struct index_pod_ref ref;
    const char *model = NULL, *lora = "";

    if (!r->has_hashes) {
        snprintf(err, errlen, "lookup needs \"block_hashes\"");
        return -1;
    }
    /* A namespace named in the request must exist, as for match: a
     * misspelt model must not read as "no pod holds these". */
    if (r->model.p != NULL || r->lora.p != NULL) {
        if (index_ns_check(p->ix, r->model, r->lora, err, errlen) < 0)
            return -1;
        model = r->model.p ? arena_str(&p->arena, r->model)
                           : index_default_model(p->ix);
        if (r->lora.p != NULL && r->lora.n)
            lora = arena_str(&p->arena, r->lora);
        if (model == NULL || lora == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    pod_ref(r, &ref);
    if (kvreport_lookup(p->ix, r->has_pod ? &ref : NULL, model, lora, p->u64s,
                        r->n_hashes, out) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static int
op_dump(struct kvproto *p, const struct req *r, struct buf *out, char *err,
        size_t errlen)
{
    struct index_pod_ref ref;

    pod_ref(r, &ref);
    buf_puts(out, "{\"lines\":[");
    if (p->dump_fn != NULL)
        return p->dump_fn(p->dump_ctx, r->has_pod ? &ref : NULL, err, errlen) <
                       0
                   ? -1
                   : 1;
    if (snapshot_dump(p->ix, p->io, r->has_pod ? &ref : NULL, 1, out, NULL,
                      NULL) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    buf_puts(out, "]}");
    return 0;
}

int
kvproto_dump_body(const struct kvproto *p, const struct index_pod_ref *ref,
                  struct buf *b, int (*flush)(void *ctx, struct buf *b),
                  void *ctx)
{
    /* The snapshot's own writer makes the lines, so that a dump and a
     * --snapshot file never differ (trailer included). */
    if (snapshot_dump(p->ix, p->io, ref, 1, b, flush, ctx) < 0)
        return -1;
    buf_puts(b, "]}}\n");
    return b->oom ? -1 : flush(ctx, b);
}

static int
run_op(struct kvproto *p, const struct req *r, struct buf *out, char *err,
       size_t errlen)
{
    switch (r->op) {
    case KVPROTO_PING:
        buf_puts(out, "{\"version\":\"" KVTAP_VERSION "\"}");
        return 0;
    case KVPROTO_MATCH:
        return op_match(p, r, out, err, errlen);
    case KVPROTO_KEYS:
        return op_keys(p, r, out, err, errlen);
    case KVPROTO_STATS:
        return op_stats(p, r, out, err, errlen);
    case KVPROTO_CLEAR:
        return op_clear(p, r, out, err, errlen);
    case KVPROTO_LOOKUP:
        return op_lookup(p, r, out, err, errlen);
    case KVPROTO_PODS:
        kvreport_pods(p->ix, r->ages, p->now, out);
        return 0;
    case KVPROTO_DUMP:
        return op_dump(p, r, out, err, errlen);
    default:
        snprintf(err, errlen, "unknown op");
        return -1;
    }
}

int
kvproto_handle(struct kvproto *p, const char *line, size_t len, struct buf *out)
{
    struct req r;
    char err[512]; /* not = "": that zeroes all 512 bytes every request */
    size_t mark = out->len;
    int rc;

    err[0] = '\0';
    arena_reset(&p->arena);
    p->last_op = -1;
    p->last_ok = 0;
    if (parse_req(p, line, len, &r, err, sizeof err) < 0) {
        /* The id may come after the member that failed: look for it in a
         * second pass (only on this error path). */
        if (jscan_find(line, len, "id", &r.id) != 1) {
            r.id.p = NULL;
            r.id.n = 0;
        }
        put_error(p, out, &r, err[0] ? err : "bad request");
        return 0;
    }
    p->last_op = r.op;
    put_id(out, &r);
    buf_puts(out, ",\"ok\":true,\"data\":");
    rc = run_op(p, &r, out, err, sizeof err);
    if (rc < 0) {
        out->len = mark; /* drop the half-written reply */
        put_error(p, out, &r, err[0] ? err : "failed");
        return 0;
    }
    p->served[r.op]++;
    p->last_ok = 1;
    if (rc > 0)
        return 1; /* dump_fn writes the rest */
    buf_puts(out, "}\n");
    return 0;
}
