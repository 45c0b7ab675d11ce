/* validate.c -- task definition and service validation: table-driven, defaults filled in, errors name the path. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/config.h"
#include "berth/util.h"
#include "placement.h"
#include "validate.h"

enum jkind { J_INT, J_NUM, J_BOOL, J_LABEL, J_STR, J_STRARR, J_STRMAP, J_OBJ, J_OBJARR, J_ENUM, J_NUMPAIR };

struct jfield {
    const char *name;
    enum jkind kind;
    double min, max;
    const char *def; /* default as JSON text; NULL: none */
    bool required;
    const struct jfield *sub;   /* J_OBJ, J_OBJARR */
    const char *const *choices; /* J_ENUM */
};

static int check(json_t *obj, const char *path, const struct jfield *fields, char **err);

static int check_value(json_t *v, const char *p, const struct jfield *f, char **err)
{
    switch (f->kind) {
    case J_INT:
        if (!json_is_integer(v) || json_integer_value(v) < f->min || json_integer_value(v) > f->max)
            return cfg_error(err, p, "must be an integer %.0f..%.0f", f->min, f->max);
        return 0;
    case J_NUM:
        if (!json_is_number(v) || json_number_value(v) < f->min || json_number_value(v) > f->max)
            return cfg_error(err, p, "must be a number %g..%g", f->min, f->max);
        return 0;
    case J_BOOL:
        return json_is_boolean(v) ? 0 : cfg_error(err, p, "must be true or false");
    case J_NUMPAIR: /* [LOW, HIGH] integers within [min, max] */
        if (!json_is_array(v) || json_array_size(v) != 2 || !json_is_integer(json_array_get(v, 0)) ||
            !json_is_integer(json_array_get(v, 1)) || json_integer_value(json_array_get(v, 0)) < f->min ||
            json_integer_value(json_array_get(v, 0)) > json_integer_value(json_array_get(v, 1)) ||
            json_integer_value(json_array_get(v, 1)) > f->max)
            return cfg_error(err, p, "must be [LOW, HIGH] with %.0f <= LOW <= HIGH <= %.0f", f->min, f->max);
        return 0;
    case J_LABEL:
        if (!json_is_string(v) || !util_dns_label(json_string_value(v)))
            return cfg_error(err, p, "must be 1-63 letters, digits, '-' or '_'");
        return 0;
    case J_STR:
        return json_is_string(v) && json_string_length(v) ? 0 : cfg_error(err, p, "must be a non-empty string");
    case J_ENUM: {
        char list[256] = "";
        for (int i = 0; f->choices[i]; i++) {
            if (json_is_string(v) && strcmp(json_string_value(v), f->choices[i]) == 0)
                return 0;
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", f->choices[i]);
        }
        return cfg_error(err, p, "must be one of %s", list);
    }
    case J_STRARR: {
        if (!json_is_array(v) || json_array_size(v) < (size_t)f->min)
            return cfg_error(err, p, "must be an array of strings%s", f->min ? " (not empty)" : "");
        for (size_t i = 0; i < json_array_size(v); i++)
            if (!json_is_string(json_array_get(v, i))) {
                char q[512];
                cfg_path_index(q, sizeof q, p, i);
                return cfg_error(err, q, "must be a string");
            }
        return 0;
    }
    case J_STRMAP: {
        if (!json_is_object(v))
            return cfg_error(err, p, "must be an object of strings");
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x) {
            if (!json_is_string(x)) {
                char q[512];
                cfg_path_key(q, sizeof q, p, k);
                return cfg_error(err, q, "must be a string");
            }
        }
        return 0;
    }
    case J_OBJ:
        return check(v, p, f->sub, err);
    case J_OBJARR:
        if (!json_is_array(v) || json_array_size(v) < (size_t)f->min)
            return cfg_error(err, p, "must be an array of objects%s", f->min ? " (not empty)" : "");
        for (size_t i = 0; i < json_array_size(v); i++) {
            char q[512];
            cfg_path_index(q, sizeof q, p, i);
            if (check(json_array_get(v, i), q, f->sub, err) < 0)
                return -1;
        }
        return 0;
    }
    return 0;
}

