/* The report as text for a terminal (see text.h). Names from captures
 * are printed with control characters replaced, so a hostile file name
 * cannot move the cursor. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "text.h"
#include "text_priv.h"

#define CHART_W 60
#define CHART_H 10
#define STACK_LINES 8 /* frames shown per site with --by stack */
#define EMPTY_PIDS 8  /* pids named on the "recorded nothing" line */

void
mh_text_bytes(char *buf, size_t size, double bytes)
{
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
    if (!isfinite(bytes))
        bytes = 0;
    double x = fabs(bytes);
    if (x < 1024) {
        snprintf(buf, size, "%.0f B", bytes);
        return;
    }
    int u = 0;
    x /= 1024;
    while (x >= 1023.95 && u < 4) {
        x /= 1024;
        u++;
    }
    snprintf(buf, size, "%s%.1f %s", bytes < 0 ? "-" : "", x, units[u]);
}

void
mh_text_duration(char *buf, size_t size, double s)
{
    if (!isfinite(s) || s < 0)
        s = 0;
    if (s < 60) {
        snprintf(buf, size, "%.1fs", s);
    } else if (s < 3600) {
        long t = lround(s);
        snprintf(buf, size, "%ldm%02lds", t / 60, t % 60);
    } else {
        long t = lround(s / 60);
        snprintf(buf, size, "%ldh%02ldm", t / 60, t % 60);
    }
}

void
mh_text_count(char *buf, size_t size, double n)
{
    if (!isfinite(n))
        n = 0;
    double x = fabs(n);
    if (x < 10000)
        snprintf(buf, size, "%.0f", n);
    else if (x < 1e6)
        snprintf(buf, size, "%.1fk", n / 1e3);
    else if (x < 1e9)
        snprintf(buf, size, "%.1fM", n / 1e6);
    else
        snprintf(buf, size, "%.1fG", n / 1e9);
}

void
mh_text_put_safe(FILE *out, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        fputc(c < 0x20 || c == 0x7f ? '?' : c, out);
    }
}

void
mh_text_put_id(FILE *out, const struct mh_analysis *a, uint32_t id)
{
    mh_text_put_safe(out, mh_analysis_str(a, id), mh_analysis_strlen(a, id));
}

void
mh_text_put_frame(FILE *out, const struct mh_analysis *a,
          const struct mh_site_frame *f)
{
    mh_text_put_id(out, a, f->file);
    if (f->line)
        fprintf(out, ":%u", f->line);
    else
        fputs(":?", out);
    fputs(" in ", out);
    mh_text_put_id(out, a, f->function);
}

/* "HH:MM:SS" (local time) of ns after the process's start. */
static void
clock_str(char *buf, size_t size, const struct mh_process *p, uint64_t ns)
{
    time_t t = (time_t)((p->start_ns + ns) / 1000000000ull);
    struct tm tm;
    if (!localtime_r(&t, &tm) || !strftime(buf, size, "%H:%M:%S", &tm))
        snprintf(buf, size, "?");
}

/* Names what the capture lacks, and why as far as the file tells
 * (docs/run.md, "What a capture can lose"). */
