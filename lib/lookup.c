/* lookup.c -- service endpoint lookup over DNS with c-ares on libev. */
#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "berth/alloc.h"
#include "berth/lookup.h"
#include "berth/util.h"

#define MAX_SOCKS 16
#define MAX_EPS 1024

struct lookup_sock {
    ev_io io;
    int fd;
    struct lookup *l;
};

struct lookup {
    struct ev_loop *loop;
    ares_channel ch;
    ev_timer timer;
    struct lookup_sock socks[MAX_SOCKS];
};

struct lookup_query {
    struct lookup *l;
    char name[256];
    enum lookup_type type;
    int default_port;
    lookup_cb cb;
    void *arg;
    bool cancelled;
    int pending; /* c-ares queries still running for this lookup */
    int phase;   /* 0: SRV, 1: addresses */
    unsigned ttl;
    struct lookup_endpoint *eps;
    size_t n;
    char err[160];
};

static int cares_ready = -1;

/* ---- libev integration ---- */

static void reschedule(struct lookup *l)
{
    struct timeval tv, *tp = ares_timeout(l->ch, NULL, &tv);
    ev_timer_stop(l->loop, &l->timer);
    if (tp) {
        ev_timer_set(&l->timer, (double)tp->tv_sec + (double)tp->tv_usec / 1e6 + 0.001, 0);
        ev_timer_start(l->loop, &l->timer);
    }
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct lookup_sock *s = w->data;
    struct lookup *l = s->l;
    ares_process_fd(l->ch, (revents & EV_READ) ? s->fd : ARES_SOCKET_BAD, (revents & EV_WRITE) ? s->fd : ARES_SOCKET_BAD);
    reschedule(l);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct lookup *l = w->data;
    ares_process_fd(l->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    reschedule(l);
}

static void sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
    struct lookup *l = data;
    struct lookup_sock *slot = NULL, *free_slot = NULL;
    for (int i = 0; i < MAX_SOCKS; i++) {
        if (l->socks[i].fd == fd)
            slot = &l->socks[i];
        else if (!free_slot && l->socks[i].fd < 0)
            free_slot = &l->socks[i];
    }
    if (slot)
        ev_io_stop(l->loop, &slot->io);
    if (!readable && !writable) {
        if (slot)
            slot->fd = -1;
        return;
    }
    if (!slot)
        slot = free_slot;
    if (!slot)
        return; /* more sockets than slots: c-ares falls back to its timeouts */
    slot->fd = fd;
    slot->l = l;
    ev_io_init(&slot->io, io_cb, fd, (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));
    slot->io.data = slot;
    ev_io_start(l->loop, &slot->io);
}

