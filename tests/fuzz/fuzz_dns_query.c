/* fuzz_dns_query.c -- libFuzzer target: berth-dns query parsing and answering against a small zone. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dns.h"

static struct dns_server srv;

static void setup(void)
{
    static const char *conf =
        "{\"namespaces\":[{\"name\":\"berth.internal\",\"services\":["
        "{\"name\":\"web\",\"instances\":[{\"id\":\"t1\",\"address\":\"127.0.0.1\",\"port\":1,\"attributes\":{\"z\":\"a\"}},"
        "{\"id\":\"t2\",\"address\":\"::1\",\"port\":2,\"port_name\":\"grpc\",\"healthy\":false}]},"
        "{\"name\":\"db\",\"instances\":[{\"id\":\"d1\",\"address\":\"127.0.0.2\",\"port\":3,\"healthy\":false}]}]}]}";
    json_t *root = json_loads(conf, 0, NULL);
    char *err = NULL;
    srv.conf = dns_config_parse(root, &err);
    srv.zone = srv.conf->zone;
    json_decref(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!srv.zone)
        setup();
    static unsigned char out[65536];
    /* UDP limits and TCP limits both. */
    size_t n;
    if (dns_server_handle(&srv, data, size, NULL, false, out, DNS_MAX_UDP, &n, NULL, NULL) == DNS_REPLY && n > DNS_MAX_UDP)
        __builtin_trap();
    if (dns_server_handle(&srv, data, size, NULL, true, out, sizeof out, &n, NULL, NULL) == DNS_REPLY && n > sizeof out)
        __builtin_trap();
    return 0;
}
