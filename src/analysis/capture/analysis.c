/* Captures -> sites -> the report's result (see analysis.h).
 *
 * Per capture: a cheap first pass reads only the clock (a warm-up given
 * as a fraction needs the duration) and counts blocks (to size the live
 * table once), the second replays (live_replay.h). Then each stack with
 * something live at the warm-up end or at the end is folded into its
 * site, found by a key of string ids, so the same site in two captures
 * (whose own ids differ) merges. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../format/capture_read.h"
#include "../../util/mem.h"
#include "analysis.h"
#include "codepath.h"
#include "live_replay.h"
#include "../../util/slope.h"

/* A user frame that leads to a site, with the bytes behind it (or, in
 * a list of callers, the user frame that called a site's user frame). */
struct cand {
    uint32_t site;
    struct mh_site_frame f;
    struct mh_site_frame callee; /* a caller's: the user frame it called;
                                    zero in the list of user frames */
    int direct; /* f was a stack's innermost frame */
    double growth, live;
};

struct candlist {
    struct cand *v;
    size_t n, cap;
};

/* Sites with a hash index on their key. */
struct sitetab {
    struct mh_site *v;
    size_t n, cap;
    uint32_t *slots; /* site index + 1; 0 = empty */
    size_t nslots;
};

struct mh_analysis_priv {
    /* The sites of the growth and live lists (a->sites mirrors main.v),
     * and, when those are not by line, the line sites of the endpoints. */
    struct sitetab main, line;
    size_t procs_cap;
    struct candlist cands; /* the sites' user frames */
    struct candlist vias;  /* their callers (mh_site.via) */
};

/* Per-capture state while folding stacks into sites. */
struct fold {
    struct mh_analysis *a;
    const struct mh_cap_reader *r;
    const struct mh_live_replay *rp;
    uint32_t *str_id; /* reader string -> pool id + 1 */
    uint32_t *mod_id; /* reader string (a file) -> module pool id + 1 */
    uint8_t *user;    /* per code: its mh_codekind, 0 not yet known */
    uint32_t nostack; /* site index + 1 of "<no Python stack>" */
    double span_s;    /* duration minus warm-up, seconds */
    struct mh_buf tmp;
};

static const char *const by_names[] = {"line",  "function", "file",
                                       "module", "stack",   "endpoint"};
#define NBY (sizeof(by_names) / sizeof(*by_names))

const char *
mh_analysis_by_name(enum mh_by by)
{
    return (unsigned)by < NBY ? by_names[by] : "?";
}

int
mh_analysis_by_parse(const char *s)
{
    for (int i = 0; i < (int)NBY; i++)
        if (!strcmp(s, by_names[i]))
            return i;
    return -1;
}

void
mh_analysis_init(struct mh_analysis *a, const struct mh_analysis_opts *opts)
{
    memset(a, 0, sizeof(*a));
    a->opts = *opts;
    mh_strpool_init(&a->strings, MH_ANALYSIS_MAX_STRINGS);
    mh_endpoints_init(&a->endpoints, &a->strings);
    mh_findings_init(&a->findings, &a->strings);
    a->summary.mode = -1;
}

void
mh_analysis_release(struct mh_analysis *a)
{
    for (size_t i = 0; i < a->nprocs; i++) {
        mh_free(a->procs[i].argv);
        mh_timeline_release(&a->procs[i].timeline);
    }
    mh_free(a->procs);
    mh_free(a->growth);
    mh_free(a->live);
    mh_free(a->live_recent);
    mh_free(a->live_startup);
    mh_free(a->timeline);
    mh_endpoints_release(&a->endpoints);
    mh_findings_release(&a->findings);
    mh_strpool_release(&a->strings);
    if (a->priv) {
        mh_free(a->priv->main.v); /* a->sites */
        mh_free(a->priv->main.slots);
        mh_free(a->priv->line.v);
        mh_free(a->priv->line.slots);
        mh_free(a->priv->cands.v);
        mh_free(a->priv->vias.v);
        mh_free(a->priv);
    }
    struct mh_analysis_opts opts = a->opts;
    mh_analysis_init(a, &opts);
}

static int errorf(struct mh_analysis *a, int rc, const char *fmt, ...)
    MH_PRINTF(3, 4);

static int
errorf(struct mh_analysis *a, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->error, sizeof(a->error), fmt, ap);
    va_end(ap);
    return rc;
}

static int
reader_error(struct mh_analysis *a, const struct mh_cap_reader *r, int rc)
{
    if (rc == MH_ENOMEM || rc == MH_ETOOBIG)
        return errorf(a, rc, "%s", r->error[0] ? r->error : mh_strerror(rc));
    if (strstr(r->error, "offset"))
        return errorf(a, rc, "%s", r->error);
    return errorf(a, rc, "at offset %llu: %s",
                  (unsigned long long)r->error_offset,
                  r->error[0] ? r->error : mh_strerror(rc));
}

/* ---- sites ---------------------------------------------------------- */

static size_t
site_hash(enum mh_site_kind kind, const uint32_t k[3])
{
    uint64_t h = (uint64_t)kind * 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < 3; i++) {
        h ^= k[i];
        h *= 0xff51afd7ed558ccdull;
        h ^= h >> 29;
    }
    return (size_t)h;
}

static int
sitetab_grow(struct sitetab *t)
{
    size_t size = t->nslots ? t->nslots * 2 : 1024;
    uint32_t *slots = mh_calloc(size, sizeof(*slots));
    if (!slots)
        return MH_ENOMEM;
    for (size_t i = 0; i < t->n; i++) {
        size_t j = site_hash(t->v[i].kind, t->v[i].k) & (size - 1);
        while (slots[j])
            j = (j + 1) & (size - 1);
        slots[j] = (uint32_t)i + 1;
    }
    mh_free(t->slots);
    t->slots = slots;
    t->nslots = size;
    return MH_OK;
}

/* Finds the site with this key in `t`, or adds it from `proto` (whose
 * counters must be zero). *idx receives its index. */
