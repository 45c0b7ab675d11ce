/* berth.c -- the berth CLI. Today: `berth dev`, a local plane of proxy + demo service. */
#include <errno.h>
#include <stdbool.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "berth/lookup.h"

#define DEMO_TASKS 2

static pid_t children[DEMO_TASKS + 2];
static int nchildren;
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    stop = 1;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: berth COMMAND [ARGS]\n\n"
               "commands:\n"
               "  dev [--port N] [--admin-port N] [--dns-port N] [--dns-admin-port N]\n"
               "                                    run a local plane: berth-proxy on 127.0.0.1:8080 in front of\n"
               "                                    %d berth-demo-web tasks, reachable as http://web.localhost:8080/,\n"
               "                                    and berth-dns on 127.0.0.1:8600 answering web.berth.internal\n"
               "  lookup NAME [--type A|SRV] [--server IP:PORT] [--port N] [--json]\n"
               "                                    resolve a service to endpoints (SRV, else A/AAAA; default server\n"
               "                                    $BERTH_DNS or 127.0.0.1:8600)\n"
               "  help                              this help\n"
               "  version                           print the version\n",
               DEMO_TASKS);
}

/* Directory holding this executable's build tree siblings (../proxy, ../demo). */
static void tree_dir(char *dst, size_t size)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = 0;
    char *slash = strrchr(self, '/');
    if (slash)
        *slash = 0;
    snprintf(dst, size, "%s/..", self);
}

static pid_t spawn(char *const argv[], char *const extra_env[])
{
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; extra_env && extra_env[i]; i++)
            putenv(extra_env[i]);
        execv(argv[0], argv);
        fprintf(stderr, "berth: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    if (pid > 0)
        children[nchildren++] = pid;
    return pid;
}

static int dev(int argc, char **argv)
{
    int port = 8080, admin = 7401, dns_port = 8600, dns_admin = 7402;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--admin-port") == 0 && i + 1 < argc)
            admin = atoi(argv[++i]);
        else if (strcmp(argv[i], "--dns-port") == 0 && i + 1 < argc)
            dns_port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--dns-admin-port") == 0 && i + 1 < argc)
            dns_admin = atoi(argv[++i]);
        else {
            fprintf(stderr, "berth dev: unknown argument \"%s\"\n", argv[i]);
            return 2;
        }
    }
    char dir[PATH_MAX], proxy[PATH_MAX + 32], demo[PATH_MAX + 32], dns[PATH_MAX + 32], tmpl[] = "/tmp/berth-dev-XXXXXX";
    tree_dir(dir, sizeof dir);
    snprintf(proxy, sizeof proxy, "%s/proxy/berth-proxy", dir);
    snprintf(dns, sizeof dns, "%s/discovery/berth-dns", dir);
    snprintf(demo, sizeof demo, "%s/demo/berth-demo-web", dir);
    if (!mkdtemp(tmpl)) {
        perror("berth dev: mkdtemp");
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    int base = 32000 + (int)(getpid() % 1000) * 10;
    char targets[512] = "", instances[1024] = "";
    for (int i = 0; i < DEMO_TASKS; i++) {
        char penv[32], tenv[64], *av[] = {demo, NULL};
        snprintf(penv, sizeof penv, "PORT=%d", base + i);
        snprintf(tenv, sizeof tenv, "BERTH_TASK_ID=web-%d", i + 1);
        char *env[] = {penv, tenv, NULL};
        spawn(av, env);
        char one[160];
        snprintf(one, sizeof one, "%s{\"address\":\"127.0.0.1:%d\",\"id\":\"web-%d\"}", i ? "," : "", base + i, i + 1);
        strcat(targets, one);
        snprintf(one, sizeof one, "%s{\"id\":\"web-%d\",\"address\":\"127.0.0.1\",\"port\":%d,\"port_name\":\"http\"}",
                 i ? "," : "", i + 1, base + i);
        strcat(instances, one);
    }
    char dconf[PATH_MAX + 32];
    snprintf(dconf, sizeof dconf, "%s/dns.json", tmpl);
    FILE *df = fopen(dconf, "w");
    fprintf(df,
            "{\"listen\":\"127.0.0.1:%d\",\"admin\":{\"listen\":\"127.0.0.1:%d\"},"
            "\"namespaces\":[{\"name\":\"berth.internal\",\"services\":[{\"name\":\"web\",\"instances\":[%s]}]}]}\n",
            dns_port, dns_admin, instances);
    fclose(df);
    char *dav[] = {dns, "-c", dconf, NULL};
    spawn(dav, NULL);
    char conf[PATH_MAX + 32];
    snprintf(conf, sizeof conf, "%s/proxy.json", tmpl);
    FILE *f = fopen(conf, "w");
    fprintf(f,
            "{\"admin\":{\"listen\":\"127.0.0.1:%d\"},\"listeners\":[{\"name\":\"http\",\"listen\":\"127.0.0.1:%d\","
            "\"rules\":[{\"priority\":10,\"conditions\":{\"host_header\":[\"web.localhost\"]},"
            "\"action\":{\"forward\":[{\"target_group\":\"web\"}]}}],"
            "\"default_action\":{\"fixed_response\":{\"status\":404,\"body\":\"no service for this host\\n\"}}}],"
            "\"target_groups\":[{\"name\":\"web\",\"health_check\":{\"path\":\"/health\",\"interval_s\":2,"
            "\"timeout_s\":1},\"deregistration_delay_s\":5,\"targets\":[%s]}]}\n",
            admin, port, targets);
    fclose(f);
    char *pav[] = {proxy, "-c", conf, NULL};
    spawn(pav, NULL);
    printf("berth dev: running\n"
           "  proxy     http://127.0.0.1:%d/  (Host: web.localhost)   admin http://127.0.0.1:%d/v1/target-groups\n"
           "  dns       127.0.0.1:%d (UDP+TCP): dig @127.0.0.1 -p %d web.berth.internal SRV   admin http://127.0.0.1:%d/\n"
           "  service   web: %d tasks on ports %d..%d\n"
           "  try       curl -H 'Host: web.localhost' http://127.0.0.1:%d/\n"
           "            wrk -t2 -c32 -d10s -H 'Host: web.localhost' http://127.0.0.1:%d/\n"
           "  config    %s\n"
           "Ctrl-C stops everything.\n",
           port, admin, dns_port, dns_port, dns_admin, DEMO_TASKS, base, base + DEMO_TASKS - 1, port, port, conf);
    fflush(stdout);
    int status = 0;
    while (!stop) {
        pid_t pid = waitpid(-1, &status, 0);
        if (pid > 0) {
            fprintf(stderr, "berth dev: process %d exited (status %d); stopping\n", (int)pid, status);
            for (int i = 0; i < nchildren; i++)
                if (children[i] == pid)
                    children[i] = 0;
            break;
        }
        if (pid < 0 && errno != EINTR)
            break;
    }
    for (int i = 0; i < nchildren; i++)
        if (children[i] > 0)
            kill(children[i], SIGTERM);
    for (int i = 0; i < nchildren; i++)
        if (children[i] > 0)
            waitpid(children[i], NULL, 0);
    unlink(conf);
    unlink(dconf);
    rmdir(tmpl);
    printf("berth dev: stopped\n");
    return 0;
}

