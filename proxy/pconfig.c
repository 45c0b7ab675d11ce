/* pconfig.c -- berth-proxy configuration: JSON to plain structs, with validation. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "berth/alloc.h"
#include "berth/auth.h"
#include "berth/config.h"
#include "berth/net.h"
#include "berth/util.h"
#include "config.h"

#define PATHLEN 512

static const char *const algos[] = {"round_robin", "least_outstanding_requests", NULL};
static const char *const log_formats[] = {"json", NULL};
static const char *const protocols[] = {"HTTP", "HTTPS", NULL};

static const struct cfg_field hc_fields[] = {
    {"enabled", CFG_BOOL, offsetof(struct proxy_hc_conf, enabled), 0, 0, 1, NULL, NULL, false},
    {"path", CFG_STRING, offsetof(struct proxy_hc_conf, path), 0, 0, 0, "/", NULL, false},
    {"port", CFG_INT, offsetof(struct proxy_hc_conf, port), 0, 65535, 0, NULL, NULL, false},
    {"interval_s", CFG_DOUBLE, offsetof(struct proxy_hc_conf, interval_s), 0.1, 300, 5, NULL, NULL, false},
    {"timeout_s", CFG_DOUBLE, offsetof(struct proxy_hc_conf, timeout_s), 0.05, 120, 2, NULL, NULL, false},
    {"healthy_threshold", CFG_INT, offsetof(struct proxy_hc_conf, healthy_threshold), 1, 10, 2, NULL, NULL, false},
    {"unhealthy_threshold", CFG_INT, offsetof(struct proxy_hc_conf, unhealthy_threshold), 1, 10, 2, NULL, NULL, false},
    {"matcher", CFG_STRING, offsetof(struct proxy_hc_conf, matcher), 0, 0, 0, "200-399", NULL, false},
    CFG_END,
};

static const struct cfg_field tg_fields[] = {
    {"name", CFG_STRING, offsetof(struct proxy_tg_conf, name), 0, 0, 0, NULL, NULL, true},
    {"algorithm", CFG_ENUM, offsetof(struct proxy_tg_conf, algorithm), 0, 0, 0, "round_robin", algos, false},
    {"health_check", CFG_NESTED, 0, 0, 0, 0, NULL, NULL, false},
    {"deregistration_delay_s", CFG_DOUBLE, offsetof(struct proxy_tg_conf, deregistration_delay_s), 0, 3600, 30, NULL, NULL, false},
    {"slow_start_s", CFG_DOUBLE, offsetof(struct proxy_tg_conf, slow_start_s), 0, 900, 0, NULL, NULL, false},
    {"connect_timeout_s", CFG_DOUBLE, offsetof(struct proxy_tg_conf, connect_timeout_s), 0.01, 300, 5, NULL, NULL, false},
    {"response_timeout_s", CFG_DOUBLE, offsetof(struct proxy_tg_conf, response_timeout_s), 0.01, 3600, 60, NULL, NULL, false},
    {"outlier_consecutive_failures", CFG_INT, offsetof(struct proxy_tg_conf, outlier_consecutive_failures), 1, 100, 3, NULL, NULL, false},
    {"outlier_ejection_s", CFG_DOUBLE, offsetof(struct proxy_tg_conf, outlier_ejection_s), 0.1, 3600, 10, NULL, NULL, false},
    {"dns_server", CFG_ADDR, offsetof(struct proxy_tg_conf, dns_server), 0, 0, 0, NULL, NULL, false},
    {"protocol", CFG_ENUM, offsetof(struct proxy_tg_conf, protocol), 0, 0, 0, "HTTP", protocols, false},
    {"ca_file", CFG_STRING, offsetof(struct proxy_tg_conf, ca_file), 0, 0, 0, NULL, NULL, false},
    {"targets", CFG_NESTED, 0, 0, 0, 0, NULL, NULL, false},
    CFG_END,
};

static const struct cfg_field target_fields[] = {
    {"address", CFG_ADDR, offsetof(struct proxy_target_conf, address), 0, 0, 0, NULL, NULL, false},
    {"id", CFG_STRING, offsetof(struct proxy_target_conf, id), 0, 0, 0, NULL, NULL, false},
    {"dns", CFG_STRING, offsetof(struct proxy_target_conf, dns), 0, 0, 0, NULL, NULL, false},
    {"port", CFG_INT, offsetof(struct proxy_target_conf, port), 1, 65535, 80, NULL, NULL, false},
    CFG_END,
};

static const struct cfg_field listener_fields[] = {
    {"name", CFG_STRING, offsetof(struct proxy_listener_conf, name), 0, 0, 0, NULL, NULL, false},
    {"listen", CFG_ADDR, offsetof(struct proxy_listener_conf, listen), 0, 0, 0, NULL, NULL, true},
    {"idle_timeout_s", CFG_DOUBLE, offsetof(struct proxy_listener_conf, idle_timeout_s), 0.1, 4000, 60, NULL, NULL, false},
    {"header_timeout_s", CFG_DOUBLE, offsetof(struct proxy_listener_conf, header_timeout_s), 0.1, 600, 10, NULL, NULL, false},
    {"max_connections", CFG_INT, offsetof(struct proxy_listener_conf, max_connections), 0, 1000000, 0, NULL, NULL, false},
    {"max_header_bytes", CFG_INT, offsetof(struct proxy_listener_conf, max_header_bytes), 1024, 1 << 20, 16384, NULL, NULL, false},
    {"protocol", CFG_ENUM, offsetof(struct proxy_listener_conf, protocol), 0, 0, 0, "HTTP", protocols, false},
    {"certificates", CFG_NESTED, 0, 0, 0, 0, NULL, NULL, false},
    {"ssl_policy", CFG_STRING, offsetof(struct proxy_listener_conf, ssl_policy), 0, 0, 0, NULL, NULL, false},
    {"handshake_timeout_s", CFG_DOUBLE, offsetof(struct proxy_listener_conf, handshake_timeout_s), 0.1, 600, 10, NULL, NULL, false},
    {"rules", CFG_NESTED, 0, 0, 0, 0, NULL, NULL, false},
    {"default_action", CFG_NESTED, 0, 0, 0, 0, NULL, NULL, false},
    CFG_END,
};

static const struct cfg_field admin_fields[] = {
    {"listen", CFG_ADDR, offsetof(struct proxy_config, admin_listen), 0, 0, 0, "127.0.0.1:7401", NULL, false},
    {"tls", CFG_NESTED, 0, 0, 0, 0, NULL, NULL, false},
    CFG_END,
};

static const struct cfg_field log_fields[] = {
    {"path", CFG_STRING, offsetof(struct proxy_config, access_log_path), 0, 0, 0, NULL, NULL, false},
    {"format", CFG_ENUM, offsetof(struct proxy_config, access_log_format), 0, 0, 0, "json", log_formats, false},
    CFG_END,
};

static const struct cfg_field root_fields[] = {
    {"workers", CFG_INT, offsetof(struct proxy_config, workers), 1, 64, 1, NULL, NULL, false},
    {"auth", CFG_NESTED, 0, 0, 0, 0, NULL, NULL, false},
    {"shutdown_timeout_s", CFG_DOUBLE, offsetof(struct proxy_config, shutdown_timeout_s), 0, 3600, 30, NULL, NULL, false},
    {"admin", CFG_NESTED, 0, 0, 0, 0, NULL, NULL, false},
    {"access_log", CFG_NESTED, 0, 0, 0, 0, NULL, NULL, false},
    {"listeners", CFG_NESTED, 0, 0, 0, 0, NULL, NULL, false},
    {"target_groups", CFG_NESTED, 0, 0, 0, 0, NULL, NULL, false},
    CFG_END,
};

/* Reads a non-empty array of non-empty strings. */
static int read_strings(json_t *v, const char *path, char ***out, size_t *n, char **err)
{
    if (!json_is_array(v) || json_array_size(v) == 0)
        return cfg_error(err, path, "must be a non-empty array of strings");
    *n = json_array_size(v);
    *out = xcalloc(*n, sizeof **out);
    for (size_t i = 0; i < *n; i++) {
        json_t *s = json_array_get(v, i);
        if (!json_is_string(s) || json_string_length(s) == 0) {
            char p[PATHLEN];
            cfg_path_index(p, sizeof p, path, i);
            return cfg_error(err, p, "must be a non-empty string");
        }
        (*out)[i] = xstrdup(json_string_value(s));
    }
    return 0;
}

