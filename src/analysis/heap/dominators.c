/* Dominator tree and retained sizes (dominators.h).
 *
 * Lengauer & Tarjan, "A fast algorithm for finding dominators in a
 * flowgraph" (1979), with simple linking and path compression. Vertices
 * are numbered in DFS preorder from 1 (the virtual root); 0 means
 * "none". Everything indexed by that number lives in flat arrays. */
#include <stdlib.h>
#include <string.h>

#include "../../util/mem.h"
#include "dominators.h"

void
mh_heap_dom_init(struct mh_heap_dom *t)
{
    memset(t, 0, sizeof(*t));
}

void
mh_heap_dom_release(struct mh_heap_dom *t)
{
    mh_free(t->idom);
    mh_free(t->retained);
    mh_free(t->rcount);
    mh_free(t->child_start);
    mh_free(t->child);
    mh_heap_dom_init(t);
}

/* The working state of one build, by preorder number unless said. */
struct lt {
    uint32_t nv;      /* vertices: objects + the virtual root */
    uint32_t *vertex; /* number -> object (vertex[1] unused) */
    uint32_t *dfn;    /* object -> number */
    uint32_t *parent, *semi, *idom, *ancestor, *label, *bucket, *next;
    uint8_t *vsucc;           /* object -> the virtual root points at it */
    uint32_t *rstart, *rpred; /* predecessors of each object (CSR) */
    uint32_t *stack;          /* DFS stack (2 words an entry), then the
                                 compress stack */
};

static void
lt_release(struct lt *s)
{
    mh_free(s->vertex);
    mh_free(s->dfn);
    mh_free(s->parent);
    mh_free(s->semi);
    mh_free(s->idom);
    mh_free(s->ancestor);
    mh_free(s->label);
    mh_free(s->bucket);
    mh_free(s->next);
    mh_free(s->vsucc);
    mh_free(s->rstart);
    mh_free(s->rpred);
    mh_free(s->stack);
}

static int
lt_alloc(struct lt *s, const struct mh_heap_image *d)
{
    size_t nv = (size_t)d->nobjs + 2;
    memset(s, 0, sizeof(*s));
    s->nv = d->nobjs + 1;
    s->vertex = mh_malloc(nv * sizeof(uint32_t));
    s->dfn = mh_calloc(nv, sizeof(uint32_t));
    s->parent = mh_malloc(nv * sizeof(uint32_t));
    s->semi = mh_malloc(nv * sizeof(uint32_t));
    s->idom = mh_calloc(nv, sizeof(uint32_t));
    s->ancestor = mh_calloc(nv, sizeof(uint32_t));
    s->label = mh_malloc(nv * sizeof(uint32_t));
    s->bucket = mh_calloc(nv, sizeof(uint32_t));
    s->next = mh_malloc(nv * sizeof(uint32_t));
    s->vsucc = mh_calloc(nv, 1);
    s->rstart = mh_calloc(nv, sizeof(uint32_t));
    s->rpred = mh_malloc(((size_t)d->nedges + 1) * sizeof(uint32_t));
    s->stack = mh_malloc(nv * 2 * sizeof(uint32_t));
    if (!s->vertex || !s->dfn || !s->parent || !s->semi || !s->idom ||
        !s->ancestor || !s->label || !s->bucket || !s->next || !s->vsucc ||
        !s->rstart || !s->rpred || !s->stack)
        return MH_ENOMEM;
    return MH_OK;
}

/* Predecessor lists: the sources of the edges into each object. */
static void
lt_preds(struct lt *s, const struct mh_heap_image *d)
{
    for (uint32_t e = 0; e < d->nedges; e++)
        if (d->edge_to[e] != MH_HEAP_NONE)
            s->rstart[d->edge_to[e] + 1]++;
    for (uint32_t o = 0; o < d->nobjs; o++)
        s->rstart[o + 1] += s->rstart[o];
    /* Filled with a cursor per object (borrowing `next`). */
    uint32_t *cur = s->next;
    memcpy(cur, s->rstart, (size_t)d->nobjs * sizeof(uint32_t));
    for (uint32_t u = 0; u < d->nobjs; u++)
        for (uint32_t e = d->edge_start[u]; e < d->edge_start[u + 1]; e++) {
            uint32_t v = d->edge_to[e];
            if (v != MH_HEAP_NONE)
                s->rpred[cur[v]++] = u;
        }
}

/* Depth-first from `seed`, a child of the virtual root; numbers from
 * *count + 1 on. */
static void
lt_dfs(struct lt *s, const struct mh_heap_image *d, uint32_t seed,
       uint32_t *count)
{
    uint32_t *stk = s->stack; /* pairs: object, next edge */
    size_t sp = 0;
    uint32_t n = ++*count;
    s->dfn[seed] = n;
    s->vertex[n] = seed;
    s->parent[n] = 1;
    stk[sp++] = seed;
    stk[sp++] = d->edge_start[seed];
    while (sp) {
        uint32_t u = stk[sp - 2];
        uint32_t e = stk[sp - 1];
        if (e == d->edge_start[u + 1]) {
            sp -= 2;
            continue;
        }
        stk[sp - 1] = e + 1;
        uint32_t v = d->edge_to[e];
        if (v == MH_HEAP_NONE || s->dfn[v])
            continue;
        n = ++*count;
        s->dfn[v] = n;
        s->vertex[n] = v;
        s->parent[n] = s->dfn[u];
        stk[sp++] = v;
        stk[sp++] = d->edge_start[v];
    }
}

