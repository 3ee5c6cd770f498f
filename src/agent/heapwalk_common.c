/* What the per-version heap walkers share. The first part serves every
 * version: the GC lists, the roots all versions have, dict key tables
 * read through the version's mh_hw_keys view, sizes and type references.
 * The last part is what 3.11-3.13 share (_PyInterpreterFrame, one
 * localsplus array, keys tables of general or unicode entries). Layouts
 * that differ stay in heapwalk_py*.c, behind the primitives listed in
 * heapwalk_impl.h; where one field comes or goes inside code that is
 * otherwise the same (str's wstr until 3.11, 3.12's interp->imports and
 * code cache), an #if here says so. */
#include "heapwalk_impl.h"

#include <string.h>

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

Py_ssize_t
mh_hw_var_items(PyObject *op)
{
#if PY_VERSION_HEX >= 0x030C0000
    if (PyLong_Check(op)) /* ob_size is lv_tag: digits, sign, flags */
        return (Py_ssize_t)(((PyLongObject *)op)->long_value.lv_tag >>
                            _PyLong_NON_SIZE_BITS);
#endif
    Py_ssize_t n = Py_SIZE(op);
    return n < 0 ? -n : n;
}

#if PY_VERSION_HEX >= 0x030C0000
#define MH_ATEXIT_CB atexit_py_callback
#else
#define MH_ATEXIT_CB atexit_callback
#endif

int
mh_hw_is_immortal(PyObject *op)
{
#if PY_VERSION_HEX >= 0x030B0000
    /* 3.11's static objects (the _Py_ID strings, small ints, one-byte
     * bytes, the empty tuple) live inside _PyRuntime; 3.12 marks them
     * immortal as well. */
    if ((const char *)op >= (const char *)&_PyRuntime &&
        (const char *)op < (const char *)&_PyRuntime + sizeof(_PyRuntime))
        return 1;
#endif
#if PY_VERSION_HEX >= 0x030C0000
    return _Py_IsImmortal(op);
#else
    (void)op;
    return 0;
#endif
}

void
mh_hw_interp_roots(PyInterpreterState *interp, mh_hw_field_fn fn, void *arg)
{
    mh_hw_interp_own_roots(interp, fn, arg);
#if PY_VERSION_HEX >= 0x030A0000
    /* The compiler's AST node types and their singletons (ast.Load()...),
     * made at start-up whether or not `ast` is ever imported: every field
     * from AST_type on is an object, NULL until then. (3.9 keeps them in
     * a static of Python-ast.c, out of reach.) */
    PyObject **ast = &interp->ast.AST_type;
    PyObject **ast_end =
        (PyObject **)((char *)&interp->ast + sizeof(interp->ast));
    for (; ast < ast_end; ast++)
        fn(arg, *ast, 5, "<ast state>");
#endif
#if PY_VERSION_HEX >= 0x030A0000
    /* atexit.register()'s callbacks, in a C array of the interpreter. */
    for (int i = 0; i < interp->atexit.ncallbacks; i++) {
        const MH_ATEXIT_CB *cb = interp->atexit.callbacks[i];
        if (!cb)
            continue;
        fn(arg, cb->func, 5, "<atexit callback>");
        fn(arg, cb->args, 5, "<atexit callback>");
        fn(arg, cb->kwargs, 5, "<atexit callback>");
    }
#endif
#if PY_VERSION_HEX >= 0x030C0000
    {
        struct _Py_interp_cached_objects *c = &interp->cached_objects;
        fn(arg, c->interned_strings, 5, "<interned>");
        fn(arg, c->str_replace_inf, 5, "<cached objects>");
        fn(arg, c->objreduce, 5, "<cached objects>");
        fn(arg, c->type_slots_pname, 5, "<cached objects>");
        fn(arg, (PyObject *)c->generic_type, 5, "typing.Generic");
        fn(arg, (PyObject *)c->typevar_type, 5, "typing.TypeVar");
        fn(arg, (PyObject *)c->typevartuple_type, 5, "typing.TypeVarTuple");
        fn(arg, (PyObject *)c->paramspec_type, 5, "typing.ParamSpec");
        fn(arg, (PyObject *)c->paramspecargs_type, 5, "typing.ParamSpecArgs");
        fn(arg, (PyObject *)c->paramspeckwargs_type, 5,
           "typing.ParamSpecKwargs");
    }
#endif
    fn(arg, Py_None, 5, "None");
    fn(arg, Py_True, 5, "True");
    fn(arg, Py_False, 5, "False");
    fn(arg, Py_Ellipsis, 5, "Ellipsis");
    fn(arg, Py_NotImplemented, 5, "NotImplemented");
    fn(arg, interp->dict, 4, "interpreter dict");
    fn(arg, interp->builtins_copy, 4, "interpreter builtins_copy");
    fn(arg, interp->before_forkers, 4, "interpreter before_forkers");
    fn(arg, interp->after_forkers_parent, 4,
       "interpreter after_forkers_parent");
    fn(arg, interp->after_forkers_child, 4, "interpreter after_forkers_child");
    fn(arg, interp->audit_hooks, 4, "interpreter audit_hooks");
    fn(arg, interp->gc.garbage, 4, "gc.garbage");
    fn(arg, interp->gc.callbacks, 4, "gc.callbacks");
    for (PyThreadState *ts = mh_hw_threads_head(interp); ts; ts = ts->next) {
        fn(arg, ts->dict, 4, "thread dict");
        fn(arg, ts->async_exc, 4, "thread async_exc");
        fn(arg, ts->context, 4, "thread context");
        fn(arg, ts->c_profileobj, 4, "thread profile function");
        fn(arg, ts->c_traceobj, 4, "thread trace function");
        mh_hw_thread_exc_roots(ts, fn, arg);
        fn(arg, ts->async_gen_firstiter, 4, "thread async_gen_firstiter");
        fn(arg, ts->async_gen_finalizer, 4, "thread async_gen_finalizer");
        for (_PyErr_StackItem *e = ts->exc_info; e; e = e->previous_item)
            mh_hw_handled_exc_roots(e, fn, arg);
    }
}

