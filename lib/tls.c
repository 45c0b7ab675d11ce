/* tls.c -- TLS on non-blocking sockets with OpenSSL 3 (see tls.h). */
#include <openssl/ssl.h>
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "berth/alloc.h"
#include "berth/buf.h"
#include "berth/config.h"
#include "berth/log.h"
#include "berth/tls.h"

#define EXPIRY_WARN_S (30 * 86400.0)
#define MAX_NAMES 64

/* ---- security policies (ALB's names) ---- */

#define TLS13_SUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define FS_GCM                                                                                                  \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"                 \
    "ECDHE-RSA-AES256-GCM-SHA384"
#define FS_CBC256 "ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES256-SHA384"
#define NOFS_12 "AES128-GCM-SHA256:AES128-SHA256:AES256-GCM-SHA384:AES256-SHA256"
#define SHA1_CBC "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA:ECDHE-ECDSA-AES256-SHA:AES128-SHA:AES256-SHA"

struct policy {
    const char *name;
    int min, max;
    const char *ciphers; /* TLS 1.2 and below */
};

static const struct policy policies[] = {
    {"ELBSecurityPolicy-TLS13-1-2-2021-06", TLS1_2_VERSION, TLS1_3_VERSION, FS_GCM ":" FS_CBC256},
    {"ELBSecurityPolicy-TLS13-1-2-Res-2021-06", TLS1_2_VERSION, TLS1_3_VERSION, FS_GCM},
    {"ELBSecurityPolicy-TLS13-1-3-2021-06", TLS1_3_VERSION, TLS1_3_VERSION, FS_GCM},
    {"ELBSecurityPolicy-TLS13-1-2-Ext1-2021-06", TLS1_2_VERSION, TLS1_3_VERSION, FS_GCM ":" FS_CBC256 ":" NOFS_12},
    {"ELBSecurityPolicy-FS-1-2-Res-2020-10", TLS1_2_VERSION, TLS1_2_VERSION, FS_GCM},
    {"ELBSecurityPolicy-TLS-1-2-2017-01", TLS1_2_VERSION, TLS1_2_VERSION, FS_GCM ":" FS_CBC256 ":" NOFS_12},
    /* TLS 1.0 and 1.1 need OpenSSL's security level 0 (their handshakes sign with SHA-1). */
    {"ELBSecurityPolicy-2016-08", TLS1_VERSION, TLS1_2_VERSION,
     FS_GCM ":" FS_CBC256 ":" SHA1_CBC ":" NOFS_12 ":@SECLEVEL=0"},
};
#define NPOLICIES (sizeof policies / sizeof policies[0])

const char *const tls_policy_names[] = {
    "ELBSecurityPolicy-TLS13-1-2-2021-06",  "ELBSecurityPolicy-TLS13-1-2-Res-2021-06",
    "ELBSecurityPolicy-TLS13-1-3-2021-06",  "ELBSecurityPolicy-TLS13-1-2-Ext1-2021-06",
    "ELBSecurityPolicy-FS-1-2-Res-2020-10", "ELBSecurityPolicy-TLS-1-2-2017-01",
    "ELBSecurityPolicy-2016-08",            NULL,
};

static const struct policy *policy_find(const char *name)
{
    if (!name)
        return &policies[0];
    for (size_t i = 0; i < NPOLICIES; i++)
        if (strcmp(policies[i].name, name) == 0)
            return &policies[i];
    return NULL;
}

bool tls_policy_known(const char *name)
{
    return name && policy_find(name);
}

/* ---- session tickets: keys derived from a seed and the hour, so they rotate by themselves and
 * every process with the same seed derives the same ones ---- */

static unsigned char ticket_seed[32];
static bool ticket_seeded;

struct ticket_key {
    long period;
    unsigned char name[16], aes[32], hmac[32];
};
static struct ticket_key ticket_keys[2]; /* the current period's and the one before */

void tls_ticket_seed_set(const unsigned char *seed, size_t n)
{
    memset(ticket_seed, 0, sizeof ticket_seed);
    memcpy(ticket_seed, seed, n < sizeof ticket_seed ? n : sizeof ticket_seed);
    ticket_seeded = true;
    memset(ticket_keys, 0, sizeof ticket_keys);
}

