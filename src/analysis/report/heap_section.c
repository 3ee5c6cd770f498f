/* The joined leak report (heap_section.h): a capture's heap-dump markers, the
 * first and last dumps they name, and the capture's stacks, read
 * together. Growth by type, retention paths and the live-but-unreachable
 * join come from the `memhound heap` analyses (session.h, diff.h,
 * why.h, unreachable.h); this file adds the allocation sites of the
 * growing types and the growth of leaks between the two dumps. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../format/capture_read.h"
#include "../../format/heap_read.h"
#include "../../util/addrmap.h"
#include "../../util/buf.h"
#include "../../util/mem.h"
#include "../capture/codepath.h"
#include "../heap/unreachable.h"
#include "../heap/session.h"
#include "../heap/diff.h"
#include "../heap/why.h"
#include "heap_section.h"

#define TOP_SITES 5
#define TOP_PATHS 5
#define TOP_LEAKS 10
#define MAX_ACCS ((size_t)1 << 22)

void
mh_heap_section_init(struct mh_heap_section *j,
                     const struct mh_heap_section_files *files)
{
    memset(j, 0, sizeof(*j));
    j->files = files;
    mh_strpool_init(&j->strings, MH_HEAP_SECTION_MAX_STRINGS);
}

static void
free_proc(struct mh_heap_section_proc *p)
{
    for (size_t i = 0; i < p->ntypes; i++) {
        mh_free(p->types[i].sites);
        mh_free(p->types[i].paths);
    }
    mh_free(p->types);
    mh_free(p->leaks);
}

void
mh_heap_section_release(struct mh_heap_section *j)
{
    for (size_t i = 0; i < j->nprocs; i++)
        free_proc(&j->procs[i]);
    mh_free(j->procs);
    mh_free(j->dumps);
    mh_strpool_release(&j->strings);
    memset(j, 0, sizeof(*j));
}

static int
fail(struct mh_heap_section *j, int rc, const char *what)
{
    snprintf(j->error, sizeof(j->error), "%s: %s", what, mh_strerror(rc));
    return rc;
}

static int
intern(struct mh_heap_section *j, const char *s, size_t n, uint32_t *id)
{
    return mh_strpool_intern(&j->strings, s, n, id);
}

static int
internz(struct mh_heap_section *j, const char *s, uint32_t *id)
{
    return intern(j, s, strlen(s), id);
}

/* ---- markers ---- */

struct marker_scan {
    struct mh_heap_section *j;
    uint32_t capture;
    char dir[4096]; /* the capture's directory, for relative paths */
    int err;
};

static int
add_dump(struct mh_heap_section *j, uint32_t path, uint32_t capture, double t)
{
    if (j->ndumps >= MH_HEAP_SECTION_MAX_DUMPS)
        return MH_OK; /* listed up to the cap; the rest are ignored */
    if (j->ndumps == j->dumps_cap) {
        size_t cap = j->dumps_cap ? 2 * j->dumps_cap : 16;
        struct mh_heap_section_dump *d = mh_realloc(j->dumps, cap * sizeof(*d));
        if (!d)
            return MH_ENOMEM;
        j->dumps = d;
        j->dumps_cap = cap;
    }
    struct mh_heap_section_dump *d = &j->dumps[j->ndumps++];
    memset(d, 0, sizeof(*d));
    d->path = path;
    d->capture = capture;
    d->t = t;
    d->exists = j->files->exists(mh_heap_section_str(j, path));
    return MH_OK;
}

/* A capture names its dumps by absolute path. Moved (another machine,
 * an archive) together with its dumps, it finds them beside it: when the
 * named file is gone and one of the same name sits in the capture's
 * directory, that one is meant (whose pid the join still checks). `b`
 * holds the named path, NUL-free; it is replaced in place. */
