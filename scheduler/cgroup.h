/* cgroup.h -- memory and CPU limits for a task's containers, where the machine allows (cgroup.c).
 * cgroup v2 (a cgroup2 mount at /sys/fs/cgroup with the memory and cpu controllers): one directory
 * per container under /sys/fs/cgroup/berth with memory.max and cpu.max. cgroup v1: directories under
 * /sys/fs/cgroup/memory/berth (memory.limit_in_bytes) and /sys/fs/cgroup/cpu/berth (CFS quota).
 * cpu units become a quota: 1024 units = one CPU. A process joins its cgroups between fork and exec. */
#ifndef BERTH_SCHED_CGROUP_H
#define BERTH_SCHED_CGROUP_H

#include <jansson.h>
#include <stdbool.h>

struct cgroup {
    char dir[2][160]; /* v1: memory, cpu; v2: one; "" when none */
    int mem_limit_mib;
};

/* Creates the cgroups of container <i> of task <task> with its limits (none for 0). */
void cg_create(struct cgroup *cg, const char *task, int i, int cpu, int memory_mib);
/* Finds those of a container that survived a restart (the directories that exist). */
void cg_find(struct cgroup *cg, const char *task, int i, int memory_mib);
/* In the child, before exec: joins them. */
void cg_join(const struct cgroup *cg);
/* The cgroups process <pid> is in (a container the engine made); false when none is known. */
bool cg_of_pid(struct cgroup *cg, int pid, int memory_mib);
/* cgroup v1: an eventfd the kernel signals on an OOM in them (and when they are removed), else -1;
 * on cgroup v1 the engine cannot tell an OOM kill (its cgroup is gone when the container exits). */
int cg_oom_watch(const struct cgroup *cg);
/* True when the kernel OOM-killed a process in them. */
bool cg_oom_killed(const struct cgroup *cg);
/* Memory in use (bytes) and CPU time used (seconds); false without cgroups. */
bool cg_usage(const struct cgroup *cg, long long *memory_bytes, double *cpu_s);
/* Resource use summed over several containers' cgroups (a task's stats). */
struct cg_total {
    long long memory_bytes;
    double cpu_s;
    bool known; /* some container had cgroups to read */
};
void cg_total_add(struct cg_total *t, const struct cgroup *cg);
/* Sets "memory_bytes" and "cpu_seconds" (what is known) on <out>; returns it. */
json_t *cg_total_json(const struct cg_total *t, json_t *out);
/* Removes them (fails while a stray process remains: left for the operator). */
void cg_remove(const struct cgroup *cg);

#endif
