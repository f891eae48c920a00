/* Reading and writing whole files: every read bounded before it allocates, every write
 * atomic, with the mode the file should have from its first byte. */
#define _GNU_SOURCE /* O_TMPFILE, linkat's AT_EMPTY_PATH */
#include "core.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* ------------------------------------------------------------------ reading */

static const char *kind_of(mode_t m) {
    if (S_ISDIR(m)) return "a directory";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISFIFO(m)) return "a FIFO";
    if (S_ISSOCK(m)) return "a socket";
    if (S_ISLNK(m)) return "a symbolic link";
    if (S_ISREG(m)) return "a regular file";
    return "not a regular file";
}

/* Reads from fd until EOF or more than max_bytes. A regular file was already checked
 * against the bound by its size; a pipe is read up to the bound and no further. */
static int read_plain(const char *path, int fd, size_t hint, uint8_t **data, size_t *size, size_t max_bytes) {
    size_t cap = hint ? hint + 1 : 1 << 16, n = 0;
    if (cap > max_bytes + 1) cap = max_bytes + 1;
    uint8_t *buf = malloc(cap);
    if (!buf) return nnl_fail(NNL_ERR_NOMEM, "%s: out of memory", path);
    for (;;) {
        if (n == cap) {
            if (cap >= max_bytes + 1) break;
            size_t ncap = cap * 2 > max_bytes + 1 ? max_bytes + 1 : cap * 2;
            uint8_t *nb = realloc(buf, ncap);
            if (!nb) { free(buf); return nnl_fail(NNL_ERR_NOMEM, "%s: out of memory", path); }
            buf = nb; cap = ncap;
        }
        size_t want = cap - n > (1u << 30) ? (1u << 30) : cap - n;
        ssize_t got = read(fd, buf + n, want);
        if (got < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            free(buf);
            return nnl_fail(NNL_ERR_IO, "%s: read error: %s", path, strerror(e));
        }
        if (got == 0) break;
        n += (size_t)got;
    }
    if (n > max_bytes) {
        free(buf);
        return nnl_fail(NNL_ERR_FORMAT, "%s: larger than the %zu-byte limit for this kind of file", path, max_bytes);
    }
    *data = buf; *size = n;
    return NNL_OK;
}

/* Inflates a gzip stream, stopping as soon as the output passes max_bytes: a small file
 * must not be able to make us allocate gigabytes. */
static int read_gzip(const char *path, int fd, uint8_t **data, size_t *size, size_t max_bytes) {
    int dfd = dup(fd);
    if (dfd < 0) return nnl_fail(NNL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    gzFile g = gzdopen(dfd, "rb");
    if (!g) { close(dfd); return nnl_fail(NNL_ERR_NOMEM, "%s: out of memory", path); }
    gzbuffer(g, 1 << 17);
    size_t cap = 1 << 20, n = 0;
    if (cap > max_bytes + 1) cap = max_bytes + 1;
    uint8_t *buf = malloc(cap);
    if (!buf) { gzclose(g); return nnl_fail(NNL_ERR_NOMEM, "%s: out of memory", path); }
    for (;;) {
        if (n == cap) {
            if (cap >= max_bytes + 1) break;
            size_t ncap = cap * 2 > max_bytes + 1 ? max_bytes + 1 : cap * 2;
            uint8_t *nb = realloc(buf, ncap);
            if (!nb) { free(buf); gzclose(g); return nnl_fail(NNL_ERR_NOMEM, "%s: out of memory", path); }
            buf = nb; cap = ncap;
        }
        size_t want = cap - n > (1u << 30) ? (1u << 30) : cap - n;
        int got = gzread(g, buf + n, (unsigned)want);
        if (got < 0) {
            int zerr; const char *m = gzerror(g, &zerr);
            int st = nnl_fail(NNL_ERR_FORMAT, "%s: corrupt gzip data: %s", path, m);
            free(buf); gzclose(g);
            return st;
        }
        if (got == 0) break;
        n += (size_t)got;
    }
    if (n > max_bytes) {
        free(buf); gzclose(g);
        return nnl_fail(NNL_ERR_FORMAT, "%s: decompresses to more than the %zu-byte limit for this kind of file", path, max_bytes);
    }
    /* gzread reports a truncated stream only through gzerror after EOF. */
    int zerr = Z_OK;
    const char *m = gzerror(g, &zerr);
    if (zerr != Z_OK && zerr != Z_STREAM_END) {
        int st = nnl_fail(NNL_ERR_FORMAT, "%s: corrupt or truncated gzip data: %s", path, m);
        free(buf); gzclose(g);
        return st;
    }
    gzclose(g);
    *data = buf; *size = n;
    return NNL_OK;
}

int nnl_read_file(const char *path, uint8_t **data, size_t *size, size_t max_bytes, int flags) {
    *data = NULL;
    *size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) return nnl_fail(NNL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return nnl_fail(NNL_ERR_IO, "%s: cannot open: %s", path, strerror(e));
    }
    /* A device never ends (/dev/zero) or blocks; a pipe is read up to the bound. */
    if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode)) {
        close(fd);
        return nnl_fail(NNL_ERR_IO, "%s: is %s, expected a file", path, kind_of(st.st_mode));
    }
    /* O_NONBLOCK kept open() from waiting for a FIFO's writer; reads should wait. */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > (uint64_t)max_bytes && !(flags & NNL_READ_GZIP)) {
        close(fd);
        return nnl_fail(NNL_ERR_FORMAT, "%s: %lld bytes, larger than the %zu-byte limit for this kind of file", path,
                        (long long)st.st_size, max_bytes);
    }
    int s;
    unsigned char magic[2] = {0, 0};
    ssize_t m = (flags & NNL_READ_GZIP) ? pread(fd, magic, 2, 0) : 0;
    if (m == 2 && magic[0] == 0x1f && magic[1] == 0x8b) s = read_gzip(path, fd, data, size, max_bytes);
    else if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > (uint64_t)max_bytes)
        s = nnl_fail(NNL_ERR_FORMAT, "%s: %lld bytes, larger than the %zu-byte limit for this kind of file", path,
                     (long long)st.st_size, max_bytes);
    else s = read_plain(path, fd, S_ISREG(st.st_mode) ? (size_t)st.st_size : 0, data, size, max_bytes);
    close(fd);
    return s;
}