static void ticket_seed_ensure(void)
{
    if (!ticket_seeded) {
        if (RAND_bytes(ticket_seed, sizeof ticket_seed) != 1)
            abort();
        ticket_seeded = true;
    }
}

void tls_ticket_seed_hex(char *hex)
{
    ticket_seed_ensure();
    for (size_t i = 0; i < sizeof ticket_seed; i++)
        sprintf(hex + 2 * i, "%02x", ticket_seed[i]);
}

static void derive(long period, const char *what, unsigned char *out, size_t n)
{
    char label[64];
    int len = snprintf(label, sizeof label, "berth ticket %s %ld", what, period);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    HMAC(EVP_sha256(), ticket_seed, sizeof ticket_seed, (const unsigned char *)label, (size_t)len, md, &mdlen);
    memcpy(out, md, n);
}

static const struct ticket_key *ticket_key_for(long period)
{
    struct ticket_key *k = &ticket_keys[period & 1];
    if (k->period != period || period == 0) {
        k->period = period;
        derive(period, "name", k->name, sizeof k->name);
        derive(period, "aes", k->aes, sizeof k->aes);
        derive(period, "hmac", k->hmac, sizeof k->hmac);
    }
    return k;
}

static int set_mac_key(EVP_MAC_CTX *hctx, const struct ticket_key *k)
{
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)k->hmac, sizeof k->hmac),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    return EVP_MAC_CTX_set_params(hctx, params);
}

static int ticket_cb(SSL *s, unsigned char key_name[16], unsigned char *iv, EVP_CIPHER_CTX *cctx,
                     EVP_MAC_CTX *hctx, int enc)
{
    long now = (long)(time(NULL) / TLS_TICKET_ROTATE_S);
    if (enc) {
        const struct ticket_key *k = ticket_key_for(now);
        if (RAND_bytes(iv, 16) != 1)
            return -1;
        memcpy(key_name, k->name, 16);
        if (EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes, iv) != 1 || set_mac_key(hctx, k) != 1)
            return -1;
        return 1;
    }
    for (long p = now; p >= now - 1; p--) {
        const struct ticket_key *k = ticket_key_for(p);
        if (memcmp(key_name, k->name, 16) != 0)
            continue;
        if (set_mac_key(hctx, k) != 1 || EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes, iv) != 1)
            return -1;
        return p == now ? 1 : 2; /* 2: an older key's ticket: a new one is issued */
    }
    return 0; /* unknown key: a full handshake */
}

/* ---- server contexts ---- */

struct tls_cert {
    SSL_CTX *ctx;
    char *names[MAX_NAMES]; /* DNS names (or the subject's CN), lower case */
    int nnames;
    int key_types; /* bit per EVP_PKEY base id loaded: 1 RSA, 2 EC, 4 other */
    double not_after;
};

struct tls_server {
    int refs;
    struct tls_cert *certs;
    size_t ncerts;
};

static int ex_server = -1; /* an SSL's tls_server (a reference) */

static const unsigned char alpn_h11[] = "\x08http/1.1";

static int alpn_cb(SSL *s, const unsigned char **out, unsigned char *outlen, const unsigned char *in, unsigned inlen,
                   void *arg)
{
    unsigned char *sel;
    if (SSL_select_next_proto(&sel, outlen, alpn_h11, sizeof alpn_h11 - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK; /* no http/1.1 offered: go on without ALPN, as nginx does */
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

static bool wildcard_match(const char *pattern, const char *host)
{
    if (pattern[0] != '*' || pattern[1] != '.')
        return false;
    const char *dot = strchr(host, '.');
    return dot && dot != host && strcasecmp(dot + 1, pattern + 2) == 0;
}

static int sni_cb(SSL *s, int *al, void *arg)
{
    struct tls_server *srv = SSL_get_ex_data(s, ex_server);
    const char *host = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name);
    if (!srv || !host || srv->ncerts < 2)
        return SSL_TLSEXT_ERR_OK;
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < srv->ncerts; i++)
            for (int k = 0; k < srv->certs[i].nnames; k++) {
                const char *pat = srv->certs[i].names[k];
                if (pass == 0 ? strcasecmp(pat, host) == 0 : wildcard_match(pat, host)) {
                    if (i > 0)
                        SSL_set_SSL_CTX(s, srv->certs[i].ctx);
                    return SSL_TLSEXT_ERR_OK;
                }
            }
    return SSL_TLSEXT_ERR_OK; /* unknown name: the first certificate */
}

static char *resolve(const char *base_dir, const char *path)
{
    size_t n = (base_dir && path[0] != '/' ? strlen(base_dir) : 0) + strlen(path) + 2;
    char *p = xmalloc(n);
    if (base_dir && path[0] != '/')
        snprintf(p, n, "%s/%s", base_dir, path);
    else
        snprintf(p, n, "%s", path);
    return p;
}

static const char *ossl_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    return r ? r : "unknown error";
}

