/* tasklog.h -- task log files, written by both runtimes (tasklog.c). */
#ifndef BERTH_SCHED_TASKLOG_H
#define BERTH_SCHED_TASKLOG_H

#include <stdbool.h>
#include <stddef.h>

#include "berth/buf.h"

/* Appends the last <max> bytes of log file <path> to <out>; 0, or -1 when it cannot be read. */
int tasklog_tail(const char *path, struct buf *out, size_t max);
/* A task's log file is cut back when it grows past TASKLOG_MAX, to its last TASKLOG_KEEP bytes. */
#define TASKLOG_MAX (8u << 20)
#define TASKLOG_KEEP (1u << 20)
/* The most a read of a log returns. */
#define TASKLOG_READ_MAX (1u << 20)
/* Appends what log file <path> holds from byte <from> on (-1: its last <max> bytes), at most <max>
 * bytes, to <out>; returns the offset after what was read. A file shorter than <from> was cut back:
 * it is read from its start and *reset set. */
long long tasklog_read(const char *path, long long from, struct buf *out, size_t max, bool *reset);
/* Cuts log file <path>, when longer than <max>, back to its last <keep_max> bytes (from a line start,
 * after a line saying how much was dropped), in place: a task writes with O_APPEND, so its next write
 * lands at the new end (what logrotate's copytruncate does). */
void tasklog_cap(const char *path, size_t max, size_t keep_max);

#endif
