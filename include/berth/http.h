/* http.h -- strict, zero-copy HTTP/1.1 message head parser and chunked-body scanner. */
#ifndef BERTH_HTTP_H
#define BERTH_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HTTP_MAX_HEADERS 100

struct http_header {
    const char *name;
    const char *value;
    unsigned name_len, value_len;
};

enum http_body_kind {
    HTTP_BODY_NONE,    /* no body follows the head */
    HTTP_BODY_LENGTH,  /* content_length bytes follow */
    HTTP_BODY_CHUNKED, /* RFC 9112 §7.1 chunked coding */
    HTTP_BODY_EOF,     /* response delimited by connection close */
};

enum http_method {
    HTTP_M_OTHER, HTTP_M_GET, HTTP_M_HEAD, HTTP_M_POST, HTTP_M_PUT, HTTP_M_DELETE,
    HTTP_M_OPTIONS, HTTP_M_TRACE, HTTP_M_PATCH, HTTP_M_CONNECT,
};

/* A parsed message head. All pointers refer into the parsed input buffer and
 * stay valid only while that buffer is unchanged. */
struct http_msg {
    const char *method, *target, *reason;
    unsigned method_len, target_len, reason_len;
    enum http_method method_id;
    int status;        /* responses */
    int minor_version; /* 0 or 1 */
    struct http_header headers[HTTP_MAX_HEADERS];
    unsigned num_headers;
    size_t head_len; /* bytes of the head including the terminating empty line */
    enum http_body_kind body;
    uint64_t content_length;
    int host_idx;          /* index of Host in headers, -1 if absent */
    bool keep_alive;       /* after version default and Connection tokens */
    bool conn_close;       /* Connection: close seen */
    bool upgrade_websocket; /* Upgrade: websocket with Connection: upgrade */
    bool expect_continue;  /* Expect: 100-continue */
    bool has_te;           /* Transfer-Encoding present */
    bool te_coded;         /* Transfer-Encoding names a coding besides chunked (gzip, chunked) */
    unsigned conn_tokens;  /* number of extra Connection tokens (hop-by-hop names) */
};

/* Parse results: > 0 is the head length; these are the rest. */
#define HTTP_INCOMPLETE 0
#define HTTP_ERR_BAD (-400)        /* malformed: 400 Bad Request */
#define HTTP_ERR_TOO_LARGE (-431)  /* head exceeds the limit: 431 */
#define HTTP_ERR_NOT_IMPL (-501)   /* unknown transfer coding: 501 */

/* Parses a request head from <buf>[0..len), allowing at most <max_head> bytes.
 * Returns the head length, HTTP_INCOMPLETE, or a negative HTTP_ERR_*. On
 * success <m> describes the request and its body framing. */
int http_parse_request(const char *buf, size_t len, size_t max_head, struct http_msg *m);
/* Same for a response head; <req_method> decides whether a body follows
 * (HEAD, and 2xx to CONNECT, have none). */
int http_parse_response(const char *buf, size_t len, size_t max_head, enum http_method req_method,
                        struct http_msg *m);

/* True if the header at <h> is named <name> (ASCII case-insensitive). */
bool http_header_is(const struct http_header *h, const char *name);
/* True for RFC 9110 §7.6.1 hop-by-hop header names, and names listed in the
 * message's Connection header, except Content-Length and Host, which always stay. */
bool http_is_hop_by_hop(const struct http_msg *m, const struct http_header *h);
/* Normalises an origin-form path of <len> bytes in place (RFC 3986 §6.2.2: percent-encoded
 * unreserved octets decoded, other escapes upper-cased; §5.2.4 dot segments removed; repeated
 * slashes merged). "*" stays. Returns the new length, or -1 for a path that does not start with
 * '/' or has a malformed escape. */
ssize_t http_normalize_path(char *p, size_t len);
/* True when <h>[0..n) is a well-formed Host value: reg-name or IP-literal, optional ":port". */
bool http_host_valid(const char *h, size_t n);
/* Reason phrase for <status>. */
const char *http_status_text(int status);
/* True for methods RFC 9110 §9.2.2 defines as idempotent. */
bool http_method_idempotent(enum http_method m);

/* Incremental validator for a chunked body passing through unchanged. */
struct http_chunked {
    int state;
    uint64_t remaining;
    unsigned digits;
    unsigned line_len;
};
void http_chunked_init(struct http_chunked *c);
/* Scans <p>[0..len). Returns the number of bytes that belong to the body
 * (less than len when the body ended inside the input), or -1 on a framing
 * error. Sets *done when the last chunk and trailers are complete. */
ssize_t http_chunked_scan(struct http_chunked *c, const char *p, size_t len, bool *done);
/* As http_chunked_scan, and calls <data> for every span of chunk data (the
 * decoded body) when it is not NULL. */
ssize_t http_chunked_decode(struct http_chunked *c, const char *p, size_t len, bool *done,
                            void (*data)(void *arg, const char *p, size_t n), void *arg);

#endif
