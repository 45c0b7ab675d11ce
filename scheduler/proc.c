/* proc.c -- the process runtime: a task's containers run as host processes, each in its own process
 * group and cgroups, with its output in data_dir/tasks/ID.log. Implements struct runtime_ops (agent.h). */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "berth/alloc.h"
#include "berth/buf.h"
#include "berth/list.h"
#include "berth/log.h"
#include "berth/util.h"
#include "cgroup.h"
#include "tasklog.h"

#define LOG_CHECK_S 2.0 /* how often running tasks' logs are checked against TASKLOG_MAX */

struct run {
    struct list link;
    struct agent *a;
    char id[40];
    int n;
    pid_t pid[AGENT_MAX_CONTAINERS];
    bool essential[AGENT_MAX_CONTAINERS], exited[AGENT_MAX_CONTAINERS];
    double stop_timeout[AGENT_MAX_CONTAINERS];
    ev_child child[AGENT_MAX_CONTAINERS];
    struct cgroup cg[AGENT_MAX_CONTAINERS];
    ev_io pidfd_io[AGENT_MAX_CONTAINERS]; /* adopted processes are not our children */
    int pidfd[AGENT_MAX_CONTAINERS];
    ev_timer kill_timer;
    struct agent_ready ready; /* ACTIVATING: waits until the task's ports accept connections */
    bool all_exited;
    bool stopping;
    char stop_code[40], reason[200];
};

/* What the runtime keeps for an agent (its process_state): the tasks it runs, the commands exec runs. */
struct proc_state {
    struct list runs, execs;
    ev_timer log_timer; /* caps the logs of running tasks */
};

static void logs_tick(struct ev_loop *loop, ev_timer *w, int revents);

static struct proc_state *state(struct agent *a)
{
    if (!a->process_state) {
        struct proc_state *ps = xcalloc(1, sizeof *ps);
        list_init(&ps->runs);
        list_init(&ps->execs);
        ev_timer_init(&ps->log_timer, logs_tick, LOG_CHECK_S, LOG_CHECK_S);
        ps->log_timer.data = a;
        ev_timer_start(a->loop, &ps->log_timer);
        ev_unref(a->loop); /* it alone does not keep the loop running */
        a->process_state = ps;
    }
    return a->process_state;
}

static struct list *runs(struct agent *a)
{
    return &state(a)->runs;
}

static struct run *find_run(struct agent *a, const char *id)
{
    struct list *it, *tmp;
    list_each(it, tmp, runs(a)) {
        struct run *r = list_entry(it, struct run, link);
        if (strcmp(r->id, id) == 0)
            return r;
    }
    return NULL;
}

static struct run *run_new(struct agent *a, const char *id, int n)
{
    struct run *r = xcalloc(1, sizeof *r);
    r->a = a;
    snprintf(r->id, sizeof r->id, "%s", id);
    r->n = n;
    snprintf(r->stop_code, sizeof r->stop_code, "EssentialContainerExited");
    snprintf(r->reason, sizeof r->reason, "Essential container in task exited");
    for (int i = 0; i < AGENT_MAX_CONTAINERS; i++)
        r->pidfd[i] = -1;
    list_add(runs(a), &r->link);
    return r;
}

static void run_free(struct run *r)
{
    struct ev_loop *loop = r->a->loop;
    list_del(&r->link);
    for (int i = 0; i < r->n; i++) {
        ev_child_stop(loop, &r->child[i]);
        ev_io_stop(loop, &r->pidfd_io[i]);
        if (r->pidfd[i] >= 0)
            close(r->pidfd[i]);
        if (r->all_exited)
            cg_remove(&r->cg[i]);
    }
    ev_timer_stop(loop, &r->kill_timer);
    agent_ready_stop(&r->ready);
    free(r);
}

static json_t *record(struct run *r)
{
    return task_get(r->a->tasks, r->id);
}

/* ---- exits ---- */

static void signal_all(struct run *r, int sig)
{
    for (int i = 0; i < r->n; i++)
        if (!r->exited[i] && r->pid[i] > 0)
            kill(-r->pid[i], sig); /* the container's whole process group */
}

static void kill_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct run *r = w->data;
    log_warn("task %s: still running after its stop timeout, sending SIGKILL", r->id);
    signal_all(r, SIGKILL);
}

