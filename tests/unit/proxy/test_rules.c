/* test_proxy_rules.c -- listener rule matching, priorities, weights and redirects. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "rules.h"
#include "tgroup.h"
#include "../../tap.h"

static struct proxy_config *parse(const char *text, char **err)
{
    json_error_t je;
    json_t *root = json_loads(text, 0, &je);
    if (!root) {
        *err = strdup(je.text);
        return NULL;
    }
    struct proxy_config *c = proxy_config_parse(root, err);
    json_decref(root);
    return c;
}

static const char *route(struct proxy_config *c, const char *head, const char *ip)
{
    static char out[64];
    struct http_msg m;
    if (http_parse_request(head, strlen(head), 16384, &m) <= 0)
        return "PARSE";
    struct sockaddr_in sin = {.sin_family = AF_INET};
    inet_pton(AF_INET, ip, &sin.sin_addr);
    struct proxy_reqinfo ri = {.m = &m, .peer = (struct sockaddr *)&sin};
    ri.host = m.headers[m.host_idx].value;
    ri.host_len = m.headers[m.host_idx].value_len;
    const char *q = memchr(m.target, '?', m.target_len);
    ri.path = m.target;
    ri.path_len = q ? (size_t)(q - m.target) : m.target_len;
    ri.query = q ? q + 1 : "";
    ri.query_len = q ? m.target_len - ri.path_len - 1 : 0;
    const struct proxy_action *a = proxy_route(&c->listeners[0], &ri);
    if (a->kind == ACT_FIXED)
        snprintf(out, sizeof out, "fixed:%s", a->body);
    else if (a->kind == ACT_REDIRECT)
        snprintf(out, sizeof out, "redirect:%d", a->status);
    else
        snprintf(out, sizeof out, "forward:%s", a->fwd[0].tg_name);
    return out;
}

int main(void)
{
    char *err = NULL;
    struct proxy_config *c = parse(
        "{\"listeners\":[{\"listen\":\"127.0.0.1:1\",\"rules\":["
        "{\"priority\":30,\"conditions\":{\"path_pattern\":[\"/ping\"]},\"action\":{\"fixed_response\":{\"body\":\"pong\"}}},"
        "{\"priority\":10,\"conditions\":{\"host_header\":[\"api.example.com\",\"*.api.local\"],\"path_pattern\":[\"/api/*\"],"
        "\"http_request_method\":[\"GET\",\"POST\"]},\"action\":{\"forward\":[{\"target_group\":\"api\"}]}},"
        "{\"priority\":15,\"conditions\":{\"http_header\":{\"x-canary\":[\"1\"]}},\"action\":{\"forward\":[{\"target_group\":\"canary\"}]}},"
        "{\"priority\":16,\"conditions\":{\"query_string\":{\"v\":[\"2\"]}},\"action\":{\"forward\":[{\"target_group\":\"canary\"}]}},"
        "{\"priority\":17,\"conditions\":{\"source_ip\":[\"10.0.0.0/8\"]},\"action\":{\"fixed_response\":{\"body\":\"ten\"}}},"
        "{\"priority\":20,\"conditions\":{\"path_pattern\":[\"/old/*\"]},\"action\":{\"redirect\":{\"status\":301,\"location\":\"/new/#{path}\"}}}"
        "],\"default_action\":{\"forward\":[{\"target_group\":\"web\"}]}}],"
        "\"target_groups\":[{\"name\":\"web\"},{\"name\":\"api\"},{\"name\":\"canary\"}]}",
        &err);
    ok(c != NULL, "config with all condition kinds parses%s%s", err ? ": " : "", err ? err : "");
    if (!c)
        return done_testing();
    is_int(c->listeners[0].rules[0].priority, 10, "rules sorted by priority");
    is_str(route(c, "GET /api/x HTTP/1.1\r\nHost: api.example.com\r\n\r\n", "127.0.0.1"), "forward:api", "host+path+method");
    is_str(route(c, "GET /api/x HTTP/1.1\r\nHost: a.api.local:8080\r\n\r\n", "127.0.0.1"), "forward:web", "port is not part of the reqinfo host here");
    is_str(route(c, "DELETE /api/x HTTP/1.1\r\nHost: api.example.com\r\n\r\n", "127.0.0.1"), "forward:web", "method not listed");
    is_str(route(c, "GET /x HTTP/1.1\r\nHost: h\r\nX-Canary: 1\r\n\r\n", "127.0.0.1"), "forward:canary", "header condition");
    is_str(route(c, "GET /x?a=1&v=2 HTTP/1.1\r\nHost: h\r\n\r\n", "127.0.0.1"), "forward:canary", "query condition");
    is_str(route(c, "GET /x?v=3 HTTP/1.1\r\nHost: h\r\n\r\n", "127.0.0.1"), "forward:web", "query value mismatch");
    is_str(route(c, "GET /x HTTP/1.1\r\nHost: h\r\n\r\n", "10.9.8.7"), "fixed:ten", "source_ip condition");
    is_str(route(c, "GET /ping HTTP/1.1\r\nHost: h\r\n\r\n", "127.0.0.1"), "fixed:pong", "fixed response");
    is_str(route(c, "GET /old/a HTTP/1.1\r\nHost: h\r\n\r\n", "127.0.0.1"), "redirect:301", "redirect");

    struct proxy_reqinfo ri = {.host = "h", .host_len = 1, .path = "/old/a/b", .path_len = 8, .query = "q=1", .query_len = 3};
    struct buf out;
    buf_init(&out, 1024);
    proxy_redirect_expand("#{protocol}://#{host}:#{port}/new/#{path}?#{query}", &ri, 8080, &out);
    buf_append(&out, "", 1);
    is_str(buf_head(&out), "http://h:8080/new/old/a/b?q=1", "redirect template expansion");
    buf_free(&out);
    proxy_config_free(c);

    /* Weighted forward: smooth weighted round robin gives exact shares. */
    struct proxy_tg a = {0}, b = {0};
    struct proxy_route_fwd fw[2] = {{.tg = &a, .weight = 90}, {.tg = &b, .weight = 10}};
    struct proxy_route route = {.fwd = fw, .nfwd = 2};
    int na = 0;
    for (int i = 0; i < 1000; i++)
        na += proxy_route_pick(&route) == &a;
    is_int(na, 900, "90/10 weights give 900 of 1000");

    const char *bad[][2] = {
        {"{\"listeners\":[{\"listen\":\"127.0.0.1:1\",\"default_action\":{\"forward\":[{\"target_group\":\"nope\"}]}}]}",
         "listeners[0].default_action.forward[0].target_group: no target group named \"nope\""},
        {"{\"target_groups\":[{\"name\":\"a\"},{\"name\":\"a\"}]}",
         "target_groups[1].name: target group \"a\" is defined twice (also target_groups[0])"},
        {"{\"target_groups\":[{\"name\":\"a\",\"health_check\":{\"interval_s\":301}}]}",
         "target_groups[0].health_check.interval_s: must be 0.1..300"},
        {"{\"listeners\":[{\"listen\":\"nowhere\",\"default_action\":{\"fixed_response\":{}}}]}",
         "listeners[0].listen: \"nowhere\" is not an address of the form IP:PORT"},
        {"{\"workers\":\"2\"}", "workers: must be an integer 1..64, got a string"},
        {"{\"target_groups\":[{\"name\":\"a\",\"targets\":[{\"address\":\"127.0.0.1:1\",\"port\":2,\"weight\":1}]}]}",
         "target_groups[0].targets[0].weight: unknown key"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        free(err);
        err = NULL;
        struct proxy_config *x = parse(bad[i][0], &err);
        ok(x == NULL, "bad config %zu rejected", i);
        is_str(err, bad[i][1], "bad config %zu message", i);
        proxy_config_free(x);
    }
    free(err);
    return done_testing();
}
