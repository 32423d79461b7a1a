/*
 * tasker_guest: write a tasker step handler in C and build it into a WASM
 * component (README.md in this directory).
 *
 *     #include "tasker_guest.h"
 *
 *     tasker_result tasker_handle(const tasker_context *ctx) {
 *         int64_t v;
 *         if (!tasker_json_int64(tasker_json_get(ctx->input, "value"), &v))
 *             return tasker_permanent("no value");
 *         return tasker_ok_fmt("{\"value\":%" PRId64 "}", v * 2);
 *     }
 *
 * The glue (tasker_guest.c) implements the component's export
 * `tasker:handler/handler@0.1.0#handle` on top of the wit-bindgen C bindings
 * (step_handler.h): it parses the context's JSON texts, calls tasker_handle
 * once per attempt, and hands the result or error to the host.
 */
#ifndef TASKER_GUEST_H
#define TASKER_GUEST_H

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tasker_json.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The contract version this glue implements. */
#define TASKER_CONTRACT_VERSION "0.1.0"

/* One attempt's context. Everything here lives until tasker_handle returns. */
typedef struct tasker_context {
    const char *task_id;       /* UUID text */
    const char *step_id;       /* UUID text */
    const char *namespace_name;
    const char *template_name;
    const char *step_name;
    uint32_t attempt;          /* 1 for the first attempt */
    uint32_t max_attempts;
    const tasker_json *input;          /* the task's input */
    const tasker_json *parent_results; /* an object keyed by parent step name */
    const tasker_json *config;         /* the template's handler config */
} tasker_context;

/* What a handler returns: made by one of the functions below, never by hand. */
typedef struct tasker_result {
    bool ok;
    char *text; /* ok: the JSON result; else the error message (malloc'ed) */
    size_t len;
    bool retryable;
    bool has_retry_after;
    uint64_t retry_after_ms;
} tasker_result;

/* Implement this: one attempt of the step. */
tasker_result tasker_handle(const tasker_context *ctx);

/* Success with `json` (valid JSON text) as the step's result; copied. */
tasker_result tasker_ok(const char *json);
/* Success with printf-formatted JSON text. */
tasker_result tasker_ok_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Success with the JSON text in `b`, which is taken over (b is left empty). */
tasker_result tasker_ok_buf(tasker_buf *b);
/* Success with `len` bytes of JSON text at `json`, a malloc'ed block taken over. */
tasker_result tasker_ok_take(char *json, size_t len);

/* A failure no attempt can fix: the step fails now (`last_error.kind` "handler"). */
tasker_result tasker_permanent(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A failure another attempt may fix: the step's retry policy decides. */
tasker_result tasker_retryable(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* `error` asking for the next attempt no earlier than `ms` milliseconds from now. */
tasker_result tasker_retry_after(tasker_result error, uint64_t ms);

typedef enum tasker_level {
    TASKER_TRACE,
    TASKER_DEBUG,
    TASKER_INFO,
    TASKER_WARN,
    TASKER_ERROR,
} tasker_level;

/* Writes a printf-formatted message into the step's log (the worker's tracing output). */
void tasker_log(tasker_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#ifdef __cplusplus
}
#endif
#endif
