/* Tests of the endpoints and findings of `memhound report`: captures of a
 * web service built in memory (cap_gen.h) with requests in flight at once
 * (TAG switching), replayed and checked number by number. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "analysis/capture/analysis.h"
#include "cap_gen.h"
#include "harness.h"
#include "util/mem.h"

#define BASE "/usr/lib/python3/dist-packages/django/core/handlers/base.py"

static const struct tframe st_leak[] = {{"/srv/app/views.py", "leak_view", 42},
                                        {BASE, "_get_response", 197}};
static const struct tframe st_tmp[] = {{"/srv/app/views.py", "leak_view", 44},
                                       {BASE, "_get_response", 197}};
static const struct tframe st_qs[] = {
    {"/usr/lib/python3/dist-packages/django/db/models/query.py", "_fetch_all",
     1886},
    {"/srv/app/views.py", "report_view", 61},
    {BASE, "_get_response", 197}};
static const struct tframe st_cache[] = {
    {"/srv/app/views.py", "cached_view", 80}, {BASE, "_get_response", 197}};
static const struct tframe st_warm[] = {{"/srv/app/views.py", "warm_view", 90},
                                        {BASE, "_get_response", 197}};

#define EP_LEAK "leak/<int:id>/"
#define EP_REPORT "reports/<int:year>/"
#define EP_CACHE "cached/"
#define EP_EMPTY "empty/"
#define EP_WARM "warm/"
#define TRUTHY "django-queryset-truthiness"

/* The transient peak of the report request of round i. */
static uint64_t
report_peak(int i)
{
    return (uint64_t)(i % 20 + 1) * 10000;
}

/* n rounds, one per 100 ms tick. In each, a leak request (1000 bytes kept
 * for good, 500 freed before it ends) and a report request (a peak of
 * report_peak(i) in two blocks, freed before it ends) run at once,
 * switching TAGs; then a cache request keeps 2000 bytes that the next
 * one frees. Every 5th round an empty/ request samples nothing; every
 * 10th a warm/ request, the first of which keeps 5000 bytes. Every other
 * report request has a truthiness finding. After the rounds: a request
 * that never ends (3000 bytes and a finding), a finding outside requests
 * and one with an unknown id. */
static void
gen_web(struct tcap *c, int n)
{
    uint32_t leak = tcap_stack(c, 2, st_leak);
    uint32_t tmp = tcap_stack(c, 2, st_tmp);
    uint32_t qs = tcap_stack(c, 3, st_qs);
    uint32_t cache = tcap_stack(c, 2, st_cache);
    uint32_t warm = tcap_stack(c, 2, st_warm);
    for (int i = 0; i < n; i++) {
        uint64_t t = (uint64_t)i * 100 * MS;
        uint64_t L = 3 * (uint64_t)i + 1, R = L + 1, C = L + 2;
        uint64_t half = report_peak(i) / 2;
        tcap_tick(c, t, 64u << 20);
        tcap_tag(c, L);
        tcap_alloc(c, leak, 1000, 0x10000000 + (uint64_t)i * 0x1000);
        tcap_alloc(c, tmp, 500, 0x20000000);
        tcap_tag(c, R);
        tcap_alloc(c, qs, half, 0x30000000);
        tcap_tag(c, L);
        tcap_tag(c, R);
        tcap_alloc(c, qs, half, 0x30100000);
        if (i % 2 == 0)
            tcap_finding(c, R, TRUTHY, "/srv/app/views.py", 61, "report_view",
                         20000, report_peak(i), "");
        tcap_free(c, 0x30000000);
        tcap_free(c, 0x30100000);
        tcap_tag(c, 0);
        tcap_alloc(c, tmp, 64, 0x50000000); /* no request's */
        tcap_free(c, 0x50000000);
        tcap_free(c, 0x20000000);
        if (i == 0)
            tcap_finding(c, L, "custom-rule", "/srv/app/views.py", 43,
                         "leak_view", 0, 0, "something odd");
        tcap_request(c, L, t, t + 50 * MS, EP_LEAK);
        tcap_request(c, R, t + MS, t + 60 * MS, EP_REPORT);
        tcap_tag(c, C);
        if (i)
            tcap_free(c, 0x40000000 + (uint64_t)(i - 1) * 0x1000);
        tcap_alloc(c, cache, 2000, 0x40000000 + (uint64_t)i * 0x1000);
        tcap_request(c, C, t + 70 * MS, t + 80 * MS, EP_CACHE);
        if (i % 5 == 0)
            tcap_request(c, 1000000 + (uint64_t)i, t + 80 * MS, t + 81 * MS,
                         EP_EMPTY);
        if (i % 10 == 0) {
            uint64_t W = 2000000 + (uint64_t)i;
            tcap_tag(c, W);
            if (i == 0)
                tcap_alloc(c, warm, 5000, 0x60000000);
            tcap_request(c, W, t + 82 * MS, t + 83 * MS, EP_WARM);
        }
        if (i % 7 == 6)
            tcap_flush(c); /* the TAG state restarts */
    }
    uint64_t t = (uint64_t)n * 100 * MS;
    tcap_tick(c, t, 64u << 20);
    tcap_tag(c, 999999);
    tcap_alloc(c, tmp, 3000, 0x70000000);
    tcap_finding(c, 999999, TRUTHY, "/srv/app/views.py", 61, "report_view",
                 20000, 3000, "");
    tcap_tag(c, 0);
    for (uint64_t k = 1; k <= 4; k *= 2)
        tcap_finding(c, 0, "django-debug-query-log", "/srv/app/jobs.py", 12,
                     "nightly", 1000 * k, 100000 * k, "");
    tcap_end(c, t + 50 * MS);
}

