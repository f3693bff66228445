/*
 * synth.h - a synthetic engine workload for kvpub --synth.
 *
 * It plays a busy vLLM instance with prefix caching on: chat requests that
 * share a handful of system prompts, multi-turn conversations that extend
 * earlier prompts, 16-token blocks chained by parent hash, and LRU
 * evictions once the simulated cache is full (deepest blocks first, as
 * vLLM frees a request's blocks in reverse).  Each batch is one scheduler
 * step: the removals its allocation caused, then one BlockStored.
 *
 * The system prompts and the hash function do not depend on the seed, so
 * publishers started with different seeds look like pods of one deployment
 * (with PYTHONHASHSEED fixed): their stores of a shared system prompt
 * carry the same hashes and the same tokens.  The same seed always yields
 * the same events.
 */
#ifndef KVPUB_SYNTH_H
#define KVPUB_SYNTH_H

#include <stddef.h>
#include <stdint.h>

#include "event.h"

struct synth_opts {
    uint64_t seed;
    uint32_t block_size; /* tokens per block, 0 = 16, at most 64 */
    size_t capacity;     /* blocks cached before evicting, 0 = 1024 */
};

struct synth;

/* Returns a new generator, or NULL when out of memory.  Free with
 * synth_free(). */
struct synth *synth_new(const struct synth_opts *opts);

/*
 * Generates the next batch's events into b->events (allocated from arena,
 * valid until arena_reset).  b->seq, ts and rank are left to the caller.
 * Returns 0, or -1 when out of memory.
 */
int synth_next(struct synth *s, struct arena *arena, struct kv_batch *b);

/* Frees the generator.  Accepts NULL. */
void synth_free(struct synth *s);

#endif
