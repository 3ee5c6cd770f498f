/* `memhound guard`: keeps a pre-fork server (gunicorn, uWSGI, ...) alive
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

#include "../format/heap.h"
#include "../util/clock.h"
#include "../util/file.h"
#include "../util/mem.h"
#include "../util/msg.h"
#include "../util/proc.h"
#include "agentctl.h"
#include "args.h"
#include "cli.h"
#include "output.h"
#include "spawn.h"
#include "units.h"

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
 * agent answers on its 100 ms tick, unless a thread holds the GIL. */
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
static const char *const server_name[] = {"unknown", "gunicorn", "uwsgi"};

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
    const char *log_path; /* NULL: stderr */
    int force;            /* --force: append to a log of ours, replace
                             captures of ours */
    const char *output;   /* capture template for -- COMMAND */
    long pid;             /* --pid; 0 with a command */
    char **command;       /* NULL-terminated, points into argv */
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
    double first_seen; /* monotonic */
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
    char test_victim[256]; /* MEMHOUND_GUARD_TEST_VICTIM (test_victims) */
    char master_exe[PATH_MAX];  /* /proc/<master>/exe */
    char master_cmd[CMDLINE_MAX]; /* its cmdline, read every tick */
    int have_match;
    regex_t match; /* --worker-match */
};

/* ---- small helpers ---- */

static const struct {
    const char *name;
    int sig;
} signals[] = {
    {"TERM", SIGTERM}, {"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT},
    {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"ABRT", SIGABRT}, {"KILL", SIGKILL},
};

static const char *
sig_name(int sig)
{
    static char buf[16];
    for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++)
        if (signals[i].sig == sig) {
            snprintf(buf, sizeof(buf), "SIG%s", signals[i].name);
            return buf;
        }
    snprintf(buf, sizeof(buf), "%d", sig);
    return buf;
}

static int
parse_signal(const char *s)
{
    if (!strncmp(s, "SIG", 3))
        s += 3;
    for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++)
        if (!strcmp(s, signals[i].name))
            return signals[i].sig;
    char *end;
    long v = strtol(s, &end, 10);
    if (end != s && !*end && v > 0 && v < NSIG)
        return (int)v;
    return 0;
}

/* ---- the JSON log ---- */

struct line {
    char s[LINE_MAX_LEN];
    size_t n;
    int first;
};

static void lput(struct line *l, const char *fmt, ...) MH_PRINTF(2, 3);

static void
lput(struct line *l, const char *fmt, ...)
{
    if (l->n >= sizeof(l->s))
        return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(l->s + l->n, sizeof(l->s) - l->n, fmt, ap);
    va_end(ap);
    if (k < 0)
        return;
    l->n += (size_t)k;
    if (l->n >= sizeof(l->s))
        l->n = sizeof(l->s); /* truncated; j_end repairs the tail */
}

static void
lkey(struct line *l, const char *key)
{
    lput(l, "%s\"%s\":", l->first ? "" : ",", key);
    l->first = 0;
}

/* A JSON string: quotes, backslashes and control characters escaped;
 * other bytes (paths are UTF-8 in practice) pass through. */
static void
lstr(struct line *l, const char *key, const char *v)
{
    lkey(l, key);
    if (!v) {
        lput(l, "null");
        return;
    }
    lput(l, "\"");
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p == '"' || *p == '\\')
            lput(l, "\\%c", *p);
        else if (*p < 0x20)
            lput(l, "\\u%04x", *p);
        else
            lput(l, "%c", *p);
    }
    lput(l, "\"");
}

static void
lnum(struct line *l, const char *key, double v, int decimals)
{
    lkey(l, key);
    if (isfinite(v))
        lput(l, "%.*f", decimals, v);
    else
        lput(l, "null");
}

static void
lint(struct line *l, const char *key, long long v)
{
    lkey(l, key);
    lput(l, "%lld", v);
}

static void
j_begin(struct line *l, const char *event)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[40];
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    l->n = 0;
    l->first = 1;
    lput(l, "{");
    lkey(l, "time");
    lput(l, "\"%s.%03ldZ\"", when, ts.tv_nsec / 1000000);
    lstr(l, "event", event);
}

static void
j_end(struct guard *g, struct line *l)
{
    if (l->n >= sizeof(l->s) - 4) {
        /* Cannot happen with PATH_MAX paths, but a cut line must stay
         * one line of valid JSON. */
        l->n = 0;
        l->first = 1;
        lput(l, "{\"event\":\"error\",\"message\":\"log line too long\"");
    }
    lput(l, "}\n");
    const char *p = l->s;
    size_t left = l->n;
    while (left) {
        ssize_t k = write(g->logfd, p, left);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return; /* a log that cannot be written must not stop us */
        p += k;
        left -= (size_t)k;
    }
}

static void log_warning(struct guard *g, long pid, const char *fmt, ...)
    MH_PRINTF(3, 4);

static void
log_warning(struct guard *g, long pid, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    struct line l;
    j_begin(&l, "warning");
    if (pid > 0)
        lint(&l, "pid", pid);
    lstr(&l, "message", msg);
    j_end(g, &l);
}

/* ---- options ---- */

static void
usage(FILE *out)
{
    fprintf(
        out,
        "usage: memhound guard [options] -- COMMAND [ARGS...]\n"
        "       memhound guard [options] --pid MASTER\n"
        "\n"
        "Watches the workers of a pre-fork server (the children of its\n"
        "master) on a timer and recycles one that passes a limit: first a\n"
        "heap dump and a capture flush when it records with memhound, then\n"
        "the server's graceful signal, SIGKILL after the mercy period.\n"
        "With COMMAND the server is started recording, as 'memhound run'\n"
        "does; with --pid an existing master is guarded.\n"
        "\n"
        "limits (at least one):\n"
        "      --rss-limit SIZE      a worker's resident memory (512m, 1g)\n"
        "      --uss-limit SIZE      a worker's private memory (what its\n"
        "                            exit would free)\n"
        "      --limit-fraction F    when the cgroup's memory use passes F\n"
        "                            (0-1) of its limit, the largest worker\n"
        "      --max-lifetime DUR    a worker's age (30m, 12h)\n"
        "      --jitter DUR          up to this much more lifetime, random\n"
        "                            per worker, so they do not all expire\n"
        "                            together\n"
        "      --max-requests N      requests served (turns memhound's web\n"
        "                            layer on in COMMAND; with --pid, its\n"
        "                            workers must count requests)\n"
        "recycling:\n"
        "      --interval DUR        time between checks (default 1s)\n"
        "      --mercy DUR           graceful exit time before SIGKILL\n"
        "                            (default 60s)\n"
        "      --max-concurrent N    recycles at a time (default 1; never\n"
        "                            all workers)\n"
        "      --signal SIG          graceful signal (default: SIGTERM for\n"
        "                            gunicorn, SIGHUP for uWSGI, detected\n"
        "                            from the master's command line)\n"
        "      --worker-match REGEX  the master's children whose command\n"
        "                            line matches REGEX (POSIX extended)\n"
        "                            are its workers; needed for a server\n"
        "                            that is neither gunicorn nor uWSGI\n"
        "evidence and log:\n"
        "      --snapshot-dir DIR    heap dumps (and, with COMMAND, the\n"
        "                            captures) go here (default: .)\n"
        "      --dump-timeout DUR    longest wait for a heap dump (30s)\n"
        "      --no-dump             recycle without asking for evidence\n"
        "  -o, --output PATH         with COMMAND: capture path template,\n"
        "                            %%p = pid, %%r = random (default\n"
        "                            DIR/memhound.%%p.%%r.mhc)\n"
        "      --log FILE            JSON lines, one per event (default\n"
        "                            stderr); created mode 0600\n"
        "      --force               append to an existing log, replace\n"
        "                            existing captures, if they are\n"
        "                            regular files of yours\n"
        "  -h, --help                show this help\n"
        "\n"
        "Only verified workers are signalled: children of the master that\n"
        "run its program and are registered with memhound or named as\n"
        "the server names its workers (docs/guard.md); other children are\n"
        "reported, never signalled.\n"
        "\n"
        "Signals: with COMMAND, TERM, INT and QUIT are passed to the\n"
        "server, which stops, and the guard exits with its status; HUP,\n"
        "USR1, USR2, WINCH, TTIN and TTOU are passed on too. With --pid,\n"
        "TERM, INT and HUP stop the guard; the server runs on.\n");
}

