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

/* Starts serving on <listen> ("ip:port"). Returns NULL with *err on failure. */
struct httpd *httpd_start(struct ev_loop *loop, const char *listen, httpd_handler h, void *arg, char **err);
/* Puts <fn> in front of the handler (NULL: every request goes through). */
void httpd_set_authz(struct httpd *s, httpd_authz fn, void *arg);
/* The standard <fn> for httpd_set_authz: auth_allow() over <arg>, a struct auth. */
int httpd_authz_tokens(const struct httpd_req *req, void *arg);
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
