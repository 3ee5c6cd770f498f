/* Parsing a capture (docs/capture-format.md) from a buffer.
 *
 * The input may be hostile (a fuzzer, a corrupt disk), so every length is
 * checked against what is left before it is used, every loop consumes at
 * least one byte, and everything the reader keeps counts against
 * r->tables_max (MH_CAP_READER_TABLES_MAX by default): a file can make the
 * reader fail, never make it allocate without end.
 *
 * The ALLOC and FREE records are nearly all of a trace-all capture (tens
 * of millions of them), so they are decoded inline with a varint decoder
 * that skips bounds checks when ten bytes are left, and the last stack
 * looked up is remembered (consecutive samples often share it). */
#include <string.h>

#include "../util/arena.h"
#include "../util/budget.h"
#include "../util/buf.h"
#include "../util/compiler.h"
#include "../util/idmap.h"
#include "../util/mem.h"
#include "capture_read.h"
#include "chunk.h"

_Static_assert(MH_CAP_STR_MAX < MH_ARENA_BLOCK, "a string fits a block");

struct mh_cap_reader_priv {
    struct mh_idmap strings, codes, frames, stacks; /* file id -> index */
    size_t strings_cap, codes_cap, frames_cap, stacks_cap, stack_frames_cap;
    struct mh_arena arena; /* every string the reader keeps */
    size_t mem;            /* bytes held in tables, against budget.max */
    struct mh_budget budget;   /* charges mem */
    struct mh_str *lists[3];   /* the header's argv, lib prefixes, sys.path */
    struct mh_chunk_reader ck; /* framing, CRCs, decompression */
};

/* State of one mh_cap_parse() call. */
struct parser {
    struct mh_cap_reader *r;
    struct mh_cap_reader_priv *pv;
    mh_cap_visit_fn visit;
    void *ctx;
    struct mh_parse_err err; /* the reader's error, the record parsed */
    uint64_t last_stack_id;  /* a one-entry cache for ALLOC's stack */
    uint32_t last_stack_idx;
};

void
mh_cap_reader_init(struct mh_cap_reader *r)
{
    memset(r, 0, sizeof(*r));
    r->inflate_fixed = MH_CAP_INFLATE_FIXED;
}

void
mh_cap_reader_release(struct mh_cap_reader *r)
{
    struct mh_cap_reader_priv *pv = r->priv;
    if (pv) {
        mh_idmap_release(&pv->strings);
        mh_idmap_release(&pv->codes);
        mh_idmap_release(&pv->frames);
        mh_idmap_release(&pv->stacks);
        mh_arena_release(&pv->arena);
        for (int i = 0; i < 3; i++)
            mh_free(pv->lists[i]);
        mh_chunk_reader_release(&pv->ck);
        mh_free(pv);
    }
    mh_free(r->strings);
    mh_free(r->codes);
    mh_free(r->frames);
    mh_free(r->stacks);
    mh_free(r->stack_frames);
    uint64_t fixed = r->inflate_fixed;
    size_t tables_max = r->tables_max;
    mh_cap_reader_init(r);
    r->inflate_fixed = fixed;
    r->tables_max = tables_max;
}

/* --- errors --------------------------------------------------------- */

static int
store_fail(struct parser *ps, int rc, const uint8_t *rec, uint8_t tag)
{
    if (rc == MH_ENOMEM)
        return mh_parse_rec_fail(&ps->err, rc, rec, tag,
                                 "cannot be stored: out of memory");
    return mh_parse_rec_fail(
        &ps->err, rc, rec, tag,
        "cannot be stored: the reader's tables would pass "
        "%zu MiB",
        ps->pv->budget.max >> 20);
}

/* --- records -------------------------------------------------------- */

/* Field readers for the record parsers below: on failure they return from
 * the enclosing function with the error. They use `ps`, `rec`, `tag`. */
