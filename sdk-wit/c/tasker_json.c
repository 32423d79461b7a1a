/* tasker_json: see tasker_json.h. */
#include "tasker_json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 128

enum { NUM_I64 = 1, NUM_U64 = 2 };

typedef struct member {
    char *key;
    size_t key_len;
    tasker_json *value;
    size_t order; /* position in the text: the last of equal keys wins */
} member;

struct tasker_json {
    tasker_json_type type;
    bool boolean;
    unsigned num; /* NUM_I64 | NUM_U64: which exact forms the number has */
    int64_t i64;
    uint64_t u64;
    double f64;
    char *text; /* a string's decoded bytes, or a number's literal; NUL-terminated */
    size_t len;
    size_t n;             /* elements or members */
    tasker_json **items;  /* array */
    member *members;      /* object, sorted by key */
};

static void *xrealloc(void *p, size_t n) {
    void *r = realloc(p, n ? n : 1);
    if (!r) abort(); /* out of memory: trap */
    return r;
}

/* ------------------------------------------------------------------ reading */

typedef struct parser {
    const char *start, *p, *end;
    char *err;
    size_t err_size;
    int depth;
} parser;

static void *fail(parser *ps, const char *what) {
    if (ps->err && ps->err_size) {
        size_t line = 1, column = 0;
        for (const char *q = ps->start; q < ps->p && q < ps->end; q++) {
            if (*q == '\n') {
                line++;
                column = 0;
            } else {
                column++;
            }
        }
        if (ps->p < ps->end) column++;
        snprintf(ps->err, ps->err_size, "%s at line %zu column %zu", what, line, column);
    }
    ps->err = NULL; /* keep the first message */
    return NULL;
}

static void skip_ws(parser *ps) {
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static tasker_json *node(tasker_json_type type) {
    tasker_json *v = xrealloc(NULL, sizeof *v);
    memset(v, 0, sizeof *v);
    v->type = type;
    return v;
}

static tasker_json *parse_value(parser *ps);

static bool literal(parser *ps, const char *word) {
    size_t n = strlen(word);
    for (size_t i = 0; i < n; i++, ps->p++) {
        if (ps->p >= ps->end) return fail(ps, "EOF while parsing a value"), false;
        if (*ps->p != word[i]) return fail(ps, "expected ident"), false;
    }
    return true;
}

static int hex4(parser *ps) {
    int v = 0;
    for (int i = 0; i < 4; i++, ps->p++) {
        if (ps->p >= ps->end) return fail(ps, "EOF while parsing a string"), -1;
        char c = *ps->p;
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) return fail(ps, "invalid escape"), -1;
        v = v * 16 + d;
    }
    return v;
}

