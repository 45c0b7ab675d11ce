/* test_http_parse.c -- the strict HTTP/1.1 parser: framing, smuggling vectors, chunked scanning. */
#include <string.h>

#include "berth/http.h"
#include "../../tap.h"

static int req(const char *s, struct http_msg *m)
{
    return http_parse_request(s, strlen(s), 16384, m);
}

static int status_of(const char *s)
{
    struct http_msg m;
    int r = req(s, &m);
    return r > 0 ? 200 : r == 0 ? 0 : -r;
}

int main(void)
{
    struct http_msg m;
    const char *get = "GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-A:  v  \r\n\r\n";
    int r = req(get, &m);
    is_int(r, (int)strlen(get), "simple GET parses to its full length");
    is_int(m.method_id, HTTP_M_GET, "method GET");
    ok(m.target_len == 6 && memcmp(m.target, "/a?b=1", 6) == 0, "target");
    is_int(m.num_headers, 2, "two headers");
    ok(m.headers[1].value_len == 1 && m.headers[1].value[0] == 'v', "OWS trimmed from value");
    ok(m.keep_alive, "HTTP/1.1 defaults to keep-alive");
    is_int(m.body, HTTP_BODY_NONE, "no body");

    for (size_t cut = 0; cut < strlen(get); cut++)
        if (http_parse_request(get, cut, 16384, &m) != HTTP_INCOMPLETE) {
            ok(0, "prefix of %zu bytes reported incomplete", cut);
            break;
        }
    ok(1, "every strict prefix is incomplete");

    r = req("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n", &m);
    ok(r > 0 && m.body == HTTP_BODY_LENGTH && m.content_length == 12, "Content-Length body");
    r = req("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", &m);
    ok(r > 0 && m.body == HTTP_BODY_CHUNKED, "chunked body");
    r = req("GET / HTTP/1.0\r\n\r\n", &m);
    ok(r > 0 && !m.keep_alive, "HTTP/1.0 without Host is fine and not keep-alive");
    r = req("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &m);
    ok(r > 0 && m.keep_alive, "HTTP/1.0 keep-alive token");
    r = req("GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", &m);
    ok(r > 0 && m.upgrade_websocket, "websocket upgrade detected");
    r = req("\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", &m);
    ok(r > 0, "one leading empty line is ignored (RFC 9112 §2.2)");

    /* Smuggling and malformed vectors. */
    is_int(status_of("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), 400, "CL + TE");
    is_int(status_of("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"), 400, "duplicate CL");
    is_int(status_of("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\n"), 400, "CL list");
    is_int(status_of("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n"), 400, "CL with sign");
    is_int(status_of("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n"), 400, "CL overflow");
    is_int(status_of("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"), 400, "chunked not final");
    is_int(status_of("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"), 400, "chunked twice");
    is_int(status_of("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: foo\r\n\r\n"), 501, "unknown coding -> 501");
    is_int(status_of("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n"), 501, "look-alike coding -> 501");
    is_int(status_of("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400, "TE in HTTP/1.0");
    is_int(status_of("GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n"), 400, "obs-fold");
    is_int(status_of("GET / HTTP/1.1\r\nHost: x\r\nX : a\r\n\r\n"), 400, "space before colon");
    is_int(status_of("GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n"), 400, "bare CR in value");
    is_int(status_of("GET / HTTP/1.1\r\nHost: x\nX: a\r\n\r\n"), 400, "bare LF line end");
    is_int(status_of("GET / HTTP/1.1\nHost: x\r\n\r\n"), 400, "bare LF after request line");
    {
        static const char nul[] = "GET / HTTP/1.1\r\nHost: x\r\nX: a\0b\r\n\r\n";
        is_int(http_parse_request(nul, sizeof nul - 1, 16384, &m), HTTP_ERR_BAD, "NUL in value");
    }
    is_int(status_of("GET / HTTP/1.1\r\n\r\n"), 400, "missing Host in HTTP/1.1");
    is_int(status_of("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400, "duplicate Host");
    is_int(status_of("GET  / HTTP/1.1\r\nHost: x\r\n\r\n"), 400, "double space in request line");
    is_int(status_of("GET / HTTP/2.0\r\nHost: x\r\n\r\n"), 400, "unsupported version");
    is_int(status_of("G\x01T / HTTP/1.1\r\nHost: x\r\n\r\n"), 400, "control in method");
    is_int(status_of("GET /\x7f HTTP/1.1\r\nHost: x\r\n\r\n"), 400, "DEL in target");

    char big[20000];
    memset(big, 'a', sizeof big);
    memcpy(big, "GET / HTTP/1.1\r\nHost: x\r\nX: ", 28);
    is_int(http_parse_request(big, sizeof big, 16384, &m), HTTP_ERR_TOO_LARGE, "oversized head -> 431");

    /* Responses. */
    const char *resp = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n";
    r = http_parse_response(resp, strlen(resp), 65536, HTTP_M_GET, &m);
    ok(r > 0 && m.status == 200 && m.body == HTTP_BODY_LENGTH, "response with CL");
    r = http_parse_response(resp, strlen(resp), 65536, HTTP_M_HEAD, &m);
    ok(r > 0 && m.body == HTTP_BODY_NONE, "response to HEAD has no body");
    const char *eof = "HTTP/1.0 200 OK\r\n\r\n";
    r = http_parse_response(eof, strlen(eof), 65536, HTTP_M_GET, &m);
    ok(r > 0 && m.body == HTTP_BODY_EOF && !m.keep_alive, "close-delimited response");
    const char *bad = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
    ok(http_parse_response(bad, strlen(bad), 65536, HTTP_M_GET, &m) < 0, "response CL+TE rejected");

    /* Chunked scanner. */
    struct http_chunked c;
    bool done;
    const char *body = "4\r\nwiki\r\n5;ext=1\r\npedia\r\n0\r\nTrailer: x\r\n\r\nNEXT";
    http_chunked_init(&c);
    ssize_t n = http_chunked_scan(&c, body, strlen(body), &done);
    ok(done && n == (ssize_t)strlen(body) - 4, "chunked body ends before the next request");
    http_chunked_init(&c);
    done = false;
    size_t total = 0;
    for (size_t i = 0; i < strlen(body) && !done; i++) {
        n = http_chunked_scan(&c, body + i, 1, &done);
        total += (size_t)n;
    }
    ok(done && total == strlen(body) - 4, "chunked body byte by byte");
    const char *badc[] = {"x\r\n", "4\nwiki", "4\r\nwikiX\r\n", "-1\r\n", "1234567890abcdef0\r\n", " 4\r\n", "4\r\nwiki\r\n0\r\nbad header\r\n\r\n"};
    for (size_t i = 0; i < sizeof badc / sizeof *badc; i++) {
        http_chunked_init(&c);
        ok(http_chunked_scan(&c, badc[i], strlen(badc[i]), &done) < 0, "bad chunk framing %zu rejected", i);
    }

    struct http_msg hm;
    const char *hop = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nX-Ok: 1\r\n\r\n";
    req(hop, &hm);
    ok(http_is_hop_by_hop(&hm, &hm.headers[2]), "header named in Connection is hop-by-hop");
    ok(http_is_hop_by_hop(&hm, &hm.headers[3]), "Keep-Alive is hop-by-hop");
    ok(!http_is_hop_by_hop(&hm, &hm.headers[4]), "X-Ok is end-to-end");
    const char *framing = "POST / HTTP/1.1\r\nHost: x\r\nConnection: content-length, HOST, te\r\nContent-Length: 1\r\nTE: trailers\r\n\r\n";
    req(framing, &hm);
    ok(!http_is_hop_by_hop(&hm, &hm.headers[0]), "Host stays though Connection names it");
    ok(!http_is_hop_by_hop(&hm, &hm.headers[2]), "Content-Length stays though Connection names it");
    ok(http_is_hop_by_hop(&hm, &hm.headers[3]), "TE named in Connection is dropped");

    /* Path normalisation (RFC 3986 §6.2.2, §5.2.4) and Host syntax. */
    const char *paths[][2] = {
        {"/", "/"}, {"/a/b", "/a/b"}, {"/a/./b", "/a/b"}, {"/a/../b", "/b"}, {"/../a", "/a"}, {"/a/..", "/"},
        {"/a/.", "/a/"}, {"//a///b/", "/a/b/"}, {"/%61%7e%2D", "/a~-"}, {"/%2f%3a", "/%2F%3A"},
        {"/a/%2e%2E/b", "/b"}, {"/a/.../b", "/a/.../b"}, {"/.a/..b", "/.a/..b"}, {"*", "*"}, {"/a/b/../../..", "/"},
    };
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        char b[64];
        size_t len = strlen(paths[i][0]);
        memcpy(b, paths[i][0], len);
        ssize_t nl = http_normalize_path(b, len);
        ok(nl >= 0 && (size_t)nl == strlen(paths[i][1]) && memcmp(b, paths[i][1], (size_t)nl) == 0,
           "normalise %s -> %s (got %.*s)", paths[i][0], paths[i][1], (int)(nl < 0 ? 0 : nl), b);
    }
    const char *badpaths[] = {"a/b", "/%", "/%4", "/%zz", "/%g0", ""};
    for (size_t i = 0; i < sizeof badpaths / sizeof *badpaths; i++) {
        char b[16];
        size_t len = strlen(badpaths[i]);
        memcpy(b, badpaths[i], len);
        ok(http_normalize_path(b, len) < 0, "path \"%s\" refused", badpaths[i]);
    }
    const char *goodhosts[] = {"a", "web.localhost", "web.localhost.", "a:80", "[::1]", "[::1]:8080", "127.0.0.1:1", "x_y-z"};
    for (size_t i = 0; i < sizeof goodhosts / sizeof *goodhosts; i++)
        ok(http_host_valid(goodhosts[i], strlen(goodhosts[i])), "Host %s valid", goodhosts[i]);
    const char *badhosts[] = {"", "a b", "a/b", "u@a", "a:", "a:x", ":80", "[::1", "[::1]x", "a:123456", "a\\b", "a?b"};
    for (size_t i = 0; i < sizeof badhosts / sizeof *badhosts; i++)
        ok(!http_host_valid(badhosts[i], strlen(badhosts[i])), "Host \"%s\" refused", badhosts[i]);
    return done_testing();
}
