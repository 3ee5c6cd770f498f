/* The walk, in the walker child: ROOT records first (interpreter
 * containers, every thread's frames), then every object of the GC lists
 * and depth-first what each references, each object's record with its
 * shallow size; then the ALLOC records joining the tracker's live blocks
 * to the objects found, and END. */
#include "heapdump_impl.h" /* Python.h first, as CPython asks */

#include <string.h>

#include "../util/mem.h"
#include "tracker.h"

/* ---- sizes ---- */

/* sys.getsizeof(op) for built-in types, computed from the object; other
 * types get object.__sizeof__ (a user __sizeof__ is never called). */
static uint64_t
shallow_size(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    size_t size;
    if (PyUnicode_Check(op))
        size = mh_hw_str_sizeof(op);
    else if (PyLong_Check(op))
        size = mh_hw_int_sizeof(op);
    else if (PyDict_Check(op))
        size = mh_hw_dict_sizeof(op);
    else if (PyList_Check(op))
        size = (size_t)tp->tp_basicsize +
               (size_t)((PyListObject *)op)->allocated * sizeof(void *);
    else if (PyAnySet_Check(op)) {
        PySetObject *so = (PySetObject *)op;
        size = (size_t)tp->tp_basicsize;
        if (so->table != so->smalltable)
            size += ((size_t)so->mask + 1) * sizeof(setentry);
    } else if (PyByteArray_Check(op))
        size = (size_t)tp->tp_basicsize +
               (size_t)((PyByteArrayObject *)op)->ob_alloc;
    else if (PyType_Check(op))
        size = mh_hw_type_sizeof((PyTypeObject *)op);
    else if (PyBytes_Check(op))
        size = offsetof(PyBytesObject, ob_sval) + 1 + (size_t)Py_SIZE(op);
    else
        size = mh_hw_object_sizeof(op);
    return size + mh_hw_getsizeof_extra(op);
}

/* ---- walking ---- */

/* Puts off writing the record of an object with more edges than a chunk
 * holds to the end of the walk, where it is walked again (its targets
 * are seen by then, and the child's heap does not change): a dump cut
 * short inside such a record loses it, not all that would follow it.
 * Returns 0 when it cannot (out of memory): the record is written now. */
static int
defer_big(struct walk *w, PyObject *op)
{
    if (w->nbig == w->capbig) {
        size_t cap = w->capbig ? w->capbig * 2 : 64;
        PyObject **b = mh_realloc(w->big, cap * sizeof(*b));
        if (!b)
            return 0;
        w->big = b;
        w->capbig = cap;
    }
    w->big[w->nbig++] = op;
    return 1;
}

static void root(struct walk *w, PyObject *target, int kind, uint64_t name);

/* An int in the range the interpreter keeps preallocated (-5..256,
 * before 3.12 held by its state, not a container). */
static int
small_int(PyObject *op)
{
    int overflow = 0;
    long v = PyLong_AsLongAndOverflow(op, &overflow);
    return !overflow && v >= -5 && v <= 256;
}

/* What the interpreter's C state holds without a container the walk
 * starts from: a static type (a C global, with its dict, MRO and
 * descriptors), a module definition (a C global), an interned string
 * (the interpreter's table of them), an immortal object (3.12+) and a
 * preallocated small int.
 * Kind 5 roots, which the analysis searches last: a path through them is
 * given only to what no other root reaches, and none of it is "held by
 * references the GC cannot see". */
static void
runtime_root(struct walk *w, PyObject *op)
{
    if (PyType_Check(op) &&
        !(((PyTypeObject *)op)->tp_flags & Py_TPFLAGS_HEAPTYPE)) {
        const char *name = ((PyTypeObject *)op)->tp_name;
        root(w, op, MH_ROOT_RUNTIME, mh_hd_cstr_id(w, name ? name : "?"));
    } else if (Py_IS_TYPE(op, &PyModuleDef_Type)) {
        const char *name = ((PyModuleDef *)op)->m_name;
        root(w, op, MH_ROOT_RUNTIME, mh_hd_cstr_id(w, name ? name : "?"));
    } else if (PyUnicode_CheckExact(op) && PyUnicode_CHECK_INTERNED(op)) {
        root(w, op, MH_ROOT_RUNTIME, mh_hd_cstr_id(w, "<interned>"));
    } else if (mh_hw_is_immortal(op)) {
        root(w, op, MH_ROOT_RUNTIME, mh_hd_cstr_id(w, "<immortal>"));
    } else if (PyLong_CheckExact(op) && small_int(op)) {
        root(w, op, MH_ROOT_RUNTIME, mh_hd_cstr_id(w, "<small int>"));
    } else if ((PyBytes_CheckExact(op) && Py_SIZE(op) <= 1) ||
               (PyUnicode_CheckExact(op) && PyUnicode_GET_LENGTH(op) <= 1 &&
                PyUnicode_KIND(op) == PyUnicode_1BYTE_KIND)) {
        /* The empty and one-character bytes and latin-1 strs the
         * interpreter caches (before 3.11 on the heap, held by it). */
        root(w, op, MH_ROOT_RUNTIME,
             mh_hd_cstr_id(w, "<one-character cache>"));
    }
}

