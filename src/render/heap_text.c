/* The heap analyses as text (heap_text.h). */
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "../util/buf.h"
#include "heap_text.h"
#include "text.h"

/* Type columns are as wide as the longest name shown, within these. */
#define TYPE_MIN 20
#define TYPE_MAX 60

static void
put_safe(FILE *out, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        fputc(c < 0x20 || c == 0x7f ? '?' : c, out);
    }
}

/* A type name padded (or cut, with "...") to `w` columns. */
static void
put_type(FILE *out, const char *s, int w)
{
    size_t n = strlen(s);
    if (n > (size_t)w) {
        char buf[TYPE_MAX + 1];
        snprintf(buf, sizeof(buf), "%.*s...", w - 3, s);
        put_safe(out, buf);
        return;
    }
    put_safe(out, s);
    fprintf(out, "%*s", w - (int)n, "");
}

static const char *
bytes_str(char *buf, size_t n, double b)
{
    mh_text_bytes(buf, n, b);
    return buf;
}

static const char *
type_of(const struct mh_heap_view *v, uint32_t group)
{
    return group < v->types->n ? v->types->names[group] : "?";
}

/* The width for a column of the type names of `rows`, `stride` bytes
 * apart, each starting with its group. */
_Static_assert(offsetof(struct mh_heap_type_row, group) == 0, "group first");
_Static_assert(offsetof(struct mh_heap_diff_row, group) == 0, "group first");
static int
type_width(const struct mh_heap_view *v, const void *rows, size_t stride,
           uint32_t n)
{
    size_t w = TYPE_MIN;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t g;
        memcpy(&g, (const char *)rows + i * stride, sizeof(g));
        size_t len = strlen(type_of(v, g));
        if (len > w)
            w = len;
    }
    return (int)(w > TYPE_MAX ? TYPE_MAX : w);
}

static uint32_t
shown(const struct mh_heap_view *v, uint32_t n)
{
    return v->top && v->top < n ? v->top : n;
}

static void
header(FILE *out, const struct mh_heap_view *v)
{
    const struct mh_heap_image *d = &v->a->dump;
    const struct mh_heap_header *h = &d->header;
    char when[64] = "?", b[32];
    time_t t = (time_t)(h->time_ns / 1000000000u);
    struct tm tm;
    if (h->time_ns && gmtime_r(&t, &tm))
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
    uint64_t bytes = 0;
    for (uint32_t o = 0; o < d->nobjs; o++)
        bytes += d->size[o];
    fputs("heap dump '", out);
    put_safe(out, v->path);
    fprintf(out, "': pid %" PRIu64 ", taken %s, Python ", h->pid, when);
    const char *py = h->python.s;
    size_t pn = strcspn(py, " \n");
    fprintf(out, "%.*s\n", (int)pn, py);
    fprintf(out,
            "  %" PRIu32 " objects (%s), %" PRIu32 " references, %" PRIu32
            " roots; fork pause %.1f ms",
            d->nobjs, bytes_str(b, sizeof(b), (double)bytes), d->nedges,
            d->nroots, (double)h->pause_ns / 1e6);
    if (d->have_end)
        fprintf(out, ", walk %.2f s", (double)d->walk_ns / 1e9);
    fputc('\n', out);
    if (d->truncated)
        fprintf(out,
                "  warning: the dump is cut short (the walker was stopped?): "
                "it ends inside the chunk at offset %" PRIu64
                ", whose %" PRIu64
                " bytes are unusable; objects written after them are "
                "missing\n",
                d->truncated_at, d->file_bytes - d->truncated_at);
    else if (!d->have_end)
        fputs("  warning: the dump has no END record: the walk did not "
              "finish\n",
              out);
    if (v->a->bad_sizes)
        fprintf(out,
                "  warning: %" PRIu64 " objects claim a size over 1 TiB (a "
                "walker error): counted as 0 bytes\n",
                v->a->bad_sizes);
    if (d->dangling)
        fprintf(out,
                "  note: %" PRIu32 " references point at objects the dump "
                "does not have\n",
                d->dangling);
    if (v->a->graph.incomplete)
        fprintf(out,
                "  note: %" PRIu64 " reachable objects have a layout the "
                "walker could not follow; what they hold may show as "
                "unreachable\n",
                v->a->graph.incomplete);
}

