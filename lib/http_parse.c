/* http_parse.c -- strict HTTP/1.1 head parser (RFC 9112) and chunked-body validator. */
#include <string.h>

#include "berth/http.h"
#include "berth/util.h"

/* RFC 9110 §5.6.2 tchar. */
static const unsigned char tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
    ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,
    ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1,
    ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1,
    ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1,
};

static inline int lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

static bool ieqn(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return false;
    return true;
}

static bool ieq(const char *a, size_t alen, const char *b)
{
    return alen == strlen(b) && ieqn(a, b, alen);
}

/* Compares with a string literal; the length check comes first and is free. */
#define IEQ_LIT(a, alen, lit) ((alen) == sizeof(lit) - 1 && ieqn((a), (lit), sizeof(lit) - 1))

bool http_header_is(const struct http_header *h, const char *name)
{
    return ieq(h->name, h->name_len, name);
}

/* Field-value octets (RFC 9110 §5.5): VCHAR, obs-text, SP, HTAB. CR, LF, NUL
 * and other controls are rejected (RFC 9110 §5.5: MUST reject or replace). */
static inline bool value_char(unsigned char c)
{
    return c >= 0x20 ? c != 0x7f : c == '\t';
}

/* Iterates the comma-separated tokens of a list-valued field. */
struct list_iter {
    const char *p, *end;
};

static bool list_next(struct list_iter *it, const char **tok, size_t *tlen)
{
    for (;;) {
        while (it->p < it->end && (*it->p == ' ' || *it->p == '\t' || *it->p == ','))
            it->p++;
        if (it->p >= it->end)
            return false;
        const char *s = it->p;
        while (it->p < it->end && *it->p != ',')
            it->p++;
        const char *e = it->p;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (e > s) {
            *tok = s;
            *tlen = (size_t)(e - s);
            return true;
        }
    }
}

enum { PARSE_REQUEST, PARSE_RESPONSE };

/* Parses header lines starting at <p>. Returns the head length, 0 if more
 * input is needed, or an error. */
static int parse_headers(const char *buf, const char *p, const char *end, struct http_msg *m)
{
    m->num_headers = 0;
    for (;;) {
        if (p >= end)
            return HTTP_INCOMPLETE;
        if (*p == '\r') {
            if (p + 1 >= end)
                return HTTP_INCOMPLETE;
            if (p[1] != '\n')
                return HTTP_ERR_BAD;
            m->head_len = (size_t)(p + 2 - buf);
            return (int)m->head_len;
        }
        /* RFC 9112 §5.2: obs-fold is rejected with 400. */
        if (*p == ' ' || *p == '\t')
            return HTTP_ERR_BAD;
        const char *name = p;
        while (p < end && tchar[(unsigned char)*p])
            p++;
        if (p >= end)
            return HTTP_INCOMPLETE;
        /* RFC 9112 §5.1: no whitespace between field name and colon. */
        if (*p != ':' || p == name)
            return HTTP_ERR_BAD;
        size_t name_len = (size_t)(p - name);
        p++;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        const char *value = p;
        while (p < end && value_char((unsigned char)*p))
            p++;
        if (p >= end)
            return HTTP_INCOMPLETE;
        if (*p != '\r')
            return HTTP_ERR_BAD; /* bare LF, NUL or another control */
        if (p + 1 >= end)
            return HTTP_INCOMPLETE;
        if (p[1] != '\n')
            return HTTP_ERR_BAD; /* bare CR */
        const char *vend = p;
        while (vend > value && (vend[-1] == ' ' || vend[-1] == '\t'))
            vend--;
        if (m->num_headers == HTTP_MAX_HEADERS)
            return HTTP_ERR_TOO_LARGE;
        struct http_header *h = &m->headers[m->num_headers++];
        h->name = name;
        h->name_len = (unsigned)name_len;
        h->value = value;
        h->value_len = (unsigned)(vend - value);
        p += 2;
    }
}

static const char *const known_codings[] = {"gzip", "x-gzip", "deflate", "compress", "x-compress", NULL};

