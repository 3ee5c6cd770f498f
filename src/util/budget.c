/* Growing tables against a byte budget (budget.h). */
#include <stdint.h>

#include "budget.h"
#include "mem.h"

size_t
mh_budget_grown(size_t cap, size_t need)
{
    size_t ncap = cap ? cap : 64;
    while (ncap < need)
        ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
    return ncap;
}

int
mh_budget_grow(struct mh_budget *b, void **arr, size_t *cap, size_t need,
               size_t elem)
{
    if (need <= *cap)
        return MH_OK;
    if (need > b->max / elem)
        return MH_ETOOBIG;
    size_t ncap = mh_budget_grown(*cap, need);
    if (ncap > b->max / elem)
        ncap = need;
    size_t add = (ncap - *cap) * elem;
    if (mh_budget_charge(b, add))
        return MH_ETOOBIG;
    void *p = mh_realloc(*arr, ncap * elem);
    if (!p) {
        *b->used -= add;
        return MH_ENOMEM;
    }
    *arr = p;
    *cap = ncap;
    return MH_OK;
}
