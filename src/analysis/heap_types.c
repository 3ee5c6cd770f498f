/* Type names across heap dumps (heap_types.h). */
#include <string.h>

#include "../util/mem.h"
#include "heap_types.h"

void
mh_heap_types_init(struct mh_heap_types *t)
{
    memset(t, 0, sizeof(*t));
}

void
mh_heap_types_release(struct mh_heap_types *t)
{
    mh_free(t->names);
    mh_free(t->slots);
    mh_heap_types_init(t);
}

static size_t
str_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return (size_t)(h ^ h >> 29);
}

uint32_t
mh_heap_types_find(const struct mh_heap_types *t, const char *name)
{
    if (!t->bits)
        return UINT32_MAX;
    size_t mask = ((size_t)1 << t->bits) - 1;
    for (size_t i = str_hash(name) & mask;; i = (i + 1) & mask) {
        uint32_t g = t->slots[i];
        if (g == UINT32_MAX || !strcmp(t->names[g], name))
            return g;
    }
}

int
mh_heap_types_slots_reserve(uint32_t **slots, unsigned *bits,
                            unsigned first_bits, uint32_t n,
                            size_t (*hash)(const void *ctx, uint32_t i),
                            const void *ctx)
{
    if (*bits && (size_t)(n + 1) * 2 <= ((size_t)1 << *bits))
        return MH_OK;
    unsigned nbits = *bits ? *bits + 1 : first_bits;
    size_t size = (size_t)1 << nbits, mask = size - 1;
    uint32_t *s = mh_malloc(size * sizeof(uint32_t));
    if (!s)
        return MH_ENOMEM;
    memset(s, 0xff, size * sizeof(uint32_t));
    for (uint32_t i = 0; i < n; i++) {
        size_t h = hash(ctx, i) & mask;
        while (s[h] != UINT32_MAX)
            h = (h + 1) & mask;
        s[h] = i;
    }
    mh_free(*slots);
    *slots = s;
    *bits = nbits;
    return MH_OK;
}

static size_t
group_hash(const void *ctx, uint32_t g)
{
    const struct mh_heap_types *t = ctx;
    return str_hash(t->names[g]);
}

static int
intern(struct mh_heap_types *t, const char *name, uint32_t *out)
{
    uint32_t g = mh_heap_types_find(t, name);
    if (g != UINT32_MAX) {
        *out = g;
        return MH_OK;
    }
    if (t->n == t->cap) {
        uint32_t cap = t->cap ? t->cap * 2 : 64;
        const char **names = mh_realloc(t->names, cap * sizeof(*names));
        if (!names)
            return MH_ENOMEM;
        t->names = names;
        t->cap = cap;
    }
    int rc = mh_heap_types_slots_reserve(&t->slots, &t->bits, 8, t->n,
                                         group_hash, t);
    if (rc)
        return rc;
    size_t mask = ((size_t)1 << t->bits) - 1;
    size_t i = str_hash(name) & mask;
    while (t->slots[i] != UINT32_MAX)
        i = (i + 1) & mask;
    t->slots[i] = t->n;
    t->names[t->n] = name;
    *out = t->n++;
    return MH_OK;
}

int
mh_heap_types_add(struct mh_heap_types *t, const struct mh_heap_dump *d,
                  uint32_t **map)
{
    uint32_t *m =
        mh_malloc((size_t)(d->ntypes ? d->ntypes : 1) * sizeof(uint32_t));
    if (!m)
        return MH_ENOMEM;
    for (uint32_t i = 0; i < d->ntypes; i++) {
        const char *name = i ? mh_heap_str(d, d->types[i].name) : "?";
        if (!*name)
            name = "?";
        int rc = intern(t, name, &m[i]);
        if (rc) {
            mh_free(m);
            return rc;
        }
    }
    *map = m;
    return MH_OK;
}
