/* client.c -- client connections: reading and parsing requests, routing them, and relaying each
 * exchange between the client and an upstream connection (upstream.c) to the target a group picked
 * (tgroup.c). Everything that happens to a connection ends in pump(), which decides what comes next;
 * whether a target failed is decided in one place (upstream_failed). */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "berth/alloc.h"
#include "berth/log.h"
#include "berth/util.h"
#include "client.h"
#include "listener.h"
#include "proxy.h"
#include "stats.h"
#include "tgroup.h"
#include "upstream.h"

#define READ_CHUNK 32768
#define OUT_HIGH (256u * 1024)   /* stop reading the other side above this */
#define BUF_CAP (4u << 20)
#define MAX_RESP_HEAD 65536
#define PIPELINE_MAX 65536 /* read ahead at most this much while a request is in progress */

enum { REQ_HEAD, REQ_BODY, REQ_DONE };
enum { RESP_NONE, RESP_HEAD, RESP_BODY, RESP_DONE };

struct proxy_conn {
    struct proxy *px;
    struct proxy_listener *ln;
    struct proxy_conn *next, *prev;
    int fd;
    ev_io io;
    struct proxy_ready ready;
    ev_timer timer;
    struct sockaddr_storage peer;
    char peer_ip[INET6_ADDRSTRLEN];
    unsigned char peer_ip_len;
    struct buf in, out, head;
    double last_activity, head_deadline;
    unsigned nreq;
    unsigned char req_state, resp_state;
    bool head_started, closing, close_after, tunnel, keep_alive, retryable, websocket;
    bool rd_eof; /* the client half-closed: answer what it sent, then close */
    bool lingering; /* answered and shut down for writing; reading what the client still sends */
    uint32_t linger_bytes;
    enum http_method method;
    int minor;
    enum http_body_kind req_body, resp_body;
    uint64_t req_left, resp_left;
    struct http_chunked req_chunk, resp_chunk;
    bool resp_keep_alive;
    unsigned char tries, races; /* retries after target failures / keep-alive races */
    int status;
    double t_start;
    uint64_t bytes_out;
    struct proxy_tg *tg;
    struct proxy_target *target;
    struct proxy_upstream *up;
    json_t *log;
};

static int pump(struct proxy_conn *c);

/* ---- the upstream side of an exchange ---- */

/* Detaches the client's upstream connection: back to its target's pool when <reuse> (and the target
 * still takes pooled connections), else closed. The one way an exchange lets go of its upstream. */
static void detach_upstream(struct proxy_conn *c, bool reuse)
{
    struct proxy_upstream *up = c->up;
    if (!up)
        return;
    c->up = NULL;
    upstream_release(up, reuse && up->connected && c->target && proxy_target_poolable(c->target));
}

static void up_event(void *arg)
{
    pump(arg);
}

/* The upstream's timer: the connect timeout, then the response timeout, which runs from the end of
 * the request: while the client is still sending (and all it sent has gone out), the client's idle
 * timeout governs instead. */
static void up_timeout(void *arg)
{
    struct proxy_conn *c = arg;
    struct proxy_upstream *up = c->up;
    double limit = up->connected ? up->response_timeout_s : up->connect_timeout_s;
    double left = up->last_activity + limit - ev_now(c->px->loop);
    if (up->connected && c->req_state == REQ_BODY && up->out.len == 0)
        left = limit;
    if (up->connected && left > 0.001) {
        upstream_arm(up, left);
        return;
    }
    up->timed_out = true;
    up->err = ETIMEDOUT;
    pump(c);
}

/* ---- client connections ---- */

static void conn_io_cb(struct ev_loop *loop, ev_io *w, int revents);
static void conn_ready(struct proxy_ready *r, int revents);
static void conn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);

static void exchange_end(struct proxy_conn *c);

static void conn_free(struct proxy_conn *c, const char *reason)
{
    struct proxy *px = c->px;
    log_debug("closing client connection: %s", reason);
    proxy_ready_remove(&c->ready);
    detach_upstream(c, false);
    if (c->target || c->log)
        exchange_end(c);
    ev_io_stop(px->loop, &c->io);
    ev_timer_stop(px->loop, &c->timer);
    close(c->fd);
    buf_free(&c->in);
    buf_free(&c->out);
    buf_free(&c->head);
    if (c->prev)
        c->prev->next = c->next;
    else
        px->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    px->conns_active--;
    struct proxy_listener *ln = c->ln;
    ln->nconns--;
    proxy_listener_resume(ln);
    proxy_listener_unref(ln);
    free(c);
    if (px->shutting_down && px->conns_active == 0)
        ev_break(px->loop, EVBREAK_ALL);
}

