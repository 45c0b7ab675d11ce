/* main.c -- berth-scheduler: flags, config, the durable store and the API. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "berth/alloc.h"
#include "berth/auth.h"
#include "berth/config.h"
#include "berth/daemon.h"
#include "berth/httpd.h"
#include "berth/log.h"
#include "berth/tls.h"
#include "sched.h"

struct sched_config {
    char *listen, *data_dir, *namespace, *dns_server, *proxy_admin, *dns_admin, *proxy_listener;
    char *proxy_admin_token, *dns_admin_token;
    bool embedded;
    int cpu, memory_mib;
    int port_range[2];
    json_t *attributes;
    double autoscale_interval_s, node_lost_after_s;
    char *container_engine;
    int image_pull;
};

static const char *const pull_policies[] = {"if_not_present", "always", NULL};

static const struct cfg_field fields[] = {
    {"listen", CFG_ADDR, offsetof(struct sched_config, listen), 0, 0, 0, "127.0.0.1:7400", NULL, false},
    {"data_dir", CFG_STRING, offsetof(struct sched_config, data_dir), 0, 0, 0, "berth-data", NULL, false},
    {"namespace", CFG_STRING, offsetof(struct sched_config, namespace), 0, 0, 0, "berth.internal", NULL, false},
    {"dns_server", CFG_ADDR, offsetof(struct sched_config, dns_server), 0, 0, 0, "127.0.0.1:8600", NULL, false},
    {"agent", CFG_NESTED, 0, 0, 0, 0, NULL, NULL, false},
    {"proxy_admin", CFG_STRING, offsetof(struct sched_config, proxy_admin), 0, 0, 0, NULL, NULL, false},
    {"dns_admin", CFG_STRING, offsetof(struct sched_config, dns_admin), 0, 0, 0, NULL, NULL, false},
    {"proxy_listener", CFG_STRING, offsetof(struct sched_config, proxy_listener), 0, 0, 0, "http", NULL, false},
    {"proxy_admin_token", CFG_STRING, offsetof(struct sched_config, proxy_admin_token), 0, 0, 0, NULL, NULL, false},
    {"dns_admin_token", CFG_STRING, offsetof(struct sched_config, dns_admin_token), 0, 0, 0, NULL, NULL, false},
    {"auth", CFG_NESTED, 0, 0, 0, 0, NULL, NULL, false},
    {"tls", CFG_NESTED, 0, 0, 0, 0, NULL, NULL, false},
    {"autoscale_interval_s", CFG_DOUBLE, offsetof(struct sched_config, autoscale_interval_s), 0.1, 60, 2, NULL, NULL,
     false},
    {"node_lost_after_s", CFG_DOUBLE, offsetof(struct sched_config, node_lost_after_s), 1, 3600, 10, NULL, NULL, false},
    CFG_END,
};

static const struct cfg_field agent_fields[] = {
    {"embedded", CFG_BOOL, offsetof(struct sched_config, embedded), 0, 0, 1, NULL, NULL, false},
    {"cpu", CFG_INT, offsetof(struct sched_config, cpu), 0, 1 << 20, -1, NULL, NULL, false},
    {"memory_mib", CFG_INT, offsetof(struct sched_config, memory_mib), 0, 1 << 30, -1, NULL, NULL, false},
    {"port_range", CFG_RANGE, offsetof(struct sched_config, port_range), 1024, 65535, 0, "32000-60999", NULL, false},
    {"attributes", CFG_STRMAP, offsetof(struct sched_config, attributes), 0, 0, 0, NULL, NULL, false},
    {"container_engine", CFG_STRING, offsetof(struct sched_config, container_engine), 0, 0, 0, NULL, NULL, false},
    {"image_pull", CFG_ENUM, offsetof(struct sched_config, image_pull), 0, 0, 0, "if_not_present", pull_policies, false},
    CFG_END,
};

static void usage(FILE *f)
{
    fprintf(f, "usage: berth-scheduler [-c FILE] [-t] [--log-format text|json] [--log-level LEVEL]\n"
               "\n"
               "berth's control plane (the ECS of the plane): keeps services at their desired count of tasks\n"
               "on its embedded node and on berth-agent nodes, deploys, autoscales, and registers tasks in\n"
               "berth-proxy and berth-dns; state is journaled in data_dir (docs/scheduler.md).\n"
               "\n"
               "  -c, --config FILE     JSON config (docs/scheduler.md)\n"
               "  -t, --check           validate the config and exit (0 valid, 2 invalid)\n"
               "      --stop-tasks      on SIGTERM/SIGINT kill every task (default: they keep running\n"
               "                        and a restarted scheduler adopts them)\n" DAEMON_FLAGS_HELP
               "\n"
               "Signals: SIGHUP re-reads the config and applies auth, proxy_admin_token and dns_admin_token\n"
               "(other settings need a restart; a bad config is refused and the old one kept);\n"
               "SIGTERM/SIGINT stop (tasks keep running unless --stop-tasks).\n");
}

/* The settings a SIGHUP can change, read from <path>: 0, or -1 with *err. */
struct reloadable {
    struct auth auth;
    char *proxy_admin_token, *dns_admin_token;
};

