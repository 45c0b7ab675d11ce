/* dns.h -- berth-dns internals: zone model, wire format, server and admin API. */
#ifndef BERTH_DNS_H
#define BERTH_DNS_H

#include <ev.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "berth/tls.h"
#include "berth/auth.h"
#include "berth/net.h"

/* ---- RFC 1035 constants ---- */
enum { DNS_T_A = 1, DNS_T_NS = 2, DNS_T_SOA = 6, DNS_T_HINFO = 13, DNS_T_TXT = 16, DNS_T_AAAA = 28,
       DNS_T_SRV = 33, DNS_T_OPT = 41, DNS_T_ANY = 255 };
enum { DNS_C_IN = 1, DNS_C_ANY = 255 };
enum { DNS_R_NOERROR = 0, DNS_R_FORMERR = 1, DNS_R_SERVFAIL = 2, DNS_R_NXDOMAIN = 3, DNS_R_NOTIMP = 4,
       DNS_R_REFUSED = 5, DNS_R_NOTAUTH = 9, DNS_R_BADVERS = 16 };
enum { DNS_T_IXFR = 251, DNS_T_AXFR = 252 };

#define DNS_MAX_NAME 255
#define DNS_MAX_UDP 4096     /* the largest UDP payload udp_max_payload may allow */
#define DNS_UDP_DEFAULT 1232 /* default udp_max_payload: DNS Flag Day 2020, no fragmentation */

/* ---- zone model ---- */

struct dns_instance {
    char *id;
    char *address; /* as given */
    int family;    /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    int port;
    char *port_name;
    bool healthy;
    json_t *attributes; /* object of string values */
    struct dns_service *svc;
    size_t idx; /* position in svc->inst */
};

struct dns_service {
    char *name;
    struct dns_instance **inst;
    size_t n;
    struct dns_namespace *ns;
};

struct dns_namespace {
    char *name;
    struct dns_service **svc;
    size_t n;
};

enum dns_node_kind { NODE_APEX, NODE_NSHOST, NODE_SERVICE, NODE_PORT, NODE_TCP_ENT, NODE_INSTANCE };

/* One owner name in the hash. */
struct dns_node {
    struct dns_node *next; /* hash chain */
    char *key;             /* lowercased, no trailing dot */
    enum dns_node_kind kind;
    int refs;              /* NODE_PORT/NODE_TCP_ENT: instances using it */
    struct dns_namespace *ns;
    struct dns_service *svc;
    struct dns_instance *inst;
    char *port_name;       /* NODE_PORT */
};

struct dns_zone {
    struct dns_namespace **ns;
    size_t n;
    struct dns_node **buckets;
    size_t nbuckets, nnodes;
    uint32_t serial;
    unsigned ttl;
    unsigned char ns_addr[4]; /* address given for ns1.NS (the listen address if IPv4) */
};

struct dns_zone *dns_zone_new(unsigned ttl);
void dns_zone_free(struct dns_zone *z);
struct dns_namespace *dns_zone_namespace(struct dns_zone *z, const char *name, bool create);
struct dns_service *dns_zone_service(struct dns_zone *z, struct dns_namespace *ns, const char *name, bool create);
/* Parses an instance object (API/config form) at <path>; <id> overrides "id" when not NULL.
 * Returns a new instance or NULL with *err. */
struct dns_instance *dns_instance_parse(json_t *v, const char *id, const char *path, char **err);
void dns_instance_free(struct dns_instance *i);
/* Adds or replaces (same id) an instance; takes ownership. */
void dns_zone_put(struct dns_zone *z, struct dns_service *svc, struct dns_instance *inst);
/* Removes an instance by id; 0, or -1 if unknown. */
int dns_zone_delete(struct dns_zone *z, struct dns_service *svc, const char *id);
/* Removes a service and its instances: its name is NXDOMAIN again. <svc> is freed. */
void dns_zone_service_delete(struct dns_zone *z, struct dns_service *svc);
/* Replaces all instances of a service (takes ownership of the array's items). */
void dns_zone_replace(struct dns_zone *z, struct dns_service *svc, struct dns_instance **inst, size_t n);
struct dns_instance *dns_service_find(const struct dns_zone *z, struct dns_service *svc, const char *id);
/* Why <name> cannot name a service in namespace <ns> (NULL when it can): a DNS label, and not
 * "ns1", the apex's name server host. The config file and the admin API both check this. */
const char *dns_service_name_problem(const char *name);
/* Why <name> cannot be a namespace of <z> (NULL when it can): a domain name that neither lies
 * inside nor encloses another namespace, so no owner name can mean two things. */
const char *dns_namespace_name_problem(const struct dns_zone *z, const char *name);
/* Looks an owner name up (any case, no trailing dot). */
struct dns_node *dns_zone_lookup(const struct dns_zone *z, const char *name, size_t len);
/* The namespace whose name is <name> or a suffix of it, or NULL. */
struct dns_namespace *dns_zone_covering(const struct dns_zone *z, const char *name, size_t len);
/* JSON form of an instance (Cloud Map's DiscoverInstances shape). */
json_t *dns_instance_json(const struct dns_instance *i);

/* ---- wire format ---- */

