/* An open-addressing map from a non-zero 64-bit key (an address) to a
 * 64-bit value: linear probing with backward-shift deletion, so there
 * are no tombstones and lookups stay short under churn. Memory from
 * mh_malloc(); `max_entries` bounds it. Not thread-safe. */
#ifndef MH_ADDRMAP_H
#define MH_ADDRMAP_H

#include <stddef.h>
#include <stdint.h>

#include "msg.h"

struct mh_addrmap_slot {
    uint64_t key; /* 0 = empty */
    uint64_t value;
};

struct mh_addrmap {
    struct mh_addrmap_slot *slots;
    size_t size; /* power of two, or 0 */
    size_t count;
    size_t max_entries;
};

void mh_addrmap_init(struct mh_addrmap *m, size_t max_entries);
void mh_addrmap_release(struct mh_addrmap *m);
/* Inserts or replaces; MH_ETOOBIG past max_entries, MH_ENOMEM. */
int mh_addrmap_put(struct mh_addrmap *m, uint64_t key,
                   uint64_t value) MH_MUST_USE;
/* Returns 1 and stores the value (when `value` is not NULL) if found. */
int mh_addrmap_get(const struct mh_addrmap *m, uint64_t key, uint64_t *value);
/* Removes the key; returns 1 and its value if it was there. */
int mh_addrmap_remove(struct mh_addrmap *m, uint64_t key, uint64_t *value);

static inline size_t
mh_addrmap_hash(uint64_t key)
{
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdull;
    key ^= key >> 33;
    return (size_t)key;
}

#endif
