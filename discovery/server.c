/* server.c -- berth-dns transport: UDP (batched with recvmmsg/sendmmsg), TCP (RFC 7766), recursion via c-ares. */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "berth/alloc.h"
#include "berth/buf.h"
#include "berth/config.h"
#include "berth/log.h"
#include "berth/lookup.h"
#include "dns.h"

#define UDP_BATCH 64
#define TCP_MAX_MSG 65535
#define TCP_OUT_HIGH (256u * 1024)

const char *const dns_stat_type_names[DNS_STAT_TYPES] = {"A", "AAAA", "SRV", "TXT", "SOA", "NS", "ANY", "PTR", "OTHER"};
const char *const dns_stat_rcode_names[DNS_STAT_RCODES] = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP",
                                                           "REFUSED", "BADVERS", "NOTAUTH",  "OTHER"};

static int type_index(uint16_t t)
{
    switch (t) {
    case DNS_T_A: return 0;
    case DNS_T_AAAA: return 1;
    case DNS_T_SRV: return 2;
    case DNS_T_TXT: return 3;
    case DNS_T_SOA: return 4;
    case DNS_T_NS: return 5;
    case DNS_T_ANY: return 6;
    case 12: return 7;
    default: return 8;
    }
}

static void count_rcode(struct dns_server *s, const unsigned char *ans, size_t len, bool badvers)
{
    if (len < 4)
        return;
    int rc = ans[3] & 0xf;
    s->by_rcode[badvers ? 6 : rc <= 5 ? rc : rc == DNS_R_NOTAUTH ? 7 : 8]++;
    if (ans[2] & 0x02)
        s->truncated++;
}

static bool recursion_allowed(const struct dns_server *s, const struct sockaddr *peer)
{
    if (!s->recursor || !peer)
        return false;
    for (size_t i = 0; i < s->conf->nallow; i++)
        if (net_cidr_match(&s->conf->allow[i], peer))
            return true;
    return false;
}

/* ---- forwarding ---- */

struct fwd {
    struct dns_server *s;
    struct dns_query q;
    size_t limit;
    void (*later)(void *ctx, const unsigned char *, size_t);
    unsigned char ctx[DNS_LATER_CTX];
};

static void forwarded(const unsigned char *abuf, size_t alen, const char *err, void *arg)
{
    struct fwd *f = arg;
    unsigned char out[TCP_MAX_MSG];
    size_t n;
    if (!abuf || alen < 12) {
        log_debug("recursion for %s failed: %s", f->q.qname, err ? err : "short answer");
        n = dns_error(&f->q, NULL, 0, DNS_R_SERVFAIL, out, sizeof out);
    } else if (alen > f->limit) {
        /* Too large for this UDP client: header and question with TC (and OPT when the query had
         * one, RFC 6891 §7); it retries over TCP. */
        n = dns_error(&f->q, abuf, alen, abuf[3] & 0xf, out, sizeof out);
        out[2] |= 0x02;
        out[3] |= abuf[3] & 0x80; /* RA */
    } else {
        memcpy(out, abuf, alen);
        n = alen;
    }
    out[0] = (unsigned char)(f->q.id >> 8); /* c-ares used its own ID upstream */
    out[1] = (unsigned char)f->q.id;
    count_rcode(f->s, out, n, false);
    f->later(f->ctx, out, n);
    free(f);
}

/* A reply of <n> bytes, counted by its rcode (0 bytes: it did not fit, so no reply). */
static enum dns_result reply(struct dns_server *s, const unsigned char *out, size_t n, bool badvers, size_t *out_len)
{
    *out_len = n;
    if (!n)
        return DNS_DROP;
    count_rcode(s, out, n, badvers);
    return DNS_REPLY;
}

