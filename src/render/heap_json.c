/* The heap analyses as JSON (docs/heap-json.md). Integers are printed
 * as integers; estimated numbers from samples are rounded. */
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "../util/buf.h"
#include "heap_json.h"
#include "json.h"

static void
put_s(FILE *out, const char *s)
{
    mh_json_put_str(out, s, strlen(s));
}

static void
key(FILE *out, const char *k)
{
    fprintf(out, "\"%s\": ", k);
}

static const char *
type_of(const struct mh_heap_view *v, uint32_t group)
{
    return group < v->types->n ? v->types->names[group] : "?";
}

static uint32_t
shown(const struct mh_heap_view *v, uint32_t n)
{
    return v->top && v->top < n ? v->top : n;
}

static void
put_est(FILE *out, double x)
{
    if (!isfinite(x) || x < 0)
        x = 0;
    fprintf(out, "%.0f", nearbyint(x));
}

static void
dump_obj(FILE *out, const struct mh_heap_view *v)
{
    const struct mh_heap_image *d = &v->a->dump;
    const struct mh_heap_graph *g = &v->a->graph;
    uint64_t bytes = 0;
    for (uint32_t o = 0; o < d->nobjs; o++)
        bytes += d->size[o];
    fputs("{", out);
    key(out, "path");
    put_s(out, v->path);
    fprintf(out,
            ", \"pid\": %" PRIu64 ", \"time_ns\": %" PRIu64
            ", \"pause_ns\": %" PRIu64 ", \"walk_ns\": ",
            d->header.pid, d->header.time_ns, d->header.pause_ns);
    if (d->have_end)
        fprintf(out, "%" PRIu64, d->walk_ns);
    else
        fputs("null", out);
    fputs(", ", out);
    key(out, "python");
    mh_json_put_str(out, d->header.python.s, d->header.python.n);
    fputs(", ", out);
    key(out, "capture");
    mh_json_put_str(out, d->header.capture.s, d->header.capture.n);
    fprintf(out,
            ", \"sample_interval\": %" PRIu64 ", \"objects\": %" PRIu32
            ", \"bytes\": %" PRIu64 ", \"edges\": %" PRIu32
            ", \"dangling_edges\": %" PRIu32 ", \"roots\": %" PRIu32
            ", \"complete\": %s, \"truncated\": %s",
            d->header.sample_interval, d->nobjs, bytes, d->nedges, d->dangling,
            d->nroots, d->have_end ? "true" : "false",
            d->truncated ? "true" : "false");
    fprintf(out,
            ", \"reached\": {\"count\": %" PRIu64 ", \"bytes\": %" PRIu64
            "}, \"gc_cannot_see\": {\"count\": %" PRIu64
            ", \"bytes\": %" PRIu64 ", \"held_count\": %" PRIu64
            ", \"held_bytes\": %" PRIu64 "}, \"garbage\": {\"count\": %" PRIu64
            ", \"bytes\": %" PRIu64 "}, \"unfollowed\": %" PRIu64
            ", \"implausible_sizes\": %" PRIu64 "}",
            g->count[MH_REACH_ROOT], g->bytes[MH_REACH_ROOT],
            g->count[MH_REACH_EXT], g->bytes[MH_REACH_EXT],
            g->count[MH_REACH_HELD], g->bytes[MH_REACH_HELD],
            g->count[MH_REACH_GARBAGE], g->bytes[MH_REACH_GARBAGE],
            g->incomplete, v->a->bad_sizes);
}

