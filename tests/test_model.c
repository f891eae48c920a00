/* Model files: save -> load -> save is byte-identical; every corrupt model is refused
 * with a clear message; architecture specs are checked; training is reproducible. */
#include "io/safetensors.h"
#include "nn/model.h"
#include "synth.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static nnl_model *make_model(const char *arch, int c, int h, int w, int k) {
    nnl_model *m = NULL;
    int st = nnl_model_create(&m, arch, c, h, w, k);
    CHECK_MSG(st == NNL_OK, "create %s: %s", arch, nnl_errmsg());
    if (st) return NULL;
    nnl_model_init(m, 5);
    return m;
}

static void test_round_trip(const char *arch, int c, int h, int w) {
    char a[512], b[512];
    snprintf(a, sizeof a, "%s/a.nnl", nnl_test_tmpdir());
    snprintf(b, sizeof b, "%s/b.nnl", nnl_test_tmpdir());
    nnl_model *m = make_model(arch, c, h, w, 3);
    if (!m) return;
    float mean[3] = {0.25f, 0.5f, 0.125f}, sd[3] = {0.3f, 0.2f, 0.1f};
    char *names[3] = {"cat", "dog", "snow \"leopard\""};
    CHECK(nnl_model_set_norm(m, mean, sd) == NNL_OK);
    CHECK(nnl_model_set_class_names(m, names, 3) == NNL_OK);
    CHECK(nnl_model_meta_set(m, "train.epochs", "7") == NNL_OK);
    CHECK(nnl_model_save(m, a) == NNL_OK);
    nnl_model *l = NULL;
    int st = nnl_model_load(&l, a);
    CHECK_MSG(st == NNL_OK, "load: %s", nnl_errmsg());
    if (!l) { nnl_model_free(m); return; }
    CHECK(nnl_model_param_count(l) == nnl_model_param_count(m));
    CHECK(!strcmp(nnl_model_arch(l), arch));
    CHECK(!strcmp(nnl_model_class_name(l, 2), "snow \"leopard\""));
    CHECK(nnl_model_meta_get(l, "train.epochs") && !strcmp(nnl_model_meta_get(l, "train.epochs"), "7"));
    CHECK(memcmp(l->params, m->params, m->nparams * sizeof(float)) == 0);
    CHECK(memcmp(l->state, m->state, m->nstate * sizeof(float)) == 0);
    CHECK(l->mean[0] == mean[0] && l->std[c - 1] == sd[c - 1]);
    CHECK(nnl_model_save(l, b) == NNL_OK);
    size_t na, nb;
    uint8_t *da = nnl_test_read(a, &na), *db = nnl_test_read(b, &nb);
    CHECK_MSG(da && db && na == nb && memcmp(da, db, na) == 0, "%s: save -> load -> save is not byte-identical", arch);
    free(da); free(db);
    nnl_model_free(l);
    nnl_model_free(m);
}

/* Re-serialises a valid model file with one change made by `edit`, then expects refusal. */
typedef void (*edit_fn)(nnl_st_file *f);
static int n_refused = 0;

static void expect_refused(const uint8_t *good, size_t n, edit_fn edit, const char *what) {
    nnl_st_file f;
    if (nnl_st_parse(good, n, &f) != NNL_OK) { CHECK(0); return; }
    edit(&f);
    const char *keys[128], *vals[128];
    for (int i = 0; i < f.nmeta; i++) { keys[i] = f.keys[i]; vals[i] = f.values[i]; }
    uint8_t *out;
    size_t on;
    int st = nnl_st_serialize(f.tensors, f.ntensors, keys, vals, f.nmeta, &out, &on);
    CHECK_MSG(st == NNL_OK, "%s: cannot build the corrupt file: %s", what, nnl_errmsg());
    if (st == NNL_OK) {
        nnl_model *m = NULL;
        st = nnl_model_from_memory(&m, out, on);
        CHECK_MSG(st != NNL_OK && !m && nnl_errmsg()[0], "%s: was accepted", what);
        if (st) { n_refused++; fprintf(stderr, "  refused (%s): %s\n", what, nnl_errmsg()); }
        nnl_model_free(m);
        free(out);
    }
    nnl_st_free(&f);
}

