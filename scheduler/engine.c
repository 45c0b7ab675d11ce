/* engine.c -- Docker Engine API client over a unix socket (see engine.h). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/alloc.h"
#include "berth/httpc.h"
#include "engine.h"

#define ENGINE_API "/v1.41"

struct engine_call {
    struct httpc_req *req; /* NULL when it could not start: <failed> answers */
    struct ev_loop *loop;
    ev_timer failed;
    engine_cb done;
    engine_data_cb data;
    void *arg;
    /* Docker's stream framing: an 8-byte header (stream, 0, 0, 0, big-endian length), then the data. */
    unsigned char head[8];
    size_t head_len;
    uint32_t left;
    int stream;
    bool raw; /* the body as it comes (not Docker's stream framing) */
    void (*opened)(void *arg);
};

static void on_body(void *arg, const char *p, size_t n)
{
    struct engine_call *c = arg;
    if (n == 0) { /* the engine has answered: the stream is open */
        if (c->opened)
            c->opened(c->arg);
        return;
    }
    if (c->raw) {
        c->data(c->arg, 0, p, n);
        return;
    }
    while (n) {
        if (c->left == 0) {
            size_t take = sizeof c->head - c->head_len < n ? sizeof c->head - c->head_len : n;
            memcpy(c->head + c->head_len, p, take);
            c->head_len += take;
            p += take;
            n -= take;
            if (c->head_len < sizeof c->head)
                return;
            c->head_len = 0;
            c->stream = c->head[0] == 2 ? 2 : 1;
            c->left = (uint32_t)c->head[4] << 24 | (uint32_t)c->head[5] << 16 | (uint32_t)c->head[6] << 8 | c->head[7];
            continue;
        }
        size_t take = c->left < n ? c->left : n;
        c->data(c->arg, c->stream, p, take);
        c->left -= (uint32_t)take;
        p += take;
        n -= take;
    }
}

/* A body of JSON lines (an image pull's progress): the first line that reports an error, else NULL. */
static json_t *error_line(const char *p, size_t len)
{
    const char *end = p + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        json_t *line = json_loadb(p, n, 0, NULL);
        if (json_object_get(line, "error"))
            return line;
        json_decref(line);
        p += n + 1;
    }
    return NULL;
}

static void on_response(const struct httpc_response *resp, const char *err, void *arg)
{
    struct engine_call *c = arg;
    json_t *body = resp && resp->body_len ? json_loadb(resp->body, resp->body_len, 0, NULL) : NULL;
    if (resp && resp->body_len && !body)
        body = error_line(resp->body, resp->body_len);
    char msg[300];
    if (!resp)
        snprintf(msg, sizeof msg, "container engine: %s", err);
    c->done(c->arg, resp ? resp->status : 0, body, resp ? NULL : msg);
    json_decref(body);
    free(c);
}

static struct engine_call *start(struct engine *e, const char *method, const char *path, json_t *body,
                                 double timeout_s, engine_data_cb data, engine_cb done, void *arg)
{
    struct engine_call *c = xcalloc(1, sizeof *c);
    c->done = done;
    c->data = data;
    c->arg = arg;
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    char full[2048];
    snprintf(full, sizeof full, ENGINE_API "%s", path);
    c->req = httpc_request(e->loop, &e->addr, method, "engine", NULL, full, "application/json", text,
                           text ? strlen(text) : 0, timeout_s, on_response, c);
    free(text);
    if (c->req && data)
        httpc_on_body(c->req, on_body);
    return c;
}

/* A call that could not start is answered on the next loop iteration, as any other failure. */
static void failed_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct engine_call *c = w->data;
    c->done(c->arg, 0, NULL, "container engine: cannot connect to its socket");
    free(c);
}

static struct engine_call *call(struct engine *e, const char *method, const char *path, json_t *body,
                                double timeout_s, engine_data_cb data, engine_cb done, void *arg)
{
    struct engine_call *c = start(e, method, path, body, timeout_s, data, done, arg);
    if (!c->req) {
        c->loop = e->loop;
        ev_timer_init(&c->failed, failed_cb, 0, 0);
        c->failed.data = c;
        ev_timer_start(e->loop, &c->failed);
    }
    return c;
}

