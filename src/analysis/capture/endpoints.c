/* Memory per request and per endpoint (see endpoints.h).
 *
 * A request is a slot: open from its first tagged ALLOC until its REQUEST
 * record, then kept while blocks it allocated are live, then reused. Its
 * allocated weight per stack waits in `pend` entries (a list per slot,
 * found through pend_map) until the REQUEST record names the endpoint,
 * since sites are per endpoint and the endpoint is only known at the end.
 * All maps are blockmaps: 64-bit keys, 64-bit values, no tombstones. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../util/mem.h"
#include "endpoints.h"
#include "../../util/blockmap.h"

enum { SLOT_FREE, SLOT_OPEN, SLOT_ENDED };

struct req {
    double allocated, live, peak;
    uint32_t ep;     /* endpoint index, once ended */
    uint32_t blocks; /* its tagged blocks still live */
    /* Open: its first pending entry + 1 (0 = none); free: the next free
     * slot + 1. */
    uint32_t link;
    uint8_t state;
    uint8_t counted; /* began after the warm-up */
};

/* An open request's allocated weight from one stack. */
struct pend {
    uint32_t stack;
    uint32_t next; /* the slot's next entry + 1 (or the free list's) */
    double allocated;
};

/* One (endpoint, stack) of the capture. */
struct pair {
    uint32_t ep, stack;
    double allocated, retained;
};

/* An endpoint in the capture being replayed: the live weight of its
 * counted requests' blocks, its counted requests, the slope's sums. */
struct epcap {
    double live;
    uint64_t k;
    struct mh_slope_sums s;
};

struct mh_endpoints_priv {
    struct mh_blockmap by_name; /* name id -> endpoint index */
    size_t v_cap;
    struct mh_ep_site *sites; /* (endpoint, site) pairs */
    size_t nsites, sites_cap;
    struct mh_blockmap site_map; /* ep << 32 | site -> index in sites */
    uint32_t in_progress;        /* its endpoint index + 1 */

    /* The capture being replayed. */
    uint64_t warm_end_ns;
    struct req *reqs;
    size_t nreqs, reqs_cap;
    uint32_t free_req;
    struct mh_blockmap open; /* request id -> slot, open requests */
    struct pend *pend;
    size_t npend, pend_cap;
    uint32_t free_pend;
    struct mh_blockmap pend_map; /* slot << 32 | stack -> pend index */
    struct pair *pairs;
    size_t npairs, pairs_cap;
    struct mh_blockmap pair_map; /* ep << 32 | stack -> pair index */
    struct epcap *cur;           /* by endpoint index */
    size_t cur_cap;
};

static const char *const sort_names[] = {"retained", "peak", "allocated",
                                         "requests"};

const char *
mh_endpoints_sort_name(enum mh_ep_sort s)
{
    return (unsigned)s < 4 ? sort_names[s] : "?";
}

int
mh_endpoints_sort_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, sort_names[i]))
            return i;
    return -1;
}

void
mh_endpoints_init(struct mh_endpoints *e, struct mh_strpool *strings)
{
    memset(e, 0, sizeof(*e));
    e->strings = strings;
}

void
mh_endpoints_release(struct mh_endpoints *e)
{
    for (size_t i = 0; i < e->n; i++)
        mh_free(e->v[i].peaks);
    mh_free(e->v);
    mh_free(e->order);
    struct mh_endpoints_priv *pv = e->priv;
    if (pv) {
        mh_blockmap_release(&pv->by_name);
        mh_free(pv->sites);
        mh_blockmap_release(&pv->site_map);
        mh_free(pv->reqs);
        mh_blockmap_release(&pv->open);
        mh_free(pv->pend);
        mh_blockmap_release(&pv->pend_map);
        mh_free(pv->pairs);
        mh_blockmap_release(&pv->pair_map);
        mh_free(pv->cur);
        mh_free(pv);
    }
    mh_endpoints_init(e, e->strings);
}

