/* `memhound top [PID... | --tree MASTER]`: a live view of processes'
 * memory, refreshed in place with plain ANSI (cursor home, clear to end
 * of line, clear below: works in any terminal and in tmux), or one frame
 * without escapes with --once, for scripts:
 *
 *   PID, role, RSS, USS (private memory, what the process's exit frees),
 *   growth of USS in MiB/h with R² (fit quality: near 1 = steady growth,
 *   a leak; near 0 = noise), requests/s when the agent counts them, age,
 *   and the time left until the cgroup's memory limit at that growth.
 *
 * The header has the cgroup's own use, limit, growth and time left. The
 * growth is a least-squares line over the last --window of samples
 * (src/util/slope.h); it shows after MH_SLOPE_MIN_POINTS samples,
 * as "~0" while its 95% interval still holds zero (noise either way,
 * nothing to extrapolate), and only a significant slope gives a time
 * left.
 *
 * Exit codes: 0; 1 when no process could be read; 2 usage error. */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "../util/slope.h"
#include "../util/clock.h"
#include "../util/ctlsock.h"
#include "../util/mem.h"
#include "../util/msg.h"
#include "../util/proc.h"
#include "agentctl.h"
#include "args.h"
#include "cli.h"
#include "units.h"

#define MAX_PROCS 1024
#define MAX_ARGS 256
#define DEFAULT_INTERVAL 2.0
#define DEFAULT_WINDOW 600.0
#define TREE_DEPTH 3
/* The agent answers on its 100 ms tick. */
#define STATS_TIMEOUT 0.5
#define MIB (1024.0 * 1024.0)

struct top_opts {
    long pids[MAX_ARGS];
    size_t npids;
    long tree; /* 0: the pids given */
    double interval, window;
    int once;
    long samples;
};

struct tproc {
    long pid;
    unsigned long long start;
    int depth; /* in --tree: 0 the master */
    char comm[64];
    char cmd[160];
    uint64_t rss, uss;
    int have_uss;
    double born; /* seconds after boot */
    struct mh_slope *slope;
    long long req_prev; /* -1: unknown */
    double req_t;
    double rps; /* < 0: unknown */
    int ctl;    /* -1 not looked for yet, 0 none, 1 has a socket */
    int fd;     /* a stats request in flight, or -1 */
    struct mh_agentctl_reply reply;
    unsigned seen;
};

struct top {
    struct top_opts o;
    struct tproc *p[MAX_PROCS];
    size_t np;
    unsigned round;
    long page;
    double hz;
    int stats_ok; /* 0 once an agent said it has no stats */
    int have_cg;
    struct mh_cgroup_mem cg;
    struct mh_slope *cg_slope;
    int tty;
};

static volatile sig_atomic_t stop_requested;

static void
on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void
usage(FILE *out)
{
    fprintf(out,
            "usage: memhound top [options] PID...\n"
            "       memhound top [options] --tree MASTER\n"
            "\n"
            "Shows each process's RSS, USS, USS growth in MiB/h with its\n"
            "fit quality (R²), requests/s when its agent counts them, and\n"
            "the time left until the cgroup memory limit at that growth.\n"
            "\n"
            "      --tree MASTER     MASTER and its descendants (workers\n"
            "                        come and go)\n"
            "      --interval DUR    time between samples (default 2s)\n"
            "      --window DUR      growth is fitted over this much\n"
            "                        history (default 10m)\n"
            "      --once            print one frame, without terminal\n"
            "                        escapes, and exit\n"
            "      --samples N       with --once: sample N times, --interval\n"
            "                        apart, before printing (default 1;\n"
            "                        growth needs 3)\n"
            "  -h, --help            show this help\n");
}

