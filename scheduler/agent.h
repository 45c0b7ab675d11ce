/* agent.h -- the node agent: runs the tasks placed on one node through a task runtime.
 *
 * The same code serves the scheduler's embedded node and berth-agent. Its owner fills in a struct
 * agent (where the tasks are kept, the node's port range, what tasks are told of the plane) and two
 * hooks; the agent reports every status change through the task table (task.h) and asks its owner
 * to stop a task through stop() (the scheduler drains it from its load balancers first).
 *
 * A runtime is a table of operations over the tasks it runs. The process runtime (proc.c) runs a
 * task's containers as host processes in their own process groups and cgroups; the container runtime
 * (ctr.c) runs those of a definition that names images as OCI containers through a container engine.
 * Health checks (agent.c) and logs (a file per task, tasklog.c) are the same for both. */
#ifndef BERTH_SCHED_AGENT_H
#define BERTH_SCHED_AGENT_H

#include <ev.h>
#include <jansson.h>
#include <stdbool.h>

#include "berth/list.h"
#include "task.h"

#define AGENT_MAX_CONTAINERS 8

struct agent;
struct buf;

/* An exec's terminal: its size. */
struct exec_tty {
    int rows, cols;
};

struct runtime_ops {
    const char *name;
    /* Starts task <id> (its record has the definition; <env> is one object of environment
     * variables per container, <ports> the host ports by port-mapping name; both borrowed). The task
     * becomes ACTIVATING, then RUNNING once its ports accept connections. 0, or -1 with <why>. */
    int (*start)(struct agent *a, const char *id, json_t *env, json_t *ports, char *why, size_t why_len);
    /* Stops task <id>: SIGTERM, SIGKILL after each container's stop_timeout_s; STOPPED once all exited.
     * False when this runtime does not run it. */
    bool (*stop)(struct agent *a, const char *id);
    /* Sends <sig> to every process of task <id>; 0, or -1 with errno (ESRCH: not running here). */
    int (*signal)(struct agent *a, const char *id, int sig);
    /* Re-attaches to task <id> (record <task>) that survived a restart of the agent. */
    void (*adopt)(struct agent *a, const char *id, json_t *task);
    /* After adopt: removes what the runtime finds of its own that belongs to no task (NULL: nothing). */
    void (*sweep)(struct agent *a);
    /* Runs <argv> in container <container> of task <id>, with <env> (that container's environment,
     * borrowed): what it writes (stdout and stderr) goes to <out> as it comes, then <done> gets its exit
     * status (128 + signal; -1 when it was killed after <timeout_s>, or could not run). With <tty> it
     * runs on a terminal of that size, and *<input> is set to a handle for exec_input (valid until
     * <done>); without, its input is empty. 0, or -1 with errno (ESRCH: the task does not run here). */
    int (*exec)(struct agent *a, const char *id, int container, char *const *argv, json_t *env, double timeout_s,
                const struct exec_tty *tty, void **input, void (*out)(void *arg, const char *data, size_t len),
                void (*done)(void *arg, int status), void *arg);
    /* Types <data> on the terminal of an exec started with a tty. */
    void (*exec_input)(struct agent *a, void *input, const char *data, size_t len);
    /* Resource use of task <id>: {"memory_bytes", "cpu_seconds", "processes"} (what is known), or NULL. */
    json_t *(*stats)(struct agent *a, const char *id);
    /* True while the runtime runs task <id>. */
    bool (*running)(struct agent *a, const char *id);
    /* Kills every task now and waits briefly for them (--stop-tasks at exit). */
    void (*kill_all)(struct agent *a);
    /* Forgets every task without touching it (at exit: a restarted agent adopts them). */
    void (*release)(struct agent *a);
};

struct agent {
    struct ev_loop *loop;
    struct tasks *tasks;
    const char *data_dir;  /* task logs go to data_dir/tasks */
    const char *node_id;   /* tasks whose "node" is this are ours */
    const char *dns;       /* BERTH_DNS given to tasks */
    const char *namespace; /* BERTH_NAMESPACE */
    int port_lo, port_hi;  /* host ports handed to tasks */
    /* The runtime wants task <id> stopped (it failed its container health check). */
    void (*stop_hook)(void *arg, const char *id, const char *code, const char *reason);
    /* Something worth an event ("service" may be NULL). */
    void (*event_hook)(void *arg, const char *service, const char *msg);
    void *hook_arg;
    const char *container_engine; /* the engine's socket URL (NULL: the usual ones; "none": no engine) */
    bool image_pull_always;       /* image_pull "always" (else "if_not_present") */
    /* Runtimes (set by agent_init; the owner may put another in its place before agent_adopt). */
    const struct runtime_ops *process; /* tasks without an image */
    void *process_state;
    const struct runtime_ops *container; /* tasks with an image (ctr.c) */
    void *container_state;
    int next_port;
    struct list checks; /* container health checks (runtime.c) */
    struct list execs;  /* exec sessions being followed (exec.c) */
};

