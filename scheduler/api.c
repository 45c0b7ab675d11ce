/* api.c -- berth-scheduler HTTP API (SPEC §4): task definitions and services. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/alloc.h"
#include "berth/buf.h"
#include "berth/httpc.h"
#include "berth/httpd.h"
#include "berth/log.h"
#include "berth/util.h"
#include "sched.h"

struct pending {
    struct httpd_req *req;
    int status;
    json_t *body;
};

/* Answers once the change is on disk: nothing is acknowledged before it is durable. */
static void committed(void *arg, const char *err)
{
    struct pending *p = arg;
    if (err) {
        json_decref(p->body);
        httpd_respond_error(p->req, 500, "ServerException", "the change could not be made durable: %s", err);
    } else {
        httpd_respond_json(p->req, p->status, p->body);
    }
    free(p);
}

static void write_then_respond(struct sched_store *s, struct httpd_req *req, const char *path, json_t *value,
                               int status, json_t *body)
{
    struct pending *p = xmalloc(sizeof *p);
    p->req = req;
    p->status = status;
    p->body = body;
    sched_store_put(s, path, value, committed, p);
}

static void invalid(struct httpd_req *req, char *err)
{
    httpd_respond_error(req, 400, "InvalidParameter", "%s", err);
    free(err);
}

/* ---- task definitions ---- */

/* Highest revision of <family>, optionally only ACTIVE ones; 0 if none. */
static int latest_revision(struct sched_store *s, const char *family, bool active_only)
{
    char path[300];
    snprintf(path, sizeof path, "taskdefs/%s", family);
    json_t *revs = sched_store_get(s, path), *td;
    const char *rev;
    int best = 0;
    json_object_foreach(revs, rev, td) {
        int r = atoi(rev);
        bool active = strcmp(json_string_value(json_object_get(td, "status")), "ACTIVE") == 0;
        if (r > best && (active || !active_only))
            best = r;
    }
    return best;
}

/* "family" or "family:rev" to the stored object (borrowed) or NULL. */
static json_t *find_taskdef(struct sched_store *s, const char *ref, bool active_only)
{
    char family[256], path[300];
    const char *colon = strchr(ref, ':');
    int rev;
    if (colon) {
        snprintf(family, sizeof family, "%.*s", (int)(colon - ref), ref);
        char *end;
        rev = (int)strtol(colon + 1, &end, 10);
        if (*end || rev <= 0)
            return NULL;
    } else {
        snprintf(family, sizeof family, "%s", ref);
        rev = latest_revision(s, family, true);
    }
    snprintf(path, sizeof path, "taskdefs/%s/%d", family, rev);
    json_t *td = strchr(family, '/') ? NULL : sched_store_get(s, path);
    if (td && active_only && strcmp(json_string_value(json_object_get(td, "status")), "ACTIVE") != 0)
        return NULL;
    return td;
}

static char *resolve_taskdef(void *ctx, const char *ref)
{
    json_t *td = find_taskdef(ctx, ref, true);
    if (!td)
        return NULL;
    char *out = xmalloc(300);
    snprintf(out, 300, "%s:%lld", json_string_value(json_object_get(td, "family")),
             json_integer_value(json_object_get(td, "revision")));
    return out;
}

