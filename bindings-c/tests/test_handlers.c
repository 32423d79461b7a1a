/*
 * test_handlers MODE: C handlers against the real database, MODE = push or pull.
 *  - the diamond completes with the right results;
 *  - a handler failing with a retryable error on attempt 1 is retried and completes;
 *  - a permanent error fails the step at once (one attempt) and the task ends in error;
 *  - completing a step twice is TASKER_ERR_ALREADY_COMPLETED; invalid result JSON
 *    is TASKER_ERR_INVALID_JSON and leaves the step open; a pulled step freed
 *    is an invalid handle afterwards;
 *  - both failures are recorded with error kind "handler" (docs/error-kinds.md);
 *  - fidelity: a result JSON cannot carry exactly (2^64, NaN) is refused with
 *    TASKER_ERR_UNREPRESENTABLE and fails the step with kind "result" naming the
 *    path; 2^64-1 and -2^63 in a task's input reach the handler and come back
 *    exactly; an input holding 2^64 is refused and creates no task;
 *  - every handler call logs a line into its attempt's log (tasker_step_log, misuse
 *    refused with a status) and reads its trace context (tasker_step_traceparent:
 *    "" or a 55-character W3C traceparent, never NULL for a live step).
 */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdatomic.h>

#include "../../examples/c/compute.h"
#include "harness.h"

static const char *const CHECKS_TEMPLATE =
    "namespace: c_examples\n"
    "name: checks\n"
    "version: 1.0.0\n"
    "steps:\n"
    "  - name: flaky\n"
    "    handler: { name: c.flaky }\n"
    "    retry: { max_attempts: 3, backoff: none, base_ms: 10 }\n"
    "  - name: broken\n"
    "    handler: { name: c.broken }\n"
    "    retry: { max_attempts: 3, backoff: none, base_ms: 10 }\n"
    "  - name: huge\n"
    "    handler: { name: c.huge }\n"
    "    retry: { max_attempts: 3, backoff: none, base_ms: 10 }\n"
    "  - name: notanumber\n"
    "    handler: { name: c.nan }\n"
    "    retry: { max_attempts: 3, backoff: none, base_ms: 10 }\n"
    "  - name: exact\n"
    "    handler: { name: c.exact }\n";

static atomic_int double_completions_refused;
static atomic_int bad_json_refused;
static atomic_int inexact_refused;

/* c.flaky: retryable failure on attempt 1, success after. */
static int flaky(TaskerStep *step) {
    uint32_t attempt = 0;
    if (tasker_step_attempt(step, &attempt) != TASKER_OK) return -1;
    if (attempt == 1) return tasker_step_fail(step, "flaky: first attempt fails", true, 10) == TASKER_OK ? 0 : -1;
    char out[64];
    snprintf(out, sizeof out, "{\"attempt\":%u}", attempt);
    if (tasker_step_succeed(step, "{not json") == TASKER_ERR_INVALID_JSON) atomic_fetch_add(&bad_json_refused, 1);
    if (tasker_step_succeed(step, out) != TASKER_OK) return -1;
    if (tasker_step_succeed(step, out) == TASKER_ERR_ALREADY_COMPLETED) atomic_fetch_add(&double_completions_refused, 1);
    return 0;
}

/* c.broken: a permanent failure. */
static int broken(TaskerStep *step) {
    return tasker_step_fail(step, "broken: this input can never work", false, -1) == TASKER_OK ? 0 : -1;
}

/* c.huge: 2^64, which JSON as tasker keeps it cannot carry: refused. */
static int huge(TaskerStep *step) {
    TaskerStatus status = tasker_step_succeed(step, "{\"total\": 18446744073709551616}");
    if (status == TASKER_ERR_UNREPRESENTABLE && strstr(tasker_last_error(), "$.total") != NULL)
        atomic_fetch_add(&inexact_refused, 1);
    /* The step has its outcome (failed, kind "result"): this changes nothing. */
    return tasker_step_fail(step, "not reached", true, -1) == TASKER_ERR_ALREADY_COMPLETED ? 0 : -1;
}

/* c.nan: a NaN written by printf ("nan" or "-nan"): refused, naming the path. */
static int not_a_number(TaskerStep *step) {
    char out[64];
    volatile double zero = 0.0;
    snprintf(out, sizeof out, "{\"ratio\": [1, %f]}", zero / zero);
    if (tasker_step_succeed(step, out) == TASKER_ERR_UNREPRESENTABLE && strstr(tasker_last_error(), "$.ratio[1]") != NULL)
        atomic_fetch_add(&inexact_refused, 1);
    return 0;
}

