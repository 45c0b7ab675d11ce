/* calls.c -- the scheduler's requests to the data plane's admin APIs and to agents: one list of the
 * calls in flight (cancelled at shutdown), the right token for each destination, one callback each. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/alloc.h"
#include "berth/auth.h"
#include "berth/httpc.h"
#include "sched.h"

struct call {
    struct list link;
    struct httpc_req *req;
    struct sched *sc;
    sched_call_cb cb;
    void *arg;
};

static void done(const struct httpc_response *resp, const char *err, void *arg)
{
    struct call *c = arg;
    list_del(&c->link);
    c->cb(c->sc, resp, err, c->arg);
    free(c);
}

void sched_call(struct sched *sc, const struct net_addr *to, const char *node, const char *method, const char *path,
                const char *body, sched_call_cb cb, void *arg)
{
    sched_call_within(sc, 5.0, to, node, method, path, body, cb, arg);
}

void sched_call_within(struct sched *sc, double timeout_s, const struct net_addr *to, const char *node,
                       const char *method, const char *path, const char *body, sched_call_cb cb, void *arg)
{
    struct call *c = xcalloc(1, sizeof *c);
    c->sc = sc;
    c->cb = cb;
    c->arg = arg;
    list_add(&sc->calls, &c->link);
    char node_token[65] = "";
    if (node && sc->auth && sc->auth->n)
        sched_node_token(sc, node, node_token);
    const char *bearer = node                  ? (*node_token ? node_token : NULL)
                         : to == &sc->proxy_admin ? sc->proxy_admin_token
                         : to == &sc->dns_admin   ? sc->dns_admin_token
                                                  : NULL;
    c->req = httpc_request(sc->loop, to, method, "127.0.0.1", bearer, path, "application/json", body,
                           body ? strlen(body) : 0, timeout_s, done, c);
    if (!c->req)
        done(NULL, "cannot connect", c);
}

void sched_calls_stop(struct sched *sc)
{
    sc->stopping = true;
    while (!list_empty(&sc->calls)) {
        struct call *c = list_entry(sc->calls.next, struct call, link);
        list_del(&c->link);
        httpc_cancel(c->req);
        c->cb(sc, NULL, "the scheduler is stopping", c->arg);
        free(c);
    }
}