static void taskdefs(struct sched_store *s, struct httpd_req *req)
{
    int n = req->nsegs;
    enum http_method m = req->method_id;
    if (n == 2 && m == HTTP_M_POST) {
        json_t *body = httpd_body_json(req);
        if (!body)
            return;
        char *err = NULL;
        json_t *td = sched_taskdef_validate(body, &err);
        json_decref(body);
        if (!td) {
            invalid(req, err);
            return;
        }
        const char *family = json_string_value(json_object_get(td, "family"));
        int rev = latest_revision(s, family, false) + 1;
        char ts[40], path[300];
        util_rfc3339(util_wall(), ts, sizeof ts);
        json_object_set_new(td, "revision", json_integer(rev));
        json_object_set_new(td, "status", json_string("ACTIVE"));
        json_object_set_new(td, "registered_at", json_string(ts));
        snprintf(path, sizeof path, "taskdefs/%s/%d", family, rev);
        log_info("task definition %s:%d registered", family, rev);
        write_then_respond(s, req, path, json_incref(td), 201, td);
        return;
    }
    if (n == 2 && m == HTTP_M_GET) {
        json_t *out = json_array(), *revs;
        const char *family;
        json_object_foreach(json_object_get(sched_store_state(s), "taskdefs"), family, revs) {
            char ref[300];
            int rev = latest_revision(s, family, true);
            if (rev) {
                snprintf(ref, sizeof ref, "%s:%d", family, rev);
                json_array_append_new(out, json_string(ref));
            }
        }
        httpd_respond_json(req, 200, json_pack("{s:o}", "task_definitions", out));
        return;
    }
    if (n == 3 && (m == HTTP_M_GET || m == HTTP_M_DELETE)) {
        json_t *td = find_taskdef(s, req->segs[2], false);
        if (!td) {
            httpd_respond_error(req, 404, "TaskDefinitionNotFound", "no task definition \"%s\"", req->segs[2]);
            return;
        }
        if (m == HTTP_M_GET) {
            httpd_respond_json(req, 200, json_deep_copy(td));
            return;
        }
        if (!strchr(req->segs[2], ':')) {
            httpd_respond_error(req, 400, "InvalidParameter",
                                "deregister a revision: DELETE /v1/task-definitions/%s:REV", req->segs[2]);
            return;
        }
        json_t *copy = json_deep_copy(td);
        json_object_set_new(copy, "status", json_string("INACTIVE"));
        char path[300];
        snprintf(path, sizeof path, "taskdefs/%s/%lld", json_string_value(json_object_get(td, "family")),
                 json_integer_value(json_object_get(td, "revision")));
        write_then_respond(s, req, path, json_incref(copy), 200, copy);
        return;
    }
    httpd_respond_error(req, 404, "NotFound", "no such endpoint: %s %s", req->method, req->path);
}

/* ---- services ---- */

/* A service as the API shows it: the stored object plus its deployment, task counts and what the
 * proxy sees of it. */
static json_t *service_view(struct sched *sc, const char *name, json_t *svc)
{
    json_t *out = json_deep_copy(svc);
    char dpath[300];
    snprintf(dpath, sizeof dpath, "deployments/%s", name);
    json_t *dep = sched_store_get(sc->store, dpath), *t;
    if (dep)
        json_object_set_new(out, "current_deployment", json_deep_copy(dep));
    int running = 0, pending = 0;
    const char *id;
    json_object_foreach(json_object_get(sched_store_state(sc->store), "tasks"), id, t) {
        const char *ts = json_string_value(json_object_get(t, "service"));
        if (!ts || strcmp(ts, name) != 0)
            continue;
        enum task_status st = task_status(t);
        running += st == TASK_RUNNING;
        pending += st == TASK_PENDING || st == TASK_PROVISIONING || st == TASK_ACTIVATING;
    }
    json_object_set_new(out, "running_count", json_integer(running));
    json_object_set_new(out, "pending_count", json_integer(pending));
    sched_metrics_describe(sc, name, out);
    return out;
}

