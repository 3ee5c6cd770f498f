/* Tests of `memhound report`: the replay and site analysis on captures
 * built in memory with the writer, the renderers, and the command's exit
 * codes. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "analysis/capture/analysis.h"
#include "analysis/capture/codepath.h"
#include "util/blockmap.h"
#include "util/strpool.h"
#include "analysis/capture/timeline.h"
#include "cli/cli.h"
#include "format/capture_write.h"
#include "cap_gen.h"
#include "cmd_run.h"
#include "harness.h"
#include "render/json.h"
#include "render/text.h"
#include "util/mem.h"

#define MiB (1024.0 * 1024.0)

/* ---- scenarios ------------------------------------------------------ */

static const struct tframe st_cache[] = {
    {"/srv/app/cache.py", "remember", 17},
    {"/srv/app/helpers.py", "store", 8},
    {"/srv/app/views.py", "handler", 30},
    {"/usr/lib/python3.11/threading.py", "run", 975},
};
static const struct tframe st_peak[] = {
    {"/srv/app/batch.py", "burst", 5},
    {"/srv/app/views.py", "handler", 31},
};
static const struct tframe st_noise[] = {
    {"/usr/lib/python3.11/json/decoder.py", "JSONDecoder.raw_decode", 353},
    {"/usr/lib/python3.11/json/__init__.py", "loads", 346},
    {"/srv/app/views.py", "handler", 40},
};

/* 10 s, a TIMELINE every 100 ms. Per tick: 10 x 1000 bytes added to a
 * cache and never freed; a 200 MiB peak allocated every 10th tick and
 * freed 5 ticks later; 5 transient 300-byte blocks. */
static void
gen_leak(struct tcap *c)
{
    uint32_t cache = tcap_stack(c, 4, st_cache);
    uint32_t peak = tcap_stack(c, 2, st_peak);
    uint32_t noise = tcap_stack(c, 3, st_noise);
    uint64_t next = 0x7f0000000000ull;
    for (int tick = 0; tick < 100; tick++) {
        tcap_tick(c, (uint64_t)tick * 100 * MS, (50u + tick) << 20);
        for (int i = 0; i < 10; i++) {
            tcap_alloc(c, cache, 1000, next);
            next += 1024;
        }
        if (tick % 10 == 0)
            tcap_alloc(c, peak, 200u << 20, 0x100000000000ull);
        if (tick % 10 == 5)
            tcap_free(c, 0x100000000000ull);
        for (int i = 0; i < 5; i++)
            tcap_alloc(c, noise, 300, 0x200000000000ull + 512u * i);
        for (int i = 0; i < 5; i++)
            tcap_free(c, 0x200000000000ull + 512u * i);
        if (tick % 7 == 6)
            tcap_flush(c);
    }
    tcap_end(c, 10000 * MS);
}

static uint8_t *
leak_capture(int zstd, size_t *len)
{
    struct tcap c;
    struct topts o = {.mode = MH_MODE_TRACE, .zstd = zstd};
    tcap_init(&c, &o);
    gen_leak(&c);
    uint8_t *p = mh_buf_take(&c.file, len);
    tcap_release(&c);
    return p;
}

static struct mh_analysis_opts
opts(enum mh_by by, double warmup, int fraction)
{
    struct mh_analysis_opts o = {by, warmup, fraction, 0};
    return o;
}

/* Analyses the captures; the analysis is finished. */
static void
analyse(struct mh_analysis *a, struct mh_analysis_opts o, size_t n,
        uint8_t **bufs, size_t *lens)
{
    mh_analysis_init(a, &o);
    for (size_t i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof(name), "cap%zu.mhc", i);
        int rc = mh_analysis_add(a, name, bufs[i], lens[i]);
        if (rc)
            fprintf(stderr, "add: %s\n", a->error);
        OK(rc);
    }
    OK(mh_analysis_finish(a));
}

static const struct mh_site *
find_site(const struct mh_analysis *a, const char *key)
{
    for (size_t i = 0; i < a->ngrowth; i++)
        if (!strcmp(mh_analysis_str(a, a->sites[a->growth[i]].key), key))
            return &a->sites[a->growth[i]];
    for (size_t i = 0; i < a->nlive; i++)
        if (!strcmp(mh_analysis_str(a, a->sites[a->live[i]].key), key))
            return &a->sites[a->live[i]];
    return NULL;
}

/* ---- the analysis --------------------------------------------------- */

MH_TEST(analysis_leak_is_top_growth_peaks_are_not)
{
    for (int zstd = 0; zstd < 2; zstd++) {
        size_t len;
        uint8_t *buf = leak_capture(zstd, &len);
        struct mh_analysis a;
        analyse(&a, opts(MH_BY_LINE, 0.1, 1), 1, &buf, &len);
        CHECK(a.ngrowth >= 1);
        const struct mh_site *s = &a.sites[a.growth[0]];
        CHECK_EQ_STR(mh_analysis_str(&a, s->key),
                     "/srv/app/cache.py:17 in remember");
        CHECK_EQ_STR(mh_analysis_str(&a, s->file), "/srv/app/cache.py");
        CHECK_EQ_INT(s->line, 17);
        /* Warm-up = 1 s: ticks 10..99 count. */
        check_near(s->growth_bytes, 90 * 10 * 1000, 0.5);
        check_near(s->growth_count, 900, 1e-9);
        check_near(s->live_bytes, 100 * 10 * 1000, 0.5);
        check_near(s->bytes_per_second, 900000 / 9.0, 1e-6);
        check_near(s->share, 1, 1e-12);
        CHECK(a.summary.growth_found);
        /* No other site grew: the peaks were freed, the noise too. */
        for (size_t i = 0; i < a.ngrowth; i++)
            CHECK(a.sites[a.growth[i]].growth_bytes < 5 * MiB);
        CHECK_EQ_INT(a.ngrowth, 1);
        CHECK_EQ_INT(a.nlive, 1);
        /* Summary. */
        CHECK_EQ_INT(a.nprocs, 1);
        CHECK_EQ_INT(a.procs[0].duration_ns, 10000 * MS);
        CHECK_EQ_INT(a.procs[0].warmup_ns, 1000 * MS);
        CHECK_EQ_INT(a.summary.peak_rss, (uint64_t)149 << 20);
        /* Tick 95, before the peak is freed. */
        check_near(a.summary.tracked_peak, (200u << 20) + 960000, 0.5);
        check_near(a.summary.live_bytes, 1000000, 0.5);
        CHECK_EQ_INT(a.summary.samples, 100 * 10 + 10 + 500);
        CHECK_EQ_INT(a.summary.frees, 10 + 500);
        CHECK(a.procs[0].clean_end);
        CHECK(!a.procs[0].truncated);
        CHECK(a.ntimeline == 101);
        mh_analysis_release(&a);
        free(buf);
    }
}

