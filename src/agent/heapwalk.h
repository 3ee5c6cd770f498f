/* The heap walker's view of CPython's object layout, behind one interface.
 *
 * The walker (heapdump*.c) runs in a fork()ed child: it may read any
 * object but must not call Python code, allocate with Python's allocators
 * or change an object. What it needs beyond tp_traverse and the public
 * structs differs per version: where the GC lists hang, dict key tables,
 * inline (managed) attribute values from 3.11, the frame chain, the
 * fields of code and type objects, and what sys.getsizeof adds. Each
 * range has its own file (heapwalk_py39.c for 3.9-3.10, heapwalk_py311.c
 * for 3.11-3.12, heapwalk_py313.c for 3.13), compiled only for its range,
 * as frames_py*.c are; heapwalk_common.c holds what they share, through
 * the primitives of heapwalk_impl.h. Nothing else in the agent reads
 * these layouts. */
#ifndef MH_AGENT_HEAPWALK_H
#define MH_AGENT_HEAPWALK_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>

/* Called for each GC-tracked object; a non-zero return stops the walk
 * and is returned. */
typedef int (*mh_hw_obj_fn)(void *arg, PyObject *op);

/* Called for a reference named by a C string: kind 1 (MH_EDGE_ATTR)
 * when Python spells it as an attribute (`__mro__`, `co_consts`), kind 6
 * (a C field with no Python spelling: `tp_cache`), kind 0-4 for roots
 * (enum mh_heap_root_kind). */
typedef void (*mh_hw_field_fn)(void *arg, PyObject *target, int kind,
                               const char *name);

/* Called for a dict entry or an attribute value; `owns_key` is 0 when the
 * key belongs to a shared keys table (split dicts, inline values): the
 * object holds no reference to it. */
typedef void (*mh_hw_kv_fn)(void *arg, PyObject *key, PyObject *value,
                            int owns_key);

/* One frame of a thread's stack. Slots [0, nlocals) of `localsplus` are
 * named locals, cells and free variables (mh_hw_local_name); the value
 * stack is `stack[0, nstack)` (nstack is 0 when the interpreter does not
 * record it for a running frame). */
struct mh_hw_frame {
    PyCodeObject *code;
    int line; /* 0 when unknown */
    PyObject **localsplus;
    int nlocals;
    PyObject **stack;
    int nstack;
};

/* Called for each frame of a thread, innermost first. */
typedef void (*mh_hw_frame_fn)(void *arg, PyThreadState *ts,
                               const struct mh_hw_frame *f);

/* Calls fn for every object in the interpreter's GC lists (all
 * generations and the permanent one). */
int mh_hw_gc_each(PyInterpreterState *interp, mh_hw_obj_fn fn, void *arg);

/* Calls fn for every Python frame of every thread of interp. */
void mh_hw_threads_each(PyInterpreterState *interp, mh_hw_frame_fn fn,
                        void *arg);

/* sys.modules (borrowed), read from the interpreter state. */
PyObject *mh_hw_interp_modules(PyInterpreterState *interp);

/* The thread state list's first element, to read thread_id and dict. */
PyThreadState *mh_hw_threads_head(PyInterpreterState *interp);

/* The name (a str, borrowed) of local slot i of a frame running `code`,
 * or NULL. */
PyObject *mh_hw_local_name(PyCodeObject *code, int i);

/* The name (borrowed) of free variable i of `code`, or NULL. */
PyObject *mh_hw_freevar_name(PyCodeObject *code, int i);

/* What a local slot of `code` holds: a plain local, a cell the frame
 * made for a variable its inner functions use, or a free variable's
 * cell. */
enum mh_hw_slot_kind { MH_HW_LOCAL = 0, MH_HW_CELL = 1, MH_HW_FREE = 2 };
enum mh_hw_slot_kind mh_hw_local_kind(PyCodeObject *code, int i);

/* What a frame object, generator, coroutine or async generator holds
 * through its frame, so that what its tp_traverse visits can be named.
 * Any field may be NULL; `slots.code` is NULL when the object does not
 * own the frame's locals (a frame object whose frame still runs on a
 * thread's stack or in a generator, a finished generator). */
struct mh_hw_held {
    int is_frame;    /* 1: a frame object; 0: a generator-like object */
    PyObject *back;  /* a frame object's f_back */
    PyObject *frame; /* a generator's frame object (gi_frame), if made */
    PyObject *code, *globals, *builtins, *locals, *func;
    PyObject *name, *qualname; /* a generator's __name__, __qualname__ */
    struct mh_hw_frame slots;  /* locals, cells, free variables, stack */
};

