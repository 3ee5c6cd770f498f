/* analysis/report/: what `memhound report` and `inspect` add on top of
 * the capture analyses: the heap section (this header: a capture read
 * with the heap dumps of its process) and the verdict (verdict.h). It may
 * include analysis/capture/, analysis/heap/, format/ and util/.
 *
 * The joined leak report: a capture and the heap dumps taken of its
 * process, read together. `memhound report` adds it to its output.
 *
 * The agent notes every dump in the capture (MARKER kind 1, text = the
 * dump's path), so a capture says which dumps exist of its process. For
 * a process with two or more complete dumps, the first and the last are
 * compared:
 *   - what grows: types by growth in bytes (shallow), count alongside;
 *   - where it was allocated: the dumps' ALLOC records join the tracker's
 *     live blocks to the objects they hold (block -> object -> type), and
 *     the capture turns their stacks into source lines;
 *   - who holds it: the retention paths of the objects of that type that
 *     are new in the last dump, grouped by shape (paths.h);
 *   - leaks below Python: live blocks that no root reaches, held by
 *     references the GC cannot see or not found by the walk at all (a C
 *     extension's missing DECREF), by allocation site, that grew.
 *
 *   mh_heap_section_init(&j);
 *   for each capture: mh_heap_section_add(&j, path, buf, len);
 *   mh_heap_section_finish(&j, top);
 *   render; mh_heap_section_release(&j);
 *
 * Dumps that are gone or unreadable are listed with the reason, never
 * an error: the report still stands on the capture. */
#ifndef MH_HEAP_SECTION_H
#define MH_HEAP_SECTION_H

#include <stddef.h>
#include <stdint.h>

#include "../../util/msg.h"
#include "../../util/strpool.h"

/* Caps: a capture may name any number of dumps; only these are kept. */
#define MH_HEAP_SECTION_MAX_DUMPS 100000
#define MH_HEAP_SECTION_MAX_STRINGS ((size_t)256 << 20)

/* A dump named by a capture's marker. */
struct mh_heap_section_dump {
    uint32_t path;    /* string id: the path as the marker has it */
    uint32_t capture; /* string id */
    uint64_t pid;
    double t;        /* seconds from the capture's start */
    int exists;      /* the file is there */
    int status;      /* enum mh_heap_section_status, once looked at */
    uint32_t reason; /* string id: why it was not used (0 = none) */
};

enum mh_heap_section_status {
    MH_JDUMP_UNREAD = 0, /* not needed (not first or last) */
    MH_JDUMP_USED = 1,   /* read and compared */
    MH_JDUMP_BAD = 2,    /* unreadable or incomplete: `reason` */
};

struct mh_heap_section_site {
    uint32_t file, function; /* string ids; file 0 = no Python stack */
    uint32_t line;
    /* the innermost frame in the user's own code, when the site is not */
    uint32_t user_file, user_function, user_line;
    double bytes, count;               /* estimated, in the last dump */
    double growth_bytes, growth_count; /* last minus first */
};

struct mh_heap_section_path {
    uint32_t text; /* string id: the grouped path */
    uint64_t count, bytes;
};

struct mh_heap_section_type {
    uint32_t name; /* string id */
    int64_t count_delta, bytes_delta;
    uint64_t count, bytes;              /* in the last dump */
    struct mh_heap_section_site *sites; /* by growth, then bytes */
    size_t nsites;
    struct mh_heap_section_path *paths; /* by bytes */
    size_t npaths;
};

/* Why a live block counts as leaked (unreachable.h's reasons). */
enum mh_heap_section_leak_kind {
    /* the walk found the object, no root reaches it, and its reference
     * count is above the references found (or such an object holds it):
     * someone the GC cannot see holds it */
    MH_LEAK_HIDDEN = 0,
    /* the tracker's live block holds an object no walk found at all:
     * live but unreachable (a str or int whose reference C code leaked) */
    MH_LEAK_UNREACHABLE = 1,
    /* the walk found the object but nothing found holds it: a cycle the
     * collector has not freed yet, or held through references the walker
     * did not name */
    MH_LEAK_GARBAGE = 2,
};

struct mh_heap_section_leak {
    enum mh_heap_section_leak_kind kind;
    uint32_t type; /* string id; "?" when the block's type is unknown */
    struct mh_heap_section_site site;
};

struct mh_heap_section_proc {
    uint64_t pid;
    uint32_t capture;
    uint32_t old_dump, new_dump; /* indices into dumps[] */
    double seconds;              /* between the two dumps */
    uint64_t old_objects, new_objects;
    uint64_t old_bytes, new_bytes;
    int sampled;    /* ALLOC weights are estimates (sampling mode) */
    int has_allocs; /* the dumps carry ALLOC records */
    struct mh_heap_section_type *types; /* growing types, by bytes_delta */
    size_t ntypes;
    struct mh_heap_section_leak *leaks; /* by growth_bytes */
    size_t nleaks;
};

/* How the section reaches the heap dumps a capture names. The caller
 * (cli/report.c's mh_report_dump_files) opens the files, so analysis does
 * no file I/O. */
struct mh_heap_section_files {
    /* 1 when `path` names a regular file. */
    int (*exists)(const char *path);
    /* Maps the heap dump at `path`: MH_OK with its bytes in
     * *data[0..*len), held until unmap(*handle); otherwise an error code
     * with the reason in why[0..n). */
    int (*map)(const char *path, const uint8_t **data, size_t *len,
               void **handle, char *why, size_t n);
    void (*unmap)(void *handle);
};

struct mh_heap_section {
    const struct mh_heap_section_files *files; /* borrowed */
    struct mh_strpool strings;
    struct mh_heap_section_dump
        *dumps; /* in capture order, then marker order */
    size_t ndumps, dumps_cap;
    struct mh_heap_section_proc *procs; /* by total growth, largest first */
    size_t nprocs, procs_cap;
    size_t ncaptures; /* captures added */
    char error[300];
};

/* Sets up an empty section that reaches dumps through `files`
 * (borrowed; it outlives j). */
void mh_heap_section_init(struct mh_heap_section *j,
                          const struct mh_heap_section_files *files);
/* Frees everything the join holds. */
void mh_heap_section_release(struct mh_heap_section *j);

/* Reads the heap-dump markers of the capture in buf[0..len) (`path`
 * names it; dump paths are taken as written, relative ones against the
 * capture's directory) and, when two or more of the dumps exist, joins
 * the first and the last complete ones with it. Returns MH_OK (also when
 * dumps are missing or bad: they say why), or MH_ENOMEM / MH_ETOOBIG /
 * the capture reader's error with j->error set. At most `max_types`
 * growing types are kept per process (0 = 10). */
int mh_heap_section_add(struct mh_heap_section *j, const char *path,
                        const uint8_t *buf, size_t len,
                        size_t max_types) MH_MUST_USE;

/* Orders the processes by growth. */
void mh_heap_section_finish(struct mh_heap_section *j);

static inline const char *
mh_heap_section_str(const struct mh_heap_section *j, uint32_t id)
{
    return mh_strpool_get(&j->strings, id);
}

/* The kind as the JSON report names it. */
static inline const char *
mh_heap_section_leak_kind_name(enum mh_heap_section_leak_kind k)
{
    return k == MH_LEAK_HIDDEN        ? "held_by_hidden_references"
           : k == MH_LEAK_UNREACHABLE ? "unreachable"
                                      : "garbage";
}

#endif
