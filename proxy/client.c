/* client.c -- client connections: reading and parsing requests, routing them, and relaying each
 * exchange between the client and an upstream connection (upstream.c) to the target a group picked
 * (tgroup.c). Everything that happens to a connection ends in pump(), which decides what comes next;
 * whether a target failed is decided in one place (upstream_failed). */
#include <openssl/ssl.h>
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
#include "exchange.h"
#include "forward.h"
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

static int pump(struct proxy_conn *c);

/* ---- the upstream side of an exchange ---- */

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

static void conn_free(struct proxy_conn *c, const char *reason)
{
    struct proxy *px = c->px;
    log_debug("closing client connection: %s", reason);
    proxy_ready_remove(&c->ready);
    proxy_exchange_detach(c, false);
    if (c->target || c->log)
        proxy_exchange_end(c);
    ev_io_stop(px->loop, &c->io);
    ev_timer_stop(px->loop, &c->timer);
    tls_close(c->ssl);
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
    double first_timeout = ln->conf.header_timeout_s;
    if (ln->tls) {
        c->ssl = tls_server_ssl(ln->tls, fd);
        if (!c->ssl) {
            log_warn("listener %s: cannot start TLS on a connection (out of memory?)", ln->conf.name);
            close(fd);
            ln->nconns--;
            proxy_listener_unref(ln);
            free(c);
            return;
        }
        first_timeout = ln->conf.handshake_timeout_s;
    }
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
    ev_timer_init(&c->timer, conn_timer_cb, first_timeout, 0);
    c->timer.data = c;
    ev_timer_start(px->loop, &c->timer);
    c->next = px->conns;
    if (px->conns)
        px->conns->prev = c;
    px->conns = c;
    px->conns_active++;
    px->conns_total++;
    /* Read at once: a client usually sends its request right after connecting, so it is mostly there
     * already. A request answered without waiting on the client again never has its socket enter
     * epoll (the connection-per-request case); otherwise pump watches it. */
    conn_ready(&c->ready, EV_READ);
}

void proxy_conns_close(struct proxy *px, bool all)
{
    for (struct proxy_conn *c = px->conns, *next; c; c = next) {
        next = c->next;
        if (all || (c->req_state == REQ_HEAD && c->resp_state == RESP_NONE && c->in.len == 0 && c->out.len == 0))
            conn_free(c, "shutting down");
    }
}

/* ---- request start ---- */

