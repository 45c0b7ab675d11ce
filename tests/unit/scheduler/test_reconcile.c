/* test_reconcile.c -- the service scheduler driven through the node agent's runtime interface: a fake
 * runtime (no processes) stands in for proc.c, the store is a temporary directory, and the real event
 * loop runs the reconcile passes. Scaling out and in, replacing a task that exits, the restart
 * backoff, and a rolling deployment to a new task definition. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/buf.h"
#include "sched.h"
#include "../../tap.h"

/* ---- the fake runtime: tasks "run" as soon as they start, and stop when told ---- */

static struct {
    int starts, stops;
    json_t *running; /* id -> true */
    double stop_delay; /* > 0: a stop completes this much later (as processes take time to exit) */
} F;

struct late_stop {
    ev_timer timer;
    struct agent *a;
    char id[40];
};

static void stop_now(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct late_stop *l = w->data;
    task_stopped(l->a->tasks, l->id, NULL, NULL);
    free(l);
}

static int fake_start(struct agent *a, const char *id, json_t *env, json_t *ports, char *why, size_t why_len)
{
    F.starts++;
    json_object_set_new(F.running, id, json_true());
    const char *port = json_string_value(json_object_get(json_array_get(env, 0), "PORT"));
    task_activating(a->tasks, id, json_pack("[{s:s}]", "name", port ? port : "no PORT"), json_incref(ports), NULL);
    task_running(a->tasks, id);
    return 0;
}

static bool fake_stop(struct agent *a, const char *id)
{
    if (!json_object_get(F.running, id))
        return false;
    F.stops++;
    json_object_del(F.running, id);
    if (F.stop_delay <= 0) {
        task_stopped(a->tasks, id, NULL, NULL);
        return true;
    }
    struct late_stop *l = calloc(1, sizeof *l);
    l->a = a;
    snprintf(l->id, sizeof l->id, "%s", id);
    ev_timer_init(&l->timer, stop_now, F.stop_delay, 0);
    l->timer.data = l;
    ev_timer_start(a->loop, &l->timer);
    return true;
}

static int fake_signal(struct agent *a, const char *id, int sig)
{
    return json_object_get(F.running, id) ? 0 : -1;
}

static void fake_adopt(struct agent *a, const char *id, json_t *task) {}
static json_t *fake_stats(struct agent *a, const char *id)
{
    return NULL;
}
static bool fake_running(struct agent *a, const char *id)
{
    return json_object_get(F.running, id) != NULL;
}
static void fake_all(struct agent *a) {}

static int fake_exec(struct agent *a, const char *id, int container, char *const *argv, json_t *env, double timeout_s,
                     const struct exec_tty *tty, void **input, void (*out)(void *, const char *, size_t),
                     void (*done)(void *, int), void *arg)
{
    return -1;
}

static const struct runtime_ops fake = {.name = "fake",
                                        .start = fake_start,
                                        .stop = fake_stop,
                                        .signal = fake_signal,
                                        .adopt = fake_adopt,
                                        .exec = fake_exec,
                                        .stats = fake_stats,
                                        .running = fake_running,
                                        .kill_all = fake_all,
                                        .release = fake_all};

/* ---- helpers ---- */

static struct sched sc;

/* Tasks of "web" in <st> (and of task definition <td> when not NULL). */
static int count(enum task_status st, const char *td)
{
    int n = 0;
    const char *id;
    json_t *t;
    json_object_foreach(json_object_get(sched_store_state(sc.store), "tasks"), id, t)
        n += task_is(t, st) && (!td || strcmp(json_string_value(json_object_get(t, "task_definition")), td) == 0);
    return n;
}

static void tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    ev_break(loop, EVBREAK_ONE);
}

/* Runs the loop until <cond> holds or <seconds> pass; returns whether it held. */
static bool run_until(bool (*cond)(void *), void *arg, double seconds)
{
    ev_timer t;
    ev_timer_init(&t, tick, 0.01, 0.01);
    ev_timer_start(sc.loop, &t);
    double end = ev_time() + seconds;
    bool held;
    while (!(held = cond(arg)) && ev_time() < end)
        ev_run(sc.loop, 0);
    ev_timer_stop(sc.loop, &t);
    return held;
}

static int want_running, want_td_running;
static const char *want_td;
static bool running_is(void *arg)
{
    return count(TASK_RUNNING, NULL) == want_running && (!want_td || count(TASK_RUNNING, want_td) == want_td_running);
}

static int count_of(const char *service, enum task_status st)
{
    int n = 0;
    const char *id;
    json_t *t;
    json_object_foreach(json_object_get(sched_store_state(sc.store), "tasks"), id, t) {
        const char *ts = json_string_value(json_object_get(t, "service"));
        n += ts && strcmp(ts, service) == 0 && task_is(t, st);
    }
    return n;
}

