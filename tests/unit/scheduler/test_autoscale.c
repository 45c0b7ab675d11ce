/* test_autoscale.c -- the target-tracking policy against simulated metric series on a simulated clock.
 * The simulation evaluates every 2 s like the scheduler; new tasks turn healthy 3 s after a scale-out. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "autoscale.h"
#include "../../tap.h"

#define EVAL_S 2.0
#define START_S 3.0

struct sim {
    struct as_policy p;
    struct as_state s;
    int desired;
    double healthy_at[64]; /* when each of the desired tasks is healthy */
    int changes;
    double first_change_at, last_change_at;
    char why[256];
};

typedef double (*series_fn)(double t); /* offered load at time t; NAN = metrics missing */
typedef bool (*flag_fn)(double t);

static void sim_init(struct sim *m, int min, int max, double target, double in_cooldown)
{
    memset(m, 0, sizeof *m);
    m->p = (struct as_policy){min, max, target, 10, in_cooldown, 0.10};
    as_state_init(&m->s);
    m->desired = min;
    m->first_change_at = -1;
}

/* Runs evaluations from t0 to t1. Returns the highest count seen. */
static int sim_run(struct sim *m, double t0, double t1, series_fn load, flag_fn deploying)
{
    int high = m->desired;
    for (double t = t0; t < t1; t += EVAL_S) {
        int healthy = 0;
        for (int i = 0; i < m->desired; i++)
            healthy += m->healthy_at[i] <= t;
        double r = load(t);
        struct as_sample in = {t, m->desired, healthy, !isnan(r), isnan(r) ? 0 : r, deploying && deploying(t)};
        int n = as_evaluate(&m->p, &m->s, &in, m->why, sizeof m->why);
        if (n != m->desired) {
            for (int i = m->desired; i < n; i++)
                m->healthy_at[i] = t + START_S;
            m->desired = n;
            m->changes++;
            if (m->first_change_at < 0)
                m->first_change_at = t;
            m->last_change_at = t;
        }
        if (m->desired > high)
            high = m->desired;
    }
    return high;
}

static double step(double t)
{
    return t < 10 ? 0 : t < 60 ? 1000 : 0;
}
static double spike(double t)
{
    return t >= 20 && t < 22 ? 5000 : 300;
}
static double sawtooth(double t)
{
    return fmod(t, 20) * 75;
} /* 0 .. 1500 every 20 s */
static double noisy_1000(double t)
{
    return 1000 * (1 + 0.08 * sin(t * 1.7));
}
static double missing_after_30(double t)
{
    return t < 30 ? 1000 : NAN;
}
static double constant_900(double t)
{
    return 900;
}
static double huge(double t)
{
    return 1e6;
}
static bool deploying_until_40(double t)
{
    return t < 40;
}

