/* Rendering the verdict (verdict.h). */
#include <math.h>
#include <string.h>

#include "json.h"
#include "text.h"
#include "verdict.h"

static void
row(FILE *out, const char *name, double bytes, const char *note)
{
    char b[32];
    mh_text_bytes(b, sizeof(b), bytes);
    fprintf(out, "  %-28s %12s%s%s\n", name, b, note ? "  " : "",
            note ? note : "");
}

static void
rate(char *buf, size_t n, double bytes_per_s)
{
    snprintf(buf, n, "%+.1f MiB/h", bytes_per_s * 3600 / (1024.0 * 1024));
}

/* The numbers and remedies of one process's verdict. */
static void
body(FILE *out, const struct mh_verdict *v, long pid)
{
    char b1[32], b2[32], spid[32];
    if (pid > 0)
        snprintf(spid, sizeof(spid), "%ld", pid);
    else
        snprintf(spid, sizeof(spid), "PID");
    row(out, "RSS", (double)v->rss, NULL);
    if (v->uss)
        row(out, "USS", (double)v->uss, NULL);
    row(out, "tracked live bytes", v->live, NULL);
    const struct mh_cap_timeline *a = &v->alloc;
    if (a->alloc & MH_TL_PYMALLOC) {
        row(out, "pymalloc arenas", (double)a->arena_bytes, NULL);
        row(out, "  free inside them", (double)a->arena_free, NULL);
    } else {
        fprintf(out, "  %-28s %12s\n", "pymalloc arenas", "unknown");
    }
    if (a->alloc & MH_TL_MALLOC) {
        row(out, "malloc arena (sbrk+heaps)", (double)a->malloc_arena, NULL);
        row(out, "malloc in use (uordblks)", (double)a->malloc_inuse, NULL);
        row(out, "malloc free (fordblks)", (double)a->malloc_free, NULL);
        row(out, "malloc mmapped (hblkhd)", (double)a->malloc_mmap, NULL);
    } else {
        fprintf(out, "  %-28s %12s\n", "mallinfo2", "unknown");
    }
    if (v->leak || v->native || v->retention) {
        fputs("  parts:\n", out);
        if (v->leak) {
            mh_text_bytes(b1, sizeof(b1), v->live_growth);
            if (v->per_request > 0) {
                mh_text_bytes(b2, sizeof(b2), v->per_request);
                fprintf(out, "    leak: live floor +%s (%s per request)\n",
                        b1, b2);
            } else {
                rate(b2, sizeof(b2), v->live_slope);
                fprintf(out, "    leak: live floor +%s (%s)\n", b1, b2);
            }
        }
        if (v->native) {
            mh_text_bytes(b1, sizeof(b1), v->native_growth);
            fprintf(out, "    native growth outside the tracked domains: "
                         "+%s\n",
                    b1);
        }
        if (v->retention) {
            mh_text_bytes(b1, sizeof(b1), v->held_glibc);
            mh_text_bytes(b2, sizeof(b2), v->held_pymalloc);
            if (v->held_known)
                fprintf(out, "    retention: free memory held by glibc %s, "
                             "by pymalloc %s\n",
                        b1, b2);
            else
                fprintf(out, "    retention: RSS growth the live bytes do "
                             "not explain\n");
        }
    }
    if (v->enough_data) {
        const struct mh_verdict_trend *l = &v->live_trend;
        rate(b1, sizeof(b1), v->rss_slope);
        rate(b2, sizeof(b2), v->live_slope);
        fprintf(out,
                "  trend of the floor over %.0f s%s: RSS %s, live %s "
                "(R² %.2f, %zu slices)\n",
                v->window, l->by_requests ? " (by requests)" : "", b1, b2,
                l->r2, l->buckets);
    } else {
        fprintf(out, "  trend: not enough timeline (%.1f s)\n", v->span);
    }
    if (!v->remedies)
        return;
    fputs("  remedies:\n", out);
    if (v->remedies & MH_REMEDY_FIND_LEAK)
        fputs("  - fix the growth site: memhound report CAPTURE (growth by "
              "site), memhound snapshot + memhound heap diff\n",
              out);
    if (v->remedies & MH_REMEDY_NATIVE)
        fputs("  - native memory grows outside Python's allocators: look "
              "at the C libraries and extensions the process calls "
              "(valgrind --leak-check=full, heaptrack)\n",
              out);
    if (v->remedies & MH_REMEDY_TRIM)
        fprintf(out, "  - give glibc's free pages back now: memhound trim %s "
                     "(malloc_trim(0))\n",
                spid);
    if (v->remedies & MH_REMEDY_ARENA_MAX)
        fputs("  - many threads: MALLOC_ARENA_MAX=2 in the service's "
              "environment (fewer glibc arenas to fragment)\n",
              out);
    if (v->remedies & MH_REMEDY_JEMALLOC)
        fputs("  - jemalloc returns freed memory on its own: "
              "LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 "
              "(Debian: libjemalloc2)\n",
              out);
    if (v->remedies & MH_REMEDY_PYMALLOC)
        fputs("  - pymalloc keeps an arena while any object in it lives: "
              "malloc_trim cannot return it; avoid keeping a few "
              "long-lived objects among many short-lived ones, or "
              "recycle\n",
              out);
    if (v->remedies & MH_REMEDY_RECYCLE) {
        mh_text_bytes(b1, sizeof(b1), (double)v->rss_limit);
        fprintf(out, "  - recycle workers: memhound guard --rss-limit %.0fM",
                floor((double)v->rss_limit / (1024.0 * 1024)));
        if (v->lifetime_at_limit > 0) {
            mh_text_duration(b2, sizeof(b2), v->lifetime_at_limit);
            fprintf(out, " (%s: a fresh worker reaches it after about %s "
                         "at the measured growth",
                    b1, b2);
        } else {
            fprintf(out, " (%s: 1.25 x the peak RSS", b1);
        }
        mh_text_bytes(b2, sizeof(b2), (double)v->limit_cap);
        fprintf(out, "; at most %s, %s)\n", b2, v->cap_by);
    }
}

