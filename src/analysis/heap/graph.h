/* Who holds what in a heap dump: reachability and shortest retention
 * paths.
 *
 * A breadth-first search from all roots at once (ROOT records, in the
 * order modules, sys, builtins, interpreter containers, frames, so that a
 * tie goes to the most stable name) gives every reached object its
 * predecessor on one shortest path; a second one from what the runtime
 * holds (kind 5: static types, interned strings...) reaches the rest.
 * What no root reaches is sorted out next:
 *   - an object whose reference count is above the references the dump
 *     found to it is "held by references the GC cannot see" (a C
 *     extension's missing DECREF, a C global): it seeds a second search,
 *     so what it holds gets a path too;
 *   - the rest is garbage: cycles the collector has not freed yet, or
 *     objects held only through references the walker did not name.
 * Counts at or above MH_HEAP_IMMORTAL_REFCNT are 3.12+'s immortal mark,
 * never evidence of a leak.
 *
 * Everything is in arrays indexed by object (16 bytes per object), and
 * iterative: a million-object dump takes tens of milliseconds. */
#ifndef MH_HEAP_GRAPH_H
#define MH_HEAP_GRAPH_H

#include <stdint.h>

#include "../../format/heap_read.h"
#include "../../util/buf.h"

enum mh_heap_reach {
    MH_REACH_GARBAGE = 0, /* nothing found holds it */
    MH_REACH_ROOT = 1,    /* reached from a root */
    MH_REACH_EXT = 2,     /* held by references the GC cannot see */
    MH_REACH_HELD = 3,    /* reached only from an EXT object */
};

/* pred_edge values that are not edge indices */
#define MH_GRAPH_FROM_ROOT (UINT32_MAX - 1) /* pred = the root's index */
#define MH_GRAPH_FROM_EXT (UINT32_MAX - 2)  /* pred = the object itself */

struct mh_heap_graph {
    const struct mh_heap_image *d; /* borrowed; must outlive the graph */
    uint32_t *pred;                /* predecessor object (see pred_edge) */
    uint32_t *pred_edge;           /* edge index from pred, a FROM_* mark, or
                                      MH_HEAP_NONE when not reached */
    uint32_t *order; /* reached objects in search order: those from
                        roots first (nrooted), then from EXT objects */
    uint32_t norder, nrooted;
    uint8_t *reach;       /* enum mh_heap_reach per object */
    uint32_t *root_order; /* root indices in search order */

    /* What the search found, per enum mh_heap_reach. */
    uint64_t count[4], bytes[4];
    uint64_t incomplete; /* reached objects whose edges the walker could
                            not follow (MH_OBJ_UNFOLLOWED): what they hold
                            may show as unreachable */
};

void mh_heap_graph_init(struct mh_heap_graph *g);
void mh_heap_graph_release(struct mh_heap_graph *g);

/* Searches `d` (parsed, so its edges are resolved). MH_ENOMEM. */
int mh_heap_graph_build(struct mh_heap_graph *g,
                        const struct mh_heap_image *d) MH_MUST_USE;

/* Appends the path by which object o is held, as a Python expression:
 * the root's name then one rendering per edge (docs/heap-format.md),
 * indices exact, runs of three or more identical steps written once as
 * "(.next){N}", at most about `max` bytes (the middle is elided past
 * that). An object held outside the GC starts as "<TYPE at 0xADDR held
 * by references the GC cannot see>"; one not reached at all is
 * "<unreachable TYPE at 0xADDR>". */
int mh_heap_graph_path(const struct mh_heap_graph *g, uint32_t o, size_t max,
                       struct mh_buf *out) MH_MUST_USE;

/* Inside the analyses only (the file reserves kind 7): a str key of an
 * object's __dict__, seen through "->__dict__", rendered ".key" (or
 * ".__dict__['not an identifier']"). The name is the key's repr. */
#define MH_EDGE_DICTATTR 7u

/* Whether `label` is "->__dict__". */
int mh_heap_graph_is_dict_slot(const struct mh_heap_image *d, uint32_t label);

/* Appends the rendering of one edge label to `out`: `index` is the
 * sequence index for kind 3 (or -1 for "[*]"); `star` writes the name as
 * "*"; `holder`, the type name of the object the edge leaves, follows
 * an unnamed reference ("->?<functools._lru_cache_wrapper>"), which is
 * a bare "->?" when it is NULL. */
int mh_heap_graph_edge(const struct mh_heap_image *d, uint32_t label,
                       int64_t index, int star, const char *holder,
                       struct mh_buf *out) MH_MUST_USE;

/* The name of root r as a path starts with it. */
int mh_heap_graph_root_name(const struct mh_heap_image *d, uint32_t r,
                            struct mh_buf *out) MH_MUST_USE;

#endif
