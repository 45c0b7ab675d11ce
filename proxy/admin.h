/* admin.h -- the admin API of one proxy process (admin.c): SPEC §2, HTTP only. */
#ifndef BERTH_PROXY_ADMIN_H
#define BERTH_PROXY_ADMIN_H

struct proxy;

/* Serves the admin API on px->conf->admin_listen; 0, or -1 with *err. */
int proxy_admin_start(struct proxy *px, char **err);

#endif
