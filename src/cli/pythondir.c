/* Finding memhound's Python side (the memhound package, the agent builds,
 * bootstrap/) from the CLI: the build tree keeps it next to the binary
 * (build/memhound, build/python), `make install` under
 * <prefix>/lib/memhound/python. The result is canonical and absolute,
 * since it ends up on the target's PYTHONPATH and the target may chdir. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../util/mem.h"
#include "../util/msg.h"
#include "cli.h"

/* A candidate counts when it holds the memhound package; the caller owns
 * the canonical copy returned (mh_free). */
static char *
try_dir(const char *dir)
{
    char probe[PATH_MAX];
    struct stat st;
    int n = snprintf(probe, sizeof(probe), "%s/memhound/__init__.py", dir);
    if (n < 0 || (size_t)n >= sizeof(probe) || stat(probe, &st) ||
        !S_ISREG(st.st_mode))
        return NULL;
    char *real = realpath(dir, NULL);
    if (!real)
        return NULL;
    char *copy = mh_strndup(real, strlen(real));
    free(real);
    return copy;
}

char *
mh_cli_python_dir(void)
{
    /* An explicit setting wins, and is not second-guessed: falling back
     * to another copy would run code the user did not ask for. */
    const char *env = getenv("MEMHOUND_PYTHONPATH");
    if (env && *env)
        return try_dir(env);

    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return NULL;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return NULL;
    *slash = '\0';

    static const char *const layouts[] = {"python", "../lib/memhound/python"};
    for (size_t i = 0; i < sizeof(layouts) / sizeof(layouts[0]); i++) {
        char dir[PATH_MAX];
        int len = snprintf(dir, sizeof(dir), "%s/%s", exe, layouts[i]);
        if (len < 0 || (size_t)len >= sizeof(dir))
            continue;
        char *found = try_dir(dir);
        if (found)
            return found;
    }
    return NULL;
}