void proxy_conn_accept(struct proxy_listener *ln, int fd, const struct sockaddr *sa)
{
    struct proxy *px = ln->px;
    struct proxy_conn *c = xcalloc(1, sizeof *c);
    c->px = px;
    c->ln = ln;
    ln->refs++;
    ln->nconns++;
    c->fd = fd;
    memcpy(&c->peer, sa, sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    net_format_ip(sa, c->peer_ip, sizeof c->peer_ip);
    c->peer_ip_len = (unsigned char)strlen(c->peer_ip);
    size_t cap = (size_t)ln->conf.max_header_bytes + 2 * READ_CHUNK;
    buf_init(&c->in, cap < BUF_CAP ? BUF_CAP : cap);
    buf_init(&c->out, BUF_CAP);
    buf_init(&c->head, (size_t)ln->conf.max_header_bytes * 2 + 4096);
    c->last_activity = ev_now(px->loop);
    ev_io_init(&c->io, conn_io_cb, fd, EV_READ);
    c->ready.fn = conn_ready;
    c->io.data = c;
    ev_timer_init(&c->timer, conn_timer_cb, ln->conf.header_timeout_s, 0);
    c->timer.data = c;
    ev_io_start(px->loop, &c->io);
    ev_timer_start(px->loop, &c->timer);
    c->next = px->conns;
    if (px->conns)
        px->conns->prev = c;
    px->conns = c;
    px->conns_active++;
    px->conns_total++;
}

void proxy_conns_close(struct proxy *px, bool all)
{
    for (struct proxy_conn *c = px->conns, *next; c; c = next) {
        next = c->next;
        if (all || (c->req_state == REQ_HEAD && c->resp_state == RESP_NONE && c->in.len == 0 && c->out.len == 0))
            conn_free(c, "shutting down");
    }
}

/* ---- responses generated by the proxy ---- */

static void respond(struct proxy_conn *c, int status, const char *ctype, const char *body, size_t blen,
                    const char *extra)
{
    c->status = status;
    if (c->req_state != REQ_DONE)
        c->close_after = true; /* the rest of the request cannot be framed any more */
    bool close = c->close_after || !c->keep_alive;
    buf_printf(&c->out, "HTTP/1.1 %d %s\r\nServer: berth\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s\r\n",
               status, http_status_text(status), ctype, blen, extra ? extra : "", close ? "Connection: close\r\n" : "");
    if (c->method != HTTP_M_HEAD)
        buf_append(&c->out, body, blen);
    c->bytes_out += blen;
    c->req_state = REQ_DONE;
    c->resp_state = RESP_DONE;
}

static void respond_error(struct proxy_conn *c, int status)
{
    char body[128];
    int n = snprintf(body, sizeof body, "%d %s\n", status, http_status_text(status));
    if (status >= 500 || status == 408 || status == 400 || status == 431 || status == 413)
        c->close_after = c->close_after || status < 500;
    respond(c, status, "text/plain", body, (size_t)n, NULL);
}

/* ---- request start ---- */

/* Splits the port off <h> (minding "[v6]:port") and one trailing dot off the name, for matching. */
static void match_host(const char *h, size_t n, struct proxy_reqinfo *ri)
{
    for (size_t i = n; i-- > 0;) {
        if (h[i] == ']')
            break;
        if (h[i] == ':') {
            n = i;
            break;
        }
    }
    if (n > 1 && h[n - 1] == '.')
        n--;
    ri->host = h;
    ri->host_len = n;
}

/* Fills <ri> for routing and forwarding, normalising the request target in place (it lives in the
 * connection's input buffer). Returns 0, or the status to refuse the request with. One view of the
 * request serves both: the rules match exactly the host and path the target receives. */
static int reqinfo_fill(struct proxy_conn *c, const struct http_msg *m, struct proxy_reqinfo *ri)
{
    memset(ri, 0, sizeof *ri);
    ri->m = m;
    ri->peer = (const struct sockaddr *)&c->peer;
    char *t = (char *)m->target; /* c->in is ours to write */
    size_t tl = m->target_len;
    if (tl > 0 && t[0] != '/' && !(tl == 1 && t[0] == '*')) {
        /* absolute-form (RFC 9112 §3.2.2): the authority replaces Host, and is what is forwarded. */
        size_t skip = tl > 7 && strncasecmp(t, "http://", 7) == 0    ? 7
                      : tl > 8 && strncasecmp(t, "https://", 8) == 0 ? 8
                                                                     : 0;
        if (!skip)
            return 400;
        size_t a = skip;
        while (a < tl && t[a] != '/' && t[a] != '?')
            a++;
        if (!http_host_valid(t + skip, a - skip))
            return 400; /* also userinfo ("user@host"), which RFC 9110 §4.2.4 forbids */
        ri->authority = t + skip;
        ri->authority_len = a - skip;
        t += a;
        tl -= a;
    } else if (m->host_idx >= 0) {
        const struct http_header *h = &m->headers[m->host_idx];
        if (!http_host_valid(h->value, h->value_len))
            return 400;
        ri->authority = h->value;
        ri->authority_len = h->value_len;
    } else {
        /* HTTP/1.0 without Host: the target still gets one (HTTP/1.1 requires it). */
        ri->authority = c->ln->conf.listen;
        ri->authority_len = strlen(c->ln->conf.listen);
    }
    match_host(ri->authority, ri->authority_len, ri);
    char *q = memchr(t, '?', tl);
    size_t plen = q ? (size_t)(q - t) : tl;
    ri->has_query = q != NULL;
    ri->query = q ? q + 1 : t + tl;
    ri->query_len = q ? tl - plen - 1 : 0;
    if (plen == 0) {
        ri->path = "/", ri->path_len = 1;
    } else {
        ssize_t n = http_normalize_path(t, plen);
        if (n < 0)
            return 400;
        ri->path = t;
        ri->path_len = (size_t)n;
    }
    return 0;
}

/* Appends one Transfer-Encoding line carrying every coding of <m>'s Transfer-Encoding fields, in
 * order: the body passes through still coded, so the codings must go with it. */
static void append_te(struct buf *b, const struct http_msg *m)
{
    if (!m->te_coded) {
        BUF_LIT(b, "Transfer-Encoding: chunked\r\n");
        return;
    }
    BUF_LIT(b, "Transfer-Encoding: ");
    bool first = true;
    for (unsigned i = 0; i < m->num_headers; i++)
        if (http_header_is(&m->headers[i], "transfer-encoding") && m->headers[i].value_len) {
            if (!first)
                BUF_LIT(b, ", ");
            buf_append(b, m->headers[i].value, m->headers[i].value_len);
            first = false;
        }
    BUF_LIT(b, "\r\n");
}

/* Writes the request head for the target into c->head. */
static void build_upstream_head(struct proxy_conn *c, const struct proxy_reqinfo *ri, const char *request_id)
{
    const struct http_msg *m = ri->m;
    struct buf *b = &c->head;
    const char *ip = c->peer_ip;
    b->len = 0;
    b->off = 0;
    if (!b->data)
        buf_borrow(b, c->px->scratch_head, sizeof c->px->scratch_head);
    buf_append(b, m->method, m->method_len);
    BUF_LIT(b, " ");
    buf_append(b, ri->path, ri->path_len);
    if (ri->has_query) {
        BUF_LIT(b, "?");
        buf_append(b, ri->query, ri->query_len);
    }
    BUF_LIT(b, " HTTP/1.1\r\nHost: ");
    buf_append(b, ri->authority, ri->authority_len);
    BUF_LIT(b, "\r\n");
    bool has_xff = false;
    for (unsigned i = 0; i < m->num_headers; i++) {
        const struct http_header *h = &m->headers[i];
        if ((int)i == m->host_idx || http_is_hop_by_hop(m, h))
            continue;
        if ((h->name[0] | 0x20) == 'x') {
            if (http_header_is(h, "x-forwarded-for")) {
                has_xff = true;
                continue; /* merged into one line below */
            }
            if (http_header_is(h, "x-forwarded-proto") || http_header_is(h, "x-forwarded-port") ||
                http_header_is(h, "x-request-id"))
                continue;
        }
        buf_append(b, h->name, h->name_len);
        BUF_LIT(b, ": ");
        buf_append(b, h->value, h->value_len);
        BUF_LIT(b, "\r\n");
    }
    /* X-Forwarded-For: every earlier hop in order, then this client. */
    BUF_LIT(b, "X-Forwarded-For: ");
    for (unsigned i = 0; has_xff && i < m->num_headers; i++)
        if (http_header_is(&m->headers[i], "x-forwarded-for")) {
            buf_append(b, m->headers[i].value, m->headers[i].value_len);
            BUF_LIT(b, ", ");
        }
    buf_append(b, ip, c->peer_ip_len);
    BUF_LIT(b, "\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Port: ");
    buf_append(b, c->ln->port_str, strlen(c->ln->port_str));
    BUF_LIT(b, "\r\nX-Request-Id: ");
    buf_append(b, request_id, strlen(request_id));
    BUF_LIT(b, "\r\n");
    if (m->body == HTTP_BODY_CHUNKED)
        append_te(b, m);
    if (c->websocket)
        BUF_LIT(b, "Connection: upgrade\r\nUpgrade: websocket\r\n");
    BUF_LIT(b, "\r\n");
}

static int attach_upstream(struct proxy_conn *c)
{
    struct proxy *px = c->px;
    struct proxy_target *t = c->target;
    const struct proxy_tg_conf *tc = t->tg ? &t->tg->conf : NULL;
    struct proxy_upstream *up = upstream_acquire(px, &t->pool, &t->addr, tc ? tc->connect_timeout_s : 5,
                                                 tc ? tc->response_timeout_s : 60, c, up_event, up_timeout);
    if (!up) {
        proxy_target_conn_failed(t, strerror(errno));
        return -1;
    }
    c->up = up;
    if (!up->out.data)
        buf_borrow(&up->out, px->scratch_up_out, sizeof px->scratch_up_out);
    buf_append(&up->out, buf_head(&c->head), c->head.len);
    return 0;
}

static void set_target(struct proxy_conn *c, struct proxy_target *t)
{
    if (c->target)
        proxy_target_request_done(c->target);
    c->target = t;
    if (t)
        proxy_target_request_start(t, util_now());
}

/* Picks targets until one gets a connection; -1 when none could. */
static int connect_some_target(struct proxy_conn *c, struct proxy_target *avoid)
{
    double now = util_now();
    for (int attempt = 0; attempt < 3; attempt++) {
        struct proxy_target *t = proxy_tg_pick(c->tg, avoid, now);
        if (!t)
            return -1;
        set_target(c, t);
        if (attach_upstream(c) == 0)
            return 0;
        avoid = t;
    }
    return -1;
}

static void log_start(struct proxy_conn *c, const struct proxy_reqinfo *ri, const char *rid)
{
    const struct http_msg *m = ri->m;
    c->log = json_pack("{s:s,s:s%,s:s%,s:s%,s:s,s:s}", "client", c->peer_ip, "method", m->method, (size_t)m->method_len,
                       "path", m->target, (size_t)m->target_len, "host", ri->host, ri->host_len, "request_id", rid,
                       "listener", c->ln->conf.name);
}

static int start_exchange(struct proxy_conn *c, const struct http_msg *m)
{
    struct proxy *px = c->px;
    c->nreq++;
    px->requests_total++;
    c->t_start = ev_now(px->loop);
    c->method = m->method_id;
    c->minor = m->minor_version;
    c->keep_alive = m->keep_alive && !px->shutting_down && !c->ln->removed;
    c->websocket = m->upgrade_websocket;
    c->tries = c->races = 0;
    c->status = 0;
    c->bytes_out = 0;
    c->req_body = m->body;
    c->req_left = m->content_length;
    http_chunked_init(&c->req_chunk);
    c->req_state = m->body == HTTP_BODY_NONE ? REQ_DONE : REQ_BODY;
    c->resp_state = RESP_NONE;
    c->resp_keep_alive = false;
    c->head_started = false;

    struct proxy_reqinfo ri;
    /* CONNECT makes a tunnel, which a reverse proxy does not offer (nor does ALB): 405 and close,
     * so no tunnel ever reaches a pooled target connection (RFC 9110 §9.3.6). */
    int refuse = m->method_id == HTTP_M_CONNECT ? 405 : reqinfo_fill(c, m, &ri);
    if (refuse) {
        px->bad_requests++;
        c->keep_alive = false;
        c->close_after = true;
        buf_consume(&c->in, m->head_len);
        respond_error(c, refuse);
        return 0;
    }
    char rid[40];
    int rid_idx = -1;
    for (unsigned i = 0; i < m->num_headers; i++)
        if (http_header_is(&m->headers[i], "x-request-id") && m->headers[i].value_len < sizeof rid)
            rid_idx = (int)i;
    if (rid_idx >= 0)
        snprintf(rid, sizeof rid, "%.*s", (int)m->headers[rid_idx].value_len, m->headers[rid_idx].value);
    else
        util_random_id(rid);
    if (px->access_log)
        log_start(c, &ri, rid);

    size_t route = proxy_route_index(&c->ln->conf, &ri);
    const struct proxy_action *act =
        route < c->ln->conf.nrules ? &c->ln->conf.rules[route].action : &c->ln->conf.default_action;
    if (act->kind == ACT_FIXED) {
        px->fixed_responses++;
        buf_consume(&c->in, m->head_len);
        respond(c, act->status, act->content_type, act->body, strlen(act->body), NULL);
        return 0;
    }
    if (act->kind == ACT_REDIRECT) {
        struct buf loc;
        buf_init(&loc, 16384);
        BUF_LIT(&loc, "Location: ");
        proxy_redirect_expand(act->location, &ri, c->ln->port, &loc);
        BUF_LIT(&loc, "\r\n\0");
        px->redirects++;
        buf_consume(&c->in, m->head_len);
        respond(c, act->status, "text/plain", "", 0, buf_head(&loc));
        buf_free(&loc);
        return 0;
    }
    if (m->body == HTTP_BODY_CHUNKED) {
        /* Validate the chunk framing already received before anything of the
         * request reaches a target. */
        struct http_chunked probe;
        bool done;
        http_chunked_init(&probe);
        if (http_chunked_scan(&probe, buf_head(&c->in) + m->head_len, c->in.len - m->head_len, &done) < 0) {
            px->bad_requests++;
            respond_error(c, 400);
            return 0;
        }
    }
    struct proxy_tg *tg = proxy_route_pick(proxy_listener_route(c->ln, route));
    build_upstream_head(c, &ri, rid);
    buf_consume(&c->in, m->head_len);
    c->tg = tg;
    tg->refs++;
    if (tg->ntargets == 0) {
        respond_error(c, 503);
        return 0;
    }
    c->retryable = http_method_idempotent(m->method_id) && m->body == HTTP_BODY_NONE && !c->websocket;
    c->resp_state = RESP_HEAD;
    if (connect_some_target(c, NULL) < 0) {
        c->resp_state = RESP_NONE;
        respond_error(c, 502);
    }
    return 0;
}

/* ---- relay ---- */

/* Moves request body bytes from the client to the upstream; -1 on bad framing. */
static int relay_request_body(struct proxy_conn *c)
{
    struct proxy_upstream *up = c->up;
    while (c->req_state == REQ_BODY && c->in.len && (!up || up->out.len < OUT_HIGH)) {
        size_t n = c->in.len;
        if (c->req_body == HTTP_BODY_LENGTH) {
            if (n > c->req_left)
                n = (size_t)c->req_left;
            c->req_left -= n;
            if (c->req_left == 0)
                c->req_state = REQ_DONE;
        } else {
            bool done;
            ssize_t k = http_chunked_scan(&c->req_chunk, buf_head(&c->in), n, &done);
            if (k < 0)
                return -1;
            n = (size_t)k;
            if (done)
                c->req_state = REQ_DONE;
        }
        if (up)
            buf_append(&up->out, buf_head(&c->in), n);
        buf_consume(&c->in, n);
    }
    return 0;
}

/* Writes the response head for the client from the parsed upstream head. */
static void write_response_head(struct proxy_conn *c, const struct http_msg *m)
{
    struct buf *b = &c->out;
    char st[4] = {(char)('0' + m->status / 100), (char)('0' + m->status / 10 % 10), (char)('0' + m->status % 10), ' '};
    BUF_LIT(b, "HTTP/1.1 ");
    buf_append(b, st, 4);
    buf_append(b, m->reason, m->reason_len);
    BUF_LIT(b, "\r\n");
    for (unsigned i = 0; i < m->num_headers; i++) {
        const struct http_header *h = &m->headers[i];
        if (http_is_hop_by_hop(m, h))
            continue;
        buf_append(b, h->name, h->name_len);
        BUF_LIT(b, ": ");
        buf_append(b, h->value, h->value_len);
        BUF_LIT(b, "\r\n");
    }
    if (m->status == 101) {
        BUF_LIT(b, "Connection: upgrade\r\nUpgrade: websocket\r\n\r\n");
        return;
    }
    if (m->status < 200) {
        BUF_LIT(b, "\r\n");
        return;
    }
    /* An HTTP/1.0 client cannot read chunked framing: it gets the decoded
     * body, delimited by the connection close (keep_alive is off then). */
    if (m->has_te && c->minor == 1)
        append_te(b, m);
    if (!c->keep_alive || c->close_after)
        BUF_LIT(b, "Connection: close\r\n");
    else if (c->minor == 0)
        BUF_LIT(b, "Connection: keep-alive\r\n");
    BUF_LIT(b, "\r\n");
}

/* Handles an upstream that failed before a response; returns 0 if retried. */
static int upstream_failed(struct proxy_conn *c, const char *why)
{
    struct proxy_upstream *up = c->up;
    bool timed_out = up->timed_out, reused = up->reused, sent_nothing = !up->got_bytes;
    bool connected = up->connected;
    struct proxy_target *failed = c->target;
    detach_upstream(c, false);
    /* A reused keep-alive connection closing under us is usually the
     * target's idle timeout (a race, not a failure): it has its own small
     * retry budget. Anything else is a target failure, retried once on
     * another target (idempotent requests only, RFC 9110 §9.2.2). */
    bool race = reused && sent_nothing && !timed_out;
    if (!race)
        proxy_target_conn_failed(failed, why);
    bool budget = race ? c->races < 3 : c->tries < 1;
    if (c->resp_state == RESP_HEAD && sent_nothing && c->retryable && budget && !(timed_out && connected)) {
        if (race)
            c->races++;
        else
            c->tries++;
        log_debug("retrying request after %s: %s", failed->addr_str, why);
        if (connect_some_target(c, failed) == 0)
            return 0;
    }
    if (c->resp_state == RESP_HEAD) {
        c->resp_state = RESP_NONE;
        respond_error(c, timed_out ? 504 : 502);
        return 0;
    }
    return -1;
}

static void append_decoded(void *arg, const char *p, size_t n)
{
    buf_append(arg, p, n);
}

/* The target's answer cannot be relayed: its connection is closed (never pooled) and the client
 * gets 502 on a connection that closes. Returns 0 for relay_response. */
static int bad_gateway(struct proxy_conn *c)
{
    if (c->up)
        c->up->got_bytes = true;
    detach_upstream(c, false);
    c->resp_state = RESP_NONE;
    c->close_after = true;
    respond_error(c, 502);
    return 0;
}

/* Moves response bytes from the upstream to the client; -1 to abort. */
static int relay_response(struct proxy_conn *c)
{
    struct proxy_upstream *up = c->up;
    while (up && c->resp_state == RESP_HEAD && up->in.len) {
        struct http_msg m;
        int r = http_parse_response(buf_head(&up->in), up->in.len, MAX_RESP_HEAD, c->method, &m);
        if (r == HTTP_INCOMPLETE)
            break;
        if (r < 0) {
            log_warn("target %s sent a malformed response", c->target->addr_str);
            return bad_gateway(c);
        }
        proxy_target_conn_ok(c->target);
        if (m.status == 101) {
            if (!c->websocket) {
                log_warn("target %s switched protocols unasked", c->target->addr_str);
                return bad_gateway(c);
            }
            c->status = 101;
            write_response_head(c, &m);
            buf_consume(&up->in, (size_t)r);
            c->tunnel = true;
            c->resp_state = RESP_BODY;
            c->req_state = REQ_DONE;
            break;
        }
        if (m.status < 200) {
            if (c->minor == 1)
                write_response_head(c, &m);
            buf_consume(&up->in, (size_t)r);
            continue;
        }
        if (m.te_coded && c->minor == 0) {
            /* An HTTP/1.0 client cannot undo a transfer coding (RFC 9112 §6.1). */
            log_warn("target %s sent a transfer coding an HTTP/1.0 client cannot read", c->target->addr_str);
            return bad_gateway(c);
        }
        c->status = m.status;
        c->resp_body = m.body;
        c->resp_left = m.content_length;
        /* A response that has no body (to HEAD; 204, 304) but announces one may be followed by the
         * body anyway, late, where it would read as the next response: such a connection is not
         * reused, whatever the timing. */
        c->resp_keep_alive = m.keep_alive && !(m.body == HTTP_BODY_NONE && (m.has_te || m.content_length > 0));
        http_chunked_init(&c->resp_chunk);
        if (m.body == HTTP_BODY_EOF || (m.body == HTTP_BODY_CHUNKED && c->minor == 0))
            c->keep_alive = false;
        write_response_head(c, &m);
        buf_consume(&up->in, (size_t)r);
        c->resp_state = m.body == HTTP_BODY_NONE ? RESP_DONE : RESP_BODY;
    }
    if (up && c->resp_state == RESP_HEAD && up->in.len >= MAX_RESP_HEAD)
        return bad_gateway(c);
    if (c->tunnel) {
        if (up->in.len && c->out.len < OUT_HIGH) {
            buf_append(&c->out, buf_head(&up->in), up->in.len);
            buf_consume(&up->in, up->in.len);
        }
        if (c->in.len && up->out.len < OUT_HIGH) {
            buf_append(&up->out, buf_head(&c->in), c->in.len);
            buf_consume(&c->in, c->in.len);
        }
        return 0;
    }
    while (up && c->resp_state == RESP_BODY && up->in.len && c->out.len < OUT_HIGH) {
        size_t n = up->in.len;
        if (c->resp_body == HTTP_BODY_LENGTH) {
            if (n > c->resp_left)
                n = (size_t)c->resp_left;
            c->resp_left -= n;
            if (c->resp_left == 0)
                c->resp_state = RESP_DONE;
        } else if (c->resp_body == HTTP_BODY_CHUNKED) {
            bool done;
            size_t before = c->out.len;
            ssize_t k = http_chunked_decode(&c->resp_chunk, buf_head(&up->in), n, &done,
                                            c->minor == 0 ? append_decoded : NULL, &c->out);
            if (k < 0) {
                log_warn("target %s sent malformed chunked framing", c->target->addr_str);
                return -1;
            }
            n = (size_t)k;
            if (done)
                c->resp_state = RESP_DONE;
            if (c->minor == 0) {
                c->bytes_out += c->out.len - before;
                buf_consume(&up->in, n);
                continue;
            }
        }
        buf_append(&c->out, buf_head(&up->in), n);
        buf_consume(&up->in, n);
        c->bytes_out += n;
    }
    return 0;
}

static void exchange_end(struct proxy_conn *c)
{
    struct proxy *px = c->px;
    double dur = ev_now(px->loop) - c->t_start;
    if (c->tg) {
        proxy_stats_observe(c->tg, c->status, dur);
        proxy_tg_unref(c->tg);
        c->tg = NULL;
    }
    if (c->log) {
        json_object_set_new(c->log, "status", json_integer(c->status));
        json_object_set_new(c->log, "duration_ms", json_real((double)(int64_t)(dur * 1e6) / 1e3));
        json_object_set_new(c->log, "bytes_out", json_integer((json_int_t)c->bytes_out));
        if (c->target)
            json_object_set_new(c->log, "target", json_string(c->target->addr_str));
        char ts[40];
        util_rfc3339(util_wall(), ts, sizeof ts);
        json_object_set_new(c->log, "time", json_string(ts));
        char *s = json_dumps(c->log, JSON_COMPACT | JSON_SORT_KEYS);
        if (s)
            proxy_access_log(px, s, strlen(s));
        free(s);
        json_decref(c->log);
        c->log = NULL;
    }
    set_target(c, NULL);
}

/* Called when request and response are both complete. */
static void exchange_finish(struct proxy_conn *c)
{
    detach_upstream(c, c->resp_keep_alive && !c->tunnel);
    exchange_end(c);
    buf_release(&c->head);
    c->req_state = REQ_HEAD;
    c->resp_state = RESP_NONE;
    if (!c->keep_alive || c->close_after)
        c->closing = true;
    c->last_activity = ev_now(c->px->loop);
    /* Between requests the idle timeout governs. */
    c->timer.repeat = c->ln->conf.idle_timeout_s;
    ev_timer_again(c->px->loop, &c->timer);
}

static int conn_flush(struct proxy_conn *c)
{
    while (c->out.len) {
        ssize_t n = send(c->fd, buf_head(&c->out), c->out.len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN)
                break;
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf_consume(&c->out, (size_t)n);
        c->last_activity = ev_now(c->px->loop);
    }
    return 0;
}

static void conn_set_events(struct proxy_conn *c)
{
    struct proxy_upstream *up = c->up;
    /* Reading stays on during an exchange (no epoll_ctl churn per request):
     * pipelined bytes queue up to PIPELINE_MAX, body bytes follow the
     * upstream's backpressure. */
    bool rd = !c->closing && !c->rd_eof;
    if (rd && (c->req_state == REQ_BODY || c->tunnel))
        rd = up && up->out.len < OUT_HIGH;
    else if (rd)
        rd = c->in.len < PIPELINE_MAX;
    int ev = (rd ? EV_READ : 0) | (c->out.len ? EV_WRITE : 0);
    if ((c->io.events & (EV_READ | EV_WRITE)) != ev || !ev_is_active(&c->io)) {
        ev_io_stop(c->px->loop, &c->io);
        ev_io_set(&c->io, c->fd, ev);
        if (ev)
            ev_io_start(c->px->loop, &c->io);
    }
    if (up) {
        bool urd = c->out.len < OUT_HIGH;
        upstream_set_events(up, (urd ? EV_READ : 0) | (!up->connected || up->out.len ? EV_WRITE : 0));
    }
}

#define LINGER_S 2.0
#define LINGER_MAX_BYTES (1u << 20)

/* Lingering close (as nginx's lingering_close): after an error answer the client may still be
 * sending; closing with unread input would reset the connection and could destroy the answer in
 * the client's receive buffer. So: shut down writing, read and discard for a bounded time and
 * amount, then close. */
static void linger_start(struct proxy_conn *c)
{
    struct ev_loop *loop = c->px->loop;
    detach_upstream(c, false);
    shutdown(c->fd, SHUT_WR);
    c->lingering = true;
    buf_free(&c->in);
    ev_io_stop(loop, &c->io);
    ev_io_set(&c->io, c->fd, EV_READ);
    ev_io_start(loop, &c->io);
    ev_timer_stop(loop, &c->timer);
    ev_timer_set(&c->timer, LINGER_S, 0);
    ev_timer_start(loop, &c->timer);
}

/* Reads and discards; frees the connection at EOF, on error or past the byte budget. */
static void linger_read(struct proxy_conn *c)
{
    for (;;) {
        ssize_t n = read(c->fd, c->px->scratch_in, sizeof c->px->scratch_in);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0 || (c->linger_bytes += (uint32_t)n) > LINGER_MAX_BYTES) {
            conn_free(c, "lingering close done");
            return;
        }
    }
}

