/* memhound report: read captures, analyse (analysis/), render (render/).
 *
 * Exit codes: 0 report written; 1 a capture cannot be read or the
 * output cannot be written; 2 usage error. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/analysis.h"
#include "../analysis/joined.h"
#include "../analysis/verdict.h"
#include "../format/chunk.h"
#include "../render/joined.h"
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
    char **captures;
    int ncaptures;
};

static void
usage(FILE *out)
{
    fputs("usage: memhound report [options] CAPTURE...\n"
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
        static const char *const with_value[] = {
            "--format", "--by",     "--sort",
            "--top",    "--warmup", "--output", "-o"};
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
        } else {
            o->output = val;
        }
    }
    if (!o->ncaptures) {
        mh_errorf("report needs at least one capture, e.g. 'memhound "
                  "report app.mhc'");
        usage(stderr);
        return MH_EXIT_USAGE;
    }
    return -1;
}

/* The dumps the capture's markers name, joined with it (joined.h). A
 * failure here costs the heap section only, never the report. */
static void
add_heap(struct mh_joined *j, const char *path, const uint8_t *buf, size_t len,
         size_t top)
{
    if (mh_joined_add(j, path, buf, len, top))
        mh_warnf("cannot join the heap dumps of '%s': %s", path, j->error);
}

struct json_more {
    const struct mh_joined *j;
    const struct mh_verdicts *v;
};

static int
json_more(FILE *out, void *ctx)
{
    const struct json_more *m = ctx;
    fputs("\"verdict\": ", out);
    mh_verdicts_json(out, m->v);
    fputs(",\n  ", out);
    return mh_joined_json_render(out, m->j);
}

static int
add_capture(struct mh_analysis *a, struct mh_joined *j, const char *path)
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

static int
render(const struct options *o, const struct mh_analysis *a,
       const struct mh_joined *j)
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
        rc = mh_joined_text_render(out, j);
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
    struct mh_analysis a;
    struct mh_joined j;
    mh_analysis_init(&a, &o.an);
    mh_joined_init(&j);
    code = MH_EXIT_OK;
    for (int i = 0; i < o.ncaptures && code == MH_EXIT_OK; i++)
        code = add_capture(&a, &j, o.captures[i]);
    mh_joined_finish(&j);
    if (code == MH_EXIT_OK && mh_analysis_finish(&a)) {
        mh_errorf("cannot build the report: %s", a.error);
        code = MH_EXIT_FAIL;
    }
    if (code == MH_EXIT_OK)
        code = render(&o, &a, &j);
    mh_joined_release(&j);
    mh_analysis_release(&a);
    mh_free(o.captures);
    return code;
}
