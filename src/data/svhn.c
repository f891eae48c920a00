/*
 * SVHN cropped digits (train_32x32.mat, test_32x32.mat): MATLAB v5 MAT-files with
 *   X  uint8 32x32x3xN, column-major, i.e. X(row, col, channel, n)
 *   y  N x 1 labels 1..10, where 10 means the digit 0.
 *
 * matio reads the variables. It does not notice a truncated file (it returns short
 * reads as data) nor a data element shorter than the array's dimensions, so a small
 * structural scan runs first: the v5 header, every top-level element inside the file,
 * every compressed element inflating completely, and for X and y the array header
 * (class, dimensions, data type and byte count) consistent with the element's size.
 */
#include "core/core.h"
#include "data/formats.h"

#include <errno.h>
#include <math.h>
#include <matio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define SVHN_SIDE 32
#define SVHN_PLANE (SVHN_SIDE * SVHN_SIDE)
#define SVHN_IMAGE (3 * SVHN_PLANE)
/* Largest image count accepted: bounds memory on a hostile header (extra_32x32.mat,
 * the largest official file, has 531131). */
#define SVHN_MAX_N ((uint64_t)(NNL_DATA_MAX_FILE / SVHN_IMAGE))
/* Bytes of an element kept for parsing its array header. */
#define HEAD_CAP 1024
#define MAX_RANK 32

/* mxCLASS and miTYPE codes of the MAT v5 format. */
enum { MX_DOUBLE = 6, MX_SINGLE, MX_INT8, MX_UINT8, MX_INT16, MX_UINT16, MX_INT32, MX_UINT32,
       MX_INT64, MX_UINT64 };
enum { MI_INT8 = 1, MI_UINT8, MI_INT16, MI_UINT16, MI_INT32, MI_UINT32, MI_SINGLE,
       MI_DOUBLE = 9, MI_INT64 = 12, MI_UINT64, MI_MATRIX, MI_COMPRESSED };

/* What the scan learnt about one variable. */
typedef struct varinfo {
    int found;
    int cls;          /* mxCLASS */
    int complex, logical;
    int rank;
    uint64_t dims[MAX_RANK];
    int dtype;        /* miTYPE of the real part as stored */
    uint64_t dbytes;  /* its byte count */
} varinfo;

static const char *class_name(int cls) {
    static const char *const names[] = {"empty", "cell", "struct", "object", "char", "sparse",
                                        "double", "single", "int8", "uint8", "int16", "uint16",
                                        "int32", "uint32", "int64", "uint64", "function", "opaque"};
    return cls >= 0 && cls < (int)(sizeof names / sizeof names[0]) ? names[cls] : "unknown";
}

static size_t mi_size(int t) {
    switch (t) {
    case MI_INT8: case MI_UINT8: return 1;
    case MI_INT16: case MI_UINT16: return 2;
    case MI_INT32: case MI_UINT32: case MI_SINGLE: return 4;
    case MI_DOUBLE: case MI_INT64: case MI_UINT64: return 8;
    default: return 0;
    }
}

static uint32_t rd32(const uint8_t *p, int swap) {
    uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    return swap ? __builtin_bswap32(v) : v;
}

/* "AxBxC..." into buf. */
static const char *dims_str(const varinfo *v, char *buf, size_t cap) {
    size_t at = 0;
    buf[0] = 0;
    for (int i = 0; i < v->rank && at < cap; i++)
        at += (size_t)snprintf(buf + at, cap - at, "%s%llu", i ? "x" : "", (unsigned long long)v->dims[i]);
    return buf;
}

/* One sub-element tag at b[p], in the long (8-byte tag) or the small (data in the tag)
 * form. Returns 0 if the tag does not fit in n bytes. */
static int subtag(const uint8_t *b, size_t n, size_t p, int swap, uint32_t *type, uint32_t *nb,
                  size_t *data, size_t *next) {
    if (p > n || n - p < 8) return 0;
    uint32_t t = rd32(b + p, swap);
    if (t >> 16) { /* small data element: up to 4 bytes in the tag itself */
        *type = (t >> 16) <= 4 ? t & 0xffffu : 0; /* more than 4 bytes cannot be small */
        *nb = t >> 16;
        *data = p + 4;
        *next = p + 8;
    } else {
        *type = t;
        *nb = rd32(b + p + 4, swap);
        *data = p + 8;
        *next = p + 8 + (((uint64_t)*nb + 7) & ~(uint64_t)7);
    }
    return 1;
}

