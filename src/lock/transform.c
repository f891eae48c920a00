/*
 * The key-transform lock (Maung Maung & Kiya): block-wise shuffle, negative/positive and
 * FFX transforms with a secret key, their key files and the model's record. The definition
 * follows the authors' code (fugokidi/block_transform): blocks of M x M pixels, each
 * flattened row, column, channel; one key for every block. docs/key-transform.md.
 */
#define _GNU_SOURCE /* memmem */
#include "lock.h"
#include "fpe.h"

#include <jansson.h>
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* A key file holds at most 4 x 64 x 64 positions: a few hundred kilobytes of JSON. */
#define TF_KEY_MAX_FILE ((size_t)4 << 20)

static const char *const methods[] = {"shuffle", "np", "ffx"};
static const char *const ciphers[] = {"pyffx", "ff1"};

const char *nnl_transform_method_name(int method) { return method >= 0 && method < 3 ? methods[method] : "?"; }

void nnl_transform_opts_default(nnl_transform_opts *o) {
    memset(o, 0, sizeof *o);
    o->method = NNL_TF_SHUFFLE;
    o->block = 4;
    o->cipher = NNL_FFX_PYFFX;
}

void nnl_transform_free(nnl_transform *t) {
    if (t->perm) sodium_memzero(t->perm, (size_t)t->n * sizeof *t->perm);
    if (t->mask) sodium_memzero(t->mask, (size_t)t->n);
    free(t->perm);
    free(t->mask);
    sodium_memzero(t, sizeof *t);
}

double nnl_transform_key_bits(int method, int c, int block) {
    int n = c * block * block;
    if (method == NNL_TF_SHUFFLE) return lgamma((double)n + 1.0) / log(2.0);
    return (double)n;
}

/* The 256-entry table of the ffx method: v (as 3 decimal digits) -> its encryption. pyffx's
 * Integer codec pads v with leading zeros to 3 digits; the key is the cipher's key bytes. */
static int make_table(nnl_transform *t) {
    uint16_t mx = 0;
    for (int v = 0; v < 256; v++) {
        uint8_t in[3] = {(uint8_t)(v / 100), (uint8_t)(v / 10 % 10), (uint8_t)(v % 10)}, out[3];
        int st = t->cipher == NNL_FFX_FF1 ? nnl_ff1_encrypt(t->ffx_key, (size_t)t->ffx_keylen, NULL, 0, 10, in, 3, out)
                                          : nnl_pyffx_encrypt(t->ffx_key, (size_t)t->ffx_keylen, 10, 10, in, 3, out);
        if (st) return st;
        t->table[v] = (uint16_t)(out[0] * 100 + out[1] * 10 + out[2]);
        if (t->table[v] > mx) mx = t->table[v];
    }
    /* A permutation of 000..999 sends at most one v to 0, so 256 values cannot all be 0. */
    t->table_max = mx;
    return NNL_OK;
}

static int check_shape(int method, int c, int block) {
    if (method < 0 || method > 2) return nnl_fail(NNL_ERR_ARG, "transform: unknown method %d", method);
    if (c < 1 || c > NNL_MAX_CHANNELS) return nnl_fail(NNL_ERR_ARG, "transform: %d channels outside 1..%d", c, NNL_MAX_CHANNELS);
    if (block < 1 || block > NNL_TF_MAX_BLOCK)
        return nnl_fail(NNL_ERR_ARG, "transform: block size %d outside 1..%d", block, NNL_TF_MAX_BLOCK);
    if (method == NNL_TF_SHUFFLE && c * block * block < 2)
        return nnl_fail(NNL_ERR_ARG, "transform: a 1x1 block of one channel has nothing to shuffle");
    return NNL_OK;
}

static int alloc_key(nnl_transform *t) {
    t->n = t->c * t->block * t->block;
    if (t->method == NNL_TF_SHUFFLE) t->perm = calloc((size_t)t->n, sizeof *t->perm);
    else t->mask = calloc((size_t)t->n, 1);
    if (!t->perm && !t->mask) return nnl_fail(NNL_ERR_NOMEM, "out of memory");
    return NNL_OK;
}

