/* nodes.c -- container instances: the embedded node and berth-agent nodes (registration, heartbeats,
 * lost nodes, draining), placement of PENDING tasks on them, and stopping tasks wherever they run
 * (draining them from their load balancers first).
 *
 * A berth-agent heartbeat carries the agent's view of its tasks; the scheduler merges what changed
 * and answers with every task it wants on that node (new ones in full, and a "stop" flag for those
 * to stop). Node state is durable (nodes/ID); heartbeat times are kept in memory, so after a
 * scheduler restart every node gets a fresh grace period. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/auth.h"
#include "berth/httpc.h"
#include "berth/httpd.h"
#include "berth/log.h"
#include "berth/util.h"
#include "placement.h"
#include "sched.h"

#define CHECK_S 1.0
#define DRAIN_POLL_S 0.25
#define DRAIN_MAX_S 60.0

struct sched_drain {
    struct sched_drain *next;
    struct sched *sc;
    char id[40];
    double started;
    int wait;
    bool all_gone;
    ev_timer timer;
};

static json_t *get(struct sched *sc, const char *kind, const char *id)
{
    char path[300];
    snprintf(path, sizeof path, "%s/%s", kind, id);
    return sched_store_get(sc->store, path);
}

static bool is(json_t *o, const char *key, const char *value)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v && strcmp(v, value) == 0;
}

static bool lost(struct sched *sc, const char *node)
{
    return json_is_true(json_object_get(sc->lost, node));
}

bool sched_task_on_leaving_node(struct sched *sc, json_t *task)
{
    const char *node = json_string_value(json_object_get(task, "node"));
    if (!node)
        return false;
    json_t *n = get(sc, "nodes", node);
    return !n || is(n, "status", "DRAINING") || lost(sc, node);
}

void sched_task_address(struct sched *sc, json_t *task, long long port, char *out, size_t len)
{
    json_t *n =
        get(sc, "nodes",
            json_is_string(json_object_get(task, "node")) ? json_string_value(json_object_get(task, "node")) : "");
    const char *ip =
        json_is_string(json_object_get(n, "address")) ? json_string_value(json_object_get(n, "address")) : "127.0.0.1";
    snprintf(out, len, strchr(ip, ':') ? "[%s]:%lld" : "%s:%lld", ip, port);
}

/* ---- stopping tasks ---- */

static void mark_stopped(struct sched *sc, const char *id, const char *code, const char *reason)
{
    char ts[40];
    util_rfc3339(util_wall(), ts, sizeof ts);
    sched_task_update(sc, id,
                      json_pack("{s:s,s:s,s:s,s:s,s:s}", "last_status", "STOPPED", "desired_status", "STOPPED",
                                "stop_code", code, "stopped_reason", reason, "stopped_at", ts));
    sched_task_ended(sc, id);
}

/* Asks berth-agent <node> to heartbeat now (it has work): a POST to its API, one at a time per node. */
static void wake_done(struct sched *sc, const struct httpc_response *resp, const char *err, void *arg)
{
    char *node = arg;
    if (!sc->stopping)
        json_object_del(sc->waking, node);
    free(node);
}

static void wake(struct sched *sc, const char *node)
{
    json_t *n = get(sc, "nodes", node);
    const char *api = json_string_value(json_object_get(n, "agent_api"));
    struct net_addr to;
    if (!api || json_object_get(sc->waking, node) || net_parse_url(api, &to) < 0)
        return;
    json_object_set_new(sc->waking, node, json_true());
    sched_call(sc, &to, node, "POST", "/v1/wake", wake_done, strdup(node));
}

/* The node's part: the embedded agent signals the processes; a berth-agent is told on its next
 * heartbeat, which it makes at once when woken. */