static int
site_get(struct mh_analysis *a, struct sitetab *t, const struct mh_site *proto,
         uint32_t *idx)
{
    int rc;
    if ((t->n + 1) * 2 > t->nslots && (rc = sitetab_grow(t)))
        return rc;
    size_t mask = t->nslots - 1;
    size_t j = site_hash(proto->kind, proto->k) & mask;
    for (; t->slots[j]; j = (j + 1) & mask) {
        const struct mh_site *s = &t->v[t->slots[j] - 1];
        if (s->kind == proto->kind && !memcmp(s->k, proto->k, sizeof(s->k))) {
            *idx = t->slots[j] - 1;
            return MH_OK;
        }
    }
    if (t->n >= MH_ANALYSIS_MAX_SITES)
        return errorf(a, MH_ETOOBIG, "more than %zu sites",
                      (size_t)MH_ANALYSIS_MAX_SITES);
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        struct mh_site *s = mh_realloc(t->v, cap * sizeof(*s));
        if (!s)
            return MH_ENOMEM;
        t->v = s;
        t->cap = cap;
    }
    t->v[t->n] = *proto;
    *idx = (uint32_t)t->n++;
    t->slots[j] = *idx + 1;
    if (t == &a->priv->main) {
        a->sites = t->v;
        a->nsites = t->n;
    }
    return MH_OK;
}

/* Where the endpoints' sites (by line) live. */
static struct sitetab *
line_tab(struct mh_analysis *a)
{
    return mh_analysis_site_by(a) == MH_BY_LINE ? &a->priv->main
                                                : &a->priv->line;
}

static int
add_cand(struct mh_analysis *a, struct candlist *l, const struct cand *c)
{
    if (l->n == l->cap) {
        if (l->cap >= MH_ANALYSIS_MAX_SITES)
            return errorf(a, MH_ETOOBIG, "too many call sites");
        size_t cap = l->cap ? l->cap * 2 : 256;
        struct cand *n = mh_realloc(l->v, cap * sizeof(*n));
        if (!n)
            return MH_ENOMEM;
        l->v = n;
        l->cap = cap;
    }
    l->v[l->n++] = *c;
    return MH_OK;
}

static int
frame_cmp(const struct mh_site_frame *a, const struct mh_site_frame *b)
{
    if (a->file != b->file)
        return a->file < b->file ? -1 : 1;
    if (a->line != b->line)
        return a->line < b->line ? -1 : 1;
    if (a->function != b->function)
        return a->function < b->function ? -1 : 1;
    return 0;
}

static int
cand_cmp(const void *x, const void *y)
{
    const struct cand *a = x, *b = y;
    if (a->site != b->site)
        return a->site < b->site ? -1 : 1;
    int c = frame_cmp(&a->f, &b->f);
    return c ? c : frame_cmp(&a->callee, &b->callee);
}

/* Sorts the candidates and sums duplicates, so they stay as many as the
 * distinct (site, user frame) pairs. */
static void
reduce_cands(struct candlist *l)
{
    if (l->n < 2)
        return;
    qsort(l->v, l->n, sizeof(*l->v), cand_cmp);
    size_t out = 0;
    for (size_t i = 1; i < l->n; i++) {
        if (cand_cmp(&l->v[out], &l->v[i]) == 0) {
            l->v[out].growth += l->v[i].growth;
            l->v[out].live += l->v[i].live;
            l->v[out].direct |= l->v[i].direct;
        } else {
            l->v[++out] = l->v[i];
        }
    }
    l->n = out + 1;
}

/* ---- folding one capture's stacks ----------------------------------- */

static int
pool_str(struct fold *f, uint32_t si, uint32_t *id)
{
    const struct mh_cap_reader *r = f->r;
    if (si >= r->nstrings) {
        *id = 0;
        return MH_OK;
    }
    if (f->str_id[si]) {
        *id = f->str_id[si] - 1;
        return MH_OK;
    }
    int rc = mh_strpool_intern(&f->a->strings, r->strings[si].s,
                               r->strings[si].n, id);
    if (rc)
        return rc;
    f->str_id[si] = *id + 1;
    return MH_OK;
}

static int
pool_module(struct fold *f, uint32_t file_si, uint32_t *id)
{
    const struct mh_cap_reader *r = f->r;
    if (file_si >= r->nstrings) {
        *id = 0;
        return MH_OK;
    }
    if (f->mod_id[file_si]) {
        *id = f->mod_id[file_si] - 1;
        return MH_OK;
    }
    mh_buf_reset(&f->tmp);
    const struct mh_cap_header *h = &r->header;
    int rc = mh_codepath_module(
        r->have_header ? h->sys_path : NULL, r->have_header ? h->npath : 0,
        r->strings[file_si].s, r->strings[file_si].n, &f->tmp);
    if (rc == MH_OK)
        rc = mh_strpool_intern(&f->a->strings, f->tmp.data, f->tmp.len, id);
    if (rc)
        return rc;
    f->mod_id[file_si] = *id + 1;
    return MH_OK;
}

/* The frame's names; 0 when the frame index is out of range. */
static int
frame_names(struct fold *f, uint32_t fi, struct mh_site_frame *out,
            uint32_t *file_si, uint32_t *code)
{
    const struct mh_cap_reader *r = f->r;
    memset(out, 0, sizeof(*out));
    *file_si = 0;
    *code = 0;
    if (fi == 0 || fi >= r->nframes || r->frames[fi].code == 0 ||
        r->frames[fi].code >= r->ncodes)
        return MH_OK;
    const struct mh_cap_code *c = &r->codes[r->frames[fi].code];
    *code = r->frames[fi].code;
    *file_si = c->filename;
    out->line = r->frames[fi].line;
    int rc = pool_str(f, c->filename, &out->file);
    if (rc == MH_OK)
        rc = pool_str(f, c->name, &out->function);
    return rc;
}

/* The kind of code object `code` (enum mh_codekind), 0 for a bad id. */
static int
code_kind(struct fold *f, uint32_t code)
{
    const struct mh_cap_reader *r = f->r;
    if (code == 0 || code >= r->ncodes)
        return 0;
    if (!f->user[code]) {
        uint32_t si = r->codes[code].filename;
        uint32_t ni = r->codes[code].name;
        f->user[code] =
            si < r->nstrings
                ? (uint8_t)mh_codepath_kind(
                      r->have_header ? r->header.lib_prefixes : NULL,
                      r->have_header ? r->header.nlib : 0, r->strings[si].s,
                      r->strings[si].n, ni < r->nstrings ? r->strings[ni].s : "",
                      ni < r->nstrings ? r->strings[ni].n : 0)
                : MH_CODE_LIB;
    }
    return f->user[code];
}

