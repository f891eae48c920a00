#include "safetensors.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The format stores little-endian IEEE float32; we copy the bytes as they are, which is
 * only right on a little-endian host with 4-byte floats. */
_Static_assert(sizeof(float) == 4, "safetensors F32 needs a 4-byte float");
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "safetensors data are copied as-is: a big-endian host would need byte swaps");

#define ST_META "__metadata__"

/* Every reader error: the message may quote names and Jansson's text taken from an
 * untrusted file, so control bytes are replaced to keep it on one line. */
static int st_fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int st_fail(int status, const char *fmt, ...) {
    char buf[480];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    for (char *p = buf; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f) *p = '?';
    return nnl_fail(status, "safetensors: %s", buf);
}

/* A name for a message: long names are cut (on a UTF-8 boundary) so the rest of the
 * message survives the error buffer. */
static const char *quote_name(const char *name, char *buf, size_t size) {
    size_t n = strlen(name);
    if (n + 1 <= size) return name;
    size_t keep = size - 4;
    while (keep > 0 && ((unsigned char)name[keep] & 0xC0) == 0x80) keep--;
    memcpy(buf, name, keep);
    memcpy(buf + keep, "...", 4);
    return buf;
}
#define QN(name, buf) quote_name((name), (buf), sizeof(buf))

/* The UTF-8 Jansson accepts (no overlongs, surrogates or code points past U+10FFFF):
 * checked up front so the writer can tell a bad argument from running out of memory. */
