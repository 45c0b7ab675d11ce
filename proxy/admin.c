/* admin.c -- berth-proxy admin API (SPEC §2) and its Prometheus metrics: HTTP only; the numbers come
 * from tgroup.c and stats.c. */
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>

#include "berth/alloc.h"
#include "berth/config.h"
#include "berth/httpd.h"
#include "berth/log.h"
#include "berth/util.h"
#include "admin.h"
#include "listener.h"
#include "proxy.h"
#include "stats.h"
#include "tgroup.h"

/* ---- JSON views ---- */

static json_t *target_json(const struct proxy_target *t, double now, double span)
{
    json_t *o =
        json_pack("{s:s,s:s,s:i,s:I,s:f,s:I}", "address", t->addr_str, "state", proxy_target_state_name(t->state),
                  "in_flight", t->outstanding, "requests", (json_int_t)t->requests, "request_rate",
                  proxy_rate_get(&t->rate, now, span), "connection_errors", (json_int_t)t->conn_errors);
    if (t->id)
        json_object_set_new(o, "id", json_string(t->id));
    if (t->hc_last[0])
        json_object_set_new(o, "health_check", json_string(t->hc_last));
    if (t->ejected_until > now)
        json_object_set_new(o, "ejected_for_s", json_real(t->ejected_until - now));
    if (t->from_dns)
        json_object_set_new(o, "from_dns", json_true());
    return o;
}

static json_t *tg_json(const struct proxy_tg *tg)
{
    static const char *const algos[] = {"round_robin", "least_outstanding_requests"};
    double now = util_now();
    const struct proxy_tg_conf *c = &tg->conf;
    json_t *targets = json_array();
    double span = proxy_tg_rate_span(tg, now);
    for (size_t i = 0; i < tg->ntargets; i++)
        json_array_append_new(targets, target_json(tg->targets[i], now, span));
    for (size_t i = 0; i < tg->ndraining; i++)
        json_array_append_new(targets, target_json(tg->draining[i], now, span));
    json_t *dns = json_array();
    for (size_t i = 0; i < c->ntargets; i++)
        if (c->targets[i].dns)
            json_array_append_new(dns, json_pack("{s:s,s:i}", "dns", c->targets[i].dns, "port", c->targets[i].port));
    /* Response times since start, per bucket (not cumulative; the last bucket is
     * everything above the last bound): readers take differences for recent figures. */
    json_t *le = json_array(), *counts = json_array(), *classes = json_object();
    for (int k = 0; k < LAT_BUCKETS; k++) {
        if (k < LAT_BUCKETS - 1)
            json_array_append_new(le, json_real(proxy_lat_bounds[k]));
        json_array_append_new(counts, json_integer((json_int_t)tg->lat_hist[k]));
    }
    for (int k = 1; k <= 5; k++) {
        char key[4] = {(char)('0' + k), 'x', 'x', 0};
        json_object_set_new(classes, key, json_integer((json_int_t)tg->by_class[k]));
    }
    json_t *stats = json_pack("{s:o,s:o,s:o}", "latency_le_s", le, "latency_counts", counts, "responses", classes);
    return json_pack("{s:s,s:s,s:{s:b,s:s,s:i,s:f,s:f,s:i,s:i,s:s},s:f,s:f,s:f,s:f,s:o,s:o,s:o}", "name", c->name,
                     "algorithm", algos[c->algorithm], "health_check", "enabled", c->hc.enabled, "path", c->hc.path,
                     "port", c->hc.port, "interval_s", c->hc.interval_s, "timeout_s", c->hc.timeout_s,
                     "healthy_threshold", c->hc.healthy_threshold, "unhealthy_threshold", c->hc.unhealthy_threshold,
                     "matcher", c->hc.matcher, "deregistration_delay_s", c->deregistration_delay_s, "slow_start_s",
                     c->slow_start_s, "connect_timeout_s", c->connect_timeout_s, "response_timeout_s",
                     c->response_timeout_s, "targets", targets, "dns_targets", dns, "stats", stats);
}

/* ---- metrics ---- */