static void
lu_list(FILE *out, const struct mh_heap_view *v,
        const struct mh_unreachable *l)
{
    static const char *const why[] = {"not_walked", "gc_cannot_see",
                                      "garbage"};
    fputs("[", out);
    uint32_t n = shown(v, l->n);
    for (uint32_t i = 0; i < n; i++) {
        const struct mh_unreachable_row *r = &l->rows[i];
        fprintf(out,
                "%s\n    {\"stack\": %" PRIu64 ", \"type\": ", i ? "," : "",
                r->stack);
        if (r->group == UINT32_MAX)
            fputs("null", out);
        else
            put_s(out, type_of(v, r->group));
        fprintf(out,
                ", \"reason\": \"%s\", \"blocks\": %" PRIu64 ", \"count\": ",
                why[r->reason], r->blocks);
        put_est(out, r->est_count);
        fputs(", \"bytes\": ", out);
        put_est(out, r->est_bytes);
        fputs(", \"frames\": ", out);
        uint32_t depth;
        if (!mh_unreachable_stack(l, r, &depth)) {
            fputs("null}", out);
            continue;
        }
        fputs("[", out);
        for (uint32_t k = 0; k < depth; k++) {
            struct mh_unreachable_frame f;
            mh_unreachable_frame(l, r, k, &f);
            fputs(k ? ", {" : "{", out);
            key(out, "file");
            put_s(out, f.file);
            fputs(", ", out);
            key(out, "line");
            fprintf(out, "%u, ", f.line);
            key(out, "function");
            put_s(out, f.function);
            fputs("}", out);
        }
        fputs("]}", out);
    }
    fputs(n ? "\n  ]" : "]", out);
}

static int
done(FILE *out)
{
    fputs("\n", out);
    return ferror(out) ? MH_EIO : MH_OK;
}

static void
type_rows(FILE *out, const struct mh_heap_view *v,
          const struct mh_heap_type_row *rows, uint32_t count)
{
    fputs("[", out);
    uint32_t n = shown(v, count);
    for (uint32_t i = 0; i < n; i++) {
        const struct mh_heap_type_row *r = &rows[i];
        fputs(i ? ",\n    {" : "\n    {", out);
        key(out, "type");
        put_s(out, type_of(v, r->group));
        fprintf(out,
                ", \"count\": %" PRIu64 ", \"bytes\": %" PRIu64
                ", \"retained_bytes\": %" PRIu64 "}",
                r->count, r->bytes, r->retained);
    }
    fputs(n ? "\n  ]" : "]", out);
}

int
mh_heap_json_census(FILE *out, const struct mh_heap_view *v,
                    const struct mh_heap_census *c)
{
    fputs("{\n  \"dump\": ", out);
    dump_obj(out, v);
    fprintf(out,
            ",\n  \"count\": %" PRIu64 ", \"bytes\": %" PRIu64
            ", \"ntypes\": %" PRIu32 ",\n  \"types\": ",
            c->count, c->bytes, c->n);
    type_rows(out, v, c->rows, c->n);
    fputs(",\n  \"gc_cannot_see\": ", out);
    type_rows(out, v, c->ext, c->next);
    fputs(",\n  \"live_unreachable\": ", out);
    lu_list(out, v, &c->lu);
    fputs("\n}", out);
    return done(out);
}

int
mh_heap_json_diff(FILE *out, const struct mh_heap_view *old,
                  const struct mh_heap_view *cur,
                  const struct mh_heap_diff *df)
{
    fputs("{\n  \"old\": ", out);
    dump_obj(out, old);
    fputs(",\n  \"new\": ", out);
    dump_obj(out, cur);
    fprintf(out,
            ",\n  \"new_count\": %" PRIu64 ", \"new_bytes\": %" PRIu64
            ",\n  \"types\": [",
            df->new_count, df->new_bytes);
    uint32_t n = shown(cur, df->n);
    for (uint32_t i = 0; i < n; i++) {
        const struct mh_heap_diff_row *r = &df->rows[i];
        fputs(i ? ",\n    {" : "\n    {", out);
        key(out, "type");
        put_s(out, type_of(cur, r->group));
        fprintf(out,
                ", \"count_delta\": %" PRId64 ", \"bytes_delta\": %" PRId64
                ", \"new_count\": %" PRIu64 ", \"new_bytes\": %" PRIu64
                ", \"old_count\": %" PRIu64 ", \"old_bytes\": %" PRIu64
                ", \"count\": %" PRIu64 ", \"bytes\": %" PRIu64 "}",
                r->count_delta, r->bytes_delta, r->new_count, r->new_bytes,
                r->old_count, r->old_bytes, r->count, r->bytes);
    }
    fputs(n ? "\n  ]\n}" : "]\n}", out);
    return done(out);
}

