/* Replaying one capture's events: which sampled blocks are live when,
 * per stack, with the estimate each sample stands for.
 *
 * The replay keeps a table of live blocks (address -> stack, size). An
 * ALLOC inserts (an address already live is treated as freed first: the
 * agent never writes that, a damaged or foreign writer might), a FREE
 * removes (an unknown address is ignored: trace-all mode writes frees of
 * blocks allocated before tracking began). An event's time is that of
 * the last TIMELINE record before it.
 *
 * Two per-stack snapshots come out: the estimated bytes and blocks live
 * when the warm-up ended (taken at the first TIMELINE at or past the
 * warm-up end) and live at the end. Growth is their difference.
 *
 * With mh_live_replay_track_requests(), blocks allocated under a request (TAG
 * records) are also reported to the endpoints module (endpoints.h): their
 * allocation, their free, and at the end whether they are still live. A
 * tagged block is marked by a bit of its live-table value, and a second
 * table maps it to its request's slot, so untagged blocks cost nothing
 * more. */
#ifndef MH_LIVE_REPLAY_H
#define MH_LIVE_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "../../format/capture_read.h"
#include "endpoints.h"
#include "../../util/blockmap.h"
#include "timeline.h"

/* At most this many blocks live at once: a 1 GiB table. */
#define MH_LIVE_REPLAY_MAX_LIVE ((size_t)3 << 24)
/* Points kept per process timeline. */
#define MH_LIVE_REPLAY_TIMELINE_POINTS 4096

struct mh_live_replay {
    const struct mh_cap_reader *reader; /* the one parsing */
    uint64_t warm_end_ns;               /* UINT64_MAX: never */
    int mode_known;                     /* exact and interval are set */
    int exact;       /* trace-all: a sample stands for itself */
    double interval; /* R, in sampling mode */

    struct mh_blockmap live;
    struct mh_blockmap huge; /* address -> size for sizes too big to pack */
    struct mh_endpoints *eps; /* NULL: requests are not followed */
    struct mh_blockmap tags;   /* address -> request slot, tagged blocks */

    double live_now;  /* estimated live bytes now */
    double peak_live; /* the most live_now has been */
    uint64_t t_ns;    /* time of the last TIMELINE/END */
    uint64_t rss;     /* the last RSS */
    uint64_t peak_rss;
    uint64_t allocs;  /* ALLOC records */
    uint64_t frees;   /* FREE records */
    uint64_t freed;   /* FREE records that matched a live block */
    uint64_t dropped; /* the agent's count, from the last TIMELINE/END */
    int have_clock;   /* a TIMELINE or END was seen */
    /* How the capture ends, from its markers (capture.h): the last
     * SIGNAL or EXEC marker (an EXEC one only while no TIMELINE comes
     * after it: the exec failed), and a full disk. Texts are copied. */
    uint32_t end_mark;     /* MH_MARK_SIGNAL, MH_MARK_EXEC or 0 */
    uint64_t end_mark_ns;
    int end_signal;
    uint64_t unstacked;    /* samples the signal handler wrote stackless */
    char exec_path[256];
    int disk_full;
    uint64_t disk_full_ns;
    char disk_full_why[128];
    /* The allocator fields of the last TIMELINE that had them (alloc 0:
     * none did, e.g. an older capture). */
    struct mh_cap_timeline alloc;
    /* ...and of the first one at or after the warm-up's end (the
     * verdict compares the two). */
    struct mh_cap_timeline alloc_warm;
    uint64_t requests; /* REQUEST records so far */

    /* Per stack index: estimated bytes and blocks. */
    int warm_taken;
    int warm_past_end; /* the capture ended before the warm-up did */
    double *warm_bytes, *warm_count;
    double *warm_var; /* the bytes' sampling variance (0 when exact) */
    uint32_t nwarm; /* stacks beyond it had nothing live at warm-up */
    double *end_bytes, *end_count, *end_var;
    /* ...of which allocated before the warm-up ended (start-up): */
    double *early_bytes, *early_count, *early_var;
    uint32_t nend;

    struct mh_timeline timeline;

    int live_hint_failed; /* the table could not be sized up front */
    int err;              /* why the visitor stopped the parse */
    int err_requests;     /* ...while following requests or findings */
};

/* Sets up a replay of what `r` is about to parse (the mode and interval
 * are read from its header when the first event arrives); warm_end_ns
 * is the warm-up end (0 = no warm-up, UINT64_MAX = never); live_hint,
 * when not 0, sizes the live table up front (best effort: without the
 * memory the table grows as it fills). */
void mh_live_replay_init(struct mh_live_replay *rp, const struct mh_cap_reader *r,
                    uint64_t warm_end_ns, size_t live_hint);
/* Frees everything the replay holds. */
void mh_live_replay_release(struct mh_live_replay *rp);

/* Follows requests into `eps` (which outlives the replay): starts its
 * capture (mh_endpoints_begin() with the warm-up end); mh_live_replay_finish()
 * ends it. Call before the parse. MH_ENOMEM. */
int mh_live_replay_track_requests(struct mh_live_replay *rp,
                             struct mh_endpoints *eps) MH_MUST_USE;

/* The visitor to hand mh_cap_parse() with the replay as ctx. When it
 * stops the parse (its return is 1), rp->err says why (MH_ENOMEM,
 * MH_ETOOBIG). */
int mh_live_replay_visit(void *ctx, const struct mh_cap_event *ev);

/* After the parse: fills end_bytes/end_count (and, when the warm-up
 * never ended, sets the warm-up snapshot to the end, so nothing counts
 * as growth), closes the timeline, and, when requests are followed, hands
 * the tagged blocks still live to the endpoints and ends their capture.
 * MH_ENOMEM, MH_ETOOBIG. */
int mh_live_replay_finish(struct mh_live_replay *rp) MH_MUST_USE;

/* Estimated bytes and allocations one ALLOC record of `size` bytes
 * stands for. */
void mh_live_replay_weight(const struct mh_live_replay *rp, uint64_t size, double *bytes,
                      double *count);

/* What a quick first pass learns: the duration (needed for a warm-up
 * given as a fraction) and a bound for sizing the live table. */
struct mh_live_replay_clock {
    uint64_t t_ns;   /* the last TIMELINE/END time */
    uint64_t requests, findings, tagged; /* REQUEST, FINDING records and
                                            tagged ALLOCs */
    int64_t net;     /* ALLOC minus FREE records so far */
    int64_t max_net; /* the most blocks that can have been live (frees
                        of untracked blocks make it a little low) */
};

/* The first pass's visitor; ctx is a zeroed struct mh_live_replay_clock. */
int mh_live_replay_clock_visit(void *ctx, const struct mh_cap_event *ev);

#endif