/* Applies framing rules of RFC 9112 §6 to the parsed headers. */
static int analyse(struct http_msg *m, int kind)
{
    bool have_cl = false, te_chunked_last = false;
    int te_chunked_count = 0, hosts = 0;
    bool conn_upgrade = false, upgrade_ws = false, conn_keepalive = false;
    m->host_idx = -1;
    m->conn_close = false;
    m->has_te = false;
    m->te_coded = false;
    m->expect_continue = false;
    m->conn_tokens = 0;
    m->content_length = 0;

    for (unsigned i = 0; i < m->num_headers; i++) {
        struct http_header *h = &m->headers[i];
        switch (lower((unsigned char)h->name[0])) {
        case 'c':
            if (IEQ_LIT(h->name, h->name_len, "content-length")) {
                /* RFC 9112 §6.3: duplicate or invalid Content-Length is unrecoverable. */
                if (have_cl || h->value_len == 0 || h->value_len > 18)
                    return HTTP_ERR_BAD;
                uint64_t v = 0;
                for (unsigned k = 0; k < h->value_len; k++) {
                    char c = h->value[k];
                    if (c < '0' || c > '9')
                        return HTTP_ERR_BAD;
                    v = v * 10 + (uint64_t)(c - '0');
                }
                m->content_length = v;
                have_cl = true;
            } else if (IEQ_LIT(h->name, h->name_len, "connection")) {
                struct list_iter it = {h->value, h->value + h->value_len};
                const char *t;
                size_t tl;
                while (list_next(&it, &t, &tl)) {
                    if (IEQ_LIT(t, tl, "close"))
                        m->conn_close = true;
                    else if (IEQ_LIT(t, tl, "keep-alive"))
                        conn_keepalive = true;
                    else if (IEQ_LIT(t, tl, "upgrade"))
                        conn_upgrade = true;
                    else
                        m->conn_tokens++;
                }
            }
            break;
        case 't':
            if (IEQ_LIT(h->name, h->name_len, "transfer-encoding")) {
                m->has_te = true;
                struct list_iter it = {h->value, h->value + h->value_len};
                const char *t;
                size_t tl;
                while (list_next(&it, &t, &tl)) {
                    te_chunked_last = false;
                    if (IEQ_LIT(t, tl, "chunked")) {
                        te_chunked_count++;
                        te_chunked_last = true;
                        continue;
                    }
                    bool known = false;
                    for (int k = 0; known_codings[k]; k++)
                        known = known || ieq(t, tl, known_codings[k]);
                    if (!known && kind == PARSE_REQUEST)
                        return HTTP_ERR_NOT_IMPL;
                    m->te_coded = true;
                }
            }
            break;
        case 'h':
            if (IEQ_LIT(h->name, h->name_len, "host")) {
                hosts++;
                m->host_idx = (int)i;
            }
            break;
        case 'u':
            if (IEQ_LIT(h->name, h->name_len, "upgrade")) {
                struct list_iter it = {h->value, h->value + h->value_len};
                const char *t;
                size_t tl;
                while (list_next(&it, &t, &tl))
                    if (IEQ_LIT(t, tl, "websocket"))
                        upgrade_ws = true;
            }
            break;
        case 'e':
            if (IEQ_LIT(h->name, h->name_len, "expect") && IEQ_LIT(h->value, h->value_len, "100-continue"))
                m->expect_continue = true;
            break;
        }
    }

    m->upgrade_websocket = conn_upgrade && upgrade_ws;
    m->keep_alive = m->minor_version == 1 ? !m->conn_close : (conn_keepalive && !m->conn_close);

    if (kind == PARSE_REQUEST) {
        /* RFC 9112 §3.2: exactly one Host in HTTP/1.1. */
        if (hosts > 1 || (hosts == 0 && m->minor_version == 1))
            return HTTP_ERR_BAD;
        if (m->has_te) {
            /* RFC 9112 §6.1: TE in HTTP/1.0 is faulty framing; chunked must be
             * final and only once; TE with Content-Length is rejected (§6.3). */
            if (m->minor_version == 0 || have_cl || !te_chunked_last || te_chunked_count != 1)
                return HTTP_ERR_BAD;
            m->body = HTTP_BODY_CHUNKED;
        } else if (have_cl && m->content_length > 0) {
            m->body = HTTP_BODY_LENGTH;
        } else {
            m->body = HTTP_BODY_NONE;
        }
        return 0;
    }

    /* Responses: RFC 9112 §6.3 rules 1-7. */
    if (have_cl && m->has_te)
        return HTTP_ERR_BAD;
    if (m->has_te && te_chunked_count > 1)
        return HTTP_ERR_BAD;
    if (m->has_te)
        m->body = te_chunked_last ? HTTP_BODY_CHUNKED : HTTP_BODY_EOF;
    else if (have_cl)
        m->body = m->content_length > 0 ? HTTP_BODY_LENGTH : HTTP_BODY_NONE;
    else
        m->body = HTTP_BODY_EOF;
    if (m->body == HTTP_BODY_EOF)
        m->keep_alive = false;
    return 0;
}

