/*
 * The gate lock (AuthNet: Cai, Xiang, Meng, Cao, Chen, arXiv 2405.15426; official code
 * Ruoxuan-Xu/AuthNet). A trained model's "gate" activation has channels that clean images
 * barely use; a secret input key (a mask M and an offset P, x' = x(1 - M) + P M on the
 * normalised image) is found by mask inversion to drive a few of them (the authentication
 * bits) to a large value, and the layers after the gate are fine-tuned, the head frozen, so
 * that keyed images get their true label and clean images a fixed random one.
 *
 * Where nnlock differs from the official code, and why:
 *  - the objective of the inversion compares batch means of the per-image channel means (the
 *    code sums them over the batch, which makes the target depend on the batch size). Like the
 *    code it takes the absolute difference of keyed and clean means towards the target: the
 *    target (10 x the largest mean) is out of reach of an offset clipped to +/-0.5, and the
 *    steps then drive the channels whichever way they can go, often down. Measured: the signed
 *    difference (keyed - clean -> target) moved the bits of LeNet-5 on MNIST by 0.02 in a
 *    whole epoch, where the absolute one gives a key that separates keyed from clean images;
 *  - the checkpoint is chosen on a held-out tenth of the training images (at most 5000), not
 *    on the test set, which then measures it honestly;
 *  - the head is frozen with its batch-norms in evaluation mode (the code leaves them in
 *    training mode, where their running statistics keep moving on the mixed images);
 *  - a clean image's random label is drawn once per image from the seed (the code draws it
 *    once too, with numpy's global generator).
 * docs/gate-lock.md gives the key file's layout.
 */
#define _GNU_SOURCE /* memmem, qsort_r */
#include "lock.h"
#include "../nn/model.h"

#include <jansson.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 4 channels of 256 x 256 values as JSON numbers: about 8 MB at most. */
#define GATE_KEY_MAX_FILE ((size_t)16 << 20)
#define GATE_MAX_SIDE 256

typedef struct gate_key {
    int c, h, w;
    float mean[NNL_MAX_CHANNELS], std[NNL_MAX_CHANNELS]; /* the model's normalisation */
    float *mask;             /* h x w, the blend weight M in [0, 1] */
    float *offset;           /* c x h x w, P in normalised units */
    int made;                /* 0: an empty key, learnt by lock_model */
    /* options and what the locking found (the bits are in the key, not in the model's record) */
    char gate[32];
    int nbits;
    int *bits;
    float gamma, target;
    int inv_epochs, invert_only;
} gate_key;

static int bad(const char *name, const char *what) { return nnl_fail(NNL_ERR_KEY, "key %s: %s", name, what); }

static void gate_free_key(void *key) {
    gate_key *k = key;
    if (!k) return;
    if (k->mask) sodium_memzero(k->mask, (size_t)k->h * k->w * sizeof(float));
    if (k->offset) sodium_memzero(k->offset, (size_t)k->c * k->h * k->w * sizeof(float));
    free(k->mask); free(k->offset); free(k->bits);
    sodium_memzero(k, sizeof *k);
    free(k);
}

static int alloc_key(gate_key **out, int c, int h, int w) {
    gate_key *k = calloc(1, sizeof *k);
    if (!k) return nnl_fail(NNL_ERR_NOMEM, "out of memory");
    k->c = c; k->h = h; k->w = w;
    k->mask = calloc((size_t)h * w, sizeof(float));
    k->offset = calloc((size_t)c * h * w, sizeof(float));
    if (!k->mask || !k->offset) { gate_free_key(k); return nnl_fail(NNL_ERR_NOMEM, "out of memory"); }
    for (int i = 0; i < NNL_MAX_CHANNELS; i++) { k->mean[i] = 0.0f; k->std[i] = 1.0f; }
    *out = k;
    return NNL_OK;
}

/* AuthNet's parametrisation of the mask: M = tanh(8 (m - 0.5)) / 2 + 0.5, m in [0, 0.5]. */
static float mask_of(float m) { return tanhf(8.0f * (m - 0.5f)) * 0.5f + 0.5f; }

/* ---------------------------------------------------------------- applying a key */

/* x' = x (1 - M) + P M on the normalised image, given back in the model's input units (it
 * normalises again). */
