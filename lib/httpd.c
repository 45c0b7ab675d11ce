/* httpd.c -- small HTTP/1.1 server on libev for JSON admin APIs. */
#include <openssl/ssl.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "berth/alloc.h"
#include "berth/auth.h"
#include "berth/buf.h"
#include "berth/config.h"
#include "berth/httpd.h"
#include "berth/tls.h"
#include "berth/log.h"
#include "berth/net.h"
#include "berth/util.h"

#define HTTPD_MAX_HEAD 16384
#define HTTPD_MAX_BODY (8u << 20)
#define HTTPD_IDLE_S 60.0

struct httpd {
    struct ev_loop *loop;
    int fd;
    ev_io accept_io;
    httpd_handler handler;
    void *arg;
    const struct httpd_service *svc; /* httpd_serve: routes and built-ins */
    httpd_authz authz;
    void *authz_arg;
    struct httpd_conn *conns;
    struct tls_server *tls; /* serving HTTPS */
};

struct httpd_conn {
    struct httpd *srv;
    struct httpd_conn *next, *prev;
    int fd;
    SSL *ssl;
    bool rd_want_write; /* TLS: reading waits for the socket to take a write */
    ev_io io;
    ev_timer timer;
    struct buf in, out;
    struct httpd_req req;
    char *reqcopy;   /* owns path, query, segs and body of req */
    char *bearer;    /* owns req.bearer */
    bool pending;    /* handler has not responded yet */
    char allow[128]; /* the Allow field of a 405 */
    bool keep_alive;
    bool closing;    /* close after out is flushed */
    bool dead;       /* peer went away while a response was pending */
    bool in_cb;      /* inside conn_cb: it flushes and closes, not httpd_respond */
};

