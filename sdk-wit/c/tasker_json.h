/*
 * tasker_json: a small JSON reader and writer for C step handlers (WASM guests).
 *
 * Reading follows serde_json, which the Rust guests use, so a C handler sees
 * the same values a Rust one does:
 *   - integers are exact: a literal without fraction or exponent is an int64
 *     when it fits (-9223372036854775808 ..= 9223372036854775807) and a uint64
 *     when it fits 0 ..= 18446744073709551615; every other number ("1.0",
 *     "1e3", "-0", beyond 64 bits) is only a double;
 *   - an object's members are sorted by key (bytewise) and a repeated key
 *     keeps its last value;
 *   - strict RFC 8259 text: no comments, no trailing commas, nesting at most
 *     128 deep.
 * Values are read-only trees owned by whoever parsed them (the context's
 * values belong to the glue and live for the duration of one call).
 * Every accessor accepts NULL and then answers "absent" (NULL, 0 or false).
 */
#ifndef TASKER_JSON_H
#define TASKER_JSON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tasker_json_type {
    TASKER_JSON_NULL,
    TASKER_JSON_BOOL,
    TASKER_JSON_NUMBER,
    TASKER_JSON_STRING,
    TASKER_JSON_ARRAY,
    TASKER_JSON_OBJECT,
} tasker_json_type;

typedef struct tasker_json tasker_json;

/* Parses `len` bytes of JSON text. NULL on error, with a message (as
 * "expected value at line 1 column 5") in `err` when `err` is not NULL. */
tasker_json *tasker_json_parse(const char *text, size_t len, char *err, size_t err_size);
void tasker_json_free(tasker_json *v);

/* TASKER_JSON_NULL for NULL too. */
tasker_json_type tasker_json_type_of(const tasker_json *v);

/* The member `key` of an object; NULL if `v` is not an object or has no such key. */
const tasker_json *tasker_json_get(const tasker_json *v, const char *key);
/* Elements of an array or members of an object; 0 otherwise. */
size_t tasker_json_size(const tasker_json *v);
/* The i-th element of an array, or the i-th member's value of an object (in key order). */
const tasker_json *tasker_json_at(const tasker_json *v, size_t i);
/* The i-th member's key of an object (NUL-terminated; `len`, when not NULL,
 * gets its length, which counts any "\u0000" escapes). */
const char *tasker_json_key_at(const tasker_json *v, size_t i, size_t *len);

/* True, with the value, when `v` is an integer that fits (as serde_json's as_i64/as_u64). */
bool tasker_json_int64(const tasker_json *v, int64_t *out);
bool tasker_json_uint64(const tasker_json *v, uint64_t *out);
/* True for any number (integers converted, like serde_json's as_f64). */
bool tasker_json_double(const tasker_json *v, double *out);
bool tasker_json_bool(const tasker_json *v, bool *out);
/* The decoded text of a string value (NUL-terminated; `len` as above); NULL otherwise. */
const char *tasker_json_string(const tasker_json *v, size_t *len);

/* A growable byte buffer for writing JSON (or any text). Start with
 * `tasker_buf b = {0};`. Writes never fail: running out of memory traps. */
typedef struct tasker_buf {
    char *data; /* NUL-terminated once anything was written */
    size_t len;
    size_t cap;
} tasker_buf;

void tasker_buf_append(tasker_buf *b, const char *s, size_t n);
void tasker_buf_puts(tasker_buf *b, const char *s);
void tasker_buf_printf(tasker_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tasker_buf_vprintf(tasker_buf *b, const char *fmt, va_list ap);
/* `s` (n bytes of UTF-8) as a quoted JSON string, escaped. */
void tasker_buf_json_string(tasker_buf *b, const char *s, size_t n);
/* `v` as compact JSON (keys in order, numbers as they were written). */
void tasker_buf_json(tasker_buf *b, const tasker_json *v);
void tasker_buf_free(tasker_buf *b);

#ifdef __cplusplus
}
#endif
#endif
