/* Whole-file input for the CLI. A regular file is mapped, so a multi-GB
 * capture costs page cache rather than heap; anything else is read into
 * a capped buffer, checked piece by piece as it comes. Errors are worded
 * for the user as they stand. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
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

/* ---- creating files safely (docs/security.md, "Files") ---- */

static const char *
kind_of(mode_t m)
{
    if (S_ISLNK(m))
        return "a symbolic link";
    if (S_ISDIR(m))
        return "a directory";
    if (S_ISFIFO(m))
        return "a FIFO";
    if (S_ISCHR(m))
        return "a character device";
    if (S_ISBLK(m))
        return "a block device";
    if (S_ISSOCK(m))
        return "a socket";
    return "a special file";
}

int
mh_file_preflight(const char *path, int flags, const char *force_hint,
                  char *why, size_t n)
{
    struct stat st;
    if (lstat(path, &st)) {
        if (errno == ENOENT)
            return 0;
        snprintf(why, n, "cannot create '%s': %s", path, strerror(errno));
        return -1;
    }
    const char *verb = flags & MH_FILE_APPEND ? "append to" : "replace";
    if (S_ISLNK(st.st_mode)) {
        snprintf(why, n,
                 "cannot create '%s': it is a symbolic link (memhound "
                 "never writes through one)",
                 path);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(why, n, "cannot create '%s': it is %s, not a regular file",
                 path, kind_of(st.st_mode));
        return -1;
    }
    if (!(flags & MH_FILE_FORCE)) {
        snprintf(why, n,
                 "cannot create '%s': the file exists; pass %s to %s "
                 "it",
                 path, force_hint, verb);
        return -1;
    }
    if (st.st_uid != geteuid()) {
        snprintf(why, n,
                 "cannot %s '%s': it belongs to another user (uid %u); %s "
                 "only %s a file of your own",
                 verb, path, (unsigned)st.st_uid, force_hint,
                 flags & MH_FILE_APPEND ? "appends to" : "replaces");
        return -1;
    }
    if ((flags & MH_FILE_APPEND) && st.st_nlink != 1) {
        snprintf(why, n,
                 "cannot append to '%s': it has %lu hard links (another "
                 "name could be someone else's file)",
                 path, (unsigned long)st.st_nlink);
        return -1;
    }
    return 0;
}

void
mh_file_create_error(const char *path, int flags, int err,
                     const char *force_hint, char *why, size_t n)
{
    if (mh_file_preflight(path, flags, force_hint, why, n) == 0)
        snprintf(why, n, "cannot create '%s': %s", path, strerror(err));
}

/* MH_FILE_APPEND: the file `st` describes (lstat), checked again through
 * the descriptor; O_NONBLOCK so a FIFO swapped in cannot hang us. */
static int
append_existing(const char *path, const struct stat *st)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_NOFOLLOW | O_NONBLOCK |
                            O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat now;
    int err = EEXIST;
    if (fstat(fd, &now)) {
        err = errno;
        goto fail;
    }
    if (!S_ISREG(now.st_mode) || now.st_dev != st->st_dev ||
        now.st_ino != st->st_ino || now.st_nlink != 1)
        goto fail;
    if (now.st_uid != geteuid()) {
        err = EPERM;
        goto fail;
    }
    int fl = fcntl(fd, F_GETFL);
    if ((now.st_mode & 07777) != 0600 && fchmod(fd, 0600)) {
        err = errno;
        goto fail;
    }
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK)) {
        err = errno;
        goto fail;
    }
    return fd;
fail:
    close(fd);
    errno = err;
    return -1;
}

/* MH_FILE_FORCE: a new file next to `path`, renamed over it. The old
 * inode is never opened, so a hard link to someone else's file, or a file
 * swapped in meanwhile, is replaced as a name, never written. */
static int
replace_existing(const char *path)
{
    char tmp[PATH_MAX + 16];
    int k = snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path);
    if (k < 0 || (size_t)k >= sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = mkostemp(tmp, O_CLOEXEC); /* O_EXCL, mode 0600 */
    if (fd < 0)
        return -1;
    if (rename(tmp, path)) {
        int err = errno;
        unlink(tmp);
        close(fd);
        errno = err;
        return -1;
    }
    return fd;
}

int
mh_file_create_private(const char *path, int flags)
{
    int fd = open(
        path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC,
        0600);
    if (fd >= 0 || errno != EEXIST || !(flags & MH_FILE_FORCE))
        return fd;
    struct stat st;
    if (lstat(path, &st))
        return -1;
    if (!S_ISREG(st.st_mode)) {
        errno = S_ISLNK(st.st_mode) ? ELOOP : EEXIST;
        return -1;
    }
    if (st.st_uid != geteuid()) {
        errno = EPERM;
        return -1;
    }
    if (flags & MH_FILE_APPEND)
        return append_existing(path, &st);
    return replace_existing(path);
}

int
mh_file_check_dir(const char *dir, char *why, size_t n)
{
    char real[PATH_MAX];
    if (!realpath(dir, real)) {
        snprintf(why, n, "cannot use the directory '%s': %s", dir,
                 strerror(errno));
        return -1;
    }
    uid_t me = geteuid();
    size_t len = strlen(real);
    for (int first = 1;; first = 0) {
        struct stat st;
        if (stat(real, &st)) {
            snprintf(why, n, "cannot use the directory '%s': %s", dir,
                     strerror(errno));
            return -1;
        }
        if (first && !S_ISDIR(st.st_mode)) {
            snprintf(why, n, "cannot use '%s': %s", dir, strerror(ENOTDIR));
            return -1;
        }
        char where[PATH_MAX + 32];
        if (first)
            snprintf(where, sizeof(where), "it");
        else
            snprintf(where, sizeof(where), "'%s' above it", real);
        if (st.st_uid != me && st.st_uid != 0) {
            snprintf(why, n,
                     "cannot write in '%s': %s belongs to another user "
                     "(uid %u), who could replace memhound's files there",
                     dir, where, (unsigned)st.st_uid);
            return -1;
        }
        if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX)) {
            snprintf(why, n,
                     "cannot write in '%s': %s is writable by %s (mode %04o, "
                     "not sticky), who could replace memhound's files there",
                     dir, where,
                     st.st_mode & S_IWOTH ? "other users" : "its group",
                     (unsigned)(st.st_mode & 07777));
            return -1;
        }
        if (len <= 1)
            return 0;
        char *slash = strrchr(real, '/');
        len = slash == real ? 1 : (size_t)(slash - real);
        real[len] = '\0';
    }
}

int
mh_file_random_tag(char *out, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char bytes[32];
    size_t need = (len + 1) / 2;
    if (need > sizeof(bytes)) {
        errno = EINVAL;
        return -1;
    }
    size_t got = 0;
    while (got < need) {
        ssize_t r = getrandom(bytes + got, need - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        got += (size_t)r;
    }
    for (size_t i = 0; i < len; i++)
        out[i] = hex[(bytes[i / 2] >> (i % 2 ? 0 : 4)) & 15];
    out[len] = '\0';
    return 0;
}
