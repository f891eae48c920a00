/* The file layer (src/core/file.c): atomic writes with the right mode from the first byte,
 * exclusive creation, links written through, devices and directories refused, bounded reads
 * with gzip only on request, a signal during a save leaving no temporary file, on both the
 * O_TMPFILE path and the named temporary file of file systems without it. */
#include "testutil.h"
#include "core/core.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

static char g_path[1024];
static const char *p(const char *name) {
    snprintf(g_path, sizeof g_path, "%s/%s", nnl_test_tmpdir(), name);
    return g_path;
}

static int mode_of(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 ? (int)(sb.st_mode & 0777) : -1;
}

/* Files in the test directory whose names contain ".tmp.". */
static int temporaries(void) {
    DIR *d = opendir(nnl_test_tmpdir());
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) n += strstr(e->d_name, ".tmp.") != NULL;
    if (d) closedir(d);
    return n;
}

static void test_modes(void) {
    mode_t old = umask(022);
    CHECK(nnl_write_file(p("plain"), "abc", 3, 0) == NNL_OK && mode_of(g_path) == 0644);
    umask(077);
    CHECK(nnl_write_file(p("private"), "abc", 3, 0) == NNL_OK && mode_of(g_path) == 0600);
    umask(0);
    CHECK(nnl_write_file(p("secret"), "abc", 3, NNL_WRITE_SECRET) == NNL_OK && mode_of(g_path) == 0600);
    /* A replaced file keeps its mode; a replaced secret loses group and other bits. */
    chmod(p("plain"), 0640);
    CHECK(nnl_write_file(p("plain"), "abcd", 4, 0) == NNL_OK && mode_of(g_path) == 0640);
    chmod(p("secret"), 0644);
    CHECK(nnl_write_file(p("secret"), "abcd", 4, NNL_WRITE_SECRET) == NNL_OK && mode_of(g_path) == 0600);
    umask(old);
    size_t n;
    uint8_t *b = nnl_test_read(p("plain"), &n);
    CHECK(b && n == 4 && !memcmp(b, "abcd", 4));
    free(b);
}

static void test_new_and_targets(void) {
    CHECK(nnl_write_file(p("key"), "k1", 2, NNL_WRITE_NEW | NNL_WRITE_SECRET) == NNL_OK);
    EXPECT_FAIL(nnl_write_file(p("key"), "k2", 2, NNL_WRITE_NEW | NNL_WRITE_SECRET), "exists");
    size_t n;
    uint8_t *b = nnl_test_read(p("key"), &n);
    CHECK(b && n == 2 && !memcmp(b, "k1", 2));
    free(b);
    /* A link is written through; a link to nothing is refused. */
    CHECK(nnl_write_file(p("target"), "old", 3, 0) == NNL_OK);
    char t[1024];
    snprintf(t, sizeof t, "%s", p("target"));
    CHECK(symlink(t, p("link")) == 0);
    CHECK(nnl_write_file(p("link"), "new", 3, 0) == NNL_OK);
    struct stat sb;
    CHECK(lstat(p("link"), &sb) == 0 && S_ISLNK(sb.st_mode));
    b = nnl_test_read(p("target"), &n);
    CHECK(b && n == 3 && !memcmp(b, "new", 3));
    free(b);
    CHECK(symlink("nowhere/x", p("dangling")) == 0);
    EXPECT_FAIL(nnl_write_file(p("dangling"), "x", 1, 0), "symbolic link");
    EXPECT_FAIL(nnl_write_file(p("link"), "x", 1, NNL_WRITE_NEW), "exists");
    /* Not a regular file: refused and left as it is. */
    CHECK(mkfifo(p("fifo"), 0644) == 0);
    EXPECT_FAIL(nnl_write_file(p("fifo"), "x", 1, 0), "FIFO");
    CHECK(stat(p("fifo"), &sb) == 0 && S_ISFIFO(sb.st_mode));
    nnl_test_mkdirs(p("dir"));
    EXPECT_FAIL(nnl_write_file(p("dir"), "x", 1, 0), "directory");
    EXPECT_FAIL(nnl_write_file(p("missing/x"), "x", 1, 0), "missing");
    /* The checks made before a long run. */
    CHECK(nnl_check_writable(p("fresh"), 0) == NNL_OK && access(g_path, F_OK) != 0);
    EXPECT_FAIL(nnl_check_writable(p("fifo"), 0), "FIFO");
    EXPECT_FAIL(nnl_check_writable(p("key"), NNL_WRITE_NEW), "exists");
    EXPECT_FAIL(nnl_check_writable(p("missing/x"), 0), "missing");
    CHECK(nnl_check_writable(p("dir"), NNL_WRITE_DIR) == NNL_OK);
    CHECK(nnl_check_writable(p("newdir"), NNL_WRITE_DIR) == NNL_OK && access(g_path, F_OK) != 0);
    EXPECT_FAIL(nnl_check_writable(p("target"), NNL_WRITE_DIR), "not a directory");
    EXPECT_FAIL(nnl_check_writable(p("missing/newdir"), NNL_WRITE_DIR), "missing");
    CHECK(temporaries() == 0);
}

