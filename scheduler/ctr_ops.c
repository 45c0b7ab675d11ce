/* ctr_ops.c -- the container runtime's table (agent.h): exec in a running container, adoption of
 * this agent's containers after a restart (and removal of those of no task), and finding the engine. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "berth/alloc.h"
#include "berth/log.h"
#include "berth/util.h"
#include "ctr_int.h"

/* ---- exec: a command in a running container (ECS Exec) ---- */

static void exec_output(void *arg, int stream, const char *data, size_t len)
{
    struct side *s = arg;
    s->out(s->arg, data, len);
}

static void exec_finish(struct side *s, int code)
{
    void (*done)(void *, int) = s->done;
    void *arg = s->arg;
    ctr_side_free(s);
    done(arg, code);
}

static void exec_inspected(void *arg, int status, json_t *body, const char *err)
{
    struct side *s = arg;
    json_t *code = json_object_get(body, "ExitCode");
    exec_finish(s, status == 200 && json_is_integer(code) ? (int)json_integer_value(code) : -1);
}

static void exec_ended(void *arg, int status, json_t *body, const char *err)
{
    struct side *s = arg;
    if (status != 200) { /* timed out, or the engine went away */
        exec_finish(s, -1);
        return;
    }
    char path[160];
    snprintf(path, sizeof path, "/exec/%s/json", s->exec_id);
    s->call = engine_call(&ctr_state(s->a)->e, "GET", path, NULL, CTR_CALL_S, exec_inspected, s);
}

static void exec_created(void *arg, int status, json_t *body, const char *err)
{
    struct side *s = arg;
    const char *eid = json_string_value(json_object_get(body, "Id"));
    if (status != 201 || !eid) {
        const char *m = err ? err : engine_message(body, "the engine refused the command");
        s->out(s->arg, m, strlen(m));
        s->out(s->arg, "\n", 1);
        exec_finish(s, 126);
        return;
    }
    snprintf(s->exec_id, sizeof s->exec_id, "%s", eid);
    char path[160];
    snprintf(path, sizeof path, "/exec/%s/start", eid);
    json_t *start = json_pack("{s:b,s:b}", "Detach", 0, "Tty", s->tty);
    if (s->tty) { /* a terminal's stream is not framed, and takes the input on the same connection */
        s->call = engine_stream_raw(&ctr_state(s->a)->e, "POST", path, start, s->timeout_s, exec_output, exec_ended, s);
        s->started = true;
    } else {
        s->call = engine_stream(&ctr_state(s->a)->e, "POST", path, start, s->timeout_s, exec_output, exec_ended, s);
    }
    json_decref(start);
}

static int ctr_exec(struct agent *a, const char *id, int container, char *const *argv, json_t *env, double timeout_s,
                    const struct exec_tty *tty, void **input, void (*out)(void *arg, const char *data, size_t len),
                    void (*done)(void *arg, int status), void *arg)
{
    struct ctask *t = ctr_find(a, id);
    if (!t || t->stopping || container < 0 || container >= t->n || !t->c[container].waiting || t->c[container].exited)
        return errno = ESRCH, -1;
    struct side *s = xcalloc(1, sizeof *s);
    *s = (struct side){.a = a, .timeout_s = timeout_s, .out = out, .done = done, .arg = arg, .tty = tty != NULL};
    list_add(&ctr_state(a)->sides, &s->link);
    if (input)
        *input = s;
    json_t *cmd = json_array();
    for (size_t i = 0; argv[i]; i++)
        json_array_append_new(cmd, json_string(argv[i]));
    json_t *body = json_pack("{s:o,s:b,s:b,s:b,s:b}", "Cmd", cmd, "AttachStdout", 1, "AttachStderr", 1, "Tty", tty != NULL,
                             "AttachStdin", tty != NULL);
    if (tty) {
        json_object_set_new(body, "ConsoleSize", json_pack("[i,i]", tty->rows, tty->cols));
        json_object_set_new(body, "Env", json_pack("[s]", "TERM=xterm"));
    }
    char path[160];
    snprintf(path, sizeof path, "/containers/%s/exec", t->c[container].cid);
    s->call = engine_call(&ctr_state(a)->e, "POST", path, body, CTR_CALL_S, exec_created, s);
    json_decref(body);
    return 0;
}

