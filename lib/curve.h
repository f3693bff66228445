/*
 * curve.h - ZeroMQ CURVE for kvtap's own hops (kvpub -> kvsub/kvreplay,
 * kvpub -c -> kvsub -b): key files, key generation, the options a socket
 * gets, and a ZAP handler that admits only listed clients
 * (docs/cli.md#keys-curve).
 *
 * Keys are Z85 text, 40 characters, as zmq_curve_keypair() makes them, one
 * per line in their files; lines starting with '#' and blank lines are
 * ignored.  A secret key file must not be accessible to group or others
 * (like ssh's private keys); it is refused otherwise.
 *
 * The keys are a process-wide setting (curve_use), like the verbosity:
 * every socket a tool makes for a kvtap hop goes through curve_apply,
 * which makes a socket that binds a CURVE server (when a secret key was
 * given) and one that connects a CURVE client (when a server key was
 * given), so that library code (lib/replay) needs no extra parameters.
 */
#ifndef KVTAP_CURVE_H
#define KVTAP_CURVE_H

#include <stddef.h>

#define CURVE_KEY_Z85 40 /* characters of a key in Z85 */

struct curve_keys {
    char secret[CURVE_KEY_Z85 + 1]; /* own secret key, "" if none */
    char public[CURVE_KEY_Z85 + 1]; /* its public key (derived) */
    char server[CURVE_KEY_Z85 + 1]; /* the server's public key, "" if none */
    char *allow;   /* owned: listed clients' public keys, 40 chars each */
    size_t nallow; /* 0: no list (any client with the server key) */
};

/*
 * Reads the secret key in path into k->secret (and k->public).  Refuses a
 * file that group or others may read or write.  Returns 0 or -1 (err).
 */
int curve_load_secret(struct curve_keys *k, const char *path, char *err,
                      size_t errlen);

/* Reads the server's public key in path into k->server.  Returns 0 or -1. */
int curve_load_server(struct curve_keys *k, const char *path, char *err,
                      size_t errlen);

/* Reads the allowed clients' public keys (one per line, at least one) into
 * k->allow.  Returns 0 or -1 (err). */
int curve_load_allow(struct curve_keys *k, const char *path, char *err,
                     size_t errlen);

/* Frees k->allow.  Accepts NULL. */
void curve_keys_free(struct curve_keys *k);

/*
 * Makes a key pair: PREFIX.key (the secret key, mode 0600) and PREFIX.pub
 * (the public key, mode 0644), refusing to replace either.  On success
 * the public key is copied to pub (CURVE_KEY_Z85 + 1 bytes).  Returns 0 or
 * -1 (err).
 */
int curve_keygen(const char *prefix, char *pub, char *err, size_t errlen);

/* Makes k the process's keys (copied; the allow list is borrowed until
 * the end of the process).  Before any socket is made. */
void curve_use(const struct curve_keys *k);

/* Whether curve_use set a secret key / a server key / an allow list. */
int curve_serves(void);
int curve_connects(void);
int curve_allows(void);

/*
 * Sets the CURVE options on sock before it binds (binds != 0) or connects:
 * a CURVE server with the secret key, or a client of the server key with
 * the own key pair (an ephemeral one when no secret key was given).
 * Nothing when the process has no key for that role.  Returns 0 or -1
 * with errno.
 */
int curve_apply(void *sock, int binds);

/*
 * The ZAP handler: a thread answering libzmq's authentication requests on
 * inproc://zeromq.zap.01 of zctx, admitting CURVE clients whose public
 * key is in the allow list and refusing all others (and every other
 * mechanism).  Start it before the first bind, stop it before
 * zmq_ctx_term.  Returns NULL with the reason in err.
 */
struct curve_zap;
struct curve_zap *curve_zap_start(void *zctx, char *err, size_t errlen);

/* Clients refused so far. */
unsigned long curve_zap_refused(struct curve_zap *z);

/* Stops the thread and frees z.  Accepts NULL. */
void curve_zap_stop(struct curve_zap *z);

#endif
