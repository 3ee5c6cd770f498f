/* The capture format: writer and reader round trips, truncation at every
 * byte, corruption, limits, fault injection, and the version-1 fixtures
 * under tests/data (written by this file when missing; delete them only
 * when the format's version changes). */
#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <zstd.h>

#include "format/capture_read.h"
#include "format/capture_write.h"
#include "format/chunk.h"
#include "faulty.h"
#include "harness.h"
#include "util/file.h"

/* ------------------------------------------------------------------ */
/* Test-side bookkeeping uses libc, so fault injection counts only what
 * the writer and the reader allocate. */

static void *
xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    CHECK(q != NULL);
    return q;
}

/* An event log: what the visitor saw (strings copied: the reader's are
 * valid during the visit only). */
struct evlog {
    struct mh_cap_event *ev;
    size_t n, cap;
};

static void
copy_str(struct mh_str *s)
{
    char *t = xrealloc(NULL, s->n + 1);
    if (s->n)
        memcpy(t, s->s, s->n);
    t[s->n] = '\0';
    s->s = t;
}

/* The strings of an event, for copying and freeing. */
static size_t
ev_strs(struct mh_cap_event *ev, struct mh_str **out)
{
    switch (ev->kind) {
    case MH_EV_MARKER:
        out[0] = &ev->u.marker.text;
        return 1;
    case MH_EV_REQUEST:
        out[0] = &ev->u.request.endpoint;
        return 1;
    case MH_EV_FINDING:
        out[0] = &ev->u.finding.id;
        out[1] = &ev->u.finding.file;
        out[2] = &ev->u.finding.function;
        out[3] = &ev->u.finding.detail;
        return 4;
    default:
        return 0;
    }
}

static void
evlog_add(struct evlog *l, const struct mh_cap_event *ev)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->ev = xrealloc(l->ev, l->cap * sizeof(*l->ev));
    }
    l->ev[l->n] = *ev;
    struct mh_str *strs[4];
    size_t k = ev_strs(&l->ev[l->n], strs);
    for (size_t i = 0; i < k; i++)
        copy_str(strs[i]);
    l->n++;
}

static void
evlog_free(struct evlog *l)
{
    for (size_t i = 0; i < l->n; i++) {
        struct mh_str *strs[4];
        size_t k = ev_strs(&l->ev[i], strs);
        for (size_t j = 0; j < k; j++)
            free((char *)strs[j]->s);
    }
    free(l->ev);
    memset(l, 0, sizeof(*l));
}

static int
str_eq(struct mh_str a, struct mh_str b)
{
    return a.n == b.n && (!a.n || !memcmp(a.s, b.s, a.n));
}

static int
log_visit(void *ctx, const struct mh_cap_event *ev)
{
    evlog_add(ctx, ev);
    return 0;
}

static int
ev_equal(const struct mh_cap_event *a, const struct mh_cap_event *b)
{
    if (a->kind != b->kind)
        return 0;
    switch (a->kind) {
    case MH_EV_ALLOC:
        return a->u.alloc.domain == b->u.alloc.domain &&
               a->u.alloc.stack == b->u.alloc.stack &&
               a->u.alloc.size == b->u.alloc.size &&
               a->u.alloc.addr == b->u.alloc.addr &&
               a->u.alloc.request == b->u.alloc.request;
    case MH_EV_FREE:
        return a->u.free.addr == b->u.free.addr;
    case MH_EV_TIMELINE:
        return !memcmp(&a->u.timeline, &b->u.timeline, sizeof(a->u.timeline));
    case MH_EV_REQUEST:
        return a->u.request.id == b->u.request.id &&
               a->u.request.t_begin_ns == b->u.request.t_begin_ns &&
               a->u.request.t_end_ns == b->u.request.t_end_ns &&
               str_eq(a->u.request.endpoint, b->u.request.endpoint);
    case MH_EV_FINDING: {
        const struct mh_cap_finding *x = &a->u.finding, *y = &b->u.finding;
        return x->t_ns == y->t_ns && x->request == y->request &&
               str_eq(x->id, y->id) && str_eq(x->file, y->file) &&
               x->line == y->line && str_eq(x->function, y->function) &&
               x->count == y->count && x->bytes == y->bytes &&
               str_eq(x->detail, y->detail);
    }
    case MH_EV_MARKER:
        return a->u.marker.t_ns == b->u.marker.t_ns &&
               a->u.marker.kind == b->u.marker.kind &&
               a->u.marker.text.n == b->u.marker.text.n &&
               !memcmp(a->u.marker.text.s, b->u.marker.text.s,
                       a->u.marker.text.n);
    case MH_EV_END:
        return a->u.end.t_ns == b->u.end.t_ns &&
               a->u.end.samples == b->u.end.samples &&
               a->u.end.frees == b->u.end.frees &&
               a->u.end.dropped == b->u.end.dropped;
    }
    return 0;
}

static void
check_events(const struct evlog *got, const struct evlog *want, size_t n)
{
    if (got->n != n)
        fprintf(stderr, "got %zu events, want %zu\n", got->n, n);
    CHECK_EQ_INT(got->n, n);
    for (size_t i = 0; i < n; i++) {
        if (!ev_equal(&got->ev[i], &want->ev[i]))
            fprintf(stderr, "event %zu differs (kind %d vs %d)\n", i,
                    got->ev[i].kind, want->ev[i].kind);
        CHECK(ev_equal(&got->ev[i], &want->ev[i]));
    }
}

/* ------------------------------------------------------------------ */
/* A capture generator: writes records with the real encoders and keeps
 * what a reader must see (expected events, chunk boundaries). */

#define GEN_MAX_CHUNKS 4096

struct gen {
    struct mh_buf file, chunk, scratch;
    struct mh_cap_enc enc;
    int level;
    int rc; /* the first failure; later calls do nothing */
    struct evlog want;
    size_t nchunks;
    size_t chunk_end[GEN_MAX_CHUNKS];   /* file offset after chunk i */
    size_t events_upto[GEN_MAX_CHUNKS]; /* events in chunks 0..i */
    int chunk_zstd[GEN_MAX_CHUNKS];
};

static void
gen_init(struct gen *g, int level)
{
    memset(g, 0, sizeof(*g));
    mh_buf_init(&g->file, 1u << 30);
    mh_buf_init(&g->chunk, MH_CAP_CHUNK_RAW_MAX);
    mh_buf_init(&g->scratch, MH_CAP_CHUNK_MAX);
    g->level = level;
    g->rc = mh_cap_put_file_header(&g->file);
}

static void
gen_release(struct gen *g)
{
    mh_buf_release(&g->file);
    mh_buf_release(&g->chunk);
    mh_buf_release(&g->scratch);
    evlog_free(&g->want);
}

/* Runs an encoder unless an earlier step failed. */
#define STEP(g, call)                                                         \
    do {                                                                      \
        if ((g)->rc == MH_OK)                                                 \
            (g)->rc = (call);                                                 \
    } while (0)

static void
gen_seal(struct gen *g)
{
    if (g->rc)
        return;
    CHECK(g->nchunks < GEN_MAX_CHUNKS);
    size_t at = g->file.len;
    g->rc = mh_cap_chunk_seal(&g->file, g->chunk.data, g->chunk.len, g->level,
                              &g->scratch);
    if (g->rc)
        return;
    g->chunk_zstd[g->nchunks] = g->file.data[at + 9] & MH_CAP_CHUNK_ZSTD;
    g->chunk_end[g->nchunks] = g->file.len;
    g->events_upto[g->nchunks] = g->want.n;
    g->nchunks++;
    mh_buf_reset(&g->chunk);
    memset(&g->enc, 0, sizeof(g->enc));
}

/* `sidx` is the dense index the reader must give stack id `stack`. */
static void
gen_alloc(struct gen *g, enum mh_domain d, uint32_t stack, uint32_t sidx,
          uint64_t size, uint64_t addr)
{
    if (g->rc)
        return;
    g->rc = mh_cap_put_alloc(&g->chunk, &g->enc, d, stack, size, addr);
    if (g->rc)
        return;
    struct mh_cap_event ev = {.kind = MH_EV_ALLOC};
    ev.u.alloc.domain = d;
    ev.u.alloc.stack = sidx;
    ev.u.alloc.size = size;
    ev.u.alloc.addr = addr;
    ev.u.alloc.request = g->enc.last_request; /* the chunk's TAG */
    evlog_add(&g->want, &ev);
}

/* The next ALLOCs belong to `request` (a TAG when it changes). */
static void
gen_tag(struct gen *g, uint64_t request)
{
    STEP(g, mh_cap_put_tag(&g->chunk, &g->enc, request));
}

static void
gen_request(struct gen *g, uint64_t id, uint64_t t0, uint64_t t1,
            const char *endpoint)
{
    if (g->rc)
        return;
    struct mh_cap_event ev = {.kind = MH_EV_REQUEST};
    ev.u.request.id = id;
    ev.u.request.t_begin_ns = t0;
    ev.u.request.t_end_ns = t1;
    ev.u.request.endpoint = (struct mh_str){endpoint, strlen(endpoint)};
    g->rc = mh_cap_put_request(&g->chunk, &ev.u.request);
    if (g->rc == MH_OK)
        evlog_add(&g->want, &ev);
}

static void
gen_finding(struct gen *g, uint64_t t, uint64_t request, const char *id,
            const char *file, uint32_t line, uint64_t count, uint64_t bytes)
{
    if (g->rc)
        return;
    struct mh_cap_event ev = {.kind = MH_EV_FINDING};
    struct mh_cap_finding *f = &ev.u.finding;
    f->t_ns = t;
    f->request = request;
    f->id = (struct mh_str){id, strlen(id)};
    f->file = (struct mh_str){file, strlen(file)};
    f->line = line;
    f->function = (struct mh_str){"report_view", 11};
    f->count = count;
    f->bytes = bytes;
    f->detail = (struct mh_str){"", 0};
    g->rc = mh_cap_put_finding(&g->chunk, f);
    if (g->rc == MH_OK)
        evlog_add(&g->want, &ev);
}

static void
gen_free(struct gen *g, uint64_t addr)
{
    if (g->rc)
        return;
    g->rc = mh_cap_put_free(&g->chunk, &g->enc, addr);
    if (g->rc)
        return;
    struct mh_cap_event ev = {.kind = MH_EV_FREE};
    ev.u.free.addr = addr;
    evlog_add(&g->want, &ev);
}

static void
gen_timeline(struct gen *g, uint64_t t, uint64_t rss, uint64_t live,
             uint64_t samples)
{
    if (g->rc)
        return;
    struct mh_cap_event ev = {.kind = MH_EV_TIMELINE};
    ev.u.timeline = (struct mh_cap_timeline){
        t, rss, live, samples, samples / 2, samples / 7};
    g->rc = mh_cap_put_timeline(&g->chunk, &ev.u.timeline);
    if (g->rc == MH_OK)
        evlog_add(&g->want, &ev);
}

/* `seen` is the kind the reader reports (unknown kinds become user). */
static void
gen_marker(struct gen *g, uint64_t t, uint32_t kind, uint32_t seen,
           const char *text)
{
    if (g->rc)
        return;
    g->rc = mh_cap_put_marker(&g->chunk, t, kind, text, strlen(text));
    if (g->rc)
        return;
    struct mh_cap_event ev = {.kind = MH_EV_MARKER};
    ev.u.marker.t_ns = t;
    ev.u.marker.kind = seen;
    ev.u.marker.text.s = text;
    ev.u.marker.text.n = strlen(text);
    evlog_add(&g->want, &ev);
}

static void
gen_end(struct gen *g, uint64_t t, uint64_t samples, uint64_t frees,
        uint64_t dropped)
{
    if (g->rc)
        return;
    g->rc = mh_cap_put_end(&g->chunk, t, samples, frees, dropped);
    if (g->rc)
        return;
    struct mh_cap_event ev = {.kind = MH_EV_END};
    ev.u.end.t_ns = t;
    ev.u.end.samples = samples;
    ev.u.end.frees = frees;
    ev.u.end.dropped = dropped;
    evlog_add(&g->want, &ev);
}

