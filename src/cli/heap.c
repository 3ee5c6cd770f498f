/* memhound heap: census, diff, why and top-retainers on heap dumps
 * (docs/heap-format.md), rendered as text or JSON (docs/heap-json.md).
 *
 * Exit codes: 0 written; 1 a dump or capture cannot be read, an address
 * is not in the dump, or the output cannot be written; 2 usage error. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/heap/census.h"
#include "../analysis/heap/diff.h"
#include "../analysis/heap/top.h"
#include "../analysis/heap/why.h"
#include "../format/chunk.h"
#include "../render/heap_json.h"
#include "../render/heap_text.h"
#include "../util/file.h"
#include "../util/mem.h"
#include "args.h"
#include "cli.h"
#include "output.h"

enum sub { SUB_CENSUS, SUB_DIFF, SUB_WHY, SUB_TOP };

/* What the cmd_* functions return besides MH_OK and a renderer's MH_EIO:
 * the error has been reported, exit with this. */
enum { REPORTED_FAIL = MH_EXIT_FAIL, REPORTED_USAGE = MH_EXIT_USAGE };

struct options {
    enum sub sub;
    int json;
    uint32_t top;
    int top_set;
    const char *output;
    int force; /* --force: replace an output file of ours */
    const char *capture;
    const char *files[2];
    int nfiles;
    /* why */
    const char *type, *address, *since;
    int unreachable;
    /* top-retainers */
    int all;
};

static void
usage(FILE *out)
{
    fputs("usage: memhound heap census DUMP [options]\n"
          "       memhound heap diff OLD NEW [options]\n"
          "       memhound heap why DUMP (--type T | --address A | --since "
          "OLD |\n"
          "                               --unreachable) [options]\n"
          "       memhound heap top-retainers DUMP [options]\n"
          "\n"
          "Analyses heap dumps (memhound snapshot, memhound.dump_heap()):\n"
          "  census         objects by type: count, bytes, retained bytes\n"
          "  diff           growth by type between two dumps, and the "
          "objects new in NEW\n"
          "  why            shortest paths from the roots that keep the "
          "selected objects\n"
          "                 alive, grouped by shape; what no root reaches\n"
          "  top-retainers  the objects whose removal frees the most "
          "(dominator tree)\n"
          "\n"
          "options:\n"
          "  --format text|json   output format (default text; json is "
          "described in\n"
          "                       docs/heap-json.md)\n"
          "  --top N              rows per list (default 20; why: 10, "
          "top-retainers: 10;\n"
          "                       0 = all)\n"
          "  --type T             why: objects of type T as Python names it "
          "(str,\n"
          "                       app.models.User)\n"
          "  --address A          why: the object at address A (0x7f...)\n"
          "  --since OLD          why: objects new since dump OLD, of the "
          "types that grew\n"
          "  --unreachable        why: what no root reaches\n"
          "  --capture CAPTURE    census, why: the target's capture, to "
          "name the lines\n"
          "                       that allocated live-but-unreachable "
          "blocks\n"
          "  --all                top-retainers: list every big retainer, "
          "also those whose\n"
          "                       memory sits in one object below them\n"
          "  -o, --output FILE    write to FILE (created mode 0600)\n"
          "      --force          replace FILE if it is a regular file "
          "of yours\n"
          "  -h, --help           show this help\n",
          out);
}

