/* readyq.h -- the FIFO of sockets that epoll reported ready (readyq.c).
 * libev invokes the watchers of one poll in reverse order, so with many busy connections the socket
 * that became ready first is served last, which widens the latency tail. I/O callbacks therefore
 * only queue the socket; an ev_prepare watcher (run after all callbacks of the iteration, before the
 * next poll) serves the queue in the order epoll reported it. */
#ifndef BERTH_PROXY_READYQ_H
#define BERTH_PROXY_READYQ_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>

struct proxy_ready {
    struct proxy_ready *next, *prev;
    void (*fn)(struct proxy_ready *r, int revents);
    int revents;
    bool queued;
};

struct proxy_readyq {
    struct proxy_ready head;
    ev_prepare watcher;
};

/* The object that embeds ready entry <r> as its member <member>. */
#define proxy_ready_owner(r, type, member) ((type *)(void *)((char *)(r) - offsetof(type, member)))

/* Starts serving <q> on <loop>. */
void proxy_readyq_init(struct proxy_readyq *q, struct ev_loop *loop);

static inline void proxy_ready_push(struct proxy_readyq *q, struct proxy_ready *r, int revents)
{
    r->revents |= revents;
    if (r->queued)
        return;
    /* Callbacks arrive in reverse epoll order: insert at the front. */
    r->queued = true;
    r->next = q->head.next;
    r->prev = &q->head;
    q->head.next->prev = r;
    q->head.next = r;
}

static inline void proxy_ready_remove(struct proxy_ready *r)
{
    if (!r->queued)
        return;
    r->prev->next = r->next;
    r->next->prev = r->prev;
    r->queued = false;
    r->revents = 0;
}

#endif
