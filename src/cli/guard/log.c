/* guard: the event log, one JSON object per line per event (--log,
 * default stderr), and the events written to it. */
#include "guard.h"

static void
lkey(struct line *l, const char *key)
{
    mh_json_printf(&l->k, "%s\"%s\":", l->first ? "" : ",", key);
    l->first = 0;
}

/* A JSON string (or null): quotes, backslashes and control characters
 * escaped; other bytes (paths are UTF-8 in practice) pass through. */
void
mh_guard_lstr(struct line *l, const char *key, const char *v)
{
    lkey(l, key);
    if (!v)
        mh_json_write(&l->k, "null", 4);
    else
        mh_json_str(&l->k, v, strlen(v), MH_JSON_BYTES);
}

void
mh_guard_lnum(struct line *l, const char *key, double v, int decimals)
{
    lkey(l, key);
    mh_json_num(&l->k, v, decimals);
}

void
mh_guard_lint(struct line *l, const char *key, long long v)
{
    lkey(l, key);
    mh_json_printf(&l->k, "%lld", v);
}

void
mh_guard_j_begin(struct line *l, const char *event)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[40];
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    l->k = mh_json_sink_buf(l->s, sizeof(l->s));
    l->first = 1;
    mh_json_printf(&l->k, "{");
    lkey(l, "time");
    mh_json_printf(&l->k, "\"%s.%03ldZ\"", when, ts.tv_nsec / 1000000);
    mh_guard_lstr(l, "event", event);
}

