/* agent.c -- the node agent: runs a task's containers as processes, watches and stops them. Linked
 * into berth-scheduler (the embedded node) and into berth-agent (further nodes); it reports through
 * the hooks of sched.h ("agent hooks"), which each of the two implements. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "berth/buf.h"
#include "berth/httpd.h"
#include "berth/log.h"
#include "berth/util.h"
#include "sched.h"

/* The PATH tasks get: the node's, or the usual one. */
static const char *task_path(void)
{
    const char *p = getenv("PATH");
    return p && *p ? p : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
}

#define READY_MAX_S 60.0

struct sched_run {
    struct sched_run *next;
    struct sched *sc;
    char id[40];
    int n;
    pid_t pid[SCHED_MAX_CONTAINERS];
    bool essential[SCHED_MAX_CONTAINERS], exited[SCHED_MAX_CONTAINERS];
    int exit_code[SCHED_MAX_CONTAINERS];
    double stop_timeout[SCHED_MAX_CONTAINERS];
    ev_child child[SCHED_MAX_CONTAINERS];
    char cg[SCHED_MAX_CONTAINERS][2][160]; /* each container's cgroup directories (v1: memory, cpu; v2: one) */
    int mem_limit_mib[SCHED_MAX_CONTAINERS];
    ev_io pidfd_io[SCHED_MAX_CONTAINERS]; /* adopted processes are not our children */
    int pidfd[SCHED_MAX_CONTAINERS];
    ev_timer kill_timer;
    ev_timer ready_timer; /* ACTIVATING: waits until the task's ports accept connections */
    struct health {
        struct sched_run *r;
        int i;          /* container index */
        ev_timer timer; /* next check, or the running check's timeout */
        ev_child child; /* the running check command */
        pid_t pid;
        int failures;
        double started; /* this check */
    } health[SCHED_MAX_CONTAINERS];
    double started; /* monotonic */
    bool all_exited;
    bool stopping;
    char stop_code[40], reason[200];
};

static void cg_remove(struct sched_run *r);

static struct sched_run *find_run(struct sched *sc, const char *id)
{
    for (struct sched_run *r = sc->runs; r; r = r->next)
        if (strcmp(r->id, id) == 0)
            return r;
    return NULL;
}

static void run_free(struct sched_run *r)
{
    struct sched *sc = r->sc;
    for (struct sched_run **pp = &sc->runs; *pp; pp = &(*pp)->next)
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    for (int i = 0; i < r->n; i++) {
        ev_child_stop(sc->loop, &r->child[i]);
        ev_io_stop(sc->loop, &r->pidfd_io[i]);
        if (r->pidfd[i] >= 0)
            close(r->pidfd[i]);
    }
    ev_timer_stop(sc->loop, &r->kill_timer);
    ev_timer_stop(sc->loop, &r->ready_timer);
    if (r->all_exited)
        cg_remove(r);
    for (int i = 0; i < r->n; i++) {
        ev_timer_stop(sc->loop, &r->health[i].timer);
        ev_child_stop(sc->loop, &r->health[i].child);
        if (r->health[i].pid > 0)
            kill(-r->health[i].pid, SIGKILL);
    }
    free(r);
}

static json_t *task_get(struct sched *sc, const char *id)
{
    char path[80];
    snprintf(path, sizeof path, "tasks/%s", id);
    return sched_store_get(sc->store, path);
}

/* ---- cgroups: memory and CPU limits per container, where the machine allows ----
 * cgroup v2 (a cgroup2 mount at /sys/fs/cgroup with the memory and cpu controllers): one directory
 * per container under /sys/fs/cgroup/berth with memory.max and cpu.max. cgroup v1: directories under
 * /sys/fs/cgroup/memory/berth (memory.limit_in_bytes) and /sys/fs/cgroup/cpu/berth (CFS quota).
 * cpu units become a quota: 1024 units = one CPU. The process joins its cgroups between fork and exec. */

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

