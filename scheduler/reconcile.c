/* reconcile.c -- the service scheduler: a level-triggered loop that keeps each service at its desired count. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "berth/alloc.h"
#include "berth/log.h"
#include "berth/util.h"
#include "sched.h"

#define TICK_S 1.0
#define KEEP_STOPPED 20    /* stopped tasks kept per service (and for one-off tasks) */
#define HEALTHY_RUN_S 10.0 /* a task that ran this long resets its service's restart backoff */
#define BACKOFF_MAX_S 60.0

/* What the service scheduler keeps of a service between passes. */
struct svc_rt {
    struct list link;
    char name[128];
    int failures;   /* tasks that failed soon after starting, in a row */
    double until;   /* monotonic: no start before */
    bool steady;    /* at its desired count at the last pass */
    bool seen;      /* the service exists (mark and sweep each pass) */
};

static struct svc_rt *svc_rt(struct sched *sc, const char *name)
{
    struct list *it, *tmp;
    list_each(it, tmp, &sc->services_rt) {
        struct svc_rt *r = list_entry(it, struct svc_rt, link);
        if (strcmp(r->name, name) == 0)
            return r;
    }
    struct svc_rt *r = xcalloc(1, sizeof *r);
    snprintf(r->name, sizeof r->name, "%s", name);
    list_add_tail(&sc->services_rt, &r->link);
    return r;
}

void sched_run_task(struct sched *sc, const char *service, const char *taskdef_ref, char *id_out)
{
    char family[256], path[300];
    const char *colon = strchr(taskdef_ref, ':');
    snprintf(family, sizeof family, "%.*s", colon ? (int)(colon - taskdef_ref) : (int)strlen(taskdef_ref), taskdef_ref);
    snprintf(path, sizeof path, "taskdefs/%s/%s", family, colon ? colon + 1 : "");
    task_create(&sc->tasks, service, taskdef_ref, sched_store_get(sc->store, path), id_out);
}

static bool active(json_t *t)
{
    return task_wanted(t);
}

/* Whether task <t> of service <svc> is healthy (ECS): RUNNING, its container health checks HEALTHY when
 * it has any, and healthy in every target group of the service's load balancers when it has any
 * (lb_health, kept by metrics.c from the proxy's view). Only healthy tasks count toward a deployment
 * and toward minimum_healthy_percent. */
static bool healthy(struct sched *sc, json_t *svc, json_t *t)
{
    if (!task_is(t, TASK_RUNNING))
        return false;
    json_t *c;
    size_t i;
    bool checks = false;
    json_array_foreach(json_object_get(json_object_get(t, "definition"), "containers"), i, c)
        checks = checks || json_object_get(c, "health_check") != NULL;
    if (checks && !sched_is(t, "health_status", "HEALTHY"))
        return false;
    /* (Without a proxy to ask, as in a scheduler without proxy_admin, the target groups are not checked.) */
    return json_array_size(json_object_get(svc, "load_balancers")) == 0 || !sc->proxy_admin.len ||
           sched_is(t, "lb_health", "healthy");
}

/* Restart throttling, as ECS: tasks of a service that keep failing soon after
 * starting are started again after a growing delay (0.5 s, 1 s, 2 s ... 60 s). */
static void sched_task_stopped(struct sched *sc, const char *service, double ran_s, bool failed)
{
    if (!service)
        return;
    struct svc_rt *b = svc_rt(sc, service);
    if (!failed || ran_s >= HEALTHY_RUN_S) {
        b->failures = 0;
        return;
    }
    int n = ++b->failures;
    double delay = 0.5;
    for (int k = 1; k < n && delay < BACKOFF_MAX_S; k++)
        delay *= 2;
    if (delay > BACKOFF_MAX_S)
        delay = BACKOFF_MAX_S;
    b->until = util_now() + delay;
    sched_event(sc, service, "tasks keep failing (%d in a row); the next start waits %.1fs", n, delay);
}