int main(void)
{
    struct sim m;

    /* Step load: one scale-out on the first evaluation, one scale-in after the cooldown. */
    sim_init(&m, 1, 6, 200, 30);
    sim_run(&m, 0, 60, step, NULL);
    is_int(m.desired, 5, "step: 1,000 req/s against 200 per task gives 5 tasks");
    ok(m.first_change_at >= 10 && m.first_change_at <= 10 + EVAL_S,
       "step: scaled out on the first evaluation after the step (t=%.0f)", m.first_change_at);
    is_int(m.changes, 1, "step: one decision while the load held");
    ok(strstr(m.why, "holding at 5") != NULL, "step: holds at 5 under the constant load (%s)", m.why);
    sim_run(&m, 60, 150, step, NULL);
    is_int(m.desired, 1, "step: back to min after the load stops");
    ok(m.last_change_at >= 60 + 30 - EVAL_S && m.last_change_at <= 60 + 30 + EVAL_S,
       "step: scale-in came after the 30 s cooldown (t=%.0f)", m.last_change_at);
    is_int(m.changes, 2, "step: scaled in in one step");
    as_state_free(&m.s);

    /* Spike: capped at max; the scale-in waits out the window and lands on what the base load needs. */
    sim_init(&m, 1, 6, 200, 30);
    sim_run(&m, 0, 20, spike, NULL);
    is_int(m.desired, 2, "spike: 300 req/s before the spike gives 2");
    sim_run(&m, 20, 22, spike, NULL);
    is_int(m.desired, 6, "spike: 5,000 req/s is capped at max 6");
    ok(strstr(m.why, "capped at max") != NULL, "spike: the decision says it was capped (%s)", m.why);
    sim_run(&m, 22, 50, spike, NULL);
    is_int(m.desired, 6, "spike: no scale-in within the 30 s window");
    sim_run(&m, 50, 60, spike, NULL);
    is_int(m.desired, 2, "spike: back to 2 once the spike left the window");
    as_state_free(&m.s);

    /* Sawtooth: the window keeps the peak's capacity; no flapping. */
    sim_init(&m, 1, 10, 200, 60);
    sim_run(&m, 0, 40, sawtooth, NULL);
    int at40 = m.desired, changes40 = m.changes;
    ok(at40 >= 6, "sawtooth: scaled out to the peak's need (%d)", at40);
    sim_run(&m, 40, 300, sawtooth, NULL);
    is_int(m.desired, at40, "sawtooth: count held through 13 more teeth");
    is_int(m.changes, changes40, "sawtooth: no decision after the first teeth");
    as_state_free(&m.s);

    /* Noise within the ±10% band never changes the count. */
    sim_init(&m, 5, 10, 200, 10);
    sim_run(&m, 0, 200, noisy_1000, NULL);
    is_int(m.changes, 0, "tolerance: ±8%% noise around 5 × 200 changes nothing");
    as_state_free(&m.s);
    sim_init(&m, 5, 10, 200, 10);
    sim_run(&m, 0, 200, constant_900, NULL);
    is_int(m.desired, 5, "tolerance: 900 req/s (10%% below 5 × 200) keeps 5");
    as_state_free(&m.s);

    /* Missing metrics never cause scale-in. */
    sim_init(&m, 1, 6, 200, 10);
    sim_run(&m, 0, 30, missing_after_30, NULL);
    is_int(m.desired, 5, "missing: 5 tasks while metrics came in");
    sim_run(&m, 30, 200, missing_after_30, NULL);
    is_int(m.desired, 5, "missing: still 5 after 170 s without metrics");
    ok(strstr(m.why, "no request rates") != NULL, "missing: the reason says so (%s)", m.why);
    as_state_free(&m.s);

    /* No scaling during a deployment; the decision comes right after it. */
    sim_init(&m, 1, 6, 200, 10);
    sim_run(&m, 0, 40, step, deploying_until_40);
    is_int(m.desired, 1, "deployment: no scale-out while it is in progress");
    ok(strstr(m.why, "deployment") != NULL, "deployment: the reason says so (%s)", m.why);
    sim_run(&m, 40, 42, step, deploying_until_40);
    is_int(m.desired, 5, "deployment: scaled out at the first evaluation after it");
    as_state_free(&m.s);

    /* New tasks are not counted until healthy: no scale-in while some are not. */
    sim_init(&m, 1, 6, 200, 0);
    struct as_sample in = {100, 4, 2, true, 0, false};
    is_int(as_evaluate(&m.p, &m.s, &in, m.why, sizeof m.why), 4, "healthy: no scale-in with 2 of 4 healthy");
    in.healthy = 4;
    is_int(as_evaluate(&m.p, &m.s, &in, m.why, sizeof m.why), 1, "healthy: scale-in once all 4 are");
    as_state_free(&m.s);

    /* Scale-out cooldown: only against repeating the same scale-out. */
    sim_init(&m, 1, 10, 200, 60);
    in = (struct as_sample){0, 1, 1, true, 1000, false};
    is_int(as_evaluate(&m.p, &m.s, &in, m.why, sizeof m.why), 5, "cooldown: first scale-out to 5");
    in = (struct as_sample){2, 3, 3, true, 1000, false}; /* someone set 3 meanwhile */
    is_int(as_evaluate(&m.p, &m.s, &in, m.why, sizeof m.why), 3, "cooldown: the same recommendation waits");
    in.rate = 1500;
    is_int(as_evaluate(&m.p, &m.s, &in, m.why, sizeof m.why), 8, "cooldown: a higher one goes through at once");
    in = (struct as_sample){20, 3, 3, true, 1000, false};
    is_int(as_evaluate(&m.p, &m.s, &in, m.why, sizeof m.why), 5, "cooldown: over after 10 s");
    as_state_free(&m.s);

    /* Range: outside [min, max] the count is brought back; huge rates cap at max. */
    sim_init(&m, 2, 4, 200, 10);
    in = (struct as_sample){0, 0, 0, false, 0, false};
    is_int(as_evaluate(&m.p, &m.s, &in, m.why, sizeof m.why), 2, "range: below min goes to min even without metrics");
    in.current = 9;
    is_int(as_evaluate(&m.p, &m.s, &in, m.why, sizeof m.why), 4, "range: above max goes to max");
    as_state_free(&m.s);
    sim_init(&m, 1, 6, 200, 10);
    sim_run(&m, 0, 2, huge, NULL);
    is_int(m.desired, 6, "range: 1,000,000 req/s caps at max");
    ok(strstr(m.why, "1,000,000 req/s against 200 per task") != NULL, "event text carries the numbers (%s)", m.why);
    as_state_free(&m.s);
    return done_testing();
}
