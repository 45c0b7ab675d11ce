/* list.h -- an intrusive doubly linked list (a ring through a head node), as in the Linux kernel
 * and nginx: the element embeds a struct list, the container is found back with list_entry. O(1)
 * insert and unlink, no allocation. */
#ifndef BERTH_LIST_H
#define BERTH_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct list {
    struct list *next, *prev;
};

#define LIST_INIT(name) {&(name), &(name)}
#define list_entry(p, type, member) ((type *)(void *)((char *)(p) - offsetof(type, member)))
/* Walks every element; <tmp> allows unlinking <it> inside the loop. */
#define list_each(it, tmp, head) for ((it) = (head)->next, (tmp) = (it)->next; (it) != (head); (it) = (tmp), (tmp) = (it)->next)

static inline void list_init(struct list *l)
{
    l->next = l->prev = l;
}

static inline bool list_empty(const struct list *l)
{
    return l->next == l;
}

/* Inserts <e> at the tail of <head>. */
static inline void list_add_tail(struct list *head, struct list *e)
{
    e->prev = head->prev;
    e->next = head;
    head->prev->next = e;
    head->prev = e;
}

/* Inserts <e> at the head of <head>. */
static inline void list_add(struct list *head, struct list *e)
{
    list_add_tail(head->next, e);
}

/* Unlinks <e> and leaves it as an empty list (so unlinking twice is harmless). */
static inline void list_del(struct list *e)
{
    e->prev->next = e->next;
    e->next->prev = e->prev;
    list_init(e);
}

#endif
