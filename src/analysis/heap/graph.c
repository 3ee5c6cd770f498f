/* Reachability and exact retention paths (graph.h). */
#include <stdio.h>
#include <string.h>

#include "../../util/mem.h"
#include "graph.h"

void
mh_heap_graph_init(struct mh_heap_graph *g)
{
    memset(g, 0, sizeof(*g));
}

void
mh_heap_graph_release(struct mh_heap_graph *g)
{
    mh_free(g->pred);
    mh_free(g->pred_edge);
    mh_free(g->order);
    mh_free(g->reach);
    mh_free(g->root_order);
    mh_heap_graph_init(g);
}

/* Search order of root kinds: stable names first; from RANK_RUNTIME on,
 * searched only for what the others do not reach. */
#define RANK_RUNTIME 5

static unsigned
root_rank(uint32_t kind)
{
    switch (kind) {
    case MH_ROOT_MODULES:
        return 0;
    case MH_ROOT_SYS:
        return 1;
    case MH_ROOT_BUILTINS:
        return 2;
    case MH_ROOT_INTERP:
        return 3;
    case MH_ROOT_FRAME:
        return 4;
    default: /* MH_ROOT_RUNTIME, and kinds of later versions */
        return RANK_RUNTIME;
    }
}

/* Visits the edges of everything queued from order[head] on. */
static void
bfs(struct mh_heap_graph *g, uint32_t head)
{
    const struct mh_heap_image *d = g->d;
    while (head < g->norder) {
        uint32_t u = g->order[head++];
        for (uint32_t e = d->edge_start[u]; e < d->edge_start[u + 1]; e++) {
            uint32_t v = d->edge_to[e];
            if (v == MH_HEAP_NONE || g->pred_edge[v] != MH_HEAP_NONE)
                continue;
            g->pred[v] = u;
            g->pred_edge[v] = e;
            g->order[g->norder++] = v;
        }
    }
}

int
mh_heap_graph_build(struct mh_heap_graph *g, const struct mh_heap_image *d)
{
    uint32_t n = d->nobjs;
    size_t cnt = n ? n : 1;
    mh_heap_graph_release(g);
    g->d = d;
    g->pred = mh_malloc(cnt * sizeof(uint32_t));
    g->pred_edge = mh_malloc(cnt * sizeof(uint32_t));
    g->order = mh_malloc(cnt * sizeof(uint32_t));
    g->reach = mh_calloc(cnt, 1);
    g->root_order = mh_malloc((d->nroots ? d->nroots : 1) * sizeof(uint32_t));
    if (!g->pred || !g->pred_edge || !g->order || !g->reach || !g->root_order)
        return MH_ENOMEM;
    memset(g->pred_edge, 0xff, cnt * sizeof(uint32_t));

    /* Roots by rank, stable: a counting sort over six ranks. */
    uint32_t start[7] = {0};
    for (uint32_t r = 0; r < d->nroots; r++)
        start[root_rank(d->roots[r].kind) + 1]++;
    for (int k = 1; k < 7; k++)
        start[k] += start[k - 1];
    for (uint32_t r = 0; r < d->nroots; r++)
        g->root_order[start[root_rank(d->roots[r].kind)]++] = r;

    /* Two searches: the containers, frames and interpreter state first,
     * then what the runtime holds (static types, interned strings,
     * immortal objects: kind 5 and unknown kinds) for what is left, so a
     * path goes through them only where nothing else leads. */
    uint32_t next = 0;
    for (int pass = 0; pass < 2; pass++) {
        uint32_t from = g->norder;
        for (; next < d->nroots; next++) {
            uint32_t r = g->root_order[next];
            if (!pass && root_rank(d->roots[r].kind) >= RANK_RUNTIME)
                break;
            uint32_t o = d->roots[r].obj;
            if (o == MH_HEAP_NONE || g->pred_edge[o] != MH_HEAP_NONE)
                continue;
            g->pred[o] = r;
            g->pred_edge[o] = MH_GRAPH_FROM_ROOT;
            g->order[g->norder++] = o;
        }
        bfs(g, from);
    }
    g->nrooted = g->norder;

    /* References found to each unreached object, from anywhere in the
     * dump (reached objects need no count). */
    uint32_t *found = mh_calloc(cnt, sizeof(uint32_t));
    if (!found)
        return MH_ENOMEM;
    for (uint32_t e = 0; e < d->nedges; e++) {
        uint32_t v = d->edge_to[e];
        if (v != MH_HEAP_NONE && g->pred_edge[v] == MH_HEAP_NONE &&
            found[v] != UINT32_MAX)
            found[v]++;
    }
    uint32_t head = g->norder;
    for (uint32_t o = 0; o < n; o++) {
        uint32_t rc = d->refcnt[o];
        if (g->pred_edge[o] != MH_HEAP_NONE || rc <= found[o] ||
            rc >= MH_HEAP_IMMORTAL_REFCNT)
            continue;
        g->pred[o] = o;
        g->pred_edge[o] = MH_GRAPH_FROM_EXT;
        g->order[g->norder++] = o;
    }
    mh_free(found);
    bfs(g, head);

    for (uint32_t i = 0; i < g->norder; i++) {
        uint32_t o = g->order[i];
        g->reach[o] = i < g->nrooted                         ? MH_REACH_ROOT
                      : g->pred_edge[o] == MH_GRAPH_FROM_EXT ? MH_REACH_EXT
                                                             : MH_REACH_HELD;
        if (i < g->nrooted && (d->flags[o] & MH_OBJ_UNFOLLOWED))
            g->incomplete++;
    }
    for (uint32_t o = 0; o < n; o++) {
        g->count[g->reach[o]]++;
        g->bytes[g->reach[o]] += d->size[o];
    }
    return MH_OK;
}

