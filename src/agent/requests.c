/* Requests and findings (requests.h).
 *
 * A Request is begun by the outermost web layer, which also ends it;
 * inner layers (a framework's own middleware, a view) only name it, via
 * request_current().endpoint. Ending is idempotent and may happen in
 * another thread or task than the beginning: the ContextVar cannot be
 * reset from there, so `ended` makes the stale value harmless (the
 * tracker reads a request that has ended as "none").
 *
 * Everything here runs with the GIL held; that is what orders a
 * request's tagged ALLOCs before its REQUEST record. */
#include <time.h>

#include "../format/capture_write.h"
#include "requests.h"
#include "tracker.h"
#include "writer.h"

struct mh_request {
    PyObject_HEAD
    uint64_t id;          /* positive, unique in the process */
    uint64_t t_begin_ns;  /* CLOCK_MONOTONIC: a capture started since
                             (fork, restart) has a clock of its own */
    PyObject *endpoint;   /* str or None */
    PyObject *token;      /* from setting the ContextVar; NULL once ended */
    int ended;
};

/* Protected by the GIL. */
static PyObject *request_var; /* the ContextVar; never freed */
/* Set while this thread changes request_var: CPython's var cache holds a
 * borrowed pointer, and PyContextVar_Reset clears it before building the
 * new HAMT; a read from the allocator hook in between would cache the
 * outgoing value, which is then freed (a dangling cache). */
static _Thread_local int changing_var;
static uint64_t last_id;      /* continues across restarts and fork */

static PyTypeObject request_type;

static uint64_t
mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int
recording(void)
{
    return __atomic_load_n(&mh_tracker.active, __ATOMIC_RELAXED);
}

/* ---- reading the ContextVar from the allocator hook ----
 *
 * PyContextVar_Get does not allocate (3.9-3.13): the var's cache, else a
 * lookup in the context's HAMT by the var's precomputed hash. It can
 * fail in one way only: when another var shares a HAMT slot, keys are
 * compared with PyObject_RichCompareBool, whose recursion check may
 * raise RecursionError near the limit. So the error indicator is saved
 * around the read, and restored as it was: the allocation we sit in may
 * be made while an exception is being raised. The API differs from 3.12
 * (one exception object; PyErr_Fetch is deprecated there). */
#if PY_VERSION_HEX >= 0x030C0000
struct saved_error {
    PyObject *exc;
};

static inline void
error_save(struct saved_error *e)
{
    e->exc = PyErr_GetRaisedException();
}

static inline void
error_restore(struct saved_error *e)
{
    PyErr_SetRaisedException(e->exc);
}
#else
struct saved_error {
    PyObject *type, *value, *tb;
};

static inline void
error_save(struct saved_error *e)
{
    PyErr_Fetch(&e->type, &e->value, &e->tb);
}

static inline void
error_restore(struct saved_error *e)
{
    PyErr_Restore(e->type, e->value, e->tb);
}
#endif

/* The current Request (a new reference), or NULL when none: not set,
 * set to something else, or the read failed. Clears its own error. */
static struct mh_request *
current(void)
{
    PyObject *v = NULL;
    if (!request_var)
        return NULL;
    if (PyContextVar_Get(request_var, NULL, &v) < 0) {
        PyErr_Clear();
        return NULL;
    }
    if (v && Py_TYPE(v) != &request_type) {
        Py_DECREF(v);
        return NULL;
    }
    return (struct mh_request *)v;
}

uint64_t
mh_requests_current_id(void)
{
    if (changing_var)
        return 0;
    struct saved_error e;
    error_save(&e);
    struct mh_request *r = current();
    uint64_t id = 0;
    if (r) {
        id = r->ended ? 0 : r->id;
        /* Never the last reference: the context holds the value. */
        Py_DECREF(r);
    }
    error_restore(&e);
    return id;
}

/* ---- strings ---- */

/* The UTF-8 of str `s`, cut to the format's string limit on a character
 * boundary. A str that has no UTF-8 form (lone surrogates) is encoded
 * with backslash escapes. *keep receives a reference the bytes live in;
 * the caller drops it with Py_XDECREF. Returns 0, or -1 with an
 * exception set. */
static int
utf8_of(PyObject *s, struct mh_str *out, PyObject **keep)
{
    Py_ssize_t n;
    const char *u = PyUnicode_AsUTF8AndSize(s, &n);
    *keep = NULL;
    if (!u) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError))
            return -1;
        PyErr_Clear();
        *keep = PyUnicode_AsEncodedString(s, "utf-8", "backslashreplace");
        if (!*keep)
            return -1;
        u = PyBytes_AS_STRING(*keep);
        n = PyBytes_GET_SIZE(*keep);
    }
    out->s = u;
    out->n = mh_cap_str_fit(u, (size_t)n);
    return 0;
}