static void conn_free(struct httpd_conn *c)
{
    ev_io_stop(c->srv->loop, &c->io);
    ev_timer_stop(c->srv->loop, &c->timer);
    tls_close(c->ssl);
    if (c->fd >= 0)
        close(c->fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        c->srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    buf_free(&c->in);
    buf_free(&c->out);
    free(c->reqcopy);
    free(c->bearer);
    free(c);
}

/* Closes the connection, deferring the free while the handler owns req. */
static void conn_close(struct httpd_conn *c)
{
    if (c->pending) {
        c->dead = true;
        ev_io_stop(c->srv->loop, &c->io);
        ev_timer_stop(c->srv->loop, &c->timer);
        tls_close(c->ssl);
        c->ssl = NULL;
        close(c->fd);
        c->fd = -1;
        return;
    }
    conn_free(c);
}

static void conn_process(struct httpd_conn *c);

static int conn_flush(struct httpd_conn *c)
{
    int want;
    if (tls_flush(c->fd, c->ssl, &c->out, &want) < 0)
        return -1;
    int events = EV_READ | (c->out.len ? EV_WRITE : 0);
    if (c->pending)
        events &= ~EV_READ;
    else if (c->rd_want_write)
        events |= EV_WRITE;
    if ((c->io.events & (EV_READ | EV_WRITE)) != events) {
        ev_io_stop(c->srv->loop, &c->io);
        ev_io_set(&c->io, c->fd, events);
        if (events)
            ev_io_start(c->srv->loop, &c->io);
    }
    if (c->out.len == 0 && c->closing)
        return -1;
    return 0;
}

/* Percent-decodes <s> in place ('+' kept unless <plus>). */
static void pct_decode(char *s, bool plus)
{
    char *w = s;
    for (char *r = s; *r; r++) {
        if (*r == '%' && util_hexval(r[1]) >= 0 && util_hexval(r[2]) >= 0) {
            *w++ = (char)(util_hexval(r[1]) * 16 + util_hexval(r[2]));
            r += 2;
        } else if (plus && *r == '+') {
            *w++ = ' ';
        } else {
            *w++ = *r;
        }
    }
    *w = 0;
}

static void dispatch(struct httpd_conn *c, const struct http_msg *m)
{
    size_t tl = m->target_len, bl = (size_t)m->content_length;
    /* Layout: path\0 query\0 segs-copy\0 body\0 */
    free(c->reqcopy);
    c->reqcopy = xmalloc(tl * 2 + 4 + bl + 1);
    struct httpd_req *r = &c->req;
    memset(r, 0, sizeof *r);
    r->conn = c;
    r->method_id = m->method_id;
    snprintf(r->method, sizeof r->method, "%.*s", (int)m->method_len, m->method);
    char *p = c->reqcopy;
    memcpy(p, m->target, tl);
    p[tl] = 0;
    r->path = p;
    char *q = strchr(p, '?');
    char *after = p + tl + 1;
    if (q) {
        *q = 0;
        r->query = q + 1;
    } else {
        r->query = p + tl; /* "" */
    }
    strcpy(after, r->path);
    char *save = NULL;
    for (char *s = strtok_r(after, "/", &save); s && r->nsegs < HTTPD_MAX_SEGS; s = strtok_r(NULL, "/", &save)) {
        pct_decode(s, false);
        r->segs[r->nsegs++] = s;
    }
    r->body = after + tl + 2;
    memcpy(r->body, buf_head(&c->in) + m->head_len, bl);
    r->body[bl] = 0;
    r->body_len = bl;
    free(c->bearer);
    c->bearer = NULL;
    for (unsigned i = 0; i < m->num_headers; i++) {
        const struct http_header *h = &m->headers[i];
        /* RFC 6750 §2.1: "Bearer" (any case), one space, the token. */
        if (http_header_is(h, "authorization") && h->value_len > 7 && strncasecmp(h->value, "bearer ", 7) == 0)
            c->bearer = xstrndup(h->value + 7, h->value_len - 7);
    }
    r->bearer = c->bearer;
    c->pending = true;
    bool open = r->method_id == HTTP_M_GET && r->nsegs == 1 && strcmp(r->segs[0], "healthz") == 0;
    int deny = c->srv->authz && !open ? c->srv->authz(r, c->srv->authz_arg) : 0;
    if (deny == 401)
        httpd_respond_error(r, 401, "Unauthorized", "%s", r->bearer ? "the token is not valid here"
                                                                     : "a token is needed: Authorization: Bearer TOKEN");
    else if (deny)
        httpd_respond_error(r, 403, "Forbidden", "the token's role may not %s %s", r->method, r->path);
    else
        c->srv->handler(r, c->srv->svc ? (void *)c->srv : c->srv->arg);
}

static void send_simple(struct httpd_conn *c, int status)
{
    buf_printf(&c->out, "HTTP/1.1 %d %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", status,
               http_status_text(status));
    c->closing = true;
}

static void conn_process(struct httpd_conn *c)
{
    while (!c->pending && !c->closing && c->in.len) {
        struct http_msg m;
        int r = http_parse_request(buf_head(&c->in), c->in.len, HTTPD_MAX_HEAD, &m);
        if (r == HTTP_INCOMPLETE)
            return;
        if (r < 0) {
            send_simple(c, -r);
            return;
        }
        if (m.body == HTTP_BODY_CHUNKED) {
            send_simple(c, 411);
            return;
        }
        if (m.content_length > HTTPD_MAX_BODY) {
            send_simple(c, 413);
            return;
        }
        size_t total = m.head_len + (size_t)m.content_length;
        if (c->in.len < total)
            return;
        c->keep_alive = m.keep_alive;
        dispatch(c, &m);
        buf_consume(&c->in, total);
    }
}

static void conn_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct httpd_conn *c = w->data;
    c->in_cb = true;
    if ((revents & EV_WRITE) && c->rd_want_write)
        revents |= EV_READ;
    /* Over TLS, read until the socket has no more: decrypted bytes may wait inside OpenSSL. */
    for (bool more = revents & EV_READ; more && !c->pending && !c->closing;) {
        char *d = buf_reserve(&c->in, 16384);
        if (!d) {
            send_simple(c, 413);
            break;
        }
        int want;
        ssize_t n = tls_sock_read(c->fd, c->ssl, d, 16384, &want);
        c->rd_want_write = n < 0 && errno == EAGAIN && want == EV_WRITE;
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            conn_close(c);
            return;
        }
        if (n > 0) {
            buf_commit(&c->in, (size_t)n);
            ev_timer_again(loop, &c->timer);
            conn_process(c);
        }
        more = c->ssl && n > 0;
    }
    c->in_cb = false;
    if (c->dead)
        return;
    if (conn_flush(c) < 0)
        conn_close(c);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    conn_close(w->data);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct httpd *s = w->data;
    for (int i = 0; i < 64; i++) {
        int fd = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        struct httpd_conn *c = xcalloc(1, sizeof *c);
        c->srv = s;
        c->fd = fd;
        c->ssl = s->tls ? tls_server_ssl(s->tls, fd) : NULL;
        buf_init(&c->in, HTTPD_MAX_HEAD + HTTPD_MAX_BODY);
        buf_init(&c->out, 64u << 20);
        ev_io_init(&c->io, conn_cb, fd, EV_READ);
        c->io.data = c;
        ev_init(&c->timer, timer_cb);
        c->timer.repeat = HTTPD_IDLE_S;
        c->timer.data = c;
        ev_timer_again(loop, &c->timer);
        ev_io_start(loop, &c->io);
        c->next = s->conns;
        if (s->conns)
            s->conns->prev = c;
        s->conns = c;
    }
}

