/* placement.h -- where a task runs: resources first, then constraints, then strategies (ECS semantics).
 * Pure computation over a node table (no I/O), shared by the scheduler and bench/placement. */
#ifndef BERTH_PLACEMENT_H
#define BERTH_PLACEMENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- member_of expressions ----
 *   expr   := term ("or" term)*          term := factor ("and" factor)*
 *   factor := "(" expr ")" | attribute:NAME (== V | != V | in LIST | !in LIST | exists | !exists)
 *   LIST   := "[" V ("," V)* "]"  or  "(" V ("," V)* ")"      V := word or 'quoted' or "quoted"
 * e.g. "attribute:zone in [a, b] and attribute:disk == ssd". */
struct pl_expr;
/* Compiles <text>; NULL with *err (malloc'd, saying what was expected where). */
struct pl_expr *pl_expr_parse(const char *text, char **err);
/* Evaluates against a node's attributes ({"zone": "a", ...}; NULL = none). */
bool pl_expr_eval(const struct pl_expr *e, json_t *attributes);
void pl_expr_free(struct pl_expr *e);

/* ---- nodes and requests ---- */

struct pl_node {
    const char *id;
    int cpu, mem;           /* capacity: cpu units, MiB */
    int cpu_used, mem_used; /* updated as tasks are placed */
    json_t *attributes;     /* borrowed; may be NULL */
    bool active;            /* false: DRAINING or lost, takes no new tasks */
    bool containers;        /* it has a container engine */
};

enum pl_strategy_type { PL_SPREAD, PL_BINPACK, PL_RANDOM };
struct pl_strategy {
    enum pl_strategy_type type;
    const char *field; /* spread: "instanceId" or "attribute:NAME"; binpack: "cpu" or "memory" */
};

struct pl_request {
    int cpu, mem; /* what one task needs */
    const struct pl_strategy *strategies;
    size_t nstrategies;
    struct pl_expr *const *member_of; /* every one must hold */
    size_t nmember_of;
    bool distinct_instance;
    bool containers; /* the task runs images: only nodes with a container engine */
    const char *member_of_text; /* for reasons */
};

/* A run of placements of one service's tasks (same size, same rules) over <nodes>. <svc_count>
 * (index-aligned with nodes, may be NULL) holds how many of the service's tasks each node already
 * runs; the batch keeps its own copy up to date. */
struct pl_batch;
struct pl_batch *pl_batch_new(struct pl_node *nodes, size_t n, const struct pl_request *req, const int *svc_count,
                              uint64_t seed);
/* Places one task: returns the node's index (its usage is updated), or -1 with <why> naming what is
 * missing ("insufficient memory: ..."). Scores at most PL_SAMPLE feasible nodes (all of them when
 * there are fewer), drawn at random, as kube-scheduler and Nomad bound their scoring. */
int pl_batch_place(struct pl_batch *b, char *why, size_t len);
void pl_batch_free(struct pl_batch *b);

#define PL_SAMPLE 100

#endif