/*
 * Parses the array header of a miMATRIX element from its first n bytes (b starts after
 * the element's tag; total is the element's full content length). Fills name and *v.
 * Returns 1 when parsed (the data tag only for numeric classes), 0 when the element is
 * empty or its header runs past the bytes kept, or minus a status (message set) when the
 * header is malformed.
 */
static int parse_matrix(const uint8_t *b, size_t n, uint64_t total, int swap, const char *path,
                        uint64_t off, char *name, size_t name_cap, varinfo *v) {
    uint32_t type, nb;
    size_t data, next, p = 0;
    memset(v, 0, sizeof *v);
    name[0] = 0;
    if (total == 0) return 0; /* an empty element (MATLAB writes these for empty cells) */
    /* A header running past the bytes kept is not checked (no SVHN variable has one), one
     * running past the element is corrupt. */
#define NEED(ok) do { if (!(ok)) { if (n < total) return 0; \
        return -nnl_fail(NNL_ERR_FORMAT, "%s: variable at byte %llu: truncated array header", path, \
                         (unsigned long long)off); } } while (0)
    /* array flags */
    NEED(subtag(b, n, p, swap, &type, &nb, &data, &next));
    if (type != MI_UINT32 || nb != 8)
        return -nnl_fail(NNL_ERR_FORMAT, "%s: variable at byte %llu: bad array-flags element", path,
                         (unsigned long long)off);
    NEED(data + 8 <= n);
    uint32_t flags = rd32(b + data, swap);
    v->cls = (int)(flags & 0xff);
    v->complex = (flags & 0x800) != 0;
    v->logical = (flags & 0x200) != 0;
    /* dimensions */
    p = next;
    NEED(subtag(b, n, p, swap, &type, &nb, &data, &next));
    if (type != MI_INT32 || nb % 4 || nb / 4 < 2 || nb / 4 > MAX_RANK)
        return -nnl_fail(NNL_ERR_FORMAT, "%s: variable at byte %llu: bad dimensions element", path,
                         (unsigned long long)off);
    NEED(data + nb <= n);
    v->rank = (int)(nb / 4);
    for (int i = 0; i < v->rank; i++) {
        int32_t d = (int32_t)rd32(b + data + 4 * (size_t)i, swap);
        if (d < 0)
            return -nnl_fail(NNL_ERR_FORMAT, "%s: variable at byte %llu: negative dimension %d", path,
                             (unsigned long long)off, d);
        v->dims[i] = (uint64_t)d;
    }
    /* name */
    p = next;
    NEED(subtag(b, n, p, swap, &type, &nb, &data, &next));
    if (type != MI_INT8 || nb >= name_cap)
        return -nnl_fail(NNL_ERR_FORMAT, "%s: variable at byte %llu: bad name element", path,
                         (unsigned long long)off);
    NEED(data + nb <= n);
    memcpy(name, b + data, nb);
    name[nb] = 0;
    if (strlen(name) != nb) name[0] = 0; /* an embedded NUL: not a name looked for */
    if (v->cls < MX_DOUBLE || v->cls > MX_UINT64) return 1; /* no numeric data to check */
    /* real part: its tag must describe bytes inside the element */
    p = next;
    NEED(subtag(b, n, p, swap, &type, &nb, &data, &next));
#undef NEED
    if ((uint64_t)data + nb > total)
        return -nnl_fail(NNL_ERR_FORMAT, "%s: variable '%s': data element of %u bytes overruns its %llu-byte variable",
                         path, name, nb, (unsigned long long)total);
    v->dtype = (int)type;
    v->dbytes = nb;
    return 1;
}

typedef struct scan {
    const char *path;
    FILE *f;
    uint64_t size;
    int swap;
    varinfo x, y;
} scan;