/* Secret bits: from the CSPRNG, or from a seeded stream (tests, reproducible experiments). */
typedef struct bits { nnl_rng r; int seeded; } bits;
static uint64_t next64(bits *b) {
    if (b->seeded) return nnl_rng_next(&b->r);
    uint64_t v;
    randombytes_buf(&v, sizeof v);
    return v;
}
static uint64_t below(bits *b, uint64_t n) { return (uint64_t)(((unsigned __int128)next64(b) * n) >> 64); }

int nnl_transform_generate(nnl_transform *t, int c, const nnl_transform_opts *o) {
    memset(t, 0, sizeof *t);
    int st = check_shape(o->method, c, o->block);
    if (st) return st;
    if (o->method == NNL_TF_FFX && o->cipher != NNL_FFX_PYFFX && o->cipher != NNL_FFX_FF1)
        return nnl_fail(NNL_ERR_ARG, "transform: unknown cipher %d", o->cipher);
    if (!o->seed && sodium_init() < 0) return nnl_fail(NNL_ERR_UNSUPPORTED, "transform: libsodium cannot start");
    t->method = o->method;
    t->block = o->block;
    t->c = c;
    if ((st = alloc_key(t))) return st;
    bits b = {nnl_rng_derive(o->seed, 0x7f3a5eULL), o->seed != 0};
    if (t->method == NNL_TF_SHUFFLE) {
        for (int i = 0; i < t->n; i++) t->perm[i] = (uint16_t)i;
        for (int i = t->n - 1; i > 0; i--) {
            int j = (int)below(&b, (uint64_t)i + 1);
            uint16_t x = t->perm[i]; t->perm[i] = t->perm[j]; t->perm[j] = x;
        }
    } else {
        for (int i = 0; i < t->n; i++) t->mask[i] = (uint8_t)(next64(&b) >> 63);
    }
    if (t->method == NNL_TF_FFX) {
        t->cipher = o->cipher;
        t->ffx_keylen = 16;
        for (int i = 0; i < 16; i += 8) {
            uint64_t v = next64(&b);
            memcpy(t->ffx_key + i, &v, 8);
        }
        if ((st = make_table(t))) { nnl_transform_free(t); return st; }
    }
    return NNL_OK;
}

int nnl_transform_check(const nnl_transform *t, int c, int h, int w, const char *name) {
    if (!name) name = "transform key";
    if (c != t->c)
        return nnl_fail(NNL_ERR_SHAPE, "%s is for %d-channel images but these have %d channel%s", name, t->c, c,
                        c == 1 ? "" : "s");
    if (h % t->block || w % t->block)
        return nnl_fail(NNL_ERR_SHAPE, "%s: its %dx%d blocks do not divide the %dx%d images", name, t->block, t->block,
                        w, h);
    return NNL_OK;
}

/* The offset, within an image of w pixels per row and h rows, of value k of a block whose
 * top-left pixel is at offset 0: k = (row * M + column) * c + channel. */
static void block_offsets(const nnl_transform *t, int h, int w, size_t *off) {
    int M = t->block, c = t->c;
    for (int k = 0; k < t->n; k++) {
        int ch = k % c, col = k / c % M, row = k / c / M;
        off[k] = (size_t)ch * h * w + (size_t)row * w + (size_t)col;
    }
}

int nnl_transform_apply_u8(const nnl_transform *t, uint8_t *img, int c, int h, int w) {
    if (t->method == NNL_TF_FFX) return nnl_fail(NNL_ERR_UNSUPPORTED, "transform: ffx values are not 8-bit");
    (void)c;
    size_t off[4 * NNL_TF_MAX_BLOCK * NNL_TF_MAX_BLOCK];
    uint8_t v[4 * NNL_TF_MAX_BLOCK * NNL_TF_MAX_BLOCK];
    block_offsets(t, h, w, off);
    int M = t->block;
    for (int by = 0; by < h; by += M)
        for (int bx = 0; bx < w; bx += M) {
            uint8_t *base = img + (size_t)by * w + bx;
            if (t->method == NNL_TF_SHUFFLE) {
                for (int k = 0; k < t->n; k++) v[k] = base[off[k]];
                for (int k = 0; k < t->n; k++) base[off[k]] = v[t->perm[k]];
            } else {
                /* 255 - v is 1 - x exactly for x = v / 255. */
                for (int k = 0; k < t->n; k++)
                    if (t->mask[k]) base[off[k]] = (uint8_t)(255 - base[off[k]]);
            }
        }
    return NNL_OK;
}

