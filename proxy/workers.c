/* workers.c -- workers > 1: a master process that runs worker processes and fans the admin API out to them. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "berth/alloc.h"
#include "berth/daemon.h"
#include "berth/httpc.h"
#include "berth/httpd.h"
#include "berth/log.h"
#include "stats.h"
#include "workers.h"

struct worker {
    pid_t pid;
    struct net_addr admin;
    ev_child child;
};

struct master {
    struct ev_loop *loop;
    char *const *worker_argv; /* argv for a worker, with the pipe fd slot to fill */
    int fd_slot;
    struct worker *w;
    int n;
    struct httpd *admin;
    bool stopping;
};

static struct master M;

/* Starts worker <i> and waits until it reports its private admin port. */
static int spawn(int i)
{
    int p[2];
    if (pipe(p) < 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        close(p[0]);
        char fd[16];
        snprintf(fd, sizeof fd, "%d", p[1]);
        char **argv = (char **)M.worker_argv;
        argv[M.fd_slot] = fd;
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    close(p[1]);
    struct pollfd pfd = {.fd = p[0], .events = POLLIN};
    char line[32] = "";
    ssize_t got = 0;
    if (poll(&pfd, 1, 15000) == 1)
        got = read(p[0], line, sizeof line - 1);
    close(p[0]);
    int port = got > 0 ? atoi(line) : 0;
    if (port <= 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    net_parse_addr(addr, &M.w[i].admin);
    M.w[i].pid = pid;
    return 0;
}

static void on_child(struct ev_loop *loop, ev_child *w, int revents);

static void watch(int i)
{
    ev_child_init(&M.w[i].child, on_child, M.w[i].pid, 0);
    M.w[i].child.data = &M.w[i];
    ev_child_start(M.loop, &M.w[i].child);
}

static void on_child(struct ev_loop *loop, ev_child *w, int revents)
{
    struct worker *wk = w->data;
    int i = (int)(wk - M.w);
    ev_child_stop(loop, w);
    wk->pid = 0;
    if (M.stopping) {
        for (int k = 0; k < M.n; k++)
            if (M.w[k].pid)
                return;
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    log_error("worker %d exited (status %d); starting a new one from the config file "
              "(admin API changes since the last reload are not in it)",
              i, w->rstatus);
    if (spawn(i) < 0) {
        log_error("worker %d could not be restarted; stopping", i);
        M.stopping = true;
        for (int k = 0; k < M.n; k++)
            if (M.w[k].pid)
                kill(M.w[k].pid, SIGTERM);
        return;
    }
    watch(i);
}

/* ---- admin fan-out ---- */

struct answer {
    int status;
    char *body;
    char *err;
};

struct fanout {
    struct httpd_req *req;
    int pending;
    struct answer *a;
};

struct slot {
    struct fanout *f;
    int i;
};

/* Sums Prometheus samples across workers; *_hosts gauges and certificate expiry times come from
 * worker 0. */
static void merge_metrics(struct fanout *f, struct buf *out)
{
    json_t *sums = json_object();
    for (int i = 1; i < M.n; i++) {
        for (char *line = f->a[i].body, *next; line && *line; line = next) {
            next = strchr(line, '\n');
            size_t len = next ? (size_t)(next - line) : strlen(line);
            if (next)
                next++;
            char *sp = memrchr(line, ' ', len);
            if (*line == '#' || !sp)
                continue;
            char key[4096];
            snprintf(key, sizeof key, "%.*s", (int)(sp - line), line);
            json_t *v = json_object_get(sums, key);
            json_object_set_new(sums, key, json_real((v ? json_real_value(v) : 0) + atof(sp + 1)));
        }
    }
    for (char *line = f->a[0].body, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        size_t len = next ? (size_t)(next - line) : strlen(line);
        if (next)
            next++;
        char *sp = memrchr(line, ' ', len);
        char key[4096];
        snprintf(key, sizeof key, "%.*s", sp ? (int)(sp - line) : 0, line);
        json_t *v = sp && *line != '#' && !strstr(key, "_hosts{") && !strstr(key, "_expiry_seconds{")
                        ? json_object_get(sums, key) : NULL;
        if (v) {
            double total = atof(sp + 1) + json_real_value(v);
            buf_printf(out, "%s %.*g\n", key, total == (double)(long long)total ? 20 : 6, total);
        } else {
            buf_append(out, line, len);
            buf_append(out, "\n", 1);
        }
    }
    json_decref(sums);
}

/* Adds <b>'s number to <a>'s (integers stay integers). */
static json_t *sum_numbers(json_t *a, json_t *b)
{
    return json_is_integer(a) && json_is_integer(b) ? json_integer(json_integer_value(a) + json_integer_value(b))
                                                    : json_real(json_number_value(a) + json_number_value(b));
}

/* Adds other workers' per-target figures and group statistics into worker 0's view of a group. */
static void merge_group(json_t *g0, json_t **others, int n, const char *name)
{
    static const char *const fields[] = {"requests", "request_rate", "in_flight", "connection_errors", NULL};
    for (int k = 0; k < n; k++) {
        json_t *g = others[k];
        if (json_object_get(g, "target_groups")) { /* list form: find the group */
            json_t *x, *found = NULL;
            size_t j;
            json_array_foreach(json_object_get(g, "target_groups"), j, x)
                if (strcmp(json_string_value(json_object_get(x, "name")), name) == 0)
                    found = x;
            g = found;
        }
        if (!g)
            continue;
        json_t *t0, *t;
        size_t i, j;
        json_array_foreach(json_object_get(g0, "targets"), i, t0) {
            const char *addr = json_string_value(json_object_get(t0, "address"));
            json_array_foreach(json_object_get(g, "targets"), j, t) {
                if (!addr || strcmp(addr, json_string_value(json_object_get(t, "address"))) != 0)
                    continue;
                for (int f = 0; fields[f]; f++) {
                    json_t *a = json_object_get(t0, fields[f]), *b = json_object_get(t, fields[f]);
                    if (a && b)
                        json_object_set_new(t0, fields[f], sum_numbers(a, b));
                }
            }
        }
        json_t *s0 = json_object_get(g0, "stats"), *s = json_object_get(g, "stats");
        json_t *c0 = json_object_get(s0, "latency_counts"), *c = json_object_get(s, "latency_counts");
        for (i = 0; i < json_array_size(c0) && i < json_array_size(c); i++)
            json_array_set_new(c0, i, sum_numbers(json_array_get(c0, i), json_array_get(c, i)));
        const char *key;
        json_t *v;
        json_object_foreach(json_object_get(s0, "responses"), key, v) {
            json_t *w = json_object_get(json_object_get(s, "responses"), key);
            if (w)
                json_object_set_new(json_object_get(s0, "responses"), key, sum_numbers(v, w));
        }
    }
}

static void merge_and_respond(struct fanout *f)
{
    struct httpd_req *req = f->req;
    for (int i = 0; i < M.n; i++)
        if (f->a[i].err) {
            httpd_respond_error(req, 502, "WorkerUnavailable", "worker %d: %s", i, f->a[i].err);
            return;
        }
    bool get = req->method_id == HTTP_M_GET;
    if (get && req->nsegs == 1 && strcmp(req->segs[0], "metrics") == 0 && f->a[0].status == 200) {
        struct buf b;
        buf_init(&b, 64u << 20);
        merge_metrics(f, &b);
        httpd_respond(req, 200, "text/plain; version=0.0.4", buf_head(&b), b.len);
        buf_free(&b);
        return;
    }
    for (int i = 0; i < M.n; i++)
        if (f->a[i].status != f->a[0].status)
            log_warn("admin %s %s: worker %d answered %d, worker 0 %d", req->method, req->path, i, f->a[i].status,
                     f->a[0].status);
    if (get && req->nsegs >= 2 && strcmp(req->segs[1], "target-groups") == 0 && f->a[0].status == 200) {
        json_t *v0 = json_loads(f->a[0].body, 0, NULL);
        json_t **others = xcalloc((size_t)M.n, sizeof *others);
        for (int i = 1; i < M.n; i++)
            others[i - 1] = json_loads(f->a[i].body, 0, NULL);
        json_t *g;
        size_t k;
        if (json_object_get(v0, "target_groups")) {
            json_array_foreach(json_object_get(v0, "target_groups"), k, g)
                merge_group(g, others, M.n - 1, json_string_value(json_object_get(g, "name")));
        } else if (v0) {
            merge_group(v0, others, M.n - 1, json_string_value(json_object_get(v0, "name")));
        }
        for (int i = 0; i < M.n - 1; i++)
            json_decref(others[i]);
        free(others);
        if (v0) {
            httpd_respond_json(req, 200, v0);
            return;
        }
    }
    const char *b = f->a[0].body ? f->a[0].body : "";
    httpd_respond(req, f->a[0].status, *b == '{' ? "application/json" : "text/plain", b, strlen(b));
}

static void fan_done(const struct httpc_response *resp, const char *err, void *arg)
{
    struct slot *s = arg;
    struct fanout *f = s->f;
    struct answer *a = &f->a[s->i];
    free(s);
    if (err) {
        a->err = xstrdup(err);
    } else {
        a->status = resp->status;
        a->body = xstrndup(resp->body, resp->body_len);
    }
    if (--f->pending > 0)
        return;
    merge_and_respond(f);
    for (int i = 0; i < M.n; i++) {
        free(f->a[i].body);
        free(f->a[i].err);
    }
    free(f->a);
    free(f);
}

static void handle(struct httpd_req *req, void *arg)
{
    struct fanout *f = xcalloc(1, sizeof *f);
    f->req = req;
    f->a = xcalloc((size_t)M.n, sizeof *f->a);
    f->pending = M.n;
    char target[4096];
    snprintf(target, sizeof target, "%s%s%s", req->path, *req->query ? "?" : "", req->query);
    for (int i = 0; i < M.n; i++) {
        struct slot *s = xmalloc(sizeof *s);
        s->f = f;
        s->i = i;
        if (!httpc_request(M.loop, &M.w[i].admin, req->method, "127.0.0.1", req->bearer, target, "application/json",
                           req->body_len || req->method_id != HTTP_M_GET ? req->body : NULL, req->body_len, 10,
                           fan_done, s))
            fan_done(NULL, "cannot connect", s);
    }
}

/* ---- signals ---- */

static void on_hup(struct ev_loop *loop, ev_signal *w, int revents)
{
    log_info("SIGHUP: reloading %d workers", M.n);
    for (int i = 0; i < M.n; i++)
        if (M.w[i].pid)
            kill(M.w[i].pid, SIGHUP);
}

static void on_term(struct ev_loop *loop, ev_signal *w, int revents)
{
    if (M.stopping)
        return;
    log_info("signal %d: stopping %d workers", w->signum, M.n);
    M.stopping = true;
    for (int i = 0; i < M.n; i++)
        if (M.w[i].pid)
            kill(M.w[i].pid, SIGTERM);
}

int proxy_master_run(const struct proxy_config *conf, char *const *worker_argv, int fd_slot)
{
    M.loop = EV_DEFAULT;
    M.worker_argv = worker_argv;
    M.fd_slot = fd_slot;
    M.n = conf->workers;
    M.w = xcalloc((size_t)M.n, sizeof *M.w);
    for (int i = 0; i < M.n; i++)
        if (spawn(i) < 0) {
            fprintf(stderr, "berth-proxy: worker %d failed to start\n", i);
            for (int k = 0; k < i; k++) {
                kill(M.w[k].pid, SIGTERM);
                waitpid(M.w[k].pid, NULL, 0);
            }
            return 2;
        }
    char *err = NULL;
    M.admin = httpd_start(M.loop, conf->admin_listen, handle, NULL, &err);
    if (!M.admin || daemon_tls(M.admin, &conf->admin_tls, &err) < 0) {
        fprintf(stderr, "berth-proxy: admin.listen: %s\n", err);
        for (int i = 0; i < M.n; i++)
            kill(M.w[i].pid, SIGTERM);
        return 2;
    }
    for (int i = 0; i < M.n; i++)
        watch(i);
    ev_signal hup, term, intr;
    ev_signal_init(&hup, on_hup, SIGHUP);
    ev_signal_init(&term, on_term, SIGTERM);
    ev_signal_init(&intr, on_term, SIGINT);
    ev_signal_start(M.loop, &hup);
    ev_signal_start(M.loop, &term);
    ev_signal_start(M.loop, &intr);
    log_info("berth-proxy %s ready: %d workers, admin on %s", BERTH_VERSION, M.n, conf->admin_listen);
    ev_run(M.loop, 0);
    httpd_stop(M.admin);
    free(M.w);
    log_info("stopped");
    return 0;
}