static void
path_rows(FILE *out, const struct mh_heap_view *v, const struct mh_heap_why *w,
          int rooted)
{
    static const char *const reason[] = {"rooted", "gc_cannot_see", "garbage"};
    uint32_t k = 0;
    fputs("[", out);
    for (uint32_t i = 0; i < w->paths.n; i++) {
        const struct mh_heap_path_row *r = &w->paths.rows[i];
        if ((r->kind == MH_PATH_ROOTED) != rooted)
            continue;
        if ((v->top && k >= v->top) || !r->path)
            break;
        fputs(k++ ? ",\n    {" : "\n    {", out);
        key(out, "path");
        put_s(out, r->path);
        fprintf(out, ", \"count\": %" PRIu64 ", \"bytes\": %" PRIu64, r->count,
                r->bytes);
        if (!rooted)
            fprintf(out, ", \"reason\": \"%s\"", reason[r->kind]);
        fputs("}", out);
    }
    fputs(k ? "\n  ]" : "]", out);
}

int
mh_heap_json_why(FILE *out, const struct mh_heap_view *v, const char *by,
                 const char *value, const struct mh_heap_why *w)
{
    fputs("{\n  \"dump\": ", out);
    dump_obj(out, v);
    fputs(",\n  \"selection\": {\"by\": ", out);
    put_s(out, by);
    fputs(", \"value\": ", out);
    if (value)
        put_s(out, value);
    else
        fputs("null", out);
    fprintf(out,
            ", \"count\": %" PRIu64 ", \"bytes\": %" PRIu64
            ", \"reached_count\": %" PRIu64 ", \"reached_bytes\": %" PRIu64
            "},\n  \"paths\": ",
            w->count, w->bytes, w->count_by[MH_REACH_ROOT],
            w->bytes_by[MH_REACH_ROOT]);
    path_rows(out, v, w, 1);
    fputs(",\n  \"unreachable\": ", out);
    path_rows(out, v, w, 0);
    fputs(",\n  \"live_unreachable\": ", out);
    lu_list(out, v, &w->lu);
    fputs("\n}", out);
    return done(out);
}

int
mh_heap_json_top(FILE *out, const struct mh_heap_view *v,
                 const struct mh_heap_top *t)
{
    const struct mh_heap_image *d = &v->a->dump;
    fputs("{\n  \"dump\": ", out);
    dump_obj(out, v);
    fputs(",\n  \"retainers\": [", out);
    for (uint32_t i = 0; i < t->n; i++) {
        const struct mh_heap_top_row *r = &t->rows[i];
        fputs(i ? ",\n    {" : "\n    {", out);
        key(out, "type");
        put_s(out, mh_heap_type_name(d, r->obj));
        fprintf(out,
                ", \"address\": \"0x%" PRIx64 "\", \"bytes\": %" PRIu64
                ", \"retained_bytes\": %" PRIu64
                ", \"retained_count\": %" PRIu32 ", \"path\": ",
                d->addr[r->obj], d->size[r->obj], r->retained, r->rcount);
        put_s(out, r->path);
        fputs(", \"holds\": [", out);
        for (uint32_t k = 0; k < r->nholds; k++) {
            fputs(k ? ", {" : "{", out);
            key(out, "type");
            put_s(out, type_of(v, r->holds[k].group));
            fprintf(out, ", \"count\": %" PRIu64 ", \"bytes\": %" PRIu64 "}",
                    r->holds[k].count, r->holds[k].bytes);
        }
        fputs("]}", out);
    }
    fputs(t->n ? "\n  ]\n}" : "]\n}", out);
    return done(out);
}
