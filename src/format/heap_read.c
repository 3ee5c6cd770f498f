/* Parsing a heap dump (docs/heap-format.md) from a buffer.
 *
 * The input may be hostile, so every length is checked against what is
 * left before it is used, every count that sizes an allocation is bounded
 * by the bytes that must follow it, and everything the dump keeps counts
 * against d->max_bytes: a file can make the parse fail, never make it
 * allocate without end.
 *
 * Objects are appended to arrays as they come; an open-addressing index
 * (slots hold object indices, keys are read from d->addr) finds them by
 * address, catches duplicates as they arrive, and resolves edge targets,
 * roots and ALLOC records once the dump has been read. Edge targets are
 * kept as addresses until then, and resolved in place into the first half
 * of the same array. */
#include <string.h>

#include "../util/arena.h"
#include "../util/budget.h"
#include "../util/buf.h"
#include "../util/compiler.h"
#include "../util/idmap.h"
#include "../util/mem.h"
#include "chunk.h"
#include "heap_read.h"

_Static_assert(MH_HEAP_STR_MAX < MH_ARENA_BLOCK, "a string fits a block");

struct mh_heap_priv {
    struct mh_idmap strings, types; /* file id -> index */
    size_t strings_cap, types_cap, objs_cap, edges_cap, roots_cap, allocs_cap;
    struct mh_arena arena;   /* every string the dump keeps */
    struct mh_budget budget; /* charges d->mem against d->max_bytes */
    uint64_t *edge_addr;     /* edge targets as addresses until resolved; then
                                the same memory holds d->edge_to */
    uint32_t *index;         /* address index: object indices, NONE = empty */
    unsigned index_bits;
    struct mh_chunk_reader ck;
};

struct parser {
    struct mh_heap_image *d;
    struct mh_heap_priv *pv;
    struct mh_parse_err err; /* the reader's error, the record parsed */
};

void
mh_heap_image_init(struct mh_heap_image *d, size_t max_bytes)
{
    memset(d, 0, sizeof(*d));
    d->max_bytes = max_bytes ? max_bytes : MH_HEAP_READER_MAX;
    d->inflate_fixed = MH_CAP_INFLATE_FIXED;
}

void
mh_heap_image_release(struct mh_heap_image *d)
{
    struct mh_heap_priv *pv = d->priv;
    size_t max = d->max_bytes;
    uint64_t fixed = d->inflate_fixed;
    if (pv) {
        mh_idmap_release(&pv->strings);
        mh_idmap_release(&pv->types);
        mh_arena_release(&pv->arena);
        /* d->edge_to is pv->edge_addr once resolved */
        if ((void *)d->edge_to != (void *)pv->edge_addr)
            mh_free(d->edge_to);
        mh_free(pv->edge_addr);
        mh_free(pv->index);
        mh_chunk_reader_release(&pv->ck);
        mh_free(pv);
    } else {
        mh_free(d->edge_to);
    }
    mh_free(d->strings);
    mh_free(d->types);
    mh_free(d->addr);
    mh_free(d->type);
    mh_free(d->size);
    mh_free(d->refcnt);
    mh_free(d->flags);
    mh_free(d->edge_start);
    mh_free(d->edge_label);
    mh_free(d->roots);
    mh_free(d->allocs);
    mh_heap_image_init(d, max);
    d->inflate_fixed = fixed;
}

/* --- errors --------------------------------------------------------- */

static int
store_fail(struct parser *ps, int rc, const uint8_t *rec, uint8_t tag)
{
    if (rc == MH_ENOMEM)
        return mh_parse_rec_fail(&ps->err, rc, rec, tag,
                                 "cannot be stored: out of memory");
    return mh_parse_rec_fail(
        &ps->err, rc, rec, tag,
        "cannot be stored: the dump would pass the reader's "
        "%zu MiB limit",
        ps->d->max_bytes >> 20);
}

/* --- the address index ---------------------------------------------- */

static inline size_t
addr_slot(uint64_t addr, unsigned bits)
{
    /* Objects sit 16 bytes apart or more: drop the low bits first. */
    return mh_idmap_slot(addr >> 4 ^ addr, bits);
}

