/* The report's endpoints table (memory per web request) and findings as
 * text, after the sites (see text.h). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "text.h"
#include "text_priv.h"

#define EP_COMPACT 5 /* rows of the endpoints table under other --by */
#define EP_WITH_SITES 3

static void
slope_str(char *buf, size_t size, const struct mh_endpoint *ep)
{
    if (ep->slope_points < 3) {
        snprintf(buf, size, "-");
        return;
    }
    char b[32];
    mh_text_bytes(b, sizeof(b), fabs(ep->slope_per_1000));
    snprintf(buf, size, "%s%s (%.2f)", ep->slope_per_1000 < 0 ? "-" : "+", b,
             ep->slope_r2);
}

/* A per-request peak percentile, or "< R" when it is below what the
 * sampling resolves (mh_analysis_peak_resolved()). */
static void
peak_str(char *buf, size_t size, const struct mh_analysis *a, double v)
{
    if (mh_analysis_peak_resolved(a, v)) {
        mh_text_bytes(buf, size, v);
        return;
    }
    char r[32];
    mh_text_bytes(r, sizeof(r), (double)a->summary.interval);
    snprintf(buf, size, "< %s", r);
}

static void
endpoint_row(FILE *out, const struct mh_analysis *a,
             const struct mh_endpoint *ep)
{
    char n[32], al[32], p50[40], p95[40], h[32], r[32], sl[48];
    mh_text_count(n, sizeof(n), (double)ep->requests);
    mh_text_bytes(al, sizeof(al), ep->allocated_per_request);
    peak_str(p50, sizeof(p50), a, ep->peak_p50);
    peak_str(p95, sizeof(p95), a, ep->peak_p95);
    mh_text_bytes(h, sizeof(h), ep->held_per_request);
    if (ep->in_progress || !ep->requests_after_warmup)
        snprintf(r, sizeof(r), "-");
    else
        mh_text_bytes(r, sizeof(r), ep->retained_per_request);
    slope_str(sl, sizeof(sl), ep);
    fprintf(out, "%c %8s  %10s  %9s  %9s  %10s  %12s  %-17s  ",
            ep->significant || ep->in_progress ? ' ' : MARK_WEAK, n, al, p50,
            p95, h, r, sl);
    mh_text_put_id(out, a, ep->name);
    fputc('\n', out);
}

static void
endpoint_sites_text(FILE *out, const struct mh_analysis *a,
                    const struct mh_endpoint *ep)
{
    fputs("\ntop sites of ", out);
    mh_text_put_id(out, a, ep->name);
    fputs(" (by retained, then allocated bytes)\n", out);
    if (!ep->nsites) {
        fputs("  no sampled allocation\n", out);
        return;
    }
    fputs("    retained   allocated  site\n", out);
    for (size_t i = 0; i < ep->nsites; i++) {
        const struct mh_ep_site *s = &ep->sites[i];
        char r[32], al[32];
        mh_text_bytes(r, sizeof(r), s->retained);
        mh_text_bytes(al, sizeof(al), s->allocated);
        fprintf(out, "  %10s  %10s  ", r, al);
        struct mh_site_frame f = {s->file, s->function, s->line};
        if (s->nostack)
            fputs("<no Python stack>", out);
        else
            mh_text_put_frame(out, a, &f);
        fputc('\n', out);
        struct mh_site_frame u = {s->user_file, s->user_function,
                                  s->user_line};
        if (s->has_user && !s->nostack &&
            (u.file != f.file || u.line != f.line ||
             u.function != f.function)) {
            fprintf(out, "%26s%s ", "", s->user_direct ? "at" : "called from");
            mh_text_put_frame(out, a, &u);
            fputc('\n', out);
        }
    }
}

/* The endpoints table: all of it (up to --top) with the top endpoints'
 * sites for --by endpoint, its first rows otherwise. */
