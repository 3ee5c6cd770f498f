/* The verdict's rule (src/analysis/report/verdict.c, docs/verdict.md) on
 * constructed timelines: every threshold, rule and remedy at both sides
 * of its boundary, the recycle limit's caps, the merged report's
 * per-process verdicts and summary, and the slope `top` may show. */
#include <math.h>

#include "util/slope.h"
#include "analysis/report/verdict.h"
#include "harness.h"

#define MIB (1024.0 * 1024.0)
/* 134 points at 10 Hz: 13.3 s, the window after the 10% warm-up starts
 * at t = 1.4 s and holds 120 points, 24 slices of ~0.5 s. */
#define NPTS 134
#define DT 0.1
#define X0 1.4

struct shape {
    double live0, live_rate; /* bytes, bytes/s */
    double rss0, rss_rate;
    double noise;     /* live: -noise, +noise on alternate slices */
    double rss_noise; /* likewise for RSS */
    double level_at;  /* from here on both rates are multiplied by k */
    double level_k;
    double req_rate;  /* requests/s, 0 = none */
    int idle;         /* after level_at no requests either */
    size_t n;         /* points, 0 = NPTS */
    double dt;        /* seconds between points, 0 = DT */
};

static double
grown(const struct shape *s, double rate, double t)
{
    if (s->level_at > 0 && t > s->level_at)
        return rate * s->level_at + rate * s->level_k * (t - s->level_at);
    return rate * t;
}

static size_t
make(const struct shape *s, struct mh_tl_point *p)
{
    size_t n = s->n ? s->n : NPTS;
    double dt = s->dt > 0 ? s->dt : DT;
    /* The slices as verdict.c cuts them: the window starts at the first
     * point at or after 10% of the span, 5 points a slice, at most 24. */
    double span = (double)(n - 1) * dt;
    size_t from = 0;
    while ((double)from * dt < 0.1 * span - 1e-9)
        from++;
    size_t nb = (n - from) / 5 > 24 ? 24 : (n - from) / 5;
    double x0 = (double)from * dt;
    double slice = nb ? (span - x0) / (double)nb : 1;
    for (size_t i = 0; i < n; i++) {
        double t = (double)i * dt;
        double sign = 0;
        if (i >= from) {
            long b = (long)((t - x0) / slice + 1e-9);
            sign = b % 2 ? 1 : -1;
        }
        double tr = s->idle && s->level_at > 0 && t > s->level_at
                        ? s->level_at
                        : t;
        p[i].t_ns = (uint64_t)llround(t * 1e9);
        p[i].live = s->live0 + grown(s, s->live_rate, t) + sign * s->noise;
        p[i].rss = (uint64_t)(s->rss0 + grown(s, s->rss_rate, t) +
                              sign * s->rss_noise);
        p[i].requests = (uint64_t)(s->req_rate * tr);
    }
    return n;
}

/* The verdict of shape s with allocator fields `al` (NULL: unknown). */
static void
judge(const struct shape *s, const struct mh_cap_timeline *al,
      const struct mh_cap_timeline *al_warm, struct mh_verdict *v)
{
    static struct mh_tl_point p[4 * NPTS];
    struct mh_verdict_input in;
    memset(&in, 0, sizeof(in));
    in.pts = p;
    in.n = make(s, p);
    if (al)
        in.alloc = *al;
    if (al_warm)
        in.alloc_warm = *al_warm;
    mh_verdict_compute(&in, v);
}

static struct shape
flat(void)
{
    struct shape s = {0};
    s.live0 = 20 * MIB;
    s.rss0 = 60 * MIB;
    return s;
}

/* Growth over the window [X0, 13.3] of a steady rate. */
#define WINDOW (13.3 - X0)

MH_TEST(verdict_flat_is_no_growth)
{
    struct shape s = flat();
    struct mh_verdict v;
    judge(&s, NULL, NULL, &v);
    CHECK_EQ_INT(v.kind, MH_VERDICT_NO_GROWTH);
    CHECK(v.enough_data);
    CHECK_EQ_INT(v.remedies, 0);
    CHECK_EQ_INT(v.rss_limit, 0);
    CHECK(strstr(v.why, "less than the 1.0 MiB a leak needs"));
}

/* The minimum growth: 1 MiB over the window, without noise. */
MH_TEST(verdict_min_growth_absolute)
{
    struct shape s = flat();
    struct mh_verdict v;
    s.live_rate = 1.1 * MIB / WINDOW;
    s.rss_rate = s.live_rate;
    judge(&s, NULL, NULL, &v);
    CHECK_EQ_INT(v.kind, MH_VERDICT_LEAK);
    CHECK(v.leak && !v.retention);
    s.live_rate = 0.9 * MIB / WINDOW;
    s.rss_rate = s.live_rate;
    judge(&s, NULL, NULL, &v);
    CHECK_EQ_INT(v.kind, MH_VERDICT_NO_GROWTH);
    CHECK(!v.leak);
}

/* The minimum growth from the noise: 3 x the envelope's residual sd
 * (alternating +-a: sd = a * sqrt(24 / 22)). */