/* Deletes all but the newest KEEP_STOPPED stopped tasks of each service. */
static void prune(struct sched *sc)
{
    json_t *tasks = json_object_get(sched_store_state(sc->store), "tasks"), *t;
    json_t *count = json_object();
    const char *id;
    json_t *ids = json_array();
    json_object_foreach(tasks, id, t)
        if (task_is(t, TASK_STOPPED))
            json_array_append_new(ids, json_string(id));
    /* Newest first. */
    size_t n = json_array_size(ids);
    for (size_t i = 1; i < n; i++)
        for (size_t k = i; k > 0; k--) {
            const char *a = json_string_value(
                json_object_get(json_object_get(tasks, json_string_value(json_array_get(ids, k - 1))), "stopped_at"));
            const char *b = json_string_value(
                json_object_get(json_object_get(tasks, json_string_value(json_array_get(ids, k))), "stopped_at"));
            if (!a || !b || strcmp(a, b) >= 0)
                break;
            json_t *x = json_incref(json_array_get(ids, k - 1));
            json_array_set(ids, k - 1, json_array_get(ids, k));
            json_array_set_new(ids, k, x);
        }
    for (size_t i = 0; i < n; i++) {
        const char *tid = json_string_value(json_array_get(ids, i));
        json_t *svc = json_object_get(json_object_get(tasks, tid), "service");
        const char *key = json_is_string(svc) ? json_string_value(svc) : "";
        json_int_t c = json_integer_value(json_object_get(count, key)) + 1;
        json_object_set_new(count, key, json_integer(c));
        if (c > KEEP_STOPPED) {
            char path[80];
            snprintf(path, sizeof path, "tasks/%s", tid);
            json_t *gone = json_object_get(tasks, tid);
            const char *log = json_string_value(json_object_get(gone, "log"));
            if (log && agent_ours(&sc->agent, gone)) /* the embedded node's log goes with the task */
                unlink(log);
            sched_store_put(sc->store, path, NULL, NULL, NULL);
        }
    }
    json_decref(ids);
    json_decref(count);
}

/* Whether task <t> counts toward its service's current deployment: the current task definition, on
 * a node that stays. */
static bool is_current(struct sched *sc, json_t *t, const char *td)
{
    return strcmp(json_string_value(json_object_get(t, "task_definition")), td) == 0 &&
           !sched_task_on_leaving_node(sc, t);
}

/* The newest (or oldest) active task of <service> that is (or is not) current. */
static const char *pick(struct sched *sc, json_t *tasks, const char *service, const char *td, bool current, bool newest)
{
    const char *best = NULL, *best_at = NULL, *id;
    json_t *t;
    json_object_foreach(tasks, id, t) {
        const char *ts = json_string_value(json_object_get(t, "service"));
        if (!ts || strcmp(ts, service) != 0 || !active(t) || is_current(sc, t, td) != current)
            continue;
        const char *at = json_string_value(json_object_get(t, "created_at"));
        if (!best || (newest ? strcmp(at, best_at) > 0 : strcmp(at, best_at) < 0)) {
            best = id;
            best_at = at;
        }
    }
    return best;
}

void sched_deployment_start(struct sched *sc, const char *service, const char *previous, const char *current)
{
    char path[300], last[300] = "";
    snprintf(path, sizeof path, "deployments/%s", service);
    /* A rollback goes to the last deployment that COMPLETED, not to one that was itself failing. */
    json_t *old = sched_store_get(sc->store, path);
    if (json_is_string(json_object_get(old, "last_completed")))
        snprintf(last, sizeof last, "%s", json_string_value(json_object_get(old, "last_completed")));
    else if (old && sched_is(old, "status", "COMPLETED"))
        snprintf(last, sizeof last, "%s", json_string_value(json_object_get(old, "current")));
    if (*last && strcmp(last, current) != 0)
        previous = last;
    json_t *d = json_pack("{s:s,s:s,s:i,s:s}", "previous", previous, "current", current, "failed", 0, "status",
                          "IN_PROGRESS");
    if (*last)
        json_object_set_new(d, "last_completed", json_string(last));
    sched_store_put(sc->store, path, d, NULL, NULL);
    sched_task_stopped(sc, service, 0, false); /* a new deployment starts without delay */
    sched_event(sc, service, "deployment from %s to %s started", previous, current);
}

