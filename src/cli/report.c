/* memhound report: read captures, analyse (analysis/), render (render/).
 *
 * Exit codes: 0 report written; 1 a capture cannot be read or the
 * output cannot be written; 2 usage error. */
#include <errno.h>
#include <glob.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../analysis/capture/analysis.h"
#include "../analysis/report/heap_section.h"
#include "../analysis/report/verdict.h"
#include "../format/chunk.h"
#include "../render/heap_section.h"
#include "../render/json.h"
#include "../render/text.h"
#include "../render/verdict.h"
#include "../util/file.h"
#include "../util/mem.h"
#include "args.h"
#include "cli.h"
#include "output.h"

enum format { FORMAT_TEXT, FORMAT_JSON };

struct options {
    struct mh_analysis_opts an;
    enum format format;
    const char *output; /* NULL = stdout */
    int force;          /* --force: replace an output file of ours */
    int mixed;          /* --mixed: merge captures of several runs */
    const char *run;    /* --run ID|last: only that run's captures */
    char **captures;
    int ncaptures;
    glob_t *globs; /* the patterns expanded (expand_patterns) */
    int nglobs;
};

static void
usage(FILE *out)
{
    fputs("usage: memhound report [options] CAPTURE...\n"
          "\n"
          "A CAPTURE naming no file that holds *, ? or [ is a pattern, "
          "expanded by\nreport ('web.*.mhc' quoted, as 'memhound run' "
          "prints it).\n"
          "\n"
          "Reports what the captured processes allocated and still held at "
          "the end,\nand what kept growing after the warm-up. Several "
          "captures (a pre-fork\nserver's processes) merge into one "
          "report. Captures of web services also\nhave endpoints (memory "
          "per request) and findings (problems the agent\nobserved, "
          "docs/findings.md), in every report.\n"
          "\n"
          "options:\n"
          "  --format text|json   output format (default text; json is "
          "described in\n"
          "                       docs/report-json.md)\n"
          "  --by line|function|file|module|stack|endpoint\n"
          "                       what a site is (default line: the "
          "allocating line);\n"
          "                       endpoint: memory per web request and "
          "endpoint, with\n"
          "                       each top endpoint's sites (by line)\n"
          "  --sort retained|peak|allocated|requests\n"
          "                       how endpoints are ranked (default "
          "retained: bytes per\n"
          "                       request still live at the end)\n"
          "  --top N              sites per list, endpoints in the table "
          "(default 10;\n"
          "                       0 = all)\n"
          "  --warmup W           what to leave out of growth and of "
          "the endpoints'\n"
          "                       retained bytes: W seconds from each "
          "process's start\n"
          "                       (30, 30s), or a fraction of its run when "
          "below 1\n"
          "                       (0.1, 10%); default 0.1\n"
          "      --run ID|last    only the captures of run ID (as the "
          "error about\n"
          "                       mixed runs lists them), or of the run "
          "that started\n"
          "                       last\n"
          "      --mixed          merge captures of different runs "
          "(refused otherwise)\n"
          "  -o, --output FILE    write the report to FILE (created "
          "mode 0600)\n"
          "      --force          replace FILE if it is a regular file "
          "of yours\n"
          "  -h, --help           show this help\n",
          out);
}

/* "30", "30s", "2.5" -> seconds; "0.1", "10%" -> fraction. */
static int
parse_warmup(const char *s, struct mh_analysis_opts *o)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !isfinite(v) || v < 0)
        return -1;
    if (!strcmp(end, "%")) {
        if (v >= 100)
            return -1;
        o->warmup = v / 100;
        o->warmup_fraction = 1;
        return 0;
    }
    if (*end && strcmp(end, "s"))
        return -1;
    o->warmup = v;
    o->warmup_fraction = !*end && v < 1;
    return 0;
}

