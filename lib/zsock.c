/*
 * zsock.c - endpoint specs, the data-parallel port rule, whole-message
 * receive and live frame validation (docs/protocol.md#frames).
 */
#include "zsock.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const schemes[] = {"tcp://", "ipc://", "inproc://"};

/* Length of the scheme prefix of s when it is one kvtap accepts, else 0. */
static size_t
scheme_len(const char *s, size_t n)
{
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
        size_t k = strlen(schemes[i]);
        if (n >= k && memcmp(s, schemes[i], k) == 0)
            return k;
    }
    return 0;
}

static char *
dup_n(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p == NULL)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* Checks one URI of n bytes; writes the reason to err on failure. */
static int
check_uri(const char *what, const char *s, size_t n, char *err, size_t errlen)
{
    size_t k = scheme_len(s, n);
    if (n == 0) {
        snprintf(err, errlen, "empty %s endpoint", what);
        return -1;
    }
    if (k == 0) {
        snprintf(err, errlen,
                 "%s endpoint '%.*s': expected tcp://, ipc:// or inproc://",
                 what, (int)n, s);
        return -1;
    }
    if (k == n) {
        snprintf(err, errlen, "%s endpoint '%.*s': nothing after the scheme",
                 what, (int)n, s);
        return -1;
    }
    if (k == strlen("tcp://") && memcmp(s, "tcp://", k) == 0) {
        const char *colon = NULL;
        for (size_t i = k; i < n; i++) {
            if (s[i] == ':')
                colon = s + i;
        }
        if (colon == NULL || colon == s + k || colon == s + n - 1) {
            snprintf(err, errlen,
                     "%s endpoint '%.*s': expected tcp://HOST:PORT", what,
                     (int)n, s);
            return -1;
        }
    }
    return 0;
}

/*
 * Finds the comma that separates the PUB URI from the replay URI: the first
 * one followed by an accepted scheme, so that a comma inside an ipc path
 * does not split it.  Falls back to the first comma (then the URI check
 * reports the bad scheme).
 */
static const char *
find_split(const char *s)
{
    const char *first = strchr(s, ',');
    for (const char *c = first; c != NULL; c = strchr(c + 1, ',')) {
        if (scheme_len(c + 1, strlen(c + 1)) > 0)
            return c;
    }
    return first;
}