static void services(struct sched *sc, struct httpd_req *req)
{
    struct sched_store *s = sc->store;
    int n = req->nsegs;
    enum http_method m = req->method_id;
    char path[300], *err = NULL;
    if (n == 2 && m == HTTP_M_POST) {
        json_t *body = httpd_body_json(req);
        if (!body)
            return;
        json_t *svc = sched_service_validate(body, resolve_taskdef, s, &err);
        json_decref(body);
        if (!svc) {
            invalid(req, err);
            return;
        }
        const char *name = json_string_value(json_object_get(svc, "name"));
        snprintf(path, sizeof path, "services/%s", name);
        if (sched_store_get(s, path)) {
            httpd_respond_error(req, 409, "ServiceAlreadyExists", "service \"%s\" exists", name);
            json_decref(svc); /* <name> points into it */
            return;
        }
        char ts[40];
        util_rfc3339(util_wall(), ts, sizeof ts);
        json_object_set_new(svc, "status", json_string("ACTIVE"));
        json_object_set_new(svc, "created_at", json_string(ts));
        log_info("service %s created: %s x %lld", name, json_string_value(json_object_get(svc, "task_definition")),
                 json_integer_value(json_object_get(svc, "desired_count")));
        write_then_respond(s, req, path, json_incref(svc), 201, svc);
        return;
    }
    if (n == 2 && m == HTTP_M_GET) {
        json_t *out = json_array(), *svc;
        const char *name;
        json_object_foreach(json_object_get(sched_store_state(s), "services"), name, svc)
            json_array_append_new(out, service_view(sc, name, svc));
        httpd_respond_json(req, 200, json_pack("{s:o}", "services", out));
        return;
    }
    if (n != 3) {
        httpd_respond_error(req, 404, "NotFound", "no such endpoint: %s %s", req->method, req->path);
        return;
    }
    snprintf(path, sizeof path, "services/%s", req->segs[2]);
    json_t *svc = strchr(req->segs[2], '/') ? NULL : sched_store_get(s, path);
    if (!svc) {
        httpd_respond_error(req, 404, "ServiceNotFound", "no service \"%s\"", req->segs[2]);
        return;
    }
    if (m == HTTP_M_GET) {
        /* Describe adds the service's recent events (newest last), as ECS's describe-services does. */
        json_t *out = service_view(sc, req->segs[2], svc);
        json_object_set_new(out, "events", sched_events_json(sc, req->segs[2], 0, 10));
        httpd_respond_json(req, 200, out);
    } else if (m == HTTP_M_DELETE) {
        /* As ECS: the service scales to zero through draining (no request fails), then it goes with
         * its registrations (reconcile.c). */
        json_t *v = json_deep_copy(svc);
        json_object_set_new(v, "status", json_string("DRAINING"));
        json_object_set_new(v, "desired_count", json_integer(0));
        json_object_del(v, "autoscaling");
        log_info("service %s deleted: draining its tasks", req->segs[2]);
        write_then_respond(s, req, path, v, 200, json_pack("{s:s,s:s}", "deleted", req->segs[2], "status", "DRAINING"));
    } else if (sched_is(svc, "status", "DRAINING")) {
        httpd_respond_error(req, 409, "ServiceNotActive", "service \"%s\" is being deleted", req->segs[2]);
    } else if (m == HTTP_M_PATCH) {
        json_t *body = httpd_body_json(req);
        if (!body)
            return;
        /* A PATCH is the stored service with the given fields replaced, validated as a whole;
         * the name cannot change. */
        json_t *merged = json_deep_copy(svc);
        json_object_del(merged, "status");
        json_object_del(merged, "created_at");
        json_object_update(merged, body);
        const char *key;
        json_t *val;
        json_object_foreach(body, key, val)
            if (json_is_null(val)) /* {"autoscaling": null} turns it off */
                json_object_del(merged, key);
        json_t *name = json_object_get(body, "name");
        if (name && (!json_is_string(name) || strcmp(json_string_value(name), req->segs[2]) != 0)) {
            httpd_respond_error(req, 400, "InvalidParameter", "name: a service cannot be renamed");
        } else {
            json_t *v = sched_service_validate(merged, resolve_taskdef, s, &err);
            if (!v) {
                invalid(req, err);
            } else {
                json_object_set(v, "status", json_object_get(svc, "status"));
                json_object_set(v, "created_at", json_object_get(svc, "created_at"));
                const char *old_td = json_string_value(json_object_get(svc, "task_definition"));
                const char *new_td = json_string_value(json_object_get(v, "task_definition"));
                if (strcmp(old_td, new_td) != 0)
                    sched_deployment_start(sc, req->segs[2], old_td, new_td);
                log_info("service %s updated", req->segs[2]);
                write_then_respond(s, req, path, json_incref(v), 200, v);
            }
        }
        json_decref(merged);
        json_decref(body);
    } else {
        httpd_respond_error(req, 405, "InvalidParameter", "%s is not allowed on a service", req->method);
    }
}

/* GET /v1/tasks?service=&status= */
static void tasks_list(struct httpd_req *req, void *arg)
{
    struct sched *sc = arg;
    char buf[128];
    const char *svc = httpd_query_param(req, "service", buf, sizeof buf) ? buf : NULL;
    char status[32];
    const char *want = httpd_query_param(req, "status", status, sizeof status);
    json_t *out = json_array(), *t;
    const char *id;
    json_object_foreach(json_object_get(sched_store_state(sc->store), "tasks"), id, t) {
        const char *ts = json_string_value(json_object_get(t, "service"));
        if (svc && (!ts || strcmp(ts, svc) != 0))
            continue;
        if (want && strcmp(task_status_name(task_status(t)), want) != 0)
            continue;
        json_t *copy = json_deep_copy(t);
        json_object_del(copy, "definition");
        json_array_append_new(out, copy);
    }
    httpd_respond_json(req, 200, json_pack("{s:o}", "tasks", out));
}

