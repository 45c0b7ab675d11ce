/* main.c -- berth-scheduler: flags, config, the durable store and the API. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/config.h"
#include "berth/httpd.h"
#include "berth/log.h"
#include "sched.h"

struct sched_config {
    char *listen, *data_dir;
};

static const struct cfg_field fields[] = {
    {"listen", CFG_ADDR, offsetof(struct sched_config, listen), 0, 0, 0, "127.0.0.1:7400", NULL, false},
    {"data_dir", CFG_STRING, offsetof(struct sched_config, data_dir), 0, 0, 0, "berth-data", NULL, false},
    CFG_END,
};

static void usage(FILE *f)
{
    fprintf(f, "usage: berth-scheduler [-c FILE] [-t] [--log-format text|json] [--log-level LEVEL]\n"
               "\n"
               "berth's control plane (the ECS of the plane). This version keeps task definitions and\n"
               "services durably (docs/scheduler.md); running tasks arrives with the node agent.\n"
               "\n"
               "  -c, --config FILE     JSON config: {\"listen\": \"127.0.0.1:7400\", \"data_dir\": \"berth-data\"}\n"
               "  -t, --check           validate the config and exit (0 valid, 2 invalid)\n"
               "      --log-format F    text (default) or json\n"
               "      --log-level L     debug, info (default), warn, error\n"
               "  -h, --help            this help\n"
               "  -V, --version         print the version\n");
}

static void on_term(struct ev_loop *loop, ev_signal *w, int revents)
{
    log_info("signal %d: exiting", w->signum);
    ev_break(loop, EVBREAK_ALL);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"check", no_argument, NULL, 't'},
        {"log-format", required_argument, NULL, 'F'}, {"log-level", required_argument, NULL, 'L'},
        {"help", no_argument, NULL, 'h'}, {"version", no_argument, NULL, 'V'}, {NULL, 0, NULL, 0},
    };
    const char *path = NULL, *format = "text";
    enum log_level level = LOG_INFO;
    bool check = false;
    int o;
    while ((o = getopt_long(argc, argv, "c:thV", opts, NULL)) != -1) {
        switch (o) {
        case 'c': path = optarg; break;
        case 't': check = true; break;
        case 'F': format = optarg; break;
        case 'L':
            if (log_level_parse(optarg, &level) < 0) {
                fprintf(stderr, "berth-scheduler: --log-level: unknown level \"%s\"\n", optarg);
                return 2;
            }
            break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("berth-scheduler %s\n", BERTH_VERSION); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc || log_init("berth-scheduler", format, level) < 0) {
        usage(stderr);
        return 2;
    }
    char *err = NULL;
    struct sched_config conf = {0};
    json_t *root = path ? cfg_load_file(path, &err) : json_object();
    char *inner = NULL;
    if (!root || cfg_read(root, "", fields, &conf, &inner) < 0) {
        fprintf(stderr, "berth-scheduler: %s%s%s\n", err ? err : path, inner ? ": " : "", inner ? inner : "");
        return 2;
    }
    json_decref(root);
    if (check) {
        printf("%s: ok\n", path ? path : "(defaults)");
        cfg_free(fields, &conf);
        return 0;
    }
    signal(SIGPIPE, SIG_IGN);
    struct ev_loop *loop = EV_DEFAULT;
    struct sched_store *store = sched_store_open(loop, conf.data_dir, &err);
    if (!store) {
        fprintf(stderr, "berth-scheduler: %s\n", err);
        return 2;
    }
    struct httpd *api = sched_api_start(loop, conf.listen, store, &err);
    if (!api) {
        fprintf(stderr, "berth-scheduler: listen: %s\n", err);
        return 2;
    }
    ev_signal term, intr;
    ev_signal_init(&term, on_term, SIGTERM);
    ev_signal_init(&intr, on_term, SIGINT);
    ev_signal_start(loop, &term);
    ev_signal_start(loop, &intr);
    log_info("berth-scheduler %s ready: API on %s, data in %s", BERTH_VERSION, conf.listen, conf.data_dir);
    ev_run(loop, 0);
    httpd_stop(api);
    sched_store_close(store);
    cfg_free(fields, &conf);
    log_info("stopped");
    return 0;
}
