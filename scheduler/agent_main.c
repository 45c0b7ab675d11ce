/* agent_main.c -- berth-agent: a further node for berth-scheduler. It registers its capacity and
 * attributes, then heartbeats: each heartbeat reports its tasks and gets back the tasks the scheduler
 * wants on it (new ones to start, "stop" ones to stop). Tasks run through agent.c, as on the
 * scheduler's embedded node, and are kept in a local journal (data_dir), so a restarted agent adopts
 * its running tasks. A small API serves the tasks' logs and resource use to the scheduler. */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "berth/alloc.h"
#include "berth/auth.h"
#include "berth/buf.h"
#include "berth/config.h"
#include "berth/daemon.h"
#include "berth/httpc.h"
#include "berth/httpd.h"
#include "berth/log.h"
#include "berth/tls.h"
#include "berth/util.h"
#include "agent.h"
#include "validate.h"

static const char *const pull_policies[] = {"if_not_present", "always", NULL};

struct agent_config {
    char *scheduler, *node_id, *listen, *data_dir, *address, *join_token, *join_token_file, *container_engine;
    int cpu, memory_mib, image_pull;
    double heartbeat_interval_s;
};

static const struct cfg_field fields[] = {
    {"scheduler", CFG_STRING, offsetof(struct agent_config, scheduler), 0, 0, 0, "http://127.0.0.1:7400", NULL, false},
    {"node_id", CFG_STRING, offsetof(struct agent_config, node_id), 0, 0, 0, NULL, NULL, false},
    {"listen", CFG_ADDR, offsetof(struct agent_config, listen), 0, 0, 0, "127.0.0.1:7410", NULL, false},
    {"data_dir", CFG_STRING, offsetof(struct agent_config, data_dir), 0, 0, 0, "berth-agent-data", NULL, false},
    {"address", CFG_STRING, offsetof(struct agent_config, address), 0, 0, 0, "127.0.0.1", NULL, false},
    {"cpu", CFG_INT, offsetof(struct agent_config, cpu), 0, 1 << 20, -1, NULL, NULL, false},
    {"memory_mib", CFG_INT, offsetof(struct agent_config, memory_mib), 0, 1 << 30, -1, NULL, NULL, false},
    {"attributes", CFG_NESTED, 0, 0, 0, 0, NULL, NULL, false},
    {"port_range", CFG_NESTED, 0, 0, 0, 0, NULL, NULL, false},
    {"container_engine", CFG_STRING, offsetof(struct agent_config, container_engine), 0, 0, 0, NULL, NULL, false},
    {"image_pull", CFG_ENUM, offsetof(struct agent_config, image_pull), 0, 0, 0, "if_not_present", pull_policies, false},
    {"join_token", CFG_STRING, offsetof(struct agent_config, join_token), 0, 0, 0, NULL, NULL, false},
    {"join_token_file", CFG_STRING, offsetof(struct agent_config, join_token_file), 0, 0, 0, NULL, NULL, false},
    {"auth", CFG_NESTED, 0, 0, 0, 0, NULL, NULL, false},
    {"tls", CFG_NESTED, 0, 0, 0, 0, NULL, NULL, false},
    {"heartbeat_interval_s", CFG_DOUBLE, offsetof(struct agent_config, heartbeat_interval_s), 0.1, 60, 1, NULL, NULL,
     false},
    CFG_END,
};

static struct {
    struct ev_loop *loop;
    struct sched_store *store;
    struct tasks tasks;
    struct agent agent;
    struct net_addr scheduler;
    char host[128];
    json_t *registration; /* POST /v1/nodes body */
    bool registered, failing;
    struct httpc_req *inflight;
    bool again; /* something changed while a heartbeat was in flight */
    double interval;
    ev_timer timer;
    char *dns, *namespace;
    const char *config_path;
    struct auth auth;   /* tokens for this agent's API (besides the node token) */
    char join_token[256]; /* presented when registering */
    char node_token[65];  /* the scheduler's answer to a registration: heartbeats and its calls to us */
    unsigned long long heartbeats, heartbeat_failures;
} A;

/* Reads "auth" and the join token (join_token, or the first line of join_token_file) from <root>
 * into <auth> and <join>. Returns 0, or -1 with *err. */
