/* net.h -- socket address parsing, listening sockets and CIDR matching. */
#ifndef BERTH_NET_H
#define BERTH_NET_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct net_addr {
    struct sockaddr_storage ss;
    socklen_t len;
    bool tls; /* an https:// URL: HTTP over TLS */
};

/* Parses "host:port", "[v6]:port" or "v6-literal:port" (numeric hosts only,
 * "localhost" accepted as 127.0.0.1). Returns 0 or -1. */
int net_parse_addr(const char *s, struct net_addr *out);
/* Parses a base URL "http://IP:PORT" or "https://IP:PORT" (the scheme and a trailing '/' may be left
 * out: http); 0 or -1. */
int net_parse_url(const char *url, struct net_addr *out);
/* Parses a unix socket "unix:///path" (or a bare absolute path); 0 or -1. */
int net_parse_unix(const char *url, struct net_addr *out);
/* Formats <a> as "ip:port" ("[ip]:port" for IPv6) into <dst>. */
void net_format_addr(const struct net_addr *a, char *dst, size_t size);
/* Writes just the IP of <sa> into <dst>. */
void net_format_ip(const struct sockaddr *sa, char *dst, size_t size);
/* Port of <a> in host order. */
int net_addr_port(const struct net_addr *a);
/* Opens a non-blocking listening TCP socket on <a>, with SO_REUSEADDR and,
 * when <reuseport>, SO_REUSEPORT. Returns the fd or -1 (errno set). */
int net_listen_tcp(const struct net_addr *a, int backlog, bool reuseport);
/* Starts a non-blocking connect to <a> (TCP, or a unix socket). Returns the fd (connect may be in
 * progress) or -1 (errno set). */
int net_connect_tcp(const struct net_addr *a);
/* Makes <fd> non-blocking and close-on-exec. */
int net_set_nonblock(int fd);

/* An IPv4 or IPv6 prefix. */
struct net_cidr {
    int family;
    unsigned char addr[16];
    int bits;
};
/* Parses "a.b.c.d/n", "v6/n" or a bare address. Returns 0 or -1. */
int net_parse_cidr(const char *s, struct net_cidr *out);
/* True when <sa> lies inside <c> (IPv4-mapped IPv6 addresses match IPv4 prefixes). */
bool net_cidr_match(const struct net_cidr *c, const struct sockaddr *sa);

#endif
