/* What each object references, and the names of those edges: dict
 * entries by their key's repr, attributes (from __dict__, inline values
 * or __slots__), closure cells by free variable name, a frame's locals,
 * and the fields tp_traverse visits in built-in objects. */
#include "heapdump_impl.h" /* Python.h first, as CPython asks */

#include <string.h>

#include <structmember.h> /* T_OBJECT_EX */

#include "../util/mem.h"

/* ---- edges ---- */

void
mh_hd_discover(struct walk *w, PyObject *op)
{
    int is_new;
    uintptr_t *slot = mh_hd_set_insert(&w->seen, (uintptr_t)op, &is_new);
    if (!slot) {
        fail(w, MH_ENOMEM);
        return;
    }
    if (!is_new && (*slot & SEEN_QUEUED))
        return;
    *slot |= SEEN_QUEUED;
    if (w->nstack == w->capstack) {
        size_t cap = w->capstack ? w->capstack * 2 : 4096;
        PyObject **s = mh_realloc(w->stack, cap * sizeof(*s));
        if (!s) {
            fail(w, MH_ENOMEM);
            return;
        }
        w->stack = s;
        w->capstack = cap;
    }
    w->stack[w->nstack++] = op;
}

/* An array of *cap elements of `size` bytes holding n, with room for
 * one more (doubled from `first` when full): `arr` or its moved copy,
 * or NULL once the walk has failed for memory (`arr` is unchanged). */
static void *
room_for_one(struct walk *w, void *arr, size_t *cap, size_t n, size_t size,
             size_t first)
{
    if (n < *cap)
        return arr;
    size_t ncap = *cap ? *cap * 2 : first;
    void *a = mh_realloc(arr, ncap * size);
    if (!a) {
        fail(w, MH_ENOMEM);
        return NULL;
    }
    *cap = ncap;
    return a;
}

static void
add_edge(struct walk *w, PyObject *target, uint64_t label)
{
    if (!target)
        return;
    mh_hd_discover(w, target);
    if (w->nedges >= EDGES_MAX) {
        w->capped = 1;
        return;
    }
    void *grown = room_for_one(w, w->edges, &w->capedges, w->nedges,
                               sizeof(*w->edges), 1024);
    if (!grown)
        return;
    w->edges = grown;
    w->edges[w->nedges++] = (struct mh_heap_edge){(uintptr_t)target, label};
}

static uint64_t
mklabel(uint64_t name, int kind)
{
    return (name << MH_EDGE_KIND_BITS) | (uint64_t)kind;
}

/* A reference named by a C string, emitted directly. */
static void
field_edge(void *arg, PyObject *target, int kind, const char *name)
{
    struct walk *w = arg;
    if (target)
        add_edge(w, target, mklabel(mh_hd_cstr_id(w, name), kind));
}

/* A name (an edge label) for a reference tp_traverse will report: the
 * first visit of `target` takes it. Past LABELS_MAX names, references
 * go unnamed. */
static void
label_id(struct walk *w, PyObject *target, uint64_t lab)
{
    if (!target || w->nlabels == LABELS_MAX)
        return;
    void *grown = room_for_one(w, w->labels, &w->caplabels, w->nlabels,
                               sizeof(*w->labels), 64);
    if (!grown)
        return;
    w->labels = grown;
    w->labels[w->nlabels++] = (struct label){target, lab};
}

static void
label(struct walk *w, PyObject *target, int kind, const char *name)
{
    if (target)
        label_id(w, target, mklabel(mh_hd_cstr_id(w, name), kind));
}

/* label() as a heapwalk field callback. */
static void
label_field(void *arg, PyObject *target, int kind, const char *name)
{
    label(arg, target, kind, name);
}

static int
visit(PyObject *target, void *arg)
{
    struct walk *w = arg;
    if (!target)
        return 0;
    uint64_t l = MH_EDGE_NONE;
    for (size_t i = 0; i < w->nlabels; i++)
        if (w->labels[i].target == target) {
            l = w->labels[i].label;
            /* Keep the order: two slots holding one object take their
             * names in turn. */
            memmove(&w->labels[i], &w->labels[i + 1],
                    (w->nlabels - i - 1) * sizeof(*w->labels));
            w->nlabels--;
            break;
        }
    if (l == MH_EDGE_NONE && w->anon)
        l = w->anon(w, target);
    add_edge(w, target, l);
    return 0;
}

