/* ctr.c -- the container runtime: a task whose containers name an image runs them as OCI containers
 * through a container engine's Docker Engine API (engine.h): Podman's API service or dockerd.
 * Implements struct runtime_ops (agent.h).
 *
 * Starting a task sets its containers up one after the other: the image (pulled when missing, or
 * always with image_pull "always"), then create and start; each container carries labels naming its
 * task, its index and the agent that made it. The agent then long-polls each container's exit
 * (POST /containers/ID/wait), follows its output into the task's log file, and watches its memory
 * cgroup for OOM kills (cgroup v1: the engine cannot tell, the cgroup is gone once it exits). A task
 * stops with POST /containers/ID/stop?t=stop_timeout_s (SIGTERM, then SIGKILL); once every container
 * has exited they are removed, with the task's scratch volumes. After a restart the agent lists the
 * containers labelled as its own, adopts those of its tasks and removes the others. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "berth/alloc.h"
#include "berth/list.h"
#include "berth/log.h"
#include "berth/util.h"
#include "cgroup.h"
#include "ctr.h"
#include "ctr_int.h"
#include "engine.h"
#include "tasklog.h"


struct ctask *ctr_find(struct agent *a, const char *id)
{
    struct list *it, *tmp;
    list_each(it, tmp, &ctr_state(a)->tasks) {
        struct ctask *t = list_entry(it, struct ctask, link);
        if (strcmp(t->id, id) == 0)
            return t;
    }
    return NULL;
}

json_t *ctr_record(struct ctask *t)
{
    return task_get(t->a->tasks, t->id);
}

static json_t *def_of(struct ctask *t, int i)
{
    return json_array_get(json_object_get(json_object_get(ctr_record(t), "definition"), "containers"), (size_t)i);
}

static const char *image_of(struct ctask *t, int i)
{
    return json_string_value(json_object_get(def_of(t, i), "image"));
}

struct ctask *ctr_task_new(struct agent *a, const char *id, json_t *rec)
{
    struct ctask *t = xcalloc(1, sizeof *t);
    t->a = a;
    snprintf(t->id, sizeof t->id, "%s", id);
    json_t *cs = json_object_get(json_object_get(rec, "definition"), "containers"), *c;
    t->n = (int)json_array_size(cs);
    t->log_fd = -1;
    snprintf(t->stop_code, sizeof t->stop_code, "EssentialContainerExited");
    snprintf(t->reason, sizeof t->reason, "Essential container in task exited");
    size_t i;
    json_array_foreach(cs, i, c) {
        struct ctr *k = &t->c[i];
        k->t = t;
        k->i = (int)i;
        k->oom_fd = -1;
        k->essential = json_is_true(json_object_get(c, "essential"));
        k->stop_timeout = (int)json_number_value(json_object_get(c, "stop_timeout_s"));
    }
    list_add(&ctr_state(a)->tasks, &t->link);
    return t;
}

/* Stops watching container <k>: its exit and OOM kills, and (<output>) its output too. */
static void ctr_unwatch(struct ctr *k, bool output)
{
    engine_cancel(k->wait);
    engine_cancel(k->inspect);
    k->wait = k->inspect = NULL;
    if (output) {
        engine_cancel(k->follow);
        k->follow = NULL;
    }
    ev_io_stop(k->t->a->loop, &k->oom_io);
    if (k->oom_fd >= 0)
        close(k->oom_fd);
    k->oom_fd = -1;
}

void ctr_task_free(struct ctask *t)
{
    list_del(&t->link);
    for (int i = 0; i < t->n; i++)
        ctr_unwatch(&t->c[i], true);
    engine_cancel(t->op);
    agent_ready_stop(&t->ready);
    ev_timer_stop(t->a->loop, &t->drain_timer);
    if (t->log_fd >= 0)
        close(t->log_fd);
    json_decref(t->env);
    json_decref(t->ports);
    free(t);
}

/* ---- calls nobody waits for ---- */

void ctr_side_free(struct side *s)
{
    list_del(&s->link);
    free(s);
}

void ctr_side_done(void *arg, int status, json_t *body, const char *err)
{
    struct side *s = arg;
    if (status == 0 || status >= 400)
        log_warn("container engine: %s", err ? err : engine_message(body, "request refused"));
    ctr_side_free(s);
}

