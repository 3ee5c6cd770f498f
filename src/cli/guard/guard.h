/* cli/guard/: `memhound guard`, split by concern (options.c, log.c,
 * workers.c, signals.c, evidence.c, loop.c); this header holds their
 * shared state (struct guard, struct worker) and functions.
 *
 * `memhound guard` keeps a pre-fork server (gunicorn, uWSGI, ...) alive
 * while its leak is hunted, by recycling workers that pass a limit:
 *
 *   memhound guard --rss-limit 512m -- gunicorn -w 4 app:app
 *   memhound guard --rss-limit 512m --pid $(cat gunicorn.pid)
 *
 * Design (docs/guard.md has the user's view):
 *
 * - One thread, one poll() loop: a timer tick reads /proc for the
 *   master's children (idle workers are checked too: uWSGI's
 *   reload-on-rss only looks after a request), and the same poll waits on
 *   the agents' control sockets (evidence), on pidfds (a signalled worker
 *   exiting) and on a signalfd (signals to the guard). Nothing blocks, so
 *   a slow heap dump of one worker does not delay the checks of others.
 * - Only verified workers are signalled: children of the master that run
 *   its program (exe and command line, or the server's worker name) and
 *   are registered with the agent or named as workers, or that match
 *   --worker-match; others are reported (not_worker), never signalled.
 *   --pid must name a gunicorn or uWSGI master unless --worker-match is
 *   given.
 * - A worker's identity is (pid, start time from /proc/<pid>/stat field
 *   22). Right before any signal the guard opens a pidfd for the pid, then
 *   checks that the process behind the pid still has the master as parent
 *   and the recorded start time, then signals through the pidfd: if the
 *   pid was reused after the check, the pidfd names the old (dead)
 *   process and the signal fails with ESRCH instead of hitting a
 *   stranger. Without pidfds (Linux < 5.3) it falls back to kill(2) right
 *   after the same check, and says so in the start event.
 * - Recycling is graceful: the server's own signal for "finish what you
 *   are doing and exit" (gunicorn SIGTERM, uWSGI SIGHUP to the worker),
 *   the master respawns the worker; SIGKILL only after the mercy period.
 *   At most --max-concurrent recycles at a time (default 1) and never the
 *   last worker that is not being recycled.
 * - Evidence first: a worker that records with memhound is asked over
 *   its control socket (docs/snapshot.md) for its capture path (ping), a
 *   heap dump (dump-wait, bounded by --dump-timeout) and a flush, and the
 *   recycle's log line names them. No socket: it is recycled anyway, and
 *   the log line says why there is no dump.
 * - One JSON object per line per event to --log (default stderr).
 *
 * Exit codes: with -- COMMAND, the command's status (as `run`); with
 * --pid, 0 when told to stop or when the master is gone; 1 on failure;
 * 2 usage error. */
#ifndef MH_CLI_GUARD_H
#define MH_CLI_GUARD_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <regex.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../format/heap.h"
#include "../../util/clock.h"
#include "../../util/ctlsock.h"
#include "../../util/file.h"
#include "../../util/json.h"
#include "../../util/mem.h"
#include "../../util/msg.h"
#include "../../util/proc.h"
#include "../agentctl.h"
#include "../args.h"
#include "../cli.h"
#include "../output.h"
#include "../spawn.h"
#include "../units.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

#define MAX_WORKERS 4096
#define DEFAULT_INTERVAL 1.0
#define DEFAULT_MERCY 60.0
#define DEFAULT_DUMP_TIMEOUT 30.0
/* How long a short control request (ping, flush, stats) may take: the
 * agent answers on its 100 ms mh_guard_tick, unless a thread holds the GIL. */
#define CTL_TIMEOUT 5.0
/* After SIGKILL, how long to wait for the exit before giving up on it
 * (a process in uninterruptible sleep dies only when the sleep ends). */
#define KILL_WAIT 30.0
#define LINE_MAX_LEN 8192
#define CMDLINE_MAX 4096
/* A child that passes the checks a fork cannot fail but is neither
 * registered with the agent nor named as a worker is reported after this
 * long: a new worker needs a moment to open its control socket or to
 * rename itself. */
