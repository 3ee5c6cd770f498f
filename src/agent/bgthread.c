/* The agent's background thread (bgthread.h): its loop (timeline ticks,
 * allocator statistics, control channel, flush schedule), its start and
 * stop, its pause around fork() and the forked child's fresh start. The
 * capture file itself is writer.c's. */
#include "frames.h" /* Python.h first, as CPython asks */

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../util/clock.h"
#include "allocstats.h"
#include "bgthread.h"
#include "control.h"
#include "sigflush.h"
#include "tracker.h"
#include "writer.h"

#define TICK_NS 100000000ull /* timeline period */
/* Flush on every tick: a SIGKILL loses at most the last 100 ms (other
 * ends write the tail: sigflush.h, python/memhound). The writer thread's
 * CPU is the same as at 1 s, the capture grows faster (smaller chunks
 * compress less): docs/performance.md, "Flush interval", measured with
 * agents built with -DMH_FLUSH_NS=... */
#ifdef MH_FLUSH_NS
#define FLUSH_NS ((uint64_t)(MH_FLUSH_NS))
#else
#define FLUSH_NS TICK_NS
#endif
#define FLUSH_BYTES (4u << 20) /* or when this much is pending */
/* How often the control channel is looked at while a client waits for a
 * walker: the walk time it reports is this precise. */
#define CONTROL_POLL_NS 5000000ull
/* Allocator statistics (allocstats.h) are refreshed every this many
 * ticks: glibc's every second; pymalloc's every 5 s, since its walk of
 * every pool holds the GIL (ms on a heap of hundreds of MB) and a trend
 * measured in minutes needs no more. */
#define ALLOCSTATS_TICKS 10
#define PYMALLOC_TICKS 50
/* Set MEMHOUND_ALLOCSTATS_COST=1 to have the agent print what each
 * refresh costs (docs/verdict.md quotes the numbers). */
struct mh_bgthread {
    /* Thread control, protected by wlock. */
    pthread_mutex_t wlock;
    pthread_cond_t wcond;
    pthread_t thread;
    int running, stop;
    int exiting; /* the thread saw `stop` and is returning */
    /* The thread's schedule (monotonic ns), kept across its restarts;
     * only the thread touches it, 0 until a capture opens. */
    uint64_t last_flush, next_tick;
    unsigned ticks;
    /* Serialises stopping and starting the thread (`running`): a fork's
     * pause (atfork_prepare) and Python's may overlap. Taken without the
     * GIL, never while waiting for it. */
    pthread_mutex_t pause_lock;
};

static struct mh_bgthread t = {
    .wlock = PTHREAD_MUTEX_INITIALIZER,
    .wcond = PTHREAD_COND_INITIALIZER,
    .pause_lock = PTHREAD_MUTEX_INITIALIZER,
};

/* ---- the thread ---- */

/* Waits on the condition variable until `until_ns` (CLOCK_MONOTONIC)
 * or a stop; wlock held. */
static void
wait_until(uint64_t until_ns)
{
    struct timespec until = {
        .tv_sec = (time_t)(until_ns / 1000000000ull),
        .tv_nsec = (long)(until_ns % 1000000000ull),
    };
    pthread_cond_timedwait(&t.wcond, &t.wlock, &until);
}

/* The writer's wake-up for a rare record (a marker) to be flushed now
 * (mh_writer_set_wake()). */
static void
wake(void)
{
    if (t.running && pthread_equal(pthread_self(), t.thread))
        return; /* the thread looks at flush_soon before it sleeps */
    pthread_mutex_lock(&t.wlock);
    pthread_cond_signal(&t.wcond);
    pthread_mutex_unlock(&t.wlock);
}

