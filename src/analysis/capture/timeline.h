/* A process's RSS and tracked live bytes over time, in bounded memory,
 * and the merge of several processes onto one time axis.
 *
 * A series keeps at most `max_points` points: when full, neighbouring
 * points are combined pairwise (keeping the maxima, so peaks survive) and
 * later points are combined in groups twice as large. */
#ifndef MH_TIMELINE_H
#define MH_TIMELINE_H

#include <stddef.h>
#include <stdint.h>

#include "../../util/msg.h"

struct mh_tl_point {
    uint64_t t_ns; /* since the series' start (the merge: since the
                      earliest start) */
    uint64_t rss;  /* bytes */
    double live;   /* tracked live bytes (estimated in sampling mode) */
    uint64_t requests; /* requests ended so far in this process (REQUEST
                          records; the merge sums them) */
};

struct mh_timeline {
    struct mh_tl_point *pts; /* owned */
    size_t n;
    size_t max_points; /* even, >= 2 */
    uint64_t stride;   /* raw points per stored point */
    uint64_t pending_n;
    struct mh_tl_point pending; /* raw points not yet stored */
};

void mh_timeline_init(struct mh_timeline *tl, size_t max_points);
void mh_timeline_release(struct mh_timeline *tl);
/* Adds a point; times must not decrease (a smaller t is raised to the
 * last one). `requests` is the count of requests ended so far. MH_ENOMEM. */
int mh_timeline_add(struct mh_timeline *tl, uint64_t t_ns, uint64_t rss,
                    double live, uint64_t requests) MH_MUST_USE;
/* Stores what is pending; call once after the last add. */
int mh_timeline_finish(struct mh_timeline *tl) MH_MUST_USE;

/* Puts `nseries` series, series i starting at start_ns[i] (absolute) and
 * ending at end_ns[i] (relative to its start), on one axis from the
 * earliest start to the latest end, in at most `max_points` buckets:
 * a bucket holds, per series, the maxima of its points inside the
 * bucket, or the series' last earlier point while it is running (0
 * before its first point and after its end), summed over the series.
 * A lone series with few enough points is copied as is. The caller owns
 * *out and frees it with mh_free(); *out is NULL when there are no
 * points. */
int mh_timeline_merge(const struct mh_timeline *const *series,
                      const uint64_t *start_ns, const uint64_t *end_ns,
                      size_t nseries, size_t max_points,
                      struct mh_tl_point **out, size_t *nout) MH_MUST_USE;

#endif
