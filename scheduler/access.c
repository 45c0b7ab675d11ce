/* access.c -- who may call the scheduler's API: tokens by role (SPEC §7), and per-node tokens for
 * berth-agent, derived from a secret kept in data_dir so that no node token is ever stored. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "berth/auth.h"
#include "berth/config.h"
#include "berth/httpd.h"
#include "berth/util.h"
#include "sched.h"

void sched_node_token(const struct sched *sc, const char *node, char hex[65])
{
    auth_hmac_hex(sc->node_secret, sizeof sc->node_secret, node, hex);
}

int sched_node_secret_load(struct sched *sc, char **err)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/node-secret", sc->data_dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, sc->node_secret, sizeof sc->node_secret);
        close(fd);
        if (n == (ssize_t)sizeof sc->node_secret)
            return 0;
        return cfg_error(err, NULL, "%s: shorter than %zu bytes; remove it to make a new one (agents then register "
                                    "again)", path, sizeof sc->node_secret);
    }
    if (getrandom(sc->node_secret, sizeof sc->node_secret, 0) != (ssize_t)sizeof sc->node_secret)
        return cfg_error(err, NULL, "getrandom: %s", strerror(errno));
    if (util_write_private(path, sc->node_secret, sizeof sc->node_secret) < 0)
        return cfg_error(err, NULL, "%s: %s", path, strerror(errno));
    return 0;
}

int sched_authz(const struct httpd_req *req, void *arg)
{
    struct sched *sc = arg;
    if (!sc->auth || sc->auth->n == 0)
        return 0;
    bool nodes = req->nsegs >= 2 && strcmp(req->segs[0], "v1") == 0 && strcmp(req->segs[1], "nodes") == 0;
    bool registers = nodes && req->nsegs == 2 && req->method_id == HTTP_M_POST;
    bool heartbeat = nodes && req->nsegs == 4 && strcmp(req->segs[3], "heartbeat") == 0 &&
                     req->method_id == HTTP_M_POST;
    const struct auth_token *t = auth_find(sc->auth, req->bearer);
    if (t && t->role == AUTH_ROLE_AGENT)
        return registers ? 0 : 403; /* a join token joins, nothing more */
    if (t)
        return auth_allow(sc->auth, req->bearer, req->method);
    if (heartbeat && req->bearer) {
        /* A node's own token, for its own heartbeats only. */
        char want[65];
        sched_node_token(sc, req->segs[2], want);
        return auth_equal(want, req->bearer) ? 0 : 401;
    }
    return 401;
}
