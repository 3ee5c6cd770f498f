/* libFuzzer target for the capture reader (`make fuzz`; seeds in
 * tests/data).
 *
 * Each input is parsed twice, as it is and with its chunks' CRCs made
 * right (fuzz_common.c). After a successful parse the reader's tables
 * are checked for consistency, and what was read is written again with
 * the writer and read back: both reads must agree. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/format/capture_read.h"
#include "../src/format/capture_write.h"
#include "../src/util/mem.h"
#include "fuzz_common.h"

/* The events of one parse; strings (marker texts, requests' endpoints,
 * findings' fields) copied, since they are valid during the visit only. */
struct events {
    struct mh_cap_event *ev;
    size_t n, cap;
    const struct mh_cap_reader *r;
};

/* Replaces *s by a malloc'ed copy. */
static void
copy_str(struct mh_str *s)
{
    char *t = malloc(s->n + 1);
    REQUIRE(t);
    if (s->n)
        memcpy(t, s->s, s->n);
    t[s->n] = '\0';
    s->s = t;
}

static int
collect(void *ctx, const struct mh_cap_event *ev)
{
    struct events *e = ctx;
    const struct mh_cap_reader *r = e->r;
    switch (ev->kind) {
    case MH_EV_ALLOC:
        REQUIRE(ev->u.alloc.domain <= MH_DOMAIN_OBJ);
        REQUIRE(ev->u.alloc.stack < r->nstacks);
        break;
    case MH_EV_REQUEST:
        REQUIRE(ev->u.request.id > 0);
        REQUIRE(ev->u.request.endpoint.n <= MH_CAP_STR_MAX);
        break;
    case MH_EV_FINDING:
        REQUIRE(ev->u.finding.id.n > 0 &&
                ev->u.finding.id.n <= MH_CAP_STR_MAX);
        REQUIRE(ev->u.finding.file.n <= MH_CAP_STR_MAX);
        REQUIRE(ev->u.finding.function.n <= MH_CAP_STR_MAX);
        REQUIRE(ev->u.finding.detail.n <= MH_CAP_STR_MAX);
        break;
    case MH_EV_MARKER:
        REQUIRE(ev->u.marker.kind <= MH_MARK_LAST);
        REQUIRE(ev->u.marker.text.n <= MH_CAP_STR_MAX);
        break;
    default:
        break;
    }
    if (e->n == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 256;
        e->ev = realloc(e->ev, e->cap * sizeof(*e->ev));
        REQUIRE(e->ev);
    }
    struct mh_cap_event *c = &e->ev[e->n];
    *c = *ev;
    switch (ev->kind) {
    case MH_EV_MARKER:
        copy_str(&c->u.marker.text);
        break;
    case MH_EV_REQUEST:
        copy_str(&c->u.request.endpoint);
        break;
    case MH_EV_FINDING:
        copy_str(&c->u.finding.id);
        copy_str(&c->u.finding.file);
        copy_str(&c->u.finding.function);
        copy_str(&c->u.finding.detail);
        break;
    default:
        break;
    }
    e->n++;
    return 0;
}

static void
events_free(struct events *e)
{
    for (size_t i = 0; i < e->n; i++) {
        struct mh_cap_event *c = &e->ev[i];
        switch (c->kind) {
        case MH_EV_MARKER:
            free((char *)c->u.marker.text.s);
            break;
        case MH_EV_REQUEST:
            free((char *)c->u.request.endpoint.s);
            break;
        case MH_EV_FINDING:
            free((char *)c->u.finding.id.s);
            free((char *)c->u.finding.file.s);
            free((char *)c->u.finding.function.s);
            free((char *)c->u.finding.detail.s);
            break;
        default:
            break;
        }
    }
    free(e->ev);
    memset(e, 0, sizeof(*e));
}

static void
check_str(struct mh_str s)
{
    REQUIRE(s.s != NULL);
    REQUIRE(s.n <= MH_CAP_STR_MAX);
    REQUIRE(s.s[s.n] == '\0');
}

