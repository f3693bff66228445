/*
 * test_seqtrack.c - sequence bookkeeping, table-driven, including fixture
 * F20 (two DP ranks interleaved, independent counters).
 */
#include "seqtrack.h"
#include "unit.h"

enum op { LIVE, ADV };

struct step {
    int src;    /* which tracker */
    enum op op; /* LIVE: classify seq; ADV: advance to seq */
    uint64_t seq;
    int kind;      /* LIVE: the expected verdict */
    uint64_t a, b; /* GAP: from, to; RESTART: last_seq in a */
    uint64_t next; /* expected seqtrack_next() after the step */
};

struct table {
    const char *name;
    const struct step *steps;
    size_t n;
};

static const char *const kind_names[] = {"FIRST", "NEXT", "GAP", "DUP",
                                         "RESTART"};

static void
run(const struct table *tb)
{
    struct seqtrack t[2];

    seqtrack_init(&t[0]);
    seqtrack_init(&t[1]);
    for (size_t i = 0; i < tb->n; i++) {
        const struct step *s = &tb->steps[i];
        char what[160];

        if (s->op == LIVE) {
            struct seqtrack_verdict v;
            seqtrack_live(&t[s->src], s->seq, &v);
            snprintf(what, sizeof what, "%s step %zu: src %d live %llu is %s",
                     tb->name, i, s->src, (unsigned long long)s->seq,
                     kind_names[s->kind]);
            if (!CHECK(v.kind == (enum seqtrack_kind)s->kind, what))
                printf("#   got %s\n", kind_names[v.kind]);
            if (s->kind == SEQTRACK_GAP) {
                snprintf(what, sizeof what, "%s step %zu: gap range", tb->name,
                         i);
                CHECK(v.from == s->a && v.to == s->b, what);
            }
            if (s->kind == SEQTRACK_RESTART) {
                snprintf(what, sizeof what, "%s step %zu: restart last_seq",
                         tb->name, i);
                CHECK_U64(v.last_seq, s->a, what);
            }
        } else {
            seqtrack_advance(&t[s->src], s->seq);
        }
        snprintf(what, sizeof what, "%s step %zu: src %d next", tb->name, i,
                 s->src);
        CHECK_U64(seqtrack_next(&t[s->src]), s->next, what);
    }
}

/*
 * F20: per rank, seqs 0, 1, 3 (gap, replay fills 2), 3 again (duplicate
 * after replay), then 0 (restart).  Rank 1 starts elsewhere and runs its
 * own counter, interleaved with rank 0.
 */
static const struct step f20[] = {
    {0, LIVE, 0, SEQTRACK_FIRST, 0, 0, 0},
    {0, ADV, 0, 0, 0, 0, 1},
    {1, LIVE, 7, SEQTRACK_FIRST, 0, 0, 7},
    {1, ADV, 7, 0, 0, 0, 8},
    {0, LIVE, 1, SEQTRACK_NEXT, 0, 0, 1},
    {0, ADV, 1, 0, 0, 0, 2},
    {1, LIVE, 8, SEQTRACK_NEXT, 0, 0, 8},
    {1, ADV, 8, 0, 0, 0, 9},
    {0, LIVE, 3, SEQTRACK_GAP, 2, 2, 2},
    {1, LIVE, 9, SEQTRACK_NEXT, 0, 0, 9},
    {1, ADV, 9, 0, 0, 0, 10},
    {0, ADV, 2, 0, 0, 0, 3}, /* replay delivered 2 */
    {0, ADV, 3, 0, 0, 0, 4}, /* then the live 3 */
    {0, LIVE, 3, SEQTRACK_DUP, 0, 0, 4},
    {1, LIVE, 12, SEQTRACK_GAP, 10, 11, 10},
    {1, ADV, 11, 0, 0, 0, 12}, /* gap given up (a gap record) */
    {1, ADV, 12, 0, 0, 0, 13},
    {0, LIVE, 0, SEQTRACK_RESTART, 3, 0, 0},
    {0, ADV, 0, 0, 0, 0, 1},
    {1, LIVE, 13, SEQTRACK_NEXT, 0, 0, 13},
    {1, ADV, 13, 0, 0, 0, 14},
    {0, LIVE, 1, SEQTRACK_NEXT, 0, 0, 1},
    {0, ADV, 1, 0, 0, 0, 2},
    {1, LIVE, 0, SEQTRACK_RESTART, 13, 0, 0},
    {1, ADV, 0, 0, 0, 0, 1},
};

/* Replay ran past the live seq that revealed the gap (to the end marker). */
static const struct step overlap[] = {
    {0, LIVE, 10, SEQTRACK_FIRST, 0, 0, 10},
    {0, ADV, 10, 0, 0, 0, 11},
    {0, LIVE, 13, SEQTRACK_GAP, 11, 12, 11},
    {0, ADV, 11, 0, 0, 0, 12},
    {0, ADV, 12, 0, 0, 0, 13},
    {0, ADV, 13, 0, 0, 0, 14},
    {0, ADV, 14, 0, 0, 0, 15}, /* replay also delivered 14, 15, 16 */
    {0, ADV, 15, 0, 0, 0, 16},
    {0, ADV, 16, 0, 0, 0, 17},
    {0, LIVE, 14, SEQTRACK_DUP, 0, 0, 17}, /* queued live copies */
    {0, LIVE, 15, SEQTRACK_DUP, 0, 0, 17},
    {0, LIVE, 16, SEQTRACK_DUP, 0, 0, 17},
    {0, LIVE, 17, SEQTRACK_NEXT, 0, 0, 17},
    {0, ADV, 17, 0, 0, 0, 18},
    {0, LIVE, 15, SEQTRACK_RESTART, 17, 0, 15}, /* 15 was seen live */
    {0, ADV, 15, 0, 0, 0, 16},
};

