/*
 * client: registers the C diamond template, creates COUNT diamond tasks
 * (value = 1..COUNT), waits for each (a worker must be serving c_examples:
 * run push_worker or pull_worker) and checks every result.
 *
 *   client [COUNT] [TIMEOUT_MS]
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compute.h"

static int check(TaskerStatus status, const char *what) {
    if (status != TASKER_OK) {
        fprintf(stderr, "client: %s failed: %s: %s\n", what, tasker_status_name(status), tasker_last_error());
        return 0;
    }
    return 1;
}

/* The `join` step's `value` from a task's JSON, or -1. */
static long long join_value(const char *task_json) {
    long long value = -1;
    cJSON *task = cJSON_Parse(task_json);
    cJSON *step = NULL;
    cJSON_ArrayForEach(step, cJSON_GetObjectItemCaseSensitive(task, "steps")) {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(step, "name"));
        if (name != NULL && strcmp(name, "join") == 0) {
            cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(step, "result"), "value");
            if (cJSON_IsNumber(v)) value = (long long)v->valuedouble;
        }
    }
    cJSON_Delete(task);
    return value;
}

int main(int argc, char **argv) {
    int count = argc > 1 ? atoi(argv[1]) : 3;
    unsigned long long timeout_ms = argc > 2 ? strtoull(argv[2], NULL, 10) : 30000;
    if (count < 1 || count > 1000) count = 3;

    TaskerClient *client = NULL;
    if (!check(tasker_client_new(NULL, NULL, &client), "connecting")) return 1;
    int ok = check(tasker_client_register_template(client, DIAMOND_TEMPLATE, NULL), "registering the template");
    char **ids = calloc((size_t)count, sizeof *ids);
    for (int i = 0; ok && i < count; i++) {
        char context[64];
        snprintf(context, sizeof context, "{\"value\": %d}", i + 1);
        ok = check(tasker_client_create_task(client, "c_examples", "diamond", NULL, context, NULL, &ids[i]),
                   "creating a task");
    }
    for (int i = 0; ok && i < count; i++) {
        char *state = NULL;
        char *json = NULL;
        ok = check(tasker_client_wait_task(client, ids[i], timeout_ms, &state), "waiting for a task") &&
             check(tasker_client_get_task(client, ids[i], &json), "reading a task");
        if (ok) {
            long long got = join_value(json), want = diamond_expected(i + 1);
            printf("diamond(%d) = %lld [%s] %s\n", i + 1, got, state, got == want ? "ok" : "WRONG");
            ok = got == want && strcmp(state, "complete") == 0;
        }
        tasker_string_free(state);
        tasker_string_free(json);
    }
    for (int i = 0; i < count; i++) tasker_string_free(ids[i]);
    free(ids);
    if (!check(tasker_client_free(client), "freeing the client")) ok = 0;
    return ok ? 0 : 1;
}