static void node_stop(struct sched *sc, const char *id)
{
    json_t *t = get(sc, "tasks", id);
    char code[40], reason[300], node[80];
    snprintf(code, sizeof code, "%s",
             json_is_string(json_object_get(t, "stop_code")) ? json_string_value(json_object_get(t, "stop_code"))
                                                             : "UserInitiated");
    snprintf(reason, sizeof reason, "%s",
             json_is_string(json_object_get(t, "stopped_reason"))
                 ? json_string_value(json_object_get(t, "stopped_reason"))
                 : "stopped");
    snprintf(node, sizeof node, "%s",
             json_is_string(json_object_get(t, "node")) ? json_string_value(json_object_get(t, "node")) : "");
    if (strcmp(node, sc->node_id) == 0) {
        sched_agent_stop(sc, id, code, reason);
    } else if (!*node || lost(sc, node) || !get(sc, "nodes", node)) {
        mark_stopped(sc, id, code, reason);
    } else {
        char ts[40];
        util_rfc3339(util_wall(), ts, sizeof ts);
        sched_task_update(sc, id,
                          json_pack("{s:s,s:s,s:b,s:s}", "desired_status", "STOPPED", "last_status", "STOPPING", "stop",
                                    1, "stopping_at", ts));
        wake(sc, node);
    }
}

static struct sched_drain **find_drain(struct sched *sc, const char *id)
{
    struct sched_drain **pp = &sc->drains;
    while (*pp && strcmp((*pp)->id, id) != 0)
        pp = &(*pp)->next;
    return pp;
}

/* Forgets the drain of task <id>, if there is one. */
static void drain_cancel(struct sched *sc, const char *id)
{
    struct sched_drain **pp = find_drain(sc, id), *d = *pp;
    if (!d)
        return;
    ev_timer_stop(sc->loop, &d->timer);
    *pp = d->next;
    free(d);
}

static void drain_done(struct sched_drain *d)
{
    struct sched *sc = d->sc;
    char id[40];
    snprintf(id, sizeof id, "%s", d->id);
    drain_cancel(sc, id);
    char ts[40];
    util_rfc3339(util_wall(), ts, sizeof ts);
    json_t *t = get(sc, "tasks", id);
    if (t && !is(t, "last_status", "STOPPED")) {
        sched_task_update(sc, id, json_pack("{s:s,s:s}", "last_status", "STOPPING", "stopping_at", ts));
        node_stop(sc, id);
    }
}

/* DEACTIVATING: the task has left the proxy's groups and DNS (sync); poll the proxy until each group
 * has drained it, then stop it. */
static void drain_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct sched_drain *d = w->data;
    struct sched *sc = d->sc;
    json_t *t = get(sc, "tasks", d->id);
    if (!t || util_now() - d->started > DRAIN_MAX_S) {
        if (t)
            log_warn("task %s: still draining after %.0fs, stopping it anyway", d->id, DRAIN_MAX_S);
        drain_done(d);
        return;
    }
    json_t *svc =
        get(sc, "services",
            json_is_string(json_object_get(t, "service")) ? json_string_value(json_object_get(t, "service")) : "");
    /* Ask about every group the task is in; count the questions before sending any (an answer can
     * come back at once). */
    json_t *asks = json_array(), *lb, *x;
    size_t i;
    json_array_foreach(json_object_get(svc, "load_balancers"), i, lb) {
        json_t *port =
            json_object_get(json_object_get(t, "ports"), json_string_value(json_object_get(lb, "port_name")));
        if (!port)
            continue;
        char addr[80];
        sched_task_address(sc, t, json_integer_value(port), addr, sizeof addr);
        json_array_append_new(asks, json_pack("{s:O,s:s}", "tg", json_object_get(lb, "target_group"), "addr", addr));
    }
    d->wait = (int)json_array_size(asks);
    d->all_gone = true;
    char id[40];
    snprintf(id, sizeof id, "%s", d->id);
    if (!d->wait)
        drain_done(d);
    json_array_foreach(asks, i, x)
        sched_drain_poll(sc, id, json_string_value(json_object_get(x, "tg")),
                         json_string_value(json_object_get(x, "addr")));
    json_decref(asks);
}

