/* test_wire.c -- the DNS codec (wire.c) and the answer policy (answer.c), without sockets: queries
 * built here, answers decoded here. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "../../tap.h"

/* Builds a query for <name> of <type> into <out>; with <edns>, an OPT record advertising 1232. */
static size_t query(unsigned char *out, uint16_t id, const char *name, uint16_t type, bool edns)
{
    size_t n = 0;
    unsigned char h[12] = {(unsigned char)(id >> 8), (unsigned char)id, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, edns ? 1 : 0};
    memcpy(out, h, 12);
    n = 12;
    for (const char *s = name; *s;) {
        const char *dot = strchr(s, '.');
        size_t l = dot ? (size_t)(dot - s) : strlen(s);
        out[n++] = (unsigned char)l;
        memcpy(out + n, s, l);
        n += l;
        s += l + (dot != NULL);
    }
    out[n++] = 0;
    out[n++] = (unsigned char)(type >> 8);
    out[n++] = (unsigned char)type;
    out[n++] = 0;
    out[n++] = 1;
    if (edns) {
        const unsigned char opt[11] = {0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0};
        memcpy(out + n, opt, sizeof opt);
        n += sizeof opt;
    }
    return n;
}

/* What a reply says: rcode, flags, counts, and the answer section's records. */
struct rr {
    uint16_t type;
    unsigned char rdata[64];
    uint16_t rdlen;
};
struct reply {
    int rcode;
    bool tc, aa;
    unsigned qd, an, ns, ar;
    struct rr rr[32];
    size_t nrr;
};

static size_t skip_name(const unsigned char *p, size_t len, size_t off)
{
    while (off < len) {
        if ((p[off] & 0xc0) == 0xc0)
            return off + 2;
        if (p[off] == 0)
            return off + 1;
        off += 1 + p[off];
    }
    return len;
}

static bool decode(const unsigned char *p, size_t len, struct reply *r)
{
    memset(r, 0, sizeof *r);
    if (len < 12)
        return false;
    r->rcode = p[3] & 0xf;
    r->tc = p[2] & 0x02;
    r->aa = p[2] & 0x04;
    r->qd = (unsigned)(p[4] << 8 | p[5]);
    r->an = (unsigned)(p[6] << 8 | p[7]);
    r->ns = (unsigned)(p[8] << 8 | p[9]);
    r->ar = (unsigned)(p[10] << 8 | p[11]);
    size_t off = 12;
    for (unsigned i = 0; i < r->qd; i++)
        off = skip_name(p, len, off) + 4;
    for (unsigned i = 0; i < r->an && r->nrr < 32; i++) {
        off = skip_name(p, len, off);
        if (off + 10 > len)
            return false;
        struct rr *x = &r->rr[r->nrr++];
        x->type = (uint16_t)(p[off] << 8 | p[off + 1]);
        x->rdlen = (uint16_t)(p[off + 8] << 8 | p[off + 9]);
        off += 10;
        if (off + x->rdlen > len)
            return false;
        memcpy(x->rdata, p + off, x->rdlen < sizeof x->rdata ? x->rdlen : sizeof x->rdata);
        off += x->rdlen;
    }
    return true;
}

static const char *ipv4(const struct rr *x, char *buf)
{
    return x->rdlen == 4 ? inet_ntop(AF_INET, x->rdata, buf, 16) : "?";
}

static struct dns_server srv;

/* Sends <name>/<type> through dns_server_handle (UDP limits); returns the result. */
static enum dns_result ask(const char *name, uint16_t type, bool edns, struct reply *r)
{
    unsigned char q[512], out[4096];
    size_t qlen = query(q, 0x1234, name, type, edns), n = 0;
    enum dns_result res = dns_server_handle(&srv, q, qlen, NULL, false, out, sizeof out, &n, NULL, NULL);
    if (res == DNS_REPLY)
        decode(out, n, r);
    return res;
}

