/* client.c -- the berth CLI: a blocking HTTP client and the scheduler commands (like `aws ecs`). */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "berth/alloc.h"
#include "berth/net.h"
#include "berth/tls.h"
#include "client.h"

const char *cli_token(char **problem)
{
    static char tok[512];
    static bool done;
    static char why[600];
    *problem = why[0] ? why : NULL;
    if (done)
        return tok[0] ? tok : NULL;
    done = true;
    const char *env = getenv("BERTH_TOKEN");
    if (env && *env) {
        snprintf(tok, sizeof tok, "%s", env);
        return tok;
    }
    const char *home = getenv("HOME");
    char path[512];
    snprintf(path, sizeof path, "%s/.config/berth/token", home ? home : "");
    FILE *f = home ? fopen(path, "r") : NULL;
    if (!f)
        return NULL;
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077)) {
        /* As ssh does with keys: a secret others can read is not used. */
        snprintf(why, sizeof why, "%s is readable by others (mode %03o): chmod 600 it", path, st.st_mode & 0777);
        *problem = why;
        fclose(f);
        return NULL;
    }
    if (fgets(tok, sizeof tok, f))
        tok[strcspn(tok, "\r\n")] = 0;
    fclose(f);
    return tok[0] ? tok : NULL;
}

/* A TLS session on blocking socket <fd> to <hostport>, verified against $BERTH_CACERT and the
 * system's CAs; NULL with *why. */
static SSL *tls_connect(int fd, const char *hostport, char **why)
{
    const char *ca = getenv("BERTH_CACERT");
    char *err = NULL;
    static SSL_CTX *ctx;
    if (!ctx && !(ctx = tls_client_ctx(true, ca && *ca ? ca : NULL, true, &err))) {
        *why = err;
        return NULL;
    }
    SSL *ssl = tls_client_ssl(ctx, fd, hostport);
    int want;
    if (ssl && tls_handshake(ssl, &want) == 1)
        return ssl;
    char e[200], msg[400];
    snprintf(msg, sizeof msg, "TLS: %s%s", tls_error(ssl, e, sizeof e),
             ssl && SSL_get_verify_result(ssl) != X509_V_OK && !(ca && *ca)
                 ? " (set BERTH_CACERT to the CA file of a private CA)" : "");
    *why = xstrdup(msg);
    tls_close(ssl);
    return NULL;
}

