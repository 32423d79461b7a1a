/*
 * `math.compute` as a C WASM component, the same handler as the Rust one
 * (examples/wasm/rust/math): n is the task input's `value` for a root step,
 * otherwise the sum of the parents' `value`s; the result is
 * {"value": op(n), "lang": "c"} with config.op one of `square`, `add`,
 * `multiply` (config.operand, default 1). 64-bit integers throughout, with
 * the Rust handler's results and error messages for the same inputs.
 *
 * Build: sdk-wit/c/build.sh -o math_c.wasm examples/wasm/c/math.c
 */
#include <string.h>

#include "tasker_guest.h"

/* Rust's `{:?}` of an Option<&str>: None, or Some("...") with Rust's escapes
 * (exact for ASCII; other characters are written as they are, except the C1
 * controls). */
static void rust_debug_option_str(tasker_buf *b, const char *s, size_t n) {
    if (!s) {
        tasker_buf_puts(b, "None");
        return;
    }
    tasker_buf_puts(b, "Some(\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '\0': tasker_buf_puts(b, "\\0"); break;
        case '\t': tasker_buf_puts(b, "\\t"); break;
        case '\r': tasker_buf_puts(b, "\\r"); break;
        case '\n': tasker_buf_puts(b, "\\n"); break;
        case '\\': tasker_buf_puts(b, "\\\\"); break;
        case '"': tasker_buf_puts(b, "\\\""); break;
        default:
            if (c < 0x20 || c == 0x7f) {
                tasker_buf_printf(b, "\\u{%x}", c);
            } else if (c == 0xC2 && i + 1 < n && (unsigned char)s[i + 1] >= 0x80 &&
                       (unsigned char)s[i + 1] <= 0x9F) {
                tasker_buf_printf(b, "\\u{%x}", (unsigned char)s[++i]);
            } else {
                tasker_buf_append(b, (const char *)&s[i], 1);
            }
        }
    }
    tasker_buf_puts(b, "\")");
}

tasker_result tasker_handle(const tasker_context *ctx) {
    int64_t n = 0;
    size_t parents = tasker_json_size(ctx->parent_results);
    if (tasker_json_type_of(ctx->parent_results) == TASKER_JSON_OBJECT && parents > 0) {
        /* In key order; the first parent without an integer `value` is named. */
        int64_t sum = 0;
        for (size_t i = 0; i < parents; i++) {
            int64_t v;
            if (!tasker_json_int64(tasker_json_get(tasker_json_at(ctx->parent_results, i), "value"), &v))
                return tasker_permanent("parent `%s` has no integer `value`",
                                        tasker_json_key_at(ctx->parent_results, i, NULL));
            /* An overflowing sum fails the step, as the Rust handler's does. */
            if (__builtin_add_overflow(sum, v, &sum)) return tasker_permanent("overflow");
        }
        n = sum;
    } else if (!tasker_json_int64(tasker_json_get(ctx->input, "value"), &n)) {
        return tasker_permanent("input `value` must be an integer");
    }
    int64_t operand;
    if (!tasker_json_int64(tasker_json_get(ctx->config, "operand"), &operand)) operand = 1;
    size_t op_len = 0;
    const char *op = tasker_json_string(tasker_json_get(ctx->config, "op"), &op_len);
    int64_t value;
    bool overflow;
    if (op && op_len == 6 && memcmp(op, "square", 6) == 0) {
        overflow = __builtin_mul_overflow(n, n, &value);
    } else if (op && op_len == 3 && memcmp(op, "add", 3) == 0) {
        overflow = __builtin_add_overflow(n, operand, &value);
    } else if (op && op_len == 8 && memcmp(op, "multiply", 8) == 0) {
        overflow = __builtin_mul_overflow(n, operand, &value);
    } else {
        tasker_buf message = {0};
        tasker_buf_puts(&message, "unknown op ");
        rust_debug_option_str(&message, op, op_len);
        tasker_result r = tasker_permanent("%s", message.data);
        tasker_buf_free(&message);
        return r;
    }
    if (overflow) return tasker_permanent("overflow");
    tasker_log(TASKER_DEBUG, "%s -> %" PRId64, ctx->step_name, value);
    return tasker_ok_fmt("{\"value\":%" PRId64 ",\"lang\":\"c\"}", value);
}