static void set_meta(nnl_st_file *f, const char *key, const char *val) {
    for (int i = 0; i < f->nmeta; i++)
        if (!strcmp(f->keys[i], key)) { free(f->values[i]); f->values[i] = strdup(val); return; }
}
static void drop_meta(nnl_st_file *f, const char *key) {
    for (int i = 0; i < f->nmeta; i++)
        if (!strcmp(f->keys[i], key)) { free(f->keys[i]); free(f->values[i]);
            memmove(f->keys + i, f->keys + i + 1, (size_t)(f->nmeta - i - 1) * sizeof(char *));
            memmove(f->values + i, f->values + i + 1, (size_t)(f->nmeta - i - 1) * sizeof(char *));
            f->nmeta--; return; }
}
static void e_format(nnl_st_file *f) { set_meta(f, "format", "pytorch"); }
static void e_version(nnl_st_file *f) { set_meta(f, "format_version", "2"); }
static void e_no_spec(nnl_st_file *f) { drop_meta(f, "spec"); }
static void e_bad_spec(nnl_st_file *f) { set_meta(f, "spec", "dense16,wobble,dense"); }
static void e_other_spec(nnl_st_file *f) { set_meta(f, "spec", "dense17,relu,dense"); }
static void e_input(nnl_st_file *f) { set_meta(f, "input", "1,0,8"); }
static void e_input_big(nnl_st_file *f) { set_meta(f, "input", "1,99999,99999"); }
static void e_input_text(nnl_st_file *f) { set_meta(f, "input", "1,8"); }
static void e_nclass(nnl_st_file *f) { set_meta(f, "nclass", "4"); }
static void e_nclass0(nnl_st_file *f) { set_meta(f, "nclass", "0"); }
static void e_std0(nnl_st_file *f) { set_meta(f, "norm_std", "0"); }
static void e_mean_txt(nnl_st_file *f) { set_meta(f, "norm_mean", "abc"); }
static void e_names(nnl_st_file *f) { set_meta(f, "class_names", "[\"a\",\"b\"]"); }
static void e_names_json(nnl_st_file *f) { set_meta(f, "class_names", "[\"a\","); }
static void e_drop_tensor(nnl_st_file *f) { f->ntensors--; }
static void e_rename_tensor(nnl_st_file *f) { snprintf(f->tensors[0].name, sizeof f->tensors[0].name, "layers.9.weight"); }
static void e_shape(nnl_st_file *f) {
    f->tensors[0].shape[0] = (int64_t)f->tensors[0].count; f->tensors[0].ndim = 1;
}