/* Fills *out and returns 1 when op is a frame object or a generator,
 * coroutine or async generator; returns 0 for anything else. */
int mh_hw_held_frame(PyObject *op, struct mh_hw_held *out);

/* A function's references, named as Python spells them (`__globals__`,
 * `__closure__`; its `__dict__` as kind 6). */
void mh_hw_function_refs(PyObject *op, mh_hw_field_fn fn, void *arg);

/* For a classmethod or staticmethod: the callable it wraps (borrowed),
 * or NULL. */
PyObject *mh_hw_classmethod_func(PyObject *op);

/* For a functools.partial (or a subclass): calls fn for its func, args
 * and keywords and returns 1; 0 for anything else. */
int mh_hw_partial_refs(PyObject *op, mh_hw_field_fn fn, void *arg);

/* For a functools._lru_cache_wrapper: calls fn for its cache dict
 * (`<lru_cache>`), the function it wraps (`__wrapped__`) and, for a
 * bounded cache, the key and result of each entry (`<lru_cache key>`,
 * `<lru_cache value>`), and returns 1; 0 for anything else. */
int mh_hw_lru_cache_refs(PyObject *op, mh_hw_field_fn fn, void *arg);

/* Interpreter-level containers other than sys.modules, sys, builtins
 * (kind 4 roots): fn(arg, obj, 4, what); and the singletons (None,
 * True, False, Ellipsis, NotImplemented: kind 5 roots, C globals). */
void mh_hw_interp_roots(PyInterpreterState *interp, mh_hw_field_fn fn,
                        void *arg);

/* The item count of a variable-size object, as CPython sizes it to find
 * what follows the items (a __dict__ at a negative tp_dictoffset): an
 * int's digits on every version. */
Py_ssize_t mh_hw_var_items(PyObject *op);

/* Whether op is immortal: 3.12+'s immortal mark, or a static object of
 * the runtime (3.11+); the interpreter never frees it. */
int mh_hw_is_immortal(PyObject *op);

/* Bytes of the allocator block before the object (GC header, managed
 * dict and weakref words). */
size_t mh_hw_preheader(PyTypeObject *tp);

/* What sys.getsizeof() adds to __sizeof__() for op. */
size_t mh_hw_getsizeof_extra(PyObject *op);

/* __sizeof__ of the built-in types whose size is not basicsize +
 * itemsize * ob_size. */
size_t mh_hw_str_sizeof(PyObject *op);
size_t mh_hw_int_sizeof(PyObject *op);
size_t mh_hw_dict_sizeof(PyObject *op);
/* type.__sizeof__: the type struct and its shared keys table. */
size_t mh_hw_type_sizeof(PyTypeObject *tp);
/* object.__sizeof__ for op (basicsize + items, plus inline values). */
size_t mh_hw_object_sizeof(PyObject *op);

/* Calls fn for every entry of a dict (any dict object, untracked ones
 * included). */
void mh_hw_dict_each(PyObject *dict, mh_hw_kv_fn fn, void *arg);

/* Instance attributes of an object whose type manages its dict
 * (Py_TPFLAGS_MANAGED_DICT, 3.11+): returns the materialised __dict__,
 * or NULL and calls fn for each inline value (owns_key = 0). Never
 * creates a dict. On 3.9-3.10 it returns NULL and calls nothing. */
PyObject *mh_hw_managed_dict(PyObject *op, mh_hw_kv_fn fn, void *arg);

/* Whether tp manages its instances' dict (3.11+). */
int mh_hw_has_managed_dict(PyTypeObject *tp);

/* The str key objects of a heap type's shared keys table
 * (ht_cached_keys), which the type holds references to. */
void mh_hw_cached_keys_each(PyTypeObject *tp, mh_hw_kv_fn fn, void *arg);

/* References of a code object (not a GC container: tp_traverse does not
 * list them), named by field. */
void mh_hw_code_refs(PyCodeObject *co, mh_hw_field_fn fn, void *arg);

/* A type object's references, named by field, without calling
 * type_traverse (which aborts on static types): its dict, MRO, bases,
 * base, subclasses, names... */
void mh_hw_type_refs(PyTypeObject *tp, mh_hw_field_fn fn, void *arg);

/* The dict of a type (tp_dict, or where 3.12+ keeps it for static
 * builtin types), borrowed, or NULL. */
PyObject *mh_hw_type_dict(PyTypeObject *tp);

#endif
