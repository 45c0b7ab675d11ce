/* stop.c -- stopping tasks wherever they run. A RUNNING task of a load-balanced service first
 * leaves its target groups and DNS (DEACTIVATING: the next sync drops it), and the proxy is polled
 * until every group has drained it (its in-flight requests finished); then its node stops it
 * (STOPPING): the embedded agent signals the processes, a berth-agent is told on its next heartbeat,
 * which it makes at once when woken. A task on a lost or unknown node is STOPPED at once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/alloc.h"
#include "berth/httpc.h"
#include "berth/log.h"
#include "berth/util.h"
#include "sched.h"

#define DRAIN_POLL_S 0.25
#define DRAIN_MAX_S 60.0

struct drain {
    struct list link;
    struct sched *sc;
    char id[40];
    double started;
    int wait;      /* answers still to come this round */
    bool all_gone; /* so far this round */
    unsigned round;
    ev_timer timer;
};

/* The node's part of a stop. */
static void node_stop(struct sched *sc, const char *id, const char *code, const char *reason)
{
    json_t *t = task_get(&sc->tasks, id);
    char node[128];
    snprintf(node, sizeof node, "%s", sched_str(t, "node", ""));
    if (strcmp(node, sc->node_id) == 0) {
        agent_stop(&sc->agent, id, code, reason);
    } else if (!*node || sched_node_lost(sc, node) || !sched_node_get(sc, node)) {
        task_stopped(&sc->tasks, id, code, reason);
    } else {
        task_set(&sc->tasks, id, json_pack("{s:b}", "stop", 1));
        task_stopping(&sc->tasks, id, code, reason);
        sched_node_wake(sc, node);
    }
}

static struct drain *find_drain(struct sched *sc, const char *id)
{
    struct list *it, *tmp;
    list_each(it, tmp, &sc->drains) {
        struct drain *d = list_entry(it, struct drain, link);
        if (strcmp(d->id, id) == 0)
            return d;
    }
    return NULL;
}

static void drain_free(struct drain *d)
{
    ev_timer_stop(d->sc->loop, &d->timer);
    list_del(&d->link);
    free(d);
}

void sched_stop_forget(struct sched *sc, const char *id)
{
    struct drain *d = find_drain(sc, id);
    if (d)
        drain_free(d);
}

static void drain_done(struct drain *d)
{
    struct sched *sc = d->sc;
    char id[40];
    snprintf(id, sizeof id, "%s", d->id);
    drain_free(d);
    json_t *t = task_get(&sc->tasks, id);
    if (t && !task_is(t, TASK_STOPPED)) {
        char code[64], reason[300];
        snprintf(code, sizeof code, "%s", sched_str(t, "stop_code", "UserInitiated"));
        snprintf(reason, sizeof reason, "%s", sched_str(t, "stopped_reason", "stopped"));
        node_stop(sc, id, code, reason);
    }
}

struct poll_ask {
    struct sched *sc;
    char task[40], address[80];
    unsigned round;
};

/* The proxy's answer about one group: the drain is done when the task's address has left every group
 * (the proxy drops a deregistered target once its in-flight requests finished). */
static void poll_answer(struct sched *sc, const struct httpc_response *resp, const char *err, void *arg)
{
    struct poll_ask *q = arg;
    struct drain *d = sc->stopping ? NULL : find_drain(sc, q->task);
    if (!d || d->round != q->round || d->wait == 0) {
        free(q);
        return;
    }
    json_t *g = !err && resp->status == 200 ? json_loadb(resp->body, resp->body_len, 0, NULL) : NULL, *t;
    bool present = false;
    size_t i;
    json_array_foreach(json_object_get(g, "targets"), i, t)
        present |= strcmp(sched_str(t, "address", ""), q->address) == 0;
    json_decref(g);
    free(q);
    d->all_gone &= !present && !err;
    if (--d->wait > 0)
        return;
    if (d->all_gone)
        drain_done(d);
    else
        sched_schedule(sc, &d->timer, DRAIN_POLL_S);
}

/* DEACTIVATING: asks the proxy about every group the task is in (counting the questions before
 * sending any: an answer can come back at once). */
