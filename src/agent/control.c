/* The control channel (control.h): a Unix socket served from the writer
 * thread's tick, so that a heap dump can be asked for from outside
 * without a thread of our own and without a signal handler in the
 * target. The work of a dump is heapdump.c's; this file only parses
 * requests, takes the GIL around mh_heap_dump(), waits for walkers
 * without blocking, and writes the markers. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../format/capture.h"
#include "../util/ctlsock.h"
#include "../util/fd.h"
#include "../util/proc.h"
#include "allocstats.h"
#include "control.h"
#include "heapdump.h"
#include "requests.h"
#include "tracker.h"
#include "writer.h"

#define MAX_CONNS 8
#define MAX_LINE (PATH_MAX + 32)
/* A client that has not sent its request line by then is dropped: it
 * must not hold a slot for ever. */
#define REQUEST_TIMEOUT_NS (5ull * 1000000000ull)
#define SOCK_PATH_MAX sizeof(((struct sockaddr_un *)0)->sun_path)

struct conn {
    int fd; /* -1: a free slot */
    uint64_t since_ns;
    size_t len;
    char line[MAX_LINE];
    /* dump-wait: the walker this client waits for (0: none yet) */
    pid_t child;
    uint64_t pause_ns, forked_ns;
    /* A file the client passed with its request (SCM_RIGHTS) for the
     * dump to go to; -1 when none. Its device and inode as received: the
     * number must still name that file when the dump starts. */
    int passed_fd;
    dev_t passed_dev;
    ino_t passed_ino;
};

/* Owned by the writer thread while it runs; open/close/forget run while
 * it is stopped (GIL held). ndumps is atomic: the in-process API names
 * dumps from any thread. */
static struct {
    int fd;      /* the listening socket, -1 when closed */
    pid_t owner; /* the process that bound it: only it unlinks it */
    uid_t euid;  /* the effective user it was made for */
    char path[SOCK_PATH_MAX];
    char dir[SOCK_PATH_MAX];
    char xdg[SOCK_PATH_MAX]; /* $XDG_RUNTIME_DIR at open, "" when unset */
    struct conn conns[MAX_CONNS];
    int nconns;
    uint64_t every_ns, next_ns; /* periodic dumps; every_ns 0 = off */
    pid_t periodic_child;       /* a periodic walker still running */
    unsigned ndumps;
} ctl = {.fd = -1};

const char *
mh_control_path(void)
{
    return ctl.fd >= 0 ? ctl.path : "";
}

static uint64_t
mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- the socket ---- */

/* Picks and prepares the directory (ctlsock.h): $XDG_RUNTIME_DIR/memhound
 * when the variable names a directory of ours (or root's) that others
 * cannot write, else /tmp/memhound-<euid>. */
static int
socket_dir(char *dir, size_t n, char *err, size_t errlen)
{
    if (ctl.xdg[0] == '/' && mh_ctlsock_parent_ok(ctl.xdg)) {
        int k = snprintf(dir, n, "%s/" MH_CTLSOCK_SUBDIR, ctl.xdg);
        if (k > 0 && (size_t)k < n && !mh_ctlsock_make_dir(dir, err, errlen))
            return 0;
        /* A runtime dir we cannot use (another user's, after a change of
         * user): /tmp still can be. */
    }
    if (mh_ctlsock_tmp_dir((unsigned long)geteuid(), dir, n)) {
        snprintf(err, errlen, "socket directory name too long");
        return -1;
    }
    return mh_ctlsock_make_dir(dir, err, errlen);
}

/* Binds and listens on this process's socket in its effective user's
 * directory; ctl's fd, path and owner are set on success. */
