/* The biggest retainers (top.h). */
#include <string.h>

#include "../../util/buf.h"
#include "../../util/mem.h"
#include "top.h"

void
mh_heap_top_init(struct mh_heap_top *t)
{
    memset(t, 0, sizeof(*t));
}

void
mh_heap_top_release(struct mh_heap_top *t)
{
    for (uint32_t i = 0; i < t->n; i++)
        mh_free(t->rows[i].path);
    mh_free(t->rows);
    mh_heap_top_init(t);
}

/* What object o dominates, by type: the biggest MH_HEAP_TOP_HOLDS. `acc`
 * (2 words per group) is zero on entry and on return; `stk` holds the
 * whole tree. */
static void
holds(struct mh_heap_top_row *row, const struct mh_heap_session *a,
      uint64_t *acc, uint32_t *stk, uint32_t *touched)
{
    const struct mh_heap_image *d = &a->dump;
    const struct mh_heap_dom *t = &a->dom;
    size_t sp = 0, nt = 0;
    for (uint32_t c = t->child_start[row->obj];
         c < t->child_start[row->obj + 1]; c++)
        stk[sp++] = t->child[c];
    while (sp) {
        uint32_t v = stk[--sp];
        uint32_t g = a->group[d->type[v]];
        if (!acc[2 * g])
            touched[nt++] = g;
        acc[2 * g]++;
        acc[2 * g + 1] += d->size[v];
        for (uint32_t c = t->child_start[v]; c < t->child_start[v + 1]; c++)
            stk[sp++] = t->child[c];
    }
    row->nholds = 0;
    for (size_t i = 0; i < nt; i++) {
        uint32_t g = touched[i];
        uint64_t bytes = acc[2 * g + 1];
        /* insertion into the small sorted list */
        uint32_t k = row->nholds < MH_HEAP_TOP_HOLDS ? row->nholds++
                                                     : MH_HEAP_TOP_HOLDS;
        while (k > 0 && row->holds[k - 1].bytes < bytes) {
            if (k < MH_HEAP_TOP_HOLDS)
                row->holds[k] = row->holds[k - 1];
            k--;
        }
        if (k < MH_HEAP_TOP_HOLDS) {
            row->holds[k].group = g;
            row->holds[k].count = acc[2 * g];
            row->holds[k].bytes = bytes;
        }
        acc[2 * g] = acc[2 * g + 1] = 0;
    }
}

int
mh_heap_top_build(struct mh_heap_top *t, struct mh_heap_session *a,
                  uint32_t top, int collapse, uint32_t ngroups)
{
    mh_heap_top_release(t);
    int rc = mh_heap_session_dominators(a);
    if (rc)
        return rc;
    uint32_t n = a->dump.nobjs;
    if (top == 0 || top > MH_HEAP_TOP_MAX)
        top = MH_HEAP_TOP_MAX;
    if (top > n)
        top = n;
    uint32_t *objs = mh_malloc((top ? top : 1) * sizeof(uint32_t));
    uint32_t *stk = mh_malloc((n ? n : 1) * sizeof(uint32_t));
    uint32_t *touched = mh_malloc((ngroups ? ngroups : 1) * sizeof(uint32_t));
    uint64_t *acc =
        mh_calloc(ngroups ? 2 * (size_t)ngroups : 1, sizeof(uint64_t));
    uint32_t k = 0;
    rc = objs && stk && touched && acc ? MH_OK : MH_ENOMEM;
    if (rc == MH_OK)
        rc = mh_heap_dom_top(&a->dom, top, collapse, objs, &k);
    if (rc == MH_OK && k) {
        t->rows = mh_calloc(k, sizeof(*t->rows));
        rc = t->rows ? MH_OK : MH_ENOMEM;
    }
    struct mh_buf b;
    mh_buf_init(&b, (size_t)1 << 24);
    for (uint32_t i = 0; rc == MH_OK && i < k; i++) {
        struct mh_heap_top_row *row = &t->rows[i];
        row->obj = objs[i];
        row->retained = a->dom.retained[row->obj];
        row->rcount = a->dom.rcount[row->obj];
        holds(row, a, acc, stk, touched);
        mh_buf_reset(&b);
        rc = mh_heap_graph_path(&a->graph, row->obj, 2000, &b);
        if (rc == MH_OK) {
            row->path = mh_strndup((const char *)b.data, b.len);
            rc = row->path ? MH_OK : MH_ENOMEM;
        }
        t->n = i + 1;
    }
    mh_buf_release(&b);
    mh_free(objs);
    mh_free(stk);
    mh_free(touched);
    mh_free(acc);
    return rc;
}