void sched_task_drained(struct sched *sc, const char *task, bool gone)
{
    struct sched_drain *d = *find_drain(sc, task);
    if (!d || d->wait == 0)
        return;
    d->all_gone &= gone;
    if (--d->wait > 0)
        return;
    if (d->all_gone) {
        drain_done(d);
    } else {
        ev_timer_set(&d->timer, DRAIN_POLL_S, 0);
        ev_timer_start(sc->loop, &d->timer);
    }
}

static void drain_start(struct sched *sc, const char *id)
{
    struct sched_drain *d = calloc(1, sizeof *d);
    d->sc = sc;
    snprintf(d->id, sizeof d->id, "%s", id);
    d->started = util_now();
    ev_timer_init(&d->timer, drain_tick, DRAIN_POLL_S, 0);
    d->timer.data = d;
    ev_timer_start(sc->loop, &d->timer);
    d->next = sc->drains;
    sc->drains = d;
}

void sched_task_stop(struct sched *sc, const char *id, const char *stop_code, const char *reason)
{
    json_t *t = get(sc, "tasks", id);
    if (!t || is(t, "last_status", "STOPPED"))
        return;
    if (is(t, "last_status", "PENDING") || !json_is_string(json_object_get(t, "node"))) {
        mark_stopped(sc, id, stop_code, reason);
        return;
    }
    if (is(t, "last_status", "DEACTIVATING") || is(t, "last_status", "STOPPING"))
        return; /* on its way */
    json_t *svc =
        get(sc, "services",
            json_is_string(json_object_get(t, "service")) ? json_string_value(json_object_get(t, "service")) : "");
    bool drain = sc->proxy_admin.len && json_array_size(json_object_get(svc, "load_balancers")) &&
                 is(t, "last_status", "RUNNING") && !lost(sc, json_string_value(json_object_get(t, "node")));
    sched_task_update(
        sc, id,
        json_pack("{s:s,s:s,s:s}", "desired_status", "STOPPED", "stop_code", stop_code, "stopped_reason", reason));
    if (!drain) {
        node_stop(sc, id);
        return;
    }
    /* Leave the load balancer first: no new requests, in-flight ones finish (no 502s on deploys). */
    sched_task_update(sc, id, json_pack("{s:s}", "last_status", "DEACTIVATING"));
    sched_sync_kick(sc);
    drain_start(sc, id);
}

void sched_nodes_resume(struct sched *sc)
{
    /* Stops that a restart interrupted: draining ones drain again, stopping ones on this node are
     * signalled again (a berth-agent still has its "stop"). */
    json_t *ids = json_array(), *t, *x;
    const char *id;
    size_t i;
    json_object_foreach(json_object_get(sched_store_state(sc->store), "tasks"), id, t)
        if (is(t, "last_status", "DEACTIVATING") || (is(t, "last_status", "STOPPING") && is(t, "node", sc->node_id)))
            json_array_append_new(ids, json_string(id));
    json_array_foreach(ids, i, x) {
        const char *tid = json_string_value(x);
        if (is(get(sc, "tasks", tid), "last_status", "DEACTIVATING"))
            drain_start(sc, tid);
        else
            node_stop(sc, tid);
    }
    json_decref(ids);
}

/* ---- placement ---- */

struct cluster {
    struct pl_node *nodes;
    size_t n;
    json_t *index; /* node id -> index */
};

static void cluster_build(struct sched *sc, struct cluster *c)
{
    json_t *nodes = json_object_get(sched_store_state(sc->store), "nodes"), *nd, *t;
    const char *id;
    c->n = 0;
    c->nodes = calloc(json_object_size(nodes) + 1, sizeof *c->nodes);
    c->index = json_object();
    json_object_foreach(nodes, id, nd) {
        c->nodes[c->n] = (struct pl_node){id,
                                          (int)json_integer_value(json_object_get(nd, "cpu")),
                                          (int)json_integer_value(json_object_get(nd, "memory_mib")),
                                          0,
                                          0,
                                          json_object_get(nd, "attributes"),
                                          is(nd, "status", "ACTIVE") && !lost(sc, id)};
        json_object_set_new(c->index, id, json_integer((json_int_t)c->n++));
    }
    json_object_foreach(json_object_get(sched_store_state(sc->store), "tasks"), id, t) {
        json_t *i = json_is_string(json_object_get(t, "node"))
                        ? json_object_get(c->index, json_string_value(json_object_get(t, "node")))
                        : NULL;
        if (!i || is(t, "last_status", "STOPPED"))
            continue;
        c->nodes[json_integer_value(i)].cpu_used += (int)json_integer_value(json_object_get(t, "cpu"));
        c->nodes[json_integer_value(i)].mem_used += (int)json_integer_value(json_object_get(t, "memory_mib"));
    }
}

