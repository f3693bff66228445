/*
 * kvindex_rtt.c - round-trip latency of kvindex requests over its Unix
 * socket, for bench/60-kvindex-socket.sh.
 *
 *   kvindex_rtt SOCKET REQUESTS-FILE COUNT [SERVER-PID]
 *   kvindex_rtt -c CLIENTS SOCKET REQUESTS-FILE COUNT
 *
 * Sends COUNT ping requests, then COUNT requests taken in turn from the
 * file (one JSON line each), one at a time, and prints the p50/p99/max
 * round trip of each kind and the ratio of the two p99s.  The ping is the
 * baseline: the cost of the socket and the loop without any index work.
 * With the server's pid it also prints the server's CPU time per request
 * (from /proc/PID/schedstat, in nanoseconds; /proc/PID/stat counts 10 ms
 * ticks), which a loaded machine distorts much less than latency.
 * Last, it sends the same prompts BATCH at a time as batched matches
 * ("prompts") and prints the prompts/s of both ways.  The file's lines
 * must then end with "tokens":[...]} (as kvindex_gen.py writes them).
 *
 * With -c, CLIENTS processes each send COUNT requests of the file at
 * once, each on its own connection, and the p50/p99/max of all their
 * round trips together is printed.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static double
now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/*
 * The scheduler's run time of every thread of process pid so far, in
 * nanoseconds (/proc/PID/task/TID/schedstat), or -1 when it cannot tell.
 */
static double
sched_ns(long pid)
{
    char path[96];
    unsigned long long ns;
    double sum = 0;
    struct dirent *e;
    DIR *d;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%ld/task", pid);
    d = opendir(path);
    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "/proc/%ld/task/%.20s/schedstat", pid,
                 e->d_name);
        f = fopen(path, "r");
        if (f == NULL)
            continue; /* a thread that just ended */
        if (fscanf(f, "%llu", &ns) == 1)
            sum += (double)ns;
        fclose(f);
    }
    closedir(d);
    return sum;
}

/*
 * The CPU time of process pid so far, in microseconds: the scheduler's
 * run time (sched_ns), else user + system from /proc/PID/stat, whose
 * ticks of 10 ms make 20,000 requests +-0.5 us each.
 */
static double
cpu_us(long pid)
{
    char path[64], buf[1024], *p;
    unsigned long ut = 0, st = 0;
    double ns;
    FILE *f;

    if (pid <= 0)
        return 0;
    if ((ns = sched_ns(pid)) >= 0)
        return ns / 1e3;
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    f = fopen(path, "r");
    if (f == NULL)
        return 0;
    if (fgets(buf, sizeof buf, f) == NULL) {
        fclose(f);
        return 0;
    }
    fclose(f);
    /* Fields 14 and 15, counted after the ")" that ends the command. */
    p = strrchr(buf, ')');
    if (p == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
               &ut, &st) != 2)
        return 0;
    return (double)(ut + st) * 1e6 / (double)sysconf(_SC_CLK_TCK);
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Reads one reply line into buf; returns its length or -1. */
static long
read_reply(int fd, char **buf, size_t *cap)
{
    size_t len = 0;

    for (;;) {
        ssize_t n;
        if (*cap - len < 65536) {
            char *nb = realloc(*buf, *cap * 2);
            if (nb == NULL)
                return -1;
            *buf = nb;
            *cap *= 2;
        }
        n = read(fd, *buf + len, *cap - len);
        if (n <= 0)
            return -1;
        len += (size_t)n;
        if ((*buf)[len - 1] == '\n')
            return (long)len;
    }
}

static int
run(int fd, char **reqs, size_t *lens, size_t nreq, size_t count, double *lat,
    const char *what)
{
    size_t cap = 1 << 20;
    char *buf = malloc(cap);
    int rc = -1;

    if (buf == NULL)
        return -1;
    for (size_t i = 0; i < count; i++) {
        size_t k = i % nreq;
        double t0 = now_us();
        long n;
        if (write(fd, reqs[k], lens[k]) != (ssize_t)lens[k])
            goto done;
        n = read_reply(fd, &buf, &cap);
        if (n < 0)
            goto done;
        lat[i] = now_us() - t0;
        if (i == 0 && strstr(buf, "\"ok\":true") == NULL) {
            fprintf(stderr, "%s: bad reply: %.200s\n", what, buf);
            goto done;
        }
    }
    rc = 0;
done:
    free(buf);
    return rc;
}