#define FIELD(q, end, v)                                                      \
    do {                                                                      \
        int rc_ = mh_rd_uv(&(q), (end), (v));                                 \
        if (MH_UNLIKELY(rc_))                                                 \
            return mh_parse_field_fail(&ps->err, rc_, rec, tag, 1);           \
    } while (0)

#define FIELD32(q, end, v, what)                                              \
    do {                                                                      \
        uint64_t x_;                                                          \
        FIELD(q, end, &x_);                                                   \
        if (x_ > UINT32_MAX)                                                  \
            return mh_parse_rec_fail(&ps->err, MH_EFORMAT, rec, tag,          \
                                     "has %s %llu, over 32 bits", (what),     \
                                     (unsigned long long)x_);                 \
        *(v) = (uint32_t)x_;                                                  \
    } while (0)

#define FIELD_STR(q, end, s, n)                                               \
    do {                                                                      \
        int rc_ = mh_parse_str(&ps->err, &(q), (end), rec, tag,               \
                               MH_CAP_STR_MAX, (s), (n));                     \
        if (rc_)                                                              \
            return rc_;                                                       \
    } while (0)

/* Looks up a reference to an id that must be defined. */
#define REF(m, id, out, kind)                                                 \
    do {                                                                      \
        *(out) = mh_idmap_get((m), (id));                                     \
        if (!*(out))                                                          \
            return mh_parse_rec_fail(&ps->err, MH_EFORMAT, rec, tag,          \
                                     "references undefined %s %llu", (kind),  \
                                     (unsigned long long)(id));               \
    } while (0)

static int
header_list(struct parser *ps, const uint8_t **q, const uint8_t *end,
            const uint8_t *rec, uint8_t tag, int which, uint32_t *count,
            const struct mh_str **out)
{
    struct mh_cap_reader_priv *pv = ps->pv;
    uint64_t n;
    FIELD(*q, end, &n);
    /* Each entry takes at least a byte: this bounds the allocation by
     * the record's own size. */
    if (n > (uint64_t)(end - *q))
        return mh_parse_field_fail(&ps->err, MH_ETRUNC, rec, tag, 1);
    *count = (uint32_t)n;
    *out = NULL;
    if (n == 0)
        return MH_OK;
    size_t cap = 0;
    int rc = mh_budget_grow(&pv->budget, (void **)&pv->lists[which], &cap,
                            (size_t)n, sizeof(struct mh_str));
    if (rc)
        return store_fail(ps, rc, rec, tag);
    for (uint64_t i = 0; i < n; i++) {
        const char *s;
        size_t len;
        FIELD_STR(*q, end, &s, &len);
        rc = mh_parse_keep_str(&pv->arena, &pv->budget, s, len,
                               &pv->lists[which][i]);
        if (rc)
            return store_fail(ps, rc, rec, tag);
    }
    *out = pv->lists[which];
    return MH_OK;
}

static int
parse_header(struct parser *ps, const uint8_t *rec, uint8_t tag,
             const uint8_t *q, const uint8_t *end)
{
    struct mh_cap_reader *r = ps->r;
    struct mh_cap_header h;
    memset(&h, 0, sizeof(h));
    const char *s;
    size_t n;
    FIELD(q, end, &h.pid);
    FIELD(q, end, &h.ppid);
    FIELD(q, end, &h.start_ns);
    FIELD32(q, end, &h.mode, "mode");
    FIELD(q, end, &h.interval);
    FIELD32(q, end, &h.max_depth, "max_depth");
    FIELD(q, end, &h.fork_parent);
    if (h.mode != MH_MODE_SAMPLE && h.mode != MH_MODE_TRACE)
        return mh_parse_rec_fail(&ps->err, MH_EFORMAT, rec, tag,
                                 "has unknown mode %u", h.mode);
    if (h.mode == MH_MODE_SAMPLE && h.interval == 0)
        return mh_parse_rec_fail(
            &ps->err, MH_EFORMAT, rec, tag,
            "is in sampling mode with a sample interval of 0");
    int rc;
    FIELD_STR(q, end, &s, &n);
    if ((rc = mh_parse_keep_str(&ps->pv->arena, &ps->pv->budget, s, n,
                                &h.python)))
        return store_fail(ps, rc, rec, tag);
    FIELD_STR(q, end, &s, &n);
    if ((rc = mh_parse_keep_str(&ps->pv->arena, &ps->pv->budget, s, n,
                                &h.executable)))
        return store_fail(ps, rc, rec, tag);
    if ((rc = header_list(ps, &q, end, rec, tag, 0, &h.argc, &h.argv)))
        return rc;
    if ((rc = header_list(ps, &q, end, rec, tag, 1, &h.nlib, &h.lib_prefixes)))
        return rc;
    if ((rc = header_list(ps, &q, end, rec, tag, 2, &h.npath, &h.sys_path)))
        return rc;
    if (q < end) /* appended later; older writers end the body here */
        FIELD(q, end, &h.run_id);
    r->header = h;
    r->have_header = 1;
    return MH_OK;
}