static int
listen_socket(char *err, size_t errlen)
{
    char dir[SOCK_PATH_MAX];
    if (socket_dir(dir, sizeof(dir), err, errlen))
        return -1;
    mh_ctlsock_sweep(dir, (long)getpid());
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (mh_ctlsock_path(dir, (long)getpid(), sa.sun_path,
                        sizeof(sa.sun_path))) {
        snprintf(err, errlen, "socket path in '%s' is too long", dir);
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create a socket: %s", strerror(errno));
        return -1;
    }
    /* A file with our pid is left by a process that was killed: the pid
     * is ours now, and the directory only ours (0700: the moment between
     * bind and chmod is not a window for anyone else; the umask is the
     * program's and is left alone). */
    unlink(sa.sun_path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
        chmod(sa.sun_path, 0600) || listen(fd, MAX_CONNS)) {
        snprintf(err, errlen, "cannot listen on '%s': %s", sa.sun_path,
                 strerror(errno));
        unlink(sa.sun_path);
        close(fd);
        return -1;
    }
    memcpy(ctl.path, sa.sun_path, sizeof(ctl.path));
    memcpy(ctl.dir, dir, sizeof(ctl.dir));
    ctl.fd = mh_fd_move_high(fd); /* out of the program's way (fd.h) */
    ctl.owner = getpid();
    ctl.euid = geteuid();
    return 0;
}

int
mh_control_open(char *err, size_t errlen)
{
    if (ctl.fd >= 0)
        return 0;
    /* Read once, with the GIL held: the writer thread may need it later
     * (a change of user) and must not call getenv() while the program
     * may change its environment. */
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    snprintf(ctl.xdg, sizeof(ctl.xdg), "%s", xdg && xdg[0] == '/' ? xdg : "");
    if (listen_socket(err, errlen))
        return -1;
    for (int i = 0; i < MAX_CONNS; i++) {
        ctl.conns[i].fd = -1;
        ctl.conns[i].passed_fd = -1;
    }
    ctl.nconns = 0;
    return 0;
}

static void
drop_conn(struct conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    if (c->passed_fd >= 0)
        close(c->passed_fd);
    c->fd = c->passed_fd = -1;
    c->child = 0;
}

static void
drop_conns(void)
{
    for (int i = 0; i < MAX_CONNS; i++)
        drop_conn(&ctl.conns[i]);
    ctl.nconns = 0;
}

void
mh_control_close(void)
{
    if (ctl.fd < 0)
        return;
    drop_conns();
    close(ctl.fd);
    ctl.fd = -1;
    if (ctl.owner != getpid())
        return;
    unlink(ctl.path);
    /* Children that changed user moved their sockets out of this
     * directory and could not remove the old ones: a master ending after
     * its workers removes what they left. */
    mh_ctlsock_sweep(ctl.dir, (long)getpid());
}

/* The process changed its effective user (a server's worker dropping
 * root: gunicorn --user, uWSGI uid): its socket moves to the new user's
 * directory, where that user's and root's commands look for it. The old
 * file is removed when the new user still may; otherwise the sweep of the
 * next process of the old user that records or ends removes it. */
static void
follow_user(void)
{
    char old[SOCK_PATH_MAX];
    memcpy(old, ctl.path, sizeof(old));
    drop_conns();
    close(ctl.fd);
    ctl.fd = -1;
    unlink(old);
    char err[SOCK_PATH_MAX + 128];
    if (listen_socket(err, sizeof(err))) {
        static int warned;
        if (!warned++)
            mh_warnf("no control channel for process %d after its change "
                     "to uid %u ('memhound snapshot' cannot reach it): %s",
                     (int)getpid(), (unsigned)geteuid(), err);
        ctl.euid = geteuid(); /* tried for this user: not again */
    }
}

void
mh_control_forget(void)
{
    ctl.periodic_child = 0;     /* the parent's, not ours to wait for */
    ctl.next_ns = ctl.every_ns; /* the child's capture clock starts at 0 */
    __atomic_store_n(&ctl.ndumps, 0, __ATOMIC_RELAXED);
    if (ctl.fd < 0)
        return;
    drop_conns();
    close(ctl.fd);
    ctl.fd = -1;
}

void
mh_control_set_heap_every(uint64_t every_ns, uint64_t now_ns)
{
    ctl.every_ns = every_ns;
    ctl.next_ns = now_ns + every_ns;
}

int
mh_control_busy(void)
{
    return ctl.nconns > 0;
}

/* ---- dumps ---- */

int
mh_control_next_dump_path(char *out, size_t n)
{
    if (!mh_writer_is_open())
        return -1;
    const char *cap = mh_writer_path();
    const char *base = strrchr(cap, '/');
    base = base ? base + 1 : cap;
    const char *dot = strrchr(base, '.');
    size_t stem = dot && dot != base ? (size_t)(dot - cap) : strlen(cap);
    unsigned k = __atomic_add_fetch(&ctl.ndumps, 1, __ATOMIC_RELAXED);
    int len = snprintf(out, n, "%.*s.heap%u.mhh", (int)stem, cap, k);
    return len < 0 || (size_t)len >= n ? -1 : 0;
}

