/* Allocator hooks and the sampler.
 *
 * Sampling is Poisson-process byte sampling (as tcmalloc, Go and
 * jemalloc do): every thread counts down a random number of bytes drawn
 * from an exponential distribution of mean R; the allocation that crosses
 * zero is a sample. The fast path is one thread-local subtraction. A
 * sample stands for size / (1 - exp(-size / R)) bytes, which the report
 * computes; the agent only records the size. */
#include <math.h>
#include <string.h>
#include <time.h>

#include "../util/compiler.h"
#include "../util/mem.h"
#include "allocstats.h"
#include "requests.h"
#include "tracker.h"

struct mh_tracker mh_tracker = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Per-thread sampler state. initial-exec TLS: a dlopen'ed extension's
 * default (general-dynamic) model costs a __tls_get_addr call per access,
 * which showed as +7 points on spectral_norm in the design measurements. */
struct mh_tls {
    int64_t countdown; /* bytes until the next sample */
    uint64_t rng;
    int initialized;
    int busy;   /* inside memhound: do not sample */
    int nested; /* inside a MEM/OBJ allocator, which hands large blocks
                   to the RAW domain: that inner call is the same block */
    /* thread_allocated(): the bytes the fast path counted are
     * `drawn - countdown`; every assignment of the countdown (the slow
     * path's, set_countdown()) adds the difference to `drawn`, so the
     * fast path keeps its one subtraction. Trace-all counts `traced`. */
    int64_t drawn;
    uint64_t traced;
};
static __thread struct mh_tls tls __attribute__((tls_model("initial-exec")));

/* Under the lock: the bits a second block was added to while they were
 * set (another live block's, or a stale one's). A sampled free clears its
 * bit unless it is shared here: otherwise it would stay set, and pymalloc
 * hands the freed address out again at once, so the next free there
 * would miss in the locked slow path: ~3,000 slow frees and 25 rebuilds
 * in one request of the 2,000-row queryset benchmark, ~500 and none
 * since. */
static uint64_t filter_shared[MH_FILTER_BITS / 64];

static inline uint32_t
filter_index(const void *p)
{
    return (uint32_t)(((uintptr_t)p * 0x9E3779B97F4A7C15ull) >> 48);
}

/* Whether p may be sampled, as the hooks of domain `dom` (whose ctx is
 * &mh_tracker.dom[dom]) test it. The filter is reached from the ctx at an
 * offset the compiler knows rather than through its own address, which a
 * shared object has to load first: one instruction less on every free. */
static inline int
filter_maybe(const struct mh_hook_domain *d, int dom, const void *p)
{
    const uint64_t *bits =
        (const uint64_t *)((const char *)d +
                           (offsetof(struct mh_tracker, filter) -
                            offsetof(struct mh_tracker, dom) -
                            (size_t)dom * sizeof(struct mh_hook_domain)));
    uint64_t h = (uintptr_t)p * 0x9E3779B97F4A7C15ull; /* filter_index */
    uint64_t w = __atomic_load_n(&bits[h >> 54], __ATOMIC_RELAXED);
    return (int)((w >> ((h >> 48) & 63)) & 1);
}

static void
filter_add_unlocked(const void *p)
{
    uint32_t i = filter_index(p);
    uint64_t bit = 1ull << (i & 63);
    if (__atomic_load_n(&mh_tracker.filter[i >> 6], __ATOMIC_RELAXED) & bit)
        filter_shared[i >> 6] |= bit;
    else
        __atomic_fetch_or(&mh_tracker.filter[i >> 6], bit, __ATOMIC_RELAXED);
}

/* A shared bit stays set when one of its blocks is freed; once the stale
 * ones could outnumber the live ones, the filter is rebuilt from the
 * sampled table (amortised O(1) per free; no per-bit counters to keep).
 * Each word is stored whole and holds every live block's bit before and
 * after, so a free running concurrently never misses a sampled block. */
static void filter_rebuild_unlocked(void);

/* A free that passed the filter but was not sampled: a stale bit, or one
 * a live block owns (a hash collision, which no rebuild removes). While
 * stale bits exist, rebuild once misses have cost about as much as a
 * rebuild does, so a hot stale bit is short-lived (leaving it cost +4%
 * instructions on a CPU loop). */
static void
filter_miss_unlocked(void)
{
    if (mh_tracker.filter_stale &&
        ++mh_tracker.filter_misses >=
            (MH_FILTER_BITS / 64 + mh_tracker.sampled.size) / 16)
        filter_rebuild_unlocked();
}

