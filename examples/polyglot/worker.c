/*
 * The order-pricing example's C worker: the native step `tax` (handler
 * `order.tax`) in pool `c`, through libtasker (bindings-c/include/tasker.h).
 *
 *   tax = round_half_up(pre_tax × input.tax_bp / 10000)    (integer cents)
 *
 * Build (run.sh does it):
 *   make -C bindings-c lib      # target/debug/libtasker.so
 *   cc -std=c11 -O2 -Ibindings-c/include -o polyglot_c_worker examples/polyglot/worker.c \
 *      -Ltarget/debug -ltasker -Wl,-rpath,$PWD/target/debug -lcjson -lpthread
 *
 * Database: DATABASE_URL, else the local default database. POLYGLOT_WORKER_CONFIG
 * may hold TOML laid over the built-in configuration. Stops on SIGINT/SIGTERM
 * after the steps in flight finish.
 */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <tasker.h>
#include <unistd.h>

#define POOL "c" /* the template's `pool: c` */

/* A JSON number that is an integer cJSON holds exactly (|n| <= 2^53). */
static int exact_integer(const cJSON *item, long long *out) {
    if (!cJSON_IsNumber(item)) return 0;
    double d = item->valuedouble;
    if (d < -9007199254740992.0 || d > 9007199254740992.0 || d != (double)(long long)d) return 0;
    *out = (long long)d;
    return 1;
}

static int32_t fail(TaskerStep *step, const char *message) {
    /* Bad input: another attempt cannot help. */
    return tasker_step_fail(step, message, false, -1) == TASKER_OK ? 0 : -1;
}

/* `order.tax`: called on the worker's threads, possibly several at once. */
static int32_t order_tax(TaskerStep *step, void *user_data) {
    (void)user_data;
    const char *json = NULL;
    if (tasker_step_context(step, &json) != TASKER_OK) return -1;
    cJSON *ctx = cJSON_Parse(json);
    if (ctx == NULL) return fail(step, "the step context is not JSON");

    long long pre_tax = 0, tax_bp = 0;
    const cJSON *parent = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(ctx, "parent_results"), "pre_tax");
    const cJSON *input = cJSON_GetObjectItemCaseSensitive(ctx, "input");
    int32_t rc;
    if (!exact_integer(cJSON_GetObjectItemCaseSensitive(parent, "value"), &pre_tax) || pre_tax < 0) {
        rc = fail(step, "parent `pre_tax` has no non-negative integer `value`");
    } else if (!exact_integer(cJSON_GetObjectItemCaseSensitive(input, "tax_bp"), &tax_bp) || tax_bp < 0 ||
               tax_bp > 10000) {
        rc = fail(step, "input `tax_bp` must be an integer in 0..=10000");
    } else if (pre_tax > INT64_MAX / 10000) {
        rc = fail(step, "pre_tax is too large");
    } else {
        /* Half a cent or more rounds up. */
        long long tax = (pre_tax * tax_bp + 5000) / 10000;
        /* A line in this attempt's log (`tasker step logs <task> tax`), with the
         * trace context when the worker traces. */
        char line[160];
        const char *traceparent = tasker_step_traceparent(step);
        snprintf(line, sizeof line, "hello from c: tax %lld on %lld at %lld bp%s%s", tax, pre_tax, tax_bp,
                 traceparent != NULL && traceparent[0] != '\0' ? ", traceparent " : "",
                 traceparent != NULL ? traceparent : "");
        tasker_step_log(step, TASKER_LOG_INFO, line);
        char out[96];
        snprintf(out, sizeof out, "{\"value\":%lld,\"lang\":\"c\",\"rate_bp\":%lld}", tax, tax_bp);
        rc = tasker_step_succeed(step, out) == TASKER_OK ? 0 : -1;
    }
    cJSON_Delete(ctx);
    return rc;
}

static int check(TaskerStatus status, const char *what) {
    if (status != TASKER_OK) {
        fprintf(stderr, "worker.c: %s failed: %s: %s\n", what, tasker_status_name(status), tasker_last_error());
        return 0;
    }
    return 1;
}

int main(void) {
    /* Block SIGINT/SIGTERM before the library starts its threads (they inherit
     * the mask); the main thread waits for them with sigwait. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    const char *config = getenv("POLYGLOT_WORKER_CONFIG");
    if (config != NULL && config[0] == '\0') config = NULL;
    TaskerWorker *worker = NULL;
    int ok = check(tasker_worker_new(config, NULL, &worker), "creating the worker") &&
             check(tasker_worker_add_pool(worker, POOL), "adding the pool") &&
             /* Pure arithmetic: run it on the worker's own threads. */
             check(tasker_worker_register_handler(worker, "order.tax", order_tax, NULL, NULL,
                                                  TASKER_HANDLER_NONBLOCKING),
                   "registering order.tax") &&
             check(tasker_worker_start(worker), "starting");
    if (ok) {
        printf("worker.c: serving pool \"%s\" (order.tax), pid %d\n", POOL, (int)getpid());
        fflush(stdout);
        int sig = 0;
        sigwait(&stop, &sig);
        ok = check(tasker_worker_stop(worker), "stopping");
        printf("worker.c: stopped\n");
    }
    if (worker != NULL && !check(tasker_worker_free(worker), "freeing the worker")) ok = 0;
    return ok ? 0 : 1;
}