struct dns_query {
    uint16_t id, flags;
    int opcode;
    bool rd;
    unsigned char qname_wire[DNS_MAX_NAME + 1]; /* as received (case kept), uncompressed */
    size_t qname_wire_len;
    char qname[DNS_MAX_NAME + 1]; /* dotted, case kept, no trailing dot */
    size_t qname_len;
    uint16_t qtype, qclass;
    bool edns;
    int edns_version;
    uint16_t udp_size;
    uint16_t advertise; /* the UDP payload size this server advertises in its OPT (set by the server) */
    bool do_bit;
};

/* Parses a query message. Returns DNS_R_NOERROR, DNS_R_FORMERR (malformed:
 * answer with FORMERR if the header was readable, *header_ok), DNS_R_NOTIMP
 * (other opcode) or DNS_R_BADVERS; -1 means drop silently (a response). */
int dns_parse_query(const unsigned char *p, size_t len, struct dns_query *q, bool *header_ok);

/* Builds the answer to <q> from <z> into <out> (at most <max> bytes; answer
 * records that do not fit set TC). <ra> is reported as recursion available.
 * Returns the length, or 0 with *refused set when the name lies outside
 * every namespace (the caller then recurses or answers REFUSED). */
size_t dns_answer(const struct dns_zone *z, const struct dns_query *q, bool ra, unsigned char *out, size_t max,
                  bool *refused);
/* Builds an error answer (FORMERR, NOTIMP, BADVERS, REFUSED, SERVFAIL) echoing what could be parsed. */
size_t dns_error(const struct dns_query *q, const unsigned char *raw, size_t rawlen, int rcode, unsigned char *out,
                 size_t max);

/* ---- config ---- */

struct dns_config {
    char *listen, *admin_listen;
    struct tls_block admin_tls; /* admin.tls: HTTPS on the admin API */
    int ttl_s;
    double tcp_idle_timeout_s;
    char *recursors; /* comma-separated "ip:port" list for c-ares, NULL without */
    int udp_max_payload; /* the largest UDP answer, and what OPT advertises */
    int rrl_rate, rrl_slip; /* response-rate limit per source prefix (0: off); every slip-th limited answer is TC */
    struct net_cidr *rrl_exempt;
    size_t nrrl_exempt;
    struct net_cidr *allow;
    size_t nallow;
    struct dns_zone *zone; /* built from "namespaces" */
    struct auth auth;      /* admin API tokens (none: authentication off) */
};

/* Reads a config; NULL with *err naming the JSON path. */
struct dns_config *dns_config_parse(json_t *root, char **err);
void dns_config_free(struct dns_config *c);
/* Reads the instances of one service (an array) at <path> into a new array. */
int dns_instances_parse(json_t *arr, const char *path, struct dns_instance ***out, size_t *n, char **err);

/* ---- server ---- */

enum { DNS_STAT_TYPES = 9, DNS_STAT_RCODES = 9 };
#define DNS_RRL_BUCKETS 4096
/* One source prefix's token bucket for response-rate limiting. */
struct dns_rrl_bucket {
    unsigned char key[8]; /* IPv4 /24 or IPv6 /56, with the family in key[7] */
    double tokens, at;
    unsigned limited;
};
extern const char *const dns_stat_type_names[DNS_STAT_TYPES];
extern const char *const dns_stat_rcode_names[DNS_STAT_RCODES];

struct dns_server {
    struct ev_loop *loop;
    struct dns_config *conf;
    struct dns_zone *zone;
    int udp_fd, tcp_fd;
    ev_io udp_io, tcp_io;
    struct lookup *recursor;
    struct dns_tcp *tcp_conns;
    uint64_t by_type[DNS_STAT_TYPES], by_rcode[DNS_STAT_RCODES];
    uint64_t udp_queries, tcp_queries, truncated, forwarded, dropped;
    uint64_t rrl_dropped, rrl_slipped;
    struct dns_rrl_bucket *rrl; /* DNS_RRL_BUCKETS, NULL while the limit is off */
    struct httpd *admin;
};

/* Binds UDP and TCP on conf->listen; 0 or -1 with *err. */
int dns_server_start(struct dns_server *s, char **err);
/* Swaps in a new config and zone (the server keeps its sockets); 0 or -1 with *err. */
int dns_server_reconfigure(struct dns_server *s, struct dns_config *c, char **err);
void dns_server_stop(struct dns_server *s);
/* Size of the context a transport hands dns_server_handle for a later reply. */
#define DNS_LATER_CTX 160

/* What became of a query. */
enum dns_result {
    DNS_REPLY,    /* the reply is in <out>, *out_len bytes */
    DNS_DROP,     /* no reply: not a query one can answer (not even with an error) */
    DNS_DEFERRED, /* forwarded: the reply comes later through <later> */
};
/* Handles one query message of <len> bytes: the reply into <out> (at most <max> bytes), or a
 * forwarded query answered later through <later> with a copy of the DNS_LATER_CTX bytes at <ctx>.
 * Used by UDP, TCP and the fuzz target. */
enum dns_result dns_server_handle(struct dns_server *s, const unsigned char *q, size_t len, const struct sockaddr *peer,
                                  bool tcp, unsigned char *out, size_t max, size_t *out_len,
                                  void (*later)(void *ctx, const unsigned char *, size_t), void *ctx);

/* admin.c */
int dns_admin_start(struct dns_server *s, char **err);

#endif
