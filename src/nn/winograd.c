/* Winograd convolution F(m x m, 3x3) (see winograd.h; Lavin & Gray 2015): the a x a input
 * tiles d (a = m + 2) and the filters g are transformed, multiplied entrywise, and
 * transformed back into m x m output tiles,
 *     y = A^T [ (G g G^T) . (B^T d B) ] A.
 * Entry xi of the transformed tiles is one sgemm over all the tiles of a group of images:
 * M[xi] (T x OC) = V[xi] (T x C) U[xi]^T, U[xi] (OC x C) the transformed filters.
 * Backward applies the adjoints in reverse: dM = A dy A^T per tile, then
 * dU[xi] = dM[xi]^T V[xi] (-> the weight gradient G^T dU G) and dV[xi] = dM[xi] U[xi]
 * (-> the input gradient B dV B^T, added onto overlapping tiles). It is the exact
 * gradient of the forward as computed, so gradient checks hold. The transforms of each
 * variant are in wino_f2.c and wino_f4.c; this file runs the sgemms between them.
 *
 * Channels are the innermost index of V and M (a tile's values for consecutive channels
 * are adjacent), so every transform runs whole vectors over channels whatever the size
 * of the image: on 7x7 and 3x3 maps a row of tiles is too short to vectorise. Each image
 * is transposed to channels-last (8x8 blocks) on the way in and back on the way out.
 *
 * Threads split the batch as in conv2d.c: each runs single-threaded sgemms on its own
 * images and keeps its own dU, reduced in thread order, so results depend on the thread
 * count and the batch size only. */
#include "winograd.h"

#include "../core/core.h"
#include "wino_tiles.h"

#include <cblas.h>
#include <omp.h>
#include <string.h>
#ifdef __AVX2__
#include <immintrin.h>
#endif

/* A group's tiles: enough rows for sgemm to run near its peak, few enough that V and M
 * stay in cache between the transforms and the sgemms. Measured on airbench's layers
 * (Zen 3, 2 threads): groups of 96 F(2x2) tiles ran 10-20% faster than 48, 192 or 384. */
#define WINO_MIN_TILES 96
#define WINO_MAX_FLOATS (1u << 21)

static size_t r16(size_t n) { return (n + 15) & ~(size_t)15; }

int nnl_wino_mode = -1;

int nnl_wino_fits(const cgeo *g) { return g->k == 3 && g->s == 1 && g->p >= 0 && g->p <= 2; }

/* The transforms cost memory traffic per channel; with very few channels the sgemms are
 * too thin (K = C) to repay it. Measured on airbench's layers (Zen 3, 2 threads, batch
 * 256): F(4x4) ran its 24-channel 31x31 layer 1.2x (forward) and 1.8x (backward) faster
 * than im2col, and F(2x2) only its 32+ channel ones. */
int nnl_wino_pays(const cgeo *g) {
    if (nnl_wino_mode >= 0) return nnl_wino_mode != 0;
    return g->c >= 16 && g->oc >= 16;
}

/* F(4x4) does 2.25 multiplies per output where F(2x2) does 4, once the map fills its
 * tiles: airbench's step ran 1.3-1.5x faster with it (its 3x3 maps about even). On a 2x2
 * or smaller map one F(4x4) tile wastes more than F(2x2) saves. */
static const wino_variant *variant_of(const cgeo *g) {
    if (nnl_wino_mode == 2) return &nnl_wino_f4;
    if (nnl_wino_mode == 1) return &nnl_wino_f2;
    return g->oh >= 3 && g->ow >= 3 ? &nnl_wino_f4 : &nnl_wino_f2;
}

