/* tgroup.c -- target groups: registration, balancing, health checks, ejection, draining. */
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>

#include "berth/alloc.h"
#include "berth/httpc.h"
#include "berth/log.h"
#include "berth/util.h"
#include "dns.h"
#include "proxy.h"
#include "tgroup.h"

const char *proxy_target_state_name(enum proxy_target_state s)
{
    static const char *const names[] = {"initial", "healthy", "unhealthy", "draining", "unused"};
    return names[s];
}

void proxy_rate_add(struct proxy_rate *r, double now)
{
    int64_t s = (int64_t)now;
    int i = (int)(s % RATE_SLOTS);
    if (r->sec[i] != s) {
        r->sec[i] = s;
        r->count[i] = 0;
    }
    r->count[i]++;
    if (now - r->last > RATE_WINDOW_S + 1)
        r->first = now;
    r->last = now;
}

double proxy_tg_rate_span(const struct proxy_tg *tg, double now)
{
    /* From the group's first request when that came within the window: when a load begins, the rate
     * shows at once instead of diluted by the idle seconds before it. Every target of the group is
     * measured over the same time, so the rates add up to the group's (a target that joined late
     * shows less, as it served less). */
    double window = RATE_WINDOW_S + (now - (double)(int64_t)now), first = now;
    for (size_t i = 0; i < tg->ntargets + tg->ndraining; i++) {
        const struct proxy_target *t = i < tg->ntargets ? tg->targets[i] : tg->draining[i - tg->ntargets];
        if (t->rate.last > 0 && now - t->rate.last <= window && t->rate.first < first)
            first = t->rate.first;
    }
    double span = now - first;
    return span < 1.0 ? 1.0 : span > window ? window : span;
}

double proxy_rate_get(const struct proxy_rate *r, double now, double span)
{
    /* Requests of the last RATE_WINDOW_S whole seconds plus the current partial one. */
    int64_t s = (int64_t)now;
    uint64_t sum = 0;
    for (int k = 0; k <= RATE_WINDOW_S; k++) {
        int64_t sec = s - k;
        int i = (int)(sec % RATE_SLOTS);
        if (r->sec[i] == sec)
            sum += r->count[i];
    }
    return (double)sum / span;
}

/* ---- health checks ---- */

static void set_state(struct proxy_target *t, enum proxy_target_state st, const char *why)
{
    if (t->state == st)
        return;
    log_info("target group %s: target %s (%s) %s -> %s%s%s", t->tg ? t->tg->conf.name : "-", t->addr_str,
             t->id ? t->id : "-", proxy_target_state_name(t->state), proxy_target_state_name(st), why ? ": " : "",
             why ? why : "");
    if (st == TS_HEALTHY) {
        t->healthy_since = util_now();
        /* As ALB: only a target joining already-healthy ones starts slowly; the
         * first targets of a group take the full load at once. */
        t->slow_start = false;
        for (size_t i = 0; t->tg && i < t->tg->ntargets; i++)
            if (t->tg->targets[i] != t && t->tg->targets[i]->state == TS_HEALTHY)
                t->slow_start = true;
    }
    t->state = st;
}

static void hc_done(const struct httpc_response *resp, const char *err, void *arg)
{
    struct proxy_target *t = arg;
    t->hc_req = NULL;
    if (!t->tg)
        return;
    const struct proxy_hc_conf *hc = &t->tg->conf.hc;
    bool ok = resp && proxy_hc_matches(hc, resp->status);
    if (resp)
        snprintf(t->hc_last, sizeof t->hc_last, "status %d", resp->status);
    else
        snprintf(t->hc_last, sizeof t->hc_last, "%s", err);
    if (ok) {
        t->hc_fail = 0;
        if (++t->hc_ok >= hc->healthy_threshold && t->state != TS_HEALTHY)
            set_state(t, TS_HEALTHY, "health checks pass");
    } else {
        t->hc_ok = 0;
        if (++t->hc_fail >= hc->unhealthy_threshold && t->state != TS_UNHEALTHY) {
            char why[160];
            snprintf(why, sizeof why, "health check failed: %s", t->hc_last);
            set_state(t, TS_UNHEALTHY, why);
        }
    }
}

static void hc_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct proxy_target *t = w->data;
    if (!t->tg || t->hc_req)
        return;
    const struct proxy_hc_conf *hc = &t->tg->conf.hc;
    struct net_addr a = t->addr;
    if (hc->port) {
        if (a.ss.ss_family == AF_INET)
            ((struct sockaddr_in *)&a.ss)->sin_port = htons((uint16_t)hc->port);
        else
            ((struct sockaddr_in6 *)&a.ss)->sin6_port = htons((uint16_t)hc->port);
    }
    t->hc_req = httpc_request(loop, &a, "GET", t->addr_str, NULL, hc->path, NULL, NULL, 0, hc->timeout_s, hc_done, t);
    if (!t->hc_req)
        hc_done(NULL, "cannot create socket", t);
    else if (t->tg->tls)
        httpc_use_tls(t->hc_req, t->tg->tls, NULL);
}

