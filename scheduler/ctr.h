/* ctr.h -- the container runtime's pure part: what the engine is asked to create (ctr_spec.c). */
#ifndef BERTH_SCHED_CTR_H
#define BERTH_SCHED_CTR_H

#include <jansson.h>
#include <stddef.h>

/* The nofile and nproc limits a container gets when its definition sets none (a create that sets
 * any ulimit drops the engine's defaults; and the node's hard limits cap what a container may have). */
#define CTR_NOFILE 4096
#define CTR_NPROC 4096

/* Where task <id>'s scratch volumes live: <agent_dir>/volumes/<id>. */
void ctr_volumes_dir(const char *agent_dir, const char *id, char *dst, size_t size);
/* The body of POST /containers/create for container <i> of task record <rec>: image, entry point,
 * command, environment <env> (that container's, borrowed; in bridge mode PORT and BERTH_PORT_<NAME>
 * become the container ports), user, working directory, ports published on the host ports <ports>,
 * limits, ulimits, volumes (scratch ones made under <agent_dir>), read-only root, and the labels that
 * tie it to its task, node <node_id> and agent. */
json_t *ctr_spec(json_t *rec, int i, json_t *env, json_t *ports, const char *node_id, const char *agent_dir);

#endif