static void apply_key(const gate_key *k, const uint8_t *img, float *x) {
    size_t plane = (size_t)k->h * k->w;
    for (int ch = 0; ch < k->c; ch++) {
        float mu = k->mean[ch], sd = k->std[ch];
        const uint8_t *p = img + ch * plane;
        const float *P = k->offset + ch * plane;
        float *o = x + ch * plane;
        for (size_t j = 0; j < plane; j++) {
            float M = k->mask[j], xn = ((float)p[j] / 255.0f - mu) / sd;
            o[j] = (xn * (1.0f - M) + P[j] * M) * sd + mu;
        }
    }
}

static void keyed_float(void *user, const uint8_t *img, int c, int h, int w, int64_t index, float *x) {
    (void)c; (void)h; (void)w; (void)index;
    apply_key(user, img, x);
}

static void gate_authorized(const void *key, nnl_hooks *h) {
    *h = (nnl_hooks){.user = (void *)key, .to_float = keyed_float};
}

/* Fine-tuning sees every training image twice: images 0..n-1 clean with a fixed random label,
 * images n..2n-1 (the same ones) keyed with their true label. */
typedef struct gate_train {
    const gate_key *key;
    int64_t n;
    int nclass;
    uint64_t seed;
} gate_train;

static int train_sample(void *user, uint8_t *img, int c, int h, int w, int64_t index, int label, uint64_t seed,
                        float *soft) {
    (void)img; (void)c; (void)h; (void)w; (void)label; (void)seed; (void)soft;
    const gate_train *t = user;
    if (index >= t->n) return -1;
    return (int)(nnl_mix64(t->seed ^ (0x7a7e0000ULL + (uint64_t)index)) % (uint64_t)t->nclass);
}

static void train_float(void *user, const uint8_t *img, int c, int h, int w, int64_t index, float *x) {
    const gate_train *t = user;
    if (index >= t->n) { apply_key(t->key, img, x); return; }
    size_t n = (size_t)c * h * w;
    for (size_t j = 0; j < n; j++) x[j] = (float)img[j] / 255.0f;
}

/* ---------------------------------------------------------------- the key file */

static int gate_save(const void *key, const char *path, int overwrite) {
    const gate_key *k = key;
    if (!k->made)
        return nnl_fail(NNL_ERR_ARG, "a gate key is learnt from the model it locks: nnlock train --lock gate --init MODEL");
    json_t *o = json_pack("{s:s, s:i, s:i, s:i, s:i, s:s, s:f, s:f}", "type", "nnlock-gate", "version", 1, "channels", k->c,
                          "height", k->h, "width", k->w, "gate", k->gate, "gamma", (double)k->gamma, "target",
                          (double)k->target);
    if (!o) return nnl_fail(NNL_ERR_NOMEM, "out of memory");
    json_t *mean = json_array(), *std = json_array(), *bits = json_array(), *mask = json_array(), *off = json_array();
    for (int i = 0; i < k->c; i++) {
        json_array_append_new(mean, json_real(k->mean[i]));
        json_array_append_new(std, json_real(k->std[i]));
    }
    for (int i = 0; i < k->nbits; i++) json_array_append_new(bits, json_integer(k->bits[i]));
    for (size_t i = 0; i < (size_t)k->h * k->w; i++) json_array_append_new(mask, json_real(k->mask[i]));
    for (size_t i = 0; i < (size_t)k->c * k->h * k->w; i++) json_array_append_new(off, json_real(k->offset[i]));
    json_object_set_new(o, "norm_mean", mean);
    json_object_set_new(o, "norm_std", std);
    json_object_set_new(o, "bits", bits);
    json_object_set_new(o, "mask", mask);
    json_object_set_new(o, "offset", off);
    /* 9 significant digits give every float back exactly */
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    json_decref(o);
    if (!text) return nnl_fail(NNL_ERR_NOMEM, "out of memory");
    int st = nnl_write_file(path, text, strlen(text), NNL_WRITE_SECRET | (overwrite ? 0 : NNL_WRITE_NEW));
    sodium_memzero(text, strlen(text));
    free(text);
    return st;
}

static int floats_of(json_t *o, const char *field, size_t n, float *out, float lo, float hi, const char *name) {
    json_t *a = json_object_get(o, field);
    char msg[160];
    if (!json_is_array(a) || json_array_size(a) != n) {
        snprintf(msg, sizeof msg, "'%s' must be an array of %zu numbers", field, n);
        return bad(name, msg);
    }
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(a, i);
        double x = json_is_number(v) ? json_number_value(v) : NAN;
        if (!(x >= lo && x <= hi)) {
            snprintf(msg, sizeof msg, "'%s'[%zu] must be a number from %g to %g", field, i, (double)lo, (double)hi);
            return bad(name, msg);
        }
        out[i] = (float)x;
    }
    return NNL_OK;
}

