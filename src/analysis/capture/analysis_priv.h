/* What the capture analysis' files share (analysis.c: the captures in;
 * sites.c: stacks folded into sites; finish.c: the ranked result). Not
 * for use outside analysis/capture/. */
#ifndef MH_ANALYSIS_PRIV_H
#define MH_ANALYSIS_PRIV_H

#include <stddef.h>
#include <stdint.h>

#include "../../format/capture_read.h"
#include "../../util/msg.h"
#include "analysis.h"
#include "live_replay.h"

/* A user frame that leads to a site, with the bytes behind it (or, in
 * a list of callers, the user frame that called a site's user frame). */
struct cand {
    uint32_t site;
    struct mh_site_frame f;
    struct mh_site_frame callee; /* a caller's: the user frame it called;
                                    zero in the list of user frames */
    int direct;                  /* f was a stack's innermost frame */
    double growth, live;
};

struct candlist {
    struct cand *v;
    size_t n, cap;
};

/* Sites with a hash index on their key. */
struct sitetab {
    struct mh_site *v;
    size_t n, cap;
    uint32_t *slots; /* site index + 1; 0 = empty */
    size_t nslots;
};

struct mh_analysis_priv {
    /* The sites of the growth and live lists (a->sites mirrors main.v),
     * and, when those are not by line, the line sites of the endpoints. */
    struct sitetab main, line;
    size_t procs_cap;
    struct candlist cands; /* the sites' user frames */
    struct candlist vias;  /* their callers (mh_site.via) */
};

/* Sets a->error from the format and returns rc. */
int mh_analysis_errorf(struct mh_analysis *a, int rc, const char *fmt, ...)
    MH_PRINTF(3, 4);

/* sites.c */
/* Folds the stacks of one replayed capture into a's sites (span_s: its
 * duration minus the warm-up, seconds), and its (endpoint, stack) pairs
 * into line sites. */
int mh_analysis_fold(struct mh_analysis *a, const struct mh_cap_reader *r,
                     const struct mh_live_replay *rp, double span_s);
/* Where the endpoints' sites (by line) live. */
struct sitetab *mh_analysis_line_tab(struct mh_analysis *a);
int mh_analysis_frame_cmp(const struct mh_site_frame *a,
                          const struct mh_site_frame *b);
/* Sorts the candidates and sums duplicates. */
void mh_analysis_reduce_cands(struct candlist *l);

#endif