static int
beside_capture(const struct marker_scan *ms, const struct mh_str *t,
               struct mh_buf *b)
{
    if (t->s[0] != '/')
        return MH_OK;
    int rc = mh_buf_put(b, "", 1); /* a C string for exists() */
    if (rc)
        return rc;
    b->len--;
    if (ms->j->files->exists((const char *)b->data))
        return MH_OK;
    const char *slash = memrchr(t->s, '/', t->n);
    size_t n = t->n - (size_t)(slash + 1 - t->s);
    if (!n)
        return MH_OK;
    struct mh_buf alt;
    mh_buf_init(&alt, 2 * 4096 + 16);
    rc = ms->dir[0] ? mh_buf_printf(&alt, "%s/", ms->dir) : MH_OK;
    if (!rc)
        rc = mh_buf_put(&alt, slash + 1, n);
    if (!rc)
        rc = mh_buf_put(&alt, "", 1);
    if (!rc && ms->j->files->exists((const char *)alt.data)) {
        mh_buf_reset(b);
        rc = mh_buf_put(b, alt.data, alt.len - 1);
    }
    mh_buf_release(&alt);
    return rc;
}

static int
scan_visit(void *ctx, const struct mh_cap_event *ev)
{
    struct marker_scan *ms = ctx;
    if (ev->kind != MH_EV_MARKER || ev->u.marker.kind != MH_MARK_HEAP_DUMP ||
        !ev->u.marker.text.n)
        return 0;
    struct mh_buf b;
    mh_buf_init(&b, 2 * 4096 + 16);
    const struct mh_str *t = &ev->u.marker.text;
    int rc = MH_OK;
    if (t->s[0] != '/' && ms->dir[0])
        rc = mh_buf_printf(&b, "%s/", ms->dir);
    if (!rc)
        rc = mh_buf_put(&b, t->s, t->n);
    if (!rc)
        rc = beside_capture(ms, t, &b);
    uint32_t id = 0;
    if (!rc)
        rc = intern(ms->j, (const char *)b.data, b.len, &id);
    mh_buf_release(&b);
    if (!rc)
        rc = add_dump(ms->j, id, ms->capture, (double)ev->u.marker.t_ns / 1e9);
    if (rc) {
        ms->err = rc == MH_ETOOBIG ? MH_OK : rc; /* a path past the cap:
                                                   skipped */
        return rc == MH_ETOOBIG ? 0 : 1;
    }
    return 0;
}

/* ---- reading dumps ---- */

/* Loads dump i for the heap analyses. Its types go to a table of their
 * own here (the join regroups both dumps in one table once it knows
 * which two it compares). A dump that cannot be used is marked with why.
 * Returns 1 when loaded. */
static int
load(struct mh_heap_section *j, size_t i, struct mh_heap_session *an)
{
    struct mh_heap_section_dump *jd = &j->dumps[i];
    char why[400];
    const uint8_t *data;
    size_t len;
    void *handle;
    mh_heap_session_init(an);
    int rc = j->files->map(mh_heap_section_str(j, jd->path), &data, &len,
                           &handle, why, sizeof(why));
    if (rc)
        goto bad;
    struct mh_heap_types own;
    mh_heap_types_init(&own);
    rc = mh_heap_session_load(an, &own, data, len, 0);
    mh_heap_types_release(&own);
    j->files->unmap(handle);
    if (rc) {
        snprintf(why, sizeof(why), "%s", an->error);
        goto bad;
    }
    if (!an->dump.have_end || an->dump.truncated) {
        snprintf(why, sizeof(why),
                 "incomplete (no END record: the walk was still running "
                 "or was killed)");
        goto bad;
    }
    return 1;
bad:
    mh_heap_session_release(an);
    jd->status = MH_JDUMP_BAD;
    if (internz(j, why, &jd->reason))
        jd->reason = 0;
    return 0;
}

/* Puts both dumps' types in one table (for the diff and the paths). */
static int
regroup(struct mh_heap_types *t, struct mh_heap_session *an)
{
    mh_free(an->group);
    an->group = NULL;
    return mh_heap_types_add(t, &an->dump, &an->group);
}

/* ---- sites ---- */

/* What a capture stack is, as names: its innermost frame and the
 * innermost frame in user code. Memoised per stack index. */
struct sites {
    const struct mh_cap_reader *r;
    uint32_t *site_of;           /* stack index -> site id + 1; 0 = not yet */
    struct mh_heap_section_site *list; /* site ids index this */
    size_t n, cap;
    struct mh_addrmap by_key; /* interned key string id -> site id + 1 */
};

