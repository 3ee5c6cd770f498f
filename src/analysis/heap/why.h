/* Why a selection of objects is alive: its retention paths grouped by
 * shape (paths.h), what of it no root reaches, and the ALLOC records
 * of its types that no root reaches. */
#ifndef MH_HEAP_WHY_H
#define MH_HEAP_WHY_H

#include <stdint.h>

#include "session.h"
#include "diff.h"

struct mh_heap_why {
    uint8_t *sel;    /* per object: selected */
    uint8_t *groups; /* per group: the selection's types (for the ALLOC
                        join); NULL = any */
    uint64_t count, bytes;
    uint64_t count_by[4], bytes_by[4]; /* by enum mh_heap_reach */
    struct mh_heap_paths paths;
    struct mh_unreachable lu;
    uint32_t top; /* paths written per list (set before building; 0 =
                     all): the other rows only count */
};

void mh_heap_why_init(struct mh_heap_why *w);
void mh_heap_why_release(struct mh_heap_why *w);

/* Selections: each sets w->sel (and w->groups). */
int mh_heap_why_select_type(struct mh_heap_why *w,
                            const struct mh_heap_session *a, uint32_t group,
                            uint32_t ngroups) MH_MUST_USE;
int mh_heap_why_select_object(struct mh_heap_why *w,
                              const struct mh_heap_session *a,
                              uint32_t obj) MH_MUST_USE;
/* The objects new since OLD (df built from OLD to a) whose type grew in
 * count or bytes. */
int mh_heap_why_select_since(struct mh_heap_why *w,
                             const struct mh_heap_session *a,
                             const struct mh_heap_diff *df,
                             uint32_t ngroups) MH_MUST_USE;
/* Everything no root reaches. */
int
mh_heap_why_select_unreachable(struct mh_heap_why *w,
                               const struct mh_heap_session *a) MH_MUST_USE;
/* Groups the selection's paths and joins the ALLOC records. */
int mh_heap_why_build(struct mh_heap_why *w, const struct mh_heap_session *a,
                      const struct mh_heap_types *types) MH_MUST_USE;

#endif
