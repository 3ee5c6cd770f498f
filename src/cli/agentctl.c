/* Control channel client (agentctl.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../util/clock.h"
#include "../util/ctlsock.h"
#include "agentctl.h"

/* A process's environment is small; a huge one is read this far. */
#define ENVIRON_MAX (256u << 10)

/* The effective uid in /proc/<pid>/status; -1 if unreadable. */
static long
target_uid(long pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    long uid = -1;
    while (fgets(line, sizeof(line), f)) {
        unsigned long real, eff;
        if (sscanf(line, "Uid: %lu %lu", &real, &eff) == 2) {
            uid = (long)eff;
            break;
        }
    }
    fclose(f);
    return uid;
}

/* XDG_RUNTIME_DIR from the target's initial environment into out. */
static int
target_xdg(long pid, char *out, size_t n)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/environ", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char *env = malloc(ENVIRON_MAX);
    if (!env) {
        close(fd);
        return -1;
    }
    size_t len = 0;
    ssize_t k;
    while (len < ENVIRON_MAX - 1 &&
           (k = read(fd, env + len, ENVIRON_MAX - 1 - len)) != 0) {
        if (k < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        len += (size_t)k;
    }
    close(fd);
    env[len] = '\0';
    static const char key[] = "XDG_RUNTIME_DIR=";
    int rc = -1;
    for (size_t i = 0; i < len;) {
        const char *var = env + i;
        size_t vlen = strlen(var);
        if (!strncmp(var, key, sizeof(key) - 1) &&
            var[sizeof(key) - 1] == '/') {
            snprintf(out, n, "%s", var + sizeof(key) - 1);
            rc = 0;
            break;
        }
        i += vlen + 1;
    }
    free(env);
    return rc;
}

/* Adds dir/<pid>.sock to w's candidates (unless too long for a socket
 * address, or already there) and looks at it: the directory and the
 * socket must belong to `uid`, the target's effective user, and the
 * directory be open to nobody else (ctlsock.h). Returns 1 when it is such
 * a socket. */
static int
look_at(struct mh_agentctl_where *w, const char *dir, long pid,
        unsigned long uid)
{
    char p[MH_AGENTCTL_PATH_MAX];
    if (mh_ctlsock_path(dir, pid, p, sizeof(p)) ||
        w->n >= MH_AGENTCTL_CANDIDATES)
        return 0;
    for (int i = 0; i < w->n; i++)
        if (!strcmp(w->cand[i], p))
            return 0;
    int i = w->n++;
    memcpy(w->cand[i], p, sizeof(p));
    char why[sizeof(w->why)];
    if (mh_ctlsock_check_dir(dir, uid, why, sizeof(why))) {
        if (errno == EACCES) {
            if (w->denied < 0)
                w->denied = i;
        } else if (errno != ENOENT && errno != ENOTDIR && w->unsafe < 0) {
            w->unsafe = i;
            memcpy(w->why, why, sizeof(why));
        }
        return 0;
    }
    if (!mh_ctlsock_is_ours(p, uid)) {
        if (errno == EACCES && w->denied < 0)
            w->denied = i;
        else if (errno == ENOTSOCK && w->not_socket < 0)
            w->not_socket = i;
        else if (errno == EPERM && w->unsafe < 0) {
            w->unsafe = i;
            snprintf(w->why, sizeof(w->why),
                     "'%s' does not belong to uid %lu, the user of process "
                     "%ld",
                     p, uid, pid);
        }
        return 0;
    }
    w->found = i;
    return 1;
}

void
mh_agentctl_locate(long pid, struct mh_agentctl_where *w)
{
    char dir[PATH_MAX + 16], xdg[PATH_MAX];
    w->n = 0;
    w->found = w->denied = w->not_socket = w->unsafe = -1;
    w->why[0] = '\0';
    long uid = target_uid(pid);
    unsigned long u = uid >= 0 ? (unsigned long)uid : (unsigned long)geteuid();
    if (!target_xdg(pid, xdg, sizeof(xdg))) {
        snprintf(dir, sizeof(dir), "%s/" MH_CTLSOCK_SUBDIR, xdg);
        if (look_at(w, dir, pid, u))
            return;
    }
    const char *mine = getenv("XDG_RUNTIME_DIR");
    if (mine && mine[0] == '/' && strlen(mine) < PATH_MAX) {
        snprintf(dir, sizeof(dir), "%s/" MH_CTLSOCK_SUBDIR, mine);
        if (look_at(w, dir, pid, u))
            return;
    }
    if (!mh_ctlsock_tmp_dir(u, dir, sizeof(dir)))
        look_at(w, dir, pid, u);
}

static const char *
dir_of(const char *path, char *buf, size_t n)
{
    snprintf(buf, n, "%s", path);
    char *slash = strrchr(buf, '/');
    if (slash && slash != buf)
        *slash = '\0';
    return buf;
}