static void tls_metrics(struct proxy *px, struct buf *b)
{
    static const char *const versions[] = {"TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"};
    buf_printf(b, "# HELP berth_proxy_tls_handshakes_total TLS handshakes on HTTPS listeners, by result and "
                  "protocol version.\n# TYPE berth_proxy_tls_handshakes_total counter\n");
    for (int v = 0; v < 4; v++)
        buf_printf(b, "berth_proxy_tls_handshakes_total{result=\"ok\",version=\"%s\"} %llu\n", versions[v],
                   (unsigned long long)px->tls_ok[v]);
    buf_printf(b,
               "berth_proxy_tls_handshakes_total{result=\"failed\",version=\"\"} %llu\n"
               "berth_proxy_tls_handshakes_total{result=\"timeout\",version=\"\"} %llu\n"
               "# HELP berth_proxy_tls_resumed_handshakes_total Completed handshakes that resumed a session.\n"
               "# TYPE berth_proxy_tls_resumed_handshakes_total counter\nberth_proxy_tls_resumed_handshakes_total %llu\n"
               "# HELP berth_proxy_tls_certificate_expiry_seconds When each listener certificate expires (Unix time).\n"
               "# TYPE berth_proxy_tls_certificate_expiry_seconds gauge\n",
               (unsigned long long)px->tls_failed, (unsigned long long)px->tls_timeouts,
               (unsigned long long)px->tls_resumed);
    for (size_t i = 0; i < px->nlisteners; i++) {
        struct proxy_listener *ln = px->listeners[i];
        for (size_t k = 0; ln->tls && k < tls_server_ncerts(ln->tls); k++) {
            char lname[512], cname[512];
            buf_printf(b, "berth_proxy_tls_certificate_expiry_seconds{listener=\"%s\",certificate=\"%s\"} %.0f\n",
                       util_prom_escape(ln->conf.name, lname, sizeof lname),
                       util_prom_escape(tls_server_cert_name(ln->tls, k), cname, sizeof cname),
                       tls_server_cert_expiry(ln->tls, k));
        }
    }
}