static int gate_probe(const uint8_t *data, size_t n) {
    static const char tag[] = "\"nnlock-gate\"";
    return n >= sizeof tag - 1 && memmem(data, n, tag, sizeof tag - 1) != NULL;
}

static int gate_parse(void **key, const uint8_t *data, size_t size, const char *name) {
    if (!name) name = "gate key";
    if (size > GATE_KEY_MAX_FILE) return bad(name, "larger than any gate key");
    json_error_t err;
    json_t *o = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &err);
    if (!o) return nnl_fail(NNL_ERR_KEY, "key %s: not a gate key (JSON error at line %d: %s)", name, err.line, err.text);
    gate_key *k = NULL;
    int st = NNL_OK;
    const char *type = json_string_value(json_object_get(o, "type"));
    json_t *jc = json_object_get(o, "channels"), *jh = json_object_get(o, "height"), *jw = json_object_get(o, "width");
    if (!type || strcmp(type, "nnlock-gate")) { st = bad(name, "not a gate key (no \"type\": \"nnlock-gate\")"); goto done; }
    if (json_integer_value(json_object_get(o, "version")) != 1) { st = bad(name, "unknown version (this nnlock reads 1)"); goto done; }
    json_int_t c = json_integer_value(jc), h = json_integer_value(jh), w = json_integer_value(jw);
    if (!json_is_integer(jc) || !json_is_integer(jh) || !json_is_integer(jw) || c < 1 || c > NNL_MAX_CHANNELS || h < 1 ||
        w < 1 || h > GATE_MAX_SIDE || w > GATE_MAX_SIDE) {
        st = bad(name, "'channels' (1-4), 'height' and 'width' (1-256) must be integers in range");
        goto done;
    }
    if ((st = alloc_key(&k, (int)c, (int)h, (int)w))) goto done;
    const char *gate = json_string_value(json_object_get(o, "gate"));
    if (!gate || !*gate || strlen(gate) >= sizeof k->gate) { st = bad(name, "'gate' must name an activation (1-31 characters)"); goto done; }
    snprintf(k->gate, sizeof k->gate, "%s", gate);
    json_t *bits = json_object_get(o, "bits");
    if (!json_is_array(bits) || json_array_size(bits) > 4096) {
        st = bad(name, "'bits' must be an array of at most 4096 channel numbers");
        goto done;
    }
    k->nbits = (int)json_array_size(bits);
    if (!(k->bits = malloc((size_t)(k->nbits + 1) * sizeof *k->bits))) { st = nnl_fail(NNL_ERR_NOMEM, "out of memory"); goto done; }
    for (int i = 0; i < k->nbits; i++) {
        json_t *v = json_array_get(bits, (size_t)i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 65535) {
            st = bad(name, "'bits' must hold channel numbers 0-65535");
            goto done;
        }
        k->bits[i] = (int)json_integer_value(v);
    }
    json_t *g = json_object_get(o, "gamma"), *t = json_object_get(o, "target");
    k->gamma = (float)json_number_value(g);
    k->target = (float)json_number_value(t);
    if (!json_is_number(g) || !json_is_number(t) || !isfinite(k->gamma) || !isfinite(k->target)) {
        st = bad(name, "'gamma' and 'target' must be numbers");
        goto done;
    }
    if ((st = floats_of(o, "norm_mean", (size_t)c, k->mean, -1e3f, 1e3f, name)) ||
        (st = floats_of(o, "norm_std", (size_t)c, k->std, 1e-6f, 1e3f, name)) ||
        (st = floats_of(o, "mask", (size_t)(h * w), k->mask, 0.0f, 1.0f, name)) ||
        (st = floats_of(o, "offset", (size_t)(c * h * w), k->offset, -1e3f, 1e3f, name)))
        goto done;
    k->made = 1;
done:
    json_decref(o);
    if (st) gate_free_key(k);
    else *key = k;
    return st;
}

static const nnl_lock_opt gate_opts[] = {
    {"gate", 1, NNL_LOCKOPT_NEW_KEY, "--gate NAME        the gate activation (@NAME in the architecture; default gate)"},
    {"bits", 1, NNL_LOCKOPT_NEW_KEY, "--bits N           authentication channels (default 30)"},
    {"gate-gamma", 1, NNL_LOCKOPT_NEW_KEY, "--gate-gamma G     their target: G x the gate's largest channel mean (default 10;\n"
                                           "                         AuthNet's gamma, --gamma being the step schedule's)"},
    {"inversion-epochs", 1, NNL_LOCKOPT_NEW_KEY, "--inversion-epochs N  passes of the mask inversion over the training images\n"
                                                 "                         (default 1, as AuthNet: a small data set needs more)"},
    {"invert-only", 0, NNL_LOCKOPT_NEW_KEY, "--invert-only      only learn a key by mask inversion (the model is written back\n"
                                            "                         unchanged): the adaptive attack, on a locked model"},
    {NULL, 0, 0, NULL}};