/* Stack s's frames (frame indices, innermost first); depth 0 for the
 * empty stack or one the reader could not have made. */
static const uint32_t *
stack_frames(const struct mh_cap_reader *r, uint32_t s, uint32_t *depth)
{
    const struct mh_cap_stack *st = s < r->nstacks ? &r->stacks[s] : NULL;
    *depth = st ? st->depth : 0;
    if (*depth &&
        (st->first > r->nstack_frames || *depth > r->nstack_frames - st->first))
        *depth = 0;
    return *depth ? &r->stack_frames[st->first] : NULL;
}

/* The site of stack s in `t`, keyed as `by` says. */
static int
stack_site(struct fold *f, uint32_t s, enum mh_by by, struct sitetab *t,
           uint32_t *idx)
{
    struct mh_analysis *a = f->a;
    uint32_t depth;
    const uint32_t *fr = stack_frames(f->r, s, &depth);
    struct mh_site proto;
    memset(&proto, 0, sizeof(proto));
    int rc;
    if (s == 0 || depth == 0) {
        proto.kind = MH_SITE_NOSTACK;
        return site_get(a, t, &proto, idx);
    }
    struct mh_site_frame top;
    uint32_t file_si, code;
    if ((rc = frame_names(f, fr[0], &top, &file_si, &code)))
        return rc;
    if ((rc = pool_module(f, file_si, &proto.module)))
        return rc;
    proto.kind = MH_SITE_CODE;
    switch (by) {
    case MH_BY_LINE:
    case MH_BY_ENDPOINT:
        proto.file = top.file;
        proto.function = top.function;
        proto.line = top.line;
        proto.has_line = 1;
        proto.k[0] = top.file;
        proto.k[1] = top.line;
        proto.k[2] = top.function;
        break;
    case MH_BY_FUNCTION:
        proto.file = top.file;
        proto.function = top.function;
        proto.k[0] = top.file;
        proto.k[1] = top.function;
        break;
    case MH_BY_FILE:
        proto.file = top.file;
        proto.k[0] = top.file;
        break;
    case MH_BY_MODULE:
        proto.k[0] = proto.module;
        break;
    case MH_BY_STACK: {
        proto.file = top.file;
        proto.function = top.function;
        proto.line = top.line;
        proto.has_line = 1;
        struct mh_buf blob;
        mh_buf_init(&blob, (size_t)MH_CAP_DEPTH_MAX * sizeof(top));
        /* memhound's own frames (its web layer, its bootstrap) are left
         * out: they are not the user's to act on. */
        uint32_t kept = 0;
        for (uint32_t i = 0; i < depth && rc == MH_OK; i++) {
            struct mh_site_frame x;
            uint32_t xs, xc;
            if (fr[i] < f->r->nframes &&
                code_kind(f, f->r->frames[fr[i]].code) == MH_CODE_MEMHOUND &&
                (kept || i + 1 < depth))
                continue;
            kept++;
            rc = frame_names(f, fr[i], &x, &xs, &xc);
            if (rc == MH_OK)
                rc = mh_buf_put(&blob, &x, sizeof(x));
        }
        if (rc == MH_OK)
            rc = mh_strpool_intern(&a->strings, blob.data, blob.len,
                                   &proto.frames);
        mh_buf_release(&blob);
        if (rc)
            return rc;
        proto.k[0] = proto.frames;
        break;
    }
    }
    return site_get(a, t, &proto, idx);
}

/* The innermost frame of stack s in the user's own code: 1 and *out (and
 * *direct: it is the innermost frame; *at: its index, when not NULL) when
 * there is one, else 0; a negative code when a name cannot be stored. */
static int
first_user_frame(struct fold *f, uint32_t s, struct mh_site_frame *out,
                 int *direct, uint32_t *at)
{
    const struct mh_cap_reader *r = f->r;
    uint32_t depth;
    const uint32_t *fr = stack_frames(r, s, &depth);
    for (uint32_t i = 0; s && i < depth; i++) {
        uint32_t fi = fr[i];
        if (fi == 0 || fi >= r->nframes)
            continue;
        enum mh_codekind kind =
            (enum mh_codekind)code_kind(f, r->frames[fi].code);
        if (i > 0 && mh_codepath_ends_callers(kind))
            return 0;
        if (!mh_codepath_user_frame(kind, i == 0))
            continue;
        uint32_t xs, xc;
        int rc = frame_names(f, fi, out, &xs, &xc);
        if (rc)
            return rc;
        *direct = i == 0;
        if (at)
            *at = i;
        return 1;
    }
    return 0;
}

/* The line that keeps what user frame `user` (frame `at` of stack s)
 * allocated: the frame that called it, when that is the user's own code
 * on another line (memhound's own frames between them are passed over:
 * its web layer calls the app, it never stores what the app makes).
 * 1 and *out when there is one, else 0; a negative code when a name
 * cannot be stored. */
static int
user_caller(struct fold *f, uint32_t s, uint32_t at,
            const struct mh_site_frame *user, struct mh_site_frame *out)
{
    const struct mh_cap_reader *r = f->r;
    uint32_t depth;
    const uint32_t *fr = stack_frames(r, s, &depth);
    for (uint32_t i = at + 1; i < depth; i++) {
        uint32_t fi = fr[i];
        if (fi == 0 || fi >= r->nframes)
            return 0;
        int kind = code_kind(f, r->frames[fi].code);
        if (kind == MH_CODE_MEMHOUND)
            continue;
        if (!mh_codepath_user_frame((enum mh_codekind)kind, 0))
            return 0;
        uint32_t xs, xc;
        int rc = frame_names(f, fi, out, &xs, &xc);
        if (rc)
            return rc;
        return out->file != user->file || out->line != user->line;
    }
    return 0;
}

