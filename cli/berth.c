/* berth.c -- the berth CLI. Today: `berth dev`, a local plane of proxy + demo service. */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdbool.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "berth/auth.h"
#include "berth/log.h"
#include "berth/lookup.h"
#include "berth/util.h"
#include "client.h"
#include "dev_ctr.h"

#define DEMO_TASKS 2 /* web: the initial count and the autoscaling minimum */
#define DEMO_MAX 8
#define DEMO_TARGET 500 /* req/s per task */
#define DEMO_IN_COOLDOWN 30

static pid_t children[4];
static int nchildren;
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    stop = 1;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: berth COMMAND [ARGS]\n\n"
            "commands:\n"
            "  dev [--port N] [--admin-port N] [--dns-port N] [--dns-admin-port N] [--scheduler-port N]\n"
            "      [--no-containers] [--log-level debug|info|warn|error]  (the daemons' logs; default warn)\n"
            "                                    run a local plane: berth-scheduler (API on 127.0.0.1:7400)\n"
            "                                    deploys web (%d..%d autoscaled berth-demo-web tasks behind\n"
            "                                    berth-proxy at http://web.localhost:8080/) and api (called by\n"
            "                                    web on /api by name through berth-dns at 127.0.0.1:8600; a\n"
            "                                    container of a demo image built and pushed to a registry of\n"
            "                                    its own, when Podman is installed, unless --no-containers);\n"
            "                                    prints events as they come; Ctrl-C stops everything\n"
            "  lookup NAME [--type A|SRV] [--server IP:PORT] [--port N] [--json]\n"
            "                                    resolve a service to endpoints (SRV, else A/AAAA; default server\n"
            "                                    $BERTH_DNS or 127.0.0.1:8600)\n"
            "  taskdef register -f FILE | taskdef ls\n"
            "  service create -f FILE | ls | describe NAME | scale NAME N | update NAME --task-definition TD\n"
            "          | delete NAME\n"
            "  task run TASKDEF [--count N] | ls [--service S] [--status S] | describe ID | stop ID\n"
            "       | logs ID [-f] [--tail N]   its output (the last MiB, or N lines); -f follows it until\n"
            "                                    the task has stopped\n"
            "       | exec ID [--container NAME] [--timeout S] [-it] -- CMD...\n"
            "                                    runs CMD in the task (inside its container, or beside its\n"
            "                                    process with its environment and cgroups): its output as it\n"
            "                                    comes, and its exit code as berth's (124: timed out; default\n"
            "                                    timeout 1 hour); -it: on a terminal, with your input\n"
            "  node ls | drain NODE | activate NODE\n"
            "  events [--service S] [-f] | top [--interval S] [--count N | --once]\n"
            "                                    the scheduler's API at $BERTH_ADDR (default http://127.0.0.1:7400;\n"
            "                                    https://... with $BERTH_CACERT for a private CA), token from\n"
            "                                    $BERTH_TOKEN or ~/.config/berth/token;\n"
            "                                    tables for people, --json for scripts; non-zero exit on failure\n"
            "  help                              this help\n"
            "  version                           print the version\n",
            DEMO_TASKS, DEMO_MAX);
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

/* One request to 127.0.0.1:<port>; the status or -1. */
static int http_call(int port, const char *method, const char *path, const char *body)
{
    char addr[32], *resp;
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    int st = cli_http(addr, method, path, body, &resp);
    free(resp);
    return st;
}

static bool wait_http(int port, double seconds)
{
    for (int i = 0; i < (int)(seconds * 20); i++) {
        if (http_call(port, "GET", "/healthz", NULL) == 200)
            return true;
        usleep(50000);
    }
    return false;
}

static void stop_children(void)
{
    for (int i = 0; i < nchildren; i++)
        if (children[i] > 0)
            kill(children[i], SIGTERM);
    for (int i = 0; i < nchildren; i++)
        if (children[i] > 0)
            waitpid(children[i], NULL, 0);
}

/* Prints the scheduler's events that came after <last> (created_at + message of the last one printed). */
static void print_new_events(int sched_port, char *last, size_t lastlen)
{
    char a[64], *body;
    snprintf(a, sizeof a, "http://127.0.0.1:%d", sched_port);
    int st = cli_http(a, "GET", "/v1/events", NULL, &body);
    json_t *r = st == 200 ? json_loads(body, 0, NULL) : NULL, *ev = json_object_get(r, "events");
    free(body);
    size_t n = json_array_size(ev), start = 0;
    for (size_t i = n; *last && i > 0; i--) {
        json_t *e = json_array_get(ev, i - 1);
        char key[600];
        snprintf(key, sizeof key, "%s %s", json_string_value(json_object_get(e, "created_at")),
                 json_string_value(json_object_get(e, "message")));
        if (strcmp(key, last) == 0) {
            start = i;
            break;
        }
    }
    for (size_t i = start; i < n; i++) {
        json_t *e = json_array_get(ev, i);
        const char *at = json_string_value(json_object_get(e, "created_at")),
                   *svc = json_string_value(json_object_get(e, "service"));
        printf("  %.8s  %-6s %s\n", at && strlen(at) > 11 ? at + 11 : "", svc ? svc : "",
               json_string_value(json_object_get(e, "message")));
        snprintf(last, lastlen, "%s %s", at, json_string_value(json_object_get(e, "message")));
    }
    fflush(stdout);
    json_decref(r);
}

