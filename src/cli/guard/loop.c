/* guard: the periodic check (which worker passed a limit), the poll()
 * loop and the command's entry point, mh_cmd_guard(). */
#include "guard.h"

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
        double age = mh_guard_lifetime(w);
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
        int r = pid > 0 ? mh_guard_signal_verified(g, &w, g->sig) : 0;
        if (r == 1)
            mh_guard_log_warning(g, pid, "test hook: signalled process %ld",
                                 pid);
        else if (r == 0)
            mh_guard_log_warning(g, pid, "test hook: process %ld is gone",
                                 pid);
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

/* Once: every child of the master was checked and none is a verified
 * worker, so the guard would recycle nothing. */
static void
warn_no_workers(struct guard *g)
{
    if (g->warned_no_workers || !g->nw)
        return;
    size_t verified = 0, reported = 0;
    for (size_t i = 0; i < g->nw; i++) {
        verified += g->w[i].kind == 1;
        reported += g->w[i].kind < 0;
    }
    if (!verified && reported == g->nw) {
        g->warned_no_workers = 1;
        mh_guard_log_warning(
            g, g->master,
            "none of the %zu children of master %ld is a "
            "verified worker, so none will be recycled: start "
            "the server recording (memhound run, or guard -- "
            "COMMAND), let it name its workers (gunicorn with "
            "setproctitle, uWSGI --auto-procname), or name them "
            "with --worker-match",
            g->nw, g->master);
    }
}

/* Measures the verified workers that are watched, picks those past a
 * limit, most urgent first, and starts recycling as many as
 * --max-concurrent allows and never the last one serving. */
static void
recycle_over_limit(struct guard *g, size_t live, size_t busy)
{
    /* Measure what the limits need: of verified workers only, the others
     * are never signalled. */
    for (size_t i = 0; i < g->nw; i++) {
        struct worker *w = &g->w[i];
        if (w->state != W_WATCH || w->kind != 1)
            continue;
        if (w->uss > w->rss)
            w->uss = w->rss; /* USS <= RSS: a bound without reading */
        if (g->o.uss_limit && mh_guard_uss_due(g, w)) {
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
        mh_guard_start_recycle(g, cand[i].w, cand[i].reason, cand[i].limit);
    }
    /* Request counts for the next check, from the workers that stay. */
    for (size_t i = 0; g->o.max_requests && g->stats_state && i < g->nw; i++)
        if (g->w[i].state == W_WATCH && g->w[i].kind == 1)
            mh_guard_query_stats(g, &g->w[i]);
}

/* One check, every --interval: the master still there, its children
 * listed and verified, the gone ones forgotten, then the limits. */
void
mh_guard_tick(struct guard *g)
{
    g->tick_no++;
    if (!g->child && mh_guard_check_master(g)) {
        struct line l;
        mh_guard_j_begin(&l, "stop");
        mh_guard_lint(&l, "master", g->master);
        mh_guard_lstr(&l, "reason", "the master process is gone");
        mh_guard_j_end(g, &l);
        g->done = 1;
        g->exit_code = MH_EXIT_OK;
        return;
    }
    if (mh_guard_read_master_cmd(g))
        return; /* the master just ended; the next tick says */
    size_t n = 0;
    int rc = mh_proc_children(g->master, g->children, MAX_WORKERS, &n);
    if (rc == MH_ETOOBIG)
        mh_guard_log_warning(
            g, g->master,
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
        struct worker *w = mh_guard_find_worker(g, pid);
        if (w && w->start != st.starttime) {
            /* The pid came back as a new process: the old one left. */
            if (mh_guard_in_flight(w))
                mh_guard_worker_gone(g, w);
            mh_guard_forget(w);
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
            w->jitter =
                g->o.jitter * mh_guard_jitter_fraction(pid, st.starttime);
            w->requests = -1;
            w->pidfd = w->ctlfd = -1;
            w->state = W_WATCH;
            w->first_seen = mh_clock_mono();
        }
        w->seen = g->tick_no;
        w->rss = st.rss_pages * (uint64_t)g->page;
        if (st.state == 'Z' && w->state != W_DONE) {
            /* Exited, not reaped yet. */
            if (mh_guard_in_flight(w))
                mh_guard_worker_gone(g, w);
            mh_guard_forget(w);
            w->state = W_DONE;
        }
        if (w->state == W_WATCH)
            mh_guard_check_kind(g, w);
    }

    /* Those no longer listed have been reaped. */
    size_t live = 0, busy = 0;
    for (size_t i = 0; i < g->nw;) {
        struct worker *w = &g->w[i];
        if (w->seen != g->tick_no) {
            if (mh_guard_in_flight(w))
                mh_guard_worker_gone(g, w);
            mh_guard_forget(w);
            g->w[i] = g->w[--g->nw];
            continue;
        }
        if (w->state == W_WATCH && w->kind == 1)
            live++;
        else if (mh_guard_in_flight(w))
            busy++;
        i++;
    }

    warn_no_workers(g);
    if (g->test_victim[0])
        test_victims(g);
    if (g->stopping)
        return;

    recycle_over_limit(g, live, busy);
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
            if ((w->ctlfd >= 0 || mh_guard_in_flight(w)) && w->deadline < wake)
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
                mh_guard_on_signal(g, &si);
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
                    mh_guard_worker_gone(g, w);
            } else if (w->ctlfd == g->pfd[k].fd) {
                mh_guard_on_ctl_ready(g, w);
            }
        }
        now = mh_clock_mono();
        for (size_t i = 0; i < g->nw; i++) {
            struct worker *w = &g->w[i];
            if ((w->ctlfd >= 0 || mh_guard_in_flight(w)) && w->deadline <= now)
                mh_guard_on_deadline(g, w);
        }
        if (now >= g->next_tick) {
            mh_guard_tick(g);
            g->next_tick += g->o.interval;
            if (g->next_tick <= now)
                g->next_tick = now + g->o.interval;
        }
    }
}