/* Drives a client connection after any event: parses, relays, flushes and
 * sets the watched events. Returns -1 when the connection was freed. */
static int pump(struct proxy_conn *c)
{
    struct proxy *px = c->px;
    if (!c->out.data)
        buf_borrow(&c->out, px->scratch_out, sizeof px->scratch_out);
again:
    for (int rounds = 0; rounds < 64; rounds++) {
        if (c->req_state == REQ_HEAD && c->resp_state == RESP_NONE && !c->closing) {
            if (c->in.len == 0)
                break;
            if (!c->head_started) {
                c->head_started = true;
                c->head_deadline = ev_now(px->loop) + c->ln->conf.header_timeout_s;
                if (c->nreq > 0) {
                    ev_timer_stop(px->loop, &c->timer);
                    ev_timer_set(&c->timer, c->ln->conf.header_timeout_s, 0);
                    ev_timer_start(px->loop, &c->timer);
                }
            }
            struct http_msg m;
            int r = http_parse_request(buf_head(&c->in), c->in.len, (size_t)c->ln->conf.max_header_bytes, &m);
            if (r == HTTP_INCOMPLETE) {
                if (c->rd_eof)
                    c->closing = true; /* a partial request that can never complete */
                break;
            }
            if (r < 0) {
                px->bad_requests++;
                c->keep_alive = false;
                c->close_after = true;
                c->method = HTTP_M_GET;
                c->t_start = ev_now(px->loop);
                respond_error(c, -r);
                c->in.len = 0;
                exchange_finish(c);
                break;
            }
            start_exchange(c, &m);
        }
        if (c->req_state == REQ_BODY && relay_request_body(c) < 0) {
            px->bad_requests++;
            if (c->resp_state == RESP_HEAD && !(c->up && c->up->got_bytes)) {
                /* Bad framing mid-body: cut the target off so it never sees a
                 * complete malformed request, and answer 400. */
                detach_upstream(c, false);
                c->resp_state = RESP_NONE;
                respond_error(c, 400);
            } else {
                conn_free(c, "malformed request body");
                return -1;
            }
        }
        if (c->up && (c->up->err || c->up->eof) && c->resp_state == RESP_HEAD && c->up->in.len == 0) {
            char why[128];
            snprintf(why, sizeof why, "%s", c->up->err ? strerror(c->up->err) : "connection closed");
            if (upstream_failed(c, why) < 0) {
                conn_free(c, "upstream failed");
                return -1;
            }
            continue;
        }
        if (c->up && relay_response(c) < 0) {
            conn_free(c, "bad upstream framing");
            return -1;
        }
        struct proxy_upstream *up = c->up;
        if (up && (up->err || up->eof) && (up->in.len == 0 || c->resp_state == RESP_HEAD)) {
            if (c->resp_state == RESP_BODY && c->resp_body == HTTP_BODY_EOF && !up->err) {
                c->resp_state = RESP_DONE;
                c->resp_keep_alive = false;
            } else if (c->resp_state == RESP_HEAD) {
                /* Closed or timed out inside the response head. */
                bool to = up->timed_out;
                detach_upstream(c, false);
                c->resp_state = RESP_NONE;
                c->close_after = true;
                respond_error(c, to ? 504 : 502);
            } else if (c->resp_state != RESP_DONE || c->tunnel) {
                if (c->out.len == 0 || c->tunnel) {
                    /* Truncated by the target: the client must see the cut. */
                    conn_free(c, up->timed_out ? "target timed out" : "target closed mid-response");
                    return -1;
                }
                c->closing = true;
                detach_upstream(c, false);
                c->resp_state = RESP_DONE;
                c->req_state = REQ_DONE;
            }
        }
        if (c->resp_state == RESP_DONE && c->req_state != REQ_DONE) {
            /* Target answered before the body was complete: it won't read
             * the rest, so neither connection can be reused. */
            c->close_after = true;
            c->resp_keep_alive = false;
            c->req_state = REQ_DONE;
        }
        if (c->req_state == REQ_DONE && c->resp_state == RESP_DONE && !c->tunnel) {
            exchange_finish(c);
            if (!c->closing && c->in.len)
                continue; /* pipelined request */
            if (c->rd_eof)
                c->closing = true;
        }
        break;
    }
    if (c->up && upstream_flush(c->up) < 0)
        goto again; /* up->err is set now; the loop handles it */
    if (conn_flush(c) < 0) {
        conn_free(c, "client write failed");
        return -1;
    }
    if (c->closing && c->out.len == 0) {
        if (c->close_after && !c->rd_eof) {
            linger_start(c);
            return 0;
        }
        conn_free(c, "done");
        return -1;
    }
    /* Leftovers move from scratch to owned storage; the head is kept only
     * while a retry may still need it. */
    if (!(c->resp_state == RESP_HEAD && c->retryable))
        c->head.len = 0;
    buf_unborrow(&c->head);
    buf_unborrow(&c->in);
    buf_unborrow(&c->out);
    if (c->up) {
        buf_unborrow(&c->up->in);
        buf_unborrow(&c->up->out);
    }
    if (c->req_state == REQ_HEAD && c->resp_state == RESP_NONE && c->in.len == 0) {
        buf_release(&c->in);
        buf_release(&c->out);
        buf_release(&c->head);
    }
    conn_set_events(c);
    return 0;
}