static void hc_stop(struct proxy_target *t);

static void hc_start(struct proxy_target *t)
{
    hc_stop(t);
    const struct proxy_hc_conf *hc = &t->tg->conf.hc;
    if (!hc->enabled) {
        set_state(t, TS_HEALTHY, "health checks disabled");
        return;
    }
    /* First check at once, so a new target can turn healthy quickly. */
    ev_timer_init(&t->hc_timer, hc_tick, 0.001, hc->interval_s);
    t->hc_timer.data = t;
    ev_timer_start(t->px->loop, &t->hc_timer);
}

static void hc_stop(struct proxy_target *t)
{
    ev_timer_stop(t->px->loop, &t->hc_timer);
    httpc_cancel(t->hc_req);
    t->hc_req = NULL;
}

/* ---- targets ---- */

static struct proxy_target *target_new(struct proxy_tg *tg, const char *address, const char *id, bool from_dns)
{
    struct proxy_target *t = xcalloc(1, sizeof *t);
    if (net_parse_addr(address, &t->addr) < 0) {
        free(t);
        return NULL;
    }
    t->refs = 1;
    t->px = tg->px;
    t->tg = tg;
    t->id = id ? xstrdup(id) : NULL;
    t->from_dns = from_dns;
    net_format_addr(&t->addr, t->addr_str, sizeof t->addr_str);
    t->state = TS_INITIAL;
    ev_init(&t->hc_timer, hc_tick);
    ev_init(&t->drain_timer, NULL);
    return t;
}

void proxy_target_unref(struct proxy_target *t)
{
    if (--t->refs > 0)
        return;
    hc_stop(t);
    ev_timer_stop(t->px->loop, &t->drain_timer);
    upstream_pool_clear(&t->pool);
    free(t->id);
    free(t);
}

static void drain_finish(struct proxy_target *t)
{
    struct proxy_tg *tg = t->tg;
    ev_timer_stop(t->px->loop, &t->drain_timer);
    if (!tg)
        return;
    for (size_t i = 0; i < tg->ndraining; i++)
        if (tg->draining[i] == t) {
            tg->draining[i] = tg->draining[--tg->ndraining];
            log_info("target group %s: target %s drained (%d in flight)", tg->conf.name, t->addr_str, t->outstanding);
            t->state = TS_UNUSED;
            t->tg = NULL;
            proxy_target_unref(t);
            return;
        }
}

static void drain_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    drain_finish(w->data);
}

void proxy_target_request_start(struct proxy_target *t, double now)
{
    t->refs++;
    t->outstanding++;
    t->requests++;
    proxy_rate_add(&t->rate, now);
}

void proxy_target_request_done(struct proxy_target *t)
{
    t->outstanding--;
    if (t->state == TS_DRAINING && t->outstanding == 0)
        drain_finish(t);
    proxy_target_unref(t);
}

bool proxy_target_poolable(const struct proxy_target *t)
{
    return t->tg && t->state != TS_DRAINING;
}

/* Moves registered target <i> of <tg> to the draining list. */
static void target_deregister(struct proxy_tg *tg, size_t i)
{
    struct proxy_target *t = tg->targets[i];
    tg->targets[i] = tg->targets[--tg->ntargets];
    hc_stop(t);
    upstream_pool_clear(&t->pool);
    set_state(t, TS_DRAINING, "deregistered");
    if (t->outstanding == 0 || tg->conf.deregistration_delay_s == 0) {
        t->state = TS_UNUSED;
        t->tg = NULL;
        proxy_target_unref(t);
        return;
    }
    tg->draining = xrealloc(tg->draining, (tg->ndraining + 1) * sizeof *tg->draining);
    tg->draining[tg->ndraining++] = t;
    ev_timer_init(&t->drain_timer, drain_timeout, tg->conf.deregistration_delay_s, 0);
    t->drain_timer.data = t;
    ev_timer_start(t->px->loop, &t->drain_timer);
}

static struct proxy_target *target_register(struct proxy_tg *tg, const char *address, const char *id, bool from_dns)
{
    struct proxy_target *t = target_new(tg, address, id, from_dns);
    if (!t)
        return NULL;
    tg->targets = xrealloc(tg->targets, (tg->ntargets + 1) * sizeof *tg->targets);
    tg->targets[tg->ntargets++] = t;
    hc_start(t);
    log_info("target group %s: registered target %s (%s)", tg->conf.name, t->addr_str, id ? id : "-");
    return t;
}

