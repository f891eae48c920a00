/* Deep-Lock on whole models (src/lock/weights.c): lock -> save -> load -> unlock is exact,
 * the locked bytes of a fixed model are pinned, wrong keys and damaged files are refused
 * with the model untouched, nothing secret reaches the file, and the known-plaintext probe
 * of tests/tools/deeplock_probe.c recovers a 256-bit key from a locked file alone. */
#include "nnlock.h"
#include "lock/weightlock.h"
#include "nn/model.h"
#include "synth.h"
#include "testutil.h"

#define DEEPLOCK_PROBE_NO_MAIN
#include "tools/deeplock_probe.c"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* docs/deep-lock.md's example key (AES-256) and the FIPS-197 A.1 key (AES-128). */
static const uint8_t K256[32] = {0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a,
                                 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15,
                                 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f};
static const uint8_t K128[16] = {0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6,
                                 0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf, 0x4f, 0x3c};

/* ---------------------------------------------------------------- helpers */

static char *tmp_path(const char *name) {
    static char buf[8][512];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 512, "%s/%s", nnl_test_tmpdir(), name);
    return p;
}

static size_t stored_floats(nnl_model *m) {
    size_t n = 0, c;
    for (int t = 0; t < nnl_model_tensor_count(m); t++) { nnl_model_tensor(m, t, NULL, &c); n += c; }
    return n;
}

/* Every stored float, concatenated in tensor order (a malloc'd copy of the raw bytes). */
static uint8_t *snapshot(nnl_model *m, size_t *bytes) {
    size_t n = stored_floats(m) * 4, off = 0, c;
    uint8_t *b = malloc(n + 1);
    for (int t = 0; b && t < nnl_model_tensor_count(m); t++) {
        const float *p = nnl_model_tensor(m, t, NULL, &c);
        memcpy(b + off, p, c * 4);
        off += c * 4;
    }
    if (bytes) *bytes = n;
    return b;
}

static int same_floats(nnl_model *m, const uint8_t *snap) {
    size_t n;
    uint8_t *now = snapshot(m, &n);
    int same = now && !memcmp(now, snap, n);
    free(now);
    return same;
}

static void write_all(const char *path, const uint8_t *b, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) { CHECK_MSG(0, "cannot write %s", path); return; }
    CHECK(fwrite(b, 1, n, f) == n);
    fclose(f);
}

static int files_equal(const char *a, const char *b) {
    size_t na, nb;
    uint8_t *x = nnl_test_read(a, &na), *y = nnl_test_read(b, &nb);
    int eq = x && y && na == nb && !memcmp(x, y, na);
    free(x); free(y);
    return eq;
}

static int contains(const uint8_t *hay, size_t n, const void *needle, size_t k) {
    for (size_t i = 0; k && i + k <= n; i++)
        if (!memcmp(hay + i, needle, k)) return 1;
    return 0;
}

/* A small model with every kind of stored tensor (conv and dense weights and biases,
 * batch-norm scale/shift and running statistics), filled with non-trivial values. */
static nnl_model *make_model(uint64_t seed) {
    nnl_model *m = NULL;
    int st = nnl_model_create(&m, "conv4k3p1,bn,relu,maxpool2,flatten,dense16,relu,dense", 1, 8, 8, 4);
    CHECK_MSG(st == NNL_OK, "model: %s", nnl_errmsg());
    if (st) return NULL;
    nnl_model_init(m, seed);
    nnl_rng r = {seed * 7 + 3};
    for (int t = 0; t < nnl_model_tensor_count(m); t++) {
        size_t c;
        const char *name;
        float *p = nnl_model_tensor(m, t, &name, &c);
        /* Running statistics and BN parameters start at 0 / 1; make them look trained. */
        if (strstr(name, "running_var")) for (size_t i = 0; i < c; i++) p[i] = 0.5f + nnl_rng_uniform(&r);
        else if (strstr(name, "running_mean") || strstr(name, "bias"))
            for (size_t i = 0; i < c; i++) p[i] = 0.1f * nnl_rng_normal(&r);
    }
    float mean = 0.2f, sd = 0.3f;
    nnl_model_set_norm(m, &mean, &sd);
    nnl_model_meta_set(m, "train.note", "test model");
    return m;
}

