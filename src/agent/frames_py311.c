/* Frames for CPython 3.11 and 3.12: _PyInterpreterFrame reached through
 * the thread's _PyCFrame. */
#include "frames.h"

#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030D0000

#define Py_BUILD_CORE 1
#include "internal/pycore_frame.h"
#undef Py_BUILD_CORE

PyThreadState *
mh_frames_current(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    /* 3.12 keeps the current thread state in a thread-local that is NULL
     * while this thread does not hold the GIL. */
    return _PyThreadState_UncheckedGet();
#else
    PyThreadState *ts = _PyThreadState_UncheckedGet();
    if (ts && ts == PyGILState_GetThisThreadState())
        return ts;
    return NULL;
#endif
}

int
mh_frames_walk(PyThreadState *ts, struct mh_rawframe *out, int max)
{
    int n = 0;
    if (!ts->cframe)
        return 0;
    for (_PyInterpreterFrame *f = ts->cframe->current_frame; f && n < max;
         f = f->previous) {
#if PY_VERSION_HEX >= 0x030C0000
        if (f->owner == FRAME_OWNED_BY_CSTACK)
            continue; /* a shim frame, no Python code */
#endif
        /* A frame being set up has not run its first instruction. */
        if (_PyFrame_IsIncomplete(f))
            continue;
        mh_frames_set(&out[n++], f->f_code,
                      _PyInterpreterFrame_LASTI(f) *
                          (int)sizeof(_Py_CODEUNIT));
    }
    return n;
}

#endif