/* A dict entry: the key object (when the dict holds it) and the value,
 * both named by the key's repr. */
static void
dict_kv(void *arg, PyObject *key, PyObject *value, int owns_key)
{
    struct walk *w = arg;
    uint64_t name = mh_hd_key_repr_id(w, key);
    if (owns_key)
        add_edge(w, key, mklabel(name, MH_EDGE_DICTKEY));
    add_edge(w, value, mklabel(name, MH_EDGE_DICTVAL));
}

/* An inline attribute value (3.11+), named by its key's text. */
static void
attr_kv(void *arg, PyObject *key, PyObject *value, int owns_key)
{
    struct walk *w = arg;
    (void)owns_key;
    add_edge(w, value, mklabel(mh_hd_str_text_id(w, key), MH_EDGE_ATTR));
}

/* The keys of a type's shared keys table, which the type holds. */
static void
cached_key(void *arg, PyObject *key, PyObject *value, int owns_key)
{
    struct walk *w = arg;
    (void)value;
    (void)owns_key;
    add_edge(w, key,
             mklabel(mh_hd_cstr_id(w, "ht_cached_keys"), MH_EDGE_SLOT));
}

static void
items_edges(struct walk *w, PyObject **items, Py_ssize_t n)
{
    PyCodeObject *co = w->closure_code;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (co) {
            PyObject *name = mh_hw_freevar_name(co, (int)i);
            add_edge(w, items[i],
                     mklabel(mh_hd_str_text_id(w, name), MH_EDGE_CELL));
        } else {
            add_edge(w, items[i], MH_EDGE_ITEM);
        }
    }
}

/* __slots__ of one class of an instance's MRO (what subtype_traverse
 * visits): members of type T_OBJECT_EX after the heap type struct. */
static void
slot_edges(struct walk *w, PyObject *op, PyTypeObject *base)
{
    Py_ssize_t n = Py_SIZE(base);
    PyMemberDef *mp =
        (PyMemberDef *)((char *)base + Py_TYPE(base)->tp_basicsize);
    for (Py_ssize_t i = 0; i < n; i++, mp++)
        if (mp->type == T_OBJECT_EX && mp->name)
            add_edge(w, *(PyObject **)((char *)op + mp->offset),
                     mklabel(mh_hd_cstr_id(w, mp->name), MH_EDGE_ATTR));
}

static void
container_edges(struct walk *w, PyObject *op, traverseproc traverse)
{
    if (PyDict_Check(op))
        mh_hw_dict_each(op, dict_kv, w);
    else if (PyList_Check(op))
        items_edges(w, ((PyListObject *)op)->ob_item, PyList_GET_SIZE(op));
    else if (PyTuple_Check(op))
        items_edges(w, ((PyTupleObject *)op)->ob_item, PyTuple_GET_SIZE(op));
    else if (traverse)
        traverse(op, visit, w);
}

/* ---- names for what tp_traverse visits in built-in objects ---- */

/* Who holds a frame's slots, for the names of what they hold: a frame
 * object, or (3.11+, which embeds the frame) a generator, coroutine or
 * async generator, read through gen.gi_frame, coro.cr_frame... */
enum { HOLDER_FRAME, HOLDER_GEN, HOLDER_CORO, HOLDER_AGEN, HOLDERS };

static const char *const holder_frame[HOLDERS] = {NULL, "gi_frame", "cr_frame",
                                                  "ag_frame"};
static const char *const holder_code[HOLDERS] = {"f_code", "gi_code",
                                                 "cr_code", "ag_code"};
static const char *const holder_locals[HOLDERS] = {
    "f_locals", "gi_frame.f_locals", "cr_frame.f_locals", "ag_frame.f_locals"};
static const char *const holder_globals[HOLDERS] = {
    "f_globals", "gi_frame.f_globals", "cr_frame.f_globals",
    "ag_frame.f_globals"};
static const char *const holder_builtins[HOLDERS] = {
    "f_builtins", "gi_frame.f_builtins", "cr_frame.f_builtins",
    "ag_frame.f_builtins"};
static const char *const holder_stack[HOLDERS] = {
    "<value stack>", "gi_frame.<value stack>", "cr_frame.<value stack>",
    "ag_frame.<value stack>"};
