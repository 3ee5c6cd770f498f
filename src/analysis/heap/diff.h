/* What changed between two dumps, by type: count and bytes, and by
 * identity.
 *
 * Identity: an object of NEW is "new" when OLD has no object at its
 * address with the same type name. Addresses are reused after a free, so
 * an object freed and replaced by another of the same type at the same
 * address counts as old: the new counts are a lower bound, never inflated
 * by reuse. */
#ifndef MH_HEAP_DIFF_H
#define MH_HEAP_DIFF_H

#include <stdint.h>

#include "session.h"

struct mh_heap_diff_row {
    uint32_t group;
    uint64_t old_count, old_bytes, count, bytes;
    int64_t count_delta, bytes_delta;
    uint64_t new_count, new_bytes; /* objects new by identity */
};

struct mh_heap_diff {
    struct mh_heap_diff_row *rows; /* every type in either, by
                                      bytes_delta, largest first */
    uint32_t n;
    uint8_t *is_new; /* per object of NEW */
    uint64_t new_count, new_bytes;
};

void mh_heap_diff_init(struct mh_heap_diff *df);
void mh_heap_diff_release(struct mh_heap_diff *df);
/* Both dumps' groups must come from one type table with `ngroups`. */
int mh_heap_diff_build(struct mh_heap_diff *df,
                       const struct mh_heap_session *old,
                       const struct mh_heap_session *cur,
                       uint32_t ngroups) MH_MUST_USE;

#endif
