/* Every layer's forward and backward, the softmax cross-entropy, and 5 optimizer
 * steps of the full `mlp` and `cnn` presets, compared with PyTorch on identical
 * weights and inputs.
 *
 * The reference is generated in the test run by tests/ref/torch_ref.py, run with
 * /usr/bin/python3 (see that script for the cases and the file format). Without
 * python3-torch the test is skipped (exit 77) -- unless NNL_REQUIRE_TORCH=1 (CI), where
 * that is a failure. NNL_REF_VERBOSE=1 prints the error of every tensor.
 *
 * Order: the test first runs the 5 steps of each model itself, from initial weights
 * and batches it draws, and writes those (with its ReLU and max-pool decisions, see
 * below) to c2py.bin; then the script computes the PyTorch reference for the layers,
 * the loss and those runs into ref.bin; then everything is compared.
 *
 * The metric, per tensor a (ours) against r (the reference):
 *
 *     err = max_i |a_i - r_i| / max(|r_i|, F * max_j |r_j|)
 *
 * i.e. the element-wise relative error, where elements smaller than the fraction F of
 * the tensor's largest magnitude are judged against that instead of their own size:
 * such elements are sums with cancellation, whose float32 rounding error scales with
 * the terms, not with the result. A tensor passes when err <= 1e-4 (the issue's
 * relative tolerance); NaN fails. F is 1% for single layers and the loss, 10% for
 * whole models, whose gradients come through up to 16 layers: there float32 rounding
 * (PyTorch's own float32 included) reaches ~1e-6 of a tensor's largest gradient,
 * i.e. ~1e-4 at the 1% floor. Scalars (losses) are compared by plain relative
 * error. One exception: the bias of a convolution that feeds a batch norm has a
 * gradient of exactly zero (the norm subtracts the mean); its rounding noise is judged
 * on the scale of the layer's weight gradient.
 *
 * The reference is float64 arithmetic on the float32 inputs, rounded once to float32,
 * so err measures this library's own rounding error. Where two correct float32
 * implementations may decide a ReLU or max-pool tie either way (margin within 1e-4
 * of the layer's scale), the reference follows our decision; every other decision
 * must be PyTorch's (see torch_ref.py: without this, one run in ten would diverge
 * through rounding alone).
 *
 * Layers are driven through their ops tables with buffers of exactly the sizes they
 * ask for; outputs, input gradients and scratch are filled with NaN before each call
 * (a layer that leaves part of its output unwritten, or reads scratch it did not
 * write, fails). Backward is run three times: once (gradients compared), again
 * (parameter gradients must accumulate to 2x, dx must be overwritten), and with
 * dx == NULL as for a model's first layer (3x). Dropout in training mode cannot be
 * compared with PyTorch (different random masks): only its eval mode is checked here;
 * test_gradcheck covers the training mode. */
#include "nn/model.h"
#include "train/lookahead.h"
#include "train/optim.h"
#include "testutil.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define RTOL 1e-4   /* relative tolerance (the issue's) */
/* Elements below this fraction of the tensor's largest magnitude are judged on it:
 * for single layers and the loss, and for whole models (see the top of the file). */
#define LAYER_FLOOR 1e-2
#define MODEL_FLOOR 1e-1
#define STEPS 5
#define BATCH 16
#define NCLASS 10

/* ------------------------------------------------------------------ files (see torch_ref.py) */

typedef struct arr {
    char name[160];
    int ndim;
    int dims[8];
    size_t n;
    float *data;
} arr;

static arr *g_arr;
static int g_narr;

static int load_ref(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "cannot open %s: %s\n", path, strerror(errno)); return -1; }
    char line[512];
    if (!fgets(line, sizeof line, f) || strcmp(line, "NNLREF2\n") != 0) {
        fprintf(stderr, "%s: not a reference file\n", path);
        fclose(f);
        return -1;
    }
    int cap = 0;
    while (fgets(line, sizeof line, f)) {
        if (g_narr == cap) {
            cap = cap ? 2 * cap : 256;
            arr *na = realloc(g_arr, (size_t)cap * sizeof *na);
            if (!na) { fclose(f); return -1; }
            g_arr = na;
        }
        arr *a = &g_arr[g_narr];
        memset(a, 0, sizeof *a);
        char *save = NULL, *tok = strtok_r(line, " \n", &save);
        if (!tok || strlen(tok) >= sizeof a->name) goto bad;
        snprintf(a->name, sizeof a->name, "%s", tok);
        if (!(tok = strtok_r(NULL, " \n", &save)) || strcmp(tok, "f4") != 0) goto bad;
        if (!(tok = strtok_r(NULL, " \n", &save))) goto bad;
        a->ndim = atoi(tok);
        if (a->ndim < 0 || a->ndim > 8) goto bad;
        a->n = 1;
        for (int d = 0; d < a->ndim; d++) {
            if (!(tok = strtok_r(NULL, " \n", &save))) goto bad;
            a->dims[d] = atoi(tok);
            if (a->dims[d] < 0) goto bad;
            a->n *= (size_t)a->dims[d];
        }
        a->data = malloc((a->n ? a->n : 1) * sizeof(float));
        if (!a->data) goto bad;
        /* Raw little-endian float32: the hosts nnlock runs on are little-endian. */
        if (fread(a->data, sizeof(float), a->n, f) != a->n) { free(a->data); goto bad; }
        g_narr++;
    }
    fclose(f);
    return 0;
bad:
    fprintf(stderr, "%s: malformed after %d arrays\n", path, g_narr);
    fclose(f);
    return -1;
}

static void free_ref(void) {
    for (int i = 0; i < g_narr; i++) free(g_arr[i].data);
    free(g_arr);
    g_arr = NULL;
    g_narr = 0;
}

