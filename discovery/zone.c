/* zone.c -- namespaces, services and instances, and the hash of owner names that answers look up. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "berth/alloc.h"
#include "berth/config.h"
#include "berth/util.h"
#include "dns.h"

/* ---- owner-name hash (case-insensitive) ---- */

static uint64_t hash_name(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a over lowercased bytes */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)tolower((unsigned char)s[i]);
        h *= 1099511628211ULL;
    }
    return h;
}

struct dns_node *dns_zone_lookup(const struct dns_zone *z, const char *name, size_t len)
{
    struct dns_node *n = z->buckets[hash_name(name, len) & (z->nbuckets - 1)];
    for (; n; n = n->next)
        if (strlen(n->key) == len && strncasecmp(n->key, name, len) == 0)
            return n;
    return NULL;
}

static void grow(struct dns_zone *z)
{
    size_t nb = z->nbuckets * 2;
    struct dns_node **b = xcalloc(nb, sizeof *b);
    for (size_t i = 0; i < z->nbuckets; i++)
        for (struct dns_node *n = z->buckets[i], *next; n; n = next) {
            next = n->next;
            size_t k = hash_name(n->key, strlen(n->key)) & (nb - 1);
            n->next = b[k];
            b[k] = n;
        }
    free(z->buckets);
    z->buckets = b;
    z->nbuckets = nb;
}

/* Finds or adds the node for "<a>.<b>" (either may be NULL/empty). */
static struct dns_node *node_get(struct dns_zone *z, const char *a, const char *b, enum dns_node_kind kind, bool *created)
{
    char key[DNS_MAX_NAME + 2];
    int len = snprintf(key, sizeof key, "%s%s%s", a ? a : "", a && *a && b ? "." : "", b ? b : "");
    for (int i = 0; i < len; i++)
        key[i] = (char)tolower((unsigned char)key[i]);
    struct dns_node *n = dns_zone_lookup(z, key, (size_t)len);
    *created = false;
    if (n)
        return n;
    if (z->nnodes >= z->nbuckets)
        grow(z);
    n = xcalloc(1, sizeof *n);
    n->key = xstrdup(key);
    n->kind = kind;
    size_t k = hash_name(key, (size_t)len) & (z->nbuckets - 1);
    n->next = z->buckets[k];
    z->buckets[k] = n;
    z->nnodes++;
    *created = true;
    return n;
}

static void node_del(struct dns_zone *z, struct dns_node *n)
{
    struct dns_node **pp = &z->buckets[hash_name(n->key, strlen(n->key)) & (z->nbuckets - 1)];
    while (*pp && *pp != n)
        pp = &(*pp)->next;
    if (*pp)
        *pp = n->next;
    z->nnodes--;
    free(n->key);
    free(n->port_name);
    free(n);
}

static struct dns_node *node_find2(const struct dns_zone *z, const char *a, const char *b)
{
    char key[DNS_MAX_NAME + 2];
    int len = snprintf(key, sizeof key, "%s.%s", a, b);
    return dns_zone_lookup(z, key, (size_t)len);
}

/* ---- zone ---- */

struct dns_zone *dns_zone_new(unsigned ttl)
{
    struct dns_zone *z = xcalloc(1, sizeof *z);
    z->nbuckets = 1024;
    z->buckets = xcalloc(z->nbuckets, sizeof *z->buckets);
    z->ttl = ttl;
    z->serial = 1;
    z->ns_addr[0] = 127;
    z->ns_addr[3] = 1;
    return z;
}

struct dns_namespace *dns_zone_namespace(struct dns_zone *z, const char *name, bool create)
{
    for (size_t i = 0; i < z->n; i++)
        if (strcasecmp(z->ns[i]->name, name) == 0)
            return z->ns[i];
    if (!create)
        return NULL;
    struct dns_namespace *ns = xcalloc(1, sizeof *ns);
    ns->name = xstrdup(name);
    z->ns = xrealloc(z->ns, (z->n + 1) * sizeof *z->ns);
    z->ns[z->n++] = ns;
    bool c;
    node_get(z, NULL, name, NODE_APEX, &c)->ns = ns;
    struct dns_node *h = node_get(z, "ns1", name, NODE_NSHOST, &c);
    if (c)
        h->ns = ns;
    z->serial++;
    return ns;
}