/* A sized record this reader does not know: it must be skipped. */
static void
gen_unknown_sized(struct gen *g)
{
    if (g->rc)
        return;
    static const uint8_t rec[] = {0x70, 5, 1, 2, 3, 0xff, 0x80};
    g->rc = mh_buf_put(&g->chunk, rec, sizeof(rec));
}

static const struct mh_str sample_argv[] = {{"app.py", 6}, {"--serve", 7}};
static const struct mh_str sample_lib[] = {{"/usr/lib/python3.11", 19}};
static const struct mh_str sample_path[] = {
    {"/srv/app", 8}, {"/usr/lib/python3.11", 19}, {"", 0}};
static const char sample_python[] = "3.11.2 (main, Mar 13 2023) [GCC 12.2.0]";
static const char sample_exe[] = "/usr/bin/python3";

static void
gen_header(struct gen *g)
{
    struct mh_cap_header h;
    memset(&h, 0, sizeof(h));
    h.pid = 4242;
    h.ppid = 1;
    h.start_ns = 1700000000123456789ull;
    h.mode = MH_MODE_TRACE;
    h.interval = 0;
    h.max_depth = 128;
    h.fork_parent = 77;
    h.python = (struct mh_str){sample_python, strlen(sample_python)};
    h.executable = (struct mh_str){sample_exe, strlen(sample_exe)};
    h.argc = 2;
    h.argv = sample_argv;
    h.nlib = 1;
    h.lib_prefixes = sample_lib;
    h.npath = 3;
    h.sys_path = sample_path;
    STEP(g, mh_cap_put_header(&g->chunk, &h));
}

/* The sample capture: three chunks, every record kind, sparse ids,
 * address deltas that go backwards and wrap, a 64-bit size, an unknown
 * sized record, and (chunk 2) enough repetition for zstd to pay. Stack
 * ids 11, 12, 13 become indices 1, 2, 3. */
static void
gen_sample_open(struct gen *g, int repeat)
{
    const uint32_t st12[] = {9, 3};
    const uint32_t st13[] = {1, 9, 3};
    const uint32_t st11[] = {3};

    gen_header(g);
    STEP(g, mh_cap_put_string(&g->chunk, 1, "app.py", 6));
    STEP(g, mh_cap_put_string(&g->chunk, 2, "handler", 7));
    STEP(g, mh_cap_put_string(&g->chunk, 700, "cache_put", 9));
    STEP(g, mh_cap_put_code(&g->chunk, 5, 1, 2, 10));
    STEP(g, mh_cap_put_code(&g->chunk, 6, 1, 700, 30));
    STEP(g, mh_cap_put_frame(&g->chunk, 3, 5, 12, 40));
    STEP(g, mh_cap_put_frame(&g->chunk, 9, 6, 33, 8));
    STEP(g, mh_cap_put_stack(&g->chunk, 11, 1, st11));
    STEP(g, mh_cap_put_stack(&g->chunk, 12, 2, st12));
    gen_timeline(g, 0, 1u << 20, 0, 0);
    gen_alloc(g, MH_DOMAIN_OBJ, 11, 1, 64, 0x7f0000001000ull);
    gen_alloc(g, MH_DOMAIN_MEM, 12, 2, 100000, 0x7f0000000040ull);
    gen_alloc(g, MH_DOMAIN_RAW, 0, 0, 1, 0x10);
    gen_free(g, 0x7f0000001000ull);
    gen_seal(g);

    gen_marker(g, 1000, MH_MARK_REQUEST_BEGIN, MH_MARK_REQUEST_BEGIN,
               "/api/items");
    gen_free(g, 0x7f0000000040ull); /* a delta from 0: the state reset */
    gen_alloc(g, MH_DOMAIN_OBJ, 12, 2, 1ull << 40, 0xfffffffffffffff0ull);
    gen_alloc(g, MH_DOMAIN_RAW, 11, 1, 0, 0); /* wraps around */
    STEP(g, mh_cap_put_string(&g->chunk, 3000000000u, "helper", 6));
    STEP(g, mh_cap_put_code(&g->chunk, 1, 3000000000u, 3000000000u, 0));
    STEP(g, mh_cap_put_frame(&g->chunk, 1, 1, 0, UINT32_MAX));
    STEP(g, mh_cap_put_stack(&g->chunk, 13, 3, st13));
    gen_unknown_sized(g);
    for (int i = 0; i < repeat; i++) {
        uint64_t a = 0x7f1000000000ull + (uint64_t)i * 64;
        gen_alloc(g, MH_DOMAIN_OBJ, 13, 3, 48, a);
        if (i % 3 == 0)
            gen_free(g, a);
    }
    gen_marker(g, 2000, 99, MH_MARK_USER, "custom kind");
    gen_marker(g, 2001, MH_MARK_REQUEST_END, MH_MARK_REQUEST_END, "");
    gen_seal(g);

    gen_timeline(g, 100000000, 2u << 20, 12345, 8);
    gen_alloc(g, MH_DOMAIN_MEM, 13, 3, 7, 0x1000);
}

static void
gen_sample(struct gen *g, int repeat)
{
    gen_sample_open(g, repeat);
    gen_end(g, 200000000, 8, 4, 1);
    gen_seal(g);
}

/* A web service's capture (the sample's tables, then requests): two
 * requests in flight at once switching TAGs, a TAG state that a new
 * chunk resets (its first ALLOC belongs to no request), findings inside
 * and outside requests, an empty endpoint, a request with no samples, and
 * ids and sizes past 32 bits. Tables as check_sample_tables() expects. */
static void
gen_web(struct gen *g, int repeat)
{
    gen_sample_open(g, repeat);
    gen_seal(g);
    gen_timeline(g, 300000000, 3u << 20, 0, 9);
    gen_tag(g, 1);
    gen_alloc(g, MH_DOMAIN_OBJ, 11, 1, 64, 0x5000);
    gen_tag(g, 2);
    gen_alloc(g, MH_DOMAIN_OBJ, 12, 2, 128, 0x6000);
    gen_tag(g, 1);
    gen_alloc(g, MH_DOMAIN_MEM, 13, 3, 1ull << 33, 0x7000);
    gen_alloc(g, MH_DOMAIN_OBJ, 13, 3, 32, 0x7100);
    gen_finding(g, 300000100, 1, "django-queryset-truthiness",
                "/srv/app/views.py", 42, 20000, 31u << 20);
    gen_free(g, 0x5000);
    gen_tag(g, 0);
    gen_alloc(g, MH_DOMAIN_RAW, 0, 0, 16, 0x8000);
    gen_request(g, 1, 300000000, 300000500, "reports/<int:year>/");
    gen_seal(g);

    /* A new chunk: request 2 is still current but needs a new TAG. */
    gen_alloc(g, MH_DOMAIN_OBJ, 11, 1, 48, 0x9000);
    gen_tag(g, 2);
    gen_alloc(g, MH_DOMAIN_OBJ, 11, 1, 48, 0x9100);
    gen_request(g, 2, 300000010, 300000900, "");
    gen_request(g, 3, 300001000, 300001000, "api/items/<slug:name>/");
    gen_tag(g, 1ull << 40);
    gen_alloc(g, MH_DOMAIN_OBJ, 12, 2, 8, 0xa000);
    gen_finding(g, 300002000, 0, "django-debug-query-log",
                "/srv/app/jobs.py", UINT32_MAX, 4000, 1u << 20);
    gen_unknown_sized(g);
    gen_end(g, 400000000, 15, 5, 0);
    gen_seal(g);
}

/* Tables and header of the sample capture, exactly. */
static void
check_sample_tables(const struct mh_cap_reader *r)
{
    CHECK(r->have_header);
    const struct mh_cap_header *h = &r->header;
    CHECK(h->pid == 4242);
    CHECK(h->ppid == 1);
    CHECK(h->start_ns == 1700000000123456789ull);
    CHECK_EQ_INT(h->mode, MH_MODE_TRACE);
    CHECK(h->interval == 0);
    CHECK_EQ_INT(h->max_depth, 128);
    CHECK(h->fork_parent == 77);
    CHECK_EQ_STR(h->python.s, sample_python);
    CHECK_EQ_INT(h->python.n, strlen(sample_python));
    CHECK_EQ_STR(h->executable.s, sample_exe);
    CHECK_EQ_INT(h->argc, 2);
    CHECK_EQ_STR(h->argv[0].s, "app.py");
    CHECK_EQ_STR(h->argv[1].s, "--serve");
    CHECK_EQ_INT(h->nlib, 1);
    CHECK_EQ_STR(h->lib_prefixes[0].s, "/usr/lib/python3.11");
    CHECK_EQ_INT(h->npath, 3);
    CHECK_EQ_STR(h->sys_path[0].s, "/srv/app");
    CHECK_EQ_STR(h->sys_path[2].s, "");

    CHECK_EQ_INT(r->nstrings, 5);
    CHECK_EQ_STR(mh_cap_str(r, 0), "");
    CHECK_EQ_STR(mh_cap_str(r, 1), "app.py");
    CHECK_EQ_STR(mh_cap_str(r, 2), "handler");
    CHECK_EQ_STR(mh_cap_str(r, 3), "cache_put");
    CHECK_EQ_STR(mh_cap_str(r, 4), "helper");
    CHECK_EQ_INT(r->strings[3].n, 9);
    CHECK_EQ_STR(mh_cap_str(r, 99), "");

    CHECK_EQ_INT(r->ncodes, 4);
    CHECK_EQ_INT(r->codes[1].filename, 1);
    CHECK_EQ_INT(r->codes[1].name, 2);
    CHECK_EQ_INT(r->codes[1].firstlineno, 10);
    CHECK_EQ_INT(r->codes[2].name, 3);
    CHECK_EQ_INT(r->codes[2].firstlineno, 30);
    CHECK_EQ_INT(r->codes[3].filename, 4);
    CHECK_EQ_INT(r->codes[3].name, 4);

    CHECK_EQ_INT(r->nframes, 4);
    CHECK_EQ_INT(r->frames[1].code, 1); /* frame id 3 -> code id 5 */
    CHECK_EQ_INT(r->frames[1].line, 12);
    CHECK_EQ_INT(r->frames[1].offset, 40);
    CHECK_EQ_INT(r->frames[2].code, 2); /* frame id 9 -> code id 6 */
    CHECK_EQ_INT(r->frames[3].code, 3); /* frame id 1 -> code id 1 */
    CHECK(r->frames[3].offset == UINT32_MAX);

    CHECK_EQ_INT(r->nstacks, 4);
    CHECK_EQ_INT(r->stacks[0].depth, 0);
    CHECK_EQ_INT(r->stacks[1].depth, 1);
    CHECK_EQ_INT(r->stack_frames[r->stacks[1].first], 1);
    CHECK_EQ_INT(r->stacks[2].depth, 2);
    CHECK_EQ_INT(r->stack_frames[r->stacks[2].first], 2);
    CHECK_EQ_INT(r->stack_frames[r->stacks[2].first + 1], 1);
    CHECK_EQ_INT(r->stacks[3].depth, 3);
    CHECK_EQ_INT(r->stack_frames[r->stacks[3].first], 3);
    CHECK_EQ_INT(r->stack_frames[r->stacks[3].first + 2], 1);
    CHECK_EQ_INT(r->nstack_frames, 6);
}

/* Parses a private copy of exactly `len` bytes, so an overread is caught
 * by ASan/valgrind. */
static int
parse_copy(struct mh_cap_reader *r, const uint8_t *buf, size_t len,
           struct evlog *log)
{
    uint8_t *copy = malloc(len ? len : 1);
    CHECK(copy != NULL);
    if (len)
        memcpy(copy, buf, len);
    mh_cap_reader_init(r);
    int rc = mh_cap_parse(r, copy, len, log ? log_visit : NULL, log);
    free(copy); /* the reader's strings must not point into it */
    return rc;
}

