/* The capture writer: owns the capture file and a background thread that
 * every 100 ms appends a timeline record and at least every second turns
 * the tracker's pending records into a chunk.
 *
 * New stacks are resolved here, not in the hook: code objects to file
 * and function names, bytecode offsets to lines. That needs the GIL, which
 * the writer takes only when there is something new to resolve.
 *
 * The same thread serves the control channel (control.h) on each
 * wake-up: no thread of its own.
 *
 * Locks: `flush_lock` serialises flushes and is taken without the GIL
 * (the GIL may be taken while holding it); the tracker lock is a leaf. */
#ifndef MH_AGENT_WRITER_H
#define MH_AGENT_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "../format/capture.h"

/* What goes into the HEADER record; strings are copied. */
struct mh_writer_header {
    const char *python, *executable;
    uint32_t argc, nlib, npath;
    const char *const *argv, *const *lib_prefixes, *const *sys_path;
    uint64_t fork_parent;
    uint64_t run_id; /* the run's id (capture.h); forked children keep it */
};

/* mh_file_create_private() flags (util/file.h) for every file this
 * session creates: its capture, forked children's captures, heap dumps.
 * Set before mh_writer_open(), GIL held. */
void mh_writer_set_create_flags(int flags);
int mh_writer_create_flags(void);

/* Opens `path` (created safely, mode 0600: mh_file_create_private() with
 * the flags above) and writes the file
 * header and the HEADER chunk. GIL held. Returns 0, or -1 with errno set
 * (the caller raises OSError). */
int mh_writer_open(const char *path, const struct mh_writer_header *h,
                   int mode, uint64_t interval, uint32_t max_depth);
/* Starts the writer thread. */
int mh_writer_start_thread(void);
/* Stops the thread around os.fork(): Python 3.12+ warns about forking a
 * multi-threaded process, and a program that has no threads of its own
 * must not see that warning because of memhound. Call WITHOUT the GIL;
 * resume in the parent after the fork. */
void mh_writer_pause_thread(void);
int mh_writer_resume_thread(void);
/* Flushes pending records now. Call WITHOUT the GIL. */
void mh_writer_flush(void);
/* Appends a MARKER record and has it written at once: markers are rare
 * and a reader looks for them (heap dumps). Any thread. */
void mh_writer_put_marker(uint64_t t_ns, uint32_t kind, const char *text,
                          size_t n);
/* From a signal handler, in a process about to die of `sig`: writes the
 * pending records, a SIGNAL marker and END with write(2) alone (no
 * allocation, no GIL; stacks the file does not define yet become stack
 * 0). Waits at most 200 ms for a flush in progress in another thread.
 * Returns 0, or -1 when it could not (nothing open, another process's
 * capture, a lock held by this very thread, a failed write). */
int mh_writer_last_words(int sig);
/* Stops the thread, writes END and the last chunk, closes the file.
 * Call WITHOUT the GIL. */
void mh_writer_close(void);
/* Whether a capture file is open, and its path (owned by the writer). */
int mh_writer_is_open(void);
const char *mh_writer_path(void);
uint64_t mh_writer_now_ns(void);

/* Opens the control channel (control.h) that the writer thread serves;
 * call before the thread starts. A failure is only a warning: recording
 * goes on without it. */
void mh_writer_open_control(void);

/* In a forked child (GIL held, one thread): forget the parent's file,
 * thread and control socket, and continue into a new capture at `path`
 * with a control socket of its own. */
int mh_writer_continue_in_child(const char *path, uint64_t parent_pid);

#endif