void nnl_transform_apply(const nnl_transform *t, const uint8_t *img, int c, int h, int w, float *x) {
    size_t plane = (size_t)c * h * w;
    if (t->method != NNL_TF_FFX) {
        /* Through the 8-bit path, so that both give the same values exactly. */
        for (size_t i = 0; i < plane; i++) x[i] = (float)img[i];
        size_t off[4 * NNL_TF_MAX_BLOCK * NNL_TF_MAX_BLOCK];
        float v[4 * NNL_TF_MAX_BLOCK * NNL_TF_MAX_BLOCK];
        block_offsets(t, h, w, off);
        int M = t->block;
        for (int by = 0; by < h; by += M)
            for (int bx = 0; bx < w; bx += M) {
                float *base = x + (size_t)by * w + bx;
                if (t->method == NNL_TF_SHUFFLE) {
                    for (int k = 0; k < t->n; k++) v[k] = base[off[k]];
                    for (int k = 0; k < t->n; k++) base[off[k]] = v[t->perm[k]];
                } else {
                    for (int k = 0; k < t->n; k++)
                        if (t->mask[k]) base[off[k]] = 255.0f - base[off[k]];
                }
            }
        for (size_t i = 0; i < plane; i++) x[i] *= 1.0f / 255.0f;
        return;
    }
    /* ffx: every value over the table's maximum, the masked ones through the table first. */
    const float inv = 1.0f / (float)t->table_max;
    for (size_t i = 0; i < plane; i++) x[i] = (float)img[i] * inv;
    size_t off[4 * NNL_TF_MAX_BLOCK * NNL_TF_MAX_BLOCK];
    block_offsets(t, h, w, off);
    int M = t->block;
    for (int by = 0; by < h; by += M)
        for (int bx = 0; bx < w; bx += M) {
            const uint8_t *src = img + (size_t)by * w + bx;
            float *dst = x + (size_t)by * w + bx;
            for (int k = 0; k < t->n; k++)
                if (t->mask[k]) dst[off[k]] = (float)t->table[src[off[k]]] * inv;
        }
}

static int sample_hook(void *user, uint8_t *img, int c, int h, int w, int64_t index, int label, uint64_t seed,
                       float *soft) {
    (void)index; (void)label; (void)seed; (void)soft;
    nnl_transform_apply_u8(user, img, c, h, w);
    return -1;
}

static void float_hook(void *user, const uint8_t *img, int c, int h, int w, int64_t index, float *x) {
    (void)index;
    nnl_transform_apply(user, img, c, h, w, x);
}

void nnl_transform_hooks(nnl_hooks *h, const nnl_transform *t) {
    /* shuffle and np stay 8-bit (exact, and what `apply` writes); ffx needs the float stage. */
    if (t->method == NNL_TF_FFX) *h = (nnl_hooks){.user = (void *)t, .to_float = float_hook};
    else *h = (nnl_hooks){.user = (void *)t, .sample = sample_hook};
}

int nnl_transform_record(nnl_model *m, const nnl_transform *t) {
    char buf[32];
    int st;
    if ((st = nnl_model_meta_set(m, "lock.transform.method", methods[t->method]))) return st;
    snprintf(buf, sizeof buf, "%d", t->block);
    if ((st = nnl_model_meta_set(m, "lock.transform.block", buf))) return st;
    snprintf(buf, sizeof buf, "%d", t->c);
    if ((st = nnl_model_meta_set(m, "lock.transform.channels", buf))) return st;
    if (t->method == NNL_TF_FFX && (st = nnl_model_meta_set(m, "lock.transform.cipher", ciphers[t->cipher]))) return st;
    return NNL_OK;
}

/* ------------------------------------------------------------------ key files */

/*   {"type": "nnlock-transform", "version": 1, "method": "shuffle", "block": 4, "channels": 3,
 *    "perm": [n entries] | "mask": [n 0/1 entries], "cipher": "pyffx", "ffx_key": "hex"} */