static void conn_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct proxy_conn *c = w->data;
    proxy_ready_push(&c->px->readyq, &c->ready, revents);
}

static void conn_ready(struct proxy_ready *r, int revents)
{
    struct proxy_conn *c = (struct proxy_conn *)(void *)((char *)r - offsetof(struct proxy_conn, ready));
    struct ev_loop *loop = c->px->loop;
    if (c->lingering) {
        linger_read(c);
        return;
    }
    if (revents & EV_READ) {
        if (!c->in.data)
            buf_borrow(&c->in, c->px->scratch_in, sizeof c->px->scratch_in);
        char *d = buf_reserve(&c->in, READ_CHUNK);
        if (!d) {
            if (c->req_state == REQ_HEAD && c->resp_state == RESP_NONE) {
                c->keep_alive = false;
                respond_error(c, 431);
                c->in.len = 0;
                exchange_finish(c);
            }
        } else {
            ssize_t n = read(c->fd, d, READ_CHUNK);
            if (n < 0 && errno != EAGAIN && errno != EINTR) {
                conn_free(c, "client read error");
                return;
            }
            if (n == 0) {
                /* Half-close: a complete request in flight is still answered;
                 * an idle connection or a cut request is closed now. */
                bool idle = c->req_state == REQ_HEAD && c->resp_state == RESP_NONE && c->in.len == 0;
                if (idle || c->req_state == REQ_BODY || c->tunnel) {
                    conn_free(c, "client closed");
                    return;
                }
                c->rd_eof = true;
            }
            if (n > 0) {
                buf_commit(&c->in, (size_t)n);
                c->last_activity = ev_now(loop);
            }
        }
    }
    pump(c);
}