/* The array of that name (printf-style), or NULL and a failed check. */
static const arr *get(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const arr *get(const char *fmt, ...) {
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    for (int i = 0; i < g_narr; i++)
        if (!strcmp(g_arr[i].name, name)) return &g_arr[i];
    CHECK_MSG(0, "reference array '%s' missing", name);
    return NULL;
}

/* Writes one array of c2py.bin. */
static int g_write_failed;
static void put(FILE *f, const char *name, const char *dtype, const void *data, size_t elsize, int ndim,
                const int *dims) {
    size_t n = 1;
    fprintf(f, "%s %s %d", name, dtype, ndim);
    for (int d = 0; d < ndim; d++) { fprintf(f, " %d", dims[d]); n *= (size_t)dims[d]; }
    fputc('\n', f);
    if (fwrite(data, elsize, n, f) != n) g_write_failed = 1;
}

/* ------------------------------------------------------------------ comparison */

static int g_verbose;              /* NNL_REF_VERBOSE=1: every tensor's errors */
static double g_floor = LAYER_FLOOR;
static double g_case_worst;        /* worst err of the current case */
static char g_case_what[96];       /* and which tensor */

static float *falloc(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    if (!p) { fprintf(stderr, "out of memory\n"); exit(2); }
    return p;
}
static void fill_nan(float *p, size_t n) { for (size_t i = 0; i < n; i++) p[i] = NAN; }

static void note(const char *what, double err) {
    if (err > g_case_worst || !g_case_what[0]) {
        g_case_worst = fmax(err, g_case_worst);
        snprintf(g_case_what, sizeof g_case_what, "%s", what);
    }
}

/* err of a against mult * ref (see the top of the file); scale > 0 overrides the
 * tensor's largest magnitude as the base of the floor. */
static double cmp(const char *cs, const char *what, const float *a, const float *ref, double mult, size_t n,
                  double scale) {
    double worst = 0.0, nw = 0.0;
    size_t wi = 0;
    if (scale <= 0.0)
        for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(mult * ref[i]));
    double floor_ = fmax(g_floor * scale, 1e-30);
    for (size_t i = 0; i < n; i++) {
        double r = mult * (double)ref[i], d = fabs((double)a[i] - r);
        double e = d / fmax(fabs(r), floor_);
        if (isnan(e)) e = INFINITY;
        if (e > worst) { worst = e; wi = i; }
        nw = fmax(nw, d / fmax(scale, 1e-30));
    }
    note(what, worst);
    if (g_verbose) printf("    %-44s err %.2e  (normwise %.2e, max|ref| %.3g)\n", what, worst, nw, scale);
    CHECK_MSG(worst <= RTOL, "%s: %s: max relative error %.3g at [%zu]: %.9g, reference %.9g "
              "(max |ref| %.4g, %zu elements)", cs, what, worst, wi, n ? a[wi] : 0.0,
              n ? mult * ref[wi] : 0.0, scale, n);
    return worst;
}

static double cmp_arr(const char *cs, const char *what, const float *a, const arr *ref, double mult, size_t n) {
    if (!ref) return INFINITY;
    CHECK_MSG(ref->n == n, "%s: %s: %zu elements, reference has %zu", cs, what, n, ref->n);
    if (ref->n != n) return INFINITY;
    return cmp(cs, what, a, ref->data, mult, n, 0.0);
}

static void cmp_scalar(const char *cs, const char *what, double a, double ref) {
    double e = fabs(a - ref) / fabs(ref);
    if (isnan(e)) e = INFINITY;
    note(what, e);
    CHECK_MSG(e <= RTOL, "%s: %s %.9g, PyTorch %.9g (relative error %.3g)", cs, what, a, ref, e);
}

static void case_begin(void) { g_case_worst = 0.0; g_case_what[0] = 0; }
static void case_end(const char *cs) {
    printf("  %-28s max rel err %.2e  (%s)%s\n", cs, g_case_worst, g_case_what,
           g_case_worst <= RTOL ? "" : "  FAIL");
}

/* ------------------------------------------------------------------ whitening */

/* airbench's whitening layer: nnl_model_whiten on images with correlated channels and
 * neighbours, against torch.linalg.eigh of the same patch covariance (airbench94.py's
 * get_whitening_parameters). The weights written here; whiten_case compares. */
#define WH_N 60
static nnl_model *g_whiten;
static int whiten_run(FILE *f) {
    nnl_model *m;
    if (nnl_model_create(&m, "conv24k2w,gelu,flatten,dense", 3, 7, 8, NCLASS) || nnl_model_init(m, 3)) {
        CHECK_MSG(0, "whiten: %s", nnl_errmsg());
        return 1;
    }
    nnl_dataset ds = {0};
    ds.n = WH_N; ds.c = 3; ds.h = 7; ds.w = 8; ds.nclass = NCLASS;
    size_t in = 3 * 7 * 8;
    ds.pixels = malloc(WH_N * in);
    ds.labels = calloc(WH_N, sizeof(int32_t));
    if (!ds.pixels || !ds.labels) { fprintf(stderr, "out of memory\n"); exit(2); }
    nnl_rng r = {77};
    for (int i = 0; i < WH_N; i++) /* a smooth random field per image, channels mixed */
        for (int y = 0; y < 7; y++)
            for (int x = 0; x < 8; x++) {
                float base = 128.0f + 60.0f * sinf(0.7f * (float)x + 0.3f * (float)i) * cosf(0.5f * (float)y + (float)i);
                for (int c = 0; c < 3; c++) {
                    float v = base * (1.0f - 0.2f * (float)c) + 25.0f * nnl_rng_normal(&r) + 20.0f * (float)c;
                    ds.pixels[(size_t)i * in + ((size_t)c * 7 + y) * 8 + x] = (uint8_t)fminf(255.0f, fmaxf(0.0f, v));
                }
            }
    const float mean[3] = {0.45f, 0.4f, 0.5f}, sd[3] = {0.25f, 0.2f, 0.3f};
    int st = nnl_model_set_norm(m, mean, sd);
    if (!st) st = nnl_model_whiten(m, &ds, WH_N, NULL, 5e-4f);
    CHECK_MSG(st == NNL_OK, "whiten: %s", nnl_errmsg());
    uint8_t *px = ds.pixels;
    float *pf = malloc(WH_N * in * sizeof(float));
    if (!pf) exit(2);
    for (size_t i = 0; i < WH_N * in; i++) pf[i] = px[i];
    put(f, "whiten/pixels", "f4", pf, sizeof(float), 4, (int[]){WH_N, 3, 7, 8});
    put(f, "whiten/mean", "f4", mean, sizeof(float), 1, (int[]){3});
    put(f, "whiten/std", "f4", sd, sizeof(float), 1, (int[]){3});
    free(pf);
    nnl_dataset_free(&ds);
    g_whiten = m;
    return st;
}

