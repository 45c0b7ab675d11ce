/* main.c -- berth-dns: flags, config, signals, event loop. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/config.h"
#include "berth/daemon.h"
#include "berth/httpd.h"
#include "berth/log.h"
#include "dns.h"

static struct dns_server srv;
static const char *config_path;

static void usage(FILE *f)
{
    fprintf(f, "usage: berth-dns [-c FILE] [-t] [--log-format text|json] [--log-level LEVEL]\n"
               "\n"
               "berth's authoritative DNS server for service namespaces (the Cloud Map of the plane).\n"
               "\n"
               "  -c, --config FILE     JSON config (docs/dns.md); default: DNS on 127.0.0.1:8600 (UDP+TCP),\n"
               "                        admin API on 127.0.0.1:7402, no namespaces\n"
               "  -t, --check           validate the config and exit (0 valid, 2 invalid)\n" DAEMON_FLAGS_HELP "\n"
               "Signals: SIGHUP reloads the config (a bad one is refused, the old one keeps serving);\n"
               "SIGTERM/SIGINT exit 0.\n");
}

static struct dns_config *load(char **err)
{
    json_t *root = config_path ? cfg_load_file(config_path, err) : json_object();
    if (!root)
        return NULL;
    char *inner = NULL;
    struct dns_config *c = dns_config_parse(root, &inner);
    json_decref(root);
    if (!c) {
        cfg_error(err, config_path ? config_path : "(defaults)", "%s", inner);
        free(inner);
    }
    return c;
}

static void on_hup(struct ev_loop *loop, ev_signal *w, int revents)
{
    char *err = NULL;
    struct dns_config *c = load(&err);
    if (!c || dns_server_reconfigure(&srv, c, &err) < 0) {
        log_error("reload refused, still serving the previous config: %s", err);
        free(err);
        dns_config_free(c);
        return;
    }
    log_info("reloaded %s", config_path ? config_path : "(defaults)");
}

int main(int argc, char **argv)
{
    struct daemon_args args;
    int rc = daemon_args_parse(argc, argv, "berth-dns", usage, NULL, &args);
    if (rc >= 0)
        return rc;
    config_path = args.config;
    bool check = args.check;
    char *err = NULL;
    struct dns_config *c = load(&err);
    if (!c) {
        fprintf(stderr, "berth-dns: %s\n", err);
        free(err);
        return 2;
    }
    if (auth_require(&c->auth, c->admin_listen, "the admin API", args.insecure, "berth-dns") < 0) {
        dns_config_free(c);
        return 2;
    }
    if (check) {
        printf("%s: ok\n", config_path ? config_path : "(defaults)");
        dns_config_free(c);
        return 0;
    }
    signal(SIGPIPE, SIG_IGN);
    srv.loop = EV_DEFAULT;
    srv.conf = c;
    if (dns_server_start(&srv, &err) < 0 || dns_admin_start(&srv, &err) < 0) {
        fprintf(stderr, "berth-dns: %s: %s\n", config_path ? config_path : "(defaults)", err);
        free(err);
        return 2;
    }
    ev_signal hup, exit_signals[2];
    ev_signal_init(&hup, on_hup, SIGHUP);
    ev_signal_start(srv.loop, &hup);
    daemon_exit_on_signals(srv.loop, exit_signals);
    log_info("berth-dns %s ready: DNS on %s (UDP+TCP), admin on %s", BERTH_VERSION, c->listen, c->admin_listen);
    ev_run(srv.loop, 0);
    httpd_stop(srv.admin);
    dns_server_stop(&srv);
    dns_config_free(srv.conf);
    log_info("stopped");
    return 0;
}
