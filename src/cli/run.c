/* `memhound run [options] -- COMMAND...`: runs a program with memhound's
 * bootstrap first on PYTHONPATH, so every Python process it starts records
 * into its own capture, without editing the program.
 *
 * run and the Python side meet only through the environment
 * (docs/architecture.md). Each Python process appends "pid\tpath\n" to the
 * registry file when its capture opens, or "pid\t\n" when the agent could
 * not start there (it has printed why), so run can name the captures
 * afterwards, or say plainly that none appeared.
 *
 * run is transparent otherwise: the child shares our stdin/stdout/stderr
 * and process group, its exit status becomes ours, its death by a signal
 * becomes ours, and signals sent to us with kill(2) are passed on. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../analysis/capture/analysis.h"
#include "../format/chunk.h"
#include "../util/buf.h"
#include "../util/file.h"
#include "../util/mem.h"
#include "../util/msg.h"
#include "args.h"
#include "cli.h"
#include "output.h"
#include "spawn.h"
#include "units.h"

/* %R: the run id, so one pattern names this run's captures and no
 * other's; %r: a random tag (docs/security.md), so nobody can plant the
 * file. */
#define DEFAULT_OUTPUT "memhound.%R.%p.%r.mhc"
#define MAX_INTERVAL (UINT64_C(1) << 40)
/* The agent's MH_MAX_DEPTH_LIMIT (src/agent/tracker.h): checked here too,
 * so a bad value fails once, not in every Python process. */
#define MAX_DEPTH 256
/* A registry line per Python process; even a pre-fork server recycling
 * workers for days stays far below this. */
#define REGISTRY_MAX (64u << 20)

struct run_opts {
    const char *output;
    int trace_all;
    uint64_t interval; /* 0: the agent's default */
    long max_depth;    /* 0: the agent's default */
    double heap_every; /* seconds between heap dumps; 0: none */
    int web;           /* per-request attribution (docs/web.md) */
    int force;         /* replace capture files of ours */
    int quiet;
    char **command; /* NULL-terminated, points into argv */
};

struct capture {
    long pid;
    const char *path; /* points into the registry text; "" = agent failed */
    size_t order;
    const char *full; /* the agent found the disk full: why; else NULL */
};

/* What run knows of the command it started, to say how a capture ends
 * next to how its process did. */
struct child_end {
    long pid;
    int status;      /* wait status */
    uint64_t end_ns; /* Unix epoch, when waitpid() returned */
};

/* Signals sent to memhound with kill(2) that the child should get too. */
static const int forwarded[] = {SIGTERM, SIGHUP,  SIGINT,   SIGQUIT,
                                SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT};
#define N_FORWARDED (sizeof(forwarded) / sizeof(forwarded[0]))

/* The child the handler forwards to; 0 before fork. A signal handler can
 * reach nothing else, hence a file-level variable. Written once by the
 * main thread while the forwarded signals are blocked. */
static volatile sig_atomic_t child_pid;

static void
usage(FILE *out)
{
    fprintf(
        out,
        "usage: memhound run [options] [--] COMMAND [ARGS...]\n"
        "\n"
        "Runs COMMAND; every Python process it starts (subprocesses and\n"
        "forked children too) records its allocations into a capture.\n"
        "\n"
        "  -o, --output PATH        capture path; %%p is the pid, %%r a\n"
        "                           random tag, %%R the run id (the same\n"
        "                           in every process of this run; default\n"
        "                           %s);\n"
        "                           created mode 0600, never through a\n"
        "                           symbolic link or into an existing file\n"
        "      --force              replace capture files (and heap dumps)\n"
        "                           that exist if they are regular files\n"
        "                           of yours\n"
        "      --trace-all          record every allocation, exactly\n"
        "      --sample-interval N  mean bytes between samples (512k, 1m)\n"
        "      --max-depth N        Python frames kept per stack\n"
        "      --heap-every DURATION\n"
        "                           a heap dump of every recording process\n"
        "                           that often (30s, 5m, 1h), next to its\n"
        "                           capture as <capture>.heap<N>.mhh\n"
        "      --web                attribute memory to web requests and\n"
        "                           jobs by endpoint (Django, Flask,\n"
        "                           aiohttp, gunicorn, uvicorn; docs/web.md)\n"
        "  -q, --quiet              do not list the captures at the end\n"
        "  -h, --help               show this help\n"
        "\n"
        "The exit status is COMMAND's.\n",
        DEFAULT_OUTPUT);
}