/* The 12 eigen-filters and their negatives, each up to its sign (eigh's choice). */
static void whiten_case(void) {
    const char *cs = "whiten";
    case_begin();
    const arr *ref = get("whiten/weight");
    if (!g_whiten || !ref) return;
    const nnl_layer *L = &g_whiten->layers[0];
    const float *w = g_whiten->params + L->w_off;
    CHECK_MSG(ref->n == L->w_n && L->w_n == 24 * 12, "whiten: %zu weights, PyTorch %zu", L->w_n, ref->n);
    if (ref->n != L->w_n) return;
    float flipped[24 * 12];
    for (int i = 0; i < 12; i++) {
        double dot = 0;
        for (int k = 0; k < 12; k++) dot += (double)w[i * 12 + k] * ref->data[i * 12 + k];
        float s = dot < 0 ? -1.0f : 1.0f;
        for (int k = 0; k < 12; k++) {
            flipped[i * 12 + k] = s * ref->data[i * 12 + k];
            flipped[(i + 12) * 12 + k] = s * ref->data[(i + 12) * 12 + k];
        }
    }
    cmp(cs, "weight (up to each eigenvector's sign)", w, flipped, 1.0, L->w_n, 0.0);
    case_end(cs);
}

/* ------------------------------------------------------------------ single layers */

typedef struct lcase {
    const char *name;
    int kind, units, k, stride, pad, training;
    float p;
    int nobias;
} lcase;

static const lcase LCASES[] = {
    {"dense_3d", NNL_L_DENSE, 7, 0, 0, 0, 1, 0, 0},
    {"dense_flat", NNL_L_DENSE, 9, 0, 0, 0, 1, 0, 0},
    {"conv_k3s1p1", NNL_L_CONV2D, 4, 3, 1, 1, 1, 0, 0},
    {"conv_k3s2p1", NNL_L_CONV2D, 5, 3, 2, 1, 1, 0, 0},
    {"conv_k3s1p0", NNL_L_CONV2D, 3, 3, 1, 0, 1, 0, 0},
    {"conv_k1", NNL_L_CONV2D, 4, 1, 1, 0, 1, 0, 0},
    {"conv_k1_single", NNL_L_CONV2D, 3, 1, 1, 0, 1, 0, 0},
    {"conv_k5p2", NNL_L_CONV2D, 6, 5, 1, 2, 1, 0, 0},
    {"maxpool2", NNL_L_MAXPOOL, 0, 2, 2, 0, 1, 0, 0},
    {"maxpool2_odd", NNL_L_MAXPOOL, 0, 2, 2, 0, 1, 0, 0},
    {"maxpool3s2", NNL_L_MAXPOOL, 0, 3, 2, 0, 1, 0, 0},
    {"avgpool2", NNL_L_AVGPOOL, 0, 2, 2, 0, 1, 0, 0},
    {"avgpool3s2", NNL_L_AVGPOOL, 0, 3, 2, 0, 1, 0, 0},
    {"gap", NNL_L_GAP, 0, 0, 0, 0, 1, 0, 0},
    {"bn_conv_train", NNL_L_BATCHNORM, 0, 0, 0, 0, 1, 0, 0},
    {"bn_conv_train_offset", NNL_L_BATCHNORM, 0, 0, 0, 0, 1, 0, 0},
    {"bn_dense_train", NNL_L_BATCHNORM, 0, 0, 0, 0, 1, 0, 0},
    {"bn_conv_eval", NNL_L_BATCHNORM, 0, 0, 0, 0, 0, 0, 0},
    {"bn_dense_eval", NNL_L_BATCHNORM, 0, 0, 0, 0, 0, 0, 0},
    {"relu", NNL_L_RELU, 0, 0, 0, 0, 1, 0, 0},
    {"gelu", NNL_L_GELU, 0, 0, 0, 0, 1, 0, 0},
    {"scale", NNL_L_SCALE, 0, 0, 0, 0, 1, 0.37f, 0},
    {"conv_k3s1p1_nobias", NNL_L_CONV2D, 4, 3, 1, 1, 1, 0, 1},
    {"dense_nobias", NNL_L_DENSE, 9, 0, 0, 0, 1, 0, 1},
    {"flatten", NNL_L_FLATTEN, 0, 0, 0, 0, 1, 0, 0},
    {"dropout_eval", NNL_L_DROPOUT, 0, 0, 0, 0, 0, 0.5f, 0},
    {"add", NNL_L_ADD, 0, 0, 0, 0, 1, 0, 0},
};