int main(void)
{
    const char *conf =
        "{\"namespaces\":[{\"name\":\"berth.internal\",\"services\":["
        "{\"name\":\"web\",\"instances\":["
        "{\"id\":\"w1\",\"address\":\"10.0.0.1\",\"port\":8001},{\"id\":\"w2\",\"address\":\"10.0.0.2\",\"port\":8002},"
        "{\"id\":\"w3\",\"address\":\"10.0.0.3\",\"port\":8003},{\"id\":\"w4\",\"address\":\"10.0.0.4\",\"port\":8004},"
        "{\"id\":\"sick\",\"address\":\"10.0.0.9\",\"port\":8009,\"healthy\":false}]},"
        "{\"name\":\"db\",\"instances\":[{\"id\":\"d1\",\"address\":\"10.0.1.1\",\"port\":5432,\"healthy\":false},"
        "{\"id\":\"d2\",\"address\":\"10.0.1.2\",\"port\":5433,\"healthy\":false}]}]}]}";
    json_t *root = json_loads(conf, 0, NULL);
    char *err = NULL;
    srv.conf = dns_config_parse(root, &err);
    json_decref(root);
    if (!ok(srv.conf != NULL, "zone config parses")) {
        printf("# %s\n", err);
        return 1;
    }
    srv.zone = srv.conf->zone;
    struct reply r;
    char ip[16];

    /* ---- codec ---- */
    unsigned char q[512];
    struct dns_query dq;
    bool header_ok;
    size_t qlen = query(q, 7, "Web.Berth.Internal", DNS_T_A, true);
    is_int(dns_parse_query(q, qlen, &dq, &header_ok), DNS_R_NOERROR, "a well-formed query parses");
    is_str(dq.qname, "Web.Berth.Internal", "the name keeps its case");
    ok(dq.edns && dq.udp_size == 1232 && dq.qtype == DNS_T_A && dq.id == 7, "EDNS, type and id are read");
    q[qlen] = 0;
    is_int(dns_parse_query(q, qlen + 1, &dq, &header_ok), DNS_R_FORMERR, "a trailing byte is FORMERR");
    ok(dns_parse_query(q, 5, &dq, &header_ok) < 0 || !header_ok, "a message shorter than a header is not answered");
    /* A compression pointer to itself: a loop. */
    unsigned char loop[] = {0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1};
    is_int(dns_parse_query(loop, sizeof loop, &dq, &header_ok), DNS_R_FORMERR, "a name pointing at itself is FORMERR");
    unsigned char resp[64];
    size_t rlen = query(resp, 9, "web.berth.internal", DNS_T_A, false);
    resp[2] |= 0x80; /* QR: a response */
    is_int(dns_parse_query(resp, rlen, &dq, &header_ok), -1, "a response is dropped, never answered");

    /* ---- dns_server_handle: what became of a query ---- */
    unsigned char out[512];
    size_t n = 99;
    is_int(dns_server_handle(&srv, (const unsigned char *)"junk", 4, NULL, false, out, sizeof out, &n, NULL, NULL),
           DNS_DROP, "four bytes of junk are dropped");
    is_int(n, 0, "and have no reply");
    is_int(ask("web.berth.internal", DNS_T_AXFR, false, &r), DNS_REPLY, "AXFR over UDP gets a reply");
    is_int(r.rcode, DNS_R_FORMERR, "which is FORMERR (RFC 5936 section 4.2)");
    is_int(ask("example.com", DNS_T_A, false, &r), DNS_REPLY, "a name outside every namespace gets a reply");
    is_int(r.rcode, DNS_R_REFUSED, "which is REFUSED without a recursor");

    /* ---- answer policy ---- */
    is_int(ask("web.berth.internal", DNS_T_A, true, &r), DNS_REPLY, "A for a service");
    ok(r.aa && r.rcode == 0, "authoritative, NOERROR");
    is_int(r.nrr, 4, "the four healthy instances, not the unhealthy one");
    bool sick = false;
    for (size_t i = 0; i < r.nrr; i++)
        sick |= strcmp(ipv4(&r.rr[i], ip), "10.0.0.9") == 0;
    ok(!sick, "the unhealthy instance is left out");

    ask("db.berth.internal", DNS_T_A, true, &r);
    is_int(r.nrr, 2, "fail open: a service with no healthy instance answers with all of them");

    /* Shuffled: over 200 answers, every healthy instance comes first sometimes. */
    int first[5] = {0};
    for (int i = 0; i < 200; i++) {
        ask("web.berth.internal", DNS_T_A, true, &r);
        if (r.nrr)
            first[atoi(ipv4(&r.rr[0], ip) + 7) % 5]++;
    }
    ok(first[1] && first[2] && first[3] && first[4], "answers are shuffled: each instance came first (%d %d %d %d)",
       first[1], first[2], first[3], first[4]);

    ask("web.berth.internal", DNS_T_SRV, true, &r);
    is_int(r.nrr, 4, "SRV for a service: one record per healthy instance");
    bool ports = r.nrr > 0;
    for (size_t i = 0; i < r.nrr; i++) {
        unsigned port = (unsigned)(r.rr[i].rdata[4] << 8 | r.rr[i].rdata[5]);
        ports &= r.rr[i].type == DNS_T_SRV && port >= 8001 && port <= 8004;
    }
    ok(ports, "SRV records carry the instances' ports");
    is_int(r.ar, 5, "the targets' addresses come as additional records (and the OPT)");

    ask("nope.berth.internal", DNS_T_A, true, &r);
    ok(r.rcode == DNS_R_NXDOMAIN && r.an == 0 && r.ns == 1, "an unknown name is NXDOMAIN with the SOA (RFC 2308)");
    ask("web.berth.internal", DNS_T_TXT, true, &r);
    ok(r.rcode == 0 && r.an == 0 && r.ns == 1, "a type the name does not have is NODATA with the SOA");
    ask("w1.web.berth.internal", DNS_T_A, true, &r);
    ok(r.nrr == 1 && strcmp(ipv4(&r.rr[0], ip), "10.0.0.1") == 0, "an instance's own name is its address");
    ask("web.berth.internal", DNS_T_ANY, true, &r);
    ok(r.nrr == 1 && r.rr[0].type == DNS_T_HINFO, "ANY is answered with one HINFO (RFC 8482)");

    /* Truncation: a 512-byte UDP reply without EDNS holds what fits and says TC. */
    struct dns_query big;
    size_t blen = query(q, 1, "web.berth.internal", DNS_T_A, false);
    dns_parse_query(q, blen, &big, &header_ok);
    bool refused;
    unsigned char small[80];
    size_t slen = dns_answer(srv.zone, &big, false, small, sizeof small, &refused);
    decode(small, slen, &r);
    ok(!refused && r.tc && r.an < 4 && slen <= sizeof small, "an answer that does not fit is cut at a record and has TC (%u of 4)",
       r.an);

    dns_config_free(srv.conf);
    return done_testing();
}
