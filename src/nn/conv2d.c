/* 2-D convolution through im2col + sgemm, with PyTorch's weight layout (OC,C,K,K).
 *
 * The batch is split into one contiguous block of images per thread; each thread
 * runs single-threaded sgemms on its own slice of P->work (OpenBLAS's OpenMP build
 * does not fork inside a parallel region). A thread packs several images into one
 * column matrix when the images are small, because sgemm is much faster on a wide
 * matrix than on, say, the 64 columns of an 8x8 feature map. Weight gradients go to
 * a per-thread slice (thread 0 adds straight into P->grads) and are reduced in
 * thread order, so results depend on the thread count and the batch size only. */
#include "layer.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

/* Columns (images x output pixels) one sgemm should see at least, and the most
 * floats a thread's column matrix may take (4 MiB: sgemm packs its panels anyway, so
 * the matrix need not fit a cache). A 1x1 convolution packs only tiny images:
 * unpacked it needs no copy at all. Measured on the CNN preset's shapes: packing 8x8
 * and smaller maps gains 20-40%; on resnet9's 512-channel 8x8 and 4x4 layers, a cap
 * of 1 MiB (1 and 3 images per sgemm) left them 10-15% slower than this one. */
#define CONV_MIN_COLS 256
#define CONV_MIN_COLS_DIRECT 64
#define CONV_MAX_COL_FLOATS (1u << 20)

typedef struct cgeo {
    int c, h, w, oc, k, s, p, oh, ow;
    size_t hw, ohw, ckk;
    int direct;   /* 1x1, stride 1, no padding: an image already is its column matrix */
} cgeo;

static cgeo geo(const nnl_layer *L) {
    cgeo g;
    g.c = L->in.c; g.h = L->in.h; g.w = L->in.w;
    g.oc = L->units; g.k = L->k; g.s = L->stride; g.p = L->pad;
    g.oh = L->out.h; g.ow = L->out.w;
    g.hw = (size_t)g.h * g.w;
    g.ohw = (size_t)g.oh * g.ow;
    g.ckk = (size_t)g.c * g.k * g.k;
    g.direct = g.k == 1 && g.s == 1 && g.p == 0;
    return g;
}

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

/* Threads for a batch of n: a single image is better served by OpenBLAS's own
 * threads than by a team where all but one thread idles. */
static int team_size(int n) {
    int t = nnl_threads();
    if (t > n) t = n;
    return t < 1 ? 1 : t;
}

/* Images per sgemm for a batch of n split over t threads. */
static int chunk_size(const cgeo *g, int n, int t) {
    int per = (n + t - 1) / t;
    size_t want = g->direct ? CONV_MIN_COLS_DIRECT : CONV_MIN_COLS;
    int b = (int)((want + g->ohw - 1) / g->ohw);
    size_t cap = CONV_MAX_COL_FLOATS / (g->ckk * g->ohw);
    if ((size_t)b > cap) b = cap < 1 ? 1 : (int)cap;
    if (b > per) b = per;
    return b < 1 ? 1 : b;
}

typedef struct slice { size_t col, tmp, dw, db, stride; } slice;

/* Offsets within one thread's part of P->work. */
static slice slice_of(const cgeo *g, int b) {
    slice s;
    size_t cols = (size_t)b * g->ohw;
    s.col = 0;
    s.tmp = s.col + (b == 1 && g->direct ? 0 : round16(g->ckk * cols));
    s.dw = s.tmp + (b == 1 ? 0 : round16((size_t)g->oc * cols));
    s.db = s.dw + round16((size_t)g->oc * g->ckk);
    s.stride = s.db + round16((size_t)g->oc);
    return s;
}

