/* The safetensors container: round trips, interoperability with a Python reader, and a
 * catalogue of corrupt files that must all be refused with a message. */
#include "io/safetensors.h"
#include "testutil.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* ------------------------------------------------------------------ helpers */

static int write_all(const char *path, const void *data, size_t size) {
    FILE *fp = fopen(path, "wb");
    if (!fp) return -1;
    int ok = fwrite(data, 1, size, fp) == size;
    return (fclose(fp) == 0 && ok) ? 0 : -1;
}

/* Value k*1000+i scaled by a power of two: exact in float32, so Python can recompute it. */
static float pattern(int k, size_t i) { return (float)(k * 1000 + (int)i) * 0.25f - 7.0f; }

typedef struct {
    nnl_st_tensor t[8];
    float *buf[8];
    int nt;
} tset;

static void tset_add(tset *s, const char *name, int ndim, const int64_t *shape) {
    nnl_st_tensor *t = &s->t[s->nt];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->count = 1;
    for (int d = 0; d < ndim; d++) { t->shape[d] = shape[d]; t->count *= (size_t)shape[d]; }
    s->buf[s->nt] = malloc((t->count ? t->count : 1) * sizeof(float));
    for (size_t i = 0; i < t->count; i++) s->buf[s->nt][i] = pattern(s->nt, i);
    t->data = s->buf[s->nt];
    s->nt++;
}

static void tset_free(tset *s) {
    for (int i = 0; i < s->nt; i++) free(s->buf[i]);
}

static void sample_set(tset *s) {
    memset(s, 0, sizeof *s);
    tset_add(s, "conv1.weight", 4, (const int64_t[]){4, 3, 3, 3});
    tset_add(s, "conv1.bias", 1, (const int64_t[]){4});
    tset_add(s, "scalar", 0, NULL);
    tset_add(s, "empty", 2, (const int64_t[]){0, 5});
    tset_add(s, "fc.weight", 2, (const int64_t[]){10, 108});
    tset_add(s, "bn.running_var", 1, (const int64_t[]){3});
}

static const char *meta_keys[] = {"nnlock.version", "arch", "unicode \xc3\xbcml\xc3\xa4ut", "tricky"};
static const char *meta_vals[] = {"0.1.0", "conv32k3p1,relu,dense", "caf\xc3\xa9 \xe2\x82\xac",
                                  "quote \" backslash \\ newline \n tab \t slash /"};
#define NMETA 4

/* Everything a parsed file promises, plus: serialising it and parsing that gives the same
 * content, and serialising again is byte-identical. Returns 1 if all holds. */
static int consistent(const nnl_st_file *f) {
    int ok = 1;
    const float *expect = f->blob;
    for (int i = 0; i < f->ntensors; i++) {
        const nnl_st_tensor *t = &f->tensors[i];
        size_t len = strnlen(t->name, NNL_ST_MAX_NAME);
        size_t c = 1;
        if (len == 0 || len >= NNL_ST_MAX_NAME || t->ndim < 0 || t->ndim > NNL_ST_MAX_DIMS) return 0;
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] < 0) return 0;
            c *= (size_t)t->shape[d];
        }
        if (c != t->count || t->data != expect || ((uintptr_t)t->data & 3)) ok = 0;
        expect += t->count;
    }
    if (((uintptr_t)f->blob & 63)) ok = 0;
    uint8_t *b1 = NULL, *b2 = NULL;
    size_t n1 = 0, n2 = 0;
    nnl_st_file g = {0};
    if (nnl_st_serialize(f->tensors, f->ntensors, (const char *const *)f->keys,
                         (const char *const *)f->values, f->nmeta, &b1, &n1)) {
        fprintf(stderr, "re-serialise failed: %s\n", nnl_errmsg());
        return 0;
    }
    if (nnl_st_parse(b1, n1, &g)) {
        fprintf(stderr, "re-parse failed: %s\n", nnl_errmsg());
        free(b1);
        return 0;
    }
    if (g.ntensors != f->ntensors || g.nmeta != f->nmeta) ok = 0;
    for (int i = 0; ok && i < g.ntensors; i++) {
        const nnl_st_tensor *a = &f->tensors[i], *b = &g.tensors[i];
        if (strcmp(a->name, b->name) || a->ndim != b->ndim || a->count != b->count ||
            memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)a->ndim) ||
            (a->count && memcmp(a->data, b->data, a->count * sizeof(float))))
            ok = 0;
    }
    for (int i = 0; ok && i < g.nmeta; i++)
        if (strcmp(f->keys[i], g.keys[i]) || strcmp(f->values[i], g.values[i])) ok = 0;
    if (nnl_st_serialize(g.tensors, g.ntensors, (const char *const *)g.keys, (const char *const *)g.values,
                         g.nmeta, &b2, &n2) ||
        n1 != n2 || memcmp(b1, b2, n1))
        ok = 0;
    free(b1);
    free(b2);
    nnl_st_free(&g);
    return ok;
}

