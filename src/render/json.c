/* The report as JSON (docs/report-json.md). Numbers are printed in the C
 * locale the CLI runs in; bytes as integers, never NaN or infinity. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "json.h"

static void
put_num(FILE *out, double x, int decimals)
{
    struct mh_json_sink k = mh_json_sink_file(out);
    mh_json_num(&k, isfinite(x) ? x : 0, decimals);
}

static void
put_pstr(FILE *out, const struct mh_analysis *a, uint32_t id)
{
    mh_json_put_str(out, mh_analysis_str(a, id), mh_analysis_strlen(a, id));
}

static void
key(FILE *out, const char *k)
{
    fprintf(out, "\"%s\": ", k);
}

/* ", " and the key: every member of an object but the first. */
static void
next_key(FILE *out, const char *k)
{
    fputs(", ", out);
    key(out, k);
}

static void
null_or_pstr(FILE *out, const struct mh_analysis *a, int have, uint32_t id)
{
    if (have)
        put_pstr(out, a, id);
    else
        fputs("null", out);
}

static void
null_or_u32(FILE *out, int have, uint32_t v)
{
    if (have)
        fprintf(out, "%u", v);
    else
        fputs("null", out);
}

/* `sep` and "<prefix>file", "<prefix>line", "<prefix>function", all
 * null without `have`. */
static void
loc_members(FILE *out, const struct mh_analysis *a, const char *sep,
            const char *prefix, int have, uint32_t file, uint32_t line,
            uint32_t function)
{
    fprintf(out, "%s\"%sfile\": ", sep, prefix);
    null_or_pstr(out, a, have, file);
    fprintf(out, ", \"%sline\": ", prefix);
    null_or_u32(out, have, line);
    fprintf(out, ", \"%sfunction\": ", prefix);
    null_or_pstr(out, a, have, function);
}

/* Members "name": value, each followed by `sep`: integers, rounded. */
static void
u64_members(FILE *out, const char *sep, const char *const *names,
            const uint64_t *vals, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        key(out, names[i]);
        fprintf(out, "%llu%s", (unsigned long long)vals[i], sep);
    }
}

static void
int_members(FILE *out, const char *sep, const char *const *names,
            const double *vals, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        key(out, names[i]);
        mh_json_put_int(out, vals[i]);
        fputs(sep, out);
    }
}

/* peak_rss, tracked_peak_bytes, live_bytes, growth_bytes: a summary's
 * and a process's memory, each member followed by `sep`. */
static void
memory_members(FILE *out, const char *sep, uint64_t peak_rss,
               double tracked_peak, double live, double growth)
{
    static const char *const names[] = {"tracked_peak_bytes", "live_bytes",
                                        "growth_bytes"};
    const double vals[] = {tracked_peak, live, growth};
    key(out, "peak_rss");
    fprintf(out, "%llu%s", (unsigned long long)peak_rss, sep);
    int_members(out, sep, names, vals, 3);
}

/* samples, frees, dropped, each followed by `sep`. */
static void
event_members(FILE *out, const char *sep, uint64_t samples, uint64_t frees,
              uint64_t dropped)
{
    static const char *const names[] = {"samples", "frees", "dropped"};
    const uint64_t vals[] = {samples, frees, dropped};
    u64_members(out, sep, names, vals, 3);
}

