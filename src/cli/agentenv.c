/* The environment that makes every Python process a command starts record
 * with the agent: memhound's bootstrap first on PYTHONPATH and the
 * MEMHOUND_* variables (docs/architecture.md, "memhound run <-> bootstrap
 * contract"). Shared by `run` and `guard -- COMMAND`. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../util/buf.h"
#include "../util/file.h"
#include "../util/mem.h"
#include "../util/msg.h"
#include "cli.h"

static int
set_env(const char *name, const char *value)
{
    if (setenv(name, value, 1)) {
        mh_errorf("cannot set %s: %s", name, strerror(errno));
        return MH_EIO;
    }
    return MH_OK;
}

char *
mh_cli_bootstrap_dir(void)
{
    char *pydir = mh_cli_python_dir();
    if (!pydir) {
        const char *env = getenv("MEMHOUND_PYTHONPATH");
        if (env && *env)
            mh_errorf("MEMHOUND_PYTHONPATH '%s' holds no memhound package "
                      "(memhound/__init__.py)",
                      env);
        else
            mh_errorf("cannot find memhound's Python files next to this "
                      "binary (python/ or ../lib/memhound/python); run "
                      "'make python' or set MEMHOUND_PYTHONPATH");
        return NULL;
    }
    struct mh_buf b;
    mh_buf_init(&b, 1u << 16);
    if (mh_buf_printf(&b, "%s/bootstrap/sitecustomize.py", pydir) ||
        mh_buf_put_u8(&b, 0)) {
        mh_errorf("out of memory");
        mh_buf_release(&b);
        mh_free(pydir);
        return NULL;
    }
    if (access((const char *)b.data, R_OK)) {
        mh_errorf("cannot read '%s': %s; run 'make python'",
                  (const char *)b.data, strerror(errno));
        mh_buf_release(&b);
        mh_free(pydir);
        return NULL;
    }
    mh_buf_release(&b);
    return pydir;
}

int
mh_cli_run_id_new(char *out)
{
    if (mh_file_random_tag(out, 16))
        return MH_EIO;
    if (strspn(out, "0") == 16)
        out[15] = '1';
    return MH_OK;
}

int
mh_cli_agent_env(const char *pydir, const struct mh_agent_env *e)
{
    struct mh_buf b;
    mh_buf_init(&b, 1u << 20);
    const char *old = getenv("PYTHONPATH");
    int rc = mh_buf_printf(&b, "%s/bootstrap:%s%s%s", pydir, pydir,
                           old && *old ? ":" : "", old && *old ? old : "");
    if (!rc)
        rc = mh_buf_put_u8(&b, 0);
    if (rc) {
        mh_errorf("cannot build PYTHONPATH: %s", mh_strerror(rc));
        mh_buf_release(&b);
        return rc;
    }
    rc = set_env("PYTHONPATH", (const char *)b.data);
    mh_buf_release(&b);
    if (rc)
        return rc;

    char num[32], run_id[17];
    if (!e->run_id && mh_cli_run_id_new(run_id)) {
        mh_errorf("cannot make a run id: %s", strerror(errno));
        return MH_EIO;
    }
    if ((rc = set_env("MEMHOUND_RUN_ID", e->run_id ? e->run_id : run_id)))
        return rc;
    if ((rc = set_env("MEMHOUND_OUTPUT", e->output)) ||
        (rc = set_env("MEMHOUND_MODE", e->trace_all ? "trace" : "sample")))
        return rc;
    /* Unset, the agent's defaults apply; an inherited value must not. */
    if (e->registry) {
        if ((rc = set_env("MEMHOUND_REGISTRY", e->registry)))
            return rc;
    } else {
        unsetenv("MEMHOUND_REGISTRY");
    }
    if (e->interval) {
        snprintf(num, sizeof(num), "%llu", (unsigned long long)e->interval);
        if ((rc = set_env("MEMHOUND_INTERVAL", num)))
            return rc;
    } else {
        unsetenv("MEMHOUND_INTERVAL");
    }
    if (e->max_depth) {
        snprintf(num, sizeof(num), "%ld", e->max_depth);
        if ((rc = set_env("MEMHOUND_MAX_DEPTH", num)))
            return rc;
    } else {
        unsetenv("MEMHOUND_MAX_DEPTH");
    }
    if (e->heap_every > 0) {
        snprintf(num, sizeof(num), "%.3f", e->heap_every);
        if ((rc = set_env("MEMHOUND_HEAP_EVERY", num)))
            return rc;
    } else {
        unsetenv("MEMHOUND_HEAP_EVERY");
    }
    if (e->web) {
        if ((rc = set_env("MEMHOUND_WEB", "1")))
            return rc;
    } else {
        unsetenv("MEMHOUND_WEB");
    }
    if (e->force) {
        if ((rc = set_env("MEMHOUND_FORCE", "1")))
            return rc;
    } else {
        unsetenv("MEMHOUND_FORCE");
    }
    return MH_OK;
}
