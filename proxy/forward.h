/* forward.h -- the proxy's view of a request, and the heads it forwards (forward.c). Pure functions
 * of the parsed message: one view of the request serves routing and forwarding, so the rules match
 * exactly the host and path the target receives. */
#ifndef BERTH_PROXY_FORWARD_H
#define BERTH_PROXY_FORWARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "berth/buf.h"
#include "berth/http.h"
#include "rules.h"

/* Fills <ri> for routing and forwarding from request <m> of client <peer> on a listener at <listen>
 * (the Host an HTTP/1.0 request without one gets), normalising the request target in place.
 * Returns 0, or the status to refuse the request with. */
int proxy_reqinfo_fill(struct proxy_reqinfo *ri, const struct http_msg *m, const struct sockaddr *peer,
                       const char *listen);
/* Appends the request head for the target: hop-by-hop fields dropped, Host from the authority,
 * X-Forwarded-For/-Proto/-Port and X-Request-Id set, the transfer codings kept. */
void proxy_request_head(struct buf *b, const struct proxy_reqinfo *ri, const char *client_ip, size_t ip_len,
                        const char *port, const char *request_id, bool websocket);
/* Appends the response head for a client speaking HTTP/1.<client_minor>; <close> adds Connection: close. */
void proxy_response_head(struct buf *b, const struct http_msg *m, int client_minor, bool close);

/* Appends a response the proxy makes itself (an error, a fixed response, a redirect): <extra> is
 * more header lines ("Name: value\r\n"...); no body after a HEAD request. */
void proxy_own_response(struct buf *b, int status, const char *content_type, const char *body, size_t len,
                        const char *extra, bool close, bool head);
/* The request's X-Request-Id (kept when the client sent one that fits), else a new random one. */
void proxy_request_id(const struct http_msg *m, char *out, size_t size);
/* Appends "Location: <template expanded>\r\n" and a NUL. */
void proxy_location_field(struct buf *b, const char *tpl, const struct proxy_reqinfo *ri, int port);

/* The framing of a body passing through: its kind, what is left of a Content-Length, the state of a
 * chunked body. */
struct proxy_body {
    enum http_body_kind kind;
    uint64_t left;
    struct http_chunked chunk;
};
void proxy_body_init(struct proxy_body *b, enum http_body_kind kind, uint64_t content_length);
/* How many of the <n> bytes at <p> belong to the body (a body to the connection's end takes all);
 * *done at its end; -1 on bad chunked framing. With <decoded> (chunked bodies), the chunk payload
 * is appended there as well. */
ssize_t proxy_body_frame(struct proxy_body *b, const char *p, size_t n, bool *done, struct buf *decoded);

#endif