uint32_t
mh_heap_find(const struct mh_heap_image *d, uint64_t addr)
{
    const struct mh_heap_priv *pv = d->priv;
    if (!pv || !pv->index || addr == 0)
        return MH_HEAP_NONE;
    size_t mask = ((size_t)1 << pv->index_bits) - 1;
    for (size_t i = addr_slot(addr, pv->index_bits);; i = (i + 1) & mask) {
        uint32_t o = pv->index[i];
        if (o == MH_HEAP_NONE || d->addr[o] == addr)
            return o;
    }
}

/* Adds object `o` (its address in d->addr) to the index; returns the
 * object already there at that address, or MH_HEAP_NONE. */
static uint32_t
index_put(struct mh_heap_image *d, struct mh_heap_priv *pv, uint32_t o)
{
    uint64_t addr = d->addr[o];
    size_t mask = ((size_t)1 << pv->index_bits) - 1;
    size_t i = addr_slot(addr, pv->index_bits);
    for (;; i = (i + 1) & mask) {
        uint32_t x = pv->index[i];
        if (x == MH_HEAP_NONE)
            break;
        if (d->addr[x] == addr)
            return x;
    }
    pv->index[i] = o;
    return MH_HEAP_NONE;
}

/* Keeps the index at most half full for n objects. */
static int
index_reserve(struct mh_heap_image *d, struct mh_heap_priv *pv, size_t n)
{
    if (pv->index && n * 2 <= ((size_t)1 << pv->index_bits))
        return MH_OK;
    unsigned bits = pv->index_bits ? pv->index_bits + 1 : 10;
    while (((size_t)1 << bits) < n * 2)
        bits++;
    size_t slots = (size_t)1 << bits;
    size_t old = pv->index ? ((size_t)1 << pv->index_bits) : 0;
    if (mh_budget_charge(&pv->budget, (slots - old) * sizeof(uint32_t)))
        return MH_ETOOBIG;
    uint32_t *idx = mh_malloc(slots * sizeof(uint32_t));
    if (!idx) {
        d->mem -= (slots - old) * sizeof(uint32_t);
        return MH_ENOMEM;
    }
    memset(idx, 0xff, slots * sizeof(uint32_t));
    mh_free(pv->index);
    pv->index = idx;
    pv->index_bits = bits;
    for (uint32_t o = 0; o < d->nobjs; o++)
        (void)index_put(d, pv, o); /* addresses are already unique */
    return MH_OK;
}

/* --- records -------------------------------------------------------- */

#define FIELD(q, end, v)                                                      \
    do {                                                                      \
        int rc_ = mh_rd_uv(&(q), (end), (v));                                 \
        if (MH_UNLIKELY(rc_))                                                 \
            return mh_parse_field_fail(&ps->err, rc_, rec, tag, sized);       \
    } while (0)

#define FIELD_STR(q, end, s, n)                                               \
    do {                                                                      \
        int rc_ = mh_parse_str(&ps->err, &(q), (end), rec, tag,               \
                               MH_HEAP_STR_MAX, (s), (n));                    \
        if (rc_)                                                              \
            return rc_;                                                       \
    } while (0)

/* A reference to an id that must be defined; 0 allowed when `may_be_0`. */
#define REF(m, id, out, kind, may_be_0)                                       \
    do {                                                                      \
        if ((id) == 0 && (may_be_0)) {                                        \
            *(out) = 0;                                                       \
        } else {                                                              \
            *(out) = mh_idmap_get((m), (id));                                 \
            if (!*(out))                                                      \
                return mh_parse_rec_fail(&ps->err, MH_EFORMAT, rec, tag,      \
                                         "references undefined %s %llu",      \
                                         (kind), (unsigned long long)(id));   \
        }                                                                     \
    } while (0)