struct engine_call *engine_call(struct engine *e, const char *method, const char *path, json_t *body,
                                double timeout_s, engine_cb done, void *arg)
{
    return call(e, method, path, body, timeout_s, NULL, done, arg);
}

struct engine_call *engine_stream(struct engine *e, const char *method, const char *path, json_t *body,
                                  double timeout_s, engine_data_cb data, engine_cb done, void *arg)
{
    return call(e, method, path, body, timeout_s, data, done, arg);
}

struct engine_call *engine_stream_raw(struct engine *e, const char *method, const char *path, json_t *body,
                                      double timeout_s, engine_data_cb data, engine_cb done, void *arg)
{
    struct engine_call *c = call(e, method, path, body, timeout_s, data, done, arg);
    c->raw = true;
    return c;
}

struct engine_call *engine_attach(struct engine *e, const char *cid, engine_data_cb data, void (*opened)(void *arg),
                                  engine_cb done, void *arg)
{
    char path[200];
    snprintf(path, sizeof path, "/containers/%s/attach?stream=1&stdout=1&stderr=1", cid);
    struct engine_call *c = call(e, "POST", path, NULL, 1e8, data, done, arg);
    c->opened = opened;
    return c;
}

void engine_write(struct engine_call *c, const char *data, size_t len)
{
    if (c && c->req)
        httpc_send(c->req, data, len);
}

void engine_cancel(struct engine_call *c)
{
    if (!c)
        return;
    if (c->req)
        httpc_cancel(c->req);
    else
        ev_timer_stop(c->loop, &c->failed);
    free(c);
}

const char *engine_message(json_t *body, const char *fallback)
{
    const char *m = json_string_value(json_object_get(body, "message"));
    return m && *m ? m : fallback;
}

/* ---- finding the engine ---- */

struct probe {
    int status;
    json_t *body;
    char err[300];
};

static void probe_done(void *arg, int status, json_t *body, const char *err)
{
    struct probe *p = arg;
    p->status = status;
    p->body = json_incref(body);
    snprintf(p->err, sizeof p->err, "%s", err ? err : "");
}

static int probe(struct engine *e, const char *url, char *why, size_t why_len)
{
    if (net_parse_unix(url, &e->addr) < 0) {
        snprintf(why, why_len, "container_engine \"%s\": not a unix socket URL (unix:///path)", url);
        return -1;
    }
    snprintf(e->url, sizeof e->url, "%s", url);
    struct ev_loop *main_loop = e->loop, *tmp = ev_loop_new(EVFLAG_AUTO);
    struct probe p = {.status = -1};
    e->loop = tmp;
    struct engine_call *c = start(e, "GET", "/version", NULL, 2.0, NULL, probe_done, &p);
    bool started = c->req != NULL;
    if (started)
        ev_run(tmp, 0);
    else
        free(c);
    e->loop = main_loop;
    ev_loop_destroy(tmp);
    if (!started || p.status != 200) {
        snprintf(why, why_len, "no container engine answers at %s (%s)", url,
                 !started ? "cannot connect" : p.status > 0 ? "unexpected answer to GET /version" : p.err);
        json_decref(p.body);
        return -1;
    }
    json_t *comp = json_array_get(json_object_get(p.body, "Components"), 0);
    const char *name = json_string_value(json_object_get(comp, "Name"));
    const char *ver = json_string_value(json_object_get(p.body, "Version"));
    snprintf(e->version, sizeof e->version, "%s %s", name ? name : "Docker Engine", ver ? ver : "?");
    json_decref(p.body);
    return 0;
}

int engine_open(struct engine *e, struct ev_loop *loop, const char *url, char *why, size_t why_len)
{
    memset(e, 0, sizeof *e);
    e->loop = loop;
    if (url && *url)
        return probe(e, url, why, why_len);
    char list[] = ENGINE_DEFAULT_SOCKETS, *save = NULL;
    for (char *u = strtok_r(list, " ", &save); u; u = strtok_r(NULL, " ", &save))
        if (probe(e, u, why, why_len) == 0)
            return 0;
    snprintf(why, why_len, "no container engine answers at %s", ENGINE_DEFAULT_SOCKETS);
    return -1;
}
