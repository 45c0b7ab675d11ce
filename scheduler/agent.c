/* agent.c -- the node agent (see agent.h): host ports and environment for a task, then its runtime. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent.h"
#include "berth/alloc.h"
#include "berth/buf.h"
#include "berth/httpd.h"
#include "berth/list.h"
#include "berth/log.h"
#include "berth/util.h"
#include "tasklog.h"

void agent_init(struct agent *a)
{
    a->process = &proc_runtime;
    a->next_port = -1;
    list_init(&a->checks);
    const char *why = ctr_open(a);
    if (why)
        log_info("node %s runs no containers: %s", a->node_id, why);
    else
        log_info("node %s runs containers through %s", a->node_id, ctr_engine(a));
}

bool agent_ours(struct agent *a, json_t *t)
{
    const char *node = json_string_value(json_object_get(t, "node"));
    return node && strcmp(node, a->node_id) == 0;
}

bool agent_is_image_task(json_t *t)
{
    json_t *c = json_array_get(json_object_get(json_object_get(t, "definition"), "containers"), 0);
    return json_is_string(json_object_get(c, "image"));
}

/* The runtime that runs (or would run) task <t>: a definition names images for all its containers or
 * for none (validate.c). */
static const struct runtime_ops *runtime_of(struct agent *a, json_t *t)
{
    return agent_is_image_task(t) ? a->container : a->process;
}

/* ---- host ports ---- */

static bool port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr = {htonl(INADDR_LOOPBACK)}};
    bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static bool port_taken(struct agent *a, int port)
{
    const char *id;
    json_t *t;
    json_object_foreach(json_object_get(sched_store_state(a->tasks->store), "tasks"), id, t) {
        if (task_is(t, TASK_STOPPED) || !agent_ours(a, t))
            continue;
        const char *k;
        json_t *p;
        json_object_foreach(json_object_get(t, "ports"), k, p)
            if (json_integer_value(p) == port)
                return true;
    }
    return false;
}

static int alloc_port(struct agent *a)
{
    /* From a random starting point, as the kernel picks ephemeral ports: several nodes sharing a
     * range on one machine (or tests running side by side) then rarely race for the same port. */
    int span = a->port_hi - a->port_lo + 1;
    if (a->next_port < 0)
        a->next_port = (int)(util_rand64() % (uint64_t)span);
    for (int k = 0; k < span; k++) {
        int port = a->port_lo + (a->next_port++ % span);
        if (!port_taken(a, port) && port_free(port))
            return port;
    }
    return -1;
}

/* True when something accepts TCP connections on 127.0.0.1:<port>. */
static bool accepting(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr = {htonl(INADDR_LOOPBACK)}};
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0; /* loopback: no wait */
    if (fd >= 0)
        close(fd);
    return ok;
}

bool agent_ports_ready(struct agent *a, const char *id)
{
    json_t *p;
    const char *k;
    json_object_foreach(json_object_get(task_get(a->tasks, id), "ports"), k, p)
        if (!accepting((int)json_integer_value(p)))
            return false;
    return true;
}

/* ---- start and stop ---- */

/* The environment of each container (SPEC §7): its own variables, then berth's; nothing of the
 * node's, so no token or secret of the scheduler's reaches a task. PORT is the container's first
 * port mapping, else the task's first. */
static json_t *task_env(struct agent *a, const char *id, json_t *t, json_t *ports)
{
    json_t *out = json_array(), *c;
    const char *svc = json_string_value(json_object_get(t, "service"));
    size_t i;
    json_array_foreach(json_object_get(json_object_get(t, "definition"), "containers"), i, c) {
        json_t *env = json_deep_copy(json_object_get(c, "environment"));
        if (!env)
            env = json_object();
        const char *first =
            json_string_value(json_object_get(json_array_get(json_object_get(c, "port_mappings"), 0), "name"));
        const char *pk;
        json_t *pv;
        json_object_foreach(ports, pk, pv) {
            char key[128];
            int w = snprintf(key, sizeof key, "BERTH_PORT_");
            for (const char *q = pk; *q && w < (int)sizeof key - 1; q++)
                key[w++] = (char)(isalnum((unsigned char)*q) ? toupper((unsigned char)*q) : '_');
            key[w] = 0;
            json_object_set_new(env, key, json_sprintf("%lld", json_integer_value(pv)));
            if (!first)
                first = pk;
            if (strcmp(first, pk) == 0)
                json_object_set_new(env, "PORT", json_sprintf("%lld", json_integer_value(pv)));
        }
        json_object_set_new(env, "BERTH_TASK_ID", json_string(id));
        json_object_set_new(env, "BERTH_SERVICE", json_string(svc ? svc : ""));
        json_object_set_new(env, "BERTH_DNS", json_string(a->dns));
        json_object_set_new(env, "BERTH_NAMESPACE", json_string(a->namespace));
        json_array_append_new(out, env);
    }
    return out;
}