/* Validates <obj> against <fields>, adding defaults for absent keys. */
static int check(json_t *obj, const char *path, const struct jfield *fields, char **err)
{
    char p[512];
    if (!json_is_object(obj))
        return cfg_error(err, path, "must be an object");
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        const struct jfield *f = fields;
        while (f->name && strcmp(f->name, key) != 0)
            f++;
        if (!f->name) {
            cfg_path_key(p, sizeof p, path, key);
            return cfg_error(err, p, "unknown field");
        }
    }
    for (const struct jfield *f = fields; f->name; f++) {
        cfg_path_key(p, sizeof p, path, f->name);
        v = json_object_get(obj, f->name);
        if (!v && f->required)
            return cfg_error(err, p, "is required");
        if (!v && f->def) {
            v = json_loads(f->def, JSON_DECODE_ANY, NULL);
            json_object_set_new(obj, f->name, v);
        }
        if (v && check_value(v, p, f, err) < 0)
            return -1;
    }
    return 0;
}

static const struct jfield health_fields[] = {
    {"command", J_STRARR, 1, 0, NULL, true, NULL, NULL},       {"interval_s", J_NUM, 1, 300, "30", false, NULL, NULL},
    {"timeout_s", J_NUM, 1, 60, "5", false, NULL, NULL},       {"retries", J_INT, 1, 10, "3", false, NULL, NULL},
    {"start_period_s", J_NUM, 0, 300, "0", false, NULL, NULL}, {.name = NULL},
};
static const struct jfield port_fields[] = {
    {"name", J_LABEL, 0, 0, NULL, true, NULL, NULL},
    {"container_port", J_INT, 1, 65535, NULL, false, NULL, NULL},
    {.name = NULL},
};
static const struct jfield mount_fields[] = {
    {"source_volume", J_LABEL, 0, 0, NULL, true, NULL, NULL},
    {"container_path", J_STR, 0, 0, NULL, true, NULL, NULL},
    {"read_only", J_BOOL, 0, 0, "false", false, NULL, NULL},
    {.name = NULL},
};
static const char *const ulimit_names[] = {"core",   "cpu",    "data",  "fsize",  "locks",   "memlock", "msgqueue",
                                           "nice",   "nofile", "nproc", "rss",    "rtprio",  "rttime",  "sigpending",
                                           "stack",  NULL};
static const struct jfield ulimit_fields[] = {
    {"name", J_ENUM, 0, 0, NULL, true, NULL, ulimit_names},
    {"soft", J_INT, 0, 1e12, NULL, true, NULL, NULL},
    {"hard", J_INT, 0, 1e12, NULL, true, NULL, NULL},
    {.name = NULL},
};
static const struct jfield container_fields[] = {
    {"name", J_LABEL, 0, 0, NULL, true, NULL, NULL},
    {"image", J_STR, 0, 0, NULL, false, NULL, NULL},
    {"entry_point", J_STRARR, 0, 0, NULL, false, NULL, NULL},
    {"command", J_STRARR, 1, 0, NULL, false, NULL, NULL},
    {"working_directory", J_STR, 0, 0, NULL, false, NULL, NULL},
    {"user", J_STR, 0, 0, NULL, false, NULL, NULL},
    {"readonly_root_filesystem", J_BOOL, 0, 0, NULL, false, NULL, NULL},
    {"mount_points", J_OBJARR, 0, 0, NULL, false, mount_fields, NULL},
    {"ulimits", J_OBJARR, 0, 0, NULL, false, ulimit_fields, NULL},
    {"environment", J_STRMAP, 0, 0, "{}", false, NULL, NULL},
    {"cpu", J_INT, 0, 65536, "0", false, NULL, NULL},
    {"memory_mib", J_INT, 0, 1048576, "0", false, NULL, NULL},
    {"essential", J_BOOL, 0, 0, "true", false, NULL, NULL},
    {"stop_timeout_s", J_NUM, 0, 120, "10", false, NULL, NULL},
    {"port_mappings", J_OBJARR, 0, 0, "[]", false, port_fields, NULL},
    {"health_check", J_OBJ, 0, 0, NULL, false, health_fields, NULL},
    {.name = NULL},
};
static const struct jfield volume_host_fields[] = {
    {"source_path", J_STR, 0, 0, NULL, true, NULL, NULL},
    {.name = NULL},
};
static const struct jfield volume_fields[] = {
    {"name", J_LABEL, 0, 0, NULL, true, NULL, NULL},
    {"host", J_OBJ, 0, 0, NULL, false, volume_host_fields, NULL},
    {.name = NULL},
};
static const char *const network_modes[] = {"bridge", "host", NULL};
static const struct jfield taskdef_fields[] = {
    {"family", J_LABEL, 0, 0, NULL, true, NULL, NULL},
    {"network_mode", J_ENUM, 0, 0, NULL, false, NULL, network_modes},
    {"containers", J_OBJARR, 1, 0, NULL, true, container_fields, NULL},
    {"volumes", J_OBJARR, 0, 0, NULL, false, volume_fields, NULL},
    {.name = NULL},
};