static void
end_note(FILE *out, const struct mh_analysis *a, const struct mh_process *p)
{
    char at[32], rel[32], sig[32];
    if (!p->have_header)
        return;
    if (p->disk_full) {
        clock_str(at, sizeof(at), p, p->disk_full_ns);
        mh_text_duration(rel, sizeof(rel), (double)p->disk_full_ns / 1e9);
        fputs("  note: '", out);
        mh_text_put_id(out, a, p->path);
        fprintf(out, "' stopped recording at %s (+%s): the disk was full (",
                at, rel);
        mh_text_put_id(out, a, p->disk_full_why);
        fprintf(out, "); %llu samples dropped, nothing recorded after\n",
                (unsigned long long)p->dropped);
    }
    clock_str(at, sizeof(at), p, p->duration_ns);
    mh_text_duration(rel, sizeof(rel), (double)p->duration_ns / 1e9);
    switch (p->end_kind) {
    case MH_END_CUT:
        fputs("  note: '", out);
        mh_text_put_id(out, a, p->path);
        fprintf(out,
                "' was cut short at offset %llu (the process was killed "
                "while writing, or the disk filled): last complete flush "
                "at %s (+%s); reporting up to there\n",
                (unsigned long long)p->truncated_at, at, rel);
        break;
    case MH_END_NONE:
        if (p->disk_full)
            break;
        fputs("  note: '", out);
        mh_text_put_id(out, a, p->path);
        fprintf(out,
                "' has no end record: the process ended without memhound "
                "finishing the capture (SIGKILL or a crash); its last flush "
                "was at %s (+%s), what came after is lost\n",
                at, rel);
        break;
    case MH_END_SIGNAL: {
        const char *name = p->end_signal ? sigabbrev_np(p->end_signal) : NULL;
        if (name)
            snprintf(sig, sizeof(sig), "SIG%s", name);
        else
            snprintf(sig, sizeof(sig), "signal %d", p->end_signal);
        clock_str(at, sizeof(at), p, p->end_ns);
        fputs("  note: '", out);
        mh_text_put_id(out, a, p->path);
        fprintf(out, "': the process ended by %s at %s; memhound wrote "
                     "its last records first",
                sig, at);
        if (p->unstacked)
            fprintf(out, " (%llu samples without their stacks)",
                    (unsigned long long)p->unstacked);
        fputc('\n', out);
        break;
    }
    case MH_END_EXEC:
        clock_str(at, sizeof(at), p, p->end_ns);
        fputs("  note: '", out);
        mh_text_put_id(out, a, p->path);
        fputs("': the process exec'd '", out);
        mh_text_put_id(out, a, p->exec_path);
        fprintf(out, "' at %s; the capture ends there\n", at);
        break;
    }
}

static const char *
mode_text(int mode)
{
    return mode == MH_RECORD_SAMPLE  ? "sampling"
           : mode == MH_RECORD_TRACE ? "trace-all (exact)"
           : mode == -1            ? "mixed (sampling and trace-all)"
                                   : "unknown (no capture has a header)";
}

/* The command line, cut to `max` bytes; with `short_exe`, argv[0]
 * without its directory. */
static void
put_argv(FILE *out, const struct mh_analysis *a, const struct mh_process *p,
         size_t max, int short_exe)
{
    size_t used = 0;
    if (!p->argc) {
        fputs("?", out);
        return;
    }
    for (uint32_t i = 0; i < p->argc; i++) {
        const char *s = mh_analysis_str(a, p->argv[i]);
        size_t n = mh_analysis_strlen(a, p->argv[i]);
        if (i == 0 && short_exe) {
            const char *slash = memrchr(s, '/', n);
            if (slash) {
                n -= (size_t)(slash + 1 - s);
                s = slash + 1;
            }
        }
        if (i) {
            if (used >= max) {
                fputs(" ...", out);
                return;
            }
            fputc(' ', out);
            used++;
        }
        if (used + n > max) {
            mh_text_put_safe(out, s, max - used);
            fputs("...", out);
            return;
        }
        mh_text_put_safe(out, s, n);
        used += n;
    }
}