#define BATCH 32

/*
 * Batched matches of BATCH prompts each, from the single requests in
 * reqs: the first request's members before "tokens" (op, model), then
 * every prompt's token array.  Returns the number of requests made in
 * *out (caller frees each and the array), or 0.
 */
static size_t
make_batches(char **reqs, size_t nreq, char ***out, size_t **out_lens)
{
    size_t nb = nreq / BATCH, cap;
    const char *head = strstr(reqs[0], "\"tokens\":");

    *out = calloc(nb ? nb : 1, sizeof **out);
    *out_lens = calloc(nb ? nb : 1, sizeof **out_lens);
    if (head == NULL || nb == 0 || *out == NULL || *out_lens == NULL)
        return 0;
    for (size_t b = 0; b < nb; b++) {
        size_t len = (size_t)(head - reqs[0]);
        cap = len + 16;
        for (size_t k = 0; k < BATCH; k++)
            cap += strlen(reqs[b * BATCH + k]) + 1;
        (*out)[b] = malloc(cap);
        if ((*out)[b] == NULL)
            return 0;
        memcpy((*out)[b], reqs[0], len);
        len += (size_t)sprintf((*out)[b] + len, "\"prompts\":[");
        for (size_t k = 0; k < BATCH; k++) {
            const char *t = strstr(reqs[b * BATCH + k], "\"tokens\":");
            const char *end = t ? strrchr(t, '}') : NULL;
            if (end == NULL)
                return 0;
            t += 9;
            if (k > 0)
                (*out)[b][len++] = ',';
            memcpy((*out)[b] + len, t, (size_t)(end - t));
            len += (size_t)(end - t);
        }
        len += (size_t)sprintf((*out)[b] + len, "]}\n");
        (*out_lens)[b] = len;
    }
    return nb;
}

static void
report(const char *what, double *lat, size_t n, double *p99)
{
    qsort(lat, n, sizeof *lat, cmp_double);
    *p99 = lat[n * 99 / 100];
    printf("%-6s round trip: p50 %.1f us  p99 %.1f us  max %.1f us  (%zu "
           "requests)\n",
           what, lat[n / 2], *p99, lat[n - 1], n);
}

/* The request lines of path (caller frees); returns how many, 0 on none. */
static size_t
load_requests(const char *path, char ***reqs, size_t **lens)
{
    char *line = NULL;
    size_t lcap = 0, nreq = 0;
    ssize_t n;
    FILE *f = fopen(path, "r");

    if (f == NULL) {
        perror(path);
        return 0;
    }
    while ((n = getline(&line, &lcap, f)) > 0) {
        char **nr = realloc(*reqs, (nreq + 1) * sizeof *nr);
        size_t *nl = realloc(*lens, (nreq + 1) * sizeof *nl);
        if (nr != NULL)
            *reqs = nr;
        if (nl != NULL)
            *lens = nl;
        if (nr == NULL || nl == NULL || (nr[nreq] = strdup(line)) == NULL)
            break;
        nl[nreq++] = (size_t)n;
    }
    free(line);
    fclose(f);
    return nreq;
}