static void
round_trip(int level, int expect_zstd)
{
    struct gen g;
    gen_init(&g, level);
    gen_sample(&g, 200);
    CHECK_EQ_INT(g.rc, MH_OK);
    CHECK_EQ_INT(g.nchunks, 3);
    int any_zstd = 0;
    for (size_t i = 0; i < g.nchunks; i++)
        any_zstd |= g.chunk_zstd[i];
    CHECK_EQ_INT(any_zstd, expect_zstd);

    struct mh_cap_reader r;
    struct evlog log = {0};
    int rc = parse_copy(&r, g.file.data, g.file.len, &log);
    if (rc)
        fprintf(stderr, "%s\n", r.error);
    CHECK_EQ_INT(rc, MH_OK);
    CHECK_EQ_INT(r.chunks, 3);
    CHECK(!r.truncated);
    CHECK(r.clean_end);
    check_sample_tables(&r);
    check_events(&log, &g.want, g.want.n);
    /* Offsets: in stored chunks each record's own, else the chunk's. */
    CHECK(log.ev[0].offset >= MH_CAP_FILE_HEADER_LEN);
    CHECK(log.ev[log.n - 1].offset >= g.chunk_end[1]);
    if (!expect_zstd) {
        /* The first event is the TIMELINE record after the tables. */
        CHECK_EQ_INT(g.file.data[log.ev[0].offset], MH_REC_TIMELINE);
        CHECK_EQ_INT(g.file.data[log.ev[1].offset], MH_REC_ALLOC_OBJ);
    }
    evlog_free(&log);
    mh_cap_reader_release(&r);
    CHECK(r.priv == NULL && r.strings == NULL);
    gen_release(&g);
}

MH_TEST(capture_round_trip_stored)
{
    round_trip(0, 0);
}

MH_TEST(capture_round_trip_zstd)
{
    round_trip(3, 1);
}

static void
web_round_trip(int level)
{
    struct gen g;
    gen_init(&g, level);
    gen_web(&g, 20);
    CHECK_EQ_INT(g.rc, MH_OK);
    CHECK_EQ_INT(g.nchunks, 5);
    struct mh_cap_reader r;
    struct evlog log = {0};
    int rc = parse_copy(&r, g.file.data, g.file.len, &log);
    if (rc)
        fprintf(stderr, "%s\n", r.error);
    CHECK_EQ_INT(rc, MH_OK);
    CHECK(r.clean_end);
    check_sample_tables(&r);
    check_events(&log, &g.want, g.want.n);
    /* What the TAGs said, spelled out: request 1, 2, 1, 1, none; after
     * the chunk boundary none, then 2 and 2^40. */
    static const uint64_t want[] = {1, 2, 1, 1, 0, 0, 2, 1ull << 40};
    size_t k = 0, first = g.events_upto[2];
    int requests = 0, findings = 0;
    for (size_t i = first; i < log.n; i++) {
        const struct mh_cap_event *ev = &log.ev[i];
        if (ev->kind == MH_EV_ALLOC) {
            CHECK(k < sizeof(want) / sizeof(*want));
            CHECK(ev->u.alloc.request == want[k]);
            k++;
        } else if (ev->kind == MH_EV_REQUEST) {
            requests++;
        } else if (ev->kind == MH_EV_FINDING) {
            findings++;
        }
    }
    CHECK_EQ_INT(k, sizeof(want) / sizeof(*want));
    CHECK_EQ_INT(requests, 3);
    CHECK_EQ_INT(findings, 2);
    /* Before any TAG, every ALLOC belongs to no request. */
    for (size_t i = 0; i < first; i++)
        if (log.ev[i].kind == MH_EV_ALLOC)
            CHECK(log.ev[i].u.alloc.request == 0);
    evlog_free(&log);
    mh_cap_reader_release(&r);
    gen_release(&g);
}

MH_TEST(capture_web_round_trip_stored)
{
    web_round_trip(0);
}

MH_TEST(capture_web_round_trip_zstd)
{
    web_round_trip(3);
}

MH_TEST(capture_no_visitor)
{
    struct gen g;
    gen_init(&g, 1);
    gen_sample(&g, 50);
    CHECK_EQ_INT(g.rc, MH_OK);
    struct mh_cap_reader r;
    CHECK_EQ_INT(parse_copy(&r, g.file.data, g.file.len, NULL), MH_OK);
    check_sample_tables(&r);
    CHECK(r.clean_end);
    /* One parse per reader. */
    CHECK_EQ_INT(mh_cap_parse(&r, g.file.data, g.file.len, NULL, NULL),
                 MH_EINVAL);
    mh_cap_reader_release(&r);
    /* A released reader can be parsed with again. */
    CHECK_EQ_INT(mh_cap_parse(&r, g.file.data, g.file.len, NULL, NULL), MH_OK);
    mh_cap_reader_release(&r);
    gen_release(&g);
}

MH_TEST(capture_file_header_only)
{
    struct mh_buf b;
    mh_buf_init(&b, 64);
    CHECK_EQ_INT(mh_cap_put_file_header(&b), MH_OK);
    CHECK_EQ_INT(b.len, MH_CAP_FILE_HEADER_LEN);
    CHECK(!memcmp(b.data, "\x89MHC\r\n\x1a\n\x01\x00\x00\x00", 12));
    struct mh_cap_reader r;
    CHECK_EQ_INT(parse_copy(&r, b.data, b.len, NULL), MH_OK);
    CHECK(!r.have_header);
    CHECK_EQ_INT(r.chunks, 0);
    CHECK(!r.truncated);
    CHECK_EQ_INT(r.nstacks, 1); /* index 0 exists */
    mh_cap_reader_release(&r);
    /* An empty chunk carries nothing and is fine, even first. */
    CHECK_EQ_INT(mh_cap_chunk_seal(&b, NULL, 0, 3, NULL), MH_OK);
    CHECK_EQ_INT(b.len, 22);
    CHECK_EQ_INT(parse_copy(&r, b.data, b.len, NULL), MH_OK);
    CHECK_EQ_INT(r.chunks, 1);
    mh_cap_reader_release(&r);
    mh_buf_release(&b);
}

/* Stops at the n-th event. */
static int
stop_visit(void *ctx, const struct mh_cap_event *ev)
{
    (void)ev;
    int *left = ctx;
    return --*left == 0 ? 42 : 0;
}

static int
nomem_visit(void *ctx, const struct mh_cap_event *ev)
{
    (void)ctx;
    return ev->kind == MH_EV_FREE ? MH_ENOMEM : 0;
}

MH_TEST(capture_visitor_stops)
{
    struct gen g;
    gen_init(&g, 0);
    gen_sample(&g, 10);
    CHECK_EQ_INT(g.rc, MH_OK);
    struct mh_cap_reader r;
    mh_cap_reader_init(&r);
    int left = 3;
    CHECK_EQ_INT(mh_cap_parse(&r, g.file.data, g.file.len, stop_visit, &left),
                 42);
    CHECK(strstr(r.error, "stopped") != NULL);
    mh_cap_reader_release(&r);
    mh_cap_reader_init(&r);
    CHECK_EQ_INT(mh_cap_parse(&r, g.file.data, g.file.len, nomem_visit, NULL),
                 MH_ENOMEM);
    CHECK(strstr(r.error, "record 0x04") != NULL);
    CHECK(strstr(r.error, "out of memory") != NULL);
    mh_cap_reader_release(&r);
    gen_release(&g);
}

/* ------------------------------------------------------------------ */
/* Many chunks, addresses carried across them. */

MH_TEST(capture_many_chunks)
{
    for (int level = 0; level <= 1; level++) {
        struct gen g;
        gen_init(&g, level);
        gen_header(&g);
        STEP(&g, mh_cap_put_string(&g.chunk, 1, "f.py", 4));
        STEP(&g, mh_cap_put_code(&g.chunk, 1, 1, 1, 1));
        uint64_t a = 0x555500000000ull;
        for (uint32_t c = 0; c < 1000; c++) {
            /* A new frame and stack every 10 chunks, used later too. */
            if (c % 10 == 0) {
                uint32_t fid = c / 10 + 1;
                STEP(&g, mh_cap_put_frame(&g.chunk, fid, 1, c, 0));
                STEP(&g, mh_cap_put_stack(&g.chunk, fid, 1, &fid));
            }
            for (int i = 0; i < 20; i++) {
                a += (uint64_t)(i * 4096) - 30000;
                uint32_t sid = (uint32_t)((c + i) % (c / 10 + 1)) + 1;
                gen_alloc(&g, (enum mh_domain)(i % 3), sid, sid,
                          (uint64_t)i * 8, a);
                if (i & 1)
                    gen_free(&g, a - 100);
            }
            gen_seal(&g);
        }
        CHECK_EQ_INT(g.rc, MH_OK);
        CHECK_EQ_INT(g.nchunks, 1000);
        struct mh_cap_reader r;
        struct evlog log = {0};
        CHECK_EQ_INT(parse_copy(&r, g.file.data, g.file.len, &log), MH_OK);
        CHECK_EQ_INT(r.chunks, 1000);
        CHECK_EQ_INT(r.nstacks, 101);
        CHECK(!r.clean_end);
        check_events(&log, &g.want, g.want.n);
        evlog_free(&log);
        mh_cap_reader_release(&r);
        gen_release(&g);
    }
}

/* ------------------------------------------------------------------ */
/* Truncation at every byte. */

static void
truncate_everywhere(int level)
{
    struct gen g;
    gen_init(&g, level);
    gen_sample(&g, level ? 60 : 5);
    CHECK_EQ_INT(g.rc, MH_OK);
    for (size_t cut = 0; cut <= g.file.len; cut++) {
        struct mh_cap_reader r;
        struct evlog log = {0};
        int rc = parse_copy(&r, g.file.data, cut, &log);
        if (cut < MH_CAP_FILE_HEADER_LEN) {
            CHECK(rc < 0);
            CHECK(r.error[0] != '\0');
            CHECK_EQ_INT(log.n, 0);
        } else {
            if (rc)
                fprintf(stderr, "cut at %zu: %s\n", cut, r.error);
            CHECK_EQ_INT(rc, MH_OK);
            size_t complete = 0, boundary = MH_CAP_FILE_HEADER_LEN;
            while (complete < g.nchunks && g.chunk_end[complete] <= cut)
                boundary = g.chunk_end[complete++];
            size_t nev = complete ? g.events_upto[complete - 1] : 0;
            CHECK_EQ_INT(r.chunks, complete);
            CHECK_EQ_INT(r.truncated, cut != boundary);
            if (r.truncated)
                CHECK_EQ_INT(r.truncated_at, boundary);
            check_events(&log, &g.want, nev);
            CHECK_EQ_INT(r.have_header, complete > 0);
        }
        evlog_free(&log);
        mh_cap_reader_release(&r);
    }
    gen_release(&g);
}

MH_TEST(capture_truncated_everywhere_stored)
{
    truncate_everywhere(0);
}

MH_TEST(capture_truncated_everywhere_zstd)
{
    truncate_everywhere(3);
}

/* ------------------------------------------------------------------ */
/* Corruption. */

MH_TEST(capture_every_byte_flipped)
{
    struct gen g;
    gen_init(&g, 0);
    gen_sample(&g, 5);
    CHECK_EQ_INT(g.rc, MH_OK);
    static const uint8_t masks[] = {0x01, 0x80, 0xff};
    for (size_t i = 0; i < g.file.len; i++)
        for (size_t m = 0; m < sizeof(masks); m++) {
            g.file.data[i] ^= masks[m];
            struct mh_cap_reader r;
            int rc = parse_copy(&r, g.file.data, g.file.len, NULL);
            /* A longer chunk length reads as a cut tail; anything else
             * is caught, mostly by the CRC. */
            CHECK(rc < 0 || r.truncated);
            if (rc < 0)
                CHECK(r.error[0] != '\0');
            mh_cap_reader_release(&r);
            g.file.data[i] ^= masks[m];
        }
    gen_release(&g);
}

MH_TEST(capture_crc_names_chunk)
{
    struct gen g;
    gen_init(&g, 0);
    gen_sample(&g, 5);
    CHECK_EQ_INT(g.rc, MH_OK);
    size_t c1 = g.chunk_end[0];
    g.file.data[c1 + 15] ^= 0x20;
    struct mh_cap_reader r;
    CHECK_EQ_INT(parse_copy(&r, g.file.data, g.file.len, NULL), MH_EFORMAT);
    char want[64];
    snprintf(want, sizeof(want), "chunk at offset %zu: CRC mismatch", c1);
    CHECK(strstr(r.error, want) == r.error);
    CHECK_EQ_INT(r.error_offset, c1);
    CHECK_EQ_INT(r.chunks, 1); /* the first chunk was delivered */
    mh_cap_reader_release(&r);
    gen_release(&g);
}