int nnl_transform_save(const nnl_transform *t, const char *path, int overwrite) {
    json_t *o = json_pack("{s:s, s:i, s:s, s:i, s:i}", "type", "nnlock-transform", "version", 1, "method",
                          methods[t->method], "block", t->block, "channels", t->c);
    if (!o) return nnl_fail(NNL_ERR_NOMEM, "out of memory");
    json_t *a = json_array();
    for (int i = 0; a && i < t->n; i++)
        json_array_append_new(a, json_integer(t->method == NNL_TF_SHUFFLE ? t->perm[i] : t->mask[i]));
    json_object_set_new(o, t->method == NNL_TF_SHUFFLE ? "perm" : "mask", a);
    if (t->method == NNL_TF_FFX) {
        char hex[2 * 32 + 1];
        sodium_bin2hex(hex, sizeof hex, t->ffx_key, (size_t)t->ffx_keylen);
        json_object_set_new(o, "cipher", json_string(ciphers[t->cipher]));
        json_object_set_new(o, "ffx_key", json_string(hex));
        sodium_memzero(hex, sizeof hex);
    }
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!text) return nnl_fail(NNL_ERR_NOMEM, "out of memory");
    int st = nnl_write_file(path, text, strlen(text), NNL_WRITE_SECRET | (overwrite ? 0 : NNL_WRITE_NEW));
    sodium_memzero(text, strlen(text));
    free(text);
    return st;
}

static int bad(const char *name, const char *what) { return nnl_fail(NNL_ERR_KEY, "key %s: %s", name, what); }

static int name_of(json_t *o, const char *key, const char *const *names, int n, int *out) {
    const char *s = json_string_value(json_object_get(o, key));
    for (int i = 0; s && i < n; i++)
        if (!strcmp(s, names[i])) { *out = i; return 1; }
    return 0;
}

int nnl_transform_parse(nnl_transform *t, const uint8_t *data, size_t size, const char *name) {
    memset(t, 0, sizeof *t);
    if (!name) name = "transform key";
    json_error_t err;
    json_t *o = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &err);
    if (!o) return nnl_fail(NNL_ERR_KEY, "key %s: not a transform key (JSON error at line %d: %s)", name, err.line, err.text);
    int st = NNL_OK;
    const char *type = json_string_value(json_object_get(o, "type"));
    json_t *ver = json_object_get(o, "version"), *blk = json_object_get(o, "block"), *ch = json_object_get(o, "channels");
    if (!json_is_object(o) || !type || strcmp(type, "nnlock-transform")) {
        st = bad(name, "not an nnlock transform key (\"type\" is not \"nnlock-transform\")");
        goto done;
    }
    if (!json_is_integer(ver) || json_integer_value(ver) != 1) { st = bad(name, "'version' must be 1"); goto done; }
    if (!name_of(o, "method", methods, 3, &t->method)) { st = bad(name, "'method' must be shuffle, np or ffx"); goto done; }
    if (!json_is_integer(blk) || json_integer_value(blk) < 1 || json_integer_value(blk) > NNL_TF_MAX_BLOCK) {
        st = bad(name, "'block' must be an integer from 1 to 64");
        goto done;
    }
    if (!json_is_integer(ch) || json_integer_value(ch) < 1 || json_integer_value(ch) > NNL_MAX_CHANNELS) {
        st = bad(name, "'channels' must be an integer from 1 to 4");
        goto done;
    }
    t->block = (int)json_integer_value(blk);
    t->c = (int)json_integer_value(ch);
    if ((st = check_shape(t->method, t->c, t->block)) || (st = alloc_key(t))) goto done;
    const char *field = t->method == NNL_TF_SHUFFLE ? "perm" : "mask";
    json_t *a = json_object_get(o, field);
    char msg[160];
    if (!json_is_array(a) || json_array_size(a) != (size_t)t->n) {
        snprintf(msg, sizeof msg, "'%s' must be an array of %d values (channels x block x block)", field, t->n);
        st = bad(name, msg);
        goto done;
    }
    uint8_t *seen = t->method == NNL_TF_SHUFFLE ? calloc((size_t)t->n, 1) : NULL;
    if (t->method == NNL_TF_SHUFFLE && !seen) { st = nnl_fail(NNL_ERR_NOMEM, "out of memory"); goto done; }
    for (int i = 0; i < t->n && !st; i++) {
        json_t *v = json_array_get(a, (size_t)i);
        json_int_t x = json_is_integer(v) ? json_integer_value(v) : -1;
        if (t->method == NNL_TF_SHUFFLE) {
            if (x < 0 || x >= t->n || seen[x]) {
                snprintf(msg, sizeof msg, "'perm' is not a permutation of 0..%d (entry %d)", t->n - 1, i);
                st = bad(name, msg);
            } else {
                seen[x] = 1;
                t->perm[i] = (uint16_t)x;
            }
        } else if (x != 0 && x != 1) {
            snprintf(msg, sizeof msg, "'mask'[%d] must be 0 or 1", i);
            st = bad(name, msg);
        } else {
            t->mask[i] = (uint8_t)x;
        }
    }
    free(seen);
    if (st) goto done;
    if (t->method == NNL_TF_FFX) {
        const char *hex = json_string_value(json_object_get(o, "ffx_key"));
        size_t len = 0;
        if (!name_of(o, "cipher", ciphers, 2, &t->cipher)) { st = bad(name, "'cipher' must be pyffx or ff1"); goto done; }
        if (!hex || sodium_hex2bin(t->ffx_key, sizeof t->ffx_key, hex, strlen(hex), NULL, &len, NULL) != 0 || len < 1 ||
            2 * len != strlen(hex) || (t->cipher == NNL_FFX_FF1 && len != 16 && len != 32)) {
            st = bad(name, t->cipher == NNL_FFX_FF1 ? "'ffx_key' must be 32 or 64 hex digits (an AES key)"
                                                    : "'ffx_key' must be 2 to 64 hex digits");
            goto done;
        }
        t->ffx_keylen = (int)len;
        if ((st = make_table(t))) goto done;
    } else if (json_object_get(o, "ffx_key") || json_object_get(o, "cipher")) {
        st = bad(name, "'cipher' and 'ffx_key' belong to the ffx method only");
        goto done;
    }