const char *sched_cgroups(void)
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

/* Fills r->cg[i] with container <i>'s cgroup directories; false without cgroups. */
static bool cg_paths(struct sched_run *r, int i)
{
    r->cg[i][0][0] = r->cg[i][1][0] = 0;
    sched_cgroups();
    if (cg_mode == 2)
        snprintf(r->cg[i][0], sizeof r->cg[i][0], CG_ROOT "/berth/%s-%d", r->id, i);
    if (cg_mode == 1) {
        snprintf(r->cg[i][0], sizeof r->cg[i][0], CG_ROOT "/memory/berth/%s-%d", r->id, i);
        snprintf(r->cg[i][1], sizeof r->cg[i][1], CG_ROOT "/cpu/berth/%s-%d", r->id, i);
    }
    return cg_mode > 0;
}

/* Creates container <i>'s cgroups with its limits (none for 0); fills r->cg[i]. */
static void cg_create(struct sched_run *r, int i, int cpu, int memory_mib)
{
    r->mem_limit_mib[i] = memory_mib;
    if ((!cpu && !memory_mib) || !cg_paths(r, i))
        return;
    char f[220], v[64];
    if (cg_mode == 2) {
        if (!make_dir(r->cg[i][0]))
            goto fail;
        snprintf(f, sizeof f, "%s/memory.max", r->cg[i][0]);
        snprintf(v, sizeof v, "%lld", (long long)memory_mib << 20);
        if (memory_mib && !write_file(f, v))
            goto fail;
        snprintf(f, sizeof f, "%s/cpu.max", r->cg[i][0]);
        snprintf(v, sizeof v, "%lld %d", (long long)cpu * CG_PERIOD_US / 1024, CG_PERIOD_US);
        if (cpu && !write_file(f, v))
            goto fail;
        return;
    }
    if (!make_dir(r->cg[i][0]) || !make_dir(r->cg[i][1]))
        goto fail;
    snprintf(f, sizeof f, "%s/memory.limit_in_bytes", r->cg[i][0]);
    snprintf(v, sizeof v, "%lld", (long long)memory_mib << 20);
    if (memory_mib && !write_file(f, v))
        goto fail;
    snprintf(f, sizeof f, "%s/cpu.cfs_period_us", r->cg[i][1]);
    snprintf(v, sizeof v, "%d", CG_PERIOD_US);
    if (cpu && !write_file(f, v))
        goto fail;
    snprintf(f, sizeof f, "%s/cpu.cfs_quota_us", r->cg[i][1]);
    snprintf(v, sizeof v, "%lld", (long long)cpu * CG_PERIOD_US / 1024);
    if (cpu && !write_file(f, v))
        goto fail;
    return;
fail:
    log_warn("task %s: cgroup limits for container %d not applied: %s: %s", r->id, i, f, strerror(errno));
}

/* In the child, before exec: join container <i>'s cgroups. */
static void cg_join(struct sched_run *r, int i)
{
    char f[220], pid[24];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    for (int k = 0; k < 2; k++)
        if (r->cg[i][k][0]) {
            snprintf(f, sizeof f, "%s/cgroup.procs", r->cg[i][k]);
            write_file(f, pid);
        }
}

/* True when the kernel OOM-killed a process of container <i>. */
static bool cg_oom_killed(struct sched_run *r, int i)
{
    char f[220], line[128];
    if (!r->cg[i][0][0])
        return false;
    snprintf(f, sizeof f, "%s/%s", r->cg[i][0], cg_mode == 2 ? "memory.events" : "memory.oom_control");
    FILE *fp = fopen(f, "r");
    long long n = 0;
    while (fp && fgets(line, sizeof line, fp))
        if (sscanf(line, "oom_kill %lld", &n) == 1)
            break;
    if (fp)
        fclose(fp);
    return n > 0;
}