static int nbad = 0;

/* The image must be refused with NNL_ERR_FORMAT and a message (containing want, if given).
 * It is copied into an exact-size buffer so ASan catches any read past the end. */
static void expect_bad(const char *label, const uint8_t *img, size_t size, const char *want) {
    uint8_t *copy = malloc(size ? size : 1);
    if (size) memcpy(copy, img, size);
    nnl_st_file f;
    nnl_clear_error();
    int st = nnl_st_parse(copy, size, &f);
    const char *msg = nnl_errmsg();
    CHECK_MSG(st == NNL_ERR_FORMAT, "%s: status %d (%s)", label, st, msg);
    CHECK_MSG(msg[0] != 0, "%s: empty message", label);
    CHECK_MSG(!strchr(msg, '\n'), "%s: message is not one line", label);
    if (want) CHECK_MSG(strstr(msg, want) != NULL, "%s: message '%s' lacks '%s'", label, msg, want);
    CHECK(f.tensors == NULL && f.blob == NULL && f.keys == NULL && f.ntensors == 0 && f.nmeta == 0);
    if (st == NNL_OK) nnl_st_free(&f);
    fprintf(stderr, "  refused %-28s %s\n", label, msg);
    free(copy);
    nbad++;
}

/* A file from a header (length taken from the string) and data_bytes of data. */
static uint8_t *make_img(const char *json, size_t jlen, size_t data_bytes, size_t *size) {
    *size = 8 + jlen + data_bytes;
    uint8_t *b = malloc(*size);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)jlen >> (8 * i));
    memcpy(b + 8, json, jlen);
    for (size_t i = 0; i < data_bytes; i++) b[8 + jlen + i] = (uint8_t)(i * 7);
    return b;
}

static void bad_json(const char *label, const char *json, size_t data_bytes, const char *want) {
    size_t size;
    uint8_t *img = make_img(json, strlen(json), data_bytes, &size);
    expect_bad(label, img, size, want);
    free(img);
}

static void bad_len(const char *label, uint64_t n, const char *json, const char *want) {
    size_t size;
    uint8_t *img = make_img(json, strlen(json), 0, &size);
    for (int i = 0; i < 8; i++) img[i] = (uint8_t)(n >> (8 * i));
    expect_bad(label, img, size, want);
    free(img);
}

#define T8(off0, off1) "{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[" #off0 "," #off1 "]}"

/* ------------------------------------------------------------------ tests */