static int
fold_stack(struct fold *f, uint32_t s)
{
    struct mh_analysis *a = f->a;
    const struct mh_live_replay *rp = f->rp;
    double eb = s < rp->nend ? rp->end_bytes[s] : 0;
    double ec = s < rp->nend ? rp->end_count[s] : 0;
    double wb = s < rp->nwarm ? rp->warm_bytes[s] : 0;
    double wc = s < rp->nwarm ? rp->warm_count[s] : 0;
    double sb = s < rp->nend && rp->early_bytes ? rp->early_bytes[s] : 0;
    double sc = s < rp->nend && rp->early_count ? rp->early_count[s] : 0;
    /* The growth's sampling variance: of the blocks live at only one of
     * the two times (those live at both, allocated before the warm-up
     * and live at the end, cancel out). */
    double ev = s < rp->nend && rp->end_var ? rp->end_var[s] : 0;
    double wv = s < rp->nwarm && rp->warm_var ? rp->warm_var[s] : 0;
    double bv = s < rp->nend && rp->early_var ? rp->early_var[s] : 0;
    double gv = (ev - bv) + (wv - bv);
    if (eb == 0 && ec == 0 && wb == 0 && wc == 0)
        return MH_OK;

    uint32_t depth;
    stack_frames(f->r, s, &depth);
    int rc;
    uint32_t idx = 0;
    if ((s == 0 || depth == 0) && f->nostack) {
        idx = f->nostack - 1;
    } else {
        if ((rc = stack_site(f, s, mh_analysis_site_by(a), &a->priv->main,
                             &idx)))
            return rc;
        if (s == 0 || depth == 0)
            f->nostack = idx + 1;
    }
    struct mh_site *site = &a->sites[idx];
    site->live_bytes += eb;
    site->live_count += ec;
    site->startup_bytes += sb;
    site->startup_count += sc;
    site->growth_var += gv > 0 ? gv : 0;
    site->growth_bytes += eb - wb;
    site->growth_count += ec - wc;
    if (f->span_s > 0)
        site->bytes_per_second += (eb - wb) / f->span_s;

    struct cand c = {
        .site = idx, .growth = eb - wb, .live = eb};
    uint32_t at;
    rc = first_user_frame(f, s, &c.f, &c.direct, &at);
    if (rc <= 0)
        return rc;
    if ((rc = add_cand(a, &a->priv->cands, &c)))
        return rc;
    /* A library's allocation is stored by the user frame that called the
     * library ("called from"); the user's own, by its caller. */
    if (!c.direct)
        return MH_OK;
    struct cand v = c;
    v.callee = c.f;
    rc = user_caller(f, s, at, &c.f, &v.f);
    if (rc <= 0)
        return rc;
    return add_cand(a, &a->priv->vias, &v);
}

/* The capture's (endpoint, stack) pairs into (endpoint, line site). */
static int
fold_endpoints(struct fold *f)
{
    struct mh_analysis *a = f->a;
    struct sitetab *t = line_tab(a);
    size_t pos = 0;
    uint32_t ep, stack;
    double allocated, retained;
    while (mh_endpoints_next_stack(&a->endpoints, &pos, &ep, &stack,
                                   &allocated, &retained)) {
        uint32_t idx;
        int rc = stack_site(f, stack, MH_BY_LINE, t, &idx);
        if (rc)
            return rc;
        struct mh_site_frame u;
        int direct = 0;
        int has_user = first_user_frame(f, stack, &u, &direct, NULL);
        if (has_user < 0)
            return has_user;
        uint32_t user[3] = {u.file, u.function, u.line};
        rc = mh_endpoints_site_add(&a->endpoints, ep, idx,
                                   t->v[idx].kind == MH_SITE_NOSTACK,
                                   allocated, retained,
                                   has_user ? user : NULL, direct);
        if (rc)
            return rc;
    }
    return MH_OK;
}

static int
fold_all(struct mh_analysis *a, const struct mh_cap_reader *r,
         const struct mh_live_replay *rp, double span_s)
{
    struct fold f;
    memset(&f, 0, sizeof(f));
    f.a = a;
    f.r = r;
    f.rp = rp;
    f.span_s = span_s;
    mh_buf_init(&f.tmp, (size_t)MH_CAP_STR_MAX * 2);
    int rc = MH_ENOMEM;
    size_t ns = r->nstrings ? r->nstrings : 1;
    f.str_id = mh_calloc(ns, sizeof(*f.str_id));
    f.mod_id = mh_calloc(ns, sizeof(*f.mod_id));
    f.user = mh_calloc(r->ncodes ? r->ncodes : 1, 1);
    if (!f.str_id || !f.mod_id || !f.user)
        goto cleanup;
    uint32_t n = rp->nend > rp->nwarm ? rp->nend : rp->nwarm;
    rc = MH_OK;
    for (uint32_t s = 0; s < n && rc == MH_OK; s++)
        rc = fold_stack(&f, s);
    if (rc == MH_OK) {
        reduce_cands(&a->priv->cands);
        reduce_cands(&a->priv->vias);
    }
    /* Only a capture that followed requests has (endpoint, stack) pairs
     * of its own: the pairs left from an earlier capture name stacks of
     * another reader. */
    if (rc == MH_OK && rp->eps)
        rc = fold_endpoints(&f);
cleanup:
    mh_free(f.str_id);
    mh_free(f.mod_id);
    mh_free(f.user);
    mh_buf_release(&f.tmp);
    return rc;
}

/* ---- one capture ---------------------------------------------------- */

const char *
mh_end_kind_name(int kind)
{
    static const char *const names[] = {"clean", "signal", "exec", "none",
                                        "cut"};
    return kind >= 0 && kind <= MH_END_CUT ? names[kind] : "none";
}

static int
intern_cstr(struct mh_analysis *a, const char *s, size_t n, uint32_t *id)
{
    return mh_strpool_intern(&a->strings, s, n, id);
}

