/* demo_web.c -- berth-demo-web: a small web service for demos and tests; answers with its task id.
 * With API_SERVICE set, GET /api calls that service by name: an SRV lookup of
 * API_SERVICE.BERTH_NAMESPACE at BERTH_DNS through the lookup library, cached for the records' TTL. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/httpc.h"
#include "berth/httpd.h"
#include "berth/log.h"
#include "berth/lookup.h"
#include "berth/util.h"

static const char *task_id;
static struct ev_loop *main_loop;
static struct lookup *resolver;
static char api_name[300];

/* The api service's endpoints, as last resolved. */
static struct lookup_endpoint *eps;
static size_t neps;
static double eps_until; /* util_now() when the TTL runs out */

/* A /api request waiting for the lookup or the call. */
struct api_call {
    struct httpd_req *req;
    struct api_call *next; /* waiting for the lookup in flight */
};
static struct api_call *waiting;
static bool resolving;

static void call_done(const struct httpc_response *resp, const char *err, void *arg)
{
    struct api_call *c = arg;
    char body[1024];
    int n;
    if (err)
        n = snprintf(body, sizeof body, "web %s could not call %s: %s\n", task_id, api_name, err);
    else
        n = snprintf(body, sizeof body, "web %s -> %s: %.*s", task_id, api_name,
                     (int)(resp->body_len > 900 ? 900 : resp->body_len), resp->body);
    httpd_respond(c->req, err ? 502 : resp->status, "text/plain", body, (size_t)n);
    free(c);
}

static void call_api(struct api_call *c)
{
    if (!neps) {
        char body[400];
        int n = snprintf(body, sizeof body, "web %s: no %s instance is registered\n", task_id, api_name);
        httpd_respond(c->req, 503, "text/plain", body, (size_t)n);
        free(c);
        return;
    }
    const struct lookup_endpoint *ep = lookup_pick(eps, neps);
    struct net_addr to;
    if (net_parse_addr(ep->address, &to) < 0 ||
        !httpc_request(main_loop, &to, "GET", api_name, NULL, "/", NULL, NULL, 0, 5.0, call_done, c))
        call_done(NULL, "cannot connect", c);
}

static void resolved(const struct lookup_endpoint *found, size_t n, unsigned ttl, const char *err, void *arg)
{
    resolving = false;
    if (err) {
        log_warn("lookup %s: %s", api_name, err);
        n = 0;
        ttl = 1;
    }
    free(eps);
    eps = n ? malloc(n * sizeof *eps) : NULL;
    if (n)
        memcpy(eps, found, n * sizeof *eps);
    neps = n;
    eps_until = util_now() + (ttl ? ttl : 1);
    while (waiting) {
        struct api_call *c = waiting;
        waiting = c->next;
        call_api(c);
    }
}

static void handle_api(struct httpd_req *req)
{
    struct api_call *c = calloc(1, sizeof *c);
    c->req = req;
    if (util_now() < eps_until) {
        call_api(c);
        return;
    }
    c->next = waiting;
    waiting = c;
    if (!resolving) {
        resolving = true;
        if (!lookup_endpoints(resolver, api_name, LOOKUP_SRV, 0, resolved, NULL))
            resolved(NULL, 0, 1, "out of memory", NULL);
    }
}

static double started_at;

static void handle(struct httpd_req *req, void *arg)
{
    char body[512];
    if (req->nsegs == 1 && strcmp(req->segs[0], "health") == 0) {
        /* DEMO_UNHEALTHY_FOR_S: /health fails for that long after start (-1: always), to try deployments. */
        const char *bad = getenv("DEMO_UNHEALTHY_FOR_S");
        double for_s = bad && *bad ? atof(bad) : 0;
        if (for_s < 0 || ev_now(main_loop) - started_at < for_s)
            httpd_respond(req, 503, "text/plain", "starting\n", 9);
        else
            httpd_respond(req, 200, "text/plain", "ok\n", 3);
        return;
    }
    if (req->nsegs == 1 && strcmp(req->segs[0], "api") == 0 && resolver) {
        handle_api(req);
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
    const char *port = getenv("PORT"), *bind = getenv("BIND");
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "--port") == 0 || strcmp(argv[i], "-p") == 0) && i + 1 < argc) {
            port = argv[++i];
        } else if (strcmp(argv[i], "--bind") == 0 && i + 1 < argc) {
            bind = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf(
                "usage: berth-demo-web [--port PORT] [--bind ADDR]\n\nServes GET / (\"hello from $BERTH_TASK_ID\") and GET /health "
                "on ADDR:PORT (default $BIND, else 127.0.0.1; $PORT).\n"
                "With API_SERVICE set (e.g. \"api\"), GET /api looks up API_SERVICE.$BERTH_NAMESPACE (SRV) at\n"
                "$BERTH_DNS, calls one instance's / and answers with what it said. With DEMO_UNHEALTHY_FOR_S=N,\n"
                "GET /health answers 503 for the first N seconds (-1: always), to try health-gated deployments.\n");
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
    struct ev_loop *loop = main_loop = EV_DEFAULT;
    started_at = ev_now(loop);
    char addr[64], *err = NULL;
    const char *api = getenv("API_SERVICE");
    if (api && *api) {
        const char *ns = getenv("BERTH_NAMESPACE");
        snprintf(api_name, sizeof api_name, "%s.%s", api, ns && *ns ? ns : "berth.internal");
        resolver = lookup_new(main_loop, getenv("BERTH_DNS"), &err);
        if (!resolver) {
            fprintf(stderr, "berth-demo-web: resolver: %s\n", err);
            return 1;
        }
    }
    snprintf(addr, sizeof addr, "%s:%s", bind && *bind ? bind : "127.0.0.1", port);
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
    if (resolver)
        lookup_free(resolver);
    while (waiting) {
        struct api_call *c = waiting;
        waiting = c->next;
        free(c);
    }
    free(eps);
    return 0;
}
