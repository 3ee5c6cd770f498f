/* The heap walker's layouts for CPython 3.11 and 3.12: _PyInterpreterFrame
 * reached through the thread's _PyCFrame, dict keys tables of general or
 * unicode entries, and instances whose attributes live in a values array
 * named by their type's shared keys until something asks for __dict__
 * (3.11: two words before the GC header; 3.12: one tagged word). */
#include "heapwalk_impl.h"

#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030D0000

PyObject *
mh_hw_interp_modules(PyInterpreterState *interp)
{
#if PY_VERSION_HEX >= 0x030C0000
    return interp->imports.modules;
#else
    return interp->modules;
#endif
}

PyCodeObject *
mh_hw_iframe_code(_PyInterpreterFrame *f)
{
    return f->f_code;
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
            /* The stack top is saved only when the frame calls another
             * Python frame directly (3.12 marks a running frame's as -1;
             * 3.11 leaves a stale one, so trust it only under such a
             * call). */
            int top_saved = 1;
#if PY_VERSION_HEX < 0x030C0000
            top_saved = inner && !inner->is_entry;
#else
            (void)inner;
#endif
            mh_hw_iframe_report(ts, f, f->f_code, top_saved, fn, arg);
        }
    }
}

void
mh_hw_interp_own_roots(PyInterpreterState *interp, mh_hw_field_fn fn,
                       void *arg)
{
    mh_hw_import_roots(interp, fn, arg);
#if PY_VERSION_HEX >= 0x030C0000
    for (size_t i = 0; i < interp->types.num_builtins_initialized &&
                       i < _Py_MAX_STATIC_BUILTIN_TYPES;
         i++) {
        fn(arg, interp->types.builtins[i].tp_dict, 4, "static type dict");
        fn(arg, interp->types.builtins[i].tp_subclasses, 4,
           "static type subclasses");
    }
#endif
    fn(arg, interp->sysdict, 1, "sys");
    fn(arg, interp->builtins, 2, "builtins");
    fn(arg, interp->codec_search_path, 4, "codec search path");
    fn(arg, interp->codec_search_cache, 4, "codec search cache");
    fn(arg, interp->codec_error_registry, 4, "codec error registry");
}

void
mh_hw_thread_exc_roots(PyThreadState *ts, mh_hw_field_fn fn, void *arg)
{
#if PY_VERSION_HEX >= 0x030C0000
    fn(arg, ts->current_exception, 4, "thread current exception");
#else
    fn(arg, ts->curexc_value, 4, "thread current exception");
    fn(arg, ts->curexc_type, 4, "thread current exception");
    fn(arg, ts->curexc_traceback, 4, "thread current exception");
#endif
}

void
mh_hw_handled_exc_roots(_PyErr_StackItem *e, mh_hw_field_fn fn, void *arg)
{
    fn(arg, e->exc_value, 4, "thread handled exception");
}

size_t
mh_hw_getsizeof_extra(PyObject *op)
{
    return _PyType_PreHeaderSize(Py_TYPE(op));
}

PyObject **
mh_hw_split_values(PyDictObject *mp, Py_ssize_t *cap)
{
    *cap = PY_SSIZE_T_MAX;
    return mp->ma_values ? mp->ma_values->values : NULL;
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
        mh_hw_keys_each(k, values->values, PY_SSIZE_T_MAX, fn, arg);
    return NULL;
}

int
mh_hw_static_builtin(PyTypeObject *tp, PyObject **dict, PyObject **subclasses)
{
#if PY_VERSION_HEX >= 0x030C0000
    /* 3.12 keeps them in the interpreter, at the index tp_subclasses
     * holds, plus one. */
    if (!(tp->tp_flags & _Py_TPFLAGS_STATIC_BUILTIN))
        return 0;
    size_t i = (size_t)tp->tp_subclasses - 1;
    PyInterpreterState *interp = PyInterpreterState_Get();
    static_builtin_state *st = NULL;
    if (i < _Py_MAX_STATIC_BUILTIN_TYPES &&
        interp->types.builtins[i].type == tp)
        st = &interp->types.builtins[i];
    *dict = st ? st->tp_dict : NULL;
    *subclasses = st ? st->tp_subclasses : NULL;
    return 1;
#else
    (void)tp;
    (void)dict;
    (void)subclasses;
    return 0;
#endif
}

#endif