static void cluster_free(struct cluster *c)
{
    free(c->nodes);
    json_decref(c->index);
}

/* Places the PENDING tasks of one group (a service, or one-off tasks of one task definition). */
static void place_group(struct sched *sc, struct cluster *c, const char *service, json_t *ids)
{
    json_t *first = get(sc, "tasks", json_string_value(json_array_get(ids, 0))), *x;
    json_t *svc = service ? get(sc, "services", service) : NULL;
    struct pl_request req = {0};
    json_t *ct;
    size_t i;
    json_array_foreach(json_object_get(json_object_get(first, "definition"), "containers"), i, ct) {
        req.cpu += (int)json_integer_value(json_object_get(ct, "cpu"));
        req.mem += (int)json_integer_value(json_object_get(ct, "memory_mib"));
    }
    struct pl_strategy strategies[8];
    struct pl_expr *exprs[8];
    char text[512] = "";
    json_array_foreach(json_object_get(svc, "placement_strategy"), i, x) {
        if (req.nstrategies == 8)
            break;
        const char *type = json_string_value(json_object_get(x, "type"));
        const char *field = json_string_value(json_object_get(x, "field"));
        strategies[req.nstrategies++] = (struct pl_strategy){strcmp(type, "spread") == 0    ? PL_SPREAD
                                                             : strcmp(type, "binpack") == 0 ? PL_BINPACK
                                                                                            : PL_RANDOM,
                                                             field ? field : "instanceId"};
    }
    if (!req.nstrategies) /* the default: spread over nodes */
        strategies[req.nstrategies++] = (struct pl_strategy){PL_SPREAD, "instanceId"};
    req.strategies = strategies;
    json_array_foreach(json_object_get(svc, "placement_constraints"), i, x) {
        if (is(x, "type", "distinct_instance"))
            req.distinct_instance = true;
        else if (req.nmember_of < 8 && is(x, "type", "member_of")) {
            char *err = NULL;
            const char *e = json_string_value(json_object_get(x, "expression"));
            if ((exprs[req.nmember_of] = pl_expr_parse(e, &err))) {
                snprintf(text + strlen(text), sizeof text - strlen(text), "%s%s", *text ? ") and member_of(" : "", e);
                req.nmember_of++;
            }
            free(err);
        }
    }
    req.member_of = exprs;
    req.member_of_text = text;
    /* How many of the service's tasks each node runs already. */
    int *count = calloc(c->n + 1, sizeof *count);
    const char *tid;
    json_t *t;
    json_object_foreach(json_object_get(sched_store_state(sc->store), "tasks"), tid, t) {
        json_t *ix = json_is_string(json_object_get(t, "node"))
                         ? json_object_get(c->index, json_string_value(json_object_get(t, "node")))
                         : NULL;
        if (ix && service && is(t, "service", service) && !is(t, "last_status", "STOPPED"))
            count[json_integer_value(ix)]++;
    }
    struct pl_batch *b = pl_batch_new(c->nodes, c->n, &req, count, (uint64_t)util_now() * 1000003u + 1);
    json_array_foreach(ids, i, x) {
        char id[40], why[300];
        snprintf(id, sizeof id, "%s", json_string_value(x));
        int k = pl_batch_place(b, why, sizeof why);
        if (k < 0) {
            json_t *task = get(sc, "tasks", id);
            const char *old = json_string_value(json_object_get(task, "pending_reason"));
            if (!old || strcmp(old, why) != 0) {
                sched_task_update(sc, id, json_pack("{s:s}", "pending_reason", why));
                sched_event(sc, service, "unable to place task %s: %s", id, why);
            }
            continue;
        }
        const char *node = c->nodes[k].id;
        sched_task_update(sc, id,
                          json_pack("{s:s,s:s,s:i,s:i,s:n}", "node", node, "last_status", "PROVISIONING", "cpu",
                                    req.cpu, "memory_mib", req.mem, "pending_reason"));
        if (strcmp(node, sc->node_id) == 0)
            sched_agent_start(sc, id);
        else
            wake(sc, node);
    }
    pl_batch_free(b);
    free(count);
    for (i = 0; i < req.nmember_of; i++)
        pl_expr_free(exprs[i]);
}

