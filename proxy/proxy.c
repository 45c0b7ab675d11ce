/* proxy.c -- applying a configuration (start-up and SIGHUP reload). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "berth/alloc.h"
#include "berth/config.h"
#include "berth/log.h"
#include "client.h"
#include "listener.h"
#include "proxy.h"
#include "tgroup.h"

void proxy_init(struct proxy *px)
{
    proxy_readyq_init(&px->readyq, px->loop);
    buf_init(&px->access_buf, 1u << 20);
}

int proxy_apply(struct proxy *px, struct proxy_config *conf, char **err)
{
    /* 1. Load certificates and open the sockets of new listeners first: a failure here changes
     * nothing (a bad certificate on reload leaves the old one serving). */
    struct tls_server **tls = xcalloc(conf->nlisteners + 1, sizeof *tls);
    for (size_t i = 0; i < conf->nlisteners; i++) {
        tls[i] = proxy_listener_tls_load(&conf->listeners[i], i, err);
        if (!tls[i] && conf->listeners[i].protocol == PROXY_HTTPS) {
            for (size_t k = 0; k < i; k++)
                tls_server_unref(tls[k]);
            free(tls);
            return -1;
        }
    }
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
            for (size_t k = 0; k < conf->nlisteners; k++)
                tls_server_unref(tls[k]);
            free(tls);
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
        proxy_tg_retire(tg);
    }

    /* 3. Listeners: same address keeps its socket (no connection is
     * dropped); its rules are swapped for the new ones. */
    struct proxy_listener **nl = xcalloc(conf->nlisteners + 1, sizeof *nl);
    for (size_t i = 0; i < conf->nlisteners; i++) {
        struct proxy_listener *ln = keep[i];
        if (ln) {
            proxy_listener_set_conf(ln, &conf->listeners[i]);
            ln->refs++;
        } else {
            ln = proxy_listener_new(px, &conf->listeners[i], fds[i], proxy_conn_accept);
        }
        proxy_listener_set_tls(ln, tls[i]);
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
    free(tls);

    proxy_config_free(px->conf);
    px->conf = conf;
    return 0;
}
