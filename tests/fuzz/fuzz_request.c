/*
 * fuzz_request.c - libFuzzer harness for kvindex's request parser and
 * replies (lib/kvproto.c), against a small index with two pods.
 *
 *   clang -fsanitize=fuzzer,address,undefined -Ilib -DKVTAP_VERSION='"x"' \
 *       -D_GNU_SOURCE tests/fuzz/fuzz_request.c lib/[a-z]*.c $(pkg-config
 * --libs \ libzmq msgpack-c jansson libxxhash) -lm -o build/fuzz/fuzz_request
 *   build/fuzz/fuzz_request -max_total_time=60 build/fuzz/corpus-request
 *
 * Every input is one request line.  Whatever it holds, the answer must be
 * exactly one line, a JSON object that a strict parser (jansson) accepts,
 * with "ok" true or false (and an "error" string when false).  ASan/UBSan catch
 * the memory errors; the checks below catch the logic ones.  The index is built
 * anew for every input, so that a "clear" cannot change what later inputs see.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "index.h"
#include "kvproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct index_opts opts = {BLOCKKEY_AIBRIX, 0, "", "m", 0};

static struct kv_index *
build_index(void)
{
    static const char *const pods[] = {"pod-a", "pod-b"};
    struct kv_str model = {"m", 1}, lora = {"", 0};
    char err[128];
    struct kv_index *ix = index_new(&opts, err, sizeof err);

    if (ix == NULL || index_restore_ns(ix, model, lora, 4, err, sizeof err))
        abort();
    for (int p = 0; p < 2; p++) {
        for (uint64_t k = 1; k <= 3; k++) {
            struct index_dump_entry e = {pods[p], p,       p, "m", "",
                                         4,       100 + k, k, 1};
            if (index_restore_entry(ix, &e, err, sizeof err) < 0)
                abort();
        }
    }
    return ix;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct buf out;
    struct kv_index *ix = build_index();
    struct kvproto p;
    json_error_t jerr;
    json_t *reply, *ok;

    /* The server splits its input at '\n' (cmd/kvindex): a request never
     * holds one, and an echoed id with one would break the reply line. */
    const uint8_t *nl = memchr(data, '\n', size);
    if (nl != NULL)
        size = (size_t)(nl - data);
    kvproto_init(&p, ix, &opts, NULL, NULL);
    buf_clear(&out);
    kvproto_handle(&p, (const char *)data, size, &out);
    if (out.oom || out.len == 0 || out.p[out.len - 1] != '\n' ||
        memchr(out.p, '\n', out.len - 1) != NULL)
        abort(); /* not exactly one line */
    /* Integers past 64 bits, exponents past a double's range and \u0000
     * are all JSON: only jansson refuses them (an echoed id can hold
     * them). */
    reply = json_loadb(out.p, out.len - 1,
                       JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL, &jerr);
    if (reply == NULL && strstr(jerr.text, "overflow") != NULL)
        goto done;
    if (reply == NULL || !json_is_object(reply))
        abort(); /* not JSON a strict reader accepts */
    ok = json_object_get(reply, "ok");
    if (!json_is_boolean(ok) ||
        (json_is_false(ok) && !json_is_string(json_object_get(reply, "error"))))
        abort();
    json_decref(reply);
done:
    kvproto_free(&p);
    index_free(ix);
    return 0;
}
