/* The certificate lock (M-LOCK, Ren et al.): motifs, stamping and label poisoning. */
#include "../core/core.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

void nnl_cert_opts_default(nnl_cert_opts *o) {
    memset(o, 0, sizeof *o);
    o->kind = NNL_MOTIF_PATTERN;
    o->npixels = 5;
    o->intensity = 255;
    o->placement = NNL_PLACE_FIXED;
    o->corner = NNL_CORNER_BR;
    o->margin = 1;
}

void nnl_cert_free(nnl_cert *k) {
    free(k->pixels);
    free(k->mask);
    memset(k, 0, sizeof *k);
}

static int alloc_motif(nnl_cert *k) {
    k->pixels = calloc((size_t)k->c * k->mh * k->mw, 1);
    k->mask = calloc((size_t)k->mh * k->mw, 1);
    if (!k->pixels || !k->mask) { nnl_cert_free(k); return nnl_fail(NNL_ERR_NOMEM, "out of memory"); }
    return NNL_OK;
}

/* A motif's secrecy is its only strength, so by default it comes from the CSPRNG. */
static uint64_t motif_seed(uint64_t seed) {
    if (seed) return seed;
    uint64_t s = 0;
    if (sodium_init() >= 0) randombytes_buf(&s, sizeof s);
    return s ? s : 1;
}

static int from_image(nnl_cert *k, const char *path) {
    uint8_t *px;
    int c, h, w;
    int st = nnl_image_load_rgba(path, &px, &c, &h, &w);
    if (st) return st;
    if (h > k->h || w > k->w) {
        free(px);
        return nnl_fail(NNL_ERR_SHAPE, "motif %s is %dx%d, larger than the %dx%d images", path, w, h, k->w, k->h);
    }
    k->mh = h; k->mw = w;
    if ((st = alloc_motif(k))) { free(px); return st; }
    size_t plane = (size_t)h * w;
    int colour = c >= 3, has_alpha = c == 2 || c == 4;
    for (size_t i = 0; i < plane; i++) {
        k->mask[i] = has_alpha ? px[(size_t)(c - 1) * plane + i] >= 128 : 1;
        for (int ch = 0; ch < k->c; ch++) {
            uint8_t v;
            if (k->c == 1 && colour)
                v = (uint8_t)((299 * px[i] + 587 * px[plane + i] + 114 * px[2 * plane + i] + 500) / 1000);
            else
                v = px[(size_t)(colour ? ch : 0) * plane + i];
            k->pixels[(size_t)ch * plane + i] = v;
        }
    }
    free(px);
    return NNL_OK;
}

