/*
 * client.h - the built-in client: one connection to a kvindex server, one
 * request line out and one reply line back at a time, with a timeout.
 */
#ifndef KVINDEX_CLIENT_H
#define KVINDEX_CLIENT_H

#include <stddef.h>

#include "lines.h"

/* The longest reply line read: the server's own cap on one reply. */
#define CLIENT_MAX_REPLY ((size_t)1 << 30)

struct client {
    int fd;
    struct lines in; /* reply lines; a reply is handed out from here */
    long long timeout_ms;
};

/*
 * Connects to path.  With wait_ms > 0 a server that is not there yet is
 * retried until wait_ms have passed (readiness checks).  A server run by
 * another user than ours, root or trusted_uid (-1: none) is refused: it
 * could answer in the real one's place.  Returns 0, or -1 with the reason
 * in err.
 */
int client_open(struct client *c, const char *path, long long timeout_ms,
                long long wait_ms, long long trusted_uid, char *err,
                size_t errlen);

/*
 * Sends req (one line, without '\n') and waits for one reply line.  *reply
 * is borrowed until the next call.  Returns 0, or -1 with the reason in err
 * (timeout, server gone, a reply over CLIENT_MAX_REPLY bytes).
 */
int client_call(struct client *c, const char *req, size_t n, const char **reply,
                size_t *rlen, char *err, size_t errlen);

/*
 * Sends req (one line, without '\n') and passes its reply to sink as it
 * arrives, in pieces, without the final '\n', for a reply too large to
 * hold (a dump).  The timeout bounds each wait for more, not the whole
 * reply.  Nothing may follow the reply on the connection.  Returns 0, or
 * -1 with the reason in err (sink returned -1: strerror(errno)).
 */
int client_call_stream(struct client *c, const char *req, size_t n,
                       int (*sink)(void *ctx, const char *p, size_t n),
                       void *ctx, char *err, size_t errlen);

/* Closes and frees.  Accepts a client that never opened. */
void client_close(struct client *c);

#endif
