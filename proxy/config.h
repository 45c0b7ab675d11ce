/* config.h -- berth-proxy's configuration: what a file or the admin API says, and nothing else
 * (pconfig.c). The running state built from it (groups, listeners and their resolved routes) lives
 * in tgroup.h and listener.h. */
#ifndef BERTH_PROXY_CONFIG_H
#define BERTH_PROXY_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "berth/auth.h"
#include "berth/net.h"
#include "berth/tls.h"

enum proxy_algo { PROXY_RR, PROXY_LOR };
enum proxy_protocol { PROXY_HTTP, PROXY_HTTPS };
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
    int protocol;  /* PROXY_HTTP, PROXY_HTTPS: TLS to the targets (and their health checks) */
    char *ca_file; /* HTTPS: verify targets' certificates against these CAs (NULL: no verification, as ALB) */
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

struct proxy_fwd {
    char *tg_name;
    int weight;
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
    int protocol;                 /* PROXY_HTTP, PROXY_HTTPS */
    struct tls_cert_conf *certs;  /* HTTPS: the first is the default */
    size_t ncerts;
    char *ssl_policy;             /* an ALB policy name (tls_policy_names) */
    double handshake_timeout_s;   /* HTTPS: a handshake not done by then is closed */
    struct proxy_rule *rules; /* sorted by priority */
    size_t nrules;
    struct proxy_action default_action;
};

struct proxy_config {
    int workers;
    struct auth auth; /* admin API tokens (none: authentication off) */
    char *admin_listen;
    struct tls_block admin_tls; /* admin.tls: HTTPS on the admin API */
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
/* Reads a listener's "certificates" array at <path>. */
int proxy_certs_parse(json_t *v, const char *path, struct tls_cert_conf **out, size_t *n, char **err);
void proxy_certs_free(struct tls_cert_conf *c, size_t n);
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

#endif
