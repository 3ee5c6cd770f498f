#include <string.h>

#include "../util/mem.h"
#include "stacks.h"

/* Arena blocks start small and double: a process that samples few
 * stacks holds kilobytes, not a megabyte. */
#define BLOCK_MIN (16u << 10)
#define BLOCK_MAX (1u << 20)

void
mh_stacks_init(struct mh_stacks *s, size_t max_bytes)
{
    memset(s, 0, sizeof(*s));
    s->max_bytes = max_bytes;
}

void
mh_stacks_release(struct mh_stacks *s)
{
    for (size_t i = 0; i < s->nblocks; i++)
        mh_free(s->blocks[i]);
    mh_free(s->blocks);
    for (size_t i = 0; i < MH_STACKS_MAX_CHUNKS && s->dir[i]; i++)
        mh_free(s->dir[i]);
    mh_free(s->table);
    mh_stacks_init(s, s->max_bytes);
}

static uint64_t
hash_frames(const struct mh_rawframe *f, uint32_t depth)
{
    uint64_t h = 0x9E3779B97F4A7C15ull ^ depth;
    for (uint32_t i = 0; i < depth; i++) {
        h ^= (uint64_t)(uintptr_t)f[i].code;
        h *= 0xff51afd7ed558ccdull;
        h ^= f[i].offset + (h >> 29);
        h *= 0xc4ceb9fe1a85ec53ull;
    }
    return h ^ (h >> 32);
}

static void *
arena_alloc(struct mh_stacks *s, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (!s->block || s->block_used + n > s->block_size) {
        size_t size = s->block_size ? s->block_size * 2 : BLOCK_MIN;
        if (size > BLOCK_MAX)
            size = BLOCK_MAX;
        if (size < n)
            size = n;
        if (s->bytes + size > s->max_bytes)
            return NULL;
        if (s->nblocks == s->blocks_cap) {
            size_t cap = s->blocks_cap ? s->blocks_cap * 2 : 16;
            void **b = mh_realloc(s->blocks, cap * sizeof(*b));
            if (!b)
                return NULL;
            s->blocks = b;
            s->blocks_cap = cap;
        }
        uint8_t *block = mh_malloc(size);
        if (!block)
            return NULL;
        s->blocks[s->nblocks++] = block;
        s->block = block;
        s->block_size = size;
        s->block_used = 0;
        s->bytes += size;
    }
    void *p = s->block + s->block_used;
    s->block_used += n;
    return p;
}

static int
table_grow(struct mh_stacks *s)
{
    size_t size = s->table_size ? s->table_size * 2 : 256;
    struct mh_stack **t = mh_calloc(size, sizeof(*t));
    if (!t)
        return MH_ENOMEM;
    for (size_t i = 0; i < s->table_size; i++) {
        struct mh_stack *st = s->table[i];
        if (!st)
            continue;
        size_t j = st->hash & (size - 1);
        while (t[j])
            j = (j + 1) & (size - 1);
        t[j] = st;
    }
    s->bytes += size * sizeof(*t);
    s->bytes -= s->table_size * sizeof(*t);
    mh_free(s->table);
    s->table = t;
    s->table_size = size;
    return MH_OK;
}

uint32_t
mh_stacks_intern(struct mh_stacks *s, const struct mh_rawframe *f,
                 uint32_t depth, int *is_new)
{
    *is_new = 0;
    if (depth == 0)
        return 0;
    uint64_t h = hash_frames(f, depth);
    size_t bytes = depth * sizeof(*f);
    if (s->table_size) {
        size_t mask = s->table_size - 1;
        for (size_t j = h & mask; s->table[j]; j = (j + 1) & mask) {
            const struct mh_stack *st = s->table[j];
            if (st->hash == h && st->depth == depth &&
                !memcmp(st->frames, f, bytes))
                return st->id;
        }
    }
    uint32_t id = s->count + 1;
    uint32_t chunk = (id - 1) / MH_STACKS_CHUNK;
    if (chunk >= MH_STACKS_MAX_CHUNKS)
        return 0;
    if ((s->count + 1) * 2 > s->table_size && table_grow(s))
        return 0;
    if (!s->dir[chunk]) {
        s->dir[chunk] = mh_calloc(MH_STACKS_CHUNK, sizeof(struct mh_stack *));
        if (!s->dir[chunk])
            return 0;
        s->bytes += MH_STACKS_CHUNK * sizeof(struct mh_stack *);
    }
    struct mh_stack *st = arena_alloc(s, sizeof(*st) + bytes);
    if (!st)
        return 0;
    st->hash = h;
    st->id = id;
    st->depth = depth;
    memcpy(st->frames, f, bytes);
    size_t mask = s->table_size - 1;
    size_t j = h & mask;
    while (s->table[j])
        j = (j + 1) & mask;
    s->table[j] = st;
    s->dir[chunk][(id - 1) % MH_STACKS_CHUNK] = st;
    /* Publish last: the writer reads count without the lock's help only
     * through the tracker, which takes the lock; still keep the order. */
    __atomic_store_n(&s->count, id, __ATOMIC_RELEASE);
    *is_new = 1;
    return id;
}