static void cg_remove(struct sched_run *r)
{
    for (int i = 0; i < r->n; i++)
        for (int k = 0; k < 2; k++)
            if (r->cg[i][k][0])
                rmdir(r->cg[i][k]); /* fails while a stray process remains: left for the operator */
}

/* ---- exits ---- */

static void signal_all(struct sched_run *r, int sig)
{
    for (int i = 0; i < r->n; i++)
        if (!r->exited[i] && r->pid[i] > 0)
            kill(-r->pid[i], sig); /* the container's whole process group */
}

static void kill_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct sched_run *r = w->data;
    log_warn("task %s: still running after its stop timeout, sending SIGKILL", r->id);
    signal_all(r, SIGKILL);
}

static void begin_stop(struct sched_run *r)
{
    if (r->stopping)
        return;
    r->stopping = true;
    ev_timer_stop(r->sc->loop, &r->ready_timer);
    signal_all(r, SIGTERM);
    double t = 0;
    for (int i = 0; i < r->n; i++)
        if (r->stop_timeout[i] > t)
            t = r->stop_timeout[i];
    ev_timer_init(&r->kill_timer, kill_timeout, t > 0 ? t : 0.01, 0);
    r->kill_timer.data = r;
    ev_timer_start(r->sc->loop, &r->kill_timer);
}

static void finish_if_done(struct sched_run *r);

static void container_exited(struct sched_run *r, int i, int code)
{
    struct sched *sc = r->sc;
    if (r->exited[i])
        return;
    r->exited[i] = true;
    r->exit_code[i] = code;
    json_t *t = task_get(sc, r->id);
    json_t *cs = t ? json_deep_copy(json_object_get(t, "containers")) : json_array();
    json_t *c = json_array_get(cs, (size_t)i);
    if (c)
        json_object_set_new(c, "exit_code", code >= 0 ? json_integer(code) : json_null());
    bool oom = cg_oom_killed(r, i);
    if (c && oom)
        json_object_set_new(
            c, "reason",
            json_sprintf("OutOfMemoryError: container killed due to memory usage (limit %d MiB)", r->mem_limit_mib[i]));
    if (!r->stopping && r->essential[i]) {
        snprintf(r->stop_code, sizeof r->stop_code, "EssentialContainerExited");
        snprintf(r->reason, sizeof r->reason, "Essential container in task exited (%s, exit code %d%s)",
                 c ? json_string_value(json_object_get(c, "name")) : "?", code, oom ? ", OutOfMemoryError" : "");
        sched_task_update(sc, r->id,
                          json_pack("{s:o,s:s,s:s}", "containers", json_incref(cs), "desired_status", "STOPPED",
                                    "last_status", "STOPPING"));
        begin_stop(r);
    } else {
        sched_task_update(sc, r->id, json_pack("{s:o}", "containers", json_incref(cs)));
    }
    json_decref(cs);
    finish_if_done(r);
}

/* Once every container has exited: the task is STOPPED and the scheduler looks again. */
static void finish_if_done(struct sched_run *r)
{
    struct sched *sc = r->sc;
    for (int k = 0; k < r->n; k++)
        if (!r->exited[k])
            return;
    r->all_exited = true;
    char ts[40];
    util_rfc3339(util_wall(), ts, sizeof ts);
    sched_task_update(sc, r->id,
                      json_pack("{s:s,s:s,s:s,s:s,s:s}", "last_status", "STOPPED", "desired_status", "STOPPED",
                                "stop_code", r->stop_code, "stopped_reason", r->reason, "stopped_at", ts));
    char id[40];
    snprintf(id, sizeof id, "%s", r->id);
    run_free(r);
    sched_task_ended(sc, id);
}

static void child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
    struct sched_run *r = w->data;
    int i = (int)(w - r->child);
    int st = w->rstatus;
    ev_child_stop(loop, w);
    container_exited(r, i, WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1);
}

static void pidfd_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct sched_run *r = w->data;
    int i = (int)(w - r->pidfd_io);
    ev_io_stop(loop, w);
    container_exited(r, i, -1); /* not our child after a restart: the exit code is not ours to read */
}