static SSL_CTX *server_ctx(const struct policy *pol)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, pol->min);
    SSL_CTX_set_max_proto_version(ctx, pol->max);
    SSL_CTX_set_cipher_list(ctx, pol->ciphers);
    SSL_CTX_set_ciphersuites(ctx, TLS13_SUITES);
    SSL_CTX_set1_groups_list(ctx, "X25519:P-256:P-384");
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_IGNORE_UNEXPECTED_EOF);
    /* Read and write buffers are freed while a connection is idle (the memory per idle connection). */
    /* No chain building at each handshake: the configured chain file is the chain (as nginx). */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_NO_AUTO_CHAIN);
    /* Stateless resumption only: tickets (rotated keys), no session cache to share or lock. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx, 1);
    SSL_CTX_set_timeout(ctx, 2 * TLS_TICKET_ROTATE_S);
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, NULL);
    SSL_CTX_set_tlsext_servername_callback(ctx, sni_cb);
    return ctx;
}

static int key_type_bit(EVP_PKEY *k)
{
    int id = k ? EVP_PKEY_get_base_id(k) : 0;
    return id == EVP_PKEY_RSA ? 1 : id == EVP_PKEY_EC ? 2 : 4;
}

/* The leaf of <file>: its names, expiry and key type. */
static X509 *read_leaf(const char *file, char **err, const char *path)
{
    FILE *f = fopen(file, "r");
    if (!f) {
        cfg_error(err, path, "%s: cannot read: %s", file, strerror(errno));
        return NULL;
    }
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (!x)
        cfg_error(err, path, "%s: not a PEM certificate", file);
    return x;
}

static void leaf_names(X509 *x, struct tls_cert *c)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens) && c->nnames < MAX_NAMES; i++) {
        GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (g->type != GEN_DNS)
            continue;
        const unsigned char *d = ASN1_STRING_get0_data(g->d.dNSName);
        int len = ASN1_STRING_length(g->d.dNSName);
        if (len > 0 && (int)strnlen((const char *)d, (size_t)len) == len)
            c->names[c->nnames++] = strndup((const char *)d, (size_t)len);
    }
    GENERAL_NAMES_free(gens);
    if (c->nnames == 0) {
        char cn[256];
        if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn) > 0)
            c->names[c->nnames++] = xstrdup(cn);
    }
}

static double asn1_time(const ASN1_TIME *t)
{
    struct tm tm;
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
        return 0;
    return (double)timegm(&tm);
}

static bool same_names(const struct tls_cert *a, const struct tls_cert *b)
{
    if (a->nnames != b->nnames)
        return false;
    for (int i = 0; i < a->nnames; i++)
        if (strcasecmp(a->names[i], b->names[i]) != 0)
            return false;
    return true;
}

static void cert_free(struct tls_cert *c)
{
    SSL_CTX_free(c->ctx);
    for (int i = 0; i < c->nnames; i++)
        free(c->names[i]);
}

/* Loads certificate <i> into <srv>: into an earlier context with the same names and another key
 * type, else into a new one. */
