/* The joined leak report as text: per process with two dumps, one screen
 * that says what grows, where it was allocated and who holds it, then
 * what leaked below Python. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "heap_section.h"
#include "text.h"

#define SHOW_TYPES 5
#define SHOW_SITES 3
#define SHOW_PATHS 3
#define SHOW_LEAKS 6

/* Paths under the current directory are shown relative to it. */
static const char *
shown(const char *path)
{
    static char cwd[PATH_MAX];
    static int have = -1;
    if (have < 0)
        have = getcwd(cwd, sizeof(cwd)) != NULL;
    size_t n = have ? strlen(cwd) : 0;
    if (n > 1 && !strncmp(path, cwd, n) && path[n] == '/')
        return path + n + 1;
    return path;
}

static void
signed_bytes(char *buf, size_t n, double bytes)
{
    char b[32];
    mh_text_bytes(b, sizeof(b), fabs(bytes));
    snprintf(buf, n, "%s%s", bytes < 0 ? "-" : "+", b);
}

static void
grouped(char *buf, size_t n, double v)
{
    /* 1234567 -> "1,234,567" */
    char digits[32];
    long long x = llround(fabs(v));
    int k = snprintf(digits, sizeof(digits), "%lld", x);
    size_t o = 0;
    if (v < 0 && o + 1 < n)
        buf[o++] = '-';
    for (int i = 0; i < k && o + 2 < n; i++) {
        if (i && (k - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
}

static void
site_text(FILE *out, const struct mh_heap_section *j,
          const struct mh_heap_section_site *s)
{
    if (!s->file) {
        fputs("(no Python stack)", out);
        return;
    }
    fprintf(out, "%s:%u in %s", shown(mh_heap_section_str(j, s->file)),
            s->line, mh_heap_section_str(j, s->function));
    if (s->user_file)
        fprintf(out, " (from %s:%u in %s)",
                shown(mh_heap_section_str(j, s->user_file)), s->user_line,
                mh_heap_section_str(j, s->user_function));
}

static void
proc_text(FILE *out, const struct mh_heap_section *j,
          const struct mh_heap_section_proc *p)
{
    char b1[48], b2[48], b3[48], b4[48];
    const struct mh_heap_section_dump *o = &j->dumps[p->old_dump];
    const struct mh_heap_section_dump *n = &j->dumps[p->new_dump];
    mh_text_duration(b1, sizeof(b1), p->seconds);
    fprintf(out,
            "\nheap growth of process %llu: %s (at %.1fs) -> %s (at "
            "%.1fs), %s apart\n",
            (unsigned long long)p->pid, shown(mh_heap_section_str(j, o->path)),
            o->t, shown(mh_heap_section_str(j, n->path)), n->t, b1);
    grouped(b1, sizeof(b1), (double)p->new_objects);
    grouped(b2, sizeof(b2), (double)p->new_objects - (double)p->old_objects);
    mh_text_bytes(b3, sizeof(b3), (double)p->new_bytes);
    signed_bytes(b4, sizeof(b4), (double)p->new_bytes - (double)p->old_bytes);
    fprintf(out, "  objects      %s (%s%s), %s shallow (%s)\n", b1,
            p->new_objects >= p->old_objects ? "+" : "", b2, b3, b4);
    if (!p->ntypes)
        fputs("  no type grew\n", out);
    for (size_t t = 0; t < p->ntypes && t < SHOW_TYPES; t++) {
        const struct mh_heap_section_type *ty = &p->types[t];
        signed_bytes(b1, sizeof(b1), (double)ty->bytes_delta);
        grouped(b2, sizeof(b2), (double)ty->count_delta);
        grouped(b3, sizeof(b3), (double)ty->count);
        mh_text_bytes(b4, sizeof(b4), (double)ty->bytes);
        fprintf(out, "\n  %s  %s, %s%s objects (now %s, %s)\n",
                mh_heap_section_str(j, ty->name), b1,
                ty->count_delta >= 0 ? "+" : "", b2, b3, b4);
        for (size_t i = 0; i < ty->nsites && i < SHOW_SITES; i++) {
            const struct mh_heap_section_site *s = &ty->sites[i];
            signed_bytes(b1, sizeof(b1), s->growth_bytes);
            fprintf(out, "    %-14s %10s  ", i ? "" : "allocated at", b1);
            site_text(out, j, s);
            fputc('\n', out);
        }
        if (!ty->nsites)
            fprintf(out, "    %-14s %s\n", "allocated at",
                    p->has_allocs ? "no sampled allocation of this type is "
                                    "live"
                                  : "unknown (the dumps hold no allocations: "
                                    "was the process recording?)");
        for (size_t i = 0; i < ty->npaths && i < SHOW_PATHS; i++) {
            const struct mh_heap_section_path *jp = &ty->paths[i];
            grouped(b2, sizeof(b2), (double)jp->count);
            mh_text_bytes(b1, sizeof(b1), (double)jp->bytes);
            fprintf(out, "    %-14s %10s  %s new: %s\n", i ? "" : "held by",
                    b1, b2, mh_heap_section_str(j, jp->text));
        }
    }
    if (!p->nleaks)
        return;
    fprintf(out,
            "\n  leaked below Python: live blocks no root reaches that "
            "grew since %s%s\n",
            shown(mh_heap_section_str(j, o->path)),
            p->sampled ? " (estimates)" : "");
    for (size_t i = 0; i < p->nleaks && i < SHOW_LEAKS; i++) {
        const struct mh_heap_section_leak *l = &p->leaks[i];
        signed_bytes(b1, sizeof(b1), l->site.growth_bytes);
        grouped(b2, sizeof(b2), l->site.growth_count);
        fprintf(out, "    %10s  %s%s %s %s at ", b1, p->sampled ? "~" : "", b2,
                mh_heap_section_str(j, l->type),
                l->kind == MH_LEAK_HIDDEN        ? "held by references the GC "
                                                   "cannot see"
                : l->kind == MH_LEAK_UNREACHABLE ? "live but unreachable"
                                                 : "unreachable garbage");
        site_text(out, j, &l->site);
        fputc('\n', out);
    }
}

int
mh_heap_section_text_render(FILE *out, const struct mh_heap_section *j)
{
    if (!j->ndumps)
        return MH_OK;
    size_t exist = 0;
    for (size_t i = 0; i < j->ndumps; i++)
        exist += j->dumps[i].exists;
    fprintf(out, "\nheap dumps noted in the capture%s: %zu, %zu still there\n",
            j->ncaptures > 1 ? "s" : "", j->ndumps, exist);
    for (size_t i = 0; i < j->ndumps; i++) {
        const struct mh_heap_section_dump *d = &j->dumps[i];
        if (d->status != MH_JDUMP_BAD && d->exists)
            continue;
        fprintf(out, "  %s: %s\n", shown(mh_heap_section_str(j, d->path)),
                !d->exists  ? "gone"
                : d->reason ? mh_heap_section_str(j, d->reason)
                            : "unreadable");
    }
    if (!j->nprocs) {
        const struct mh_heap_section_dump *d = &j->dumps[j->ndumps - 1];
        fprintf(out,
                "  two complete dumps of a process are needed to see "
                "what grows: take another with 'memhound snapshot "
                "%llu' while it runs\n",
                (unsigned long long)d->pid);
    }
    for (size_t i = 0; i < j->nprocs; i++)
        proc_text(out, j, &j->procs[i]);
    return ferror(out) ? MH_EIO : MH_OK;
}
