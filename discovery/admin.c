/* admin.c -- berth-dns admin API (Cloud Map's verbs, SPEC §3) and metrics. */
#include <stdlib.h>
#include <string.h>

#include "berth/buf.h"
#include "berth/httpd.h"
#include "berth/log.h"
#include "dns.h"

static void metrics(struct dns_server *s, struct buf *b)
{
    buf_printf(b, "# HELP berth_dns_queries_total Queries by type.\n# TYPE berth_dns_queries_total counter\n");
    for (int i = 0; i < DNS_STAT_TYPES; i++)
        buf_printf(b, "berth_dns_queries_total{type=\"%s\"} %llu\n", dns_stat_type_names[i],
                   (unsigned long long)s->by_type[i]);
    buf_printf(b, "# HELP berth_dns_responses_total Responses by rcode.\n# TYPE berth_dns_responses_total counter\n");
    for (int i = 0; i < DNS_STAT_RCODES; i++)
        buf_printf(b, "berth_dns_responses_total{rcode=\"%s\"} %llu\n", dns_stat_rcode_names[i],
                   (unsigned long long)s->by_rcode[i]);
    size_t ninst = 0, nsvc = 0;
    for (size_t i = 0; i < s->zone->n; i++) {
        nsvc += s->zone->ns[i]->n;
        for (size_t k = 0; k < s->zone->ns[i]->n; k++)
            ninst += s->zone->ns[i]->svc[k]->n;
    }
    buf_printf(b,
               "# HELP berth_dns_udp_queries_total Queries over UDP.\n"
               "# TYPE berth_dns_udp_queries_total counter\nberth_dns_udp_queries_total %llu\n"
               "# HELP berth_dns_tcp_queries_total Queries over TCP.\n"
               "# TYPE berth_dns_tcp_queries_total counter\nberth_dns_tcp_queries_total %llu\n"
               "# HELP berth_dns_truncated_total Answers sent with TC set.\n"
               "# TYPE berth_dns_truncated_total counter\nberth_dns_truncated_total %llu\n"
               "# HELP berth_dns_forwarded_total Queries forwarded to the recursors.\n"
               "# TYPE berth_dns_forwarded_total counter\nberth_dns_forwarded_total %llu\n"
               "# HELP berth_dns_dropped_total Messages dropped unanswered (responses, unreadable headers).\n"
               "# TYPE berth_dns_dropped_total counter\nberth_dns_dropped_total %llu\n"
               "# HELP berth_dns_rate_limited_total UDP answers held back by the response-rate limit.\n"
               "# TYPE berth_dns_rate_limited_total counter\n"
               "berth_dns_rate_limited_total{action=\"dropped\"} %llu\n"
               "berth_dns_rate_limited_total{action=\"slipped\"} %llu\n"
               "# HELP berth_dns_services Services in all namespaces.\n"
               "# TYPE berth_dns_services gauge\nberth_dns_services %zu\n"
               "# HELP berth_dns_instances Instances in all services.\n"
               "# TYPE berth_dns_instances gauge\nberth_dns_instances %zu\n"
               "# HELP berth_dns_zone_serial The zones' SOA serial (changes with every registration).\n"
               "# TYPE berth_dns_zone_serial gauge\nberth_dns_zone_serial %u\n",
               (unsigned long long)s->udp_queries, (unsigned long long)s->tcp_queries, (unsigned long long)s->truncated,
               (unsigned long long)s->forwarded, (unsigned long long)s->dropped,
               (unsigned long long)s->rrl_dropped, (unsigned long long)s->rrl_slipped, nsvc, ninst, s->zone->serial);
}