/* ---- start ---- */

static bool port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr = {htonl(INADDR_LOOPBACK)}};
    bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* True for a task of this node. */
static bool ours(struct sched *sc, json_t *t)
{
    const char *node = json_string_value(json_object_get(t, "node"));
    return node && strcmp(node, sc->node_id) == 0;
}

static bool port_taken(struct sched *sc, int port)
{
    const char *id;
    json_t *t;
    json_object_foreach(json_object_get(sched_store_state(sc->store), "tasks"), id, t) {
        const char *st = json_string_value(json_object_get(t, "last_status"));
        if ((st && strcmp(st, "STOPPED") == 0) || !ours(sc, t))
            continue;
        const char *k;
        json_t *p;
        json_object_foreach(json_object_get(t, "ports"), k, p)
            if (json_integer_value(p) == port)
                return true;
    }
    return false;
}

static int alloc_port(struct sched *sc)
{
    /* From a random starting point, as the kernel picks ephemeral ports: several nodes sharing a
     * range on one machine (or tests running side by side) then rarely race for the same port. */
    static int next = -1;
    int span = sc->port_hi - sc->port_lo + 1;
    if (next < 0)
        next = (int)(util_rand64() % (uint64_t)span);
    for (int k = 0; k < span; k++) {
        int port = sc->port_lo + (next++ % span);
        if (!port_taken(sc, port) && port_free(port))
            return port;
    }
    return -1;
}

/* ---- container health checks (ECS semantics: command, interval, timeout, retries, start period) ---- */

static json_t *health_conf(struct sched_run *r, int i)
{
    json_t *t = task_get(r->sc, r->id);
    return json_object_get(json_array_get(json_object_get(json_object_get(t, "definition"), "containers"), (size_t)i),
                           "health_check");
}

static void health_result(struct health *h, bool ok)
{
    struct sched_run *r = h->r;
    struct sched *sc = r->sc;
    json_t *hc = health_conf(r, h->i);
    h->pid = 0;
    h->failures = ok ? 0 : h->failures + 1;
    const char *status = ok                                                                  ? "HEALTHY"
                         : h->failures >= json_integer_value(json_object_get(hc, "retries")) ? "UNHEALTHY"
                                                                                             : NULL;
    json_t *t = task_get(sc, r->id);
    if (status && strcmp(json_string_value(json_object_get(t, "health_status")), status) != 0)
        sched_task_update(sc, r->id, json_pack("{s:s}", "health_status", status));
    if (status && strcmp(status, "UNHEALTHY") == 0 && r->essential[h->i] && !r->stopping) {
        sched_event(sc, json_string_value(json_object_get(task_get(sc, r->id), "service")),
                    "task %s failed container health checks (%d in a row)", r->id, h->failures);
        char id[40];
        snprintf(id, sizeof id, "%s", r->id);
        sched_task_stop(sc, id, "TaskFailedHealthChecks", "Task failed container health checks");
        return;
    }
    ev_timer_set(&h->timer, json_number_value(json_object_get(hc, "interval_s")), 0);
    ev_timer_start(sc->loop, &h->timer);
}

static void health_exit(struct ev_loop *loop, ev_child *w, int revents)
{
    struct health *h = w->data;
    ev_child_stop(loop, w);
    ev_timer_stop(loop, &h->timer);
    health_result(h, WIFEXITED(w->rstatus) && WEXITSTATUS(w->rstatus) == 0);
}

