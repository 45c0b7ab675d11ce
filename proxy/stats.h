/* stats.h -- what the proxy records of each request: per-group status classes and latency histogram
 * (what /metrics shows), and the access log, buffered and flushed every 0.2 s (stats.c). */
#ifndef BERTH_PROXY_STATS_H
#define BERTH_PROXY_STATS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "rules.h"

#include "tgroup.h"

struct proxy;

/* Upper bounds (seconds) of the latency buckets; the last bucket is +Inf. */
extern const double proxy_lat_bounds[LAT_BUCKETS - 1];

/* A request on group <tg> ended with <status> after <seconds>. */
void proxy_stats_observe(struct proxy_tg *tg, int status, double seconds);
/* Appends one line to the access log. */
void proxy_access_log(struct proxy *px, const char *line, size_t len);
/* An access log entry for a request starting (what is known at its start). */
json_t *proxy_access_begin(const char *client, const struct proxy_reqinfo *ri, const char *request_id,
                           const char *listener);
/* Completes <entry> (stolen) with how the request ended and appends it to the log. */
void proxy_access_end(struct proxy *px, json_t *entry, int status, double seconds, uint64_t bytes_out,
                      const char *target);
/* Writes out what is buffered. */
void proxy_access_flush(struct proxy *px);

#endif
