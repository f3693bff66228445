/*
 * conn.c - connecting to NATS, the kvtap stream, subject tokens
 * (docs/cluster.md#subjects-and-headers).
 */
#include "conn.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

/* The longest a connection drains at exit (conn_drain). */
#define CLOSE_DRAIN_MS 1000

void
conn_strerror(natsStatus s, const char *what, char *err, size_t errlen)
{
    natsStatus ls = NATS_OK;
    const char *detail = nats_GetLastError(&ls);

    /* A call that failed after a denial failed because of it. */
    if (conn_denied(err, errlen))
        return;
    /* libnats starts a detail with its own source line, "(conn.c:1905): ". */
    if (detail != NULL && detail[0] == '(' && strstr(detail, "): ") != NULL)
        detail = strstr(detail, "): ") + 3;
    if (detail != NULL && *detail != '\0' && ls == s &&
        strstr(detail, natsStatus_GetText(s)) == NULL)
        snprintf(err, errlen, "%s: %s (%s)", what, natsStatus_GetText(s),
                 detail);
    else
        snprintf(err, errlen, "%s: %s", what, natsStatus_GetText(s));
}

static void
sleep_ms(uint64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/*
 * A permission the server denies never becomes an answer: the publish is
 * dropped, the request times out, the subscription gets nothing.  The
 * server says so once, asynchronously; the first such error is kept and
 * the connection closed, so that whatever waits returns at once and the
 * caller reports the denial instead of a timeout.
 */
static pthread_mutex_t denied_mu = PTHREAD_MUTEX_INITIALIZER;
static char denied[300]; /* guarded by denied_mu; "" until a denial */

static void
on_async_error(natsConnection *nc, natsSubscription *sub, natsStatus s,
               void *closure)
{
    const char *text = NULL;

    (void)sub;
    (void)closure;
    if (s != NATS_NOT_PERMITTED)
        return;
    if (natsConnection_GetLastError(nc, &text) != s || text == NULL)
        text = natsStatus_GetText(s);
    pthread_mutex_lock(&denied_mu);
    if (denied[0] == '\0')
        snprintf(denied, sizeof(denied), "permission denied by the server: %s",
                 text);
    pthread_mutex_unlock(&denied_mu);
    natsConnection_Close(nc);
}

int
conn_denied(char *err, size_t errlen)
{
    int yes;

    pthread_mutex_lock(&denied_mu);
    yes = denied[0] != '\0';
    if (yes)
        snprintf(err, errlen, "%s", denied);
    pthread_mutex_unlock(&denied_mu);
    return yes;
}

/*
 * Reconnects are kept short and bounded, so that a publisher whose servers
 * are all gone fails within seconds instead of buffering forever.
 */
static natsStatus
options_make(natsOptions **out, const struct js_opts *o)
{
    natsStatus s = natsOptions_Create(out);
    char *copy = strdup(o->servers);
    const char *urls[64];
    int n = 0;

    /* libnats 3.4 takes a list as an array, not as one comma list. */
    for (char *save = NULL, *u = copy ? strtok_r(copy, ",", &save) : NULL;
         u != NULL && n < 64; u = strtok_r(NULL, ",", &save))
        urls[n++] = u;
    if (s == NATS_OK)
        s = copy == NULL ? NATS_NO_MEMORY
                         : natsOptions_SetServers(*out, urls, n);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(*out, 2000);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(*out, 250);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(*out, 120);
    if (s == NATS_OK)
        s = natsOptions_SetName(*out, cli_prog);
    if (s == NATS_OK)
        s = natsOptions_SetErrorHandler(*out, on_async_error, NULL);
    free(copy);
    return s;
}

/*
 * The server list as messages show it: a URL's user information (a
 * password or a token) becomes "***", so that logs do not keep secrets.
 */
static void
servers_shown(const char *servers, char *out, size_t outlen)
{
    size_t k = 0;

    for (const char *p = servers; *p != '\0' && k + 1 < outlen;) {
        const char *scheme = strstr(p, "://");
        const char *end = strchr(p, ',');
        const char *at;

        if (end == NULL)
            end = p + strlen(p);
        at = memchr(p, '@', (size_t)(end - p));
        if (scheme != NULL && scheme < end && at != NULL && at > scheme) {
            k += (size_t)snprintf(out + k, outlen - k, "%.*s***",
                                  (int)(scheme + 3 - p), p);
            p = at;
        }
        if (k + 1 < outlen)
            k += (size_t)snprintf(out + k, outlen - k, "%.*s", (int)(end - p),
                                  p);
        if (*end == ',' && k + 1 < outlen)
            out[k++] = ',';
        p = *end == ',' ? end + 1 : end;
    }
    out[k < outlen ? k : outlen - 1] = '\0';
}

int
conn_open(struct js_conn *c, const struct js_opts *o, const jsOptions *pub_opts,
          char *err, size_t errlen)
{
    jsOptions jo;
    natsStatus s;
    char shown[512];
    int rc = -1;

    memset(c, 0, sizeof(*c));
    servers_shown(o->servers, shown, sizeof(shown));
    s = options_make(&c->nopts, o);
    if (s != NATS_OK) {
        conn_strerror(s, shown, err, errlen);
        goto out;
    }
    for (int attempt = 1;; attempt++) {
        s = natsConnection_Connect(&c->nc, c->nopts);
        if (s == NATS_OK)
            break;
        conn_strerror(s, shown, err, errlen);
        /* A server that refused the credentials will refuse them again. */
        if (attempt >= o->connect_retries || cli_signal ||
            s == NATS_CONNECTION_AUTH_FAILED || s == NATS_NOT_PERMITTED)
            goto out;
        log_warn("cannot connect to %s (attempt %d of %d); retrying in "
                 "%llums",
                 err, attempt, o->connect_retries,
                 (unsigned long long)o->connect_wait);
        sleep_ms(o->connect_wait);
    }
    jsOptions_Init(&jo);
    if (pub_opts != NULL)
        jo = *pub_opts;
    /* A cluster electing a leader takes seconds to answer API calls. */
    jo.Wait = 10000;
    s = natsConnection_JetStream(&c->js, c->nc, &jo);
    if (s != NATS_OK) {
        conn_strerror(s, "JetStream", err, errlen);
        goto out;
    }
    rc = 0;
out:
    return rc;
}

/*
 * libnats 3.4 (Debian 12) can queue a message that arrives while its
 * subscription is destroyed onto the dying subscription, where it leaks or
 * is touched after it is freed (nats.c #637, fixed in v3.10.0 by commit
 * 0a7dd28b).  A drained connection has had the server stop every
 * subscription and has handled what came before, so nothing arrives while
 * conn_close takes them down.  libnats checks for the end of a drain every
 * 100 ms, so only the caller that needs it pays for it.
 */
void
conn_drain(struct js_conn *c)
{
    if (c->nc == NULL ||
        natsConnection_DrainTimeout(c->nc, CLOSE_DRAIN_MS) != NATS_OK)
        return;
    for (int ms = 0; ms < 2 * CLOSE_DRAIN_MS && !natsConnection_IsClosed(c->nc);
         ms++)
        sleep_ms(1);
}

void
conn_close(struct js_conn *c)
{
    if (c == NULL)
        return;
    jsCtx_Destroy(c->js);
    natsConnection_Destroy(c->nc);
    natsOptions_Destroy(c->nopts);
    memset(c, 0, sizeof(*c));
}

int
conn_stream_info(struct js_conn *c, const char *stream, jsStreamInfo **info,
                 char *err, size_t errlen)
{
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(info, c->js, stream, NULL, &jerr);

    if (s == NATS_OK)
        return 0;
    if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr)
        snprintf(err, errlen, "stream %s not found", stream);
    else
        conn_strerror(s, stream, err, errlen);
    return -1;
}

