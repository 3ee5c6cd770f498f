/* Replaying a capture into per-stack live and warm-up snapshots (see
 * live_replay.h). This is the report's hot loop: one call per event, one
 * probe sequence in the live table, no allocation but the table's. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../util/mem.h"
#include "live_replay.h"

static void end_marker(struct mh_live_replay *rp, const struct mh_str *text,
                       uint32_t kind, uint64_t t_ns);

/* A live block's value: the stack index in the low 25 bits (the reader
 * allows 2^24 stacks), then EARLY (allocated before the warm-up ended),
 * the size in the next 37; a size that does not fit is stored as
 * SIZE_HUGE and kept in rp->huge. The top bit says the block was
 * allocated under a request (its slot is in rp->tags). */
#define STACK_BITS 26
#define STACK_MASK ((UINT64_C(1) << (STACK_BITS - 1)) - 1)
#define EARLY (UINT64_C(1) << (STACK_BITS - 1))
#define SIZE_BITS 37
#define SIZE_HUGE ((UINT64_C(1) << SIZE_BITS) - 1)
#define TAGGED (UINT64_C(1) << 63)

void
mh_live_replay_init(struct mh_live_replay *rp, const struct mh_cap_reader *r,
               uint64_t warm_end_ns, size_t live_hint)
{
    memset(rp, 0, sizeof(*rp));
    rp->reader = r;
    rp->warm_end_ns = warm_end_ns;
    mh_blockmap_init(&rp->live, MH_LIVE_REPLAY_MAX_LIVE);
    mh_blockmap_init(&rp->huge, MH_LIVE_REPLAY_MAX_LIVE);
    mh_blockmap_init(&rp->tags, MH_LIVE_REPLAY_MAX_LIVE);
    mh_timeline_init(&rp->timeline, MH_LIVE_REPLAY_TIMELINE_POINTS);
    /* No warm-up: nothing was live before the first event. */
    rp->warm_taken = warm_end_ns == 0;
    if (live_hint && mh_blockmap_reserve(&rp->live, live_hint) != MH_OK)
        rp->live_hint_failed = 1; /* it will grow as it fills */
}

void
mh_live_replay_release(struct mh_live_replay *rp)
{
    mh_blockmap_release(&rp->live);
    mh_blockmap_release(&rp->huge);
    mh_blockmap_release(&rp->tags);
    mh_timeline_release(&rp->timeline);
    mh_free(rp->warm_bytes);
    mh_free(rp->warm_count);
    mh_free(rp->end_bytes);
    mh_free(rp->early_bytes);
    mh_free(rp->early_count);
    mh_free(rp->warm_var);
    mh_free(rp->early_var);
    mh_free(rp->end_var);
    mh_free(rp->end_count);
    rp->warm_bytes = rp->warm_count = rp->end_bytes = rp->end_count = NULL;
    rp->early_bytes = rp->early_count = rp->warm_var = rp->end_var =
        rp->early_var = NULL;
    rp->nwarm = rp->nend = 0;
}

int
mh_live_replay_track_requests(struct mh_live_replay *rp, struct mh_endpoints *eps)
{
    rp->eps = eps;
    return mh_endpoints_begin(eps, rp->warm_end_ns);
}

void
mh_live_replay_weight(const struct mh_live_replay *rp, uint64_t size, double *bytes,
                 double *count)
{
    if (rp->exact) {
        *bytes = (double)size;
        *count = 1;
        return;
    }
    if (size == 0) {
        /* The sampler never picks an empty block; if one shows up it
         * stands for itself. */
        *bytes = 0;
        *count = 1;
        return;
    }
    /* 1 - exp(-size/R), computed without cancellation for small sizes. */
    double p = -expm1(-(double)size / rp->interval);
    *bytes = (double)size / p;
    *count = 1 / p;
}

static void
learn_mode(struct mh_live_replay *rp)
{
    const struct mh_cap_header *h = &rp->reader->header;
    rp->mode_known = 1;
    rp->exact = !rp->reader->have_header || h->mode == MH_MODE_TRACE ||
                h->interval == 0;
    rp->interval = (double)h->interval;
}

