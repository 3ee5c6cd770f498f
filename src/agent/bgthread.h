/* The agent's background thread: every 100 ms it appends a timeline
 * record, refreshes the allocator statistics now and then, serves the
 * control channel (control.h: no thread of its own) and has the writer
 * flush at least every FLUSH_NS or when records pile up (writer.h does
 * the writing). Also the session's fork handling: the thread stops
 * around every fork() and the child drops the parent's capture, thread
 * and control socket (pthread_atfork handlers registered here).
 *
 * Locks: `pause_lock` serialises stopping and starting the thread; it is
 * taken without the GIL and held while joining the thread, which may be
 * finishing a flush (the writer's flush_lock, then the GIL), so it comes
 * before both. `wlock` guards the stop flag and the condition variable
 * and is held around waits and signals only, nothing taken under it. */
#ifndef MH_AGENT_BGTHREAD_H
#define MH_AGENT_BGTHREAD_H

#include <stdint.h>

/* Call before a capture opens (mh_writer_open()): registers the fork
 * handlers, once per process, has the thread start a new schedule (a
 * new capture's timeline starts with it) and gives the writer the
 * thread's wake-up for markers (mh_writer_set_wake()). Returns 0, or -1 when
 * pthread_atfork() failed. */
int mh_bgthread_prepare(void);
/* Starts the thread. Returns 0, or -1 with errno set. */
int mh_bgthread_start(void);
/* Stops the thread around os.fork(): Python 3.12+ warns about forking a
 * multi-threaded process, and a program that has no threads of its own
 * must not see that warning because of memhound. Call WITHOUT the GIL;
 * resume in the parent after the fork. */
void mh_bgthread_pause(void);
int mh_bgthread_resume(void);
/* Opens the control channel (control.h) that the thread serves; call
 * before the thread starts. A failure is only a warning: recording goes
 * on without it. */
void mh_bgthread_open_control(void);
/* Ends the session: stops the signal handlers, the thread and the
 * control channel, then closes the capture (mh_writer_close()). Call
 * WITHOUT the GIL. */
void mh_bgthread_end(void);
/* In a forked child (GIL held, one thread): forget the parent's file,
 * thread and control socket, and continue into a new capture at `path`
 * with a control socket and a thread of its own. Returns 0, or -1 with
 * errno set. */
int mh_bgthread_continue_in_child(const char *path, uint64_t parent_pid);

#endif
