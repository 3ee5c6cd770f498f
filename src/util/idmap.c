/* Id -> index maps for the format readers (idmap.h). */
#include <string.h>

#include "idmap.h"
#include "mem.h"

static void
place(uint64_t *keys, uint32_t *vals, unsigned bits, uint64_t key,
      uint32_t val)
{
    size_t mask = ((size_t)1 << bits) - 1;
    size_t i = mh_idmap_slot(key, bits);
    while (keys[i])
        i = (i + 1) & mask;
    keys[i] = key;
    vals[i] = val;
}

int
mh_idmap_put(struct mh_idmap *m, struct mh_budget *b, uint64_t key,
             uint32_t val)
{
    if (!m->bits || (size_t)(m->count + 1) * 2 > ((size_t)1 << m->bits)) {
        unsigned bits = m->bits ? m->bits + 1 : 6;
        size_t slots = (size_t)1 << bits;
        size_t per = sizeof(uint64_t) + sizeof(uint32_t);
        size_t old = m->bits ? ((size_t)1 << m->bits) * per : 0;
        if (mh_budget_charge(b, slots * per - old))
            return MH_ETOOBIG;
        uint64_t *keys = mh_calloc(slots, sizeof(uint64_t));
        uint32_t *vals = mh_malloc(slots * sizeof(uint32_t));
        if (!keys || !vals) {
            mh_free(keys);
            mh_free(vals);
            *b->used -= slots * per - old;
            return MH_ENOMEM;
        }
        for (size_t i = 0; m->bits && i < ((size_t)1 << m->bits); i++)
            if (m->keys[i])
                place(keys, vals, bits, m->keys[i], m->vals[i]);
        mh_free(m->keys);
        mh_free(m->vals);
        m->keys = keys;
        m->vals = vals;
        m->bits = bits;
    }
    place(m->keys, m->vals, m->bits, key, val);
    m->count++;
    return MH_OK;
}

void
mh_idmap_release(struct mh_idmap *m)
{
    mh_free(m->keys);
    mh_free(m->vals);
    memset(m, 0, sizeof(*m));
}
