/* `memhound snapshot PID`: a heap dump of a running process, taken from
 * outside through its agent's control socket (src/agent/control.h), with
 * no change to the program. The agent forks; the walk runs in the child
 * while the service goes on. By default the command returns once the
 * walker has exited, so the file it names is complete.
 *
 * The socket of a process is found where its agent put it (agentctl.h):
 * $XDG_RUNTIME_DIR/memhound/<pid>.sock (the target's XDG_RUNTIME_DIR,
 * read from /proc/<pid>/environ, or ours) or /tmp/memhound-<euid>/<pid>.sock
 * with the target's effective uid. Each failure gets its own message: no
 * such process, not recording (no socket), permission, a directory or
 * socket outside the ownership rule, a stale socket. The dump file is
 * created here and passed to the agent with the request.
 *
 * Exit codes: 0 the dump was written; 1 it was not; 2 usage error. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../format/chunk.h"
#include "../format/heap_read.h"
#include "../util/clock.h"
#include "../util/ctlsock.h"
#include "../util/file.h"
#include "../util/json.h"
#include "../util/msg.h"
#include "../util/proc.h"
#include "agentctl.h"
#include "args.h"
#include "cli.h"
#include "output.h"

#define DEFAULT_TIMEOUT 600.0 /* s: a walk of a huge heap, and then some */
/* How long the agent may take to answer at all: its writer thread looks
 * at the socket every 100 ms, then needs the GIL for the fork. */
#define ACK_TIMEOUT 30.0
#define WAIT_POLL_MS 50

struct snap_opts {
    long pid;
    const char *output; /* NULL: memhound-heap.<pid>.<random>.mhh */
    int force;          /* --force: replace a dump file of ours */
    int wait_socket;    /* --wait: the process may not be recording yet */
    int wait_walk;      /* 0 with --no-wait */
    double timeout;
    int json;
};

struct reply {
    long child;
    unsigned long long pause_ns, walk_ns;
    int have_walk;
    int unverified; /* the agent could not see the walker's status */
};

static void
usage(FILE *out)
{
    fputs(
        "usage: memhound snapshot [options] PID\n"
        "\n"
        "Writes a heap dump of process PID, which must be recording with\n"
        "memhound ('memhound run' or memhound.start()). The process pauses\n"
        "only for a fork; the walk runs in a child. Returns when the dump\n"
        "is complete. Analyse it with 'memhound heap census|diff|why'.\n"
        "\n"
        "options:\n"
        "  -o, --output FILE    where to write the dump (default\n"
        "                       memhound-heap.<PID>.<RANDOM>.mhh in the\n"
        "                       current directory); created here, mode\n"
        "                       0600, never through a symbolic link or into\n"
        "                       an existing file, and handed to the target\n"
        "      --force          replace FILE if it is a regular file of\n"
        "                       yours\n"
        "      --wait           if PID is not recording yet (just started),\n"
        "                       wait for its control socket to appear\n"
        "      --no-wait        return once the walk has started\n"
        "      --timeout SECS   give up after this long (default 600)\n"
        "      --format text|json\n"
        "  -h, --help           show this help\n",
        out);
}

