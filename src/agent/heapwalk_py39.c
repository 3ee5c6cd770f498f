/* The heap walker's layouts for CPython 3.9 and 3.10: frames are
 * PyFrameObjects, dicts keep their key tables in a struct that the
 * installed headers do not describe, instances keep a __dict__ at
 * tp_dictoffset (no inline values). */
#include "heapwalk.h"

#if PY_VERSION_HEX < 0x030B0000

#define Py_BUILD_CORE 1
/* objimpl.h defines it too, the same way. */
#undef _PyGC_FINALIZED
#include "internal/pycore_interp.h"
#undef Py_BUILD_CORE
#include <frameobject.h>
#include <longintrepr.h>

/* The dict keys table of 3.9 and 3.10 (Objects/dict-common.h, not
 * installed): five words, then the index array (1, 2, 4 or 8 bytes per
 * slot by table size), then the entries. */
struct hw_keys {
    Py_ssize_t dk_refcnt;
    Py_ssize_t dk_size;
    void *dk_lookup;
    Py_ssize_t dk_usable;
    Py_ssize_t dk_nentries;
    char dk_indices[];
};

struct hw_entry {
    Py_hash_t me_hash;
    PyObject *me_key;
    PyObject *me_value;
};

static size_t
keys_ixsize(const struct hw_keys *k)
{
    if (k->dk_size <= 0xff)
        return 1;
    if (k->dk_size <= 0xffff)
        return 2;
    if (k->dk_size <= 0xffffffffLL)
        return 4;
    return 8;
}

static struct hw_entry *
keys_entries(struct hw_keys *k)
{
    return (struct hw_entry *)(k->dk_indices +
                               keys_ixsize(k) * (size_t)k->dk_size);
}

#define USABLE_FRACTION(n) (((n) << 1) / 3)

int
mh_hw_gc_each(PyInterpreterState *interp, mh_hw_obj_fn fn, void *arg)
{
    struct _gc_runtime_state *gc = &interp->gc;
    for (int g = 0; g <= NUM_GENERATIONS; g++) {
        PyGC_Head *head = g < NUM_GENERATIONS ? &gc->generations[g].head
                                              : &gc->permanent_generation.head;
        for (PyGC_Head *h = _PyGCHead_NEXT(head); h && h != head;
             h = _PyGCHead_NEXT(h)) {
            int rc = fn(arg, (PyObject *)(h + 1));
            if (rc)
                return rc;
        }
    }
    return 0;
}

PyObject *
mh_hw_interp_modules(PyInterpreterState *interp)
{
    return interp->modules;
}

PyThreadState *
mh_hw_threads_head(PyInterpreterState *interp)
{
    return interp->tstate_head;
}

void
mh_hw_threads_each(PyInterpreterState *interp, mh_hw_frame_fn fn, void *arg)
{
    for (PyThreadState *ts = interp->tstate_head; ts; ts = ts->next) {
        for (PyFrameObject *f = ts->frame; f; f = f->f_back) {
            PyCodeObject *co = f->f_code;
            struct mh_hw_frame hf = {
                .code = co,
                .line = PyFrame_GetLineNumber(f),
                .localsplus = f->f_localsplus,
                .nlocals = co->co_nlocals +
                           (int)PyTuple_GET_SIZE(co->co_cellvars) +
                           (int)PyTuple_GET_SIZE(co->co_freevars),
                .stack = f->f_valuestack,
            };
            /* The value stack's depth is kept only while the frame is not
             * running (its top lives in the eval loop's registers). */
#if PY_VERSION_HEX >= 0x030A0000
            hf.nstack = f->f_stackdepth > 0 ? f->f_stackdepth : 0;
#else
            hf.nstack =
                f->f_stacktop ? (int)(f->f_stacktop - f->f_valuestack) : 0;
#endif
            fn(arg, ts, &hf);
        }
    }
}

PyObject *
mh_hw_local_name(PyCodeObject *co, int i)
{
    if (i < 0)
        return NULL;
    if (i < co->co_nlocals)
        return i < PyTuple_GET_SIZE(co->co_varnames)
                   ? PyTuple_GET_ITEM(co->co_varnames, i)
                   : NULL;
    i -= co->co_nlocals;
    if (i < PyTuple_GET_SIZE(co->co_cellvars))
        return PyTuple_GET_ITEM(co->co_cellvars, i);
    i -= (int)PyTuple_GET_SIZE(co->co_cellvars);
    if (i < PyTuple_GET_SIZE(co->co_freevars))
        return PyTuple_GET_ITEM(co->co_freevars, i);
    return NULL;
}

PyObject *
mh_hw_freevar_name(PyCodeObject *co, int i)
{
    if (i < 0 || i >= PyTuple_GET_SIZE(co->co_freevars))
        return NULL;
    return PyTuple_GET_ITEM(co->co_freevars, i);
}

