/* The leak / retention decision (verdict.h). The rule is docs/verdict.md's;
 * keep the two together, and tests/c/test_verdict.c, which puts every
 * threshold below on both sides of its boundary.
 *
 * A leak is a rising floor: live bytes are judged by their lower envelope
 * (the minimum over each slice of the window), so transient buffers do
 * not hide it, against the request count when the process serves
 * requests (a per-request leak stops when traffic does), and it must be
 * significant (its 95% interval excludes zero) and larger than the
 * envelope's own noise. Retention is free memory the allocators hold.
 * Both can be true at once. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../../util/mem.h"
#include "../../util/slope.h"
#include "verdict.h"

#define MIB (1024.0 * 1024.0)
#define WARMUP_FRACTION 0.1 /* the start of a run is not judged */
#define MIN_SPAN 5.0        /* seconds of window */
#define POINTS_PER_BUCKET 5
#define MIN_BUCKETS 6
#define MAX_BUCKETS 24
#define MIN_REQUESTS 30     /* requests in the window to judge by them */
#define LIVE_MIN_GROWTH (1 * MIB) /* growth below this is never a leak */
#define RSS_MIN_GROWTH (2 * MIB)
#define NOISE_K 3.0         /* ...nor growth below 3 x the noise */
#define RECENT_SHARE 0.5    /* levelled: last half < 50% of the slope */
#define LIVE_SHARE 0.5      /* live growth that explains RSS growth */
#define NATIVE_SHARE 0.5    /* malloc in-use growth that explains it */
#define HELD_MIN (8 * MIB)  /* free memory held: retention when at least */
#define HELD_FRACTION 0.25  /* ...this and this share of RSS */
#define PART_MIN (8 * MIB)  /* an allocator's part that earns a remedy */
#define MAX_MORE 3600.0     /* "N more minutes" is capped at an hour */
#define RECYCLE_AFTER 3600.0 /* a worker should live an hour */
#define PEAK_MARGIN 1.25     /* limit without growth: 1.25 x peak */
#define PEAK_MULT 4.0        /* the limit never exceeds 4 x peak */
#define LIMIT_ROUND (64 * MIB)

const char *
mh_verdict_name(enum mh_verdict_kind k)
{
    switch (k) {
    case MH_VERDICT_LEAK:
        return "leak";
    case MH_VERDICT_RETENTION:
        return "retention";
    case MH_VERDICT_LEAK_RETENTION:
        return "leak+retention";
    case MH_VERDICT_BOUNDED:
        return "bounded";
    case MH_VERDICT_UNDECIDED:
        return "not-enough-data";
    default:
        return "no-growth";
    }
}

uint64_t
mh_verdict_physmem(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    return pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size : 0;
}

static double
xof(const struct mh_tl_point *p, int by_requests)
{
    return by_requests ? (double)p->requests : (double)p->t_ns / 1e9;
}

static double
yof(const struct mh_tl_point *p, int live)
{
    return live ? p->live : (double)p->rss;
}

/* Fits the envelope points [from, to) of x/y into t's slope fields;
 * returns 0 when it could. */
static int
fit(const double *x, const double *y, size_t from, size_t to,
    struct mh_slope_fit *f)
{
    struct mh_slope s; /* 8 KiB, in the CLI only */
    mh_slope_init(&s, 0);
    for (size_t i = from; i < to; i++)
        mh_slope_add(&s, x[i], y[i]);
    return mh_slope_fit(&s, f) ? -1 : 0;
}

/* The trend of the lower envelope of live bytes (live 1) or RSS over the
 * points [from, n). */
