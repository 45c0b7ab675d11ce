/* ctr_spec.c -- a task definition's container as the Docker Engine API's create body (ctr.h). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ctr.h"

void ctr_volumes_dir(const char *agent_dir, const char *id, char *dst, size_t size)
{
    snprintf(dst, size, "%s/volumes/%s", agent_dir, id);
}

json_t *ctr_spec(json_t *rec, int i, json_t *cenv, json_t *ports, const char *node_id, const char *agent_dir)
{
    json_t *def = json_object_get(rec, "definition");
    json_t *c = json_array_get(json_object_get(def, "containers"), (size_t)i), *v, *pm;
    const char *id = json_string_value(json_object_get(rec, "id"));
    bool host = json_is_string(json_object_get(def, "network_mode")) &&
                strcmp(json_string_value(json_object_get(def, "network_mode")), "host") == 0;
    /* The environment: in bridge mode PORT and BERTH_PORT_<NAME> are the container's ports. */
    json_t *env = json_copy(cenv);
    json_t *exposed = json_object(), *bindings = json_object();
    size_t k;
    json_array_foreach(json_object_get(c, "port_mappings"), k, pm) {
        const char *name = json_string_value(json_object_get(pm, "name"));
        json_int_t cport = json_integer_value(json_object_get(pm, "container_port"));
        json_int_t hport = json_integer_value(json_object_get(ports, name));
        if (host || !cport)
            continue;
        char key[32], hp[16];
        snprintf(key, sizeof key, "%lld/tcp", (long long)cport);
        snprintf(hp, sizeof hp, "%lld", (long long)hport);
        json_object_set_new(exposed, key, json_object());
        json_object_set_new(bindings, key, json_pack("[{s:s,s:s}]", "HostIp", "", "HostPort", hp));
        const char *ek;
        json_t *ev;
        void *tmp;
        json_object_foreach_safe(env, tmp, ek, ev)
            if (strncmp(ek, "BERTH_PORT_", 11) == 0 || strcmp(ek, "PORT") == 0)
                if (json_integer_value(ev) == hport || atoll(json_string_value(ev) ? json_string_value(ev) : "") == hport)
                    json_object_set_new(env, ek, json_sprintf("%lld", (long long)cport));
    }
    json_t *envl = json_array();
    const char *ek;
    json_object_foreach(env, ek, v)
        json_array_append_new(envl, json_sprintf("%s=%s", ek, json_string_value(v) ? json_string_value(v) : ""));
    json_decref(env);
    /* Volumes: host paths as bind mounts; a volume without one is scratch space of the task's own. */
    json_t *binds = json_array(), *mp, *vol;
    json_array_foreach(json_object_get(c, "mount_points"), k, mp) {
        const char *src = json_string_value(json_object_get(mp, "source_volume"));
        size_t j;
        char dir[1024] = "";
        json_array_foreach(json_object_get(def, "volumes"), j, vol) {
            if (strcmp(json_string_value(json_object_get(vol, "name")), src) != 0)
                continue;
            const char *hp = json_string_value(json_object_get(json_object_get(vol, "host"), "source_path"));
            if (hp) {
                snprintf(dir, sizeof dir, "%s", hp);
            } else {
                char base[900];
                ctr_volumes_dir(agent_dir, id, base, sizeof base);
                *strrchr(base, '/') = 0;
                mkdir(base, 0755); /* <agent_dir>/volumes */
                ctr_volumes_dir(agent_dir, id, base, sizeof base);
                mkdir(base, 0755);
                snprintf(dir, sizeof dir, "%s/%s", base, src);
                mkdir(dir, 0777);
                chmod(dir, 01777); /* writable by the container's user, whoever it is */
            }
        }
        json_array_append_new(binds, json_sprintf("%s:%s%s", dir, json_string_value(json_object_get(mp, "container_path")),
                                                  json_is_true(json_object_get(mp, "read_only")) ? ":ro" : ""));
    }
    /* Limits: a create that sets Ulimits drops the engine's defaults, so nofile and nproc are always sent. */
    json_t *ulimits = json_array(), *u;
    bool nofile = false, nproc = false;
    json_array_foreach(json_object_get(c, "ulimits"), k, u) {
        const char *name = json_string_value(json_object_get(u, "name"));
        nofile = nofile || strcmp(name, "nofile") == 0;
        nproc = nproc || strcmp(name, "nproc") == 0;
        json_array_append_new(ulimits, json_pack("{s:s,s:O,s:O}", "Name", name, "Soft", json_object_get(u, "soft"), "Hard",
                                                 json_object_get(u, "hard")));
    }
    if (!nofile)
        json_array_append_new(ulimits, json_pack("{s:s,s:i,s:i}", "Name", "nofile", "Soft", CTR_NOFILE, "Hard", CTR_NOFILE));
    if (!nproc)
        json_array_append_new(ulimits, json_pack("{s:s,s:i,s:i}", "Name", "nproc", "Soft", CTR_NPROC, "Hard", CTR_NPROC));
    json_int_t mem = json_integer_value(json_object_get(c, "memory_mib")) << 20;
    json_int_t cpu = json_integer_value(json_object_get(c, "cpu"));
    json_t *hc = json_pack("{s:s,s:o,s:o,s:b,s:o,s:o}", "NetworkMode", host ? "host" : "bridge", "PortBindings", bindings,
                           "Binds", binds, "ReadonlyRootfs", json_is_true(json_object_get(c, "readonly_root_filesystem")),
                           "Ulimits", ulimits, "RestartPolicy", json_pack("{s:s}", "Name", "no"));
    if (mem) {
        json_object_set_new(hc, "Memory", json_integer(mem));
        json_object_set_new(hc, "MemorySwap", json_integer(mem)); /* no swap beyond the limit */
    }
    if (cpu) { /* 1024 units = one CPU, as a CFS quota (ECS's hard limit) */
        json_object_set_new(hc, "CpuPeriod", json_integer(100000));
        json_object_set_new(hc, "CpuQuota", json_integer(cpu * 100000 / 1024));
    }
    char index[8];
    snprintf(index, sizeof index, "%d", i);
    json_t *body = json_pack("{s:s,s:o,s:{s:s,s:s,s:s,s:s,s:s},s:o,s:o}", "Image", json_string_value(json_object_get(c, "image")), "Env", envl, "Labels",
                             "berth.task", id, "berth.container", json_string_value(json_object_get(c, "name")),
                             "berth.index", index, "berth.node", node_id, "berth.agent", agent_dir,
                             "ExposedPorts", exposed, "HostConfig", hc);
    if ((v = json_object_get(c, "entry_point")))
        json_object_set(body, "Entrypoint", v);
    if ((v = json_object_get(c, "command")))
        json_object_set(body, "Cmd", v);
    if ((v = json_object_get(c, "working_directory")))
        json_object_set(body, "WorkingDir", v);
    if ((v = json_object_get(c, "user")))
        json_object_set(body, "User", v);
    return body;
}

