/*
 * vec.h - growing the plain arrays kvstat keeps.  The caller owns the
 * array and frees it with free().
 */
#ifndef KVSTAT_VEC_H
#define KVSTAT_VEC_H

#include <stddef.h>

/*
 * Makes *p hold at least need elements of size bytes, doubling *cap (from
 * 16) so that appends are amortized O(1).  Returns 0, or -1 when memory
 * ran out or the size would overflow (*p and *cap are then unchanged).
 */
int vec_grow(void **p, size_t *cap, size_t need, size_t size);

#endif
