/* Live but unreachable (unreachable.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../util/mem.h"
#include "unreachable.h"
#include "types.h"

void
mh_unreachable_init(struct mh_unreachable *l)
{
    memset(l, 0, sizeof(*l));
}

void
mh_unreachable_release(struct mh_unreachable *l)
{
    mh_free(l->rows);
    mh_unreachable_init(l);
}

double
mh_unreachable_weight(uint64_t size, uint64_t interval)
{
    if (!interval || !size)
        return 1.0;
    double p = -expm1(-(double)size / (double)interval);
    return p > 0 ? 1.0 / p : 1.0;
}

static int
row_cmp(const void *a, const void *b)
{
    const struct mh_unreachable_row *x = a, *y = b;
    if (x->est_bytes != y->est_bytes)
        return x->est_bytes < y->est_bytes ? 1 : -1;
    if (x->stack != y->stack)
        return x->stack < y->stack ? -1 : 1;
    if (x->group != y->group)
        return x->group < y->group ? -1 : 1;
    return (int)x->reason - (int)y->reason;
}

/* Rows are found by (stack, group, reason) in an open-addressing table
 * of row indices. */
struct rowtab {
    uint32_t *slots;
    unsigned bits;
    uint32_t cap;
};

static size_t
row_hash(uint64_t stack, uint32_t group, unsigned reason)
{
    uint64_t k = (stack * 0x9E3779B97F4A7C15ull) ^
                 ((uint64_t)group << 2 | reason) * 0xff51afd7ed558ccdull;
    return (size_t)(k ^ k >> 31);
}

static size_t
row_hash_at(const void *ctx, uint32_t i)
{
    const struct mh_unreachable_row *r =
        &((const struct mh_unreachable *)ctx)->rows[i];
    return row_hash(r->stack, r->group, r->reason);
}

static int
row_get(struct mh_unreachable *l, struct rowtab *t, uint64_t stack,
        uint32_t group, enum mh_unreachable_reason reason,
        struct mh_unreachable_row **out)
{
    int rc = mh_heap_types_slots_reserve(&t->slots, &t->bits, 8, l->n,
                                         row_hash_at, l);
    if (rc)
        return rc;
    size_t mask = ((size_t)1 << t->bits) - 1;
    size_t h = row_hash(stack, group, reason) & mask;
    for (;; h = (h + 1) & mask) {
        uint32_t i = t->slots[h];
        if (i == UINT32_MAX)
            break;
        struct mh_unreachable_row *r = &l->rows[i];
        if (r->stack == stack && r->group == group && r->reason == reason) {
            *out = r;
            return MH_OK;
        }
    }
    if (l->n == t->cap) {
        uint32_t cap = t->cap ? t->cap * 2 : 64;
        struct mh_unreachable_row *rows =
            mh_realloc(l->rows, (size_t)cap * sizeof(*rows));
        if (!rows)
            return MH_ENOMEM;
        l->rows = rows;
        t->cap = cap;
    }
    t->slots[h] = l->n;
    *out = &l->rows[l->n++];
    memset(*out, 0, sizeof(**out));
    (*out)->stack = stack;
    (*out)->group = group;
    (*out)->reason = reason;
    return MH_OK;
}

/* Whether capture stacks a and b (indices) have the same frames, as far
 * as a reader can tell: file, line and function of each. */
static int
same_frames(const struct mh_cap_reader *r, uint32_t a, uint32_t b)
{
    const struct mh_cap_stack *x = &r->stacks[a], *y = &r->stacks[b];
    if (x->depth != y->depth)
        return 0;
    for (uint32_t k = 0; k < x->depth; k++) {
        const struct mh_cap_frame *f =
            &r->frames[r->stack_frames[x->first + k]];
        const struct mh_cap_frame *h =
            &r->frames[r->stack_frames[y->first + k]];
        if (f->line != h->line)
            return 0;
        if (f->code != h->code &&
            (r->codes[f->code].filename != r->codes[h->code].filename ||
             r->codes[f->code].name != r->codes[h->code].name))
            return 0;
    }
    return 1;
}

static uint64_t
frames_hash(const struct mh_cap_reader *r, uint32_t s)
{
    const struct mh_cap_stack *x = &r->stacks[s];
    uint64_t h = x->depth;
    for (uint32_t k = 0; k < x->depth; k++) {
        const struct mh_cap_frame *f =
            &r->frames[r->stack_frames[x->first + k]];
        const struct mh_cap_code *c = &r->codes[f->code];
        h = (h ^ f->line) * 0x100000001b3ull;
        h = (h ^ c->filename) * 0x100000001b3ull;
        h = (h ^ c->name) * 0x9E3779B97F4A7C15ull;
    }
    return h;
}

/* Rows whose stacks have the same frames become one, under the lowest
 * stack id. Rows are sorted by (hash, group, reason, stack) so that
 * candidates sit together; runs are merged pairwise. */
struct keyed {
    uint64_t hash;
    uint32_t row, sidx;
};

static int
keyed_cmp(const void *a, const void *b)
{
    const struct keyed *x = a, *y = b;
    if (x->hash != y->hash)
        return x->hash < y->hash ? -1 : 1;
    return x->row < y->row ? -1 : x->row > y->row;
}