static float *logits_of(nnl_model *m, const nnl_dataset *ds) {
    float *x = malloc((size_t)ds->n * 64 * sizeof(float)), *z = malloc((size_t)ds->n * 4 * sizeof(float));
    nnl_model_normalize(m, ds->pixels, ds->n, x);
    CHECK(nnl_model_logits(m, x, ds->n, z) == NNL_OK);
    free(x);
    return z;
}

static int errmsg_has(const char *s) { return strstr(nnl_errmsg(), s) != NULL; }

/* ---------------------------------------------------------------- round trips */

static void test_roundtrip(void) {
    nnl_dataset ds;
    synth_dataset(&ds, 64, 1, 8, 8, 4, 5);
    nnl_model *m = make_model(11);
    if (!m) return;
    const char *plain = tmp_path("plain.nnl"), *locked = tmp_path("locked.nnl"), *back = tmp_path("back.nnl");
    CHECK(nnl_model_save(m, plain) == NNL_OK);
    size_t nbytes;
    uint8_t *orig = snapshot(m, &nbytes);
    float *z0 = logits_of(m, &ds);

    CHECK(nnl_weights_locked(m) == 0);
    CHECK(nnl_weights_lock(m, K256, 32) == NNL_OK);
    CHECK(nnl_weights_locked(m) == 1);
    CHECK(!same_floats(m, orig));
    /* Every tensor is locked, statistics included: no stored float keeps its bytes
     * (a chance match of all 4 bytes has probability 2^-32 per float). */
    {
        uint8_t *now = snapshot(m, NULL);
        size_t unchanged = 0;
        for (size_t i = 0; i < nbytes; i += 4) unchanged += !memcmp(now + i, orig + i, 4);
        CHECK_MSG(unchanged == 0, "%zu floats unchanged by locking", unchanged);
        free(now);
    }
    CHECK(!strcmp(nnl_model_meta_get(m, "lock.weights.scheme"), "deep-lock-aes-sbox-v1"));
    CHECK(!strcmp(nnl_model_meta_get(m, "lock.weights.key_bits"), "256"));
    CHECK(!strcmp(nnl_model_meta_get(m, "lock.weights.kcv"), "5f8976d73d7fff42")); /* docs/deep-lock.md */
    char cnt[32];
    snprintf(cnt, sizeof cnt, "%zu", stored_floats(m));
    CHECK(!strcmp(nnl_model_meta_get(m, "lock.weights.params"), cnt));
    CHECK(nnl_model_meta_get(m, "lock.weights.kdf") == NULL);
    CHECK(nnl_model_save(m, locked) == NNL_OK);
    nnl_model_free(m);

    nnl_model *l = NULL;
    CHECK(nnl_model_load(&l, locked) == NNL_OK);
    if (l) {
        CHECK(nnl_weights_locked(l) == 1);
        CHECK(nnl_weights_unlock(l, K256, 32) == NNL_OK);
        CHECK(nnl_weights_locked(l) == 0);
        CHECK_MSG(same_floats(l, orig), "unlocked parameters differ from the original");
        float *z1 = logits_of(l, &ds);
        CHECK_MSG(!memcmp(z0, z1, (size_t)ds.n * 4 * sizeof(float)), "logits differ after unlock");
        free(z1);
        CHECK(nnl_model_meta_get(l, "lock.weights.scheme") == NULL);
        CHECK(!strcmp(nnl_model_meta_get(l, "train.note"), "test model"));
        CHECK(nnl_model_save(l, back) == NNL_OK);
        CHECK_MSG(files_equal(plain, back), "unlock(lock(m)) does not save byte-identical to m");
        nnl_model_free(l);
    }

    /* AES-128, in memory. */
    CHECK(nnl_model_load(&l, plain) == NNL_OK);
    if (l) {
        CHECK(nnl_weights_lock(l, K128, 16) == NNL_OK);
        CHECK(!strcmp(nnl_model_meta_get(l, "lock.weights.key_bits"), "128"));
        CHECK(!strcmp(nnl_model_meta_get(l, "lock.weights.kcv"), "0c76d03e9736fb2d"));
        CHECK(nnl_weights_unlock(l, K128, 16) == NNL_OK);
        CHECK(same_floats(l, orig));
        nnl_model_free(l);
    }
    free(orig); free(z0);
    nnl_dataset_free(&ds);
}

