/*
 * test_misuse: every misuse the library can detect returns an error code with
 * a message, and nothing crashes: NULL arguments, invalid UTF-8, invalid JSON,
 * invalid configuration, freed and made-up handles, calls in the wrong state,
 * and bad requests to the client (nothing is written for them).
 */
#include "harness.h"

static const char *const TEMPLATE =
    "namespace: misuse\n"
    "name: one\n"
    "version: 1.0.0\n"
    "input_schema: { type: object, required: [n], properties: { n: { type: integer } } }\n"
    "steps:\n"
    "  - name: only\n"
    "    handler: { name: c.noop }\n";

static int32_t noop(TaskerStep *step, void *user_data) {
    (void)user_data;
    return tasker_step_succeed(step, "null") == TASKER_OK ? 0 : -1;
}

int main(void) {
    const char *url = test_database_url();
    const char bad_utf8[] = {'a', (char)0xff, (char)0xfe, 0};
    TaskerWorker *worker = NULL;
    TaskerClient *client = NULL;
    char *out = NULL;

    /* The version and the status names. */
    CHECK(tasker_abi_version() / 10000 == TASKER_ABI_VERSION_MAJOR);
    CHECK(strcmp(tasker_status_name(TASKER_ERR_INVALID_JSON), "TASKER_ERR_INVALID_JSON") == 0);
    CHECK(strcmp(tasker_status_name(TASKER_ERR_UNREPRESENTABLE), "TASKER_ERR_UNREPRESENTABLE") == 0);
    CHECK(tasker_abi_version() >= 10100); /* TASKER_ERR_UNREPRESENTABLE came with 1.1 */
    CHECK(tasker_abi_version() >= 10200); /* tasker_step_log and tasker_step_traceparent: 1.2 */
    CHECK(tasker_abi_version() >= 10300); /* tasker_client_create_tasks: 1.3 */

    /* NULL arguments. */
    CHECK_STATUS(tasker_worker_new(NULL, NULL, NULL), TASKER_ERR_NULL_ARGUMENT);
    CHECK(strstr(tasker_last_error(), "out") != NULL);
    CHECK_STATUS(tasker_worker_start(NULL), TASKER_ERR_NULL_ARGUMENT);
    CHECK_STATUS(tasker_worker_next_step(NULL, 0, NULL), TASKER_ERR_NULL_ARGUMENT);
    CHECK_STATUS(tasker_step_succeed(NULL, "1"), TASKER_ERR_NULL_ARGUMENT);
    CHECK_STATUS(tasker_step_fail(NULL, NULL, true, -1), TASKER_ERR_NULL_ARGUMENT);
    CHECK_STATUS(tasker_step_log(NULL, TASKER_LOG_INFO, "x"), TASKER_ERR_NULL_ARGUMENT);
    CHECK(tasker_step_traceparent(NULL) == NULL);
    CHECK(strstr(tasker_last_error(), "step") != NULL);
    CHECK_STATUS(tasker_client_get_task(NULL, NULL, NULL), TASKER_ERR_NULL_ARGUMENT);
    CHECK_OK(tasker_worker_free(NULL));
    CHECK_OK(tasker_client_free(NULL));
    tasker_string_free(NULL);

    /* Invalid configuration and UTF-8. */
    CHECK_STATUS(tasker_worker_new("[worker]\nconcurrency = -3\n", NULL, &worker), TASKER_ERR_CONFIG);
    CHECK(strstr(tasker_last_error(), "concurrency") != NULL);
    CHECK_STATUS(tasker_worker_new("this is = not toml [", NULL, &worker), TASKER_ERR_CONFIG);
    CHECK_STATUS(tasker_worker_new(bad_utf8, NULL, &worker), TASKER_ERR_INVALID_UTF8);
    CHECK_STATUS(tasker_worker_new_from_file("/nonexistent/tasker.toml", NULL, &worker), TASKER_ERR_CONFIG);
    CHECK(worker == NULL);

    /* A worker in the wrong state, and bad names. */
    CHECK_OK(tasker_worker_new(NULL, url, &worker));
    CHECK_STATUS(tasker_worker_next_step(worker, 0, &(TaskerStep *){NULL}), TASKER_ERR_STATE);
    CHECK_STATUS(tasker_worker_start(worker), TASKER_ERR_INVALID_ARGUMENT); /* no namespace, no handler */
    CHECK_STATUS(tasker_worker_add_namespace(worker, bad_utf8), TASKER_ERR_INVALID_UTF8);
    CHECK_STATUS(tasker_worker_add_namespace(worker, "no spaces; or quotes'"), TASKER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(tasker_worker_register_pull(worker, ""), TASKER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(tasker_worker_register_handler(worker, "c.noop", NULL, NULL, NULL, 0), TASKER_ERR_NULL_ARGUMENT);
    CHECK_STATUS(tasker_worker_register_handler(worker, "c.noop", noop, NULL, NULL, 42), TASKER_ERR_INVALID_ARGUMENT);
    CHECK_OK(tasker_worker_stop(worker)); /* never started: fine */
    CHECK_OK(tasker_worker_free(worker));

    /* A freed handle, used and freed again; a made-up one. */
    CHECK_STATUS(tasker_worker_add_namespace(worker, "misuse"), TASKER_ERR_INVALID_HANDLE);
    CHECK(strstr(tasker_last_error(), "TaskerWorker") != NULL);
    CHECK_STATUS(tasker_worker_free(worker), TASKER_ERR_INVALID_HANDLE);
    CHECK_STATUS(tasker_step_succeed((TaskerStep *)worker, "1"), TASKER_ERR_INVALID_HANDLE);
    CHECK_STATUS(tasker_step_log((TaskerStep *)worker, TASKER_LOG_INFO, "x"), TASKER_ERR_INVALID_HANDLE);
    CHECK(tasker_step_traceparent((TaskerStep *)worker) == NULL);
    CHECK_STATUS(tasker_client_free((TaskerClient *)(uintptr_t)0x5150), TASKER_ERR_INVALID_HANDLE);

    /* The client: bad JSON, unknown templates, schema violations, bad ids. */
    CHECK_STATUS(tasker_client_new("[database]\nacquire_timeout_ms = 300\n", "postgres://nobody@127.0.0.1:1/none", &client), TASKER_ERR_DATABASE);
    CHECK(client == NULL);
    CHECK_OK(tasker_client_new(NULL, url, &client));
    CHECK_STATUS(tasker_client_register_template(client, "steps: [", NULL), TASKER_ERR_INVALID_ARGUMENT);
    CHECK_OK(tasker_client_register_template(client, TEMPLATE, &out));
    CHECK(out != NULL && strstr(out, "misuse") != NULL);
    tasker_string_free(out);
    out = NULL;
    CHECK_STATUS(tasker_client_create_task(client, "misuse", "one", NULL, "{\"n\": ", NULL, &out), TASKER_ERR_INVALID_JSON);
    CHECK(strstr(tasker_last_error(), "context_json") != NULL);
    CHECK_STATUS(tasker_client_create_task(client, "misuse", "one", NULL, "{\"n\": \"x\"}", NULL, &out), TASKER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(tasker_client_create_task(client, "misuse", "nope", NULL, "{}", NULL, &out), TASKER_ERR_NOT_FOUND);
    CHECK_STATUS(tasker_client_create_task(client, "misuse", "one", bad_utf8, "{}", NULL, &out), TASKER_ERR_INVALID_UTF8);
    CHECK(out == NULL);
    /* Batches: each refusal names what is wrong; nothing is written. */
    CHECK_STATUS(tasker_client_create_tasks(client, "[{\"namespace\": \"misuse\", \"name\": \"one\"}]", NULL), TASKER_ERR_NULL_ARGUMENT);
    CHECK(strstr(tasker_last_error(), "results_json_out") != NULL);
    CHECK_STATUS(tasker_client_create_tasks(client, NULL, &out), TASKER_ERR_NULL_ARGUMENT);
    CHECK_STATUS(tasker_client_create_tasks(client, "[{", &out), TASKER_ERR_INVALID_JSON);
    CHECK(strstr(tasker_last_error(), "tasks") != NULL);
    CHECK_STATUS(tasker_client_create_tasks(client, "{\"namespace\": \"misuse\"}", &out), TASKER_ERR_INVALID_ARGUMENT);
    CHECK(strstr(tasker_last_error(), "array") != NULL);
    CHECK_STATUS(tasker_client_create_tasks(client, "[]", &out), TASKER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(tasker_client_create_tasks(client, "[{\"namespace\": \"misuse\", \"name\": \"one\", \"bogus\": 1}]", &out),
                 TASKER_ERR_INVALID_ARGUMENT);
    CHECK(strstr(tasker_last_error(), "tasks[0]") != NULL && strstr(tasker_last_error(), "bogus") != NULL);
    CHECK_STATUS(tasker_client_create_tasks(
                     client, "[{\"namespace\": \"misuse\", \"name\": \"one\", \"context\": {\"n\": 18446744073709551616}}]", &out),
                 TASKER_ERR_UNREPRESENTABLE);
    CHECK_STATUS(tasker_client_create_tasks(
                     client, "[{\"namespace\": \"misuse\", \"name\": \"one\", \"context\": {\"n\": 1}},"
                             " {\"namespace\": \"misuse\", \"name\": \"one\", \"context\": {\"n\": \"x\"}}]", &out),
                 TASKER_ERR_INVALID_ARGUMENT);
    CHECK(strstr(tasker_last_error(), "tasks[1]") != NULL);
    CHECK_STATUS(tasker_client_create_tasks(client, "[{\"namespace\": \"misuse\", \"name\": \"one\", \"context\": {\"n\": 1},"
                                                    " \"run_at\": \"tomorrow\"}]", &out),
                 TASKER_ERR_INVALID_ARGUMENT);
    CHECK(strstr(tasker_last_error(), "tasks[0].run_at") != NULL);
    CHECK_STATUS(tasker_client_create_tasks(client, "[{\"namespace\": \"misuse\", \"name\": \"one\", \"context\": {\"n\": 1},"
                                                    " \"run_at\": \"2027-01-01T00:00:00Z\", \"delay_seconds\": 5}]", &out),
                 TASKER_ERR_INVALID_ARGUMENT);
    CHECK(strstr(tasker_last_error(), "tasks[0]") != NULL);
    CHECK_STATUS(tasker_client_create_tasks(client, bad_utf8, &out), TASKER_ERR_INVALID_UTF8);
    CHECK(out == NULL);
    CHECK_STATUS(tasker_client_get_task(client, "not-a-uuid", &out), TASKER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(tasker_client_get_task(client, "0190d1a4-0000-7000-8000-000000000000", &out), TASKER_ERR_NOT_FOUND);
    CHECK_STATUS(tasker_client_wait_task(client, "0190d1a4-0000-7000-8000-000000000000", 100, NULL), TASKER_ERR_NOT_FOUND);
    /* A valid task that nobody serves: waiting times out, naming its state. */
    CHECK_OK(tasker_client_create_task(client, "misuse", "one", NULL, "{\"n\": 1}", "key-1", &out));
    char *again = NULL;
    CHECK_OK(tasker_client_create_task(client, "misuse", "one", NULL, "{\"n\": 1}", "key-1", &again));
    CHECK(out != NULL && again != NULL && strcmp(out, again) == 0); /* idempotent */
    CHECK_STATUS(tasker_client_wait_task(client, out, 200, NULL), TASKER_ERR_TIMEOUT);
    CHECK(strstr(tasker_last_error(), "still") != NULL);
    tasker_string_free(out);
    tasker_string_free(again);
    CHECK_OK(tasker_client_free(client));
    CHECK_STATUS(tasker_client_free(client), TASKER_ERR_INVALID_HANDLE);

    return finish("test_misuse");
}
