/* dconfig.c -- berth-dns configuration: JSON to a config and a zone, with path-naming errors. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/alloc.h"
#include "berth/auth.h"
#include "berth/config.h"
#include "dns.h"

static const struct cfg_field root_fields[] = {
    {"listen", CFG_ADDR, offsetof(struct dns_config, listen), 0, 0, 0, "127.0.0.1:8600", NULL, false},
    {"admin", CFG_NESTED, 0, 0, 0, 0, NULL, NULL, false},
    {"ttl_s", CFG_INT, offsetof(struct dns_config, ttl_s), 0, 86400, 5, NULL, NULL, false},
    {"tcp_idle_timeout_s", CFG_DOUBLE, offsetof(struct dns_config, tcp_idle_timeout_s), 0.1, 3600, 10, NULL, NULL, false},
    {"recursors", CFG_NESTED, 0, 0, 0, 0, NULL, NULL, false},
    {"recursion_allow", CFG_NESTED, 0, 0, 0, 0, NULL, NULL, false},
    {"namespaces", CFG_NESTED, 0, 0, 0, 0, NULL, NULL, false},
    {"udp_max_payload", CFG_INT, offsetof(struct dns_config, udp_max_payload), 512, DNS_MAX_UDP, DNS_UDP_DEFAULT, NULL, NULL, false},
    {"rate_limit", CFG_NESTED, 0, 0, 0, 0, NULL, NULL, false},
    {"auth", CFG_NESTED, 0, 0, 0, 0, NULL, NULL, false},
    CFG_END,
};

static const struct cfg_field rrl_fields[] = {
    {"responses_per_s", CFG_INT, offsetof(struct dns_config, rrl_rate), 0, 1000000, 200, NULL, NULL, false},
    {"slip", CFG_INT, offsetof(struct dns_config, rrl_slip), 0, 10, 2, NULL, NULL, false},
    {"exempt", CFG_NESTED, 0, 0, 0, 0, NULL, NULL, false},
    CFG_END,
};

/* Reads a list of IP prefixes at <path> (<def> when absent) into *out. */
static int parse_cidrs(json_t *v, const char *def, const char *path, struct net_cidr **out, size_t *n, char **err)
{
    char p[128];
    json_t *defj = json_loads(def, 0, NULL);
    json_t *arr = v ? cfg_array(v, path, err) : defj;
    int rc = arr ? 0 : -1;
    *n = arr ? json_array_size(arr) : 0;
    *out = xcalloc(*n ? *n : 1, sizeof **out);
    for (size_t i = 0; i < *n && rc == 0; i++) {
        const char *s = json_string_value(json_array_get(arr, i));
        if (!s || net_parse_cidr(s, &(*out)[i]) < 0) {
            cfg_path_index(p, sizeof p, path, i);
            rc = cfg_error(err, p, "must be an IP prefix like \"127.0.0.0/8\"");
        }
    }
    json_decref(defj);
    return rc;
}

static const struct cfg_field admin_fields[] = {
    {"listen", CFG_ADDR, offsetof(struct dns_config, admin_listen), 0, 0, 0, "127.0.0.1:7402", NULL, false},
    {"tls", CFG_NESTED, 0, 0, 0, 0, NULL, NULL, false},
    CFG_END,
};

struct named {
    char *name;
};
static const struct cfg_field ns_fields[] = {
    {"name", CFG_STRING, offsetof(struct named, name), 0, 0, 0, NULL, NULL, true},
    {"services", CFG_NESTED, 0, 0, 0, 0, NULL, NULL, false},
    CFG_END,
};
static const struct cfg_field svc_fields[] = {
    {"name", CFG_STRING, offsetof(struct named, name), 0, 0, 0, NULL, NULL, true},
    {"instances", CFG_NESTED, 0, 0, 0, 0, NULL, NULL, false},
    CFG_END,
};

int dns_instances_parse(json_t *arr, const char *path, struct dns_instance ***out, size_t *n, char **err)
{
    char p[512];
    json_t *a = cfg_array(arr, path, err);
    if (!a)
        return -1;
    *n = json_array_size(a);
    *out = xcalloc(*n ? *n : 1, sizeof **out);
    for (size_t i = 0; i < *n; i++) {
        cfg_path_index(p, sizeof p, path, i);
        (*out)[i] = dns_instance_parse(json_array_get(a, i), NULL, p, err);
        if (!(*out)[i])
            goto fail;
        for (size_t k = 0; k < i; k++)
            if (strcasecmp((*out)[k]->id, (*out)[i]->id) == 0) {
                char q[600];
                cfg_path_key(q, sizeof q, p, "id");
                cfg_error(err, q, "\"%s\" is used by [%zu] too", (*out)[i]->id, k);
                goto fail;
            }
    }
    return 0;
fail:
    for (size_t i = 0; i < *n; i++)
        dns_instance_free((*out)[i]);
    free(*out);
    *out = NULL;
    return -1;
}

