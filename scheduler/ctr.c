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
#include "engine.h"
#include "tasklog.h"

#define CALL_S 30.0     /* a plain engine call */
#define PULL_S 600.0    /* an image pull */
#define FOREVER_S 1e8   /* waiting for an exit, following output */
#define DEFAULT_NOFILE 4096
#define DEFAULT_NPROC 4096

struct ctask;

struct ctr {
    struct ctask *t;
    int i;
    char cid[72];
    bool created; /* the engine has it (removed when the task ends) */
    bool waiting; /* it runs, and its exit is being waited for */
    bool exited;
    bool essential, oom;
    int stop_timeout;
    struct engine_call *wait, *follow;
    struct cgroup cg;
    int oom_fd;
    ev_io oom_io;
};

struct ctask {
    struct list link;
    struct agent *a;
    char id[40];
    int n, step;             /* containers; the next one to set up */
    struct ctr c[AGENT_MAX_CONTAINERS];
    struct engine_call *op;  /* the set-up call under way */
    json_t *env, *ports;     /* while setting up */
    int log_fd;
    ev_timer ready_timer;
    double started;
    bool adopting, stopping;
    char stop_code[40], reason[300];
};

/* A call nobody waits for (removing a container, stopping one) or an exec, kept so release can drop it. */
struct side {
    struct list link;
    struct agent *a;
    struct engine_call *call;
    char exec_id[80];
    double timeout_s;
    void (*out)(void *arg, const char *data, size_t len);
    void (*done)(void *arg, int status);
    void *arg;
};

struct ctr_state {
    struct engine e;
    char dir[900]; /* the agent's data_dir, absolute (bind mounts and labels need one) */
    bool ok;
    char why[200];
    struct list tasks, sides;
};

static struct ctr_state *state(struct agent *a)
{
    return a->container_state;
}

static struct ctask *find(struct agent *a, const char *id)
{
    struct list *it, *tmp;
    list_each(it, tmp, &state(a)->tasks) {
        struct ctask *t = list_entry(it, struct ctask, link);
        if (strcmp(t->id, id) == 0)
            return t;
    }
    return NULL;
}

static json_t *record(struct ctask *t)
{
    return task_get(t->a->tasks, t->id);
}

static json_t *def_of(struct ctask *t, int i)
{
    return json_array_get(json_object_get(json_object_get(record(t), "definition"), "containers"), (size_t)i);
}

static const char *image_of(struct ctask *t, int i)
{
    return json_string_value(json_object_get(def_of(t, i), "image"));
}

static struct ctask *task_new(struct agent *a, const char *id, json_t *rec)
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
    list_add(&state(a)->tasks, &t->link);
    return t;
}

static void ctr_unwatch(struct ctr *k)
{
    engine_cancel(k->wait);
    engine_cancel(k->follow);
    k->wait = k->follow = NULL;
    ev_io_stop(k->t->a->loop, &k->oom_io);
    if (k->oom_fd >= 0)
        close(k->oom_fd);
    k->oom_fd = -1;
}

static void task_free(struct ctask *t)
{
    list_del(&t->link);
    for (int i = 0; i < t->n; i++)
        ctr_unwatch(&t->c[i]);
    engine_cancel(t->op);
    ev_timer_stop(t->a->loop, &t->ready_timer);
    if (t->log_fd >= 0)
        close(t->log_fd);
    json_decref(t->env);
    json_decref(t->ports);
    free(t);
}

/* ---- calls nobody waits for ---- */

static void side_free(struct side *s)
{
    list_del(&s->link);
    free(s);
}

static void side_done(void *arg, int status, json_t *body, const char *err)
{
    struct side *s = arg;
    if (status == 0 || status >= 400)
        log_warn("container engine: %s", err ? err : engine_message(body, "request refused"));
    side_free(s);
}

