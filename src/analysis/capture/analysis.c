/* Captures -> sites -> the report's result (see analysis.h).
 *
 * Per capture: a cheap first pass reads only the clock (a warm-up given
 * as a fraction needs the duration) and counts blocks (to size the live
 * table once), the second replays (live_replay.h). Then each stack with
 * something live at the warm-up end or at the end is folded into its
 * site, found by a key of string ids, so the same site in two captures
 * (whose own ids differ) merges. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../../format/capture_read.h"
#include "../../util/mem.h"
#include "analysis.h"
#include "analysis_priv.h"
#include "live_replay.h"

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

int
mh_analysis_errorf(struct mh_analysis *a, int rc, const char *fmt, ...)
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
        return mh_analysis_errorf(a, rc, "%s", r->error[0] ? r->error : mh_strerror(rc));
    if (strstr(r->error, "offset"))
        return mh_analysis_errorf(a, rc, "%s", r->error);
    return mh_analysis_errorf(a, rc, "at offset %llu: %s",
                  (unsigned long long)r->error_offset,
                  r->error[0] ? r->error : mh_strerror(rc));
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
        return mh_analysis_errorf(a, MH_ENOMEM, "%s", mh_strerror(MH_ENOMEM));
    if (a->nprocs >= MH_ANALYSIS_MAX_CAPTURES)
        return mh_analysis_errorf(a, MH_ETOOBIG, "more than %d captures",
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
        return mh_analysis_errorf(a, rc, "%s", mh_strerror(rc));
    }
    rc = clock.findings ? mh_cap_parse(&r, buf, len, visit_with_findings, &wf)
                        : mh_cap_parse(&r, buf, len, mh_live_replay_visit, &rp);
    if (rc > 0 && rp.err == MH_ETOOBIG && rp.err_requests)
        rc = mh_analysis_errorf(a, MH_ETOOBIG,
                    "more requests in flight, or request sites, than the "
                    "report's limits");
    else if (rc > 0 && rp.err == MH_ETOOBIG)
        rc = mh_analysis_errorf(a, MH_ETOOBIG,
                    "more than %zu blocks live at once (the report's limit)",
                    (size_t)MH_LIVE_REPLAY_MAX_LIVE);
    else if (rc > 0)
        rc = mh_analysis_errorf(a, rp.err ? rp.err : MH_EFORMAT, "%s",
                    mh_strerror(rp.err ? rp.err : MH_EFORMAT));
    else if (rc)
        rc = reader_error(a, &r, rc);
    if (rc == MH_OK && (rc = mh_live_replay_finish(&rp)))
        mh_analysis_errorf(a, rc, "%s", mh_strerror(rc));
    if (rc == MH_OK && clock.findings && (rc = mh_findings_end(&a->findings)))
        mh_analysis_errorf(a, rc, "%s", mh_strerror(rc));
    if (rc == MH_OK) {
        double span = (double)rp.t_ns - (double)rp.warm_end_ns;
        rc = mh_analysis_fold(a, &r, &rp, span > 0 ? span / 1e9 : 0);
        if (rc == MH_OK)
            rc = save_process(a, path, &r, &rp);
        if (rc && !a->error[0])
            mh_analysis_errorf(a, rc, "%s", mh_strerror(rc));
    }
    mh_live_replay_release(&rp);
    mh_cap_reader_release(&r);
    return rc;
}

/* ---- a header alone ------------------------------------------------- */

static int
stop_at_first(void *ctx, const struct mh_cap_event *ev)
{
    (void)ctx;
    (void)ev;
    return 1;
}

int
mh_analysis_read_header(const uint8_t *buf, size_t len,
                        struct mh_cap_header *h, char *command, size_t size)
{
    struct mh_cap_reader r;
    mh_cap_reader_init(&r);
    int rc = mh_cap_parse(&r, buf, len, stop_at_first, NULL);
    int ok = (rc == MH_OK || rc == 1) && r.have_header;
    if (ok) {
        *h = r.header;
        size_t used = 0;
        command[0] = '\0';
        for (uint32_t i = 0; i < h->argc && used + 4 < size; i++) {
            if (i)
                command[used++] = ' ';
            for (size_t k = 0; k < h->argv[i].n && used + 4 < size; k++) {
                unsigned char c = (unsigned char)h->argv[i].s[k];
                command[used++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
            }
        }
        if (used + 4 >= size) {
            memcpy(command + used, "...", 3);
            used += 3;
        }
        command[used] = '\0';
        h->argv = h->lib_prefixes = h->sys_path = NULL; /* the reader's */
        h->python = h->executable = (struct mh_str){NULL, 0};
    }
    mh_cap_reader_release(&r);
    return ok;
}

/* ---- how a capture ends ---------------------------------------------- */

struct cap_end {
    int marked;       /* a SIGNAL or EXEC marker ends it: nothing lost */
    uint64_t mark_ns; /* its time */
    uint64_t last_ns; /* the last TIMELINE/END time */
};

static int
cap_end_visit(void *ctx, const struct mh_cap_event *ev)
{
    struct cap_end *e = ctx;
    uint64_t t = 0;
    if (ev->kind == MH_EV_TIMELINE)
        t = ev->u.timeline.t_ns;
    else if (ev->kind == MH_EV_END)
        t = ev->u.end.t_ns;
    else if (ev->kind == MH_EV_MARKER &&
             (ev->u.marker.kind == MH_MARK_SIGNAL ||
              ev->u.marker.kind == MH_MARK_EXEC)) {
        e->marked = 1;
        e->mark_ns = ev->u.marker.t_ns;
    }
    if (t > e->last_ns)
        e->last_ns = t;
    if (ev->kind == MH_EV_TIMELINE && e->marked && t > e->mark_ns)
        e->marked = 0; /* an exec that failed: recording went on */
    return 0;
}

int
mh_analysis_capture_end(const uint8_t *buf, size_t len,
                        struct mh_capture_end *out)
{
    struct mh_cap_reader r;
    struct cap_end e = {0};
    memset(out, 0, sizeof(*out));
    mh_cap_reader_init(&r);
    int rc = mh_cap_parse(&r, buf, len, cap_end_visit, &e);
    if (rc == MH_OK && !r.have_header)
        rc = MH_EFORMAT;
    if (rc == MH_OK) {
        out->truncated = r.truncated;
        out->truncated_at = r.truncated_at;
        out->unfinished = !r.clean_end && !e.marked;
        out->last_ns = r.header.start_ns + e.last_ns;
    }
    mh_cap_reader_release(&r);
    return rc;
}