static void
summary_text(FILE *out, const struct mh_analysis *a)
{
    const struct mh_summary *m = &a->summary;
    char b1[32], b2[32];
    if (a->nprocs == 1) {
        const struct mh_process *p = &a->procs[0];
        fputs("memhound report: ", out);
        mh_text_put_id(out, a, p->path);
        fprintf(out,
                "\n  process      pid %llu: ", (unsigned long long)p->pid);
        put_argv(out, a, p, 100, 0);
        fputc('\n', out);
    } else {
        fprintf(out, "memhound report: %zu captures merged\n", a->nprocs);
        if (a->opts.runs > 1)
            fprintf(out, "  mixed        captures of %zu different runs "
                         "(--mixed)\n", a->opts.runs);
    }
    fprintf(out, "  mode         %s", mode_text(m->mode));
    if (m->mode == MH_RECORD_SAMPLE || m->mode == -1) {
        mh_text_bytes(b1, sizeof(b1), (double)m->interval);
        fprintf(out, ", a sample per %s on average: bytes are estimates", b1);
    }
    fputc('\n', out);

    mh_text_duration(b1, sizeof(b1), (double)m->span_ns / 1e9);
    fprintf(out, "  duration     %s%s; warm-up ", b1,
            a->nprocs > 1 ? " (first start to last end)" : "");
    if (a->opts.warmup_fraction && a->nprocs > 1) {
        fprintf(out, "%.0f%% of each process's run", a->opts.warmup * 100);
    } else if (a->nprocs == 1) {
        mh_text_duration(b2, sizeof(b2), (double)a->procs[0].warmup_ns / 1e9);
        fprintf(out, "%s", b2);
        if (a->opts.warmup_fraction)
            fprintf(out, " (%.0f%%)", a->opts.warmup * 100);
    } else {
        mh_text_duration(b2, sizeof(b2), a->opts.warmup);
        fprintf(out, "%s of each process", b2);
    }
    fputc('\n', out);

    mh_text_bytes(b1, sizeof(b1), (double)m->peak_rss);
    fprintf(out, "  peak RSS     %s%s\n", b1,
            a->nprocs > 1 ? " (processes together)" : "");
    mh_text_bytes(b1, sizeof(b1), m->live_bytes);
    mh_text_bytes(b2, sizeof(b2), m->tracked_peak);
    char b3[32];
    mh_text_bytes(b3, sizeof(b3), m->startup_bytes);
    fprintf(out,
            "  tracked      %s live at the end (%s since start-up), "
            "peak %s%s\n",
            b1, b3, b2,
            m->peak_summed ? " (the processes' own peaks summed: they "
                             "did not all run at once)"
                           : "");
    mh_text_bytes(b1, sizeof(b1), m->growth_bytes);
    fprintf(out, "  growth       %s after the warm-up, still live\n", b1);
    fprintf(out, "  samples      %llu allocations, %llu frees, %llu dropped\n",
            (unsigned long long)m->samples, (unsigned long long)m->frees,
            (unsigned long long)m->dropped);

    size_t headerless = 0;
    for (size_t i = 0; i < a->nprocs; i++)
        headerless += !a->procs[i].have_header;
    for (size_t i = 0; i < a->nprocs; i++) {
        const struct mh_process *p = &a->procs[i];
        end_note(out, a, p);
        if (!p->have_header) {
            if (headerless > EMPTY_PIDS)
                continue;
            fputs("  note: '", out);
            mh_text_put_id(out, a, p->path);
            fputs("' holds no data: the process ended or was killed "
                  "before its first flush\n",
                  out);
        } else if (p->warmup_past_end && !mh_process_empty(p)) {
            fputs("  note: '", out);
            mh_text_put_id(out, a, p->path);
            fputs("' ended before its warm-up did: no growth measured "
                  "(try a smaller --warmup)\n",
                  out);
        }
    }
    if (headerless > EMPTY_PIDS)
        fprintf(out,
                "  note: %zu captures hold no data: their processes "
                "ended or were killed before their first flush\n",
                headerless);
    int disk_full = 0;
    for (size_t i = 0; i < a->nprocs; i++)
        disk_full |= a->procs[i].disk_full;
    if (m->dropped)
        fprintf(out,
                "  note: the agent dropped %llu samples (%s): figures are "
                "low\n",
                (unsigned long long)m->dropped,
                disk_full ? "the disk was full, or a buffer"
                          : "a buffer was full");
}