static void fire(struct agent *a, const char *method, const char *path, double timeout_s)
{
    struct side *s = xcalloc(1, sizeof *s);
    s->a = a;
    list_add(&state(a)->sides, &s->link);
    s->call = engine_call(&state(a)->e, method, path, NULL, timeout_s, side_done, s);
}

static void remove_container(struct agent *a, const char *cid)
{
    char path[160];
    snprintf(path, sizeof path, "/containers/%s?force=1&v=1", cid);
    fire(a, "DELETE", path, CALL_S);
}

/* ---- the end of a task ---- */

static void volumes_dir(struct agent *a, const char *id, char *dst, size_t size)
{
    snprintf(dst, size, "%s/volumes/%s", state(a)->dir, id);
}

/* Once no container runs and no set-up call is under way: the containers go, the task is STOPPED. */
static void finish_if_done(struct ctask *t)
{
    if (t->op)
        return;
    for (int i = 0; i < t->n; i++)
        if (t->c[i].waiting && !t->c[i].exited)
            return;
    struct agent *a = t->a;
    for (int i = 0; i < t->n; i++)
        if (t->c[i].created)
            remove_container(a, t->c[i].cid);
    char id[40], code[40], reason[300], vols[1024];
    snprintf(id, sizeof id, "%s", t->id);
    snprintf(code, sizeof code, "%s", t->stop_code);
    snprintf(reason, sizeof reason, "%s", t->reason);
    volumes_dir(a, id, vols, sizeof vols);
    util_rm_rf(vols);
    task_free(t);
    task_stopped(a->tasks, id, code, reason);
}

static void stop_done(void *arg, int status, json_t *body, const char *err)
{
    side_done(arg, status == 304 ? 204 : status, body, err); /* 304: it had stopped already */
}

static void begin_stop(struct ctask *t)
{
    if (t->stopping)
        return;
    t->stopping = true;
    ev_timer_stop(t->a->loop, &t->ready_timer);
    for (int i = 0; i < t->n; i++) {
        struct ctr *k = &t->c[i];
        if (!k->waiting || k->exited)
            continue;
        char path[160];
        snprintf(path, sizeof path, "/containers/%s/stop?t=%d", k->cid, k->stop_timeout);
        struct side *s = xcalloc(1, sizeof *s);
        s->a = t->a;
        list_add(&state(t->a)->sides, &s->link);
        s->call = engine_call(&state(t->a)->e, "POST", path, NULL, k->stop_timeout + CALL_S, stop_done, s);
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
    t->a->event_hook(t->a->hook_arg, json_string_value(json_object_get(record(t), "service")), t->reason);
    t->stopping = false; /* begin_stop again: containers started before the failure get stopped */
    begin_stop(t);
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
    ctr_unwatch(k);
    json_t *cs = json_deep_copy(json_object_get(record(t), "containers"));
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
        begin_stop(t);
        return;
    }
    finish_if_done(t);
}

static void on_wait(void *arg, int status, json_t *body, const char *err)
{
    struct ctr *k = arg;
    k->wait = NULL;
    json_t *code = json_object_get(body, "StatusCode");
    if (status != 200)
        log_warn("task %s: waiting for container %s: %s", k->t->id, k->cid, err ? err : engine_message(body, "?"));
    container_exited(k, status == 200 && json_is_integer(code) ? (int)json_integer_value(code) : -1);
}

static void on_output(void *arg, int stream, const char *data, size_t len)
{
    struct ctr *k = arg;
    if (k->t->log_fd >= 0 && write(k->t->log_fd, data, len) < 0)
        log_warn("task %s: writing its log: %s", k->t->id, strerror(errno));
}

static void on_output_end(void *arg, int status, json_t *body, const char *err)
{
    struct ctr *k = arg;
    k->follow = NULL;
}