static int
parse_string(struct parser *ps, const uint8_t *rec, uint8_t tag,
             const uint8_t *q, const uint8_t *end)
{
    struct mh_cap_reader *r = ps->r;
    struct mh_cap_reader_priv *pv = ps->pv;
    uint64_t id;
    const char *s;
    size_t n;
    FIELD(q, end, &id);
    FIELD_STR(q, end, &s, &n);
    int rc = mh_parse_new_id(&ps->err, &pv->strings, id, "string", rec, tag);
    if (rc)
        return rc;
    rc = mh_parse_table_add(&pv->budget, &pv->strings, (void **)&r->strings,
                            &pv->strings_cap, r->nstrings, sizeof(*r->strings),
                            id);
    if (rc == MH_OK)
        rc = mh_parse_keep_str(&pv->arena, &pv->budget, s, n,
                               &r->strings[r->nstrings]);
    if (rc)
        return store_fail(ps, rc, rec, tag);
    r->nstrings++;
    return MH_OK;
}

static int
parse_code(struct parser *ps, const uint8_t *rec, uint8_t tag,
           const uint8_t *q, const uint8_t *end)
{
    struct mh_cap_reader *r = ps->r;
    struct mh_cap_reader_priv *pv = ps->pv;
    uint64_t id, filename, name;
    struct mh_cap_code c;
    FIELD(q, end, &id);
    FIELD(q, end, &filename);
    FIELD(q, end, &name);
    FIELD32(q, end, &c.firstlineno, "firstlineno");
    int rc = mh_parse_new_id(&ps->err, &pv->codes, id, "code", rec, tag);
    if (rc)
        return rc;
    REF(&pv->strings, filename, &c.filename, "string");
    REF(&pv->strings, name, &c.name, "string");
    rc = mh_parse_table_add(&pv->budget, &pv->codes, (void **)&r->codes,
                            &pv->codes_cap, r->ncodes, sizeof(*r->codes), id);
    if (rc)
        return store_fail(ps, rc, rec, tag);
    r->codes[r->ncodes++] = c;
    return MH_OK;
}

static int
parse_frame(struct parser *ps, const uint8_t *rec, uint8_t tag,
            const uint8_t *q, const uint8_t *end)
{
    struct mh_cap_reader *r = ps->r;
    struct mh_cap_reader_priv *pv = ps->pv;
    uint64_t id, code;
    struct mh_cap_frame f;
    FIELD(q, end, &id);
    FIELD(q, end, &code);
    FIELD32(q, end, &f.line, "line");
    FIELD32(q, end, &f.offset, "offset");
    int rc = mh_parse_new_id(&ps->err, &pv->frames, id, "frame", rec, tag);
    if (rc)
        return rc;
    REF(&pv->codes, code, &f.code, "code");
    rc = mh_parse_table_add(&pv->budget, &pv->frames, (void **)&r->frames,
                            &pv->frames_cap, r->nframes, sizeof(*r->frames),
                            id);
    if (rc)
        return store_fail(ps, rc, rec, tag);
    r->frames[r->nframes++] = f;
    return MH_OK;
}