static int read_reloadable(json_t *root, struct reloadable *out, char **err)
{
    memset(out, 0, sizeof *out);
    json_t *pt = json_object_get(root, "proxy_admin_token"), *dt = json_object_get(root, "dns_admin_token");
    if ((pt && !json_is_string(pt)) || (dt && !json_is_string(dt)))
        return cfg_error(err, pt && !json_is_string(pt) ? "proxy_admin_token" : "dns_admin_token", "must be a string");
    if (auth_parse(json_object_get(root, "auth"), "auth", &out->auth, err) < 0)
        return -1;
    out->proxy_admin_token = pt ? xstrdup(json_string_value(pt)) : NULL;
    out->dns_admin_token = dt ? xstrdup(json_string_value(dt)) : NULL;
    return 0;
}

static void reloadable_free(struct reloadable *r)
{
    auth_free(&r->auth);
    free(r->proxy_admin_token);
    free(r->dns_admin_token);
}

static struct {
    struct sched *sc;
    const char *path;
    struct reloadable cur;
} R;

static int reload(json_t *root, void *arg, char **err)
{
    struct reloadable next;
    if (read_reloadable(root, &next, err) < 0)
        return -1;
    reloadable_free(&R.cur);
    R.cur = next;
    R.sc->auth = &R.cur.auth;
    R.sc->proxy_admin_token = R.cur.proxy_admin_token;
    R.sc->dns_admin_token = R.cur.dns_admin_token;
    log_info("SIGHUP: reloaded auth (%zu tokens), proxy_admin_token and dns_admin_token; other settings need a "
             "restart",
             R.cur.auth.n);
    return 0;
}

static void on_hup(struct ev_loop *loop, ev_signal *w, int revents)
{
    daemon_reload(R.path, reload, NULL);
}