/* GET ...?health=HEALTHY|ALL&attr.KEY=VALUE (DiscoverInstances). */
static void discover(struct httpd_req *req, struct dns_service *svc)
{
    char health[32] = "HEALTHY";
    httpd_query_param(req, "health", health, sizeof health);
    bool healthy_only = strcmp(health, "HEALTHY") == 0;
    if (strcmp(health, "HEALTHY_OR_ELSE_ALL") == 0) {
        /* Cloud Map: the healthy instances, or all of them when none is healthy. */
        healthy_only = false;
        for (size_t i = 0; i < svc->n && !healthy_only; i++)
            healthy_only = svc->inst[i]->healthy;
    } else if (!healthy_only && strcmp(health, "ALL") != 0) {
        httpd_respond_error(req, 400, "InvalidParameter", "health: \"%s\" must be HEALTHY, ALL or HEALTHY_OR_ELSE_ALL",
                            health);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < svc->n; i++) {
        struct dns_instance *in = svc->inst[i];
        if (healthy_only && !in->healthy)
            continue;
        bool match = true;
        for (const char *p = req->query; p && *p && match;) {
            const char *amp = strchr(p, '&');
            size_t len = amp ? (size_t)(amp - p) : strlen(p);
            if (len > 5 && strncmp(p, "attr.", 5) == 0) {
                char key[256], val[512];
                const char *eq = memchr(p, '=', len);
                size_t kl = eq ? (size_t)(eq - p - 5) : len - 5;
                snprintf(key, sizeof key, "%.*s", (int)kl, p + 5);
                char pname[300];
                snprintf(pname, sizeof pname, "attr.%s", key);
                httpd_query_param(req, pname, val, sizeof val);
                json_t *av = json_object_get(in->attributes, key);
                match = av && strcmp(json_string_value(av), val) == 0;
            }
            p = amp ? amp + 1 : NULL;
        }
        if (match)
            json_array_append_new(arr, dns_instance_json(in));
    }
    httpd_respond_json(req, 200, json_pack("{s:o}", "instances", arr));
}