static void
lu_section(FILE *out, const struct mh_heap_view *v,
           const struct mh_unreachable *l)
{
    char b[32];
    if (!l->n)
        return;
    fprintf(out,
            "\nlive but unreachable: blocks the tracker holds as live that "
            "no root reaches%s\n",
            v->a->dump.header.sample_interval ? " (estimated from samples)"
                                              : "");
    fprintf(out, "%12s %10s %7s  %-*s %-14s %s\n", "bytes", "count", "blocks",
            20, "type", "why", "allocated at");
    struct mh_buf w;
    mh_buf_init(&w, 1024);
    uint32_t n = shown(v, l->n);
    for (uint32_t i = 0; i < n; i++) {
        const struct mh_unreachable_row *r = &l->rows[i];
        static const char *const why[] = {"not walked", "GC cannot see",
                                          "garbage"};
        fprintf(out, "%12s %10.0f %7" PRIu64 "  ",
                bytes_str(b, sizeof(b), r->est_bytes), r->est_count,
                r->blocks);
        put_type(out, r->group == UINT32_MAX ? "?" : type_of(v, r->group), 20);
        fprintf(out, " %-14s ", why[r->reason]);
        mh_buf_reset(&w);
        if (mh_unreachable_where(l, r, 3, &w) != MH_OK) {
            /* the frames that fit are shown */
        }
        if (mh_buf_put_u8(&w, 0) == MH_OK)
            put_safe(out, (const char *)w.data);
        fputc('\n', out);
    }
    mh_buf_release(&w);
    if (n < l->n)
        fprintf(out, "...and %" PRIu32 " more groups\n", l->n - n);
    if (!l->cap && l->n)
        fprintf(out,
                "(stack ids are the capture's: give --capture %s to "
                "name the lines)\n",
                v->a->dump.header.capture.n ? v->a->dump.header.capture.s
                                            : "CAPTURE");
}

static int
done(FILE *out)
{
    return ferror(out) ? MH_EIO : MH_OK;
}

/* `lead`, a header whose last column is `last`, and the first rows of a
 * census table (as many as --top shows); returns how many it wrote. */
static uint32_t
type_table(FILE *out, const struct mh_heap_view *v,
           const struct mh_heap_type_row *rows, uint32_t count,
           const char *lead, const char *last)
{
    char b1[32], b2[32];
    uint32_t n = shown(v, count);
    int tw = type_width(v, rows, sizeof(*rows), n);
    fprintf(out, "%s%-*s %10s %12s %12s\n", lead, tw, "type", "count", "bytes",
            last);
    for (uint32_t i = 0; i < n; i++) {
        const struct mh_heap_type_row *r = &rows[i];
        put_type(out, type_of(v, r->group), tw);
        fprintf(out, " %10" PRIu64 " %12s %12s\n", r->count,
                bytes_str(b1, sizeof(b1), (double)r->bytes),
                bytes_str(b2, sizeof(b2), (double)r->retained));
    }
    return n;
}

int
mh_heap_text_census(FILE *out, const struct mh_heap_view *v,
                    const struct mh_heap_census *c)
{
    const struct mh_heap_graph *g = &v->a->graph;
    char b1[32], b2[32], b3[32], b4[32];
    header(out, v);
    uint32_t n = type_table(out, v, c->rows, c->n, "\n", "retained");
    if (n < c->n) {
        uint64_t cnt = 0, bytes = 0;
        for (uint32_t i = n; i < c->n; i++) {
            cnt += c->rows[i].count;
            bytes += c->rows[i].bytes;
        }
        fprintf(out,
                "...and %" PRIu32 " more types (%" PRIu64 " objects, %s)\n",
                c->n - n, cnt, bytes_str(b1, sizeof(b1), (double)bytes));
    }
    fprintf(out,
            "\nreached from roots: %" PRIu64 " objects (%s)\nheld by "
            "references the GC cannot see: %" PRIu64 " (%s), and what they "
            "hold: %" PRIu64 " (%s)\nunreachable garbage: %" PRIu64 " (%s)\n",
            g->count[MH_REACH_ROOT],
            bytes_str(b1, sizeof(b1), (double)g->bytes[MH_REACH_ROOT]),
            g->count[MH_REACH_EXT],
            bytes_str(b2, sizeof(b2), (double)g->bytes[MH_REACH_EXT]),
            g->count[MH_REACH_HELD],
            bytes_str(b3, sizeof(b3), (double)g->bytes[MH_REACH_HELD]),
            g->count[MH_REACH_GARBAGE],
            bytes_str(b4, sizeof(b4), (double)g->bytes[MH_REACH_GARBAGE]));
    if (c->next) {
        fputs("\nheld by references the GC cannot see (no root reaches "
              "them, and their reference count\nexceeds the references "
              "found: a C extension's missing DECREF, a C global):\n",
              out);
        uint32_t m = type_table(out, v, c->ext, c->next, "", "keeps alive");
        if (m < c->next)
            fprintf(out, "...and %" PRIu32 " more types\n", c->next - m);
        fputs("('memhound heap why DUMP --unreachable' shows what they "
              "hold)\n",
              out);
    }
    lu_section(out, v, &c->lu);
    return done(out);
}