static int
connect_to(const char *path)
{
    struct sockaddr_un sa;
    int fd;

    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        perror(path);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/*
 * -c: clients processes at once, each on its own connection, count
 * requests each after a warm-up; their round trips land in one shared
 * array, so that the percentiles are of all of them together.
 */
static int
run_clients(int clients, const char *path, char **reqs, size_t *lens,
            size_t nreq, size_t count)
{
    size_t total = (size_t)clients * count;
    double *lat = mmap(NULL, total * sizeof *lat, PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    double p99;
    int failed = 0, st;

    if (lat == MAP_FAILED)
        return 1;
    for (int c = 0; c < clients; c++) {
        pid_t pid = fork();
        if (pid < 0)
            return 1;
        if (pid == 0) {
            int fd = connect_to(path);
            double *mine = lat + (size_t)c * count;
            _exit(fd < 0 ||
                          run(fd, reqs, lens, nreq, count / 10 + 1, mine,
                              "match") < 0 ||
                          run(fd, reqs, lens, nreq, count, mine, "match") < 0
                      ? 1
                      : 0);
        }
    }
    while (wait(&st) > 0)
        failed |= !WIFEXITED(st) || WEXITSTATUS(st) != 0;
    if (failed)
        return 1;
    printf("%d clients at once:\n", clients);
    report("match", lat, total, &p99);
    munmap(lat, total * sizeof *lat);
    return 0;
}

/* The one-client measurement: pings, matches, then batched matches. */
static int
run_one(int fd, char **reqs, size_t *lens, size_t nreq, size_t count, long pid)
{
    double *lat, p99_ping, p99_req, c0, c1, c2, c3, c4, t0, t1, t2;
    char **batches = NULL;
    size_t *batch_lens = NULL, nbatch, nb_count;
    char ping[] = "{\"op\":\"ping\"}\n";
    char *pings[1] = {ping};
    size_t ping_len[1] = {sizeof ping - 1};

    lat = calloc(count, sizeof *lat);
    if (lat == NULL)
        return 1;
    /* Warm both paths up first (page faults, caches). */
    if (run(fd, pings, ping_len, 1, count / 10 + 1, lat, "ping") < 0 ||
        run(fd, reqs, lens, nreq, count / 10 + 1, lat, "match") < 0)
        return 1;
    c0 = cpu_us(pid);
    if (run(fd, pings, ping_len, 1, count, lat, "ping") < 0)
        return 1;
    c1 = cpu_us(pid);
    report("ping", lat, count, &p99_ping);
    t0 = now_us();
    if (run(fd, reqs, lens, nreq, count, lat, "match") < 0)
        return 1;
    t1 = now_us();
    c2 = cpu_us(pid);
    report("match", lat, count, &p99_req);
    printf("match p99 / ping p99 = %.2f\n", p99_req / p99_ping);
    if (pid > 0)
        printf("server CPU per request: ping %.1f us, match %.1f us\n",
               (c1 - c0) / (double)count, (c2 - c1) / (double)count);
    /* The same number of prompts, BATCH to a request. */
    nbatch = make_batches(reqs, nreq, &batches, &batch_lens);
    nb_count = count / BATCH ? count / BATCH : 1;
    if (nbatch == 0 || run(fd, batches, batch_lens, nbatch, nb_count / 10 + 1,
                           lat, "batch") < 0)
        return 1;
    t2 = now_us();
    c3 = cpu_us(pid);
    if (run(fd, batches, batch_lens, nbatch, nb_count, lat, "batch") < 0)
        return 1;
    t2 = now_us() - t2;
    c4 = cpu_us(pid);
    printf("prompts/s: one at a time %.0f, batched %d to a request %.0f "
           "(x%.2f)\n",
           (double)count * 1e6 / (t1 - t0), BATCH,
           (double)(nb_count * BATCH) * 1e6 / t2,
           ((double)(nb_count * BATCH) / t2) / ((double)count / (t1 - t0)));
    if (pid > 0)
        printf("server CPU per prompt: one at a time %.1f us, batched %.1f "
               "us\n",
               (c2 - c1) / (double)count,
               (c4 - c3) / (double)(nb_count * BATCH));
    for (size_t b = 0; b < nbatch; b++)
        free(batches[b]);
    free(batches);
    free(batch_lens);
    free(lat);
    return 0;
}

int
main(int argc, char **argv)
{
    char **reqs = NULL;
    size_t *lens = NULL, nreq, count;
    int clients = 0, fd, rc;
    long pid;

    if (argc >= 3 && strcmp(argv[1], "-c") == 0) {
        clients = atoi(argv[2]);
        argv += 2;
        argc -= 2;
    }
    if ((argc != 4 && argc != 5) || clients < 0 || (clients > 0 && argc != 4)) {
        fprintf(stderr, "usage: kvindex_rtt SOCKET REQUESTS-FILE COUNT [PID]\n"
                        "       kvindex_rtt -c CLIENTS SOCKET REQUESTS-FILE "
                        "COUNT\n");
        return 2;
    }
    pid = argc == 5 ? strtol(argv[4], NULL, 10) : 0;
    count = strtoul(argv[3], NULL, 10);
    nreq = load_requests(argv[2], &reqs, &lens);
    if (count == 0 || nreq == 0)
        return 2;
    if (clients > 0) {
        rc = run_clients(clients, argv[1], reqs, lens, nreq, count);
    } else {
        if ((fd = connect_to(argv[1])) < 0)
            return 1;
        rc = run_one(fd, reqs, lens, nreq, count, pid);
        close(fd);
    }
    for (size_t k = 0; k < nreq; k++)
        free(reqs[k]);
    free(reqs);
    free(lens);
    return rc;
}