static int read_access(json_t *root, struct auth *auth, char join[256], char **err)
{
    json_t *jt = json_object_get(root, "join_token"), *jf = json_object_get(root, "join_token_file");
    join[0] = 0;
    if ((jt && !json_is_string(jt)) || (jf && !json_is_string(jf)))
        return cfg_error(err, jt && !json_is_string(jt) ? "join_token" : "join_token_file", "must be a string");
    if (jt && jf)
        return cfg_error(err, "join_token_file", "give join_token or join_token_file, not both");
    if (jt)
        snprintf(join, 256, "%s", json_string_value(jt));
    if (jf) {
        FILE *f = fopen(json_string_value(jf), "r");
        if (!f || !fgets(join, 256, f)) {
            if (f)
                fclose(f);
            return cfg_error(err, "join_token_file", "cannot read \"%s\"", json_string_value(jf));
        }
        fclose(f);
        join[strcspn(join, "\r\n")] = 0;
    }
    return auth_parse(json_object_get(root, "auth"), "auth", auth, err);
}

/* Who may call this agent's API: the scheduler with this node's token, or a token of "auth". */
static int agent_authz(const struct httpd_req *req, void *arg)
{
    if (A.auth.n == 0 && !A.node_token[0])
        return 0;
    if (A.node_token[0] && req->bearer && auth_equal(A.node_token, req->bearer))
        return 0;
    return A.auth.n ? auth_allow(&A.auth, req->bearer, req->method) : 401;
}

static int reload(json_t *root, void *arg, char **err)
{
    char join[256];
    struct auth next;
    if (read_access(root, &next, join, err) < 0)
        return -1;
    auth_free(&A.auth);
    A.auth = next;
    memcpy(A.join_token, join, sizeof A.join_token);
    log_info("SIGHUP: reloaded auth (%zu tokens) and the join token; other settings need a restart", A.auth.n);
    return 0;
}

static void on_hup(struct ev_loop *loop, ev_signal *w, int revents)
{
    daemon_reload(A.config_path, reload, NULL);
}

/* ---- the agent's hooks: the scheduler hears of changes on the next heartbeat ---- */

static void heartbeat_soon(void)
{
    if (A.inflight) {
        A.again = true;
        return;
    }
    A.timer.repeat = 0.005;
    ev_timer_again(A.loop, &A.timer);
}

static void task_changed(void *arg, const char *id, enum task_status was, enum task_status now)
{
    if (now == TASK_RUNNING || now == TASK_STOPPED)
        heartbeat_soon();
}

/* A failed health check: stopped here (the scheduler, told by the heartbeat, replaces the task). */
static void stop_hook(void *arg, const char *id, const char *code, const char *reason)
{
    agent_stop(&A.agent, id, code, reason);
}

static void event_hook(void *arg, const char *service, const char *msg)
{
    log_info("%s%s%s", service ? service : "", service ? ": " : "", msg);
}

/* ---- heartbeats ---- */

/* Does what the scheduler asked: start the tasks new to us, stop those marked "stop" and those it
 * no longer lists; forget stopped tasks it has seen stopped. */