/* --- rendering ------------------------------------------------------ */

/* A str repr that is a plain identifier ('abc'): its length without the
 * quotes, else 0. */
static size_t
identifier_repr(const char *s, size_t n)
{
    if (n < 3 || (s[0] != '\'' && s[0] != '"') || s[n - 1] != s[0])
        return 0;
    for (size_t i = 1; i < n - 1; i++) {
        unsigned char c = (unsigned char)s[i];
        int alpha =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if (!alpha && !(i > 1 && c >= '0' && c <= '9'))
            return 0;
    }
    return n - 2;
}

static int
put_s(struct mh_buf *out, const char *s)
{
    return mh_buf_put(out, s, strlen(s));
}

int
mh_heap_graph_is_dict_slot(const struct mh_heap_image *d, uint32_t label)
{
    uint32_t name = mh_heap_label_name(label);
    return mh_heap_label_kind(label) == MH_EDGE_SLOT && name &&
           d->strings[name].n == 8 &&
           !memcmp(d->strings[name].s, "__dict__", 8);
}

int
mh_heap_graph_edge(const struct mh_heap_image *d, uint32_t label,
                   int64_t index, int star, const char *holder,
                   struct mh_buf *out)
{
    unsigned kind = mh_heap_label_kind(label);
    uint32_t name = mh_heap_label_name(label);
    const char *s = star ? "*" : name ? mh_heap_str(d, name) : "?";
    switch (kind) {
    case MH_EDGE_ATTR:
        return mh_buf_printf(out, ".%s", s);
    case MH_EDGE_DICTVAL:
        return mh_buf_printf(out, "[%s]", s);
    case MH_EDGE_ITEM:
        if (index < 0)
            return put_s(out, "[*]");
        return mh_buf_printf(out, "[%lld]", (long long)index);
    case MH_EDGE_DICTKEY:
        return mh_buf_printf(out, "<key %s>", s);
    case MH_EDGE_CELL:
        return mh_buf_printf(out, ".<closure %s>", s);
    case MH_EDGE_SLOT:
        /* obj->__dict__ is obj.__dict__ to Python too */
        if (mh_heap_graph_is_dict_slot(d, label))
            return put_s(out, ".__dict__");
        return mh_buf_printf(out, "->%s", s);
    case MH_EDGE_DICTATTR: {
        /* obj->__dict__['key'] is obj.key */
        size_t n = star || !name ? 0 : identifier_repr(s, d->strings[name].n);
        if (n)
            return mh_buf_printf(out, ".%.*s", (int)n, s + 1);
        return mh_buf_printf(out, ".__dict__[%s]", s);
    }
    default:
        if (holder)
            return mh_buf_printf(out, "->?<%s>", holder);
        return put_s(out, "->?");
    }
}

int
mh_heap_graph_root_name(const struct mh_heap_image *d, uint32_t r,
                        struct mh_buf *out)
{
    const struct mh_heap_root *root = &d->roots[r];
    if (root->name)
        return mh_buf_put(out, d->strings[root->name].s,
                          d->strings[root->name].n);
    return mh_buf_printf(out, "<root of kind %u>", root->kind);
}

/* The index of edge e among the kind-3 edges of its source u. */
static int64_t
item_index(const struct mh_heap_image *d, uint32_t u, uint32_t e)
{
    int64_t i = 0;
    for (uint32_t k = d->edge_start[u]; k < e; k++)
        i += mh_heap_label_kind(d->edge_label[k]) == MH_EDGE_ITEM;
    return i;
}

/* Pieces of a rendered path: text with offsets. */
struct pieces {
    struct mh_buf text;
    size_t *off; /* piece i is text[off[i], off[i + 1]) */
    size_t n, cap;
};

static int
piece_end(struct pieces *p)
{
    if (p->n + 2 > p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        size_t *off = mh_realloc(p->off, cap * sizeof(size_t));
        if (!off)
            return MH_ENOMEM;
        p->off = off;
        p->cap = cap;
    }
    if (p->n == 0)
        p->off[0] = 0;
    p->off[++p->n] = p->text.len;
    return MH_OK;
}