void sched_place_pending(struct sched *sc)
{
    json_t *groups = json_object(), *t, *g;
    const char *id, *key;
    json_object_foreach(json_object_get(sched_store_state(sc->store), "tasks"), id, t) {
        if (!is(t, "last_status", "PENDING") || !is(t, "desired_status", "RUNNING"))
            continue;
        /* One group per service and task definition (sizes differ between revisions); "\n" never
         * appears in either. */
        char k[400];
        snprintf(k, sizeof k, "%s\n%s",
                 json_is_string(json_object_get(t, "service")) ? json_string_value(json_object_get(t, "service")) : "",
                 json_string_value(json_object_get(t, "task_definition")));
        if (!(g = json_object_get(groups, k)))
            json_object_set_new(groups, k, g = json_array());
        json_array_append_new(g, json_string(id));
    }
    if (json_object_size(groups)) {
        struct cluster c;
        cluster_build(sc, &c);
        json_object_foreach(groups, key, g) {
            char service[200];
            snprintf(service, sizeof service, "%.*s", (int)(strchr(key, '\n') - key), key);
            place_group(sc, &c, *service ? service : NULL, g);
        }
        cluster_free(&c);
    }
    json_decref(groups);
}

/* ---- nodes, heartbeats ---- */

/* Stops the tasks of a node that stopped sending heartbeats (their services replace them). */
static void node_lost(struct sched *sc, const char *node, double silent)
{
    json_object_set_new(sc->lost, node, json_true());
    sched_event(sc, NULL, "node %s lost: no heartbeat for %.0fs; its tasks are replaced", node, silent);
    json_t *ids = json_array(), *t, *x;
    const char *id;
    size_t i;
    json_object_foreach(json_object_get(sched_store_state(sc->store), "tasks"), id, t)
        if (is(t, "node", node) && !is(t, "last_status", "STOPPED"))
            json_array_append_new(ids, json_string(id));
    json_array_foreach(ids, i, x) {
        drain_cancel(sc, json_string_value(x));
        char reason[200];
        snprintf(reason, sizeof reason, "Node %s stopped sending heartbeats", node);
        mark_stopped(sc, json_string_value(x), "NodeLost", reason);
    }
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
        if (strcmp(id, sc->node_id) == 0 || lost(sc, id))
            continue;
        json_t *hb = json_object_get(sc->heartbeats, id);
        if (!hb)
            json_object_set_new(sc->heartbeats, id, hb = json_real(now)); /* known from before a restart */
        if (now - json_real_value(hb) > sc->node_lost_after_s)
            node_lost(sc, id, now - json_real_value(hb));
    }
}

