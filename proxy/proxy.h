/* proxy.h -- berth-proxy: the state of one proxy process, and applying a configuration to it
 * (proxy.c). The modules, bottom up (docs/architecture.md): config (pconfig.c) and rules (rules.c)
 * are pure; readyq, upstream, dns and stats know no group; tgroup runs groups and targets; listener
 * accepts and holds routes; client relays exchanges; proxy.c applies configs; admin.c serves the
 * admin API; workers.c runs several worker processes. */
#ifndef BERTH_PROXY_H
#define BERTH_PROXY_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "berth/buf.h"
#include "config.h"
#include "readyq.h"

struct proxy_listener;
struct proxy_tg;
struct proxy_conn;
struct httpd;

struct proxy {
    struct ev_loop *loop;
    char *config_path;
    struct proxy_config *conf;
    struct proxy_listener **listeners;
    size_t nlisteners;
    struct proxy_tg **tgs;
    size_t ntgs;
    struct httpd *admin;
    FILE *access_log;
    struct buf access_buf;
    ev_timer log_timer;
    struct proxy_conn *conns;
    struct proxy_readyq readyq; /* sockets epoll reported ready, served in order */
    uint64_t conns_total, conns_active, requests_total, conn_errors_total;
    uint64_t fixed_responses, redirects, bad_requests;
    /* TLS handshakes on HTTPS listeners: completed by protocol version (TLS 1.0, 1.1, 1.2, 1.3),
     * of which resumed, failed, and timed out. */
    uint64_t tls_ok[4], tls_resumed, tls_failed, tls_timeouts;
    bool shutting_down;
    ev_timer shutdown_timer;
    /* Scratch memory that connection buffers borrow within one callback. */
    char scratch_in[65536], scratch_out[65536], scratch_up_in[65536], scratch_up_out[65536], scratch_head[65536];
};

/* Applies <conf> (initial or reload; taken over on success): listeners keep their sockets, groups
 * their targets' health. 0, or -1 with *err and nothing changed. */
int proxy_apply(struct proxy *px, struct proxy_config *conf, char **err);
/* Prepares <px> (its loop set) before the first proxy_apply. */
void proxy_init(struct proxy *px);

#endif
