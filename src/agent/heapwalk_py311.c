/* The heap walker's layouts for CPython 3.11 and 3.12: _PyInterpreterFrame
 * reached through the thread's _PyCFrame, dict keys tables of general or
 * unicode entries, and instances whose attributes live in a values array
 * named by their type's shared keys until something asks for __dict__
 * (3.11: two words before the GC header; 3.12: one tagged word). */
#include "heapwalk.h"

#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030D0000

#define Py_BUILD_CORE 1
/* Python.h, read without Py_BUILD_CORE, defined these for extensions;
 * the internal headers declare them their own way. */
#undef _PyGC_FINALIZED
#undef _PyObject_LookupSpecial
/* 3.12's inline dict helpers touch the deprecated ma_version_tag. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
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
#if PY_VERSION_HEX >= 0x030C0000
    return interp->imports.modules;
#else
    return interp->modules;
#endif
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
        if (!ts->cframe)
            continue;
        _PyInterpreterFrame *inner = NULL;
        for (_PyInterpreterFrame *f = ts->cframe->current_frame; f;
             inner = f, f = f->previous) {
#if PY_VERSION_HEX >= 0x030C0000
            if (f->owner == FRAME_OWNED_BY_CSTACK)
                continue;
#endif
            if (_PyFrame_IsIncomplete(f))
                continue;
            PyCodeObject *co = f->f_code;
            struct mh_hw_frame hf = {
                .code = co,
                .line = PyCode_Addr2Line(co, _PyInterpreterFrame_LASTI(f) *
                                                 (int)sizeof(_Py_CODEUNIT)),
                .localsplus = f->localsplus,
                .nlocals = co->co_nlocalsplus,
                .stack = f->localsplus + co->co_nlocalsplus,
            };
            /* The stack top is saved only when the frame calls another
             * Python frame directly (3.12 marks a running frame's as -1;
             * 3.11 leaves a stale one, so trust it only under such a
             * call). */
            int valid = f->stacktop >= co->co_nlocalsplus &&
                        f->stacktop <= co->co_nlocalsplus + co->co_stacksize;
#if PY_VERSION_HEX < 0x030C0000
            valid = valid && inner && !inner->is_entry;
#else
            (void)inner;
#endif
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
#if PY_VERSION_HEX >= 0x030C0000
    fn(arg, interp->imports.modules, 0, "sys.modules");
    fn(arg, interp->imports.modules_by_index, 4,
       "interpreter modules_by_index");
    fn(arg, interp->imports.importlib, 4, "interpreter importlib");
    fn(arg, interp->imports.import_func, 4, "interpreter import_func");
    fn(arg, interp->sysdict_copy, 4, "interpreter sysdict_copy");
    for (size_t i = 0; i < interp->types.num_builtins_initialized &&
                       i < _Py_MAX_STATIC_BUILTIN_TYPES;
         i++) {
        fn(arg, interp->types.builtins[i].tp_dict, 4, "static type dict");
        fn(arg, interp->types.builtins[i].tp_subclasses, 4,
           "static type subclasses");
    }
#else
    fn(arg, interp->modules, 0, "sys.modules");
    fn(arg, interp->modules_by_index, 4, "interpreter modules_by_index");
    fn(arg, interp->importlib, 4, "interpreter importlib");
    fn(arg, interp->import_func, 4, "interpreter import_func");
#endif
    fn(arg, interp->sysdict, 1, "sys");
    fn(arg, interp->builtins, 2, "builtins");
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
    for (PyThreadState *ts = interp->threads.head; ts; ts = ts->next) {
        fn(arg, ts->dict, 4, "thread dict");
        fn(arg, ts->async_exc, 4, "thread async_exc");
        fn(arg, ts->context, 4, "thread context");
        fn(arg, ts->c_profileobj, 4, "thread profile function");
        fn(arg, ts->c_traceobj, 4, "thread trace function");
#if PY_VERSION_HEX >= 0x030C0000
        fn(arg, ts->current_exception, 4, "thread current exception");
#else
        fn(arg, ts->curexc_value, 4, "thread current exception");
        fn(arg, ts->curexc_type, 4, "thread current exception");
        fn(arg, ts->curexc_traceback, 4, "thread current exception");
#endif
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
#if PY_VERSION_HEX < 0x030C0000
    if (a->wstr && (!a->state.ready || (const void *)a->wstr != data))
        size +=
            ((a->state.compact && a->state.ascii ? (size_t)a->length
                                                 : (size_t)c->wstr_length) +
             1) *
            sizeof(wchar_t);
#endif
    if (!(a->state.compact && a->state.ascii) && c->utf8 &&
        (const void *)c->utf8 != data)
        size += (size_t)c->utf8_length + 1;
    return size;
}