static void
trend(const struct mh_tl_point *p, size_t from, size_t n, int live,
      int by_requests, double floor_abs, struct mh_verdict_trend *t)
{
    memset(t, 0, sizeof(*t));
    t->by_requests = by_requests;
    size_t m = n > from ? n - from : 0;
    size_t nb = m / POINTS_PER_BUCKET;
    if (nb > MAX_BUCKETS)
        nb = MAX_BUCKETS;
    if (nb < MIN_BUCKETS)
        return;
    double x0 = xof(&p[from], by_requests), x1 = xof(&p[n - 1], by_requests);
    if (!(x1 > x0))
        return;
    double w = (x1 - x0) / (double)nb;
    double bx[MAX_BUCKETS], by[MAX_BUCKETS];
    size_t k = 0, nk = 0, half = 0;
    int any = 0;
    for (size_t i = from; i < n; i++) {
        double x = xof(&p[i], by_requests), y = yof(&p[i], live);
        size_t b = (size_t)((x - x0) / w);
        if (b >= nb)
            b = nb - 1;
        if (b != k || !any) {
            if (any)
                nk++;
            k = b;
            any = 1;
            if (k < nb / 2)
                half = nk + 1;
            bx[nk] = x;
            by[nk] = y;
        } else if (y < by[nk]) {
            bx[nk] = x;
            by[nk] = y;
        }
    }
    nk += any;
    struct mh_slope_fit f;
    if (nk < MIN_BUCKETS / 2 || fit(bx, by, 0, nk, &f))
        return;
    t->ok = 1;
    t->buckets = nk;
    t->x_span = x1 - x0;
    t->slope = f.slope;
    t->se = f.se;
    double tq = mh_slope_t95(nk - 2);
    t->lo = f.slope - tq * f.se;
    t->hi = f.slope + tq * f.se;
    t->r2 = f.r2;
    t->growth = f.slope * t->x_span;
    t->noise = f.sd;
    t->min_growth = fmax(floor_abs, NOISE_K * f.sd);
    t->significant = t->lo > 0;
    t->big = t->growth >= t->min_growth;
    struct mh_slope_fit r, e;
    if (nk - half >= 3 && half >= 3 && !fit(bx, by, half, nk, &r) &&
        !fit(bx, by, 0, half, &e)) {
        t->recent_ok = 1;
        t->recent_slope = r.slope;
        t->recent_hi = r.slope + mh_slope_t95(nk - half - 2) * r.se;
        t->early_slope = e.slope;
        t->early_lo = e.slope - mh_slope_t95(half - 2) * e.se;
        /* Levelled: against the whole window's rate for a trend that
         * passed as a whole, against the first half's for a rise that
         * only the first half shows (a cache that filled early). */
        t->levelled = t->recent_hi < RECENT_SHARE * t->slope;
        t->rose_early = t->early_lo > 0 &&
                        e.slope * (bx[half - 1] - bx[0]) >= t->min_growth &&
                        t->recent_hi < RECENT_SHARE * e.slope;
    }
}

static uint64_t
limit_of(double want, double cap, double peak)
{
    if (want > cap)
        want = cap;
    double up = ceil(want / LIMIT_ROUND) * LIMIT_ROUND;
    if (up <= cap)
        return (uint64_t)up;
    /* Under the cap: 64 MiB steps unless that gives up over a quarter,
     * then whole MiB. */
    double down = floor(want / LIMIT_ROUND) * LIMIT_ROUND;
    if (down < 0.75 * want)
        down = floor(want / MIB) * MIB;
    return (uint64_t)(down > peak ? down : want);
}

/* Appends to v->why, "; "-separated. */
static void MH_PRINTF(2, 3)
why(struct mh_verdict *v, const char *fmt, ...)
{
    size_t len = strlen(v->why);
    if (len && len + 2 < sizeof(v->why)) {
        memcpy(v->why + len, "; ", 3);
        len += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->why + len, sizeof(v->why) - len, fmt, ap);
    va_end(ap);
}

/* "1.5 MiB", "12.3 KiB" */
static const char *
sz(char *b, size_t n, double bytes)
{
    double a = fabs(bytes);
    if (a >= MIB)
        snprintf(b, n, "%.1f MiB", bytes / MIB);
    else
        snprintf(b, n, "%.1f KiB", bytes / 1024);
    return b;
}

enum live_state { LIVE_FLAT, LIVE_LEAK, LIVE_BOUNDED, LIVE_UNSURE };

