/* The heap analyses as JSON: a stable interface, specified in
 * docs/heap-json.md (change both together, and only by adding). Each
 * returns MH_EIO when writing fails. */
#ifndef MH_HEAP_JSON_H
#define MH_HEAP_JSON_H

#include <stdio.h>

#include "../analysis/heap/census.h"
#include "../analysis/heap/diff.h"
#include "../analysis/heap/top.h"
#include "../analysis/heap/why.h"
#include "heap_view.h"

int mh_heap_json_census(FILE *out, const struct mh_heap_view *v,
                        const struct mh_heap_census *c) MH_MUST_USE;
int mh_heap_json_diff(FILE *out, const struct mh_heap_view *old,
                      const struct mh_heap_view *cur,
                      const struct mh_heap_diff *df) MH_MUST_USE;
/* `by` is "type", "address", "since" or "unreachable"; `value` what was
 * given with it (NULL for unreachable). */
int mh_heap_json_why(FILE *out, const struct mh_heap_view *v, const char *by,
                     const char *value,
                     const struct mh_heap_why *w) MH_MUST_USE;
int mh_heap_json_top(FILE *out, const struct mh_heap_view *v,
                     const struct mh_heap_top *t) MH_MUST_USE;

#endif
