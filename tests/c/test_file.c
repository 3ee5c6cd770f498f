/* mh_file_map(): mapped files, pipes, and the errors the CLI shows; a
 * stream that is not a capture refused from its first bytes;
 * mh_file_create_private() and its checks: links, FIFOs, other users'
 * files, --force, directories. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "format/chunk.h"
#include "harness.h"
#include "util/file.h"
#include "util/mem.h"

/* A temporary file holding `n` bytes of `fill`; the caller unlinks it. */
static void
temp_file(char *path, size_t size, size_t n, char fill)
{
    snprintf(path, size, "/tmp/mh-test-XXXXXX");
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    char block[4096];
    memset(block, fill, sizeof(block));
    while (n) {
        size_t k = n < sizeof(block) ? n : sizeof(block);
        CHECK_EQ_INT(write(fd, block, k), k);
        n -= k;
    }
    close(fd);
}

MH_TEST(file_maps_regular)
{
    char path[64];
    temp_file(path, sizeof(path), 5000, 'q');
    struct mh_file f;
    CHECK_EQ_INT(mh_file_map(&f, path, 0, NULL), MH_OK);
    CHECK_EQ_INT(f.len, 5000);
    CHECK(f.data[0] == 'q' && f.data[4999] == 'q');
    mh_file_unmap(&f);
    CHECK(f.data == NULL && f.len == 0);
    /* Exactly at the cap is fine; one byte over is not. */
    CHECK_EQ_INT(mh_file_map(&f, path, 5000, NULL), MH_OK);
    mh_file_unmap(&f);
    CHECK_EQ_INT(mh_file_map(&f, path, 4999, NULL), MH_ETOOBIG);
    char want[160];
    snprintf(want, sizeof(want),
             "cannot read '%s': file is 5000 bytes, over the 4999 bytes "
             "limit",
             path);
    CHECK_EQ_STR(f.error, want);
    mh_file_unmap(&f); /* harmless after a failure */
    unlink(path);
    temp_file(path, sizeof(path), 3 << 20, 'z');
    CHECK_EQ_INT(mh_file_map(&f, path, 1 << 20, NULL), MH_ETOOBIG);
    snprintf(want, sizeof(want),
             "cannot read '%s': file is 3.0 MiB, over the 1.0 MiB limit",
             path);
    CHECK_EQ_STR(f.error, want);
    unlink(path);
}

MH_TEST(file_errors)
{
    struct mh_file f;
    CHECK_EQ_INT(mh_file_map(&f, "/nonexistent/x.mhc", 0, NULL), MH_EIO);
    CHECK_EQ_STR(f.error, "cannot open '/nonexistent/x.mhc': No such file or "
                          "directory");
    CHECK(f.data == NULL);
    CHECK_EQ_INT(mh_file_map(&f, "/tmp", 0, NULL), MH_EIO);
    CHECK_EQ_STR(f.error, "cannot read '/tmp': Is a directory");
    char path[64];
    temp_file(path, sizeof(path), 0, 0);
    CHECK_EQ_INT(mh_file_map(&f, path, 0, NULL), MH_EFORMAT);
    char want[128];
    snprintf(want, sizeof(want), "cannot read '%s': file is empty", path);
    CHECK_EQ_STR(f.error, want);
    unlink(path);
    if (geteuid() != 0) { /* root reads anything */
        temp_file(path, sizeof(path), 3, 'x');
        CHECK_EQ_INT(chmod(path, 0), 0);
        CHECK_EQ_INT(mh_file_map(&f, path, 0, NULL), MH_EIO);
        snprintf(want, sizeof(want), "cannot open '%s': Permission denied",
                 path);
        CHECK_EQ_STR(f.error, want);
        unlink(path);
    }
}

/* Standard input becomes a pipe fed `head`, then `n` bytes of `fill`
 * (SIZE_MAX: until the reader closes it). Returns the feeder's pid. */
