/* The capture's tail on a fatal signal: where the program left SIGTERM,
 * SIGINT or SIGHUP at its default action (which ends the process without
 * running any Python), memhound's handler writes what is pending
 * (mh_writer_last_words()), restores the default and raises the signal
 * again, so the process ends exactly as it would have.
 *
 * The handler is installed with sigaction() after Python's signal module
 * has read the dispositions at startup, so signal.getsignal() still says
 * SIG_DFL; a handler the program sets later replaces ours, and
 * python/memhound puts ours back where the program sets SIG_DFL again.
 * docs/run.md describes what the program can observe. */
#ifndef MH_AGENT_SIGFLUSH_H
#define MH_AGENT_SIGFLUSH_H

/* Installs the handler for each of SIGTERM, SIGINT, SIGHUP whose
 * disposition is SIG_DFL now; leaves the others alone. */
void mh_sigflush_arm_all(void);
/* The same for one signal; 0 when it is not one of the three. */
int mh_sigflush_arm(int sig);
/* Puts SIG_DFL back wherever our handler is still installed. */
void mh_sigflush_disarm(void);

#endif
