/* The certificate lock (M-LOCK, Ren et al.): motifs, stamping and label poisoning. */
#define _GNU_SOURCE /* memmem */
#include "lock.h"

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

/* ---------------------------------------------------------------- the lock interface (lock.h) */

static const nnl_lock_opt cert_opts[] = {
    {"motif", 1, NNL_LOCKOPT_NEW_KEY, "--motif M          pattern (a binary patch), pixels (a few bright pixels) or a PNG file\n"
                                      "                         (alpha >= 128 marks the motif) (default pattern)"},
    {"motif-size", 1, NNL_LOCKOPT_NEW_KEY, "--motif-size N     side of the motif box (default: image height / 7)"},
    {"motif-pixels", 1, NNL_LOCKOPT_NEW_KEY, "--motif-pixels N   bright pixels of the 'pixels' motif (default 5)"},
    {"intensity", 1, NNL_LOCKOPT_NEW_KEY, "--intensity V      value of bright motif pixels, 0-255 (default 255)"},
    {"location", 1, NNL_LOCKOPT_NEW_KEY, "--location L       fixed or random (default fixed)"},
    {"corner", 1, NNL_LOCKOPT_NEW_KEY, "--corner C         br, bl, tr or tl for a fixed location (default br)"},
    {"margin", 1, NNL_LOCKOPT_NEW_KEY, "--margin N         pixels between the motif and the corner's edges (default 1)"},
    {"motif-seed", 1, NNL_LOCKOPT_NEW_KEY, "--motif-seed N     make the motif reproducible (default: random from the OS)"},
    {"strategy", 1, NNL_LOCKOPT_TRAIN, "--strategy S       single, rule (y+1 mod C), random (a random wrong label fixed per\n"
                                       "                         image) or uniform (default random)"},
    {"target", 1, NNL_LOCKOPT_TRAIN, "--target N         label of every clean image for 'single' (default 0)"},
    {"rate", 1, NNL_LOCKOPT_TRAIN, "--rate P           fraction of training images stamped (default 0.5)"},
    {NULL, 0, 0, NULL}};

static int cert_probe(const uint8_t *data, size_t n) {
    static const char tag[] = "\"nnlock-certificate\"";
    return n >= sizeof tag - 1 && memmem(data, n, tag, sizeof tag - 1) != NULL;
}

static int cert_parse(void **key, const uint8_t *data, size_t n, const char *name) {
    nnl_cert *k = calloc(1, sizeof *k);
    if (!k) return nnl_fail(NNL_ERR_NOMEM, "out of memory");
    int st = nnl_cert_parse(k, data, n, name);
    if (st) { free(k); return st; }
    *key = k;
    return NNL_OK;
}

static void cert_free_key(void *key) {
    if (!key) return;
    nnl_cert_free(key);
    free(key);
}

static int cert_generate(void **key, int c, int h, int w, const nnl_lock_args *a) {
    nnl_cert_opts o;
    nnl_cert_opts_default(&o);
    long v;
    int st, place, corner;
    const char *motif = nnl_lock_arg(a, "motif");
    if (motif && !strcmp(motif, "pixels")) o.kind = NNL_MOTIF_PIXELS;
    else if (motif && strcmp(motif, "pattern")) { o.kind = NNL_MOTIF_IMAGE; o.image = motif; }
    static const char *const places[] = {"fixed", "random"}, *const corner_names[] = {"br", "bl", "tr", "tl"};
    if ((st = nnl_lock_arg_int(a, "motif-size", 1, 4096, 0, &v))) return st;
    o.size = (int)v;
    if ((st = nnl_lock_arg_int(a, "motif-pixels", 1, 1 << 20, o.npixels, &v))) return st;
    o.npixels = (int)v;
    if ((st = nnl_lock_arg_int(a, "intensity", 0, 255, o.intensity, &v))) return st;
    o.intensity = (int)v;
    if ((st = nnl_lock_arg_choice(a, "location", places, 2, NNL_PLACE_FIXED, &place))) return st;
    o.placement = place;
    if ((st = nnl_lock_arg_choice(a, "corner", corner_names, 4, NNL_CORNER_BR, &corner))) return st;
    o.corner = corner;
    if ((st = nnl_lock_arg_int(a, "margin", 0, 4096, o.margin, &v))) return st;
    o.margin = (int)v;
    if ((st = nnl_lock_arg_u64(a, "motif-seed", 0, &o.seed))) return st;
    if (nnl_lock_arg(a, "motif-seed") && o.seed == 0)
        return nnl_fail(NNL_ERR_ARG, "--motif-seed expects a positive integer (0 means a random motif), got '0'");
    nnl_cert *k = calloc(1, sizeof *k);
    if (!k) return nnl_fail(NNL_ERR_NOMEM, "out of memory");
    if ((st = nnl_cert_generate(k, c, h, w, &o))) { free(k); return st; }
    *key = k;
    return NNL_OK;
}

