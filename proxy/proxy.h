/* proxy.h -- berth-proxy internals: config, target groups, listeners, connections. */
#ifndef BERTH_PROXY_H
#define BERTH_PROXY_H

#include <ev.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "berth/auth.h"
#include "berth/buf.h"
#include "berth/http.h"
#include "berth/net.h"

/* ---- plain configuration (what a file or the admin API says) ---- */

enum proxy_algo { PROXY_RR, PROXY_LOR };
enum proxy_action_kind { ACT_FORWARD, ACT_REDIRECT, ACT_FIXED };

struct proxy_hc_conf {
    bool enabled;
    char *path;
    int port; /* 0: the target's traffic port */
    double interval_s, timeout_s;
    int healthy_threshold, unhealthy_threshold;
    char *matcher; /* "200-399", "200,204" */
    int ranges[16][2];
    int nranges;
};

struct proxy_target_conf {
    char *address; /* "ip:port", or NULL for a dns target */
    char *id;
    char *dns; /* SRV or A name */
    int port;  /* port for A-record dns targets */
};

struct proxy_tg_conf {
    char *name;
    int algorithm;
    struct proxy_hc_conf hc;
    double deregistration_delay_s, slow_start_s;
    double connect_timeout_s, response_timeout_s;
    int outlier_consecutive_failures;
    double outlier_ejection_s;
    char *dns_server;
    struct proxy_target_conf *targets;
    size_t ntargets;
};

struct proxy_kv {
    char *name;
    char **values;
    size_t nvalues;
};

struct proxy_cond {
    char **hosts, **paths, **methods;
    size_t nhosts, npaths, nmethods;
    struct proxy_kv *headers, *query;
    size_t nheaders, nquery;
    struct net_cidr *cidrs;
    size_t ncidrs;
};

struct proxy_tg;

struct proxy_fwd {
    char *tg_name;
    struct proxy_tg *tg; /* resolved when applied; holds a reference */
    int weight;
    int current; /* smooth weighted round robin state */
};

struct proxy_action {
    enum proxy_action_kind kind;
    struct proxy_fwd *fwd;
    size_t nfwd;
    int status;
    char *location; /* redirect template */
    char *content_type, *body;
};

struct proxy_rule {
    int priority;
    struct proxy_cond cond;
    struct proxy_action action;
};

struct proxy_listener_conf {
    char *name, *listen;
    double idle_timeout_s, header_timeout_s;
    int max_connections, max_header_bytes;
    struct proxy_rule *rules; /* sorted by priority */
    size_t nrules;
    struct proxy_action default_action;
};

struct proxy_config {
    int workers;
    struct auth auth; /* admin API tokens (none: authentication off) */
    char *admin_listen;
    char *access_log_path; /* NULL: off; "-": stdout */
    int access_log_format;
    double shutdown_timeout_s;
    struct proxy_listener_conf *listeners;
    size_t nlisteners;
    struct proxy_tg_conf *tgs;
    size_t ntgs;
};

/* Reads a whole config from JSON; NULL with *err naming the JSON path. */
struct proxy_config *proxy_config_parse(json_t *root, char **err);
/* Reads one target group (as in the config's target_groups[]) at <path>. */
int proxy_tg_conf_parse(json_t *v, const char *path, struct proxy_tg_conf *out, char **err);
/* Reads one targets[] entry. */
int proxy_target_conf_parse(json_t *v, const char *path, struct proxy_target_conf *out, char **err);
/* Reads one rule at <path>. */
int proxy_rule_parse(json_t *v, const char *path, struct proxy_rule *out, char **err);
void proxy_config_free(struct proxy_config *c);
void proxy_tg_conf_free(struct proxy_tg_conf *c);
void proxy_target_conf_free(struct proxy_target_conf *t);
void proxy_rule_free(struct proxy_rule *r);
void proxy_listener_conf_free(struct proxy_listener_conf *l);
void proxy_action_free(struct proxy_action *a);
/* Deep copy of a target group config. */
void proxy_tg_conf_copy(struct proxy_tg_conf *dst, const struct proxy_tg_conf *src);
/* True when <status> matches the health-check matcher. */
bool proxy_hc_matches(const struct proxy_hc_conf *hc, int status);

/* ---- runtime ---- */

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
struct proxy_upstream;
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
    struct proxy_upstream *idle; /* pooled keep-alive connections */
    int nidle;
};

#define LAT_BUCKETS 14
extern const double proxy_lat_bounds[LAT_BUCKETS - 1];

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
};