static int
piece_eq(const struct pieces *p, size_t i, size_t j)
{
    size_t li = p->off[i + 1] - p->off[i], lj = p->off[j + 1] - p->off[j];
    return li == lj &&
           !memcmp(p->text.data + p->off[i], p->text.data + p->off[j], li);
}

static void
pieces_release(struct pieces *p)
{
    mh_buf_release(&p->text);
    mh_free(p->off);
}

/* Writes the pieces, at most about `max` bytes: past that the middle
 * becomes "...". */
static int
pieces_write(const struct pieces *p, size_t max, struct mh_buf *out)
{
    size_t total = p->n ? p->off[p->n] : 0;
    if (total <= max)
        return mh_buf_put(out, p->text.data, total);
    size_t head = 0, tail = p->n;
    while (head < p->n && p->off[head + 1] <= max / 2)
        head++;
    while (tail > head && total - p->off[tail - 1] <= max / 2)
        tail--;
    int rc = mh_buf_put(out, p->text.data, p->off[head]);
    if (rc == MH_OK)
        rc = mh_buf_put(out, "...", 3);
    if (rc == MH_OK)
        rc =
            mh_buf_put(out, p->text.data + p->off[tail], total - p->off[tail]);
    return rc;
}

int
mh_heap_graph_path(const struct mh_heap_graph *g, uint32_t o, size_t max,
                   struct mh_buf *out)
{
    const struct mh_heap_image *d = g->d;
    if (g->pred_edge[o] == MH_HEAP_NONE)
        return mh_buf_printf(out, "<unreachable %s at 0x%llx>",
                             mh_heap_type_name(d, o),
                             (unsigned long long)d->addr[o]);
    /* The chain of edges, root first. */
    size_t depth = 0;
    for (uint32_t v = o; g->pred_edge[v] < MH_GRAPH_FROM_EXT; v = g->pred[v])
        depth++;
    uint32_t *edges = mh_malloc((depth ? depth : 1) * sizeof(uint32_t));
    uint32_t *src = mh_malloc((depth ? depth : 1) * sizeof(uint32_t));
    struct pieces steps = {0}, runs = {0};
    mh_buf_init(&steps.text, (size_t)1 << 30);
    mh_buf_init(&runs.text, (size_t)1 << 30);
    int rc = edges && src ? MH_OK : MH_ENOMEM;
    uint32_t v = o;
    for (size_t i = depth; rc == MH_OK && i > 0; i--) {
        edges[i - 1] = g->pred_edge[v];
        src[i - 1] = g->pred[v];
        v = g->pred[v];
    }
    if (rc == MH_OK && g->pred_edge[v] == MH_GRAPH_FROM_ROOT)
        rc = mh_heap_graph_root_name(d, g->pred[v], &runs.text);
    else if (rc == MH_OK)
        rc = mh_buf_printf(&runs.text,
                           "<%s at 0x%llx held by references the GC cannot "
                           "see>",
                           mh_heap_type_name(d, v),
                           (unsigned long long)d->addr[v]);
    if (rc == MH_OK)
        rc = piece_end(&runs);
    for (size_t i = 0; rc == MH_OK && i < depth; i++) {
        uint32_t e = edges[i];
        uint32_t lab = d->edge_label[e];
        if (i + 1 < depth && mh_heap_graph_is_dict_slot(d, lab) &&
            mh_heap_label_kind(d->edge_label[edges[i + 1]]) ==
                MH_EDGE_DICTVAL) {
            e = edges[++i];
            lab = (d->edge_label[e] & ~MH_EDGE_KIND_MASK) | MH_EDGE_DICTATTR;
        }
        int64_t idx = mh_heap_label_kind(lab) == MH_EDGE_ITEM
                          ? item_index(d, src[i], e)
                          : 0;
        rc = mh_heap_graph_edge(d, lab, idx, 0, mh_heap_type_name(d, src[i]),
                                &steps.text);
        if (rc == MH_OK)
            rc = piece_end(&steps);
    }
    /* Runs of three or more identical steps are written once. */
    for (size_t i = 0; rc == MH_OK && i < steps.n;) {
        size_t j = i + 1;
        while (j < steps.n && piece_eq(&steps, i, j))
            j++;
        const char *t = (const char *)steps.text.data + steps.off[i];
        int len = (int)(steps.off[i + 1] - steps.off[i]);
        if (j - i >= 3) {
            rc = mh_buf_printf(&runs.text, "(%.*s){%zu}", len, t, j - i);
            if (rc == MH_OK)
                rc = piece_end(&runs);
        } else {
            for (size_t k = i; rc == MH_OK && k < j; k++) {
                rc = mh_buf_put(&runs.text, t, (size_t)len);
                if (rc == MH_OK)
                    rc = piece_end(&runs);
            }
        }
        i = j;
    }
    if (rc == MH_OK)
        rc = pieces_write(&runs, max, out);
    pieces_release(&steps);
    pieces_release(&runs);
    mh_free(edges);
    mh_free(src);
    return rc;
}
