/*
 * vec.c - see vec.h.
 */
#include "vec.h"

#include <stdint.h>
#include <stdlib.h>

int
vec_grow(void **p, size_t *cap, size_t need, size_t size)
{
    size_t ncap = *cap ? *cap : 16;
    void *np;

    if (need <= *cap)
        return 0;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2)
            return -1;
        ncap *= 2;
    }
    if (ncap > SIZE_MAX / size || (np = realloc(*p, ncap * size)) == NULL)
        return -1;
    *p = np;
    *cap = ncap;
    return 0;
}
