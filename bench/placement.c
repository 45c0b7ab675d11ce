/* placement.c -- bench/placement: places 1,000,000 tasks onto 10,000 simulated nodes with the
 * scheduler's placement code (scheduler/placement.c): a member_of constraint, then spread on
 * attribute:zone, then binpack on memory. One thread. Prints the time, placements per second, and how
 * evenly the zones and nodes were used.
 * usage: build/bench/placement [tasks=1000000] [nodes=10000] [services=100] */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "placement.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    long tasks = argc > 1 ? atol(argv[1]) : 1000000, nnodes = argc > 2 ? atol(argv[2]) : 10000;
    long services = argc > 3 ? atol(argv[3]) : 100;
    if (tasks <= 0 || nnodes <= 0 || services <= 0) {
        fprintf(stderr, "usage: placement [tasks] [nodes] [services]\n");
        return 2;
    }
    static const char *const zone_names[] = {"a", "b", "c", "d"};
    json_t *zones[4];
    for (int z = 0; z < 4; z++)
        zones[z] = json_pack("{s:s,s:s}", "zone", zone_names[z], "disk", z % 2 ? "ssd" : "hdd");
    struct pl_node *nodes = calloc((size_t)nnodes, sizeof *nodes);
    for (long i = 0; i < nnodes; i++) /* 32 vCPU, 64 GiB */
        nodes[i] = (struct pl_node){"node", 32768, 65536, 0, 0, zones[i % 4], true, false};
    char *err = NULL;
    struct pl_expr *member_of = pl_expr_parse("attribute:zone in [a, b, c]", &err);
    struct pl_strategy strategies[] = {{PL_SPREAD, "attribute:zone"}, {PL_BINPACK, "memory"}};
    struct pl_request req = {.cpu = 128,
                             .mem = 256,
                             .strategies = strategies,
                             .nstrategies = 2,
                             .member_of = &member_of,
                             .nmember_of = 1,
                             .member_of_text = "attribute:zone in [a, b, c]"};
    long per_service = tasks / services, placed = 0, failed = 0;
    long in_zone[4] = {0};
    char why[256] = "";
    double t0 = now();
    for (long s = 0; s < services; s++) {
        /* One service at a time, as the scheduler places a service's tasks. */
        struct pl_batch *b = pl_batch_new(nodes, (size_t)nnodes, &req, NULL, (uint64_t)s + 1);
        long n = s == services - 1 ? tasks - per_service * (services - 1) : per_service;
        long zc[4] = {0};
        for (long k = 0; k < n; k++) {
            int i = pl_batch_place(b, why, sizeof why);
            if (i < 0) {
                failed++;
                continue;
            }
            placed++;
            zc[i % 4]++;
        }
        for (int z = 0; z < 4; z++)
            in_zone[z] += zc[z];
        pl_batch_free(b);
    }
    double took = now() - t0;
    long used = 0, fullest = 0;
    for (long i = 0; i < nnodes; i++) {
        used += nodes[i].mem_used > 0;
        long n = nodes[i].mem_used / req.mem;
        if (n > fullest)
            fullest = n;
    }
    printf("placed %ld of %ld tasks (%ld services, %ld cpu / %ld MiB each) on %ld nodes in %.2f s: %.0f placements/s\n",
           placed, tasks, services, (long)req.cpu, (long)req.mem, nnodes, took, placed / took);
    printf("constraint member_of(attribute:zone in [a, b, c]); strategies spread(attribute:zone), binpack(memory)\n");
    printf("tasks per zone: a %ld, b %ld, c %ld, d %ld (d is excluded by the constraint)\n", in_zone[0], in_zone[1],
           in_zone[2], in_zone[3]);
    printf("nodes used: %ld of %ld; the fullest holds %ld tasks (capacity 256)\n", used, nnodes, fullest);
    if (failed)
        printf("%ld tasks could not be placed: %s\n", failed, why);
    printf("goal: 1,000,000 tasks on 10,000 nodes in under 30 s -> %s\n", took < 30 ? "met" : "NOT met");
    pl_expr_free(member_of);
    free(nodes);
    for (int z = 0; z < 4; z++)
        json_decref(zones[z]);
    return failed ? 1 : 0;
}