static void
signed_bytes(char *buf, size_t n, int64_t x)
{
    mh_text_bytes(buf + 1, n - 1, (double)(x < 0 ? -x : x));
    buf[0] = x < 0 ? '-' : '+';
}

int
mh_heap_text_diff(FILE *out, const struct mh_heap_view *old,
                  const struct mh_heap_view *cur,
                  const struct mh_heap_diff *df)
{
    char b1[32], b2[32], b3[32];
    fputs("old: ", out);
    header(out, old);
    fputs("new: ", out);
    header(out, cur);
    int64_t dc = (int64_t)cur->a->dump.nobjs - (int64_t)old->a->dump.nobjs;
    int64_t db = 0;
    for (uint32_t i = 0; i < df->n; i++)
        db += df->rows[i].bytes_delta;
    signed_bytes(b1, sizeof(b1), db);
    fprintf(out,
            "\n%+" PRId64 " objects, %s; new since the old dump and still "
            "alive: %" PRIu64 " objects, %s\n",
            dc, b1, df->new_count,
            bytes_str(b2, sizeof(b2), (double)df->new_bytes));
    int tw = type_width(cur, df->rows, sizeof(*df->rows), shown(cur, df->n));
    fprintf(out, "\n%-*s %10s %12s %10s %12s %10s\n", tw, "type", "count",
            "bytes", "new", "new bytes", "now");
    /* The types that grew or have new objects, in the diff's order (by
     * bytes_delta); unchanged and shrinking types are summed up. */
    uint32_t k = 0, more = 0, same = 0, shrank = 0;
    int64_t shrank_bytes = 0;
    for (uint32_t i = 0; i < df->n; i++) {
        const struct mh_heap_diff_row *r = &df->rows[i];
        if (r->bytes_delta < 0 || (r->count_delta < 0 && !r->new_count)) {
            shrank++;
            shrank_bytes += r->bytes_delta;
            continue;
        }
        if (!r->bytes_delta && !r->count_delta && !r->new_count) {
            same++;
            continue;
        }
        if (cur->top && k >= cur->top) {
            more++;
            continue;
        }
        k++;
        put_type(out, type_of(cur, r->group), tw);
        signed_bytes(b1, sizeof(b1), r->bytes_delta);
        fprintf(out, " %+10" PRId64 " %12s %10" PRIu64 " %12s %10" PRIu64 "\n",
                r->count_delta, b1, r->new_count,
                bytes_str(b2, sizeof(b2), (double)r->new_bytes), r->count);
    }
    if (more)
        fprintf(out, "...and %" PRIu32 " more types that grew\n", more);
    signed_bytes(b3, sizeof(b3), shrank_bytes);
    fprintf(out, "(%" PRIu32 " types unchanged; %" PRIu32 " shrank, %s)\n",
            same, shrank, b3);
    fputs("\n('new' = at an address the old dump had no object of that "
          "type: a lower bound,\nsince a freed address can be reused)\n",
          out);
    return done(out);
}