/* ---- dict key tables ---- */

static PyObject **
entry_at(const struct mh_hw_keys *v, Py_ssize_t i)
{
    return (PyObject **)(v->first + (size_t)i * v->stride);
}

void
mh_hw_keys_each(PyDictKeysObject *k, PyObject **values, Py_ssize_t cap,
                mh_hw_kv_fn fn, void *arg)
{
    struct mh_hw_keys v;
    mh_hw_keys_get(k, &v);
    for (Py_ssize_t i = 0; i < v.nentries; i++) {
        PyObject **e = entry_at(&v, i); /* e[0] the key, e[1] the value */
        if (!e[0])
            continue;
        if (values) {
            if (i >= cap)
                break;
            if (values[i])
                fn(arg, e[0], values[i], 0);
        } else if (e[1]) {
            fn(arg, e[0], e[1], 1);
        }
    }
}

void
mh_hw_dict_each(PyObject *dict, mh_hw_kv_fn fn, void *arg)
{
    PyDictObject *mp = (PyDictObject *)dict;
    if (!mp->ma_keys)
        return;
    Py_ssize_t cap = 0;
    PyObject **values = mh_hw_split_values(mp, &cap);
    mh_hw_keys_each(mp->ma_keys, values, cap, fn, arg);
}

void
mh_hw_cached_keys_each(PyTypeObject *tp, mh_hw_kv_fn fn, void *arg)
{
    if (!(tp->tp_flags & Py_TPFLAGS_HEAPTYPE))
        return;
    PyDictKeysObject *k = ((PyHeapTypeObject *)tp)->ht_cached_keys;
    if (!k)
        return;
    struct mh_hw_keys v;
    mh_hw_keys_get(k, &v);
    for (Py_ssize_t i = 0; i < v.nentries; i++) {
        PyObject *key = entry_at(&v, i)[0];
        if (key)
            fn(arg, key, NULL, 1);
    }
}

