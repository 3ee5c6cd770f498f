/* Running a command for run and guard (spawn.h). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "spawn.h"

static int
exit_code(int err)
{
    return err == ENOENT || err == ENOTDIR ? 127 : 126;
}

int
mh_spawn_start(char **argv, void (*setup)(const void *arg), const void *arg,
               pid_t *pid, int *errfd)
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC)) {
        mh_errorf("cannot create a pipe: %s", strerror(errno));
        return MH_EIO;
    }
    fflush(NULL);
    pid_t child = fork();
    if (child < 0) {
        mh_errorf("cannot fork: %s", strerror(errno));
        close(pfd[0]);
        close(pfd[1]);
        return MH_EIO;
    }
    if (child == 0) {
        close(pfd[0]);
        setup(arg);
        execvp(argv[0], argv);
        int err = errno;
        ssize_t k;
        do
            k = write(pfd[1], &err, sizeof(err));
        while (k < 0 && errno == EINTR);
        _exit(exit_code(err));
    }
    close(pfd[1]);
    *pid = child;
    *errfd = pfd[0];
    return MH_OK;
}

int
mh_spawn_exec_errno(int errfd)
{
    int err = 0;
    ssize_t k;
    do
        k = read(errfd, &err, sizeof(err));
    while (k < 0 && errno == EINTR);
    close(errfd);
    return k == (ssize_t)sizeof(err) ? err : 0;
}

int
mh_spawn_exec_failed(const char *cmd, int err)
{
    /* A shell's words: a bare name is looked up on PATH. */
    mh_errorf("cannot run '%s': %s", cmd,
              err == ENOENT && !strchr(cmd, '/') ? "command not found"
                                                 : strerror(err));
    return exit_code(err);
}

int
mh_spawn_pass_status(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (!WIFSIGNALED(status))
        return MH_EXIT_FAIL;
    int sig = WTERMSIG(status);
    /* The child dumped core already, if it was going to; a core of
     * memhound would only mislead. */
    struct rlimit none = {0, 0};
    setrlimit(RLIMIT_CORE, &none);
    signal(sig, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    fflush(NULL);
    raise(sig);
    return 128 + sig; /* the signal did not end us after all */
}
