/* Reading /proc and the cgroup files, for the commands that watch
 * processes (guard, top, snapshot, inspect): whether a process exists, its
 * parent, start time and CPU time (/proc/<pid>/stat), its RSS and USS
 * (/proc/<pid>/smaps_rollup), its children, its command line, and the
 * memory limit and usage of its cgroup (v2 memory.max / memory.current,
 * or v1 memory.limit_in_bytes / memory.usage_in_bytes).
 *
 * The parsers take text and do no I/O, so tests feed them any file
 * content; the readers open the file and call them. Every reader returns
 * MH_OK, or MH_EIO with errno set (ENOENT or ESRCH: the process is gone),
 * or MH_EFORMAT for content it cannot parse. */
#ifndef MH_PROC_H
#define MH_PROC_H

#include <stddef.h>
#include <stdint.h>

#include "msg.h"

/* Whether process `pid` exists: kill(pid, 0) does not fail with ESRCH
 * (a process we may not signal exists). */
int mh_proc_exists(long pid);

/* What guard and top need from /proc/<pid>/stat (proc(5) field numbers). */
struct mh_proc_stat {
    long pid;                     /* 1 */
    char comm[64];                /* 2, without the parentheses */
    char state;                   /* 3: R, S, D, Z (zombie), ... */
    long ppid;                    /* 4 */
    unsigned long long utime;     /* 14, clock ticks */
    unsigned long long stime;     /* 15, clock ticks */
    unsigned long long starttime; /* 22, clock ticks after boot */
    unsigned long long rss_pages; /* 24 */
};

/* Parses the text of /proc/<pid>/stat. comm may hold spaces and ')'; it
 * ends at the last ')'. */
int mh_proc_parse_stat(const char *text, size_t len,
                       struct mh_proc_stat *st) MH_MUST_USE;
int mh_proc_read_stat(long pid, struct mh_proc_stat *st) MH_MUST_USE;

/* Memory of one process in bytes, from smaps_rollup (or smaps, whose
 * per-mapping lines are summed the same way). USS is the private part
 * (Private_Clean + Private_Dirty): what would be freed if the process
 * ended. */
struct mh_proc_mem {
    uint64_t rss, pss, uss, swap;
};

int mh_proc_parse_smaps(const char *text, size_t len,
                        struct mh_proc_mem *m) MH_MUST_USE;
/* Reads smaps_rollup (Linux 4.14+), else smaps. Costs the kernel a walk
 * of the process's page tables: read it when USS is needed, take RSS
 * from the stat line otherwise. */
int mh_proc_read_mem(long pid, struct mh_proc_mem *m) MH_MUST_USE;

/* The children of `pid` (of all its threads), at most `max` of them, into
 * out; *n gets how many. Reads /proc/<pid>/task/<tid>/children when the
 * kernel has it (CONFIG_PROC_CHILDREN), else scans every /proc/<n>/stat
 * for the parent pid. MH_ETOOBIG when there are more than `max`, out then
 * holds the first `max`. */
int mh_proc_children(long pid, long *out, size_t max, size_t *n) MH_MUST_USE;

/* The command line as NUL-separated words into buf (at most n bytes, the
 * last word cut if it does not fit, always NUL-terminated); *len is the
 * number of bytes used. Empty for a kernel thread or a zombie. */
int mh_proc_read_cmdline(long pid, char *buf, size_t n,
                         size_t *len) MH_MUST_USE;

/* Seconds since boot (CLOCK_BOOTTIME), the clock starttime counts in. */
double mh_proc_uptime(void);
/* Clock ticks per second (sysconf(_SC_CLK_TCK)) and the page size. */
long mh_proc_ticks_per_second(void);
long mh_proc_page_size(void);

/* The memory cgroup of a process and its limit. */
#define MH_CGROUP_NO_LIMIT UINT64_MAX
struct mh_cgroup_mem {
    int version;            /* 1 or 2 */
    char dir[512];          /* the cgroup's directory under /sys/fs/cgroup */
    uint64_t limit;         /* the smallest limit of it and its ancestors,
                               MH_CGROUP_NO_LIMIT when there is none */
    uint64_t current;       /* memory.current (v1: usage_in_bytes) */
    uint64_t inactive_file; /* from memory.stat: page cache the kernel
                               reclaims before it OOM-kills */
};

/* Finds the directory of the memory cgroup named in the text of
 * /proc/<pid>/cgroup: the "0::" line (v2) when `version` is 2, the line
 * listing the "memory" controller (v1) when it is 1. Writes the path
 * relative to the controller's root ("/" for the root) into out. */
int mh_proc_parse_cgroup(const char *text, size_t len, int version, char *out,
                         size_t n) MH_MUST_USE;
/* Parses a memory.max / memory.limit_in_bytes / memory.current value:
 * bytes, or "max" (MH_CGROUP_NO_LIMIT); v1's "no limit", a page-rounded
 * 2^63 - 1, counts as no limit too. */
int mh_proc_parse_cgroup_value(const char *text, size_t len,
                               uint64_t *v) MH_MUST_USE;
/* The value of `key` in memory.stat text ("inactive_file 94208"). */
int mh_proc_parse_memory_stat(const char *text, size_t len, const char *key,
                              uint64_t *v) MH_MUST_USE;

/* Locates the memory cgroup of `pid` (v2 when /sys/fs/cgroup is a cgroup2
 * mount, v1's memory controller otherwise) and fills m->version and
 * m->dir. A path that does not exist under the mount (a container without
 * a cgroup namespace sees its host's path) falls back to the mount root,
 * which is then the container's own cgroup. */
int mh_proc_cgroup_find(long pid, struct mh_cgroup_mem *m) MH_MUST_USE;
/* Reads limit, current and inactive_file of the cgroup m->dir. The limit
 * is looked up the path to the root, as the kernel applies it. */
int mh_proc_cgroup_read(struct mh_cgroup_mem *m) MH_MUST_USE;

#endif
