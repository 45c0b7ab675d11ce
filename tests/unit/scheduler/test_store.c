/* test_store.c -- the scheduler's store: changes are journaled and survive a reopen, a snapshot
 * folds the journal, commit callbacks run once the record is on disk, and merge never changes an
 * object in place. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"
#include "../../tap.h"

static int committed;
static void on_commit(void *arg, const char *err)
{
    committed += err == NULL;
}

int main(void)
{
    char dir[] = "/tmp/berth-store-test-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    struct ev_loop *loop = EV_DEFAULT;
    char *err = NULL;
    struct sched_store *s = sched_store_open(loop, dir, &err);
    ok(s != NULL, "a new store opens in an empty directory");
    sched_store_put(s, "services/web", json_pack("{s:i}", "desired_count", 2), on_commit, NULL);
    sched_store_put(s, "services/api", json_pack("{s:i}", "desired_count", 1), on_commit, NULL);
    is_int(committed, 0, "a put is not acknowledged before its record is written");
    ev_run(loop, EVRUN_NOWAIT);
    ev_run(loop, EVRUN_NOWAIT);
    is_int(committed, 2, "both puts are acknowledged after the loop's group commit");
    unsigned long long records, fsyncs;
    sched_store_stats(s, &records, &fsyncs);
    ok(records == 2 && fsyncs == 1, "two records, one fsync (group commit): %llu, %llu", records, fsyncs);

    json_t *before = sched_store_get(s, "services/web");
    json_incref(before);
    sched_store_merge(s, "services/web", json_pack("{s:i,s:s}", "desired_count", 5, "note", "scaled"));
    json_t *after = sched_store_get(s, "services/web");
    ok(after != before, "merge replaces the object instead of changing it in place");
    is_int(json_integer_value(json_object_get(before, "desired_count")), 2, "a pointer taken before still sees the old value");
    is_int(json_integer_value(json_object_get(after, "desired_count")), 5, "the new object has the merged field");
    json_decref(before);
    sched_store_put(s, "services/api", NULL, NULL, NULL);
    ok(!sched_store_get(s, "services/api"), "a put of NULL deletes");
    ok(!sched_store_get(s, "services/nope") && !sched_store_get(s, "nothing/at/all"), "missing paths are NULL");
    ev_run(loop, EVRUN_NOWAIT);
    sched_store_close(s);

    s = sched_store_open(loop, dir, &err);
    ok(s != NULL, "the store opens again");
    json_t *web = sched_store_get(s, "services/web");
    ok(web && json_integer_value(json_object_get(web, "desired_count")) == 5 &&
           strcmp(json_string_value(json_object_get(web, "note")), "scaled") == 0,
       "the merged service came back from the journal");
    ok(!sched_store_get(s, "services/api"), "the deleted service stayed deleted");
    sched_store_close(s);

    /* A journal with a torn last record (a crash mid-write) still opens, without that record. */
    char path[256];
    snprintf(path, sizeof path, "%s/journal", dir);
    FILE *f = fopen(path, "a");
    if (f) {
        fputs("{\"op\":\"put\",\"path\":[\"services\",\"tor", f);
        fclose(f);
    }
    s = sched_store_open(loop, dir, &err);
    ok(s != NULL, "a journal with a torn last record opens%s%s", s ? "" : ": ", s ? "" : err);
    if (s) {
        ok(sched_store_get(s, "services/web") != NULL, "and keeps every whole record");
        sched_store_close(s);
    }
    tap_rm_rf(dir);
    free(err);
    return done_testing();
}
