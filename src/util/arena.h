/* Strings copied into blocks that never move, so the pointers handed out
 * stay valid while more strings arrive; freed all at once. The format
 * readers keep every string of a file here, charged to their budget. A
 * zeroed struct is an empty arena. */
#ifndef MH_ARENA_H
#define MH_ARENA_H

#include <stddef.h>

#include "budget.h"
#include "msg.h"

/* Bytes of strings in a block: a string must be shorter. */
#define MH_ARENA_BLOCK (256u << 10)

struct mh_arena_block;

struct mh_arena {
    struct mh_arena_block *head; /* the block being filled */
};

/* Copies s[0..n), n < MH_ARENA_BLOCK, NUL-terminated; *copy points at the
 * copy, which the arena owns until mh_arena_release(). A new block is
 * charged to `b`: MH_ETOOBIG past it, MH_ENOMEM. */
int mh_arena_str(struct mh_arena *a, struct mh_budget *b, const char *s,
                 size_t n, const char **copy) MH_MUST_USE;

/* Frees every block (the budget is not credited) and empties the arena. */
void mh_arena_release(struct mh_arena *a);

#endif
