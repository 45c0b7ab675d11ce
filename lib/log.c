/* log.c -- leveled logging to stderr as text or JSON lines. */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "berth/log.h"
#include "berth/util.h"

static const char *prog = "berth";
static int json_format;
static enum log_level min_level = LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

int log_init(const char *program, const char *format, enum log_level min)
{
    prog = program;
    min_level = min;
    if (!format || strcmp(format, "text") == 0)
        json_format = 0;
    else if (strcmp(format, "json") == 0)
        json_format = 1;
    else
        return -1;
    return 0;
}

int log_level_parse(const char *s, enum log_level *out)
{
    for (int i = LOG_DEBUG; i <= LOG_ERROR; i++)
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    return -1;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (level < min_level)
        return;
    char msg[2048], ts[40];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    util_rfc3339(util_wall(), ts, sizeof ts);
    if (json_format) {
        json_t *o = json_pack("{s:s,s:s,s:s,s:s}", "ts", ts, "level", level_names[level], "program", prog,
                              "msg", msg);
        char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
        if (s)
            fprintf(stderr, "%s\n", s);
        free(s);
        json_decref(o);
    } else {
        /* One event, one line: a name or path from outside cannot forge a second line. */
        char esc[sizeof msg * 2];
        fprintf(stderr, "%s %s %s: %s\n", ts, level_names[level], prog, util_log_escape(msg, esc, sizeof esc));
    }
}