void sched_nodes_start(struct sched *sc)
{
    sc->heartbeats = json_object();
    sc->lost = json_object();
    sc->waking = json_object();
    ev_timer_init(&sc->nodes_timer, check_tick, CHECK_S, CHECK_S);
    sc->nodes_timer.data = sc;
    ev_timer_start(sc->loop, &sc->nodes_timer);
    if (!*sc->node_id) /* agent.embedded false: berth-agent nodes only */
        return;
    /* The embedded node: capacity from the config; its status (DRAINING) survives restarts. */
    json_t *old = get(sc, "nodes", sc->node_id);
    json_t *n = json_pack("{s:s,s:i,s:i,s:O,s:[i,i],s:s,s:s,s:s,s:s}", "id", sc->node_id, "cpu", sc->cpu, "memory_mib",
                          sc->memory_mib, "attributes", sc->attributes, "port_range", sc->port_lo, sc->port_hi,
                          "address", "127.0.0.1", "agent", "embedded", "status",
                          old && is(old, "status", "DRAINING") ? "DRAINING" : "ACTIVE", "cgroups", sched_cgroups());
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
    while (sc->drains) {
        struct sched_drain *d = sc->drains;
        sc->drains = d->next;
        ev_timer_stop(sc->loop, &d->timer);
        free(d);
    }
    json_decref(sc->heartbeats);
    json_decref(sc->lost);
    json_decref(sc->waking);
}

static int rank(const char *st)
{
    static const char *const order[] = {"PROVISIONING", "ACTIVATING", "RUNNING", "DEACTIVATING",
                                        "STOPPING",     "STOPPED",    NULL};
    for (int i = 0; st && order[i]; i++)
        if (strcmp(st, order[i]) == 0)
            return i;
    return 0; /* PENDING */
}

/* Merges what a berth-agent reports of task <r> into the scheduler's record. */
static void merge_report(struct sched *sc, const char *node, json_t *r)
{
    /* What an agent may report, and the JSON type it must have (anything else is ignored). */
    static const struct {
        const char *name;
        json_type type;
    } fields[] = {{"ports", JSON_OBJECT}, {"containers", JSON_ARRAY},  {"health_status", JSON_STRING},
                  {"log", JSON_STRING},   {"started_at", JSON_STRING}, {"stopped_at", JSON_STRING},
                  {NULL, JSON_NULL}};
    const char *id = json_string_value(json_object_get(r, "id"));
    json_t *t = id ? get(sc, "tasks", id) : NULL;
    if (!t || !is(t, "node", node) || is(t, "last_status", "STOPPED"))
        return;
    char tid[40];
    snprintf(tid, sizeof tid, "%s", id);
    json_t *upd = json_object();
    for (int i = 0; fields[i].name; i++) {
        json_t *v = json_object_get(r, fields[i].name);
        if (v && json_typeof(v) == fields[i].type && !json_equal(v, json_object_get(t, fields[i].name)))
            json_object_set(upd, fields[i].name, v);
    }
    const char *now_st = json_string_value(json_object_get(r, "last_status"));
    int was = rank(json_string_value(json_object_get(t, "last_status"))), is_now = rank(now_st);
    if (is_now > was) {
        json_object_set_new(upd, "last_status", json_string(now_st));
        if (is_now == rank("STOPPED")) {
            json_object_set_new(upd, "desired_status", json_string("STOPPED"));
            json_t *code = json_object_get(r, "stop_code"), *why = json_object_get(r, "stopped_reason");
            json_object_set_new(upd, "stop_code",
                                json_string(json_is_string(code) ? json_string_value(code) : "TaskLost"));
            json_object_set_new(upd, "stopped_reason",
                                json_string(json_is_string(why) ? json_string_value(why) : "stopped on its node"));
        }
    }
    if (!json_object_size(upd)) {
        json_decref(upd);
        return;
    }
    sched_task_update(sc, tid, upd);
    if (is_now > was && is_now == rank("RUNNING"))
        sched_task_running(sc, tid);
    else if (is_now > was && is_now == rank("STOPPED")) {
        drain_cancel(sc, tid);
        sched_task_ended(sc, tid);
    }
}

