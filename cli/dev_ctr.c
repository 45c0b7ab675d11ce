/* dev_ctr.c -- containers for `berth dev`: a registry and a container engine of its own (Podman's API
 * service), and the demo image, built from berth-demo-web and busybox on this machine and pushed to
 * that registry (nothing is downloaded). See dev_ctr.h. */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dev_ctr.h"

/* The image: busybox (for a shell, wget for health checks) and the demo with the libraries it links. */
static const char build_script[] =
    "set -e\n"
    "d=$1 demo=$2 ref=$3; shift 3\n"
    "r=$d/rootfs; mkdir -p $r/bin $r/app $r/tmp $r/etc $r/proc $r/sys $r/dev; chmod 1777 $r/tmp\n"
    "cp /bin/busybox $r/bin/busybox; cp \"$demo\" $r/app/web\n"
    "for a in sh wget cat id ls ps env head sleep; do ln -s busybox $r/bin/$a; done\n"
    "for lib in $({ ldd /bin/busybox || true; ldd \"$demo\"; } 2>/dev/null | awk '/=> \\//{print $3} /^\\t\\//{print $1}'); do\n"
    "  mkdir -p \"$r$(dirname $lib)\"; cp -L \"$lib\" \"$r$lib\"; done\n"
    "printf 'root:x:0:0::/:/bin/sh\\napp:x:1000:1000::/app:/bin/sh\\n' > $r/etc/passwd\n"
    "printf 'root:x:0:\\napp:x:1000:\\n' > $r/etc/group\n"
    "tar -C $r -cf $d/rootfs.tar .\n"
    "\"$@\" import --change 'ENTRYPOINT [\"/app/web\"]' --change 'ENV BIND=0.0.0.0' --change 'USER 1000:1000' "
    "$d/rootfs.tar $ref >/dev/null\n"
    "\"$@\" push --tls-verify=false $ref >/dev/null 2>&1\n"
    "\"$@\" rmi $ref >/dev/null\n"
    "rm -rf $r $d/rootfs.tar\n";

static bool in_path(const char *prog)
{
    const char *path = getenv("PATH");
    char buf[4096], f[4200], *save = NULL;
    snprintf(buf, sizeof buf, "%s", path && *path ? path : "/usr/bin:/bin");
    for (char *p = strtok_r(buf, ":", &save); p; p = strtok_r(NULL, ":", &save)) {
        snprintf(f, sizeof f, "%s/%s", p, prog);
        if (access(f, X_OK) == 0)
            return true;
    }
    return false;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr = {htonl(INADDR_LOOPBACK)}};
    socklen_t l = sizeof sa;
    int port = fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
                       getsockname(fd, (struct sockaddr *)&sa, &l) == 0
                   ? ntohs(sa.sin_port)
                   : -1;
    if (fd >= 0)
        close(fd);
    return port;
}

static bool write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    bool ok = f && fputs(text, f) >= 0;
    if (f)
        ok = fclose(f) == 0 && ok;
    return ok;
}

/* Runs <argv> with the engine's environment; its output to <log>. Returns the pid (or -1), or when
 * <wait_for> its exit status. */