MH_TEST(analysis_user_frame_skips_library_code)
{
    size_t len;
    uint8_t *buf = leak_capture(0, &len);
    struct mh_analysis a;
    analyse(&a, opts(MH_BY_LINE, 0, 0), 1, &buf, &len);
    const struct mh_site *s =
        find_site(&a, "/srv/app/cache.py:17 in remember");
    CHECK(s && s->has_user);
    /* The innermost frame is user code itself. */
    CHECK_EQ_STR(mh_analysis_str(&a, s->user.file), "/srv/app/cache.py");
    CHECK_EQ_INT(s->user.line, 17);
    mh_analysis_release(&a);

    /* By file: the json site's user frame is the view below it. */
    struct tcap c;
    tcap_init_trace(&c);
    const struct tframe odd[] = {
        {"<frozen importlib._bootstrap>", "_load", 5},
        {"/opt/memhound/lib/memhound/python/memhound/__init__.py", "start", 3},
        {"/x/build/python/bootstrap/sitecustomize.py", "<module>", 9},
        {"/srv/app/main.py", "<module>", 3},
    };
    uint32_t s1 = tcap_stack(&c, 3, st_noise);
    uint32_t s2 = tcap_stack(&c, 4, odd);
    const struct tframe lib_only[] = {
        {"/usr/lib/python3/dist-packages/django/db.py", "execute", 80}};
    uint32_t s3 = tcap_stack(&c, 1, lib_only);
    tcap_tick(&c, 0, 1 << 20);
    tcap_alloc(&c, s1, 5000, 0x1000);
    tcap_alloc(&c, s2, 7000, 0x3000);
    tcap_alloc(&c, s3, 9000, 0x5000);
    tcap_end(&c, 1000 * MS);
    free(buf);
    buf = mh_buf_take(&c.file, &len);
    tcap_release(&c);
    analyse(&a, opts(MH_BY_LINE, 0, 0), 1, &buf, &len);
    s = find_site(&a, "/usr/lib/python3.11/json/decoder.py:353 in "
                      "JSONDecoder.raw_decode");
    CHECK(s && s->has_user);
    CHECK_EQ_STR(mh_analysis_str(&a, s->user.file), "/srv/app/views.py");
    CHECK_EQ_INT(s->user.line, 40);
    CHECK_EQ_STR(mh_analysis_str(&a, s->user.function), "handler");
    CHECK_EQ_STR(mh_analysis_str(&a, s->module), "json.decoder");
    s = find_site(&a, "<frozen importlib._bootstrap>:5 in _load");
    CHECK(s && s->has_user);
    CHECK_EQ_STR(mh_analysis_str(&a, s->user.file), "/srv/app/main.py");
    CHECK_EQ_STR(mh_analysis_str(&a, s->module), "importlib._bootstrap");
    s = find_site(&a, "/usr/lib/python3/dist-packages/django/db.py:80 in "
                      "execute");
    CHECK(s && !s->has_user);
    CHECK_EQ_STR(mh_analysis_str(&a, s->module), "django.db");
    mh_analysis_release(&a);
    free(buf);
}

MH_TEST(analysis_user_frame_dominant_by_bytes)
{
    /* One line reached from two user frames: the bigger one wins. */
    struct tcap c;
    tcap_init_trace(&c);
    const struct tframe a1[] = {{"/usr/lib/python3.11/copy.py", "copy", 9},
                                {"/srv/app/a.py", "small", 1}};
    const struct tframe a2[] = {{"/usr/lib/python3.11/copy.py", "copy", 9},
                                {"/srv/app/b.py", "big", 2}};
    uint32_t s1 = tcap_stack(&c, 2, a1), s2 = tcap_stack(&c, 2, a2);
    tcap_tick(&c, 0, 0);
    for (int i = 0; i < 10; i++)
        tcap_alloc(&c, s1, 100, 0x1000 + 256u * i);
    tcap_alloc(&c, s2, 5000, 0x9000);
    tcap_end(&c, 1000 * MS);
    size_t len;
    uint8_t *buf = mh_buf_take(&c.file, &len);
    tcap_release(&c);
    struct mh_analysis a;
    analyse(&a, opts(MH_BY_LINE, 0, 0), 1, &buf, &len);
    CHECK_EQ_INT(a.ngrowth, 1);
    const struct mh_site *s = &a.sites[a.growth[0]];
    CHECK_EQ_STR(mh_analysis_str(&a, s->user.file), "/srv/app/b.py");
    check_near(s->growth_bytes, 6000, 0);
    mh_analysis_release(&a);
    free(buf);
}

