/* reconcile.c -- the service scheduler: a level-triggered loop that keeps each service at its desired count. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "berth/log.h"
#include "berth/util.h"
#include "sched.h"

#define TICK_S 1.0
#define MAX_EVENTS 1000
#define KEEP_STOPPED 20    /* stopped tasks kept per service (and for one-off tasks) */
#define HEALTHY_RUN_S 10.0 /* a task that ran this long resets its service's restart backoff */
#define BACKOFF_MAX_S 60.0

void sched_event(struct sched *sc, const char *service, const char *fmt, ...)
{
    char msg[512], ts[40];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    util_rfc3339(util_wall(), ts, sizeof ts);
    json_t *e = json_pack("{s:s,s:s}", "created_at", ts, "message", msg);
    if (service)
        json_object_set_new(e, "service", json_string(service));
    json_array_append_new(sc->events, e);
    if (json_array_size(sc->events) > MAX_EVENTS)
        json_array_remove(sc->events, 0);
    log_info("%s%s%s", service ? service : "", service ? ": " : "", msg);
}

void sched_task_update(struct sched *sc, const char *id, json_t *fields)
{
    char path[80];
    snprintf(path, sizeof path, "tasks/%s", id);
    sched_store_merge(sc->store, path, fields);
}

const char *sched_run_task(struct sched *sc, const char *service, const char *taskdef_ref, char *id_out)
{
    char family[256], path[300];
    const char *colon = strchr(taskdef_ref, ':');
    snprintf(family, sizeof family, "%.*s", colon ? (int)(colon - taskdef_ref) : (int)strlen(taskdef_ref), taskdef_ref);
    snprintf(path, sizeof path, "taskdefs/%s/%s", family, colon ? colon + 1 : "");
    json_t *td = sched_store_get(sc->store, path);
    util_random_id(id_out);
    char ts[40];
    util_rfc3339(util_wall(), ts, sizeof ts);
    json_t *t = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:O}", "id", id_out, "task_definition", taskdef_ref, "last_status",
                          "PENDING", "desired_status", "RUNNING", "health_status", "UNKNOWN", "created_at", ts,
                          "definition", td ? td : json_null());
    json_object_set_new(t, "service", service ? json_string(service) : json_null());
    snprintf(path, sizeof path, "tasks/%s", id_out);
    sched_store_put(sc->store, path, t, NULL, NULL);
    sched_kick(sc);
    return id_out;
}

static bool active(json_t *t)
{
    return strcmp(json_string_value(json_object_get(t, "desired_status")), "RUNNING") == 0;
}

double sched_task_age_s(json_t *t, const char *field)
{
    const char *ts = json_string_value(json_object_get(t, field));
    struct tm tm = {0};
    int ms = 0;
    if (!ts || sscanf(ts, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                      &tm.tm_sec, &ms) != 7)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return util_wall() - ((double)timegm(&tm) + ms / 1000.0);
}

/* Restart throttling, as ECS: tasks of a service that keep failing soon after
 * starting are started again after a growing delay (0.5 s, 1 s, 2 s ... 60 s). */
static void sched_task_stopped(struct sched *sc, const char *service, double ran_s, bool failed)
{
    if (!service)
        return;
    json_t *b = json_object_get(sc->backoff, service);
    if (!b) {
        b = json_pack("{s:i,s:f}", "failures", 0, "until", 0.0);
        json_object_set_new(sc->backoff, service, b);
    }
    if (!failed || ran_s >= HEALTHY_RUN_S) {
        json_object_set_new(b, "failures", json_integer(0));
        return;
    }
    json_int_t n = json_integer_value(json_object_get(b, "failures")) + 1;
    double delay = 0.5;
    for (json_int_t k = 1; k < n && delay < BACKOFF_MAX_S; k++)
        delay *= 2;
    if (delay > BACKOFF_MAX_S)
        delay = BACKOFF_MAX_S;
    json_object_set_new(b, "failures", json_integer(n));
    json_object_set_new(b, "until", json_real(util_now() + delay));
    sched_event(sc, service, "tasks keep failing to start (%lld in a row); the next start waits %.1fs", (long long)n,
                delay);
}

