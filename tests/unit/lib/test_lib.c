/* test_lib.c -- buffers, glob matching, addresses, CIDRs and table-driven config errors. */
#include <stdlib.h>
#include <string.h>

#include "berth/buf.h"
#include "berth/config.h"
#include "berth/net.h"
#include "berth/util.h"
#include "../../tap.h"

struct sample {
    int n;
    double d;
    bool b;
    char *s;
    int e;
    int range[2];
    json_t *map;
};

int main(void)
{
    struct buf b;
    buf_init(&b, 10000);
    ok(buf_append(&b, "hello", 5) == 0 && b.len == 5, "append");
    buf_consume(&b, 2);
    ok(b.len == 3 && memcmp(buf_head(&b), "llo", 3) == 0, "consume");
    ok(buf_reserve(&b, 10000) == NULL, "reserve beyond cap fails");
    ok(buf_reserve(&b, 9000) != NULL, "reserve within cap succeeds");
    buf_consume(&b, 3);
    buf_release(&b);
    ok(b.data == NULL, "release frees an empty buffer");
    buf_free(&b);

    ok(util_glob_match("*.api.local", "x.api.local", 11, true), "glob suffix");
    ok(!util_glob_match("*.api.local", "api.local", 9, true), "glob needs the dot");
    ok(util_glob_match("/api/*", "/api/v1/x", 9, false), "path glob");
    ok(!util_glob_match("/API/*", "/api/v1", 7, false), "path glob is case-sensitive");
    ok(util_glob_match("API.example.com", "api.EXAMPLE.com", 15, true), "host glob is case-insensitive");
    ok(util_glob_match("a?c", "abc", 3, false), "? matches one");

    struct net_addr a;
    char s[64];
    ok(net_parse_addr("127.0.0.1:80", &a) == 0 && net_addr_port(&a) == 80, "parse v4");
    ok(net_parse_addr("[::1]:8080", &a) == 0, "parse v6");
    net_format_addr(&a, s, sizeof s);
    is_str(s, "[::1]:8080", "format v6");
    ok(net_parse_addr("127.0.0.1", &a) < 0, "port required");
    ok(net_parse_addr("127.0.0.1:70000", &a) < 0, "port range");
    ok(net_parse_addr("example.com:80", &a) < 0, "names are not addresses");

    struct net_cidr c;
    net_parse_addr("10.1.2.3:1", &a);
    ok(net_parse_cidr("10.0.0.0/8", &c) == 0 && net_cidr_match(&c, (struct sockaddr *)&a.ss), "cidr match");
    ok(net_parse_cidr("10.2.0.0/16", &c) == 0 && !net_cidr_match(&c, (struct sockaddr *)&a.ss), "cidr miss");
    ok(net_parse_cidr("10.0.0.0/33", &c) < 0, "cidr bits range");

    static const char *const colors[] = {"red", "blue", NULL};
    static const struct cfg_field fields[] = {
        {"n", CFG_INT, offsetof(struct sample, n), 1, 300, 5, NULL, NULL, false},
        {"d", CFG_DOUBLE, offsetof(struct sample, d), 0, 1, 0.5, NULL, NULL, false},
        {"b", CFG_BOOL, offsetof(struct sample, b), 0, 0, 1, NULL, NULL, false},
        {"s", CFG_STRING, offsetof(struct sample, s), 0, 0, 0, "dflt", NULL, false},
        {"e", CFG_ENUM, offsetof(struct sample, e), 0, 0, 0, "blue", colors, false},
        {"r", CFG_RANGE, offsetof(struct sample, range), 1024, 65535, 0, "32000-60999", NULL, false},
        {"m", CFG_STRMAP, offsetof(struct sample, map), 0, 0, 0, NULL, NULL, false},
        CFG_END,
    };
    struct sample x = {0};
    char *err = NULL;
    json_t *j = json_loads("{}", 0, NULL);
    ok(cfg_read(j, "root", fields, &x, &err) == 0 && x.n == 5 && x.d == 0.5 && x.b && strcmp(x.s, "dflt") == 0 && x.e == 1,
       "defaults applied");
    ok(x.range[0] == 32000 && x.range[1] == 60999 && json_is_object(x.map) && json_object_size(x.map) == 0,
       "range and map defaults");
    json_decref(j);
    j = json_loads("{\"r\": [2000, 2000], \"m\": {\"zone\": \"a\"}}", 0, NULL);
    ok(cfg_read(j, "root", fields, &x, &err) == 0 && x.range[0] == 2000 && x.range[1] == 2000 &&
           strcmp(json_string_value(json_object_get(x.map, "zone")), "a") == 0,
       "a range and a string map are read");
    json_decref(j);
    struct {
        const char *json, *msg;
    } cases[] = {
        {"{\"zz\": 1}", "tg[1].zz: unknown key"},
        {"{\"n\": \"x\"}", "tg[1].n: must be an integer 1..300, got a string"},
        {"{\"n\": 301}", "tg[1].n: must be 1..300"},
        {"{\"d\": 2.5}", "tg[1].d: must be 0..1"},
        {"{\"b\": 1}", "tg[1].b: must be true or false, got an integer"},
        {"{\"e\": \"green\"}", "tg[1].e: \"green\" is not one of: red, blue"},
        {"[]", "tg[1]: must be an object, got an array"},
        {"{\"r\": [3000, 2000]}", "tg[1].r: must be [LOW, HIGH] with 1024 <= LOW <= HIGH <= 65535"},
        {"{\"r\": [80, 2000]}", "tg[1].r: must be [LOW, HIGH] with 1024 <= LOW <= HIGH <= 65535"},
        {"{\"r\": 5}", "tg[1].r: must be [LOW, HIGH] with 1024 <= LOW <= HIGH <= 65535"},
        {"{\"m\": {\"a\": 1}}", "tg[1].m: \"a\" must be a string"},
        {"{\"m\": []}", "tg[1].m: must be an object of strings, got an array"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        j = json_loads(cases[i].json, 0, NULL);
        ok(cfg_read(j, "tg[1]", fields, &x, &err) < 0, "rejects %s", cases[i].json);
        is_str(err, cases[i].msg, "error names the path for %s", cases[i].json);
        json_decref(j);
    }
    free(err);
    cfg_free(fields, &x);
    return done_testing();
}
