/* httpc.c -- minimal asynchronous HTTP/1.1 client on libev. */
#include <openssl/ssl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "berth/alloc.h"
#include "berth/config.h"
#include "berth/log.h"
#include "berth/buf.h"
#include "berth/http.h"
#include "berth/httpc.h"
#include "berth/tls.h"

#define HTTPC_MAX_RESPONSE (16u << 20)

struct httpc_req {
    struct ev_loop *loop;
    int fd;
    SSL *ssl; /* https */
    int want; /* the events the connection waits for */
    ev_io io;
    ev_timer timer;
    struct buf out, in;
    httpc_cb cb;
    void *arg;
    bool connected;
    enum http_method method;
    /* Streaming (httpc_on_body): a 2xx body goes to on_body as it comes. */
    void (*on_body)(void *arg, const char *p, size_t n);
    bool streaming;
    int status;
    enum http_body_kind body_kind;
    uint64_t remaining;
    struct http_chunked ch;
};

static void req_free(struct httpc_req *r)
{
    ev_io_stop(r->loop, &r->io);
    ev_timer_stop(r->loop, &r->timer);
    tls_close(r->ssl);
    if (r->fd >= 0)
        close(r->fd);
    buf_free(&r->out);
    buf_free(&r->in);
    free(r);
}

static void finish(struct httpc_req *r, const struct httpc_response *resp, const char *err)
{
    httpc_cb cb = r->cb;
    void *arg = r->arg;
    ev_io_stop(r->loop, &r->io);
    ev_timer_stop(r->loop, &r->timer);
    cb(resp, err, arg);
    req_free(r);
}

/* Decodes a chunked body in place; returns its length or -1. */
static ssize_t dechunk(char *p, size_t len)
{
    size_t w = 0, i = 0;
    for (;;) {
        char *end;
        if (i >= len)
            return -1;
        unsigned long n = strtoul(p + i, &end, 16);
        char *lf = memchr(p + i, '\n', len - i);
        if (!lf || end == p + i)
            return -1;
        i = (size_t)(lf - p) + 1;
        if (n == 0)
            return (ssize_t)w;
        if (i + n > len)
            return -1;
        memmove(p + w, p + i, n);
        w += n;
        i += n + 2;
    }
}

/* A streamed body: hands what has been read to on_body. Returns 1 when finished (r freed), 0 to keep
 * reading. */
static int stream_body(struct httpc_req *r, bool eof)
{
    bool done = false;
    char *p = buf_head(&r->in);
    size_t have = r->in.len;
    switch (r->body_kind) {
    case HTTP_BODY_NONE:
        done = true;
        break;
    case HTTP_BODY_LENGTH: {
        size_t n = have < r->remaining ? have : (size_t)r->remaining;
        if (n)
            r->on_body(r->arg, p, n);
        r->remaining -= n;
        buf_consume(&r->in, n);
        done = r->remaining == 0;
        break;
    }
    case HTTP_BODY_CHUNKED: {
        ssize_t n = http_chunked_decode(&r->ch, p, have, &done, r->on_body, r->arg);
        if (n < 0) {
            finish(r, NULL, "malformed chunked body");
            return 1;
        }
        buf_consume(&r->in, (size_t)n);
        break;
    }
    case HTTP_BODY_EOF:
        if (have)
            r->on_body(r->arg, p, have);
        buf_consume(&r->in, have);
        done = eof;
        break;
    }
    if (!done && !eof)
        return 0;
    struct httpc_response resp = {r->status, "", 0};
    finish(r, done ? &resp : NULL, done ? NULL : "truncated response body");
    return 1;
}

/* Tries to complete the response from what has been read; <eof> when the
 * peer closed. Returns 1 when finished (r freed), 0 to keep reading. */