static int
parse_args(int argc, char **argv, struct snap_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->wait_walk = 1;
    o->timeout = DEFAULT_TIMEOUT;
    const char *pid_arg = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        int r;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return MH_EXIT_OK;
        } else if (!strcmp(a, "--wait")) {
            o->wait_socket = 1;
        } else if (!strcmp(a, "--no-wait")) {
            o->wait_walk = 0;
        } else if (!strcmp(a, "--force")) {
            o->force = 1;
        } else if (!strcmp(a, "--") && i + 1 < argc && !pid_arg) {
            pid_arg = argv[++i];
        } else if (a[0] != '-' || !a[1]) {
            if (pid_arg) {
                mh_errorf("snapshot takes one PID, not '%s' too", a);
                return MH_EXIT_USAGE;
            }
            pid_arg = a;
        } else if ((r = mh_args_take_value(argc, argv, &i, "-o", "--output",
                                           &val))) {
            if (r < 0)
                return mh_args_missing(a);
            if (!*val) {
                mh_errorf("option '%s' needs a file name",
                          a[1] == 'o' ? "-o" : "--output");
                return MH_EXIT_USAGE;
            }
            o->output = val;
        } else if ((r = mh_args_take_value(argc, argv, &i, NULL, "--timeout",
                                           &val))) {
            if (r < 0)
                return mh_args_missing(a);
            char *end;
            errno = 0;
            o->timeout = strtod(val, &end);
            if (errno || end == val || (*end && strcmp(end, "s")) ||
                !(o->timeout > 0 && o->timeout < 1e7))
                return mh_args_bad_value("--timeout", val, "seconds");
        } else if ((r = mh_args_take_value(argc, argv, &i, NULL, "--format",
                                           &val))) {
            if (r < 0)
                return mh_args_missing(a);
            if (strcmp(val, "json") && strcmp(val, "text"))
                return mh_args_bad_value("--format", val, "text or json");
            o->json = !strcmp(val, "json");
        } else {
            mh_errorf("unknown option '%s' for snapshot; see 'memhound "
                      "snapshot --help'",
                      a);
            return MH_EXIT_USAGE;
        }
    }
    if (!pid_arg) {
        mh_errorf("snapshot needs the PID of a process recording with "
                  "memhound, e.g. 'memhound snapshot 1234'");
        usage(stderr);
        return MH_EXIT_USAGE;
    }
    if (mh_args_parse_pid(pid_arg, &o->pid)) {
        mh_errorf("invalid PID '%s': expected a process id such as 1234",
                  pid_arg);
        return MH_EXIT_USAGE;
    }
    return -1;
}

/* ---- finding the socket and asking ---- */

/* Finds the socket; on failure prints why and returns -2. With `quiet`,
 * a missing socket returns MH_EXIT_FAIL silently (--wait polls). */
static int
find_socket(long pid, char *out, int quiet)
{
    struct mh_agentctl_where w;
    mh_agentctl_locate(pid, &w);
    if (w.found >= 0 && w.not_socket < 0) {
        memcpy(out, w.cand[w.found], MH_AGENTCTL_PATH_MAX);
        return MH_EXIT_OK;
    }
    char msg[2 * MH_AGENTCTL_PATH_MAX + 256];
    if (mh_agentctl_explain(&w, pid, msg, sizeof(msg)) == ENOENT && quiet)
        return MH_EXIT_FAIL;
    mh_errorf("%s", msg);
    return -2;
}

/* Connects; on failure prints why. */
static int
connect_agent(long pid, const char *path)
{
    long peer;
    int fd = mh_agentctl_connect(pid, path, &peer);
    if (fd >= 0)
        return fd;
    int err = errno;
    if (err == ECONNREFUSED)
        mh_errorf("process %ld is not recording with memhound: its "
                  "control socket '%s' is stale (left by a process that "
                  "ended without removing it)",
                  pid, path);
    else if (err == EPERM && peer > 0)
        mh_errorf("the control socket '%s' is served by process %ld, not by "
                  "process %ld",
                  path, peer, pid);
    else if (err == EACCES || err == EPERM)
        mh_errorf("cannot connect to the control socket '%s' of process "
                  "%ld: %s (only its user or root may ask for a "
                  "snapshot)",
                  path, pid, strerror(err));
    else
        mh_errorf("cannot connect to the control socket '%s' of process "
                  "%ld: %s",
                  path, pid, strerror(err));
    return -1;
}

static int
parse_reply(const char *line, struct reply *r)
{
    memset(r, 0, sizeof(*r));
    int end = 0;
    int k = sscanf(line, "ok %ld %llu %llu%n", &r->child, &r->pause_ns,
                   &r->walk_ns, &end);
    if (k < 2)
        return -1;
    r->have_walk = k == 3;
    r->unverified = k == 3 && !strcmp(line + end, " unverified");
    return 0;
}

/* Whether the dump at `path` is whole (its END record is there). On
 * failure says why in `why`. */
