/* The leak / retention / no-growth decision (verdict.h). The rule is
 * docs/verdict.md's; keep the two together. Thresholds are relative to
 * the run (its RSS), with absolute floors so that a small process's
 * jitter is never a verdict. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "slope.h"
#include "verdict.h"

#define MIB (1024.0 * 1024.0)
#define FLOOR_MIN (8 * MIB)      /* growth below this is noise */
#define FLOOR_FRACTION 0.05      /* ... or below 5% of the peak RSS */
#define LIVE_FLOOR_MIN (4 * MIB) /* live growth that counts */
#define LIVE_FLOOR_FRACTION 0.02
#define R2_MIN 0.6               /* a steady trend, not noise */
#define LIVE_SHARE 0.25          /* live growth / RSS growth for a leak */
#define HELD_FRACTION 0.25       /* free memory held / RSS: retention */
#define UNTRACKED_FRACTION 0.5   /* without allocator fields */
#define WARMUP_FRACTION 0.1
#define ENDS 5                   /* points in a robust end */
#define MIN_POINTS 5
#define MIN_SPAN 3.0             /* seconds */
#define RECYCLE_AFTER 3600.0     /* a worker should live an hour */
#define LIMIT_ROUND (64 * MIB)

const char *
mh_verdict_name(enum mh_verdict_kind k)
{
    switch (k) {
    case MH_VERDICT_LEAK:
        return "leak";
    case MH_VERDICT_RETENTION:
        return "retention";
    default:
        return "no-growth";
    }
}

static double
median(double *x, size_t n)
{
    for (size_t i = 1; i < n; i++) /* n <= ENDS: insertion sort */
        for (size_t j = i; j > 0 && x[j - 1] > x[j]; j--) {
            double t = x[j];
            x[j] = x[j - 1];
            x[j - 1] = t;
        }
    return n ? (n % 2 ? x[n / 2] : (x[n / 2 - 1] + x[n / 2]) / 2) : 0;
}

/* Median of the value at points [from, from + k) (k <= ENDS). */
static double
end_value(const struct mh_tl_point *p, size_t from, size_t k, int live)
{
    double x[ENDS];
    for (size_t i = 0; i < k; i++)
        x[i] = live ? p[from + i].live : (double)p[from + i].rss;
    return median(x, k);
}

/* Fits the points [from, n) into f; at most MH_SLOPE_CAP of them, evenly
 * picked. */
static int
fit(const struct mh_tl_point *p, size_t from, size_t n, int live,
    struct mh_slope_fit *f)
{
    struct mh_slope s; /* 8 KiB, in the CLI only */
    mh_slope_init(&s, 0);
    size_t m = n - from;
    size_t step = m > MH_SLOPE_CAP ? (m + MH_SLOPE_CAP - 1) / MH_SLOPE_CAP
                                   : 1;
    for (size_t i = from; i < n; i += step)
        mh_slope_add(&s, (double)p[i].t_ns / 1e9,
                     live ? p[i].live : (double)p[i].rss);
    return mh_slope_fit(&s, f);
}

static uint64_t
round_up(double x)
{
    return (uint64_t)(ceil(x / LIMIT_ROUND) * LIMIT_ROUND);
}