/* Returns -1 to go on, else the exit code. */
static int
parse_args(int argc, char **argv, struct options *o)
{
    memset(o, 0, sizeof(*o));
    o->an.by = MH_BY_LINE;
    o->an.top = 10;
    o->an.warmup = 0.1;
    o->an.warmup_fraction = 1;
    o->format = FORMAT_TEXT;
    o->captures = mh_calloc((size_t)argc + 1, sizeof(*o->captures));
    if (!o->captures) {
        mh_errorf("out of memory");
        return MH_EXIT_FAIL;
    }
    int only_files = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (only_files || arg[0] != '-' || !strcmp(arg, "-")) {
            o->captures[o->ncaptures++] = argv[i];
            continue;
        }
        if (!strcmp(arg, "--")) {
            only_files = 1;
            continue;
        }
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            usage(stdout);
            return MH_EXIT_OK;
        }
        if (!strcmp(arg, "--force")) {
            o->force = 1;
            continue;
        }
        if (!strcmp(arg, "--mixed")) {
            o->mixed = 1;
            continue;
        }
        static const char *const with_value[] = {
            "--format", "--by",     "--sort", "--top",
            "--warmup", "--output", "-o",     "--run"};
        const char *name = NULL, *val = NULL;
        int r = mh_args_take_listed(argc, argv, &i, with_value,
                                    sizeof(with_value) / sizeof(*with_value),
                                    &name, &val);
        if (!r) {
            mh_errorf("unknown option '%s' for report; see 'memhound "
                      "report --help'",
                      arg);
            return MH_EXIT_USAGE;
        }
        if (r < 0)
            return mh_args_missing(name);
        if (!strcmp(name, "--format")) {
            if (!strcmp(val, "text")) {
                o->format = FORMAT_TEXT;
            } else if (!strcmp(val, "json")) {
                o->format = FORMAT_JSON;
            } else {
                mh_errorf("invalid --format '%s': expected text or json", val);
                return MH_EXIT_USAGE;
            }
        } else if (!strcmp(name, "--by")) {
            int by = mh_analysis_by_parse(val);
            if (by < 0) {
                mh_errorf("invalid --by '%s': expected line, function, "
                          "file, module, stack or endpoint",
                          val);
                return MH_EXIT_USAGE;
            }
            o->an.by = (enum mh_by)by;
        } else if (!strcmp(name, "--sort")) {
            int sort = mh_endpoints_sort_parse(val);
            if (sort < 0) {
                mh_errorf("invalid --sort '%s': expected retained, peak, "
                          "allocated or requests",
                          val);
                return MH_EXIT_USAGE;
            }
            o->an.sort = (enum mh_ep_sort)sort;
        } else if (!strcmp(name, "--top")) {
            uint64_t top;
            if (mh_args_parse_count(val, SIZE_MAX, &top)) {
                mh_errorf("invalid --top '%s': expected a count (0 = all)",
                          val);
                return MH_EXIT_USAGE;
            }
            o->an.top = (size_t)top;
        } else if (!strcmp(name, "--warmup")) {
            if (parse_warmup(val, &o->an)) {
                mh_errorf("invalid --warmup '%s': expected seconds (30, "
                          "30s) or a fraction below 1 (0.1, 10%%)",
                          val);
                return MH_EXIT_USAGE;
            }
        } else if (!strcmp(name, "--run")) {
            o->run = val;
        } else {
            o->output = val;
        }
    }
    if (o->run && o->mixed) {
        mh_errorf("--run and --mixed exclude each other: --run reports one "
                  "run, --mixed merges several");
        return MH_EXIT_USAGE;
    }
    if (!o->ncaptures) {
        mh_errorf("report needs at least one capture, e.g. 'memhound "
                  "report app.mhc'");
        usage(stderr);
        return MH_EXIT_USAGE;
    }
    return -1;
}

/* The heap section's access to the dumps a capture names: the report
 * opens them here, so analysis/ does no file I/O. */
static int
dump_exists(const char *path)
{
    struct stat st;
    return !stat(path, &st) && S_ISREG(st.st_mode);
}

static int
dump_map(const char *path, const uint8_t **data, size_t *len, void **handle,
         char *why, size_t n)
{
    struct mh_file *f = mh_malloc(sizeof(*f));
    if (!f) {
        snprintf(why, n, "%s", mh_strerror(MH_ENOMEM));
        return MH_ENOMEM;
    }
    int rc = mh_file_map(f, path, 0, &mh_chunk_heap_input);
    if (rc) {
        snprintf(why, n, "%s", f->error);
        mh_free(f);
        return rc;
    }
    *data = f->data;
    *len = f->len;
    *handle = f;
    return MH_OK;
}

