/* sched.h -- berth-scheduler internals: durable state store, validation, API. */
#ifndef BERTH_SCHED_H
#define BERTH_SCHED_H

#include <ev.h>
#include <jansson.h>
#include <stdbool.h>

#include "berth/net.h"

/* ---- store: a JSON document changed only through journaled records ----
 * The state is {"taskdefs": {FAMILY: {REV: obj}}, "services": {NAME: obj},
 * "tasks": {ID: obj}, "seq": {...}}. A change is a record {"op": "put"|"del",
 * "path": [keys...], "value": v}; records are appended to data_dir/journal and
 * fsynced before a write is acknowledged (all writes of one loop iteration
 * share one fsync), and folded into data_dir/snapshot.json when the journal
 * grows. */

struct sched_store;
typedef void (*sched_commit_cb)(void *arg, const char *err);

/* Opens (creating) <dir>, loads the snapshot and replays the journal.
 * Returns NULL with *err. */
struct sched_store *sched_store_open(struct ev_loop *loop, const char *dir, char **err);
void sched_store_close(struct sched_store *s);
/* The current state (borrowed; do not modify it directly). */
json_t *sched_store_state(struct sched_store *s);
/* Applies put (<value> stolen; NULL means delete) at <path> ("a/b/c") now, and
 * journals it; <cb> runs once the record is on disk (or failed). */
void sched_store_put(struct sched_store *s, const char *path, json_t *value, sched_commit_cb cb, void *arg);
/* Replaces the object at <path> with a copy updated by <fields> (stolen), journaled without
 * waiting for the disk. Objects in the state are never changed in place, so pointers taken
 * before stay valid until a put at the same path. */
void sched_store_merge(struct sched_store *s, const char *path, json_t *fields);
/* Looks up <path> ("a/b/c") in the state; borrowed or NULL. */
json_t *sched_store_get(struct sched_store *s, const char *path);
/* Records written and fsyncs done since start (for metrics and benchmarks). */
void sched_store_stats(struct sched_store *s, unsigned long long *records, unsigned long long *fsyncs);

/* ---- validation (validate.c) ---- */

/* Checks a task definition body and returns its normalized form (defaults
 * filled in), or NULL with *err naming the JSON path. */
json_t *sched_taskdef_validate(json_t *body, char **err);
/* Checks a service body; <taskdef_exists> resolves "family[:rev]" to the
 * canonical "family:rev" or returns NULL. */
json_t *sched_service_validate(json_t *body, char *(*resolve)(void *ctx, const char *ref), void *ctx, char **err);

/* Checks a node registration (POST /v1/nodes) and fills in defaults; NULL with *err. */
json_t *sched_node_validate(json_t *body, char **err);

/* ---- the scheduler: agent + service scheduler (agent.c, reconcile.c) ---- */

#define SCHED_MAX_CONTAINERS 8

struct sched_run; /* a running task on this node (agent.c) */
struct sched_drain;
struct sched_node_state;

struct auth;
struct httpd_req;

struct sched {
    struct ev_loop *loop;
    struct sched_store *store;
    char *data_dir;
    char *dns;           /* BERTH_DNS given to tasks */
    char *namespace;     /* BERTH_NAMESPACE */
    const char *node_id; /* the node whose tasks agent.c runs ("local" in the scheduler) */
    int port_lo, port_hi;
    int cpu, memory_mib; /* this node's capacity */
    json_t *attributes;  /* this node's attributes */
    struct sched_run *runs;
    ev_timer tick;
    json_t *events;                         /* recent events, newest last */
    json_t *backoff;                        /* per service: {"failures": n, "until": monotonic seconds} */
    json_t *steady;                         /* per service: whether it last was at its desired count */
    struct net_addr proxy_admin, dns_admin; /* len 0: not configured */
    const char *proxy_listener;             /* listener that gets services' host rules */
    ev_timer sync_timer;
    struct call *calls;          /* data plane requests in flight (sync.c) */
    bool stopping;               /* sched_sync_stop is cancelling the calls in flight */
    double autoscale_interval_s; /* how often metrics are read and autoscaling evaluated */
    ev_timer metrics_timer;
    struct svc_metrics *metrics; /* per service (metrics.c) */
    double node_lost_after_s;    /* a remote node without heartbeat this long is lost */
    json_t *heartbeats;          /* node id -> monotonic time of its last heartbeat (nodes.c) */
    json_t *lost;                /* node id -> true while lost */
    json_t *waking;              /* node id -> true while a wake-up call is in flight */
    ev_timer nodes_timer;
    struct sched_drain *drains; /* tasks leaving their load balancers (nodes.c) */
    const struct auth *auth;    /* API tokens (none: authentication off) */
    const char *proxy_admin_token, *dns_admin_token; /* sent to the data plane (NULL: none) */
    unsigned char node_secret[32]; /* per-node tokens are HMACs of node ids under it (data_dir/node-secret) */
};

/* The token of node <node>: what its agent presents in heartbeats and what the scheduler presents
 * to the agent's API (64 hex digits into <hex>). */
void sched_node_token(const struct sched *sc, const char *node, char hex[65]);
/* Loads data_dir/node-secret, creating it (mode 0600) on first start. Returns 0 or -1 with *err. */
int sched_node_secret_load(struct sched *sc, char **err);
/* httpd_authz for the scheduler's API: tokens by role, and each node's own token for its heartbeats. */
int sched_authz(const struct httpd_req *req, void *arg);