void ctr_fire(struct agent *a, const char *method, const char *path, double timeout_s)
{
    struct side *s = xcalloc(1, sizeof *s);
    s->a = a;
    list_add(&ctr_state(a)->sides, &s->link);
    s->call = engine_call(&ctr_state(a)->e, method, path, NULL, timeout_s, ctr_side_done, s);
}

void ctr_remove_container(struct agent *a, const char *cid)
{
    char path[160];
    snprintf(path, sizeof path, "/containers/%s?force=1&v=1", cid);
    ctr_fire(a, "DELETE", path, CTR_CALL_S);
}

/* ---- the end of a task ---- */


/* Once no container runs and no set-up call is under way: the containers go, the task is STOPPED. */
#define CTR_DRAIN_S 60.0 /* how long the output of exited containers may take to reach the log */

static void finish_if_done(struct ctask *t);

static void drain_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct ctask *t = w->data;
    log_warn("task %s: its output did not all reach its log within %.0f s", t->id, CTR_DRAIN_S);
    for (int i = 0; i < t->n; i++) {
        engine_cancel(t->c[i].follow);
        t->c[i].follow = NULL;
    }
    finish_if_done(t);
}

/* Once no container runs and no set-up call is under way: the task is STOPPED. Its containers are
 * removed (with its scratch volumes) once their output has all reached the log, which may come later
 * (the engine streams it at its own pace): meanwhile the task waits on the draining list. */
static void finish_if_done(struct ctask *t)
{
    if (t->op)
        return;
    for (int i = 0; i < t->n; i++)
        if (t->c[i].waiting && !t->c[i].exited)
            return;
    struct agent *a = t->a;
    if (!t->finished) {
        t->finished = true;
        list_del(&t->link);
        list_add(&ctr_state(a)->draining, &t->link);
        task_stopped(a->tasks, t->id, t->stop_code, t->reason);
    }
    for (int i = 0; i < t->n; i++)
        if (t->c[i].follow) {
            if (!ev_is_active(&t->drain_timer)) {
                ev_timer_init(&t->drain_timer, drain_timeout, CTR_DRAIN_S, 0);
                t->drain_timer.data = t;
                ev_timer_start(a->loop, &t->drain_timer);
            }
            return;
        }
    for (int i = 0; i < t->n; i++)
        if (t->c[i].created)
            ctr_remove_container(a, t->c[i].cid);
    char vols[1024];
    ctr_volumes_dir(ctr_state(a)->dir, t->id, vols, sizeof vols);
    util_rm_rf(vols);
    ctr_task_free(t);
}

static void maybe_exited(struct agent *a, const char *cid);

static void stop_done(void *arg, int status, json_t *body, const char *err)
{
    struct side *s = arg;
    if (status == 304 || status == 404) /* it had stopped (or gone) already: the event may have been missed */
        maybe_exited(s->a, s->exec_id);
    ctr_side_done(arg, status == 304 ? 204 : status, body, err);
}

void ctr_begin_stop(struct ctask *t)
{
    if (t->stopping)
        return;
    t->stopping = true;
    agent_ready_stop(&t->ready);
    for (int i = 0; i < t->n; i++) {
        struct ctr *k = &t->c[i];
        if (!k->waiting || k->exited)
            continue;
        char path[160];
        snprintf(path, sizeof path, "/containers/%s/stop?t=%d", k->cid, k->stop_timeout);
        struct side *s = xcalloc(1, sizeof *s);
        s->a = t->a;
        snprintf(s->exec_id, sizeof s->exec_id, "%s", k->cid); /* which container */
        list_add(&ctr_state(t->a)->sides, &s->link);
        s->call = engine_call(&ctr_state(t->a)->e, "POST", path, NULL, k->stop_timeout + CTR_CALL_S, stop_done, s);
    }
    finish_if_done(t);
}

/* The set-up failed: what was made goes, the task stops with <code> and <why>. */
static void fail(struct ctask *t, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(struct ctask *t, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->reason, sizeof t->reason, fmt, ap);
    va_end(ap);
    snprintf(t->stop_code, sizeof t->stop_code, "%s", code);
    log_warn("task %s: %s", t->id, t->reason);
    t->a->event_hook(t->a->hook_arg, json_string_value(json_object_get(ctr_record(t), "service")), t->reason);
    t->stopping = false; /* begin_stop again: containers started before the failure get stopped */
    ctr_begin_stop(t);
}

