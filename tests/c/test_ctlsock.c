/* The control socket directory rule (util/ctlsock.h): what the agent
 * creates and what the commands accept. */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"
#include "util/ctlsock.h"

/* A fresh private directory; the caller removes it. */
static void
temp_dir(char *path, size_t n)
{
    snprintf(path, n, "/tmp/mh-ctlsock-XXXXXX");
    CHECK(mkdtemp(path) != NULL);
}

MH_TEST(ctlsock_dir_rule)
{
    char base[64], dir[128], link[128], err[512];
    temp_dir(base, sizeof(base));
    unsigned long me = (unsigned long)geteuid();

    snprintf(dir, sizeof(dir), "%s/memhound", base);
    CHECK_EQ_INT(mh_ctlsock_make_dir(dir, err, sizeof(err)), MH_OK);
    struct stat st;
    CHECK(!lstat(dir, &st) && (st.st_mode & 0777) == 0700);
    CHECK_EQ_INT(mh_ctlsock_make_dir(dir, err, sizeof(err)), MH_OK);
    CHECK_EQ_INT(mh_ctlsock_check_dir(dir, me, err, sizeof(err)), MH_OK);

    /* another user's: refused, named */
    CHECK_EQ_INT(mh_ctlsock_check_dir(dir, me + 1, err, sizeof(err)),
                 MH_EIO);
    CHECK(strstr(err, "belongs to uid") != NULL);
    CHECK_EQ_INT(errno, EPERM);

    /* open to others: refused, for the agent and for the commands */
    CHECK(!chmod(dir, 0750));
    CHECK_EQ_INT(mh_ctlsock_check_dir(dir, me, err, sizeof(err)), MH_EIO);
    CHECK(strstr(err, "open to other users (mode 750)") != NULL);
    CHECK_EQ_INT(mh_ctlsock_make_dir(dir, err, sizeof(err)), MH_EIO);
    CHECK(!chmod(dir, 0700));

    /* a symlink to a good directory: refused, not followed */
    snprintf(link, sizeof(link), "%s/link", base);
    CHECK(!symlink(dir, link));
    CHECK_EQ_INT(mh_ctlsock_make_dir(link, err, sizeof(err)), MH_EIO);
    CHECK(strstr(err, "symbolic link") != NULL);
    errno = ENOENT;
    CHECK_EQ_INT(mh_ctlsock_check_dir(link, me, err, sizeof(err)), MH_EIO);
    CHECK_EQ_INT(errno, ELOOP);

    /* missing: ENOENT, which the commands take as "not there" */
    char none[160];
    snprintf(none, sizeof(none), "%s/none", base);
    CHECK_EQ_INT(mh_ctlsock_check_dir(none, me, err, sizeof(err)), MH_EIO);
    CHECK_EQ_INT(errno, ENOENT);

    /* parents: ours and private, or sticky like /tmp; not open to all */
    CHECK(mh_ctlsock_parent_ok(base));
    CHECK(mh_ctlsock_parent_ok("/tmp"));
    CHECK(!chmod(base, 0777));
    CHECK(!mh_ctlsock_parent_ok(base));
    CHECK(!chmod(base, 01777));
    CHECK(mh_ctlsock_parent_ok(base));
    CHECK(!chmod(base, 0700));
    CHECK(!mh_ctlsock_parent_ok(none));

    unlink(link);
    rmdir(dir);
    rmdir(base);
}

MH_TEST(ctlsock_names_and_sweep)
{
    char base[64], path[100], tmp[64];
    temp_dir(base, sizeof(base));
    CHECK_EQ_INT(mh_ctlsock_tmp_dir(1000, tmp, sizeof(tmp)), MH_OK);
    CHECK_EQ_STR(tmp, "/tmp/memhound-1000");
    CHECK_EQ_INT(mh_ctlsock_tmp_dir(1000, tmp, 8), MH_ETOOBIG);

    /* a socket of a pid that cannot exist, nobody listening: swept; a
     * live one (ours) and a plain file with a socket's name: kept */
    long dead = 0x7ffffff0L;
    CHECK_EQ_INT(mh_ctlsock_path(base, dead, path, sizeof(path)), MH_OK);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(fd >= 0 && !bind(fd, (struct sockaddr *)&sa, sizeof(sa)));
    close(fd);
    CHECK(mh_ctlsock_is_ours(path, (unsigned long)geteuid()));
    CHECK(!mh_ctlsock_is_ours(path, (unsigned long)geteuid() + 1));
    CHECK_EQ_INT(errno, EPERM);

    char mine[100], plain[100];
    CHECK_EQ_INT(mh_ctlsock_path(base, (long)getpid(), mine, sizeof(mine)),
                 MH_OK);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", mine);
    int live = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(live >= 0 && !bind(live, (struct sockaddr *)&sa, sizeof(sa)));
    CHECK(!listen(live, 1));
    CHECK_EQ_INT(mh_ctlsock_path(base, dead - 1, plain, sizeof(plain)),
                 MH_OK);
    FILE *f = fopen(plain, "w");
    CHECK(f != NULL);
    fclose(f);
    CHECK(!mh_ctlsock_is_ours(plain, (unsigned long)geteuid()));
    CHECK_EQ_INT(errno, ENOTSOCK);

    mh_ctlsock_sweep(base, 0);
    struct stat st;
    CHECK(lstat(path, &st) && errno == ENOENT);
    CHECK(!lstat(mine, &st));
    CHECK(!lstat(plain, &st));
    close(live);
    unlink(mine);
    unlink(plain);
    rmdir(base);
}
