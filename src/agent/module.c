/* The _memhound extension module: the agent's Python interface. Thin:
 * argument checking and the session's start/stop order; the work is in
 * tracker.c, writer.c and bgthread.c. docs/architecture.md lists the
 * calls. */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "../util/file.h"
#include "../util/mem.h"
#include "allocstats.h"
#include "bgthread.h"
#include "control.h"
#include "heapdump.h"
#include "requests.h"
#include "sigflush.h"
#include "tracker.h"
#include "writer.h"

/* Whether a session is recording; changed only with the GIL held. */
static int session_active;
/* The process whose capture the session writes: a forked child's start
 * may be asked for twice (Python's fork hook, and the pending call that
 * can run inside that very hook); the second finds it done. */
static pid_t recording_pid;

/* Converts a list of str into a C array of UTF-8 pointers that borrow
 * from the list's items (valid while the list lives). The caller frees
 * the array with PyMem_Free. */
static int
str_list(PyObject *list, const char ***out, uint32_t *n, const char *what)
{
    *out = NULL;
    *n = 0;
    if (!list || list == Py_None)
        return 0;
    if (!PyList_Check(list)) {
        PyErr_Format(PyExc_TypeError, "%s must be a list of str", what);
        return -1;
    }
    Py_ssize_t len = PyList_GET_SIZE(list);
    const char **arr = PyMem_Calloc((size_t)len + 1, sizeof(char *));
    if (!arr) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < len; i++) {
        PyObject *item = PyList_GET_ITEM(list, i);
        if (!PyUnicode_Check(item)) {
            PyErr_Format(PyExc_TypeError, "%s must be a list of str", what);
            PyMem_Free(arr);
            return -1;
        }
        arr[i] = PyUnicode_AsUTF8(item);
        if (!arr[i]) {
            PyMem_Free(arr);
            return -1;
        }
    }
    *out = arr;
    *n = (uint32_t)len;
    return 0;
}

static PyObject *
mh_before_fork(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    if (session_active) {
        Py_BEGIN_ALLOW_THREADS
        mh_bgthread_pause();
        Py_END_ALLOW_THREADS
    }
    Py_RETURN_NONE;
}

static PyObject *
mh_after_fork_parent(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    int rc = 0;
    if (session_active) {
        Py_BEGIN_ALLOW_THREADS
        rc = mh_bgthread_resume();
        Py_END_ALLOW_THREADS
    }
    if (rc)
        mh_warnf("cannot restart the writer thread after fork: %s",
                 strerror(errno));
    Py_RETURN_NONE;
}

/* A forked child that Python's fork hooks did not reach (uWSGI's
 * workers, a C library's fork()): starts its capture the way the hook
 * would, through memhound._after_fork_child(). A pending call, so the
 * program's code is between two bytecodes; whatever fails is a warning,
 * never an exception in the program. */
static int
start_in_child(void *arg)
{
    (void)arg;
    if (!session_active ||
        __atomic_load_n(&mh_tracker.child_pending, __ATOMIC_RELAXED) != 2)
        return 0;
    PyObject *mod = PyImport_ImportModule("memhound");
    PyObject *r = mod ? PyObject_CallMethod(mod, "_after_fork_child", NULL)
                      : NULL;
    if (!r) {
        PyErr_Clear();
        mh_warnf("cannot record forked process %d", (int)getpid());
    }
    Py_XDECREF(r);
    Py_XDECREF(mod);
    if (__atomic_load_n(&mh_tracker.child_pending, __ATOMIC_RELAXED)) {
        /* memhound._after_fork_child() did not start a capture (it said
         * why): this process stays unrecorded. */
        __atomic_store_n(&mh_tracker.child_pending, 0, __ATOMIC_RELAXED);
        session_active = 0;
        mh_tracker_stop();
    }
    return 0;
}

static PyObject *
mh_in_main_interpreter(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    return PyBool_FromLong(PyInterpreterState_Get() ==
                           PyInterpreterState_Main());
}

/* Stops the session at exit, before the interpreter finalises (the
 * writer thread takes the GIL), and pauses the writer around os.fork(). */
