/* readyq.c -- see readyq.h. */
#include "readyq.h"

static void ready_run(struct ev_loop *loop, ev_prepare *w, int revents)
{
    struct proxy_readyq *q = w->data;
    while (q->head.next != &q->head) {
        struct proxy_ready *r = q->head.next;
        int ev = r->revents;
        proxy_ready_remove(r);
        r->fn(r, ev);
    }
}

void proxy_readyq_init(struct proxy_readyq *q, struct ev_loop *loop)
{
    q->head.next = q->head.prev = &q->head;
    ev_prepare_init(&q->watcher, ready_run);
    q->watcher.data = q;
    ev_prepare_start(loop, &q->watcher);
}
