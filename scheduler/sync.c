/* sync.c -- data plane: registers running tasks in the proxy's target groups and in DNS, and drains on stop.
 * Level-triggered: every sync PUTs each group's and each DNS service's full member list, so a restarted
 * proxy or DNS server is repopulated within a sync period. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/auth.h"
#include "berth/httpc.h"
#include "berth/log.h"
#include "sched.h"

#define SYNC_PERIOD_S 3.0

struct call {
    struct call *next, *prev; /* calls in flight, cancelled at shutdown */
    struct httpc_req *req;
    struct sched *sc;
    char method[8], path[512];
    char *body;
    int kind; /* 0: plain, 1: target list (404 creates the group), 2: drain poll, 3: group created (add rules) */
    sched_call_cb cb; /* set: the answer goes to cb (sched_call) */
    void *arg;
    char tg[128], task[40], address[64], host_rule_service[128];
    char bearer[65]; /* a node token for calls to an agent */
};

static void send_call(struct sched *sc, const struct net_addr *to, struct call *c);

static bool rule_priority_for(const char *service, int *prio)
{
    unsigned h = 2166136261u;
    for (const char *p = service; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    *prio = 1000 + (int)(h % 48000);
    return true;
}

static void unlink_call(struct call *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else if (c->sc->calls == c)
        c->sc->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
}

static void done(const struct httpc_response *resp, const char *err, void *arg)
{
    struct call *c = arg;
    struct sched *sc = c->sc;
    unlink_call(c);
    if (c->cb) {
        c->cb(sc, resp, err, c->arg);
    } else if (err) {
        log_debug("data plane %s %s: %s", c->method, c->path, err);
    } else if (c->kind == 1 && resp->status == 404) {
        /* The group does not exist (new, or the proxy restarted): create it with the list. */
        struct call *n = calloc(1, sizeof *n);
        *n = *c;
        n->kind = 3;
        snprintf(n->path, sizeof n->path, "/v1/target-groups/%s", c->tg);
        json_t *body = json_loads(c->body, 0, NULL), *lb;
        size_t i;
        json_t *svc = json_object_get(json_object_get(sched_store_state(sc->store), "services"), c->host_rule_service);
        json_array_foreach(json_object_get(svc, "load_balancers"), i, lb)
            if (strcmp(json_string_value(json_object_get(lb, "target_group")), c->tg) == 0 &&
                json_object_get(lb, "health_check"))
                json_object_set(body, "health_check", json_object_get(lb, "health_check"));
        n->body = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        send_call(sc, &sc->proxy_admin, n);
    } else if (c->kind == 3 && resp->status < 300) {
        /* The group exists now: add the service's host rule pointing at it. */
        if (c->host_rule_service[0]) {
            json_t *svc =
                json_object_get(json_object_get(sched_store_state(sc->store), "services"), c->host_rule_service);
            json_t *lb;
            size_t i;
            json_array_foreach(json_object_get(svc, "load_balancers"), i, lb) {
                if (strcmp(json_string_value(json_object_get(lb, "target_group")), c->tg) != 0 ||
                    !json_object_get(lb, "host_header"))
                    continue;
                int prio;
                rule_priority_for(c->host_rule_service, &prio);
                struct call *r = calloc(1, sizeof *r);
                r->sc = sc;
                snprintf(r->method, sizeof r->method, "PUT");
                snprintf(r->path, sizeof r->path, "/v1/listeners/%s/rules/%d", sc->proxy_listener, prio);
                json_t *rule =
                    json_pack("{s:{s:O},s:{s:[{s:s}]}}", "conditions", "host_header",
                              json_object_get(lb, "host_header"), "action", "forward", "target_group", c->tg);
                r->body = json_dumps(rule, JSON_COMPACT);
                json_decref(rule);
                send_call(sc, &sc->proxy_admin, r);
            }
        }
    } else if (c->kind == 2) {
        /* Drain poll: done when the task's address has left the group (the proxy drops a
         * deregistered target once its in-flight requests finished). */
        json_t *g = resp->status == 200 ? json_loadb(resp->body, resp->body_len, 0, NULL) : NULL;
        bool present = false;
        json_t *t;
        size_t i;
        json_array_foreach(json_object_get(g, "targets"), i, t)
            present |= strcmp(json_string_value(json_object_get(t, "address")), c->address) == 0;
        json_decref(g);
        sched_task_drained(sc, c->task, !present);
    } else if (resp->status >= 300) {
        log_warn("data plane %s %s: HTTP %d %.*s", c->method, c->path, resp->status, (int)resp->body_len, resp->body);
    }
    free(c->body);
    free(c);
}

static void send_call(struct sched *sc, const struct net_addr *to, struct call *c)
{
    c->sc = sc;
    c->prev = NULL;
    c->next = sc->calls;
    if (sc->calls)
        sc->calls->prev = c;
    sc->calls = c;
    const char *bearer = to == &sc->proxy_admin ? sc->proxy_admin_token
                         : to == &sc->dns_admin ? sc->dns_admin_token
                                                : c->bearer;
    c->req = httpc_request(sc->loop, to, c->method, "127.0.0.1", bearer, c->path, "application/json", c->body,
                           c->body ? strlen(c->body) : 0, 5.0, done, c);
    if (!c->req)
        done(NULL, "cannot connect", c);
}

void sched_call(struct sched *sc, const struct net_addr *to, const char *node, const char *method, const char *path,
                sched_call_cb cb, void *arg)
{
    struct call *c = calloc(1, sizeof *c);
    if (node && sc->auth && sc->auth->n)
        sched_node_token(sc, node, c->bearer);
    snprintf(c->method, sizeof c->method, "%s", method);
    snprintf(c->path, sizeof c->path, "%s", path);
    c->cb = cb;
    c->arg = arg;
    send_call(sc, to, c);
}

void sched_drain_poll(struct sched *sc, const char *task, const char *tg, const char *address)
{
    struct call *c = calloc(1, sizeof *c);
    snprintf(c->method, sizeof c->method, "GET");
    snprintf(c->path, sizeof c->path, "/v1/target-groups/%s", tg);
    c->kind = 2;
    snprintf(c->task, sizeof c->task, "%s", task);
    snprintf(c->address, sizeof c->address, "%s", address);
    send_call(sc, &sc->proxy_admin, c);
}

/* A task that should receive traffic: running and not on its way out. */
static bool serving(json_t *t)
{
    return strcmp(json_string_value(json_object_get(t, "last_status")), "RUNNING") == 0 &&
           strcmp(json_string_value(json_object_get(t, "desired_status")), "RUNNING") == 0;
}

static void sync_now(struct sched *sc)
{
    json_t *state = sched_store_state(sc->store);
    json_t *tasks = json_object_get(state, "tasks"), *svc, *t, *x;
    const char *name, *id;
    size_t i;
    json_object_foreach(json_object_get(state, "services"), name, svc) {
        if (sc->proxy_admin.len) {
            json_array_foreach(json_object_get(svc, "load_balancers"), i, x) {
                const char *tg = json_string_value(json_object_get(x, "target_group"));
                const char *pn = json_string_value(json_object_get(x, "port_name"));
                json_t *list = json_array();
                json_object_foreach(tasks, id, t) {
                    const char *ts = json_string_value(json_object_get(t, "service"));
                    json_t *port = json_object_get(json_object_get(t, "ports"), pn);
                    if (ts && strcmp(ts, name) == 0 && serving(t) && port) {
                        char addr[80];
                        sched_task_address(sc, t, json_integer_value(port), addr, sizeof addr);
                        json_array_append_new(list, json_pack("{s:s,s:s}", "address", addr, "id", id));
                    }
                }
                struct call *c = calloc(1, sizeof *c);
                snprintf(c->method, sizeof c->method, "PUT");
                snprintf(c->path, sizeof c->path, "/v1/target-groups/%s/targets", tg);
                snprintf(c->tg, sizeof c->tg, "%s", tg);
                snprintf(c->host_rule_service, sizeof c->host_rule_service, "%s", name);
                c->kind = 1;
                json_t *body = json_pack("{s:o}", "targets", list);
                c->body = json_dumps(body, JSON_COMPACT);
                json_decref(body);
                send_call(sc, &sc->proxy_admin, c);
            }
        }
        if (sc->dns_admin.len) {
            json_array_foreach(json_object_get(svc, "service_registries"), i, x) {
                const char *pn = json_string_value(json_object_get(x, "port_name"));
                json_t *list = json_array();
                json_object_foreach(tasks, id, t) {
                    const char *ts = json_string_value(json_object_get(t, "service"));
                    json_t *ports = json_object_get(t, "ports");
                    const char *pk = pn;
                    if (!pk) { /* default: the task's first port */
                        void *it = json_object_iter(ports);
                        pk = it ? json_object_iter_key(it) : NULL;
                    }
                    json_t *port = pk ? json_object_get(ports, pk) : NULL;
                    if (ts && strcmp(ts, name) == 0 && serving(t)) {
                        /* The node's address: "ip:port" without the port. */
                        char addr[80];
                        sched_task_address(sc, t, 0, addr, sizeof addr);
                        char *colon = strrchr(addr, ':');
                        *colon = 0;
                        const char *ip = addr[0] == '[' ? addr + 1 : addr;
                        if (addr[0] == '[')
                            colon[-1] = 0;
                        json_array_append_new(list, json_pack("{s:s,s:s,s:I,s:s,s:b}", "id", id, "address", ip, "port",
                                                              port ? json_integer_value(port) : 0, "port_name",
                                                              pk ? pk : "http", "healthy", 1));
                    }
                }
                struct call *c = calloc(1, sizeof *c);
                snprintf(c->method, sizeof c->method, "PUT");
                snprintf(c->path, sizeof c->path, "/v1/namespaces/%s/services/%s/instances",
                         json_string_value(json_object_get(x, "namespace")),
                         json_string_value(json_object_get(x, "name")));
                json_t *body = json_pack("{s:o}", "instances", list);
                c->body = json_dumps(body, JSON_COMPACT);
                json_decref(body);
                send_call(sc, &sc->dns_admin, c);
            }
        }
    }
}

static void sync_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct sched *sc = w->data;
    sync_now(sc);
    w->repeat = SYNC_PERIOD_S;
    ev_timer_again(loop, w);
}

void sched_sync_kick(struct sched *sc)
{
    if (!sc->proxy_admin.len && !sc->dns_admin.len)
        return;
    sc->sync_timer.repeat = 0.005;
    ev_timer_again(sc->loop, &sc->sync_timer);
}

void sched_sync_start(struct sched *sc)
{
    ev_init(&sc->sync_timer, sync_tick);
    sc->sync_timer.data = sc;
    if (sc->proxy_admin.len || sc->dns_admin.len)
        sched_sync_kick(sc);
}

void sched_sync_stop(struct sched *sc)
{
    sc->stopping = true;
    ev_timer_stop(sc->loop, &sc->sync_timer);
    while (sc->calls) {
        struct call *c = sc->calls;
        unlink_call(c);
        httpc_cancel(c->req);
        if (c->cb)
            c->cb(sc, NULL, "the scheduler is stopping", c->arg);
        free(c->body);
        free(c);
    }
}
