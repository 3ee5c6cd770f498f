/* The heap walker's layouts for CPython 3.13: _PyInterpreterFrame hangs
 * off the thread state and names its code through f_executable; instances
 * keep their attribute values inline, right after the object header, with
 * a `valid` flag, and their __dict__ (when one was made) three words
 * before the object; static types keep their dict in the interpreter. */
#include "heapwalk.h"

#if PY_VERSION_HEX >= 0x030D0000

#define Py_BUILD_CORE 1
/* Python.h, read without Py_BUILD_CORE, defined these for extensions;
 * the internal headers declare them their own way. */
#undef _PyGC_FINALIZED
#undef _PyObject_LookupSpecial
/* 3.12's inline dict helpers touch the deprecated ma_version_tag. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include "internal/pycore_dict.h"
#include "internal/pycore_frame.h"
#include "internal/pycore_interp.h"
#include "internal/pycore_object.h"
#pragma GCC diagnostic pop
#undef Py_BUILD_CORE

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
    return interp->imports.modules;
}

PyThreadState *
mh_hw_threads_head(PyInterpreterState *interp)
{
    return interp->threads.head;
}

void
mh_hw_threads_each(PyInterpreterState *interp, mh_hw_frame_fn fn, void *arg)
{
    for (PyThreadState *ts = interp->threads.head; ts; ts = ts->next) {
        for (_PyInterpreterFrame *f = ts->current_frame; f; f = f->previous) {
            if (f->owner == FRAME_OWNED_BY_CSTACK ||
                !PyCode_Check(f->f_executable))
                continue;
            if (_PyFrame_IsIncomplete(f))
                continue;
            PyCodeObject *co = (PyCodeObject *)f->f_executable;
            struct mh_hw_frame hf = {
                .code = co,
                .line = PyCode_Addr2Line(co, _PyInterpreterFrame_LASTI(f) *
                                                 (int)sizeof(_Py_CODEUNIT)),
                .localsplus = f->localsplus,
                .nlocals = co->co_nlocalsplus,
                .stack = f->localsplus + co->co_nlocalsplus,
            };
            /* The stack top is saved only when the frame calls another
             * Python frame directly: a running frame's is -1. */
            int valid = f->stacktop >= co->co_nlocalsplus &&
                        f->stacktop <= co->co_nlocalsplus + co->co_stacksize;
            hf.nstack = valid ? f->stacktop - co->co_nlocalsplus : 0;
            fn(arg, ts, &hf);
        }
    }
}

PyObject *
mh_hw_local_name(PyCodeObject *co, int i)
{
    if (i < 0 || i >= PyTuple_GET_SIZE(co->co_localsplusnames))
        return NULL;
    return PyTuple_GET_ITEM(co->co_localsplusnames, i);
}

PyObject *
mh_hw_freevar_name(PyCodeObject *co, int i)
{
    /* The free variables are the last co_nfreevars local slots. */
    if (i < 0 || i >= co->co_nfreevars)
        return NULL;
    return mh_hw_local_name(co, co->co_nlocalsplus - co->co_nfreevars + i);
}