static void layer_case(const lcase *c) {
    const char *cs = c->name;
    case_begin();
    const arr *x = get("%s/x", cs), *y = get("%s/y", cs), *dy = get("%s/dy", cs), *dx = get("%s/dx", cs);
    if (!x || !y || !dy || !dx) return;
    CHECK_MSG(x->ndim == 2 || x->ndim == 4, "%s: x has %d dimensions", cs, x->ndim);
    if (x->ndim != 2 && x->ndim != 4) return;
    const int n = x->dims[0];
    nnl_layer L;
    memset(&L, 0, sizeof L);
    L.kind = c->kind; L.units = c->units; L.k = c->k; L.stride = c->stride; L.pad = c->pad; L.p = c->p;
    L.nobias = c->nobias;
    L.in = x->ndim == 4 ? (nnl_shape){x->dims[1], x->dims[2], x->dims[3]} : (nnl_shape){x->dims[1], 1, 1};
    L.index = 3;
    const nnl_layer_ops *ops = nnl_layer_ops_of(c->kind);
    int st = ops->setup(&L);
    CHECK_MSG(st == NNL_OK, "%s: setup: %s", cs, nnl_errmsg());
    if (st) return;
    const size_t nin = x->n, nout = (size_t)n * nnl_shape_size(L.out);
    CHECK_MSG(nout == y->n, "%s: %zu outputs, PyTorch gives %zu", cs, nout, y->n);
    if (nout != y->n) return;
    L.w_off = 0; L.b_off = L.w_n; L.s_off = 0;
    const size_t np = L.w_n + L.b_n, wn = ops->work_floats(&L, n);
    float *params = falloc(np), *grads = falloc(np), *state = falloc(L.s_n);
    float *save = falloc(ops->save_floats(&L, n)), *work = falloc(wn);
    float *yb = falloc(nout), *dxb = falloc(nin), *dskip = falloc(nin);
    float *p_grads[2] = {grads + L.w_off, grads + L.b_off};
    size_t p_n[2] = {L.w_n, L.b_n};
    const arr *dp[2] = {NULL, NULL}, *skip = NULL, *dskip_ref = NULL;
    int ok = 1;
    for (int i = 0; i < 2; i++) {
        if (!p_n[i]) continue;
        const arr *p = get("%s/p%d", cs, i);
        dp[i] = get("%s/dp%d", cs, i);
        if (!p || !dp[i] || p->n != p_n[i] || dp[i]->n != p_n[i]) {
            CHECK_MSG(0, "%s: parameter %d: %zu floats expected", cs, i, p_n[i]);
            ok = 0;
            break;
        }
        memcpy(params + (i ? L.b_off : L.w_off), p->data, p_n[i] * sizeof(float));
    }
    if (ok && L.s_n) {
        const arr *rm = get("%s/rm", cs), *rv = get("%s/rv", cs);
        if (!rm || !rv || rm->n * 2 != L.s_n || rv->n * 2 != L.s_n) {
            CHECK_MSG(0, "%s: running statistics: %zu floats expected", cs, L.s_n);
            ok = 0;
        } else {
            memcpy(state, rm->data, rm->n * sizeof(float));
            memcpy(state + rm->n, rv->data, rv->n * sizeof(float));
        }
    }
    if (ok && c->kind == NNL_L_ADD) {
        skip = get("%s/skip", cs);
        dskip_ref = get("%s/dskip", cs);
        if (!skip || !dskip_ref || skip->n != nin) ok = 0;
        else {
            L.skip = skip->data;
            L.dskip = dskip;
            memset(dskip, 0, nin * sizeof(float));
        }
    }
    if (!ok) goto done;
    L.save = save;
    nnl_pass P;
    memset(&P, 0, sizeof P);
    P.n = n; P.training = c->training;
    P.params = params; P.grads = grads; P.state = state; P.work = work;
    P.seed = 1; P.step = 0; P.bn_momentum = 0.1f; P.bn_eps = 1e-5f;

    fill_nan(yb, nout);
    fill_nan(work, wn);
    ops->forward(&L, &P, x->data, yb);
    cmp_arr(cs, "y", yb, y, 1.0, nout);
    if (L.s_n) {
        const size_t half = L.s_n / 2;
        if (c->training) {
            cmp_arr(cs, "running_mean", state, get("%s/rm_out", cs), 1.0, half);
            cmp_arr(cs, "running_var", state + half, get("%s/rv_out", cs), 1.0, half);
        } else {
            const arr *rm = get("%s/rm", cs), *rv = get("%s/rv", cs);
            CHECK_MSG(!memcmp(state, rm->data, half * sizeof(float)) &&
                      !memcmp(state + half, rv->data, half * sizeof(float)),
                      "%s: eval-mode forward changed the running statistics", cs);
        }
    }
    /* Backward three times: gradients; accumulation (2x) with dx overwritten; dx == NULL (3x). */
    static const char *const pname[2] = {"dweight", "dbias"};
    memset(grads, 0, np * sizeof(float));
    for (int rep = 1; rep <= 3; rep++) {
        char what[64];
        fill_nan(dxb, nin);
        fill_nan(work, wn);
        ops->backward(&L, &P, x->data, yb, dy->data, rep < 3 ? dxb : NULL);
        if (rep < 3) {
            snprintf(what, sizeof what, "dx (backward #%d)", rep);
            cmp_arr(cs, what, dxb, dx, 1.0, nin);
        }
        for (int i = 0; i < 2; i++) {
            if (!p_n[i]) continue;
            snprintf(what, sizeof what, rep == 1 ? "%s" : "%s (accumulated x%d)", pname[i], rep);
            cmp_arr(cs, what, p_grads[i], dp[i], (double)rep, p_n[i]);
        }
        if (dskip_ref) {
            snprintf(what, sizeof what, rep == 1 ? "dskip" : "dskip (accumulated x%d)", rep);
            cmp_arr(cs, what, dskip, dskip_ref, (double)rep, nin);
        }
    }
done:
    free(params); free(grads); free(state); free(save); free(work);
    free(yb); free(dxb); free(dskip);
    case_end(cs);
}

/* ------------------------------------------------------------------ loss */

static void xent_case(const char *cs) {
    case_begin();
    const arr *z = get("%s/logits", cs), *t = get("%s/target", cs), *sm = get("%s/smoothing", cs);
    const arr *loss = get("%s/loss", cs), *dz = get("%s/dlogits", cs), *corr = get("%s/correct", cs);
    if (!z || !t || !sm || !loss || !dz || !corr || z->ndim != 2) return;
    const int n = z->dims[0], k = z->dims[1];
    const int soft = t->ndim == 2;
    int32_t *labels = malloc((size_t)n * sizeof(int32_t));
    float *d = falloc((size_t)n * k);
    if (!labels) { fprintf(stderr, "out of memory\n"); exit(2); }
    if (!soft)
        for (int i = 0; i < n; i++) labels[i] = (int32_t)t->data[i];
    fill_nan(d, (size_t)n * k);
    int64_t correct = 0;
    double l = nnl_softmax_xent(z->data, soft ? NULL : labels, soft ? t->data : NULL, n, k, sm->data[0], d,
                                &correct);
    cmp_scalar(cs, "loss", l, loss->data[0]);
    cmp_arr(cs, "dlogits", d, dz, 1.0, (size_t)n * k);
    CHECK_MSG(correct == (int64_t)corr->data[0], "%s: %lld correct, expected %d", cs, (long long)correct,
              (int)corr->data[0]);
    free(labels); free(d);
    case_end(cs);
}

