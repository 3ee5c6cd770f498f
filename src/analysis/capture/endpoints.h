/* Memory per web request and per endpoint (`memhound report --by
 * endpoint`, docs/report-json.md "endpoints").
 *
 * The replay (live_replay.h) reports to this module every ALLOC tagged with a
 * request (TAG records), every free of such a block, every REQUEST
 * record, and, at the end of a capture, the tagged blocks still live. Per
 * request it keeps what it allocated, what of that is live, and the most
 * that was live at once, while the request is open; its REQUEST record
 * then names the endpoint, and the request's figures move there. After
 * that the request is kept only while some of its blocks are live (their
 * frees must still find it). So memory goes with the requests in flight
 * and the live tagged blocks, not with the requests seen -- save one
 * float per request for the peak percentiles, thinned past
 * MH_EP_PEAKS_MAX per endpoint.
 *
 * Endpoints merge across captures by name. Request ids are per capture:
 * the per-request state is dropped at each mh_endpoints_begin(). Sites:
 * per capture, each (endpoint, stack) gathers allocated and retained
 * weight; the analysis folds the stacks into sites (as --by line does) and
 * hands them back with mh_endpoints_site_add().
 *
 *   mh_endpoints_init(&e, &pool);
 *   per capture: mh_endpoints_begin(); the replay's calls; mh_endpoints_end();
 *                mh_endpoints_next_stack() -> mh_endpoints_site_add()
 *   mh_endpoints_finish(); read e.v / e.order; mh_endpoints_release(). */
#ifndef MH_ENDPOINTS_H
#define MH_ENDPOINTS_H

#include <stddef.h>
#include <stdint.h>

#include "../../format/capture.h"
#include "../../util/msg.h"
#include "../../util/slope.h"
#include "../../util/strpool.h"

/* Peaks kept per endpoint for p50/p95: past this, every other one is
 * dropped and later requests are sampled at half the rate (2 MiB each). */
#define MH_EP_PEAKS_MAX ((size_t)1 << 19)
/* Requests in flight, or ended with blocks still live, per capture (40
 * bytes each: 640 MiB at most). */
#define MH_EP_MAX_REQUESTS ((size_t)1 << 24)
/* (endpoint, stack) and (endpoint, site) pairs, and endpoints. */
#define MH_EP_MAX_PAIRS ((size_t)1 << 24)
#define MH_EP_MAX_ENDPOINTS ((size_t)1 << 20)
/* Sites listed per endpoint. */
#define MH_EP_SITES 5

/* What requests without a REQUEST record at the end of their capture are
 * reported as, and what a REQUEST with an empty endpoint names. */
#define MH_EP_IN_PROGRESS "(in progress)"
#define MH_EP_UNNAMED "(unnamed)"

enum mh_ep_sort {
    MH_EP_SORT_RETAINED, /* retained bytes per request (the default) */
    MH_EP_SORT_PEAK,     /* peak p95, then p50 */
    MH_EP_SORT_ALLOCATED,
    MH_EP_SORT_REQUESTS,
};

/* One of an endpoint's top sites. `site` indexes the analysis' line sites;
 * the analysis fills in the names (string ids) after the finish. */
struct mh_ep_site {
    uint32_t endpoint; /* index in v */
    uint32_t site;
    int nostack; /* allocations without a Python stack */
    uint32_t file, function, line;
    /* The first frame in the user's code (of the stack behind the most
     * weight, as for the growth sites); has_user 0 when none. */
    int has_user, user_direct;
    uint32_t user_file, user_function, user_line;
    double retained, allocated; /* estimated bytes, summed */
    double best;                /* weight behind the user frame */
};

struct mh_endpoint {
    uint32_t name;   /* string id in the pool */
    int in_progress; /* the MH_EP_IN_PROGRESS bucket */
    uint64_t requests;
    uint64_t requests_after_warmup;   /* began at or after the warm-up end:
                                         the retained figures' requests */
    double allocated, held, retained; /* estimated bytes, summed */
    struct mh_slope_sums slope;       /* live weight against requests,
                                         per process, pooled */
    float *peaks;                     /* owned; see MH_EP_PEAKS_MAX */
    size_t npeaks, peaks_cap;
    uint64_t peaks_stride, peaks_skip;