/* Parses "4096", "512k", "1m", "2G", "64KiB" (binary multiples): a
 * whole number of bytes, unlike mh_units_parse_size(), and no "t". */
static int
parse_size(const char *s, uint64_t *out)
{
    if (*s < '0' || *s > '9')
        return MH_EINVAL;
    errno = 0;
    char *digits_end;
    unsigned long long v = strtoull(s, &digits_end, 10);
    if (errno)
        return MH_EINVAL;
    const char *end = digits_end;
    uint64_t mult = mh_units_take_multiple(&end, UINT64_C(1) << 30);
    if (*end || v == 0 || v > MAX_INTERVAL / mult)
        return MH_EINVAL;
    *out = (uint64_t)v * mult;
    return MH_OK;
}

static int
parse_args(int argc, char **argv, struct run_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->output = DEFAULT_OUTPUT;
    int i;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *val = NULL;
        int r;
        if (!strcmp(a, "--")) {
            i++;
            break;
        }
        if (a[0] != '-' || !a[1])
            break; /* the command starts here */
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(MH_EXIT_OK);
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            o->quiet = 1;
        } else if (!strcmp(a, "--trace-all")) {
            o->trace_all = 1;
        } else if (!strcmp(a, "--web")) {
            o->web = 1;
        } else if (!strcmp(a, "--force")) {
            o->force = 1;
        } else if ((r = mh_args_take_value(argc, argv, &i, "-o", "--output",
                                           &val))) {
            if (r < 0 || !*val)
                goto missing;
            o->output = val;
        } else if ((r = mh_args_take_value(argc, argv, &i, NULL,
                                           "--sample-interval", &val))) {
            if (r < 0)
                goto missing;
            if (parse_size(val, &o->interval)) {
                mh_errorf("invalid --sample-interval '%s': expected bytes "
                          "such as 4096, 512k or 1m",
                          val);
                return MH_EXIT_USAGE;
            }
        } else if ((r = mh_args_take_value(argc, argv, &i, NULL,
                                           "--max-depth", &val))) {
            if (r < 0)
                goto missing;
            char *end;
            errno = 0;
            long d = strtol(val, &end, 10);
            if (errno || *end || end == val || d < 1 || d > MAX_DEPTH) {
                mh_errorf("invalid --max-depth '%s': expected 1 to %d", val,
                          MAX_DEPTH);
                return MH_EXIT_USAGE;
            }
            o->max_depth = d;
        } else if ((r = mh_args_take_value(argc, argv, &i, NULL,
                                           "--heap-every", &val))) {
            if (r < 0)
                goto missing;
            if (mh_units_parse_duration(val, 0.1, &o->heap_every)) {
                mh_errorf("invalid --heap-every '%s': expected a duration "
                          "from 100ms to a year, such as 30s, 5m or 1h",
                          val);
                return MH_EXIT_USAGE;
            }
        } else {
            mh_errorf("unknown option '%s' for run; see 'memhound run "
                      "--help'",
                      a);
            return MH_EXIT_USAGE;
        }
        continue;
    missing:
        return mh_args_missing(a);
    }
    if (i >= argc) {
        mh_errorf("run needs a command, e.g. 'memhound run -- python3 "
                  "app.py'");
        usage(stderr);
        return MH_EXIT_USAGE;
    }
    if (o->trace_all && o->interval)
        mh_warnf("--sample-interval has no effect with --trace-all");
    o->command = argv + i;
    return MH_EXIT_OK;
}

