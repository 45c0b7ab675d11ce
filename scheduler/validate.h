/* validate.h -- checks of API bodies: task definitions, services, node registrations (validate.c). */
#ifndef BERTH_SCHED_VALIDATE_H
#define BERTH_SCHED_VALIDATE_H

#include <jansson.h>

/* Checks a task definition body and returns its normalized form (defaults
 * filled in), or NULL with *err naming the JSON path. */
json_t *sched_taskdef_validate(json_t *body, char **err);
/* Checks a service body; <taskdef_exists> resolves "family[:rev]" to the
 * canonical "family:rev" or returns NULL. */
json_t *sched_service_validate(json_t *body, char *(*resolve)(void *ctx, const char *ref), void *ctx, char **err);

/* Checks a node registration (POST /v1/nodes) and fills in defaults; NULL with *err. */
json_t *sched_node_validate(json_t *body, char **err);

#endif
