/* test_ctr_spec.c -- a task definition's container as the engine's create body (ctr_spec.c): image,
 * entry point and command, the environment with container ports in bridge mode, published ports,
 * limits, ulimits (nofile and nproc always), volumes (host paths and scratch space), labels. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "berth/util.h"
#include "ctr.h"
#include "../../tap.h"

static json_t *record(const char *def_text)
{
    json_error_t e;
    json_t *def = json_loads(def_text, 0, &e);
    if (!def)
        fprintf(stderr, "bad JSON: %s\n", e.text);
    return json_pack("{s:s,s:o}", "id", "0123456789abcdef0123456789abcdef", "definition", def);
}

static const char *str(json_t *o, const char *path)
{
    char buf[256], *save = NULL;
    snprintf(buf, sizeof buf, "%s", path);
    for (char *k = strtok_r(buf, ".", &save); k && o; k = strtok_r(NULL, ".", &save))
        o = json_is_array(o) ? json_array_get(o, (size_t)atoi(k)) : json_object_get(o, k);
    return json_string_value(o);
}

static bool has_string(json_t *arr, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
        if (json_is_string(v) && strcmp(json_string_value(v), s) == 0)
            return true;
    return false;
}

int main(void)
{
    char dir[] = "/tmp/berth-ctr-spec-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    json_t *rec = record(
        "{\"family\":\"web\",\"network_mode\":\"bridge\",\"containers\":[{\"name\":\"web\",\"image\":\"r:5000/web:1\","
        "\"entry_point\":[\"/app/web\"],\"command\":[\"--greeting\",\"hi\"],\"working_directory\":\"/app\","
        "\"user\":\"1000:1000\",\"cpu\":256,\"memory_mib\":64,\"readonly_root_filesystem\":true,"
        "\"port_mappings\":[{\"name\":\"http\",\"container_port\":8080},{\"name\":\"admin\",\"container_port\":9090}],"
        "\"mount_points\":[{\"source_volume\":\"data\",\"container_path\":\"/data\",\"read_only\":true},"
        "{\"source_volume\":\"tmp\",\"container_path\":\"/scratch\"}],"
        "\"ulimits\":[{\"name\":\"nofile\",\"soft\":1024,\"hard\":2048}]}],"
        "\"volumes\":[{\"name\":\"data\",\"host\":{\"source_path\":\"/srv/data\"}},{\"name\":\"tmp\"}]}");
    json_t *env = json_pack("{s:s,s:s,s:s,s:s,s:s}", "PORT", "40001", "BERTH_PORT_HTTP", "40001", "BERTH_PORT_ADMIN",
                            "40002", "GREETING", "40001", "BERTH_TASK_ID", "0123456789abcdef0123456789abcdef");
    json_t *ports = json_pack("{s:i,s:i}", "http", 40001, "admin", 40002);
    json_t *b = ctr_spec(rec, 0, env, ports, "node-1", dir);

    is_str(str(b, "Image"), "r:5000/web:1", "the image");
    is_str(str(b, "Entrypoint.0"), "/app/web", "entry_point is the Entrypoint");
    is_str(str(b, "Cmd.1"), "hi", "command is the Cmd");
    is_str(str(b, "WorkingDir"), "/app", "working_directory");
    is_str(str(b, "User"), "1000:1000", "user");
    json_t *e = json_object_get(b, "Env");
    ok(has_string(e, "PORT=8080") && has_string(e, "BERTH_PORT_HTTP=8080") && has_string(e, "BERTH_PORT_ADMIN=9090"),
       "bridge mode: PORT and BERTH_PORT_<NAME> are the container's ports");
    ok(has_string(e, "GREETING=40001"), "the container's own variables are left alone, whatever they hold");
    is_str(str(b, "HostConfig.PortBindings.8080/tcp.0.HostPort"), "40001", "8080 is published on host port 40001");
    is_str(str(b, "HostConfig.PortBindings.9090/tcp.0.HostPort"), "40002", "9090 on 40002");
    ok(json_object_get(json_object_get(b, "ExposedPorts"), "8080/tcp") != NULL, "and exposed");
    is_str(str(b, "HostConfig.NetworkMode"), "bridge", "network mode");
    json_t *hc = json_object_get(b, "HostConfig");
    ok(json_integer_value(json_object_get(hc, "Memory")) == 64 << 20 &&
           json_integer_value(json_object_get(hc, "MemorySwap")) == 64 << 20,
       "memory_mib: a hard limit without swap");
    ok(json_integer_value(json_object_get(hc, "CpuQuota")) * 4 == json_integer_value(json_object_get(hc, "CpuPeriod")),
       "cpu 256: a quarter of a CPU's period");
    ok(json_is_true(json_object_get(hc, "ReadonlyRootfs")), "read-only root");
    json_t *ul = json_object_get(hc, "Ulimits");
    ok(json_array_size(ul) == 2 && !strcmp(str(ul, "0.Name"), "nofile") &&
           json_integer_value(json_object_get(json_array_get(ul, 0), "Hard")) == 2048 && !strcmp(str(ul, "1.Name"), "nproc"),
       "ulimits: the given nofile, and nproc added (a create with Ulimits drops the engine's defaults)");
    json_t *binds = json_object_get(hc, "Binds");
    char scratch[300], want[400];
    snprintf(scratch, sizeof scratch, "%s/volumes/0123456789abcdef0123456789abcdef/tmp", dir);
    snprintf(want, sizeof want, "%s:/scratch", scratch);
    ok(has_string(binds, "/srv/data:/data:ro"), "a host volume, read-only as asked");
    ok(has_string(binds, want), "a volume without a host path is scratch space of the task's own");
    struct stat st;
    ok(stat(scratch, &st) == 0 && (st.st_mode & 07777) == 01777, "made, writable by the container's user");
    json_t *labels = json_object_get(b, "Labels");
    ok(!strcmp(json_string_value(json_object_get(labels, "berth.task")), "0123456789abcdef0123456789abcdef") &&
           !strcmp(json_string_value(json_object_get(labels, "berth.node")), "node-1") &&
           !strcmp(json_string_value(json_object_get(labels, "berth.agent")), dir) &&
           !strcmp(json_string_value(json_object_get(labels, "berth.index")), "0"),
       "labels: task, index, node and agent");
    json_decref(b);
    json_decref(rec);

    /* host mode: no published ports, PORT stays the host port; nofile and nproc defaults. */
    rec = record("{\"family\":\"h\",\"network_mode\":\"host\",\"containers\":[{\"name\":\"h\",\"image\":\"x\","
                 "\"port_mappings\":[{\"name\":\"http\"}]}]}");
    b = ctr_spec(rec, 0, env, ports, "node-1", dir);
    hc = json_object_get(b, "HostConfig");
    is_str(str(b, "HostConfig.NetworkMode"), "host", "host mode");
    ok(json_object_size(json_object_get(hc, "PortBindings")) == 0, "publishes nothing");
    ok(has_string(json_object_get(b, "Env"), "PORT=40001"), "PORT is the host port");
    ul = json_object_get(hc, "Ulimits");
    ok(json_array_size(ul) == 2 && json_integer_value(json_object_get(json_array_get(ul, 0), "Soft")) == CTR_NOFILE,
       "default nofile and nproc limits");
    ok(!json_object_get(hc, "Memory") && !json_object_get(hc, "CpuQuota"), "no limits when none are asked");
    ok(!json_object_get(b, "Entrypoint") && !json_object_get(b, "Cmd"), "the image's own entry point and command");
    json_decref(b);
    json_decref(rec);
    json_decref(env);
    json_decref(ports);
    util_rm_rf(dir);
    return done_testing();
}
