/*
 * fuzz_wire.c - libFuzzer harness for wire_decode (and what follows it on
 * kvsub's path and kvpub's).
 *
 *   make fuzz FUZZ_SECONDS=120     (every harness; corpus in
 *                                   build/fuzz/corpus/fuzz_wire)
 *
 * Every input is decoded under both engines' array layouts; a batch that
 * decodes is written as NDJSON and re-encoded in every layout, and each
 * re-encoded payload must decode again (the encoder only emits what the
 * decoder accepts).  ASan/UBSan catch the memory errors; the checks below
 * catch the logic ones.
 */
#include <stdint.h>
#include <stdlib.h>

#include "buf.h"
#include "event.h"
#include "ndjson_write.h"
#include "wire.h"
#include "wire_encode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct arena a, a2;
    static struct buf out, enc;
    const struct ndjson_source src = {{"fuzz", 4}, {NULL, 0}, {NULL, 0}};
    char err[256];

    for (int engine = 0; engine < 2; engine++) {
        struct wire_opts opts = {0};
        struct kv_batch b = {0};

        opts.engine = engine ? KV_ENGINE_SGLANG : KV_ENGINE_VLLM;
        /* Small caps too, so the cap paths are reached. */
        opts.max_tokens = size & 1 ? 8 : 0;
        opts.max_events = size & 2 ? 4 : 0;
        arena_reset(&a);
        if (wire_decode(data, size, &opts, &a, &b, err, sizeof err) != 0)
            continue;
        buf_clear(&out);
        ndjson_write_batch(&out, &src, &b);
        for (int layout = 0; layout < 4; layout++) {
            struct wire_enc_opts eo = {(enum wire_layout)layout, layout & 1};
            struct kv_batch b2 = {0};
            struct wire_opts o2 = {0};

            o2.engine = layout == WIRE_LAYOUT_SGLANG ? KV_ENGINE_SGLANG
                                                     : KV_ENGINE_VLLM;
            buf_clear(&enc);
            if (wire_encode(&b, &eo, &enc, err, sizeof err) != 0)
                abort();
            arena_reset(&a2);
            if (wire_decode((const uint8_t *)enc.p, enc.len, &o2, &a2, &b2, err,
                            sizeof err) != 0)
                abort();
        }
    }
    return 0;
}