/* Parameter i of the model uses word w[i], counting across tensors (not restarting). */
static void test_stream_order(void) {
    nnl_model *m = make_model(12);
    if (!m) return;
    size_t nb;
    uint8_t *plain = snapshot(m, &nb);
    size_t n = nb / 4;
    uint32_t *w = malloc(n * sizeof *w);
    CHECK(nnl_aes_expand_key(K256, 32, w, n) == NNL_OK);
    float *ref = malloc(nb);
    memcpy(ref, plain, nb);
    nnl_wl_lock(ref, n, w);
    CHECK(nnl_weights_lock(m, K256, 32) == NNL_OK);
    CHECK_MSG(same_floats(m, (const uint8_t *)ref), "model lock differs from locking the concatenated tensors");
    free(plain); free(w); free(ref);
    nnl_model_free(m);
}

/* A vector of our own: a fixed model, fixed values, fixed key -> fixed locked bytes.
 * The expected values come from an independent Python implementation of the spec
 * (S-box from its GF(2^8) definition, FIPS-197 key expansion, hashlib.blake2b and a
 * SipHash-2-4-128 checked against the reference vectors). */
static void test_fixed_vector(void) {
    nnl_model *m = NULL;
    CHECK(nnl_model_create(&m, "dense4,relu,dense", 1, 2, 2, 2) == NNL_OK);
    if (!m) return;
    size_t i = 0, c;
    for (int t = 0; t < nnl_model_tensor_count(m); t++) {
        float *p = nnl_model_tensor(m, t, NULL, &c);
        for (size_t j = 0; j < c; j++, i++) p[j] = ((float)i - 15.0f) / 8.0f;
    }
    CHECK(i == 30); /* 4x4 + 4 + 2x4 + 2 */
    uint8_t *plain = snapshot(m, NULL);
    CHECK(nnl_weights_lock(m, K256, 32) == NNL_OK);
    uint8_t *lk = snapshot(m, NULL), h[16];
    char hex[33];
    crypto_generichash(h, sizeof h, lk, 120, NULL, 0);
    sodium_bin2hex(hex, sizeof hex, h, sizeof h);
    /* First and last two parameters, bytes in memory order, and BLAKE2b-128 of all 120. */
    char first[17], last[17];
    sodium_bin2hex(first, sizeof first, lk, 8);
    sodium_bin2hex(last, sizeof last, lk + 112, 8);
    CHECK_MSG(!strcmp(first, "637c8965f26b8e6c"), "first words %s", first);
    CHECK_MSG(!strcmp(last, "279887d600a02a61"), "last words %s", last);
    CHECK_MSG(!strcmp(hex, "17136c77eeb3149b83c740142ee1311e"), "locked bytes hash %s", hex);
    CHECK_MSG(!strcmp(nnl_model_meta_get(m, "lock.weights.mac"), "0f535f88d3335cced50f03fbbfe3e835"),
              "mac %s", nnl_model_meta_get(m, "lock.weights.mac"));
    CHECK(nnl_weights_unlock(m, K256, 32) == NNL_OK);
    CHECK(same_floats(m, plain));
    CHECK(nnl_weights_lock(m, K128, 16) == NNL_OK);
    CHECK_MSG(!strcmp(nnl_model_meta_get(m, "lock.weights.mac"), "dad602acda1cb63292d5b71b8ef4f8af"),
              "AES-128 mac %s", nnl_model_meta_get(m, "lock.weights.mac"));
    free(lk);
    lk = snapshot(m, NULL);
    crypto_generichash(h, sizeof h, lk, 120, NULL, 0);
    sodium_bin2hex(hex, sizeof hex, h, sizeof h);
    CHECK_MSG(!strcmp(hex, "a83797771c69e82dff1cff3b8538f45a"), "AES-128 locked bytes hash %s", hex);
    free(lk); free(plain);
    nnl_model_free(m);
}

/* ---------------------------------------------------------------- refusals */