static int
register_hooks(PyObject *module)
{
    static int done;
    if (done)
        return 0;
    PyObject *r = NULL, *atexit = NULL, *os = NULL, *kw = NULL;
    PyObject *stop = PyObject_GetAttrString(module, "stop");
    PyObject *before = PyObject_GetAttrString(module, "_before_fork");
    PyObject *parent = PyObject_GetAttrString(module, "_after_fork_parent");
    if (!stop || !before || !parent)
        goto fail;
    if (!(atexit = PyImport_ImportModule("atexit")) ||
        !(r = PyObject_CallMethod(atexit, "register", "O", stop)))
        goto fail;
    Py_CLEAR(r);
    if (!(os = PyImport_ImportModule("os")))
        goto fail;
    if (PyObject_HasAttrString(os, "register_at_fork")) {
        PyObject *reg = PyObject_GetAttrString(os, "register_at_fork");
        PyObject *noargs = PyTuple_New(0);
        kw = Py_BuildValue("{s:O,s:O}", "before", before, "after_in_parent",
                           parent);
        r = reg && noargs && kw ? PyObject_Call(reg, noargs, kw) : NULL;
        Py_XDECREF(reg);
        Py_XDECREF(noargs);
        if (!r)
            goto fail;
        Py_CLEAR(r);
    }
    done = 1;
fail:
    Py_XDECREF(kw);
    Py_XDECREF(os);
    Py_XDECREF(atexit);
    Py_XDECREF(stop);
    Py_XDECREF(before);
    Py_XDECREF(parent);
    return done ? 0 : -1;
}

/* _memhound.start(). Long on purpose: the session's start order (file,
 * control socket, hooks, thread, signal handlers), each failure undoing
 * the steps before it, reads best in one place. */
static PyObject *
mh_start(PyObject *module, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"path",         "mode",     "interval",
                             "max_depth",    "argv",     "lib_prefixes",
                             "sys_path",     "fork_parent", "heap_every",
                             "force",        "run_id",   NULL};
    PyObject *path_obj, *argv = NULL, *libs = NULL, *paths = NULL;
    int mode = MH_MODE_SAMPLE;
    unsigned long long interval = MH_DEFAULT_INTERVAL;
    unsigned int max_depth = MH_DEFAULT_MAX_DEPTH;
    unsigned long long fork_parent = 0;
    double heap_every = 0;
    int force = 0;
    unsigned long long run_id = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|iKIOOOKdpK", kwlist,
                                     PyUnicode_FSConverter, &path_obj,
                                     &mode, &interval, &max_depth, &argv,
                                     &libs, &paths, &fork_parent,
                                     &heap_every, &force, &run_id))
        return NULL;
    PyObject *result = NULL;
    const char **av = NULL, **lv = NULL, **pv = NULL;
    uint32_t ac, lc, pc;
    if (session_active) {
        PyErr_Format(PyExc_RuntimeError,
                     "memhound is already recording to '%s'",
                     mh_writer_path());
        goto done;
    }
    if (mode != MH_MODE_SAMPLE && mode != MH_MODE_TRACE &&
        mode != MH_MODE_FORWARD) {
        PyErr_SetString(PyExc_ValueError, "mode must be 0 (sample), 1 "
                                          "(trace) or 2 (forward only)");
        goto done;
    }
    if (mode == MH_MODE_SAMPLE && interval == 0) {
        PyErr_SetString(PyExc_ValueError, "interval must be positive");
        goto done;
    }
    if (max_depth < 1 || max_depth > MH_MAX_DEPTH_LIMIT) {
        PyErr_Format(PyExc_ValueError, "max_depth must be 1..%d",
                     MH_MAX_DEPTH_LIMIT);
        goto done;
    }
    /* Below the writer's tick a period means nothing; a year is "never"
     * for any service and keeps the nanoseconds far from overflow. */
    if (!(heap_every == 0 || (heap_every >= 0.1 && heap_every <= 3.2e7))) {
        PyErr_SetString(PyExc_ValueError, "heap_every must be 0 (off) or "
                                          "0.1 to 3.2e7 seconds");
        goto done;
    }
    if (str_list(argv, &av, &ac, "argv") ||
        str_list(libs, &lv, &lc, "lib_prefixes") ||
        str_list(paths, &pv, &pc, "sys_path"))
        goto done;
    if (mh_tracker_init()) {
        PyErr_SetString(PyExc_RuntimeError,
                        "memhound: cannot set up the tracker");
        goto done;
    }
    PyObject *exe = PySys_GetObject("executable"); /* borrowed */
    const char *exe_s = exe && PyUnicode_Check(exe) ? PyUnicode_AsUTF8(exe)
                                                    : NULL;
    if (!exe_s) {
        PyErr_Clear();
        exe_s = "";
    }
    struct mh_writer_header h = {
        .python = Py_GetVersion(),
        .executable = exe_s,
        .argc = ac,
        .argv = av,
        .nlib = lc,
        .lib_prefixes = lv,
        .npath = pc,
        .sys_path = pv,
        .fork_parent = fork_parent,
        .run_id = run_id,
    };
    const char *path = PyBytes_AS_STRING(path_obj);
    mh_writer_set_create_flags(force ? MH_FILE_FORCE : 0);
    if (mh_bgthread_prepare() ||
        mh_writer_open(path, &h,
                       mode == MH_MODE_TRACE ? MH_MODE_TRACE : MH_MODE_SAMPLE,
                       interval, max_depth)) {
        mh_py_create_error(path, mh_writer_create_flags(), errno);
        goto done;
    }
    mh_bgthread_open_control();
    mh_control_set_heap_every((uint64_t)(heap_every * 1e9),
                              mh_writer_now_ns());
    if (mh_tracker_start(mode, interval, max_depth)) {
        Py_BEGIN_ALLOW_THREADS
        mh_bgthread_end();
        Py_END_ALLOW_THREADS
        PyErr_SetString(PyExc_RuntimeError,
                        "cannot change mode: another allocator hook was "
                        "installed after memhound's");
        goto done;
    }
    if (mh_bgthread_start()) {
        mh_tracker_stop();
        Py_BEGIN_ALLOW_THREADS
        mh_bgthread_end();
        Py_END_ALLOW_THREADS
        PyErr_SetFromErrno(PyExc_OSError);
        goto done;
    }
    session_active = 1;
    recording_pid = getpid();
    mh_sigflush_arm_all();
    mh_tracker.child_start = start_in_child;
    if (register_hooks(module))
        goto done;
    result = Py_None;
    Py_INCREF(result);