static void free_strings(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static int read_kv(json_t *v, const char *path, struct proxy_kv **out, size_t *n, char **err)
{
    if (!json_is_object(v) || json_object_size(v) == 0)
        return cfg_error(err, path, "must be a non-empty object of name: [values]");
    *n = 0;
    *out = xcalloc(json_object_size(v), sizeof **out);
    const char *k;
    json_t *vals;
    json_object_foreach(v, k, vals) {
        char p[PATHLEN];
        cfg_path_key(p, sizeof p, path, k);
        struct proxy_kv *kv = &(*out)[(*n)++];
        kv->name = xstrdup(k);
        if (read_strings(vals, p, &kv->values, &kv->nvalues, err) < 0)
            return -1;
    }
    return 0;
}

static int parse_cond(json_t *v, const char *path, struct proxy_cond *c, char **err)
{
    char p[PATHLEN];
    if (!json_is_object(v))
        return cfg_error(err, path, "must be an object");
    const char *k;
    json_t *x;
    json_object_foreach(v, k, x) {
        cfg_path_key(p, sizeof p, path, k);
        if (strcmp(k, "host_header") == 0) {
            if (read_strings(x, p, &c->hosts, &c->nhosts, err) < 0)
                return -1;
        } else if (strcmp(k, "path_pattern") == 0) {
            if (read_strings(x, p, &c->paths, &c->npaths, err) < 0)
                return -1;
        } else if (strcmp(k, "http_request_method") == 0) {
            if (read_strings(x, p, &c->methods, &c->nmethods, err) < 0)
                return -1;
        } else if (strcmp(k, "http_header") == 0) {
            if (read_kv(x, p, &c->headers, &c->nheaders, err) < 0)
                return -1;
        } else if (strcmp(k, "query_string") == 0) {
            if (read_kv(x, p, &c->query, &c->nquery, err) < 0)
                return -1;
        } else if (strcmp(k, "source_ip") == 0) {
            char **s;
            size_t n;
            if (read_strings(x, p, &s, &n, err) < 0)
                return -1;
            c->cidrs = xcalloc(n, sizeof *c->cidrs);
            c->ncidrs = n;
            for (size_t i = 0; i < n; i++)
                if (net_parse_cidr(s[i], &c->cidrs[i]) < 0) {
                    char pi[PATHLEN];
                    cfg_path_index(pi, sizeof pi, p, i);
                    cfg_error(err, pi, "\"%s\" is not an IP prefix like 10.0.0.0/8", s[i]);
                    free_strings(s, n);
                    return -1;
                }
            free_strings(s, n);
        } else {
            return cfg_error(err, p, "unknown condition (expected host_header, path_pattern, "
                                     "http_request_method, http_header, query_string or source_ip)");
        }
    }
    return 0;
}

static int parse_action(json_t *v, const char *path, struct proxy_action *a, char **err)
{
    char p[PATHLEN], q[PATHLEN];
    memset(a, 0, sizeof *a);
    if (!json_is_object(v) || json_object_size(v) != 1)
        return cfg_error(err, path, "must be an object with exactly one of forward, redirect, fixed_response");
    json_t *f;
    if ((f = json_object_get(v, "forward"))) {
        cfg_path_key(p, sizeof p, path, "forward");
        a->kind = ACT_FORWARD;
        if (!json_is_array(f) || json_array_size(f) == 0)
            return cfg_error(err, p, "must be a non-empty array of {target_group, weight}");
        a->nfwd = json_array_size(f);
        a->fwd = xcalloc(a->nfwd, sizeof *a->fwd);
        int total = 0;
        for (size_t i = 0; i < a->nfwd; i++) {
            static const struct cfg_field fwd_fields[] = {
                {"target_group", CFG_STRING, offsetof(struct proxy_fwd, tg_name), 0, 0, 0, NULL, NULL, true},
                {"weight", CFG_INT, offsetof(struct proxy_fwd, weight), 0, 999, 1, NULL, NULL, false},
                CFG_END,
            };
            cfg_path_index(q, sizeof q, p, i);
            if (cfg_read(json_array_get(f, i), q, fwd_fields, &a->fwd[i], err) < 0)
                return -1;
            total += a->fwd[i].weight;
        }
        if (total == 0)
            return cfg_error(err, p, "at least one weight must be above 0");
        return 0;
    }
    if ((f = json_object_get(v, "redirect"))) {
        static const struct cfg_field fields[] = {
            {"status", CFG_INT, offsetof(struct proxy_action, status), 301, 308, 302, NULL, NULL, false},
            {"location", CFG_STRING, offsetof(struct proxy_action, location), 0, 0, 0, NULL, NULL, true},
            CFG_END,
        };
        cfg_path_key(p, sizeof p, path, "redirect");
        a->kind = ACT_REDIRECT;
        if (cfg_read(f, p, fields, a, err) < 0)
            return -1;
        if (a->status != 301 && a->status != 302 && a->status != 303 && a->status != 307 && a->status != 308) {
            cfg_path_key(q, sizeof q, p, "status");
            return cfg_error(err, q, "must be one of 301, 302, 303, 307, 308");
        }
        return 0;
    }
    if ((f = json_object_get(v, "fixed_response"))) {
        static const struct cfg_field fields[] = {
            {"status", CFG_INT, offsetof(struct proxy_action, status), 200, 599, 200, NULL, NULL, false},
            {"content_type", CFG_STRING, offsetof(struct proxy_action, content_type), 0, 0, 0, "text/plain", NULL, false},
            {"body", CFG_STRING, offsetof(struct proxy_action, body), 0, 0, 0, "", NULL, false},
            CFG_END,
        };
        cfg_path_key(p, sizeof p, path, "fixed_response");
        a->kind = ACT_FIXED;
        return cfg_read(f, p, fields, a, err);
    }
    const char *k = json_object_iter_key(json_object_iter(v));
    cfg_path_key(p, sizeof p, path, k);
    return cfg_error(err, p, "unknown action (expected forward, redirect or fixed_response)");
}

int proxy_rule_parse(json_t *v, const char *path, struct proxy_rule *r, char **err)
{
    static const struct cfg_field fields[] = {
        {"priority", CFG_INT, offsetof(struct proxy_rule, priority), 1, 50000, 0, NULL, NULL, true},
        {"conditions", CFG_NESTED, 0, 0, 0, 0, NULL, NULL, true},
        {"action", CFG_NESTED, 0, 0, 0, 0, NULL, NULL, true},
        CFG_END,
    };
    char p[PATHLEN];
    memset(r, 0, sizeof *r);
    if (cfg_read(v, path, fields, r, err) < 0)
        return -1;
    cfg_path_key(p, sizeof p, path, "conditions");
    if (parse_cond(json_object_get(v, "conditions"), p, &r->cond, err) < 0)
        return -1;
    cfg_path_key(p, sizeof p, path, "action");
    return parse_action(json_object_get(v, "action"), p, &r->action, err);
}

static int parse_matcher(struct proxy_hc_conf *hc, const char *path, char **err)
{
    char p[PATHLEN];
    cfg_path_key(p, sizeof p, path, "matcher");
    hc->nranges = 0;
    const char *s = hc->matcher;
    while (*s) {
        char *end;
        long lo = strtol(s, &end, 10), hi = lo;
        if (end == s)
            return cfg_error(err, p, "\"%s\" must be codes or ranges like \"200-399\" or \"200,204\"", hc->matcher);
        s = end;
        if (*s == '-') {
            hi = strtol(s + 1, &end, 10);
            if (end == s + 1)
                return cfg_error(err, p, "\"%s\" has an unfinished range", hc->matcher);
            s = end;
        }
        if (lo < 100 || hi > 599 || lo > hi || hc->nranges == 16)
            return cfg_error(err, p, "\"%s\": codes must be 100..599, ranges low-high, at most 16", hc->matcher);
        hc->ranges[hc->nranges][0] = (int)lo;
        hc->ranges[hc->nranges][1] = (int)hi;
        hc->nranges++;
        if (*s == ',')
            s++;
        else if (*s)
            return cfg_error(err, p, "\"%s\": unexpected '%c'", hc->matcher, *s);
    }
    if (hc->nranges == 0)
        return cfg_error(err, p, "must not be empty");
    return 0;
}

bool proxy_hc_matches(const struct proxy_hc_conf *hc, int status)
{
    for (int i = 0; i < hc->nranges; i++)
        if (status >= hc->ranges[i][0] && status <= hc->ranges[i][1])
            return true;
    return false;
}

int proxy_target_conf_parse(json_t *v, const char *path, struct proxy_target_conf *t, char **err)
{
    memset(t, 0, sizeof *t);
    if (cfg_read(v, path, target_fields, t, err) < 0)
        return -1;
    if (!t->address == !t->dns)
        return cfg_error(err, path, "needs exactly one of \"address\" or \"dns\"");
    return 0;
}

int proxy_tg_conf_parse(json_t *v, const char *path, struct proxy_tg_conf *c, char **err)
{
    char p[PATHLEN], q[PATHLEN];
    memset(c, 0, sizeof *c);
    if (cfg_read(v, path, tg_fields, c, err) < 0)
        return -1;
    cfg_path_key(p, sizeof p, path, "health_check");
    if (cfg_read(json_object_get(v, "health_check"), p, hc_fields, &c->hc, err) < 0)
        return -1;
    if (c->hc.timeout_s >= c->hc.interval_s) {
        cfg_path_key(q, sizeof q, p, "timeout_s");
        return cfg_error(err, q, "must be less than interval_s (%g)", c->hc.interval_s);
    }
    if (c->hc.path[0] != '/') {
        cfg_path_key(q, sizeof q, p, "path");
        return cfg_error(err, q, "must start with /");
    }
    if (parse_matcher(&c->hc, p, err) < 0)
        return -1;
    if (c->ca_file) {
        cfg_path_key(p, sizeof p, path, "ca_file");
        if (c->protocol != PROXY_HTTPS)
            return cfg_error(err, p, "only HTTPS target groups take it (set \"protocol\": \"HTTPS\")");
        if (tls_ca_file_check(c->ca_file, p, err) < 0)
            return -1;
    }
    cfg_path_key(p, sizeof p, path, "targets");
    json_t *arr = cfg_array(json_object_get(v, "targets"), p, err);
    if (!arr)
        return -1;
    c->ntargets = json_array_size(arr);
    c->targets = xcalloc(c->ntargets ? c->ntargets : 1, sizeof *c->targets);
    for (size_t i = 0; i < c->ntargets; i++) {
        cfg_path_index(q, sizeof q, p, i);
        if (proxy_target_conf_parse(json_array_get(arr, i), q, &c->targets[i], err) < 0)
            return -1;
        for (size_t k = 0; k < i; k++)
            if (c->targets[i].address && c->targets[k].address &&
                strcmp(c->targets[i].address, c->targets[k].address) == 0)
                return cfg_error(err, q, "address %s is listed twice", c->targets[i].address);
    }
    return 0;
}

static int cmp_rule(const void *a, const void *b)
{
    return ((const struct proxy_rule *)a)->priority - ((const struct proxy_rule *)b)->priority;
}

static const struct cfg_field cert_fields[] = {
    {"cert", CFG_STRING, offsetof(struct tls_cert_conf, cert), 0, 0, 0, NULL, NULL, true},
    {"key", CFG_STRING, offsetof(struct tls_cert_conf, key), 0, 0, 0, NULL, NULL, true},
    CFG_END,
};

int proxy_certs_parse(json_t *v, const char *path, struct tls_cert_conf **out, size_t *n, char **err)
{
    char p[PATHLEN];
    json_t *arr = cfg_array(v, path, err);
    if (!arr)
        return -1;
    *n = json_array_size(arr);
    *out = xcalloc(*n ? *n : 1, sizeof **out);
    for (size_t i = 0; i < *n; i++) {
        cfg_path_index(p, sizeof p, path, i);
        if (cfg_read(json_array_get(arr, i), p, cert_fields, &(*out)[i], err) < 0)
            return -1;
    }
    return 0;
}

void proxy_certs_free(struct tls_cert_conf *c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cfg_free(cert_fields, &c[i]);
    free(c);
}

static int parse_listener(json_t *v, const char *path, struct proxy_listener_conf *l, char **err)
{
    char p[PATHLEN], q[PATHLEN];
    memset(l, 0, sizeof *l);
    if (cfg_read(v, path, listener_fields, l, err) < 0)
        return -1;
    cfg_path_key(p, sizeof p, path, "certificates");
    if (proxy_certs_parse(json_object_get(v, "certificates"), p, &l->certs, &l->ncerts, err) < 0)
        return -1;
    if (l->protocol == PROXY_HTTPS && l->ncerts == 0)
        return cfg_error(err, p, "an HTTPS listener needs at least one certificate");
    if (l->protocol == PROXY_HTTP && (l->ncerts || l->ssl_policy)) {
        cfg_path_key(p, sizeof p, path, l->ncerts ? "certificates" : "ssl_policy");
        return cfg_error(err, p, "only HTTPS listeners take it (set \"protocol\": \"HTTPS\")");
    }
    if (l->ssl_policy && !tls_policy_known(l->ssl_policy)) {
        cfg_path_key(p, sizeof p, path, "ssl_policy");
        char known[1024] = "";
        for (size_t i = 0; tls_policy_names[i]; i++)
            snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "", tls_policy_names[i]);
        return cfg_error(err, p, "unknown policy \"%s\" (known: %s)", l->ssl_policy, known);
    }
    if (l->max_connections == 0) {
        /* 0 (the default): what the open-files limit allows, each client connection
         * also holding one to a target, with room for listeners, logs and health checks. */
        long n = (util_nofile_limit() - 64) / 2;
        l->max_connections = n < 16 ? 16 : n > 1000000 ? 1000000 : (int)n;
    }
    cfg_path_key(p, sizeof p, path, "rules");
    json_t *arr = cfg_array(json_object_get(v, "rules"), p, err);
    if (!arr)
        return -1;
    l->nrules = json_array_size(arr);
    l->rules = xcalloc(l->nrules ? l->nrules : 1, sizeof *l->rules);
    for (size_t i = 0; i < l->nrules; i++) {
        cfg_path_index(q, sizeof q, p, i);
        if (proxy_rule_parse(json_array_get(arr, i), q, &l->rules[i], err) < 0)
            return -1;
        for (size_t k = 0; k < i; k++)
            if (l->rules[k].priority == l->rules[i].priority)
                return cfg_error(err, q, "priority %d is used by rules[%zu] too", l->rules[i].priority, k);
    }
    qsort(l->rules, l->nrules, sizeof *l->rules, cmp_rule);
    cfg_path_key(p, sizeof p, path, "default_action");
    json_t *da = json_object_get(v, "default_action");
    if (!da)
        return cfg_error(err, p, "is required");
    return parse_action(da, p, &l->default_action, err);
}