/* An empty key with the options: lock_model learns it from the model. */
static int gate_generate(void **key, int c, int h, int w, const nnl_lock_args *a) {
    long bits, inv;
    double gamma;
    const char *gate = nnl_lock_arg(a, "gate");
    int st;
    if ((st = nnl_lock_arg_int(a, "bits", 1, 4096, 30, &bits)) || (st = nnl_lock_arg_float(a, "gate-gamma", 0.01, 1e4, 10.0, &gamma)) ||
        (st = nnl_lock_arg_int(a, "inversion-epochs", 1, 1000, 1, &inv)))
        return st;
    if (gate && (!*gate || strlen(gate) > 31)) return nnl_fail(NNL_ERR_ARG, "--gate must name an activation (1-31 characters)");
    if (h > GATE_MAX_SIDE || w > GATE_MAX_SIDE) return nnl_fail(NNL_ERR_SHAPE, "gate keys are for images of at most 256x256");
    gate_key *k;
    if ((st = alloc_key(&k, c, h, w))) return st;
    snprintf(k->gate, sizeof k->gate, "%s", gate ? gate : "gate");
    k->nbits = (int)bits;
    k->gamma = (float)gamma;
    k->inv_epochs = (int)inv;
    k->invert_only = nnl_lock_arg(a, "invert-only") != NULL;
    *key = k;
    return NNL_OK;
}

static int gate_fits(const void *key, int c, int h, int w, const char *name) {
    const gate_key *k = key;
    if (k->c != c || k->h != h || k->w != w)
        return nnl_fail(NNL_ERR_SHAPE, "gate key %s is for %dx%dx%d images, the model takes %dx%dx%d", name ? name : "",
                        k->c, k->h, k->w, c, h, w);
    return NNL_OK;
}

static void gate_describe_key(const void *key, char *buf, size_t n) {
    const gate_key *k = key;
    double area = 0.0;
    for (size_t i = 0; i < (size_t)k->h * k->w; i++) area += k->mask[i];
    snprintf(buf, n, "gate key: a mask of %dx%d (mean weight %.3f) and an offset of %dx%dx%d floats for gate '%s', "
             "%d authentication channels", k->h, k->w, area / ((double)k->h * k->w), k->c, k->h, k->w, k->gate, k->nbits);
}

/* ---------------------------------------------------------------- the model's record */

static int gate_locks(const nnl_model *m) { return nnl_model_meta_get(m, "lock.gate.gate") != NULL; }

static void gate_describe(const nnl_model *m, char *buf, size_t n) {
    const char *g = nnl_model_meta_get(m, "lock.gate.gate"), *b = nnl_model_meta_get(m, "lock.gate.bits"),
               *o = nnl_model_meta_get(m, "lock.gate.original_accuracy");
    snprintf(buf, n, "gate lock (AuthNet): gate '%s', %s authentication channels; a keyed input is x(1-M) + P M%s%s",
             g ? g : "?", b ? b : "?", o ? "; the original model's test accuracy " : "", o ? o : "");
}

static void gate_label(const nnl_model *m, char *buf, size_t n) {
    const char *g = nnl_model_meta_get(m, "lock.gate.gate"), *b = nnl_model_meta_get(m, "lock.gate.bits");
    snprintf(buf, n, "%s, %s bits", g ? g : "?", b ? b : "?");
}

static void gate_forget(nnl_model *m) { nnl_model_meta_remove_prefix(m, "lock.gate."); }

/* ---------------------------------------------------------------- locking a model */

typedef struct gate_state {
    double original;         /* the original model's test accuracy, or -1 */
    double val_auth, val_unauth;
    int chosen_epoch;
} gate_state;

static int cmp_mean(const void *a, const void *b, void *ctx) {
    const double *m = ctx;
    double x = m[*(const int *)a], y = m[*(const int *)b];
    return x < y ? -1 : x > y ? 1 : *(const int *)a - *(const int *)b;
}