static int
save_process(struct mh_analysis *a, const char *path,
             const struct mh_cap_reader *r, struct mh_live_replay *rp)
{
    struct mh_analysis_priv *p = a->priv;
    if (a->nprocs == p->procs_cap) {
        size_t cap = p->procs_cap ? p->procs_cap * 2 : 8;
        struct mh_process *n = mh_realloc(a->procs, cap * sizeof(*n));
        if (!n)
            return MH_ENOMEM;
        a->procs = n;
        p->procs_cap = cap;
    }
    struct mh_process *pr = &a->procs[a->nprocs];
    memset(pr, 0, sizeof(*pr));
    const struct mh_cap_header *h = &r->header;
    int rc = intern_cstr(a, path, strlen(path), &pr->path);
    if (rc)
        return rc;
    if ((rc = intern_cstr(a, rp->exec_path, strlen(rp->exec_path),
                          &pr->exec_path)) ||
        (rc = intern_cstr(a, rp->disk_full_why, strlen(rp->disk_full_why),
                          &pr->disk_full_why)))
        return rc;
    pr->have_header = r->have_header;
    pr->alloc = rp->alloc;
    pr->alloc_warm = rp->alloc_warm;
    if (r->have_header) {
        pr->pid = h->pid;
        pr->ppid = h->ppid;
        pr->run_id = h->run_id;
        pr->fork_parent = h->fork_parent;
        pr->start_ns = h->start_ns;
        pr->mode = h->mode;
        pr->interval = h->mode == MH_MODE_TRACE ? 0 : h->interval;
        if ((rc = intern_cstr(a, h->python.s, h->python.n, &pr->python)) ||
            (rc = intern_cstr(a, h->executable.s, h->executable.n,
                              &pr->executable)))
            return rc;
        if (h->argc) {
            pr->argv = mh_calloc(h->argc, sizeof(*pr->argv));
            if (!pr->argv)
                return MH_ENOMEM;
            for (uint32_t i = 0; i < h->argc; i++)
                if ((rc = intern_cstr(a, h->argv[i].s, h->argv[i].n,
                                      &pr->argv[i]))) {
                    mh_free(pr->argv);
                    return rc;
                }
            pr->argc = h->argc;
        }
    }
    pr->duration_ns = rp->t_ns;
    pr->warmup_ns = rp->warm_end_ns;
    pr->warmup_past_end = rp->warm_past_end;
    pr->peak_rss = rp->peak_rss;
    pr->tracked_peak = rp->peak_live;
    pr->live_bytes = rp->live_now;
    double live_warm = 0, live_end = 0;
    for (uint32_t s = 0; s < rp->nend; s++) {
        live_end += rp->end_bytes[s];
        if (rp->early_bytes)
            pr->startup_bytes += rp->early_bytes[s];
    }
    for (uint32_t s = 0; s < rp->nwarm; s++)
        live_warm += rp->warm_bytes[s];
    pr->growth_bytes = live_end - live_warm;
    pr->samples = rp->allocs;
    pr->frees = rp->frees;
    pr->dropped = rp->dropped;
    pr->clean_end = r->clean_end;
    pr->truncated = r->truncated;
    pr->truncated_at = r->truncated_at;
    pr->end_ns = rp->end_mark_ns;
    pr->end_signal = rp->end_signal;
    pr->unstacked = rp->unstacked;
    pr->disk_full = rp->disk_full;
    pr->disk_full_ns = rp->disk_full_ns;
    if (r->truncated)
        pr->end_kind = MH_END_CUT;
    else if (rp->end_mark == MH_MARK_EXEC)
        pr->end_kind = MH_END_EXEC;
    else if (rp->end_mark == MH_MARK_SIGNAL)
        pr->end_kind = MH_END_SIGNAL;
    else
        pr->end_kind = r->clean_end ? MH_END_CLEAN : MH_END_NONE;
    /* The timeline moves to the process. */
    pr->timeline = rp->timeline;
    mh_timeline_init(&rp->timeline, MH_LIVE_REPLAY_TIMELINE_POINTS);
    a->nprocs++;
    return MH_OK;
}

/* FINDING and REQUEST events go to the findings too. */
struct with_findings {
    struct mh_live_replay *rp;
    struct mh_findings *f;
};

static int
visit_with_findings(void *ctx, const struct mh_cap_event *ev)
{
    struct with_findings *w = ctx;
    if (ev->kind == MH_EV_FINDING || ev->kind == MH_EV_REQUEST) {
        int rc = mh_findings_visit(w->f, ev);
        if (rc) {
            w->rp->err = rc;
            w->rp->err_requests = 1;
            return 1;
        }
    }
    return mh_live_replay_visit(w->rp, ev);
}

static uint64_t
warm_end_for(const struct mh_analysis_opts *o, uint64_t duration_ns)
{
    double w = o->warmup > 0 ? o->warmup : 0;
    double ns = o->warmup_fraction ? w * (double)duration_ns : w * 1e9;
    if (ns >= 18446744073709549568.0)
        return UINT64_MAX;
    return (uint64_t)(ns + 0.5);
}