MH_TEST(analysis_via_names_the_storing_caller)
{
    struct tcap c;
    tcap_init_trace(&c);
    /* make() at h.py:5, called from two views, 7:3 by bytes. */
    const struct tframe v1[] = {
        {"/srv/app/h.py", "make", 5},
        {"/srv/app/views.py", "handler", 30},
        {"/usr/lib/python3/dist-packages/flask/app.py", "dispatch", 99}};
    const struct tframe v2[] = {{"/srv/app/h.py", "make", 5},
                                {"/srv/app/views.py", "other", 40}};
    /* even(), at h.py:9, half from each: no caller is named. */
    const struct tframe e1[] = {{"/srv/app/h.py", "even", 9},
                                {"/srv/app/views.py", "handler", 31}};
    const struct tframe e2[] = {{"/srv/app/h.py", "even", 9},
                                {"/srv/app/views.py", "other", 41}};
    /* A thread's target, called by the stdlib; a recursive function
     * (its caller is its own line); a view under memhound's layer. */
    const struct tframe th[] = {
        {"/srv/app/jobs.py", "worker", 12},
        {"/usr/lib/python3.11/threading.py", "Thread.run", 975},
        {"/srv/app/main.py", "<module>", 3}};
    const struct tframe rec[] = {{"/srv/app/tree.py", "walk", 7},
                                 {"/srv/app/tree.py", "walk", 7},
                                 {"/srv/app/main.py", "<module>", 4}};
    const struct tframe mw[] = {
        {"/srv/app/h.py", "build", 20},
        {"/opt/memhound/python/memhound/web.py", "__call__", 50},
        {"/srv/app/wsgi.py", "application", 8}};
    /* Inside the event loop: no caller beyond asyncio's dispatch. */
    const struct tframe loop[] = {
        {"/usr/lib/python3/dist-packages/aiohttp/web_app.py", "_handle", 504},
        {"/usr/lib/python3.11/asyncio/events.py", "Handle._run", 80},
        {"/usr/lib/python3.11/asyncio/base_events.py",
         "BaseEventLoop.run_forever", 607},
        {"/srv/app/main.py", "<module>", 23}};
    uint32_t s1 = tcap_stack(&c, 3, v1), s2 = tcap_stack(&c, 2, v2);
    uint32_t s3 = tcap_stack(&c, 2, e1), s4 = tcap_stack(&c, 2, e2);
    uint32_t s5 = tcap_stack(&c, 3, th), s6 = tcap_stack(&c, 3, rec);
    uint32_t s7 = tcap_stack(&c, 3, mw), s8 = tcap_stack(&c, 4, loop);
    tcap_tick(&c, 0, 0);
    uint64_t at = 0x10000;
    for (int i = 0; i < 7; i++, at += 0x1000)
        tcap_alloc(&c, s1, 1000, at);
    for (int i = 0; i < 3; i++, at += 0x1000)
        tcap_alloc(&c, s2, 1000, at);
    tcap_alloc(&c, s3, 2000, at += 0x1000);
    tcap_alloc(&c, s4, 2000, at += 0x1000);
    tcap_alloc(&c, s5, 3000, at += 0x1000);
    tcap_alloc(&c, s6, 3000, at += 0x1000);
    tcap_alloc(&c, s7, 3000, at += 0x1000);
    tcap_alloc(&c, s8, 3000, at += 0x1000);
    tcap_end(&c, 1000 * MS);
    size_t len;
    uint8_t *buf = mh_buf_take(&c.file, &len);
    tcap_release(&c);
    struct mh_analysis a;
    analyse(&a, opts(MH_BY_LINE, 0, 0), 1, &buf, &len);

    const struct mh_site *s = find_site(&a, "/srv/app/h.py:5 in make");
    CHECK(s && s->user_direct);
    for (int k = 0; k < 2; k++) {
        CHECK(s->via[k].has);
        CHECK_EQ_STR(mh_analysis_str(&a, s->via[k].f.file),
                     "/srv/app/views.py");
        CHECK_EQ_INT(s->via[k].f.line, 30);
        CHECK_EQ_STR(mh_analysis_str(&a, s->via[k].f.function), "handler");
        check_near(s->via[k].share, 0.7, 1e-9);
    }
    s = find_site(&a, "/srv/app/h.py:9 in even");
    CHECK(s && !s->via[MH_VIA_GROWTH].has && !s->via[MH_VIA_LIVE].has);
    s = find_site(&a, "/srv/app/jobs.py:12 in worker");
    CHECK(s && !s->via[MH_VIA_GROWTH].has);
    s = find_site(&a, "/srv/app/tree.py:7 in walk");
    CHECK(s && !s->via[MH_VIA_GROWTH].has);
    s = find_site(&a, "/srv/app/h.py:20 in build");
    CHECK(s && s->via[MH_VIA_GROWTH].has);
    CHECK_EQ_STR(mh_analysis_str(&a, s->via[MH_VIA_GROWTH].f.file),
                 "/srv/app/wsgi.py");
    check_near(s->via[MH_VIA_GROWTH].share, 1.0, 1e-9);
    s = find_site(&a,
                  "/usr/lib/python3/dist-packages/aiohttp/web_app.py:504 in "
                  "_handle");
    CHECK(s && !s->has_user && !s->via[MH_VIA_GROWTH].has);
    mh_analysis_release(&a);

    /* The renderers: a line under the site (here in the live section:
     * the growth is under the noise floor), its share when not all;
     * JSON's via object; none with --by stack, which shows the stack. */
    analyse(&a, opts(MH_BY_LINE, 0, 0), 1, &buf, &len);
    char *t = render_to_string(&a, 0);
    CHECK(strstr(t, "/srv/app/h.py:5 in make\n"
                    "                        kept via "
                    "/srv/app/views.py:30 in handler (70% of it)\n") != NULL);
    CHECK(strstr(t, "kept via /srv/app/wsgi.py:8 in application\n") != NULL);
    free(t);
    t = render_to_string(&a, 1);
    CHECK(strstr(t, "\"via\": {\"file\": \"/srv/app/views.py\", \"line\": 30, "
                    "\"function\": \"handler\", \"share\": 0.700}") != NULL);
    CHECK(python_check(
              t, "g = d[\"growth\"]\n"
                 "assert all(\"via\" in s for s in g + d[\"live\"])\n"
                 "assert sum(1 for s in g if s[\"via\"]) == 2, g\n") == 0);
    free(t);
    mh_analysis_release(&a);
    analyse(&a, opts(MH_BY_STACK, 0, 0), 1, &buf, &len);
    t = render_to_string(&a, 0);
    CHECK(strstr(t, "kept via") == NULL);
    free(t);
    t = render_to_string(&a, 1);
    CHECK(strstr(t, "\"via\": {") == NULL);
    free(t);
    mh_analysis_release(&a);
    free(buf);
}

MH_TEST(analysis_warmup_seconds_and_fraction)
{
    size_t len;
    uint8_t *buf = leak_capture(0, &len);
    struct {
        double w;
        int frac;
        double growth;
        uint64_t warm_ns;
    } cases[] = {
        {2, 0, 80 * 10000.0, 2000 * MS},    /* ticks 20..99 */
        {0.5, 1, 50 * 10000.0, 5000 * MS},  /* ticks 50..99 */
        {0, 0, 100 * 10000.0, 0},           /* everything */
        {2.05, 0, 79 * 10000.0, 2050 * MS}, /* first tick at/after: 21 */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mh_analysis a;
        analyse(&a, opts(MH_BY_LINE, cases[i].w, cases[i].frac), 1, &buf,
                &len);
        CHECK(a.ngrowth >= 1);
        check_near(a.sites[a.growth[0]].growth_bytes, cases[i].growth, 0.5);
        CHECK_EQ_INT(a.procs[0].warmup_ns, cases[i].warm_ns);
        double span = 10 - (double)cases[i].warm_ns / 1e9;
        check_near(a.sites[a.growth[0]].bytes_per_second,
                   cases[i].growth / span, 1e-6);
        mh_analysis_release(&a);
    }
    /* A warm-up longer than the capture: no growth, said so. */
    struct mh_analysis a;
    analyse(&a, opts(MH_BY_LINE, 60, 0), 1, &buf, &len);
    CHECK_EQ_INT(a.ngrowth, 0);
    CHECK(!a.summary.growth_found);
    CHECK(a.summary.warmup_past_end);
    CHECK_EQ_INT(a.nlive, 1);
    mh_analysis_release(&a);
    free(buf);
}