static void test_errors(void) {
    nnl_model *m = make_model(13);
    if (!m) return;
    uint8_t *plain = snapshot(m, NULL);
    uint8_t wrong[32];
    memcpy(wrong, K256, 32);
    wrong[31] ^= 1;
    CHECK(nnl_weights_unlock(m, K256, 32) == NNL_ERR_ARG);
    CHECK(errmsg_has("not locked"));
    CHECK(nnl_weights_unlock_unchecked(m, K256, 32) == NNL_ERR_ARG);
    CHECK(nnl_weights_lock(m, K256, 20) == NNL_ERR_KEY);
    CHECK(same_floats(m, plain) && !nnl_weights_locked(m));
    CHECK(nnl_weights_lock(NULL, K256, 32) == NNL_ERR_ARG);
    CHECK(nnl_weights_lock(m, NULL, 32) == NNL_ERR_ARG);

    CHECK(nnl_weights_lock(m, K256, 32) == NNL_OK);
    uint8_t *lk = snapshot(m, NULL);
    int nmeta = nnl_model_meta_count(m);
    CHECK(nnl_weights_lock(m, K256, 32) == NNL_ERR_LOCKED);
    CHECK(nnl_weights_lock_passphrase(m, "x") == NNL_ERR_LOCKED);
    CHECK(same_floats(m, lk));

    CHECK(nnl_weights_unlock(m, wrong, 32) == NNL_ERR_KEY);
    CHECK_MSG(errmsg_has("wrong key: the key check value does not match"), "message: %s", nnl_errmsg());
    CHECK_MSG(same_floats(m, lk) && nnl_weights_locked(m) && nnl_model_meta_count(m) == nmeta,
              "a wrong key changed the model");
    CHECK(nnl_weights_unlock(m, K128, 16) == NNL_ERR_KEY);
    CHECK_MSG(errmsg_has("256-bit key"), "message: %s", nnl_errmsg());
    CHECK(nnl_weights_unlock(m, K256, 7) == NNL_ERR_KEY);
    CHECK(nnl_weights_unlock_passphrase(m, "anything") == NNL_ERR_KEY);
    CHECK_MSG(errmsg_has("key file, not a passphrase"), "message: %s", nnl_errmsg());
    CHECK(same_floats(m, lk) && nnl_weights_locked(m));

    /* Unchecked: a wrong key decrypts to noise and drops the lock record; the right one
     * (from the locked bytes again) restores the original. */
    CHECK(nnl_weights_unlock_unchecked(m, wrong, 32) == NNL_OK);
    CHECK(!nnl_weights_locked(m));
    CHECK(!same_floats(m, plain) && !same_floats(m, lk));
    nnl_model_free(m);

    /* A lock that cannot record itself (metadata table full) leaves the model as it was. */
    m = make_model(13);
    char k[32];
    for (int i = nnl_model_meta_count(m); i < NNL_MAX_META - 2; i++) {
        snprintf(k, sizeof k, "x.%d", i);
        nnl_model_meta_set(m, k, "v");
    }
    int before = nnl_model_meta_count(m);
    CHECK(nnl_weights_lock(m, K256, 32) != NNL_OK);
    CHECK_MSG(same_floats(m, plain) && !nnl_weights_locked(m) && nnl_model_meta_count(m) == before,
              "a failed lock left the model changed");
    nnl_model_free(m);
    free(plain); free(lk);
}

static void test_passphrase(void) {
    nnl_model *m = make_model(14);
    if (!m) return;
    uint8_t *plain = snapshot(m, NULL);
    const char *pass = "correct horse battery staple";
    CHECK(nnl_weights_lock_passphrase(m, pass) == NNL_OK);
    CHECK(!strcmp(nnl_model_meta_get(m, "lock.weights.kdf"), "argon2id13"));
    CHECK(strlen(nnl_model_meta_get(m, "lock.weights.kdf_salt")) == 32);
    CHECK(!strcmp(nnl_model_meta_get(m, "lock.weights.kdf_opslimit"), "2"));
    CHECK(!strcmp(nnl_model_meta_get(m, "lock.weights.kdf_memlimit"), "67108864"));
    CHECK(!strcmp(nnl_model_meta_get(m, "lock.weights.key_bits"), "256"));
    const char *path = tmp_path("pass.nnl");
    CHECK(nnl_model_save(m, path) == NNL_OK);
    nnl_model_free(m);

    CHECK(nnl_model_load(&m, path) == NNL_OK);
    if (!m) { free(plain); return; }
    uint8_t *lk = snapshot(m, NULL);
    CHECK(nnl_weights_unlock_passphrase(m, "correct horse battery stapl") == NNL_ERR_KEY);
    CHECK_MSG(errmsg_has("wrong passphrase"), "message: %s", nnl_errmsg());
    CHECK(same_floats(m, lk) && nnl_weights_locked(m));
    uint8_t key[32];
    CHECK(nnl_weights_passphrase_key(m, pass, key) == NNL_OK);

    /* No secret in the file: not the passphrase, not the derived key (raw or hex). */
    size_t n;
    uint8_t *file = nnl_test_read(path, &n);
    char hex[65];
    sodium_bin2hex(hex, sizeof hex, key, 32);
    CHECK(file && !contains(file, n, pass, strlen(pass)));
    CHECK(file && !contains(file, n, key, 32) && !contains(file, n, hex, 64) && !contains(file, n, hex, 16));
    free(file);

    CHECK(nnl_weights_unlock_passphrase(m, pass) == NNL_OK);
    CHECK(same_floats(m, plain));
    CHECK(nnl_model_meta_get(m, "lock.weights.kdf_salt") == NULL);
    CHECK(nnl_weights_unlock_passphrase(m, pass) == NNL_ERR_ARG);
    nnl_model_free(m);
    /* The derived key opens it like a key file would. */
    CHECK(nnl_model_load(&m, path) == NNL_OK);
    if (m) {
        CHECK(nnl_weights_unlock(m, key, 32) == NNL_OK);
        CHECK(same_floats(m, plain));
        nnl_model_free(m);
    }
    nnl_wl_wipe(key, sizeof key);
    free(plain); free(lk);
}