static const char *const holder_unnamed[HOLDERS] = {
    "<local>", "gi_frame.<local>", "cr_frame.<local>", "ag_frame.<local>"};

/* The string id of the name of local slot `name` (a str) of a frame held
 * by `holder`: `f_locals['x']`, or `<cell x>` for a cell or free
 * variable, after the holder's prefix. Cached by name object, holder and
 * form: code objects share their names, and a heap holds many frames of
 * one function. */
static uint64_t
local_name_id(struct walk *w, PyObject *name, int holder, int cell)
{
    uintptr_t key = (uintptr_t)name | (uintptr_t)(holder << 1 | cell);
    uint64_t id;
    if (((uintptr_t)name & 7) == 0 && mh_addrmap_get(&w->locnames, key, &id))
        return id;
    struct sb b;
    mh_hd_sb_init(&b, NAME_MAX_BYTES);
    if (holder_frame[holder]) {
        mh_hd_sb_puts(&b, holder_frame[holder]);
        mh_hd_sb_cp(&b, '.');
    }
    if (!cell) {
        mh_hd_sb_puts(&b, "f_locals[");
        mh_hd_repr_str(&b, name);
        mh_hd_sb_cp(&b, ']');
    } else {
        mh_hd_sb_puts(&b, "<cell ");
        mh_hd_sb_str(&b, name);
        mh_hd_sb_cp(&b, '>');
    }
    id = mh_hd_string_id(w, b.buf, b.len);
    /* A full cache only costs the next lookup its string. */
    if (id && ((uintptr_t)name & 7) == 0 &&
        mh_addrmap_put(&w->locnames, key, id) == MH_ENOMEM)
        fail(w, MH_ENOMEM);
    return id;
}

/* Names what a frame object or a generator-like object holds: f_back,
 * the code, globals, each local by its name (`f_locals['x']`, as Python
 * reads it), cells and free variables (`<cell x>`), the value stack of
 * a suspended frame (`<value stack>`). */
static void
held_frame_labels(struct walk *w, PyObject *op, const struct mh_hw_held *h)
{
    int holder = h->is_frame                 ? HOLDER_FRAME
                 : PyCoro_CheckExact(op)     ? HOLDER_CORO
                 : PyAsyncGen_CheckExact(op) ? HOLDER_AGEN
                                             : HOLDER_GEN;
    const char *code = holder_code[holder];
    if (holder != HOLDER_FRAME) {
        /* 3.9-3.10: a frame object holds the generator's locals; from
         * 3.11 the generator does, read as gen.gi_frame.f_locals. */
        label(w, h->frame, MH_EDGE_ATTR, holder_frame[holder]);
        label(w, h->name, MH_EDGE_ATTR, "__name__");
        label(w, h->qualname, MH_EDGE_ATTR, "__qualname__");
        /* 3.11 visits the code twice: gi_code, and its frame's. */
        label(w, h->code, MH_EDGE_ATTR, code);
    }
    label(w, h->back, MH_EDGE_ATTR, "f_back");
    label(w, h->code, MH_EDGE_ATTR, code);
    label(w, h->locals, MH_EDGE_ATTR, holder_locals[holder]);
    label(w, h->globals, MH_EDGE_ATTR, holder_globals[holder]);
    label(w, h->builtins, MH_EDGE_ATTR, holder_builtins[holder]);
    label(w, h->func, MH_EDGE_SLOT, "f_func");
    const struct mh_hw_frame *f = &h->slots;
    if (!f->code)
        return;
    for (int i = 0; i < f->nlocals + f->nstack && !w->err; i++) {
        PyObject *v =
            i < f->nlocals ? f->localsplus[i] : f->stack[i - f->nlocals];
        if (!v)
            continue;
        if (i >= f->nlocals) {
            label(w, v, MH_EDGE_ATTR, holder_stack[holder]);
            continue;
        }
        PyObject *name = mh_hw_local_name(f->code, i);
        if (!name || !PyUnicode_Check(name) || !mh_hd_str_readable(name)) {
            label(w, v, MH_EDGE_ATTR, holder_unnamed[holder]);
            continue;
        }
        int cell = mh_hw_local_kind(f->code, i) != MH_HW_LOCAL;
        label_id(w, v,
                 mklabel(local_name_id(w, name, holder, cell), MH_EDGE_ATTR));
    }
}

