/* harness.h: a minimal test harness for the C tests (plain C programs). */
#ifndef TASKER_TEST_HARNESS_H
#define TASKER_TEST_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tasker.h>

static int failures = 0;

/* Checks a condition; on failure prints it with the library's last error. */
#define CHECK(cond)                                                                            \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "%s:%d: CHECK failed: %s (last error: %s)\n", __FILE__, __LINE__, \
                    #cond, tasker_last_error());                                               \
            failures++;                                                                        \
        }                                                                                      \
    } while (0)

/* Checks that a call returns `expected` status. */
#define CHECK_STATUS(call, expected)                                                                  \
    do {                                                                                              \
        TaskerStatus got_ = (call);                                                                   \
        if (got_ != (expected)) {                                                                     \
            fprintf(stderr, "%s:%d: %s returned %s, expected %s (last error: %s)\n", __FILE__, __LINE__, \
                    #call, tasker_status_name(got_), tasker_status_name(expected), tasker_last_error()); \
            failures++;                                                                               \
        }                                                                                             \
    } while (0)

#define CHECK_OK(call) CHECK_STATUS(call, TASKER_OK)

/* The test database: TASKER_TEST_DATABASE_URL (the runner creates a fresh one
 * per test program). */
static const char *test_database_url(void) {
    const char *url = getenv("TASKER_TEST_DATABASE_URL");
    if (url == NULL || *url == '\0') {
        fprintf(stderr, "TASKER_TEST_DATABASE_URL is not set (run the tests with bindings-c/run-tests.sh)\n");
        exit(2);
    }
    return url;
}

static int finish(const char *name) {
    if (failures) {
        fprintf(stderr, "%s: %d check(s) failed\n", name, failures);
        return 1;
    }
    printf("%s: ok\n", name);
    return 0;
}

#endif