static void test_round_trip(const char *dir) {
    tset s;
    sample_set(&s);
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK_MSG(nnl_st_write(path, s.t, s.nt, meta_keys, meta_vals, NMETA) == NNL_OK, "%s", nnl_errmsg());

    size_t size;
    uint8_t *bytes = nnl_test_read(path, &size);
    CHECK(bytes != NULL && size > 8);
    if (!bytes) { tset_free(&s); return; }
    uint64_t n = 0;
    for (int i = 0; i < 8; i++) n |= (uint64_t)bytes[i] << (8 * i);
    CHECK((8 + n) % 8 == 0);
    CHECK(n < size && memcmp(bytes + 8, "{\"__metadata__\":{", 17) == 0);
    CHECK(bytes[8 + n - 1] == ' ' || bytes[8 + n - 1] == '}');
    size_t data_bytes = 0;
    for (int i = 0; i < s.nt; i++) data_bytes += s.t[i].count * 4;
    CHECK(size == 8 + n + data_bytes);
    /* Data contiguous in the given order. */
    CHECK(memcmp(bytes + 8 + n, s.buf[0], s.t[0].count * 4) == 0);

    nnl_st_file f;
    CHECK_MSG(nnl_st_read(path, &f) == NNL_OK, "%s", nnl_errmsg());
    CHECK(f.ntensors == s.nt && f.nmeta == NMETA);
    for (int i = 0; i < f.ntensors && i < s.nt; i++) {
        const nnl_st_tensor *a = &s.t[i], *b = &f.tensors[i];
        CHECK_MSG(strcmp(a->name, b->name) == 0, "tensor %d: %s vs %s", i, a->name, b->name);
        CHECK(a->ndim == b->ndim && a->count == b->count);
        CHECK(memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)a->ndim) == 0);
        CHECK(a->count == 0 || memcmp(a->data, b->data, a->count * 4) == 0);
        CHECK(((uintptr_t)b->data & 3) == 0);
        CHECK(nnl_st_find(&f, a->name) == b);
    }
    CHECK(((uintptr_t)f.blob & 63) == 0);
    for (int i = 0; i < f.nmeta && i < NMETA; i++) {
        CHECK(strcmp(f.keys[i], meta_keys[i]) == 0);
        CHECK(strcmp(f.values[i], meta_vals[i]) == 0);
        CHECK(nnl_st_meta(&f, meta_keys[i]) == f.values[i]);
    }
    CHECK(nnl_st_find(&f, "nope") == NULL && nnl_st_meta(&f, "nope") == NULL);
    const nnl_st_tensor *sc = nnl_st_find(&f, "scalar");
    CHECK(sc && sc->ndim == 0 && sc->count == 1 && sc->data[0] == pattern(2, 0));

    /* write -> read -> write is byte-identical. */
    uint8_t *again;
    size_t again_size;
    CHECK(nnl_st_serialize(f.tensors, f.ntensors, (const char *const *)f.keys,
                           (const char *const *)f.values, f.nmeta, &again, &again_size) == NNL_OK);
    CHECK(again_size == size && memcmp(again, bytes, size) == 0);
    free(again);
    CHECK(consistent(&f));
    nnl_st_free(&f);
    nnl_st_free(&f); /* safe twice: the first call zeroes it */

    /* A gzipped model is refused in one clear line: inflating whatever a file holds let an
     * 18 MB file take gigabytes of memory (model files are documented as plain). */
    char gzpath[512];
    snprintf(gzpath, sizeof gzpath, "%s/model.safetensors.gz", dir);
    gzFile gz = gzopen(gzpath, "wb");
    CHECK(gz != NULL);
    if (gz) {
        CHECK(gzwrite(gz, bytes, (unsigned)size) == (int)size);
        gzclose(gz);
        CHECK(nnl_st_read(gzpath, &f) == NNL_ERR_FORMAT);
        CHECK_MSG(strstr(nnl_errmsg(), "gzip") != NULL, "%s", nnl_errmsg());
        unlink(gzpath);
    }

    /* No tensors and no metadata is a valid (if useless) file. */
    uint8_t *b;
    size_t bn;
    CHECK(nnl_st_serialize(NULL, 0, NULL, NULL, 0, &b, &bn) == NNL_OK);
    CHECK(bn == 16 && memcmp(b + 8, "{}      ", 8) == 0);
    CHECK(nnl_st_parse(b, bn, &f) == NNL_OK && f.ntensors == 0 && f.nmeta == 0);
    nnl_st_free(&f);
    free(b);

    /* A zeroed struct frees without harm. */
    nnl_st_file z = {0};
    nnl_st_free(&z);

    free(bytes);
    tset_free(&s);
}

/* Python's json and numpy read our file, and our reader reads a file laid out the way
 * other writers do it (spaced JSON, metadata last, data not in header order). */
