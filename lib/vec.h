/*
 * vec.h - growing a plain array by doubling, the one way every module
 * does it.  The caller owns the array and frees it with free().
 */
#ifndef KVTAP_VEC_H
#define KVTAP_VEC_H

#include <stddef.h>

/*
 * Makes *p hold at least need elements of size bytes, doubling *cap (from
 * 16) so that appends are amortized O(1).  Returns 0, or -1 when memory
 * ran out or the size would overflow (*p and *cap are then unchanged).
 */
int vec_grow(void **p, size_t *cap, size_t need, size_t size);

#endif