/* ---- sizes ---- */

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
    /* The legacy wchar_t copy, gone in 3.12 (PEP 623). */
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
mh_hw_dict_sizeof(PyObject *op)
{
    PyDictObject *mp = (PyDictObject *)op;
    struct mh_hw_keys v;
    mh_hw_keys_get(mp->ma_keys, &v);
    size_t res = (size_t)Py_TYPE(op)->tp_basicsize;
    if (mp->ma_values)
        res += v.split_slots * sizeof(PyObject *);
    /* A split table's keys are counted in its type. */
    if (v.refcnt == 1)
        res += v.size;
    return res;
}

size_t
mh_hw_type_sizeof(PyTypeObject *tp)
{
    if (!(tp->tp_flags & Py_TPFLAGS_HEAPTYPE))
        return sizeof(PyTypeObject);
    PyDictKeysObject *k = ((PyHeapTypeObject *)tp)->ht_cached_keys;
    size_t size = sizeof(PyHeapTypeObject);
    if (k) {
        struct mh_hw_keys v;
        mh_hw_keys_get(k, &v);
        size += v.size;
    }
    return size;
}

size_t
mh_hw_object_sizeof(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    size_t res = (size_t)tp->tp_basicsize;
    if (mh_hw_frame_holder_sizeof(op, &res))
        return res;
    if (tp->tp_itemsize > 0 && Py_SIZE(op) > 0)
        res += (size_t)Py_SIZE(op) * (size_t)tp->tp_itemsize;
    /* 3.13's sys.getsizeof leaves an instance's inline values out. */
    return res;
}

/* ---- references ---- */

PyObject *
mh_hw_type_dict(PyTypeObject *tp)
{
    PyObject *dict, *subclasses;
    if (mh_hw_static_builtin(tp, &dict, &subclasses))
        return dict;
    return tp->tp_dict;
}

void
mh_hw_type_refs(PyTypeObject *tp, mh_hw_field_fn fn, void *arg)
{
    PyObject *dict, *subclasses;
    if (!mh_hw_static_builtin(tp, &dict, &subclasses)) {
        dict = tp->tp_dict;
        subclasses = (PyObject *)tp->tp_subclasses; /* void * from 3.12 */
    }
    fn(arg, dict, 6, "__dict__");
    fn(arg, tp->tp_mro, 1, "__mro__");
    fn(arg, tp->tp_bases, 1, "__bases__");
    fn(arg, (PyObject *)tp->tp_base, 1, "__base__");
    fn(arg, tp->tp_cache, 6, "tp_cache");
    fn(arg, subclasses, 6, "tp_subclasses");
    if (tp->tp_flags & Py_TPFLAGS_HEAPTYPE) {
        PyHeapTypeObject *ht = (PyHeapTypeObject *)tp;
        fn(arg, ht->ht_name, 1, "__name__");
        fn(arg, ht->ht_qualname, 1, "__qualname__");
        fn(arg, ht->ht_slots, 6, "__slots__");
        fn(arg, ht->ht_module, 6, "ht_module");
    }
}

void
mh_hw_function_refs(PyObject *op, mh_hw_field_fn fn, void *arg)
{
    PyFunctionObject *f = (PyFunctionObject *)op;
    fn(arg, f->func_code, 1, "__code__");
    fn(arg, f->func_globals, 1, "__globals__");
#if PY_VERSION_HEX >= 0x030A0000
    fn(arg, f->func_builtins, 1, "__builtins__");
#endif
    fn(arg, f->func_closure, 1, "__closure__");
    fn(arg, f->func_defaults, 1, "__defaults__");
    fn(arg, f->func_kwdefaults, 1, "__kwdefaults__");
    fn(arg, f->func_dict, 6, "__dict__");
    fn(arg, f->func_name, 1, "__name__");
    fn(arg, f->func_qualname, 1, "__qualname__");
    fn(arg, f->func_module, 1, "__module__");
    fn(arg, f->func_doc, 1, "__doc__");
    fn(arg, f->func_annotations, 1, "__annotations__");
#if PY_VERSION_HEX >= 0x030C0000
    fn(arg, f->func_typeparams, 1, "__type_params__");
#endif
}

/* classmethod and staticmethod (Objects/funcobject.c): the callable,
 * then the instance dict, in 3.9 to 3.13. */