#define VERIFY_GRACE 3.0

enum server { SRV_UNKNOWN, SRV_GUNICORN, SRV_UWSGI };

struct guard_opts {
    uint64_t rss_limit, uss_limit; /* bytes; 0: none */
    double limit_fraction;         /* of the cgroup's limit; 0: none */
    double max_lifetime, jitter;   /* seconds; 0: none */
    long long max_requests;        /* 0: none */
    double interval, mercy, dump_timeout;
    int max_concurrent;
    int sig;                  /* 0: the server's graceful signal */
    const char *snapshot_dir; /* NULL: the current directory */
    int no_dump;
    const char *log_path;     /* NULL: stderr */
    int force;                /* --force: append to a log of ours, replace
                                 captures of ours */
    const char *output;       /* capture template for -- COMMAND */
    long pid;                 /* --pid; 0 with a command */
    char **command;           /* NULL-terminated, points into argv */
    const char *worker_match; /* --worker-match REGEX; NULL: the server's
                                 own rule */
};

enum wstate {
    W_WATCH,     /* checked every tick */
    W_PING,      /* evidence: asking for the capture path */
    W_DUMP,      /* evidence: waiting for the heap dump */
    W_FLUSH,     /* evidence: waiting for the capture flush */
    W_SIGNALLED, /* graceful signal sent; mercy running */
    W_KILLED,    /* SIGKILL sent after the mercy period */
    W_DONE,      /* exited (maybe not reaped yet) or given up on */
};

/* What a recycle carries from its decision to its log line. */
struct recycle {
    const char *reason; /* "rss", "uss", "cgroup", "lifetime", "requests" */
    double limit;       /* the limit passed, in the reason's unit */
    double decided;     /* monotonic time the recycle was decided */
    double evidence_start;
    char capture[PATH_MAX];
    char dump[PATH_MAX];
    int dump_ok;    /* 1 complete, 0 not asked or failed, -1 timed out */
    char note[256]; /* why there is no (complete) dump */
    struct mh_agentctl_reply reply;
};

struct worker {
    long pid;
    unsigned long long start; /* ticks after boot: identity with pid */
    double born;              /* seconds after boot */
    double jitter;            /* extra lifetime allowed, seconds */
    uint64_t rss, uss;        /* bytes, last read; uss 0 = not read */
    uint64_t uss_rss;         /* rss when uss was read */
    unsigned uss_tick;        /* the tick uss was read in */
    long long requests;       /* from the agent; -1 = unknown */
    unsigned seen;            /* the tick that last listed it */
    double over_since;        /* monotonic: the tick that first saw it over a
                                 limit; 0 when it is not */
    enum wstate state;
    double deadline; /* monotonic: end of the current step */
    double signalled;
    int pidfd; /* -1 when none */
    int ctlfd; /* -1 when none; a stats request in W_WATCH */
    int kind;  /* 1 a verified worker; 0 not yet; -1 not a worker (final),
                  -2 not verified and reported (checked again) */
    double first_seen;               /* monotonic */
    struct mh_agentctl_reply *stats; /* while a stats request runs */
    struct recycle *rec;             /* from decision to exit */
};

struct guard {
    struct guard_opts o;
    long master;
    unsigned long long master_start;
    pid_t child; /* the master when we started it; 0 with --pid */
    enum server server;
    int sig;
    const char *sig_from; /* "option", "server", "default" */
    char snapdir[PATH_MAX];
    int logfd;
    int sigfd;
    int have_pidfd; /* -1 unknown, 0 no (ENOSYS), 1 yes */
    struct worker *w;
    size_t nw;
    unsigned tick_no;
    double next_tick;
    long page;
    double hz;
    int use_cgroup;
    struct mh_cgroup_mem cg;
    int stats_state; /* 1 may work, 0 the agents have no stats */
    int warned_requests;
    int web_seen; /* a worker's agent counts requests (stats web=1) */
    int warned_no_workers;
    int stopping; /* the master was told to stop: recycle no more */
    int done;     /* leave the loop */
    int exit_code;
    int status_known;
    int status;
    long children_buf_n;
    long *children;
    struct pollfd *pfd;
    size_t *pfd_worker;
    char test_victim[256];     /* MEMHOUND_GUARD_TEST_VICTIM (test_victims) */
    char master_exe[PATH_MAX]; /* /proc/<master>/exe */
    char master_cmd[CMDLINE_MAX]; /* its cmdline, read every tick */
    int have_match;
    regex_t match; /* --worker-match */
};

