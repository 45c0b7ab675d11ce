/* tasklog.c -- task log files: the tail of one, and cutting one back (see tasklog.h). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "berth/alloc.h"
#include "berth/log.h"
#include "tasklog.h"

int tasklog_tail(const char *path, struct buf *out, size_t max)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, size > (long)max ? size - (long)max : 0, SEEK_SET);
    char *d = buf_reserve(out, max);
    buf_commit(out, d ? fread(d, 1, max, f) : 0);
    fclose(f);
    return 0;
}

long long tasklog_read(const char *path, long long from, struct buf *out, size_t max, bool *reset)
{
    FILE *f = fopen(path, "r");
    *reset = false;
    if (!f)
        return from > 0 ? from : 0;
    fseek(f, 0, SEEK_END);
    long long size = ftell(f);
    if (from < 0) {
        from = size > (long long)max ? size - (long long)max : 0;
    } else if (from > size) { /* the file was cut back (tasklog_cap): what it kept, from its start */
        from = 0;
        *reset = true;
    }
    fseek(f, (long)from, SEEK_SET);
    char *d = buf_reserve(out, max);
    size_t n = d ? fread(d, 1, max, f) : 0;
    buf_commit(out, n);
    fclose(f);
    return from + (long long)n;
}

void tasklog_cap(const char *path, size_t max, size_t keep_max)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return;
    if (fstat(fd, &st) == 0 && st.st_size > (off_t)max) {
        char *tail = xmalloc(keep_max);
        ssize_t n = pread(fd, tail, keep_max, st.st_size - (off_t)keep_max);
        char *from = n > 0 ? memchr(tail, '\n', (size_t)n) : NULL;
        from = from ? from + 1 : tail;
        size_t keep = n > 0 ? (size_t)(n - (from - tail)) : 0;
        char head[96];
        int hl = snprintf(head, sizeof head, "[berth: %lld bytes of earlier output dropped]\n",
                          (long long)st.st_size - (long long)keep);
        if (pwrite(fd, head, (size_t)hl, 0) == hl && pwrite(fd, from, keep, hl) == (ssize_t)keep &&
            ftruncate(fd, hl + (off_t)keep) == 0)
            log_info("task log %s: cut back to its last %zu bytes", path, keep);
        free(tail);
    }
    close(fd);
}