struct hw_classmethod {
    PyObject ob_base;
    PyObject *callable;
    PyObject *dict;
};

PyObject *
mh_hw_classmethod_func(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    if ((tp != &PyClassMethod_Type && tp != &PyStaticMethod_Type) ||
        (size_t)tp->tp_basicsize != sizeof(struct hw_classmethod))
        return NULL;
    return ((struct hw_classmethod *)op)->callable;
}

/* functools.partial (Modules/_functoolsmodule.c): func, args,
 * keywords, then the instance dict, in 3.9 to 3.13. */
struct hw_partial {
    PyObject ob_base;
    PyObject *fn;
    PyObject *args;
    PyObject *kw;
    PyObject *dict;
};

int
mh_hw_partial_refs(PyObject *op, mh_hw_field_fn fn, void *arg)
{
    PyTypeObject *tp = Py_TYPE(op);
    while (tp && !(tp->tp_name && !strcmp(tp->tp_name, "functools.partial")))
        tp = tp->tp_base;
    if (!tp || (size_t)tp->tp_basicsize < sizeof(struct hw_partial))
        return 0;
    struct hw_partial *p = (struct hw_partial *)op;
    fn(arg, p->fn, 1, "func");
    fn(arg, p->args, 1, "args");
    fn(arg, p->kw, 1, "keywords");
    return 1;
}

/* functools._lru_cache_wrapper (Modules/_functoolsmodule.c): a list
 * element for the root of the bounded cache's list (a PyObject_HEAD,
 * prev, next, hash, key, result), the wrapper function, `typed`, then
 * the cache dict, the hit count and the wrapped function. 3.9 to 3.13
 * keep these first fields in this order (3.10 added two type pointers
 * after them: 136 bytes in all on 3.9, 152 from 3.10), which the type's
 * size checks. */
struct hw_lru_elem {
    PyObject ob_base;
    struct hw_lru_elem *prev, *next;
    Py_hash_t hash;
    PyObject *key, *result;
};

struct hw_lru_cache {
    struct hw_lru_elem root;
    void *wrapper;
    int typed;
    PyObject *cache;
    Py_ssize_t hits;
    PyObject *func;
};

#define LRU_LINKS_MAX 4096 /* list elements named; more go unnamed */

int
mh_hw_lru_cache_refs(PyObject *op, mh_hw_field_fn fn, void *arg)
{
    PyTypeObject *tp = Py_TYPE(op);
    size_t size = PY_VERSION_HEX >= 0x030A0000 ? 152 : 136;
    if (!tp->tp_name || strcmp(tp->tp_name, "functools._lru_cache_wrapper") ||
        (size_t)tp->tp_basicsize != size)
        return 0;
    struct hw_lru_cache *c = (struct hw_lru_cache *)op;
    if (c->cache && PyDict_Check(c->cache))
        fn(arg, c->cache, 1, "<lru_cache>");
    fn(arg, c->func, 1, "__wrapped__");
    /* A bounded cache's dict maps keys to list elements, which
     * lru_cache_tp_traverse passes over: it visits their keys and
     * results itself. (An unbounded one's list stays empty.) */
    int n = 0;
    for (struct hw_lru_elem *e = c->root.next;
         e && e != &c->root && n < LRU_LINKS_MAX; e = e->next, n++) {
        fn(arg, e->key, 1, "<lru_cache key>");
        fn(arg, e->result, 1, "<lru_cache value>");
    }
    return 1;
}

/* ---- what 3.11+ share: _PyInterpreterFrame, one localsplus array,
 * keys tables of general or unicode entries, a pre-header ---- */

#if PY_VERSION_HEX >= 0x030B0000

#define USABLE_FRACTION(n) (((n) << 1) / 3)

_Static_assert(offsetof(PyDictKeyEntry, me_value) ==
                   offsetof(PyDictKeyEntry, me_key) + sizeof(PyObject *),
               "a dict entry's value follows its key");
_Static_assert(offsetof(PyDictUnicodeEntry, me_value) ==
                   offsetof(PyDictUnicodeEntry, me_key) + sizeof(PyObject *),
               "a dict entry's value follows its key");