static void health_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct health *h = w->data;
    struct sched_run *r = h->r;
    if (h->pid > 0) { /* the check outlived timeout_s: a failure */
        kill(-h->pid, SIGKILL);
        ev_child_stop(loop, &h->child);
        health_result(h, false);
        return;
    }
    if (r->stopping)
        return;
    json_t *hc = health_conf(r, h->i), *cmd = json_object_get(hc, "command");
    char **argv = calloc(json_array_size(cmd) + 1, sizeof *argv);
    for (size_t k = 0; k < json_array_size(cmd); k++)
        argv[k] = (char *)json_string_value(json_array_get(cmd, k));
    /* The check sees the task's environment (PORT and friends), as the container does. */
    json_t *t = task_get(r->sc, r->id), *p;
    const char *k;
    const char *path = task_path();
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        /* Like the task: PATH and PORT, nothing else of the node's environment. */
        char keep[4096];
        snprintf(keep, sizeof keep, "%s", path);
        clearenv();
        setenv("PATH", keep, 1);
        json_object_foreach(json_object_get(t, "ports"), k, p) {
            char v[16];
            snprintf(v, sizeof v, "%lld", json_integer_value(p));
            setenv("PORT", v, 0);
        }
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, 0);
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    free(argv);
    if (pid < 0) {
        health_result(h, false);
        return;
    }
    setpgid(pid, pid);
    h->pid = pid;
    ev_child_init(&h->child, health_exit, pid, 0);
    h->child.data = h;
    ev_child_start(loop, &h->child);
    ev_timer_set(&h->timer, json_number_value(json_object_get(hc, "timeout_s")), 0);
    ev_timer_start(loop, &h->timer);
}

static void health_start(struct sched_run *r)
{
    for (int i = 0; i < r->n; i++) {
        json_t *hc = health_conf(r, i);
        struct health *h = &r->health[i];
        h->r = r;
        h->i = i;
        ev_init(&h->timer, health_tick);
        h->timer.data = h;
        ev_init(&h->child, health_exit);
        if (!hc)
            continue;
        /* The first check after start_period_s (failures before it would not count anyway). */
        double first = json_number_value(json_object_get(hc, "start_period_s"));
        ev_timer_set(&h->timer, first > 0 ? first : 0.01, 0);
        ev_timer_start(r->sc->loop, &h->timer);
    }
}

/* True when something accepts TCP connections on 127.0.0.1:<port>. */
static bool accepting(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr = {htonl(INADDR_LOOPBACK)}};
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0; /* loopback: no wait */
    if (fd >= 0)
        close(fd);
    return ok;
}

/* ACTIVATING: a task is RUNNING (and registered) once every host port it was given accepts connections. */
static void ready_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct sched_run *r = w->data;
    struct sched *sc = r->sc;
    json_t *t = task_get(sc, r->id), *p;
    const char *k;
    bool ready = true;
    json_object_foreach(json_object_get(t, "ports"), k, p)
        ready = ready && accepting((int)json_integer_value(p));
    if (!ready) {
        if (util_now() - r->started > READY_MAX_S) {
            snprintf(r->stop_code, sizeof r->stop_code, "TaskFailedToStart");
            snprintf(r->reason, sizeof r->reason, "its ports did not accept connections within %.0fs", READY_MAX_S);
            begin_stop(r);
            return;
        }
        ev_timer_set(w, 0.05, 0);
        ev_timer_start(loop, w);
        return;
    }
    char ts[40];
    util_rfc3339(util_wall(), ts, sizeof ts);
    sched_task_update(sc, r->id, json_pack("{s:s,s:s}", "last_status", "RUNNING", "started_at", ts));
    health_start(r);
    sched_task_running(sc, r->id);
}

static void fail_task(struct sched *sc, const char *id, const char *why)
{
    char ts[40];
    util_rfc3339(util_wall(), ts, sizeof ts);
    sched_task_update(sc, id,
                      json_pack("{s:s,s:s,s:s,s:s,s:s}", "last_status", "STOPPED", "desired_status", "STOPPED",
                                "stop_code", "TaskFailedToStart", "stopped_reason", why, "stopped_at", ts));
    sched_task_ended(sc, id);
}