    /* Set by mh_endpoints_finish(). */
    double allocated_per_request, held_per_request, retained_per_request;
    double peak_p50, peak_p95;
    double slope_per_1000, slope_r2; /* 0 with fewer than 3 points */
    uint64_t slope_points;
    /* The slope's 95% interval (per 1,000 requests; 0 with fewer than 3
     * points) and the significance mark: mh_slope_growth_significant()
     * with the growth the slope implies over the endpoint's requests
     * against the report's noise floor (struct mh_endpoints.floor). */
    double slope_lo_per_1000, slope_hi_per_1000;
    int significant;
    struct mh_ep_site *sites; /* best first; points into the module's */
    size_t nsites;
};

struct mh_endpoints_priv;

struct mh_endpoints {
    struct mh_strpool *strings; /* the analysis' pool, for names */
    struct mh_endpoint *v;      /* in order of first REQUEST */
    size_t n;
    uint64_t requests; /* summed over the endpoints */
    double floor;      /* bytes: set before mh_endpoints_finish(), the
                          size below which no endpoint is significant */

    /* Set by mh_endpoints_finish(): endpoint indices, best first by the
     * sort, the top `top` of them. */
    uint32_t *order;
    size_t norder;

    struct mh_endpoints_priv *priv;
};

void mh_endpoints_init(struct mh_endpoints *e, struct mh_strpool *strings);
/* Frees everything the module holds. */
void mh_endpoints_release(struct mh_endpoints *e);

/* Starts a capture, dropping the previous one's request state; requests
 * that begin before warm_end_ns (ns since the capture's start) are left
 * out of the retained figures and the slope. MH_ENOMEM. */
int mh_endpoints_begin(struct mh_endpoints *e,
                       uint64_t warm_end_ns) MH_MUST_USE;

/* A block of `bytes` (estimated) allocated from `stack` under `request`
 * (not 0). *slot receives the request's handle, to give back when the
 * block is freed or still live at the end. MH_ENOMEM, MH_ETOOBIG. */
int mh_endpoints_alloc(struct mh_endpoints *e, uint64_t request,
                       uint32_t stack, double bytes,
                       uint32_t *slot) MH_MUST_USE;
/* A block allocated with mh_endpoints_alloc() was freed. */
void mh_endpoints_free(struct mh_endpoints *e, uint32_t slot, double bytes);
/* A REQUEST record. MH_ENOMEM, MH_ETOOBIG. */
int mh_endpoints_request(struct mh_endpoints *e,
                         const struct mh_cap_request *r) MH_MUST_USE;
/* After the last event: a tagged block still live. */
int mh_endpoints_live_at_end(struct mh_endpoints *e, uint32_t slot,
                             uint32_t stack, double bytes) MH_MUST_USE;
/* After the live blocks: requests still open go to MH_EP_IN_PROGRESS and
 * the capture's slopes join the endpoints'. MH_ENOMEM, MH_ETOOBIG. */
int mh_endpoints_end(struct mh_endpoints *e) MH_MUST_USE;

/* Walks the capture's (endpoint, stack) pairs after mh_endpoints_end():
 * start with *pos = 0; returns 0 when there are no more. */
int mh_endpoints_next_stack(const struct mh_endpoints *e, size_t *pos,
                            uint32_t *endpoint, uint32_t *stack,
                            double *allocated, double *retained);
/* Adds a pair's weight to (endpoint, site); `user` is the stack's first
 * user frame (file, function, line string ids) or NULL. MH_ENOMEM,
 * MH_ETOOBIG. */
int mh_endpoints_site_add(struct mh_endpoints *e, uint32_t endpoint,
                          uint32_t site, int nostack, double allocated,
                          double retained, const uint32_t *user,
                          int user_direct) MH_MUST_USE;

/* Computes the per-request figures, percentiles, slopes and marks, ranks
 * the endpoints (`top` 0 = all; by retained bytes: significant ones
 * first) and picks each one's top sites (by retained, then allocated
 * bytes). Call once. MH_ENOMEM. */
int mh_endpoints_finish(struct mh_endpoints *e, enum mh_ep_sort sort,
                        size_t top) MH_MUST_USE;

/* "retained", "peak", ... and back; -1 when unknown. */
const char *mh_endpoints_sort_name(enum mh_ep_sort s);
int mh_endpoints_sort_parse(const char *s);

#endif