static int run(struct dev_containers *c, char *const argv[], const char *log, bool wait_for)
{
    pid_t pid = fork();
    if (pid == 0) {
        setenv("CONTAINERS_CONF", c->conf, 1);
        setenv("CONTAINERS_REGISTRIES_CONF", c->registries, 1);
        FILE *out = fopen(log, "a");
        if (out) {
            dup2(fileno(out), 1);
            dup2(fileno(out), 2);
        }
        setpgid(0, 0); /* Ctrl-C goes to berth dev, which stops these last */
        execvp(argv[0], argv);
        _exit(127);
    }
    if (pid < 0 || !wait_for)
        return pid;
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static bool engine_up(const char *sock)
{
    for (int i = 0; i < 200; i++) { /* 20 s */
        if (access(sock, F_OK) == 0)
            return true;
        usleep(100000);
    }
    return false;
}

int dev_containers_start(struct dev_containers *c, const char *dir, const char *demo, char *why, size_t why_len)
{
    memset(c, 0, sizeof *c);
    c->registry_pid = c->engine_pid = -1;
    snprintf(c->dir, sizeof c->dir, "%s/containers", dir);
    const char *missing = !in_path("podman") ? "podman" : !in_path("docker-registry") ? "docker-registry" : NULL;
    if (missing) {
        snprintf(why, why_len, "%s is not installed (scripts/deps.sh dev installs it)", missing);
        return -1;
    }
    if (access("/bin/busybox", R_OK) != 0) {
        snprintf(why, why_len, "no /bin/busybox for the demo image (scripts/deps.sh dev installs busybox-static)");
        return -1;
    }
    if (geteuid() != 0) {
        snprintf(why, why_len, "berth dev runs its own container engine as root only (rootless Podman needs more set-up)");
        return -1;
    }
    int port = free_port();
    char path[PATH_MAX + 64], text[PATH_MAX + 512], log[PATH_MAX + 64];
    mkdir(c->dir, 0755);
    snprintf(log, sizeof log, "%s/log", c->dir);
    snprintf(c->conf, sizeof c->conf, "%s/containers.conf", c->dir);
    snprintf(c->registries, sizeof c->registries, "%s/registries.conf", c->dir);
    snprintf(text, sizeof text, "[[registry]]\nlocation = \"127.0.0.1:%d\"\ninsecure = true\n", port);
    bool ok = port > 0 && write_file(c->registries, text) &&
              write_file(c->conf, "[containers]\ndefault_ulimits = [\"nofile=4096:4096\", \"nproc=4096:4096\"]\n"
                                  "[engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\n"
                                  "events_logger = \"file\"\nexit_command_delay = 10\n");
    snprintf(path, sizeof path, "%s/registry.yml", c->dir);
    snprintf(text, sizeof text,
             "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s/registry\n"
             "http:\n  addr: 127.0.0.1:%d\n",
             c->dir, port);
    ok = ok && write_file(path, text);
    if (!ok) {
        snprintf(why, why_len, "cannot write its configuration in %s: %s", c->dir, strerror(errno));
        return -1;
    }
    char *reg[] = {"docker-registry", "serve", path, NULL};
    c->registry_pid = run(c, reg, log, false);
    char root[PATH_MAX + 32], runroot[PATH_MAX + 32];
    snprintf(root, sizeof root, "%s/root", c->dir);
    snprintf(runroot, sizeof runroot, "%s/run", c->dir);
    snprintf(c->engine_url, sizeof c->engine_url, "unix://%s/podman.sock", c->dir);
    char *eng[] = {"podman", "--root", root, "--runroot", runroot, "system", "service", "--time=0", c->engine_url, NULL};
    c->engine_pid = run(c, eng, log, false);
    if (c->engine_pid < 0 || !engine_up(c->engine_url + 7)) {
        snprintf(why, why_len, "Podman's API service did not start (see %s)", log);
        return -1;
    }
    snprintf(c->image, sizeof c->image, "127.0.0.1:%d/demo/web:1", port);
    char *build[] = {"sh", "-c", (char *)build_script, "sh", c->dir, (char *)demo, c->image, "podman", "--root", root,
                     "--runroot", runroot, NULL};
    if (run(c, build, log, true) != 0) {
        snprintf(why, why_len, "building and pushing the demo image failed (see %s)", log);
        return -1;
    }
    return 0;
}

void dev_containers_stop(struct dev_containers *c)
{
    char root[PATH_MAX + 32], runroot[PATH_MAX + 32], log[PATH_MAX + 64];
    snprintf(root, sizeof root, "%s/root", c->dir);
    snprintf(runroot, sizeof runroot, "%s/run", c->dir);
    snprintf(log, sizeof log, "%s/log", c->dir);
    if (c->engine_pid > 0) { /* what the scheduler left (it removes its own): then the engine */
        char *rm[] = {"podman", "--root", root, "--runroot", runroot, "rm", "-af", "-t", "0", NULL};
        run(c, rm, log, true);
    }
    pid_t pids[2] = {c->engine_pid, c->registry_pid};
    for (int i = 0; i < 2; i++)
        if (pids[i] > 0) {
            kill(pids[i], SIGTERM);
            waitpid(pids[i], NULL, 0);
        }
    /* The engine's mounts under its storage go before the directory can. */
    FILE *m = fopen("/proc/mounts", "r");
    char line[PATH_MAX + 256], mounts[64][PATH_MAX];
    int n = 0;
    while (m && n < 64 && fgets(line, sizeof line, m)) {
        char dev[256], at[PATH_MAX];
        if (sscanf(line, "%255s %4095s", dev, at) == 2 && strncmp(at, c->dir, strlen(c->dir)) == 0)
            snprintf(mounts[n++], sizeof mounts[0], "%s", at);
    }
    if (m)
        fclose(m);
    while (n--)
        umount2(mounts[n], MNT_DETACH);
}