static wgeo wgeo_of(const cgeo *g, const wino_variant *var, int n, int t) {
    wgeo q;
    q.m = var->m;
    q.a = q.m + 2;
    q.nx = q.a * q.a;
    q.th = (g->oh + q.m - 1) / q.m;
    q.tw = (g->ow + q.m - 1) / q.m;
    q.ph = q.m * q.th + 2;
    q.pw = q.m * q.tw + 2;
    q.nt = (size_t)q.th * q.tw;
    int per = (n + t - 1) / t;
    size_t b = (WINO_MIN_TILES + q.nt - 1) / q.nt;
    size_t cap = WINO_MAX_FLOATS / ((size_t)q.nx * (size_t)(g->c + g->oc) * q.nt);
    if (b > cap) b = cap;
    if (b > (size_t)per) b = (size_t)per;
    q.b = b < 1 ? 1 : (int)b;
    q.tmax = (size_t)q.b * q.nt;
    const size_t nx = (size_t)q.nx;
    q.u = r16(nx * g->oc * g->c);
    q.v = 0;
    q.m_ = q.v + r16(nx * g->c * q.tmax);
    q.du = q.m_ + r16(nx * g->oc * q.tmax);
    q.db = q.du + r16(nx * g->oc * g->c);
    q.xp = q.db + r16((size_t)g->oc);
    q.yp = q.xp + r16((size_t)q.ph * q.pw * g->c);
    q.tmp = q.yp + r16((size_t)q.m * q.m * q.nt * g->oc);
    q.stride = q.tmp + r16(wino_tmp_floats());
    return q;
}

static int team(int n, int t) { return t > n ? (n < 1 ? 1 : n) : (t < 1 ? 1 : t); }

size_t nnl_wino_work_floats(const cgeo *g, int n, int t) {
    t = team(n, t);
    /* every variant's needs: tests switch between them on a prepared layer */
    wgeo a = wgeo_of(g, &nnl_wino_f2, n, t), b = wgeo_of(g, &nnl_wino_f4, n, t);
    size_t fa = a.u + (size_t)t * a.stride, fb = b.u + (size_t)t * b.stride;
    return fa > fb ? fa : fb;
}

static void share(int n, int t, int nt, int *i0, int *i1) {
    *i0 = (int)((long)n * t / nt);
    *i1 = (int)((long)n * (t + 1) / nt);
}

/* ---- channels-first planes <-> channels-last images ----
 * Pixel q = r * w + col of a C x h x w image sits at cl + ((r + off) * cw + col + off) * C
 * in the channels-last buffer cl (cw pixels per row). Eight consecutive pixels of eight
 * channels move as one 8x8 transpose; the ragged edges go one float at a time. */

static size_t cl_at(int q, int w, int cw, int off, int C) {
    return ((size_t)(q / w + off) * cw + (size_t)(q % w + off)) * C;
}

#ifdef __AVX2__
static inline void transpose8(__m256 r[8]) {
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
    __m256 s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
    __m256 s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
    __m256 s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
    __m256 s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}
#endif

/* src (C, h, w) -> cl, channels last; cl must already be zero where nothing lands. */
static void to_last(const float *restrict src, int C, int h, int w, float *restrict cl, int cw, int off) {
    const int hw = h * w;
    int q0 = 0;
#ifdef __AVX2__
    for (; q0 + 8 <= hw; q0 += 8) {
        size_t at[8];
        for (int k = 0; k < 8; k++) at[k] = cl_at(q0 + k, w, cw, off, C);
        int c0 = 0;
        for (; c0 + 8 <= C; c0 += 8) {
            __m256 r[8];
            for (int k = 0; k < 8; k++) r[k] = _mm256_loadu_ps(src + (size_t)(c0 + k) * hw + q0);
            transpose8(r);
            for (int k = 0; k < 8; k++) _mm256_storeu_ps(cl + at[k] + c0, r[k]);
        }
        for (; c0 < C; c0++)
            for (int k = 0; k < 8; k++) cl[at[k] + c0] = src[(size_t)c0 * hw + q0 + k];
    }
#endif
    for (; q0 < hw; q0++) {
        size_t at = cl_at(q0, w, cw, off, C);
        for (int c = 0; c < C; c++) cl[at + c] = src[(size_t)c * hw + q0];
    }
}