enum dns_result dns_server_handle(struct dns_server *s, const unsigned char *raw, size_t len, const struct sockaddr *peer,
                                  bool tcp, unsigned char *out, size_t max, size_t *out_len,
                                  void (*later)(void *ctx, const unsigned char *, size_t), void *ctx)
{
    *out_len = 0;
    struct dns_query q;
    bool header_ok;
    int rc = dns_parse_query(raw, len, &q, &header_ok);
    if (rc < 0 || !header_ok) {
        s->dropped++;
        return DNS_DROP;
    }
    s->by_type[type_index(q.qtype)]++;
    q.advertise = (uint16_t)s->conf->udp_max_payload;
    /* Zone transfers are not offered (RFC 5936 §2.2.1: NOTAUTH, as Knot answers one it refuses);
     * over UDP a transfer request is malformed (RFC 5936 §4.2, RFC 1995 §2). */
    if (rc == DNS_R_NOERROR && (q.qtype == DNS_T_AXFR || q.qtype == DNS_T_IXFR))
        rc = tcp ? DNS_R_NOTAUTH : DNS_R_FORMERR;
    if (rc != DNS_R_NOERROR)
        return reply(s, out, dns_error(&q, raw, len, rc, out, max), rc == DNS_R_BADVERS, out_len);
    size_t udp_max = (size_t)s->conf->udp_max_payload;
    size_t limit = tcp ? TCP_MAX_MSG : q.edns ? (q.udp_size < udp_max ? q.udp_size : udp_max) : 512;
    if (limit > max)
        limit = max;
    bool ra = recursion_allowed(s, peer);
    bool refused;
    size_t n = dns_answer(s->zone, &q, ra, out, limit, &refused);
    if (refused) {
        if (ra && later) {
            struct fwd *f = xmalloc(sizeof *f);
            f->s = s;
            f->q = q;
            f->limit = limit;
            f->later = later;
            memcpy(f->ctx, ctx, sizeof f->ctx);
            s->forwarded++;
            lookup_forward(s->recursor, raw, len, forwarded, f);
            return DNS_DEFERRED;
        }
        n = dns_error(&q, raw, len, DNS_R_REFUSED, out, max);
    }
    return reply(s, out, n, false, out_len);
}

/* ---- response-rate limiting (UDP) ---- */

/* The bucket of <peer>'s prefix: IPv4 /24, IPv6 /56 (one site), as BIND's RRL. */
static struct dns_rrl_bucket *rrl_bucket(struct dns_server *s, const struct sockaddr *peer, double now)
{
    unsigned char key[8] = {0};
    if (peer->sa_family == AF_INET) {
        memcpy(key, &((const struct sockaddr_in *)peer)->sin_addr, 3);
        key[7] = 4;
    } else {
        memcpy(key, &((const struct sockaddr_in6 *)peer)->sin6_addr, 7);
        key[7] = 6;
    }
    uint64_t h = 1469598103934665603ULL;
    for (int i = 0; i < 8; i++)
        h = (h ^ key[i]) * 1099511628211ULL;
    struct dns_rrl_bucket *b = &s->rrl[h % DNS_RRL_BUCKETS];
    if (memcmp(b->key, key, sizeof key) != 0) {
        /* A collision takes the slot over with a full bucket: it errs towards answering. */
        memcpy(b->key, key, sizeof key);
        b->tokens = s->conf->rrl_rate;
        b->at = now;
        b->limited = 0;
    }
    return b;
}

/* Applies the response-rate limit to the answer <out>[0..len) for <peer>: returns <len> to send
 * it, 0 to drop it, or the length of a truncated stand-in (header, question, OPT; TC set) that
 * tells a real client behind a spoofed flood to come back over TCP ("slip"). */
