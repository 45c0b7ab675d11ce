/* answer.c -- the answer policy: what a reply to a query about the zone holds (RFC 1035, 2308, 2782,
 * 8482). Healthy instances only (all of them when none is healthy: fail open, as Cloud Map), shuffled
 * so clients spread their load; SRV targets' addresses as additional records; the SOA for negative
 * answers; HINFO for ANY. */
#include <stdio.h>
#include <strings.h>

#include "berth/alloc.h"
#include "berth/util.h"
#include "dns.h"
#include "wire.h"

static void soa_rdata(struct dns_writer *w, const struct dns_zone *z, const char *ns)
{
    char host[DNS_MAX_NAME + 8];
    snprintf(host, sizeof host, "ns1.%s", ns);
    dns_put_name(w, host, true);
    snprintf(host, sizeof host, "hostmaster.%s", ns);
    dns_put_name(w, host, true);
    dns_put32(w, z->serial);
    dns_put32(w, 3600);
    dns_put32(w, 600);
    dns_put32(w, 86400);
    dns_put32(w, z->ttl);
}

/* The owner of instance <i> as "id.<qname suffix>" so compression reuses the question. */
static void inst_owner(const struct dns_instance *i, char *dst, size_t size)
{
    snprintf(dst, size, "%s.%s.%s", i->id, i->svc->name, i->svc->ns->name);
}

static bool put_addr_rr(struct dns_writer *w, const char *owner, const struct dns_instance *i, unsigned ttl)
{
    return DNS_RR(w, owner, i->family == AF_INET ? DNS_T_A : DNS_T_AAAA, ttl,
              dns_put(w, i->addr, i->family == AF_INET ? 4 : 16));
}

/* Healthy instances of <svc> (all when none is healthy: fail open, as Cloud Map), optionally
 * only those with <port_name>, shuffled. Returns the count; <out> has room for svc->n. */
static size_t candidates(const struct dns_service *svc, const char *port_name, struct dns_instance **out)
{
    size_t n = 0;
    bool any_healthy = false;
    for (size_t i = 0; i < svc->n; i++)
        if (svc->inst[i]->healthy && (!port_name || strcasecmp(svc->inst[i]->port_name, port_name) == 0))
            any_healthy = true;
    for (size_t i = 0; i < svc->n; i++) {
        struct dns_instance *in = svc->inst[i];
        if ((!any_healthy || in->healthy) && (!port_name || strcasecmp(in->port_name, port_name) == 0))
            out[n++] = in;
    }
    for (size_t i = n; i > 1; i--) { /* Fisher-Yates */
        size_t j = (size_t)(util_rand64() % i);
        struct dns_instance *t = out[i - 1];
        out[i - 1] = out[j];
        out[j] = t;
    }
    return n;
}

static void put_hinfo(struct dns_writer *w, const char *owner, unsigned ttl, unsigned *an)
{
    /* RFC 8482 §4.2: answer ANY with one synthesized HINFO record. */
    if (DNS_RR(w, owner, DNS_T_HINFO, ttl, ({
               dns_put(w, "\x07RFC8482", 8);
               dns_put(w, "\x00", 1);
           })))
        (*an)++;
}