/* ------------------------------------------------------------------ writing */

/*
 * A save is written to a temporary file in the target's directory and renamed over the
 * target only when it is complete and on disk, so a crash, a kill or a full disk leaves
 * the old file as it was. Where the file system has O_TMPFILE the temporary file has no
 * name until it is complete: nothing is left behind even by kill -9, and plaintext
 * weights never sit under a guessable name. Elsewhere (and for the instant between
 * naming and renaming) the temporary name is kept here, so that a signal handler can
 * remove it (nnl_discard_partial_files).
 */
static char g_partial[PATH_MAX + 32];
static volatile sig_atomic_t g_partial_set;
static int g_named_only; /* tests: take the path of file systems without O_TMPFILE */

void nnl_file_force_named_temp(int on) { g_named_only = on; }

static void partial_set(const char *tmp) {
    g_partial_set = 0;
    snprintf(g_partial, sizeof g_partial, "%s", tmp);
    g_partial_set = 1;
}

static void partial_clear(void) { g_partial_set = 0; }

void nnl_discard_partial_files(void) {
    /* Async-signal-safe: unlink only. */
    if (g_partial_set) {
        g_partial_set = 0;
        unlink(g_partial);
    }
}

/* Where a write to path goes and what the file there is now. */
typedef struct target {
    char path[PATH_MAX];  /* the file to replace: path, or what its symbolic links lead to */
    char dir[PATH_MAX];   /* its directory */
    int exists;
    struct stat st;
} target;

static int resolve(const char *path, int flags, target *t) {
    memset(t, 0, sizeof *t);
    if (!path || !*path) return nnl_fail(NNL_ERR_ARG, "empty output path");
    if (strlen(path) >= sizeof t->path - 32) return nnl_fail(NNL_ERR_ARG, "%s: path too long", path);
    struct stat ls;
    if (lstat(path, &ls) == 0 && S_ISLNK(ls.st_mode)) {
        /* A link is written through: the file it leads to is replaced, the link stays. */
        char *real = realpath(path, NULL);
        if (!real) {
            if (errno == ENOENT)
                return nnl_fail(NNL_ERR_IO, "%s: is a symbolic link to a file that does not exist; not following it", path);
            return nnl_fail(NNL_ERR_IO, "%s: cannot follow the symbolic link: %s", path, strerror(errno));
        }
        if (strlen(real) >= sizeof t->path - 32) { free(real); return nnl_fail(NNL_ERR_ARG, "%s: path too long", path); }
        snprintf(t->path, sizeof t->path, "%s", real);
        free(real);
    } else {
        snprintf(t->path, sizeof t->path, "%s", path);
    }
    if (stat(t->path, &t->st) == 0) {
        t->exists = 1;
        if (flags & NNL_WRITE_DIR) {
            if (!S_ISDIR(t->st.st_mode))
                return nnl_fail(NNL_ERR_IO, "%s: exists and is %s, not a directory", path, kind_of(t->st.st_mode));
            snprintf(t->dir, sizeof t->dir, "%s", t->path);
            return NNL_OK;
        }
        if (!S_ISREG(t->st.st_mode))
            return nnl_fail(NNL_ERR_IO, "%s: exists and is %s; not replacing it", path, kind_of(t->st.st_mode));
        if (flags & NNL_WRITE_NEW) return nnl_fail(NNL_ERR_IO, "%s: exists; not overwriting it", path);
    } else if (errno != ENOENT) {
        return nnl_fail(NNL_ERR_IO, "%s: %s", path, strerror(errno));
    }
    snprintf(t->dir, sizeof t->dir, "%s", t->path);
    char *slash = strrchr(t->dir, '/');
    if (!slash) snprintf(t->dir, sizeof t->dir, ".");
    else if (slash == t->dir) t->dir[1] = 0;
    else *slash = 0;
    struct stat ds;
    if (stat(t->dir, &ds) != 0)
        return nnl_fail(NNL_ERR_IO, "%s: cannot write there: directory %s: %s", path, t->dir, strerror(errno));
    if (!S_ISDIR(ds.st_mode)) return nnl_fail(NNL_ERR_IO, "%s: cannot write there: %s is not a directory", path, t->dir);
    return NNL_OK;
}

