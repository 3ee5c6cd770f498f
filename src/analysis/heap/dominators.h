/* The dominator tree of a heap dump and the retained sizes it gives.
 *
 * Object d dominates o when every path from a root to o passes through
 * d: freeing d (dropping the references to it) frees o too. The retained
 * size of d is the shallow size of everything it dominates, itself
 * included. A virtual root stands above the roots; objects that no root
 * reaches hang under it too (those held outside the GC first, then the
 * rest), so every object has a retained size.
 *
 * Lengauer–Tarjan with path compression ("simple" linking, O(m log n)),
 * over CSR arrays, with an iterative DFS and an iterative compress: no
 * recursion, so a million-long list is no deeper than a dict. About 60
 * bytes per object and 4 per edge while it runs; 16 per object kept. */
#ifndef MH_HEAP_DOM_H
#define MH_HEAP_DOM_H

#include <stdint.h>

#include "graph.h"

struct mh_heap_dom {
    const struct mh_heap_image *d; /* borrowed */
    uint32_t *idom;                /* immediate dominator; MH_HEAP_NONE = the
                                      virtual root */
    uint64_t *retained;            /* bytes */
    uint32_t *rcount;              /* objects retained, itself included */
    /* The tree's children lists (CSR): children of object o are
     * child[child_start[o] .. child_start[o + 1]); those of the virtual
     * root at index d->nobjs. */
    uint32_t *child_start, *child;
};

void mh_heap_dom_init(struct mh_heap_dom *t);
void mh_heap_dom_release(struct mh_heap_dom *t);

/* Builds the tree for g's dump. MH_ENOMEM. */
int mh_heap_dom_build(struct mh_heap_dom *t,
                      const struct mh_heap_graph *g) MH_MUST_USE;

/* Retained bytes per type group: for each group, the sum of the
 * retained sizes of its objects that no object of the same group
 * dominates (so a dict inside a dict is not counted twice). `group` maps
 * a type index to its group; out has `ngroups` entries, zeroed here. */
int mh_heap_dom_by_group(const struct mh_heap_dom *t, const uint32_t *group,
                         uint32_t ngroups, uint64_t *out) MH_MUST_USE;

/* Up to `top` objects by retained size, largest first, into out[] (the
 * count is returned in *n). With `collapse`, an object is left out when
 * one object it dominates retains at least 90% of what it does: of a
 * chain module -> dict -> instance -> list that all retain the same
 * megabytes, only the list, where the memory fans out, is listed. */
int mh_heap_dom_top(const struct mh_heap_dom *t, uint32_t top, int collapse,
                    uint32_t *out, uint32_t *n) MH_MUST_USE;

#endif