int
zsock_spec_parse(const char *s, struct zsock_spec *out, char *err,
                 size_t errlen)
{
    const char *uri = s, *eq, *split, *split2 = NULL, *sep;
    size_t pub_n, rep_n = 0;

    memset(out, 0, sizeof *out);
    eq = strchr(s, '=');
    sep = strstr(s, "://");
    /* NAME= only counts when the '=' comes before the first scheme. */
    if (eq != NULL && (sep == NULL || eq < sep)) {
        if (eq == s) {
            snprintf(err, errlen, "endpoint spec '%s': empty NAME before '='",
                     s);
            return -1;
        }
        uri = eq + 1;
    }
    split = find_split(uri);
    pub_n = split ? (size_t)(split - uri) : strlen(uri);
    if (check_uri("PUB", uri, pub_n, err, errlen) == -1)
        return -1;
    if (split != NULL) {
        /*
         * A comma followed by a scheme starts the snapshot URI; any other
         * one too, except inside an ipc path, where it is a character.
         */
        split2 = find_split(split + 1);
        if (split2 != NULL && scheme_len(split2 + 1, strlen(split2 + 1)) == 0 &&
            strncmp(split + 1, "ipc://", 6) == 0)
            split2 = NULL;
        rep_n = split2 ? (size_t)(split2 - split - 1) : strlen(split + 1);
        if (check_uri("replay", split + 1, rep_n, err, errlen) == -1)
            return -1;
    }
    if (split2 != NULL && check_uri("snapshot", split2 + 1, strlen(split2 + 1),
                                    err, errlen) == -1)
        return -1;
    out->pub = dup_n(uri, pub_n);
    out->name = uri == s ? dup_n(uri, pub_n) : dup_n(s, (size_t)(eq - s));
    if (split != NULL)
        out->replay = dup_n(split + 1, rep_n);
    if (split2 != NULL)
        out->snapshot = dup_n(split2 + 1, strlen(split2 + 1));
    if (out->pub == NULL || out->name == NULL ||
        (split != NULL && out->replay == NULL) ||
        (split2 != NULL && out->snapshot == NULL)) {
        zsock_spec_free(out);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

int
zsock_offset_uri(const char *uri, int rank, char *out, size_t outlen, char *err,
                 size_t errlen)
{
    int n;

    if (rank < 0) {
        snprintf(err, errlen, "negative rank %d", rank);
        return -1;
    }
    if (rank == 0 || uri[0] == '\0') {
        n = snprintf(out, outlen, "%s", uri);
    } else if (strstr(uri, "inproc") != NULL) {
        n = snprintf(out, outlen, "%s_dp%d", uri, rank);
    } else if (strstr(uri, "tcp") != NULL) {
        const char *colon = strrchr(uri, ':');
        char *end;
        unsigned long port;

        if (colon == NULL || colon[1] < '0' || colon[1] > '9') {
            snprintf(err, errlen, "'%s': no numeric port to offset", uri);
            return -1;
        }
        errno = 0;
        port = strtoul(colon + 1, &end, 10);
        if (errno != 0 || *end != '\0' || port > 65535) {
            snprintf(err, errlen, "'%s': bad port", uri);
            return -1;
        }
        /* Port 0 means "OS-chosen": the engine leaves it alone. */
        if (port != 0)
            port += (unsigned long)rank;
        if (port > 65535) {
            snprintf(err, errlen, "'%s': port + rank %d exceeds 65535", uri,
                     rank);
            return -1;
        }
        n = snprintf(out, outlen, "%.*s:%lu", (int)(colon - uri), uri, port);
    } else {
        snprintf(err, errlen,
                 "'%s': the engine cannot offset this endpoint for rank %d "
                 "(only tcp and inproc)",
                 uri, rank);
        return -1;
    }
    if (n < 0 || (size_t)n >= outlen) {
        snprintf(err, errlen, "'%s': offset endpoint too long", uri);
        return -1;
    }
    return 0;
}

int
zsock_spec_expand(const struct zsock_spec *in, int dp_size,
                  struct zsock_spec *out, char *err, size_t errlen)
{
    char pub[1024], rep[1024], snap[1024], name[1024];
    int r;

    if (dp_size < 1) {
        snprintf(err, errlen, "data-parallel size %d < 1", dp_size);
        return -1;
    }
    for (r = 0; r < dp_size; r++) {
        memset(&out[r], 0, sizeof out[r]);
        if (zsock_offset_uri(in->pub, r, pub, sizeof pub, err, errlen) == -1)
            goto fail;
        if (in->replay != NULL &&
            zsock_offset_uri(in->replay, r, rep, sizeof rep, err, errlen) == -1)
            goto fail;
        if (in->snapshot != NULL &&
            zsock_offset_uri(in->snapshot, r, snap, sizeof snap, err, errlen) ==
                -1)
            goto fail;
        if ((size_t)snprintf(name, sizeof name, "%s/%d", in->name, r) >=
            sizeof name) {
            snprintf(err, errlen, "source name too long");
            goto fail;
        }
        out[r].pub = strdup(pub);
        out[r].name = strdup(name);
        out[r].replay = in->replay ? strdup(rep) : NULL;
        out[r].snapshot = in->snapshot ? strdup(snap) : NULL;
        if (out[r].pub == NULL || out[r].name == NULL ||
            (in->replay != NULL && out[r].replay == NULL) ||
            (in->snapshot != NULL && out[r].snapshot == NULL)) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }
    return 0;
fail:
    for (int i = 0; i <= r && i < dp_size; i++)
        zsock_spec_free(&out[i]);
    return -1;
}

void
zsock_spec_free(struct zsock_spec *s)
{
    if (s == NULL)
        return;
    free(s->name);
    free(s->pub);
    free(s->replay);
    free(s->snapshot);
    s->name = s->pub = s->replay = s->snapshot = NULL;
}

int
zsock_msg_recv(void *sock, struct zsock_msg *m, int flags)
{
    int more = 1;

    m->kept = 0;
    m->nparts = 0;
    while (more) {
        zmq_msg_t tmp;
        zmq_msg_t *part = m->kept < ZSOCK_MAX_PARTS ? &m->part[m->kept] : &tmp;

        zmq_msg_init(part);
        /*
         * Later parts of a multipart message are delivered atomically with
         * the first, so only the first receive may block or see EAGAIN.
         */
        if (zmq_msg_recv(part, sock, m->nparts == 0 ? flags : 0) == -1) {
            int e = errno;
            zmq_msg_close(part);
            if (m->nparts > 0 && e == EINTR)
                continue;
            zsock_msg_close(m);
            errno = e;
            return -1;
        }
        more = zmq_msg_more(part);
        m->nparts++;
        if (part == &tmp)
            zmq_msg_close(&tmp);
        else
            m->kept++;
    }
    return 0;
}

void
zsock_msg_close(struct zsock_msg *m)
{
    if (m == NULL)
        return;
    for (int i = 0; i < m->kept; i++)
        zmq_msg_close(&m->part[i]);
    m->kept = 0;
    m->nparts = 0;
}

void
zsock_msg_move(struct zsock_msg *dst, struct zsock_msg *src)
{
    for (int i = 0; i < src->kept; i++) {
        zmq_msg_init(&dst->part[i]);
        zmq_msg_move(&dst->part[i], &src->part[i]);
        zmq_msg_close(&src->part[i]);
    }
    dst->kept = src->kept;
    dst->nparts = src->nparts;
    src->kept = 0;
    src->nparts = 0;
}

const uint8_t *
zsock_part(const struct zsock_msg *m, int i, size_t *len)
{
    if (i < 0 || i >= m->kept) {
        *len = 0;
        return NULL;
    }
    /* zmq_msg_data/size take a non-const pointer but do not modify. */
    zmq_msg_t *p = (zmq_msg_t *)&m->part[i];
    *len = zmq_msg_size(p);
    return zmq_msg_data(p);
}

int
zsock_live_parse(const struct zsock_msg *m, uint64_t *seq,
                 const uint8_t **stream, const uint8_t **payload, size_t *len,
                 char *err, size_t errlen)
{
    const uint8_t *s;
    size_t slen;

    if (m->nparts != 3) {
        snprintf(err, errlen, "message has %d parts, expected 3", m->nparts);
        return -1;
    }
    s = zsock_part(m, 1, &slen);
    if (slen != 8 && slen != 8 + ZSOCK_STREAM_ID_LEN) {
        snprintf(err, errlen, "seq frame is %zu bytes, expected 8 or 24", slen);
        return -1;
    }
    *seq = zsock_get_be64(s);
    *stream = slen == 8 ? NULL : s + 8;
    if (*seq == UINT64_MAX) {
        snprintf(err, errlen, "seq is the replay end marker");
        return -1;
    }
    *payload = zsock_part(m, 2, len);
    return 0;
}

uint64_t
zsock_get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

void
zsock_put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)(v & 0xff);
        v >>= 8;
    }
}

int
zsock_set_common(void *sock)
{
    int linger = 0;
    return zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
}