static int load_cert(struct tls_server *srv, const struct tls_cert_conf *cc, size_t i, const struct policy *pol,
                     const char *base_dir, char **err)
{
    char path[64];
    snprintf(path, sizeof path, "certificates[%zu].cert", i);
    char *cert = resolve(base_dir, cc->cert), *key = resolve(base_dir, cc->key);
    int rc = -1;
    struct tls_cert c = {0};
    X509 *x = read_leaf(cert, err, path);
    if (!x)
        goto out;
    leaf_names(x, &c);
    c.not_after = asn1_time(X509_get0_notAfter(x));
    int bit = key_type_bit(X509_get0_pubkey(x));
    double now = (double)time(NULL), left = c.not_after - now;
    if (left <= 0) {
        cfg_error(err, path, "%s: expired %.0f days ago", cert, -left / 86400);
        goto out;
    }
    if (asn1_time(X509_get0_notBefore(x)) > now) {
        cfg_error(err, path, "%s: not valid yet", cert);
        goto out;
    }
    struct tls_cert *into = NULL;
    for (size_t k = 0; k < srv->ncerts; k++)
        if (same_names(&srv->certs[k], &c) && !(srv->certs[k].key_types & bit))
            into = &srv->certs[k];
    SSL_CTX *ctx = into ? into->ctx : server_ctx(pol);
    if (!ctx) {
        cfg_error(err, path, "cannot make a TLS context: %s", ossl_reason());
        goto out;
    }
    ERR_clear_error();
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        cfg_error(err, path, "%s: cannot load the chain: %s", cert, ossl_reason());
    } else if (access(key, R_OK) != 0) {
        snprintf(path, sizeof path, "certificates[%zu].key", i);
        cfg_error(err, path, "%s: cannot read: %s", key, strerror(errno));
    } else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(path, sizeof path, "certificates[%zu].key", i);
        cfg_error(err, path, "%s: not the key of %s (%s)", key, cert, ossl_reason());
    } else {
        rc = 0;
    }
    if (rc < 0) {
        if (!into)
            SSL_CTX_free(ctx);
        goto out;
    }
    if (left < EXPIRY_WARN_S)
        log_warn("certificate %s (%s) expires in %.0f days", cert, c.nnames ? c.names[0] : "no name", left / 86400);
    if (into) {
        into->key_types |= bit;
        if (c.not_after < into->not_after)
            into->not_after = c.not_after;
    } else {
        c.ctx = ctx;
        c.key_types = bit;
        srv->certs[srv->ncerts++] = c;
        memset(&c, 0, sizeof c);
    }
out:
    for (int k = 0; k < c.nnames; k++)
        free(c.names[k]);
    X509_free(x);
    free(cert);
    free(key);
    return rc;
}

struct tls_server *tls_server_new(const struct tls_cert_conf *certs, size_t n, const char *policy,
                                  const char *base_dir, char **err)
{
    const struct policy *pol = policy_find(policy);
    if (!pol) {
        cfg_error(err, "ssl_policy", "unknown policy \"%s\"", policy);
        return NULL;
    }
    if (n == 0) {
        cfg_error(err, "certificates", "an HTTPS listener needs at least one certificate");
        return NULL;
    }
    if (ex_server < 0)
        ex_server = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    ticket_seed_ensure();
    struct tls_server *srv = xcalloc(1, sizeof *srv);
    srv->refs = 1;
    srv->certs = xcalloc(n, sizeof *srv->certs);
    for (size_t i = 0; i < n; i++)
        if (load_cert(srv, &certs[i], i, pol, base_dir, err) < 0) {
            tls_server_unref(srv);
            return NULL;
        }
    return srv;
}

struct tls_server *tls_server_ref(struct tls_server *s)
{
    s->refs++;
    return s;
}

void tls_server_unref(struct tls_server *s)
{
    if (!s || --s->refs > 0)
        return;
    for (size_t i = 0; i < s->ncerts; i++)
        cert_free(&s->certs[i]);
    free(s->certs);
    free(s);
}

SSL *tls_server_ssl(struct tls_server *s, int fd)
{
    SSL *ssl = SSL_new(s->certs[0].ctx);
    if (!ssl)
        return NULL;
    SSL_set_fd(ssl, fd);
    SSL_set_accept_state(ssl);
    SSL_set_ex_data(ssl, ex_server, tls_server_ref(s));
    return ssl;
}