/* The caller owns the absolute path returned (mh_free). */
static char *
absolute_path(const char *path)
{
    if (path[0] == '/')
        return mh_strndup(path, strlen(path));
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof(cwd)))
        return NULL;
    struct mh_buf b;
    mh_buf_init(&b, 2 * PATH_MAX);
    const char *rel = path;
    while (rel[0] == '.' && rel[1] == '/')
        rel += 2;
    if (mh_buf_printf(&b, "%s%s%s", cwd, strcmp(cwd, "/") ? "/" : "", rel) ||
        mh_buf_put_u8(&b, 0)) {
        mh_buf_release(&b);
        return NULL;
    }
    size_t len;
    return (char *)mh_buf_take(&b, &len);
}

static int
prepare_env(const struct run_opts *o, const char *pydir, const char *output,
            const char *registry, const char *run_id)
{
    struct mh_agent_env e = {
        .output = output,
        .run_id = run_id,
        .registry = registry,
        .trace_all = o->trace_all,
        .interval = o->interval,
        .max_depth = o->max_depth,
        .heap_every = o->heap_every,
        .web = o->web,
        .force = o->force,
    };
    return mh_cli_agent_env(pydir, &e);
}

/* Creates a private directory holding an empty registry file. The caller
 * owns both strings (mh_free) and removes the directory with
 * remove_tmpdir(). */
static int
make_registry(char **dir_out, char **file_out)
{
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp)
        tmp = "/tmp";
    char dir[PATH_MAX], file[PATH_MAX + 16];
    int n = snprintf(dir, sizeof(dir), "%s/memhound-run.XXXXXX", tmp);
    if (n < 0 || (size_t)n >= sizeof(dir)) {
        mh_errorf("TMPDIR '%s' is too long", tmp);
        return MH_EINVAL;
    }
    if (!mkdtemp(dir)) { /* mkdtemp makes it 0700 */
        mh_errorf("cannot create a temporary directory in '%s': %s", tmp,
                  strerror(errno));
        return MH_EIO;
    }
    snprintf(file, sizeof(file), "%s/registry", dir);
    int fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        mh_errorf("cannot create '%s': %s", file, strerror(errno));
        rmdir(dir);
        return MH_EIO;
    }
    close(fd);
    *dir_out = mh_strndup(dir, strlen(dir));
    *file_out = mh_strndup(file, strlen(file));
    if (!*dir_out || !*file_out) {
        unlink(file);
        rmdir(dir);
        mh_free(*dir_out);
        mh_free(*file_out);
        mh_errorf("out of memory");
        return MH_ENOMEM;
    }
    return MH_OK;
}

/* The directory is ours (0700, made by make_registry) and flat: the
 * registry plus whatever claim files the Python side left. */
static void
remove_tmpdir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            unlinkat(dirfd(d), e->d_name, 0);
        }
        closedir(d);
    }
    if (rmdir(dir) && errno != ENOENT)
        mh_warnf("cannot remove '%s': %s", dir, strerror(errno));
}

static void
forward_signal(int sig, siginfo_t *si, void *ctx)
{
    (void)ctx;
    int saved = errno;
    pid_t pid = (pid_t)child_pid;
    /* si_code <= 0 means a process sent it (kill, sigqueue, tgkill);
     * signals from the terminal (SI_KERNEL) went to the whole foreground
     * process group, the child included, and must not arrive twice. One
     * the child sent us is not bounced back. */
    if (pid > 0 && si->si_code <= 0 && si->si_pid != pid)
        kill(pid, sig);
    errno = saved;
}

/* Signals memhound was started with ignored stay ignored, in memhound and
 * in the command (nohup, `cmd &` in a script); for the others
 * installed[i] is set and a handler forwards them. */
