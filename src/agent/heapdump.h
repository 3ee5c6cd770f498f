/* Heap dumps: walk every live object in a fork()ed child and write a
 * dump (docs/heap-format.md). The target pauses only for the fork; the
 * child walks its copy of the heap, writes the file and _exit()s.
 *
 * The walk reads objects directly (tp_traverse plus what it omits: keys
 * of str-keyed dicts, inline attribute values on 3.11+); it calls no
 * Python code, creates no __dict__ and no frame object. Layout details
 * per CPython version sit behind heapwalk.h, like frames.h. */
#ifndef MH_AGENT_HEAPDUMP_H
#define MH_AGENT_HEAPDUMP_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <sys/types.h>

struct mh_heap_dump_result {
    pid_t child;       /* the walker process; reaped by mh_heap_reap() */
    uint64_t pause_ns; /* how long the caller was paused by the fork */
    int create_failed; /* the file could not be created (errno says why) */
};

/* Forks a child that writes the dump of this process to `path` (created
 * safely, 0600: mh_file_create_private() with the session's flags).
 * Must be called with the GIL held (from any thread); the caller's other
 * threads keep running. `capture` is the target's capture path to name in
 * the dump header (may be ""). Returns 0, or -1 with errno set (and
 * res->create_failed when the file could not be created). With wait != 0,
 * waits for the child and returns -1 with errno = EIO if it failed (for
 * the in-process API and tests). */
int mh_heap_dump(const char *path, const char *capture, int wait,
                 struct mh_heap_dump_result *res);

/* The same into `fd`, an open regular file that the caller created (the
 * control channel's client passes one: a dump lands where the one who
 * asked may write, whatever user this process runs as). Takes `fd`: it is
 * closed on every path. */
int mh_heap_dump_fd(int fd, const char *capture, int wait,
                    struct mh_heap_dump_result *res);

/* Reaps walker children that have finished; never blocks. Returns how
 * many were reaped. Safe from the writer thread. */
int mh_heap_reap(void);

/* _memhound.dump_heap(path, wait=True, force=False): mh_heap_dump() for
 * Python; force replaces a regular file of this user (MH_FILE_FORCE).
 * Returns {"pid": child, "pause_ns": n}, raises OSError. */
PyObject *mh_py_dump_heap(PyObject *module, PyObject *args);

/* Raises OSError(err, why) for a file mh_file_create_private(path, flags)
 * could not create, worded by mh_file_create_error(); returns NULL. */
PyObject *mh_py_create_error(const char *path, int flags, int err);

#endif