done:
    json_decref(o);
    if (st) nnl_transform_free(t);
    return st;
}

int nnl_transform_load(nnl_transform *t, const char *path) {
    memset(t, 0, sizeof *t);
    uint8_t *data;
    size_t size;
    int st = nnl_read_file(path, &data, &size, TF_KEY_MAX_FILE, 0);
    if (st) return st;
    st = nnl_transform_parse(t, data, size, path);
    sodium_memzero(data, size);
    free(data);
    return st;
}

/* ---------------------------------------------------------------- the lock interface (lock.h) */

static const nnl_lock_opt tf_opts[] = {
    {"method", 1, NNL_LOCKOPT_NEW_KEY, "--method M         shuffle, np (negative/positive) or ffx (default shuffle)"},
    {"block", 1, NNL_LOCKOPT_NEW_KEY, "--block M          blocks of M x M pixels; M must divide the image (default 4)"},
    {"cipher", 1, NNL_LOCKOPT_NEW_KEY, "--cipher C         ffx: pyffx (FFX with HMAC-SHA1, as the authors) or ff1 (NIST\n"
                                       "                         FF1 with AES-128) (default pyffx)"},
    {"key-seed", 1, NNL_LOCKOPT_NEW_KEY, "--key-seed N       make the transform key reproducible (default: from the OS)"},
    {NULL, 0, 0, NULL}};

static int tf_probe(const uint8_t *data, size_t n) {
    static const char tag[] = "\"nnlock-transform\"";
    return n >= sizeof tag - 1 && memmem(data, n, tag, sizeof tag - 1) != NULL;
}

static int tf_parse(void **key, const uint8_t *data, size_t n, const char *name) {
    nnl_transform *t = calloc(1, sizeof *t);
    if (!t) return nnl_fail(NNL_ERR_NOMEM, "out of memory");
    int st = nnl_transform_parse(t, data, n, name);
    if (st) { free(t); return st; }
    *key = t;
    return NNL_OK;
}

static void tf_free_key(void *key) {
    if (!key) return;
    nnl_transform_free(key);
    free(key);
}