static int attach_upstream(struct proxy_conn *c)
{
    struct proxy *px = c->px;
    struct proxy_target *t = c->target;
    const struct proxy_tg_conf *tc = t->tg ? &t->tg->conf : NULL;
    struct proxy_upstream *up = upstream_acquire(px, &t->pool, &t->addr, t->tg ? t->tg->tls : NULL,
                                                 tc ? tc->connect_timeout_s : 5,
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

/* Picks targets until one gets a connection; -1 when none could. */
static int connect_some_target(struct proxy_conn *c, struct proxy_target *avoid)
{
    double now = util_now();
    for (int attempt = 0; attempt < 3; attempt++) {
        struct proxy_target *t = proxy_tg_pick(c->tg, avoid, now);
        if (!t)
            return -1;
        proxy_exchange_target(c, t);
        if (attach_upstream(c) == 0)
            return 0;
        avoid = t;
    }
    return -1;
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
    proxy_body_init(&c->req, m->body, m->content_length);
    c->req_state = m->body == HTTP_BODY_NONE ? REQ_DONE : REQ_BODY;
    c->resp_state = RESP_NONE;
    c->resp_keep_alive = false;
    c->head_started = false;

    struct proxy_reqinfo ri;
    /* CONNECT makes a tunnel, which a reverse proxy does not offer (nor does ALB): 405 and close,
     * so no tunnel ever reaches a pooled target connection (RFC 9110 §9.3.6). */
    int refuse = m->method_id == HTTP_M_CONNECT
                     ? 405
                     : proxy_reqinfo_fill(&ri, m, (const struct sockaddr *)&c->peer, c->ln->conf.listen);
    if (refuse) {
        px->bad_requests++;
        c->keep_alive = false;
        c->close_after = true;
        buf_consume(&c->in, m->head_len);
        proxy_respond_error(c, refuse);
        return 0;
    }
    ri.https = c->ssl != NULL;
    char rid[40];
    proxy_request_id(m, rid, sizeof rid);
    if (px->access_log)
        c->log = proxy_access_begin(c->peer_ip, &ri, rid, c->ln->conf.name);

    size_t route = proxy_route_index(&c->ln->conf, &ri);
    const struct proxy_action *act =
        route < c->ln->conf.nrules ? &c->ln->conf.rules[route].action : &c->ln->conf.default_action;
    if (act->kind == ACT_FIXED) {
        px->fixed_responses++;
        buf_consume(&c->in, m->head_len);
        proxy_respond(c, act->status, act->content_type, act->body, strlen(act->body), NULL);
        return 0;
    }
    if (act->kind == ACT_REDIRECT) {
        struct buf loc;
        buf_init(&loc, 16384);
        proxy_location_field(&loc, act->location, &ri, c->ln->port);
        px->redirects++;
        buf_consume(&c->in, m->head_len);
        proxy_respond(c, act->status, "text/plain", "", 0, buf_head(&loc));
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
            proxy_respond_error(c, 400);
            return 0;
        }
    }
    struct proxy_tg *tg = proxy_route_pick(proxy_listener_route(c->ln, route));
    struct buf *h = &c->head;
    h->len = h->off = 0;
    if (!h->data)
        buf_borrow(h, px->scratch_head, sizeof px->scratch_head);
    proxy_request_head(h, &ri, c->peer_ip, c->peer_ip_len, c->ln->port_str, rid, c->websocket);
    buf_consume(&c->in, m->head_len);
    c->tg = tg;
    tg->refs++;
    if (tg->ntargets == 0) {
        proxy_respond_error(c, 503);
        return 0;
    }
    c->retryable = http_method_idempotent(m->method_id) && m->body == HTTP_BODY_NONE && !c->websocket;
    c->resp_state = RESP_HEAD;
    if (connect_some_target(c, NULL) < 0) {
        c->resp_state = RESP_NONE;
        proxy_respond_error(c, 502);
    }
    return 0;
}

/* ---- relay ---- */

/* Moves request body bytes from the client to the upstream; -1 on bad framing. */
static int relay_request_body(struct proxy_conn *c)
{
    struct proxy_upstream *up = c->up;
    while (c->req_state == REQ_BODY && c->in.len && (!up || up->out.len < OUT_HIGH)) {
        bool done;
        ssize_t n = proxy_body_frame(&c->req, buf_head(&c->in), c->in.len, &done, NULL);
        if (n < 0)
            return -1;
        if (done)
            c->req_state = REQ_DONE;
        if (up)
            buf_append(&up->out, buf_head(&c->in), (size_t)n);
        buf_consume(&c->in, (size_t)n);
    }
    return 0;
}

/* Handles an upstream that failed before a response; returns 0 if retried. */
static int upstream_failed(struct proxy_conn *c, const char *why)
{
    struct proxy_upstream *up = c->up;
    bool timed_out = up->timed_out, reused = up->reused, sent_nothing = !up->got_bytes;
    bool connected = up->connected;
    struct proxy_target *failed = c->target;
    proxy_exchange_detach(c, false);
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
        proxy_respond_error(c, timed_out ? 504 : 502);
        return 0;
    }
    return -1;
}

/* The target's answer cannot be relayed: its connection is closed (never pooled) and the client
 * gets 502 on a connection that closes. Returns 0 for relay_response. */
