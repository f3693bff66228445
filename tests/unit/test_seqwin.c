/*
 * test_seqwin.c - the window of seen sequence numbers: its edges one by
 * one, then random runs against a model that remembers every number.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seqwin.h"
#include "unit.h"

/* 64-number words in the window. */
#define WORDS (SEQWIN_SPAN / 64)

static void
check_has(const struct seqwin *w, uint64_t seq, int want, const char *what)
{
    int got = seqwin_has(w, seq);

    if (!CHECK(got == want, what))
        printf("#   seq %llu: got %d, want %d\n", (unsigned long long)seq, got,
               want);
}

static void
edges(void)
{
    struct seqwin w = {0};

    check_has(&w, 0, 0, "nothing added: 0 not seen");
    check_has(&w, UINT64_MAX, 0, "nothing added: the last number not seen");
    seqwin_free(&w);

    CHECK(seqwin_add(&w, 5) == 0 && seqwin_add(&w, 6) == 0, "add 5 and 6");
    check_has(&w, 5, 1, "5 seen");
    check_has(&w, 4, 0, "4 not seen");
    check_has(&w, 7, 0, "7 not seen");
    check_has(&w, (uint64_t)1 << 40, 0, "a number above all not seen");

    /* The last word that keeps word 0 in the window. */
    seqwin_add(&w, 64 * (WORDS - 1));
    check_has(&w, 5, 1, "5 seen while its word is the window's lowest");
    /* One word higher, and word 0 falls out; its ring slot is reused. */
    seqwin_add(&w, 64 * WORDS + 5);
    check_has(&w, 5, -1, "5 forgotten once below the window");
    check_has(&w, 64 * WORDS + 5, 1, "the number in 5's old slot seen");
    check_has(&w, 64 * WORDS + 6, 0,
              "6's bit did not stay in the slot it shared");
    check_has(&w, 64 * (WORDS - 1), 1, "the lowest word's number still seen");

    /* A number below the window is not kept, and must not mark the word
     * that has its ring slot now. */
    seqwin_add(&w, 64 * WORDS + 1);
    seqwin_add(&w, 0);
    check_has(&w, 0, -1, "a number added below the window stays unknown");
    check_has(&w, 64 * WORDS, 0, "its bit did not land on a later word");

    /* A jump of more than the window forgets everything below. */
    seqwin_add(&w, 100 * SEQWIN_SPAN + 7);
    check_has(&w, 100 * SEQWIN_SPAN + 7, 1, "after a jump: the new number");
    check_has(&w, 100 * SEQWIN_SPAN + 6, 0, "after a jump: its neighbour");
    /* The window's lowest word is the new number's word + 1 - WORDS. */
    check_has(&w, 99 * SEQWIN_SPAN + 64, 0,
              "after a jump: the window's lowest number, never added");
    check_has(&w, 99 * SEQWIN_SPAN + 63, -1,
              "after a jump: the number just below the window unknown");
    check_has(&w, 64 * WORDS + 5, -1, "after a jump: an old number unknown");
    seqwin_free(&w);

    seqwin_add(&w, UINT64_MAX);
    check_has(&w, UINT64_MAX, 1, "the last number seen");
    check_has(&w, UINT64_MAX - 1, 0, "the one before not seen");
    seqwin_free(&w);
    check_has(&w, UINT64_MAX, 0, "freed: as if zeroed");
}

/* ---- random runs against a model ------------------------------------- */

#define MODEL_SLOTS (1u << 16)

static uint64_t added[MODEL_SLOTS]; /* open addressing; 0 = empty, seq + 1 */
static uint64_t rng = 0x2545F4914F6CDD1Dull;

static uint64_t
rnd(void)
{
    return unit_rand(&rng);
}

static uint32_t
slot_of(uint64_t seq)
{
    uint32_t j = (uint32_t)((seq * 0x9E3779B97F4A7C15ull) >> 48);

    while (added[j] != 0 && added[j] != seq + 1)
        j = (j + 1) & (MODEL_SLOTS - 1);
    return j;
}

/* A number near base: mostly within a window's span, sometimes far. */
static uint64_t
near(uint64_t base)
{
    uint64_t r = rnd();

    return r % 8 == 0 ? base + r % (4 * SEQWIN_SPAN) : base + r % 4096;
}

static void
random_runs(void)
{
    for (int run = 0; run < 20; run++) {
        struct seqwin w = {0};
        uint64_t base = run == 0 ? 0 : rnd() >> 8, top = 0;
        int bad = 0;

        memset(added, 0, sizeof added);
        for (int k = 0; k < 20000 && !bad; k++) {
            uint64_t s = near(base);

            if (rnd() % 3 == 0) {
                seqwin_add(&w, s);
                added[slot_of(s)] = s + 1;
                if ((s >> 6) + 1 > top)
                    top = (s >> 6) + 1;
                if (rnd() % 64 == 0)
                    base += rnd() % SEQWIN_SPAN;
                continue;
            }
            /* Queries near the last numbers, on word edges, and below
             * where the window has moved past. */
            if (rnd() % 2 == 0)
                s -= s % 64;
            if (rnd() % 4 == 0 && base > 2 * SEQWIN_SPAN)
                s = base - rnd() % (2 * SEQWIN_SPAN);
            int want = (s >> 6) >= top ? 0
                       : top > WORDS && (s >> 6) < top - WORDS
                           ? -1
                           : added[slot_of(s)] != 0;
            int got = seqwin_has(&w, s);
            if (got != want) {
                printf("# run %d step %d: seq %llu got %d want %d\n", run, k,
                       (unsigned long long)s, got, want);
                bad = 1;
            }
        }
        CHECK(!bad, "random run agrees with the model");
        seqwin_free(&w);
    }
}

int
main(void)
{
    edges();
    random_runs();
    return unit_done();
}