static void apply(json_t *tasks, json_t *keep)
{
    struct agent *ag = &A.agent;
    json_t *wanted = json_object(), *x, *t;
    size_t i;
    json_array_foreach(tasks, i, x) {
        const char *id = json_string_value(json_object_get(x, "id"));
        if (!id)
            continue;
        char path[80], tid[40];
        snprintf(tid, sizeof tid, "%s", id);
        snprintf(path, sizeof path, "tasks/%s", tid);
        json_object_set_new(wanted, tid, json_true());
        json_t *local = sched_store_get(A.store, path);
        bool stop = json_is_true(json_object_get(x, "stop"));
        if (!local && !stop && json_object_get(x, "definition")) {
            json_t *copy = json_deep_copy(x);
            json_object_set_new(copy, "node", json_string(ag->node_id));
            sched_store_put(A.store, path, copy, NULL, NULL);
            log_info("task %s: starting (%s)", tid, json_string_value(json_object_get(x, "task_definition")));
            agent_start(ag, tid);
        } else if (stop && agent_running(ag, tid)) {
            agent_stop(ag, tid,
                       json_is_string(json_object_get(x, "stop_code")) ? json_string_value(json_object_get(x, "stop_code"))
                                                                       : "UserInitiated",
                       json_is_string(json_object_get(x, "stopped_reason"))
                           ? json_string_value(json_object_get(x, "stopped_reason"))
                           : "stopped by the scheduler");
        } else if (stop && !(local && task_is(local, TASK_STOPPED))) {
            /* Told to stop a task it does not run (its data was lost, or it never started): it says so,
             * and the scheduler's record becomes STOPPED instead of STOPPING for ever. */
            if (!local) {
                json_t *rec = json_pack("{s:s,s:s}", "id", tid, "node", ag->node_id);
                sched_store_put(A.store, path, rec, NULL, NULL);
            }
            log_warn("task %s: the scheduler asks to stop it, but it does not run here", tid);
            task_stopped(&A.tasks, tid, json_is_string(json_object_get(x, "stop_code")) ? json_string_value(json_object_get(x, "stop_code")) : "TaskLost",
                         "The node's agent did not run the task");
        }
    }
    json_t *kept = json_object(); /* stopped, and still shown by the scheduler: their records and logs stay */
    json_array_foreach(keep, i, x)
        if (json_is_string(x))
            json_object_set_new(kept, json_string_value(x), json_true());
    json_t *gone = json_array();
    const char *id;
    json_object_foreach(json_object_get(sched_store_state(A.store), "tasks"), id, t)
        if (!json_object_get(wanted, id))
            json_array_append_new(gone, json_string(id));
    json_array_foreach(gone, i, x) {
        char path[80], tid[40];
        snprintf(tid, sizeof tid, "%s", json_string_value(x));
        snprintf(path, sizeof path, "tasks/%s", tid);
        if (agent_running(ag, tid)) {
            log_info("task %s: the scheduler no longer wants it; stopping", tid);
            agent_stop(ag, tid, "ServiceSchedulerInitiated", "The scheduler no longer wants the task on this node");
        } else if (!json_object_get(kept, tid)) { /* the scheduler has its final state, and pruned it: its log goes with it */
            const char *log = json_string_value(json_object_get(sched_store_get(A.store, path), "log"));
            if (log)
                unlink(log);
            sched_store_put(A.store, path, NULL, NULL, NULL);
        }
    }
    json_decref(gone);
    json_decref(kept);
    json_decref(wanted);
}

static void heartbeat(struct ev_loop *loop, ev_timer *w, int revents);

static void answered(const struct httpc_response *resp, const char *err, void *arg)
{
    A.inflight = NULL;
    json_t *body = !err && resp->status < 300 ? json_loadb(resp->body, resp->body_len, 0, NULL) : NULL;
    if (body)
        A.heartbeats++;
    else
        A.heartbeat_failures++;
    if (!body) {
        if (!A.failing)
            log_warn("%s %s: %s", A.registered ? "heartbeat" : "registration", A.host,
                     err                   ? err
                     : resp->status == 404 ? "the scheduler does not know this node"
                                           : "error answer");
        A.failing = true;
        if (!err && resp->status == 404)
            A.registered = false; /* register again */
    } else if (!A.registered) {
        free(A.dns);
        free(A.namespace);
        A.dns = xstrdup(json_is_string(json_object_get(body, "dns_server"))
                           ? json_string_value(json_object_get(body, "dns_server"))
                           : "127.0.0.1:8600");
        A.namespace = xstrdup(json_is_string(json_object_get(body, "namespace"))
                                 ? json_string_value(json_object_get(body, "namespace"))
                                 : "berth.internal");
        A.agent.dns = A.dns;
        A.agent.namespace = A.namespace;
        json_t *tok = json_object_get(body, "token");
        snprintf(A.node_token, sizeof A.node_token, "%s", json_is_string(tok) ? json_string_value(tok) : "");
        A.registered = true;
        A.again = true;
        log_info("registered with the scheduler at %s as node %s", A.host, A.agent.node_id);
    } else {
        if (A.failing)
            log_info("heartbeats reach the scheduler again");
        A.failing = false;
        apply(json_object_get(body, "tasks"), json_object_get(body, "keep"));
    }
    json_decref(body);
    A.timer.repeat = A.again ? 0.005 : A.interval;
    A.again = false;
    ev_timer_again(A.loop, &A.timer);
}