static ssize_t find_target(struct proxy_tg *tg, const char *key)
{
    struct net_addr a;
    char norm[64] = "";
    if (net_parse_addr(key, &a) == 0)
        net_format_addr(&a, norm, sizeof norm);
    for (size_t i = 0; i < tg->ntargets; i++) {
        struct proxy_target *t = tg->targets[i];
        if (strcmp(t->addr_str, norm) == 0 || (t->id && strcmp(t->id, key) == 0))
            return (ssize_t)i;
    }
    return -1;
}

void proxy_tg_set_targets(struct proxy_tg *tg, const struct proxy_target_conf *tc, size_t n, bool from_dns)
{
    /* Deregister what is no longer listed. */
    for (size_t i = tg->ntargets; i-- > 0;) {
        struct proxy_target *t = tg->targets[i];
        if (t->from_dns != from_dns)
            continue;
        bool keep = false;
        for (size_t k = 0; k < n && !keep; k++) {
            struct net_addr a;
            char norm[64];
            if (!tc[k].address || net_parse_addr(tc[k].address, &a) < 0)
                continue;
            net_format_addr(&a, norm, sizeof norm);
            keep = strcmp(norm, t->addr_str) == 0;
        }
        if (!keep)
            target_deregister(tg, i);
    }
    for (size_t k = 0; k < n; k++) {
        if (!tc[k].address)
            continue;
        ssize_t i = find_target(tg, tc[k].address);
        if (i >= 0 && strcmp(tg->targets[i]->addr_str, tc[k].address) != 0 && tc[k].id && tg->targets[i]->id &&
            strcmp(tg->targets[i]->id, tc[k].id) == 0) {
            /* Same id at a new address: a different endpoint. */
            target_deregister(tg, (size_t)i);
            i = -1;
        }
        if (i < 0) {
            target_register(tg, tc[k].address, tc[k].id, from_dns);
        } else if (tc[k].id) {
            free(tg->targets[i]->id);
            tg->targets[i]->id = xstrdup(tc[k].id);
        }
    }
}

int proxy_tg_add_target(struct proxy_tg *tg, const struct proxy_target_conf *tc)
{
    if (find_target(tg, tc->address) >= 0 || (tc->id && find_target(tg, tc->id) >= 0))
        return -1;
    return target_register(tg, tc->address, tc->id, false) ? 0 : -1;
}

int proxy_tg_remove_target(struct proxy_tg *tg, const char *key)
{
    ssize_t i = find_target(tg, key);
    if (i < 0)
        return -1;
    target_deregister(tg, (size_t)i);
    return 0;
}

/* ---- groups ---- */

static void dns_members(void *arg, const struct proxy_target_conf *t, size_t n)
{
    proxy_tg_set_targets(arg, t, n, true);
}

static void dns_start(struct proxy_tg *tg)
{
    size_t n = 0;
    for (size_t i = 0; i < tg->conf.ntargets; i++)
        n += tg->conf.targets[i].dns != NULL;
    if (n == 0)
        proxy_tg_set_targets(tg, NULL, 0, true); /* no dns targets any more */
    else
        tg->dns = proxy_dns_start(tg->px->loop, &tg->conf, dns_members, tg);
}

static void dns_stop(struct proxy_tg *tg)
{
    proxy_dns_stop(tg->dns);
    tg->dns = NULL;
}

struct proxy_tg *proxy_find_tg(struct proxy *px, const char *name)
{
    for (size_t i = 0; i < px->ntgs; i++)
        if (strcmp(px->tgs[i]->conf.name, name) == 0)
            return px->tgs[i];
    return NULL;
}

struct proxy_tg *proxy_tg_upsert(struct proxy *px, const struct proxy_tg_conf *conf)
{
    struct proxy_tg *tg = proxy_find_tg(px, conf->name);
    bool hc_changed = true, tls_changed = false;
    if (tg) {
        tls_changed = tg->conf.protocol != conf->protocol ||
                      strcmp(tg->conf.ca_file ? tg->conf.ca_file : "", conf->ca_file ? conf->ca_file : "") != 0;
        const struct proxy_hc_conf *o = &tg->conf.hc, *n = &conf->hc;
        hc_changed = o->enabled != n->enabled || strcmp(o->path, n->path) != 0 || o->port != n->port ||
                     o->interval_s != n->interval_s;
        dns_stop(tg); /* it points into the old conf */
        proxy_tg_conf_free(&tg->conf);
    } else {
        tg = xcalloc(1, sizeof *tg);
        tg->refs = 1;
        tg->px = px;
        px->tgs = xrealloc(px->tgs, (px->ntgs + 1) * sizeof *px->tgs);
        px->tgs[px->ntgs++] = tg;
    }
    proxy_tg_conf_copy(&tg->conf, conf);
    SSL_CTX_free(tg->tls);
    tg->tls = NULL;
    if (conf->protocol == PROXY_HTTPS) {
        char *err = NULL;
        tg->tls = tls_client_ctx(conf->ca_file != NULL, conf->ca_file, false, &err);
        if (!tg->tls) {
            log_error("target group %s: %s; its targets cannot be reached", conf->name, err);
            free(err);
        }
    }
    if (tls_changed) /* pooled connections are of the old kind */
        for (size_t i = 0; i < tg->ntargets; i++)
            upstream_pool_clear(&tg->targets[i]->pool);
    if (hc_changed || tls_changed)
        for (size_t i = 0; i < tg->ntargets; i++)
            hc_start(tg->targets[i]);
    proxy_tg_set_targets(tg, conf->targets, conf->ntargets, false);
    dns_start(tg);
    return tg;
}

