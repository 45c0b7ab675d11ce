/* main.c -- berth-proxy: flags, config, signals, event loop. */
#include <signal.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "berth/alloc.h"
#include "berth/config.h"
#include "berth/daemon.h"
#include "berth/httpd.h"
#include "berth/log.h"
#include "admin.h"
#include "client.h"
#include "listener.h"
#include "proxy.h"
#include "stats.h"
#include "tgroup.h"
#include "workers.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: berth-proxy [-c FILE] [--log-format text|json] [--log-level LEVEL] [-t]\n"
               "\n"
               "berth's L7 HTTP/1.1 load balancer (the ALB of the plane): HTTP and HTTPS listeners\n"
               "(docs/tls.md), HTTP and HTTPS target groups.\n"
               "\n"
               "  -c, --config FILE     JSON config (docs/proxy.md); default: no listeners, admin on 127.0.0.1:7401\n"
               "  -t, --check           validate the config and its certificate files (readable, keys\n"
               "                        matching, not expired) and exit (0 valid, 2 invalid)\n" DAEMON_FLAGS_HELP "\n"
               "Signals: SIGHUP reloads the config and re-reads certificate files (a bad one is refused\n"
               "and the old config keeps serving); SIGTERM/SIGINT stop accepting, finish in-flight requests and exit 0.\n");
}

static struct proxy_config *load(const char *path, char **err)
{
    json_t *root = path ? cfg_load_file(path, err) : json_object();
    if (!root)
        return NULL;
    char *inner = NULL;
    struct proxy_config *c = proxy_config_parse(root, &inner);
    json_decref(root);
    if (!c) {
        cfg_error(err, path ? path : "(defaults)", "%s", inner);
        free(inner);
    }
    return c;
}

#define TICKET_SEED_ENV "BERTH_PROXY_TICKET_SEED"

static struct proxy px;
static int worker_fd = -1; /* worker of a master: report the admin port here */

static void on_hup(struct ev_loop *loop, ev_signal *w, int revents)
{
    char *err = NULL;
    struct proxy_config *c = load(px.config_path, &err);
    if (c && strcmp(c->admin_listen, px.conf->admin_listen) != 0) {
        if (worker_fd < 0)
            log_warn("reload: admin.listen changes need a restart; keeping %s", px.conf->admin_listen);
        free(c->admin_listen);
        c->admin_listen = xstrdup(px.conf->admin_listen);
    }
    if (!c || proxy_apply(&px, c, &err) < 0) {
        log_error("reload refused, still serving the previous config: %s", err);
        free(err);
        if (c)
            proxy_config_free(c);
        return;
    }
    log_info("reloaded %s", px.config_path ? px.config_path : "(defaults)");
}

static void on_shutdown_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    log_warn("shutdown timeout: %llu connections still open, closing them", (unsigned long long)px.conns_active);
    ev_break(loop, EVBREAK_ALL);
}

