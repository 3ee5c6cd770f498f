/* The output files of the commands (output.h): created safely, next to
 * other users, as docs/security.md ("Files") promises. */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "../util/file.h"
#include "cli.h"
#include "output.h"

/* Whether `s` holds a %p, %r or %R the agent expands (not %%p). */
static int
has_token(const char *s, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) {
        if (s[i] != '%')
            continue;
        if (s[i + 1] == 'p' || s[i + 1] == 'r' || s[i + 1] == 'R')
            return 1;
        i++; /* %% and the like: skip the pair */
    }
    return 0;
}

int
mh_output_preflight(const char *path, int force, int is_template)
{
    char dir[PATH_MAX], why[PATH_MAX + 256];
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 0;
    if (slash && n == 0)
        n = 1; /* "/x" */
    if (n >= sizeof(dir)) {
        mh_errorf("cannot create '%s': %s", path, strerror(ENAMETOOLONG));
        return MH_EXIT_FAIL;
    }
    if (is_template && has_token(path, n)) {
        mh_errorf("cannot create '%s': %%p, %%r and %%R may appear in the "
                  "file name only, not in a directory (memhound creates no "
                  "directories for captures)",
                  path);
        return MH_EXIT_FAIL;
    }
    if (slash)
        memcpy(dir, path, n);
    else
        dir[n++] = '.';
    dir[n] = '\0';
    if (mh_file_check_dir(dir, why, sizeof(why))) {
        mh_errorf("%s", why);
        return MH_EXIT_FAIL;
    }
    if (access(dir, W_OK | X_OK)) {
        mh_errorf("cannot write in '%s': %s", dir, strerror(errno));
        return MH_EXIT_FAIL;
    }
    const char *name = slash ? slash + 1 : path;
    if (is_template && strchr(name, '%'))
        return MH_EXIT_OK; /* each process's name differs */
    if (mh_file_preflight(path, force ? MH_FILE_FORCE : 0, "--force", why,
                          sizeof(why))) {
        mh_errorf("%s", why);
        return MH_EXIT_FAIL;
    }
    return MH_EXIT_OK;
}

FILE *
mh_output_open(const char *path, int force)
{
    if (!path || !strcmp(path, "-"))
        return stdout;
    if (mh_output_preflight(path, force, 0))
        return NULL;
    int flags = force ? MH_FILE_FORCE : 0;
    int fd = mh_file_create_private(path, flags);
    if (fd < 0) {
        char why[PATH_MAX + 256];
        mh_file_create_error(path, flags, errno, "--force", why, sizeof(why));
        mh_errorf("%s", why);
        return NULL;
    }
    FILE *out = fdopen(fd, "w");
    if (!out) {
        mh_errorf("cannot create '%s': %s", path, strerror(errno));
        close(fd);
    }
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