static void test_no_key_material(void) {
    nnl_model *m = make_model(15);
    if (!m) return;
    CHECK(nnl_weights_lock(m, K256, 32) == NNL_OK);
    const char *path = tmp_path("nokey.nnl");
    CHECK(nnl_model_save(m, path) == NNL_OK);
    nnl_model_free(m);
    size_t n;
    uint8_t *file = nnl_test_read(path, &n);
    char lo[65], up[65];
    sodium_bin2hex(lo, sizeof lo, K256, 32);
    for (int i = 0; i < 64; i++) up[i] = (char)(lo[i] >= 'a' ? lo[i] - 32 : lo[i]);
    up[64] = 0;
    CHECK(file != NULL);
    if (file) {
        CHECK(!contains(file, n, lo, 64) && !contains(file, n, up, 64));
        CHECK(!contains(file, n, lo, 16) && !contains(file, n, lo + 48, 16)); /* no part of it either */
        CHECK(!contains(file, n, K256, 32) && !contains(file, n, K256 + 16, 16));
    }
    free(file);
}

/* Edits the file at path: the first occurrence of `what` gets byte `off` set to c. */
static int patch(const char *src, const char *dst, const char *what, size_t off, char c) {
    size_t n;
    uint8_t *b = nnl_test_read(src, &n);
    if (!b) return 0;
    size_t k = strlen(what);
    for (size_t i = 0; i + k <= n; i++)
        if (!memcmp(b + i, what, k)) {
            b[i + off] = (uint8_t)c;
            write_all(dst, b, n);
            free(b);
            return 1;
        }
    free(b);
    return 0;
}