static int
parse_args(int argc, char **argv, struct guard_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->interval = DEFAULT_INTERVAL;
    o->mercy = DEFAULT_MERCY;
    o->dump_timeout = DEFAULT_DUMP_TIMEOUT;
    o->max_concurrent = 1;
    int i;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *val = NULL;
        int r;
        if (!strcmp(a, "--")) {
            i++;
            break;
        }
        if (a[0] != '-' || !a[1])
            break;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(MH_EXIT_OK);
        } else if (!strcmp(a, "--no-dump")) {
            o->no_dump = 1;
        } else if (!strcmp(a, "--force")) {
            o->force = 1;
        } else if ((r = mh_args_take_value(argc, argv, &i, NULL, "--rss-limit",
                                           &val)) ||
                   (r = mh_args_take_value(argc, argv, &i, NULL, "--uss-limit",
                                           &val))) {
            if (r < 0)
                return mh_args_missing(a);
            uint64_t *dst = a[2] == 'r' ? &o->rss_limit : &o->uss_limit;
            if (mh_units_parse_size(val, dst))
                return mh_args_bad_value(a[2] == 'r' ? "--rss-limit"
                                                     : "--uss-limit",
                                         val, "a size such as 512m or 1.5g");
        } else if ((r = mh_args_take_value(argc, argv, &i, NULL,
                                           "--limit-fraction", &val))) {
            if (r < 0)
                return mh_args_missing(a);
            char *end;
            errno = 0;
            o->limit_fraction = strtod(val, &end);
            if (errno || end == val || *end ||
                !(o->limit_fraction > 0 && o->limit_fraction <= 1))
                return mh_args_bad_value(
                    "--limit-fraction", val,
                    "a fraction above 0, at most 1, such as 0.9");
        } else if ((r = mh_args_take_value(argc, argv, &i, NULL,
                                           "--max-lifetime", &val))) {
            if (r < 0)
                return mh_args_missing(a);
            if (mh_units_parse_duration(val, 1, &o->max_lifetime))
                return mh_args_bad_value(
                    "--max-lifetime", val,
                    "a duration of 1s or more, such as 12h");
        } else if ((r = mh_args_take_value(argc, argv, &i, NULL, "--jitter",
                                           &val))) {
            if (r < 0)
                return mh_args_missing(a);
            if (mh_units_parse_duration(val, 0, &o->jitter))
                return mh_args_bad_value("--jitter", val,
                                         "a duration such as 10m or 0");
        } else if ((r = mh_args_take_value(argc, argv, &i, NULL,
                                           "--max-requests", &val))) {
            if (r < 0)
                return mh_args_missing(a);
            char *end;
            errno = 0;
            o->max_requests = strtoll(val, &end, 10);
            if (errno || end == val || *end || o->max_requests < 1)
                return mh_args_bad_value("--max-requests", val,
                                         "a positive count");
        } else if ((r = mh_args_take_value(argc, argv, &i, NULL, "--interval",
                                           &val))) {
            if (r < 0)
                return mh_args_missing(a);
            if (mh_units_parse_duration(val, 0.1, &o->interval))
                return mh_args_bad_value(
                    "--interval", val,
                    "a duration of 100ms or more, such as 1s");
        } else if ((r = mh_args_take_value(argc, argv, &i, NULL, "--mercy",
                                           &val))) {
            if (r < 0)
                return mh_args_missing(a);
            if (mh_units_parse_duration(val, 0.1, &o->mercy))
                return mh_args_bad_value(
                    "--mercy", val,
                    "a duration of 100ms or more, such as 60s");
        } else if ((r = mh_args_take_value(argc, argv, &i, NULL,
                                           "--dump-timeout", &val))) {
            if (r < 0)
                return mh_args_missing(a);
            if (mh_units_parse_duration(val, 0.1, &o->dump_timeout))
                return mh_args_bad_value(
                    "--dump-timeout", val,
                    "a duration of 100ms or more, such as 30s");
        } else if ((r = mh_args_take_value(argc, argv, &i, NULL,
                                           "--max-concurrent", &val))) {
            if (r < 0)
                return mh_args_missing(a);
            char *end;
            errno = 0;
            long v = strtol(val, &end, 10);
            if (errno || end == val || *end || v < 1 || v > MAX_WORKERS)
                return mh_args_bad_value("--max-concurrent", val,
                                         "a count of 1 or more");
            o->max_concurrent = (int)v;
        } else if ((r = mh_args_take_value(argc, argv, &i, NULL, "--signal",
                                           &val))) {
            if (r < 0)
                return mh_args_missing(a);
            o->sig = parse_signal(val);
            if (!o->sig || o->sig == SIGKILL)
                return mh_args_bad_value(
                    "--signal", val,
                    "a signal name or number such as TERM, "
                    "HUP or QUIT (KILL is not graceful)");
        } else if ((r = mh_args_take_value(argc, argv, &i, NULL,
                                           "--snapshot-dir", &val))) {
            if (r < 0 || !*val)
                return mh_args_missing(a);
            o->snapshot_dir = val;
        } else if ((r = mh_args_take_value(argc, argv, &i, "-o", "--output",
                                           &val))) {
            if (r < 0 || !*val)
                return mh_args_missing(a);
            o->output = val;
        } else if ((r = mh_args_take_value(argc, argv, &i, NULL, "--log",
                                           &val))) {
            if (r < 0 || !*val)
                return mh_args_missing(a);
            o->log_path = val;
        } else if ((r = mh_args_take_value(argc, argv, &i, NULL,
                                           "--worker-match", &val))) {
            if (r < 0 || !*val)
                return mh_args_missing(a);
            o->worker_match = val;
        } else if ((r = mh_args_take_value(argc, argv, &i, NULL, "--pid",
                                           &val))) {
            if (r < 0)
                return mh_args_missing(a);
            /* pid 1 is a valid --pid (a server in a container), refused
             * later unless it is a recognised master. */
            if (mh_args_parse_pid(val, &o->pid) || o->pid < 1)
                return mh_args_bad_value("--pid", val, "a process id");
        } else {
            mh_errorf("unknown option '%s' for guard; see 'memhound guard "
                      "--help'",
                      a);
            return MH_EXIT_USAGE;
        }
    }
    if (i < argc)
        o->command = argv + i;
    if (!o->command == !o->pid) {
        mh_errorf("guard needs either --pid MASTER or a command, e.g. "
                  "'memhound guard --rss-limit 512m -- gunicorn app:app'");
        usage(stderr);
        return MH_EXIT_USAGE;
    }
    if (!o->rss_limit && !o->uss_limit && !o->limit_fraction &&
        !o->max_lifetime && !o->max_requests) {
        mh_errorf("guard needs a limit: --rss-limit, --uss-limit, "
                  "--limit-fraction, --max-lifetime or --max-requests");
        return MH_EXIT_USAGE;
    }
    if (o->jitter > 0 && !o->max_lifetime)
        mh_warnf("--jitter has no effect without --max-lifetime");
    if (o->output && !o->command) {
        mh_errorf("--output needs a command (with --pid the server records "
                  "as it was started)");
        return MH_EXIT_USAGE;
    }
    return MH_EXIT_OK;
}

/* ---- the server ---- */

static enum server
server_of_word(const char *w)
{
    const char *base = strrchr(w, '/');
    base = base ? base + 1 : w;
    if (strstr(base, "gunicorn"))
        return SRV_GUNICORN;
    /* "uwsgi", "uwsgi-core", or renamed "uWSGI master" */
    if (!strncasecmp(base, "uwsgi", 5))
        return SRV_UWSGI;
    return SRV_UNKNOWN;
}

/* Looks at the first words of a command line: the program, or the
 * script or -m module a python runs. */
static enum server
server_of_words(const char *const *words, size_t n)
{
    for (size_t i = 0; i < n && i < 8; i++) {
        enum server s = server_of_word(words[i]);
        if (s != SRV_UNKNOWN)
            return s;
        const char *base = strrchr(words[i], '/');
        base = base ? base + 1 : words[i];
        /* Past env and its assignments, an interpreter and its options,
         * the first other word decides. */
        if (i > 0 && words[i][0] != '-' && strncmp(base, "python", 6) &&
            !strchr(words[i], '='))
            break;
        if (i == 0 && strcmp(base, "env") && strncmp(base, "python", 6))
            break;
    }
    return SRV_UNKNOWN;
}

static enum server
detect_server(struct guard *g)
{
    if (g->o.command) {
        size_t n = 0;
        while (g->o.command[n])
            n++;
        return server_of_words((const char *const *)g->o.command, n);
    }
    char buf[4096];
    size_t len;
    const char *words[8];
    size_t n = 0;
    if (!mh_proc_read_cmdline(g->master, buf, sizeof(buf), &len))
        for (size_t i = 0; i < len && n < 8; i += strlen(buf + i) + 1)
            words[n++] = buf + i;
    enum server s = server_of_words(words, n);
    if (s == SRV_UNKNOWN) {
        /* A master that renamed itself ("gunicorn: master [app]"). */
        struct mh_proc_stat st;
        if (!mh_proc_read_stat(g->master, &st))
            s = server_of_word(st.comm);
        if (s == SRV_UNKNOWN && n)
            s = server_of_word(words[0]);
    }
    return s;
}

/* ---- which children are workers ---- */

/* A command line as one string: NULs between words become spaces,
 * trailing NULs and spaces (a renamed process pads its argv) go. */
static void
cmdline_text(char *buf, size_t len)
{
    while (len && (buf[len - 1] == '\0' || buf[len - 1] == ' '))
        len--;
    for (size_t i = 0; i < len; i++)
        if (buf[i] == '\0')
            buf[i] = ' ';
    buf[len] = '\0';
}

static int
read_exe(long pid, char *out, size_t n)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/exe", pid);
    ssize_t k = readlink(path, out, n - 1);
    if (k < 0)
        return -1;
    out[k] = '\0';
    return 0;
}