/* Edge cases: restarts to 0, seq equal to last, large seqs, advancing back. */
static const struct step edges[] = {
    {0, LIVE, 0, SEQTRACK_FIRST, 0, 0, 0},
    {0, ADV, 0, 0, 0, 0, 1},
    {0, LIVE, 0, SEQTRACK_DUP, 0, 0, 1}, /* equal to last: duplicate */
    {0, LIVE, 1, SEQTRACK_NEXT, 0, 0, 1},
    {0, ADV, 1, 0, 0, 0, 2},
    {0, LIVE, 0, SEQTRACK_RESTART, 1, 0, 0},
    {0, ADV, 0, 0, 0, 0, 1},
    {0, ADV, 0, 0, 0, 0, 1}, /* advancing to the same seq changes nothing */
    {0, LIVE, 5, SEQTRACK_GAP, 1, 4, 1},
    {0, ADV, 3, 0, 0, 0, 4},
    {0, ADV, 2, 0, 0, 0, 4}, /* backwards advance ignored */
    {0, ADV, 5, 0, 0, 0, 6},
    {1, ADV, 4, 0, 0, 0, 5}, /* baseline set by replay before any live */
    {1, LIVE, 5, SEQTRACK_NEXT, 0, 0, 5},
    {1, ADV, 5, 0, 0, 0, 6},
    {1, LIVE, 0xfffffffffffffffdull, SEQTRACK_GAP, 6, 0xfffffffffffffffcull, 6},
    {1, ADV, 0xfffffffffffffffdull, 0, 0, 0, 0xfffffffffffffffeull},
    {1, LIVE, 0xfffffffffffffffeull, SEQTRACK_NEXT, 0, 0,
     0xfffffffffffffffeull},
    {1, ADV, 0xfffffffffffffffeull, 0, 0, 0, 0xffffffffffffffffull},
    {1, LIVE, 3, SEQTRACK_RESTART, 0xfffffffffffffffeull, 0, 3},
    {1, ADV, 3, 0, 0, 0, 4},
};

/*
 * kvsub -o beginning: replay delivered 0..5 before anything was seen live;
 * the live copies queued meanwhile, seq 0 included, are duplicates, the
 * first new one is next, and only afterwards can a lower seq be a restart.
 */
static const struct step joined[] = {
    {0, ADV, 0, 0, 0, 0, 1},
    {0, ADV, 5, 0, 0, 0, 6},
    {0, LIVE, 0, SEQTRACK_DUP, 0, 0, 6},
    {0, LIVE, 3, SEQTRACK_DUP, 0, 0, 6},
    {0, LIVE, 5, SEQTRACK_DUP, 0, 0, 6},
    {0, LIVE, 6, SEQTRACK_NEXT, 0, 0, 6},
    {0, ADV, 6, 0, 0, 0, 7},
    {0, LIVE, 2, SEQTRACK_RESTART, 6, 0, 2},
    {0, ADV, 2, 0, 0, 0, 3},
    {1, ADV, 9, 0, 0, 0, 10}, /* replay ended at 9; live starts later */
    {1, LIVE, 12, SEQTRACK_GAP, 10, 11, 10},
};

/*
 * A restart revealed by live seq 15, after which a snapshot at seq 19 was
 * delivered: the live copies 16-19 queued meanwhile are duplicates.
 */
static const struct step resnapshot[] = {
    {0, LIVE, 40, SEQTRACK_FIRST, 0, 0, 40},
    {0, ADV, 40, 0, 0, 0, 41},
    {0, LIVE, 15, SEQTRACK_RESTART, 40, 0, 15},
    {0, ADV, 19, 0, 0, 0, 20}, /* the snapshot */
    {0, LIVE, 16, SEQTRACK_DUP, 0, 0, 20},
    {0, LIVE, 19, SEQTRACK_DUP, 0, 0, 20},
    {0, LIVE, 20, SEQTRACK_NEXT, 0, 0, 20},
};

int
main(void)
{
    static const struct table tables[] = {
        {"F20", f20, sizeof f20 / sizeof f20[0]},
        {"overlap", overlap, sizeof overlap / sizeof overlap[0]},
        {"edges", edges, sizeof edges / sizeof edges[0]},
        {"joined", joined, sizeof joined / sizeof joined[0]},
        {"resnapshot", resnapshot, sizeof resnapshot / sizeof resnapshot[0]},
    };
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++)
        run(&tables[i]);

    struct seqtrack t = {0};
    CHECK_U64(seqtrack_next(&t), 0, "zeroed tracker expects 0");
    return unit_done();
}
