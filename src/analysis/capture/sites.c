/* Sites: each stack of a capture folded into its site (by the key --by
 * chooses), found by a key of string ids, so the same site in two
 * captures (whose own ids differ) merges; the user frames and callers
 * behind each site, and the endpoints' (endpoint, line site) pairs. Part
 * of the capture analysis (analysis.h). */
#include <stdlib.h>
#include <string.h>

#include "../../util/mem.h"
#include "analysis.h"
#include "analysis_priv.h"
#include "codepath.h"

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
        return mh_analysis_errorf(a, MH_ETOOBIG, "more than %zu sites",
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
struct sitetab *
mh_analysis_line_tab(struct mh_analysis *a)
{
    return mh_analysis_site_by(a) == MH_BY_LINE ? &a->priv->main
                                                : &a->priv->line;
}

static int
add_cand(struct mh_analysis *a, struct candlist *l, const struct cand *c)
{
    if (l->n == l->cap) {
        if (l->cap >= MH_ANALYSIS_MAX_SITES)
            return mh_analysis_errorf(a, MH_ETOOBIG, "too many call sites");
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

int
mh_analysis_frame_cmp(const struct mh_site_frame *a,
                      const struct mh_site_frame *b)
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
    int c = mh_analysis_frame_cmp(&a->f, &b->f);
    return c ? c : mh_analysis_frame_cmp(&a->callee, &b->callee);
}

/* Sorts the candidates and sums duplicates, so they stay as many as the
 * distinct (site, user frame) pairs. */
void
mh_analysis_reduce_cands(struct candlist *l)
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
                      r->strings[si].n,
                      ni < r->nstrings ? r->strings[ni].s : "",
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
    if (*depth && (st->first > r->nstack_frames ||
                   *depth > r->nstack_frames - st->first))
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

    struct cand c = {.site = idx, .growth = eb - wb, .live = eb};
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
    struct sitetab *t = mh_analysis_line_tab(a);
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
        rc = mh_endpoints_site_add(
            &a->endpoints, ep, idx, t->v[idx].kind == MH_SITE_NOSTACK,
            allocated, retained, has_user ? user : NULL, direct);
        if (rc)
            return rc;
    }
    return MH_OK;
}

int
mh_analysis_fold(struct mh_analysis *a, const struct mh_cap_reader *r,
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
        mh_analysis_reduce_cands(&a->priv->cands);
        mh_analysis_reduce_cands(&a->priv->vias);
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