size_t
mh_hw_int_sizeof(PyObject *op)
{
#if PY_VERSION_HEX >= 0x030C0000
    size_t n = (size_t)(((PyLongObject *)op)->long_value.lv_tag >>
                        _PyLong_NON_SIZE_BITS);
    return offsetof(PyLongObject, long_value.ob_digit) +
           (n ? n : 1) * sizeof(digit);
#else
    /* 3.11 counts the digit zero has too. */
    Py_ssize_t n = Py_SIZE(op);
    n = n < 0 ? -n : n;
    return offsetof(PyLongObject, ob_digit) +
           (size_t)(n ? n : 1) * sizeof(digit);
#endif
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
        res += (size_t)(k->dk_nentries + k->dk_usable) * sizeof(PyObject *);
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
 * sized by their code; their ob_size field is not a size (reading it
 * gave sizes around 10^15). As CPython's gen_sizeof/frame_sizeof. */
static int
frame_holder_sizeof(PyObject *op, size_t *res)
{
    PyCodeObject *code;
    size_t base;
    if (PyGen_Check(op) || PyCoro_CheckExact(op) ||
        PyAsyncGen_CheckExact(op)) {
#if PY_VERSION_HEX >= 0x030C0000
        code = ((_PyInterpreterFrame *)((PyGenObject *)op)->gi_iframe)->f_code;
#else
        code = ((PyGenObject *)op)->gi_code;
#endif
        base = offsetof(PyGenObject, gi_iframe);
    } else if (PyFrame_Check(op)) {
        code = ((PyFrameObject *)op)->f_frame->f_code;
        base = offsetof(PyFrameObject, _f_frame_data);
    } else {
        return 0;
    }
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
    return res;
}

/* Entries of a split or shared keys table with their values. */
static void
split_each(PyDictKeysObject *k, PyObject **values, mh_hw_kv_fn fn, void *arg)
{
    PyDictUnicodeEntry *e = DK_UNICODE_ENTRIES(k);
    for (Py_ssize_t i = 0; i < k->dk_nentries; i++)
        if (e[i].me_key && values[i])
            fn(arg, e[i].me_key, values[i], 0);
}

void
mh_hw_dict_each(PyObject *dict, mh_hw_kv_fn fn, void *arg)
{
    PyDictObject *mp = (PyDictObject *)dict;
    PyDictKeysObject *k = mp->ma_keys;
    if (!k)
        return;
    if (mp->ma_values) {
        split_each(k, mp->ma_values->values, fn, arg);
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
    PyDictValues *values;
#if PY_VERSION_HEX >= 0x030C0000
    PyDictOrValues dorv = *_PyObject_DictOrValuesPointer(op);
    if (!_PyDictOrValues_IsValues(dorv))
        return _PyDictOrValues_GetDict(dorv);
    values = _PyDictOrValues_GetValues(dorv);
#else
    PyObject *dict = *_PyObject_ManagedDictPointer(op);
    if (dict)
        return dict;
    values = *_PyObject_ValuesPointer(op);
#endif
    PyDictKeysObject *k = ((PyHeapTypeObject *)tp)->ht_cached_keys;
    if (values && k)
        split_each(k, values->values, fn, arg);
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
#if PY_VERSION_HEX >= 0x030C0000
    if (co->_co_cached) {
        fn(arg, co->_co_cached->_co_code, 6, "co_code");
        fn(arg, co->_co_cached->_co_varnames, 6, "co_varnames");
        fn(arg, co->_co_cached->_co_cellvars, 6, "co_cellvars");
        fn(arg, co->_co_cached->_co_freevars, 6, "co_freevars");
    }
#else
    fn(arg, co->_co_code, 6, "co_code");
#endif
}

#if PY_VERSION_HEX >= 0x030C0000
/* Static builtin types keep their dict and subclasses in the interpreter
 * and their index there, plus one, in tp_subclasses. */
static static_builtin_state *
static_state(PyTypeObject *tp)
{
    if (!(tp->tp_flags & _Py_TPFLAGS_STATIC_BUILTIN))
        return NULL;
    size_t i = (size_t)tp->tp_subclasses - 1;
    PyInterpreterState *interp = PyInterpreterState_Get();
    if (i >= _Py_MAX_STATIC_BUILTIN_TYPES ||
        interp->types.builtins[i].type != tp)
        return NULL;
    return &interp->types.builtins[i];
}
#endif

PyObject *
mh_hw_type_dict(PyTypeObject *tp)
{
#if PY_VERSION_HEX >= 0x030C0000
    if (tp->tp_flags & _Py_TPFLAGS_STATIC_BUILTIN) {
        static_builtin_state *st = static_state(tp);
        return st ? st->tp_dict : NULL;
    }
#endif
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
#if PY_VERSION_HEX >= 0x030C0000
    if (tp->tp_flags & _Py_TPFLAGS_STATIC_BUILTIN) {
        static_builtin_state *st = static_state(tp);
        if (st)
            fn(arg, st->tp_subclasses, 6, "tp_subclasses");
    } else {
        fn(arg, (PyObject *)tp->tp_subclasses, 6, "tp_subclasses");
    }
#else
    fn(arg, tp->tp_subclasses, 6, "tp_subclasses");
#endif
    if (tp->tp_flags & Py_TPFLAGS_HEAPTYPE) {
        PyHeapTypeObject *ht = (PyHeapTypeObject *)tp;
        fn(arg, ht->ht_name, 6, "__name__");
        fn(arg, ht->ht_qualname, 6, "__qualname__");
        fn(arg, ht->ht_slots, 6, "__slots__");
        fn(arg, ht->ht_module, 6, "ht_module");
    }
}

#endif