MH_TEST(analysis_sampling_weights)
{
    struct tcap c;
    const double R = 4096;
    struct topts o = {.mode = MH_MODE_SAMPLE, .interval = 4096};
    tcap_init(&c, &o);
    uint32_t s = tcap_stack(&c, 2, st_peak);
    tcap_tick(&c, 0, 0);
    tcap_alloc(&c, s, 100, 0x1000);
    tcap_alloc(&c, s, 4096, 0x2000);
    tcap_alloc(&c, s, 1 << 20, 0x3000);
    tcap_alloc(&c, s, 333, 0x4000);
    tcap_free(&c, 0x4000);
    tcap_end(&c, 1000 * MS);
    size_t len;
    uint8_t *buf = mh_buf_take(&c.file, &len);
    tcap_release(&c);
    struct mh_analysis a;
    analyse(&a, opts(MH_BY_LINE, 0, 0), 1, &buf, &len);
    double want_b = 0, want_c = 0;
    const double sizes[] = {100, 4096, 1 << 20};
    for (int i = 0; i < 3; i++) {
        double p = 1 - exp(-sizes[i] / R);
        want_b += sizes[i] / p;
        want_c += 1 / p;
    }
    CHECK_EQ_INT(a.nlive, 1);
    const struct mh_site *st = &a.sites[a.live[0]];
    check_near(st->live_bytes, want_b, want_b * 1e-12);
    check_near(st->live_count, want_c, want_c * 1e-12);
    check_near(st->growth_bytes, want_b, want_b * 1e-12);
    check_near(a.summary.live_bytes, want_b, want_b * 1e-9);
    CHECK_EQ_INT(a.summary.mode, MH_MODE_SAMPLE);
    CHECK_EQ_INT(a.summary.interval, 4096);
    /* Noise floor: two samples' worth at least. */
    CHECK(a.summary.growth_floor >= 2 * 4096);
    mh_analysis_release(&a);
    free(buf);
}

MH_TEST(analysis_sampling_estimate_of_big_leak)
{
    /* A 64 MiB leak of 1 KiB blocks sampled as the agent would (Poisson
     * byte sampling, R = 512 KiB): the estimate is within 20%. */
    struct tcap c;
    const double R = 512 * 1024;
    struct topts o = {.mode = MH_MODE_SAMPLE, .interval = 512 * 1024};
    tcap_init(&c, &o);
    uint32_t s = tcap_stack(&c, 4, st_cache);
    tcap_tick(&c, 0, 0);
    uint64_t seed = 88172645463325252ull;
    double countdown = 0;
    int samples = 0;
    for (int i = 0; i < 65536; i++) {
        countdown -= 1024;
        while (countdown < 0) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            double u = ((double)(seed >> 11) + 0.5) / 9007199254740992.0;
            countdown += -log(u) * R;
            tcap_alloc(&c, s, 1024, 0x10000000ull + 1024ull * i);
            samples++;
            break;
        }
    }
    tcap_end(&c, 1000 * MS);
    size_t len;
    uint8_t *buf = mh_buf_take(&c.file, &len);
    tcap_release(&c);
    struct mh_analysis a;
    analyse(&a, opts(MH_BY_LINE, 0, 0), 1, &buf, &len);
    CHECK(samples > 50);
    double est = a.sites[a.live[0]].live_bytes;
    CHECK(est > 0.8 * 64 * MiB && est < 1.2 * 64 * MiB);
    mh_analysis_release(&a);
    free(buf);
}

/* The same program in two processes whose ids differ. */
static uint8_t *
worker_capture(uint64_t pid, uint64_t start_ns, uint32_t id_base, int order,
               size_t *len)
{
    struct tcap c;
    struct topts o = {.mode = MH_MODE_TRACE,
                      .pid = pid,
                      .start_ns = start_ns,
                      .id_base = id_base};
    tcap_init(&c, &o);
    uint32_t cache, noise;
    if (order) {
        noise = tcap_stack(&c, 3, st_noise);
        cache = tcap_stack(&c, 4, st_cache);
    } else {
        cache = tcap_stack(&c, 4, st_cache);
        noise = tcap_stack(&c, 3, st_noise);
    }
    for (int tick = 0; tick < 20; tick++) {
        tcap_tick(&c, (uint64_t)tick * 100 * MS, 10u << 20);
        tcap_alloc(&c, cache, 4000, 0x5000000ull + 4096ull * tick);
        tcap_alloc(&c, noise, 100, 0x9000);
        tcap_free(&c, 0x9000);
    }
    tcap_end(&c, 2000 * MS);
    uint8_t *p = mh_buf_take(&c.file, len);
    tcap_release(&c);
    return p;
}

MH_TEST(analysis_merges_captures)
{
    uint64_t t0 = 1700000000000000000ull;
    uint8_t *bufs[2];
    size_t lens[2];
    bufs[0] = worker_capture(100, t0, 10, 0, &lens[0]);
    bufs[1] = worker_capture(101, t0 + 1000 * MS, 500, 1, &lens[1]);
    struct mh_analysis a;
    analyse(&a, opts(MH_BY_LINE, 0, 0), 2, bufs, lens);
    CHECK_EQ_INT(a.nprocs, 2);
    CHECK_EQ_INT(a.ngrowth, 1);
    const struct mh_site *s = &a.sites[a.growth[0]];
    CHECK_EQ_STR(mh_analysis_str(&a, s->key),
                 "/srv/app/cache.py:17 in remember");
    check_near(s->growth_bytes, 2 * 20 * 4000, 0);
    /* Rates add up: each process grows 40 kB/s. */
    check_near(s->bytes_per_second, 2 * 40000, 1e-6);
    CHECK_EQ_INT(a.procs[0].pid, 100);
    CHECK_EQ_INT(a.procs[1].pid, 101);
    CHECK_EQ_INT(a.summary.span_ns, 3000 * MS);
    CHECK_EQ_INT(a.summary.samples, 2 * 40);
    check_near(a.summary.live_bytes, 2 * 80000, 0);
    /* The summed timeline: RSS doubles while both run (1 s .. 2 s). */
    CHECK(a.ntimeline > 0);
    CHECK_EQ_INT(a.summary.peak_rss, 20u << 20);
    int saw_both = 0, saw_one = 0;
    for (size_t i = 0; i < a.ntimeline; i++) {
        if (a.timeline[i].rss == 20u << 20)
            saw_both = 1;
        if (a.timeline[i].rss == 10u << 20)
            saw_one = 1;
    }
    CHECK(saw_both && saw_one);
    mh_analysis_release(&a);
    free(bufs[0]);
    free(bufs[1]);
}

