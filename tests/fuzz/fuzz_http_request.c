/* fuzz_http_request.c -- libFuzzer target: request head parser plus chunked body scanner. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "berth/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct http_msg m;
    int r = http_parse_request((const char *)data, size, 16384, &m);
    if (r > 0) {
        /* Every header slice must lie inside the input. */
        for (unsigned i = 0; i < m.num_headers; i++) {
            const char *lo = (const char *)data, *hi = lo + size;
            if (m.headers[i].name < lo || m.headers[i].value + m.headers[i].value_len > hi)
                __builtin_trap();
            (void)http_is_hop_by_hop(&m, &m.headers[i]);
        }
        /* Normalising the target in a copy never grows it or reads outside it. */
        char t[16384];
        if (m.target_len <= sizeof t) {
            memcpy(t, m.target, m.target_len);
            ssize_t n = http_normalize_path(t, m.target_len);
            if (n > (ssize_t)m.target_len)
                __builtin_trap();
        }
        if (m.host_idx >= 0)
            (void)http_host_valid(m.headers[m.host_idx].value, m.headers[m.host_idx].value_len);
        if (m.body == HTTP_BODY_CHUNKED) {
            struct http_chunked c;
            bool done;
            http_chunked_init(&c);
            ssize_t n = http_chunked_scan(&c, (const char *)data + r, size - (size_t)r, &done);
            if (n > (ssize_t)(size - (size_t)r))
                __builtin_trap();
        }
    }
    struct http_msg resp;
    (void)http_parse_response((const char *)data, size, 65536, HTTP_M_GET, &resp);
    return 0;
}