int
mh_agentctl_explain(const struct mh_agentctl_where *w, long pid, char *out,
                    size_t n)
{
    char dir[MH_AGENTCTL_PATH_MAX];
    if (w->not_socket >= 0) {
        snprintf(out, n, "'%s' is not a socket", w->cand[w->not_socket]);
        return EINVAL;
    }
    if (w->denied >= 0) {
        snprintf(out, n,
                 "cannot reach the control socket of process %ld in '%s': "
                 "Permission denied (only its user or root may ask)",
                 pid, dir_of(w->cand[w->denied], dir, sizeof(dir)));
        return EACCES;
    }
    if (w->unsafe >= 0) {
        snprintf(out, n,
                 "the control socket of process %ld is not used: %s (its "
                 "directory must be its user's alone)",
                 pid, w->why);
        return EPERM;
    }
    int k = w->n;
    if (k <= 1)
        snprintf(out, n,
                 "process %ld is not recording with memhound: no control "
                 "socket at '%s'",
                 pid, k ? w->cand[0] : "");
    else
        snprintf(out, n,
                 "process %ld is not recording with memhound: no control "
                 "socket at '%s'%s%s%s or '%s'",
                 pid, w->cand[0], k > 2 ? ", '" : "", k > 2 ? w->cand[1] : "",
                 k > 2 ? "'" : "", w->cand[k - 1]);
    return ENOENT;
}

int
mh_agentctl_find(long pid, char *out, size_t n)
{
    struct mh_agentctl_where w;
    mh_agentctl_locate(pid, &w);
    if (w.found < 0) {
        errno = w.denied >= 0 ? EACCES : w.unsafe >= 0 ? EPERM : ENOENT;
        return MH_EIO;
    }
    snprintf(out, n, "%s", w.cand[w.found]);
    return MH_OK;
}

int
mh_agentctl_connect(long pid, const char *path, long *peer)
{
    if (peer)
        *peer = -1;
    if (strlen(path) >= MH_AGENTCTL_PATH_MAX) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    /* Connecting to a listening Unix socket does not wait for the peer:
     * it completes or fails at once (EAGAIN when its backlog is full). */
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
        int err = errno;
        close(fd);
        errno = err;
        return -1;
    }
    struct ucred cr;
    socklen_t len = sizeof(cr);
    int known = !getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len);
    if (!known || (long)cr.pid != pid) {
        if (peer && known)
            *peer = (long)cr.pid;
        close(fd);
        errno = EPERM;
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK)) {
        int err = errno;
        close(fd);
        errno = err;
        return -1;
    }
    return fd;
}

int
mh_agentctl_send(int fd, const char *request)
{
    return mh_agentctl_send_fd(fd, request, -1);
}

int
mh_agentctl_send_fd(int fd, const char *request, int passfd)
{
    char line[MH_AGENTCTL_LINE_MAX];
    int n = snprintf(line, sizeof(line), "%s\n", request);
    if (n < 0 || (size_t)n >= sizeof(line)) {
        errno = EMSGSIZE;
        return MH_EIO;
    }
    const char *p = line;
    size_t left = (size_t)n;
    /* The request is far smaller than an empty socket buffer; a partial
     * send means the agent stopped reading. */
    while (left) {
        struct iovec iov = {.iov_base = (void *)p, .iov_len = left};
        union {
            char buf[CMSG_SPACE(sizeof(int))];
            struct cmsghdr align;
        } u;
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
        if (passfd >= 0) {
            /* The descriptor goes with the first byte of the request. */
            memset(&u, 0, sizeof(u));
            m.msg_control = u.buf;
            m.msg_controllen = sizeof(u.buf);
            struct cmsghdr *h = CMSG_FIRSTHDR(&m);
            h->cmsg_level = SOL_SOCKET;
            h->cmsg_type = SCM_RIGHTS;
            h->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(h), &passfd, sizeof(int));
        }
        ssize_t k = sendmsg(fd, &m, MSG_NOSIGNAL);
        if (k > 0)
            passfd = -1;
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return MH_EIO;
        p += k;
        left -= (size_t)k;
    }
    return MH_OK;
}

int
mh_agentctl_read(int fd, struct mh_agentctl_reply *r)
{
    for (;;) {
        if (r->len >= sizeof(r->line) - 1) {
            errno = EMSGSIZE;
            return -1;
        }
        ssize_t k = recv(fd, r->line + r->len, sizeof(r->line) - 1 - r->len,
                         MSG_DONTWAIT);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
        if (k == 0) {
            errno = 0;
            return -1;
        }
        r->len += (size_t)k;
        r->line[r->len] = '\0';
        char *nl = memchr(r->line, '\n', r->len);
        if (nl) {
            *nl = '\0';
            return 1;
        }
    }
}

int
mh_agentctl_wait(int fd, struct mh_agentctl_reply *r, double timeout)
{
    double deadline = mh_clock_mono() + timeout;
    int rc;
    while (!(rc = mh_agentctl_read(fd, r))) {
        double left = deadline - mh_clock_mono();
        if (left <= 0) {
            errno = ETIMEDOUT;
            return MH_EIO;
        }
        /* poll() takes an int of milliseconds: wait a day at a time. */
        int ms = left > 86400 ? 86400000 : (int)(left * 1000) + 1;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, ms) < 0 && errno != EINTR)
            return MH_EIO;
    }
    return rc == 1 ? MH_OK : MH_EIO;
}

int
mh_agentctl_request(long pid, const char *request, double timeout,
                    struct mh_agentctl_reply *r)
{
    char path[MH_AGENTCTL_PATH_MAX];
    r->len = 0;
    r->line[0] = '\0';
    if (mh_agentctl_find(pid, path, sizeof(path)))
        return MH_EIO;
    int fd = mh_agentctl_connect(pid, path, NULL);
    if (fd < 0)
        return MH_EIO;
    int rc = mh_agentctl_send(fd, request);
    if (rc == MH_OK)
        rc = mh_agentctl_wait(fd, r, timeout);
    int err = errno;
    close(fd);
    errno = err;
    return rc;
}
