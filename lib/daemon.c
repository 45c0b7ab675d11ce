/* daemon.c -- the command-line flags every berth daemon takes. */
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "berth/config.h"
#include "berth/daemon.h"
#include "berth/httpc.h"
#include "berth/httpd.h"
#include "berth/tls.h"

#define MAX_EXTRA 8

int daemon_args_parse(int argc, char **argv, const char *program, void (*usage)(FILE *),
                      const struct daemon_extra *extra, struct daemon_args *out)
{
    struct option opts[8 + MAX_EXTRA] = {
        {"config", required_argument, NULL, 'c'},
        {"check", no_argument, NULL, 't'},
        {"log-format", required_argument, NULL, 'F'},
        {"log-level", required_argument, NULL, 'L'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {"insecure", no_argument, NULL, 'I'},
    };
    int n = 7;
    for (int i = 0; extra && extra[i].name && i < MAX_EXTRA; i++)
        opts[n++] = (struct option){extra[i].name, extra[i].has_arg, NULL, 1000 + i};
    opts[n] = (struct option){NULL, 0, NULL, 0};
    *out = (struct daemon_args){.log_format = "text", .log_level_name = "info", .log_level = LOG_INFO};
    optind = 1;
    int o;
    while ((o = getopt_long(argc, argv, "c:thV", opts, NULL)) != -1) {
        switch (o) {
        case 'c':
            out->config = optarg;
            break;
        case 't':
            out->check = true;
            break;
        case 'F':
            out->log_format = optarg;
            break;
        case 'L':
            out->log_level_name = optarg;
            if (log_level_parse(optarg, &out->log_level) < 0) {
                fprintf(stderr, "%s: --log-level: unknown level \"%s\" (debug, info, warn, error)\n", program, optarg);
                return 2;
            }
            break;
        case 'I':
            out->insecure = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("%s %s\n", program, BERTH_VERSION);
            return 0;
        default:
            if (o >= 1000 && o < 1000 + MAX_EXTRA) {
                *extra[o - 1000].seen = optarg ? optarg : "";
                break;
            }
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument \"%s\"\n", program, argv[optind]);
        usage(stderr);
        return 2;
    }
    if (log_init(program, out->log_format, out->log_level) < 0) {
        fprintf(stderr, "%s: --log-format must be text or json\n", program);
        return 2;
    }
    return -1;
}

static void on_exit_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    log_info("signal %d: exiting", w->signum);
    ev_break(loop, EVBREAK_ALL);
}

void daemon_exit_on_signals(struct ev_loop *loop, ev_signal w[2])
{
    ev_signal_init(&w[0], on_exit_signal, SIGTERM);
    ev_signal_init(&w[1], on_exit_signal, SIGINT);
    ev_signal_start(loop, &w[0]);
    ev_signal_start(loop, &w[1]);
}

int daemon_reload(const char *path, int (*apply)(json_t *root, void *arg, char **err), void *arg)
{
    char *err = NULL;
    json_t *root = path ? cfg_load_file(path, &err) : json_object();
    int rc = root ? apply(root, arg, &err) : -1;
    if (rc < 0)
        log_error("SIGHUP: %s%s%s: keeping the running config", path && root ? path : "", path && root ? ": " : "",
                  err ? err : "refused");
    free(err);
    json_decref(root);
    return rc;
}

int daemon_tls(struct httpd *api, const struct tls_block *b, char **err)
{
    if (b->cert && httpd_use_tls(api, b->cert, b->key, err) < 0)
        return -1;
    if (b->ca_file && httpc_tls_init(b->ca_file, err) < 0)
        return -1;
    return 0;
}
