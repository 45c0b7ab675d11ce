/* store.h -- the durable state of the scheduler and of berth-agent (store.c). */
#ifndef BERTH_SCHED_STORE_H
#define BERTH_SCHED_STORE_H

#include <ev.h>
#include <jansson.h>

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

#endif
