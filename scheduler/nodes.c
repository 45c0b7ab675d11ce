/* nodes.c -- the node table (container instances): the embedded node and berth-agent nodes. Node
 * records are durable (nodes/ID); what the scheduler knows of each node at run time (its last
 * heartbeat, whether it is lost, whether a wake-up call is in flight) is kept in memory, so after a
 * scheduler restart every node gets a fresh grace period. A node silent for node_lost_after_s is
 * lost: its tasks become STOPPED and their services replace them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/alloc.h"
#include "berth/log.h"
#include "berth/util.h"
#include "sched.h"

#define CHECK_S 1.0

struct node_rt {
    struct list link;
    char id[128];
    double heartbeat; /* monotonic */
    bool lost, waking;
};

static struct node_rt *rt(struct sched *sc, const char *id, bool create)
{
    struct list *it, *tmp;
    list_each(it, tmp, &sc->nodes_rt) {
        struct node_rt *n = list_entry(it, struct node_rt, link);
        if (strcmp(n->id, id) == 0)
            return n;
    }
    if (!create)
        return NULL;
    struct node_rt *n = xcalloc(1, sizeof *n);
    snprintf(n->id, sizeof n->id, "%s", id);
    n->heartbeat = util_now();
    list_add_tail(&sc->nodes_rt, &n->link);
    return n;
}

json_t *sched_node_get(struct sched *sc, const char *id)
{
    char path[300];
    snprintf(path, sizeof path, "nodes/%s", id ? id : "");
    return id ? sched_store_get(sc->store, path) : NULL;
}

bool sched_node_lost(struct sched *sc, const char *id)
{
    struct node_rt *n = id ? rt(sc, id, false) : NULL;
    return n && n->lost;
}

void sched_node_heard(struct sched *sc, const char *id)
{
    struct node_rt *n = rt(sc, id, true);
    n->heartbeat = util_now();
    if (n->lost) {
        n->lost = false;
        sched_event(sc, NULL, "node %s is back", id);
        sched_kick(sc);
    }
}

double sched_node_silence_s(struct sched *sc, const char *id)
{
    struct node_rt *n = rt(sc, id, false);
    return n ? util_now() - n->heartbeat : -1;
}

bool sched_task_on_leaving_node(struct sched *sc, json_t *task)
{
    const char *node = json_string_value(json_object_get(task, "node"));
    if (!node)
        return false;
    json_t *n = sched_node_get(sc, node);
    return !n || sched_is(n, "status", "DRAINING") || sched_node_lost(sc, node);
}

void sched_task_address(struct sched *sc, json_t *task, long long port, char *out, size_t len)
{
    json_t *n = sched_node_get(sc, json_string_value(json_object_get(task, "node")));
    const char *ip =
        json_is_string(json_object_get(n, "address")) ? json_string_value(json_object_get(n, "address")) : "127.0.0.1";
    snprintf(out, len, strchr(ip, ':') ? "[%s]:%lld" : "%s:%lld", ip, port);
}

/* ---- wake-ups: a POST to an agent's API, one at a time per node ---- */

static void wake_done(struct sched *sc, const struct httpc_response *resp, const char *err, void *arg)
{
    char *node = arg;
    struct node_rt *n = sc->stopping ? NULL : rt(sc, node, false);
    if (n)
        n->waking = false;
    free(node);
}

void sched_node_wake(struct sched *sc, const char *node)
{
    const char *api = json_string_value(json_object_get(sched_node_get(sc, node), "agent_api"));
    struct net_addr to;
    struct node_rt *n = rt(sc, node, true);
    if (!api || n->waking || net_parse_url(api, &to) < 0)
        return;
    n->waking = true;
    sched_call(sc, &to, node, "POST", "/v1/wake", NULL, wake_done, xstrdup(node));
}

/* ---- lost nodes ---- */

/* Stops the tasks of a node that stopped sending heartbeats (their services replace them). */
static void node_lost(struct sched *sc, struct node_rt *n, double silent)
{
    n->lost = true;
    sched_event(sc, NULL, "node %s lost: no heartbeat for %.0fs; its tasks are replaced", n->id, silent);
    json_t *ids = json_array(), *t, *x;
    const char *id;
    size_t i;
    json_object_foreach(json_object_get(sched_store_state(sc->store), "tasks"), id, t)
        if (sched_is(t, "node", n->id) && !task_is(t, TASK_STOPPED))
            json_array_append_new(ids, json_string(id));
    char reason[200];
    snprintf(reason, sizeof reason, "Node %s stopped sending heartbeats", n->id);
    json_array_foreach(ids, i, x)
        task_stopped(&sc->tasks, json_string_value(x), "NodeLost", reason);
    json_decref(ids);
    sched_kick(sc);
}

static void check_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct sched *sc = w->data;
    json_t *nd;
    const char *id;
    double now = util_now();
    json_object_foreach(json_object_get(sched_store_state(sc->store), "nodes"), id, nd) {
        if (strcmp(id, sc->node_id) == 0)
            continue;
        struct node_rt *n = rt(sc, id, true); /* known from before a restart: a fresh grace period */
        if (!n->lost && now - n->heartbeat > sc->node_lost_after_s)
            node_lost(sc, n, now - n->heartbeat);
    }
}

void sched_nodes_start(struct sched *sc)
{
    ev_timer_init(&sc->nodes_timer, check_tick, CHECK_S, CHECK_S);
    sc->nodes_timer.data = sc;
    ev_timer_start(sc->loop, &sc->nodes_timer);
    if (!*sc->node_id) /* agent.embedded false: berth-agent nodes only */
        return;
    /* The embedded node: capacity from the config; its status (DRAINING) survives restarts. */
    json_t *old = sched_node_get(sc, sc->node_id);
    json_t *n = json_pack("{s:s,s:i,s:i,s:O,s:[i,i],s:s,s:s,s:s,s:s}", "id", sc->node_id, "cpu", sc->cpu, "memory_mib",
                          sc->memory_mib, "attributes", sc->attributes, "port_range", sc->port_lo, sc->port_hi,
                          "address", "127.0.0.1", "agent", "embedded", "status",
                          old && sched_is(old, "status", "DRAINING") ? "DRAINING" : "ACTIVE", "cgroups",
                          agent_cgroups());
    if (ctr_engine(&sc->agent))
        json_object_set_new(n, "container_engine", json_string(ctr_engine(&sc->agent)));
    else if (ctr_engine_error(&sc->agent))
        json_object_set_new(n, "container_engine_error", json_string(ctr_engine_error(&sc->agent)));
    if (old && json_object_get(old, "registered_at"))
        json_object_set(n, "registered_at", json_object_get(old, "registered_at"));
    else {
        char ts[40];
        util_rfc3339(util_wall(), ts, sizeof ts);
        json_object_set_new(n, "registered_at", json_string(ts));
    }
    char path[300];
    snprintf(path, sizeof path, "nodes/%s", sc->node_id);
    if (old && json_equal(old, n))
        json_decref(n);
    else
        sched_store_put(sc->store, path, n, NULL, NULL);
}

void sched_nodes_stop(struct sched *sc)
{
    ev_timer_stop(sc->loop, &sc->nodes_timer);
    while (!list_empty(&sc->nodes_rt)) {
        struct node_rt *n = list_entry(sc->nodes_rt.next, struct node_rt, link);
        list_del(&n->link);
        free(n);
    }
}
