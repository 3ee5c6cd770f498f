/* Retention paths grouped by shape (paths.h).
 *
 * A shape is a node of a trie: (parent shape, step label, repeat), where
 * the label is the edge's label with the name replaced by STAR when it
 * is collapsed, and repeat is 1, 2 or 3 ("three or more"). Root shapes
 * have a parent of SHAPE_ROOT (label = the root's name string) or
 * SHAPE_EXT (label = the type group of the object held outside the GC).
 * An unnamed edge's label carries the type group of the object it
 * leaves, plus one, as its name, so that its step says what holds. */
#include <stdlib.h>
#include <string.h>

#include "../../util/buf.h"
#include "../../util/mem.h"
#include "paths.h"
#include "types.h"

#define SHAPE_ROOT (UINT32_MAX - 1)
#define SHAPE_EXT (UINT32_MAX - 2)
#define STAR_NAME ((UINT32_MAX >> MH_EDGE_KIND_BITS))

struct shape {
    uint32_t parent, label;
    uint8_t rep;
    uint64_t count, bytes; /* selected objects with exactly this shape */
};

struct shapes {
    struct shape *s;
    uint32_t n, cap;
    uint32_t *slots; /* hash: shape ids, UINT32_MAX = empty */
    unsigned bits;
};

void
mh_heap_paths_init(struct mh_heap_paths *p)
{
    memset(p, 0, sizeof(*p));
}

void
mh_heap_paths_release(struct mh_heap_paths *p)
{
    for (uint32_t i = 0; i < p->n; i++)
        mh_free(p->rows[i].path);
    mh_free(p->rows);
    mh_heap_paths_init(p);
}

static size_t
shape_hash(uint32_t parent, uint32_t label, uint8_t rep)
{
    uint64_t k = ((uint64_t)parent << 32 | label) * 0x9E3779B97F4A7C15ull;
    return (size_t)(k >> 20 ^ rep * 0x45d9f3bu ^ k);
}

static size_t
shape_hash_at(const void *ctx, uint32_t i)
{
    const struct shape *s = &((const struct shapes *)ctx)->s[i];
    return shape_hash(s->parent, s->label, s->rep);
}

static int
shape_intern(struct shapes *t, uint32_t parent, uint32_t label, uint8_t rep,
             uint32_t *out)
{
    int rc = mh_heap_types_slots_reserve(&t->slots, &t->bits, 10, t->n,
                                         shape_hash_at, t);
    if (rc)
        return rc;
    size_t mask = ((size_t)1 << t->bits) - 1;
    size_t h = shape_hash(parent, label, rep) & mask;
    for (;; h = (h + 1) & mask) {
        uint32_t i = t->slots[h];
        if (i == UINT32_MAX)
            break;
        const struct shape *s = &t->s[i];
        if (s->parent == parent && s->label == label && s->rep == rep) {
            *out = i;
            return MH_OK;
        }
    }
    if (t->n == t->cap) {
        uint32_t cap = t->cap ? t->cap * 2 : 256;
        struct shape *s = mh_realloc(t->s, (size_t)cap * sizeof(*s));
        if (!s)
            return MH_ENOMEM;
        t->s = s;
        t->cap = cap;
    }
    t->s[t->n] = (struct shape){parent, label, rep, 0, 0};
    t->slots[h] = t->n;
    *out = t->n++;
    return MH_OK;
}

static int
is_root_shape(const struct shape *s)
{
    return s->parent == SHAPE_ROOT || s->parent == SHAPE_EXT;
}

/* The shape of v, whose predecessor's shape is known. */
static int
child_shape(struct shapes *t, uint32_t pshape, uint32_t label, uint32_t *out)
{
    const struct shape *p = &t->s[pshape];
    if (!is_root_shape(p) && p->label == label) {
        if (p->rep >= 3) {
            *out = pshape;
            return MH_OK;
        }
        return shape_intern(t, p->parent, label, (uint8_t)(p->rep + 1), out);
    }
    return shape_intern(t, pshape, label, 1, out);
}