struct lookup *lookup_new(struct ev_loop *loop, const char *server, char **err)
{
    if (cares_ready < 0)
        cares_ready = ares_library_init(ARES_LIB_INIT_ALL) == ARES_SUCCESS;
    struct lookup *l = xcalloc(1, sizeof *l);
    l->loop = loop;
    for (int i = 0; i < MAX_SOCKS; i++)
        l->socks[i].fd = -1;
    struct ares_options o = {0};
    o.sock_state_cb = sock_state_cb;
    o.sock_state_cb_data = l;
    o.timeout = 1000;
    o.tries = 2;
    int r = ares_init_options(&l->ch, &o, ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
    if (r == ARES_SUCCESS && server)
        r = ares_set_servers_ports_csv(l->ch, server);
    if (r != ARES_SUCCESS) {
        if (err) {
            *err = xmalloc(256);
            snprintf(*err, 256, "resolver%s%s: %s", server ? " " : "", server ? server : "", ares_strerror(r));
        }
        if (l->ch)
            ares_destroy(l->ch);
        free(l);
        return NULL;
    }
    ev_init(&l->timer, timer_cb);
    l->timer.data = l;
    return l;
}

void lookup_free(struct lookup *l)
{
    if (!l)
        return;
    ares_destroy(l->ch); /* runs pending callbacks with ARES_EDESTRUCTION */
    for (int i = 0; i < MAX_SOCKS; i++)
        if (l->socks[i].fd >= 0)
            ev_io_stop(l->loop, &l->socks[i].io);
    ev_timer_stop(l->loop, &l->timer);
    free(l);
}

/* ---- answers ---- */

struct rr {
    char name[256];
    int type;
    unsigned ttl;
    const unsigned char *rdata;
    int rdlen;
};

/* Walks the answer and additional sections of <abuf>, calling <fn> per RR. */
static int each_rr(const unsigned char *abuf, int alen, void (*fn)(const struct rr *, const unsigned char *, int, void *),
                   void *arg)
{
    if (alen < 12)
        return -1;
    int qd = abuf[4] << 8 | abuf[5], an = abuf[6] << 8 | abuf[7], ns = abuf[8] << 8 | abuf[9],
        ar = abuf[10] << 8 | abuf[11];
    const unsigned char *p = abuf + 12, *end = abuf + alen;
    for (int i = 0; i < qd; i++) {
        char *name;
        long len;
        if (ares_expand_name(p, abuf, alen, &name, &len) != ARES_SUCCESS)
            return -1;
        ares_free_string(name);
        p += len + 4;
        if (p > end)
            return -1;
    }
    for (int i = 0; i < an + ns + ar; i++) {
        char *name;
        long len;
        if (ares_expand_name(p, abuf, alen, &name, &len) != ARES_SUCCESS)
            return -1;
        struct rr rr;
        snprintf(rr.name, sizeof rr.name, "%s", name);
        ares_free_string(name);
        p += len;
        if (p + 10 > end)
            return -1;
        rr.type = p[0] << 8 | p[1];
        rr.ttl = (unsigned)p[4] << 24 | (unsigned)p[5] << 16 | (unsigned)p[6] << 8 | p[7];
        rr.rdlen = p[8] << 8 | p[9];
        rr.rdata = p + 10;
        p += 10 + rr.rdlen;
        if (p > end)
            return -1;
        if (i < an || i >= an + ns) /* skip the authority section */
            fn(&rr, abuf, alen, arg);
    }
    return 0;
}

static void add_ep(struct lookup_query *q, const char *host, const char *ip, int family, int port, int prio, int weight,
                   unsigned ttl)
{
    if (q->n >= MAX_EPS)
        return;
    q->eps = xrealloc(q->eps, (q->n + 1) * sizeof *q->eps);
    struct lookup_endpoint *e = &q->eps[q->n++];
    memset(e, 0, sizeof *e);
    snprintf(e->host, sizeof e->host, "%s", host);
    snprintf(e->ip, sizeof e->ip, "%s", ip);
    e->port = port;
    e->priority = prio;
    e->weight = weight;
    snprintf(e->address, sizeof e->address, family == AF_INET6 ? "[%s]:%d" : "%s:%d", ip, port);
    if (ttl < q->ttl)
        q->ttl = ttl;
}

/* SRV phase state collected from one answer. */
struct srv_scan {
    struct lookup_query *q;
    struct {
        char target[256];
        int port, prio, weight;
        unsigned ttl;
    } srv[MAX_EPS];
    int nsrv;
    struct {
        char name[256];
        char ip[INET6_ADDRSTRLEN];
        int family;
        unsigned ttl;
    } addr[MAX_EPS];
    int naddr;
};

static void scan_rr(const struct rr *rr, const unsigned char *abuf, int alen, void *arg)
{
    struct srv_scan *s = arg;
    if (rr->type == ns_t_srv && rr->rdlen > 6 && s->nsrv < MAX_EPS) {
        char *target;
        long len;
        if (ares_expand_name(rr->rdata + 6, abuf, alen, &target, &len) != ARES_SUCCESS)
            return;
        snprintf(s->srv[s->nsrv].target, sizeof s->srv[0].target, "%s", target);
        ares_free_string(target);
        s->srv[s->nsrv].prio = rr->rdata[0] << 8 | rr->rdata[1];
        s->srv[s->nsrv].weight = rr->rdata[2] << 8 | rr->rdata[3];
        s->srv[s->nsrv].port = rr->rdata[4] << 8 | rr->rdata[5];
        s->srv[s->nsrv].ttl = rr->ttl;
        s->nsrv++;
    } else if ((rr->type == ns_t_a && rr->rdlen == 4) || (rr->type == ns_t_aaaa && rr->rdlen == 16)) {
        if (s->naddr >= MAX_EPS)
            return;
        int fam = rr->type == ns_t_a ? AF_INET : AF_INET6;
        snprintf(s->addr[s->naddr].name, sizeof s->addr[0].name, "%s", rr->name);
        inet_ntop(fam, rr->rdata, s->addr[s->naddr].ip, sizeof s->addr[0].ip);
        s->addr[s->naddr].family = fam;
        s->addr[s->naddr].ttl = rr->ttl;
        s->naddr++;
    }
}

static void finish(struct lookup_query *q)
{
    if (!q->cancelled) {
        if (q->n == 0 && !q->err[0])
            snprintf(q->err, sizeof q->err, "%s: no endpoints", q->name);
        q->cb(q->n ? q->eps : NULL, q->n, q->ttl == ~0u ? 0 : q->ttl, q->n ? NULL : q->err, q->arg);
    }
    free(q->eps);
    free(q);
}

struct addr_ctx {
    struct lookup_query *q;
    char host[256];
    int port, prio, weight;
};

static void addr_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    struct addr_ctx *a = arg;
    struct lookup_query *q = a->q;
    if (status == ARES_SUCCESS) {
        struct srv_scan *s = xcalloc(1, sizeof *s);
        each_rr(abuf, alen, scan_rr, s);
        for (int i = 0; i < s->naddr; i++)
            add_ep(q, a->host, s->addr[i].ip, s->addr[i].family, a->port, a->prio, a->weight, s->addr[i].ttl);
        free(s);
    } else if (status != ARES_EDESTRUCTION && status != ARES_ENODATA && status != ARES_ENOTFOUND && !q->err[0]) {
        snprintf(q->err, sizeof q->err, "%s: %s", a->host, ares_strerror(status));
    }
    if (status == ARES_EDESTRUCTION)
        q->cancelled = true;
    free(a);
    if (--q->pending == 0)
        finish(q);
}