static int
frame_names(struct mh_heap_section *j, const struct mh_cap_reader *r, uint32_t fr,
            uint32_t *file, uint32_t *fn, uint32_t *line)
{
    const struct mh_cap_frame *f = &r->frames[fr];
    const struct mh_cap_code *c = &r->codes[f->code];
    *line = f->line;
    int rc = internz(j, mh_cap_str(r, c->filename), file);
    return rc ? rc : internz(j, mh_cap_str(r, c->name), fn);
}

static int
site_of_stack(struct mh_heap_section *j, struct sites *s, uint64_t stack_id,
              uint32_t *out)
{
    const struct mh_cap_reader *r = s->r;
    uint32_t idx = mh_cap_stack_index(r, stack_id);
    if (idx && s->site_of[idx]) {
        *out = s->site_of[idx] - 1;
        return MH_OK;
    }
    struct mh_heap_section_site site;
    memset(&site, 0, sizeof(site));
    int rc = MH_OK;
    if (idx && r->stacks[idx].depth) {
        const struct mh_cap_stack *st = &r->stacks[idx];
        uint32_t inner = r->stack_frames[st->first];
        rc = frame_names(j, r, inner, &site.file, &site.function, &site.line);
        const struct mh_cap_header *h = &r->header;
        for (uint32_t k = 0; !rc && k < st->depth; k++) {
            uint32_t fr = r->stack_frames[st->first + k];
            const struct mh_cap_code *c = &r->codes[r->frames[fr].code];
            const char *file = mh_cap_str(r, c->filename);
            const char *func = mh_cap_str(r, c->name);
            enum mh_codekind kind = mh_codepath_kind(
                r->have_header ? h->lib_prefixes : NULL,
                r->have_header ? h->nlib : 0, file, strlen(file), func,
                strlen(func));
            if (k > 0 && mh_codepath_ends_callers(kind))
                break;
            if (!mh_codepath_user_frame(kind, k == 0))
                continue;
            if (k > 0)
                rc = frame_names(j, r, fr, &site.user_file,
                                 &site.user_function, &site.user_line);
            break;
        }
    }
    if (rc)
        return rc;
    /* One site per distinct (file, function, line, user frame). */
    char key[96];
    int n = snprintf(key, sizeof(key), "%u:%u:%u:%u:%u:%u", site.file,
                     site.function, site.line, site.user_file,
                     site.user_function, site.user_line);
    uint32_t kid;
    if ((rc = intern(j, key, (size_t)n, &kid)))
        return rc;
    uint64_t v;
    if (mh_addrmap_get(&s->by_key, kid + 1, &v)) {
        *out = (uint32_t)(v - 1);
    } else {
        if (s->n == s->cap) {
            size_t cap = s->cap ? 2 * s->cap : 64;
            struct mh_heap_section_site *l = mh_realloc(s->list, cap * sizeof(*l));
            if (!l)
                return MH_ENOMEM;
            s->list = l;
            s->cap = cap;
        }
        s->list[s->n] = site;
        *out = (uint32_t)s->n++;
        if ((rc = mh_addrmap_put(&s->by_key, kid + 1, *out + 1)))
            return rc;
    }
    if (idx)
        s->site_of[idx] = *out + 1;
    return MH_OK;
}

/* ---- accumulating ALLOC records ---- */

/* A bucket: (what, site) -> estimates in the old and new dumps. `what`
 * is a type slot (selected types) or a leak kind and type group. */
struct acc {
    uint32_t what, site;
    double bytes[2], count[2]; /* [0] old dump, [1] new dump */
};

struct accs {
    struct mh_addrmap map; /* what << 32 | site, + 1 -> index + 1 */
    struct acc *list;
    size_t n, cap;
};

static int
acc_add(struct accs *a, uint32_t what, uint32_t site, int which, double bytes,
        double count)
{
    uint64_t key = ((uint64_t)what << 32 | site) + 1, v;
    struct acc *e;
    if (mh_addrmap_get(&a->map, key, &v)) {
        e = &a->list[v - 1];
    } else {
        if (a->n == a->cap) {
            size_t cap = a->cap ? 2 * a->cap : 256;
            if (cap > MAX_ACCS)
                return MH_ETOOBIG;
            struct acc *l = mh_realloc(a->list, cap * sizeof(*l));
            if (!l)
                return MH_ENOMEM;
            a->list = l;
            a->cap = cap;
        }
        int rc = mh_addrmap_put(&a->map, key, a->n + 1);
        if (rc)
            return rc;
        e = &a->list[a->n++];
        memset(e, 0, sizeof(*e));
        e->what = what;
        e->site = site;
    }
    e->bytes[which] += bytes;
    e->count[which] += count;
    return MH_OK;
}