static void ctr_exec_input(struct agent *a, void *input, const char *data, size_t len)
{
    struct side *s = input;
    if (s->started) /* typed before the command started: dropped */
        engine_write(s->call, data, len);
}

/* ---- after a restart: adopt this agent's containers, remove the others ---- */

static void ctr_adopt(struct agent *a, const char *id, json_t *rec)
{
    if (ctr_state(a)->ok)
        ctr_task_new(a, id, rec)->adopting = true; /* its containers are found by ctr_sweep */
}

/* The label <key> of a container in a GET /containers/json answer. */
static const char *label(json_t *c, const char *key)
{
    return json_string_value(json_object_get(json_object_get(c, "Labels"), key));
}

static void on_list(void *arg, int status, json_t *body, const char *err)
{
    struct side *s = arg;
    struct agent *a = s->a;
    struct ctr_state *cs = ctr_state(a);
    struct list *it, *tmp;
    ctr_side_free(s);
    if (status != 200)
        log_warn("container engine: listing containers: %s", err ? err : engine_message(body, "refused"));
    json_t *c;
    size_t i;
    int adopted = 0, removed = 0;
    json_array_foreach(status == 200 ? body : NULL, i, c) {
        const char *cid = json_string_value(json_object_get(c, "Id")), *idx = label(c, "berth.index");
        struct ctask *t = cid ? ctr_find(a, label(c, "berth.task") ? label(c, "berth.task") : "") : NULL;
        int k = idx ? atoi(idx) : -1;
        bool running = json_is_string(json_object_get(c, "State")) &&
                       strcmp(json_string_value(json_object_get(c, "State")), "running") == 0;
        if (t && !t->adopting)
            continue; /* started since: not this sweep's */
        if (!t || k < 0 || k >= t->n || t->c[k].created || !running) {
            if (cid) {
                ctr_remove_container(a, cid);
                removed++;
            }
            continue;
        }
        struct ctr *ct = &t->c[k];
        snprintf(ct->cid, sizeof ct->cid, "%s", cid);
        ct->created = true;
        /* Output written while the agent was away is followed from the log file's last change. */
        char path[1024];
        struct stat st;
        snprintf(path, sizeof path, "%s/tasks/%s.log", a->data_dir, t->id);
        double since = stat(path, &st) == 0 ? (double)st.st_mtime : 0;
        ctr_watch(ct, since);
        adopted++;
    }
    if (status != 200)
        return; /* the tasks stay as they are; the scheduler learns of exits through the engine later */
    list_each(it, tmp, &cs->tasks) {
        struct ctask *t = list_entry(it, struct ctask, link);
        if (!t->adopting)
            continue;
        t->adopting = false;
        int alive = 0;
        for (int k = 0; k < t->n; k++)
            alive += t->c[k].created;
        char msg[200];
        if (alive < t->n) { /* a container is gone: the task with it */
            snprintf(t->stop_code, sizeof t->stop_code, "TaskLost");
            snprintf(t->reason, sizeof t->reason, "%d of its %d containers were gone after the agent restarted",
                     t->n - alive, t->n);
            task_stopping(a->tasks, t->id, t->stop_code, t->reason);
            ctr_begin_stop(t);
            continue;
        }
        snprintf(msg, sizeof msg, "task %s adopted after a restart (%d container%s)", t->id, alive, alive == 1 ? "" : "s");
        a->event_hook(a->hook_arg, json_string_value(json_object_get(ctr_record(t), "service")), msg);
        if (task_is(ctr_record(t), TASK_RUNNING))
            agent_health_start(a, a->container, t->id);
        else
            ctr_await_ready(t);
    }
    if (adopted || removed)
        log_info("container engine: adopted %d container(s), removed %d that belong to no task", adopted, removed);
}

static void ctr_sweep(struct agent *a)
{
    struct ctr_state *cs = ctr_state(a);
    if (!cs->ok)
        return;
    json_t *filters = json_pack("{s:[s,s]}", "label", "berth.node", "berth.agent");
    json_array_set_new(json_object_get(filters, "label"), 0, json_sprintf("berth.node=%s", a->node_id));
    json_array_set_new(json_object_get(filters, "label"), 1, json_sprintf("berth.agent=%s", cs->dir));
    char *text = json_dumps(filters, JSON_COMPACT), q[1500], path[1600];
    util_url_escape(text, q, sizeof q);
    snprintf(path, sizeof path, "/containers/json?all=1&filters=%s", q);
    free(text);
    json_decref(filters);
    struct side *s = xcalloc(1, sizeof *s);
    s->a = a;
    list_add(&cs->sides, &s->link);
    s->call = engine_call(&cs->e, "GET", path, NULL, CTR_CALL_S, on_list, s);
}

