/*
 * curve.c - CURVE keys, socket options and a ZAP handler (curve.h).
 */
#include "curve.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

/* The process's keys (curve_use). */
static struct curve_keys used;

/*
 * Calls fn for every key line of path (comments and blank lines skipped,
 * surrounding blanks trimmed).  A line that is not a Z85 key is an error.
 * Returns the number of keys, or -1 (err).
 */
static long
each_key(FILE *f, const char *path, int (*fn)(void *, const char *), void *arg,
         char *err, size_t errlen)
{
    char line[256];
    uint8_t bin[32];
    long n = 0, lineno = 0;

    while (fgets(line, sizeof line, f) != NULL) {
        char *s = line, *e;

        lineno++;
        while (*s == ' ' || *s == '\t')
            s++;
        e = s + strcspn(s, "\r\n");
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        *e = '\0';
        if (*s == '\0' || *s == '#')
            continue;
        if (e - s != CURVE_KEY_Z85 || zmq_z85_decode(bin, s) == NULL) {
            snprintf(err, errlen,
                     "%s: line %ld: not a CURVE key (40 characters of Z85)",
                     path, lineno);
            return -1;
        }
        if (fn(arg, s) == -1) {
            snprintf(err, errlen, "%s: out of memory", path);
            return -1;
        }
        n++;
    }
    if (ferror(f)) {
        snprintf(err, errlen, "%s: read error", path);
        return -1;
    }
    if (n == 0)
        snprintf(err, errlen, "%s: no CURVE key in the file", path);
    return n;
}

/* Keeps the first key only: a key file holds one. */
static int
take_one(void *arg, const char *key)
{
    char *out = arg;

    if (out[0] == '\0')
        memcpy(out, key, CURVE_KEY_Z85 + 1);
    return 0;
}

static int
load_one(const char *path, int secret, char *out, char *err, size_t errlen)
{
    struct stat st;
    FILE *f = fopen(path, "r");
    long n;

    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    /* Like ssh with a private key: one that others may read is refused,
     * not merely warned about, since it is no longer secret. */
    if (secret && fstat(fileno(f), &st) == 0 && (st.st_mode & 077) != 0) {
        snprintf(err, errlen,
                 "%s: a secret key others may access (mode %04o); chmod "
                 "600 it",
                 path, (unsigned)(st.st_mode & 07777));
        fclose(f);
        return -1;
    }
    out[0] = '\0';
    n = each_key(f, path, take_one, out, err, errlen);
    fclose(f);
    return n > 0 ? 0 : -1;
}

int
curve_load_secret(struct curve_keys *k, const char *path, char *err,
                  size_t errlen)
{
    if (load_one(path, 1, k->secret, err, errlen) == -1)
        return -1;
    if (zmq_curve_public(k->public, k->secret) == -1) {
        snprintf(err, errlen, "%s: %s", path, zmq_strerror(errno));
        return -1;
    }
    return 0;
}

int
curve_load_server(struct curve_keys *k, const char *path, char *err,
                  size_t errlen)
{
    return load_one(path, 0, k->server, err, errlen);
}

static int
add_allowed(void *arg, const char *key)
{
    struct curve_keys *k = arg;
    char *p = realloc(k->allow, (k->nallow + 1) * CURVE_KEY_Z85);

    if (p == NULL)
        return -1;
    memcpy(p + k->nallow * CURVE_KEY_Z85, key, CURVE_KEY_Z85);
    k->allow = p;
    k->nallow++;
    return 0;
}

int
curve_load_allow(struct curve_keys *k, const char *path, char *err,
                 size_t errlen)
{
    FILE *f = fopen(path, "r");
    long n;

    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    n = each_key(f, path, add_allowed, k, err, errlen);
    fclose(f);
    return n > 0 ? 0 : -1;
}

void
curve_keys_free(struct curve_keys *k)
{
    if (k == NULL)
        return;
    free(k->allow);
    k->allow = NULL;
    k->nallow = 0;
}

/* Writes text to a new file (never replacing one) with mode. */
static int
write_new(const char *path, mode_t mode, const char *text, char *err,
          size_t errlen)
{
    int fd =
        open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    size_t n = strlen(text);

    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (write(fd, text, n) != (ssize_t)n || fsync(fd) < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return -1;
    }
    return close(fd);
}

int
curve_keygen(const char *prefix, char *pub, char *err, size_t errlen)
{
    char sec[CURVE_KEY_Z85 + 1], path[4096], text[256];

    if (zmq_curve_keypair(pub, sec) == -1) {
        snprintf(err, errlen, "zmq_curve_keypair: %s", zmq_strerror(errno));
        return -1;
    }
    snprintf(path, sizeof path, "%s.key", prefix);
    snprintf(text, sizeof text,
             "# kvtap CURVE secret key: keep it private (mode 0600)\n%s\n",
             sec);
    if (write_new(path, 0600, text, err, errlen) == -1)
        return -1;
    snprintf(path, sizeof path, "%s.pub", prefix);
    snprintf(text, sizeof text, "# kvtap CURVE public key\n%s\n", pub);
    if (write_new(path, 0644, text, err, errlen) == -1) {
        snprintf(path, sizeof path, "%s.key", prefix);
        unlink(path);
        return -1;
    }
    return 0;
}

void
curve_use(const struct curve_keys *k)
{
    used = *k;
}

int
curve_serves(void)
{
    return used.secret[0] != '\0';
}