static void test_python(const char *dir) {
    if (system("/usr/bin/python3 -c 'import torch, numpy' >/dev/null 2>&1") != 0) {
        fprintf(stderr, "  python3 with torch/numpy not available: interoperability check skipped\n");
        return;
    }
    tset s;
    sample_set(&s);
    char path[512], script[512], other[512], cmd[2048];
    snprintf(path, sizeof path, "%s/py.safetensors", dir);
    snprintf(other, sizeof other, "%s/from_py.safetensors", dir);
    snprintf(script, sizeof script, "%s/check.py", dir);
    CHECK(nnl_st_write(path, s.t, s.nt, meta_keys, meta_vals, NMETA) == NNL_OK);
    static const char py[] =
        "import json, struct, sys\n"
        "import numpy as np\n"
        "path, other = sys.argv[1], sys.argv[2]\n"
        "raw = open(path, 'rb').read()\n"
        "n = struct.unpack('<Q', raw[:8])[0]\n"
        "assert (8 + n) % 8 == 0, 'data not aligned'\n"
        "hdr = json.loads(raw[8:8 + n].decode('utf-8'))\n"
        "data = raw[8 + n:]\n"
        "keys = list(hdr)\n"
        "assert keys[0] == '__metadata__', keys\n"
        "meta = hdr.pop('__metadata__')\n"
        "assert meta['tricky'] == 'quote \" backslash \\\\ newline \\n tab \\t slash /', meta\n"
        "assert meta['unicode \\u00fcml\\u00e4ut'] == 'caf\\u00e9 \\u20ac', meta\n"
        "expect = {'conv1.weight': [4, 3, 3, 3], 'conv1.bias': [4], 'scalar': [],\n"
        "          'empty': [0, 5], 'fc.weight': [10, 108], 'bn.running_var': [3]}\n"
        "assert list(hdr) == list(expect), list(hdr)\n"
        "end = 0\n"
        "for k, (name, e) in enumerate(hdr.items()):\n"
        "    assert e['dtype'] == 'F32' and e['shape'] == expect[name], (name, e)\n"
        "    b, en = e['data_offsets']\n"
        "    assert b == end, (name, b, end)\n"
        "    end = en\n"
        "    a = np.frombuffer(data[b:en], dtype='<f4').reshape(e['shape'])\n"
        "    want = ((np.arange(a.size, dtype=np.float64) + k * 1000) * 0.25 - 7).astype(np.float32)\n"
        "    assert np.array_equal(a.reshape(-1), want), name\n"
        "assert end == len(data), (end, len(data))\n"
        "# a file as another writer might lay it out\n"
        "t = {'b': np.arange(6, dtype='<f4').reshape(2, 3), 'a': np.array([1.5, -2.0], dtype='<f4')}\n"
        "h = {'b': {'dtype': 'F32', 'shape': [2, 3], 'data_offsets': [8, 32]},\n"
        "     'a': {'dtype': 'F32', 'shape': [2], 'data_offsets': [0, 8]},\n"
        "     '__metadata__': {'format': 'pt'}}\n"
        "hb = json.dumps(h).encode()\n"
        "hb += b' ' * ((8 - len(hb) % 8) % 8)\n"
        "open(other, 'wb').write(struct.pack('<Q', len(hb)) + hb + t['a'].tobytes() + t['b'].tobytes())\n"
        "print('python: ok')\n";
    CHECK(write_all(script, py, sizeof py - 1) == 0);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' '%s' '%s'", script, path, other);
    int rc = system(cmd);
    CHECK_MSG(rc == 0, "python check failed (%d)", rc);
    if (rc == 0) {
        nnl_st_file f;
        CHECK_MSG(nnl_st_read(other, &f) == NNL_OK, "%s", nnl_errmsg());
        CHECK(f.ntensors == 2 && f.nmeta == 1);
        if (f.ntensors == 2) {
            /* Sorted by data offset, not by header order. */
            CHECK(strcmp(f.tensors[0].name, "a") == 0 && strcmp(f.tensors[1].name, "b") == 0);
            CHECK(f.tensors[0].data[0] == 1.5f && f.tensors[0].data[1] == -2.0f);
            CHECK(f.tensors[1].ndim == 2 && f.tensors[1].shape[0] == 2 && f.tensors[1].shape[1] == 3);
            for (int i = 0; i < 6; i++) CHECK(f.tensors[1].data[i] == (float)i);
        }
        CHECK(nnl_st_meta(&f, "format") && strcmp(nnl_st_meta(&f, "format"), "pt") == 0);
        nnl_st_free(&f);
    }
    unlink(path);
    unlink(other);
    unlink(script);
    tset_free(&s);
}

