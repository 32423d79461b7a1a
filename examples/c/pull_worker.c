/*
 * pull_worker: serves the `c_examples` namespace with the `c.compute` handler
 * in pull mode: THREADS threads of this program take steps with
 * tasker_worker_next_step and complete them. Runs an orchestrator in the same
 * process. Stops on SIGINT/SIGTERM (finishing the steps in hand), or after
 * SECONDS when given.
 *
 *   pull_worker [SECONDS] [THREADS]
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "compute.h"
#include "signals.h"

static void *serve(void *arg) {
    TaskerWorker *worker = arg;
    for (;;) {
        TaskerStep *step = NULL;
        TaskerStatus status = tasker_worker_next_step(worker, 500, &step);
        if (status == TASKER_ERR_STOPPED) break;
        if (status != TASKER_OK) {
            fprintf(stderr, "pull_worker: next_step: %s\n", tasker_last_error());
            break;
        }
        if (step == NULL) continue; /* nothing within 500 ms */
        if (compute_step(step) != 0) fprintf(stderr, "pull_worker: completing a step: %s\n", tasker_last_error());
        tasker_step_free(step);
    }
    return NULL;
}

static int check(TaskerStatus status, const char *what) {
    if (status != TASKER_OK) {
        fprintf(stderr, "pull_worker: %s failed: %s: %s\n", what, tasker_status_name(status), tasker_last_error());
        return 0;
    }
    return 1;
}

int main(int argc, char **argv) {
    long seconds = argc > 1 ? strtol(argv[1], NULL, 10) : 0;
    int nthreads = argc > 2 ? atoi(argv[2]) : 4;
    if (nthreads < 1 || nthreads > 64) nthreads = 4;
    block_stop_signals();

    char config[64];
    snprintf(config, sizeof config, "[worker]\nconcurrency = %d\n", nthreads);
    TaskerWorker *worker = NULL;
    int ok = check(tasker_worker_new(config, NULL, &worker), "creating the worker") &&
             check(tasker_worker_add_namespace(worker, "c_examples"), "adding the namespace") &&
             check(tasker_worker_set_orchestrate(worker, true), "enabling orchestration") &&
             check(tasker_worker_register_pull(worker, "c.compute"), "registering c.compute") &&
             check(tasker_worker_start(worker), "starting");
    if (ok) {
        pthread_t threads[64];
        for (int i = 0; i < nthreads; i++) pthread_create(&threads[i], NULL, serve, worker);
        printf("pull_worker: serving c_examples (pull, %d threads); stop with Ctrl-C\n", nthreads);
        fflush(stdout);
        int sig = wait_for_stop_signal(seconds);
        printf("pull_worker: %s, stopping\n", sig ? "signal received" : "time is up");
        ok = check(tasker_worker_stop(worker), "stopping");
        for (int i = 0; i < nthreads; i++) pthread_join(threads[i], NULL);
    }
    if (worker != NULL && !check(tasker_worker_free(worker), "freeing the worker")) ok = 0;
    return ok ? 0 : 1;
}