static void
filter_del_unlocked(const void *p)
{
    uint32_t i = filter_index(p);
    uint64_t bit = 1ull << (i & 63);
    if (!(filter_shared[i >> 6] & bit)) {
        /* p was the bit's only block */
        __atomic_fetch_and(&mh_tracker.filter[i >> 6], ~bit, __ATOMIC_RELAXED);
        return;
    }
    /* Keep stale bits to a quarter of the live ones (a floor of 1024 cost
     * +4% instructions on a CPU loop). A rebuild reads the table once,
     * and shared bits are rare, so this stays cheap. */
    size_t live = mh_tracker.sampled.count;
    if (++mh_tracker.filter_stale < live / 4 + 32)
        return;
    filter_rebuild_unlocked();
}

static void
filter_rebuild_unlocked(void)
{
    /* Rare (shared bits only): the scratch is not kept between rebuilds. */
    uint64_t *bits = mh_calloc(2 * (MH_FILTER_BITS / 64), sizeof(uint64_t));
    if (!bits) {
        mh_tracker.filter_misses = 0; /* try again later */
        return;
    }
    uint64_t *shared = bits + MH_FILTER_BITS / 64;
    const struct mh_addrmap *m = &mh_tracker.sampled;
    for (size_t k = 0; k < m->size; k++)
        if (m->slots[k].key) {
            uint32_t i = filter_index((const void *)(uintptr_t)m->slots[k].key);
            uint64_t bit = 1ull << (i & 63);
            if (bits[i >> 6] & bit)
                shared[i >> 6] |= bit;
            bits[i >> 6] |= bit;
        }
    for (size_t w = 0; w < MH_FILTER_BITS / 64; w++)
        __atomic_store_n(&mh_tracker.filter[w], bits[w], __ATOMIC_RELAXED);
    memcpy(filter_shared, shared, sizeof(filter_shared));
    mh_free(bits);
    mh_tracker.filter_stale = 0;
    mh_tracker.filter_misses = 0;
}

static uint64_t
rng_next(struct mh_tls *t)
{
    /* xorshift64* */
    uint64_t x = t->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    t->rng = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static void
rng_seed(struct mh_tls *t)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^
                 (uint64_t)(uintptr_t)t ^ (uint64_t)pthread_self();
    /* splitmix64 finaliser, so nearby seeds diverge */
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    x ^= x >> 31;
    t->rng = x ? x : 1;
}

static int64_t
draw_interval(struct mh_tls *t)
{
    double u = (double)((rng_next(t) >> 11) + 1) * 0x1.0p-53; /* (0, 1] */
    double v = -log(u) * (double)mh_tracker.interval;
    if (v < 1)
        v = 1;
    if (v > 4e18)
        v = 4e18;
    return (int64_t)v;
}

static double
sample_weight(uint64_t size)
{
    double r = (double)mh_tracker.interval;
    double s = (double)size;
    if (r <= 0 || s <= 0)
        return s;
    return s / -expm1(-s / r);
}

int
mh_tracker_set_busy(int busy)
{
    int old = tls.busy;
    tls.busy = busy;
    return old;
}

/* Records an allocation (both modes). Called with tls.busy set. */
static void
record_alloc(const struct mh_hook_domain *d, void *p, size_t size)
{
    struct mh_rawframe frames[MH_MAX_DEPTH_LIMIT];
    PyThreadState *ts = mh_frames_current();
    uint32_t depth = 0;
    uint64_t request = 0;
    /* Both read the interpreter's state, so both need the GIL and come
     * before the lock: the lock is a leaf. */
    /* A subinterpreter's code objects are not ours to keep or resolve
     * (it may have its own GIL and die before the writer reads them):
     * its allocations count without a stack. */
    if (ts && PyThreadState_GetInterpreter(ts) != PyInterpreterState_Main())
        ts = NULL;
    if (ts) {
        depth = (uint32_t)mh_frames_walk(ts, frames,
                                         (int)mh_tracker.max_depth);
        request = mh_requests_current_id();
    }

    pthread_mutex_lock(&mh_tracker.lock);
    int is_new = 0;
    uint32_t id = mh_stacks_intern(&mh_tracker.stacks, frames, depth,
                                   &is_new);
    if (depth && !id)
        goto dropped;
    /* Code objects stay alive once a stored stack names them, so the
     * writer can resolve them later. We hold the GIL here (depth > 0). */
    if (is_new)
        for (uint32_t i = 0; i < depth; i++)
            Py_INCREF(frames[i].code);
    if (mh_tracker.mode == MH_MODE_SAMPLE) {
        if (mh_addrmap_put(&mh_tracker.sampled, (uintptr_t)p,
                           mh_tracker_live_pack(size, id)))
            goto dropped;
        if (mh_cap_put_tag(&mh_tracker.records, &mh_tracker.enc, request) ||
            mh_cap_put_alloc(&mh_tracker.records, &mh_tracker.enc,
                             d->domain, id, size, (uintptr_t)p)) {
            mh_addrmap_remove(&mh_tracker.sampled, (uintptr_t)p, NULL);
            goto dropped;
        }
        filter_add_unlocked(p);
        mh_tracker.live_bytes += sample_weight(size);
    } else {
        if (mh_cap_put_tag(&mh_tracker.records, &mh_tracker.enc, request) ||
            mh_cap_put_alloc(&mh_tracker.records, &mh_tracker.enc,
                             d->domain, id, size, (uintptr_t)p))
            goto dropped;
        /* The live table lets a heap dump list every live block. */
        if (mh_addrmap_put(&mh_tracker.sampled, (uintptr_t)p,
                           mh_tracker_live_pack(size, id)))
            mh_tracker.live_lost++;
    }
    mh_tracker.samples++;
    pthread_mutex_unlock(&mh_tracker.lock);
    return;
dropped:
    mh_tracker.dropped++;
    pthread_mutex_unlock(&mh_tracker.lock);
}