static void test_corrupt(void) {
    fprintf(stderr, "corrupt images:\n");
    static const uint8_t zeros[8] = {0};
    for (size_t n = 0; n < 8; n++) expect_bad("shorter than 8 bytes", zeros, n, "shorter");

    bad_len("header length 0", 0, "{}", "header length is 0");
    bad_len("header length huge", UINT64_MAX, "{}", "exceeds");
    bad_len("header length max+1", (uint64_t)NNL_ST_MAX_HEADER + 1, "{}", "exceeds");
    bad_len("header length past EOF", 3, "{}", "beyond the end");
    bad_len("header length 2^63", (uint64_t)1 << 63, "{}", NULL);

    bad_json("truncated JSON", "{\"a\":", 0, "not valid JSON");
    bad_json("bad JSON token", "{]", 0, "line 1");
    bad_json("invalid UTF-8", "{\"\xff\":1}", 0, "not valid JSON");
    bad_json("overlong UTF-8", "{\"\xc0\xaf\":1}", 0, "not valid JSON");
    bad_json("trailing garbage", "{} x", 0, "not valid JSON");
    bad_json("escaped NUL in name", "{\"a\\u0000b\":" T8(0, 8) "}", 8, NULL);
    bad_json("duplicate key", "{\"a\":" T8(0, 8) ",\"a\":" T8(8, 16) "}", 16, "duplicate");
    bad_json("blank header", "        ", 0, "not valid JSON");
    {
        char deep[4200] = "{\"a\":";
        memset(deep + 5, '[', 4100);
        deep[4105] = 0;
        bad_json("nesting too deep", deep, 0, NULL);
    }
    {
        static const char nul[] = "{\"a\":\0" T8(0, 8) "}";
        size_t size;
        uint8_t *img = make_img(nul, sizeof nul - 1, 8, &size);
        expect_bad("NUL byte in header", img, size, NULL);
        free(img);
    }
    bad_json("header is an array", "[1, 2]", 0, NULL);
    bad_json("header is a string", "\"x\"", 0, NULL);
    bad_json("metadata not object", "{\"__metadata__\":[]}", 0, "not an object");
    bad_json("metadata value not string", "{\"__metadata__\":{\"k\":1}}", 0, "not a string");
    bad_json("metadata value null", "{\"__metadata__\":{\"k\":null}}", 0, "not a string");
    bad_json("tensor not object", "{\"a\":5}", 0, "not an object");
    bad_json("missing dtype", "{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "missing field 'dtype'");
    bad_json("missing shape", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, "missing field 'shape'");
    bad_json("missing offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "missing field 'data_offsets'");
    bad_json("extra field", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}}", 8,
             "unexpected field 'x'");
    bad_json("dtype F16", "{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4,
             "tensor 'a': dtype 'F16' is not supported (only 'F32', and 'I64' counters)");
    /* I64 (a state_dict's num_batches_tracked): 8 bytes an element */
    bad_json("I64 of the F32 size", "{\"a\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
             "8 data bytes for 2 I64 elements (need 16)");
    {
        const char *h = "{\"n\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]}}";
        size_t size;
        uint8_t *img = make_img(h, strlen(h), 8, &size);
        nnl_st_file f;
        CHECK(nnl_st_parse(img, size, &f) == NNL_OK && f.ntensors == 1 && f.tensors[0].i64 && f.tensors[0].count == 1);
        nnl_st_free(&f);
        free(img);
    }
    bad_json("dtype not string", "{\"a\":{\"dtype\":32,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "dtype");
    bad_json("shape not array", "{\"a\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", 8, "shape");
    bad_json("negative dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "shape[0]");
    bad_json("real dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8, "shape[0]");
    bad_json("string dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8, "shape[0]");
    bad_json("huge dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,8]}}",
             8, NULL);
    bad_json("too many dims",
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}", 8,
             "dimensions");
    bad_json("count overflow",
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4],\"data_offsets\":[0,8]}}", 8,
             "overflow");
    bad_json("count overflow with 0",
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[0,9223372036854775807],\"data_offsets\":[0,0]}}", 0,
             "overflow");
    bad_json("bytes overflow",
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],\"data_offsets\":[0,8]}}", 8,
             "overflow");
    bad_json("offsets not array", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":8}}", 8, "data_offsets");
    bad_json("offsets one int", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8]}}", 8, "data_offsets");
    bad_json("offsets three ints", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,9]}}", 9,
             "data_offsets");
    bad_json("offsets string", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,\"8\"]}}", 8,
             "data_offsets");
    bad_json("offsets real", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0.0,8]}}", 8,
             "data_offsets");
    bad_json("offsets negative", "{\"a\":" T8(-8, 0) "}", 8, "data_offsets");
    bad_json("offsets begin > end", "{\"a\":" T8(8, 0) "}", 8, "begin after end");
    bad_json("end beyond data", "{\"a\":" T8(0, 8) "}", 4, "beyond");
    bad_json("end far beyond data", "{\"a\":" T8(9223372036854775800, 9223372036854775807) "}", 8, "beyond");
    bad_json("size mismatch", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "need 12");
    bad_json("overlap", "{\"a\":" T8(0, 8) ",\"b\":" T8(4, 12) "}", 12, "overlap");
    bad_json("same range", "{\"a\":" T8(0, 8) ",\"b\":" T8(0, 8) "}", 8, "overlap");
    bad_json("empty inside another",
             "{\"a\":" T8(0, 8) ",\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]}}", 8, "overlap");
    bad_json("hole", "{\"a\":" T8(0, 8) ",\"b\":" T8(12, 20) "}", 20, "data section has 4 unused bytes");
    bad_json("hole at start", "{\"a\":" T8(4, 12) "}", 12, "data section has 4 unused bytes");
    bad_json("trailing bytes", "{\"a\":" T8(0, 8) "}", 11, "data section has 3 unused bytes");
    bad_json("data but no tensors", "{}", 4, "data section has 4 unused bytes");
    bad_json("unaligned gap", "{\"a\":" T8(1, 9) "}", 9, "unused");
    bad_json("empty name", "{\"\":" T8(0, 8) "}", 8, "empty name");
    {
        char json[512], name[NNL_ST_MAX_NAME + 1];
        memset(name, 'x', NNL_ST_MAX_NAME);
        name[NNL_ST_MAX_NAME] = 0;
        snprintf(json, sizeof json, "{\"%s\":" T8(0, 8) "}", name);
        bad_json("name too long", json, 8, "at most 127");
        /* 127 bytes is fine. */
        name[NNL_ST_MAX_NAME - 1] = 0;
        snprintf(json, sizeof json, "{\"%s\":" T8(0, 8) "}", name);
        size_t size;
        uint8_t *img = make_img(json, strlen(json), 8, &size);
        nnl_st_file f;
        CHECK_MSG(nnl_st_parse(img, size, &f) == NNL_OK, "%s", nnl_errmsg());
        CHECK(f.ntensors == 1 && strlen(f.tensors[0].name) == NNL_ST_MAX_NAME - 1);
        nnl_st_free(&f);
        free(img);
    }
    {
        /* One tensor more than the limit (all empty, so the data section stays valid). */
        size_t cap = (size_t)(NNL_ST_MAX_TENSORS + 1) * 64 + 16, n = 0;
        char *json = malloc(cap);
        n += (size_t)snprintf(json + n, cap - n, "{");
        for (int i = 0; i <= NNL_ST_MAX_TENSORS; i++)
            n += (size_t)snprintf(json + n, cap - n, "%s\"t%d\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}",
                                  i ? "," : "", i);
        snprintf(json + n, cap - n, "}");
        bad_json("too many tensors", json, 0, "more than the limit");
        free(json);
    }
}