static int
install_forwarding(int *installed)
{
    struct sigaction sa, old;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = forward_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigfillset(&sa.sa_mask);
    for (size_t i = 0; i < N_FORWARDED; i++) {
        installed[i] = 0;
        if (sigaction(forwarded[i], NULL, &old) == 0 &&
            !(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_IGN)
            continue;
        if (sigaction(forwarded[i], &sa, NULL)) {
            mh_errorf("cannot handle signal %d: %s", forwarded[i],
                      strerror(errno));
            return MH_EIO;
        }
        installed[i] = 1;
    }
    return MH_OK;
}

struct child_setup {
    const int *installed;
    const sigset_t *mask;
};

/* In the child between fork and exec: default dispositions first, so a
 * signal forwarded before exec acts as it would on the command, then the
 * mask memhound started with. */
static void
setup_child(const void *arg)
{
    const struct child_setup *c = arg;
    for (size_t i = 0; i < N_FORWARDED; i++)
        if (c->installed[i])
            signal(forwarded[i], SIG_DFL);
    sigprocmask(SIG_SETMASK, c->mask, NULL);
}

/* Forks and runs the command; returns its wait status in *status and
 * exec's errno in *exec_err (0 when it ran). */
static int
run_child(char **command, int *status, int *exec_err, long *pid_out)
{
    sigset_t block, old;
    sigemptyset(&block);
    for (size_t i = 0; i < N_FORWARDED; i++)
        sigaddset(&block, forwarded[i]);
    sigprocmask(SIG_BLOCK, &block, &old);
    int installed[N_FORWARDED];
    if (install_forwarding(installed))
        return MH_EIO;

    struct child_setup setup = {installed, &old};
    pid_t pid;
    int errfd;
    if (mh_spawn_start(command, setup_child, &setup, &pid, &errfd))
        return MH_EIO;
    child_pid = pid;
    *pid_out = pid;
    /* A reader of our stderr that went away must not cost the cleanup
     * and the command's exit status; the command keeps its own SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    sigprocmask(SIG_SETMASK, &old, NULL);
    *exec_err = mh_spawn_exec_errno(errfd);

    while (waitpid(pid, status, 0) < 0) {
        if (errno != EINTR) {
            mh_errorf("cannot wait for '%s': %s", command[0], strerror(errno));
            return MH_EIO;
        }
    }
    return MH_OK;
}

/* The caller owns the text in *b. */
static int
read_registry(const char *path, struct mh_buf *b)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return MH_EIO;
    for (;;) {
        int rc = mh_buf_grow(b, 65536);
        if (rc) {
            close(fd);
            return rc;
        }
        ssize_t n = read(fd, b->data + b->len, b->cap - b->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            close(fd);
            return MH_EIO;
        }
        if (n == 0)
            break;
        b->len += (size_t)n;
    }
    close(fd);
    return mh_buf_put_u8(b, 0);
}

/* Splits the registry text in place into entries, in order of arrival;
 * malformed lines (a writer killed mid-line) are skipped. The caller
 * frees *out (mh_free). */
static int
parse_registry(char *text, struct capture **out, size_t *n_out)
{
    size_t cap = 1;
    for (const char *p = text; *p; p++)
        cap += *p == '\n';
    struct capture *c = mh_calloc(cap, sizeof(*c));
    if (!c)
        return MH_ENOMEM;
    size_t n = 0;
    char *line = text;
    while (*line && n < cap) {
        char *nl = strchr(line, '\n');
        char *next = nl ? nl + 1 : line + strlen(line);
        if (nl)
            *nl = '\0';
        char *tab = strchr(line, '\t');
        char *end;
        long pid = strtol(line, &end, 10);
        if (tab && end == tab && pid > 0 && (!tab[1] || tab[1] == '/')) {
            c[n].pid = pid;
            c[n].path = tab + 1;
            c[n].order = n;
            n++;
        } else if (tab && end == tab && pid > 0 &&
                   !strncmp(tab + 1, "!full\t", 6)) {
            /* The agent's note of a full disk: "pid\t!full\twhy\tpath"
             * (src/agent/writer.c); it goes to the capture's entry. */
            char *why = tab + 7, *t2 = strchr(why, '\t');
            if (t2 && t2[1] == '/') {
                *t2 = '\0';
                for (size_t i = n; i-- > 0;)
                    if (c[i].pid == pid && !strcmp(c[i].path, t2 + 1)) {
                        c[i].full = why;
                        break;
                    }
            }
        }
        line = next;
    }
    *out = c;
    *n_out = n;
    return MH_OK;
}

static int
by_path_then_order(const void *a, const void *b)
{
    const struct capture *x = a, *y = b;
    int c = strcmp(x->path, y->path);
    if (c)
        return c;
    return x->order < y->order ? -1 : x->order > y->order;
}

static int
by_order(const void *a, const void *b)
{
    const struct capture *x = a, *y = b;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* One entry per capture path, the last process to claim it winning (a
 * process that exec'd Python again reopens the same file); failures stay,
 * one per process. Keeps the order of arrival. */
static size_t
dedupe(struct capture *c, size_t n)
{
    if (n < 2)
        return n;
    qsort(c, n, sizeof(*c), by_path_then_order);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m && c[i].path[0] && !strcmp(c[m - 1].path, c[i].path))
            c[m - 1] = c[i];
        else
            c[m++] = c[i];
    }
    qsort(c, m, sizeof(*c), by_order);
    return m;
}

/* Paths under the current directory are shown relative to it. */
static const char *
display_path(const char *path, const char *cwd)
{
    size_t n = strlen(cwd);
    if (n > 1 && !strncmp(path, cwd, n) && path[n] == '/')
        return path + n + 1;
    return path;
}

/* Prints a word so a POSIX shell reads it back unchanged. */
static void
print_shell_word(FILE *out, const char *s)
{
    int plain = *s != '\0';
    for (const char *p = s; *p && plain; p++)
        plain = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                       "0123456789_-./,:+=@%",
                       *p) != NULL;
    if (plain) {
        fputs(s, out);
        return;
    }
    fputc('\'', out);
    for (const char *p = s; *p; p++) {
        if (*p == '\'')
            fputs("'\\''", out);
        else
            fputc(*p, out);
    }
    fputc('\'', out);
}