static uint8_t *
web_capture(int n, uint32_t mode, uint64_t interval, uint64_t pid, size_t *len)
{
    struct tcap c;
    struct topts o = {.mode = mode, .interval = interval, .pid = pid};
    tcap_init(&c, &o);
    gen_web(&c, n);
    uint8_t *p = mh_buf_take(&c.file, len);
    tcap_release(&c);
    return p;
}

static void
analyse(struct mh_analysis *a, enum mh_by by, enum mh_ep_sort sort,
        double warmup, size_t n, uint8_t **bufs, size_t *lens)
{
    struct mh_analysis_opts o = {by, warmup, 0, 10, sort};
    mh_analysis_init(a, &o);
    for (size_t i = 0; i < n; i++) {
        int rc = mh_analysis_add(a, "web.mhc", bufs[i], lens[i]);
        if (rc)
            fprintf(stderr, "add: %s\n", a->error);
        OK(rc);
    }
    OK(mh_analysis_finish(a));
}

static const struct mh_endpoint *
endpoint(const struct mh_analysis *a, const char *name)
{
    for (size_t i = 0; i < a->endpoints.n; i++)
        if (!strcmp(mh_analysis_str(a, a->endpoints.v[i].name), name))
            return &a->endpoints.v[i];
    fprintf(stderr, "no endpoint '%s'\n", name);
    exit(1);
}

static const char *
ranked(const struct mh_analysis *a, size_t i)
{
    CHECK(i < a->endpoints.norder);
    return mh_analysis_str(a, a->endpoints.v[a->endpoints.order[i]].name);
}

/* ---- endpoints ------------------------------------------------------ */

