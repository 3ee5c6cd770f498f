/* The stack interner: hash-consing of stacks, so a record carries one
 * stack id (tracemalloc interns tracebacks the same way).
 *
 * Stacks are stored as a prefix tree grown from the outermost frame: a
 * node is (parent node, frame), and a stack is the node of its innermost
 * frame. The outer frames that deep stacks share (a Django request's
 * dozens of frames of handler, middleware and ORM above every
 * allocation) are stored once: 16 bytes per distinct node instead of 16
 * bytes per frame of every stack, ~5x less on the Django benchmarks.
 *
 * Stack ids are dense from 1 in the order stacks are first interned, as
 * the capture has always numbered them. Nodes and the stack directory
 * live in segments that double in size and never move, so the writer
 * thread can read stacks [1, count] published before it took the tracker
 * lock without holding it while it resolves them (a node never changes
 * once made). All memory comes from mh_malloc() (the saved RAW allocator
 * in the agent). Protected by the tracker lock, except mh_stacks_get() on
 * published ids. */
#ifndef MH_AGENT_STACKS_H
#define MH_AGENT_STACKS_H

#include <stddef.h>
#include <stdint.h>

#include "../util/msg.h"
#include "frames.h"

struct mh_stack_node {
    PyCodeObject *code;
    uint32_t offset;
    uint32_t parent; /* the node of the next outer frame; 0 = none */
};

/* Segment k holds MH_STACKS_SEG0 << k entries: 24 segments are more than
 * any cap allows. */
#define MH_STACKS_SEG0_BITS 8
#define MH_STACKS_SEG0 (1u << MH_STACKS_SEG0_BITS)
#define MH_STACKS_SEGS 24
#define MH_STACKS_MAX_IDS ((1u << 24) - 1) /* stack ids fit 24 bits */
#define MH_STACKS_PATH_MAX 256             /* frames `path` keeps */

struct mh_stacks {
    /* Nodes, ids 1..nnodes. stack_of[] gives the stack a node ends (0 =
     * none yet): read only by the interner, under the lock. */
    struct mh_stack_node *nodes[MH_STACKS_SEGS];
    uint32_t *stack_of[MH_STACKS_SEGS];
    uint32_t nnodes;
    /* Stacks, ids 1..count -> their innermost node. */
    uint32_t *leaf[MH_STACKS_SEGS];
    uint32_t count;
    /* (parent, frame) -> node id: open addressing, power-of-two size,
     * 0 = empty. */
    uint32_t *table;
    size_t table_size;
    /* The nodes of the last stack interned, outermost first: samples in a
     * row share most of their outer frames, which then cost a compare
     * each instead of a lookup. path[i]'s parent is path[i - 1]. */
    uint32_t *path;
    uint32_t path_len;
    size_t bytes;     /* memory held, for stats */
    size_t max_bytes; /* interning fails past this */
};

void mh_stacks_init(struct mh_stacks *s, size_t max_bytes);
void mh_stacks_release(struct mh_stacks *s);

/* Returns the id of the stack frames[0..depth) (innermost first; depth
 * may be 0 for the empty stack, which is id 0), interning it when new;
 * *is_new tells which. Returns 0 with *is_new = 0 when memory or a cap ran
 * out. */
uint32_t mh_stacks_intern(struct mh_stacks *s, const struct mh_rawframe *f,
                          uint32_t depth, int *is_new) MH_MUST_USE;

/* Copies the frames of stack `id` (1..count), innermost first, into
 * out[0..max) and returns its depth (at most max). Stable for the
 * interner's life. */
uint32_t mh_stacks_get(const struct mh_stacks *s, uint32_t id,
                       struct mh_rawframe *out, uint32_t max);

#endif
