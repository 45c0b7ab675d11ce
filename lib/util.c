/* util.c -- time, random ids and glob matching. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "berth/util.h"

double util_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double util_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void util_rfc3339(double t, char *dst, size_t size)
{
    time_t secs = (time_t)t;
    struct tm tm;
    gmtime_r(&secs, &tm);
    int ms = (int)((t - (double)secs) * 1000);
    snprintf(dst, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

static __thread uint64_t rng_state;

uint64_t util_rand64(void)
{
    if (rng_state == 0) {
        if (getrandom(&rng_state, sizeof rng_state, 0) != sizeof rng_state || rng_state == 0)
            rng_state = (uint64_t)time(NULL) * 2654435761u + 1;
    }
    /* xorshift64* */
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

void util_random_id(char *dst)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 2; i++) {
        uint64_t r = util_rand64();
        for (int k = 0; k < 16; k++, r >>= 4)
            dst[i * 16 + k] = hex[r & 15];
    }
    dst[32] = 0;
}

static inline int fold(int c, bool icase)
{
    return (icase && c >= 'A' && c <= 'Z') ? c + 32 : c;
}

bool util_glob_match(const char *pat, const char *s, size_t len, bool icase)
{
    /* Iterative matcher with single-star backtracking: linear for one '*'. */
    size_t si = 0, star_s = 0;
    const char *star_p = NULL;
    while (si < len) {
        if (*pat == '*') {
            star_p = ++pat;
            star_s = si;
        } else if (*pat && (*pat == '?' || fold((unsigned char)*pat, icase) == fold((unsigned char)s[si], icase))) {
            pat++;
            si++;
        } else if (star_p) {
            pat = star_p;
            si = ++star_s;
        } else {
            return false;
        }
    }
    while (*pat == '*')
        pat++;
    return *pat == 0;
}

bool util_dns_label(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return false;
    }
    return true;
}

bool util_ieq(const char *a, size_t alen, const char *b)
{
    if (strlen(b) != alen)
        return false;
    for (size_t i = 0; i < alen; i++)
        if (fold((unsigned char)a[i], true) != fold((unsigned char)b[i], true))
            return false;
    return true;
}

long util_nofile_limit(void)
{
    static long lim;
    if (lim)
        return lim;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return lim = 1024;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    return lim = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (1L << 30) ? (1L << 30) : (long)rl.rlim_cur;
}

const char *util_prom_escape(const char *s, char *dst, size_t size)
{
    size_t o = 0;
    for (; *s && o + 3 <= size; s++) {
        if (*s == '\\' || *s == '"' || *s == '\n') {
            dst[o++] = '\\';
            dst[o++] = *s == '\n' ? 'n' : *s;
        } else {
            dst[o++] = *s;
        }
    }
    dst[o] = 0;
    return dst;
}

const char *util_log_escape(const char *s, char *dst, size_t size)
{
    size_t o = 0;
    for (; *s && o + 5 <= size; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '\n' || c == '\r' || c == '\t' || c == '\\') {
            dst[o++] = '\\';
            dst[o++] = c == '\n' ? 'n' : c == '\r' ? 'r' : c == '\t' ? 't' : '\\';
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(dst + o, size - o, "\\x%02x", c);
        } else {
            dst[o++] = (char)c;
        }
    }
    dst[o] = 0;
    return dst;
}

int util_write_private(const char *path, const void *data, size_t len)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    /* fchmod too: an old temporary file keeps its mode through O_CREAT. */
    if (fchmod(fd, 0600) < 0 || write(fd, data, len) != (ssize_t)len || fsync(fd) < 0) {
        close(fd);
        return -1;
    }
    return close(fd) < 0 || rename(tmp, path) < 0 ? -1 : 0;
}

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

int util_rm_rf(const char *path)
{
    return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0 && errno != ENOENT ? -1 : 0;
}

const char *util_url_escape(const char *s, char *dst, size_t size)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t w = 0;
    for (; *s && w + 4 <= size; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("-._~", c)) {
            dst[w++] = (char)c;
        } else {
            dst[w++] = '%';
            dst[w++] = hex[c >> 4];
            dst[w++] = hex[c & 15];
        }
    }
    if (size)
        dst[w < size ? w : size - 1] = 0;
    return dst;
}
