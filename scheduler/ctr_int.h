/* ctr_int.h -- the container runtime's own structures, shared by ctr.c (the lifecycle of a task's
 * containers) and ctr_ops.c (exec, adoption, the runtime table). Nothing else includes it. */
#ifndef BERTH_SCHED_CTR_INT_H
#define BERTH_SCHED_CTR_INT_H

#include <ev.h>
#include <jansson.h>
#include <stdbool.h>

#include "agent.h"
#include "berth/buf.h"
#include "berth/list.h"
#include "cgroup.h"
#include "engine.h"

#define CTR_CALL_S 30.0   /* a plain engine call */
#define CTR_PULL_S 600.0  /* an image pull */
#define CTR_FOREVER_S 1e8 /* following events and output */
#define CTR_CHECK_S 10.0  /* how often the agent lists its containers (exits the event stream missed) */

struct ctask;

struct ctr {
    struct ctask *t;
    int i;
    char cid[72];
    bool created; /* the engine has it (removed when the task ends) */
    bool waiting; /* it runs, and its exit is being waited for */
    bool exited;
    bool essential, oom;
    bool attaching; /* its output being attached before it starts */
    int stop_timeout;
    struct engine_call *wait, *follow; /* wait: the inspect that reads its exit code; follow: its output */
    struct engine_call *inspect;       /* the inspect after its start, for its process's cgroups */
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
    size_t log_written; /* since its size was last checked */
    struct agent_ready ready; /* ACTIVATING */
    ev_timer drain_timer; /* all exited: their last output still reaching the log */
    double started; /* when its set-up began (for the debug log) */
    bool adopting, stopping;
    bool finished; /* STOPPED: on the draining list until its output is all in the log */
    char stop_code[40], reason[300];
};

/* A call nobody waits for (removing a container, stopping one) or an exec, kept so release can drop it. */
struct side {
    struct list link;
    struct agent *a;
    struct engine_call *call;
    char exec_id[80];
    double timeout_s;
    bool tty, started; /* an exec on a terminal; its stream started (it takes input) */
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
    struct list draining; /* stopped tasks whose containers' last output is still coming */
    /* Exits come from one stream of the engine's events (a wait per container costs the engine a
     * poller each); a periodic list catches what a broken stream missed. */
    struct engine_call *events, *check;
    bool engine_down; /* the event stream broke, and has not been seen to work since */
    json_t *images;   /* references known to be present (image_pull if_not_present) */
    struct buf evbuf;
    ev_timer events_timer; /* reconnects the stream, and runs the check */
};


static inline struct ctr_state *ctr_state(struct agent *a)
{
    return a->container_state;
}

/* ctr.c: the lifecycle of a task's containers. */
struct ctask *ctr_find(struct agent *a, const char *id);
json_t *ctr_record(struct ctask *t);
struct ctask *ctr_task_new(struct agent *a, const char *id, json_t *rec);
void ctr_task_free(struct ctask *t);
/* Calls nobody waits for: kept on the state's list until they return (or release drops them). */
void ctr_side_free(struct side *s);
void ctr_side_done(void *arg, int status, json_t *body, const char *err);
void ctr_fire(struct agent *a, const char *method, const char *path, double timeout_s);
void ctr_remove_container(struct agent *a, const char *cid);
/* Stops every container of <t> that runs (stop_timeout_s, then SIGKILL); STOPPED once all have exited. */
void ctr_begin_stop(struct ctask *t);
/* Container <k> runs: its exit is watched for, its output followed (from Unix time <since> when it was
 * not attached from its start), its cgroups looked up (stats, OOM kills). */
void ctr_watch(struct ctr *k, double since);
/* Follows the engine's container events (ctr_open), and stops following them (release). */
void ctr_events_start(struct agent *a);
void ctr_events_stop(struct agent *a);
/* ACTIVATING: RUNNING once its ports accept connections. */
void ctr_await_ready(struct ctask *t);
int ctr_start(struct agent *a, const char *id, json_t *env, json_t *ports, char *why, size_t why_len);
bool ctr_stop(struct agent *a, const char *id);
int ctr_signal(struct agent *a, const char *id, int sig);
bool ctr_running(struct agent *a, const char *id);
json_t *ctr_stats(struct agent *a, const char *id);

#endif