/* Deletes all but the newest KEEP_STOPPED stopped tasks of each service. */
static void prune(struct sched *sc)
{
    json_t *tasks = json_object_get(sched_store_state(sc->store), "tasks"), *t;
    json_t *count = json_object();
    const char *id;
    json_t *ids = json_array();
    json_object_foreach(tasks, id, t)
        if (strcmp(json_string_value(json_object_get(t, "last_status")), "STOPPED") == 0)
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
    char path[300];
    snprintf(path, sizeof path, "deployments/%s", service);
    sched_store_put(
        sc->store, path,
        json_pack("{s:s,s:s,s:i,s:s}", "previous", previous, "current", current, "failed", 0, "status", "IN_PROGRESS"),
        NULL, NULL);
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

static void sched_deployment_task_failed(struct sched *sc, const char *service, const char *td)
{
    json_t *svc = json_object_get(json_object_get(sched_store_state(sc->store), "services"), service);
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
    deployment_set(sc, service, json_pack("{s:I}", "failed", failed));
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
        sched_event(sc, service,
                    "deployment to %s failed: %lld tasks failed to start (circuit breaker); rolling back to %s", td,
                    (long long)failed, prev);
        json_t *copy = json_deep_copy(svc);
        json_object_set_new(copy, "task_definition", json_string(prev));
        char path[300];
        snprintf(path, sizeof path, "services/%s", service);
        deployment_set(sc, service, json_pack("{s:s}", "status", "ROLLED_BACK"));
        sched_store_put(sc->store, path, copy, NULL, NULL);
        sched_task_stopped(sc, service, 0, false); /* the rollback starts without delay */
    } else {
        sched_event(sc, service, "deployment to %s failed: %lld tasks failed to start (circuit breaker)", td,
                    (long long)failed);
        deployment_set(sc, service, json_pack("{s:s}", "status", "FAILED"));
    }
}

void sched_task_ended(struct sched *sc, const char *id)
{
    char path[80], svc[128] = "", td[300] = "";
    snprintf(path, sizeof path, "tasks/%s", id);
    json_t *t = sched_store_get(sc->store, path);
    if (!t)
        return;
    if (json_is_string(json_object_get(t, "service")))
        snprintf(svc, sizeof svc, "%s", json_string_value(json_object_get(t, "service")));
    snprintf(td, sizeof td, "%s", json_string_value(json_object_get(t, "task_definition")));
    const char *code = json_string_value(json_object_get(t, "stop_code"));
    bool failed = code && (strcmp(code, "EssentialContainerExited") == 0 || strcmp(code, "TaskFailedToStart") == 0);
    double ran =
        json_object_get(t, "started_at") ? sched_task_age_s(t, "started_at") - sched_task_age_s(t, "stopped_at") : 0;
    sched_event(sc, *svc ? svc : NULL, "task %s %s: %s", id,
                code && strcmp(code, "TaskFailedToStart") == 0 ? "failed to start" : "stopped",
                json_is_string(json_object_get(t, "stopped_reason"))
                    ? json_string_value(json_object_get(t, "stopped_reason"))
                    : "no reason given");
    if (*svc) {
        sched_task_stopped(sc, svc, ran, failed);
        if (failed && ran < HEALTHY_RUN_S)
            sched_deployment_task_failed(sc, svc, td);
    }
    sched_kick(sc);
    sched_sync_kick(sc);
}

void sched_task_running(struct sched *sc, const char *id)
{
    sched_sync_kick(sc);
    sched_kick(sc);
}

/* One service: a rolling deployment toward <desired> tasks of its task definition. Plain
 * scaling is the case without old tasks. minimum_healthy_percent bounds how many RUNNING tasks
 * may be stopped, maximum_percent how many may run in all. */