/* The estimate one ALLOC record stands for (docs/capture-format.md). */
static void
weight(uint64_t interval, uint64_t size, double *bytes, double *count)
{
    if (!interval || !size) {
        *bytes = (double)size;
        *count = 1;
        return;
    }
    double p = -expm1(-(double)size / (double)interval);
    *bytes = (double)size / p;
    *count = 1 / p;
}

#define WHAT_LEAK 0x80000000u
#define WHAT_KIND_SHIFT 28
#define WHAT_GROUP_MASK ((1u << WHAT_KIND_SHIFT) - 1)

/* Adds the ALLOC records of one dump that hold a walked object of a
 * selected type (slot[group] != UINT32_MAX) to their type's sites. Blocks
 * that look like objects the walk never found are not in the type's
 * counts either: they are leaks (scan_leaks). */
static int
scan_allocs(struct mh_heap_section *j, struct sites *s, struct accs *a,
            const struct mh_heap_session *an, const uint32_t *slot, int which)
{
    const struct mh_heap_image *d = &an->dump;
    uint64_t interval = d->header.sample_interval;
    for (uint32_t i = 0; i < d->nallocs; i++) {
        const struct mh_heap_alloc *al = &d->allocs[i];
        if (al->obj == MH_HEAP_NONE)
            continue;
        uint32_t type = d->type[al->obj];
        if (slot[an->group[type]] == UINT32_MAX)
            continue; /* not of a type that grew */
        uint32_t site;
        int rc = site_of_stack(j, s, al->stack, &site);
        if (rc)
            return rc;
        double bytes, count;
        weight(interval, al->size, &bytes, &count);
        if ((rc =
                 acc_add(a, slot[an->group[type]], site, which, bytes, count)))
            return rc;
    }
    return MH_OK;
}

/* Adds one dump's live-but-unreachable rows (unreachable.h) to the leak
 * buckets. */
static int
scan_leaks(struct mh_heap_section *j, struct sites *s, struct accs *a,
           const struct mh_heap_session *an, int which)
{
    struct mh_unreachable lu;
    mh_unreachable_init(&lu);
    int rc = mh_unreachable_build(&lu, &an->graph, an->group, NULL, s->r);
    for (uint32_t i = 0; !rc && i < lu.n; i++) {
        const struct mh_unreachable_row *r = &lu.rows[i];
        uint32_t site, kind;
        if (r->group != UINT32_MAX && r->group > WHAT_GROUP_MASK)
            continue;
        switch (r->reason) {
        case MH_UNREACHABLE_EXT:
            kind = MH_LEAK_HIDDEN;
            break;
        case MH_UNREACHABLE_GARBAGE:
            kind = MH_LEAK_GARBAGE;
            break;
        default:
            kind = MH_LEAK_UNREACHABLE;
            break;
        }
        rc = site_of_stack(j, s, r->stack, &site);
        if (!rc)
            rc = acc_add(
                a,
                WHAT_LEAK | kind << WHAT_KIND_SHIFT |
                    (r->group == UINT32_MAX ? WHAT_GROUP_MASK : r->group),
                site, which, r->est_bytes, r->est_count);
    }
    mh_unreachable_release(&lu);
    return rc;
}

/* ---- the join ---- */

static int
by_growth(const void *x, const void *y)
{
    const struct mh_heap_section_site *a = x, *b = y;
    if (a->growth_bytes != b->growth_bytes)
        return a->growth_bytes > b->growth_bytes ? -1 : 1;
    return a->bytes > b->bytes ? -1 : a->bytes < b->bytes;
}

static int
leak_by_growth(const void *x, const void *y)
{
    const struct mh_heap_section_leak *a = x, *b = y;
    return by_growth(&a->site, &b->site);
}

static void
fill_site(struct mh_heap_section_site *out, const struct sites *s,
          const struct acc *e)
{
    *out = s->list[e->site];
    out->bytes = e->bytes[1];
    out->count = e->count[1];
    out->growth_bytes = e->bytes[1] - e->bytes[0];
    out->growth_count = e->count[1] - e->count[0];
}