static uint64_t
size_of(struct mh_live_replay *rp, uint64_t addr, uint64_t value, int take)
{
    uint64_t size = (value >> STACK_BITS) & SIZE_HUGE;
    if (size == SIZE_HUGE) {
        uint64_t big = size;
        if (take)
            mh_blockmap_take(&rp->huge, addr, &big);
        else
            mh_blockmap_get(&rp->huge, addr, &big);
        size = big;
    }
    return size;
}

static double
bytes_of(const struct mh_live_replay *rp, uint64_t size)
{
    double b, c;
    if (rp->exact)
        return (double)size;
    mh_live_replay_weight(rp, size, &b, &c);
    return b;
}

/* Sums the live table per stack into fresh arrays of n = nstacks (bytes,
 * count, and the bytes' sampling variance); with `early` (three more
 * arrays, the same three), also the blocks allocated before the warm-up
 * ended. */
static int
snapshot(struct mh_live_replay *rp, double **bytes, double **count, double **var,
         uint32_t *n, double **early)
{
    uint32_t ns = rp->reader->nstacks;
    *bytes = *count = *var = NULL;
    *n = 0;
    if (ns == 0)
        return MH_OK;
    *bytes = mh_calloc(ns, sizeof(double));
    *count = mh_calloc(ns, sizeof(double));
    *var = mh_calloc(ns, sizeof(double));
    if (early)
        for (int i = 0; i < 3; i++)
            early[i] = mh_calloc(ns, sizeof(double));
    if (!*bytes || !*count || !*var ||
        (early && (!early[0] || !early[1] || !early[2]))) {
        mh_free(*bytes);
        mh_free(*count);
        mh_free(*var);
        *bytes = *count = *var = NULL;
        if (early)
            for (int i = 0; i < 3; i++) {
                mh_free(early[i]);
                early[i] = NULL;
            }
        return MH_ENOMEM;
    }
    *n = ns;
    size_t pos = 0;
    uint64_t addr, value;
    while (mh_blockmap_next(&rp->live, &pos, &addr, &value)) {
        uint32_t stack = (uint32_t)(value & STACK_MASK);
        if (stack >= ns)
            continue;
        double b, c;
        mh_live_replay_weight(rp, size_of(rp, addr, value, 0), &b, &c);
        (*bytes)[stack] += b;
        (*count)[stack] += c;
        /* A block kept with probability p = 1/c stands for b = size/p:
         * its share of the estimate's variance, b^2 (1 - p) (0 when
         * exact). */
        double v = !rp->exact && c > 0 ? b * b * (1 - 1 / c) : 0;
        (*var)[stack] += v;
        if (early && (value & EARLY)) {
            early[0][stack] += b;
            early[1][stack] += c;
            early[2][stack] += v;
        }
    }
    return MH_OK;
}

static int
fail(struct mh_live_replay *rp, int err)
{
    rp->err = err;
    return 1;
}

/* The block at addr, of estimated `bytes`, is gone (freed, or replaced
 * by a new block at its address). */
static void
gone(struct mh_live_replay *rp, uint64_t addr, uint64_t value, double bytes)
{
    rp->live_now -= bytes;
    uint64_t slot;
    if ((value & TAGGED) && mh_blockmap_take(&rp->tags, addr, &slot))
        mh_endpoints_free(rp->eps, (uint32_t)slot, bytes);
}