static void keep(scan *s, const char *name, const varinfo *v) {
    varinfo *dst = strcmp(name, "X") == 0 ? &s->x : strcmp(name, "y") == 0 ? &s->y : NULL;
    if (dst && !dst->found) { *dst = *v; dst->found = 1; } /* matio reads the first of a name */
}

/* Inflates a compressed element of nb bytes (the file is positioned at its data) to its
 * end, keeping the first HEAD_CAP bytes: a truncated or corrupt stream is an error. */
static int inflate_element(scan *s, uint64_t off, uint32_t nb, uint8_t *head, size_t *head_n,
                           uint64_t *out_total) {
    enum { CHUNK = 1 << 18 };
    uint8_t *in = malloc(CHUNK), *out = malloc(CHUNK);
    z_stream z;
    memset(&z, 0, sizeof z);
    int st = NNL_OK, zr = Z_OK;
    if (!in || !out) st = nnl_fail(NNL_ERR_NOMEM, "%s: out of memory", s->path);
    else if (inflateInit(&z) != Z_OK) st = nnl_fail(NNL_ERR_NOMEM, "%s: cannot start zlib", s->path);
    else {
        uint64_t left = nb, total = 0;
        *head_n = 0;
        while (!st && zr != Z_STREAM_END) {
            if (z.avail_in == 0) {
                if (left == 0) {
                    st = nnl_fail(NNL_ERR_FORMAT, "%s: compressed variable at byte %llu ends before its zlib stream does (truncated or corrupt)",
                                  s->path, (unsigned long long)off);
                    break;
                }
                size_t want = left < CHUNK ? (size_t)left : CHUNK;
                if (fread(in, 1, want, s->f) != want) {
                    st = nnl_fail(NNL_ERR_IO, "%s: read error in the variable at byte %llu", s->path,
                                  (unsigned long long)off);
                    break;
                }
                left -= want;
                z.next_in = in;
                z.avail_in = (uInt)want;
            }
            z.next_out = out;
            z.avail_out = CHUNK;
            zr = inflate(&z, Z_NO_FLUSH);
            size_t got = CHUNK - z.avail_out;
            if (*head_n < HEAD_CAP) {
                size_t take = got < HEAD_CAP - *head_n ? got : HEAD_CAP - *head_n;
                memcpy(head + *head_n, out, take);
                *head_n += take;
            }
            total += got;
            if (total > NNL_DATA_MAX_FILE)
                st = nnl_fail(NNL_ERR_FORMAT, "%s: compressed variable at byte %llu inflates beyond %zu bytes",
                              s->path, (unsigned long long)off, NNL_DATA_MAX_FILE);
            else if (zr != Z_OK && zr != Z_STREAM_END && !(zr == Z_BUF_ERROR && z.avail_in == 0))
                st = nnl_fail(NNL_ERR_FORMAT, "%s: compressed variable at byte %llu is corrupt (zlib: %s)", s->path,
                              (unsigned long long)off, z.msg ? z.msg : "error");
        }
        *out_total = total;
        inflateEnd(&z);
    }
    free(in);
    free(out);
    return st;
}