int agent_start(struct agent *a, const char *id)
{
    json_t *t = task_get(a->tasks, id);
    json_t *cs = json_object_get(json_object_get(t, "definition"), "containers"), *c, *pm;
    size_t n = json_array_size(cs), i, k;
    char why[256] = "";
    if (n == 0 || n > AGENT_MAX_CONTAINERS) {
        snprintf(why, sizeof why, "task definition has no containers, or more than %d", AGENT_MAX_CONTAINERS);
        task_stopped(a->tasks, id, "TaskFailedToStart", why);
        return -1;
    }
    /* One host port per port mapping, handed over as PORT and BERTH_PORT_<NAME>. */
    json_t *ports = json_object();
    json_array_foreach(cs, i, c) {
        json_array_foreach(json_object_get(c, "port_mappings"), k, pm) {
            int port = alloc_port(a);
            if (port < 0) {
                json_decref(ports);
                task_stopped(a->tasks, id, "TaskFailedToStart", "no free host port in port_range");
                return -1;
            }
            json_object_set_new(ports, json_string_value(json_object_get(pm, "name")), json_integer(port));
        }
    }
    json_t *env = task_env(a, id, t, ports);
    int rc = runtime_of(a, t)->start(a, id, env, ports, why, sizeof why);
    json_decref(env);
    json_decref(ports);
    if (rc < 0)
        task_stopped(a->tasks, id, "TaskFailedToStart", why);
    return rc;
}

void agent_stop(struct agent *a, const char *id, const char *code, const char *reason)
{
    json_t *t = task_get(a->tasks, id);
    if (!t || task_is(t, TASK_STOPPED))
        return;
    const struct runtime_ops *rt = runtime_of(a, t);
    if (!rt->running(a, id)) { /* nothing runs (yet) */
        task_stopped(a->tasks, id, code, reason);
        return;
    }
    task_stopping(a->tasks, id, code, reason);
    rt->stop(a, id);
}

bool agent_running(struct agent *a, const char *id)
{
    json_t *t = task_get(a->tasks, id);
    return t && runtime_of(a, t)->running(a, id);
}

void agent_adopt(struct agent *a)
{
    json_t *ids = json_array(), *t, *x;
    const char *id;
    size_t i;
    json_object_foreach(json_object_get(sched_store_state(a->tasks->store), "tasks"), id, t)
        if (!task_is(t, TASK_STOPPED) && !task_is(t, TASK_PENDING) && agent_ours(a, t) && !agent_running(a, id))
            json_array_append_new(ids, json_string(id));
    json_array_foreach(ids, i, x) {
        t = task_get(a->tasks, json_string_value(x));
        runtime_of(a, t)->adopt(a, json_string_value(x), t);
    }
    json_decref(ids);
    const struct runtime_ops *rts[] = {a->process, a->container};
    for (size_t k = 0; k < sizeof rts / sizeof *rts; k++)
        if (rts[k]->sweep)
            rts[k]->sweep(a);
}

void agent_logs(struct agent *a, struct httpd_req *req, const char *id)
{
    json_t *t = task_get(a->tasks, id);
    if (!t) {
        httpd_respond_error(req, 404, "TaskNotFound", "no task \"%s\" on this node", id);
        return;
    }
    struct buf b;
    buf_init(&b, 1u << 20);
    const char *log = json_string_value(json_object_get(t, "log"));
    if (log)
        tasklog_tail(log, &b, 1u << 20); /* the last MiB at most */
    httpd_respond(req, 200, "text/plain", b.len ? buf_head(&b) : "", b.len);
    buf_free(&b);
}

/* ---- exec ---- */

#define EXEC_OUTPUT_MAX (1u << 20)
#define EXEC_TIMEOUT_MAX_S 3600.0

struct exec_req {
    struct httpd_req *req;
    struct buf out;
    bool truncated;
};

static void exec_out(void *arg, const char *data, size_t len)
{
    struct exec_req *x = arg;
    size_t room = EXEC_OUTPUT_MAX - x->out.len;
    if (len > room)
        x->truncated = true;
    buf_append(&x->out, data, len < room ? len : room);
}