static void
dump_unmap(void *handle)
{
    mh_file_unmap(handle);
    mh_free(handle);
}

const struct mh_heap_section_files mh_report_dump_files = {
    dump_exists, dump_map, dump_unmap};

/* The dumps the capture's markers name, joined with it (heap_section.h). A
 * failure here costs the heap section only, never the report. */
static void
add_heap(struct mh_heap_section *j, const char *path, const uint8_t *buf, size_t len,
         size_t top)
{
    if (mh_heap_section_add(j, path, buf, len, top))
        mh_warnf("cannot join the heap dumps of '%s': %s", path, j->error);
}

struct json_more {
    const struct mh_heap_section *j;
    const struct mh_verdicts *v;
};

static int
json_more(FILE *out, void *ctx)
{
    const struct json_more *m = ctx;
    fputs("\"verdict\": ", out);
    mh_verdicts_json(out, m->v);
    fputs(",\n  ", out);
    return mh_heap_section_json_render(out, m->j);
}

static int
add_capture(struct mh_analysis *a, struct mh_heap_section *j, const char *path)
{
    struct mh_file f;
    int rc = mh_file_map(&f, path, 0, &mh_chunk_capture_input);
    if (rc) {
        mh_errorf("%s", f.error);
        return MH_EXIT_FAIL;
    }
    rc = mh_analysis_add(a, path, f.data, f.len);
    if (!rc)
        add_heap(j, path, f.data, f.len, a->opts.top);
    mh_file_unmap(&f);
    if (rc) {
        mh_errorf("cannot read '%s': %s", path, a->error);
        return MH_EXIT_FAIL;
    }
    const struct mh_process *p = &a->procs[a->nprocs - 1];
    if (p->truncated)
        mh_warnf("capture '%s' was cut short at offset %llu (the process "
                 "was killed while writing, or the disk filled); reporting "
                 "up to there",
                 path, (unsigned long long)p->truncated_at);
    return MH_EXIT_OK;
}

/* An argument that names no file but holds *, ? or [ is a pattern, which
 * report expands itself (in sorted order): `run`'s hint quotes its
 * pattern, so a run of thousands of processes needs no long command line.
 * Returns -1 to go on. */
static int
expand_patterns(struct options *o)
{
    int total = 0, npat = 0;
    for (int i = 0; i < o->ncaptures; i++) {
        struct stat st;
        const char *c = o->captures[i];
        if (strpbrk(c, "*?[") && lstat(c, &st) && errno == ENOENT)
            npat++;
    }
    if (!npat)
        return -1;
    o->globs = mh_calloc((size_t)npat, sizeof(*o->globs));
    if (!o->globs) {
        mh_errorf("out of memory");
        return MH_EXIT_FAIL;
    }
    int *match = mh_calloc((size_t)o->ncaptures, sizeof(*match));
    if (!match) {
        mh_errorf("out of memory");
        return MH_EXIT_FAIL;
    }
    for (int i = 0; i < o->ncaptures; i++) {
        struct stat st;
        const char *c = o->captures[i];
        match[i] = -1;
        if (!strpbrk(c, "*?[") || !lstat(c, &st) || errno != ENOENT) {
            total++;
            continue;
        }
        glob_t *g = &o->globs[o->nglobs];
        int rc = glob(c, 0, NULL, g);
        if (rc == GLOB_NOMATCH) {
            globfree(g);
            mh_errorf("no capture matches '%s'", c);
            mh_free(match);
            return MH_EXIT_FAIL;
        }
        if (rc) {
            globfree(g);
            mh_errorf("cannot expand '%s': %s", c,
                      rc == GLOB_NOSPACE ? "out of memory" : "read error");
            mh_free(match);
            return MH_EXIT_FAIL;
        }
        match[i] = o->nglobs++;
        if (g->gl_pathc > MH_ANALYSIS_MAX_CAPTURES) {
            mh_errorf("'%s' matches %zu files, more than the %d captures a "
                      "report reads",
                      c, g->gl_pathc, MH_ANALYSIS_MAX_CAPTURES);
            mh_free(match);
            return MH_EXIT_FAIL;
        }
        total += (int)g->gl_pathc;
    }
    char **caps = mh_calloc((size_t)total + 1, sizeof(*caps));
    if (!caps) {
        mh_errorf("out of memory");
        mh_free(match);
        return MH_EXIT_FAIL;
    }
    int n = 0;
    for (int i = 0; i < o->ncaptures; i++) {
        if (match[i] < 0) {
            caps[n++] = o->captures[i];
            continue;
        }
        const glob_t *g = &o->globs[match[i]];
        for (size_t k = 0; k < g->gl_pathc; k++)
            caps[n++] = g->gl_pathv[k];
    }
    mh_free(match);
    mh_free(o->captures);
    o->captures = caps;
    o->ncaptures = n;
    return -1;
}

