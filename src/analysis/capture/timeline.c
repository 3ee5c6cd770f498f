/* Bounded timelines and their merge (see timeline.h). */
#include <string.h>

#include "../../util/mem.h"
#include "timeline.h"

void
mh_timeline_init(struct mh_timeline *tl, size_t max_points)
{
    memset(tl, 0, sizeof(*tl));
    if (max_points < 2)
        max_points = 2;
    tl->max_points = max_points & ~(size_t)1;
    tl->stride = 1;
}

void
mh_timeline_release(struct mh_timeline *tl)
{
    mh_free(tl->pts);
    mh_timeline_init(tl, tl->max_points);
}

/* a absorbs b, which is later. */
static void
combine(struct mh_tl_point *a, const struct mh_tl_point *b)
{
    a->t_ns = b->t_ns;
    a->requests = b->requests;
    if (b->rss > a->rss)
        a->rss = b->rss;
    if (b->live > a->live)
        a->live = b->live;
}

static int
store(struct mh_timeline *tl, const struct mh_tl_point *p)
{
    if (!tl->pts) {
        tl->pts = mh_calloc(tl->max_points, sizeof(*tl->pts));
        if (!tl->pts)
            return MH_ENOMEM;
    }
    if (tl->n == tl->max_points) {
        for (size_t i = 0; i < tl->n / 2; i++) {
            tl->pts[i] = tl->pts[2 * i];
            combine(&tl->pts[i], &tl->pts[2 * i + 1]);
        }
        tl->n /= 2;
        tl->stride *= 2;
    }
    tl->pts[tl->n++] = *p;
    return MH_OK;
}

int
mh_timeline_add(struct mh_timeline *tl, uint64_t t_ns, uint64_t rss,
                double live, uint64_t requests)
{
    struct mh_tl_point p = {t_ns, rss, live, requests};
    if (tl->pending_n && p.t_ns < tl->pending.t_ns)
        p.t_ns = tl->pending.t_ns;
    else if (!tl->pending_n && tl->n && p.t_ns < tl->pts[tl->n - 1].t_ns)
        p.t_ns = tl->pts[tl->n - 1].t_ns;
    if (tl->pending_n)
        combine(&tl->pending, &p);
    else
        tl->pending = p;
    tl->pending_n++;
    if (tl->pending_n < tl->stride)
        return MH_OK;
    tl->pending_n = 0;
    return store(tl, &tl->pending);
}

int
mh_timeline_finish(struct mh_timeline *tl)
{
    if (!tl->pending_n)
        return MH_OK;
    tl->pending_n = 0;
    return store(tl, &tl->pending);
}

int
mh_timeline_merge(const struct mh_timeline *const *series,
                  const uint64_t *start_ns, const uint64_t *end_ns,
                  size_t nseries, size_t max_points, struct mh_tl_point **out,
                  size_t *nout)
{
    *out = NULL;
    *nout = 0;
    size_t total = 0;
    for (size_t i = 0; i < nseries; i++)
        total += series[i]->n;
    if (total == 0 || max_points == 0)
        return MH_OK;
    if (nseries == 1 && total <= max_points) {
        *out = mh_calloc(total, sizeof(**out));
        if (!*out)
            return MH_ENOMEM;
        memcpy(*out, series[0]->pts, total * sizeof(**out));
        *nout = total;
        return MH_OK;
    }

    uint64_t t0 = UINT64_MAX, t1 = 0;
    for (size_t i = 0; i < nseries; i++) {
        if (!series[i]->n)
            continue;
        if (start_ns[i] < t0)
            t0 = start_ns[i];
        uint64_t end = end_ns[i];
        if (series[i]->pts[series[i]->n - 1].t_ns > end)
            end = series[i]->pts[series[i]->n - 1].t_ns;
        if (start_ns[i] + end > t1)
            t1 = start_ns[i] + end;
    }
    uint64_t span = t1 - t0;
    size_t nb = total < max_points ? total : max_points;
    if (span == 0)
        nb = 1;
    struct mh_tl_point *b = mh_calloc(nb, sizeof(*b));
    if (!b)
        return MH_ENOMEM;
    for (size_t k = 0; k < nb; k++)
        b[k].t_ns =
            nb == 1 ? span
                    : (uint64_t)((double)span * (double)(k + 1) / (double)nb);

    for (size_t i = 0; i < nseries; i++) {
        const struct mh_timeline *s = series[i];
        if (!s->n)
            continue;
        uint64_t off = start_ns[i] - t0;
        uint64_t last_t = off + s->pts[s->n - 1].t_ns;
        size_t j = 0;
        const struct mh_tl_point *prev = NULL;
        for (size_t k = 0; k < nb; k++) {
            uint64_t lo = k == 0 ? 0 : b[k - 1].t_ns;
            uint64_t hi = b[k].t_ns; /* bucket k is [lo, hi), the last
                                        one [lo, hi] */
            int any = 0;
            uint64_t rss = 0;
            double live = 0;
            uint64_t requests = 0;
            while (j < s->n && (off + s->pts[j].t_ns < hi || k == nb - 1)) {
                if (!any || s->pts[j].rss > rss)
                    rss = s->pts[j].rss;
                if (!any || s->pts[j].live > live)
                    live = s->pts[j].live;
                requests = s->pts[j].requests;
                any = 1;
                prev = &s->pts[j++];
            }
            if (!any && prev && lo <= last_t) {
                rss = prev->rss;
                live = prev->live;
                requests = prev->requests;
            }
            b[k].rss += rss;
            b[k].live += live;
            b[k].requests += requests;
        }
    }
    *out = b;
    *nout = nb;
    return MH_OK;
}
