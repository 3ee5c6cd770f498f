/* The client side of the agent's control channel (src/agent/control.h,
 * docs/snapshot.md) for commands that talk to many processes at once
 * (guard, top): find a process's socket, connect without blocking, send
 * one request line, collect the one reply line as it arrives. The agent
 * answers on its writer thread's tick (every 100 ms), so a caller with
 * other work polls the descriptor instead of waiting.
 *
 * Requests: ping, flush, dump <path>, dump-wait <path>, stats (key=value
 * numbers, docs/verdict.md; older agents answer "error unknown request")
 * and trim (malloc_trim(0) in the target). */
#ifndef MH_CLI_AGENTCTL_H
#define MH_CLI_AGENTCTL_H

#include <stddef.h>

#include "../util/msg.h"

#define MH_AGENTCTL_LINE_MAX 4352 /* PATH_MAX and a reply's words */

/* Finds where the agent of `pid` put its socket (its XDG_RUNTIME_DIR from
 * /proc/<pid>/environ, ours, /tmp/memhound-<its uid>) into out. MH_OK, or
 * MH_EIO with errno ENOENT (the process does not record, or has no
 * control channel) or EACCES (a directory we may not search). */
int mh_agentctl_find(long pid, char *out, size_t n) MH_MUST_USE;

/* Connects to `path` and checks that process `pid` serves it
 * (SO_PEERCRED). Returns a non-blocking close-on-exec descriptor the
 * caller closes, or -1 with errno: ECONNREFUSED (a stale socket left by a
 * process that ended), EPERM (another process serves it), or connect's. */
int mh_agentctl_connect(long pid, const char *path);

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

/* All of the above for one request, waiting at most `timeout` seconds:
 * MH_OK with the reply line in r, MH_EIO with errno otherwise (ETIMEDOUT
 * when no full reply came in time). */
int mh_agentctl_request(long pid, const char *request, double timeout,
                        struct mh_agentctl_reply *r) MH_MUST_USE;

#endif