/* ---- the Request type ---- */

static int
request_traverse(PyObject *self, visitproc visit, void *arg)
{
    struct mh_request *r = (struct mh_request *)self;
    Py_VISIT(r->endpoint);
    Py_VISIT(r->token);
    return 0;
}

/* The token refers to the context, whose vars hold the request: a cycle
 * when a request is never ended. */
static int
request_clear(PyObject *self)
{
    struct mh_request *r = (struct mh_request *)self;
    Py_CLEAR(r->endpoint);
    Py_CLEAR(r->token);
    return 0;
}

static void
request_dealloc(PyObject *self)
{
    PyObject_GC_UnTrack(self);
    request_clear(self);
    PyObject_GC_Del(self);
}

static PyObject *
request_repr(PyObject *self)
{
    struct mh_request *r = (struct mh_request *)self;
    return PyUnicode_FromFormat("<_memhound.Request id=%llu endpoint=%R%s>",
                                (unsigned long long)r->id,
                                r->endpoint ? r->endpoint : Py_None,
                                r->ended ? " ended" : "");
}

static PyObject *
request_get_id(PyObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLongLong(((struct mh_request *)self)->id);
}

static PyObject *
request_get_ended(PyObject *self, void *closure)
{
    (void)closure;
    return PyBool_FromLong(((struct mh_request *)self)->ended);
}

static PyObject *
request_get_endpoint(PyObject *self, void *closure)
{
    (void)closure;
    PyObject *e = ((struct mh_request *)self)->endpoint;
    e = e ? e : Py_None;
    Py_INCREF(e);
    return e;
}

static int
request_set_endpoint(PyObject *self, PyObject *value, void *closure)
{
    (void)closure;
    if (value && value != Py_None && !PyUnicode_Check(value)) {
        PyErr_Format(PyExc_TypeError,
                     "Request.endpoint must be a str or None, not %.100s",
                     Py_TYPE(value)->tp_name);
        return -1;
    }
    struct mh_request *r = (struct mh_request *)self;
    PyObject *old = r->endpoint;
    r->endpoint = value && value != Py_None ? value : NULL;
    Py_XINCREF(r->endpoint);
    Py_XDECREF(old);
    return 0;
}

