/*
 * A dense layer's forward product for the dense-chain fast path:
 *     y[b][o] = bias[o] + sum_k x[b][k] w[o][k]   (then max(y, 0) with a ReLU)
 * for the caller's rows [o0, o1) of W over a batch of n.
 *
 * OpenBLAS packs its operand W afresh on every call (W changes every step), and rows of
 * W rarely start on a cache line (the `mlp` has 900 floats a row), which splits every
 * vector load that reads them in place. Here W is only ever broadcast, one float at a
 * time, from 12 rows read front to back; the vectors come from x, transposed once per
 * layer into strips of 32 images ([strip][k][32], "xt"). A tile of 12 outputs x 32 images
 * (dense_tile.h) runs the whole sum in registers, so its epilogue -- bias, ReLU, the
 * transposed stores into y -- is paid once per 12 x 32 x in multiply-adds. The tile also stores its
 * ReLU output straight into the next layer's xt, since it already has that shape: only
 * the network's input is ever transposed in a separate pass.
 *
 * Every output is one sum in the order k = 0, 1, ..., in - 1 starting from its bias, in
 * the same vector lane arithmetic wherever its tile falls, so results do not depend on
 * how rows are shared between threads.
 */
#include "dense_tile.h"
#include "model.h"

#include <string.h>

#define MR NNL_TILE_MR   /* outputs per tile */
#define NB NNL_TILE_NR   /* images per strip */

size_t nnl_dense_xt_floats(int n, int in) { return (size_t)(n + NB - 1) / NB * NB * in; }

void nnl_dense_pack_xt(int n, const float *x, int in, int k0, int k1, float *xt) {
    /* 16 columns at a time: 32 rows of 16 floats read, 16 rows of 32 written */
    for (int s = 0; s < n; s += NB) {
        float *o = xt + (size_t)s * in;
        int nb = n - s < NB ? n - s : NB;
        for (int c = k0; c < k1; c += 16) {
            int kk = k1 - c < 16 ? k1 - c : 16;
            for (int b = 0; b < NB; b++) {
                float *ob = o + (size_t)c * NB + b;
                if (b >= nb) {
                    for (int k = 0; k < kk; k++) ob[(size_t)k * NB] = 0.0f;
                    continue;
                }
                const float *xr = x + (size_t)(s + b) * in + c;
                for (int k = 0; k < kk; k++) ob[(size_t)k * NB] = xr[k];
            }
        }
    }
}

#ifdef __AVX512F__

/* t[j] = column j of the 12 x 16 matrix in rows r[0..11] (lanes 12..15 zero): unpacks
 * within 128-bit lanes make 4 x 4 blocks, then whole lanes move. */
static inline __attribute__((always_inline)) void transpose12(const __m512 *r, __m512 *t) {
    __m512 a[16], b[16], z = _mm512_setzero_ps();
    #pragma GCC unroll 8
    for (int p = 0; p < 8; p++) {
        __m512 u = 2 * p < MR ? r[2 * p] : z, v = 2 * p + 1 < MR ? r[2 * p + 1] : z;
        a[2 * p] = _mm512_unpacklo_ps(u, v);
        a[2 * p + 1] = _mm512_unpackhi_ps(u, v);
    }
    #pragma GCC unroll 4
    for (int q = 0; q < 4; q++) {
        __m512d a0 = _mm512_castps_pd(a[4 * q]), a1 = _mm512_castps_pd(a[4 * q + 1]);
        __m512d a2 = _mm512_castps_pd(a[4 * q + 2]), a3 = _mm512_castps_pd(a[4 * q + 3]);
        b[4 * q] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
        b[4 * q + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
        b[4 * q + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
        b[4 * q + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
    }
    /* b[4q + c], lane L, holds rows 4q..4q+3 of column 4L + c */
    #pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        __m512 e0 = _mm512_shuffle_f32x4(b[c], b[4 + c], _MM_SHUFFLE(1, 0, 1, 0));
        __m512 e1 = _mm512_shuffle_f32x4(b[c], b[4 + c], _MM_SHUFFLE(3, 2, 3, 2));
        __m512 e2 = _mm512_shuffle_f32x4(b[8 + c], b[12 + c], _MM_SHUFFLE(1, 0, 1, 0));
        __m512 e3 = _mm512_shuffle_f32x4(b[8 + c], b[12 + c], _MM_SHUFFLE(3, 2, 3, 2));
        t[c] = _mm512_shuffle_f32x4(e0, e2, _MM_SHUFFLE(2, 0, 2, 0));
        t[4 + c] = _mm512_shuffle_f32x4(e0, e2, _MM_SHUFFLE(3, 1, 3, 1));
        t[8 + c] = _mm512_shuffle_f32x4(e1, e3, _MM_SHUFFLE(2, 0, 2, 0));
        t[12 + c] = _mm512_shuffle_f32x4(e1, e3, _MM_SHUFFLE(3, 1, 3, 1));
    }
}

/* Rows [o, o + mr) of the layer over images [s, s + nb). */
static void fwd_tile(const float *xt, int in, const float *w, const float *bias, int o, int mr, int s, int nb,
                     int out, float *y, int relu, float *xtn) {
    const float *rows[MR];
    __m512 c0[MR], c1[MR];
    #pragma GCC unroll 12
    for (int i = 0; i < MR; i++) {
        int oi = o + (i < mr ? i : 0);   /* rows past the end repeat the first; never stored */
        rows[i] = w + (size_t)oi * in;
        c0[i] = c1[i] = _mm512_set1_ps(bias[oi]);
    }
    const float *B = xt + (size_t)s * in;
    if (mr == MR) nnl_tile_core(in, rows, (size_t)in, 1, B, c0, c1);
    else nnl_tile_core(in, rows, (size_t)in, 0, B, c0, c1);
    __m512 z = _mm512_setzero_ps();
    #pragma GCC unroll 12
    for (int i = 0; i < MR; i++) {
        if (relu) {
            c0[i] = _mm512_max_ps(c0[i], z);
            c1[i] = _mm512_max_ps(c1[i], z);
        }
        if (xtn && i < mr) {
            /* the next layer's input o + i over this strip */
            float *d = xtn + (size_t)s * out + (size_t)(o + i) * NB;
            _mm512_store_ps(d, c0[i]);
            _mm512_store_ps(d + 16, c1[i]);
        }
    }
    /* y is image-major: each half of the tile, transposed, is 16 images' rows */
    __mmask16 km = (__mmask16)((1u << mr) - 1);
    for (int h = 0; h < 2; h++) {
        __m512 t[16];
        transpose12(h ? c1 : c0, t);
        for (int j = 0; j < 16 && 16 * h + j < nb; j++)
            _mm512_mask_storeu_ps(y + (size_t)(s + 16 * h + j) * out + o, km, t[j]);
    }
}

void nnl_dense_fwd(int n, const float *xt, int in, const float *w, const float *bias, int o0, int o1, int out,
                   float *y, int relu, float *xtn) {
    for (int o = o0; o < o1; o += MR) {
        int mr = o1 - o < MR ? o1 - o : MR;
        for (int s = 0; s < n; s += NB) fwd_tile(xt, in, w, bias, o, mr, s, n - s < NB ? n - s : NB, out, y, relu, xtn);
    }
}
#endif