/* The fields of a container that only an image has. */
static const char *const image_only[] = {"entry_point", "working_directory", "user", "readonly_root_filesystem",
                                         "mount_points", "ulimits", NULL};

/* SPEC §5: a definition's containers all run images or none does; what each kind needs. 0, or -1 with *err. */
static int check_images(json_t *td, char **err)
{
    json_t *cs = json_object_get(td, "containers"), *c, *x;
    json_t *vols = json_object();
    size_t i, k;
    char p[160];
    bool images = json_object_get(json_array_get(cs, 0), "image") != NULL;
    const char *mode = json_string_value(json_object_get(td, "network_mode"));
    int rc = -1;
    json_array_foreach(json_object_get(td, "volumes"), k, x) {
        const char *sp = json_string_value(json_object_get(json_object_get(x, "host"), "source_path"));
        snprintf(p, sizeof p, "volumes[%zu]", k);
        if (json_object_get(vols, json_string_value(json_object_get(x, "name")))) {
            cfg_error(err, p, "\"%s\" names another volume too", json_string_value(json_object_get(x, "name")));
            goto out;
        }
        if (sp && sp[0] != '/') {
            cfg_error(err, p, "host.source_path must be an absolute path");
            goto out;
        }
        json_object_set_new(vols, json_string_value(json_object_get(x, "name")), json_true());
    }
    if (!images && (mode || json_object_get(td, "volumes"))) {
        cfg_error(err, mode ? "network_mode" : "volumes", "only for task definitions whose containers name an image");
        goto out;
    }
    json_array_foreach(cs, i, c) {
        snprintf(p, sizeof p, "containers[%zu]", i);
        const char *image = json_string_value(json_object_get(c, "image"));
        if ((image != NULL) != images) {
            cfg_error(err, p, "either every container of a task definition names an image, or none does");
            goto out;
        }
        if (!image) {
            if (!json_object_get(c, "command")) { /* a host process: what it runs */
                snprintf(p, sizeof p, "containers[%zu].command", i);
                cfg_error(err, p, "is required");
                goto out;
            }
            for (int f = 0; image_only[f]; f++)
                if (json_object_get(c, image_only[f])) {
                    snprintf(p, sizeof p, "containers[%zu].%s", i, image_only[f]);
                    cfg_error(err, p, "only for containers that name an image");
                    goto out;
                }
            continue;
        }
        if (strpbrk(image, " \t\r\n") || image[0] == '-' || image[0] == '/') {
            snprintf(p, sizeof p, "containers[%zu].image", i);
            cfg_error(err, p, "\"%s\" is not an image reference (like registry:5000/repo/name:tag)", image);
            goto out;
        }
        json_array_foreach(json_object_get(c, "port_mappings"), k, x) {
            bool has = json_object_get(x, "container_port") != NULL;
            snprintf(p, sizeof p, "containers[%zu].port_mappings[%zu].container_port", i, k);
            if (!has && (!mode || strcmp(mode, "bridge") == 0)) {
                cfg_error(err, p, "is required in network_mode bridge (the port the container listens on)");
                goto out;
            }
            if (has && mode && strcmp(mode, "host") == 0) {
                cfg_error(err, p, "not in network_mode host: the container listens on the host port it gets in PORT");
                goto out;
            }
        }
        json_array_foreach(json_object_get(c, "mount_points"), k, x) {
            snprintf(p, sizeof p, "containers[%zu].mount_points[%zu]", i, k);
            if (!json_object_get(vols, json_string_value(json_object_get(x, "source_volume")))) {
                cfg_error(err, p, "source_volume \"%s\" is not one of the task definition's volumes",
                          json_string_value(json_object_get(x, "source_volume")));
                goto out;
            }
            if (json_string_value(json_object_get(x, "container_path"))[0] != '/') {
                cfg_error(err, p, "container_path must be an absolute path");
                goto out;
            }
        }
        json_array_foreach(json_object_get(c, "ulimits"), k, x) {
            snprintf(p, sizeof p, "containers[%zu].ulimits[%zu]", i, k);
            if (json_integer_value(json_object_get(x, "soft")) > json_integer_value(json_object_get(x, "hard"))) {
                cfg_error(err, p, "soft must not be above hard");
                goto out;
            }
        }
        json_t *cmd = json_object_get(json_object_get(c, "health_check"), "command");
        const char *first = json_string_value(json_array_get(cmd, 0));
        if (cmd && (!first || (strcmp(first, "CMD") != 0 && strcmp(first, "CMD-SHELL") != 0) ||
                    json_array_size(cmd) < 2 || (strcmp(first, "CMD-SHELL") == 0 && json_array_size(cmd) != 2))) {
            snprintf(p, sizeof p, "containers[%zu].health_check.command", i);
            cfg_error(err, p, "must be [\"CMD\", argv...] or [\"CMD-SHELL\", \"command line\"] (it runs in the container)");
            goto out;
        }
    }
    if (images && !mode)
        json_object_set_new(td, "network_mode", json_string("bridge"));
    rc = 0;
out:
    json_decref(vols);
    return rc;
}