void
mh_hw_keys_get(PyDictKeysObject *k, struct mh_hw_keys *out)
{
    int general = k->dk_kind == DICT_KEYS_GENERAL;
    out->first = general ? (char *)&DK_ENTRIES(k)->me_key
                         : (char *)&DK_UNICODE_ENTRIES(k)->me_key;
    out->stride =
        general ? sizeof(PyDictKeyEntry) : sizeof(PyDictUnicodeEntry);
    out->nentries = k->dk_nentries;
    out->refcnt = k->dk_refcnt;
    out->size = sizeof(PyDictKeysObject) +
                ((size_t)1 << k->dk_log2_index_bytes) +
                (size_t)USABLE_FRACTION(DK_SIZE(k)) * out->stride;
    /* 3.13's shared_keys_usable_size(), whose atomic loads a forked
     * walker does not need. */
    out->split_slots = (size_t)(k->dk_nentries + k->dk_usable);
}

PyThreadState *
mh_hw_threads_head(PyInterpreterState *interp)
{
    return interp->threads.head;
}

void
mh_hw_import_roots(PyInterpreterState *interp, mh_hw_field_fn fn, void *arg)
{
#if PY_VERSION_HEX >= 0x030C0000
    fn(arg, interp->imports.modules, 0, "sys.modules");
    fn(arg, interp->imports.modules_by_index, 4,
       "interpreter modules_by_index");
    fn(arg, interp->imports.importlib, 4, "interpreter importlib");
    fn(arg, interp->imports.import_func, 4, "interpreter import_func");
    fn(arg, interp->sysdict_copy, 4, "interpreter sysdict_copy");
#else
    fn(arg, interp->modules, 0, "sys.modules");
    fn(arg, interp->modules_by_index, 4, "interpreter modules_by_index");
    fn(arg, interp->importlib, 4, "interpreter importlib");
    fn(arg, interp->import_func, 4, "interpreter import_func");
#endif
}

size_t
mh_hw_preheader(PyTypeObject *tp)
{
    return _PyType_PreHeaderSize(tp);
}