/* The master's command line, as a string; it changes when the server
 * renames itself after starting (gunicorn: master [app]). */
static int
read_master_cmd(struct guard *g)
{
    size_t len;
    if (mh_proc_read_cmdline(g->master, g->master_cmd,
                             sizeof(g->master_cmd) - 1, &len))
        return -1;
    cmdline_text(g->master_cmd, len);
    return 0;
}

/* Whether `title` is how the server names its workers: gunicorn with
 * setproctitle, "gunicorn: worker [NAME]" under a master called
 * "gunicorn: master [NAME]"; uWSGI (--auto-procname, with or without
 * --procname-prefix), "...uWSGI worker N". */
static int
named_worker(const struct guard *g, const char *title)
{
    static const char gm[] = "gunicorn: master [", gw[] = "gunicorn: worker [";
    if (g->server == SRV_GUNICORN)
        return !strncmp(g->master_cmd, gm, sizeof(gm) - 1) &&
               !strncmp(title, gw, sizeof(gw) - 1) &&
               !strcmp(title + sizeof(gw) - 1,
                       g->master_cmd + sizeof(gm) - 1);
    if (g->server == SRV_UWSGI) {
        static const char uw[] = "uWSGI worker ";
        const char *p = strstr(title, uw);
        if (!p)
            return 0;
        p += sizeof(uw) - 1;
        if (!*p)
            return 0;
        while (*p >= '0' && *p <= '9')
            p++;
        return !*p;
    }
    return 0;
}

/* Whether `pid`, a child of the master, is a worker the guard may
 * signal (docs/guard.md, "Which processes are signalled"). Returns 1
 * yes; 0 not yet known (only the registration or the naming is
 * missing: a new worker may still get them); -1 no (it runs another
 * program: final). `why` says why not. With `soft` 0 the registration
 * is not asked for: a worker already signalled may have closed its
 * agent while it exits. */
static int
classify(struct guard *g, long pid, int soft, char *why, size_t n)
{
    char cmd[CMDLINE_MAX];
    size_t len;
    if (mh_proc_read_cmdline(pid, cmd, sizeof(cmd) - 1, &len)) {
        snprintf(why, n, "cannot read its command line: %s", strerror(errno));
        return -1;
    }
    cmdline_text(cmd, len);
    if (g->have_match) {
        if (!regexec(&g->match, cmd, 0, NULL, 0))
            return 1;
        snprintf(why, n, "its command line '%.200s' does not match "
                 "--worker-match", cmd);
        return -1;
    }
    char exe[PATH_MAX];
    if (read_exe(pid, exe, sizeof(exe))) {
        snprintf(why, n, "cannot read its program (/proc/%ld/exe): %s", pid,
                 strerror(errno));
        return -1;
    }
    if (strcmp(exe, g->master_exe)) {
        snprintf(why, n, "it runs '%.200s', not the master's program "
                 "'%.200s'", exe, g->master_exe);
        return -1;
    }
    int named = named_worker(g, cmd);
    if (!named && strcmp(cmd, g->master_cmd)) {
        snprintf(why, n, "its command line '%.200s' is neither the "
                 "master's nor a %s worker's", cmd, server_name[g->server]);
        return -1;
    }
    if (named || !soft)
        return 1;
    char path[MH_AGENTCTL_PATH_MAX];
    if (!mh_agentctl_find(pid, path, sizeof(path))) {
        int fd = mh_agentctl_connect(pid, path, NULL);
        if (fd >= 0) {
            close(fd); /* the agent sees the client go: nothing asked */
            return 1;
        }
    }
    snprintf(why, n, "a fork of the master that is neither registered "
             "with memhound (no control socket) nor named as a %s worker",
             server_name[g->server]);
    return 0;
}

/* A `refuse` or `not_worker` event: a process the guard will not
 * signal, and why. */
static void
log_not_signalled(struct guard *g, const char *event, long pid,
                  const char *why)
{
    struct line l;
    j_begin(&l, event);
    lint(&l, "pid", pid);
    lint(&l, "master", g->master);
    lstr(&l, "reason", why);
    if (!strcmp(event, "not_worker"))
        lstr(&l, "note", "reported, never signalled");
    j_end(g, &l);
}

static void
log_not_worker(struct guard *g, long pid, const char *why)
{
    log_not_signalled(g, "not_worker", pid, why);
}

/* The worker's kind for this tick: classifies it while that is not
 * final, and reports it once when it is not a worker. */
static void
check_kind(struct guard *g, struct worker *w)
{
    if (w->kind == 1 || w->kind == -1)
        return;
    char why[512];
    int k = classify(g, w->pid, 1, why, sizeof(why));
    if (k == 1) {
        w->kind = 1;
    } else if (k < 0) {
        if (w->kind != -2)
            log_not_worker(g, w->pid, why);
        w->kind = -1;
    } else if (w->kind == 0 &&
               mh_clock_mono() - w->first_seen >= VERIFY_GRACE) {
        log_not_worker(g, w->pid, why);
        w->kind = -2;
    }
}

/* --pid must name a master the guard recognises (or come with
 * --worker-match): a shell, init or any other parent would have its
 * children taken for workers. Prints why and returns -1 when refused. */
static int
refuse_master(struct guard *g)
{
    struct mh_proc_stat st;
    g->master = g->o.pid;
    if (mh_proc_read_stat(g->master, &st)) {
        mh_errorf("no process %ld", g->master);
        return -1;
    }
    if (read_master_cmd(g))
        g->master_cmd[0] = '\0';
    if (g->have_match)
        return 0;
    g->server = detect_server(g);
    g->exit_code = MH_EXIT_USAGE;
    if (g->server == SRV_UNKNOWN) {
        mh_errorf("process %ld ('%.200s') is not a gunicorn or uWSGI master: "
                  "the guard cannot tell its workers from its other "
                  "children; name them with --worker-match REGEX (on their "
                  "command line) to guard it anyway",
                  g->master, g->master_cmd[0] ? g->master_cmd : st.comm);
        return -1;
    }
    if (named_worker(g, g->master_cmd)) {
        mh_errorf("process %ld ('%.200s') is a %s worker, not its master",
                  g->master, g->master_cmd, server_name[g->server]);
        return -1;
    }
    g->exit_code = MH_EXIT_FAIL;
    return 0;
}

/* ---- signalling, verified ---- */

static int
pidfd_open_(long pid)
{
    return (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
}

static int
pidfd_signal(int fd, int sig)
{
    return (int)syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0);
}

static void
log_refusal(struct guard *g, long pid, const char *why)
{
    log_not_signalled(g, "refuse", pid, why);
}

/* 1: `pid` is (still) the worker recorded as (pid, start), a child of the
 * master that classify() accepts (`soft` as there); 0: it is gone
 * (exited, or a zombie); -1: it is another process (refusal logged). */
static int
verify(struct guard *g, long pid, unsigned long long start, int soft)
{
    struct mh_proc_stat st;
    if (mh_proc_read_stat(pid, &st))
        return 0;
    char why[1024];
    if (st.ppid != g->master) {
        snprintf(why, sizeof(why),
                 "process %ld is not a worker of master %ld: its parent is "
                 "%ld",
                 pid, g->master, st.ppid);
        log_refusal(g, pid, why);
        return -1;
    }
    if (st.starttime != start) {
        snprintf(why, sizeof(why),
                 "process %ld started at tick %llu, not at %llu like the "
                 "worker seen with this pid (the pid was reused)",
                 pid, st.starttime, start);
        log_refusal(g, pid, why);
        return -1;
    }
    if (st.state == 'Z' || st.state == 'X')
        return 0;
    char what[512];
    if (classify(g, pid, soft, what, sizeof(what)) != 1) {
        snprintf(why, sizeof(why),
                 "process %ld is not a verified worker of master %ld: %s",
                 pid, g->master, what);
        log_refusal(g, pid, why);
        return -1;
    }
    return 1;
}

/* Sends `sig` to the worker if, right before, it is verified to be the
 * one we recorded. Returns 1 sent, 0 gone, -1 refused or failed. */
static int
signal_verified(struct guard *g, struct worker *w, int sig)
{
    if (w->pidfd < 0 && g->have_pidfd != 0) {
        w->pidfd = pidfd_open_(w->pid);
        if (w->pidfd < 0) {
            if (errno == ENOSYS) {
                g->have_pidfd = 0;
            } else if (errno == ESRCH) {
                return 0;
            }
        } else {
            g->have_pidfd = 1;
            fcntl(w->pidfd, F_SETFD, FD_CLOEXEC);
        }
    }
    /* With the pidfd open first, a check that passes names the process
     * the pidfd holds: if that one had died and its pid been reused
     * before the check, the check would have seen the new process. */
    int v = verify(g, w->pid, w->start, sig != SIGKILL);
    if (v <= 0)
        return v;
    int rc =
        w->pidfd >= 0 ? pidfd_signal(w->pidfd, sig) : kill((pid_t)w->pid, sig);
    if (rc) {
        if (errno == ESRCH)
            return 0;
        log_warning(g, w->pid, "cannot send %s to process %ld: %s",
                    sig_name(sig), w->pid, strerror(errno));
        return -1;
    }
    return 1;
}