/* ---- a running container: its exit, its output, its OOM kills ---- */

static void container_exited(struct ctr *k, int code)
{
    struct ctask *t = k->t;
    if (k->exited)
        return;
    k->exited = true;
    if (k->oom_fd >= 0 && cg_oom_killed(&k->cg))
        k->oom = true;
    ctr_unwatch(k, false); /* its output stream ends by itself once all of it is in the log */
    json_t *cs = json_deep_copy(json_object_get(ctr_record(t), "containers"));
    json_t *c = json_array_get(cs, (size_t)k->i);
    if (c) {
        json_object_set_new(c, "exit_code", code >= 0 ? json_integer(code) : json_null());
        if (k->oom)
            json_object_set_new(c, "reason",
                                json_sprintf("OutOfMemoryError: container killed due to memory usage (limit %d MiB)",
                                             k->cg.mem_limit_mib));
    }
    task_set(t->a->tasks, t->id, json_pack("{s:o}", "containers", cs ? cs : json_array()));
    if (!t->stopping && k->essential) {
        snprintf(t->stop_code, sizeof t->stop_code, "EssentialContainerExited");
        snprintf(t->reason, sizeof t->reason, "Essential container in task exited (%s, exit code %d%s)",
                 json_string_value(json_object_get(def_of(t, k->i), "name")), code, k->oom ? ", OutOfMemoryError" : "");
        task_stopping(t->a->tasks, t->id, NULL, NULL);
        ctr_begin_stop(t);
        return;
    }
    finish_if_done(t);
}

/* The inspect after a container's "die" event (or a check that found it not running). */
static void on_exit_inspect(void *arg, int status, json_t *body, const char *err)
{
    struct ctr *k = arg;
    k->wait = NULL;
    json_t *st = json_object_get(body, "State"), *code = json_object_get(st, "ExitCode");
    if (status == 200 && json_is_true(json_object_get(st, "Running")))
        return; /* restarted by someone else: still ours, still running */
    if (status == 200 && json_is_true(json_object_get(st, "OOMKilled"))) /* the engine knows (cgroup v2) */
        k->oom = true;
    container_exited(k, status == 200 && json_is_integer(code) ? (int)json_integer_value(code) : -1);
}

/* Container <cid> of this agent may have exited: read how. */
static void maybe_exited(struct agent *a, const char *cid)
{
    struct list *it, *tmp;
    list_each(it, tmp, &ctr_state(a)->tasks) {
        struct ctask *t = list_entry(it, struct ctask, link);
        for (int i = 0; i < t->n; i++) {
            struct ctr *k = &t->c[i];
            if (!k->waiting || k->exited || k->wait || strcmp(k->cid, cid) != 0)
                continue;
            char path[160];
            snprintf(path, sizeof path, "/containers/%s/json", k->cid);
            k->wait = engine_call(&ctr_state(a)->e, "GET", path, NULL, CTR_CALL_S, on_exit_inspect, k);
        }
    }
}

static void on_event_data(void *arg, int stream, const char *data, size_t len)
{
    struct agent *a = arg;
    struct ctr_state *cs = ctr_state(a);
    buf_append(&cs->evbuf, data, len);
    char *line = buf_head(&cs->evbuf), *nl;
    size_t used = 0;
    while ((nl = memchr(line, '\n', cs->evbuf.len - used))) {
        json_t *ev = json_loadb(line, (size_t)(nl - line), 0, NULL);
        const char *action = json_string_value(json_object_get(ev, "Action"));
        const char *cid = json_string_value(json_object_get(json_object_get(ev, "Actor"), "ID"));
        if (!action)
            action = json_string_value(json_object_get(ev, "status"));
        if (!cid)
            cid = json_string_value(json_object_get(ev, "id"));
        if (action && cid && (strcmp(action, "die") == 0 || strcmp(action, "destroy") == 0))
            maybe_exited(a, cid);
        json_decref(ev);
        used += (size_t)(nl - line) + 1;
        line = nl + 1;
    }
    buf_consume(&cs->evbuf, used);
    if (cs->evbuf.len > (64u << 10)) /* no line is this long: drop it */
        buf_consume(&cs->evbuf, cs->evbuf.len);
}