/* Writes shape i as a path. */
static int
shape_render(const struct shapes *t, uint32_t i, const struct mh_heap_graph *g,
             const char *const *names, struct mh_buf *out)
{
    const struct mh_heap_image *d = g->d;
    uint32_t depth = 0;
    for (uint32_t k = i; !is_root_shape(&t->s[k]); k = t->s[k].parent)
        depth++;
    uint32_t *chain = mh_malloc(((size_t)depth + 1) * sizeof(uint32_t));
    if (!chain)
        return MH_ENOMEM;
    uint32_t k = i;
    for (uint32_t j = depth; j > 0; j--) {
        chain[j - 1] = k;
        k = t->s[k].parent;
    }
    const struct shape *root = &t->s[k];
    int rc;
    if (root->parent == SHAPE_ROOT)
        rc = mh_heap_graph_root_name(d, root->label, out);
    else
        rc = mh_buf_printf(out, "<%s held by references the GC cannot see>",
                           names[root->label]);
    struct mh_buf step;
    mh_buf_init(&step, 1 << 20);
    for (uint32_t j = 0; rc == MH_OK && j < depth; j++) {
        const struct shape *s = &t->s[chain[j]];
        uint32_t lab = s->label, name = mh_heap_label_name(lab);
        int star = name == STAR_NAME;
        mh_buf_reset(&step);
        const char *holder = NULL;
        if (mh_heap_label_kind(lab) == MH_EDGE_NONE && name)
            holder = names[name - 1];
        rc = mh_heap_graph_edge(d, star ? (lab & MH_EDGE_KIND_MASK) : lab, -1,
                                star, holder, &step);
        if (rc == MH_OK && s->rep >= 3)
            rc = mh_buf_printf(out, "(%.*s){3,}", (int)step.len,
                               (const char *)step.data);
        for (uint8_t r = 0; rc == MH_OK && s->rep < 3 && r < s->rep; r++)
            rc = mh_buf_put(out, step.data, step.len);
    }
    mh_buf_release(&step);
    mh_free(chain);
    return rc;
}

/* Edges whose name can collapse to "*": not a pseudo-attribute such as
 * `<set member>` or `<lru_cache value>`, which every such child of a
 * container shares. */
static int
named(const struct mh_heap_image *d, uint32_t label)
{
    unsigned kind = mh_heap_label_kind(label);
    uint32_t name = mh_heap_label_name(label);
    if (kind == MH_EDGE_ATTR)
        return !name || mh_heap_str(d, name)[0] != '<';
    return kind == MH_EDGE_DICTVAL || kind == MH_EDGE_DICTKEY;
}

static int
pair_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Replaces fan[c] by the flow at or below which a named child of c
 * collapses: MH_HEAP_PATH_MEDIANS times the median flow of its named
 * children when it has more than MH_HEAP_PATH_FANOUT of them, else 0
 * (never). */
static int
thresholds(const struct mh_heap_graph *g, const uint32_t *flow, uint32_t *fan)
{
    const struct mh_heap_image *d = g->d;
    size_t n = 0;
    for (uint32_t i = 0; i < g->norder; i++) {
        uint32_t v = g->order[i], e = g->pred_edge[v];
        if (e < MH_GRAPH_FROM_EXT && flow[v] && named(d, d->edge_label[e]) &&
            fan[g->pred[v]] > MH_HEAP_PATH_FANOUT)
            n++;
    }
    /* (container << 32 | flow), sorted: each container's flows in a run */
    uint64_t *pairs = mh_malloc((n ? n : 1) * sizeof(uint64_t));
    if (!pairs)
        return MH_ENOMEM;
    size_t k = 0;
    for (uint32_t i = 0; i < g->norder; i++) {
        uint32_t v = g->order[i], e = g->pred_edge[v];
        if (e < MH_GRAPH_FROM_EXT && flow[v] && named(d, d->edge_label[e]) &&
            fan[g->pred[v]] > MH_HEAP_PATH_FANOUT)
            pairs[k++] = (uint64_t)g->pred[v] << 32 | flow[v];
    }
    if (n)
        qsort(pairs, n, sizeof(uint64_t), pair_cmp);
    for (uint32_t i = 0; i < g->norder; i++) {
        uint32_t c = g->order[i];
        if (fan[c] <= MH_HEAP_PATH_FANOUT)
            fan[c] = 0;
    }
    for (size_t i = 0; i < n;) {
        uint32_t c = (uint32_t)(pairs[i] >> 32);
        size_t j = i;
        while (j < n && (uint32_t)(pairs[j] >> 32) == c)
            j++;
        uint64_t median = (uint32_t)pairs[i + (j - i) / 2];
        uint64_t t = median * MH_HEAP_PATH_MEDIANS;
        fan[c] = t > UINT32_MAX - 1 ? UINT32_MAX - 1 : (uint32_t)t;
        i = j;
    }
    mh_free(pairs);
    return MH_OK;
}

