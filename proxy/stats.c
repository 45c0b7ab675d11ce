/* stats.c -- request statistics and the access log (see stats.h). */
#include <stdio.h>

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