static int
parse_args(int argc, char **argv, struct top_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->interval = DEFAULT_INTERVAL;
    o->window = DEFAULT_WINDOW;
    o->samples = 1;
    int samples_given = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        int r;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(MH_EXIT_OK);
        } else if (!strcmp(a, "--once")) {
            o->once = 1;
        } else if ((r = mh_args_take_value(argc, argv, &i, NULL, "--tree",
                                           &val))) {
            if (r < 0)
                return mh_args_missing(a);
            if (mh_args_parse_pid(val, &o->tree))
                return mh_args_bad_value("--tree", val, "a process id");
        } else if ((r = mh_args_take_value(argc, argv, &i, NULL, "--interval",
                                           &val)) ||
                   (r = mh_args_take_value(argc, argv, &i, NULL, "--window",
                                           &val))) {
            if (r < 0)
                return mh_args_missing(a);
            const char *name = a[2] == 'i' ? "--interval" : "--window";
            double *dst = a[2] == 'i' ? &o->interval : &o->window;
            if (mh_units_parse_duration(val, 0.1, dst))
                return mh_args_bad_value(
                    name, val, "a duration of 100ms or more, such as 2s");
        } else if ((r = mh_args_take_value(argc, argv, &i, NULL, "--samples",
                                           &val))) {
            if (r < 0)
                return mh_args_missing(a);
            char *end;
            errno = 0;
            o->samples = strtol(val, &end, 10);
            if (errno || end == val || *end || o->samples < 1 ||
                o->samples > 100000)
                return mh_args_bad_value("--samples", val,
                                         "a count of 1 or more");
            samples_given = 1;
        } else if (a[0] == '-') {
            mh_errorf("unknown option '%s' for top; see 'memhound top "
                      "--help'",
                      a);
            return MH_EXIT_USAGE;
        } else {
            if (o->npids >= MAX_ARGS) {
                mh_errorf("too many processes (at most %d)", MAX_ARGS);
                return MH_EXIT_USAGE;
            }
            if (mh_args_parse_pid(a, &o->pids[o->npids])) {
                mh_errorf("invalid process id '%s'", a);
                return MH_EXIT_USAGE;
            }
            o->npids++;
        }
    }
    if (!o->npids == !o->tree) {
        mh_errorf("top needs process ids or --tree MASTER");
        usage(stderr);
        return MH_EXIT_USAGE;
    }
    if (samples_given && !o->once)
        mh_warnf("--samples has no effect without --once");
    return MH_EXIT_OK;
}

/* ---- the process set ---- */

static struct tproc *
find(struct top *t, long pid)
{
    for (size_t i = 0; i < t->np; i++)
        if (t->p[i]->pid == pid)
            return t->p[i];
    return NULL;
}

static void
free_proc(struct tproc *p)
{
    if (p->fd >= 0)
        close(p->fd);
    mh_free(p->slope);
    mh_free(p);
}

/* Adds `pid` or refreshes it; a pid with a new start time is a new
 * process and starts a new history. */
static void
track(struct top *t, long pid, int depth)
{
    struct mh_proc_stat st;
    if (mh_proc_read_stat(pid, &st) || st.state == 'Z')
        return;
    struct tproc *p = find(t, pid);
    if (p && p->start != st.starttime) {
        mh_slope_init(p->slope, t->o.window);
        p->req_prev = -1;
        p->rps = -1;
        p->ctl = -1;
        p->cmd[0] = '\0';
    }
    if (!p) {
        if (t->np >= MAX_PROCS)
            return;
        p = mh_calloc(1, sizeof(*p));
        if (!p)
            return;
        p->slope = mh_malloc(sizeof(*p->slope));
        if (!p->slope) {
            mh_free(p);
            return;
        }
        mh_slope_init(p->slope, t->o.window);
        p->pid = pid;
        p->req_prev = -1;
        p->rps = -1;
        p->ctl = -1;
        p->fd = -1;
        t->p[t->np++] = p;
    }
    if (!p->cmd[0]) {
        char buf[1024];
        size_t len;
        if (!mh_proc_read_cmdline(pid, buf, sizeof(buf), &len) && len) {
            for (size_t i = 0; i + 1 < len; i++)
                if (!buf[i])
                    buf[i] = ' ';
            size_t k = strnlen(buf, sizeof(p->cmd) - 1);
            memcpy(p->cmd, buf, k);
            p->cmd[k] = '\0';
        }
    }
    p->start = st.starttime;
    p->born = (double)st.starttime / t->hz;
    p->depth = depth;
    snprintf(p->comm, sizeof(p->comm), "%s", st.comm);
    p->rss = st.rss_pages * (uint64_t)t->page;
    struct mh_proc_mem m;
    p->have_uss = !mh_proc_read_mem(pid, &m);
    if (p->have_uss)
        p->uss = m.uss;
    mh_slope_add(p->slope, mh_clock_mono(),
                 (double)(p->have_uss ? p->uss : p->rss));
    p->seen = t->round;
}