/* Sites of each selected type, and the leak groups that grew. */
static int
collect(struct mh_heap_section *j, struct mh_heap_section_proc *p, const struct sites *s,
        const struct accs *a, const struct mh_heap_types *types)
{
    for (size_t t = 0; t < p->ntypes; t++) {
        struct mh_heap_section_type *ty = &p->types[t];
        size_t n = 0;
        for (size_t i = 0; i < a->n; i++)
            n += a->list[i].what == t;
        if (!n)
            continue;
        ty->sites = mh_calloc(n, sizeof(*ty->sites));
        if (!ty->sites)
            return MH_ENOMEM;
        for (size_t i = 0; i < a->n; i++)
            if (a->list[i].what == t)
                fill_site(&ty->sites[ty->nsites++], s, &a->list[i]);
        qsort(ty->sites, ty->nsites, sizeof(*ty->sites), by_growth);
        if (ty->nsites > TOP_SITES)
            ty->nsites = TOP_SITES;
    }
    size_t n = 0;
    for (size_t i = 0; i < a->n; i++)
        n += (a->list[i].what & WHAT_LEAK) &&
             a->list[i].bytes[1] - a->list[i].bytes[0] > 0;
    if (!n)
        return MH_OK;
    p->leaks = mh_calloc(n, sizeof(*p->leaks));
    if (!p->leaks)
        return MH_ENOMEM;
    for (size_t i = 0; i < a->n; i++) {
        const struct acc *e = &a->list[i];
        if (!(e->what & WHAT_LEAK) || e->bytes[1] - e->bytes[0] <= 0)
            continue;
        struct mh_heap_section_leak *l = &p->leaks[p->nleaks++];
        l->kind = (enum mh_heap_section_leak_kind)((e->what & ~WHAT_LEAK) >>
                                             WHAT_KIND_SHIFT);
        l->type = e->what & WHAT_GROUP_MASK; /* a group until named */
        fill_site(&l->site, s, e);
    }
    qsort(p->leaks, p->nleaks, sizeof(*p->leaks), leak_by_growth);
    if (p->nleaks > TOP_LEAKS)
        p->nleaks = TOP_LEAKS;
    for (size_t i = 0; i < p->nleaks; i++) {
        uint32_t g = p->leaks[i].type;
        int rc = internz(j, g < types->n ? types->names[g] : "?",
                         &p->leaks[i].type);
        if (rc)
            return rc;
    }
    return MH_OK;
}

/* Grouped retention paths of the objects of each selected type that
 * are new in the last dump (diff.h's identity). */
static int
type_paths(struct mh_heap_section *j, struct mh_heap_section_proc *p,
           const struct mh_heap_session *cur, const struct mh_heap_diff *df,
           const struct mh_heap_types *types, const uint32_t *groups)
{
    const struct mh_heap_image *d = &cur->dump;
    int rc = MH_OK;
    for (size_t t = 0; t < p->ntypes && !rc; t++) {
        struct mh_heap_section_type *ty = &p->types[t];
        struct mh_heap_why w;
        mh_heap_why_init(&w);
        rc = mh_heap_why_select_type(&w, cur, groups[t], types->n);
        if (!rc) {
            for (uint32_t o = 0; o < d->nobjs; o++)
                w.sel[o] = w.sel[o] && df->is_new[o];
            rc = mh_heap_why_build(&w, cur, types);
        }
        uint32_t n = w.paths.n < TOP_PATHS ? w.paths.n : TOP_PATHS;
        if (!rc && n && !(ty->paths = mh_calloc(n, sizeof(*ty->paths))))
            rc = MH_ENOMEM;
        for (uint32_t i = 0; !rc && i < n; i++) {
            struct mh_heap_section_path *jp = &ty->paths[ty->npaths++];
            jp->count = w.paths.rows[i].count;
            jp->bytes = w.paths.rows[i].bytes;
            rc = internz(j, w.paths.rows[i].path, &jp->text);
        }
        mh_heap_why_release(&w);
    }
    return rc;
}

