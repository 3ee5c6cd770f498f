/* The capture writer: owns the capture file and turns the tracker's
 * pending records into chunks when asked to flush (by the background
 * thread, bgthread.h, on its schedule; at a marker, a heap dump, the
 * end).
 *
 * New stacks are resolved here, not in the hook: code objects to file
 * and function names, bytecode offsets to lines. That needs the GIL, which
 * the writer takes only when there is something new to resolve.
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
/* Flushes pending records now. Call WITHOUT the GIL. */
void mh_writer_flush(void);
/* Appends a MARKER record and has it written at once: markers are rare
 * and a reader looks for them (heap dumps). Any thread. */
void mh_writer_put_marker(uint64_t t_ns, uint32_t kind, const char *text,
                          size_t n);
/* How a marker asks for that flush: `wake` wakes the background thread
 * (a callback, so the writer does not depend on bgthread.c, which
 * depends on it); mh_writer_take_flush_soon() then answers 1 once. */
void mh_writer_set_wake(void (*wake)(void));
int mh_writer_take_flush_soon(void);
/* Appends a TIMELINE record: now, the process's RSS. Any thread. */
void mh_writer_put_timeline(void);
/* From a signal handler, in a process about to die of `sig`: writes the
 * pending records, a SIGNAL marker and END with write(2) alone (no
 * allocation, no GIL; stacks the file does not define yet become stack
 * 0). Waits at most 200 ms for a flush in progress in another thread.
 * Returns 0, or -1 when it could not (nothing open, another process's
 * capture, a lock held by this very thread, a failed write). */
int mh_writer_last_words(int sig);
/* Writes a last timeline point, END and the last chunk, closes the file;
 * the background thread is stopped first (mh_bgthread_end()). Call
 * WITHOUT the GIL. */
void mh_writer_close(void);
/* Whether a capture file is open, and its path (owned by the writer). */
int mh_writer_is_open(void);
const char *mh_writer_path(void);
uint64_t mh_writer_now_ns(void);

/* In a forked child (GIL held, one thread), for
 * mh_bgthread_continue_in_child(): forget the parent's file and continue
 * into a new capture at `path`. Returns 0, or -1 with errno set. */
int mh_writer_continue_in_child(const char *path, uint64_t parent_pid);
/* In the atfork child handler (async-signal-safe calls only): drops the
 * parent's file, and its buffers and tables when its thread was running
 * at the fork. Returns 1 when a capture was open (the child records
 * once it runs Python: tracker.h, child_pending), else 0. */
int mh_writer_forget_in_child(int thread_was_running);

#endif