static void
check_tables(const struct mh_cap_reader *r)
{
    REQUIRE(r->nstrings >= 1 && r->ncodes >= 1);
    REQUIRE(r->nframes >= 1 && r->nstacks >= 1);
    for (uint32_t i = 0; i < r->nstrings; i++)
        check_str(r->strings[i]);
    for (uint32_t i = 1; i < r->ncodes; i++) {
        REQUIRE(r->codes[i].filename >= 1);
        REQUIRE(r->codes[i].filename < r->nstrings);
        REQUIRE(r->codes[i].name >= 1 && r->codes[i].name < r->nstrings);
    }
    for (uint32_t i = 1; i < r->nframes; i++)
        REQUIRE(r->frames[i].code >= 1 && r->frames[i].code < r->ncodes);
    REQUIRE(r->stacks[0].depth == 0);
    for (uint32_t i = 1; i < r->nstacks; i++) {
        const struct mh_cap_stack *s = &r->stacks[i];
        REQUIRE(s->depth >= 1 && s->depth <= MH_CAP_DEPTH_MAX);
        REQUIRE((size_t)s->first + s->depth <= r->nstack_frames);
        for (uint32_t k = 0; k < s->depth; k++) {
            uint32_t f = r->stack_frames[s->first + k];
            REQUIRE(f >= 1 && f < r->nframes);
        }
    }
    if (r->have_header) {
        const struct mh_cap_header *h = &r->header;
        REQUIRE(h->mode <= MH_MODE_TRACE);
        check_str(h->python);
        check_str(h->executable);
        for (uint32_t i = 0; i < h->argc; i++)
            check_str(h->argv[i]);
        for (uint32_t i = 0; i < h->nlib; i++)
            check_str(h->lib_prefixes[i]);
        for (uint32_t i = 0; i < h->npath; i++)
            check_str(h->sys_path[i]);
    }
}

static int
put_event(struct mh_buf *b, struct mh_cap_enc *enc,
          const struct mh_cap_event *ev)
{
    int rc;
    switch (ev->kind) {
    case MH_EV_ALLOC:
        /* One chunk holds what were several: the TAG state carries over
         * where the original's reset, and put_tag writes it back. */
        rc = mh_cap_put_tag(b, enc, ev->u.alloc.request);
        if (rc)
            return rc;
        return mh_cap_put_alloc(b, enc, (enum mh_domain)ev->u.alloc.domain,
                                ev->u.alloc.stack, ev->u.alloc.size,
                                ev->u.alloc.addr);
    case MH_EV_REQUEST:
        return mh_cap_put_request(b, &ev->u.request);
    case MH_EV_FINDING:
        return mh_cap_put_finding(b, &ev->u.finding);
    case MH_EV_FREE:
        return mh_cap_put_free(b, enc, ev->u.free.addr);
    case MH_EV_TIMELINE:
        return mh_cap_put_timeline(b, &ev->u.timeline);
    case MH_EV_MARKER:
        return mh_cap_put_marker(b, ev->u.marker.t_ns, ev->u.marker.kind,
                                 ev->u.marker.text.s, ev->u.marker.text.n);
    case MH_EV_END:
        return mh_cap_put_end(b, ev->u.end.t_ns, ev->u.end.samples,
                              ev->u.end.frees, ev->u.end.dropped);
    }
    return MH_EINVAL;
}

/* Writes what `r` and `e` hold as a new capture, dense indices as ids,
 * in one chunk (compressed when `level`). */