json_t *sched_taskdef_validate(json_t *body, char **err)
{
    json_t *td = json_deep_copy(body);
    if (check(td, "", taskdef_fields, err) < 0 || check_images(td, err) < 0)
        goto fail;
    json_t *cs = json_object_get(td, "containers"), *c;
    size_t i;
    bool essential = false;
    json_t *names = json_object(), *ports = json_object();
    json_array_foreach(cs, i, c) {
        char p[128];
        const char *name = json_string_value(json_object_get(c, "name"));
        snprintf(p, sizeof p, "containers[%zu].name", i);
        if (json_object_get(names, name)) {
            cfg_error(err, p, "\"%s\" is used by another container", name);
            goto fail_names;
        }
        json_object_set_new(names, name, json_true());
        essential |= json_is_true(json_object_get(c, "essential"));
        json_t *pm;
        size_t k;
        json_array_foreach(json_object_get(c, "port_mappings"), k, pm) {
            const char *pn = json_string_value(json_object_get(pm, "name"));
            snprintf(p, sizeof p, "containers[%zu].port_mappings[%zu].name", i, k);
            if (json_object_get(ports, pn)) {
                cfg_error(err, p, "\"%s\" is used by another port mapping", pn);
                goto fail_names;
            }
            json_object_set_new(ports, pn, json_true());
        }
    }
    json_decref(names);
    json_decref(ports);
    if (!essential) {
        cfg_error(err, "containers", "at least one container must be essential");
        goto fail;
    }
    return td;
fail_names:
    json_decref(names);
    json_decref(ports);
fail:
    json_decref(td);
    return NULL;
}

static const char *const strategy_types[] = {"spread", "binpack", "random", NULL};
static const char *const constraint_types[] = {"distinct_instance", "member_of", NULL};
static const char *const metrics[] = {"request_count_per_target", NULL};

static const struct jfield breaker_fields[] = {
    {"enable", J_BOOL, 0, 0, "false", false, NULL, NULL},
    {"rollback", J_BOOL, 0, 0, "false", false, NULL, NULL},
    {.name = NULL},
};
static const struct jfield deployment_fields[] = {
    {"minimum_healthy_percent", J_INT, 0, 100, "100", false, NULL, NULL},
    {"maximum_percent", J_INT, 100, 200, "200", false, NULL, NULL},
    {"circuit_breaker", J_OBJ, 0, 0, "{}", false, breaker_fields, NULL},
    {.name = NULL},
};
static const struct jfield strategy_fields[] = {
    {"type", J_ENUM, 0, 0, NULL, true, NULL, strategy_types},
    {"field", J_STR, 0, 0, NULL, false, NULL, NULL},
    {.name = NULL},
};
static const struct jfield constraint_fields[] = {
    {"type", J_ENUM, 0, 0, NULL, true, NULL, constraint_types},
    {"expression", J_STR, 0, 0, NULL, false, NULL, NULL},
    {.name = NULL},
};
/* The proxy health check of a target group the scheduler creates (berth's extension of the SPEC):
 * quicker than the proxy's defaults, so a new task takes traffic about a second after it starts. */