/* The command: options, log, master (started or found), signals, then
 * the loop. Longer than 100 lines because every setup step shares one
 * cleanup (the server we started must not outlive a failed setup), which
 * helpers would have to thread through as state. */
int
mh_cmd_guard(int argc, char **argv)
{
    struct guard g;
    memset(&g, 0, sizeof(g));
    int rc = mh_guard_parse_args(argc, argv, &g.o);
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
    if (mh_guard_prepare_snapdir(&g))
        goto cleanup;
    if (g.o.command && !g.have_match) {
        g.server = mh_guard_detect_server(&g);
        if (g.server == SRV_UNKNOWN) {
            mh_errorf("'%s' is neither gunicorn nor uWSGI: the guard cannot "
                      "tell its workers from its other children; name them "
                      "with --worker-match REGEX (on their command line)",
                      g.o.command[0]);
            g.exit_code = MH_EXIT_USAGE;
            goto cleanup;
        }
    }
    if (g.o.pid && mh_guard_refuse_master(&g))
        goto cleanup;
    if (g.o.command && !(pydir = mh_cli_bootstrap_dir()))
        goto cleanup;
    if (mh_guard_setup_signals(&g, &old))
        goto cleanup;

    if (g.o.command) {
        if (mh_guard_start_server(&g, &old, pydir))
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
    if (!g.have_match &&
        mh_guard_read_exe(g.master, g.master_exe, sizeof(g.master_exe))) {
        mh_errorf("cannot read the program of process %ld (/proc/%ld/exe): "
                  "%s",
                  g.master, g.master, strerror(errno));
        goto cleanup;
    }
    if (mh_guard_read_master_cmd(&g))
        g.master_cmd[0] = '\0';

    g.server = mh_guard_detect_server(&g);
    if (g.o.sig) {
        g.sig = g.o.sig;
        g.sig_from = "option";
    } else {
        g.sig = g.server == SRV_UWSGI ? SIGHUP : SIGTERM;
        g.sig_from = g.server == SRV_UNKNOWN ? "default" : "server";
    }
    int probe = mh_guard_pidfd_open(g.master);
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
            mh_guard_log_warning(
                &g, g.master,
                "--limit-fraction has no effect: cannot read the "
                "memory cgroup of process %ld",
                g.master);
        } else if (g.cg.limit == MH_CGROUP_NO_LIMIT) {
            mh_guard_log_warning(
                &g, g.master,
                "--limit-fraction has no effect: the cgroup '%s' "
                "has no memory limit",
                g.cg.dir);
        } else {
            g.use_cgroup = 1;
        }
    }
    mh_guard_log_start(&g);
    if (g.server == SRV_UNKNOWN && !g.o.sig)
        mh_guard_log_warning(
            &g, g.master,
            "the server is neither gunicorn nor uWSGI; recycling "
            "with SIGTERM (use --signal to choose)");
    if (g.have_pidfd == 0)
        mh_guard_log_warning(
            &g, g.master,
            "pidfd_open is not available (Linux < 5.3): signals go "
            "through kill(2) right after the parent and start-time "
            "check");
    run_loop(&g);

cleanup:
    for (size_t i = 0; g.w && i < g.nw; i++)
        mh_guard_forget(&g.w[i]);
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