/* Every proper prefix of a valid file is refused, and none crashes. */
static void test_truncation(void) {
    tset s;
    memset(&s, 0, sizeof s);
    tset_add(&s, "w", 2, (const int64_t[]){2, 3});
    tset_add(&s, "b", 1, (const int64_t[]){2});
    uint8_t *img;
    size_t size;
    CHECK(nnl_st_serialize(s.t, s.nt, meta_keys, meta_vals, 1, &img, &size) == NNL_OK);
    int refused = 0;
    for (size_t len = 0; len < size; len++) {
        uint8_t *copy = malloc(len ? len : 1);
        memcpy(copy, img, len);
        nnl_st_file f;
        int st = nnl_st_parse(copy, len, &f);
        CHECK_MSG(st == NNL_ERR_FORMAT && nnl_errmsg()[0], "prefix of %zu/%zu bytes: status %d", len, size, st);
        refused += st == NNL_ERR_FORMAT;
        if (st == NNL_OK) nnl_st_free(&f);
        free(copy);
    }
    fprintf(stderr, "truncation: %d of %zu prefixes refused\n", refused, size);
    nnl_st_file f;
    CHECK(nnl_st_parse(img, size, &f) == NNL_OK);
    nnl_st_free(&f);
    free(img);
    tset_free(&s);
}

/* Random byte changes in the length and the header: refused, or parsed into something
 * that holds together. */