static void exec_done(void *arg, int status)
{
    struct exec_req *x = arg;
    json_t *body = json_pack("{s:i,s:s%,s:b}", "exit_code", status, "output", x->out.len ? buf_head(&x->out) : "",
                             x->out.len, "truncated", x->truncated);
    if (!body) /* output that is not UTF-8: as much as is, with the bytes replaced */
        body = json_pack("{s:i,s:s,s:b}", "exit_code", status, "output", "(output is not UTF-8 text)", "truncated", 1);
    if (status == -1)
        json_object_set_new(body, "timed_out", json_true());
    httpd_respond_json(x->req, 200, body);
    buf_free(&x->out);
    free(x);
}

void agent_exec(struct agent *a, struct httpd_req *req, const char *id)
{
    json_t *t = task_get(a->tasks, id);
    if (!t || !agent_running(a, id) || !task_is(t, TASK_RUNNING)) {
        httpd_respond_error(req, t ? 409 : 404, t ? "TaskNotRunning" : "TaskNotFound", "task \"%s\" %s", id,
                            t ? "is not RUNNING here" : "does not run on this node");
        return;
    }
    json_t *body = httpd_body_json(req);
    if (!body)
        return;
    json_t *cmd = json_object_get(body, "command"), *cname = json_object_get(body, "container"), *c;
    json_t *to = json_object_get(body, "timeout_s");
    json_t *cs = json_object_get(json_object_get(t, "definition"), "containers");
    const char *key, *bad = NULL;
    json_t *v;
    json_object_foreach(body, key, v)
        if (strcmp(key, "command") != 0 && strcmp(key, "container") != 0 && strcmp(key, "timeout_s") != 0)
            bad = key;
    int container = -1;
    size_t i;
    json_array_foreach(cs, i, c)
        if (container < 0 && (!cname || (json_is_string(cname) && strcmp(json_string_value(cname),
                                                                        json_string_value(json_object_get(c, "name"))) == 0)))
            container = (int)i;
    bool cmd_ok = json_is_array(cmd) && json_array_size(cmd) > 0 && json_array_size(cmd) <= 256;
    json_array_foreach(cmd_ok ? cmd : NULL, i, v)
        cmd_ok = cmd_ok && json_is_string(v) && (i > 0 || json_string_length(v) > 0);
    double timeout = to ? json_number_value(to) : 30;
    const char *field = NULL, *why = NULL;
    if (bad)
        field = bad, why = "unknown field";
    else if (!cmd_ok)
        field = "command", why = "must be a non-empty array of strings (argv)";
    else if (container < 0)
        field = "container", why = "the task has no container of that name";
    else if (to && (!json_is_number(to) || timeout <= 0 || timeout > EXEC_TIMEOUT_MAX_S))
        field = "timeout_s", why = "must be a number of seconds in (0, 3600]";
    if (field) {
        httpd_respond_error(req, 400, "InvalidParameter", "%s: %s", field, why);
        json_decref(body);
        return;
    }
    char **argv = xcalloc(json_array_size(cmd) + 1, sizeof *argv);
    json_array_foreach(cmd, i, v)
        argv[i] = (char *)json_string_value(v);
    json_t *env = task_env(a, id, t, json_object_get(t, "ports"));
    struct exec_req *x = xcalloc(1, sizeof *x);
    x->req = req;
    buf_init(&x->out, EXEC_OUTPUT_MAX);
    log_info("task %s: exec %s (container %d)", id, argv[0], container);
    if (runtime_of(a, t)->exec(a, id, container, argv, json_array_get(env, (size_t)container), timeout, exec_out,
                               exec_done, x) < 0) {
        httpd_respond_error(req, 409, "TaskNotRunning", "task \"%s\": cannot run the command: %s", id, strerror(errno));
        buf_free(&x->out);
        free(x);
    }
    free(argv);
    json_decref(env);
    json_decref(body);
}

/* ---- container health checks (ECS semantics: command, interval, timeout, retries, start period),
 * run inside the container through its runtime's exec ---- */

struct hcheck {
    struct list link;
    struct agent *a;
    char id[40];
    int i;          /* container index */
    ev_timer timer; /* the next check */
    int failures;
    bool busy; /* a check runs */
    bool gone; /* released while a check ran: freed when it returns */
};

static json_t *health_conf(json_t *t, int i)
{
    return json_object_get(
        json_array_get(json_object_get(json_object_get(t, "definition"), "containers"), (size_t)i), "health_check");
}

static void hcheck_free(struct hcheck *h)
{
    list_del(&h->link);
    ev_timer_stop(h->a->loop, &h->timer);
    free(h);
}

static void health_out(void *arg, const char *data, size_t len)
{
}