/* ---- routes ---- */

/* True when <method> is one of <methods> ("GET|HEAD"; NULL: any). */
static bool method_in(const char *methods, const char *method)
{
    if (!methods)
        return true;
    size_t n = strlen(method);
    for (const char *p = methods; *p;) {
        const char *bar = strchr(p, '|');
        size_t l = bar ? (size_t)(bar - p) : strlen(p);
        if (l == n && strncmp(p, method, n) == 0)
            return true;
        p += l + (bar != NULL);
    }
    return false;
}

/* True when the request's segments have the shape of <path>. */
static bool path_matches(const char *path, const struct httpd_req *r)
{
    int i = 0;
    for (const char *p = path; *p;) {
        if (*p == '/')
            p++;
        const char *slash = strchr(p, '/');
        size_t l = slash ? (size_t)(slash - p) : strlen(p);
        if (l == 2 && strncmp(p, "**", 2) == 0)
            return true;
        if (i >= r->nsegs)
            return false;
        if (!(l == 2 && strncmp(p, "{}", 2) == 0) && (strlen(r->segs[i]) != l || strncmp(p, r->segs[i], l) != 0))
            return false;
        i++;
        p += l;
    }
    return i == r->nsegs;
}

static void serve_builtin_health(struct httpd *s, struct httpd_req *r)
{
    json_t *body = json_pack("{s:s}", "status", "ok");
    int status = s->svc->health ? s->svc->health(s->arg, body) : 200;
    httpd_respond_json(r, status, body);
}

static void route(struct httpd_req *r, void *arg)
{
    struct httpd *s = arg;
    const struct httpd_service *svc = s->svc;
    bool get = r->method_id == HTTP_M_GET;
    if (get && r->nsegs == 1 && strcmp(r->segs[0], "healthz") == 0) {
        serve_builtin_health(s, r);
        return;
    }
    if (get && r->nsegs == 1 && strcmp(r->segs[0], "metrics") == 0 && svc->metrics) {
        struct buf b;
        buf_init(&b, 64u << 20);
        svc->metrics(s->arg, &b);
        httpd_respond(r, 200, "text/plain; version=0.0.4", b.len ? buf_head(&b) : "", b.len);
        buf_free(&b);
        return;
    }
    char allow[128] = "";
    for (const struct httpd_route *rt = svc->routes; rt && rt->path; rt++) {
        if (!path_matches(rt->path, r))
            continue;
        if (method_in(rt->methods, r->method)) {
            rt->fn(r, s->arg);
            return;
        }
        /* Collects the methods this path takes ("GET|PUT" becomes "GET, PUT"). */
        size_t n = strlen(allow);
        for (const char *p = rt->methods; *p && n + 3 < sizeof allow; p++)
            n += (size_t)snprintf(allow + n, sizeof allow - n, "%s", *p == '|' ? ", " : (const char[]){*p, 0});
        snprintf(allow + n, sizeof allow - n, ", ");
    }
    if (*allow) {
        allow[strlen(allow) - 2] = 0;
        struct httpd_conn *c = r->conn;
        snprintf(c->allow, sizeof c->allow, "%s", allow);
        httpd_respond_error(r, 405, "MethodNotAllowed", "%s is not allowed on %s (allowed: %s)", r->method, r->path,
                            allow);
        return;
    }
    httpd_respond_error(r, 404, "NotFound", "no such endpoint: %s %s", r->method, r->path);
}

static int serve_authz(const struct httpd_req *req, void *arg)
{
    struct httpd *s = arg;
    return auth_allow(s->svc->tokens(s->arg), req->bearer, req->method);
}

struct httpd *httpd_serve(struct ev_loop *loop, const char *listen, const struct httpd_service *svc, void *arg,
                          char **err)
{
    struct httpd *s = httpd_start(loop, listen, route, NULL, err);
    if (s) {
        s->svc = svc;
        s->arg = arg;
        s->handler = route;
        if (svc->tokens)
            httpd_set_authz(s, serve_authz, s);
    }
    return s;
}

