/* Heap dumps: fork, walk every live object in the child, write the dump
 * (docs/heap-format.md), _exit.
 *
 * The parent pauses only for fork() (the pause is measured and written in
 * the dump). The child is a frozen copy of the process with one thread,
 * ours, holding the GIL: it reads objects, never writes them, never calls
 * Python code or Python's allocators (its memory is mh_malloc's, which is
 * libc's malloc underneath, safe after fork in glibc) and takes no lock
 * another thread could have held at the fork (the tracker's is reset by
 * its atfork handler).
 *
 * The walk: ROOT records first (interpreter containers, every thread's
 * frames: locals and value stack), then every object of the GC lists, and
 * depth-first from each what it references and was not seen yet, so
 * objects reachable only through untracked containers (str, int, tuples
 * and dicts the GC untracked) are found too. References are those of
 * tp_traverse plus what it omits: dict keys, inline attribute values
 * (3.11+, read from the values array, never by making a __dict__), the
 * fields of code objects and static types. Then ALLOC records join the
 * tracker's live blocks to the objects found; END says the dump is
 * whole. Layouts that differ per CPython version are in heapwalk_py*.c.
 *
 * This file holds the processes: the fork, the child's setup and exit,
 * the parent's table of walker children. The walk is in
 * heapdump_walk.c, the names of references in heapdump_edges.c and
 * heapdump_names.c, the dump's chunks in heapdump_out.c; they share
 * heapdump_impl.h. */
#include "heapdump_impl.h" /* Python.h first, as CPython asks */

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../format/capture_write.h"
#include "../util/fd.h"
#include "../util/file.h"
#include "../util/mem.h"
#include "heapdump.h"
#include "tracker.h"
#include "writer.h"

#define CHILDREN_MAX 16 /* walker children not reaped yet */

static void
walk_release(struct walk *w)
{
    mh_buf_release(&w->chunk);
    mh_buf_release(&w->out);
    mh_buf_release(&w->zscratch);
    mh_free(w->seen.slots);
    mh_free(w->stack);
    mh_free(w->big);
    mh_free(w->roots);
    mh_addrmap_release(&w->types);
    mh_addrmap_release(&w->strcache);
    mh_addrmap_release(&w->closures);
    mh_addrmap_release(&w->locnames);
    mh_free(w->strs.slots);
    mh_buf_release(&w->strs.arena);
    mh_free(w->edges);
    mh_free(w->labels);
}

/* Signals are the parent's business: the child takes the defaults, so a
 * SIGTERM ends it and Python's handlers (which write to the wakeup fd it
 * shares with the parent) never run in it. */
static void
child_signals(void)
{
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP)
            continue;
        struct sigaction sa;
        if (sigaction(sig, NULL, &sa) == 0 && sa.sa_handler != SIG_IGN &&
            sa.sa_handler != SIG_DFL) {
            memset(&sa, 0, sizeof(sa));
            sa.sa_handler = SIG_DFL;
            sigaction(sig, &sa, NULL);
        }
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

static void __attribute__((noreturn)) child_main(const struct child_args *a)
{
    uint64_t pause_ns = mh_clock_ns(CLOCK_MONOTONIC) - a->fork_mono_ns;
    prctl(PR_SET_NAME, MH_HEAP_WALKER_COMM, 0, 0, 0);
    child_signals();
    mh_tracker_set_busy(1);
    struct walk w;
    memset(&w, 0, sizeof(w));
    w.fd = a->fd;
    w.interp = a->interp;
    mh_buf_init(&w.chunk, MH_CAP_CHUNK_MAX);
    mh_buf_init(&w.out, MH_CAP_CHUNK_MAX + 64);
    mh_buf_init(&w.zscratch, MH_CAP_CHUNK_MAX + 64);
    mh_buf_init(&w.strs.arena, (size_t)1 << 31);
    mh_addrmap_init(&w.types, (size_t)1 << 24);
    mh_addrmap_init(&w.strcache, (size_t)1 << 30);
    mh_addrmap_init(&w.closures, (size_t)1 << 30);
    mh_addrmap_init(&w.locnames, (size_t)1 << 24);
    int rc = mh_hd_walk(&w, a, pause_ns);
    if (rc)
        fail(&w, rc);
    if (close(a->fd) && !w.err)
        w.err = MH_EIO;
    walk_release(&w);
    _exit(w.err ? 1 : 0);
}

/* ---- the parent ---- */

/* Walker children not reaped yet; `waited` ones are reaped by the
 * caller of mh_heap_dump(wait=1). */
static struct {
    pid_t pid;
    int waited;
} children[CHILDREN_MAX];
static pthread_mutex_t children_lock = PTHREAD_MUTEX_INITIALIZER;

static void
children_add(pid_t pid, int waited)
{
    pthread_mutex_lock(&children_lock);
    for (int i = 0; i < CHILDREN_MAX; i++)
        if (!children[i].pid) {
            children[i].pid = pid;
            children[i].waited = waited;
            break;
        }
    /* A full table only leaves a zombie until the process ends. */
    pthread_mutex_unlock(&children_lock);
}