static void health_done(void *arg, int status)
{
    struct hcheck *h = arg;
    struct agent *a = h->a;
    h->busy = false;
    json_t *t = task_get(a->tasks, h->id), *hc = health_conf(t, h->i);
    if (h->gone || !t || !task_is(t, TASK_RUNNING)) {
        hcheck_free(h);
        return;
    }
    h->failures = status == 0 ? 0 : h->failures + 1;
    const char *verdict = status == 0 ? "HEALTHY"
                          : h->failures >= json_integer_value(json_object_get(hc, "retries")) ? "UNHEALTHY"
                                                                                            : NULL;
    const char *was = json_string_value(json_object_get(t, "health_status"));
    if (verdict && (!was || strcmp(was, verdict) != 0))
        task_set(a->tasks, h->id, json_pack("{s:s}", "health_status", verdict));
    json_t *def = json_array_get(json_object_get(json_object_get(t, "definition"), "containers"), (size_t)h->i);
    if (verdict && strcmp(verdict, "UNHEALTHY") == 0 && json_is_true(json_object_get(def, "essential"))) {
        char msg[200], id[40];
        snprintf(msg, sizeof msg, "task %s failed container health checks (%d in a row)", h->id, h->failures);
        a->event_hook(a->hook_arg, json_string_value(json_object_get(t, "service")), msg);
        snprintf(id, sizeof id, "%s", h->id);
        hcheck_free(h);
        a->stop_hook(a->hook_arg, id, "TaskFailedHealthChecks", "Task failed container health checks");
        return;
    }
    ev_timer_set(&h->timer, json_number_value(json_object_get(hc, "interval_s")), 0);
    ev_timer_start(a->loop, &h->timer);
}

/* The check's argv: ["CMD", argv...] and ["CMD-SHELL", "line"] as Docker's, else the array itself. */
static char **health_argv(json_t *cmd)
{
    size_t n = json_array_size(cmd), k = 0, skip = 0;
    char **argv = xcalloc(n + 3, sizeof *argv);
    const char *first = json_string_value(json_array_get(cmd, 0));
    if (first && strcmp(first, "CMD-SHELL") == 0) {
        argv[k++] = "/bin/sh";
        argv[k++] = "-c";
        skip = 1;
    } else if (first && strcmp(first, "CMD") == 0) {
        skip = 1;
    }
    for (size_t j = skip; j < n; j++)
        argv[k++] = (char *)json_string_value(json_array_get(cmd, j));
    return argv;
}

static void health_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct hcheck *h = w->data;
    struct agent *a = h->a;
    json_t *t = task_get(a->tasks, h->id);
    if (!t || !task_is(t, TASK_RUNNING)) {
        hcheck_free(h);
        return;
    }
    json_t *hc = health_conf(t, h->i);
    char **argv = health_argv(json_object_get(hc, "command"));
    json_t *env = task_env(a, h->id, t, json_object_get(t, "ports"));
    h->busy = true;
    if (runtime_of(a, t)->exec(a, h->id, h->i, argv, json_array_get(env, (size_t)h->i),
                               json_number_value(json_object_get(hc, "timeout_s")), health_out, health_done, h) < 0)
        health_done(h, -1);
    json_decref(env);
    free(argv);
}

void agent_health_start(struct agent *a, const char *id)
{
    json_t *t = task_get(a->tasks, id);
    size_t n = json_array_size(json_object_get(json_object_get(t, "definition"), "containers"));
    for (size_t i = 0; i < n; i++) {
        json_t *hc = health_conf(t, (int)i);
        if (!hc)
            continue;
        struct hcheck *h = xcalloc(1, sizeof *h);
        h->a = a;
        h->i = (int)i;
        snprintf(h->id, sizeof h->id, "%s", id);
        list_add(&a->checks, &h->link);
        /* The first check after start_period_s (failures before it would not count anyway). */
        double first = json_number_value(json_object_get(hc, "start_period_s"));
        ev_timer_init(&h->timer, health_tick, first > 0 ? first : 0.01, 0);
        h->timer.data = h;
        ev_timer_start(a->loop, &h->timer);
    }
}

void agent_stats(struct agent *a, struct httpd_req *req, const char *id)
{
    json_t *t = task_get(a->tasks, id);
    json_t *st = t ? runtime_of(a, t)->stats(a, id) : NULL;
    if (!st) {
        httpd_respond_error(req, 404, "TaskNotFound", "task \"%s\" does not run on this node", id);
        return;
    }
    json_object_set_new(st, "task", json_string(id));
    httpd_respond_json(req, 200, st);
}

void agent_kill_all(struct agent *a)
{
    a->process->kill_all(a);
    a->container->kill_all(a);
}

void agent_release(struct agent *a)
{
    struct list *it, *tmp;
    list_each(it, tmp, &a->checks) /* the runtime drops the checks that run, without calling back */
        hcheck_free(list_entry(it, struct hcheck, link));
    a->container->release(a);
    a->process->release(a);
}