MH_TEST(endpoints_interleaved_requests_exact)
{
    size_t len;
    uint8_t *buf = web_capture(100, MH_MODE_TRACE, 0, 0, &len);
    struct mh_analysis a;
    analyse(&a, MH_BY_ENDPOINT, MH_EP_SORT_RETAINED, 0, 1, &buf, &len);
    CHECK_EQ_INT(a.endpoints.n, 6);
    CHECK_EQ_INT(a.endpoints.requests, 100 + 100 + 100 + 20 + 10 + 1);

    /* The leak: 1000 kept per request, 1500 at most live during it. */
    const struct mh_endpoint *ep = endpoint(&a, EP_LEAK);
    CHECK_EQ_INT(ep->requests, 100);
    CHECK_EQ_INT(ep->requests_after_warmup, 100);
    check_near(ep->allocated_per_request, 1500, 1e-9);
    check_near(ep->peak_p50, 1500, 0);
    check_near(ep->peak_p95, 1500, 0);
    check_near(ep->held_per_request, 1000, 1e-9);
    check_near(ep->retained_per_request, 1000, 1e-9);
    /* Live bytes after k requests: 1000 k, exactly. */
    check_near(ep->slope_per_1000, 1e6, 1e-3);
    check_near(ep->slope_r2, 1, 1e-12);
    CHECK_EQ_INT(ep->slope_points, 100);
    CHECK(!ep->in_progress);
    /* Its sites: the kept line first, then the freed one. */
    CHECK_EQ_INT(ep->nsites, 2);
    CHECK_EQ_STR(mh_analysis_str(&a, ep->sites[0].file), "/srv/app/views.py");
    CHECK_EQ_INT(ep->sites[0].line, 42);
    CHECK_EQ_STR(mh_analysis_str(&a, ep->sites[0].function), "leak_view");
    check_near(ep->sites[0].retained, 100000, 1e-6);
    check_near(ep->sites[0].allocated, 100000, 1e-6);
    CHECK(ep->sites[0].has_user && ep->sites[0].user_direct);
    CHECK_EQ_INT(ep->sites[1].line, 44);
    check_near(ep->sites[1].retained, 0, 0);
    check_near(ep->sites[1].allocated, 50000, 1e-6);

    /* The transient peaks: 10k..200k, five requests each. Nearest rank:
     * the 50th of 100 is 100k, the 95th 190k. */
    ep = endpoint(&a, EP_REPORT);
    CHECK_EQ_INT(ep->requests, 100);
    check_near(ep->allocated_per_request, 105000, 1e-6);
    check_near(ep->peak_p50, 100000, 0);
    check_near(ep->peak_p95, 190000, 0);
    check_near(ep->held_per_request, 0, 1e-9);
    check_near(ep->retained_per_request, 0, 1e-9);
    check_near(ep->slope_per_1000, 0, 1e-9);
    CHECK_EQ_INT(ep->nsites, 1);
    CHECK_EQ_STR(mh_analysis_str(&a, ep->sites[0].function), "_fetch_all");
    CHECK(ep->sites[0].has_user && !ep->sites[0].user_direct);
    CHECK_EQ_INT(ep->sites[0].user_line, 61);
    CHECK_EQ_STR(mh_analysis_str(&a, ep->sites[0].user_function),
                 "report_view");

    /* Held at the end but freed by the next request: retained is only
     * the last one's. */
    ep = endpoint(&a, EP_CACHE);
    check_near(ep->held_per_request, 2000, 1e-9);
    check_near(ep->retained_per_request, 20, 1e-9);
    check_near(ep->slope_per_1000, 0, 1e-6);

    /* Requests that sampled nothing still count, with zero peaks. */
    ep = endpoint(&a, EP_EMPTY);
    CHECK_EQ_INT(ep->requests, 20);
    check_near(ep->peak_p95, 0, 0);
    CHECK_EQ_INT(ep->nsites, 0);

    /* The request that never ended. */
    ep = endpoint(&a, "(in progress)");
    CHECK(ep->in_progress);
    CHECK_EQ_INT(ep->requests, 1);
    CHECK_EQ_INT(ep->requests_after_warmup, 0);
    check_near(ep->allocated_per_request, 3000, 0);
    check_near(ep->held_per_request, 3000, 0);
    check_near(ep->peak_p50, 3000, 0);
    check_near(ep->retained_per_request, 0, 0);

    /* Ranked by retained bytes per request; ties by held bytes. */
    CHECK_EQ_STR(ranked(&a, 0), EP_LEAK);
    CHECK_EQ_STR(ranked(&a, 1), EP_WARM); /* 5000 over 10 requests */
    CHECK_EQ_STR(ranked(&a, 2), EP_CACHE);
    mh_analysis_release(&a);

    /* By peak: the transient one first. */
    analyse(&a, MH_BY_ENDPOINT, MH_EP_SORT_PEAK, 0, 1, &buf, &len);
    CHECK_EQ_STR(ranked(&a, 0), EP_REPORT);
    CHECK_EQ_STR(ranked(&a, 1), EP_WARM); /* p95 5000 */
    CHECK_EQ_STR(ranked(&a, 2), "(in progress)");
    mh_analysis_release(&a);
    analyse(&a, MH_BY_LINE, MH_EP_SORT_ALLOCATED, 0, 1, &buf, &len);
    CHECK_EQ_STR(ranked(&a, 0), EP_REPORT);
    mh_analysis_release(&a);
    /* By requests: ties keep the order of first sight. */
    analyse(&a, MH_BY_FILE, MH_EP_SORT_REQUESTS, 0, 1, &buf, &len);
    CHECK_EQ_STR(ranked(&a, 0), EP_LEAK);
    CHECK_EQ_STR(ranked(&a, 1), EP_REPORT);
    CHECK_EQ_STR(ranked(&a, 2), EP_CACHE);
    CHECK_EQ_STR(ranked(&a, 3), EP_EMPTY);
    mh_analysis_release(&a);
    free(buf);
}

MH_TEST(endpoints_warmup_leaves_out_early_requests)
{
    size_t len;
    uint8_t *buf = web_capture(100, MH_MODE_TRACE, 0, 0, &len);
    struct mh_analysis a;
    /* 2 s: the requests of rounds 0..19 began before the cut. */
    analyse(&a, MH_BY_ENDPOINT, MH_EP_SORT_RETAINED, 2, 1, &buf, &len);
    const struct mh_endpoint *ep = endpoint(&a, EP_WARM);
    CHECK_EQ_INT(ep->requests, 10);
    CHECK_EQ_INT(ep->requests_after_warmup, 8);
    check_near(ep->retained_per_request, 0, 0); /* the cache fill is left out */
    check_near(ep->peak_p95, 5000, 0);          /* but its peak counts */
    check_near(ep->allocated_per_request, 500, 1e-9);
    ep = endpoint(&a, EP_LEAK);
    CHECK_EQ_INT(ep->requests, 100);
    CHECK_EQ_INT(ep->requests_after_warmup, 80);
    check_near(ep->retained_per_request, 1000, 1e-9);
    check_near(ep->allocated_per_request, 1500, 1e-9);
    check_near(ep->slope_per_1000, 1e6, 1e-3);
    CHECK_EQ_INT(ep->slope_points, 80);
    ep = endpoint(&a, EP_CACHE);
    check_near(ep->retained_per_request, 2000.0 / 80, 1e-9);
    CHECK_EQ_STR(ranked(&a, 0), EP_LEAK);
    CHECK_EQ_STR(ranked(&a, 1), EP_CACHE);
    /* Sites count retained bytes of counted requests only. */
    ep = endpoint(&a, EP_LEAK);
    check_near(ep->sites[0].retained, 80000, 1e-6);
    check_near(ep->sites[0].allocated, 100000, 1e-6);
    mh_analysis_release(&a);
    free(buf);
}