MH_TEST(analysis_by_keys)
{
    size_t len;
    uint8_t *buf = leak_capture(0, &len);
    struct {
        enum mh_by by;
        const char *key;
    } cases[] = {
        {MH_BY_FUNCTION, "/srv/app/cache.py in remember"},
        {MH_BY_FILE, "/srv/app/cache.py"},
        {MH_BY_MODULE, "cache"},
        {MH_BY_STACK,
         "/srv/app/cache.py:17 in remember < /srv/app/helpers.py:8 in store "
         "< /srv/app/views.py:30 in handler < "
         "/usr/lib/python3.11/threading.py:975 in run"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mh_analysis a;
        analyse(&a, opts(cases[i].by, 0.1, 1), 1, &buf, &len);
        CHECK(a.ngrowth >= 1);
        const struct mh_site *s = &a.sites[a.growth[0]];
        CHECK_EQ_STR(mh_analysis_str(&a, s->key), cases[i].key);
        check_near(s->growth_bytes, 900000, 0.5);
        if (cases[i].by == MH_BY_STACK) {
            CHECK_EQ_INT(mh_analysis_nframes(&a, s), 4);
            struct mh_site_frame f;
            mh_analysis_frame(&a, s, 1, &f);
            CHECK_EQ_STR(mh_analysis_str(&a, f.file), "/srv/app/helpers.py");
            CHECK_EQ_INT(f.line, 8);
        }
        mh_analysis_release(&a);
    }
    free(buf);
}

MH_TEST(analysis_no_stack_and_double_alloc)
{
    struct tcap c;
    tcap_init_trace(&c);
    uint32_t s = tcap_stack(&c, 2, st_peak);
    tcap_tick(&c, 0, 0);
    tcap_alloc(&c, 0, 777, 0x1000); /* RAW without the GIL */
    tcap_alloc(&c, s, 100, 0x2000);
    tcap_alloc(&c, s, 300, 0x2000); /* again, no free: the 100 is gone */
    tcap_free(&c, 0xdead0);         /* never allocated: ignored */
    tcap_alloc(&c, s, 50, 0);       /* address 0 is an address too */
    tcap_end(&c, 1000 * MS);
    size_t len;
    uint8_t *buf = mh_buf_take(&c.file, &len);
    tcap_release(&c);
    struct mh_analysis a;
    analyse(&a, opts(MH_BY_LINE, 0, 0), 1, &buf, &len);
    const struct mh_site *ns = find_site(&a, "<no Python stack>");
    CHECK(ns);
    check_near(ns->live_bytes, 777, 0);
    CHECK(!ns->has_user);
    const struct mh_site *b = find_site(&a, "/srv/app/batch.py:5 in burst");
    CHECK(b);
    check_near(b->live_bytes, 350, 0);
    check_near(b->live_count, 2, 0);
    check_near(a.summary.live_bytes, 1127, 0);
    CHECK_EQ_INT(a.summary.frees, 1);
    mh_analysis_release(&a);
    free(buf);
}

MH_TEST(analysis_truncated_capture_still_reports)
{
    size_t len;
    uint8_t *buf = leak_capture(0, &len);
    /* Cut inside the last chunk: everything before it is reported. */
    size_t cut = len - 20;
    struct mh_analysis a;
    analyse(&a, opts(MH_BY_LINE, 0.1, 1), 1, &buf, &cut);
    CHECK(a.procs[0].truncated);
    CHECK(a.procs[0].truncated_at > 0 && a.procs[0].truncated_at < cut);
    CHECK(!a.procs[0].clean_end);
    CHECK(a.summary.truncated);
    CHECK(a.ngrowth >= 1);
    CHECK_EQ_STR(mh_analysis_str(&a, a.sites[a.growth[0]].key),
                 "/srv/app/cache.py:17 in remember");
    CHECK(a.procs[0].duration_ns < 10000 * MS);
    mh_analysis_release(&a);
    free(buf);
}

MH_TEST(analysis_bad_input_errors)
{
    size_t len;
    uint8_t *buf = leak_capture(0, &len);
    struct mh_analysis_opts o = opts(MH_BY_LINE, 0.1, 1);
    struct mh_analysis a;

    /* A flipped byte inside the first chunk: a CRC mismatch there. */
    buf[MH_CAP_FILE_HEADER_LEN + MH_CAP_CHUNK_HEADER_LEN + 5] ^= 0x40;
    mh_analysis_init(&a, &o);
    CHECK(mh_analysis_add(&a, "x.mhc", buf, len) < 0);
    CHECK(strstr(a.error, "chunk at offset 12") != NULL);
    CHECK(strstr(a.error, "CRC") != NULL || strstr(a.error, "crc") != NULL);
    CHECK_EQ_INT(a.nprocs, 0);
    mh_analysis_release(&a);

    static const uint8_t text[] = "hello, this is not a capture\n";
    mh_analysis_init(&a, &o);
    CHECK(mh_analysis_add(&a, "x.txt", text, sizeof(text) - 1) < 0);
    CHECK(strstr(a.error, "not a memhound capture") != NULL);
    mh_analysis_release(&a);
    free(buf);
}

MH_TEST(analysis_survives_mutated_records)
{
    /* Bytes changed inside stored chunks whose CRC is then fixed, so the
     * reader gets past the checksum and the analysis sees odd but
     * well-formed records (sizes, addresses, times, ids): it reports or
     * fails cleanly, never crashes (run under ASan in `make asan`). */
    size_t len;
    uint8_t *orig = leak_capture(0, &len);
    uint8_t *buf = malloc(len);
    uint64_t seed = 7;
    int reported = 0;
    for (int iter = 0; iter < 1500; iter++) {
        memcpy(buf, orig, len);
        for (int k = 0; k < 1 + iter % 4; k++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            size_t pos =
                MH_CAP_FILE_HEADER_LEN + (size_t)(seed >> 33) % (len - 12);
            buf[pos] ^= (uint8_t)(1u << ((seed >> 20) % 8));
        }
        mh_chunks_reseal(buf, len);
        struct mh_analysis_opts o = opts((enum mh_by)(iter % 5), 0.1, 1);
        struct mh_analysis a;
        mh_analysis_init(&a, &o);
        if (mh_analysis_add(&a, "m.mhc", buf, len) == MH_OK) {
            reported++;
            OK(mh_analysis_finish(&a));
            FILE *f = fopen("/dev/null", "w");
            OK(mh_json_render(f, &a));
            OK(mh_text_render(f, &a));
            fclose(f);
        } else {
            CHECK(a.error[0] != '\0');
        }
        mh_analysis_release(&a);
    }
    CHECK(reported > 100);
    free(buf);
    free(orig);
}

/* ---- pieces --------------------------------------------------------- */

MH_TEST(analysis_codepath_modules)
{
    struct {
        const char *file, *module;
    } cases[] = {
        {"/usr/lib/python3.11/json/decoder.py", "json.decoder"},
        {"/usr/lib/python3/dist-packages/django/db/__init__.py", "django.db"},
        {"/srv/app/views.py", "views"},
        {"/srv/app/pkg/sub/mod.py", "pkg.sub.mod"},
        {"/srv/app-other/x.py", "x"},
        {"/elsewhere/pkg/__init__.py", "pkg"},
        {"<frozen importlib._bootstrap>", "importlib._bootstrap"},
        {"<string>", "<string>"},
        {"./tool/run.py", "tool.run"},
        {"script", "script"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mh_buf b;
        mh_buf_init(&b, 1 << 20);
        OK(mh_codepath_module(t_path, 4, cases[i].file, strlen(cases[i].file),
                              &b));
        OK(mh_buf_put(&b, "", 1));
        CHECK_EQ_STR((const char *)b.data, cases[i].module);
        mh_buf_release(&b);
    }
    struct {
        const char *file;
        int user;
    } users[] = {
        {"/srv/app/views.py", 1},
        {"/usr/lib/python3.11/json/decoder.py", 0},
        {"/usr/lib/python3.11", 0},
        {"/usr/lib/python3.111/x.py", 1},
        {"<string>", 0},
        {"<frozen os>", 0},
        {"/build/python/memhound/api.py", 0},
        {"/build/python/bootstrap/sitecustomize.py", 0},
        {"/home/me/memhound/app.py", 1},
        {"/home/me/python/memhound/deep/app.py", 1},
        {"relative.py", 1},
    };
    for (size_t i = 0; i < sizeof(users) / sizeof(users[0]); i++)
        if (mh_codepath_is_user(t_lib, 2, users[i].file,
                                strlen(users[i].file)) != users[i].user) {
            fprintf(stderr, "is_user(%s) != %d\n", users[i].file,
                    users[i].user);
            exit(1);
        }
}

MH_TEST(analysis_codepath_kinds)
{
    /* Constructed frames: (file, function) and the kind the report gives. */
    struct {
        const char *file, *func;
        enum mh_codekind kind;
    } cases[] = {
        {"/srv/app/app.py", "<module>", MH_CODE_USER},
        {"/srv/app/app.py", "leak", MH_CODE_USER},
        {"/srv/app/manage", "main", MH_CODE_USER},
        {"/usr/bin/gunicorn", "<module>", MH_CODE_WRAPPER},
        {"/root/.local/bin/celery", "<module>", MH_CODE_WRAPPER},
        {"/srv/venv/bin/uvicorn", "<module>", MH_CODE_WRAPPER},
        {"/usr/bin/gunicorn", "importlib_load_entry_point", MH_CODE_WRAPPER},
        {"/usr/local/sbin/tool", "main", MH_CODE_WRAPPER},
        {"/srv/app/manage", "<module>", MH_CODE_WRAPPER},
        {"/srv/venv/bin/run.py", "<module>", MH_CODE_USER},
        {"/srv/venv/bin/run.py", "main", MH_CODE_USER},
        {"/srv/bin.d/tool", "main", MH_CODE_USER},
        {"/usr/lib/python3.11/json/decoder.py", "decode", MH_CODE_LIB},
        {"/usr/lib/python3/dist-packages/flask/app.py", "wsgi_app",
         MH_CODE_LIB},
        {"<frozen runpy>", "_run_module_as_main", MH_CODE_LIB},
        {"<frozen importlib._bootstrap>", "<module>", MH_CODE_LIB},
        {"/usr/lib/python3.11/asyncio/events.py", "Handle._run", MH_CODE_LOOP},
        {"/usr/lib/python3.11/asyncio/events.py", "_run", MH_CODE_LOOP},
        {"/usr/lib/python3.11/asyncio/events.py", "Handle.cancel",
         MH_CODE_LIB},
        {"/usr/lib/python3.11/asyncio/base_events.py", "_run", MH_CODE_LIB},
        {"/srv/app/asyncio/events.py", "_run", MH_CODE_USER},
        {"/opt/lib/memhound/python/memhound/web.py", "__call__",
         MH_CODE_MEMHOUND},
        {"/opt/lib/memhound/python/memhound/django.py", "<module>",
         MH_CODE_MEMHOUND},
        {"/w/build/python/bootstrap/sitecustomize.py", "<module>",
         MH_CODE_MEMHOUND},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum mh_codekind k =
            mh_codepath_kind(t_lib, 2, cases[i].file, strlen(cases[i].file),
                             cases[i].func, strlen(cases[i].func));
        if (k != cases[i].kind) {
            fprintf(stderr, "kind(%s, %s) = %d, not %d\n", cases[i].file,
                    cases[i].func, (int)k, (int)cases[i].kind);
            exit(1);
        }
    }
}

MH_TEST(analysis_livetab_matches_reference)
{
    /* Random puts and takes against a plain array; keys cluster (as
     * allocator addresses do) so probe chains and backward shifts are
     * exercised, and the table grows several times. */
    enum { N = 1 << 14 };
    static uint64_t ref[N]; /* value + 1, 0 = absent; key = index * 16 */
    struct mh_blockmap t;
    mh_blockmap_init(&t, SIZE_MAX);
    uint64_t seed = 12345;
    size_t live = 0;
    for (int step = 0; step < 400000; step++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        size_t k = (size_t)(seed >> 33) % (step < 100000 ? N / 4 : N);
        uint64_t key = (uint64_t)k * 16;
        if ((seed >> 20) & 1) {
            uint64_t old = 0;
            int had = 0;
            OK(mh_blockmap_put(&t, key, step, &old, &had));
            CHECK_EQ_INT(had, ref[k] != 0);
            if (had)
                CHECK_EQ_INT(old, ref[k] - 1);
            else
                live++;
            ref[k] = (uint64_t)step + 1;
        } else {
            uint64_t v = 0;
            int got = mh_blockmap_take(&t, key, &v);
            CHECK_EQ_INT(got, ref[k] != 0);
            if (got) {
                CHECK_EQ_INT(v, ref[k] - 1);
                live--;
            }
            ref[k] = 0;
        }
        CHECK_EQ_INT(mh_blockmap_len(&t), live);
    }
    size_t pos = 0, seen = 0;
    uint64_t key, value;
    while (mh_blockmap_next(&t, &pos, &key, &value)) {
        CHECK(key % 16 == 0 && ref[key / 16] == value + 1);
        seen++;
    }
    CHECK_EQ_INT(seen, live);
    /* The cap. */
    struct mh_blockmap small;
    mh_blockmap_init(&small, 3);
    uint64_t old;
    int had;
    for (uint64_t i = 0; i < 3; i++)
        OK(mh_blockmap_put(&small, i, i, &old, &had));
    CHECK_EQ_INT(mh_blockmap_put(&small, 99, 1, &old, &had), MH_ETOOBIG);
    OK(mh_blockmap_put(&small, 1, 5, &old, &had)); /* a replace still works */
    CHECK(had && old == 1);
    mh_blockmap_release(&small);
    mh_blockmap_release(&t);
}

MH_TEST(analysis_strpool_interns)
{
    struct mh_strpool p;
    mh_strpool_init(&p, 1 << 20);
    uint32_t ids[5000];
    char s[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(s, sizeof(s), "name-%d", i);
        OK(mh_strpool_intern(&p, s, strlen(s), &ids[i]));
        CHECK(ids[i] != 0);
    }
    for (int i = 0; i < 5000; i++) {
        snprintf(s, sizeof(s), "name-%d", i);
        uint32_t id;
        OK(mh_strpool_intern(&p, s, strlen(s), &id));
        CHECK_EQ_INT(id, ids[i]);
        CHECK_EQ_STR(mh_strpool_get(&p, id), s);
    }
    uint32_t z;
    OK(mh_strpool_intern(&p, "", 0, &z));
    CHECK_EQ_INT(z, 0);
    OK(mh_strpool_intern(&p, "a\0b", 3, &z));
    CHECK_EQ_INT(mh_strpool_len(&p, z), 3);
    mh_strpool_release(&p);
    /* The cap fails cleanly. */
    mh_strpool_init(&p, 100);
    int rc = MH_OK;
    for (int i = 0; i < 100 && rc == MH_OK; i++) {
        snprintf(s, sizeof(s), "string number %d", i);
        rc = mh_strpool_intern(&p, s, strlen(s), &z);
    }
    CHECK_EQ_INT(rc, MH_ETOOBIG);
    mh_strpool_release(&p);
}

MH_TEST(analysis_timeline_bounded_keeps_peaks)
{
    struct mh_timeline tl;
    mh_timeline_init(&tl, 64);
    for (uint64_t i = 0; i < 100000; i++)
        OK(mh_timeline_add(&tl, i * 1000, i == 77777 ? 999999 : i % 100,
                           (double)(i == 31337 ? 5555555 : 1), 0));
    OK(mh_timeline_finish(&tl));
    CHECK(tl.n <= 64 && tl.n >= 32);
    uint64_t peak = 0;
    double lpeak = 0;
    for (size_t i = 0; i < tl.n; i++) {
        if (tl.pts[i].rss > peak)
            peak = tl.pts[i].rss;
        if (tl.pts[i].live > lpeak)
            lpeak = tl.pts[i].live;
        if (i)
            CHECK(tl.pts[i].t_ns >= tl.pts[i - 1].t_ns);
    }
    CHECK_EQ_INT(peak, 999999);
    check_near(lpeak, 5555555, 0);
    CHECK_EQ_INT(tl.pts[tl.n - 1].t_ns, 99999 * 1000);
    mh_timeline_release(&tl);
}

/* ---- rendering ------------------------------------------------------ */

MH_TEST(render_json_is_valid_and_escaped)
{
    struct tcap c;
    struct topts o = {.mode = MH_MODE_SAMPLE, .interval = 1000};
    tcap_init(&c, &o);
    const struct tframe weird[] = {
        {"/srv/app/we\"ird\\na\tme\x01\xff\xc3\xa9\xe2\x82.py", "f\n<x>", 3},
        {"/srv/app/main.py", "main", 1},
    };
    uint32_t s = tcap_stack(&c, 2, weird);
    tcap_tick(&c, 0, 1 << 20);
    tcap_alloc(&c, s, 5000, 0x1000);
    tcap_end(&c, 500 * MS);
    size_t len;
    uint8_t *buf = mh_buf_take(&c.file, &len);
    tcap_release(&c);
    for (int by = MH_BY_LINE; by <= MH_BY_STACK; by++) {
        struct mh_analysis a;
        analyse(&a, opts((enum mh_by)by, 0, 0), 1, &buf, &len);
        char *json = render_to_string(&a, 1);
        const char *script =
            "g = d[\"growth\"][0]\n"
            "assert d[\"version\"] == 1\n"
            "assert d[\"summary\"][\"mode\"] == \"sampling\"\n"
            "assert isinstance(g[\"growth_bytes\"], int)\n"
            "assert g[\"growth_bytes\"] > 5000\n"
            "assert d[\"growth\"] == sorted(d[\"growth\"], "
            "key=lambda s: -s[\"growth_bytes\"])\n"
            "for k in (\"file\", \"line\", \"function\", \"growth_bytes\", "
            "\"live_bytes\", \"count\", \"bytes_per_second\", \"share\", "
            "\"user_file\", \"user_line\", \"user_function\", \"module\", "
            "\"key\"):\n"
            "    assert k in g, k\n"
            "if d[\"summary\"][\"by\"] in (\"line\", \"stack\"):\n"
            "    assert g[\"file\"] == \"/srv/app/we\\\"ird\\\\na\\tme"
            "\\x01\\ufffd\\u00e9\\ufffd\\ufffd.py\", repr(g[\"file\"])\n"
            "    assert g[\"function\"] == \"f\\n<x>\"\n"
            "    assert g[\"user_file\"] == g[\"file\"]\n"
            "if d[\"summary\"][\"by\"] == \"stack\":\n"
            "    assert g[\"frames\"][1][\"file\"] == \"/srv/app/main.py\"\n"
            "assert d[\"processes\"][0][\"argv\"] == [\"app.py\", "
            "\"--serve\"]\n"
            "assert d[\"timeline\"][-1][\"t\"] == 0.5\n";
        int st = python_check(json, script);
        if (st != 0)
            fprintf(stderr, "%s\n", json);
        CHECK_EQ_INT(st, 0);
        free(json);
        mh_analysis_release(&a);
    }
    free(buf);
}

MH_TEST(render_json_escapes_every_byte)
{
    /* Each byte value alone and in bad sequences: always valid JSON. */
    char *p = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&p, &n);
    fputs("[", f);
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        mh_json_put_str(f, &c, 1);
        fputs(",", f);
    }
    static const char *const seqs[] = {
        "\xc0\xaf",     "\xe0\x80\xaf",     "\xed\xa0\x80", "\xf4\x90\x80\x80",
        "\xf0\x9f\x98", "\xf0\x9f\x98\x80", "\xef\xbb\xbf",
    };
    for (size_t i = 0; i < sizeof(seqs) / sizeof(*seqs); i++) {
        mh_json_put_str(f, seqs[i], strlen(seqs[i]));
        fputs(",", f);
    }
    fputs("\"end\"]", f);
    fclose(f);
    int st = python_check(
        p, "assert len(d) == 256 + 7 + 1\n"
           "assert all(d[i] == chr(i) for i in range(128))\n"
           "assert all(d[i] == \"\\ufffd\" for i in range(128, 256))\n"
           "assert d[256] == \"\\ufffd\\ufffd\"\n"
           "assert d[257] == \"\\ufffd\" * 3\n"
           "assert d[258] == \"\\ufffd\" * 3\n"
           "assert d[259] == \"\\ufffd\" * 4\n"
           "assert d[261] == \"\\U0001f600\"\n");
    CHECK_EQ_INT(st, 0);
    free(p);
}