static PyGetSetDef request_getset[] = {
    {"id", request_get_id, NULL,
     "The request's id in the capture (positive, unique per process).",
     NULL},
    {"endpoint", request_get_endpoint, request_set_endpoint,
     "The route pattern (never a raw URL), or None: \"(unnamed)\" in the "
     "capture.",
     NULL},
    {"ended", request_get_ended, NULL, "Whether request_end() was called.",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject request_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "_memhound.Request",
    .tp_basicsize = sizeof(struct mh_request),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A request (or job) memory is attributed to: from "
              "request_begin(), ended by request_end().",
    .tp_traverse = request_traverse,
    .tp_clear = request_clear,
    .tp_dealloc = request_dealloc,
    .tp_repr = request_repr,
    .tp_getset = request_getset,
};

int
mh_requests_init(PyObject *module)
{
    if (PyType_Ready(&request_type))
        return -1;
    if (!request_var) {
        request_var = PyContextVar_New("memhound_request", NULL);
        if (!request_var)
            return -1;
    }
    Py_INCREF(&request_type);
    if (PyModule_AddObject(module, "Request", (PyObject *)&request_type)) {
        Py_DECREF(&request_type);
        return -1;
    }
    return 0;
}

/* Whether this process counts requests: the web layer is installed
 * (count_requests()) or a request has begun. Read by the control
 * thread's `stats` (guard's --max-requests); inherited across fork. */
static volatile int counting;

int
mh_requests_counting(void)
{
    return __atomic_load_n(&counting, __ATOMIC_RELAXED);
}

/* ---- the module's functions ---- */

PyObject *
mh_py_count_requests(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    __atomic_store_n(&counting, 1, __ATOMIC_RELAXED);
    Py_RETURN_NONE;
}

PyObject *
mh_py_request_begin(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    if (!recording())
        Py_RETURN_NONE;
    __atomic_store_n(&counting, 1, __ATOMIC_RELAXED);
    struct mh_request *cur = current();
    int nested = cur && !cur->ended;
    Py_XDECREF(cur);
    if (nested)
        Py_RETURN_NONE;
    struct mh_request *r = PyObject_GC_New(struct mh_request, &request_type);
    if (!r)
        return NULL;
    r->id = ++last_id;
    r->t_begin_ns = mono_ns();
    r->endpoint = NULL;
    r->token = NULL;
    r->ended = 0;
    PyObject_GC_Track((PyObject *)r);
    changing_var = 1;
    r->token = PyContextVar_Set(request_var, (PyObject *)r);
    changing_var = 0;
    if (!r->token) {
        Py_DECREF(r);
        return NULL;
    }
    return (PyObject *)r;
}

PyObject *
mh_py_request_current(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    struct mh_request *r = current();
    if (r && r->ended)
        Py_CLEAR(r);
    if (!r)
        Py_RETURN_NONE;
    return (PyObject *)r;
}

PyObject *
mh_py_request_end(PyObject *module, PyObject *arg)
{
    (void)module;
    if (arg == Py_None) /* what request_begin() gives a nested layer */
        Py_RETURN_NONE;
    if (Py_TYPE(arg) != &request_type)
        return PyErr_Format(PyExc_TypeError,
                            "request_end() needs a _memhound.Request, not "
                            "%.100s",
                            Py_TYPE(arg)->tp_name);
    struct mh_request *r = (struct mh_request *)arg;
    if (r->ended)
        Py_RETURN_NONE;
    r->ended = 1; /* from here the tracker tags nothing with it */
    uint64_t dur = mono_ns() - r->t_begin_ns;
    if (r->token) {
        /* Fails in another thread or task (another Context): `ended`
         * keeps the stale value there harmless. */
        changing_var = 1;
        int failed = PyContextVar_Reset(request_var, r->token);
        changing_var = 0;
        if (failed)
            PyErr_Clear();
        Py_CLEAR(r->token);
    }
    if (!recording())
        Py_RETURN_NONE;
    struct mh_cap_request rec = {.id = r->id};
    PyObject *keep = NULL;
    if (r->endpoint) {
        if (utf8_of(r->endpoint, &rec.endpoint, &keep))
            return NULL;
    } else {
        rec.endpoint = (struct mh_str){"(unnamed)", 9};
    }
    rec.t_end_ns = mh_writer_now_ns();
    rec.t_begin_ns = rec.t_end_ns > dur ? rec.t_end_ns - dur : 0;
    mh_tracker_put_request(&rec);
    Py_XDECREF(keep);
    Py_RETURN_NONE;
}

static int
u64_arg(PyObject *o, void *out)
{
    unsigned long long v = PyLong_AsUnsignedLongLong(o);
    if (v == (unsigned long long)-1 && PyErr_Occurred())
        return 0;
    *(uint64_t *)out = v;
    return 1;
}

static int
line_arg(PyObject *o, void *out)
{
    uint64_t v;
    if (!u64_arg(o, &v))
        return 0;
    if (v > UINT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "line must fit in 32 bits");
        return 0;
    }
    *(uint32_t *)out = (uint32_t)v;
    return 1;
}

PyObject *
mh_py_finding(PyObject *module, PyObject *args, PyObject *kw)
{
    (void)module;
    static char *kwlist[] = {"id",     "file",   "line",    "function",
                             "count",  "bytes",  "detail",  "request",
                             NULL};
    PyObject *id, *file, *function = NULL, *detail = NULL, *req = NULL;
    struct mh_cap_finding f = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "UUO&|UO&O&UO", kwlist, &id,
                                     &file, line_arg, &f.line, &function,
                                     u64_arg, &f.count, u64_arg, &f.bytes,
                                     &detail, &req))
        return NULL;
    if (req == Py_None)
        req = NULL;
    if (req && !PyObject_TypeCheck(req, &request_type)) {
        PyErr_SetString(PyExc_TypeError,
                        "request must be a Request or None");
        return NULL;
    }
    if (PyUnicode_GET_LENGTH(id) == 0) {
        PyErr_SetString(PyExc_ValueError, "a finding's id must not be empty");
        return NULL;
    }
    if (!recording())
        Py_RETURN_NONE;
    PyObject *keep[4] = {NULL, NULL, NULL, NULL};
    PyObject *result = NULL;
    if (utf8_of(id, &f.id, &keep[0]) || utf8_of(file, &f.file, &keep[1]) ||
        (function && utf8_of(function, &f.function, &keep[2])) ||
        (detail && utf8_of(detail, &f.detail, &keep[3])))
        goto done;
    /* A finding observed after its request ended (an object freed later)
     * names the request it came from, not whatever runs now. */
    f.request = req ? ((struct mh_request *)req)->id
                    : mh_requests_current_id();
    f.t_ns = mh_writer_now_ns();
    mh_tracker_put_finding(&f);
    result = Py_None;
    Py_INCREF(result);
done:
    for (int i = 0; i < 4; i++)
        Py_XDECREF(keep[i]);
    return result;
}

PyObject *
mh_py_thread_allocated(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    uint64_t n;
    if (mh_tracker_thread_allocated(&n))
        Py_RETURN_NONE;
    return PyLong_FromUnsignedLongLong(n);
}