static void on_oom(struct ev_loop *loop, ev_io *w, int revents)
{
    struct ctr *k = w->data;
    uint64_t n;
    if (read(k->oom_fd, &n, sizeof n) < 0 && errno == EAGAIN)
        return;
    if (cg_oom_killed(&k->cg)) /* else the cgroup is being removed */
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

/* Container <k> runs (process <pid>): wait for its exit, follow its output (from <since>, a Unix time;
 * 0 for all of it), watch for OOM kills. */
static void watch(struct ctr *k, int pid, double since)
{
    struct ctask *t = k->t;
    struct ctr_state *cs = state(t->a);
    char path[200];
    k->waiting = true;
    snprintf(path, sizeof path, "/containers/%s/wait", k->cid);
    k->wait = engine_call(&cs->e, "POST", path, NULL, FOREVER_S, on_wait, k);
    open_log(t);
    snprintf(path, sizeof path, "/containers/%s/logs?follow=1&stdout=1&stderr=1&since=%lld", k->cid, (long long)since);
    k->follow = engine_stream(&cs->e, "GET", path, NULL, FOREVER_S, on_output, on_output_end, k);
    if (pid > 0 && cg_of_pid(&k->cg, pid, (int)json_integer_value(json_object_get(def_of(t, k->i), "memory_mib"))))
        k->oom_fd = cg_oom_watch(&k->cg);
    ev_io_init(&k->oom_io, on_oom, k->oom_fd, EV_READ);
    k->oom_io.data = k;
    if (k->oom_fd >= 0)
        ev_io_start(t->a->loop, &k->oom_io);
}

/* ---- ACTIVATING -> RUNNING ---- */

static void ready_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct ctask *t = w->data;
    if (!agent_ports_ready(t->a, t->id)) {
        if (util_now() - t->started > AGENT_READY_MAX_S) {
            fail(t, "TaskFailedToStart", "its ports did not accept connections within %.0fs", AGENT_READY_MAX_S);
            return;
        }
        ev_timer_set(w, 0.05, 0);
        ev_timer_start(loop, w);
        return;
    }
    task_running(t->a->tasks, t->id);
    agent_health_start(t->a, t->id);
}

static void await_ready(struct ctask *t)
{
    t->started = util_now();
    ev_timer_init(&t->ready_timer, ready_tick, 0.02, 0);
    t->ready_timer.data = t;
    ev_timer_start(t->a->loop, &t->ready_timer);
}

/* ---- setting a task up: image, create, start, one container after the other ---- */

static void setup_next(struct ctask *t);

