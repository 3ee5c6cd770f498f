/* guard: evidence before a recycle, over the agent's control socket:
 * the capture path (ping), a heap dump, a flush; and the replies and
 * deadlines of those requests. */
#include "guard.h"

/* Starts one control request for the worker, with descriptor `passfd`
 * attached when it is not -1; on failure notes why in the recycle and
 * returns -1. */
int
mh_guard_ctl_start(struct guard *g, struct worker *w, const char *req,
                   double timeout, int passfd)
{
    char path[MH_AGENTCTL_PATH_MAX];
    struct recycle *r = w->rec;
    mh_guard_close_ctl(w);
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
    if (mh_guard_ctl_start(g, w, MH_CTL_FLUSH, CTL_TIMEOUT, -1)) {
        memcpy(w->rec->note, note, sizeof(note)); /* keep the dump's note */
        mh_guard_send_graceful(g, w);
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
    int k =
        snprintf(r->dump, sizeof(r->dump), "%s/memhound-heap.%ld.%lld.%s.mhh",
                 g->snapdir, w->pid, (long long)ts.tv_sec, tag);
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
    snprintf(req, sizeof(req), MH_CTL_DUMP_WAIT " %s", r->dump);
    int rc = mh_guard_ctl_start(g, w, req, g->o.dump_timeout, fd);
    close(fd);
    if (rc) {
        unlink(r->dump);
        r->dump[0] = '\0';
        mh_guard_send_graceful(g, w);
        return;
    }
    w->state = W_DUMP;
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
    if (g->done || mh_guard_lifetime(w) < WEB_SETTLE)
        return;
    if (!g->child && !g->web_seen) {
        mh_errorf("--max-requests cannot apply to process %ld: its "
                  "workers do not count requests (worker %ld has run "
                  "%.0f s without memhound's web layer); start the server "
                  "with 'memhound run --web -- COMMAND' or "
                  "'memhound guard --max-requests N -- COMMAND', or wrap "
                  "the app in memhound.web's middleware (docs/web.md)",
                  g->master, w->pid, mh_guard_lifetime(w));
        mh_guard_log_stop(
            g,
            "--max-requests cannot apply: the workers do not count "
            "requests",
            0);
        g->done = 1;
        g->exit_code = MH_EXIT_USAGE;
        return;
    }
    mh_guard_warn_requests_once(
        g, w, "not counted (its agent runs without the web layer)");
}

/* A reply line arrived (or the connection ended) for a worker's control
 * request. */
static void
on_reply(struct guard *g, struct worker *w, const char *line)
{
    if (w->state == W_WATCH) { /* stats */
        if (!line) {
            mh_guard_close_ctl(w);
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
            mh_guard_log_warning(
                g, w->pid,
                "--max-requests has no effect: the agent does not "
                "count requests (its control socket answered "
                "'%.200s' to 'stats')",
                line);
        }
        mh_guard_close_ctl(w);
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
            mh_guard_close_ctl(w);
            mh_guard_send_graceful(g, w);
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
        mh_guard_send_graceful(g, w);
        return;
    default:
        mh_guard_close_ctl(w);
        return;
    }
}

void
mh_guard_on_ctl_ready(struct guard *g, struct worker *w)
{
    struct mh_agentctl_reply *r = w->stats ? w->stats : &w->rec->reply;
    int k = mh_agentctl_read(w->ctlfd, r);
    if (k == 0)
        return;
    on_reply(g, w, k == 1 ? r->line : NULL);
}

/* The deadline of the worker's current step passed. */
void
mh_guard_on_deadline(struct guard *g, struct worker *w)
{
    switch (w->state) {
    case W_WATCH:
        mh_guard_close_ctl(w); /* a stats request that got no answer */
        return;
    case W_PING:
        snprintf(w->rec->note, sizeof(w->rec->note),
                 "the control socket did not answer within %.0f s",
                 CTL_TIMEOUT);
        mh_guard_send_graceful(g, w);
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
        mh_guard_send_graceful(g, w);
        return;
    case W_SIGNALLED: {
        int r = mh_guard_signal_verified(g, w, SIGKILL);
        if (r == 1) {
            struct line l;
            mh_guard_j_begin(&l, "kill");
            mh_guard_lint(&l, "pid", w->pid);
            mh_guard_lnum(&l, "after_s", mh_clock_mono() - w->signalled, 3);
            mh_guard_lstr(&l, "reason",
                          "still running after the mercy period");
            mh_guard_j_end(g, &l);
            w->state = W_KILLED;
            w->deadline = mh_clock_mono() + KILL_WAIT;
        } else {
            mh_guard_worker_gone(g, w);
        }
        return;
    }
    case W_KILLED:
        mh_guard_log_warning(
            g, w->pid,
            "process %ld did not exit %.0f s after SIGKILL; no "
            "longer waiting for it",
            w->pid, KILL_WAIT);
        mh_guard_forget(w);
        w->state = W_DONE;
        return;
    case W_DONE:
        return;
    }
}

/* A directory the guard makes is 0700; one that exists must be safe to
 * write in (mh_file_check_dir(): ours or root's, not writable by others
 * unless sticky), since dumps and captures are created there. */
int
mh_guard_prepare_snapdir(struct guard *g)
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
