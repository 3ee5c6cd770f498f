/* The allocators' own view of the target's memory, for the TIMELINE
 * record and the control channel's `stats`: pymalloc's arenas and the free
 * space inside them, glibc's mallinfo2(). Runs on the writer thread only;
 * the cached values are that thread's (the control channel is served from
 * its tick too). docs/verdict.md says what the numbers are for. */
#ifndef MH_AGENT_ALLOCSTATS_H
#define MH_AGENT_ALLOCSTATS_H

#include <stddef.h>
#include <stdint.h>

#include "../format/capture.h"

/* The latest values, MH_TL_* flags saying which are known. */
struct mh_allocstats {
    uint64_t flags;
    uint64_t arena_bytes, arena_free;
    uint64_t malloc_arena, malloc_inuse, malloc_free, malloc_mmap;
};

/* Refreshes the cache: mallinfo2() every call (cheap, no GIL), pymalloc
 * when `with_pymalloc` (takes the GIL: walks every pool, so the writer
 * asks once a second, not every tick). */
void mh_allocstats_refresh(int with_pymalloc);
/* The cached values. */
const struct mh_allocstats *mh_allocstats_get(void);
/* Copies the cache into a timeline record's allocator fields. */
void mh_allocstats_fill(struct mh_cap_timeline *t);

/* Parses the text _PyObject_DebugMallocStats() prints (the same on
 * 3.9-3.13): "N arenas * S bytes/arena = total", "# bytes in available
 * blocks = n" and "N unused pools * S bytes = n" (numbers with thousands
 * separators). 0, or -1 when the arena line is missing. */
int mh_allocstats_parse_pymalloc(const char *text, size_t len,
                                 uint64_t *arena_bytes, uint64_t *arena_free);

/* RSS from /proc/self/statm, in bytes (0 when unreadable). */
uint64_t mh_allocstats_rss(void);

#endif