/* Walks op: queues what it references, and writes its record, or leaves
 * it for the end of the walk when it is big and `may_defer`. */
static void
walk_one(struct walk *w, PyObject *op, int may_defer)
{
    runtime_root(w, op);
    w->nedges = 0;
    w->capped = 0;
    w->cur = op;
    unsigned flags = mh_hd_object_edges(w, op);
    if (w->capped)
        flags |= MH_OBJ_UNFOLLOWED;
    if (PyObject_IS_GC(op) && PyObject_GC_IsTracked(op))
        flags |= MH_OBJ_GC_TRACKED;
    else {
        int is_new;
        uintptr_t *slot = mh_hd_set_insert(&w->seen, (uintptr_t)op, &is_new);
        if (slot && !(*slot & SEEN_ROOT))
            flags |= MH_OBJ_FOUND_BY_REF;
    }
    struct mh_heap_obj o = {
        .addr = (uintptr_t)op,
        .type = mh_hd_type_id(w, Py_TYPE(op)),
        .size = shallow_size(op),
        .refcnt = (uint64_t)Py_REFCNT(op),
        .flags = flags,
    };
    if (may_defer && MH_HEAP_OBJ_MAX(w->nedges) > CHUNK_BYTES &&
        defer_big(w, op))
        return;
    /* An object that may not fit what is left of the chunk starts one of
     * its own. */
    if (w->chunk.len &&
        w->chunk.len + MH_HEAP_OBJ_MAX(w->nedges) > CHUNK_BYTES)
        mh_hd_flush_chunk(w);
    int rc = mh_heap_put_object(&w->chunk, &w->enc, &o, w->edges, w->nedges);
    if (rc) {
        fail(w, rc);
        return;
    }
    w->objects++;
    w->nedges_total += w->nedges;
    if (w->chunk.len >= CHUNK_BYTES)
        mh_hd_flush_chunk(w);
}

static void
drain(struct walk *w)
{
    while (w->nstack && !w->err)
        walk_one(w, w->stack[--w->nstack], 1);
}

static int
walk_gc_object(void *arg, PyObject *op)
{
    struct walk *w = arg;
    mh_hd_discover(w, op);
    drain(w);
    return w->err;
}

/* ---- roots ---- */

static void
root(struct walk *w, PyObject *target, int kind, uint64_t name)
{
    if (!target)
        return;
    int is_new;
    uintptr_t *slot = mh_hd_set_insert(&w->seen, (uintptr_t)target, &is_new);
    if (!slot) {
        fail(w, MH_ENOMEM);
        return;
    }
    if (is_new) {
        if (w->nroots == w->caproots) {
            size_t cap = w->caproots ? w->caproots * 2 : 1024;
            PyObject **r = mh_realloc(w->roots, cap * sizeof(*r));
            if (!r) {
                fail(w, MH_ENOMEM);
                return;
            }
            w->roots = r;
            w->caproots = cap;
        }
        w->roots[w->nroots++] = target;
    }
    *slot |= SEEN_ROOT;
    int rc = mh_heap_put_root(&w->chunk, &w->enc, (uint64_t)kind, name,
                              (uintptr_t)target);
    if (rc)
        fail(w, rc);
}

static void
interp_root(void *arg, PyObject *target, int kind, const char *name)
{
    struct walk *w = arg;
    if (target)
        root(w, target, kind, mh_hd_cstr_id(w, name));
}

struct find_int {
    unsigned long long value;
    PyObject *found;
};

static void
find_int_kv(void *arg, PyObject *key, PyObject *value, int owns_key)
{
    struct find_int *f = arg;
    (void)owns_key;
    if (f->found || !PyLong_CheckExact(key))
        return;
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(key, &overflow);
    if (!overflow && (unsigned long long)v == f->value)
        f->found = value;
}

/* threading._active[ident]._name, read without calling anything. */
static PyObject *
thread_name(struct walk *w, unsigned long ident)
{
    PyObject *mod =
        mh_hd_dict_get(mh_hw_interp_modules(w->interp), "threading");
    if (!mod || !PyModule_Check(mod))
        return NULL;
    PyObject *active = mh_hd_dict_get(PyModule_GetDict(mod), "_active");
    if (!active || !PyDict_Check(active))
        return NULL;
    struct find_int f = {ident, NULL};
    mh_hw_dict_each(active, find_int_kv, &f);
    if (!f.found)
        return NULL;
    PyObject *name = mh_hd_attr_get(f.found, "_name");
    return name && PyUnicode_Check(name) ? name : NULL;
}

