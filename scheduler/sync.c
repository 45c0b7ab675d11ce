/* sync.c -- data plane: registers running tasks in the proxy's target groups and in DNS.
 * Level-triggered: every sync PUTs each group's and each DNS service's full member list, so a restarted
 * proxy or DNS server is repopulated within a sync period. A group the proxy does not know is created
 * with the list (and the load balancer's health check), then the service's host rule is added. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/alloc.h"
#include "berth/httpc.h"
#include "berth/log.h"
#include "sched.h"

#define SYNC_PERIOD_S 3.0

/* What a call needs to go on once answered. */
struct group_call {
    char service[128], tg[128];
    char *body; /* the target list sent */
};

static void group_call_free(struct group_call *g)
{
    free(g->body);
    free(g);
}

/* The load balancers of <service> (borrowed array). */
static json_t *load_balancers(struct sched *sc, const char *service)
{
    return json_object_get(sched_service_get(sc->store, service),
                           "load_balancers");
}

static void logged(struct sched *sc, const struct httpc_response *resp, const char *err, void *arg)
{
    char *what = arg;
    if (err)
        log_debug("data plane %s: %s", what, err);
    else if (resp->status >= 300)
        log_warn("data plane %s: HTTP %d %.*s", what, resp->status, (int)resp->body_len, resp->body);
    free(what);
}