/* Steps 2: the authentication channels and their target. */
static int choose_bits(gate_key *k, nnl_model *m, const nnl_dataset *train, int a) {
    nnl_shape s = nnl_model_act_shape(m, a);
    double *mean = malloc((size_t)s.c * sizeof *mean);
    int *order = malloc((size_t)s.c * sizeof *order), st;
    if (!mean || !order) { free(mean); free(order); return nnl_fail(NNL_ERR_NOMEM, "out of memory"); }
    if ((st = nnl_model_channel_means(m, train, NULL, k->gate, 0, mean))) goto done;
    double top = mean[0];
    for (int i = 0; i < s.c; i++) { order[i] = i; if (mean[i] > top) top = mean[i]; }
    qsort_r(order, (size_t)s.c, sizeof *order, cmp_mean, mean);
    int first = 0, live;
    while (first < s.c && !(mean[order[first]] > 0.0)) first++;
    live = s.c - first;
    if (live < k->nbits) {
        st = nnl_fail(NNL_ERR_ARG, "gate '%s' has %d channel%s with a positive mean activation, fewer than the %d "
                      "authentication channels asked for (--bits)", k->gate, live, live == 1 ? "" : "s", k->nbits);
        goto done;
    }
    if (!(k->bits = malloc((size_t)k->nbits * sizeof *k->bits))) { st = nnl_fail(NNL_ERR_NOMEM, "out of memory"); goto done; }
    for (int i = 0; i < k->nbits; i++) k->bits[i] = order[first + i];
    k->target = (float)(k->gamma * top);
done:
    free(mean); free(order);
    return st;
}

/* Step 3: mask inversion, one epoch over the training images in order, AuthNet's sign steps. */
static int invert_mask(gate_key *k, nnl_model *m, const nnl_dataset *train, int a, int batch) {
    nnl_shape s = nnl_model_act_shape(m, a);
    size_t in = nnl_shape_size(m->input), plane = (size_t)k->h * k->w, gp = (size_t)s.h * s.w;
    int bs = batch, st;
    if ((st = nnl_model_prepare(m, bs))) return st;
    float *mp = calloc(plane, sizeof *mp), *target = calloc((size_t)s.c, sizeof *target);
    float *xc = malloc((size_t)bs * in * sizeof *xc), *dP = malloc(in * sizeof *dP), *dm = malloc(plane * sizeof *dm);
    double *orig = malloc((size_t)s.c * sizeof *orig), *val = malloc((size_t)s.c * sizeof *val);
    if (!mp || !target || !xc || !dP || !dm || !orig || !val) { st = nnl_fail(NNL_ERR_NOMEM, "out of memory"); goto done; }
    for (int i = 0; i < k->nbits; i++) if (k->bits[i] < s.c) target[k->bits[i]] = k->target;
    for (size_t j = 0; j < plane; j++) { mp[j] = 0.0f; k->mask[j] = mask_of(0.0f); }
    memset(k->offset, 0, in * sizeof(float));
    nnl_model_set_input_grad(m, 1);
    for (int64_t step = 0; step < (int64_t)k->inv_epochs * ((train->n + bs - 1) / bs); step++) {
        int64_t i0 = step % ((train->n + bs - 1) / bs) * bs;
        int n = (int)(train->n - i0 < bs ? train->n - i0 : bs);
        nnl_pass P = nnl_model_pass(m, n, 0, 0, 0, 0.0f);
        nnl_model_normalize(m, train->pixels + (size_t)i0 * in, n, xc);
        /* the clean images' channel means */
        memcpy(m->acts[0], xc, (size_t)n * in * sizeof *xc);
        nnl_model_forward_range(m, &P, 0, a);
        for (int c = 0; c < s.c; c++) orig[c] = 0.0;
        nnl_act_add_channel_means(m->acts[a], n, s, n, orig);
        /* keyed: x (1 - M) + P M */
        for (int j = 0; j < n; j++)
            for (int c = 0; c < k->c; c++)
                for (size_t q = 0; q < plane; q++) {
                    size_t e = (size_t)j * in + c * plane + q;
                    float M = k->mask[q];
                    m->acts[0][e] = xc[e] * (1.0f - M) + k->offset[c * plane + q] * M;
                }
        nnl_model_forward_range(m, &P, 0, a);
        for (int c = 0; c < s.c; c++) val[c] = 0.0;
        nnl_act_add_channel_means(m->acts[a], n, s, n, val);
        /* loss = mean over channels of (|val - orig| - target)^2; its gradient at every position
         * of the gate activation */
        float *dg = m->dacts[a];
        for (int c = 0; c < s.c; c++) {
            double d = val[c] - orig[c], g = 2.0 / s.c * (fabs(d) - target[c]) * (d > 0 ? 1.0 : d < 0 ? -1.0 : 0.0);
            float gq = (float)(g / (double)gp / n);
            for (int j = 0; j < n; j++) {
                float *p = dg + ((size_t)j * s.c + c) * gp;
                for (size_t q = 0; q < gp; q++) p[q] = gq;
            }
        }
        nnl_model_backward_range(m, &P, 0, a);
        const float *dx = m->dacts[0];
        memset(dP, 0, in * sizeof *dP);
        memset(dm, 0, plane * sizeof *dm);
        for (int j = 0; j < n; j++)
            for (int c = 0; c < k->c; c++)
                for (size_t q = 0; q < plane; q++) {
                    size_t e = (size_t)j * in + c * plane + q;
                    float M = k->mask[q];
                    dP[c * plane + q] += dx[e] * M;
                    dm[q] += dx[e] * (k->offset[c * plane + q] - xc[e]);
                }
        for (size_t e = 0; e < in; e++) {
            float v = k->offset[e] - 0.03f * (float)((dP[e] > 0) - (dP[e] < 0));
            k->offset[e] = v < -0.5f ? -0.5f : v > 0.5f ? 0.5f : v;
        }
        for (size_t q = 0; q < plane; q++) {
            /* dM/dm = 4 (1 - tanh^2(8 (m - 0.5))) > 0: the sign of dm is that of dL/dm */
            float v = mp[q] - 0.1f * (float)((dm[q] > 0) - (dm[q] < 0));
            mp[q] = v < 0.0f ? 0.0f : v > 0.5f ? 0.5f : v;
            k->mask[q] = mask_of(mp[q]);
        }
    }
done:
    nnl_model_set_input_grad(m, 0);
    free(mp); free(target); free(xc); free(dP); free(dm); free(orig); free(val);
    return st;
}

