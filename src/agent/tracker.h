/* The tracker: memhound's one piece of global mutable state.
 *
 * Allocator hooks wrap the RAW, MEM and OBJ domains (never replacing the
 * allocator that was installed before). In sampling mode the hook's fast
 * path only subtracts the size from a thread-local countdown; a free only
 * tests one bit of a small filter. Everything else happens in the slow
 * path under `lock`: walk the stack, intern it, append a record to the
 * pending buffer that the writer thread turns into capture chunks. */
#ifndef MH_AGENT_TRACKER_H
#define MH_AGENT_TRACKER_H

#include <pthread.h>
#include <stdint.h>

#include "../format/capture_write.h"
#include "../util/addrmap.h"
#include "../util/buf.h"
#include "frames.h"
#include "stacks.h"

/* Agent-only mode: hooks that only forward, the baseline benchmarks
 * compare against. Its capture says "sampling" and holds no samples. */
#define MH_MODE_FORWARD 2

#define MH_DEFAULT_INTERVAL (256u * 1024u)
#define MH_DEFAULT_MAX_DEPTH 128
#define MH_MAX_DEPTH_LIMIT 256 /* frames on the hook's C stack: 4 KiB */
#define MH_RECORDS_MAX (64u << 20)    /* pending records per flush */
#define MH_STACKS_MAX_BYTES (512u << 20)
#define MH_SAMPLED_MAX (16u << 20)    /* live blocks in `sampled` */
#define MH_FILTER_BITS (1u << 16)     /* 8 KiB: stays in L1 */

struct mh_hook_domain {
    enum mh_domain domain;
    PyMemAllocatorEx prev; /* the allocator we wrap */
    PyMemAllocatorEx ours;
};

struct mh_tracker {
    /* Written with the GIL held while hooks are off or inactive; read by
     * the hooks. */
    int mode; /* enum mh_mode */
    uint64_t interval;
    uint32_t max_depth;
    int hooks_installed;
    struct mh_hook_domain dom[3];
    int active; /* atomic: record samples */
    /* Atomic. In a forked child whose parent recorded: 1 from the fork
     * (bgthread.c's at-fork handler) until the child's own capture starts,
     * 2 once `child_start` is scheduled to start it, -1 once that is
     * given up (it never ran). A fork without Python's
     * hooks (uWSGI's workers, a C library's fork()) is noticed this way
     * when the child allocates from Python. */
    int child_pending;
    /* Starts the child's capture: a Py_AddPendingCall() callback, so it
     * runs in the main thread between two bytecodes. Set once. */
    int (*child_start)(void *);
    /* One bit per hash of sampled addresses, read without the lock by
     * every free; set and cleared under the lock. Here rather than on
     * its own so the free hook reaches it from its ctx (tracker.c). */
    uint64_t filter[MH_FILTER_BITS / 64] __attribute__((aligned(64)));

    pthread_mutex_t lock; /* protects everything below; a leaf lock:
                             never take the GIL while holding it */
    struct mh_buf records; /* pending records since the last flush */
    struct mh_cap_enc enc; /* delta state of `records` */
    struct mh_stacks stacks;
    struct mh_addrmap sampled; /* live blocks: the sampled ones in
                                  sampling mode, every one in trace-all;
                                  address -> mh_tracker_live_pack() */
    size_t filter_stale;  /* shared bits left set by sampled frees since
                             the last rebuild */
    size_t filter_misses; /* filter hits that were not sampled, since */
    double live_bytes;                    /* estimate, sampling mode */
    uint64_t samples, frees, dropped;
    uint64_t requests; /* requests ended (REQUEST records, and the ones
                          dropped) */
    uint64_t live_lost; /* trace-all blocks `sampled` had no room for:
                           recorded in the capture, absent from heap
                           dumps' ALLOC records */
};

/* A live block's value in `sampled`: its size (saturated at 2^40 - 1) and
 * the stack id that allocated it (ids are below 2^24). */
#define MH_LIVE_SIZE_BITS 40
static inline uint64_t
mh_tracker_live_pack(uint64_t size, uint32_t stack)
{
    uint64_t max = ((uint64_t)1 << MH_LIVE_SIZE_BITS) - 1;
    return (size < max ? size : max) | ((uint64_t)stack << MH_LIVE_SIZE_BITS);
}

static inline uint64_t
mh_tracker_live_size(uint64_t v)
{
    return v & (((uint64_t)1 << MH_LIVE_SIZE_BITS) - 1);
}

static inline uint32_t
mh_tracker_live_stack(uint64_t v)
{
    return (uint32_t)(v >> MH_LIVE_SIZE_BITS);
}

extern struct mh_tracker mh_tracker;

/* Sets up the tables; once per process, GIL held. */
int mh_tracker_init(void) MH_MUST_USE;
/* Starts recording with these settings (GIL held); installs the hooks
 * the first time. */
int mh_tracker_start(int mode, uint64_t interval,
                     uint32_t max_depth) MH_MUST_USE;
/* Stops recording; the hooks stay installed only when another allocator
 * hook was installed on top of ours since. GIL held. */
void mh_tracker_stop(void);

/* Marks the calling thread as memhound's own: its allocations are not
 * sampled (the writer thread, and any thread while it flushes). Returns
 * the previous value. */
int mh_tracker_set_busy(int busy);

/* Under the lock: hands the pending records to *out (swapping buffers),
 * resets the delta state, and returns the number of interned stacks. */
uint32_t mh_tracker_take_records(struct mh_buf *out);

/* Appends a timeline / marker / end record in order with the events; a
 * timeline record carries allocstats.h's cached allocator fields. */
void mh_tracker_put_timeline(uint64_t t_ns, uint64_t rss);
void mh_tracker_put_marker(uint64_t t_ns, uint32_t kind, const char *text,
                           size_t n);
void mh_tracker_put_end(uint64_t t_ns);
/* Appends a REQUEST record and counts the request; a FINDING record.
 * In order with the events; a record that does not fit counts as
 * dropped. */
void mh_tracker_put_request(const struct mh_cap_request *r);
void mh_tracker_put_finding(const struct mh_cap_finding *f);

/* The bytes the calling thread has allocated while hooked: what the
 * sampler's fast path counted (sampling mode: the block a MEM/OBJ
 * allocator hands to the RAW domain once), every allocation in
 * trace-all. Monotonic per thread and mode; allocations only. Returns 0,
 * or -1 when not recording samples (stopped, forward-only). */
int mh_tracker_thread_allocated(uint64_t *out) MH_MUST_USE;

struct mh_tracker_stats {
    uint64_t samples, frees, dropped, stacks, requests;
    uint64_t tracker_bytes;      /* the agent's own memory now */
    uint64_t tracker_peak_bytes; /* and at most, since it was loaded */
    double live_bytes;
};
void mh_tracker_stats(struct mh_tracker_stats *st);

/* In a forked child: the lock is fresh, pending records (the parent's)
 * are dropped and recording is off until mh_tracker_resume(). */
void mh_tracker_resume(void);

#endif