static int
row_cmp(const void *a, const void *b)
{
    const struct mh_heap_path_row *x = a, *y = b;
    if (x->bytes != y->bytes)
        return x->bytes < y->bytes ? 1 : -1;
    if (x->count != y->count)
        return x->count < y->count ? 1 : -1;
    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    return x->key_ < y->key_ ? -1 : x->key_ > y->key_;
}

static int
add_row(struct mh_heap_paths *p, uint32_t *cap, uint32_t key,
        enum mh_heap_path_kind kind, uint64_t count, uint64_t bytes)
{
    if (p->n == *cap) {
        uint32_t ncap = *cap ? *cap * 2 : 32;
        struct mh_heap_path_row *r =
            mh_realloc(p->rows, (size_t)ncap * sizeof(*r));
        if (!r)
            return MH_ENOMEM;
        p->rows = r;
        *cap = ncap;
    }
    p->rows[p->n++] = (struct mh_heap_path_row){NULL, kind, count, bytes, key};
    return MH_OK;
}

int
mh_heap_paths_group(struct mh_heap_paths *p, const struct mh_heap_graph *g,
                    const uint8_t *sel, const uint32_t *group,
                    const char *const *names, uint32_t ngroups, uint32_t limit)
{
    const struct mh_heap_image *d = g->d;
    uint32_t n = d->nobjs;
    size_t cnt = n ? n : 1;
    mh_heap_paths_release(p);
    /* flow[v]: selected objects at or below v on the search tree; later
     * the shape of v. fan[c]/through[c]: for a container, how many named
     * children carry selected objects (then: the collapse threshold),
     * and how many they carry. */
    uint32_t *flow = mh_calloc(cnt, sizeof(uint32_t));
    uint32_t *fan = mh_calloc(cnt, sizeof(uint32_t));
    uint32_t *through = mh_calloc(cnt, sizeof(uint32_t));
    uint64_t *garbage = mh_calloc((size_t)ngroups * 2 + 1, sizeof(uint64_t));
    struct shapes t = {0};
    int rc = flow && fan && through && garbage ? MH_OK : MH_ENOMEM;
    for (uint32_t i = g->norder; rc == MH_OK && i > 0; i--) {
        uint32_t v = g->order[i - 1];
        flow[v] += sel[v] != 0;
        uint32_t e = g->pred_edge[v];
        if (e >= MH_GRAPH_FROM_EXT || !flow[v])
            continue;
        uint32_t c = g->pred[v];
        flow[c] += flow[v];
        if (named(d, d->edge_label[e])) {
            fan[c]++;
            through[c] += flow[v];
        }
    }
    if (rc == MH_OK)
        rc = thresholds(g, flow, fan);
    /* Shapes, forward: a predecessor comes before its successors. */
    for (uint32_t i = 0; rc == MH_OK && i < g->norder; i++) {
        uint32_t v = g->order[i];
        if (!flow[v])
            continue;
        uint32_t e = g->pred_edge[v], sh;
        if (e == MH_GRAPH_FROM_ROOT) {
            rc = shape_intern(&t, SHAPE_ROOT, g->pred[v], 1, &sh);
        } else if (e == MH_GRAPH_FROM_EXT) {
            rc = shape_intern(&t, SHAPE_EXT, group[d->type[v]], 1, &sh);
        } else {
            uint32_t c = g->pred[v], lab = d->edge_label[e];
            unsigned kind = mh_heap_label_kind(lab);
            if (kind == MH_EDGE_NONE)
                lab = (group[d->type[c]] + 1) << MH_EDGE_KIND_BITS;
            if (named(d, lab) && fan[c] &&
                (flow[v] <= fan[c] ||
                 (uint64_t)flow[v] * MH_HEAP_PATH_SHARE < through[c]))
                lab = STAR_NAME << MH_EDGE_KIND_BITS | kind;
            uint32_t pshape = flow[c];
            /* A key of an object's __dict__ hangs off the object: the
             * step ->__dict__['next'] is one step .next, which can
             * repeat. */
            uint32_t ce = g->pred_edge[c];
            if (kind == MH_EDGE_DICTVAL && ce < MH_GRAPH_FROM_EXT &&
                mh_heap_graph_is_dict_slot(d, d->edge_label[ce])) {
                pshape = flow[g->pred[c]];
                lab = (lab & ~MH_EDGE_KIND_MASK) | MH_EDGE_DICTATTR;
            }
            rc = child_shape(&t, pshape, lab, &sh);
        }
        /* flow[v] is no longer needed once v's children have been seen
         * in the backward pass: it now holds v's shape. */
        if (rc == MH_OK) {
            flow[v] = sh;
            if (sel[v]) {
                t.s[sh].count++;
                t.s[sh].bytes += d->size[v];
            }
        }
    }
    /* Selected objects nothing reaches: one row per type. */
    for (uint32_t o = 0; rc == MH_OK && o < n; o++)
        if (sel[o] && g->pred_edge[o] == MH_HEAP_NONE) {
            uint32_t gr = group[d->type[o]];
            garbage[2 * gr]++;
            garbage[2 * gr + 1] += d->size[o];
        }
    uint32_t cap = 0;
    for (uint32_t i = 0; rc == MH_OK && i < t.n; i++) {
        if (!t.s[i].count)
            continue;
        uint32_t k = i;
        while (!is_root_shape(&t.s[k]))
            k = t.s[k].parent;
        rc = add_row(p, &cap, i,
                     t.s[k].parent == SHAPE_ROOT ? MH_PATH_ROOTED
                                                 : MH_PATH_EXT,
                     t.s[i].count, t.s[i].bytes);
    }
    for (uint32_t gr = 0; rc == MH_OK && gr < ngroups; gr++)
        if (garbage[2 * gr])
            rc = add_row(p, &cap, gr, MH_PATH_GARBAGE, garbage[2 * gr],
                         garbage[2 * gr + 1]);
    if (rc == MH_OK && p->n)
        qsort(p->rows, p->n, sizeof(*p->rows), row_cmp);
    /* The paths of the rows that will be shown. */
    struct mh_buf b;
    mh_buf_init(&b, (size_t)1 << 24);
    uint32_t written[2] = {0, 0};
    for (uint32_t i = 0; rc == MH_OK && i < p->n; i++) {
        struct mh_heap_path_row *r = &p->rows[i];
        int section = r->kind != MH_PATH_ROOTED;
        if (limit && written[section] >= limit)
            continue;
        written[section]++;
        mh_buf_reset(&b);
        if (r->kind == MH_PATH_GARBAGE)
            rc = mh_buf_printf(&b, "<unreachable %s>", names[r->key_]);
        else
            rc = shape_render(&t, r->key_, g, names, &b);
        if (rc == MH_OK) {
            r->path = mh_strndup((const char *)b.data, b.len);
            rc = r->path ? MH_OK : MH_ENOMEM;
        }
    }
    mh_buf_release(&b);
    mh_free(t.s);
    mh_free(t.slots);
    mh_free(flow);
    mh_free(fan);
    mh_free(through);
    mh_free(garbage);
    return rc;
}