/* The process runtime (proc.c). */
extern const struct runtime_ops proc_runtime;
/* The container runtime (ctr.c). */
extern const struct runtime_ops ctr_runtime;
/* Connects the container runtime to the node's engine (called by agent_init): NULL, or why the node
 * runs no containers. */
const char *ctr_open(struct agent *a);
/* "Podman Engine 4.3.1 at unix:///run/podman/podman.sock", or NULL without an engine. */
const char *ctr_engine(struct agent *a);
/* Why the node runs no containers, or NULL when it does. */
const char *ctr_engine_error(struct agent *a);

/* How long a started task may take until its ports accept connections. */
#define AGENT_READY_MAX_S 60.0

/* ACTIVATING -> RUNNING for any runtime (runtime.c): the task becomes RUNNING, and its health checks
 * start, once every host port it was given accepts connections; after AGENT_READY_MAX_S <failed> is
 * called with why instead. A runtime embeds one per task (zeroed until started). */
struct agent_ready {
    ev_timer timer;
    struct agent *a;
    const struct runtime_ops *rt;
    char id[40];
    double started;
    void (*failed)(void *arg, const char *why);
    void *arg;
};
void agent_ready_start(struct agent_ready *r, struct agent *a, const struct runtime_ops *rt, const char *id,
                       void (*failed)(void *arg, const char *why), void *arg);
void agent_ready_stop(struct agent_ready *r);
/* The stop code and reason recorded in <task> (when there are), copied into the runtime's buffers. */
void agent_stop_reason(json_t *task, char *code, size_t code_len, char *reason, size_t reason_len);
/* True when every host port task <id> was given accepts TCP connections on 127.0.0.1. */
bool agent_ports_ready(struct agent *a, const char *id);
/* True when task record <task> runs as containers (its definition names an image). */
bool agent_is_image_task(json_t *task);
/* The runtime that runs (or would run) task <task>: a definition names images for all its containers
 * or for none (validate.c). */
const struct runtime_ops *agent_runtime(struct agent *a, json_t *task);

/* Prepares <a> (its fields above filled in by the owner), and finds its container engine. */
void agent_init(struct agent *a);
/* Starts task <id>: host ports, environment, then its runtime. 0, or -1 with the task STOPPED. */
int agent_start(struct agent *a, const char *id);
/* Stops task <id> for <code>/<reason>: a running task gets SIGTERM (STOPPING, then STOPPED); one that
 * runs nowhere here becomes STOPPED at once. */
void agent_stop(struct agent *a, const char *id, const char *code, const char *reason);
/* True while task <id> runs here. */
bool agent_running(struct agent *a, const char *id);
/* Re-attaches to this node's tasks that survived a restart. */
void agent_adopt(struct agent *a);
/* Answers <req> with the last MiB of task <id>'s output. */
struct httpd_req;
void agent_logs(struct agent *a, struct httpd_req *req, const char *id);
/* POST .../exec: runs {"command": [...], "container": NAME, "timeout_s": S} in task <id> and answers
 * {"exit_code", "output", "truncated"} (the first MiB of output); with "stream": true it answers at once
 * (201, {"exec_id"}) and the output is read as it comes with agent_exec_read (exec.c). */
void agent_exec(struct agent *a, struct httpd_req *req, const char *id);
/* POST .../exec/{exec_id}?offset=N: {"output" (from byte N), "offset" (to ask for next), "running",
 * "exit_code" (once ended), "timed_out", "truncated"}. */
void agent_exec_read(struct agent *a, struct httpd_req *req, const char *id);
/* POST .../exec/{exec_id}/input: the request's body typed on the session's terminal. */
void agent_exec_input(struct agent *a, struct httpd_req *req, const char *id);
/* Drops every exec session (at exit). */
void agent_exec_release(struct agent *a);
/* Starts the container health checks of task <id>, which just became RUNNING (or was adopted running);
 * they run through its runtime's exec and end by themselves when it stops running. */
void agent_health_start(struct agent *a, const struct runtime_ops *rt, const char *id);
/* Drops every health check (at exit). */
void agent_health_release(struct agent *a);
/* The environment of each container of task <id> (record <task>, host ports <ports>): an array of
 * objects, one per container, its own variables and berth's (PORT, BERTH_PORT_<NAME>, BERTH_TASK_ID...). */
json_t *agent_task_env(struct agent *a, const char *id, json_t *task, json_t *ports);
/* Answers <req> with task <id>'s resource use. */
void agent_stats(struct agent *a, struct httpd_req *req, const char *id);
/* Kills every task (berth-agent --stop-tasks). */
void agent_kill_all(struct agent *a);
/* Forgets the running tasks (at exit; the processes keep running). */
void agent_release(struct agent *a);
/* True for a task record of this node. */
bool agent_ours(struct agent *a, json_t *task);

/* cgroups (cgroup.c): "v1" or "v2" when tasks get memory and CPU limits, else "unavailable: why". */
const char *agent_cgroups(void);

#endif