static int bad_gateway(struct proxy_conn *c)
{
    if (c->up)
        c->up->got_bytes = true;
    proxy_exchange_detach(c, false);
    c->resp_state = RESP_NONE;
    c->close_after = true;
    proxy_respond_error(c, 502);
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
            proxy_response_head(&c->out, &m, c->minor, !c->keep_alive || c->close_after);
            buf_consume(&up->in, (size_t)r);
            c->tunnel = true;
            c->resp_state = RESP_BODY;
            c->req_state = REQ_DONE;
            break;
        }
        if (m.status < 200) {
            if (c->minor == 1)
                proxy_response_head(&c->out, &m, c->minor, !c->keep_alive || c->close_after);
            buf_consume(&up->in, (size_t)r);
            continue;
        }
        if (m.te_coded && c->minor == 0) {
            /* An HTTP/1.0 client cannot undo a transfer coding (RFC 9112 §6.1). */
            log_warn("target %s sent a transfer coding an HTTP/1.0 client cannot read", c->target->addr_str);
            return bad_gateway(c);
        }
        c->status = m.status;
        proxy_body_init(&c->resp, m.body, m.content_length);
        /* A response that has no body (to HEAD; 204, 304) but announces one may be followed by the
         * body anyway, late, where it would read as the next response: such a connection is not
         * reused, whatever the timing. */
        c->resp_keep_alive = m.keep_alive && !(m.body == HTTP_BODY_NONE && (m.has_te || m.content_length > 0));
        if (m.body == HTTP_BODY_EOF || (m.body == HTTP_BODY_CHUNKED && c->minor == 0))
            c->keep_alive = false;
        proxy_response_head(&c->out, &m, c->minor, !c->keep_alive || c->close_after);
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
        /* An HTTP/1.0 client cannot read chunked framing: it gets the payload decoded. */
        bool done, decode = c->resp.kind == HTTP_BODY_CHUNKED && c->minor == 0;
        size_t before = c->out.len;
        ssize_t n = proxy_body_frame(&c->resp, buf_head(&up->in), up->in.len, &done, decode ? &c->out : NULL);
        if (n < 0) {
            log_warn("target %s sent malformed chunked framing", c->target->addr_str);
            return -1;
        }
        if (done)
            c->resp_state = RESP_DONE;
        if (!decode)
            buf_append(&c->out, buf_head(&up->in), (size_t)n);
        buf_consume(&up->in, (size_t)n);
        c->bytes_out += c->out.len - before;
    }
    return 0;
}

/* Called when request and response are both complete. */
static void exchange_finish(struct proxy_conn *c)
{
    proxy_exchange_detach(c, c->resp_keep_alive && !c->tunnel);
    proxy_exchange_end(c);
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
    int want;
    ssize_t n = tls_flush(c->fd, c->ssl, &c->out, &want);
    if (n > 0)
        c->last_activity = ev_now(c->px->loop);
    return n < 0 ? -1 : 0;
}