size_t dns_answer(const struct dns_zone *z, const struct dns_query *q, bool ra, unsigned char *out, size_t max,
                  bool *refused)
{
    struct dns_writer w = {.buf = out, .max = max - (q->edns ? 11 : 0)};
    *refused = false;
    const struct dns_node *node = dns_zone_lookup(z, q->qname, q->qname_len);
    const struct dns_namespace *ns = node ? node->ns : dns_zone_covering(z, q->qname, q->qname_len);
    if (!ns || (q->qclass != DNS_C_IN && q->qclass != DNS_C_ANY)) {
        *refused = true;
        return 0;
    }
    dns_put_header(&w, q, DNS_R_NOERROR, true, ra);
    dns_put_question(&w, q);
    dns_set_count(&w, 0, 1);
    const char *owner = q->qname; /* compresses to the question, keeping its case */
    unsigned ttl = z->ttl, an = 0, ar = 0;
    bool tc = false;
    int rcode = DNS_R_NOERROR;
    struct dns_instance *stack_list[64], **list = stack_list;
    const struct dns_service *svc = node ? node->svc : NULL;
    if (svc && svc->n > 64)
        list = xmalloc(svc->n * sizeof *list);
    size_t n = 0;
    char name[DNS_MAX_NAME + 2];

    if (!node) {
        rcode = DNS_R_NXDOMAIN;
    } else if (q->qtype == DNS_T_ANY) {
        put_hinfo(&w, owner, ttl, &an);
    } else {
        switch (node->kind) {
        case NODE_APEX:
            if (q->qtype == DNS_T_SOA) {
                tc |= !DNS_RR(&w, owner, DNS_T_SOA, ttl, soa_rdata(&w, z, ns->name));
                an += !tc;
            } else if (q->qtype == DNS_T_NS) {
                snprintf(name, sizeof name, "ns1.%s", ns->name);
                tc |= !DNS_RR(&w, owner, DNS_T_NS, ttl, dns_put_name(&w, name, true));
                an += !tc;
                if (!tc && DNS_RR(&w, name, DNS_T_A, ttl, dns_put(&w, z->ns_addr, 4)))
                    ar++;
            }
            break;
        case NODE_NSHOST:
            if (q->qtype == DNS_T_A) {
                tc |= !DNS_RR(&w, owner, DNS_T_A, ttl, dns_put(&w, z->ns_addr, 4));
                an += !tc;
            }
            break;
        case NODE_SERVICE:
        case NODE_PORT:
            n = candidates(svc, node->kind == NODE_PORT ? node->port_name : NULL, list);
            if (q->qtype == DNS_T_A || q->qtype == DNS_T_AAAA) {
                int fam = q->qtype == DNS_T_A ? AF_INET : AF_INET6;
                for (size_t i = 0; i < n && !tc && node->kind == NODE_SERVICE; i++)
                    if (list[i]->family == fam) {
                        tc |= !put_addr_rr(&w, owner, list[i], ttl);
                        an += !tc;
                    }
            } else if (q->qtype == DNS_T_SRV) {
                for (size_t i = 0; i < n && !tc; i++) {
                    inst_owner(list[i], name, sizeof name);
                    tc |= !DNS_RR(&w, owner, DNS_T_SRV, ttl, ({
                                  dns_put16(&w, 0);
                                  dns_put16(&w, 1);
                                  dns_put16(&w, (unsigned)list[i]->port);
                                  /* RFC 2782: the SRV target is never compressed. */
                                  dns_put_name(&w, name, false);
                              }));
                    an += !tc;
                }
                /* Targets' addresses as additional data; they may be left out when
                 * they do not fit, which needs no TC (RFC 2181 §9). */
                for (size_t i = 0; i < an; i++) {
                    inst_owner(list[i], name, sizeof name);
                    if (!put_addr_rr(&w, name, list[i], ttl))
                        break;
                    ar++;
                }
            }
            break;
        case NODE_INSTANCE: {
            const struct dns_instance *in = node->inst;
            if ((q->qtype == DNS_T_A && in->family == AF_INET) || (q->qtype == DNS_T_AAAA && in->family == AF_INET6)) {
                tc |= !put_addr_rr(&w, owner, in, ttl);
                an += !tc;
            } else if (q->qtype == DNS_T_TXT && json_object_size(in->attributes) > 0) {
                tc |= !DNS_RR(&w, owner, DNS_T_TXT, ttl, ({
                              const char *k;
                              json_t *v;
                              json_object_foreach(in->attributes, k, v) {
                                  char kv[256];
                                  int l = snprintf(kv, sizeof kv, "%s=%s", k, json_string_value(v));
                                  unsigned char lb = (unsigned char)(l > 255 ? 255 : l);
                                  dns_put(&w, &lb, 1);
                                  dns_put(&w, kv, lb);
                              }
                          }));
                an += !tc;
            }
            break;
        }
        case NODE_TCP_ENT:
            break; /* an empty non-terminal: NODATA */
        }
    }
    if (list != stack_list)
        free(list);
    unsigned nscount = 0;
    if (an == 0 && !tc) {
        /* RFC 2308: NXDOMAIN and NODATA carry the zone's SOA; its TTL bounds negative caching. */
        if (DNS_RR(&w, ns->name, DNS_T_SOA, ttl, soa_rdata(&w, z, ns->name)))
            nscount = 1;
    }
    dns_set_count(&w, 1, an);
    dns_set_count(&w, 2, nscount);
    dns_set_count(&w, 3, ar);
    w.max += q->edns ? 11 : 0;
    if (q->edns) {
        dns_put_opt(&w, q, rcode);
        dns_set_count(&w, 3, ar + 1);
    }
    out[3] = (unsigned char)((out[3] & 0xf0) | (rcode & 0xf));
    if (tc)
        out[2] |= 0x02;
    return w.len;
}