void
mh_hw_interp_roots(PyInterpreterState *interp, mh_hw_field_fn fn, void *arg)
{
    fn(arg, interp->modules, 0, "sys.modules");
    fn(arg, interp->sysdict, 1, "sys");
    fn(arg, interp->builtins, 2, "builtins");
    fn(arg, interp->modules_by_index, 4, "interpreter modules_by_index");
    fn(arg, interp->importlib, 4, "interpreter importlib");
    fn(arg, interp->import_func, 4, "interpreter import_func");
    fn(arg, interp->codec_search_path, 4, "codec search path");
    fn(arg, interp->codec_search_cache, 4, "codec search cache");
    fn(arg, interp->codec_error_registry, 4, "codec error registry");
    fn(arg, interp->dict, 4, "interpreter dict");
    fn(arg, interp->builtins_copy, 4, "interpreter builtins_copy");
    fn(arg, interp->before_forkers, 4, "interpreter before_forkers");
    fn(arg, interp->after_forkers_parent, 4,
       "interpreter after_forkers_parent");
    fn(arg, interp->after_forkers_child, 4, "interpreter after_forkers_child");
    fn(arg, interp->audit_hooks, 4, "interpreter audit_hooks");
    fn(arg, interp->gc.garbage, 4, "gc.garbage");
    fn(arg, interp->gc.callbacks, 4, "gc.callbacks");
    for (PyThreadState *ts = interp->tstate_head; ts; ts = ts->next) {
        fn(arg, ts->dict, 4, "thread dict");
        fn(arg, ts->async_exc, 4, "thread async_exc");
        fn(arg, ts->context, 4, "thread context");
        fn(arg, ts->c_profileobj, 4, "thread profile function");
        fn(arg, ts->c_traceobj, 4, "thread trace function");
        fn(arg, ts->curexc_value, 4, "thread current exception");
        fn(arg, ts->curexc_type, 4, "thread current exception");
        fn(arg, ts->curexc_traceback, 4, "thread current exception");
        fn(arg, ts->async_gen_firstiter, 4, "thread async_gen_firstiter");
        fn(arg, ts->async_gen_finalizer, 4, "thread async_gen_finalizer");
        for (_PyErr_StackItem *e = ts->exc_info; e; e = e->previous_item) {
            fn(arg, e->exc_value, 4, "thread handled exception");
            fn(arg, e->exc_type, 4, "thread handled exception");
            fn(arg, e->exc_traceback, 4, "thread handled exception");
        }
    }
}

size_t
mh_hw_preheader(PyTypeObject *tp)
{
    return PyType_IS_GC(tp) ? sizeof(PyGC_Head) : 0;
}

size_t
mh_hw_getsizeof_extra(PyObject *op)
{
    return PyObject_IS_GC(op) ? sizeof(PyGC_Head) : 0;
}

size_t
mh_hw_str_sizeof(PyObject *op)
{
    PyASCIIObject *a = (PyASCIIObject *)op;
    PyCompactUnicodeObject *c = (PyCompactUnicodeObject *)op;
    size_t size;
    const void *data = NULL;
    if (a->state.compact && a->state.ascii) {
        size = sizeof(PyASCIIObject) + (size_t)a->length + 1;
        data = a + 1;
    } else if (a->state.compact) {
        size = sizeof(PyCompactUnicodeObject) +
               ((size_t)a->length + 1) * a->state.kind;
        data = c + 1;
    } else {
        size = sizeof(PyUnicodeObject);
        data = ((PyUnicodeObject *)op)->data.any;
        if (data)
            size += ((size_t)a->length + 1) * a->state.kind;
    }
    if (a->wstr && (!a->state.ready || (const void *)a->wstr != data))
        size +=
            ((a->state.compact && a->state.ascii ? (size_t)a->length
                                                 : (size_t)c->wstr_length) +
             1) *
            sizeof(wchar_t);
    if (!(a->state.compact && a->state.ascii) && c->utf8 &&
        (const void *)c->utf8 != data)
        size += (size_t)c->utf8_length + 1;
    return size;
}

size_t
mh_hw_int_sizeof(PyObject *op)
{
    Py_ssize_t n = Py_SIZE(op);
    return offsetof(PyLongObject, ob_digit) +
           (size_t)(n < 0 ? -n : n) * sizeof(digit);
}

size_t
mh_hw_dict_sizeof(PyObject *op)
{
    PyDictObject *mp = (PyDictObject *)op;
    struct hw_keys *k = (struct hw_keys *)mp->ma_keys;
    size_t usable = (size_t)USABLE_FRACTION(k->dk_size);
    size_t res = (size_t)Py_TYPE(op)->tp_basicsize;
    if (mp->ma_values)
        res += usable * sizeof(PyObject *);
    /* A split table's keys are counted in its type. */
    if (k->dk_refcnt == 1)
        res += sizeof(struct hw_keys) + keys_ixsize(k) * (size_t)k->dk_size +
               sizeof(struct hw_entry) * usable;
    return res;
}