static void reconcile_service(struct sched *sc, const char *name, json_t *svc, json_t *tasks)
{
    int desired = (int)json_integer_value(json_object_get(svc, "desired_count"));
    const char *td = json_string_value(json_object_get(svc, "task_definition"));
    json_t *dep = json_object_get(svc, "deployment");
    int maxp = (int)json_integer_value(json_object_get(dep, "maximum_percent"));
    int minp = (int)json_integer_value(json_object_get(dep, "minimum_healthy_percent"));
    int max_total = desired * maxp / 100, min_healthy = (desired * minp + 99) / 100;
    if (max_total <= min_healthy && desired > 0)
        max_total = min_healthy + 1; /* 100/100 could never move */
    int new_n = 0, new_running = 0, old_n = 0, old_running = 0;
    const char *id;
    json_t *t;
    json_object_foreach(tasks, id, t) {
        const char *ts = json_string_value(json_object_get(t, "service"));
        if (!ts || strcmp(ts, name) != 0 || !active(t))
            continue;
        /* Old: another task definition, or on a node that is draining or lost (replaced like a deployment). */
        bool is_new = is_current(sc, t, td);
        bool is_running = strcmp(json_string_value(json_object_get(t, "last_status")), "RUNNING") == 0;
        *(is_new ? &new_n : &old_n) += 1;
        *(is_new ? &new_running : &old_running) += is_running;
        if (is_running && sched_task_age_s(t, "started_at") >= HEALTHY_RUN_S)
            sched_task_stopped(sc, name, HEALTHY_RUN_S, false); /* healthy long enough: forget failures */
    }
    json_t *d = deployment(sc, name);
    bool failed = d && strcmp(json_string_value(json_object_get(d, "status")), "FAILED") == 0 &&
                  strcmp(json_string_value(json_object_get(d, "current")), td) == 0;
    json_t *b = json_object_get(sc->backoff, name);
    bool throttled = b && util_now() < json_real_value(json_object_get(b, "until"));
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
    /* Stop old tasks while enough RUNNING ones remain (minimum_healthy_percent). */
    int can_stop = new_running + old_running - min_healthy;
    int stop_old = old_n - old_running; /* old ones not yet running serve nothing */
    if (can_stop > 0)
        stop_old += can_stop < old_running ? can_stop : old_running;
    if (new_running >= desired)
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
    if (d && old_n == 0 && new_running == desired &&
        strcmp(json_string_value(json_object_get(d, "status")), "IN_PROGRESS") == 0 &&
        strcmp(json_string_value(json_object_get(d, "current")), td) == 0) {
        sched_event(sc, name, "deployment to %s completed", td);
        deployment_set(sc, name, json_pack("{s:s}", "status", "COMPLETED"));
    }
    /* The scheduler's own view, not part of the user's service object. */
    bool steady = old_n == 0 && new_n == desired && new_running == desired;
    if (steady != json_is_true(json_object_get(sc->steady, name))) {
        json_object_set_new(sc->steady, name, json_boolean(steady));
        if (steady)
            sched_event(sc, name, "has reached a steady state");
    }
}

/* One pass over every service: start or stop tasks toward the desired count. */
static void reconcile(struct sched *sc)
{
    json_t *state = sched_store_state(sc->store);
    json_t *tasks = json_object_get(state, "tasks"), *t, *svc;
    const char *id, *name;
    json_object_foreach(json_object_get(state, "services"), name, svc)
        reconcile_service(sc, name, svc, tasks);
    /* The new tasks and those still waiting for room. */
    sched_place_pending(sc);
    tasks = json_object_get(sched_store_state(sc->store), "tasks");
    /* Tasks of services that no longer exist. */
    json_object_foreach(tasks, id, t) {
        const char *ts = json_string_value(json_object_get(t, "service"));
        char path[300];
        if (!ts || !active(t))
            continue;
        snprintf(path, sizeof path, "services/%s", ts);
        if (!sched_store_get(sc->store, path))
            sched_task_stop(sc, id, "ServiceSchedulerInitiated", "The service was deleted");
    }
}

static void tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct sched *sc = w->data;
    reconcile(sc);
    prune(sc);
    w->repeat = TICK_S;
    ev_timer_again(loop, w);
}

void sched_kick(struct sched *sc)
{
    /* Soon, but outside the caller's stack (it may be walking the state). */
    sc->tick.repeat = 0.01;
    ev_timer_again(sc->loop, &sc->tick);
}

void sched_stop(struct sched *sc)
{
    ev_timer_stop(sc->loop, &sc->tick);
    sched_agent_release(sc);
    json_decref(sc->events);
    json_decref(sc->backoff);
    json_decref(sc->steady);
}

void sched_start(struct sched *sc)
{
    sc->events = json_array();
    sc->backoff = json_object();
    sc->steady = json_object();
    sched_agent_adopt(sc);
    sched_nodes_resume(sc);
    ev_init(&sc->tick, tick);
    sc->tick.data = sc;
    sched_kick(sc);
}