static int scan_file(scan *s) {
    uint8_t hdr[128];
    if (s->size < 128 || fread(hdr, 1, 128, s->f) != 128)
        return nnl_fail(NNL_ERR_FORMAT, "%s: %llu-byte file is too short for a MAT-file header", s->path,
                        (unsigned long long)s->size);
    if (memcmp(hdr, "MATLAB", 6) != 0)
        return nnl_fail(NNL_ERR_FORMAT, "%s: not a MATLAB v5 MAT-file (no 'MATLAB' header text)", s->path);
    if (hdr[126] == 'I' && hdr[127] == 'M') s->swap = 0;
    else if (hdr[126] == 'M' && hdr[127] == 'I') s->swap = 1;
    else return nnl_fail(NNL_ERR_FORMAT, "%s: not a MATLAB v5 MAT-file (bad endian indicator)", s->path);
    unsigned version = s->swap ? (unsigned)hdr[124] << 8 | hdr[125] : (unsigned)hdr[125] << 8 | hdr[124];
    if (version == 0x0200)
        return nnl_fail(NNL_ERR_UNSUPPORTED, "%s: a MATLAB v7.3 (HDF5) MAT-file; SVHN files are v5 (save with -v7)", s->path);
    if (version != 0x0100)
        return nnl_fail(NNL_ERR_FORMAT, "%s: MAT-file version 0x%04x, expected 0x0100 (v5)", s->path, version);
    uint8_t *head = malloc(HEAD_CAP);
    if (!head) return nnl_fail(NNL_ERR_NOMEM, "%s: out of memory", s->path);
    int st = NNL_OK;
    for (uint64_t off = 128; !st && off < s->size;) {
        uint8_t tag[8];
        if (s->size - off < 8) {
            st = nnl_fail(NNL_ERR_FORMAT, "%s: truncated: %llu stray bytes at the end", s->path,
                          (unsigned long long)(s->size - off));
            break;
        }
        if (fseeko(s->f, (off_t)off, SEEK_SET) != 0 || fread(tag, 1, 8, s->f) != 8) {
            st = nnl_fail(NNL_ERR_IO, "%s: read error at byte %llu", s->path, (unsigned long long)off);
            break;
        }
        uint32_t type = rd32(tag, s->swap), nb = rd32(tag + 4, s->swap);
        if (type != MI_MATRIX && type != MI_COMPRESSED) {
            st = nnl_fail(NNL_ERR_FORMAT, "%s: element of type %u at byte %llu is not a variable (corrupt file)",
                          s->path, type, (unsigned long long)off);
            break;
        }
        if ((uint64_t)nb > s->size - off - 8) {
            st = nnl_fail(NNL_ERR_FORMAT, "%s: truncated: the variable at byte %llu needs %u bytes but the file has %llu left",
                          s->path, (unsigned long long)off, nb, (unsigned long long)(s->size - off - 8));
            break;
        }
        size_t head_n = 0;
        uint64_t content = nb; /* bytes of the miMATRIX element's content */
        const uint8_t *mat = head;
        if (type == MI_MATRIX) {
            head_n = nb < HEAD_CAP ? nb : HEAD_CAP;
            if (fread(head, 1, head_n, s->f) != head_n)
                st = nnl_fail(NNL_ERR_IO, "%s: read error at byte %llu", s->path, (unsigned long long)off);
        } else {
            uint64_t total = 0;
            st = inflate_element(s, off, nb, head, &head_n, &total);
            /* The stream holds one whole miMATRIX element: tag + content. */
            if (!st && (head_n < 8 || rd32(head, s->swap) != MI_MATRIX))
                st = nnl_fail(NNL_ERR_FORMAT, "%s: compressed element at byte %llu does not hold a variable",
                              s->path, (unsigned long long)off);
            if (!st) {
                content = rd32(head + 4, s->swap);
                if (content + 8 > total)
                    st = nnl_fail(NNL_ERR_FORMAT, "%s: compressed variable at byte %llu declares %llu bytes but inflates to %llu",
                                  s->path, (unsigned long long)off, (unsigned long long)content + 8,
                                  (unsigned long long)total);
                mat = head + 8;
                head_n -= 8;
            }
        }
        if (!st) {
            char name[256];
            varinfo v;
            int r = parse_matrix(mat, head_n, content, s->swap, s->path, off, name, sizeof name, &v);
            if (r < 0) st = -r;
            else if (r > 0) keep(s, name, &v);
        }
        off += 8 + (uint64_t)nb;
    }
    free(head);
    return st;
}

/* Checks a variable's class, rank and dimensions against the scan (matio's view must agree). */
static int same_shape(const varinfo *v, const matvar_t *m) {
    if (!m || (int)m->class_type != v->cls || m->rank < 2 || m->rank != v->rank || !m->dims) return 0;
    for (int i = 0; i < m->rank; i++)
        if ((uint64_t)m->dims[i] != v->dims[i]) return 0;
    return !m->isComplex && !m->isLogical;
}

/* Label k of y (already of class cls) as a double. */
static double label_at(const void *data, int cls, uint64_t k) {
    switch (cls) {
    case MX_DOUBLE: return ((const double *)data)[k];
    case MX_SINGLE: return ((const float *)data)[k];
    case MX_INT8: return ((const int8_t *)data)[k];
    case MX_UINT8: return ((const uint8_t *)data)[k];
    case MX_INT16: return ((const int16_t *)data)[k];
    case MX_UINT16: return ((const uint16_t *)data)[k];
    case MX_INT32: return ((const int32_t *)data)[k];
    case MX_UINT32: return ((const uint32_t *)data)[k];
    case MX_INT64: return (double)((const int64_t *)data)[k];
    default: return (double)((const uint64_t *)data)[k];
    }
}