/* POST /v1/nodes/{id}/heartbeat: {"tasks": [the agent's task records]} -> {"status", "tasks": [...]}. */
static void heartbeat(struct sched *sc, struct httpd_req *req, const char *node)
{
    json_t *nd = get(sc, "nodes", node);
    if (!nd || is(nd, "agent", "embedded")) {
        httpd_respond_error(req, 404, "NodeNotFound", "no node \"%s\" registered by an agent (POST /v1/nodes first)",
                            node);
        return;
    }
    json_t *body = httpd_body_json(req);
    if (!body)
        return;
    json_t *reported = json_object_get(body, "tasks"), *r, *t;
    if (!json_is_array(reported)) {
        httpd_respond_error(req, 400, "InvalidParameter", "tasks: must be an array");
        json_decref(body);
        return;
    }
    json_object_set_new(sc->heartbeats, node, json_real(util_now()));
    if (lost(sc, node)) {
        json_object_del(sc->lost, node);
        sched_event(sc, NULL, "node %s is back", node);
        sched_kick(sc);
    }
    size_t i;
    json_t *seen = json_object();
    json_array_foreach(reported, i, r) {
        if (!json_is_string(json_object_get(r, "id")))
            continue;
        json_object_set_new(seen, json_string_value(json_object_get(r, "id")), json_true());
        merge_report(sc, node, r);
    }
    /* Every task the scheduler wants on this node: in full when the agent does not know it yet. */
    json_t *out = json_array();
    const char *id;
    json_object_foreach(json_object_get(sched_store_state(sc->store), "tasks"), id, t) {
        if (!is(t, "node", node) || is(t, "last_status", "STOPPED"))
            continue;
        json_t *x = json_object_get(seen, id)
                        ? json_pack("{s:s,s:O}", "id", id, "desired_status", json_object_get(t, "desired_status"))
                        : json_deep_copy(t);
        if (json_is_true(json_object_get(t, "stop"))) {
            json_object_set_new(x, "stop", json_true());
            json_object_set(x, "stop_code", json_object_get(t, "stop_code"));
            json_object_set(x, "stopped_reason", json_object_get(t, "stopped_reason"));
        }
        json_array_append_new(out, x);
    }
    json_decref(seen);
    json_decref(body);
    httpd_respond_json(
        req, 200, json_pack("{s:O,s:o}", "status", json_object_get(get(sc, "nodes", node), "status"), "tasks", out));
}

static json_t *node_view(struct sched *sc, const char *id, json_t *nd)
{
    json_t *out = json_deep_copy(nd), *t;
    int cpu = 0, mem = 0, running = 0;
    const char *tid;
    json_object_foreach(json_object_get(sched_store_state(sc->store), "tasks"), tid, t) {
        if (!is(t, "node", id) || is(t, "last_status", "STOPPED"))
            continue;
        cpu += (int)json_integer_value(json_object_get(t, "cpu"));
        mem += (int)json_integer_value(json_object_get(t, "memory_mib"));
        running++;
    }
    json_object_set_new(out, "cpu_used", json_integer(cpu));
    json_object_set_new(out, "memory_mib_used", json_integer(mem));
    json_object_set_new(out, "running_tasks", json_integer(running));
    bool embedded = is(nd, "agent", "embedded");
    json_object_set_new(out, "embedded", json_boolean(embedded));
    json_object_set_new(out, "connected", json_boolean(embedded || !lost(sc, id)));
    json_t *hb = json_object_get(sc->heartbeats, id);
    if (!embedded && hb)
        json_object_set_new(out, "last_heartbeat_s",
                            json_real((double)(int)((util_now() - json_real_value(hb)) * 10) / 10));
    return out;
}

