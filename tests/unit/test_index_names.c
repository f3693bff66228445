/*
 * test_index_names.c - the index's tables of pod and namespace names, from
 * inside (index_impl.h): names that differ only in their last characters,
 * as a fleet's pods and a model's LoRAs do, must spread over the table.
 * Every event looks its pod up, so a table whose names cluster costs each
 * event a long probe of name comparisons; the FNV-1a hash these tables
 * first used put 64 pods "pod-00".."pod-63" into a few runs, and a lookup
 * took 160 ns instead of 25.  Lookups must also find every name again.
 */
#include <stdio.h>
#include <stdlib.h>

#include "index_impl.h"
#include "unit.h"

/*
 * The longest run of occupied slots in a linear-probing table of cap
 * slots (cyclic).  With a hash that spreads, a table at most half full
 * has runs of a few slots; names that share a home make one run each.
 */
static uint32_t
longest_run(const uint32_t *tab, uint32_t cap)
{
    uint32_t best = 0, run = 0, start = 0;

    /* Start after an empty slot so that a run across the end counts once. */
    while (start < cap && tab[start] != NONE)
        start++;
    for (uint32_t k = 1; k <= cap; k++) {
        uint32_t j = (start + k) % cap;

        run = tab[j] == NONE ? 0 : run + 1;
        if (run > best)
            best = run;
    }
    return best;
}

/* Interns n pods named prefix and a number of width digits, each under
 * ranks 0..ranks-1 (no rank when ranks is 0); checks that each is found
 * again, and the longest run. */
static void
check_pods(const char *prefix, int width, int n, int ranks, uint32_t max_run,
           const char *what)
{
    char err[256], name[64], msg[160];
    struct index_opts o = {.default_model = "m"};
    struct kv_index *ix = index_new(&o, err, sizeof err);
    int found = 1;

    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "%s%0*d", prefix, width, i);
        for (int r = 0; r < (ranks ? ranks : 1); r++)
            pod_intern(ix, name, strlen(name), ranks > 0, r);
    }
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "%s%0*d", prefix, width, i);
        for (int r = 0; r < (ranks ? ranks : 1); r++) {
            uint32_t id = pod_find(ix, name, strlen(name), ranks > 0, r);

            found = found && id != NONE &&
                    ix->pods[id].name_len == strlen(name) &&
                    memcmp(ix->pods[id].name, name, strlen(name)) == 0 &&
                    ix->pods[id].rank == r;
        }
    }
    snprintf(msg, sizeof msg, "%s: every pod found again", what);
    CHECK(found && ix->n_pods == (uint32_t)(n * (ranks ? ranks : 1)), msg);
    uint32_t run = longest_run(ix->pod_tab, ix->pods_cap * 2);
    snprintf(msg, sizeof msg, "%s: longest probe run %u <= %u", what, run,
             max_run);
    CHECK(run <= max_run, msg);
    index_free(ix);
}

static void
test_pod_names(void)
{
    check_pods("pod-", 2, 64, 0, 16, "64 pods pod-00..pod-63");
    check_pods("pod-", 1, 1000, 0, 24, "1000 pods pod-0..pod-999");
    check_pods("vllm-decode-7d9f8b6c5-", 5, 512, 0, 24,
               "512 Kubernetes-style pod names");
    check_pods("engine-", 1, 16, 8, 16, "16 pods of 8 data-parallel ranks");
}

/* LoRAs of one model, "lora-0".."lora-N": each a namespace of its own. */
static void
test_ns_names(void)
{
    char err[256], lora[32], msg[128];
    struct index_opts o = {.default_model = "m"};
    struct kv_index *ix = index_new(&o, err, sizeof err);
    int found = 1;
    const int n = 500;

    for (int i = 0; i < n; i++) {
        snprintf(lora, sizeof lora, "lora-%d", i);
        ns_create(ix, "m", 1, lora, strlen(lora), 16);
    }
    for (int i = 0; i < n; i++) {
        snprintf(lora, sizeof lora, "lora-%d", i);
        uint32_t id = ns_find(ix, "m", 1, lora, strlen(lora));

        found = found && id != NONE && ix->ns[id].lora_len == strlen(lora) &&
                memcmp(ix->ns[id].lora, lora, strlen(lora)) == 0;
    }
    CHECK(found && ix->n_ns == (uint32_t)n, "500 LoRAs: every namespace found");
    uint32_t run = longest_run(ix->ns_tab, ix->ns_cap * 2);
    snprintf(msg, sizeof msg, "500 LoRAs: longest probe run %u <= 24", run);
    CHECK(run <= 24, msg);
    index_free(ix);

    ix = index_new(&o, err, sizeof err);
    for (int i = 0; i < n; i++) {
        snprintf(lora, sizeof lora, "model-%d", i);
        ns_create(ix, lora, strlen(lora), "", 0, 16);
    }
    run = longest_run(ix->ns_tab, ix->ns_cap * 2);
    snprintf(msg, sizeof msg, "500 models: longest probe run %u <= 24", run);
    CHECK(run <= 24, msg);
    index_free(ix);
}

int
main(void)
{
    test_pod_names();
    test_ns_names();
    return unit_done();
}
