/* The verdict (analysis/report/verdict.h) as text and as JSON: `memhound
 * inspect` prints it alone, `memhound report` as a section (text) or the
 * "verdict" member (JSON, docs/report-json.md). */
#ifndef MH_RENDER_VERDICT_H
#define MH_RENDER_VERDICT_H

#include <stdio.h>

#include "../analysis/report/verdict.h"
#include "../util/msg.h"

/* `pid` names the process in the remedies' commands; 0 = a placeholder. */
void mh_verdict_text(FILE *out, const struct mh_verdict *v, long pid);
/* The object, starting at '{' (the caller writes the key). */
void mh_verdict_json(FILE *out, const struct mh_verdict *v);
/* A report's or inspect's verdicts: the summary across processes, the
 * growth sites, and each process's verdict (only the lead's figures when
 * there is one process). */
void mh_verdicts_text(FILE *out, const struct mh_verdicts *vs, long pid);
/* The lead process's fields with the overall verdict and the summary as
 * "why", then "summary", "sites" and "processes": [...]. */
void mh_verdicts_json(FILE *out, const struct mh_verdicts *vs);

#endif