static void
site_json(FILE *out, const struct mh_analysis *a, const struct mh_site *s,
          int list)
{
    int code = s->kind == MH_SITE_CODE;
    enum mh_by by = mh_analysis_site_by(a);
    static const char *const names[] = {"growth_bytes", "count", "live_bytes",
                                        "live_count"};
    const double vals[] = {s->growth_bytes, s->growth_count, s->live_bytes,
                           s->live_count};
    fputs("{", out);
    key(out, "key");
    put_pstr(out, a, s->key);
    next_key(out, "file");
    null_or_pstr(out, a, code && by != MH_BY_MODULE, s->file);
    next_key(out, "line");
    null_or_u32(out, code && s->has_line, s->line);
    next_key(out, "function");
    null_or_pstr(out, a,
                 code && (by == MH_BY_LINE || by == MH_BY_FUNCTION ||
                          by == MH_BY_STACK),
                 s->function);
    next_key(out, "module");
    null_or_pstr(out, a, code, s->module);
    fputs(", ", out);
    int_members(out, ", ", names, vals, 4);
    key(out, "startup_bytes");
    mh_json_put_int(out, s->startup_bytes);
    next_key(out, "startup_count");
    mh_json_put_int(out, s->startup_count);
    next_key(out, "bytes_per_second");
    put_num(out, s->bytes_per_second, 1);
    next_key(out, "share");
    put_num(out, s->share, 6);
    next_key(out, "growth_interval");
    fputs("[", out);
    mh_json_put_int(out, s->growth_lo);
    fputs(", ", out);
    mh_json_put_int(out, s->growth_hi);
    fputs("]", out);
    next_key(out, "significant");
    fputs(s->significant ? "true" : "false", out);
    loc_members(out, a, ", ", "user_", s->has_user, s->user.file, s->user.line,
                s->user.function);
    /* The line that keeps it (docs/report-json.md, "via"). */
    const struct mh_site_via *v = &s->via[list];
    next_key(out, "via");
    if (v->has && by != MH_BY_STACK) {
        fputs("{", out);
        loc_members(out, a, "", "", 1, v->f.file, v->f.line, v->f.function);
        fputs(", ", out);
        key(out, "share");
        put_num(out, v->share, 3);
        fputs("}", out);
    } else {
        fputs("null", out);
    }
    if (by == MH_BY_STACK) {
        next_key(out, "frames");
        fputs("[", out);
        size_t n = mh_analysis_nframes(a, s);
        for (size_t i = 0; i < n; i++) {
            struct mh_site_frame f;
            mh_analysis_frame(a, s, i, &f);
            fputs(i ? ", {" : "{", out);
            loc_members(out, a, "", "", 1, f.file, f.line, f.function);
            fputs("}", out);
        }
        fputs("]", out);
    }
    fputs("}", out);
}

/* Item i of one of the report's lists. */
typedef void (*item_json_fn)(FILE *out, const struct mh_analysis *a, size_t i);

/* A top-level list of n items, one a line: item(i) for i < n, or, with
 * `index`, item(index[i]). */
static void
list_json(FILE *out, const struct mh_analysis *a, size_t n, item_json_fn item,
          const uint32_t *index)
{
    fputs("[", out);
    for (size_t i = 0; i < n; i++) {
        fputs(i ? ",\n    " : "\n    ", out);
        item(out, a, index ? index[i] : i);
    }
    fputs(n ? "\n  ]" : "]", out);
}

/* Site i (of a->sites): the growth and live lists hold site indices;
 * each list names its "via" by its own bytes. */
static void
growth_item_json(FILE *out, const struct mh_analysis *a, size_t i)
{
    site_json(out, a, &a->sites[i], MH_VIA_GROWTH);
}

static void
live_item_json(FILE *out, const struct mh_analysis *a, size_t i)
{
    site_json(out, a, &a->sites[i], MH_VIA_LIVE);
}

static const char *
mode_name(int mode)
{
    return mode == MH_RECORD_SAMPLE  ? "sampling"
           : mode == MH_RECORD_TRACE ? "trace-all"
           : mode == -1            ? "mixed"
                                   : "unknown";
}