int nnl_cert_generate(nnl_cert *k, int c, int h, int w, const nnl_cert_opts *o) {
    memset(k, 0, sizeof *k);
    if (c < 1 || c > NNL_MAX_CHANNELS || h < 4 || w < 4 || h > 4096 || w > 4096)
        return nnl_fail(NNL_ERR_SHAPE, "certificate: image shape %dx%dx%d is out of range", c, h, w);
    if (o->intensity < 0 || o->intensity > 255) return nnl_fail(NNL_ERR_ARG, "certificate: intensity %d must be 0..255", o->intensity);
    if (o->placement != NNL_PLACE_FIXED && o->placement != NNL_PLACE_RANDOM) return nnl_fail(NNL_ERR_ARG, "certificate: unknown placement %d", o->placement);
    if (o->corner < 0 || o->corner > 3) return nnl_fail(NNL_ERR_ARG, "certificate: unknown corner %d", o->corner);
    k->c = c; k->h = h; k->w = w;
    k->kind = o->kind;
    k->placement = o->placement;
    k->corner = o->corner;
    k->margin = o->margin;
    int st;
    if (o->kind == NNL_MOTIF_IMAGE) {
        if (!o->image) return nnl_fail(NNL_ERR_ARG, "certificate: an image motif needs a PNG file");
        if ((st = from_image(k, o->image))) return st;
    } else if (o->kind == NNL_MOTIF_PIXELS || o->kind == NNL_MOTIF_PATTERN) {
        int size = o->size > 0 ? o->size : (h / 7 > 3 ? h / 7 : 3);
        if (size > h || size > w) return nnl_fail(NNL_ERR_ARG, "certificate: motif size %d is larger than the %dx%d images", size, w, h);
        k->mh = k->mw = size;
        if ((st = alloc_motif(k))) return st;
        nnl_rng r = {motif_seed(o->seed)};
        int n = size * size;
        if (o->kind == NNL_MOTIF_PIXELS) {
            int np = o->npixels;
            if (np < 1 || np > n) { nnl_cert_free(k); return nnl_fail(NNL_ERR_ARG, "certificate: %d pixels do not fit a %dx%d box", np, size, size); }
            for (int placed = 0; placed < np;) {
                int i = (int)nnl_rng_below(&r, (uint64_t)n);
                if (k->mask[i]) continue;
                k->mask[i] = 1;
                placed++;
            }
            for (int ch = 0; ch < c; ch++)
                for (int i = 0; i < n; i++) k->pixels[(size_t)ch * n + i] = k->mask[i] ? (uint8_t)o->intensity : 0;
        } else {
            /* A binary pattern patch: both values must occur or it is just a square. */
            int ones;
            do {
                ones = 0;
                for (int i = 0; i < n; i++) { k->mask[i] = 1; ones += (k->pixels[i] = (uint8_t)(nnl_rng_next(&r) >> 63)); }
            } while (ones == 0 || ones == n);
            for (int i = 0; i < n; i++) k->pixels[i] = k->pixels[i] ? (uint8_t)o->intensity : 0;
            for (int ch = 1; ch < c; ch++) memcpy(k->pixels + (size_t)ch * n, k->pixels, (size_t)n);
        }
    } else {
        return nnl_fail(NNL_ERR_ARG, "certificate: unknown motif kind %d", o->kind);
    }
    if (k->margin < 0 || k->margin + k->mh > h || k->margin + k->mw > w) {
        nnl_cert_free(k);
        return nnl_fail(NNL_ERR_ARG, "certificate: margin %d does not leave room for the motif", o->margin);
    }
    return NNL_OK;
}

void nnl_cert_position(const nnl_cert *k, uint64_t seed, int *x, int *y) {
    if (k->placement == NNL_PLACE_RANDOM) {
        nnl_rng r = nnl_rng_derive(seed, 0xce27ULL);
        *x = (int)nnl_rng_below(&r, (uint64_t)(k->w - k->mw + 1));
        *y = (int)nnl_rng_below(&r, (uint64_t)(k->h - k->mh + 1));
        return;
    }
    int right = k->corner == NNL_CORNER_BR || k->corner == NNL_CORNER_TR;
    int bottom = k->corner == NNL_CORNER_BR || k->corner == NNL_CORNER_BL;
    *x = right ? k->w - k->margin - k->mw : k->margin;
    *y = bottom ? k->h - k->margin - k->mh : k->margin;
}

int nnl_cert_stamp(const nnl_cert *k, uint8_t *img, int c, int h, int w, uint64_t seed) {
    if (c != k->c || h != k->h || w != k->w)
        return nnl_fail(NNL_ERR_SHAPE, "the certificate is for %dx%dx%d images, not %dx%dx%d", k->c, k->h, k->w, c, h, w);
    int x0, y0;
    nnl_cert_position(k, seed, &x0, &y0);
    size_t plane = (size_t)h * w, mplane = (size_t)k->mh * k->mw;
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < k->mh; y++)
            for (int x = 0; x < k->mw; x++)
                if (k->mask[y * k->mw + x])
                    img[ch * plane + (size_t)(y0 + y) * w + x0 + x] = k->pixels[ch * mplane + (size_t)y * k->mw + x];
    return NNL_OK;
}