static int tf_make(void **key, int c, const nnl_transform_opts *o) {
    nnl_transform *t = calloc(1, sizeof *t);
    if (!t) return nnl_fail(NNL_ERR_NOMEM, "out of memory");
    int st = nnl_transform_generate(t, c, o);
    if (st) { free(t); return st; }
    *key = t;
    return NNL_OK;
}

static int tf_generate(void **key, int c, int h, int w, const nnl_lock_args *a) {
    nnl_transform_opts o;
    nnl_transform_opts_default(&o);
    long block;
    int st;
    if ((st = nnl_lock_arg_choice(a, "method", methods, 3, NNL_TF_SHUFFLE, &o.method)) ||
        (st = nnl_lock_arg_int(a, "block", 1, NNL_TF_MAX_BLOCK, 4, &block)) ||
        (st = nnl_lock_arg_choice(a, "cipher", ciphers, 2, NNL_FFX_PYFFX, &o.cipher)) ||
        (st = nnl_lock_arg_u64(a, "key-seed", 0, &o.seed)))
        return st;
    if (nnl_lock_arg(a, "cipher") && o.method != NNL_TF_FFX) return nnl_fail(NNL_ERR_ARG, "--cipher is for --method ffx");
    o.block = (int)block;
    if (h % o.block || w % o.block)
        return nnl_fail(NNL_ERR_SHAPE, "--block %d does not divide the %dx%d images", o.block, w, h);
    return tf_make(key, c, &o);
}

static int tf_save(const void *key, const char *path, int overwrite) { return nnl_transform_save(key, path, overwrite); }

static int tf_fits(const void *key, int c, int h, int w, const char *name) { return nnl_transform_check(key, c, h, w, name); }

static void tf_describe_key(const void *key, char *buf, size_t n) {
    const nnl_transform *t = key;
    double bits = nnl_transform_key_bits(t->method, t->c, t->block);
    if (t->method == NNL_TF_SHUFFLE)
        snprintf(buf, n, "transform key: shuffle of %dx%d blocks of %d channel%s (%d values): (%d)! = 2^%.1f keys",
                 t->block, t->block, t->c, t->c == 1 ? "" : "s", t->n, t->n, bits);
    else
        snprintf(buf, n, "transform key: %s%s%s of %dx%d blocks of %d channel%s (%d values): 2^%d position subsets%s",
                 methods[t->method], t->method == NNL_TF_FFX ? " with " : "", t->method == NNL_TF_FFX ? ciphers[t->cipher] : "",
                 t->block, t->block, t->c, t->c == 1 ? "" : "s", t->n, t->n,
                 t->method == NNL_TF_FFX ? ", and the cipher's key" : "");
}

static int tf_locks(const nnl_model *m) { return nnl_model_meta_get(m, "lock.transform.method") != NULL; }

static void tf_describe(const nnl_model *m, char *buf, size_t n) {
    const char *me = nnl_model_meta_get(m, "lock.transform.method"), *b = nnl_model_meta_get(m, "lock.transform.block"),
               *c = nnl_model_meta_get(m, "lock.transform.channels"), *ci = nnl_model_meta_get(m, "lock.transform.cipher");
    int method = 0, block = atoi(b ? b : "0"), ch = atoi(c ? c : "0");
    for (int i = 0; me && i < 3; i++)
        if (!strcmp(me, methods[i])) method = i;
    double bits = block > 0 && ch > 0 ? nnl_transform_key_bits(method, ch, block) : 0.0;
    snprintf(buf, n, "key-transform lock (Maung Maung & Kiya): %s%s%s, %sx%s blocks, %s channel%s; key space 2^%.1f",
             me ? me : "?", ci ? " with " : "", ci ? ci : "", b ? b : "?", b ? b : "?", c ? c : "?",
             ch == 1 ? "" : "s", bits);
}

static void tf_label(const nnl_model *m, char *buf, size_t n) {
    const char *me = nnl_model_meta_get(m, "lock.transform.method"), *b = nnl_model_meta_get(m, "lock.transform.block"),
               *ci = nnl_model_meta_get(m, "lock.transform.cipher");
    snprintf(buf, n, "%s%s%s %sx%s", me ? me : "?", ci ? "/" : "", ci ? ci : "", b ? b : "?", b ? b : "?");
}