/* The text report of the capture analysed with `o`; the caller frees
 * it. */
static char *
render_text(struct mh_analysis_opts o, uint8_t **buf, size_t *len)
{
    struct mh_analysis a;
    analyse(&a, o, 1, buf, len);
    char *t = render_to_string(&a, 0);
    mh_analysis_release(&a);
    return t;
}

MH_TEST(render_text_growth_and_no_growth)
{
    size_t len;
    uint8_t *buf = leak_capture(0, &len);
    char *t = render_text(opts(MH_BY_LINE, 0.1, 1), &buf, &len);
    CHECK(strstr(t, "/srv/app/cache.py:17 in remember") != NULL);
    CHECK(strstr(t, "878.9 KiB") != NULL); /* 900000 bytes */
    CHECK(strstr(t, "100.0%") != NULL);
    CHECK(strstr(t, "timeline") != NULL);
    CHECK(strstr(t, "no growth") == NULL);
    free(t);

    /* By function, the user line inside the site, and the json site's
     * caller in user code. */
    t = render_text(opts(MH_BY_FUNCTION, 0, 0), &buf, &len);
    CHECK(strstr(t, "at /srv/app/cache.py:17 in remember") != NULL);
    free(t);
    /* By line, the cache line is user code itself: no caller shown. */
    t = render_text(opts(MH_BY_LINE, 0, 0), &buf, &len);
    CHECK(strstr(t, "called from") == NULL);
    free(t);

    /* Only peaks and noise: no growth, said plainly. */
    t = render_text(opts(MH_BY_LINE, 60, 0), &buf, &len);
    CHECK(strstr(t, "no growth") != NULL);
    free(t);
    free(buf);
}