static void test_reads(void) {
    uint8_t *d;
    size_t n;
    CHECK(nnl_write_file(p("ten"), "0123456789", 10, 0) == NNL_OK);
    CHECK(nnl_read_file(p("ten"), &d, &n, 10, 0) == NNL_OK && n == 10);
    free(d);
    EXPECT_FAIL(nnl_read_file(p("ten"), &d, &n, 9, 0), "limit");
    EXPECT_FAIL(nnl_read_file("/dev/zero", &d, &n, 1 << 20, 0), "character device");
    EXPECT_FAIL(nnl_read_file(p("dir"), &d, &n, 1 << 20, 0), "directory");
    /* gzip only on request; the bound is on what it inflates to. */
    gzFile g = gzopen(p("z.gz"), "wb");
    static uint8_t zeros[1 << 16];
    CHECK(g && gzwrite(g, zeros, sizeof zeros) == (int)sizeof zeros);
    gzclose(g);
    CHECK(nnl_read_file(p("z.gz"), &d, &n, 1 << 20, 0) == NNL_OK && n < 1000 && d[0] == 0x1f);
    free(d);
    CHECK(nnl_read_file(p("z.gz"), &d, &n, 1 << 20, NNL_READ_GZIP) == NNL_OK && n == sizeof zeros);
    free(d);
    EXPECT_FAIL(nnl_read_file(p("z.gz"), &d, &n, 1000, NNL_READ_GZIP), "decompresses to more than");
}

/* A child saves a large buffer over and over, with the CLI's handler (discard, then die of the
 * signal); the parent kills it at many moments. No temporary file may survive, and the target
 * is always either absent or complete. */
static void on_term(int sig) {
    nnl_discard_partial_files();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void kill_during_saves(int named) {
    size_t size = (size_t)24 << 20;
    for (int round = 0; round < 12; round++) {
        pid_t pid = fork();
        if (pid == 0) {
            nnl_file_force_named_temp(named);
            signal(SIGTERM, on_term);
            uint8_t *buf = malloc(size);
            if (!buf) _exit(3);
            memset(buf, 'a' + round % 26, size);
            for (;;) nnl_write_file(p("big"), buf, size, 0);
        }
        usleep(20000 + 9000 * (useconds_t)round);
        kill(pid, SIGTERM);
        int status;
        waitpid(pid, &status, 0);
        CHECK_MSG(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM, "round %d: the child ended otherwise", round);
        CHECK_MSG(temporaries() == 0, "round %d (%s): a temporary file was left", round, named ? "named" : "O_TMPFILE");
        struct stat sb;
        CHECK(stat(p("big"), &sb) != 0 || (size_t)sb.st_size == size);
    }
}

/* -t N beyond what an address-space limit leaves for OpenBLAS's buffers fails with a message
 * instead of hanging. Not under AddressSanitizer, whose shadow memory needs the address space. */
static void test_threads_limit(void) {
#if defined(__SANITIZE_ADDRESS__)
    fprintf(stderr, "  skipped: the address-space limit under AddressSanitizer\n");
#else
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit rl = {(rlim_t)3 << 30, (rlim_t)3 << 30};
        setrlimit(RLIMIT_AS, &rl);
        int st = nnl_set_threads(64);
        int ok = st == NNL_ERR_NOMEM && strstr(nnl_errmsg(), "address space") != NULL;
        fprintf(stderr, "  expected failure: %s\n", nnl_errmsg());
        _exit(ok ? 0 : 1);
    }
    int status;
    waitpid(pid, &status, 0);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "nnl_set_threads(64) under a 3 GB limit did not fail cleanly");
#endif
}

int main(void) {
    test_modes();
    test_new_and_targets();
    test_reads();
    kill_during_saves(0);
    kill_during_saves(1);
    test_threads_limit();
    return nnl_test_finish("test_files");
}
