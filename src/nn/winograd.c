/* F(2x2, 3x3) Winograd convolution (see winograd.h). With d a 4x4 input tile, g a 3x3
 * filter and the 2x2 output tile y:
 *     y = A^T [ (G g G^T) . (B^T d B) ] A
 *   B^T = | 1  0 -1  0 |    G = | 1    0    0  |    A^T = | 1  1  1  0 |
 *         | 0  1  1  0 |        | 1/2  1/2  1/2 |          | 0  1 -1 -1 |
 *         | 0 -1  1  0 |        | 1/2 -1/2  1/2 |
 *         | 0  1  0 -1 |        | 0    0    1  |
 * Entry xi = 4i + j of the transformed tiles is one sgemm over all the tiles of a group
 * of images: M[xi] (T x OC) = V[xi] (T x C) U[xi]^T, U[xi] (OC x C) the transformed
 * filters. Backward applies the adjoints in reverse: dM = A dy A^T per tile, then
 * dU[xi] = dM[xi]^T V[xi] (-> the weight gradient G^T dU G) and dV[xi] = dM[xi] U[xi]
 * (-> the input gradient B dV B^T, added onto overlapping tiles). It is the exact
 * gradient of the forward as computed, so gradient checks hold.
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

#include <cblas.h>
#include <omp.h>
#include <string.h>
#ifdef __AVX2__
#include <immintrin.h>
#endif

/* A group's tiles: enough rows for sgemm to run near its peak, few enough that V and M
 * stay in cache between the transforms and the sgemms. Measured on airbench's layers
 * (Zen 3, 2 threads): groups of 96 tiles ran 10-20% faster than 48, 192 or 384. */
#define WINO_MIN_TILES 96
#define WINO_MAX_FLOATS (1u << 21)

typedef struct wgeo {
    int th, tw, ph, pw; /* tile rows and columns; the zero-padded image the tiles read */
    size_t nt;          /* tiles per image */
    int b;              /* images per group */
    size_t tmax;        /* tiles per group */
    /* per-thread slice: offsets and stride, in floats */
    size_t v, m, du, db, xp, yp, stride;
    size_t u;           /* shared U, before the slices */
} wgeo;

static size_t r16(size_t n) { return (n + 15) & ~(size_t)15; }

int nnl_wino_mode = -1;

int nnl_wino_fits(const cgeo *g) { return g->k == 3 && g->s == 1 && g->p >= 0 && g->p <= 2; }

/* The transforms cost memory traffic per channel; with few input channels the forward
 * sgemms are too thin (K = C) to repay it: airbench's 24-channel layer ran 1.5x slower
 * forward through Winograd than through im2col, its 64-channel ones 1.2-1.6x faster. */
int nnl_wino_pays(const cgeo *g) {
    if (nnl_wino_mode >= 0) return nnl_wino_mode;
    return g->c >= 32 && g->oc >= 32;
}

static wgeo wgeo_of(const cgeo *g, int n, int t) {
    wgeo q;
    q.th = (g->oh + 1) / 2;
    q.tw = (g->ow + 1) / 2;
    q.ph = 2 * q.th + 2;
    q.pw = 2 * q.tw + 2;
    q.nt = (size_t)q.th * q.tw;
    int per = (n + t - 1) / t;
    size_t b = (WINO_MIN_TILES + q.nt - 1) / q.nt;
    size_t cap = WINO_MAX_FLOATS / (16 * (size_t)(g->c + g->oc) * q.nt);
    if (b > cap) b = cap;
    if (b > (size_t)per) b = (size_t)per;
    q.b = b < 1 ? 1 : (int)b;
    q.tmax = (size_t)q.b * q.nt;
    q.u = r16((size_t)16 * g->oc * g->c);
    q.v = 0;
    q.m = q.v + r16((size_t)16 * g->c * q.tmax);
    q.du = q.m + r16((size_t)16 * g->oc * q.tmax);
    q.db = q.du + r16((size_t)16 * g->oc * g->c);
    q.xp = q.db + r16((size_t)g->oc);
    q.yp = q.xp + r16((size_t)q.ph * q.pw * g->c);
    q.stride = q.yp + r16((size_t)4 * q.nt * g->oc);
    return q;
}