/* The body of POST /containers/create for container <i>. */
static json_t *create_body(struct ctask *t, int i)
{
    struct agent *a = t->a;
    json_t *c = def_of(t, i), *v, *pm;
    json_t *rec = record(t), *def = json_object_get(rec, "definition");
    bool host = json_is_string(json_object_get(def, "network_mode")) &&
                strcmp(json_string_value(json_object_get(def, "network_mode")), "host") == 0;
    /* The environment: in bridge mode PORT and BERTH_PORT_<NAME> are the container's ports. */
    json_t *env = json_copy(json_array_get(t->env, (size_t)i));
    json_t *exposed = json_object(), *bindings = json_object();
    size_t k;
    json_array_foreach(json_object_get(c, "port_mappings"), k, pm) {
        const char *name = json_string_value(json_object_get(pm, "name"));
        json_int_t cport = json_integer_value(json_object_get(pm, "container_port"));
        json_int_t hport = json_integer_value(json_object_get(t->ports, name));
        if (host || !cport)
            continue;
        char key[32], hp[16];
        snprintf(key, sizeof key, "%lld/tcp", (long long)cport);
        snprintf(hp, sizeof hp, "%lld", (long long)hport);
        json_object_set_new(exposed, key, json_object());
        json_object_set_new(bindings, key, json_pack("[{s:s,s:s}]", "HostIp", "", "HostPort", hp));
        const char *ek;
        json_t *ev;
        void *tmp;
        json_object_foreach_safe(env, tmp, ek, ev)
            if (strncmp(ek, "BERTH_PORT_", 11) == 0 || strcmp(ek, "PORT") == 0)
                if (json_integer_value(ev) == hport || atoll(json_string_value(ev) ? json_string_value(ev) : "") == hport)
                    json_object_set_new(env, ek, json_sprintf("%lld", (long long)cport));
    }
    json_t *envl = json_array();
    const char *ek;
    json_object_foreach(env, ek, v)
        json_array_append_new(envl, json_sprintf("%s=%s", ek, json_string_value(v) ? json_string_value(v) : ""));
    json_decref(env);
    /* Volumes: host paths as bind mounts; a volume without one is scratch space of the task's own. */
    json_t *binds = json_array(), *mp, *vol;
    json_array_foreach(json_object_get(c, "mount_points"), k, mp) {
        const char *src = json_string_value(json_object_get(mp, "source_volume"));
        size_t j;
        char dir[1024] = "";
        json_array_foreach(json_object_get(def, "volumes"), j, vol) {
            if (strcmp(json_string_value(json_object_get(vol, "name")), src) != 0)
                continue;
            const char *hp = json_string_value(json_object_get(json_object_get(vol, "host"), "source_path"));
            if (hp) {
                snprintf(dir, sizeof dir, "%s", hp);
            } else {
                char base[900];
                volumes_dir(a, t->id, base, sizeof base);
                mkdir(base, 0755);
                snprintf(dir, sizeof dir, "%s/%s", base, src);
                mkdir(dir, 0777);
                chmod(dir, 01777); /* writable by the container's user, whoever it is */
            }
        }
        json_array_append_new(binds, json_sprintf("%s:%s%s", dir, json_string_value(json_object_get(mp, "container_path")),
                                                  json_is_true(json_object_get(mp, "read_only")) ? ":ro" : ""));
    }
    /* Limits: a create that sets Ulimits drops the engine's defaults, so nofile and nproc are always sent. */
    json_t *ulimits = json_array(), *u;
    bool nofile = false, nproc = false;
    json_array_foreach(json_object_get(c, "ulimits"), k, u) {
        const char *name = json_string_value(json_object_get(u, "name"));
        nofile = nofile || strcmp(name, "nofile") == 0;
        nproc = nproc || strcmp(name, "nproc") == 0;
        json_array_append_new(ulimits, json_pack("{s:s,s:O,s:O}", "Name", name, "Soft", json_object_get(u, "soft"), "Hard",
                                                 json_object_get(u, "hard")));
    }
    if (!nofile)
        json_array_append_new(ulimits, json_pack("{s:s,s:i,s:i}", "Name", "nofile", "Soft", DEFAULT_NOFILE, "Hard", DEFAULT_NOFILE));
    if (!nproc)
        json_array_append_new(ulimits, json_pack("{s:s,s:i,s:i}", "Name", "nproc", "Soft", DEFAULT_NPROC, "Hard", DEFAULT_NPROC));
    json_int_t mem = json_integer_value(json_object_get(c, "memory_mib")) << 20;
    json_int_t cpu = json_integer_value(json_object_get(c, "cpu"));
    json_t *hc = json_pack("{s:s,s:o,s:o,s:b,s:o,s:o}", "NetworkMode", host ? "host" : "bridge", "PortBindings", bindings,
                           "Binds", binds, "ReadonlyRootfs", json_is_true(json_object_get(c, "readonly_root_filesystem")),
                           "Ulimits", ulimits, "RestartPolicy", json_pack("{s:s}", "Name", "no"));
    if (mem) {
        json_object_set_new(hc, "Memory", json_integer(mem));
        json_object_set_new(hc, "MemorySwap", json_integer(mem)); /* no swap beyond the limit */
    }
    if (cpu) { /* 1024 units = one CPU, as a CFS quota (ECS's hard limit) */
        json_object_set_new(hc, "CpuPeriod", json_integer(100000));
        json_object_set_new(hc, "CpuQuota", json_integer(cpu * 100000 / 1024));
    }
    char index[8];
    snprintf(index, sizeof index, "%d", i);
    json_t *body = json_pack("{s:s,s:o,s:{s:s,s:s,s:s,s:s,s:s},s:o,s:o}", "Image", image_of(t, i), "Env", envl, "Labels",
                             "berth.task", t->id, "berth.container", json_string_value(json_object_get(c, "name")),
                             "berth.index", index, "berth.node", a->node_id, "berth.agent", state(a)->dir,
                             "ExposedPorts", exposed, "HostConfig", hc);
    if ((v = json_object_get(c, "entry_point")))
        json_object_set(body, "Entrypoint", v);
    if ((v = json_object_get(c, "command")))
        json_object_set(body, "Cmd", v);
    if ((v = json_object_get(c, "working_directory")))
        json_object_set(body, "WorkingDir", v);
    if ((v = json_object_get(c, "user")))
        json_object_set(body, "User", v);
    return body;
}