int sched_agent_start(struct sched *sc, const char *id)
{
    json_t *t = task_get(sc, id);
    json_t *td = json_object_get(t, "definition");
    json_t *cs = json_object_get(td, "containers");
    size_t n = json_array_size(cs);
    if (n == 0 || n > SCHED_MAX_CONTAINERS) {
        fail_task(sc, id, "task definition has no containers, or more than 8");
        return -1;
    }
    /* One host port per port mapping, handed over as PORT and BERTH_PORT_<NAME>. */
    json_t *ports = json_object(), *c, *pm;
    size_t i, k;
    json_array_foreach(cs, i, c) {
        json_array_foreach(json_object_get(c, "port_mappings"), k, pm) {
            int port = alloc_port(sc);
            if (port < 0) {
                json_decref(ports);
                fail_task(sc, id, "no free host port in port_range");
                return -1;
            }
            json_object_set_new(ports, json_string_value(json_object_get(pm, "name")), json_integer(port));
        }
    }
    char logpath[1024];
    snprintf(logpath, sizeof logpath, "%s/tasks/%s.log", sc->data_dir, id);
    struct sched_run *r = calloc(1, sizeof *r);
    r->sc = sc;
    snprintf(r->id, sizeof r->id, "%s", id);
    r->n = (int)n;
    snprintf(r->stop_code, sizeof r->stop_code, "EssentialContainerExited");
    snprintf(r->reason, sizeof r->reason, "Essential container in task exited");
    const char *svc = json_string_value(json_object_get(t, "service"));
    json_t *states = json_array();
    json_array_foreach(cs, i, c) {
        r->pidfd[i] = -1;
        r->essential[i] = json_is_true(json_object_get(c, "essential"));
        r->stop_timeout[i] = json_number_value(json_object_get(c, "stop_timeout_s"));
        json_t *cmd = json_object_get(c, "command");
        char **argv = calloc(json_array_size(cmd) + 1, sizeof *argv);
        for (k = 0; k < json_array_size(cmd); k++)
            argv[k] = strdup(json_string_value(json_array_get(cmd, k)));
        /* Environment (SPEC §7): PATH, the container's, then berth's variables; nothing else of the
         * node's, so no token or secret of the scheduler's reaches a task. */
        json_t *env = json_pack("{s:s}", "PATH", task_path());
        json_object_update(env, json_object_get(c, "environment"));
        /* PORT: the container's first port mapping, else the task's first. */
        const char *first =
            json_string_value(json_object_get(json_array_get(json_object_get(c, "port_mappings"), 0), "name"));
        const char *pk;
        json_t *pv;
        json_object_foreach(ports, pk, pv) {
            char key[128];
            int w = snprintf(key, sizeof key, "BERTH_PORT_");
            for (const char *q = pk; *q && w < (int)sizeof key - 1; q++)
                key[w++] = (char)(isalnum((unsigned char)*q) ? toupper((unsigned char)*q) : '_');
            key[w] = 0;
            json_object_set_new(env, key, json_sprintf("%lld", json_integer_value(pv)));
            if (!first)
                first = pk;
            if (strcmp(first, pk) == 0)
                json_object_set_new(env, "PORT", json_sprintf("%lld", json_integer_value(pv)));
        }
        json_object_set_new(env, "BERTH_TASK_ID", json_string(id));
        json_object_set_new(env, "BERTH_SERVICE", json_string(svc ? svc : ""));
        json_object_set_new(env, "BERTH_DNS", json_string(sc->dns));
        json_object_set_new(env, "BERTH_NAMESPACE", json_string(sc->namespace));
        char **envp = calloc(json_object_size(env) + 1, sizeof *envp);
        size_t ne = 0;
        json_object_foreach(env, pk, pv) {
            size_t len = strlen(pk) + json_string_length(pv) + 2;
            envp[ne] = malloc(len);
            snprintf(envp[ne++], len, "%s=%s", pk, json_string_value(pv));
        }
        json_decref(env);
        cg_create(r, (int)i, (int)json_integer_value(json_object_get(c, "cpu")),
                  (int)json_integer_value(json_object_get(c, "memory_mib")));
        pid_t pid = fork();
        if (pid == 0) {
            setpgid(0, 0); /* its own process group, so a stop reaches its children too */
            cg_join(r, (int)i);
            int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (fd >= 0) {
                dup2(fd, 1);
                dup2(fd, 2);
                close(fd);
            }
            int devnull = open("/dev/null", O_RDONLY);
            if (devnull >= 0)
                dup2(devnull, 0);
            sigset_t none;
            sigemptyset(&none);
            sigprocmask(SIG_SETMASK, &none, NULL);
            signal(SIGPIPE, SIG_DFL);
            execvpe(argv[0], argv, envp);
            dprintf(2, "berth: cannot run %s: %s\n", argv[0], strerror(errno));
            _exit(127);
        }
        for (k = 0; argv[k]; k++)
            free(argv[k]);
        free(argv);
        for (k = 0; k < ne; k++)
            free(envp[k]);
        free(envp);
        if (pid > 0)
            setpgid(pid, pid);
        r->pid[i] = pid;
        ev_child_init(&r->child[i], child_cb, pid, 0);
        r->child[i].data = r;
        if (pid > 0)
            ev_child_start(sc->loop, &r->child[i]);
        else
            r->exited[i] = true;
        ev_init(&r->pidfd_io[i], pidfd_cb);
        json_array_append_new(
            states, json_pack("{s:s,s:i}", "name", json_string_value(json_object_get(c, "name")), "pid", (int)pid));
    }
    r->next = sc->runs;
    sc->runs = r;
    r->started = util_now();
    sched_task_update(sc, id,
                      json_pack("{s:s,s:o,s:o,s:s}", "last_status", "ACTIVATING", "containers", states, "ports", ports,
                                "log", logpath));
    ev_timer_init(&r->ready_timer, ready_tick, 0.02, 0);
    r->ready_timer.data = r;
    ev_timer_start(sc->loop, &r->ready_timer);
    return 0;
}