struct dns_service *dns_zone_service(struct dns_zone *z, struct dns_namespace *ns, const char *name, bool create)
{
    for (size_t i = 0; i < ns->n; i++)
        if (strcasecmp(ns->svc[i]->name, name) == 0)
            return ns->svc[i];
    if (!create)
        return NULL;
    struct dns_service *s = xcalloc(1, sizeof *s);
    s->name = xstrdup(name);
    s->ns = ns;
    ns->svc = xrealloc(ns->svc, (ns->n + 1) * sizeof *ns->svc);
    ns->svc[ns->n++] = s;
    bool c;
    struct dns_node *n = node_get(z, name, ns->name, NODE_SERVICE, &c);
    n->kind = NODE_SERVICE; /* a service named like the name server host takes the name */
    n->ns = ns;
    n->svc = s;
    z->serial++;
    return s;
}

/* The instance <id> of <svc>, through the owner-name hash. */
static struct dns_instance *find(const struct dns_zone *z, const struct dns_service *svc, const char *id)
{
    char key[DNS_MAX_NAME + 2];
    int len = snprintf(key, sizeof key, "%s.%s.%s", id, svc->name, svc->ns->name);
    struct dns_node *n = dns_zone_lookup(z, key, (size_t)len);
    return n && n->kind == NODE_INSTANCE && n->svc == svc ? n->inst : NULL;
}

struct dns_instance *dns_service_find(const struct dns_zone *z, struct dns_service *svc, const char *id)
{
    return find(z, svc, id);
}

void dns_instance_free(struct dns_instance *i)
{
    if (!i)
        return;
    free(i->id);
    free(i->address);
    free(i->port_name);
    json_decref(i->attributes);
    free(i);
}

/* Registers the owner names an instance needs. */
static void index_add(struct dns_zone *z, struct dns_instance *inst)
{
    struct dns_service *svc = inst->svc;
    char svcname[DNS_MAX_NAME + 2], label[80];
    snprintf(svcname, sizeof svcname, "%s.%s", svc->name, svc->ns->name);
    bool c;
    struct dns_node *n = node_get(z, inst->id, svcname, NODE_INSTANCE, &c);
    n->kind = NODE_INSTANCE;
    n->inst = inst;
    n->svc = svc;
    n->ns = svc->ns;
    snprintf(label, sizeof label, "_%s._tcp", inst->port_name);
    n = node_get(z, label, svcname, NODE_PORT, &c);
    if (c) {
        n->port_name = xstrdup(inst->port_name);
        n->svc = svc;
        n->ns = svc->ns;
    }
    n->refs++;
    n = node_get(z, "_tcp", svcname, NODE_TCP_ENT, &c);
    n->svc = svc;
    n->ns = svc->ns;
    n->refs++;
}

static void index_del(struct dns_zone *z, struct dns_instance *inst)
{
    struct dns_service *svc = inst->svc;
    char svcname[DNS_MAX_NAME + 2], label[80];
    snprintf(svcname, sizeof svcname, "%s.%s", svc->name, svc->ns->name);
    struct dns_node *n = node_find2(z, inst->id, svcname);
    if (n && n->inst == inst)
        node_del(z, n);
    snprintf(label, sizeof label, "_%s._tcp", inst->port_name);
    n = node_find2(z, label, svcname);
    if (n && --n->refs == 0)
        node_del(z, n);
    n = node_find2(z, "_tcp", svcname);
    if (n && --n->refs == 0)
        node_del(z, n);
}

void dns_zone_put(struct dns_zone *z, struct dns_service *svc, struct dns_instance *inst)
{
    inst->svc = svc;
    struct dns_instance *old = find(z, svc, inst->id);
    if (old) {
        inst->idx = old->idx;
        index_del(z, old);
        dns_instance_free(old);
        svc->inst[inst->idx] = inst;
    } else {
        if ((svc->n & (svc->n - 1)) == 0) /* grow by doubling */
            svc->inst = xrealloc(svc->inst, (svc->n ? svc->n * 2 : 1) * sizeof *svc->inst);
        inst->idx = svc->n;
        svc->inst[svc->n++] = inst;
    }
    index_add(z, inst);
    z->serial++;
}