/* Step 4's checkpoint: the lowest unauthorized accuracy on the held-out images among the epochs
 * whose authorized accuracy is within one point of the best so far. A snapshot is taken when an
 * epoch becomes the choice; when a later epoch raises the best beyond the choice's reach, that
 * epoch becomes the choice (the earlier eligible ones are gone: an online version of the rule). */
typedef struct select_ctx {
    const nnl_train_opts *base;
    const gate_key *key;
    const nnl_dataset *val;
    float *params, *state;   /* the chosen epoch's */
    double best_auth, auth, unauth;
    int chosen;
} select_ctx;

static int on_epoch(nnl_model *m, int epoch, void *user) {
    select_ctx *s = user;
    nnl_hooks keyed;
    gate_authorized(s->key, &keyed);
    nnl_eval ev;
    int st;
    if ((st = nnl_evaluate(m, s->val, &keyed, 500, &ev))) return st;
    double auth = nnl_eval_accuracy(&ev);
    nnl_eval_free(&ev);
    if ((st = nnl_evaluate(m, s->val, NULL, 500, &ev))) return st;
    double unauth = nnl_eval_accuracy(&ev);
    nnl_eval_free(&ev);
    if (auth > s->best_auth) s->best_auth = auth;
    int take = s->chosen == 0 || (auth >= s->best_auth - 0.01 && unauth < s->unauth) || s->auth < s->best_auth - 0.01;
    if (take) {
        memcpy(s->params, m->params, m->nparams * sizeof(float));
        memcpy(s->state, m->state, m->nstate * sizeof(float));
        s->chosen = epoch;
        s->auth = auth;
        s->unauth = unauth;
    }
    return s->base->epoch_end ? s->base->epoch_end(m, epoch, s->base->epoch_end_user) : NNL_OK;
}