/* Makes room for `need` elements of `elem` bytes, at most `max`. */
static int
grow(void **arr, size_t *cap, size_t need, size_t elem, size_t max)
{
    if (need <= *cap)
        return MH_OK;
    if (need > max)
        return MH_ETOOBIG;
    size_t n = *cap ? *cap * 2 : 64;
    while (n < need)
        n *= 2;
    if (n > max)
        n = max;
    void *p = mh_realloc(*arr, n * elem);
    if (!p)
        return MH_ENOMEM;
    *arr = p;
    *cap = n;
    return MH_OK;
}

int
mh_endpoints_begin(struct mh_endpoints *e, uint64_t warm_end_ns)
{
    struct mh_endpoints_priv *pv = e->priv;
    if (!pv) {
        pv = e->priv = mh_calloc(1, sizeof(*pv));
        if (!pv)
            return MH_ENOMEM;
        mh_blockmap_init(&pv->by_name, MH_EP_MAX_ENDPOINTS);
        mh_blockmap_init(&pv->site_map, MH_EP_MAX_PAIRS);
        mh_blockmap_init(&pv->open, MH_EP_MAX_REQUESTS);
        mh_blockmap_init(&pv->pend_map, MH_EP_MAX_PAIRS);
        mh_blockmap_init(&pv->pair_map, MH_EP_MAX_PAIRS);
    }
    pv->warm_end_ns = warm_end_ns;
    pv->nreqs = 0;
    pv->free_req = 0;
    pv->npend = 0;
    pv->free_pend = 0;
    pv->npairs = 0;
    mh_blockmap_release(&pv->open);
    mh_blockmap_release(&pv->pend_map);
    mh_blockmap_release(&pv->pair_map);
    if (pv->cur)
        memset(pv->cur, 0, pv->cur_cap * sizeof(*pv->cur));
    return MH_OK;
}

/* The endpoint named s[0..n), added when new. */
static int
endpoint_get(struct mh_endpoints *e, const char *s, size_t n, uint32_t *idx)
{
    struct mh_endpoints_priv *pv = e->priv;
    uint32_t name;
    int rc = mh_strpool_intern(e->strings, s, n, &name);
    if (rc)
        return rc;
    uint64_t v;
    if (mh_blockmap_get(&pv->by_name, name, &v)) {
        *idx = (uint32_t)v;
        return MH_OK;
    }
    if ((rc = grow((void **)&e->v, &pv->v_cap, e->n + 1, sizeof(*e->v),
                   MH_EP_MAX_ENDPOINTS)))
        return rc;
    size_t old = pv->cur_cap;
    if ((rc = grow((void **)&pv->cur, &pv->cur_cap, e->n + 1, sizeof(*pv->cur),
                   MH_EP_MAX_ENDPOINTS)))
        return rc;
    memset(pv->cur + old, 0, (pv->cur_cap - old) * sizeof(*pv->cur));
    uint64_t o;
    int had;
    if ((rc = mh_blockmap_put(&pv->by_name, name, e->n, &o, &had)))
        return rc;
    struct mh_endpoint *ep = &e->v[e->n];
    memset(ep, 0, sizeof(*ep));
    ep->name = name;
    ep->peaks_stride = 1;
    *idx = (uint32_t)e->n++;
    return MH_OK;
}

static int
peak_push(struct mh_endpoint *ep, double peak)
{
    if (ep->peaks_skip + 1 < ep->peaks_stride) {
        ep->peaks_skip++;
        return MH_OK;
    }
    ep->peaks_skip = 0;
    if (ep->npeaks == ep->peaks_cap && ep->peaks_cap >= MH_EP_PEAKS_MAX) {
        /* Keep every other peak and take every other request from now
         * on: a systematic sample, unbiased unless peaks come in a
         * period of a power of two. */
        for (size_t i = 0; i < ep->npeaks / 2; i++)
            ep->peaks[i] = ep->peaks[2 * i + 1];
        ep->npeaks /= 2;
        ep->peaks_stride *= 2;
    }
    int rc = grow((void **)&ep->peaks, &ep->peaks_cap, ep->npeaks + 1,
                  sizeof(*ep->peaks), MH_EP_PEAKS_MAX);
    if (rc)
        return rc;
    ep->peaks[ep->npeaks++] = (float)peak;
    return MH_OK;
}

/* A request of endpoint `idx` ended having allocated `allocated`, with
 * `held` still live and `peak` the most live at once. */
