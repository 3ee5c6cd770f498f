/* The report as JSON: a stable interface, specified in
 * docs/report-json.md (change both together, and only by adding). */
#ifndef MH_JSON_H
#define MH_JSON_H

#include <stdio.h>

#include "../analysis/capture/analysis.h"
#include "../util/json.h" /* mh_json_put_str, mh_json_put_int */

/* Writes the finished analysis to `out`. MH_EIO when writing fails. */
int mh_json_render(FILE *out, const struct mh_analysis *a) MH_MUST_USE;

/* The same, with more members of the top-level object written by
 * `more` (e.g. `"heap": {...}`, no separator before it) at the end. */
typedef int (*mh_json_more_fn)(FILE *out, void *ctx);
int mh_json_render_with(FILE *out, const struct mh_analysis *a,
                        mh_json_more_fn more, void *ctx) MH_MUST_USE;

#endif