MH_TEST(verdict_min_growth_noise)
{
    struct shape s = flat();
    struct mh_verdict v;
    double a = 1 * MIB, sd = a * sqrt(24.0 / 22.0);
    s.noise = a;
    s.live_rate = 3.3 * sd / WINDOW;
    judge(&s, NULL, NULL, &v);
    CHECK(v.live_trend.significant);
    CHECK(fabs(v.live_trend.noise - sd) < 0.05 * sd);
    CHECK_EQ_INT(v.kind, MH_VERDICT_LEAK);
    s.live_rate = 2.7 * sd / WINDOW;
    judge(&s, NULL, NULL, &v);
    CHECK(v.live_trend.significant); /* only the size fails */
    CHECK(!v.live_trend.big);
    CHECK(!v.leak);
    CHECK(v.kind != MH_VERDICT_LEAK);
}

/* Significance: the 95% interval of the slope must exclude zero. Few
 * slices (36 points: 6 of them) make the interval wide. */
MH_TEST(verdict_significance)
{
    struct shape s = flat();
    struct mh_verdict v;
    s.n = 58; /* 5.7 s: the window starts at 0.6 s, 10 slices */
    s.noise = 2 * MIB;
    s.live_rate = 20 * MIB / 5.1;
    judge(&s, NULL, NULL, &v);
    CHECK(v.live_trend.ok);
    CHECK(v.live_trend.lo > 0);
    /* The same series, noisier: the interval holds zero. */
    s.noise = 12 * MIB;
    judge(&s, NULL, NULL, &v);
    CHECK(v.live_trend.ok && v.live_trend.lo <= 0);
    CHECK(!v.leak);
}

/* Big but not significant: with 6 slices the interval is wide (t = 2.78
 * for 4 degrees of freedom), so growth above 3 x the noise can still
 * hold zero: not a leak yet. */
MH_TEST(verdict_big_needs_significance)
{
    struct shape s = flat();
    struct mh_verdict v;
    s.dt = 0.2;
    s.n = 34; /* window 6 s: 6 slices */
    s.noise = 1 * MIB;
    s.live_rate = 4.2 * MIB / 6;
    judge(&s, NULL, NULL, &v);
    CHECK_EQ_INT(v.live_trend.buckets, 6);
    CHECK(v.live_trend.big);
    CHECK(!v.live_trend.significant);
    CHECK_EQ_INT(v.kind, MH_VERDICT_UNDECIDED);
    s.live_rate = 8 * MIB / 6;
    judge(&s, NULL, NULL, &v);
    CHECK(v.live_trend.big && v.live_trend.significant);
    CHECK_EQ_INT(v.kind, MH_VERDICT_LEAK);
}

/* Too little data: a window under 5 s, or under 6 slices of 5 points. */
MH_TEST(verdict_not_enough_data)
{
    struct shape s = flat();
    struct mh_verdict v;
    s.live_rate = 4 * MIB;
    s.n = 54; /* 5.3 s: window 4.7 s */
    judge(&s, NULL, NULL, &v);
    CHECK_EQ_INT(v.kind, MH_VERDICT_UNDECIDED);
    CHECK(!v.enough_data);
    CHECK(v.more_seconds > 0);
    CHECK(strstr(v.why, "not enough data yet: about 1 more minute"));
    CHECK(strstr(v.why, "a trend needs a window of 5 s and 30 points"));
    s.n = 58; /* 5.7 s: window 5.1 s, 52 points, 10 slices */
    judge(&s, NULL, NULL, &v);
    CHECK(v.enough_data);
    CHECK_EQ_INT(v.kind, MH_VERDICT_LEAK);
}

/* ...or under 6 slices of 5 points (sparse points: 5 per second). */
MH_TEST(verdict_min_slices)
{
    struct shape s = flat();
    struct mh_verdict v;
    s.live_rate = 4 * MIB;
    s.dt = 0.2;
    s.n = 30; /* window 5.2 s, 27 points: 5 slices */
    judge(&s, NULL, NULL, &v);
    CHECK(!v.enough_data);
    CHECK_EQ_INT(v.kind, MH_VERDICT_UNDECIDED);
    s.n = 34; /* window 6 s, 31 points: 6 slices */
    judge(&s, NULL, NULL, &v);
    CHECK(v.enough_data);
    CHECK_EQ_INT(v.live_trend.buckets, 6);
    CHECK_EQ_INT(v.kind, MH_VERDICT_LEAK);
}

/* "N more minutes" is capped at an hour. */
MH_TEST(verdict_more_capped)
{
    struct shape s = flat();
    struct mh_verdict v;
    s.dt = 60;
    s.n = 60; /* 59 min; window 53 min, 54 points: 10 slices */
    s.noise = 1 * MIB;
    s.live_rate = 1.2 * MIB / 3180;
    judge(&s, NULL, NULL, &v);
    CHECK_EQ_INT(v.live_trend.buckets, 10);
    CHECK_EQ_INT(v.kind, MH_VERDICT_UNDECIDED);
    CHECK(v.more_seconds == 3600);
    CHECK(strstr(v.why, "about 60 more minutes"));
}

/* A positive trend that is neither significant nor ruled out is
 * "not enough data yet", with the minutes it would take. */