void sched_agent_stop(struct sched *sc, const char *id, const char *stop_code, const char *reason)
{
    struct sched_run *r = find_run(sc, id);
    json_t *t = task_get(sc, id);
    if (!t || strcmp(json_string_value(json_object_get(t, "last_status")), "STOPPED") == 0)
        return;
    char ts[40];
    util_rfc3339(util_wall(), ts, sizeof ts);
    if (!r) { /* nothing runs (yet) */
        sched_task_update(sc, id,
                          json_pack("{s:s,s:s,s:s,s:s,s:s}", "last_status", "STOPPED", "desired_status", "STOPPED",
                                    "stop_code", stop_code, "stopped_reason", reason, "stopped_at", ts));
        sched_task_ended(sc, id);
        return;
    }
    snprintf(r->stop_code, sizeof r->stop_code, "%s", stop_code);
    snprintf(r->reason, sizeof r->reason, "%s", reason);
    if (r->stopping)
        return;
    sched_task_update(
        sc, id, json_pack("{s:s,s:s,s:s}", "desired_status", "STOPPED", "last_status", "STOPPING", "stopping_at", ts));
    begin_stop(r);
}

bool sched_agent_running(struct sched *sc, const char *id)
{
    return find_run(sc, id) != NULL;
}

void sched_agent_stop_all(struct sched *sc)
{
    for (struct sched_run *r = sc->runs; r; r = r->next)
        signal_all(r, SIGKILL);
    /* Wait for them (briefly), so their cgroups can go too. */
    for (struct sched_run *r = sc->runs; r; r = r->next) {
        for (int i = 0; i < r->n; i++) {
            if (r->exited[i] || r->pid[i] <= 0)
                continue;
            if (r->pidfd[i] >= 0) {
                struct pollfd p = {.fd = r->pidfd[i], .events = POLLIN};
                poll(&p, 1, 1000);
            } else {
                waitpid(r->pid[i], NULL, 0);
            }
        }
        r->all_exited = true;
    }
}

