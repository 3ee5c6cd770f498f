/* The control channel: how `memhound snapshot PID` asks a recording
 * process for a heap dump from outside, and where `--heap-every` dumps
 * are taken. A Unix socket per recording process,
 *   $XDG_RUNTIME_DIR/memhound/<pid>.sock, or
 *   /tmp/memhound-<euid>/<pid>.sock when XDG_RUNTIME_DIR is unset,
 * in a 0700 directory that must be ours (never a symlink), socket 0600,
 * peers checked with SO_PEERCRED (same uid or root); src/util/ctlsock.h
 * has the rule. When the process changes its effective user (a worker
 * dropping root), the socket moves to the new user's directory at the
 * next tick.
 *
 * No thread of its own: the writer thread calls mh_control_tick() on
 * every wake-up; accept and reads are non-blocking. One request per
 * connection, one reply line, then the agent closes it:
 *   ping               -> ok <pid> <capture path>
 *   flush              -> ok
 *   dump <path>        -> ok <walker pid> <pause_ns>   (after the fork;
 *                         into the descriptor passed with the request
 *                         (SCM_RIGHTS) when there is one, else the agent
 *                         creates <path>)
 *   dump-wait <path>   -> ok <walker pid> <pause_ns> <walk_ns>
 *                         (after the walker exited 0; walk_ns = fork to
 *                         exit), with " unverified" appended when another
 *                         waitpid() reaped the walker before we saw its
 *                         status (the client then checks the file)
 * or `error <message>`. Paths must be absolute. Every dump is recorded in
 * the capture as a MARKER kind 1 (heap dump written) with its path.
 *
 * State: owned by the writer thread while it runs; the open/close calls
 * run with the GIL held while the writer thread is stopped. */
#ifndef MH_AGENT_CONTROL_H
#define MH_AGENT_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#include "../util/msg.h"

/* Creates this process's socket (replacing a stale one with our pid).
 * Returns 0, or -1 with a reason in err (the caller warns; recording
 * goes on without a control channel). */
int mh_control_open(char *err, size_t errlen) MH_MUST_USE;
/* Closes the socket and its connections and removes the socket file,
 * when this process created it. Idempotent. */
void mh_control_close(void);
/* In a forked child: drops the parent's socket and connections without
 * touching the parent's file. */
void mh_control_forget(void);
/* The socket path, "" when closed. */
const char *mh_control_path(void);

/* Periodic dumps every `every_ns` (0 = off), the first one `every_ns`
 * from now; `now_ns` is mh_writer_now_ns(). */
void mh_control_set_heap_every(uint64_t every_ns, uint64_t now_ns);

/* Serves the socket, reaps finished walkers, takes a periodic dump when
 * one is due. Writer thread, GIL not held (taken only to fork a dump). */
void mh_control_tick(uint64_t now_ns);
/* Whether something is in progress (a connection, a walker a client
 * waits for): the writer then wakes more often than every tick. */
int mh_control_busy(void);

/* Writes the next default dump path next to the capture,
 * "<capture stem>.heap<N>.mhh" (N counts this process's dumps), into out.
 * Returns 0, or -1 when not recording or it does not fit. */
int mh_control_next_dump_path(char *out, size_t n) MH_MUST_USE;

/* Records a dump that was written (forked) in the capture: a MARKER
 * kind 1 with its path. */
void mh_control_note_dump(const char *path);

#endif