MH_TEST(verdict_undecided_says_how_long)
{
    struct shape s = flat();
    struct mh_verdict v;
    /* Significant, but under 3 x the noise, yet not ruled out. */
    s.noise = 3 * MIB;
    s.live_rate = 2 * 3 * MIB * sqrt(24.0 / 22.0) / WINDOW;
    judge(&s, NULL, NULL, &v);
    CHECK(!v.live_trend.big);
    CHECK(v.live_trend.hi * v.live_trend.x_span >= v.live_trend.min_growth);
    CHECK_EQ_INT(v.kind, MH_VERDICT_UNDECIDED);
    CHECK(v.more_seconds >= 10 && v.more_seconds <= 3600);
    CHECK(strstr(v.why, "not enough data yet: about"));
    CHECK_EQ_INT(v.remedies, 0);
    /* Shrinking: no growth, not undecided. */
    s.live_rate = -3 * MIB / WINDOW;
    judge(&s, NULL, NULL, &v);
    CHECK_EQ_INT(v.kind, MH_VERDICT_NO_GROWTH);
}

/* Levelled: the last half rises at under half the rate of the whole
 * window (k: the last half's rate over the first's; the whole window's
 * is about (1 + k) / 2 of the first's, so the boundary is k = 1/3). */
MH_TEST(verdict_bounded_vs_leak)
{
    struct shape s = flat();
    struct mh_verdict v;
    s.live_rate = 2 * MIB;
    s.rss_rate = 2 * MIB; /* RSS follows */
    s.level_at = X0 + WINDOW / 2;
    s.level_k = 0.38;
    judge(&s, NULL, NULL, &v);
    CHECK(v.live_trend.recent_hi > 0.5 * v.live_trend.slope);
    CHECK_EQ_INT(v.kind, MH_VERDICT_LEAK);
    s.level_k = 0.28;
    judge(&s, NULL, NULL, &v);
    CHECK(v.live_trend.recent_hi < 0.5 * v.live_trend.slope);
    CHECK_EQ_INT(v.kind, MH_VERDICT_BOUNDED);
    CHECK(strstr(v.why, "levelled off"));
    CHECK(!v.leak && !(v.remedies & MH_REMEDY_FIND_LEAK));
    /* A cache that fills early, then holds, in noise that hides the
     * whole window's trend: still bounded, from the first half. */
    s.level_at = X0 + 3;
    s.level_k = 0;
    s.live_rate = 6 * MIB;
    s.noise = 4 * MIB;
    judge(&s, NULL, NULL, &v);
    CHECK(v.live_trend.rose_early);
    CHECK_EQ_INT(v.kind, MH_VERDICT_BOUNDED);
}

/* A rise that the halves call bounded (first half up, last half flat,
 * in noise that keeps the whole window's test from saying "levelled") is
 * a leak all the same while RSS keeps rising steadily. */
MH_TEST(verdict_bounded_needs_rss_level)
{
    struct shape s = flat();
    struct mh_verdict v;
    s.level_at = X0 + 5;
    s.level_k = 0;
    s.live_rate = 3 * MIB;
    s.noise = 2 * MIB;
    judge(&s, NULL, NULL, &v);
    CHECK(v.live_trend.significant && v.live_trend.big);
    CHECK(!v.live_trend.levelled);
    CHECK(v.live_trend.rose_early);
    CHECK_EQ_INT(v.kind, MH_VERDICT_BOUNDED);
    /* The same live bytes, with RSS rising steadily all along. */
    struct mh_tl_point p[NPTS];
    size_t n = make(&s, p);
    struct mh_tl_point q[NPTS];
    struct shape rss = flat();
    rss.rss_rate = 12 * MIB / WINDOW;
    make(&rss, q);
    for (size_t i = 0; i < n; i++)
        p[i].rss = q[i].rss;
    struct mh_verdict_input in;
    memset(&in, 0, sizeof(in));
    in.pts = p;
    in.n = n;
    mh_verdict_compute(&in, &v);
    CHECK(v.live_trend.rose_early && !v.live_trend.levelled);
    CHECK(v.rss_trend.significant && !v.rss_trend.levelled);
    CHECK(v.leak);
}

/* With >= 30 requests in the window, growth is judged per request: a
 * per-request leak that stops when traffic stops is still a leak. */
MH_TEST(verdict_by_requests)
{
    struct shape s = flat();
    struct mh_verdict v;
    s.live_rate = 1 * MIB;
    s.level_at = 7;
    s.level_k = 0;
    s.idle = 1;
    s.req_rate = 30 / (7 - X0) + 0.01; /* 30 requests in the window */
    judge(&s, NULL, NULL, &v);
    CHECK(v.live_trend.by_requests);
    CHECK_EQ_INT(v.kind, MH_VERDICT_LEAK);
    CHECK(v.per_request > 0.1 * MIB);
    CHECK(strstr(v.why, "per request"));
    /* 29 requests: judged by time, and the idle half reads as levelled. */
    s.req_rate = 29 / (7 - X0);
    judge(&s, NULL, NULL, &v);
    CHECK(!v.live_trend.by_requests);
    CHECK(v.kind != MH_VERDICT_LEAK);
    CHECK(v.per_request == 0);
}

