/* upstream.c -- connections to targets and their pools (see upstream.h). */
#include <openssl/ssl.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "berth/alloc.h"
#include "proxy.h"
#include "upstream.h"

#define READ_CHUNK 32768
#define BUF_CAP (4u << 20)
#define POOL_IDLE_S 15.0
#define POOL_MAX 512

static void up_free(struct proxy_upstream *up)
{
    proxy_ready_remove(&up->ready);
    ev_io_stop(up->px->loop, &up->io);
    ev_timer_stop(up->px->loop, &up->timer);
    tls_close(up->ssl);
    close(up->fd);
    buf_free(&up->in);
    buf_free(&up->out);
    free(up);
}

static void pool_remove(struct proxy_upstream *up)
{
    struct upstream_pool *pool = up->pool;
    for (struct proxy_upstream **pp = &pool->idle; *pp; pp = &(*pp)->next)
        if (*pp == up) {
            *pp = up->next;
            pool->nidle--;
            return;
        }
}

void upstream_pool_clear(struct upstream_pool *pool)
{
    while (pool->idle) {
        struct proxy_upstream *up = pool->idle;
        pool->idle = up->next;
        pool->nidle--;
        up_free(up);
    }
}

void upstream_set_events(struct proxy_upstream *up, int events)
{
    if ((up->io.events & (EV_READ | EV_WRITE)) == events && ev_is_active(&up->io))
        return;
    ev_io_stop(up->px->loop, &up->io);
    ev_io_set(&up->io, up->fd, events);
    if (events)
        ev_io_start(up->px->loop, &up->io);
}

void upstream_watch(struct proxy_upstream *up, bool readable)
{
    if (!up->connected)
        upstream_set_events(up, up->tcp_up ? up->hs_want : EV_WRITE);
    else
        upstream_set_events(up, (readable ? EV_READ : 0) | (up->out.len ? EV_WRITE : 0));
}

void upstream_arm(struct proxy_upstream *up, double after)
{
    /* One heap adjustment instead of stop + start. */
    up->timer.repeat = after;
    ev_timer_again(up->px->loop, &up->timer);
}

static void up_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct proxy_upstream *up = w->data;
    proxy_ready_push(&up->px->readyq, &up->ready, revents);
}

static void up_ready(struct proxy_ready *r, int revents)
{
    struct proxy_upstream *up = proxy_ready_owner(r, struct proxy_upstream, ready);
    struct ev_loop *loop = up->px->loop;
    if (!up->user) { /* readable while idle: closed by the target, or garbage */
        pool_remove(up);
        up_free(up);
        return;
    }
    if (!up->connected && !up->tcp_up && (revents & EV_WRITE)) {
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(up->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err) {
            up->err = err;
            up->on_event(up->user);
            return;
        }
        up->tcp_up = true;
    }
    if (!up->connected && up->tcp_up) {
        /* The TLS handshake counts as part of connecting (the connect timeout covers it). */
        int want, hs = up->ssl ? tls_handshake(up->ssl, &want) : 1;
        if (hs == 0) {
            up->hs_want = want;
            upstream_set_events(up, want);
            return;
        }
        if (hs < 0) {
            tls_error(up->ssl, up->tls_err, sizeof up->tls_err);
            up->err = EPROTO;
            up->on_event(up->user);
            return;
        }
        up->connected = true;
        up->last_activity = ev_now(loop);
        upstream_arm(up, up->response_timeout_s);
        revents |= EV_READ; /* a TLS 1.3 ticket or the response may be waiting already */
    }
    if (!up->connected)
        return;
    if (revents & EV_READ) {
        if (!up->in.data)
            buf_borrow(&up->in, up->px->scratch_up_in, sizeof up->px->scratch_up_in);
        char *d = buf_reserve(&up->in, READ_CHUNK);
        if (d) {
            int want;
            ssize_t n = tls_sock_read(up->fd, up->ssl, d, READ_CHUNK, &want);
            if (n > 0) {
                buf_commit(&up->in, (size_t)n);
                up->got_bytes = true;
                up->last_activity = ev_now(loop);
            } else if (n == 0) {
                up->eof = true;
            } else if (errno != EAGAIN && errno != EINTR) {
                up->err = errno;
            }
        }
    }
    up->on_event(up->user);
}

static void up_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct proxy_upstream *up = w->data;
    if (!up->user) { /* idle too long in the pool */
        pool_remove(up);
        up_free(up);
        return;
    }
    up->on_timeout(up->user);
}

static struct proxy_upstream *up_connect(struct proxy *px, const struct net_addr *addr, SSL_CTX *tls)
{
    int fd = net_connect_tcp(addr);
    if (fd < 0)
        return NULL;
    SSL *ssl = tls ? tls_client_ssl(tls, fd, NULL) : NULL;
    if (tls && !ssl) {
        close(fd);
        errno = ENOMEM;
        return NULL;
    }
    struct proxy_upstream *up = xcalloc(1, sizeof *up);
    up->px = px;
    up->fd = fd;
    up->ssl = ssl;
    buf_init(&up->in, BUF_CAP);
    buf_init(&up->out, BUF_CAP);
    ev_io_init(&up->io, up_io_cb, fd, EV_WRITE);
    up->ready.fn = up_ready;
    up->io.data = up;
    ev_init(&up->timer, up_timer_cb);
    up->timer.data = up;
    ev_io_start(px->loop, &up->io);
    return up;
}

/* True when an idle connection has nothing to read. */
static bool up_idle_clean(const struct proxy_upstream *up)
{
    char b;
    return recv(up->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

struct proxy_upstream *upstream_acquire(struct proxy *px, struct upstream_pool *pool, const struct net_addr *addr,
                                        SSL_CTX *tls, double connect_timeout_s, double response_timeout_s, void *user,
                                        void (*on_event)(void *), void (*on_timeout)(void *))
{
    struct proxy_upstream *up;
    while ((up = pool->idle)) {
        pool->idle = up->next;
        pool->nidle--;
        up->next = NULL;
        if (up_idle_clean(up))
            break;
        up_free(up);
    }
    if (up) {
        up->reused = true;
        up->got_bytes = false;
    } else if (!(up = up_connect(px, addr, tls))) {
        return NULL;
    }
    up->pool = pool;
    up->user = user;
    up->on_event = on_event;
    up->on_timeout = on_timeout;
    up->connect_timeout_s = connect_timeout_s;
    up->response_timeout_s = response_timeout_s;
    up->err = 0;
    up->tls_err[0] = 0;
    up->eof = up->timed_out = false;
    up->last_activity = ev_now(px->loop);
    upstream_arm(up, up->connected ? response_timeout_s : connect_timeout_s);
    return up;
}

void upstream_release(struct proxy_upstream *up, bool reusable)
{
    struct upstream_pool *pool = up->pool;
    up->user = NULL;
    if (!reusable || up->in.len || up->out.len || pool->nidle >= POOL_MAX || up->px->shutting_down) {
        up_free(up);
        return;
    }
    buf_release(&up->in);
    buf_release(&up->out);
    up->next = pool->idle;
    pool->idle = up;
    pool->nidle++;
    upstream_set_events(up, EV_READ); /* readable while idle means closed or garbage */
    upstream_arm(up, POOL_IDLE_S);
}

int upstream_flush(struct proxy_upstream *up)
{
    if (!up->connected)
        return 0;
    int want;
    ssize_t n = tls_flush(up->fd, up->ssl, &up->out, &want);
    if (n < 0) {
        up->err = errno;
        return -1;
    }
    if (n > 0)
        up->last_activity = ev_now(up->px->loop);
    return 0;
}