/* c.exact: the input's 2^64-1 and -2^63 arrive as written; sends them back. */
static int exact(TaskerStep *step) {
    const char *json = NULL;
    if (tasker_step_context(step, &json) != TASKER_OK) return -1;
    int seen = strstr(json, "\"big\":18446744073709551615") != NULL && strstr(json, "\"neg\":-9223372036854775808") != NULL;
    char out[160];
    snprintf(out, sizeof out, "{\"echo_big\": 18446744073709551615, \"echo_neg\": -9223372036854775808, \"seen\": %s}",
             seen ? "true" : "false");
    return tasker_step_succeed(step, out) == TASKER_OK ? 0 : -1;
}

static atomic_int dispatched;
static atomic_int logged;

/* Logs one line into the attempt's log and checks the log call's misuse and
 * the trace context; counts the calls where all of that held. */
static void log_attempt(TaskerStep *step, const char *handler) {
    char line[128];
    snprintf(line, sizeof line, "c handler %s running", handler ? handler : "?");
    const char *traceparent = tasker_step_traceparent(step);
    size_t n = traceparent ? strlen(traceparent) : 1;
    if (tasker_step_log(step, TASKER_LOG_INFO, line) == TASKER_OK &&
        tasker_step_log(step, TASKER_LOG_DEBUG, "a second line, at debug") == TASKER_OK &&
        tasker_step_log(step, 0, "no such level") == TASKER_ERR_INVALID_ARGUMENT &&
        tasker_step_log(step, TASKER_LOG_WARN, NULL) == TASKER_ERR_NULL_ARGUMENT &&
        tasker_step_log(step, TASKER_LOG_WARN, "\xff\xfe") == TASKER_ERR_INVALID_UTF8 &&
        (n == 0 || (n == 55 && strncmp(traceparent, "00-", 3) == 0)))
        atomic_fetch_add(&logged, 1);
}

static int dispatch(TaskerStep *step) {
    const char *name = NULL;
    const char *json = NULL;
    if (tasker_step_name(step, &name) != TASKER_OK || tasker_step_context(step, &json) != TASKER_OK) return -1;
    cJSON *ctx = cJSON_Parse(json);
    const char *handler = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ctx, "handler"));
    atomic_fetch_add(&dispatched, 1);
    log_attempt(step, handler);
    int rc;
    if (handler != NULL && strcmp(handler, "c.flaky") == 0) rc = flaky(step);
    else if (handler != NULL && strcmp(handler, "c.broken") == 0) rc = broken(step);
    else if (handler != NULL && strcmp(handler, "c.huge") == 0) rc = huge(step);
    else if (handler != NULL && strcmp(handler, "c.nan") == 0) rc = not_a_number(step);
    else if (handler != NULL && strcmp(handler, "c.exact") == 0) rc = exact(step);
    else rc = compute_step(step);
    cJSON_Delete(ctx);
    return rc;
}

static int32_t on_step(TaskerStep *step, void *user_data) {
    atomic_fetch_add((atomic_int *)user_data, 1);
    return dispatch(step);
}

static void free_counter(void *user_data) { atomic_fetch_add((atomic_int *)user_data, 1000); }

static void *pull_loop(void *arg) {
    TaskerWorker *worker = arg;
    for (;;) {
        TaskerStep *step = NULL;
        TaskerStatus status = tasker_worker_next_step(worker, 200, &step);
        if (status == TASKER_ERR_STOPPED) break;
        if (status != TASKER_OK) {
            fprintf(stderr, "next_step: %s\n", tasker_last_error());
            break;
        }
        if (step == NULL) continue;
        dispatch(step);
        TaskerStatus freed = tasker_step_free(step);
        if (freed != TASKER_OK) fprintf(stderr, "step_free: %s\n", tasker_last_error());
        /* The handle is gone: using it again is detected. */
        if (tasker_step_succeed(step, "1") != TASKER_ERR_INVALID_HANDLE) {
            fprintf(stderr, "a freed step handle was accepted\n");
            failures++;
        }
    }
    return NULL;
}

/* A step of a task's JSON by name. */
static cJSON *step_named(cJSON *task, const char *name) {
    cJSON *step = NULL;
    cJSON_ArrayForEach(step, cJSON_GetObjectItemCaseSensitive(task, "steps")) {
        const char *n = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(step, "name"));
        if (n != NULL && strcmp(n, name) == 0) return step;
    }
    return NULL;
}

static double number(cJSON *obj, const char *key) {
    cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static const char *string(cJSON *obj, const char *key) {
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(obj, key));
    return s ? s : "";
}