/* Free memory held: retention from max(8 MiB, 25% of RSS). */
MH_TEST(verdict_held_threshold)
{
    struct shape s = flat();
    struct mh_verdict v;
    struct mh_cap_timeline al = {0};
    s.rss0 = 100 * MIB;
    al.alloc = MH_TL_MALLOC | MH_TL_PYMALLOC;
    al.malloc_free = (uint64_t)(20 * MIB);
    al.arena_free = (uint64_t)(5.5 * MIB);
    judge(&s, &al, NULL, &v);
    CHECK_EQ_INT(v.kind, MH_VERDICT_RETENTION);
    CHECK(v.held_known && fabs(v.held - 25.5 * MIB) < 1);
    al.arena_free = (uint64_t)(4.5 * MIB);
    judge(&s, &al, NULL, &v);
    CHECK_EQ_INT(v.kind, MH_VERDICT_NO_GROWTH);
    /* A small process: the 8 MiB floor decides. */
    s.rss0 = 20 * MIB;
    al.malloc_free = (uint64_t)(8.5 * MIB);
    al.arena_free = 0;
    judge(&s, &al, NULL, &v);
    CHECK_EQ_INT(v.kind, MH_VERDICT_RETENTION);
    al.malloc_free = (uint64_t)(7.5 * MIB);
    judge(&s, &al, NULL, &v);
    CHECK_EQ_INT(v.kind, MH_VERDICT_NO_GROWTH);
}

/* Remedies of retention: trim/jemalloc for glibc's part (>= 8 MiB),
 * pymalloc's note for its part, MALLOC_ARENA_MAX with > 2 threads. */
MH_TEST(verdict_retention_remedies)
{
    struct shape s = flat();
    struct mh_verdict v;
    struct mh_cap_timeline al = {0};
    static struct mh_tl_point p[NPTS];
    struct mh_verdict_input in;
    memset(&in, 0, sizeof(in));
    in.pts = p;
    in.n = make(&s, p);
    al.alloc = MH_TL_MALLOC | MH_TL_PYMALLOC;
    al.arena_free = (uint64_t)(40 * MIB);
    al.malloc_free = (uint64_t)(8.5 * MIB);
    in.alloc = al;
    in.threads = 3;
    mh_verdict_compute(&in, &v);
    CHECK_EQ_INT(v.kind, MH_VERDICT_RETENTION);
    CHECK(v.remedies & MH_REMEDY_TRIM);
    CHECK(v.remedies & MH_REMEDY_JEMALLOC);
    CHECK(v.remedies & MH_REMEDY_ARENA_MAX);
    CHECK(v.remedies & MH_REMEDY_PYMALLOC);
    CHECK(v.remedies & MH_REMEDY_RECYCLE);
    CHECK(!(v.remedies & MH_REMEDY_FIND_LEAK));
    in.threads = 2;
    in.alloc.malloc_free = (uint64_t)(7.5 * MIB);
    mh_verdict_compute(&in, &v);
    CHECK(!(v.remedies & MH_REMEDY_TRIM));
    CHECK(!(v.remedies & MH_REMEDY_ARENA_MAX));
    CHECK(v.remedies & MH_REMEDY_PYMALLOC);
    in.alloc.arena_free = (uint64_t)(7.5 * MIB);
    in.alloc.malloc_free = (uint64_t)(40 * MIB);
    mh_verdict_compute(&in, &v);
    CHECK(v.remedies & MH_REMEDY_TRIM);
    CHECK(!(v.remedies & MH_REMEDY_PYMALLOC));
    /* Unknown allocators: glibc's remedies, threads unknown: arena max. */
    in.alloc.alloc = 0;
    in.threads = 0;
    s.rss_rate = 4 * MIB;
    in.n = make(&s, p);
    mh_verdict_compute(&in, &v);
    CHECK_EQ_INT(v.kind, MH_VERDICT_RETENTION);
    CHECK(v.remedies & MH_REMEDY_TRIM);
    CHECK(v.remedies & MH_REMEDY_ARENA_MAX);
    CHECK(strstr(v.why, "no allocator figures"));
}

/* RSS growth live bytes do not explain: native when malloc's in-use
 * bytes carry >= 50% of it, else retention; RSS growth needs 2 MiB. */
