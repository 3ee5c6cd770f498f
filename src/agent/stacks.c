#include <string.h>

#include "../util/mem.h"
#include "stacks.h"

/* Where entry `id` (from 1) of a segmented array lives: segment k holds
 * entries [SEG0 * (2^k - 1), SEG0 * (2^(k+1) - 1)) of the 0-based index. */
static inline uint32_t
seg_of(uint32_t id, uint32_t *off)
{
    uint32_t j = id - 1 + MH_STACKS_SEG0;
    uint32_t top = 31u - (uint32_t)__builtin_clz(j);
    *off = j - (1u << top);
    return top - MH_STACKS_SEG0_BITS;
}

static inline struct mh_stack_node *
node_at(const struct mh_stacks *s, uint32_t id)
{
    uint32_t off, k = seg_of(id, &off);
    return &s->nodes[k][off];
}

static inline uint32_t *
stack_of_at(const struct mh_stacks *s, uint32_t id)
{
    uint32_t off, k = seg_of(id, &off);
    return &s->stack_of[k][off];
}

void
mh_stacks_init(struct mh_stacks *s, size_t max_bytes)
{
    memset(s, 0, sizeof(*s));
    s->max_bytes = max_bytes;
}

void
mh_stacks_release(struct mh_stacks *s)
{
    for (int k = 0; k < MH_STACKS_SEGS; k++) {
        mh_free(s->nodes[k]); /* stack_of[k] shares the block */
        mh_free(s->leaf[k]);
    }
    mh_free(s->table);
    mh_free(s->path);
    mh_stacks_init(s, s->max_bytes);
}

static inline uint64_t
node_hash(uint32_t parent, const PyCodeObject *code, uint32_t offset)
{
    uint64_t h = (uint64_t)(uintptr_t)code;
    h ^= (((uint64_t)parent << 32) | offset) * 0x9E3779B97F4A7C15ull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 32);
}

static int
table_grow(struct mh_stacks *s)
{
    size_t size = s->table_size ? s->table_size * 2 : 1024;
    size_t add = size * sizeof(uint32_t);
    if (s->bytes + add > s->max_bytes)
        return MH_ETOOBIG;
    uint32_t *t = mh_calloc(size, sizeof(*t));
    if (!t)
        return MH_ENOMEM;
    for (uint32_t id = 1; id <= s->nnodes; id++) {
        const struct mh_stack_node *n = node_at(s, id);
        size_t j = node_hash(n->parent, n->code, n->offset) & (size - 1);
        while (t[j])
            j = (j + 1) & (size - 1);
        t[j] = id;
    }
    s->bytes += add;
    s->bytes -= s->table_size * sizeof(uint32_t);
    mh_free(s->table);
    s->table = t;
    s->table_size = size;
    return MH_OK;
}

/* Makes sure entry `id` of a segmented array has its segment; `with_ids`
 * gives node segments their stack_of[] half in the same block. */
static int
seg_reserve(struct mh_stacks *s, void **segs, uint32_t **ids, size_t entry,
            uint32_t id)
{
    uint32_t off, k = seg_of(id, &off);
    if (k >= MH_STACKS_SEGS)
        return MH_ETOOBIG;
    if (segs[k])
        return MH_OK;
    size_t n = (size_t)MH_STACKS_SEG0 << k;
    size_t size = n * (entry + (ids ? sizeof(uint32_t) : 0));
    if (s->bytes + size > s->max_bytes)
        return MH_ETOOBIG;
    uint8_t *block = mh_malloc(size);
    if (!block)
        return MH_ENOMEM;
    if (ids) {
        ids[k] = (uint32_t *)(block + n * entry);
        memset(ids[k], 0, n * sizeof(uint32_t));
    }
    segs[k] = block;
    s->bytes += size;
    return MH_OK;
}

/* The node (parent, f), made when new; 0 when memory or a cap ran out. */
static uint32_t
node_get(struct mh_stacks *s, uint32_t parent, const struct mh_rawframe *f)
{
    uint64_t h = node_hash(parent, f->code, f->offset);
    size_t mask = s->table_size - 1;
    size_t j = h & mask;
    for (uint32_t id; (id = s->table[j]) != 0; j = (j + 1) & mask) {
        const struct mh_stack_node *n = node_at(s, id);
        if (n->code == f->code && n->offset == f->offset &&
            n->parent == parent)
            return id;
    }
    uint32_t id = s->nnodes + 1;
    if (id == 0 || seg_reserve(s, (void **)s->nodes, s->stack_of,
                               sizeof(struct mh_stack_node), id))
        return 0;
    if ((size_t)id * 2 > s->table_size) {
        if (table_grow(s))
            return 0;
        mask = s->table_size - 1;
        j = h & mask;
        while (s->table[j])
            j = (j + 1) & mask;
    }
    struct mh_stack_node *n = node_at(s, id);
    n->code = f->code;
    n->offset = f->offset;
    n->parent = parent;
    s->table[j] = id;
    s->nnodes = id;
    return id;
}

uint32_t
mh_stacks_intern(struct mh_stacks *s, const struct mh_rawframe *f,
                 uint32_t depth, int *is_new)
{
    *is_new = 0;
    if (depth == 0)
        return 0;
    if (!s->path) {
        size_t size = MH_STACKS_PATH_MAX * sizeof(uint32_t);
        if (s->bytes + size > s->max_bytes || !(s->path = mh_malloc(size)))
            return 0;
        s->bytes += size;
    }
    if (!s->table && table_grow(s))
        return 0;
    uint32_t node = 0, i = depth, k = 0;
    for (; i > 0 && k < s->path_len; i--, k++) {
        const struct mh_stack_node *n = node_at(s, s->path[k]);
        if (n->code != f[i - 1].code || n->offset != f[i - 1].offset)
            break;
        node = s->path[k];
    }
    s->path_len = k;
    for (; i-- > 0; k++) {
        if (!(node = node_get(s, node, &f[i])))
            return 0;
        if (k < MH_STACKS_PATH_MAX)
            s->path[s->path_len++] = node;
    }
    uint32_t *sid = stack_of_at(s, node);
    if (*sid)
        return *sid;
    uint32_t id = s->count + 1;
    if (id > MH_STACKS_MAX_IDS ||
        seg_reserve(s, (void **)s->leaf, NULL, sizeof(uint32_t), id))
        return 0;
    uint32_t off, seg = seg_of(id, &off);
    s->leaf[seg][off] = node;
    *sid = id;
    /* Publish last: the writer reads count only through the tracker,
     * which takes the lock; still keep the order. */
    __atomic_store_n(&s->count, id, __ATOMIC_RELEASE);
    *is_new = 1;
    return id;
}

uint32_t
mh_stacks_get(const struct mh_stacks *s, uint32_t id, struct mh_rawframe *out,
              uint32_t max)
{
    uint32_t off, k = seg_of(id, &off);
    uint32_t n = 0;
    for (uint32_t node = s->leaf[k][off]; node && n < max;) {
        const struct mh_stack_node *nd = node_at(s, node);
        mh_frames_set(&out[n++], nd->code, (int)nd->offset);
        node = nd->parent;
    }
    return n;
}
