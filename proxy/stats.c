/* stats.c -- request statistics and the access log (see stats.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/util.h"

#include "proxy.h"
#include "stats.h"

const double proxy_lat_bounds[LAT_BUCKETS - 1] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                  0.25,  0.5,    1,     2.5,  5,     10};

void proxy_stats_observe(struct proxy_tg *tg, int status, double seconds)
{
    int cls = status / 100;
    if (cls >= 1 && cls <= 5)
        tg->by_class[cls]++;
    int b = 0;
    while (b < LAT_BUCKETS - 1 && seconds > proxy_lat_bounds[b])
        b++;
    tg->lat_hist[b]++;
    tg->lat_sum += seconds;
    tg->lat_count++;
}

void proxy_access_flush(struct proxy *px)
{
    if (px->access_log && px->access_buf.len) {
        fwrite(buf_head(&px->access_buf), 1, px->access_buf.len, px->access_log);
        fflush(px->access_log);
        buf_consume(&px->access_buf, px->access_buf.len);
    }
}

static void log_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    proxy_access_flush(w->data);
}

void proxy_access_log(struct proxy *px, const char *line, size_t len)
{
    if (px->access_buf.len + len + 1 > 65536)
        proxy_access_flush(px);
    buf_append(&px->access_buf, line, len);
    buf_append(&px->access_buf, "\n", 1);
    if (!ev_is_active(&px->log_timer)) {
        ev_timer_init(&px->log_timer, log_timer_cb, 0.2, 0);
        px->log_timer.data = px;
        ev_timer_start(px->loop, &px->log_timer);
    }
}

json_t *proxy_access_begin(const char *client, const struct proxy_reqinfo *ri, const char *request_id,
                           const char *listener)
{
    const struct http_msg *m = ri->m;
    return json_pack("{s:s,s:s%,s:s%,s:s%,s:s,s:s}", "client", client, "method", m->method, (size_t)m->method_len,
                     "path", m->target, (size_t)m->target_len, "host", ri->host, ri->host_len, "request_id",
                     request_id, "listener", listener);
}

void proxy_access_end(struct proxy *px, json_t *entry, int status, double seconds, uint64_t bytes_out,
                      const char *target)
{
    json_object_set_new(entry, "status", json_integer(status));
    json_object_set_new(entry, "duration_ms", json_real((double)(int64_t)(seconds * 1e6) / 1e3));
    json_object_set_new(entry, "bytes_out", json_integer((json_int_t)bytes_out));
    if (target)
        json_object_set_new(entry, "target", json_string(target));
    char ts[40];
    util_rfc3339(util_wall(), ts, sizeof ts);
    json_object_set_new(entry, "time", json_string(ts));
    char *line = json_dumps(entry, JSON_COMPACT | JSON_SORT_KEYS);
    if (line)
        proxy_access_log(px, line, strlen(line));
    free(line);
    json_decref(entry);
}