static void heartbeat(struct ev_loop *loop, ev_timer *w, int revents)
{
    ev_timer_stop(loop, w);
    if (A.inflight)
        return;
    char path[160], *body;
    if (A.registered) {
        json_t *list = json_array(), *t;
        const char *id;
        json_object_foreach(json_object_get(sched_store_state(A.store), "tasks"), id, t) {
            json_t *copy = json_deep_copy(t);
            json_object_del(copy, "definition");
            json_array_append_new(list, copy);
        }
        json_t *hb = json_pack("{s:o}", "tasks", list);
        body = json_dumps(hb, JSON_COMPACT);
        json_decref(hb);
        snprintf(path, sizeof path, "/v1/nodes/%s/heartbeat", A.agent.node_id);
    } else {
        body = json_dumps(A.registration, JSON_COMPACT);
        snprintf(path, sizeof path, "/v1/nodes");
    }
    A.inflight = httpc_request(loop, &A.scheduler, "POST", A.host, A.registered ? A.node_token : A.join_token, path, "application/json", body, strlen(body), 5.0,
                               answered, NULL);
    free(body);
    if (!A.inflight)
        answered(NULL, "cannot connect", NULL);
}

/* ---- the agent's API: logs of its tasks, wake-ups from the scheduler, metrics ---- */

static void metrics(void *arg, struct buf *b)
{
    unsigned long long n[TASK_NSTATUS] = {0};
    json_t *t;
    const char *id;
    json_object_foreach(json_object_get(sched_store_state(A.store), "tasks"), id, t)
        n[task_status(t)]++;
    buf_printf(b, "# HELP berth_agent_tasks Tasks on this node by status.\n# TYPE berth_agent_tasks gauge\n");
    for (int i = 0; i < TASK_NSTATUS; i++)
        buf_printf(b, "berth_agent_tasks{status=\"%s\"} %llu\n", task_status_name((enum task_status)i), n[i]);
    buf_printf(b,
               "# HELP berth_agent_registered Whether the scheduler knows this node.\n"
               "# TYPE berth_agent_registered gauge\nberth_agent_registered %d\n"
               "# HELP berth_agent_heartbeats_total Registrations and heartbeats the scheduler answered.\n"
               "# TYPE berth_agent_heartbeats_total counter\nberth_agent_heartbeats_total %llu\n"
               "# HELP berth_agent_heartbeat_failures_total Registrations and heartbeats that failed.\n"
               "# TYPE berth_agent_heartbeat_failures_total counter\nberth_agent_heartbeat_failures_total %llu\n",
               A.registered, A.heartbeats, A.heartbeat_failures);
}

static int health(void *arg, json_t *body)
{
    json_object_set_new(body, "node", json_string(A.agent.node_id));
    json_object_set_new(body, "registered", json_boolean(A.registered));
    return 200;
}

static void wake(struct httpd_req *req, void *arg)
{
    heartbeat_soon(); /* the scheduler has work for this node */
    httpd_respond_json(req, 200, json_pack("{s:b}", "woken", 1));
}

static void task_logs(struct httpd_req *req, void *arg)
{
    agent_logs(&A.agent, req, req->segs[2]);
}

static void task_stats(struct httpd_req *req, void *arg)
{
    agent_stats(&A.agent, req, req->segs[2]);
}

static void task_exec(struct httpd_req *req, void *arg)
{
    agent_exec(&A.agent, req, req->segs[2]);
}

static void task_exec_read(struct httpd_req *req, void *arg)
{
    agent_exec_read(&A.agent, req, req->segs[2]);
}

static void task_exec_input(struct httpd_req *req, void *arg)
{
    agent_exec_input(&A.agent, req, req->segs[2]);
}

static const struct httpd_route routes[] = {
    {"POST", "/v1/wake", wake},
    {"POST", "/v1/tasks/{}/exec", task_exec},
    {"POST", "/v1/tasks/{}/exec/{}", task_exec_read},
    {"POST", "/v1/tasks/{}/exec/{}/input", task_exec_input},
    {"GET", "/v1/tasks/{}/logs", task_logs},
    {"GET", "/v1/tasks/{}/stats", task_stats},
    {NULL, NULL, NULL},
};