static void on_event_end(void *arg, int status, json_t *body, const char *err)
{
    struct agent *a = arg;
    struct ctr_state *cs = ctr_state(a);
    cs->events = NULL;
    buf_consume(&cs->evbuf, cs->evbuf.len);
    if (cs->engine_down) /* still down: the periodic tick tries again */
        return;
    log_warn("container engine: the event stream ended (%s); following it again in 1 s, then every %.0f s until it "
             "answers", err ? err : status == 200 ? "closed" : engine_message(body, "refused"), CTR_CHECK_S);
    cs->engine_down = true;
    ev_timer_stop(a->loop, &cs->events_timer);
    ev_timer_set(&cs->events_timer, 1.0, CTR_CHECK_S);
    ev_timer_start(a->loop, &cs->events_timer);
}

static void on_check(void *arg, int status, json_t *body, const char *err)
{
    struct agent *a = arg;
    struct ctr_state *cs = ctr_state(a);
    cs->check = NULL;
    if (status != 200)
        return;
    if (cs->engine_down && cs->events) {
        log_info("container engine: it answers again; following its events");
        cs->engine_down = false;
    }
    json_t *running = json_object(), *c;
    size_t i;
    json_array_foreach(body, i, c)
        if (json_is_string(json_object_get(c, "State")) && strcmp(json_string_value(json_object_get(c, "State")), "running") == 0)
            json_object_set_new(running, json_string_value(json_object_get(c, "Id")), json_true());
    struct list *it, *tmp;
    json_t *gone = json_array(), *x;
    list_each(it, tmp, &cs->tasks) {
        struct ctask *t = list_entry(it, struct ctask, link);
        for (int k = 0; k < t->n; k++)
            if (t->c[k].waiting && !t->c[k].exited && !json_object_get(running, t->c[k].cid))
                json_array_append_new(gone, json_string(t->c[k].cid));
    }
    json_array_foreach(gone, i, x)
        maybe_exited(a, json_string_value(x));
    json_decref(gone);
    json_decref(running);
}

/* Every CTR_CHECK_S: the stream again if it broke, and a list of this agent's containers that
 * catches an exit the stream did not tell. */
static void events_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct agent *a = w->data;
    struct ctr_state *cs = ctr_state(a);
    if (!cs->events) {
        char path[1200], q[1000], *text;
        json_t *f = json_pack("{s:[s],s:[s,s]}", "type", "container", "event", "die", "destroy");
        text = json_dumps(f, JSON_COMPACT);
        util_url_escape(text, q, sizeof q);
        snprintf(path, sizeof path, "/events?filters=%s", q);
        free(text);
        json_decref(f);
        cs->events = engine_stream_raw(&cs->e, "GET", path, NULL, CTR_FOREVER_S, on_event_data, on_event_end, a);
    }
    if (!cs->check) {
        char path[1200], q[1000];
        json_t *f = json_pack("{s:[s]}", "label", "");
        json_array_set_new(json_object_get(f, "label"), 0, json_sprintf("berth.agent=%s", cs->dir));
        char *text = json_dumps(f, JSON_COMPACT);
        util_url_escape(text, q, sizeof q);
        snprintf(path, sizeof path, "/containers/json?all=1&filters=%s", q);
        free(text);
        json_decref(f);
        cs->check = engine_call(&cs->e, "GET", path, NULL, CTR_CALL_S, on_check, a);
    }
}

void ctr_events_start(struct agent *a)
{
    struct ctr_state *cs = ctr_state(a);
    buf_init(&cs->evbuf, 128u << 10);
    ev_init(&cs->events_timer, events_tick);
    cs->events_timer.data = a;
    cs->events_timer.repeat = CTR_CHECK_S;
    events_tick(a->loop, &cs->events_timer, 0); /* the stream first; the check then finds nothing */
    ev_timer_again(a->loop, &cs->events_timer);
    ev_unref(a->loop); /* it alone does not keep the loop running */
}

