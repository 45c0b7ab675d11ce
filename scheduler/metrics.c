/* metrics.c -- what the proxy sees of each service, read every autoscale_interval_s: request rate,
 * p99 latency over the last interval, and target health. Drives the replacement of tasks that fail the
 * proxy's health checks and the target-tracking autoscaler (autoscale.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autoscale.h"
#include "berth/alloc.h"
#include "berth/httpc.h"
#include "berth/log.h"
#include "berth/util.h"
#include "sched.h"

struct svc_metrics {
    struct svc_metrics *next;
    struct sched *sc;
    char name[128];
    bool alive; /* the service still exists (mark and sweep each round) */
    /* the round in flight */
    int pending;
    bool round_failed;
    json_t *groups; /* target group name -> the proxy's answer */
    /* results */
    bool have;           /* the last round read every group */
    double rate, p99_ms; /* p99_ms < 0: no requests in the last interval */
    int healthy;
    double updated_at; /* monotonic */
    json_t *lat_prev;  /* group -> latency_counts at the previous round */
    /* autoscaling */
    bool as_on;
    struct as_state as;
    char decision[300]; /* the last evaluation's reason */
    char last_scaling[300], last_scaling_at[40];
};

static struct svc_metrics *find(struct sched *sc, const char *name, bool create)
{
    for (struct svc_metrics *m = sc->metrics; m; m = m->next)
        if (strcmp(m->name, name) == 0)
            return m;
    if (!create)
        return NULL;
    struct svc_metrics *m = xcalloc(1, sizeof *m);
    m->sc = sc;
    snprintf(m->name, sizeof m->name, "%s", name);
    m->p99_ms = -1;
    m->lat_prev = json_object();
    as_state_init(&m->as);
    m->next = sc->metrics;
    sc->metrics = m;
    return m;
}

static void metrics_free(struct svc_metrics *m)
{
    json_decref(m->groups);
    json_decref(m->lat_prev);
    as_state_free(&m->as);
    free(m);
}

/* p99 from the requests a group's latency histogram gained since the last round (bucket upper
 * bounds, interpolated within the bucket). */
static void add_latency(struct svc_metrics *m, const char *tg, json_t *stats, double *delta, size_t nb, json_t **le)
{
    json_t *counts = json_object_get(stats, "latency_counts"), *prev = json_object_get(m->lat_prev, tg);
    bool reset = false; /* the proxy restarted: its counters began again */
    for (size_t i = 0; i < json_array_size(counts) && i < nb; i++)
        reset |= json_integer_value(json_array_get(counts, i)) < json_integer_value(json_array_get(prev, i));
    for (size_t i = 0; i < json_array_size(counts) && i < nb; i++)
        delta[i] += (double)(json_integer_value(json_array_get(counts, i)) -
                             (prev && !reset ? json_integer_value(json_array_get(prev, i)) : 0));
    if (!prev && counts)
        memset(delta, 0, nb * sizeof *delta); /* first sight: no interval to speak of */
    if (counts)
        json_object_set(m->lat_prev, tg, counts);
    if (!*le)
        *le = json_object_get(stats, "latency_le_s");
}

static double p99_ms(const double *delta, size_t nb, json_t *le)
{
    double total = 0, cum = 0;
    for (size_t i = 0; i < nb; i++)
        total += delta[i];
    if (total <= 0)
        return -1;
    for (size_t i = 0; i < nb; i++) {
        if (cum + delta[i] >= 0.99 * total) {
            double lo = i ? json_number_value(json_array_get(le, i - 1)) : 0;
            double hi = i < json_array_size(le) ? json_number_value(json_array_get(le, i)) : lo * 2;
            return 1000 * (lo + (hi - lo) * (0.99 * total - cum) / delta[i]);
        }
        cum += delta[i];
    }
    return -1;
}