static void
track_tree(struct top *t, long pid, int depth)
{
    track(t, pid, depth);
    if (depth >= TREE_DEPTH)
        return;
    long kids[MAX_PROCS];
    size_t n = 0;
    if (mh_proc_children(pid, kids, MAX_PROCS, &n) && !n)
        return;
    for (size_t i = 0; i < n; i++)
        track_tree(t, kids[i], depth + 1);
}

static int
by_tree_order(const void *a, const void *b)
{
    const struct tproc *x = *(struct tproc *const *)a;
    const struct tproc *y = *(struct tproc *const *)b;
    if (x->depth != y->depth)
        return x->depth - y->depth;
    return x->pid < y->pid ? -1 : x->pid > y->pid;
}

/* Asks every agent that may count requests, all at once, and collects
 * the answers for up to STATS_TIMEOUT. */
static void
collect_stats(struct top *t)
{
    if (!t->stats_ok)
        return;
    for (size_t i = 0; i < t->np; i++) {
        struct tproc *p = t->p[i];
        if (p->seen != t->round || p->ctl == 0)
            continue;
        char path[128];
        if (mh_agentctl_find(p->pid, path, sizeof(path))) {
            p->ctl = 0;
            continue;
        }
        p->ctl = 1;
        p->fd = mh_agentctl_connect(p->pid, path, NULL);
        if (p->fd >= 0 && mh_agentctl_send(p->fd, MH_CTL_STATS)) {
            close(p->fd);
            p->fd = -1;
        }
        p->reply.len = 0;
    }
    double deadline = mh_clock_mono() + STATS_TIMEOUT;
    for (;;) {
        struct pollfd pfd[MAX_PROCS];
        struct tproc *who[MAX_PROCS];
        nfds_t n = 0;
        for (size_t i = 0; i < t->np; i++)
            if (t->p[i]->fd >= 0) {
                pfd[n].fd = t->p[i]->fd;
                pfd[n].events = POLLIN;
                who[n++] = t->p[i];
            }
        double left = deadline - mh_clock_mono();
        if (!n || left <= 0)
            break;
        if (poll(pfd, n, (int)(left * 1000) + 1) <= 0)
            continue;
        for (nfds_t k = 0; k < n; k++) {
            if (!pfd[k].revents)
                continue;
            struct tproc *p = who[k];
            int r = mh_agentctl_read(p->fd, &p->reply);
            if (r == 0)
                continue;
            close(p->fd);
            p->fd = -1;
            if (r < 0)
                continue;
            const char *line = p->reply.line;
            const char *q = strstr(line, "requests");
            if (!strncmp(line, "ok", 2) && q) {
                q += 8;
                while (*q == '=' || *q == ':' || *q == ' ' || *q == '"')
                    q++;
                char *end;
                long long v = strtoll(q, &end, 10);
                if (end == q)
                    continue;
                double now = mh_clock_mono();
                if (p->req_prev >= 0 && now > p->req_t && v >= p->req_prev)
                    p->rps = (double)(v - p->req_prev) / (now - p->req_t);
                p->req_prev = v;
                p->req_t = now;
            } else if (!strncmp(line, "error", 5) &&
                       strstr(line, "unknown request")) {
                t->stats_ok = 0; /* agents without a request counter */
            }
        }
    }
    for (size_t i = 0; i < t->np; i++)
        if (t->p[i]->fd >= 0) {
            close(t->p[i]->fd);
            t->p[i]->fd = -1;
        }
}

