/* wire.c -- the DNS wire codec: strict query parsing, the message writer with name compression, error
 * replies (RFC 1035, 6891). What an answer holds is answer.c's. */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "berth/alloc.h"
#include "berth/util.h"
#include "dns.h"
#include "wire.h"

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

static void remember(struct dns_writer *w, const char *suffix, size_t off)
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

static int find_comp(const struct dns_writer *w, const char *suffix)
{
    for (int i = 0; i < w->ncomp; i++)
        if (strcasecmp(w->comp[i].name, suffix) == 0)
            return w->comp[i].off;
    return -1;
}

/* Writes dotted <name> (no trailing dot; "" is the root), compressed when <compress>; its
 * suffixes are remembered either way, so later names may point into it. */
void dns_put_name(struct dns_writer *w, const char *name, bool compress)
{
    const char *s = name;
    while (*s) {
        int ptr = compress ? find_comp(w, s) : -1;
        if (ptr >= 0) {
            dns_put16(w, 0xc000 | (unsigned)ptr);
            return;
        }
        const char *dot = strchr(s, '.');
        size_t l = dot ? (size_t)(dot - s) : strlen(s);
        if (l > 63)
            l = 63;
        remember(w, s, w->len);
        unsigned char lb = (unsigned char)l;
        dns_put(w, &lb, 1);
        dns_put(w, s, l);
        s = dot ? dot + 1 : s + l;
    }
    unsigned char zero = 0;
    dns_put(w, &zero, 1);
}

/* Starts a resource record; returns a mark to roll back to if it does not fit. */
struct dns_mark dns_rr_begin(struct dns_writer *w, const char *owner, unsigned type, unsigned ttl)
{
    struct dns_mark m = {w->len, w->ncomp};
    dns_put_name(w, owner, true);
    dns_put16(w, type);
    dns_put16(w, DNS_C_IN);
    dns_put32(w, ttl);
    return m;
}

/* Writes rdata length for an RR begun at rdata_at-2; returns false (rolled back) on overflow. */
bool dns_rr_end(struct dns_writer *w, struct dns_mark m, size_t rdlen_at)
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

void dns_put_header(struct dns_writer *w, const struct dns_query *q, int rcode, bool aa, bool ra)
{
    unsigned flags = 0x8000 | (unsigned)(q->opcode << 11) | (aa ? 0x0400 : 0) | (q->rd ? 0x0100 : 0) |
                     (ra ? 0x0080 : 0) | (unsigned)(rcode & 0xf);
    dns_put16(w, q->id);
    dns_put16(w, flags);
    dns_put16(w, 0);
    dns_put16(w, 0);
    dns_put16(w, 0);
    dns_put16(w, 0);
}

void dns_set_count(struct dns_writer *w, int which, unsigned n)
{
    w->buf[4 + which * 2] = (unsigned char)(n >> 8);
    w->buf[5 + which * 2] = (unsigned char)n;
}

/* Echoes the question with the query's own case, and remembers its suffixes for compression. */
void dns_put_question(struct dns_writer *w, const struct dns_query *q)
{
    size_t at = w->len;
    dns_put(w, q->qname_wire, q->qname_wire_len);
    const char *s = q->qname;
    size_t off = at;
    while (*s) {
        remember(w, s, off);
        const char *dot = strchr(s, '.');
        off += 1 + (dot ? (size_t)(dot - s) : strlen(s));
        s = dot ? dot + 1 : s + strlen(s);
    }
    dns_put16(w, q->qtype);
    dns_put16(w, q->qclass);
}

void dns_put_opt(struct dns_writer *w, const struct dns_query *q, int rcode)
{
    unsigned char root = 0;
    dns_put(w, &root, 1);
    dns_put16(w, DNS_T_OPT);
    dns_put16(w, q->advertise ? q->advertise : DNS_UDP_DEFAULT);
    dns_put32(w, (uint32_t)(rcode >> 4) << 24 | (q->do_bit ? 0x8000u : 0));
    dns_put16(w, 0);
}

size_t dns_error(const struct dns_query *q, const unsigned char *raw, size_t rawlen, int rcode, unsigned char *out,
                 size_t max)
{
    struct dns_writer w = {.buf = out, .max = max};
    struct dns_query hq = *q;
    if (rawlen >= 4) {
        hq.id = get16(raw);
        hq.opcode = (get16(raw + 2) >> 11) & 0xf;
        hq.rd = get16(raw + 2) & 0x0100;
    }
    dns_put_header(&w, &hq, rcode, false, false);
    if (q->qname_wire_len) {
        dns_put_question(&w, q);
        dns_set_count(&w, 0, 1);
    }
    if (q->edns || rcode == DNS_R_BADVERS) {
        dns_put_opt(&w, q, rcode);
        dns_set_count(&w, 3, 1);
    }
    return w.full ? 0 : w.len;
}