static void conn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct proxy_conn *c = w->data;
    ev_timer_stop(loop, w); /* it may be a repeating timer (ev_timer_again) */
    if (c->closing) {
        conn_free(c, "close timeout");
        return;
    }
    double now = ev_now(loop), deadline;
    bool awaiting_head = c->req_state == REQ_HEAD && c->resp_state == RESP_NONE;
    if (awaiting_head && c->head_started)
        deadline = c->head_deadline;
    else if (awaiting_head)
        deadline = c->last_activity + (c->nreq ? c->ln->conf.idle_timeout_s : c->ln->conf.header_timeout_s);
    else
        deadline = c->last_activity + c->ln->conf.idle_timeout_s;
    if (deadline > now + 0.001) {
        ev_timer_set(w, deadline - now, 0);
        ev_timer_start(loop, w);
        return;
    }
    if (awaiting_head && c->in.len) {
        /* Slow or stalled request head: 408 (RFC 9110 §15.5.9). */
        c->keep_alive = false;
        c->method = HTTP_M_GET;
        c->t_start = now;
        respond_error(c, 408);
        c->in.len = 0;
        exchange_finish(c);
        if (pump(c) == 0) {
            ev_timer_set(w, 1.0, 0); /* give the 408 a second to leave */
            ev_timer_start(loop, w);
        }
        return;
    }
    conn_free(c, awaiting_head ? "idle timeout" : "idle timeout during request");
}
