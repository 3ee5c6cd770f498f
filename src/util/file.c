/* Whole-file input for the CLI. A regular file is mapped, so a multi-GB
 * capture costs page cache rather than heap; anything else is read into
 * a capped buffer, checked piece by piece as it comes. Errors are worded
 * for the user as they stand. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "file.h"
#include "mem.h"

static int MH_PRINTF(3, 4)
    file_fail(struct mh_file *f, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->error, sizeof(f->error), fmt, ap);
    va_end(ap);
    return code;
}

static int
too_big(struct mh_file *f, const char *path, unsigned long long size,
        size_t max)
{
    char a[32], b[32];
    mh_size_text(a, sizeof(a), size);
    mh_size_text(b, sizeof(b), max);
    if (size && !strcmp(a, b)) {
        /* Rounded, they look alike: say it in bytes. */
        snprintf(a, sizeof(a), "%llu bytes", size);
        snprintf(b, sizeof(b), "%llu bytes", (unsigned long long)max);
    }
    if (size)
        return file_fail(f, MH_ETOOBIG,
                         "cannot read '%s': file is %s, over the %s limit",
                         path, a, b);
    return file_fail(f, MH_ETOOBIG, "cannot read '%s': over the %s limit",
                     path, b);
}

/* Reads fd to its end into f->heap_, checking each piece with `check`. */
static int
read_all(struct mh_file *f, int fd, const char *path, size_t max,
         const struct mh_file_check *check)
{
    size_t state = 0;
    if (max > MH_FILE_READ_MAX)
        max = MH_FILE_READ_MAX;
    struct mh_buf b;
    mh_buf_init(&b, max);
    for (;;) {
        size_t room = max - b.len;
        if (room > (64u << 10))
            room = 64u << 10;
        if (room == 0) {
            /* At the cap: one more byte means the input is too big. */
            char extra;
            ssize_t got = read(fd, &extra, 1);
            if (got < 0 && errno == EINTR)
                continue;
            if (got > 0) {
                mh_buf_release(&b);
                return too_big(f, path, 0, max);
            }
            if (got < 0) {
                int err = errno;
                mh_buf_release(&b);
                return file_fail(f, MH_EIO, "cannot read '%s': %s", path,
                                 strerror(err));
            }
            break;
        }
        int rc = mh_buf_grow(&b, room);
        if (rc) {
            mh_buf_release(&b);
            return file_fail(f, rc, "cannot read '%s': %s", path,
                             mh_strerror(rc));
        }
        ssize_t got = read(fd, b.data + b.len, room);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            int err = errno;
            mh_buf_release(&b);
            return file_fail(f, MH_EIO, "cannot read '%s': %s", path,
                             strerror(err));
        }
        if (got == 0)
            break;
        b.len += (size_t)got;
        char why[200];
        if (check && (rc = check->prefix(check->arg, b.data, b.len, &state,
                                         why, sizeof(why)))) {
            mh_buf_release(&b);
            return file_fail(f, rc, "cannot read '%s': %s", path, why);
        }
    }
    if (b.len == 0) {
        mh_buf_release(&b);
        return file_fail(f, MH_EFORMAT, "cannot read '%s': file is empty",
                         path);
    }
    f->heap_ = mh_buf_take(&b, &f->len);
    f->data = f->heap_;
    return MH_OK;
}

/* A mapped file that another process truncates faults on access
 * (SIGBUS). The mappings in use are listed here, and a fault inside one
 * ends the command with a message and exit status 1 instead of a crash;
 * any other SIGBUS keeps its default action. Only the CLI maps files (the
 * agent never installs this). */
#define MAPS_MAX 8
static struct {
    char *volatile start; /* NULL: a free slot */
    volatile size_t len;
    char path[256];
} maps[MAPS_MAX];

static void
say(const char *s)
{
    size_t n = strlen(s);
    while (n) {
        ssize_t k = write(STDERR_FILENO, s, n);
        if (k <= 0)
            return;
        s += k;
        n -= (size_t)k;
    }
}

