/*
 * plot.c - see plot.h.
 */
#include "plot.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "report.h"

int
plot_format(const char *path)
{
    size_t n = strlen(path);

    if (n > 4 && strcmp(path + n - 4, ".png") == 0)
        return 0;
    if (n > 4 && strcmp(path + n - 4, ".svg") == 0)
        return 1;
    return -1;
}

/* A gnuplot string literal: single quotes, doubled inside. */
static void
put_quoted(FILE *f, const char *s, size_t n)
{
    fputc('\'', f);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\'')
            fputc('\'', f);
        fputc(s[i] == '\n' ? ' ' : s[i], f);
    }
    fputc('\'', f);
}

static void
put_title(FILE *f, const struct track_stream *s, const char *medium)
{
    char buf[512];
    int n = snprintf(buf, sizeof buf, "%.*s", (int)s->pod_len, s->pod);

    if (s->has_rank && n >= 0 && (size_t)n < sizeof buf)
        n += snprintf(buf + n, sizeof buf - (size_t)n, "/%lld",
                      (long long)s->rank);
    if (medium != NULL && n >= 0 && (size_t)n < sizeof buf)
        snprintf(buf + n, sizeof buf - (size_t)n, " %s", medium);
    put_quoted(f, buf, strlen(buf));
}

static void
preamble(FILE *f, const char *path, int tall)
{
    fprintf(f, "set terminal %s size 900,%d font 'sans,10'\n",
            plot_format(path) == 0 ? "pngcairo noenhanced" : "svg noenhanced",
            tall ? 700 : 450);
    fputs("set output ", f);
    put_quoted(f, path, strlen(path));
    fputs("\nset datafile separator '\\t'\nset key outside right top\n"
          "set grid\nset border 3\nset tics nomirror\n",
          f);
}

/* Rate: one block per stream (gnuplot "index"), two panels. */
static void
script_rate(FILE *g, FILE *d, const char *path, struct track_stream **st,
            size_t n, double every)
{
    double t0 = 0;
    int first = 1;

    for (size_t i = 0; i < n; i++) {
        if (st[i]->rate_n > 0 &&
            (first || (double)st[i]->rate_base * every < t0)) {
            t0 = (double)st[i]->rate_base * every;
            first = 0;
        }
    }
    for (size_t i = 0; i < n; i++) {
        /* One more point at the end of the last interval: steps draw an
         * interval's value up to the next point. */
        if (st[i]->rate_n == 0)
            continue;
        for (size_t j = 0; j <= st[i]->rate_n; j++) {
            size_t k = j < st[i]->rate_n ? j : j - 1;

            fprintf(d, "%.17g\t%.17g\t%llu\n",
                    (double)(st[i]->rate_base + (int64_t)j) * every - t0,
                    (double)st[i]->rate[k].stored / every,
                    (unsigned long long)st[i]->rate[k].occupancy);
        }
        fputs("\n\n", d);
    }
    preamble(g, path, 1);
    fprintf(g,
            "set multiplot layout 2,1 title 'kvstat rate (every %gs)'\n"
            "set ylabel 'blocks stored/s'\nunset xlabel\nset yrange [0:*]\n",
            every);
    for (int panel = 0; panel < 2; panel++) {
        if (panel == 1)
            fputs("set ylabel 'occupancy (blocks)'\n"
                  "set xlabel 'seconds from the first interval'\n",
                  g);
        fputs("plot ", g);
        /* Streams without a ts (decode errors only) have no block. */
        for (size_t i = 0, idx = 0; i < n; i++) {
            if (st[i]->rate_n == 0)
                continue;
            fprintf(g, "%s'data' index %zu using 1:%d with steps lw 2 title ",
                    idx ? ", " : "", idx, panel ? 3 : 2);
            put_title(g, st[i], NULL);
            idx++;
        }
        fputs("\n", g);
    }
    fputs("unset multiplot\n", g);
}

/* Zero cannot sit on a log axis: it is drawn at 1 ms. */
static double
life_x(double v)
{
    return v > 0.001 ? v : 0.001;
}

/* Lifetime: the empirical CDF per (stream, medium), log time axis. */
static void
script_lifetime(FILE *g, FILE *d, const char *path, const struct track *t,
                struct track_stream **st, size_t n)
{
    size_t blocks = 0;
    double lo = 0, hi = 0;

    for (size_t i = 0; i < n; i++) {
        for (int m = 0; m < TRACK_MAX_MEDIA; m++) {
            const struct track_life *l = st[i]->life[m];

            if (l == NULL || l->n == 0)
                continue;
            if (lo == 0 || life_x(l->v[0]) < lo)
                lo = life_x(l->v[0]);
            if (life_x(l->v[l->n - 1]) > hi)
                hi = life_x(l->v[l->n - 1]);
        }
    }
    preamble(g, path, 0);
    fputs("set title 'kvstat lifetime: share of removed blocks that lived "
          "at most x'\nset logscale x 2\nset xlabel 'lifetime (s)'\n"
          "set ylabel 'CDF'\nset yrange [0:1.02]\n",
          g);
    /* A margin on both sides, so curves at the ends stay visible. */
    if (hi > 0)
        fprintf(g, "set xrange [%.17g:%.17g]\n", lo / 1.5, hi * 1.5);
    fputs("plot ", g);
    for (size_t i = 0; i < n; i++) {
        for (int m = 0; m < TRACK_MAX_MEDIA; m++) {
            const struct track_life *l = st[i]->life[m];

            if (l == NULL || l->n == 0)
                continue;
            /* The curve rises from 0 at the shortest lifetime. */
            fprintf(d, "%.17g\t0\n", life_x(l->v[0]));
            for (size_t k = 0; k < l->n; k++)
                fprintf(d, "%.17g\t%.17g\n", life_x(l->v[k]),
                        (double)(k + 1) / l->n);
            fputs("\n\n", d);
            fprintf(g, "%s'data' index %zu using 1:2 with steps lw 2 title ",
                    blocks ? ", " : "", blocks);
            put_title(g, st[i], track_medium_name(t, (size_t)m));
            blocks++;
        }
    }
    if (blocks == 0)
        fputs("NaN title 'no block was removed'", g);
    fputs("\n", g);
}