static int
parse_stack(struct parser *ps, const uint8_t *rec, uint8_t tag,
            const uint8_t *q, const uint8_t *end)
{
    struct mh_cap_reader *r = ps->r;
    struct mh_cap_reader_priv *pv = ps->pv;
    uint64_t id, depth;
    FIELD(q, end, &id);
    FIELD(q, end, &depth);
    int rc = mh_parse_new_id(&ps->err, &pv->stacks, id, "stack", rec, tag);
    if (rc)
        return rc;
    if (depth < 1 || depth > MH_CAP_DEPTH_MAX)
        return mh_parse_rec_fail(&ps->err, MH_EFORMAT, rec, tag,
                                 "has depth %llu, outside 1..%u",
                                 (unsigned long long)depth, MH_CAP_DEPTH_MAX);
    rc = mh_budget_grow(&pv->budget, (void **)&r->stacks, &pv->stacks_cap,
                        (size_t)r->nstacks + 1, sizeof(*r->stacks));
    if (rc == MH_OK)
        rc = mh_budget_grow(
            &pv->budget, (void **)&r->stack_frames, &pv->stack_frames_cap,
            r->nstack_frames + (size_t)depth, sizeof(*r->stack_frames));
    if (rc)
        return store_fail(ps, rc, rec, tag);
    /* Written past nstack_frames and committed only when all are good. */
    uint32_t *out = r->stack_frames + r->nstack_frames;
    for (uint64_t i = 0; i < depth; i++) {
        uint64_t fid;
        FIELD(q, end, &fid);
        REF(&pv->frames, fid, &out[i], "frame");
    }
    rc = mh_idmap_put(&pv->stacks, &pv->budget, id, r->nstacks);
    if (rc)
        return store_fail(ps, rc, rec, tag);
    r->stacks[r->nstacks].depth = (uint32_t)depth;
    r->stacks[r->nstacks].first = (uint32_t)r->nstack_frames;
    r->nstacks++;
    r->nstack_frames += (size_t)depth;
    return MH_OK;
}

/* The visitor returned rc (nonzero): say so and hand rc back. */
static int
visit_stopped(struct parser *ps, int rc, const uint8_t *rec, uint8_t tag)
{
    if (rc < 0)
        return mh_parse_rec_fail(&ps->err, rc, rec, tag,
                                 "could not be processed: %s",
                                 mh_strerror(rc));
    return mh_parse_rec_fail(&ps->err, rc, rec, tag, "stopped the parse");
}

static int
visit_event(struct parser *ps, struct mh_cap_event *ev, const uint8_t *rec,
            uint8_t tag)
{
    ev->offset = ps->err.place.compressed
                     ? ps->err.place.chunk_off
                     : ps->err.place.chunk_off + MH_CAP_CHUNK_HEADER_LEN +
                           (uint64_t)(rec - ps->err.place.payload);
    if (!ps->visit)
        return MH_OK;
    int rc = ps->visit(ps->ctx, ev);
    return rc ? visit_stopped(ps, rc, rec, tag) : MH_OK;
}

