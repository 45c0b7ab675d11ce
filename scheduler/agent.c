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
    list_init(&a->execs);
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

/* ---- start and stop ---- */

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
    json_t *env = agent_task_env(a, id, t, ports);
    int rc = agent_runtime(a, t)->start(a, id, env, ports, why, sizeof why);
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
    const struct runtime_ops *rt = agent_runtime(a, t);
    if (!rt->running(a, id)) { /* nothing runs (yet) */
        task_stopped(a->tasks, id, code, reason);
        return;
    }
    task_stopping(a->tasks, id, code, reason);
    rt->stop(a, id);
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
        agent_runtime(a, t)->adopt(a, json_string_value(x), t);
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
    char q[32];
    const char *log = json_string_value(json_object_get(t, "log"));
    struct buf b;
    buf_init(&b, TASKLOG_READ_MAX);
    if (!httpd_query_param(req, "offset", q, sizeof q)) {
        if (log)
            tasklog_tail(log, &b, TASKLOG_READ_MAX);
        httpd_respond(req, 200, "text/plain", b.len ? buf_head(&b) : "", b.len);
        buf_free(&b);
        return;
    }
    /* Following: what was written from byte <offset> on (-1: the last MiB), and where to go on. */
    char *end;
    long long from = strtoll(q, &end, 10), next = 0;
    if (*end || from < -1) {
        buf_free(&b);
        httpd_respond_error(req, 400, "InvalidParameter", "offset: must be a byte offset (or -1 for the last MiB)");
        return;
    }
    bool reset = false;
    if (log)
        next = tasklog_read(log, from, &b, TASKLOG_READ_MAX, &reset);
    json_t *body = json_pack("{s:I,s:s%,s:b}", "offset", (json_int_t)next, "data", b.len ? buf_head(&b) : "", b.len,
                             "reset", reset);
    if (!body)
        body = json_pack("{s:I,s:s,s:b}", "offset", (json_int_t)next, "data", "(output is not UTF-8 text)\n", "reset", reset);
    buf_free(&b);
    httpd_respond_json(req, 200, body);
}

void agent_stats(struct agent *a, struct httpd_req *req, const char *id)
{
    json_t *t = task_get(a->tasks, id);
    json_t *st = t ? agent_runtime(a, t)->stats(a, id) : NULL;
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
    agent_health_release(a);
    agent_exec_release(a);
    a->container->release(a);
    a->process->release(a);
}