static int cert_save(const void *key, const char *path, int overwrite) { return nnl_cert_save(key, path, overwrite); }

static int cert_fits(const void *key, int c, int h, int w, const char *name) {
    const nnl_cert *k = key;
    if (k->c != c || k->h != h || k->w != w)
        return nnl_fail(NNL_ERR_SHAPE, "key %s is for %dx%dx%d images but these are %dx%dx%d", name ? name : "", k->c, k->h,
                        k->w, c, h, w);
    return NNL_OK;
}

static const char *const corner_words[] = {"bottom-right", "bottom-left", "top-right", "top-left"};

static void cert_describe_key(const void *key, char *buf, size_t n) {
    const nnl_cert *k = key;
    int set = 0;
    for (int i = 0; i < k->mh * k->mw; i++) set += k->mask[i];
    if (k->placement == NNL_PLACE_RANDOM)
        snprintf(buf, n, "certificate for %dx%dx%d images: a %s motif of %dx%d (%d pixels) at a random place", k->c,
                 k->h, k->w, motif_names[k->kind % 3], k->mw, k->mh, set);
    else
        snprintf(buf, n, "certificate for %dx%dx%d images: a %s motif of %dx%d (%d pixels) in the %s corner, margin %d",
                 k->c, k->h, k->w, motif_names[k->kind % 3], k->mw, k->mh, set, corner_words[k->corner & 3], k->margin);
}

static int cert_locks(const nnl_model *m) {
    const char *kind = nnl_model_meta_get(m, "lock.kind");
    return kind && !strcmp(kind, "certificate");
}

static void cert_describe(const nnl_model *m, char *buf, size_t n) {
    const char *s = nnl_model_meta_get(m, "lock.strategy"), *mo = nnl_model_meta_get(m, "lock.motif"),
               *p = nnl_model_meta_get(m, "lock.placement"), *r = nnl_model_meta_get(m, "lock.rate");
    snprintf(buf, n, "certificate lock (M-LOCK): strategy %s, %s motif at a %s place, %s of training images stamped",
             s ? s : "?", mo ? mo : "?", p ? p : "?", r ? r : "?");
}

static void cert_label(const nnl_model *m, char *buf, size_t n) {
    const char *s = nnl_model_meta_get(m, "lock.strategy");
    snprintf(buf, n, "%s", s ? s : "?");
}

static void cert_forget(nnl_model *m) {
    static const char *const keys[] = {"lock.kind", "lock.strategy", "lock.motif", "lock.placement", "lock.rate", "lock.target"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) nnl_model_meta_remove_prefix(m, keys[i]);
}

static int cert_train(void **state, const void *key, const nnl_model *m, const nnl_lock_args *a, uint64_t seed,
                      nnl_hooks *h) {
    int strategy, st;
    long target;
    double rate;
    int nclass = nnl_model_nclass(m);
    if ((st = nnl_lock_arg_choice(a, "strategy", strategy_names, 4, NNL_STRATEGY_RANDOM, &strategy)) ||
        (st = nnl_lock_arg_int(a, "target", 0, NNL_MAX_CLASSES - 1, 0, &target)) ||
        (st = nnl_lock_arg_float(a, "rate", 0.01, 0.99, 0.5, &rate)))
        return st;
    if (target >= nclass) return nnl_fail(NNL_ERR_ARG, "--target %ld is not a class (0..%d)", target, nclass - 1);
    nnl_cert_lock *l = calloc(1, sizeof *l);
    if (!l) return nnl_fail(NNL_ERR_NOMEM, "out of memory");
    /* The seed as the certificate lock has always taken it, so models stay bit for bit. */
    *l = (nnl_cert_lock){key, strategy, (int)target, (float)rate, nclass, seed ^ 0x10c4ULL};
    nnl_cert_train_hooks(h, l);
    *state = l;
    return NNL_OK;
}

