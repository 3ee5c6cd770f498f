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

void
mh_verdict_text(FILE *out, const struct mh_verdict *v, long pid)
{
    char b1[32], b2[32], spid[32];
    if (pid > 0)
        snprintf(spid, sizeof(spid), "%ld", pid);
    else
        snprintf(spid, sizeof(spid), "PID");
    fprintf(out, "Verdict: %s\n  %s\n\n", mh_verdict_name(v->kind), v->why);
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
    if (v->enough_data) {
        rate(b1, sizeof(b1), v->rss_slope);
        rate(b2, sizeof(b2), v->live_slope);
        fprintf(out,
                "  trend over %.0f s: RSS %s (R² %.2f), live %s (R² %.2f)\n",
                v->window, b1, v->rss_r2, b2, v->live_r2);
    } else {
        fprintf(out, "  trend: not enough timeline (%.1f s)\n", v->span);
    }
    if (!v->remedies) {
        fputs("\n", out);
        return;
    }
    fputs("\nRemedies:\n", out);
    if (v->remedies & MH_REMEDY_FIND_LEAK)
        fputs("  - find what grows: memhound report CAPTURE (growth by "
              "site), memhound snapshot + memhound heap diff\n",
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
                ceil((double)v->rss_limit / (1024.0 * 1024)));
        if (v->lifetime_at_limit > 0) {
            mh_text_duration(b2, sizeof(b2), v->lifetime_at_limit);
            fprintf(out, " (%s: a worker reaches it after about %s at the "
                         "measured growth)\n",
                    b1, b2);
        } else {
            fprintf(out, " (%s: 1.25 x the peak RSS)\n", b1);
        }
    }
    fputs("\n", out);
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

void
mh_verdict_json(FILE *out, const struct mh_verdict *v)
{
    const struct mh_cap_timeline *a = &v->alloc;
    fprintf(out, "{\"verdict\": \"%s\", \"why\": ", mh_verdict_name(v->kind));
    mh_json_put_str(out, v->why, strlen(v->why));
    fputs(", ", out);
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
    num(out, "floor", floor(v->floor), 0);
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
        {MH_REMEDY_RECYCLE, "recycle"},
    };
    int first = 1;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (v->remedies & names[i].bit) {
            fprintf(out, "%s\"%s\"", first ? "" : ", ", names[i].name);
            first = 0;
        }
    fputs("], ", out);
    if (v->rss_limit)
        num(out, "rss_limit", (double)v->rss_limit, 0);
    else
        fputs("\"rss_limit\": null, ", out);
    num(out, "lifetime_at_limit", v->lifetime_at_limit, 1);
    fputs("}", out);
}