static void
paths_table(FILE *out, const struct mh_heap_view *v,
            const struct mh_heap_why *w, int rooted)
{
    char b[32];
    uint32_t k = 0, more = 0;
    uint64_t more_count = 0, more_bytes = 0;
    for (uint32_t i = 0; i < w->paths.n; i++) {
        const struct mh_heap_path_row *r = &w->paths.rows[i];
        if ((r->kind == MH_PATH_ROOTED) != rooted)
            continue;
        if ((v->top && k >= v->top) || !r->path) {
            more++;
            more_count += r->count;
            more_bytes += r->bytes;
            continue;
        }
        k++;
        fprintf(out, "%12s %10" PRIu64 "  ",
                bytes_str(b, sizeof(b), (double)r->bytes), r->count);
        put_safe(out, r->path);
        fputc('\n', out);
    }
    if (more)
        fprintf(out,
                "...and %" PRIu32 " more paths (%" PRIu64 " objects, %s)\n",
                more, more_count, bytes_str(b, sizeof(b), (double)more_bytes));
}

int
mh_heap_text_why(FILE *out, const struct mh_heap_view *v, const char *what,
                 const struct mh_heap_why *w)
{
    char b1[32], b2[32];
    header(out, v);
    fputc('\n', out);
    put_safe(out, what);
    fprintf(out, ": %" PRIu64 " objects, %s\n", w->count,
            bytes_str(b1, sizeof(b1), (double)w->bytes));
    if (!w->count && !w->lu.n)
        return done(out);
    uint64_t unreached = w->count - w->count_by[MH_REACH_ROOT];
    if (w->count_by[MH_REACH_ROOT]) {
        fprintf(out,
                "\nheld from roots: %" PRIu64 " objects, %s, by shortest "
                "path:\n%12s %10s  %s\n",
                w->count_by[MH_REACH_ROOT],
                bytes_str(b1, sizeof(b1), (double)w->bytes_by[MH_REACH_ROOT]),
                "bytes", "count", "path");
        paths_table(out, v, w, 1);
    }
    if (unreached) {
        uint64_t ub = w->bytes - w->bytes_by[MH_REACH_ROOT];
        fprintf(out,
                "\nno root reaches %" PRIu64 " objects, %s: held by "
                "references the GC cannot see: %" PRIu64
                " (%s), unreachable garbage: %" PRIu64 "\n%12s %10s  %s\n",
                unreached, bytes_str(b1, sizeof(b1), (double)ub),
                w->count_by[MH_REACH_EXT] + w->count_by[MH_REACH_HELD],
                bytes_str(b2, sizeof(b2),
                          (double)(w->bytes_by[MH_REACH_EXT] +
                                   w->bytes_by[MH_REACH_HELD])),
                w->count_by[MH_REACH_GARBAGE], "bytes", "count", "path");
        paths_table(out, v, w, 0);
    }
    lu_section(out, v, &w->lu);
    return done(out);
}

int
mh_heap_text_top(FILE *out, const struct mh_heap_view *v,
                 const struct mh_heap_top *t)
{
    const struct mh_heap_image *d = &v->a->dump;
    char b1[32], b2[32];
    header(out, v);
    fputs("\nobjects whose removal frees the most (retained: what only "
          "they keep alive):\n",
          out);
    for (uint32_t i = 0; i < t->n; i++) {
        const struct mh_heap_top_row *r = &t->rows[i];
        fprintf(out, "\n%2" PRIu32 ". %s retained (%" PRIu32 " objects) by ",
                i + 1, bytes_str(b1, sizeof(b1), (double)r->retained),
                r->rcount);
        put_safe(out, mh_heap_type_name(d, r->obj));
        fprintf(out, " at 0x%" PRIx64 " (%s itself)\n    ", d->addr[r->obj],
                bytes_str(b2, sizeof(b2), (double)d->size[r->obj]));
        put_safe(out, r->path);
        fputc('\n', out);
        if (r->nholds) {
            fputs("    holds:", out);
            for (uint32_t k = 0; k < r->nholds; k++) {
                fprintf(out, "%s %" PRIu64 " ", k ? "," : "",
                        r->holds[k].count);
                put_safe(out, type_of(v, r->holds[k].group));
                fprintf(out, " (%s)",
                        bytes_str(b1, sizeof(b1), (double)r->holds[k].bytes));
            }
            fputc('\n', out);
        }
    }
    return done(out);
}
