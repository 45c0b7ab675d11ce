/* lookup.h -- service endpoint lookup over DNS with c-ares on libev (SRV, else A/AAAA). */
#ifndef BERTH_LOOKUP_H
#define BERTH_LOOKUP_H

#include <ev.h>
#include <netinet/in.h>
#include <stddef.h>

enum lookup_type {
    LOOKUP_AUTO, /* SRV; when the name has no SRV records, A and AAAA */
    LOOKUP_SRV,
    LOOKUP_A,    /* A and AAAA */
};

struct lookup_endpoint {
    char host[256];                  /* SRV target, or the queried name */
    char ip[INET6_ADDRSTRLEN];
    int port;
    int priority, weight;            /* from SRV; 0 for address records */
    char address[INET6_ADDRSTRLEN + 8]; /* "ip:port" ("[ip]:port" for IPv6) */
};

struct lookup;
struct lookup_query;

/* Called once per query: <eps> (owned by the library, valid during the call)
 * and the smallest TTL among the records used, or <err> set. */
typedef void (*lookup_cb)(const struct lookup_endpoint *eps, size_t n, unsigned ttl, const char *err, void *arg);

/* A resolver on <loop> asking <server> ("ip:port"), or the system's
 * resolv.conf servers when NULL. Returns NULL with *err (malloc'd). */
struct lookup *lookup_new(struct ev_loop *loop, const char *server, char **err);
/* Frees the resolver; callbacks of queries still running are not called. */
void lookup_free(struct lookup *l);
/* Starts resolving <name>; endpoints from address records get <default_port>.
 * Returns a handle valid until the callback runs, or NULL (no callback) when
 * out of memory. */
struct lookup_query *lookup_endpoints(struct lookup *l, const char *name, enum lookup_type type, int default_port,
                                      lookup_cb cb, void *arg);
/* Abandons a query; its callback is not called. */
void lookup_cancel(struct lookup_query *q);
/* Blocking form for command-line tools: fills *out (caller frees) and *n.
 * Returns 0, or -1 with *err (malloc'd). <timeout_s> bounds the whole lookup. */
int lookup_endpoints_sync(const char *server, const char *name, enum lookup_type type, int default_port,
                          double timeout_s, struct lookup_endpoint **out, size_t *n, unsigned *ttl, char **err);
/* Called with the raw answer to a forwarded query (its ID is c-ares'), or
 * with abuf NULL on failure. */
typedef void (*lookup_raw_cb)(const unsigned char *abuf, size_t alen, const char *err, void *arg);
/* Sends the raw query <q> to the resolver's servers (as a recursor would
 * forward it). The callback always runs once, with an error if lookup_free
 * comes first. */
void lookup_forward(struct lookup *l, const unsigned char *q, size_t len, lookup_raw_cb cb, void *arg);
/* Picks one endpoint as RFC 2782 says: lowest priority, then weighted random. */
const struct lookup_endpoint *lookup_pick(const struct lookup_endpoint *eps, size_t n);

#endif
