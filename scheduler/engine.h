/* engine.h -- a client of a container engine's Docker Engine API over its unix socket (Podman's API
 * service or dockerd; engine.c). Every call is asynchronous on the agent's loop, JSON in and out;
 * streamed output (logs, exec) arrives demultiplexed as it comes. */
#ifndef BERTH_SCHED_ENGINE_H
#define BERTH_SCHED_ENGINE_H

#include <ev.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "berth/net.h"

struct engine {
    struct ev_loop *loop;
    struct net_addr addr;
    char url[200];    /* unix:///run/podman/podman.sock */
    char version[80]; /* "Podman Engine 4.3.1", "Docker Engine 24.0.7" */
};

/* The sockets tried, in order, when no engine is configured. */
#define ENGINE_DEFAULT_SOCKETS "unix:///run/podman/podman.sock unix:///var/run/docker.sock"

/* Finds the engine at <url> ("unix:///path"; NULL or "": the first of ENGINE_DEFAULT_SOCKETS that
 * answers) and reads its version; blocks for at most 2 s per socket (start-up only). 0, or -1 with <why>. */
int engine_open(struct engine *e, struct ev_loop *loop, const char *url, char *why, size_t why_len);

struct engine_call;
/* Called once: <status> the HTTP status (0 when the engine could not be reached: <err> says why) and
 * <body> the JSON it answered (NULL when it was not JSON), borrowed. */
typedef void (*engine_cb)(void *arg, int status, json_t *body, const char *err);
/* Output of a streamed call: <stream> 1 stdout, 2 stderr. */
typedef void (*engine_data_cb)(void *arg, int stream, const char *data, size_t len);

/* <method> /v1.41<path> with <body> (borrowed; NULL for none), within <timeout_s>. */
struct engine_call *engine_call(struct engine *e, const char *method, const char *path, json_t *body,
                                double timeout_s, engine_cb done, void *arg);
/* As engine_call, for calls that answer a Docker multiplexed stream (logs, exec start): <data> gets the
 * output as it arrives, then <done> gets the status (body NULL). */
struct engine_call *engine_stream(struct engine *e, const char *method, const char *path, json_t *body,
                                  double timeout_s, engine_data_cb data, engine_cb done, void *arg);
/* As engine_stream, for an answer that is not framed (GET /events: JSON lines; an exec on a terminal);
 * <data> gets stream 0. */
struct engine_call *engine_stream_raw(struct engine *e, const char *method, const char *path, json_t *body,
                                      double timeout_s, engine_data_cb data, engine_cb done, void *arg);
/* Follows the output of container <cid> from now on (POST /containers/ID/attach), every byte of it
 * until its process ends, at the pace it comes (the logs API may fall behind and stop at the exit);
 * <opened> is called once the engine has answered, so the container can be started without a byte
 * written before the attach. */
struct engine_call *engine_attach(struct engine *e, const char *cid, engine_data_cb data, void (*opened)(void *arg),
                                  engine_cb done, void *arg);
/* Writes <data> to a streamed call's connection (a terminal's input to an exec). */
void engine_write(struct engine_call *c, const char *data, size_t len);
/* Drops a call; its callbacks are not called. NULL is ignored. */
void engine_cancel(struct engine_call *c);

/* The engine's error message in <body> ({"message": ...}), else <fallback>. */
const char *engine_message(json_t *body, const char *fallback);

#endif
