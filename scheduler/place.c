/* place.c -- placement of PENDING tasks: builds the node table placement.c decides over (capacity,
 * use, attributes, whether a node takes tasks), places each group of tasks (a service's, or one-off
 * tasks of one task definition) and hands each placed task to its node. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/alloc.h"
#include "berth/util.h"
#include "placement.h"
#include "sched.h"


struct cluster {
    struct pl_node *nodes;
    size_t n;
    json_t *index; /* node id -> index */
};

static void cluster_build(struct sched *sc, struct cluster *c)
{
    json_t *nodes = json_object_get(sched_store_state(sc->store), "nodes"), *nd, *t;
    const char *id;
    c->n = 0;
    c->nodes = calloc(json_object_size(nodes) + 1, sizeof *c->nodes);
    c->index = json_object();
    json_object_foreach(nodes, id, nd) {
        c->nodes[c->n] = (struct pl_node){id,
                                          (int)json_integer_value(json_object_get(nd, "cpu")),
                                          (int)json_integer_value(json_object_get(nd, "memory_mib")),
                                          0,
                                          0,
                                          json_object_get(nd, "attributes"),
                                          sched_is(nd, "status", "ACTIVE") && !sched_node_lost(sc, id),
                                          json_is_string(json_object_get(nd, "container_engine"))};
        json_object_set_new(c->index, id, json_integer((json_int_t)c->n++));
    }
    json_object_foreach(json_object_get(sched_store_state(sc->store), "tasks"), id, t) {
        json_t *i = json_is_string(json_object_get(t, "node"))
                        ? json_object_get(c->index, json_string_value(json_object_get(t, "node")))
                        : NULL;
        if (!i || task_is(t, TASK_STOPPED))
            continue;
        c->nodes[json_integer_value(i)].cpu_used += (int)json_integer_value(json_object_get(t, "cpu"));
        c->nodes[json_integer_value(i)].mem_used += (int)json_integer_value(json_object_get(t, "memory_mib"));
    }
}

static void cluster_free(struct cluster *c)
{
    free(c->nodes);
    json_decref(c->index);
}

/* Places the PENDING tasks of one group (a service, or one-off tasks of one task definition). */
static void place_group(struct sched *sc, struct cluster *c, const char *service, json_t *ids)
{
    json_t *first = task_get(&sc->tasks, json_string_value(json_array_get(ids, 0))), *x;
    json_t *svc = sched_service_get(sc->store, service);
    struct pl_request req = {.containers = agent_is_image_task(first)};
    json_t *ct;
    size_t i;
    json_array_foreach(json_object_get(json_object_get(first, "definition"), "containers"), i, ct) {
        req.cpu += (int)json_integer_value(json_object_get(ct, "cpu"));
        req.mem += (int)json_integer_value(json_object_get(ct, "memory_mib"));
    }
    struct pl_strategy strategies[8];
    struct pl_expr *exprs[8];
    char text[512] = "";
    json_array_foreach(json_object_get(svc, "placement_strategy"), i, x) {
        if (req.nstrategies == 8)
            break;
        const char *type = json_string_value(json_object_get(x, "type"));
        const char *field = json_string_value(json_object_get(x, "field"));
        strategies[req.nstrategies++] = (struct pl_strategy){strcmp(type, "spread") == 0    ? PL_SPREAD
                                                             : strcmp(type, "binpack") == 0 ? PL_BINPACK
                                                                                            : PL_RANDOM,
                                                             field ? field : "instanceId"};
    }
    if (!req.nstrategies) /* the default: spread over nodes */
        strategies[req.nstrategies++] = (struct pl_strategy){PL_SPREAD, "instanceId"};
    req.strategies = strategies;
    json_array_foreach(json_object_get(svc, "placement_constraints"), i, x) {
        if (sched_is(x, "type", "distinct_instance"))
            req.distinct_instance = true;
        else if (req.nmember_of < 8 && sched_is(x, "type", "member_of")) {
            char *err = NULL;
            const char *e = json_string_value(json_object_get(x, "expression"));
            if ((exprs[req.nmember_of] = pl_expr_parse(e, &err))) {
                snprintf(text + strlen(text), sizeof text - strlen(text), "%s%s", *text ? ") and member_of(" : "", e);
                req.nmember_of++;
            }
            free(err);
        }
    }
    req.member_of = exprs;
    req.member_of_text = text;
    /* How many of the service's tasks each node runs already. */
    int *count = calloc(c->n + 1, sizeof *count);
    const char *tid;
    json_t *t;
    json_object_foreach(json_object_get(sched_store_state(sc->store), "tasks"), tid, t) {
        json_t *ix = json_is_string(json_object_get(t, "node"))
                         ? json_object_get(c->index, json_string_value(json_object_get(t, "node")))
                         : NULL;
        if (ix && service && sched_is(t, "service", service) && !task_is(t, TASK_STOPPED))
            count[json_integer_value(ix)]++;
    }
    struct pl_batch *b = pl_batch_new(c->nodes, c->n, &req, count, (uint64_t)util_now() * 1000003u + 1);
    json_array_foreach(ids, i, x) {
        char id[40], why[300];
        snprintf(id, sizeof id, "%s", json_string_value(x));
        int k = pl_batch_place(b, why, sizeof why);
        if (k < 0) {
            json_t *task = task_get(&sc->tasks, id);
            const char *old = json_string_value(json_object_get(task, "pending_reason"));
            if (!old || strcmp(old, why) != 0) {
                task_set(&sc->tasks, id, json_pack("{s:s}", "pending_reason", why));
                sched_event(sc, service, "unable to place task %s: %s", id, why);
            }
            continue;
        }
        const char *node = c->nodes[k].id;
        task_provisioning(&sc->tasks, id, node, req.cpu, req.mem);
        if (strcmp(node, sc->node_id) == 0)
            agent_start(&sc->agent, id);
        else
            sched_node_wake(sc, node);
    }
    pl_batch_free(b);
    free(count);
    for (i = 0; i < req.nmember_of; i++)
        pl_expr_free(exprs[i]);
}

void sched_place_pending(struct sched *sc)
{
    json_t *groups = json_object(), *t, *g;
    const char *id, *key;
    json_object_foreach(json_object_get(sched_store_state(sc->store), "tasks"), id, t) {
        const char *svc = json_string_value(json_object_get(t, "service"));
        if (!task_is(t, TASK_PENDING) || !task_wanted(t) || (svc && !sched_service_get(sc->store, svc)))
            continue; /* a deleted service's tasks are never placed */
        /* One group per service and task definition (sizes differ between revisions); "\n" never
         * appears in either. */
        char k[400];
        snprintf(k, sizeof k, "%s\n%s",
                 json_is_string(json_object_get(t, "service")) ? json_string_value(json_object_get(t, "service")) : "",
                 json_string_value(json_object_get(t, "task_definition")));
        if (!(g = json_object_get(groups, k)))
            json_object_set_new(groups, k, g = json_array());
        json_array_append_new(g, json_string(id));
    }
    if (json_object_size(groups)) {
        struct cluster c;
        cluster_build(sc, &c);
        json_object_foreach(groups, key, g) {
            char service[200];
            snprintf(service, sizeof service, "%.*s", (int)(strchr(key, '\n') - key), key);
            place_group(sc, &c, *service ? service : NULL, g);
        }
        cluster_free(&c);
    }
    json_decref(groups);
}

