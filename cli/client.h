/* client.h -- the berth CLI's blocking HTTP client and the scheduler commands. */
#ifndef BERTH_CLI_CLIENT_H
#define BERTH_CLI_CLIENT_H

/* The API token: $BERTH_TOKEN, else the first line of ~/.config/berth/token (refused, with
 * *problem set, when others may read that file). NULL when there is none. */
const char *cli_token(char **problem);
/* One HTTP/1.1 request to <addr> ("http://IP:PORT" or "IP:PORT"); returns the status and sets
 * *body (malloc'd, NUL-terminated) or returns -1 with *body set to a reason. */
int cli_http(const char *addr, const char *method, const char *path, const char *req_body, char **body);
/* `berth taskdef|service|task|node|events ...` against $BERTH_ADDR; returns the exit status. */
int cli_scheduler(int argc, char **argv);

#endif
