/* listener.h -- a listening socket, its accept loop (with the max_connections and out-of-file-
 * descriptor pauses), and its routes: the listener's rules as they run, each forward action's groups
 * resolved to live groups with their weighted round robin state (listener.c). */
#ifndef BERTH_PROXY_LISTENER_H
#define BERTH_PROXY_LISTENER_H

#include <ev.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "berth/net.h"
#include "berth/tls.h"
#include "config.h"
#include "rules.h"

struct proxy;

struct proxy_listener {
    int refs; /* the listener list, and each connection */
    struct proxy *px;
    struct proxy_listener_conf conf;
    struct tls_server *tls; /* HTTPS: the certificates new connections get (each keeps its own) */
    struct proxy_route *routes; /* one per rule, then the default action's */
    size_t nroutes;
    struct net_addr addr;
    int fd;
    int port;
    char port_str[8];
    ev_io accept_io;
    ev_timer resume_timer; /* accepting paused for lack of file descriptors */
    double emfile_logged;
    unsigned long emfile_count;
    int nconns;
    bool removed, paused;
    /* Called with each accepted connection (set by whoever starts the listener). */
    void (*on_accept)(struct proxy_listener *ln, int fd, const struct sockaddr *sa);
};

/* A listener for <conf> (taken over) on the listening socket <fd>. */
struct proxy_listener *proxy_listener_new(struct proxy *px, struct proxy_listener_conf *conf, int fd,
                                          void (*on_accept)(struct proxy_listener *, int, const struct sockaddr *));
/* Replaces its rules with <conf>'s (taken over); routes are resolved again. */
void proxy_listener_set_conf(struct proxy_listener *ln, struct proxy_listener_conf *conf);
/* Resolves the routes again after its rules changed (forward actions name existing groups). */
void proxy_listener_resolve(struct proxy_listener *ln);
/* The route of rule <i> (ln->conf.nrules: the default action). */
static inline struct proxy_route *proxy_listener_route(struct proxy_listener *ln, size_t i)
{
    return &ln->routes[i];
}
void proxy_listener_unref(struct proxy_listener *ln);
/* The certificates of HTTPS listener <conf> (listeners[<index>] of a config) loaded from their
 * files; NULL for an HTTP listener, and NULL with *err ("listeners[0].certificates[1].key: ...")
 * when one cannot be used. */
struct tls_server *proxy_listener_tls_load(const struct proxy_listener_conf *conf, size_t index, char **err);
/* Gives new connections <tls> (taken over; NULL: plain HTTP). Open connections keep theirs. */
void proxy_listener_set_tls(struct proxy_listener *ln, struct tls_server *tls);
/* Accepts again after a pause (max_connections, or out of file descriptors) once there is room. */
void proxy_listener_resume(struct proxy_listener *ln);
/* Stops accepting and closes the listening socket (idempotent). */
void proxy_listener_close(struct proxy_listener *ln);

#endif