/* Deployment state of a service, kept durably at deployments/NAME:
 * {"previous": TD, "current": TD, "failed": N, "status": IN_PROGRESS|COMPLETED|FAILED|ROLLED_BACK}. */
static json_t *deployment(struct sched *sc, const char *service)
{
    char path[300];
    snprintf(path, sizeof path, "deployments/%s", service);
    return sched_store_get(sc->store, path);
}

static void deployment_set(struct sched *sc, const char *service, json_t *fields)
{
    char path[300];
    snprintf(path, sizeof path, "deployments/%s", service);
    sched_store_merge(sc->store, path, fields);
}

static void sched_deployment_task_failed(struct sched *sc, const char *service, const char *td, const char *why)
{
    json_t *svc = sched_service_get(sc->store, service);
    json_t *d = deployment(sc, service);
    if (!svc || !d || strcmp(json_string_value(json_object_get(d, "status")), "IN_PROGRESS") != 0 ||
        strcmp(json_string_value(json_object_get(d, "current")), td) != 0)
        return;
    json_int_t failed = json_integer_value(json_object_get(d, "failed")) + 1;
    /* deployment_set replaces <d>: keep copies of what is needed afterwards. */
    char prev_td[300] = "", cur_td[300];
    if (json_is_string(json_object_get(d, "previous")))
        snprintf(prev_td, sizeof prev_td, "%s", json_string_value(json_object_get(d, "previous")));
    snprintf(cur_td, sizeof cur_td, "%s", td);
    td = cur_td;
    deployment_set(sc, service, json_pack("{s:I,s:s}", "failed", failed, "last_failure", why));
    json_t *cb = json_object_get(json_object_get(svc, "deployment"), "circuit_breaker");
    if (!json_is_true(json_object_get(cb, "enable")))
        return;
    /* ECS: half the desired count, clamped to 3..200. */
    json_int_t desired = json_integer_value(json_object_get(svc, "desired_count"));
    json_int_t threshold = (desired + 1) / 2;
    threshold = threshold < 3 ? 3 : threshold > 200 ? 200 : threshold;
    if (failed < threshold)
        return;
    const char *prev = prev_td;
    if (json_is_true(json_object_get(cb, "rollback")) && *prev) {
        sched_event(sc, service, "deployment to %s failed: %lld tasks failed (circuit breaker; the last: %s); rolling back to %s",
                    td, (long long)failed, why, prev);
        json_t *copy = json_deep_copy(svc);
        json_object_set_new(copy, "task_definition", json_string(prev));
        char path[300];
        snprintf(path, sizeof path, "services/%s", service);
        deployment_set(sc, service, json_pack("{s:s}", "status", "ROLLED_BACK"));
        sched_store_put(sc->store, path, copy, NULL, NULL);
        sched_task_stopped(sc, service, 0, false); /* the rollback starts without delay */
    } else {
        sched_event(sc, service, "deployment to %s failed: %lld tasks failed (circuit breaker; the last: %s)", td,
                    (long long)failed, why);
        deployment_set(sc, service, json_pack("{s:s}", "status", "FAILED"));
    }
}