/* ---- workers ---- */

static struct worker *
find_worker(struct guard *g, long pid)
{
    for (size_t i = 0; i < g->nw; i++)
        if (g->w[i].pid == pid)
            return &g->w[i];
    return NULL;
}

static void
close_ctl(struct worker *w)
{
    if (w->ctlfd >= 0)
        close(w->ctlfd);
    w->ctlfd = -1;
    mh_free(w->stats);
    w->stats = NULL;
}

static void
forget(struct worker *w)
{
    close_ctl(w);
    if (w->pidfd >= 0)
        close(w->pidfd);
    w->pidfd = -1;
    mh_free(w->rec);
    w->rec = NULL;
}

/* A stable pseudo-random fraction for a worker, for the jitter. */
static double
jitter_fraction(long pid, unsigned long long start)
{
    uint64_t x = (uint64_t)pid * UINT64_C(0x9E3779B97F4A7C15) ^ start;
    x ^= x >> 33;
    x *= UINT64_C(0xff51afd7ed558ccd);
    x ^= x >> 33;
    return (double)(x >> 11) / 9007199254740992.0;
}

static int
in_flight(const struct worker *w)
{
    return w->state != W_WATCH && w->state != W_DONE;
}

static double
lifetime(const struct worker *w)
{
    return mh_proc_uptime() - w->born;
}

static void
log_exit(struct guard *g, struct worker *w)
{
    struct line l;
    j_begin(&l, "exit");
    lint(&l, "pid", w->pid);
    lnum(&l, "after_s",
         w->signalled > 0 ? mh_clock_mono() - w->signalled : NAN, 3);
    lkey(&l, "killed");
    lput(&l, w->state == W_KILLED ? "true" : "false");
    j_end(g, &l);
}

/* The worker left (exited, reaped or not) during a recycle. */
static void
worker_gone(struct guard *g, struct worker *w)
{
    if (w->state == W_SIGNALLED || w->state == W_KILLED) {
        log_exit(g, w);
    } else if (in_flight(w)) {
        struct line l;
        j_begin(&l, "exit");
        lint(&l, "pid", w->pid);
        lstr(&l, "note", "exited on its own before the guard signalled it");
        j_end(g, &l);
    }
    forget(w);
    w->state = W_DONE;
}

static void
log_recycle(struct guard *g, struct worker *w, int sig)
{
    struct recycle *r = w->rec;
    double now = mh_clock_mono();
    struct line l;
    j_begin(&l, "recycle");
    lint(&l, "pid", w->pid);
    lint(&l, "master", g->master);
    lstr(&l, "reason", r->reason);
    if (!strcmp(r->reason, "lifetime"))
        lnum(&l, "limit", r->limit, 1);
    else
        lnum(&l, "limit", r->limit, 0);
    lint(&l, "rss", (long long)w->rss);
    lint(&l, "uss", (long long)w->uss);
    lnum(&l, "lifetime", lifetime(w), 1);
    lkey(&l, "requests");
    if (w->requests >= 0)
        lput(&l, "%lld", w->requests);
    else
        lput(&l, "null");
    lstr(&l, "dump", r->dump[0] && r->dump_ok ? r->dump : NULL);
    if (r->dump[0] && r->dump_ok < 0)
        lstr(&l, "dump_partial", r->dump);
    lstr(&l, "capture", r->capture[0] ? r->capture : NULL);
    if (r->note[0])
        lstr(&l, "evidence", r->note);
    lnum(&l, "evidence_s", r->evidence_start > 0 ? now - r->evidence_start : 0,
         3);
    lnum(&l, "waited_s", now - r->decided, 3);
    lnum(&l, "over_s", w->over_since > 0 ? now - w->over_since : 0, 3);
    lstr(&l, "signal", sig_name(sig));
    lstr(&l, "server", server_name[g->server]);
    j_end(g, &l);
}

/* The last step of a recycle: the graceful signal. */
static void
send_graceful(struct guard *g, struct worker *w)
{
    close_ctl(w);
    /* Measured before the signal: an idle worker exits at once. */
    struct mh_proc_mem m;
    if (!mh_proc_read_mem(w->pid, &m)) {
        w->rss = m.rss;
        w->uss = m.uss;
    }
    int r = signal_verified(g, w, g->sig);
    if (r == 1) {
        log_recycle(g, w, g->sig);
        w->state = W_SIGNALLED;
        w->signalled = mh_clock_mono();
        w->deadline = w->signalled + g->o.mercy;
    } else if (r == 0) {
        worker_gone(g, w);
    } else {
        forget(w); /* refused (logged): never touch it again */
        w->state = W_DONE;
    }
}

/* Starts one control request for the worker, with descriptor `passfd`
 * attached when it is not -1; on failure notes why in the recycle and
 * returns -1. */
static int
ctl_start(struct guard *g, struct worker *w, const char *req, double timeout,
          int passfd)
{
    char path[MH_AGENTCTL_PATH_MAX];
    struct recycle *r = w->rec;
    close_ctl(w);
    struct mh_agentctl_where where;
    mh_agentctl_locate(w->pid, &where);
    if (where.found >= 0) {
        snprintf(path, sizeof(path), "%s", where.cand[where.found]);
    } else {
        char why[sizeof(r->note)];
        int e = mh_agentctl_explain(&where, w->pid, why, sizeof(why));
        if (e != ENOENT)
            snprintf(r->note, sizeof(r->note), "%s", why);
        else if (g->server == SRV_UWSGI &&
                 !mh_agentctl_find(g->master, path, sizeof(path)))
            snprintf(r->note, sizeof(r->note),
                     "no control socket: the uWSGI master records but its "
                     "workers do not (uWSGI forks without telling Python; "
                     "run it with --py-call-osafterfork --enable-threads)");
        else
            snprintf(r->note, sizeof(r->note),
                     "no control socket: the worker does not record with "
                     "memhound");
        return -1;
    }
    int fd = mh_agentctl_connect(w->pid, path, NULL);
    if (fd < 0) {
        snprintf(r->note, sizeof(r->note),
                 errno == ECONNREFUSED
                     ? "its control socket '%s' is stale"
                     : "cannot connect to its control socket '%s'",
                 path);
        return -1;
    }
    if (mh_agentctl_send_fd(fd, req, passfd)) {
        snprintf(r->note, sizeof(r->note),
                 "cannot send to its control socket: %s", strerror(errno));
        close(fd);
        return -1;
    }
    w->ctlfd = fd;
    r->reply.len = 0;
    w->deadline = mh_clock_mono() + timeout;
    return 0;
}

static void
start_flush(struct guard *g, struct worker *w)
{
    char note[sizeof(w->rec->note)];
    memcpy(note, w->rec->note, sizeof(note));
    if (ctl_start(g, w, "flush", CTL_TIMEOUT, -1)) {
        memcpy(w->rec->note, note, sizeof(note)); /* keep the dump's note */
        send_graceful(g, w);
        return;
    }
    w->state = W_FLUSH;
}

static void
start_dump(struct guard *g, struct worker *w)
{
    struct recycle *r = w->rec;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    /* The time sorts a worker's dumps; the random tag keeps the name from
     * being planted in advance. */
    char tag[11];
    if (mh_file_random_tag(tag, 10)) {
        r->dump[0] = '\0';
        snprintf(r->note, sizeof(r->note), "cannot choose a dump name: %s",
                 strerror(errno));
        start_flush(g, w);
        return;
    }
    int k = snprintf(r->dump, sizeof(r->dump),
                     "%s/memhound-heap.%ld.%lld.%s.mhh", g->snapdir, w->pid,
                     (long long)ts.tv_sec, tag);
    if (k < 0 || (size_t)k >= sizeof(r->dump)) {
        r->dump[0] = '\0';
        snprintf(r->note, sizeof(r->note), "the dump path is too long");
        start_flush(g, w);
        return;
    }
    /* The guard creates the file and hands it over: the dump lands in the
     * snapshot directory whatever user the worker runs as (a worker that
     * dropped root could not create it there). */
    int fd = mh_file_create_private(r->dump, 0);
    if (fd < 0) {
        snprintf(r->note, sizeof(r->note), "cannot create '%.200s': %s",
                 r->dump, strerror(errno));
        r->dump[0] = '\0';
        start_flush(g, w);
        return;
    }
    char req[PATH_MAX + 16];
    snprintf(req, sizeof(req), "dump-wait %s", r->dump);
    int rc = ctl_start(g, w, req, g->o.dump_timeout, fd);
    close(fd);
    if (rc) {
        unlink(r->dump);
        r->dump[0] = '\0';
        send_graceful(g, w);
        return;
    }
    w->state = W_DUMP;
}

/* Decided: the worker goes. Evidence first, when there is an agent. */
static void
start_recycle(struct guard *g, struct worker *w, const char *reason,
              double limit)
{
    close_ctl(w);
    w->rec = mh_calloc(1, sizeof(*w->rec));
    if (!w->rec) {
        log_warning(g, w->pid, "out of memory");
        return;
    }
    w->rec->reason = reason;
    w->rec->limit = limit;
    w->rec->decided = mh_clock_mono();
    if (g->o.no_dump) {
        snprintf(w->rec->note, sizeof(w->rec->note),
                 "not asked for (--no-dump)");
        send_graceful(g, w);
        return;
    }
    w->rec->evidence_start = w->rec->decided;
    if (ctl_start(g, w, "ping", CTL_TIMEOUT, -1)) {
        send_graceful(g, w);
        return;
    }
    w->state = W_PING;
}