/* Returns -1 to go on, else the exit code. */
static int
parse_args(int argc, char **argv, struct options *o)
{
    memset(o, 0, sizeof(*o));
    if (argc < 2) {
        usage(stderr);
        return MH_EXIT_USAGE;
    }
    const char *sub = argv[1];
    if (!strcmp(sub, "-h") || !strcmp(sub, "--help")) {
        usage(stdout);
        return MH_EXIT_OK;
    }
    if (!strcmp(sub, "census")) {
        o->sub = SUB_CENSUS;
    } else if (!strcmp(sub, "diff")) {
        o->sub = SUB_DIFF;
    } else if (!strcmp(sub, "why")) {
        o->sub = SUB_WHY;
    } else if (!strcmp(sub, "top-retainers")) {
        o->sub = SUB_TOP;
    } else {
        mh_errorf("unknown heap command '%s': expected census, diff, why or "
                  "top-retainers",
                  sub);
        return MH_EXIT_USAGE;
    }
    o->top = o->sub == SUB_CENSUS || o->sub == SUB_DIFF ? 20 : 10;
    int only_files = 0;
    for (int i = 2; i < argc; i++) {
        const char *arg = argv[i];
        if (only_files || arg[0] != '-' || !strcmp(arg, "-")) {
            if (o->nfiles == 2) {
                mh_errorf("too many dumps for 'heap %s': '%s'", sub, arg);
                return MH_EXIT_USAGE;
            }
            o->files[o->nfiles++] = arg;
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
        if (!strcmp(arg, "--unreachable")) {
            o->unreachable = 1;
            continue;
        }
        if (!strcmp(arg, "--all")) {
            o->all = 1;
            continue;
        }
        if (!strcmp(arg, "--force")) {
            o->force = 1;
            continue;
        }
        static const char *const with_value[] = {
            "--format", "--top",     "--type",   "--address",
            "--since",  "--capture", "--output", "-o"};
        const char *name = NULL, *val = NULL;
        int r = mh_args_take_listed(argc, argv, &i, with_value,
                                    sizeof(with_value) / sizeof(*with_value),
                                    &name, &val);
        if (!r) {
            mh_errorf("unknown option '%s' for heap %s; see 'memhound heap "
                      "--help'",
                      arg, sub);
            return MH_EXIT_USAGE;
        }
        if (r < 0)
            return mh_args_missing(name);
        if (!strcmp(name, "--format")) {
            if (strcmp(val, "text") && strcmp(val, "json")) {
                mh_errorf("invalid --format '%s': expected text or json", val);
                return MH_EXIT_USAGE;
            }
            o->json = !strcmp(val, "json");
        } else if (!strcmp(name, "--top")) {
            uint64_t top;
            if (mh_args_parse_count(val, UINT32_MAX, &top)) {
                mh_errorf("invalid --top '%s': expected a count (0 = all)",
                          val);
                return MH_EXIT_USAGE;
            }
            o->top = (uint32_t)top;
        } else if (!strcmp(name, "--type")) {
            o->type = val;
        } else if (!strcmp(name, "--address")) {
            o->address = val;
        } else if (!strcmp(name, "--since")) {
            o->since = val;
        } else if (!strcmp(name, "--capture")) {
            o->capture = val;
        } else {
            o->output = val;
        }
    }
    int want = o->sub == SUB_DIFF ? 2 : 1;
    if (o->nfiles != want) {
        mh_errorf("heap %s needs %s, e.g. 'memhound heap %s %s'", sub,
                  want == 2 ? "two dumps" : "one dump", sub,
                  want == 2 ? "old.mhh new.mhh" : "app.mhh");
        return MH_EXIT_USAGE;
    }
    int sel = (o->type != NULL) + (o->address != NULL) + (o->since != NULL) +
              o->unreachable;
    if (o->sub == SUB_WHY && sel != 1) {
        mh_errorf("heap why needs exactly one of --type, --address, --since "
                  "and --unreachable");
        return MH_EXIT_USAGE;
    }
    if (o->sub != SUB_WHY && sel) {
        mh_errorf("--type, --address, --since and --unreachable are for "
                  "'heap why'");
        return MH_EXIT_USAGE;
    }
    if (o->capture && (o->sub == SUB_DIFF || o->sub == SUB_TOP)) {
        mh_errorf("--capture is for 'heap census' and 'heap why'");
        return MH_EXIT_USAGE;
    }
    if (o->all && o->sub != SUB_TOP) {
        mh_errorf("--all is for 'heap top-retainers'");
        return MH_EXIT_USAGE;
    }
    return -1;
}

/* Loads the dump at `path` into a; exit code. */
static int
load(struct mh_heap_session *a, struct mh_heap_types *types, const char *path)
{
    struct mh_file f;
    int rc = mh_file_map(&f, path, 0, &mh_chunk_heap_input);
    if (rc) {
        mh_errorf("%s", f.error);
        return MH_EXIT_FAIL;
    }
    rc = mh_heap_session_load(a, types, f.data, f.len, 0);
    mh_file_unmap(&f);
    if (rc) {
        mh_errorf("cannot read heap dump '%s': %s", path, a->error);
        return MH_EXIT_FAIL;
    }
    const struct mh_heap_image *d = &a->dump;
    if (d->truncated)
        mh_warnf("heap dump '%s' is cut short (the walker was probably "
                 "killed): it ends inside the chunk at offset %llu, whose "
                 "%llu bytes are unusable, and has no END record; analysing "
                 "the %lu objects before",
                 path, (unsigned long long)d->truncated_at,
                 (unsigned long long)(d->file_bytes - d->truncated_at),
                 (unsigned long)d->nobjs);
    return MH_EXIT_OK;
}

static int
load_capture(struct mh_heap_session *a, const char *path)
{
    struct mh_file f;
    int rc = mh_file_map(&f, path, 0, &mh_chunk_capture_input);
    if (rc) {
        mh_errorf("%s", f.error);
        return MH_EXIT_FAIL;
    }
    rc = mh_heap_session_add_capture(a, f.data, f.len);
    mh_file_unmap(&f);
    if (rc) {
        mh_errorf("cannot read capture '%s': %s", path, a->error);
        return MH_EXIT_FAIL;
    }
    return MH_EXIT_OK;
}

/* Parses an address: 0x-prefixed hex, or decimal. */
static int
parse_address(const char *s, uint64_t *v)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 0);
    if (end == s || *end || errno || *s == '-')
        return -1;
    *v = x;
    return 0;
}