void sched_agent_release(struct sched *sc)
{
    while (sc->runs)
        run_free(sc->runs);
}

void sched_agent_adopt(struct sched *sc)
{
    const char *id;
    json_t *t;
    json_object_foreach(json_object_get(sched_store_state(sc->store), "tasks"), id, t) {
        const char *st = json_string_value(json_object_get(t, "last_status"));
        if (!st || strcmp(st, "STOPPED") == 0 || strcmp(st, "PENDING") == 0 || find_run(sc, id) || !ours(sc, t))
            continue;
        json_t *cs = json_object_get(t, "containers"), *c;
        json_t *defs = json_object_get(json_object_get(t, "definition"), "containers");
        struct sched_run *r = calloc(1, sizeof *r);
        r->sc = sc;
        snprintf(r->id, sizeof r->id, "%s", id);
        r->n = (int)json_array_size(cs);
        snprintf(r->stop_code, sizeof r->stop_code, "EssentialContainerExited");
        snprintf(r->reason, sizeof r->reason, "Essential container in task exited");
        size_t i;
        int alive = 0;
        json_array_foreach(cs, i, c) {
            json_t *def = json_array_get(defs, i);
            r->essential[i] = json_is_true(json_object_get(def, "essential"));
            r->stop_timeout[i] = json_number_value(json_object_get(def, "stop_timeout_s"));
            r->pid[i] = (pid_t)json_integer_value(json_object_get(c, "pid"));
            r->pidfd[i] = -1;
            r->mem_limit_mib[i] = (int)json_integer_value(json_object_get(def, "memory_mib"));
            if (cg_paths(r, (int)i))
                for (int k = 0; k < 2; k++)
                    if (access(r->cg[i][k], F_OK) != 0)
                        r->cg[i][k][0] = 0;
            ev_init(&r->child[i], child_cb);
            ev_init(&r->pidfd_io[i], pidfd_cb);
            r->pidfd_io[i].data = r;
            int fd =
                r->pid[i] > 0 && !json_object_get(c, "exit_code") ? (int)syscall(SYS_pidfd_open, r->pid[i], 0) : -1;
            if (fd < 0) {
                r->exited[i] = true;
                continue;
            }
            r->pidfd[i] = fd;
            ev_io_set(&r->pidfd_io[i], fd, EV_READ);
            ev_io_start(sc->loop, &r->pidfd_io[i]);
            alive++;
        }
        r->next = sc->runs;
        sc->runs = r;
        if (alive) {
            health_start(r);
            log_info("task %s: adopted %d running process(es)", id, alive);
            sched_event(sc, json_string_value(json_object_get(t, "service")), "task %s adopted after a restart", id);
        } else {
            snprintf(r->stop_code, sizeof r->stop_code, "TaskLost");
            snprintf(r->reason, sizeof r->reason, "Task processes exited while the scheduler was down");
            finish_if_done(r);
        }
    }
}

void sched_agent_logs(struct sched *sc, struct httpd_req *req, const char *id)
{
    json_t *t = task_get(sc, id);
    if (!t) {
        httpd_respond_error(req, 404, "TaskNotFound", "no task \"%s\" on this node", id);
        return;
    }
    const char *log = json_string_value(json_object_get(t, "log"));
    FILE *f = log ? fopen(log, "r") : NULL;
    struct buf b;
    buf_init(&b, 1u << 20);
    if (f) {
        /* The last MiB at most. */
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        fseek(f, size > (1 << 20) ? size - (1 << 20) : 0, SEEK_SET);
        char *d = buf_reserve(&b, 1u << 20);
        size_t got = d ? fread(d, 1, 1u << 20, f) : 0;
        buf_commit(&b, got);
        fclose(f);
    }
    httpd_respond(req, 200, "text/plain", b.len ? buf_head(&b) : "", b.len);
    buf_free(&b);
}