int cli_http(const char *addr, const char *method, const char *path, const char *req_body, char **body)
{
    char hostport[128];
    struct net_addr a;
    const char *scheme_end = strstr(addr, "://");
    snprintf(hostport, sizeof hostport, "%s", scheme_end ? scheme_end + 3 : addr);
    size_t hl = strlen(hostport);
    if (hl && hostport[hl - 1] == '/')
        hostport[hl - 1] = 0;
    *body = NULL;
    if (net_parse_url(addr, &a) < 0) {
        *body = xstrdup("the address must look like http://127.0.0.1:7400 or https://127.0.0.1:7400");
        return -1;
    }
    if (scheme_end && strncmp(addr, "http://", 7) != 0 && !a.tls) {
        *body = xstrdup("the scheme must be http:// or https://");
        return -1;
    }
    int fd = socket(a.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a.ss, a.len) < 0) {
        *body = xstrdup(strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    /* A server that goes away mid-request is an error to report, not a SIGPIPE (TLS writes with
     * write(2)); restored after, so what berth dev starts later inherits the default. */
    void (*old_pipe)(int) = signal(SIGPIPE, SIG_IGN);
    SSL *ssl = NULL;
    if (a.tls && !(ssl = tls_connect(fd, hostport, body))) {
        signal(SIGPIPE, old_pipe);
        close(fd);
        return -1;
    }
    int want;
    size_t blen = req_body ? strlen(req_body) : 0;
    char *req = xmalloc(blen + 2048), *problem;
    const char *tok = cli_token(&problem);
    int n = snprintf(req, blen + 2048,
                     "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nContent-Type: application/json\r\n"
                     "%s%s%sContent-Length: %zu\r\n\r\n%s",
                     method, path, hostport, tok ? "Authorization: Bearer " : "", tok ? tok : "", tok ? "\r\n" : "",
                     blen, req_body ? req_body : "");
    for (int off = 0; off < n;) {
        ssize_t w = tls_sock_write(fd, ssl, req + off, (size_t)(n - off), &want);
        if (w <= 0)
            break;
        off += (int)w;
    }
    free(req);
    size_t cap = 65536, len = 0;
    char *resp = xmalloc(cap);
    for (;;) {
        if (len + 4096 > cap)
            resp = xrealloc(resp, cap *= 2);
        ssize_t r = tls_sock_read(fd, ssl, resp + len, cap - len - 1, &want);
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    tls_close(ssl);
    signal(SIGPIPE, old_pipe);
    close(fd);
    resp[len] = 0;
    int status = -1;
    char *sep = strstr(resp, "\r\n\r\n");
    if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1 || !sep) {
        free(resp);
        *body = xstrdup("malformed response");
        return -1;
    }
    *body = xstrdup(sep + 4);
    free(resp);
    return status;
}

static const char *addr(void)
{
    const char *a = getenv("BERTH_ADDR");
    return a && *a ? a : "http://127.0.0.1:7400";
}

/* Sends a request; on failure prints a one-line reason and returns NULL. */
static json_t *call(const char *method, const char *path, json_t *body)
{
    char *req = body ? json_dumps(body, JSON_COMPACT) : NULL, *resp;
    int st = cli_http(addr(), method, path, req, &resp);
    free(req);
    if (st < 0) {
        fprintf(stderr, "berth: cannot reach the scheduler at %s: %s\n", addr(), resp);
        free(resp);
        return NULL;
    }
    json_t *j = json_loads(resp, JSON_ALLOW_NUL, NULL);
    if (st >= 300) {
        const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
        char *problem;
        fprintf(stderr, "berth: %s\n", msg ? msg : resp);
        if (st == 401) {
            bool have = cli_token(&problem) != NULL;
            fprintf(stderr, "berth: %s\n",
                    problem ? problem
                    : have  ? "the token from BERTH_TOKEN or ~/.config/berth/token was refused"
                            : "set BERTH_TOKEN, or put the token in ~/.config/berth/token (mode 0600)");
        }
        json_decref(j);
        j = NULL;
    } else if (!j) {
        j = json_string(resp);
    }
    free(resp);
    return j;
}

/* call() with a body it takes the reference of. */
static json_t *send_body(const char *method, const char *path, json_t *body)
{
    json_t *r = call(method, path, body);
    json_decref(body);
    return r;
}

static json_t *read_file_arg(int argc, char **argv)
{
    for (int i = 0; i + 1 < argc; i++)
        if (strcmp(argv[i], "-f") == 0 || strcmp(argv[i], "--file") == 0) {
            json_error_t je;
            json_t *j = json_load_file(argv[i + 1], 0, &je);
            if (!j)
                fprintf(stderr, "berth: %s:%d:%d: %s\n", argv[i + 1], je.line, je.column, je.text);
            return j;
        }
    fprintf(stderr, "berth: -f FILE is required\n");
    return NULL;
}

static const char *opt(int argc, char **argv, const char *name)
{
    for (int i = 0; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return NULL;
}

static bool flag(int argc, char **argv, const char *name)
{
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return true;
    return false;
}

static int print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2));
    printf("%s\n", s);
    free(s);
    json_decref(j);
    return 0;
}

#define S(o, k) (json_is_string(json_object_get(o, k)) ? json_string_value(json_object_get(o, k)) : "-")
#define I(o, k) ((long long)json_integer_value(json_object_get(o, k)))

/* "1,234.5" style figures for tables; "-" when absent. */
static const char *num(json_t *v, const char *fmt, char *buf, size_t len)
{
    if (!json_is_number(v))
        return "-";
    snprintf(buf, len, fmt, json_number_value(v));
    return buf;
}

/* The service table of `berth service ls` and `berth top`. */
static void print_services(json_t *services)
{
    printf("%-16s %-14s %7s %7s %7s %9s %8s  %s\n", "SERVICE", "TASK DEF", "DESIRED", "RUNNING", "HEALTHY", "REQ/S",
           "P99 MS", "LAST SCALING");
    json_t *x;
    size_t i;
    json_array_foreach(services, i, x) {
        json_t *m = json_object_get(x, "metrics");
        json_t *last = json_object_get(json_object_get(x, "autoscaling_status"), "last_scaling");
        char rate[32], p99[32], healthy[32], when[16] = "";
        const char *at = S(last, "at");
        if (strlen(at) >= 19)
            snprintf(when, sizeof when, "%.8s ", at + 11);
        printf("%-16s %-14s %7lld %7lld %7s %9s %8s  %s%s\n", S(x, "name"), S(x, "task_definition"),
               I(x, "desired_count"), I(x, "running_count"),
               num(json_object_get(m, "healthy_count"), "%.0f", healthy, sizeof healthy),
               num(json_object_get(m, "request_rate"), "%.1f", rate, sizeof rate),
               num(json_object_get(m, "p99_ms"), "%.1f", p99, sizeof p99), when, last ? S(last, "message") : "-");
    }
}