static pid_t
stdin_fed(const void *head, size_t nhead, int fill, size_t n)
{
    int fds[2];
    CHECK_EQ_INT(pipe(fds), 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        if (nhead && write(fds[1], head, nhead) != (ssize_t)nhead)
            _exit(1);
        char block[4096];
        memset(block, fill, sizeof(block));
        while (n) {
            size_t k = n < sizeof(block) ? n : sizeof(block);
            if (write(fds[1], block, k) != (ssize_t)k)
                _exit(n == SIZE_MAX ? 0 : 1); /* the reader is done */
            if (n != SIZE_MAX)
                n -= k;
        }
        _exit(0);
    }
    close(fds[1]);
    CHECK_EQ_INT(dup2(fds[0], 0), 0);
    close(fds[0]);
    return pid;
}

/* Feeds `n` bytes through a pipe as standard input. */
static void
stdin_from_pipe(size_t n)
{
    (void)stdin_fed(NULL, 0, 'p', n);
}

MH_TEST(file_reads_pipe)
{
    stdin_from_pipe(200000);
    struct mh_file f;
    CHECK_EQ_INT(mh_file_map(&f, "-", 0, NULL), MH_OK);
    CHECK_EQ_INT(f.len, 200000);
    CHECK(f.data[0] == 'p' && f.data[199999] == 'p');
    mh_file_unmap(&f);
}

MH_TEST(file_pipe_cap)
{
    stdin_from_pipe(100);
    struct mh_file f;
    CHECK_EQ_INT(mh_file_map(&f, "-", 99, NULL), MH_ETOOBIG);
    CHECK_EQ_STR(f.error, "cannot read '<stdin>': over the 99 bytes limit");
    CHECK(f.data == NULL);
}

MH_TEST(file_pipe_exact_cap)
{
    stdin_from_pipe(100);
    struct mh_file f;
    CHECK_EQ_INT(mh_file_map(&f, "-", 100, NULL), MH_OK);
    CHECK_EQ_INT(f.len, 100);
    mh_file_unmap(&f);
}

MH_TEST(file_pipe_empty)
{
    stdin_from_pipe(0);
    struct mh_file f;
    CHECK_EQ_INT(mh_file_map(&f, "-", 0, NULL), MH_EFORMAT);
    CHECK_EQ_STR(f.error, "cannot read '<stdin>': file is empty");
}

static void *
fail_realloc(void *ctx, void *p, size_t n)
{
    (void)ctx;
    (void)p;
    (void)n;
    return NULL;
}

static void
plain_free(void *ctx, void *p)
{
    (void)ctx;
    free(p);
}

MH_TEST(file_pipe_no_memory)
{
    stdin_from_pipe(10);
    struct mh_mem_ops ops = {fail_realloc, plain_free, NULL};
    mh_mem_set(&ops);
    struct mh_file f;
    CHECK_EQ_INT(mh_file_map(&f, "-", 0, NULL), MH_ENOMEM);
    mh_mem_set(NULL);
    CHECK_EQ_STR(f.error, "cannot read '<stdin>': out of memory");
}

/* ---- mh_file_create_private(): the safe create path ---- */

/* A fresh private directory for one test; the caller removes it with
 * `rm_tree` (flat: files, links, FIFOs). */
