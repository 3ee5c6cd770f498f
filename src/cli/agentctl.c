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
 * address, or already there) and looks at it. Returns 1 when it is a
 * socket. */
static int
look_at(struct mh_agentctl_where *w, const char *dir, long pid)
{
    char p[MH_AGENTCTL_PATH_MAX];
    int k = snprintf(p, sizeof(p), "%s/%ld.sock", dir, pid);
    if (k < 0 || (size_t)k >= sizeof(p) || w->n >= MH_AGENTCTL_CANDIDATES)
        return 0;
    for (int i = 0; i < w->n; i++)
        if (!strcmp(w->cand[i], p))
            return 0;
    int i = w->n++;
    memcpy(w->cand[i], p, sizeof(p));
    struct stat st;
    if (lstat(p, &st)) {
        if (errno == EACCES && w->denied < 0)
            w->denied = i;
        return 0;
    }
    if (!S_ISSOCK(st.st_mode)) {
        if (w->not_socket < 0)
            w->not_socket = i;
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
    w->found = w->denied = w->not_socket = -1;
    if (!target_xdg(pid, xdg, sizeof(xdg))) {
        snprintf(dir, sizeof(dir), "%s/memhound", xdg);
        if (look_at(w, dir, pid))
            return;
    }
    const char *mine = getenv("XDG_RUNTIME_DIR");
    if (mine && mine[0] == '/' && strlen(mine) < PATH_MAX) {
        snprintf(dir, sizeof(dir), "%s/memhound", mine);
        if (look_at(w, dir, pid))
            return;
    }
    long uid = target_uid(pid);
    snprintf(dir, sizeof(dir), "/tmp/memhound-%ld",
             uid >= 0 ? uid : (long)geteuid());
    look_at(w, dir, pid);
}

int
mh_agentctl_find(long pid, char *out, size_t n)
{
    struct mh_agentctl_where w;
    mh_agentctl_locate(pid, &w);
    if (w.found < 0) {
        errno = w.denied >= 0 ? EACCES : ENOENT;
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
        ssize_t k = send(fd, p, left, MSG_NOSIGNAL);
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