static int conv_setup(nnl_layer *L) {
    int k = L->k, s = L->stride, p = L->pad;
    if (L->units < 1 || L->units > (1 << 20))
        return nnl_fail(NNL_ERR_SHAPE, "conv2d: %d output channels is out of range (1..1048576)", L->units);
    if (k < 1) return nnl_fail(NNL_ERR_SHAPE, "conv2d: kernel size %d must be at least 1", k);
    if (s < 1) return nnl_fail(NNL_ERR_SHAPE, "conv2d: stride %d must be at least 1", s);
    if (p < 0) return nnl_fail(NNL_ERR_SHAPE, "conv2d: padding %d must not be negative", p);
    if (p >= k) return nnl_fail(NNL_ERR_SHAPE, "conv2d: padding %d must be smaller than the kernel %d", p, k);
    if (L->in.c < 1 || L->in.h < 1 || L->in.w < 1)
        return nnl_fail(NNL_ERR_SHAPE, "conv2d: empty input %dx%dx%d", L->in.c, L->in.h, L->in.w);
    long oh = ((long)L->in.h + 2L * p - k) / s + 1, ow = ((long)L->in.w + 2L * p - k) / s + 1;
    if (L->in.h + 2L * p < k || L->in.w + 2L * p < k || oh < 1 || ow < 1)
        return nnl_fail(NNL_ERR_SHAPE, "conv2d: kernel %d (padding %d) does not fit the %dx%d input",
                        k, p, L->in.h, L->in.w);
    /* sgemm takes int sizes: one image's column matrix must fit them. */
    double ckk = (double)L->in.c * k * k;
    if (ckk * (double)(oh * ow) > 2147483647.0 || ckk * L->units > 2147483647.0)
        return nnl_fail(NNL_ERR_SHAPE, "conv2d: %d channels with kernel %d on %dx%d is too large",
                        L->in.c, k, L->in.h, L->in.w);
    L->out = (nnl_shape){L->units, (int)oh, (int)ow};
    L->w_n = (size_t)L->units * L->in.c * k * k;
    L->b_n = (size_t)L->units;
    L->s_n = 0;
    return NNL_OK;
}

/* He-uniform (fan_in = C*K*K) suits the ReLU networks nnlock builds. */
static void conv_init(const nnl_layer *L, float *params, float *state, nnl_rng *rng) {
    (void)state;
    float b = sqrtf(6.0f / (float)((size_t)L->in.c * L->k * L->k));
    float *w = params + L->w_off;
    for (size_t i = 0; i < L->w_n; i++) w[i] = (2.0f * nnl_rng_uniform(rng) - 1.0f) * b;
    memset(params + L->b_off, 0, L->b_n * sizeof(float));
}

static size_t conv_save_floats(const nnl_layer *L, int batch) { (void)L; (void)batch; return 0; }

static size_t conv_work_floats(const nnl_layer *L, int batch) {
    if (batch < 1) batch = 1;
    cgeo g = geo(L);
    int t = team_size(batch);
    return (size_t)t * slice_of(&g, chunk_size(&g, batch, t)).stride;
}

/* Where column-matrix row (ki, kj) reads one input plane: output rows [y0, y1) and
 * output columns [x0, x1) fall inside the input; elsewhere the kernel overhangs into
 * the padding. In a same-size convolution (stride 1, 2*pad = K-1) output pixel d
 * reads input pixel d + shift, so a whole row is one contiguous copy: short image
 * rows would otherwise make the copy loops all overhead. */
typedef struct taps { int y0, y1, x0, x1; long shift; } taps;

static taps taps_of(const cgeo *g, int ki, int kj) {
    taps t;
    int a = g->p - ki, b = g->h - 1 + g->p - ki;
    t.y0 = a > 0 ? (a + g->s - 1) / g->s : 0;
    t.y1 = b >= 0 ? b / g->s + 1 : 0;
    if (t.y1 > g->oh) t.y1 = g->oh;
    if (t.y1 < t.y0) t.y1 = t.y0;
    a = g->p - kj; b = g->w - 1 + g->p - kj;
    t.x0 = a > 0 ? (a + g->s - 1) / g->s : 0;
    t.x1 = b >= 0 ? b / g->s + 1 : 0;
    if (t.x1 > g->ow) t.x1 = g->ow;
    if (t.x1 < t.x0) t.x1 = t.x0;
    t.shift = (long)(ki - g->p) * g->w + (kj - g->p);
    return t;
}

static int same_size(const cgeo *g) { return g->s == 1 && 2 * g->p == g->k - 1; }

/* The contiguous span [d0, d1) of a row: the valid output rows, clipped so that the
 * input index d + shift stays inside the plane (what the clip drops is overhang). */
static void span(const cgeo *g, const taps *t, long *d0, long *d1) {
    long a = (long)t->y0 * g->ow, b = (long)t->y1 * g->ow, hw = (long)g->hw;
    if (a < -t->shift) a = -t->shift;
    if (b > hw - t->shift) b = hw - t->shift;
    if (b < a) b = a;
    *d0 = a; *d1 = b;
}