static void log_stop(struct guard *g, const char *reason, int sig);

/* One warning per guard that --max-requests cannot apply to a worker:
 * its requests are `why`. */
static void
warn_requests_once(struct guard *g, struct worker *w, const char *why)
{
    if (g->warned_requests)
        return;
    g->warned_requests = 1;
    log_warning(g, w->pid,
                "the requests of process %ld are %s, so --max-requests "
                "cannot apply to it",
                w->pid, why);
}

/* How long a worker may run with its agent saying web=0 before that
 * answer is taken as final: the web layer arrives with the app (a
 * middleware, `with memhound.request(...)`), which a worker of a server
 * that loads its app after fork imports in its first seconds. A worker
 * of a server started with the web layer (`run --web`, guard's own
 * COMMAND) says web=1 from its first answer: it inherits it. */
#define WEB_SETTLE 10.0

/* A worker's agent said web=0: no web layer (yet), so its requests=0
 * means "not counted". Only a definite answer acts: a worker past
 * WEB_SETTLE seconds of life. A server we did not start where no worker
 * ever counted requests: refuse, --max-requests would never fire.
 * Otherwise (one worker among counting ones, or a server we started with
 * the web layer on, whose import of it failed): say so once. */
static void
no_request_count(struct guard *g, struct worker *w)
{
    if (g->done || lifetime(w) < WEB_SETTLE)
        return;
    if (!g->child && !g->web_seen) {
        mh_errorf("--max-requests cannot apply to process %ld: its "
                  "workers do not count requests (worker %ld has run "
                  "%.0f s without memhound's web layer); start the server "
                  "with 'memhound run --web -- COMMAND' or "
                  "'memhound guard --max-requests N -- COMMAND', or wrap "
                  "the app in memhound.web's middleware (docs/web.md)",
                  g->master, w->pid, lifetime(w));
        log_stop(g, "--max-requests cannot apply: the workers do not count "
                    "requests",
                 0);
        g->done = 1;
        g->exit_code = MH_EXIT_USAGE;
        return;
    }
    warn_requests_once(g, w,
                       "not counted (its agent runs without the web layer)");
}

/* A reply line arrived (or the connection ended) for a worker's control
 * request. */
static void
on_reply(struct guard *g, struct worker *w, const char *line)
{
    if (w->state == W_WATCH) { /* stats */
        if (!line) {
            close_ctl(w);
            return;
        }
        /* web=0: not counted (yet); web=1 or an agent too old to
         * say: requests= is the count. */
        const char *web = strstr(line, " web=");
        int uncounted = !strncmp(line, "ok", 2) && web && web[5] == '0';
        if (uncounted)
            no_request_count(g, w);
        else if (!strncmp(line, "ok", 2) && web)
            g->web_seen = 1;
        const char *p = strstr(line, "requests");
        if (!strncmp(line, "ok", 2) && p && !uncounted) {
            p += 8;
            while (*p == '=' || *p == ':' || *p == ' ' || *p == '"')
                p++;
            char *end;
            long long v = strtoll(p, &end, 10);
            if (end != p)
                w->requests = v;
        } else if (!strncmp(line, "error", 5) && g->stats_state &&
                   strstr(line, "unknown request")) {
            g->stats_state = 0;
            log_warning(g, w->pid,
                        "--max-requests has no effect: the agent does not "
                        "count requests (its control socket answered "
                        "'%.200s' to 'stats')",
                        line);
        }
        close_ctl(w);
        return;
    }
    struct recycle *r = w->rec;
    switch (w->state) {
    case W_PING: {
        long pid;
        int off = 0;
        if (line && sscanf(line, "ok %ld %n", &pid, &off) == 1 && off > 0 &&
            line[off] == '/')
            snprintf(r->capture, sizeof(r->capture), "%s", line + off);
        if (!line) {
            snprintf(r->note, sizeof(r->note),
                     "the control socket closed without an answer");
            close_ctl(w);
            send_graceful(g, w);
            return;
        }
        start_dump(g, w);
        return;
    }
    case W_DUMP:
        if (line && !strncmp(line, "ok ", 3)) {
            r->dump_ok = 1;
            snprintf(r->note, sizeof(r->note), "heap dump written in %.2f s",
                     mh_clock_mono() - r->evidence_start);
        } else {
            r->dump_ok = 0;
            snprintf(r->note, sizeof(r->note), "heap dump failed: %.200s",
                     line ? line : "the control socket closed");
            struct stat st;
            if (!stat(r->dump, &st) && st.st_size == 0)
                unlink(r->dump); /* nothing written: leave nothing */
        }
        start_flush(g, w);
        return;
    case W_FLUSH:
        send_graceful(g, w);
        return;
    default:
        close_ctl(w);
        return;
    }
}

static void
on_ctl_ready(struct guard *g, struct worker *w)
{
    struct mh_agentctl_reply *r = w->stats ? w->stats : &w->rec->reply;
    int k = mh_agentctl_read(w->ctlfd, r);
    if (k == 0)
        return;
    on_reply(g, w, k == 1 ? r->line : NULL);
}

/* The deadline of the worker's current step passed. */
static void
on_deadline(struct guard *g, struct worker *w)
{
    switch (w->state) {
    case W_WATCH:
        close_ctl(w); /* a stats request that got no answer */
        return;
    case W_PING:
        snprintf(w->rec->note, sizeof(w->rec->note),
                 "the control socket did not answer within %.0f s",
                 CTL_TIMEOUT);
        send_graceful(g, w);
        return;
    case W_DUMP:
        w->rec->dump_ok = -1;
        snprintf(w->rec->note, sizeof(w->rec->note),
                 "the heap dump did not finish within %.1f s "
                 "(--dump-timeout); it may still complete",
                 g->o.dump_timeout);
        start_flush(g, w);
        return;
    case W_FLUSH:
        send_graceful(g, w);
        return;
    case W_SIGNALLED: {
        int r = signal_verified(g, w, SIGKILL);
        if (r == 1) {
            struct line l;
            j_begin(&l, "kill");
            lint(&l, "pid", w->pid);
            lnum(&l, "after_s", mh_clock_mono() - w->signalled, 3);
            lstr(&l, "reason", "still running after the mercy period");
            j_end(g, &l);
            w->state = W_KILLED;
            w->deadline = mh_clock_mono() + KILL_WAIT;
        } else {
            worker_gone(g, w);
        }
        return;
    }
    case W_KILLED:
        log_warning(g, w->pid,
                    "process %ld did not exit %.0f s after SIGKILL; no "
                    "longer waiting for it",
                    w->pid, KILL_WAIT);
        forget(w);
        w->state = W_DONE;
        return;
    case W_DONE:
        return;
    }
}

/* ---- the periodic check ---- */

static void
query_stats(struct guard *g, struct worker *w)
{
    if (w->ctlfd >= 0)
        return;
    char path[128];
    if (mh_agentctl_find(w->pid, path, sizeof(path))) {
        warn_requests_once(g, w,
                           "unknown: it does not record with memhound (no "
                           "control socket)");
        return;
    }
    int fd = mh_agentctl_connect(w->pid, path, NULL);
    if (fd < 0)
        return;
    w->stats = mh_calloc(1, sizeof(*w->stats));
    if (!w->stats || mh_agentctl_send(fd, "stats")) {
        close(fd);
        mh_free(w->stats);
        w->stats = NULL;
        return;
    }
    w->ctlfd = fd;
    w->deadline = mh_clock_mono() + CTL_TIMEOUT;
}

struct candidate {
    struct worker *w;
    const char *reason;
    double limit;
    double urgency; /* how far past its limit: value / limit */
};

static int
by_urgency(const void *a, const void *b)
{
    const struct candidate *x = a, *y = b;
    return x->urgency < y->urgency ? 1 : x->urgency > y->urgency ? -1 : 0;
}

/* Why the worker must go, or NULL. */
static const char *
over_limit(struct guard *g, struct worker *w, double *limit, double *urgency)
{
    const struct guard_opts *o = &g->o;
    if (o->rss_limit && w->rss > o->rss_limit) {
        *limit = (double)o->rss_limit;
        *urgency = (double)w->rss / *limit;
        return "rss";
    }
    if (o->uss_limit && w->uss > o->uss_limit) {
        *limit = (double)o->uss_limit;
        *urgency = (double)w->uss / *limit;
        return "uss";
    }
    if (o->max_lifetime) {
        double allowed = o->max_lifetime + w->jitter;
        double age = lifetime(w);
        if (age > allowed) {
            *limit = allowed;
            *urgency = age / allowed;
            return "lifetime";
        }
    }
    if (o->max_requests && w->requests >= o->max_requests) {
        *limit = (double)o->max_requests;
        *urgency = (double)w->requests / *limit;
        return "requests";
    }
    return NULL;
}