static const struct jfield lb_hc_fields[] = {
    {"path", J_STR, 0, 0, "\"/\"", false, NULL, NULL},
    {"interval_s", J_NUM, 0.1, 300, "1", false, NULL, NULL},
    {"timeout_s", J_NUM, 0.05, 120, "0.5", false, NULL, NULL},
    {"healthy_threshold", J_INT, 1, 10, "1", false, NULL, NULL},
    {"unhealthy_threshold", J_INT, 1, 10, "3", false, NULL, NULL},
    {"matcher", J_STR, 0, 0, "\"200-399\"", false, NULL, NULL},
    {.name = NULL},
};
static const struct jfield lb_fields[] = {
    {"target_group", J_STR, 0, 0, NULL, true, NULL, NULL},
    {"container_name", J_LABEL, 0, 0, NULL, true, NULL, NULL},
    {"port_name", J_LABEL, 0, 0, NULL, true, NULL, NULL},
    {"host_header", J_STRARR, 0, 0, NULL, false, NULL, NULL},
    {"health_check", J_OBJ, 0, 0, "{}", false, lb_hc_fields, NULL},
    {.name = NULL},
};
static const struct jfield registry_fields[] = {
    {"namespace", J_STR, 0, 0, "\"berth.internal\"", false, NULL, NULL},
    {"name", J_LABEL, 0, 0, NULL, true, NULL, NULL},
    {"port_name", J_LABEL, 0, 0, NULL, false, NULL, NULL},
    {.name = NULL},
};
static const struct jfield tracking_fields[] = {
    {"metric", J_ENUM, 0, 0, "\"request_count_per_target\"", false, NULL, metrics},
    {"target_per_s", J_NUM, 0.001, 1e9, NULL, true, NULL, NULL},
    {.name = NULL},
};
static const struct jfield autoscaling_fields[] = {
    {"min", J_INT, 0, 10000, "1", false, NULL, NULL},
    {"max", J_INT, 1, 10000, NULL, true, NULL, NULL},
    {"target_tracking", J_OBJ, 0, 0, NULL, true, tracking_fields, NULL},
    {"scale_out_cooldown_s", J_NUM, 0, 3600, "10", false, NULL, NULL},
    {"scale_in_cooldown_s", J_NUM, 0, 3600, "60", false, NULL, NULL},
    {.name = NULL},
};
static const struct jfield service_fields[] = {
    {"name", J_LABEL, 0, 0, NULL, true, NULL, NULL},
    {"task_definition", J_STR, 0, 0, NULL, true, NULL, NULL},
    {"desired_count", J_INT, 0, 10000, "1", false, NULL, NULL},
    {"deployment", J_OBJ, 0, 0, "{}", false, deployment_fields, NULL},
    {"health_check_grace_period_s", J_NUM, 0, 3600, "0", false, NULL, NULL},
    {"placement_strategy", J_OBJARR, 0, 0, "[]", false, strategy_fields, NULL},
    {"placement_constraints", J_OBJARR, 0, 0, "[]", false, constraint_fields, NULL},
    {"load_balancers", J_OBJARR, 0, 0, "[]", false, lb_fields, NULL},
    {"service_registries", J_OBJARR, 0, 0, "[]", false, registry_fields, NULL},
    {"autoscaling", J_OBJ, 0, 0, NULL, false, autoscaling_fields, NULL},
    {.name = NULL},
};