static void test_flips(void) {
    tset s;
    sample_set(&s);
    uint8_t *img;
    size_t size;
    CHECK(nnl_st_serialize(s.t, s.nt, meta_keys, meta_vals, NMETA, &img, &size) == NNL_OK);
    uint64_t hn = 0;
    for (int i = 0; i < 8; i++) hn |= (uint64_t)img[i] << (8 * i);
    size_t hend = 8 + (size_t)hn;
    /* Bytes a JSON-aware mutation would pick, to get past the parser more often. */
    static const char interesting[] = "{}[],:\"0123456789-. e\\F";
    nnl_rng r = {12345};
    uint8_t *copy = malloc(size);
    int accepted = 0, refused = 0;
    for (int it = 0; it < 20000; it++) {
        memcpy(copy, img, size);
        int nflip = 1 + (int)nnl_rng_below(&r, 3);
        for (int k = 0; k < nflip; k++) {
            size_t pos = nnl_rng_below(&r, 50) == 0 ? nnl_rng_below(&r, 8) : 8 + nnl_rng_below(&r, hend - 8);
            copy[pos] = nnl_rng_below(&r, 2) ? (uint8_t)nnl_rng_next(&r)
                                             : (uint8_t)interesting[nnl_rng_below(&r, sizeof interesting - 1)];
        }
        nnl_st_file f;
        nnl_clear_error();
        int st = nnl_st_parse(copy, size, &f);
        if (st == NNL_OK) {
            accepted++;
            CHECK_MSG(consistent(&f), "flip iteration %d parsed inconsistently", it);
            nnl_st_free(&f);
        } else {
            refused++;
            CHECK_MSG(st == NNL_ERR_FORMAT && nnl_errmsg()[0], "flip iteration %d: status %d", it, st);
        }
    }
    fprintf(stderr, "byte flips: %d accepted (consistent), %d refused\n", accepted, refused);
    free(copy);
    free(img);
    tset_free(&s);
}

static void expect_arg(const char *label, const nnl_st_tensor *t, int nt, const char *const *k,
                       const char *const *v, int nm) {
    uint8_t *out = (uint8_t *)1;
    size_t size = 1;
    nnl_clear_error();
    int st = nnl_st_serialize(t, nt, k, v, nm, &out, &size);
    CHECK_MSG(st == NNL_ERR_ARG, "%s: status %d", label, st);
    CHECK_MSG(out == NULL && size == 0, "%s: output not cleared", label);
    CHECK_MSG(nnl_errmsg()[0] && !strchr(nnl_errmsg(), '\n'), "%s: no one-line message", label);
    fprintf(stderr, "  writer refused %-22s %s\n", label, nnl_errmsg());
    if (st == NNL_OK) free(out);
}

static void test_writer_args(void) {
    fprintf(stderr, "bad writer arguments:\n");
    tset s;
    sample_set(&s);
    nnl_st_tensor t[8];
    const int nt = s.nt;
#define RESET() memcpy(t, s.t, sizeof t)
    RESET(); t[1].name[0] = 0;
    expect_arg("empty name", t, nt, NULL, NULL, 0);
    RESET(); memset(t[1].name, 'x', NNL_ST_MAX_NAME); /* no terminator at all */
    expect_arg("name too long", t, nt, NULL, NULL, 0);
    RESET(); strcpy(t[2].name, t[0].name);
    expect_arg("duplicate name", t, nt, NULL, NULL, 0);
    RESET(); strcpy(t[0].name, "__metadata__");
    expect_arg("reserved name", t, nt, NULL, NULL, 0);
    RESET(); strcpy(t[0].name, "bad\xff");
    expect_arg("name not UTF-8", t, nt, NULL, NULL, 0);
    RESET(); t[0].ndim = NNL_ST_MAX_DIMS + 1;
    expect_arg("too many dims", t, nt, NULL, NULL, 0);
    RESET(); t[0].ndim = -1;
    expect_arg("negative ndim", t, nt, NULL, NULL, 0);
    RESET(); t[1].shape[0] = -4;
    expect_arg("negative dim", t, nt, NULL, NULL, 0);
    RESET(); t[1].count = 5;
    expect_arg("count mismatch", t, nt, NULL, NULL, 0);
    RESET(); t[1].data = NULL;
    expect_arg("NULL data", t, nt, NULL, NULL, 0);
    RESET(); t[0].ndim = 3; t[0].shape[0] = t[0].shape[1] = t[0].shape[2] = (int64_t)1 << 40;
    expect_arg("count overflow", t, nt, NULL, NULL, 0);
    RESET();
    expect_arg("negative tensor count", t, -1, NULL, NULL, 0);
    {
        const char *k[] = {"a", "b", "a"}, *v[] = {"1", "2", "3"};
        expect_arg("duplicate metadata key", t, nt, k, v, 3);
        const char *k2[] = {"a", "b\xc3"};
        expect_arg("metadata key not UTF-8", t, nt, k2, v, 2);
        const char *v2[] = {"ok", "\xed\xa0\x80"}; /* a UTF-16 surrogate */
        expect_arg("metadata value not UTF-8", t, nt, k, v2, 2);
        const char *v3[] = {"ok", NULL};
        expect_arg("NULL metadata value", t, nt, k, v3, 2);
    }
    {
        nnl_st_tensor *many = calloc(NNL_ST_MAX_TENSORS + 1, sizeof *many);
        for (int i = 0; i <= NNL_ST_MAX_TENSORS; i++) {
            snprintf(many[i].name, sizeof many[i].name, "t%d", i);
            many[i].ndim = 1;
        }
        expect_arg("too many tensors", many, NNL_ST_MAX_TENSORS + 1, NULL, NULL, 0);
        /* The limit itself is fine, and reads back. */
        uint8_t *out;
        size_t size;
        CHECK_MSG(nnl_st_serialize(many, NNL_ST_MAX_TENSORS, NULL, NULL, 0, &out, &size) == NNL_OK, "%s",
                  nnl_errmsg());
        nnl_st_file f;
        CHECK_MSG(nnl_st_parse(out, size, &f) == NNL_OK && f.ntensors == NNL_ST_MAX_TENSORS, "%s", nnl_errmsg());
        nnl_st_free(&f);
        free(out);
        free(many);
    }
#undef RESET
    tset_free(&s);
}

