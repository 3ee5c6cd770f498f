/* Reading the interpreter's own frame structures, behind one interface.
 *
 * The hook must not create frame objects, allocate or call Python, so it
 * reads the frame chain directly: PyFrameObject up to 3.10,
 * _PyInterpreterFrame from 3.11. The layouts differ per version; each
 * range has its own implementation file (frames_py39.c, frames_py311.c,
 * frames_py313.c), compiled only for its range, as Austin keeps a table
 * per version. Nothing else in the agent looks at frame layouts. */
#ifndef MH_AGENT_FRAMES_H
#define MH_AGENT_FRAMES_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

/* One frame as the hook sees it: the code object (kept alive by the
 * interner once a stack is stored) and the bytecode offset in bytes. */
struct mh_rawframe {
    PyCodeObject *code;
    uint32_t offset;
    uint32_t pad_; /* keeps the struct free of uninitialised padding,
                      so stacks can be hashed and compared as bytes */
};

/* The calling thread's state when it holds the GIL, else NULL. Safe
 * without the GIL (RAW-domain hooks call it from any thread). */
PyThreadState *mh_frames_current(void);

/* Fills out[] with up to max frames of ts's Python stack, innermost
 * first; returns how many. ts must be the calling thread's, GIL held.
 * Reads memory only. */
int mh_frames_walk(PyThreadState *ts, struct mh_rawframe *out, int max);

/* The source line of a frame; needs the GIL. 0 when unknown. Shared by
 * all versions (frames.c). */
int mh_frames_line(PyCodeObject *code, uint32_t offset);

/* Stores one walked frame; a negative offset (a frame that has not
 * started) counts as 0. */
static inline void
mh_frames_set(struct mh_rawframe *out, PyCodeObject *code, int offset)
{
    out->code = code;
    out->offset = offset < 0 ? 0 : (uint32_t)offset;
    out->pad_ = 0;
}

#endif
