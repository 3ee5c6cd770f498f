/* The heap analyses as text for a terminal. Each returns MH_EIO when
 * writing fails. Names from the dump (types, keys, root names) are
 * printed with control characters replaced. */
#ifndef MH_HEAP_TEXT_H
#define MH_HEAP_TEXT_H

#include <stdio.h>

#include "../analysis/heap/census.h"
#include "../analysis/heap/diff.h"
#include "../analysis/heap/top.h"
#include "../analysis/heap/why.h"
#include "heap_view.h"

int mh_heap_text_census(FILE *out, const struct mh_heap_view *v,
                        const struct mh_heap_census *c) MH_MUST_USE;
int mh_heap_text_diff(FILE *out, const struct mh_heap_view *old,
                      const struct mh_heap_view *cur,
                      const struct mh_heap_diff *df) MH_MUST_USE;
/* `what` describes the selection ("type 'str'", "objects new since
 * 'a.mhh' of types that grew"). */
int mh_heap_text_why(FILE *out, const struct mh_heap_view *v, const char *what,
                     const struct mh_heap_why *w) MH_MUST_USE;
int mh_heap_text_top(FILE *out, const struct mh_heap_view *v,
                     const struct mh_heap_top *t) MH_MUST_USE;

#endif
