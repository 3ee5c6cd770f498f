/* analysis/heap/: the analyses of heap dumps (.mhh), as `memhound heap`
 * and the report's heap section use them: one loaded dump (this header),
 * its reachability graph, dominator tree, retention paths, type names,
 * and the census, diff, why and top-retainers results; unreachable joins
 * the dump's ALLOC records with the walk. It may include format/ (the
 * heap and capture readers), util/ and its own folder; nothing here
 * prints or opens a file.
 *
 * One loaded heap dump, as the `memhound heap` analyses use it: the
 * parsed dump, its type groups in a table shared with the other dump of a
 * diff, its reachability search and (on demand) its dominator tree. The
 * analyses (census, diff, why, top) turn it into plain rows for the
 * renderers. */
#ifndef MH_HEAP_SESSION_H
#define MH_HEAP_SESSION_H

#include <stdint.h>

#include "../../format/capture_read.h"
#include "../../format/heap_read.h"
#include "unreachable.h"
#include "dominators.h"
#include "graph.h"
#include "paths.h"
#include "types.h"

/* No single Python object is this big: a shallow size above it is a
 * walker's misreading, counted as 0 (and reported) so that one bad
 * number does not swamp every total. */
#define MH_HEAP_SIZE_PLAUSIBLE ((uint64_t)1 << 40)

struct mh_heap_session {
    struct mh_heap_image dump;
    uint32_t *group; /* type index -> group of the shared type table */
    struct mh_heap_graph graph;
    struct mh_heap_dom dom; /* built by mh_heap_session_dominators() */
    int have_dom;
    uint64_t bad_sizes; /* objects whose size was over
                           MH_HEAP_SIZE_PLAUSIBLE, now 0 */
    /* The target's capture, to name ALLOC stacks: the one
     * mh_heap_session_add_capture() parsed (owned), or set by the caller
     * (borrowed); may stay NULL. */
    const struct mh_cap_reader *cap;
    struct mh_cap_reader *own_cap; /* what add_capture parsed, or NULL */
    char error[300];               /* why a call failed */
};

void mh_heap_session_init(struct mh_heap_session *a);
void mh_heap_session_release(struct mh_heap_session *a);

/* Parses buf[0..len) (which may go away afterwards), adds its types to
 * `types` (whose names then point into a->dump: release `types` first)
 * and searches it. `max_bytes` bounds the parse (0 = default).
 * On failure a->error says why (the parser's offset and reason, or out
 * of memory); a truncated dump is not a failure (a->dump.truncated). */
int mh_heap_session_load(struct mh_heap_session *a,
                         struct mh_heap_types *types, const uint8_t *buf,
                         size_t len, size_t max_bytes) MH_MUST_USE;
/* Parses the target's capture in buf[0..len) (which may go away
 * afterwards) for a->cap, to name the lines that allocated
 * live-but-unreachable blocks; a releases it. On failure a->error says
 * why (the reader's reason). */
int mh_heap_session_add_capture(struct mh_heap_session *a, const uint8_t *buf,
                                size_t len) MH_MUST_USE;
/* Builds the dominator tree, once. */
int mh_heap_session_dominators(struct mh_heap_session *a) MH_MUST_USE;

#endif