int main(int argc, char **argv)
{
    const char *stop_flag = NULL;
    const struct daemon_extra extra[] = {{"stop-tasks", 0, &stop_flag}, {NULL, 0, NULL}};
    struct daemon_args args;
    int rc = daemon_args_parse(argc, argv, "berth-scheduler", usage, extra, &args);
    if (rc >= 0)
        return rc;
    const char *path = args.config;
    bool check = args.check, stop_tasks = stop_flag != NULL;
    char *err = NULL;
    struct sched_config conf = {0};
    json_t *root = path ? cfg_load_file(path, &err) : json_object();
    char *inner = NULL;
    struct net_addr proxy_admin = {0}, dns_admin = {0};
    struct tls_block tls = {0};
    if (root && cfg_read(root, "", fields, &conf, &inner) == 0 &&
        cfg_read(json_object_get(root, "agent"), "agent", agent_fields, &conf, &inner) == 0 &&
        tls_block_read(json_object_get(root, "tls"), "tls", &tls, &inner) == 0) {
        if (!inner && conf.proxy_admin && net_parse_url(conf.proxy_admin, &proxy_admin) < 0)
            cfg_error(&inner, "proxy_admin", "\"%s\" must be a URL like http://127.0.0.1:7401", conf.proxy_admin);
        if (!inner && conf.dns_admin && net_parse_url(conf.dns_admin, &dns_admin) < 0)
            cfg_error(&inner, "dns_admin", "\"%s\" must be a URL like http://127.0.0.1:7402", conf.dns_admin);
        if (!inner)
            read_reloadable(root, &R.cur, &inner);
    } else if (!inner && !err) {
        cfg_error(&inner, "", "cannot read the config");
    }
    if (!root || inner) {
        cfg_free(agent_fields, &conf);
        fprintf(stderr, "berth-scheduler: %s%s%s\n",
                err    ? err
                : path ? path
                       : "(defaults)",
                inner ? ": " : "", inner ? inner : "");
        return 2;
    }
    json_decref(root);
    /* This node's capacity: the machine's, unless the config says otherwise. */
    if (conf.cpu < 0)
        conf.cpu = (int)sysconf(_SC_NPROCESSORS_ONLN) * 1024;
    if (conf.memory_mib < 0)
        conf.memory_mib = (int)(sysconf(_SC_PHYS_PAGES) / 1024 * sysconf(_SC_PAGESIZE) / 1024);
    bool refused = auth_require(&R.cur.auth, conf.listen, "the API", args.insecure, "berth-scheduler") < 0;
    if (refused || check) {
        if (!refused)
            printf("%s: ok\n", path ? path : "(defaults)");
        tls_block_free(&tls);
        cfg_free(agent_fields, &conf);
        reloadable_free(&R.cur);
        cfg_free(fields, &conf);
        return refused ? 2 : 0;
    }
    signal(SIGPIPE, SIG_IGN);
    struct ev_loop *loop = EV_DEFAULT;
    struct sched_store *store = sched_store_open(loop, conf.data_dir, &err);
    if (!store) {
        fprintf(stderr, "berth-scheduler: %s\n", err);
        return 2;
    }
    struct sched sc = {.loop = loop,
                       .store = store,
                       .data_dir = conf.data_dir,
                       .dns = conf.dns_server,
                       .namespace = conf.namespace,
                       .port_lo = conf.port_range[0],
                       .port_hi = conf.port_range[1],
                       .cpu = conf.cpu,
                       .memory_mib = conf.memory_mib,
                       .proxy_admin = proxy_admin,
                       .dns_admin = dns_admin,
                       .proxy_listener = conf.proxy_listener,
                       .autoscale_interval_s = conf.autoscale_interval_s,
                       .node_id = conf.embedded ? "local" : "",
                       .attributes = conf.attributes,
                       .container_engine = conf.container_engine,
                       .image_pull_always = conf.image_pull == 1,
                       .node_lost_after_s = conf.node_lost_after_s,
                       .auth = &R.cur.auth,
                       .proxy_admin_token = R.cur.proxy_admin_token,
                       .dns_admin_token = R.cur.dns_admin_token};
    sched_init(&sc);
    R.sc = &sc;
    R.path = path;
    if (sched_node_secret_load(&sc, &err) < 0) {
        fprintf(stderr, "berth-scheduler: %s\n", err);
        return 2;
    }
    char tasks_dir[1024];
    snprintf(tasks_dir, sizeof tasks_dir, "%s/tasks", conf.data_dir);
    mkdir(tasks_dir, 0755);
    sched_start(&sc); /* the embedded node's agent first: its record says whether it runs containers */
    sched_nodes_start(&sc);
    sched_sync_start(&sc);
    sched_metrics_start(&sc);
    struct httpd *api = sched_api_start(&sc, conf.listen, &err);
    if (!api) {
        fprintf(stderr, "berth-scheduler: listen: %s\n", err);
        return 2;
    }
    httpd_set_authz(api, sched_authz, &sc);
    if (daemon_tls(api, &tls, &err) < 0) {
        fprintf(stderr, "berth-scheduler: tls: %s\n", err);
        return 2;
    }
    ev_signal hup, exit_signals[2];
    ev_signal_init(&hup, on_hup, SIGHUP);
    ev_signal_start(loop, &hup);
    daemon_exit_on_signals(loop, exit_signals);
    log_info("berth-scheduler %s ready: API on %s%s (auth %s), data in %s, node capacity %d cpu / %d MiB, ports %d-%d",
             BERTH_VERSION, tls.cert ? "https://" : "", conf.listen, R.cur.auth.n ? "on" : "off", conf.data_dir, conf.cpu, conf.memory_mib,
             conf.port_range[0], conf.port_range[1]);
    ev_run(loop, 0);
    if (stop_tasks)
        agent_kill_all(&sc.agent);
    httpd_stop(api);
    sched_calls_stop(&sc);
    sched_sync_stop(&sc);
    sched_metrics_stop(&sc);
    sched_stop(&sc);
    sched_stops_free(&sc);
    sched_nodes_stop(&sc);
    sched_timers_stop(&sc);
    sched_events_free(&sc);
    cfg_free(agent_fields, &conf);
    tls_block_free(&tls);
    sched_store_close(store);
    reloadable_free(&R.cur);
    cfg_free(fields, &conf);
    log_info("stopped");
    return 0;
}
