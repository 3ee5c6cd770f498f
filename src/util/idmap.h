/* Maps the ids a file gives its entries (nonzero, sparse, 64-bit) to
 * dense indices (nonzero 32-bit): open addressing with linear probing,
 * key 0 marking an empty slot, kept at most half full. Ids are only ever
 * added (a reader's tables do not shrink), so there is no removal. The
 * slots are charged to a budget. A zeroed struct is an empty map. */
#ifndef MH_IDMAP_H
#define MH_IDMAP_H

#include <stddef.h>
#include <stdint.h>

#include "budget.h"
#include "msg.h"

struct mh_idmap {
    uint64_t *keys;
    uint32_t *vals;
    unsigned bits; /* 1 << bits slots; 0 = nothing allocated */
    uint32_t count;
};

/* The slot of `key` in a table of 1 << bits slots (bits >= 1): Fibonacci
 * hashing, so sequential keys spread. */
static inline size_t
mh_idmap_slot(uint64_t key, unsigned bits)
{
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> (64 - bits));
}

/* The index of `key`, or 0 when it is not in the map. Inline: the
 * capture reader looks up a stack for every ALLOC record. */
static inline uint32_t
mh_idmap_get(const struct mh_idmap *m, uint64_t key)
{
    if (!m->bits || key == 0)
        return 0;
    size_t mask = ((size_t)1 << m->bits) - 1;
    for (size_t i = mh_idmap_slot(key, m->bits);; i = (i + 1) & mask) {
        if (m->keys[i] == key)
            return m->vals[i];
        if (m->keys[i] == 0)
            return 0;
    }
}

/* Adds key -> val; the caller has checked that key is new and nonzero.
 * Growing the table charges its extra bytes to `b`: MH_ETOOBIG past it,
 * MH_ENOMEM; either leaves the map and the budget as they were. */
int mh_idmap_put(struct mh_idmap *m, struct mh_budget *b, uint64_t key,
                 uint32_t val) MH_MUST_USE;

/* Frees the slots (the budget is not credited: the reader that charged
 * it is going away) and leaves an empty map. */
void mh_idmap_release(struct mh_idmap *m);

#endif