/* ---- the command ---------------------------------------------------- */

#define CAP_TMP "/tmp/mh-test-cap-XXXXXX"

static int
run_report(int n, const char *const *args)
{
    return run_quiet(mh_cmd_report, "report", n, args);
}

MH_TEST(report_command_exit_codes)
{
    size_t len;
    uint8_t *buf = leak_capture(1, &len);
    char *good = write_temp(CAP_TMP, buf, len);
    char *cut = write_temp(CAP_TMP, buf, len - 7);
    buf[len / 2] ^= 0xff;
    char *bad = write_temp(CAP_TMP, buf, len);
    static const uint8_t junk[] = "GIF89a....";
    char *notcap = write_temp(CAP_TMP, junk, sizeof(junk));
    char out[] = "/tmp/mh-test-out-XXXXXX";
    close(mkstemp(out));

    {
        /* mkstemp made it: not memhound's to overwrite without --force */
        const char *args[] = {good, "-o", out};
        CHECK_EQ_INT(run_report(3, args), MH_EXIT_FAIL);
        struct stat st;
        CHECK_EQ_INT(stat(out, &st), 0);
        CHECK_EQ_INT(st.st_size, 0);
    }
    {
        const char *args[] = {good, "--force", "-o", out};
        CHECK_EQ_INT(run_report(4, args), MH_EXIT_OK);
    }
    {
        const char *args[] = {good,          cut,     "--format", "json",
                              "--by=module", "--top", "3",        "--warmup",
                              "10%",         "-o",    out,        "--force"};
        CHECK_EQ_INT(run_report(12, args), MH_EXIT_OK);
        FILE *f = fopen(out, "r");
        char text[1 << 16];
        size_t n = fread(text, 1, sizeof(text) - 1, f);
        fclose(f);
        text[n] = '\0';
        CHECK_EQ_INT(python_check(text,
                                  "assert len(d[\"processes\"]) == 2\n"
                                  "assert d[\"processes\"][1][\"truncated\"]"
                                  "\nassert d[\"growth\"][0][\"key\"] == "
                                  "\"cache\"\n"),
                     0);
    }
    {
        const char *args[] = {good, "--warmup", "30s", "--by", "stack"};
        CHECK_EQ_INT(run_report(5, args), MH_EXIT_OK);
    }
    {
        const char *args[] = {good, "--by", "endpoint", "--sort=peak"};
        CHECK_EQ_INT(run_report(4, args), MH_EXIT_OK);
    }
    {
        const char *args[] = {bad};
        CHECK_EQ_INT(run_report(1, args), MH_EXIT_FAIL);
    }
    {
        const char *args[] = {notcap};
        CHECK_EQ_INT(run_report(1, args), MH_EXIT_FAIL);
    }
    {
        const char *args[] = {"/nonexistent/x.mhc"};
        CHECK_EQ_INT(run_report(1, args), MH_EXIT_FAIL);
    }
    {
        const char *args[] = {good, "-o", "/nonexistent/dir/out.txt"};
        CHECK_EQ_INT(run_report(3, args), MH_EXIT_FAIL);
    }
    static const char *const usage_errors[][3] = {
        {"--format", "xml", NULL}, {"--by", "thread", NULL},
        {"--top", "-1", NULL},     {"--warmup", "abc", NULL},
        {"--warmup", "-3", NULL},  {"--warmup", "100%", NULL},
        {"--bogus", NULL, NULL},   {"--top", NULL, NULL},
        {"--sort", "size", NULL},  {"--sort", NULL, NULL},
    };
    for (size_t i = 0; i < sizeof(usage_errors) / sizeof(*usage_errors); i++) {
        const char *args[3] = {good};
        int n = 1;
        for (int k = 0; k < 2 && usage_errors[i][k]; k++)
            args[n++] = usage_errors[i][k];
        CHECK_EQ_INT(run_report(n, args), MH_EXIT_USAGE);
    }
    CHECK_EQ_INT(run_report(0, NULL), MH_EXIT_USAGE);
    unlink(good);
    unlink(cut);
    unlink(bad);
    unlink(notcap);
    unlink(out);
    free(good);
    free(cut);
    free(bad);
    free(notcap);
    free(buf);
}