void
mh_verdict_text(FILE *out, const struct mh_verdict *v, long pid)
{
    fprintf(out, "Verdict: %s\n  %s\n\n", mh_verdict_name(v->kind), v->why);
    body(out, v, pid);
    fputs("\n", out);
}

void
mh_verdicts_text(FILE *out, const struct mh_verdicts *vs, long pid)
{
    fprintf(out, "Verdict: %s\n  %s\n", mh_verdict_name(vs->kind),
            vs->summary);
    if (vs->sites[0])
        fprintf(out, "  %s\n", vs->sites);
    fputs("\n", out);
    if (vs->n == 1) {
        body(out, &vs->procs[0].v, pid);
        fputs("\n", out);
        return;
    }
    for (size_t i = 0; i < vs->n; i++) {
        const struct mh_verdict_proc *p = &vs->procs[i];
        fprintf(out, "Process %llu (%s): %s\n  %s\n",
                (unsigned long long)p->pid, p->role,
                mh_verdict_name(p->v.kind), p->v.why);
        body(out, &p->v, (long)p->pid);
        fputs("\n", out);
    }
}

static void
num(FILE *out, const char *k, double x, int last)
{
    if (!isfinite(x))
        x = 0;
    if (x == floor(x) && fabs(x) < 1e18)
        fprintf(out, "\"%s\": %.0f%s", k, x, last ? "" : ", ");
    else
        fprintf(out, "\"%s\": %.6g%s", k, x, last ? "" : ", ");
}

static void
trend_json(FILE *out, const char *k, const struct mh_verdict_trend *t)
{
    fprintf(out, "\"%s\": {\"by\": \"%s\", ", k,
            t->by_requests ? "requests" : "seconds");
    num(out, "slices", (double)t->buckets, 0);
    num(out, "x_span", t->x_span, 0);
    num(out, "slope", t->slope, 0);
    num(out, "slope_lo", t->lo, 0);
    num(out, "slope_hi", t->hi, 0);
    num(out, "r2", t->r2, 0);
    num(out, "growth", t->growth, 0);
    num(out, "noise", t->noise, 0);
    num(out, "min_growth", t->min_growth, 0);
    num(out, "recent_slope_hi", t->recent_hi, 0);
    fprintf(out, "\"significant\": %s, \"levelled\": %s}, ",
            t->significant ? "true" : "false",
            t->levelled ? "true" : "false");
}

/* The fields of one verdict, without braces; `kind` and `why` may
 * stand for several processes. */
