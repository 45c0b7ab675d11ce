/* store.c -- the scheduler's durable state: a JSON document, a fsynced journal with group commit, snapshots. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "berth/alloc.h"
#include "berth/buf.h"
#include "berth/config.h"
#include "berth/log.h"
#include "store.h"

#define SNAPSHOT_EVERY 10000 /* journal records between snapshots */

struct waiter {
    sched_commit_cb cb;
    void *arg;
};

struct sched_store {
    struct ev_loop *loop;
    char *dir;
    json_t *state;
    int journal_fd;
    unsigned long long records, fsyncs, since_snapshot;
    struct buf pending;     /* records not yet written */
    struct waiter *waiters; /* callbacks waiting for them */
    size_t nwaiters, capwaiters;
    ev_prepare commit;
};

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = xmalloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Walks <path> ("a/b/c"), creating objects when <create>; returns the parent
 * object of the last key and sets *key to it (in <buf>). */
static json_t *walk(json_t *root, const char *path, bool create, char *buf, size_t size, const char **key)
{
    snprintf(buf, size, "%s", path);
    json_t *cur = root;
    char *save = NULL, *tok = strtok_r(buf, "/", &save);
    while (tok) {
        char *next = strtok_r(NULL, "/", &save);
        if (!next) {
            *key = tok;
            return cur;
        }
        json_t *child = json_object_get(cur, tok);
        if (!child) {
            if (!create)
                return NULL;
            child = json_object();
            json_object_set_new(cur, tok, child);
        }
        cur = child;
        tok = next;
    }
    return NULL;
}

static void apply(json_t *state, const char *path, json_t *value)
{
    char buf[1024];
    const char *key;
    json_t *parent = walk(state, path, value != NULL, buf, sizeof buf, &key);
    if (!parent)
        return;
    if (value)
        json_object_set(parent, key, value);
    else
        json_object_del(parent, key);
}

json_t *sched_store_get(struct sched_store *s, const char *path)
{
    char buf[1024];
    const char *key;
    json_t *parent = walk(s->state, path, false, buf, sizeof buf, &key);
    return parent ? json_object_get(parent, key) : NULL;
}

void sched_store_merge(struct sched_store *s, const char *path, json_t *fields)
{
    json_t *cur = sched_store_get(s, path);
    json_t *copy = cur ? json_deep_copy(cur) : json_object();
    json_object_update(copy, fields);
    json_decref(fields);
    sched_store_put(s, path, copy, NULL, NULL);
}

json_t *sched_store_state(struct sched_store *s)
{
    return s->state;
}

void sched_store_stats(struct sched_store *s, unsigned long long *records, unsigned long long *fsyncs)
{
    *records = s->records;
    *fsyncs = s->fsyncs;
}

/* Writes the whole state to snapshot.json (atomically) and empties the journal. */
static int snapshot(struct sched_store *s)
{
    char *tmp = path_join(s->dir, "snapshot.json.tmp"), *dst = path_join(s->dir, "snapshot.json");
    int rc = -1;
    if (json_dump_file(s->state, tmp, JSON_COMPACT) == 0) {
        int fd = open(tmp, O_RDONLY);
        if (fd >= 0 && fsync(fd) == 0 && rename(tmp, dst) == 0 && ftruncate(s->journal_fd, 0) == 0 &&
            fsync(s->journal_fd) == 0) {
            rc = 0;
            s->since_snapshot = 0;
        }
        if (fd >= 0)
            close(fd);
    }
    if (rc < 0)
        log_error("snapshot of %s failed: %s", s->dir, strerror(errno));
    free(tmp);
    free(dst);
    return rc;
}

/* Group commit: one write and one fdatasync for everything queued this loop iteration. */
static void commit_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    struct sched_store *s = w->data;
    if (!s->pending.len && !s->nwaiters)
        return;
    const char *err = NULL;
    const char *p = buf_head(&s->pending);
    size_t left = s->pending.len;
    while (left) {
        ssize_t n = write(s->journal_fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            err = strerror(errno);
            break;
        }
        p += n;
        left -= (size_t)n;
    }
    if (!err && fdatasync(s->journal_fd) < 0)
        err = strerror(errno);
    s->fsyncs++;
    buf_consume(&s->pending, s->pending.len);
    buf_release(&s->pending);
    if (err)
        log_error("journal write failed: %s", err);
    size_t n = s->nwaiters;
    struct waiter *ws = s->waiters;
    s->waiters = NULL;
    s->nwaiters = s->capwaiters = 0;
    for (size_t i = 0; i < n; i++)
        if (ws[i].cb)
            ws[i].cb(ws[i].arg, err);
    free(ws);
    if (!err && s->since_snapshot >= SNAPSHOT_EVERY)
        snapshot(s);
}