#ifdef __AVX512F__
/* A same-size tap as masked 16-float vectors over the whole plane: the valid pixels are
 * those in the span [d0, d1) and in the columns [x0, x1). Memset, memmove and a fix-up
 * loop per image row (the portable path) cost two to three times as much on 16x16 and
 * 8x8 maps, where a tap's plane is only 256 or 64 floats. The column masks repeat every
 * ow / gcd(ow, 16) vectors and are tabled once per call; masked-off lanes of a masked
 * load never fault, so the source may run past the plane's ends there. */
#define VTAP_MAX_PERIOD 64
#define VTAP_MAX_K 16

/* Period of the column pattern, or 0 when the table would not fit (portable path). */
static int vtap_period(const cgeo *g) {
    int a = g->ow, b = 16;
    while (b) { int r = a % b; a = b; b = r; }
    int per = g->ow / a;
    return g->k <= VTAP_MAX_K && per <= VTAP_MAX_PERIOD ? per : 0;
}

/* masks[kj * per + v]: the lanes of vector v (mod per) whose column is valid for kj. */
static void vtap_masks(const cgeo *g, int per, uint16_t *masks) {
    for (int kj = 0; kj < g->k; kj++) {
        const taps t = taps_of(g, 0, kj);
        for (int v = 0; v < per; v++) {
            unsigned bits = 0;
            for (int l = 0; l < 16; l++) {
                int c = (v * 16 + l) % g->ow;
                if (c >= t.x0 && c < t.x1) bits |= 1u << l;
            }
            masks[kj * per + v] = (uint16_t)bits;
        }
    }
}

/* Lanes l of the vector at d with lo <= d + l < hi. */
static inline __mmask16 lanes_in(long d, long lo, long hi) {
    long a = lo - d, b = hi - d;
    a = a < 0 ? 0 : a > 16 ? 16 : a;
    b = b < 0 ? 0 : b > 16 ? 16 : b;
    return (__mmask16)(((1u << b) - 1) & ~((1u << a) - 1));
}

static const float *shifted(const float *p, long shift) {
    return (const float *)((uintptr_t)p + (uintptr_t)(intptr_t)(shift * (long)sizeof(float)));
}

/* Vectors [d, e) of a tap (d, e multiples of 16, v the column-table index of d) cut
 * into those that straddle [d0, d1) and need the span test per lane, and the run
 * wholly inside, which needs only the column table. */
typedef struct vrange { long a, b; } vrange;

static vrange inner(long d0, long d1) {
    vrange r = {(d0 + 15) / 16 * 16, d1 / 16 * 16};
    if (r.b < r.a) r.b = r.a;
    return r;
}

/* Tap (ki, kj) of every channel: channel c reads plane x + c*hw and writes row
 * col + c*K*K*ld. The span and the masks are the same for all channels. */
static void im2col_tap_avx512(const cgeo *g, const taps *t, const uint16_t *cm, int per, const float *x,
                              float *col, size_t ld) {
    long d0, d1;
    span(g, t, &d0, &d1);
    const long ohw = (long)g->ohw;
    const vrange in = inner(d0, d1);
    const size_t rs = g->ckk / (size_t)g->c * ld;
    for (int c = 0; c < g->c; c++) {
        const float *src = shifted(x + (size_t)c * g->hw, t->shift);
        float *row = col + (size_t)c * rs;
        long d = 0, v = 0;
        for (; d < in.a; d += 16, v = v + 1 == per ? 0 : v + 1)
            _mm512_mask_storeu_ps(row + d, lanes_in(d, 0, ohw),
                                  _mm512_maskz_loadu_ps(cm[v] & lanes_in(d, d0, d1), shifted(src, d)));
        for (; d < in.b; d += 16, v = v + 1 == per ? 0 : v + 1)
            _mm512_storeu_ps(row + d, _mm512_maskz_loadu_ps(cm[v], shifted(src, d)));
        for (; d < ohw; d += 16, v = v + 1 == per ? 0 : v + 1)
            _mm512_mask_storeu_ps(row + d, lanes_in(d, 0, ohw),
                                  _mm512_maskz_loadu_ps(cm[v] & lanes_in(d, d0, d1), shifted(src, d)));
    }
}

static inline void add_masked(float *o, const float *r, __mmask16 m) {
    _mm512_mask_storeu_ps(o, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, o), _mm512_maskz_loadu_ps(m, r)));
}