/* A capture whose first chunk is a HEADER (trace-all) and whose second
 * chunk is `payload`, stored with a valid CRC. */
static void
capture_with(struct mh_buf *file, const uint8_t *payload, size_t n)
{
    struct mh_buf c;
    mh_buf_init(file, 1u << 28);
    mh_buf_init(&c, 1u << 20);
    struct mh_cap_header h;
    memset(&h, 0, sizeof(h));
    h.mode = MH_MODE_TRACE;
    CHECK_EQ_INT(mh_cap_put_file_header(file), MH_OK);
    CHECK_EQ_INT(mh_cap_put_header(&c, &h), MH_OK);
    CHECK_EQ_INT(mh_cap_chunk_seal(file, c.data, c.len, 0, NULL), MH_OK);
    CHECK_EQ_INT(mh_cap_chunk_seal(file, payload, n, 0, NULL), MH_OK);
    mh_buf_release(&c);
}

/* Offset of the second chunk in capture_with()'s output. */
static size_t
second_chunk(const struct mh_buf *file)
{
    const uint8_t *c = file->data + MH_CAP_FILE_HEADER_LEN;
    size_t n = c[1] | (size_t)c[2] << 8;
    return MH_CAP_FILE_HEADER_LEN + MH_CAP_CHUNK_HEADER_LEN + n;
}

/* Parses capture_with(payload) and expects `code` with `msg` in the
 * error; returns the error offset relative to the second chunk's
 * payload. */
static long
expect_error(const void *payload, size_t n, int code, const char *msg)
{
    struct mh_buf file;
    capture_with(&file, payload, n);
    struct mh_cap_reader r;
    struct evlog log = {0};
    int rc = parse_copy(&r, file.data, file.len, &log);
    if (rc != code || !strstr(r.error, msg))
        fprintf(stderr, "rc %d, error '%s', wanted %d and '%s'\n", rc, r.error,
                code, msg);
    CHECK_EQ_INT(rc, code);
    CHECK(strstr(r.error, msg) != NULL);
    char prefix[64];
    snprintf(prefix, sizeof(prefix),
             "chunk at offset %zu: ", second_chunk(&file));
    CHECK(strstr(r.error, prefix) == r.error);
    long rel = (long)r.error_offset -
               (long)(second_chunk(&file) + MH_CAP_CHUNK_HEADER_LEN);
    evlog_free(&log);
    mh_cap_reader_release(&r);
    mh_buf_release(&file);
    return rel;
}

static void
expect_ok(const void *payload, size_t n, size_t nevents)
{
    struct mh_buf file;
    capture_with(&file, payload, n);
    struct mh_cap_reader r;
    struct evlog log = {0};
    int rc = parse_copy(&r, file.data, file.len, &log);
    if (rc)
        fprintf(stderr, "%s\n", r.error);
    CHECK_EQ_INT(rc, MH_OK);
    CHECK_EQ_INT(log.n, nevents);
    evlog_free(&log);
    mh_cap_reader_release(&r);
    mh_buf_release(&file);
}

#define BYTES(...) ((const uint8_t[]){__VA_ARGS__})
#define EXPECT_ERROR(code, msg, ...)                                          \
    expect_error(BYTES(__VA_ARGS__), sizeof(BYTES(__VA_ARGS__)), code, msg)
#define EXPECT_OK(nev, ...)                                                   \
    expect_ok(BYTES(__VA_ARGS__), sizeof(BYTES(__VA_ARGS__)), nev)

MH_TEST(capture_bad_records)
{
    /* Tags. */
    CHECK_EQ_INT(
        EXPECT_ERROR(MH_EFORMAT, "record 0x05 at offset", 0x04, 0, 0x05), 2);
    EXPECT_ERROR(MH_EFORMAT, "invalid tag 0x00", 0x00);
    EXPECT_ERROR(MH_EFORMAT, "unknown fixed-layout tag", 0x3f, 0, 0);
    /* Records running past the chunk. */
    CHECK_EQ_INT(EXPECT_ERROR(MH_EFORMAT, "record 0x01 at offset", 0x04, 2,
                              0x01, 0, 0x80),
                 2);
    EXPECT_ERROR(MH_EFORMAT, "runs past the end of its chunk", 0x04);
    EXPECT_ERROR(MH_EFORMAT, "runs past the end of its chunk", 0x02, 0, 1);
    EXPECT_ERROR(MH_EFORMAT, "record 0x45 at offset", 0x45, 7, 1, 2, 3);
    EXPECT_ERROR(MH_EFORMAT, "runs past the end of its chunk", 0x70, 1);
    EXPECT_ERROR(MH_EFORMAT, "runs past the end of its chunk", 0x70);
    /* Fields missing inside a sized record's body. */
    EXPECT_ERROR(MH_EFORMAT, "is shorter than its fields", 0x45, 2, 1, 2);
    EXPECT_ERROR(MH_EFORMAT, "is shorter than its fields", 0x41, 3, 1, 5, 'a');
    /* Varints over 64 bits. */
    EXPECT_ERROR(MH_EFORMAT, "longer than 64 bits", 0x04, 0xff, 0xff, 0xff,
                 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f);
    EXPECT_ERROR(MH_EFORMAT, "longer than 64 bits", 0x04, 0xff, 0xff, 0xff,
                 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01);
    /* A second HEADER. */
    EXPECT_ERROR(MH_EFORMAT, "second HEADER", 0x40, 0);
    /* Unknown sized records are skipped, known ones keep extra bytes. */
    EXPECT_OK(2, 0x04, 0, 0x90, 3, 0xff, 0xff, 0x01, 0x04, 0);
    EXPECT_OK(1, 0x41, 4, 1, 1, 'a', 0x99, 0x45, 7, 1, 2, 3, 4, 5, 6, 0xee);
    EXPECT_OK(0, 0xff, 0, 0x40 + 0x3f, 1, 0);
}

MH_TEST(capture_bad_references)
{
    EXPECT_ERROR(MH_EFORMAT, "references undefined stack 99", 0x01, 99, 1, 0);
    EXPECT_ERROR(MH_EFORMAT, "references undefined string 1", 0x42, 4, 1, 1, 1,
                 0);
    EXPECT_ERROR(MH_EFORMAT, "references undefined code 2", 0x41, 2, 1, 0,
                 0x42, 4, 1, 1, 1, 0, 0x43, 4, 1, 2, 0, 0);
    EXPECT_ERROR(MH_EFORMAT, "references undefined frame 7", 0x41, 2, 1, 0,
                 0x42, 4, 1, 1, 1, 0, 0x43, 4, 1, 1, 0, 0, 0x44, 4, 1, 2, 1,
                 7);
    /* A reference to id 0 is never defined. */
    EXPECT_ERROR(MH_EFORMAT, "references undefined string 0", 0x41, 2, 1, 0,
                 0x42, 4, 1, 0, 1, 0);
    /* A stack referencing a frame defined later is an error too. */
    EXPECT_ERROR(MH_EFORMAT, "references undefined frame 1", 0x44, 3, 1, 1, 1);
    /* Duplicates and id 0. */
    EXPECT_ERROR(MH_EFORMAT, "defines string 1 twice", 0x41, 2, 1, 0, 0x41, 3,
                 1, 1, 'x');
    EXPECT_ERROR(MH_EFORMAT, "defines string id 0", 0x41, 2, 0, 0);
    EXPECT_ERROR(MH_EFORMAT, "defines stack id 0", 0x44, 3, 0, 1, 1);
    /* Depth limits. */
    EXPECT_ERROR(MH_EFORMAT, "depth 0", 0x41, 2, 1, 0, 0x42, 4, 1, 1, 1, 0,
                 0x43, 4, 1, 1, 0, 0, 0x44, 2, 1, 0);
    EXPECT_ERROR(MH_EFORMAT, "depth 1025", 0x41, 2, 1, 0, 0x42, 4, 1, 1, 1, 0,
                 0x43, 4, 1, 1, 0, 0, 0x44, 4, 1, 0x81, 0x08, 1);
    /* 32-bit fields. */
    EXPECT_ERROR(MH_EFORMAT, "over 32 bits", 0x41, 2, 1, 0, 0x42, 8, 1, 1, 1,
                 0x80, 0x80, 0x80, 0x80, 0x10);
    /* A 64-bit id is fine. */
    EXPECT_OK(1, 0x41, 10, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
              0x01, 0, 0x42, 20, 1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
              0x80, 0x01, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01,
              0, 0x43, 4, 1, 1, 0, 0, 0x44, 3, 1, 1, 1, 0x01, 1, 0, 0);
}

MH_TEST(capture_string_limit)
{
    size_t n = MH_CAP_STR_MAX + 1;
    struct mh_buf p;
    mh_buf_init(&p, 1u << 20);
    char *s = calloc(1, n);
    CHECK(s);
    memset(s, 'x', n);
    /* The writer refuses it... */
    CHECK_EQ_INT(mh_cap_put_string(&p, 1, s, n), MH_EINVAL);
    CHECK_EQ_INT(p.len, 0);
    /* ...and the reader too. */
    CHECK_EQ_INT(mh_buf_put_u8(&p, MH_REC_STRING), MH_OK);
    CHECK_EQ_INT(mh_buf_put_uvarint(&p, 1 + 3 + n), MH_OK);
    CHECK_EQ_INT(mh_buf_put_uvarint(&p, 1), MH_OK);
    CHECK_EQ_INT(mh_buf_put_str(&p, s, n), MH_OK);
    expect_error(p.data, p.len, MH_EFORMAT, "over the 64 KiB limit");
    /* The largest allowed string round-trips. */
    mh_buf_reset(&p);
    CHECK_EQ_INT(mh_cap_put_string(&p, 1, s, n - 1), MH_OK);
    CHECK_EQ_INT(mh_cap_put_marker(&p, 5, MH_MARK_USER, s, n - 1), MH_OK);
    CHECK_EQ_INT(mh_cap_put_marker(&p, 5, MH_MARK_USER, s, n), MH_EINVAL);
    expect_ok(p.data, p.len, 1);
    free(s);
    mh_buf_release(&p);
}

/* REQUEST, TAG and FINDING: what they must hold, and errors that name
 * the record and its offset. */