static void metrics(void *arg, struct buf *b)
{
    struct proxy *px = arg;
    double now = util_now();
    buf_printf(b, "# HELP berth_proxy_requests_total Requests forwarded, by target group and status class.\n"
                  "# TYPE berth_proxy_requests_total counter\n");
    for (size_t i = 0; i < px->ntgs; i++) {
        struct proxy_tg *tg = px->tgs[i];
        char tgn[512];
        util_prom_escape(tg->conf.name, tgn, sizeof tgn);
        for (int k = 1; k <= 5; k++)
            buf_printf(b, "berth_proxy_requests_total{target_group=\"%s\",class=\"%dxx\"} %llu\n", tgn, k,
                       (unsigned long long)tg->by_class[k]);
    }
    buf_printf(b, "# HELP berth_proxy_request_duration_seconds Time from request head to response end.\n"
                  "# TYPE berth_proxy_request_duration_seconds histogram\n");
    for (size_t i = 0; i < px->ntgs; i++) {
        struct proxy_tg *tg = px->tgs[i];
        char tgn[512];
        util_prom_escape(tg->conf.name, tgn, sizeof tgn);
        uint64_t cum = 0;
        for (int k = 0; k < LAT_BUCKETS; k++) {
            cum += tg->lat_hist[k];
            if (k < LAT_BUCKETS - 1)
                buf_printf(b, "berth_proxy_request_duration_seconds_bucket{target_group=\"%s\",le=\"%g\"} %llu\n",
                           tgn, proxy_lat_bounds[k], (unsigned long long)cum);
            else
                buf_printf(b, "berth_proxy_request_duration_seconds_bucket{target_group=\"%s\",le=\"+Inf\"} %llu\n",
                           tgn, (unsigned long long)cum);
        }
        buf_printf(b, "berth_proxy_request_duration_seconds_sum{target_group=\"%s\"} %.6f\n", tgn,
                   tg->lat_sum);
        buf_printf(b, "berth_proxy_request_duration_seconds_count{target_group=\"%s\"} %llu\n", tgn,
                   (unsigned long long)tg->lat_count);
    }
    buf_printf(b,
               "# HELP berth_proxy_connections_active Client connections open now.\n"
               "# TYPE berth_proxy_connections_active gauge\nberth_proxy_connections_active %llu\n"
               "# HELP berth_proxy_connections_total Client connections accepted.\n"
               "# TYPE berth_proxy_connections_total counter\nberth_proxy_connections_total %llu\n"
               "# HELP berth_proxy_bad_requests_total Requests refused as malformed or not allowed (400, 405, 408, 431, 501).\n"
               "# TYPE berth_proxy_bad_requests_total counter\nberth_proxy_bad_requests_total %llu\n"
               "# HELP berth_proxy_target_connection_errors_total Connections to targets that failed.\n"
               "# TYPE berth_proxy_target_connection_errors_total counter\n"
               "berth_proxy_target_connection_errors_total %llu\n",
               (unsigned long long)px->conns_active, (unsigned long long)px->conns_total,
               (unsigned long long)px->bad_requests, (unsigned long long)px->conn_errors_total);
    buf_printf(b, "# HELP berth_proxy_healthy_hosts Registered targets passing health checks.\n"
                  "# TYPE berth_proxy_healthy_hosts gauge\n"
                  "# HELP berth_proxy_unhealthy_hosts Registered targets not (yet) passing health checks.\n"
                  "# TYPE berth_proxy_unhealthy_hosts gauge\n");
    for (size_t i = 0; i < px->ntgs; i++) {
        struct proxy_tg *tg = px->tgs[i];
        char tgn[512];
        util_prom_escape(tg->conf.name, tgn, sizeof tgn);
        int h = 0, u = 0;
        for (size_t k = 0; k < tg->ntargets; k++) {
            if (tg->targets[k]->state == TS_HEALTHY)
                h++;
            else
                u++;
        }
        buf_printf(
            b,
            "berth_proxy_healthy_hosts{target_group=\"%s\"} %d\nberth_proxy_unhealthy_hosts{target_group=\"%s\"} %d\n",
            tgn, h, tgn, u);
    }
    buf_printf(b,
               "# HELP berth_proxy_target_request_rate Requests per second over the last %d s (or since the group's "
               "first request in them).\n"
               "# TYPE berth_proxy_target_request_rate gauge\n"
               "# HELP berth_proxy_target_requests_total Requests sent to the target.\n"
               "# TYPE berth_proxy_target_requests_total counter\n"
               "# HELP berth_proxy_target_in_flight Requests at the target now.\n"
               "# TYPE berth_proxy_target_in_flight gauge\n"
               "# HELP berth_proxy_target_connection_failures_total Connections to the target that failed.\n"
               "# TYPE berth_proxy_target_connection_failures_total counter\n",
               RATE_WINDOW_S);
    for (size_t i = 0; i < px->ntgs; i++) {
        struct proxy_tg *tg = px->tgs[i];
        char tgn[512];
        util_prom_escape(tg->conf.name, tgn, sizeof tgn);
        double span = proxy_tg_rate_span(tg, now);
        for (size_t k = 0; k < tg->ntargets; k++) {
            struct proxy_target *t = tg->targets[k];
            char lbl[1600], id[512], addr[160];
            snprintf(lbl, sizeof lbl, "target_group=\"%s\",target=\"%s\",id=\"%s\"", tgn,
                     util_prom_escape(t->addr_str, addr, sizeof addr), util_prom_escape(t->id ? t->id : "", id, sizeof id));
            buf_printf(b,
                       "berth_proxy_target_request_rate{%s} %.3f\nberth_proxy_target_requests_total{%s} %llu\n"
                       "berth_proxy_target_in_flight{%s} %d\nberth_proxy_target_connection_failures_total{%s} %llu\n",
                       lbl, proxy_rate_get(&t->rate, now, span), lbl, (unsigned long long)t->requests, lbl,
                       t->outstanding, lbl, (unsigned long long)t->conn_errors);
        }
    }
    tls_metrics(px, b);
}

/* ---- API ---- */

static json_t *listener_json(const struct proxy_listener *ln)
{
    json_t *rules = json_array();
    for (size_t i = 0; i < ln->conf.nrules; i++)
        json_array_append_new(rules, json_integer(ln->conf.rules[i].priority));
    json_t *j = json_pack("{s:s,s:s,s:s,s:i,s:o}", "name", ln->conf.name, "listen", ln->conf.listen, "protocol",
                          ln->tls ? "HTTPS" : "HTTP", "connections", ln->nconns, "rule_priorities", rules);
    if (ln->tls) {
        json_t *certs = json_array();
        for (size_t i = 0; i < ln->conf.ncerts; i++)
            json_array_append_new(certs, json_pack("{s:s,s:s}", "cert", ln->conf.certs[i].cert, "key",
                                                   ln->conf.certs[i].key));
        json_t *loaded = json_array();
        for (size_t i = 0; i < tls_server_ncerts(ln->tls); i++)
            json_array_append_new(loaded, json_pack("{s:s,s:f}", "name", tls_server_cert_name(ln->tls, i),
                                                    "not_after", tls_server_cert_expiry(ln->tls, i)));
        json_object_set_new(j, "certificates", certs);
        json_object_set_new(j, "loaded_certificates", loaded);
        json_object_set_new(j, "ssl_policy",
                            json_string(ln->conf.ssl_policy ? ln->conf.ssl_policy : tls_policy_names[0]));
    }
    return j;
}