/* POST /v1/tasks: one-off tasks. */
static void tasks_run(struct httpd_req *req, void *arg)
{
    struct sched *sc = arg;
    json_t *body = httpd_body_json(req);
    if (!body)
        return;
    const char *ref = json_string_value(json_object_get(body, "task_definition"));
    json_t *cnt = json_object_get(body, "count");
    char *canon = ref ? resolve_taskdef(sc->store, ref) : NULL;
    if (!canon ||
        (cnt && (!json_is_integer(cnt) || json_integer_value(cnt) < 1 || json_integer_value(cnt) > 100))) {
        httpd_respond_error(req, 400, "InvalidParameter", "%s",
                            !ref     ? "task_definition: is required"
                            : !canon ? "task_definition: no active task definition"
                                     : "count: must be 1..100");
    } else {
        json_t *ids = json_array();
        for (json_int_t k = 0; k < (cnt ? json_integer_value(cnt) : 1); k++) {
            char id[40];
            sched_run_task(sc, NULL, canon, id);
            json_array_append_new(ids, json_string(id));
        }
        httpd_respond_json(req, 201, json_pack("{s:o}", "tasks", ids));
    }
    free(canon);
    json_decref(body);
}

/* ---- one task: /v1/tasks/{id}[/stop|/logs|/exec[/{exec_id}]|/stats] ---- */

/* The task the path names, or NULL after answering 404. */
static json_t *task_of(struct sched *sc, struct httpd_req *req)
{
    json_t *t = task_get(&sc->tasks, req->segs[2]);
    if (!t)
        httpd_respond_error(req, 404, "TaskNotFound", "no task \"%s\"", req->segs[2]);
    return t;
}

static void task_describe(struct httpd_req *req, void *arg)
{
    json_t *t = task_of(arg, req);
    if (t)
        httpd_respond_json(req, 200, json_deep_copy(t));
}

static void task_stop(struct httpd_req *req, void *arg)
{
    struct sched *sc = arg;
    if (!task_of(sc, req))
        return;
    sched_task_stop(sc, req->segs[2], "UserInitiated", "Task stopped by the user");
    httpd_respond_json(req, 200, json_deep_copy(task_get(&sc->tasks, req->segs[2])));
}

/* The answer of a task's agent, relayed as it came. */
static void relay_answer(struct sched *sc, const struct httpc_response *resp, const char *err, void *arg)
{
    struct httpd_req *req = arg;
    if (sc->stopping) /* the API server is gone, and the request with it */
        return;
    if (err)
        httpd_respond_error(req, 502, "AgentUnavailable", "the node's agent did not answer: %s", err);
    else
        httpd_respond(req, resp->status,
                      resp->status == 200 && req->method_id == HTTP_M_GET && strcmp(req->segs[3], "logs") == 0 &&
                              !strstr(req->query, "offset=")
                          ? "text/plain"
                          : "application/json",
                      resp->body, resp->body_len);
}

/* Serves <req> (/v1/tasks/{id}/<what>) from the node that runs the task: the embedded agent's
 * <local>, or the same path on a berth-agent's API (with the request's body, within <timeout_s>). */
static void on_node(struct sched *sc, struct httpd_req *req, void (*local)(struct agent *, struct httpd_req *, const char *),
                    double timeout_s)
{
    json_t *t = task_of(sc, req);
    if (!t)
        return;
    const char *node = json_string_value(json_object_get(t, "node"));
    if (!node || strcmp(node, sc->node_id) == 0) {
        local(&sc->agent, req, req->segs[2]);
        return;
    }
    const char *api = json_string_value(json_object_get(sched_node_get(sc, node), "agent_api"));
    struct net_addr to;
    if (!api || net_parse_url(api, &to) < 0) {
        httpd_respond_error(req, 404, "AgentNotFound", "task %s runs on node %s, whose agent serves no API", req->segs[2],
                            node);
        return;
    }
    char path[600]; /* the same path on the agent's API (a route's path: no escaping needed) */
    snprintf(path, sizeof path, "%.300s%s%.200s", req->path, *req->query ? "?" : "", req->query);
    sched_call_within(sc, timeout_s, &to, node, req->method, path, req->body_len ? req->body : NULL, relay_answer, req);
}