void
mh_verdict_compute(const struct mh_verdict_input *in, struct mh_verdict *v)
{
    memset(v, 0, sizeof(*v));
    const struct mh_tl_point *p = in->pts;
    size_t n = p ? in->n : 0;
    for (size_t i = 0; i < n; i++)
        if (p[i].rss > v->rss_peak)
            v->rss_peak = p[i].rss;
    v->rss = in->rss ? in->rss : n ? p[n - 1].rss : 0;
    v->rss_first = n ? p[0].rss : v->rss;
    v->uss = in->uss;
    v->live = in->live > 0 ? in->live : n ? p[n - 1].live : 0;
    if (v->rss > v->rss_peak)
        v->rss_peak = v->rss;
    v->alloc = in->alloc;
    v->threads = in->threads;
    v->span = n ? (double)(p[n - 1].t_ns - p[0].t_ns) / 1e9 : 0;

    /* The window: the run after its warm-up. */
    size_t from = 0;
    while (from + 1 < n && (double)(p[from].t_ns - p[0].t_ns) / 1e9 <
                               WARMUP_FRACTION * v->span)
        from++;
    v->window = n ? (double)(p[n - 1].t_ns - p[from].t_ns) / 1e9 : 0;
    int by_req = n && p[n - 1].requests - p[from].requests >= MIN_REQUESTS;
    struct mh_verdict_trend *lt = &v->live_trend, *rt = &v->rss_trend;
    if (v->window >= MIN_SPAN) {
        trend(p, from, n, 1, by_req, LIVE_MIN_GROWTH, lt);
        trend(p, from, n, 0, by_req, RSS_MIN_GROWTH, rt);
    }
    v->enough_data = lt->ok && rt->ok;
    char b1[32], b2[32], b3[32], b4[32];
    if (v->enough_data) {
        v->live_growth = lt->growth;
        v->rss_growth = rt->growth;
        v->live_slope = lt->growth / v->window;
        v->rss_slope = rt->growth / v->window;
        v->live_r2 = lt->r2;
        v->rss_r2 = rt->r2;
        if (by_req)
            v->per_request = lt->slope;
    }

    /* Live bytes. */
    int rss_grows =
        v->enough_data && rt->significant && rt->big && !rt->levelled;
    /* A first half that rose and a last half that did not make a bounded
     * rise, unless RSS keeps growing steadily: the live floor is a
     * sampled estimate, and a slow leak's samples can bunch up early. */
    enum live_state ls = LIVE_UNSURE;
    if (v->enough_data) {
        int early = lt->rose_early && !rss_grows;
        if (lt->significant && lt->big)
            ls = lt->levelled || early ? LIVE_BOUNDED : LIVE_LEAK;
        else if (early)
            ls = LIVE_BOUNDED;
        else if (lt->slope <= 0 || lt->hi * lt->x_span < lt->min_growth)
            ls = LIVE_FLAT;
    }
    /* RSS: growth that live bytes do not explain is native memory or
     * freed memory the allocators keep. */
    double live_part = ls == LIVE_LEAK ? fmax(0, lt->growth) : 0;
    double unexplained = rss_grows ? rt->growth - live_part : 0;
    int untracked = rss_grows && live_part < LIVE_SHARE * rt->growth;
    if (untracked) {
        /* With the allocators' figures at both ends, the part that grew
         * tells: malloc's in-use bytes (native memory), or the free
         * memory they hold (retention). When neither does and live bytes
         * leak, the rest is the leak's (its estimate is a sample, and
         * pymalloc's arenas grow with it). */
        const struct mh_cap_timeline *a0 = &in->alloc_warm, *a1 = &in->alloc;
        int known = 0;
        double held_growth = 0;
        if (a0->alloc & a1->alloc & MH_TL_MALLOC) {
            known = 1;
            double inuse0 = (double)a0->malloc_inuse + (double)a0->malloc_mmap;
            double inuse1 = (double)a1->malloc_inuse + (double)a1->malloc_mmap;
            v->native_growth = inuse1 - inuse0 - live_part;
            v->native = v->native_growth >= NATIVE_SHARE * unexplained;
            held_growth += (double)a1->malloc_free - (double)a0->malloc_free;
        }
        if (a0->alloc & a1->alloc & MH_TL_PYMALLOC)
            held_growth += (double)a1->arena_free - (double)a0->arena_free;
        if (!v->native)
            v->retention = !known || ls != LIVE_LEAK ||
                           held_growth >= NATIVE_SHARE * unexplained;
        untracked = v->native || v->retention;
    }
    /* Free memory held now. */
    if (in->alloc.alloc) {
        v->held_known = 1;
        if (in->alloc.alloc & MH_TL_MALLOC)
            v->held_glibc = (double)in->alloc.malloc_free;
        if (in->alloc.alloc & MH_TL_PYMALLOC)
            v->held_pymalloc = (double)in->alloc.arena_free;
        v->held = v->held_glibc + v->held_pymalloc;
        if (v->held >= fmax(HELD_MIN, HELD_FRACTION * (double)v->rss))
            v->retention = 1;
    } else if (untracked) {
        v->held = unexplained;
    }
    v->leak = ls == LIVE_LEAK;

    /* What decided, with its numbers. */
    const char *xu = by_req ? "requests" : "s";
    if (v->leak) {
        char g[32], mg[32], nz[32];
        sz(g, sizeof(g), lt->growth);
        sz(mg, sizeof(mg), lt->min_growth);
        sz(nz, sizeof(nz), lt->noise);
        why(v, "the floor of tracked live bytes rose by %s over %.0f %s "
               "(%s per %s, 95%% interval %s..%s), more than the %s a "
               "leak needs (3 x noise %s, at least %s)",
            g, lt->x_span, xu, sz(b2, sizeof(b2), lt->slope),
            by_req ? "request" : "s", sz(b3, sizeof(b3), lt->lo),
            sz(b4, sizeof(b4), lt->hi), mg, nz,
            sz(b1, sizeof(b1), LIVE_MIN_GROWTH));
    }
    if (v->native)
        why(v, "RSS rose by %s over %.0f s but tracked live bytes explain "
               "%s; malloc's in-use bytes grew by %s: native memory "
               "outside the tracked domains (a C library or extension)",
            sz(b1, sizeof(b1), rt->growth), v->window,
            sz(b2, sizeof(b2), live_part),
            sz(b3, sizeof(b3), v->native_growth));
    if (v->retention) {
        if (v->held_known)
            why(v, "the allocators hold %s of free memory (%.0f%% of RSS: "
                   "glibc %s, pymalloc %s)",
                sz(b1, sizeof(b1), v->held),
                v->rss ? 100.0 * v->held / (double)v->rss : 0.0,
                sz(b2, sizeof(b2), v->held_glibc),
                sz(b3, sizeof(b3), v->held_pymalloc));
        if (untracked && !v->native)
            why(v, "RSS rose by %s over %.0f s while tracked live bytes "
                   "explain %s%s",
                sz(b1, sizeof(b1), rt->growth), v->window,
                sz(b2, sizeof(b2), live_part),
                v->held_known ? "" : " (no allocator figures: freed "
                                     "memory kept, or native memory)");
    }
    if (!v->leak && !v->native) {
        char g[32];
        sz(g, sizeof(g), v->enough_data ? lt->growth : 0);
        if (ls == LIVE_BOUNDED)
            why(v, "the floor of tracked live bytes rose (%s per %s over "
                   "the first half of the window), then levelled off (the "
                   "last half: at most %s per %s, under half the rate): "
                   "bounded, like a cache that fills",
                sz(b2, sizeof(b2), lt->early_slope), by_req ? "request" : "s",
                sz(b1, sizeof(b1), fmax(0, lt->recent_hi)),
                by_req ? "request" : "s");
        else if (ls == LIVE_FLAT)
            why(v, "the floor of tracked live bytes moved by %s over %.0f "
                   "%s (95%% interval up to %s in all), less than the %s a "
                   "leak needs",
                g, lt->x_span, xu,
                sz(b1, sizeof(b1), fmax(0, lt->hi * lt->x_span)),
                sz(b2, sizeof(b2), lt->min_growth));
        else {
            /* How long until a trend like this one would be called. */
            double more;
            if (!v->enough_data) {
                more = fmax(MIN_SPAN / (1 - WARMUP_FRACTION) - v->span,
                            0);
                double per = n > 1 ? v->span / (double)(n - 1) : 0.1;
                double need = (double)(MIN_BUCKETS * POINTS_PER_BUCKET) /
                                  (1 - WARMUP_FRACTION) -
                              (double)n;
                if (need * per > more)
                    more = need * per;
            } else if (lt->slope > 0) {
                double rate = lt->growth / v->window;
                double t_sig = v->window *
                               pow(mh_slope_t95(lt->buckets - 2) * lt->se /
                                       lt->slope,
                                   2.0 / 3.0);
                more = fmax(lt->min_growth / rate, t_sig) - v->window;
            } else {
                more = v->window;
            }
            v->more_seconds = fmin(fmax(more, 10), MAX_MORE);
            double mins = ceil(v->more_seconds / 60);
            if (!v->enough_data)
                why(v, "not enough data yet: about %.0f more minute%s "
                       "(%.0f s so far; a trend needs a window of %.0f s "
                       "and %d points after the first 10%%)",
                    mins, mins == 1 ? "" : "s", v->span, MIN_SPAN,
                    MIN_BUCKETS * POINTS_PER_BUCKET);
            else
                why(v, "not enough data yet: about %.0f more minute%s "
                       "(%.0f s so far; the floor of live bytes moved by "
                       "%s, 95%% interval %s..%s per %s; a leak needs %s)",
                    mins, mins == 1 ? "" : "s", v->span, g,
                    sz(b1, sizeof(b1), lt->lo), sz(b2, sizeof(b2), lt->hi),
                    by_req ? "request" : "s",
                    sz(b3, sizeof(b3), lt->min_growth));
        }
        if (!v->retention && ls != LIVE_UNSURE && ls != LIVE_BOUNDED)
            why(v, "RSS %s, and the allocators hold %s free",
                rss_grows ? "grows with them" : "does not grow",
                v->held_known ? sz(b1, sizeof(b1), v->held) : "unknown");
    }

    if ((v->leak || v->native) && v->retention)
        v->kind = MH_VERDICT_LEAK_RETENTION;
    else if (v->leak || v->native)
        v->kind = MH_VERDICT_LEAK;
    else if (v->retention)
        v->kind = MH_VERDICT_RETENTION;
    else if (ls == LIVE_UNSURE)
        v->kind = MH_VERDICT_UNDECIDED;
    else if (ls == LIVE_BOUNDED)
        v->kind = MH_VERDICT_BOUNDED;
    else
        v->kind = MH_VERDICT_NO_GROWTH;

    /* Remedies, one per part. */
    if (v->leak)
        v->remedies |= MH_REMEDY_FIND_LEAK | MH_REMEDY_RECYCLE;
    if (v->native)
        v->remedies |= MH_REMEDY_NATIVE | MH_REMEDY_RECYCLE;
    if (v->retention) {
        v->remedies |= MH_REMEDY_RECYCLE;
        if (!(in->alloc.alloc & MH_TL_MALLOC) || v->held_glibc >= PART_MIN)
            v->remedies |= MH_REMEDY_TRIM | MH_REMEDY_JEMALLOC |
                           (in->threads == 0 || in->threads > 2
                                ? MH_REMEDY_ARENA_MAX
                                : 0);
        if (v->held_pymalloc >= PART_MIN)
            v->remedies |= MH_REMEDY_PYMALLOC;
    }
    /* A recycle limit: never above the memory limit, nor 4 x the peak
     * RSS (no extrapolation beyond the data), with the time a fresh
     * worker takes to reach it at the measured growth. */
    if (v->remedies & MH_REMEDY_RECYCLE) {
        double rate = rss_grows ? rt->growth / v->window
                      : v->leak ? lt->growth / v->window
                                : 0;
        double peak = (double)v->rss_peak;
        double cap = PEAK_MULT * peak;
        v->cap_by = "4 x the peak RSS";
        if (in->mem_limit && (double)in->mem_limit < cap) {
            cap = (double)in->mem_limit;
            v->cap_by = "the memory limit";
        }
        v->limit_cap = (uint64_t)cap;
        double want = rate > 0 ? (double)v->rss + rate * RECYCLE_AFTER
                               : PEAK_MARGIN * peak;
        v->rss_limit = limit_of(want, cap, peak);
        if (rate > 0 && (double)v->rss_limit > (double)v->rss_first)
            v->lifetime_at_limit =
                ((double)v->rss_limit - (double)v->rss_first) / rate;
    }
}

