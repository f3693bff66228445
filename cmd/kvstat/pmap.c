/*
 * pmap.c - see pmap.h.
 */
#include "pmap.h"

#include <stdlib.h>
#include <string.h>

/*
 * Engine hashes and block keys are already uniform, but small test hashes
 * (1, 2, 3) are not: a multiply-xorshift spreads both.
 */
static size_t
slot_of(const struct pmap *m, uint64_t a, uint32_t b)
{
    uint64_t h = (a ^ ((uint64_t)b << 48 | b)) * 0x9e3779b97f4a7c15ull;

    h ^= h >> 29;
    return (size_t)h & (m->cap - 1);
}

uint32_t *
pmap_get(const struct pmap *m, uint64_t a, uint32_t b)
{
    if (m->cap == 0)
        return NULL;
    for (size_t i = slot_of(m, a, b);; i = (i + 1) & (m->cap - 1)) {
        struct pmap_slot *s = &m->s[i];

        if (s->tag == 0)
            return NULL;
        if (s->a == a && s->tag == b + 1)
            return &s->v;
    }
}

static int
grow(struct pmap *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 64;
    struct pmap_slot *old = m->s, *ns = calloc(ncap, sizeof *ns);
    size_t ocap = m->cap;

    if (ns == NULL)
        return -1;
    m->s = ns;
    m->cap = ncap;
    for (size_t i = 0; i < ocap; i++) {
        if (old[i].tag == 0)
            continue;
        size_t j = slot_of(m, old[i].a, old[i].tag - 1);

        while (ns[j].tag != 0)
            j = (j + 1) & (ncap - 1);
        ns[j] = old[i];
    }
    free(old);
    return 0;
}

uint32_t *
pmap_put(struct pmap *m, uint64_t a, uint32_t b, int *created)
{
    *created = 0;
    /* Keep the load under 3/4: linear probes stay short. */
    if ((m->n + 1) * 4 > m->cap * 3 && grow(m) == -1)
        return NULL;
    size_t i = slot_of(m, a, b);

    for (;; i = (i + 1) & (m->cap - 1)) {
        struct pmap_slot *s = &m->s[i];

        if (s->tag == 0) {
            s->tag = b + 1;
            s->a = a;
            s->v = 0;
            m->n++;
            *created = 1;
            return &s->v;
        }
        if (s->a == a && s->tag == b + 1)
            return &s->v;
    }
}

int
pmap_del(struct pmap *m, uint64_t a, uint32_t b)
{
    size_t mask = m->cap - 1, i, j;

    if (m->cap == 0)
        return 0;
    for (i = slot_of(m, a, b);; i = (i + 1) & mask) {
        if (m->s[i].tag == 0)
            return 0;
        if (m->s[i].a == a && m->s[i].tag == b + 1)
            break;
    }
    /*
     * Backward shift: move later members of the probe run into the hole
     * when their home slot does not lie between the hole and them.
     */
    for (j = (i + 1) & mask; m->s[j].tag != 0; j = (j + 1) & mask) {
        size_t home = slot_of(m, m->s[j].a, m->s[j].tag - 1);

        if (((j - home) & mask) >= ((j - i) & mask)) {
            m->s[i] = m->s[j];
            i = j;
        }
    }
    m->s[i].tag = 0;
    m->n--;
    return 1;
}

void
pmap_prefetch(const struct pmap *m, uint64_t a, uint32_t b)
{
    if (m->cap != 0)
        __builtin_prefetch(&m->s[slot_of(m, a, b)], 1);
}

void
pmap_clear(struct pmap *m)
{
    if (m->cap != 0)
        memset(m->s, 0, m->cap * sizeof *m->s);
    m->n = 0;
}

void
pmap_free(struct pmap *m)
{
    if (m == NULL)
        return;
    free(m->s);
    m->s = NULL;
    m->cap = m->n = 0;
}
