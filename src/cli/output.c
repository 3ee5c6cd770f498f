/* The output file of heap and report (output.h). */
#include <errno.h>
#include <string.h>

#include "cli.h"
#include "output.h"

FILE *
mh_output_open(const char *path)
{
    if (!path || !strcmp(path, "-"))
        return stdout;
    FILE *out = fopen(path, "w");
    if (!out)
        mh_errorf("cannot create '%s': %s", path, strerror(errno));
    return out;
}

int
mh_output_close(FILE *out, const char *path, int rc)
{
    int err = errno, to_stdout = out == stdout;
    if (fflush(out) != 0 && rc == MH_OK) {
        rc = MH_EIO;
        err = errno;
    }
    if (!to_stdout && fclose(out) != 0 && rc == MH_OK) {
        rc = MH_EIO;
        err = errno;
    }
    if (rc > 0)
        return rc;
    if (rc) {
        mh_errorf("cannot write '%s': %s", to_stdout ? "<stdout>" : path,
                  rc == MH_EIO ? strerror(err) : mh_strerror(rc));
        return MH_EXIT_FAIL;
    }
    return MH_EXIT_OK;
}