static void
processes_text(FILE *out, const struct mh_analysis *a)
{
    if (a->nprocs < 2)
        return;
    fputs("\nprocesses\n       pid    parent  duration   peak RSS   live "
          "end     growth  samples  command\n",
          out);
    size_t empty = 0;
    for (size_t i = 0; i < a->nprocs; i++) {
        const struct mh_process *p = &a->procs[i];
        if (mh_process_empty(p)) {
            empty++;
            continue;
        }
        char d[32], r[32], l[32], g[32], s[32], par[24];
        mh_text_duration(d, sizeof(d), (double)p->duration_ns / 1e9);
        mh_text_bytes(r, sizeof(r), (double)p->peak_rss);
        mh_text_bytes(l, sizeof(l), p->live_bytes);
        mh_text_bytes(g, sizeof(g), p->growth_bytes);
        mh_text_count(s, sizeof(s), (double)p->samples);
        if (p->fork_parent)
            snprintf(par, sizeof(par), "%llu",
                     (unsigned long long)p->fork_parent);
        else
            snprintf(par, sizeof(par), "-");
        fprintf(out, "  %8llu  %8s  %8s  %9s  %9s  %9s  %7s  ",
                (unsigned long long)p->pid, par, d, r, l, g, s);
        put_argv(out, a, p, 40, 1);
        if (p->truncated)
            fputs(" (truncated)", out);
        fputc('\n', out);
    }
    if (!empty)
        return;
    /* Short-lived helpers (a test runner's, a build's) would each be a
     * row of zeros: one line names how many, and the first few. */
    fprintf(out,
            "  %s%zu %sprocess%s recorded next to nothing (fewer "
            "than %d samples, nothing\n    live at the end: short-lived "
            "helpers?): pid%s ",
            empty < a->nprocs ? "" : "all ", empty,
            empty < a->nprocs ? "more " : "", empty == 1 ? "" : "es",
            MH_EMPTY_SAMPLES, empty == 1 ? "" : "s");
    size_t shown = 0;
    for (size_t i = 0; i < a->nprocs && shown < EMPTY_PIDS; i++) {
        if (!mh_process_empty(&a->procs[i]))
            continue;
        fprintf(out, "%s%llu", shown ? ", " : "",
                (unsigned long long)a->procs[i].pid);
        shown++;
    }
    fputs(shown < empty ? ", ...\n" : "\n", out);
}

static int
same_frame(const struct mh_site *s, const struct mh_site_frame *f)
{
    return s->file == f->file && s->function == f->function && s->has_line &&
           s->line == f->line;
}

/* The site's name, then its user frame and the line that keeps what it
 * allocated ("kept via", weighted for `list`: enum mh_via_list) on
 * continuation lines. */
static void
site_text(FILE *out, const struct mh_analysis *a, const struct mh_site *s,
          int list, int indent)
{
    if (s->kind == MH_SITE_CODE && mh_analysis_site_by(a) == MH_BY_STACK) {
        size_t n = mh_analysis_nframes(a, s);
        for (size_t i = 0; i < n && i < STACK_LINES; i++) {
            struct mh_site_frame f;
            mh_analysis_frame(a, s, i, &f);
            if (i)
                fprintf(out, "%*s< ", indent, "");
            mh_text_put_frame(out, a, &f);
            fputc('\n', out);
        }
        if (n > STACK_LINES)
            fprintf(out, "%*s< ... %zu more frames\n", indent, "",
                    n - STACK_LINES);
    } else {
        mh_text_put_id(out, a, s->key);
        fputc('\n', out);
    }
    if (s->has_user && !same_frame(s, &s->user) && a->opts.by != MH_BY_STACK) {
        fprintf(out, "%*s%s ", indent, "",
                s->user_direct ? "at" : "called from");
        mh_text_put_frame(out, a, &s->user);
        fputc('\n', out);
    }
    const struct mh_site_via *v = &s->via[list];
    if (v->has && a->opts.by != MH_BY_STACK) {
        fprintf(out, "%*skept via ", indent, "");
        mh_text_put_frame(out, a, &v->f);
        if (v->share < 0.995)
            fprintf(out, " (%.0f%% of it)", v->share * 100);
        fputc('\n', out);
    }
}

