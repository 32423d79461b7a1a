/* signals.h: wait for SIGINT/SIGTERM (or a timeout) in the C examples.
 * Call block_stop_signals() before creating any thread (the library's threads
 * inherit the mask), then wait_for_stop_signal() on the main thread. */
#ifndef TASKER_EXAMPLES_SIGNALS_H
#define TASKER_EXAMPLES_SIGNALS_H

#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <time.h>

static sigset_t stop_signals;

static void block_stop_signals(void) {
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
}

/* Returns the signal, or 0 when `seconds` (> 0) passed first. */
static int wait_for_stop_signal(long seconds) {
    if (seconds <= 0) {
        int sig = 0;
        sigwait(&stop_signals, &sig);
        return sig;
    }
    struct timespec timeout = {seconds, 0};
    int sig = sigtimedwait(&stop_signals, NULL, &timeout);
    return sig < 0 ? 0 : sig;
}

#endif
