/* memhound inspect PID: leak, retention or no growth, for a live process
 * that runs the agent (docs/verdict.md); memhound trim PID: malloc_trim(0)
 * in it, RSS before and after.
 *
 * inspect asks the agent to flush, reads its capture (the path `ping`
 * names) for the timeline, asks `stats` for the numbers of now, and hands
 * both to the verdict the report uses too (analysis/report/verdict.h).
 *
 * Exit codes: 0 done; 1 the process is gone, runs no agent, or its
 * capture cannot be read; 2 usage error. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/capture/analysis.h"
#include "../analysis/report/verdict.h"
#include "../format/chunk.h"
#include "../render/json.h"
#include "../render/text.h"
#include "../render/verdict.h"
#include "../util/ctlsock.h"
#include "../util/file.h"
#include "../util/proc.h"
#include "agentctl.h"
#include "args.h"
#include "cli.h"

#define REQUEST_TIMEOUT 10.0 /* seconds; the agent answers within 100 ms */

static void
usage(FILE *out, const char *cmd)
{
    if (!strcmp(cmd, "trim"))
        fputs("usage: memhound trim PID\n"
              "\n"
              "Runs malloc_trim(0) in a process that runs the memhound "
              "agent: glibc\ngives the free pages inside its heaps back to "
              "the kernel. Prints RSS\nbefore and after.\n",
              out);
    else
        fputs("usage: memhound inspect PID [--format text|json]\n"
              "\n"
              "Says whether a process that runs the memhound agent leaks "
              "(tracked live\nPython bytes grow), retains (RSS high or "
              "growing while live bytes stay\nflat: the allocators keep "
              "freed memory), or does not grow; with RSS,\nUSS, live "
              "bytes, pymalloc arenas and mallinfo2() side by side and the\n"
              "remedies that fit. The rule: docs/verdict.md.\n"
              "\n"
              "options:\n"
              "  --format text|json   output format (default text)\n"
              "  -h, --help           show this help\n",
              out);
}

/* One request; prints why it failed. */
static int
ask(long pid, const char *req, struct mh_agentctl_reply *r)
{
    if (!mh_proc_exists(pid)) {
        mh_errorf("no process %ld", pid);
        return -1;
    }
    struct mh_agentctl_where w;
    mh_agentctl_locate(pid, &w);
    char why[2 * MH_AGENTCTL_PATH_MAX + 256];
    if (w.found < 0 &&
        mh_agentctl_explain(&w, pid, why, sizeof(why)) != ENOENT) {
        mh_errorf("%s", why); /* a socket we may not or will not use */
        return -1;
    }
    if (mh_agentctl_request(pid, req, REQUEST_TIMEOUT, r)) {
        int e = errno;
        if (e == ENOENT || e == ECONNREFUSED)
            mh_errorf("process %ld does not run the memhound agent (no "
                      "control socket; start it under 'memhound run')",
                      pid);
        else if (e == ETIMEDOUT)
            mh_errorf("process %ld did not answer '%s' within %.0f s", pid,
                      req, REQUEST_TIMEOUT);
        else
            mh_errorf("cannot ask process %ld for '%s': %s", pid, req,
                      e ? strerror(e) : "the agent closed the connection");
        return -1;
    }
    if (strncmp(r->line, "ok", 2)) {
        mh_errorf("process %ld answered '%s' with '%.200s'", pid, req,
                  r->line);
        return -1;
    }
    return 0;
}

/* The value of `key=` in a stats reply; 0 when absent. */
static unsigned long long
field(const char *line, const char *key)
{
    size_t k = strlen(key);
    for (const char *p = line; (p = strstr(p, key)); p += k)
        if ((p == line || p[-1] == ' ') && p[k] == '=')
            return strtoull(p + k + 1, NULL, 10);
    return 0;
}

static long
threads_of(long pid)
{
    char path[64], buf[4096];
    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    long n = 0;
    if (!f)
        return 0;
    while (fgets(buf, sizeof(buf), f))
        if (!strncmp(buf, "Threads:", 8))
            n = strtol(buf + 8, NULL, 10);
    fclose(f);
    return n;
}

/* The smaller of the process's cgroup limit and the machine's memory: a
 * recycle limit above it would never be reached. 0 when neither is
 * known. */
static uint64_t
mem_limit_of(long pid)
{
    uint64_t mem = mh_verdict_physmem();
    struct mh_cgroup_mem cg;
    if (!mh_proc_cgroup_find(pid, &cg) && !mh_proc_cgroup_read(&cg) &&
        cg.limit != MH_CGROUP_NO_LIMIT && (!mem || cg.limit < mem))
        mem = cg.limit;
    return mem;
}

