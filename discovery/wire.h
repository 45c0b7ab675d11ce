/* wire.h -- the DNS wire codec shared by the answer policy (answer.c) and the codec (wire.c): a
 * message writer with name compression and records that roll back when they do not fit. */
#ifndef BERTH_DNS_WIRE_H
#define BERTH_DNS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dns.h"

#define COMP_MAX 64

struct dns_writer {
    unsigned char *buf;
    size_t len, max;
    bool full;
    struct {
        char name[DNS_MAX_NAME + 1]; /* lowercased dotted suffix */
        uint16_t off;
    } comp[COMP_MAX];
    int ncomp;
};

static inline void dns_put(struct dns_writer *w, const void *p, size_t n)
{
    if (w->full || w->len + n > w->max) {
        w->full = true;
        return;
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

static inline void dns_put16(struct dns_writer *w, unsigned v)
{
    unsigned char b[2] = {(unsigned char)(v >> 8), (unsigned char)v};
    dns_put(w, b, 2);
}

static inline void dns_put32(struct dns_writer *w, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8), (unsigned char)v};
    dns_put(w, b, 4);
}

/* Writes dotted <name> (no trailing dot; "" is the root), compressed when <compress>; its suffixes
 * are remembered either way, so later names may point into it. */
void dns_put_name(struct dns_writer *w, const char *name, bool compress);

/* A resource record in progress: where to roll back to if it does not fit. */
struct dns_mark {
    size_t len;
    int ncomp;
};

struct dns_mark dns_rr_begin(struct dns_writer *w, const char *owner, unsigned type, unsigned ttl);
/* Writes the rdata length for a record begun at rdlen_at-2; false (rolled back) on overflow. */
bool dns_rr_end(struct dns_writer *w, struct dns_mark m, size_t rdlen_at);
/* One whole record: owner, type, class IN, TTL, then <body> writes the rdata. True when it fit. */
#define DNS_RR(w, owner, type, ttl, body)                                                                             \
    ({                                                                                                            \
        struct dns_mark m_ = dns_rr_begin((w), (owner), (type), (ttl));                                                   \
        size_t at_ = (w)->len;                                                                                    \
        dns_put16((w), 0);                                                                                            \
        body;                                                                                                     \
        dns_rr_end((w), m_, at_);                                                                                     \
    })

void dns_put_header(struct dns_writer *w, const struct dns_query *q, int rcode, bool aa, bool ra);
/* Sets count <which> (0 question, 1 answer, 2 authority, 3 additional). */
void dns_set_count(struct dns_writer *w, int which, unsigned n);
/* Echoes the question with the query's own case, and remembers its suffixes for compression. */
void dns_put_question(struct dns_writer *w, const struct dns_query *q);
void dns_put_opt(struct dns_writer *w, const struct dns_query *q, int rcode);

#endif