static int
on_alloc(struct mh_live_replay *rp, const struct mh_cap_event *ev)
{
    uint64_t addr = ev->u.alloc.addr, size = ev->u.alloc.size;
    uint64_t stack = ev->u.alloc.stack;
    if (stack > STACK_MASK)
        return fail(rp, MH_ETOOBIG);
    int tagged = ev->u.alloc.request && rp->eps;
    uint64_t value =
        (size < SIZE_HUGE ? size : SIZE_HUGE) << STACK_BITS | stack;
    if (tagged)
        value |= TAGGED;
    if (!rp->warm_taken)
        value |= EARLY;
    uint64_t old = 0;
    int had = 0;
    int rc = mh_blockmap_put(&rp->live, addr, value, &old, &had);
    if (rc)
        return fail(rp, rc);
    if (had) /* allocated twice without a free: the old one is gone */
        gone(rp, addr, old, bytes_of(rp, size_of(rp, addr, old, 1)));
    if (size >= SIZE_HUGE) {
        uint64_t o;
        int h;
        if ((rc = mh_blockmap_put(&rp->huge, addr, size, &o, &h))) {
            mh_blockmap_take(&rp->live, addr, NULL);
            return fail(rp, rc);
        }
    }
    double bytes = bytes_of(rp, size);
    rp->allocs++;
    rp->live_now += bytes;
    if (rp->live_now > rp->peak_live)
        rp->peak_live = rp->live_now;
    if (tagged) {
        uint32_t slot;
        uint64_t o;
        int h;
        rc = mh_endpoints_alloc(rp->eps, ev->u.alloc.request, (uint32_t)stack,
                                bytes, &slot);
        if (rc) {
            rp->err_requests = 1;
            return fail(rp, rc);
        }
        if ((rc = mh_blockmap_put(&rp->tags, addr, slot, &o, &h)))
            return fail(rp, rc);
    }
    return 0;
}

static int
on_clock(struct mh_live_replay *rp, uint64_t t_ns, uint64_t dropped)
{
    if (t_ns > rp->t_ns || !rp->have_clock)
        rp->t_ns = t_ns;
    rp->have_clock = 1;
    rp->dropped = dropped;
    if (!rp->warm_taken && rp->t_ns >= rp->warm_end_ns) {
        int rc = snapshot(rp, &rp->warm_bytes, &rp->warm_count, &rp->warm_var,
                          &rp->nwarm, NULL);
        if (rc)
            return fail(rp, rc);
        rp->warm_taken = 1;
    }
    double live = rp->live_now > 0 ? rp->live_now : 0;
    int rc = mh_timeline_add(&rp->timeline, rp->t_ns, rp->rss, live,
                             rp->requests);
    return rc ? fail(rp, rc) : 0;
}

int
mh_live_replay_visit(void *ctx, const struct mh_cap_event *ev)
{
    struct mh_live_replay *rp = ctx;
    if (!rp->mode_known)
        learn_mode(rp);
    switch (ev->kind) {
    case MH_EV_ALLOC:
        return on_alloc(rp, ev);
    case MH_EV_FREE: {
        uint64_t value;
        rp->frees++;
        if (mh_blockmap_take(&rp->live, ev->u.free.addr, &value)) {
            rp->freed++;
            gone(rp, ev->u.free.addr, value,
                 bytes_of(rp, size_of(rp, ev->u.free.addr, value, 1)));
        }
        return 0;
    }
    case MH_EV_TIMELINE:
        if (rp->end_mark == MH_MARK_EXEC &&
            ev->u.timeline.t_ns > rp->end_mark_ns)
            rp->end_mark = 0; /* the exec failed; recording went on */
        rp->rss = ev->u.timeline.rss;
        if (rp->rss > rp->peak_rss)
            rp->peak_rss = rp->rss;
        if (ev->u.timeline.alloc) {
            rp->alloc = ev->u.timeline;
            if (!rp->alloc_warm.alloc &&
                ev->u.timeline.t_ns >= rp->warm_end_ns)
                rp->alloc_warm = ev->u.timeline;
        }
        return on_clock(rp, ev->u.timeline.t_ns, ev->u.timeline.dropped);
    case MH_EV_END:
        return on_clock(rp, ev->u.end.t_ns, ev->u.end.dropped);
    case MH_EV_REQUEST:
        rp->requests++;
        if (rp->eps) {
            int rc = mh_endpoints_request(rp->eps, &ev->u.request);
            if (rc) {
                rp->err_requests = 1;
                return fail(rp, rc);
            }
        }
        return 0;
    case MH_EV_MARKER:
        end_marker(rp, &ev->u.marker.text, ev->u.marker.kind,
                   ev->u.marker.t_ns);
        return 0;
    case MH_EV_FINDING:
        return 0;
    }
    return 0;
}