/* cl (channels last) -> dst (C, h, w), the inverse of to_last. */
static void from_last(const float *restrict cl, int cw, int off, int C, int h, int w, float *restrict dst) {
    const int hw = h * w;
    int q0 = 0;
#ifdef __AVX2__
    for (; q0 + 8 <= hw; q0 += 8) {
        size_t at[8];
        for (int k = 0; k < 8; k++) at[k] = cl_at(q0 + k, w, cw, off, C);
        int c0 = 0;
        for (; c0 + 8 <= C; c0 += 8) {
            __m256 r[8];
            for (int k = 0; k < 8; k++) r[k] = _mm256_loadu_ps(cl + at[k] + c0);
            transpose8(r);
            for (int k = 0; k < 8; k++) _mm256_storeu_ps(dst + (size_t)(c0 + k) * hw + q0, r[k]);
        }
        for (; c0 < C; c0++)
            for (int k = 0; k < 8; k++) dst[(size_t)c0 * hw + q0 + k] = cl[at[k] + c0];
    }
#endif
    for (; q0 < hw; q0++) {
        size_t at = cl_at(q0, w, cw, off, C);
        for (int c = 0; c < C; c++) dst[(size_t)c * hw + q0] = cl[at + c];
    }
}

void nnl_wino_forward(const cgeo *g, int n, int t, const float *x, const float *w, const float *bias,
                      float *y, float *work) {
    const int T = team(n, t);
    const wino_variant *var = variant_of(g);
    const wgeo q = wgeo_of(g, var, n, T);
    float *u = work;
    const int C = g->c, OC = g->oc, nx = q.nx;
    const size_t xsz = (size_t)C * g->hw, ysz = (size_t)OC * g->ohw, npad = (size_t)q.ph * q.pw * C;
    #pragma omp parallel num_threads(T) if (T > 1)
    {
        int id = omp_get_thread_num(), nth = omp_get_num_threads(), i0, i1, o0, o1;
        share(OC, id, nth, &o0, &o1);
        var->weights(g, w, u, o0, o1);
        #pragma omp barrier
        share(n, id, nth, &i0, &i1);
        float *base = work + q.u + (size_t)id * q.stride;
        float *V = base + q.v, *M = base + q.m_, *xp = base + q.xp, *yp = base + q.yp, *tmp = base + q.tmp;
        for (int i = i0; i < i1; i += q.b) {
            int bb = i1 - i < q.b ? i1 - i : q.b;
            size_t T_ = (size_t)bb * q.nt, vx = T_ * C, mx = T_ * OC;
            for (int j = 0; j < bb; j++) {
                memset(xp, 0, npad * sizeof(float));
                to_last(x + (size_t)(i + j) * xsz, C, g->h, g->w, xp, q.pw, g->p);
                var->input(&q, C, xp, V + (size_t)j * q.nt * C, vx, tmp);
            }
            for (int xi = 0; xi < nx; xi++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T_, OC, C, 1.0f, V + xi * vx, C,
                            u + (size_t)xi * OC * C, C, 0.0f, M + xi * mx, OC);
            for (int j = 0; j < bb; j++) {
                var->output(&q, OC, M + (size_t)j * q.nt * OC, mx, bias, yp, tmp);
                from_last(yp, q.m * q.tw, 0, OC, g->oh, g->ow, y + (size_t)(i + j) * ysz);
            }
        }
    }
}