static struct proxy_listener *find_listener(struct proxy *px, const char *name)
{
    for (size_t i = 0; i < px->nlisteners; i++)
        if (strcmp(px->listeners[i]->conf.name, name) == 0)
            return px->listeners[i];
    return NULL;
}

static bool action_refs_ok(struct proxy *px, const struct proxy_action *a, char **missing)
{
    for (size_t i = 0; i < a->nfwd; i++)
        if (!proxy_find_tg(px, a->fwd[i].tg_name)) {
            *missing = a->fwd[i].tg_name;
            return false;
        }
    return true;
}

static void put_rule(struct proxy *px, struct httpd_req *req, struct proxy_listener *ln, int prio, json_t *body)
{
    char *err = NULL, *missing;
    if (json_is_object(body) && !json_object_get(body, "priority"))
        json_object_set_new(body, "priority", json_integer(prio));
    struct proxy_rule r;
    if (proxy_rule_parse(body, "rule", &r, &err) < 0) {
        httpd_respond_error(req, 400, "InvalidParameter", "%s", err);
        free(err);
        proxy_rule_free(&r);
        return;
    }
    if (r.priority != prio) {
        httpd_respond_error(req, 400, "InvalidParameter", "rule.priority: %d does not match the path (%d)", r.priority,
                            prio);
        proxy_rule_free(&r);
        return;
    }
    if (!action_refs_ok(px, &r.action, &missing)) {
        httpd_respond_error(req, 400, "InvalidParameter", "rule.action.forward: no target group named \"%s\"", missing);
        proxy_rule_free(&r);
        return;
    }
    struct proxy_listener_conf *l = &ln->conf;
    size_t i = 0;
    while (i < l->nrules && l->rules[i].priority < prio)
        i++;
    int status = 200;
    if (i < l->nrules && l->rules[i].priority == prio) {
        proxy_rule_free(&l->rules[i]);
        l->rules[i] = r;
    } else {
        l->rules = xrealloc(l->rules, (l->nrules + 1) * sizeof *l->rules);
        memmove(&l->rules[i + 1], &l->rules[i], (l->nrules - i) * sizeof *l->rules);
        l->rules[i] = r;
        l->nrules++;
        status = 201;
    }
    proxy_listener_resolve(ln);
    log_info("listener %s: rule %d set through the admin API", l->name, prio);
    httpd_respond_json(req, status, listener_json(ln));
}

static void delete_rule(struct httpd_req *req, struct proxy_listener *ln, int prio)
{
    struct proxy_listener_conf *l = &ln->conf;
    for (size_t i = 0; i < l->nrules; i++)
        if (l->rules[i].priority == prio) {
            proxy_rule_free(&l->rules[i]);
            memmove(&l->rules[i], &l->rules[i + 1], (l->nrules - i - 1) * sizeof *l->rules);
            l->nrules--;
            proxy_listener_resolve(ln);
            log_info("listener %s: rule %d removed through the admin API", l->name, prio);
            httpd_respond_json(req, 200, listener_json(ln));
            return;
        }
    httpd_respond_error(req, 404, "NotFound", "listener %s has no rule with priority %d", l->name, prio);
}

static void put_group(struct proxy *px, struct httpd_req *req, const char *name, json_t *body)
{
    char *err = NULL;
    if (json_is_object(body) && !json_object_get(body, "name"))
        json_object_set_new(body, "name", json_string(name));
    struct proxy_tg_conf conf;
    if (proxy_tg_conf_parse(body, "target_group", &conf, &err) < 0) {
        httpd_respond_error(req, 400, "InvalidParameter", "%s", err);
        free(err);
        proxy_tg_conf_free(&conf);
        return;
    }
    if (strcmp(conf.name, name) != 0) {
        httpd_respond_error(req, 400, "InvalidParameter", "target_group.name: \"%s\" does not match the path",
                            conf.name);
        proxy_tg_conf_free(&conf);
        return;
    }
    bool existed = proxy_find_tg(px, name) != NULL;
    struct proxy_tg *tg = proxy_tg_upsert(px, &conf);
    proxy_tg_conf_free(&conf);
    log_info("target group %s %s through the admin API", name, existed ? "replaced" : "created");
    httpd_respond_json(req, existed ? 200 : 201, tg_json(tg));
}