MH_TEST(endpoints_merge_across_captures)
{
    size_t lens[2];
    uint8_t *bufs[2] = {web_capture(60, MH_MODE_TRACE, 0, 101, &lens[0]),
                        web_capture(40, MH_MODE_TRACE, 0, 102, &lens[1])};
    struct mh_analysis a;
    analyse(&a, MH_BY_ENDPOINT, MH_EP_SORT_RETAINED, 0, 2, bufs, lens);
    /* Request ids repeat across captures: still 100 leak requests. */
    const struct mh_endpoint *ep = endpoint(&a, EP_LEAK);
    CHECK_EQ_INT(ep->requests, 100);
    check_near(ep->retained_per_request, 1000, 1e-9);
    check_near(ep->slope_per_1000, 1e6, 1e-3); /* one slope, two baselines */
    check_near(ep->slope_r2, 1, 1e-12);
    CHECK_EQ_INT(ep->slope_points, 100);
    check_near(ep->sites[0].retained, 100000, 1e-6);
    ep = endpoint(&a, "(in progress)");
    CHECK_EQ_INT(ep->requests, 2);
    /* Endpoints merge by name: one of each. */
    CHECK_EQ_INT(a.endpoints.n, 6);
    /* Findings too: 30 + 20 in requests, 2 in progress. */
    const struct mh_finding *g = &a.findings.v[a.findings.order[0]];
    CHECK_EQ_STR(mh_analysis_str(&a, g->id), TRUTHY);
    CHECK_EQ_INT(g->occurrences, 52);
    mh_analysis_release(&a);
    free(bufs[0]);
    free(bufs[1]);
}

/* A pre-fork server's master records no requests; its capture, read
 * after a worker's, must not fold the worker's (endpoint, stack) pairs
 * against its own stack table (they showed as a site with no stack). */
MH_TEST(endpoints_capture_without_requests_after_one_with)
{
    size_t lens[2];
    uint8_t *bufs[2];
    bufs[0] = web_capture(60, MH_MODE_TRACE, 0, 101, &lens[0]);
    struct tcap c;
    struct topts o = {.mode = MH_MODE_TRACE, .pid = 100};
    tcap_init(&c, &o);
    uint32_t s = tcap_stack(&c, 2, st_leak);
    tcap_tick(&c, 0, 1 << 20);
    tcap_alloc(&c, s, 100, 0x1000);
    tcap_end(&c, 100 * MS);
    bufs[1] = mh_buf_take(&c.file, &lens[1]);
    tcap_release(&c);
    struct mh_analysis a, b;
    analyse(&a, MH_BY_ENDPOINT, MH_EP_SORT_RETAINED, 0, 2, bufs, lens);
    analyse(&b, MH_BY_ENDPOINT, MH_EP_SORT_RETAINED, 0, 1, bufs, lens);
    const struct mh_endpoint *ea = endpoint(&a, EP_LEAK);
    const struct mh_endpoint *eb = endpoint(&b, EP_LEAK);
    CHECK_EQ_INT(ea->nsites, eb->nsites);
    for (size_t i = 0; i < ea->nsites; i++) {
        CHECK(!ea->sites[i].nostack);
        check_near(ea->sites[i].retained, eb->sites[i].retained, 1e-6);
        check_near(ea->sites[i].allocated, eb->sites[i].allocated, 1e-6);
    }
    mh_analysis_release(&a);
    mh_analysis_release(&b);
    free(bufs[0]);
    free(bufs[1]);
}

MH_TEST(endpoints_sampled_weights)
{
    size_t len;
    uint8_t *buf = web_capture(40, MH_MODE_SAMPLE, 4096, 0, &len);
    struct mh_analysis a;
    analyse(&a, MH_BY_ENDPOINT, MH_EP_SORT_RETAINED, 0, 1, &buf, &len);
    /* Each sample stands for size / (1 - exp(-size / R)). */
    double w1000 = 1000 / -expm1(-1000 / 4096.0);
    double w500 = 500 / -expm1(-500 / 4096.0);
    const struct mh_endpoint *ep = endpoint(&a, EP_LEAK);
    check_near(ep->allocated_per_request, w1000 + w500, 1e-6);
    check_near(ep->retained_per_request, w1000, 1e-6);
    check_near(ep->peak_p50, (float)(w1000 + w500), 1e-3);
    check_near(ep->slope_per_1000, 1000 * w1000, 1e-3);
    CHECK_EQ_STR(ranked(&a, 0), EP_LEAK);
    mh_analysis_release(&a);
    free(buf);
}

