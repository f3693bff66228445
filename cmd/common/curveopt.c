/*
 * curveopt.c - loading the CURVE key files (curveopt.h).
 */
#include "curveopt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cli.h"
#include "curve.h"

/* Loaded for the whole process: curve_use borrows the allow list. */
static struct curve_keys keys;

int
curveopt_option(int c, const char *arg, struct curveopt *co)
{
    switch (c) {
    case CURVEOPT_SECRET:
        co->secret = arg;
        return 1;
    case CURVEOPT_SERVER_KEY:
        co->server = arg;
        return 1;
    case CURVEOPT_ALLOW:
        co->allow = arg;
        return 1;
    case CURVEOPT_KEYGEN:
        curveopt_keygen(arg);
    default:
        return 0;
    }
}

void
curveopt_load(const struct curveopt *c)
{
    char err[4400];

    if (c->allow != NULL && c->secret == NULL)
        cli_usage_error("--curve-allow needs --curve-secret (the key pair "
                        "the bound socket serves with)");
    if ((c->secret != NULL &&
         curve_load_secret(&keys, c->secret, err, sizeof err) == -1) ||
        (c->server != NULL &&
         curve_load_server(&keys, c->server, err, sizeof err) == -1) ||
        (c->allow != NULL &&
         curve_load_allow(&keys, c->allow, err, sizeof err) == -1)) {
        log_error("%s", err);
        exit(1);
    }
    curve_use(&keys);
}

void
curveopt_keygen(const char *prefix)
{
    char pub[CURVE_KEY_Z85 + 1], err[4400], path[4200];
    struct buf b = {0};
    int rc;

    if (curve_keygen(prefix, pub, err, sizeof err) == -1) {
        log_error("%s", err);
        exit(1);
    }
    snprintf(path, sizeof path, "%s.key", prefix);
    buf_puts(&b, "{\"secret_key_file\":");
    buf_put_json_str(&b, path, strlen(path));
    snprintf(path, sizeof path, "%s.pub", prefix);
    buf_puts(&b, ",\"public_key_file\":");
    buf_put_json_str(&b, path, strlen(path));
    buf_puts(&b, ",\"public_key\":\"");
    buf_puts(&b, pub);
    buf_puts(&b, "\"}\n");
    rc = b.oom || fwrite(b.p, 1, b.len, stdout) != b.len || fflush(stdout);
    buf_free(&b);
    exit(rc ? 1 : 0);
}
