/*
 * test_index_resume.c - a pod restored from a snapshot resuming its stream
 * (docs/kvindex.md#resuming-after-a-restart), names the index refuses
 * (docs/kvindex.md#names), and the js_seq a snapshot records.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index.h"
#include "unit.h"

static const uint32_t tokens[4] = {1, 2, 3, 4};

/* One line: a one-block root store of hash h (or a record of type t). */
struct line {
    enum kv_type t;
    uint64_t seq;
    double ts; /* 0: none */
    const char *stream;
    uint64_t h;
    uint64_t from; /* gap */
    const char *pod, *model, *lora, *medium;
};

static int
apply(struct kv_index *ix, const struct line *l, enum index_reject *why)
{
    struct kv_env env;
    struct kv_event ev;
    struct kv_hash hs = {l->h, NULL, 0};
    const char *pod = l->pod ? l->pod : "p";

    memset(&env, 0, sizeof env);
    env.pod = (struct kv_str){pod, strlen(pod)};
    if (l->model)
        env.model = (struct kv_str){l->model, strlen(l->model)};
    env.has_rank = 1;
    env.has_seq = 1;
    env.seq = l->seq;
    env.has_ts = l->ts != 0;
    env.ts = l->ts;
    if (l->stream)
        env.stream = (struct kv_str){l->stream, strlen(l->stream)};
    kv_event_init(&ev, l->t ? l->t : KV_BLOCK_STORED);
    if (ev.type == KV_BLOCK_STORED) {
        ev.present = KV_BIT(KV_F_BLOCK_HASHES) |
                     KV_BIT(KV_F_PARENT_BLOCK_HASH) | KV_BIT(KV_F_TOKEN_IDS) |
                     KV_BIT(KV_F_BLOCK_SIZE);
        ev.isnull = KV_BIT(KV_F_PARENT_BLOCK_HASH);
        ev.hashes = &hs;
        ev.n_hashes = 1;
        ev.tokens = (uint32_t *)tokens;
        ev.n_tokens = 4;
        ev.num[KV_F_BLOCK_SIZE] = 4;
        if (l->lora) {
            ev.present |= KV_BIT(KV_F_LORA_NAME);
            ev.str[KV_F_LORA_NAME] = (struct kv_str){l->lora, strlen(l->lora)};
        }
        if (l->medium) {
            ev.present |= KV_BIT(KV_F_MEDIUM);
            ev.str[KV_F_MEDIUM] = (struct kv_str){l->medium, strlen(l->medium)};
        }
    }
    ev.from = l->from;
    ev.to = l->seq;
    return index_apply(ix, &env, &ev, why);
}

static struct kv_index *
fresh(void)
{
    struct index_opts o = {BLOCKKEY_AIBRIX, 0, "", "m", 0};
    char err[64];

    return index_new(&o, err, sizeof err);
}

/* The pod after seqs 1..3 (ts 101..103, stream sid when given), with seq 3
 * in two lines (hashes 3 and 30), copied into a new index the way a
 * snapshot restores it. */
static struct kv_index *
restored(const char *sid)
{
    struct kv_index *a = fresh(), *b = fresh();
    struct index_pod_info pi;
    enum index_reject why;
    char err[128];

    for (uint64_t s = 1; s <= 3; s++)
        apply(a,
              &(struct line){.seq = s, .ts = 100.0 + s, .stream = sid, .h = s},
              &why);
    apply(a, &(struct line){.seq = 3, .ts = 103, .stream = sid, .h = 30}, &why);
    index_pod_info(a, 0, &pi);
    if (index_restore_pod(b, &pi, err, sizeof err) < 0)
        printf("# restore: %s\n", err);
    index_free(a);
    return b;
}

static struct index_pod_info
pod0(const struct kv_index *ix)
{
    struct index_pod_info pi;

    memset(&pi, 0, sizeof pi);
    index_pod_info(ix, 0, &pi);
    return pi;
}

static struct index_stats
stats(const struct kv_index *ix)
{
    struct index_stats st;

    index_stats(ix, &st);
    return st;
}

/* The engine's buffer covers the downtime: replays are skipped, the rest
 * applies, nothing degrades. */
