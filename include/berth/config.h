/* config.h -- table-driven JSON config reading with errors that name the JSON path. */
#ifndef BERTH_CONFIG_H
#define BERTH_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

enum cfg_kind {
    CFG_INT,    /* int, range [min, max] */
    CFG_DOUBLE, /* double, range [min, max] */
    CFG_BOOL,   /* bool */
    CFG_STRING, /* char * (strdup'd; free with cfg_free) */
    CFG_ADDR,   /* char * holding a valid "host:port" */
    CFG_ENUM,   /* int: index into choices */
    CFG_NESTED, /* any JSON value; read by the caller, listed so the key is known */
    CFG_RANGE,  /* int[2]: [LOW, HIGH] with min <= LOW <= HIGH <= max; default def_str "LOW-HIGH" */
    CFG_STRMAP, /* json_t *: an object whose values are strings (a reference; cfg_free drops it); default {} */
};

/* One row of a config table. */
struct cfg_field {
    const char *name;
    enum cfg_kind kind;
    size_t offset; /* offsetof the destination member; unused for CFG_NESTED */
    double min, max;
    double def_num;           /* default for numbers and bools */
    const char *def_str;      /* default for strings, addresses and enums; NULL = no default */
    const char *const *choices; /* CFG_ENUM: NULL-terminated names */
    bool required;
};

/* Terminates a cfg_field table. */
#define CFG_END {.name = NULL}

/* Reads the members of JSON object <obj> (at <path>) into <dst> per <fields>
 * (terminated by a row with name NULL). Unknown keys, wrong types and
 * out-of-range values are errors. Returns 0, or -1 with *err = "path: what"
 * (malloc'd, caller frees). */
int cfg_read(json_t *obj, const char *path, const struct cfg_field *fields, void *dst, char **err);
/* Frees the strings <fields> put into <dst>. */
void cfg_free(const struct cfg_field *fields, void *dst);
/* Sets *err to "path: message" (path may be empty); returns -1. */
int cfg_error(char **err, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Writes "<path>.<key>" (or "<key>" at the root) into <dst>. */
void cfg_path_key(char *dst, size_t size, const char *path, const char *key);
/* Writes "<path>[<i>]" into <dst>. */
void cfg_path_index(char *dst, size_t size, const char *path, size_t i);
/* Loads and parses a JSON file; on failure *err names the file, line and column. */
json_t *cfg_load_file(const char *file, char **err);
/* Expects an array at <v> (or absent: returns an empty array when <v> is NULL).
 * Returns a borrowed array or NULL with *err. */
json_t *cfg_array(json_t *v, const char *path, char **err);

#endif