MH_TEST(endpoints_none_without_requests)
{
    struct tcap c;
    tcap_init_trace(&c);
    uint32_t s = tcap_stack(&c, 2, st_leak);
    tcap_tick(&c, 0, 1 << 20);
    tcap_alloc(&c, s, 100, 0x1000);
    tcap_end(&c, 100 * MS);
    size_t len;
    uint8_t *buf = mh_buf_take(&c.file, &len);
    tcap_release(&c);
    struct mh_analysis a;
    analyse(&a, MH_BY_ENDPOINT, MH_EP_SORT_RETAINED, 0, 1, &buf, &len);
    CHECK_EQ_INT(a.endpoints.n, 0);
    CHECK_EQ_INT(a.endpoints.norder, 0);
    CHECK_EQ_INT(a.findings.n, 0);
    char *t = render_to_string(&a, 0);
    CHECK(strstr(t, "no requests in the captures") != NULL);
    CHECK(strstr(t, "findings") == NULL);
    free(t);
    char *j = render_to_string(&a, 1);
    CHECK_EQ_INT(python_check(j, "assert d[\"endpoints\"] == []\n"
                                 "assert d[\"findings\"] == []\n"
                                 "assert d[\"summary\"][\"requests\"] == 0\n"),
                 0);
    free(j);
    mh_analysis_release(&a);
    free(buf);
}

/* ---- findings ------------------------------------------------------- */

MH_TEST(findings_grouped_with_endpoints)
{
    size_t len;
    uint8_t *buf = web_capture(100, MH_MODE_TRACE, 0, 0, &len);
    struct mh_analysis a;
    analyse(&a, MH_BY_LINE, MH_EP_SORT_RETAINED, 0, 1, &buf, &len);
    const struct mh_findings *f = &a.findings;
    CHECK_EQ_INT(f->n, 3);
    CHECK_EQ_INT(f->dropped, 0);

    /* By total bytes: truthiness (5 MB from 50 requests + 3000), the
     * query log (700 kB), the unknown rule (0). */
    const struct mh_finding *g = &f->v[f->order[0]];
    CHECK_EQ_STR(mh_analysis_str(&a, g->id), TRUTHY);
    CHECK(g->kind != NULL);
    CHECK_EQ_STR(mh_analysis_str(&a, g->file), "/srv/app/views.py");
    CHECK_EQ_INT(g->line, 61);
    CHECK_EQ_STR(mh_analysis_str(&a, g->function), "report_view");
    CHECK_EQ_INT(g->occurrences, 51);
    CHECK_EQ_INT(g->count_max, 20000);
    CHECK_EQ_INT(g->count_total, 51 * 20000);
    CHECK_EQ_INT(g->bytes_max, 190000);
    CHECK_EQ_INT(g->bytes_total, 5000000 + 3000);
    CHECK_EQ_INT(g->nendpoints, 2);
    CHECK_EQ_STR(mh_analysis_str(&a, g->endpoints[0]), EP_REPORT);
    CHECK_EQ_INT(g->endpoint_counts[0], 50);
    CHECK_EQ_STR(mh_analysis_str(&a, g->endpoints[1]), "(in progress)");
    const char *ev = mh_analysis_str(&a, g->evidence);
    CHECK(strstr(ev, "20,000 rows") != NULL);
    CHECK(strstr(ev, "185.5 KiB") != NULL); /* 190000 bytes */
    CHECK(strstr(ev, "51 times") != NULL);

    g = &f->v[f->order[1]];
    CHECK_EQ_STR(mh_analysis_str(&a, g->id), "django-debug-query-log");
    CHECK_EQ_INT(g->occurrences, 3);
    CHECK_EQ_INT(g->count_max, 4000);
    CHECK_EQ_INT(g->bytes_total, 700000);
    CHECK_EQ_INT(g->nendpoints, 0); /* outside requests */
    CHECK(strstr(mh_analysis_str(&a, g->evidence), "4,000 queries") != NULL);

    g = &f->v[f->order[2]];
    CHECK_EQ_STR(mh_analysis_str(&a, g->id), "custom-rule");
    CHECK(g->kind == NULL);
    CHECK_EQ_STR(mh_analysis_str(&a, g->evidence), "something odd");
    CHECK_EQ_INT(g->nendpoints, 1);
    CHECK_EQ_STR(mh_analysis_str(&a, g->endpoints[0]), EP_LEAK);
    mh_analysis_release(&a);
    free(buf);
}

MH_TEST(findings_endpoints_most_frequent_first)
{
    struct tcap c;
    tcap_init_trace(&c);
    tcap_tick(&c, 0, 1 << 20);
    /* Five endpoints with 1, 4, 2, 4, 3 findings at one line. */
    static const char *const eps[] = {"a/", "b/", "c/", "d/", "e/"};
    static const int times[] = {1, 4, 2, 4, 3};
    uint64_t id = 1;
    for (int e = 0; e < 5; e++)
        for (int k = 0; k < times[e]; k++, id++) {
            tcap_finding(&c, id, TRUTHY, "/srv/app/v.py", 7, "f", 10, 100, "");
            tcap_request(&c, id, 0, 0, eps[e]);
        }
    /* A finding after its request ended (a task that outlived it). */
    tcap_finding(&c, 2, TRUTHY, "/srv/app/v.py", 8, "f", 10, 100, "");
    tcap_end(&c, 100 * MS);
    size_t len;
    uint8_t *buf = mh_buf_take(&c.file, &len);
    tcap_release(&c);
    struct mh_analysis a;
    analyse(&a, MH_BY_LINE, MH_EP_SORT_RETAINED, 0, 1, &buf, &len);
    const struct mh_finding *g = &a.findings.v[0];
    CHECK_EQ_INT(g->occurrences, 14);
    CHECK_EQ_INT(g->nendpoints, 3);
    CHECK_EQ_STR(mh_analysis_str(&a, g->endpoints[0]), "b/");
    CHECK_EQ_STR(mh_analysis_str(&a, g->endpoints[1]), "d/");
    CHECK_EQ_STR(mh_analysis_str(&a, g->endpoints[2]), "e/");
    CHECK_EQ_INT(g->endpoint_counts[2], 3);
    g = &a.findings.v[1];
    CHECK_EQ_INT(g->line, 8);
    CHECK_EQ_INT(g->nendpoints, 1);
    CHECK_EQ_STR(mh_analysis_str(&a, g->endpoints[0]), "b/");
    mh_analysis_release(&a);
    free(buf);
}