/* Queries A and AAAA for <host>; endpoints get <port>. */
static void query_addrs(struct lookup_query *q, const char *host, int port, int prio, int weight)
{
    static const int types[] = {ns_t_a, ns_t_aaaa};
    for (int i = 0; i < 2; i++) {
        struct addr_ctx *a = xcalloc(1, sizeof *a);
        a->q = q;
        snprintf(a->host, sizeof a->host, "%s", host);
        a->port = port;
        a->prio = prio;
        a->weight = weight;
        q->pending++;
        ares_query(q->l->ch, host, ns_c_in, types[i], addr_cb, a);
    }
}

static void srv_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    struct lookup_query *q = arg;
    if (status == ARES_EDESTRUCTION) {
        q->cancelled = true;
        if (--q->pending == 0)
            finish(q);
        return;
    }
    struct srv_scan *s = xcalloc(1, sizeof *s);
    if (status == ARES_SUCCESS)
        each_rr(abuf, alen, scan_rr, s);
    if (s->nsrv == 0) {
        if (q->type == LOOKUP_SRV || (status != ARES_SUCCESS && status != ARES_ENODATA && status != ARES_ENOTFOUND)) {
            snprintf(q->err, sizeof q->err, "%s: %s", q->name,
                     status == ARES_SUCCESS ? "no SRV records" : ares_strerror(status));
        } else {
            query_addrs(q, q->name, q->default_port, 0, 0); /* no SRV: fall back to addresses */
        }
    }
    for (int i = 0; i < s->nsrv; i++) {
        unsigned srv_ttl = s->srv[i].ttl;
        if (srv_ttl < q->ttl)
            q->ttl = srv_ttl;
        bool glued = false;
        for (int k = 0; k < s->naddr; k++)
            if (strcasecmp(s->addr[k].name, s->srv[i].target) == 0) {
                add_ep(q, s->srv[i].target, s->addr[k].ip, s->addr[k].family, s->srv[i].port, s->srv[i].prio,
                       s->srv[i].weight, s->addr[k].ttl);
                glued = true;
            }
        if (!glued) /* no address in the additional section: ask for it */
            query_addrs(q, s->srv[i].target, s->srv[i].port, s->srv[i].prio, s->srv[i].weight);
    }
    free(s);
    if (--q->pending == 0)
        finish(q);
}

