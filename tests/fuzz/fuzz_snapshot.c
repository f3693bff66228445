/*
 * fuzz_snapshot.c - libFuzzer harness for the kvindex snapshot loader
 * (snapshot_load, docs/kvindex-snapshot.md#rules-for-readers), the code that
 * reads a file kvindex did not necessarily write: a `kvindex dump` edited by
 * hand, a file cut short, a file planted in a shared directory.
 *
 *   make fuzz FUZZ_SECONDS=60      (every harness; corpus in
 *                                   tests/fuzz/corpus/fuzz_snapshot)
 *
 * The input is the whole file.  The loader either refuses it or builds an
 * index; a built index is dumped, the dump loaded into a second index and
 * dumped again, and the two dumps must be the same bytes (a loaded
 * snapshot answers like the one that wrote it).  ASan/UBSan catch memory
 * errors; the comparison catches logic ones.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "buf.h"
#include "index.h"
#include "snapshot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct index_opts opts = {BLOCKKEY_AIBRIX, 0, "", "m", 0};

/*
 * Loads the bytes p[0..n) as a snapshot file into a new index and, when it
 * loads, dumps that index into out.  Returns 1 loaded, 0 refused.
 */
static int
load_and_dump(const void *p, size_t n, struct buf *out)
{
    char path[64], err[256];
    struct kv_index *ix = NULL;
    int fd = memfd_create("snapshot", 0), rc = 0;

    if (fd == -1 || (n > 0 && write(fd, p, n) != (ssize_t)n))
        abort();
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ix = index_new(&opts, err, sizeof err);
    if (ix == NULL)
        abort();
    rc = snapshot_load(ix, &opts, path, err, sizeof err);
    if (rc == 0)
        abort(); /* the file exists: "absent" would be a lie */
    if (rc == 1) {
        buf_clear(out);
        if (snapshot_dump(ix, &opts, NULL, 0, out, NULL, NULL) != 0)
            abort();
    }
    index_free(ix);
    close(fd);
    return rc == 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct buf first, second;

    if (!load_and_dump(data, size, &first))
        return 0;
    if (!load_and_dump(first.p, first.len, &second))
        abort();
    if (second.len != first.len || memcmp(second.p, first.p, first.len) != 0)
        abort();
    return 0;
}