/* Path compression, iterative: the recursion's stack is s->stack. */
static void
lt_compress(struct lt *s, uint32_t v)
{
    uint32_t *anc = s->ancestor, *label = s->label, *semi = s->semi;
    size_t sp = 0;
    uint32_t x = v;
    while (anc[anc[x]] != 0) {
        s->stack[sp++] = x;
        x = anc[x];
    }
    while (sp) {
        uint32_t y = s->stack[--sp];
        uint32_t a = anc[y];
        if (semi[label[a]] < semi[label[y]])
            label[y] = label[a];
        anc[y] = anc[a];
    }
}

static inline uint32_t
lt_eval(struct lt *s, uint32_t v)
{
    if (s->ancestor[v] == 0)
        return v;
    lt_compress(s, v);
    return s->label[v];
}

static void
lt_run(struct lt *s)
{
    uint32_t nv = s->nv;
    for (uint32_t w = 1; w <= nv; w++) {
        s->semi[w] = w;
        s->label[w] = w;
    }
    for (uint32_t w = nv; w >= 2; w--) {
        uint32_t o = s->vertex[w];
        if (s->vsucc[o]) {
            s->semi[w] = 1; /* the virtual root is a predecessor */
        } else {
            for (uint32_t k = s->rstart[o]; k < s->rstart[o + 1]; k++) {
                uint32_t u = lt_eval(s, s->dfn[s->rpred[k]]);
                if (s->semi[u] < s->semi[w])
                    s->semi[w] = s->semi[u];
            }
        }
        s->next[w] = s->bucket[s->semi[w]];
        s->bucket[s->semi[w]] = w;
        uint32_t p = s->parent[w];
        s->ancestor[w] = p;
        for (uint32_t v = s->bucket[p]; v; v = s->next[v]) {
            uint32_t u = lt_eval(s, v);
            s->idom[v] = s->semi[u] < s->semi[v] ? u : p;
        }
        s->bucket[p] = 0;
    }
    for (uint32_t w = 2; w <= nv; w++)
        if (s->idom[w] != s->semi[w])
            s->idom[w] = s->idom[s->idom[w]];
    s->idom[1] = 0;
}

int
mh_heap_dom_build(struct mh_heap_dom *t, const struct mh_heap_graph *g)
{
    const struct mh_heap_image *d = g->d;
    uint32_t n = d->nobjs;
    struct lt s;
    mh_heap_dom_release(t);
    t->d = d;
    int rc = lt_alloc(&s, d);
    if (rc) {
        lt_release(&s);
        return rc;
    }
    lt_preds(&s, d);

    /* The virtual root's successors, in this order: the roots, the
     * objects held outside the GC, then whatever is still unnumbered. */
    uint32_t count = 1;
    s.vertex[1] = MH_HEAP_NONE;
    s.parent[1] = 0;
    for (uint32_t i = 0; i < d->nroots; i++) {
        uint32_t o = d->roots[g->root_order[i]].obj;
        if (o == MH_HEAP_NONE)
            continue;
        s.vsucc[o] = 1;
        if (!s.dfn[o])
            lt_dfs(&s, d, o, &count);
    }
    for (uint32_t o = 0; o < n; o++)
        if (g->reach[o] == MH_REACH_EXT) {
            s.vsucc[o] = 1;
            if (!s.dfn[o])
                lt_dfs(&s, d, o, &count);
        }
    for (uint32_t o = 0; o < n; o++)
        if (!s.dfn[o]) {
            s.vsucc[o] = 1;
            lt_dfs(&s, d, o, &count);
        }
    lt_run(&s);

    size_t cnt = n ? n : 1;
    t->idom = mh_malloc(cnt * sizeof(uint32_t));
    t->retained = mh_malloc(cnt * sizeof(uint64_t));
    t->rcount = mh_malloc(cnt * sizeof(uint32_t));
    if (!t->idom || !t->retained || !t->rcount) {
        lt_release(&s);
        return MH_ENOMEM;
    }
    for (uint32_t o = 0; o < n; o++) {
        uint32_t p = s.idom[s.dfn[o]];
        t->idom[o] = p >= 2 ? s.vertex[p] : MH_HEAP_NONE;
        t->retained[o] = d->size[o];
        t->rcount[o] = 1;
    }
    /* A dominator comes before what it dominates in preorder. */
    for (uint32_t w = s.nv; w >= 2; w--) {
        uint32_t p = s.idom[w];
        if (p >= 2) {
            uint32_t o = s.vertex[w], po = s.vertex[p];
            t->retained[po] += t->retained[o];
            t->rcount[po] += t->rcount[o];
        }
    }
    /* The children lists, in preorder. */
    uint32_t *order = s.vertex; /* kept until the lists are made */
    s.vertex = NULL;
    lt_release(&s);
    t->child_start = mh_calloc((size_t)n + 2, sizeof(uint32_t));
    t->child = mh_malloc(cnt * sizeof(uint32_t));
    if (!t->child_start || !t->child) {
        mh_free(order);
        return MH_ENOMEM;
    }
    for (uint32_t o = 0; o < n; o++) {
        uint32_t p = t->idom[o] == MH_HEAP_NONE ? n : t->idom[o];
        t->child_start[p + 1]++;
    }
    for (uint32_t i = 0; i <= n; i++)
        t->child_start[i + 1] += t->child_start[i];
    uint32_t *cur = mh_malloc(((size_t)n + 1) * sizeof(uint32_t));
    if (!cur) {
        mh_free(order);
        return MH_ENOMEM;
    }
    memcpy(cur, t->child_start, ((size_t)n + 1) * sizeof(uint32_t));
    for (uint32_t w = 2; w <= n + 1; w++) {
        uint32_t o = order[w];
        uint32_t p = t->idom[o] == MH_HEAP_NONE ? n : t->idom[o];
        t->child[cur[p]++] = o;
    }
    mh_free(cur);
    mh_free(order);
    return MH_OK;
}