static void handle(struct httpd_req *req, void *arg)
{
    struct dns_server *s = arg;
    struct dns_zone *z = s->zone;
    int n = req->nsegs;
    char **g = req->segs;
    enum http_method m = req->method_id;
    if (n == 1 && strcmp(g[0], "healthz") == 0 && m == HTTP_M_GET) {
        httpd_respond(req, 200, "application/json", "{\"status\":\"ok\"}\n", 16);
        return;
    }
    if (n == 1 && strcmp(g[0], "metrics") == 0 && m == HTTP_M_GET) {
        struct buf b;
        buf_init(&b, 1u << 20);
        metrics(s, &b);
        httpd_respond(req, 200, "text/plain; version=0.0.4", buf_head(&b), b.len);
        buf_free(&b);
        return;
    }
    /* /v1/namespaces/{ns}/services/{svc}/instances[/{id}[/health]] */
    if (!(n >= 6 && strcmp(g[0], "v1") == 0 && strcmp(g[1], "namespaces") == 0 && strcmp(g[3], "services") == 0 &&
          strcmp(g[5], "instances") == 0 && n <= 8)) {
        httpd_respond_error(req, 404, "NotFound", "no such endpoint: %s %s", req->method, req->path);
        return;
    }
    struct dns_namespace *ns = dns_zone_namespace(z, g[2], false);
    if (!ns) {
        httpd_respond_error(req, 404, "NamespaceNotFound", "no namespace named \"%s\"", g[2]);
        return;
    }
    struct dns_service *svc = dns_zone_service(z, ns, g[4], false);
    const char *why = svc ? NULL : dns_service_name_problem(g[4]);
    bool creates = m == HTTP_M_PUT && (n == 6 || n == 7);
    if (creates && why) {
        httpd_respond_error(req, 400, "InvalidParameter", "service name \"%s\" %s", g[4], why);
        return;
    }
    if (!svc && !creates) {
        httpd_respond_error(req, 404, "ServiceNotFound", "no service \"%s\" in %s", g[4], ns->name);
        return;
    }
    if (n == 6 && m == HTTP_M_GET) {
        discover(req, svc);
        return;
    }
    /* A write creates its service only once the body is valid: a refused PUT changes nothing. */
    char *err = NULL;
    if (n == 6 && m == HTTP_M_PUT) {
        json_t *body = httpd_body_json(req);
        if (!body)
            return;
        struct dns_instance **inst;
        size_t cnt;
        json_t *arr = json_is_object(body) ? json_object_get(body, "instances") : body;
        if (dns_instances_parse(arr, "instances", &inst, &cnt, &err) < 0) {
            httpd_respond_error(req, 400, "InvalidParameter", "%s", err);
        } else {
            if (!svc)
                svc = dns_zone_service(z, ns, g[4], true);
            uint32_t serial = z->serial;
            size_t before = svc->n;
            dns_zone_replace(z, svc, inst, cnt);
            free(inst);
            /* Registrars re-send full lists periodically: only a change in size is news. */
            if (before != cnt)
                log_info("%s.%s: %zu instances (was %zu)", svc->name, ns->name, cnt, before);
            else
                log_debug("%s.%s: %zu instances replaced (serial %u -> %u)", svc->name, ns->name, cnt, serial, z->serial);
            httpd_respond_json(req, 200, json_pack("{s:i}", "instances", (int)cnt));
        }
        free(err);
        json_decref(body);
        return;
    }
    const char *id = g[6];
    if (n == 7 && m == HTTP_M_PUT) {
        json_t *body = httpd_body_json(req);
        if (!body)
            return;
        struct dns_instance *in = dns_instance_parse(body, id, "instance", &err);
        json_decref(body);
        if (!in) {
            httpd_respond_error(req, 400, "InvalidParameter", "%s", err);
            free(err);
            return;
        }
        if (!svc)
            svc = dns_zone_service(z, ns, g[4], true);
        bool existed = dns_service_find(z, svc, id) != NULL;
        dns_zone_put(z, svc, in);
        httpd_respond_json(req, existed ? 200 : 201, dns_instance_json(in));
        return;
    }
    struct dns_instance *in = dns_service_find(z, svc, id);
    if (n == 7 && m == HTTP_M_GET && in) {
        httpd_respond_json(req, 200, dns_instance_json(in));
        return;
    }
    if (n == 7 && m == HTTP_M_DELETE) {
        if (dns_zone_delete(z, svc, id) < 0)
            httpd_respond_error(req, 404, "InstanceNotFound", "no instance \"%s\" in %s.%s", id, svc->name, ns->name);
        else
            httpd_respond_json(req, 200, json_pack("{s:s}", "deleted", id));
        return;
    }
    if (n == 8 && strcmp(g[7], "health") == 0 && m == HTTP_M_PUT) {
        json_t *body = httpd_body_json(req);
        if (!body)
            return;
        json_t *h = json_object_get(body, "healthy");
        if (!in) {
            httpd_respond_error(req, 404, "InstanceNotFound", "no instance \"%s\" in %s.%s", id, svc->name, ns->name);
        } else if (!json_is_boolean(h) || json_object_size(body) != 1) {
            httpd_respond_error(req, 400, "InvalidParameter", "body must be {\"healthy\": true|false}");
        } else {
            in->healthy = json_is_true(h);
            z->serial++;
            httpd_respond_json(req, 200, dns_instance_json(in));
        }
        json_decref(body);
        return;
    }
    if (!in && n >= 7) {
        httpd_respond_error(req, 404, "InstanceNotFound", "no instance \"%s\" in %s.%s", id, svc->name, ns->name);
        return;
    }
    httpd_respond_error(req, 404, "NotFound", "no such endpoint: %s %s", req->method, req->path);
}

/* The tokens of the config in force (a reload may change them). */
static int authz(const struct httpd_req *req, void *arg)
{
    struct dns_server *s = arg;
    return httpd_authz_tokens(req, &s->conf->auth);
}

int dns_admin_start(struct dns_server *s, char **err)
{
    s->admin = httpd_start(s->loop, s->conf->admin_listen, handle, s, err);
    if (s->admin)
        httpd_set_authz(s->admin, authz, s);
    return s->admin ? 0 : -1;
}