json_t *sched_service_validate(json_t *body, char *(*resolve)(void *ctx, const char *ref), void *ctx, char **err)
{
    json_t *svc = json_deep_copy(body);
    if (check(svc, "", service_fields, err) < 0)
        goto fail;
    const char *ref = json_string_value(json_object_get(svc, "task_definition"));
    char *canon = resolve(ctx, ref);
    if (!canon) {
        cfg_error(err, "task_definition", "no active task definition \"%s\"", ref);
        goto fail;
    }
    json_object_set_new(svc, "task_definition", json_string(canon));
    free(canon);
    json_t *as = json_object_get(svc, "autoscaling");
    if (as && json_integer_value(json_object_get(as, "max")) < json_integer_value(json_object_get(as, "min"))) {
        cfg_error(err, "autoscaling.max", "must be at least autoscaling.min");
        goto fail;
    }
    if (as && !json_array_size(json_object_get(svc, "load_balancers"))) {
        cfg_error(err, "autoscaling", "needs load_balancers: the request rates come from the proxy's target groups");
        goto fail;
    }
    json_t *c;
    size_t i;
    json_array_foreach(json_object_get(svc, "load_balancers"), i, c) {
        json_t *hc = json_object_get(c, "health_check");
        if (json_number_value(json_object_get(hc, "timeout_s")) >=
            json_number_value(json_object_get(hc, "interval_s"))) {
            char p[128];
            snprintf(p, sizeof p, "load_balancers[%zu].health_check.timeout_s", i);
            cfg_error(err, p, "must be less than interval_s");
            goto fail;
        }
    }
    json_array_foreach(json_object_get(svc, "placement_constraints"), i, c) {
        char p[128];
        snprintf(p, sizeof p, "placement_constraints[%zu].expression", i);
        bool member_of = strcmp(json_string_value(json_object_get(c, "type")), "member_of") == 0;
        const char *expr = json_string_value(json_object_get(c, "expression"));
        if (member_of && !expr) {
            cfg_error(err, p, "is required for member_of");
            goto fail;
        }
        char *perr = NULL;
        struct pl_expr *e = expr ? pl_expr_parse(expr, &perr) : NULL;
        pl_expr_free(e);
        if (perr) {
            cfg_error(err, p, "%s", perr);
            free(perr);
            goto fail;
        }
    }
    json_array_foreach(json_object_get(svc, "placement_strategy"), i, c) {
        const char *type = json_string_value(json_object_get(c, "type"));
        const char *field = json_string_value(json_object_get(c, "field"));
        char p[128];
        snprintf(p, sizeof p, "placement_strategy[%zu].field", i);
        if (strcmp(type, "binpack") == 0 && (!field || (strcmp(field, "cpu") != 0 && strcmp(field, "memory") != 0))) {
            cfg_error(err, p, "binpack needs cpu or memory");
            goto fail;
        }
        if (strcmp(type, "spread") == 0 && field && strcmp(field, "instanceId") != 0 &&
            (strncmp(field, "attribute:", 10) != 0 || !field[10])) {
            cfg_error(err, p, "spread needs instanceId or attribute:NAME");
            goto fail;
        }
    }
    return svc;
fail:
    json_decref(svc);
    return NULL;
}

static const struct jfield node_fields[] = {
    {"id", J_LABEL, 0, 0, NULL, true, NULL, NULL},
    {"cpu", J_INT, 1, 1 << 24, NULL, true, NULL, NULL},
    {"memory_mib", J_INT, 1, 1 << 30, NULL, true, NULL, NULL},
    {"attributes", J_STRMAP, 0, 0, "{}", false, NULL, NULL},
    {"port_range", J_NUMPAIR, 1024, 65535, "[32000, 60999]", false, NULL, NULL},
    {"address", J_STR, 0, 0, "\"127.0.0.1\"", false, NULL, NULL},
    {"agent_api", J_STR, 0, 0, NULL, false, NULL, NULL},
    {"cgroups", J_STR, 0, 0, NULL, false, NULL, NULL},
    {"container_engine", J_STR, 0, 0, NULL, false, NULL, NULL},
    {"container_engine_error", J_STR, 0, 0, NULL, false, NULL, NULL},
    {.name = NULL},
};

json_t *sched_node_validate(json_t *body, char **err)
{
    json_t *n = json_deep_copy(body);
    if (check(n, "", node_fields, err) < 0) {
        json_decref(n);
        return NULL;
    }
    return n;
}
