/* autoscale.c -- the target-tracking policy (see autoscale.h and docs/scheduler.md "Autoscaling").
 *
 * recommendation = ceil(rate / target_per_s), clamped to [min, max]. Scale-out follows the
 * recommendation at once; scale-in takes the highest recommendation over the last
 * scale_in_cooldown_s (a stabilization window, as Kubernetes' HPA), so a dip in the load does not
 * give capacity away, and capacity follows a lasting drop one window later. No change while the load is
 * within the tolerance band around the current capacity, so a constant load never moves the count. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "berth/alloc.h"
#include "autoscale.h"

void as_state_init(struct as_state *s)
{
    *s = (struct as_state){.first_at = -1, .last_out_at = -1};
}

void as_state_free(struct as_state *s)
{
    free(s->recs);
    as_state_init(s);
}

/* Sliding-window maximum: the list keeps only recommendations not beaten by a later one. */
static void push_rec(struct as_state *s, double now, int n)
{
    while (s->nrecs && s->recs[s->nrecs - 1].n <= n)
        s->nrecs--;
    if (s->nrecs == s->caprecs) {
        s->caprecs = s->caprecs ? 2 * s->caprecs : 16;
        s->recs = xrealloc(s->recs, s->caprecs * sizeof *s->recs);
    }
    s->recs[s->nrecs++] = (struct as_rec){now, n};
}

static int window_max(struct as_state *s, double since)
{
    size_t drop = 0;
    while (drop + 1 < s->nrecs && s->recs[drop].at < since)
        drop++;
    for (size_t i = drop; i < s->nrecs; i++)
        s->recs[i - drop] = s->recs[i];
    s->nrecs -= drop;
    return s->nrecs ? s->recs[0].n : 0;
}

/* "2,950" */
static const char *fmt_rate(double r, char *out, size_t len)
{
    long long v = llround(r);
    if (v < 1000)
        snprintf(out, len, "%lld", v);
    else if (v < 1000000)
        snprintf(out, len, "%lld,%03lld", v / 1000, v % 1000);
    else
        snprintf(out, len, "%lld,%03lld,%03lld", v / 1000000, v / 1000 % 1000, v % 1000);
    return out;
}

int as_evaluate(const struct as_policy *p, struct as_state *s, const struct as_sample *in, char *why, size_t len)
{
    int cur = in->current;
    char rate[32], target[32];
    if (s->first_at < 0)
        s->first_at = in->now;
    fmt_rate(in->rate, rate, sizeof rate);
    fmt_rate(p->target_per_s, target, sizeof target);
    if (in->deploying) {
        snprintf(why, len, "holding at %d: a deployment is in progress", cur);
        return cur;
    }
    if (cur < p->min || cur > p->max) {
        int to = cur < p->min ? p->min : p->max;
        snprintf(why, len, "from %d to %d: the autoscaling range is %d..%d", cur, to, p->min, p->max);
        return to;
    }
    if (!in->have_metrics) {
        /* Count the current size as this round's recommendation: no scale-in for a window. */
        push_rec(s, in->now, cur);
        snprintf(why, len, "holding at %d: no request rates from the proxy", cur);
        return cur;
    }
    double want = in->rate / p->target_per_s;
    int rec = want > p->max ? p->max : (int)ceil(want - 1e-9);
    if (rec < p->min)
        rec = p->min;
    push_rec(s, in->now, rec);
    double capacity = cur * p->target_per_s;
    if (rec > cur) {
        if (in->rate <= capacity * (1 + p->tolerance)) {
            snprintf(why, len, "holding at %d: %s req/s is within %.0f%% of %d × %s", cur, rate, p->tolerance * 100,
                     cur, target);
            return cur;
        }
        if (s->last_out_at >= 0 && in->now - s->last_out_at < p->scale_out_cooldown_s && rec <= s->last_out_to) {
            snprintf(why, len, "holding at %d: scale-out cooldown (%.0fs)", cur, p->scale_out_cooldown_s);
            return cur;
        }
        s->last_out_at = in->now;
        s->last_out_to = rec;
        snprintf(why, len, "from %d to %d: %s req/s against %s per task%s", cur, rec, rate, target,
                 rec == p->max && want > p->max ? " (capped at max)" : "");
        return rec;
    }
    if (rec < cur) {
        if (in->rate >= capacity * (1 - p->tolerance)) {
            snprintf(why, len, "holding at %d: %s req/s is within %.0f%% of %d × %s", cur, rate, p->tolerance * 100,
                     cur, target);
            return cur;
        }
        if (in->healthy < cur) {
            snprintf(why, len, "holding at %d: %d of %d tasks are healthy", cur, in->healthy, cur);
            return cur;
        }
        if (in->now - s->first_at < p->scale_in_cooldown_s) {
            snprintf(why, len, "holding at %d: scale-in cooldown (%.0fs)", cur, p->scale_in_cooldown_s);
            return cur;
        }
        int high = window_max(s, in->now - p->scale_in_cooldown_s);
        if (high >= cur) {
            snprintf(why, len, "holding at %d: %d tasks were needed within the last %.0fs", cur, high,
                     p->scale_in_cooldown_s);
            return cur;
        }
        snprintf(why, len, "from %d to %d: %s req/s against %s per task (the most needed over the last %.0fs)", cur,
                 high, rate, target, p->scale_in_cooldown_s);
        return high;
    }
    snprintf(why, len, "holding at %d: %s req/s against %s per task", cur, rate, target);
    return cur;
}