static int
parse_header(struct parser *ps, const uint8_t *rec, uint8_t tag,
             const uint8_t *q, const uint8_t *end)
{
    const int sized = 1;
    struct mh_heap_image *d = ps->d;
    struct mh_heap_header h;
    const char *s;
    size_t n;
    int rc;
    memset(&h, 0, sizeof(h));
    FIELD(q, end, &h.pid);
    FIELD(q, end, &h.time_ns);
    FIELD(q, end, &h.pause_ns);
    FIELD_STR(q, end, &s, &n);
    if ((rc = mh_parse_keep_str(&ps->pv->arena, &ps->pv->budget, s, n,
                                &h.python)))
        return store_fail(ps, rc, rec, tag);
    FIELD_STR(q, end, &s, &n);
    if ((rc = mh_parse_keep_str(&ps->pv->arena, &ps->pv->budget, s, n,
                                &h.capture)))
        return store_fail(ps, rc, rec, tag);
    FIELD(q, end, &h.sample_interval);
    d->header = h;
    d->have_header = 1;
    return MH_OK;
}

static int
parse_string(struct parser *ps, const uint8_t *rec, uint8_t tag,
             const uint8_t *q, const uint8_t *end)
{
    const int sized = 1;
    struct mh_heap_image *d = ps->d;
    struct mh_heap_priv *pv = ps->pv;
    uint64_t id;
    const char *s;
    size_t n;
    FIELD(q, end, &id);
    FIELD_STR(q, end, &s, &n);
    int rc = mh_parse_new_id(&ps->err, &pv->strings, id, "string", rec, tag);
    if (rc)
        return rc;
    rc = mh_parse_table_add(&pv->budget, &pv->strings, (void **)&d->strings,
                            &pv->strings_cap, d->nstrings, sizeof(*d->strings),
                            id);
    if (rc == MH_OK)
        rc = mh_parse_keep_str(&pv->arena, &pv->budget, s, n,
                               &d->strings[d->nstrings]);
    if (rc)
        return store_fail(ps, rc, rec, tag);
    d->nstrings++;
    return MH_OK;
}

static int
parse_type(struct parser *ps, const uint8_t *rec, uint8_t tag,
           const uint8_t *q, const uint8_t *end)
{
    const int sized = 1;
    struct mh_heap_image *d = ps->d;
    struct mh_heap_priv *pv = ps->pv;
    uint64_t id, name, flags;
    struct mh_heap_type t;
    FIELD(q, end, &id);
    FIELD(q, end, &t.addr);
    FIELD(q, end, &name);
    FIELD(q, end, &t.preheader);
    FIELD(q, end, &flags);
    int rc = mh_parse_new_id(&ps->err, &pv->types, id, "type", rec, tag);
    if (rc)
        return rc;
    REF(&pv->strings, name, &t.name, "string", 0);
    t.flags = (uint32_t)(flags & 0xffffffffu);
    rc = mh_parse_table_add(&pv->budget, &pv->types, (void **)&d->types,
                            &pv->types_cap, d->ntypes, sizeof(*d->types), id);
    if (rc)
        return store_fail(ps, rc, rec, tag);
    d->types[d->ntypes++] = t;
    return MH_OK;
}

static int
parse_end(struct parser *ps, const uint8_t *rec, uint8_t tag, const uint8_t *q,
          const uint8_t *end)
{
    const int sized = 1;
    struct mh_heap_image *d = ps->d;
    FIELD(q, end, &d->end_objects);
    FIELD(q, end, &d->end_edges);
    FIELD(q, end, &d->walk_ns);
    d->have_end = 1;
    return MH_OK;
}