MH_TEST(capture_web_records)
{
    /* Well-formed, with trailing bytes from a newer writer. */
    EXPECT_OK(1, 0x48, 6, 1, 2, 3, 2, 'a', 'b');
    EXPECT_OK(1, 0x48, 8, 1, 2, 3, 2, 'a', 'b', 0x99, 0x01);
    EXPECT_OK(1, 0x48, 5, 0xff, 0x01, 0, 0, 0);
    EXPECT_OK(1, 0x4a, 11, 1, 0, 1, 'x', 1, 'f', 7, 0, 0, 0, 0);
    EXPECT_OK(1, 0x4a, 13, 1, 0, 1, 'x', 1, 'f', 7, 0, 0, 0, 0, 0x42, 0x42);
    EXPECT_OK(0, 0x49, 3, 5, 0xaa, 0xbb);
    EXPECT_OK(0, 0x49, 1, 0);
    /* Id 0, an empty finding id, a line over 32 bits. */
    CHECK_EQ_INT(EXPECT_ERROR(MH_EFORMAT, "record 0x48 at offset", 0x04, 0,
                              0x48, 4, 0, 0, 0, 0),
                 2);
    EXPECT_ERROR(MH_EFORMAT, "is a request with id 0", 0x48, 4, 0, 0, 0, 0);
    EXPECT_ERROR(MH_EFORMAT, "is a finding with an empty id", 0x4a, 10, 1, 0,
                 0, 1, 'f', 7, 0, 0, 0, 0);
    EXPECT_ERROR(MH_EFORMAT, "has line 4294967296, over 32 bits", 0x4a, 15, 1,
                 0, 1, 'x', 1, 'f', 0x80, 0x80, 0x80, 0x80, 0x10, 0, 0, 0, 0);
    /* Cut short inside their bodies, or running past the chunk. */
    CHECK_EQ_INT(EXPECT_ERROR(MH_EFORMAT, "is shorter than its fields", 0x04,
                              0, 0x04, 0, 0x48, 3, 1, 2, 3),
                 4);
    EXPECT_ERROR(MH_EFORMAT, "is shorter than its fields", 0x48, 5, 1, 2, 3, 5,
                 'a');
    EXPECT_ERROR(MH_EFORMAT, "is shorter than its fields", 0x4a, 10, 1, 0, 1,
                 'x', 1, 'f', 7, 0, 0, 0);
    EXPECT_ERROR(MH_EFORMAT, "is shorter than its fields", 0x49, 0);
    EXPECT_ERROR(MH_EFORMAT, "runs past the end of its chunk", 0x48, 9, 1);
    EXPECT_ERROR(MH_EFORMAT, "runs past the end of its chunk", 0x49, 2, 5);
    EXPECT_ERROR(MH_EFORMAT, "longer than 64 bits", 0x49, 10, 0xff, 0xff,
                 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f);
    EXPECT_ERROR(MH_EFORMAT, "has a string of", 0x48, 7, 1, 2, 3, 0x81, 0x80,
                 0x04, 'a');
    /* Before the HEADER, like every other record. */
    struct mh_buf file;
    mh_buf_init(&file, 1024);
    CHECK_EQ_INT(mh_cap_put_file_header(&file), MH_OK);
    CHECK_EQ_INT(mh_cap_chunk_seal(&file, BYTES(0x49, 1, 3), 3, 0, NULL),
                 MH_OK);
    struct mh_cap_reader r;
    CHECK_EQ_INT(parse_copy(&r, file.data, file.len, NULL), MH_EFORMAT);
    CHECK(strstr(r.error, "comes before the HEADER record") != NULL);
    mh_cap_reader_release(&r);
    mh_buf_release(&file);

    /* TAG applies to the ALLOCs after it, until the next TAG. */
    static const uint8_t tags[] = {0x01, 0, 8, 2,  0x49, 1, 5,    0x01,
                                   0,    8, 2, 0x04, 0,  0x49, 2,  0x80,
                                   0x01, 0x02, 0, 8, 2,  0x49, 1,  0,
                                   0x03, 0, 8, 2};
    capture_with(&file, tags, sizeof(tags));
    struct evlog log = {0};
    CHECK_EQ_INT(parse_copy(&r, file.data, file.len, &log), MH_OK);
    CHECK_EQ_INT(log.n, 5);
    CHECK(log.ev[0].u.alloc.request == 0);
    CHECK(log.ev[1].u.alloc.request == 5);
    CHECK_EQ_INT(log.ev[2].kind, MH_EV_FREE);
    CHECK(log.ev[3].u.alloc.request == 128);
    CHECK(log.ev[4].u.alloc.request == 0);
    evlog_free(&log);
    mh_cap_reader_release(&r);
    mh_buf_release(&file);
}

MH_TEST(capture_web_writer_rejects)
{
    struct mh_buf b;
    mh_buf_init(&b, 1u << 20);
    char *s = calloc(1, MH_CAP_STR_MAX + 1);
    CHECK(s);
    struct mh_cap_request rq = {1, 0, 0, {s, MH_CAP_STR_MAX + 1}};
    CHECK_EQ_INT(mh_cap_put_request(&b, &rq), MH_EINVAL);
    rq.endpoint.n = MH_CAP_STR_MAX;
    CHECK_EQ_INT(mh_cap_put_request(&b, &rq), MH_OK);
    rq.id = 0;
    CHECK_EQ_INT(mh_cap_put_request(&b, &rq), MH_EINVAL);
    struct mh_cap_finding f;
    memset(&f, 0, sizeof(f));
    CHECK_EQ_INT(mh_cap_put_finding(&b, &f), MH_EINVAL); /* empty id */
    f.id = (struct mh_str){"x", 1};
    f.detail = (struct mh_str){s, MH_CAP_STR_MAX + 1};
    CHECK_EQ_INT(mh_cap_put_finding(&b, &f), MH_EINVAL);
    f.detail.n = MH_CAP_STR_MAX;
    CHECK_EQ_INT(mh_cap_put_finding(&b, &f), MH_OK);
    /* Both read back: the longest strings are allowed. */
    expect_ok(b.data, b.len, 2);
    free(s);
    mh_buf_release(&b);
}

MH_TEST(capture_header_rules)
{
    struct mh_buf file, c;
    mh_buf_init(&file, 1u << 20);
    mh_buf_init(&c, 1u << 20);
    struct mh_cap_reader r;
    /* A record before the HEADER. */
    CHECK_EQ_INT(mh_cap_put_file_header(&file), MH_OK);
    CHECK_EQ_INT(mh_cap_put_string(&c, 1, "x", 1), MH_OK);
    CHECK_EQ_INT(mh_cap_chunk_seal(&file, c.data, c.len, 0, NULL), MH_OK);
    CHECK_EQ_INT(parse_copy(&r, file.data, file.len, NULL), MH_EFORMAT);
    CHECK(strstr(r.error, "chunk at offset 12: record 0x41 at offset 22 "
                          "comes before the HEADER record"));
    CHECK_EQ_INT(r.error_offset, 22);
    mh_cap_reader_release(&r);
    /* An ALLOC before the HEADER. */
    mh_buf_reset(&file);
    mh_buf_reset(&c);
    struct mh_cap_enc e = {0};
    CHECK_EQ_INT(mh_cap_put_file_header(&file), MH_OK);
    CHECK_EQ_INT(mh_cap_put_alloc(&c, &e, MH_DOMAIN_RAW, 0, 1, 1), MH_OK);
    CHECK_EQ_INT(mh_cap_chunk_seal(&file, c.data, c.len, 0, NULL), MH_OK);
    CHECK_EQ_INT(parse_copy(&r, file.data, file.len, NULL), MH_EFORMAT);
    CHECK(strstr(r.error, "before the HEADER"));
    mh_cap_reader_release(&r);
    /* Sampling with interval 0, unknown mode. */
    struct mh_cap_header h;
    memset(&h, 0, sizeof(h));
    for (int bad = 0; bad < 2; bad++) {
        mh_buf_reset(&file);
        mh_buf_reset(&c);
        h.mode = bad ? 7 : MH_MODE_SAMPLE;
        CHECK_EQ_INT(mh_cap_put_file_header(&file), MH_OK);
        CHECK_EQ_INT(mh_cap_put_header(&c, &h), MH_OK);
        CHECK_EQ_INT(mh_cap_chunk_seal(&file, c.data, c.len, 0, NULL), MH_OK);
        CHECK_EQ_INT(parse_copy(&r, file.data, file.len, NULL), MH_EFORMAT);
        CHECK(strstr(r.error, bad ? "unknown mode 7" : "interval of 0"));
        mh_cap_reader_release(&r);
    }
    /* A header list count larger than the record. */
    mh_buf_reset(&file);
    mh_buf_reset(&c);
    CHECK_EQ_INT(mh_cap_put_file_header(&file), MH_OK);
    static const uint8_t hdr[] = {0x40, 12, 1, 1, 1,    1,    0,
                                  0,    0,  0, 0, 0xff, 0xff, 0x7f};
    CHECK_EQ_INT(mh_cap_chunk_seal(&file, hdr, sizeof(hdr), 0, NULL), MH_OK);
    CHECK_EQ_INT(parse_copy(&r, file.data, file.len, NULL), MH_EFORMAT);
    CHECK(strstr(r.error, "shorter than its fields"));
    mh_cap_reader_release(&r);
    mh_buf_release(&file);
    mh_buf_release(&c);
}

static void
expect_file_error(const uint8_t *buf, size_t len, int code, const char *msg,
                  uint64_t off)
{
    struct mh_cap_reader r;
    int rc = parse_copy(&r, buf, len, NULL);
    if (rc != code || !strstr(r.error, msg))
        fprintf(stderr, "rc %d '%s'\n", rc, r.error);
    CHECK_EQ_INT(rc, code);
    CHECK(strstr(r.error, msg) != NULL);
    CHECK_EQ_INT(r.error_offset, off);
    mh_cap_reader_release(&r);
}

MH_TEST(capture_bad_framing)
{
    struct mh_buf file;
    capture_with(&file, BYTES(0x04, 0), 2);
    size_t c2 = second_chunk(&file);
    uint8_t *d = file.data;

    expect_file_error(d, 0, MH_ETRUNC, "capture is empty", 0);
    expect_file_error(d, 5, MH_ETRUNC, "inside its 12-byte file header", 5);
    d[2] = 'X';
    expect_file_error(d, file.len, MH_EFORMAT, "not a memhound capture", 0);
    expect_file_error(d, 3, MH_EFORMAT, "not a memhound capture", 0);
    d[2] = 'H';
    d[8] = 2;
    expect_file_error(d, file.len, MH_EFORMAT,
                      "offset 8: unsupported format version 2", 8);
    d[8] = 1;
    d[11] = 1;
    expect_file_error(d, file.len, MH_EFORMAT, "unknown file flags 0x0100",
                      10);
    d[11] = 0;

    char msg[128];
    d[c2] = 'J';
    snprintf(msg, sizeof(msg),
             "offset %zu: expected a chunk (tag 0x4b), found byte 0x4a", c2);
    expect_file_error(d, file.len, MH_EFORMAT, msg, c2);
    /* Even a one-byte tail must start like a chunk. */
    expect_file_error(d, c2 + 1, MH_EFORMAT, "expected a chunk", c2);
    d[c2] = MH_CAP_CHUNK_TAG;
    d[c2 + 9] = 0x02;
    snprintf(msg, sizeof(msg), "chunk at offset %zu: unknown chunk flags 0x02",
             c2);
    expect_file_error(d, file.len, MH_EFORMAT, msg, c2);
    d[c2 + 9] = 0;
    d[c2 + 4] = 0x05; /* length 80 MiB + 2 */
    expect_file_error(d, file.len, MH_EFORMAT, "over the 64 MiB limit", c2);
    d[c2 + 4] = 0;
    d[c2 + 1] = 3; /* one byte longer than the file */
    struct mh_cap_reader r;
    CHECK_EQ_INT(parse_copy(&r, d, file.len, NULL), MH_OK);
    CHECK(r.truncated);
    CHECK_EQ_INT(r.truncated_at, c2);
    mh_cap_reader_release(&r);
    mh_buf_release(&file);
}

/* A chunk whose compressed payload is `raw`'s zstd frame behind a
 * declared length. */
static void
zstd_chunk(struct mh_buf *file, uint64_t declared, const void *raw, size_t n,
           const void *extra, size_t nextra)
{
    uint8_t z[4096];
    size_t zn = ZSTD_compress(z, sizeof(z), raw, n, 3);
    CHECK(!ZSTD_isError(zn));
    struct mh_buf p;
    mh_buf_init(&p, 1u << 20);
    CHECK_EQ_INT(mh_buf_put_uvarint(&p, declared), MH_OK);
    CHECK_EQ_INT(mh_buf_put(&p, z, zn), MH_OK);
    CHECK_EQ_INT(mh_buf_put(&p, extra, nextra), MH_OK);
    size_t at = file->len;
    CHECK_EQ_INT(mh_cap_chunk_seal(file, p.data, p.len, 0, NULL), MH_OK);
    /* Flag it compressed; the CRC covers only the payload. */
    file->data[at + 9] = MH_CAP_CHUNK_ZSTD;
    mh_buf_release(&p);
}

static void
expect_zstd(uint64_t declared, const void *raw, size_t n, const void *extra,
            size_t nextra, int code, const char *msg)
{
    struct mh_buf file;
    capture_with(&file, NULL, 0);
    size_t at = file.len;
    zstd_chunk(&file, declared, raw, n, extra, nextra);
    struct mh_cap_reader r;
    struct evlog log = {0};
    int rc = parse_copy(&r, file.data, file.len, &log);
    if (rc != code || (msg && !strstr(r.error, msg)))
        fprintf(stderr, "rc %d '%s'\n", rc, r.error);
    CHECK_EQ_INT(rc, code);
    if (msg) {
        CHECK(strstr(r.error, msg) != NULL);
        CHECK_EQ_INT(r.error_offset, at);
    }
    evlog_free(&log);
    mh_cap_reader_release(&r);
    mh_buf_release(&file);
}