void
mh_guard_j_end(struct guard *g, struct line *l)
{
    if (l->k.n >= sizeof(l->s) - 4) {
        /* Cannot happen with PATH_MAX paths, but a cut line must stay
         * one line of valid JSON. */
        l->k.n = 0;
        l->first = 1;
        mh_json_printf(
            &l->k, "{\"event\":\"error\",\"message\":\"log line too long\"");
    }
    mh_json_printf(&l->k, "}\n");
    const char *p = l->s;
    size_t left = l->k.n;
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

void
mh_guard_log_warning(struct guard *g, long pid, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    struct line l;
    mh_guard_j_begin(&l, "warning");
    if (pid > 0)
        mh_guard_lint(&l, "pid", pid);
    mh_guard_lstr(&l, "message", msg);
    mh_guard_j_end(g, &l);
}

/* A `refuse` or `not_worker` event: a process the guard will not
 * signal, and why. */
static void
log_not_signalled(struct guard *g, const char *event, long pid,
                  const char *why)
{
    struct line l;
    mh_guard_j_begin(&l, event);
    mh_guard_lint(&l, "pid", pid);
    mh_guard_lint(&l, "master", g->master);
    mh_guard_lstr(&l, "reason", why);
    if (!strcmp(event, "not_worker"))
        mh_guard_lstr(&l, "note", "reported, never signalled");
    mh_guard_j_end(g, &l);
}

void
mh_guard_log_not_worker(struct guard *g, long pid, const char *why)
{
    log_not_signalled(g, "not_worker", pid, why);
}

void
mh_guard_log_refusal(struct guard *g, long pid, const char *why)
{
    log_not_signalled(g, "refuse", pid, why);
}

void
mh_guard_log_exit(struct guard *g, struct worker *w)
{
    struct line l;
    mh_guard_j_begin(&l, "exit");
    mh_guard_lint(&l, "pid", w->pid);
    mh_guard_lnum(&l, "after_s",
                  w->signalled > 0 ? mh_clock_mono() - w->signalled : NAN, 3);
    lkey(&l, "killed");
    mh_json_printf(&l.k, w->state == W_KILLED ? "true" : "false");
    mh_guard_j_end(g, &l);
}

void
mh_guard_log_recycle(struct guard *g, struct worker *w, int sig)
{
    struct recycle *r = w->rec;
    double now = mh_clock_mono();
    struct line l;
    mh_guard_j_begin(&l, "recycle");
    mh_guard_lint(&l, "pid", w->pid);
    mh_guard_lint(&l, "master", g->master);
    mh_guard_lstr(&l, "reason", r->reason);
    if (!strcmp(r->reason, "lifetime"))
        mh_guard_lnum(&l, "limit", r->limit, 1);
    else
        mh_guard_lnum(&l, "limit", r->limit, 0);
    mh_guard_lint(&l, "rss", (long long)w->rss);
    mh_guard_lint(&l, "uss", (long long)w->uss);
    mh_guard_lnum(&l, "lifetime", mh_guard_lifetime(w), 1);
    lkey(&l, "requests");
    if (w->requests >= 0)
        mh_json_printf(&l.k, "%lld", w->requests);
    else
        mh_json_printf(&l.k, "null");
    mh_guard_lstr(&l, "dump", r->dump[0] && r->dump_ok ? r->dump : NULL);
    if (r->dump[0] && r->dump_ok < 0)
        mh_guard_lstr(&l, "dump_partial", r->dump);
    mh_guard_lstr(&l, "capture", r->capture[0] ? r->capture : NULL);
    if (r->note[0])
        mh_guard_lstr(&l, "evidence", r->note);
    mh_guard_lnum(&l, "evidence_s",
                  r->evidence_start > 0 ? now - r->evidence_start : 0, 3);
    mh_guard_lnum(&l, "waited_s", now - r->decided, 3);
    mh_guard_lnum(&l, "over_s", w->over_since > 0 ? now - w->over_since : 0,
                  3);
    mh_guard_lstr(&l, "signal", mh_guard_sig_name(sig));
    mh_guard_lstr(&l, "server", mh_guard_server_name[g->server]);
    mh_guard_j_end(g, &l);
}

/* One warning per guard that --max-requests cannot apply to a worker:
 * its requests are `why`. */
void
mh_guard_warn_requests_once(struct guard *g, struct worker *w, const char *why)
{
    if (g->warned_requests)
        return;
    g->warned_requests = 1;
    mh_guard_log_warning(
        g, w->pid,
        "the requests of process %ld are %s, so --max-requests "
        "cannot apply to it",
        w->pid, why);
}

void
mh_guard_log_stop(struct guard *g, const char *reason, int sig)
{
    struct line l;
    mh_guard_j_begin(&l, "stop");
    mh_guard_lint(&l, "master", g->master);
    mh_guard_lstr(&l, "reason", reason);
    if (sig)
        mh_guard_lstr(&l, "signal", mh_guard_sig_name(sig));
    if (g->status_known) {
        if (WIFEXITED(g->status))
            mh_guard_lint(&l, "exit_status", WEXITSTATUS(g->status));
        else if (WIFSIGNALED(g->status))
            mh_guard_lstr(&l, "killed_by",
                          mh_guard_sig_name(WTERMSIG(g->status)));
    }
    size_t pending = 0;
    for (size_t i = 0; i < g->nw; i++)
        pending += mh_guard_in_flight(&g->w[i]);
    if (pending)
        mh_guard_lint(&l, "recycles_abandoned", (long long)pending);
    mh_guard_j_end(g, &l);
}

void
mh_guard_log_start(struct guard *g)
{
    struct line l;
    mh_guard_j_begin(&l, "start");
    mh_guard_lint(&l, "master", g->master);
    mh_guard_lint(&l, "guard", (long long)getpid());
    mh_guard_lstr(&l, "server", mh_guard_server_name[g->server]);
    mh_guard_lstr(&l, "signal", mh_guard_sig_name(g->sig));
    mh_guard_lstr(&l, "signal_from", g->sig_from);
    mh_guard_lnum(&l, "interval", g->o.interval, 3);
    mh_guard_lnum(&l, "mercy", g->o.mercy, 3);
    mh_guard_lint(&l, "max_concurrent", g->o.max_concurrent);
    lkey(&l, "limits");
    mh_json_printf(&l.k, "{");
    l.first = 1;
    if (g->o.rss_limit)
        mh_guard_lint(&l, "rss", (long long)g->o.rss_limit);
    if (g->o.uss_limit)
        mh_guard_lint(&l, "uss", (long long)g->o.uss_limit);
    if (g->use_cgroup) {
        mh_guard_lnum(&l, "cgroup_fraction", g->o.limit_fraction, 3);
        mh_guard_lint(&l, "cgroup_limit", (long long)g->cg.limit);
        mh_guard_lstr(&l, "cgroup", g->cg.dir);
    }
    if (g->o.max_lifetime) {
        mh_guard_lnum(&l, "lifetime", g->o.max_lifetime, 1);
        mh_guard_lnum(&l, "jitter", g->o.jitter, 1);
    }
    if (g->o.max_requests)
        mh_guard_lint(&l, "requests", g->o.max_requests);
    mh_json_printf(&l.k, "}");
    l.first = 0;
    mh_guard_lstr(&l, "snapshot_dir", g->o.no_dump ? NULL : g->snapdir);
    lkey(&l, "pidfd");
    mh_json_printf(&l.k, g->have_pidfd ? "true" : "false");
    mh_guard_j_end(g, &l);
}
