/* sched.h -- berth-scheduler: its state and the functions of its modules. */
#ifndef BERTH_SCHED_H
#define BERTH_SCHED_H

#include <ev.h>
#include <jansson.h>
#include <stdbool.h>
#include <string.h>

#include "berth/net.h"
#include "store.h"

#include "validate.h"

/* ---- the scheduler ----
 * Who calls whom (docs/architecture.md has the picture): the API (api.c, nodes_api.c) and the metrics
 * reader (metrics.c) sit on top; below them the service scheduler (reconcile.c) decides, placement
 * glue (place.c) and stopping (stop.c) act, nodes.c keeps the node table, sync.c and calls.c talk to
 * the data plane, core.c holds events and the wake-up timers; task.c owns the task lifecycle and
 * agent.c runs the embedded node's tasks. Lower files call upward only through hooks set at start. */

#include "agent.h"
#include "berth/list.h"

struct auth;
struct httpd_req;
struct httpc_response;

/* One recent event (core.c). */
struct sched_event {
    unsigned long long seq; /* 1, 2, ...: a cursor for GET /v1/events?since= */
    char at[32];
    char *service; /* NULL: the cluster's */
    char *message;
};

struct sched {
    struct ev_loop *loop;
    struct sched_store *store;
    struct tasks tasks;  /* the task table; its changed() hook is the service scheduler's */
    struct agent agent;  /* the embedded node (when node_id is not "") */
    const struct runtime_ops *process_runtime; /* runs its tasks (NULL: proc_runtime; tests give a fake) */
    char *data_dir;
    char *dns;           /* BERTH_DNS given to tasks */
    char *namespace;     /* BERTH_NAMESPACE */
    const char *node_id; /* the embedded node ("local"; "" for none) */
    int port_lo, port_hi;
    int cpu, memory_mib; /* the embedded node's capacity */
    json_t *attributes;  /* the embedded node's attributes */
    const char *container_engine; /* its container engine's socket (NULL: the usual ones; "none") */
    bool image_pull_always;
    ev_timer tick;       /* runs reconcile_pass (core.c) */
    void (*reconcile_pass)(struct sched *sc); /* the service scheduler's pass (set by reconcile.c) */
    void (*sync_pass)(struct sched *sc);      /* the data plane sync (set by sync.c) */
    struct sched_event *events; /* a ring of the recent events (core.c) */
    size_t events_head, events_len;
    unsigned long long event_seq; /* the newest event's */
    struct list services_rt; /* per service: restart backoff, steady state (reconcile.c) */
    struct net_addr proxy_admin, dns_admin; /* len 0: not configured */
    const char *proxy_listener;             /* listener that gets services' host rules */
    ev_timer sync_timer;                    /* runs sync_pass (core.c) */
    struct list calls;                      /* data plane requests in flight (calls.c) */
    bool stopping;               /* sched_calls_stop is cancelling the calls in flight */
    double autoscale_interval_s; /* how often metrics are read and autoscaling evaluated */
    ev_timer metrics_timer;
    struct svc_metrics *metrics; /* per service (metrics.c) */
    double node_lost_after_s;    /* a remote node without heartbeat this long is lost */
    struct list nodes_rt;        /* per node: last heartbeat, lost, waking (nodes.c) */
    ev_timer nodes_timer;
    struct list drains;          /* tasks leaving their load balancers (stop.c) */
    const struct auth *auth;     /* API tokens (none: authentication off) */
    const char *proxy_admin_token, *dns_admin_token; /* sent to the data plane (NULL: none) */
    unsigned char node_secret[32]; /* per-node tokens are HMACs of node ids under it (data_dir/node-secret) */
};

/* The string member <key> of <o>, or <def> when it is missing or not a string. */
static inline const char *sched_str(json_t *o, const char *key, const char *def)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : def;
}

/* The stored service named <name>, or NULL. */
static inline json_t *sched_service_get(struct sched_store *store, const char *name)
{
    return name ? json_object_get(json_object_get(sched_store_state(store), "services"), name) : NULL;
}

/* True when <o>'s string member <key> is <value>. */
static inline bool sched_is(json_t *o, const char *key, const char *value)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v && strcmp(v, value) == 0;
}

