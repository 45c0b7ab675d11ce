/* rules.h -- listener rules: matching a request, choosing among weighted groups, redirect templates
 * (rules.c). Pure functions of the configuration and the request. */
#ifndef BERTH_PROXY_RULES_H
#define BERTH_PROXY_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "berth/buf.h"
#include "berth/http.h"
#include "config.h"

struct proxy_reqinfo {
    const struct http_msg *m;
    const char *host;
    size_t host_len; /* for matching: without port and trailing dot */
    const char *authority;
    size_t authority_len; /* the Host forwarded to targets (absolute-form's authority wins) */
    const char *path, *query;
    size_t path_len, query_len; /* path normalised (http_normalize_path) */
    bool has_query;
    bool https; /* arrived on an HTTPS listener */
    const struct sockaddr *peer;
};

/* The index of the first rule (by priority) that matches, or ln->nrules for the default action. */
size_t proxy_route_index(const struct proxy_listener_conf *ln, const struct proxy_reqinfo *ri);
/* The action for a request: the first matching rule's, else the default. */
const struct proxy_action *proxy_route(const struct proxy_listener_conf *ln, const struct proxy_reqinfo *ri);
bool proxy_cond_match(const struct proxy_cond *c, const struct proxy_reqinfo *ri);
/* Expands a redirect template into <out>. */
void proxy_redirect_expand(const char *tpl, const struct proxy_reqinfo *ri, int port, struct buf *out);

/* A forward action as it runs: its groups resolved, and the smooth weighted round robin's state. */
struct proxy_tg;
struct proxy_route_fwd {
    struct proxy_tg *tg; /* holds a reference */
    int weight;
    int current;
};
struct proxy_route {
    struct proxy_route_fwd *fwd;
    size_t nfwd;
};
/* Picks a group of a forward route (smooth weighted round robin, as nginx: exact, interleaved). */
struct proxy_tg *proxy_route_pick(struct proxy_route *r);

#endif
