#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../format/capture_write.h"
#include "../util/addrmap.h"
#include "../util/clock.h"
#include "../util/fd.h"
#include "../util/file.h"
#include "../util/mem.h"
#include "allocstats.h"
#include "tracker.h"
#include "writer.h"

#define DEFS_CHUNK_BYTES (8u << 20)  /* write definitions in pieces */
#define ZSTD_LEVEL 1

struct mh_writer {
    /* Protected by flush_lock (or single-threaded: open, child). */
    int fd;
    struct mh_fd_id fd_id; /* what fd must still name (util/fd.h) */
    pid_t owner;           /* the process whose capture this is */
    char *path;
    uint64_t start_mono_ns;
    struct mh_buf spare, chunk, out, zscratch;
    struct mh_addrmap codes;  /* PyCodeObject* -> code id */
    struct mh_addrmap frames; /* code id << 32 | offset -> frame id */
    struct mh_addrmap strs;   /* str object -> string id */
    uint32_t next_string, next_code, next_frame;
    uint32_t emitted_stacks;
    int failed;
    /* What is in the file for sure: its length after the last whole
     * write, and the stacks its chunks define. A write that fails for
     * lack of space is cut back to good_off (the file stays readable)
     * and what follows is written without new stacks (disk_full). */
    uint64_t good_off;
    uint32_t file_stacks;
    int disk_full, full_err, full_noted;
    char *registry; /* MEMHOUND_REGISTRY: where `run` hears of it */
    /* Header settings kept for a forked child's capture. */
    int mode;
    uint64_t interval;
    uint32_t max_depth;
    char **hdr_strs; /* python, executable, argv..., libs..., paths... */
    uint32_t argc, nlib, npath;
    uint64_t run_id;

    pthread_mutex_t flush_lock;
    /* Atomics the signal handler reads (last_words), with owner and
     * fd_id above: who holds flush_lock, and whether that flush waits
     * for (or holds) the GIL. */
    int flush_held;
    pthread_t flush_owner;
    int resolving;
    int flush_soon; /* a rare record (marker) is pending: flush now */
    /* Wakes the background thread for flush_soon (bgthread.c), or
     * NULL before a session first opens. */
    void (*wake)(void);
};

static struct mh_writer w = {
    .fd = -1,
    .flush_lock = PTHREAD_MUTEX_INITIALIZER,
};

uint64_t
mh_writer_now_ns(void)
{
    return mh_clock_ns(CLOCK_MONOTONIC) - w.start_mono_ns;
}

int
mh_writer_is_open(void)
{
    return w.fd >= 0;
}

const char *
mh_writer_path(void)
{
    return w.path ? w.path : "";
}

/* mh_file_create_private() flags for the files of this session (its
 * capture, a forked child's, its heap dumps): MH_FILE_FORCE when the user
 * asked to replace files of theirs. Set with the GIL held before the
 * session opens; only read afterwards. */
static int create_flags;

void
mh_writer_set_create_flags(int flags)
{
    create_flags = flags;
}

int
mh_writer_create_flags(void)
{
    return create_flags;
}

static uint64_t
read_rss(void)
{
    return mh_allocstats_rss();
}

static int
is_disk_full(int err)
{
    return err == ENOSPC || err == EDQUOT || err == EFBIG;
}

/* Appends "pid\t!full\twhy\tpath" to `run`'s registry, which is how it
 * learns that a capture stopped early (docs/run.md): the capture itself
 * may have no room left to say so. */
static void
tell_run_disk_full(int err)
{
    if (!w.registry)
        return;
    char line[PATH_MAX + 128];
    int n = snprintf(line, sizeof(line), "%d\t!full\t%s\t%s\n",
                     (int)getpid(), strerror(err), mh_writer_path());
    if (n <= 0 || (size_t)n >= sizeof(line))
        return;
    int fd = open(w.registry, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0)
        return;
    if (write(fd, line, (size_t)n) < 0) {
        /* nobody to tell */
    }
    close(fd);
}