void sched_nodes_api(struct sched *sc, struct httpd_req *req)
{
    int n = req->nsegs;
    enum http_method m = req->method_id;
    if (n == 2 && m == HTTP_M_GET) {
        json_t *out = json_array(), *nd;
        const char *id;
        json_object_foreach(json_object_get(sched_store_state(sc->store), "nodes"), id, nd)
            json_array_append_new(out, node_view(sc, id, nd));
        httpd_respond_json(req, 200, json_pack("{s:o}", "nodes", out));
        return;
    }
    if (n == 2 && m == HTTP_M_POST) { /* a berth-agent registers (again) */
        json_t *body = httpd_body_json(req);
        char *err = NULL;
        if (!body)
            return;
        json_t *nd = sched_node_validate(body, &err);
        json_decref(body);
        if (!nd) {
            httpd_respond_error(req, 400, "InvalidParameter", "%s", err);
            free(err);
            return;
        }
        const char *id = json_string_value(json_object_get(nd, "id"));
        json_t *old = get(sc, "nodes", id);
        if (old && is(old, "agent", "embedded")) {
            httpd_respond_error(req, 409, "NodeConflict", "node \"%s\" is the scheduler's embedded node", id);
            json_decref(nd);
            return;
        }
        char ts[40], path[300];
        util_rfc3339(util_wall(), ts, sizeof ts);
        json_object_set_new(nd, "agent", json_string("remote"));
        json_object_set_new(nd, "status", json_string(old && is(old, "status", "DRAINING") ? "DRAINING" : "ACTIVE"));
        json_object_set_new(nd, "registered_at", json_string(ts));
        snprintf(path, sizeof path, "nodes/%s", id);
        log_info("node %s registered: %lld cpu, %lld MiB", id, json_integer_value(json_object_get(nd, "cpu")),
                 json_integer_value(json_object_get(nd, "memory_mib")));
        json_object_set_new(sc->heartbeats, id, json_real(util_now()));
        if (lost(sc, id))
            json_object_del(sc->lost, id);
        sched_event(sc, NULL, "node %s registered", id);
        sched_store_put(sc->store, path, json_incref(nd), NULL, NULL);
        /* What its tasks need to know of the plane. */
        json_t *out = json_copy(nd);
        json_object_set_new(out, "dns_server", json_string(sc->dns));
        json_object_set_new(out, "namespace", json_string(sc->namespace));
        if (sc->auth && sc->auth->n) {
            /* The node's own token, for its heartbeats and for the scheduler's calls to it. */
            char tok[65];
            sched_node_token(sc, id, tok);
            json_object_set_new(out, "token", json_string(tok));
        }
        json_decref(nd);
        httpd_respond_json(req, old ? 200 : 201, out);
        sched_kick(sc);
        return;
    }
    json_t *nd = n >= 3 ? get(sc, "nodes", req->segs[2]) : NULL;
    if (!nd || strchr(req->segs[2], '/')) {
        httpd_respond_error(req, 404, "NodeNotFound", "no node \"%s\"", n >= 3 ? req->segs[2] : "");
        return;
    }
    if (n == 4 && strcmp(req->segs[3], "heartbeat") == 0 && m == HTTP_M_POST) {
        heartbeat(sc, req, req->segs[2]);
    } else if (n == 3 && m == HTTP_M_GET) {
        httpd_respond_json(req, 200, node_view(sc, req->segs[2], nd));
    } else if (n == 3 && m == HTTP_M_PATCH) {
        json_t *body = httpd_body_json(req);
        if (!body)
            return;
        const char *st = json_string_value(json_object_get(body, "status"));
        const char *key;
        json_t *v;
        json_object_foreach(body, key, v)
            if (strcmp(key, "status") != 0) {
                httpd_respond_error(req, 400, "InvalidParameter", "%s: unknown field (only status can change)", key);
                json_decref(body);
                return;
            }
        if (!st || (strcmp(st, "ACTIVE") != 0 && strcmp(st, "DRAINING") != 0)) {
            httpd_respond_error(req, 400, "InvalidParameter", "status: must be ACTIVE or DRAINING");
            json_decref(body);
            return;
        }
        char path[300];
        snprintf(path, sizeof path, "nodes/%s", req->segs[2]);
        if (!is(nd, "status", st))
            sched_event(sc, NULL, "node %s is %s", req->segs[2], st);
        sched_store_merge(sc->store, path, json_pack("{s:s}", "status", st));
        json_decref(body);
        httpd_respond_json(req, 200, node_view(sc, req->segs[2], get(sc, "nodes", req->segs[2])));
        sched_kick(sc);
    } else {
        httpd_respond_error(req, 405, "InvalidParameter", "%s is not allowed here", req->method);
    }
}