size_t tls_server_ncerts(const struct tls_server *s)
{
    return s->ncerts;
}

const char *tls_server_cert_name(const struct tls_server *s, size_t i)
{
    return s->certs[i].nnames ? s->certs[i].names[0] : "";
}

double tls_server_cert_expiry(const struct tls_server *s, size_t i)
{
    return s->certs[i].not_after;
}

/* ---- client contexts ---- */

SSL_CTX *tls_client_ctx(bool verify, const char *ca_file, bool system_cas, char **err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        cfg_error(err, NULL, "cannot make a TLS context: %s", ossl_reason());
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_alpn_protos(ctx, alpn_h11, sizeof alpn_h11 - 1);
    if (verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        ERR_clear_error();
        if (ca_file && SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
            cfg_error(err, NULL, "%s: cannot load CA certificates: %s", ca_file,
                      access(ca_file, R_OK) != 0 ? strerror(errno) : ossl_reason());
            SSL_CTX_free(ctx);
            return NULL;
        }
        if (system_cas)
            SSL_CTX_set_default_verify_paths(ctx);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    return ctx;
}

int tls_ca_file_check(const char *file, const char *path, char **err)
{
    char *e = NULL;
    SSL_CTX *ctx = tls_client_ctx(true, file, false, &e);
    if (!ctx) {
        cfg_error(err, path, "%s", e);
        free(e);
        return -1;
    }
    SSL_CTX_free(ctx);
    return 0;
}

SSL *tls_client_ssl(SSL_CTX *ctx, int fd, const char *host)
{
    SSL *ssl = SSL_new(ctx);
    if (!ssl)
        return NULL;
    SSL_set_fd(ssl, fd);
    SSL_set_connect_state(ssl);
    char h[256] = "";
    if (host) {
        /* Without the port: "name:port", "[v6]:port", "1.2.3.4:port". */
        const char *s = host, *e;
        if (*s == '[') {
            s++;
            e = strchr(s, ']');
        } else {
            e = strchr(s, ':');
            if (e && strchr(e + 1, ':'))
                e = NULL; /* a bare IPv6 address */
        }
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n < sizeof h)
            memcpy(h, s, n), h[n] = 0;
    }
    unsigned char tmp[16];
    bool ip = inet_pton(AF_INET, h, tmp) == 1 || inet_pton(AF_INET6, h, tmp) == 1;
    if (*h && !ip)
        SSL_set_tlsext_host_name(ssl, h);
    if (*h && SSL_CTX_get_verify_mode(ctx) & SSL_VERIFY_PEER) {
        if (ip)
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), h);
        else
            SSL_set1_host(ssl, h);
    }
    return ssl;
}

/* ---- I/O ---- */

static ssize_t ssl_fail(SSL *ssl, int r, int *want)
{
    int e = SSL_get_error(ssl, r);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        *want = EV_READ;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        *want = EV_WRITE;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        if (errno == 0 || errno == EAGAIN)
            errno = ECONNRESET;
        return -1;
    default:
        errno = EPROTO;
        return -1;
    }
}

ssize_t tls_sock_read(int fd, SSL *ssl, void *p, size_t n, int *want)
{
    *want = EV_READ;
    if (!ssl)
        return read(fd, p, n);
    ERR_clear_error();
    size_t got = 0;
    int r = SSL_read_ex(ssl, p, n, &got);
    if (r == 1)
        return (ssize_t)got;
    errno = 0;
    return ssl_fail(ssl, r, want);
}

ssize_t tls_sock_read_more(int fd, SSL *ssl, char *p, size_t n, int *want)
{
    ssize_t got = tls_sock_read(fd, ssl, p, n, want);
    if (got < 0 && errno != EAGAIN)
        *want = EV_READ;
    for (ssize_t more; ssl && got > 0 && (size_t)got + 16384 <= n; got += more) {
        more = tls_sock_read(fd, ssl, p + got, n - (size_t)got, want);
        if (more <= 0) {
            if (more == 0 || errno != EAGAIN)
                *want = EV_READ;
            break;
        }
    }
    return got;
}

