/* mh_file_map(): mapped files, pipes, and the errors the CLI shows; a
 * stream that is not a capture refused from its first bytes. */
#include <errno.h>
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
