/* exchange.c -- the bookkeeping of one exchange on a client connection (see exchange.h): its
 * upstream let go of, the target it counts against, its end in the statistics and the access log,
 * and the answers the proxy makes itself. Nothing here calls back into client.c. */
#include <stdio.h>
#include <string.h>

#include "berth/util.h"
#include "client.h"
#include "exchange.h"
#include "forward.h"
#include "proxy.h"
#include "stats.h"
#include "tgroup.h"
#include "upstream.h"

void proxy_exchange_detach(struct proxy_conn *c, bool reuse)
{
    struct proxy_upstream *up = c->up;
    if (!up)
        return;
    c->up = NULL;
    upstream_release(up, reuse && up->connected && c->target && proxy_target_poolable(c->target));
}

void proxy_respond(struct proxy_conn *c, int status, const char *ctype, const char *body, size_t blen,
                   const char *extra)
{
    c->status = status;
    if (c->req_state != REQ_DONE)
        c->close_after = true; /* the rest of the request cannot be framed any more */
    bool close = c->close_after || !c->keep_alive;
    proxy_own_response(&c->out, status, ctype, body, blen, extra, close, c->method == HTTP_M_HEAD);
    c->bytes_out += blen;
    c->req_state = REQ_DONE;
    c->resp_state = RESP_DONE;
}

void proxy_respond_error(struct proxy_conn *c, int status)
{
    char body[128];
    int n = snprintf(body, sizeof body, "%d %s\n", status, http_status_text(status));
    if (status >= 500 || status == 408 || status == 400 || status == 431 || status == 413)
        c->close_after = c->close_after || status < 500;
    proxy_respond(c, status, "text/plain", body, (size_t)n, NULL);
}

void proxy_exchange_target(struct proxy_conn *c, struct proxy_target *t)
{
    if (c->target)
        proxy_target_request_done(c->target);
    c->target = t;
    if (t)
        proxy_target_request_start(t, util_now());
}

void proxy_exchange_end(struct proxy_conn *c)
{
    struct proxy *px = c->px;
    double dur = ev_now(px->loop) - c->t_start;
    if (c->tg) {
        proxy_stats_observe(c->tg, c->status, dur);
        proxy_tg_unref(c->tg);
        c->tg = NULL;
    }
    if (c->log) {
        proxy_access_end(px, c->log, c->status, dur, c->bytes_out, c->target ? c->target->addr_str : NULL);
        c->log = NULL;
    }
    proxy_exchange_target(c, NULL);
}

