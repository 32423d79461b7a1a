/*
 * A misbehaving C handler for the sandbox tests; config.mode picks how. The
 * modes of the Rust one (examples/wasm/rust/hostile):
 *   loop        never returns
 *   alloc       mallocs and touches 1 GiB
 *   panic       abort(): a trap
 *   big_result  a 100 MB result
 *   print       writes 1 MB to stdout (and a line to stderr) and succeeds
 *   fail        a retryable error asking for a retry after 1500 ms
 * and what C adds:
 *   oob         stores far outside linear memory (a trap)
 *   stack       unbounded recursion (a trap)
 *   exit        exit(3) mid-call
 * anything else succeeds with {"ok": true, "attempt": N}.
 *
 * Build: sdk-wit/c/build.sh -o hostile_c.wasm examples/wasm/c/hostile.c
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tasker_guest.h"

static int mode_is(const tasker_context *ctx, const char *mode) {
    const char *m = tasker_json_string(tasker_json_get(ctx->config, "mode"), NULL);
    return m && strcmp(m, mode) == 0;
}

/* Not inlined and with a frame to fill, so each call takes stack. */
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Winfinite-recursion"
__attribute__((noinline)) static uint64_t recurse(volatile uint64_t depth) {
    volatile char frame[256];
    frame[depth % sizeof frame] = (char)depth;
    return recurse(depth + 1) + frame[0];
}
#pragma clang diagnostic pop

tasker_result tasker_handle(const tasker_context *ctx) {
    if (mode_is(ctx, "loop")) {
        volatile uint64_t i = 0;
        for (;;) i++;
    }
    if (mode_is(ctx, "alloc")) {
        size_t size = (size_t)1 << 30;
        /* Through a volatile pointer: clang may drop an unused malloc. */
        char *volatile p = malloc(size);
        if (!p) return tasker_permanent("malloc(1 GiB) failed"); /* not reached: growth traps */
        memset(p, 1, size);
        return tasker_ok_fmt("%zu", size + (size_t)p[size - 1] - 1);
    }
    if (mode_is(ctx, "panic")) {
        fprintf(stderr, "hostile guest aborts on purpose\n");
        abort();
    }
    if (mode_is(ctx, "big_result")) {
        size_t n = (size_t)100 << 20;
        char *json = malloc(n + 2);
        if (!json) abort();
        json[0] = '"';
        memset(json + 1, 'x', n);
        json[n + 1] = '"';
        return tasker_ok_take(json, n + 2);
    }
    if (mode_is(ctx, "print")) {
        char line[1024];
        memset(line, 'y', 1023);
        line[1023] = '\0';
        for (int i = 0; i < 1024; i++) puts(line);
        fflush(stdout);
        fprintf(stderr, "done printing\n");
        return tasker_ok("\"printed\"");
    }
    if (mode_is(ctx, "fail")) return tasker_retry_after(tasker_retryable("asked to fail"), 1500);
    if (mode_is(ctx, "oob")) {
        *(volatile uint32_t *)(uintptr_t)0xFFFFFFF0u = 1;
        return tasker_ok("\"unreachable\"");
    }
    if (mode_is(ctx, "stack")) return tasker_ok_fmt("%llu", (unsigned long long)recurse(0));
    if (mode_is(ctx, "exit")) exit(3);
    return tasker_ok_fmt("{\"ok\":true,\"attempt\":%" PRIu32 "}", ctx->attempt);
}