void
mh_hw_interp_roots(PyInterpreterState *interp, mh_hw_field_fn fn, void *arg)
{
    fn(arg, interp->imports.modules, 0, "sys.modules");
    fn(arg, interp->imports.modules_by_index, 4,
       "interpreter modules_by_index");
    fn(arg, interp->imports.importlib, 4, "interpreter importlib");
    fn(arg, interp->imports.import_func, 4, "interpreter import_func");
    fn(arg, interp->sysdict_copy, 4, "interpreter sysdict_copy");
    for (size_t i = 0; i < interp->types.builtins.num_initialized &&
                       i < _Py_MAX_MANAGED_STATIC_BUILTIN_TYPES;
         i++) {
        managed_static_type_state *st = &interp->types.builtins.initialized[i];
        fn(arg, st->tp_dict, 4, "static type dict");
        fn(arg, st->tp_subclasses, 4, "static type subclasses");
    }
    for (size_t i = 0; i < _Py_MAX_MANAGED_STATIC_EXT_TYPES; i++) {
        managed_static_type_state *st =
            &interp->types.for_extensions.initialized[i];
        if (!st->type)
            continue;
        fn(arg, st->tp_dict, 4, "static type dict");
        fn(arg, st->tp_subclasses, 4, "static type subclasses");
    }
    fn(arg, interp->sysdict, 1, "sys");
    fn(arg, interp->builtins, 2, "builtins");
    fn(arg, interp->codecs.search_path, 4, "codec search path");
    fn(arg, interp->codecs.search_cache, 4, "codec search cache");
    fn(arg, interp->codecs.error_registry, 4, "codec error registry");
    fn(arg, interp->dict, 4, "interpreter dict");
    fn(arg, interp->builtins_copy, 4, "interpreter builtins_copy");
    fn(arg, interp->before_forkers, 4, "interpreter before_forkers");
    fn(arg, interp->after_forkers_parent, 4,
       "interpreter after_forkers_parent");
    fn(arg, interp->after_forkers_child, 4, "interpreter after_forkers_child");
    fn(arg, interp->audit_hooks, 4, "interpreter audit_hooks");
    fn(arg, interp->gc.garbage, 4, "gc.garbage");
    fn(arg, interp->gc.callbacks, 4, "gc.callbacks");
    for (PyThreadState *ts = interp->threads.head; ts; ts = ts->next) {
        fn(arg, ts->dict, 4, "thread dict");
        fn(arg, ts->async_exc, 4, "thread async_exc");
        fn(arg, ts->context, 4, "thread context");
        fn(arg, ts->c_profileobj, 4, "thread profile function");
        fn(arg, ts->c_traceobj, 4, "thread trace function");
        fn(arg, ts->current_exception, 4, "thread current exception");
        fn(arg, ts->async_gen_firstiter, 4, "thread async_gen_firstiter");
        fn(arg, ts->async_gen_finalizer, 4, "thread async_gen_finalizer");
        for (_PyErr_StackItem *e = ts->exc_info; e; e = e->previous_item)
            fn(arg, e->exc_value, 4, "thread handled exception");
    }
}

size_t
mh_hw_preheader(PyTypeObject *tp)
{
    return _PyType_PreHeaderSize(tp);
}

size_t
mh_hw_getsizeof_extra(PyObject *op)
{
    /* A static type has no pre-header, whatever its metatype says. */
    if (Py_IS_TYPE(op, &PyType_Type) &&
        !PyType_HasFeature((PyTypeObject *)op, Py_TPFLAGS_HEAPTYPE))
        return 0;
    return _PyType_PreHeaderSize(Py_TYPE(op));
}

size_t
mh_hw_str_sizeof(PyObject *op)
{
    PyASCIIObject *a = (PyASCIIObject *)op;
    PyCompactUnicodeObject *c = (PyCompactUnicodeObject *)op;
    size_t size;
    const void *data;
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
    if (!(a->state.compact && a->state.ascii) && c->utf8 &&
        (const void *)c->utf8 != data)
        size += (size_t)c->utf8_length + 1;
    return size;
}

size_t
mh_hw_int_sizeof(PyObject *op)
{
    size_t n = (size_t)(((PyLongObject *)op)->long_value.lv_tag >>
                        _PyLong_NON_SIZE_BITS);
    return offsetof(PyLongObject, long_value.ob_digit) +
           (n ? n : 1) * sizeof(digit);
}

static size_t
keys_size(PyDictKeysObject *k)
{
    size_t es = k->dk_kind == DICT_KEYS_GENERAL ? sizeof(PyDictKeyEntry)
                                                : sizeof(PyDictUnicodeEntry);
    return sizeof(PyDictKeysObject) + ((size_t)1 << k->dk_log2_index_bytes) +
           (size_t)USABLE_FRACTION(DK_SIZE(k)) * es;
}

size_t
mh_hw_dict_sizeof(PyObject *op)
{
    PyDictObject *mp = (PyDictObject *)op;
    PyDictKeysObject *k = mp->ma_keys;
    size_t res = (size_t)Py_TYPE(op)->tp_basicsize;
    if (mp->ma_values)
        res += (size_t)shared_keys_usable_size(k) * sizeof(PyObject *);
    /* A split table's keys are counted in its type. */
    if (k->dk_refcnt == 1)
        res += keys_size(k);
    return res;
}