int
mh_analysis_add(struct mh_analysis *a, const char *path, const uint8_t *buf,
                size_t len)
{
    a->error[0] = '\0';
    if (!a->priv && !(a->priv = mh_calloc(1, sizeof(*a->priv))))
        return errorf(a, MH_ENOMEM, "%s", mh_strerror(MH_ENOMEM));
    if (a->nprocs >= MH_ANALYSIS_MAX_CAPTURES)
        return errorf(a, MH_ETOOBIG, "more than %d captures",
                      MH_ANALYSIS_MAX_CAPTURES);

    /* A first pass reads the clock (a warm-up given as a fraction needs
     * the duration) and sizes the live table; it also rejects a bad file
     * before the expensive pass. */
    struct mh_cap_reader r;
    struct mh_live_replay_clock clock;
    memset(&clock, 0, sizeof(clock));
    mh_cap_reader_init(&r);
    int rc = mh_cap_parse(&r, buf, len, mh_live_replay_clock_visit, &clock);
    if (rc)
        rc = reader_error(a, &r, rc);
    mh_cap_reader_release(&r);
    if (rc)
        return rc;
    uint64_t warm_end = warm_end_for(&a->opts, clock.t_ns);
    /* A fraction of a capture without a clock is no warm-up. */
    if (a->opts.warmup_fraction && clock.t_ns == 0)
        warm_end = 0;

    struct mh_live_replay rp;
    mh_cap_reader_init(&r);
    mh_live_replay_init(&rp, &r, warm_end,
                   clock.max_net > 0 ? (size_t)clock.max_net : 0);
    /* Requests and findings cost nothing in captures without them. */
    struct with_findings wf = {&rp, &a->findings};
    int follow = clock.requests || clock.tagged;
    rc = follow ? mh_live_replay_track_requests(&rp, &a->endpoints) : MH_OK;
    if (rc == MH_OK && clock.findings)
        rc = mh_findings_begin(&a->findings);
    if (rc) {
        mh_live_replay_release(&rp);
        return errorf(a, rc, "%s", mh_strerror(rc));
    }
    rc = clock.findings ? mh_cap_parse(&r, buf, len, visit_with_findings, &wf)
                        : mh_cap_parse(&r, buf, len, mh_live_replay_visit, &rp);
    if (rc > 0 && rp.err == MH_ETOOBIG && rp.err_requests)
        rc = errorf(a, MH_ETOOBIG,
                    "more requests in flight, or request sites, than the "
                    "report's limits");
    else if (rc > 0 && rp.err == MH_ETOOBIG)
        rc = errorf(a, MH_ETOOBIG,
                    "more than %zu blocks live at once (the report's limit)",
                    (size_t)MH_LIVE_REPLAY_MAX_LIVE);
    else if (rc > 0)
        rc = errorf(a, rp.err ? rp.err : MH_EFORMAT, "%s",
                    mh_strerror(rp.err ? rp.err : MH_EFORMAT));
    else if (rc)
        rc = reader_error(a, &r, rc);
    if (rc == MH_OK && (rc = mh_live_replay_finish(&rp)))
        errorf(a, rc, "%s", mh_strerror(rc));
    if (rc == MH_OK && clock.findings && (rc = mh_findings_end(&a->findings)))
        errorf(a, rc, "%s", mh_strerror(rc));
    if (rc == MH_OK) {
        double span = (double)rp.t_ns - (double)rp.warm_end_ns;
        rc = fold_all(a, &r, &rp, span > 0 ? span / 1e9 : 0);
        if (rc == MH_OK)
            rc = save_process(a, path, &r, &rp);
        if (rc && !a->error[0])
            errorf(a, rc, "%s", mh_strerror(rc));
    }
    mh_live_replay_release(&rp);
    mh_cap_reader_release(&r);
    return rc;
}

/* ---- finishing ------------------------------------------------------ */

size_t
mh_analysis_nframes(const struct mh_analysis *a, const struct mh_site *s)
{
    if (!s->frames)
        return 0;
    return mh_strpool_len(&a->strings, s->frames) /
           sizeof(struct mh_site_frame);
}

void
mh_analysis_frame(const struct mh_analysis *a, const struct mh_site *s,
                  size_t i, struct mh_site_frame *out)
{
    memcpy(out, mh_strpool_get(&a->strings, s->frames) + i * sizeof(*out),
           sizeof(*out));
}

static void
pick_user_frames(struct mh_analysis *a)
{
    struct mh_analysis_priv *p = a->priv;
    reduce_cands(&p->cands);
    double best = 0;
    for (size_t i = 0; i < p->cands.n; i++) {
        const struct cand *c = &p->cands.v[i];
        struct mh_site *s = &a->sites[c->site];
        double w = s->growth_bytes >= 0.5 ? c->growth : c->live;
        if (!s->has_user || w > best) {
            s->has_user = 1;
            s->user = c->f;
            s->user_direct = c->direct;
            best = w;
        }
        if (i + 1 < p->cands.n && p->cands.v[i + 1].site != c->site)
            best = 0;
    }
}

/* Weight of a candidate in list k (enum mh_via_list). */
static double
cand_weight(const struct cand *c, int k)
{
    return k == MH_VIA_GROWTH ? c->growth : c->live;
}

/* Names each site's via: of the callers of its user frame (when that is
 * the allocating line), the one behind most of the bytes that frame
 * allocated, growing or live, when it is behind at least
 * MH_VIA_MAJORITY of them. Call after pick_user_frames(). */
static int
pick_vias(struct mh_analysis *a)
{
    struct mh_analysis_priv *p = a->priv;
    reduce_cands(&p->vias);
    if (!p->vias.n)
        return MH_OK;
    /* The bytes behind each site's user frame, growing and live. */
    double *total = mh_calloc(a->nsites * 2, sizeof(*total));
    if (!total)
        return MH_ENOMEM;
    for (size_t i = 0; i < p->cands.n; i++) {
        const struct cand *c = &p->cands.v[i];
        const struct mh_site *s = &a->sites[c->site];
        if (s->has_user && !frame_cmp(&c->f, &s->user)) {
            total[c->site * 2 + MH_VIA_GROWTH] = c->growth;
            total[c->site * 2 + MH_VIA_LIVE] = c->live;
        }
    }
    for (size_t i = 0; i < p->vias.n; i++) {
        const struct cand *c = &p->vias.v[i];
        struct mh_site *s = &a->sites[c->site];
        if (!s->has_user || !s->user_direct || frame_cmp(&c->callee, &s->user))
            continue;
        for (int k = 0; k < 2; k++) {
            double w = cand_weight(c, k), t = total[c->site * 2 + k];
            if (t < 0.5 || w < 0.5 || w < MH_VIA_MAJORITY * t)
                continue;
            s->via[k].has = 1;
            s->via[k].f = c->f;
            s->via[k].share = w >= t ? 1.0 : w / t;
        }
    }
    mh_free(total);
    return MH_OK;
}

/* Site indices x and y in the order of their values a and b: largest
 * first, ties by index. */
static int
largest_first(double a, double b, const void *x, const void *y)
{
    if (a != b)
        return a > b ? -1 : 1;
    return *(const uint32_t *)x < *(const uint32_t *)y ? -1 : 1;
}

/* What a list ranks its sites by. */
enum pick { PICK_GROWTH, PICK_LIVE, PICK_RECENT, PICK_STARTUP };

