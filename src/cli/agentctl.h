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
 * ours, and in /tmp/memhound-<its uid>; and what was found there. The
 * last three are indices into cand, -1 for none. */
struct mh_agentctl_where {
    char cand[MH_AGENTCTL_CANDIDATES][MH_AGENTCTL_PATH_MAX];
    int n;          /* candidates looked at */
    int found;      /* the first that is a socket (the last looked at) */
    int denied;     /* the first in a directory we may not search */
    int not_socket; /* the first that exists but is not a socket */
};

/* Looks at the candidates in order and stops at the first socket. */
void mh_agentctl_locate(long pid, struct mh_agentctl_where *w);

/* The socket mh_agentctl_locate() found, into out. MH_OK, or MH_EIO with
 * errno ENOENT (the process does not record, or has no control channel)
 * or EACCES (a directory we may not search). */
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
