/* The control protocol, shared by the agent (src/agent/control.c), which
 * creates the sockets and answers, and the commands that connect to them
 * (src/cli/agentctl.c and its users: snapshot, inspect, top, guard): one
 * place for the directory rule, the names and the requests.
 *
 * A process's socket is <dir>/<pid>.sock, where <dir> belongs to the
 * process's effective user:
 *   $XDG_RUNTIME_DIR/memhound   when the variable names a directory and
 *                               that user can use memhound/ in it, else
 *   /tmp/memhound-<euid>
 * The directory is created 0700, never through a symlink, and used only
 * when it is a real directory owned by that user and open to nobody else
 * (ssh's rule for ~/.ssh); the socket is 0600 and owned by the same user.
 * docs/security.md, "Control sockets". */
#ifndef MH_CTLSOCK_H
#define MH_CTLSOCK_H

#include <stddef.h>
#include <sys/types.h>

#include "msg.h"

#define MH_CTLSOCK_SUBDIR "memhound"           /* under $XDG_RUNTIME_DIR */
#define MH_CTLSOCK_TMP_FMT "/tmp/memhound-%lu" /* the euid */
#define MH_CTLSOCK_SUFFIX ".sock"

/* The requests: one line each, answered by one line starting "ok" or
 * "error <why>" (docs/snapshot.md). */
#define MH_CTL_PING "ping"   /* ok <pid> <capture path> */
#define MH_CTL_STATS "stats" /* ok pid=<pid> rss=<bytes> ... (key=value) */
#define MH_CTL_TRIM "trim"   /* ok rss_before=... rss_after=... released= */
#define MH_CTL_FLUSH "flush" /* ok, once the capture's buffer is written */
/* "dump /abs/path" (or the path plus a descriptor passed with it): ok
 * <walker pid> <pause ns> once the walker is forked; "dump-wait" answers
 * when it is done: ok <walker pid> <pause ns> <walk ns> [unverified]. */
#define MH_CTL_DUMP "dump"
#define MH_CTL_DUMP_WAIT "dump-wait"

/* Writes the /tmp fallback directory of `uid` into out. MH_OK, or
 * MH_ETOOBIG when it does not fit. */
int mh_ctlsock_tmp_dir(unsigned long uid, char *out, size_t n) MH_MUST_USE;

/* Writes <dir>/<pid>.sock into out. MH_OK, or MH_ETOOBIG. */
int mh_ctlsock_path(const char *dir, long pid, char *out,
                    size_t n) MH_MUST_USE;

/* Whether `dir` may hold sockets of user `uid`: a directory (not a
 * symlink) owned by uid whose mode gives nothing to group or others.
 * MH_OK, or MH_EIO with the reason in err (e.g. "'/tmp/memhound-0'
 * belongs to uid 1000, not to uid 0") and errno: lstat's (ENOENT: not
 * there), ELOOP (a symlink), EEXIST (not a directory), EPERM (another
 * owner, or open to others). */
int mh_ctlsock_check_dir(const char *dir, unsigned long uid, char *err,
                         size_t errlen) MH_MUST_USE;

/* Creates `dir` 0700 for the calling process's effective user, or checks
 * an existing one with mh_ctlsock_check_dir(). MH_OK, or MH_EIO with the
 * reason in err. */
int mh_ctlsock_make_dir(const char *dir, char *err, size_t errlen) MH_MUST_USE;

/* Whether `dir` may hold the directory of the calling process's sockets:
 * owned by its effective user or root, and writable by nobody else unless
 * sticky (as /tmp), so no one can swap the directory we made for another
 * (ssh's rule for the parents of its files). 1 yes, 0 no. */
int mh_ctlsock_parent_ok(const char *dir);

/* Whether `path` is a socket owned by `uid` (lstat: a symlink is not).
 * 1 yes, 0 no (with errno ENOENT, EACCES, or ENOTSOCK / EPERM for a file
 * that is not a socket / belongs to someone else). */
int mh_ctlsock_is_ours(const char *path, unsigned long uid);

/* Removes the sockets in `dir` left by processes that are gone: the pid
 * does not exist and nobody listens (a process in another pid namespace
 * sharing /tmp may still use its own). `self` (our pid) is kept. A process
 * ended by a signal or os._exit(), or a worker that moved its socket when
 * it changed user, leaves such files. */
void mh_ctlsock_sweep(const char *dir, long self);

#endif