static int
parse_event(struct parser *ps, const uint8_t *rec, uint8_t tag,
            const uint8_t *q, const uint8_t *end)
{
    struct mh_cap_event ev;
    memset(&ev, 0, sizeof(ev));
    switch (tag) {
    case MH_REC_TIMELINE:
        ev.kind = MH_EV_TIMELINE;
        FIELD(q, end, &ev.u.timeline.t_ns);
        FIELD(q, end, &ev.u.timeline.rss);
        FIELD(q, end, &ev.u.timeline.live);
        FIELD(q, end, &ev.u.timeline.samples);
        FIELD(q, end, &ev.u.timeline.frees);
        FIELD(q, end, &ev.u.timeline.dropped);
        /* Appended later: the allocator's state, all seven fields or
         * none (what follows a record's known fields is otherwise a
         * newer writer's, and ignored). */
        if (q < end) {
            uint64_t x[7];
            const uint8_t *t = q;
            int k = 0;
            while (k < 7 && !mh_rd_uv(&t, end, &x[k]))
                k++;
            if (k == 7 && (x[0] & (MH_TL_PYMALLOC | MH_TL_MALLOC))) {
                ev.u.timeline.alloc = x[0] & (MH_TL_PYMALLOC | MH_TL_MALLOC);
                ev.u.timeline.arena_bytes = x[1];
                ev.u.timeline.arena_free = x[2];
                ev.u.timeline.malloc_arena = x[3];
                ev.u.timeline.malloc_inuse = x[4];
                ev.u.timeline.malloc_free = x[5];
                ev.u.timeline.malloc_mmap = x[6];
            }
        }
        break;
    case MH_REC_MARKER: {
        uint64_t kind;
        ev.kind = MH_EV_MARKER;
        FIELD(q, end, &ev.u.marker.t_ns);
        FIELD(q, end, &kind);
        FIELD_STR(q, end, &ev.u.marker.text.s, &ev.u.marker.text.n);
        ev.u.marker.kind =
            kind > MH_MARK_LAST ? MH_MARK_USER : (uint32_t)kind;
        break;
    }
    case MH_REC_REQUEST:
        ev.kind = MH_EV_REQUEST;
        FIELD(q, end, &ev.u.request.id);
        FIELD(q, end, &ev.u.request.t_begin_ns);
        FIELD(q, end, &ev.u.request.t_end_ns);
        FIELD_STR(q, end, &ev.u.request.endpoint.s, &ev.u.request.endpoint.n);
        if (ev.u.request.id == 0)
            return mh_parse_rec_fail(
                &ps->err, MH_EFORMAT, rec, tag,
                "is a request with id 0 (ids start at 1)");
        break;
    case MH_REC_FINDING: {
        struct mh_cap_finding *f = &ev.u.finding;
        ev.kind = MH_EV_FINDING;
        FIELD(q, end, &f->t_ns);
        FIELD(q, end, &f->request);
        FIELD_STR(q, end, &f->id.s, &f->id.n);
        FIELD_STR(q, end, &f->file.s, &f->file.n);
        FIELD32(q, end, &f->line, "line");
        FIELD_STR(q, end, &f->function.s, &f->function.n);
        FIELD(q, end, &f->count);
        FIELD(q, end, &f->bytes);
        FIELD_STR(q, end, &f->detail.s, &f->detail.n);
        if (f->id.n == 0)
            return mh_parse_rec_fail(&ps->err, MH_EFORMAT, rec, tag,
                                     "is a finding with an empty id");
        break;
    }
    default: /* MH_REC_END */
        ev.kind = MH_EV_END;
        FIELD(q, end, &ev.u.end.t_ns);
        FIELD(q, end, &ev.u.end.samples);
        FIELD(q, end, &ev.u.end.frees);
        FIELD(q, end, &ev.u.end.dropped);
        ps->r->clean_end = 1;
        break;
    }
    return visit_event(ps, &ev, rec, tag);
}

/* TAG: the request the chunk's next ALLOCs belong to (0 = none). Any
 * value is valid; trailing bytes are a newer writer's. */
static int
parse_tag(struct parser *ps, const uint8_t *rec, uint8_t tag, const uint8_t *q,
          const uint8_t *end, uint64_t *request)
{
    FIELD(q, end, request);
    return MH_OK;
}