static int usage_error(const char *what)
{
    fprintf(stderr, "berth: usage: berth %s (try berth help)\n", what);
    return 2;
}

/* The node table of `berth node ls` and `berth top`. */
static void print_nodes(json_t *nodes)
{
    printf("%-12s %-9s %-9s %12s %16s %6s  %s\n", "NODE", "STATUS", "CONNECTED", "CPU USED", "MEMORY USED", "TASKS",
           "ATTRIBUTES");
    json_t *x;
    size_t i;
    json_array_foreach(nodes, i, x) {
        char attrs[256] = "";
        const char *k;
        json_t *v;
        json_object_foreach(json_object_get(x, "attributes"), k, v)
            snprintf(attrs + strlen(attrs), sizeof attrs - strlen(attrs), "%s%s=%s", *attrs ? "," : "", k,
                     json_string_value(v));
        printf("%-12s %-9s %-9s %5lld/%-6lld %7lld/%-8lld %6lld  %s\n", S(x, "id"), S(x, "status"),
               json_is_true(json_object_get(x, "connected")) ? "yes" : "no", I(x, "cpu_used"), I(x, "cpu"),
               I(x, "memory_mib_used"), I(x, "memory_mib"), I(x, "running_tasks"), *attrs ? attrs : "-");
    }
}

/* berth top: the service and node tables, refreshed every --interval seconds until Ctrl-C (or --count
 * times). */
static int top(int argc, char **argv)
{
    const char *iv = opt(argc, argv, "--interval"), *cnt = opt(argc, argv, "--count");
    double interval = iv ? atof(iv) : 1.0;
    long count = flag(argc, argv, "--once") ? 1 : cnt ? atol(cnt) : -1;
    if (interval < 0.1 || count == 0)
        return usage_error("top [--interval SECONDS (>= 0.1)] [--count N | --once]");
    bool tty = isatty(STDOUT_FILENO);
    for (long k = 0; count < 0 || k < count; k++) {
        json_t *r = call("GET", "/v1/services", NULL), *nodes = r ? call("GET", "/v1/nodes", NULL) : NULL;
        if (!r || !nodes) {
            json_decref(r);
            return 1;
        }
        if (tty)
            printf("\033[H\033[2J");
        else if (k)
            printf("\n");
        char ts[64];
        time_t now = time(NULL);
        strftime(ts, sizeof ts, "%H:%M:%S", localtime(&now));
        printf("berth top  %s  %s  (every %.1fs%s)\n", addr(), ts, interval, tty ? "; Ctrl-C quits" : "");
        print_services(json_object_get(r, "services"));
        printf("\n");
        print_nodes(json_object_get(nodes, "nodes"));
        fflush(stdout);
        json_decref(r);
        json_decref(nodes);
        if (count < 0 || k + 1 < count)
            usleep((useconds_t)(interval * 1e6));
    }
    return 0;
}

/* berth events [--service S] [-f]: the recent events; with -f, then new ones as they happen (polling
 * the API with the last event's seq as the cursor) until interrupted. */
static int events(int argc, char **argv, bool js)
{
    const char *svc = opt(argc, argv, "--service");
    bool follow = flag(argc, argv, "-f") || flag(argc, argv, "--follow");
    unsigned long long since = 0;
    for (;;) {
        char path[512];
        snprintf(path, sizeof path, "/v1/events?since=%llu%s%s", since, svc ? "&service=" : "", svc ? svc : "");
        json_t *r = call("GET", path, NULL), *x;
        if (!r)
            return 1;
        if (js && !follow)
            return print_json(r);
        size_t i;
        json_array_foreach(json_object_get(r, "events"), i, x) {
            if (js) {
                char *line = json_dumps(x, JSON_COMPACT);
                printf("%s\n", line);
                free(line);
            } else {
                printf("%s  %-12s %s\n", S(x, "created_at"), S(x, "service"), S(x, "message"));
            }
            since = (unsigned long long)json_integer_value(json_object_get(x, "seq"));
        }
        json_decref(r);
        if (!follow)
            return 0;
        fflush(stdout);
        usleep(500 * 1000);
    }
}

