/* auth.c -- bearer tokens with roles: config, constant-time checks, hashes (OpenSSL libcrypto). */
#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "berth/alloc.h"
#include "berth/auth.h"
#include "berth/config.h"
#include "berth/log.h"
#include "berth/net.h"
#include "berth/util.h"

static const char *const role_names[] = {"admin", "read", "agent", NULL};

struct token_conf {
    char *name, *sha256;
    int role;
};

static const struct cfg_field token_fields[] = {
    {"name", CFG_STRING, offsetof(struct token_conf, name), 0, 0, 0, NULL, NULL, true},
    {"role", CFG_ENUM, offsetof(struct token_conf, role), 0, 0, 0, NULL, role_names, true},
    {"sha256", CFG_STRING, offsetof(struct token_conf, sha256), 0, 0, 0, NULL, NULL, true},
    CFG_END,
};

int auth_parse(json_t *v, const char *path, struct auth *out, char **err)
{
    char p[256], q[300];
    memset(out, 0, sizeof *out);
    if (!v)
        return 0;
    if (!json_is_object(v) || json_object_size(v) != 1 || !json_object_get(v, "tokens"))
        return cfg_error(err, path, "must be {\"tokens\": [{\"name\", \"role\", \"sha256\"}, ...]}");
    cfg_path_key(p, sizeof p, path, "tokens");
    json_t *arr = cfg_array(json_object_get(v, "tokens"), p, err);
    if (!arr)
        return -1;
    if (json_array_size(arr) == 0)
        return cfg_error(err, p, "must list at least one token (leave \"auth\" out to turn authentication off)");
    out->tokens = xcalloc(json_array_size(arr), sizeof *out->tokens);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        struct token_conf c = {0};
        cfg_path_index(q, sizeof q, p, i);
        if (cfg_read(json_array_get(arr, i), q, token_fields, &c, err) < 0)
            goto fail;
        size_t hl = strlen(c.sha256);
        bool ok = hl == 64;
        for (size_t k = 0; ok && k < 64; k++)
            ok = util_hexval((unsigned char)c.sha256[k]) >= 0;
        char r[320];
        for (size_t k = 0; k < out->n && ok; k++)
            if (strcmp(out->tokens[k].name, c.name) == 0) {
                cfg_path_key(r, sizeof r, q, "name");
                cfg_error(err, r, "\"%s\" is used twice", c.name);
                cfg_free(token_fields, &c);
                goto fail;
            }
        if (!ok) {
            cfg_path_key(r, sizeof r, q, "sha256");
            cfg_error(err, r, "must be the 64 hex digits of the token's SHA-256 (sha256sum), never the token");
            cfg_free(token_fields, &c);
            goto fail;
        }
        struct auth_token *t = &out->tokens[out->n++];
        t->name = c.name;
        t->role = (enum auth_role)c.role;
        for (int k = 0; k < 32; k++)
            t->sha256[k] = (unsigned char)(util_hexval((unsigned char)c.sha256[2 * k]) * 16 + util_hexval((unsigned char)c.sha256[2 * k + 1]));
        free(c.sha256);
    }
    return 0;
fail:
    auth_free(out);
    return -1;
}

void auth_free(struct auth *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->tokens[i].name);
    free(a->tokens);
    a->tokens = NULL;
    a->n = 0;
}

static void sha256(const char *s, unsigned char h[32])
{
    unsigned int hl = 0;
    EVP_Digest(s, strlen(s), h, &hl, EVP_sha256(), NULL);
}

const struct auth_token *auth_find(const struct auth *a, const char *bearer)
{
    if (!bearer)
        return NULL;
    unsigned char h[32];
    sha256(bearer, h);
    const struct auth_token *found = NULL;
    /* Every token is compared, in constant time, so the timing tells nothing of which matched. */
    for (size_t i = 0; i < a->n; i++)
        if (CRYPTO_memcmp(h, a->tokens[i].sha256, 32) == 0)
            found = &a->tokens[i];
    return found;
}

int auth_allow(const struct auth *a, const char *bearer, const char *method)
{
    if (!a || a->n == 0)
        return 0;
    const struct auth_token *t = auth_find(a, bearer);
    if (!t)
        return 401;
    if (t->role == AUTH_ROLE_ADMIN)
        return 0;
    if (t->role == AUTH_ROLE_READ && (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0))
        return 0;
    return 403;
}

static void to_hex(const unsigned char *b, size_t n, char *hex)
{
    for (size_t i = 0; i < n; i++)
        snprintf(hex + 2 * i, 3, "%02x", b[i]);
}

void auth_sha256_hex(const char *s, char hex[65])
{
    unsigned char h[32];
    sha256(s, h);
    to_hex(h, 32, hex);
}

void auth_hmac_hex(const unsigned char *key, size_t klen, const char *msg, char hex[65])
{
    unsigned char h[32];
    unsigned int hl = 0;
    HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, strlen(msg), h, &hl);
    to_hex(h, 32, hex);
}

bool auth_equal(const char *a, const char *b)
{
    return a && b && strlen(a) == strlen(b) && CRYPTO_memcmp(a, b, strlen(a)) == 0;
}

int auth_random_token(char hex[65])
{
    unsigned char b[32];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b)
        return -1;
    to_hex(b, 32, hex);
    return 0;
}

bool auth_loopback(const char *listen)
{
    struct net_addr a;
    if (net_parse_addr(listen, &a) < 0)
        return false;
    if (a.ss.ss_family == AF_INET)
        return (ntohl(((struct sockaddr_in *)&a.ss)->sin_addr.s_addr) >> 24) == 127;
    const struct in6_addr *v6 = &((struct sockaddr_in6 *)&a.ss)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(v6);
}

int auth_require(const struct auth *a, const char *listen, const char *what, bool insecure, const char *program)
{
    if (a->n > 0 || auth_loopback(listen))
        return 0;
    if (insecure) {
        log_warn("INSECURE: %s on %s accepts requests from anyone who can reach it, without a token "
                 "(--insecure); add an \"auth\" block to the config",
                 what, listen);
        return 0;
    }
    fprintf(stderr,
            "%s: %s listens on %s, beyond loopback, without \"auth\": refusing to start (add an \"auth\" block with "
            "tokens, or pass --insecure to run it open anyway)\n",
            program, what, listen);
    return -1;
}