static void task_logs(struct httpd_req *req, void *arg)
{
    on_node(arg, req, agent_logs, 5);
}

static void task_stats(struct httpd_req *req, void *arg)
{
    on_node(arg, req, agent_stats, 5);
}

static void task_exec(struct httpd_req *req, void *arg)
{
    /* The agent bounds the command by its timeout_s (at most an hour); the call waits a little longer. */
    json_t *body = json_loadb(req->body, req->body_len, 0, NULL);
    double t = json_number_value(json_object_get(body, "timeout_s"));
    json_decref(body);
    on_node(arg, req, agent_exec, (t > 0 && t <= 3600 ? t : 30) + 5);
}

static void task_exec_read(struct httpd_req *req, void *arg)
{
    on_node(arg, req, agent_exec_read, 5);
}

static void task_exec_input(struct httpd_req *req, void *arg)
{
    on_node(arg, req, agent_exec_input, 5);
}

static void metrics(void *arg, struct buf *out)
{
    struct sched *sc = arg;
    unsigned long long records, fsyncs;
    sched_store_stats(sc->store, &records, &fsyncs);
    buf_printf(out,
               "# HELP berth_scheduler_journal_records_total Records written to the journal.\n"
               "# TYPE berth_scheduler_journal_records_total counter\nberth_scheduler_journal_records_total %llu\n"
               "# HELP berth_scheduler_journal_fsyncs_total Journal fsyncs (one per group commit).\n"
               "# TYPE berth_scheduler_journal_fsyncs_total counter\nberth_scheduler_journal_fsyncs_total %llu\n",
               records, fsyncs);
}

static void taskdefs_route(struct httpd_req *req, void *arg)
{
    struct sched *sc = arg;
    taskdefs(sc->store, req);
}

static void services_route(struct httpd_req *req, void *arg)
{
    services(arg, req);
    sched_kick(arg);
}

static void nodes_route(struct httpd_req *req, void *arg)
{
    sched_nodes_api(arg, req);
}

static void events_route(struct httpd_req *req, void *arg)
{
    char svc[128], since[32];
    const char *want = httpd_query_param(req, "service", svc, sizeof svc);
    unsigned long long from = 0;
    if (httpd_query_param(req, "since", since, sizeof since)) {
        char *end;
        from = strtoull(since, &end, 10);
        if (!*since || *end) {
            httpd_respond_error(req, 400, "InvalidParameter", "since: \"%s\" must be an event's seq (a number)", since);
            return;
        }
    }
    httpd_respond_json(req, 200, json_pack("{s:o}", "events", sched_events_json(arg, want, from, 0)));
}

/* Each resource's handler takes its own sub-paths and methods (SPEC §4). */
static const struct httpd_route routes[] = {
    {NULL, "/v1/task-definitions/**", taskdefs_route},
    {NULL, "/v1/services/**", services_route},
    {"GET", "/v1/tasks/{}", task_describe},
    {"POST", "/v1/tasks/{}/stop", task_stop},
    {"GET", "/v1/tasks/{}/logs", task_logs},
    {"GET", "/v1/tasks/{}/stats", task_stats},
    {"POST", "/v1/tasks/{}/exec", task_exec},
    {"POST", "/v1/tasks/{}/exec/{}", task_exec_read},
    {"POST", "/v1/tasks/{}/exec/{}/input", task_exec_input},
    {"GET", "/v1/tasks", tasks_list},
    {"POST", "/v1/tasks", tasks_run},
    {NULL, "/v1/nodes/**", nodes_route},
    {"GET", "/v1/events", events_route},
    {NULL, NULL, NULL},
};

static const struct httpd_service service = {routes, NULL, metrics, NULL};

struct httpd *sched_api_start(struct sched *sc, const char *listen, char **err)
{
    return httpd_serve(sc->loop, listen, &service, sc, err);
}


