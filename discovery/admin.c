/* admin.c -- berth-dns admin API (Cloud Map's verbs, SPEC §3) and metrics. */
#include <stdlib.h>
#include <string.h>

#include "berth/daemon.h"
#include "berth/buf.h"
#include "berth/httpd.h"
#include "berth/log.h"
#include "dns.h"

static void metrics(void *arg, struct buf *b)
{
    struct dns_server *s = arg;
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

/* ---- routes: /v1/namespaces/{ns}/services/{svc}/instances[/{id}[/health]] ---- */

/* The namespace and service the path names. A write may create its service (<creates>), but only
 * once its body is valid: the caller creates it. NULL *svc with a 404 sent when it does not exist and
 * is not to be created; false when an answer was sent. */
static bool resolve(struct dns_server *s, struct httpd_req *req, bool creates, struct dns_namespace **ns,
                    struct dns_service **svc)
{
    char **g = req->segs;
    *ns = dns_zone_namespace(s->zone, g[2], false);
    if (!*ns) {
        httpd_respond_error(req, 404, "NamespaceNotFound", "no namespace named \"%s\"", g[2]);
        return false;
    }
    *svc = dns_zone_service(s->zone, *ns, g[4], false);
    const char *why = *svc ? NULL : dns_service_name_problem(g[4]);
    if (creates && why) {
        httpd_respond_error(req, 400, "InvalidParameter", "service name \"%s\" %s", g[4], why);
        return false;
    }
    if (!*svc && !creates) {
        httpd_respond_error(req, 404, "ServiceNotFound", "no service \"%s\" in %s", g[4], (*ns)->name);
        return false;
    }
    return true;
}

static void instances_get(struct httpd_req *req, void *arg)
{
    struct dns_namespace *ns;
    struct dns_service *svc;
    if (resolve(arg, req, false, &ns, &svc))
        discover(req, svc);
}

/* PUT .../instances: the whole list (what the scheduler sends every sync). */
static void instances_put(struct httpd_req *req, void *arg)
{
    struct dns_server *s = arg;
    struct dns_zone *z = s->zone;
    struct dns_namespace *ns;
    struct dns_service *svc;
    if (!resolve(s, req, true, &ns, &svc))
        return;
    json_t *body = httpd_body_json(req);
    if (!body)
        return;
    char *err = NULL;
    struct dns_instance **inst;
    size_t cnt;
    json_t *arr = json_is_object(body) ? json_object_get(body, "instances") : body;
    if (dns_instances_parse(arr, "instances", &inst, &cnt, &err) < 0) {
        httpd_respond_error(req, 400, "InvalidParameter", "%s", err);
    } else {
        if (!svc)
            svc = dns_zone_service(z, ns, req->segs[4], true);
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
}

static void instance_put(struct httpd_req *req, void *arg)
{
    struct dns_server *s = arg;
    struct dns_namespace *ns;
    struct dns_service *svc;
    if (!resolve(s, req, true, &ns, &svc))
        return;
    json_t *body = httpd_body_json(req);
    if (!body)
        return;
    char *err = NULL;
    const char *id = req->segs[6];
    struct dns_instance *in = dns_instance_parse(body, id, "instance", &err);
    json_decref(body);
    if (!in) {
        httpd_respond_error(req, 400, "InvalidParameter", "%s", err);
        free(err);
        return;
    }
    if (!svc)
        svc = dns_zone_service(s->zone, ns, req->segs[4], true);
    bool existed = dns_service_find(s->zone, svc, id) != NULL;
    dns_zone_put(s->zone, svc, in);
    httpd_respond_json(req, existed ? 200 : 201, dns_instance_json(in));
}

/* The instance the path names, or NULL after answering 404. */
static struct dns_instance *instance_of(struct dns_server *s, struct httpd_req *req, struct dns_service **svc)
{
    struct dns_namespace *ns;
    if (!resolve(s, req, false, &ns, svc))
        return NULL;
    struct dns_instance *in = dns_service_find(s->zone, *svc, req->segs[6]);
    if (!in)
        httpd_respond_error(req, 404, "InstanceNotFound", "no instance \"%s\" in %s.%s", req->segs[6], (*svc)->name,
                            ns->name);
    return in;
}

/* DELETE .../services/{svc}: the service and its instances (Cloud Map's DeleteService; the scheduler
 * calls it when a service it registered is deleted). */
static void service_delete(struct httpd_req *req, void *arg)
{
    struct dns_server *s = arg;
    struct dns_namespace *ns;
    struct dns_service *svc;
    if (!resolve(s, req, false, &ns, &svc))
        return;
    log_info("%s.%s: deleted (%zu instances)", svc->name, ns->name, svc->n);
    dns_zone_service_delete(s->zone, svc);
    httpd_respond_json(req, 200, json_pack("{s:s}", "deleted", req->segs[4]));
}

static void instance_get(struct httpd_req *req, void *arg)
{
    struct dns_service *svc;
    struct dns_instance *in = instance_of(arg, req, &svc);
    if (in)
        httpd_respond_json(req, 200, dns_instance_json(in));
}

static void instance_delete(struct httpd_req *req, void *arg)
{
    struct dns_server *s = arg;
    struct dns_service *svc;
    if (instance_of(s, req, &svc)) {
        dns_zone_delete(s->zone, svc, req->segs[6]);
        httpd_respond_json(req, 200, json_pack("{s:s}", "deleted", req->segs[6]));
    }
}

static void instance_health(struct httpd_req *req, void *arg)
{
    struct dns_server *s = arg;
    struct dns_service *svc;
    struct dns_instance *in = instance_of(s, req, &svc);
    json_t *body = in ? httpd_body_json(req) : NULL;
    if (!body)
        return;
    json_t *h = json_object_get(body, "healthy");
    if (!json_is_boolean(h) || json_object_size(body) != 1) {
        httpd_respond_error(req, 400, "InvalidParameter", "body must be {\"healthy\": true|false}");
    } else {
        in->healthy = json_is_true(h);
        s->zone->serial++;
        httpd_respond_json(req, 200, dns_instance_json(in));
    }
    json_decref(body);
}

static const struct httpd_route routes[] = {
    {"DELETE", "/v1/namespaces/{}/services/{}", service_delete},
    {"GET", "/v1/namespaces/{}/services/{}/instances", instances_get},
    {"PUT", "/v1/namespaces/{}/services/{}/instances", instances_put},
    {"GET", "/v1/namespaces/{}/services/{}/instances/{}", instance_get},
    {"PUT", "/v1/namespaces/{}/services/{}/instances/{}", instance_put},
    {"DELETE", "/v1/namespaces/{}/services/{}/instances/{}", instance_delete},
    {"PUT", "/v1/namespaces/{}/services/{}/instances/{}/health", instance_health},
    {NULL, NULL, NULL},
};

/* The admin tokens in force (a reload replaces the config). */
static const struct auth *tokens(void *arg)
{
    struct dns_server *s = arg;
    return &s->conf->auth;
}

static const struct httpd_service service = {routes, NULL, metrics, tokens};

int dns_admin_start(struct dns_server *s, char **err)
{
    s->admin = httpd_serve(s->loop, s->conf->admin_listen, &service, s, err);
    return s->admin ? daemon_tls(s->admin, &s->conf->admin_tls, err) : -1;
}