static int
merge_stacks(struct mh_unreachable *l, const struct mh_cap_reader *r)
{
    struct keyed *k = mh_malloc((l->n ? l->n : 1) * sizeof(*k));
    if (!k)
        return MH_ENOMEM;
    uint32_t n = 0;
    for (uint32_t i = 0; i < l->n; i++) {
        uint32_t s =
            l->rows[i].stack ? mh_cap_stack_index(r, l->rows[i].stack) : 0;
        if (!s)
            continue;
        uint64_t h = frames_hash(r, s);
        h ^= ((uint64_t)l->rows[i].group << 2 | l->rows[i].reason) *
             0xff51afd7ed558ccdull;
        k[n++] = (struct keyed){h, i, s};
    }
    qsort(k, n, sizeof(*k), keyed_cmp);
    uint8_t *gone = mh_calloc(l->n ? l->n : 1, 1);
    if (!gone) {
        mh_free(k);
        return MH_ENOMEM;
    }
    for (uint32_t i = 0; i < n; i++) {
        struct mh_unreachable_row *a = &l->rows[k[i].row];
        if (gone[k[i].row])
            continue;
        for (uint32_t j = i + 1; j < n && k[j].hash == k[i].hash; j++) {
            struct mh_unreachable_row *b = &l->rows[k[j].row];
            if (gone[k[j].row] || a->group != b->group ||
                a->reason != b->reason ||
                !same_frames(r, k[i].sidx, k[j].sidx))
                continue;
            a->blocks += b->blocks;
            a->est_count += b->est_count;
            a->est_bytes += b->est_bytes;
            if (b->stack < a->stack)
                a->stack = b->stack;
            gone[k[j].row] = 1;
        }
    }
    uint32_t m = 0;
    for (uint32_t i = 0; i < l->n; i++)
        if (!gone[i])
            l->rows[m++] = l->rows[i];
    l->n = m;
    mh_free(gone);
    mh_free(k);
    return MH_OK;
}

int
mh_unreachable_build(struct mh_unreachable *l, const struct mh_heap_graph *g,
                     const uint32_t *group, const uint8_t *only,
                     const struct mh_cap_reader *cap)
{
    const struct mh_heap_image *d = g->d;
    uint64_t R = d->header.sample_interval;
    struct rowtab t = {0};
    int rc = MH_OK;
    mh_unreachable_release(l);
    for (uint32_t i = 0; rc == MH_OK && i < d->nallocs; i++) {
        const struct mh_heap_alloc *a = &d->allocs[i];
        double w = mh_unreachable_weight(a->size, R);
        l->blocks++;
        l->est_bytes += w * (double)a->size;
        enum mh_unreachable_reason why;
        uint32_t gr = UINT32_MAX;
        if (a->obj != MH_HEAP_NONE) {
            uint8_t reach = g->reach[a->obj];
            if (reach == MH_REACH_ROOT)
                continue;
            why = reach == MH_REACH_GARBAGE ? MH_UNREACHABLE_GARBAGE
                                            : MH_UNREACHABLE_EXT;
            gr = group[d->type[a->obj]];
        } else if (a->type) {
            why = MH_UNREACHABLE_NOT_WALKED;
            gr = group[a->type];
        } else if (a->object) {
            /* It held an object the dump does not have. */
            why = MH_UNREACHABLE_NOT_WALKED;
        } else {
            continue; /* not an object: not judged */
        }
        if (only && (gr == UINT32_MAX || !only[gr]))
            continue;
        struct mh_unreachable_row *r;
        rc = row_get(l, &t, a->stack, gr, why, &r);
        if (rc == MH_OK) {
            r->blocks++;
            r->est_count += w;
            r->est_bytes += w * (double)a->size;
        }
    }
    mh_free(t.slots);
    if (rc == MH_OK && cap && l->n)
        rc = merge_stacks(l, cap);
    if (rc == MH_OK && l->n)
        qsort(l->rows, l->n, sizeof(*l->rows), row_cmp);
    l->cap = cap;
    return rc;
}

int
mh_unreachable_stack(const struct mh_unreachable *l,
                     const struct mh_unreachable_row *r, uint32_t *depth)
{
    uint32_t s = l->cap && r->stack ? mh_cap_stack_index(l->cap, r->stack) : 0;
    *depth = s ? l->cap->stacks[s].depth : 0;
    return s != 0;
}

void
mh_unreachable_frame(const struct mh_unreachable *l,
                     const struct mh_unreachable_row *r, uint32_t k,
                     struct mh_unreachable_frame *out)
{
    const struct mh_cap_reader *cap = l->cap;
    const struct mh_cap_stack *st =
        &cap->stacks[mh_cap_stack_index(cap, r->stack)];
    const struct mh_cap_frame *f =
        &cap->frames[cap->stack_frames[st->first + k]];
    const struct mh_cap_code *c = &cap->codes[f->code];
    out->file = mh_cap_str(cap, c->filename);
    out->function = mh_cap_str(cap, c->name);
    out->line = f->line;
}

int
mh_unreachable_where(const struct mh_unreachable *l,
                     const struct mh_unreachable_row *r, unsigned frames,
                     struct mh_buf *out)
{
    if (r->stack == 0)
        return mh_buf_printf(out, "(no Python stack)");
    uint32_t depth;
    if (!mh_unreachable_stack(l, r, &depth))
        return mh_buf_printf(out, "stack %llu", (unsigned long long)r->stack);
    int rc = MH_OK;
    for (uint32_t k = 0; rc == MH_OK && k < depth && k < frames; k++) {
        struct mh_unreachable_frame f;
        mh_unreachable_frame(l, r, k, &f);
        rc = mh_buf_printf(out, "%s%s (%s:%u)", k ? " < " : "", f.function,
                           f.file, f.line);
    }
    return rc;
}
