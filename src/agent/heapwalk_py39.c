/* The heap walker's layouts for CPython 3.9 and 3.10: frames are
 * PyFrameObjects, dicts keep their key tables in a struct that the
 * installed headers do not describe, instances keep a __dict__ at
 * tp_dictoffset (no inline values). */
#include "heapwalk_impl.h"

#include <string.h>

#if PY_VERSION_HEX < 0x030B0000

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

_Static_assert(offsetof(struct hw_entry, me_value) ==
                   offsetof(struct hw_entry, me_key) + sizeof(PyObject *),
               "a dict entry's value follows its key");

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

#define USABLE_FRACTION(n) (((n) << 1) / 3)

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

/* The slots of frame f: its locals, cells and free variables, and its
 * value stack. */
static void
frame_slots(PyFrameObject *f, struct mh_hw_frame *hf)
{
    PyCodeObject *co = f->f_code;
    *hf = (struct mh_hw_frame){
        .code = co,
        .localsplus = f->f_localsplus,
        .nlocals = co->co_nlocals + (int)PyTuple_GET_SIZE(co->co_cellvars) +
                   (int)PyTuple_GET_SIZE(co->co_freevars),
        .stack = f->f_valuestack,
    };
    /* The value stack's depth is kept only while the frame is not
     * running (its top lives in the eval loop's registers). */
#if PY_VERSION_HEX >= 0x030A0000
    hf->nstack = f->f_stackdepth > 0 ? f->f_stackdepth : 0;
#else
    hf->nstack = f->f_stacktop ? (int)(f->f_stacktop - f->f_valuestack) : 0;
#endif
}

void
mh_hw_threads_each(PyInterpreterState *interp, mh_hw_frame_fn fn, void *arg)
{
    for (PyThreadState *ts = interp->tstate_head; ts; ts = ts->next) {
        for (PyFrameObject *f = ts->frame; f; f = f->f_back) {
            struct mh_hw_frame hf;
            frame_slots(f, &hf);
            hf.line = PyFrame_GetLineNumber(f);
            fn(arg, ts, &hf);
        }
    }
}

int
mh_hw_held_frame(PyObject *op, struct mh_hw_held *out)
{
    memset(out, 0, sizeof(*out));
    if (PyFrame_Check(op)) {
        PyFrameObject *f = (PyFrameObject *)op;
        out->is_frame = 1;
        out->back = (PyObject *)f->f_back;
        out->code = (PyObject *)f->f_code;
        out->globals = f->f_globals;
        out->builtins = f->f_builtins;
        out->locals = f->f_locals;
        if (f->f_code)
            frame_slots(f, &out->slots);
        return 1;
    }
    if (PyGen_Check(op) || PyCoro_CheckExact(op) ||
        PyAsyncGen_CheckExact(op)) {
        /* Its frame is a frame object, which holds the locals. */
        PyGenObject *g = (PyGenObject *)op;
        out->frame = (PyObject *)g->gi_frame;
        out->code = g->gi_code;
        out->name = g->gi_name;
        out->qualname = g->gi_qualname;
        return 1;
    }
    return 0;
}

enum mh_hw_slot_kind
mh_hw_local_kind(PyCodeObject *co, int i)
{
    if (i < co->co_nlocals)
        return MH_HW_LOCAL;
    return i - co->co_nlocals < PyTuple_GET_SIZE(co->co_cellvars) ? MH_HW_CELL
                                                                  : MH_HW_FREE;
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
mh_hw_interp_own_roots(PyInterpreterState *interp, mh_hw_field_fn fn,
                       void *arg)
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
}

void
mh_hw_thread_exc_roots(PyThreadState *ts, mh_hw_field_fn fn, void *arg)
{
    fn(arg, ts->curexc_value, 4, "thread current exception");
    fn(arg, ts->curexc_type, 4, "thread current exception");
    fn(arg, ts->curexc_traceback, 4, "thread current exception");
}

void
mh_hw_handled_exc_roots(_PyErr_StackItem *e, mh_hw_field_fn fn, void *arg)
{
    fn(arg, e->exc_value, 4, "thread handled exception");
    fn(arg, e->exc_type, 4, "thread handled exception");
    fn(arg, e->exc_traceback, 4, "thread handled exception");
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
mh_hw_int_sizeof(PyObject *op)
{
    Py_ssize_t n = Py_SIZE(op);
    return offsetof(PyLongObject, ob_digit) +
           (size_t)(n < 0 ? -n : n) * sizeof(digit);
}

void
mh_hw_keys_get(PyDictKeysObject *dk, struct mh_hw_keys *out)
{
    struct hw_keys *k = (struct hw_keys *)dk;
    size_t ixsize = keys_ixsize(k);
    size_t usable = (size_t)USABLE_FRACTION(k->dk_size);
    struct hw_entry *e =
        (struct hw_entry *)(k->dk_indices + ixsize * (size_t)k->dk_size);
    out->first = (char *)&e->me_key;
    out->stride = sizeof(struct hw_entry);
    out->nentries = k->dk_nentries;
    out->refcnt = k->dk_refcnt;
    out->size = sizeof(struct hw_keys) + ixsize * (size_t)k->dk_size +
                sizeof(struct hw_entry) * usable;
    out->split_slots = usable;
}

PyObject **
mh_hw_split_values(PyDictObject *mp, Py_ssize_t *cap)
{
    *cap = PY_SSIZE_T_MAX;
    return mp->ma_values;
}

int
mh_hw_static_builtin(PyTypeObject *tp, PyObject **dict, PyObject **subclasses)
{
    (void)tp;
    (void)dict;
    (void)subclasses;
    return 0;
}

int
mh_hw_frame_holder_sizeof(PyObject *op, size_t *res)
{
    /* basicsize + itemsize * ob_size is right for them here. */
    (void)op;
    (void)res;
    return 0;
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
mh_hw_code_refs(PyCodeObject *co, mh_hw_field_fn fn, void *arg)
{
    fn(arg, co->co_code, 1, "co_code");
    fn(arg, co->co_consts, 1, "co_consts");
    fn(arg, co->co_names, 1, "co_names");
    fn(arg, co->co_varnames, 1, "co_varnames");
    fn(arg, co->co_freevars, 1, "co_freevars");
    fn(arg, co->co_cellvars, 1, "co_cellvars");
    fn(arg, co->co_filename, 1, "co_filename");
    fn(arg, co->co_name, 1, "co_name");
#if PY_VERSION_HEX >= 0x030A0000
    fn(arg, co->co_linetable, 1, "co_linetable");
#else
    fn(arg, co->co_lnotab, 1, "co_lnotab");
#endif
}

#endif
