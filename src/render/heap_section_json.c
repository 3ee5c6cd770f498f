/* The joined leak report as the "heap" member of the JSON report
 * (docs/report-json.md, "heap"). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "heap_section.h"
#include "json.h"

static void
put_str(FILE *out, const struct mh_heap_section *j, uint32_t id)
{
    const char *s = mh_heap_section_str(j, id);
    mh_json_put_str(out, s, strlen(s));
}

/* A string id, null when 0. */
static void
put_opt(FILE *out, const struct mh_heap_section *j, uint32_t id)
{
    if (id)
        put_str(out, j, id);
    else
        fputs("null", out);
}

static void
site_json(FILE *out, const struct mh_heap_section *j,
          const struct mh_heap_section_site *s)
{
    fputs("\"file\": ", out);
    put_opt(out, j, s->file);
    fputs(", \"line\": ", out);
    if (s->file)
        fprintf(out, "%u", s->line);
    else
        fputs("null", out);
    fputs(", \"function\": ", out);
    put_opt(out, j, s->file ? s->function : 0);
    fputs(", \"user_file\": ", out);
    put_opt(out, j, s->user_file);
    fputs(", \"user_line\": ", out);
    if (s->user_file)
        fprintf(out, "%u", s->user_line);
    else
        fputs("null", out);
    fputs(", \"user_function\": ", out);
    put_opt(out, j, s->user_file ? s->user_function : 0);
    fputs(", \"bytes\": ", out);
    mh_json_put_int(out, s->bytes);
    fputs(", \"count\": ", out);
    mh_json_put_int(out, s->count);
    fputs(", \"growth_bytes\": ", out);
    mh_json_put_int(out, s->growth_bytes);
    fputs(", \"growth_count\": ", out);
    mh_json_put_int(out, s->growth_count);
}

static void
type_json(FILE *out, const struct mh_heap_section *j,
          const struct mh_heap_section_type *t)
{
    fputs("{\"type\": ", out);
    put_str(out, j, t->name);
    fprintf(out,
            ", \"count_delta\": %lld, \"bytes_delta\": %lld, "
            "\"count\": %llu, \"bytes\": %llu,\n         \"sites\": [",
            (long long)t->count_delta, (long long)t->bytes_delta,
            (unsigned long long)t->count, (unsigned long long)t->bytes);
    for (size_t i = 0; i < t->nsites; i++) {
        fputs(i ? ",\n           {" : "\n           {", out);
        site_json(out, j, &t->sites[i]);
        fputs("}", out);
    }
    fputs(t->nsites ? "\n         ],\n         \"paths\": ["
                    : "],\n         \"paths\": [",
          out);
    for (size_t i = 0; i < t->npaths; i++) {
        const struct mh_heap_section_path *p = &t->paths[i];
        fputs(i ? ",\n           {\"path\": " : "\n           {\"path\": ",
              out);
        put_str(out, j, p->text);
        fprintf(out, ", \"count\": %llu, \"bytes\": %llu}",
                (unsigned long long)p->count, (unsigned long long)p->bytes);
    }
    fputs(t->npaths ? "\n         ]}" : "]}", out);
}

static void
proc_json(FILE *out, const struct mh_heap_section *j,
          const struct mh_heap_section_proc *p)
{
    fprintf(out, "{\"pid\": %llu, \"capture\": ", (unsigned long long)p->pid);
    put_str(out, j, p->capture);
    fputs(", \"old\": ", out);
    put_str(out, j, j->dumps[p->old_dump].path);
    fputs(", \"new\": ", out);
    put_str(out, j, j->dumps[p->new_dump].path);
    fprintf(out,
            ", \"seconds\": %.3f,\n       \"old_objects\": %llu, "
            "\"new_objects\": %llu, \"old_bytes\": %llu, "
            "\"new_bytes\": %llu, \"estimated\": %s,\n       "
            "\"types\": [",
            isfinite(p->seconds) ? p->seconds : 0.0,
            (unsigned long long)p->old_objects,
            (unsigned long long)p->new_objects,
            (unsigned long long)p->old_bytes, (unsigned long long)p->new_bytes,
            p->sampled ? "true" : "false");
    for (size_t i = 0; i < p->ntypes; i++) {
        fputs(i ? ",\n        " : "\n        ", out);
        type_json(out, j, &p->types[i]);
    }
    fputs(p->ntypes ? "\n       ],\n       \"leaks\": ["
                    : "],\n       \"leaks\": [",
          out);
    for (size_t i = 0; i < p->nleaks; i++) {
        const struct mh_heap_section_leak *l = &p->leaks[i];
        fputs(i ? ",\n        {\"kind\": " : "\n        {\"kind\": ", out);
        fprintf(out,
                "\"%s\", \"type\": ", mh_heap_section_leak_kind_name(l->kind));
        put_str(out, j, l->type);
        fputs(", ", out);
        site_json(out, j, &l->site);
        fputs("}", out);
    }
    fputs(p->nleaks ? "\n       ]}" : "]}", out);
}

int
mh_heap_section_json_render(FILE *out, const struct mh_heap_section *j)
{
    fputs("\"heap\": {\n    \"dumps\": [", out);
    for (size_t i = 0; i < j->ndumps; i++) {
        const struct mh_heap_section_dump *d = &j->dumps[i];
        fputs(i ? ",\n      {\"path\": " : "\n      {\"path\": ", out);
        put_str(out, j, d->path);
        fputs(", \"capture\": ", out);
        put_str(out, j, d->capture);
        fprintf(out,
                ", \"pid\": %llu, \"t\": %.3f, \"exists\": %s, "
                "\"compared\": %s, \"problem\": ",
                (unsigned long long)d->pid, isfinite(d->t) ? d->t : 0.0,
                d->exists ? "true" : "false",
                d->status == MH_JDUMP_USED ? "true" : "false");
        if (!d->exists)
            fputs("\"gone\"", out);
        else if (d->status == MH_JDUMP_BAD)
            put_str(out, j, d->reason);
        else
            fputs("null", out);
        fputs("}", out);
    }
    fputs(j->ndumps ? "\n    ],\n    \"processes\": ["
                    : "],\n    \"processes\": [",
          out);
    for (size_t i = 0; i < j->nprocs; i++) {
        fputs(i ? ",\n      " : "\n      ", out);
        proc_json(out, j, &j->procs[i]);
    }
    fputs(j->nprocs ? "\n    ]\n  }" : "]\n  }", out);
    return ferror(out) ? MH_EIO : MH_OK;
}