static void on_inspect(void *arg, int status, json_t *body, const char *err)
{
    struct ctask *t = arg;
    t->op = NULL;
    struct ctr *k = &t->c[t->step];
    json_t *st = json_object_get(body, "State");
    watch(k, (int)json_integer_value(json_object_get(st, "Pid")), 0);
    t->step++;
    setup_next(t);
}

static void on_start(void *arg, int status, json_t *body, const char *err)
{
    struct ctask *t = arg;
    t->op = NULL;
    struct ctr *k = &t->c[t->step];
    if (status != 204 && status != 304) {
        fail(t, "TaskFailedToStart", "CannotStartContainerError: %s",
             err ? err : engine_message(body, "the engine refused to start it"));
        return;
    }
    char path[160];
    snprintf(path, sizeof path, "/containers/%s/json", k->cid);
    t->op = engine_call(&state(t->a)->e, "GET", path, NULL, CALL_S, on_inspect, t);
}

static void on_create(void *arg, int status, json_t *body, const char *err)
{
    struct ctask *t = arg;
    t->op = NULL;
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
        fail(t, "TaskFailedToStart", "CannotCreateContainerError: %s",
             err ? err : engine_message(body, "the engine refused to create it"));
        return;
    }
    char path[160];
    snprintf(path, sizeof path, "/containers/%s/start", k->cid);
    t->op = engine_call(&state(t->a)->e, "POST", path, NULL, CALL_S, on_start, t);
}

static void create(struct ctask *t)
{
    char path[160];
    snprintf(path, sizeof path, "/containers/create?name=berth-%s-%d", t->id, t->step);
    json_t *body = create_body(t, t->step);
    t->op = engine_call(&state(t->a)->e, "POST", path, body, CALL_S, on_create, t);
    json_decref(body);
}

static void on_pull(void *arg, int status, json_t *body, const char *err)
{
    struct ctask *t = arg;
    t->op = NULL;
    const char *perr = json_string_value(json_object_get(body, "error"));
    if (t->stopping) {
        finish_if_done(t);
    } else if (status != 200 || perr) {
        fail(t, "TaskFailedToStart", "CannotPullContainerError: %s: %s", image_of(t, t->step),
             err ? err : perr ? perr : engine_message(body, "the pull failed"));
    } else {
        create(t);
    }
}

static void pull(struct ctask *t)
{
    char path[600], ref[400];
    util_url_escape(image_of(t, t->step), ref, sizeof ref);
    snprintf(path, sizeof path, "/images/create?fromImage=%s", ref);
    t->op = engine_call(&state(t->a)->e, "POST", path, NULL, PULL_S, on_pull, t);
}