static int
record(struct mh_endpoints *e, uint32_t idx, double allocated, double held,
       double peak, int counted)
{
    struct mh_endpoint *ep = &e->v[idx];
    ep->requests++;
    e->requests++;
    ep->allocated += allocated;
    ep->held += held;
    int rc = peak_push(ep, peak);
    if (rc)
        return rc;
    if (counted) {
        struct epcap *c = &e->priv->cur[idx];
        ep->requests_after_warmup++;
        c->live += held;
        c->k++;
        mh_slope_sums_add(&c->s, (double)c->k, c->live);
    }
    return MH_OK;
}

static int
pair_add(struct mh_endpoints *e, uint32_t ep, uint32_t stack, double allocated,
         double retained)
{
    struct mh_endpoints_priv *pv = e->priv;
    uint64_t key = (uint64_t)ep << 32 | stack, v;
    if (!mh_blockmap_get(&pv->pair_map, key, &v)) {
        int had, rc = grow((void **)&pv->pairs, &pv->pairs_cap, pv->npairs + 1,
                           sizeof(*pv->pairs), MH_EP_MAX_PAIRS);
        if (rc == MH_OK)
            rc = mh_blockmap_put(&pv->pair_map, key, pv->npairs, &v, &had);
        if (rc)
            return rc;
        v = pv->npairs++;
        pv->pairs[v] = (struct pair){ep, stack, 0, 0};
    }
    pv->pairs[v].allocated += allocated;
    pv->pairs[v].retained += retained;
    return MH_OK;
}

/* The open request in `slot` now belongs to endpoint `ep`: its allocated
 * weight per stack moves there. */
static int
flush_pending(struct mh_endpoints *e, uint32_t slot, uint32_t ep)
{
    struct mh_endpoints_priv *pv = e->priv;
    uint32_t i = pv->reqs[slot].link;
    pv->reqs[slot].link = 0;
    while (i) {
        struct pend *p = &pv->pend[i - 1];
        uint32_t next = p->next;
        int rc = pair_add(e, ep, p->stack, p->allocated, 0);
        if (rc)
            return rc;
        mh_blockmap_take(&pv->pend_map, (uint64_t)slot << 32 | p->stack, NULL);
        p->next = pv->free_pend;
        pv->free_pend = i;
        i = next;
    }
    return MH_OK;
}

static void
slot_free(struct mh_endpoints_priv *pv, uint32_t slot)
{
    struct req *r = &pv->reqs[slot];
    r->state = SLOT_FREE;
    r->link = pv->free_req;
    pv->free_req = slot + 1;
}

int
mh_endpoints_alloc(struct mh_endpoints *e, uint64_t request, uint32_t stack,
                   double bytes, uint32_t *slotp)
{
    struct mh_endpoints_priv *pv = e->priv;
    uint64_t v;
    uint32_t slot;
    int rc, had;
    if (mh_blockmap_get(&pv->open, request, &v)) {
        slot = (uint32_t)v;
    } else {
        if (pv->free_req) {
            slot = pv->free_req - 1;
            pv->free_req = pv->reqs[slot].link;
        } else {
            if ((rc = grow((void **)&pv->reqs, &pv->reqs_cap, pv->nreqs + 1,
                           sizeof(*pv->reqs), MH_EP_MAX_REQUESTS)))
                return rc;
            slot = (uint32_t)pv->nreqs++;
        }
        memset(&pv->reqs[slot], 0, sizeof(pv->reqs[slot]));
        pv->reqs[slot].state = SLOT_OPEN;
        if ((rc = mh_blockmap_put(&pv->open, request, slot, &v, &had))) {
            slot_free(pv, slot);
            return rc;
        }
    }
    struct req *r = &pv->reqs[slot];
    uint64_t key = (uint64_t)slot << 32 | stack;
    if (mh_blockmap_get(&pv->pend_map, key, &v)) {
        pv->pend[v].allocated += bytes;
    } else {
        uint32_t i;
        if (pv->free_pend) {
            i = pv->free_pend - 1;
            pv->free_pend = pv->pend[i].next;
        } else {
            if ((rc = grow((void **)&pv->pend, &pv->pend_cap, pv->npend + 1,
                           sizeof(*pv->pend), MH_EP_MAX_PAIRS)))
                return rc;
            i = (uint32_t)pv->npend++;
        }
        if ((rc = mh_blockmap_put(&pv->pend_map, key, i, &v, &had))) {
            pv->pend[i].next = pv->free_pend;
            pv->free_pend = i + 1;
            return rc;
        }
        pv->pend[i] = (struct pend){stack, r->link, bytes};
        r->link = i + 1;
    }
    r->allocated += bytes;
    r->live += bytes;
    if (r->live > r->peak)
        r->peak = r->live;
    r->blocks++;
    *slotp = slot;
    return MH_OK;
}