/* ---- core.c: events and wake-ups ---- */
/* Prepares the lists and timers of <sc> (its store open) and loads the events kept in the store. */
void sched_init(struct sched *sc);
/* Appends an event ("service" may be NULL); also logged. */
void sched_event(struct sched *sc, const char *service, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The events of <service> (NULL: all) newer than <since> (a seq; 0: all), oldest first, at most
 * <limit> (0: all) of the newest. */
json_t *sched_events_json(struct sched *sc, const char *service, unsigned long long since, size_t limit);
void sched_events_free(struct sched *sc);
/* Runs the service scheduler soon (after any change), outside the caller's stack. */
void sched_kick(struct sched *sc);
/* Syncs the data plane soon (after a task started or is leaving). */
void sched_sync_kick(struct sched *sc);
/* (Re)arms timer <w> of a pass to run in <after> seconds: its owner's periodic schedule. */
void sched_schedule(struct sched *sc, ev_timer *w, double after);
/* Stops both timers (at exit). */
void sched_timers_stop(struct sched *sc);

/* ---- access.c ---- */
/* The token of node <node>: what its agent presents in heartbeats and what the scheduler presents
 * to the agent's API (64 hex digits into <hex>). */
void sched_node_token(const struct sched *sc, const char *node, char hex[65]);
/* Loads data_dir/node-secret, creating it (mode 0600) on first start. Returns 0 or -1 with *err. */
int sched_node_secret_load(struct sched *sc, char **err);
/* httpd_authz for the scheduler's API: tokens by role, and each node's own token for its heartbeats. */
int sched_authz(const struct httpd_req *req, void *arg);

/* ---- calls.c: requests to the data plane's admin APIs and to agents ---- */
typedef void (*sched_call_cb)(struct sched *sc, const struct httpc_response *resp, const char *err, void *arg);
/* Sends <method> <path> with JSON <body> (NULL: none) to the proxy's or DNS's admin API (<to> is
 * &sc->proxy_admin or &sc->dns_admin) or, with <node> set, to that node's agent with its node token.
 * <cb> always runs once: with the answer, or with <err> (also when the scheduler stops first). */
void sched_call(struct sched *sc, const struct net_addr *to, const char *node, const char *method, const char *path,
                const char *body, sched_call_cb cb, void *arg);
/* sched_call with its own deadline (sched_call's is 5 s). */
void sched_call_within(struct sched *sc, double timeout_s, const struct net_addr *to, const char *node,
                       const char *method, const char *path, const char *body, sched_call_cb cb, void *arg);
/* Cancels the calls in flight (their callbacks run with an error). */
void sched_calls_stop(struct sched *sc);

/* ---- nodes.c: the node table (container instances) ---- */
/* Records the embedded node and starts watching heartbeats. */
void sched_nodes_start(struct sched *sc);
void sched_nodes_stop(struct sched *sc);
/* The stored record of node <id>, or NULL. */
json_t *sched_node_get(struct sched *sc, const char *id);
/* True while node <id> is lost (no heartbeat for node_lost_after_s). */
bool sched_node_lost(struct sched *sc, const char *id);
/* Node <id> was heard from (registration or heartbeat); a lost node is back. */
void sched_node_heard(struct sched *sc, const char *id);
/* Seconds since node <id>'s last heartbeat; < 0 when unknown. */
double sched_node_silence_s(struct sched *sc, const char *id);
/* Asks berth-agent <node> to heartbeat now (it has work). */
void sched_node_wake(struct sched *sc, const char *node);
/* True when <task> is on a node that is DRAINING or lost (its service replaces it). */
bool sched_task_on_leaving_node(struct sched *sc, json_t *task);
/* The address ("ip:port") at which a task's <port> is reached: its node's address. */
void sched_task_address(struct sched *sc, json_t *task, long long port, char *out, size_t len);

/* ---- stop.c: stopping tasks wherever they run, draining them from load balancers first ---- */
/* Stops task <id> for <code>/<reason>: a RUNNING task of a load-balanced service leaves its target
 * groups first (DEACTIVATING), then its node stops it. */
void sched_task_stop(struct sched *sc, const char *id, const char *code, const char *reason);
/* Resumes the stops a restart interrupted (after the agent adopted the node's tasks). */
void sched_stops_resume(struct sched *sc);
/* Task <id> is STOPPED: forgets its drain. */
void sched_stop_forget(struct sched *sc, const char *id);
void sched_stops_free(struct sched *sc);

/* ---- place.c: placement of PENDING tasks (placement.c decides, this applies) ---- */
void sched_place_pending(struct sched *sc);

/* ---- sync.c: registration of running tasks in the proxy and DNS ---- */
void sched_sync_start(struct sched *sc);
/* A deleted service has drained: its target groups are emptied (a request for it gets 503) and its
 * DNS services deleted (NXDOMAIN). */
void sched_sync_retire(struct sched *sc, const char *name, json_t *svc);
void sched_sync_stop(struct sched *sc);

/* ---- reconcile.c: the service scheduler ---- */
/* Adopts the embedded node's tasks, resumes stops, and starts the reconcile loop. */
void sched_start(struct sched *sc);
void sched_stop(struct sched *sc);
/* Creates a PENDING task of <service> (NULL: one-off) for <taskdef_ref> ("family:rev"), placed by the
 * next pass; <id_out> gets its id (33 bytes). */
void sched_run_task(struct sched *sc, const char *service, const char *taskdef_ref, char *id_out);
/* Records a deployment of <service> from <previous> to <current> (task definitions). */
void sched_deployment_start(struct sched *sc, const char *service, const char *previous, const char *current);

/* ---- metrics.c: reads each load-balanced service's targets from the proxy every autoscale_interval_s:
 * request rate, p99 latency and target health; replaces tasks the proxy finds unhealthy (after
 * health_check_grace_period_s) and runs the autoscaling policy. ---- */
void sched_metrics_start(struct sched *sc);
void sched_metrics_stop(struct sched *sc);
/* Adds "metrics" and "autoscaling_status" of <service> to <out> (GET /v1/services). */
void sched_metrics_describe(struct sched *sc, const char *service, json_t *out);

/* ---- nodes_api.c: /v1/nodes (registration, heartbeats, draining) ---- */
void sched_nodes_api(struct sched *sc, struct httpd_req *req);

/* ---- api.c ---- */
struct httpd;
/* Serves the scheduler API on <listen>; NULL with *err. */
struct httpd *sched_api_start(struct sched *sc, const char *listen, char **err);

#endif