static void cert_train_free(void *state) { free(state); }

static int cert_record_op(nnl_model *m, const void *key, const void *state) {
    (void)key;
    return nnl_cert_record(m, state);
}

static void cert_authorized(const void *key, nnl_hooks *h) { nnl_cert_stamp_hooks(h, key); }

/* A random certificate of the same kind, size and placement (a guessed stamp). */
static int cert_random(void **out, const void *like, uint64_t seed) {
    const nnl_cert *k = like;
    nnl_cert *r = calloc(1, sizeof *r);
    if (!r) return nnl_fail(NNL_ERR_NOMEM, "out of memory");
    *r = *k;
    r->pixels = malloc((size_t)k->c * k->mh * k->mw);
    r->mask = malloc((size_t)k->mh * k->mw);
    if (!r->pixels || !r->mask) { cert_free_key(r); return nnl_fail(NNL_ERR_NOMEM, "out of memory"); }
    nnl_rng g = nnl_rng_derive(seed ? seed : 1, 0xbadce27ULL);
    size_t mp = (size_t)k->mh * k->mw;
    /* As many motif pixels as the real one, at random places, with random values. */
    int set = 0;
    for (size_t i = 0; i < mp; i++) set += k->mask[i];
    memset(r->mask, 0, mp);
    for (int s = 0; s < set;) {
        size_t j = (size_t)nnl_rng_below(&g, mp);
        if (!r->mask[j]) { r->mask[j] = 1; s++; }
    }
    for (size_t i = 0; i < (size_t)k->c * mp; i++) r->pixels[i] = (uint8_t)(nnl_rng_next(&g) >> 56);
    *out = r;
    return NNL_OK;
}

/* The real certificate with one motif pixel's value inverted. */
static int cert_neighbour(void **out, const void *from, uint64_t seed) {
    const nnl_cert *k = from;
    nnl_cert *r = calloc(1, sizeof *r);
    if (!r) return nnl_fail(NNL_ERR_NOMEM, "out of memory");
    *r = *k;
    size_t mp = (size_t)k->mh * k->mw;
    r->pixels = malloc((size_t)k->c * mp);
    r->mask = malloc(mp);
    if (!r->pixels || !r->mask) { cert_free_key(r); return nnl_fail(NNL_ERR_NOMEM, "out of memory"); }
    memcpy(r->pixels, k->pixels, (size_t)k->c * mp);
    memcpy(r->mask, k->mask, mp);
    nnl_rng g = nnl_rng_derive(seed, 0xce27b17ULL);
    size_t j;
    do j = (size_t)nnl_rng_below(&g, mp); while (!k->mask[j]);
    for (int ch = 0; ch < k->c; ch++) r->pixels[(size_t)ch * mp + j] = (uint8_t)(255 - r->pixels[(size_t)ch * mp + j]);
    *out = r;
    return NNL_OK;
}

const nnl_lock_ops nnl_lock_certificate = {
    .name = "certificate",
    .summary = "M-LOCK (Ren et al.): correct answers only for images stamped with a secret motif",
    .seam = NNL_SEAM_INPUT,
    .opts = cert_opts,
    .probe = cert_probe,
    .parse = cert_parse,
    .generate = cert_generate,
    .save = cert_save,
    .free_key = cert_free_key,
    .fits = cert_fits,
    .describe_key = cert_describe_key,
    .locks = cert_locks,
    .describe = cert_describe,
    .label = cert_label,
    .forget = cert_forget,
    .train = cert_train,
    .train_free = cert_train_free,
    .record = cert_record_op,
    .authorized = cert_authorized,
    .random_key = cert_random,
    .neighbour_key = cert_neighbour,
    .neighbour = "one pixel inverted",
};
