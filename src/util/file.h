/* Reading a whole input file into memory for the CLI: mapped when it is a
 * regular file, read otherwise (a pipe, /dev/stdin). The parsers then
 * work on (data, len) and never do I/O themselves.
 *
 * Creating the files memhound writes (captures, dumps, logs, reports)
 * safely next to other users: docs/security.md, "Files". */
#ifndef MH_FILE_H
#define MH_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "msg.h"

/* What mh_file_map() takes by default: a capture this big still maps
 * fine (the pages are the kernel's, not ours); reading from a pipe is
 * capped at MH_FILE_READ_MAX whatever the limit. */
#define MH_FILE_MAX_DEFAULT ((size_t)64 << 30)
#define MH_FILE_READ_MAX ((size_t)1 << 30)

struct mh_file {
    const uint8_t *data; /* the file's bytes, read-only; owned by this
                            struct until mh_file_unmap() */
    size_t len;          /* > 0: an empty file is an error */
    char error[300];     /* why mh_file_map() failed, without the
                            "memhound: " prefix that mh_errorf() adds */

    void *map_;     /* private: the mapping, or NULL */
    uint8_t *heap_; /* private: the bytes read, or NULL */
};

/* How a caller recognises its input while it is still arriving: `prefix`
 * returns MH_OK while buf[0..len) can still begin such a file (it is
 * called again as len grows, with the same *state, 0 at first), or an
 * error with the reason in err[0..cap). format/chunk.h has the ones for
 * captures and heap dumps. */
struct mh_file_check {
    int (*prefix)(const void *arg, const uint8_t *buf, size_t len,
                  size_t *state, char *err, size_t cap);
    const void *arg;
};

/* Maps or reads `path` ("-" is standard input) into f, refusing files over
 * `max` bytes (0 = MH_FILE_MAX_DEFAULT), empty files and directories.
 * Anything but a regular file (a pipe, a FIFO, a device) is read in
 * pieces, each checked with `check` (NULL: none) as it arrives, so an
 * input that is not what the caller reads ("/dev/zero", a FIFO of
 * garbage) is refused after its first bytes, never read to the cap.
 * Returns MH_OK, or MH_EIO / MH_ETOOBIG / MH_ENOMEM / MH_EFORMAT (empty)
 * with f->error set, e.g.
 *   cannot open 'x.mhc': No such file or directory
 * On success the caller releases f with mh_file_unmap(); on failure f
 * holds nothing (unmapping it anyway is harmless).
 *
 * A mapped file must not shrink while mapped (a capture only grows): if
 * another process truncates it, the access that faults ends the program
 * with "memhound: cannot read 'x.mhc': the file shrank while it was read
 * (another process truncated it)" and exit status 1 (a SIGBUS handler,
 * installed by the first mapping unless SIGBUS is already handled). */
int mh_file_map(struct mh_file *f, const char *path, size_t max,
                const struct mh_file_check *check) MH_MUST_USE;
/* Releases what mh_file_map() took; f is left empty. */
void mh_file_unmap(struct mh_file *f);

/* How mh_file_create_private() treats a path that exists. */
enum {
    /* Replace a regular file owned by the effective user (never a link,
     * a FIFO, a device, or someone else's file): a new file is made next
     * to it and renamed over it, so the old inode is never written. */
    MH_FILE_FORCE = 1,
    /* With MH_FILE_FORCE: append to such a file instead (a log), after
     * checking it through the open descriptor; it must have one link.
     * Alone, it only words the hint of mh_file_preflight(). */
    MH_FILE_APPEND = 2,
};

/* Creates `path` for writing, mode 0600, the way a file may be created
 * where other users can write (/tmp): O_EXCL|O_NOFOLLOW, so it never
 * follows a symbolic link, never opens a FIFO or a device, never writes
 * into a file it did not create. An existing path is an error (EEXIST)
 * unless `flags` has MH_FILE_FORCE and it is a regular file owned by the
 * effective user. Returns the fd (close-on-exec), or -1 with errno set;
 * mh_file_create_error() words why. Captures and dumps can name personal
 * data, hence 0600. */
int mh_file_create_private(const char *path, int flags);

/* Whether mh_file_create_private(path, flags) may create `path` as it
 * stands: 0 when it is absent (or replaceable under MH_FILE_FORCE), else
 * -1 with the reason in `why` (n bytes), worded for the user, e.g.
 *   cannot create 'x.mhc': it is a symbolic link (memhound never writes
 *   through one)
 * `force_hint` names the way to replace a file ("--force"). Looks at the
 * path only (lstat): the create itself still decides. */
int mh_file_preflight(const char *path, int flags, const char *force_hint,
                      char *why, size_t n);

/* Words a failure of mh_file_create_private(path, flags) with errno
 * `err` into `why`: what mh_file_preflight() finds, else the system's
 * reason. */
void mh_file_create_error(const char *path, int flags, int err,
                          const char *force_hint, char *why, size_t n);

/* Checks a directory files are written into, the way ssh checks its own
 * files: it and every directory above it are owned by the effective user
 * or root and not writable by group or others unless sticky (/tmp).
 * 0, or -1 with the reason in `why`, e.g.
 *   'd' is writable by other users (mode 0777, not sticky): they could
 *   replace memhound's files there */
int mh_file_check_dir(const char *dir, char *why, size_t n);

/* `len` random lowercase hex digits from getrandom() into out (len + 1
 * bytes), for file names nobody can guess. 0, or -1 with errno set. */
int mh_file_random_tag(char *out, size_t len);

#endif