static void
write_failed(int err)
{
    if (is_disk_full(err) && !w.failed) {
        /* Cut the partial chunk off, so the file stays readable to its
         * last whole chunk; recording stops, the tail is still written
         * when room appears (flush_full). */
        if (ftruncate(w.fd, (off_t)w.good_off) ||
            lseek(w.fd, (off_t)w.good_off, SEEK_SET) < 0) {
            w.failed = 1;
        }
        if (!w.disk_full) {
            mh_warnf("the disk is full: cannot write capture '%s' (%s); "
                     "recording stopped in process %d",
                     mh_writer_path(), strerror(err), (int)getpid());
            tell_run_disk_full(err);
        }
        w.disk_full = 1;
        w.full_err = err;
        __atomic_store_n(&mh_tracker.active, 0, __ATOMIC_RELAXED);
        return;
    }
    if (!w.failed)
        mh_warnf("cannot write capture '%s': %s; recording stopped",
                 mh_writer_path(), strerror(err));
    w.failed = 1;
    __atomic_store_n(&mh_tracker.active, 0, __ATOMIC_RELAXED);
}

/* Whether w.fd is still the capture. A program that closes its
 * descriptors (os.closerange(3, N)) may have given the number to a file
 * of its own: the capture is then reopened by its path when that still
 * names the same file, else recording stops and the capture ends here
 * (its missing END says so). Either way the number is left alone: it is
 * the program's now. */
static int
fd_still_ours(void)
{
    if (w.owner != getpid()) {
        /* A child no at-fork handler ran in (a raw clone): never the
         * parent's file. */
        w.fd = -1;
        w.failed = 1;
        __atomic_store_n(&mh_tracker.active, 0, __ATOMIC_RELAXED);
        return 0;
    }
    if (mh_fd_is(w.fd, &w.fd_id))
        return 1;
    int fd = -1;
    if (w.path && w.path[0] == '/')
        fd = open(w.path, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
        fd = mh_fd_move_high(fd);
        if (mh_fd_is(fd, &w.fd_id)) {
            w.fd = fd;
            return 1;
        }
        close(fd);
    }
    if (!w.failed)
        mh_warnf("cannot write capture '%s': the program closed or reused "
                 "its descriptor (%d) and the file cannot be reopened; "
                 "recording stopped, the capture ends here",
                 mh_writer_path(), w.fd);
    w.fd = -1;
    w.failed = 1;
    __atomic_store_n(&mh_tracker.active, 0, __ATOMIC_RELAXED);
    return 0;
}

