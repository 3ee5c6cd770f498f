/* What the heap walker's own files share, and nothing else includes:
 * CPython's internal headers for the version being compiled, and the
 * layout primitives each versioned file (heapwalk_py39.c, _py311.c,
 * _py313.c) provides to heapwalk_common.c, which holds the walking code
 * that is the same for every version. */
#ifndef MH_AGENT_HEAPWALK_IMPL_H
#define MH_AGENT_HEAPWALK_IMPL_H

#include "heapwalk.h"

#define Py_BUILD_CORE 1
/* Python.h, read without Py_BUILD_CORE, defined these for extensions;
 * the internal headers declare them their own way. */
#undef _PyGC_FINALIZED
#if PY_VERSION_HEX >= 0x030B0000
#undef _PyObject_LookupSpecial
/* 3.12's inline dict helpers touch the deprecated ma_version_tag; 3.13's
 * leave parameters unused. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include "internal/pycore_dict.h"
#include "internal/pycore_frame.h"
#include "internal/pycore_interp.h"
#include "internal/pycore_object.h"
#pragma GCC diagnostic pop
#else
#include "internal/pycore_interp.h"
#endif
#undef Py_BUILD_CORE
#if PY_VERSION_HEX < 0x030B0000
#include <frameobject.h>
#include <longintrepr.h>
#endif

/* ---- layout primitives, one implementation per version range ---- */

/* A dict keys table as the common code reads it. Its entries are
 * `stride` bytes apart from `first`, which points at the first entry's
 * key; every entry layout (3.9 to 3.13, general or unicode) has the
 * value pointer right after the key, which is checked where each layout
 * is known. */
struct mh_hw_keys {
    char *first;
    size_t stride;
    Py_ssize_t nentries; /* entries used so far, deleted ones included */
    Py_ssize_t refcnt;   /* 1: the table belongs to one dict */
    size_t size;         /* bytes of the table, as dict.__sizeof__ says */
    size_t split_slots;  /* value slots of a split dict that shares it */
};

/* Fills *out for the keys table k (heapwalk_py39.c; from 3.11, whose
 * tables are alike, heapwalk_common.c). */
void mh_hw_keys_get(PyDictKeysObject *k, struct mh_hw_keys *out);

/* The values array of a split dict and its capacity (*cap), or NULL for
 * a combined one (its values are in the keys table). */
PyObject **mh_hw_split_values(PyDictObject *mp, Py_ssize_t *cap);

/* For a static builtin type whose dict and subclasses the interpreter
 * keeps (3.12+): sets *dict and *subclasses (borrowed, NULL when not
 * found) and returns 1. Returns 0 for any other type. */
int mh_hw_static_builtin(PyTypeObject *tp, PyObject **dict,
                         PyObject **subclasses);

/* Sets *res to the size of a generator, coroutine or frame object, which
 * embeds an interpreter frame sized by its code (their ob_size is not a
 * size); returns 0, leaving *res alone, for any other object
 * (heapwalk_py39.c; from 3.11, heapwalk_common.c). */
int mh_hw_frame_holder_sizeof(PyObject *op, size_t *res);

/* The interpreter's roots up to and including the codec registry, in
 * the order the version lists them (sys.modules, sys, builtins, the
 * import machinery...). */
void mh_hw_interp_own_roots(PyInterpreterState *interp, mh_hw_field_fn fn,
                            void *arg);

/* The exception a thread is raising, however the version stores it. */
void mh_hw_thread_exc_roots(PyThreadState *ts, mh_hw_field_fn fn, void *arg);

/* One handled exception of a thread's exc_info chain. */
void mh_hw_handled_exc_roots(_PyErr_StackItem *e, mh_hw_field_fn fn,
                             void *arg);

#if PY_VERSION_HEX >= 0x030B0000
/* The code object frame f runs, or NULL (3.13: a frame may run other
 * executables). */
PyCodeObject *mh_hw_iframe_code(_PyInterpreterFrame *f);
#endif

/* ---- provided by heapwalk_common.c to the versioned files ---- */

/* Calls fn for each entry of keys table k with a value: from `values`
 * (a split table's, `cap` slots; the key belongs to the table:
 * owns_key = 0) or, when values is NULL, from the entry itself. */
void mh_hw_keys_each(PyDictKeysObject *k, PyObject **values, Py_ssize_t cap,
                     mh_hw_kv_fn fn, void *arg);

#if PY_VERSION_HEX >= 0x030B0000
/* sys.modules and the import machinery's references (3.12 moved them
 * into interp->imports), the first of mh_hw_interp_own_roots. */
void mh_hw_import_roots(PyInterpreterState *interp, mh_hw_field_fn fn,
                        void *arg);

/* Reports one _PyInterpreterFrame running `co` to fn; its value stack
 * only when `top_saved` says its stacktop may be read. */
void mh_hw_iframe_report(PyThreadState *ts, _PyInterpreterFrame *f,
                         PyCodeObject *co, int top_saved, mh_hw_frame_fn fn,
                         void *arg);
#endif

#endif
