/*
 * test_vec.c - lib/vec: the one array-growing helper (kvproto, kvpub's
 * input, kvstat).
 */
#include <stdint.h>
#include <stdlib.h>

#include "unit.h"
#include "vec.h"

int
main(void)
{
    int *a = NULL;
    size_t cap = 0;

    CHECK(vec_grow((void **)&a, &cap, 0, sizeof *a) == 0 && a == NULL &&
              cap == 0,
          "need 0: nothing allocated");
    CHECK(vec_grow((void **)&a, &cap, 1, sizeof *a) == 0 && a != NULL &&
              cap == 16,
          "the first growth holds 16");
    int *first = a;
    CHECK(vec_grow((void **)&a, &cap, 16, sizeof *a) == 0 && a == first &&
              cap == 16,
          "enough room: unchanged");
    CHECK(vec_grow((void **)&a, &cap, 17, sizeof *a) == 0 && cap == 32,
          "one past: doubles");
    CHECK(vec_grow((void **)&a, &cap, 1000, sizeof *a) == 0 && cap == 1024,
          "far past: doubles until it fits");
    a[999] = 7;
    int *kept = a;
    CHECK(vec_grow((void **)&a, &cap, SIZE_MAX / 2, sizeof *a) == -1 &&
              a == kept && cap == 1024 && a[999] == 7,
          "an overflowing size is refused and changes nothing");
    free(a);
    return unit_done();
}
