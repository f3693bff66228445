/*
 * conn.c - connecting to NATS, the kvtap stream, subject tokens
 * (docs/cluster.md#subjects-and-headers).
 */
#include "conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

void
conn_strerror(natsStatus s, const char *what, char *err, size_t errlen)
{
    natsStatus ls = NATS_OK;
    const char *detail = nats_GetLastError(&ls);

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
    free(copy);
    return s;
}

int
conn_open(struct js_conn *c, const struct js_opts *o, const jsOptions *pub_opts,
          char *err, size_t errlen)
{
    jsOptions jo;
    natsStatus s;
    int rc = -1;

    memset(c, 0, sizeof(*c));
    s = options_make(&c->nopts, o);
    if (s != NATS_OK) {
        conn_strerror(s, o->servers, err, errlen);
        goto out;
    }
    for (int attempt = 1;; attempt++) {
        s = natsConnection_Connect(&c->nc, c->nopts);
        if (s == NATS_OK)
            break;
        conn_strerror(s, o->servers, err, errlen);
        if (attempt >= o->connect_retries || cli_signal)
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