static int try_complete(struct httpc_req *r, bool eof)
{
    if (r->streaming)
        return stream_body(r, eof);
    struct http_msg m;
    int h = http_parse_response(buf_head(&r->in), r->in.len, 65536, r->method, &m);
    if (h == HTTP_INCOMPLETE) {
        if (!eof)
            return 0;
        finish(r, NULL, r->in.len ? "truncated response head" : "connection closed without a response");
        return 1;
    }
    if (h < 0) {
        finish(r, NULL, "malformed response");
        return 1;
    }
    if (m.status < 200) { /* interim response: skip it */
        buf_consume(&r->in, (size_t)h);
        return try_complete(r, eof);
    }
    if (r->on_body && m.status / 100 == 2) {
        r->streaming = true;
        r->status = m.status;
        r->body_kind = m.body;
        r->remaining = m.content_length;
        http_chunked_init(&r->ch);
        buf_consume(&r->in, (size_t)h);
        r->on_body(r->arg, "", 0); /* the stream is open */
        return stream_body(r, eof);
    }
    char *body = buf_head(&r->in) + h;
    size_t have = r->in.len - (size_t)h;
    size_t blen = 0;
    switch (m.body) {
    case HTTP_BODY_NONE:
        break;
    case HTTP_BODY_LENGTH:
        if (have < m.content_length) {
            if (!eof)
                return 0;
            finish(r, NULL, "truncated response body");
            return 1;
        }
        blen = (size_t)m.content_length;
        break;
    case HTTP_BODY_CHUNKED: {
        struct http_chunked ch;
        bool done;
        http_chunked_init(&ch);
        ssize_t n = http_chunked_scan(&ch, body, have, &done);
        if (n < 0) {
            finish(r, NULL, "malformed chunked body");
            return 1;
        }
        if (!done) {
            if (!eof)
                return 0;
            finish(r, NULL, "truncated response body");
            return 1;
        }
        blen = (size_t)dechunk(body, (size_t)n);
        break;
    }
    case HTTP_BODY_EOF:
        if (!eof)
            return 0;
        blen = have;
        break;
    }
    /* NUL-terminate for the callback's convenience. */
    char *z = buf_reserve(&r->in, 1);
    if (!z) {
        finish(r, NULL, "response too large");
        return 1;
    }
    body = buf_head(&r->in) + h;
    body[blen] = 0;
    struct httpc_response resp = {m.status, body, blen};
    finish(r, &resp, NULL);
    return 1;
}

static void watch(struct httpc_req *r, int events)
{
    if (r->want == events && ev_is_active(&r->io))
        return;
    r->want = events;
    ev_io_stop(r->loop, &r->io);
    ev_io_set(&r->io, r->fd, events);
    ev_io_start(r->loop, &r->io);
}

static void fail_io(struct httpc_req *r, const char *what)
{
    char msg[240], e[160];
    if (r->ssl && errno == EPROTO)
        snprintf(msg, sizeof msg, "TLS: %s", tls_error(r->ssl, e, sizeof e));
    else
        snprintf(msg, sizeof msg, "%s: %s", what, strerror(errno));
    finish(r, NULL, msg);
}

/* Sends what is queued, then reads; over TLS either may wait for the other direction. */
static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct httpc_req *r = w->data;
    if (!r->connected) {
        if (!(revents & EV_WRITE))
            return;
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err) {
            char msg[160];
            snprintf(msg, sizeof msg, "connect: %s", strerror(err));
            finish(r, NULL, msg);
            return;
        }
        r->connected = true;
    }
    int want;
    if (tls_flush(r->fd, r->ssl, &r->out, &want) < 0) {
        fail_io(r, "send");
        return;
    }
    if (r->out.len) {
        watch(r, want | EV_READ);
        return;
    }
    for (;;) {
        char *d = buf_reserve(&r->in, 16384);
        if (!d) {
            finish(r, NULL, "response too large");
            return;
        }
        ssize_t n = tls_sock_read(r->fd, r->ssl, d, 16384, &want);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                watch(r, want);
                return;
            }
            fail_io(r, "read");
            return;
        }
        buf_commit(&r->in, (size_t)n);
        if (try_complete(r, n == 0))
            return;
        if (!r->ssl) { /* plain: the next read when epoll says so; TLS may hold decrypted bytes */
            watch(r, EV_READ);
            return;
        }
    }
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    finish(w->data, NULL, "timed out");
}