static double
pick_value(const struct mh_site *s, enum pick what)
{
    switch (what) {
    case PICK_GROWTH:
        return s->growth_bytes;
    case PICK_LIVE:
        return s->live_bytes;
    case PICK_RECENT:
        return s->live_bytes - s->startup_bytes;
    case PICK_STARTUP:
        return s->startup_bytes;
    }
    return 0;
}

struct pick_ctx {
    const struct mh_site *sites;
    enum pick what;
};

static int
by_pick(const void *x, const void *y, void *ctx)
{
    const struct pick_ctx *c = ctx;
    const struct mh_site *a = &c->sites[*(const uint32_t *)x];
    const struct mh_site *b = &c->sites[*(const uint32_t *)y];
    /* Growth: the significant sites first (docs/report-json.md). */
    if (c->what == PICK_GROWTH && a->significant != b->significant)
        return a->significant ? -1 : 1;
    return largest_first(pick_value(&c->sites[*(const uint32_t *)x], c->what),
                         pick_value(&c->sites[*(const uint32_t *)y], c->what),
                         x, y);
}

/* Sites whose `what` rounds to at least a byte, best first, the top
 * opts.top of them. The caller owns *out. */
static int
select_sites(struct mh_analysis *a, enum pick what, uint32_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!a->nsites)
        return MH_OK;
    uint32_t *v = mh_calloc(a->nsites, sizeof(*v));
    if (!v)
        return MH_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < a->nsites; i++) {
        if (pick_value(&a->sites[i], what) >= 0.5)
            v[k++] = (uint32_t)i;
    }
    struct pick_ctx c = {a->sites, what};
    qsort_r(v, k, sizeof(*v), by_pick, &c);
    if (a->opts.top && k > a->opts.top)
        k = a->opts.top;
    *out = v;
    *n = k;
    return MH_OK;
}

/* Appends "file:line in function" (parts left out as the key has them). */
static int
put_frame(struct mh_analysis *a, struct mh_buf *b, uint32_t file, int has_line,
          uint32_t line, uint32_t function)
{
    int rc =
        mh_buf_put(b, mh_analysis_str(a, file), mh_analysis_strlen(a, file));
    if (rc == MH_OK && has_line)
        rc = line ? mh_buf_printf(b, ":%u", line) : mh_buf_put(b, ":?", 2);
    if (rc == MH_OK && function)
        rc = mh_buf_put(b, " in ", 4);
    if (rc == MH_OK && function)
        rc = mh_buf_put(b, mh_analysis_str(a, function),
                        mh_analysis_strlen(a, function));
    return rc;
}

/* Display keys are long for stacks; this is where they are cut. */
#define KEY_MAX (64u << 10)

static int
build_key(struct mh_analysis *a, struct mh_site *s)
{
    if (s->key)
        return MH_OK;
    struct mh_buf b;
    mh_buf_init(&b, (size_t)KEY_MAX + (size_t)MH_CAP_STR_MAX * 2 + 64);
    int rc = MH_OK;
    if (s->kind == MH_SITE_NOSTACK) {
        rc = mh_buf_printf(&b, "<no Python stack>");
    } else {
        switch (mh_analysis_site_by(a)) {
        case MH_BY_LINE:
        case MH_BY_ENDPOINT:
            rc = put_frame(a, &b, s->file, 1, s->line, s->function);
            break;
        case MH_BY_FUNCTION:
            rc = put_frame(a, &b, s->file, 0, 0, s->function);
            break;
        case MH_BY_FILE:
            rc = put_frame(a, &b, s->file, 0, 0, 0);
            break;
        case MH_BY_MODULE:
            rc = mh_buf_put(&b, mh_analysis_str(a, s->module),
                            mh_analysis_strlen(a, s->module));
            break;
        case MH_BY_STACK: {
            size_t n = mh_analysis_nframes(a, s);
            for (size_t i = 0; i < n && rc == MH_OK; i++) {
                if (b.len > KEY_MAX) {
                    rc = mh_buf_put(&b, " < ...", 6);
                    break;
                }
                struct mh_site_frame fr;
                mh_analysis_frame(a, s, i, &fr);
                if (i)
                    rc = mh_buf_put(&b, " < ", 3);
                if (rc == MH_OK)
                    rc = put_frame(a, &b, fr.file, 1, fr.line, fr.function);
            }
            break;
        }
        }
    }
    if (rc == MH_OK)
        rc = mh_strpool_intern(&a->strings, b.data ? (void *)b.data : "",
                               b.len, &s->key);
    mh_buf_release(&b);
    return rc;
}

static void
summarize(struct mh_analysis *a)
{
    struct mh_summary *m = &a->summary;
    uint64_t t0 = UINT64_MAX, t1 = 0;
    int mode = -2;
    for (size_t i = 0; i < a->nprocs; i++) {
        const struct mh_process *p = &a->procs[i];
        if (p->start_ns < t0)
            t0 = p->start_ns;
        if (p->start_ns + p->duration_ns > t1)
            t1 = p->start_ns + p->duration_ns;
        if (p->peak_rss > m->peak_rss)
            m->peak_rss = p->peak_rss;
        if (p->tracked_peak > m->tracked_peak)
            m->tracked_peak = p->tracked_peak;
        m->live_bytes += p->live_bytes;
        m->startup_bytes += p->startup_bytes;
        m->samples += p->samples;
        m->frees += p->frees;
        m->dropped += p->dropped;
        m->truncated |= p->truncated;
        m->warmup_past_end |= p->warmup_past_end;
        if (p->mode == MH_MODE_SAMPLE && p->interval > m->interval)
            m->interval = p->interval;
        if (p->have_header)
            mode = mode == -2             ? (int)p->mode
                   : mode == (int)p->mode ? mode
                                          : -1;
    }
    m->mode = mode;
    m->start_ns = a->nprocs ? t0 : 0;
    m->span_ns = a->nprocs ? t1 - t0 : 0;
    /* Several processes: the peaks of the sum, which the per-process
     * peaks bound from below. */
    if (a->nprocs > 1)
        for (size_t i = 0; i < a->ntimeline; i++) {
            if (a->timeline[i].rss > m->peak_rss)
                m->peak_rss = a->timeline[i].rss;
            if (a->timeline[i].live > m->tracked_peak)
                m->tracked_peak = a->timeline[i].live;
        }
    /* The live bytes summed are each process's at its own end: when the
     * processes did not all run at once (or allocated between the
     * timeline's ticks) that sum can exceed any sum seen at one time.
     * The peak then is the sum of each process's own peak, which bounds
     * every moment's sum and each end from above, and says so. */
    if (a->nprocs > 1 && m->live_bytes > m->tracked_peak) {
        double sum = 0;
        for (size_t i = 0; i < a->nprocs; i++)
            sum += a->procs[i].tracked_peak > a->procs[i].live_bytes
                       ? a->procs[i].tracked_peak
                       : a->procs[i].live_bytes;
        m->tracked_peak = sum;
        m->peak_summed = 1;
    }
    for (size_t i = 0; i < a->nsites; i++)
        if (a->sites[i].growth_bytes >= 0.5)
            m->growth_bytes += a->sites[i].growth_bytes;
    /* Noise floor: 64 KiB, two samples' worth in sampling mode, 0.1% of
     * the tracked peak, whichever is largest. */
    double floor = 64 * 1024;
    if (2.0 * (double)m->interval > floor)
        floor = 2.0 * (double)m->interval;
    if (m->tracked_peak / 1000 > floor)
        floor = m->tracked_peak / 1000;
    m->growth_floor = floor;
}