/* ---- rendering ------------------------------------------------------ */

MH_TEST(endpoints_render_text)
{
    size_t len;
    uint8_t *buf = web_capture(100, MH_MODE_TRACE, 0, 0, &len);
    struct mh_analysis a;
    analyse(&a, MH_BY_ENDPOINT, MH_EP_SORT_RETAINED, 0, 1, &buf, &len);
    char *t = render_to_string(&a, 0);
    CHECK(strstr(t, "endpoints by retained bytes per request (6 of 6; 331 "
                    "requests)") != NULL);
    CHECK(strstr(t, "retained/req") != NULL);
    /* The leak's row: 100 requests, 1.5 KiB allocated, 1000 B kept,
     * +976.6 KiB per 1,000 requests with R² 1.00. */
    const char *row = strstr(t, "leak/<int:id>/");
    CHECK(row != NULL);
    const char *bol = row;
    while (bol > t && bol[-1] != '\n')
        bol--;
    CHECK(strstr(bol, "100") < row);
    CHECK(strstr(bol, "+976.6 KiB (1.00)") < row);
    CHECK(strstr(t, "top sites of leak/<int:id>/") != NULL);
    CHECK(strstr(t, "/srv/app/views.py:42 in leak_view") != NULL);
    if (getenv("MH_SHOW"))
        fputs(t, stderr);
    CHECK(strstr(t, "\nfindings (3)\n") != NULL);
    CHECK(strstr(t, "django-queryset-truthiness: QuerySet evaluated") != NULL);
    CHECK(strstr(t, "at /srv/app/views.py:61 in report_view") != NULL);
    CHECK(
        strstr(t, "endpoints: reports/<int:year>/ (50), (in progress) (1)") !=
        NULL);
    CHECK(strstr(t, "fix: use qs.exists()") != NULL);
    CHECK(strstr(t, "docs: docs/findings.md#django-queryset-truthiness") !=
          NULL);
    CHECK(strstr(t, "custom-rule: custom-rule\n") != NULL);
    /* No growth/live tables in this view. */
    CHECK(strstr(t, "live at the end (by") == NULL);
    free(t);
    mh_analysis_release(&a);

    /* By peak, the report endpoint's sites: Django's line, called from
     * the view. */
    analyse(&a, MH_BY_ENDPOINT, MH_EP_SORT_PEAK, 0, 1, &buf, &len);
    t = render_to_string(&a, 0);
    CHECK(strstr(t, "endpoints by peak (p95)") != NULL);
    CHECK(strstr(t, "top sites of reports/<int:year>/") != NULL);
    CHECK(strstr(t, "called from /srv/app/views.py:61 in report_view") !=
          NULL);
    free(t);
    mh_analysis_release(&a);

    /* Any other --by: a short endpoints table, and the findings too. */
    analyse(&a, MH_BY_FUNCTION, MH_EP_SORT_RETAINED, 0, 1, &buf, &len);
    t = render_to_string(&a, 0);
    CHECK(strstr(t, "live at the end (by function)") != NULL);
    CHECK(strstr(t, "(5 of 6;") != NULL);
    CHECK(strstr(t, "memhound report --by endpoint") != NULL);
    CHECK(strstr(t, "top sites of") == NULL);
    CHECK(strstr(t, "\nfindings (3)\n") != NULL);
    free(t);
    mh_analysis_release(&a);
    free(buf);
}