static int
join(struct mh_heap_section *j, const struct mh_cap_reader *r, size_t iold,
     size_t inew, struct mh_heap_session *old, struct mh_heap_session *cur,
     size_t max_types)
{
    struct mh_heap_types types;
    struct mh_heap_diff df;
    uint32_t *slot = NULL, *groups = NULL;
    struct sites s;
    struct accs a;
    memset(&s, 0, sizeof(s));
    memset(&a, 0, sizeof(a));
    mh_addrmap_init(&s.by_key, MAX_ACCS);
    mh_addrmap_init(&a.map, MAX_ACCS);
    mh_heap_types_init(&types);
    mh_heap_diff_init(&df);

    if (j->nprocs == j->procs_cap) {
        size_t cap = j->procs_cap ? 2 * j->procs_cap : 4;
        struct mh_heap_section_proc *pp = mh_realloc(j->procs, cap * sizeof(*pp));
        if (!pp)
            return fail(j, MH_ENOMEM, "cannot join heap dumps");
        j->procs = pp;
        j->procs_cap = cap;
    }
    const struct mh_heap_image *od = &old->dump, *nd = &cur->dump;
    struct mh_heap_section_proc *p = &j->procs[j->nprocs];
    memset(p, 0, sizeof(*p));
    p->pid = r->have_header ? r->header.pid : nd->header.pid;
    p->capture = j->dumps[inew].capture;
    p->old_dump = (uint32_t)iold;
    p->new_dump = (uint32_t)inew;
    p->seconds =
        (double)(int64_t)(nd->header.time_ns - od->header.time_ns) / 1e9;
    p->old_objects = od->nobjs;
    p->new_objects = nd->nobjs;
    for (uint32_t o = 0; o < od->nobjs; o++)
        p->old_bytes += od->size[o];
    for (uint32_t o = 0; o < nd->nobjs; o++)
        p->new_bytes += nd->size[o];
    p->sampled = nd->header.sample_interval != 0;
    p->has_allocs = nd->nallocs > 0;

    int rc = regroup(&types, old);
    if (!rc)
        rc = regroup(&types, cur);
    if (!rc)
        rc = mh_heap_diff_build(&df, old, cur, types.n);
    if (rc)
        goto done;

    /* What grows: the types whose bytes grew, largest first (the diff's
     * order), at most max_types. */
    size_t ngrew = 0;
    for (uint32_t i = 0; i < df.n && ngrew < max_types; i++)
        ngrew += df.rows[i].bytes_delta > 0;
    p->types = mh_calloc(ngrew ? ngrew : 1, sizeof(*p->types));
    groups = mh_calloc(ngrew ? ngrew : 1, sizeof(*groups));
    slot = mh_malloc((types.n ? types.n : 1) * sizeof(uint32_t));
    if (!p->types || !groups || !slot) {
        rc = MH_ENOMEM;
        goto done;
    }
    for (uint32_t g = 0; g < types.n; g++)
        slot[g] = UINT32_MAX;
    for (uint32_t i = 0; i < df.n && p->ntypes < ngrew; i++) {
        const struct mh_heap_diff_row *row = &df.rows[i];
        if (row->bytes_delta <= 0)
            continue;
        struct mh_heap_section_type *ty = &p->types[p->ntypes];
        ty->count = row->count;
        ty->bytes = row->bytes;
        ty->count_delta = row->count_delta;
        ty->bytes_delta = row->bytes_delta;
        groups[p->ntypes] = row->group;
        slot[row->group] = (uint32_t)p->ntypes++;
        if ((rc = internz(j, types.names[row->group], &ty->name)))
            goto done;
    }

    /* Where it was allocated, and what leaked below Python. */
    s.r = r;
    s.site_of = mh_calloc(r->nstacks ? r->nstacks : 1, sizeof(uint32_t));
    if (!s.site_of) {
        rc = MH_ENOMEM;
        goto done;
    }
    if ((rc = scan_allocs(j, &s, &a, old, slot, 0)) ||
        (rc = scan_allocs(j, &s, &a, cur, slot, 1)) ||
        (rc = scan_leaks(j, &s, &a, old, 0)) ||
        (rc = scan_leaks(j, &s, &a, cur, 1)) ||
        (rc = collect(j, p, &s, &a, &types)))
        goto done;

    /* Who holds it. */
    rc = type_paths(j, p, cur, &df, &types, groups);
done:
    if (rc) {
        free_proc(p);
        fail(j, rc, "cannot join heap dumps");
    } else {
        j->nprocs++;
    }
    mh_free(slot);
    mh_free(groups);
    mh_free(s.site_of);
    mh_free(s.list);
    mh_addrmap_release(&s.by_key);
    mh_free(a.list);
    mh_addrmap_release(&a.map);
    mh_heap_diff_release(&df);
    mh_heap_types_release(&types);
    return rc;
}

