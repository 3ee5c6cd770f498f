/* The heap walker's layouts for CPython 3.13: _PyInterpreterFrame hangs
 * off the thread state and names its code through f_executable; instances
 * keep their attribute values inline, right after the object header, with
 * a `valid` flag, and their __dict__ (when one was made) three words
 * before the object; static types keep their dict in the interpreter. */
#include "heapwalk_impl.h"

#if PY_VERSION_HEX >= 0x030D0000

PyObject *
mh_hw_interp_modules(PyInterpreterState *interp)
{
    return interp->imports.modules;
}

PyCodeObject *
mh_hw_iframe_code(_PyInterpreterFrame *f)
{
    PyObject *exe = f->f_executable;
    return exe && PyCode_Check(exe) ? (PyCodeObject *)exe : NULL;
}

void
mh_hw_threads_each(PyInterpreterState *interp, mh_hw_frame_fn fn, void *arg)
{
    for (PyThreadState *ts = interp->threads.head; ts; ts = ts->next) {
        for (_PyInterpreterFrame *f = ts->current_frame; f; f = f->previous) {
            PyCodeObject *co = mh_hw_iframe_code(f);
            if (f->owner == FRAME_OWNED_BY_CSTACK || !co ||
                _PyFrame_IsIncomplete(f))
                continue;
            /* The stack top is saved only when the frame calls another
             * Python frame directly: a running frame's is -1. */
            mh_hw_iframe_report(ts, f, co, 1, fn, arg);
        }
    }
}

void
mh_hw_interp_own_roots(PyInterpreterState *interp, mh_hw_field_fn fn,
                       void *arg)
{
    mh_hw_import_roots(interp, fn, arg);
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
}

void
mh_hw_thread_exc_roots(PyThreadState *ts, mh_hw_field_fn fn, void *arg)
{
    fn(arg, ts->current_exception, 4, "thread current exception");
}

void
mh_hw_handled_exc_roots(_PyErr_StackItem *e, mh_hw_field_fn fn, void *arg)
{
    fn(arg, e->exc_value, 4, "thread handled exception");
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

PyObject **
mh_hw_split_values(PyDictObject *mp, Py_ssize_t *cap)
{
    if (!mp->ma_values)
        return NULL;
    *cap = mp->ma_values->capacity;
    return mp->ma_values->values;
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
        mh_hw_keys_each(k, values->values, values->capacity, fn, arg);
    return NULL;
}

int
mh_hw_static_builtin(PyTypeObject *tp, PyObject **dict, PyObject **subclasses)
{
    /* The interpreter keeps them, at the index tp_subclasses holds, plus
     * one, among the builtin or the extensions' static types. */
    if (!(tp->tp_flags & _Py_TPFLAGS_STATIC_BUILTIN))
        return 0;
    size_t i = (size_t)tp->tp_subclasses - 1;
    PyInterpreterState *interp = PyInterpreterState_Get();
    managed_static_type_state *st = NULL;
    if (i < _Py_MAX_MANAGED_STATIC_BUILTIN_TYPES &&
        interp->types.builtins.initialized[i].type == tp)
        st = &interp->types.builtins.initialized[i];
    else if (i < _Py_MAX_MANAGED_STATIC_EXT_TYPES &&
             interp->types.for_extensions.initialized[i].type == tp)
        st = &interp->types.for_extensions.initialized[i];
    *dict = st ? st->tp_dict : NULL;
    *subclasses = st ? st->tp_subclasses : NULL;
    return 1;
}

#endif