static int team(int n, int t) { return t > n ? (n < 1 ? 1 : n) : (t < 1 ? 1 : t); }

size_t nnl_wino_work_floats(const cgeo *g, int n, int t) {
    t = team(n, t);
    wgeo q = wgeo_of(g, n, t);
    return q.u + (size_t)t * q.stride;
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

/* U[xi][o][c] = (G w[o][c] G^T)[xi] for the output channels [o0, o1). */
static void weights_to_u(const cgeo *g, const float *w, float *u, int o0, int o1) {
    const size_t xs = (size_t)g->oc * g->c;
    for (int o = o0; o < o1; o++)
        for (int c = 0; c < g->c; c++) {
            const float *f = w + ((size_t)o * g->c + c) * 9;
            float t[4][3];
            for (int l = 0; l < 3; l++) {
                t[0][l] = f[l];
                t[1][l] = 0.5f * (f[l] + f[3 + l] + f[6 + l]);
                t[2][l] = 0.5f * (f[l] - f[3 + l] + f[6 + l]);
                t[3][l] = f[6 + l];
            }
            float *dst = u + (size_t)o * g->c + c;
            for (int i = 0; i < 4; i++) {
                dst[(4 * i + 0) * xs] = t[i][0];
                dst[(4 * i + 1) * xs] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
                dst[(4 * i + 2) * xs] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
                dst[(4 * i + 3) * xs] = t[i][2];
            }
        }
}

/* ---- the tile transforms, each a loop over channels with the tile's sixteen values as
 * sixteen unit-stride streams (the form GCC vectorises) ---- */

/* Sixteen streams p0..p15 at base + xi * xs. */
#define STREAMS16(T, p, base, xs) \
    T *restrict p##0 = (base), *restrict p##1 = p##0 + (xs), *restrict p##2 = p##1 + (xs), \
        *restrict p##3 = p##2 + (xs), *restrict p##4 = p##3 + (xs), *restrict p##5 = p##4 + (xs), \
        *restrict p##6 = p##5 + (xs), *restrict p##7 = p##6 + (xs), *restrict p##8 = p##7 + (xs), \
        *restrict p##9 = p##8 + (xs), *restrict p##10 = p##9 + (xs), *restrict p##11 = p##10 + (xs), \
        *restrict p##12 = p##11 + (xs), *restrict p##13 = p##12 + (xs), *restrict p##14 = p##13 + (xs), \
        *restrict p##15 = p##14 + (xs)

/* One image's tiles: xp is the image zero-padded, channels last (pw pixels a row); v is
 * V[0] at the image's first tile, xs the distance from V[xi] to V[xi+1]. */
static void input_tiles(const wgeo *q, int C, const float *restrict xp, float *restrict v, size_t xs) {
    const size_t row = (size_t)q->pw * C;
    for (int ty = 0; ty < q->th; ty++)
        for (int tx = 0; tx < q->tw; tx++) {
            const float *restrict b0 = xp + (size_t)2 * ty * row + (size_t)2 * tx * C;
            const float *restrict b1 = b0 + row, *restrict b2 = b1 + row, *restrict b3 = b2 + row;
            STREAMS16(float, s, v + ((size_t)ty * q->tw + tx) * C, xs);
            #pragma omp simd
            for (int c = 0; c < C; c++) {
                /* rows of B^T d, then each row times B */
                float a0 = b0[c] - b2[c], a1 = b0[C + c] - b2[C + c];
                float a2 = b0[2 * C + c] - b2[2 * C + c], a3 = b0[3 * C + c] - b2[3 * C + c];
                float e0 = b1[c] + b2[c], e1 = b1[C + c] + b2[C + c];
                float e2 = b1[2 * C + c] + b2[2 * C + c], e3 = b1[3 * C + c] + b2[3 * C + c];
                float f0 = b2[c] - b1[c], f1 = b2[C + c] - b1[C + c];
                float f2 = b2[2 * C + c] - b1[2 * C + c], f3 = b2[3 * C + c] - b1[3 * C + c];
                float d0 = b1[c] - b3[c], d1 = b1[C + c] - b3[C + c];
                float d2 = b1[2 * C + c] - b3[2 * C + c], d3 = b1[3 * C + c] - b3[3 * C + c];
                s0[c] = a0 - a2;  s1[c] = a1 + a2;  s2[c] = a2 - a1;  s3[c] = a1 - a3;
                s4[c] = e0 - e2;  s5[c] = e1 + e2;  s6[c] = e2 - e1;  s7[c] = e1 - e3;
                s8[c] = f0 - f2;  s9[c] = f1 + f2;  s10[c] = f2 - f1; s11[c] = f1 - f3;
                s12[c] = d0 - d2; s13[c] = d1 + d2; s14[c] = d2 - d1; s15[c] = d1 - d3;
            }
        }
}

/* One image's outputs from its transformed tiles (m: M[0] at the image's first tile) into
 * yp, channels last, 2 tw pixels a row, with the bias added. */
static void output_tiles(const wgeo *q, int OC, const float *restrict m, size_t xs, const float *restrict bias,
                         float *restrict yp) {
    const size_t row = (size_t)2 * q->tw * OC;
    for (int ty = 0; ty < q->th; ty++)
        for (int tx = 0; tx < q->tw; tx++) {
            STREAMS16(const float, s, m + ((size_t)ty * q->tw + tx) * OC, xs);
            float *restrict y0 = yp + (size_t)2 * ty * row + (size_t)2 * tx * OC, *restrict y1 = y0 + row;
            #pragma omp simd
            for (int o = 0; o < OC; o++) {
                /* A^T M: sums of rows 0-2 and of rows 1, -2, -3; then times A */
                float p0 = s0[o] + s4[o] + s8[o], p1 = s1[o] + s5[o] + s9[o];
                float p2 = s2[o] + s6[o] + s10[o], p3 = s3[o] + s7[o] + s11[o];
                float u0 = s4[o] - s8[o] - s12[o], u1 = s5[o] - s9[o] - s13[o];
                float u2 = s6[o] - s10[o] - s14[o], u3 = s7[o] - s11[o] - s15[o];
                float bo = bias ? bias[o] : 0.0f;
                y0[o] = p0 + p1 + p2 + bo;
                y0[OC + o] = p1 - p2 - p3 + bo;
                y1[o] = u0 + u1 + u2 + bo;
                y1[OC + o] = u1 - u2 - u3 + bo;
            }
        }
}

/* dM = A dy A^T for one image: gp is its output gradient channels last, 2 tw pixels a
 * row, zero past an odd edge (those outputs do not exist); dm is dM[0] at its first tile. */
static void grad_tiles(const wgeo *q, int OC, const float *restrict gp, float *restrict dm, size_t xs) {
    const size_t row = (size_t)2 * q->tw * OC;
    for (int ty = 0; ty < q->th; ty++)
        for (int tx = 0; tx < q->tw; tx++) {
            const float *restrict g0 = gp + (size_t)2 * ty * row + (size_t)2 * tx * OC, *restrict g1 = g0 + row;
            STREAMS16(float, s, dm + ((size_t)ty * q->tw + tx) * OC, xs);
            #pragma omp simd
            for (int o = 0; o < OC; o++) {
                float a = g0[o], b = g0[OC + o], c = g1[o], e = g1[OC + o];
                /* rows of A dy: (a, b), (a + c, b + e), (a - c, b - e), (-c, -e); each times A^T */
                float p0 = a + c, p1 = b + e, m0 = a - c, m1 = b - e;
                s0[o] = a;    s1[o] = a + b;    s2[o] = a - b;    s3[o] = -b;
                s4[o] = p0;   s5[o] = p0 + p1;  s6[o] = p0 - p1;  s7[o] = -p1;
                s8[o] = m0;   s9[o] = m0 + m1;  s10[o] = m0 - m1; s11[o] = -m1;
                s12[o] = -c;  s13[o] = -c - e;  s14[o] = e - c;   s15[o] = e;
            }
        }
}

/* The adjoint of input_tiles: B dV B^T of every tile (v: dV[0] at the image's first tile)
 * added onto xp, the zeroed padded image, channels last. */
static void grad_input_tiles(const wgeo *q, int C, const float *restrict v, size_t xs, float *restrict xp) {
    const size_t row = (size_t)q->pw * C;
    for (int ty = 0; ty < q->th; ty++)
        for (int tx = 0; tx < q->tw; tx++) {
            STREAMS16(const float, s, v + ((size_t)ty * q->tw + tx) * C, xs);
            float *restrict b0 = xp + (size_t)2 * ty * row + (size_t)2 * tx * C;
            float *restrict b1 = b0 + row, *restrict b2 = b1 + row, *restrict b3 = b2 + row;
            #pragma omp simd
            for (int c = 0; c < C; c++) {
                /* each row of dV times B^T ... */
                float w00 = s0[c], w01 = s1[c] - s2[c] + s3[c], w02 = s1[c] + s2[c] - s0[c], w03 = -s3[c];
                float w10 = s4[c], w11 = s5[c] - s6[c] + s7[c], w12 = s5[c] + s6[c] - s4[c], w13 = -s7[c];
                float w20 = s8[c], w21 = s9[c] - s10[c] + s11[c], w22 = s9[c] + s10[c] - s8[c], w23 = -s11[c];
                float w30 = s12[c], w31 = s13[c] - s14[c] + s15[c], w32 = s13[c] + s14[c] - s12[c], w33 = -s15[c];
                /* ... and B times that, onto the tile's 4x4 pixels */
                b0[c] += w00; b0[C + c] += w01; b0[2 * C + c] += w02; b0[3 * C + c] += w03;
                b1[c] += w10 - w20 + w30; b1[C + c] += w11 - w21 + w31;
                b1[2 * C + c] += w12 - w22 + w32; b1[3 * C + c] += w13 - w23 + w33;
                b2[c] += w10 + w20 - w00; b2[C + c] += w11 + w21 - w01;
                b2[2 * C + c] += w12 + w22 - w02; b2[3 * C + c] += w13 + w23 - w03;
                b3[c] -= w30; b3[C + c] -= w31; b3[2 * C + c] -= w32; b3[3 * C + c] -= w33;
            }
        }
}

void nnl_wino_forward(const cgeo *g, int n, int t, const float *x, const float *w, const float *bias,
                      float *y, float *work) {
    const int T = team(n, t);
    const wgeo q = wgeo_of(g, n, T);
    float *u = work;
    const int C = g->c, OC = g->oc;
    const size_t xsz = (size_t)C * g->hw, ysz = (size_t)OC * g->ohw, npad = (size_t)q.ph * q.pw * C;
    #pragma omp parallel num_threads(T) if (T > 1)
    {
        int id = omp_get_thread_num(), nth = omp_get_num_threads(), i0, i1, o0, o1;
        share(OC, id, nth, &o0, &o1);
        weights_to_u(g, w, u, o0, o1);
        #pragma omp barrier
        share(n, id, nth, &i0, &i1);
        float *base = work + q.u + (size_t)id * q.stride;
        float *V = base + q.v, *M = base + q.m, *xp = base + q.xp, *yp = base + q.yp;
        for (int i = i0; i < i1; i += q.b) {
            int bb = i1 - i < q.b ? i1 - i : q.b;
            size_t T_ = (size_t)bb * q.nt, vx = T_ * C, mx = T_ * OC;
            for (int j = 0; j < bb; j++) {
                memset(xp, 0, npad * sizeof(float));
                to_last(x + (size_t)(i + j) * xsz, C, g->h, g->w, xp, q.pw, g->p);
                input_tiles(&q, C, xp, V + (size_t)j * q.nt * C, vx);
            }
            for (int xi = 0; xi < 16; xi++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T_, OC, C, 1.0f, V + xi * vx, C,
                            u + (size_t)xi * OC * C, C, 0.0f, M + xi * mx, OC);
            for (int j = 0; j < bb; j++) {
                output_tiles(&q, OC, M + (size_t)j * q.nt * OC, mx, bias, yp);
                from_last(yp, 2 * q.tw, 0, OC, g->oh, g->ow, y + (size_t)(i + j) * ysz);
            }
        }
    }
}

void nnl_wino_backward(const cgeo *g, int n, int t, const float *x, const float *w, const float *dy,
                       float *dx, float *gw, float *gb, float *work) {
    const int T = team(n, t);
    const wgeo q = wgeo_of(g, n, T);
    float *u = work;
    const int C = g->c, OC = g->oc;
    const size_t xsz = (size_t)C * g->hw, ysz = (size_t)OC * g->ohw, nu = (size_t)16 * OC * C;
    const size_t npad = (size_t)q.ph * q.pw * C, ngp = (size_t)4 * q.nt * OC;
    #pragma omp parallel num_threads(T) if (T > 1)
    {
        int id = omp_get_thread_num(), nth = omp_get_num_threads(), i0, i1, o0, o1;
        share(OC, id, nth, &o0, &o1);
        if (dx) weights_to_u(g, w, u, o0, o1);
        share(n, id, nth, &i0, &i1);
        float *base = work + q.u + (size_t)id * q.stride;
        float *V = base + q.v, *M = base + q.m, *du = base + q.du, *db = base + q.db;
        float *xp = base + q.xp, *yp = base + q.yp;
        memset(du, 0, nu * sizeof(float));
        memset(db, 0, (size_t)OC * sizeof(float));
        #pragma omp barrier
        for (int i = i0; i < i1; i += q.b) {
            int bb = i1 - i < q.b ? i1 - i : q.b;
            size_t T_ = (size_t)bb * q.nt, vx = T_ * C, mx = T_ * OC;
            for (int j = 0; j < bb; j++) {
                memset(xp, 0, npad * sizeof(float));
                to_last(x + (size_t)(i + j) * xsz, C, g->h, g->w, xp, q.pw, g->p);
                input_tiles(&q, C, xp, V + (size_t)j * q.nt * C, vx);
                const float *dyi = dy + (size_t)(i + j) * ysz;
                for (int o = 0; o < OC; o++) {
                    const float *d = dyi + (size_t)o * g->ohw;
                    float s = 0.0f;
                    #pragma omp simd reduction(+ : s)
                    for (size_t e = 0; e < g->ohw; e++) s += d[e];
                    db[o] += s;
                }
                memset(yp, 0, ngp * sizeof(float));
                to_last(dyi, OC, g->oh, g->ow, yp, 2 * q.tw, 0);
                grad_tiles(&q, OC, yp, M + (size_t)j * q.nt * OC, mx);
            }
            for (int xi = 0; xi < 16; xi++)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, (int)T_, 1.0f, M + xi * mx, OC,
                            V + xi * vx, C, 1.0f, du + (size_t)xi * OC * C, C);
            if (!dx) continue;
            /* V is spent: it takes dV */
            for (int xi = 0; xi < 16; xi++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)T_, C, OC, 1.0f, M + xi * mx, OC,
                            u + (size_t)xi * OC * C, C, 0.0f, V + xi * vx, C);
            for (int j = 0; j < bb; j++) {
                memset(xp, 0, npad * sizeof(float));
                grad_input_tiles(&q, C, V + (size_t)j * q.nt * C, vx, xp);
                from_last(xp, q.pw, g->p, C, g->h, g->w, dx + (size_t)(i + j) * xsz);
            }
        }
        #pragma omp barrier
        /* Sum the threads' dU in thread order and take it back through G^T . G. */
        const size_t xs = (size_t)OC * C;
        for (int o = o0; o < o1; o++) {
            for (int c = 0; c < C; c++) {
                float d[16];
                size_t e = (size_t)o * C + c;
                for (int xi = 0; xi < 16; xi++) {
                    float s = 0.0f;
                    for (int k = 0; k < nth; k++) s += work[q.u + (size_t)k * q.stride + q.du + xi * xs + e];
                    d[xi] = s;
                }
                float r[3][4];
                for (int j = 0; j < 4; j++) {
                    r[0][j] = d[j] + 0.5f * (d[4 + j] + d[8 + j]);
                    r[1][j] = 0.5f * (d[4 + j] - d[8 + j]);
                    r[2][j] = 0.5f * (d[4 + j] + d[8 + j]) + d[12 + j];
                }
                float *dst = gw + e * 9;
                for (int k = 0; k < 3; k++) {
                    dst[3 * k + 0] += r[k][0] + 0.5f * (r[k][1] + r[k][2]);
                    dst[3 * k + 1] += 0.5f * (r[k][1] - r[k][2]);
                    dst[3 * k + 2] += 0.5f * (r[k][1] + r[k][2]) + r[k][3];
                }
            }
            if (gb) {
                float s = 0.0f;
                for (int k = 0; k < nth; k++) s += work[q.u + (size_t)k * q.stride + q.db + o];
                gb[o] += s;
            }
        }
    }
}