static void *
thread_main(void *arg)
{
    (void)arg;
    mh_tracker_set_busy(1); /* its own allocations are not the target's */
    /* The schedule outlives the thread: a program that forks more often
     * than TICK_NS stops and restarts it at every fork (atfork_prepare),
     * and must still get its timeline points and flushes. */
    if (!t.next_tick) {
        t.last_flush = mh_clock_ns(CLOCK_MONOTONIC);
        t.next_tick = t.last_flush + TICK_NS;
        t.ticks = 0;
    }
    uint64_t last_flush = t.last_flush;
    uint64_t next_tick = t.next_tick;
    unsigned ticks = t.ticks;
    const char *cost_env = getenv("MEMHOUND_ALLOCSTATS_COST");
    int show_cost = cost_env && *cost_env == '1';
    pthread_mutex_lock(&t.wlock);
    while (!t.stop) {
        /* The control channel may need a quicker look than the timeline:
         * a client waiting for a walker to finish. */
        uint64_t until = next_tick;
        if (mh_control_busy()) {
            uint64_t soon = mh_clock_ns(CLOCK_MONOTONIC) + CONTROL_POLL_NS;
            if (soon < until)
                until = soon;
        }
        wait_until(until);
        if (t.stop)
            break;
        pthread_mutex_unlock(&t.wlock);
        uint64_t now = mh_clock_ns(CLOCK_MONOTONIC);
        if (now >= next_tick) {
            next_tick += TICK_NS;
            if (next_tick <= now) /* fell behind (a stopped process) */
                next_tick = now + TICK_NS;
            if (ticks % ALLOCSTATS_TICKS == 0) {
                uint64_t t0 = mh_clock_ns(CLOCK_MONOTONIC);
                mh_allocstats_refresh(ticks % PYMALLOC_TICKS == 0);
                if (show_cost)
                    mh_warnf(
                        "allocstats refresh took %llu us",
                        (unsigned long long)(mh_clock_ns(CLOCK_MONOTONIC) -
                                             t0) /
                            1000);
            }
            ticks++;
            mh_writer_put_timeline();
            size_t pending =
                __atomic_load_n(&mh_tracker.records.len, __ATOMIC_RELAXED);
            if (now - last_flush >= FLUSH_NS || pending >= FLUSH_BYTES) {
                mh_writer_flush();
                last_flush = now;
            }
        }
        mh_control_tick(mh_writer_now_ns());
        if (mh_writer_take_flush_soon()) {
            mh_writer_flush();
            last_flush = mh_clock_ns(CLOCK_MONOTONIC);
        }
        t.last_flush = last_flush;
        t.next_tick = next_tick;
        t.ticks = ticks;
        pthread_mutex_lock(&t.wlock);
    }
    t.exiting = 1;
    pthread_mutex_unlock(&t.wlock);
    return NULL;
}

int
mh_bgthread_start(void)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t.wcond, &ca);
    pthread_condattr_destroy(&ca);
    t.stop = 0;
    t.exiting = 0;
    /* Signals are the target's: the thread starts with all blocked. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&t.thread, NULL, thread_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        errno = rc;
        return -1;
    }
    t.running = 1;
    return 0;
}

static void
stop_thread(void)
{
    pthread_mutex_lock(&t.pause_lock);
    if (t.running) {
        pthread_mutex_lock(&t.wlock);
        t.stop = 1;
        pthread_cond_signal(&t.wcond);
        pthread_mutex_unlock(&t.wlock);
        pthread_join(t.thread, NULL);
        t.running = 0;
    }
    pthread_mutex_unlock(&t.pause_lock);
}

void
mh_bgthread_pause(void)
{
    stop_thread();
}

int
mh_bgthread_resume(void)
{
    pthread_mutex_lock(&t.pause_lock);
    int rc = !mh_writer_is_open() || t.running ? 0 : mh_bgthread_start();
    pthread_mutex_unlock(&t.pause_lock);
    return rc;
}

/* A fork's wait for the writer thread: a flush with stacks to resolve
 * takes milliseconds; a GIL another thread keeps may take for ever. */
#define FORK_PAUSE_NS 1000000000ull

/* Set by atfork_prepare when it stopped the thread: the parent restarts
 * it. Only the forking thread touches it. */
static int paused_at_fork;

/* Stops the thread if it ends within `ns`; otherwise lets it go on.
 * Returns whether it stopped. pause_lock held. */
static int
stop_thread_within(uint64_t ns)
{
    pthread_mutex_lock(&t.wlock);
    t.stop = 1;
    pthread_cond_signal(&t.wcond);
    pthread_mutex_unlock(&t.wlock);
    uint64_t until_ns = mh_clock_ns(CLOCK_REALTIME) + ns;
    struct timespec until = {
        .tv_sec = (time_t)(until_ns / 1000000000ull),
        .tv_nsec = (long)(until_ns % 1000000000ull),
    };
    if (pthread_timedjoin_np(t.thread, NULL, &until) == 0) {
        t.running = 0;
        return 1;
    }
    pthread_mutex_lock(&t.wlock);
    int exiting = t.exiting; /* it saw the stop: it is returning now */
    if (!exiting)
        t.stop = 0;
    pthread_mutex_unlock(&t.wlock);
    if (!exiting)
        return 0;
    pthread_join(t.thread, NULL);
    t.running = 0;
    return 1;
}