struct httpd *httpd_start(struct ev_loop *loop, const char *listen, httpd_handler h, void *arg, char **err)
{
    struct net_addr a;
    if (net_parse_addr(listen, &a) < 0) {
        cfg_error(err, NULL, "admin listen address \"%s\" is not IP:PORT", listen);
        return NULL;
    }
    int fd = net_listen_tcp(&a, 128, false);
    if (fd < 0) {
        cfg_error(err, NULL, "cannot listen on %s: %s", listen, strerror(errno));
        return NULL;
    }
    struct httpd *s = xcalloc(1, sizeof *s);
    s->loop = loop;
    s->fd = fd;
    s->handler = h;
    s->arg = arg;
    ev_io_init(&s->accept_io, accept_cb, fd, EV_READ);
    s->accept_io.data = s;
    ev_io_start(loop, &s->accept_io);
    return s;
}

int httpd_use_tls(struct httpd *s, const char *cert, const char *key, char **err)
{
    struct tls_cert_conf cc = {(char *)cert, (char *)key};
    struct tls_server *tls = tls_server_new(&cc, 1, NULL, NULL, err);
    if (!tls)
        return -1;
    tls_server_unref(s->tls);
    s->tls = tls;
    return 0;
}

void httpd_set_authz(struct httpd *s, httpd_authz fn, void *arg)
{
    s->authz = fn;
    s->authz_arg = arg;
}

int httpd_port(const struct httpd *s)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(s->fd, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    return ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                          : ((struct sockaddr_in *)&ss)->sin_port);
}

void httpd_stop(struct httpd *s)
{
    if (!s)
        return;
    ev_io_stop(s->loop, &s->accept_io);
    close(s->fd);
    while (s->conns) {
        struct httpd_conn *c = s->conns;
        c->pending = false; /* the loop is going away; nobody will respond */
        conn_free(c);
    }
    tls_server_unref(s->tls);
    free(s);
}

void httpd_respond(struct httpd_req *req, int status, const char *content_type, const char *body, size_t len)
{
    struct httpd_conn *c = req->conn;
    c->pending = false;
    if (c->dead) {
        conn_free(c);
        return;
    }
    buf_printf(&c->out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s%s%s%s\r\n", status,
               http_status_text(status), content_type, len, status == 401 ? "WWW-Authenticate: Bearer\r\n" : "",
               *c->allow ? "Allow: " : "", c->allow, *c->allow ? "\r\n" : "", c->keep_alive ? "" : "Connection: close\r\n");
    c->allow[0] = 0;
    if (buf_append(&c->out, body, len) < 0)
        c->closing = true;
    if (!c->keep_alive)
        c->closing = true;
    free(c->reqcopy);
    c->reqcopy = NULL;
    if (c->in_cb)
        return;
    /* Answered later: serve pipelined requests, then flush, as conn_cb would. */
    c->in_cb = true;
    conn_process(c);
    c->in_cb = false;
    if (conn_flush(c) < 0)
        conn_close(c);
}

void httpd_respond_json(struct httpd_req *req, int status, json_t *body)
{
    char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!s) {
        static const char msg[] = "{\"error\":{\"code\":\"InternalError\",\"message\":\"response could not be encoded\"}}\n";
        httpd_respond(req, 500, "application/json", msg, sizeof msg - 1);
        return;
    }
    size_t n = strlen(s);
    s = xrealloc(s, n + 2);
    s[n++] = '\n';
    httpd_respond(req, status, "application/json", s, n);
    free(s);
}

void httpd_respond_error(struct httpd_req *req, int status, const char *code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    httpd_respond_json(req, status, json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg));
}

const char *httpd_query_param(const struct httpd_req *req, const char *name, char *dst, size_t size)
{
    size_t nl = strlen(name);
    for (const char *p = req->query; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
            snprintf(dst, size, "%.*s", (int)(len - nl - 1), p + nl + 1);
            pct_decode(dst, true);
            return dst;
        }
        p = amp ? amp + 1 : NULL;
    }
    return NULL;
}

json_t *httpd_body_json(struct httpd_req *req)
{
    json_error_t je;
    json_t *v = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &je);
    if (!v)
        httpd_respond_error(req, 400, "InvalidParameter", "request body is not valid JSON: %s (line %d, column %d)",
                            je.text, je.line, je.column);
    return v;
}
