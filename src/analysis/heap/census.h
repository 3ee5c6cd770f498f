/* Census of one dump by type: count, shallow bytes, retained bytes (from
 * the dominator tree), the objects held by references the GC cannot see,
 * and the live-but-unreachable ALLOC join. */
#ifndef MH_HEAP_CENSUS_H
#define MH_HEAP_CENSUS_H

#include <stdint.h>

#include "session.h"

struct mh_heap_type_row {
    uint32_t group;
    uint64_t count, bytes, retained;
};

struct mh_heap_census {
    struct mh_heap_type_row *rows; /* every type present, by bytes */
    uint32_t n;
    uint64_t count, bytes;
    /* Objects held by references the GC cannot see, by type; retained =
     * what they keep alive. */
    struct mh_heap_type_row *ext;
    uint32_t next;
    struct mh_unreachable lu; /* live but unreachable */
};

void mh_heap_census_init(struct mh_heap_census *c);
void mh_heap_census_release(struct mh_heap_census *c);
/* Needs the dominator tree (built here when missing). */
int mh_heap_census_build(struct mh_heap_census *c, struct mh_heap_session *a,
                         uint32_t ngroups) MH_MUST_USE;

#endif
