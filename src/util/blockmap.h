/* The report's table of live blocks: address -> packed (stack, size).
 *
 * Open addressing with linear probing and backward-shift deletion (no
 * tombstones), like util/addrmap.h, but tuned for the replay instead of
 * the agent's hot path: it holds tens of millions of entries, so it runs
 * at a load of up to 3/4 (16 bytes a slot, about 21 bytes a live block),
 * inserts and returns the value it replaced in one probe sequence, and
 * can be walked. Address 0 is kept aside, so every key is valid. */
#ifndef MH_BLOCKMAP_H
#define MH_BLOCKMAP_H

#include <stddef.h>
#include <stdint.h>

#include "msg.h"

struct mh_blockmap_slot {
    uint64_t key; /* 0 = empty */
    uint64_t value;
};

struct mh_blockmap {
    struct mh_blockmap_slot *slots; /* owned */
    size_t size;                    /* power of two, or 0 */
    size_t count;                   /* entries in slots */
    size_t max_entries;
    int has_zero; /* key 0 is live; its value is zero_value */
    uint64_t zero_value;
};

/* Sets up an empty table that refuses to hold more than `max_entries`. */
void mh_blockmap_init(struct mh_blockmap *t, size_t max_entries);
/* Frees the slots; the table is empty and reusable afterwards. */
void mh_blockmap_release(struct mh_blockmap *t);

/* Inserts key -> value. When the key was already there, its value is
 * replaced, *old receives the previous one and *had is set to 1 (else
 * 0). MH_ETOOBIG past max_entries, MH_ENOMEM. */
int mh_blockmap_put(struct mh_blockmap *t, uint64_t key, uint64_t value,
                    uint64_t *old, int *had) MH_MUST_USE;
/* Makes room for `n` entries (at most max_entries) without growing
 * again, so a table whose size is known up front is allocated once
 * rather than at every doubling. MH_ENOMEM (the table is unchanged). */
int mh_blockmap_reserve(struct mh_blockmap *t, size_t n) MH_MUST_USE;
/* Removes the key; returns 1 and stores its value in *value (when not
 * NULL) if it was there, 0 if not. */
int mh_blockmap_take(struct mh_blockmap *t, uint64_t key, uint64_t *value);
/* Returns 1 and the value if the key is there. */
int mh_blockmap_get(const struct mh_blockmap *t, uint64_t key,
                    uint64_t *value);

static inline size_t
mh_blockmap_len(const struct mh_blockmap *t)
{
    return t->count + (t->has_zero ? 1 : 0);
}

/* Walks the entries in no particular order: start with *pos = 0; returns
 * 0 when there are no more. The table must not change during the walk. */
int mh_blockmap_next(const struct mh_blockmap *t, size_t *pos, uint64_t *key,
                     uint64_t *value);

#endif