MH_TEST(verdict_untracked_growth)
{
    struct shape s = flat();
    struct mh_verdict v;
    struct mh_cap_timeline a0 = {0}, a1 = {0};
    s.rss_rate = 20 * MIB / WINDOW;
    a0.alloc = a1.alloc = MH_TL_MALLOC;
    a0.malloc_inuse = (uint64_t)(10 * MIB);
    a1.malloc_inuse = (uint64_t)(21 * MIB); /* 11 of ~20 MiB */
    judge(&s, &a1, &a0, &v);
    CHECK(v.native && !v.leak && !v.retention);
    CHECK_EQ_INT(v.kind, MH_VERDICT_LEAK);
    CHECK(v.remedies & MH_REMEDY_NATIVE);
    CHECK(strstr(v.why, "outside the tracked domains"));
    a1.malloc_inuse = (uint64_t)(19 * MIB); /* 9 of ~20 MiB */
    judge(&s, &a1, &a0, &v);
    CHECK(!v.native && v.retention);
    CHECK_EQ_INT(v.kind, MH_VERDICT_RETENTION);
    /* RSS growth must be significant: big growth in noise that holds
     * zero (6 slices) is not retention. */
    struct shape w = flat();
    w.dt = 0.2;
    w.n = 34;
    w.rss_noise = 1 * MIB;
    w.rss_rate = 4.2 * MIB / 6;
    judge(&w, NULL, NULL, &v);
    CHECK(v.rss_trend.big && !v.rss_trend.significant);
    CHECK(!v.retention);
    w.rss_rate = 8 * MIB / 6;
    judge(&w, NULL, NULL, &v);
    CHECK(v.rss_trend.big && v.rss_trend.significant);
    CHECK(v.retention);
    /* RSS that rose, then levelled, does not grow any more. */
    w = flat();
    w.rss_rate = 20 * MIB / WINDOW;
    w.level_at = X0 + WINDOW / 2;
    w.level_k = 0.28;
    judge(&w, NULL, NULL, &v);
    CHECK(v.rss_trend.levelled);
    CHECK_EQ_INT(v.kind, MH_VERDICT_NO_GROWTH);
    w.level_k = 0.38;
    judge(&w, NULL, NULL, &v);
    CHECK(!v.rss_trend.levelled);
    CHECK_EQ_INT(v.kind, MH_VERDICT_RETENTION);
    /* RSS growth under 2 MiB is not growth. */
    s.rss_rate = 1.8 * MIB / WINDOW;
    judge(&s, NULL, NULL, &v);
    CHECK_EQ_INT(v.kind, MH_VERDICT_NO_GROWTH);
    s.rss_rate = 2.2 * MIB / WINDOW;
    judge(&s, NULL, NULL, &v);
    CHECK_EQ_INT(v.kind, MH_VERDICT_RETENTION);
}

/* A leak explains RSS growth when it is >= 50% of it; past that, the
 * rest is a second part. */
MH_TEST(verdict_leak_share_of_rss)
{
    struct shape s = flat();
    struct mh_verdict v;
    s.live_rate = 10 * MIB / WINDOW;
    s.rss_rate = 19 * MIB / WINDOW;
    judge(&s, NULL, NULL, &v);
    CHECK_EQ_INT(v.kind, MH_VERDICT_LEAK);
    CHECK(v.leak && !v.retention);
    s.rss_rate = 21 * MIB / WINDOW;
    judge(&s, NULL, NULL, &v);
    CHECK_EQ_INT(v.kind, MH_VERDICT_LEAK_RETENTION);
    CHECK(v.leak && v.retention);
    CHECK(v.remedies & MH_REMEDY_FIND_LEAK);
    CHECK(v.remedies & MH_REMEDY_TRIM);
}

/* Leak and retention at once, each with its remedy. */
MH_TEST(verdict_leak_and_retention)
{
    struct shape s = flat();
    struct mh_verdict v;
    struct mh_cap_timeline al = {0};
    al.alloc = MH_TL_MALLOC | MH_TL_PYMALLOC;
    al.malloc_free = (uint64_t)(30 * MIB);
    s.live_rate = 5 * MIB / WINDOW;
    s.rss_rate = s.live_rate;
    judge(&s, &al, NULL, &v);
    CHECK_EQ_INT(v.kind, MH_VERDICT_LEAK_RETENTION);
    CHECK(v.remedies & MH_REMEDY_FIND_LEAK);
    CHECK(v.remedies & MH_REMEDY_TRIM);
    CHECK(strstr(v.why, "rose by") && strstr(v.why, "free memory"));
}

/* The recycle limit: never above 4 x peak RSS nor the memory limit,
 * with the time a fresh worker takes to reach it. */
