/* createtest: how should one small file be put in place? Copies every regular file named on
 * stdin into DESTDIR/d<n % 64>/f<n> with THREADS threads and one strategy, and prints
 * "files bytes seconds".
 *
 * Strategies (all copy with copy_file_range, or sendfile across filesystems, and set the modification time on the open file):
 *   plain    open(O_CREAT|O_TRUNC) at the final name, copy, close: what cp and xcp do; not
 *            crash safe (a kill leaves a partial file under the final name)
 *   rename   stat the final name (must be absent), create a hidden temporary name, copy,
 *            close, rename into place: mycloud-recover before this benchmark
 *   noreplace  as rename, without the stat: renameat2(RENAME_NOREPLACE) refuses an existing
 *            final name instead
 *   tmpfile  open(dir, O_TMPFILE), copy, linkat into place (fails if the name exists), close:
 *            the file has no name until it is complete, and a crash leaves nothing behind
 *   tmpfileat  as tmpfile, relative to an open folder (kept while consecutive files share
 *            it): openat(dirfd, ".", O_TMPFILE) and linkat(fd, "", dirfd, name,
 *            AT_EMPTY_PATH), through /proc/self/fd where AT_EMPTY_PATH is refused; no path
 *            walks from the root
 *
 * Used by bench/run.sh (section `create`) to choose the restore's per-file strategy.
 * Build: cc -O2 -pthread -o createtest createtest.c
 * Usage: createtest plain|rename|noreplace|tmpfile|tmpfileat THREADS DESTDIR < list
 * A list line is a source path, or "SOURCE<TAB>RELATIVE/TARGET" to write the file there
 * (its folders are made before the clock starts, or with CREATETEST_MKDIR=1 when a file
 * needs them). CREATETEST_RW=1 copies with read/write. CREATETEST_CHUNK=N hands each thread
 * N consecutive files at a time (default 1).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE 1
#endif

static char **paths;
static char **targets; /* relative destination paths, or NULL for d<n % 64>/f<n> */
static long npaths;
static const char *method;
static const char *dest;
static atomic_long next_i;
static long chunk = 1; /* CREATETEST_CHUNK: files a thread takes at a time */
static atomic_long total_bytes;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void die(const char *what, const char *path) {
    fprintf(stderr, "createtest: %s %s: %s\n", what, path, strerror(errno));
    exit(1);
}

/* copy_file_range between two filesystems fails with EXDEV (the usual case: a USB disk to
 * a NAS); then sendfile, as the kernel does the same in-kernel copy through a pipe. */
static atomic_int cross_device;

static long copy_all(int in, int out, const char *path) {
    long n = 0;
    if (getenv("CREATETEST_RW")) { /* read/write through a 64 KB buffer instead */
        char buf[65536];
        for (;;) {
            ssize_t r = read(in, buf, sizeof buf);
            if (r < 0) die("read", path);
            if (r == 0) return n;
            if (write(out, buf, r) != r) die("write", path);
            n += r;
        }
    }
    for (;;) {
        ssize_t r;
        if (!atomic_load(&cross_device)) {
            r = copy_file_range(in, NULL, out, NULL, 1 << 30, 0);
            if (r < 0 && errno == EXDEV && n == 0) {
                atomic_store(&cross_device, 1);
                continue;
            }
        } else {
            r = sendfile(out, in, NULL, 1 << 30);
        }
        if (r < 0) die("copy", path);
        if (r == 0) return n;
        n += r;
    }
}

/* mkdir -p for a folder path (EEXIST is fine: another thread made it). */
static void make_dirs(char *dir) {
    if (mkdir(dir, 0755) == 0 || errno == EEXIST) return;
    if (errno != ENOENT) die("mkdir", dir);
    char *slash = strrchr(dir, '/');
    *slash = 0;
    make_dirs(dir);
    *slash = '/';
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) die("mkdir", dir);
}

static int lazy_dirs; /* CREATETEST_MKDIR=1: folders are made when a file needs them */