/* How to spell this program in the suggested report command. */
static const char *
self_name(void)
{
    const char *me = program_invocation_name;
    return me && strchr(me, '/') ? me : "memhound";
}

/* Looks for what keeps a Python program from loading the bootstrap:
 * -I/-E (PYTHONPATH ignored) or -S (no site module), on a python command
 * line or in a script's #! line. Returns the flag letter or 0. */
static int
python_flag_in(char **args)
{
    for (; *args; args++) {
        const char *a = *args;
        if (a[0] != '-' || !a[1] || a[1] == '-')
            return 0;
        for (const char *p = a + 1; *p; p++) {
            if (*p == 'I' || *p == 'E' || *p == 'S')
                return *p;
            if (strchr("cmWX", *p)) {
                if (*p == 'c' || *p == 'm')
                    return 0;
                if (!p[1])
                    args++; /* its value is the next word */
                break;
            }
        }
        if (!*args)
            return 0;
    }
    return 0;
}

static int
is_python_name(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    return !strncmp(base, "python", 6);
}

/* Splits a #! line of the script `cmd` (searched on PATH) into words in
 * `words` (at most max - 1, NULL-terminated); 0 when it has none. */
static int
shebang_words(const char *cmd, char *line, size_t size, char **words,
              size_t max)
{
    char path[PATH_MAX];
    if (strchr(cmd, '/')) {
        snprintf(path, sizeof(path), "%s", cmd);
    } else {
        const char *env = getenv("PATH");
        const char *p = env ? env : "/usr/bin:/bin";
        path[0] = '\0';
        while (*p) {
            const char *colon = strchrnul(p, ':');
            int n = snprintf(path, sizeof(path), "%.*s/%s", (int)(colon - p),
                             p, cmd);
            if (n > 0 && (size_t)n < sizeof(path) && !access(path, X_OK))
                break;
            path[0] = '\0';
            p = *colon ? colon + 1 : colon;
        }
        if (!path[0])
            return 0;
    }
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    int ok = fgets(line, (int)size, f) && line[0] == '#' && line[1] == '!';
    fclose(f);
    if (!ok)
        return 0;
    size_t n = 0;
    char *p = line + 2;
    while (n + 1 < max) {
        p += strspn(p, " \t");
        if (!*p || *p == '\n' || *p == '\r')
            break;
        words[n++] = p;
        p += strcspn(p, " \t\r\n");
        if (*p)
            *p++ = '\0';
    }
    words[n] = NULL;
    return n > 0;
}

