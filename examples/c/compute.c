/* compute.c: see compute.h. */
#include "compute.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

const char *const DIAMOND_TEMPLATE =
    "namespace: c_examples\n"
    "name: diamond\n"
    "version: 1.0.0\n"
    "description: \"Fan-out and fan-in, computed by C handlers.\"\n"
    "input_schema:\n"
    "  type: object\n"
    "  required: [value]\n"
    "  properties:\n"
    "    value: { type: integer, minimum: -1000, maximum: 1000 }\n"
    "steps:\n"
    "  - name: start\n"
    "    handler: { name: c.compute, config: { op: square } }\n"
    "  - name: left\n"
    "    handler: { name: c.compute, config: { op: add, operand: 1 } }\n"
    "    depends_on: [start]\n"
    "  - name: right\n"
    "    handler: { name: c.compute, config: { op: multiply, operand: 2 } }\n"
    "    depends_on: [start]\n"
    "  - name: join\n"
    "    handler: { name: c.compute, config: { op: square } }\n"
    "    depends_on: [left, right]\n";

long long diamond_expected(long long value) {
    long long start = value * value;
    long long sum = (start + 1) + (start * 2);
    return sum * sum;
}

static int fail(TaskerStep *step, const char *message) {
    return tasker_step_fail(step, message, false, -1) == TASKER_OK ? 0 : -1;
}

int compute_step(TaskerStep *step) {
    const char *json = NULL;
    if (tasker_step_context(step, &json) != TASKER_OK) return -1;
    cJSON *ctx = cJSON_Parse(json);
    if (ctx == NULL) return fail(step, "the step context is not JSON");

    long long n = 0;
    cJSON *parents = cJSON_GetObjectItemCaseSensitive(ctx, "parent_results");
    if (parents == NULL || cJSON_GetArraySize(parents) == 0) {
        cJSON *value = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(ctx, "input"), "value");
        if (!cJSON_IsNumber(value)) {
            cJSON_Delete(ctx);
            return fail(step, "input `value` must be an integer");
        }
        n = (long long)value->valuedouble;
    } else {
        cJSON *parent = NULL;
        cJSON_ArrayForEach(parent, parents) {
            cJSON *value = cJSON_GetObjectItemCaseSensitive(parent, "value");
            if (!cJSON_IsNumber(value)) {
                cJSON_Delete(ctx);
                return fail(step, "a parent result has no integer `value`");
            }
            n += (long long)value->valuedouble;
        }
    }

    cJSON *config = cJSON_GetObjectItemCaseSensitive(ctx, "config");
    const char *op = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(config, "op"));
    cJSON *operand_item = cJSON_GetObjectItemCaseSensitive(config, "operand");
    long long operand = cJSON_IsNumber(operand_item) ? (long long)operand_item->valuedouble : 0;
    long long result;
    if (op != NULL && strcmp(op, "square") == 0) {
        result = n * n;
    } else if (op != NULL && strcmp(op, "add") == 0) {
        result = n + operand;
    } else if (op != NULL && strcmp(op, "multiply") == 0) {
        result = n * operand;
    } else {
        cJSON_Delete(ctx);
        return fail(step, "config `op` must be square, add or multiply");
    }
    /* A line in this attempt's log: `tasker step logs <task> <step>` shows it.
     * (`op` lives in `ctx`: log before freeing it.) */
    char line[128];
    snprintf(line, sizeof line, "c.compute: %s(%lld) = %lld", op, n, result);
    tasker_step_log(step, TASKER_LOG_INFO, line);
    cJSON_Delete(ctx);

    char out[64];
    snprintf(out, sizeof out, "{\"value\":%lld}", result);
    return tasker_step_succeed(step, out) == TASKER_OK ? 0 : -1;
}