static void
summary_json(FILE *out, const struct mh_analysis *a)
{
    const struct mh_summary *m = &a->summary;
    fputs("{\n    ", out);
    key(out, "captures");
    fprintf(out, "%zu,\n    ", a->nprocs);
    key(out, "runs");
    fprintf(out, "%zu,\n    ", a->opts.runs > 1 ? a->opts.runs : 1);
    key(out, "by");
    fprintf(out, "\"%s\",\n    ", mh_analysis_by_name(a->opts.by));
    key(out, "mode");
    fprintf(out, "\"%s\",\n    ", mode_name(m->mode));
    key(out, "interval");
    fprintf(out, "%llu,\n    ", (unsigned long long)m->interval);
    key(out, "estimated");
    fprintf(out, "%s,\n    ",
            m->mode == MH_RECORD_SAMPLE || m->mode == -1 ? "true" : "false");
    key(out, "start");
    put_num(out, (double)m->start_ns / 1e9, 3);
    fputs(",\n    ", out);
    key(out, "duration");
    put_num(out, (double)m->span_ns / 1e9, 3);
    fputs(",\n    ", out);
    key(out, "warmup");
    put_num(out, a->opts.warmup, 3);
    fputs(",\n    ", out);
    key(out, "warmup_unit");
    fprintf(out, "\"%s\",\n    ",
            a->opts.warmup_fraction ? "fraction" : "seconds");
    memory_members(out, ",\n    ", m->peak_rss, m->tracked_peak, m->live_bytes,
                   m->growth_bytes);
    key(out, "startup_bytes");
    mh_json_put_int(out, m->startup_bytes);
    fputs(",\n    ", out);
    key(out, "tracked_peak_kind");
    fprintf(out, "\"%s\",\n    ",
            m->peak_summed ? "sum_of_process_peaks" : "peak_of_sum");
    key(out, "empty_processes");
    size_t empty = 0;
    for (size_t i = 0; i < a->nprocs; i++)
        empty += mh_process_empty(&a->procs[i]);
    fprintf(out, "%zu,\n    ", empty);
    key(out, "growth_floor");
    mh_json_put_int(out, m->growth_floor);
    fputs(",\n    ", out);
    key(out, "growth_found");
    fprintf(out, "%s,\n    ", m->growth_found ? "true" : "false");
    event_members(out, ",\n    ", m->samples, m->frees, m->dropped);
    key(out, "truncated");
    fprintf(out, "%s,\n    ", m->truncated ? "true" : "false");
    key(out, "warmup_past_end");
    fprintf(out, "%s,\n    ", m->warmup_past_end ? "true" : "false");
    key(out, "requests");
    fprintf(out, "%llu,\n    ", (unsigned long long)a->endpoints.requests);
    key(out, "sort");
    fprintf(out, "\"%s\",\n    ", mh_endpoints_sort_name(a->opts.sort));
    key(out, "findings_dropped");
    fprintf(out, "%llu\n  }", (unsigned long long)a->findings.dropped);
}

static void
process_json(FILE *out, const struct mh_analysis *a, size_t idx)
{
    const struct mh_process *p = &a->procs[idx];
    fputs("{", out);
    key(out, "file");
    put_pstr(out, a, p->path);
    next_key(out, "pid");
    fprintf(out, "%llu, ", (unsigned long long)p->pid);
    key(out, "ppid");
    fprintf(out, "%llu, ", (unsigned long long)p->ppid);
    key(out, "fork_parent");
    fprintf(out, "%llu, ", (unsigned long long)p->fork_parent);
    key(out, "run_id");
    if (p->run_id)
        fprintf(out, "\"%016llx\", ", (unsigned long long)p->run_id);
    else
        fputs("null, ", out);
    key(out, "argv");
    fputs("[", out);
    for (uint32_t i = 0; i < p->argc; i++) {
        if (i)
            fputs(", ", out);
        put_pstr(out, a, p->argv[i]);
    }
    fputs("], ", out);
    key(out, "python");
    put_pstr(out, a, p->python);
    next_key(out, "executable");
    put_pstr(out, a, p->executable);
    fputs(",\n     ", out);
    key(out, "start");
    put_num(out, (double)p->start_ns / 1e9, 3);
    next_key(out, "duration");
    put_num(out, (double)p->duration_ns / 1e9, 3);
    next_key(out, "warmup");
    put_num(out, (double)p->warmup_ns / 1e9, 3);
    next_key(out, "warmup_past_end");
    fputs(p->warmup_past_end ? "true, " : "false, ", out);
    key(out, "mode");
    fprintf(out, "\"%s\", ", mode_name(p->have_header ? (int)p->mode : -2));
    key(out, "interval");
    fprintf(out, "%llu,\n     ", (unsigned long long)p->interval);
    memory_members(out, ", ", p->peak_rss, p->tracked_peak, p->live_bytes,
                   p->growth_bytes);
    key(out, "startup_bytes");
    mh_json_put_int(out, p->startup_bytes);
    fputs(", ", out);
    event_members(out, ", ", p->samples, p->frees, p->dropped);
    key(out, "empty");
    fputs(mh_process_empty(p) ? "true, " : "false, ", out);
    key(out, "clean_end");
    fputs(p->clean_end ? "true, " : "false, ", out);
    key(out, "truncated");
    fputs(p->truncated ? "true, " : "false, ", out);
    key(out, "truncated_at");
    if (p->truncated)
        fprintf(out, "%llu", (unsigned long long)p->truncated_at);
    else
        fputs("null", out);
    fputs(",\n     ", out);
    key(out, "end");
    fprintf(out, "\"%s\", ", mh_end_kind_name(p->end_kind));
    key(out, "last_flush");
    put_num(out, (double)(p->start_ns + p->duration_ns) / 1e9, 3);
    next_key(out, "end_time");
    if (p->end_kind == MH_END_SIGNAL || p->end_kind == MH_END_EXEC)
        put_num(out, (double)(p->start_ns + p->end_ns) / 1e9, 3);
    else
        fputs("null", out);
    next_key(out, "end_signal");
    if (p->end_kind == MH_END_SIGNAL)
        fprintf(out, "%d, ", p->end_signal);
    else
        fputs("null, ", out);
    key(out, "unstacked");
    fprintf(out, "%llu, ", (unsigned long long)p->unstacked);
    key(out, "exec");
    if (p->end_kind == MH_END_EXEC)
        put_pstr(out, a, p->exec_path);
    else
        fputs("null", out);
    next_key(out, "disk_full");
    if (p->disk_full) {
        fputs("{", out);
        key(out, "time");
        put_num(out, (double)(p->start_ns + p->disk_full_ns) / 1e9, 3);
        next_key(out, "error");
        put_pstr(out, a, p->disk_full_why);
        fputs("}", out);
    } else {
        fputs("null", out);
    }
    fputs("}", out);
}

