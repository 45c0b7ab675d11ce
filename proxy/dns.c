/* dns.c -- target-group members from DNS ({"dns": NAME}): resolved with c-ares, re-resolved at the
 * TTL; each round's members go to the owner's callback (see dns.h). */
#include <stdlib.h>
#include <string.h>

#include "berth/alloc.h"
#include "berth/log.h"
#include "berth/lookup.h"
#include "dns.h"

#define DNS_DEFAULT_SERVER "127.0.0.1:8600"
#define DNS_MIN_INTERVAL_S 1.0
#define DNS_MAX_INTERVAL_S 300.0
#define DNS_RETRY_S 5.0

struct proxy_dns;

struct dns_entry {
    struct proxy_dns *d;
    const struct proxy_target_conf *conf; /* points into tg->conf.targets */
    struct lookup_query *q;
    struct lookup_endpoint *eps; /* last good answer */
    size_t n;
    unsigned ttl;
    bool failed;
};

struct proxy_dns {
    struct ev_loop *loop;
    proxy_dns_members_cb cb;
    void *arg;
    struct lookup *l;
    ev_timer timer;
    struct dns_entry *entries;
    size_t n;
    int pending;
};

/* Registers the union of every entry's endpoints, then schedules the next round. */
static void apply(struct proxy_dns *d)
{
    size_t total = 0;
    for (size_t i = 0; i < d->n; i++)
        total += d->entries[i].n;
    struct proxy_target_conf *tc = xcalloc(total ? total : 1, sizeof *tc);
    size_t k = 0;
    double next = DNS_MAX_INTERVAL_S;
    for (size_t i = 0; i < d->n; i++) {
        struct dns_entry *e = &d->entries[i];
        for (size_t j = 0; j < e->n; j++) {
            tc[k].address = e->eps[j].address;
            tc[k].id = e->eps[j].host;
            k++;
        }
        double due = e->failed ? DNS_RETRY_S : (double)e->ttl;
        if (due < next)
            next = due;
    }
    d->cb(d->arg, tc, k);
    free(tc);
    if (next < DNS_MIN_INTERVAL_S)
        next = DNS_MIN_INTERVAL_S;
    ev_timer_set(&d->timer, next, 0);
    ev_timer_start(d->loop, &d->timer);
}

static void resolved(const struct lookup_endpoint *eps, size_t n, unsigned ttl, const char *err, void *arg)
{
    struct dns_entry *e = arg;
    struct proxy_dns *d = e->d;
    e->q = NULL;
    if (err) {
        /* Keep the last good members: a DNS hiccup must not empty a group. */
        if (!e->failed)
            log_warn("dns target %s: %s (keeping %zu known members)", e->conf->dns, err, e->n);
        e->failed = true;
    } else {
        free(e->eps);
        e->eps = xmalloc(n * sizeof *eps);
        memcpy(e->eps, eps, n * sizeof *eps);
        e->n = n;
        e->ttl = ttl;
        e->failed = false;
    }
    if (--d->pending == 0)
        apply(d);
}

static void resolve_all(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct proxy_dns *d = w->data;
    for (size_t i = 0; i < d->n; i++) {
        struct dns_entry *e = &d->entries[i];
        d->pending++;
        e->q = lookup_endpoints(d->l, e->conf->dns, LOOKUP_AUTO, e->conf->port, resolved, e);
        if (!e->q)
            d->pending--;
    }
    if (d->pending == 0)
        apply(d);
}

struct proxy_dns *proxy_dns_start(struct ev_loop *loop, const struct proxy_tg_conf *conf, proxy_dns_members_cb cb,
                                  void *arg)
{
    size_t n = 0;
    for (size_t i = 0; i < conf->ntargets; i++)
        n += conf->targets[i].dns != NULL;
    if (n == 0)
        return NULL;
    const char *server = conf->dns_server ? conf->dns_server : getenv("BERTH_DNS");
    if (!server || !*server)
        server = DNS_DEFAULT_SERVER;
    char *err = NULL;
    struct lookup *l = lookup_new(loop, server, &err);
    if (!l) {
        log_error("target group %s: %s", conf->name, err);
        free(err);
        return NULL;
    }
    struct proxy_dns *d = xcalloc(1, sizeof *d);
    d->loop = loop;
    d->cb = cb;
    d->arg = arg;
    d->l = l;
    d->entries = xcalloc(n, sizeof *d->entries);
    for (size_t i = 0; i < conf->ntargets; i++)
        if (conf->targets[i].dns) {
            d->entries[d->n].d = d;
            d->entries[d->n++].conf = &conf->targets[i];
        }
    ev_timer_init(&d->timer, resolve_all, 0, 0);
    d->timer.data = d;
    ev_timer_start(loop, &d->timer);
    log_info("target group %s: resolving %zu dns target(s) via %s", conf->name, n, server);
    return d;
}

void proxy_dns_stop(struct proxy_dns *d)
{
    if (!d)
        return;
    ev_timer_stop(d->loop, &d->timer);
    lookup_free(d->l); /* pending lookups end without callbacks */
    for (size_t i = 0; i < d->n; i++)
        free(d->entries[i].eps);
    free(d->entries);
    free(d);
}