static const struct httpd_service service = {routes, health, metrics, NULL};

/* ---- main ---- */

static void usage(FILE *f)
{
    fprintf(f, "usage: berth-agent [-c FILE] [-t] [--stop-tasks] [--log-format text|json] [--log-level LEVEL]\n"
               "\n"
               "A further node for berth-scheduler: registers its capacity and attributes, runs the tasks\n"
               "the scheduler places on it, and reports them in heartbeats (docs/scheduler.md).\n"
               "\n"
               "  -c, --config FILE     JSON config: scheduler, node_id, listen, data_dir, address, cpu,\n"
               "                        memory_mib, attributes, port_range, heartbeat_interval_s,\n"
               "                        join_token or join_token_file, auth, container_engine, image_pull\n"
               "  -t, --check           validate the config and exit (0 valid, 2 invalid)\n"
               "      --stop-tasks      on SIGTERM/SIGINT kill every task (default: they keep running and\n"
               "                        a restarted agent adopts them)\n" DAEMON_FLAGS_HELP);
}

int main(int argc, char **argv)
{
    const char *stop_flag = NULL;
    const struct daemon_extra extra[] = {{"stop-tasks", 0, &stop_flag}, {NULL, 0, NULL}};
    struct daemon_args args;
    int rc = daemon_args_parse(argc, argv, "berth-agent", usage, extra, &args);
    if (rc >= 0)
        return rc;
    char *err = NULL, *inner = NULL;
    struct agent_config conf = {0};
    json_t *root = args.config ? cfg_load_file(args.config, &err) : json_object();
    char hostname[64] = "node";
    gethostname(hostname, sizeof hostname - 1);
    struct tls_block tls = {0};
    if (root && cfg_read(root, "", fields, &conf, &inner) == 0 &&
        tls_block_read(json_object_get(root, "tls"), "tls", &tls, &inner) == 0) {
        if (!conf.node_id)
            conf.node_id = xstrdup(hostname);
        if (conf.cpu < 0)
            conf.cpu = (int)sysconf(_SC_NPROCESSORS_ONLN) * 1024;
        if (conf.memory_mib < 0)
            conf.memory_mib = (int)(sysconf(_SC_PHYS_PAGES) / 1024 * sysconf(_SC_PAGESIZE) / 1024);
        /* The node as the scheduler validates it (the same rules, checked here first). */
        A.registration =
            json_pack("{s:s,s:i,s:i,s:s,s:O*,s:O*}", "id", conf.node_id, "cpu", conf.cpu, "memory_mib", conf.memory_mib,
                      "address", conf.address, "attributes", json_object_get(root, "attributes"), "port_range",
                      json_object_get(root, "port_range"));
        json_object_set_new(A.registration, "agent_api", json_sprintf("http://%s", conf.listen));
        json_object_set_new(A.registration, "cgroups", json_string(agent_cgroups()));
        json_t *checked = sched_node_validate(A.registration, &inner);
        if (checked) {
            json_decref(A.registration);
            A.registration = checked;
        }
        if (!inner && net_parse_url(conf.scheduler, &A.scheduler) < 0)
            cfg_error(&inner, "scheduler", "\"%s\" must be a URL like http://127.0.0.1:7400", conf.scheduler);
        if (!inner)
            read_access(root, &A.auth, A.join_token, &inner);
    } else if (!inner && !err) {
        cfg_error(&inner, "", "cannot read the config");
    }
    if (!root || inner) {
        fprintf(stderr, "berth-agent: %s%s%s\n",
                err           ? err
                : args.config ? args.config
                              : "(defaults)",
                inner ? ": " : "", inner ? inner : "");
        json_decref(A.registration);
        return 2;
    }
    json_decref(root);
    /* The node token protects the API once registered; without a join token there will be none. */
    bool refused =
        !A.join_token[0] && auth_require(&A.auth, conf.listen, "the agent API", args.insecure, "berth-agent") < 0;
    A.config_path = args.config;
    if (refused || args.check) {
        if (!refused)
            printf("%s: ok\n", args.config ? args.config : "(defaults)");
        json_decref(A.registration);
        auth_free(&A.auth);
        tls_block_free(&tls);
        cfg_free(fields, &conf);
        return refused ? 2 : 0;
    }
    signal(SIGPIPE, SIG_IGN);
    struct ev_loop *loop = EV_DEFAULT;
    struct sched_store *store = sched_store_open(loop, conf.data_dir, &err);
    if (!store) {
        fprintf(stderr, "berth-agent: %s\n", err);
        return 2;
    }
    char tasks_dir[1024];
    snprintf(tasks_dir, sizeof tasks_dir, "%s/tasks", conf.data_dir);
    mkdir(tasks_dir, 0755);
    json_t *pr = json_object_get(A.registration, "port_range");
    A.loop = loop;
    A.store = store;
    A.tasks = (struct tasks){.store = store, .changed = task_changed};
    A.agent = (struct agent){.loop = loop,
                             .tasks = &A.tasks,
                             .data_dir = conf.data_dir,
                             .node_id = conf.node_id,
                             .dns = "127.0.0.1:8600",
                             .namespace = "berth.internal",
                             .port_lo = (int)json_integer_value(json_array_get(pr, 0)),
                             .port_hi = (int)json_integer_value(json_array_get(pr, 1)),
                             .container_engine = conf.container_engine,
                             .image_pull_always = conf.image_pull == 1,
                             .stop_hook = stop_hook,
                             .event_hook = event_hook};
    agent_init(&A.agent);
    if (ctr_engine(&A.agent))
        json_object_set_new(A.registration, "container_engine", json_string(ctr_engine(&A.agent)));
    else
        json_object_set_new(A.registration, "container_engine_error", json_string(ctr_engine_error(&A.agent)));
    /* The Host header: the URL without its scheme and trailing '/'. */
    const char *sep = strstr(conf.scheduler, "://");
    snprintf(A.host, sizeof A.host, "%s", sep ? sep + 3 : conf.scheduler);
    if (*A.host && A.host[strlen(A.host) - 1] == '/')
        A.host[strlen(A.host) - 1] = 0;
    A.interval = conf.heartbeat_interval_s;
    struct httpd *api = httpd_serve(loop, conf.listen, &service, NULL, &err);
    if (!api) {
        fprintf(stderr, "berth-agent: listen: %s\n", err);
        return 2;
    }
    httpd_set_authz(api, agent_authz, NULL);
    if (daemon_tls(api, &tls, &err) < 0) {
        fprintf(stderr, "berth-agent: tls: %s\n", err);
        return 2;
    }
    /* The API's address as the scheduler will call it (the port the kernel chose, for port 0). */
    const char *colon = strrchr(conf.listen, ':');
    json_object_set_new(A.registration, "agent_api",
                        json_sprintf("%s://%.*s:%d", tls.cert ? "https" : "http", (int)(colon - conf.listen), conf.listen,
                                     httpd_port(api)));
    agent_adopt(&A.agent);
    ev_init(&A.timer, heartbeat);
    heartbeat_soon();
    ev_signal hup, exit_signals[2];
    ev_signal_init(&hup, on_hup, SIGHUP);
    ev_signal_start(loop, &hup);
    daemon_exit_on_signals(loop, exit_signals);
    log_info("berth-agent %s ready: node %s (%d cpu, %d MiB, ports %d-%d), scheduler %s, API on %s", BERTH_VERSION,
             conf.node_id, conf.cpu, conf.memory_mib, A.agent.port_lo, A.agent.port_hi, conf.scheduler, conf.listen);
    ev_run(loop, 0);
    if (stop_flag)
        agent_kill_all(&A.agent);
    httpd_stop(api);
    ev_timer_stop(loop, &A.timer);
    if (A.inflight)
        httpc_cancel(A.inflight);
    agent_release(&A.agent);
    sched_store_close(store);
    json_decref(A.registration);
    free(A.dns);
    free(A.namespace);
    auth_free(&A.auth);
    tls_block_free(&tls);
    cfg_free(fields, &conf);
    log_info("stopped");
    return 0;
}
