/* Frames for CPython 3.9 and 3.10: a linked list of PyFrameObject. */
#include "frames.h"

#if PY_VERSION_HEX < 0x030B0000

#include <frameobject.h> /* the PyFrameObject layout */

PyThreadState *
mh_frames_current(void)
{
    /* Before 3.12 the "current" thread state is the GIL holder's, shared
     * by all threads: it is ours only if it is this thread's own. */
    PyThreadState *ts = _PyThreadState_UncheckedGet();
    if (ts && ts == PyGILState_GetThisThreadState())
        return ts;
    return NULL;
}

int
mh_frames_walk(PyThreadState *ts, struct mh_rawframe *out, int max)
{
    int n = 0;
    for (PyFrameObject *f = ts->frame; f && n < max; f = f->f_back) {
        int lasti = f->f_lasti < 0 ? 0 : f->f_lasti;
#if PY_VERSION_HEX >= 0x030A0000
        lasti *= (int)sizeof(_Py_CODEUNIT); /* 3.10 counts code units */
#endif
        mh_frames_set(&out[n++], f->f_code, lasti);
    }
    return n;
}

#endif