void sched_store_put(struct sched_store *s, const char *path, json_t *value, sched_commit_cb cb, void *arg)
{
    apply(s->state, path, value);
    json_t *rec = json_pack("{s:s,s:s}", "op", value ? "put" : "del", "path", path);
    if (value)
        json_object_set(rec, "value", value);
    char *line = json_dumps(rec, JSON_COMPACT);
    buf_append(&s->pending, line, strlen(line));
    buf_append(&s->pending, "\n", 1);
    free(line);
    json_decref(rec);
    json_decref(value);
    s->records++;
    s->since_snapshot++;
    if (s->nwaiters == s->capwaiters) {
        s->capwaiters = s->capwaiters ? s->capwaiters * 2 : 16;
        s->waiters = xrealloc(s->waiters, s->capwaiters * sizeof *s->waiters);
    }
    s->waiters[s->nwaiters++] = (struct waiter){cb, arg};
}

/* Replays journal lines; a torn last line (crash mid-write) is ignored. */
static int replay(struct sched_store *s, const char *file, char **err)
{
    FILE *f = fopen(file, "r");
    if (!f)
        return 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    unsigned long lineno = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        lineno++;
        if (line[n - 1] != '\n')
            break; /* torn final record: it was never acknowledged */
        json_error_t je;
        json_t *rec = json_loads(line, 0, &je);
        const char *op = json_string_value(json_object_get(rec, "op"));
        const char *path = json_string_value(json_object_get(rec, "path"));
        if (!rec || !op || !path) {
            cfg_error(err, file, "line %lu is not a journal record", lineno);
            json_decref(rec);
            free(line);
            fclose(f);
            return -1;
        }
        apply(s->state, path, strcmp(op, "put") == 0 ? json_object_get(rec, "value") : NULL);
        s->since_snapshot++;
        json_decref(rec);
    }
    free(line);
    fclose(f);
    return 0;
}

struct sched_store *sched_store_open(struct ev_loop *loop, const char *dir, char **err)
{
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        cfg_error(err, "data_dir", "cannot create %s: %s", dir, strerror(errno));
        return NULL;
    }
    struct sched_store *s = xcalloc(1, sizeof *s);
    s->loop = loop;
    s->dir = xstrdup(dir);
    buf_init(&s->pending, 1u << 30);
    char *snap = path_join(dir, "snapshot.json"), *jour = path_join(dir, "journal");
    json_error_t je;
    s->state = json_load_file(snap, 0, &je);
    if (!s->state) {
        if (access(snap, F_OK) == 0) {
            cfg_error(err, snap, "unreadable snapshot: %s", je.text);
            goto fail;
        }
        s->state = json_object();
    }
    if (replay(s, jour, err) < 0)
        goto fail;
    s->journal_fd = open(jour, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (s->journal_fd < 0) {
        cfg_error(err, jour, "cannot open: %s", strerror(errno));
        goto fail;
    }
    /* A torn tail was ignored by replay; cut it so new records start on a line. */
    struct stat st;
    if (fstat(s->journal_fd, &st) == 0 && st.st_size > 0) {
        FILE *f = fopen(jour, "r");
        long good = 0, pos = 0;
        int c;
        while (f && (c = fgetc(f)) != EOF) {
            pos++;
            if (c == '\n')
                good = pos;
        }
        if (f)
            fclose(f);
        if (good < st.st_size && ftruncate(s->journal_fd, good) == 0)
            log_warn("journal: dropped a torn final record (%ld bytes)", (long)(st.st_size - good));
    }
    ev_prepare_init(&s->commit, commit_cb);
    s->commit.data = s;
    ev_prepare_start(loop, &s->commit);
    free(snap);
    free(jour);
    return s;
fail:
    free(snap);
    free(jour);
    json_decref(s->state);
    free(s->dir);
    free(s);
    return NULL;
}

void sched_store_close(struct sched_store *s)
{
    if (!s)
        return;
    commit_cb(s->loop, &s->commit, 0);
    ev_prepare_stop(s->loop, &s->commit);
    close(s->journal_fd);
    buf_free(&s->pending);
    json_decref(s->state);
    free(s->dir);
    free(s);
}