static int parse_namespaces(json_t *v, struct dns_zone *z, char **err)
{
    char p[512], q[600];
    json_t *arr = cfg_array(v, "namespaces", err);
    if (!arr)
        return -1;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *nsv = json_array_get(arr, i);
        struct named nn = {0};
        cfg_path_index(p, sizeof p, "namespaces", i);
        if (cfg_read(nsv, p, ns_fields, &nn, err) < 0)
            return -1;
        cfg_path_key(q, sizeof q, p, "name");
        const char *why = dns_namespace_name_problem(z, nn.name);
        if (why) {
            cfg_error(err, q, "\"%s\" %s", nn.name, why);
            cfg_free(ns_fields, &nn);
            return -1;
        }
        struct dns_namespace *ns = dns_zone_namespace(z, nn.name, true);
        cfg_free(ns_fields, &nn);
        cfg_path_key(q, sizeof q, p, "services");
        json_t *svcs = cfg_array(json_object_get(nsv, "services"), q, err);
        if (!svcs)
            return -1;
        for (size_t k = 0; k < json_array_size(svcs); k++) {
            char sp[700], ip[800];
            json_t *sv = json_array_get(svcs, k);
            struct named sn = {0};
            cfg_path_index(sp, sizeof sp, q, k);
            if (cfg_read(sv, sp, svc_fields, &sn, err) < 0)
                return -1;
            const char *svc_bad = dns_zone_service(z, ns, sn.name, false) ? "is defined twice"
                                                                        : dns_service_name_problem(sn.name);
            if (svc_bad) {
                cfg_path_key(ip, sizeof ip, sp, "name");
                cfg_error(err, ip, "\"%s\" %s", sn.name, svc_bad);
                cfg_free(svc_fields, &sn);
                return -1;
            }
            struct dns_service *svc = dns_zone_service(z, ns, sn.name, true);
            cfg_free(svc_fields, &sn);
            struct dns_instance **inst;
            size_t n;
            cfg_path_key(ip, sizeof ip, sp, "instances");
            if (dns_instances_parse(json_object_get(sv, "instances"), ip, &inst, &n, err) < 0)
                return -1;
            dns_zone_replace(z, svc, inst, n);
            free(inst);
        }
    }
    return 0;
}

struct dns_config *dns_config_parse(json_t *root, char **err)
{
    char p[128];
    struct dns_config *c = xcalloc(1, sizeof *c);
    if (cfg_read(root, "", root_fields, c, err) < 0 ||
        cfg_read(json_object_get(root, "admin"), "admin", admin_fields, c, err) < 0 ||
        tls_block_read(json_object_get(json_object_get(root, "admin"), "tls"), "admin.tls", &c->admin_tls, err) < 0 ||
        auth_parse(json_object_get(root, "auth"), "auth", &c->auth, err) < 0)
        goto fail;
    json_t *rec = cfg_array(json_object_get(root, "recursors"), "recursors", err);
    if (!rec)
        goto fail;
    for (size_t i = 0; i < json_array_size(rec); i++) {
        json_t *r = json_array_get(rec, i);
        cfg_path_index(p, sizeof p, "recursors", i);
        struct net_addr a;
        char with_port[128];
        const char *s = json_string_value(r);
        if (s && !strchr(s, ':') && strlen(s) < 100) {
            snprintf(with_port, sizeof with_port, "%s:53", s);
            s = with_port;
        }
        if (!s || net_parse_addr(s, &a) < 0) {
            cfg_error(err, p, "must be an address like \"127.0.0.1:53\" or \"127.0.0.1\"");
            goto fail;
        }
        size_t old = c->recursors ? strlen(c->recursors) : 0;
        c->recursors = xrealloc(c->recursors, old + strlen(s) + 2);
        snprintf(c->recursors + old, strlen(s) + 2, "%s%s", old ? "," : "", s);
    }
    if (parse_cidrs(json_object_get(root, "recursion_allow"), "[\"127.0.0.0/8\"]", "recursion_allow", &c->allow,
                    &c->nallow, err) < 0)
        goto fail;
    /* Response-rate limiting (as BIND's and Knot's RRL) against reflection with spoofed sources;
     * loopback cannot be spoofed from outside, so it is exempt by default. */
    json_t *rl = json_object_get(root, "rate_limit");
    if (cfg_read(rl, "rate_limit", rrl_fields, c, err) < 0 ||
        parse_cidrs(json_object_get(rl, "exempt"), "[\"127.0.0.0/8\", \"::1/128\"]", "rate_limit.exempt",
                    &c->rrl_exempt, &c->nrrl_exempt, err) < 0)
        goto fail;
    c->zone = dns_zone_new((unsigned)c->ttl_s);
    struct net_addr la;
    net_parse_addr(c->listen, &la);
    if (la.ss.ss_family == AF_INET)
        memcpy(c->zone->ns_addr, &((struct sockaddr_in *)&la.ss)->sin_addr, 4);
    if (parse_namespaces(json_object_get(root, "namespaces"), c->zone, err) < 0)
        goto fail;
    return c;
fail:
    dns_config_free(c);
    return NULL;
}

void dns_config_free(struct dns_config *c)
{
    if (!c)
        return;
    cfg_free(root_fields, c);
    cfg_free(admin_fields, c);
    tls_block_free(&c->admin_tls);
    free(c->recursors);
    free(c->allow);
    free(c->rrl_exempt);
    auth_free(&c->auth);
    dns_zone_free(c->zone);
    free(c);
}
