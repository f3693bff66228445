/*
 * blockkey.h - the chained block-key schemes of docs/kvindex.md.
 *
 * DRAFT: lib/blockkey.c owns this header and may extend it.
 */
#ifndef KVTAP_BLOCKKEY_H
#define KVTAP_BLOCKKEY_H

#include <stddef.h>
#include <stdint.h>

enum blockkey_scheme { BLOCKKEY_AIBRIX, BLOCKKEY_DYNAMO, BLOCKKEY_LLMD };

/* Parses "aibrix", "dynamo", "llmd"; -1 if unknown. */
int blockkey_scheme_parse(const char *s, enum blockkey_scheme *out);

#endif
