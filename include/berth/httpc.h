/* httpc.h -- minimal asynchronous HTTP/1.1 client on libev (one request per connection; TCP or a unix
 * socket, see net_parse_unix). */
#ifndef BERTH_HTTPC_H
#define BERTH_HTTPC_H

#include <ev.h>
#include <stddef.h>

#include "berth/net.h"

struct httpc_req;
struct ssl_ctx_st; /* OpenSSL's SSL_CTX */

struct httpc_response {
    int status;
    const char *body; /* NUL-terminated; chunked bodies are decoded */
    size_t body_len;
};

/* Called once with the response, or with <err> set (resp NULL) on connect
 * failure, timeout or a malformed response. */
typedef void (*httpc_cb)(const struct httpc_response *resp, const char *err, void *arg);

/* Sends <method> <path> to <addr> with Host <host>, "Authorization: Bearer <bearer>" unless
 * <bearer> is NULL or "", an optional body, and a total deadline of <timeout> seconds. Returns a handle that stays valid until
 * the callback runs or httpc_cancel is called; NULL if the request could not
 * start (the callback is not called then). */
struct httpc_req *httpc_request(struct ev_loop *loop, const struct net_addr *addr, const char *method,
                                const char *host, const char *bearer, const char *path, const char *content_type,
                                const char *body, size_t body_len, double timeout, httpc_cb cb, void *arg);
/* Streams the body of a 2xx response: <on_body> gets it as it arrives (decoded when chunked; a first
 * call with no bytes says the response has begun), then the callback gets the response with an empty body (other statuses are buffered as usual). <on_body>
 * must not cancel the request. Set right after httpc_request. */
void httpc_on_body(struct httpc_req *r, void (*on_body)(void *arg, const char *p, size_t n));
/* Sends more bytes on the request's connection after the request itself (a connection the server
 * took over for a stream both ways, as the Docker Engine API's exec start does). */
void httpc_send(struct httpc_req *r, const char *data, size_t len);
/* Talks TLS on the request's connection with <ctx> (NULL: plain again), <host> being the name (or IP,
 * with or without ":port") the certificate is checked against. Set right after httpc_request;
 * requests to an https:// address (net_parse_url) get httpc_tls_ctx() by themselves. */
void httpc_use_tls(struct httpc_req *r, struct ssl_ctx_st *ctx, const char *host);
/* The process's context for https:// requests: peers verified against <ca_file> (else $BERTH_CACERT)
 * and the system's CAs; 0, or -1 with *err. */
int httpc_tls_init(const char *ca_file, char **err);
/* That context (made on first use with no ca_file). */
struct ssl_ctx_st *httpc_tls_ctx(void);
/* Aborts a request; its callback is not called. */
void httpc_cancel(struct httpc_req *r);

#endif