struct httpc_req *httpc_request(struct ev_loop *loop, const struct net_addr *addr, const char *method,
                                const char *host, const char *bearer, const char *path, const char *content_type,
                                const char *body, size_t body_len, double timeout, httpc_cb cb, void *arg)
{
    struct httpc_req *r = xcalloc(1, sizeof *r);
    r->loop = loop;
    r->cb = cb;
    r->arg = arg;
    r->method = strcmp(method, "HEAD") == 0 ? HTTP_M_HEAD : HTTP_M_GET;
    buf_init(&r->out, body_len + 8192);
    buf_init(&r->in, HTTPC_MAX_RESPONSE);
    r->fd = net_connect_tcp(addr);
    if (r->fd < 0) {
        req_free(r);
        return NULL;
    }
    buf_printf(&r->out, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: berth\r\nConnection: close\r\n", method, path,
               host);
    if (bearer && *bearer)
        buf_printf(&r->out, "Authorization: Bearer %s\r\n", bearer);
    if (body)
        buf_printf(&r->out, "Content-Type: %s\r\nContent-Length: %zu\r\n", content_type ? content_type : "application/json",
                   body_len);
    buf_append(&r->out, "\r\n", 2);
    if (body)
        buf_append(&r->out, body, body_len);
    ev_io_init(&r->io, io_cb, r->fd, EV_WRITE);
    r->want = EV_WRITE;
    r->io.data = r;
    if (addr->tls)
        httpc_use_tls(r, httpc_tls_ctx(), host);
    ev_timer_init(&r->timer, timer_cb, timeout, 0);
    r->timer.data = r;
    ev_io_start(loop, &r->io);
    ev_timer_start(loop, &r->timer);
    return r;
}

void httpc_send(struct httpc_req *r, const char *data, size_t len)
{
    if (buf_append(&r->out, data, len) < 0)
        return; /* more than the buffer holds in flight: dropped, as a terminal drops input it cannot take */
    watch(r, EV_READ | EV_WRITE);
}

static SSL_CTX *client_ctx;

int httpc_tls_init(const char *ca_file, char **err)
{
    const char *env = getenv("BERTH_CACERT");
    SSL_CTX *ctx = tls_client_ctx(true, ca_file ? ca_file : env && *env ? env : NULL, true, err);
    if (!ctx)
        return -1;
    if (ca_file && env && *env && SSL_CTX_load_verify_locations(ctx, env, NULL) != 1) {
        SSL_CTX_free(ctx);
        return cfg_error(err, NULL, "BERTH_CACERT=%s: cannot load CA certificates", env);
    }
    SSL_CTX_free(client_ctx);
    client_ctx = ctx;
    return 0;
}

SSL_CTX *httpc_tls_ctx(void)
{
    if (!client_ctx) {
        char *err = NULL;
        if (httpc_tls_init(NULL, &err) < 0) {
            log_error("TLS client: %s; verifying against the system's CAs only", err);
            free(err);
            client_ctx = tls_client_ctx(true, NULL, true, NULL);
        }
    }
    return client_ctx;
}

void httpc_use_tls(struct httpc_req *r, SSL_CTX *ctx, const char *host)
{
    tls_close(r->ssl);
    r->ssl = ctx ? tls_client_ssl(ctx, r->fd, host) : NULL;
}

void httpc_on_body(struct httpc_req *r, void (*on_body)(void *arg, const char *p, size_t n))
{
    r->on_body = on_body;
}

void httpc_cancel(struct httpc_req *r)
{
    if (r)
        req_free(r);
}
