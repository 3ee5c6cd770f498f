/* What the per-version frame walkers share. */
#include "frames.h"

int
mh_frames_line(PyCodeObject *code, uint32_t offset)
{
    return PyCode_Addr2Line(code, (int)offset);
}