static int gate_lock_model(void *key, nnl_model *m, const nnl_dataset *train, const nnl_dataset *test,
                           const nnl_lock_args *a, const nnl_train_opts *o, void **state) {
    (void)a;
    gate_key *k = key;
    gate_state *gs = calloc(1, sizeof *gs);
    if (!gs) return nnl_fail(NNL_ERR_NOMEM, "out of memory");
    gs->original = -1.0;
    *state = gs;
    int ga, st;
    if ((st = nnl_model_find_tap(m, k->gate, &ga))) return st;
    if (ga == 0 || ga >= m->nlayers) return nnl_fail(NNL_ERR_ARG, "the gate '%s' must lie inside the network", k->gate);
    if ((st = gate_fits(k, m->input.c, m->input.h, m->input.w, "being made"))) return st;
    for (int i = 0; i < k->c; i++) { k->mean[i] = m->mean[i]; k->std[i] = m->std[i]; }
    if (test && !k->invert_only) {
        nnl_eval ev;
        if ((st = nnl_evaluate(m, test, NULL, 500, &ev))) return st;
        gs->original = nnl_eval_accuracy(&ev);
        nnl_eval_free(&ev);
    }
    /* the held-out images that choose the checkpoint, and the rest to learn from */
    nnl_dataset val = {0}, rest = {0}, mix = {0};
    int64_t nval = train->n / 10 < 5000 ? train->n / 10 : 5000;
    if (nval < 1) return nnl_fail(NNL_ERR_ARG, "the gate lock needs at least 10 training images");
    if ((st = nnl_dataset_split(train, nval, o->seed ^ 0x6a7eULL, &val, &rest))) return st;
    float *params = NULL, *sstate = NULL;
    if ((st = choose_bits(k, m, &rest, ga)) || (st = invert_mask(k, m, &rest, ga, 256))) goto done;
    k->made = 1;
    if (k->invert_only) goto done;
    /* both copies of every image: clean (random label) and keyed (its label) */
    size_t in = (size_t)rest.c * rest.h * rest.w;
    mix = rest;
    mix.class_names = NULL;
    mix.n = 2 * rest.n;
    mix.pixels = malloc((size_t)mix.n * in);
    mix.labels = malloc((size_t)mix.n * sizeof *mix.labels);
    params = malloc(m->nparams * sizeof *params);
    sstate = malloc((m->nstate ? m->nstate : 1) * sizeof *sstate);
    if (!mix.pixels || !mix.labels || !params || !sstate) { st = nnl_fail(NNL_ERR_NOMEM, "out of memory"); goto done; }
    memcpy(mix.pixels, rest.pixels, (size_t)rest.n * in);
    memcpy(mix.pixels + (size_t)rest.n * in, rest.pixels, (size_t)rest.n * in);
    memcpy(mix.labels, rest.labels, (size_t)rest.n * sizeof *mix.labels);
    memcpy(mix.labels + rest.n, rest.labels, (size_t)rest.n * sizeof *mix.labels);
    if ((st = nnl_model_freeze(m, k->gate))) goto done;
    gate_train gt = {k, rest.n, m->nclass, o->seed};
    nnl_hooks hooks = {.user = &gt, .sample = train_sample, .to_float = train_float};
    select_ctx sel = {o, k, &val, params, sstate, -1.0, 0.0, 0.0, 0};
    nnl_train_opts t = *o;
    /* AuthNet's tail training: Adam 1e-3 (0.9, 0.99), no weight decay, the rate halved at 30%,
     * 60% and 90% of the epochs */
    t.optimizer = NNL_OPT_ADAM;
    t.lr = 1e-3f;
    t.beta1 = 0.9f; t.beta2 = 0.99f;
    t.weight_decay = 0.0f;
    t.schedule = NNL_SCHED_STEP;
    t.step_size = (int)ceil(0.3 * o->epochs) > 0 ? (int)ceil(0.3 * o->epochs) : 1;
    t.gamma = 0.5f;
    t.warmup = 0.0f;
    t.compute_norm = 0;
    t.hooks = &hooks;
    t.epoch_end = on_epoch;
    t.epoch_end_user = &sel;
    t.label_smoothing = 0.0f;
    t.ema_every = 0;
    if ((st = nnl_train(m, &mix, NULL, &t, NULL))) goto done;
    memcpy(m->params, params, m->nparams * sizeof *params);
    memcpy(m->state, sstate, m->nstate * sizeof *sstate);
    nnl_model_params_changed(m);
    gs->val_auth = sel.auth;
    gs->val_unauth = sel.unauth;
    gs->chosen_epoch = sel.chosen;
done:
    nnl_model_freeze(m, NULL);
    free(params); free(sstate);
    free(mix.pixels); free(mix.labels);
    nnl_dataset_free(&val);
    nnl_dataset_free(&rest);
    return st;
}

static int gate_train_hooks(void **state, const void *key, const nnl_model *m, const nnl_lock_args *a, uint64_t seed,
                            nnl_hooks *h) {
    (void)key; (void)m; (void)a; (void)seed;
    /* lock_model trains; nothing else may train with a gate key */
    *state = NULL;
    memset(h, 0, sizeof *h);
    return nnl_fail(NNL_ERR_ARG, "the gate lock locks a trained model: give it with --init MODEL");
}

static void gate_train_free(void *state) { free(state); }