void
mh_control_note_dump(const char *path)
{
    if (mh_writer_is_open())
        mh_writer_put_marker(mh_writer_now_ns(), MH_MARK_HEAP_DUMP, path,
                             strlen(path));
}

/* Forks a walker from the writer thread. Returns 0, or -1 with the
 * reason in err. */
static int
dump(const char *path, int fd, struct mh_heap_dump_result *res, char *err,
     size_t errlen)
{
    PyGILState_STATE g = PyGILState_Ensure();
    int rc = fd >= 0 ? mh_heap_dump_fd(fd, mh_writer_path(), 0, res)
                     : mh_heap_dump(path, mh_writer_path(), 0, res);
    int e = errno;
    PyGILState_Release(g);
    if (rc) {
        snprintf(err, errlen, "cannot dump the heap to '%s': %s", path,
                 strerror(e));
        return -1;
    }
    mh_control_note_dump(path);
    return 0;
}

/* 1 when the walker has exited (without reaping it: mh_heap_reap() does
 * that), 0 while it runs. *status is its wait status, or -1 when someone
 * else reaped it first (the target's own waitpid(-1)). */
static int
walker_done(pid_t child, int *status)
{
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    if (waitid(P_PID, (id_t)child, &si, WEXITED | WNOHANG | WNOWAIT)) {
        if (errno == EINTR)
            return 0;
        *status = -1;
        return 1;
    }
    if (si.si_pid == 0)
        return 0;
    if (si.si_code == CLD_EXITED)
        *status = (si.si_status & 0xff) << 8;
    else
        *status = si.si_status & 0x7f; /* killed or dumped: the signal */
    return 1;
}

/* ---- connections ---- */

static void reply(struct conn *c, const char *fmt, ...) MH_PRINTF(2, 3);

/* Sends one line and closes the connection. The reply is short and the
 * socket buffer empty, so a non-blocking send either takes it whole or
 * the client has gone. */