size_t
mh_hw_type_sizeof(PyTypeObject *tp)
{
    if (!(tp->tp_flags & Py_TPFLAGS_HEAPTYPE))
        return sizeof(PyTypeObject);
    struct hw_keys *k =
        (struct hw_keys *)((PyHeapTypeObject *)tp)->ht_cached_keys;
    size_t size = sizeof(PyHeapTypeObject);
    if (k) {
        size_t usable = (size_t)USABLE_FRACTION(k->dk_size);
        size += sizeof(struct hw_keys) + keys_ixsize(k) * (size_t)k->dk_size +
                sizeof(struct hw_entry) * usable;
    }
    return size;
}

size_t
mh_hw_object_sizeof(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    size_t res = (size_t)tp->tp_basicsize;
    if (tp->tp_itemsize > 0 && Py_SIZE(op) > 0)
        res += (size_t)Py_SIZE(op) * (size_t)tp->tp_itemsize;
    return res;
}

static void
keys_each(struct hw_keys *k, PyObject **values, mh_hw_kv_fn fn, void *arg)
{
    struct hw_entry *e = keys_entries(k);
    for (Py_ssize_t i = 0; i < k->dk_nentries; i++) {
        if (!e[i].me_key)
            continue;
        if (values) {
            if (values[i])
                fn(arg, e[i].me_key, values[i], 0);
        } else if (e[i].me_value) {
            fn(arg, e[i].me_key, e[i].me_value, 1);
        }
    }
}

void
mh_hw_dict_each(PyObject *dict, mh_hw_kv_fn fn, void *arg)
{
    PyDictObject *mp = (PyDictObject *)dict;
    if (mp->ma_keys)
        keys_each((struct hw_keys *)mp->ma_keys, mp->ma_values, fn, arg);
}

PyObject *
mh_hw_managed_dict(PyObject *op, mh_hw_kv_fn fn, void *arg)
{
    (void)op;
    (void)fn;
    (void)arg;
    return NULL;
}

int
mh_hw_has_managed_dict(PyTypeObject *tp)
{
    (void)tp;
    return 0;
}

void
mh_hw_cached_keys_each(PyTypeObject *tp, mh_hw_kv_fn fn, void *arg)
{
    if (!(tp->tp_flags & Py_TPFLAGS_HEAPTYPE))
        return;
    struct hw_keys *k =
        (struct hw_keys *)((PyHeapTypeObject *)tp)->ht_cached_keys;
    if (!k)
        return;
    struct hw_entry *e = keys_entries(k);
    for (Py_ssize_t i = 0; i < k->dk_nentries; i++)
        if (e[i].me_key)
            fn(arg, e[i].me_key, NULL, 1);
}

void
mh_hw_code_refs(PyCodeObject *co, mh_hw_field_fn fn, void *arg)
{
    fn(arg, co->co_code, 6, "co_code");
    fn(arg, co->co_consts, 6, "co_consts");
    fn(arg, co->co_names, 6, "co_names");
    fn(arg, co->co_varnames, 6, "co_varnames");
    fn(arg, co->co_freevars, 6, "co_freevars");
    fn(arg, co->co_cellvars, 6, "co_cellvars");
    fn(arg, co->co_filename, 6, "co_filename");
    fn(arg, co->co_name, 6, "co_name");
#if PY_VERSION_HEX >= 0x030A0000
    fn(arg, co->co_linetable, 6, "co_linetable");
#else
    fn(arg, co->co_lnotab, 6, "co_lnotab");
#endif
}

PyObject *
mh_hw_type_dict(PyTypeObject *tp)
{
    return tp->tp_dict;
}

void
mh_hw_type_refs(PyTypeObject *tp, mh_hw_field_fn fn, void *arg)
{
    fn(arg, tp->tp_dict, 6, "__dict__");
    fn(arg, tp->tp_mro, 6, "__mro__");
    fn(arg, tp->tp_bases, 6, "__bases__");
    fn(arg, (PyObject *)tp->tp_base, 6, "__base__");
    fn(arg, tp->tp_cache, 6, "tp_cache");
    fn(arg, tp->tp_subclasses, 6, "tp_subclasses");
    if (tp->tp_flags & Py_TPFLAGS_HEAPTYPE) {
        PyHeapTypeObject *ht = (PyHeapTypeObject *)tp;
        fn(arg, ht->ht_name, 6, "__name__");
        fn(arg, ht->ht_qualname, 6, "__qualname__");
        fn(arg, ht->ht_slots, 6, "__slots__");
        fn(arg, ht->ht_module, 6, "ht_module");
    }
}

#endif