static void
options_release(struct options *o)
{
    for (int i = 0; i < o->nglobs; i++)
        globfree(&o->globs[i]);
    mh_free(o->globs);
    mh_free(o->captures);
}

/* --- runs ------------------------------------------------------------
 * Captures of different runs (docs/report.md, "Runs") are never merged
 * silently: the headers are read first, and a mix is refused, or with
 * --run narrowed to one run, before any capture is analysed. */

struct run_group {
    uint64_t id;       /* 0: captures without a run id */
    uint64_t start_ns; /* the earliest start among its captures */
    size_t count;
    int first;         /* index of its earliest capture in the input */
    char command[120]; /* that capture's argv, printable */
};

/* The capture's HEADER: 1 with *h's plain fields and `command` set, 0
 * when it cannot be read here (the analysis says why later). */
static int
read_header(const char *path, struct mh_cap_header *h, char *command,
            size_t size)
{
    /* Standard input, a pipe, a FIFO can be read once only: the
     * analysis reads them, ungrouped. */
    struct stat st;
    if (!strcmp(path, "-") || stat(path, &st) || !S_ISREG(st.st_mode))
        return 0;
    struct mh_file f;
    if (mh_file_map(&f, path, 0, &mh_chunk_capture_input))
        return 0;
    int ok = mh_analysis_read_header(f.data, f.len, h, command, size);
    mh_file_unmap(&f);
    return ok;
}

static void
print_run(const struct run_group *g, const char *sample)
{
    char when[32] = "?";
    time_t secs = (time_t)(g->start_ns / 1000000000ull);
    struct tm tm;
    if (g->start_ns && localtime_r(&secs, &tm))
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
    if (g->id)
        fprintf(stderr, "  run %016llx", (unsigned long long)g->id);
    else
        fputs("  no run id (captures from before run ids)", stderr);
    fprintf(stderr,
            ": started %s, %s\n      %zu capture%s, e.g. '%s'\n", when,
            g->command[0] ? g->command : "?", g->count,
            g->count == 1 ? "" : "s", sample);
}

/* Groups the captures by run. With one run, or --mixed, all stay; with
 * --run, only that run's stay (o->captures is narrowed); otherwise the
 * runs are listed and MH_EXIT_FAIL returned. *nruns_out: the runs kept.
 * Returns -1 to go on. */