static int
stream_create(struct js_conn *c, const struct js_opts *o, char *err,
              size_t errlen)
{
    jsStreamConfig sc;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    char subj[256];
    const char *subjects[1] = {subj};
    natsStatus s;

    snprintf(subj, sizeof(subj), "%s.>", o->prefix);
    jsStreamConfig_Init(&sc);
    sc.Name = o->stream;
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    sc.Retention = js_LimitsPolicy;
    sc.MaxAge = (int64_t)o->max_age_ms * 1000000;
    sc.MaxBytes = o->max_bytes;
    sc.Replicas = o->replicas;
    /* The server refuses a duplicate window longer than the retention. */
    sc.Duplicates = (int64_t)o->dup_window_ms * 1000000;
    if (sc.MaxAge > 0 && sc.Duplicates > sc.MaxAge)
        sc.Duplicates = sc.MaxAge;
    s = js_AddStream(&si, c->js, &sc, NULL, &jerr);
    jsStreamInfo_Destroy(si);
    if (s != NATS_OK) {
        char what[300];

        snprintf(what, sizeof(what), "cannot create stream %s", o->stream);
        conn_strerror(s, what, err, errlen);
        return -1;
    }
    log_info("created stream %s (subjects %s, %d replicas)", o->stream, subj,
             o->replicas);
    return 0;
}

int
conn_stream_ensure(struct js_conn *c, const struct js_opts *o, char *err,
                   size_t errlen)
{
    jsStreamInfo *si = NULL;

    if (conn_stream_info(c, o->stream, &si, err, errlen) == 0) {
        jsStreamInfo_Destroy(si);
        return 0;
    }
    if (strstr(err, "not found") == NULL)
        return -1;
    if (!o->create) {
        snprintf(err, errlen,
                 "stream %s not found (and --no-create); create it or drop "
                 "--no-create",
                 o->stream);
        return -1;
    }
    return stream_create(c, o, err, errlen);
}

int
conn_pod_token(const char *pod, size_t n, char *out, size_t outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t k = 0;

    if (n == 0) {
        if (outlen < 2)
            return -1;
        memcpy(out, "%", 2);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)pod[i];
        int plain = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                    (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';

        if (k + (plain ? 1 : 3) >= outlen)
            return -1;
        if (plain) {
            out[k++] = (char)ch;
        } else {
            out[k++] = '%';
            out[k++] = hex[ch >> 4];
            out[k++] = hex[ch & 15];
        }
    }
    out[k] = '\0';
    return 0;
}
