/* A byte budget for what a reader of untrusted input keeps: every table
 * it grows is charged to one counter against one limit, so a hostile file
 * can make the read fail, never make it allocate without end. The counter
 * belongs to the reader (it may report it); the budget points at it. */
#ifndef MH_BUDGET_H
#define MH_BUDGET_H

#include <stddef.h>

#include "msg.h"

struct mh_budget {
    size_t *used; /* bytes charged so far */
    size_t max;
};

/* Charges `add` bytes; MH_ETOOBIG, with nothing charged, past max. */
static inline int MH_MUST_USE
mh_budget_charge(struct mh_budget *b, size_t add)
{
    if (add > b->max - *b->used)
        return MH_ETOOBIG;
    *b->used += add;
    return MH_OK;
}

/* The capacity to grow to for `need` elements from `cap`: doubling, from
 * 64. */
size_t mh_budget_grown(size_t cap, size_t need);

/* Makes room for `need` elements of `elem` bytes in *arr (capacity *cap
 * elements), charging the growth. MH_ETOOBIG past the budget or MH_ENOMEM
 * leave *arr, *cap and the budget as they were. *arr comes from
 * mh_realloc(): the caller frees it with mh_free(). */
int mh_budget_grow(struct mh_budget *b, void **arr, size_t *cap, size_t need,
                   size_t elem) MH_MUST_USE;

#endif
