/* tls.h -- TLS with OpenSSL 3 on non-blocking sockets (tls.c): server contexts (certificates chosen
 * by SNI, ALB security policies, stateless session tickets with rotated keys), client contexts, and
 * reading and writing a socket that may or may not carry TLS. */
#ifndef BERTH_TLS_H
#define BERTH_TLS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* OpenSSL's types (its headers are left to the files that use its API). */
typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;

/* One certificate of a server: a PEM chain (leaf first) and its key. */
struct tls_cert_conf {
    char *cert, *key;
};

/* A control-plane "tls" block (SPEC §6): {"cert", "key"} to serve HTTPS on the daemon's API, and
 * "ca_file", the CAs its https:// peers are verified against (besides $BERTH_CACERT and the
 * system's). All optional; cert and key go together. */
struct tls_block {
    char *cert, *key, *ca_file;
};
/* Reads the block at <path> (v NULL: none) and loads what it names once, so a bad file is a config
 * error ("tls.key: ..."). 0, or -1 with *err. */
int tls_block_read(json_t *v, const char *path, struct tls_block *b, char **err);
void tls_block_free(struct tls_block *b);

/* A server's TLS: one SSL_CTX per certificate (certificates with the same names and different key
 * types share one, so ECDSA and RSA clients each get theirs), chosen by SNI. Reference counted:
 * connections keep the one they started with when it is replaced. */
struct tls_server;

/* The policies tls_server_new knows ("ELBSecurityPolicy-..."), NULL-terminated; the first is the
 * default. */
extern const char *const tls_policy_names[];
/* True when <name> is a known policy. */
bool tls_policy_known(const char *name);

/* Loads <n> certificates (paths relative to <base_dir> unless absolute; NULL: the working
 * directory) under <policy> (NULL: the default). NULL with *err ("certificates[1].key: ...") when a
 * file cannot be read, a key does not match its certificate or a certificate has expired. A
 * certificate that expires within 30 days is logged as a warning. */
struct tls_server *tls_server_new(const struct tls_cert_conf *certs, size_t n, const char *policy,
                                  const char *base_dir, char **err);
struct tls_server *tls_server_ref(struct tls_server *s);
void tls_server_unref(struct tls_server *s);
/* A server-side SSL for accepted socket <fd>. */
SSL *tls_server_ssl(struct tls_server *s, int fd);
/* The certificates' first names and expiry times (Unix seconds), for metrics. */
size_t tls_server_ncerts(const struct tls_server *s);
const char *tls_server_cert_name(const struct tls_server *s, size_t i);
double tls_server_cert_expiry(const struct tls_server *s, size_t i);

/* The secret session ticket keys derive from: processes with the same seed (the workers of one
 * proxy) accept each other's tickets. Set it before the first server context; random otherwise. */
void tls_ticket_seed_set(const unsigned char *seed, size_t n);
/* The seed as hex into <hex> (65 bytes), making one if none is set. */
void tls_ticket_seed_hex(char *hex);
/* How long a ticket key encrypts (seconds); tickets are accepted for twice this. */
#define TLS_TICKET_ROTATE_S 3600

/* A client context: TLS 1.2+, verifying the peer against <ca_file> (and the system's CAs when
 * <system_cas>) when <verify>. NULL with *err. */
SSL_CTX *tls_client_ctx(bool verify, const char *ca_file, bool system_cas, char **err);
/* Checks that CA file <file> loads (config key <path>, named in *err): 0, or -1 with *err. */
int tls_ca_file_check(const char *file, const char *path, char **err);
/* A client-side SSL on connected (or connecting) socket <fd>; <host> is sent as SNI (unless an IP)
 * and checked against the certificate when the context verifies. */
SSL *tls_client_ssl(SSL_CTX *ctx, int fd, const char *host);

/* Reads from <fd>, through <ssl> when not NULL: bytes, 0 at the end of the stream, or -1 with errno
 * (EAGAIN: call again when the socket is ready for *want, EV_READ or EV_WRITE; EPROTO: a TLS error,
 * tls_error says which). Performs the handshake first when it is not done. */
ssize_t tls_sock_read(int fd, SSL *ssl, void *p, size_t n, int *want);
/* As tls_sock_read, and over TLS (where one read returns one record, up to 16 KiB) on while a whole
 * record still fits: the bytes read (what came before an EAGAIN or the end counts), 0 at the end,
 * or -1 with errno. *want is EV_WRITE only when reading waits for the socket to take a write. */
ssize_t tls_sock_read_more(int fd, SSL *ssl, char *p, size_t n, int *want);
/* Writes as tls_sock_read reads (never SIGPIPE). */
ssize_t tls_sock_write(int fd, SSL *ssl, const void *p, size_t n, int *want);
struct buf;
/* Sends what <out> holds (consumed as it goes) until it is empty or the socket is full: the bytes
 * sent (0 with nothing sent), or -1 with errno on an error (*want: what a full socket waits for). */
ssize_t tls_flush(int fd, SSL *ssl, struct buf *out, int *want);
/* Advances the handshake: 1 done, 0 again when the socket is ready for *want, -1 failed. */
int tls_handshake(SSL *ssl, int *want);
/* What went wrong with <ssl>'s last failed call (verification results included), into <dst>. */
const char *tls_error(SSL *ssl, char *dst, size_t size);
/* Sends close_notify if it can without blocking, and frees <ssl> (NULL: nothing). */
void tls_close(SSL *ssl);

#endif
