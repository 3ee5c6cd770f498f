/* Finishing the capture analysis (analysis.h), once every capture is
 * added: each site's user frame and via, the ranked lists, the display
 * keys, the endpoints' ranking, the processes' timelines on one axis and
 * the summary. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../util/mem.h"
#include "../../util/slope.h"
#include "analysis.h"
#include "analysis_priv.h"

static void
pick_user_frames(struct mh_analysis *a)
{
    struct mh_analysis_priv *p = a->priv;
    mh_analysis_reduce_cands(&p->cands);
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
    mh_analysis_reduce_cands(&p->vias);
    if (!p->vias.n)
        return MH_OK;
    /* The bytes behind each site's user frame, growing and live. */
    double *total = mh_calloc(a->nsites * 2, sizeof(*total));
    if (!total)
        return MH_ENOMEM;
    for (size_t i = 0; i < p->cands.n; i++) {
        const struct cand *c = &p->cands.v[i];
        const struct mh_site *s = &a->sites[c->site];
        if (s->has_user && !mh_analysis_frame_cmp(&c->f, &s->user)) {
            total[c->site * 2 + MH_VIA_GROWTH] = c->growth;
            total[c->site * 2 + MH_VIA_LIVE] = c->live;
        }
    }
    for (size_t i = 0; i < p->vias.n; i++) {
        const struct cand *c = &p->vias.v[i];
        struct mh_site *s = &a->sites[c->site];
        if (!s->has_user || !s->user_direct ||
            mh_analysis_frame_cmp(&c->callee, &s->user))
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
    const struct sitetab *t = mh_analysis_line_tab(a);
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
        return mh_analysis_errorf(a, MH_ENOMEM, "%s", mh_strerror(MH_ENOMEM));
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
        return mh_analysis_errorf(a, rc, "%s", mh_strerror(rc));
    /* The largest growth, whether or not significant, decides. */
    for (size_t i = 0; i < a->ngrowth; i++)
        if (a->sites[a->growth[i]].growth_bytes >= a->summary.growth_floor)
            a->summary.growth_found = 1;
    return MH_OK;
}