struct run {
    struct options *o;
    struct mh_heap_types types;
    struct mh_heap_session a, old;
    FILE *out;
};

static int
cmd_census(struct run *r, const struct mh_heap_view *v)
{
    struct mh_heap_census c;
    mh_heap_census_init(&c);
    int rc = mh_heap_census_build(&c, &r->a, r->types.n);
    if (rc) {
        mh_errorf("cannot analyse '%s': %s", v->path,
                  r->a.error[0] ? r->a.error : mh_strerror(rc));
        mh_heap_census_release(&c);
        return REPORTED_FAIL;
    }
    rc = r->o->json ? mh_heap_json_census(r->out, v, &c)
                    : mh_heap_text_census(r->out, v, &c);
    mh_heap_census_release(&c);
    return rc;
}

static int
cmd_diff(struct run *r, const struct mh_heap_view *vo,
         const struct mh_heap_view *v)
{
    struct mh_heap_diff df;
    mh_heap_diff_init(&df);
    int rc = mh_heap_diff_build(&df, &r->old, &r->a, r->types.n);
    if (rc) {
        mh_errorf("cannot compare the dumps: %s", mh_strerror(rc));
        mh_heap_diff_release(&df);
        return REPORTED_FAIL;
    }
    rc = r->o->json ? mh_heap_json_diff(r->out, vo, v, &df)
                    : mh_heap_text_diff(r->out, vo, v, &df);
    mh_heap_diff_release(&df);
    return rc;
}

/* The type group a --type value names (analysis/heap/types.c's resolve: the
 * exact name, or the one that ends with it); 0, or -1 after an error
 * that lists the candidates. */
static int
resolve_type(struct run *r, const struct mh_heap_view *v, const char *name,
             uint32_t *group)
{
    /* Five names shown; a sixth says there are more. */
    uint32_t cand[6], n;
    enum mh_heap_types_match m =
        mh_heap_types_resolve(&r->types, name, group, cand, 6, &n);
    if (m == MH_TYPES_FOUND)
        return 0;
    int more = n > 5;
    if (more)
        n = 5;
    char list[1024];
    size_t len = 0;
    list[0] = '\0';
    for (uint32_t i = 0; i < n && len < sizeof(list); i++) {
        int k = snprintf(list + len, sizeof(list) - len, "%s%s", i ? ", " : "",
                         r->types.names[cand[i]]);
        if (k < 0)
            break;
        len += (size_t)k;
    }
    if (m == MH_TYPES_AMBIGUOUS)
        mh_errorf("type name '%s' is ambiguous in '%s': it could be %s%s "
                  "(give the full name)",
                  name, v->path, list, more ? ", ..." : "");
    else if (n)
        mh_errorf("no type is called '%s' in '%s'; the closest are: %s "
                  "(type names are as Python shows them: str, "
                  "app.models.User)",
                  name, v->path, list);
    else
        mh_errorf("no type is called '%s' in '%s' (the dump has no types)",
                  name, v->path);
    return -1;
}

