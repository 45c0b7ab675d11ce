/* autoscale.h -- target tracking on the request rate per task: the scaling policy alone, with no I/O
 * and no clock of its own (the caller passes the time), so it can be tested with simulated series. */
#ifndef BERTH_AUTOSCALE_H
#define BERTH_AUTOSCALE_H

#include <stdbool.h>
#include <stddef.h>

struct as_policy {
    int min, max;
    double target_per_s;         /* wanted request rate per task */
    double scale_out_cooldown_s; /* after a scale-out, a further one needs a higher recommendation */
    double scale_in_cooldown_s;  /* scale-in goes to the highest recommendation of this window */
    double tolerance;            /* 0.10: no change while the load is within ±10% of the capacity */
};

/* What the policy remembers between evaluations (one per service). */
struct as_state {
    double first_at;    /* time of the first evaluation (-1: none yet) */
    double last_out_at; /* last scale-out (-1: none) */
    int last_out_to;
    struct as_rec {
        double at;
        int n;
    } * recs; /* recent recommendations, decreasing n (a sliding-window maximum) */
    size_t nrecs, caprecs;
};

/* One evaluation's inputs. */
struct as_sample {
    double now;        /* seconds, any monotonic origin */
    int current;       /* the service's desired_count */
    int healthy;       /* tasks serving and healthy (new tasks count once healthy) */
    bool have_metrics; /* the proxy answered for every one of the service's target groups */
    double rate;       /* requests per second over all healthy tasks */
    bool deploying;    /* a deployment is in progress */
};

void as_state_init(struct as_state *s);
void as_state_free(struct as_state *s);

/* Returns the new desired count (== in->current: no change) and fills <why> (a sentence with the
 * numbers, for the event or for `berth service describe`). */
int as_evaluate(const struct as_policy *p, struct as_state *s, const struct as_sample *in, char *why, size_t len);

#endif