/* Room for one more object with `nedges` edges. */
static int
reserve_object(struct parser *ps, uint64_t nedges)
{
    struct mh_heap_image *d = ps->d;
    struct mh_heap_priv *pv = ps->pv;
    if (d->nobjs >= MH_HEAP_COUNT_MAX ||
        nedges > (uint64_t)MH_HEAP_COUNT_MAX - d->nedges)
        return MH_ETOOBIG;
    size_t need = (size_t)d->nobjs + 1;
    if (need > pv->objs_cap) {
        size_t cap = pv->objs_cap;
        size_t ncap = mh_budget_grown(cap, need);
        if (ncap > MH_HEAP_COUNT_MAX)
            ncap = MH_HEAP_COUNT_MAX;
        /* All per-object arrays grow together; edge_start has one more
         * entry. */
        size_t per = sizeof(uint64_t) * 2 + sizeof(uint32_t) * 3 + 1;
        if (ncap > d->max_bytes / per ||
            mh_budget_charge(&pv->budget, (ncap - cap) * per))
            return MH_ETOOBIG;
        void *a = mh_realloc(d->addr, ncap * sizeof(uint64_t));
        if (a)
            d->addr = a;
        void *t = a ? mh_realloc(d->type, ncap * sizeof(uint32_t)) : NULL;
        if (t)
            d->type = t;
        void *s = t ? mh_realloc(d->size, ncap * sizeof(uint64_t)) : NULL;
        if (s)
            d->size = s;
        void *r = s ? mh_realloc(d->refcnt, ncap * sizeof(uint32_t)) : NULL;
        if (r)
            d->refcnt = r;
        void *f = r ? mh_realloc(d->flags, ncap) : NULL;
        if (f)
            d->flags = f;
        void *e = f ? mh_realloc(d->edge_start, (ncap + 1) * sizeof(uint32_t))
                    : NULL;
        if (e)
            d->edge_start = e;
        if (!e) {
            /* The arrays that grew stay valid; the capacity does not
             * change until all have. */
            d->mem -= (ncap - cap) * per;
            return MH_ENOMEM;
        }
        pv->objs_cap = ncap;
    }
    int rc = index_reserve(d, pv, need);
    if (rc)
        return rc;
    size_t eneed = (size_t)d->nedges + (size_t)nedges;
    if (eneed > pv->edges_cap) {
        /* edge_addr and edge_label grow together */
        size_t cap = pv->edges_cap;
        size_t ncap = mh_budget_grown(cap, eneed);
        if (ncap > MH_HEAP_COUNT_MAX)
            ncap = MH_HEAP_COUNT_MAX;
        size_t per = sizeof(uint64_t) + sizeof(uint32_t);
        if (ncap > d->max_bytes / per ||
            mh_budget_charge(&pv->budget, (ncap - cap) * per))
            return MH_ETOOBIG;
        void *a = mh_realloc(pv->edge_addr, ncap * sizeof(uint64_t));
        if (a)
            pv->edge_addr = a;
        void *l =
            a ? mh_realloc(d->edge_label, ncap * sizeof(uint32_t)) : NULL;
        if (!l) {
            d->mem -= (ncap - cap) * per;
            return MH_ENOMEM;
        }
        d->edge_label = l;
        pv->edges_cap = ncap;
    }
    return MH_OK;
}

/* An edge of the OBJECT at `rec` could not be read. */
static int
edge_fail(struct parser *ps, int rc, const uint8_t *rec, uint8_t tag,
          uint64_t k, unsigned kind, uint64_t name)
{
    if (rc)
        return mh_parse_field_fail(&ps->err, rc, rec, tag, 0);
    if (kind == MH_EDGE_KIND_RESERVED)
        return mh_parse_rec_fail(&ps->err, MH_EFORMAT, rec, tag,
                                 "has edge %llu of the reserved kind 7",
                                 (unsigned long long)k);
    if (kind == MH_EDGE_NONE || kind == MH_EDGE_ITEM)
        return mh_parse_rec_fail(&ps->err, MH_EFORMAT, rec, tag,
                                 "has edge %llu of kind %u with a name",
                                 (unsigned long long)k, kind);
    return mh_parse_rec_fail(&ps->err, MH_EFORMAT, rec, tag,
                             "has edge %llu naming undefined string %llu",
                             (unsigned long long)k, (unsigned long long)name);
}

