/*
 * curveopt.h - the CURVE options kvpub, kvsub and kvreplay share
 * (docs/cli.md#keys-curve): key files named on the command line, never the
 * keys themselves, loaded once before any socket is made.
 */
#ifndef KVTAP_CURVEOPT_H
#define KVTAP_CURVEOPT_H

/* The files as given; NULL when the option was not. */
struct curveopt {
    const char *secret; /* --curve-secret: own key pair (the secret key) */
    const char *server; /* --curve-server-key: the server's public key */
    const char *allow;  /* --curve-allow: clients a bound socket admits */
};

/*
 * Checks the combination (a usage error ends the process), loads the files
 * and makes them the process's keys (lib/curve.h: curve_use).  A file that
 * cannot be read, holds no key, or a secret key others may access ends the
 * process with exit 1 and the reason on stderr.
 */
void curveopt_load(const struct curveopt *c);

/*
 * --curve-keygen PREFIX: writes PREFIX.key and PREFIX.pub, prints one JSON
 * line naming them and the public key, and ends the process (0, or 1 with
 * the reason on stderr).
 */
void curveopt_keygen(const char *prefix) __attribute__((noreturn));

#endif