/* The adjoint: channel c's row adds into plane dx + c*hw. */
static void col2im_tap_avx512(const cgeo *g, const taps *t, const uint16_t *cm, int per, const float *col,
                              size_t ld, float *dx) {
    long d0, d1;
    span(g, t, &d0, &d1);
    const vrange in = inner(d0, d1);
    const size_t rs = g->ckk / (size_t)g->c * ld;
    for (int c = 0; c < g->c; c++) {
        float *dst = (float *)shifted(dx + (size_t)c * g->hw, t->shift);
        const float *row = col + (size_t)c * rs;
        long d = d0 / 16 * 16, v = (d0 / 16) % per;
        for (; d < in.a && d < d1; d += 16, v = v + 1 == per ? 0 : v + 1)
            add_masked((float *)shifted(dst, d), row + d, cm[v] & lanes_in(d, d0, d1));
        for (; d < in.b; d += 16, v = v + 1 == per ? 0 : v + 1)
            add_masked((float *)shifted(dst, d), row + d, cm[v]);
        for (; d < d1; d += 16, v = v + 1 == per ? 0 : v + 1)
            add_masked((float *)shifted(dst, d), row + d, cm[v] & lanes_in(d, d0, d1));
    }
}
#endif

// x (C,H,W) -> col (C*K*K, H'*W') with row stride ld; zero where the kernel overhangs
static void im2col(const cgeo *g, const float *restrict x, float *restrict col, size_t ld) {
    const int k = g->k, s = g->s, ow = g->ow;
    const long ohw = (long)g->ohw;
#ifdef __AVX512F__
    uint16_t cm[VTAP_MAX_K * VTAP_MAX_PERIOD];
    const int per = same_size(g) ? vtap_period(g) : 0;
    if (per) vtap_masks(g, per, cm);
#endif
    for (int ki = 0; ki < k; ki++)
        for (int kj = 0; kj < k; kj++) {
            const taps t = taps_of(g, ki, kj);
#ifdef __AVX512F__
            if (per) { im2col_tap_avx512(g, &t, cm + kj * per, per, x, col + (size_t)(ki * k + kj) * ld, ld); continue; }
#endif
            for (int c = 0; c < g->c; c++) {
                float *row = col + ((size_t)(c * k + ki) * k + kj) * ld;
                const float *xp = x + (size_t)c * g->hw;
                if (same_size(g)) {
                    long d0, d1;
                    span(g, &t, &d0, &d1);
                    for (long d = 0; d < d0; d++) row[d] = 0.0f;
                    for (long d = d0; d < d1; d++) row[d] = xp[d + t.shift];
                    for (long d = d1; d < ohw; d++) row[d] = 0.0f;
                    /* The copy wrapped around the row ends: those pixels are overhang. */
                    for (int oy = t.y0; oy < t.y1; oy++) {
                        float *r = row + (size_t)oy * ow;
                        for (int j = 0; j < t.x0; j++) r[j] = 0.0f;
                        for (int j = t.x1; j < ow; j++) r[j] = 0.0f;
                    }
                    continue;
                }
                for (int oy = 0; oy < g->oh; oy++) {
                    float *r = row + (size_t)oy * ow;
                    if (oy < t.y0 || oy >= t.y1) {
                        for (int j = 0; j < ow; j++) r[j] = 0.0f;
                        continue;
                    }
                    const float *xr = xp + (size_t)(oy * s - g->p + ki) * g->w + (t.x0 * s - g->p + kj);
                    for (int j = 0; j < t.x0; j++) r[j] = 0.0f;
                    /* A literal stride of 2 lets the compiler vectorise the gather. */
                    if (s == 2) for (int j = t.x0; j < t.x1; j++) r[j] = xr[(size_t)(j - t.x0) * 2];
                    else for (int j = t.x0; j < t.x1; j++) r[j] = xr[(size_t)(j - t.x0) * s];
                    for (int j = t.x1; j < ow; j++) r[j] = 0.0f;
                }
            }
        }
}