/* Parses the records of one chunk's (decompressed) payload. */
static int
parse_records(struct parser *ps, const uint8_t *p, size_t n)
{
    struct mh_cap_reader *r = ps->r;
    const uint8_t *end = p + n;
    uint64_t addr = 0;    /* address deltas restart in every chunk */
    uint64_t request = 0; /* so does the TAG state */
    struct mh_cap_event ev;
    memset(&ev, 0, sizeof(ev));
    ps->err.place.payload = p;
    while (p < end) {
        const uint8_t *rec = p;
        uint8_t tag = *p++;
        int rc;
        if (MH_LIKELY(tag >= MH_REC_ALLOC_RAW && tag <= MH_REC_FREE)) {
            if (MH_UNLIKELY(!r->have_header))
                return mh_parse_rec_fail(&ps->err, MH_EFORMAT, rec, tag,
                                         "comes before the HEADER record");
            uint64_t u;
            if (tag == MH_REC_FREE) {
                if (MH_UNLIKELY((rc = mh_rd_uv(&p, end, &u))))
                    return mh_parse_field_fail(&ps->err, rc, rec, tag, 0);
                addr += (uint64_t)mh_unzigzag(u);
                ev.kind = MH_EV_FREE;
                ev.u.free.addr = addr;
            } else {
                uint64_t stack, size;
                if (MH_UNLIKELY((rc = mh_rd_uv(&p, end, &stack))) ||
                    MH_UNLIKELY((rc = mh_rd_uv(&p, end, &size))) ||
                    MH_UNLIKELY((rc = mh_rd_uv(&p, end, &u))))
                    return mh_parse_field_fail(&ps->err, rc, rec, tag, 0);
                uint32_t sidx = 0;
                if (stack) {
                    if (stack == ps->last_stack_id) {
                        sidx = ps->last_stack_idx;
                    } else {
                        sidx = mh_idmap_get(&ps->pv->stacks, stack);
                        if (MH_UNLIKELY(!sidx))
                            return mh_parse_rec_fail(
                                &ps->err, MH_EFORMAT, rec, tag,
                                "references undefined stack "
                                "%llu",
                                (unsigned long long)stack);
                        ps->last_stack_id = stack;
                        ps->last_stack_idx = sidx;
                    }
                }
                addr += (uint64_t)mh_unzigzag(u);
                ev.kind = MH_EV_ALLOC;
                ev.u.alloc.domain = (uint32_t)(tag - MH_REC_ALLOC_RAW);
                ev.u.alloc.stack = sidx;
                ev.u.alloc.size = size;
                ev.u.alloc.addr = addr;
                ev.u.alloc.request = request;
            }
            if (ps->visit) {
                ev.offset = ps->err.place.compressed
                                ? ps->err.place.chunk_off
                                : ps->err.place.chunk_off +
                                      MH_CAP_CHUNK_HEADER_LEN +
                                      (uint64_t)(rec - ps->err.place.payload);
                if (MH_UNLIKELY((rc = ps->visit(ps->ctx, &ev))))
                    return visit_stopped(ps, rc, rec, tag);
            }
            continue;
        }
        const uint8_t *body = p, *bend;
        if ((rc = mh_parse_sized(&ps->err, rec, tag, MH_REC_FIXED_LAST,
                                 MH_REC_HEADER, r->have_header, &body, end,
                                 &bend)))
            return rc;
        p = bend;
        switch (tag) {
        case MH_REC_HEADER:
            rc = parse_header(ps, rec, tag, body, bend);
            break;
        case MH_REC_STRING:
            rc = parse_string(ps, rec, tag, body, bend);
            break;
        case MH_REC_CODE:
            rc = parse_code(ps, rec, tag, body, bend);
            break;
        case MH_REC_FRAME:
            rc = parse_frame(ps, rec, tag, body, bend);
            break;
        case MH_REC_STACK:
            rc = parse_stack(ps, rec, tag, body, bend);
            break;
        case MH_REC_TAG:
            rc = parse_tag(ps, rec, tag, body, bend, &request);
            break;
        case MH_REC_TIMELINE:
        case MH_REC_MARKER:
        case MH_REC_END:
        case MH_REC_REQUEST:
        case MH_REC_FINDING:
            rc = parse_event(ps, rec, tag, body, bend);
            break;
        default:
            rc = MH_OK; /* a sized record from a newer writer: skipped */
            break;
        }
        if (rc)
            return rc;
    }
    return MH_OK;
}