/* The test hook (docs/guard.md): MEMHOUND_GUARD_TEST_VICTIM names
 * processes, "PID[:START],...", for the guard to signal at its first tick
 * as if they were workers past a limit, through the same checks; START
 * (ticks after boot) defaults to the process's own. A test sees the
 * refusals in the log. */
static void
test_victims(struct guard *g)
{
    const char *p = g->test_victim;
    while (*p) {
        char *end;
        long pid = strtol(p, &end, 10);
        unsigned long long start = 0;
        struct mh_proc_stat st;
        if (*end == ':')
            start = strtoull(end + 1, &end, 10);
        else if (!mh_proc_read_stat(pid, &st))
            start = st.starttime;
        struct worker w;
        memset(&w, 0, sizeof(w));
        w.pid = pid;
        w.start = start;
        w.pidfd = w.ctlfd = -1;
        int r = pid > 0 ? signal_verified(g, &w, g->sig) : 0;
        if (r == 1)
            log_warning(g, pid, "test hook: signalled process %ld", pid);
        else if (r == 0)
            log_warning(g, pid, "test hook: process %ld is gone", pid);
        if (w.pidfd >= 0)
            close(w.pidfd);
        p = end;
        while (*p && *p != ',')
            p++;
        if (*p)
            p++;
    }
    g->test_victim[0] = '\0';
}

static int
check_master(struct guard *g)
{
    struct mh_proc_stat st;
    if (mh_proc_read_stat(g->master, &st) || st.starttime != g->master_start ||
        st.state == 'Z')
        return -1;
    return 0;
}

/* Reading USS (smaps_rollup) costs the kernel a page-table walk, the
 * guard's main expense: USS <= RSS, so there is nothing to read while
 * RSS is under the USS limit; past it, USS is read again when RSS moved
 * by more than USS_RSS_SLACK or every USS_EVERY ticks (a worker's pages
 * can turn private through copy-on-write without RSS moving). */
#define USS_RSS_SLACK (1u << 20)
#define USS_EVERY 5

static int
uss_due(const struct guard *g, const struct worker *w)
{
    if (w->rss <= g->o.uss_limit)
        return 0;
    if (!w->uss_tick || g->tick_no - w->uss_tick >= USS_EVERY)
        return 1;
    uint64_t d =
        w->rss > w->uss_rss ? w->rss - w->uss_rss : w->uss_rss - w->rss;
    return d > USS_RSS_SLACK;
}

static void
tick(struct guard *g)
{
    g->tick_no++;
    if (!g->child && check_master(g)) {
        struct line l;
        j_begin(&l, "stop");
        lint(&l, "master", g->master);
        lstr(&l, "reason", "the master process is gone");
        j_end(g, &l);
        g->done = 1;
        g->exit_code = MH_EXIT_OK;
        return;
    }
    if (read_master_cmd(g))
        return; /* the master just ended; the next tick says */
    size_t n = 0;
    int rc = mh_proc_children(g->master, g->children, MAX_WORKERS, &n);
    if (rc == MH_ETOOBIG)
        log_warning(g, g->master,
                    "the master has more than %d children; only the first "
                    "%d are guarded",
                    MAX_WORKERS, MAX_WORKERS);
    else if (rc)
        return; /* the master just ended; the next tick or SIGCHLD says */

    for (size_t i = 0; i < n; i++) {
        struct mh_proc_stat st;
        long pid = g->children[i];
        if (mh_proc_read_stat(pid, &st) || st.ppid != g->master)
            continue;
        /* A heap walker the master's agent forked is not a worker. */
        if (!strcmp(st.comm, MH_HEAP_WALKER_COMM))
            continue;
        struct worker *w = find_worker(g, pid);
        if (w && w->start != st.starttime) {
            /* The pid came back as a new process: the old one left. */
            if (in_flight(w))
                worker_gone(g, w);
            forget(w);
            w = NULL;
            for (size_t k = 0; k < g->nw; k++)
                if (g->w[k].pid == pid) {
                    g->w[k] = g->w[--g->nw];
                    break;
                }
        }
        if (!w) {
            if (g->nw >= MAX_WORKERS)
                continue;
            w = &g->w[g->nw++];
            memset(w, 0, sizeof(*w));
            w->pid = pid;
            w->start = st.starttime;
            w->born = (double)st.starttime / g->hz;
            w->jitter = g->o.jitter * jitter_fraction(pid, st.starttime);
            w->requests = -1;
            w->pidfd = w->ctlfd = -1;
            w->state = W_WATCH;
            w->first_seen = mh_clock_mono();
        }
        w->seen = g->tick_no;
        w->rss = st.rss_pages * (uint64_t)g->page;
        if (st.state == 'Z' && w->state != W_DONE) {
            /* Exited, not reaped yet. */
            if (in_flight(w))
                worker_gone(g, w);
            forget(w);
            w->state = W_DONE;
        }
        if (w->state == W_WATCH)
            check_kind(g, w);
    }

    /* Those no longer listed have been reaped. */
    size_t live = 0, busy = 0;
    for (size_t i = 0; i < g->nw;) {
        struct worker *w = &g->w[i];
        if (w->seen != g->tick_no) {
            if (in_flight(w))
                worker_gone(g, w);
            forget(w);
            g->w[i] = g->w[--g->nw];
            continue;
        }
        if (w->state == W_WATCH && w->kind == 1)
            live++;
        else if (in_flight(w))
            busy++;
        i++;
    }

    if (!g->warned_no_workers && g->nw) {
        size_t verified = 0, reported = 0;
        for (size_t i = 0; i < g->nw; i++) {
            verified += g->w[i].kind == 1;
            reported += g->w[i].kind < 0;
        }
        if (!verified && reported == g->nw) {
            g->warned_no_workers = 1;
            log_warning(g, g->master,
                        "none of the %zu children of master %ld is a "
                        "verified worker, so none will be recycled: start "
                        "the server recording (memhound run, or guard -- "
                        "COMMAND), let it name its workers (gunicorn with "
                        "setproctitle, uWSGI --auto-procname), or name them "
                        "with --worker-match",
                        g->nw, g->master);
        }
    }
    if (g->test_victim[0])
        test_victims(g);
    if (g->stopping)
        return;

    /* Measure what the limits need: of verified workers only, the others
     * are never signalled. */
    for (size_t i = 0; i < g->nw; i++) {
        struct worker *w = &g->w[i];
        if (w->state != W_WATCH || w->kind != 1)
            continue;
        if (w->uss > w->rss)
            w->uss = w->rss; /* USS <= RSS: a bound without reading */
        if (g->o.uss_limit && uss_due(g, w)) {
            struct mh_proc_mem m;
            if (!mh_proc_read_mem(w->pid, &m)) {
                w->uss = m.uss;
                w->uss_rss = w->rss;
                w->uss_tick = g->tick_no;
            }
        }
    }

    struct candidate cand[64];
    size_t nc = 0;
    for (size_t i = 0; i < g->nw && nc < 64; i++) {
        struct worker *w = &g->w[i];
        if (w->state != W_WATCH || w->kind != 1)
            continue;
        double limit = 0, urgency = 0;
        const char *why = over_limit(g, w, &limit, &urgency);
        if (!why) {
            w->over_since = 0;
            continue;
        }
        if (w->over_since <= 0)
            w->over_since = mh_clock_mono();
        cand[nc++] = (struct candidate){w, why, limit, urgency};
    }
    if (!nc && g->use_cgroup && !busy && !mh_proc_cgroup_read(&g->cg) &&
        g->cg.limit != MH_CGROUP_NO_LIMIT) {
        double used = (double)(g->cg.current - g->cg.inactive_file);
        double limit = g->o.limit_fraction * (double)g->cg.limit;
        if (used >= limit) {
            /* The largest worker by what its exit would free. */
            struct worker *big = NULL;
            for (size_t i = 0; i < g->nw; i++) {
                struct worker *w = &g->w[i];
                struct mh_proc_mem m;
                if (w->state != W_WATCH || w->kind != 1 ||
                    mh_proc_read_mem(w->pid, &m))
                    continue;
                w->uss = m.uss;
                if (!big || w->uss > big->uss)
                    big = w;
            }
            if (big) {
                if (big->over_since <= 0)
                    big->over_since = mh_clock_mono();
                cand[nc++] =
                    (struct candidate){big, "cgroup", limit, used / limit};
            }
        }
    }
    if (nc)
        qsort(cand, nc, sizeof(cand[0]), by_urgency);
    for (size_t i = 0; i < nc; i++) {
        if (busy >= (size_t)g->o.max_concurrent)
            break;
        /* Never all workers: one stays serving, unless it is the only
         * one (a single-worker server could not be guarded at all). */
        if (live == 0 || (live == 1 && busy > 0))
            break;
        busy++;
        live--;
        start_recycle(g, cand[i].w, cand[i].reason, cand[i].limit);
    }
    /* Request counts for the next check, from the workers that stay. */
    for (size_t i = 0; g->o.max_requests && g->stats_state && i < g->nw; i++)
        if (g->w[i].state == W_WATCH && g->w[i].kind == 1)
            query_stats(g, &g->w[i]);
}

/* ---- signals to the guard ---- */