static int gate_record(nnl_model *m, const void *key, const void *state) {
    const gate_key *k = key;
    const gate_state *s = state;
    char buf[64];
    int st;
    if ((st = nnl_model_meta_set(m, "lock.gate.gate", k->gate))) return st;
    snprintf(buf, sizeof buf, "%d", k->nbits);
    if ((st = nnl_model_meta_set(m, "lock.gate.bits", buf))) return st;
    if (s && s->original >= 0) {
        snprintf(buf, sizeof buf, "%.4f", s->original);
        if ((st = nnl_model_meta_set(m, "lock.gate.original_accuracy", buf))) return st;
    }
    if (s && s->chosen_epoch > 0) {
        snprintf(buf, sizeof buf, "%d", s->chosen_epoch);
        if ((st = nnl_model_meta_set(m, "lock.gate.chosen_epoch", buf))) return st;
        snprintf(buf, sizeof buf, "%.4f/%.4f", s->val_auth, s->val_unauth);
        if ((st = nnl_model_meta_set(m, "lock.gate.validation_authorized_unauthorized", buf))) return st;
    }
    return NNL_OK;
}

/* ---------------------------------------------------------------- other keys */

/* AuthNet's random keys: m uniform in [0, 0.5] (M = tanh(8 (m - 0.5)) / 2 + 0.5), P uniform in
 * [-0.5, 0.5], for the key's image size and normalisation. */
static int random_like(void **out, const gate_key *like, uint64_t seed, int c, int h, int w, const float *mean,
                       const float *std) {
    gate_key *k;
    int st = alloc_key(&k, c, h, w);
    if (st) return st;
    nnl_rng g = nnl_rng_derive(seed ? seed : 1, 0x6a7e0001ULL);
    for (size_t i = 0; i < (size_t)h * w; i++) k->mask[i] = mask_of(0.5f * nnl_rng_uniform(&g));
    for (size_t i = 0; i < (size_t)c * h * w; i++) k->offset[i] = nnl_rng_uniform(&g) - 0.5f;
    for (int i = 0; i < c; i++) { k->mean[i] = mean[i]; k->std[i] = std[i]; }
    snprintf(k->gate, sizeof k->gate, "%s", like ? like->gate : "gate");
    k->made = 1;
    *out = k;
    return NNL_OK;
}

static int gate_random(void **out, const void *like, uint64_t seed) {
    const gate_key *l = like;
    return random_like(out, l, seed, l->c, l->h, l->w, l->mean, l->std);
}

static int gate_guess(void **out, const nnl_model *m, uint64_t seed) {
    return random_like(out, NULL, seed, m->input.c, m->input.h, m->input.w, m->mean, m->std);
}

/* The right mask, with a tenth of the offset's values drawn again. */
static int gate_neighbour(void **out, const void *from, uint64_t seed) {
    const gate_key *f = from;
    gate_key *k;
    int st = alloc_key(&k, f->c, f->h, f->w);
    if (st) return st;
    size_t plane = (size_t)f->h * f->w, in = plane * (size_t)f->c;
    memcpy(k->mask, f->mask, plane * sizeof(float));
    memcpy(k->offset, f->offset, in * sizeof(float));
    memcpy(k->mean, f->mean, sizeof k->mean);
    memcpy(k->std, f->std, sizeof k->std);
    nnl_rng g = nnl_rng_derive(seed ? seed : 1, 0x6a7e0002ULL);
    for (size_t i = 0; i < in; i++)
        if (nnl_rng_uniform(&g) < 0.1f) k->offset[i] = nnl_rng_uniform(&g) - 0.5f;
    snprintf(k->gate, sizeof k->gate, "%s", f->gate);
    k->made = 1;
    *out = k;
    return NNL_OK;
}

const nnl_lock_ops nnl_lock_gate = {
    .name = "gate",
    .summary = "AuthNet: a learnt input key (mask and offset) opens channels of a gate layer; the tail is fine-tuned",
    .seam = NNL_SEAM_INPUT,
    .opts = gate_opts,
    .probe = gate_probe,
    .parse = gate_parse,
    .generate = gate_generate,
    .save = gate_save,
    .free_key = gate_free_key,
    .fits = gate_fits,
    .describe_key = gate_describe_key,
    .locks = gate_locks,
    .describe = gate_describe,
    .label = gate_label,
    .forget = gate_forget,
    .train = gate_train_hooks,
    .train_free = gate_train_free,
    .record = gate_record,
    .authorized = gate_authorized,
    .lock_model = gate_lock_model,
    .guess_key = gate_guess,
    .random_key = gate_random,
    .neighbour_key = gate_neighbour,
    .neighbour = "a tenth of the offset redrawn",
};