/* The tagged blocks still live go to their requests' endpoints. */
static int
tagged_at_end(struct mh_live_replay *rp)
{
    size_t pos = 0;
    uint64_t addr, slot;
    while (mh_blockmap_next(&rp->tags, &pos, &addr, &slot)) {
        uint64_t value;
        if (!mh_blockmap_get(&rp->live, addr, &value))
            continue;
        int rc = mh_endpoints_live_at_end(
            rp->eps, (uint32_t)slot, (uint32_t)(value & STACK_MASK),
            bytes_of(rp, size_of(rp, addr, value, 0)));
        if (rc)
            return rc;
    }
    return mh_endpoints_end(rp->eps);
}

static void
copy_text(char *dst, size_t size, const struct mh_str *t)
{
    size_t n = t->n < size - 1 ? t->n : size - 1;
    memcpy(dst, t->s, n);
    dst[n] = '\0';
}

/* SIGNAL's text: "<signal> [<samples written without their stacks>]". */
static void
end_marker(struct mh_live_replay *rp, const struct mh_str *text, uint32_t kind,
           uint64_t t_ns)
{
    char buf[64];
    switch (kind) {
    case MH_MARK_SIGNAL: {
        copy_text(buf, sizeof(buf), text);
        char *end;
        long sig = strtol(buf, &end, 10);
        rp->end_mark = kind;
        rp->end_mark_ns = t_ns;
        rp->end_signal = sig > 0 && sig < 256 ? (int)sig : 0;
        rp->unstacked = strtoull(end, NULL, 10);
        break;
    }
    case MH_MARK_EXEC:
        rp->end_mark = kind;
        rp->end_mark_ns = t_ns;
        copy_text(rp->exec_path, sizeof(rp->exec_path), text);
        break;
    case MH_MARK_DISK_FULL:
        if (!rp->disk_full) {
            rp->disk_full = 1;
            rp->disk_full_ns = t_ns;
            copy_text(rp->disk_full_why, sizeof(rp->disk_full_why), text);
        }
        break;
    }
}

int
mh_live_replay_finish(struct mh_live_replay *rp)
{
    double *early[3] = {NULL, NULL, NULL};
    int rc = snapshot(rp, &rp->end_bytes, &rp->end_count, &rp->end_var,
                      &rp->nend, early);
    rp->early_bytes = early[0];
    rp->early_count = early[1];
    rp->early_var = early[2];
    if (rc)
        return rc;
    if (!rp->warm_taken) {
        /* The warm-up outlasted the capture: nothing counts as growth. */
        rp->warm_past_end = 1;
        if ((rc = snapshot(rp, &rp->warm_bytes, &rp->warm_count, &rp->warm_var,
                           &rp->nwarm, NULL)))
            return rc;
        rp->warm_taken = 1;
    }
    if (rp->live_now < 0)
        rp->live_now = 0;
    if (rp->eps && (rc = tagged_at_end(rp)))
        return rc;
    return mh_timeline_finish(&rp->timeline);
}

int
mh_live_replay_clock_visit(void *ctx, const struct mh_cap_event *ev)
{
    struct mh_live_replay_clock *c = ctx;
    switch (ev->kind) {
    case MH_EV_ALLOC:
        if (++c->net > c->max_net)
            c->max_net = c->net;
        if (ev->u.alloc.request)
            c->tagged++;
        break;
    case MH_EV_FREE:
        c->net--;
        break;
    case MH_EV_TIMELINE:
        if (ev->u.timeline.t_ns > c->t_ns)
            c->t_ns = ev->u.timeline.t_ns;
        break;
    case MH_EV_END:
        if (ev->u.end.t_ns > c->t_ns)
            c->t_ns = ev->u.end.t_ns;
        break;
    case MH_EV_REQUEST:
        c->requests++;
        break;
    case MH_EV_FINDING:
        c->findings++;
        break;
    case MH_EV_MARKER:
        break;
    }
    return 0;
}