static bool stuck_pending(void *arg)
{
    return count_of("stuck", TASK_PENDING) == 2;
}

static bool stuck_stopped(void *arg)
{
    return count_of("stuck", TASK_STOPPED) == 2 && count_of("stuck", TASK_PENDING) == 0;
}

static bool deployment_completed(void *arg)
{
    const char *st = json_string_value(json_object_get(sched_store_get(sc.store, "deployments/web"), "status"));
    return st && strcmp(st, "COMPLETED") == 0;
}

static void put_taskdef(int rev)
{
    char *err = NULL, path[64];
    json_t *body = json_pack("{s:s,s:[{s:s,s:[s],s:[{s:s}]}]}", "family", "web", "containers", "name", "web", "command",
                             "/bin/true", "port_mappings", "name", "http");
    json_t *td = sched_taskdef_validate(body, &err);
    json_decref(body);
    json_object_set_new(td, "revision", json_integer(rev));
    json_object_set_new(td, "status", json_string("ACTIVE"));
    snprintf(path, sizeof path, "taskdefs/web/%d", rev);
    sched_store_put(sc.store, path, td, NULL, NULL);
}

static char *resolve(void *ctx, const char *ref)
{
    return strdup(ref);
}

static void set_service(int desired, const char *td)
{
    char *err = NULL;
    json_t *body = json_pack("{s:s,s:s,s:i}", "name", "web", "task_definition", td, "desired_count", desired);
    json_t *svc = sched_service_validate(body, resolve, NULL, &err);
    json_decref(body);
    if (!svc)
        printf("# %s\n", err);
    sched_store_put(sc.store, "services/web", svc, NULL, NULL);
    sched_kick(&sc);
}

/* The oldest RUNNING task of web (or NULL). */
static const char *a_running_task(void)
{
    const char *id, *best = NULL;
    json_t *t;
    json_object_foreach(json_object_get(sched_store_state(sc.store), "tasks"), id, t)
        if (task_is(t, TASK_RUNNING))
            best = id;
    return best;
}