static void
test_contiguous(void)
{
    struct kv_index *ix = restored(NULL);
    struct index_resume_alarm al;
    enum index_reject why;
    int alarms = 0;
    static const struct line replay[] = {
        {.seq = 1, .ts = 101, .h = 1},  {.seq = 2, .ts = 102, .h = 2},
        {.t = KV_GAP, .seq = 2},        {.seq = 3, .ts = 103, .h = 3},
        {.seq = 3, .ts = 103, .h = 30}, {.seq = 4, .ts = 104, .h = 4},
        {.seq = 2, .ts = 102, .h = 99},
    };

    for (size_t i = 0; i < sizeof replay / sizeof replay[0]; i++) {
        CHECK(apply(ix, &replay[i], &why) == 0, "applied or skipped");
        alarms += index_resume_alarm(ix, &al);
    }
    CHECK_U64(stats(ix).resume_skipped, 5, "five lines held already");
    CHECK_U64(stats(ix).applied[KV_BLOCK_STORED], 2,
              "seq 4, and seq 2 again once resumed (not the resume's "
              "business)");
    CHECK_U64(stats(ix).entries, 2, "entries 4 and 99");
    CHECK(!pod0(ix).degraded && alarms == 0, "not degraded, no alarm");
    index_free(ix);
}

/* A snapshot taken between the two lines of seq 3: the second applies. */
static void
test_mid_batch(void)
{
    struct kv_index *a = fresh(), *b = fresh();
    struct index_pod_info pi;
    enum index_reject why;
    char err[128];

    apply(a, &(struct line){.seq = 3, .ts = 103, .h = 3}, &why);
    index_pod_info(a, 0, &pi);
    CHECK_U64(pi.seq_lines, 1, "one line of seq 3 applied");
    index_restore_pod(b, &pi, err, sizeof err);
    apply(b, &(struct line){.seq = 3, .ts = 103, .h = 3}, &why);
    apply(b, &(struct line){.seq = 3, .ts = 103, .h = 30}, &why);
    CHECK_U64(stats(b).resume_skipped, 1, "the first line of seq 3 skipped");
    CHECK_U64(stats(b).entries, 1, "the second applied");
    CHECK_U64(pod0(b).seq_lines, 2, "and counted");
    index_free(a);
    index_free(b);
}

/* Each first line that leaves history out degrades the pod, once. */
static void
test_degraded(void)
{
    static const struct {
        struct line l;
        int other;
        uint64_t from, to;
        const char *what;
    } cases[] = {
        {{.seq = 6, .ts = 106, .h = 6}, 0, 4, 5, "a jump past seq 4"},
        {{.t = KV_GAP, .seq = 5, .ts = 106, .from = 0},
         0,
         4,
         5,
         "a gap record reaching past the snapshot"},
        {{.t = KV_GAP, .seq = 9, .ts = 110, .from = 6},
         0,
         4,
         9,
         "a gap record after a hole"},
        {{.seq = 3, .ts = 203, .h = 3}, 1, 0, 0, "another ts at seq 3"},
        {{.seq = 0, .ts = 200, .h = 3}, 1, 0, 0, "a later ts at seq 0"},
        {{.seq = 5, .ts = 50, .h = 3}, 1, 0, 0, "an earlier ts at seq 5"},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct kv_index *ix = restored(NULL);
        struct index_resume_alarm al;
        enum index_reject why;

        apply(ix, &cases[i].l, &why);
        CHECK(index_resume_alarm(ix, &al) == 1 && pod0(ix).degraded,
              cases[i].what);
        if (!CHECK(al.other_engine == cases[i].other &&
                       al.from == cases[i].from && al.to == cases[i].to &&
                       al.snap_seq == 3 && !strcmp(al.pod, "p") && al.has_rank,
                   "the alarm says why"))
            printf("# %s: other %d, %llu..%llu\n", cases[i].what,
                   al.other_engine, (unsigned long long)al.from,
                   (unsigned long long)al.to);
        apply(ix, &(struct line){.seq = 11, .ts = 300, .h = 11}, &why);
        CHECK(index_resume_alarm(ix, &al) == 0, "once");
        apply(ix, &(struct line){.t = KV_ALL_BLOCKS_CLEARED, .seq = 12}, &why);
        CHECK(!pod0(ix).degraded, "until a clear");
        index_free(ix);
    }
}

/* Stream ids decide where lines carry them; records that reset the pod
 * are never an alarm. */
