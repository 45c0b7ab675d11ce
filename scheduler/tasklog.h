/* tasklog.h -- task log files written by the process runtime (tasklog.c). */
#ifndef BERTH_SCHED_TASKLOG_H
#define BERTH_SCHED_TASKLOG_H

#include <stddef.h>

#include "berth/buf.h"

/* Appends the last <max> bytes of log file <path> to <out>; 0, or -1 when it cannot be read. */
int tasklog_tail(const char *path, struct buf *out, size_t max);
/* Cuts log file <path>, when longer than <max>, back to its last <keep_max> bytes (from a line start,
 * after a line saying how much was dropped), in place: a task writes with O_APPEND, so its next write
 * lands at the new end (what logrotate's copytruncate does). */
void tasklog_cap(const char *path, size_t max, size_t keep_max);

#endif
