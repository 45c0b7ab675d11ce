/* task.c -- the task lifecycle (see task.h). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "berth/log.h"
#include "berth/util.h"
#include "task.h"

static const char *const names[TASK_NSTATUS] = {"PENDING",      "PROVISIONING", "ACTIVATING", "RUNNING",
                                                "DEACTIVATING", "STOPPING",     "STOPPED"};

const char *task_status_name(enum task_status st)
{
    return st < TASK_NSTATUS ? names[st] : "UNKNOWN";
}

bool task_status_parse(const char *name, enum task_status *st)
{
    for (int i = 0; name && i < TASK_NSTATUS; i++)
        if (strcmp(name, names[i]) == 0)
            return *st = (enum task_status)i, true;
    return false;
}

json_t *task_get(const struct tasks *tt, const char *id)
{
    char path[80];
    snprintf(path, sizeof path, "tasks/%s", id);
    return sched_store_get(tt->store, path);
}

enum task_status task_status(json_t *task)
{
    enum task_status st = TASK_PENDING;
    task_status_parse(json_string_value(json_object_get(task, "last_status")), &st);
    return st;
}

bool task_is(json_t *task, enum task_status st)
{
    return task && task_status(task) == st;
}

bool task_wanted(json_t *task)
{
    const char *d = json_string_value(json_object_get(task, "desired_status"));
    return d && strcmp(d, "RUNNING") == 0;
}

double task_age_s(json_t *t, const char *field)
{
    const char *ts = json_string_value(json_object_get(t, field));
    struct tm tm = {0};
    int ms = 0;
    if (!ts || sscanf(ts, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                      &tm.tm_sec, &ms) != 7)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return util_wall() - ((double)timegm(&tm) + ms / 1000.0);
}

static void merge(struct tasks *tt, const char *id, json_t *fields)
{
    char path[80];
    snprintf(path, sizeof path, "tasks/%s", id);
    sched_store_merge(tt->store, path, fields);
}

void task_set(struct tasks *tt, const char *id, json_t *fields)
{
    /* The status and what goes with it change only through the transitions below. */
    json_object_del(fields, "last_status");
    json_object_del(fields, "desired_status");
    if (json_object_size(fields))
        merge(tt, id, fields);
    else
        json_decref(fields);
}

/* Moves task <id> to <to> with <fields> (stolen; may be NULL): the time stamp of <to> unless
 * <fields> has one, the stop code and reason when given, then the owner's hook. */
static void transition(struct tasks *tt, const char *id, enum task_status to, const char *code, const char *reason,
                       json_t *fields)
{
    json_t *t = task_get(tt, id);
    if (!t) {
        json_decref(fields);
        return;
    }
    enum task_status was = task_status(t);
    if (!fields)
        fields = json_object();
    json_object_set_new(fields, "last_status", json_string(names[to]));
    if (to >= TASK_DEACTIVATING)
        json_object_set_new(fields, "desired_status", json_string("STOPPED"));
    const char *stamp = to == TASK_RUNNING ? "started_at" : to == TASK_STOPPING ? "stopping_at"
                                                          : to == TASK_STOPPED  ? "stopped_at"
                                                                                : NULL;
    if (stamp && !json_object_get(fields, stamp)) {
        char ts[40];
        util_rfc3339(util_wall(), ts, sizeof ts);
        json_object_set_new(fields, stamp, json_string(ts));
    }
    if (code)
        json_object_set_new(fields, "stop_code", json_string(code));
    if (reason)
        json_object_set_new(fields, "stopped_reason", json_string(reason));
    if (to == TASK_STOPPED) { /* a stop code always: what ECS shows for a task gone without one */
        if (!code && !json_object_get(t, "stop_code"))
            json_object_set_new(fields, "stop_code", json_string("TaskLost"));
        if (!reason && !json_object_get(t, "stopped_reason"))
            json_object_set_new(fields, "stopped_reason", json_string("stopped on its node"));
    }
    char tid[40];
    snprintf(tid, sizeof tid, "%s", id); /* <id> may point into the record merge replaces */
    merge(tt, tid, fields);
    log_debug("task %s: %s -> %s", tid, names[was], names[to]);
    if (tt->changed && was != to)
        tt->changed(tt->arg, tid, was, to);
}

void task_create(struct tasks *tt, const char *service, const char *taskdef_ref, json_t *definition, char *id_out)
{
    util_random_id(id_out);
    char ts[40], path[80];
    util_rfc3339(util_wall(), ts, sizeof ts);
    json_t *t = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:O}", "id", id_out, "task_definition", taskdef_ref, "last_status",
                          names[TASK_PENDING], "desired_status", "RUNNING", "health_status", "UNKNOWN", "created_at", ts,
                          "definition", definition ? definition : json_null());
    json_object_set_new(t, "service", service ? json_string(service) : json_null());
    snprintf(path, sizeof path, "tasks/%s", id_out);
    sched_store_put(tt->store, path, t, NULL, NULL);
    if (tt->changed)
        tt->changed(tt->arg, id_out, TASK_PENDING, TASK_PENDING);
}

void task_provisioning(struct tasks *tt, const char *id, const char *node, int cpu, int memory_mib)
{
    transition(tt, id, TASK_PROVISIONING, NULL, NULL,
               json_pack("{s:s,s:i,s:i,s:n}", "node", node, "cpu", cpu, "memory_mib", memory_mib, "pending_reason"));
}

void task_activating(struct tasks *tt, const char *id, json_t *containers, json_t *ports, const char *log)
{
    json_t *f = json_pack("{s:o,s:o}", "containers", containers, "ports", ports);
    if (log)
        json_object_set_new(f, "log", json_string(log));
    transition(tt, id, TASK_ACTIVATING, NULL, NULL, f);
}

void task_running(struct tasks *tt, const char *id)
{
    transition(tt, id, TASK_RUNNING, NULL, NULL, NULL);
}

void task_deactivating(struct tasks *tt, const char *id, const char *code, const char *reason)
{
    transition(tt, id, TASK_DEACTIVATING, code, reason, NULL);
}

void task_stopping(struct tasks *tt, const char *id, const char *code, const char *reason)
{
    transition(tt, id, TASK_STOPPING, code, reason, NULL);
}

void task_stopped(struct tasks *tt, const char *id, const char *code, const char *reason)
{
    transition(tt, id, TASK_STOPPED, code, reason, NULL);
}

void task_report(struct tasks *tt, const char *id, enum task_status to, const char *code, const char *reason,
                 json_t *fields)
{
    json_t *t = task_get(tt, id);
    if (!t || to <= task_status(t)) {
        task_set(tt, id, fields);
        return;
    }
    transition(tt, id, to, code, reason, fields);
}