/* Sets the countdown, keeping `drawn - countdown` (the bytes counted so
 * far) as it was. */
static inline void
set_countdown(struct mh_tls *t, int64_t v)
{
    t->drawn += v - t->countdown;
    t->countdown = v;
}

/* What a child may allocate while its start is pending (about 256
 * samples at the default interval): Python runs pending calls only in
 * the main thread, which a child forked from another thread never has. */
#define CHILD_START_PATIENCE ((uint64_t)64 << 20)
static uint64_t child_wait_bytes; /* atomic */

/* Not recording, in a forked child whose capture has not started: ask
 * for it once this thread runs Python in the main interpreter (a heap
 * walker is busy and never asks). Py_AddPendingCall needs no GIL; the
 * callback runs where a signal handler would. When it never runs, say
 * so once: the child stays unrecorded. `bytes`: what the allocation
 * stands for. */
static __attribute__((noinline)) void
child_pending_slow(int state, uint64_t bytes)
{
    if (state == 2) {
        uint64_t seen = __atomic_add_fetch(&child_wait_bytes, bytes,
                                           __ATOMIC_RELAXED);
        int two = 2;
        if (seen >= CHILD_START_PATIENCE &&
            __atomic_compare_exchange_n(&mh_tracker.child_pending, &two, -1,
                                        0, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED))
            mh_warnf("pid %d was forked without Python's fork hooks and "
                     "has not run Python in its main thread since: it is "
                     "not recorded (uWSGI: run it with "
                     "--py-call-osafterfork)",
                     (int)getpid());
        return;
    }
    PyThreadState *ts = mh_frames_current();
    if (tls.busy || !mh_tracker.child_start || !ts ||
        PyThreadState_GetInterpreter(ts) != PyInterpreterState_Main() ||
        !__atomic_compare_exchange_n(&mh_tracker.child_pending, &state, 2, 0,
                                     __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        return;
    __atomic_store_n(&child_wait_bytes, 0, __ATOMIC_RELAXED);
    if (Py_AddPendingCall(mh_tracker.child_start, NULL))
        __atomic_store_n(&mh_tracker.child_pending, 1, __ATOMIC_RELAXED);
}

static inline void
check_child_pending(uint64_t bytes)
{
    int state = __atomic_load_n(&mh_tracker.child_pending, __ATOMIC_RELAXED);
    if (MH_UNLIKELY(state > 0))
        child_pending_slow(state, bytes);
}

static void
sample_slow(const struct mh_hook_domain *d, void *p, size_t size)
{
    struct mh_tls *t = &tls;
    if (!t->initialized) {
        /* A new thread starts at 0: draw its first interval now. */
        rng_seed(t);
        t->initialized = 1;
        set_countdown(t, draw_interval(t) - (int64_t)size);
        if (t->countdown >= 0)
            return;
    }
    set_countdown(t, draw_interval(t));
    if (!__atomic_load_n(&mh_tracker.active, __ATOMIC_RELAXED)) {
        check_child_pending(mh_tracker.interval);
        return;
    }
    if (!p || t->busy)
        return;
    t->busy = 1;
    record_alloc(d, p, size);
    t->busy = 0;
}

static void
sampled_free_slow(void *p)
{
    uint64_t v;
    pthread_mutex_lock(&mh_tracker.lock);
    if (mh_addrmap_remove(&mh_tracker.sampled, (uintptr_t)p, &v)) {
        uint64_t size = mh_tracker_live_size(v);
        filter_del_unlocked(p);
        mh_tracker.live_bytes -= sample_weight(size);
        if (__atomic_load_n(&mh_tracker.active, __ATOMIC_RELAXED)) {
            if (mh_cap_put_free(&mh_tracker.records, &mh_tracker.enc,
                                (uintptr_t)p))
                mh_tracker.dropped++;
            else
                mh_tracker.frees++;
        }
    } else {
        filter_miss_unlocked();
    }
    pthread_mutex_unlock(&mh_tracker.lock);
}

/* ---- the hooks: the hot path ----
 *
 * Each hook exists in two flavours: the RAW one forwards untouched when
 * the thread is inside a MEM/OBJ allocator (pymalloc passes requests over
 * 512 bytes to PyMem_RawMalloc: counting both would count the block
 * twice); the MEM/OBJ one sets that flag around the call it wraps. */

/* Requests above this size reach the MEM/OBJ hooks and then, passed on
 * by pymalloc, the RAW hook: only the RAW one counts them. SIZE_MAX when
 * the wrapped allocator does not pass them on (PYTHONMALLOC=malloc);
 * probed when the hooks are installed. Read-only while hooks run. */
static size_t py_counted_max = SIZE_MAX;

/* The slow halves live out of line so the fast paths need no stack
 * frame: count, test, tail-call the wrapped allocator. */
static __attribute__((noinline)) void *
malloc_sampled(const struct mh_hook_domain *d, size_t size)
{
    void *p = d->prev.malloc(d->prev.ctx, size);
    sample_slow(d, p, size);
    return p;
}

static __attribute__((noinline)) void *
calloc_sampled(const struct mh_hook_domain *d, size_t nelem, size_t elsize)
{
    void *p = d->prev.calloc(d->prev.ctx, nelem, elsize);
    sample_slow(d, p, nelem * elsize);
    return p;
}

static __attribute__((noinline)) void *
realloc_sampled(const struct mh_hook_domain *d, void *ptr, size_t size)
{
    void *p = d->prev.realloc(d->prev.ctx, ptr, size);
    sample_slow(d, p, size);
    return p;
}

static __attribute__((noinline)) void
free_filtered(const struct mh_hook_domain *d, void *ptr)
{
    if (ptr)
        sampled_free_slow(ptr);
    d->prev.free(d->prev.ctx, ptr);
}

/* Counts a request of `size` bytes; nonzero when it is a sample. A
 * MEM/OBJ request above py_counted_max is left to the RAW hook. The test
 * is a branch, not a select: it nearly always goes one way, and the
 * select cost an instruction more on every allocation. */
static inline int
countdown_crossed(size_t size, int raw)
{
    if (!raw && MH_UNLIKELY(size > py_counted_max))
        return 0;
    int64_t c = tls.countdown - (int64_t)size;
    tls.countdown = c;
    return MH_UNLIKELY(c < 0);
}

static inline void *
sample_malloc_impl(const struct mh_hook_domain *d, size_t size, int raw)
{
    if (countdown_crossed(size, raw))
        return malloc_sampled(d, size);
    return d->prev.malloc(d->prev.ctx, size);
}

static inline void *
sample_calloc_impl(const struct mh_hook_domain *d, size_t nelem,
                   size_t elsize, int raw)
{
    size_t size = nelem * elsize; /* prev.calloc fails on overflow */
    if (countdown_crossed(size, raw))
        return calloc_sampled(d, nelem, elsize);
    return d->prev.calloc(d->prev.ctx, nelem, elsize);
}

static inline void *
sample_realloc_impl(const struct mh_hook_domain *d, void *ptr, size_t size,
                    int raw, int dom)
{
    /* The old block's free is recorded before the allocator can hand
     * its address to another thread. */
    if (MH_UNLIKELY(filter_maybe(d, dom, ptr)) && ptr)
        sampled_free_slow(ptr);
    if (countdown_crossed(size, raw))
        return realloc_sampled(d, ptr, size);
    return d->prev.realloc(d->prev.ctx, ptr, size);
}

static inline void
sample_free_impl(const struct mh_hook_domain *d, void *ptr, int raw,
                 int dom)
{
    (void)raw; /* a nested RAW free finds the block already removed */
    if (MH_UNLIKELY(filter_maybe(d, dom, ptr))) {
        free_filtered(d, ptr);
        return;
    }
    d->prev.free(d->prev.ctx, ptr);
}

/* ---- trace-all hooks ---- */

static void
trace_alloc(const struct mh_hook_domain *d, void *p, size_t size)
{
    if (!__atomic_load_n(&mh_tracker.active, __ATOMIC_RELAXED)) {
        check_child_pending(size);
        return;
    }
    if (!p || tls.busy)
        return;
    tls.busy = 1;
    record_alloc(d, p, size);
    tls.busy = 0;
}

static void
trace_free(void *p)
{
    if (!p || !__atomic_load_n(&mh_tracker.active, __ATOMIC_RELAXED))
        return;
    pthread_mutex_lock(&mh_tracker.lock);
    mh_addrmap_remove(&mh_tracker.sampled, (uintptr_t)p, NULL);
    if (mh_cap_put_free(&mh_tracker.records, &mh_tracker.enc, (uintptr_t)p))
        mh_tracker.dropped++;
    else
        mh_tracker.frees++;
    pthread_mutex_unlock(&mh_tracker.lock);
}

static inline void *
trace_malloc_impl(const struct mh_hook_domain *d, size_t size, int raw)
{
    if (raw && tls.nested)
        return d->prev.malloc(d->prev.ctx, size);
    tls.traced += size;
    if (!raw)
        tls.nested = 1;
    void *p = d->prev.malloc(d->prev.ctx, size);
    if (!raw)
        tls.nested = 0;
    trace_alloc(d, p, size);
    return p;
}

static inline void *
trace_calloc_impl(const struct mh_hook_domain *d, size_t nelem,
                  size_t elsize, int raw)
{
    if (raw && tls.nested)
        return d->prev.calloc(d->prev.ctx, nelem, elsize);
    tls.traced += nelem * elsize;
    if (!raw)
        tls.nested = 1;
    void *p = d->prev.calloc(d->prev.ctx, nelem, elsize);
    if (!raw)
        tls.nested = 0;
    trace_alloc(d, p, nelem * elsize);
    return p;
}

static inline void *
trace_realloc_impl(const struct mh_hook_domain *d, void *ptr, size_t size,
                   int raw, int dom)
{
    (void)dom;
    if (raw && tls.nested)
        return d->prev.realloc(d->prev.ctx, ptr, size);
    tls.traced += size;
    trace_free(ptr);
    if (!raw)
        tls.nested = 1;
    void *p = d->prev.realloc(d->prev.ctx, ptr, size);
    if (!raw)
        tls.nested = 0;
    trace_alloc(d, p, size);
    return p;
}

static inline void
trace_free_impl(const struct mh_hook_domain *d, void *ptr, int raw, int dom)
{
    (void)dom;
    if (!(raw && tls.nested))
        trace_free(ptr);
    if (!raw)
        tls.nested = 1;
    d->prev.free(d->prev.ctx, ptr);
    if (!raw)
        tls.nested = 0;
}

/* The entry points PyMem_SetAllocator gets: one set per mode and per
 * kind of domain, with `raw` and the domain's index `dom` compile-time
 * constants. */
#define MH_HOOKS(mode, kind, raw, dom)                                     \
    static void *mode##_malloc_##kind(void *ctx, size_t size)              \
    {                                                                      \
        return mode##_malloc_impl(ctx, size, raw);                         \
    }                                                                      \
    static void *mode##_calloc_##kind(void *ctx, size_t n, size_t size)    \
    {                                                                      \
        return mode##_calloc_impl(ctx, n, size, raw);                      \
    }                                                                      \
    static void *mode##_realloc_##kind(void *ctx, void *ptr, size_t size)  \
    {                                                                      \
        return mode##_realloc_impl(ctx, ptr, size, raw, dom);              \
    }                                                                      \
    static void mode##_free_##kind(void *ctx, void *ptr)                   \
    {                                                                      \
        mode##_free_impl(ctx, ptr, raw, dom);                              \
    }

/* Forward-only hooks: the floor any hook costs, for benchmarks. */
static void *
forward_malloc(void *ctx, size_t size)
{
    const struct mh_hook_domain *d = ctx;
    return d->prev.malloc(d->prev.ctx, size);
}

static void *
forward_calloc(void *ctx, size_t nelem, size_t elsize)
{
    const struct mh_hook_domain *d = ctx;
    return d->prev.calloc(d->prev.ctx, nelem, elsize);
}

static void *
forward_realloc(void *ctx, void *ptr, size_t size)
{
    const struct mh_hook_domain *d = ctx;
    return d->prev.realloc(d->prev.ctx, ptr, size);
}

static void
forward_free(void *ctx, void *ptr)
{
    const struct mh_hook_domain *d = ctx;
    d->prev.free(d->prev.ctx, ptr);
}

MH_HOOKS(sample, raw, 1, MH_DOMAIN_RAW)
MH_HOOKS(sample, mem, 0, MH_DOMAIN_MEM)
MH_HOOKS(sample, obj, 0, MH_DOMAIN_OBJ)
MH_HOOKS(trace, raw, 1, MH_DOMAIN_RAW)
MH_HOOKS(trace, py, 0, MH_DOMAIN_MEM) /* dom unused */

/* ---- set-up ---- */

static const PyMemAllocatorDomain py_domains[3] = {
    PYMEM_DOMAIN_RAW, PYMEM_DOMAIN_MEM, PYMEM_DOMAIN_OBJ};

/* memhound's own memory, all of which comes through here, is counted so
 * stats() can report what the agent holds (writer buffers, zstd's context
 * and the like included): a header before each block keeps its size,
 * whatever allocator we wrap. Atomic: the hooks and the writer thread
 * allocate under different locks. */
#define OWN_HEADER 16 /* keeps the allocator's 16-byte alignment */
static size_t own_bytes, own_peak;

static void *
own_realloc(void *ctx, void *ptr, size_t size)
{
    const PyMemAllocatorEx *raw = ctx;
    size_t old = 0;
    uint8_t *base = NULL;
    if (ptr) {
        base = (uint8_t *)ptr - OWN_HEADER;
        memcpy(&old, base, sizeof(old));
    }
    if (size > SIZE_MAX - OWN_HEADER)
        return NULL;
    uint8_t *q = raw->realloc(raw->ctx, base, size + OWN_HEADER);
    if (!q)
        return NULL;
    memcpy(q, &size, sizeof(size));
    size_t now = __atomic_add_fetch(&own_bytes, size - old, __ATOMIC_RELAXED);
    size_t peak = __atomic_load_n(&own_peak, __ATOMIC_RELAXED);
    while (now > peak &&
           !__atomic_compare_exchange_n(&own_peak, &peak, now, 1,
                                        __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
    return q + OWN_HEADER;
}

static void
own_free(void *ctx, void *ptr)
{
    const PyMemAllocatorEx *raw = ctx;
    if (!ptr)
        return;
    uint8_t *base = (uint8_t *)ptr - OWN_HEADER;
    size_t size;
    memcpy(&size, base, sizeof(size));
    __atomic_sub_fetch(&own_bytes, size, __ATOMIC_RELAXED);
    raw->free(raw->ctx, base);
}

static PyMemAllocatorEx own_raw;

static void
atfork_prepare(void)
{
    pthread_mutex_lock(&mh_tracker.lock);
}

static void
atfork_parent(void)
{
    pthread_mutex_unlock(&mh_tracker.lock);
}

static void
atfork_child(void)
{
    /* The parent's pending records belong to the parent's capture. */
    __atomic_store_n(&mh_tracker.active, 0, __ATOMIC_RELAXED);
    mh_buf_reset(&mh_tracker.records);
    mh_tracker.enc = (struct mh_cap_enc){0};
    /* Workers forked from one master must not sample in lockstep. */
    if (tls.initialized)
        rng_seed(&tls);
    pthread_mutex_unlock(&mh_tracker.lock);
}

int
mh_tracker_init(void)
{
    static int done;
    if (done)
        return MH_OK;
    /* memhound's own memory comes from the RAW allocator installed before
     * it, never through its hooks. */
    PyMem_GetAllocator(PYMEM_DOMAIN_RAW, &own_raw);
    struct mh_mem_ops ops = {own_realloc, own_free, &own_raw};
    mh_mem_set(&ops);
    mh_buf_init(&mh_tracker.records, MH_RECORDS_MAX);
    mh_stacks_init(&mh_tracker.stacks, MH_STACKS_MAX_BYTES);
    mh_addrmap_init(&mh_tracker.sampled, MH_SAMPLED_MAX);
    if (pthread_atfork(atfork_prepare, atfork_parent, atfork_child))
        return MH_EIO;
    done = 1;
    return MH_OK;
}

/* Whether the MEM/OBJ allocator we wrap passes large requests to the RAW
 * domain (pymalloc does, above 512 bytes): allocate 600 bytes through it
 * while a probe RAW allocator watches. GIL held, before our hooks. */
static size_t probe_seen;
static PyMemAllocatorEx probe_prev_raw;

static void *
probe_raw_malloc(void *ctx, size_t size)
{
    (void)ctx;
    probe_seen = size;
    return probe_prev_raw.malloc(probe_prev_raw.ctx, size);
}

static size_t
probe_py_counted_max(void)
{
    PyMemAllocatorEx probe;
    PyMem_GetAllocator(PYMEM_DOMAIN_RAW, &probe_prev_raw);
    probe = probe_prev_raw;
    probe.malloc = probe_raw_malloc;
    probe_seen = 0;
    PyMem_SetAllocator(PYMEM_DOMAIN_RAW, &probe);
    void *p = PyObject_Malloc(600);
    size_t seen_obj = probe_seen;
    probe_seen = 0;
    void *q = PyMem_Malloc(600);
    size_t seen_mem = probe_seen;
    PyMem_SetAllocator(PYMEM_DOMAIN_RAW, &probe_prev_raw);
    PyObject_Free(p);
    PyMem_Free(q);
    return seen_obj == 600 && seen_mem == 600 ? 512 : SIZE_MAX;
}

static int
hooks_on_top(void)
{
    for (int i = 0; i < 3; i++) {
        PyMemAllocatorEx cur;
        PyMem_GetAllocator(py_domains[i], &cur);
        if (cur.malloc != mh_tracker.dom[i].ours.malloc ||
            cur.ctx != mh_tracker.dom[i].ours.ctx)
            return 0;
    }
    return 1;
}

int
mh_tracker_start(int mode, uint64_t interval, uint32_t max_depth)
{
    int rc = mh_tracker_init();
    if (rc)
        return rc;
    if (max_depth > MH_MAX_DEPTH_LIMIT)
        max_depth = MH_MAX_DEPTH_LIMIT;
    if (mh_tracker.hooks_installed && mh_tracker.mode != mode &&
        !hooks_on_top())
        return MH_EINVAL; /* someone hooked on top of us: cannot switch */

    pthread_mutex_lock(&mh_tracker.lock);
    /* Samples of an earlier session are forgotten: the new capture
     * starts empty. */
    mh_addrmap_release(&mh_tracker.sampled);
    mh_tracker.filter_stale = 0;
    mh_tracker.filter_misses = 0;
    for (size_t i = 0; i < MH_FILTER_BITS / 64; i++)
        __atomic_store_n(&mh_tracker.filter[i], 0, __ATOMIC_RELAXED);
    memset(filter_shared, 0, sizeof(filter_shared));
    mh_buf_reset(&mh_tracker.records);
    mh_tracker.enc = (struct mh_cap_enc){0};
    mh_tracker.live_bytes = 0;
    mh_tracker.samples = mh_tracker.frees = mh_tracker.dropped = 0;
    mh_tracker.requests = 0;
    mh_tracker.live_lost = 0;
    mh_tracker.mode = mode;
    mh_tracker.interval = mode == MH_MODE_SAMPLE ? interval : 0;
    mh_tracker.max_depth = max_depth;
    pthread_mutex_unlock(&mh_tracker.lock);
    tls.initialized = 0; /* redraw with the new interval */
    set_countdown(&tls, 0);

    if (!mh_tracker.hooks_installed || hooks_on_top()) {
        if (!mh_tracker.hooks_installed)
            py_counted_max = probe_py_counted_max();
        for (int i = 0; i < 3; i++) {
            struct mh_hook_domain *d = &mh_tracker.dom[i];
            if (!mh_tracker.hooks_installed)
                PyMem_GetAllocator(py_domains[i], &d->prev);
            d->domain = (enum mh_domain)i;
            d->ours.ctx = d;
            int raw = i == MH_DOMAIN_RAW;
            if (mode == MH_MODE_FORWARD) {
                d->ours.malloc = forward_malloc;
                d->ours.calloc = forward_calloc;
                d->ours.realloc = forward_realloc;
                d->ours.free = forward_free;
            } else if (mode == MH_MODE_SAMPLE && raw) {
                d->ours.malloc = sample_malloc_raw;
                d->ours.calloc = sample_calloc_raw;
                d->ours.realloc = sample_realloc_raw;
                d->ours.free = sample_free_raw;
            } else if (mode == MH_MODE_SAMPLE && i == MH_DOMAIN_MEM) {
                d->ours.malloc = sample_malloc_mem;
                d->ours.calloc = sample_calloc_mem;
                d->ours.realloc = sample_realloc_mem;
                d->ours.free = sample_free_mem;
            } else if (mode == MH_MODE_SAMPLE) {
                d->ours.malloc = sample_malloc_obj;
                d->ours.calloc = sample_calloc_obj;
                d->ours.realloc = sample_realloc_obj;
                d->ours.free = sample_free_obj;
            } else {
                d->ours.malloc = raw ? trace_malloc_raw : trace_malloc_py;
                d->ours.calloc = raw ? trace_calloc_raw : trace_calloc_py;
                d->ours.realloc = raw ? trace_realloc_raw : trace_realloc_py;
                d->ours.free = raw ? trace_free_raw : trace_free_py;
            }
            PyMem_SetAllocator(py_domains[i], &d->ours);
        }
        mh_tracker.hooks_installed = 1;
    }
    __atomic_store_n(&mh_tracker.active, 1, __ATOMIC_RELEASE);
    return MH_OK;
}

void
mh_tracker_stop(void)
{
    __atomic_store_n(&mh_tracker.active, 0, __ATOMIC_RELEASE);
    if (mh_tracker.hooks_installed && hooks_on_top()) {
        for (int i = 0; i < 3; i++)
            PyMem_SetAllocator(py_domains[i], &mh_tracker.dom[i].prev);
        mh_tracker.hooks_installed = 0;
    }
}

void
mh_tracker_resume(void)
{
    __atomic_store_n(&mh_tracker.active, 1, __ATOMIC_RELEASE);
}

uint32_t
mh_tracker_take_records(struct mh_buf *out)
{
    pthread_mutex_lock(&mh_tracker.lock);
    struct mh_buf tmp = *out;
    *out = mh_tracker.records;
    mh_tracker.records = tmp;
    mh_buf_reset(&mh_tracker.records);
    mh_tracker.records.max = MH_RECORDS_MAX;
    mh_tracker.enc = (struct mh_cap_enc){0}; /* a new chunk: no TAG yet */
    uint32_t n = mh_tracker.stacks.count;
    pthread_mutex_unlock(&mh_tracker.lock);
    return n;
}

void
mh_tracker_put_timeline(uint64_t t_ns, uint64_t rss)
{
    pthread_mutex_lock(&mh_tracker.lock);
    struct mh_cap_timeline t = {
        .t_ns = t_ns,
        .rss = rss,
        .live = mh_tracker.live_bytes > 0 ? (uint64_t)mh_tracker.live_bytes
                                          : 0,
        .samples = mh_tracker.samples,
        .frees = mh_tracker.frees,
        .dropped = mh_tracker.dropped,
    };
    mh_allocstats_fill(&t);
    if (mh_cap_put_timeline(&mh_tracker.records, &t))
        mh_tracker.dropped++;
    pthread_mutex_unlock(&mh_tracker.lock);
}

void
mh_tracker_put_marker(uint64_t t_ns, uint32_t kind, const char *text,
                      size_t n)
{
    pthread_mutex_lock(&mh_tracker.lock);
    if (mh_cap_put_marker(&mh_tracker.records, t_ns, kind, text, n))
        mh_tracker.dropped++;
    pthread_mutex_unlock(&mh_tracker.lock);
}

void
mh_tracker_put_end(uint64_t t_ns)
{
    pthread_mutex_lock(&mh_tracker.lock);
    /* END must not be lost to the cap: it says the capture is whole. */
    mh_tracker.records.max = MH_RECORDS_MAX + 64;
    if (mh_cap_put_end(&mh_tracker.records, t_ns, mh_tracker.samples,
                       mh_tracker.frees, mh_tracker.dropped))
        mh_tracker.dropped++;
    pthread_mutex_unlock(&mh_tracker.lock);
}

void
mh_tracker_put_request(const struct mh_cap_request *r)
{
    pthread_mutex_lock(&mh_tracker.lock);
    mh_tracker.requests++;
    if (mh_cap_put_request(&mh_tracker.records, r))
        mh_tracker.dropped++;
    pthread_mutex_unlock(&mh_tracker.lock);
}

void
mh_tracker_put_finding(const struct mh_cap_finding *f)
{
    pthread_mutex_lock(&mh_tracker.lock);
    if (mh_cap_put_finding(&mh_tracker.records, f))
        mh_tracker.dropped++;
    pthread_mutex_unlock(&mh_tracker.lock);
}

int
mh_tracker_thread_allocated(uint64_t *out)
{
    if (!__atomic_load_n(&mh_tracker.active, __ATOMIC_RELAXED))
        return -1;
    if (mh_tracker.mode == MH_MODE_SAMPLE)
        *out = (uint64_t)(tls.drawn - tls.countdown);
    else if (mh_tracker.mode == MH_MODE_TRACE)
        *out = tls.traced;
    else
        return -1;
    return 0;
}

void
mh_tracker_stats(struct mh_tracker_stats *st)
{
    pthread_mutex_lock(&mh_tracker.lock);
    st->samples = mh_tracker.samples;
    st->frees = mh_tracker.frees;
    st->dropped = mh_tracker.dropped;
    st->requests = mh_tracker.requests;
    st->stacks = mh_tracker.stacks.count;
    st->live_bytes = mh_tracker.live_bytes;
    /* Everything from the agent's allocator, and the filter. */
    size_t fixed = sizeof(mh_tracker.filter) + sizeof(filter_shared);
    st->tracker_bytes =
        __atomic_load_n(&own_bytes, __ATOMIC_RELAXED) + fixed;
    st->tracker_peak_bytes =
        __atomic_load_n(&own_peak, __ATOMIC_RELAXED) + fixed;
    pthread_mutex_unlock(&mh_tracker.lock);
}