/* Removes <i> from its service by position: it needs no name lookup, so it cannot fail. */
static void instance_remove(struct dns_zone *z, struct dns_service *svc, struct dns_instance *i)
{
    size_t at = i->idx;
    index_del(z, i);
    dns_instance_free(i);
    if (at != --svc->n) {
        svc->inst[at] = svc->inst[svc->n];
        svc->inst[at]->idx = at;
    }
    z->serial++;
}

int dns_zone_delete(struct dns_zone *z, struct dns_service *svc, const char *id)
{
    struct dns_instance *i = find(z, svc, id);
    if (!i)
        return -1;
    instance_remove(z, svc, i);
    return 0;
}

void dns_zone_replace(struct dns_zone *z, struct dns_service *svc, struct dns_instance **inst, size_t n)
{
    while (svc->n)
        instance_remove(z, svc, svc->inst[svc->n - 1]);
    for (size_t i = 0; i < n; i++)
        dns_zone_put(z, svc, inst[i]);
}

void dns_zone_service_delete(struct dns_zone *z, struct dns_service *svc)
{
    while (svc->n)
        instance_remove(z, svc, svc->inst[svc->n - 1]);
    struct dns_namespace *ns = svc->ns;
    struct dns_node *n = node_find2(z, svc->name, ns->name);
    if (n && n->kind == NODE_SERVICE && n->svc == svc)
        node_del(z, n);
    for (size_t i = 0; i < ns->n; i++)
        if (ns->svc[i] == svc) {
            ns->svc[i] = ns->svc[--ns->n];
            break;
        }
    free(svc->inst);
    free(svc->name);
    free(svc);
    z->serial++;
}

void dns_zone_free(struct dns_zone *z)
{
    if (!z)
        return;
    for (size_t i = 0; i < z->n; i++) {
        struct dns_namespace *ns = z->ns[i];
        for (size_t k = 0; k < ns->n; k++) {
            struct dns_service *s = ns->svc[k];
            for (size_t j = 0; j < s->n; j++)
                dns_instance_free(s->inst[j]);
            free(s->inst);
            free(s->name);
            free(s);
        }
        free(ns->svc);
        free(ns->name);
        free(ns);
    }
    free(z->ns);
    for (size_t i = 0; i < z->nbuckets; i++)
        for (struct dns_node *n = z->buckets[i], *next; n; n = next) {
            next = n->next;
            free(n->key);
            free(n->port_name);
            free(n);
        }
    free(z->buckets);
    free(z);
}

struct dns_namespace *dns_zone_covering(const struct dns_zone *z, const char *name, size_t len)
{
    for (size_t i = 0; i < z->n; i++) {
        size_t nl = strlen(z->ns[i]->name);
        if (len == nl ? strncasecmp(name, z->ns[i]->name, len) == 0
                      : len > nl && name[len - nl - 1] == '.' && strncasecmp(name + len - nl, z->ns[i]->name, nl) == 0)
            return z->ns[i];
    }
    return NULL;
}

/* ---- instances from JSON ---- */

struct inst_conf {
    char *id, *address, *port_name;
    int port;
    bool healthy;
};

static const struct cfg_field inst_fields[] = {
    {"id", CFG_STRING, offsetof(struct inst_conf, id), 0, 0, 0, NULL, NULL, false},
    {"address", CFG_STRING, offsetof(struct inst_conf, address), 0, 0, 0, NULL, NULL, true},
    {"port", CFG_INT, offsetof(struct inst_conf, port), 0, 65535, 0, NULL, NULL, false},
    {"port_name", CFG_STRING, offsetof(struct inst_conf, port_name), 0, 0, 0, "http", NULL, false},
    {"healthy", CFG_BOOL, offsetof(struct inst_conf, healthy), 0, 0, 1, NULL, NULL, false},
    {"attributes", CFG_NESTED, 0, 0, 0, 0, NULL, NULL, false},
    CFG_END,
};

