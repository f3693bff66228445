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

/* getopt_long values of the options, above any tool's own. */
enum {
    CURVEOPT_SECRET = 0x4000,
    CURVEOPT_SERVER_KEY,
    CURVEOPT_ALLOW,
    CURVEOPT_KEYGEN
};

/* Entries of a struct option table, each tool listing the ones it takes. */
#define CURVEOPT_SECRET_OPTION                                                 \
    {                                                                          \
        "curve-secret", required_argument, NULL, CURVEOPT_SECRET               \
    }
#define CURVEOPT_SERVER_KEY_OPTION                                             \
    {                                                                          \
        "curve-server-key", required_argument, NULL, CURVEOPT_SERVER_KEY       \
    }
#define CURVEOPT_ALLOW_OPTION                                                  \
    {                                                                          \
        "curve-allow", required_argument, NULL, CURVEOPT_ALLOW                 \
    }
#define CURVEOPT_KEYGEN_OPTION                                                 \
    {                                                                          \
        "curve-keygen", required_argument, NULL, CURVEOPT_KEYGEN               \
    }

/*
 * Takes getopt_long's c and optarg into c when c is one of the options
 * above (CURVEOPT_KEYGEN runs curveopt_keygen).  Returns 1 when it was.
 */
int curveopt_option(int c, const char *arg, struct curveopt *co);

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