static void begin_stop(struct run *r)
{
    if (r->stopping)
        return;
    r->stopping = true;
    agent_ready_stop(&r->ready);
    signal_all(r, SIGTERM);
    double t = 0;
    for (int i = 0; i < r->n; i++)
        if (r->stop_timeout[i] > t)
            t = r->stop_timeout[i];
    ev_timer_init(&r->kill_timer, kill_timeout, t > 0 ? t : 0.01, 0);
    r->kill_timer.data = r;
    ev_timer_start(r->a->loop, &r->kill_timer);
}

/* Once every container has exited: the task is STOPPED. */
static void finish_if_done(struct run *r)
{
    for (int k = 0; k < r->n; k++)
        if (!r->exited[k])
            return;
    r->all_exited = true;
    struct tasks *tt = r->a->tasks;
    char id[40], code[40], reason[200];
    snprintf(id, sizeof id, "%s", r->id);
    snprintf(code, sizeof code, "%s", r->stop_code);
    snprintf(reason, sizeof reason, "%s", r->reason);
    run_free(r);
    task_stopped(tt, id, code, reason);
}

static void container_exited(struct run *r, int i, int code)
{
    if (r->exited[i])
        return;
    r->exited[i] = true;
    json_t *t = record(r);
    json_t *cs = t ? json_deep_copy(json_object_get(t, "containers")) : json_array();
    json_t *c = json_array_get(cs, (size_t)i);
    if (c)
        json_object_set_new(c, "exit_code", code >= 0 ? json_integer(code) : json_null());
    bool oom = cg_oom_killed(&r->cg[i]);
    if (c && oom)
        json_object_set_new(c, "reason",
                            json_sprintf("OutOfMemoryError: container killed due to memory usage (limit %d MiB)",
                                         r->cg[i].mem_limit_mib));
    bool essential_exit = !r->stopping && r->essential[i];
    if (essential_exit) {
        snprintf(r->stop_code, sizeof r->stop_code, "EssentialContainerExited");
        snprintf(r->reason, sizeof r->reason, "Essential container in task exited (%s, exit code %d%s)",
                 c ? json_string_value(json_object_get(c, "name")) : "?", code, oom ? ", OutOfMemoryError" : "");
    }
    task_set(r->a->tasks, r->id, json_pack("{s:o}", "containers", cs));
    if (essential_exit) {
        task_stopping(r->a->tasks, r->id, NULL, NULL);
        begin_stop(r);
    }
    finish_if_done(r);
}

static void child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
    struct run *r = w->data;
    int i = (int)(w - r->child);
    int st = w->rstatus;
    ev_child_stop(loop, w);
    container_exited(r, i, WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1);
}

static void pidfd_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct run *r = w->data;
    int i = (int)(w - r->pidfd_io);
    ev_io_stop(loop, w);
    container_exited(r, i, -1); /* not our child after a restart: the exit code is not ours to read */
}

/* The PATH tasks get: the node's, or the usual one. */
static const char *task_path(void)
{
    const char *p = getenv("PATH");
    return p && *p ? p : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
}

/* In a child: stdin from /dev/null, and stdout and stderr to <fd> (closed after), or also /dev/null. */
static void child_stdio(int fd)
{
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0)
        dup2(devnull, 0);
    int out = fd >= 0 ? fd : devnull;
    if (out >= 0) {
        dup2(out, 1);
        dup2(out, 2);
    }
    if (fd >= 0)
        close(fd);
}

/* ---- start ---- */

/* Its ports never accepted connections. */
static void ready_failed(void *arg, const char *why)
{
    struct run *r = arg;
    snprintf(r->stop_code, sizeof r->stop_code, "TaskFailedToStart");
    snprintf(r->reason, sizeof r->reason, "%s", why);
    begin_stop(r);
}

/* NULL-terminated "K=V" strings of object <env>. */
static char **env_list(json_t *env)
{
    char **envp = xcalloc(json_object_size(env) + 1, sizeof *envp);
    size_t n = 0;
    const char *k;
    json_t *v;
    json_object_foreach(env, k, v) {
        size_t len = strlen(k) + json_string_length(v) + 2;
        envp[n] = xmalloc(len);
        snprintf(envp[n++], len, "%s=%s", k, json_string_value(v));
    }
    return envp;
}

