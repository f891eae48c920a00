/*
 * The Deep-Lock report of `nnlock eval --wrong-keys`: what the right key, no key, random
 * wrong keys and keys one bit off give on a test set.
 *
 * Every trial starts from the file's locked bytes: the lock record is restored and the
 * trial key applied with nnl_weights_unlock_unchecked, exactly what an attacker holding
 * the file and guessing a key would run. The test set is normalised once (normalisation
 * is not locked), so a trial costs one unlock and one forward pass.
 */
#include "weights_report.h"
#include "lock/weightlock.h"
#include "nn/model.h"

#include <jansson.h>
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define WRONG_KEYS 100
#define ONE_BIT_KEYS 32
#define WRONG_KEY_SEED 0x646565706c6f636bULL /* "deeplock" */

typedef struct trial {
    double acc;        /* correct / n, a NaN output row counting as wrong */
    double repaired;   /* the same after zeroing every weight that is NaN, Inf or |w| > 1 */
    double nonfinite;  /* fraction of stored floats that are NaN or Inf */
    double nan_rows;   /* fraction of test images whose outputs hold a NaN */
} trial;

typedef struct ctx {
    const char *cmd;
    nnl_model *m;
    size_t nfloat;
    uint8_t *locked;   /* the file's locked bytes, all tensors concatenated */
    int nmeta;         /* the lock record: lock.weights.* entries */
    char **mkeys, **mvals;
    const nnl_dataset *ds;
    float *x, *logits;
} ctx;

static void copy_tensors(nnl_model *m, uint8_t *buf, int to_model) {
    size_t off = 0;
    for (int t = 0; t < nnl_model_tensor_count(m); t++) {
        size_t c = 0;
        float *p = nnl_model_tensor(m, t, NULL, &c);
        /* memcpy, not float assignment: locked values include signalling NaNs. */
        if (to_model) memcpy(p, buf + off, c * sizeof(float));
        else memcpy(buf + off, p, c * sizeof(float));
        off += c * sizeof(float);
    }
}

static int restore_locked(ctx *c) {
    copy_tensors(c->m, c->locked, 1);
    for (int i = 0; i < c->nmeta; i++) {
        int st = nnl_model_meta_set(c->m, c->mkeys[i], c->mvals[i]);
        if (st) return cli_lib_fail(c->cmd, st);
    }
    return 0;
}

static double nonfinite_fraction(nnl_model *m, size_t total) {
    size_t bad = 0;
    for (int t = 0; t < nnl_model_tensor_count(m); t++) {
        size_t n = 0;
        const uint8_t *b = (const uint8_t *)nnl_model_tensor(m, t, NULL, &n);
        /* On the bits: exponent all ones is NaN or Inf. No float ever gets loaded. */
        for (size_t i = 0; i < n; i++) {
            uint32_t u;
            memcpy(&u, b + 4 * i, 4);
            bad += (u & 0x7f800000u) == 0x7f800000u;
        }
    }
    return total ? (double)bad / (double)total : 0.0;
}

/* Runs the model as it is now. A row with a NaN has no meaningful arg-max: it counts as
 * wrong, rather than as class 0, which a plain `>` scan would return. */
static int run_trial(ctx *c, trial *r) {
    const nnl_dataset *ds = c->ds;
    int k = nnl_model_nclass(c->m);
    int st = nnl_model_logits(c->m, c->x, ds->n, c->logits);
    if (st) return cli_lib_fail(c->cmd, st);
    int64_t correct = 0, nanrows = 0;
    for (int64_t i = 0; i < ds->n; i++) {
        const float *z = c->logits + (size_t)i * k;
        int best = -1;
        for (int j = 0; j < k; j++) {
            if (isnan(z[j])) { best = -1; nanrows++; break; }
            if (best < 0 || z[j] > z[best]) best = j;
        }
        correct += best >= 0 && best == ds->labels[i];
    }
    r->acc = (double)correct / (double)ds->n;
    r->nan_rows = (double)nanrows / (double)ds->n;
    r->nonfinite = nonfinite_fraction(c->m, c->nfloat);
    return 0;
}