static void
ep_site_json(FILE *out, const struct mh_analysis *a,
             const struct mh_ep_site *s)
{
    static const char *const names[] = {"retained_bytes", "allocated_bytes"};
    const double vals[] = {s->retained, s->allocated};
    loc_members(out, a, "{", "", !s->nostack, s->file, s->line, s->function);
    fputs(", ", out);
    int_members(out, ", ", names, vals, 2);
    loc_members(out, a, "", "user_", s->has_user && !s->nostack, s->user_file,
                s->user_line, s->user_function);
    fputs("}", out);
}

static void
endpoint_json(FILE *out, const struct mh_analysis *a, size_t idx)
{
    const struct mh_endpoint *ep = &a->endpoints.v[a->endpoints.order[idx]];
    fputs("{", out);
    key(out, "endpoint");
    put_pstr(out, a, ep->name);
    next_key(out, "in_progress");
    fputs(ep->in_progress ? "true" : "false", out);
    next_key(out, "requests");
    fprintf(out, "%llu, ", (unsigned long long)ep->requests);
    key(out, "requests_after_warmup");
    fprintf(out, "%llu, ", (unsigned long long)ep->requests_after_warmup);
    static const char *const names[] = {
        "allocated_bytes_per_request", "peak_bytes_p50", "peak_bytes_p95",
        "held_at_end_bytes_per_request", "retained_bytes_per_request",
        "slope_bytes_per_1000_requests"};
    const double vals[] = {ep->allocated_per_request, ep->peak_p50,
                           ep->peak_p95,          ep->held_per_request,
                           ep->retained_per_request, ep->slope_per_1000};
    int_members(out, ", ", names, vals, sizeof(vals) / sizeof(*vals));
    key(out, "slope_r2");
    put_num(out, ep->slope_r2, 4);
    next_key(out, "slope_points");
    fprintf(out, "%llu, ", (unsigned long long)ep->slope_points);
    key(out, "slope_interval_per_1000_requests");
    fputs("[", out);
    mh_json_put_int(out, ep->slope_lo_per_1000);
    fputs(", ", out);
    mh_json_put_int(out, ep->slope_hi_per_1000);
    fputs("], ", out);
    key(out, "significant");
    fputs(ep->significant ? "true, " : "false, ", out);
    key(out, "peak_resolved_p50");
    fputs(mh_analysis_peak_resolved(a, ep->peak_p50) ? "true, " : "false, ",
          out);
    key(out, "peak_resolved_p95");
    fputs(mh_analysis_peak_resolved(a, ep->peak_p95) ? "true, " : "false, ",
          out);
    key(out, "peak_resolution_bytes");
    fprintf(out, "%llu,\n     ",
            (unsigned long long)(mh_analysis_peak_resolved(a, 0)
                                     ? 0
                                     : a->summary.interval));
    key(out, "sites");
    fputs("[", out);
    for (size_t i = 0; i < ep->nsites; i++) {
        fputs(i ? ",\n      " : "\n      ", out);
        ep_site_json(out, a, &ep->sites[i]);
    }
    fputs("]}", out);
}

