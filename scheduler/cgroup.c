/* cgroup.c -- task limits through cgroups v1 or v2 (see cgroup.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "agent.h"
#include "berth/log.h"
#include "cgroup.h"

#define CG_ROOT "/sys/fs/cgroup"
#define CG_PERIOD_US 100000

static int cg_mode = -1; /* -1 not probed, 0 none, 1 v1, 2 v2 */
static char cg_why[200];

static bool write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool ok = write(fd, text, strlen(text)) == (ssize_t)strlen(text);
    close(fd);
    return ok;
}

static bool make_dir(const char *path)
{
    return mkdir(path, 0755) == 0 || errno == EEXIST;
}

const char *agent_cgroups(void)
{
    if (cg_mode >= 0)
        return cg_mode == 2 ? "v2" : cg_mode == 1 ? "v1" : cg_why;
    struct statfs st;
    char probe[64];
    if (statfs(CG_ROOT, &st) == 0 && st.f_type == 0x63677270 /* CGROUP2_SUPER_MAGIC */) {
        snprintf(probe, sizeof probe, "%s/berth", CG_ROOT);
        if (make_dir(probe)) {
            write_file(CG_ROOT "/cgroup.subtree_control", "+memory +cpu");
            write_file(CG_ROOT "/berth/cgroup.subtree_control", "+memory +cpu");
            if (access(CG_ROOT "/berth/memory.max", F_OK) == 0 ||
                access(CG_ROOT "/berth/cgroup.subtree_control", W_OK) == 0)
                return cg_mode = 2, "v2";
        }
        snprintf(cg_why, sizeof cg_why, "unavailable: cannot use %s/berth (%s)", CG_ROOT, strerror(errno));
    } else if (access(CG_ROOT "/memory/cgroup.procs", F_OK) == 0 && access(CG_ROOT "/cpu/cgroup.procs", F_OK) == 0) {
        if (make_dir(CG_ROOT "/memory/berth") && make_dir(CG_ROOT "/cpu/berth"))
            return cg_mode = 1, "v1";
        snprintf(cg_why, sizeof cg_why, "unavailable: cannot create %s/{memory,cpu}/berth (%s)", CG_ROOT,
                 strerror(errno));
    } else {
        snprintf(cg_why, sizeof cg_why, "unavailable: no cgroup v2 mount or v1 memory and cpu hierarchies at %s",
                 CG_ROOT);
    }
    cg_mode = 0;
    log_warn("cgroups %s: tasks run without memory and CPU limits", cg_why);
    return cg_why;
}

/* Fills <cg> with container <i>'s cgroup directories; false without cgroups. */
static bool cg_paths(struct cgroup *cg, const char *task, int i)
{
    cg->dir[0][0] = cg->dir[1][0] = 0;
    agent_cgroups();
    if (cg_mode == 2)
        snprintf(cg->dir[0], sizeof cg->dir[0], CG_ROOT "/berth/%s-%d", task, i);
    if (cg_mode == 1) {
        snprintf(cg->dir[0], sizeof cg->dir[0], CG_ROOT "/memory/berth/%s-%d", task, i);
        snprintf(cg->dir[1], sizeof cg->dir[1], CG_ROOT "/cpu/berth/%s-%d", task, i);
    }
    return cg_mode > 0;
}

/* Writes <value> to <dir>/<file>; false with errno. */
static bool set(const char *dir, const char *file, const char *value, char *f, size_t flen)
{
    snprintf(f, flen, "%s/%s", dir, file);
    return write_file(f, value);
}

void cg_create(struct cgroup *cg, const char *task, int i, int cpu, int memory_mib)
{
    cg->mem_limit_mib = memory_mib;
    if ((!cpu && !memory_mib) || !cg_paths(cg, task, i))
        return;
    char f[220] = "", mem[32], quota[32], both[64], period[16];
    snprintf(mem, sizeof mem, "%lld", (long long)memory_mib << 20);
    snprintf(quota, sizeof quota, "%lld", (long long)cpu * CG_PERIOD_US / 1024);
    snprintf(period, sizeof period, "%d", CG_PERIOD_US);
    snprintf(both, sizeof both, "%s %s", quota, period);
    bool ok = cg_mode == 2 ? make_dir(cg->dir[0]) && (!memory_mib || set(cg->dir[0], "memory.max", mem, f, sizeof f)) &&
                                 (!cpu || set(cg->dir[0], "cpu.max", both, f, sizeof f))
                           : make_dir(cg->dir[0]) && make_dir(cg->dir[1]) &&
                                 (!memory_mib || set(cg->dir[0], "memory.limit_in_bytes", mem, f, sizeof f)) &&
                                 (!cpu || (set(cg->dir[1], "cpu.cfs_period_us", period, f, sizeof f) &&
                                           set(cg->dir[1], "cpu.cfs_quota_us", quota, f, sizeof f)));
    if (!ok)
        log_warn("task %s: cgroup limits for container %d not applied: %s: %s", task, i, *f ? f : cg->dir[0],
                 strerror(errno));
}

