/* upstream.h -- connections to targets and their idle keep-alive pools (upstream.c). An upstream
 * knows nothing of targets or clients: the client that uses one hears of its events through the two
 * function pointers it sets, and a pool is a plain list its owner (a target) embeds. */
#ifndef BERTH_PROXY_UPSTREAM_H
#define BERTH_PROXY_UPSTREAM_H

#include <ev.h>
#include <stdbool.h>

#include "berth/buf.h"
#include "berth/net.h"
#include "berth/tls.h"
#include "readyq.h"

struct proxy;
struct proxy_upstream;

struct upstream_pool {
    struct proxy_upstream *idle;
    int nidle;
};

struct proxy_upstream {
    struct proxy *px;
    int fd;
    SSL *ssl; /* HTTPS targets */
    ev_io io;
    struct proxy_ready ready;
    ev_timer timer;
    struct upstream_pool *pool;     /* where it goes back when released */
    void *user;                     /* the client using it; NULL while pooled */
    void (*on_event)(void *user);   /* bytes arrived in <in>, or err/eof/connected changed */
    void (*on_timeout)(void *user); /* its timer expired */
    struct proxy_upstream *next;    /* in the pool */
    struct buf in, out;
    double last_activity;
    double connect_timeout_s, response_timeout_s;
    int err; /* errno of a failed connect/read/write */
    char tls_err[160]; /* what failed in the TLS handshake (err is EPROTO then) */
    bool tcp_up;                                       /* the TCP connect completed */
    int hs_want;                                       /* the events the TLS handshake waits for */
    bool connected, reused, eof, got_bytes, timed_out; /* connected: TCP, and TLS when it has TLS */
};

/* A connection to <addr> for <user>: an idle one from <pool> (one with nothing to read: a byte or an
 * EOF there would be taken for the next response) or a new one, over TLS with <tls> when not NULL
 * (a pool holds connections of one kind). NULL with errno. */
struct proxy_upstream *upstream_acquire(struct proxy *px, struct upstream_pool *pool, const struct net_addr *addr,
                                        SSL_CTX *tls,
                                        double connect_timeout_s, double response_timeout_s, void *user,
                                        void (*on_event)(void *), void (*on_timeout)(void *));
/* The user is done with <up>: back to its pool when <reusable> (and clean, and the pool has room),
 * else closed. */
void upstream_release(struct proxy_upstream *up, bool reusable);
/* Closes every idle connection of <pool>. */
void upstream_pool_clear(struct upstream_pool *pool);
/* Watches <events> (EV_READ | EV_WRITE) on it. */
void upstream_set_events(struct proxy_upstream *up, int events);
/* Watches what it needs: the connect or handshake while connecting, then reading (when <readable>:
 * the client can take more) and writing what is queued. */
void upstream_watch(struct proxy_upstream *up, bool readable);
/* (Re)arms its timer <after> seconds from now. */
void upstream_arm(struct proxy_upstream *up, double after);
/* Sends what <out> holds; -1 with up->err on a write error. */
int upstream_flush(struct proxy_upstream *up);

#endif
