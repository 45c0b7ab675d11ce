/* log.h -- leveled logging to stderr as text or JSON lines. */
#ifndef BERTH_LOG_H
#define BERTH_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Sets the program name shown in each line, the format ("text" or "json") and
 * the minimum level. Returns 0, or -1 for an unknown format. */
int log_init(const char *program, const char *format, enum log_level min);
/* Parses "debug", "info", "warn" or "error"; returns 0, or -1 for anything else. */
int log_level_parse(const char *s, enum log_level *out);
/* Writes one line at <level>. */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