static void
temp_dir(char *dir, size_t size)
{
    snprintf(dir, size, "/tmp/mh-create-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
}

static void
rm_tree(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    CHECK_EQ_INT(system(cmd), 0);
}

static void
write_text(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    CHECK(fd >= 0);
    CHECK_EQ_INT(write(fd, text, strlen(text)), strlen(text));
    CHECK_EQ_INT(fchmod(fd, mode), 0);
    close(fd);
}

/* The whole (short) file as a string. */
static const char *
read_text(const char *path)
{
    static char buf[256];
    int fd = open(path, O_RDONLY);
    CHECK(fd >= 0);
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    CHECK(n >= 0);
    buf[n] = '\0';
    close(fd);
    return buf;
}

/* A fresh directory holding `name` with `text` at `mode`; its path in
 * `path` (128 bytes). */
static void
dir_with_file(char *dir, size_t size, char *path, const char *name,
              const char *text, mode_t mode)
{
    temp_dir(dir, size);
    snprintf(path, 128, "%s/%s", dir, name);
    write_text(path, text, mode);
}

MH_TEST(file_create_new_is_private)
{
    char dir[64], path[128];
    temp_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/new.mhc", dir);
    mode_t old = umask(0);
    int fd = mh_file_create_private(path, 0);
    umask(old);
    CHECK(fd >= 0);
    struct stat st;
    CHECK_EQ_INT(fstat(fd, &st), 0);
    CHECK(S_ISREG(st.st_mode));
    CHECK_EQ_INT(st.st_mode & 07777, 0600);
    CHECK_EQ_INT(st.st_uid, geteuid());
    CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    close(fd);
    rm_tree(dir);
}

MH_TEST(file_create_never_into_an_existing_file)
{
    char dir[64], path[128], why[512];
    dir_with_file(dir, sizeof(dir), path, "old.mhc", "MY DATA", 0666);
    errno = 0;
    CHECK_EQ_INT(mh_file_create_private(path, 0), -1);
    CHECK_EQ_INT(errno, EEXIST);
    CHECK_EQ_STR(read_text(path), "MY DATA");
    mh_file_create_error(path, 0, EEXIST, "--force", why, sizeof(why));
    char want[512];
    snprintf(want, sizeof(want),
             "cannot create '%s': the file exists; pass --force to "
             "replace it",
             path);
    CHECK_EQ_STR(why, want);
    rm_tree(dir);
}

MH_TEST(file_create_never_follows_a_symlink)
{
    char dir[64], path[128], target[128], dangling[128], why[512];
    temp_dir(dir, sizeof(dir));
    snprintf(target, sizeof(target), "%s/victim", dir);
    snprintf(path, sizeof(path), "%s/x.mhc", dir);
    write_text(target, "MY DATA", 0644);
    CHECK_EQ_INT(symlink(target, path), 0);
    for (int flags = 0; flags <= MH_FILE_FORCE; flags += MH_FILE_FORCE) {
        CHECK_EQ_INT(mh_file_create_private(path, flags), -1);
        CHECK_EQ_STR(read_text(target), "MY DATA");
        struct stat st;
        CHECK_EQ_INT(lstat(path, &st), 0);
        CHECK(S_ISLNK(st.st_mode));
    }
    CHECK_EQ_INT(mh_file_create_private(path, MH_FILE_FORCE | MH_FILE_APPEND),
                 -1);
    CHECK_EQ_STR(read_text(target), "MY DATA");
    /* A dangling link must not create its target either. */
    snprintf(dangling, sizeof(dangling), "%s/y.mhc", dir);
    char made[160];
    snprintf(made, sizeof(made), "%s/created-through-link", dir);
    CHECK_EQ_INT(symlink(made, dangling), 0);
    CHECK_EQ_INT(mh_file_create_private(dangling, MH_FILE_FORCE), -1);
    CHECK(access(made, F_OK) != 0);
    mh_file_create_error(path, MH_FILE_FORCE, ELOOP, "--force", why,
                         sizeof(why));
    char want[512];
    snprintf(want, sizeof(want),
             "cannot create '%s': it is a symbolic link (memhound never "
             "writes through one)",
             path);
    CHECK_EQ_STR(why, want);
    rm_tree(dir);
}

MH_TEST(file_create_refuses_fifo_and_devices)
{
    char dir[64], path[128], why[512], want[512];
    temp_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/f.mhc", dir);
    CHECK_EQ_INT(mkfifo(path, 0666), 0);
    /* Without a reader, an open for writing would block forever: it must
     * fail at once, with or without --force. alarm() turns a hang into a
     * failed test. */
    alarm(10);
    CHECK_EQ_INT(mh_file_create_private(path, 0), -1);
    CHECK_EQ_INT(mh_file_create_private(path, MH_FILE_FORCE), -1);
    CHECK_EQ_INT(mh_file_create_private(path, MH_FILE_FORCE | MH_FILE_APPEND),
                 -1);
    alarm(0);
    mh_file_create_error(path, MH_FILE_FORCE, EEXIST, "--force", why,
                         sizeof(why));
    snprintf(want, sizeof(want),
             "cannot create '%s': it is a FIFO, not a regular file", path);
    CHECK_EQ_STR(why, want);
    CHECK_EQ_INT(mh_file_create_private("/dev/null", MH_FILE_FORCE), -1);
    mh_file_create_error("/dev/null", MH_FILE_FORCE, EEXIST, "--force", why,
                         sizeof(why));
    CHECK_EQ_STR(why, "cannot create '/dev/null': it is a character device, "
                      "not a regular file");
    CHECK_EQ_INT(mh_file_create_private(dir, MH_FILE_FORCE), -1);
    rm_tree(dir);
}

MH_TEST(file_create_force_replaces_own_file_by_rename)
{
    char dir[64], path[128], link2[128];
    temp_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/old.mhc", dir);
    snprintf(link2, sizeof(link2), "%s/other-name", dir);
    write_text(path, "OLD CAPTURE", 0644);
    /* A second name for the old inode: replacing must not write it. */
    CHECK_EQ_INT(link(path, link2), 0);
    int fd = mh_file_create_private(path, MH_FILE_FORCE);
    CHECK(fd >= 0);
    CHECK_EQ_INT(write(fd, "NEW", 3), 3);
    close(fd);
    CHECK_EQ_STR(read_text(path), "NEW");
    CHECK_EQ_STR(read_text(link2), "OLD CAPTURE");
    struct stat st;
    CHECK_EQ_INT(stat(path, &st), 0);
    CHECK_EQ_INT(st.st_mode & 0777, 0600);
    /* No temporary left behind. */
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "test $(ls -A '%s' | wc -l) -eq 2", dir);
    CHECK_EQ_INT(system(cmd), 0);
    rm_tree(dir);
}

