/* test_task.c -- the task lifecycle (task.c): names, one function per transition, time stamps, stop
 * codes, forward-only reports, and the owner's hook on every change. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "task.h"
#include "../../tap.h"

static char seen[512];
static void changed(void *arg, const char *id, enum task_status was, enum task_status now)
{
    snprintf(seen + strlen(seen), sizeof seen - strlen(seen), "%s%s>%s", *seen ? " " : "", task_status_name(was),
             task_status_name(now));
}

static const char *field(struct tasks *tt, const char *id, const char *key)
{
    return json_string_value(json_object_get(task_get(tt, id), key));
}

int main(void)
{
    enum task_status st;
    ok(task_status_parse("DEACTIVATING", &st) && st == TASK_DEACTIVATING, "status names parse");
    ok(!task_status_parse("running", &st) && !task_status_parse(NULL, &st), "anything else does not");
    for (int i = 0; i < TASK_NSTATUS; i++)
        ok(task_status_parse(task_status_name((enum task_status)i), &st) && st == (enum task_status)i,
           "%s round-trips", task_status_name((enum task_status)i));

    char dir[] = "/tmp/berth-task-test-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    char *err = NULL;
    struct tasks tt = {.store = sched_store_open(EV_DEFAULT, dir, &err), .changed = changed};
    json_t *def = json_pack("{s:[{s:s}]}", "containers", "name", "app");
    char id[40];
    task_create(&tt, "web", "web:1", def, id);
    json_decref(def);
    ok(strlen(id) == 32, "a task gets a 32-character id");
    is_str(field(&tt, id, "last_status"), "PENDING", "it starts PENDING");
    is_str(field(&tt, id, "desired_status"), "RUNNING", "wanted RUNNING");
    ok(task_wanted(task_get(&tt, id)), "task_wanted agrees");
    is_str(seen, "PENDING>PENDING", "the hook heard of its creation");

    seen[0] = 0;
    task_provisioning(&tt, id, "local", 256, 128);
    task_activating(&tt, id, json_array(), json_pack("{s:i}", "http", 20001), "/tmp/x.log");
    task_running(&tt, id);
    is_str(seen, "PENDING>PROVISIONING PROVISIONING>ACTIVATING ACTIVATING>RUNNING", "each transition calls the hook once");
    json_t *t = task_get(&tt, id);
    ok(json_integer_value(json_object_get(json_object_get(t, "ports"), "http")) == 20001 &&
           json_integer_value(json_object_get(t, "cpu")) == 256 && strcmp(field(&tt, id, "node"), "local") == 0,
       "what the transitions carry is recorded (node, cpu, ports)");
    ok(field(&tt, id, "started_at") != NULL, "RUNNING stamps started_at");
    ok(task_age_s(task_get(&tt, id), "started_at") < 5, "task_age_s reads it back");

    seen[0] = 0;
    task_set(&tt, id, json_pack("{s:s,s:s}", "health_status", "HEALTHY", "last_status", "STOPPED"));
    is_str(field(&tt, id, "last_status"), "RUNNING", "task_set never changes the status");
    is_str(field(&tt, id, "health_status"), "HEALTHY", "but sets other fields");
    is_str(seen, "", "and calls no hook");

    task_deactivating(&tt, id, "ServiceSchedulerInitiated", "Scaling activity");
    is_str(field(&tt, id, "desired_status"), "STOPPED", "DEACTIVATING wants it STOPPED");
    is_str(field(&tt, id, "stop_code"), "ServiceSchedulerInitiated", "and records the stop code");
    task_stopping(&tt, id, NULL, NULL);
    ok(field(&tt, id, "stopping_at") != NULL, "STOPPING stamps stopping_at");
    is_str(field(&tt, id, "stop_code"), "ServiceSchedulerInitiated", "a NULL code keeps the recorded one");
    task_stopped(&tt, id, NULL, NULL);
    ok(field(&tt, id, "stopped_at") && strcmp(field(&tt, id, "stopped_reason"), "Scaling activity") == 0,
       "STOPPED stamps stopped_at and keeps the reason");

    seen[0] = 0;
    task_report(&tt, id, TASK_RUNNING, NULL, NULL, json_pack("{s:s}", "health_status", "UNHEALTHY"));
    is_str(field(&tt, id, "last_status"), "STOPPED", "a report never moves a task back");
    is_str(field(&tt, id, "health_status"), "UNHEALTHY", "but its other fields are taken");
    is_str(seen, "", "no hook for a report that changes no status");

    char id2[40];
    task_create(&tt, NULL, "job:1", NULL, id2);
    task_report(&tt, id2, TASK_STOPPED, NULL, NULL, json_pack("{s:s}", "stopped_at", "2026-01-01T00:00:00.000Z"));
    is_str(field(&tt, id2, "stop_code"), "TaskLost", "a task that ends without a code gets TaskLost");
    is_str(field(&tt, id2, "stopped_at"), "2026-01-01T00:00:00.000Z", "a node's own time stamp is kept");
    ok(task_is(task_get(&tt, id2), TASK_STOPPED) && !task_wanted(task_get(&tt, id2)), "task_is / task_wanted");

    sched_store_close(tt.store);
    tap_rm_rf(dir);
    return done_testing();
}
