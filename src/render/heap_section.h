/* The joined leak report's section (analysis/report/heap_section.h) in the
 * report: text after the rest of the report, and the "heap" member of the JSON
 * report (docs/report-json.md). */
#ifndef MH_RENDER_HEAP_SECTION_H
#define MH_RENDER_HEAP_SECTION_H

#include <stdio.h>

#include "../analysis/report/heap_section.h"

/* Writes the text section; nothing when the captures name no dump.
 * MH_EIO when writing fails. */
int mh_heap_section_text_render(FILE *out,
                                const struct mh_heap_section *j) MH_MUST_USE;

/* Writes `"heap": {...}` (a member of the report's object, without a
 * separator before it). MH_EIO when writing fails. */
int mh_heap_section_json_render(FILE *out,
                                const struct mh_heap_section *j) MH_MUST_USE;

#endif
