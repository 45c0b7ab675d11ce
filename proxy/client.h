/* client.h -- client connections and the exchanges they carry (client.c). */
#ifndef BERTH_PROXY_CLIENT_H
#define BERTH_PROXY_CLIENT_H

#include <jansson.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "berth/buf.h"
#include "berth/http.h"
#include "berth/tls.h"
#include "forward.h"
#include "readyq.h"

struct proxy;
struct proxy_listener;
struct proxy_tg;
struct proxy_target;
struct proxy_upstream;

/* A client connection, and the exchange (request and response) in progress on it. */
/* Where an exchange is: the request's part, then the response's. */
enum { REQ_HEAD, REQ_BODY, REQ_DONE };
enum { RESP_NONE, RESP_HEAD, RESP_BODY, RESP_DONE };

struct proxy_conn {
    struct proxy *px;
    struct proxy_listener *ln;
    struct proxy_conn *next, *prev;
    int fd;
    SSL *ssl;            /* HTTPS listeners */
    bool tls_done;       /* its handshake is complete */
    bool rd_want_write;  /* TLS: reading waits for the socket to take a write */
    ev_io io;
    struct proxy_ready ready;
    ev_timer timer;
    struct sockaddr_storage peer;
    char peer_ip[INET6_ADDRSTRLEN];
    unsigned char peer_ip_len;
    struct buf in, out, head;
    double last_activity, head_deadline;
    unsigned nreq;
    unsigned char req_state, resp_state;
    bool head_started, closing, close_after, tunnel, keep_alive, retryable, websocket;
    bool rd_eof; /* the client half-closed: answer what it sent, then close */
    bool lingering; /* answered and shut down for writing; reading what the client still sends */
    uint32_t linger_bytes;
    enum http_method method;
    int minor;
    struct proxy_body req, resp; /* the framing of the bodies in flight */
    bool resp_keep_alive;
    unsigned char tries, races; /* retries after target failures / keep-alive races */
    int status;
    double t_start;
    uint64_t bytes_out;
    struct proxy_tg *tg;
    struct proxy_target *target;
    struct proxy_upstream *up;
    json_t *log;
};


/* Takes over accepted socket <fd> of listener <ln> (a listener's on_accept). */
void proxy_conn_accept(struct proxy_listener *ln, int fd, const struct sockaddr *sa);
/* Closes idle keep-alive client connections (all connections when <all>). */
void proxy_conns_close(struct proxy *px, bool all);

#endif
