/* forward.c -- what a request looks like to its target and a response to its client (see forward.h). */
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include <stdio.h>

#include "berth/util.h"
#include "forward.h"

/* Splits the port off <h> (minding "[v6]:port") and one trailing dot off the name, for matching. */
static void match_host(const char *h, size_t n, struct proxy_reqinfo *ri)
{
    for (size_t i = n; i-- > 0;) {
        if (h[i] == ']')
            break;
        if (h[i] == ':') {
            n = i;
            break;
        }
    }
    if (n > 1 && h[n - 1] == '.')
        n--;
    ri->host = h;
    ri->host_len = n;
}

int proxy_reqinfo_fill(struct proxy_reqinfo *ri, const struct http_msg *m, const struct sockaddr *peer,
                       const char *listen)
{
    memset(ri, 0, sizeof *ri);
    ri->m = m;
    ri->peer = peer;
    char *t = (char *)m->target; /* the caller's input buffer, ours to write */
    size_t tl = m->target_len;
    if (tl > 0 && t[0] != '/' && !(tl == 1 && t[0] == '*')) {
        /* absolute-form (RFC 9112 §3.2.2): the authority replaces Host, and is what is forwarded. */
        size_t skip = tl > 7 && strncasecmp(t, "http://", 7) == 0    ? 7
                      : tl > 8 && strncasecmp(t, "https://", 8) == 0 ? 8
                                                                     : 0;
        if (!skip)
            return 400;
        size_t a = skip;
        while (a < tl && t[a] != '/' && t[a] != '?')
            a++;
        if (!http_host_valid(t + skip, a - skip))
            return 400; /* also userinfo ("user@host"), which RFC 9110 §4.2.4 forbids */
        ri->authority = t + skip;
        ri->authority_len = a - skip;
        t += a;
        tl -= a;
    } else if (m->host_idx >= 0) {
        const struct http_header *h = &m->headers[m->host_idx];
        if (!http_host_valid(h->value, h->value_len))
            return 400;
        ri->authority = h->value;
        ri->authority_len = h->value_len;
    } else {
        /* HTTP/1.0 without Host: the target still gets one (HTTP/1.1 requires it). */
        ri->authority = listen;
        ri->authority_len = strlen(listen);
    }
    match_host(ri->authority, ri->authority_len, ri);
    char *q = memchr(t, '?', tl);
    size_t plen = q ? (size_t)(q - t) : tl;
    ri->has_query = q != NULL;
    ri->query = q ? q + 1 : t + tl;
    ri->query_len = q ? tl - plen - 1 : 0;
    if (plen == 0) {
        ri->path = "/", ri->path_len = 1;
    } else {
        ssize_t n = http_normalize_path(t, plen);
        if (n < 0)
            return 400;
        ri->path = t;
        ri->path_len = (size_t)n;
    }
    return 0;
}

/* Appends one Transfer-Encoding line carrying every coding of <m>'s Transfer-Encoding fields, in
 * order: the body passes through still coded, so the codings must go with it. */
static void append_te(struct buf *b, const struct http_msg *m)
{
    if (!m->te_coded) {
        BUF_LIT(b, "Transfer-Encoding: chunked\r\n");
        return;
    }
    BUF_LIT(b, "Transfer-Encoding: ");
    bool first = true;
    for (unsigned i = 0; i < m->num_headers; i++)
        if (http_header_is(&m->headers[i], "transfer-encoding") && m->headers[i].value_len) {
            if (!first)
                BUF_LIT(b, ", ");
            buf_append(b, m->headers[i].value, m->headers[i].value_len);
            first = false;
        }
    BUF_LIT(b, "\r\n");
}