static void
growth_text(FILE *out, const struct mh_analysis *a)
{
    const struct mh_summary *m = &a->summary;
    char floor[32];
    mh_text_bytes(floor, sizeof(floor), m->growth_floor);
    fprintf(out,
            "\ngrowth after the warm-up, still live at the end "
            "(by %s)\n",
            mh_analysis_by_name(a->opts.by));
    if (!m->growth_found) {
        fprintf(out,
                "  no growth: no %s grew by more than %s (the noise "
                "floor) after the warm-up\n",
                mh_analysis_by_name(a->opts.by), floor);
        return;
    }
    fputs("      growth     count   share          rate  site\n", out);
    size_t shown = 0, weak = 0;
    for (size_t i = 0; i < a->ngrowth; i++) {
        const struct mh_site *s = &a->sites[a->growth[i]];
        if (s->growth_bytes < m->growth_floor)
            continue;
        char g[32], c[32], r[40];
        mh_text_bytes(g, sizeof(g), s->growth_bytes);
        mh_text_count(c, sizeof(c), s->growth_count);
        mh_text_bytes(r, sizeof(r) - 4, s->bytes_per_second);
        strncat(r, "/s", sizeof(r) - strlen(r) - 1);
        fprintf(out, "%c %10s  %8s  %5.1f%%  %12s  ",
                s->significant ? ' ' : MARK_WEAK, g, c, s->share * 100, r);
        site_text(out, a, s, MH_VIA_GROWTH, 46);
        shown++;
        weak += !s->significant;
    }
    if (shown < a->ngrowth)
        fprintf(out, "  (%zu more grew by less than %s)\n", a->ngrowth - shown,
                floor);
    if (weak)
        fprintf(out,
                "  %c not significant: the growth's 95%% interval "
                "under sampling reaches zero;\n    it may be noise\n",
                MARK_WEAK);
}

/* The live sites in `list` (n of them): after the warm-up (startup 0)
 * or since start-up (1). */
static void
live_list_text(FILE *out, const struct mh_analysis *a, const uint32_t *list,
               size_t n, int startup)
{
    fputs("        live     count  site\n", out);
    for (size_t i = 0; i < n; i++) {
        const struct mh_site *s = &a->sites[list[i]];
        double b =
            startup ? s->startup_bytes : s->live_bytes - s->startup_bytes;
        double k =
            startup ? s->startup_count : s->live_count - s->startup_count;
        char l[32], c[32];
        mh_text_bytes(l, sizeof(l), b);
        mh_text_count(c, sizeof(c), k);
        fprintf(out, "  %10s  %8s  ", l, c);
        site_text(out, a, s, MH_VIA_LIVE, 24);
    }
}

/* What is live at the end, in two lists: allocated after the warm-up
 * (what the program kept while it ran), and since start-up (imports,
 * module-level caches: live from the start, and no leak for being so). */
static void
live_text(FILE *out, const struct mh_analysis *a)
{
    const struct mh_summary *m = &a->summary;
    char t[32];
    mh_text_bytes(t, sizeof(t), m->live_bytes - m->startup_bytes);
    fprintf(out,
            "\nlive at the end, allocated after the warm-up (by %s): "
            "%s\n",
            mh_analysis_by_name(a->opts.by), t);
    if (!a->nlive_recent)
        fputs("  nothing allocated after the warm-up is live\n", out);
    else
        live_list_text(out, a, a->live_recent, a->nlive_recent, 0);
    if (!a->nlive_startup)
        return;
    mh_text_bytes(t, sizeof(t), m->startup_bytes);
    fprintf(out,
            "\nlive since start-up, allocated before the warm-up ended "
            "(by %s): %s\n",
            mh_analysis_by_name(a->opts.by), t);
    live_list_text(out, a, a->live_startup, a->nlive_startup, 1);
}