static int check_action_refs(const struct proxy_action *a, const struct proxy_config *c, const char *path, char **err)
{
    for (size_t i = 0; i < a->nfwd; i++) {
        size_t k;
        for (k = 0; k < c->ntgs; k++)
            if (strcmp(c->tgs[k].name, a->fwd[i].tg_name) == 0)
                break;
        if (k == c->ntgs) {
            char p[PATHLEN];
            snprintf(p, sizeof p, "%s.forward[%zu].target_group", path, i);
            return cfg_error(err, p, "no target group named \"%s\"", a->fwd[i].tg_name);
        }
    }
    return 0;
}

struct proxy_config *proxy_config_parse(json_t *root, char **err)
{
    char p[PATHLEN], q[PATHLEN];
    struct proxy_config *c = xcalloc(1, sizeof *c);
    if (cfg_read(root, "", root_fields, c, err) < 0 || auth_parse(json_object_get(root, "auth"), "auth", &c->auth, err) < 0)
        goto fail;
    if (cfg_read(json_object_get(root, "admin"), "admin", admin_fields, c, err) < 0 ||
        tls_block_read(json_object_get(json_object_get(root, "admin"), "tls"), "admin.tls", &c->admin_tls, err) < 0)
        goto fail;
    if (cfg_read(json_object_get(root, "access_log"), "access_log", log_fields, c, err) < 0)
        goto fail;