done:
    PyMem_Free(av);
    PyMem_Free(lv);
    PyMem_Free(pv);
    Py_DECREF(path_obj);
    return result;
}

static PyObject *
mh_stop(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    if (!session_active)
        Py_RETURN_NONE;
    session_active = 0;
    mh_tracker_stop();
    Py_BEGIN_ALLOW_THREADS
    mh_bgthread_end();
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *
mh_flush(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    if (!session_active)
        Py_RETURN_NONE;
    Py_BEGIN_ALLOW_THREADS
    mh_writer_flush();
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *
mh_stats(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    struct mh_tracker_stats st;
    mh_tracker_stats(&st);
    return Py_BuildValue(
        "{s:O,s:s,s:K,s:s,s:i,s:K,s:K,s:K,s:d,s:K,s:K,s:K,s:s,s:K}", "active",
        session_active ? Py_True : Py_False, "mode",
        mh_tracker.mode == MH_MODE_TRACE     ? "trace"
        : mh_tracker.mode == MH_MODE_FORWARD ? "forward"
                                             : "sample",
        "interval",
        (unsigned long long)mh_tracker.interval, "path", mh_writer_path(),
        "pid", (int)getpid(), "samples", (unsigned long long)st.samples,
        "frees", (unsigned long long)st.frees, "dropped",
        (unsigned long long)st.dropped, "live_bytes", st.live_bytes,
        "stacks", (unsigned long long)st.stacks, "tracker_bytes",
        (unsigned long long)st.tracker_bytes, "tracker_peak_bytes",
        (unsigned long long)st.tracker_peak_bytes, "control",
        mh_control_path(), "requests", (unsigned long long)st.requests);
}

static PyObject *
mh_mark(PyObject *module, PyObject *args, PyObject *kw)
{
    (void)module;
    static char *kwlist[] = {"text", "kind", NULL};
    const char *text;
    Py_ssize_t n;
    unsigned int kind = MH_MARK_USER;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s#|I", kwlist, &text, &n,
                                     &kind))
        return NULL;
    if (!session_active)
        Py_RETURN_NONE;
    mh_writer_put_marker(mh_writer_now_ns(), kind, text, (size_t)n);
    if (kind != MH_MARK_USER) {
        /* A heap dump's marker is on disk when dump_heap() returns: the
         * program may be stopped right after. */
        Py_BEGIN_ALLOW_THREADS
        mh_writer_flush();
        Py_END_ALLOW_THREADS
    }
    Py_RETURN_NONE;
}