void
mh_endpoints_free(struct mh_endpoints *e, uint32_t slot, double bytes)
{
    struct mh_endpoints_priv *pv = e->priv;
    if (!pv || slot >= pv->nreqs || pv->reqs[slot].state == SLOT_FREE)
        return;
    struct req *r = &pv->reqs[slot];
    r->live -= bytes;
    if (r->blocks)
        r->blocks--;
    if (!r->blocks)
        r->live = 0; /* no rounding left behind */
    if (r->state == SLOT_ENDED) {
        if (r->counted)
            pv->cur[r->ep].live -= bytes;
        if (!r->blocks)
            slot_free(pv, slot);
    }
}

int
mh_endpoints_request(struct mh_endpoints *e, const struct mh_cap_request *rq)
{
    struct mh_endpoints_priv *pv = e->priv;
    uint32_t ep;
    int rc = rq->endpoint.n
                 ? endpoint_get(e, rq->endpoint.s, rq->endpoint.n, &ep)
                 : endpoint_get(e, MH_EP_UNNAMED, strlen(MH_EP_UNNAMED), &ep);
    if (rc)
        return rc;
    int counted = rq->t_begin_ns >= pv->warm_end_ns;
    uint64_t v;
    if (!mh_blockmap_take(&pv->open, rq->id, &v))
        return record(e, ep, 0, 0, 0, counted); /* nothing sampled */
    uint32_t slot = (uint32_t)v;
    if ((rc = flush_pending(e, slot, ep)))
        return rc;
    struct req *r = &pv->reqs[slot];
    if ((rc = record(e, ep, r->allocated, r->live, r->peak, counted)))
        return rc;
    r->state = SLOT_ENDED;
    r->ep = ep;
    r->counted = (uint8_t)counted;
    if (!r->blocks)
        slot_free(pv, slot);
    return MH_OK;
}

int
mh_endpoints_live_at_end(struct mh_endpoints *e, uint32_t slot, uint32_t stack,
                         double bytes)
{
    struct mh_endpoints_priv *pv = e->priv;
    if (!pv || slot >= pv->nreqs)
        return MH_OK;
    const struct req *r = &pv->reqs[slot];
    if (r->state != SLOT_ENDED || !r->counted)
        return MH_OK; /* in progress, or begun in the warm-up */
    e->v[r->ep].retained += bytes;
    return pair_add(e, r->ep, stack, 0, bytes);
}

int
mh_endpoints_end(struct mh_endpoints *e)
{
    struct mh_endpoints_priv *pv = e->priv;
    if (!pv)
        return MH_OK;
    int rc;
    for (size_t i = 0; i < pv->nreqs; i++) {
        if (pv->reqs[i].state != SLOT_OPEN)
            continue;
        if (!pv->in_progress) {
            uint32_t ep;
            if ((rc = endpoint_get(e, MH_EP_IN_PROGRESS,
                                   strlen(MH_EP_IN_PROGRESS), &ep)))
                return rc;
            e->v[ep].in_progress = 1;
            pv->in_progress = ep + 1;
        }
        uint32_t ep = pv->in_progress - 1;
        if ((rc = flush_pending(e, (uint32_t)i, ep)))
            return rc;
        /* Its live blocks are in use, not retained: held only. */
        const struct req *r = &pv->reqs[i];
        if ((rc = record(e, ep, r->allocated, r->live, r->peak, 0)))
            return rc;
        pv->reqs[i].state = SLOT_ENDED;
        pv->reqs[i].ep = ep;
        pv->reqs[i].counted = 0;
    }
    for (size_t i = 0; i < e->n; i++)
        if (pv->cur[i].s.n > 0)
            mh_slope_sums_pool(&e->v[i].slope, &pv->cur[i].s);
    return MH_OK;
}

