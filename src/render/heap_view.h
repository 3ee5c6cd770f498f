/* What the heap renderers (heap_text.c, heap_json.c) need to say about a
 * dump besides an analysis' rows. */
#ifndef MH_HEAP_VIEW_H
#define MH_HEAP_VIEW_H

#include <stdint.h>

#include "../analysis/heap/session.h"

struct mh_heap_view {
    const char *path; /* the dump's file, as the user named it */
    const struct mh_heap_session *a;
    const struct mh_heap_types *types;
    uint32_t top; /* rows per list; 0 = all */
};

#endif
