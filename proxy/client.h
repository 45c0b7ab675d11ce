/* client.h -- client connections and the exchanges they carry (client.c). */
#ifndef BERTH_PROXY_CLIENT_H
#define BERTH_PROXY_CLIENT_H

#include <stdbool.h>
#include <sys/socket.h>

struct proxy;
struct proxy_listener;

/* Takes over accepted socket <fd> of listener <ln> (a listener's on_accept). */
void proxy_conn_accept(struct proxy_listener *ln, int fd, const struct sockaddr *sa);
/* Closes idle keep-alive client connections (all connections when <all>). */
void proxy_conns_close(struct proxy *px, bool all);

#endif