static int
rewrite(const struct mh_cap_reader *r, const struct events *e, int level,
        struct mh_buf *out)
{
    struct mh_buf p, scratch;
    struct mh_cap_enc enc = {0};
    mh_buf_init(&p, MH_CAP_CHUNK_RAW_MAX);
    mh_buf_init(&scratch, MH_CAP_CHUNK_MAX);
    int rc = mh_cap_put_file_header(out);
    if (rc == MH_OK)
        rc = mh_cap_put_header(&p, &r->header);
    for (uint32_t i = 1; rc == MH_OK && i < r->nstrings; i++)
        rc = mh_cap_put_string(&p, i, r->strings[i].s, r->strings[i].n);
    for (uint32_t i = 1; rc == MH_OK && i < r->ncodes; i++)
        rc = mh_cap_put_code(&p, i, r->codes[i].filename, r->codes[i].name,
                             r->codes[i].firstlineno);
    for (uint32_t i = 1; rc == MH_OK && i < r->nframes; i++)
        rc = mh_cap_put_frame(&p, i, r->frames[i].code, r->frames[i].line,
                              r->frames[i].offset);
    for (uint32_t i = 1; rc == MH_OK && i < r->nstacks; i++)
        rc = mh_cap_put_stack(&p, i, r->stacks[i].depth,
                              r->stack_frames + r->stacks[i].first);
    for (size_t i = 0; rc == MH_OK && i < e->n; i++)
        rc = put_event(&p, &enc, &e->ev[i]);
    if (rc == MH_OK)
        rc = mh_cap_chunk_seal(out, p.data, p.len, level, &scratch);
    mh_buf_release(&p);
    mh_buf_release(&scratch);
    return rc;
}

static void
check_same(const struct mh_cap_reader *a, const struct events *ea,
           const struct mh_cap_reader *b, const struct events *eb)
{
    REQUIRE(a->nstrings == b->nstrings && a->ncodes == b->ncodes);
    REQUIRE(a->nframes == b->nframes && a->nstacks == b->nstacks);
    REQUIRE(a->nstack_frames == b->nstack_frames);
    for (uint32_t i = 0; i < a->nstrings; i++)
        REQUIRE(fuzz_same_str(a->strings[i], b->strings[i]));
    REQUIRE(!memcmp(a->codes, b->codes, a->ncodes * sizeof(*a->codes)));
    REQUIRE(!memcmp(a->frames, b->frames, a->nframes * sizeof(*a->frames)));
    REQUIRE(!memcmp(a->stacks, b->stacks, a->nstacks * sizeof(*a->stacks)));
    REQUIRE(a->nstack_frames == 0 ||
            !memcmp(a->stack_frames, b->stack_frames,
                    a->nstack_frames * sizeof(*a->stack_frames)));
    const struct mh_cap_header *ha = &a->header, *hb = &b->header;
    REQUIRE(ha->pid == hb->pid && ha->ppid == hb->ppid);
    REQUIRE(ha->start_ns == hb->start_ns && ha->mode == hb->mode);
    REQUIRE(ha->interval == hb->interval && ha->max_depth == hb->max_depth);
    REQUIRE(ha->fork_parent == hb->fork_parent);
    REQUIRE(fuzz_same_str(ha->python, hb->python));
    REQUIRE(fuzz_same_str(ha->executable, hb->executable));
    REQUIRE(ha->argc == hb->argc && ha->nlib == hb->nlib);
    REQUIRE(ha->npath == hb->npath);
    for (uint32_t i = 0; i < ha->argc; i++)
        REQUIRE(fuzz_same_str(ha->argv[i], hb->argv[i]));
    for (uint32_t i = 0; i < ha->nlib; i++)
        REQUIRE(fuzz_same_str(ha->lib_prefixes[i], hb->lib_prefixes[i]));
    for (uint32_t i = 0; i < ha->npath; i++)
        REQUIRE(fuzz_same_str(ha->sys_path[i], hb->sys_path[i]));
    REQUIRE(a->clean_end == b->clean_end);
    REQUIRE(ea->n == eb->n);
    for (size_t i = 0; i < ea->n; i++) {
        const struct mh_cap_event *x = &ea->ev[i], *y = &eb->ev[i];
        REQUIRE(x->kind == y->kind);
        switch (x->kind) {
        case MH_EV_ALLOC:
            REQUIRE(x->u.alloc.domain == y->u.alloc.domain);
            REQUIRE(x->u.alloc.stack == y->u.alloc.stack);
            REQUIRE(x->u.alloc.size == y->u.alloc.size);
            REQUIRE(x->u.alloc.addr == y->u.alloc.addr);
            REQUIRE(x->u.alloc.request == y->u.alloc.request);
            break;
        case MH_EV_REQUEST:
            REQUIRE(x->u.request.id == y->u.request.id);
            REQUIRE(x->u.request.t_begin_ns == y->u.request.t_begin_ns);
            REQUIRE(x->u.request.t_end_ns == y->u.request.t_end_ns);
            REQUIRE(
                fuzz_same_str(x->u.request.endpoint, y->u.request.endpoint));
            break;
        case MH_EV_FINDING: {
            const struct mh_cap_finding *f = &x->u.finding, *g = &y->u.finding;
            REQUIRE(f->t_ns == g->t_ns && f->request == g->request);
            REQUIRE(fuzz_same_str(f->id, g->id) &&
                    fuzz_same_str(f->file, g->file));
            REQUIRE(f->line == g->line);
            REQUIRE(fuzz_same_str(f->function, g->function));
            REQUIRE(f->count == g->count && f->bytes == g->bytes);
            REQUIRE(fuzz_same_str(f->detail, g->detail));
            break;
        }
        case MH_EV_FREE:
            REQUIRE(x->u.free.addr == y->u.free.addr);
            break;
        case MH_EV_TIMELINE:
            REQUIRE(!memcmp(&x->u.timeline, &y->u.timeline,
                            sizeof(x->u.timeline)));
            break;
        case MH_EV_MARKER:
            REQUIRE(x->u.marker.t_ns == y->u.marker.t_ns);
            REQUIRE(x->u.marker.kind == y->u.marker.kind);
            REQUIRE(fuzz_same_str(x->u.marker.text, y->u.marker.text));
            break;
        case MH_EV_END:
            REQUIRE(!memcmp(&x->u.end, &y->u.end, sizeof(x->u.end)));
            break;
        }
    }
}