MH_TEST(capture_bad_zstd)
{
    uint8_t raw[300];
    for (size_t i = 0; i < sizeof(raw); i += 2) {
        raw[i] = MH_REC_FREE;
        raw[i + 1] = 0;
    }
    expect_zstd(sizeof(raw), raw, sizeof(raw), NULL, 0, MH_OK, NULL);
    expect_zstd(sizeof(raw) + 1, raw, sizeof(raw), NULL, 0, MH_EFORMAT,
                "does not hold the 301 bytes");
    expect_zstd(sizeof(raw), raw, sizeof(raw), "xy", 2, MH_EFORMAT,
                "2 stray bytes after the zstd frame");
    expect_zstd((uint64_t)MH_CAP_CHUNK_RAW_MAX + 1, raw, sizeof(raw), NULL, 0,
                MH_EFORMAT, "over the 256 MiB limit");
    /* Garbage instead of a frame. */
    struct mh_buf file;
    capture_with(&file, NULL, 0);
    size_t at = file.len;
    CHECK_EQ_INT(
        mh_cap_chunk_seal(&file, BYTES(5, 1, 2, 3, 4, 5, 6), 7, 0, NULL),
        MH_OK);
    file.data[at + 9] = MH_CAP_CHUNK_ZSTD;
    struct mh_cap_reader r;
    CHECK_EQ_INT(parse_copy(&r, file.data, file.len, NULL), MH_EFORMAT);
    CHECK(strstr(r.error, "is not a zstd frame"));
    mh_cap_reader_release(&r);
    mh_buf_release(&file);
    /* A damaged frame. */
    capture_with(&file, NULL, 0);
    at = file.len;
    CHECK_EQ_INT(mh_cap_chunk_seal(&file,
                                   BYTES(5, 0x28, 0xb5, 0x2f, 0xfd, 0xff, 1),
                                   7, 0, NULL),
                 MH_OK);
    file.data[at + 9] = MH_CAP_CHUNK_ZSTD;
    CHECK_EQ_INT(parse_copy(&r, file.data, file.len, NULL), MH_EFORMAT);
    CHECK(strstr(r.error, "zstd frame is damaged"));
    mh_cap_reader_release(&r);
    mh_buf_release(&file);
    /* A compressed payload without even its length. */
    capture_with(&file, NULL, 0);
    CHECK_EQ_INT(mh_cap_chunk_seal(&file, NULL, 0, 0, NULL), MH_OK);
    file.data[file.len - 1] = MH_CAP_CHUNK_ZSTD;
    CHECK_EQ_INT(parse_copy(&r, file.data, file.len, NULL), MH_EFORMAT);
    CHECK(strstr(r.error, "decompressed length"));
    mh_cap_reader_release(&r);
    mh_buf_release(&file);
    /* Errors inside a compressed chunk name the chunk and the place in
     * the payload. */
    uint8_t bad[40];
    memcpy(bad, raw, sizeof(bad));
    bad[20] = 0x05;
    capture_with(&file, NULL, 0);
    at = file.len;
    zstd_chunk(&file, sizeof(bad), bad, sizeof(bad), NULL, 0);
    CHECK_EQ_INT(parse_copy(&r, file.data, file.len, NULL), MH_EFORMAT);
    char want[128];
    snprintf(want, sizeof(want),
             "chunk at offset %zu: record 0x05 at byte 20 of the "
             "decompressed payload",
             at);
    CHECK(strstr(r.error, want) == r.error);
    CHECK_EQ_INT(r.error_offset, at);
    mh_cap_reader_release(&r);
    mh_buf_release(&file);
}

/* ------------------------------------------------------------------ */
/* The writer. */

MH_TEST(capture_writer_rejects)
{
    struct mh_buf b;
    mh_buf_init(&b, 1024);
    uint32_t frames[MH_CAP_DEPTH_MAX + 1];
    for (size_t i = 0; i <= MH_CAP_DEPTH_MAX; i++)
        frames[i] = (uint32_t)i + 1;
    CHECK_EQ_INT(mh_cap_put_string(&b, 0, "x", 1), MH_EINVAL);
    CHECK_EQ_INT(mh_cap_put_code(&b, 1, 0, 1, 1), MH_EINVAL);
    CHECK_EQ_INT(mh_cap_put_code(&b, 0, 1, 1, 1), MH_EINVAL);
    CHECK_EQ_INT(mh_cap_put_frame(&b, 1, 0, 1, 1), MH_EINVAL);
    CHECK_EQ_INT(mh_cap_put_stack(&b, 1, 0, frames), MH_EINVAL);
    CHECK_EQ_INT(mh_cap_put_stack(&b, 1, MH_CAP_DEPTH_MAX + 1, frames),
                 MH_EINVAL);
    frames[3] = 0;
    CHECK_EQ_INT(mh_cap_put_stack(&b, 1, 5, frames), MH_EINVAL);
    struct mh_cap_header h;
    memset(&h, 0, sizeof(h));
    h.argc = 1; /* argv NULL */
    CHECK_EQ_INT(mh_cap_put_header(&b, &h), MH_EINVAL);
    CHECK_EQ_INT(b.len, 0);
    /* A full depth stack is fine (and bigger than this buffer). */
    frames[3] = 4;
    CHECK_EQ_INT(mh_cap_put_stack(&b, 1, MH_CAP_DEPTH_MAX, frames),
                 MH_ETOOBIG);
    CHECK_EQ_INT(b.len, 0);
    mh_buf_release(&b);
    mh_buf_init(&b, 1 << 20);
    CHECK_EQ_INT(mh_cap_put_stack(&b, 1, MH_CAP_DEPTH_MAX, frames), MH_OK);
    mh_buf_release(&b);
}

/* Every encoder, given a buffer one byte too small for its record,
 * appends nothing; given exactly enough, appends the record. */
static int
put_kind(struct mh_buf *b, int kind)
{
    static const uint32_t fr[] = {1, 200, 70000};
    struct mh_cap_enc e = {0x1000};
    struct mh_cap_timeline t = {1, 2, 3, 4, 5, 6};
    struct mh_cap_header h;
    memset(&h, 0, sizeof(h));
    h.python = (struct mh_str){"3.11", 4};
    h.argc = 2;
    h.argv = sample_argv;
    switch (kind) {
    case 0:
        return mh_cap_put_alloc(b, &e, MH_DOMAIN_OBJ, 300, 5000, 0x10);
    case 1:
        return mh_cap_put_free(b, &e, 0xffff0000);
    case 2:
        return mh_cap_put_header(b, &h);
    case 3:
        return mh_cap_put_string(b, 70000, "hello", 5);
    case 4:
        return mh_cap_put_code(b, 1, 2, 3, 4);
    case 5:
        return mh_cap_put_frame(b, 1, 2, 3, 400);
    case 6:
        return mh_cap_put_stack(b, 9, 3, fr);
    case 7:
        return mh_cap_put_timeline(b, &t);
    case 8:
        return mh_cap_put_marker(b, 1, 2, "abc", 3);
    case 9:
        return mh_cap_put_end(b, 1, 2, 3, 4);
    case 10:
        return mh_cap_put_file_header(b);
    }
    return MH_EINVAL;
}

MH_TEST(capture_writer_all_or_nothing)
{
    for (int kind = 0; kind <= 10; kind++) {
        struct mh_buf b;
        mh_buf_init(&b, 4096);
        CHECK_EQ_INT(put_kind(&b, kind), MH_OK);
        size_t size = b.len;
        mh_buf_release(&b);
        for (size_t room = 0; room < size; room++) {
            /* Some bytes already there, `room` free before the cap. */
            mh_buf_init(&b, 3 + room);
            CHECK_EQ_INT(mh_buf_put(&b, "abc", 3), MH_OK);
            CHECK_EQ_INT(put_kind(&b, kind), MH_ETOOBIG);
            CHECK_EQ_INT(b.len, 3);
            mh_buf_release(&b);
        }
        mh_buf_init(&b, size);
        CHECK_EQ_INT(put_kind(&b, kind), MH_OK);
        CHECK_EQ_INT(b.len, size);
        mh_buf_release(&b);
    }
    /* The delta state moves only when a record was written. */
    struct mh_buf b;
    mh_buf_init(&b, 2);
    struct mh_cap_enc e = {0x1000};
    CHECK_EQ_INT(mh_cap_put_free(&b, &e, 0x123456789), MH_ETOOBIG);
    CHECK(e.last_addr == 0x1000);
    CHECK_EQ_INT(mh_cap_put_free(&b, &e, 0x1001), MH_OK);
    CHECK(e.last_addr == 0x1001);
    CHECK_EQ_INT(b.data[1], 2); /* zigzag(+1) */
    mh_buf_release(&b);
}

MH_TEST(capture_seal)
{
    struct mh_buf out, scratch;
    mh_buf_init(&out, 1u << 30);
    mh_buf_init(&scratch, MH_CAP_CHUNK_MAX);
    /* Incompressible: stored even when asked to compress. */
    uint8_t rnd[1000];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof(rnd); i++) {
        x = x * 1103515245 + 12345;
        rnd[i] = (uint8_t)(x >> 16);
    }
    CHECK_EQ_INT(mh_cap_chunk_seal(&out, rnd, sizeof(rnd), 19, &scratch),
                 MH_OK);
    CHECK_EQ_INT(out.len, 10 + sizeof(rnd));
    CHECK_EQ_INT(out.data[0], MH_CAP_CHUNK_TAG);
    CHECK_EQ_INT(out.data[9], 0);
    CHECK(!memcmp(out.data + 10, rnd, sizeof(rnd)));
    uint32_t crc = mh_crc32(0, rnd, sizeof(rnd));
    CHECK(out.data[5] == (uint8_t)crc && out.data[8] == (uint8_t)(crc >> 24));
    /* Compressible and a level: compressed. Level 0: stored. */
    uint8_t zeros[1000] = {0};
    mh_buf_reset(&out);
    CHECK_EQ_INT(mh_cap_chunk_seal(&out, zeros, sizeof(zeros), 1, &scratch),
                 MH_OK);
    CHECK_EQ_INT(out.data[9], MH_CAP_CHUNK_ZSTD);
    CHECK(out.len < 100);
    mh_buf_reset(&out);
    CHECK_EQ_INT(mh_cap_chunk_seal(&out, zeros, sizeof(zeros), 0, &scratch),
                 MH_OK);
    CHECK_EQ_INT(out.data[9], 0);
    /* A scratch buffer too small to help: stored, not failed. */
    struct mh_buf tiny;
    mh_buf_init(&tiny, 4);
    mh_buf_reset(&out);
    CHECK_EQ_INT(mh_cap_chunk_seal(&out, zeros, sizeof(zeros), 1, &tiny),
                 MH_OK);
    CHECK_EQ_INT(out.data[9], 0);
    /* No room in `out`: nothing appended. */
    struct mh_buf small;
    mh_buf_init(&small, 100);
    CHECK_EQ_INT(mh_buf_put(&small, "abc", 3), MH_OK);
    CHECK_EQ_INT(mh_cap_chunk_seal(&small, rnd, 90, 0, NULL), MH_ETOOBIG);
    CHECK_EQ_INT(small.len, 3);
    CHECK_EQ_INT(mh_cap_chunk_seal(&small, rnd, 87, 0, NULL), MH_OK);
    CHECK_EQ_INT(small.len, 100);
    /* Over the decompressed limit: refused before reading the payload. */
    CHECK_EQ_INT(mh_cap_chunk_seal(&out, rnd, (size_t)MH_CAP_CHUNK_RAW_MAX + 1,
                                   1, &scratch),
                 MH_ETOOBIG);
    CHECK_EQ_INT(mh_crc32(0, NULL, 0), 0);
    CHECK(mh_crc32(0, (const uint8_t *)"123456789", 9) == 0xcbf43926);
    CHECK(mh_crc32(mh_crc32(0, (const uint8_t *)"1234", 4),
                   (const uint8_t *)"56789", 5) == 0xcbf43926);
    mh_buf_release(&out);
    mh_buf_release(&scratch);
    mh_buf_release(&tiny);
    mh_buf_release(&small);
}