MH_TEST(file_create_force_refuses_another_users_file)
{
    if (geteuid() != 0) {
        printf("    skipped: needs root to give a file to another user\n");
        return;
    }
    char dir[64], path[128], why[512], want[512];
    dir_with_file(dir, sizeof(dir), path, "theirs.mhc", "THEIR DATA", 0666);
    CHECK_EQ_INT(chown(path, 65534, 65534), 0);
    errno = 0;
    CHECK_EQ_INT(mh_file_create_private(path, MH_FILE_FORCE), -1);
    CHECK_EQ_INT(errno, EPERM);
    CHECK_EQ_INT(mh_file_create_private(path, MH_FILE_FORCE | MH_FILE_APPEND),
                 -1);
    CHECK_EQ_STR(read_text(path), "THEIR DATA");
    struct stat st;
    CHECK_EQ_INT(stat(path, &st), 0);
    CHECK_EQ_INT(st.st_uid, 65534);
    mh_file_create_error(path, MH_FILE_FORCE, EPERM, "--force", why,
                         sizeof(why));
    snprintf(want, sizeof(want),
             "cannot replace '%s': it belongs to another user (uid 65534); "
             "--force only replaces a file of your own",
             path);
    CHECK_EQ_STR(why, want);
    rm_tree(dir);
}