int
curve_connects(void)
{
    return used.server[0] != '\0';
}

int
curve_allows(void)
{
    return used.nallow > 0;
}

int
curve_apply(void *sock, int binds)
{
    static char eph_pub[CURVE_KEY_Z85 + 1], eph_sec[CURVE_KEY_Z85 + 1];
    const char *pub = used.public, *sec = used.secret;
    int one = 1;

    if (binds) {
        if (!curve_serves())
            return 0;
        return zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) == -1 ||
                       zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, sec,
                                      CURVE_KEY_Z85) == -1
                   ? -1
                   : 0;
    }
    if (!curve_connects())
        return 0;
    if (!curve_serves()) {
        /* No key of its own: one for this process, which no allow list
         * names, so only a server without a list admits it. */
        if (eph_pub[0] == '\0' && zmq_curve_keypair(eph_pub, eph_sec) == -1)
            return -1;
        pub = eph_pub;
        sec = eph_sec;
    }
    return zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, used.server,
                          CURVE_KEY_Z85) == -1 ||
                   zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, pub,
                                  CURVE_KEY_Z85) == -1 ||
                   zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, sec,
                                  CURVE_KEY_Z85) == -1
               ? -1
               : 0;
}

struct curve_zap {
    void *rep;
    pthread_t thread;
    atomic_int stop;
    atomic_ulong refused;
};

/* Whether the 32-byte key is in the allow list. */
static int
allowed(const uint8_t *key)
{
    char z85[CURVE_KEY_Z85 + 1];

    if (zmq_z85_encode(z85, key, 32) == NULL)
        return 0;
    for (size_t i = 0; i < used.nallow; i++)
        if (memcmp(used.allow + i * CURVE_KEY_Z85, z85, CURVE_KEY_Z85) == 0)
            return 1;
    return 0;
}

/*
 * Answers one ZAP request (rfc.zeromq.org/spec/27): version, request id,
 * domain, address, routing id, mechanism, credentials.  Only CURVE with a
 * listed key gets 200.
 */
static void
zap_answer(struct curve_zap *z)
{
    zmq_msg_t part[8];
    int n = 0, ok;
    char id[256] = "";
    size_t idlen = 0;

    for (int more = 1; more && n < 8; n++) {
        zmq_msg_init(&part[n]);
        if (zmq_msg_recv(&part[n], z->rep, 0) == -1) {
            zmq_msg_close(&part[n]);
            goto out;
        }
        more = zmq_msg_more(&part[n]);
    }
    ok = n == 7 && zmq_msg_size(&part[5]) == 5 &&
         memcmp(zmq_msg_data(&part[5]), "CURVE", 5) == 0 &&
         zmq_msg_size(&part[6]) == 32 && allowed(zmq_msg_data(&part[6]));
    if (n >= 2 && zmq_msg_size(&part[1]) < sizeof id) {
        idlen = zmq_msg_size(&part[1]);
        memcpy(id, zmq_msg_data(&part[1]), idlen);
    }
    if (!ok)
        atomic_fetch_add(&z->refused, 1);
    zmq_send(z->rep, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(z->rep, id, idlen, ZMQ_SNDMORE);
    zmq_send(z->rep, ok ? "200" : "400", 3, ZMQ_SNDMORE);
    zmq_send(z->rep, ok ? "OK" : "client key not allowed", ok ? 2 : 22,
             ZMQ_SNDMORE);
    zmq_send(z->rep, "", 0, ZMQ_SNDMORE);
    zmq_send(z->rep, "", 0, 0);
out:
    for (int i = 0; i < n; i++)
        zmq_msg_close(&part[i]);
}

static void *
zap_main(void *arg)
{
    struct curve_zap *z = arg;
    zmq_pollitem_t it = {z->rep, 0, ZMQ_POLLIN, 0};

    /* Polled with a short timeout so that curve_zap_stop is seen soon. */
    while (!atomic_load(&z->stop)) {
        if (zmq_poll(&it, 1, 50) > 0)
            zap_answer(z);
    }
    return NULL;
}

struct curve_zap *
curve_zap_start(void *zctx, char *err, size_t errlen)
{
    struct curve_zap *z = calloc(1, sizeof *z);
    int zero = 0;

    if (z == NULL) {
        snprintf(err, errlen, "ZAP handler: out of memory");
        return NULL;
    }
    z->rep = zmq_socket(zctx, ZMQ_REP);
    if (z->rep == NULL ||
        zmq_setsockopt(z->rep, ZMQ_LINGER, &zero, sizeof zero) == -1 ||
        zmq_bind(z->rep, "inproc://zeromq.zap.01") == -1) {
        snprintf(err, errlen, "ZAP handler: %s", zmq_strerror(errno));
        goto fail;
    }
    if (pthread_create(&z->thread, NULL, zap_main, z) != 0) {
        snprintf(err, errlen, "ZAP handler: cannot start its thread");
        goto fail;
    }
    return z;
fail:
    if (z->rep != NULL)
        zmq_close(z->rep);
    free(z);
    return NULL;
}

unsigned long
curve_zap_refused(struct curve_zap *z)
{
    return z == NULL ? 0 : atomic_load(&z->refused);
}

void
curve_zap_stop(struct curve_zap *z)
{
    if (z == NULL)
        return;
    atomic_store(&z->stop, 1);
    pthread_join(z->thread, NULL);
    zmq_close(z->rep);
    free(z);
}