struct lookup_query *lookup_endpoints(struct lookup *l, const char *name, enum lookup_type type, int default_port,
                                      lookup_cb cb, void *arg)
{
    struct lookup_query *q = xcalloc(1, sizeof *q);
    q->l = l;
    snprintf(q->name, sizeof q->name, "%s", name);
    q->type = type;
    q->default_port = default_port;
    q->cb = cb;
    q->arg = arg;
    q->ttl = ~0u;
    q->pending = 1;
    if (type == LOOKUP_A) {
        q->pending = 0;
        query_addrs(q, name, default_port, 0, 0);
    } else {
        ares_query(l->ch, name, ns_c_in, ns_t_srv, srv_cb, q);
    }
    reschedule(l);
    return q;
}

void lookup_cancel(struct lookup_query *q)
{
    if (q)
        q->cancelled = true; /* freed when its c-ares queries end */
}

struct fwd_ctx {
    lookup_raw_cb cb;
    void *arg;
};

static void forward_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    struct fwd_ctx *f = arg;
    f->cb(abuf, abuf ? (size_t)alen : 0, abuf ? NULL : ares_strerror(status), f->arg);
    free(f);
}

void lookup_forward(struct lookup *l, const unsigned char *q, size_t len, lookup_raw_cb cb, void *arg)
{
    struct fwd_ctx *f = xmalloc(sizeof *f);
    f->cb = cb;
    f->arg = arg;
    ares_send(l->ch, q, (int)len, forward_cb, f);
    reschedule(l);
}

const struct lookup_endpoint *lookup_pick(const struct lookup_endpoint *eps, size_t n)
{
    if (n == 0)
        return NULL;
    int best = eps[0].priority;
    for (size_t i = 1; i < n; i++)
        if (eps[i].priority < best)
            best = eps[i].priority;
    unsigned total = 0, count = 0;
    for (size_t i = 0; i < n; i++)
        if (eps[i].priority == best) {
            total += (unsigned)eps[i].weight;
            count++;
        }
    /* RFC 2782: weighted random within the lowest priority; all-zero weights pick uniformly. */
    uint64_t r = util_rand64();
    unsigned pick = total ? (unsigned)(r % total) : (unsigned)(r % count);
    for (size_t i = 0; i < n; i++) {
        if (eps[i].priority != best)
            continue;
        unsigned w = total ? (unsigned)eps[i].weight : 1;
        if (pick < w)
            return &eps[i];
        pick -= w;
    }
    return &eps[0];
}

struct sync_ctx {
    struct lookup_endpoint *eps;
    size_t n;
    unsigned ttl;
    char *err;
    bool done;
};

static void sync_cb(const struct lookup_endpoint *eps, size_t n, unsigned ttl, const char *err, void *arg)
{
    struct sync_ctx *s = arg;
    s->done = true;
    s->ttl = ttl;
    if (err) {
        s->err = xstrdup(err);
        return;
    }
    s->eps = xmalloc(n * sizeof *eps);
    memcpy(s->eps, eps, n * sizeof *eps);
    s->n = n;
}

static void sync_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    ev_break(loop, EVBREAK_ALL);
}

int lookup_endpoints_sync(const char *server, const char *name, enum lookup_type type, int default_port,
                          double timeout_s, struct lookup_endpoint **out, size_t *n, unsigned *ttl, char **err)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct lookup *l = lookup_new(loop, server, err);
    if (!l) {
        ev_loop_destroy(loop);
        return -1;
    }
    struct sync_ctx s = {0};
    ev_timer deadline;
    ev_timer_init(&deadline, sync_timeout, timeout_s, 0);
    ev_timer_start(loop, &deadline);
    struct lookup_query *q = lookup_endpoints(l, name, type, default_port, sync_cb, &s);
    while (q && !s.done && ev_timer_remaining(loop, &deadline) > 0 && ev_run(loop, EVRUN_ONCE))
        ;
    ev_timer_stop(loop, &deadline);
    lookup_free(l);
    ev_loop_destroy(loop);
    if (!s.done) {
        *err = xmalloc(300);
        snprintf(*err, 300, "%s: no answer within %gs", name, timeout_s);
        return -1;
    }
    if (s.err) {
        *err = s.err;
        return -1;
    }
    *out = s.eps;
    *n = s.n;
    if (ttl)
        *ttl = s.ttl;
    return 0;
}