static void on_term(struct ev_loop *loop, ev_signal *w, int revents)
{
    if (px.shutting_down)
        return;
    log_info("signal %d: draining %llu connections, then exiting", w->signum, (unsigned long long)px.conns_active);
    px.shutting_down = true;
    for (size_t i = 0; i < px.nlisteners; i++)
        proxy_listener_close(px.listeners[i]);
    proxy_conns_close(&px, false);
    if (px.conns_active == 0) {
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    ev_timer_init(&px.shutdown_timer, on_shutdown_timeout, px.conf->shutdown_timeout_s, 0);
    ev_timer_start(loop, &px.shutdown_timer);
}

int main(int argc, char **argv)
{
    const char *worker = NULL;
    const struct daemon_extra extra[] = {{"worker", 1, &worker}, {NULL, 0, NULL}};
    struct daemon_args args;
    int rc = daemon_args_parse(argc, argv, "berth-proxy", usage, extra, &args);
    if (rc >= 0)
        return rc;
    px.config_path = (char *)args.config;
    bool check = args.check;
    const char *format = args.log_format, *level_name = args.log_level_name;
    if (worker) {
        worker_fd = atoi(worker);
        log_init("berth-proxy worker", format, args.log_level);
    }
    char *err = NULL;
    struct proxy_config *conf = load(px.config_path, &err);
    if (!conf) {
        fprintf(stderr, "berth-proxy: %s\n", err);
        free(err);
        return 2;
    }
    if (!worker && auth_require(&conf->auth, conf->admin_listen, "the admin API", args.insecure, "berth-proxy") < 0) {
        proxy_config_free(conf);
        return 2;
    }
    if (check) {
        /* Certificates too: readable, keys matching, not expired (close expiry is warned of). */
        for (size_t i = 0; i < conf->nlisteners; i++) {
            struct tls_server *tls = proxy_listener_tls_load(&conf->listeners[i], i, &err);
            if (!tls && err) {
                fprintf(stderr, "berth-proxy: %s: %s\n", px.config_path ? px.config_path : "(defaults)", err);
                free(err);
                proxy_config_free(conf);
                return 2;
            }
            tls_server_unref(tls);
        }
        printf("%s: ok\n", px.config_path ? px.config_path : "(defaults)");
        proxy_config_free(conf);
        return 0;
    }
    signal(SIGPIPE, SIG_IGN);
    if (conf->workers > 1 && worker_fd < 0) {
        /* Master: workers are this program again, reporting their admin port on a pipe. */
        char *wargv[12];
        int k = 0;
        wargv[k++] = argv[0];
        if (px.config_path) {
            wargv[k++] = "-c";
            wargv[k++] = px.config_path;
        }
        wargv[k++] = "--log-format";
        wargv[k++] = (char *)format;
        wargv[k++] = "--log-level";
        wargv[k++] = (char *)level_name;
        wargv[k++] = "--worker";
        int slot = k++;
        wargv[k] = NULL;
        /* One ticket key seed for all workers: a session resumes on whichever worker accepts it. */
        char seed[65];
        tls_ticket_seed_hex(seed);
        setenv(TICKET_SEED_ENV, seed, 1);
        rc = proxy_master_run(conf, wargv, slot);
        proxy_config_free(conf);
        return rc;
    }
    if (worker_fd >= 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive the master */
        const char *seed = getenv(TICKET_SEED_ENV);
        unsigned char bin[32];
        size_t n = 0;
        for (; seed && n < sizeof bin && sscanf(seed + 2 * n, "%2hhx", &bin[n]) == 1; n++)
            ;
        if (n)
            tls_ticket_seed_set(bin, n);
        unsetenv(TICKET_SEED_ENV);
        free(conf->admin_listen);
        conf->admin_listen = xstrdup("127.0.0.1:0");
    }
    px.loop = EV_DEFAULT;
    proxy_init(&px);
    if (proxy_apply(&px, conf, &err) < 0) {
        fprintf(stderr, "berth-proxy: %s: %s\n", px.config_path ? px.config_path : "(defaults)", err);
        free(err);
        proxy_config_free(conf);
        return 2;
    }
    if (px.conf->access_log_path) {
        px.access_log = strcmp(px.conf->access_log_path, "-") == 0 ? stdout : fopen(px.conf->access_log_path, "a");
        if (!px.access_log) {
            fprintf(stderr, "berth-proxy: access_log.path: cannot open %s\n", px.conf->access_log_path);
            return 2;
        }
    }
    if (proxy_admin_start(&px, &err) < 0 || (worker_fd < 0 && daemon_tls(px.admin, &px.conf->admin_tls, &err) < 0)) {
        fprintf(stderr, "berth-proxy: admin.listen: %s\n", err);
        free(err);
        return 2;
    }
    if (worker_fd >= 0) {
        dprintf(worker_fd, "%d\n", httpd_port(px.admin));
        close(worker_fd);
    }
    ev_signal sig_hup, sig_term, sig_int;
    ev_signal_init(&sig_hup, on_hup, SIGHUP);
    ev_signal_init(&sig_term, on_term, SIGTERM);
    ev_signal_init(&sig_int, on_term, SIGINT);
    ev_signal_start(px.loop, &sig_hup);
    ev_signal_start(px.loop, &sig_term);
    ev_signal_start(px.loop, &sig_int);
    log_info("berth-proxy %s ready: admin on %s", BERTH_VERSION, px.conf->admin_listen);
    ev_run(px.loop, 0);

    /* Orderly teardown so leak checkers see a clean exit. */
    httpd_stop(px.admin);
    px.shutting_down = true;
    proxy_conns_close(&px, true);
    for (size_t i = 0; i < px.nlisteners; i++) {
        proxy_listener_close(px.listeners[i]);
        proxy_listener_unref(px.listeners[i]);
    }
    free(px.listeners);
    for (size_t i = 0; i < px.ntgs; i++)
        proxy_tg_unref(px.tgs[i]);
    free(px.tgs);
    proxy_access_flush(&px);
    buf_free(&px.access_buf);
    proxy_config_free(px.conf);
    log_info("stopped");
    return 0;
}