static const char *
plural(const char *role)
{
    return !strcmp(role, "process") ? "processes"
           : !strcmp(role, "master") ? "masters"
                                     : "workers";
}

/* "leak in 2 of 2 workers, ~11.7 KiB per request" and the like, for the
 * processes of one role. */
static void
summarize(const struct mh_verdicts *vs, const char *role, char *out,
          size_t size)
{
    size_t count = 0, leak = 0, native = 0, ret = 0, bounded = 0, unsure = 0;
    size_t per_req = 0;
    double req_sum = 0, rate_sum = 0, held_sum = 0;
    for (size_t i = 0; i < vs->n; i++) {
        const struct mh_verdict *v = &vs->procs[i].v;
        if (strcmp(vs->procs[i].role, role))
            continue;
        count++;
        if (v->leak) {
            leak++;
            rate_sum += v->live_slope;
            if (v->per_request > 0) {
                per_req++;
                req_sum += v->per_request;
            }
        }
        native += v->native;
        if (v->retention) {
            ret++;
            held_sum += v->held;
        }
        bounded += v->kind == MH_VERDICT_BOUNDED;
        unsure += v->kind == MH_VERDICT_UNDECIDED;
    }
    if (!count)
        return;
    size_t len = strlen(out);
    char b[32];
#define ADD(...)                                                           \
    do {                                                                   \
        if (len < size)                                                    \
            snprintf(out + len, size - len, __VA_ARGS__);                  \
        len = strlen(out);                                                 \
    } while (0)
    if (len)
        ADD("; ");
    int one = count == 1;
    const char *who = one ? role : plural(role);
    if (leak) {
        if (one)
            ADD("the %s leaks", role);
        else
            ADD("leak in %zu of %zu %s", leak, count, who);
        if (per_req == leak)
            ADD(", ~%s per request", sz(b, sizeof(b), req_sum / per_req));
        else
            ADD(", ~%s/h%s", sz(b, sizeof(b), rate_sum / leak * 3600),
                one ? "" : " each");
    }
    if (native)
        ADD("%snative growth in %zu of %zu %s", leak ? ", " : "", native,
            count, who);
    if (ret)
        ADD("%s%s %zu of %zu %s (~%s held%s)", leak || native ? "; " : "",
            "retention in", ret, count, who,
            sz(b, sizeof(b), held_sum / ret), ret > 1 ? " each" : "");
    if (leak || native || ret)
        return;
    if (unsure)
        ADD("not enough data yet for %zu of %zu %s", unsure, count, who);
    else if (bounded)
        ADD("bounded growth (levelled off) in %zu of %zu %s", bounded,
            count, who);
    else if (one)
        ADD("the %s does not grow", role);
    else
        ADD("the %s do not grow", who);
#undef ADD
}