void cg_find(struct cgroup *cg, const char *task, int i, int memory_mib)
{
    cg->mem_limit_mib = memory_mib;
    if (cg_paths(cg, task, i))
        for (int k = 0; k < 2; k++)
            if (access(cg->dir[k], F_OK) != 0)
                cg->dir[k][0] = 0;
}

void cg_join(const struct cgroup *cg)
{
    char f[220], pid[24];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    for (int k = 0; k < 2; k++)
        if (cg->dir[k][0]) {
            snprintf(f, sizeof f, "%s/cgroup.procs", cg->dir[k]);
            write_file(f, pid);
        }
}

/* The first number after <key> (at a line start; "" for a file of one number) in <dir>/<file>; -1 if none. */
static long long read_key(const char *dir, const char *file, const char *key)
{
    char f[220], line[128];
    snprintf(f, sizeof f, "%s/%s", dir, file);
    FILE *fp = fopen(f, "r");
    long long n = -1;
    size_t kl = strlen(key);
    while (fp && fgets(line, sizeof line, fp))
        if (strncmp(line, key, kl) == 0 && sscanf(line + kl, " %lld", &n) == 1)
            break;
    if (fp)
        fclose(fp);
    return n;
}

bool cg_of_pid(struct cgroup *cg, int pid, int memory_mib)
{
    char f[64], line[512];
    cg->dir[0][0] = cg->dir[1][0] = 0;
    cg->mem_limit_mib = memory_mib;
    snprintf(f, sizeof f, "/proc/%d/cgroup", pid);
    FILE *fp = fopen(f, "r");
    agent_cgroups();
    while (fp && fgets(line, sizeof line, fp)) {
        line[strcspn(line, "\n")] = 0;
        char *ctl = strchr(line, ':'), *path = ctl ? strchr(ctl + 1, ':') : NULL;
        if (!path)
            continue;
        *path++ = 0;
        ctl++;
        bool cpuacct = strcmp(ctl, "cpuacct") == 0 || strcmp(ctl, "cpu,cpuacct") == 0 || strcmp(ctl, "cpuacct,cpu") == 0;
        if (cg_mode == 2 && *ctl == 0)
            snprintf(cg->dir[0], sizeof cg->dir[0], CG_ROOT "%s", path);
        else if (cg_mode == 1 && strcmp(ctl, "memory") == 0)
            snprintf(cg->dir[0], sizeof cg->dir[0], CG_ROOT "/memory%s", path);
        else if (cg_mode == 1 && cpuacct)
            snprintf(cg->dir[1], sizeof cg->dir[1], CG_ROOT "/%s%s", ctl, path);
    }
    if (fp)
        fclose(fp);
    return cg->dir[0][0] != 0;
}

int cg_oom_watch(const struct cgroup *cg)
{
    if (cg_mode != 1 || !cg->dir[0][0])
        return -1;
    char f[220], text[64];
    snprintf(f, sizeof f, "%s/memory.oom_control", cg->dir[0]);
    int ofd = open(f, O_RDONLY | O_CLOEXEC), efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    snprintf(f, sizeof f, "%s/cgroup.event_control", cg->dir[0]);
    snprintf(text, sizeof text, "%d %d", efd, ofd);
    bool ok = ofd >= 0 && efd >= 0 && write_file(f, text);
    if (ofd >= 0)
        close(ofd);
    if (!ok && efd >= 0)
        close(efd);
    return ok ? efd : -1;
}

bool cg_oom_killed(const struct cgroup *cg)
{
    return cg->dir[0][0] &&
           read_key(cg->dir[0], cg_mode == 2 ? "memory.events" : "memory.oom_control", "oom_kill") > 0;
}

bool cg_usage(const struct cgroup *cg, long long *memory_bytes, double *cpu_s)
{
    if (!cg->dir[0][0])
        return false;
    if (cg_mode == 2) {
        *memory_bytes = read_key(cg->dir[0], "memory.current", "");
        long long us = read_key(cg->dir[0], "cpu.stat", "usage_usec");
        *cpu_s = us >= 0 ? (double)us / 1e6 : -1;
    } else {
        *memory_bytes = read_key(cg->dir[0], "memory.usage_in_bytes", "");
        long long ns = cg->dir[1][0] ? read_key(cg->dir[1], "cpuacct.usage", "") : -1;
        *cpu_s = ns >= 0 ? (double)ns / 1e9 : -1;
    }
    return true;
}

void cg_total_add(struct cg_total *t, const struct cgroup *cg)
{
    long long m;
    double c;
    if (!cg_usage(cg, &m, &c))
        return;
    t->known = true;
    t->memory_bytes += m > 0 ? m : 0;
    t->cpu_s += c > 0 ? c : 0;
}

json_t *cg_total_json(const struct cg_total *t, json_t *out)
{
    if (t->known)
        json_object_set_new(out, "memory_bytes", json_integer(t->memory_bytes));
    if (t->known && t->cpu_s > 0)
        json_object_set_new(out, "cpu_seconds", json_real(t->cpu_s));
    return out;
}

void cg_remove(const struct cgroup *cg)
{
    for (int k = 0; k < 2; k++)
        if (cg->dir[k][0])
            rmdir(cg->dir[k]);
}