static void conn_set_events(struct proxy_conn *c)
{
    struct proxy_upstream *up = c->up;
    /* Reading stays on during an exchange (no epoll_ctl churn per request):
     * pipelined bytes queue up to PIPELINE_MAX, body bytes follow the
     * upstream's backpressure. */
    bool rd = !c->closing && !c->rd_eof;
    if (rd && c->req_state == REQ_DONE && !c->keep_alive && !c->tunnel)
        rd = false; /* the client said this is its last request: nothing more to read */
    else if (rd && (c->req_state == REQ_BODY || c->tunnel))
        rd = up && up->out.len < OUT_HIGH;
    else if (rd)
        rd = c->in.len < PIPELINE_MAX;
    if (rd && c->ssl && SSL_pending(c->ssl) > 0)
        proxy_ready_push(&c->px->readyq, &c->ready, EV_READ); /* decrypted bytes epoll cannot see */
    int ev = (rd ? EV_READ : 0) | (c->out.len || (rd && c->rd_want_write) ? EV_WRITE : 0);
    if ((c->io.events & (EV_READ | EV_WRITE)) != ev || !ev_is_active(&c->io)) {
        ev_io_stop(c->px->loop, &c->io);
        ev_io_set(&c->io, c->fd, ev);
        if (ev)
            ev_io_start(c->px->loop, &c->io);
    }
    if (up) {
        upstream_watch(up, c->out.len < OUT_HIGH);
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
    proxy_exchange_detach(c, false);
    tls_close(c->ssl); /* close_notify first; what the client still sends is discarded unread */
    c->ssl = NULL;
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
                proxy_respond_error(c, -r);
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
                proxy_exchange_detach(c, false);
                c->resp_state = RESP_NONE;
                proxy_respond_error(c, 400);
            } else {
                conn_free(c, "malformed request body");
                return -1;
            }
        }
        if (c->up && (c->up->err || c->up->eof) && c->resp_state == RESP_HEAD && c->up->in.len == 0) {
            char why[200];
            if (c->up->tls_err[0]) {
                snprintf(why, sizeof why, "TLS handshake failed: %s", c->up->tls_err);
                log_warn("target %s: %s", c->target->addr_str, why);
            } else {
                snprintf(why, sizeof why, "%s", c->up->err ? strerror(c->up->err) : "connection closed");
            }
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
            if (c->resp_state == RESP_BODY && c->resp.kind == HTTP_BODY_EOF && !up->err) {
                c->resp_state = RESP_DONE;
                c->resp_keep_alive = false;
            } else if (c->resp_state == RESP_HEAD) {
                /* Closed or timed out inside the response head. */
                bool to = up->timed_out;
                proxy_exchange_detach(c, false);
                c->resp_state = RESP_NONE;
                c->close_after = true;
                proxy_respond_error(c, to ? 504 : 502);
            } else if (c->resp_state != RESP_DONE || c->tunnel) {
                if (c->out.len == 0 || c->tunnel) {
                    /* Truncated by the target: the client must see the cut. */
                    conn_free(c, up->timed_out ? "target timed out" : "target closed mid-response");
                    return -1;
                }
                c->closing = true;
                proxy_exchange_detach(c, false);
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

/* Advances the TLS handshake of a new connection: 0 when done (requests may be read), -1 when it
 * waits for the socket or failed (the connection is freed then). */
static int tls_step(struct proxy_conn *c)
{
    struct proxy *px = c->px;
    int want;
    int r = tls_handshake(c->ssl, &want);
    if (r < 0) {
        char e[160];
        px->tls_failed++;
        log_debug("TLS handshake with %s failed: %s", c->peer_ip, tls_error(c->ssl, e, sizeof e));
        conn_free(c, "TLS handshake failed");
        return -1;
    }
    if (r == 0) {
        ev_io_stop(px->loop, &c->io);
        ev_io_set(&c->io, c->fd, want);
        ev_io_start(px->loop, &c->io);
        return -1;
    }
    c->tls_done = true;
    int v = SSL_version(c->ssl);
    px->tls_ok[v == TLS1_3_VERSION ? 3 : v == TLS1_2_VERSION ? 2 : v == TLS1_1_VERSION ? 1 : 0]++;
    if (SSL_session_reused(c->ssl))
        px->tls_resumed++;
    /* From here the request head has its own timeout. */
    c->last_activity = ev_now(px->loop);
    ev_timer_stop(px->loop, &c->timer);
    ev_timer_set(&c->timer, c->ln->conf.header_timeout_s, 0);
    ev_timer_start(px->loop, &c->timer);
    return 0;
}

static void conn_ready(struct proxy_ready *r, int revents)
{
    struct proxy_conn *c = proxy_ready_owner(r, struct proxy_conn, ready);
    struct ev_loop *loop = c->px->loop;
    if (c->lingering) {
        linger_read(c);
        return;
    }
    if (c->ssl && !c->tls_done && tls_step(c) < 0)
        return;
    if ((revents & EV_WRITE) && c->rd_want_write)
        revents |= EV_READ;
    if (revents & EV_READ) {
        if (!c->in.data)
            buf_borrow(&c->in, c->px->scratch_in, sizeof c->px->scratch_in);
        char *d = buf_reserve(&c->in, READ_CHUNK);
        if (!d) {
            if (c->req_state == REQ_HEAD && c->resp_state == RESP_NONE) {
                c->keep_alive = false;
                proxy_respond_error(c, 431);
                c->in.len = 0;
                exchange_finish(c);
            }
        } else {
            int want;
            ssize_t n = tls_sock_read_more(c->fd, c->ssl, d, READ_CHUNK, &want);
            c->rd_want_write = want == EV_WRITE;
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
    if (c->ssl && !c->tls_done) {
        c->px->tls_timeouts++;
        conn_free(c, "TLS handshake timed out");
        return;
    }
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
        proxy_respond_error(c, 408);
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