int
mh_endpoints_next_stack(const struct mh_endpoints *e, size_t *pos,
                        uint32_t *endpoint, uint32_t *stack, double *allocated,
                        double *retained)
{
    const struct mh_endpoints_priv *pv = e->priv;
    if (!pv || *pos >= pv->npairs)
        return 0;
    const struct pair *p = &pv->pairs[(*pos)++];
    *endpoint = p->ep;
    *stack = p->stack;
    *allocated = p->allocated;
    *retained = p->retained;
    return 1;
}

int
mh_endpoints_site_add(struct mh_endpoints *e, uint32_t endpoint, uint32_t site,
                      int nostack, double allocated, double retained,
                      const uint32_t *user, int user_direct)
{
    struct mh_endpoints_priv *pv = e->priv;
    if (!pv)
        return MH_EINVAL;
    uint64_t key = (uint64_t)endpoint << 32 | site, v;
    if (!mh_blockmap_get(&pv->site_map, key, &v)) {
        int had, rc = grow((void **)&pv->sites, &pv->sites_cap, pv->nsites + 1,
                           sizeof(*pv->sites), MH_EP_MAX_PAIRS);
        if (rc == MH_OK)
            rc = mh_blockmap_put(&pv->site_map, key, pv->nsites, &v, &had);
        if (rc)
            return rc;
        v = pv->nsites++;
        memset(&pv->sites[v], 0, sizeof(pv->sites[v]));
        pv->sites[v].site = site;
        pv->sites[v].nostack = nostack;
        pv->sites[v].endpoint = endpoint;
    }
    struct mh_ep_site *s = &pv->sites[v];
    s->allocated += allocated;
    s->retained += retained;
    double w = allocated + retained;
    if (user && (!s->has_user || w > s->best)) {
        s->has_user = 1;
        s->user_direct = user_direct;
        s->user_file = user[0];
        s->user_function = user[1];
        s->user_line = user[2];
        s->best = w;
    }
    return MH_OK;
}

/* ---- finishing ------------------------------------------------------ */

static int
float_cmp(const void *x, const void *y)
{
    float a = *(const float *)x, b = *(const float *)y;
    return a < b ? -1 : a > b;
}

/* Nearest rank: the smallest value with at least p of them at or below
 * it. v is sorted. */
static double
percentile(const float *v, size_t n, double p)
{
    if (!n)
        return 0;
    size_t k = (size_t)ceil(p * (double)n);
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return v[k - 1];
}

/* Below half a byte is nothing, so the sites worth listing come first. */
static double
rounded(double x)
{
    return x >= 0.5 ? x : 0;
}

/* By endpoint, then retained, then allocated bytes, then site. */
static int
site_cmp(const void *x, const void *y)
{
    const struct mh_ep_site *a = x, *b = y;
    if (a->endpoint != b->endpoint)
        return a->endpoint < b->endpoint ? -1 : 1;
    double ra = rounded(a->retained), rb = rounded(b->retained);
    if (ra != rb)
        return ra > rb ? -1 : 1;
    double aa = rounded(a->allocated), ab = rounded(b->allocated);
    if (aa != ab)
        return aa > ab ? -1 : 1;
    return a->site < b->site ? -1 : a->site > b->site;
}

struct rank_ctx {
    const struct mh_endpoint *v;
    enum mh_ep_sort sort;
};

static int
cmp_desc(double a, double b)
{
    return a > b ? -1 : a < b ? 1 : 0;
}