/* ---- at exit ---- */

static void removed(void *arg, int status, json_t *body, const char *err)
{
    int *pending = arg;
    if (status != 204 && status != 404)
        log_warn("container engine: removing a container: %s", err ? err : engine_message(body, "refused"));
    --*pending;
}

static void ctr_kill_all(struct agent *a)
{
    if (!ctr_state(a)->ok)
        return;
    /* At exit, as the process runtime's SIGKILL: every container is removed at once and waited for on
     * a loop of its own, so nothing of the plane's (exits, replacements) runs meanwhile. */
    struct ctr_state *cs = ctr_state(a);
    struct ev_loop *main_loop = cs->e.loop, *tmp_loop = ev_loop_new(EVFLAG_AUTO);
    struct list *it, *tmp;
    int pending = 0;
    cs->e.loop = tmp_loop;
    struct list *lists[] = {&cs->tasks, &cs->draining};
    for (int l = 0; l < 2; l++) {
        list_each(it, tmp, lists[l]) {
            struct ctask *t = list_entry(it, struct ctask, link);
            for (int i = 0; i < t->n; i++) {
                char path[160];
                snprintf(path, sizeof path, "/containers/%s?force=1&v=1", t->c[i].cid);
                if (t->c[i].created)
                    engine_call(&cs->e, "DELETE", path, NULL, 10.0, removed, &pending), pending++;
            }
        }
    }
    if (pending)
        ev_run(tmp_loop, 0);
    cs->e.loop = main_loop;
    ev_loop_destroy(tmp_loop);
}

static void ctr_release(struct agent *a)
{
    struct ctr_state *cs = ctr_state(a);
    if (cs->ok)
        ctr_events_stop(a);
    while (!list_empty(&cs->tasks))
        ctr_task_free(list_entry(cs->tasks.next, struct ctask, link));
    while (!list_empty(&cs->draining))
        ctr_task_free(list_entry(cs->draining.next, struct ctask, link));
    while (!list_empty(&cs->sides)) {
        struct side *s = list_entry(cs->sides.next, struct side, link);
        engine_cancel(s->call);
        ctr_side_free(s);
    }
    json_decref(cs->images);
    free(cs);
    a->container_state = NULL;
}

const struct runtime_ops ctr_runtime = {
    .name = "container",
    .start = ctr_start,
    .stop = ctr_stop,
    .signal = ctr_signal,
    .adopt = ctr_adopt,
    .sweep = ctr_sweep,
    .exec = ctr_exec,
    .exec_input = ctr_exec_input,
    .stats = ctr_stats,
    .running = ctr_running,
    .kill_all = ctr_kill_all,
    .release = ctr_release,
};

const char *ctr_open(struct agent *a)
{
    struct ctr_state *cs = xcalloc(1, sizeof *cs);
    list_init(&cs->tasks);
    list_init(&cs->sides);
    list_init(&cs->draining);
    cs->images = json_object();
    a->container_state = cs;
    a->container = &ctr_runtime;
    char *abs = realpath(a->data_dir, NULL);
    snprintf(cs->dir, sizeof cs->dir, "%s", abs ? abs : a->data_dir);
    free(abs);
    if (a->container_engine && strcmp(a->container_engine, "none") == 0) {
        snprintf(cs->why, sizeof cs->why, "container_engine is \"none\"");
    } else if (engine_open(&cs->e, a->loop, a->container_engine, cs->why, sizeof cs->why) == 0) {
        cs->ok = true;
        snprintf(cs->why, sizeof cs->why, "%s at %s", cs->e.version, cs->e.url);
        ctr_events_start(a);
    }
    return cs->ok ? NULL : cs->why;
}

const char *ctr_engine(struct agent *a)
{
    return ctr_state(a) && ctr_state(a)->ok ? ctr_state(a)->why : NULL;
}

const char *ctr_engine_error(struct agent *a)
{
    return ctr_state(a) && !ctr_state(a)->ok ? ctr_state(a)->why : NULL;
}