static void
reply(struct conn *c, const char *fmt, ...)
{
    char buf[MAX_LINE + 256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n > sizeof(buf) - 2)
        n = (int)sizeof(buf) - 2;
    buf[n++] = '\n';
    ssize_t k;
    do
        k = send(c->fd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (k < 0 && errno == EINTR);
    drop_conn(c);
    ctl.nconns--;
}

/* `stats`: the numbers `memhound inspect` puts side by side, and the
 * requests ended in this session (request_end()), which guard's
 * --max-requests and top's REQ/S read; web=1 when the process counts
 * requests at all (web=0: requests=0 means "not counted"). */
static void
stats(struct conn *c)
{
    struct mh_proc_mem m = {0};
    if (mh_proc_read_mem((long)getpid(), &m))
        m.rss = mh_allocstats_rss(); /* no smaps_rollup: USS unknown, 0 */
    mh_allocstats_refresh(1);
    const struct mh_allocstats *a = mh_allocstats_get();
    pthread_mutex_lock(&mh_tracker.lock);
    double live = mh_tracker.live_bytes;
    uint64_t samples = mh_tracker.samples;
    uint64_t requests = mh_tracker.requests;
    pthread_mutex_unlock(&mh_tracker.lock);
    reply(c,
          "ok pid=%d rss=%llu uss=%llu live=%llu arena_bytes=%llu "
          "arena_free=%llu malloc_arena=%llu malloc_inuse=%llu "
          "malloc_free=%llu malloc_mmap=%llu pymalloc=%d mallinfo=%d "
          "requests=%llu samples=%llu web=%d",
          (int)getpid(), (unsigned long long)m.rss,
          (unsigned long long)m.uss,
          (unsigned long long)(live > 0 ? live : 0),
          (unsigned long long)a->arena_bytes,
          (unsigned long long)a->arena_free,
          (unsigned long long)a->malloc_arena,
          (unsigned long long)a->malloc_inuse,
          (unsigned long long)a->malloc_free,
          (unsigned long long)a->malloc_mmap,
          !!(a->flags & MH_TL_PYMALLOC), !!(a->flags & MH_TL_MALLOC),
          (unsigned long long)requests, (unsigned long long)samples,
          mh_requests_counting());
}

/* `trim`: glibc gives the free pages inside its heaps back to the
 * kernel (all arenas, since 2.8). On the writer thread, like everything
 * here: the target's threads are not stopped, malloc takes its locks. */
static void
trim(struct conn *c)
{
    uint64_t before = mh_allocstats_rss();
    int released = malloc_trim(0);
    uint64_t after = mh_allocstats_rss();
    mh_allocstats_refresh(0);
    reply(c, "ok rss_before=%llu rss_after=%llu released=%d",
          (unsigned long long)before, (unsigned long long)after, released);
}

/* Whether the passed descriptor is a regular file we may write, and
 * still the file that was passed. */
static int
writable_file(const struct conn *c, int fd)
{
    struct stat st;
    int fl = fcntl(fd, F_GETFL);
    return !fstat(fd, &st) && S_ISREG(st.st_mode) &&
           st.st_dev == c->passed_dev && st.st_ino == c->passed_ino &&
           fl >= 0 && (fl & O_ACCMODE) != O_RDONLY;
}

static void
handle(struct conn *c, char *line)
{
    char err[MAX_LINE + 128];
    char *arg = strchr(line, ' ');
    if (arg)
        *arg++ = '\0';
    if (!strcmp(line, MH_CTL_PING)) {
        reply(c, "ok %d %s", (int)getpid(), mh_writer_path());
    } else if (!strcmp(line, MH_CTL_STATS)) {
        stats(c);
    } else if (!strcmp(line, MH_CTL_TRIM)) {
        trim(c);
    } else if (!strcmp(line, MH_CTL_FLUSH)) {
        mh_writer_flush();
        reply(c, "ok");
    } else if (!strcmp(line, MH_CTL_DUMP) ||
               !strcmp(line, MH_CTL_DUMP_WAIT)) {
        int wait = !strcmp(line, MH_CTL_DUMP_WAIT);
        if (!arg || arg[0] != '/') {
            reply(c, "error %s needs an absolute path", line);
            return;
        }
        struct mh_heap_dump_result res = {0};
        int fd = c->passed_fd;
        c->passed_fd = -1; /* dump() takes it */
        if (fd >= 0 && !writable_file(c, fd)) {
            close(fd);
            reply(c, "error the descriptor passed with %s is not a regular "
                     "file open for writing",
                  line);
            return;
        }
        if (dump(arg, fd, &res, err, sizeof(err))) {
            reply(c, "error %s", err);
            return;
        }
        if (!wait) {
            reply(c, "ok %d %llu", (int)res.child,
                  (unsigned long long)res.pause_ns);
            return;
        }
        c->child = res.child;
        c->pause_ns = res.pause_ns;
        c->forked_ns = mono_ns();
    } else {
        reply(c, "error unknown request '%.64s'", line);
    }
}

static void
accept_new(uint64_t now)
{
    for (;;) {
        int fd = accept4(ctl.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or a client that gave up meanwhile */
        fd = mh_fd_move_high(fd); /* away from the program's (fd.h) */
        struct ucred cr;
        socklen_t len = sizeof(cr);
        int ok = !getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) &&
                 (cr.uid == geteuid() || cr.uid == 0);
        struct conn *c = NULL;
        for (int i = 0; ok && i < MAX_CONNS && !c; i++)
            if (ctl.conns[i].fd < 0)
                c = &ctl.conns[i];
        if (!c) {
            static const char busy[] = "error busy: too many requests\n";
            static const char denied[] = "error permission denied\n";
            const char *m = ok ? busy : denied;
            ssize_t k = send(fd, m, strlen(m), MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)k;
            close(fd);
            continue;
        }
        c->fd = fd;
        c->passed_fd = -1;
        c->since_ns = now;
        c->len = 0;
        c->child = 0;
        ctl.nconns++;
    }
}

/* Reads what has arrived of the request line, and a descriptor passed
 * with it: one is kept (the first), others are closed. */
static ssize_t
recv_part(struct conn *c)
{
    struct iovec iov = {.iov_base = c->line + c->len,
                        .iov_len = sizeof(c->line) - 1 - c->len};
    union {
        char buf[CMSG_SPACE(4 * sizeof(int))];
        struct cmsghdr align;
    } u;
    struct msghdr m = {.msg_iov = &iov,
                       .msg_iovlen = 1,
                       .msg_control = u.buf,
                       .msg_controllen = sizeof(u.buf)};
    ssize_t k = recvmsg(c->fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (k < 0)
        return k;
    for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h)) {
        if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(h) + i * sizeof(int), sizeof(int));
            if (c->passed_fd >= 0) {
                close(fd);
                continue;
            }
            fd = mh_fd_move_high(fd); /* away from the program's (fd.h) */
            struct stat st;
            if (fstat(fd, &st)) {
                close(fd);
                continue;
            }
            c->passed_fd = fd;
            c->passed_dev = st.st_dev;
            c->passed_ino = st.st_ino;
        }
    }
    return k;
}