static int
write_all(const uint8_t *p, size_t n)
{
    if (!fd_still_ours())
        return -1;
    uint64_t total = n;
    while (n > 0) {
        ssize_t k = write(w.fd, p, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            write_failed(errno);
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    w.good_off += total;
    return 0;
}

/* The samples in w.chunk are lost: count them. */
static void
drop_chunk(void)
{
    uint64_t unstacked, allocs;
    mh_cap_records_unstack(w.chunk.data, w.chunk.len, UINT64_MAX, &unstacked,
                           &allocs);
    __atomic_fetch_add(&mh_tracker.dropped, allocs, __ATOMIC_RELAXED);
    mh_buf_reset(&w.chunk);
}

/* Seals w.chunk as one chunk and writes it. Once the disk was full, only
 * flush_full() writes (a chunk of the normal path could name the stacks
 * of a chunk that was cut off). */
static void
write_chunk_as(int full_path)
{
    if (w.chunk.len == 0 || w.failed || w.fd < 0)
        return;
    if (w.disk_full && !full_path) {
        drop_chunk();
        return;
    }
    mh_buf_reset(&w.out);
    int rc = mh_cap_chunk_seal(&w.out, w.chunk.data, w.chunk.len,
                               w.chunk.len > 4096 ? ZSTD_LEVEL : 0,
                               &w.zscratch);
    if (rc) {
        mh_buf_reset(&w.chunk);
        __atomic_fetch_add(&mh_tracker.dropped, 1, __ATOMIC_RELAXED);
        return;
    }
    if (write_all(w.out.data, w.out.len))
        drop_chunk();
    mh_buf_reset(&w.chunk);
}

static void
write_chunk(void)
{
    write_chunk_as(0);
}

/* ---- resolving stacks (GIL held) ---- */

static uint32_t
string_id(PyObject *s)
{
    uint64_t id;
    if (mh_addrmap_get(&w.strs, (uintptr_t)s, &id))
        return (uint32_t)id;
    Py_ssize_t n = 0;
    const char *u = NULL;
    if (s && PyUnicode_Check(s))
        u = PyUnicode_AsUTF8AndSize(s, &n);
    if (!u) {
        PyErr_Clear();
        u = "?";
        n = 1;
    }
    uint32_t sid = ++w.next_string;
    if (mh_cap_put_string(&w.chunk, sid, u, mh_cap_str_fit(u, (size_t)n)) ||
        mh_addrmap_put(&w.strs, (uintptr_t)s, sid))
        return 0;
    return sid;
}

static uint32_t
code_id(PyCodeObject *code)
{
    uint64_t id;
    if (mh_addrmap_get(&w.codes, (uintptr_t)code, &id))
        return (uint32_t)id;
#if PY_VERSION_HEX >= 0x030B0000
    PyObject *name = code->co_qualname;
#else
    PyObject *name = code->co_name;
#endif
    uint32_t file = string_id(code->co_filename);
    uint32_t fn = string_id(name);
    if (!file || !fn)
        return 0;
    uint32_t cid = ++w.next_code;
    if (mh_cap_put_code(&w.chunk, cid, file, fn,
                        (uint32_t)code->co_firstlineno) ||
        mh_addrmap_put(&w.codes, (uintptr_t)code, cid))
        return 0;
    return cid;
}

static uint32_t
frame_id(const struct mh_rawframe *f)
{
    uint32_t cid = code_id(f->code);
    if (!cid)
        return 0;
    uint64_t key = ((uint64_t)cid << 32) | f->offset, id;
    if (mh_addrmap_get(&w.frames, key, &id))
        return (uint32_t)id;
    int line = mh_frames_line(f->code, f->offset);
    uint32_t fid = ++w.next_frame;
    if (mh_cap_put_frame(&w.chunk, fid, cid, line > 0 ? (uint32_t)line : 0,
                         f->offset) ||
        mh_addrmap_put(&w.frames, key, fid))
        return 0;
    return fid;
}

/* Emits definitions for stacks (emitted_stacks, upto]. Returns the last
 * stack emitted. */
static uint32_t
resolve_stacks(uint32_t upto)
{
    struct mh_rawframe frames[MH_MAX_DEPTH_LIMIT];
    uint32_t ids[MH_MAX_DEPTH_LIMIT];
    uint32_t id = w.emitted_stacks;
    while (id < upto) {
        uint32_t depth = mh_stacks_get(&mh_tracker.stacks, id + 1, frames,
                                       MH_MAX_DEPTH_LIMIT);
        uint32_t i;
        for (i = 0; i < depth; i++)
            if (!(ids[i] = frame_id(&frames[i])))
                break;
        if (i < depth || mh_cap_put_stack(&w.chunk, id + 1, depth, ids))
            break;
        id++;
        if (w.chunk.len > DEFS_CHUNK_BYTES)
            write_chunk();
    }
    return id;
}

/* After a full disk: the pending records, with stacks the file does not
 * define written as stack 0, behind a DISK_FULL marker the first time
 * they fit; samples whose chunk is lost again count as dropped. */
static void
flush_full(void)
{
    mh_tracker_take_records(&w.spare);
    uint64_t unstacked, allocs;
    w.spare.len = mh_cap_records_unstack(w.spare.data, w.spare.len,
                                         w.file_stacks, &unstacked, &allocs);
    mh_buf_reset(&w.chunk);
    if (!w.full_noted) {
        const char *why = strerror(w.full_err);
        if (mh_cap_put_marker(&w.chunk, mh_writer_now_ns(), MH_MARK_DISK_FULL,
                              why, strlen(why)))
            mh_buf_reset(&w.chunk);
    }
    int noting = w.chunk.len > 0;
    if (w.spare.len && mh_buf_put(&w.chunk, w.spare.data, w.spare.len))
        __atomic_fetch_add(&mh_tracker.dropped, allocs, __ATOMIC_RELAXED);
    mh_buf_reset(&w.spare);
    uint64_t before = w.good_off;
    write_chunk_as(1);
    if (noting && w.good_off > before)
        w.full_noted = 1;
}

static void
flush_locked(void)
{
    if (w.fd < 0)
        return;
    if (w.disk_full) {
        flush_full();
        return;
    }
    uint32_t nstacks = mh_tracker_take_records(&w.spare);
    if (nstacks > w.emitted_stacks) {
        __atomic_store_n(&w.resolving, 1, __ATOMIC_SEQ_CST);
        PyGILState_STATE g = PyGILState_Ensure();
        w.emitted_stacks = resolve_stacks(nstacks);
        PyGILState_Release(g);
        __atomic_store_n(&w.resolving, 0, __ATOMIC_SEQ_CST);
        if (w.emitted_stacks < nstacks) {
            /* Out of memory resolving: the records name stacks the file
             * cannot define, so they cannot be written. */
            __atomic_fetch_add(&mh_tracker.dropped, 1, __ATOMIC_RELAXED);
            mh_buf_reset(&w.spare);
        }
    }
    /* Definitions and records may not fit one chunk together. */
    if (w.chunk.len && w.spare.len > w.chunk.max - w.chunk.len)
        write_chunk();
    if (w.spare.len && mh_buf_put(&w.chunk, w.spare.data, w.spare.len))
        __atomic_fetch_add(&mh_tracker.dropped, 1, __ATOMIC_RELAXED);
    mh_buf_reset(&w.spare);
    write_chunk();
    if (!w.disk_full)
        w.file_stacks = w.emitted_stacks;
}

void
mh_writer_flush(void)
{
    int busy = mh_tracker_set_busy(1);
    pthread_mutex_lock(&w.flush_lock);
    w.flush_owner = pthread_self();
    __atomic_store_n(&w.flush_held, 1, __ATOMIC_SEQ_CST);
    flush_locked();
    __atomic_store_n(&w.flush_held, 0, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(&w.flush_lock);
    mh_tracker_set_busy(busy);
}

void
mh_writer_put_marker(uint64_t t_ns, uint32_t kind, const char *text,
                     size_t n)
{
    mh_tracker_put_marker(t_ns, kind, text, n);
    __atomic_store_n(&w.flush_soon, 1, __ATOMIC_RELEASE);
    void (*wake)(void) = __atomic_load_n(&w.wake, __ATOMIC_ACQUIRE);
    if (wake)
        wake();
}

void
mh_writer_set_wake(void (*wake)(void))
{
    __atomic_store_n(&w.wake, wake, __ATOMIC_RELEASE);
}

int
mh_writer_take_flush_soon(void)
{
    return __atomic_exchange_n(&w.flush_soon, 0, __ATOMIC_ACQ_REL);
}

void
mh_writer_put_timeline(void)
{
    mh_tracker_put_timeline(mh_writer_now_ns(), read_rss());
}

/* ---- the last words: a signal about to end the process ---- */

/* How long a dying process waits for the writer thread to finish a
 * flush it is in the middle of. */
#define LAST_WORDS_WAIT_NS 200000000ull

static void
nap(void)
{
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
}

/* write(2) until done; no allocation, no message. */
static int
write_raw(const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(w.fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int
write_stored_chunk(uint8_t *p, size_t len, uint64_t *unstacked)
{
    uint64_t u, allocs;
    size_t n = mh_cap_records_unstack(p, len, w.file_stacks, &u, &allocs);
    *unstacked += u;
    if (n == 0)
        return 0;
    if (n > MH_CAP_CHUNK_MAX)
        return -1;
    uint8_t h[MH_CAP_CHUNK_HEADER_LEN];
    mh_cap_chunk_header(h, p, n, 0);
    return write_raw(h, sizeof(h)) || write_raw(p, n) ? -1 : 0;
}

/* A fixed-size buffer for the encoders: it never grows, so never
 * allocates (an append that does not fit fails). */
static struct mh_buf
fixed_buf(uint8_t *p, size_t n)
{
    return (struct mh_buf){.data = p, .len = 0, .cap = n, .max = n};
}

int
mh_writer_last_words(int sig)
{
    if (w.fd < 0 || w.failed || getpid() != w.owner)
        return -1;
    /* A program that closed its descriptors may have another file at
     * this number now: never write into it (fstat only: signal-safe). */
    if (!mh_fd_is(w.fd, &w.fd_id))
        return -1;
    /* Not PyGILState_Check(): it answers 1 for every thread once a
     * subinterpreter has existed. */
    int have_gil = mh_frames_current() != NULL;
    int took_over = 0;
    for (uint64_t waited = 0;; waited += 1000000) {
        if (pthread_mutex_trylock(&w.flush_lock) == 0)
            break;
        if (__atomic_load_n(&w.flush_held, __ATOMIC_SEQ_CST) &&
            pthread_equal(w.flush_owner, pthread_self()))
            return -1; /* the signal interrupted our own flush */
        if (have_gil && __atomic_load_n(&w.resolving, __ATOMIC_SEQ_CST)) {
            /* The flush waits for the GIL this thread holds: it cannot
             * move, and its records are in w.spare. */
            took_over = 1;
            break;
        }
        if (waited >= LAST_WORDS_WAIT_NS)
            return -1;
        nap();
    }
    __atomic_store_n(&mh_tracker.active, 0, __ATOMIC_SEQ_CST);
    int have_tracker = 0;
    for (uint64_t waited = 0; waited < LAST_WORDS_WAIT_NS;
         waited += 1000000) {
        if (pthread_mutex_trylock(&mh_tracker.lock) == 0) {
            have_tracker = 1;
            break;
        }
        nap();
    }
    if (!have_tracker) /* held by this thread, in a hook */
        return -1;
    uint64_t unstacked = 0;
    int rc = 0;
    if (took_over)
        rc |= write_stored_chunk(w.spare.data, w.spare.len, &unstacked);
    rc |= write_stored_chunk(mh_tracker.records.data,
                             mh_tracker.records.len, &unstacked);
    uint8_t tail[128];
    struct mh_buf b = fixed_buf(tail, sizeof(tail));
    char text[48];
    int tn = snprintf(text, sizeof(text), "%d", sig);
    if (unstacked)
        tn = snprintf(text, sizeof(text), "%d %llu", sig,
                      (unsigned long long)unstacked);
    uint64_t t = mh_writer_now_ns();
    if (rc == 0 &&
        !mh_cap_put_marker(&b, t, MH_MARK_SIGNAL, text, (size_t)tn) &&
        !mh_cap_put_end(&b, t, mh_tracker.samples, mh_tracker.frees,
                        mh_tracker.dropped))
        rc = write_stored_chunk(b.data, b.len, &unstacked);
    return rc;
}

/* ---- opening and closing ---- */

static void
reset_tables(void)
{
    mh_addrmap_release(&w.codes);
    mh_addrmap_release(&w.frames);
    mh_addrmap_release(&w.strs);
    mh_addrmap_init(&w.codes, 1u << 24);
    mh_addrmap_init(&w.frames, 1u << 24);
    mh_addrmap_init(&w.strs, 1u << 24);
    w.next_string = w.next_code = w.next_frame = 0;
    w.emitted_stacks = 0;
    mh_buf_release(&w.spare);
    mh_buf_release(&w.chunk);
    mh_buf_release(&w.out);
    mh_buf_release(&w.zscratch);
    mh_buf_init(&w.spare, MH_RECORDS_MAX);
    mh_buf_init(&w.chunk, MH_CAP_CHUNK_MAX);
    mh_buf_init(&w.out, MH_CAP_CHUNK_MAX + 64);
    mh_buf_init(&w.zscratch, MH_CAP_CHUNK_MAX + 64);
}

static void
free_header_copy(void)
{
    uint32_t n = 2 + w.argc + w.nlib + w.npath;
    if (w.hdr_strs)
        for (uint32_t i = 0; i < n; i++)
            mh_free(w.hdr_strs[i]);
    mh_free(w.hdr_strs);
    w.hdr_strs = NULL;
    w.argc = w.nlib = w.npath = 0;
}

static int
copy_header(const struct mh_writer_header *h)
{
    free_header_copy();
    uint32_t n = 2 + h->argc + h->nlib + h->npath;
    w.hdr_strs = mh_calloc(n, sizeof(char *));
    if (!w.hdr_strs)
        return -1;
    w.run_id = h->run_id;
    w.argc = h->argc;
    w.nlib = h->nlib;
    w.npath = h->npath;
    const char *src[2] = {h->python, h->executable};
    uint32_t k = 0;
    for (uint32_t i = 0; i < 2; i++, k++)
        w.hdr_strs[k] = mh_strndup(src[i], strlen(src[i]));
    for (uint32_t i = 0; i < h->argc; i++, k++)
        w.hdr_strs[k] = mh_strndup(h->argv[i], strlen(h->argv[i]));
    for (uint32_t i = 0; i < h->nlib; i++, k++)
        w.hdr_strs[k] = mh_strndup(h->lib_prefixes[i],
                                   strlen(h->lib_prefixes[i]));
    for (uint32_t i = 0; i < h->npath; i++, k++)
        w.hdr_strs[k] = mh_strndup(h->sys_path[i], strlen(h->sys_path[i]));
    for (uint32_t i = 0; i < n; i++)
        if (!w.hdr_strs[i])
            return -1;
    return 0;
}

static struct mh_str
hstr(const char *s)
{
    return (struct mh_str){s, mh_cap_str_fit(s, strlen(s))};
}

/* Opens the file and writes magic + HEADER; w.hdr_strs must be set. */
static int
open_capture(const char *path, uint64_t fork_parent)
{
    int fd = mh_fd_move_high(
        mh_file_create_private(path, mh_writer_create_flags()));
    if (fd < 0)
        return -1;
    if (mh_fd_id_get(fd, &w.fd_id)) {
        int err = errno;
        close(fd);
        errno = err;
        return -1;
    }
    w.owner = getpid();
    mh_free(w.path);
    w.path = mh_strndup(path, strlen(path));
    w.fd = fd;
    w.failed = 0;
    w.good_off = 0;
    w.file_stacks = 0;
    w.disk_full = w.full_noted = 0;
    w.start_mono_ns = mh_clock_ns(CLOCK_MONOTONIC);
    reset_tables();

    uint32_t nstr = w.argc + w.nlib + w.npath;
    struct mh_str *strs = mh_calloc(nstr ? nstr : 1, sizeof(*strs));
    if (!strs || !w.path) {
        mh_free(strs);
        errno = ENOMEM;
        goto fail;
    }
    for (uint32_t i = 0; i < nstr; i++)
        strs[i] = hstr(w.hdr_strs[2 + i]);
    struct mh_cap_header h = {
        .pid = (uint64_t)getpid(),
        .ppid = (uint64_t)getppid(),
        .start_ns = mh_clock_ns(CLOCK_REALTIME),
        .mode = (uint32_t)w.mode,
        .interval = w.interval,
        .max_depth = w.max_depth,
        .fork_parent = fork_parent,
        .python = hstr(w.hdr_strs[0]),
        .executable = hstr(w.hdr_strs[1]),
        .argc = w.argc,
        .argv = strs,
        .nlib = w.nlib,
        .lib_prefixes = strs + w.argc,
        .npath = w.npath,
        .sys_path = strs + w.argc + w.nlib,
        .run_id = w.run_id,
    };
    struct mh_buf fh;
    mh_buf_init(&fh, 64);
    int rc = mh_cap_put_file_header(&fh);
    if (rc == MH_OK)
        rc = mh_cap_put_header(&w.chunk, &h);
    mh_free(strs);
    if (rc) {
        mh_buf_release(&fh);
        errno = rc == MH_ENOMEM ? ENOMEM : EINVAL;
        goto fail;
    }
    rc = write_all(fh.data, fh.len);
    mh_buf_release(&fh);
    if (rc)
        goto fail;
    write_chunk();
    if (w.failed || w.disk_full) {
        errno = w.disk_full ? w.full_err : EIO;
        goto fail;
    }
    return 0;
fail: {
    int err = errno;
    if (w.fd >= 0)
        close(w.fd);
    w.fd = -1;
    errno = err;
    return -1;
}
}

int
mh_writer_open(const char *path, const struct mh_writer_header *h, int mode,
               uint64_t interval, uint32_t max_depth)
{
    w.mode = mode;
    w.interval = mode == MH_MODE_SAMPLE ? interval : 0;
    const char *registry = getenv("MEMHOUND_REGISTRY");
    mh_free(w.registry);
    w.registry = registry && *registry
                     ? mh_strndup(registry, strlen(registry))
                     : NULL;
    w.max_depth = max_depth;
    if (copy_header(h)) {
        free_header_copy();
        errno = ENOMEM;
        return -1;
    }
    return open_capture(path, h->fork_parent);
}

void
mh_writer_close(void)
{
    if (w.fd < 0)
        return;
    /* A last timeline point, so even a short run has one. */
    mh_writer_put_timeline();
    mh_tracker_put_end(mh_writer_now_ns());
    mh_writer_flush();
    if (w.fd >= 0 && mh_fd_is(w.fd, &w.fd_id) && close(w.fd) && !w.failed)
        mh_warnf("cannot close capture '%s': %s", mh_writer_path(),
                 strerror(errno));
    w.fd = -1;
}

int
mh_writer_continue_in_child(const char *path, uint64_t parent_pid)
{
    /* The parent's threads are gone in the child: the lock is in an
     * unknown state. */
    pthread_mutex_init(&w.flush_lock, NULL);
    if (w.fd >= 0 && mh_fd_is(w.fd, &w.fd_id))
        close(w.fd);
    w.fd = -1;
    __atomic_store_n(&mh_tracker.child_pending, 0, __ATOMIC_RELAXED);
    if (open_capture(path, parent_pid))
        return -1;
    char text[32];
    int n = snprintf(text, sizeof(text), "%llu",
                     (unsigned long long)parent_pid);
    mh_writer_put_marker(0, MH_MARK_FORK_CHILD, text, (size_t)n);
    return 0;
}

int
mh_writer_forget_in_child(int thread_was_running)
{
    pthread_mutex_init(&w.flush_lock, NULL);
    if (thread_was_running) {
        /* A fork Python was not told about: the writer thread did not
         * stop first and may have been anywhere in its buffers and
         * tables. The child leaves the parent's copies alone
         * (copy-on-write pages it never touches) and starts afresh. */
        struct mh_buf *bufs[] = {&w.spare, &w.chunk, &w.out, &w.zscratch};
        for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
            memset(bufs[i], 0, sizeof(*bufs[i]));
        mh_addrmap_init(&w.codes, 0);
        mh_addrmap_init(&w.frames, 0);
        mh_addrmap_init(&w.strs, 0);
    }
    if (w.fd < 0)
        return 0;
    if (mh_fd_is(w.fd, &w.fd_id))
        close(w.fd);
    w.fd = -1;
    __atomic_store_n(&mh_tracker.child_pending, 1, __ATOMIC_RELAXED);
    return 1;
}
