/* The client side of the agent's control channel (src/agent/control.h,
 * docs/snapshot.md), for every command that talks to agents (guard, top,
 * snapshot, inspect): find a process's socket, connect without blocking,
 * send one request line, collect the one reply line as it arrives. The
 * agent answers on its writer thread's tick (every 100 ms), so a caller
 * with other work polls the descriptor instead of waiting; one that has
 * none waits with mh_agentctl_wait().
 *
 * Requests: ping, flush, dump <path>, dump-wait <path>, stats (key=value
 * numbers, docs/verdict.md; older agents answer "error unknown request")
 * and trim (malloc_trim(0) in the target). */
#ifndef MH_CLI_AGENTCTL_H
#define MH_CLI_AGENTCTL_H

#include <stddef.h>
#include <sys/un.h>

#include "../util/msg.h"

#define MH_AGENTCTL_LINE_MAX 4352 /* PATH_MAX and a reply's words */
#define MH_AGENTCTL_PATH_MAX sizeof(((struct sockaddr_un *)0)->sun_path)
#define MH_AGENTCTL_CANDIDATES 3

/* Where the agent of a process may have put its socket, most likely
 * first: under its XDG_RUNTIME_DIR (from /proc/<pid>/environ), under
 * ours, and in /tmp/memhound-<its effective uid> (src/util/ctlsock.h);
 * and what was found there. A candidate counts only in a directory of
 * the process's effective user open to nobody else, as a socket of that
 * user: a worker that dropped root is looked for where its new user's
 * agent put it. The index fields point into cand, -1 for none. */
struct mh_agentctl_where {
    char cand[MH_AGENTCTL_CANDIDATES][MH_AGENTCTL_PATH_MAX];
    int n;          /* candidates looked at */
    int found;      /* the first that is a socket (the last looked at) */
    int denied;     /* the first in a directory we may not search */
    int not_socket; /* the first that exists but is not a socket */
    int unsafe;     /* the first refused by the ownership rule */
    char why[MH_AGENTCTL_PATH_MAX + 96]; /* why `unsafe` was refused */
};

/* Looks at the candidates in order and stops at the first socket. */
void mh_agentctl_locate(long pid, struct mh_agentctl_where *w);

/* Writes why nothing was found into out (a message without the
 * "memhound: " prefix) and returns its errno: EINVAL (not a socket),
 * EACCES, EPERM (refused by the ownership rule) or ENOENT (not
 * recording). */
int mh_agentctl_explain(const struct mh_agentctl_where *w, long pid,
                        char *out, size_t n);

/* The socket mh_agentctl_locate() found, into out. MH_OK, or MH_EIO with
 * errno ENOENT (the process does not record, or has no control channel),
 * EACCES (a directory we may not search) or EPERM (refused by the
 * ownership rule). */
int mh_agentctl_find(long pid, char *out, size_t n) MH_MUST_USE;

/* Connects to `path` and checks that process `pid` serves it
 * (SO_PEERCRED). Returns a non-blocking close-on-exec descriptor the
 * caller closes, or -1 with errno: ECONNREFUSED (a stale socket left by a
 * process that ended), EPERM (another process serves it: then *peer, when
 * peer is not NULL, is that process, or -1 if it could not be told), or
 * connect's. */
int mh_agentctl_connect(long pid, const char *path, long *peer);

/* Sends `request` and a newline. MH_OK or MH_EIO (errno). */
int mh_agentctl_send(int fd, const char *request) MH_MUST_USE;
/* The same with descriptor `passfd` attached (SCM_RIGHTS; -1: none):
 * `dump`/`dump-wait` then write into it, a file the caller created,
 * instead of opening the path themselves. */
int mh_agentctl_send_fd(int fd, const char *request,
                        int passfd) MH_MUST_USE;

/* A reply being read. */
struct mh_agentctl_reply {
    char line[MH_AGENTCTL_LINE_MAX];
    size_t len;
};

/* Reads what has arrived without blocking. Returns 1 when the line is
 * complete (r->line holds it, without the newline), 0 when more is to
 * come, -1 on error with errno (0 when the agent closed without a full
 * line, EMSGSIZE for a line too long). */
int mh_agentctl_read(int fd, struct mh_agentctl_reply *r);

/* Waits at most `timeout` seconds for the reply line to be complete:
 * MH_OK with the line in r, MH_EIO with errno otherwise (ETIMEDOUT, 0
 * when the agent closed without a full line, EMSGSIZE, or poll's). */
int mh_agentctl_wait(int fd, struct mh_agentctl_reply *r,
                     double timeout) MH_MUST_USE;

/* All of the above for one request, waiting at most `timeout` seconds:
 * MH_OK with the reply line in r, MH_EIO with errno otherwise (ETIMEDOUT
 * when no full reply came in time). */
int mh_agentctl_request(long pid, const char *request, double timeout,
                        struct mh_agentctl_reply *r) MH_MUST_USE;

#endif