/* Frame roots are named `thread <ident> [<name>] <file>:<line> in
 * <function>: <local>`; the prefix is built once per frame. */
struct frame_ctx {
    struct walk *w;
    PyThreadState *last_ts;
    PyObject *tname;
};

static void
frame_root(void *arg, PyThreadState *ts, const struct mh_hw_frame *f)
{
    struct frame_ctx *fc = arg;
    struct walk *w = fc->w;
    if (ts != fc->last_ts) {
        fc->last_ts = ts;
        fc->tname = thread_name(w, ts->thread_id);
    }
    struct sb pre;
    mh_hd_sb_init(&pre, NAME_MAX_BYTES / 2);
    mh_hd_sb_printf(&pre, "thread %lu ", ts->thread_id);
    if (fc->tname) {
        mh_hd_sb_cp(&pre, '[');
        mh_hd_sb_str(&pre, fc->tname);
        mh_hd_sb_puts(&pre, "] ");
    }
    PyCodeObject *co = f->code;
    if (co->co_filename && PyUnicode_Check(co->co_filename))
        mh_hd_sb_str(&pre, co->co_filename);
    mh_hd_sb_printf(&pre, ":%d in ", f->line);
#if PY_VERSION_HEX >= 0x030B0000
    PyObject *fn = co->co_qualname;
#else
    PyObject *fn = co->co_name;
#endif
    if (fn && PyUnicode_Check(fn))
        mh_hd_sb_str(&pre, fn);
    mh_hd_sb_puts(&pre, ": ");
    for (int i = 0; i < f->nlocals + f->nstack && !w->err; i++) {
        PyObject *v =
            i < f->nlocals ? f->localsplus[i] : f->stack[i - f->nlocals];
        if (!v)
            continue;
        struct sb b;
        memcpy(b.buf, pre.buf, pre.len);
        b.len = pre.len;
        b.chars = 0;
        b.maxchars = NAME_MAX_BYTES;
        b.cut = 0;
        PyObject *name = i < f->nlocals ? mh_hw_local_name(co, i) : NULL;
        if (name && PyUnicode_Check(name))
            mh_hd_sb_str(&b, name);
        else
            mh_hd_sb_puts(&b, i < f->nlocals ? "?" : "<stack>");
        root(w, v, MH_ROOT_FRAME, mh_hd_string_id(w, b.buf, b.len));
    }
}

/* ---- before the walk: what names need ---- */

/* tp_traverse of classes made by a `class` statement (subtype_traverse,
 * static in typeobject.c): read from one such class every interpreter
 * has, importlib's ModuleSpec. */
static traverseproc
find_subtype_traverse(PyObject *modules)
{
    static const char *const where[][2] = {
        {"_frozen_importlib", "ModuleSpec"},
        {"_frozen_importlib", "BuiltinImporter"},
        {"abc", "ABC"},
    };
    for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
        PyObject *mod = mh_hd_dict_get(modules, where[i][0]);
        if (!mod || !PyModule_Check(mod))
            continue;
        PyObject *cls = mh_hd_dict_get(PyModule_GetDict(mod), where[i][1]);
        if (cls && PyType_Check(cls) &&
            (((PyTypeObject *)cls)->tp_flags & Py_TPFLAGS_HEAPTYPE))
            return ((PyTypeObject *)cls)->tp_traverse;
    }
    return NULL;
}

/* Closure tuples, so their cells can be named by the code's free
 * variables whichever of tuple and function is walked first. */
static int
note_closure(void *arg, PyObject *op)
{
    struct walk *w = arg;
    if (!PyFunction_Check(op))
        return 0;
    PyFunctionObject *f = (PyFunctionObject *)op;
    if (f->func_closure && PyTuple_CheckExact(f->func_closure) &&
        f->func_code && PyCode_Check(f->func_code) &&
        mh_addrmap_put(&w->closures, (uintptr_t)f->func_closure,
                       (uintptr_t)f->func_code))
        return MH_ENOMEM;
    return 0;
}

/* ---- ALLOC records: the tracker's live blocks ---- */

static int
plausible_refcnt(PyObject *op)
{
    Py_ssize_t r = Py_REFCNT(op);
    return r > 0 && (uint64_t)r < ((uint64_t)1 << 40);
}