static void drain_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct drain *d = w->data;
    struct sched *sc = d->sc;
    json_t *t = task_get(&sc->tasks, d->id);
    if (!t || util_now() - d->started > DRAIN_MAX_S) {
        if (t)
            log_warn("task %s: still draining after %.0fs, stopping it anyway", d->id, DRAIN_MAX_S);
        drain_done(d);
        return;
    }
    json_t *svc = sched_service_get(sc->store, sched_str(t, "service", NULL));
    json_t *asks = json_array(), *lb, *x;
    size_t i;
    json_array_foreach(json_object_get(svc, "load_balancers"), i, lb) {
        json_t *port = json_object_get(json_object_get(t, "ports"), sched_str(lb, "port_name", ""));
        if (!port)
            continue;
        char addr[80];
        sched_task_address(sc, t, json_integer_value(port), addr, sizeof addr);
        json_array_append_new(asks, json_pack("{s:O,s:s}", "tg", json_object_get(lb, "target_group"), "addr", addr));
    }
    d->wait = (int)json_array_size(asks);
    d->all_gone = true;
    d->round++;
    char id[40];
    snprintf(id, sizeof id, "%s", d->id);
    unsigned round = d->round;
    if (!d->wait)
        drain_done(d);
    json_array_foreach(asks, i, x) {
        struct poll_ask *q = xcalloc(1, sizeof *q);
        q->sc = sc;
        q->round = round;
        snprintf(q->task, sizeof q->task, "%s", id);
        snprintf(q->address, sizeof q->address, "%s", sched_str(x, "addr", ""));
        char path[300];
        snprintf(path, sizeof path, "/v1/target-groups/%s", sched_str(x, "tg", ""));
        sched_call(sc, &sc->proxy_admin, NULL, "GET", path, NULL, poll_answer, q);
    }
    json_decref(asks);
}

static void drain_start(struct sched *sc, const char *id)
{
    struct drain *d = xcalloc(1, sizeof *d);
    d->sc = sc;
    snprintf(d->id, sizeof d->id, "%s", id);
    d->started = util_now();
    ev_timer_init(&d->timer, drain_tick, DRAIN_POLL_S, 0);
    d->timer.data = d;
    ev_timer_start(sc->loop, &d->timer);
    list_add(&sc->drains, &d->link);
}

void sched_task_stop(struct sched *sc, const char *id, const char *code, const char *reason)
{
    json_t *t = task_get(&sc->tasks, id);
    if (!t || task_is(t, TASK_STOPPED))
        return;
    enum task_status st = task_status(t);
    if (st == TASK_PENDING || !json_is_string(json_object_get(t, "node"))) {
        task_stopped(&sc->tasks, id, code, reason);
        return;
    }
    if (st == TASK_DEACTIVATING || st == TASK_STOPPING)
        return; /* on its way */
    json_t *svc = sched_service_get(sc->store, sched_str(t, "service", NULL));
    bool drain = sc->proxy_admin.len && json_array_size(json_object_get(svc, "load_balancers")) &&
                 st == TASK_RUNNING && !sched_node_lost(sc, sched_str(t, "node", ""));
    if (!drain) {
        node_stop(sc, id, code, reason);
        return;
    }
    /* Leave the load balancer first: no new requests, in-flight ones finish (no 502s on deploys). */
    char tid[40];
    snprintf(tid, sizeof tid, "%s", id);
    task_deactivating(&sc->tasks, tid, code, reason);
    sched_sync_kick(sc);
    drain_start(sc, tid);
}

void sched_stops_resume(struct sched *sc)
{
    /* Stops that a restart interrupted: draining ones drain again, stopping ones on this node are
     * signalled again (a berth-agent still has its "stop"). */
    json_t *ids = json_array(), *t, *x;
    const char *id;
    size_t i;
    json_object_foreach(json_object_get(sched_store_state(sc->store), "tasks"), id, t)
        if (task_is(t, TASK_DEACTIVATING) || (task_is(t, TASK_STOPPING) && agent_ours(&sc->agent, t)))
            json_array_append_new(ids, json_string(id));
    json_array_foreach(ids, i, x) {
        const char *tid = json_string_value(x);
        t = task_get(&sc->tasks, tid);
        if (task_is(t, TASK_DEACTIVATING)) {
            drain_start(sc, tid);
        } else {
            char code[64], reason[300];
            snprintf(code, sizeof code, "%s", sched_str(t, "stop_code", "UserInitiated"));
            snprintf(reason, sizeof reason, "%s", sched_str(t, "stopped_reason", "stopped"));
            node_stop(sc, tid, code, reason);
        }
    }
    json_decref(ids);
}

void sched_stops_free(struct sched *sc)
{
    while (!list_empty(&sc->drains))
        drain_free(list_entry(sc->drains.next, struct drain, link));
}