/* --- chunks --------------------------------------------------------- */

static int
parse_chunks(struct parser *ps, const uint8_t *buf, size_t len)
{
    struct mh_cap_reader *r = ps->r;
    struct mh_chunk_reader *c = &ps->pv->ck;
    int rc = mh_chunk_begin(c, buf, len);
    if (rc)
        return mh_parse_fail(&ps->err, rc, c->error_offset, "%s", c->error);
    struct mh_chunk ch;
    while ((rc = mh_chunk_next(c, &ch)) > 0) {
        ps->err.place.chunk_off = ch.offset;
        ps->err.place.compressed = ch.compressed;
        if (ch.len && (rc = parse_records(ps, ch.payload, ch.len)))
            return rc;
        r->chunks++;
    }
    if (rc < 0)
        return mh_parse_fail(&ps->err, rc, c->error_offset, "%s", c->error);
    r->truncated = c->truncated;
    r->truncated_at = c->truncated_at;
    return MH_OK;
}

int
mh_cap_parse(struct mh_cap_reader *r, const uint8_t *buf, size_t len,
             mh_cap_visit_fn visit, void *ctx)
{
    struct parser ps;
    memset(&ps, 0, sizeof(ps));
    ps.r = r;
    ps.err.text = r->error;
    ps.err.cap = sizeof(r->error);
    ps.err.offset = &r->error_offset;
    ps.visit = visit;
    ps.ctx = ctx;
    if (r->priv)
        return mh_parse_fail(
            &ps.err, MH_EINVAL, 0,
            "a reader parses one capture (this one has parsed one)");
    if (!buf && len)
        return mh_parse_fail(&ps.err, MH_EINVAL, 0, "no buffer to parse");
    r->priv = ps.pv = mh_calloc(1, sizeof(*ps.pv));
    if (!ps.pv)
        return mh_parse_fail(&ps.err, MH_ENOMEM, 0,
                             "cannot start reading: out of memory");
    struct mh_cap_reader_priv *pv = ps.pv;
    pv->budget.used = &pv->mem;
    pv->budget.max = r->tables_max ? r->tables_max : MH_CAP_READER_TABLES_MAX;
    /* Index 0 of every table means "none". */
    if (mh_budget_grow(&pv->budget, (void **)&r->strings, &pv->strings_cap, 1,
                       sizeof(*r->strings)) ||
        mh_budget_grow(&pv->budget, (void **)&r->codes, &pv->codes_cap, 1,
                       sizeof(*r->codes)) ||
        mh_budget_grow(&pv->budget, (void **)&r->frames, &pv->frames_cap, 1,
                       sizeof(*r->frames)) ||
        mh_budget_grow(&pv->budget, (void **)&r->stacks, &pv->stacks_cap, 1,
                       sizeof(*r->stacks)))
        return mh_parse_fail(&ps.err, MH_ENOMEM, 0,
                             "cannot start reading: out of memory");
    r->strings[0].s = "";
    r->strings[0].n = 0;
    memset(&r->codes[0], 0, sizeof(r->codes[0]));
    memset(&r->frames[0], 0, sizeof(r->frames[0]));
    memset(&r->stacks[0], 0, sizeof(r->stacks[0]));
    r->nstrings = r->ncodes = r->nframes = r->nstacks = 1;

    mh_chunk_reader_init(&pv->ck, &mh_chunk_capture);
    pv->ck.inflate_fixed = r->inflate_fixed;
    return parse_chunks(&ps, buf, len);
}

uint32_t
mh_cap_stack_index(const struct mh_cap_reader *r, uint64_t id)
{
    if (!id || !r->priv)
        return 0;
    return mh_idmap_get(&r->priv->stacks, id);
}
