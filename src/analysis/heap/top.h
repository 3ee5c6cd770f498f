/* The objects whose removal would free the most: the dominator tree's
 * biggest retainers, each with its path from a root and what it holds. */
#ifndef MH_HEAP_TOP_H
#define MH_HEAP_TOP_H

#include <stdint.h>

#include "session.h"

#define MH_HEAP_TOP_HOLDS 3
/* Rows at most: each costs a walk of its path and of its subtree, which
 * on a million-deep chain is a million steps. */
#define MH_HEAP_TOP_MAX 100

struct mh_heap_top_row {
    uint32_t obj;
    uint64_t retained;
    uint32_t rcount;
    char *path; /* owned */
    /* The biggest types among what it retains (itself excluded). */
    struct {
        uint32_t group;
        uint64_t count, bytes;
    } holds[MH_HEAP_TOP_HOLDS];
    uint32_t nholds;
};

struct mh_heap_top {
    struct mh_heap_top_row *rows; /* by retained, largest first */
    uint32_t n;
};

void mh_heap_top_init(struct mh_heap_top *t);
void mh_heap_top_release(struct mh_heap_top *t);
/* Up to `top` rows (0 or more than MH_HEAP_TOP_MAX: MH_HEAP_TOP_MAX). See
 * mh_heap_dom_top() for `collapse`. */
int mh_heap_top_build(struct mh_heap_top *t, struct mh_heap_session *a,
                      uint32_t top, int collapse,
                      uint32_t ngroups) MH_MUST_USE;

#endif