static size_t class_size(int cls) {
    switch (cls) {
    case MX_INT8: case MX_UINT8: return 1;
    case MX_INT16: case MX_UINT16: return 2;
    case MX_INT32: case MX_UINT32: case MX_SINGLE: return 4;
    default: return 8;
    }
}

/* The scan's checks of X and y: returns N via *n. */
static int check_vars(const scan *s, uint64_t *n) {
    char db[256];
    const varinfo *x = &s->x, *y = &s->y;
    if (!x->found) return nnl_fail(NNL_ERR_FORMAT, "%s: no variable X (the images)", s->path);
    if (!y->found) return nnl_fail(NNL_ERR_FORMAT, "%s: no variable y (the labels)", s->path);
    if (x->cls != MX_UINT8 || x->complex || x->logical)
        return nnl_fail(NNL_ERR_FORMAT, "%s: variable X is %s%s%s, expected uint8", s->path, x->complex ? "complex " : "",
                        x->logical ? "logical " : "", class_name(x->cls));
    /* MATLAB drops trailing singleton dimensions: one image is stored as 32x32x3. */
    uint64_t xn = x->rank == 4 ? x->dims[3] : 1;
    if (x->rank < 3 || x->rank > 4 || x->dims[0] != SVHN_SIDE || x->dims[1] != SVHN_SIDE || x->dims[2] != 3)
        return nnl_fail(NNL_ERR_SHAPE, "%s: variable X is %s, expected 32x32x3xN", s->path, dims_str(x, db, sizeof db));
    if (xn == 0 || xn > SVHN_MAX_N)
        return nnl_fail(NNL_ERR_SHAPE, "%s: variable X holds %llu images, expected 1..%llu", s->path,
                        (unsigned long long)xn, (unsigned long long)SVHN_MAX_N);
    size_t es = mi_size(x->dtype);
    if (!es || x->dbytes != xn * SVHN_IMAGE * es)
        return nnl_fail(NNL_ERR_FORMAT, "%s: variable X is 32x32x3x%llu but its data element has %llu bytes of type %d",
                        s->path, (unsigned long long)xn, (unsigned long long)x->dbytes, x->dtype);
    if (y->cls < MX_DOUBLE || y->cls > MX_UINT64 || y->complex || y->logical)
        return nnl_fail(NNL_ERR_FORMAT, "%s: variable y is %s%s%s, expected numeric labels", s->path,
                        y->complex ? "complex " : "", y->logical ? "logical " : "", class_name(y->cls));
    if (y->rank != 2 || (y->dims[1] != 1 && y->dims[0] != 1))
        return nnl_fail(NNL_ERR_SHAPE, "%s: variable y is %s, expected Nx1", s->path, dims_str(y, db, sizeof db));
    uint64_t yn = y->dims[0] * y->dims[1];
    if (yn != xn)
        return nnl_fail(NNL_ERR_SHAPE, "%s: variable X is 32x32x3x%llu but y has %llu labels", s->path,
                        (unsigned long long)xn, (unsigned long long)yn);
    es = mi_size(y->dtype);
    if (!es || y->dbytes != yn * es)
        return nnl_fail(NNL_ERR_FORMAT, "%s: variable y has %llu labels but its data element has %llu bytes of type %d",
                        s->path, (unsigned long long)yn, (unsigned long long)y->dbytes, y->dtype);
    *n = xn;
    return NNL_OK;
}

