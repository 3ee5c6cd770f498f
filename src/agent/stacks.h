/* The stack interner: hash-consing of whole stacks, so a record carries
 * one stack id (tracemalloc interns tracebacks the same way).
 *
 * Stacks live in an arena and never move; ids are dense from 1, and the
 * id -> stack directory grows in fixed chunks so the writer thread can
 * read stacks [1, count] published before it took the tracker lock
 * without holding it while it resolves them. All memory comes from
 * mh_malloc() (the saved RAW allocator in the agent). Protected by the
 * tracker lock, except mh_stacks_get() on published ids. */
#ifndef MH_AGENT_STACKS_H
#define MH_AGENT_STACKS_H

#include <stddef.h>
#include <stdint.h>

#include "../util/msg.h"
#include "frames.h"

struct mh_stack {
    uint64_t hash;
    uint32_t id;
    uint32_t depth;
    struct mh_rawframe frames[]; /* innermost first */
};

#define MH_STACKS_CHUNK 1024
#define MH_STACKS_MAX_CHUNKS 4096 /* at most 4M distinct stacks */

struct mh_stacks {
    struct mh_stack **table; /* open addressing, power-of-two size */
    size_t table_size;
    struct mh_stack **dir[MH_STACKS_MAX_CHUNKS]; /* id - 1 -> stack */
    uint32_t count;
    /* arena */
    uint8_t *block;
    size_t block_used, block_size;
    void **blocks; /* every block, to free them */
    size_t nblocks, blocks_cap;
    size_t bytes;     /* memory held, for stats */
    size_t max_bytes; /* interning fails past this */
};

void mh_stacks_init(struct mh_stacks *s, size_t max_bytes);
void mh_stacks_release(struct mh_stacks *s);

/* Returns the id of the stack frames[0..depth) (depth may be 0 for the
 * empty stack, which is id 0), interning it when new; *is_new tells which.
 * Returns 0 with *is_new = 0 when memory or a cap ran out. */
uint32_t mh_stacks_intern(struct mh_stacks *s, const struct mh_rawframe *f,
                          uint32_t depth, int *is_new);

/* The stack with that id (1..count); stable for the interner's life. */
static inline const struct mh_stack *
mh_stacks_get(const struct mh_stacks *s, uint32_t id)
{
    uint32_t i = id - 1;
    return s->dir[i / MH_STACKS_CHUNK][i % MH_STACKS_CHUNK];
}

#endif
