/*
 * test_event.c - the field list (lib/fields.def) and the tables and the
 * name lookup that come from it; the batch arena's trim.
 *
 * Expected names, order and required sets are written by hand from
 * docs/ndjson.md#engine-events, not taken from the list under test.
 * kv_bytes_eq is checked against memcmp.
 */
#include "event.h"
#include "unit.h"

static const char *const want_names[] = {
    "block_hashes",
    "parent_block_hash",
    "token_ids",
    "block_size",
    "lora_id",
    "medium",
    "lora_name",
    "extra_keys",
    "group_idx",
    "kv_cache_spec_kind",
    "kv_cache_spec_sliding_window",
    "locality",
    "ownership",
    "cache_salt",
    "session_id",
    "mm_keys",
    "object_key",
    "token_offset",
    "from_medium",
    "to_medium",
    "remaining_copy_counts",
    "origin",
    "skipped_parent_block_hash",
    "skipped_token_ids",
    "skipped_extra_keys",
};

static void
test_names(void)
{
    enum kv_field f;
    int order_ok = 1, parse_ok = 1;

    CHECK_U64(KV_F_COUNT, sizeof want_names / sizeof want_names[0],
              "every engine field named");
    for (int k = 0; k < KV_F_COUNT; k++) {
        order_ok &= strcmp(kv_fields[k].name, want_names[k]) == 0;
        parse_ok &=
            kv_field_parse(want_names[k], strlen(want_names[k]), &f) == 0 &&
            (int)f == k;
    }
    CHECK(order_ok, "names in docs/ndjson.md order");
    CHECK(parse_ok, "every name parses to its field");
    CHECK(kv_fields[KV_F_BLOCK_HASHES].kind == KV_K_HASHES &&
              kv_fields[KV_F_PARENT_BLOCK_HASH].kind == KV_K_HASH &&
              kv_fields[KV_F_TOKEN_IDS].kind == KV_K_TOKENS &&
              kv_fields[KV_F_LORA_ID].kind == KV_K_INT &&
              kv_fields[KV_F_MEDIUM].kind == KV_K_STR &&
              kv_fields[KV_F_EXTRA_KEYS].kind == KV_K_RAW,
          "kinds");

    static const struct {
        const char *s;
        size_t n;
    } bad[] = {
        {"", 0},
        {"medium", 5},      /* a prefix */
        {"mediums", 7},     /* one byte more */
        {"Medium", 6},      /* case matters */
        {"mediun", 6},      /* last byte differs */
        {"token_idz", 9},   /* same length as four names */
        {"block_sizE", 10}, /* same length as four names */
        {"medium\0", 7},    /* a NUL after a name */
        {"lora_id\0x", 9},  /* a NUL, then the length of token_ids */
        {"kv_cache_spec_sliding_windoW", 28},
        {"xv_cache_spec_sliding_window", 28},
        {"kv_cache_spec_sliding_window_", 29},
        {"a_name_longer_than_any_field_name_at_all", 40},
    };
    int bad_ok = 1;
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        if (kv_field_parse(bad[k].s, bad[k].n, &f) != -1) {
            bad_ok = 0;
            printf("#   %.*s parsed\n", (int)bad[k].n, bad[k].s);
        }
    }
    CHECK(bad_ok, "near misses are not fields");

    /* The key is read only within its n bytes. */
    char key[16];
    memcpy(key, "group_idxJUNK", 13);
    CHECK(kv_field_parse(key, 9, &f) == 0 && f == KV_F_GROUP_IDX,
          "a key inside a longer buffer");
}

static void
test_required(void)
{
    CHECK_U64(kv_required_fields(KV_BLOCK_STORED),
              KV_BIT(KV_F_BLOCK_HASHES) | KV_BIT(KV_F_PARENT_BLOCK_HASH) |
                  KV_BIT(KV_F_TOKEN_IDS) | KV_BIT(KV_F_BLOCK_SIZE) |
                  KV_BIT(KV_F_LORA_ID) | KV_BIT(KV_F_MEDIUM),
              "BlockStored requires six fields");
    CHECK_U64(kv_required_fields(KV_BLOCK_REMOVED),
              KV_BIT(KV_F_BLOCK_HASHES) | KV_BIT(KV_F_MEDIUM),
              "BlockRemoved requires hashes and medium");
    CHECK_U64(kv_required_fields(KV_ALL_BLOCKS_CLEARED), 0,
              "AllBlocksCleared requires nothing");
    CHECK_U64(kv_required_fields(KV_GAP), 0, "records require nothing");
}

/*
 * arena_trim gives the end of the newest allocation back, so the next one
 * starts right after what was kept, and leaves an older one alone.
 */
static void
test_arena_trim(void)
{
    struct arena a = {0};
    const size_t align = sizeof(max_align_t);
    const size_t kept = (100 + align - 1) / align * align;
    char *p = arena_alloc(&a, 1000);
    size_t used = a.used_total;

    arena_trim(&a, p, 1000, 100);
    CHECK_U64(a.used_total, used - (1000 + align - 1) / align * align + kept,
              "arena_trim: the kept bytes, rounded up, stay counted");
    char *q = arena_alloc(&a, 16);
    CHECK(q == p + kept,
          "arena_trim: the next allocation follows the kept bytes");
    char *r = arena_alloc(&a, 64);
    arena_trim(&a, q, 16, 0);
    char *s = arena_alloc(&a, 64);
    CHECK(s == r + 64, "arena_trim: an older allocation is left alone");
    /* Trimmed to nothing it keeps what arena_alloc(0) would give. */
    arena_trim(&a, s, 64, 0);
    CHECK(arena_alloc(&a, 1) == s + align,
          "arena_trim to nothing keeps one aligned unit");
    arena_free(&a);
}

/*
 * kv_bytes_eq at every length it treats apart (0 to 3, 4 to 7, 8 to 16,
 * 17 to 24, longer), at unaligned addresses: equal bytes compare equal,
 * and a change of any one byte, first, middle or last, is seen.
 */
static void
test_bytes_eq(void)
{
    char a[64], b[64];

    for (size_t i = 0; i < sizeof a; i++)
        a[i] = (char)(i * 37 + 11);
    for (size_t n = 0; n <= 40; n++) {
        char *x = a + 1, *y = b + 3;
        int wrong = 0;

        memcpy(y, x, n);
        wrong += !kv_bytes_eq(x, y, n);
        for (size_t k = 0; k < n; k++) {
            y[k] ^= (char)(1 << (k % 8));
            wrong += kv_bytes_eq(x, y, n) != (memcmp(x, y, n) == 0);
            wrong += kv_bytes_eq(x, y, n);
            y[k] = x[k];
        }
        CHECK(wrong == 0, "kv_bytes_eq agrees with memcmp at this length");
    }
    CHECK(kv_str_eq((struct kv_str){"GPU", 3}, "GPU"), "kv_str_eq: equal");
    CHECK(!kv_str_eq((struct kv_str){"GPU", 2}, "GPU"),
          "kv_str_eq: a prefix is not equal");
    CHECK(kv_str_eq((struct kv_str){NULL, 0}, ""), "kv_str_eq: empty");
}

int
main(void)
{
    test_names();
    test_required();
    test_arena_trim();
    test_bytes_eq();
    return unit_done();
}