int nnl_svhn_load(nnl_dataset *ds, const char *path) {
    memset(ds, 0, sizeof *ds);
    if (!path) return nnl_fail(NNL_ERR_ARG, "nnl_svhn_load: NULL path");
    scan s;
    memset(&s, 0, sizeof s);
    s.path = path;
    struct stat sb;
    if (!(s.f = fopen(path, "rb"))) return nnl_fail(NNL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(fileno(s.f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(s.f);
        return nnl_fail(NNL_ERR_IO, "%s: not a regular file", path);
    }
    s.size = (uint64_t)sb.st_size;
    int st = scan_file(&s);
    fclose(s.f);
    uint64_t n = 0;
    if (!st) st = check_vars(&s, &n);
    if (st) return st;

    mat_t *mat = Mat_Open(path, MAT_ACC_RDONLY);
    if (!mat) return nnl_fail(NNL_ERR_FORMAT, "%s: matio cannot open it as a MAT-file", path);
    matvar_t *x = NULL, *y = NULL;
    uint8_t *px = NULL;
    int32_t *labels = NULL;
    x = Mat_VarRead(mat, "X");
    if (!x || !x->data)
        st = nnl_fail(NNL_ERR_FORMAT, "%s: matio cannot read variable X", path);
    else if (!same_shape(&s.x, x) || x->data_size != 1 || x->nbytes != n * SVHN_IMAGE)
        st = nnl_fail(NNL_ERR_FORMAT, "%s: matio reads variable X differently from its header (corrupt file)", path);
    if (!st) {
        y = Mat_VarRead(mat, "y");
        if (!y || !y->data) st = nnl_fail(NNL_ERR_FORMAT, "%s: matio cannot read variable y", path);
        else if (!same_shape(&s.y, y) || (size_t)y->data_size != class_size(s.y.cls) ||
                 y->nbytes != n * class_size(s.y.cls))
            st = nnl_fail(NNL_ERR_FORMAT, "%s: matio reads variable y differently from its header (corrupt file)", path);
    }
    if (!st) {
        px = nnl_alloc((size_t)n * SVHN_IMAGE);
        labels = nnl_alloc((size_t)n * sizeof *labels);
        if (!px || !labels) st = nnl_fail(NNL_ERR_NOMEM, "%s: out of memory for %llu images", path, (unsigned long long)n);
    }
    for (uint64_t i = 0; !st && i < n; i++) {
        double l = label_at(y->data, s.y.cls, i);
        if (!(l >= 1 && l <= 10 && l == floor(l)))
            st = nnl_fail(NNL_ERR_FORMAT, "%s: y(%llu) = %g: label out of range 1..10 (10 means the digit 0)", path,
                          (unsigned long long)i + 1, l);
        else labels[i] = (int32_t)l % 10;
    }
    if (!st) {
        /* Column-major X(r, c, ch, i) sits at r + 32c + 1024ch + 3072i; nnlock wants row-major
         * planes, pixel (r, c) of plane ch at 1024ch + 32r + c: a transpose of every plane. */
        const uint8_t *src = x->data;
        for (uint64_t i = 0; i < n; i++)
            for (int ch = 0; ch < 3; ch++) {
                const uint8_t *sp = src + i * SVHN_IMAGE + (size_t)ch * SVHN_PLANE;
                uint8_t *dp = px + i * SVHN_IMAGE + (size_t)ch * SVHN_PLANE;
                for (int c = 0; c < SVHN_SIDE; c++)
                    for (int r = 0; r < SVHN_SIDE; r++) dp[r * SVHN_SIDE + c] = sp[c * SVHN_SIDE + r];
            }
        ds->class_names = calloc(10, sizeof *ds->class_names);
        for (int k = 0; ds->class_names && k < 10; k++) {
            char b[4];
            snprintf(b, sizeof b, "%d", k);
            if (!(ds->class_names[k] = strdup(b))) { nnl_free_names(ds->class_names, 10); ds->class_names = NULL; }
        }
        if (!ds->class_names) st = nnl_fail(NNL_ERR_NOMEM, "%s: out of memory", path);
    }
    Mat_VarFree(x);
    Mat_VarFree(y);
    Mat_Close(mat);
    if (st) {
        nnl_free(px);
        nnl_free(labels);
        memset(ds, 0, sizeof *ds);
        return st;
    }
    ds->n = (int64_t)n;
    ds->c = 3;
    ds->h = ds->w = SVHN_SIDE;
    ds->nclass = 10;
    ds->pixels = px;
    ds->labels = labels;
    snprintf(ds->source, sizeof ds->source, "svhn");
    return NNL_OK;
}