// dcol (C*K*K, H'*W') with row stride ld -> dx (C,H,W), overwritten: the adjoint of
// im2col. dcol is scratch: its overhang entries are zeroed on the way.
static void col2im(const cgeo *g, float *restrict dcol, size_t ld, float *restrict dx) {
    const int k = g->k, s = g->s, ow = g->ow;
    /* A same-size convolution's centre tap reads every input pixel once, so copying
     * it initialises dx; otherwise dx starts from zero. */
    const int centre = same_size(g);
    if (!centre) memset(dx, 0, (size_t)g->c * g->hw * sizeof(float));
    else
        for (int c = 0; c < g->c; c++)
            memcpy(dx + (size_t)c * g->hw, dcol + ((size_t)(c * k + g->p) * k + g->p) * ld, g->hw * sizeof(float));
#ifdef __AVX512F__
    uint16_t cm[VTAP_MAX_K * VTAP_MAX_PERIOD];
    const int per = centre ? vtap_period(g) : 0;
    if (per) vtap_masks(g, per, cm);
#endif
    for (int ki = 0; ki < k; ki++)
        for (int kj = 0; kj < k; kj++) {
            if (centre && ki == g->p && kj == g->p) continue;
            const taps t = taps_of(g, ki, kj);
#ifdef __AVX512F__
            if (per) { col2im_tap_avx512(g, &t, cm + kj * per, per, dcol + (size_t)(ki * k + kj) * ld, ld, dx); continue; }
#endif
            for (int c = 0; c < g->c; c++) {
                float *row = dcol + ((size_t)(c * k + ki) * k + kj) * ld;
                float *xp = dx + (size_t)c * g->hw;
                if (same_size(g)) {
                    for (int oy = t.y0; oy < t.y1; oy++) {
                        float *r = row + (size_t)oy * ow;
                        for (int j = 0; j < t.x0; j++) r[j] = 0.0f;
                        for (int j = t.x1; j < ow; j++) r[j] = 0.0f;
                    }
                    long d0, d1;
                    span(g, &t, &d0, &d1);
                    float *xs = xp + t.shift;
                    for (long d = d0; d < d1; d++) xs[d] += row[d];
                    continue;
                }
                for (int oy = t.y0; oy < t.y1; oy++) {
                    const float *r = row + (size_t)oy * ow;
                    float *xr = xp + (size_t)(oy * s - g->p + ki) * g->w + (t.x0 * s - g->p + kj);
                    if (s == 2) for (int j = t.x0; j < t.x1; j++) xr[(size_t)(j - t.x0) * 2] += r[j];
                    else for (int j = t.x0; j < t.x1; j++) xr[(size_t)(j - t.x0) * s] += r[j];
                }
            }
        }
}

/* Images [i0, i1) of thread t out of nt. */
static void share(int n, int t, int nt, int *i0, int *i1) {
    *i0 = (int)((long)n * t / nt);
    *i1 = (int)((long)n * (t + 1) / nt);
}

// x (N,C,H,W), w (OC,C,K,K), b (OC) -> y (N,OC,H',W')
static void conv_forward(nnl_layer *L, const nnl_pass *P, const float *x, float *y) {
    const cgeo g = geo(L);
    const int n = P->n, T = team_size(n), B = chunk_size(&g, n, T);
    const slice sl = slice_of(&g, B);
    const float *w = P->params + L->w_off, *bias = P->params + L->b_off;
    const size_t xs = (size_t)g.c * g.hw, ys = (size_t)g.oc * g.ohw;
    #pragma omp parallel num_threads(T) if (T > 1)
    {
        int t = omp_get_thread_num(), i0, i1;
        share(n, t, omp_get_num_threads(), &i0, &i1);
        float *col = P->work + (size_t)t * sl.stride + sl.col, *tmp = P->work + (size_t)t * sl.stride + sl.tmp;
        for (int i = i0; i < i1; i += B) {
            int b = i1 - i < B ? i1 - i : B;
            size_t ld = (size_t)b * g.ohw;
            if (b == 1) {
                /* One image: sgemm writes y directly on top of the broadcast bias. */
                float *yi = y + (size_t)i * ys;
                const float *ci = x + (size_t)i * xs;
                if (!g.direct) { im2col(&g, ci, col, ld); ci = col; }
                for (int o = 0; o < g.oc; o++) {
                    float *r = yi + (size_t)o * g.ohw, v = bias[o];
                    for (size_t j = 0; j < g.ohw; j++) r[j] = v;
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g.oc, (int)g.ohw, (int)g.ckk, 1.0f,
                            w, (int)g.ckk, ci, (int)g.ohw, 1.0f, yi, (int)g.ohw);
                continue;
            }
            for (int j = 0; j < b; j++) im2col(&g, x + (size_t)(i + j) * xs, col + (size_t)j * g.ohw, ld);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g.oc, (int)ld, (int)g.ckk, 1.0f,
                        w, (int)g.ckk, col, (int)ld, 0.0f, tmp, (int)ld);
            /* tmp is (OC, b*H'*W'): scatter each image's columns to NCHW, adding the bias. */
            for (int j = 0; j < b; j++) {
                float *yi = y + (size_t)(i + j) * ys;
                for (int o = 0; o < g.oc; o++) {
                    const float *src = tmp + (size_t)o * ld + (size_t)j * g.ohw;
                    float *dst = yi + (size_t)o * g.ohw, v = bias[o];
                    for (size_t q = 0; q < g.ohw; q++) dst[q] = src[q] + v;
                }
            }
        }
    }
}