/* Writes <token> to ~/.config/berth/token (mode 0600; <fallback_dir>/token without a HOME) and puts
 * the file's path in <path>. Returns 0 or -1 with errno. */
static int dev_token_save(const char *token, const char *fallback_dir, char *path, size_t size)
{
    const char *home = getenv("HOME");
    if (home && *home) {
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s/.config", home);
        mkdir(dir, 0700);
        snprintf(dir, sizeof dir, "%s/.config/berth", home);
        mkdir(dir, 0700);
        snprintf(path, size, "%s/token", dir);
    } else {
        snprintf(path, size, "%s/token", fallback_dir);
    }
    char line[80];
    int n = snprintf(line, sizeof line, "%s\n", token);
    return util_write_private(path, line, (size_t)n);
}

static void remove_dir(const char *dir)
{
    if (util_rm_rf(dir) < 0)
        fprintf(stderr, "berth dev: could not remove %s: %s\n", dir, strerror(errno));
}

static int dev(int argc, char **argv)
{
    int port = 8080, admin = 7401, dns_port = 8600, dns_admin = 7402, sched_port = 7400;
    bool containers = true;
    char *log_level = "warn"; /* the daemons' own logs; the events are printed anyway */
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--admin-port") == 0 && i + 1 < argc)
            admin = atoi(argv[++i]);
        else if (strcmp(argv[i], "--dns-port") == 0 && i + 1 < argc)
            dns_port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--dns-admin-port") == 0 && i + 1 < argc)
            dns_admin = atoi(argv[++i]);
        else if (strcmp(argv[i], "--scheduler-port") == 0 && i + 1 < argc)
            sched_port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--no-containers") == 0)
            containers = false;
        else if (strcmp(argv[i], "--log-level") == 0 && i + 1 < argc) {
            enum log_level lv;
            log_level = argv[++i];
            if (log_level_parse(log_level, &lv) < 0) {
                fprintf(stderr, "berth dev: --log-level: unknown level \"%s\" (debug, info, warn, error)\n", log_level);
                return 2;
            }
        } else {
            fprintf(stderr, "berth dev: unknown argument \"%s\"\n", argv[i]);
            return 2;
        }
    }
    char dir[PATH_MAX], proxy[PATH_MAX + 32], demo[PATH_MAX + 32], dns[PATH_MAX + 32], sched[PATH_MAX + 40];
    char tmpl[] = "/tmp/berth-dev-XXXXXX";
    tree_dir(dir, sizeof dir);
    snprintf(proxy, sizeof proxy, "%s/proxy/berth-proxy", dir);
    snprintf(dns, sizeof dns, "%s/discovery/berth-dns", dir);
    snprintf(sched, sizeof sched, "%s/scheduler/berth-scheduler", dir);
    snprintf(demo, sizeof demo, "%s/demo/berth-demo-web", dir);
    if (!mkdtemp(tmpl)) {
        perror("berth dev: mkdtemp");
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    /* Auth on (SPEC §7): a fresh admin token for this run, in ~/.config/berth/token for the CLI. */
    char token[65], hash[65], token_path[PATH_MAX];
    if (auth_random_token(token) < 0 || dev_token_save(token, tmpl, token_path, sizeof token_path) < 0) {
        fprintf(stderr, "berth dev: cannot write the API token: %s\n", strerror(errno));
        return 1;
    }
    auth_sha256_hex(token, hash);
    setenv("BERTH_TOKEN", token, 1); /* for this process's own calls */
    char auth[200];
    snprintf(auth, sizeof auth, "\"auth\":{\"tokens\":[{\"name\":\"dev\",\"role\":\"admin\",\"sha256\":\"%s\"}]}", hash);

    /* Containers: api runs from an image when an engine of berth dev's own can be started. */
    struct dev_containers ctr = {.registry_pid = -1, .engine_pid = -1};
    char ctr_why[PATH_MAX + 200] = "--no-containers", agent[PATH_MAX + 100] = "";
    bool images = containers && dev_containers_start(&ctr, tmpl, demo, ctr_why, sizeof ctr_why) == 0;
    if (images)
        snprintf(agent, sizeof agent, ",\"agent\":{\"container_engine\":\"%s\"}", ctr.engine_url);
    else if (containers)
        fprintf(stderr, "berth dev: no containers: %s; every service runs as host processes\n", ctr_why);

    char pconf[PATH_MAX + 32], dconf[PATH_MAX + 32], sconf[PATH_MAX + 32], data[PATH_MAX + 32];
    snprintf(pconf, sizeof pconf, "%s/proxy.json", tmpl);
    snprintf(dconf, sizeof dconf, "%s/dns.json", tmpl);
    snprintf(sconf, sizeof sconf, "%s/scheduler.json", tmpl);
    snprintf(data, sizeof data, "%s/data", tmpl);
    FILE *f = fopen(pconf, "w");
    fprintf(f,
            "{%s,\"admin\":{\"listen\":\"127.0.0.1:%d\"},\"listeners\":[{\"name\":\"http\",\"listen\":\"127.0.0.1:%d\","
            "\"default_action\":{\"fixed_response\":{\"status\":404,\"body\":\"no service for this host\\n\"}}}]}\n",
            auth, admin, port);
    fclose(f);
    f = fopen(dconf, "w");
    fprintf(f,
            "{%s,\"listen\":\"127.0.0.1:%d\",\"admin\":{\"listen\":\"127.0.0.1:%d\"},"
            "\"namespaces\":[{\"name\":\"berth.internal\"}]}\n",
            auth, dns_port, dns_admin);
    fclose(f);
    f = fopen(sconf, "w");
    fprintf(f,
            "{%s,\"proxy_admin_token\":\"%s\",\"dns_admin_token\":\"%s\",\"listen\":\"127.0.0.1:%d\",\"data_dir\":\"%s\","
            "\"proxy_admin\":\"http://127.0.0.1:%d\",\"dns_admin\":\"http://127.0.0.1:%d\",\"dns_server\":\"127.0.0.1:%d\"%s}\n",
            auth, token, token, sched_port, data, admin, dns_admin, dns_port, agent);
    fclose(f);
    char *dav[] = {dns, "-c", dconf, "--log-level", log_level, NULL},
         *pav[] = {proxy, "-c", pconf, "--log-level", log_level, NULL},
         *sav[] = {sched, "-c", sconf, "--stop-tasks", "--log-level", log_level, NULL};
    spawn(dav, NULL);
    spawn(pav, NULL);
    spawn(sav, NULL);
    if (!wait_http(admin, 10) || !wait_http(dns_admin, 10) || !wait_http(sched_port, 10)) {
        fprintf(stderr, "berth dev: the plane did not come up (ports %d, %d, %d in use?)\n", admin, dns_admin,
                sched_port);
        stop_children();
        dev_containers_stop(&ctr);
        remove_dir(tmpl);
        return 1;
    }
    /* The demo: web (autoscaled, behind the proxy) calls api by name (DNS) on /api. */
    char body[PATH_MAX + 512];
    int st[4];
    snprintf(body, sizeof body,
             "{\"family\":\"web\",\"containers\":[{\"name\":\"web\",\"command\":[\"%s\"],\"memory_mib\":32,"
             "\"environment\":{\"GREETING\":\"hello\",\"API_SERVICE\":\"api\"},\"stop_timeout_s\":2,"
             "\"port_mappings\":[{\"name\":\"http\"}]}]}",
             demo);
    st[0] = http_call(sched_port, "POST", "/v1/task-definitions", body);
    if (images) /* api from the image: its own filesystem, user and network; port 8080 inside */
        snprintf(body, sizeof body,
                 "{\"family\":\"api\",\"containers\":[{\"name\":\"api\",\"image\":\"%s\",\"memory_mib\":32,"
                 "\"environment\":{\"GREETING\":\"api\"},\"stop_timeout_s\":2,"
                 "\"port_mappings\":[{\"name\":\"http\",\"container_port\":8080}],"
                 "\"health_check\":{\"command\":[\"CMD-SHELL\",\"wget -qO- http://127.0.0.1:8080/health\"],"
                 "\"interval_s\":5}}]}",
                 ctr.image);
    else
        snprintf(body, sizeof body,
                 "{\"family\":\"api\",\"containers\":[{\"name\":\"api\",\"command\":[\"%s\"],\"memory_mib\":32,"
                 "\"environment\":{\"GREETING\":\"api\"},\"stop_timeout_s\":2,\"port_mappings\":[{\"name\":\"http\"}]}]}",
                 demo);
    st[1] = http_call(sched_port, "POST", "/v1/task-definitions", body);
    snprintf(body, sizeof body,
             "{\"name\":\"web\",\"task_definition\":\"web\",\"desired_count\":%d,"
             "\"load_balancers\":[{\"target_group\":\"web\",\"container_name\":\"web\",\"port_name\":\"http\","
             "\"host_header\":[\"web.localhost\"]}],"
             "\"service_registries\":[{\"name\":\"web\",\"port_name\":\"http\"}],"
             "\"autoscaling\":{\"min\":%d,\"max\":%d,\"target_tracking\":{\"target_per_s\":%d},"
             "\"scale_out_cooldown_s\":10,\"scale_in_cooldown_s\":%d}}",
             DEMO_TASKS, DEMO_TASKS, DEMO_MAX, DEMO_TARGET, DEMO_IN_COOLDOWN);
    st[2] = http_call(sched_port, "POST", "/v1/services", body);
    st[3] = http_call(sched_port, "POST", "/v1/services",
                      "{\"name\":\"api\",\"task_definition\":\"api\",\"desired_count\":1,"
                      "\"service_registries\":[{\"name\":\"api\",\"port_name\":\"http\"}]}");
    if (st[0] != 201 || st[1] != 201 || st[2] != 201 || st[3] != 201) {
        fprintf(stderr, "berth dev: deploying the demo services failed (HTTP %d, %d, %d, %d)\n", st[0], st[1], st[2],
                st[3]);
        stop_children();
        dev_containers_stop(&ctr);
        remove_dir(tmpl);
        return 1;
    }
    printf("berth dev: running\n"
           "  proxy      http://127.0.0.1:%d/  (Host: web.localhost)   admin http://127.0.0.1:%d/v1/target-groups\n"
           "  dns        127.0.0.1:%d (UDP+TCP): dig @127.0.0.1 -p %d web.berth.internal SRV   admin "
           "http://127.0.0.1:%d/\n"
           "  scheduler  http://127.0.0.1:%d/v1/services/web   (BERTH_ADDR for the berth CLI)\n"
           "  services   web: %d berth-demo-web tasks, autoscaled %d..%d at %d req/s per task\n"
           "             api: 1 task%s%s, called by web on /api through DNS (api.berth.internal)\n"
           "  try        curl -H 'Host: web.localhost' http://127.0.0.1:%d/\n"
           "             curl -H 'Host: web.localhost' http://127.0.0.1:%d/api\n"
           "             wrk -t2 -c32 -d30s -H 'Host: web.localhost' http://127.0.0.1:%d/   (watch it scale out)\n"
           "             BERTH_ADDR=http://127.0.0.1:%d berth top\n"
           "%s%s%s"
           "  auth       on: every API wants the token in %s (the berth CLI reads it;\n"
           "             curl -H \"Authorization: Bearer $(cat %s)\" ...)\n"
           "  data       %s\n"
           "Ctrl-C stops everything. Events follow.\n",
           port, admin, dns_port, dns_port, dns_admin, sched_port, DEMO_TASKS, DEMO_TASKS, DEMO_MAX, DEMO_TARGET,
           images ? ", a container of " : " (a host process)", images ? ctr.image : "", port, port, port, sched_port,
           images ? "  containers api's image is pushed to a registry of berth dev's own and run by Podman at\n             "
                  : "",
           images ? ctr.engine_url : "",
           images ? "\n             see inside: berth task ls --service api; berth task exec ID -- ps\n" : "",
           token_path, token_path, tmpl);
    fflush(stdout);
    int status = 0;
    char last[600] = "";
    while (!stop) {
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid > 0) {
            fprintf(stderr, "berth dev: process %d exited (status %d); stopping\n", (int)pid, status);
            for (int i = 0; i < nchildren; i++)
                if (children[i] == pid)
                    children[i] = 0;
            break;
        }
        if (pid < 0 && errno != EINTR)
            break;
        print_new_events(sched_port, last, sizeof last);
        sleep(1); /* Ctrl-C cuts it short */
    }
    stop_children();
    dev_containers_stop(&ctr);
    remove_dir(tmpl);
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
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, json_pack("{s:s,s:s,s:i,s:s,s:i,s:i}", "address", eps[i].address, "ip",
                                                 eps[i].ip, "port", eps[i].port, "host", eps[i].host, "priority",
                                                 eps[i].priority, "weight", eps[i].weight));
        json_t *o = json_pack("{s:s,s:i,s:o}", "name", fq, "ttl", (json_int_t)ttl, "endpoints", arr);
        json_dumpf(o, stdout, JSON_COMPACT | JSON_ENSURE_ASCII);
        putchar('\n');
        json_decref(o);
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
    static const char *const sched_cmds[] = {"taskdef", "service", "task", "node", "events", "top", NULL};
    for (int i = 0; sched_cmds[i]; i++)
        if (strcmp(argv[1], sched_cmds[i]) == 0)
            return cli_scheduler(argc - 1, argv + 1);
    fprintf(stderr, "berth: unknown command \"%s\" (try berth help)\n", argv[1]);
    return 2;
}