int
mh_heap_dom_by_group(const struct mh_heap_dom *t, const uint32_t *group,
                     uint32_t ngroups, uint64_t *out)
{
    const struct mh_heap_image *d = t->d;
    uint32_t n = d->nobjs;
    memset(out, 0, (size_t)ngroups * sizeof(uint64_t));
    if (!n)
        return MH_OK;
    /* Depth-first over the tree, counting per group the objects of that
     * group on the way down: an object whose group count is 0 is the
     * top of its group's subtree. */
    uint32_t *active = mh_calloc(ngroups ? ngroups : 1, sizeof(uint32_t));
    uint32_t *stk = mh_malloc(((size_t)n + 1) * 2 * sizeof(uint32_t));
    if (!active || !stk) {
        mh_free(active);
        mh_free(stk);
        return MH_ENOMEM;
    }
    size_t sp = 0;
    stk[sp++] = n; /* the virtual root */
    stk[sp++] = t->child_start[n];
    while (sp) {
        uint32_t u = stk[sp - 2];
        uint32_t c = stk[sp - 1];
        if (c == t->child_start[u + 1]) {
            sp -= 2;
            if (u != n)
                active[group[d->type[u]]]--;
            continue;
        }
        stk[sp - 1] = c + 1;
        uint32_t v = t->child[c];
        uint32_t gv = group[d->type[v]];
        if (active[gv]++ == 0)
            out[gv] += t->retained[v];
        stk[sp++] = v;
        stk[sp++] = t->child_start[v];
    }
    mh_free(active);
    mh_free(stk);
    return MH_OK;
}

/* Order for the top list: more retained first, then lower index. */
static int
before(const struct mh_heap_dom *t, uint32_t a, uint32_t b)
{
    if (t->retained[a] != t->retained[b])
        return t->retained[a] > t->retained[b];
    return a < b;
}

/* A min-heap on `before`: heap[0] is the entry that would go first. */
static void
sift_down(const struct mh_heap_dom *t, uint32_t *h, uint32_t n, uint32_t i)
{
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && before(t, h[m], h[l]))
            m = l;
        if (r < n && before(t, h[m], h[r]))
            m = r;
        if (m == i)
            return;
        uint32_t x = h[i];
        h[i] = h[m];
        h[m] = x;
        i = m;
    }
}

int
mh_heap_dom_top(const struct mh_heap_dom *t, uint32_t top, int collapse,
                uint32_t *out, uint32_t *n)
{
    const struct mh_heap_image *d = t->d;
    uint32_t k = 0;
    *n = 0;
    if (top == 0)
        return MH_OK;
    /* out[] is the heap: the weakest kept entry on top ("before" is
     * reversed), replaced when a stronger one comes. */
    for (uint32_t o = 0; o < d->nobjs; o++) {
        if (collapse) {
            uint64_t big = 0;
            for (uint32_t c = t->child_start[o]; c < t->child_start[o + 1];
                 c++)
                if (t->retained[t->child[c]] > big)
                    big = t->retained[t->child[c]];
            if (big && big >= t->retained[o] / 10 * 9)
                continue;
        }
        if (k < top) {
            out[k++] = o;
            /* sift up */
            for (uint32_t i = k - 1; i > 0;) {
                uint32_t p = (i - 1) / 2;
                if (!before(t, out[p], out[i]))
                    break;
                uint32_t x = out[i];
                out[i] = out[p];
                out[p] = x;
                i = p;
            }
        } else if (before(t, o, out[0])) {
            out[0] = o;
            sift_down(t, out, k, 0);
        }
    }
    /* Heap sort the kept entries: pop the weakest to the end. */
    for (uint32_t m = k; m > 1; m--) {
        uint32_t x = out[0];
        out[0] = out[m - 1];
        out[m - 1] = x;
        sift_down(t, out, m - 1, 0);
    }
    *n = k;
    return MH_OK;
}