// dy (N,OC,H',W') -> dw (OC,C,K,K) +=, db (OC) +=, dx (N,C,H,W) (if dx)
static void conv_backward(nnl_layer *L, const nnl_pass *P, const float *x, const float *y,
                          const float *dy, float *dx) {
    (void)y;
    const cgeo g = geo(L);
    const int n = P->n, T = team_size(n), B = chunk_size(&g, n, T);
    const slice sl = slice_of(&g, B);
    const float *w = P->params + L->w_off;
    float *gw = P->grads + L->w_off, *gb = P->grads + L->b_off;
    const size_t xs = (size_t)g.c * g.hw, ys = (size_t)g.oc * g.ohw, nw = (size_t)g.oc * g.ckk;
    #pragma omp parallel num_threads(T) if (T > 1)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads(), i0, i1;
        share(n, t, nt, &i0, &i1);
        float *base = P->work + (size_t)t * sl.stride;
        float *col = base + sl.col, *tmp = base + sl.tmp;
        float *dw = t ? base + sl.dw : gw, *db = t ? base + sl.db : gb;
        if (t) {
            memset(dw, 0, nw * sizeof(float));
            memset(db, 0, (size_t)g.oc * sizeof(float));
        }
        for (int i = i0; i < i1; i += B) {
            int b = i1 - i < B ? i1 - i : B;
            size_t ld = (size_t)b * g.ohw;
            const float *c = col, *d = tmp;
            if (b == 1 && g.direct) c = x + (size_t)i * xs;
            else for (int j = 0; j < b; j++) im2col(&g, x + (size_t)(i + j) * xs, col + (size_t)j * g.ohw, ld);
            /* Gather dy as (OC, b*H'*W') while summing it for the bias. */
            if (b == 1) d = dy + (size_t)i * ys;
            for (int j = 0; j < b; j++) {
                const float *dyi = dy + (size_t)(i + j) * ys;
                for (int o = 0; o < g.oc; o++) {
                    const float *src = dyi + (size_t)o * g.ohw;
                    float *dst = tmp + (size_t)o * ld + (size_t)j * g.ohw, s = 0.0f;
                    if (b == 1) {
                        #pragma omp simd reduction(+ : s)
                        for (size_t q = 0; q < g.ohw; q++) s += src[q];
                    } else {
                        #pragma omp simd reduction(+ : s)
                        for (size_t q = 0; q < g.ohw; q++) { dst[q] = src[q]; s += src[q]; }
                    }
                    db[o] += s;
                }
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g.oc, (int)g.ckk, (int)ld, 1.0f,
                        d, (int)ld, c, (int)ld, 1.0f, dw, (int)g.ckk);
            if (!dx) continue;
            if (b == 1 && g.direct) {
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)g.ckk, (int)ld, g.oc, 1.0f,
                            w, (int)g.ckk, d, (int)ld, 0.0f, dx + (size_t)i * xs, (int)ld);
                continue;
            }
            /* The columns are spent: their buffer takes the column gradient. */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)g.ckk, (int)ld, g.oc, 1.0f,
                        w, (int)g.ckk, d, (int)ld, 0.0f, col, (int)ld);
            for (int j = 0; j < b; j++) col2im(&g, col + (size_t)j * g.ohw, ld, dx + (size_t)(i + j) * xs);
        }
        if (nt > 1) {
            /* Each element sums the threads' slices in thread order. */
            #pragma omp barrier
            size_t e0 = nw * t / nt, e1 = nw * (t + 1) / nt;
            for (int u = 1; u < nt; u++) {
                const float *su = P->work + (size_t)u * sl.stride + sl.dw;
                for (size_t e = e0; e < e1; e++) gw[e] += su[e];
            }
            if (t == 0)
                for (int u = 1; u < nt; u++) {
                    const float *su = P->work + (size_t)u * sl.stride + sl.db;
                    for (int o = 0; o < g.oc; o++) gb[o] += su[o];
                }
        }
    }
}

static double conv_macs(const nnl_layer *L) {
    return (double)L->units * L->out.h * L->out.w * L->in.c * L->k * L->k;
}

const nnl_layer_ops nnl_conv2d_ops = {
    "conv2d", conv_setup, conv_init, conv_save_floats, conv_work_floats, conv_forward, conv_backward,
    conv_macs, 0,
};
