/* exchange.h -- an exchange's bookkeeping on a client connection (exchange.c), below client.c. */
#ifndef BERTH_PROXY_EXCHANGE_H
#define BERTH_PROXY_EXCHANGE_H

#include <stdbool.h>
#include <stddef.h>

struct proxy_conn;
struct proxy_target;

/* Lets go of the exchange's upstream connection: back to its target's pool when <reuse> (and the
 * target still takes pooled connections), else closed. The one way an exchange lets go of it. */
void proxy_exchange_detach(struct proxy_conn *c, bool reuse);
/* The exchange now counts against target <t> (NULL: none), no longer against the one before. */
void proxy_exchange_target(struct proxy_conn *c, struct proxy_target *t);
/* The exchange is over: statistics, the access log line, and its group and target let go of. */
void proxy_exchange_end(struct proxy_conn *c);
/* Answers the request with a response the proxy makes (<extra>: more header lines). */
void proxy_respond(struct proxy_conn *c, int status, const char *ctype, const char *body, size_t blen,
                   const char *extra);
/* Answers with <status> and a short text body; 4xx framing errors close the connection after. */
void proxy_respond_error(struct proxy_conn *c, int status);

#endif