static int
parse_object(struct parser *ps, const uint8_t *rec, uint8_t tag,
             const uint8_t **pp, const uint8_t *end, uint64_t *chain)
{
    const int sized = 0;
    struct mh_heap_image *d = ps->d;
    struct mh_heap_priv *pv = ps->pv;
    const uint8_t *q = *pp;
    uint64_t delta, type, size, refcnt, flags, nedges;
    FIELD(q, end, &delta);
    FIELD(q, end, &type);
    FIELD(q, end, &size);
    FIELD(q, end, &refcnt);
    FIELD(q, end, &flags);
    FIELD(q, end, &nedges);
    uint64_t addr = *chain + (uint64_t)mh_unzigzag(delta);
    if (addr == 0)
        return mh_parse_rec_fail(&ps->err, MH_EFORMAT, rec, tag,
                                 "is an object at address 0");
    uint32_t tidx;
    REF(&pv->types, type, &tidx, "type", 0);
    /* An edge takes at least two bytes: this bounds the allocation by
     * the chunk's own size. */
    if (nedges > (uint64_t)(end - q) / 2)
        return mh_parse_field_fail(&ps->err, MH_ETRUNC, rec, tag, 0);
    int rc = reserve_object(ps, nedges);
    if (rc)
        return store_fail(ps, rc, rec, tag);
    uint32_t o = d->nobjs;
    /* (no edge arrays yet when no object so far had an edge) */
    uint64_t *ea = nedges ? pv->edge_addr + d->nedges : NULL;
    uint32_t *el = nedges ? d->edge_label + d->nedges : NULL;
    for (uint64_t k = 0; k < nedges; k++) {
        uint64_t td, label;
        if (MH_UNLIKELY((rc = mh_rd_uv(&q, end, &td))) ||
            MH_UNLIKELY((rc = mh_rd_uv(&q, end, &label))))
            return edge_fail(ps, rc, rec, tag, k, 0, 0);
        unsigned kind = (unsigned)(label & MH_EDGE_KIND_MASK);
        uint64_t name = label >> MH_EDGE_KIND_BITS;
        uint32_t nidx = 0;
        if (MH_UNLIKELY(kind == MH_EDGE_KIND_RESERVED))
            return edge_fail(ps, 0, rec, tag, k, kind, name);
        if (name) {
            if (MH_UNLIKELY(kind == MH_EDGE_NONE || kind == MH_EDGE_ITEM))
                return edge_fail(ps, 0, rec, tag, k, kind, name);
            nidx = mh_idmap_get(&pv->strings, name);
            if (MH_UNLIKELY(!nidx))
                return edge_fail(ps, 0, rec, tag, k, kind, name);
        }
        ea[k] = addr + (uint64_t)mh_unzigzag(td);
        el[k] = nidx << MH_EDGE_KIND_BITS | kind;
    }
    /* Indexed last, so a failed record leaves no trace in the index. */
    d->addr[o] = addr;
    if (index_put(d, pv, o) != MH_HEAP_NONE)
        return mh_parse_rec_fail(&ps->err, MH_EFORMAT, rec, tag,
                                 "defines the object at 0x%llx twice",
                                 (unsigned long long)addr);
    d->type[o] = tidx;
    d->size[o] = size;
    d->refcnt[o] = refcnt > UINT32_MAX ? UINT32_MAX : (uint32_t)refcnt;
    d->flags[o] = (uint8_t)(flags & 0xff);
    d->edge_start[o] = d->nedges;
    d->nobjs++;
    d->nedges += (uint32_t)nedges;
    d->edge_start[d->nobjs] = d->nedges;
    *chain = addr;
    *pp = q;
    return MH_OK;
}

/* Room for entry `n` of a table that holds up to MH_HEAP_COUNT_MAX
 * (roots, ALLOC records). */
static int
room_for_one(struct mh_heap_priv *pv, void **arr, size_t *cap, uint32_t n,
             size_t elem)
{
    if (n >= MH_HEAP_COUNT_MAX)
        return MH_ETOOBIG;
    return mh_budget_grow(&pv->budget, arr, cap, (size_t)n + 1, elem);
}

static int
parse_root(struct parser *ps, const uint8_t *rec, uint8_t tag,
           const uint8_t **pp, const uint8_t *end, uint64_t *chain)
{
    const int sized = 0;
    struct mh_heap_image *d = ps->d;
    struct mh_heap_priv *pv = ps->pv;
    const uint8_t *q = *pp;
    uint64_t kind, name, delta;
    FIELD(q, end, &kind);
    FIELD(q, end, &name);
    FIELD(q, end, &delta);
    struct mh_heap_root r;
    r.kind = kind > UINT32_MAX ? UINT32_MAX : (uint32_t)kind;
    REF(&pv->strings, name, &r.name, "string", 1);
    r.addr = *chain + (uint64_t)mh_unzigzag(delta);
    r.obj = MH_HEAP_NONE;
    int rc = room_for_one(pv, (void **)&d->roots, &pv->roots_cap, d->nroots,
                          sizeof(*d->roots));
    if (rc)
        return store_fail(ps, rc, rec, tag);
    d->roots[d->nroots++] = r;
    *chain = r.addr;
    *pp = q;
    return MH_OK;
}