/* Task <id> became STOPPED: an event, the restart backoff, the deployment's circuit breaker. */
static void task_ended(struct sched *sc, const char *id)
{
    char svc[128] = "", td[300] = "";
    json_t *t = task_get(&sc->tasks, id);
    if (!t)
        return;
    sched_stop_forget(sc, id);
    if (json_is_string(json_object_get(t, "service")))
        snprintf(svc, sizeof svc, "%s", json_string_value(json_object_get(t, "service")));
    snprintf(td, sizeof td, "%s", json_string_value(json_object_get(t, "task_definition")));
    const char *code = json_string_value(json_object_get(t, "stop_code"));
    bool failed = code && (strcmp(code, "EssentialContainerExited") == 0 || strcmp(code, "TaskFailedToStart") == 0 ||
                           strcmp(code, "TaskFailedHealthChecks") == 0);
    double ran = json_object_get(t, "started_at") ? task_age_s(t, "started_at") - task_age_s(t, "stopped_at") : 0;
    /* A task that failed before it was ever healthy counts as a failed start, however long it ran. */
    bool never_healthy = !json_object_get(t, "healthy_at");
    char why[400];
    snprintf(why, sizeof why, "task %s: %s", id,
             json_is_string(json_object_get(t, "stopped_reason")) ? json_string_value(json_object_get(t, "stopped_reason"))
                                                                  : code ? code : "stopped");
    sched_event(sc, *svc ? svc : NULL, "task %s %s: %s", id,
                code && strcmp(code, "TaskFailedToStart") == 0 ? "failed to start" : "stopped",
                json_is_string(json_object_get(t, "stopped_reason"))
                    ? json_string_value(json_object_get(t, "stopped_reason"))
                    : "no reason given");
    if (*svc) {
        sched_task_stopped(sc, svc, failed && never_healthy ? 0 : ran, failed);
        if (failed && (ran < HEALTHY_RUN_S || never_healthy))
            sched_deployment_task_failed(sc, svc, td, why);
    }
}

/* The task table's hook: every transition of every task, wherever it runs. */
static void task_changed(void *arg, const char *id, enum task_status was, enum task_status now)
{
    struct sched *sc = arg;
    if (now == TASK_STOPPED)
        task_ended(sc, id);
    if (now == TASK_PENDING || now == TASK_RUNNING || now == TASK_STOPPED) {
        sched_kick(sc);
        sched_sync_kick(sc);
    }
}

/* The embedded agent's hooks. */
static void agent_wants_stop(void *arg, const char *id, const char *code, const char *reason)
{
    sched_task_stop(arg, id, code, reason);
}

static void agent_event_hook(void *arg, const char *service, const char *msg)
{
    sched_event(arg, service, "%s", msg);
}

/* One service: a rolling deployment toward <desired> tasks of its task definition. Plain
 * scaling is the case without old tasks. True when it is a deleted service whose tasks have all
 * stopped (it can go). minimum_healthy_percent bounds how many RUNNING tasks
 * may be stopped, maximum_percent how many may run in all. */