/* A fresh name beside the target, for the named temporary file. */
static void temp_name(const target *t, char *out, size_t n) {
    static unsigned counter;
    uint64_t r = nnl_mix64((uint64_t)getpid() << 32 ^ (uint64_t)++counter ^ (uint64_t)(nnl_now() * 1e9));
    snprintf(out, n, "%s.tmp.%06llx", t->path, (unsigned long long)(r & 0xffffff));
}

/* An open, empty, unnamed (O_TMPFILE) or named temporary file in t's directory. */
static int open_temp(const target *t, mode_t mode, char *name, size_t namelen, int *named) {
    *named = 0;
#ifdef O_TMPFILE
    int fd = g_named_only ? -1 : open(t->dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, mode);
    if (fd >= 0) return fd;
    if (g_named_only) errno = EOPNOTSUPP;
    /* File systems without it answer EOPNOTSUPP, EISDIR or EINVAL; anything else is real. */
    if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL && errno != ENOENT) return -1;
#endif
    /* A signal between creating the file and recording its name would leave it behind:
     * the usual termination signals wait (blocked) for the two steps. */
    sigset_t term, old;
    sigemptyset(&term);
    sigaddset(&term, SIGINT);
    sigaddset(&term, SIGTERM);
    sigaddset(&term, SIGHUP);
    sigaddset(&term, SIGQUIT);
    for (int tries = 0; tries < 100; tries++) {
        temp_name(t, name, namelen);
        pthread_sigmask(SIG_BLOCK, &term, &old);
        int f = open(name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, mode), e = errno;
        if (f >= 0) partial_set(name);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (f >= 0) { *named = 1; return f; }
        if (e != EEXIST) { errno = e; return -1; }
    }
    return -1;
}

/* Gives the unnamed temporary file fd the name `name`. */
static int link_temp(int fd, const char *name) {
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    if (linkat(AT_FDCWD, proc, AT_FDCWD, name, AT_SYMLINK_FOLLOW) == 0) return 0;
    if (errno == EEXIST) return -1;
    return linkat(fd, "", AT_FDCWD, name, AT_EMPTY_PATH);
}

static int write_all(int fd, const void *data, size_t size) {
    const uint8_t *p = data;
    while (size > 0) {
        ssize_t w = write(fd, p, size > (1u << 30) ? (1u << 30) : size);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        size -= (size_t)w;
    }
    return 0;
}

static int probe_dir(const target *t, const char *path) {
    char name[PATH_MAX + 32];
    int named;
    int fd = open_temp(t, 0600, name, sizeof name, &named);
    if (fd < 0) return nnl_fail(NNL_ERR_IO, "%s: cannot write in %s: %s", path, t->dir, strerror(errno));
    close(fd);
    if (named) { unlink(name); partial_clear(); }
    return NNL_OK;
}

int nnl_check_writable(const char *path, int flags) {
    target t;
    int st = resolve(path, flags, &t);
    if (st) return st;
    /* For a directory that does not exist yet, t.dir is its parent, which must take it. The
     * probe's name (used only without O_TMPFILE) is made beside a file called "x" there. */
    if (flags & NNL_WRITE_DIR) {
        size_t n = strlen(t.dir);
        if (n + 3 > sizeof t.path) return nnl_fail(NNL_ERR_ARG, "%s: path too long", path);
        memcpy(t.path, t.dir, n);
        memcpy(t.path + n, "/x", 3);
    }
    return probe_dir(&t, path);
}