/* metrics.c: reads each load-balanced service's targets from the proxy every autoscale_interval_s:
 * request rate, p99 latency and target health; replaces tasks the proxy finds unhealthy (after
 * health_check_grace_period_s) and runs the autoscaling policy. */
void sched_metrics_start(struct sched *sc);
void sched_metrics_stop(struct sched *sc);
/* Adds "metrics" and "autoscaling_status" of <service> to <out> (GET /v1/services). */
void sched_metrics_describe(struct sched *sc, const char *service, json_t *out);

/* sync.c: registration of running tasks in the proxy and DNS. */
struct httpc_response;
typedef void (*sched_call_cb)(struct sched *sc, const struct httpc_response *resp, const char *err, void *arg);
/* Sends a body-less request to a data plane admin API, or with <node> set to that node's agent (with
 * its node token); <cb> always runs once (with <err> set on failure, also when the scheduler stops first). */
void sched_call(struct sched *sc, const struct net_addr *to, const char *node, const char *method, const char *path,
                sched_call_cb cb, void *arg);
void sched_sync_start(struct sched *sc);
void sched_sync_stop(struct sched *sc);
/* Syncs soon (after a task started or is leaving). */
void sched_sync_kick(struct sched *sc);
/* Asks the proxy whether <address> has left group <tg>; answers through sched_task_drained. */
void sched_drain_poll(struct sched *sc, const char *task, const char *tg, const char *address);
/* The address ("ip:port") at which a task's <port> is reached: its node's address. */
void sched_task_address(struct sched *sc, json_t *task, long long port, char *out, size_t len);

/* ---- agent.c: runs the tasks of node sc->node_id ---- */

/* Starts task <id> (its stored object says what to run); 0, or -1 with the task STOPPED. */
int sched_agent_start(struct sched *sc, const char *id);
/* Stops task <id> now: SIGTERM, then SIGKILL after each container's stop_timeout_s. */
void sched_agent_stop(struct sched *sc, const char *id, const char *stop_code, const char *reason);
/* True while agent.c runs task <id>. */
bool sched_agent_running(struct sched *sc, const char *id);
/* Re-attaches to the node's task processes that survived a restart. */
void sched_agent_adopt(struct sched *sc);
/* "v1" or "v2" when tasks get cgroup memory and CPU limits, else "unavailable: why" (logged once). */
const char *sched_cgroups(void);
/* Kills every running task (used when stopping with --stop-tasks). */
void sched_agent_stop_all(struct sched *sc);
/* Forgets the running tasks (at exit; the processes are not touched). */
void sched_agent_release(struct sched *sc);
struct httpd_req;
/* Answers <req> with the last MiB of task <id>'s stdout and stderr. */
void sched_agent_logs(struct sched *sc, struct httpd_req *req, const char *id);

/* Agent hooks: agent.c calls these; berth-scheduler implements them in reconcile.c and nodes.c,
 * berth-agent in agent_main.c. */
/* Updates fields of task <id> in the store (journaled, no wait). Steals <fields>. */
void sched_task_update(struct sched *sc, const char *id, json_t *fields);
/* Task <id> became RUNNING. */
void sched_task_running(struct sched *sc, const char *id);
/* Task <id> became STOPPED (its stop code and reason are stored). */
void sched_task_ended(struct sched *sc, const char *id);
/* Task <id> should stop (the scheduler drains it from its load balancers first). */
void sched_task_stop(struct sched *sc, const char *id, const char *stop_code, const char *reason);
/* Appends an event ("service" may be NULL). */
void sched_event(struct sched *sc, const char *service, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- reconcile.c ---- */
void sched_start(struct sched *sc);
void sched_stop(struct sched *sc);
/* Runs the service scheduler soon (after any change). */
void sched_kick(struct sched *sc);
/* Creates a PENDING task record for <taskdef_ref> ("family:rev"), placed by the next reconcile pass;
 * returns its id. */
const char *sched_run_task(struct sched *sc, const char *service, const char *taskdef_ref, char *id_out);
/* Records a deployment of <service> from <previous> to <current> (task definitions). */
void sched_deployment_start(struct sched *sc, const char *service, const char *previous, const char *current);
/* Seconds since the task's timestamp <field> ("started_at", ...); 0 when it has none. */
double sched_task_age_s(json_t *t, const char *field);

/* ---- nodes.c: the nodes (container instances), heartbeats, placement, stopping tasks ---- */
/* Records the embedded node and starts watching heartbeats. */
void sched_nodes_start(struct sched *sc);
void sched_nodes_stop(struct sched *sc);
/* Resumes the stops a restart interrupted (after the agent adopted the node's tasks). */
void sched_nodes_resume(struct sched *sc);
/* Places the PENDING tasks that want to run (one placement batch per service). */
void sched_place_pending(struct sched *sc);
/* True when <task> is on a node that is DRAINING or lost (its service replaces it). */
bool sched_task_on_leaving_node(struct sched *sc, json_t *task);
/* /v1/nodes... requests. */
struct httpd_req;
void sched_nodes_api(struct sched *sc, struct httpd_req *req);
/* The proxy answered a drain poll for <task>: <gone> when it left the group. */
void sched_task_drained(struct sched *sc, const char *task, bool gone);

/* ---- API (api.c) ---- */
struct httpd;
/* Logs of task <id> kept on a remote node: fetched from its agent and sent as the answer. */
void sched_remote_logs(struct sched *sc, struct httpd_req *req, json_t *task);
/* Serves the scheduler API on <listen>; NULL with *err. */
struct httpd *sched_api_start(struct sched *sc, const char *listen, char **err);

#endif