/* In a forked child: its own process group (so a stop reaches its children too), the container's
 * cgroups, output to <out>, default signals, then <argv> with <envp>. Never returns. */
/* In a child: joins <cg>, takes <out> as stdout and stderr (CHILD_TERMINAL: keeps the terminal it was
 * given as stdio) and runs <argv>. */
#define CHILD_TERMINAL (-2)
static __attribute__((noreturn)) void child_exec(const struct cgroup *cg, int out, char *const *argv, char **envp)
{
    setpgid(0, 0);
    cg_join(cg);
    if (out != CHILD_TERMINAL)
        child_stdio(out);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    execvpe(argv[0], argv, envp);
    dprintf(2, "berth: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

static void free_list(char **l)
{
    for (size_t k = 0; l[k]; k++)
        free(l[k]);
    free(l);
}

static int proc_start(struct agent *a, const char *id, json_t *env, json_t *ports, char *why, size_t why_len)
{
    json_t *cs = json_object_get(json_object_get(task_get(a->tasks, id), "definition"), "containers"), *c;
    char logpath[1024];
    snprintf(logpath, sizeof logpath, "%s/tasks/%s.log", a->data_dir, id);
    struct run *r = run_new(a, id, (int)json_array_size(cs));
    json_t *states = json_array();
    size_t i;
    json_array_foreach(cs, i, c) {
        r->essential[i] = json_is_true(json_object_get(c, "essential"));
        r->stop_timeout[i] = json_number_value(json_object_get(c, "stop_timeout_s"));
        json_t *cmd = json_object_get(c, "command");
        char **argv = xcalloc(json_array_size(cmd) + 1, sizeof *argv);
        for (size_t k = 0; k < json_array_size(cmd); k++)
            argv[k] = xstrdup(json_string_value(json_array_get(cmd, k)));
        json_t *vars = json_pack("{s:s}", "PATH", task_path());
        json_object_update(vars, json_array_get(env, i));
        char **envp = env_list(vars);
        json_decref(vars);
        cg_create(&r->cg[i], id, (int)i, (int)json_integer_value(json_object_get(c, "cpu")),
                  (int)json_integer_value(json_object_get(c, "memory_mib")));
        pid_t pid = fork();
        if (pid == 0)
            child_exec(&r->cg[i], open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644), argv, envp);
        free_list(argv);
        free_list(envp);
        if (pid > 0)
            setpgid(pid, pid);
        r->pid[i] = pid;
        ev_child_init(&r->child[i], child_cb, pid, 0);
        r->child[i].data = r;
        if (pid > 0)
            ev_child_start(a->loop, &r->child[i]);
        else
            r->exited[i] = true;
        ev_init(&r->pidfd_io[i], pidfd_cb);
        json_array_append_new(
            states, json_pack("{s:s,s:i}", "name", json_string_value(json_object_get(c, "name")), "pid", (int)pid));
    }
    task_activating(a->tasks, id, states, json_incref(ports), logpath);
    agent_ready_start(&r->ready, a, &proc_runtime, id, ready_failed, r);
    return 0;
}

/* ---- exec: a command beside the task's processes, in its cgroups, with its environment ---- */

struct exec_run {
    struct list link;
    struct agent *a;
    pid_t pid;
    int fd; /* the read end of its stdout and stderr */
    ev_io io;
    ev_child child;
    ev_timer timer;
    int status;
    bool exited, eof, killed;
    void (*out)(void *arg, const char *data, size_t len);
    void (*done)(void *arg, int status);
    void *arg;
};

static void exec_free(struct exec_run *x)
{
    struct ev_loop *loop = x->a->loop;
    list_del(&x->link);
    ev_io_stop(loop, &x->io);
    ev_child_stop(loop, &x->child);
    ev_timer_stop(loop, &x->timer);
    close(x->fd);
    free(x);
}

static void exec_finish(struct exec_run *x)
{
    if (!x->exited || !x->eof)
        return;
    void (*done)(void *, int) = x->done;
    void *arg = x->arg;
    int status = x->killed ? -1 : x->status;
    exec_free(x);
    done(arg, status);
}

static void exec_read(struct ev_loop *loop, ev_io *w, int revents)
{
    struct exec_run *x = w->data;
    char b[16384];
    ssize_t n = read(x->fd, b, sizeof b);
    if (n > 0) {
        x->out(x->arg, b, (size_t)n);
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    x->eof = true; /* every writer is gone (a child it left behind may hold it longer: the timer ends that) */
    ev_io_stop(loop, w);
    exec_finish(x);
}

static void exec_exit(struct ev_loop *loop, ev_child *w, int revents)
{
    struct exec_run *x = w->data;
    ev_child_stop(loop, w);
    int st = w->rstatus;
    x->status = WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
    x->exited = true;
    exec_finish(x);
}

static void exec_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct exec_run *x = w->data;
    x->killed = true;
    kill(-x->pid, SIGKILL); /* its whole process group */
    if (x->exited && !x->eof) { /* a child of it still holds the pipe */
        x->eof = true;
        exec_finish(x);
    }
}

static int proc_exec(struct agent *a, const char *id, int container, char *const *argv, json_t *env, double timeout_s,
                     const struct exec_tty *tty, void **input, void (*out)(void *arg, const char *data, size_t len),
                     void (*done)(void *arg, int status), void *arg)
{
    struct run *r = find_run(a, id);
    if (!r || r->stopping || container < 0 || container >= r->n)
        return errno = ESRCH, -1;
    int p[2] = {-1, -1};
    if (!tty && pipe2(p, O_CLOEXEC) < 0)
        return -1;
    json_t *vars = json_pack("{s:s}", "PATH", task_path());
    json_object_update(vars, env);
    if (tty)
        json_object_set_new(vars, "TERM", json_string("xterm"));
    char **envp = env_list(vars);
    json_decref(vars);
    pid_t pid;
    if (tty) { /* on a terminal of its own: its output and its input are the terminal's master side */
        struct winsize ws = {.ws_row = (unsigned short)tty->rows, .ws_col = (unsigned short)tty->cols};
        pid = forkpty(&p[0], NULL, NULL, &ws);
        if (pid == 0)
            child_exec(&r->cg[container], CHILD_TERMINAL, argv, envp);
        if (p[0] >= 0)
            fcntl(p[0], F_SETFD, FD_CLOEXEC);
    } else {
        pid = fork();
        if (pid == 0)
            child_exec(&r->cg[container], dup(p[1]), argv, envp);
        close(p[1]);
    }
    free_list(envp);
    if (pid < 0) {
        if (p[0] >= 0)
            close(p[0]);
        return -1;
    }
    if (!tty) /* (on a terminal it makes a session of its own: a group set from here would stop that) */
        setpgid(pid, pid);
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    struct exec_run *x = xcalloc(1, sizeof *x);
    *x = (struct exec_run){.a = a, .pid = pid, .fd = p[0], .out = out, .done = done, .arg = arg};
    list_add(&state(a)->execs, &x->link);
    if (input)
        *input = x;
    ev_io_init(&x->io, exec_read, p[0], EV_READ);
    x->io.data = x;
    ev_io_start(a->loop, &x->io);
    ev_child_init(&x->child, exec_exit, pid, 0);
    x->child.data = x;
    ev_child_start(a->loop, &x->child);
    ev_timer_init(&x->timer, exec_timeout, timeout_s, 0);
    x->timer.data = x;
    ev_timer_start(a->loop, &x->timer);
    return 0;
}

static void proc_exec_input(struct agent *a, void *input, const char *data, size_t len)
{
    struct exec_run *x = input;
    if (write(x->fd, data, len) < 0 && errno != EAGAIN)
        log_debug("exec input: %s", strerror(errno));
}

static bool proc_stop(struct agent *a, const char *id)
{
    struct run *r = find_run(a, id);
    if (!r)
        return false;
    agent_stop_reason(task_get(a->tasks, id), r->stop_code, sizeof r->stop_code, r->reason, sizeof r->reason);
    begin_stop(r);
    return true;
}

static int proc_signal(struct agent *a, const char *id, int sig)
{
    struct run *r = find_run(a, id);
    if (!r)
        return errno = ESRCH, -1;
    signal_all(r, sig);
    return 0;
}

static bool proc_running(struct agent *a, const char *id)
{
    return find_run(a, id) != NULL;
}

static void proc_kill_all(struct agent *a)
{
    struct list *it, *tmp;
    list_each(it, tmp, runs(a))
        signal_all(list_entry(it, struct run, link), SIGKILL);
    /* Wait for them (briefly), so their cgroups can go too. */
    list_each(it, tmp, runs(a)) {
        struct run *r = list_entry(it, struct run, link);
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

static void proc_release(struct agent *a)
{
    while (!list_empty(runs(a)))
        run_free(list_entry(runs(a)->next, struct run, link));
    while (!list_empty(&state(a)->execs)) { /* at exit: the commands are killed, nobody waits for them */
        struct exec_run *x = list_entry(state(a)->execs.next, struct exec_run, link);
        kill(-x->pid, SIGKILL);
        exec_free(x);
    }
    ev_ref(a->loop);
    ev_timer_stop(a->loop, &state(a)->log_timer);
    free(a->process_state);
    a->process_state = NULL;
}

static void proc_adopt(struct agent *a, const char *id, json_t *t)
{
    json_t *cs = json_object_get(t, "containers"), *c;
    json_t *defs = json_object_get(json_object_get(t, "definition"), "containers");
    struct run *r = run_new(a, id, (int)json_array_size(cs));
    size_t i;
    int alive = 0;
    json_array_foreach(cs, i, c) {
        json_t *def = json_array_get(defs, i);
        r->essential[i] = json_is_true(json_object_get(def, "essential"));
        r->stop_timeout[i] = json_number_value(json_object_get(def, "stop_timeout_s"));
        r->pid[i] = (pid_t)json_integer_value(json_object_get(c, "pid"));
        cg_find(&r->cg[i], id, (int)i, (int)json_integer_value(json_object_get(def, "memory_mib")));
        ev_init(&r->child[i], child_cb);
        ev_init(&r->pidfd_io[i], pidfd_cb);
        r->pidfd_io[i].data = r;
        int fd = r->pid[i] > 0 && !json_object_get(c, "exit_code") ? (int)syscall(SYS_pidfd_open, r->pid[i], 0) : -1;
        if (fd < 0) {
            r->exited[i] = true;
            continue;
        }
        r->pidfd[i] = fd;
        ev_io_set(&r->pidfd_io[i], fd, EV_READ);
        ev_io_start(a->loop, &r->pidfd_io[i]);
        alive++;
    }
    if (alive) {
        agent_health_start(a, &proc_runtime, id);
        log_info("task %s: adopted %d running process(es)", id, alive);
        char msg[200];
        snprintf(msg, sizeof msg, "task %s adopted after a restart", id);
        a->event_hook(a->hook_arg, json_string_value(json_object_get(t, "service")), msg);
    } else {
        snprintf(r->stop_code, sizeof r->stop_code, "TaskLost");
        snprintf(r->reason, sizeof r->reason, "Task processes exited while the scheduler was down");
        finish_if_done(r);
    }
}

static void logs_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct agent *a = w->data;
    struct list *it, *tmp;
    list_each(it, tmp, runs(a)) {
        const char *log = json_string_value(json_object_get(record(list_entry(it, struct run, link)), "log"));
        if (log)
            tasklog_cap(log, TASKLOG_MAX, TASKLOG_KEEP);
    }
}

static json_t *proc_stats(struct agent *a, const char *id)
{
    struct run *r = find_run(a, id);
    if (!r)
        return NULL;
    struct cg_total use = {0};
    int alive = 0;
    for (int i = 0; i < r->n; i++) {
        alive += !r->exited[i] && r->pid[i] > 0 && kill(r->pid[i], 0) == 0;
        cg_total_add(&use, &r->cg[i]);
    }
    return cg_total_json(&use, json_pack("{s:s,s:i}", "runtime", "process", "processes", alive));
}

const struct runtime_ops proc_runtime = {
    .name = "process",
    .start = proc_start,
    .stop = proc_stop,
    .signal = proc_signal,
    .adopt = proc_adopt,
    .exec = proc_exec,
    .exec_input = proc_exec_input,
    .stats = proc_stats,
    .running = proc_running,
    .kill_all = proc_kill_all,
    .release = proc_release,
};