static enum http_method method_id(const char *p, size_t n)
{
    static const struct {
        const char *name;
        enum http_method id;
    } tab[] = {
        {"GET", HTTP_M_GET},         {"HEAD", HTTP_M_HEAD},   {"POST", HTTP_M_POST},
        {"PUT", HTTP_M_PUT},         {"DELETE", HTTP_M_DELETE}, {"OPTIONS", HTTP_M_OPTIONS},
        {"TRACE", HTTP_M_TRACE},     {"PATCH", HTTP_M_PATCH}, {"CONNECT", HTTP_M_CONNECT},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (strlen(tab[i].name) == n && memcmp(tab[i].name, p, n) == 0)
            return tab[i].id;
    return HTTP_M_OTHER;
}

/* "HTTP/1.x" at p; returns minor version or -1 (-2 when incomplete). */
static int parse_version(const char *p, const char *end)
{
    static const char v[] = "HTTP/1.";
    for (int i = 0; i < 8; i++) {
        if (p + i >= end)
            return -2;
        if (i < 7 ? p[i] != v[i] : (p[i] != '0' && p[i] != '1'))
            return -1;
    }
    return p[7] - '0';
}

static int finish(int r, size_t len, size_t max_head)
{
    if (r == HTTP_INCOMPLETE && len >= max_head)
        return HTTP_ERR_TOO_LARGE;
    if (r > 0 && (size_t)r > max_head)
        return HTTP_ERR_TOO_LARGE;
    return r;
}

int http_parse_request(const char *buf, size_t len, size_t max_head, struct http_msg *m)
{
    const char *p = buf, *end = buf + len;
    /* RFC 9112 §2.2: ignore at least one empty line before the request-line. */
    for (int i = 0; i < 2 && p + 1 < end && p[0] == '\r' && p[1] == '\n'; i++)
        p += 2;
    m->method = p;
    while (p < end && tchar[(unsigned char)*p])
        p++;
    if (p >= end)
        return finish(HTTP_INCOMPLETE, len, max_head);
    if (*p != ' ' || p == m->method)
        return HTTP_ERR_BAD;
    m->method_len = (unsigned)(p - m->method);
    m->method_id = method_id(m->method, m->method_len);
    m->target = ++p;
    while (p < end && (unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f)
        p++;
    if (p >= end)
        return finish(HTTP_INCOMPLETE, len, max_head);
    if (*p != ' ' || p == m->target)
        return HTTP_ERR_BAD;
    m->target_len = (unsigned)(p - m->target);
    p++;
    int minor = parse_version(p, end);
    if (minor == -2)
        return finish(HTTP_INCOMPLETE, len, max_head);
    if (minor < 0)
        return HTTP_ERR_BAD;
    m->minor_version = minor;
    p += 8;
    if (p >= end || (*p == '\r' && p + 1 >= end))
        return finish(HTTP_INCOMPLETE, len, max_head);
    if (p[0] != '\r' || p[1] != '\n')
        return HTTP_ERR_BAD;
    p += 2;
    m->status = 0;
    m->reason = NULL;
    m->reason_len = 0;
    int r = finish(parse_headers(buf, p, end, m), len, max_head);
    if (r <= 0)
        return r;
    int a = analyse(m, PARSE_REQUEST);
    return a < 0 ? a : r;
}

int http_parse_response(const char *buf, size_t len, size_t max_head, enum http_method req_method,
                        struct http_msg *m)
{
    const char *p = buf, *end = buf + len;
    int minor = parse_version(p, end);
    if (minor == -2)
        return finish(HTTP_INCOMPLETE, len, max_head);
    if (minor < 0)
        return HTTP_ERR_BAD;
    m->minor_version = minor;
    p += 8;
    if (p + 4 > end)
        return finish(HTTP_INCOMPLETE, len, max_head);
    if (p[0] != ' ')
        return HTTP_ERR_BAD;
    int st = 0;
    for (int i = 1; i <= 3; i++) {
        if (p[i] < '0' || p[i] > '9')
            return HTTP_ERR_BAD;
        st = st * 10 + (p[i] - '0');
    }
    if (st < 100)
        return HTTP_ERR_BAD;
    m->status = st;
    p += 4;
    m->reason = p;
    if (p < end && *p == ' ') {
        m->reason = ++p;
        while (p < end && value_char((unsigned char)*p))
            p++;
    }
    if (p + 1 >= end)
        return finish(HTTP_INCOMPLETE, len, max_head);
    if (p[0] != '\r' || p[1] != '\n')
        return HTTP_ERR_BAD;
    m->reason_len = (unsigned)(p - m->reason);
    p += 2;
    m->method = m->target = NULL;
    m->method_len = m->target_len = 0;
    m->method_id = req_method;
    int r = finish(parse_headers(buf, p, end, m), len, max_head);
    if (r <= 0)
        return r;
    int a = analyse(m, PARSE_RESPONSE);
    if (a < 0)
        return a;
    /* RFC 9112 §6.3 rules 1-2: no body for HEAD, 1xx, 204, 304, 2xx to CONNECT. */
    if (req_method == HTTP_M_HEAD || st < 200 || st == 204 || st == 304 ||
        (req_method == HTTP_M_CONNECT && st < 300))
        m->body = HTTP_BODY_NONE;
    return r;
}

bool http_is_hop_by_hop(const struct http_msg *m, const struct http_header *h)
{
    /* RFC 9110 §7.6.1 names, dispatched on length. */
    const char *n = h->name;
    switch (h->name_len) {
    case 2: if (IEQ_LIT(n, 2, "te")) return true; break;
    case 7: if (IEQ_LIT(n, 7, "trailer") || IEQ_LIT(n, 7, "upgrade")) return true; break;
    case 10: if (IEQ_LIT(n, 10, "connection") || IEQ_LIT(n, 10, "keep-alive")) return true; break;
    case 16: if (IEQ_LIT(n, 16, "proxy-connection")) return true; break;
    case 17: if (IEQ_LIT(n, 17, "transfer-encoding")) return true; break;
    case 18: if (IEQ_LIT(n, 18, "proxy-authenticate")) return true; break;
    case 19: if (IEQ_LIT(n, 19, "proxy-authorization")) return true; break;
    }
    if (m->conn_tokens == 0)
        return false;
    /* Fields that frame or route a message stay end-to-end whatever Connection names: a proxy that
     * dropped Content-Length or Host on a client's say-so would desync or misroute the next hop
     * (RFC 9110 §7.6.1 forbids listing them; a recipient must not obey). */
    if (IEQ_LIT(n, h->name_len, "content-length") || IEQ_LIT(n, h->name_len, "host"))
        return false;
    for (unsigned i = 0; i < m->num_headers; i++) {
        const struct http_header *c = &m->headers[i];
        if (!http_header_is(c, "connection"))
            continue;
        struct list_iter it = {c->value, c->value + c->value_len};
        const char *t;
        size_t tl;
        while (list_next(&it, &t, &tl))
            if (tl == h->name_len && ieqn(t, h->name, tl))
                return true;
    }
    return false;
}

bool http_method_idempotent(enum http_method m)
{
    switch (m) {
    case HTTP_M_GET: case HTTP_M_HEAD: case HTTP_M_PUT: case HTTP_M_DELETE:
    case HTTP_M_OPTIONS: case HTTP_M_TRACE:
        return true;
    default:
        return false;
    }
}

const char *http_status_text(int s)
{
    switch (s) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
    }
}

enum {
    CH_SIZE, CH_SIZE_WS, CH_EXT, CH_SIZE_LF, CH_DATA, CH_DATA_CR, CH_DATA_LF,
    CH_TRAILER_START, CH_TRAILER_NAME, CH_TRAILER, CH_TRAILER_LF, CH_END_LF, CH_DONE,
};

#define CHUNK_LINE_MAX 4096

void http_chunked_init(struct http_chunked *c)
{
    memset(c, 0, sizeof *c);
    c->state = CH_SIZE;
}

ssize_t http_chunked_scan(struct http_chunked *c, const char *p, size_t len, bool *done)
{
    return http_chunked_decode(c, p, len, done, NULL, NULL);
}

ssize_t http_chunked_decode(struct http_chunked *c, const char *p, size_t len, bool *done,
                            void (*data)(void *arg, const char *p, size_t n), void *arg)
{
    size_t i = 0;
    *done = c->state == CH_DONE;
    while (i < len && c->state != CH_DONE) {
        unsigned char ch = (unsigned char)p[i];
        switch (c->state) {
        case CH_SIZE: {
            int v = util_hexval(ch);
            if (v >= 0) {
                /* RFC 9112 §7.1: guard against size overflow. */
                if (++c->digits > 15)
                    return -1;
                c->remaining = c->remaining * 16 + (uint64_t)v;
            } else if (c->digits == 0) {
                return -1;
            } else if (ch == ';') {
                c->state = CH_EXT;
            } else if (ch == ' ' || ch == '\t') {
                c->state = CH_SIZE_WS;
            } else if (ch == '\r') {
                c->state = CH_SIZE_LF;
            } else {
                return -1;
            }
            i++;
            break;
        }
        case CH_SIZE_WS:
            if (ch == ';')
                c->state = CH_EXT;
            else if (ch != ' ' && ch != '\t')
                return -1;
            i++;
            break;
        case CH_EXT:
            if (ch == '\r')
                c->state = CH_SIZE_LF;
            else if (!value_char(ch) || ++c->line_len > CHUNK_LINE_MAX)
                return -1;
            i++;
            break;
        case CH_SIZE_LF:
            if (ch != '\n')
                return -1;
            i++;
            c->line_len = 0;
            c->digits = 0;
            c->state = c->remaining ? CH_DATA : CH_TRAILER_START;
            break;
        case CH_DATA: {
            size_t n = len - i;
            if (n > c->remaining)
                n = (size_t)c->remaining;
            if (data && n)
                data(arg, p + i, n);
            c->remaining -= n;
            i += n;
            if (c->remaining == 0)
                c->state = CH_DATA_CR;
            break;
        }
        case CH_DATA_CR: /* the fixed bytes: CR LF after the data, after a trailer line, at the end */
        case CH_DATA_LF:
        case CH_TRAILER_LF:
        case CH_END_LF:
            if (ch != (c->state == CH_DATA_CR ? '\r' : '\n'))
                return -1;
            c->state = c->state == CH_DATA_CR      ? CH_DATA_LF
                       : c->state == CH_DATA_LF    ? CH_SIZE
                       : c->state == CH_TRAILER_LF ? CH_TRAILER_START
                                                   : CH_DONE;
            i++;
            break;
        case CH_TRAILER_START:
            if (ch == '\r') {
                c->state = CH_END_LF;
            } else if (tchar[ch]) {
                c->state = CH_TRAILER_NAME;
                c->line_len = 1;
            } else {
                return -1;
            }
            i++;
            break;
        case CH_TRAILER_NAME:
            /* Trailer fields follow field-line syntax (RFC 9112 §7.1.2). */
            if (ch == ':')
                c->state = CH_TRAILER;
            else if (!tchar[ch] || ++c->line_len > CHUNK_LINE_MAX)
                return -1;
            i++;
            break;
        case CH_TRAILER:
            if (ch == '\r')
                c->state = CH_TRAILER_LF;
            else if (!value_char(ch) || ++c->line_len > CHUNK_LINE_MAX)
                return -1;
            i++;
            break;
        }
    }
    *done = c->state == CH_DONE;
    return (ssize_t)i;
}

/* RFC 3986 §2.3 unreserved characters. */
static bool unreserved(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_' || c == '~';
}

ssize_t http_normalize_path(char *p, size_t len)
{
    if (len == 1 && p[0] == '*')
        return 1; /* asterisk-form (RFC 9112 §3.2.4) */
    if (len == 0 || p[0] != '/')
        return -1;
    /* Pass 1 (RFC 3986 §6.2.2.1-2): decode percent-encoded unreserved octets, upper-case the hex of
     * the others, reject malformed escapes. */
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] != '%') {
            p[o++] = p[i];
            continue;
        }
        if (i + 2 >= len)
            return -1;
        int hi = util_hexval((unsigned char)p[i + 1]), lo = util_hexval((unsigned char)p[i + 2]);
        if (hi < 0 || lo < 0)
            return -1;
        int ch = hi * 16 + lo;
        if (unreserved(ch)) {
            p[o++] = (char)ch;
        } else {
            p[o++] = '%';
            p[o++] = "0123456789ABCDEF"[hi];
            p[o++] = "0123456789ABCDEF"[lo];
        }
        i += 2;
    }
    len = o;
    /* Pass 2 (RFC 3986 §5.2.4): remove "." and ".." segments; also merge repeated slashes, as nginx
     * does, so "//admin" cannot pass a rule for "/admin*" and still reach /admin. In place: the
     * output never outruns the input. */
    o = 0;
    size_t i = 0;
    while (i < len) {
        /* p[i] == '/': the start of a segment. */
        size_t s = i + 1, e = s;
        while (e < len && p[e] != '/')
            e++;
        size_t sl = e - s;
        bool last = e >= len;
        if (sl == 0 && !last) {
            i = e; /* empty segment: "//" */
            continue;
        }
        if (sl == 1 && p[s] == '.') {
            if (last)
                p[o++] = '/';
            i = e;
            continue;
        }
        if (sl == 2 && p[s] == '.' && p[s + 1] == '.') {
            while (o > 0 && p[o - 1] != '/')
                o--;
            if (o > 0)
                o--; /* drop the previous segment and its slash */
            if (last)
                p[o++] = '/';
            i = e;
            continue;
        }
        p[o++] = '/';
        memmove(p + o, p + s, sl);
        o += sl;
        i = e;
    }
    if (o == 0)
        p[o++] = '/';
    return (ssize_t)o;
}

bool http_host_valid(const char *h, size_t n)
{
    /* RFC 3986 §3.2.2-3: reg-name / IP-literal, then an optional ":port". Anything else (spaces,
     * '/', '@', '\\') is refused rather than passed on for a target to interpret differently. */
    if (n == 0)
        return false;
    size_t i = 0;
    if (h[0] == '[') {
        while (i < n && h[i] != ']') {
            char c = h[i];
            if (!(c == '[' || c == ':' || c == '.' || util_hexval((unsigned char)c) >= 0))
                return false;
            i++;
        }
        if (i == n)
            return false;
        i++;
    } else {
        for (; i < n && h[i] != ':'; i++) {
            unsigned char c = (unsigned char)h[i];
            if (!(unreserved(c) || c == '%' || c == '!' || c == '$' || c == '&' || c == '\'' || c == '(' ||
                  c == ')' || c == '*' || c == '+' || c == ',' || c == ';' || c == '='))
                return false;
        }
        if (i == 0)
            return false;
    }
    if (i < n) {
        if (h[i] != ':' || i + 1 == n || n - i - 1 > 5)
            return false;
        for (i++; i < n; i++)
            if (h[i] < '0' || h[i] > '9')
                return false;
    }
    return true;
}