static void *worker(void *arg) {
    (void)arg;
    char dir[4096], fin[4096], tmp[4096], proc[64], open_dir[4096] = "";
    int dirfd = -1;
    struct timespec times[2] = {{1500000000, 0}, {1500000000, 0}};
    long i = 0, end = 0;
    for (;; i++) {
        if (i >= end) { /* the next chunk of consecutive files, as the restore hands them out */
            i = atomic_fetch_add(&next_i, chunk);
            end = i + chunk;
        }
        if (i >= npaths) return NULL;
        if (targets[i]) {
            snprintf(fin, sizeof fin, "%s/%s", dest, targets[i]);
            snprintf(dir, sizeof dir, "%s", fin);
            *strrchr(dir, '/') = 0;
            if (lazy_dirs) {
                struct stat st;
                if (stat(dir, &st) < 0) make_dirs(dir);
            }
        } else {
            snprintf(dir, sizeof dir, "%s/d%ld", dest, i % 64);
            snprintf(fin, sizeof fin, "%s/f%ld", dir, i);
        }
        int in = open(paths[i], O_RDONLY | O_CLOEXEC);
        if (in < 0) die("open", paths[i]);
        int out;
        long n;
        if (strcmp(method, "tmpfileat") == 0) {
            if (dirfd < 0 || strcmp(dir, open_dir) != 0) {
                if (dirfd >= 0) close(dirfd);
                dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (dirfd < 0) die("open folder", dir);
                snprintf(open_dir, sizeof open_dir, "%s", dir);
            }
            const char *name = strrchr(fin, '/') + 1;
            out = openat(dirfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
            if (out < 0) die("open O_TMPFILE in", dir);
            n = copy_all(in, out, fin);
            if (futimens(out, times) < 0) die("futimens", fin);
            if (linkat(out, "", dirfd, name, AT_EMPTY_PATH) < 0) {
                if (errno != ENOENT && errno != EPERM) die("linkat", fin);
                snprintf(proc, sizeof proc, "/proc/self/fd/%d", out);
                if (linkat(AT_FDCWD, proc, dirfd, name, AT_SYMLINK_FOLLOW) < 0) die("linkat", fin);
            }
            if (close(out) < 0) die("close", fin);
        } else if (strcmp(method, "tmpfile") == 0) {
            out = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
            if (out < 0) die("open O_TMPFILE in", dir);
            n = copy_all(in, out, fin);
            if (futimens(out, times) < 0) die("futimens", fin);
            snprintf(proc, sizeof proc, "/proc/self/fd/%d", out);
            if (linkat(AT_FDCWD, proc, AT_FDCWD, fin, AT_SYMLINK_FOLLOW) < 0) die("linkat", fin);
            if (close(out) < 0) die("close", fin);
        } else if (strcmp(method, "plain") == 0) {
            out = open(fin, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            if (out < 0) die("open", fin);
            n = copy_all(in, out, fin);
            if (futimens(out, times) < 0) die("futimens", fin);
            if (close(out) < 0) die("close", fin);
        } else {
            struct stat st;
            if (strcmp(method, "rename") == 0 && fstatat(AT_FDCWD, fin, &st, AT_SYMLINK_NOFOLLOW) == 0) {
                errno = EEXIST;
                die("exists", fin);
            }
            snprintf(tmp, sizeof tmp, "%s/.t%ld.part", dir, i);
            out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            if (out < 0) die("open", tmp);
            n = copy_all(in, out, fin);
            if (futimens(out, times) < 0) die("futimens", tmp);
            if (close(out) < 0) die("close", tmp);
            if (strcmp(method, "noreplace") == 0) {
                if (renameat2(AT_FDCWD, tmp, AT_FDCWD, fin, RENAME_NOREPLACE) < 0) die("renameat2", fin);
            } else if (rename(tmp, fin) < 0) {
                die("rename", fin);
            }
        }
        close(in);
        atomic_fetch_add(&total_bytes, n);
    }
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: createtest plain|rename|noreplace|tmpfile|tmpfileat THREADS DESTDIR < list\n");
        return 2;
    }
    method = argv[1];
    int threads = atoi(argv[2]);
    dest = argv[3];
    long cap = 1024;
    paths = malloc(cap * sizeof *paths);
    targets = malloc(cap * sizeof *targets);
    char line[8192];
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = 0;
        if (!*line) continue;
        if (npaths == cap) {
            paths = realloc(paths, (cap *= 2) * sizeof *paths);
            targets = realloc(targets, cap * sizeof *targets);
        }
        char *tab = strchr(line, '\t');
        if (tab) *tab = 0;
        targets[npaths] = tab ? strdup(tab + 1) : NULL;
        paths[npaths++] = strdup(line);
    }
    /* Folders first (not timed): "SOURCE<TAB>RELATIVE/TARGET" lines name their own. */
    char dir[8192];
    lazy_dirs = getenv("CREATETEST_MKDIR") != NULL;
    if (getenv("CREATETEST_CHUNK")) chunk = atol(getenv("CREATETEST_CHUNK")) > 0 ? atol(getenv("CREATETEST_CHUNK")) : 1;
    for (long i = 0; i < npaths && !lazy_dirs; i++) {
        if (!targets[i]) continue;
        snprintf(dir, sizeof dir, "%s/%s", dest, targets[i]);
        for (char *p = dir + strlen(dest) + 1; (p = strchr(p, '/')); p++) {
            *p = 0;
            if (mkdir(dir, 0755) < 0 && errno != EEXIST) die("mkdir", dir);
            *p = '/';
        }
    }
    double t0 = now();
    for (int d = 0; d < 64; d++) {
        snprintf(dir, sizeof dir, "%s/d%d", dest, d);
        if (mkdir(dir, 0755) < 0 && errno != EEXIST) die("mkdir", dir);
    }
    pthread_t tid[256];
    if (threads < 1 || threads > 256) threads = 1;
    for (int t = 0; t < threads; t++) pthread_create(&tid[t], NULL, worker, NULL);
    for (int t = 0; t < threads; t++) pthread_join(tid[t], NULL);
    printf("%ld %ld %.4f\n", npaths, (long)total_bytes, now() - t0);
    return 0;
}