    json_t *arr = cfg_array(json_object_get(root, "target_groups"), "target_groups", err);
    if (!arr)
        goto fail;
    c->ntgs = json_array_size(arr);
    c->tgs = xcalloc(c->ntgs ? c->ntgs : 1, sizeof *c->tgs);
    for (size_t i = 0; i < c->ntgs; i++) {
        cfg_path_index(p, sizeof p, "target_groups", i);
        if (proxy_tg_conf_parse(json_array_get(arr, i), p, &c->tgs[i], err) < 0)
            goto fail;
        for (size_t k = 0; k < i; k++)
            if (strcmp(c->tgs[k].name, c->tgs[i].name) == 0) {
                cfg_path_key(q, sizeof q, p, "name");
                cfg_error(err, q, "target group \"%s\" is defined twice (also target_groups[%zu])", c->tgs[i].name, k);
                goto fail;
            }
    }

    arr = cfg_array(json_object_get(root, "listeners"), "listeners", err);
    if (!arr)
        goto fail;
    c->nlisteners = json_array_size(arr);
    c->listeners = xcalloc(c->nlisteners ? c->nlisteners : 1, sizeof *c->listeners);
    for (size_t i = 0; i < c->nlisteners; i++) {
        struct proxy_listener_conf *l = &c->listeners[i];
        cfg_path_index(p, sizeof p, "listeners", i);
        if (parse_listener(json_array_get(arr, i), p, l, err) < 0)
            goto fail;
        if (!l->name) {
            char n[32];
            snprintf(n, sizeof n, "listener-%zu", i);
            l->name = xstrdup(n);
        }
        for (size_t k = 0; k < i; k++) {
            if (strcmp(c->listeners[k].name, l->name) == 0) {
                cfg_path_key(q, sizeof q, p, "name");
                cfg_error(err, q, "listener name \"%s\" is used twice", l->name);
                goto fail;
            }
            if (strcmp(c->listeners[k].listen, l->listen) == 0) {
                cfg_path_key(q, sizeof q, p, "listen");
                cfg_error(err, q, "%s is used by listeners[%zu] too", l->listen, k);
                goto fail;
            }
        }
        for (size_t r = 0; r < l->nrules; r++) {
            snprintf(q, sizeof q, "%s.rules[priority %d].action", p, l->rules[r].priority);
            if (check_action_refs(&l->rules[r].action, c, q, err) < 0)
                goto fail;
        }
        cfg_path_key(q, sizeof q, p, "default_action");
        if (check_action_refs(&l->default_action, c, q, err) < 0)
            goto fail;
    }
    return c;
fail:
    proxy_config_free(c);
    return NULL;
}