static void
fields(FILE *out, const struct mh_verdict *v, enum mh_verdict_kind kind,
       const char *whytext)
{
    const struct mh_cap_timeline *a = &v->alloc;
    fprintf(out, "\"verdict\": \"%s\", \"why\": ", mh_verdict_name(kind));
    mh_json_put_str(out, whytext, strlen(whytext));
    fputs(", ", out);
    fprintf(out, "\"leak\": %s, \"native\": %s, \"retention\": %s, ",
            v->leak ? "true" : "false", v->native ? "true" : "false",
            v->retention ? "true" : "false");
    if (kind == MH_VERDICT_UNDECIDED)
        num(out, "more_seconds", v->more_seconds, 0);
    if (v->per_request > 0)
        num(out, "per_request", v->per_request, 0);
    num(out, "held_glibc", v->held_glibc, 0);
    num(out, "held_pymalloc", v->held_pymalloc, 0);
    num(out, "native_growth", floor(v->native_growth), 0);
    if (v->enough_data) {
        trend_json(out, "live_trend", &v->live_trend);
        trend_json(out, "rss_trend", &v->rss_trend);
    }
    fprintf(out, "\"enough_data\": %s, ", v->enough_data ? "true" : "false");
    num(out, "rss", (double)v->rss, 0);
    if (v->uss)
        num(out, "uss", (double)v->uss, 0);
    else
        fputs("\"uss\": null, ", out);
    num(out, "rss_peak", (double)v->rss_peak, 0);
    num(out, "live", floor(v->live), 0);
    if (a->alloc & MH_TL_PYMALLOC) {
        num(out, "arena_bytes", (double)a->arena_bytes, 0);
        num(out, "arena_free", (double)a->arena_free, 0);
    } else {
        fputs("\"arena_bytes\": null, \"arena_free\": null, ", out);
    }
    if (a->alloc & MH_TL_MALLOC) {
        fputs("\"mallinfo\": {", out);
        num(out, "arena", (double)a->malloc_arena, 0);
        num(out, "uordblks", (double)a->malloc_inuse, 0);
        num(out, "fordblks", (double)a->malloc_free, 0);
        num(out, "hblkhd", (double)a->malloc_mmap, 1);
        fputs("}, ", out);
    } else {
        fputs("\"mallinfo\": null, ", out);
    }
    num(out, "held", floor(v->held), 0);
    fprintf(out, "\"held_from\": \"%s\", ",
            v->held_known ? "allocators" : "rss-minus-live");
    num(out, "span", v->span, 0);
    num(out, "window", v->window, 0);
    num(out, "rss_slope", v->rss_slope, 0);
    num(out, "rss_r2", v->rss_r2, 0);
    num(out, "rss_growth", floor(v->rss_growth), 0);
    num(out, "live_slope", v->live_slope, 0);
    num(out, "live_r2", v->live_r2, 0);
    num(out, "live_growth", floor(v->live_growth), 0);
    num(out, "floor", floor(v->live_trend.min_growth), 0);
    if (v->threads)
        num(out, "threads", (double)v->threads, 0);
    fputs("\"remedies\": [", out);
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {
        {MH_REMEDY_FIND_LEAK, "find-leak"}, {MH_REMEDY_TRIM, "malloc-trim"},
        {MH_REMEDY_ARENA_MAX, "malloc-arena-max"},
        {MH_REMEDY_JEMALLOC, "jemalloc"}, {MH_REMEDY_PYMALLOC, "pymalloc"},
        {MH_REMEDY_NATIVE, "native"}, {MH_REMEDY_RECYCLE, "recycle"},
    };
    int first = 1;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (v->remedies & names[i].bit) {
            fprintf(out, "%s\"%s\"", first ? "" : ", ", names[i].name);
            first = 0;
        }
    fputs("], ", out);
    if (v->rss_limit) {
        num(out, "rss_limit", (double)v->rss_limit, 0);
        num(out, "limit_cap", (double)v->limit_cap, 0);
        fputs("\"cap_by\": ", out);
        mh_json_put_str(out, v->cap_by, strlen(v->cap_by));
        fputs(", ", out);
    } else {
        fputs("\"rss_limit\": null, ", out);
    }
    num(out, "lifetime_at_limit", v->lifetime_at_limit, 1);
}

void
mh_verdict_json(FILE *out, const struct mh_verdict *v)
{
    fputs("{", out);
    fields(out, v, v->kind, v->why);
    fputs("}", out);
}

void
mh_verdicts_json(FILE *out, const struct mh_verdicts *vs)
{
    const struct mh_verdict_proc *lead = &vs->procs[vs->lead];
    fputs("{", out);
    fields(out, &lead->v, vs->kind, vs->summary);
    fprintf(out, ", \"pid\": %llu, \"summary\": ",
            (unsigned long long)lead->pid);
    mh_json_put_str(out, vs->summary, strlen(vs->summary));
    fputs(", \"sites\": ", out);
    mh_json_put_str(out, vs->sites, strlen(vs->sites));
    fputs(", \"processes\": [", out);
    for (size_t i = 0; i < vs->n; i++) {
        const struct mh_verdict_proc *p = &vs->procs[i];
        fprintf(out, "%s{\"pid\": %llu, \"role\": \"%s\", ", i ? ", " : "",
                (unsigned long long)p->pid, p->role);
        fields(out, &p->v, p->v.kind, p->v.why);
        fputs("}", out);
    }
    fputs("]}", out);
}