MH_TEST(endpoints_render_json)
{
    size_t len;
    uint8_t *buf = web_capture(100, MH_MODE_TRACE, 0, 0, &len);
    for (int by = MH_BY_LINE; by <= MH_BY_ENDPOINT; by++) {
        struct mh_analysis a;
        analyse(&a, (enum mh_by)by, MH_EP_SORT_RETAINED, 0, 1, &buf, &len);
        char *j = render_to_string(&a, 1);
        const char *script =
            "E = d[\"endpoints\"]\n"
            "F = d[\"findings\"]\n"
            "assert d[\"summary\"][\"requests\"] == 331\n"
            "assert d[\"summary\"][\"sort\"] == \"retained\"\n"
            "assert d[\"summary\"][\"findings_dropped\"] == 0\n"
            "assert [e[\"endpoint\"] for e in E][:3] == "
            "[\"leak/<int:id>/\", \"warm/\", \"cached/\"]\n"
            "keys = {\"endpoint\", \"in_progress\", \"requests\", "
            "\"requests_after_warmup\", \"allocated_bytes_per_request\", "
            "\"peak_bytes_p50\", \"peak_bytes_p95\", "
            "\"held_at_end_bytes_per_request\", "
            "\"retained_bytes_per_request\", "
            "\"slope_bytes_per_1000_requests\", \"slope_r2\", "
            "\"slope_points\", \"slope_interval_per_1000_requests\", "
            "\"significant\", \"peak_resolved_p50\", "
            "\"peak_resolved_p95\", \"peak_resolution_bytes\", "
            "\"sites\"}\n"
            "for e in E:\n"
            "    assert set(e) == keys, set(e) ^ keys\n"
            "    assert e[\"peak_resolved_p50\"] is True\n"
            "    assert e[\"peak_resolution_bytes\"] == 0\n"
            "    for k in keys - {\"endpoint\", \"in_progress\", \"sites\", "
            "\"slope_r2\", \"slope_interval_per_1000_requests\", "
            "\"significant\", \"peak_resolved_p50\", "
            "\"peak_resolved_p95\"}:\n"
            "        assert isinstance(e[k], int), k\n"
            "    for s in e[\"sites\"]:\n"
            "        assert set(s) == {\"file\", \"line\", \"function\", "
            "\"retained_bytes\", \"allocated_bytes\", \"user_file\", "
            "\"user_line\", \"user_function\"}\n"
            "L = E[0]\n"
            "assert L[\"requests\"] == 100 and L[\"in_progress\"] is False\n"
            "assert L[\"allocated_bytes_per_request\"] == 1500\n"
            "assert L[\"peak_bytes_p50\"] == 1500\n"
            "assert L[\"held_at_end_bytes_per_request\"] == 1000\n"
            "assert L[\"retained_bytes_per_request\"] == 1000\n"
            "assert L[\"slope_bytes_per_1000_requests\"] == 1000000\n"
            "assert L[\"slope_r2\"] == 1\n"
            "assert L[\"significant\"] is True\n"
            "assert L[\"slope_interval_per_1000_requests\"] == "
            "[1000000, 1000000]\n"
            "assert [e[\"endpoint\"] for e in E if e[\"significant\"]] == "
            "[\"leak/<int:id>/\"]\n"
            "assert L[\"sites\"][0] == {\"file\": \"/srv/app/views.py\", "
            "\"line\": 42, \"function\": \"leak_view\", "
            "\"retained_bytes\": 100000, \"allocated_bytes\": 100000, "
            "\"user_file\": \"/srv/app/views.py\", \"user_line\": 42, "
            "\"user_function\": \"leak_view\"}\n"
            "R = [e for e in E if e[\"endpoint\"] == "
            "\"reports/<int:year>/\"][0]\n"
            "assert (R[\"peak_bytes_p50\"], R[\"peak_bytes_p95\"]) == "
            "(100000, 190000)\n"
            "P = [e for e in E if e[\"in_progress\"]]\n"
            "assert P[0][\"endpoint\"] == \"(in progress)\"\n"
            "assert len(F) == 3\n"
            "t = F[0]\n"
            "assert set(t) == {\"id\", \"title\", \"evidence\", \"file\", "
            "\"line\", \"function\", \"fix\", \"docs\", \"detail\", "
            "\"occurrences\", \"count_max\", \"count_total\", "
            "\"bytes_max\", \"bytes_total\", \"endpoints\"}\n"
            "assert t[\"id\"] == \"django-queryset-truthiness\"\n"
            "assert t[\"docs\"] == "
            "\"docs/findings.md#django-queryset-truthiness\"\n"
            "assert (t[\"file\"], t[\"line\"]) == (\"/srv/app/views.py\", "
            "61)\n"
            "assert t[\"endpoints\"] == [\"reports/<int:year>/\", "
            "\"(in progress)\"]\n"
            "assert (t[\"occurrences\"], t[\"count_max\"], "
            "t[\"bytes_total\"]) == (51, 20000, 5003000)\n"
            "assert \"20,000 rows\" in t[\"evidence\"]\n"
            "u = F[2]\n"
            "assert (u[\"title\"], u[\"fix\"], u[\"docs\"]) == "
            "(\"custom-rule\", None, None)\n"
            "assert u[\"evidence\"] == \"something odd\"\n";
        int st = python_check(j, script);
        if (st)
            fprintf(stderr, "--by %s:\n%s\n", mh_analysis_by_name(by), j);
        CHECK_EQ_INT(st, 0);
        free(j);
        mh_analysis_release(&a);
    }
    free(buf);
}

/* ---- damaged records ------------------------------------------------ */

