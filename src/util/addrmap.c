#include <string.h>

#include "addrmap.h"
#include "mem.h"

void
mh_addrmap_init(struct mh_addrmap *m, size_t max_entries)
{
    memset(m, 0, sizeof(*m));
    m->max_entries = max_entries;
}

void
mh_addrmap_release(struct mh_addrmap *m)
{
    mh_free(m->slots);
    mh_addrmap_init(m, m->max_entries);
}

static int
grow(struct mh_addrmap *m)
{
    /* Small at first: the agent keeps a few of these, most of them
     * holding tens of entries, and counts their memory against the
     * target's (a 1024-slot start was 64 KB on a 13 MB process). */
    size_t size = m->size ? m->size * 2 : 64;
    struct mh_addrmap_slot *s = mh_calloc(size, sizeof(*s));
    if (!s)
        return MH_ENOMEM;
    for (size_t i = 0; i < m->size; i++) {
        if (!m->slots[i].key)
            continue;
        size_t j = mh_addrmap_hash(m->slots[i].key) & (size - 1);
        while (s[j].key)
            j = (j + 1) & (size - 1);
        s[j] = m->slots[i];
    }
    mh_free(m->slots);
    m->slots = s;
    m->size = size;
    return MH_OK;
}

int
mh_addrmap_put(struct mh_addrmap *m, uint64_t key, uint64_t value)
{
    if (!key)
        return MH_EINVAL;
    if (m->size) {
        size_t mask = m->size - 1;
        for (size_t j = mh_addrmap_hash(key) & mask; m->slots[j].key;
             j = (j + 1) & mask)
            if (m->slots[j].key == key) {
                m->slots[j].value = value;
                return MH_OK;
            }
    }
    if (m->count >= m->max_entries)
        return MH_ETOOBIG;
    /* Keep the load factor at most 1/2. */
    if ((m->count + 1) * 2 > m->size) {
        int rc = grow(m);
        if (rc)
            return rc;
    }
    size_t mask = m->size - 1;
    size_t j = mh_addrmap_hash(key) & mask;
    while (m->slots[j].key)
        j = (j + 1) & mask;
    m->slots[j].key = key;
    m->slots[j].value = value;
    m->count++;
    return MH_OK;
}

int
mh_addrmap_get(const struct mh_addrmap *m, uint64_t key, uint64_t *value)
{
    if (!m->size || !key)
        return 0;
    size_t mask = m->size - 1;
    for (size_t j = mh_addrmap_hash(key) & mask; m->slots[j].key;
         j = (j + 1) & mask)
        if (m->slots[j].key == key) {
            if (value)
                *value = m->slots[j].value;
            return 1;
        }
    return 0;
}

int
mh_addrmap_remove(struct mh_addrmap *m, uint64_t key, uint64_t *value)
{
    if (!m->size || !key)
        return 0;
    size_t mask = m->size - 1;
    size_t j = mh_addrmap_hash(key) & mask;
    while (m->slots[j].key != key) {
        if (!m->slots[j].key)
            return 0;
        j = (j + 1) & mask;
    }
    if (value)
        *value = m->slots[j].value;
    /* Backward-shift: pull later entries of the cluster into the hole when
     * their home slot does not lie strictly between the hole and them. */
    size_t hole = j;
    for (size_t k = (j + 1) & mask; m->slots[k].key; k = (k + 1) & mask) {
        size_t home = mh_addrmap_hash(m->slots[k].key) & mask;
        int movable = hole <= k ? (home <= hole || home > k)
                                : (home <= hole && home > k);
        if (movable) {
            m->slots[hole] = m->slots[k];
            hole = k;
        }
    }
    m->slots[hole].key = 0;
    m->slots[hole].value = 0;
    m->count--;
    return 1;
}
