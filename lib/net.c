/* net.c -- socket address parsing, listening/connecting sockets, CIDR matching. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "berth/net.h"

int net_parse_addr(const char *s, struct net_addr *out)
{
    char host[256];
    const char *colon, *hs = s;
    size_t hl;
    memset(out, 0, sizeof *out);
    if (*s == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':')
            return -1;
        hs = s + 1;
        hl = (size_t)(rb - hs);
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return -1;
        hl = (size_t)(colon - s);
    }
    if (hl == 0 || hl >= sizeof host)
        return -1;
    memcpy(host, hs, hl);
    host[hl] = 0;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (colon[1] == 0 || *end || port < 0 || port > 65535)
        return -1;
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    struct sockaddr_in *v4 = (struct sockaddr_in *)&out->ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&out->ss;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        out->len = sizeof *v4;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        out->len = sizeof *v6;
        return 0;
    }
    return -1;
}

void net_format_ip(const struct sockaddr *sa, char *dst, size_t size)
{
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, dst, (socklen_t)size);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, dst, (socklen_t)size);
    else
        snprintf(dst, size, "unknown");
}

int net_addr_port(const struct net_addr *a)
{
    if (a->ss.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
}

void net_format_addr(const struct net_addr *a, char *dst, size_t size)
{
    char ip[INET6_ADDRSTRLEN];
    net_format_ip((const struct sockaddr *)&a->ss, ip, sizeof ip);
    if (a->ss.ss_family == AF_INET6)
        snprintf(dst, size, "[%s]:%d", ip, net_addr_port(a));
    else
        snprintf(dst, size, "%s:%d", ip, net_addr_port(a));
}

int net_set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -1;
    return fcntl(fd, F_SETFD, FD_CLOEXEC);
}

int net_listen_tcp(const struct net_addr *a, int backlog, bool reuseport)
{
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (a->ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0 || listen(fd, backlog) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int net_connect_tcp(const struct net_addr *a)
{
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    if (a->ss.ss_family != AF_UNIX)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (const struct sockaddr *)&a->ss, a->len) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int net_parse_cidr(const char *s, struct net_cidr *out)
{
    char tmp[64];
    const char *slash = strchr(s, '/');
    size_t hl = slash ? (size_t)(slash - s) : strlen(s);
    if (hl == 0 || hl >= sizeof tmp)
        return -1;
    memcpy(tmp, s, hl);
    tmp[hl] = 0;
    memset(out, 0, sizeof *out);
    int maxbits;
    if (inet_pton(AF_INET, tmp, out->addr) == 1) {
        out->family = AF_INET;
        maxbits = 32;
    } else if (inet_pton(AF_INET6, tmp, out->addr) == 1) {
        out->family = AF_INET6;
        maxbits = 128;
    } else {
        return -1;
    }
    out->bits = maxbits;
    if (slash) {
        char *end;
        long b = strtol(slash + 1, &end, 10);
        if (slash[1] == 0 || *end || b < 0 || b > maxbits)
            return -1;
        out->bits = (int)b;
    }
    return 0;
}

static bool prefix_eq(const unsigned char *a, const unsigned char *b, int bits)
{
    int full = bits / 8, rest = bits % 8;
    if (memcmp(a, b, (size_t)full) != 0)
        return false;
    if (rest == 0)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[full] & mask) == (b[full] & mask);
}

bool net_cidr_match(const struct net_cidr *c, const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const unsigned char *ip = (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
        return c->family == AF_INET && prefix_eq(ip, c->addr, c->bits);
    }
    if (sa->sa_family != AF_INET6)
        return false;
    const struct in6_addr *ip6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    if (c->family == AF_INET6)
        return prefix_eq(ip6->s6_addr, c->addr, c->bits);
    if (IN6_IS_ADDR_V4MAPPED(ip6))
        return prefix_eq(ip6->s6_addr + 12, c->addr, c->bits);
    return false;
}

int net_parse_url(const char *url, struct net_addr *out)
{
    char hostport[128];
    bool tls = strncmp(url, "https://", 8) == 0;
    snprintf(hostport, sizeof hostport, "%s", tls ? url + 8 : strncmp(url, "http://", 7) == 0 ? url + 7 : url);
    size_t n = strlen(hostport);
    if (n && hostport[n - 1] == '/')
        hostport[n - 1] = 0;
    if (net_parse_addr(hostport, out) < 0)
        return -1;
    out->tls = tls;
    return 0;
}

int net_parse_unix(const char *url, struct net_addr *out)
{
    const char *path = strncmp(url, "unix://", 7) == 0 ? url + 7 : url;
    struct sockaddr_un *un = (struct sockaddr_un *)&out->ss;
    if (path[0] != '/' || strlen(path) >= sizeof un->sun_path)
        return -1;
    memset(out, 0, sizeof *out);
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, path, strlen(path) + 1);
    out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1);
    return 0;
}