static int dir_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static void test_atomic(const char *dir) {
    tset s;
    sample_set(&s);
    char path[512], missing[512];
    snprintf(missing, sizeof missing, "%s/no/such/dir/m.safetensors", dir);
    nnl_clear_error();
    int st = nnl_st_write(missing, s.t, s.nt, NULL, NULL, 0);
    CHECK_MSG(st == NNL_ERR_IO && nnl_errmsg()[0], "missing directory: status %d", st);
    fprintf(stderr, "missing directory: %s\n", nnl_errmsg());

    char sub[400];
    snprintf(sub, sizeof sub, "%s/atomic", dir);
    CHECK(mkdir(sub, 0755) == 0);
    snprintf(path, sizeof path, "%s/m.safetensors", sub);
    CHECK(write_all(path, "old contents", 12) == 0);
    /* Replaced by a valid file. */
    CHECK(nnl_st_write(path, s.t, 2, meta_keys, meta_vals, 1) == NNL_OK);
    nnl_st_file f;
    CHECK_MSG(nnl_st_read(path, &f) == NNL_OK && f.ntensors == 2 && f.nmeta == 1, "%s", nnl_errmsg());
    nnl_st_free(&f);
    /* Replaced again by a different one. */
    CHECK(nnl_st_write(path, s.t, s.nt, meta_keys, meta_vals, NMETA) == NNL_OK);
    size_t before_size;
    uint8_t *before = nnl_test_read(path, &before_size);
    CHECK_MSG(nnl_st_read(path, &f) == NNL_OK && f.ntensors == s.nt, "%s", nnl_errmsg());
    nnl_st_free(&f);

    /* A failed serialisation leaves the file untouched and no temporary behind. */
    nnl_st_tensor t[8];
    memcpy(t, s.t, sizeof t);
    t[3].name[0] = 0;
    CHECK(nnl_st_write(path, t, s.nt, NULL, NULL, 0) == NNL_ERR_ARG);
    size_t after_size;
    uint8_t *after = nnl_test_read(path, &after_size);
    CHECK(before && after && before_size == after_size && memcmp(before, after, before_size) == 0);
    CHECK(dir_entries(sub) == 1);

    /* A read error names the file. */
    char nofile[512];
    snprintf(nofile, sizeof nofile, "%s/absent.safetensors", sub);
    CHECK(nnl_st_read(nofile, &f) == NNL_ERR_IO && strstr(nnl_errmsg(), "absent.safetensors"));
    CHECK(write_all(nofile, "\x02\0\0\0\0\0\0\0{}", 10) == 0 && nnl_st_read(nofile, &f) == NNL_OK);
    nnl_st_free(&f);
    CHECK(write_all(nofile, "\x02\0\0\0\0\0\0\0{]", 10) == 0 && nnl_st_read(nofile, &f) == NNL_ERR_FORMAT &&
          strstr(nnl_errmsg(), "absent.safetensors: safetensors: header is not valid JSON"));
    fprintf(stderr, "read error: %s\n", nnl_errmsg());
    unlink(nofile);

    free(before);
    free(after);
    unlink(path);
    rmdir(sub);
    tset_free(&s);
}

int main(void) {
    const char *dir = nnl_test_tmpdir();
    test_round_trip(dir);
    test_python(dir);
    test_corrupt();
    test_truncation();
    test_flips();
    test_writer_args();
    test_atomic(dir);
    fprintf(stderr, "%d corrupt images refused\n", nbad);
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path);
    rmdir(dir);
    return nnl_test_finish("test_safetensors");
}