void nnl_wino_backward(const cgeo *g, int n, int t, const float *x, const float *w, const float *dy,
                       float *dx, float *gw, float *gb, float *work) {
    const int T = team(n, t);
    const wino_variant *var = variant_of(g);
    const wgeo q = wgeo_of(g, var, n, T);
    float *u = work;
    const int C = g->c, OC = g->oc, nx = q.nx;
    const size_t xsz = (size_t)C * g->hw, ysz = (size_t)OC * g->ohw, nu = (size_t)nx * OC * C;
    const size_t npad = (size_t)q.ph * q.pw * C, ngp = (size_t)q.m * q.m * q.nt * OC;
    #pragma omp parallel num_threads(T) if (T > 1)
    {
        int id = omp_get_thread_num(), nth = omp_get_num_threads(), i0, i1, o0, o1;
        share(OC, id, nth, &o0, &o1);
        if (dx) var->weights(g, w, u, o0, o1);
        share(n, id, nth, &i0, &i1);
        float *base = work + q.u + (size_t)id * q.stride;
        float *V = base + q.v, *M = base + q.m_, *du = base + q.du, *db = base + q.db;
        float *xp = base + q.xp, *yp = base + q.yp, *tmp = base + q.tmp;
        memset(du, 0, nu * sizeof(float));
        memset(db, 0, (size_t)OC * sizeof(float));
        #pragma omp barrier
        for (int i = i0; i < i1; i += q.b) {
            int bb = i1 - i < q.b ? i1 - i : q.b;
            size_t T_ = (size_t)bb * q.nt, vx = T_ * C, mx = T_ * OC;
            for (int j = 0; j < bb; j++) {
                memset(xp, 0, npad * sizeof(float));
                to_last(x + (size_t)(i + j) * xsz, C, g->h, g->w, xp, q.pw, g->p);
                var->input(&q, C, xp, V + (size_t)j * q.nt * C, vx, tmp);
                const float *dyi = dy + (size_t)(i + j) * ysz;
                for (int o = 0; o < OC; o++) {
                    const float *d = dyi + (size_t)o * g->ohw;
                    float s = 0.0f;
                    #pragma omp simd reduction(+ : s)
                    for (size_t e = 0; e < g->ohw; e++) s += d[e];
                    db[o] += s;
                }
                memset(yp, 0, ngp * sizeof(float));
                to_last(dyi, OC, g->oh, g->ow, yp, q.m * q.tw, 0);
                var->grad(&q, OC, yp, M + (size_t)j * q.nt * OC, mx, tmp);
            }
            for (int xi = 0; xi < nx; xi++)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, (int)T_, 1.0f, M + xi * mx, OC,
                            V + xi * vx, C, 1.0f, du + (size_t)xi * OC * C, C);
            if (!dx) continue;
            /* V is spent: it takes dV */
            for (int xi = 0; xi < nx; xi++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)T_, C, OC, 1.0f, M + xi * mx, OC,
                            u + (size_t)xi * OC * C, C, 0.0f, V + xi * vx, C);
            for (int j = 0; j < bb; j++) {
                memset(xp, 0, npad * sizeof(float));
                var->grad_input(&q, C, V + (size_t)j * q.nt * C, vx, xp, tmp);
                from_last(xp, q.pw, g->p, C, g->h, g->w, dx + (size_t)(i + j) * xsz);
            }
        }
        #pragma omp barrier
        /* Sum the threads' dU in thread order and take it back through G^T . G. */
        const size_t xs = (size_t)OC * C;
        for (int o = o0; o < o1; o++) {
            for (int c = 0; c < C; c++) {
                float d[36];
                size_t e = (size_t)o * C + c;
                for (int xi = 0; xi < nx; xi++) {
                    float s = 0.0f;
                    for (int k = 0; k < nth; k++) s += work[q.u + (size_t)k * q.stride + q.du + xi * xs + e];
                    d[xi] = s;
                }
                var->weights_grad(d, gw + e * 9);
            }
            if (gb) {
                float s = 0.0f;
                for (int k = 0; k < nth; k++) s += work[q.u + (size_t)k * q.stride + q.db + o];
                gb[o] += s;
            }
        }
    }
}