static int
count_visit(void *ctx, const struct mh_cap_event *ev)
{
    (void)ev;
    (*(uint64_t *)ctx)++;
    return 0;
}

/* A payload over 64 MiB fits a chunk only compressed. */
MH_TEST(capture_big_chunk)
{
    size_t n = (size_t)MH_CAP_CHUNK_MAX + 2;
    uint8_t *payload = malloc(n);
    CHECK(payload);
    for (size_t i = 0; i < n; i += 2) {
        payload[i] = MH_REC_FREE;
        payload[i + 1] = 0;
    }
    struct gen g;
    gen_init(&g, 1);
    gen_header(&g);
    gen_seal(&g);
    CHECK_EQ_INT(g.rc, MH_OK);
    CHECK_EQ_INT(mh_cap_chunk_seal(&g.file, payload, n, 0, &g.scratch),
                 MH_ETOOBIG);
    CHECK_EQ_INT(mh_cap_chunk_seal(&g.file, payload, n, 1, &g.scratch), MH_OK);
    struct mh_cap_reader r;
    mh_cap_reader_init(&r);
    uint64_t count = 0;
    CHECK_EQ_INT(
        mh_cap_parse(&r, g.file.data, g.file.len, count_visit, &count), MH_OK);
    CHECK(count == n / 2);
    mh_cap_reader_release(&r);
    /* Incompressible and over 64 MiB: no chunk can hold it. */
    uint32_t x = 1;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245 + 12345;
        payload[i] = (uint8_t)(x >> 16);
    }
    size_t before = g.file.len;
    CHECK_EQ_INT(mh_cap_chunk_seal(&g.file, payload, n, 1, &g.scratch),
                 MH_ETOOBIG);
    CHECK_EQ_INT(g.file.len, before);
    free(payload);
    gen_release(&g);
}

/* ------------------------------------------------------------------ */
/* Fault injection: allocation number `fail_at` fails, for every N. */

MH_TEST(capture_fault_injection_writer)
{
    long n;
    for (n = 1;; n++) {
        struct faulty f;
        faulty_install(&f, n);
        struct gen g;
        gen_init(&g, 3);
        gen_sample(&g, 200);
        int rc = g.rc;
        size_t len = g.file.len;
        /* The caller's test bookkeeping may hold a partial state; the
         * buffers are all the writer has. */
        mh_buf_release(&g.file);
        mh_buf_release(&g.chunk);
        mh_buf_release(&g.scratch);
        evlog_free(&g.want);
        long calls = f.calls;
        faulty_remove(&f);
        CHECK(rc == MH_OK || rc == MH_ENOMEM);
        if (calls < n) {
            CHECK_EQ_INT(rc, MH_OK);
            CHECK(len > 0);
            break;
        }
    }
    CHECK(n > 5);
}

MH_TEST(capture_fault_injection_reader)
{
    for (int level = 0; level <= 3; level += 3) {
        struct gen g;
        gen_init(&g, level);
        gen_sample(&g, 200);
        CHECK_EQ_INT(g.rc, MH_OK);
        long n;
        for (n = 1;; n++) {
            struct faulty f;
            faulty_install(&f, n);
            struct mh_cap_reader r;
            uint64_t count = 0;
            mh_cap_reader_init(&r);
            int rc =
                mh_cap_parse(&r, g.file.data, g.file.len, count_visit, &count);
            if (rc == MH_OK)
                check_sample_tables(&r);
            else
                CHECK(strstr(r.error, "out of memory") != NULL);
            mh_cap_reader_release(&r);
            faulty_remove(&f);
            if (rc != MH_OK && rc != MH_ENOMEM)
                fprintf(stderr, "N=%ld: rc %d\n", n, rc);
            CHECK(rc == MH_OK || rc == MH_ENOMEM);
            if (f.calls < n) {
                CHECK_EQ_INT(rc, MH_OK);
                CHECK(count == g.want.n);
                break;
            }
        }
        CHECK(n > 5);
        gen_release(&g);
    }
}

/* ------------------------------------------------------------------ */
/* Version-1 fixtures under tests/data: written when missing, then read
 * back through mh_file_map() and checked exactly. They are what a later
 * reader must still read. */

static char *
data_path(char *out, size_t n, const char *name)
{
    /* __FILE__ is tests/c/test_capture.c as the Makefile compiles it. */
    const char *here = __FILE__;
    const char *slash = strrchr(here, '/');
    size_t dir = slash ? (size_t)(slash - here) : 0;
    snprintf(out, n, "%.*s%s../data/%s", (int)dir, here, dir ? "/" : "", name);
    return out;
}

static void
write_fixture(const char *path, const uint8_t *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        fprintf(stderr, "cannot create '%s': %s\n", path, strerror(errno));
    CHECK(f != NULL);
    CHECK_EQ_INT(fwrite(p, 1, n, f), n);
    CHECK_EQ_INT(fclose(f), 0);
    fprintf(stderr, "wrote fixture %s\n", path);
}

static void
check_fixture(const char *name, int level, int cut_last,
              void (*gen)(struct gen *, int))
{
    char path[512];
    data_path(path, sizeof(path), name);
    struct gen g;
    gen_init(&g, level);
    gen(&g, 60);
    CHECK_EQ_INT(g.rc, MH_OK);
    size_t len = g.file.len;
    if (cut_last)
        len = g.chunk_end[g.nchunks - 2] + 7;
    struct stat st;
    if (stat(path, &st) != 0)
        write_fixture(path, g.file.data, len);

    struct mh_file f;
    int rc = mh_file_map(&f, path, 0, &mh_chunk_capture_input);
    if (rc)
        fprintf(stderr, "%s\n", f.error);
    CHECK_EQ_INT(rc, MH_OK);
    struct mh_cap_reader r;
    struct evlog log = {0};
    mh_cap_reader_init(&r);
    rc = mh_cap_parse(&r, f.data, f.len, log_visit, &log);
    if (rc)
        fprintf(stderr, "%s: %s\n", path, r.error);
    CHECK_EQ_INT(rc, MH_OK);
    check_sample_tables(&r);
    CHECK(r.header.run_id == 0); /* written before run ids */
    if (cut_last) {
        CHECK(r.truncated);
        CHECK_EQ_INT(r.truncated_at, g.chunk_end[g.nchunks - 2]);
        CHECK_EQ_INT(r.chunks, g.nchunks - 1);
        CHECK(!r.clean_end);
        check_events(&log, &g.want, g.events_upto[g.nchunks - 2]);
    } else {
        CHECK(!r.truncated);
        CHECK(r.clean_end);
        CHECK_EQ_INT(r.chunks, g.nchunks);
        check_events(&log, &g.want, g.want.n);
    }
    if (level) {
        /* The fixture really has compressed chunks. */
        int any = 0;
        for (size_t off = MH_CAP_FILE_HEADER_LEN; off + 10 <= f.len;) {
            any |= f.data[off + 9] & MH_CAP_CHUNK_ZSTD;
            off += 10 + (f.data[off + 1] | (size_t)f.data[off + 2] << 8 |
                         (size_t)f.data[off + 3] << 16);
        }
        CHECK(any);
    }
    evlog_free(&log);
    mh_cap_reader_release(&r);
    mh_file_unmap(&f);
    gen_release(&g);
}

MH_TEST(capture_fixtures_v1)
{
    check_fixture("v1-small.mhc", 0, 0, gen_sample);
    check_fixture("v1-zstd.mhc", 3, 0, gen_sample);
    check_fixture("v1-truncated.mhc", 0, 1, gen_sample);
    /* REQUEST, TAG and FINDING (added within version 1). */
    check_fixture("v1-web.mhc", 3, 0, gen_web);
}

/* The run id, appended to HEADER within version 1: written when set and
 * read back, every bit of it; absent (the fixtures above) it reads as
 * 0. */
static void
header_run_id_roundtrip(uint64_t run_id)
{
    struct mh_buf file, c;
    mh_buf_init(&file, 1u << 20);
    mh_buf_init(&c, 1u << 20);
    struct mh_cap_header h;
    memset(&h, 0, sizeof(h));
    h.pid = 99;
    h.mode = MH_MODE_SAMPLE;
    h.interval = 4096;
    h.argc = 2;
    h.argv = sample_argv;
    h.run_id = run_id;
    CHECK_EQ_INT(mh_cap_put_file_header(&file), MH_OK);
    CHECK_EQ_INT(mh_cap_put_header(&c, &h), MH_OK);
    CHECK_EQ_INT(mh_cap_chunk_seal(&file, c.data, c.len, 0, NULL), MH_OK);
    struct mh_cap_reader r;
    mh_cap_reader_init(&r);
    int rc = mh_cap_parse(&r, file.data, file.len, NULL, NULL);
    if (rc)
        fprintf(stderr, "%s\n", r.error);
    CHECK_EQ_INT(rc, MH_OK);
    CHECK(r.have_header);
    CHECK(r.header.run_id == run_id);
    CHECK(r.header.pid == 99);
    CHECK_EQ_INT(r.header.argc, 2);
    CHECK_EQ_STR(r.header.argv[1].s, "--serve");
    mh_cap_reader_release(&r);
    mh_buf_release(&c);
    mh_buf_release(&file);
}

MH_TEST(capture_header_run_id)
{
    header_run_id_roundtrip(0xfedcba9876543210ull);
    header_run_id_roundtrip(1);
    header_run_id_roundtrip(0); /* none: the body ends as before */
}

/* ------------------------------------------------------------------ */
/* Parse speed: MH_BENCH=1 build/ctest capture_bench */

static int
sum_visit(void *ctx, const struct mh_cap_event *ev)
{
    uint64_t *s = ctx;
    if (ev->kind == MH_EV_ALLOC)
        *s += ev->u.alloc.size + ev->u.alloc.stack;
    else if (ev->kind == MH_EV_FREE)
        *s ^= ev->u.free.addr;
    return 0;
}

MH_TEST(capture_bench)
{
    if (!getenv("MH_BENCH"))
        return;
    long events =
        getenv("MH_BENCH_EVENTS") ? atol(getenv("MH_BENCH_EVENTS")) : 10000000;
    for (int level = 0; level <= 1; level++) {
        struct mh_buf file, chunk, scratch;
        mh_buf_init(&file, (size_t)1 << 34);
        mh_buf_init(&chunk, MH_CAP_CHUNK_RAW_MAX);
        mh_buf_init(&scratch, MH_CAP_CHUNK_MAX);
        CHECK_EQ_INT(mh_cap_put_file_header(&file), MH_OK);
        struct mh_cap_header h;
        memset(&h, 0, sizeof(h));
        h.mode = MH_MODE_TRACE;
        CHECK_EQ_INT(mh_cap_put_header(&chunk, &h), MH_OK);
        CHECK_EQ_INT(mh_cap_put_string(&chunk, 1, "x.py", 4), MH_OK);
        CHECK_EQ_INT(mh_cap_put_code(&chunk, 1, 1, 1, 1), MH_OK);
        for (uint32_t i = 1; i <= 1000; i++) {
            CHECK_EQ_INT(mh_cap_put_frame(&chunk, i, 1, i, 0), MH_OK);
            CHECK_EQ_INT(mh_cap_put_stack(&chunk, i, 1, &i), MH_OK);
        }
        /* Allocations and frees interleaved the way a service makes
         * them: live blocks come and go, addresses reused. A chunk a
         * second holds about 50k events. */
        struct mh_cap_enc e = {0};
        uint64_t x = 88172645463325252ull;
        uint64_t live[4096] = {0};
        for (long i = 0; i < events / 2; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            size_t slot = x & 4095;
            if (live[slot]) {
                CHECK_EQ_INT(mh_cap_put_free(&chunk, &e, live[slot]), MH_OK);
            } else {
                CHECK_EQ_INT(
                    mh_cap_put_free(&chunk, &e, 0x7f0000000000ull + (x >> 40)),
                    MH_OK);
            }
            live[slot] = 0x7f0000000000ull + ((x >> 20) & 0xffffff0);
            CHECK_EQ_INT(mh_cap_put_alloc(&chunk, &e, MH_DOMAIN_OBJ,
                                          (uint32_t)(x >> 50) % 1000 + 1,
                                          (x >> 30) & 511, live[slot]),
                         MH_OK);
            if (i % 25000 == 24999) {
                CHECK_EQ_INT(mh_cap_chunk_seal(&file, chunk.data, chunk.len,
                                               level, &scratch),
                             MH_OK);
                mh_buf_reset(&chunk);
                memset(&e, 0, sizeof(e));
            }
        }
        CHECK_EQ_INT(
            mh_cap_chunk_seal(&file, chunk.data, chunk.len, level, &scratch),
            MH_OK);
        mh_buf_release(&chunk);
        mh_buf_release(&scratch);
        double best = 1e9;
        for (int rep = 0; rep < 3; rep++) {
            struct mh_cap_reader r;
            mh_cap_reader_init(&r);
            uint64_t sum = 0;
            double t0 = mh_test_now();
            CHECK_EQ_INT(
                mh_cap_parse(&r, file.data, file.len, sum_visit, &sum), MH_OK);
            double t = mh_test_now() - t0;
            if (t < best)
                best = t;
            mh_cap_reader_release(&r);
        }
        printf("parse %ld events (%s, %.1f MB): %.3f s, %.1f ns/event\n",
               events, level ? "zstd level 1" : "stored", file.len / 1e6, best,
               best * 1e9 / (double)events);
        mh_buf_release(&file);
    }
}