ssize_t tls_sock_write(int fd, SSL *ssl, const void *p, size_t n, int *want)
{
    *want = EV_WRITE;
    if (!ssl)
        return send(fd, p, n, MSG_NOSIGNAL);
    ERR_clear_error();
    size_t put = 0;
    errno = 0;
    int r = SSL_write_ex(ssl, p, n, &put);
    if (r == 1)
        return (ssize_t)put;
    ssize_t rc = ssl_fail(ssl, r, want);
    if (rc == 0) {
        errno = EPIPE;
        rc = -1;
    }
    return rc;
}

ssize_t tls_flush(int fd, SSL *ssl, struct buf *out, int *want)
{
    ssize_t sent = 0;
    *want = EV_WRITE;
    while (out->len) {
        ssize_t n = tls_sock_write(fd, ssl, buf_head(out), out->len, want);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                break;
            return -1;
        }
        buf_consume(out, (size_t)n);
        sent += n;
    }
    return sent;
}

int tls_handshake(SSL *ssl, int *want)
{
    ERR_clear_error();
    errno = 0;
    int r = SSL_do_handshake(ssl);
    if (r == 1)
        return 1;
    if (ssl_fail(ssl, r, want) < 0 && errno == EAGAIN)
        return 0;
    return -1;
}

const char *tls_error(SSL *ssl, char *dst, size_t size)
{
    long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    unsigned long e = ERR_peek_last_error();
    if (v != X509_V_OK)
        snprintf(dst, size, "certificate verify failed: %s", X509_verify_cert_error_string(v));
    else if (e)
        snprintf(dst, size, "%s", ERR_reason_error_string(e) ? ERR_reason_error_string(e) : "TLS error");
    else
        snprintf(dst, size, "%s", errno && errno != EPROTO ? strerror(errno) : "connection closed during the handshake");
    return dst;
}

void tls_close(SSL *ssl)
{
    if (!ssl)
        return;
    if (SSL_is_init_finished(ssl)) {
        ERR_clear_error();
        SSL_shutdown(ssl); /* close_notify, if the socket takes it now; no waiting for the peer's */
    }
    if (ex_server >= 0)
        tls_server_unref(SSL_get_ex_data(ssl, ex_server));
    SSL_free(ssl);
    ERR_clear_error();
}

/* ---- control-plane blocks ---- */

static const struct cfg_field block_fields[] = {
    {"cert", CFG_STRING, offsetof(struct tls_block, cert), 0, 0, 0, NULL, NULL, false},
    {"key", CFG_STRING, offsetof(struct tls_block, key), 0, 0, 0, NULL, NULL, false},
    {"ca_file", CFG_STRING, offsetof(struct tls_block, ca_file), 0, 0, 0, NULL, NULL, false},
    CFG_END,
};

int tls_block_read(json_t *v, const char *path, struct tls_block *b, char **err)
{
    char p[256];
    memset(b, 0, sizeof *b);
    if (cfg_read(v, path, block_fields, b, err) < 0)
        return -1;
    if (!b->cert != !b->key) {
        cfg_path_key(p, sizeof p, path, b->cert ? "key" : "cert");
        return cfg_error(err, p, "is required with %s", b->cert ? "cert" : "key");
    }
    char *e = NULL;
    if (b->cert) {
        struct tls_cert_conf cc = {b->cert, b->key};
        struct tls_server *srv = tls_server_new(&cc, 1, NULL, NULL, &e);
        if (!srv) {
            /* "certificates[0].cert: ..." -> "tls.cert: ..." */
            const char *rest = strchr(e, '.');
            cfg_error(err, NULL, "%s.%s", path, rest ? rest + 1 : e);
            free(e);
            return -1;
        }
        tls_server_unref(srv);
    }
    cfg_path_key(p, sizeof p, path, "ca_file");
    return b->ca_file ? tls_ca_file_check(b->ca_file, p, err) : 0;
}

void tls_block_free(struct tls_block *b)
{
    cfg_free(block_fields, b);
}
