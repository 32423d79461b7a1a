/*
 * push_worker: serves the `c_examples` namespace with the `c.compute` handler
 * in push mode (the library calls the handler on its threads), and runs an
 * orchestrator in the same process. Stops on SIGINT/SIGTERM, or after
 * SECONDS when given.
 *
 *   push_worker [SECONDS]
 *
 * The database: DATABASE_URL, else the local default (see the README).
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "compute.h"
#include "signals.h"

/* The push callback: called on the worker's threads, possibly concurrently. */
static int32_t on_step(TaskerStep *step, void *user_data) {
    (void)user_data;
    return compute_step(step);
}

static int check(TaskerStatus status, const char *what) {
    if (status != TASKER_OK) {
        fprintf(stderr, "push_worker: %s failed: %s: %s\n", what, tasker_status_name(status), tasker_last_error());
        return 0;
    }
    return 1;
}

int main(int argc, char **argv) {
    long seconds = argc > 1 ? strtol(argv[1], NULL, 10) : 0;
    block_stop_signals();

    TaskerWorker *worker = NULL;
    int ok = check(tasker_worker_new("[worker]\nconcurrency = 8\n", NULL, &worker), "creating the worker") &&
             check(tasker_worker_add_namespace(worker, "c_examples"), "adding the namespace") &&
             check(tasker_worker_set_orchestrate(worker, true), "enabling orchestration") &&
             check(tasker_worker_register_handler(worker, "c.compute", on_step, NULL, NULL, TASKER_HANDLER_BLOCKING),
                   "registering c.compute") &&
             check(tasker_worker_start(worker), "starting");
    if (ok) {
        printf("push_worker: serving c_examples (push); stop with Ctrl-C\n");
        fflush(stdout);
        int sig = wait_for_stop_signal(seconds);
        printf("push_worker: %s, stopping\n", sig ? "signal received" : "time is up");
        ok = check(tasker_worker_stop(worker), "stopping");
    }
    if (worker != NULL && !check(tasker_worker_free(worker), "freeing the worker")) ok = 0;
    return ok ? 0 : 1;
}
