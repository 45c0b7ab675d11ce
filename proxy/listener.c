/* listener.c -- listening sockets and their routes (see listener.h). */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "berth/alloc.h"
#include "berth/config.h"
#include "berth/log.h"
#include "berth/util.h"
#include "listener.h"
#include "proxy.h"
#include "tgroup.h"

#define EMFILE_PAUSE_S 0.1
#define EMFILE_LOG_EVERY_S 10.0

void proxy_listener_resume(struct proxy_listener *ln)
{
    if (ln->paused && !ln->removed && ln->nconns < ln->conf.max_connections) {
        ln->paused = false;
        ev_io_start(ln->px->loop, &ln->accept_io);
    }
}

static void accept_resume_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    proxy_listener_resume(w->data);
}

/* Out of file descriptors: the pending connection stays in the backlog and the socket stays
 * readable, so accepting again at once would spin. Pause until a connection closes or for
 * EMFILE_PAUSE_S (as HAProxy and nginx do), and log once per EMFILE_LOG_EVERY_S with a count. */
static void accept_pause_emfile(struct proxy_listener *ln)
{
    struct ev_loop *loop = ln->px->loop;
    ev_io_stop(loop, &ln->accept_io);
    ln->paused = true;
    ev_timer_stop(loop, &ln->resume_timer);
    ev_timer_set(&ln->resume_timer, EMFILE_PAUSE_S, 0);
    ev_timer_start(loop, &ln->resume_timer);
    ln->emfile_count++;
    double now = ev_now(loop);
    if (now - ln->emfile_logged >= EMFILE_LOG_EVERY_S) {
        log_warn("listener %s: out of file descriptors (%lu times since the last report; limit %ld, %d "
                 "connections open): accepting paused",
                 ln->conf.name, ln->emfile_count, util_nofile_limit(), ln->nconns);
        ln->emfile_logged = now;
        ln->emfile_count = 0;
    }
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct proxy_listener *ln = w->data;
    for (int i = 0; i < 64; i++) {
        if (ln->nconns >= ln->conf.max_connections) {
            ev_io_stop(loop, &ln->accept_io);
            ln->paused = true;
            return;
        }
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(ln->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                accept_pause_emfile(ln);
            return;
        }
        ln->on_accept(ln, fd, (struct sockaddr *)&ss); /* TCP_NODELAY comes from the listening socket */
    }
}

static void routes_free(struct proxy_listener *ln)
{
    for (size_t i = 0; i < ln->nroutes; i++) {
        for (size_t k = 0; k < ln->routes[i].nfwd; k++)
            proxy_tg_unref(ln->routes[i].fwd[k].tg);
        free(ln->routes[i].fwd);
    }
    free(ln->routes);
    ln->routes = NULL;
    ln->nroutes = 0;
}

void proxy_listener_resolve(struct proxy_listener *ln)
{
    struct proxy_route *routes = xcalloc(ln->conf.nrules + 1, sizeof *routes);
    for (size_t i = 0; i <= ln->conf.nrules; i++) {
        const struct proxy_action *a = i < ln->conf.nrules ? &ln->conf.rules[i].action : &ln->conf.default_action;
        routes[i].nfwd = a->nfwd;
        routes[i].fwd = xcalloc(a->nfwd + 1, sizeof *routes[i].fwd);
        for (size_t k = 0; k < a->nfwd; k++) {
            struct proxy_tg *tg = proxy_find_tg(ln->px, a->fwd[k].tg_name);
            tg->refs++;
            routes[i].fwd[k] = (struct proxy_route_fwd){tg, a->fwd[k].weight, 0};
        }
    }
    routes_free(ln); /* after: the groups they held stay alive through the swap */
    ln->routes = routes;
    ln->nroutes = ln->conf.nrules + 1;
}

struct proxy_listener *proxy_listener_new(struct proxy *px, struct proxy_listener_conf *conf, int fd,
                                          void (*on_accept)(struct proxy_listener *, int, const struct sockaddr *))
{
    struct proxy_listener *ln = xcalloc(1, sizeof *ln);
    ln->refs = 1;
    ln->px = px;
    ln->conf = *conf;
    memset(conf, 0, sizeof *conf);
    ln->on_accept = on_accept;
    net_parse_addr(ln->conf.listen, &ln->addr);
    ln->port = net_addr_port(&ln->addr);
    snprintf(ln->port_str, sizeof ln->port_str, "%d", ln->port);
    ln->fd = fd;
    /* Accepted sockets inherit these (Linux): one setsockopt per listener instead of one per connection.
     * TCP_NODELAY: answers go out at once. TCP_QUICKACK off: a new connection's request is not
     * acknowledged on its own; the answer carries the ACK (one packet less per connection, which on
     * loopback is a whole receive path less for the client; HAProxy's tcp-smart-accept). */
    int one = 1, zero = 0;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &zero, sizeof zero);
    proxy_listener_resolve(ln);
    ev_io_init(&ln->accept_io, accept_cb, ln->fd, EV_READ);
    ln->accept_io.data = ln;
    ev_init(&ln->resume_timer, accept_resume_cb);
    ln->resume_timer.data = ln;
    ln->emfile_logged = -EMFILE_LOG_EVERY_S;
    ev_io_start(px->loop, &ln->accept_io);
    log_info("listener %s on %s", ln->conf.name, ln->conf.listen);
    return ln;
}

void proxy_listener_set_conf(struct proxy_listener *ln, struct proxy_listener_conf *conf)
{
    struct proxy_listener_conf old = ln->conf;
    ln->conf = *conf;
    memset(conf, 0, sizeof *conf);
    proxy_listener_resolve(ln);
    proxy_listener_conf_free(&old);
}

void proxy_listener_unref(struct proxy_listener *ln)
{
    if (--ln->refs > 0)
        return;
    proxy_listener_close(ln);
    tls_server_unref(ln->tls);
    routes_free(ln);
    proxy_listener_conf_free(&ln->conf);
    free(ln);
}

void proxy_listener_close(struct proxy_listener *ln)
{
    if (ln->fd < 0)
        return;
    ev_io_stop(ln->px->loop, &ln->accept_io);
    ev_timer_stop(ln->px->loop, &ln->resume_timer);
    close(ln->fd);
    ln->fd = -1;
    ln->removed = true;
}

struct tls_server *proxy_listener_tls_load(const struct proxy_listener_conf *conf, size_t index, char **err)
{
    if (conf->protocol != PROXY_HTTPS)
        return NULL;
    char *e = NULL;
    struct tls_server *tls = tls_server_new(conf->certs, conf->ncerts, conf->ssl_policy, NULL, &e);
    if (!tls) {
        cfg_error(err, NULL, "listeners[%zu].%s", index, e);
        free(e);
    }
    return tls;
}

void proxy_listener_set_tls(struct proxy_listener *ln, struct tls_server *tls)
{
    tls_server_unref(ln->tls);
    ln->tls = tls;
}
