/* core.c -- the scheduler's events (a ring of the newest MAX_EVENTS, kept in the store at events/SEQ so
 * they survive a restart) and its wake-up timers: the reconcile pass and the data plane sync run soon
 * after a change, never inside the caller's stack. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/alloc.h"
#include "berth/log.h"
#include "berth/util.h"
#include "sched.h"

#define MAX_EVENTS 1000

/* The timers run the passes their owners (reconcile.c, sync.c) hooked in at start; until then a
 * kick only arms them. */
static void tick_fired(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct sched *sc = w->data;
    ev_timer_stop(loop, w);
    if (sc->reconcile_pass)
        sc->reconcile_pass(sc);
}

static void sync_fired(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct sched *sc = w->data;
    ev_timer_stop(loop, w);
    if (sc->sync_pass)
        sc->sync_pass(sc);
}

static void events_load(struct sched *sc);

void sched_init(struct sched *sc)
{
    ev_init(&sc->tick, tick_fired);
    sc->tick.data = sc;
    ev_init(&sc->sync_timer, sync_fired);
    sc->sync_timer.data = sc;
    list_init(&sc->services_rt);
    list_init(&sc->calls);
    list_init(&sc->nodes_rt);
    list_init(&sc->drains);
    sc->events = xcalloc(MAX_EVENTS, sizeof *sc->events);
    sc->events_head = sc->events_len = 0;
    sc->event_seq = 0;
    events_load(sc);
}

/* Appends an event to the ring; when it is full the oldest goes, from the store too. */
static void ring_add(struct sched *sc, unsigned long long seq, const char *at, const char *service, const char *msg)
{
    struct sched_event *e = &sc->events[(sc->events_head + sc->events_len) % MAX_EVENTS];
    if (sc->events_len == MAX_EVENTS) { /* full: the oldest goes */
        char path[48];
        snprintf(path, sizeof path, "events/%llu", e->seq);
        if (sched_store_get(sc->store, path))
            sched_store_put(sc->store, path, NULL, NULL, NULL);
        free(e->service);
        free(e->message);
        sc->events_head = (sc->events_head + 1) % MAX_EVENTS;
    } else {
        sc->events_len++;
    }
    e->seq = seq;
    snprintf(e->at, sizeof e->at, "%s", at);
    e->service = service ? xstrdup(service) : NULL;
    e->message = xstrdup(msg);
    if (seq > sc->event_seq)
        sc->event_seq = seq;
}

static int by_seq(const void *a, const void *b)
{
    unsigned long long x = json_integer_value(json_object_get(*(json_t *const *)a, "seq"));
    unsigned long long y = json_integer_value(json_object_get(*(json_t *const *)b, "seq"));
    return x < y ? -1 : x > y;
}

/* The events a previous run kept in the store, oldest first, back into the ring. */
static void events_load(struct sched *sc)
{
    json_t *kept = json_object_get(sched_store_state(sc->store), "events"), *e;
    size_t n = json_object_size(kept), k = 0;
    json_t **list = xcalloc(n + 1, sizeof *list);
    const char *key;
    json_object_foreach(kept, key, e)
        list[k++] = e;
    qsort(list, n, sizeof *list, by_seq);
    for (k = 0; k < n; k++)
        ring_add(sc, (unsigned long long)json_integer_value(json_object_get(list[k], "seq")),
                 json_string_value(json_object_get(list[k], "created_at")),
                 json_string_value(json_object_get(list[k], "service")),
                 json_string_value(json_object_get(list[k], "message")));
    free(list);
}

void sched_event(struct sched *sc, const char *service, const char *fmt, ...)
{
    char msg[512], at[32], path[48];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_info("%s%s%s", service ? service : "", service ? ": " : "", msg);
    util_rfc3339(util_wall(), at, sizeof at);
    unsigned long long seq = sc->event_seq + 1;
    ring_add(sc, seq, at, service, msg);
    /* Journaled without waiting for the disk: an event is a record of what happened, not a promise. */
    json_t *rec = json_pack("{s:I,s:s,s:s}", "seq", (json_int_t)seq, "created_at", at, "message", msg);
    if (service)
        json_object_set_new(rec, "service", json_string(service));
    snprintf(path, sizeof path, "events/%llu", seq);
    sched_store_put(sc->store, path, rec, NULL, NULL);
}

static bool event_of(const struct sched_event *e, const char *service, unsigned long long since)
{
    return e->seq > since && (!service || (e->service && strcmp(e->service, service) == 0));
}

json_t *sched_events_json(struct sched *sc, const char *service, unsigned long long since, size_t limit)
{
    size_t matching = 0;
    for (size_t k = 0; k < sc->events_len; k++)
        matching += event_of(&sc->events[(sc->events_head + k) % MAX_EVENTS], service, since);
    size_t skip = limit && matching > limit ? matching - limit : 0;
    json_t *out = json_array();
    for (size_t k = 0; k < sc->events_len; k++) {
        struct sched_event *e = &sc->events[(sc->events_head + k) % MAX_EVENTS];
        if (!event_of(e, service, since) || (skip && skip--))
            continue;
        json_t *j = json_pack("{s:I,s:s,s:s}", "seq", (json_int_t)e->seq, "created_at", e->at, "message", e->message);
        if (e->service)
            json_object_set_new(j, "service", json_string(e->service));
        json_array_append_new(out, j);
    }
    return out;
}

void sched_events_free(struct sched *sc)
{
    for (size_t k = 0; k < sc->events_len; k++) {
        struct sched_event *e = &sc->events[(sc->events_head + k) % MAX_EVENTS];
        free(e->service);
        free(e->message);
    }
    free(sc->events);
    sc->events = NULL;
    sc->events_len = 0;
}

void sched_schedule(struct sched *sc, ev_timer *w, double after)
{
    ev_timer_stop(sc->loop, w);
    ev_timer_set(w, after, 0);
    ev_timer_start(sc->loop, w);
}

/* Arms <w> to fire in <after> seconds, unless it is already due sooner. */
static void arm(struct sched *sc, ev_timer *w, double after)
{
    if (!ev_is_active(w) || ev_timer_remaining(sc->loop, w) > after)
        sched_schedule(sc, w, after);
}

void sched_kick(struct sched *sc)
{
    arm(sc, &sc->tick, 0.01);
}

void sched_sync_kick(struct sched *sc)
{
    if (sc->proxy_admin.len || sc->dns_admin.len)
        arm(sc, &sc->sync_timer, 0.005);
}

void sched_timers_stop(struct sched *sc)
{
    ev_timer_stop(sc->loop, &sc->tick);
    ev_timer_stop(sc->loop, &sc->sync_timer);
}