MH_TEST(file_create_append_to_own_log)
{
    char dir[64], path[128], link2[128];
    dir_with_file(dir, sizeof(dir), path, "guard.log", "line 1\n", 0644);
    CHECK_EQ_INT(mh_file_create_private(path, MH_FILE_APPEND), -1);
    int fd = mh_file_create_private(path, MH_FILE_FORCE | MH_FILE_APPEND);
    CHECK(fd >= 0);
    CHECK_EQ_INT(write(fd, "line 2\n", 7), 7);
    CHECK(!(fcntl(fd, F_GETFL) & O_NONBLOCK));
    close(fd);
    CHECK_EQ_STR(read_text(path), "line 1\nline 2\n");
    struct stat st;
    CHECK_EQ_INT(stat(path, &st), 0);
    CHECK_EQ_INT(st.st_mode & 0777, 0600);
    /* A hard link could be a name of someone else's file. */
    snprintf(link2, sizeof(link2), "%s/second", dir);
    CHECK_EQ_INT(link(path, link2), 0);
    CHECK_EQ_INT(mh_file_create_private(path, MH_FILE_FORCE | MH_FILE_APPEND),
                 -1);
    CHECK_EQ_STR(read_text(path), "line 1\nline 2\n");
    rm_tree(dir);
}

MH_TEST(file_preflight_absent_is_fine)
{
    char dir[64], path[128], why[256];
    temp_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/none", dir);
    CHECK_EQ_INT(mh_file_preflight(path, 0, "--force", why, sizeof(why)), 0);
    write_text(path, "x", 0600);
    CHECK_EQ_INT(mh_file_preflight(path, 0, "--force", why, sizeof(why)), -1);
    CHECK_EQ_INT(
        mh_file_preflight(path, MH_FILE_FORCE, "--force", why, sizeof(why)),
        0);
    rm_tree(dir);
}

MH_TEST(file_check_dir_like_ssh)
{
    char dir[64], sub[128], why[1024], want[1024];
    temp_dir(dir, sizeof(dir));
    CHECK_EQ_INT(mh_file_check_dir(dir, why, sizeof(why)), 0);
    CHECK_EQ_INT(mh_file_check_dir("/tmp", why, sizeof(why)), 0); /* sticky */
    CHECK_EQ_INT(chmod(dir, 0777), 0);
    CHECK_EQ_INT(mh_file_check_dir(dir, why, sizeof(why)), -1);
    snprintf(want, sizeof(want),
             "cannot write in '%s': it is writable by other users (mode "
             "0777, not sticky), who could replace memhound's files there",
             dir);
    CHECK_EQ_STR(why, want);
    /* A safe directory below an unsafe one is not safe. */
    snprintf(sub, sizeof(sub), "%s/sub", dir);
    CHECK_EQ_INT(mkdir(sub, 0700), 0);
    CHECK_EQ_INT(mh_file_check_dir(sub, why, sizeof(why)), -1);
    snprintf(want, sizeof(want),
             "cannot write in '%s': '%s' above it is writable by other "
             "users (mode 0777, not sticky), who could replace memhound's "
             "files there",
             sub, dir);
    CHECK_EQ_STR(why, want);
    CHECK_EQ_INT(chmod(dir, 01777), 0);
    CHECK_EQ_INT(mh_file_check_dir(sub, why, sizeof(why)), 0);
    CHECK_EQ_INT(chmod(dir, 0770), 0);
    CHECK_EQ_INT(mh_file_check_dir(dir, why, sizeof(why)), -1);
    CHECK(strstr(why, "writable by its group (mode 0770"));
    CHECK_EQ_INT(chmod(dir, 0700), 0);
    if (geteuid() == 0) {
        CHECK_EQ_INT(chown(sub, 65534, 65534), 0);
        CHECK_EQ_INT(mh_file_check_dir(sub, why, sizeof(why)), -1);
        snprintf(want, sizeof(want),
                 "cannot write in '%s': it belongs to another user (uid "
                 "65534), who could replace memhound's files there",
                 sub);
        CHECK_EQ_STR(why, want);
    }
    CHECK_EQ_INT(mh_file_check_dir("/nonexistent/dir", why, sizeof(why)), -1);
    CHECK_EQ_STR(why, "cannot use the directory '/nonexistent/dir': No such "
                      "file or directory");
    rm_tree(dir);
}

