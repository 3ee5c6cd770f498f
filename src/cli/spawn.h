/* Starting a command and ending as it ended, for the commands that run
 * one (run, guard). exec's failure must be told apart from the command's
 * own exit 127, so its errno comes back over a close-on-exec pipe: the
 * pipe closes empty when exec succeeds. */
#ifndef MH_CLI_SPAWN_H
#define MH_CLI_SPAWN_H

#include <sys/types.h>

#include "../util/msg.h"

/* Forks a child that calls setup(arg) (the signal dispositions and mask
 * the command is to start with) and then execvp(argv[0], argv); a child
 * whose exec fails exits 127 or 126 (mh_spawn_exec_failed()). On success *pid
 * is the child and *errfd the pipe's read end, which the caller owns and hands
 * to mh_spawn_exec_errno(). Reports a failure of pipe or fork and returns
 * MH_EIO. */
int mh_spawn_start(char **argv, void (*setup)(const void *arg),
                   const void *arg, pid_t *pid, int *errfd) MH_MUST_USE;

/* Waits until the child has exec'd or failed and closes errfd; returns
 * exec's errno, 0 when the command runs. */
int mh_spawn_exec_errno(int errfd);

/* Reports "cannot run 'CMD': ..." for exec's errno `err` and returns the
 * exit code a shell gives for it: 127 not found, 126 found but not run
 * (the code the child exited with). */
int mh_spawn_exec_failed(const char *cmd, int err);

/* Ends memhound the way the command ended: returns its exit code, or
 * re-raises the signal that killed it (returning 128 + the signal only if
 * that does not end us). */
int mh_spawn_pass_status(int status);

#endif
