/* daemon.h -- the command-line flags every berth daemon takes. */
#ifndef BERTH_DAEMON_H
#define BERTH_DAEMON_H

#include <ev.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "berth/log.h"

/* The --help lines of the flags daemon_args_parse handles for every daemon (besides -c and -t). */
#define DAEMON_FLAGS_HELP                                                                                              \
    "      --insecure        serve the API beyond loopback without \"auth\" tokens (logged loudly)\n"                  \
    "      --log-format F    text (default) or json\n"                                                                 \
    "      --log-level L     debug, info (default), warn, error\n"                                                     \
    "  -h, --help            this help\n"                                                                              \
    "  -V, --version         print the version\n"

struct daemon_args {
    const char *config;     /* -c FILE, or NULL for the defaults */
    const char *log_format; /* --log-format (text, json) */
    const char *log_level_name;
    enum log_level log_level; /* --log-level */
    bool check;               /* -t: validate the config and exit */
    bool insecure;            /* --insecure: allow an API beyond loopback without auth */
};

/* A flag one daemon adds: <has_arg> as for getopt_long; *<seen> gets its argument ("" without one). */
struct daemon_extra {
    const char *name;
    int has_arg;
    const char **seen;
};

/* Parses -c FILE, -t, --log-format, --log-level, -h/--help (prints <usage>), -V/--version and
 * <extra> (terminated by a row with name NULL; may be NULL), then initialises logging as
 * <program>. Returns -1 to go on, or the status to exit with: 0 after --help or --version, 2 for
 * a bad flag (with a one-line reason on stderr). */
int daemon_args_parse(int argc, char **argv, const char *program, void (*usage)(FILE *),
                      const struct daemon_extra *extra, struct daemon_args *out);

/* For SIGHUP: reads the config at <path> again (an empty object without one) and hands it to
 * <apply>, which returns 0, or -1 with *err (malloc'd). A file that does not load, or a refusal, is
 * logged and nothing changes. Returns 0 or -1. */
int daemon_reload(const char *path, int (*apply)(json_t *root, void *arg, char **err), void *arg);

struct httpd;
struct tls_block;
/* Applies a "tls" block (tls_block_read): <api> serves HTTPS with its certificate, and the process's
 * https:// requests trust its ca_file. 0, or -1 with *err. */
int daemon_tls(struct httpd *api, const struct tls_block *b, char **err);

/* Makes SIGTERM and SIGINT log "signal N: exiting" and end ev_run on <loop>; <w> holds the two watchers
 * (they must outlive the loop run). */
void daemon_exit_on_signals(struct ev_loop *loop, ev_signal w[2]);

#endif