static void
explain_no_python(char **command)
{
    const char *cmd = command[0];
    int flag = 0;
    if (is_python_name(cmd)) {
        flag = python_flag_in(command + 1);
    } else {
        char line[512], *words[16];
        if (shebang_words(cmd, line, sizeof(line), words, 16)) {
            char **w = words;
            const char *base = strrchr(w[0], '/');
            if (!strcmp(base ? base + 1 : w[0], "env") && w[1]) {
                w++;
                if (!strcmp(w[0], "-S") && w[1]) /* env -S "python3 -I" */
                    w++;
            }
            if (is_python_name(w[0]))
                flag = python_flag_in(w + 1);
        }
    }
    if (flag == 'S')
        mh_errorf("no Python process reported in: '%s' runs Python with "
                  "-S, which skips the site module and so memhound's "
                  "sitecustomize; nothing was recorded",
                  cmd);
    else if (flag)
        mh_errorf("no Python process reported in: '%s' runs Python with "
                  "-%c, which ignores PYTHONPATH and so memhound's "
                  "sitecustomize; nothing was recorded",
                  cmd, flag);
    else
        mh_errorf("no Python process reported in: '%s' is not a Python "
                  "program, or it ran Python with -I, -E or -S (which skip "
                  "sitecustomize), or with PYTHONPATH replaced; nothing was "
                  "recorded",
                  cmd);
}

/* Names a capture that ends early: no END record and no SIGNAL/EXEC
 * marker means the process ended without the agent finishing it
 * (SIGKILL, a crash), and what followed the last flush is lost. Returns
 * 1 when it warned. */
static int
warn_unfinished(const struct capture *c, const char *shown,
                const struct child_end *ce)
{
    struct mh_file f;
    if (mh_file_map(&f, c->path, 0, &mh_chunk_capture_input))
        return 0; /* report will say why */
    struct mh_capture_end e;
    int rc = mh_analysis_capture_end(f.data, f.len, &e);
    int warned = 0;
    if (rc == MH_OK && (e.truncated || e.unfinished)) {
        uint64_t last = e.last_ns;
        time_t secs = (time_t)(last / 1000000000ull);
        struct tm tm;
        char at[16] = "?";
        if (localtime_r(&secs, &tm))
            strftime(at, sizeof(at), "%H:%M:%S", &tm);
        char how[96] = "";
        if (ce && ce->pid == c->pid && ce->end_ns > last) {
            double gap = (double)(ce->end_ns - last) / 1e9;
            if (WIFSIGNALED(ce->status)) {
                const char *name = sigabbrev_np(WTERMSIG(ce->status));
                snprintf(how, sizeof(how),
                         "; it ends %.1f s before the process, which was "
                         "killed by %s%s",
                         gap, name ? "SIG" : "signal ",
                         name ? name : "?");
            } else {
                snprintf(how, sizeof(how),
                         "; it ends %.1f s before the process exited", gap);
            }
        }
        if (e.truncated)
            mh_warnf("capture '%s' (pid %ld) was cut short at offset %llu: "
                     "last complete flush at %s%s",
                     shown, c->pid, (unsigned long long)e.truncated_at, at,
                     how);
        else
            mh_warnf("capture '%s' (pid %ld) has no end record: the process "
                     "ended without memhound finishing it; its last flush "
                     "was at %s, what came after is lost%s",
                     shown, c->pid, at, how);
        warned = 1;
    }
    mh_file_unmap(&f);
    return warned;
}