/* Reads what the client sent; handles the request once its line is
 * whole. */
static void
serve(struct conn *c, uint64_t now)
{
    for (;;) {
        ssize_t k = recv_part(c);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                goto gone;
            break;
        }
        if (k == 0)
            goto gone;
        c->len += (size_t)k;
        c->line[c->len] = '\0';
        char *nl = memchr(c->line, '\n', c->len);
        if (nl) {
            *nl = '\0';
            if (nl > c->line && nl[-1] == '\r')
                nl[-1] = '\0';
            if (memchr(c->line, '\0', (size_t)(nl - c->line)))
                reply(c, "error request contains a NUL byte");
            else
                handle(c, c->line);
            return;
        }
        if (c->len >= sizeof(c->line) - 1) {
            reply(c, "error request too long");
            return;
        }
    }
    if (now - c->since_ns > REQUEST_TIMEOUT_NS)
        reply(c, "error no request within %llu s",
              (unsigned long long)(REQUEST_TIMEOUT_NS / 1000000000ull));
    return;
gone:
    drop_conn(c);
    ctl.nconns--;
}

static void
check_waiting(struct conn *c)
{
    int status;
    if (!walker_done(c->child, &status))
        return;
    pid_t child = c->child;
    uint64_t walk = mono_ns() - c->forked_ns;
    if (status == -1) /* reaped by someone else: the file will tell */
        reply(c, "ok %d %llu %llu unverified", (int)child,
              (unsigned long long)c->pause_ns, (unsigned long long)walk);
    else if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        reply(c, "ok %d %llu %llu", (int)child,
              (unsigned long long)c->pause_ns, (unsigned long long)walk);
    else if (WIFEXITED(status))
        reply(c, "error the heap walker (pid %d) failed with exit status %d",
              (int)child, WEXITSTATUS(status));
    else
        reply(c, "error the heap walker (pid %d) was killed by signal %d",
              (int)child, WTERMSIG(status));
}

static void
periodic(uint64_t now)
{
    if (!ctl.every_ns || now < ctl.next_ns)
        return;
    ctl.next_ns = now + ctl.every_ns;
    int status;
    if (ctl.periodic_child && !walker_done(ctl.periodic_child, &status))
        return; /* the last walk is still running: skip this one */
    ctl.periodic_child = 0;
    char path[PATH_MAX], err[PATH_MAX + 128];
    if (mh_control_next_dump_path(path, sizeof(path)))
        return;
    struct mh_heap_dump_result res = {0};
    if (dump(path, -1, &res, err, sizeof(err))) {
        static int warned;
        if (!warned++)
            mh_warnf("%s", err);
        return;
    }
    ctl.periodic_child = res.child;
}

void
mh_control_tick(uint64_t now_ns)
{
    int waiting = 0;
    if (ctl.fd >= 0 && geteuid() != ctl.euid)
        follow_user();
    if (ctl.fd >= 0) {
        accept_new(now_ns);
        for (int i = 0; i < MAX_CONNS; i++) {
            struct conn *c = &ctl.conns[i];
            if (c->fd < 0)
                continue;
            if (c->child)
                check_waiting(c);
            else
                serve(c, now_ns);
            waiting += c->fd >= 0 && c->child;
        }
    }
    periodic(now_ns);
    /* While a client waits for a walker, reaping could take its exit
     * status between our look and the reap: finished walkers stay
     * zombies until nobody waits. */
    if (!waiting)
        mh_heap_reap();
}