static size_t rrl_apply(struct dns_server *s, const struct sockaddr *peer, unsigned char *out, size_t len)
{
    if (!s->rrl || len < 12)
        return len;
    for (size_t i = 0; i < s->conf->nrrl_exempt; i++)
        if (net_cidr_match(&s->conf->rrl_exempt[i], peer))
            return len;
    double now = ev_now(s->loop), rate = s->conf->rrl_rate;
    struct dns_rrl_bucket *b = rrl_bucket(s, peer, now);
    b->tokens += (now - b->at) * rate;
    if (b->tokens > rate)
        b->tokens = rate;
    b->at = now;
    if (b->tokens >= 1) {
        b->tokens -= 1;
        return len;
    }
    if (!s->conf->rrl_slip || ++b->limited % (unsigned)s->conf->rrl_slip) {
        s->rrl_dropped++;
        return 0;
    }
    /* Keep the header and the question (written uncompressed, so its labels can be walked). */
    size_t off = 12;
    if (out[5] == 1) {
        while (off < len && out[off])
            off += 1 + out[off];
        off += 5;
    }
    bool opt = len >= off + 11 && out[len - 11] == 0 && out[len - 10] == 0 && out[len - 9] == DNS_T_OPT;
    if (off > len)
        return 0;
    if (opt) {
        memmove(out + off, out + len - 11, 11);
        off += 11;
    }
    memset(out + 6, 0, 6);
    out[11] = opt;
    out[2] |= 0x02;
    s->rrl_slipped++;
    return off;
}

/* ---- UDP ---- */

struct udp_ctx {
    struct dns_server *s;
    struct sockaddr_storage peer;
    socklen_t peer_len;
};

_Static_assert(sizeof(struct udp_ctx) <= DNS_LATER_CTX, "udp_ctx must fit the later-reply context");

static void udp_later(void *ctx, const unsigned char *ans, size_t len)
{
    struct udp_ctx *u = ctx;
    sendto(u->s->udp_fd, ans, len, 0, (struct sockaddr *)&u->peer, u->peer_len);
}

static void udp_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct dns_server *s = w->data;
    static unsigned char in[UDP_BATCH][DNS_MAX_UDP], out[UDP_BATCH][DNS_MAX_UDP];
    static struct sockaddr_storage peers[UDP_BATCH];
    struct mmsghdr rmsg[UDP_BATCH], smsg[UDP_BATCH];
    struct iovec riov[UDP_BATCH], siov[UDP_BATCH];
    for (int round = 0; round < 8; round++) {
        for (int i = 0; i < UDP_BATCH; i++) {
            riov[i] = (struct iovec){in[i], sizeof in[i]};
            rmsg[i].msg_hdr = (struct msghdr){.msg_name = &peers[i], .msg_namelen = sizeof peers[i], .msg_iov = &riov[i],
                                              .msg_iovlen = 1};
        }
        int n = recvmmsg(s->udp_fd, rmsg, UDP_BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0)
            return;
        int k = 0;
        for (int i = 0; i < n; i++) {
            struct udp_ctx u = {s, peers[i], rmsg[i].msg_hdr.msg_namelen};
            unsigned char ctx[DNS_LATER_CTX];
            memcpy(ctx, &u, sizeof u);
            s->udp_queries++;
            size_t len;
            if (dns_server_handle(s, in[i], rmsg[i].msg_len, (struct sockaddr *)&peers[i], false, out[i], sizeof out[i],
                                  &len, udp_later, ctx) != DNS_REPLY)
                continue;
            len = rrl_apply(s, (struct sockaddr *)&peers[i], out[i], len);
            if (!len)
                continue;
            siov[k] = (struct iovec){out[i], len};
            smsg[k].msg_hdr = (struct msghdr){.msg_name = &peers[i], .msg_namelen = rmsg[i].msg_hdr.msg_namelen,
                                              .msg_iov = &siov[k], .msg_iovlen = 1};
            k++;
        }
        for (int sent = 0; sent < k;) {
            int r = sendmmsg(s->udp_fd, smsg + sent, (unsigned)(k - sent), 0);
            if (r <= 0)
                break;
            sent += r;
        }
        if (n < UDP_BATCH)
            return;
    }
}

/* ---- TCP (RFC 7766) ---- */

struct dns_tcp {
    struct dns_tcp *next, *prev;
    struct dns_server *s;
    uint64_t id;
    int fd;
    ev_io io;
    ev_timer timer;
    struct buf in, out;
    struct sockaddr_storage peer;
};

static uint64_t tcp_ids;

