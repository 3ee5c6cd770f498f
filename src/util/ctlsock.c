/* Control socket directories and names (ctlsock.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctlsock.h"

int
mh_ctlsock_tmp_dir(unsigned long uid, char *out, size_t n)
{
    int k = snprintf(out, n, MH_CTLSOCK_TMP_FMT, uid);
    return k < 0 || (size_t)k >= n ? MH_ETOOBIG : MH_OK;
}

int
mh_ctlsock_path(const char *dir, long pid, char *out, size_t n)
{
    int k = snprintf(out, n, "%s/%ld" MH_CTLSOCK_SUFFIX, dir, pid);
    return k < 0 || (size_t)k >= n ? MH_ETOOBIG : MH_OK;
}

int
mh_ctlsock_check_dir(const char *dir, unsigned long uid, char *err,
                     size_t errlen)
{
    struct stat st;
    if (lstat(dir, &st)) {
        snprintf(err, errlen, "cannot check '%s': %s", dir, strerror(errno));
        return MH_EIO;
    }
    if (S_ISLNK(st.st_mode)) {
        snprintf(err, errlen, "'%s' is a symbolic link", dir);
        errno = ELOOP;
        return MH_EIO;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "'%s' is not a directory", dir);
        errno = EEXIST;
        return MH_EIO;
    }
    if ((unsigned long)st.st_uid != uid) {
        snprintf(err, errlen, "'%s' belongs to uid %lu, not to uid %lu", dir,
                 (unsigned long)st.st_uid, uid);
        errno = EPERM;
        return MH_EIO;
    }
    if (st.st_mode & 077) {
        snprintf(err, errlen, "'%s' is open to other users (mode %03o)", dir,
                 (unsigned)(st.st_mode & 0777));
        errno = EPERM;
        return MH_EIO;
    }
    return MH_OK;
}

int
mh_ctlsock_make_dir(const char *dir, char *err, size_t errlen)
{
    /* mkdir() does not follow a symlink in the last component: one there
     * makes it fail with EEXIST, and the check below refuses it. */
    if (mkdir(dir, 0700) == 0) {
        /* The umask may have taken bits we need; never more than 0700. */
        if (chmod(dir, 0700)) {
            snprintf(err, errlen, "cannot set the mode of '%s': %s", dir,
                     strerror(errno));
            return MH_EIO;
        }
    } else if (errno != EEXIST) {
        snprintf(err, errlen, "cannot create '%s': %s", dir, strerror(errno));
        return MH_EIO;
    }
    return mh_ctlsock_check_dir(dir, (unsigned long)geteuid(), err, errlen);
}

int
mh_ctlsock_parent_ok(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) || !S_ISDIR(st.st_mode))
        return 0;
    if (st.st_uid != geteuid() && st.st_uid != 0)
        return 0;
    return !(st.st_mode & 022) || (st.st_mode & S_ISVTX);
}

int
mh_ctlsock_is_ours(const char *path, unsigned long uid)
{
    struct stat st;
    if (lstat(path, &st))
        return 0;
    if (!S_ISSOCK(st.st_mode)) {
        errno = ENOTSOCK;
        return 0;
    }
    if ((unsigned long)st.st_uid != uid) {
        errno = EPERM;
        return 0;
    }
    return 1;
}

/* Whether nobody listens on the socket `name` in `dir`. */
static int
dead_socket(const char *dir, const char *name)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    int k = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", dir, name);
    if (k < 0 || (size_t)k >= sizeof(sa.sun_path))
        return 0;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    int dead = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) &&
               errno == ECONNREFUSED;
    close(fd);
    return dead;
}

void
mh_ctlsock_sweep(const char *dir, long self)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (end == e->d_name || strcmp(end, MH_CTLSOCK_SUFFIX) || pid <= 0 ||
            pid == self)
            continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) ||
            !S_ISSOCK(st.st_mode))
            continue;
        if (kill((pid_t)pid, 0) && errno == ESRCH &&
            dead_socket(dir, e->d_name))
            unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
}