static void tf_forget(nnl_model *m) { nnl_model_meta_remove_prefix(m, "lock.transform."); }

static int tf_train(void **state, const void *key, const nnl_model *m, const nnl_lock_args *a, uint64_t seed,
                    nnl_hooks *h) {
    (void)m; (void)a; (void)seed;
    /* Every training image is transformed: there is nothing else to learn from. */
    nnl_transform_hooks(h, key);
    *state = NULL;
    return NNL_OK;
}

static void tf_train_free(void *state) { (void)state; }

static int tf_record(nnl_model *m, const void *key, const void *state) {
    (void)state;
    return nnl_transform_record(m, key);
}

static void tf_authorized(const void *key, nnl_hooks *h) { nnl_transform_hooks(h, key); }

static int tf_random(void **out, const void *like, uint64_t seed) {
    const nnl_transform *t = like;
    nnl_transform_opts o = {t->method, t->block, t->cipher, seed ? seed : 1};
    return tf_make(out, t->c, &o);
}

static int tf_guess(void **out, const nnl_model *m, uint64_t seed) {
    const char *me = nnl_model_meta_get(m, "lock.transform.method"), *b = nnl_model_meta_get(m, "lock.transform.block"),
               *c = nnl_model_meta_get(m, "lock.transform.channels"), *ci = nnl_model_meta_get(m, "lock.transform.cipher");
    nnl_transform_opts o;
    nnl_transform_opts_default(&o);
    o.seed = seed ? seed : 1;
    o.method = -1;
    for (int i = 0; me && i < 3; i++)
        if (!strcmp(me, methods[i])) o.method = i;
    for (int i = 0; ci && i < 2; i++)
        if (!strcmp(ci, ciphers[i])) o.cipher = i;
    o.block = b ? atoi(b) : 0;
    int ch = c ? atoi(c) : 0;
    if (o.method < 0 || o.block < 1 || ch < 1) return nnl_fail(NNL_ERR_FORMAT, "the model's lock.transform record is incomplete");
    return tf_make(out, ch, &o);
}

/* The key with two positions swapped (shuffle) or one position's bit flipped (np, ffx). */
static int tf_neighbour(void **out, const void *from, uint64_t seed) {
    const nnl_transform *t = from;
    nnl_transform *r = calloc(1, sizeof *r);
    if (!r) return nnl_fail(NNL_ERR_NOMEM, "out of memory");
    *r = *t;
    r->perm = NULL;
    r->mask = NULL;
    int st = alloc_key(r);
    if (st) { free(r); return st; }
    nnl_rng g = nnl_rng_derive(seed, 0x5a9b17ULL);
    if (t->method == NNL_TF_SHUFFLE) {
        memcpy(r->perm, t->perm, (size_t)t->n * sizeof *t->perm);
        int i = (int)nnl_rng_below(&g, (uint64_t)t->n), j;
        do j = (int)nnl_rng_below(&g, (uint64_t)t->n); while (j == i);
        uint16_t x = r->perm[i]; r->perm[i] = r->perm[j]; r->perm[j] = x;
    } else {
        memcpy(r->mask, t->mask, (size_t)t->n);
        r->mask[nnl_rng_below(&g, (uint64_t)t->n)] ^= 1;
    }
    *out = r;
    return NNL_OK;
}

const nnl_lock_ops nnl_lock_transform = {
    .name = "transform",
    .summary = "Maung Maung & Kiya: a model trained on images transformed block by block with a secret key",
    .seam = NNL_SEAM_INPUT,
    .opts = tf_opts,
    .probe = tf_probe,
    .parse = tf_parse,
    .generate = tf_generate,
    .save = tf_save,
    .free_key = tf_free_key,
    .fits = tf_fits,
    .describe_key = tf_describe_key,
    .locks = tf_locks,
    .describe = tf_describe,
    .label = tf_label,
    .forget = tf_forget,
    .train = tf_train,
    .train_free = tf_train_free,
    .record = tf_record,
    .authorized = tf_authorized,
    .guess_key = tf_guess,
    .random_key = tf_random,
    .neighbour_key = tf_neighbour,
    .neighbour = "one swap or one bit",
};