void ctr_events_stop(struct agent *a)
{
    struct ctr_state *cs = ctr_state(a);
    ev_ref(a->loop);
    ev_timer_stop(a->loop, &cs->events_timer);
    engine_cancel(cs->events);
    engine_cancel(cs->check);
    cs->events = cs->check = NULL;
    buf_free(&cs->evbuf);
}

static void on_output(void *arg, int stream, const char *data, size_t len)
{
    struct ctr *k = arg;
    struct ctask *t = k->t;
    if (t->log_fd >= 0 && write(t->log_fd, data, len) < 0)
        log_warn("task %s: writing its log: %s", t->id, strerror(errno));
    /* Capped as a process's log is: checked after every MiB written. */
    t->log_written += len;
    if (t->log_written >= TASKLOG_KEEP) {
        char path[1024];
        snprintf(path, sizeof path, "%s/tasks/%s.log", t->a->data_dir, t->id);
        tasklog_cap(path, TASKLOG_MAX, TASKLOG_KEEP);
        t->log_written = 0;
    }
}

static void start_container(struct ctask *t);

static void on_output_end(void *arg, int status, json_t *body, const char *err)
{
    struct ctr *k = arg;
    k->follow = NULL;
    if (k->attaching) { /* the engine would not attach: start it all the same, its logs followed instead */
        log_warn("task %s: attaching to container %s: %s", k->t->id, k->cid, err ? err : engine_message(body, "refused"));
        k->attaching = false;
        start_container(k->t);
    } else if (k->exited) { /* the last of it: the task may be done */
        finish_if_done(k->t);
    }
}

static void on_oom(struct ev_loop *loop, ev_io *w, int revents)
{
    struct ctr *k = w->data;
    uint64_t n;
    if (read(k->oom_fd, &n, sizeof n) < 0 && errno == EAGAIN)
        return;
    /* The kernel signals before its OOM killer picks a process (and again when the cgroup goes): an
     * OOM while the cgroup still exists is one. */
    char f[200];
    snprintf(f, sizeof f, "%s/memory.oom_control", k->cg.dir[0]);
    if (access(f, R_OK) == 0)
        k->oom = true;
    ev_io_stop(loop, w);
}

