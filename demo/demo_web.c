/* demo_web.c -- berth-demo-web: a small web service for demos and tests; answers with its task id. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/httpd.h"
#include "berth/log.h"

static const char *task_id;

static void handle(struct httpd_req *req, void *arg)
{
    char body[512];
    if (req->nsegs == 1 && strcmp(req->segs[0], "health") == 0) {
        httpd_respond(req, 200, "text/plain", "ok\n", 3);
        return;
    }
    const char *greeting = getenv("GREETING");
    int n = snprintf(body, sizeof body, "%s from %s\n", greeting ? greeting : "hello", task_id);
    httpd_respond(req, 200, "text/plain", body, (size_t)n);
}

static void on_term(struct ev_loop *loop, ev_signal *w, int revents)
{
    ev_break(loop, EVBREAK_ALL);
}

int main(int argc, char **argv)
{
    const char *port = getenv("PORT");
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "--port") == 0 || strcmp(argv[i], "-p") == 0) && i + 1 < argc) {
            port = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: berth-demo-web [--port PORT]\n\nServes GET / (\"hello from $BERTH_TASK_ID\") and GET /health "
                   "on 127.0.0.1:PORT (default $PORT).\n");
            return 0;
        } else {
            fprintf(stderr, "berth-demo-web: unknown argument \"%s\" (try --help)\n", argv[i]);
            return 2;
        }
    }
    if (!port) {
        fprintf(stderr, "berth-demo-web: no port: set PORT or pass --port\n");
        return 2;
    }
    task_id = getenv("BERTH_TASK_ID") ? getenv("BERTH_TASK_ID") : "demo";
    log_init("berth-demo-web", "text", LOG_INFO);
    signal(SIGPIPE, SIG_IGN);
    struct ev_loop *loop = EV_DEFAULT;
    char addr[64], *err = NULL;
    snprintf(addr, sizeof addr, "127.0.0.1:%s", port);
    struct httpd *s = httpd_start(loop, addr, handle, NULL, &err);
    if (!s) {
        fprintf(stderr, "berth-demo-web: %s\n", err);
        return 1;
    }
    ev_signal t, i;
    ev_signal_init(&t, on_term, SIGTERM);
    ev_signal_init(&i, on_term, SIGINT);
    ev_signal_start(loop, &t);
    ev_signal_start(loop, &i);
    log_info("%s serving on %s", task_id, addr);
    ev_run(loop, 0);
    httpd_stop(s);
    return 0;
}
