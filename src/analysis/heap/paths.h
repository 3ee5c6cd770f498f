/* Retention paths grouped by shape: why a set of objects is alive, in a
 * few lines.
 *
 * Each selected object's shortest path (graph.h) is reduced to its
 * shape: the root, then per edge its kind and its name, with
 *   - sequence indices always "[*]";
 *   - a dict key or attribute name "*" when the container it is read
 *     from fans out (more than MH_HEAP_PATH_FANOUT named children carry
 *     selected objects) and this child is not one that stands out: it
 *     carries at most MH_HEAP_PATH_MEDIANS times the median of its
 *     siblings, or less than 1/MH_HEAP_PATH_SHARE of what passes the
 *     container. A 100,000-key cache becomes cache[*]; a module keeps
 *     the names of the globals that hold much, whatever the others do;
 *   - a step repeated three or more times in a row written once, as
 *     "(.next){3,}", so a linked list is one shape, not one per depth.
 * Objects with the same shape make one row with their count and shallow
 * bytes. The numbers needed (how many selected objects lie below each
 * object on the search tree, and below each container how many names
 * they spread over) come from one backward pass over the search order,
 * plus a sort of the children of the containers that fan out: about
 * linear in the dump, whatever the number of selected objects. */
#ifndef MH_HEAP_PATHS_H
#define MH_HEAP_PATHS_H

#include <stdint.h>

#include "graph.h"

#define MH_HEAP_PATH_FANOUT 8
#define MH_HEAP_PATH_MEDIANS 4
#define MH_HEAP_PATH_SHARE 1000

enum mh_heap_path_kind {
    MH_PATH_ROOTED = 0,  /* reached from a root */
    MH_PATH_EXT = 1,     /* from an object held by references the GC
                            cannot see */
    MH_PATH_GARBAGE = 2, /* reached by nothing: path is "<unreachable T>" */
};

struct mh_heap_path_row {
    char *path; /* owned by the list; NULL past the rows written */
    enum mh_heap_path_kind kind;
    uint64_t count, bytes;
    uint32_t key_; /* private: the shape, or the type of a garbage row */
};

struct mh_heap_paths {
    struct mh_heap_path_row *rows; /* by bytes, largest first */
    uint32_t n;
};

void mh_heap_paths_init(struct mh_heap_paths *p);
void mh_heap_paths_release(struct mh_heap_paths *p);

/* Groups the objects o with sel[o] != 0. `group` maps type indices to
 * type groups and `names` gives the group names (for the rows of
 * unreachable objects, one per type). Only the first `limit` rows of
 * those reached from roots, and the first `limit` of the others, get
 * their path written (0 = all): the rest are counts, and a hostile dump
 * cannot make the writing quadratic. MH_ENOMEM. */
int mh_heap_paths_group(struct mh_heap_paths *p, const struct mh_heap_graph *g,
                        const uint8_t *sel, const uint32_t *group,
                        const char *const *names, uint32_t ngroups,
                        uint32_t limit) MH_MUST_USE;

#endif