void
mh_verdict_compute(const struct mh_verdict_input *in, struct mh_verdict *v)
{
    memset(v, 0, sizeof(*v));
    const struct mh_tl_point *p = in->pts;
    size_t n = in->n;
    for (size_t i = 0; i < n; i++)
        if (p[i].rss > v->rss_peak)
            v->rss_peak = p[i].rss;
    v->rss = in->rss ? in->rss : n ? p[n - 1].rss : 0;
    v->uss = in->uss;
    v->live = in->live > 0 ? in->live : n ? p[n - 1].live : 0;
    if (v->rss > v->rss_peak)
        v->rss_peak = v->rss;
    v->alloc = in->alloc;
    v->threads = in->threads;
    v->span = n ? (double)(p[n - 1].t_ns - p[0].t_ns) / 1e9 : 0;
    v->floor = fmax(FLOOR_MIN, FLOOR_FRACTION * (double)v->rss_peak);
    double live_floor =
        fmax(LIVE_FLOOR_MIN, LIVE_FLOOR_FRACTION * (double)v->rss_peak);

    /* The trend, over the run after its warm-up. */
    size_t from = 0;
    if (n)
        while (from + 1 < n && (double)(p[from].t_ns - p[0].t_ns) / 1e9 <
                                   WARMUP_FRACTION * v->span)
            from++;
    struct mh_slope_fit fr, fl;
    v->enough_data = n >= MIN_POINTS && v->span >= MIN_SPAN &&
                     n - from >= 3 && !fit(p, from, n, 0, &fr) &&
                     !fit(p, from, n, 1, &fl);
    if (v->enough_data) {
        v->window = (double)(p[n - 1].t_ns - p[from].t_ns) / 1e9;
        v->rss_slope = fr.slope;
        v->rss_r2 = fr.r2;
        v->live_slope = fl.slope;
        v->live_r2 = fl.r2;
        size_t k = (n - from) / 3 < ENDS ? (n - from) / 3 : ENDS;
        if (k < 1)
            k = 1;
        v->rss_growth = end_value(p, n - k, k, 0) - end_value(p, from, k, 0);
        v->live_growth =
            end_value(p, n - k, k, 1) - end_value(p, from, k, 1);
    }

    /* Free memory the allocators hold. */
    if (in->alloc.alloc) {
        v->held_known = 1;
        v->held = (double)in->alloc.arena_free +
                  (double)in->alloc.malloc_free;
    } else if (n) {
        double untracked = ((double)p[n - 1].rss - (double)p[0].rss) -
                           fmax(0, p[n - 1].live - p[0].live);
        v->held = untracked > 0 ? untracked : 0;
    }
    double held_min = fmax(v->floor, (v->held_known ? HELD_FRACTION
                                                    : UNTRACKED_FRACTION) *
                                         (double)v->rss);

    int live_grows = v->enough_data && v->live_growth >= live_floor &&
                     v->live_slope > 0 && v->live_r2 >= R2_MIN;
    int rss_grows = v->enough_data && v->rss_growth >= v->floor &&
                    v->rss_slope > 0 && v->rss_r2 >= R2_MIN;
    char b1[32], b2[32];
    if (live_grows &&
        (!rss_grows || v->live_growth >= LIVE_SHARE * v->rss_growth)) {
        v->kind = MH_VERDICT_LEAK;
        snprintf(b1, sizeof(b1), "%.1f", v->live_growth / MIB);
        snprintf(b2, sizeof(b2), "%.1f", v->rss_growth / MIB);
        snprintf(v->why, sizeof(v->why),
                 "tracked live bytes grew by %s MiB over %.0f s (R² %.2f), "
                 "%s of the RSS growth (%s MiB)",
                 b1, v->window, v->live_r2,
                 v->rss_growth > 0 ? "a large part" : "while RSS kept up",
                 b2);
    } else if (rss_grows || v->held >= held_min) {
        v->kind = MH_VERDICT_RETENTION;
        if (rss_grows)
            snprintf(v->why, sizeof(v->why),
                     "RSS grew by %.1f MiB over %.0f s (R² %.2f) while "
                     "tracked live bytes grew by %.1f MiB",
                     v->rss_growth / MIB, v->window, v->rss_r2,
                     v->live_growth / MIB);
        else
            snprintf(v->why, sizeof(v->why),
                     "the allocators hold %.1f MiB of free memory "
                     "(%.0f%% of RSS)%s while tracked live bytes do not "
                     "grow",
                     v->held / MIB,
                     v->rss ? 100.0 * v->held / (double)v->rss : 0.0,
                     v->held_known ? "" : " (RSS growth the live bytes "
                                          "do not explain)");
    } else {
        v->kind = MH_VERDICT_NO_GROWTH;
        snprintf(v->why, sizeof(v->why),
                 v->enough_data
                     ? "neither RSS nor tracked live bytes grew past the "
                       "noise floor (%.1f MiB), and the allocators hold "
                       "little free memory"
                     : "too short a run to see a trend (%.1f MiB floor); "
                       "nothing held",
                 v->floor / MIB);
    }

    /* Remedies. */
    if (v->kind == MH_VERDICT_LEAK)
        v->remedies |= MH_REMEDY_FIND_LEAK | MH_REMEDY_RECYCLE;
    if (v->kind == MH_VERDICT_RETENTION) {
        v->remedies |= MH_REMEDY_RECYCLE;
        if (!in->alloc.alloc || (in->alloc.alloc & MH_TL_MALLOC &&
                                 (double)in->alloc.malloc_free >= v->floor))
            v->remedies |= MH_REMEDY_TRIM | MH_REMEDY_JEMALLOC |
                           (in->threads == 0 || in->threads > 2
                                ? MH_REMEDY_ARENA_MAX
                                : 0);
        if (in->alloc.alloc & MH_TL_PYMALLOC &&
            (double)in->alloc.arena_free >= v->floor)
            v->remedies |= MH_REMEDY_PYMALLOC;
    }
    if (v->remedies & MH_REMEDY_RECYCLE) {
        double rate = v->rss_slope > 0 && v->rss_r2 >= R2_MIN ? v->rss_slope
                                                              : 0;
        double limit = rate > 0 ? (double)v->rss + rate * RECYCLE_AFTER
                                : 1.25 * (double)v->rss_peak;
        v->rss_limit = round_up(limit);
        if (rate > 0 && v->rss_peak > 0)
            v->lifetime_at_limit = ((double)v->rss_limit -
                                    (double)p[0].rss) / rate;
    }
}

void
mh_verdict_of_analysis(const struct mh_analysis *a,
                       const struct mh_verdict_input *now,
                       struct mh_verdict *v)
{
    struct mh_verdict_input in;
    if (now)
        in = *now;
    else
        memset(&in, 0, sizeof(in));
    in.pts = a->timeline;
    in.n = a->ntimeline;
    if (!in.alloc.alloc) {
        /* Fields are summed only where every process has them. */
        uint64_t common = MH_TL_PYMALLOC | MH_TL_MALLOC;
        for (size_t i = 0; i < a->nprocs; i++)
            common &= a->procs[i].alloc.alloc;
        memset(&in.alloc, 0, sizeof(in.alloc));
        in.alloc.alloc = a->nprocs ? common : 0;
        for (size_t i = 0; i < a->nprocs && in.alloc.alloc; i++) {
            const struct mh_cap_timeline *t = &a->procs[i].alloc;
            in.alloc.arena_bytes += t->arena_bytes;
            in.alloc.arena_free += t->arena_free;
            in.alloc.malloc_arena += t->malloc_arena;
            in.alloc.malloc_inuse += t->malloc_inuse;
            in.alloc.malloc_free += t->malloc_free;
            in.alloc.malloc_mmap += t->malloc_mmap;
        }
        if (!(in.alloc.alloc & MH_TL_PYMALLOC))
            in.alloc.arena_bytes = in.alloc.arena_free = 0;
        if (!(in.alloc.alloc & MH_TL_MALLOC))
            in.alloc.malloc_arena = in.alloc.malloc_inuse =
                in.alloc.malloc_free = in.alloc.malloc_mmap = 0;
    }
    mh_verdict_compute(&in, v);
}
