/* exec.c -- commands run in a task through its runtime (agent.h): answered when they end, or, as a
 * session, read as their output comes (berth task exec streams it that way). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "berth/alloc.h"
#include "berth/buf.h"
#include "berth/httpd.h"
#include "berth/list.h"
#include "berth/log.h"
#include "berth/util.h"

#define EXEC_OUTPUT_MAX (1u << 20)  /* answered at the end: the first MiB */
#define EXEC_SESSION_MAX (8u << 20) /* a session keeps this much */
#define EXEC_TIMEOUT_MAX_S 3600.0
#define EXEC_KEEP_S 60.0 /* a session is kept this long after its command ended */

struct exec_run {
    struct list link; /* sessions only */
    struct agent *a;
    struct httpd_req *req; /* answered at the end; NULL for a session */
    char id[33], task[40];
    struct buf out;
    void *input; /* the terminal's, while the command runs (tty sessions) */
    bool truncated, done;
    int status;
    ev_timer expire;
};

static void exec_out(void *arg, const char *data, size_t len)
{
    struct exec_run *x = arg;
    size_t max = x->req ? EXEC_OUTPUT_MAX : EXEC_SESSION_MAX, room = max - x->out.len;
    if (len > room)
        x->truncated = true;
    buf_append(&x->out, data, len < room ? len : room);
}

static void session_free(struct exec_run *x)
{
    list_del(&x->link);
    ev_timer_stop(x->a->loop, &x->expire);
    buf_free(&x->out);
    free(x);
}

static void session_expire(struct ev_loop *loop, ev_timer *w, int revents)
{
    session_free(w->data);
}

/* A terminal dimension: absent, or 1..1000. */
static bool size_ok(json_t *v)
{
    return !v || (json_is_integer(v) && json_integer_value(v) >= 1 && json_integer_value(v) <= 1000);
}

static void exec_done(void *arg, int status)
{
    struct exec_run *x = arg;
    if (!x->req) { /* a session: kept for its reader a while */
        x->done = true;
        x->input = NULL;
        x->status = status;
        ev_timer_init(&x->expire, session_expire, EXEC_KEEP_S, 0);
        x->expire.data = x;
        ev_timer_start(x->a->loop, &x->expire);
        return;
    }
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
        if (strcmp(key, "command") != 0 && strcmp(key, "container") != 0 && strcmp(key, "timeout_s") != 0 &&
            strcmp(key, "stream") != 0 && strcmp(key, "tty") != 0 && strcmp(key, "rows") != 0 &&
            strcmp(key, "cols") != 0)
            bad = key;
    json_t *stream = json_object_get(body, "stream"), *tty = json_object_get(body, "tty");
    json_t *rows = json_object_get(body, "rows"), *cols = json_object_get(body, "cols");
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
    else if (stream && !json_is_boolean(stream))
        field = "stream", why = "must be true or false";
    else if (tty && (!json_is_boolean(tty) || (json_is_true(tty) && !json_is_true(stream))))
        field = "tty", why = "must be true or false, and a terminal needs \"stream\": true";
    else if (!size_ok(rows) || !size_ok(cols))
        field = size_ok(rows) ? "cols" : "rows", why = "must be an integer 1..1000 (the terminal's size)";
    if (field) {
        httpd_respond_error(req, 400, "InvalidParameter", "%s: %s", field, why);
        json_decref(body);
        return;
    }
    char **argv = xcalloc(json_array_size(cmd) + 1, sizeof *argv);
    json_array_foreach(cmd, i, v)
        argv[i] = (char *)json_string_value(v);
    json_t *env = agent_task_env(a, id, t, json_object_get(t, "ports"));
    struct exec_run *x = xcalloc(1, sizeof *x);
    x->a = a;
    x->req = json_is_true(stream) ? NULL : req;
    util_random_id(x->id);
    snprintf(x->task, sizeof x->task, "%s", id);
    buf_init(&x->out, x->req ? EXEC_OUTPUT_MAX : EXEC_SESSION_MAX);
    list_init(&x->link);
    log_info("task %s: exec %s (container %d)%s", id, argv[0], container, x->req ? "" : ", streamed");
    struct exec_tty term = {rows ? (int)json_integer_value(rows) : 24, cols ? (int)json_integer_value(cols) : 80};
    if (agent_runtime(a, t)->exec(a, id, container, argv, json_array_get(env, (size_t)container), timeout,
                                  json_is_true(tty) ? &term : NULL, &x->input, exec_out, exec_done, x) < 0) {
        httpd_respond_error(req, 409, "TaskNotRunning", "task \"%s\": cannot run the command: %s", id, strerror(errno));
        buf_free(&x->out);
        free(x);
    } else if (!x->req) {
        list_add(&a->execs, &x->link);
        httpd_respond_json(req, 201, json_pack("{s:s}", "exec_id", x->id));
    }
    free(argv);
    json_decref(env);
    json_decref(body);
}