/* berth task exec ID [--container NAME] [--timeout S] -- CMD...: the command's output, and its exit code
 * as berth's (124 when it timed out, as timeout(1)). */
/* Writes the last <n> lines of <p>[0..len) (all of it for n < 0). */
static void put_tail(const char *p, size_t len, long n)
{
    size_t at = n < 0 ? 0 : len;
    for (long seen = 0; n > 0 && at > 0; at--)
        if (p[at - 1] == '\n' && at != len && ++seen == n)
            break;
    fwrite(p + at, 1, len - at, stdout);
}

/* `berth task logs ID [-f] [--tail N]`: the last MiB (or N lines); with -f, then what the task writes,
 * until it has stopped. */
static int task_logs(int argc, char **argv, const char *id)
{
    bool follow = false;
    long tail = -1;
    for (int i = 3; i < argc; i++) {
        char *end;
        if (strcmp(argv[i], "-f") == 0 || strcmp(argv[i], "--follow") == 0) {
            follow = true;
        } else if (strcmp(argv[i], "--tail") == 0 && i + 1 < argc && (tail = strtol(argv[++i], &end, 10)) >= 0 && !*end) {
            continue;
        } else {
            return usage_error("task logs ID [-f] [--tail N]");
        }
    }
    char path[512];
    snprintf(path, sizeof path, "/v1/tasks/%s/logs?offset=-1", id);
    json_t *r = call("GET", path, NULL);
    if (!r)
        return 1;
    json_t *data = json_object_get(r, "data");
    put_tail(json_string_value(data) ? json_string_value(data) : "", json_string_length(data), tail);
    long long offset = json_integer_value(json_object_get(r, "offset"));
    json_decref(r);
    fflush(stdout);
    while (follow) {
        snprintf(path, sizeof path, "/v1/tasks/%s", id);
        json_t *t = call("GET", path, NULL);
        bool stopped = !t || strcmp(S(t, "last_status"), "STOPPED") == 0;
        json_decref(t);
        snprintf(path, sizeof path, "/v1/tasks/%s/logs?offset=%lld", id, offset);
        if (!(r = call("GET", path, NULL)))
            return 1;
        data = json_object_get(r, "data");
        fwrite(json_string_value(data) ? json_string_value(data) : "", 1, json_string_length(data), stdout);
        fflush(stdout);
        long long next = json_integer_value(json_object_get(r, "offset"));
        json_decref(r);
        if (next == offset && stopped) /* it has stopped, and all it wrote is out */
            break;
        if (next == offset)
            usleep(300 * 1000);
        offset = next;
    }
    return 0;
}

/* -it: the terminal in raw mode while the command runs, restored however berth ends. */
static struct termios saved_term;
static bool term_raw;

static void term_restore(void)
{
    if (term_raw)
        tcsetattr(0, TCSANOW, &saved_term);
    term_raw = false;
}

static void term_signal(int sig)
{
    term_restore();
    _exit(128 + sig);
}

static bool term_make_raw(void)
{
    struct termios raw;
    if (tcgetattr(0, &saved_term) < 0)
        return false;
    raw = saved_term;
    cfmakeraw(&raw);
    if (tcsetattr(0, TCSANOW, &raw) < 0)
        return false;
    term_raw = true;
    atexit(term_restore);
    signal(SIGTERM, term_signal);
    signal(SIGHUP, term_signal);
    return true;
}

/* -it: what was typed goes to the command's terminal. False when the session is gone. */
static bool send_input(const char *path)
{
    char in[4097];
    ssize_t n = read(0, in, sizeof in - 1);
    if (n <= 0)
        return true;
    in[n] = 0;
    char url[600], *resp;
    snprintf(url, sizeof url, "%s/input", path);
    int st = cli_http(addr(), "POST", url, in, &resp);
    free(resp);
    return st == 200;
}