static int
rank_cmp(const void *x, const void *y, void *ctx)
{
    const struct rank_ctx *c = ctx;
    uint32_t i = *(const uint32_t *)x, j = *(const uint32_t *)y;
    const struct mh_endpoint *a = &c->v[i], *b = &c->v[j];
    int r = 0;
    /* The default order (by retained bytes) puts the significant
     * endpoints first; another --sort is the order asked for. */
    if (c->sort == MH_EP_SORT_RETAINED && a->significant != b->significant)
        return a->significant ? -1 : 1;
    switch (c->sort) {
    case MH_EP_SORT_RETAINED:
        /* Requests in progress have no retained figure: last. */
        if (a->in_progress != b->in_progress)
            return a->in_progress ? 1 : -1;
        r = cmp_desc(a->retained_per_request, b->retained_per_request);
        if (!r)
            r = cmp_desc(a->held_per_request, b->held_per_request);
        break;
    case MH_EP_SORT_PEAK:
        r = cmp_desc(a->peak_p95, b->peak_p95);
        if (!r)
            r = cmp_desc(a->peak_p50, b->peak_p50);
        break;
    case MH_EP_SORT_ALLOCATED:
        r = cmp_desc(a->allocated_per_request, b->allocated_per_request);
        break;
    case MH_EP_SORT_REQUESTS:
        r = cmp_desc((double)a->requests, (double)b->requests);
        break;
    }
    if (!r)
        r = i < j ? -1 : i > j;
    return r;
}

int
mh_endpoints_finish(struct mh_endpoints *e, enum mh_ep_sort sort, size_t top)
{
    struct mh_endpoints_priv *pv = e->priv;
    for (size_t i = 0; i < e->n; i++) {
        struct mh_endpoint *ep = &e->v[i];
        double n = (double)ep->requests;
        ep->allocated_per_request = n > 0 ? ep->allocated / n : 0;
        ep->held_per_request = n > 0 ? ep->held / n : 0;
        ep->retained_per_request =
            ep->requests_after_warmup
                ? ep->retained / (double)ep->requests_after_warmup
                : 0;
        if (ep->npeaks)
            qsort(ep->peaks, ep->npeaks, sizeof(*ep->peaks), float_cmp);
        ep->peak_p50 = percentile(ep->peaks, ep->npeaks, 0.5);
        ep->peak_p95 = percentile(ep->peaks, ep->npeaks, 0.95);
        struct mh_slope_fit f;
        ep->slope_points = (uint64_t)ep->slope.n;
        if (mh_slope_sums_fit_full(&ep->slope, &f) == MH_OK) {
            double half = mh_slope_t95(f.n - 2) * f.se;
            ep->slope_per_1000 = f.slope * 1000;
            ep->slope_r2 = f.r2;
            ep->slope_lo_per_1000 = (f.slope - half) * 1000;
            ep->slope_hi_per_1000 = (f.slope + half) * 1000;
            ep->significant =
                !ep->in_progress && mh_slope_growth_significant(
                                        &f, f.slope * ep->slope.n, e->floor);
        }
        ep->sites = NULL;
        ep->nsites = 0;
    }

    /* Each endpoint's sites are a run of the sorted pairs; its top ones
     * come first in the run. */
    if (pv && pv->nsites) {
        qsort(pv->sites, pv->nsites, sizeof(*pv->sites), site_cmp);
        mh_blockmap_release(&pv->site_map); /* the indices moved */
        for (size_t i = 0; i < pv->nsites;) {
            uint32_t ep = pv->sites[i].endpoint;
            size_t j = i, k = 0;
            for (; j < pv->nsites && pv->sites[j].endpoint == ep; j++) {
                const struct mh_ep_site *s = &pv->sites[j];
                if (k < MH_EP_SITES &&
                    (rounded(s->retained) > 0 || rounded(s->allocated) > 0))
                    k++;
            }
            if (ep < e->n && k) {
                e->v[ep].sites = &pv->sites[i];
                e->v[ep].nsites = k;
            }
            i = j;
        }
    }

    mh_free(e->order);
    e->order = NULL;
    e->norder = 0;
    if (!e->n)
        return MH_OK;
    e->order = mh_calloc(e->n, sizeof(*e->order));
    if (!e->order)
        return MH_ENOMEM;
    for (size_t i = 0; i < e->n; i++)
        e->order[i] = (uint32_t)i;
    struct rank_ctx ctx = {e->v, sort};
    qsort_r(e->order, e->n, sizeof(*e->order), rank_cmp, &ctx);
    e->norder = top && top < e->n ? top : e->n;
    return MH_OK;
}