static int
cmd_why(struct run *r, const struct mh_heap_view *v)
{
    struct options *o = r->o;
    struct mh_heap_why w;
    struct mh_heap_diff df;
    char what[512];
    const char *by, *value;
    int rc;
    mh_heap_why_init(&w);
    w.top = o->top;
    mh_heap_diff_init(&df);
    if (o->type) {
        uint32_t g;
        if (resolve_type(r, v, o->type, &g))
            return REPORTED_FAIL;
        by = "type";
        value = r->types.names[g];
        snprintf(what, sizeof(what), "objects of type '%s'", value);
        rc = mh_heap_why_select_type(&w, &r->a, g, r->types.n);
    } else if (o->address) {
        uint64_t addr;
        by = "address";
        value = o->address;
        if (parse_address(o->address, &addr)) {
            mh_errorf("invalid --address '%s': expected 0x... or a decimal "
                      "number",
                      o->address);
            return REPORTED_USAGE;
        }
        uint32_t obj = mh_heap_find(&r->a.dump, addr);
        if (obj == MH_HEAP_NONE) {
            mh_errorf("no object at 0x%llx in '%s'", (unsigned long long)addr,
                      v->path);
            return REPORTED_FAIL;
        }
        snprintf(what, sizeof(what), "the %s at 0x%llx",
                 mh_heap_type_name(&r->a.dump, obj), (unsigned long long)addr);
        rc = mh_heap_why_select_object(&w, &r->a, obj);
    } else if (o->since) {
        by = "since";
        value = o->since;
        snprintf(what, sizeof(what),
                 "objects new since '%s', of the types that grew", o->since);
        rc = mh_heap_diff_build(&df, &r->old, &r->a, r->types.n);
        if (rc == MH_OK)
            rc = mh_heap_why_select_since(&w, &r->a, &df, r->types.n);
    } else {
        by = "unreachable";
        value = NULL;
        snprintf(what, sizeof(what), "objects no root reaches");
        rc = mh_heap_why_select_unreachable(&w, &r->a);
    }
    if (rc == MH_OK)
        rc = mh_heap_why_build(&w, &r->a, &r->types);
    if (rc) {
        mh_errorf("cannot analyse '%s': %s", v->path, mh_strerror(rc));
        rc = REPORTED_FAIL;
    } else {
        rc = o->json ? mh_heap_json_why(r->out, v, by, value, &w)
                     : mh_heap_text_why(r->out, v, what, &w);
    }
    mh_heap_diff_release(&df);
    mh_heap_why_release(&w);
    return rc;
}

static int
cmd_top(struct run *r, const struct mh_heap_view *v)
{
    struct mh_heap_top t;
    mh_heap_top_init(&t);
    int rc = mh_heap_top_build(&t, &r->a, r->o->top, !r->o->all, r->types.n);
    if (rc) {
        mh_errorf("cannot analyse '%s': %s", v->path,
                  r->a.error[0] ? r->a.error : mh_strerror(rc));
        mh_heap_top_release(&t);
        return REPORTED_FAIL;
    }
    rc = r->o->json ? mh_heap_json_top(r->out, v, &t)
                    : mh_heap_text_top(r->out, v, &t);
    mh_heap_top_release(&t);
    return rc;
}

static int
run(struct run *r)
{
    struct options *o = r->o;
    const char *path = o->files[o->nfiles - 1];
    const char *old_path = o->sub == SUB_DIFF ? o->files[0] : o->since;
    int code = MH_EXIT_OK;
    if (old_path)
        code = load(&r->old, &r->types, old_path);
    if (code == MH_EXIT_OK)
        code = load(&r->a, &r->types, path);
    if (code == MH_EXIT_OK && o->capture)
        code = load_capture(&r->a, o->capture);
    if (code != MH_EXIT_OK)
        return code;
    r->out = mh_output_open(o->output, o->force);
    if (!r->out)
        return MH_EXIT_FAIL;
    struct mh_heap_view v = {path, &r->a, &r->types, o->top};
    struct mh_heap_view vo = {old_path, &r->old, &r->types, o->top};
    int rc;
    switch (o->sub) {
    case SUB_CENSUS:
        rc = cmd_census(r, &v);
        break;
    case SUB_DIFF:
        rc = cmd_diff(r, &vo, &v);
        break;
    case SUB_WHY:
        rc = cmd_why(r, &v);
        break;
    default:
        rc = cmd_top(r, &v);
        break;
    }
    /* REPORTED_* are exit codes, which mh_output_close() passes on. */
    return mh_output_close(r->out, o->output, rc);
}

int
mh_cmd_heap(int argc, char **argv)
{
    struct options o;
    int code = parse_args(argc, argv, &o);
    if (code >= 0)
        return code;
    struct run r;
    memset(&r, 0, sizeof(r));
    r.o = &o;
    mh_heap_types_init(&r.types);
    mh_heap_session_init(&r.a);
    mh_heap_session_init(&r.old);
    code = run(&r);
    mh_heap_types_release(&r.types);
    mh_heap_session_release(&r.a);
    mh_heap_session_release(&r.old);
    return code;
}