static int
check_runs(struct options *o, size_t *nruns_out)
{
    size_t n = (size_t)o->ncaptures, nruns = 0;
    struct run_group *g = mh_calloc(n ? n : 1, sizeof(*g));
    int *group_of = mh_calloc(n ? n : 1, sizeof(*group_of));
    int code = -1;
    if (!g || !group_of) {
        mh_errorf("out of memory");
        code = MH_EXIT_FAIL;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        struct mh_cap_header h;
        char command[sizeof(g->command)];
        group_of[i] = -1;
        if (!read_header(o->captures[i], &h, command, sizeof(command)))
            continue;
        size_t k = 0;
        while (k < nruns && g[k].id != h.run_id)
            k++;
        if (k == nruns) {
            g[nruns].id = h.run_id;
            g[nruns].start_ns = UINT64_MAX;
            nruns++;
        }
        group_of[i] = (int)k;
        g[k].count++;
        if (h.start_ns < g[k].start_ns) {
            g[k].start_ns = h.start_ns;
            g[k].first = (int)i;
            memcpy(g[k].command, command, sizeof(command));
        }
    }
    if (o->run) {
        size_t want = nruns;
        if (!strcmp(o->run, "last")) {
            for (size_t k = 0; k < nruns; k++)
                if (want == nruns || g[k].start_ns > g[want].start_ns)
                    want = k;
        } else {
            char *end;
            errno = 0;
            unsigned long long id = strtoull(o->run, &end, 16);
            if (errno || *end || end == o->run || o->run[0] == '-' || !id) {
                mh_errorf("invalid --run '%s': expected a run id (16 hex "
                          "digits) or 'last'",
                          o->run);
                code = MH_EXIT_USAGE;
                goto done;
            }
            for (size_t k = 0; k < nruns; k++)
                if (g[k].id == id)
                    want = k;
        }
        if (want == nruns) {
            mh_errorf("no capture of run '%s' among the %d given", o->run,
                      o->ncaptures);
            code = MH_EXIT_FAIL;
            goto done;
        }
        int m = 0;
        for (size_t i = 0; i < n; i++)
            if (group_of[i] == (int)want || group_of[i] < 0)
                o->captures[m++] = o->captures[i];
        if ((size_t)m < n && g[want].id)
            mh_warnf("reporting run %016llx: %zu of the %zu captures given",
                     (unsigned long long)g[want].id, (size_t)m, n);
        else if ((size_t)m < n)
            mh_warnf("reporting the captures without a run id: %zu of the "
                     "%zu given",
                     (size_t)m, n);
        o->ncaptures = m;
        nruns = 1;
    } else if (nruns > 1 && !o->mixed) {
        mh_errorf("the %zu captures come from %zu different runs, which "
                  "report does not merge:",
                  n, nruns);
        for (size_t k = 0; k < nruns; k++)
            print_run(&g[k], o->captures[g[k].first]);
        mh_errorf("name one run's captures (the pattern 'memhound run' "
                  "printed), pick one with --run ID or --run last, or pass "
                  "--mixed to merge them anyway");
        code = MH_EXIT_FAIL;
    }
    *nruns_out = nruns;
done:
    mh_free(g);
    mh_free(group_of);
    return code;
}

static int
render(const struct options *o, const struct mh_analysis *a,
       const struct mh_heap_section *j)
{
    struct mh_verdicts v;
    if (mh_verdicts_of_analysis(a, NULL, &v)) {
        mh_errorf("cannot build the verdict: out of memory");
        return MH_EXIT_FAIL;
    }
    FILE *out = mh_output_open(o->output, o->force);
    if (!out) {
        mh_verdicts_release(&v);
        return MH_EXIT_FAIL;
    }
    struct json_more more = {j, &v};
    int rc = o->format == FORMAT_JSON
                 ? mh_json_render_with(out, a, json_more, &more)
                 : mh_text_render(out, a);
    if (!rc && o->format != FORMAT_JSON) {
        mh_verdicts_text(out, &v, a->nprocs == 1 ? (long)a->procs[0].pid : 0);
        rc = mh_heap_section_text_render(out, j);
    }
    mh_verdicts_release(&v);
    return mh_output_close(out, o->output, rc);
}

int
mh_cmd_report(int argc, char **argv)
{
    struct options o;
    int code = parse_args(argc, argv, &o);
    if (code >= 0) {
        mh_free(o.captures);
        return code;
    }
    size_t nruns = 1;
    code = expand_patterns(&o);
    if (code < 0)
        code = check_runs(&o, &nruns);
    if (code >= 0) {
        options_release(&o);
        return code;
    }
    o.an.runs = nruns;
    struct mh_analysis a;
    struct mh_heap_section j;
    mh_analysis_init(&a, &o.an);
    mh_heap_section_init(&j, &mh_report_dump_files);
    code = MH_EXIT_OK;
    for (int i = 0; i < o.ncaptures && code == MH_EXIT_OK; i++)
        code = add_capture(&a, &j, o.captures[i]);
    mh_heap_section_finish(&j);
    if (code == MH_EXIT_OK && mh_analysis_finish(&a)) {
        mh_errorf("cannot build the report: %s", a.error);
        code = MH_EXIT_FAIL;
    }
    if (code == MH_EXIT_OK)
        code = render(&o, &a, &j);
    mh_heap_section_release(&j);
    mh_analysis_release(&a);
    options_release(&o);
    return code;
}
