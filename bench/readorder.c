/* readorder: read every file named on stdin (one path per line) to the end, with N reader
 * threads taking the next path in list order, and print "files bytes seconds".
 *
 * Answers two questions of the performance review with the page cache dropped first:
 * does the order objects are read in matter (database order, contentID order, the restore's
 * own order, physical on-disk order from FIEMAP), and how many concurrent readers the source
 * disk rewards (the "few readers in disk order feeding many writers" idea).
 *
 * Build: cc -O2 -pthread -o readorder readorder.c
 * Usage: readorder THREADS < list
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char **paths;
static size_t npaths;
static atomic_size_t next_index;
static atomic_ullong total_bytes;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void *reader(void *arg) {
    (void)arg;
    size_t cap = 1 << 20;
    char *buf = malloc(cap);
    if (!buf) { perror("malloc"); exit(1); }
    for (;;) {
        size_t i = atomic_fetch_add(&next_index, 1);
        if (i >= npaths) break;
        int fd = open(paths[i], O_RDONLY | O_CLOEXEC);
        if (fd < 0) { perror(paths[i]); exit(1); }
        ssize_t n;
        unsigned long long got = 0;
        while ((n = read(fd, buf, cap)) > 0) got += (unsigned long long)n;
        if (n < 0) { perror(paths[i]); exit(1); }
        close(fd);
        atomic_fetch_add(&total_bytes, got);
    }
    free(buf);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: readorder THREADS < list\n"); return 2; }
    int threads = atoi(argv[1]);
    if (threads < 1 || threads > 1024) { fprintf(stderr, "bad THREADS\n"); return 2; }
    size_t cap = 1024;
    paths = malloc(cap * sizeof *paths);
    char *line = NULL;
    size_t len = 0;
    ssize_t r;
    while ((r = getline(&line, &len, stdin)) > 0) {
        if (line[r - 1] == '\n') line[r - 1] = 0;
        if (!*line) continue;
        if (npaths == cap) paths = realloc(paths, (cap *= 2) * sizeof *paths);
        paths[npaths++] = strdup(line);
    }
    free(line);
    pthread_t *t = calloc((size_t)threads, sizeof *t);
    double start = now();
    for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, reader, NULL);
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    printf("%zu %llu %.6f\n", npaths, (unsigned long long)atomic_load(&total_bytes), now() - start);
    return 0;
}