int main(int argc, char **argv) {
    int pull = argc > 1 && strcmp(argv[1], "pull") == 0;
    const char *url = test_database_url();
    atomic_int calls = 0;

    TaskerWorker *worker = NULL;
    CHECK_OK(tasker_worker_new("[worker]\nconcurrency = 4\n[queues]\npoll_interval_ms = 100\n", url, &worker));
    CHECK_OK(tasker_worker_add_namespace(worker, "c_examples"));
    CHECK_OK(tasker_worker_set_orchestrate(worker, true));
    const char *names[] = {"c.compute", "c.flaky", "c.broken", "c.huge", "c.nan", "c.exact"};
    for (int i = 0; i < 6; i++) {
        if (pull) CHECK_OK(tasker_worker_register_pull(worker, names[i]));
        else CHECK_OK(tasker_worker_register_handler(worker, names[i], on_step, &calls, i == 0 ? free_counter : NULL,
                                                     i == 1 ? TASKER_HANDLER_NONBLOCKING : TASKER_HANDLER_BLOCKING));
    }
    CHECK_OK(tasker_worker_start(worker));
    CHECK_STATUS(tasker_worker_start(worker), TASKER_ERR_STATE);
    pthread_t threads[3];
    if (pull)
        for (int i = 0; i < 3; i++) pthread_create(&threads[i], NULL, pull_loop, worker);

    TaskerClient *client = NULL;
    CHECK_OK(tasker_client_new(NULL, url, &client));
    CHECK_OK(tasker_client_register_template(client, DIAMOND_TEMPLATE, NULL));
    CHECK_OK(tasker_client_register_template(client, CHECKS_TEMPLATE, NULL));

    /* The diamond, with values 3 and -2. */
    int values[] = {3, -2};
    for (int i = 0; i < 2; i++) {
        char context[32], *id = NULL, *state = NULL, *json = NULL;
        snprintf(context, sizeof context, "{\"value\": %d}", values[i]);
        CHECK_OK(tasker_client_create_task(client, "c_examples", "diamond", "1.0.0", context, NULL, &id));
        CHECK_OK(tasker_client_wait_task(client, id, 30000, &state));
        CHECK(state != NULL && strcmp(state, "complete") == 0);
        CHECK_OK(tasker_client_get_task(client, id, &json));
        cJSON *task = cJSON_Parse(json);
        CHECK(number(cJSON_GetObjectItemCaseSensitive(step_named(task, "join"), "result"), "value") ==
              (double)diamond_expected(values[i]));
        CHECK(number(cJSON_GetObjectItemCaseSensitive(step_named(task, "left"), "result"), "value") ==
              (double)(values[i] * values[i] + 1));
        cJSON_Delete(task);
        tasker_string_free(id);
        tasker_string_free(state);
        tasker_string_free(json);
    }

    /* A batch (ABI 1.3): two diamonds in one transaction; a key repeated in the
       batch makes one task, both entries return its id. */
    {
        char *results = NULL, *state = NULL, *json = NULL;
        CHECK_OK(tasker_client_create_tasks(
            client,
            "[{\"namespace\": \"c_examples\", \"name\": \"diamond\", \"context\": {\"value\": 5}, \"idempotency_key\": \"batch-a\"},"
            " {\"namespace\": \"c_examples\", \"name\": \"diamond\", \"version\": \"1.0.0\", \"context\": {\"value\": 7}, \"priority\": 5,"
            "  \"delay_seconds\": 1},"
            " {\"namespace\": \"c_examples\", \"name\": \"diamond\", \"context\": {\"value\": 5}, \"idempotency_key\": \"batch-a\"}]",
            &results));
        cJSON *created = cJSON_Parse(results);
        CHECK(cJSON_IsArray(created) && cJSON_GetArraySize(created) == 3);
        CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(created, 0), "created")));
        CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(created, 1), "created")));
        CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(created, 2), "created")));
        CHECK(strcmp(string(cJSON_GetArrayItem(created, 0), "task_id"), string(cJSON_GetArrayItem(created, 2), "task_id")) == 0);
        int batch_values[] = {5, 7};
        for (int i = 0; i < 2; i++) {
            const char *task_id = string(cJSON_GetArrayItem(created, i), "task_id");
            CHECK_OK(tasker_client_wait_task(client, task_id, 30000, &state));
            CHECK(state != NULL && strcmp(state, "complete") == 0);
            CHECK_OK(tasker_client_get_task(client, task_id, &json));
            cJSON *task = cJSON_Parse(json);
            CHECK(number(cJSON_GetObjectItemCaseSensitive(step_named(task, "join"), "result"), "value") ==
                  (double)diamond_expected(batch_values[i]));
            /* The second has a delayed start: its run_at is kept. */
            CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(task, "run_at")) == (i == 1));
            cJSON_Delete(task);
            tasker_string_free(state);
            tasker_string_free(json);
            state = json = NULL;
        }
        cJSON_Delete(created);
        tasker_string_free(results);
        results = NULL;
        /* One refused task refuses the batch, named, with its own status. */
        CHECK_STATUS(tasker_client_create_tasks(
                         client,
                         "[{\"namespace\": \"c_examples\", \"name\": \"diamond\", \"context\": {\"value\": 1}},"
                         " {\"namespace\": \"c_examples\", \"name\": \"no_such_template\"}]",
                         &results),
                     TASKER_ERR_NOT_FOUND);
        CHECK(strstr(tasker_last_error(), "tasks[1]") != NULL);
        CHECK(results == NULL);
    }

    /* An input JSON cannot carry exactly creates no task. */
    char *id = NULL, *state = NULL, *json = NULL;
    CHECK_STATUS(tasker_client_create_task(client, "c_examples", "checks", NULL, "{\"big\": 18446744073709551616}",
                                           NULL, &id),
                 TASKER_ERR_UNREPRESENTABLE);
    CHECK(strstr(tasker_last_error(), "$.big") != NULL);
    CHECK(id == NULL);

    /* Retryable then success; permanent failure; fidelity. */
    CHECK_OK(tasker_client_create_task(client, "c_examples", "checks", NULL,
                                       "{\"big\": 18446744073709551615, \"neg\": -9223372036854775808}", NULL, &id));
    CHECK_OK(tasker_client_wait_task(client, id, 30000, &state));
    CHECK(state != NULL && (strcmp(state, "error") == 0 || strcmp(state, "blocked_by_failures") == 0));
    CHECK_OK(tasker_client_get_task(client, id, &json));
    cJSON *task = cJSON_Parse(json);
    cJSON *flaky_step = step_named(task, "flaky"), *broken_step = step_named(task, "broken");
    CHECK(strcmp(string(flaky_step, "state"), "complete") == 0);
    CHECK(number(flaky_step, "attempts") == 2);
    CHECK(number(cJSON_GetObjectItemCaseSensitive(flaky_step, "result"), "attempt") == 2);
    CHECK(strcmp(string(broken_step, "state"), "error") == 0);
    CHECK(number(broken_step, "attempts") == 1);
    CHECK(strstr(string(cJSON_GetObjectItemCaseSensitive(broken_step, "last_error"), "message"), "never work") != NULL);
    CHECK(strcmp(string(cJSON_GetObjectItemCaseSensitive(broken_step, "last_error"), "kind"), "handler") == 0);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(step_named(task, "exact"), "result"), "seen")));
    /* cJSON reads numbers as doubles: look at the text for the exact integers. */
    CHECK(strstr(json, "\"echo_big\":18446744073709551615") != NULL);
    CHECK(strstr(json, "\"echo_neg\":-9223372036854775808") != NULL);
    const char *refused[] = {"huge", "notanumber"};
    const char *paths[] = {"at $.total:", "at $.ratio[1]:"};
    for (int i = 0; i < 2; i++) {
        cJSON *s = step_named(task, refused[i]);
        cJSON *error = cJSON_GetObjectItemCaseSensitive(s, "last_error");
        CHECK(strcmp(string(s, "state"), "error") == 0);
        CHECK(number(s, "attempts") == 1);
        CHECK(strcmp(string(error, "kind"), "result") == 0);
        CHECK(strstr(string(error, "message"), paths[i]) != NULL);
        CHECK(strstr(string(error, "message"), refused[i]) != NULL); /* names the step */
    }
    cJSON_Delete(task);
    tasker_string_free(id);
    tasker_string_free(state);
    tasker_string_free(json);

    CHECK(atomic_load(&double_completions_refused) == 1);
    CHECK(atomic_load(&bad_json_refused) == 1);
    CHECK(atomic_load(&inexact_refused) == 2);
    CHECK(atomic_load(&dispatched) >= 4 * 2 + 6);
    CHECK(atomic_load(&logged) == atomic_load(&dispatched));

    CHECK_OK(tasker_worker_stop(worker));
    if (pull)
        for (int i = 0; i < 3; i++) pthread_join(threads[i], NULL);
    else
        CHECK(atomic_load(&calls) >= 4 * 2 + 3);
    CHECK_STATUS(tasker_worker_next_step(worker, 10, &(TaskerStep *){NULL}), TASKER_ERR_STOPPED);
    CHECK_OK(tasker_worker_free(worker));
    if (!pull) CHECK(atomic_load(&calls) >= 1000); /* free_user_data ran */
    CHECK_OK(tasker_client_free(client));
    return finish(pull ? "test_handlers pull" : "test_handlers push");
}
