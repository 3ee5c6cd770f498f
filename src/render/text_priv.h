/* What the text report's files (text.c, text_endpoints.c) share; not for
 * use outside render/. */
#ifndef MH_RENDER_TEXT_PRIV_H
#define MH_RENDER_TEXT_PRIV_H

#include <stdio.h>

#include "../analysis/capture/analysis.h"

#define MARK_WEAK '?' /* a growth row or endpoint that is not significant */

/* A count in a few characters: 9999, 12.3k, 4.5M, 6.7G. */
void mh_text_count(char *buf, size_t size, double n);
/* s[0..n) with control characters replaced by '?'. */
void mh_text_put_safe(FILE *out, const char *s, size_t n);
/* String `id` of the analysis, as mh_text_put_safe() prints it. */
void mh_text_put_id(FILE *out, const struct mh_analysis *a, uint32_t id);
/* "file:line in function". */
void mh_text_put_frame(FILE *out, const struct mh_analysis *a,
                       const struct mh_site_frame *f);
/* The endpoints table (`full`: --by endpoint, each top endpoint with its
 * sites; else a compact table) and the findings (text_endpoints.c). */
void mh_text_endpoints(FILE *out, const struct mh_analysis *a, int full);
void mh_text_findings(FILE *out, const struct mh_analysis *a);

#endif