static void on_image(void *arg, int status, json_t *body, const char *err)
{
    struct ctask *t = arg;
    t->op = NULL;
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
        await_ready(t);
        return;
    }
    if (t->a->image_pull_always) {
        pull(t);
        return;
    }
    char path[600], ref[400];
    util_url_escape(image_of(t, t->step), ref, sizeof ref);
    snprintf(path, sizeof path, "/images/%s/json", ref);
    t->op = engine_call(&state(t->a)->e, "GET", path, NULL, CALL_S, on_image, t);
}

static int ctr_start(struct agent *a, const char *id, json_t *env, json_t *ports, char *why, size_t why_len)
{
    struct ctr_state *cs = state(a);
    if (!cs->ok) {
        snprintf(why, why_len, "CannotStartContainerError: this node has no container engine (%s)", cs->why);
        return -1;
    }
    struct ctask *t = task_new(a, id, task_get(a->tasks, id));
    t->env = json_incref(env);
    t->ports = json_incref(ports);
    setup_next(t);
    return 0;
}

/* ---- stop, signal, state ---- */

static bool ctr_stop(struct agent *a, const char *id)
{
    struct ctask *t = find(a, id);
    if (!t)
        return false;
    json_t *rec = record(t), *code = json_object_get(rec, "stop_code"), *why = json_object_get(rec, "stopped_reason");
    if (json_is_string(code))
        snprintf(t->stop_code, sizeof t->stop_code, "%s", json_string_value(code));
    if (json_is_string(why))
        snprintf(t->reason, sizeof t->reason, "%s", json_string_value(why));
    begin_stop(t);
    return true;
}

static int ctr_signal(struct agent *a, const char *id, int sig)
{
    struct ctask *t = find(a, id);
    if (!t)
        return errno = ESRCH, -1;
    for (int i = 0; i < t->n; i++) {
        if (!t->c[i].waiting || t->c[i].exited)
            continue;
        char path[160];
        snprintf(path, sizeof path, "/containers/%s/kill?signal=%d", t->c[i].cid, sig);
        fire(a, "POST", path, CALL_S);
    }
    return 0;
}

static bool ctr_running(struct agent *a, const char *id)
{
    return state(a) && find(a, id) != NULL;
}

static json_t *ctr_stats(struct agent *a, const char *id)
{
    struct ctask *t = find(a, id);
    if (!t)
        return NULL;
    long long mem = 0;
    double cpu = 0;
    int alive = 0;
    bool known = false;
    for (int i = 0; i < t->n; i++) {
        long long m;
        double c;
        alive += t->c[i].waiting && !t->c[i].exited;
        if (!t->c[i].exited && cg_usage(&t->c[i].cg, &m, &c)) {
            known = true;
            mem += m > 0 ? m : 0;
            cpu += c > 0 ? c : 0;
        }
    }
    json_t *out = json_pack("{s:s,s:i}", "runtime", "container", "containers", alive);
    if (known)
        json_object_set_new(out, "memory_bytes", json_integer(mem));
    if (known && cpu > 0)
        json_object_set_new(out, "cpu_seconds", json_real(cpu));
    return out;
}

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
    side_free(s);
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
    s->call = engine_call(&state(s->a)->e, "GET", path, NULL, CALL_S, exec_inspected, s);
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
    json_t *start = json_pack("{s:b,s:b}", "Detach", 0, "Tty", 0);
    s->call = engine_stream(&state(s->a)->e, "POST", path, start, s->timeout_s, exec_output, exec_ended, s);
    json_decref(start);
}

