/* Per-request attribution: the `_memhound.Request` type, the ContextVar
 * that holds the current request, and the calls the web layer makes
 * (python/memhound's middleware; docs/architecture.md lists them).
 *
 * The current request lives in a contextvars.ContextVar, so it follows
 * the thread in threaded servers and the asyncio task (and the child
 * tasks that copy its context) in async ones. The tracker reads it in
 * the sampled slow path to tag each ALLOC with the request's id (a TAG
 * record); request_end() writes the REQUEST record after every ALLOC
 * tagged with it, since both happen with the GIL held. */
#ifndef MH_AGENT_REQUESTS_H
#define MH_AGENT_REQUESTS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#include "../util/msg.h"

/* Adds the Request type to the module and creates the ContextVar; once,
 * from the module's init. Returns 0, or -1 with an exception set. */
int mh_requests_init(PyObject *module) MH_MUST_USE;

/* The id of the calling thread's current request, 0 when there is none
 * or it has ended. For the allocator hook: the GIL must be held; reads
 * the ContextVar without allocating and leaves any pending exception as
 * it was. */
uint64_t mh_requests_current_id(void);

/* The module's functions (docs/architecture.md). */
/* Whether this process counts requests (the web layer is in; `stats`). */
int mh_requests_counting(void);

PyObject *mh_py_count_requests(PyObject *module, PyObject *unused);
PyObject *mh_py_request_begin(PyObject *module, PyObject *unused);
PyObject *mh_py_request_current(PyObject *module, PyObject *unused);
PyObject *mh_py_request_end(PyObject *module, PyObject *req);
PyObject *mh_py_finding(PyObject *module, PyObject *args, PyObject *kw);
PyObject *mh_py_thread_allocated(PyObject *module, PyObject *unused);

#endif