size_t
mh_hw_type_sizeof(PyTypeObject *tp)
{
    if (!(tp->tp_flags & Py_TPFLAGS_HEAPTYPE))
        return sizeof(PyTypeObject);
    PyDictKeysObject *k = ((PyHeapTypeObject *)tp)->ht_cached_keys;
    return sizeof(PyHeapTypeObject) + (k ? keys_size(k) : 0);
}

/* Generators, coroutines and frame objects embed an interpreter frame
 * sized by their code; their ob_size field is not a size. As CPython's
 * gen_sizeof/frame_sizeof. */
static int
frame_holder_sizeof(PyObject *op, size_t *res)
{
    PyObject *exe;
    size_t base;
    if (PyGen_Check(op) || PyCoro_CheckExact(op) ||
        PyAsyncGen_CheckExact(op)) {
        exe = ((_PyInterpreterFrame *)((PyGenObject *)op)->gi_iframe)
                  ->f_executable;
        base = offsetof(PyGenObject, gi_iframe);
    } else if (PyFrame_Check(op)) {
        exe = ((PyFrameObject *)op)->f_frame->f_executable;
        base = offsetof(PyFrameObject, _f_frame_data);
    } else {
        return 0;
    }
    if (!exe || !PyCode_Check(exe))
        return 0;
    PyCodeObject *code = (PyCodeObject *)exe;
    *res = base + offsetof(_PyInterpreterFrame, localsplus) +
           (size_t)(code->co_nlocalsplus + code->co_stacksize) *
               sizeof(PyObject *);
    return 1;
}

size_t
mh_hw_object_sizeof(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    size_t res = (size_t)tp->tp_basicsize;
    if (frame_holder_sizeof(op, &res))
        return res;
    if (tp->tp_itemsize > 0 && Py_SIZE(op) > 0)
        res += (size_t)Py_SIZE(op) * (size_t)tp->tp_itemsize;
    /* sys.getsizeof leaves the inline values out. */
    return res;
}

/* Entries of a split or shared keys table with their values. */
static void
split_each(PyDictKeysObject *k, PyDictValues *values, mh_hw_kv_fn fn,
           void *arg)
{
    PyDictUnicodeEntry *e = DK_UNICODE_ENTRIES(k);
    for (Py_ssize_t i = 0; i < k->dk_nentries && i < values->capacity; i++)
        if (e[i].me_key && values->values[i])
            fn(arg, e[i].me_key, values->values[i], 0);
}

void
mh_hw_dict_each(PyObject *dict, mh_hw_kv_fn fn, void *arg)
{
    PyDictObject *mp = (PyDictObject *)dict;
    PyDictKeysObject *k = mp->ma_keys;
    if (!k)
        return;
    if (mp->ma_values) {
        split_each(k, mp->ma_values, fn, arg);
    } else if (k->dk_kind == DICT_KEYS_GENERAL) {
        PyDictKeyEntry *e = DK_ENTRIES(k);
        for (Py_ssize_t i = 0; i < k->dk_nentries; i++)
            if (e[i].me_key && e[i].me_value)
                fn(arg, e[i].me_key, e[i].me_value, 1);
    } else {
        PyDictUnicodeEntry *e = DK_UNICODE_ENTRIES(k);
        for (Py_ssize_t i = 0; i < k->dk_nentries; i++)
            if (e[i].me_key && e[i].me_value)
                fn(arg, e[i].me_key, e[i].me_value, 1);
    }
}

int
mh_hw_has_managed_dict(PyTypeObject *tp)
{
    return (tp->tp_flags & Py_TPFLAGS_MANAGED_DICT) != 0;
}

PyObject *
mh_hw_managed_dict(PyObject *op, mh_hw_kv_fn fn, void *arg)
{
    PyTypeObject *tp = Py_TYPE(op);
    PyDictObject *dict = _PyObject_GetManagedDict(op);
    if (dict)
        return (PyObject *)dict;
    if (!(tp->tp_flags & Py_TPFLAGS_INLINE_VALUES))
        return NULL;
    PyDictValues *values = _PyObject_InlineValues(op);
    PyDictKeysObject *k = ((PyHeapTypeObject *)tp)->ht_cached_keys;
    if (values->valid && k)
        split_each(k, values, fn, arg);
    return NULL;
}