/* Whether tp or a base of it is the built-in type named `name`. */
static int
is_builtin(PyTypeObject *tp, const char *name)
{
    for (; tp; tp = tp->tp_base)
        if (tp->tp_name && !strcmp(tp->tp_name, name))
            return 1;
    return 0;
}

static uint64_t
anon_item(struct walk *w, PyObject *target)
{
    (void)w;
    (void)target;
    return MH_EDGE_ITEM;
}

static uint64_t
anon_member(struct walk *w, PyObject *target)
{
    (void)target;
    return mklabel(mh_hd_cstr_id(w, "<set member>"), MH_EDGE_ATTR);
}

/* What an asyncio task (the C one) holds: its coroutine. */
static uint64_t
anon_task(struct walk *w, PyObject *target)
{
    if (PyCoro_CheckExact(target) || PyGen_Check(target))
        return mklabel(mh_hd_cstr_id(w, "get_coro()"), MH_EDGE_ATTR);
    return MH_EDGE_NONE;
}

/* Names the references of built-in objects (and of instances of classes
 * derived from them) that their tp_traverse visits, as Python spells
 * them where it can (`.tb_next`, `.__self__`), else as a labelled
 * pseudo-attribute (`.<lru_cache>`). */
static void
builtin_labels(struct walk *w, PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    struct mh_hw_held held;
    PyObject *func;
    if (PyModule_Check(op)) {
        label(w, PyModule_GetDict(op), MH_EDGE_SLOT, "__dict__");
    } else if (PyFunction_Check(op)) {
        mh_hw_function_refs(op, label_field, w);
    } else if ((func = mh_hw_classmethod_func(op)) != NULL) {
        label(w, func, MH_EDGE_ATTR, "__func__");
    } else if (PyObject_TypeCheck(op, &PyMethodDescr_Type) ||
               PyObject_TypeCheck(op, &PyClassMethodDescr_Type) ||
               PyObject_TypeCheck(op, &PyGetSetDescr_Type) ||
               PyObject_TypeCheck(op, &PyMemberDescr_Type) ||
               PyObject_TypeCheck(op, &PyWrapperDescr_Type)) {
        PyDescrObject *d = (PyDescrObject *)op;
        label(w, (PyObject *)d->d_type, MH_EDGE_ATTR, "__objclass__");
        label(w, d->d_name, MH_EDGE_ATTR, "__name__");
        label(w, d->d_qualname, MH_EDGE_ATTR, "__qualname__");
    } else if (PyCell_Check(op)) {
        label(w, PyCell_GET(op), MH_EDGE_ATTR, "cell_contents");
    } else if (PyMethod_Check(op)) {
        label(w, PyMethod_GET_FUNCTION(op), MH_EDGE_ATTR, "__func__");
        label(w, PyMethod_GET_SELF(op), MH_EDGE_ATTR, "__self__");
    } else if (PyCFunction_Check(op)) {
        PyCFunctionObject *f = (PyCFunctionObject *)op;
        label(w, f->m_self, MH_EDGE_ATTR, "__self__");
        label(w, f->m_module, MH_EDGE_ATTR, "__module__");
    } else if (PyTraceBack_Check(op)) {
        PyTracebackObject *tb = (PyTracebackObject *)op;
        label(w, (PyObject *)tb->tb_next, MH_EDGE_ATTR, "tb_next");
        label(w, (PyObject *)tb->tb_frame, MH_EDGE_ATTR, "tb_frame");
    } else if (mh_hw_held_frame(op, &held)) {
        held_frame_labels(w, op, &held);
    } else if (PyExceptionInstance_Check(op)) {
        PyBaseExceptionObject *e = (PyBaseExceptionObject *)op;
        label(w, e->traceback, MH_EDGE_ATTR, "__traceback__");
        label(w, e->context, MH_EDGE_ATTR, "__context__");
        label(w, e->cause, MH_EDGE_ATTR, "__cause__");
        label(w, e->args, MH_EDGE_ATTR, "args");
    } else if (PyWeakref_Check(op)) {
        label(w, ((PyWeakReference *)op)->wr_callback, MH_EDGE_ATTR,
              "__callback__");
    } else if (mh_hw_lru_cache_refs(op, label_field, w)) {
    } else if (mh_hw_partial_refs(op, label_field, w)) {
    } else if (PyTuple_Check(op)) {
        w->anon = anon_item; /* struct sequences: sys.flags... */
    } else if (PyAnySet_Check(op)) {
        w->anon = anon_member;
    } else if (is_builtin(tp, "collections.deque")) {
        w->anon = anon_item;
    } else if (is_builtin(tp, "_asyncio.Task")) {
        w->anon = anon_task;
    }
}

