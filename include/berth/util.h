/* util.h -- small helpers: time, random ids, string matching. */
#ifndef BERTH_UTIL_H
#define BERTH_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Monotonic time in seconds. */
double util_now(void);
/* Wall clock in seconds since the epoch. */
double util_wall(void);
/* Formats wall time <t> as RFC 3339 UTC with milliseconds into <dst> (>= 32 bytes). */
void util_rfc3339(double t, char *dst, size_t size);
/* Fast non-cryptographic random numbers (xorshift, seeded from getrandom). */
uint64_t util_rand64(void);
/* Writes 32 lowercase hex characters and a NUL into <dst> (>= 33 bytes). */
void util_random_id(char *dst);
/* Case-insensitive glob match of <s>[0..len) against <pat> with '*' and '?'. */
bool util_glob_match(const char *pat, const char *s, size_t len, bool icase);
/* True for a DNS label of 1..63 letters, digits, '-' or '_'. */
bool util_dns_label(const char *s);
/* Writes <s> into <dst> as a Prometheus label value (text format 0.0.4: backslash, double quote
 * and newline escaped), cut short only between whole characters; returns <dst>. */
const char *util_prom_escape(const char *s, char *dst, size_t size);
/* Writes <s> into <dst> with control characters, backslash and DEL escaped (\n, \t, \xHH), so
 * a value from outside stays on one log line; returns <dst>. */
const char *util_log_escape(const char *s, char *dst, size_t size);
/* The value of hex digit <c> (either case), or -1. */
static inline int util_hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}
/* Writes <len> bytes of <data> to <path> readable by the owner only (mode 0600), through a
 * temporary file, fsync and rename, so a crash leaves the old file or the new one. Returns 0 or -1
 * with errno. */
int util_write_private(const char *path, const void *data, size_t len);
/* Raises the soft open-files limit to the hard one (once) and returns it. */
long util_nofile_limit(void);
/* Removes <path> and everything under it (symlinks are not followed); 0, or -1 with errno. */
int util_rm_rf(const char *path);
/* Percent-encodes <s> for a URL query or path segment (all but RFC 3986 unreserved characters) into
 * <dst>; cut short when <dst> is too small. Returns dst. */
const char *util_url_escape(const char *s, char *dst, size_t size);
/* Case-insensitive compare of <a>[0..alen) with NUL-terminated <b>. */
bool util_ieq(const char *a, size_t alen, const char *b);

#endif