static void
script_bars(FILE *g, const char *path, const char *title, const char *ylabel)
{
    preamble(g, path, 0);
    fprintf(g,
            "set title '%s'\nset ylabel '%s'\nset style data histograms\n"
            "set style histogram clustered gap 1\nset style fill solid 0.8 "
            "border -1\nset yrange [0:*]\n",
            title, ylabel);
}

static void
script_sharing(FILE *g, FILE *d, const char *path, const struct track *t)
{
    uint64_t distinct;
    const uint64_t *end, *peak;
    size_t n_max;

    track_holders(t, &distinct, &end, &peak, &n_max);
    for (size_t k = 1; k <= n_max; k++)
        fprintf(d, "%zu\t%llu\t%llu\n", k, (unsigned long long)end[k],
                (unsigned long long)peak[k]);
    script_bars(g, path, "kvstat sharing: block keys held by N pods at once",
                "block keys (log scale)");
    /* Most keys are usually held by one pod: a linear axis would hide the
     * shared ones.  Bars of 0 keys are not drawn. */
    fputs("set logscale y\nset yrange [0.5:*]\n"
          "set xlabel 'pods holding the key'\n"
          "plot 'data' using 2:xtic(1) title 'at the end', "
          "'' using 3 title 'at the peak'\n",
          g);
}

static void
script_route(FILE *g, FILE *d, const char *path, const struct route_result *r)
{
    /* Policies without requests (the capture's, with a request log) are
     * not drawn. */
    for (int p = 0; p < ROUTE_POLICY_COUNT; p++) {
        if (r[p].requests > 0)
            fprintf(d, "%s\t%.17g\n", route_policy_name((enum route_policy)p),
                    r[p].blocks ? (double)r[p].hits / (double)r[p].blocks
                                : 0.0);
    }
    script_bars(g, path, "kvstat route: prompt blocks found in cache",
                "hit rate");
    fputs("set yrange [0:1]\nset key off\n"
          "plot 'data' using 2:xtic(1) title 'hit rate'\n",
          g);
}

/* Runs gnuplot on the script in dir; returns 0 or -1 (err). */
static int
run_gnuplot(const char *dir, char *err, size_t errlen)
{
    pid_t pid = fork();
    int status;

    if (pid == -1) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        if (chdir(dir) == 0)
            execlp("gnuplot", "gnuplot", "script", (char *)NULL);
        _exit(127);
    }
    while (waitpid(pid, &status, 0) == -1) {
        if (errno != EINTR) {
            snprintf(err, errlen, "waitpid: %s", strerror(errno));
            return -1;
        }
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
        snprintf(err, errlen,
                 "--plot: cannot run gnuplot (install "
                 "gnuplot-nox)");
    else
        snprintf(err, errlen, "--plot: gnuplot failed (status %d)",
                 WIFEXITED(status) ? WEXITSTATUS(status)
                                   : 128 + WTERMSIG(status));
    return -1;
}

static void
write_script(FILE *g, FILE *d, const char *abs, enum plot_kind kind,
             const struct track *t, struct track_stream **st, size_t n,
             double every, const struct route_result *res)
{
    switch (kind) {
    case PLOT_RATE:
        script_rate(g, d, abs, st, n, every);
        break;
    case PLOT_LIFETIME:
        script_lifetime(g, d, abs, t, st, n);
        break;
    case PLOT_SHARING:
        script_sharing(g, d, abs, t);
        break;
    case PLOT_ROUTE:
        script_route(g, d, abs, res);
        break;
    }
}

int
plot_draw(const char *path, enum plot_kind kind, const struct track *t,
          double every, const struct route_result *res, char *err,
          size_t errlen)
{
    const char *tmp = getenv("TMPDIR");
    char dir[4096], data[4200], script[4200], abs[8192], cwd[4096];
    struct track_stream **st;
    FILE *g = NULL, *d = NULL;
    size_t n;
    int ret = -1;

    st = report_sorted(t, &n);
    if (path[0] == '/')
        snprintf(abs, sizeof abs, "%s", path);
    else if (getcwd(cwd, sizeof cwd) != NULL)
        snprintf(abs, sizeof abs, "%s/%s", cwd, path);
    else
        snprintf(abs, sizeof abs, "%s", path);
    snprintf(dir, sizeof dir, "%s/kvstat.XXXXXX",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        snprintf(err, errlen, "--plot: temporary directory: %s",
                 strerror(errno));
        free(st);
        return -1;
    }
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(script, sizeof script, "%s/script", dir);
    if ((g = fopen(script, "w")) == NULL || (d = fopen(data, "w")) == NULL) {
        snprintf(err, errlen, "--plot: %s: %s", dir, strerror(errno));
        goto out;
    }
    write_script(g, d, abs, kind, t, st, n, every, res);
    if (ferror(g) | ferror(d) | fclose(g) | fclose(d)) {
        g = d = NULL;
        snprintf(err, errlen, "--plot: writing to %s failed", dir);
        goto out;
    }
    g = d = NULL;
    ret = run_gnuplot(dir, err, errlen);
out:
    if (g != NULL)
        fclose(g);
    if (d != NULL)
        fclose(d);
    unlink(data);
    unlink(script);
    rmdir(dir);
    free(st);
    return ret;
}