static void
finding_json(FILE *out, const struct mh_analysis *a, size_t idx)
{
    const struct mh_finding *g = &a->findings.v[a->findings.order[idx]];
    fputs("{", out);
    key(out, "id");
    put_pstr(out, a, g->id);
    next_key(out, "title");
    if (g->kind)
        mh_json_put_str(out, g->kind->title, strlen(g->kind->title));
    else
        put_pstr(out, a, g->id);
    next_key(out, "evidence");
    put_pstr(out, a, g->evidence);
    next_key(out, "file");
    put_pstr(out, a, g->file);
    next_key(out, "line");
    fprintf(out, "%u, ", g->line);
    key(out, "function");
    put_pstr(out, a, g->function);
    next_key(out, "fix");
    if (g->kind)
        mh_json_put_str(out, g->kind->fix, strlen(g->kind->fix));
    else
        fputs("null", out);
    next_key(out, "docs");
    if (g->kind)
        fprintf(out, "\"%s%s\"", MH_FINDINGS_DOCS, g->kind->id);
    else
        fputs("null", out);
    next_key(out, "detail");
    put_pstr(out, a, g->detail);
    fputs(",\n     ", out);
    const char *const names[] = {"occurrences", "count_max", "count_total",
                                 "bytes_max", "bytes_total"};
    const uint64_t vals[] = {g->occurrences, g->count_max, g->count_total,
                             g->bytes_max, g->bytes_total};
    u64_members(out, ", ", names, vals, 5);
    key(out, "endpoints");
    fputs("[", out);
    for (size_t k = 0; k < g->nendpoints; k++) {
        if (k)
            fputs(", ", out);
        put_pstr(out, a, g->endpoints[k]);
    }
    fputs("]}", out);
}

int
mh_json_render(FILE *out, const struct mh_analysis *a)
{
    return mh_json_render_with(out, a, NULL, NULL);
}

int
mh_json_render_with(FILE *out, const struct mh_analysis *a,
                    mh_json_more_fn more, void *ctx)
{
    fputs("{\n  ", out);
    key(out, "version");
    fputs("1,\n  ", out);
    key(out, "summary");
    summary_json(out, a);
    fputs(",\n  ", out);
    key(out, "growth");
    list_json(out, a, a->ngrowth, growth_item_json, a->growth);
    fputs(",\n  ", out);
    key(out, "live");
    list_json(out, a, a->nlive, live_item_json, a->live);
    fputs(",\n  ", out);
    key(out, "live_after_warmup");
    list_json(out, a, a->nlive_recent, live_item_json, a->live_recent);
    fputs(",\n  ", out);
    key(out, "live_startup");
    list_json(out, a, a->nlive_startup, live_item_json, a->live_startup);
    fputs(",\n  ", out);
    key(out, "timeline");
    fputs("[", out);
    for (size_t i = 0; i < a->ntimeline; i++) {
        const struct mh_tl_point *p = &a->timeline[i];
        fputs(i % 4 ? ", " : i ? ",\n    " : "\n    ", out);
        fputs("{\"t\": ", out);
        put_num(out, (double)p->t_ns / 1e9, 3);
        fprintf(out,
                ", \"rss\": %llu, \"live\": ", (unsigned long long)p->rss);
        mh_json_put_int(out, p->live);
        fputs("}", out);
    }
    fputs(a->ntimeline ? "\n  ],\n  " : "],\n  ", out);
    key(out, "processes");
    list_json(out, a, a->nprocs, process_json, NULL);
    fputs(",\n  ", out);
    key(out, "endpoints");
    list_json(out, a, a->endpoints.norder, endpoint_json, NULL);
    fputs(",\n  ", out);
    key(out, "findings");
    list_json(out, a, a->findings.n, finding_json, NULL);
    if (more) {
        fputs(",\n  ", out);
        int rc = more(out, ctx);
        if (rc)
            return rc;
    }
    fputs("\n}\n", out);
    return ferror(out) ? MH_EIO : MH_OK;
}
