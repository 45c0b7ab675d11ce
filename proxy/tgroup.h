/* tgroup.h -- target groups and their targets as they run (tgroup.c): registration and draining,
 * health checks, passive outlier detection, request rates, and picking a target for a request. */
#ifndef BERTH_PROXY_TGROUP_H
#define BERTH_PROXY_TGROUP_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "berth/net.h"
#include "config.h"
#include "upstream.h"

#define LAT_BUCKETS 14

enum proxy_target_state { TS_INITIAL, TS_HEALTHY, TS_UNHEALTHY, TS_DRAINING, TS_UNUSED };

#define RATE_SLOTS 16
#define RATE_WINDOW_S 3

/* Per-second request counts for a sliding request rate. */
struct proxy_rate {
    uint32_t count[RATE_SLOTS];
    int64_t sec[RATE_SLOTS];
    double first, last; /* the first request after an idle window, and the latest */
};
void proxy_rate_add(struct proxy_rate *r, double now);
/* Requests per second over the window, divided by <span> seconds (proxy_tg_rate_span). */
double proxy_rate_get(const struct proxy_rate *r, double now, double span);
struct proxy_tg;
/* The time a group's request rates are measured over: RATE_WINDOW_S plus the current partial second,
 * or less when the group's first request in that window came later (at least 1 s). */
double proxy_tg_rate_span(const struct proxy_tg *tg, double now);

struct proxy;
struct httpc_req;

struct proxy_target {
    int refs;
    struct proxy *px;
    struct proxy_tg *tg; /* NULL once removed from its group */
    char *id;
    char addr_str[64];
    struct net_addr addr;
    bool from_dns;
    enum proxy_target_state state;
    int hc_ok, hc_fail;
    ev_timer hc_timer;
    struct httpc_req *hc_req;
    char hc_last[96];
    double healthy_since;
    bool slow_start; /* turned healthy while others already were: ramp up (slow_start_s) */
    int outstanding;
    uint64_t requests, conn_errors;
    int consecutive_failures;
    double ejected_until;
    struct proxy_rate rate;
    ev_timer drain_timer;
    struct upstream_pool pool; /* idle keep-alive connections */
};

struct proxy_tg {
    int refs;
    struct proxy *px;
    struct proxy_tg_conf conf;
    struct proxy_target **targets; /* registered (initial/healthy/unhealthy) */
    size_t ntargets;
    struct proxy_target **draining;
    size_t ndraining;
    unsigned rr;
    bool removed;
    uint64_t by_class[6]; /* 1xx..5xx by index 1..5 */
    uint64_t lat_hist[LAT_BUCKETS];
    double lat_sum;
    uint64_t lat_count;
    struct proxy_dns *dns; /* resolver state for dns targets, NULL without */
    SSL_CTX *tls;          /* protocol HTTPS: the context of connections to targets */
};

/* The group named <name>, or NULL. */
struct proxy_tg *proxy_find_tg(struct proxy *px, const char *name);
/* Creates or replaces group settings and targets from <conf> (copied). */
struct proxy_tg *proxy_tg_upsert(struct proxy *px, const struct proxy_tg_conf *conf);
/* Removes group <tg> from the proxy: its DNS lookups stop, its targets drain, and it goes once the
 * last request or route holding it lets go. */
void proxy_tg_retire(struct proxy_tg *tg);
/* Replaces the group's registered targets; removed ones drain. */
void proxy_tg_set_targets(struct proxy_tg *tg, const struct proxy_target_conf *t, size_t n, bool from_dns);
/* Adds one target; 0, or -1 if it is already registered. */
int proxy_tg_add_target(struct proxy_tg *tg, const struct proxy_target_conf *t);
/* Starts draining the target with address or id <key>; 0, or -1 if unknown. */
int proxy_tg_remove_target(struct proxy_tg *tg, const char *key);
void proxy_tg_unref(struct proxy_tg *tg);
void proxy_target_unref(struct proxy_target *t);
/* Picks a target for a new request, skipping <avoid>. NULL if none. */
struct proxy_target *proxy_tg_pick(struct proxy_tg *tg, struct proxy_target *avoid, double now);
/* Records a connection failure / success for passive outlier detection. */
void proxy_target_conn_failed(struct proxy_target *t, const char *why);
void proxy_target_conn_ok(struct proxy_target *t);
/* A request on <t> begins / ends (outstanding counts, rates; a draining target's last request ends
 * its drain). */
void proxy_target_request_start(struct proxy_target *t, double now);
void proxy_target_request_done(struct proxy_target *t);
/* True while <t> may take pooled keep-alive connections (registered, not draining). */
bool proxy_target_poolable(const struct proxy_target *t);
const char *proxy_target_state_name(enum proxy_target_state s);

#endif