static void
sample(struct top *t)
{
    t->round++;
    if (t->o.tree) {
        track_tree(t, t->o.tree, 0);
    } else {
        for (size_t i = 0; i < t->o.npids; i++)
            track(t, t->o.pids[i], 0);
    }
    /* Processes that are gone leave the view. */
    for (size_t i = 0; i < t->np;) {
        if (t->p[i]->seen != t->round) {
            free_proc(t->p[i]);
            t->p[i] = t->p[--t->np];
            continue;
        }
        i++;
    }
    qsort(t->p, t->np, sizeof(t->p[0]), by_tree_order);
    /* The cgroup of the master, or of the first process named. */
    if (!t->have_cg && t->np) {
        long first = t->o.tree ? t->o.tree : t->p[0]->pid;
        for (size_t i = 0; !t->o.tree && i < t->o.npids; i++)
            if (find(t, t->o.pids[i])) {
                first = t->o.pids[i];
                break;
            }
        t->have_cg = !mh_proc_cgroup_find(first, &t->cg) ? 1 : -1;
    }
    if (t->have_cg == 1 && !mh_proc_cgroup_read(&t->cg))
        mh_slope_add(t->cg_slope, mh_clock_mono(),
                     (double)(t->cg.current - t->cg.inactive_file));
    collect_stats(t);
}

/* ---- the frame ---- */

struct frame {
    FILE *out;
    int escapes;
    int width;
};

/* One line: cut at the terminal's width, cleared to its end. */
static void put_line(struct frame *f, const char *fmt, ...) MH_PRINTF(2, 3);

static void
put_line(struct frame *f, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (f->escapes && f->width > 0 && strlen(buf) > (size_t)f->width)
        buf[f->width] = '\0';
    fputs(buf, f->out);
    fputs(f->escapes ? "\033[K\n" : "\n", f->out);
}

/* The MiB/h column: "-" before MH_SLOPE_MIN_POINTS samples, "~0" while
 * the slope's 95% interval holds zero, else the slope. Returns 1 when
 * the slope is significant (fit to extrapolate a time left from). */
static int
shown_slope(const struct mh_slope *s, struct mh_slope_fit *fit, char *out,
            size_t n)
{
    if (mh_slope_fit(s, fit) || fit->n < MH_SLOPE_MIN_POINTS) {
        snprintf(out, n, "-");
        return 0;
    }
    if (!mh_slope_fit_significant(fit)) {
        snprintf(out, n, "~0");
        return 0;
    }
    snprintf(out, n, "%+.1f", fit->slope * 3600 / MIB);
    return 1;
}

static const char *
fmt_mib(uint64_t bytes, char *out, size_t n)
{
    snprintf(out, n, "%.1f", (double)bytes / MIB);
    return out;
}

