/* Two dumps compared (diff.h). */
#include <stdlib.h>
#include <string.h>

#include "../../util/mem.h"
#include "diff.h"

void
mh_heap_diff_init(struct mh_heap_diff *df)
{
    memset(df, 0, sizeof(*df));
}

void
mh_heap_diff_release(struct mh_heap_diff *df)
{
    mh_free(df->rows);
    mh_free(df->is_new);
    mh_heap_diff_init(df);
}

static int
row_cmp(const void *a, const void *b)
{
    const struct mh_heap_diff_row *x = a, *y = b;
    if (x->bytes_delta != y->bytes_delta)
        return x->bytes_delta < y->bytes_delta ? 1 : -1;
    if (x->count_delta != y->count_delta)
        return x->count_delta < y->count_delta ? 1 : -1;
    if (x->new_bytes != y->new_bytes)
        return x->new_bytes < y->new_bytes ? 1 : -1;
    return x->group < y->group ? -1 : x->group > y->group;
}

int
mh_heap_diff_build(struct mh_heap_diff *df, const struct mh_heap_session *old,
                   const struct mh_heap_session *cur, uint32_t ngroups)
{
    const struct mh_heap_image *od = &old->dump, *nd = &cur->dump;
    mh_heap_diff_release(df);
    df->rows = mh_calloc(ngroups ? ngroups : 1, sizeof(*df->rows));
    df->is_new = mh_calloc(nd->nobjs ? nd->nobjs : 1, 1);
    if (!df->rows || !df->is_new)
        return MH_ENOMEM;
    for (uint32_t g = 0; g < ngroups; g++)
        df->rows[g].group = g;
    for (uint32_t o = 0; o < od->nobjs; o++) {
        struct mh_heap_diff_row *r = &df->rows[old->group[od->type[o]]];
        r->old_count++;
        r->old_bytes += od->size[o];
    }
    for (uint32_t o = 0; o < nd->nobjs; o++) {
        uint32_t g = cur->group[nd->type[o]];
        struct mh_heap_diff_row *r = &df->rows[g];
        r->count++;
        r->bytes += nd->size[o];
        uint32_t was = mh_heap_find(od, nd->addr[o]);
        if (was == MH_HEAP_NONE || old->group[od->type[was]] != g) {
            df->is_new[o] = 1;
            r->new_count++;
            r->new_bytes += nd->size[o];
            df->new_count++;
            df->new_bytes += nd->size[o];
        }
    }
    uint32_t k = 0;
    for (uint32_t g = 0; g < ngroups; g++) {
        struct mh_heap_diff_row *r = &df->rows[g];
        if (!r->old_count && !r->count)
            continue;
        r->count_delta = (int64_t)(r->count - r->old_count);
        r->bytes_delta = (int64_t)(r->bytes - r->old_bytes);
        df->rows[k++] = *r;
    }
    df->n = k;
    if (k)
        qsort(df->rows, k, sizeof(*df->rows), row_cmp);
    return MH_OK;
}