/* Of this capture's dumps [first, end): the first and last that read
 * whole. */
static int
join_capture(struct mh_heap_section *j, const struct mh_cap_reader *r, size_t first,
             size_t end, size_t max_types)
{
    size_t n = 0;
    for (size_t i = first; i < end; i++)
        n += j->dumps[i].exists;
    if (n < 2)
        return MH_OK;
    struct mh_heap_session anew, aold;
    size_t inew = end, iold = end;
    for (size_t i = end; i-- > first;) {
        if (j->dumps[i].exists && load(j, i, &anew)) {
            inew = i;
            break;
        }
    }
    if (inew == end)
        return MH_OK;
    for (size_t i = first; i < inew; i++) {
        if (j->dumps[i].exists && load(j, i, &aold)) {
            iold = i;
            break;
        }
    }
    if (iold == end) {
        mh_heap_session_release(&anew);
        return MH_OK;
    }
    /* A dump whose header names another process was copied over: say
     * so, do not compare. */
    int rc = MH_OK;
    uint64_t pid = r->have_header ? r->header.pid : anew.dump.header.pid;
    size_t other = aold.dump.header.pid != pid   ? iold
                   : anew.dump.header.pid != pid ? inew
                                                 : end;
    if (other != end) {
        struct mh_heap_section_dump *jd = &j->dumps[other];
        jd->status = MH_JDUMP_BAD;
        if (internz(j, "written by another process than the capture's",
                    &jd->reason))
            jd->reason = 0;
    } else {
        j->dumps[iold].status = j->dumps[inew].status = MH_JDUMP_USED;
        rc = join(j, r, iold, inew, &aold, &anew, max_types);
    }
    mh_heap_session_release(&aold);
    mh_heap_session_release(&anew);
    return rc;
}

int
mh_heap_section_add(struct mh_heap_section *j, const char *path, const uint8_t *buf,
              size_t len, size_t max_types)
{
    struct mh_cap_reader r;
    struct marker_scan ms;
    memset(&ms, 0, sizeof(ms));
    ms.j = j;
    const char *slash = strrchr(path, '/');
    if (slash && (size_t)(slash - path) < sizeof(ms.dir))
        snprintf(ms.dir, sizeof(ms.dir), "%.*s", (int)(slash - path), path);
    int rc = internz(j, path, &ms.capture);
    if (rc)
        return fail(j, rc, "cannot list heap dumps");
    j->ncaptures++;
    size_t first = j->ndumps;
    mh_cap_reader_init(&r);
    rc = mh_cap_parse(&r, buf, len, scan_visit, &ms);
    if (rc) {
        if (ms.err)
            fail(j, ms.err, "cannot list heap dumps");
        else
            snprintf(j->error, sizeof(j->error), "%s", r.error);
        mh_cap_reader_release(&r);
        return ms.err ? ms.err : rc;
    }
    uint64_t pid = r.have_header ? r.header.pid : 0;
    for (size_t i = first; i < j->ndumps; i++)
        j->dumps[i].pid = pid;
    rc = join_capture(j, &r, first, j->ndumps, max_types ? max_types : 10);
    mh_cap_reader_release(&r);
    return rc;
}

static int
proc_by_growth(const void *x, const void *y)
{
    const struct mh_heap_section_proc *a = x, *b = y;
    int64_t ga = (int64_t)a->new_bytes - (int64_t)a->old_bytes;
    int64_t gb = (int64_t)b->new_bytes - (int64_t)b->old_bytes;
    return ga > gb ? -1 : ga < gb;
}

void
mh_heap_section_finish(struct mh_heap_section *j)
{
    if (j->nprocs > 1)
        qsort(j->procs, j->nprocs, sizeof(*j->procs), proc_by_growth);
}
