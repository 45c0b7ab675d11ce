/* wire.c -- DNS messages: strict query parsing and answers with name compression (RFC 1035, 6891, 8482). */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "berth/alloc.h"
#include "berth/util.h"
#include "dns.h"

#define MAX_POINTERS 32 /* a name with more compression jumps than this is malformed */

static inline uint16_t get16(const unsigned char *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

/* Reads a (possibly compressed) name at *off. Writes it uncompressed to <wire>
 * (if not NULL) and dotted to <dotted> (if not NULL). Pointers must go
 * strictly backwards, which rules out loops (RFC 1035 §4.1.4). Advances *off
 * past the name as it appears at *off. Returns 0 or -1. */
static int read_name(const unsigned char *p, size_t len, size_t *off, unsigned char *wire, size_t *wire_len,
                     char *dotted, size_t *dotted_len)
{
    size_t pos = *off, wl = 0, dl = 0, end = 0;
    int jumps = 0;
    for (;;) {
        if (pos >= len)
            return -1;
        unsigned char c = p[pos];
        if ((c & 0xc0) == 0xc0) {
            if (pos + 1 >= len || ++jumps > MAX_POINTERS)
                return -1;
            size_t target = (size_t)((c & 0x3f) << 8 | p[pos + 1]);
            if (target >= pos)
                return -1; /* forward or self pointer: could loop */
            if (!end)
                end = pos + 2;
            pos = target;
            continue;
        }
        if (c & 0xc0)
            return -1; /* 0x40/0x80 label types are obsolete */
        if (pos + 1 + c > len || wl + 1 + c > DNS_MAX_NAME)
            return -1;
        if (wire) {
            wire[wl] = c;
            memcpy(wire + wl + 1, p + pos + 1, c);
        }
        wl += 1 + (size_t)c;
        if (c == 0)
            break;
        if (dl) {
            if (dotted)
                dotted[dl] = '.';
            dl++;
        }
        if (dotted) {
            /* A '.' inside a label cannot be told from a label boundary in
             * dotted form; mark it so such a name matches nothing. */
            for (size_t k = 0; k < c; k++)
                dotted[dl + k] = p[pos + 1 + k] == '.' ? '\x01' : (char)p[pos + 1 + k];
        }
        dl += c;
        pos += 1 + (size_t)c;
    }
    if (dotted)
        dotted[dl] = 0;
    *off = end ? end : pos + 1;
    if (wire_len)
        *wire_len = wl;
    if (dotted_len)
        *dotted_len = dl;
    return 0;
}

/* Checks the options of an OPT record's rdata: each must fit exactly (RFC 6891 §6.1.2). */
static bool opt_options_ok(const unsigned char *p, size_t len)
{
    size_t off = 0;
    while (off < len) {
        if (off + 4 > len)
            return false;
        size_t olen = get16(p + off + 2);
        if (off + 4 + olen > len)
            return false;
        off += 4 + olen;
    }
    return true;
}

/* Reads the whole message even when it is already known to be refused, so that an OPT record is
 * seen (and echoed, RFC 6891 §7) whatever the answer. The first problem found decides it. */
int dns_parse_query(const unsigned char *p, size_t len, struct dns_query *q, bool *header_ok)
{
    memset(q, 0, sizeof *q);
    *header_ok = false;
    if (len < 12)
        return DNS_R_FORMERR;
    q->id = get16(p);
    q->flags = get16(p + 2);
    *header_ok = true;
    if (q->flags & 0x8000)
        return -1; /* a response: never answer it */
    q->opcode = (q->flags >> 11) & 0xf;
    q->rd = q->flags & 0x0100;
    unsigned qd = get16(p + 4), an = get16(p + 6), ns = get16(p + 8), ar = get16(p + 10);
    int rc = q->opcode != 0 ? DNS_R_NOTIMP : qd != 1 ? DNS_R_FORMERR : DNS_R_NOERROR; /* RFC 9619 */
    size_t off = 12;
    for (unsigned i = 0; i < qd; i++) {
        bool first = i == 0;
        if (read_name(p, len, &off, first ? q->qname_wire : NULL, first ? &q->qname_wire_len : NULL,
                      first ? q->qname : NULL, first ? &q->qname_len : NULL) < 0 ||
            off + 4 > len) {
            q->qname_wire_len = 0;
            return rc ? rc : DNS_R_FORMERR;
        }
        if (first) {
            q->qtype = get16(p + off);
            q->qclass = get16(p + off + 2);
        }
        off += 4;
    }
    if (qd != 1)
        q->qname_wire_len = 0; /* nothing to echo */
    int opts = 0;
    for (unsigned i = 0; i < an + ns + ar; i++) {
        unsigned char owner[DNS_MAX_NAME + 1];
        size_t owner_len;
        if (read_name(p, len, &off, owner, &owner_len, NULL, NULL) < 0 || off + 10 > len)
            return rc ? rc : DNS_R_FORMERR;
        uint16_t type = get16(p + off), rdlen = get16(p + off + 8);
        if (off + 10 + rdlen > len)
            return rc ? rc : DNS_R_FORMERR;
        if (type == DNS_T_OPT) {
            /* RFC 6891 §6.1.1: only in the additional section, owner root, at most one. */
            if (!q->edns) {
                q->edns = true;
                q->udp_size = get16(p + off + 2);
                if (q->udp_size < 512)
                    q->udp_size = 512;
                q->edns_version = p[off + 5];
                q->do_bit = p[off + 6] & 0x80;
            }
            if ((i < an + ns || owner_len != 1 || ++opts > 1 || !opt_options_ok(p + off + 10, rdlen)) && !rc)
                rc = DNS_R_FORMERR;
        }
        off += 10 + rdlen;
    }
    if (off != len && !rc)
        rc = DNS_R_FORMERR; /* trailing bytes after the last record */
    if (!rc && q->edns && q->edns_version > 0)
        rc = DNS_R_BADVERS;
    return rc;
}

/* ---- writer ---- */

#define COMP_MAX 64

struct writer {
    unsigned char *buf;
    size_t len, max;
    bool full;
    struct {
        char name[DNS_MAX_NAME + 1]; /* lowercased dotted suffix */
        uint16_t off;
    } comp[COMP_MAX];
    int ncomp;
};

static void put(struct writer *w, const void *p, size_t n)
{
    if (w->full || w->len + n > w->max) {
        w->full = true;
        return;
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

static void put16(struct writer *w, unsigned v)
{
    unsigned char b[2] = {(unsigned char)(v >> 8), (unsigned char)v};
    put(w, b, 2);
}

static void put32(struct writer *w, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8), (unsigned char)v};
    put(w, b, 4);
}

static void remember(struct writer *w, const char *suffix, size_t off)
{
    if (w->ncomp == COMP_MAX || off > 0x3fff)
        return;
    size_t i;
    for (i = 0; suffix[i] && i < DNS_MAX_NAME; i++)
        w->comp[w->ncomp].name[i] = (char)tolower((unsigned char)suffix[i]);
    w->comp[w->ncomp].name[i] = 0;
    w->comp[w->ncomp].off = (uint16_t)off;
    w->ncomp++;
}

static int find_comp(const struct writer *w, const char *suffix)
{
    for (int i = 0; i < w->ncomp; i++)
        if (strcasecmp(w->comp[i].name, suffix) == 0)
            return w->comp[i].off;
    return -1;
}

/* Writes dotted <name> (no trailing dot; "" is the root), compressed when <compress>; its
 * suffixes are remembered either way, so later names may point into it. */
static void put_name_c(struct writer *w, const char *name, bool compress)
{
    const char *s = name;
    while (*s) {
        int ptr = compress ? find_comp(w, s) : -1;
        if (ptr >= 0) {
            put16(w, 0xc000 | (unsigned)ptr);
            return;
        }
        const char *dot = strchr(s, '.');
        size_t l = dot ? (size_t)(dot - s) : strlen(s);
        if (l > 63)
            l = 63;
        remember(w, s, w->len);
        unsigned char lb = (unsigned char)l;
        put(w, &lb, 1);
        put(w, s, l);
        s = dot ? dot + 1 : s + l;
    }
    unsigned char zero = 0;
    put(w, &zero, 1);
}

static void put_name(struct writer *w, const char *name)
{
    put_name_c(w, name, true);
}

/* Starts a resource record; returns a mark to roll back to if it does not fit. */
struct mark {
    size_t len;
    int ncomp;
};

static struct mark rr_begin(struct writer *w, const char *owner, unsigned type, unsigned ttl)
{
    struct mark m = {w->len, w->ncomp};
    put_name(w, owner);
    put16(w, type);
    put16(w, DNS_C_IN);
    put32(w, ttl);
    return m;
}

/* Writes rdata length for an RR begun at rdata_at-2; returns false (rolled back) on overflow. */
static bool rr_end(struct writer *w, struct mark m, size_t rdlen_at)
{
    if (w->full) {
        w->len = m.len;
        w->ncomp = m.ncomp;
        w->full = false;
        return false;
    }
    size_t rdlen = w->len - rdlen_at - 2;
    w->buf[rdlen_at] = (unsigned char)(rdlen >> 8);
    w->buf[rdlen_at + 1] = (unsigned char)rdlen;
    return true;
}

#define RR(w, owner, type, ttl, body)                                                                             \
    ({                                                                                                            \
        struct mark m_ = rr_begin((w), (owner), (type), (ttl));                                                   \
        size_t at_ = (w)->len;                                                                                    \
        put16((w), 0);                                                                                            \
        body;                                                                                                     \
        rr_end((w), m_, at_);                                                                                     \
    })

static void put_header(struct writer *w, const struct dns_query *q, int rcode, bool aa, bool ra)
{
    unsigned flags = 0x8000 | (unsigned)(q->opcode << 11) | (aa ? 0x0400 : 0) | (q->rd ? 0x0100 : 0) |
                     (ra ? 0x0080 : 0) | (unsigned)(rcode & 0xf);
    put16(w, q->id);
    put16(w, flags);
    put16(w, 0);
    put16(w, 0);
    put16(w, 0);
    put16(w, 0);
}

static void set_count(struct writer *w, int which, unsigned n)
{
    w->buf[4 + which * 2] = (unsigned char)(n >> 8);
    w->buf[5 + which * 2] = (unsigned char)n;
}

/* Echoes the question with the query's own case, and remembers its suffixes for compression. */
static void put_question(struct writer *w, const struct dns_query *q)
{
    size_t at = w->len;
    put(w, q->qname_wire, q->qname_wire_len);
    const char *s = q->qname;
    size_t off = at;
    while (*s) {
        remember(w, s, off);
        const char *dot = strchr(s, '.');
        off += 1 + (dot ? (size_t)(dot - s) : strlen(s));
        s = dot ? dot + 1 : s + strlen(s);
    }
    put16(w, q->qtype);
    put16(w, q->qclass);
}

static void put_opt(struct writer *w, const struct dns_query *q, int rcode)
{
    unsigned char root = 0;
    put(w, &root, 1);
    put16(w, DNS_T_OPT);
    put16(w, q->advertise ? q->advertise : DNS_UDP_DEFAULT);
    put32(w, (uint32_t)(rcode >> 4) << 24 | (q->do_bit ? 0x8000u : 0));
    put16(w, 0);
}

size_t dns_error(const struct dns_query *q, const unsigned char *raw, size_t rawlen, int rcode, unsigned char *out,
                 size_t max)
{
    struct writer w = {.buf = out, .max = max};
    struct dns_query hq = *q;
    if (rawlen >= 4) {
        hq.id = get16(raw);
        hq.opcode = (get16(raw + 2) >> 11) & 0xf;
        hq.rd = get16(raw + 2) & 0x0100;
    }
    put_header(&w, &hq, rcode, false, false);
    if (q->qname_wire_len) {
        put_question(&w, q);
        set_count(&w, 0, 1);
    }
    if (q->edns || rcode == DNS_R_BADVERS) {
        put_opt(&w, q, rcode);
        set_count(&w, 3, 1);
    }
    return w.full ? 0 : w.len;
}

/* ---- answers ---- */

static void soa_rdata(struct writer *w, const struct dns_zone *z, const char *ns)
{
    char host[DNS_MAX_NAME + 8];
    snprintf(host, sizeof host, "ns1.%s", ns);
    put_name(w, host);
    snprintf(host, sizeof host, "hostmaster.%s", ns);
    put_name(w, host);
    put32(w, z->serial);
    put32(w, 3600);
    put32(w, 600);
    put32(w, 86400);
    put32(w, z->ttl);
}

/* The owner of instance <i> as "id.<qname suffix>" so compression reuses the question. */
static void inst_owner(const struct dns_instance *i, char *dst, size_t size)
{
    snprintf(dst, size, "%s.%s.%s", i->id, i->svc->name, i->svc->ns->name);
}

static bool put_addr_rr(struct writer *w, const char *owner, const struct dns_instance *i, unsigned ttl)
{
    return RR(w, owner, i->family == AF_INET ? DNS_T_A : DNS_T_AAAA, ttl,
              put(w, i->addr, i->family == AF_INET ? 4 : 16));
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

static void put_hinfo(struct writer *w, const char *owner, unsigned ttl, unsigned *an)
{
    /* RFC 8482 §4.2: answer ANY with one synthesized HINFO record. */
    if (RR(w, owner, DNS_T_HINFO, ttl, ({
               put(w, "\x07RFC8482", 8);
               put(w, "\x00", 1);
           })))
        (*an)++;
}

size_t dns_answer(const struct dns_zone *z, const struct dns_query *q, bool ra, unsigned char *out, size_t max,
                  bool *refused)
{
    struct writer w = {.buf = out, .max = max - (q->edns ? 11 : 0)};
    *refused = false;
    const struct dns_node *node = dns_zone_lookup(z, q->qname, q->qname_len);
    const struct dns_namespace *ns = node ? node->ns : dns_zone_covering(z, q->qname, q->qname_len);
    if (!ns || (q->qclass != DNS_C_IN && q->qclass != DNS_C_ANY)) {
        *refused = true;
        return 0;
    }
    put_header(&w, q, DNS_R_NOERROR, true, ra);
    put_question(&w, q);
    set_count(&w, 0, 1);
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
                tc |= !RR(&w, owner, DNS_T_SOA, ttl, soa_rdata(&w, z, ns->name));
                an += !tc;
            } else if (q->qtype == DNS_T_NS) {
                snprintf(name, sizeof name, "ns1.%s", ns->name);
                tc |= !RR(&w, owner, DNS_T_NS, ttl, put_name(&w, name));
                an += !tc;
                if (!tc && RR(&w, name, DNS_T_A, ttl, put(&w, z->ns_addr, 4)))
                    ar++;
            }
            break;
        case NODE_NSHOST:
            if (q->qtype == DNS_T_A) {
                tc |= !RR(&w, owner, DNS_T_A, ttl, put(&w, z->ns_addr, 4));
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
                    tc |= !RR(&w, owner, DNS_T_SRV, ttl, ({
                                  put16(&w, 0);
                                  put16(&w, 1);
                                  put16(&w, (unsigned)list[i]->port);
                                  /* RFC 2782: the SRV target is never compressed. */
                                  put_name_c(&w, name, false);
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
                tc |= !RR(&w, owner, DNS_T_TXT, ttl, ({
                              const char *k;
                              json_t *v;
                              json_object_foreach(in->attributes, k, v) {
                                  char kv[256];
                                  int l = snprintf(kv, sizeof kv, "%s=%s", k, json_string_value(v));
                                  unsigned char lb = (unsigned char)(l > 255 ? 255 : l);
                                  put(&w, &lb, 1);
                                  put(&w, kv, lb);
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
        if (RR(&w, ns->name, DNS_T_SOA, ttl, soa_rdata(&w, z, ns->name)))
            nscount = 1;
    }
    set_count(&w, 1, an);
    set_count(&w, 2, nscount);
    set_count(&w, 3, ar);
    w.max += q->edns ? 11 : 0;
    if (q->edns) {
        put_opt(&w, q, rcode);
        set_count(&w, 3, ar + 1);
    }
    out[3] = (unsigned char)((out[3] & 0xf0) | (rcode & 0xf));
    if (tc)
        out[2] |= 0x02;
    return w.len;
}
