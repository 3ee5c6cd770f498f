/* Why a selection is alive (why.h). */
#include <string.h>

#include "../../util/buf.h"
#include "../../util/mem.h"
#include "why.h"

void
mh_heap_why_init(struct mh_heap_why *w)
{
    memset(w, 0, sizeof(*w));
}

void
mh_heap_why_release(struct mh_heap_why *w)
{
    uint32_t top = w->top;
    mh_free(w->sel);
    mh_free(w->groups);
    mh_heap_paths_release(&w->paths);
    mh_unreachable_release(&w->lu);
    mh_heap_why_init(w);
    w->top = top;
}

static int
alloc_sel(struct mh_heap_why *w, const struct mh_heap_session *a,
          uint32_t ngroups)
{
    mh_free(w->sel);
    mh_free(w->groups);
    w->groups = NULL;
    w->sel = mh_calloc(a->dump.nobjs ? a->dump.nobjs : 1, 1);
    if (!w->sel)
        return MH_ENOMEM;
    if (ngroups) {
        w->groups = mh_calloc(ngroups, 1);
        if (!w->groups)
            return MH_ENOMEM;
    }
    return MH_OK;
}

int
mh_heap_why_select_type(struct mh_heap_why *w, const struct mh_heap_session *a,
                        uint32_t group, uint32_t ngroups)
{
    int rc = alloc_sel(w, a, ngroups);
    if (rc)
        return rc;
    const struct mh_heap_image *d = &a->dump;
    for (uint32_t o = 0; o < d->nobjs; o++)
        w->sel[o] = a->group[d->type[o]] == group;
    if (group < ngroups)
        w->groups[group] = 1;
    return MH_OK;
}

int
mh_heap_why_select_object(struct mh_heap_why *w,
                          const struct mh_heap_session *a, uint32_t obj)
{
    /* No ALLOC join for one object: the groups table stays empty. */
    int rc = alloc_sel(w, a, 1);
    if (rc)
        return rc;
    if (obj < a->dump.nobjs)
        w->sel[obj] = 1;
    return MH_OK;
}

int
mh_heap_why_select_since(struct mh_heap_why *w,
                         const struct mh_heap_session *a,
                         const struct mh_heap_diff *df, uint32_t ngroups)
{
    int rc = alloc_sel(w, a, ngroups);
    if (rc)
        return rc;
    for (uint32_t i = 0; i < df->n; i++) {
        const struct mh_heap_diff_row *r = &df->rows[i];
        if (r->count_delta > 0 || r->bytes_delta > 0)
            w->groups[r->group] = 1;
    }
    const struct mh_heap_image *d = &a->dump;
    for (uint32_t o = 0; o < d->nobjs; o++)
        w->sel[o] = df->is_new[o] && w->groups[a->group[d->type[o]]];
    return MH_OK;
}

int
mh_heap_why_select_unreachable(struct mh_heap_why *w,
                               const struct mh_heap_session *a)
{
    int rc = alloc_sel(w, a, 0);
    if (rc)
        return rc;
    for (uint32_t o = 0; o < a->dump.nobjs; o++)
        w->sel[o] = a->graph.reach[o] != MH_REACH_ROOT;
    return MH_OK;
}

int
mh_heap_why_build(struct mh_heap_why *w, const struct mh_heap_session *a,
                  const struct mh_heap_types *types)
{
    const struct mh_heap_image *d = &a->dump;
    w->count = w->bytes = 0;
    memset(w->count_by, 0, sizeof(w->count_by));
    memset(w->bytes_by, 0, sizeof(w->bytes_by));
    for (uint32_t o = 0; o < d->nobjs; o++) {
        if (!w->sel[o])
            continue;
        w->count++;
        w->bytes += d->size[o];
        w->count_by[a->graph.reach[o]]++;
        w->bytes_by[a->graph.reach[o]] += d->size[o];
    }
    int rc = mh_heap_paths_group(&w->paths, &a->graph, w->sel, a->group,
                                 types->names, types->n, w->top);
    if (rc)
        return rc;
    if (w->count == 1 && w->paths.n == 1) {
        /* One object: its exact path, indices and all. */
        uint32_t o = 0;
        while (!w->sel[o])
            o++;
        struct mh_buf b;
        mh_buf_init(&b, (size_t)1 << 24);
        rc = mh_heap_graph_path(&a->graph, o, 4000, &b);
        char *s = rc ? NULL : mh_strndup((const char *)b.data, b.len);
        mh_buf_release(&b);
        if (!s)
            return rc ? rc : MH_ENOMEM;
        mh_free(w->paths.rows[0].path);
        w->paths.rows[0].path = s;
    }
    /* An address selects no ALLOC records (groups has one cleared
     * entry); a type or --since selects its types'; --unreachable all. */
    return mh_unreachable_build(&w->lu, &a->graph, a->group, w->groups,
                                a->cap);
}
