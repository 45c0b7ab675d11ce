/* buf.h -- growable byte buffer with a hard cap and a reserve/commit/consume API. */
#ifndef BERTH_BUF_H
#define BERTH_BUF_H

#include <stdbool.h>
#include <stddef.h>

/* A buffer holds the bytes [data+off, data+off+len). Storage is allocated on
 * first reserve and can be released with buf_release() when empty, so an idle
 * connection holds no buffer memory. A buffer may also borrow scratch memory
 * for the length of one event callback (buf_borrow/buf_unborrow): bytes left
 * over are then copied into storage of its own, so the common case of data
 * consumed within the callback costs no allocation.
 * Invariant: off + len <= size, and size <= cap unless borrowed. */
struct buf {
    char *data;
    size_t off, len, size, cap;
    bool borrowed;
};

/* Initialises an empty buffer that never grows beyond <cap> bytes. */
void buf_init(struct buf *b, size_t cap);
/* Returns a pointer to at least <want> writable bytes after the content, or
 * NULL when that would exceed the cap (or memory is exhausted). Compacts first. */
char *buf_reserve(struct buf *b, size_t want);
/* Marks <n> bytes written after a successful buf_reserve. */
void buf_commit(struct buf *b, size_t n);
/* Drops <n> bytes from the front. */
void buf_consume(struct buf *b, size_t n);
/* Appends <n> bytes; returns 0, or -1 when the cap would be exceeded. */
int buf_append(struct buf *b, const void *p, size_t n);
/* Appends a printf-formatted string; returns 0 or -1. */
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Makes an empty, storage-less buffer use <mem> of <size> bytes (not owned). */
void buf_borrow(struct buf *b, char *mem, size_t size);
/* Ends a borrow: remaining bytes move to owned storage of exactly their size. */
void buf_unborrow(struct buf *b);
/* Frees storage if the buffer is empty (keeps the cap). */
void buf_release(struct buf *b);
/* Frees storage unconditionally. */
void buf_free(struct buf *b);

/* Appends a string literal (its length computed by the compiler). */
#define BUF_LIT(b, lit) buf_append((b), (lit), sizeof(lit) - 1)

static inline char *buf_head(const struct buf *b)
{
    return b->data + b->off;
}

#endif
