/* copytest: copy every regular file named on stdin (one path per line) into DESTDIR,
 * with one copy method, and print "files bytes seconds".
 *
 * Methods: cfr (copy_file_range, what std::io::copy and cp use on Linux), sendfile,
 * rw:<bytes> (read/write through a user-space buffer of that size).
 *
 * Used by bench/run.sh to answer "copy_file_range vs read/write with 64 KB-16 MB buffers".
 * Each file is written to DESTDIR/<n> (flat), closed with its result checked, like the tool.
 *
 * Build: cc -O2 -o copytest copytest.c
 * Usage: copytest METHOD DESTDIR < list
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void die(const char *what, const char *path) {
    fprintf(stderr, "copytest: %s %s: %s\n", what, path, strerror(errno));
    exit(1);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: copytest cfr|sendfile|rw:BYTES DESTDIR < list\n");
        return 2;
    }
    const char *method = argv[1];
    size_t bufsize = 0;
    char *buf = NULL;
    if (strncmp(method, "rw:", 3) == 0) {
        bufsize = strtoull(method + 3, NULL, 10);
        if (bufsize == 0) { fprintf(stderr, "bad buffer size\n"); return 2; }
        buf = malloc(bufsize);
        if (!buf) { perror("malloc"); return 1; }
    } else if (strcmp(method, "cfr") && strcmp(method, "sendfile")) {
        fprintf(stderr, "unknown method %s\n", method);
        return 2;
    }
    char line[4096], out[4096];
    unsigned long long files = 0, bytes = 0;
    double t0 = now();
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = 0;
        if (!*line) continue;
        int in = open(line, O_RDONLY);
        if (in < 0) die("open", line);
        struct stat st;
        if (fstat(in, &st) < 0) die("fstat", line);
        snprintf(out, sizeof out, "%s/%llu", argv[2], files);
        int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0) die("create", out);
        off_t left = st.st_size;
        if (buf) {
            for (;;) {
                ssize_t n = read(in, buf, bufsize);
                if (n < 0) { if (errno == EINTR) continue; die("read", line); }
                if (n == 0) break;
                for (ssize_t w = 0; w < n;) {
                    ssize_t m = write(o, buf + w, n - w);
                    if (m < 0) { if (errno == EINTR) continue; die("write", out); }
                    w += m;
                }
                bytes += n;
            }
        } else {
            while (left > 0) {
                ssize_t n = method[0] == 'c'
                    ? copy_file_range(in, NULL, o, NULL, left > (1 << 30) ? (1 << 30) : left, 0)
                    : sendfile(o, in, NULL, left > (1 << 30) ? (1 << 30) : left);
                if (n < 0) { if (errno == EINTR) continue; die(method, line); }
                if (n == 0) break;
                left -= n;
                bytes += n;
            }
        }
        if (close(o) < 0) die("close", out);
        close(in);
        files++;
    }
    printf("%llu %llu %.6f\n", files, bytes, now() - t0);
    return 0;
}
