/* dev_ctr.h -- containers for `berth dev` (dev_ctr.c). */
#ifndef BERTH_CLI_DEV_CTR_H
#define BERTH_CLI_DEV_CTR_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct dev_containers {
    char dir[PATH_MAX];             /* <berth dev's directory>/containers */
    char conf[PATH_MAX + 32], registries[PATH_MAX + 32];
    char engine_url[PATH_MAX + 32]; /* unix://.../podman.sock */
    char image[64];                 /* 127.0.0.1:PORT/demo/web:1 */
    pid_t registry_pid, engine_pid;
};

/* Starts docker-registry on a free loopback port and Podman's API service (runc, cgroupfs, that
 * registry insecure) with their state under <dir>/containers, then builds the demo image from <demo>
 * and busybox, pushes it and removes the local copy (the agent pulls it). 0, or -1 with <why> (then
 * berth dev runs its services as processes); what started is stopped by dev_containers_stop. */
int dev_containers_start(struct dev_containers *c, const char *dir, const char *demo, char *why, size_t why_len);
/* Removes what containers are left, stops the engine and the registry, unmounts the engine's storage. */
void dev_containers_stop(struct dev_containers *c);

#endif
