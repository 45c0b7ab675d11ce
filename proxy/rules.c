/* rules.c -- listener rule matching (ALB conditions) and action helpers. */
#include <string.h>

#include "berth/util.h"
#include "rules.h"

static bool any_glob(char **pats, size_t n, const char *s, size_t len, bool icase)
{
    for (size_t i = 0; i < n; i++)
        if (util_glob_match(pats[i], s, len, icase))
            return true;
    return false;
}

/* Finds the value of query parameter <name> in the raw query; returns true
 * if some occurrence matches one of <kv>'s patterns. */
static bool query_match(const struct proxy_kv *kv, const char *q, size_t qlen)
{
    size_t nl = strlen(kv->name);
    const char *end = q + qlen;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(pe - q));
        const char *ke = eq ? eq : pe;
        if ((size_t)(ke - q) == nl && memcmp(q, kv->name, nl) == 0) {
            const char *v = eq ? eq + 1 : pe;
            if (any_glob(kv->values, kv->nvalues, v, (size_t)(pe - v), true))
                return true;
        }
        q = pe + 1;
    }
    return false;
}

bool proxy_cond_match(const struct proxy_cond *c, const struct proxy_reqinfo *ri)
{
    const struct http_msg *m = ri->m;
    if (c->nhosts && !any_glob(c->hosts, c->nhosts, ri->host, ri->host_len, true))
        return false;
    if (c->npaths && !any_glob(c->paths, c->npaths, ri->path, ri->path_len, false))
        return false;
    if (c->nmethods) {
        size_t i;
        for (i = 0; i < c->nmethods; i++)
            if (strlen(c->methods[i]) == m->method_len && memcmp(c->methods[i], m->method, m->method_len) == 0)
                break;
        if (i == c->nmethods)
            return false;
    }
    for (size_t i = 0; i < c->nheaders; i++) {
        const struct proxy_kv *kv = &c->headers[i];
        bool hit = false;
        for (unsigned h = 0; h < m->num_headers && !hit; h++)
            hit = http_header_is(&m->headers[h], kv->name) &&
                  any_glob(kv->values, kv->nvalues, m->headers[h].value, m->headers[h].value_len, true);
        if (!hit)
            return false;
    }
    for (size_t i = 0; i < c->nquery; i++)
        if (!query_match(&c->query[i], ri->query, ri->query_len))
            return false;
    if (c->ncidrs) {
        size_t i;
        for (i = 0; i < c->ncidrs; i++)
            if (net_cidr_match(&c->cidrs[i], ri->peer))
                break;
        if (i == c->ncidrs)
            return false;
    }
    return true;
}

size_t proxy_route_index(const struct proxy_listener_conf *ln, const struct proxy_reqinfo *ri)
{
    size_t i = 0;
    while (i < ln->nrules && !proxy_cond_match(&ln->rules[i].cond, ri))
        i++;
    return i;
}

const struct proxy_action *proxy_route(const struct proxy_listener_conf *ln, const struct proxy_reqinfo *ri)
{
    size_t i = proxy_route_index(ln, ri);
    return i < ln->nrules ? &ln->rules[i].action : &ln->default_action;
}

struct proxy_tg *proxy_route_pick(struct proxy_route *a)
{
    if (a->nfwd == 1)
        return a->fwd[0].tg;
    /* Smooth weighted round robin (as nginx): deterministic and evenly interleaved. */
    int total = 0;
    struct proxy_route_fwd *best = NULL;
    for (size_t i = 0; i < a->nfwd; i++) {
        struct proxy_route_fwd *f = &a->fwd[i];
        f->current += f->weight;
        total += f->weight;
        if (f->weight > 0 && (!best || f->current > best->current))
            best = f;
    }
    best->current -= total;
    return best->tg;
}

void proxy_redirect_expand(const char *tpl, const struct proxy_reqinfo *ri, int port, struct buf *out)
{
    for (const char *p = tpl; *p;) {
        if (p[0] == '#' && p[1] == '{') {
            const char *close = strchr(p, '}');
            if (close) {
                size_t n = (size_t)(close - p - 2);
                const char *k = p + 2;
                if (n == 8 && memcmp(k, "protocol", 8) == 0)
                    buf_append(out, ri->https ? "https" : "http", ri->https ? 5 : 4);
                else if (n == 4 && memcmp(k, "host", 4) == 0)
                    buf_append(out, ri->host, ri->host_len);
                else if (n == 4 && memcmp(k, "port", 4) == 0)
                    buf_printf(out, "%d", port);
                else if (n == 4 && memcmp(k, "path", 4) == 0)
                    /* As ALB: #{path} has no leading slash. */
                    buf_append(out, ri->path + (ri->path_len > 0), ri->path_len - (ri->path_len > 0));
                else if (n == 5 && memcmp(k, "query", 5) == 0)
                    buf_append(out, ri->query, ri->query_len);
                else
                    buf_append(out, p, n + 3);
                p = close + 1;
                continue;
            }
        }
        buf_append(out, p, 1);
        p++;
    }
}