static int
dump_complete(const char *path, char *why, size_t n)
{
    struct mh_file f;
    if (mh_file_map(&f, path, 0, &mh_chunk_heap_input)) {
        snprintf(why, n, "%s", f.error);
        return 0;
    }
    struct mh_heap_image d;
    mh_heap_image_init(&d, 0);
    int rc = mh_heap_parse(&d, f.data, f.len);
    int ok = !rc && d.have_end;
    if (rc)
        snprintf(why, n, "%s", d.error);
    else if (!d.have_end)
        snprintf(why, n, "it has no END record (the walk did not finish)");
    mh_heap_image_release(&d);
    mh_file_unmap(&f);
    return ok;
}

/* ---- paths ---- */

/* The caller's path made absolute, for the agent (its cwd is not ours). */
static int
absolute(const char *path, char *out, size_t n)
{
    if (path[0] == '/') {
        int k = snprintf(out, n, "%s", path);
        return k < 0 || (size_t)k >= n ? -1 : 0;
    }
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof(cwd)))
        return -1;
    while (path[0] == '.' && path[1] == '/')
        path += 2;
    int k = snprintf(out, n, "%s%s%s", cwd, strcmp(cwd, "/") ? "/" : "", path);
    return k < 0 || (size_t)k >= n ? -1 : 0;
}

/* memhound-heap.<pid>.<random>.mhh: nobody can plant it in advance. */
static int
default_name(long pid, char *out, size_t n)
{
    char tag[11];
    if (mh_file_random_tag(tag, 10))
        return -1;
    snprintf(out, n, "memhound-heap.%ld.%s.mhh", pid, tag);
    return 0;
}

/* A path as a JSON string, its bytes as they are (docs/snapshot.md). */
static void
print_json_str(FILE *out, const char *s)
{
    struct mh_json_sink k = mh_json_sink_file(out);
    mh_json_str(&k, s, strlen(s), MH_JSON_BYTES);
}

static void
print_result(const struct snap_opts *o, const char *shown, const char *abs,
             const struct reply *r, const char *sock)
{
    struct stat st;
    long long size = stat(abs, &st) ? -1 : (long long)st.st_size;
    if (o->json) {
        printf("{\"pid\": %ld, \"path\": ", o->pid);
        print_json_str(stdout, abs);
        printf(", \"walker_pid\": %ld, \"pause_ns\": %llu, ", r->child,
               r->pause_ns);
        if (r->have_walk)
            printf("\"walk_ns\": %llu, ", r->walk_ns);
        else
            printf("\"walk_ns\": null, ");
        printf("\"complete\": %s, \"bytes\": %lld, \"socket\": ",
               r->have_walk ? "true" : "false", size);
        print_json_str(stdout, sock);
        printf("}\n");
        return;
    }
    if (r->have_walk)
        printf("%s: heap dump of process %ld (%.1f MiB; paused %.1f ms for "
               "the fork, walk %.2f s)\n",
               shown, o->pid, size > 0 ? (double)size / 1048576.0 : 0.0,
               (double)r->pause_ns / 1e6, (double)r->walk_ns / 1e9);
    else
        printf("%s: heap dump of process %ld being written by process %ld "
               "(paused %.1f ms for the fork)\n",
               shown, o->pid, r->child, (double)r->pause_ns / 1e6);
}

