/* alloc.h -- allocation that never returns NULL: on out-of-memory the process logs and aborts, as
 * nginx's and h2o's allocators do. A server that cannot get a few hundred bytes cannot make progress
 * safely anyway; one place deciding that beats a NULL check (or the lack of one) at every call. */
#ifndef BERTH_ALLOC_H
#define BERTH_ALLOC_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

#endif
