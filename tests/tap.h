/* tap.h -- a tiny Test Anything Protocol producer for berth's C unit tests. */
#ifndef BERTH_TAP_H
#define BERTH_TAP_H

#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

static int tap_count, tap_failures;

/* Records one test point; prints "ok N - name" or "not ok N - name" with the location. */
static inline int tap_ok(int cond, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static inline int tap_ok(int cond, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    printf("%s %d - ", cond ? "ok" : "not ok", ++tap_count);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    if (!cond) {
        tap_failures++;
        printf("#   failed at %s:%d\n", file, line);
    }
    return cond;
}

#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

#define is_int(got, want, ...)                                                                                    \
    do {                                                                                                          \
        long long g_ = (long long)(got), w_ = (long long)(want);                                                 \
        if (!ok(g_ == w_, __VA_ARGS__))                                                                           \
            printf("#   got: %lld\n#  want: %lld\n", g_, w_);                                                     \
    } while (0)

#define is_str(got, want, ...)                                                                                    \
    do {                                                                                                          \
        const char *g_ = (got), *w_ = (want);                                                                     \
        if (!ok(g_ && w_ && strcmp(g_, w_) == 0, __VA_ARGS__))                                                    \
            printf("#   got: \"%s\"\n#  want: \"%s\"\n", g_ ? g_ : "(null)", w_ ? w_ : "(null)");              \
    } while (0)

/* Prints the plan; returns the process exit status. */
static inline int done_testing(void)
{
    printf("1..%d\n", tap_count);
    return tap_failures ? 1 : 0;
}

/* Removes the scratch directory <dir> a test made (with mkdtemp), and all in it. */
static inline void tap_rm_rf(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", dir);
}

#endif
