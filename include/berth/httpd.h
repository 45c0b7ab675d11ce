/* httpd.h -- small HTTP/1.1 server on libev for JSON admin APIs. */
#ifndef BERTH_HTTPD_H
#define BERTH_HTTPD_H

#include <ev.h>
#include <jansson.h>
#include <stddef.h>

#include "berth/http.h"

#define HTTPD_MAX_SEGS 16

struct httpd;
struct httpd_conn;

/* One request. Valid until a httpd_respond* call for it returns. */
struct httpd_req {
    struct httpd_conn *conn;
    enum http_method method_id;
    char method[16];
    char *path;                    /* raw path without the query, NUL-terminated */
    char *query;                   /* raw query string without '?', "" if none */
    char *segs[HTTPD_MAX_SEGS];    /* percent-decoded path segments */
    int nsegs;
    char *body;                    /* NUL-terminated request body */
    size_t body_len;
    const char *bearer;            /* the token of "Authorization: Bearer TOKEN", or NULL */
};

/* Called for every request; must eventually call one httpd_respond* on <req>,
 * now or later from another callback. */
typedef void (*httpd_handler)(struct httpd_req *req, void *arg);

/* Decides whether <req> may proceed: 0, 401 (no or an unknown token) or 403 (a token whose role
 * may not). Runs before the handler for every request except GET /healthz. */
typedef int (*httpd_authz)(const struct httpd_req *req, void *arg);

/* Starts serving on <listen> ("ip:port"), every request to <h>. Returns NULL with *err on failure. */
struct httpd *httpd_start(struct ev_loop *loop, const char *listen, httpd_handler h, void *arg, char **err);

/* A route: requests with one of <methods> ("GET", "PUT|POST"; NULL: any) on a path of <path>'s shape
 * go to <fn>. In <path>, "{}" matches any one segment and a final "**" any rest (none included);
 * req->segs has the request's segments. */
struct httpd_route {
    const char *methods;
    const char *path;
    httpd_handler fn;
};
struct buf;
struct auth;
/* What a server of routes serves. Besides the routes, GET /healthz (open to all, authz or not) and
 * GET /metrics are built in: */
struct httpd_service {
    const struct httpd_route *routes; /* ends with a route whose path is NULL */
    /* /healthz: fills <body> (it has "status": "ok") and returns the HTTP status; NULL: 200 ok. */
    int (*health)(void *arg, json_t *body);
    /* /metrics: appends the Prometheus text exposition to <out>; NULL: no /metrics. */
    void (*metrics)(void *arg, struct buf *out);
    /* The API tokens in force now (they may be reloaded); NULL: the owner sets its own authz, if any. */
    const struct auth *(*tokens)(void *arg);
};
/* Starts serving <svc> on <listen>. A path no route has is 404 NotFound; a path a route has, with a
 * method none of them takes, 405 MethodNotAllowed with Allow. NULL with *err on failure. */
struct httpd *httpd_serve(struct ev_loop *loop, const char *listen, const struct httpd_service *svc, void *arg,
                          char **err);
/* Serves HTTPS from now on with certificate <cert> (a PEM chain) and <key> (the server's policy is the
 * proxy's default, TLS 1.2 and 1.3); on failure (0 or -1 with *err) it keeps what it served. */
int httpd_use_tls(struct httpd *s, const char *cert, const char *key, char **err);
/* Puts <fn> in front of the handler (NULL: every request goes through). */
void httpd_set_authz(struct httpd *s, httpd_authz fn, void *arg);
/* The port the server listens on (useful after listening on port 0). */
int httpd_port(const struct httpd *s);
/* Stops listening and closes all connections. */
void httpd_stop(struct httpd *s);

/* Sends a response with <body> of <len> bytes (copied). */
void httpd_respond(struct httpd_req *req, int status, const char *content_type, const char *body, size_t len);
/* Sends <body> as JSON and takes its reference. */
void httpd_respond_json(struct httpd_req *req, int status, json_t *body);
/* Sends {"error":{"code":<code>,"message":...}}. */
void httpd_respond_error(struct httpd_req *req, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Copies the percent-decoded value of query parameter <name> into <dst>;
 * returns dst, or NULL when absent. */
const char *httpd_query_param(const struct httpd_req *req, const char *name, char *dst, size_t size);
/* Parses the request body as JSON; on failure responds 400 itself and returns NULL. */
json_t *httpd_body_json(struct httpd_req *req);

#endif
