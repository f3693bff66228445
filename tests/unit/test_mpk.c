/*
 * test_mpk.c - the msgpack cursor against msgpack-c, the independent peer:
 * on the same bytes both must agree on whether one object is there and
 * how many bytes it takes, and on the scalars it holds.
 */
#include <msgpack.h>
#include <stdlib.h>

#include "mpk.h"
#include "unit.h"

/* A few bytes that start with a header, so that many parse. */
static size_t
random_payload(uint8_t *p, size_t cap, unsigned *seed)
{
    static const uint8_t heads[] = {
        0x00, 0x7f, 0x80, 0x81, 0x90, 0x92, 0xa0, 0xa3, 0xc0, 0xc2, 0xc3, 0xc4,
        0xc5, 0xc7, 0xc8, 0xca, 0xcb, 0xcc, 0xcd, 0xce, 0xcf, 0xd0, 0xd1, 0xd2,
        0xd3, 0xd4, 0xd8, 0xd9, 0xda, 0xdc, 0xde, 0xe0, 0xff, 0xc1};
    size_t n = 1 + (size_t)rand_r(seed) % cap;
    for (size_t k = 0; k < n; k++)
        p[k] = rand_r(seed) % 3 == 0
                   ? heads[(size_t)rand_r(seed) % sizeof heads]
                   : (uint8_t)(rand_r(seed) % 4);
    p[0] = heads[(size_t)rand_r(seed) % sizeof heads];
    return n;
}

static void
test_against_msgpack_c(void)
{
    unsigned seed = 12345;
    uint8_t buf[40];
    int agree = 1, parsed = 0;
    msgpack_unpacked u;

    msgpack_unpacked_init(&u);
    for (int round = 0; round < 200000; round++) {
        size_t n = random_payload(buf, sizeof buf, &seed);
        size_t off = 0;
        int theirs = msgpack_unpack_next(&u, (const char *)buf, n, &off);
        struct mpk c;
        mpk_init(&c, buf, n);
        int ours = mpk_skip(&c);
        int ok_theirs = theirs == MSGPACK_UNPACK_SUCCESS;
        if (ok_theirs != (ours == MPK_OK) ||
            (ok_theirs && off != (size_t)(c.p - buf))) {
            agree = 0;
            printf("#   round %d: msgpack-c %d (%zu), mpk %d (%zu)\n", round,
                   theirs, off, ours, (size_t)(c.p - buf));
            break;
        }
        parsed += ok_theirs;
        if (!ok_theirs)
            continue;
        /* Scalars: the same value. */
        struct mpk_val v;
        mpk_init(&c, buf, n);
        if (mpk_next(&c, &v) != MPK_OK) {
            agree = 0;
            break;
        }
        const msgpack_object *o = &u.data;
        switch (o->type) {
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
            agree &= v.type == MPK_UINT && v.v.u == o->via.u64;
            break;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
            agree &= v.type == MPK_INT && v.v.i == o->via.i64;
            break;
        case MSGPACK_OBJECT_STR:
            agree &= v.type == MPK_STR && v.n == o->via.str.size;
            break;
        case MSGPACK_OBJECT_BIN:
            agree &= v.type == MPK_BIN && v.n == o->via.bin.size;
            break;
        case MSGPACK_OBJECT_EXT:
            agree &= v.type == MPK_EXT && v.n == o->via.ext.size &&
                     v.ext_type == o->via.ext.type;
            break;
        case MSGPACK_OBJECT_ARRAY:
            agree &= v.type == MPK_ARRAY && v.n == o->via.array.size;
            break;
        case MSGPACK_OBJECT_MAP:
            agree &= v.type == MPK_MAP && v.n == o->via.map.size;
            break;
        default:
            break;
        }
        if (!agree) {
            printf("#   round %d: values differ (type %d)\n", round,
                   (int)o->type);
            break;
        }
    }
    msgpack_unpacked_destroy(&u);
    CHECK(agree, "mpk agrees with msgpack-c on 200000 random payloads");
    CHECK(parsed > 10000, "many of them are whole objects");
    printf("#   %d whole objects\n", parsed);
}

int
main(void)
{
    test_against_msgpack_c();
    return unit_done();
}
