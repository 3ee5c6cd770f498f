/* guard: signals. To workers, only verified ones through a pidfd
 * (recycling: graceful signal, SIGKILL after the mercy period); to the
 * guard through its signalfd (graceful stop, passing signals on); and
 * starting the server with -- COMMAND. */
#include "guard.h"

int
mh_guard_pidfd_open(long pid)
{
    return (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
}

static int
pidfd_signal(int fd, int sig)
{
    return (int)syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0);
}

/* 1: `pid` is (still) the worker recorded as (pid, start), a child of the
 * master that mh_guard_classify() accepts (`soft` as there); 0: it is gone
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
        mh_guard_log_refusal(g, pid, why);
        return -1;
    }
    if (st.starttime != start) {
        snprintf(why, sizeof(why),
                 "process %ld started at tick %llu, not at %llu like the "
                 "worker seen with this pid (the pid was reused)",
                 pid, st.starttime, start);
        mh_guard_log_refusal(g, pid, why);
        return -1;
    }
    if (st.state == 'Z' || st.state == 'X')
        return 0;
    char what[512];
    if (mh_guard_classify(g, pid, soft, what, sizeof(what)) != 1) {
        snprintf(why, sizeof(why),
                 "process %ld is not a verified worker of master %ld: %s", pid,
                 g->master, what);
        mh_guard_log_refusal(g, pid, why);
        return -1;
    }
    return 1;
}

/* Sends `sig` to the worker if, right before, it is verified to be the
 * one we recorded. Returns 1 sent, 0 gone, -1 refused or failed. */
int
mh_guard_signal_verified(struct guard *g, struct worker *w, int sig)
{
    if (w->pidfd < 0 && g->have_pidfd != 0) {
        w->pidfd = mh_guard_pidfd_open(w->pid);
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
        mh_guard_log_warning(g, w->pid, "cannot send %s to process %ld: %s",
                             mh_guard_sig_name(sig), w->pid, strerror(errno));
        return -1;
    }
    return 1;
}

/* The last step of a recycle: the graceful signal. */
void
mh_guard_send_graceful(struct guard *g, struct worker *w)
{
    mh_guard_close_ctl(w);
    /* Measured before the signal: an idle worker exits at once. */
    struct mh_proc_mem m;
    if (!mh_proc_read_mem(w->pid, &m)) {
        w->rss = m.rss;
        w->uss = m.uss;
    }
    int r = mh_guard_signal_verified(g, w, g->sig);
    if (r == 1) {
        mh_guard_log_recycle(g, w, g->sig);
        w->state = W_SIGNALLED;
        w->signalled = mh_clock_mono();
        w->deadline = w->signalled + g->o.mercy;
    } else if (r == 0) {
        mh_guard_worker_gone(g, w);
    } else {
        mh_guard_forget(w); /* refused (logged): never touch it again */
        w->state = W_DONE;
    }
}

/* Decided: the worker goes. Evidence first, when there is an agent. */
void
mh_guard_start_recycle(struct guard *g, struct worker *w, const char *reason,
                       double limit)
{
    mh_guard_close_ctl(w);
    w->rec = mh_calloc(1, sizeof(*w->rec));
    if (!w->rec) {
        mh_guard_log_warning(g, w->pid, "out of memory");
        return;
    }
    w->rec->reason = reason;
    w->rec->limit = limit;
    w->rec->decided = mh_clock_mono();
    if (g->o.no_dump) {
        snprintf(w->rec->note, sizeof(w->rec->note),
                 "not asked for (--no-dump)");
        mh_guard_send_graceful(g, w);
        return;
    }
    w->rec->evidence_start = w->rec->decided;
    if (mh_guard_ctl_start(g, w, MH_CTL_PING, CTL_TIMEOUT, -1)) {
        mh_guard_send_graceful(g, w);
        return;
    }
    w->state = W_PING;
}

/* Signals the guard takes through its signalfd. TERM, INT and QUIT stop
 * the server (with a command) or the guard (with --pid); the rest are
 * passed to a server we started. */
static const int handled[] = {SIGTERM, SIGINT,   SIGQUIT, SIGHUP,  SIGUSR1,
                              SIGUSR2, SIGWINCH, SIGTTIN, SIGTTOU, SIGCHLD};
#define N_HANDLED (sizeof(handled) / sizeof(handled[0]))

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
            mh_guard_log_stop(g, "the server exited", 0);
        }
    }
}

void
mh_guard_on_signal(struct guard *g, const struct signalfd_siginfo *si)
{
    int sig = (int)si->ssi_signo;
    if (sig == SIGCHLD) {
        reap_child(g);
        return;
    }
    if (!g->child) {
        if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP) {
            mh_guard_log_stop(g, "told to stop; the server runs on", sig);
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
            if (mh_guard_in_flight(&g->w[i]) || g->w[i].ctlfd >= 0) {
                mh_guard_forget(&g->w[i]);
                if (g->w[i].state != W_WATCH)
                    g->w[i].state = W_DONE;
            }
        if (!g->stopping) {
            struct line l;
            mh_guard_j_begin(&l, "stopping");
            mh_guard_lint(&l, "master", g->master);
            mh_guard_lstr(&l, "signal", mh_guard_sig_name(sig));
            mh_guard_lstr(&l, "note",
                          from_process
                              ? "passed to the server; waiting for it to "
                                "exit"
                              : "the server got it too; waiting for it to "
                                "exit");
            mh_guard_j_end(g, &l);
        }
        g->stopping = 1;
    }
}

int
mh_guard_setup_signals(struct guard *g, sigset_t *old)
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

/* The server starts with SIGPIPE at its default and the mask the guard
 * was started with, not the guard's blocked set (`old`). */
static void
setup_child(const void *old)
{
    signal(SIGPIPE, SIG_DFL);
    sigprocmask(SIG_SETMASK, old, NULL);
}

int
mh_guard_start_server(struct guard *g, const sigset_t *old, const char *pydir)
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
    struct mh_agent_env e = {
        .output = output, .force = g->o.force, .web = g->o.max_requests > 0};
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
