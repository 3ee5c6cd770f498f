/* util/fd: descriptors moved out of the program's way, and the check that
 * tells memhound's file from a program's that took its number. */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "harness.h"
#include "util/fd.h"

static int
tmpfile_fd(char *path, size_t n)
{
    snprintf(path, n, "/tmp/mh-test-fd.XXXXXX");
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    return fd;
}

MH_TEST(fd_move_high_is_high_and_cloexec)
{
    char path[64];
    int low = tmpfile_fd(path, sizeof(path));
    unlink(path);
    int fd = mh_fd_move_high(low);
    CHECK(fd >= mh_fd_high_base());
    CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    CHECK(fcntl(low, F_GETFD) < 0); /* the low number is free again */
    close(fd);
    CHECK_EQ_INT(mh_fd_move_high(-1), -1);
}

MH_TEST(fd_is_tells_a_reused_number)
{
    char a[64], b[64];
    int fd = mh_fd_move_high(tmpfile_fd(a, sizeof(a)));
    struct mh_fd_id id;
    CHECK_EQ_INT(mh_fd_id_get(fd, &id), 0);
    CHECK(mh_fd_is(fd, &id));
    /* The program closes it: not ours any more. */
    close(fd);
    CHECK(!mh_fd_is(fd, &id));
    /* ...and puts a file of its own at that number. */
    int other = tmpfile_fd(b, sizeof(b));
    CHECK_EQ_INT(dup2(other, fd), fd);
    CHECK(!mh_fd_is(fd, &id));
    close(fd);
    close(other);
    unlink(a);
    unlink(b);
}

MH_TEST(fd_high_base_follows_a_low_limit)
{
    struct rlimit rl;
    CHECK_EQ_INT(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rl.rlim_cur = 64;
    CHECK_EQ_INT(setrlimit(RLIMIT_NOFILE, &rl), 0);
    CHECK_EQ_INT(mh_fd_high_base(), 56);
    char path[64];
    int fd = mh_fd_move_high(tmpfile_fd(path, sizeof(path)));
    unlink(path);
    CHECK(fd >= 56 && fd < 64);
    rl.rlim_cur = 8;
    CHECK_EQ_INT(setrlimit(RLIMIT_NOFILE, &rl), 0);
    CHECK_EQ_INT(mh_fd_high_base(), 7);
    rl.rlim_cur = 2;
    CHECK_EQ_INT(setrlimit(RLIMIT_NOFILE, &rl), 0);
    CHECK_EQ_INT(mh_fd_high_base(), 3);
}
