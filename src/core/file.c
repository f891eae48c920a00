#include "core.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static int read_plain(const char *path, FILE *f, uint8_t **data, size_t *size, size_t max_bytes) {
    size_t cap = 1 << 16, n = 0;
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
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    if (ferror(f)) { free(buf); return nnl_fail(NNL_ERR_IO, "%s: read error: %s", path, strerror(errno)); }
    if (n > max_bytes) { free(buf); return nnl_fail(NNL_ERR_FORMAT, "%s: file larger than the %zu-byte limit", path, max_bytes); }
    *data = buf; *size = n;
    return NNL_OK;
}

static int read_gzip(const char *path, uint8_t **data, size_t *size, size_t max_bytes) {
    gzFile g = gzopen(path, "rb");
    if (!g) return nnl_fail(NNL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    gzbuffer(g, 1 << 17);
    size_t cap = 1 << 20, n = 0;
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
    /* gzread reports a truncated stream only through gzerror after EOF. */
    int zerr = Z_OK;
    const char *m = gzerror(g, &zerr);
    if (zerr != Z_OK && zerr != Z_STREAM_END) {
        int st = nnl_fail(NNL_ERR_FORMAT, "%s: corrupt or truncated gzip data: %s", path, m);
        free(buf); gzclose(g);
        return st;
    }
    gzclose(g);
    if (n > max_bytes) { free(buf); return nnl_fail(NNL_ERR_FORMAT, "%s: decompressed size exceeds the %zu-byte limit", path, max_bytes); }
    *data = buf; *size = n;
    return NNL_OK;
}

int nnl_read_file(const char *path, uint8_t **data, size_t *size, size_t max_bytes) {
    FILE *f = fopen(path, "rb");
    if (!f) return nnl_fail(NNL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        return nnl_fail(NNL_ERR_IO, "%s: is a directory, expected a file", path);
    }
    unsigned char magic[2] = {0, 0};
    size_t m = fread(magic, 1, 2, f);
    if (m == 2 && magic[0] == 0x1f && magic[1] == 0x8b) {
        fclose(f);
        return read_gzip(path, data, size, max_bytes);
    }
    rewind(f);
    int s = read_plain(path, f, data, size, max_bytes);
    fclose(f);
    return s;
}

int nnl_write_file_atomic(const char *path, const void *data, size_t size) {
    size_t len = strlen(path);
    char *tmp = malloc(len + 16);
    if (!tmp) return nnl_fail(NNL_ERR_NOMEM, "out of memory");
    memcpy(tmp, path, len);
    memcpy(tmp + len, ".tmp.XXXXXX", 12);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int st = nnl_fail(NNL_ERR_IO, "%s: cannot create a temporary file beside it: %s", path, strerror(errno));
        free(tmp);
        return st;
    }
    const uint8_t *p = data;
    size_t left = size;
    while (left > 0) {
        ssize_t w = write(fd, p, left > (1u << 30) ? (1u << 30) : left);
        if (w < 0) {
            if (errno == EINTR) continue;
            int st = nnl_fail(NNL_ERR_IO, "%s: write failed: %s", path, strerror(errno));
            close(fd); unlink(tmp); free(tmp);
            return st;
        }
        p += w; left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        int st = nnl_fail(NNL_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        unlink(tmp); free(tmp);
        return st;
    }
    chmod(tmp, 0644);
    if (rename(tmp, path) != 0) {
        int st = nnl_fail(NNL_ERR_IO, "%s: cannot rename the temporary file into place: %s", path, strerror(errno));
        unlink(tmp); free(tmp);
        return st;
    }
    free(tmp);
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
