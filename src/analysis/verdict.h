/* Leak, retention or no growth (docs/verdict.md): one decision from a
 * process's timeline (RSS and tracked live bytes over time) and the
 * allocators' latest numbers, shared by `memhound inspect` (a live
 * process) and `memhound report` (captures). Plain data in, plain data
 * out; the renderers print it. */
#ifndef MH_VERDICT_H
#define MH_VERDICT_H

#include <stddef.h>
#include <stdint.h>

#include "../format/capture.h"
#include "analysis.h"
#include "timeline.h"

enum mh_verdict_kind {
    MH_VERDICT_NO_GROWTH,
    MH_VERDICT_LEAK,
    MH_VERDICT_RETENTION,
};

/* Remedies that fit, as bits of mh_verdict.remedies. */
enum {
    MH_REMEDY_TRIM = 1,       /* malloc_trim / memhound trim */
    MH_REMEDY_ARENA_MAX = 2,  /* MALLOC_ARENA_MAX=2 */
    MH_REMEDY_JEMALLOC = 4,   /* LD_PRELOAD libjemalloc */
    MH_REMEDY_RECYCLE = 8,    /* memhound guard --rss-limit */
    MH_REMEDY_PYMALLOC = 16,  /* pymalloc arenas pinned: trim cannot help */
    MH_REMEDY_FIND_LEAK = 32, /* memhound report / heap on the growth */
};

struct mh_verdict_input {
    const struct mh_tl_point *pts; /* times non-decreasing */
    size_t n;
    struct mh_cap_timeline alloc; /* allocator fields; alloc.alloc 0 =
                                     unknown */
    /* Now, when known (inspect asks the agent); 0 = take the last
     * point's. */
    uint64_t rss, uss;
    double live;
    long threads; /* 0 = unknown */
};

struct mh_verdict {
    enum mh_verdict_kind kind;
    int enough_data; /* a trend could be fitted (>= 5 points, >= 3 s) */
    double span;     /* seconds of timeline */
    double window;   /* seconds fitted (the run after its first 10%) */
    double rss_slope, rss_r2;   /* bytes/s over the window */
    double live_slope, live_r2; /* likewise */
    double rss_growth, live_growth; /* over the window: robust ends */
    double floor;   /* growth below this is noise */
    double held;    /* free memory the allocators hold */
    int held_known; /* from allocator fields (else RSS minus live) */
    uint64_t rss, uss, rss_peak;
    double live;
    struct mh_cap_timeline alloc;
    long threads;
    unsigned remedies;
    uint64_t rss_limit;    /* suggested --rss-limit, 0 = none */
    double lifetime_at_limit; /* seconds a fresh worker takes to reach it
                                 at the measured RSS slope; 0 = n/a */
    char why[320];         /* one sentence: what decided */
};

void mh_verdict_compute(const struct mh_verdict_input *in,
                        struct mh_verdict *v);
/* The verdict of a finished analysis: its merged timeline (all processes
 * on one axis, summed) and the sum of each process's last allocator
 * fields. `now`, when not NULL, supplies rss/uss/live/threads measured
 * just now (inspect) and its alloc, when set, replaces the captures'. */
void mh_verdict_of_analysis(const struct mh_analysis *a,
                            const struct mh_verdict_input *now,
                            struct mh_verdict *v);
/* "leak", "retention", "no-growth". */
const char *mh_verdict_name(enum mh_verdict_kind k);

#endif
