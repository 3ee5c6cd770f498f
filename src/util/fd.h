/* Descriptors memhound holds inside a target program (the capture, the
 * control socket, a heap dump while it is opened): kept far above the
 * numbers programs use and close-on-exec, and checked before each use,
 * so that a program that closes every descriptor (os.closerange(3, N),
 * daemonising code) and opens its own files never has memhound read or
 * write them. docs/run.md states the rule. */
#ifndef MH_FD_H
#define MH_FD_H

#include <sys/types.h>

#include "msg.h"

/* Where the numbers start when RLIMIT_NOFILE allows (1000 with a limit of
 * 1024 or more). Programs number their files from 3 upward. */
#define MH_FD_HIGH_BASE 1000

/* What a descriptor refers to: the open file's device and inode. */
struct mh_fd_id {
    dev_t dev;
    ino_t ino;
};

/* The lowest number memhound moves its descriptors to: MH_FD_HIGH_BASE,
 * lowered below a small RLIMIT_NOFILE (to 7/8 of it), 3 when the limit
 * is tiny. */
int mh_fd_high_base(void);

/* Moves `fd` to the lowest free number at or above mh_fd_high_base(),
 * close-on-exec, and closes the original. Returns the new descriptor; when
 * no such number is free, `fd` itself, made close-on-exec. Never fails:
 * a low number is only less discreet, and the check below still holds. */
int mh_fd_move_high(int fd);

/* Fills *id from fd. Returns 0, or -1 with errno set. */
int mh_fd_id_get(int fd, struct mh_fd_id *id) MH_MUST_USE;

/* Whether fd is still open on the file *id names (1) or was closed or
 * now names another file (0): then it is the program's number, and
 * memhound must neither write to nor close it. */
int mh_fd_is(int fd, const struct mh_fd_id *id) MH_MUST_USE;

#endif