/* ------------------------------------------------------------------ whole models */

typedef struct mrun {
    const char *name;
    int optimizer, nesterov;
    float lr, eps;
    /* 0: the defaults (momentum 0.9, no label smoothing, batch-norm biases at the plain rate,
     * batch-norm momentum 0.1) */
    float momentum, smoothing, bn_bias_lr, bn_momentum;
    int la_every;            /* Lookahead every this many steps (decay LA_DECAY, power LA_POW); 0: off */
} mrun;

/* Lookahead's settings in the tests: strong enough in 5 steps to move the result far past
 * the tolerance if any part of it were wrong (airbench's 0.95 and 3 barely act so soon). */
#define LA_DECAY 0.8f
#define LA_POW 1.0f

typedef struct mdef {
    const char *name;
    int c, h, w;
    uint64_t seed;
    int nruns;
    mrun runs[3];
    const char *arch;        /* NULL: the name is the preset */
} mdef;

/* Adam's eps. With PyTorch's default 1e-8, an element whose gradient is of the order
 * of eps gets an update anywhere up to lr from a gradient that is mostly rounding
 * error: float32 against float64 then differs by ~1e-3 after 5 steps (PyTorch's own
 * float32 too; 7e-5 with eps 1e-6, 2e-5 with 1e-5). With 1e-4 the error is ~1e-5 and
 * the normalisation still acts on most gradients (up to 0.2 here). */
#define ADAM_EPS 1e-4f

static const mdef MODELS[] = {
    {"mlp", 1, 28, 28, 11, 3,
     {{"sgd", NNL_OPT_SGD, 0, 0.05f, 0, 0, 0, 0, 0, 0}, {"nesterov", NNL_OPT_SGD, 1, 0.05f, 0, 0, 0, 0, 0, 0},
      {"adam", NNL_OPT_ADAM, 0, 1e-3f, ADAM_EPS, 0, 0, 0, 0, 0}}, NULL},
    {"cnn", 3, 32, 32, 12, 2,
     {{"sgd", NNL_OPT_SGD, 0, 0.05f, 0, 0, 0, 0, 0, 0}, {"nesterov", NNL_OPT_SGD, 1, 0.05f, 0, 0, 0, 0, 0, 0}}, NULL},
    /* airbench's parts (torch_ref.py airmini): a whitening layer whose weights stay, GELU,
     * a convolution without bias, a batch-norm with its scale fixed and its bias at 64 times
     * the rate (a 64th of the decay), a linear layer without bias, a constant factor; Nesterov
     * with momentum 0.85, label smoothing 0.2, batch-norm momentum 0.4. */
    {"airmini", 3, 9, 9, 13, 1, {{"airbench", NNL_OPT_SGD, 1, 0.05f, 0, 0.85f, 0.2f, 64.0f, 0.4f, 2}},
     "conv24k2w,gelu,conv16k3p1b0,maxpool2,bnb,gelu,flatten,denseb0,scale0.5"},
};
#define NMODELS (int)(sizeof MODELS / sizeof MODELS[0])

typedef struct mres {
    nnl_model *m;
    double loss[STEPS];
    float *grad0;            /* gradients of the first step (first run only) */
    /* airmini: test-time augmentation of the trained model (levels 1, 2) on 8-bit images */
    int tta;
    double tta_loss[3];
    int64_t tta_correct[3];
} mres;

static mres g_res[NMODELS][3];

/* PyTorch's shape of one of the model's tensors ("layers.<i>.<what>"). */
static int tensor_shape(const nnl_model *m, const char *name, size_t count, int *dims) {
    int li = -1;
    char what[32] = "";
    if (sscanf(name, "layers.%d.%31s", &li, what) != 2 || li < 0 || li >= m->nlayers) return -1;
    const nnl_layer *L = &m->layers[li];
    if (!strcmp(what, "weight") && L->kind == NNL_L_DENSE) {
        dims[0] = L->units; dims[1] = (int)(count / (size_t)L->units);
        return 2;
    }
    if (!strcmp(what, "weight") && L->kind == NNL_L_CONV2D) {
        dims[0] = L->units; dims[1] = L->in.c; dims[2] = L->k; dims[3] = L->k;
        return 4;
    }
    dims[0] = (int)count;
    return 1;
}

/* Initial weights: the library's initialisation, then biases and batch-norm parameters
 * and statistics off their initial values, so that every path carries a gradient. */
static void init_model(nnl_model *m, uint64_t seed) {
    nnl_model_init(m, seed);
    nnl_rng r = nnl_rng_derive(seed, 99);
    for (int i = 0; i < m->nlayers; i++) {
        const nnl_layer *L = &m->layers[i];
        float *w = m->params + L->w_off, *b = m->params + L->b_off, *s = m->state + L->s_off;
        /* He-uniform (bound sqrt(6 / fan_in)) scaled to PyTorch's default bound 1 / sqrt(fan_in):
         * from He-uniform, lr 0.05 and momentum 0.9 make the loss explode on random data
         * (2.8 -> 180 in 5 steps) and rounding differences grow without bound. */
        if (L->kind == NNL_L_DENSE || L->kind == NNL_L_CONV2D) {
            for (size_t j = 0; j < L->w_n; j++) w[j] *= 0.40824829f;
            for (size_t j = 0; j < L->b_n; j++) b[j] = 0.1f * (nnl_rng_uniform(&r) - 0.5f);
        }
        if (L->kind == NNL_L_BATCHNORM)
            for (size_t j = 0; j < L->w_n; j++) {
                w[j] = 0.5f + nnl_rng_uniform(&r);
                b[j] = 0.2f * (nnl_rng_uniform(&r) - 0.5f);
                s[j] = 0.2f * (nnl_rng_uniform(&r) - 0.5f);
                s[L->w_n + j] = 0.5f + nnl_rng_uniform(&r);
            }
    }
}

