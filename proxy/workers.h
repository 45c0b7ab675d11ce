/* workers.h -- the master of several worker processes (workers.c). */
#ifndef BERTH_PROXY_WORKERS_H
#define BERTH_PROXY_WORKERS_H

#include "config.h"

/* Runs conf->workers worker processes (<worker_argv> with the report-pipe fd put at <fd_slot>) and
 * the public admin API that fans out to them; returns the exit code. */
int proxy_master_run(const struct proxy_config *conf, char *const *worker_argv, int fd_slot);

#endif