static int
parse_alloc(struct parser *ps, const uint8_t *rec, uint8_t tag,
            const uint8_t **pp, const uint8_t *end)
{
    const int sized = 0;
    struct mh_heap_image *d = ps->d;
    struct mh_heap_priv *pv = ps->pv;
    const uint8_t *q = *pp;
    uint64_t type;
    struct mh_heap_alloc a;
    FIELD(q, end, &a.addr);
    FIELD(q, end, &a.size);
    FIELD(q, end, &a.stack);
    FIELD(q, end, &a.object);
    FIELD(q, end, &type);
    REF(&pv->types, type, &a.type, "type", 1);
    a.obj = MH_HEAP_NONE;
    int rc = room_for_one(pv, (void **)&d->allocs, &pv->allocs_cap, d->nallocs,
                          sizeof(*d->allocs));
    if (rc)
        return store_fail(ps, rc, rec, tag);
    d->allocs[d->nallocs++] = a;
    *pp = q;
    return MH_OK;
}

/* Parses the records of one chunk's (decompressed) payload. */
static int
parse_records(struct parser *ps, const uint8_t *p, size_t n)
{
    struct mh_heap_image *d = ps->d;
    const uint8_t *end = p + n;
    uint64_t chain = 0; /* address deltas restart in every chunk */
    ps->err.place.payload = p;
    while (p < end) {
        const uint8_t *rec = p;
        uint8_t tag = *p++;
        int rc;
        if (tag >= MH_HREC_OBJECT && tag <= MH_HREC_ALLOC) {
            if (MH_UNLIKELY(!d->have_header))
                return mh_parse_rec_fail(&ps->err, MH_EFORMAT, rec, tag,
                                         "comes before the HEADER record");
            if (tag == MH_HREC_OBJECT)
                rc = parse_object(ps, rec, tag, &p, end, &chain);
            else if (tag == MH_HREC_ROOT)
                rc = parse_root(ps, rec, tag, &p, end, &chain);
            else
                rc = parse_alloc(ps, rec, tag, &p, end);
            if (rc)
                return rc;
            continue;
        }
        const uint8_t *body = p, *bend;
        if ((rc = mh_parse_sized(&ps->err, rec, tag, MH_HREC_FIXED_LAST,
                                 MH_HREC_HEADER, d->have_header, &body, end,
                                 &bend)))
            return rc;
        p = bend;
        switch (tag) {
        case MH_HREC_HEADER:
            rc = parse_header(ps, rec, tag, body, bend);
            break;
        case MH_HREC_STRING:
            rc = parse_string(ps, rec, tag, body, bend);
            break;
        case MH_HREC_TYPE:
            rc = parse_type(ps, rec, tag, body, bend);
            break;
        case MH_HREC_END:
            rc = parse_end(ps, rec, tag, body, bend);
            break;
        default:
            rc = MH_OK; /* a sized record from a newer writer: skipped */
            break;
        }
        if (rc)
            return rc;
    }
    return MH_OK;
}

/* Turns edge target, root and ALLOC addresses into object indices. The
 * edge targets are rewritten in place: index k (4 bytes at byte 4k) is
 * written after address k (8 bytes at byte 8k) has been read. */