void proxy_request_head(struct buf *b, const struct proxy_reqinfo *ri, const char *ip, size_t ip_len,
                        const char *port, const char *request_id, bool websocket)
{
    const struct http_msg *m = ri->m;
    buf_append(b, m->method, m->method_len);
    BUF_LIT(b, " ");
    buf_append(b, ri->path, ri->path_len);
    if (ri->has_query) {
        BUF_LIT(b, "?");
        buf_append(b, ri->query, ri->query_len);
    }
    BUF_LIT(b, " HTTP/1.1\r\nHost: ");
    buf_append(b, ri->authority, ri->authority_len);
    BUF_LIT(b, "\r\n");
    bool has_xff = false;
    for (unsigned i = 0; i < m->num_headers; i++) {
        const struct http_header *h = &m->headers[i];
        if ((int)i == m->host_idx || http_is_hop_by_hop(m, h))
            continue;
        if ((h->name[0] | 0x20) == 'x') {
            if (http_header_is(h, "x-forwarded-for")) {
                has_xff = true;
                continue; /* merged into one line below */
            }
            if (http_header_is(h, "x-forwarded-proto") || http_header_is(h, "x-forwarded-port") ||
                http_header_is(h, "x-request-id"))
                continue;
        }
        buf_append(b, h->name, h->name_len);
        BUF_LIT(b, ": ");
        buf_append(b, h->value, h->value_len);
        BUF_LIT(b, "\r\n");
    }
    /* X-Forwarded-For: every earlier hop in order, then this client. */
    BUF_LIT(b, "X-Forwarded-For: ");
    for (unsigned i = 0; has_xff && i < m->num_headers; i++)
        if (http_header_is(&m->headers[i], "x-forwarded-for")) {
            buf_append(b, m->headers[i].value, m->headers[i].value_len);
            BUF_LIT(b, ", ");
        }
    buf_append(b, ip, ip_len);
    if (ri->https)
        BUF_LIT(b, "\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Port: ");
    else
        BUF_LIT(b, "\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Port: ");
    buf_append(b, port, strlen(port));
    BUF_LIT(b, "\r\nX-Request-Id: ");
    buf_append(b, request_id, strlen(request_id));
    BUF_LIT(b, "\r\n");
    if (m->body == HTTP_BODY_CHUNKED)
        append_te(b, m);
    if (websocket)
        BUF_LIT(b, "Connection: upgrade\r\nUpgrade: websocket\r\n");
    BUF_LIT(b, "\r\n");
}


void proxy_response_head(struct buf *b, const struct http_msg *m, int client_minor, bool close)
{
    char st[4] = {(char)('0' + m->status / 100), (char)('0' + m->status / 10 % 10), (char)('0' + m->status % 10), ' '};
    BUF_LIT(b, "HTTP/1.1 ");
    buf_append(b, st, 4);
    buf_append(b, m->reason, m->reason_len);
    BUF_LIT(b, "\r\n");
    for (unsigned i = 0; i < m->num_headers; i++) {
        const struct http_header *h = &m->headers[i];
        if (http_is_hop_by_hop(m, h))
            continue;
        buf_append(b, h->name, h->name_len);
        BUF_LIT(b, ": ");
        buf_append(b, h->value, h->value_len);
        BUF_LIT(b, "\r\n");
    }
    if (m->status == 101) {
        BUF_LIT(b, "Connection: upgrade\r\nUpgrade: websocket\r\n\r\n");
        return;
    }
    if (m->status < 200) {
        BUF_LIT(b, "\r\n");
        return;
    }
    /* An HTTP/1.0 client cannot read chunked framing: it gets the decoded
     * body, delimited by the connection close (keep_alive is off then). */
    if (m->has_te && client_minor == 1)
        append_te(b, m);
    if (close)
        BUF_LIT(b, "Connection: close\r\n");
    else if (client_minor == 0)
        BUF_LIT(b, "Connection: keep-alive\r\n");
    BUF_LIT(b, "\r\n");
}


void proxy_body_init(struct proxy_body *b, enum http_body_kind kind, uint64_t content_length)
{
    b->kind = kind;
    b->left = content_length;
    http_chunked_init(&b->chunk);
}

static void append_decoded(void *arg, const char *p, size_t n)
{
    buf_append(arg, p, n);
}

ssize_t proxy_body_frame(struct proxy_body *b, const char *p, size_t n, bool *done, struct buf *decoded)
{
    *done = false;
    switch (b->kind) {
    case HTTP_BODY_LENGTH:
        if (n > b->left)
            n = (size_t)b->left;
        b->left -= n;
        *done = b->left == 0;
        return (ssize_t)n;
    case HTTP_BODY_CHUNKED:
        return decoded ? http_chunked_decode(&b->chunk, p, n, done, append_decoded, decoded)
                       : http_chunked_scan(&b->chunk, p, n, done);
    default: /* to the connection's end */
        return (ssize_t)n;
    }
}

void proxy_own_response(struct buf *b, int status, const char *content_type, const char *body, size_t len,
                        const char *extra, bool close, bool head)
{
    buf_printf(b, "HTTP/1.1 %d %s\r\nServer: berth\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s\r\n", status,
               http_status_text(status), content_type, len, extra ? extra : "", close ? "Connection: close\r\n" : "");
    if (!head)
        buf_append(b, body, len);
}

void proxy_request_id(const struct http_msg *m, char *out, size_t size)
{
    int idx = -1;
    for (unsigned i = 0; i < m->num_headers; i++)
        if (http_header_is(&m->headers[i], "x-request-id") && m->headers[i].value_len < size)
            idx = (int)i;
    if (idx >= 0)
        snprintf(out, size, "%.*s", (int)m->headers[idx].value_len, m->headers[idx].value);
    else
        util_random_id(out);
}

void proxy_location_field(struct buf *b, const char *tpl, const struct proxy_reqinfo *ri, int port)
{
    BUF_LIT(b, "Location: ");
    proxy_redirect_expand(tpl, ri, port, b);
    BUF_LIT(b, "\r\n\0");
}
