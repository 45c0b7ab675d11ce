/* buf.c -- capped byte buffers. */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/alloc.h"
#include "berth/buf.h"

#define BUF_MIN 4096

static void buf_check(const struct buf *b)
{
    assert(b->off + b->len <= b->size);
    assert(b->size <= b->cap || b->size == 0 || b->borrowed);
    assert(b->data != NULL || b->size == 0);
}

void buf_borrow(struct buf *b, char *mem, size_t size)
{
    assert(b->data == NULL && b->len == 0);
    b->data = mem;
    b->size = size < b->cap ? size : b->cap;
    b->off = 0;
    b->borrowed = true;
}

void buf_unborrow(struct buf *b)
{
    if (!b->borrowed)
        return;
    char *old = b->data + b->off;
    b->borrowed = false;
    b->data = NULL;
    b->size = b->off = 0;
    if (b->len) {
        size_t n = b->len;
        b->data = xmalloc(n);
        memcpy(b->data, old, n);
        b->size = n;
    }
}

void buf_init(struct buf *b, size_t cap)
{
    memset(b, 0, sizeof *b);
    b->cap = cap;
}

char *buf_reserve(struct buf *b, size_t want)
{
    buf_check(b);
    if (b->len + want > b->cap)
        return NULL;
    if (b->off + b->len + want <= b->size)
        return b->data + b->off + b->len;
    if (b->len + want <= b->size) {
        /* Enough room after compaction. */
        memmove(b->data, b->data + b->off, b->len);
        b->off = 0;
        return b->data + b->len;
    }
    size_t n = b->size ? b->size : BUF_MIN;
    while (n < b->len + want)
        n *= 2;
    if (n > b->cap)
        n = b->cap;
    char *d = xmalloc(n);
    if (b->len)
        memcpy(d, b->data + b->off, b->len);
    if (!b->borrowed)
        free(b->data);
    b->borrowed = false;
    b->data = d;
    b->size = n;
    b->off = 0;
    return b->data + b->len;
}

void buf_commit(struct buf *b, size_t n)
{
    assert(b->off + b->len + n <= b->size);
    b->len += n;
}

void buf_consume(struct buf *b, size_t n)
{
    assert(n <= b->len);
    b->len -= n;
    b->off = b->len ? b->off + n : 0;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    char *d = buf_reserve(b, n);
    if (!d)
        return -1;
    memcpy(d, p, n);
    b->len += n;
    return 0;
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    char *d = buf_reserve(b, (size_t)n + 1);
    if (!d)
        return -1;
    va_start(ap, fmt);
    vsnprintf(d, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void buf_release(struct buf *b)
{
    if (b->len == 0)
        buf_free(b);
}

void buf_free(struct buf *b)
{
    if (!b->borrowed)
        free(b->data);
    b->borrowed = false;
    b->data = NULL;
    b->off = b->len = b->size = 0;
}