static void tcp_close(struct dns_tcp *c)
{
    struct dns_server *s = c->s;
    ev_io_stop(s->loop, &c->io);
    ev_timer_stop(s->loop, &c->timer);
    close(c->fd);
    buf_free(&c->in);
    buf_free(&c->out);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->tcp_conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c);
}

static int tcp_flush(struct dns_tcp *c)
{
    while (c->out.len) {
        ssize_t n = send(c->fd, buf_head(&c->out), c->out.len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                break;
            return -1;
        }
        buf_consume(&c->out, (size_t)n);
    }
    int ev = (c->out.len < TCP_OUT_HIGH ? EV_READ : 0) | (c->out.len ? EV_WRITE : 0);
    if ((c->io.events & (EV_READ | EV_WRITE)) != ev) {
        ev_io_stop(c->s->loop, &c->io);
        ev_io_set(&c->io, c->fd, ev);
        ev_io_start(c->s->loop, &c->io);
    }
    return 0;
}

static void tcp_queue(struct dns_tcp *c, const unsigned char *ans, size_t len)
{
    unsigned char pfx[2] = {(unsigned char)(len >> 8), (unsigned char)len};
    buf_append(&c->out, pfx, 2);
    buf_append(&c->out, ans, len);
}

struct tcp_ctx {
    struct dns_server *s;
    uint64_t id;
};

_Static_assert(sizeof(struct tcp_ctx) <= DNS_LATER_CTX, "tcp_ctx must fit the later-reply context");

static void tcp_later(void *ctx, const unsigned char *ans, size_t len)
{
    struct tcp_ctx *t = ctx;
    /* The connection may be gone by now: find it by id. */
    for (struct dns_tcp *c = t->s->tcp_conns; c; c = c->next)
        if (c->id == t->id) {
            tcp_queue(c, ans, len);
            if (tcp_flush(c) < 0)
                tcp_close(c);
            return;
        }
}

static void tcp_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct dns_tcp *c = w->data;
    struct dns_server *s = c->s;
    if (revents & EV_READ) {
        char *d = buf_reserve(&c->in, 16384);
        ssize_t n = d ? read(c->fd, d, 16384) : -1;
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            tcp_close(c);
            return;
        }
        if (n > 0) {
            buf_commit(&c->in, (size_t)n);
            ev_timer_again(loop, &c->timer);
        }
    }
    /* Every complete message, in order; several may arrive at once (pipelining).
     * A client that does not read its answers is not served more until it
     * does (backpressure): answer, flush, and go on while the socket takes it. */
    static unsigned char ans[TCP_MAX_MSG];
    for (;;) {
        while (c->in.len >= 2 && c->out.len < TCP_OUT_HIGH) {
            const unsigned char *p = (const unsigned char *)buf_head(&c->in);
            size_t mlen = (size_t)(p[0] << 8 | p[1]);
            if (c->in.len < 2 + mlen)
                break;
            struct tcp_ctx t = {s, c->id};
            unsigned char ctx[DNS_LATER_CTX] = {0};
            memcpy(ctx, &t, sizeof t);
            s->tcp_queries++;
            size_t alen;
            enum dns_result r = dns_server_handle(s, p + 2, mlen, (struct sockaddr *)&c->peer, true, ans, sizeof ans,
                                                  &alen, tcp_later, ctx);
            buf_consume(&c->in, 2 + mlen);
            if (r == DNS_REPLY)
                tcp_queue(c, ans, alen);
            else if (r == DNS_DROP && mlen < 12) {
                tcp_close(c); /* not DNS: hang up */
                return;
            }
        }
        if (tcp_flush(c) < 0) {
            tcp_close(c);
            return;
        }
        const unsigned char *p = (const unsigned char *)buf_head(&c->in);
        bool more = c->in.len >= 2 && c->in.len >= 2 + (size_t)(p[0] << 8 | p[1]);
        if (!more || c->out.len >= TCP_OUT_HIGH)
            return;
    }
}