/* os.exec*() is about to replace the process: the writer thread stops
 * (no timeline may follow the marker) and the capture gets a last
 * timeline point and an EXEC marker, written now. If the exec fails,
 * _after_exec_failed() starts the thread again and recording goes on. */
static PyObject *
mh_before_exec(PyObject *module, PyObject *args)
{
    (void)module;
    PyObject *path_obj;
    if (!PyArg_ParseTuple(args, "O&", PyUnicode_FSConverter, &path_obj))
        return NULL;
    if (session_active) {
        const char *p = PyBytes_AS_STRING(path_obj);
        size_t n = (size_t)PyBytes_GET_SIZE(path_obj);
        Py_BEGIN_ALLOW_THREADS
        mh_bgthread_pause();
        uint64_t t = mh_writer_now_ns();
        mh_tracker_put_timeline(t, mh_allocstats_rss());
        mh_tracker_put_marker(t, MH_MARK_EXEC, p, n < 4096 ? n : 4096);
        mh_writer_flush();
        Py_END_ALLOW_THREADS
    }
    Py_DECREF(path_obj);
    Py_RETURN_NONE;
}

static PyObject *
mh_after_exec_failed(PyObject *module, PyObject *unused)
{
    return mh_after_fork_parent(module, unused);
}

/* The program set SIGTERM/SIGINT/SIGHUP back to SIG_DFL: our handler
 * goes back in front of the default action (sigflush.h). */
static PyObject *
mh_arm_signal(PyObject *module, PyObject *arg)
{
    (void)module;
    int sig = PyLong_AsLong(arg) > 0 ? (int)PyLong_AsLong(arg) : 0;
    if (PyErr_Occurred())
        return NULL;
    if (session_active && sig)
        mh_sigflush_arm(sig);
    Py_RETURN_NONE;
}

/* The next default heap dump path next to the capture, or None when not
 * recording. */
static PyObject *
mh_next_dump_path(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    char path[PATH_MAX];
    if (!session_active || mh_control_next_dump_path(path, sizeof(path)))
        Py_RETURN_NONE;
    return PyUnicode_DecodeFSDefault(path);
}

static PyObject *
mh_after_fork_child(PyObject *module, PyObject *args)
{
    (void)module;
    PyObject *path_obj;
    unsigned long long parent;
    if (!PyArg_ParseTuple(args, "O&K", PyUnicode_FSConverter, &path_obj,
                          &parent))
        return NULL;
    if (session_active && recording_pid == getpid()) {
        Py_DECREF(path_obj);
        Py_RETURN_FALSE;
    }
    int rc = 0;
    if (session_active)
        rc = mh_bgthread_continue_in_child(PyBytes_AS_STRING(path_obj),
                                         parent);
    if (rc) {
        int err = errno;
        session_active = 0;
        mh_tracker_stop();
        mh_py_create_error(PyBytes_AS_STRING(path_obj),
                           mh_writer_create_flags(), err);
        Py_DECREF(path_obj);
        return NULL;
    }
    Py_DECREF(path_obj);
    if (!session_active)
        Py_RETURN_NONE;
    recording_pid = getpid();
    Py_RETURN_TRUE;
}

