/* Leak, retention, both, or neither (docs/verdict.md): one decision per
 * process from its own timeline (RSS, tracked live bytes and requests
 * over time) and its allocators' figures, shared by `memhound inspect`
 * (a live process) and `memhound report` (captures; a pre-fork server's
 * report has one verdict per process and a summary across them). Plain
 * data in, plain data out; the renderers print it. */
#ifndef MH_VERDICT_H
#define MH_VERDICT_H

#include <stddef.h>
#include <stdint.h>

#include "../../format/capture.h"
#include "../../util/msg.h"
#include "../capture/analysis.h"
#include "../capture/timeline.h"

enum mh_verdict_kind {
    MH_VERDICT_NO_GROWTH,
    MH_VERDICT_LEAK,
    MH_VERDICT_RETENTION,
    MH_VERDICT_LEAK_RETENTION,
    MH_VERDICT_BOUNDED,   /* live bytes grew, then levelled off */
    MH_VERDICT_UNDECIDED, /* not enough data yet */
};

/* Remedies that fit, as bits of mh_verdict.remedies. */
enum {
    MH_REMEDY_TRIM = 1,       /* malloc_trim / memhound trim */
    MH_REMEDY_ARENA_MAX = 2,  /* MALLOC_ARENA_MAX=2 */
    MH_REMEDY_JEMALLOC = 4,   /* LD_PRELOAD libjemalloc */
    MH_REMEDY_RECYCLE = 8,    /* memhound guard --rss-limit */
    MH_REMEDY_PYMALLOC = 16,  /* pymalloc arenas pinned: trim cannot help */
    MH_REMEDY_FIND_LEAK = 32, /* memhound report / heap on the growth */
    MH_REMEDY_NATIVE = 64,    /* native memory outside the tracked domains */
};

/* The trend of one series' lower envelope (the minimum of each of
 * `buckets` equal slices of the window), so transient buffers and bursts
 * do not hide a rising floor. */
struct mh_verdict_trend {
    int ok;          /* fitted */
    int by_requests; /* x is the request count, else seconds */
    size_t buckets;
    double x_span;   /* the window in x units */
    double slope, se, lo, hi, r2; /* bytes per x unit; lo..hi: 95% */
    double growth;     /* slope * x_span, bytes */
    double noise;      /* the envelope's residual standard deviation */
    double min_growth; /* growth a leak needs: max(floor, 3 x noise) */
    int recent_ok;     /* both halves of the window could be fitted */
    double recent_slope, recent_hi; /* the last half */
    double early_slope, early_lo;   /* the first half */
    int significant; /* lo > 0 */
    int big;         /* growth >= min_growth */
    int levelled;    /* the last half rises at under half the rate of
                        the whole window */
    int rose_early;  /* the first half rose significantly by at least
                        min_growth, and the last half at under half its
                        rate */
};

struct mh_verdict_input {
    const struct mh_tl_point *pts; /* one process; times non-decreasing */
    size_t n;
    struct mh_cap_timeline alloc; /* allocator fields now; alloc.alloc 0
                                     = unknown */
    struct mh_cap_timeline alloc_warm; /* ...at the warm-up's end; 0 =
                                          unknown */
    /* Now, when known (inspect asks the agent); 0 = take the last
     * point's. */
    uint64_t rss, uss;
    double live;
    long threads;       /* 0 = unknown */
    uint64_t mem_limit; /* the cgroup's limit or the machine's memory,
                           the smaller; 0 = unknown */
};

struct mh_verdict {
    enum mh_verdict_kind kind;
    int enough_data; /* the window has enough points to fit */
    double span;     /* seconds of timeline */
    double window;   /* seconds judged (the run after its first 10%) */
    struct mh_verdict_trend live_trend, rss_trend;
    /* Shorthands of the trends, per second of the window. */
    double rss_slope, rss_r2, live_slope, live_r2;
    double rss_growth, live_growth; /* bytes over the window */
    double per_request; /* live growth per request; 0 = not by requests */
    double more_seconds; /* undecided: data still needed, roughly */

    /* The parts. */
    int leak;      /* the floor of live bytes rises */
    int native;    /* RSS rises with malloc's in-use bytes, outside the
                      tracked domains */
    double native_growth;
    int retention; /* the allocators hold much free memory, or RSS rises
                      with it */
    double held, held_glibc, held_pymalloc; /* free memory held */
    int held_known; /* from allocator fields (else RSS minus live) */

    uint64_t rss, uss, rss_first, rss_peak;
    double live;
    struct mh_cap_timeline alloc;
    long threads;
    unsigned remedies;
    uint64_t rss_limit;       /* suggested --rss-limit, 0 = none */
    uint64_t limit_cap;       /* the most it may be */
    const char *cap_by;       /* what set limit_cap */
    double lifetime_at_limit; /* seconds a fresh worker takes to reach it
                                 at the measured RSS growth; 0 = n/a */
    char why[400];            /* what decided, with its numbers */
};

void mh_verdict_compute(const struct mh_verdict_input *in,
                        struct mh_verdict *v);

/* One process's verdict in a finished analysis. */
struct mh_verdict_proc {
    uint64_t pid;
    const char *role; /* "master", "worker" or "process" */
    struct mh_verdict v;
};

struct mh_verdicts {
    enum mh_verdict_kind kind; /* across processes: leak when any leaks,
                                  retention when any retains, ... */
    struct mh_verdict_proc *procs; /* owned */
    size_t n;
    size_t lead; /* the process whose figures stand for all (the first
                    with the overall kind's part) */
    unsigned remedies; /* all processes' */
    char summary[400]; /* across processes, e.g. "leak in 2 of 2
                          workers, ~11.7 KiB per request; the master does
                          not grow"; the lead's why for one process */
    char sites[400];   /* the growth sites that carry a leak, or how the
                          growth section's figure fits the verdict */
};

/* Every process's verdict from its own timeline and allocator figures.
 * `now`, when not NULL, applies to the last process (inspect: rss, uss,
 * live, threads and alloc measured just now; its mem_limit to all).
 * The caller releases *vs with mh_verdicts_release(). MH_ENOMEM. */
int mh_verdicts_of_analysis(const struct mh_analysis *a,
                            const struct mh_verdict_input *now,
                            struct mh_verdicts *vs) MH_MUST_USE;
void mh_verdicts_release(struct mh_verdicts *vs);

/* "leak", "retention", "leak+retention", "no-growth", "bounded",
 * "not-enough-data". */
const char *mh_verdict_name(enum mh_verdict_kind k);

/* The machine's memory (sysconf), 0 when unknown. */
uint64_t mh_verdict_physmem(void);

#endif