/* Runs the model as it is, then repaired (which changes it). */
static int run_both(ctx *c, trial *r) {
    if (run_trial(c, r)) return 1;
    double acc = r->acc, nanrows = r->nan_rows, nonfinite = r->nonfinite;
    nnl_attack_sanitize(c->m, NULL);
    if (run_trial(c, r)) return 1;
    r->repaired = r->acc;
    r->acc = acc; r->nan_rows = nanrows; r->nonfinite = nonfinite;
    return 0;
}

static int try_key(ctx *c, const uint8_t *key, size_t len, trial *r) {
    if (restore_locked(c)) return 1;
    int st = nnl_weights_unlock_unchecked(c->m, key, len);
    if (st) return cli_lib_fail(c->cmd, st);
    return run_both(c, r);
}

typedef struct summary { double mean, max, min, nonfinite, nan_rows, rmean, rmax; } summary;

static summary summarise(const trial *t, int n) {
    summary s = {0, 0, 1, 0, 0, 0, 0};
    for (int i = 0; i < n; i++) {
        s.mean += t[i].acc;
        s.rmean += t[i].repaired;
        s.nonfinite += t[i].nonfinite;
        s.nan_rows += t[i].nan_rows;
        if (t[i].repaired > s.rmax) s.rmax = t[i].repaired;
        if (t[i].acc > s.max) s.max = t[i].acc;
        if (t[i].acc < s.min) s.min = t[i].acc;
    }
    s.mean /= n; s.rmean /= n; s.nonfinite /= n; s.nan_rows /= n;
    return s;
}

/* Spread over the whole key and over every bit position within a byte. */
static int one_bit_position(int i, size_t keylen) {
    int stride = (int)(8 * keylen) / ONE_BIT_KEYS;
    return i * stride + i % stride;
}

static json_t *summary_json(summary s, int n) {
    return json_pack("{s:i, s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "keys", n, "mean_accuracy", s.mean, "max_accuracy",
                     s.max, "min_accuracy", s.min, "nonfinite_fraction", s.nonfinite, "nan_output_fraction",
                     s.nan_rows, "repaired_mean_accuracy", s.rmean, "repaired_max_accuracy", s.rmax);
}