/* RSS and tracked live bytes, one column per time slice (the maxima in
 * it, or the last value before it). */
static void
chart_text(FILE *out, const struct mh_analysis *a)
{
    fputs("\ntimeline: RSS (.) and tracked live bytes (#)\n", out);
    if (!a->ntimeline) {
        fputs("  no timeline records\n", out);
        return;
    }
    double span = (double)a->timeline[a->ntimeline - 1].t_ns;
    double rss[CHART_W], live[CHART_W];
    size_t j = 0;
    double last_rss = 0, last_live = 0, ymax = 0;
    for (int c = 0; c < CHART_W; c++) {
        double hi = span * (c + 1) / CHART_W;
        int any = 0;
        double r = 0, l = 0;
        while (j < a->ntimeline &&
               ((double)a->timeline[j].t_ns <= hi || c == CHART_W - 1)) {
            if ((double)a->timeline[j].rss > r)
                r = (double)a->timeline[j].rss;
            if (a->timeline[j].live > l)
                l = a->timeline[j].live;
            last_rss = (double)a->timeline[j].rss;
            last_live = a->timeline[j].live;
            any = 1;
            j++;
        }
        rss[c] = any ? r : last_rss;
        live[c] = any ? l : last_live;
        if (rss[c] > ymax)
            ymax = rss[c];
        if (live[c] > ymax)
            ymax = live[c];
    }
    if (ymax <= 0)
        ymax = 1;
    char lab[32];
    for (int row = CHART_H; row >= 1; row--) {
        if (row == CHART_H || row == CHART_H / 2) {
            mh_text_bytes(lab, sizeof(lab), ymax * row / CHART_H);
            fprintf(out, "  %10s |", lab);
        } else {
            fprintf(out, "  %10s |", "");
        }
        char line[CHART_W + 1];
        int end = 0;
        for (int c = 0; c < CHART_W; c++) {
            long hl = lround(live[c] / ymax * CHART_H);
            long hr = lround(rss[c] / ymax * CHART_H);
            if (rss[c] > 0 && hr < 1)
                hr = 1;
            char ch = hl >= row ? '#' : hr == row ? '.' : ' ';
            line[c] = ch;
            if (ch != ' ')
                end = c + 1;
        }
        line[end] = '\0';
        fprintf(out, "%s\n", line);
    }
    fprintf(out, "  %10s +", "0 B");
    for (int c = 0; c < CHART_W; c++)
        fputc('-', out);
    fputc('\n', out);
    /* 0s at the left, the middle and the end below their columns. */
    char axis[CHART_W + 32], t[32];
    memset(axis, ' ', sizeof(axis));
    size_t len = 0;
    for (int k = 0; k < 3; k++) {
        mh_text_duration(t, sizeof(t), span * k / 2e9);
        size_t n = strlen(t);
        size_t at = k == 0 ? 0 : k == 1 ? CHART_W / 2 - n / 2 : CHART_W - n;
        if (at < len + 1 && k)
            at = len + 1;
        if (at + n >= sizeof(axis))
            break;
        memcpy(axis + at, t, n);
        len = at + n;
    }
    axis[len] = '\0';
    fprintf(out, "  %10s  %s\n", "", axis);
}

int
mh_text_render(FILE *out, const struct mh_analysis *a)
{
    summary_text(out, a);
    processes_text(out, a);
    if (a->opts.by == MH_BY_ENDPOINT) {
        mh_text_endpoints(out, a, 1);
    } else {
        growth_text(out, a);
        live_text(out, a);
        mh_text_endpoints(out, a, 0);
    }
    mh_text_findings(out, a);
    chart_text(out, a);
    return ferror(out) ? MH_EIO : MH_OK;
}