static bool reconcile_service(struct sched *sc, const char *name, json_t *svc, json_t *tasks)
{
    int desired = (int)json_integer_value(json_object_get(svc, "desired_count"));
    const char *td = json_string_value(json_object_get(svc, "task_definition"));
    json_t *dep = json_object_get(svc, "deployment");
    int maxp = (int)json_integer_value(json_object_get(dep, "maximum_percent"));
    int minp = (int)json_integer_value(json_object_get(dep, "minimum_healthy_percent"));
    int max_total = desired * maxp / 100, min_healthy = (desired * minp + 99) / 100;
    if (max_total <= min_healthy && desired > 0)
        max_total = min_healthy + 1; /* 100/100 could never move */
    int new_n = 0, new_healthy = 0, old_n = 0, old_running = 0, leaving = 0;
    const char *id;
    json_t *t, *now_healthy = json_array(), *x;
    size_t i;
    json_object_foreach(tasks, id, t) {
        const char *ts = json_string_value(json_object_get(t, "service"));
        if (!ts || strcmp(ts, name) != 0)
            continue;
        if (!active(t)) { /* on its way out: a deployment is not over before it is STOPPED */
            leaving += !task_is(t, TASK_STOPPED);
            continue;
        }
        /* Old: another task definition, or on a node that is draining or lost (replaced like a deployment). */
        bool is_new = is_current(sc, t, td), ok = healthy(sc, svc, t);
        if (ok && !json_object_get(t, "healthy_at"))
            json_array_append_new(now_healthy, json_string(id));
        *(is_new ? &new_n : &old_n) += 1;
        /* New tasks count once healthy; old ones while they run (they are what serves now). */
        if (is_new)
            new_healthy += ok;
        else
            old_running += task_is(t, TASK_RUNNING);
        if (ok && task_age_s(t, "started_at") >= HEALTHY_RUN_S)
            sched_task_stopped(sc, name, HEALTHY_RUN_S, false); /* healthy long enough: forget failures */
    }
    /* First healthy: stamped (a task that fails later, having been healthy, is no failed start). */
    char at[40];
    util_rfc3339(util_wall(), at, sizeof at);
    json_array_foreach(now_healthy, i, x)
        task_set(&sc->tasks, json_string_value(x), json_pack("{s:s}", "healthy_at", at));
    json_decref(now_healthy);
    json_t *d = deployment(sc, name);
    bool failed = d && strcmp(json_string_value(json_object_get(d, "status")), "FAILED") == 0 &&
                  strcmp(json_string_value(json_object_get(d, "current")), td) == 0;
    struct svc_rt *rt = svc_rt(sc, name);
    rt->seen = true;
    bool throttled = util_now() < rt->until;
    /* Start tasks of the current definition, within maximum_percent. */
    int start = desired - new_n;
    if (start > max_total - new_n - old_n)
        start = max_total - new_n - old_n;
    if (start > 0 && !throttled && !failed) {
        char ids[512] = "", one[40];
        for (int k = 0; k < start; k++) {
            sched_run_task(sc, name, td, one);
            if (strlen(ids) + 40 < sizeof ids)
                snprintf(ids + strlen(ids), sizeof ids - strlen(ids), "%s%s", k ? ", " : "", one);
        }
        sched_event(sc, name, "has started %d tasks: %s", start, ids);
    }
    /* Stop old tasks while enough healthy ones remain (minimum_healthy_percent): old tasks go only as
     * new ones become healthy. */
    int can_stop = new_healthy + old_running - min_healthy;
    int stop_old = old_n - old_running; /* old ones not yet running serve nothing */
    if (can_stop > 0)
        stop_old += can_stop < old_running ? can_stop : old_running;
    if (new_healthy >= desired)
        stop_old = old_n;
    for (int k = 0; k < stop_old; k++) {
        const char *victim = pick(sc, tasks, name, td, false, false);
        if (!victim)
            break;
        sched_event(sc, name, "stopping task %s (%s)", victim,
                    "replaced by the deployment of the current task definition");
        sched_task_stop(sc, victim, "ServiceSchedulerInitiated", "Deployment replaced the task");
    }
    /* Scale in: the newest go first. */
    for (int extra = new_n - desired; extra > 0; extra--) {
        const char *victim = pick(sc, tasks, name, td, true, true);
        if (!victim)
            break;
        sched_event(sc, name, "stopping task %s (desired count %d)", victim, desired);
        sched_task_stop(sc, victim, "ServiceSchedulerInitiated", "Scaling activity initiated by the service scheduler");
    }
    if (d && old_n == 0 && leaving == 0 && new_healthy == desired &&
        strcmp(json_string_value(json_object_get(d, "status")), "IN_PROGRESS") == 0 &&
        strcmp(json_string_value(json_object_get(d, "current")), td) == 0) {
        sched_event(sc, name, "deployment to %s completed", td);
        deployment_set(sc, name, json_pack("{s:s,s:s}", "status", "COMPLETED", "last_completed", td));
    }
    if (sched_is(svc, "status", "DRAINING")) /* deleted: gone once nothing of it runs or stops */
        return new_n + old_n == 0 && leaving == 0;
    /* The scheduler's own view, not part of the user's service object. */
    bool steady = old_n == 0 && leaving == 0 && new_n == desired && new_healthy == desired;
    if (steady != rt->steady) {
        rt->steady = steady;
        if (steady)
            sched_event(sc, name, "has reached a steady state");
    }
    return false;
}