static void open_log(struct ctask *t)
{
    if (t->log_fd >= 0)
        return;
    char path[1024];
    snprintf(path, sizeof path, "%s/tasks/%s.log", t->a->data_dir, t->id);
    t->log_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

/* The cgroups of container <k>'s process <pid> (-1: unknown): its stats, and OOM kills watched. */
static void watch_cgroup(struct ctr *k, int pid)
{
    if (pid <= 0 || k->oom_fd >= 0 ||
        !cg_of_pid(&k->cg, pid, (int)json_integer_value(json_object_get(def_of(k->t, k->i), "memory_mib"))))
        return;
    k->oom_fd = cg_oom_watch(&k->cg);
    ev_io_init(&k->oom_io, on_oom, k->oom_fd, EV_READ);
    k->oom_io.data = k;
    if (k->oom_fd >= 0)
        ev_io_start(k->t->a->loop, &k->oom_io);
}

/* The inspect after a start (or an adoption): the container's process, for its cgroups. */
static void on_inspect(void *arg, int status, json_t *body, const char *err)
{
    struct ctr *k = arg;
    k->inspect = NULL;
    if (!k->exited)
        watch_cgroup(k, (int)json_integer_value(json_object_get(json_object_get(body, "State"), "Pid")));
}

void ctr_watch(struct ctr *k, double since)
{
    struct ctask *t = k->t;
    struct ctr_state *cs = ctr_state(t->a);
    char path[200];
    k->waiting = true; /* its exit comes through the event stream */
    open_log(t);
    if (!k->follow) { /* not attached since its start (adopted after a restart): its logs from <since> */
        snprintf(path, sizeof path, "/containers/%s/logs?follow=1&stdout=1&stderr=1&since=%lld", k->cid, (long long)since);
        k->follow = engine_stream(&cs->e, "GET", path, NULL, CTR_FOREVER_S, on_output, on_output_end, k);
    }
    /* its process, for its cgroups (meanwhile the task goes on) */
    snprintf(path, sizeof path, "/containers/%s/json", k->cid);
    k->inspect = engine_call(&cs->e, "GET", path, NULL, CTR_CALL_S, on_inspect, k);
}

/* ---- ACTIVATING -> RUNNING (runtime.c) ---- */

static void ready_failed(void *arg, const char *why)
{
    fail(arg, "TaskFailedToStart", "%s", why);
}

void ctr_await_ready(struct ctask *t)
{
    agent_ready_start(&t->ready, t->a, t->a->container, t->id, ready_failed, t);
}

/* ---- setting a task up: image, create, start, one container after the other ---- */

static void setup_next(struct ctask *t);


static void on_start(void *arg, int status, json_t *body, const char *err)
{
    struct ctask *t = arg;
    t->op = NULL;
    log_debug("task %s: container %d: start answered %d after %.0f ms", t->id, t->step, status, (util_now() - t->started) * 1000);
    struct ctr *k = &t->c[t->step];
    if (status != 204 && status != 304) {
        fail(t, "TaskFailedToStart", "CannotStartContainerError: %s",
             err ? err : engine_message(body, "the engine refused to start it"));
        return;
    }
    ctr_watch(k, 0);
    t->step++;
    setup_next(t);
}

static void start_container(struct ctask *t)
{
    if (t->stopping) {
        finish_if_done(t);
        return;
    }
    char path[160];
    snprintf(path, sizeof path, "/containers/%s/start", t->c[t->step].cid);
    t->op = engine_call(&ctr_state(t->a)->e, "POST", path, NULL, CTR_CALL_S, on_start, t);
}

/* Its output is attached: it can start without a byte written unseen. */
static void on_attached(void *arg)
{
    struct ctr *k = arg;
    if (!k->attaching)
        return;
    k->attaching = false;
    start_container(k->t);
}

static void on_create(void *arg, int status, json_t *body, const char *err)
{
    struct ctask *t = arg;
    t->op = NULL;
    log_debug("task %s: container %d: create answered %d after %.0f ms", t->id, t->step, status, (util_now() - t->started) * 1000);
    struct ctr *k = &t->c[t->step];
    const char *cid = json_string_value(json_object_get(body, "Id"));
    if (status == 201 && cid) {
        snprintf(k->cid, sizeof k->cid, "%s", cid);
        k->created = true;
    }
    if (t->stopping) {
        finish_if_done(t);
        return;
    }
    if (!k->created) {
        if (status == 404) /* the image went meanwhile: asked for (and pulled) again next time */
            json_object_del(ctr_state(t->a)->images, image_of(t, t->step));
        fail(t, "TaskFailedToStart", "CannotCreateContainerError: %s",
             err ? err : engine_message(body, "the engine refused to create it"));
        return;
    }
    open_log(t);
    k->attaching = true;
    k->follow = engine_attach(&ctr_state(t->a)->e, k->cid, on_output, on_attached, on_output_end, k);
}

static void create(struct ctask *t)
{
    char path[160];
    snprintf(path, sizeof path, "/containers/create?name=berth-%s-%d", t->id, t->step);
    json_t *body = ctr_spec(ctr_record(t), t->step, json_array_get(t->env, (size_t)t->step), t->ports, t->a->node_id,
                            ctr_state(t->a)->dir);
    t->op = engine_call(&ctr_state(t->a)->e, "POST", path, body, CTR_CALL_S, on_create, t);
    json_decref(body);
}

static void on_pull(void *arg, int status, json_t *body, const char *err)
{
    struct ctask *t = arg;
    t->op = NULL;
    log_debug("task %s: container %d: pull answered %d after %.0f ms", t->id, t->step, status, (util_now() - t->started) * 1000);
    const char *perr = json_string_value(json_object_get(body, "error"));
    if (t->stopping) {
        finish_if_done(t);
    } else if (status != 200 || perr) {
        fail(t, "TaskFailedToStart", "CannotPullContainerError: %s: %s", image_of(t, t->step),
             err ? err : perr ? perr : engine_message(body, "the pull failed"));
    } else {
        json_object_set_new(ctr_state(t->a)->images, image_of(t, t->step), json_true());
        create(t);
    }
}

static void pull(struct ctask *t)
{
    char path[600], ref[400];
    util_url_escape(image_of(t, t->step), ref, sizeof ref);
    snprintf(path, sizeof path, "/images/create?fromImage=%s", ref);
    t->op = engine_call(&ctr_state(t->a)->e, "POST", path, NULL, CTR_PULL_S, on_pull, t);
}

static void on_image(void *arg, int status, json_t *body, const char *err)
{
    struct ctask *t = arg;
    t->op = NULL;
    log_debug("task %s: container %d: image answered %d after %.0f ms", t->id, t->step, status, (util_now() - t->started) * 1000);
    if (status == 200) /* present: not asked again (if_not_present) */
        json_object_set_new(ctr_state(t->a)->images, image_of(t, t->step), json_true());
    if (t->stopping)
        finish_if_done(t);
    else if (status == 200)
        create(t);
    else if (status == 404)
        pull(t);
    else
        fail(t, "TaskFailedToStart", "CannotPullContainerError: %s: %s", image_of(t, t->step),
             err ? err : engine_message(body, "cannot inspect the image"));
}

static void setup_next(struct ctask *t)
{
    if (t->stopping) {
        finish_if_done(t);
        return;
    }
    if (t->step == t->n) { /* all started: ACTIVATING until the ports accept connections */
        json_t *states = json_array();
        for (int i = 0; i < t->n; i++)
            json_array_append_new(states, json_pack("{s:s,s:s}", "name", json_string_value(json_object_get(def_of(t, i), "name")),
                                                    "container_id", t->c[i].cid));
        char logpath[1024];
        snprintf(logpath, sizeof logpath, "%s/tasks/%s.log", t->a->data_dir, t->id);
        task_activating(t->a->tasks, t->id, states, json_incref(t->ports), logpath);
        json_decref(t->env);
        json_decref(t->ports);
        t->env = t->ports = NULL;
        ctr_await_ready(t);
        return;
    }
    if (t->a->image_pull_always) {
        pull(t);
        return;
    }
    if (json_object_get(ctr_state(t->a)->images, image_of(t, t->step))) {
        create(t);
        return;
    }
    char path[600], ref[400];
    util_url_escape(image_of(t, t->step), ref, sizeof ref);
    snprintf(path, sizeof path, "/images/%s/json", ref);
    t->op = engine_call(&ctr_state(t->a)->e, "GET", path, NULL, CTR_CALL_S, on_image, t);
}

int ctr_start(struct agent *a, const char *id, json_t *env, json_t *ports, char *why, size_t why_len)
{
    struct ctr_state *cs = ctr_state(a);
    if (!cs->ok) {
        snprintf(why, why_len, "CannotStartContainerError: this node has no container engine (%s)", cs->why);
        return -1;
    }
    struct ctask *t = ctr_task_new(a, id, task_get(a->tasks, id));
    t->started = util_now();
    t->env = json_incref(env);
    t->ports = json_incref(ports);
    setup_next(t);
    return 0;
}

/* ---- stop, signal, state ---- */

bool ctr_stop(struct agent *a, const char *id)
{
    struct ctask *t = ctr_find(a, id);
    if (!t)
        return false;
    agent_stop_reason(ctr_record(t), t->stop_code, sizeof t->stop_code, t->reason, sizeof t->reason);
    ctr_begin_stop(t);
    return true;
}

int ctr_signal(struct agent *a, const char *id, int sig)
{
    struct ctask *t = ctr_find(a, id);
    if (!t)
        return errno = ESRCH, -1;
    for (int i = 0; i < t->n; i++) {
        if (!t->c[i].waiting || t->c[i].exited)
            continue;
        char path[160];
        snprintf(path, sizeof path, "/containers/%s/kill?signal=%d", t->c[i].cid, sig);
        ctr_fire(a, "POST", path, CTR_CALL_S);
    }
    return 0;
}

bool ctr_running(struct agent *a, const char *id)
{
    return ctr_state(a) && ctr_find(a, id) != NULL;
}

json_t *ctr_stats(struct agent *a, const char *id)
{
    struct ctask *t = ctr_find(a, id);
    if (!t)
        return NULL;
    struct cg_total use = {0};
    int alive = 0;
    for (int i = 0; i < t->n; i++) {
        bool runs = t->c[i].waiting && !t->c[i].exited;
        alive += runs;
        if (runs)
            cg_total_add(&use, &t->c[i].cg);
    }
    return cg_total_json(&use, json_pack("{s:s,s:i}", "runtime", "container", "containers", alive));
}