/* Reads {"targets":[...]} (or one target object when <one>). */
static int read_targets(json_t *body, bool one, struct proxy_target_conf **out, size_t *n, char **err)
{
    char p[64];
    json_t *arr = one ? NULL : json_object_get(body, "targets");
    if (!one && (!json_is_object(body) || !json_is_array(arr)))
        return cfg_error(err, "targets", "body must be {\"targets\": [...]}");
    *n = one ? 1 : json_array_size(arr);
    *out = xcalloc(*n ? *n : 1, sizeof **out);
    for (size_t i = 0; i < *n; i++) {
        snprintf(p, sizeof p, one ? "target" : "targets[%zu]", i);
        if (proxy_target_conf_parse(one ? body : json_array_get(arr, i), p, &(*out)[i], err) < 0)
            return -1;
        if ((*out)[i].dns)
            return cfg_error(err, p, "dns targets are set with PUT /v1/target-groups/{tg}");
    }
    return 0;
}

static void free_targets(struct proxy_target_conf *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        proxy_target_conf_free(&t[i]);
    free(t);
}

static void targets_api(struct proxy *px, struct httpd_req *req, struct proxy_tg *tg, json_t *body)
{
    char *err = NULL;
    struct proxy_target_conf *t = NULL;
    size_t n = 0;
    bool one = req->method_id == HTTP_M_POST;
    if (read_targets(body, one, &t, &n, &err) < 0) {
        httpd_respond_error(req, 400, "InvalidParameter", "%s", err);
        free(err);
        free_targets(t, n);
        return;
    }
    if (one) {
        if (proxy_tg_add_target(tg, &t[0]) < 0) {
            httpd_respond_error(req, 409, "Conflict", "target %s is already registered in %s", t[0].address,
                                tg->conf.name);
            free_targets(t, n);
            return;
        }
    } else {
        proxy_tg_set_targets(tg, t, n, false);
    }
    free_targets(t, n);
    httpd_respond_json(req, one ? 201 : 200, tg_json(tg));
}

/* ---- routes ---- */

/* The admin tokens in force (a reload replaces the config). */
static const struct auth *tokens(void *arg)
{
    struct proxy *px = arg;
    return &px->conf->auth;
}

static int health(void *arg, json_t *body)
{
    struct proxy *px = arg;
    if (!px->shutting_down)
        return 200;
    json_object_set_new(body, "status", json_string("draining"));
    return 503;
}

static void groups_list(struct httpd_req *req, void *arg)
{
    struct proxy *px = arg;
    json_t *arr = json_array();
    for (size_t i = 0; i < px->ntgs; i++)
        json_array_append_new(arr, tg_json(px->tgs[i]));
    httpd_respond_json(req, 200, json_pack("{s:o}", "target_groups", arr));
}

/* The group named by the path, or NULL after answering 404. */
static struct proxy_tg *group_of(struct proxy *px, struct httpd_req *req)
{
    struct proxy_tg *tg = proxy_find_tg(px, req->segs[2]);
    if (!tg)
        httpd_respond_error(req, 404, "TargetGroupNotFound", "no target group named \"%s\"", req->segs[2]);
    return tg;
}

static void group_get(struct httpd_req *req, void *arg)
{
    struct proxy_tg *tg = group_of(arg, req);
    if (tg)
        httpd_respond_json(req, 200, tg_json(tg));
}

static void group_put(struct httpd_req *req, void *arg)
{
    json_t *body = httpd_body_json(req);
    if (body) {
        put_group(arg, req, req->segs[2], body);
        json_decref(body);
    }
}

static void group_targets(struct httpd_req *req, void *arg)
{
    struct proxy_tg *tg = group_of(arg, req);
    json_t *body = tg ? httpd_body_json(req) : NULL;
    if (body) {
        targets_api(arg, req, tg, body);
        json_decref(body);
    }
}

static void group_target_delete(struct httpd_req *req, void *arg)
{
    struct proxy_tg *tg = group_of(arg, req);
    if (!tg)
        return;
    if (proxy_tg_remove_target(tg, req->segs[4]) < 0)
        httpd_respond_error(req, 404, "TargetNotFound", "target %s is not registered in %s", req->segs[4],
                            tg->conf.name);
    else
        httpd_respond_json(req, 200, tg_json(tg));
}