void proxy_target_conf_free(struct proxy_target_conf *t)
{
    cfg_free(target_fields, t);
}

void proxy_tg_conf_free(struct proxy_tg_conf *c)
{
    for (size_t i = 0; i < c->ntargets; i++)
        proxy_target_conf_free(&c->targets[i]);
    free(c->targets);
    cfg_free(hc_fields, &c->hc);
    cfg_free(tg_fields, c);
    memset(c, 0, sizeof *c);
}

void proxy_tg_conf_copy(struct proxy_tg_conf *dst, const struct proxy_tg_conf *src)
{
    *dst = *src;
    dst->name = xstrdup(src->name);
    dst->dns_server = src->dns_server ? xstrdup(src->dns_server) : NULL;
    dst->ca_file = src->ca_file ? xstrdup(src->ca_file) : NULL;
    dst->hc.path = xstrdup(src->hc.path);
    dst->hc.matcher = xstrdup(src->hc.matcher);
    dst->targets = xcalloc(src->ntargets ? src->ntargets : 1, sizeof *dst->targets);
    for (size_t i = 0; i < src->ntargets; i++) {
        const struct proxy_target_conf *s = &src->targets[i];
        struct proxy_target_conf *d = &dst->targets[i];
        d->port = s->port;
        d->address = s->address ? xstrdup(s->address) : NULL;
        d->id = s->id ? xstrdup(s->id) : NULL;
        d->dns = s->dns ? xstrdup(s->dns) : NULL;
    }
}

