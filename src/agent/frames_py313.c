/* Frames for CPython 3.13: _PyInterpreterFrame hangs off the thread state
 * and names its code through f_executable. */
#include "frames.h"

#if PY_VERSION_HEX >= 0x030D0000

#define Py_BUILD_CORE 1
#include "internal/pycore_frame.h"
#undef Py_BUILD_CORE

PyThreadState *
mh_frames_current(void)
{
    return PyThreadState_GetUnchecked();
}

int
mh_frames_walk(PyThreadState *ts, struct mh_rawframe *out, int max)
{
    int n = 0;
    for (_PyInterpreterFrame *f = ts->current_frame; f && n < max;
         f = f->previous) {
        if (f->owner == FRAME_OWNED_BY_CSTACK ||
            !PyCode_Check(f->f_executable))
            continue;
        if (_PyFrame_IsIncomplete(f))
            continue;
        mh_frames_set(&out[n++], (PyCodeObject *)f->f_executable,
                      _PyInterpreterFrame_LASTI(f) *
                          (int)sizeof(_Py_CODEUNIT));
    }
    return n;
}

#endif