struct proxy_listener {
    int refs;
    struct proxy *px;
    struct proxy_listener_conf conf;
    struct net_addr addr;
    int fd;
    int port;
    char port_str[8];
    ev_io accept_io;
    ev_timer resume_timer; /* accepting paused for lack of file descriptors */
    double emfile_logged;
    unsigned long emfile_count;
    int nconns;
    bool removed, paused;
};

struct proxy_conn;

/* An entry in the FIFO of sockets that epoll reported ready (see conn.c). */
struct proxy_ready {
    struct proxy_ready *next, *prev;
    void (*fn)(struct proxy_ready *r, int revents);
    int revents;
    bool queued;
};

struct proxy {
    struct ev_loop *loop;
    char *config_path;
    struct proxy_config *conf;
    struct proxy_listener **listeners;
    size_t nlisteners;
    struct proxy_tg **tgs;
    size_t ntgs;
    struct httpd *admin;
    FILE *access_log;
    struct buf access_buf;
    ev_timer log_timer;
    struct proxy_conn *conns;
    struct proxy_ready ready; /* list head */
    ev_prepare ready_watcher;
    uint64_t conns_total, conns_active, requests_total, conn_errors_total;
    uint64_t fixed_responses, redirects, bad_requests;
    bool shutting_down;
    ev_timer shutdown_timer;
    /* Scratch memory that connection buffers borrow within one callback. */
    char scratch_in[65536], scratch_out[65536], scratch_up_in[65536], scratch_up_out[65536], scratch_head[65536];
};

/* proxy.c: apply a config (initial or reload); 0 or -1 with *err. */
int proxy_apply(struct proxy *px, struct proxy_config *conf, char **err);
struct proxy_tg *proxy_find_tg(struct proxy *px, const char *name);
/* Creates or replaces group settings and targets from <conf> (copied). */
struct proxy_tg *proxy_tg_upsert(struct proxy *px, const struct proxy_tg_conf *conf);
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
/* Called when a draining target's last request ends. */
void proxy_target_request_done(struct proxy_target *t);
const char *proxy_target_state_name(enum proxy_target_state s);
/* Drops and frees every pooled connection of <t>. */
void proxy_pool_clear(struct proxy_target *t);

/* conn.c: sets up the ready queue; call once before the loop runs. */
void proxy_conn_init(struct proxy *px);
/* listener.c/conn.c */
void proxy_listener_start(struct proxy_listener *ln);
void proxy_listener_unref(struct proxy_listener *ln);
void proxy_conn_accept(struct proxy_listener *ln, int fd, const struct sockaddr *sa);
/* Closes idle keep-alive client connections (all connections when <all>). */
void proxy_conns_close(struct proxy *px, bool all);
/* Accepts again after a pause (max_connections, or out of file descriptors) once there is room. */
void proxy_listener_resume(struct proxy_listener *ln);
/* Stops accepting and closes the listening socket (idempotent). */
void proxy_listener_close(struct proxy_listener *ln);

/* rules.c */
struct proxy_reqinfo {
    const struct http_msg *m;
    const char *host;
    size_t host_len; /* for matching: without port and trailing dot */
    const char *authority;
    size_t authority_len; /* the Host forwarded to targets (absolute-form's authority wins) */
    const char *path, *query;
    size_t path_len, query_len; /* path normalised (http_normalize_path) */
    bool has_query;
    const struct sockaddr *peer;
};
/* Returns the action for a request: first matching rule by priority, else default. */
const struct proxy_action *proxy_route(const struct proxy_listener_conf *ln, const struct proxy_reqinfo *ri);
bool proxy_cond_match(const struct proxy_cond *c, const struct proxy_reqinfo *ri);
/* Picks a target group from a forward action (smooth weighted round robin). */
struct proxy_tg *proxy_fwd_pick(struct proxy_action *a);
/* Expands a redirect template into <out>. */
void proxy_redirect_expand(const char *tpl, const struct proxy_reqinfo *ri, int port, struct buf *out);

/* health.c */
void proxy_hc_start(struct proxy_target *t);
void proxy_hc_stop(struct proxy_target *t);

/* dns.c: members of <tg> from its dns targets, re-resolved at the TTL. */
int proxy_dns_start(struct proxy_tg *tg);
void proxy_dns_stop(struct proxy_tg *tg);

/* workers.c: runs conf->workers worker processes (<worker_argv> with the
 * report-pipe fd put at <fd_slot>) and the public admin API; returns the exit code. */
int proxy_master_run(const struct proxy_config *conf, char *const *worker_argv, int fd_slot);

/* admin.c */
int proxy_admin_start(struct proxy *px, char **err);
void proxy_metrics_observe(struct proxy_tg *tg, int status, double seconds);
void proxy_access_log(struct proxy *px, const char *line, size_t len);

#endif