static void test_corrupt(void) {
    char a[512];
    snprintf(a, sizeof a, "%s/c.nnl", nnl_test_tmpdir());
    nnl_model *m = make_model("dense16,relu,dense", 1, 8, 8, 3);
    if (!m) return;
    char *names[3] = {"x", "y", "z"};
    nnl_model_set_class_names(m, names, 3);
    CHECK(nnl_model_save(m, a) == NNL_OK);
    nnl_model_free(m);
    size_t n;
    uint8_t *good = nnl_test_read(a, &n);
    if (!good) { CHECK(0); return; }
    nnl_model *ok = NULL;
    CHECK(nnl_model_from_memory(&ok, good, n) == NNL_OK);
    nnl_model_free(ok);
    struct { edit_fn f; const char *what; } cases[] = {
        {e_format, "format is not nnlock"}, {e_version, "future format version"}, {e_no_spec, "spec missing"},
        {e_bad_spec, "unknown layer in spec"}, {e_other_spec, "spec disagrees with tensors"},
        {e_input, "zero input size"}, {e_input_big, "huge input"}, {e_input_text, "input with two numbers"},
        {e_nclass, "nclass disagrees with tensors"}, {e_nclass0, "nclass 0"}, {e_std0, "norm std 0"},
        {e_mean_txt, "norm mean not a number"}, {e_names, "two class names for three classes"},
        {e_names_json, "class names not JSON"}, {e_drop_tensor, "a tensor missing"},
        {e_rename_tensor, "a tensor renamed"}, {e_shape, "a tensor reshaped"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) expect_refused(good, n, cases[i].f, cases[i].what);
    /* Every truncation of the file is refused. */
    int trunc_ok = 1;
    for (size_t k = 0; k < n; k += (k < 200 ? 1 : 97)) {
        nnl_model *t = NULL;
        if (nnl_model_from_memory(&t, good, k) == NNL_OK) trunc_ok = 0;
        nnl_model_free(t);
    }
    CHECK_MSG(trunc_ok, "a truncated model file was accepted");
    /* The loader names the file it refuses. */
    char bad[512];
    snprintf(bad, sizeof bad, "%s/trunc.nnl", nnl_test_tmpdir());
    FILE *f = fopen(bad, "wb");
    fwrite(good, 1, n / 2, f);
    fclose(f);
    nnl_model *t = NULL;
    CHECK(nnl_model_load(&t, bad) != NNL_OK && strstr(nnl_errmsg(), "trunc.nnl"));
    fprintf(stderr, "  refused (truncated file): %s\n", nnl_errmsg());
    CHECK(nnl_model_load(&t, "/nonexistent/model.nnl") == NNL_ERR_IO);
    free(good);
}

static void test_specs(void) {
    const char *bad[] = {"", "wobble", "dense0,dense", "conv32,dense", "conv32k0,dense", "conv8k3p3,dense",
                         "maxpool0,dense", "dropout1.5,dense", "dense16,relu", "add@nope,dense",
                         "@a,dense16,add@a,dense", "@a,@a,dense", "conv8k9,dense"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        nnl_model *m = NULL;
        int st = nnl_model_create(&m, bad[i], 1, 8, 8, 3);
        CHECK_MSG(st != NNL_OK && !m && nnl_errmsg()[0], "spec '%s' accepted", bad[i]);
        fprintf(stderr, "  refused spec '%s': %s\n", bad[i], nnl_errmsg());
    }
    const char *good[] = {"mlp", "cnn", "conv8k3p1,relu,@a,conv8k3p1,bn,relu,add@a,gap,dense",
                          "conv4k3s2p1,avgpool2,flatten,dropout0.5,dense"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        nnl_model *m = NULL;
        int st = nnl_model_create(&m, good[i], 3, 32, 32, 10);
        CHECK_MSG(st == NNL_OK, "spec '%s': %s", good[i], nnl_errmsg());
        nnl_model_free(m);
    }
    nnl_model *m = make_model("mlp", 1, 28, 28, 10);
    CHECK(m && nnl_model_param_count(m) == 784 * 900 + 900 + 3 * (900 * 900 + 900) + 900 * 10 + 10);
    nnl_model_free(m);
    CHECK(nnl_model_create(&m, "mlp", 5, 8, 8, 3) == NNL_ERR_SHAPE);
    CHECK(nnl_model_create(&m, "mlp", 1, 8, 8, 1) == NNL_ERR_ARG);
}

/* Same seed and thread count -> the same model, bit for bit. */
static void train_once(const nnl_dataset *ds, const char *arch, uint64_t seed, nnl_model **out) {
    nnl_model *m = make_model(arch, ds->c, ds->h, ds->w, ds->nclass);
    if (!m) return;
    nnl_model_init(m, seed);
    nnl_train_opts o;
    nnl_train_opts_default(&o);
    o.epochs = 2; o.batch = 32; o.seed = seed; o.augment_crop = 2; o.augment_flip = 1;
    int st = nnl_train(m, ds, NULL, &o, NULL);
    CHECK_MSG(st == NNL_OK, "train: %s", nnl_errmsg());
    *out = m;
}

static void test_reproducible(void) {
    nnl_dataset ds;
    synth_dataset(&ds, 500, 3, 12, 12, 4, 3);
    const char *arch = "conv8k3p1,bn,relu,maxpool2,dropout0.25,dense16,relu,dense";
    nnl_model *a = NULL, *b = NULL, *c = NULL;
    train_once(&ds, arch, 11, &a);
    train_once(&ds, arch, 11, &b);
    train_once(&ds, arch, 12, &c);
    if (a && b && c) {
        CHECK_MSG(memcmp(a->params, b->params, a->nparams * sizeof(float)) == 0, "same seed, different weights");
        CHECK_MSG(memcmp(a->state, b->state, a->nstate * sizeof(float)) == 0, "same seed, different statistics");
        CHECK_MSG(memcmp(a->params, c->params, a->nparams * sizeof(float)) != 0, "another seed, same weights");
    }
    nnl_model_free(a); nnl_model_free(b); nnl_model_free(c);
    nnl_dataset_free(&ds);
}

/* Max pooling follows PyTorch exactly: the first maximum wins a tie, a NaN wins and
 * propagates, and the gradient goes to the winner. Inputs full of ties and some NaNs,
 * on maps narrow, odd and wider than the pooling code's block, against a naive loop. */
static void test_maxpool_rules(int n, int c, int h, int w, int k, int s) {
    char spec[64];
    snprintf(spec, sizeof spec, "maxpool%ds%d,dense", k, s);
    nnl_model *m = NULL;
    CHECK_MSG(nnl_model_create(&m, spec, c, h, w, 3) == NNL_OK, "%s", nnl_errmsg());
    if (!m || nnl_model_prepare(m, n)) return;
    nnl_layer *L = &m->layers[0];
    int oh = L->out.h, ow = L->out.w;
    size_t nin = (size_t)n * c * h * w, nout = (size_t)n * c * oh * ow;
    float *x = malloc(nin * 4), *dy = malloc(nout * 4), *y = malloc(nout * 4), *dx = malloc(nin * 4);
    nnl_rng r = {(uint64_t)(h * 1000 + w)};
    for (size_t i = 0; i < nin; i++) x[i] = (float)nnl_rng_below(&r, 3);      /* many ties */
    for (size_t i = 0; i < nin; i += 37) x[i] = NAN;
    for (size_t i = 0; i < nout; i++) dy[i] = 1.0f + (float)i;
    nnl_pass P = {0};
    P.n = n; P.training = 1; P.params = m->params; P.grads = m->grads; P.work = m->work;
    const nnl_layer_ops *ops = nnl_layer_ops_of(L->kind);
    ops->forward(L, &P, x, y);
    ops->backward(L, &P, x, y, dy, dx);
    float *want_dx = calloc(nin, 4);
    int bad = 0;
    for (int pl = 0; pl < n * c; pl++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                const float *xp = x + (size_t)pl * h * w;
                int best = (oy * s) * w + ox * s;
                for (int i = 0; i < k; i++)
                    for (int j = 0; j < k; j++) {
                        int at = (oy * s + i) * w + ox * s + j;
                        if (xp[at] > xp[best] || isnan(xp[at])) best = at;
                    }
                size_t o = ((size_t)pl * oh + oy) * ow + ox;
                float got = y[o], want = xp[best];
                if (!(got == want || (isnan(got) && isnan(want)))) bad++;
                want_dx[(size_t)pl * h * w + best] += dy[o];
            }
    CHECK_MSG(bad == 0, "maxpool k%d s%d on %dx%dx%d: %d outputs differ from PyTorch's rule", k, s, c, h, w, bad);
    CHECK_MSG(memcmp(dx, want_dx, nin * 4) == 0, "maxpool k%d s%d on %dx%dx%d: gradient not routed to the winners", k, s, c, h, w);
    free(x); free(dy); free(y); free(dx); free(want_dx);
    nnl_model_free(m);
}

int main(void) {
    test_maxpool_rules(2, 3, 8, 8, 2, 2);
    test_maxpool_rules(2, 2, 6, 10, 2, 2);
    test_maxpool_rules(2, 1, 7, 9, 2, 2);
    test_maxpool_rules(13, 3, 8, 8, 2, 2);  /* blocks of 16 planes, the last one partial */
    test_maxpool_rules(7, 3, 15, 15, 2, 2); /* odd sides: 5 planes of 49 outputs per block */
    test_maxpool_rules(2, 1, 4, 1030, 2, 2);   /* rows wider than the 256-output block */
    test_maxpool_rules(2, 2, 9, 9, 3, 2);
    test_maxpool_rules(2, 1, 5, 6, 2, 1);
    nnl_set_threads(2);
    test_round_trip("mlp", 1, 8, 8);
    test_round_trip("conv4k3p1,bn,relu,@x,conv4k3p1,add@x,maxpool2,flatten,dense8,relu,dense", 3, 8, 8);
    test_corrupt();
    CHECK(n_refused == 17);
    test_specs();
    test_reproducible();
    return nnl_test_finish("test_model");
}