static PyMethodDef methods[] = {
    {"start", (PyCFunction)(void (*)(void))mh_start,
     METH_VARARGS | METH_KEYWORDS,
     "start(path, mode=0, interval=DEFAULT_INTERVAL, max_depth=128, "
     "argv=None, lib_prefixes=None, sys_path=None, fork_parent=0, "
     "heap_every=0, force=False, run_id=0)\n"
     "Start recording into a new capture at path (created safely; force "
     "replaces a regular file of this user)."},
    {"stop", mh_stop, METH_NOARGS,
     "Stop recording, flush and close the capture."},
    {"flush", mh_flush, METH_NOARGS, "Write what is buffered now."},
    {"stats", mh_stats, METH_NOARGS, "The tracker's counters, as a dict."},
    {"mark", (PyCFunction)(void (*)(void))mh_mark,
     METH_VARARGS | METH_KEYWORDS, "mark(text, kind=0): add a marker."},
    {"after_fork_child", mh_after_fork_child, METH_VARARGS,
     "after_fork_child(path, parent_pid): in a forked child, continue "
     "into a new capture at path. False when this process's capture "
     "has started already."},
    {"next_dump_path", mh_next_dump_path, METH_NOARGS,
     "The next default heap dump path next to the capture "
     "(<stem>.heap<N>.mhh), or None when not recording."},
    {"dump_heap", mh_py_dump_heap, METH_VARARGS,
     "dump_heap(path, wait=True): fork a walker that writes a heap dump "
     "of this process to path; returns {'pid', 'pause_ns'}."},
    {"count_requests", mh_py_count_requests, METH_NOARGS,
     "count_requests(): say this process counts requests (the web layer "
     "is installed), for `stats` (guard's --max-requests)."},
    {"request_begin", mh_py_request_begin, METH_NOARGS,
     "request_begin() -> Request | None\n"
     "Begin a request in this thread or asyncio task: allocations are "
     "tagged with it until request_end(). None when not recording or "
     "when a request is current already (the outer layer owns it)."},
    {"request_current", mh_py_request_current, METH_NOARGS,
     "request_current() -> Request | None\n"
     "The current request of this thread or task, None if none or ended."},
    {"request_end", mh_py_request_end, METH_O,
     "request_end(req): end the request and record it (idempotent; "
     "None is ignored)."},
    {"finding", (PyCFunction)(void (*)(void))mh_py_finding,
     METH_VARARGS | METH_KEYWORDS,
     "finding(id, file, line, function='', count=0, bytes=0, detail='', "
     "request=None)\n"
     "Record a finding, tagged with `request` (a Request) or else the "
     "current one; nothing when not recording."},
    {"thread_allocated", mh_py_thread_allocated, METH_NOARGS,
     "thread_allocated() -> int | None\n"
     "Bytes this thread has allocated while recording (exact, "
     "allocations only); None when not recording."},
    {"_in_main_interpreter", mh_in_main_interpreter, METH_NOARGS, NULL},
    {"_before_fork", mh_before_fork, METH_NOARGS, NULL},
    {"_before_exec", mh_before_exec, METH_VARARGS, NULL},
    {"_arm_signal", mh_arm_signal, METH_O, NULL},
    {"_after_exec_failed", mh_after_exec_failed, METH_NOARGS, NULL},
    {"_after_fork_parent", mh_after_fork_parent, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_memhound",
    "memhound's agent: allocation sampling into a capture file.", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__memhound(void);

__attribute__((visibility("default"))) PyMODINIT_FUNC
PyInit__memhound(void)
{
    PyObject *m = PyModule_Create(&moduledef);
    if (!m)
        return NULL;
    if (PyModule_AddIntConstant(m, "DEFAULT_INTERVAL", MH_DEFAULT_INTERVAL) ||
        PyModule_AddIntConstant(m, "DEFAULT_MAX_DEPTH",
                                MH_DEFAULT_MAX_DEPTH) ||
        PyModule_AddIntConstant(m, "MAX_DEPTH_LIMIT", MH_MAX_DEPTH_LIMIT) ||
        PyModule_AddIntConstant(m, "MODE_SAMPLE", MH_MODE_SAMPLE) ||
        PyModule_AddIntConstant(m, "MODE_TRACE", MH_MODE_TRACE) ||
        PyModule_AddIntConstant(m, "MODE_FORWARD", MH_MODE_FORWARD) ||
        mh_requests_init(m)) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
