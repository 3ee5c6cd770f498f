#include <errno.h>
#include <signal.h>
#include <string.h>

#include "sigflush.h"
#include "writer.h"

static const int fatal[] = {SIGTERM, SIGINT, SIGHUP};
#define N_FATAL (sizeof(fatal) / sizeof(fatal[0]))

static int
is_fatal(int sig)
{
    for (size_t i = 0; i < N_FATAL; i++)
        if (fatal[i] == sig)
            return 1;
    return 0;
}

static void
set_default(int sig)
{
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
}

/* Async-signal-safe: mh_writer_last_words() uses write(2), nanosleep(2)
 * and mutex trylocks only. The signal stays blocked while we run; the
 * raise() makes it pending, and it is delivered, with its default
 * action, when the handler returns. */
static void
on_fatal(int sig)
{
    int saved = errno;
    mh_writer_last_words(sig);
    set_default(sig);
    raise(sig);
    errno = saved;
}

int
mh_sigflush_arm(int sig)
{
    if (!is_fatal(sig))
        return 0;
    struct sigaction old;
    if (sigaction(sig, NULL, &old) || (old.sa_flags & SA_SIGINFO) ||
        old.sa_handler != SIG_DFL)
        return 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_fatal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < N_FATAL; i++)
        sigaddset(&sa.sa_mask, fatal[i]);
    sa.sa_flags = SA_RESTART;
    return sigaction(sig, &sa, NULL) == 0;
}

void
mh_sigflush_arm_all(void)
{
    for (size_t i = 0; i < N_FATAL; i++)
        mh_sigflush_arm(fatal[i]);
}

void
mh_sigflush_disarm(void)
{
    for (size_t i = 0; i < N_FATAL; i++) {
        struct sigaction cur;
        if (sigaction(fatal[i], NULL, &cur) == 0 &&
            !(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == on_fatal)
            set_default(fatal[i]);
    }
}