static size_t put_utf8(char *out, uint32_t c) {
    if (c < 0x80) {
        out[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (char)(0xC0 | (c >> 6));
        out[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (char)(0xE0 | (c >> 12));
        out[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        out[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (c >> 18));
    out[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    out[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* A string after its opening quote: its decoded bytes in *out (malloc'ed). */
static bool parse_string(parser *ps, char **out, size_t *out_len) {
    /* The decoded text is never longer than the escaped one. */
    const char *q = ps->p;
    while (q < ps->end && *q != '"') q += (*q == '\\' && q + 1 < ps->end) ? 2 : 1;
    char *s = xrealloc(NULL, (size_t)(q - ps->p) + 1);
    size_t n = 0;
    for (;;) {
        if (ps->p >= ps->end) {
            free(s);
            return fail(ps, "EOF while parsing a string"), false;
        }
        unsigned char c = (unsigned char)*ps->p;
        if (c == '"') {
            ps->p++;
            break;
        }
        if (c < 0x20) {
            free(s);
            return fail(ps, "control character (\\u0000-\\u001F) found while parsing a string"), false;
        }
        if (c != '\\') {
            s[n++] = (char)c;
            ps->p++;
            continue;
        }
        ps->p++;
        if (ps->p >= ps->end) {
            free(s);
            return fail(ps, "EOF while parsing a string"), false;
        }
        char e = *ps->p++;
        switch (e) {
        case '"': s[n++] = '"'; break;
        case '\\': s[n++] = '\\'; break;
        case '/': s[n++] = '/'; break;
        case 'b': s[n++] = '\b'; break;
        case 'f': s[n++] = '\f'; break;
        case 'n': s[n++] = '\n'; break;
        case 'r': s[n++] = '\r'; break;
        case 't': s[n++] = '\t'; break;
        case 'u': {
            int hi = hex4(ps);
            if (hi < 0) {
                free(s);
                return false;
            }
            uint32_t cp = (uint32_t)hi;
            if (hi >= 0xDC00 && hi <= 0xDFFF) {
                free(s);
                return fail(ps, "lone trailing surrogate in hex escape"), false;
            }
            if (hi >= 0xD800 && hi <= 0xDBFF) {
                if (ps->end - ps->p < 2 || ps->p[0] != '\\' || ps->p[1] != 'u') {
                    free(s);
                    return fail(ps, "lone leading surrogate in hex escape"), false;
                }
                ps->p += 2;
                int lo = hex4(ps);
                if (lo < 0) {
                    free(s);
                    return false;
                }
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    free(s);
                    return fail(ps, "lone leading surrogate in hex escape"), false;
                }
                cp = 0x10000 + (((uint32_t)hi - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
            }
            n += put_utf8(s + n, cp);
            break;
        }
        default:
            free(s);
            ps->p--;
            return fail(ps, "invalid escape"), false;
        }
    }
    s[n] = '\0';
    *out = s;
    *out_len = n;
    return true;
}

static bool is_digit(parser *ps) { return ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9'; }

static tasker_json *parse_number(parser *ps) {
    const char *begin = ps->p;
    bool negative = false, integer = true, overflow = false;
    uint64_t mag = 0;
    if (*ps->p == '-') {
        negative = true;
        ps->p++;
    }
    if (!is_digit(ps)) return fail(ps, ps->p >= ps->end ? "EOF while parsing a value" : "invalid number");
    if (*ps->p == '0') {
        ps->p++;
        if (is_digit(ps)) return fail(ps, "invalid number");
    } else {
        while (is_digit(ps)) {
            unsigned d = (unsigned)(*ps->p++ - '0');
            if (mag > (UINT64_MAX - d) / 10) overflow = true;
            else mag = mag * 10 + d;
        }
    }
    if (ps->p < ps->end && *ps->p == '.') {
        integer = false;
        ps->p++;
        if (!is_digit(ps)) return fail(ps, ps->p >= ps->end ? "EOF while parsing a value" : "invalid number");
        while (is_digit(ps)) ps->p++;
    }
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        integer = false;
        ps->p++;
        if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-')) ps->p++;
        if (!is_digit(ps)) return fail(ps, ps->p >= ps->end ? "EOF while parsing a value" : "invalid number");
        while (is_digit(ps)) ps->p++;
    }
    tasker_json *v = node(TASKER_JSON_NUMBER);
    v->len = (size_t)(ps->p - begin);
    v->text = xrealloc(NULL, v->len + 1);
    memcpy(v->text, begin, v->len);
    v->text[v->len] = '\0';
    v->f64 = strtod(v->text, NULL);
    if (isinf(v->f64)) { /* as serde_json: no infinities */
        tasker_json_free(v);
        ps->p = begin;
        return fail(ps, "number out of range");
    }
    if (integer && !overflow) {
        if (!negative) {
            v->num = NUM_U64;
            v->u64 = mag;
            if (mag <= (uint64_t)INT64_MAX) {
                v->num |= NUM_I64;
                v->i64 = (int64_t)mag;
            }
        } else if (mag >= 1 && mag <= (uint64_t)INT64_MAX + 1) {
            /* serde_json: "-0" is the float -0.0, not an integer. */
            v->num = NUM_I64;
            v->i64 = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
        }
    }
    return v;
}

static int member_cmp(const void *a, const void *b) {
    const member *x = a, *y = b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key, y->key, n);
    if (c) return c;
    if (x->key_len != y->key_len) return x->key_len < y->key_len ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

static bool same_key(const member *x, const member *y) {
    return x->key_len == y->key_len && memcmp(x->key, y->key, x->key_len) == 0;
}

static tasker_json *parse_array(parser *ps) {
    tasker_json *v = node(TASKER_JSON_ARRAY);
    size_t cap = 0;
    ps->p++; /* [ */
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ']') {
        ps->p++;
        return v;
    }
    for (;;) {
        tasker_json *item = parse_value(ps);
        if (!item) goto error;
        if (v->n == cap) {
            cap = cap ? cap * 2 : 4;
            v->items = xrealloc(v->items, cap * sizeof *v->items);
        }
        v->items[v->n++] = item;
        skip_ws(ps);
        if (ps->p >= ps->end) {
            fail(ps, "EOF while parsing a list");
            goto error;
        }
        if (*ps->p == ',') {
            ps->p++;
            skip_ws(ps);
            if (ps->p < ps->end && *ps->p == ']') {
                fail(ps, "trailing comma");
                goto error;
            }
            continue;
        }
        if (*ps->p == ']') {
            ps->p++;
            return v;
        }
        fail(ps, "expected `,` or `]`");
        goto error;
    }
error:
    tasker_json_free(v);
    return NULL;
}

static tasker_json *parse_object(parser *ps) {
    tasker_json *v = node(TASKER_JSON_OBJECT);
    size_t cap = 0;
    ps->p++; /* { */
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == '}') {
        ps->p++;
        return v;
    }
    for (;;) {
        if (ps->p >= ps->end) {
            fail(ps, "EOF while parsing an object");
            goto error;
        }
        if (*ps->p != '"') {
            fail(ps, "key must be a string");
            goto error;
        }
        ps->p++;
        member m = {0};
        if (!parse_string(ps, &m.key, &m.key_len)) goto error;
        skip_ws(ps);
        if (ps->p >= ps->end || *ps->p != ':') {
            free(m.key);
            fail(ps, ps->p >= ps->end ? "EOF while parsing an object" : "expected `:`");
            goto error;
        }
        ps->p++;
        m.value = parse_value(ps);
        if (!m.value) {
            free(m.key);
            goto error;
        }
        m.order = v->n;
        if (v->n == cap) {
            cap = cap ? cap * 2 : 4;
            v->members = xrealloc(v->members, cap * sizeof *v->members);
        }
        v->members[v->n++] = m;
        skip_ws(ps);
        if (ps->p >= ps->end) {
            fail(ps, "EOF while parsing an object");
            goto error;
        }
        if (*ps->p == ',') {
            ps->p++;
            skip_ws(ps);
            if (ps->p < ps->end && *ps->p == '}') {
                fail(ps, "trailing comma");
                goto error;
            }
            continue;
        }
        if (*ps->p == '}') {
            ps->p++;
            break;
        }
        fail(ps, "expected `,` or `}`");
        goto error;
    }
    /* Sorted by key, the last of equal keys kept: serde_json's map. */
    qsort(v->members, v->n, sizeof *v->members, member_cmp);
    size_t kept = 0;
    for (size_t i = 0; i < v->n; i++) {
        if (i + 1 < v->n && same_key(&v->members[i], &v->members[i + 1])) {
            free(v->members[i].key);
            tasker_json_free(v->members[i].value);
            continue;
        }
        v->members[kept++] = v->members[i];
    }
    v->n = kept;
    return v;
error:
    tasker_json_free(v);
    return NULL;
}

static tasker_json *parse_value(parser *ps) {
    skip_ws(ps);
    if (ps->p >= ps->end) return fail(ps, "EOF while parsing a value");
    tasker_json *v;
    switch (*ps->p) {
    case 'n':
        return literal(ps, "null") ? node(TASKER_JSON_NULL) : NULL;
    case 't':
        if (!literal(ps, "true")) return NULL;
        v = node(TASKER_JSON_BOOL);
        v->boolean = true;
        return v;
    case 'f':
        return literal(ps, "false") ? node(TASKER_JSON_BOOL) : NULL;
    case '"': {
        ps->p++;
        char *s;
        size_t n;
        if (!parse_string(ps, &s, &n)) return NULL;
        v = node(TASKER_JSON_STRING);
        v->text = s;
        v->len = n;
        return v;
    }
    case '[':
    case '{':
        if (++ps->depth > MAX_DEPTH) return fail(ps, "recursion limit exceeded");
        v = *ps->p == '[' ? parse_array(ps) : parse_object(ps);
        ps->depth--;
        return v;
    default:
        if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9')) return parse_number(ps);
        return fail(ps, "expected value");
    }
}

tasker_json *tasker_json_parse(const char *text, size_t len, char *err, size_t err_size) {
    parser ps = {text, text, text + len, err, err_size, 0};
    tasker_json *v = parse_value(&ps);
    if (!v) return NULL;
    skip_ws(&ps);
    if (ps.p < ps.end) {
        tasker_json_free(v);
        return fail(&ps, "trailing characters");
    }
    return v;
}

void tasker_json_free(tasker_json *v) {
    if (!v) return;
    for (size_t i = 0; v->type == TASKER_JSON_ARRAY && i < v->n; i++) tasker_json_free(v->items[i]);
    for (size_t i = 0; v->type == TASKER_JSON_OBJECT && i < v->n; i++) {
        free(v->members[i].key);
        tasker_json_free(v->members[i].value);
    }
    free(v->items);
    free(v->members);
    free(v->text);
    free(v);
}

tasker_json_type tasker_json_type_of(const tasker_json *v) { return v ? v->type : TASKER_JSON_NULL; }

const tasker_json *tasker_json_get(const tasker_json *v, const char *key) {
    if (!v || v->type != TASKER_JSON_OBJECT || !key) return NULL;
    member probe = {(char *)key, strlen(key), NULL, 0};
    size_t lo = 0, hi = v->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        size_t n = probe.key_len < v->members[mid].key_len ? probe.key_len : v->members[mid].key_len;
        int c = memcmp(probe.key, v->members[mid].key, n);
        if (!c && probe.key_len != v->members[mid].key_len) c = probe.key_len < v->members[mid].key_len ? -1 : 1;
        if (!c) return v->members[mid].value;
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

size_t tasker_json_size(const tasker_json *v) {
    return v && (v->type == TASKER_JSON_ARRAY || v->type == TASKER_JSON_OBJECT) ? v->n : 0;
}

const tasker_json *tasker_json_at(const tasker_json *v, size_t i) {
    if (!v || i >= tasker_json_size(v)) return NULL;
    return v->type == TASKER_JSON_ARRAY ? v->items[i] : v->members[i].value;
}

const char *tasker_json_key_at(const tasker_json *v, size_t i, size_t *len) {
    if (!v || v->type != TASKER_JSON_OBJECT || i >= v->n) return NULL;
    if (len) *len = v->members[i].key_len;
    return v->members[i].key;
}

bool tasker_json_int64(const tasker_json *v, int64_t *out) {
    if (!v || v->type != TASKER_JSON_NUMBER || !(v->num & NUM_I64)) return false;
    if (out) *out = v->i64;
    return true;
}

bool tasker_json_uint64(const tasker_json *v, uint64_t *out) {
    if (!v || v->type != TASKER_JSON_NUMBER || !(v->num & NUM_U64)) return false;
    if (out) *out = v->u64;
    return true;
}

bool tasker_json_double(const tasker_json *v, double *out) {
    if (!v || v->type != TASKER_JSON_NUMBER) return false;
    if (out) *out = v->f64;
    return true;
}

bool tasker_json_bool(const tasker_json *v, bool *out) {
    if (!v || v->type != TASKER_JSON_BOOL) return false;
    if (out) *out = v->boolean;
    return true;
}

const char *tasker_json_string(const tasker_json *v, size_t *len) {
    if (!v || v->type != TASKER_JSON_STRING) return NULL;
    if (len) *len = v->len;
    return v->text;
}

/* ------------------------------------------------------------------ writing */

static void reserve(tasker_buf *b, size_t more) {
    if (b->len + more + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + more + 1) {
        if (cap > SIZE_MAX / 2) abort();
        cap *= 2;
    }
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
}

void tasker_buf_append(tasker_buf *b, const char *s, size_t n) {
    reserve(b, n);
    if (n) memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void tasker_buf_puts(tasker_buf *b, const char *s) { tasker_buf_append(b, s, strlen(s)); }

void tasker_buf_vprintf(tasker_buf *b, const char *fmt, va_list ap) {
    va_list copy;
    va_copy(copy, ap);
    int n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    if (n < 0) abort();
    reserve(b, (size_t)n);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

void tasker_buf_printf(tasker_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    tasker_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

void tasker_buf_json_string(tasker_buf *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    reserve(b, n + 2);
    tasker_buf_append(b, "\"", 1);
    size_t run = 0; /* bytes copied as they are */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char u[6];
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default:
            if (c >= 0x20) continue;
        }
        tasker_buf_append(b, s + run, i - run);
        if (esc) {
            tasker_buf_append(b, esc, 2);
        } else {
            memcpy(u, "\\u00", 4);
            u[4] = hex[c >> 4];
            u[5] = hex[c & 15];
            tasker_buf_append(b, u, 6);
        }
        run = i + 1;
    }
    tasker_buf_append(b, s + run, n - run);
    tasker_buf_append(b, "\"", 1);
}

void tasker_buf_json(tasker_buf *b, const tasker_json *v) {
    switch (tasker_json_type_of(v)) {
    case TASKER_JSON_NULL: tasker_buf_puts(b, "null"); break;
    case TASKER_JSON_BOOL: tasker_buf_puts(b, v->boolean ? "true" : "false"); break;
    case TASKER_JSON_NUMBER: tasker_buf_append(b, v->text, v->len); break;
    case TASKER_JSON_STRING: tasker_buf_json_string(b, v->text, v->len); break;
    case TASKER_JSON_ARRAY:
        tasker_buf_append(b, "[", 1);
        for (size_t i = 0; i < v->n; i++) {
            if (i) tasker_buf_append(b, ",", 1);
            tasker_buf_json(b, v->items[i]);
        }
        tasker_buf_append(b, "]", 1);
        break;
    case TASKER_JSON_OBJECT:
        tasker_buf_append(b, "{", 1);
        for (size_t i = 0; i < v->n; i++) {
            if (i) tasker_buf_append(b, ",", 1);
            tasker_buf_json_string(b, v->members[i].key, v->members[i].key_len);
            tasker_buf_append(b, ":", 1);
            tasker_buf_json(b, v->members[i].value);
        }
        tasker_buf_append(b, "}", 1);
        break;
    }
}

void tasker_buf_free(tasker_buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