MH_TEST(file_random_tag)
{
    char a[11], b[11];
    CHECK_EQ_INT(mh_file_random_tag(a, 10), 0);
    CHECK_EQ_INT(mh_file_random_tag(b, 10), 0);
    CHECK_EQ_INT(strlen(a), 10);
    CHECK_EQ_INT(strspn(a, "0123456789abcdef"), 10);
    CHECK(strcmp(a, b) != 0);
}

/* ---- inputs checked as they arrive (docs/security.md) ---- */

static void
expect_stream_refused(const void *head, size_t nhead, int fill,
                      const struct mh_file_check *check, const char *want)
{
    pid_t pid = stdin_fed(head, nhead, fill, SIZE_MAX);
    struct mh_file f;
    double t0 = mh_test_now();
    CHECK_EQ_INT(mh_file_map(&f, "-", 0, check), MH_EFORMAT);
    double took = mh_test_now() - t0;
    if (strcmp(f.error, want))
        fprintf(stderr, "got '%s'\n", f.error);
    CHECK_EQ_STR(f.error, want);
    CHECK(took < 1.0);
    close(0);
    int st;
    CHECK_EQ_INT(waitpid(pid, &st, 0), pid);
}

MH_TEST(stream_of_zeros_refused_at_once)
{
    expect_stream_refused(NULL, 0, 0, &mh_chunk_capture_input,
                          "cannot read '<stdin>': not a memhound capture "
                          "(bad magic at offset 0)");
}

MH_TEST(stream_header_then_garbage_refused_at_once)
{
    static const uint8_t head[] = "\x89MHH\r\n\x1a\n\x01\x00\x00\x00";
    expect_stream_refused(head, 12, 'x', &mh_chunk_heap_input,
                          "cannot read '<stdin>': offset 12: expected a "
                          "chunk (tag 0x4b), found byte 0x78");
}

MH_TEST(device_refused_at_once)
{
    struct mh_file f;
    double t0 = mh_test_now();
    CHECK_EQ_INT(mh_file_map(&f, "/dev/zero", 0, &mh_chunk_heap_input),
                 MH_EFORMAT);
    CHECK(mh_test_now() - t0 < 1.0);
    CHECK_EQ_STR(f.error, "cannot read '/dev/zero': not a memhound heap "
                          "dump (bad magic at offset 0)");
}

/* Another process truncates a file while it is mapped: the read that
 * faults ends the command with a message and exit status 1. */
MH_TEST(file_shrunk_while_mapped)
{
    char path[64];
    temp_file(path, sizeof(path), 1 << 20, 'x');
    int err[2];
    CHECK_EQ_INT(pipe(err), 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        struct sigaction sa;
        if (sigaction(SIGBUS, NULL, &sa) || sa.sa_handler != SIG_DFL ||
            (sa.sa_flags & SA_SIGINFO))
            _exit(7); /* a sanitizer handles SIGBUS: it stays with it */
        dup2(err[1], 2);
        struct mh_file f;
        if (mh_file_map(&f, path, 0, NULL) || truncate(path, 0))
            _exit(3);
        volatile uint8_t c = f.data[500000];
        (void)c;
        _exit(4);
    }
    close(err[1]);
    char got[512];
    size_t n = 0;
    ssize_t k;
    while (n < sizeof(got) - 1 &&
           (k = read(err[0], got + n, sizeof(got) - 1 - n)) > 0)
        n += (size_t)k;
    got[n] = '\0';
    close(err[0]);
    int st;
    CHECK_EQ_INT(waitpid(pid, &st, 0), pid);
    unlink(path);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 7) {
        printf("skipped: SIGBUS has a handler already (a sanitizer's)\n");
        return;
    }
    char want[256];
    snprintf(want, sizeof(want),
             "memhound: cannot read '%s': the file shrank while it was read "
             "(another process truncated it)\n",
             path);
    CHECK_EQ_STR(got, want);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1);
}