static const char *
role_of(const struct mh_analysis *a, size_t i)
{
    const struct mh_process *p = &a->procs[i];
    int parent = 0, child = 0;
    for (size_t j = 0; j < a->nprocs; j++) {
        const struct mh_process *q = &a->procs[j];
        if (j == i)
            continue;
        if (q->pid && (q->pid == p->fork_parent || q->pid == p->ppid))
            parent = 1;
        if (p->pid && (q->fork_parent == p->pid || q->ppid == p->pid))
            child = 1;
    }
    return parent ? "worker" : child ? "master" : "process";
}

/* The growth sites that carry a leak, or why the growth section's figure
 * is not one. */
static void
sites(const struct mh_analysis *a, struct mh_verdicts *vs)
{
    const struct mh_summary *m = &a->summary;
    char b[32];
    size_t len = 0, size = sizeof(vs->sites);
    int leaks = 0;
    for (size_t i = 0; i < vs->n; i++)
        leaks |= vs->procs[i].v.leak;
    if (leaks) {
        for (size_t k = 0; k < a->ngrowth && k < 3; k++) {
            const struct mh_site *s = &a->sites[a->growth[k]];
            if (s->growth_bytes < m->growth_floor || !s->key)
                break;
            snprintf(vs->sites + len, size - len, "%s%s (+%s, %.1f%%)",
                     k ? ", " : "growth sites carrying it: ",
                     mh_analysis_str(a, s->key),
                     sz(b, sizeof(b), s->growth_bytes), 100 * s->share);
            len = strlen(vs->sites);
        }
        return;
    }
    if (!m->growth_found)
        return;
    const char *reason =
        vs->kind == MH_VERDICT_BOUNDED
            ? "it levelled off (bounded)"
        : vs->kind == MH_VERDICT_UNDECIDED
            ? "its trend is not significant yet"
            : "the floor of live bytes did not keep rising through the "
              "window (growth early in the run, or transient)";
    snprintf(vs->sites, size,
             "the growth section lists %s of growth above its floor; it "
             "is not a leak by this rule: %s",
             sz(b, sizeof(b), m->growth_bytes), reason);
}