void
mh_hw_cached_keys_each(PyTypeObject *tp, mh_hw_kv_fn fn, void *arg)
{
    if (!(tp->tp_flags & Py_TPFLAGS_HEAPTYPE))
        return;
    PyDictKeysObject *k = ((PyHeapTypeObject *)tp)->ht_cached_keys;
    if (!k)
        return;
    PyDictUnicodeEntry *e = DK_UNICODE_ENTRIES(k);
    for (Py_ssize_t i = 0; i < k->dk_nentries; i++)
        if (e[i].me_key)
            fn(arg, e[i].me_key, NULL, 1);
}

void
mh_hw_code_refs(PyCodeObject *co, mh_hw_field_fn fn, void *arg)
{
    fn(arg, co->co_consts, 6, "co_consts");
    fn(arg, co->co_names, 6, "co_names");
    fn(arg, co->co_exceptiontable, 6, "co_exceptiontable");
    fn(arg, co->co_localsplusnames, 6, "co_localsplusnames");
    fn(arg, co->co_localspluskinds, 6, "co_localspluskinds");
    fn(arg, co->co_filename, 6, "co_filename");
    fn(arg, co->co_name, 6, "co_name");
    fn(arg, co->co_qualname, 6, "co_qualname");
    fn(arg, co->co_linetable, 6, "co_linetable");
    if (co->_co_cached) {
        fn(arg, co->_co_cached->_co_code, 6, "co_code");
        fn(arg, co->_co_cached->_co_varnames, 6, "co_varnames");
        fn(arg, co->_co_cached->_co_cellvars, 6, "co_cellvars");
        fn(arg, co->_co_cached->_co_freevars, 6, "co_freevars");
    }
}

/* Static builtin types keep their dict and subclasses in the interpreter
 * and their index there, plus one, in tp_subclasses. */
static managed_static_type_state *
static_state(PyTypeObject *tp)
{
    if (!(tp->tp_flags & _Py_TPFLAGS_STATIC_BUILTIN))
        return NULL;
    size_t i = (size_t)tp->tp_subclasses - 1;
    PyInterpreterState *interp = PyInterpreterState_Get();
    if (i < _Py_MAX_MANAGED_STATIC_BUILTIN_TYPES &&
        interp->types.builtins.initialized[i].type == tp)
        return &interp->types.builtins.initialized[i];
    if (i < _Py_MAX_MANAGED_STATIC_EXT_TYPES &&
        interp->types.for_extensions.initialized[i].type == tp)
        return &interp->types.for_extensions.initialized[i];
    return NULL;
}

PyObject *
mh_hw_type_dict(PyTypeObject *tp)
{
    if (tp->tp_flags & _Py_TPFLAGS_STATIC_BUILTIN) {
        managed_static_type_state *st = static_state(tp);
        return st ? st->tp_dict : NULL;
    }
    return tp->tp_dict;
}

void
mh_hw_type_refs(PyTypeObject *tp, mh_hw_field_fn fn, void *arg)
{
    fn(arg, mh_hw_type_dict(tp), 6, "__dict__");
    fn(arg, tp->tp_mro, 6, "__mro__");
    fn(arg, tp->tp_bases, 6, "__bases__");
    fn(arg, (PyObject *)tp->tp_base, 6, "__base__");
    fn(arg, tp->tp_cache, 6, "tp_cache");
    if (tp->tp_flags & _Py_TPFLAGS_STATIC_BUILTIN) {
        managed_static_type_state *st = static_state(tp);
        if (st)
            fn(arg, st->tp_subclasses, 6, "tp_subclasses");
    } else {
        fn(arg, (PyObject *)tp->tp_subclasses, 6, "tp_subclasses");
    }
    if (tp->tp_flags & Py_TPFLAGS_HEAPTYPE) {
        PyHeapTypeObject *ht = (PyHeapTypeObject *)tp;
        fn(arg, ht->ht_name, 6, "__name__");
        fn(arg, ht->ht_qualname, 6, "__qualname__");
        fn(arg, ht->ht_slots, 6, "__slots__");
        fn(arg, ht->ht_module, 6, "ht_module");
    }
}

#endif