static void
draw(struct top *t, int escapes)
{
    struct frame f = {stdout, escapes, 0};
    if (escapes) {
        struct winsize ws;
        if (!ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) && ws.ws_col > 0)
            f.width = ws.ws_col;
        fputs("\033[H", stdout);
    }
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    char clock[16];
    strftime(clock, sizeof(clock), "%H:%M:%S", &tm);
    put_line(&f,
             "memhound top - %zu process%s, every %.1fs, growth over "
             "%.0fs - %s",
             t->np, t->np == 1 ? "" : "es", t->o.interval, t->o.window, clock);

    double limit = -1, used = 0;
    char a[32], b[32], c[32];
    if (t->have_cg == 1) {
        used = (double)(t->cg.current - t->cg.inactive_file);
        struct mh_slope_fit fit;
        int have_fit = shown_slope(t->cg_slope, &fit, c, sizeof(c));
        if (t->cg.limit != MH_CGROUP_NO_LIMIT) {
            limit = (double)t->cg.limit;
            double left = have_fit ? mh_slope_time_to(&fit, used, limit) : -1;
            put_line(
                &f, "cgroup %s: %s of %s (%.0f%%), %s MiB/h, limit in %s",
                t->cg.dir, mh_units_size((uint64_t)used, a, sizeof(a)),
                mh_units_size(t->cg.limit, b, sizeof(b)), 100.0 * used / limit,
                c, have_fit ? mh_units_duration(left, a, sizeof(a)) : "-");
        } else {
            put_line(&f, "cgroup %s: %s, no memory limit", t->cg.dir,
                     mh_units_size((uint64_t)used, a, sizeof(a)));
        }
    } else {
        put_line(&f, "cgroup: not found");
    }
    put_line(&f, "%s", "");
    put_line(&f, "%8s %-6s %9s %9s %9s %5s %7s %7s %9s  %s", "PID", "ROLE",
             "RSS MiB", "USS MiB", "MiB/h", "R2", "REQ/S", "AGE", "LIMIT IN",
             "COMMAND");
    double up = mh_proc_uptime();
    for (size_t i = 0; i < t->np; i++) {
        struct tproc *p = t->p[i];
        struct mh_slope_fit fit;
        char rss[16], uss[16], slope[16], r2[16], rps[16], age[16], left[16];
        int have_fit = shown_slope(p->slope, &fit, slope, sizeof(slope));
        fmt_mib(p->rss, rss, sizeof(rss));
        if (p->have_uss)
            fmt_mib(p->uss, uss, sizeof(uss));
        else
            snprintf(uss, sizeof(uss), "-");
        if (slope[0] != '-')
            snprintf(r2, sizeof(r2), "%.2f", fit.r2);
        else
            snprintf(r2, sizeof(r2), "-");
        if (p->rps >= 0)
            snprintf(rps, sizeof(rps), "%.1f", p->rps);
        else
            snprintf(rps, sizeof(rps), "-");
        mh_units_duration(up - p->born, age, sizeof(age));
        if (have_fit && limit > 0)
            mh_units_duration(mh_slope_time_to(&fit, used, limit), left,
                              sizeof(left));
        else
            snprintf(left, sizeof(left), "-");
        const char *role = !t->o.tree      ? ""
                           : p->depth == 0 ? "master"
                                           : "child";
        put_line(&f, "%8ld %-6s %9s %9s %9s %5s %7s %7s %9s  %s", p->pid, role,
                 rss, uss, slope, r2, rps, age, left,
                 p->cmd[0] ? p->cmd : p->comm);
    }
    if (escapes)
        fputs("\033[J", stdout);
    fflush(stdout);
}

static void
sleep_for(double s)
{
    struct timespec ts;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) && errno == EINTR && !stop_requested)
        ;
}

int
mh_cmd_top(int argc, char **argv)
{
    struct top t;
    memset(&t, 0, sizeof(t));
    int rc = parse_args(argc, argv, &t.o);
    if (rc)
        return rc;
    t.page = mh_proc_page_size();
    t.hz = (double)mh_proc_ticks_per_second();
    t.stats_ok = 1;
    t.cg_slope = mh_malloc(sizeof(*t.cg_slope));
    if (!t.cg_slope) {
        mh_errorf("out of memory");
        return MH_EXIT_FAIL;
    }
    mh_slope_init(t.cg_slope, t.o.window);
    int code = MH_EXIT_OK;

    sample(&t);
    if (!t.np) {
        if (t.o.tree)
            mh_errorf("no process %ld", t.o.tree);
        else
            mh_errorf("none of the processes given exists");
        code = MH_EXIT_FAIL;
        goto cleanup;
    }
    if (!t.o.tree && t.np < t.o.npids)
        for (size_t i = 0; i < t.o.npids; i++)
            if (!find(&t, t.o.pids[i]))
                mh_warnf("no process %ld", t.o.pids[i]);

    if (t.o.once) {
        for (long k = 1; k < t.o.samples; k++) {
            sleep_for(t.o.interval);
            sample(&t);
        }
        draw(&t, 0);
        goto cleanup;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    t.tty = isatty(STDOUT_FILENO);
    if (t.tty)
        fputs("\033[H\033[2J", stdout);
    while (!stop_requested) {
        draw(&t, t.tty);
        if (!t.tty)
            fputs("\n", stdout);
        sleep_for(t.o.interval);
        if (stop_requested)
            break;
        sample(&t);
        if (!t.np) {
            draw(&t, t.tty);
            mh_warnf("every process watched has exited");
            break;
        }
    }

cleanup:
    for (size_t i = 0; i < t.np; i++)
        free_proc(t.p[i]);
    mh_free(t.cg_slope);
    return code;
}
