/* guard: the workers: which server runs, which children of its master are
 * workers (verification), their bookkeeping, and their stats. */
#include "guard.h"

const char *const mh_guard_server_name[] = {"unknown", "gunicorn", "uwsgi"};

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

enum server
mh_guard_detect_server(struct guard *g)
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

int
mh_guard_read_exe(long pid, char *out, size_t n)
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
int
mh_guard_read_master_cmd(struct guard *g)
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
               !strcmp(title + sizeof(gw) - 1, g->master_cmd + sizeof(gm) - 1);
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
int
mh_guard_classify(struct guard *g, long pid, int soft, char *why, size_t n)
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
        snprintf(why, n,
                 "its command line '%.200s' does not match "
                 "--worker-match",
                 cmd);
        return -1;
    }
    char exe[PATH_MAX];
    if (mh_guard_read_exe(pid, exe, sizeof(exe))) {
        snprintf(why, n, "cannot read its program (/proc/%ld/exe): %s", pid,
                 strerror(errno));
        return -1;
    }
    if (strcmp(exe, g->master_exe)) {
        snprintf(why, n,
                 "it runs '%.200s', not the master's program "
                 "'%.200s'",
                 exe, g->master_exe);
        return -1;
    }
    int named = named_worker(g, cmd);
    if (!named && strcmp(cmd, g->master_cmd)) {
        snprintf(why, n,
                 "its command line '%.200s' is neither the "
                 "master's nor a %s worker's",
                 cmd, mh_guard_server_name[g->server]);
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
    snprintf(why, n,
             "a fork of the master that is neither registered "
             "with memhound (no control socket) nor named as a %s worker",
             mh_guard_server_name[g->server]);
    return 0;
}

/* The worker's kind for this tick: classifies it while that is not
 * final, and reports it once when it is not a worker. */
void
mh_guard_check_kind(struct guard *g, struct worker *w)
{
    if (w->kind == 1 || w->kind == -1)
        return;
    char why[512];
    int k = mh_guard_classify(g, w->pid, 1, why, sizeof(why));
    if (k == 1) {
        w->kind = 1;
    } else if (k < 0) {
        if (w->kind != -2)
            mh_guard_log_not_worker(g, w->pid, why);
        w->kind = -1;
    } else if (w->kind == 0 &&
               mh_clock_mono() - w->first_seen >= VERIFY_GRACE) {
        mh_guard_log_not_worker(g, w->pid, why);
        w->kind = -2;
    }
}

/* --pid must name a master the guard recognises (or come with
 * --worker-match): a shell, init or any other parent would have its
 * children taken for workers. Prints why and returns -1 when refused. */
int
mh_guard_refuse_master(struct guard *g)
{
    struct mh_proc_stat st;
    g->master = g->o.pid;
    if (mh_proc_read_stat(g->master, &st)) {
        mh_errorf("no process %ld", g->master);
        return -1;
    }
    if (mh_guard_read_master_cmd(g))
        g->master_cmd[0] = '\0';
    if (g->have_match)
        return 0;
    g->server = mh_guard_detect_server(g);
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
                  g->master, g->master_cmd, mh_guard_server_name[g->server]);
        return -1;
    }
    g->exit_code = MH_EXIT_FAIL;
    return 0;
}

struct worker *
mh_guard_find_worker(struct guard *g, long pid)
{
    for (size_t i = 0; i < g->nw; i++)
        if (g->w[i].pid == pid)
            return &g->w[i];
    return NULL;
}

void
mh_guard_close_ctl(struct worker *w)
{
    if (w->ctlfd >= 0)
        close(w->ctlfd);
    w->ctlfd = -1;
    mh_free(w->stats);
    w->stats = NULL;
}

void
mh_guard_forget(struct worker *w)
{
    mh_guard_close_ctl(w);
    if (w->pidfd >= 0)
        close(w->pidfd);
    w->pidfd = -1;
    mh_free(w->rec);
    w->rec = NULL;
}

/* A stable pseudo-random fraction for a worker, for the jitter. */
double
mh_guard_jitter_fraction(long pid, unsigned long long start)
{
    uint64_t x = (uint64_t)pid * UINT64_C(0x9E3779B97F4A7C15) ^ start;
    x ^= x >> 33;
    x *= UINT64_C(0xff51afd7ed558ccd);
    x ^= x >> 33;
    return (double)(x >> 11) / 9007199254740992.0;
}

int
mh_guard_in_flight(const struct worker *w)
{
    return w->state != W_WATCH && w->state != W_DONE;
}

double
mh_guard_lifetime(const struct worker *w)
{
    return mh_proc_uptime() - w->born;
}

/* The worker left (exited, reaped or not) during a recycle. */
void
mh_guard_worker_gone(struct guard *g, struct worker *w)
{
    if (w->state == W_SIGNALLED || w->state == W_KILLED) {
        mh_guard_log_exit(g, w);
    } else if (mh_guard_in_flight(w)) {
        struct line l;
        mh_guard_j_begin(&l, "exit");
        mh_guard_lint(&l, "pid", w->pid);
        mh_guard_lstr(&l, "note",
                      "exited on its own before the guard signalled it");
        mh_guard_j_end(g, &l);
    }
    mh_guard_forget(w);
    w->state = W_DONE;
}

void
mh_guard_query_stats(struct guard *g, struct worker *w)
{
    if (w->ctlfd >= 0)
        return;
    char path[128];
    if (mh_agentctl_find(w->pid, path, sizeof(path))) {
        mh_guard_warn_requests_once(
            g, w,
            "unknown: it does not record with memhound (no "
            "control socket)");
        return;
    }
    int fd = mh_agentctl_connect(w->pid, path, NULL);
    if (fd < 0)
        return;
    w->stats = mh_calloc(1, sizeof(*w->stats));
    if (!w->stats || mh_agentctl_send(fd, MH_CTL_STATS)) {
        close(fd);
        mh_free(w->stats);
        w->stats = NULL;
        return;
    }
    w->ctlfd = fd;
    w->deadline = mh_clock_mono() + CTL_TIMEOUT;
}

int
mh_guard_check_master(struct guard *g)
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

int
mh_guard_uss_due(const struct guard *g, const struct worker *w)
{
    if (w->rss <= g->o.uss_limit)
        return 0;
    if (!w->uss_tick || g->tick_no - w->uss_tick >= USS_EVERY)
        return 1;
    uint64_t d =
        w->rss > w->uss_rss ? w->rss - w->uss_rss : w->uss_rss - w->rss;
    return d > USS_RSS_SLACK;
}