static void free_kvs(struct proxy_kv *kv, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(kv[i].name);
        free_strings(kv[i].values, kv[i].nvalues);
    }
    free(kv);
}

void proxy_action_free(struct proxy_action *a)
{
    for (size_t i = 0; i < a->nfwd; i++)
        free(a->fwd[i].tg_name);
    free(a->fwd);
    free(a->location);
    free(a->content_type);
    free(a->body);
    memset(a, 0, sizeof *a);
}

void proxy_rule_free(struct proxy_rule *r)
{
    struct proxy_cond *c = &r->cond;
    free_strings(c->hosts, c->nhosts);
    free_strings(c->paths, c->npaths);
    free_strings(c->methods, c->nmethods);
    free_kvs(c->headers, c->nheaders);
    free_kvs(c->query, c->nquery);
    free(c->cidrs);
    proxy_action_free(&r->action);
}

void proxy_listener_conf_free(struct proxy_listener_conf *l)
{
    for (size_t i = 0; i < l->nrules; i++)
        proxy_rule_free(&l->rules[i]);
    free(l->rules);
    proxy_action_free(&l->default_action);
    proxy_certs_free(l->certs, l->ncerts);
    cfg_free(listener_fields, l);
    memset(l, 0, sizeof *l);
}

void proxy_config_free(struct proxy_config *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nlisteners; i++)
        proxy_listener_conf_free(&c->listeners[i]);
    free(c->listeners);
    for (size_t i = 0; i < c->ntgs; i++)
        proxy_tg_conf_free(&c->tgs[i]);
    free(c->tgs);
    cfg_free(root_fields, c);
    auth_free(&c->auth);
    cfg_free(admin_fields, c);
    tls_block_free(&c->admin_tls);
    cfg_free(log_fields, c);
    free(c);
}