/* ------------------------------------------------------------------ */
/* The reader's own limits. The table budget is tested at a smaller bound
 * in every run; the id limit takes 16 M records (30 s, 900 MB): MH_SLOW=1
 * build/ctest capture_limits */

/* A trace-all capture whose records come from `put(i)` until it fails or
 * `count` records are written, in zstd chunks of ~128 MiB. */
static void
big_capture(struct mh_buf *file, uint64_t count,
            int (*put)(struct mh_buf *, uint64_t))
{
    struct mh_buf chunk, scratch;
    mh_buf_init(file, (size_t)1 << 30);
    mh_buf_init(&chunk, MH_CAP_CHUNK_RAW_MAX);
    mh_buf_init(&scratch, MH_CAP_CHUNK_MAX);
    CHECK_EQ_INT(mh_cap_put_file_header(file), MH_OK);
    struct mh_cap_header h;
    memset(&h, 0, sizeof(h));
    h.mode = MH_MODE_TRACE;
    CHECK_EQ_INT(mh_cap_put_header(&chunk, &h), MH_OK);
    for (uint64_t i = 0; i < count; i++) {
        CHECK_EQ_INT(put(&chunk, i), MH_OK);
        if (chunk.len > (128u << 20) || i + 1 == count) {
            CHECK_EQ_INT(
                mh_cap_chunk_seal(file, chunk.data, chunk.len, 1, &scratch),
                MH_OK);
            mh_buf_reset(&chunk);
        }
    }
    mh_buf_release(&chunk);
    mh_buf_release(&scratch);
}

static int
put_empty_string(struct mh_buf *b, uint64_t i)
{
    return mh_cap_put_string(b, (uint32_t)i + 1, "", 0);
}

static int
put_deep_stack(struct mh_buf *b, uint64_t i)
{
    static uint32_t ones[MH_CAP_DEPTH_MAX];
    if (i == 0) {
        for (int k = 0; k < MH_CAP_DEPTH_MAX; k++)
            ones[k] = 1;
        int rc = mh_cap_put_string(b, 1, "f", 1);
        if (rc == MH_OK)
            rc = mh_cap_put_code(b, 1, 1, 1, 1);
        if (rc == MH_OK)
            rc = mh_cap_put_frame(b, 1, 1, 1, 0);
        if (rc)
            return rc;
    }
    return mh_cap_put_stack(b, (uint32_t)i + 1, MH_CAP_DEPTH_MAX, ones);
}

MH_TEST(capture_limits_slow)
{
    if (!getenv("MH_SLOW"))
        return;
    struct mh_buf file;
    struct mh_cap_reader r;
    double t0 = mh_test_now();
    big_capture(&file, (uint64_t)MH_CAP_ID_MAX + 1, put_empty_string);
    mh_cap_reader_init(&r);
    CHECK_EQ_INT(mh_cap_parse(&r, file.data, file.len, NULL, NULL),
                 MH_ETOOBIG);
    CHECK(strstr(r.error, "defines more than 16777216 string ids"));
    CHECK_EQ_INT(r.nstrings, MH_CAP_ID_MAX + 1);
    printf("id limit: %s (%.1f s)\n", r.error, mh_test_now() - t0);
    mh_cap_reader_release(&r);
    mh_buf_release(&file);
}

/* What the tables may hold, at 8 MiB instead of 1 GiB: deep stacks (4 KiB
 * of frame indices each) until the budget says no, at the record that
 * passes it. */
MH_TEST(capture_table_budget)
{
    struct mh_buf file;
    struct mh_cap_reader r;
    big_capture(&file, 5000, put_deep_stack);
    mh_cap_reader_init(&r);
    r.tables_max = (size_t)8 << 20;
    CHECK_EQ_INT(mh_cap_parse(&r, file.data, file.len, NULL, NULL),
                 MH_ETOOBIG);
    CHECK(strstr(r.error, "cannot be stored: the reader's tables would pass "
                          "8 MiB"));
    CHECK(r.nstacks > 1000 && r.nstacks < 2100);
    mh_cap_reader_release(&r);
    /* The default bound holds them all. */
    mh_cap_reader_init(&r);
    CHECK_EQ_INT(mh_cap_parse(&r, file.data, file.len, NULL, NULL), MH_OK);
    CHECK_EQ_INT(r.nstacks, 5001);
    mh_cap_reader_release(&r);
    mh_buf_release(&file);
}

/* TIMELINE's appended allocator fields: written only when set, read
 * back whole; a version-1 record (no fields) reads as alloc 0. */
MH_TEST(capture_timeline_alloc_fields)
{
    struct mh_buf p;
    mh_buf_init(&p, 1 << 16);
    struct mh_cap_timeline old = {1, 2, 3, 4, 5, 6};
    struct mh_cap_timeline t = {7, 8, 9, 10, 11, 12};
    t.alloc = MH_TL_PYMALLOC | MH_TL_MALLOC;
    t.arena_bytes = 1 << 20;
    t.arena_free = 300000;
    t.malloc_arena = 5000000;
    t.malloc_inuse = 4000000;
    t.malloc_free = 1000000;
    t.malloc_mmap = 123456;
    CHECK_EQ_INT(mh_cap_put_timeline(&p, &old), MH_OK);
    CHECK_EQ_INT(p.len, 8); /* tag, length, six one-byte fields */
    CHECK_EQ_INT(mh_cap_put_timeline(&p, &t), MH_OK);
    struct mh_buf file;
    capture_with(&file, p.data, p.len);
    struct mh_cap_reader r;
    struct evlog log = {0};
    CHECK_EQ_INT(parse_copy(&r, file.data, file.len, &log), MH_OK);
    CHECK_EQ_INT(log.n, 2);
    CHECK_EQ_INT(log.ev[0].u.timeline.alloc, 0);
    CHECK_EQ_INT(log.ev[0].u.timeline.dropped, 6);
    const struct mh_cap_timeline *b = &log.ev[1].u.timeline;
    CHECK_EQ_INT(b->alloc, MH_TL_PYMALLOC | MH_TL_MALLOC);
    CHECK_EQ_INT(b->arena_free, 300000);
    CHECK_EQ_INT(b->malloc_free, 1000000);
    CHECK_EQ_INT(b->malloc_mmap, 123456);
    evlog_free(&log);
    mh_cap_reader_release(&r);
    mh_buf_release(&file);
    mh_buf_release(&p);
}

/* ------------------------------------------------------------------ */
/* mh_cap_records_unstack(): what a dying process can write (writer.c). */

struct unstack_seen {
    int allocs, frees, markers;
    uint64_t size[4], addr[4], request[4];
    uint32_t stack[4];
};

static int
unstack_visit(void *ctx, const struct mh_cap_event *ev)
{
    struct unstack_seen *s = ctx;
    if (ev->kind == MH_EV_ALLOC && s->allocs < 4) {
        s->size[s->allocs] = ev->u.alloc.size;
        s->addr[s->allocs] = ev->u.alloc.addr;
        s->request[s->allocs] = ev->u.alloc.request;
        s->stack[s->allocs] = ev->u.alloc.stack;
        s->allocs++;
    } else if (ev->kind == MH_EV_FREE) {
        s->frees++;
    } else if (ev->kind == MH_EV_MARKER) {
        s->markers++;
    }
    return 0;
}

MH_TEST(capture_records_unstack)
{
    struct mh_buf b;
    struct mh_cap_enc e = {0};
    mh_buf_init(&b, 1u << 20);
    /* The file defines no stack: every ALLOC naming one must become 0. */
    CHECK_EQ_INT(mh_cap_put_alloc(&b, &e, MH_DOMAIN_RAW, 0, 100, 0x1000), 0);
    CHECK_EQ_INT(mh_cap_put_alloc(&b, &e, MH_DOMAIN_MEM, 1, 200, 0x2000), 0);
    CHECK_EQ_INT(mh_cap_put_free(&b, &e, 0x1000), 0);
    CHECK_EQ_INT(mh_cap_put_tag(&b, &e, 5), 0);
    CHECK_EQ_INT(mh_cap_put_alloc(&b, &e, MH_DOMAIN_OBJ, 300, 70000, 0x900),
                 0);
    CHECK_EQ_INT(mh_cap_put_marker(&b, 7, MH_MARK_SIGNAL, "15", 2), 0);
    size_t whole = b.len;
    CHECK_EQ_INT(mh_buf_put_u8(&b, MH_REC_ALLOC_RAW), 0); /* cut short */

    /* As written, the file names undefined stacks. */
    struct mh_buf file;
    struct mh_cap_reader r;
    capture_with(&file, b.data, whole);
    mh_cap_reader_init(&r);
    CHECK(mh_cap_parse(&r, file.data, file.len, NULL, NULL) != MH_OK);
    mh_cap_reader_release(&r);
    mh_buf_release(&file);

    uint64_t unstacked = 9, allocs = 9;
    size_t n = mh_cap_records_unstack(b.data, b.len, 0, &unstacked, &allocs);
    CHECK(n < whole); /* stack 300 took two bytes, 0 takes one */
    CHECK_EQ_INT(unstacked, 2);
    CHECK_EQ_INT(allocs, 3);

    struct unstack_seen seen;
    memset(&seen, 0, sizeof(seen));
    capture_with(&file, b.data, n);
    mh_cap_reader_init(&r);
    CHECK_EQ_INT(mh_cap_parse(&r, file.data, file.len, unstack_visit, &seen),
                 MH_OK);
    CHECK_EQ_INT(seen.allocs, 3);
    CHECK_EQ_INT(seen.frees, 1);
    CHECK_EQ_INT(seen.markers, 1);
    const uint64_t size[] = {100, 200, 70000}, addr[] = {0x1000, 0x2000,
                                                         0x900};
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(seen.size[i], size[i]);
        CHECK_EQ_INT(seen.addr[i], addr[i]);
        CHECK_EQ_INT(seen.stack[i], 0);
    }
    CHECK_EQ_INT(seen.request[2], 5);
    mh_cap_reader_release(&r);
    mh_buf_release(&file);

    /* Stacks the file defines are kept as they are. */
    mh_buf_reset(&b);
    e = (struct mh_cap_enc){0};
    CHECK_EQ_INT(mh_cap_put_alloc(&b, &e, MH_DOMAIN_RAW, 3, 1, 0x10), 0);
    uint8_t copy[64];
    memcpy(copy, b.data, b.len);
    CHECK_EQ_INT(mh_cap_records_unstack(b.data, b.len, 3, &unstacked,
                                        &allocs),
                 b.len);
    CHECK(memcmp(copy, b.data, b.len) == 0);
    CHECK_EQ_INT(unstacked, 0);
    CHECK_EQ_INT(allocs, 1);
    mh_buf_release(&b);
}