/* Runs every model's steps, writing their inputs and decisions to f. */
static int run_models(FILE *f) {
    for (int mi = 0; mi < NMODELS; mi++) {
        const mdef *d = &MODELS[mi];
        nnl_model *m0 = NULL;
        const char *arch = d->arch ? d->arch : d->name;
        int st = nnl_model_create(&m0, arch, d->c, d->h, d->w, NCLASS);
        CHECK_MSG(st == NNL_OK, "%s: create: %s", d->name, nnl_errmsg());
        if (st) return -1;
        init_model(m0, d->seed);
        char name[256];
        int dims[8];
        for (int i = 0; i < nnl_model_tensor_count(m0); i++) {
            const char *tn;
            size_t cnt;
            float *p = nnl_model_tensor(m0, i, &tn, &cnt);
            int nd = tensor_shape(m0, tn, cnt, dims);
            CHECK_MSG(nd > 0, "%s: unexpected tensor name %s", d->name, tn);
            if (nd <= 0) { nnl_model_free(m0); return -1; }
            snprintf(name, sizeof name, "%s/init/%s", d->name, tn);
            put(f, name, "f4", p, sizeof(float), nd, dims);
        }
        const size_t in = nnl_shape_size(m0->input);
        float *x = falloc((size_t)STEPS * BATCH * in);
        int32_t labels[STEPS * BATCH];
        nnl_rng r = nnl_rng_derive(d->seed, 7);
        for (size_t i = 0; i < (size_t)STEPS * BATCH * in; i++) x[i] = nnl_rng_normal(&r);
        for (int i = 0; i < STEPS * BATCH; i++) labels[i] = (int32_t)nnl_rng_below(&r, NCLASS);
        snprintf(name, sizeof name, "%s/x", d->name);
        put(f, name, "f4", x, sizeof(float), 5, (int[]){STEPS, BATCH, d->c, d->h, d->w});
        snprintf(name, sizeof name, "%s/labels", d->name);
        put(f, name, "i4", labels, sizeof(int32_t), 2, (int[]){STEPS, BATCH});

        for (int ri = 0; ri < d->nruns; ri++) {
            const mrun *run = &d->runs[ri];
            double t_run = nnl_now();
            mres *res = &g_res[mi][ri];
            nnl_model *m = NULL;
            if ((st = nnl_model_create(&m, arch, d->c, d->h, d->w, NCLASS)) == NNL_OK)
                st = nnl_model_prepare(m, BATCH);
            CHECK_MSG(st == NNL_OK, "%s: %s", d->name, nnl_errmsg());
            if (st) { nnl_model_free(m); break; }
            res->m = m;
            memcpy(m->params, m0->params, m->nparams * sizeof(float));
            memcpy(m->state, m0->state, m->nstate * sizeof(float));
            nnl_train_opts o;
            nnl_train_opts_default(&o);
            o.optimizer = run->optimizer; o.lr = run->lr; o.nesterov = run->nesterov;
            o.momentum = run->momentum > 0 ? run->momentum : 0.9f; o.weight_decay = 5e-4f;
            o.beta1 = 0.9f; o.beta2 = 0.999f;
            o.label_smoothing = run->smoothing;
            o.bn_bias_lr = run->bn_bias_lr;
            float bn_mom = run->bn_momentum > 0 ? run->bn_momentum : 0.1f;
            if (run->optimizer == NNL_OPT_ADAM) o.eps = run->eps;
            nnl_optim opt;
            st = nnl_optim_init(&opt, m->nparams, &o);
            CHECK_MSG(st == NNL_OK, "%s/%s: optimizer: %s", d->name, run->name, nnl_errmsg());
            if (st) break;
            nnl_optim_segments(&opt, m, &o, 0.0);
            o.ema_every = run->la_every; o.ema_start = 0.0f; o.ema_decay = LA_DECAY; o.ema_pow = LA_POW;
            nnl_lookahead la;
            st = nnl_lookahead_init(&la, &o, m, STEPS);
            CHECK_MSG(st == NNL_OK, "%s/%s: Lookahead: %s", d->name, run->name, nnl_errmsg());
            if (st) break;
            const float hyper[16] = {(float)run->optimizer, o.lr, o.momentum, o.weight_decay, (float)o.nesterov,
                                     o.beta1, o.beta2, o.eps, ri == 0, o.label_smoothing, o.bn_bias_lr, bn_mom,
                                     (float)o.ema_every, o.ema_decay, o.ema_pow, STEPS};
            snprintf(name, sizeof name, "%s/%s/hyper", d->name, run->name);
            put(f, name, "f4", hyper, sizeof(float), 1, (int[]){16});
            float dlog[BATCH * NCLASS];
            for (int t = 0; t < STEPS; t++) {
                const float *z = nnl_model_forward(m, x + (size_t)t * BATCH * in, BATCH, 1, 1, (uint64_t)t, bn_mom);
                /* Our ReLU masks and max-pool arg-maxes of this step, for the reference's ties. */
                for (int i = 0; i < m->nlayers; i++) {
                    const nnl_layer *L = &m->layers[i];
                    size_t cnt = (size_t)BATCH * nnl_shape_size(L->out);
                    dims[0] = BATCH; dims[1] = L->out.c; dims[2] = L->out.h; dims[3] = L->out.w;
                    if (L->kind == NNL_L_RELU) {
                        uint8_t *mask = malloc(cnt);
                        if (!mask) { fprintf(stderr, "out of memory\n"); exit(2); }
                        for (size_t j = 0; j < cnt; j++) mask[j] = m->acts[i + 1][j] > 0.0f;
                        snprintf(name, sizeof name, "%s/%s/step%d/relu%d", d->name, run->name, t, i);
                        put(f, name, "u1", mask, 1, 4, dims);
                        free(mask);
                    } else if (L->kind == NNL_L_MAXPOOL) {
                        snprintf(name, sizeof name, "%s/%s/step%d/maxpool%d", d->name, run->name, t, i);
                        put(f, name, "i4", L->save, sizeof(int32_t), 4, dims);
                    }
                }
                res->loss[t] = nnl_softmax_xent(z, labels + t * BATCH, NULL, BATCH, NCLASS, o.label_smoothing, dlog, NULL);
                nnl_model_zero_grad(m);
                nnl_model_backward(m, dlog, BATCH);
                if (t == 0 && ri == 0) {
                    res->grad0 = falloc(m->nparams);
                    memcpy(res->grad0, m->grads, m->nparams * sizeof(float));
                }
                nnl_optim_step(&opt, m->params, m->grads, o.lr);
                st = nnl_lookahead_step(&la, m, (uint64_t)t + 1, 0.0);
                CHECK_MSG(st == NNL_OK, "%s/%s: Lookahead: %s", d->name, run->name, nnl_errmsg());
            }
            nnl_lookahead_finish(&la, m);
            nnl_lookahead_free(&la);
            nnl_optim_free(&opt);
            if (d->arch) {
                /* Test-time augmentation on 8-bit images normalised to their own values (mean 0,
                 * std 1/255), so that PyTorch sees the same floats. */
                nnl_dataset ds = {0};
                ds.n = BATCH; ds.c = d->c; ds.h = d->h; ds.w = d->w; ds.nclass = NCLASS;
                ds.pixels = malloc((size_t)BATCH * in);
                ds.labels = malloc(BATCH * sizeof(int32_t));
                if (!ds.pixels || !ds.labels) { fprintf(stderr, "out of memory\n"); exit(2); }
                float *xf = falloc((size_t)BATCH * in);
                for (size_t i = 0; i < (size_t)BATCH * in; i++) xf[i] = ds.pixels[i] = (uint8_t)nnl_rng_below(&r, 256);
                for (int i = 0; i < BATCH; i++) ds.labels[i] = (int32_t)nnl_rng_below(&r, NCLASS);
                snprintf(name, sizeof name, "%s/%s/tta_x", d->name, run->name);
                put(f, name, "f4", xf, sizeof(float), 4, (int[]){BATCH, d->c, d->h, d->w});
                snprintf(name, sizeof name, "%s/%s/tta_labels", d->name, run->name);
                put(f, name, "i4", ds.labels, sizeof(int32_t), 1, (int[]){BATCH});
                float mean[NNL_MAX_CHANNELS] = {0}, sd[NNL_MAX_CHANNELS];
                for (int k = 0; k < NNL_MAX_CHANNELS; k++) sd[k] = 1.0f / 255.0f;
                nnl_model_set_norm(m, mean, sd);
                for (int lv = 1; lv <= 2; lv++) {
                    nnl_eval ev;
                    st = nnl_evaluate_tta(m, &ds, NULL, BATCH, lv, &ev);
                    CHECK_MSG(st == NNL_OK, "%s: tta: %s", d->name, nnl_errmsg());
                    res->tta_loss[lv] = ev.loss;
                    res->tta_correct[lv] = ev.correct;
                    nnl_eval_free(&ev);
                }
                res->tta = 1;
                free(xf);
                nnl_dataset_free(&ds);
            }
            if (g_verbose) printf("  ran %s/%s: %.2f s\n", d->name, run->name, nnl_now() - t_run);
        }
        free(x);
        nnl_model_free(m0);
    }
    return 0;
}