static void
children_remove(pid_t pid)
{
    pthread_mutex_lock(&children_lock);
    for (int i = 0; i < CHILDREN_MAX; i++)
        if (children[i].pid == pid)
            children[i].pid = 0;
    pthread_mutex_unlock(&children_lock);
}

int
mh_heap_reap(void)
{
    int n = 0;
    pthread_mutex_lock(&children_lock);
    for (int i = 0; i < CHILDREN_MAX; i++) {
        if (!children[i].pid || children[i].waited)
            continue;
        pid_t r = waitpid(children[i].pid, NULL, WNOHANG);
        if (r == children[i].pid || (r < 0 && errno == ECHILD)) {
            children[i].pid = 0;
            n++;
        }
    }
    pthread_mutex_unlock(&children_lock);
    return n;
}

PyObject *
mh_py_create_error(const char *path, int flags, int err)
{
    char why[PATH_MAX + 256];
    /* Under `memhound run` or `guard`, the user's switch is --force. */
    mh_file_create_error(path, flags, err,
                         getenv("MEMHOUND_OUTPUT") ? "--force" : "force=True",
                         why, sizeof(why));
    PyObject *exc = Py_BuildValue("(is)", err, why);
    if (exc) {
        PyErr_SetObject(PyExc_OSError, exc);
        Py_DECREF(exc);
    }
    return NULL;
}

static int
heap_dump(const char *path, const char *capture, int wait, int flags,
          struct mh_heap_dump_result *res)
{
    memset(res, 0, sizeof(*res));
    int fd = mh_file_create_private(path, flags);
    if (fd < 0) {
        res->create_failed = 1;
        return -1;
    }
    /* Out of the program's way while the walker forks (fd.h). */
    return mh_heap_dump_fd(mh_fd_move_high(fd), capture, wait, res);
}

int
mh_heap_dump_fd(int fd, const char *capture, int wait,
                struct mh_heap_dump_result *res)
{
    memset(res, 0, sizeof(*res));
    mh_heap_reap();
    /* Stacks named by ALLOC records must be in the capture: flush what
     * the tracker holds (the writer takes the GIL to resolve stacks).
     * Stacks interned after this reach the capture with the next
     * flush. */
    if (mh_writer_is_open()) {
        Py_BEGIN_ALLOW_THREADS mh_writer_flush();
        Py_END_ALLOW_THREADS
    }
    struct child_args a = {
        .fd = fd,
        .interp = PyInterpreterState_Get(),
        .parent_pid = (uint64_t)getpid(),
        .capture = capture ? capture : "",
    };
    a.fork_real_ns = mh_clock_ns(CLOCK_REALTIME);
    a.fork_mono_ns = mh_clock_ns(CLOCK_MONOTONIC);
    pid_t pid = fork();
    if (pid == 0)
        child_main(&a);
    res->pause_ns = mh_clock_ns(CLOCK_MONOTONIC) - a.fork_mono_ns;
    int err = errno;
    close(fd);
    if (pid < 0) {
        errno = err;
        return -1;
    }
    res->child = pid;
    children_add(pid, wait);
    if (!wait)
        return 0;
    int status = 0;
    pid_t r;
    Py_BEGIN_ALLOW_THREADS do r = waitpid(pid, &status, 0);
    while (r < 0 && errno == EINTR)
        ;
    Py_END_ALLOW_THREADS children_remove(pid);
    if (r < 0)
        return errno == ECHILD ? 0 : -1; /* SIGCHLD ignored: reaped */
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        errno = EIO;
        return -1;
    }
    return 0;
}

int
mh_heap_dump(const char *path, const char *capture, int wait,
             struct mh_heap_dump_result *res)
{
    return heap_dump(path, capture, wait,
                     mh_writer_is_open() ? mh_writer_create_flags() : 0, res);
}

PyObject *
mh_py_dump_heap(PyObject *module, PyObject *args)
{
    (void)module;
    PyObject *path_obj;
    int wait = 1, force = 0;
    if (!PyArg_ParseTuple(args, "O&|pp", PyUnicode_FSConverter, &path_obj,
                          &wait, &force))
        return NULL;
    struct mh_heap_dump_result r;
    int flags = mh_writer_is_open() ? mh_writer_create_flags() : 0;
    flags |= force ? MH_FILE_FORCE : 0;
    int rc = heap_dump(PyBytes_AS_STRING(path_obj),
                       mh_writer_is_open() ? mh_writer_path() : "", wait,
                       flags, &r);
    if (rc && r.create_failed) {
        int err = errno;
        mh_py_create_error(PyBytes_AS_STRING(path_obj), flags, err);
        Py_DECREF(path_obj);
        return NULL;
    }
    Py_DECREF(path_obj);
    if (rc) {
        if (errno == EIO && r.child)
            return PyErr_Format(PyExc_OSError,
                                "memhound: the heap walker (pid %d) failed "
                                "writing %R",
                                (int)r.child, PyTuple_GET_ITEM(args, 0));
        return PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError,
                                                    PyTuple_GET_ITEM(args, 0));
    }
    return Py_BuildValue("{s:i,s:K}", "pid", (int)r.child, "pause_ns",
                         (unsigned long long)r.pause_ns);
}