void
fuzz_parse_one(const uint8_t *data, size_t size)
{
    struct mh_cap_reader r;
    struct events e = {0};
    mh_cap_reader_init(&r);
    r.inflate_fixed = FUZZ_INFLATE_FIXED;
    e.r = &r;
    int rc = mh_cap_parse(&r, data, size, collect, &e);
    REQUIRE(rc <= 0);
    REQUIRE(memchr(r.error, '\0', sizeof(r.error)) != NULL);
    if (rc < 0) {
        REQUIRE(r.error[0] != '\0');
        REQUIRE(r.error_offset <= size);
        /* a bomb is refused from the chunk headers, before any record */
        REQUIRE(rc != MH_ETOOBIG || r.chunks == 0 ||
                strstr(r.error, "decompression bomb") == NULL);
    } else {
        REQUIRE(!r.truncated || r.truncated_at < size);
        check_tables(&r);
    }
    /* Read what was read back through the writer (kept to inputs whose
     * rewrite stays small, so the fuzzer keeps its pace). */
    if (rc == 0 && r.have_header && e.n < 100000) {
        struct mh_buf out;
        mh_buf_init(&out, (size_t)1 << 28);
        int level = (int)(size & 1) * 3;
        if (rewrite(&r, &e, level, &out) == MH_OK) {
            struct mh_cap_reader r2;
            struct events e2 = {0};
            mh_cap_reader_init(&r2);
            e2.r = &r2;
            int rc2 = mh_cap_parse(&r2, out.data, out.len, collect, &e2);
            REQUIRE(rc2 == 0 && !r2.truncated);
            check_same(&r, &e, &r2, &e2);
            events_free(&e2);
            mh_cap_reader_release(&r2);
        }
        mh_buf_release(&out);
    }
    events_free(&e);
    mh_cap_reader_release(&r);
}