static void
expect_add_error(const uint8_t *rec, size_t n, const char *why)
{
    struct tcap c;
    tcap_init_trace(&c);
    tcap_tick(&c, 0, 1 << 20);
    tcap_flush(&c);
    size_t at = c.file.len; /* the second chunk's offset */
    OK(mh_buf_put(&c.chunk, rec, n));
    tcap_end(&c, MS);
    struct mh_analysis a;
    struct mh_analysis_opts opts = {MH_BY_ENDPOINT, 0, 0, 10,
                                    MH_EP_SORT_RETAINED};
    mh_analysis_init(&a, &opts);
    CHECK_EQ_INT(mh_analysis_add(&a, "bad.mhc", c.file.data, c.file.len),
                 MH_EFORMAT);
    char want[64];
    snprintf(want, sizeof(want), "chunk at offset %zu: record 0x", at);
    if (!strstr(a.error, want) || !strstr(a.error, why))
        fprintf(stderr, "error '%s', wanted '%s' and '%s'\n", a.error, want,
                why);
    CHECK(strstr(a.error, want) == a.error);
    CHECK(strstr(a.error, why) != NULL);
    mh_analysis_release(&a);
    tcap_release(&c);
}

MH_TEST(endpoints_damaged_records_are_errors)
{
    expect_add_error((const uint8_t[]){0x48, 4, 0, 0, 0, 0}, 6,
                     "is a request with id 0");
    expect_add_error((const uint8_t[]){0x48, 3, 1, 2, 3}, 5,
                     "is shorter than its fields");
    expect_add_error((const uint8_t[]){0x4a, 4, 1, 1, 1, 'x'}, 6,
                     "is shorter than its fields");
    expect_add_error(
        (const uint8_t[]){0x4a, 11, 1, 0, 0, 1, 'f', 7, 0, 0, 0, 0, 0}, 13,
        "is a finding with an empty id");
    expect_add_error((const uint8_t[]){0x49, 0x7f, 1}, 3,
                     "runs past the end of its chunk");
}

MH_TEST(endpoints_survive_mutated_records)
{
    /* As analysis_survives_mutated_records, on a web capture: odd but
     * well-formed TAGs, REQUESTs and FINDINGs (repeated ids, frees of
     * tagged blocks in other requests, requests that never end) give a
     * report or a clean error (ASan in `make asan`). */
    size_t len;
    uint8_t *orig = web_capture(30, MH_MODE_SAMPLE, 1000, 0, &len);
    uint8_t *buf = malloc(len);
    CHECK(buf);
    uint64_t seed = 11;
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
        struct mh_analysis_opts o = {(enum mh_by)(iter % 6), 0.1, 1,
                                     (size_t)(iter % 3),
                                     (enum mh_ep_sort)(iter % 4)};
        struct mh_analysis a;
        mh_analysis_init(&a, &o);
        if (mh_analysis_add(&a, "m.mhc", buf, len) == MH_OK) {
            reported++;
            OK(mh_analysis_finish(&a));
            free(render_to_string(&a, 0));
            free(render_to_string(&a, 1));
        } else {
            CHECK(a.error[0] != '\0');
        }
        mh_analysis_release(&a);
    }
    CHECK(reported > 100);
    free(buf);
    free(orig);
}

/* ---- scale ---------------------------------------------------------- */

/* MH_BENCH=1 build/ctest endpoints_bench: a 10M-event capture of
 * requests, two at a time, each keeping a block now and then. */
MH_TEST(endpoints_bench)
{
    if (!getenv("MH_BENCH"))
        return;
    struct tcap c;
    struct topts o = {.mode = MH_MODE_TRACE, .zstd = 1};
    tcap_init(&c, &o);
    uint32_t leak = tcap_stack(&c, 2, st_leak);
    uint32_t tmp = tcap_stack(&c, 2, st_tmp);
    uint64_t events = 0, id = 1;
    for (uint64_t r = 0; events < 10000000; r++) {
        if (r % 1000 == 0)
            tcap_tick(&c, r * MS / 10, 64u << 20);
        uint64_t a = id++, b = id++;
        tcap_tag(&c, a);
        tcap_alloc(&c, tmp, 200, 0x10000000);
        tcap_tag(&c, b);
        tcap_alloc(&c, tmp, 300, 0x10001000);
        if (r % 16 == 0)
            tcap_alloc(&c, leak, 100, 0x100000000 + r * 64);
        tcap_free(&c, 0x10000000);
        tcap_free(&c, 0x10001000);
        tcap_request(&c, a, r * MS / 10, r * MS / 10, "a/");
        tcap_request(&c, b, r * MS / 10, r * MS / 10, "b/");
        events += 8;
    }
    tcap_end(&c, 10000000 * MS);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct mh_analysis a;
    analyse(&a, MH_BY_ENDPOINT, MH_EP_SORT_RETAINED, 0.1, 1, &c.file.data,
            &c.file.len);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) +
               (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    fprintf(stderr, "%llu events (%zu bytes): report in %.2f s\n",
            (unsigned long long)events, c.file.len, s);
    CHECK_EQ_STR(ranked(&a, 0), "b/");
    mh_analysis_release(&a);
    tcap_release(&c);
}