int main(void)
{
    char dir[] = "/tmp/berth-reconcile-test-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    char *err = NULL;
    F.running = json_object();
    sc = (struct sched){.loop = EV_DEFAULT,
                        .store = sched_store_open(EV_DEFAULT, dir, &err),
                        .data_dir = dir,
                        .dns = "127.0.0.1:8600",
                        .namespace = "berth.internal",
                        .node_id = "local",
                        .port_lo = 42000,
                        .port_hi = 42999,
                        .cpu = 4096,
                        .memory_mib = 4096,
                        .attributes = json_object(),
                        .node_lost_after_s = 10,
                        .autoscale_interval_s = 1,
                        .process_runtime = &fake};
    sched_init(&sc);
    sched_nodes_start(&sc);
    put_taskdef(1);
    set_service(2, "web:1");
    sched_start(&sc);

    want_running = 2;
    ok(run_until(running_is, NULL, 5), "scale out: the service reaches 2 RUNNING tasks");
    is_int(F.starts, 2, "the runtime was asked to start 2 tasks");
    const char *id = a_running_task();
    json_t *t = id ? task_get(&sc.tasks, id) : NULL;
    json_t *port = json_object_get(json_object_get(t, "ports"), "http");
    ok(json_integer_value(port) >= 42000 && json_integer_value(port) <= 42999, "a task got a host port in the node's range");
    char want_port[16];
    snprintf(want_port, sizeof want_port, "%lld", json_integer_value(port));
    is_str(json_string_value(json_object_get(json_array_get(json_object_get(t, "containers"), 0), "name")), want_port,
           "and the runtime saw it as PORT in the container's environment");
    is_str(json_string_value(json_object_get(t, "node")), "local", "placed on the embedded node");

    set_service(1, "web:1");
    want_running = 1;
    ok(run_until(running_is, NULL, 5), "scale in: one task is left RUNNING");
    is_int(F.stops, 1, "the runtime was asked to stop one task");
    is_int(count(TASK_STOPPED, NULL), 1, "the stopped task is STOPPED");
    const char *sid, *code = NULL;
    json_object_foreach(json_object_get(sched_store_state(sc.store), "tasks"), sid, t)
        if (task_is(t, TASK_STOPPED))
            code = json_string_value(json_object_get(t, "stop_code"));
    is_str(code, "ServiceSchedulerInitiated", "stopped by the service scheduler");

    /* The task exits on its own: replaced (after the restart backoff's first 0.5 s). */
    char gone[40];
    snprintf(gone, sizeof gone, "%s", a_running_task());
    json_object_del(F.running, gone);
    task_stopped(&sc.tasks, gone, "EssentialContainerExited", "Essential container in task exited (web, exit code 1)");
    want_running = 1;
    int starts = F.starts;
    double t0 = ev_time();
    ok(run_until(running_is, NULL, 5) && F.starts == starts + 1, "a task that exits is replaced");
    double waited = ev_time() - t0;
    ok(waited >= 0.4, "after the restart backoff (%.2f s; first delay 0.5 s)", waited);
    json_t *events = sched_events_json(&sc, "web", 0, 0);
    bool backoff_event = false;
    size_t i;
    json_t *e;
    json_array_foreach(events, i, e)
        backoff_event |= strstr(json_string_value(json_object_get(e, "message")), "keep failing") != NULL;
    json_decref(events);
    ok(backoff_event, "and the events say why it waited");

    /* A rolling deployment to web:2 at 2 tasks, with stops that take 1.5 s (longer than a pass). */
    F.stop_delay = 1.5;
    put_taskdef(2);
    sched_deployment_start(&sc, "web", "web:1", "web:2");
    set_service(2, "web:2");
    want_running = 2;
    want_td = "web:2";
    want_td_running = 2;
    ok(run_until(running_is, NULL, 10), "deployment: 2 tasks of web:2 RUNNING, none of web:1");
    is_int(count(TASK_RUNNING, "web:1"), 0, "no task of the old revision runs");
    ok(run_until(deployment_completed, NULL, 10), "the deployment is COMPLETED");
    is_int(count(TASK_STOPPED, "web:1"), 3, "only after every old task is STOPPED (3 of web:1 so far)");
    is_int(count(TASK_STOPPING, NULL) + count(TASK_DEACTIVATING, NULL), 0, "none is still on its way out");
    json_t *evs = sched_events_json(&sc, "web", 0, 0);
    int completed_at = -1, last_stop_at = -1;
    json_array_foreach(evs, i, e) {
        const char *msg = json_string_value(json_object_get(e, "message"));
        if (strstr(msg, "completed"))
            completed_at = (int)i;
        if (strstr(msg, "Deployment replaced the task"))
            last_stop_at = (int)i;
    }
    json_decref(evs);
    ok(last_stop_at >= 0 && completed_at > last_stop_at, "the events say so in that order (stopped at %d, completed at %d)",
       last_stop_at, completed_at);
    F.stop_delay = 0;

    /* A service whose tasks cannot be placed, deleted: its PENDING tasks never run anywhere. */
    {
        char *verr = NULL;
        json_t *body = json_pack("{s:s,s:s,s:i,s:[{s:s,s:s}]}", "name", "stuck", "task_definition", "web:2",
                                 "desired_count", 2, "placement_constraints", "type", "member_of", "expression",
                                 "attribute:zone == nowhere");
        json_t *svc = sched_service_validate(body, resolve, NULL, &verr);
        json_decref(body);
        sched_store_put(sc.store, "services/stuck", svc, NULL, NULL);
        sched_kick(&sc);
    }
    int before = F.starts;
    ok(run_until(stuck_pending, NULL, 5), "a service nothing can place has PENDING tasks with a reason");
    sched_store_put(sc.store, "services/stuck", NULL, NULL, NULL);
    /* The node now satisfies the constraint: were the tasks still wanted, this pass would place them. */
    sched_store_merge(sc.store, "nodes/local", json_pack("{s:{s:s}}", "attributes", "zone", "nowhere"));
    sched_kick(&sc);
    ok(run_until(stuck_stopped, NULL, 5), "deleted: its tasks are STOPPED");
    is_int(F.starts, before, "and none of them ever started");
    bool unplaced = true;
    json_object_foreach(json_object_get(sched_store_state(sc.store), "tasks"), sid, t)
        if (json_is_string(json_object_get(t, "service")) && strcmp(json_string_value(json_object_get(t, "service")), "stuck") == 0)
            unplaced &= !json_is_string(json_object_get(t, "node"));
    ok(unplaced, "no node was ever given one");
    ok(json_object_size(F.running) == 2, "the runtime runs exactly the 2 tasks the store says (%zu)",
       json_object_size(F.running));

    sched_calls_stop(&sc);
    sched_sync_stop(&sc);
    sched_stop(&sc);
    sched_stops_free(&sc);
    sched_nodes_stop(&sc);
    sched_timers_stop(&sc);
    sched_events_free(&sc);
    sched_store_close(sc.store);
    json_decref(sc.attributes);
    json_decref(F.running);
    tap_rm_rf(dir);
    return done_testing();
}