/* Ranks the endpoints and names their sites. */
static int
finish_endpoints(struct mh_analysis *a)
{
    int rc = mh_endpoints_finish(&a->endpoints, a->opts.sort, a->opts.top);
    if (rc)
        return rc;
    const struct sitetab *t = line_tab(a);
    for (size_t i = 0; i < a->endpoints.n; i++) {
        struct mh_endpoint *ep = &a->endpoints.v[i];
        for (size_t k = 0; k < ep->nsites; k++) {
            struct mh_ep_site *s = &ep->sites[k];
            if (s->site >= t->n || s->nostack)
                continue;
            const struct mh_site *site = &t->v[s->site];
            s->file = site->file;
            s->function = site->function;
            s->line = site->line;
        }
    }
    return MH_OK;
}

/* All processes' timelines on one axis. */
static int
merge_timelines(struct mh_analysis *a)
{
    if (!a->nprocs)
        return MH_OK;
    int rc;
    const struct mh_timeline **series = mh_calloc(a->nprocs, sizeof(*series));
    uint64_t *start = mh_calloc(a->nprocs, sizeof(*start));
    uint64_t *end = mh_calloc(a->nprocs, sizeof(*end));
    if (series && start && end) {
        for (size_t i = 0; i < a->nprocs; i++) {
            series[i] = &a->procs[i].timeline;
            start[i] = a->procs[i].start_ns;
            end[i] = a->procs[i].duration_ns;
        }
        rc = mh_timeline_merge(series, start, end, a->nprocs,
                               MH_ANALYSIS_TIMELINE_POINTS, &a->timeline,
                               &a->ntimeline);
    } else {
        rc = MH_ENOMEM;
    }
    mh_free((void *)series);
    mh_free(start);
    mh_free(end);
    return rc;
}

/* Each site's growth interval and significance mark (the noise floor is
 * known: summarize() ran). */
static void
mark_sites(struct mh_analysis *a)
{
    for (size_t i = 0; i < a->nsites; i++) {
        struct mh_site *s = &a->sites[i];
        double half = 1.96 * sqrt(s->growth_var);
        s->growth_lo = s->growth_bytes - half;
        s->growth_hi = s->growth_bytes + half;
        s->significant = mh_slope_mark(s->growth_lo, s->growth_bytes,
                                       a->summary.growth_floor);
    }
}

int
mh_analysis_finish(struct mh_analysis *a)
{
    if (!a->priv && !(a->priv = mh_calloc(1, sizeof(*a->priv))))
        return MH_ENOMEM;
    pick_user_frames(a);
    if (pick_vias(a))
        return errorf(a, MH_ENOMEM, "%s", mh_strerror(MH_ENOMEM));
    double total = 0;
    for (size_t i = 0; i < a->nsites; i++)
        if (a->sites[i].growth_bytes >= 0.5)
            total += a->sites[i].growth_bytes;
    for (size_t i = 0; i < a->nsites; i++) {
        struct mh_site *s = &a->sites[i];
        s->share =
            total > 0 && s->growth_bytes >= 0.5 ? s->growth_bytes / total : 0;
    }
    int rc = merge_timelines(a);
    if (rc == MH_OK) {
        summarize(a);
        mark_sites(a);
        rc = select_sites(a, PICK_GROWTH, &a->growth, &a->ngrowth);
    }
    if (rc == MH_OK)
        rc = select_sites(a, PICK_LIVE, &a->live, &a->nlive);
    if (rc == MH_OK)
        rc = select_sites(a, PICK_RECENT, &a->live_recent, &a->nlive_recent);
    if (rc == MH_OK)
        rc =
            select_sites(a, PICK_STARTUP, &a->live_startup, &a->nlive_startup);
    for (size_t i = 0; i < a->ngrowth && rc == MH_OK; i++)
        rc = build_key(a, &a->sites[a->growth[i]]);
    for (size_t i = 0; i < a->nlive && rc == MH_OK; i++)
        rc = build_key(a, &a->sites[a->live[i]]);
    for (size_t i = 0; i < a->nlive_recent && rc == MH_OK; i++)
        rc = build_key(a, &a->sites[a->live_recent[i]]);
    for (size_t i = 0; i < a->nlive_startup && rc == MH_OK; i++)
        rc = build_key(a, &a->sites[a->live_startup[i]]);
    if (rc == MH_OK) {
        a->endpoints.floor = a->summary.growth_floor;
        rc = finish_endpoints(a);
    }
    if (rc == MH_OK)
        rc = mh_findings_finish(&a->findings);
    if (rc)
        return errorf(a, rc, "%s", mh_strerror(rc));
    /* The largest growth, whether or not significant, decides. */
    for (size_t i = 0; i < a->ngrowth; i++)
        if (a->sites[a->growth[i]].growth_bytes >= a->summary.growth_floor)
            a->summary.growth_found = 1;
    return MH_OK;
}
