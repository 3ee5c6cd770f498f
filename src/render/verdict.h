/* The verdict (analysis/verdict.h) as text and as JSON: `memhound
 * inspect` prints it alone, `memhound report` as a section (text) or the
 * "verdict" member (JSON, docs/report-json.md). */
#ifndef MH_RENDER_VERDICT_H
#define MH_RENDER_VERDICT_H

#include <stdio.h>

#include "../analysis/verdict.h"
#include "../util/msg.h"

/* `pid` names the process in the remedies' commands; 0 = a placeholder. */
void mh_verdict_text(FILE *out, const struct mh_verdict *v, long pid);
/* The object, starting at '{' (the caller writes the key). */
void mh_verdict_json(FILE *out, const struct mh_verdict *v);

#endif
