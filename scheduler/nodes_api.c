/* nodes_api.c -- /v1/nodes: berth-agent registrations and heartbeats, the node list, draining.
 *
 * A berth-agent heartbeat carries the agent's view of its tasks; the scheduler merges what changed
 * (a status only ever moves forward) and answers with every task it wants on that node (new ones in
 * full, and a "stop" flag for those to stop). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/auth.h"
#include "berth/httpd.h"
#include "berth/log.h"
#include "berth/util.h"
#include "sched.h"

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
    json_t *t = id ? task_get(&sc->tasks, id) : NULL;
    if (!t || !sched_is(t, "node", node) || task_is(t, TASK_STOPPED))
        return;
    char tid[40];
    snprintf(tid, sizeof tid, "%s", id);
    json_t *upd = json_object();
    for (int i = 0; fields[i].name; i++) {
        json_t *v = json_object_get(r, fields[i].name);
        if (v && json_typeof(v) == fields[i].type && !json_equal(v, json_object_get(t, fields[i].name)))
            json_object_set(upd, fields[i].name, v);
    }
    enum task_status now;
    json_t *code = json_object_get(r, "stop_code"), *why = json_object_get(r, "stopped_reason");
    if (task_status_parse(json_string_value(json_object_get(r, "last_status")), &now) && now > task_status(t))
        task_report(&sc->tasks, tid, now, json_is_string(code) ? json_string_value(code) : NULL,
                    json_is_string(why) ? json_string_value(why) : NULL, upd);
    else
        task_set(&sc->tasks, tid, upd);
}

/* POST /v1/nodes/{id}/heartbeat: {"tasks": [the agent's task records]} -> {"status", "tasks": [...]}. */
static void heartbeat(struct sched *sc, struct httpd_req *req, const char *node)
{
    json_t *nd = sched_node_get(sc, node);
    if (!nd || sched_is(nd, "agent", "embedded")) {
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
    sched_node_heard(sc, node);
    size_t i;
    json_t *seen = json_object();
    json_array_foreach(reported, i, r) {
        if (!json_is_string(json_object_get(r, "id")))
            continue;
        json_object_set_new(seen, json_string_value(json_object_get(r, "id")), json_true());
        merge_report(sc, node, r);
    }
    /* Every task the scheduler wants on this node: in full when the agent does not know it yet; and the
     * stopped ones it still keeps, whose logs the agent keeps too (until they are pruned). */
    json_t *out = json_array(), *keep = json_array();
    const char *id;
    json_object_foreach(json_object_get(sched_store_state(sc->store), "tasks"), id, t) {
        if (!sched_is(t, "node", node))
            continue;
        if (task_is(t, TASK_STOPPED)) {
            json_array_append_new(keep, json_string(id));
            continue;
        }
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
    httpd_respond_json(req, 200,
                       json_pack("{s:O,s:o,s:o}", "status", json_object_get(sched_node_get(sc, node), "status"), "tasks",
                                 out, "keep", keep));
}

static json_t *node_view(struct sched *sc, const char *id, json_t *nd)
{
    json_t *out = json_deep_copy(nd), *t;
    int cpu = 0, mem = 0, running = 0;
    const char *tid;
    json_object_foreach(json_object_get(sched_store_state(sc->store), "tasks"), tid, t) {
        if (!sched_is(t, "node", id) || task_is(t, TASK_STOPPED))
            continue;
        cpu += (int)json_integer_value(json_object_get(t, "cpu"));
        mem += (int)json_integer_value(json_object_get(t, "memory_mib"));
        running++;
    }
    json_object_set_new(out, "cpu_used", json_integer(cpu));
    json_object_set_new(out, "memory_mib_used", json_integer(mem));
    json_object_set_new(out, "running_tasks", json_integer(running));
    bool embedded = sched_is(nd, "agent", "embedded");
    json_object_set_new(out, "embedded", json_boolean(embedded));
    json_object_set_new(out, "connected", json_boolean(embedded || !sched_node_lost(sc, id)));
    double silence = sched_node_silence_s(sc, id);
    if (!embedded && silence >= 0)
        json_object_set_new(out, "last_heartbeat_s", json_real((double)(int)(silence * 10) / 10));
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
        json_t *old = sched_node_get(sc, id);
        if (old && sched_is(old, "agent", "embedded")) {
            httpd_respond_error(req, 409, "NodeConflict", "node \"%s\" is the scheduler's embedded node", id);
            json_decref(nd);
            return;
        }
        char ts[40], path[300];
        util_rfc3339(util_wall(), ts, sizeof ts);
        json_object_set_new(nd, "agent", json_string("remote"));
        json_object_set_new(nd, "status", json_string(old && sched_is(old, "status", "DRAINING") ? "DRAINING" : "ACTIVE"));
        json_object_set_new(nd, "registered_at", json_string(ts));
        snprintf(path, sizeof path, "nodes/%s", id);
        log_info("node %s registered: %lld cpu, %lld MiB", id, json_integer_value(json_object_get(nd, "cpu")),
                 json_integer_value(json_object_get(nd, "memory_mib")));
        sched_node_heard(sc, id);
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
    json_t *nd = n >= 3 ? sched_node_get(sc, req->segs[2]) : NULL;
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
        if (!sched_is(nd, "status", st))
            sched_event(sc, NULL, "node %s is %s", req->segs[2], st);
        sched_store_merge(sc->store, path, json_pack("{s:s}", "status", st));
        json_decref(body);
        httpd_respond_json(req, 200, node_view(sc, req->segs[2], sched_node_get(sc, req->segs[2])));
        sched_kick(sc);
    } else {
        httpd_respond_error(req, 405, "InvalidParameter", "%s is not allowed here", req->method);
    }
}