static void test_tampered(void) {
    nnl_model *m = make_model(16);
    if (!m) return;
    uint8_t *plain = snapshot(m, NULL);
    CHECK(nnl_weights_lock(m, K256, 32) == NNL_OK);
    const char *path = tmp_path("tamper.nnl"), *bad = tmp_path("tamper-bad.nnl");
    char kcv[32], mac[40];
    snprintf(kcv, sizeof kcv, "%s", nnl_model_meta_get(m, "lock.weights.kcv"));
    snprintf(mac, sizeof mac, "%s", nnl_model_meta_get(m, "lock.weights.mac"));
    CHECK(nnl_model_save(m, path) == NNL_OK);
    nnl_model_free(m);
    nnl_model *t = NULL;

    /* Key check value no longer hex: a damaged file, said so. */
    CHECK(patch(path, bad, kcv, 0, 'X'));
    CHECK(nnl_model_load(&t, bad) == NNL_OK);
    if (t) {
        uint8_t *lk = snapshot(t, NULL);
        CHECK(nnl_weights_unlock(t, K256, 32) == NNL_ERR_FORMAT);
        CHECK_MSG(errmsg_has("lock.weights.kcv"), "message: %s", nnl_errmsg());
        CHECK(same_floats(t, lk) && nnl_weights_locked(t));
        free(lk);
        nnl_model_free(t);
    }
    /* Another hex digit: indistinguishable from a wrong key (documented). */
    CHECK(patch(path, bad, kcv, 0, kcv[0] == 'a' ? 'b' : 'a'));
    CHECK(nnl_model_load(&t, bad) == NNL_OK);
    if (t) {
        CHECK(nnl_weights_unlock(t, K256, 32) == NNL_ERR_KEY);
        nnl_model_free(t);
    }
    /* A changed weight: the right key, but the integrity check fails; nothing decrypted. */
    {
        size_t n;
        uint8_t *b = nnl_test_read(path, &n);
        b[n - 3] ^= 0x40;
        write_all(bad, b, n);
        free(b);
        CHECK(nnl_model_load(&t, bad) == NNL_OK);
        if (t) {
            uint8_t *lk = snapshot(t, NULL);
            CHECK(nnl_weights_unlock(t, K256, 32) == NNL_ERR_FORMAT);
            CHECK_MSG(errmsg_has("integrity"), "message: %s", nnl_errmsg());
            CHECK(same_floats(t, lk));
            /* The experiment path does not look: it decrypts anyway. */
            CHECK(nnl_weights_unlock_unchecked(t, K256, 32) == NNL_OK);
            free(lk);
            nnl_model_free(t);
        }
    }
    /* Integrity tag edited. */
    CHECK(patch(path, bad, mac, 5, mac[5] == '0' ? '1' : '0'));
    CHECK(nnl_model_load(&t, bad) == NNL_OK);
    if (t) { CHECK(nnl_weights_unlock(t, K256, 32) == NNL_ERR_FORMAT); nnl_model_free(t); }
    /* Unknown scheme, renamed entry, wrong parameter count. */
    CHECK(patch(path, bad, "deep-lock-aes-sbox-v1", 20, '9'));
    CHECK(nnl_model_load(&t, bad) == NNL_OK);
    if (t) {
        CHECK(nnl_weights_locked(t));
        CHECK(nnl_weights_unlock(t, K256, 32) == NNL_ERR_UNSUPPORTED);
        CHECK_MSG(errmsg_has("deep-lock-aes-sbox-v9"), "message: %s", nnl_errmsg());
        nnl_model_free(t);
    }
    CHECK(patch(path, bad, "lock.weights.scheme", 13, 'S'));
    CHECK(nnl_model_load(&t, bad) == NNL_OK);
    if (t) {
        CHECK_MSG(nnl_weights_locked(t), "a model with a damaged lock record must still count as locked");
        CHECK(nnl_weights_unlock(t, K256, 32) == NNL_ERR_FORMAT);
        CHECK_MSG(errmsg_has("lock.weights.Scheme"), "message: %s", nnl_errmsg());
        nnl_model_free(t);
    }
    {
        char want[64];
        snprintf(want, sizeof want, "\"lock.weights.params\":");
        size_t n;
        uint8_t *b = nnl_test_read(path, &n);
        int found = 0;
        for (size_t i = 0; b && i + strlen(want) < n && !found; i++)
            if (!memcmp(b + i, want, strlen(want))) {
                size_t j = i + strlen(want);
                while (b[j] == ' ' || b[j] == '"') j++;
                b[j] = b[j] == '9' ? '8' : (uint8_t)(b[j] + 1);
                found = 1;
            }
        CHECK(found);
        if (found) write_all(bad, b, n);
        free(b);
        CHECK(nnl_model_load(&t, bad) == NNL_OK);
        if (t) {
            CHECK(nnl_weights_unlock(t, K256, 32) == NNL_ERR_FORMAT);
            CHECK_MSG(errmsg_has("parameters"), "message: %s", nnl_errmsg());
            nnl_model_free(t);
        }
    }
    /* Truncated: the container refuses it before any key is tried. */
    {
        size_t n;
        uint8_t *b = nnl_test_read(path, &n);
        write_all(bad, b, n - 100);
        free(b);
        t = NULL;
        int st = nnl_model_load(&t, bad);
        CHECK(st == NNL_ERR_FORMAT && t == NULL);
        CHECK(*nnl_errmsg() != 0);
    }
    /* The untouched file still opens. */
    CHECK(nnl_model_load(&t, path) == NNL_OK);
    if (t) {
        CHECK(nnl_weights_unlock(t, K256, 32) == NNL_OK);
        CHECK(same_floats(t, plain));
        nnl_model_free(t);
    }
    free(plain);
}

