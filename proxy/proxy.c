/* proxy.c -- applying a configuration (start-up and SIGHUP reload) and listeners. */
#include <errno.h>
#include <stdio.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "berth/alloc.h"
#include "berth/config.h"
#include "berth/log.h"
#include "berth/util.h"
#include "proxy.h"

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
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        proxy_conn_accept(ln, fd, (struct sockaddr *)&ss);
    }
}

void proxy_listener_start(struct proxy_listener *ln)
{
    ev_io_init(&ln->accept_io, accept_cb, ln->fd, EV_READ);
    ln->accept_io.data = ln;
    ev_init(&ln->resume_timer, accept_resume_cb);
    ln->resume_timer.data = ln;
    ln->emfile_logged = -EMFILE_LOG_EVERY_S;
    ev_io_start(ln->px->loop, &ln->accept_io);
}

void proxy_listener_unref(struct proxy_listener *ln)
{
    if (--ln->refs > 0)
        return;
    proxy_listener_close(ln);
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

/* Resolves forward actions' group names to live groups (taking references). */
static void resolve_action(struct proxy *px, struct proxy_action *a)
{
    for (size_t i = 0; i < a->nfwd; i++) {
        if (a->fwd[i].tg)
            proxy_tg_unref(a->fwd[i].tg);
        a->fwd[i].tg = proxy_find_tg(px, a->fwd[i].tg_name);
        a->fwd[i].tg->refs++;
    }
}

static void listener_resolve(struct proxy *px, struct proxy_listener_conf *l)
{
    for (size_t r = 0; r < l->nrules; r++)
        resolve_action(px, &l->rules[r].action);
    resolve_action(px, &l->default_action);
}

int proxy_apply(struct proxy *px, struct proxy_config *conf, char **err)
{
    /* 1. Open the sockets of new listeners first: a failure here changes nothing. */
    int *fds = xcalloc(conf->nlisteners + 1, sizeof *fds);
    struct proxy_listener **keep = xcalloc(conf->nlisteners + 1, sizeof *keep);
    for (size_t i = 0; i < conf->nlisteners; i++) {
        struct net_addr a;
        net_parse_addr(conf->listeners[i].listen, &a);
        fds[i] = -1;
        for (size_t k = 0; k < px->nlisteners; k++)
            if (px->listeners[k]->addr.len == a.len && memcmp(&px->listeners[k]->addr.ss, &a.ss, a.len) == 0)
                keep[i] = px->listeners[k];
        if (keep[i])
            continue;
        fds[i] = net_listen_tcp(&a, 4096, true);
        if (fds[i] < 0) {
            cfg_error(err, NULL, "listeners[%zu].listen: cannot listen on %s: %s", i, conf->listeners[i].listen,
                      strerror(errno));
            for (size_t k = 0; k < i; k++)
                if (fds[k] >= 0)
                    close(fds[k]);
            free(fds);
            free(keep);
            return -1;
        }
    }

    /* 2. Target groups: update in place (targets keep their health state),
     * create new ones, retire removed ones (their targets drain). */
    for (size_t i = 0; i < conf->ntgs; i++)
        proxy_tg_upsert(px, &conf->tgs[i]);
    for (size_t i = px->ntgs; i-- > 0;) {
        struct proxy_tg *tg = px->tgs[i];
        size_t k;
        for (k = 0; k < conf->ntgs; k++)
            if (strcmp(conf->tgs[k].name, tg->conf.name) == 0)
                break;
        if (k < conf->ntgs)
            continue;
        log_info("removing target group %s", tg->conf.name);
        px->tgs[i] = px->tgs[--px->ntgs];
        proxy_dns_stop(tg);
        while (tg->ntargets)
            proxy_tg_remove_target(tg, tg->targets[0]->addr_str);
        tg->removed = true;
        proxy_tg_unref(tg);
    }

    /* 3. Listeners: same address keeps its socket (no connection is
     * dropped); its rules are swapped for the new ones. */
    struct proxy_listener **nl = xcalloc(conf->nlisteners + 1, sizeof *nl);
    for (size_t i = 0; i < conf->nlisteners; i++) {
        struct proxy_listener *ln = keep[i];
        if (ln) {
            struct proxy_listener_conf old = ln->conf;
            ln->conf = conf->listeners[i];
            proxy_listener_conf_free(&old);
            ln->refs++;
        } else {
            ln = xcalloc(1, sizeof *ln);
            ln->refs = 1; /* the listener list; each connection adds one */
            ln->px = px;
            ln->conf = conf->listeners[i];
            net_parse_addr(ln->conf.listen, &ln->addr);
            ln->port = net_addr_port(&ln->addr);
            snprintf(ln->port_str, sizeof ln->port_str, "%d", ln->port);
            ln->fd = fds[i];
            proxy_listener_start(ln);
            log_info("listener %s on %s", ln->conf.name, ln->conf.listen);
        }
        memset(&conf->listeners[i], 0, sizeof conf->listeners[i]);
        listener_resolve(px, &ln->conf);
        nl[i] = ln;
    }
    for (size_t k = 0; k < px->nlisteners; k++) {
        struct proxy_listener *ln = px->listeners[k];
        bool kept = false;
        for (size_t i = 0; i < conf->nlisteners; i++)
            kept = kept || keep[i] == ln;
        if (!kept) {
            log_info("closing listener %s on %s", ln->conf.name, ln->conf.listen);
            proxy_listener_close(ln);
        }
        proxy_listener_unref(ln);
    }
    free(px->listeners);
    px->listeners = nl;
    px->nlisteners = conf->nlisteners;
    conf->nlisteners = 0;
    free(fds);
    free(keep);

    proxy_config_free(px->conf);
    px->conf = conf;
    return 0;
}