int
mh_hw_has_managed_dict(PyTypeObject *tp)
{
    return (tp->tp_flags & Py_TPFLAGS_MANAGED_DICT) != 0;
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

int
mh_hw_frame_holder_sizeof(PyObject *op, size_t *res)
{
    _PyInterpreterFrame *f;
    size_t base;
    if (PyGen_Check(op) || PyCoro_CheckExact(op) ||
        PyAsyncGen_CheckExact(op)) {
        f = (_PyInterpreterFrame *)((PyGenObject *)op)->gi_iframe;
        base = offsetof(PyGenObject, gi_iframe);
    } else if (PyFrame_Check(op)) {
        f = ((PyFrameObject *)op)->f_frame;
        base = offsetof(PyFrameObject, _f_frame_data);
    } else {
        return 0;
    }
    /* A finished generator's frame still names its code (3.11's gi_code
     * is the same object). As CPython's gen_sizeof/frame_sizeof; reading
     * ob_size gave sizes around 10^15. */
    PyCodeObject *code = mh_hw_iframe_code(f);
    if (!code)
        return 0;
    *res = base + offsetof(_PyInterpreterFrame, localsplus) +
           (size_t)(code->co_nlocalsplus + code->co_stacksize) *
               sizeof(PyObject *);
    return 1;
}

/* The slots of interpreter frame f running co; its value stack only
 * when `top_saved` says its stacktop may be read. */
static void
iframe_slots(_PyInterpreterFrame *f, PyCodeObject *co, int top_saved,
             struct mh_hw_frame *hf)
{
    int n = co->co_nlocalsplus;
    *hf = (struct mh_hw_frame){
        .code = co,
        .localsplus = f->localsplus,
        .nlocals = n,
        .stack = f->localsplus + n,
    };
    if (top_saved && f->stacktop >= n && f->stacktop <= n + co->co_stacksize)
        hf->nstack = f->stacktop - n;
}

void
mh_hw_iframe_report(PyThreadState *ts, _PyInterpreterFrame *f,
                    PyCodeObject *co, int top_saved, mh_hw_frame_fn fn,
                    void *arg)
{
    struct mh_hw_frame hf;
    iframe_slots(f, co, top_saved, &hf);
    hf.line = PyCode_Addr2Line(co, _PyInterpreterFrame_LASTI(f) *
                                       (int)sizeof(_Py_CODEUNIT));
    fn(arg, ts, &hf);
}

/* The fields and slots of interpreter frame f, which the object being
 * named owns. */
static void
iframe_held(_PyInterpreterFrame *f, struct mh_hw_held *out)
{
#if PY_VERSION_HEX >= 0x030C0000
    out->func = f->f_funcobj;
#else
    out->func = (PyObject *)f->f_func;
#endif
#if PY_VERSION_HEX >= 0x030D0000
    out->code = f->f_executable;
#else
    out->code = (PyObject *)f->f_code;
#endif
    out->globals = f->f_globals;
    out->builtins = f->f_builtins;
    out->locals = f->f_locals;
    PyCodeObject *co = mh_hw_iframe_code(f);
    /* Not running: its stack top is saved. */
    if (co)
        iframe_slots(f, co, 1, &out->slots);
}

int
mh_hw_held_frame(PyObject *op, struct mh_hw_held *out)
{
    memset(out, 0, sizeof(*out));
    if (PyFrame_Check(op)) {
        PyFrameObject *fo = (PyFrameObject *)op;
        out->is_frame = 1;
        out->back = (PyObject *)fo->f_back;
        /* A frame still running (on a thread or in a generator) is its
         * owner's to report. */
        if (fo->f_frame && fo->f_frame->owner == FRAME_OWNED_BY_FRAME_OBJECT)
            iframe_held(fo->f_frame, out);
        return 1;
    }
    if (PyGen_Check(op) || PyCoro_CheckExact(op) ||
        PyAsyncGen_CheckExact(op)) {
        /* The generator embeds its frame; gen_traverse visits it until
         * the frame is cleared. */
        PyGenObject *g = (PyGenObject *)op;
        out->name = g->gi_name;
        out->qualname = g->gi_qualname;
        if (g->gi_frame_state < FRAME_CLEARED) {
            _PyInterpreterFrame *f = (_PyInterpreterFrame *)g->gi_iframe;
            iframe_held(f, out);
            out->frame = (PyObject *)f->frame_obj;
        }
        return 1;
    }
    return 0;
}

enum mh_hw_slot_kind
mh_hw_local_kind(PyCodeObject *co, int i)
{
    if (i < 0 || i >= PyBytes_GET_SIZE(co->co_localspluskinds))
        return MH_HW_LOCAL;
    unsigned char k =
        (unsigned char)PyBytes_AS_STRING(co->co_localspluskinds)[i];
    return k & CO_FAST_FREE   ? MH_HW_FREE
           : k & CO_FAST_CELL ? MH_HW_CELL
                              : MH_HW_LOCAL;
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
mh_hw_code_refs(PyCodeObject *co, mh_hw_field_fn fn, void *arg)
{
    fn(arg, co->co_consts, 1, "co_consts");
    fn(arg, co->co_names, 1, "co_names");
    fn(arg, co->co_exceptiontable, 1, "co_exceptiontable");
    fn(arg, co->co_localsplusnames, 6, "co_localsplusnames");
    fn(arg, co->co_localspluskinds, 6, "co_localspluskinds");
    fn(arg, co->co_filename, 1, "co_filename");
    fn(arg, co->co_name, 1, "co_name");
    fn(arg, co->co_qualname, 1, "co_qualname");
    fn(arg, co->co_linetable, 1, "co_linetable");
#if PY_VERSION_HEX >= 0x030C0000
    if (co->_co_cached) {
        fn(arg, co->_co_cached->_co_code, 1, "co_code");
        fn(arg, co->_co_cached->_co_varnames, 1, "co_varnames");
        fn(arg, co->_co_cached->_co_cellvars, 1, "co_cellvars");
        fn(arg, co->_co_cached->_co_freevars, 1, "co_freevars");
    }
#else
    fn(arg, co->_co_code, 1, "co_code");
#endif
}

#endif
