/* dns.h -- target-group members from DNS names (dns.c): SRV or A/AAAA records, resolved with c-ares
 * and re-resolved at their TTL. A failed lookup keeps the last good members. */
#ifndef BERTH_PROXY_DNS_H
#define BERTH_PROXY_DNS_H

#include <ev.h>
#include <stddef.h>

#include "config.h"

struct proxy_dns;
/* Each round's members (the union over the group's dns targets). */
typedef void (*proxy_dns_members_cb)(void *arg, const struct proxy_target_conf *t, size_t n);

/* Starts resolving the dns targets of <conf> (borrowed until proxy_dns_stop); NULL when it has none,
 * or when the resolver cannot start (logged). */
struct proxy_dns *proxy_dns_start(struct ev_loop *loop, const struct proxy_tg_conf *conf, proxy_dns_members_cb cb,
                                  void *arg);
/* Stops (NULL: nothing); pending lookups end without callbacks. */
void proxy_dns_stop(struct proxy_dns *d);

#endif