static void
test_identity(void)
{
    static const char sid[] = "0123456789abcdef0123456789abcdef";
    static const char other[] = "fedcba9876543210fedcba9876543210";
    struct kv_index *ix = restored(sid);
    struct index_resume_alarm al;
    enum index_reject why;

    CHECK_STR(pod0(ix).stream ? pod0(ix).stream : "(null)", sid,
              "the stream id is restored");
    apply(ix, &(struct line){.seq = 2, .ts = 500, .stream = sid, .h = 2}, &why);
    CHECK(stats(ix).resume_skipped == 1 && !index_resume_alarm(ix, &al),
          "the same stream id: held, whatever the ts");
    apply(ix, &(struct line){.seq = 4, .ts = 104, .stream = other, .h = 4},
          &why);
    CHECK(index_resume_alarm(ix, &al) == 1 && al.other_engine &&
              pod0(ix).degraded,
          "another stream id without a restart record: degraded");
    index_free(ix);

    ix = restored(sid);
    apply(ix, &(struct line){.t = KV_RESTART, .seq = 0, .stream = other}, &why);
    CHECK(!index_resume_alarm(ix, &al) && !pod0(ix).degraded &&
              stats(ix).entries == 0,
          "a restart record: the pod starts over, no alarm");
    index_free(ix);

    ix = restored(NULL);
    apply(ix, &(struct line){.t = KV_SNAPSHOT_BEGIN, .seq = 40}, &why);
    CHECK(!index_resume_alarm(ix, &al),
          "an engine snapshot past a hole: no alarm (it holds the state)");
    index_free(ix);
}

/* Names that are not valid UTF-8 or hold U+0000 are refused, counted. */
static void
test_names(void)
{
    static const struct line bad[] = {
        {.seq = 1, .h = 1, .pod = "a\xff"},
        {.seq = 1, .h = 1, .pod = "a\xc0\x80"},
        {.seq = 1, .h = 1, .model = "m\xed\xa0\x80"},
        {.seq = 1, .h = 1, .lora = "l\xe2\x82"},
        {.seq = 1, .h = 1, .medium = "\xfe"},
    };
    struct kv_index *ix = fresh();
    enum index_reject why;
    struct kv_env env;
    struct kv_event ev;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(apply(ix, &bad[i], &why) == -1 && why == INDEX_REJ_NAME,
              "rejected as bad_name");
    }
    CHECK_U64(stats(ix).rejected[INDEX_REJ_NAME], 5, "counted");
    CHECK_STR(index_reject_name(INDEX_REJ_NAME), "bad_name", "its stats name");
    /* U+0000 inside a name: the reader hands the decoded bytes over. */
    memset(&env, 0, sizeof env);
    env.pod = (struct kv_str){"x\0y", 3};
    kv_event_init(&ev, KV_ALL_BLOCKS_CLEARED);
    CHECK(index_apply(ix, &env, &ev, &why) == -1 && why == INDEX_REJ_NAME,
          "a pod holding U+0000");
    CHECK(apply(ix, &(struct line){.seq = 1, .h = 1, .pod = "p\xc3\xa9"},
                &why) == 0,
          "valid UTF-8 is a name like any");
    CHECK_U64(index_pod_count(ix), 2,
              "only that pod and p (of the bad medium) exist");
    index_free(ix);
}

static void
test_js_seq(void)
{
    struct kv_index *ix = fresh();
    uint64_t js;

    CHECK(index_js_seq_get(ix, &js) == 0, "none at first");
    CHECK(index_js_seq(ix, 7) == 0 && index_js_seq(ix, 5) == 0,
          "no snapshot: nothing skipped");
    CHECK(index_js_seq_get(ix, &js) == 1 && js == 7, "the highest seen");
    index_free(ix);
    ix = fresh();
    index_restore_js_seq(ix, 10);
    CHECK(index_js_seq(ix, 10) == 1 && index_js_seq(ix, 3) == 1 &&
              index_js_seq(ix, 11) == 0 && index_js_seq(ix, 10) == 1,
          "restored 10: 10 and below skipped, 11 not");
    CHECK_U64(stats(ix).js_skipped, 3, "skips counted");
    CHECK(index_js_seq_get(ix, &js) == 1 && js == 11, "11 now the highest");
    index_free(ix);
}

int
main(void)
{
    test_contiguous();
    test_mid_batch();
    test_degraded();
    test_identity();
    test_names();
    test_js_seq();
    return unit_done();
}