int
mh_cmd_snapshot(int argc, char **argv)
{
    struct snap_opts o;
    int code = parse_args(argc, argv, &o);
    if (code >= 0)
        return code;
    double deadline = mh_clock_mono() + o.timeout;
    if (!mh_proc_exists(o.pid)) {
        mh_errorf("no process %ld", o.pid);
        return MH_EXIT_FAIL;
    }
    char sock[MH_AGENTCTL_PATH_MAX];
    for (;;) {
        code = find_socket(o.pid, sock, o.wait_socket);
        if (code == MH_EXIT_OK)
            break;
        if (code != MH_EXIT_FAIL || mh_clock_mono() >= deadline) {
            if (code == MH_EXIT_FAIL) /* --wait ran out: say it now */
                find_socket(o.pid, sock, 0);
            return MH_EXIT_FAIL;
        }
        if (!mh_proc_exists(o.pid)) {
            mh_errorf("process %ld ended before it started recording", o.pid);
            return MH_EXIT_FAIL;
        }
        poll(NULL, 0, WAIT_POLL_MS);
    }

    char name[PATH_MAX], abs[PATH_MAX];
    if (!o.output) {
        if (default_name(o.pid, name, sizeof(name))) {
            mh_errorf("cannot choose a dump name: %s", strerror(errno));
            return MH_EXIT_FAIL;
        }
        o.output = name;
    }
    if (absolute(o.output, abs, sizeof(abs))) {
        mh_errorf("cannot make an absolute path of '%s': %s", o.output,
                  strerror(errno ? errno : ENAMETOOLONG));
        return MH_EXIT_FAIL;
    }

    /* Before the agent is asked: the dump's directory and path must pass
     * (output.h). */
    if (mh_output_preflight(abs, o.force, 0))
        return MH_EXIT_FAIL;
    int fd = connect_agent(o.pid, sock);
    if (fd < 0)
        return MH_EXIT_FAIL;
    /* The file is ours, created here and handed over: the dump lands
     * where we may write, whatever user the target runs as. */
    int flags = o.force ? MH_FILE_FORCE : 0;
    int out = mh_file_create_private(abs, flags);
    if (out < 0) {
        char why[PATH_MAX + 256];
        mh_file_create_error(abs, flags, errno, "--force", why, sizeof(why));
        mh_errorf("%s", why);
        close(fd);
        return MH_EXIT_FAIL;
    }
    char req[PATH_MAX + 16];
    snprintf(req, sizeof(req), "%s %s",
             o.wait_walk ? MH_CTL_DUMP_WAIT : MH_CTL_DUMP, abs);
    int sent = mh_agentctl_send_fd(fd, req, out);
    int err = errno;
    close(out);
    if (sent) {
        mh_errorf("cannot send the request to process %ld: %s", o.pid,
                  strerror(err));
        close(fd);
        unlink(abs);
        return MH_EXIT_FAIL;
    }
    /* Without --no-wait the answer comes when the walk is done; without a
     * walk in sight (no GIL for the fork), give up sooner. */
    double ack = o.wait_walk ? deadline : mh_clock_mono() + ACK_TIMEOUT;
    if (ack > deadline)
        ack = deadline;
    struct mh_agentctl_reply reply = {.len = 0};
    int rc = mh_agentctl_wait(fd, &reply, ack - mh_clock_mono());
    err = errno;
    close(fd);
    const char *line = reply.line;
    if (rc) {
        if (err == ETIMEDOUT)
            mh_errorf("process %ld did not finish the heap dump '%s' within "
                      "%.0f s",
                      o.pid, o.output, o.timeout);
        else if (err == 0)
            mh_errorf("process %ld closed its control socket without an "
                      "answer (it may have stopped recording or exited)",
                      o.pid);
        else
            mh_errorf("cannot read the answer of process %ld: %s", o.pid,
                      strerror(err));
        return MH_EXIT_FAIL;
    }
    if (!strncmp(line, "error ", 6)) {
        mh_errorf("process %ld could not write a heap dump: %s", o.pid,
                  line + 6);
        struct stat st;
        if (!stat(abs, &st) && st.st_size == 0)
            unlink(abs); /* nothing was written: leave nothing */
        return MH_EXIT_FAIL;
    }
    struct reply r;
    if (parse_reply(line, &r)) {
        mh_errorf("unexpected answer from process %ld: '%.200s'", o.pid, line);
        return MH_EXIT_FAIL;
    }
    struct stat st;
    if (r.have_walk && stat(abs, &st)) {
        mh_errorf("process %ld reported the dump done, but '%s' is not "
                  "there: %s",
                  o.pid, o.output, strerror(errno));
        return MH_EXIT_FAIL;
    }
    char why[300];
    if (r.unverified && !dump_complete(abs, why, sizeof(why))) {
        mh_errorf("the heap dump '%s' of process %ld is not usable: %s",
                  o.output, o.pid, why);
        return MH_EXIT_FAIL;
    }
    print_result(&o, o.output, abs, &r, sock);
    return MH_EXIT_OK;
}