/* One pass over every service: start or stop tasks toward the desired count. */
static void reconcile(struct sched *sc)
{
    json_t *state = sched_store_state(sc->store);
    json_t *tasks = json_object_get(state, "tasks"), *t, *svc;
    const char *id, *name;
    struct list *it, *tmp;
    list_each(it, tmp, &sc->services_rt)
        list_entry(it, struct svc_rt, link)->seen = false;
    json_t *drained = json_array(), *x;
    size_t i;
    json_object_foreach(json_object_get(state, "services"), name, svc)
        if (reconcile_service(sc, name, svc, tasks))
            json_array_append_new(drained, json_string(name));
    /* Deleted services whose tasks have all stopped: their registrations go, then they do. */
    json_array_foreach(drained, i, x) {
        char path[300];
        const char *n = json_string_value(x);
        sched_sync_retire(sc, n, sched_service_get(sc->store, n));
        snprintf(path, sizeof path, "services/%s", n);
        sched_store_put(sc->store, path, NULL, NULL, NULL);
        snprintf(path, sizeof path, "deployments/%s", n);
        if (sched_store_get(sc->store, path))
            sched_store_put(sc->store, path, NULL, NULL, NULL);
        sched_event(sc, n, "service deleted: its tasks drained and stopped, its registrations removed");
    }
    json_decref(drained);
    /* Forget the services that are gone. */
    list_each(it, tmp, &sc->services_rt) {
        struct svc_rt *r = list_entry(it, struct svc_rt, link);
        if (!r->seen && !json_object_get(json_object_get(state, "services"), r->name)) {
            list_del(&r->link);
            free(r);
        }
    }
    /* Tasks of services that no longer exist (before placing: a deleted service's PENDING tasks never run). */
    state = sched_store_state(sc->store);
    tasks = json_object_get(state, "tasks");
    json_t *gone = json_array();
    json_object_foreach(tasks, id, t) {
        const char *ts = json_string_value(json_object_get(t, "service"));
        if (ts && active(t) && !json_object_get(json_object_get(state, "services"), ts))
            json_array_append_new(gone, json_string(id));
    }
    json_array_foreach(gone, i, x)
        sched_task_stop(sc, json_string_value(x), "ServiceSchedulerInitiated", "The service was deleted");
    json_decref(gone);
    /* The new tasks and those still waiting for room. */
    sched_place_pending(sc);
}

static void pass(struct sched *sc)
{
    reconcile(sc);
    prune(sc);
    sched_schedule(sc, &sc->tick, TICK_S);
}

void sched_stop(struct sched *sc)
{
    sc->reconcile_pass = NULL;
    agent_release(&sc->agent);
    while (!list_empty(&sc->services_rt)) {
        struct svc_rt *r = list_entry(sc->services_rt.next, struct svc_rt, link);
        list_del(&r->link);
        free(r);
    }
}

void sched_start(struct sched *sc)
{
    sc->tasks = (struct tasks){.store = sc->store, .changed = task_changed, .arg = sc};
    sc->agent = (struct agent){.loop = sc->loop,
                               .tasks = &sc->tasks,
                               .data_dir = sc->data_dir,
                               .node_id = sc->node_id,
                               .dns = sc->dns,
                               .namespace = sc->namespace,
                               .port_lo = sc->port_lo,
                               .port_hi = sc->port_hi,
                               .container_engine = *sc->node_id ? sc->container_engine : "none",
                               .image_pull_always = sc->image_pull_always,
                               .stop_hook = agent_wants_stop,
                               .event_hook = agent_event_hook,
                               .hook_arg = sc};
    agent_init(&sc->agent);
    if (sc->process_runtime)
        sc->agent.process = sc->process_runtime;
    agent_adopt(&sc->agent);
    sched_stops_resume(sc);
    sc->reconcile_pass = pass;
    sched_kick(sc);
}