/* An instance of a class made by a `class` statement: what
 * subtype_traverse visits, named. */
static void
instance_edges(struct walk *w, PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op), *base = tp;
    while (base && base->tp_traverse == w->subtype_traverse) {
        if (Py_SIZE(base))
            slot_edges(w, op, base);
        base = base->tp_base;
    }
    traverseproc basetraverse = base ? base->tp_traverse : NULL;
    if (mh_hw_has_managed_dict(tp)) {
        PyObject *d = mh_hw_managed_dict(op, attr_kv, w);
        field_edge(w, d, MH_EDGE_SLOT, "__dict__");
    } else if (base && tp->tp_dictoffset != base->tp_dictoffset) {
        PyObject **dp = mh_hd_dict_ptr(op);
        if (dp)
            field_edge(w, *dp, MH_EDGE_SLOT, "__dict__");
    }
    if (!basetraverse || !(base->tp_flags & Py_TPFLAGS_HEAPTYPE))
        field_edge(w, (PyObject *)tp, MH_EDGE_ATTR, "__class__");
    if (basetraverse) {
        builtin_labels(w, op);
        container_edges(w, op, basetraverse);
    }
}

static int
is_leaf(PyObject *op)
{
    return PyUnicode_Check(op) || PyBytes_Check(op) || PyLong_Check(op) ||
           PyFloat_Check(op) || PyComplex_Check(op) || op == Py_None ||
           PyByteArray_Check(op) || op == Py_Ellipsis ||
           op == Py_NotImplemented || Py_IS_TYPE(op, &PyBaseObject_Type);
}

/* Lists the references of op into w->edges; returns MH_OBJ_UNFOLLOWED
 * when its layout is unknown. */
unsigned
mh_hd_object_edges(struct walk *w, PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    w->nlabels = 0;
    w->anon = NULL;
    if (PyType_Check(op)) {
        /* Not type_traverse: it aborts on static types. */
        mh_hw_type_refs((PyTypeObject *)op, field_edge, w);
        mh_hw_cached_keys_each((PyTypeObject *)op, cached_key, w);
        if (tp->tp_flags & Py_TPFLAGS_HEAPTYPE)
            field_edge(w, (PyObject *)tp, MH_EDGE_ATTR, "__class__");
        return 0;
    }
    if (PyCode_Check(op)) {
        mh_hw_code_refs((PyCodeObject *)op, field_edge, w);
        return 0;
    }
    if (Py_IS_TYPE(op, &PyModuleDef_Type)) {
        /* A single-phase extension module's definition keeps a copy of
         * its module dict, to initialise it again. */
        field_edge(w, ((PyModuleDef *)op)->m_base.m_copy, MH_EDGE_SLOT,
                   "m_copy");
        return 0;
    }
    if (tp->tp_traverse && tp->tp_traverse == w->subtype_traverse) {
        instance_edges(w, op);
        return 0;
    }
    if (PyDict_CheckExact(op) || PyList_CheckExact(op)) {
        container_edges(w, op, NULL);
        return 0;
    }
    if (PyTuple_CheckExact(op)) {
        uint64_t code;
        if (w->closures.count &&
            mh_addrmap_get(&w->closures, (uintptr_t)op, &code))
            w->closure_code = (PyCodeObject *)(uintptr_t)code;
        container_edges(w, op, NULL);
        w->closure_code = NULL;
        return 0;
    }
    if (!tp->tp_traverse)
        return is_leaf(op) ? 0 : MH_OBJ_UNFOLLOWED;
    builtin_labels(w, op);
    PyObject **dp = mh_hd_dict_ptr(op);
    if (dp)
        label(w, *dp, MH_EDGE_SLOT, "__dict__");
    if (tp->tp_flags & Py_TPFLAGS_HEAPTYPE)
        label(w, (PyObject *)tp, MH_EDGE_ATTR, "__class__");
    tp->tp_traverse(op, visit, w);
    return 0;
}