static int
resolve(struct mh_heap_image *d, struct mh_heap_priv *pv)
{
    if (!d->edge_start) {
        size_t cap = 0;
        int rc = mh_budget_grow(&pv->budget, (void **)&d->edge_start, &cap, 1,
                                sizeof(uint32_t));
        if (rc)
            return rc;
        d->edge_start[0] = 0;
    }
    uint32_t *to = (uint32_t *)(void *)pv->edge_addr;
    uint32_t dangling = 0;
    for (uint32_t k = 0; k < d->nedges; k++) {
        uint32_t o = mh_heap_find(d, pv->edge_addr[k]);
        dangling += o == MH_HEAP_NONE;
        to[k] = o;
    }
    /* Half the array now holds the indices: give the rest back (and the
     * labels' spare capacity); if the allocator will not, keep it. */
    if (d->nedges && d->nedges < pv->edges_cap) {
        size_t was = pv->edges_cap * (sizeof(uint64_t) + sizeof(uint32_t));
        void *t = mh_realloc(pv->edge_addr, d->nedges * sizeof(uint32_t));
        if (t) {
            to = t;
            pv->edge_addr = t;
        }
        void *l = mh_realloc(d->edge_label, d->nedges * sizeof(uint32_t));
        if (l)
            d->edge_label = l;
        if (t && l) {
            d->mem -= was - (size_t)d->nedges * 2 * sizeof(uint32_t);
            pv->edges_cap = d->nedges;
        }
    }
    d->edge_to = to;
    d->dangling = dangling;
    for (uint32_t i = 0; i < d->nroots; i++)
        d->roots[i].obj = mh_heap_find(d, d->roots[i].addr);
    for (uint32_t i = 0; i < d->nallocs; i++)
        d->allocs[i].obj = mh_heap_find(d, d->allocs[i].object);
    return MH_OK;
}

static int
parse_chunks(struct parser *ps, const uint8_t *buf, size_t len)
{
    struct mh_heap_image *d = ps->d;
    struct mh_chunk_reader *c = &ps->pv->ck;
    int rc = mh_chunk_begin(c, buf, len);
    struct mh_chunk ch;
    while (rc == MH_OK && (rc = mh_chunk_next(c, &ch)) > 0) {
        ps->err.place.chunk_off = ch.offset;
        ps->err.place.compressed = ch.compressed;
        if (ch.len && (rc = parse_records(ps, ch.payload, ch.len)))
            return rc;
        d->chunks++;
        rc = MH_OK;
    }
    if (rc < 0)
        return mh_parse_fail(&ps->err, rc, c->error_offset, "%s", c->error);
    d->truncated = c->truncated;
    d->truncated_at = c->truncated_at;
    d->file_bytes = len;
    /* The decompression buffer is not needed any more. */
    mh_chunk_reader_release(c);
    return MH_OK;
}

int
mh_heap_parse(struct mh_heap_image *d, const uint8_t *buf, size_t len)
{
    struct parser ps;
    memset(&ps, 0, sizeof(ps));
    ps.d = d;
    ps.err.text = d->error;
    ps.err.cap = sizeof(d->error);
    ps.err.offset = &d->error_offset;
    if (d->priv)
        return mh_parse_fail(&ps.err, MH_EINVAL, 0,
                             "a dump is parsed once (this one has been)");
    if (!buf && len)
        return mh_parse_fail(&ps.err, MH_EINVAL, 0, "no buffer to parse");
    d->priv = ps.pv = mh_calloc(1, sizeof(*ps.pv));
    if (!ps.pv)
        return mh_parse_fail(&ps.err, MH_ENOMEM, 0,
                             "cannot start reading: out of memory");
    struct mh_heap_priv *pv = ps.pv;
    mh_chunk_reader_init(&pv->ck, &mh_chunk_heap);
    pv->ck.inflate_fixed = d->inflate_fixed;
    pv->budget.used = &d->mem;
    pv->budget.max = d->max_bytes;
    /* Index 0 of the string and type tables means "none". */
    if (mh_budget_grow(&pv->budget, (void **)&d->strings, &pv->strings_cap, 1,
                       sizeof(*d->strings)) ||
        mh_budget_grow(&pv->budget, (void **)&d->types, &pv->types_cap, 1,
                       sizeof(*d->types)))
        return mh_parse_fail(&ps.err, MH_ENOMEM, 0,
                             "cannot start reading: out of memory");
    d->strings[0].s = "";
    d->strings[0].n = 0;
    memset(&d->types[0], 0, sizeof(d->types[0]));
    d->nstrings = d->ntypes = 1;
    int rc = parse_chunks(&ps, buf, len);
    if (rc)
        return rc;
    if (!d->have_header)
        return mh_parse_fail(&ps.err, MH_EFORMAT, len,
                             "heap dump has no HEADER record%s",
                             d->truncated ? " before it is cut short" : "");
    rc = resolve(d, pv);
    if (rc)
        return mh_parse_fail(&ps.err, rc, len, "cannot index the dump: %s",
                             mh_strerror(rc));
    return MH_OK;
}