static void autoscale(struct sched *sc, struct svc_metrics *m, json_t *svc)
{
    json_t *as = json_object_get(svc, "autoscaling");
    if (!as) {
        if (m->as_on)
            as_state_free(&m->as);
        m->as_on = false;
        return;
    }
    m->as_on = true;
    json_t *tt = json_object_get(as, "target_tracking");
    struct as_policy p = {(int)json_integer_value(json_object_get(as, "min")),
                          (int)json_integer_value(json_object_get(as, "max")),
                          json_number_value(json_object_get(tt, "target_per_s")),
                          json_number_value(json_object_get(as, "scale_out_cooldown_s")),
                          json_number_value(json_object_get(as, "scale_in_cooldown_s")),
                          0.10};
    char dpath[300];
    snprintf(dpath, sizeof dpath, "deployments/%s", m->name);
    int current = (int)json_integer_value(json_object_get(svc, "desired_count"));
    struct as_sample in = {util_now(), current, m->healthy,
                           m->have,    m->rate, sched_is(sched_store_get(sc->store, dpath), "status", "IN_PROGRESS")};
    int n = as_evaluate(&p, &m->as, &in, m->decision, sizeof m->decision);
    if (n == current)
        return;
    char path[300];
    snprintf(path, sizeof path, "services/%s", m->name);
    sched_store_merge(sc->store, path, json_pack("{s:i}", "desired_count", n));
    snprintf(m->last_scaling, sizeof m->last_scaling, "scaled %s %s", m->name, m->decision);
    util_rfc3339(util_wall(), m->last_scaling_at, sizeof m->last_scaling_at);
    sched_event(sc, m->name, "%s", m->last_scaling);
    sched_kick(sc);
}

static void round_done(struct sched *sc, struct svc_metrics *m)
{
    json_t *state = sched_store_state(sc->store), *tasks = json_object_get(state, "tasks");
    json_t *svc = json_object_get(json_object_get(state, "services"), m->name);
    if (!m->alive || !svc || m->round_failed) {
        m->have = false;
        if (svc && m->alive)
            autoscale(sc, m, svc); /* no metrics: the policy holds (never scales in) */
        json_decref(m->groups);
        m->groups = NULL;
        return;
    }
    /* Rate over the service's serving tasks; healthy = serving and healthy in every group. Tasks the
     * proxy reports unhealthy once their grace period is over are replaced (ECS: "Task failed ELB
     * health checks"). */
    double rate = 0, delta[32] = {0}, grace = json_number_value(json_object_get(svc, "health_check_grace_period_s"));
    json_t *le = NULL, *unhealthy = json_object(), *seen = json_object(), *replace = json_object();
    json_t *lb_state = json_object(); /* task -> its state in the first group where it is not healthy */
    const char *tgname;
    json_t *g, *t;
    size_t i;
    json_object_foreach(m->groups, tgname, g) {
        json_array_foreach(json_object_get(g, "targets"), i, t) {
            const char *id = json_string_value(json_object_get(t, "id"));
            json_t *task = id ? json_object_get(tasks, id) : NULL;
            if (!task || !sched_is(task, "service", m->name) || !task_is(task, TASK_RUNNING))
                continue;
            rate += json_number_value(json_object_get(t, "request_rate"));
            json_object_set_new(seen, id, json_true());
            if (!sched_is(t, "state", "healthy") || sched_is(task, "health_status", "UNHEALTHY"))
                json_object_set_new(unhealthy, id, json_true());
            if (!sched_is(t, "state", "healthy") && !json_object_get(lb_state, id)) /* the first group that is not */
                json_object_set_new(lb_state, id,
                                    json_string(json_is_string(json_object_get(t, "state"))
                                                    ? json_string_value(json_object_get(t, "state"))
                                                    : "unknown"));
            if (sched_is(t, "state", "unhealthy") && sched_is(task, "desired_status", "RUNNING") &&
                task_age_s(task, "started_at") >= grace)
                json_object_set_new(replace, id,
                                    json_sprintf("Task failed ELB health checks in (target-group %s): %s", tgname,
                                                 json_is_string(json_object_get(t, "health_check"))
                                                     ? json_string_value(json_object_get(t, "health_check"))
                                                     : "unhealthy"));
        }
        add_latency(m, tgname, json_object_get(g, "stats"), delta, 32, &le);
    }
    const char *id;
    json_t *reason, *yes;
    /* Each task's health in the service's target groups (reconcile.c counts a new task once healthy). */
    json_object_foreach(seen, id, yes) {
        json_t *st = json_object_get(lb_state, id);
        const char *want = st ? json_string_value(st) : "healthy";
        if (!sched_is(json_object_get(tasks, id), "lb_health", want)) {
            task_set(&sc->tasks, id, json_pack("{s:s}", "lb_health", want));
            sched_kick(sc); /* a deployment may move on */
        }
    }
    json_decref(lb_state);
    json_object_foreach(replace, id, reason) {
        sched_event(sc, m->name, "task %s failed the proxy's health checks; replacing it", id);
        sched_task_stop(sc, id, "TaskFailedHealthChecks", json_string_value(reason));
    }
    json_decref(replace);
    m->have = true;
    m->rate = rate;
    m->healthy = (int)(json_object_size(seen) - json_object_size(unhealthy));
    m->p99_ms = p99_ms(delta, 32, le);
    m->updated_at = util_now();
    json_decref(unhealthy);
    json_decref(seen);
    autoscale(sc, m, svc);
    json_decref(m->groups);
    m->groups = NULL;
}