/* The largest |value| of the reference gradient of layer li's weight. */
static double weight_grad_scale(const char *mname, const char *run, int li) {
    char nm[64];
    snprintf(nm, sizeof nm, "%s/%s/grad0/layers.%d.weight", mname, run, li);
    for (int i = 0; i < g_narr; i++)
        if (!strcmp(g_arr[i].name, nm)) {
            double s = 0.0;
            for (size_t j = 0; j < g_arr[i].n; j++) s = fmax(s, fabs(g_arr[i].data[j]));
            return s;
        }
    return 0.0;
}

static void compare_model(int mi, int ri) {
    const mdef *d = &MODELS[mi];
    const char *run = d->runs[ri].name;
    mres *res = &g_res[mi][ri];
    char cs[64];
    snprintf(cs, sizeof cs, "%s/%s", d->name, run);
    case_begin();
    nnl_model *m = res->m;
    if (!m) { CHECK_MSG(0, "%s: did not run", cs); return; }
    const arr *loss = get("%s/loss", cs), *bad = get("%s/bad_decisions", cs), *tied = get("%s/tied_decisions", cs);
    if (!loss || !bad || !tied || loss->n != STEPS) return;
    for (int t = 0; t < STEPS; t++) {
        char what[32];
        snprintf(what, sizeof what, "loss of step %d", t + 1);
        cmp_scalar(cs, what, res->loss[t], loss->data[t]);
    }
    CHECK_MSG(bad->data[0] == 0, "%s: %.0f ReLU or max-pool decisions differ from PyTorch's beyond rounding",
              cs, (double)bad->data[0]);
    const int nt = nnl_model_tensor_count(m);
    for (int i = 0; i < nt && res->grad0; i++) {
        const char *name;
        size_t cnt;
        float *p = nnl_model_tensor(m, i, &name, &cnt);
        if (p < m->params || p >= m->params + m->nparams) continue; /* running statistics */
        int lw = -1;
        /* A weight that is not trained has no gradient in PyTorch (requires_grad False). */
        if (sscanf(name, "layers.%d.", &lw) == 1 && lw < m->nlayers && m->layers[lw].fixed_w && strstr(name, ".weight")) continue;
        char nm[64], what[96];
        snprintf(nm, sizeof nm, "%s", name);
        snprintf(what, sizeof what, "step 1 gradient %s", nm);
        const arr *g = get("%s/grad0/%s", cs, nm);
        if (!g || g->n != cnt) { CHECK_MSG(0, "%s: %s: bad reference", cs, what); continue; }
        /* A convolution's bias before a batch norm: zero gradient, judged on the weight gradient's scale. */
        double scale = 0.0;
        int li = -1;
        if (sscanf(nm, "layers.%d.", &li) == 1 && li + 1 < m->nlayers && m->layers[li].kind == NNL_L_CONV2D &&
            m->layers[li + 1].kind == NNL_L_BATCHNORM && strstr(nm, ".bias"))
            scale = weight_grad_scale(d->name, run, li);
        cmp(cs, what, res->grad0 + (p - m->params), g->data, 1.0, cnt, scale);
    }
    for (int i = 0; i < nt; i++) {
        const char *name;
        size_t cnt;
        float *p = nnl_model_tensor(m, i, &name, &cnt);
        char nm[64];
        snprintf(nm, sizeof nm, "%s", name);
        cmp_arr(cs, nm, p, get("%s/final/%s", cs, nm), 1.0, cnt);
    }
    for (int lv = 1; res->tta && lv <= 2; lv++) {
        const arr *tl = get("%s/tta%d_loss", cs, lv), *tc = get("%s/tta%d_correct", cs, lv);
        if (!tl || !tc) continue;
        char what[32];
        snprintf(what, sizeof what, "TTA level %d loss", lv);
        cmp_scalar(cs, what, res->tta_loss[lv], tl->data[0]);
        CHECK_MSG(res->tta_correct[lv] == (int64_t)tc->data[0], "%s: TTA level %d: %lld correct, PyTorch %d", cs, lv,
                  (long long)res->tta_correct[lv], (int)tc->data[0]);
    }
    case_end(cs);
    printf("  %-28s %.0f tied ReLU/max-pool decisions taken from nnlock\n", "", (double)tied->data[0]);
}