/* A rule's priority from the service's name (FNV-1a), so each service keeps its own. */
static int rule_priority(const char *service)
{
    unsigned h = 2166136261u;
    for (const char *p = service; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return 1000 + (int)(h % 48000);
}

/* The group exists now: add the service's host rule pointing at it. */
static void group_created(struct sched *sc, const struct httpc_response *resp, const char *err, void *arg)
{
    struct group_call *g = arg;
    if (err || resp->status >= 300) {
        char what[200];
        snprintf(what, sizeof what, "PUT /v1/target-groups/%s", g->tg);
        logged(sc, resp, err, xstrdup(what));
        group_call_free(g);
        return;
    }
    json_t *lb;
    size_t i;
    json_array_foreach(load_balancers(sc, g->service), i, lb) {
        if (strcmp(json_string_value(json_object_get(lb, "target_group")), g->tg) != 0 ||
            !json_object_get(lb, "host_header"))
            continue;
        char path[300];
        snprintf(path, sizeof path, "/v1/listeners/%s/rules/%d", sc->proxy_listener, rule_priority(g->service));
        json_t *rule = json_pack("{s:{s:O},s:{s:[{s:s}]}}", "conditions", "host_header",
                                 json_object_get(lb, "host_header"), "action", "forward", "target_group", g->tg);
        char *body = json_dumps(rule, JSON_COMPACT);
        json_decref(rule);
        sched_call(sc, &sc->proxy_admin, NULL, "PUT", path, body, logged, xstrdup(path));
        free(body);
    }
    group_call_free(g);
}

/* The proxy answered a target list: a 404 means the group does not exist (new, or the proxy
 * restarted): create it with the list. */
static void targets_answer(struct sched *sc, const struct httpc_response *resp, const char *err, void *arg)
{
    struct group_call *g = arg;
    if (err || resp->status != 404) {
        char what[200];
        snprintf(what, sizeof what, "PUT /v1/target-groups/%s/targets", g->tg);
        logged(sc, resp, err, xstrdup(what));
        group_call_free(g);
        return;
    }
    if (sc->stopping) {
        group_call_free(g);
        return;
    }
    json_t *body = json_loads(g->body, 0, NULL), *lb;
    size_t i;
    json_array_foreach(load_balancers(sc, g->service), i, lb)
        if (strcmp(json_string_value(json_object_get(lb, "target_group")), g->tg) == 0 &&
            json_object_get(lb, "health_check"))
            json_object_set(body, "health_check", json_object_get(lb, "health_check"));
    char *text = json_dumps(body, JSON_COMPACT), path[300];
    json_decref(body);
    snprintf(path, sizeof path, "/v1/target-groups/%s", g->tg);
    sched_call(sc, &sc->proxy_admin, NULL, "PUT", path, text, group_created, g);
    free(text);
}

/* A task that should receive traffic: running and not on its way out. */
static bool serving(json_t *t)
{
    return task_is(t, TASK_RUNNING) && task_wanted(t);
}

static void sync_groups(struct sched *sc, const char *name, json_t *svc, json_t *tasks)
{
    json_t *x, *t;
    const char *id;
    size_t i;
    json_array_foreach(json_object_get(svc, "load_balancers"), i, x) {
        const char *tg = json_string_value(json_object_get(x, "target_group"));
        const char *pn = json_string_value(json_object_get(x, "port_name"));
        json_t *list = json_array();
        json_object_foreach(tasks, id, t) {
            json_t *port = json_object_get(json_object_get(t, "ports"), pn);
            if (sched_is(t, "service", name) && serving(t) && port) {
                char addr[80];
                sched_task_address(sc, t, json_integer_value(port), addr, sizeof addr);
                json_array_append_new(list, json_pack("{s:s,s:s}", "address", addr, "id", id));
            }
        }
        struct group_call *g = xcalloc(1, sizeof *g);
        snprintf(g->tg, sizeof g->tg, "%s", tg);
        snprintf(g->service, sizeof g->service, "%s", name);
        json_t *body = json_pack("{s:o}", "targets", list);
        g->body = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        char path[300];
        snprintf(path, sizeof path, "/v1/target-groups/%s/targets", tg);
        sched_call(sc, &sc->proxy_admin, NULL, "PUT", path, g->body, targets_answer, g);
    }
}

static void sync_dns(struct sched *sc, const char *name, json_t *svc, json_t *tasks)
{
    json_t *x, *t;
    const char *id;
    size_t i;
    json_array_foreach(json_object_get(svc, "service_registries"), i, x) {
        const char *pn = json_string_value(json_object_get(x, "port_name"));
        json_t *list = json_array();
        json_object_foreach(tasks, id, t) {
            if (!sched_is(t, "service", name) || !serving(t))
                continue;
            json_t *ports = json_object_get(t, "ports");
            const char *pk = pn;
            if (!pk) { /* default: the task's first port */
                void *it = json_object_iter(ports);
                pk = it ? json_object_iter_key(it) : NULL;
            }
            json_t *port = pk ? json_object_get(ports, pk) : NULL;
            /* The node's address: "ip:port" without the port (and an IPv6 address without brackets). */
            char addr[80];
            sched_task_address(sc, t, 0, addr, sizeof addr);
            char *colon = strrchr(addr, ':');
            *colon = 0;
            const char *ip = addr[0] == '[' ? addr + 1 : addr;
            if (addr[0] == '[')
                colon[-1] = 0;
            json_array_append_new(list, json_pack("{s:s,s:s,s:I,s:s,s:b}", "id", id, "address", ip, "port",
                                                  port ? json_integer_value(port) : 0, "port_name", pk ? pk : "http",
                                                  "healthy", 1));
        }
        char path[400];
        snprintf(path, sizeof path, "/v1/namespaces/%s/services/%s/instances",
                 json_string_value(json_object_get(x, "namespace")), json_string_value(json_object_get(x, "name")));
        json_t *body = json_pack("{s:o}", "instances", list);
        char *text = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        sched_call(sc, &sc->dns_admin, NULL, "PUT", path, text, logged, xstrdup(path));
        free(text);
    }
}

void sched_sync_retire(struct sched *sc, const char *name, json_t *svc)
{
    json_t *x;
    size_t i;
    char path[400];
    json_array_foreach(sc->proxy_admin.len ? json_object_get(svc, "load_balancers") : NULL, i, x) {
        snprintf(path, sizeof path, "/v1/target-groups/%s/targets", json_string_value(json_object_get(x, "target_group")));
        sched_call(sc, &sc->proxy_admin, NULL, "PUT", path, "{\"targets\":[]}", logged, xstrdup(path));
    }
    json_array_foreach(sc->dns_admin.len ? json_object_get(svc, "service_registries") : NULL, i, x) {
        snprintf(path, sizeof path, "/v1/namespaces/%s/services/%s", json_string_value(json_object_get(x, "namespace")),
                 json_string_value(json_object_get(x, "name")));
        sched_call(sc, &sc->dns_admin, NULL, "DELETE", path, NULL, logged, xstrdup(path));
    }
    log_info("service %s drained: its target groups emptied, its DNS services deleted", name);
}

static void sync_pass(struct sched *sc)
{
    json_t *state = sched_store_state(sc->store), *svc;
    json_t *tasks = json_object_get(state, "tasks");
    const char *name;
    json_object_foreach(json_object_get(state, "services"), name, svc) {
        if (sc->proxy_admin.len)
            sync_groups(sc, name, svc, tasks);
        if (sc->dns_admin.len)
            sync_dns(sc, name, svc, tasks);
    }
    sched_schedule(sc, &sc->sync_timer, SYNC_PERIOD_S);
}

void sched_sync_start(struct sched *sc)
{
    sc->sync_pass = sync_pass;
    sched_sync_kick(sc);
}

void sched_sync_stop(struct sched *sc)
{
    sc->sync_pass = NULL;
    ev_timer_stop(sc->loop, &sc->sync_timer);
}