/* One log line being built; k writes into s and is cut at its end. */
struct line {
    char s[LINE_MAX_LEN];
    struct mh_json_sink k;
    int first;
};

extern const char *const mh_guard_server_name[];

/* options.c */
const char *mh_guard_sig_name(int sig);
int mh_guard_parse_args(int argc, char **argv, struct guard_opts *o);

/* log.c */
void mh_guard_lstr(struct line *l, const char *key, const char *v);
void mh_guard_lnum(struct line *l, const char *key, double v, int decimals);
void mh_guard_lint(struct line *l, const char *key, long long v);
void mh_guard_j_begin(struct line *l, const char *event);
void mh_guard_j_end(struct guard *g, struct line *l);
void mh_guard_log_warning(struct guard *g, long pid, const char *fmt, ...)
    MH_PRINTF(3, 4);
void mh_guard_log_not_worker(struct guard *g, long pid, const char *why);
void mh_guard_log_refusal(struct guard *g, long pid, const char *why);
void mh_guard_log_exit(struct guard *g, struct worker *w);
void mh_guard_log_recycle(struct guard *g, struct worker *w, int sig);
void mh_guard_warn_requests_once(struct guard *g, struct worker *w,
                                 const char *why);
void mh_guard_log_stop(struct guard *g, const char *reason, int sig);
void mh_guard_log_start(struct guard *g);

/* workers.c */
enum server mh_guard_detect_server(struct guard *g);
int mh_guard_read_exe(long pid, char *out, size_t n);
int mh_guard_read_master_cmd(struct guard *g);
int mh_guard_classify(struct guard *g, long pid, int soft, char *why,
                      size_t n);
void mh_guard_check_kind(struct guard *g, struct worker *w);
int mh_guard_refuse_master(struct guard *g);
struct worker *mh_guard_find_worker(struct guard *g, long pid);
void mh_guard_close_ctl(struct worker *w);
void mh_guard_forget(struct worker *w);
double mh_guard_jitter_fraction(long pid, unsigned long long start);
int mh_guard_in_flight(const struct worker *w);
double mh_guard_lifetime(const struct worker *w);
void mh_guard_worker_gone(struct guard *g, struct worker *w);
void mh_guard_query_stats(struct guard *g, struct worker *w);
int mh_guard_check_master(struct guard *g);
int mh_guard_uss_due(const struct guard *g, const struct worker *w);

/* signals.c */
int mh_guard_pidfd_open(long pid);
int mh_guard_signal_verified(struct guard *g, struct worker *w, int sig);
void mh_guard_send_graceful(struct guard *g, struct worker *w);
void mh_guard_start_recycle(struct guard *g, struct worker *w,
                            const char *reason, double limit);
void mh_guard_on_signal(struct guard *g, const struct signalfd_siginfo *si);
int mh_guard_setup_signals(struct guard *g, sigset_t *old);
int mh_guard_start_server(struct guard *g, const sigset_t *old,
                          const char *pydir);

/* evidence.c */
int mh_guard_ctl_start(struct guard *g, struct worker *w, const char *req,
                       double timeout, int passfd);
void mh_guard_on_ctl_ready(struct guard *g, struct worker *w);
void mh_guard_on_deadline(struct guard *g, struct worker *w);
int mh_guard_prepare_snapdir(struct guard *g);

/* loop.c */
void mh_guard_tick(struct guard *g);

#endif