int nnl_write_file(const char *path, const void *data, size_t size, int flags) {
    target t;
    int st = resolve(path, flags & ~NNL_WRITE_DIR, &t);
    if (st) return st;
    /* The file's mode from its first byte: a replaced file keeps its own (a secret is
     * narrowed to the owner), a new one gets 0666 less the umask (open applies it), a new
     * secret 0600. */
    mode_t create = (flags & NNL_WRITE_SECRET) ? 0600 : 0666;
    mode_t keep = t.exists ? (t.st.st_mode & 07777) : 0;
    if (t.exists && (flags & NNL_WRITE_SECRET)) keep &= 0700;
    char name[PATH_MAX + 32];
    int named;
    int fd = open_temp(&t, t.exists ? (keep & 0777) : create, name, sizeof name, &named);
    if (fd < 0) return nnl_fail(NNL_ERR_IO, "%s: cannot create a temporary file in %s: %s", path, t.dir, strerror(errno));
    int e = 0;
    const char *what = "write failed";
    if (t.exists) {
        /* As root, keep the owner of a file we replace (best effort: not a failure). */
        if (geteuid() == 0 && fchown(fd, t.st.st_uid, t.st.st_gid) != 0) { /* keep ours */ }
        if (fchmod(fd, keep) != 0) { e = errno; what = "cannot set its mode"; }
    }
    if (!e && write_all(fd, data, size) != 0) e = errno;
    if (!e && fsync(fd) != 0) e = errno;
    if (e) {
        close(fd);
        if (named) { unlink(name); partial_clear(); }
        return nnl_fail(NNL_ERR_IO, "%s: %s: %s%s", path, what, strerror(e), t.exists ? " (the old file is unchanged)" : "");
    }
    if (!named) {
        if (flags & NNL_WRITE_NEW) {
            /* link() refuses an existing name, where rename() would replace it: the one
             * way to create a file exclusively that another writer cannot race. */
            if (link_temp(fd, t.path) != 0) {
                e = errno;
                close(fd);
                if (e == EEXIST) return nnl_fail(NNL_ERR_IO, "%s: exists; not overwriting it", path);
                return nnl_fail(NNL_ERR_IO, "%s: cannot create it: %s", path, strerror(e));
            }
            close(fd);
            goto synced;
        }
        int linked = 0;
        for (int tries = 0; tries < 100 && !linked; tries++) {
            temp_name(&t, name, sizeof name);
            partial_set(name);
            if (link_temp(fd, name) == 0) linked = 1;
            else if (errno != EEXIST) break;
        }
        if (!linked) {
            e = errno;
            partial_clear();
            close(fd);
            return nnl_fail(NNL_ERR_IO, "%s: cannot name the temporary file: %s", path, strerror(e));
        }
    }
    close(fd);
    if (flags & NNL_WRITE_NEW) {
        if (link(name, t.path) != 0) {
            e = errno;
            unlink(name);
            partial_clear();
            if (e == EEXIST) return nnl_fail(NNL_ERR_IO, "%s: exists; not overwriting it", path);
            return nnl_fail(NNL_ERR_IO, "%s: cannot create it: %s", path, strerror(e));
        }
        unlink(name);
    } else if (rename(name, t.path) != 0) {
        e = errno;
        unlink(name);
        partial_clear();
        return nnl_fail(NNL_ERR_IO, "%s: cannot rename the temporary file into place: %s", path, strerror(e));
    }
    partial_clear();
synced:;
    /* The rename itself is durable only once the directory is. */
    int dfd = open(t.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) { fsync(dfd); close(dfd); }
    return NNL_OK;
}

int nnl_make_dir(const char *path, int flags) {
    target t;
    int st = resolve(path, NNL_WRITE_DIR, &t);
    if (st) return st;
    if (t.exists) return NNL_OK;
    if (mkdir(t.path, (flags & NNL_WRITE_SECRET) ? 0700 : 0777) != 0 && errno != EEXIST)
        return nnl_fail(NNL_ERR_IO, "%s: cannot create the directory: %s", path, strerror(errno));
    return NNL_OK;
}

int nnl_remove_file(const char *path) {
    if (unlink(path) != 0 && errno != ENOENT) return nnl_fail(NNL_ERR_IO, "%s: cannot remove it: %s", path, strerror(errno));
    return NNL_OK;
}

char *nnl_path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

int nnl_is_file(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

int nnl_is_dir(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}
