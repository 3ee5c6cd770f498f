/* The replay's live-block table; see blockmap.h for why it is not
 * util/addrmap. */
#include <string.h>

#include "mem.h"
#include "blockmap.h"

#define MIN_SIZE 1024

/* Fibonacci hashing: the multiply spreads the aligned, often sequential
 * addresses of an allocator over the top bits, which index the table. */
static inline size_t
home(const struct mh_blockmap *t, uint64_t key)
{
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & (t->size - 1);
}

void
mh_blockmap_init(struct mh_blockmap *t, size_t max_entries)
{
    memset(t, 0, sizeof(*t));
    t->max_entries = max_entries;
}

void
mh_blockmap_release(struct mh_blockmap *t)
{
    mh_free(t->slots);
    mh_blockmap_init(t, t->max_entries);
}

/* home() indexes with the product's top 32 bits, so 2^32 slots at most
 * (far past any cap the report sets). */
static int
resize(struct mh_blockmap *t, size_t size)
{
    if (size > ((size_t)1 << 32))
        return MH_ETOOBIG;
    struct mh_blockmap_slot *s = mh_calloc(size, sizeof(*s));
    if (!s)
        return MH_ENOMEM;
    struct mh_blockmap_slot *old = t->slots;
    size_t old_size = t->size;
    t->slots = s;
    t->size = size;
    for (size_t i = 0; i < old_size; i++) {
        if (!old[i].key)
            continue;
        size_t j = home(t, old[i].key);
        while (s[j].key)
            j = (j + 1) & (size - 1);
        s[j] = old[i];
    }
    mh_free(old);
    return MH_OK;
}

static int
grow(struct mh_blockmap *t)
{
    return resize(t, t->size ? t->size * 2 : MIN_SIZE);
}

int
mh_blockmap_reserve(struct mh_blockmap *t, size_t n)
{
    if (n > t->max_entries)
        n = t->max_entries;
    size_t size = t->size ? t->size : MIN_SIZE;
    while (size < ((size_t)1 << 32) && n * 4 > size * 3)
        size *= 2;
    return size > t->size ? resize(t, size) : MH_OK;
}

int
mh_blockmap_put(struct mh_blockmap *t, uint64_t key, uint64_t value,
                uint64_t *old, int *had)
{
    *had = 0;
    if (key == 0) {
        if (t->has_zero) {
            *old = t->zero_value;
            *had = 1;
        } else if (mh_blockmap_len(t) >= t->max_entries) {
            return MH_ETOOBIG;
        }
        t->has_zero = 1;
        t->zero_value = value;
        return MH_OK;
    }
    size_t j = 0;
    if (t->size) {
        size_t mask = t->size - 1;
        for (j = home(t, key); t->slots[j].key; j = (j + 1) & mask)
            if (t->slots[j].key == key) {
                *old = t->slots[j].value;
                *had = 1;
                t->slots[j].value = value;
                return MH_OK;
            }
    }
    if (mh_blockmap_len(t) >= t->max_entries)
        return MH_ETOOBIG;
    if (t->size == 0 || (t->count + 1) * 4 > t->size * 3) {
        int rc = grow(t);
        if (rc)
            return rc;
        j = home(t, key);
        while (t->slots[j].key)
            j = (j + 1) & (t->size - 1);
    }
    t->slots[j].key = key;
    t->slots[j].value = value;
    t->count++;
    return MH_OK;
}

int
mh_blockmap_get(const struct mh_blockmap *t, uint64_t key, uint64_t *value)
{
    if (key == 0) {
        if (t->has_zero && value)
            *value = t->zero_value;
        return t->has_zero;
    }
    if (!t->size)
        return 0;
    size_t mask = t->size - 1;
    for (size_t j = home(t, key); t->slots[j].key; j = (j + 1) & mask)
        if (t->slots[j].key == key) {
            if (value)
                *value = t->slots[j].value;
            return 1;
        }
    return 0;
}

int
mh_blockmap_take(struct mh_blockmap *t, uint64_t key, uint64_t *value)
{
    if (key == 0) {
        if (!t->has_zero)
            return 0;
        if (value)
            *value = t->zero_value;
        t->has_zero = 0;
        return 1;
    }
    if (!t->size)
        return 0;
    size_t mask = t->size - 1;
    size_t j = home(t, key);
    while (t->slots[j].key != key) {
        if (!t->slots[j].key)
            return 0;
        j = (j + 1) & mask;
    }
    if (value)
        *value = t->slots[j].value;
    /* Backward shift: move later members of the cluster into the hole
     * unless their home lies cyclically in (hole, k]. */
    size_t hole = j;
    for (size_t k = (j + 1) & mask; t->slots[k].key; k = (k + 1) & mask) {
        size_t h = home(t, t->slots[k].key);
        int stays = hole <= k ? (h > hole && h <= k) : (h > hole || h <= k);
        if (!stays) {
            t->slots[hole] = t->slots[k];
            hole = k;
        }
    }
    t->slots[hole].key = 0;
    t->slots[hole].value = 0;
    t->count--;
    return 1;
}

int
mh_blockmap_next(const struct mh_blockmap *t, size_t *pos, uint64_t *key,
                 uint64_t *value)
{
    /* Position 0 is the zero key; slot i is position i + 1. */
    if (*pos == 0) {
        *pos = 1;
        if (t->has_zero) {
            *key = 0;
            *value = t->zero_value;
            return 1;
        }
    }
    for (size_t i = *pos - 1; i < t->size; i++)
        if (t->slots[i].key) {
            *key = t->slots[i].key;
            *value = t->slots[i].value;
            *pos = i + 2;
            return 1;
        }
    *pos = t->size + 1;
    return 0;
}
