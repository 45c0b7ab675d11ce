/* auth.h -- bearer tokens with roles for every berth API (SPEC §7): parsing, checking, hashing. */
#ifndef BERTH_AUTH_H
#define BERTH_AUTH_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

enum auth_role {
    AUTH_ROLE_ADMIN, /* everything */
    AUTH_ROLE_READ,  /* GET (and HEAD) only */
    AUTH_ROLE_AGENT, /* the node protocol only */
};

struct auth_token {
    char *name;
    enum auth_role role;
    unsigned char sha256[32];
};

/* A daemon's "auth" block. No tokens: authentication is off. */
struct auth {
    struct auth_token *tokens;
    size_t n;
};

/* Reads an "auth" object at <path> (NULL: off) into <out>. Returns 0, or -1 with *err naming the
 * JSON path (an unknown role, a sha256 that is not 64 hex digits, a duplicate name). */
int auth_parse(json_t *v, const char *path, struct auth *out, char **err);
void auth_free(struct auth *a);
/* The token whose SHA-256 is that of <bearer>, compared in constant time; NULL if none. */
const struct auth_token *auth_find(const struct auth *a, const char *bearer);
/* The standard policy: admin may do anything, read only GET/HEAD, agent nothing (a daemon that
 * speaks the node protocol adds its own rule). Returns 0, 401 or 403. */
int auth_allow(const struct auth *a, const char *bearer, const char *method);
/* Writes the lowercase hex SHA-256 of <s> (65 bytes with the NUL) into <hex>. */
void auth_sha256_hex(const char *s, char hex[65]);
/* HMAC-SHA256 of <msg> under <key> (<klen> bytes), as 64 hex digits and a NUL in <hex>. */
void auth_hmac_hex(const unsigned char *key, size_t klen, const char *msg, char hex[65]);
/* Constant-time equality of two NUL-terminated strings of the same length (false otherwise). */
bool auth_equal(const char *a, const char *b);
/* Fills <hex> with 64 random hex digits and a NUL (a fresh token). Returns 0 or -1. */
int auth_random_token(char hex[65]);
/* True when <listen> ("ip:port") is a loopback address. */
bool auth_loopback(const char *listen);
/* Refuses (returns -1 with a message on stderr) to serve <what> on a non-loopback <listen> without
 * tokens, unless <insecure>, which is logged loudly. */
int auth_require(const struct auth *a, const char *listen, const char *what, bool insecure, const char *program);

#endif