/* Before every fork(), whoever calls it: the writer thread is stopped,
 * as Python's os.fork() hook does (mh_bgthread_pause), so that it
 * holds nothing the child would inherit held: the GIL's own locks above
 * all, which a thread waiting for the GIL takes every few milliseconds.
 * That matters where fork() comes from C: uWSGI's master keeps the GIL
 * while it forks its workers, and the writer may have waited for it
 * since. The forking thread lets the GIL go for the wait (it has it back
 * before fork() proceeds, so the child's GIL is its own). Not when the
 * writer itself forks (a heap dump's walker). */
static void
atfork_prepare(void)
{
    paused_at_fork = 0;
    if (!t.running || pthread_equal(pthread_self(), t.thread))
        return;
    PyThreadState *ts = mh_frames_current(); /* non-NULL: we hold the GIL */
    int main_interp =
        ts && PyThreadState_GetInterpreter(ts) == PyInterpreterState_Main();
    if (ts)
        ts = PyEval_SaveThread();
    pthread_mutex_lock(&t.pause_lock);
    if (t.running)
        paused_at_fork = stop_thread_within(FORK_PAUSE_NS);
    pthread_mutex_unlock(&t.pause_lock);
    /* A thread that forks with the GIL held may have kept it from the
     * writer for long (uWSGI's master does, for ever): what is pending
     * reaches the capture now. */
    if (paused_at_fork && main_interp)
        mh_writer_flush();
    if (ts)
        PyEval_RestoreThread(ts);
}

/* The thread stopped for the fork starts again. If another thread is
 * stopping or starting it meanwhile (its own os.fork(), the end of the
 * session), that one decides. */
static void
atfork_parent(void)
{
    if (paused_at_fork && pthread_mutex_trylock(&t.pause_lock) == 0) {
        if (!t.running && mh_writer_is_open() && mh_bgthread_start())
            mh_warnf("cannot restart the writer thread after fork: %s",
                     strerror(errno));
        pthread_mutex_unlock(&t.pause_lock);
    }
    paused_at_fork = 0;
}

/* In every forked child, whoever forked it: os.fork() (whose Python hook
 * then calls mh_bgthread_continue_in_child()), uWSGI forking its workers
 * from C, a C library's fork(). The parent's capture, writer thread and
 * control socket are the parent's: the child drops them at once, before
 * any of its code runs, so nothing it does can write into the parent's
 * file. Its own capture starts when it runs Python (tracker.h,
 * child_pending). Only async-signal-safe calls and plain stores here. */
static void
atfork_child(void)
{
    paused_at_fork = 0;
    pthread_mutex_init(&t.wlock, NULL);
    pthread_mutex_init(&t.pause_lock, NULL);
    int was_running = t.running;
    t.running = 0;
    if (mh_writer_forget_in_child(was_running))
        mh_control_forget();
}

int
mh_bgthread_prepare(void)
{
    static int atfork_done;
    if (!atfork_done) {
        if (pthread_atfork(atfork_prepare, atfork_parent, atfork_child))
            return -1;
        atfork_done = 1;
    }
    t.next_tick = 0; /* a new capture starts its own schedule */
    mh_writer_set_wake(wake);
    return 0;
}

void
mh_bgthread_open_control(void)
{
    char err[512];
    if (mh_control_open(err, sizeof(err)))
        mh_warnf("no control channel for process %d ('memhound snapshot' "
                 "cannot reach it): %s",
                 (int)getpid(), err);
}

void
mh_bgthread_end(void)
{
    mh_sigflush_disarm();
    stop_thread();
    mh_control_close();
    mh_writer_close();
}

int
mh_bgthread_continue_in_child(const char *path, uint64_t parent_pid)
{
    /* The parent's threads are gone in the child: their locks are in an
     * unknown state and the thread handle means nothing. */
    pthread_mutex_init(&t.wlock, NULL);
    pthread_mutex_init(&t.pause_lock, NULL);
    t.running = 0;
    if (mh_bgthread_prepare() || mh_writer_continue_in_child(path, parent_pid))
        return -1;
    /* The parent's socket is the parent's: a child answers on its own. */
    mh_control_forget();
    mh_bgthread_open_control();
    mh_tracker_resume();
    return mh_bgthread_start();
}