int
mh_cmd_trim(int argc, char **argv)
{
    long pid;
    if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        usage(stdout, "trim");
        return MH_EXIT_OK;
    }
    if (argc != 2 || mh_args_parse_pid(argv[1], &pid)) {
        usage(stderr, "trim");
        return MH_EXIT_USAGE;
    }
    struct mh_agentctl_reply r;
    if (ask(pid, MH_CTL_TRIM, &r))
        return MH_EXIT_FAIL;
    double before = (double)field(r.line, "rss_before");
    double after = (double)field(r.line, "rss_after");
    char b1[32], b2[32], b3[32];
    mh_text_bytes(b1, sizeof(b1), before);
    mh_text_bytes(b2, sizeof(b2), after);
    mh_text_bytes(b3, sizeof(b3), before - after);
    printf("pid %ld: RSS before %s, after %s (%s returned)\n"
           "rss_before=%.0f rss_after=%.0f\n",
           pid, b1, b2, b3, before, after);
    return MH_EXIT_OK;
}

int
mh_cmd_inspect(int argc, char **argv)
{
    long pid = 0;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int r;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout, "inspect");
            return MH_EXIT_OK;
        } else if ((r = mh_args_take_value(argc, argv, &i, NULL, "--format",
                                           &v))) {
            if (r < 0 || (strcmp(v, "text") && strcmp(v, "json"))) {
                mh_errorf("--format takes text or json");
                return MH_EXIT_USAGE;
            }
            json = !strcmp(v, "json");
        } else if (!pid && !mh_args_parse_pid(a, &pid)) {
            continue;
        } else {
            mh_errorf("unexpected argument '%s'", a);
            usage(stderr, "inspect");
            return MH_EXIT_USAGE;
        }
    }
    if (!pid) {
        usage(stderr, "inspect");
        return MH_EXIT_USAGE;
    }
    struct mh_agentctl_reply r;
    if (ask(pid, MH_CTL_PING, &r))
        return MH_EXIT_FAIL;
    /* "ok <pid> <capture path>" */
    const char *path = strchr(r.line + 3, ' ');
    if (!path || path[1] != '/') {
        mh_errorf("process %ld names no capture ('%.200s')", pid, r.line);
        return MH_EXIT_FAIL;
    }
    char *cap = strdup(path + 1);
    if (!cap) {
        mh_errorf("out of memory");
        return MH_EXIT_FAIL;
    }
    int code = MH_EXIT_FAIL;
    struct mh_analysis a;
    struct mh_analysis_opts opts = {
        .by = MH_BY_LINE, .warmup = 0.1, .warmup_fraction = 1, .top = 1};
    mh_analysis_init(&a, &opts);
    if (ask(pid, MH_CTL_FLUSH, &r) || ask(pid, MH_CTL_STATS, &r))
        goto done;
    struct mh_verdict_input now = {0};
    now.rss = field(r.line, "rss");
    now.uss = field(r.line, "uss");
    now.threads = threads_of(pid);
    now.alloc.alloc = (field(r.line, "pymalloc") ? MH_TL_PYMALLOC : 0) |
                      (field(r.line, "mallinfo") ? MH_TL_MALLOC : 0);
    now.alloc.arena_bytes = field(r.line, "arena_bytes");
    now.alloc.arena_free = field(r.line, "arena_free");
    now.alloc.malloc_arena = field(r.line, "malloc_arena");
    now.alloc.malloc_inuse = field(r.line, "malloc_inuse");
    now.alloc.malloc_free = field(r.line, "malloc_free");
    now.alloc.malloc_mmap = field(r.line, "malloc_mmap");

    struct mh_file f;
    if (mh_file_map(&f, cap, 0, &mh_chunk_capture_input)) {
        mh_errorf("%s", f.error);
        goto done;
    }
    int rc = mh_analysis_add(&a, cap, f.data, f.len);
    mh_file_unmap(&f);
    if (rc || mh_analysis_finish(&a)) {
        mh_errorf("cannot read '%s': %s", cap, a.error);
        goto done;
    }
    /* Live bytes now: the replay's estimate at the capture's end (the
     * agent's own is 0 in trace-all mode). */
    if (a.nprocs)
        now.live = a.procs[a.nprocs - 1].live_bytes;
    now.mem_limit = mem_limit_of(pid);
    struct mh_verdicts v;
    if (mh_verdicts_of_analysis(&a, &now, &v)) {
        mh_errorf("cannot build the verdict: out of memory");
        goto done;
    }
    if (json) {
        printf("{\"pid\": %ld, \"capture\": ", pid);
        mh_json_put_str(stdout, cap, strlen(cap));
        fputs(", \"verdict\": ", stdout);
        mh_verdicts_json(stdout, &v);
        fputs("}\n", stdout);
    } else {
        printf("pid %ld, capture %s\n\n", pid, cap);
        mh_verdicts_text(stdout, &v, pid);
    }
    mh_verdicts_release(&v);
    code = fflush(stdout) ? MH_EXIT_FAIL : MH_EXIT_OK;
done:
    mh_analysis_release(&a);
    free(cap);
    return code;
}