/* How much of <p>[0..len) is whole UTF-8 characters: a character cut by the end waits for its rest. */
static size_t utf8_whole(const char *p, size_t len)
{
    for (size_t back = 1; back <= 3 && back <= len; back++) {
        unsigned char c = (unsigned char)p[len - back];
        if ((c & 0xC0) != 0x80) { /* the last lead byte: is its sequence complete? */
            size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
            return need > back ? len - back : len;
        }
    }
    return len;
}

/* The session of <req> (/v1/tasks/{id}/exec/{exec_id}...), or NULL when it answered 404. */
static struct exec_run *session_of(struct agent *a, struct httpd_req *req, const char *id)
{
    struct list *it, *tmp;
    list_each(it, tmp, &a->execs) {
        struct exec_run *e = list_entry(it, struct exec_run, link);
        if (strcmp(e->id, req->segs[4]) == 0 && strcmp(e->task, id) == 0)
            return e;
    }
    httpd_respond_error(req, 404, "ExecNotFound", "no exec session \"%s\" in task \"%s\" (sessions are kept %.0f s "
                        "after their command ended)", req->segs[4], id, EXEC_KEEP_S);
    return NULL;
}

void agent_exec_input(struct agent *a, struct httpd_req *req, const char *id)
{
    struct exec_run *x = session_of(a, req, id);
    if (!x)
        return;
    json_t *t = task_get(a->tasks, id);
    if (!x->input || !t) {
        httpd_respond_error(req, 409, "ExecNotInteractive", "exec session \"%s\" %s", x->id,
                            x->done ? "has ended" : "has no terminal (start it with \"tty\": true)");
        return;
    }
    if (req->body_len)
        agent_runtime(a, t)->exec_input(a, x->input, req->body, req->body_len);
    httpd_respond_json(req, 200, json_pack("{s:I}", "written", (json_int_t)req->body_len));
}

void agent_exec_read(struct agent *a, struct httpd_req *req, const char *id)
{
    struct exec_run *x = session_of(a, req, id);
    if (!x)
        return;
    char q[32] = "", *end = q;
    long long off = httpd_query_param(req, "offset", q, sizeof q) ? strtoll(q, &end, 10) : 0;
    if (off < 0 || off > (long long)x->out.len || (*q && *end)) {
        httpd_respond_error(req, 400, "InvalidParameter", "offset: must be a byte offset 0..%zu", x->out.len);
        return;
    }
    size_t n = x->out.len - (size_t)off;
    if (!x->done && n)
        n = utf8_whole(buf_head(&x->out) + off, n);
    json_t *body = json_pack("{s:s%,s:I,s:b,s:b}", "output", n ? buf_head(&x->out) + off : "", n, "offset",
                             (json_int_t)(off + (long long)n), "running", !x->done, "truncated", x->truncated);
    if (!body) /* not UTF-8: skipped, and said so */
        body = json_pack("{s:s,s:I,s:b,s:b}", "output", "(output that is not UTF-8 text)\n", "offset",
                         (json_int_t)(off + (long long)n), "running", !x->done, "truncated", x->truncated);
    json_object_set_new(body, "exit_code", x->done ? json_integer(x->status) : json_null());
    if (x->done && x->status == -1)
        json_object_set_new(body, "timed_out", json_true());
    httpd_respond_json(req, 200, body);
}

void agent_exec_release(struct agent *a)
{
    while (!list_empty(&a->execs)) /* the runtimes drop the commands that run, without calling back */
        session_free(list_entry(a->execs.next, struct exec_run, link));
}