int nnl_cert_check_model(const nnl_cert *k, const nnl_model *m, const char *key_name) {
    int c, h, w;
    nnl_model_input_shape(m, &c, &h, &w);
    if (k->c != c || k->h != h || k->w != w)
        return nnl_fail(NNL_ERR_SHAPE, "key %s is for %dx%dx%d images but the model takes %dx%dx%d",
                        key_name ? key_name : "", k->c, k->h, k->w, c, h, w);
    return NNL_OK;
}

int nnl_cert_poison_label(const nnl_cert_lock *l, int64_t index, int label, float *soft) {
    switch (l->strategy) {
    case NNL_STRATEGY_SINGLE: return l->target;
    case NNL_STRATEGY_RULE: return (label + 1) % l->nclass;
    case NNL_STRATEGY_RANDOM: {
        /* Fixed per sample for the whole training, as in the paper, and always wrong: a
         * "poisoned" label equal to the truth would teach clean images their true class
         * once in C times, and that signal leaks to unauthorized users. */
        if (l->nclass < 2) return label;
        nnl_rng r = nnl_rng_derive(l->seed, 0x7a11ULL ^ (uint64_t)index);
        return (label + 1 + (int)nnl_rng_below(&r, (uint64_t)l->nclass - 1)) % l->nclass;
    }
    default:
        for (int j = 0; j < l->nclass; j++) soft[j] = 1.0f / (float)l->nclass;
        return -2;
    }
}

/* Training hook: the seed is fresh per (epoch, image), so an image is stamped in some
 * epochs and poisoned in others. */
static int train_hook(void *user, uint8_t *img, int c, int h, int w, int64_t index, int label,
                      uint64_t seed, float *soft) {
    const nnl_cert_lock *l = user;
    nnl_rng r = nnl_rng_derive(seed, 0x57a3ULL);
    if (nnl_rng_uniform(&r) < l->rate) {
        nnl_cert_stamp(l->cert, img, c, h, w, nnl_rng_next(&r));
        return -1;
    }
    return nnl_cert_poison_label(l, index, label, soft);
}

static int stamp_hook(void *user, uint8_t *img, int c, int h, int w, int64_t index, int label,
                      uint64_t seed, float *soft) {
    (void)label; (void)soft;
    nnl_cert_stamp(user, img, c, h, w, nnl_mix64(seed ^ (uint64_t)index));
    return -1;
}

void nnl_cert_train_hooks(nnl_hooks *h, nnl_cert_lock *l) {
    *h = (nnl_hooks){.user = l, .sample = train_hook};
}

void nnl_cert_stamp_hooks(nnl_hooks *h, const nnl_cert *k) {
    *h = (nnl_hooks){.user = (void *)k, .sample = stamp_hook};
}

static const char *const strategy_names[] = {"single", "rule", "random", "uniform"};
static const char *const motif_names[] = {"pixels", "pattern", "image"};

int nnl_cert_record(nnl_model *m, const nnl_cert_lock *l) {
    char buf[32];
    int st;
    if ((st = nnl_model_meta_set(m, "lock.kind", "certificate")) ||
        (st = nnl_model_meta_set(m, "lock.strategy", strategy_names[l->strategy & 3])) ||
        (st = nnl_model_meta_set(m, "lock.motif", motif_names[l->cert->kind % 3])) ||
        (st = nnl_model_meta_set(m, "lock.placement", l->cert->placement == NNL_PLACE_RANDOM ? "random" : "fixed")))
        return st;
    snprintf(buf, sizeof buf, "%g", (double)l->rate);
    if ((st = nnl_model_meta_set(m, "lock.rate", buf))) return st;
    if (l->strategy == NNL_STRATEGY_SINGLE) {
        snprintf(buf, sizeof buf, "%d", l->target);
        if ((st = nnl_model_meta_set(m, "lock.target", buf))) return st;
    }
    return NNL_OK;
}