/* Appends `s` to b with the glob characters escaped. */
static int
put_glob_literal(struct mh_buf *b, const char *s, size_t n)
{
    int rc = MH_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        if (strchr("*?[]\\", s[i]))
            rc = mh_buf_put_u8(b, '\\');
        if (!rc)
            rc = mh_buf_put_u8(b, (uint8_t)s[i]);
    }
    return rc;
}

/* Appends the template's piece as a glob: %p and %r any text, %R the run
 * id, %% a %. */
static int
put_glob_piece(struct mh_buf *b, const char *s, size_t n, const char *run_id)
{
    int rc = MH_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        if (s[i] == '%' && i + 1 < n && strchr("prR%", s[i + 1])) {
            char t = s[++i];
            if (t == 'R')
                rc = put_glob_literal(b, run_id, strlen(run_id));
            else if (t == '%')
                rc = put_glob_literal(b, "%", 1);
            else if (!b->len || b->data[b->len - 1] != '*')
                rc = mh_buf_put_u8(b, '*');
        } else {
            rc = put_glob_literal(b, s + i, 1);
        }
    }
    return rc;
}

/* The glob that matches every name the agent gives a capture of this run
 * (python/memhound/__init__.py): the template expanded, with ".<pid>"
 * and ".<random>" put before the extension where a process needs a name
 * of its own. The caller owns *out (mh_free). */
static int
run_glob(const char *output, const char *run_id, char **out)
{
    const char *base = strrchr(output, '/');
    base = base ? base + 1 : output;
    const char *dot = strrchr(base, '.');
    size_t root = dot && dot != base ? (size_t)(dot - output) : strlen(output);
    struct mh_buf b;
    mh_buf_init(&b, 4 * PATH_MAX);
    int rc = put_glob_piece(&b, output, root, run_id);
    if (!rc && (!b.len || b.data[b.len - 1] != '*'))
        rc = mh_buf_put_u8(&b, '*');
    if (!rc)
        rc = put_glob_piece(&b, output + root, strlen(output + root), run_id);
    if (!rc)
        rc = mh_buf_put_u8(&b, 0);
    if (rc) {
        mh_buf_release(&b);
        return rc;
    }
    size_t len;
    *out = (char *)mh_buf_take(&b, &len);
    return MH_OK;
}

/* How to report this run: one pattern, quoted for the shell, that
 * matches this run's captures; with --run when it matches other files too
 * (an -o name without %R, captures of earlier runs next to it). */
static void
print_hint(const char *output, const char *run_id,
           const struct capture *caps, size_t n, const char *cwd)
{
    char *pattern = NULL;
    if (run_glob(output, run_id, &pattern)) {
        mh_warnf("cannot name this run's captures: out of memory");
        return;
    }
    glob_t g;
    int exact = glob(pattern, GLOB_NOSORT, NULL, &g) == 0;
    size_t mine = 0;
    for (size_t i = 0; i < n; i++)
        mine += caps[i].path[0] != '\0';
    if (exact && g.gl_pathc != mine)
        exact = 0;
    for (size_t k = 0; exact && k < g.gl_pathc; k++) {
        size_t i = 0;
        while (i < n && strcmp(caps[i].path, g.gl_pathv[k]))
            i++;
        exact = i < n;
    }
    globfree(&g);
    fprintf(stderr, "memhound: to see what grew: %s report ", self_name());
    if (!exact)
        fprintf(stderr, "--run %s ", run_id);
    print_shell_word(stderr, display_path(pattern, cwd));
    fputc('\n', stderr);
    mh_free(pattern);
}