/* The walked object a live block holds (its address is the block's plus
 * its type's pre-header), or the type id of an object the walk did not
 * find but the block looks like (its ob_type is a walked type). The
 * block's own ob_type candidates are read first: the types table is
 * small and hot, the visited set is not, so a block that holds no object
 * costs no lookup there. */
static void
alloc_record(struct walk *w, uintptr_t addr, uint64_t v)
{
    uint64_t size = mh_tracker_live_size(v);
    uint64_t object = 0, type = 0;
    static const size_t offsets[] = {0, 16, 32};
    for (size_t i = 0; i < 3 && !object; i++) {
        if (size < offsets[i] + sizeof(PyObject))
            break;
        PyObject *op = (PyObject *)(addr + offsets[i]);
        PyTypeObject *tp = Py_TYPE(op);
        uint64_t id;
        if (!mh_addrmap_get(&w->types, (uintptr_t)tp, &id)) {
            /* A type with no instance walked: a type object the walk
             * found. */
            if (!tp || !mh_hd_set_has(&w->seen, (uintptr_t)tp) ||
                !PyType_Check((PyObject *)tp))
                continue;
            id = 0;
        }
        if (mh_hw_preheader(tp) != offsets[i])
            continue;
        if (id && mh_hd_set_has(&w->seen, (uintptr_t)op))
            object = (uintptr_t)op;
        else if (!type && plausible_refcnt(op))
            type = id ? id : mh_hd_type_id(w, tp);
    }
    if (object)
        type = 0;
    int rc = mh_heap_put_alloc(&w->chunk, addr, size, mh_tracker_live_stack(v),
                               object, type);
    if (rc)
        fail(w, rc);
    else if (w->chunk.len >= CHUNK_BYTES)
        mh_hd_flush_chunk(w);
}

static void
alloc_records(struct walk *w)
{
    const struct mh_addrmap *m = &mh_tracker.sampled;
    for (size_t i = 0; i < m->size && !w->err; i++)
        if (m->slots[i].key)
            alloc_record(w, (uintptr_t)m->slots[i].key, m->slots[i].value);
}

int
mh_hd_walk(struct walk *w, const struct child_args *a, uint64_t pause_ns)
{
    struct mh_buf fh;
    mh_buf_init(&fh, 64);
    int rc = mh_heap_put_file_header(&fh);
    if (rc == MH_OK)
        rc = mh_hd_write_all(w->fd, fh.data, fh.len);
    mh_buf_release(&fh);
    if (rc)
        return rc;
    const char *py = Py_GetVersion();
    struct mh_heap_info h = {
        .pid = a->parent_pid,
        .time_ns = a->fork_real_ns,
        .pause_ns = pause_ns,
        .python = {py, mh_hd_utf8_cut(py, strlen(py), MH_HEAP_STR_MAX)},
        .capture = {a->capture, mh_hd_utf8_cut(a->capture, strlen(a->capture),
                                               MH_HEAP_STR_MAX)},
        .sample_interval =
            mh_tracker.mode == MH_MODE_SAMPLE ? mh_tracker.interval : 0,
    };
    rc = mh_heap_put_header(&w->chunk, &h);
    if (rc)
        return rc;
    /* The HEADER alone in the first chunk: a dump cut anywhere after it
     * still reads. */
    mh_hd_flush_chunk(w);
    if (w->err)
        return w->err;
    uint64_t t0 = mh_clock_ns(CLOCK_MONOTONIC);

    PyObject *modules = mh_hw_interp_modules(w->interp);
    w->subtype_traverse = find_subtype_traverse(modules);
    rc = mh_hw_gc_each(w->interp, note_closure, w);
    if (rc)
        return rc;

    mh_hw_interp_roots(w->interp, interp_root, w);
    struct frame_ctx fc = {w, NULL, NULL};
    mh_hw_threads_each(w->interp, frame_root, &fc);
    if (w->err)
        return w->err;

    rc = mh_hw_gc_each(w->interp, walk_gc_object, w);
    if (rc)
        return rc;
    /* Roots the GC lists did not lead to (untracked objects, and what
     * only they reach). */
    for (size_t i = 0; i < w->nroots && !w->err; i++) {
        mh_hd_discover(w, w->roots[i]);
        drain(w);
    }
    for (size_t i = 0; i < w->nbig && !w->err; i++) {
        walk_one(w, w->big[i], 0);
        drain(w); /* nothing new, unless the first visit ran out of room */
    }
    if (w->err)
        return w->err;
    uint64_t walk_ns = mh_clock_ns(CLOCK_MONOTONIC) - t0;

    alloc_records(w);
    if (!w->err && (rc = mh_heap_put_end(&w->chunk, w->objects,
                                         w->nedges_total, walk_ns)))
        fail(w, rc);
    mh_hd_flush_chunk(w);
    return w->err;
}