int
mh_verdicts_of_analysis(const struct mh_analysis *a,
                        const struct mh_verdict_input *now,
                        struct mh_verdicts *vs)
{
    memset(vs, 0, sizeof(*vs));
    size_t n = a->nprocs ? a->nprocs : 1;
    vs->procs = mh_calloc(n, sizeof(*vs->procs));
    if (!vs->procs)
        return MH_ENOMEM;
    vs->n = n;
    uint64_t mem = now && now->mem_limit ? now->mem_limit
                                         : mh_verdict_physmem();
    for (size_t i = 0; i < n; i++) {
        struct mh_verdict_input in;
        memset(&in, 0, sizeof(in));
        if (now && i == n - 1)
            in = *now;
        if (a->nprocs) {
            const struct mh_process *p = &a->procs[i];
            in.pts = p->timeline.pts;
            in.n = p->timeline.n;
            if (!in.alloc.alloc)
                in.alloc = p->alloc;
            in.alloc_warm = p->alloc_warm;
            vs->procs[i].pid = p->pid;
            vs->procs[i].role = role_of(a, i);
        } else {
            vs->procs[i].role = "process";
        }
        in.mem_limit = mem;
        mh_verdict_compute(&in, &vs->procs[i].v);
    }
    int leak = 0, ret = 0, unsure = 0, bounded = 0;
    for (size_t i = 0; i < n; i++) {
        const struct mh_verdict *v = &vs->procs[i].v;
        leak |= v->leak || v->native;
        ret |= v->retention;
        unsure |= v->kind == MH_VERDICT_UNDECIDED;
        bounded |= v->kind == MH_VERDICT_BOUNDED;
        vs->remedies |= v->remedies;
    }
    vs->kind = leak && ret ? MH_VERDICT_LEAK_RETENTION
               : leak      ? MH_VERDICT_LEAK
               : ret       ? MH_VERDICT_RETENTION
               : unsure    ? MH_VERDICT_UNDECIDED
               : bounded   ? MH_VERDICT_BOUNDED
                           : MH_VERDICT_NO_GROWTH;
    vs->lead = 0;
    for (size_t i = 0; i < n; i++)
        if (vs->procs[i].v.kind == vs->kind) {
            vs->lead = i;
            break;
        }
    if (vs->procs[vs->lead].v.kind != vs->kind)
        for (size_t i = 0; i < n; i++)
            if (vs->procs[i].v.leak || vs->procs[i].v.native) {
                vs->lead = i;
                break;
            }
    if (n == 1) {
        snprintf(vs->summary, sizeof(vs->summary), "%s",
                 vs->procs[0].v.why);
    } else {
        summarize(vs, "worker", vs->summary, sizeof(vs->summary));
        summarize(vs, "master", vs->summary, sizeof(vs->summary));
        summarize(vs, "process", vs->summary, sizeof(vs->summary));
    }
    sites(a, vs);
    return MH_OK;
}

void
mh_verdicts_release(struct mh_verdicts *vs)
{
    mh_free(vs->procs);
    memset(vs, 0, sizeof(*vs));
}
