#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fd.h"

int
mh_fd_high_base(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur == RLIM_INFINITY ||
        rl.rlim_cur > (rlim_t)MH_FD_HIGH_BASE + MH_FD_HIGH_BASE / 8)
        return MH_FD_HIGH_BASE;
    /* Leave the top eighth free for other high users (and the program's
     * last files) rather than sit on the very last numbers. */
    rlim_t base = rl.rlim_cur - rl.rlim_cur / 8;
    if (base < 3)
        return 3;
    return (int)base;
}

int
mh_fd_move_high(int fd)
{
    if (fd < 0)
        return fd;
    int hi = fcntl(fd, F_DUPFD_CLOEXEC, mh_fd_high_base());
    if (hi >= 0) {
        close(fd);
        return hi;
    }
    int fl = fcntl(fd, F_GETFD);
    if (fl >= 0 && !(fl & FD_CLOEXEC))
        (void)fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
    return fd;
}

int
mh_fd_id_get(int fd, struct mh_fd_id *id)
{
    struct stat st;
    if (fstat(fd, &st))
        return -1;
    id->dev = st.st_dev;
    id->ino = st.st_ino;
    return 0;
}

int
mh_fd_is(int fd, const struct mh_fd_id *id)
{
    struct stat st;
    if (fd < 0 || fstat(fd, &st))
        return 0;
    return st.st_dev == id->dev && st.st_ino == id->ino;
}