/* Tells the user which captures appeared and how to read them. */
static void
summarize(const struct run_opts *o, const char *registry,
          const struct child_end *ce, const char *output, const char *run_id)
{
    struct mh_buf b;
    mh_buf_init(&b, REGISTRY_MAX);
    struct capture *caps = NULL;
    size_t n = 0;
    int rc = read_registry(registry, &b);
    if (rc == MH_EIO) {
        mh_warnf("cannot read '%s': %s; the captures cannot be listed",
                 registry, strerror(errno));
        goto cleanup;
    }
    if (!rc)
        rc = parse_registry((char *)b.data, &caps, &n);
    if (rc) {
        mh_warnf("cannot list the captures: %s", mh_strerror(rc));
        goto cleanup;
    }
    n = dedupe(caps, n);

    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof(cwd)))
        cwd[0] = '\0';
    size_t written = 0, failed = 0;
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (!caps[i].path[0]) {
            failed++;
            continue;
        }
        if (stat(caps[i].path, &st)) {
            mh_warnf("capture '%s' (pid %ld) is gone: %s",
                     display_path(caps[i].path, cwd), caps[i].pid,
                     strerror(errno));
            caps[i].path = "";
            continue;
        }
        written++;
        const char *shown = display_path(caps[i].path, cwd);
        if (caps[i].full)
            mh_warnf("capture '%s' (pid %ld) is incomplete: the disk was "
                     "full (%s); recording stopped there",
                     shown, caps[i].pid, caps[i].full);
        else if (!warn_unfinished(&caps[i], shown, ce) && !o->quiet)
            fprintf(stderr, "memhound: wrote capture '%s' (pid %ld)\n",
                    shown, caps[i].pid);
    }
    if (failed && written)
        mh_warnf("%zu Python process%s ran unrecorded (see the memhound "
                 "message%s above)",
                 failed, failed > 1 ? "es" : "", failed > 1 ? "s" : "");
    else if (failed)
        mh_errorf("no capture written: %zu Python process%s could not start "
                  "recording (see above)",
                  failed, failed > 1 ? "es" : "");
    else if (!written && !n)
        explain_no_python(o->command);

    if (written && !o->quiet)
        print_hint(output, run_id, caps, n, cwd);
cleanup:
    mh_free(caps);
    mh_buf_release(&b);
}

int
mh_cmd_run(int argc, char **argv)
{
    struct run_opts o;
    int rc = parse_args(argc, argv, &o);
    if (rc)
        return rc;

    char *pydir = mh_cli_bootstrap_dir();
    if (!pydir)
        return MH_EXIT_FAIL;

    int status = 0, exec_err = 0, exit_code = MH_EXIT_FAIL;
    char *output = NULL, *tmpdir = NULL, *registry = NULL;
    output = absolute_path(o.output);
    if (!output) {
        mh_errorf("cannot resolve '%s': %s", o.output, strerror(errno));
        goto cleanup;
    }
    if (mh_output_preflight(output, o.force, 1) ||
        make_registry(&tmpdir, &registry))
        goto cleanup;
    struct child_end ce = {0};
    char run_id[17];
    if (mh_cli_run_id_new(run_id)) {
        mh_errorf("cannot make a run id: %s", strerror(errno));
        goto cleanup;
    }
    if (prepare_env(&o, pydir, output, registry, run_id) ||
        run_child(o.command, &status, &exec_err, &ce.pid))
        goto cleanup;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    ce.status = status;
    ce.end_ns = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;

    if (exec_err) {
        exit_code = mh_spawn_exec_failed(o.command[0], exec_err);
        goto cleanup;
    }
    summarize(&o, registry, &ce, output, run_id);
    remove_tmpdir(tmpdir);
    mh_free(tmpdir);
    tmpdir = NULL;
    exit_code = mh_spawn_pass_status(status);

cleanup:
    if (tmpdir)
        remove_tmpdir(tmpdir);
    mh_free(tmpdir);
    mh_free(registry);
    mh_free(output);
    mh_free(pydir);
    return exit_code;
}
