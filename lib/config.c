/* config.c -- table-driven JSON config reading. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/alloc.h"
#include "berth/config.h"
#include "berth/net.h"

int cfg_error(char **err, const char *path, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (err) {
        free(*err);
        if (path && *path) {
            size_t n = strlen(path) + strlen(msg) + 3;
            *err = xmalloc(n);
            if (*err)
                snprintf(*err, n, "%s: %s", path, msg);
        } else {
            *err = xstrdup(msg);
        }
    }
    return -1;
}

void cfg_path_key(char *dst, size_t size, const char *path, const char *key)
{
    if (path && *path)
        snprintf(dst, size, "%s.%s", path, key);
    else
        snprintf(dst, size, "%s", key);
}

void cfg_path_index(char *dst, size_t size, const char *path, size_t i)
{
    snprintf(dst, size, "%s[%zu]", path ? path : "", i);
}

static const char *type_name(json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE: case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

static void fmt_num(char *dst, size_t size, double v)
{
    if (v == floor(v) && fabs(v) < 1e15)
        snprintf(dst, size, "%.0f", v);
    else
        snprintf(dst, size, "%g", v);
}

static int read_field(json_t *v, const char *path, const struct cfg_field *f, void *dst, char **err)
{
    char *slot = (char *)dst + f->offset;
    char lo[32], hi[32];
    fmt_num(lo, sizeof lo, f->min);
    fmt_num(hi, sizeof hi, f->max);
    switch (f->kind) {
    case CFG_INT: {
        if (!json_is_integer(v))
            return cfg_error(err, path, "must be an integer %s..%s, got %s", lo, hi, type_name(v));
        json_int_t n = json_integer_value(v);
        if ((double)n < f->min || (double)n > f->max)
            return cfg_error(err, path, "must be %s..%s", lo, hi);
        *(int *)slot = (int)n;
        return 0;
    }
    case CFG_DOUBLE: {
        if (!json_is_number(v))
            return cfg_error(err, path, "must be a number %s..%s, got %s", lo, hi, type_name(v));
        double d = json_number_value(v);
        if (d < f->min || d > f->max)
            return cfg_error(err, path, "must be %s..%s", lo, hi);
        *(double *)slot = d;
        return 0;
    }
    case CFG_BOOL:
        if (!json_is_boolean(v))
            return cfg_error(err, path, "must be true or false, got %s", type_name(v));
        *(bool *)slot = json_is_true(v);
        return 0;
    case CFG_STRING:
    case CFG_ADDR: {
        if (!json_is_string(v))
            return cfg_error(err, path, "must be a string, got %s", type_name(v));
        const char *s = json_string_value(v);
        if (f->kind == CFG_ADDR) {
            struct net_addr a;
            if (net_parse_addr(s, &a) < 0)
                return cfg_error(err, path, "\"%s\" is not an address of the form IP:PORT", s);
        } else if (f->required && *s == 0) {
            return cfg_error(err, path, "must not be empty");
        }
        free(*(char **)slot);
        *(char **)slot = xstrdup(s);
        return 0;
    }
    case CFG_ENUM: {
        if (!json_is_string(v))
            return cfg_error(err, path, "must be a string, got %s", type_name(v));
        const char *s = json_string_value(v);
        for (int i = 0; f->choices[i]; i++)
            if (strcmp(f->choices[i], s) == 0) {
                *(int *)slot = i;
                return 0;
            }
        char list[256] = "";
        for (int i = 0; f->choices[i]; i++) {
            strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
            strncat(list, f->choices[i], sizeof list - strlen(list) - 1);
        }
        return cfg_error(err, path, "\"%s\" is not one of: %s", s, list);
    }
    case CFG_NESTED:
        return 0;
    case CFG_RANGE: {
        json_t *low = json_array_get(v, 0), *high = json_array_get(v, 1);
        if (!json_is_array(v) || json_array_size(v) != 2 || !json_is_integer(low) || !json_is_integer(high) ||
            json_integer_value(low) < f->min || json_integer_value(low) > json_integer_value(high) ||
            json_integer_value(high) > f->max)
            return cfg_error(err, path, "must be [LOW, HIGH] with %.0f <= LOW <= HIGH <= %.0f", f->min, f->max);
        ((int *)slot)[0] = (int)json_integer_value(low);
        ((int *)slot)[1] = (int)json_integer_value(high);
        return 0;
    }
    case CFG_STRMAP: {
        if (!json_is_object(v))
            return cfg_error(err, path, "must be an object of strings, got %s", type_name(v));
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x)
            if (!json_is_string(x))
                return cfg_error(err, path, "\"%s\" must be a string", k);
        json_decref(*(json_t **)slot);
        *(json_t **)slot = json_incref(v);
        return 0;
    }
    }
    return 0;
}

static int set_default(const struct cfg_field *f, void *dst)
{
    char *slot = (char *)dst + f->offset;
    switch (f->kind) {
    case CFG_INT: *(int *)slot = (int)f->def_num; break;
    case CFG_DOUBLE: *(double *)slot = f->def_num; break;
    case CFG_BOOL: *(bool *)slot = f->def_num != 0; break;
    case CFG_STRING:
    case CFG_ADDR:
        free(*(char **)slot);
        *(char **)slot = f->def_str ? xstrdup(f->def_str) : NULL;
        break;
    case CFG_ENUM:
        *(int *)slot = 0;
        for (int i = 0; f->def_str && f->choices[i]; i++)
            if (strcmp(f->choices[i], f->def_str) == 0)
                *(int *)slot = i;
        break;
    case CFG_NESTED: break;
    case CFG_RANGE:
        if (!f->def_str || sscanf(f->def_str, "%d-%d", &((int *)slot)[0], &((int *)slot)[1]) != 2)
            ((int *)slot)[0] = ((int *)slot)[1] = 0;
        break;
    case CFG_STRMAP:
        json_decref(*(json_t **)slot);
        *(json_t **)slot = json_object();
        break;
    }
    return 0;
}

int cfg_read(json_t *obj, const char *path, const struct cfg_field *fields, void *dst, char **err)
{
    char p[512];
    if (obj && !json_is_object(obj))
        return cfg_error(err, path, "must be an object, got %s", type_name(obj));
    if (obj) {
        const char *key;
        json_t *v;
        json_object_foreach(obj, key, v) {
            const struct cfg_field *f = fields;
            while (f->name && strcmp(f->name, key) != 0)
                f++;
            if (!f->name) {
                cfg_path_key(p, sizeof p, path, key);
                return cfg_error(err, p, "unknown key");
            }
        }
    }
    for (const struct cfg_field *f = fields; f->name; f++) {
        json_t *v = obj ? json_object_get(obj, f->name) : NULL;
        cfg_path_key(p, sizeof p, path, f->name);
        if (!v || json_is_null(v)) {
            if (f->required)
                return cfg_error(err, p, "is required");
            set_default(f, dst);
            continue;
        }
        if (read_field(v, p, f, dst, err) < 0)
            return -1;
    }
    return 0;
}

void cfg_free(const struct cfg_field *fields, void *dst)
{
    for (const struct cfg_field *f = fields; f->name; f++)
        if (f->kind == CFG_STRING || f->kind == CFG_ADDR) {
            char **slot = (char **)((char *)dst + f->offset);
            free(*slot);
            *slot = NULL;
        } else if (f->kind == CFG_STRMAP) {
            json_t **slot = (json_t **)((char *)dst + f->offset);
            json_decref(*slot);
            *slot = NULL;
        }
}

json_t *cfg_load_file(const char *file, char **err)
{
    json_error_t je;
    json_t *root = json_load_file(file, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        char where[600];
        snprintf(where, sizeof where, "%s:%d:%d", file, je.line, je.column);
        cfg_error(err, where, "%s", je.text);
    }
    return root;
}

json_t *cfg_array(json_t *v, const char *path, char **err)
{
    static json_t *empty;
    if (!v || json_is_null(v)) {
        if (!empty)
            empty = json_array();
        return empty;
    }
    if (!json_is_array(v)) {
        cfg_error(err, path, "must be an array, got %s", type_name(v));
        return NULL;
    }
    return v;
}