MH_TEST(verdict_recycle_limit_caps)
{
    struct shape s = flat();
    struct mh_verdict v;
    static struct mh_tl_point p[NPTS];
    struct mh_verdict_input in;
    memset(&in, 0, sizeof(in));
    /* A fast leak: RSS + 1 h of growth would be ~36 GiB. */
    s.live_rate = 10 * MIB;
    s.rss_rate = 10 * MIB;
    in.pts = p;
    in.n = make(&s, p);
    mh_verdict_compute(&in, &v);
    CHECK_EQ_INT(v.kind, MH_VERDICT_LEAK);
    double peak = (double)v.rss_peak;
    CHECK(v.rss_limit > 0 && (double)v.rss_limit <= 4 * peak);
    CHECK(v.rss_limit > v.rss_peak);
    CHECK(!strcmp(v.cap_by, "4 x the peak RSS"));
    CHECK(v.lifetime_at_limit > 0);
    /* 4 x 193 MiB = 772 MiB: rounded down to 64 MiB steps (768). */
    CHECK_EQ_INT(v.rss_limit, 768 << 20);
    CHECK(fabs(v.lifetime_at_limit -
               ((double)v.rss_limit - 60 * MIB) / (10 * MIB)) < 2);
    /* A memory limit under 4 x peak caps it instead. */
    in.mem_limit = (uint64_t)(300 * MIB);
    mh_verdict_compute(&in, &v);
    CHECK(v.rss_limit <= in.mem_limit);
    CHECK(!strcmp(v.cap_by, "the memory limit"));
    CHECK_EQ_INT(v.rss_limit, 256 << 20);
    /* 64 MiB steps would go under the peak RSS: the limit itself. */
    in.mem_limit = (uint64_t)(250.5 * MIB);
    mh_verdict_compute(&in, &v);
    CHECK_EQ_INT(v.rss_limit, (uint64_t)(250.5 * MIB));
    in.mem_limit = (uint64_t)(300 * MIB);
    in.mem_limit = (uint64_t)(4 * peak + 64 * MIB);
    mh_verdict_compute(&in, &v);
    CHECK(!strcmp(v.cap_by, "4 x the peak RSS"));
    /* A small process: 4 x 23.3 MiB = 93.2 MiB; 64 MiB steps would
     * give up over a quarter of it, so whole MiB: 93 MiB. */
    struct shape small = flat();
    small.rss0 = 10 * MIB;
    small.live_rate = small.rss_rate = 1 * MIB;
    in.n = make(&small, p);
    in.mem_limit = 0;
    mh_verdict_compute(&in, &v);
    CHECK_EQ_INT(v.rss_limit, 93 << 20);
    /* A slow leak: RSS now + 1 h of growth, rounded up to 64 MiB. */
    s.rss0 = 600 * MIB;
    s.live_rate = 2 * MIB / WINDOW;
    s.rss_rate = s.live_rate;
    in.n = make(&s, p);
    in.mem_limit = 0;
    mh_verdict_compute(&in, &v);
    CHECK_EQ_INT(v.kind, MH_VERDICT_LEAK);
    double want = (double)v.rss + v.rss_slope * 3600;
    CHECK(want < 4 * (double)v.rss_peak);
    CHECK((double)v.rss_limit >= want &&
          (double)v.rss_limit < want + 64 * MIB);
    CHECK(v.rss_limit % (64 << 20) == 0);
    /* No growth, retention: 1.25 x peak, rounded up. */
    struct mh_cap_timeline al = {0};
    al.alloc = MH_TL_MALLOC;
    al.malloc_free = (uint64_t)(40 * MIB);
    s = flat();
    in.n = make(&s, p);
    in.alloc = al;
    mh_verdict_compute(&in, &v);
    CHECK_EQ_INT(v.kind, MH_VERDICT_RETENTION);
    CHECK_EQ_INT(v.rss_limit, 128 << 20); /* 1.25 x 60 MiB = 75 */
    CHECK(v.lifetime_at_limit == 0);
    s.rss0 = 100 * MIB;
    in.n = make(&s, p);
    mh_verdict_compute(&in, &v);
    CHECK_EQ_INT(v.rss_limit, 128 << 20); /* 1.25 x 100 MiB = 125 */
    s.rss0 = 103 * MIB;
    in.n = make(&s, p);
    mh_verdict_compute(&in, &v);
    CHECK_EQ_INT(v.rss_limit, 192 << 20); /* 1.25 x 103 MiB = 128.75 */
}

/* A merged pre-fork report: one verdict per process from its own
 * timeline and figures, and a summary across them. */
MH_TEST(verdict_merged_per_process)
{
    static struct mh_tl_point pm[NPTS], pw1[NPTS], pw2[NPTS];
    struct shape master = flat(), worker = flat();
    worker.live_rate = 2 * MIB;
    worker.rss_rate = 2 * MIB;
    worker.req_rate = 50;
    struct mh_process procs[3];
    memset(procs, 0, sizeof(procs));
    procs[0].pid = 100;
    procs[0].timeline.pts = pm;
    procs[0].timeline.n = make(&master, pm);
    /* The master holds much free memory: not the workers' retention. */
    procs[0].alloc.alloc = MH_TL_MALLOC;
    procs[0].alloc.malloc_free = (uint64_t)(50 * MIB);
    procs[1].pid = 101;
    procs[1].fork_parent = 100;
    procs[1].timeline.pts = pw1;
    procs[1].timeline.n = make(&worker, pw1);
    procs[2].pid = 102;
    procs[2].ppid = 100;
    procs[2].timeline.pts = pw2;
    procs[2].timeline.n = make(&worker, pw2);
    struct mh_analysis a;
    memset(&a, 0, sizeof(a));
    a.procs = procs;
    a.nprocs = 3;
    struct mh_verdicts vs;
    CHECK(!mh_verdicts_of_analysis(&a, NULL, &vs));
    CHECK_EQ_INT(vs.n, 3);
    CHECK_EQ_STR(vs.procs[0].role, "master");
    CHECK_EQ_STR(vs.procs[1].role, "worker");
    CHECK_EQ_STR(vs.procs[2].role, "worker");
    CHECK_EQ_INT(vs.procs[0].v.kind, MH_VERDICT_RETENTION);
    CHECK_EQ_INT(vs.procs[1].v.kind, MH_VERDICT_LEAK);
    CHECK_EQ_INT(vs.procs[2].v.kind, MH_VERDICT_LEAK);
    CHECK_EQ_INT(vs.kind, MH_VERDICT_LEAK_RETENTION);
    CHECK(strstr(vs.summary, "leak in 2 of 2 workers, ~41.0 KiB per "
                             "request"));
    CHECK(strstr(vs.summary, "retention in 1 of 1 master"));
    /* The master without free memory does not grow. */
    procs[0].alloc.alloc = 0;
    mh_verdicts_release(&vs);
    CHECK(!mh_verdicts_of_analysis(&a, NULL, &vs));
    CHECK_EQ_INT(vs.kind, MH_VERDICT_LEAK);
    CHECK_EQ_INT(vs.lead, 1);
    CHECK(strstr(vs.summary, "the master does not grow"));
    /* What inspect measured now is the last process's alone. */
    struct mh_verdict_input now;
    memset(&now, 0, sizeof(now));
    now.alloc.alloc = MH_TL_MALLOC;
    now.alloc.malloc_free = (uint64_t)(100 * MIB);
    mh_verdicts_release(&vs);
    CHECK(!mh_verdicts_of_analysis(&a, &now, &vs));
    CHECK_EQ_INT(vs.procs[0].v.kind, MH_VERDICT_NO_GROWTH);
    CHECK_EQ_INT(vs.procs[1].v.kind, MH_VERDICT_LEAK);
    CHECK_EQ_INT(vs.procs[2].v.kind, MH_VERDICT_LEAK_RETENTION);
    /* One worker leaking of two. */
    procs[2].timeline.n = make(&master, pw2);
    mh_verdicts_release(&vs);
    CHECK(!mh_verdicts_of_analysis(&a, NULL, &vs));
    CHECK(strstr(vs.summary, "leak in 1 of 2 workers"));
    mh_verdicts_release(&vs);
}

