/* runtime.c -- what every task runtime shares (agent.h): the environment a task gets, the check that
 * its ports accept connections, and container health checks run through the runtime's own exec. The
 * runtimes call these; nothing here calls a runtime but through its struct runtime_ops. */
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent.h"
#include "berth/alloc.h"
#include "berth/list.h"
#include "berth/log.h"
#include "berth/util.h"

bool agent_is_image_task(json_t *t)
{
    json_t *c = json_array_get(json_object_get(json_object_get(t, "definition"), "containers"), 0);
    return json_is_string(json_object_get(c, "image"));
}

const struct runtime_ops *agent_runtime(struct agent *a, json_t *t)
{
    return agent_is_image_task(t) ? a->container : a->process;
}

/* The environment of each container (SPEC §7): its own variables, then berth's; nothing of the
 * node's, so no token or secret of the scheduler's reaches a task. PORT is the container's first
 * port mapping, else the task's first. */
json_t *agent_task_env(struct agent *a, const char *id, json_t *t, json_t *ports)
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

bool agent_running(struct agent *a, const char *id)
{
    json_t *t = task_get(a->tasks, id);
    return t && agent_runtime(a, t)->running(a, id);
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

/* ---- container health checks (ECS semantics: command, interval, timeout, retries, start period),
 * run inside the container through its runtime's exec ---- */

struct hcheck {
    struct list link;
    struct agent *a;
    const struct runtime_ops *rt;
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
    json_t *env = agent_task_env(a, h->id, t, json_object_get(t, "ports"));
    h->busy = true;
    if (h->rt->exec(a, h->id, h->i, argv, json_array_get(env, (size_t)h->i),
                    json_number_value(json_object_get(hc, "timeout_s")), NULL, NULL, health_out, health_done, h) < 0)
        health_done(h, -1);
    json_decref(env);
    free(argv);
}

void agent_health_start(struct agent *a, const struct runtime_ops *rt, const char *id)
{
    json_t *t = task_get(a->tasks, id);
    size_t n = json_array_size(json_object_get(json_object_get(t, "definition"), "containers"));
    for (size_t i = 0; i < n; i++) {
        json_t *hc = health_conf(t, (int)i);
        if (!hc)
            continue;
        struct hcheck *h = xcalloc(1, sizeof *h);
        h->a = a;
        h->rt = rt;
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

void agent_health_release(struct agent *a)
{
    struct list *it, *tmp;
    list_each(it, tmp, &a->checks) /* the runtime drops the checks that run, without calling back */
        hcheck_free(list_entry(it, struct hcheck, link));
}

/* ---- ACTIVATING -> RUNNING ---- */

static void ready_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct agent_ready *r = w->data;
    if (!agent_ports_ready(r->a, r->id)) {
        if (util_now() - r->started > AGENT_READY_MAX_S) {
            char why[120];
            snprintf(why, sizeof why, "its ports did not accept connections within %.0fs", AGENT_READY_MAX_S);
            r->failed(r->arg, why);
            return;
        }
        ev_timer_set(w, 0.05, 0);
        ev_timer_start(loop, w);
        return;
    }
    log_debug("task %s: its ports accept connections after %.0f ms", r->id, (util_now() - r->started) * 1000);
    task_running(r->a->tasks, r->id);
    agent_health_start(r->a, r->rt, r->id);
}

void agent_ready_start(struct agent_ready *r, struct agent *a, const struct runtime_ops *rt, const char *id,
                       void (*failed)(void *arg, const char *why), void *arg)
{
    *r = (struct agent_ready){.a = a, .rt = rt, .started = util_now(), .failed = failed, .arg = arg};
    snprintf(r->id, sizeof r->id, "%s", id);
    ev_timer_init(&r->timer, ready_tick, 0.02, 0);
    r->timer.data = r;
    ev_timer_start(a->loop, &r->timer);
}

void agent_ready_stop(struct agent_ready *r)
{
    if (r->a)
        ev_timer_stop(r->a->loop, &r->timer);
}

void agent_stop_reason(json_t *task, char *code, size_t code_len, char *reason, size_t reason_len)
{
    json_t *c = json_object_get(task, "stop_code"), *why = json_object_get(task, "stopped_reason");
    if (json_is_string(c))
        snprintf(code, code_len, "%s", json_string_value(c));
    if (json_is_string(why))
        snprintf(reason, reason_len, "%s", json_string_value(why));
}
