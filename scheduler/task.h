/* task.h -- the task lifecycle, and the only code that writes a task's status.
 *
 * A task record lives in the store at tasks/ID (JSON: it is what the API shows and what the journal
 * keeps). Its status moves forward only, as in ECS:
 *
 *   PENDING -> PROVISIONING -> ACTIVATING -> RUNNING -> DEACTIVATING -> STOPPING -> STOPPED
 *
 * (any status may go straight to STOPPING or STOPPED). Each transition has one function here; it
 * stamps the transition's time (started_at, stopping_at, stopped_at), records the stop code and
 * reason, and tells the table's owner through its changed() hook: the scheduler reacts (replaces,
 * syncs the data plane, records events), berth-agent reports in its next heartbeat. */
#ifndef BERTH_SCHED_TASK_H
#define BERTH_SCHED_TASK_H

#include <jansson.h>
#include <stdbool.h>

#include "store.h"

enum task_status {
    TASK_PENDING,
    TASK_PROVISIONING,
    TASK_ACTIVATING,
    TASK_RUNNING,
    TASK_DEACTIVATING,
    TASK_STOPPING,
    TASK_STOPPED,
    TASK_NSTATUS
};

/* "PENDING", ...; the API's and the journal's spelling. */
const char *task_status_name(enum task_status st);
/* Parses a status name; false for anything else. */
bool task_status_parse(const char *name, enum task_status *st);

/* The tasks of a store, and who hears of their transitions. */
struct tasks {
    struct sched_store *store;
    /* Called after task <id> moved from <was> to <now> (the record is already updated). */
    void (*changed)(void *arg, const char *id, enum task_status was, enum task_status now);
    void *arg;
};

/* The record of task <id> (borrowed, valid until the next change of it), or NULL. */
json_t *task_get(const struct tasks *tt, const char *id);
/* Its status (TASK_PENDING for a record without one). */
enum task_status task_status(json_t *task);
/* True when <task> is in status <st>. */
bool task_is(json_t *task, enum task_status st);
/* True while the task should run (desired_status RUNNING). */
bool task_wanted(json_t *task);
/* Seconds since the task's timestamp <field> ("started_at", ...); 0 when it has none. */
double task_age_s(json_t *task, const char *field);

/* Creates PENDING task <id_out> (33 bytes) of <service> (NULL: a one-off task) from task definition
 * <taskdef_ref> ("family:rev", its body <definition>, borrowed). */
void task_create(struct tasks *tt, const char *service, const char *taskdef_ref, json_t *definition, char *id_out);
/* PENDING -> PROVISIONING on <node>, holding <cpu> and <memory_mib> there. */
void task_provisioning(struct tasks *tt, const char *id, const char *node, int cpu, int memory_mib);
/* -> ACTIVATING: its processes run (<containers> and <ports> stolen), waiting for its ports. */
void task_activating(struct tasks *tt, const char *id, json_t *containers, json_t *ports, const char *log);
/* -> RUNNING (stamps started_at). */
void task_running(struct tasks *tt, const char *id);
/* -> DEACTIVATING: leaving its load balancers before it is stopped for <code>/<reason>. */
void task_deactivating(struct tasks *tt, const char *id, const char *code, const char *reason);
/* -> STOPPING (stamps stopping_at). <code>/<reason> NULL keep those recorded before. */
void task_stopping(struct tasks *tt, const char *id, const char *code, const char *reason);
/* -> STOPPED (stamps stopped_at). <code>/<reason> NULL keep those recorded before. */
void task_stopped(struct tasks *tt, const char *id, const char *code, const char *reason);
/* A node's report moves the task forward to <to> (never back); <fields> (stolen) are the other
 * fields the node reported, its own timestamps among them. */
void task_report(struct tasks *tt, const char *id, enum task_status to, const char *code, const char *reason,
                 json_t *fields);
/* Changes fields other than the status (containers, health_status, pending_reason, stop, ...);
 * steals <fields>. */
void task_set(struct tasks *tt, const char *id, json_t *fields);

#endif