/* Consistency with the growth section: a leak names its sites; growth
 * listed above the floor is never passed over silently. */
MH_TEST(verdict_names_growth_sites)
{
    static struct mh_tl_point p[NPTS];
    struct shape s = flat();
    s.live_rate = 2 * MIB;
    struct mh_process proc;
    memset(&proc, 0, sizeof(proc));
    proc.pid = 7;
    proc.timeline.pts = p;
    proc.timeline.n = make(&s, p);
    struct mh_analysis a;
    struct mh_analysis_opts o = {0};
    mh_analysis_init(&a, &o);
    struct mh_process *keep = a.procs;
    a.procs = &proc;
    a.nprocs = 1;
    struct mh_site site[2];
    memset(site, 0, sizeof(site));
    uint32_t id;
    CHECK(!mh_strpool_intern(&a.strings, "app.py:12", 9, &id));
    site[0].key = id;
    site[0].growth_bytes = 20 * MIB;
    site[0].share = 0.978;
    /* Below the growth section's floor: not named. */
    CHECK(!mh_strpool_intern(&a.strings, "lib.py:3", 8, &id));
    site[1].key = id;
    site[1].growth_bytes = 0.5 * MIB;
    site[1].share = 0.022;
    uint32_t idx[2] = {0, 1};
    a.sites = site;
    a.nsites = 2;
    a.growth = idx;
    a.ngrowth = 2;
    a.summary.growth_floor = 1 * MIB;
    a.summary.growth_found = 1;
    a.summary.growth_bytes = 20 * MIB;
    struct mh_verdicts vs;
    CHECK(!mh_verdicts_of_analysis(&a, NULL, &vs));
    CHECK_EQ_INT(vs.kind, MH_VERDICT_LEAK);
    CHECK(strstr(vs.sites, "growth sites carrying it: app.py:12 (+20.0 "
                           "MiB, 97.8%)"));
    CHECK(!strstr(vs.sites, "lib.py"));
    mh_verdicts_release(&vs);
    /* The same growth, levelled: said so, never "did not grow". */
    s.level_at = X0 + 3;
    s.level_k = 0;
    proc.timeline.n = make(&s, p);
    CHECK(!mh_verdicts_of_analysis(&a, NULL, &vs));
    CHECK_EQ_INT(vs.kind, MH_VERDICT_BOUNDED);
    CHECK(strstr(vs.sites, "the growth section lists 20.0 MiB"));
    CHECK(strstr(vs.sites, "levelled off"));
    mh_verdicts_release(&vs);
    a.procs = keep;
    a.nprocs = 0;
    a.sites = NULL;
    a.nsites = 0;
    a.growth = NULL;
    a.ngrowth = 0;
    mh_analysis_release(&a);
}

/* `top`: no slope before 8 samples, nor while its interval holds 0. */
MH_TEST(verdict_top_slope_shown)
{
    struct mh_slope s;
    struct mh_slope_fit f;
    mh_slope_init(&s, 0);
    for (int i = 0; i < 7; i++)
        mh_slope_add(&s, i, 100.0 * i);
    CHECK(!mh_slope_fit(&s, &f));
    CHECK(!mh_slope_fit_significant(&f));
    mh_slope_add(&s, 7, 700);
    CHECK(!mh_slope_fit(&s, &f));
    CHECK(mh_slope_fit_significant(&f));
    /* 8 samples of noise: up, down, ... */
    mh_slope_init(&s, 0);
    for (int i = 0; i < 8; i++)
        mh_slope_add(&s, i, (i % 2 ? 100.0 : -100.0) + 5 * i);
    CHECK(!mh_slope_fit(&s, &f));
    CHECK(f.slope > 0);
    CHECK(!mh_slope_fit_significant(&f));
    CHECK(fabs(mh_slope_t95(1) - 12.706) < 1e-9);
    CHECK(fabs(mh_slope_t95(1000) - 1.96) < 1e-9);
}