static int ctr_exec(struct agent *a, const char *id, int container, char *const *argv, json_t *env, double timeout_s,
                    void (*out)(void *arg, const char *data, size_t len), void (*done)(void *arg, int status),
                    void *arg)
{
    struct ctask *t = find(a, id);
    if (!t || t->stopping || container < 0 || container >= t->n || !t->c[container].waiting || t->c[container].exited)
        return errno = ESRCH, -1;
    struct side *s = xcalloc(1, sizeof *s);
    *s = (struct side){.a = a, .timeout_s = timeout_s, .out = out, .done = done, .arg = arg};
    list_add(&state(a)->sides, &s->link);
    json_t *cmd = json_array();
    for (size_t i = 0; argv[i]; i++)
        json_array_append_new(cmd, json_string(argv[i]));
    json_t *body = json_pack("{s:o,s:b,s:b,s:b}", "Cmd", cmd, "AttachStdout", 1, "AttachStderr", 1, "Tty", 0);
    char path[160];
    snprintf(path, sizeof path, "/containers/%s/exec", t->c[container].cid);
    s->call = engine_call(&state(a)->e, "POST", path, body, CALL_S, exec_created, s);
    json_decref(body);
    return 0;
}

/* ---- after a restart: adopt this agent's containers, remove the others ---- */

static void ctr_adopt(struct agent *a, const char *id, json_t *rec)
{
    if (state(a)->ok)
        task_new(a, id, rec)->adopting = true; /* its containers are found by ctr_sweep */
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
    struct ctr_state *cs = state(a);
    struct list *it, *tmp;
    side_free(s);
    if (status != 200)
        log_warn("container engine: listing containers: %s", err ? err : engine_message(body, "refused"));
    json_t *c;
    size_t i;
    int adopted = 0, removed = 0;
    json_array_foreach(status == 200 ? body : NULL, i, c) {
        const char *cid = json_string_value(json_object_get(c, "Id")), *idx = label(c, "berth.index");
        struct ctask *t = cid ? find(a, label(c, "berth.task") ? label(c, "berth.task") : "") : NULL;
        int k = idx ? atoi(idx) : -1;
        bool running = json_is_string(json_object_get(c, "State")) &&
                       strcmp(json_string_value(json_object_get(c, "State")), "running") == 0;
        if (t && !t->adopting)
            continue; /* started since: not this sweep's */
        if (!t || k < 0 || k >= t->n || t->c[k].created || !running) {
            if (cid) {
                remove_container(a, cid);
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
        watch(ct, -1, since);
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
            begin_stop(t);
            continue;
        }
        snprintf(msg, sizeof msg, "task %s adopted after a restart (%d container%s)", t->id, alive, alive == 1 ? "" : "s");
        a->event_hook(a->hook_arg, json_string_value(json_object_get(record(t), "service")), msg);
        if (task_is(record(t), TASK_RUNNING))
            agent_health_start(a, t->id);
        else
            await_ready(t);
    }
    if (adopted || removed)
        log_info("container engine: adopted %d container(s), removed %d that belong to no task", adopted, removed);
}

static void ctr_sweep(struct agent *a)
{
    struct ctr_state *cs = state(a);
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
    s->call = engine_call(&cs->e, "GET", path, NULL, CALL_S, on_list, s);
}

/* ---- at exit ---- */

static void ctr_kill_all(struct agent *a)
{
    if (!state(a)->ok)
        return;
    struct list *it, *tmp;
    list_each(it, tmp, &state(a)->tasks) {
        struct ctask *t = list_entry(it, struct ctask, link);
        for (int i = 0; i < t->n; i++)
            if (t->c[i].created) /* removed at once, and waited for: the process is about to exit */
                remove_container(a, t->c[i].cid);
    }
    double deadline = util_now() + 10;
    while (!list_empty(&state(a)->sides) && util_now() < deadline)
        ev_run(a->loop, EVRUN_ONCE);
}

static void ctr_release(struct agent *a)
{
    struct ctr_state *cs = state(a);
    while (!list_empty(&cs->tasks))
        task_free(list_entry(cs->tasks.next, struct ctask, link));
    while (!list_empty(&cs->sides)) {
        struct side *s = list_entry(cs->sides.next, struct side, link);
        engine_cancel(s->call);
        side_free(s);
    }
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
    }
    return cs->ok ? NULL : cs->why;
}

const char *ctr_engine(struct agent *a)
{
    return state(a) && state(a)->ok ? state(a)->why : NULL;
}
