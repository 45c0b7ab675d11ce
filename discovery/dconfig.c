/* dconfig.c -- berth-dns configuration: JSON to a config and a zone, with path-naming errors. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    CFG_END,
};

static const struct cfg_field admin_fields[] = {
    {"listen", CFG_ADDR, offsetof(struct dns_config, admin_listen), 0, 0, 0, "127.0.0.1:7402", NULL, false},
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

/* A domain name of DNS labels (letters, digits, '-', '_'), at most 200 bytes. */
static bool valid_domain(const char *s, bool single_label)
{
    size_t n = strlen(s), label = 0;
    if (n == 0 || n > 200 || s[0] == '.' || s[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.') {
            if (single_label || label == 0)
                return false;
            label = 0;
        } else if ((isalnum((unsigned char)s[i]) || s[i] == '-' || s[i] == '_') && ++label <= 63) {
            continue;
        } else {
            return false;
        }
    }
    return true;
}

int dns_instances_parse(json_t *arr, const char *path, struct dns_instance ***out, size_t *n, char **err)
{
    char p[512];
    json_t *a = cfg_array(arr, path, err);
    if (!a)
        return -1;
    *n = json_array_size(a);
    *out = calloc(*n ? *n : 1, sizeof **out);
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
        if (!valid_domain(nn.name, false) || dns_zone_namespace(z, nn.name, false)) {
            cfg_error(err, q, "\"%s\" %s", nn.name,
                      dns_zone_namespace(z, nn.name, false) ? "is defined twice" : "is not a domain name");
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
            if (!valid_domain(sn.name, true) || dns_zone_service(z, ns, sn.name, false)) {
                cfg_path_key(ip, sizeof ip, sp, "name");
                cfg_error(err, ip, "\"%s\" %s", sn.name,
                          dns_zone_service(z, ns, sn.name, false) ? "is defined twice" : "is not a DNS label");
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
    struct dns_config *c = calloc(1, sizeof *c);
    if (cfg_read(root, "", root_fields, c, err) < 0 ||
        cfg_read(json_object_get(root, "admin"), "admin", admin_fields, c, err) < 0)
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
        c->recursors = realloc(c->recursors, old + strlen(s) + 2);
        snprintf(c->recursors + old, strlen(s) + 2, "%s%s", old ? "," : "", s);
    }
    json_t *allow = json_object_get(root, "recursion_allow");
    json_t *def = json_pack("[s]", "127.0.0.0/8");
    json_t *al = allow ? cfg_array(allow, "recursion_allow", err) : def;
    if (!al) {
        json_decref(def);
        goto fail;
    }
    c->nallow = json_array_size(al);
    c->allow = calloc(c->nallow ? c->nallow : 1, sizeof *c->allow);
    for (size_t i = 0; i < c->nallow; i++) {
        const char *s = json_string_value(json_array_get(al, i));
        if (!s || net_parse_cidr(s, &c->allow[i]) < 0) {
            cfg_path_index(p, sizeof p, "recursion_allow", i);
            cfg_error(err, p, "must be an IP prefix like \"127.0.0.0/8\"");
            json_decref(def);
            goto fail;
        }
    }
    json_decref(def);
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
    free(c->recursors);
    free(c->allow);
    dns_zone_free(c->zone);
    free(c);
}