struct dns_instance *dns_instance_parse(json_t *v, const char *id, const char *path, char **err)
{
    struct inst_conf c = {0};
    char p[512];
    if (cfg_read(v, path, inst_fields, &c, err) < 0)
        goto fail;
    if (id) {
        if (c.id && strcmp(c.id, id) != 0) {
            cfg_path_key(p, sizeof p, path, "id");
            cfg_error(err, p, "\"%s\" does not match the path (%s)", c.id, id);
            goto fail;
        }
        free(c.id);
        c.id = xstrdup(id);
    }
    if (!c.id) {
        cfg_path_key(p, sizeof p, path, "id");
        cfg_error(err, p, "is required");
        goto fail;
    }
    if (!util_dns_label(c.id) || c.id[0] == '_') {
        /* ID.SVC.NS must not meet _tcp.SVC.NS or _PORT._tcp.SVC.NS: underscore labels are theirs. */
        cfg_path_key(p, sizeof p, path, "id");
        cfg_error(err, p, "\"%s\" must be a DNS label (1-63 letters, digits, '-', '_') not starting with '_'",
                  c.id);
        goto fail;
    }
    if (!util_dns_label(c.port_name)) {
        cfg_path_key(p, sizeof p, path, "port_name");
        cfg_error(err, p, "\"%s\" must be a DNS label", c.port_name);
        goto fail;
    }
    struct dns_instance *i = xcalloc(1, sizeof *i);
    if (inet_pton(AF_INET, c.address, i->addr) == 1) {
        i->family = AF_INET;
    } else if (inet_pton(AF_INET6, c.address, i->addr) == 1) {
        i->family = AF_INET6;
    } else {
        free(i);
        cfg_path_key(p, sizeof p, path, "address");
        cfg_error(err, p, "\"%s\" is not an IPv4 or IPv6 address", c.address);
        goto fail;
    }
    json_t *attrs = v ? json_object_get(v, "attributes") : NULL;
    if (attrs && !json_is_object(attrs)) {
        free(i);
        cfg_path_key(p, sizeof p, path, "attributes");
        cfg_error(err, p, "must be an object of strings");
        goto fail;
    }
    const char *k;
    json_t *av;
    json_object_foreach(attrs, k, av) {
        if (!json_is_string(av) || strlen(k) + json_string_length(av) + 1 > 255) {
            free(i);
            char q[600];
            cfg_path_key(p, sizeof p, path, "attributes");
            cfg_path_key(q, sizeof q, p, k);
            cfg_error(err, q, "must be a string, with key=value at most 255 bytes");
            goto fail;
        }
    }
    i->attributes = attrs ? json_deep_copy(attrs) : json_object();
    i->id = c.id;
    i->address = c.address;
    i->port_name = c.port_name;
    i->port = c.port;
    i->healthy = c.healthy;
    return i;
fail:
    cfg_free(inst_fields, &c);
    return NULL;
}

json_t *dns_instance_json(const struct dns_instance *i)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:i,s:s,s:b,s:O}", "namespace", i->svc->ns->name, "service", i->svc->name,
                     "id", i->id, "address", i->address, "port", i->port, "port_name", i->port_name, "healthy",
                     i->healthy, "attributes", i->attributes);
}

/* A domain name of labels of letters, digits, '-' and '_' (at most 63 each, 200 in all). */
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
        } else if (!((isalnum((unsigned char)s[i]) || s[i] == '-' || s[i] == '_') && ++label <= 63)) {
            return false;
        }
    }
    return true;
}

const char *dns_service_name_problem(const char *name)
{
    if (!valid_domain(name, true))
        return "is not a DNS label (1-63 letters, digits, '-', '_')";
    if (strcasecmp(name, "ns1") == 0)
        return "is reserved: ns1 is the name server's own host name";
    return NULL;
}

const char *dns_namespace_name_problem(const struct dns_zone *z, const char *name)
{
    if (!valid_domain(name, false))
        return "is not a domain name";
    size_t len = strlen(name);
    for (size_t i = 0; i < z->n; i++) {
        const char *o = z->ns[i]->name;
        size_t ol = strlen(o);
        if (strcasecmp(o, name) == 0)
            return "is defined twice";
        if (dns_zone_covering(z, name, len) == z->ns[i] ||
            (ol > len && o[ol - len - 1] == '.' && strcasecmp(o + ol - len, name) == 0))
            return "overlaps another namespace (one lies inside the other)";
    }
    return NULL;
}