static void tcp_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    tcp_close(w->data);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct dns_server *s = w->data;
    for (int i = 0; i < 32; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(s->tcp_fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        struct dns_tcp *c = xcalloc(1, sizeof *c);
        c->s = s;
        c->fd = fd;
        c->id = ++tcp_ids;
        c->peer = ss;
        buf_init(&c->in, TCP_MAX_MSG + 2 + 16384);
        buf_init(&c->out, 4u << 20);
        ev_io_init(&c->io, tcp_cb, fd, EV_READ);
        c->io.data = c;
        ev_init(&c->timer, tcp_timeout);
        c->timer.repeat = s->conf->tcp_idle_timeout_s;
        c->timer.data = c;
        ev_timer_again(loop, &c->timer);
        ev_io_start(loop, &c->io);
        c->next = s->tcp_conns;
        if (s->tcp_conns)
            s->tcp_conns->prev = c;
        s->tcp_conns = c;
    }
}

/* ---- life cycle ---- */

static int start_recursor(struct dns_server *s, struct dns_config *c, char **err)
{
    if (!c->recursors)
        return 0;
    s->recursor = lookup_new(s->loop, c->recursors, err);
    return s->recursor ? 0 : -1;
}

/* Allocates the rate-limit table when the limit is on, frees it when off. */
static void rrl_setup(struct dns_server *s)
{
    if (s->conf->rrl_rate > 0 && !s->rrl)
        s->rrl = xcalloc(DNS_RRL_BUCKETS, sizeof *s->rrl);
    else if (s->conf->rrl_rate == 0) {
        free(s->rrl);
        s->rrl = NULL;
    }
}

int dns_server_start(struct dns_server *s, char **err)
{
    rrl_setup(s);
    struct net_addr a;
    net_parse_addr(s->conf->listen, &a);
    s->zone = s->conf->zone;
    s->udp_fd = socket(a.ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->udp_fd < 0 || bind(s->udp_fd, (struct sockaddr *)&a.ss, a.len) < 0) {
        cfg_error(err, "listen", "cannot bind UDP %s: %s", s->conf->listen, strerror(errno));
        return -1;
    }
    int rcv = 4 << 20;
    setsockopt(s->udp_fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    s->tcp_fd = net_listen_tcp(&a, 1024, false);
    if (s->tcp_fd < 0) {
        cfg_error(err, "listen", "cannot listen on TCP %s: %s", s->conf->listen, strerror(errno));
        close(s->udp_fd);
        return -1;
    }
    if (start_recursor(s, s->conf, err) < 0)
        return -1;
    ev_io_init(&s->udp_io, udp_cb, s->udp_fd, EV_READ);
    s->udp_io.data = s;
    ev_io_start(s->loop, &s->udp_io);
    ev_io_init(&s->tcp_io, accept_cb, s->tcp_fd, EV_READ);
    s->tcp_io.data = s;
    ev_io_start(s->loop, &s->tcp_io);
    return 0;
}

int dns_server_reconfigure(struct dns_server *s, struct dns_config *c, char **err)
{
    if (strcmp(c->listen, s->conf->listen) != 0)
        log_warn("reload: listen changes need a restart; keeping %s", s->conf->listen);
    struct lookup *old = s->recursor;
    s->recursor = NULL;
    if (start_recursor(s, c, err) < 0) {
        s->recursor = old;
        return -1;
    }
    lookup_free(old); /* forwarded queries in flight get no answer; clients retry */
    dns_config_free(s->conf);
    s->conf = c;
    rrl_setup(s);
    s->zone = c->zone;
    return 0;
}

void dns_server_stop(struct dns_server *s)
{
    ev_io_stop(s->loop, &s->udp_io);
    ev_io_stop(s->loop, &s->tcp_io);
    close(s->udp_fd);
    close(s->tcp_fd);
    while (s->tcp_conns)
        tcp_close(s->tcp_conns);
    lookup_free(s->recursor);
    s->recursor = NULL;
    free(s->rrl);
    s->rrl = NULL;
}