/* The report's significance mark (growth rows, endpoints): the running
 * sums fit the same slope and standard error as the ring, and the mark
 * needs the interval above zero and the size at the floor. */
MH_TEST(report_significance_mark)
{
    struct mh_slope s;
    struct mh_slope_sums sums = {0};
    struct mh_slope_fit f, g;
    mh_slope_init(&s, 0);
    for (int k = 1; k <= 20; k++) {
        double y = 1000.0 * k + (k % 2 ? 300 : -300);
        mh_slope_add(&s, k, y);
        mh_slope_sums_add(&sums, k, y);
    }
    CHECK(!mh_slope_fit(&s, &f));
    CHECK(!mh_slope_sums_fit_full(&sums, &g));
    CHECK(fabs(f.slope - g.slope) < 1e-9);
    CHECK(fabs(f.se - g.se) < 1e-9 && g.se > 0);
    CHECK_EQ_INT(g.n, 20);
    /* 1,000 a point over 20 points: 20,000 of growth. */
    CHECK(mh_slope_growth_significant(&g, g.slope * 20, 19000));
    CHECK(!mh_slope_growth_significant(&g, g.slope * 20, 64 * 1024));
    /* No trend: large values that go up and down. */
    struct mh_slope_sums flat = {0};
    for (int k = 1; k <= 40; k++)
        mh_slope_sums_add(&flat, k, k % 2 ? 1e6 : 0);
    CHECK(!mh_slope_sums_fit_full(&flat, &g));
    CHECK(!mh_slope_growth_significant(&g, fabs(g.slope) * 40, 0));
    /* Too few points, however clean. */
    struct mh_slope_sums few = {0};
    for (int k = 1; k <= 7; k++)
        mh_slope_sums_add(&few, k, 1e6 * k);
    CHECK(!mh_slope_sums_fit_full(&few, &g));
    CHECK(!mh_slope_growth_significant(&g, 7e6, 0));
    /* The rule on an interval's lower end. */
    CHECK(!mh_slope_mark(-1, 1e9, 0));
    CHECK(!mh_slope_mark(0, 1e9, 0));
    CHECK(!mh_slope_mark(1, 99, 100));
    CHECK(mh_slope_mark(1, 100, 100));
}

/* A leak with RSS growth it does not explain: with allocator figures,
 * retention only when their free memory grew by >= 50% of the rest (else
 * the rest is the leak's: a sampled estimate, arenas growing with it). */
MH_TEST(verdict_leak_rest_of_rss)
{
    struct shape s = flat();
    struct mh_verdict v;
    struct mh_cap_timeline a0 = {0}, a1 = {0};
    s.live_rate = 5 * MIB / WINDOW;
    s.rss_rate = 20 * MIB / WINDOW;
    a0.alloc = a1.alloc = MH_TL_MALLOC | MH_TL_PYMALLOC;
    a0.malloc_free = (uint64_t)(1 * MIB);
    a1.malloc_free = (uint64_t)(5 * MIB);
    a0.arena_free = (uint64_t)(1 * MIB);
    a1.arena_free = (uint64_t)(5.5 * MIB); /* +8.5 of ~15 MiB */
    judge(&s, &a1, &a0, &v);
    CHECK(v.leak && v.retention && !v.native);
    CHECK_EQ_INT(v.kind, MH_VERDICT_LEAK_RETENTION);
    a1.arena_free = (uint64_t)(3.5 * MIB); /* +6.5 of ~15 MiB */
    judge(&s, &a1, &a0, &v);
    CHECK(v.leak && !v.retention && !v.native);
    CHECK_EQ_INT(v.kind, MH_VERDICT_LEAK);
}

/* A rise in the first half alone makes "bounded" only when it reaches
 * the minimum growth (1 MiB here): a smaller one is no growth. */
MH_TEST(verdict_bounded_needs_min_growth)
{
    struct shape s = flat();
    struct mh_verdict v;
    s.level_at = X0 + 3;
    s.level_k = 0;
    s.live_rate = 1.0 * MIB; /* 3 MiB in the first 3 s of the window */
    judge(&s, NULL, NULL, &v);
    CHECK(v.live_trend.rose_early);
    CHECK_EQ_INT(v.kind, MH_VERDICT_BOUNDED);
    s.live_rate = 0.2 * MIB; /* 0.6 MiB */
    judge(&s, NULL, NULL, &v);
    CHECK(!v.live_trend.rose_early);
    CHECK(v.live_trend.early_lo > 0);
    CHECK(v.live_trend.recent_hi < 0.5 * v.live_trend.early_slope);
    CHECK_EQ_INT(v.kind, MH_VERDICT_NO_GROWTH);
}