void proxy_tg_retire(struct proxy_tg *tg)
{
    struct proxy *px = tg->px;
    log_info("removing target group %s", tg->conf.name);
    for (size_t i = 0; i < px->ntgs; i++)
        if (px->tgs[i] == tg) {
            px->tgs[i] = px->tgs[--px->ntgs];
            break;
        }
    dns_stop(tg);
    while (tg->ntargets)
        proxy_tg_remove_target(tg, tg->targets[0]->addr_str);
    tg->removed = true;
    proxy_tg_unref(tg);
}

void proxy_tg_unref(struct proxy_tg *tg)
{
    if (--tg->refs > 0)
        return;
    dns_stop(tg);
    for (size_t i = 0; i < tg->ntargets; i++) {
        tg->targets[i]->tg = NULL;
        proxy_target_unref(tg->targets[i]);
    }
    for (size_t i = 0; i < tg->ndraining; i++) {
        ev_timer_stop(tg->px->loop, &tg->draining[i]->drain_timer);
        tg->draining[i]->tg = NULL;
        proxy_target_unref(tg->draining[i]);
    }
    free(tg->targets);
    free(tg->draining);
    proxy_tg_conf_free(&tg->conf);
    SSL_CTX_free(tg->tls);
    free(tg);
}

/* ---- balancing ---- */

void proxy_target_conn_failed(struct proxy_target *t, const char *why)
{
    t->conn_errors++;
    t->px->conn_errors_total++;
    if (!t->tg)
        return;
    if (++t->consecutive_failures >= t->tg->conf.outlier_consecutive_failures) {
        double now = util_now();
        if (t->ejected_until < now)
            log_warn("target group %s: ejecting target %s for %gs after %d consecutive connection failures (%s)",
                     t->tg->conf.name, t->addr_str, t->tg->conf.outlier_ejection_s, t->consecutive_failures, why);
        t->ejected_until = now + t->tg->conf.outlier_ejection_s;
    }
}

void proxy_target_conn_ok(struct proxy_target *t)
{
    t->consecutive_failures = 0;
}

enum { PASS_HEALTHY, PASS_FAIL_OPEN, PASS_ANY };

static bool eligible(const struct proxy_target *t, int pass, double now)
{
    switch (pass) {
    case PASS_HEALTHY:
        return t->state == TS_HEALTHY && t->ejected_until <= now;
    case PASS_FAIL_OPEN:
        return t->ejected_until <= now;
    default:
        return true;
    }
}

/* Slow start: a target healthy for less than slow_start_s gets a share of
 * requests that grows linearly with the time since it turned healthy. */
static bool slow_start_skip(const struct proxy_tg *tg, const struct proxy_target *t, double now)
{
    double ss = tg->conf.slow_start_s;
    if (ss <= 0 || !t->slow_start || t->state != TS_HEALTHY || now - t->healthy_since >= ss)
        return false;
    double share = (now - t->healthy_since) / ss;
    return (double)(util_rand64() % 1000000) / 1e6 >= share;
}

struct proxy_target *proxy_tg_pick(struct proxy_tg *tg, struct proxy_target *avoid, double now)
{
    size_t n = tg->ntargets;
    if (n == 0)
        return NULL;
    /* ALB fails open: with no healthy target, route to all registered ones. */
    unsigned start = tg->rr++;
    for (int pass = PASS_HEALTHY; pass <= PASS_ANY; pass++) {
        struct proxy_target *first = NULL, *best = NULL;
        for (size_t k = 0; k < n; k++) {
            struct proxy_target *t = tg->targets[(start + k) % n];
            if (t == avoid || !eligible(t, pass, now))
                continue;
            if (!first)
                first = t;
            if (slow_start_skip(tg, t, now))
                continue;
            if (tg->conf.algorithm == PROXY_RR) {
                best = t;
                break;
            }
            if (!best || t->outstanding < best->outstanding)
                best = t;
        }
        if (!best)
            best = first;
        if (best)
            return best;
    }
    return avoid && n == 1 ? avoid : NULL;
}