/* Signals the guard takes through its signalfd. TERM, INT and QUIT stop
 * the server (with a command) or the guard (with --pid); the rest are
 * passed to a server we started. */
static const int handled[] = {SIGTERM, SIGINT,   SIGQUIT, SIGHUP,  SIGUSR1,
                              SIGUSR2, SIGWINCH, SIGTTIN, SIGTTOU, SIGCHLD};
#define N_HANDLED (sizeof(handled) / sizeof(handled[0]))

static void
log_stop(struct guard *g, const char *reason, int sig)
{
    struct line l;
    j_begin(&l, "stop");
    lint(&l, "master", g->master);
    lstr(&l, "reason", reason);
    if (sig)
        lstr(&l, "signal", sig_name(sig));
    if (g->status_known) {
        if (WIFEXITED(g->status))
            lint(&l, "exit_status", WEXITSTATUS(g->status));
        else if (WIFSIGNALED(g->status))
            lstr(&l, "killed_by", sig_name(WTERMSIG(g->status)));
    }
    size_t pending = 0;
    for (size_t i = 0; i < g->nw; i++)
        pending += in_flight(&g->w[i]);
    if (pending)
        lint(&l, "recycles_abandoned", (long long)pending);
    j_end(g, &l);
}

static void
reap_child(struct guard *g)
{
    int status;
    pid_t p;
    while ((p = waitpid(-1, &status, WNOHANG)) > 0) {
        if (p == g->child) {
            g->status = status;
            g->status_known = 1;
            g->done = 1;
            log_stop(g, "the server exited", 0);
        }
    }
}

static void
on_signal(struct guard *g, const struct signalfd_siginfo *si)
{
    int sig = (int)si->ssi_signo;
    if (sig == SIGCHLD) {
        reap_child(g);
        return;
    }
    if (!g->child) {
        if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP) {
            log_stop(g, "told to stop; the server runs on", sig);
            g->done = 1;
            g->exit_code = MH_EXIT_OK;
        }
        return;
    }
    /* si_code <= 0: sent by a process. A signal from the terminal went to
     * the whole foreground group, the server included; one the server
     * sent is not bounced back. */
    int from_process = si->ssi_code <= 0 && (pid_t)si->ssi_pid != g->child;
    if (from_process)
        kill(g->child, sig);
    if (sig == SIGTERM || sig == SIGINT || sig == SIGQUIT) {
        /* The server stops its workers itself now; recycles in progress
         * are left to it. */
        for (size_t i = 0; i < g->nw; i++)
            if (in_flight(&g->w[i]) || g->w[i].ctlfd >= 0) {
                forget(&g->w[i]);
                if (g->w[i].state != W_WATCH)
                    g->w[i].state = W_DONE;
            }
        if (!g->stopping) {
            struct line l;
            j_begin(&l, "stopping");
            lint(&l, "master", g->master);
            lstr(&l, "signal", sig_name(sig));
            lstr(&l, "note",
                 from_process ? "passed to the server; waiting for it to "
                                "exit"
                              : "the server got it too; waiting for it to "
                                "exit");
            j_end(g, &l);
        }
        g->stopping = 1;
    }
}

static int
setup_signals(struct guard *g, sigset_t *old)
{
    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < N_HANDLED; i++) {
        struct sigaction sa;
        /* With --pid only the ones that stop the guard are ours; the
         * rest keep their default action. */
        if (!g->o.command && handled[i] != SIGTERM && handled[i] != SIGINT &&
            handled[i] != SIGHUP)
            continue;
        /* Signals we were started with ignored (nohup) stay ignored. */
        if (handled[i] != SIGCHLD && !sigaction(handled[i], NULL, &sa) &&
            !(sa.sa_flags & SA_SIGINFO) && sa.sa_handler == SIG_IGN)
            continue;
        sigaddset(&set, handled[i]);
    }
    if (sigprocmask(SIG_BLOCK, &set, old)) {
        mh_errorf("cannot block signals: %s", strerror(errno));
        return MH_EIO;
    }
    g->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (g->sigfd < 0) {
        mh_errorf("cannot create a signalfd: %s", strerror(errno));
        return MH_EIO;
    }
    signal(SIGPIPE, SIG_IGN);
    return MH_OK;
}

/* ---- starting the server ---- */

/* The server starts with SIGPIPE at its default and the mask the guard
 * was started with, not the guard's blocked set (`old`). */
static void
setup_child(const void *old)
{
    signal(SIGPIPE, SIG_DFL);
    sigprocmask(SIG_SETMASK, old, NULL);
}

static int
start_server(struct guard *g, const sigset_t *old, const char *pydir)
{
    char output[2 * PATH_MAX + 32];
    if (g->o.output && g->o.output[0] == '/') {
        snprintf(output, sizeof(output), "%s", g->o.output);
    } else if (g->o.output) {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof(cwd))) {
            mh_errorf("cannot resolve '%s': %s", g->o.output, strerror(errno));
            return MH_EIO;
        }
        snprintf(output, sizeof(output), "%s/%s", cwd, g->o.output);
    } else {
        snprintf(output, sizeof(output), "%s/memhound.%%p.%%r.mhc",
                 g->snapdir);
    }
    if (mh_output_preflight(output, g->o.force, 1))
        return MH_EIO;
    /* --max-requests needs the requests counted: the web layer, as
     * `run --web` installs it (docs/web.md). */
    struct mh_agent_env e = {.output = output,
                             .force = g->o.force,
                             .web = g->o.max_requests > 0};
    if (mh_cli_agent_env(pydir, &e))
        return MH_EIO;

    pid_t pid;
    int errfd;
    if (mh_spawn_start(g->o.command, setup_child, old, &pid, &errfd))
        return MH_EIO;
    int err = mh_spawn_exec_errno(errfd);
    if (err) {
        g->exit_code = mh_spawn_exec_failed(g->o.command[0], err);
        waitpid(pid, NULL, 0);
        return MH_EIO;
    }
    g->child = pid;
    g->master = pid;
    return MH_OK;
}

/* ---- the loop ---- */

static void
log_start(struct guard *g)
{
    struct line l;
    j_begin(&l, "start");
    lint(&l, "master", g->master);
    lint(&l, "guard", (long long)getpid());
    lstr(&l, "server", server_name[g->server]);
    lstr(&l, "signal", sig_name(g->sig));
    lstr(&l, "signal_from", g->sig_from);
    lnum(&l, "interval", g->o.interval, 3);
    lnum(&l, "mercy", g->o.mercy, 3);
    lint(&l, "max_concurrent", g->o.max_concurrent);
    lkey(&l, "limits");
    lput(&l, "{");
    l.first = 1;
    if (g->o.rss_limit)
        lint(&l, "rss", (long long)g->o.rss_limit);
    if (g->o.uss_limit)
        lint(&l, "uss", (long long)g->o.uss_limit);
    if (g->use_cgroup) {
        lnum(&l, "cgroup_fraction", g->o.limit_fraction, 3);
        lint(&l, "cgroup_limit", (long long)g->cg.limit);
        lstr(&l, "cgroup", g->cg.dir);
    }
    if (g->o.max_lifetime) {
        lnum(&l, "lifetime", g->o.max_lifetime, 1);
        lnum(&l, "jitter", g->o.jitter, 1);
    }
    if (g->o.max_requests)
        lint(&l, "requests", g->o.max_requests);
    lput(&l, "}");
    l.first = 0;
    lstr(&l, "snapshot_dir", g->o.no_dump ? NULL : g->snapdir);
    lkey(&l, "pidfd");
    lput(&l, g->have_pidfd ? "true" : "false");
    j_end(g, &l);
}

/* A directory the guard makes is 0700; one that exists must be safe to
 * write in (mh_file_check_dir(): ours or root's, not writable by others
 * unless sticky), since dumps and captures are created there. */
static int
prepare_snapdir(struct guard *g)
{
    const char *d = g->o.snapshot_dir ? g->o.snapshot_dir : ".";
    if (g->o.snapshot_dir && mkdir(d, 0700) && errno != EEXIST) {
        mh_errorf("cannot create '%s': %s", d, strerror(errno));
        return MH_EIO;
    }
    char why[2 * PATH_MAX];
    if (mh_file_check_dir(d, why, sizeof(why))) {
        mh_errorf("%s", why);
        return MH_EIO;
    }
    if (!realpath(d, g->snapdir)) {
        mh_errorf("cannot resolve '%s': %s", d, strerror(errno));
        return MH_EIO;
    }
    if (access(g->snapdir, W_OK | X_OK)) {
        mh_errorf("cannot write heap dumps in '%s': %s", g->snapdir,
                  strerror(errno));
        return MH_EIO;
    }
    return MH_OK;
}