static void
on_sigbus(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    const char *a = si->si_addr;
    for (int i = 0; i < MAPS_MAX; i++) {
        const char *s = maps[i].start;
        if (s && a >= s && a < s + maps[i].len) {
            say("memhound: cannot read '");
            say(maps[i].path);
            say("': the file shrank while it was read (another process "
                "truncated it)\n");
            _exit(1);
        }
    }
    signal(sig, SIG_DFL); /* the access faults again, as it would have */
}

/* Lists a new mapping for on_sigbus(), installing it the first time
 * unless the program handles SIGBUS itself. */
static void
maps_add(char *start, size_t len, const char *path)
{
    static int installed;
    if (!installed) {
        struct sigaction old, sa;
        installed = 1;
        if (sigaction(SIGBUS, NULL, &old) == 0 && old.sa_handler == SIG_DFL &&
            !(old.sa_flags & SA_SIGINFO)) {
            memset(&sa, 0, sizeof(sa));
            sa.sa_sigaction = on_sigbus;
            sa.sa_flags = SA_SIGINFO;
            sigemptyset(&sa.sa_mask);
            (void)sigaction(SIGBUS, &sa, NULL);
        }
    }
    for (int i = 0; i < MAPS_MAX; i++)
        if (!maps[i].start) {
            snprintf(maps[i].path, sizeof(maps[i].path), "%s", path);
            maps[i].len = len;
            maps[i].start = start;
            return;
        }
}

static void
maps_remove(const void *start)
{
    for (int i = 0; i < MAPS_MAX; i++)
        if (maps[i].start == start)
            maps[i].start = NULL;
}

int
mh_file_map(struct mh_file *f, const char *path, size_t max,
            const struct mh_file_check *check)
{
    memset(f, 0, sizeof(*f));
    if (max == 0)
        max = MH_FILE_MAX_DEFAULT;
    int use_stdin = strcmp(path, "-") == 0;
    if (use_stdin)
        path = "<stdin>";
    int fd = use_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return file_fail(f, MH_EIO, "cannot open '%s': %s", path,
                         strerror(errno));
    int rc;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        rc = file_fail(f, MH_EIO, "cannot read '%s': %s", path,
                       strerror(errno));
        goto cleanup;
    }
    if (S_ISDIR(st.st_mode)) {
        rc = file_fail(f, MH_EIO, "cannot read '%s': %s", path,
                       strerror(EISDIR));
        goto cleanup;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = read_all(f, fd, path, max, check);
        goto cleanup;
    }
    if (st.st_size == 0) {
        rc = file_fail(f, MH_EFORMAT, "cannot read '%s': file is empty", path);
        goto cleanup;
    }
    if ((unsigned long long)st.st_size > max) {
        rc = too_big(f, path, (unsigned long long)st.st_size, max);
        goto cleanup;
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        /* Some file systems cannot map; reading still works. */
        rc = read_all(f, fd, path, max, check);
        goto cleanup;
    }
    madvise(map, (size_t)st.st_size, MADV_SEQUENTIAL);
    maps_add(map, (size_t)st.st_size, path);
    f->map_ = map;
    f->data = map;
    f->len = (size_t)st.st_size;
    rc = MH_OK;

cleanup:
    if (!use_stdin)
        close(fd);
    return rc;
}

void
mh_file_unmap(struct mh_file *f)
{
    if (f->map_) {
        maps_remove(f->map_);
        munmap(f->map_, f->len);
    }
    mh_free(f->heap_);
    f->map_ = NULL;
    f->heap_ = NULL;
    f->data = NULL;
    f->len = 0;
}

int
mh_file_create_private(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
        (st.st_mode & 077) && fchmod(fd, 0600) != 0) {
        int err = errno;
        close(fd);
        errno = err;
        return -1;
    }
    return fd;
}
