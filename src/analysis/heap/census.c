/* Census by type (census.h). */
#include <stdlib.h>
#include <string.h>

#include "../../util/mem.h"
#include "census.h"

void
mh_heap_census_init(struct mh_heap_census *c)
{
    memset(c, 0, sizeof(*c));
}

void
mh_heap_census_release(struct mh_heap_census *c)
{
    mh_free(c->rows);
    mh_free(c->ext);
    mh_unreachable_release(&c->lu);
    mh_heap_census_init(c);
}

static int
row_cmp(const void *a, const void *b)
{
    const struct mh_heap_type_row *x = a, *y = b;
    if (x->bytes != y->bytes)
        return x->bytes < y->bytes ? 1 : -1;
    if (x->count != y->count)
        return x->count < y->count ? 1 : -1;
    return x->group < y->group ? -1 : x->group > y->group;
}

/* Rows for the groups with a count, sorted; takes `rows` (ngroups). */
static void
compact(struct mh_heap_type_row *rows, uint32_t ngroups, uint32_t *n)
{
    uint32_t k = 0;
    for (uint32_t g = 0; g < ngroups; g++)
        if (rows[g].count)
            rows[k++] = rows[g];
    if (k)
        qsort(rows, k, sizeof(*rows), row_cmp);
    *n = k;
}

int
mh_heap_census_build(struct mh_heap_census *c, struct mh_heap_session *a,
                     uint32_t ngroups)
{
    const struct mh_heap_image *d = &a->dump;
    mh_heap_census_release(c);
    int rc = mh_heap_session_dominators(a);
    if (rc)
        return rc;
    size_t ng = ngroups ? ngroups : 1;
    uint64_t *ret = mh_malloc(ng * sizeof(uint64_t));
    c->rows = mh_calloc(ng, sizeof(*c->rows));
    c->ext = mh_calloc(ng, sizeof(*c->ext));
    if (!ret || !c->rows || !c->ext) {
        mh_free(ret);
        return MH_ENOMEM;
    }
    rc = mh_heap_dom_by_group(&a->dom, a->group, ngroups, ret);
    if (rc) {
        mh_free(ret);
        return rc;
    }
    for (uint32_t g = 0; g < ngroups; g++) {
        c->rows[g].group = c->ext[g].group = g;
        c->rows[g].retained = ret[g];
    }
    mh_free(ret);
    for (uint32_t o = 0; o < d->nobjs; o++) {
        uint32_t g = a->group[d->type[o]];
        c->rows[g].count++;
        c->rows[g].bytes += d->size[o];
        c->count++;
        c->bytes += d->size[o];
        if (a->graph.reach[o] == MH_REACH_EXT) {
            c->ext[g].count++;
            c->ext[g].bytes += d->size[o];
            c->ext[g].retained += a->dom.retained[o];
        }
    }
    compact(c->rows, ngroups, &c->n);
    compact(c->ext, ngroups, &c->next);
    return mh_unreachable_build(&c->lu, &a->graph, a->group, NULL, a->cap);
}