void
mh_text_endpoints(FILE *out, const struct mh_analysis *a, int full)
{
    const struct mh_endpoints *e = &a->endpoints;
    if (!e->n) {
        if (full)
            fputs("\nendpoints\n  no requests in the captures (they are "
                  "tagged under 'memhound run --web'\n  or by memhound's "
                  "web middleware)\n",
                  out);
        return;
    }
    size_t rows = e->norder;
    if (!full && rows > EP_COMPACT)
        rows = EP_COMPACT;
    char total[32];
    mh_text_count(total, sizeof(total), (double)e->requests);
    fprintf(out, "\nendpoints by %s%s (%zu of %zu; %s requests)\n",
            mh_endpoints_sort_name(a->opts.sort),
            a->opts.sort == MH_EP_SORT_RETAINED    ? " bytes per request"
            : a->opts.sort == MH_EP_SORT_PEAK      ? " (p95)"
            : a->opts.sort == MH_EP_SORT_ALLOCATED ? " bytes per request"
                                                   : "",
            rows, e->n, total);
    fputs("  requests   alloc/req   peak p50   peak p95    held/req  "
          "retained/req  slope/1k req (R²)  endpoint\n",
          out);
    int weak = 0, unresolved = 0;
    for (size_t i = 0; i < rows; i++) {
        const struct mh_endpoint *ep = &e->v[e->order[i]];
        endpoint_row(out, a, ep);
        weak |= !ep->significant && !ep->in_progress;
        unresolved |= !mh_analysis_peak_resolved(a, ep->peak_p50) ||
                      !mh_analysis_peak_resolved(a, ep->peak_p95);
    }
    if (weak)
        fprintf(out,
                "  %c not significant: the slope's 95%% interval "
                "reaches zero, or the growth it\n    implies is below the "
                "noise floor\n",
                MARK_WEAK);
    if (unresolved) {
        char r[32];
        mh_text_bytes(r, sizeof(r), (double)a->summary.interval);
        fprintf(out,
                "  < %s: a per-request peak below the sampling "
                "interval, which the samples\n    cannot resolve (trace-all "
                "mode, or a smaller --interval, can)\n",
                r);
    }
    if (!full) {
        fputs("  (memhound report --by endpoint: every endpoint and its "
              "top sites)\n",
              out);
        return;
    }
    fputs("  held: live when the request ended; retained: still live at "
          "the end, per\n  request begun after the warm-up; slope: "
          "growth of retained bytes per 1,000\n  requests\n",
          out);
    for (size_t i = 0; i < rows && i < EP_WITH_SITES; i++)
        endpoint_sites_text(out, a, &e->v[e->order[i]]);
}

void
mh_text_findings(FILE *out, const struct mh_analysis *a)
{
    const struct mh_findings *f = &a->findings;
    if (!f->n)
        return;
    fprintf(out, "\nfindings (%zu)\n", f->n);
    for (size_t i = 0; i < f->n; i++) {
        const struct mh_finding *g = &f->v[f->order[i]];
        fputs("  ", out);
        mh_text_put_id(out, a, g->id);
        fputs(": ", out);
        if (g->kind)
            fputs(g->kind->title, out);
        else
            mh_text_put_id(out, a, g->id);
        fputs("\n    at ", out);
        struct mh_site_frame fr = {g->file, g->function, g->line};
        mh_text_put_frame(out, a, &fr);
        fputs("\n    ", out);
        mh_text_put_id(out, a, g->evidence);
        fputc('\n', out);
        if (g->nendpoints) {
            fputs("    endpoints: ", out);
            for (size_t k = 0; k < g->nendpoints; k++) {
                if (k)
                    fputs(", ", out);
                mh_text_put_id(out, a, g->endpoints[k]);
                fprintf(out, " (%llu)",
                        (unsigned long long)g->endpoint_counts[k]);
            }
            fputc('\n', out);
        }
        if (g->kind)
            fprintf(out, "    fix: %s\n    docs: %s%s\n", g->kind->fix,
                    MH_FINDINGS_DOCS, g->kind->id);
    }
    if (f->dropped)
        fprintf(out,
                "  note: %llu more findings were not grouped (past %zu "
                "groups)\n",
                (unsigned long long)f->dropped,
                (size_t)MH_FINDINGS_MAX_GROUPS);
}