static void
run_loop(struct guard *g)
{
    size_t cap = 2 * (size_t)MAX_WORKERS + 1;
    g->next_tick = mh_clock_mono();
    while (!g->done) {
        double now = mh_clock_mono();
        double wake = g->stopping ? now + 1 : g->next_tick;
        size_t np = 0;
        g->pfd[np].fd = g->sigfd;
        g->pfd[np].events = POLLIN;
        g->pfd_worker[np++] = (size_t)-1;
        for (size_t i = 0; i < g->nw && np < cap; i++) {
            struct worker *w = &g->w[i];
            if (w->ctlfd >= 0) {
                g->pfd[np].fd = w->ctlfd;
                g->pfd[np].events = POLLIN;
                g->pfd_worker[np++] = i;
            }
            if (w->pidfd >= 0 &&
                (w->state == W_SIGNALLED || w->state == W_KILLED)) {
                g->pfd[np].fd = w->pidfd;
                g->pfd[np].events = POLLIN;
                g->pfd_worker[np++] = i | ((size_t)1 << 62);
            }
            if ((w->ctlfd >= 0 || in_flight(w)) && w->deadline < wake)
                wake = w->deadline;
        }
        double wait = wake - now;
        int ms = wait <= 0 ? 0 : (int)(wait * 1000) + 1;
        int r = poll(g->pfd, np, ms);
        if (r < 0 && errno != EINTR) {
            mh_errorf("cannot wait for events: %s", strerror(errno));
            g->exit_code = MH_EXIT_FAIL;
            return;
        }
        if (r > 0 && (g->pfd[0].revents & POLLIN)) {
            struct signalfd_siginfo si;
            while (read(g->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
                on_signal(g, &si);
            if (g->done)
                return;
        }
        for (size_t k = 1; r > 0 && k < np; k++) {
            if (!g->pfd[k].revents)
                continue;
            size_t i = g->pfd_worker[k] & ~((size_t)1 << 62);
            struct worker *w = &g->w[i];
            if (g->pfd_worker[k] >> 62) {
                if (w->pidfd == g->pfd[k].fd &&
                    (w->state == W_SIGNALLED || w->state == W_KILLED))
                    worker_gone(g, w);
            } else if (w->ctlfd == g->pfd[k].fd) {
                on_ctl_ready(g, w);
            }
        }
        now = mh_clock_mono();
        for (size_t i = 0; i < g->nw; i++) {
            struct worker *w = &g->w[i];
            if ((w->ctlfd >= 0 || in_flight(w)) && w->deadline <= now)
                on_deadline(g, w);
        }
        if (now >= g->next_tick) {
            tick(g);
            g->next_tick += g->o.interval;
            if (g->next_tick <= now)
                g->next_tick = now + g->o.interval;
        }
    }
}

int
mh_cmd_guard(int argc, char **argv)
{
    struct guard g;
    memset(&g, 0, sizeof(g));
    int rc = parse_args(argc, argv, &g.o);
    if (rc)
        return rc;
    g.logfd = STDERR_FILENO;
    g.sigfd = -1;
    g.have_pidfd = -1;
    g.exit_code = MH_EXIT_FAIL;
    g.stats_state = 1;
    g.page = mh_proc_page_size();
    g.hz = (double)mh_proc_ticks_per_second();
    char *pydir = NULL;
    sigset_t old;
    sigemptyset(&old);

    const char *victim = getenv("MEMHOUND_GUARD_TEST_VICTIM");
    if (victim && *victim)
        snprintf(g.test_victim, sizeof(g.test_victim), "%s", victim);

    g.w = mh_calloc(MAX_WORKERS, sizeof(*g.w));
    g.children = mh_calloc(MAX_WORKERS, sizeof(*g.children));
    g.pfd = mh_calloc(2 * MAX_WORKERS + 1, sizeof(*g.pfd));
    g.pfd_worker = mh_calloc(2 * MAX_WORKERS + 1, sizeof(*g.pfd_worker));
    if (!g.w || !g.children || !g.pfd || !g.pfd_worker) {
        mh_errorf("out of memory");
        goto cleanup;
    }
    if (g.o.log_path) {
        /* Safe as the other files (docs/security.md); an existing log
         * of ours is appended to only with --force. */
        int flags = MH_FILE_APPEND | (g.o.force ? MH_FILE_FORCE : 0);
        g.logfd = mh_file_create_private(g.o.log_path, flags);
        if (g.logfd < 0) {
            char why[PATH_MAX + 256];
            mh_file_create_error(g.o.log_path, flags, errno, "--force", why,
                                 sizeof(why));
            mh_errorf("%s", why);
            g.logfd = STDERR_FILENO;
            goto cleanup;
        }
    }
    if (g.o.worker_match) {
        int e = regcomp(&g.match, g.o.worker_match, REG_EXTENDED | REG_NOSUB);
        if (e) {
            char msg[256];
            regerror(e, &g.match, msg, sizeof(msg));
            mh_errorf("invalid --worker-match '%s': %s", g.o.worker_match,
                      msg);
            g.exit_code = MH_EXIT_USAGE;
            goto cleanup;
        }
        g.have_match = 1;
    }
    /* The user's own paths first, before any process is looked at. */
    if (prepare_snapdir(&g))
        goto cleanup;
    if (g.o.command && !g.have_match) {
        g.server = detect_server(&g);
        if (g.server == SRV_UNKNOWN) {
            mh_errorf("'%s' is neither gunicorn nor uWSGI: the guard cannot "
                      "tell its workers from its other children; name them "
                      "with --worker-match REGEX (on their command line)",
                      g.o.command[0]);
            g.exit_code = MH_EXIT_USAGE;
            goto cleanup;
        }
    }
    if (g.o.pid && refuse_master(&g))
        goto cleanup;
    if (g.o.command && !(pydir = mh_cli_bootstrap_dir()))
        goto cleanup;
    if (setup_signals(&g, &old))
        goto cleanup;

    if (g.o.command) {
        if (start_server(&g, &old, pydir))
            goto cleanup;
    } else {
        g.master = g.o.pid;
    }
    struct mh_proc_stat st;
    if (mh_proc_read_stat(g.master, &st)) {
        if (g.o.pid)
            mh_errorf("no process %ld", g.master);
        else
            mh_errorf("cannot read /proc/%ld/stat: %s", g.master,
                      strerror(errno));
        goto cleanup;
    }
    g.master_start = st.starttime;
    if (!g.have_match && read_exe(g.master, g.master_exe, sizeof(g.master_exe))) {
        mh_errorf("cannot read the program of process %ld (/proc/%ld/exe): "
                  "%s",
                  g.master, g.master, strerror(errno));
        goto cleanup;
    }
    if (read_master_cmd(&g))
        g.master_cmd[0] = '\0';

    g.server = detect_server(&g);
    if (g.o.sig) {
        g.sig = g.o.sig;
        g.sig_from = "option";
    } else {
        g.sig = g.server == SRV_UWSGI ? SIGHUP : SIGTERM;
        g.sig_from = g.server == SRV_UNKNOWN ? "default" : "server";
    }
    int probe = pidfd_open_(g.master);
    if (probe >= 0) {
        g.have_pidfd = 1;
        close(probe);
    } else {
        g.have_pidfd = errno == ENOSYS ? 0 : -1;
    }
    if (g.o.limit_fraction) {
        /* Tests point the guard at a directory holding cgroup v2 files
         * they write themselves (docs/guard.md, "Testing hooks"). */
        const char *fake = getenv("MEMHOUND_GUARD_TEST_CGROUP");
        int found = 0;
        if (fake && *fake) {
            memset(&g.cg, 0, sizeof(g.cg));
            g.cg.version = 2;
            snprintf(g.cg.dir, sizeof(g.cg.dir), "%s", fake);
            found = 1;
        } else {
            found = !mh_proc_cgroup_find(g.master, &g.cg);
        }
        if (!found || mh_proc_cgroup_read(&g.cg)) {
            log_warning(&g, g.master,
                        "--limit-fraction has no effect: cannot read the "
                        "memory cgroup of process %ld",
                        g.master);
        } else if (g.cg.limit == MH_CGROUP_NO_LIMIT) {
            log_warning(&g, g.master,
                        "--limit-fraction has no effect: the cgroup '%s' "
                        "has no memory limit",
                        g.cg.dir);
        } else {
            g.use_cgroup = 1;
        }
    }
    log_start(&g);
    if (g.server == SRV_UNKNOWN && !g.o.sig)
        log_warning(&g, g.master,
                    "the server is neither gunicorn nor uWSGI; recycling "
                    "with SIGTERM (use --signal to choose)");
    if (g.have_pidfd == 0)
        log_warning(&g, g.master,
                    "pidfd_open is not available (Linux < 5.3): signals go "
                    "through kill(2) right after the parent and start-time "
                    "check");
    run_loop(&g);

cleanup:
    for (size_t i = 0; g.w && i < g.nw; i++)
        forget(&g.w[i]);
    if (g.child && !g.status_known && g.exit_code == MH_EXIT_FAIL) {
        /* We failed after starting the server: it must not outlive us
         * unguarded and unwaited. */
        kill(g.child, SIGTERM);
        waitpid(g.child, &g.status, 0);
    }
    if (g.sigfd >= 0)
        close(g.sigfd);
    if (g.logfd != STDERR_FILENO)
        close(g.logfd);
    mh_free(g.w);
    mh_free(g.children);
    mh_free(g.pfd);
    mh_free(g.pfd_worker);
    mh_free(pydir);
    if (g.have_match)
        regfree(&g.match);
    if (g.status_known)
        return mh_spawn_pass_status(g.status);
    return g.exit_code;
}