static int task_exec(int argc, char **argv, const char *id)
{
    int dash = 0;
    while (dash < argc && strcmp(argv[dash], "--") != 0)
        dash++;
    if (dash + 1 >= argc)
        return usage_error("task exec ID [--container NAME] [--timeout S] [-it] -- CMD...");
    bool tty = flag(dash, argv, "-it") || flag(dash, argv, "-ti") || (flag(dash, argv, "-i") && flag(dash, argv, "-t"));
    if (tty && !isatty(0)) {
        fprintf(stderr, "berth: -it needs a terminal on standard input\n");
        return 1;
    }
    json_t *cmd = json_array();
    for (int i = dash + 1; i < argc; i++)
        json_array_append_new(cmd, json_string(argv[i]));
    const char *container = opt(dash, argv, "--container"), *timeout = opt(dash, argv, "--timeout");
    json_t *b = json_pack("{s:o,s:b,s:f}", "command", cmd, "stream", 1, "timeout_s", timeout ? atof(timeout) : 3600.0);
    if (container)
        json_object_set_new(b, "container", json_string(container));
    struct winsize ws;
    if (tty) {
        json_object_set_new(b, "tty", json_true());
        if (ioctl(0, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0) {
            json_object_set_new(b, "rows", json_integer(ws.ws_row));
            json_object_set_new(b, "cols", json_integer(ws.ws_col));
        }
    }
    char path[512];
    snprintf(path, sizeof path, "/v1/tasks/%s/exec", id);
    json_t *r = send_body("POST", path, b);
    const char *eid = json_string_value(json_object_get(r, "exec_id"));
    if (!eid) {
        json_decref(r);
        return 1;
    }
    /* The output as it comes, then the command's exit code as ours. */
    snprintf(path, sizeof path, "/v1/tasks/%s/exec/%s", id, eid);
    json_decref(r);
    long long offset = 0;
    int code = 1, idle_ms = 20;
    if (tty && !term_make_raw()) {
        fprintf(stderr, "berth: cannot put the terminal in raw mode: %s\n", strerror(errno));
        return 1;
    }
    for (;;) {
        char url[600];
        snprintf(url, sizeof url, "%s?offset=%lld", path, offset);
        if (!(r = call("POST", url, NULL)))
            return 1;
        json_t *out = json_object_get(r, "output"); /* may hold NUL bytes */
        fwrite(json_string_value(out) ? json_string_value(out) : "", 1, json_string_length(out), stdout);
        fflush(stdout);
        long long next = json_integer_value(json_object_get(r, "offset"));
        bool running = json_is_true(json_object_get(r, "running"));
        code = (int)json_integer_value(json_object_get(r, "exit_code"));
        if (!running && json_is_true(json_object_get(r, "timed_out"))) {
            fprintf(stderr, "berth: the command was stopped after its timeout\n");
            code = 124;
        } else if (!running && json_is_true(json_object_get(r, "truncated"))) {
            fprintf(stderr, "berth: the output was cut at 8 MiB\n");
        }
        json_decref(r);
        if (!running && next == offset)
            break;
        /* Output came: ask again at once; none: wait longer each time, up to 250 ms (or until a key). */
        int wait_ms = next != offset ? 0 : idle_ms;
        idle_ms = next != offset ? 20 : (idle_ms * 2 > 250 ? 250 : idle_ms * 2);
        offset = next;
        struct pollfd in = {.fd = 0, .events = POLLIN};
        if (tty && poll(&in, 1, wait_ms) > 0) {
            send_input(path);
            idle_ms = 20;
        } else if (!tty && wait_ms) {
            usleep((useconds_t)wait_ms * 1000);
        }
    }
    term_restore();
    return code < 0 ? 1 : code > 255 ? 255 : code;
}

int cli_scheduler(int argc, char **argv)
{
    const char *noun = argv[0], *verb = argc > 1 ? argv[1] : "";
    bool js = flag(argc, argv, "--json");
    char path[512];
    json_t *r = NULL;
    if (strcmp(noun, "taskdef") == 0) {
        if (strcmp(verb, "register") == 0) {
            json_t *b = read_file_arg(argc, argv);
            if (!b || !(r = call("POST", "/v1/task-definitions", b))) {
                json_decref(b);
                return 1;
            }
            json_decref(b);
            if (js)
                return print_json(r);
            printf("registered %s:%lld\n", S(r, "family"), I(r, "revision"));
        } else if (strcmp(verb, "ls") == 0) {
            if (!(r = call("GET", "/v1/task-definitions", NULL)))
                return 1;
            if (js)
                return print_json(r);
            json_t *x;
            size_t i;
            printf("TASK DEFINITION\n");
            json_array_foreach(json_object_get(r, "task_definitions"), i, x)
                printf("%s\n", json_string_value(x));
        } else {
            return usage_error("taskdef register -f FILE | taskdef ls");
        }
    } else if (strcmp(noun, "service") == 0) {
        const char *name = argc > 2 ? argv[2] : NULL;
        if (strcmp(verb, "create") == 0) {
            json_t *b = read_file_arg(argc, argv);
            if (!b || !(r = call("POST", "/v1/services", b))) {
                json_decref(b);
                return 1;
            }
            json_decref(b);
            if (js)
                return print_json(r);
            printf("created service %s (%s x %lld)\n", S(r, "name"), S(r, "task_definition"), I(r, "desired_count"));
        } else if (strcmp(verb, "ls") == 0) {
            if (!(r = call("GET", "/v1/services", NULL)))
                return 1;
            if (js)
                return print_json(r);
            print_services(json_object_get(r, "services"));
        } else if (strcmp(verb, "describe") == 0 && name) {
            snprintf(path, sizeof path, "/v1/services/%s", name);
            if (!(r = call("GET", path, NULL)))
                return 1;
            if (js)
                return print_json(r);
            json_t *d = json_object_get(r, "current_deployment");
            printf("service         %s\ntask definition %s\ndesired         %lld\nrunning         %lld\npending        "
                   " %lld\n",
                   S(r, "name"), S(r, "task_definition"), I(r, "desired_count"), I(r, "running_count"),
                   I(r, "pending_count"));
            if (d)
                printf("deployment      %s -> %s: %s (%lld failed tasks)\n", S(d, "previous"), S(d, "current"),
                       S(d, "status"), I(d, "failed"));
            json_t *m = json_object_get(r, "metrics"), *as = json_object_get(r, "autoscaling");
            char b1[32], b2[32];
            if (m && !json_object_get(m, "error"))
                printf("healthy         %lld\nrequest rate    %s req/s\np99 latency     %s ms\n", I(m, "healthy_count"),
                       num(json_object_get(m, "request_rate"), "%.1f", b1, sizeof b1),
                       num(json_object_get(m, "p99_ms"), "%.1f", b2, sizeof b2));
            else if (m)
                printf("metrics         %s\n", S(m, "error"));
            if (as) {
                json_t *st = json_object_get(r, "autoscaling_status"), *last = json_object_get(st, "last_scaling");
                printf(
                    "autoscaling     %lld..%lld tasks, %s req/s per task\n", I(as, "min"), I(as, "max"),
                    num(json_object_get(json_object_get(as, "target_tracking"), "target_per_s"), "%g", b1, sizeof b1));
                if (st)
                    printf("  now           %s\n", S(st, "decision"));
                if (last)
                    printf("  last scaling  %s  %s\n", S(last, "at"), S(last, "message"));
            }
            snprintf(path, sizeof path, "/v1/events?service=%s", name);
            json_t *ev = call("GET", path, NULL), *x;
            size_t n = json_array_size(json_object_get(ev, "events")), i;
            printf("events\n");
            json_array_foreach(json_object_get(ev, "events"), i, x)
                if (i + 10 >= n)
                    printf("  %s  %s\n", S(x, "created_at"), S(x, "message"));
            json_decref(ev);
        } else if ((strcmp(verb, "scale") == 0 && argc > 3) || (strcmp(verb, "update") == 0 && name)) {
            json_t *b;
            if (strcmp(verb, "scale") == 0) {
                char *end;
                long n = strtol(argv[3], &end, 10);
                if (*end || n < 0)
                    return usage_error("service scale NAME COUNT");
                b = json_pack("{s:i}", "desired_count", (int)n);
            } else {
                const char *td = opt(argc, argv, "--task-definition");
                if (!td)
                    return usage_error("service update NAME --task-definition FAMILY[:REV]");
                b = json_pack("{s:s}", "task_definition", td);
            }
            snprintf(path, sizeof path, "/v1/services/%s", name);
            if (!(r = send_body("PATCH", path, b)))
                return 1;
            if (js)
                return print_json(r);
            printf("service %s: %s x %lld\n", S(r, "name"), S(r, "task_definition"), I(r, "desired_count"));
        } else if (strcmp(verb, "delete") == 0 && name) {
            snprintf(path, sizeof path, "/v1/services/%s", name);
            if (!(r = call("DELETE", path, NULL)))
                return 1;
            if (js)
                return print_json(r);
            printf("deleted service %s (its tasks drain, then it is gone)\n", name);
        } else {
            return usage_error("service create -f FILE | ls | describe NAME | scale NAME N | update NAME "
                               "--task-definition TD | delete NAME");
        }
    } else if (strcmp(noun, "task") == 0) {
        const char *id = argc > 2 ? argv[2] : NULL;
        if (strcmp(verb, "run") == 0 && id) {
            const char *count = opt(argc, argv, "--count");
            json_t *b = json_pack("{s:s,s:i}", "task_definition", id, "count", count ? atoi(count) : 1);
            if (!(r = send_body("POST", "/v1/tasks", b)))
                return 1;
            if (js)
                return print_json(r);
            json_t *x;
            size_t i;
            json_array_foreach(json_object_get(r, "tasks"), i, x)
                printf("started task %s\n", json_string_value(x));
        } else if (strcmp(verb, "ls") == 0) {
            const char *svc = opt(argc, argv, "--service"), *st = opt(argc, argv, "--status");
            snprintf(path, sizeof path, "/v1/tasks?%s%s%s%s", svc ? "service=" : "", svc ? svc : "",
                     st ? "&status=" : "", st ? st : "");
            if (!(r = call("GET", path, NULL)))
                return 1;
            if (js)
                return print_json(r);
            printf("%-34s %-12s %-10s %-12s %s\n", "TASK", "SERVICE", "TASK DEF", "STATUS", "PORTS / REASON");
            json_t *x;
            size_t i;
            json_array_foreach(json_object_get(r, "tasks"), i, x) {
                char ports[128] = "";
                const char *k;
                json_t *p;
                json_object_foreach(json_object_get(x, "ports"), k, p)
                    snprintf(ports + strlen(ports), sizeof ports - strlen(ports), "%s%s=%lld", *ports ? "," : "", k,
                             (long long)json_integer_value(p));
                const char *why = json_is_string(json_object_get(x, "pending_reason"))   ? S(x, "pending_reason")
                                  : json_is_string(json_object_get(x, "stopped_reason")) ? S(x, "stopped_reason")
                                                                                         : ports;
                printf("%-34s %-12s %-10s %-12s %s\n", S(x, "id"), S(x, "service"), S(x, "task_definition"),
                       S(x, "last_status"), why);
            }
        } else if (strcmp(verb, "logs") == 0 && id && id[0] != '-') {
            return task_logs(argc, argv, id);
        } else if ((strcmp(verb, "describe") == 0 || strcmp(verb, "stop") == 0) && id) {
            bool stop = strcmp(verb, "stop") == 0;
            snprintf(path, sizeof path, "/v1/tasks/%s%s", id, stop ? "/stop" : "");
            if (!(r = call(stop ? "POST" : "GET", path, NULL)))
                return 1;
            if (js || !stop)
                return print_json(r);
            printf("task %s: %s\n", id, S(r, "last_status"));
        } else if (strcmp(verb, "exec") == 0 && id && id[0] != '-') {
            return task_exec(argc, argv, id);
        } else {
            return usage_error("task run TASKDEF [--count N] | ls [--service S] [--status S] | describe ID | stop ID | "
                               "logs ID [-f] [--tail N] | exec ID [--container NAME] [--timeout S] [-it] -- CMD...");
        }
    } else if (strcmp(noun, "node") == 0 && (strcmp(verb, "drain") == 0 || strcmp(verb, "activate") == 0)) {
        if (argc < 3 || argv[2][0] == '-')
            return usage_error("node drain NODE | node activate NODE");
        json_t *b = json_pack("{s:s}", "status", strcmp(verb, "drain") == 0 ? "DRAINING" : "ACTIVE");
        snprintf(path, sizeof path, "/v1/nodes/%s", argv[2]);
        if (!(r = send_body("PATCH", path, b)))
            return 1;
        if (js)
            return print_json(r);
        printf("node %s: %s\n", S(r, "id"), S(r, "status"));
    } else if (strcmp(noun, "node") == 0 && strcmp(verb, "ls") == 0) {
        if (!(r = call("GET", "/v1/nodes", NULL)))
            return 1;
        if (js)
            return print_json(r);
        print_nodes(json_object_get(r, "nodes"));
    } else if (strcmp(noun, "top") == 0) {
        return top(argc, argv);
    } else if (strcmp(noun, "events") == 0) {
        return events(argc, argv, js);
    } else {
        return usage_error("taskdef|service|task|node|events ...");
    }
    json_decref(r);
    return 0;
}