static void listeners_list(struct httpd_req *req, void *arg)
{
    struct proxy *px = arg;
    json_t *arr = json_array();
    for (size_t i = 0; i < px->nlisteners; i++)
        json_array_append_new(arr, listener_json(px->listeners[i]));
    httpd_respond_json(req, 200, json_pack("{s:o}", "listeners", arr));
}

static void listener_rule(struct httpd_req *req, void *arg)
{
    struct proxy *px = arg;
    struct proxy_listener *ln = find_listener(px, req->segs[2]);
    if (!ln) {
        httpd_respond_error(req, 404, "ListenerNotFound", "no listener named \"%s\"", req->segs[2]);
        return;
    }
    char *end;
    long prio = strtol(req->segs[4], &end, 10);
    if (*end || prio < 1 || prio > 50000) {
        httpd_respond_error(req, 400, "InvalidParameter", "priority \"%s\" must be 1..50000", req->segs[4]);
        return;
    }
    if (req->method_id == HTTP_M_DELETE) {
        delete_rule(req, ln, (int)prio);
        return;
    }
    json_t *body = httpd_body_json(req);
    if (body) {
        put_rule(px, req, ln, (int)prio, body);
        json_decref(body);
    }
}

/* PUT /v1/listeners/{name}/certificates {"certificates": [...], "ssl_policy": optional}: new
 * connections get the new certificates once all of them loaded; open ones keep theirs. */
static void listener_certs(struct httpd_req *req, void *arg)
{
    struct proxy_listener *ln = find_listener(arg, req->segs[2]);
    if (!ln) {
        httpd_respond_error(req, 404, "ListenerNotFound", "no listener named \"%s\"", req->segs[2]);
        return;
    }
    if (!ln->tls) {
        httpd_respond_error(req, 400, "InvalidParameter", "listener %s is HTTP: it takes no certificates",
                            ln->conf.name);
        return;
    }
    json_t *body = httpd_body_json(req);
    if (!body)
        return;
    struct tls_cert_conf *certs = NULL;
    size_t n = 0;
    char *err = NULL;
    json_t *pol = json_object_get(body, "ssl_policy");
    const char *policy = json_is_string(pol) ? json_string_value(pol) : ln->conf.ssl_policy;
    struct tls_server *tls = NULL;
    if (!json_is_object(body) || !json_object_get(body, "certificates"))
        cfg_error(&err, "certificates", "is required");
    else if (pol && !json_is_string(pol))
        cfg_error(&err, "ssl_policy", "must be a string");
    else if (proxy_certs_parse(json_object_get(body, "certificates"), "certificates", &certs, &n, &err) == 0)
        tls = tls_server_new(certs, n, policy, NULL, &err);
    if (!tls) {
        log_warn("listener %s: certificates refused, still serving the previous ones: %s", ln->conf.name, err);
        httpd_respond_error(req, 400, "InvalidCertificate", "%s", err);
    } else {
        proxy_listener_set_tls(ln, tls);
        proxy_certs_free(ln->conf.certs, ln->conf.ncerts);
        ln->conf.certs = certs;
        ln->conf.ncerts = n;
        certs = NULL;
        n = 0;
        if (policy != ln->conf.ssl_policy) {
            free(ln->conf.ssl_policy);
            ln->conf.ssl_policy = xstrdup(policy);
        }
        log_info("listener %s: %zu certificate(s) replaced through the admin API", ln->conf.name, n);
        httpd_respond_json(req, 200, listener_json(ln));
    }
    proxy_certs_free(certs, n);
    free(err);
    json_decref(body);
}

static const struct httpd_route routes[] = {
    {"GET", "/v1/target-groups", groups_list},
    {"GET", "/v1/target-groups/{}", group_get},
    {"PUT", "/v1/target-groups/{}", group_put},
    {"PUT|POST", "/v1/target-groups/{}/targets", group_targets},
    {"DELETE", "/v1/target-groups/{}/targets/{}", group_target_delete},
    {"GET", "/v1/listeners", listeners_list},
    {"PUT|DELETE", "/v1/listeners/{}/rules/{}", listener_rule},
    {"PUT", "/v1/listeners/{}/certificates", listener_certs},
    {NULL, NULL, NULL},
};

static const struct httpd_service service = {routes, health, metrics, tokens};

int proxy_admin_start(struct proxy *px, char **err)
{
    px->admin = httpd_serve(px->loop, px->conf->admin_listen, &service, px, err);
    return px->admin ? 0 : -1;
}