struct tg_read {
    struct svc_metrics *m;
    char tg[128];
};

static void group_answer(struct sched *sc, const struct httpc_response *resp, const char *err, void *arg)
{
    struct tg_read *r = arg;
    struct svc_metrics *m = r->m;
    json_t *g = !err && resp->status == 200 ? json_loadb(resp->body, resp->body_len, 0, NULL) : NULL;
    if (g)
        json_object_set_new(m->groups, r->tg, g);
    else
        m->round_failed = true;
    free(r);
    if (--m->pending)
        return;
    if (sc->stopping) {
        json_decref(m->groups);
        m->groups = NULL;
    } else {
        round_done(sc, m);
    }
}

static void tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct sched *sc = w->data;
    json_t *svc, *lb;
    const char *name;
    size_t i;
    for (struct svc_metrics *m = sc->metrics; m; m = m->next)
        m->alive = false;
    json_object_foreach(json_object_get(sched_store_state(sc->store), "services"), name, svc) {
        if (!json_array_size(json_object_get(svc, "load_balancers")) || !sc->proxy_admin.len)
            continue;
        struct svc_metrics *m = find(sc, name, true);
        m->alive = true;
        if (m->pending)
            continue; /* the proxy is slow to answer: skip a round */
        m->round_failed = false;
        m->groups = json_object();
        json_array_foreach(json_object_get(svc, "load_balancers"), i, lb) {
            const char *tg = json_string_value(json_object_get(lb, "target_group"));
            if (json_object_get(m->groups, tg))
                continue;
            json_object_set_new(m->groups, tg, json_null()); /* asked */
            struct tg_read *r = xcalloc(1, sizeof *r);
            r->m = m;
            snprintf(r->tg, sizeof r->tg, "%s", tg);
            char path[300];
            snprintf(path, sizeof path, "/v1/target-groups/%s", tg);
            m->pending++;
            sched_call(sc, &sc->proxy_admin, NULL, "GET", path, NULL, group_answer, r);
        }
    }
    /* Forget services that are gone (and whose round is over). */
    for (struct svc_metrics **pp = &sc->metrics; *pp;) {
        struct svc_metrics *m = *pp;
        if (!m->alive && !m->pending) {
            *pp = m->next;
            metrics_free(m);
        } else {
            pp = &m->next;
        }
    }
    w->repeat = sc->autoscale_interval_s;
    ev_timer_again(loop, w);
}

void sched_metrics_describe(struct sched *sc, const char *service, json_t *out)
{
    struct svc_metrics *m = find(sc, service, false);
    if (!m)
        return;
    json_t *x = json_object();
    if (m->have) {
        json_object_set_new(x, "request_rate", json_real(round(m->rate * 10) / 10));
        json_object_set_new(x, "p99_ms", m->p99_ms < 0 ? json_null() : json_real(round(m->p99_ms * 100) / 100));
        json_object_set_new(x, "healthy_count", json_integer(m->healthy));
        json_object_set_new(x, "age_s", json_real(round((util_now() - m->updated_at) * 10) / 10));
    } else {
        json_object_set_new(x, "error", json_string("no answer from the proxy's admin API"));
    }
    json_object_set_new(out, "metrics", x);
    if (m->as_on || m->last_scaling[0]) {
        json_t *a = json_pack("{s:s}", "decision", m->decision);
        if (m->last_scaling[0])
            json_object_set_new(a, "last_scaling",
                                json_pack("{s:s,s:s}", "message", m->last_scaling, "at", m->last_scaling_at));
        json_object_set_new(out, "autoscaling_status", a);
    }
}

void sched_metrics_start(struct sched *sc)
{
    if (sc->autoscale_interval_s <= 0)
        sc->autoscale_interval_s = 2.0;
    ev_init(&sc->metrics_timer, tick);
    sc->metrics_timer.data = sc;
    sc->metrics_timer.repeat = sc->autoscale_interval_s;
    ev_timer_again(sc->loop, &sc->metrics_timer);
}

void sched_metrics_stop(struct sched *sc)
{
    ev_timer_stop(sc->loop, &sc->metrics_timer);
    /* The calls in flight were answered with an error by sched_sync_stop; now the rest. */
    while (sc->metrics) {
        struct svc_metrics *m = sc->metrics;
        sc->metrics = m->next;
        metrics_free(m);
    }
}