static void test_key_files(void) {
    const char *k = tmp_path("gen.key");
    CHECK(nnl_weights_key_generate(k, 0) == NNL_OK);
    struct stat sb;
    CHECK(stat(k, &sb) == 0 && (sb.st_mode & 0777) == 0600);
    uint8_t key[NNL_WEIGHTS_KEY_MAX], again[NNL_WEIGHTS_KEY_MAX];
    size_t len = 0, len2 = 0;
    CHECK(nnl_weights_key_read(k, key, &len) == NNL_OK && len == 32);
    CHECK(nnl_weights_key_generate(k, 0) == NNL_ERR_IO);
    CHECK_MSG(errmsg_has("exists; not overwriting"), "message: %s", nnl_errmsg());
    CHECK(nnl_weights_key_read(k, again, &len2) == NNL_OK && len2 == 32 && !memcmp(key, again, 32));
    const char *k2 = tmp_path("gen2.key");
    CHECK(nnl_weights_key_generate(k2, 0) == NNL_OK);
    CHECK(nnl_weights_key_read(k2, again, &len2) == NNL_OK && memcmp(key, again, 32) != 0);
    const char *bad = tmp_path("bad.key");
    write_all(bad, (const uint8_t *)"0011", 4);
    CHECK(nnl_weights_key_read(bad, key, &len) == NNL_ERR_KEY);
    CHECK(nnl_weights_key_read(tmp_path("missing.key"), key, &len) == NNL_ERR_IO);
    CHECK(nnl_weights_key_generate("", 0) == NNL_ERR_ARG);
}

/* ---------------------------------------------------------------- the probe */

/*
 * The known-plaintext probe on a model whose weights look trained (Gaussian, sd 0.05;
 * drawn here rather than trained so the test does not depend on the trainer): from the
 * locked file alone it must find the 256-bit key. docs/deep-lock.md states this.
 */
static void test_probe(void) {
    nnl_model *m = NULL;
    CHECK(nnl_model_create(&m, "dense64,relu,dense", 1, 16, 16, 10) == NNL_OK);
    if (!m) return;
    nnl_rng r = {99};
    for (int t = 0; t < nnl_model_tensor_count(m); t++) {
        size_t c;
        float *p = nnl_model_tensor(m, t, NULL, &c);
        for (size_t i = 0; i < c; i++) p[i] = 0.05f * nnl_rng_normal(&r);
    }
    static const uint8_t key[32] = {0x9e, 0x37, 0x79, 0xb9, 0x7f, 0x4a, 0x7c, 0x15, 0xf3, 0x9c, 0xc0,
                                    0x60, 0x5c, 0xed, 0xc8, 0x34, 0x10, 0x82, 0x27, 0x6b, 0xf3, 0xa2,
                                    0x72, 0x04, 0xda, 0xe0, 0x5b, 0x6a, 0x11, 0x53, 0x8e, 0x5f};
    CHECK(nnl_weights_lock(m, key, 32) == NNL_OK);
    const char *path = tmp_path("probe.nnl");
    CHECK(nnl_model_save(m, path) == NNL_OK);
    nnl_model_free(m);
    CHECK(nnl_model_load(&m, path) == NNL_OK);
    if (!m) return;
    probe_result res;
    CHECK(deeplock_probe(m, PROBE_SECONDS, &res) == NNL_OK);
    CHECK_MSG(res.recovered && !memcmp(res.key, key, 32),
              "the probe did not recover the key (tries %d, hypotheses %ld)", res.tries, res.nodes);
    /* The attacker's repair: exactly the NaN, Inf and |w| > 1 floats become 0. */
    size_t want = 0, zeroed, total;
    for (int t = 0; t < nnl_model_tensor_count(m); t++) {
        size_t c;
        const float *p = nnl_model_tensor(m, t, NULL, &c);
        for (size_t i = 0; i < c; i++) {
            uint32_t u;
            memcpy(&u, p + i, 4);
            want += (u & 0x7fffffffu) > 0x3f800000u;
        }
    }
    zeroed = nnl_attack_sanitize(m, &total);
    CHECK(zeroed == want && total == stored_floats(m) && zeroed > total / 3);
    nnl_model_free(m);
}

int main(void) {
    test_roundtrip();
    test_stream_order();
    test_fixed_vector();
    test_errors();
    test_passphrase();
    test_no_key_material();
    test_tampered();
    test_key_files();
    test_probe();
    return nnl_test_finish("test_weights_model");
}