static int lookup_cmd(int argc, char **argv)
{
    const char *name = NULL, *server = getenv("BERTH_DNS");
    enum lookup_type type = LOOKUP_AUTO;
    int port = 80;
    bool json = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--type") == 0 && i + 1 < argc) {
            const char *t = argv[++i];
            if (strcasecmp(t, "SRV") == 0)
                type = LOOKUP_SRV;
            else if (strcasecmp(t, "A") == 0 || strcasecmp(t, "AAAA") == 0)
                type = LOOKUP_A;
            else {
                fprintf(stderr, "berth lookup: --type must be A or SRV, not \"%s\"\n", t);
                return 2;
            }
        } else if (strcmp(argv[i], "--server") == 0 && i + 1 < argc) {
            server = argv[++i];
        } else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            port = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (argv[i][0] == '-' || name) {
            fprintf(stderr, "berth lookup: unexpected argument \"%s\" (try berth help)\n", argv[i]);
            return 2;
        } else {
            name = argv[i];
        }
    }
    if (!name) {
        fprintf(stderr, "berth lookup: a NAME is required, e.g. berth lookup web.berth.internal\n");
        return 2;
    }
    if (!server || !*server)
        server = "127.0.0.1:8600";
    /* A bare service name means the default namespace. */
    char fq[300];
    snprintf(fq, sizeof fq, strchr(name, '.') ? "%s" : "%s.berth.internal", name);
    struct lookup_endpoint *eps = NULL;
    size_t n = 0;
    unsigned ttl = 0;
    char *err = NULL;
    if (lookup_endpoints_sync(server, fq, type, port, 5.0, &eps, &n, &ttl, &err) < 0) {
        fprintf(stderr, "berth lookup: %s (server %s)\n", err, server);
        free(err);
        return 1;
    }
    if (json) {
        printf("{\"name\":\"%s\",\"ttl\":%u,\"endpoints\":[", fq, ttl);
        for (size_t i = 0; i < n; i++)
            printf("%s{\"address\":\"%s\",\"ip\":\"%s\",\"port\":%d,\"host\":\"%s\",\"priority\":%d,\"weight\":%d}",
                   i ? "," : "", eps[i].address, eps[i].ip, eps[i].port, eps[i].host, eps[i].priority, eps[i].weight);
        printf("]}\n");
    } else {
        printf("%-24s %-40s %8s %6s\n", "ENDPOINT", "HOST", "PRIORITY", "WEIGHT");
        for (size_t i = 0; i < n; i++)
            printf("%-24s %-40s %8d %6d\n", eps[i].address, eps[i].host, eps[i].priority, eps[i].weight);
    }
    free(eps);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("berth %s\n", BERTH_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "dev") == 0)
        return dev(argc - 2, argv + 2);
    if (strcmp(argv[1], "lookup") == 0)
        return lookup_cmd(argc - 2, argv + 2);
    fprintf(stderr, "berth: unknown command \"%s\" (try berth help)\n", argv[1]);
    return 2;
}