static int utf8_valid(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p, n, cp;
        if (c < 0x80) { p++; continue; }
        if (c >= 0xC2 && c <= 0xDF) { n = 1; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { n = 2; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { n = 3; cp = c & 0x07; }
        else return 0;
        for (unsigned i = 1; i <= n; i++) {
            if ((p[i] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (p[i] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        p += n + 1;
    }
    return 1;
}

/* Element count of a shape. Zero dimensions are skipped when checking for overflow so
 * the verdict does not depend on the order of the dimensions. */
static int shape_count(int ndim, const int64_t *shape, size_t *count) {
    size_t prod = 1;
    int zero = 0;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] == 0) { zero = 1; continue; }
        if ((uint64_t)shape[i] > SIZE_MAX || __builtin_mul_overflow(prod, (size_t)shape[i], &prod))
            return -1;
    }
    /* Byte sizes (count * 4) must be representable too. */
    if (prod > SIZE_MAX / sizeof(float)) return -1;
    *count = zero ? 0 : prod;
    return 0;
}

/* ------------------------------------------------------------------ writer */

static int check_args(const nnl_st_tensor *t, int nt, const char *const *keys,
                      const char *const *values, int nmeta) {
    char qb[64];
    if (nt < 0 || nmeta < 0) return st_fail(NNL_ERR_ARG, "negative tensor or metadata count");
    if (nt > NNL_ST_MAX_TENSORS)
        return st_fail(NNL_ERR_ARG, "%d tensors, more than the limit of %d", nt, NNL_ST_MAX_TENSORS);
    if ((nt > 0 && !t) || (nmeta > 0 && (!keys || !values)))
        return st_fail(NNL_ERR_ARG, "NULL tensor or metadata array");
    for (int i = 0; i < nmeta; i++) {
        if (!keys[i] || !values[i])
            return st_fail(NNL_ERR_ARG, "metadata entry %d is NULL", i);
        if (!utf8_valid(keys[i]) || !utf8_valid(values[i]))
            return st_fail(NNL_ERR_ARG, "metadata entry %d is not valid UTF-8", i);
        for (int j = 0; j < i; j++)
            if (strcmp(keys[i], keys[j]) == 0)
                return st_fail(NNL_ERR_ARG, "duplicate metadata key '%s'", QN(keys[i], qb));
    }
    for (int i = 0; i < nt; i++) {
        const nnl_st_tensor *x = &t[i];
        size_t len = strnlen(x->name, NNL_ST_MAX_NAME);
        if (len == 0) return st_fail(NNL_ERR_ARG, "tensor %d has an empty name", i);
        if (len >= NNL_ST_MAX_NAME)
            return st_fail(NNL_ERR_ARG, "tensor %d: name longer than %d bytes", i, NNL_ST_MAX_NAME - 1);
        if (strcmp(x->name, ST_META) == 0)
            return st_fail(NNL_ERR_ARG, "tensor %d: the name '" ST_META "' is reserved", i);
        if (!utf8_valid(x->name))
            return st_fail(NNL_ERR_ARG, "tensor %d: name is not valid UTF-8", i);
        if (x->ndim < 0 || x->ndim > NNL_ST_MAX_DIMS)
            return st_fail(NNL_ERR_ARG, "tensor '%s': %d dimensions (0 to %d allowed)",
                            x->name, x->ndim, NNL_ST_MAX_DIMS);
        for (int d = 0; d < x->ndim; d++)
            if (x->shape[d] < 0)
                return st_fail(NNL_ERR_ARG, "tensor '%s': negative dimension %lld",
                                x->name, (long long)x->shape[d]);
        size_t count;
        if (shape_count(x->ndim, x->shape, &count))
            return st_fail(NNL_ERR_ARG, "tensor '%s': element count overflows", x->name);
        if (count != x->count)
            return st_fail(NNL_ERR_ARG, "tensor '%s': shape holds %zu elements but count is %zu",
                            x->name, count, x->count);
        if (count > 0 && !x->data)
            return st_fail(NNL_ERR_ARG, "tensor '%s': NULL data", x->name);
        /* Quadratic, but nt is bounded and this keeps the message specific. */
        for (int j = 0; j < i; j++)
            if (strcmp(x->name, t[j].name) == 0)
                return st_fail(NNL_ERR_ARG, "duplicate tensor name '%s'", x->name);
    }
    return NNL_OK;
}

/* Builds the header object; NULL only when out of memory (the arguments are checked). */
static json_t *build_header(const nnl_st_tensor *t, int nt, const char *const *keys,
                            const char *const *values, int nmeta) {
    json_t *root = json_object();
    if (!root) return NULL;
    /* The reference writer omits an empty metadata block; so do we. */
    if (nmeta > 0) {
        json_t *meta = json_object();
        if (json_object_set_new(root, ST_META, meta)) goto fail;
        for (int i = 0; i < nmeta; i++)
            if (json_object_set_new(meta, keys[i], json_string(values[i]))) goto fail;
    }
    size_t off = 0;
    for (int i = 0; i < nt; i++) {
        json_t *shape = json_array();
        if (!shape) goto fail;
        for (int d = 0; d < t[i].ndim; d++)
            if (json_array_append_new(shape, json_integer((json_int_t)t[i].shape[d]))) {
                json_decref(shape);
                goto fail;
            }
        size_t end = off + t[i].count * (t[i].i64 ? 8 : sizeof(float));
        json_t *e = json_pack("{s:s, s:o, s:[I, I]}", "dtype", t[i].i64 ? "I64" : "F32", "shape", shape, "data_offsets",
                              (json_int_t)off, (json_int_t)end);
        if (!e || json_object_set_new(root, t[i].name, e)) goto fail;
        off = end;
    }
    return root;
fail:
    json_decref(root);
    return NULL;
}

int nnl_st_serialize(const nnl_st_tensor *t, int nt, const char *const *keys,
                     const char *const *values, int nmeta, uint8_t **out, size_t *size) {
    if (!out || !size) return st_fail(NNL_ERR_ARG, "NULL output");
    *out = NULL;
    *size = 0;
    int st = check_args(t, nt, keys, values, nmeta);
    if (st) return st;

    size_t data_bytes = 0;
    for (int i = 0; i < nt; i++)
        if (__builtin_add_overflow(data_bytes, t[i].count * (t[i].i64 ? 8 : sizeof(float)), &data_bytes))
            return st_fail(NNL_ERR_ARG, "total tensor size overflows");

    json_t *root = build_header(t, nt, keys, values, nmeta);
    if (!root) return st_fail(NNL_ERR_NOMEM, "out of memory building the header");
    /* Jansson keeps insertion order; the flag makes that explicit for the dump. */
    char *json = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!json) return st_fail(NNL_ERR_NOMEM, "out of memory dumping the header");

    size_t jlen = strlen(json);
    /* Space padding as the reference implementation does, so the data start at a
     * multiple of 8 in the file and could be mapped and used in place. */
    size_t hlen = (jlen + 7) & ~(size_t)7;
    if (hlen > NNL_ST_MAX_HEADER) {
        free(json);
        return st_fail(NNL_ERR_ARG, "header of %zu bytes exceeds the %u-byte limit",
                        hlen, NNL_ST_MAX_HEADER);
    }
    size_t total = 8 + hlen + data_bytes;
    if (total < data_bytes || total > NNL_ST_MAX_FILE) {
        free(json);
        return st_fail(NNL_ERR_ARG, "file would exceed the %zu-byte limit", NNL_ST_MAX_FILE);
    }
    uint8_t *buf = malloc(total);
    if (!buf) {
        free(json);
        return st_fail(NNL_ERR_NOMEM, "out of memory (%zu bytes)", total);
    }
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    memcpy(buf + 8, json, jlen);
    memset(buf + 8 + jlen, ' ', hlen - jlen);
    free(json);
    uint8_t *p = buf + 8 + hlen;
    for (int i = 0; i < nt; i++) {
        size_t nb = t[i].count * (t[i].i64 ? 8 : sizeof(float));
        if (nb) memcpy(p, t[i].data, nb);
        p += nb;
    }
    *out = buf;
    *size = total;
    return NNL_OK;
}

int nnl_st_write(const char *path, const nnl_st_tensor *t, int nt, const char *const *keys,
                 const char *const *values, int nmeta) {
    if (!path || !*path) return st_fail(NNL_ERR_ARG, "empty path");
    uint8_t *buf;
    size_t size;
    /* Serialise fully before touching the file system, so a bad argument leaves any
     * existing file as it was. */
    int st = nnl_st_serialize(t, nt, keys, values, nmeta, &buf, &size);
    if (st) return st;
    st = nnl_write_file(path, buf, size, 0);
    free(buf);
    return st;
}

/* ------------------------------------------------------------------ reader */

void nnl_st_free(nnl_st_file *f) {
    if (!f) return;
    free(f->tensors);
    for (int i = 0; i < f->nmeta; i++) {
        if (f->keys) free(f->keys[i]);
        if (f->values) free(f->values[i]);
    }
    free(f->keys);
    free(f->values);
    nnl_free(f->blob);
    memset(f, 0, sizeof *f);
}

/* A tensor as found in the header, before its data are attached. */
typedef struct {
    size_t begin, end;
    int index; /* position in the header, to break ties deterministically */
} st_span;

static int span_cmp(const void *a, const void *b) {
    const st_span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

static int parse_meta(json_t *meta, nnl_st_file *f) {
    char qb[64];
    if (!json_is_object(meta)) return st_fail(NNL_ERR_FORMAT, "\"" ST_META "\" is not an object");
    size_t n = json_object_size(meta);
    f->keys = calloc(n ? n : 1, sizeof *f->keys);
    f->values = calloc(n ? n : 1, sizeof *f->values);
    if (!f->keys || !f->values) return st_fail(NNL_ERR_NOMEM, "out of memory");
    const char *k;
    json_t *v;
    json_object_foreach(meta, k, v) {
        if (!json_is_string(v))
            return st_fail(NNL_ERR_FORMAT, "\"" ST_META "\" entry '%s' is not a string", QN(k, qb));
        /* Jansson refuses NUL inside strings and keys without JSON_ALLOW_NUL, so these
         * C strings are the whole values. */
        char *ks = strdup(k), *vs = strdup(json_string_value(v));
        if (!ks || !vs) {
            free(ks);
            free(vs);
            return st_fail(NNL_ERR_NOMEM, "out of memory");
        }
        f->keys[f->nmeta] = ks;
        f->values[f->nmeta] = vs;
        f->nmeta++;
    }
    return NNL_OK;
}

static int get_uint(json_t *v, int64_t *out) {
    if (!json_is_integer(v)) return -1;
    json_int_t x = json_integer_value(v);
    if (x < 0) return -1;
    *out = (int64_t)x;
    return 0;
}

/* Validates one tensor entry against the data section of data_size bytes. */
static int parse_tensor(const char *name, json_t *e, size_t data_size, nnl_st_tensor *t,
                        st_span *span) {
    char qb[64];
    if (!json_is_object(e)) return st_fail(NNL_ERR_FORMAT, "tensor '%s': entry is not an object", name);
    const char *k;
    json_t *v;
    json_object_foreach(e, k, v) {
        if (strcmp(k, "dtype") && strcmp(k, "shape") && strcmp(k, "data_offsets"))
            return st_fail(NNL_ERR_FORMAT, "tensor '%s': unexpected field '%s'", name, QN(k, qb));
    }
    json_t *dtype = json_object_get(e, "dtype"), *shape = json_object_get(e, "shape"),
           *offs = json_object_get(e, "data_offsets");
    if (!dtype) return st_fail(NNL_ERR_FORMAT, "tensor '%s': missing field 'dtype'", name);
    if (!shape) return st_fail(NNL_ERR_FORMAT, "tensor '%s': missing field 'shape'", name);
    if (!offs) return st_fail(NNL_ERR_FORMAT, "tensor '%s': missing field 'data_offsets'", name);

    if (!json_is_string(dtype)) return st_fail(NNL_ERR_FORMAT, "tensor '%s': dtype is not a string", name);
    t->i64 = strcmp(json_string_value(dtype), "I64") == 0;
    if (strcmp(json_string_value(dtype), "F32") != 0 && !t->i64)
        return st_fail(NNL_ERR_FORMAT, "tensor '%s': dtype '%s' is not supported (only 'F32', and 'I64' counters)", name,
                       QN(json_string_value(dtype), qb));

    if (!json_is_array(shape))
        return st_fail(NNL_ERR_FORMAT, "tensor '%s': shape is not an array", name);
    size_t nd = json_array_size(shape);
    if (nd > NNL_ST_MAX_DIMS)
        return st_fail(NNL_ERR_FORMAT, "tensor '%s': %zu dimensions, more than the limit of %d", name, nd,
                       NNL_ST_MAX_DIMS);
    t->ndim = (int)nd;
    for (size_t d = 0; d < nd; d++)
        if (get_uint(json_array_get(shape, d), &t->shape[d]))
            return st_fail(NNL_ERR_FORMAT, "tensor '%s': shape[%zu] is not a non-negative integer", name, d);
    if (shape_count(t->ndim, t->shape, &t->count))
        return st_fail(NNL_ERR_FORMAT, "tensor '%s': element count overflows", name);

    int64_t b, en;
    if (!json_is_array(offs) || json_array_size(offs) != 2 || get_uint(json_array_get(offs, 0), &b) ||
        get_uint(json_array_get(offs, 1), &en))
        return st_fail(NNL_ERR_FORMAT, "tensor '%s': data_offsets is not two non-negative integers", name);
    if (b > en)
        return st_fail(NNL_ERR_FORMAT, "tensor '%s': data_offsets [%lld, %lld] begin after end", name,
                       (long long)b, (long long)en);
    if ((uint64_t)en > data_size)
        return st_fail(NNL_ERR_FORMAT, "tensor '%s': data_offsets end %lld is beyond the %zu-byte data section",
                       name, (long long)en, data_size);
    size_t es = t->i64 ? 8 : sizeof(float);
    if ((uint64_t)(en - b) != (uint64_t)t->count * es)
        return st_fail(NNL_ERR_FORMAT, "tensor '%s': %lld data bytes for %zu %s elements (need %zu)", name,
                       (long long)(en - b), t->count, t->i64 ? "I64" : "F32", t->count * es);
    span->begin = (size_t)b;
    span->end = (size_t)en;
    return NNL_OK;
}

static int parse_image(const uint8_t *data, size_t size, nnl_st_file *f) {
    char qa[64], qb[64];
    if (!data && size) return st_fail(NNL_ERR_ARG, "NULL data");
    if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b)
        return st_fail(NNL_ERR_FORMAT, "the file is gzip-compressed; model files are read as they are (gunzip it first)");
    if (size < 8)
        return st_fail(NNL_ERR_FORMAT, "file of %zu bytes is shorter than the 8-byte header length", size);
    uint64_t n = 0;
    for (int i = 0; i < 8; i++) n |= (uint64_t)data[i] << (8 * i);
    if (n == 0) return st_fail(NNL_ERR_FORMAT, "header length is 0");
    if (n > NNL_ST_MAX_HEADER)
        return st_fail(NNL_ERR_FORMAT, "header length %llu exceeds the %u-byte limit", (unsigned long long)n,
                       NNL_ST_MAX_HEADER);
    if (n > size - 8)
        return st_fail(NNL_ERR_FORMAT, "header length %llu goes beyond the end of the %zu-byte file",
                       (unsigned long long)n, size);
    const uint8_t *dsec = data + 8 + n;
    size_t dsize = size - 8 - (size_t)n;

    json_error_t jerr;
    /* Duplicate keys would make the meaning of the file depend on the parser. */
    json_t *root = json_loadb((const char *)data + 8, (size_t)n, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return st_fail(NNL_ERR_FORMAT, "header is not valid JSON: %s (line %d, column %d)", jerr.text,
                       jerr.line, jerr.column);
    int st = NNL_OK;
    st_span *spans = NULL;
    if (!json_is_object(root)) {
        st = st_fail(NNL_ERR_FORMAT, "header is not a JSON object");
        goto done;
    }
    json_t *meta = json_object_get(root, ST_META);
    if (meta && (st = parse_meta(meta, f))) goto done;

    size_t nt = json_object_size(root) - (meta ? 1 : 0);
    if (nt > NNL_ST_MAX_TENSORS) {
        st = st_fail(NNL_ERR_FORMAT, "%zu tensors, more than the limit of %d", nt, NNL_ST_MAX_TENSORS);
        goto done;
    }
    f->tensors = calloc(nt ? nt : 1, sizeof *f->tensors);
    spans = calloc(nt ? nt : 1, sizeof *spans);
    if (!f->tensors || !spans) {
        st = st_fail(NNL_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* Parsed in header order into a scratch array, then placed in data order. */
    nnl_st_tensor *tmp = calloc(nt ? nt : 1, sizeof *tmp);
    if (!tmp) {
        st = st_fail(NNL_ERR_NOMEM, "out of memory");
        goto done;
    }
    const char *name;
    json_t *e;
    int i = 0;
    json_object_foreach(root, name, e) {
        if (strcmp(name, ST_META) == 0) continue;
        size_t len = strlen(name);
        if (len == 0) { st = st_fail(NNL_ERR_FORMAT, "a tensor has an empty name"); break; }
        if (len >= NNL_ST_MAX_NAME) {
            st = st_fail(NNL_ERR_FORMAT, "tensor name '%s' is %zu bytes long (at most %d allowed)",
                         QN(name, qa), len, NNL_ST_MAX_NAME - 1);
            break;
        }
        memcpy(tmp[i].name, name, len + 1);
        spans[i].index = i;
        if ((st = parse_tensor(tmp[i].name, e, dsize, &tmp[i], &spans[i]))) break;
        i++;
    }
    if (st) { free(tmp); goto done; }

    qsort(spans, nt, sizeof *spans, span_cmp);
    /* The spec requires the tensors to tile the data section exactly: no overlaps, no
     * holes, nothing after the last tensor. */
    size_t pos = 0, unused = 0, first_unused = 0;
    for (size_t j = 0; j < nt; j++) {
        if (spans[j].begin < pos) {
            st = st_fail(NNL_ERR_FORMAT, "tensors '%s' and '%s' overlap in the data section",
                         QN(tmp[spans[j - 1].index].name, qa), QN(tmp[spans[j].index].name, qb));
            break;
        }
        if (spans[j].begin > pos) {
            if (!unused) first_unused = pos;
            unused += spans[j].begin - pos;
        }
        pos = spans[j].end;
    }
    if (!st && pos < dsize) {
        if (!unused) first_unused = pos;
        unused += dsize - pos;
    }
    if (!st && unused)
        st = st_fail(NNL_ERR_FORMAT, "data section has %zu unused bytes (the first at offset %zu)", unused,
                     first_unused);
    if (st) { free(tmp); goto done; }

    f->blob = nnl_alloc(dsize);
    if (!f->blob) {
        free(tmp);
        st = st_fail(NNL_ERR_NOMEM, "out of memory (%zu bytes)", dsize);
        goto done;
    }
    if (dsize) memcpy(f->blob, dsec, dsize);
    for (size_t j = 0; j < nt; j++) {
        f->tensors[j] = tmp[spans[j].index];
        /* Tiling from 0 in multiples of 4 bytes makes every begin a multiple of 4. */
        f->tensors[j].data = f->blob + spans[j].begin / sizeof(float);
    }
    f->ntensors = (int)nt;
    free(tmp);
done:
    free(spans);
    json_decref(root);
    return st;
}

int nnl_st_parse(const uint8_t *data, size_t size, nnl_st_file *f) {
    if (!f) return st_fail(NNL_ERR_ARG, "NULL output");
    memset(f, 0, sizeof *f);
    int st = parse_image(data, size, f);
    if (st) nnl_st_free(f);
    return st;
}

int nnl_st_read(const char *path, nnl_st_file *f) {
    if (!f) return st_fail(NNL_ERR_ARG, "NULL output");
    memset(f, 0, sizeof *f);
    if (!path) return st_fail(NNL_ERR_ARG, "NULL path");
    uint8_t *data;
    size_t size;
    int st = nnl_read_file(path, &data, &size, NNL_ST_MAX_FILE, 0);
    if (st) return st;
    st = nnl_st_parse(data, size, f);
    free(data);
    if (st) {
        /* Name the file: the parser only knows the bytes. */
        char msg[512];
        snprintf(msg, sizeof msg, "%s", nnl_errmsg());
        nnl_fail(st, "%s: %s", path, msg);
    }
    return st;
}

const nnl_st_tensor *nnl_st_find(const nnl_st_file *f, const char *name) {
    if (!f || !name) return NULL;
    for (int i = 0; i < f->ntensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

const char *nnl_st_meta(const nnl_st_file *f, const char *key) {
    if (!f || !key) return NULL;
    for (int i = 0; i < f->nmeta; i++)
        if (strcmp(f->keys[i], key) == 0) return f->values[i];
    return NULL;
}