int cli_weights_report(const char *cmd, const char *model_path, const cli_weights_opts *w,
                       const nnl_dataset *test, int json) {
    double t0 = cli_now();
    ctx c = {cmd, NULL, 0, NULL, 0, NULL, NULL, test, NULL, NULL};
    uint8_t key[NNL_WEIGHTS_KEY_MAX], wk[NNL_WEIGHTS_KEY_MAX];
    size_t keylen = 0;
    trial right, asis, wrong[WRONG_KEYS], onebit[ONE_BIT_KEYS];
    int bitpos[ONE_BIT_KEYS];
    int rc = 1, st;
    if (!w || (!w->key_file && !w->passphrase_file))
        return cli_fail(cmd, "--wrong-keys compares against the right key: give --weights-key FILE or "
                        "--weights-passphrase-file FILE");
    if ((st = nnl_model_load(&c.m, model_path))) return cli_lib_fail(cmd, st);
    if (!nnl_weights_locked(c.m)) {
        cli_fail(cmd, "%s is not weight-locked: --wrong-keys needs a model locked with lock-weights", model_path);
        goto done;
    }
    int mc, mh, mw, k = nnl_model_nclass(c.m);
    nnl_model_input_shape(c.m, &mc, &mh, &mw);
    if (test->c != mc || test->h != mh || test->w != mw || test->nclass > k || test->n < 1) {
        cli_fail(cmd, "the data set has %dx%dx%d images and %d classes but the model takes %dx%dx%d and has %d",
                 test->c, test->h, test->w, test->nclass, mc, mh, mw, k);
        goto done;
    }
    if (cli_weights_key(cmd, model_path, c.m, w, key, &keylen)) goto done;

    for (int t = 0; t < nnl_model_tensor_count(c.m); t++) {
        size_t n = 0;
        nnl_model_tensor(c.m, t, NULL, &n);
        c.nfloat += n;
    }
    size_t in = (size_t)mc * mh * mw;
    c.locked = malloc(c.nfloat * sizeof(float) + 1);
    c.x = malloc((size_t)test->n * in * sizeof(float));
    c.logits = malloc((size_t)test->n * k * sizeof(float));
    c.mkeys = calloc(NNL_MAX_META, sizeof *c.mkeys);
    c.mvals = calloc(NNL_MAX_META, sizeof *c.mvals);
    if (!c.locked || !c.x || !c.logits || !c.mkeys || !c.mvals) { cli_fail(cmd, "out of memory"); goto done; }
    copy_tensors(c.m, c.locked, 0);
    for (int i = 0; i < nnl_model_meta_count(c.m); i++) {
        const char *mk = nnl_model_meta_key(c.m, i);
        if (strncmp(mk, NNL_WL_META_PREFIX, strlen(NNL_WL_META_PREFIX))) continue;
        c.mkeys[c.nmeta] = strdup(mk);
        c.mvals[c.nmeta] = strdup(nnl_model_meta_get(c.m, mk));
        if (!c.mkeys[c.nmeta++] || !c.mvals[c.nmeta - 1]) { cli_fail(cmd, "out of memory"); goto done; }
    }
    nnl_model_normalize(c.m, test->pixels, test->n, c.x);
    char scheme[64], bits[8];
    snprintf(scheme, sizeof scheme, "%s", nnl_model_meta_get(c.m, NNL_WL_META_PREFIX "scheme") ?
             nnl_model_meta_get(c.m, NNL_WL_META_PREFIX "scheme") : "?");
    snprintf(bits, sizeof bits, "%zu", 8 * keylen);

    /* The locked model as it is: what a thief running the file gets. */
    if (run_both(&c, &asis) || restore_locked(&c)) goto done;

    /* The right key, checked (wrong key or damaged file refused here). Re-locking the
     * result must give the file's bytes back: the lock is a bijection, so the decrypted
     * weights are then exactly the ones that were locked. */
    if ((st = nnl_weights_unlock(c.m, key, keylen))) { cli_fail(cmd, "%s: %s", model_path, nnl_errmsg()); goto done; }
    if (run_trial(&c, &right)) goto done;
    uint8_t digest[16];
    char digest_hex[33];
    crypto_generichash(digest, sizeof digest, (const unsigned char *)c.logits,
                       (size_t)test->n * k * sizeof(float), NULL, 0);
    sodium_bin2hex(digest_hex, sizeof digest_hex, digest, sizeof digest);
    if ((st = nnl_weights_lock(c.m, key, keylen))) { cli_lib_fail(cmd, st); goto done; }
    int identical = 1;
    {
        size_t off = 0;
        for (int t = 0; t < nnl_model_tensor_count(c.m) && identical; t++) {
            size_t n = 0;
            const float *p = nnl_model_tensor(c.m, t, NULL, &n);
            identical = !memcmp(p, c.locked + off, n * sizeof(float));
            off += n * sizeof(float);
        }
    }

    nnl_rng rng = {WRONG_KEY_SEED};
    for (int i = 0; i < WRONG_KEYS; i++) {
        do {
            for (size_t j = 0; j < keylen; j++) wk[j] = (uint8_t)nnl_rng_next(&rng);
        } while (!memcmp(wk, key, keylen));
        if (try_key(&c, wk, keylen, &wrong[i])) goto done;
    }
    for (int i = 0; i < ONE_BIT_KEYS; i++) {
        bitpos[i] = one_bit_position(i, keylen);
        memcpy(wk, key, keylen);
        wk[bitpos[i] / 8] ^= (uint8_t)(0x80 >> (bitpos[i] % 8)); /* bit 0 = top bit of key byte 0 */
        if (try_key(&c, wk, keylen, &onebit[i])) goto done;
    }
    summary sw = summarise(wrong, WRONG_KEYS), sb = summarise(onebit, ONE_BIT_KEYS);
    double secs = cli_now() - t0;

    if (json) {
        /* Per key: a flip in some key words (e.g. w[0], w[4] of AES-256) leaves the low
         * byte of about 44% of all later schedule words unchanged, which a mean hides. */
        json_t *bp = json_array(), *pa = json_array(), *pr = json_array(), *pn = json_array();
        for (int i = 0; i < ONE_BIT_KEYS; i++) {
            json_array_append_new(bp, json_integer(bitpos[i]));
            json_array_append_new(pa, json_real(onebit[i].acc));
            json_array_append_new(pr, json_real(onebit[i].repaired));
            json_array_append_new(pn, json_real(onebit[i].nonfinite));
        }
        json_t *r = json_pack(
            "{s:s, s:s, s:i, s:I, s:I, s:f, s:{s:f, s:b, s:s}, s:{s:f, s:f, s:f, s:f}, s:o, s:o, s:f}",
            "model", model_path, "scheme", scheme, "key_bits", (int)(8 * keylen), "parameters",
            (json_int_t)c.nfloat, "images", (json_int_t)test->n, "chance", 1.0 / test->nclass,
            "right_key", "accuracy", right.acc, "weights_bit_identical", identical, "logits_blake2b_128", digest_hex,
            "locked_as_is", "accuracy", asis.acc, "nonfinite_fraction", asis.nonfinite, "nan_output_fraction",
            asis.nan_rows, "repaired_accuracy", asis.repaired, "wrong_keys", summary_json(sw, WRONG_KEYS), "one_bit_off", summary_json(sb, ONE_BIT_KEYS),
            "seconds", secs);
        json_t *ob = json_object_get(r, "one_bit_off");
        json_object_set_new(ob, "bit_positions", bp);
        json_object_set_new(ob, "accuracy_per_key", pa);
        json_object_set_new(ob, "repaired_accuracy_per_key", pr);
        json_object_set_new(ob, "nonfinite_fraction_per_key", pn);
        if (cli_json_emit(cmd, r, 0, NULL)) goto done;
    } else {
        printf("weight lock of %s: %s, %s-bit key, %zu parameters; %lld test images, chance %.2f%%\n", model_path,
               scheme, bits, c.nfloat, (long long)test->n, 100.0 / test->nclass);
        printf("  right key              accuracy %6.2f%%   weights bit-identical to the locked original: %s\n",
               100.0 * right.acc, identical ? "yes" : "NO");
        printf("                         logits BLAKE2b-128 %s\n", digest_hex);
        printf("  locked, run as is      accuracy %6.2f%%   NaN/Inf weights %.3f%%, NaN outputs %.1f%% of images\n",
               100.0 * asis.acc, 100.0 * asis.nonfinite, 100.0 * asis.nan_rows);
        printf("  %3d random wrong keys  accuracy mean %6.2f%%, max %6.2f%%, min %6.2f%%   NaN/Inf weights %.3f%%, "
               "NaN outputs %.1f%%\n", WRONG_KEYS, 100.0 * sw.mean, 100.0 * sw.max, 100.0 * sw.min,
               100.0 * sw.nonfinite, 100.0 * sw.nan_rows);
        printf("  %3d keys one bit off   accuracy mean %6.2f%%, max %6.2f%%, min %6.2f%%   NaN/Inf weights %.3f%%, "
               "NaN outputs %.1f%%\n", ONE_BIT_KEYS, 100.0 * sb.mean, 100.0 * sb.max, 100.0 * sb.min,
               100.0 * sb.nonfinite, 100.0 * sb.nan_rows);
        printf("  repaired (NaN, Inf and |w| > 1 weights zeroed): locked %.2f%%; wrong keys mean %.2f%%, max %.2f%%; "
               "one bit off mean %.2f%%, max %.2f%%\n", 100.0 * asis.repaired, 100.0 * sw.rmean, 100.0 * sw.rmax,
               100.0 * sb.rmean, 100.0 * sb.rmax);
        printf("  (%.1f s; wrong keys from a fixed seed; a NaN output counts as a wrong prediction)\n", secs);
    }
    rc = identical ? 0 : cli_fail(cmd, "%s: re-locking the unlocked weights did not give the file's bytes", model_path);
done:
    nnl_wl_wipe(key, sizeof key);
    nnl_wl_wipe(wk, sizeof wk);
    for (int i = 0; i < c.nmeta; i++) { free(c.mkeys[i]); free(c.mvals[i]); }
    free(c.mkeys); free(c.mvals);
    free(c.locked); free(c.x); free(c.logits);
    nnl_model_free(c.m);
    return rc;
}