/* ------------------------------------------------------------------ main */

/* Runs argv (no shell); returns the exit status, or -1. */
static int run(char *const argv[], int quiet) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        if (quiet && !freopen("/dev/null", "w", stderr)) _exit(127);
        execv(argv[0], argv);
        _exit(127);
    }
    int ws;
    while (waitpid(pid, &ws, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
}

static int skip_or_fail(const char *why) {
    const char *req = getenv("NNL_REQUIRE_TORCH");
    if (req && !strcmp(req, "1")) {
        fprintf(stderr, "test_torch_ref: %s, and NNL_REQUIRE_TORCH=1: failing\n", why);
        return 1;
    }
    fprintf(stderr, "test_torch_ref: SKIPPED: %s (install python3-torch; NNL_REQUIRE_TORCH=1 makes this "
                    "a failure)\n", why);
    return 77;
}

int main(void) {
    static const char *py = "/usr/bin/python3";
    const char *verbose = getenv("NNL_REF_VERBOSE");
    g_verbose = verbose && !strcmp(verbose, "1");
    if (access(py, X_OK) != 0) return skip_or_fail("/usr/bin/python3 is not installed");
    char *probe[] = {(char *)py, "-c", "import torch", NULL};
    if (run(probe, 1) != 0) return skip_or_fail("/usr/bin/python3 cannot import torch");

    char script[1024], outdir[512], c2py[600], refpath[600];
    const char *src = getenv("NNL_SOURCE_DIR");
    if (src && *src) snprintf(script, sizeof script, "%s/tests/ref/torch_ref.py", src);
    else {
        /* Outside ctest: next to this source file (CMake compiles it by absolute path). */
        snprintf(script, sizeof script, "%s", __FILE__);
        char *slash = strrchr(script, '/');
        size_t at = slash ? (size_t)(slash + 1 - script) : 0;
        snprintf(script + at, sizeof script - at, "ref/torch_ref.py");
    }
    snprintf(outdir, sizeof outdir, "%s/torch_ref", nnl_test_tmpdir());
    snprintf(c2py, sizeof c2py, "%s/c2py.bin", outdir);
    snprintf(refpath, sizeof refpath, "%s/ref.bin", outdir);
    if (mkdir(outdir, 0700) != 0 && errno != EEXIST) { perror(outdir); return 1; }

    double t0 = nnl_now();
    FILE *f = fopen(c2py, "wb");
    if (!f) { perror(c2py); return 1; }
    fputs("NNLREF2\n", f);
    int st = run_models(f);
    if (!st) st = whiten_run(f);
    if (fclose(f) != 0 || g_write_failed) { fprintf(stderr, "%s: write failed\n", c2py); return 1; }
    if (st) return nnl_test_finish("test_torch_ref");
    double t_models = nnl_now() - t0;

    t0 = nnl_now();
    char *gen[] = {(char *)py, script, outdir, NULL};
    int rc = run(gen, 0);
    if (rc != 0) {
        fprintf(stderr, "test_torch_ref: %s %s %s failed (exit status %d)\n", py, script, outdir, rc);
        return 1;
    }
    if (load_ref(refpath) != 0) return 1;
    printf("PyTorch reference: %d arrays in %.1f s (our model runs: %.1f s)\n", g_narr, nnl_now() - t0, t_models);
    printf("tolerance: err = max |a - r| / max(|r|, F * max |r|) <= %.0e, F = %g for layers and the loss, "
           "%g for models\n", RTOL, LAYER_FLOOR, MODEL_FLOOR);

    printf("layers:\n");
    for (size_t i = 0; i < sizeof LCASES / sizeof LCASES[0]; i++) layer_case(&LCASES[i]);
    printf("softmax cross-entropy:\n");
    static const char *const xc[] = {"xent_hard", "xent_soft", "xent_hard_ls", "xent_soft_ls", "xent_hard_large"};
    for (size_t i = 0; i < sizeof xc / sizeof xc[0]; i++) xent_case(xc[i]);
    printf("whitening layer (patch covariance eigenvectors):\n");
    whiten_case();
    nnl_model_free(g_whiten);
    printf("%d optimizer steps, batch %d (losses, step-1 gradients of the first run, final weights "
           "and statistics):\n", STEPS, BATCH);
    g_floor = MODEL_FLOOR;
    for (int mi = 0; mi < NMODELS; mi++)
        for (int ri = 0; ri < MODELS[mi].nruns; ri++) {
            compare_model(mi, ri);
            nnl_model_free(g_res[mi][ri].m);
            free(g_res[mi][ri].grad0);
        }
    fflush(stdout);
    free_ref();

    if (nnl_test_failures == 0) {
        unlink(c2py);
        unlink(refpath);
        rmdir(outdir);
        rmdir(nnl_test_tmpdir());
    } else {
        fprintf(stderr, "test_torch_ref: inputs and reference kept in %s\n", outdir);
    }
    return nnl_test_finish("test_torch_ref");
}
