/*
 * A dense layer's input gradient for the dense-chain backward pass, with the ReLU below
 * it applied on the way out:
 *     dx[b][i] = sum_o dy[b][o] w[o][i],   and 0 where the ReLU's output x[b][i] is not > 0
 * for the caller's strips of 32 input features i over a batch of n.
 *
 * This product reads W by columns. In place, with rows of 900 floats, that is a stride
 * of 3,600 bytes per multiply-add step, which no prefetcher keeps up with; OpenBLAS
 * packs W afresh on every call instead. Here W comes from a copy in strips of 32 columns
 * ([strip][o][32], "wp") that the fused SGD step (dense_sgd.c) writes from registers as it
 * updates W, so each strip is read front to back and nothing is packed per step. dy is
 * broadcast in place, 12 images at a time (dense_tile.h), and each tile is 12 whole rows
 * of dx: no transposing on the way out.
 *
 * Every dx is one sum in the order o = 0, 1, ..., out - 1, whichever thread computes it.
 */
#include "dense_tile.h"
#include "model.h"

#define MR NNL_TILE_MR   /* images per tile */
#define NR NNL_TILE_NR   /* input features per strip */

size_t nnl_dense_wp_floats(int in, int out) { return (size_t)(in + NR - 1) / NR * NR * out; }

void nnl_dense_pack_w(const float *w, int in, int out, int o0, int o1, float *wp) {
    for (int j = 0; j < in; j += NR) {
        int width = in - j < NR ? in - j : NR;
        float *d = wp + (size_t)j * out;
        for (int o = o0; o < o1; o++) nnl_copy_pad(d + (size_t)o * NR, w + (size_t)o * in + j, width, NR);
    }
}

#ifdef __AVX512F__
static inline __attribute__((always_inline)) __m512 relu_mask(__m512 g, const float *x, __mmask16 k) {
    __mmask16 pos = _mm512_mask_cmp_ps_mask(k, _mm512_maskz_loadu_ps(k, x), _mm512_setzero_ps(), _CMP_GT_OQ);
    return _mm512_maskz_mov_ps(pos, g);
}

void nnl_dense_dx(int n, const float *dy, int out, const float *wp, int in, int s0, int s1, const float *x,
                  float *dx) {
    for (int s = s0; s < s1; s++) {
        int j = s * NR;
        __mmask16 k0, k1;
        nnl_tile_masks(in - j, &k0, &k1);
        const float *B = wp + (size_t)j * out;
        for (int b = 0; b < n; b += MR) {
            int mr = n - b < MR ? n - b : MR;
            const float *rows[MR];
            __m512 c0[MR], c1[MR];
            #pragma GCC unroll 12
            for (int i = 0; i < MR; i++) {
                rows[i] = dy + (size_t)(b + (i < mr ? i : 0)) * out;   /* rows past the end repeat; never stored */
                c0[i] = c1[i] = _mm512_setzero_ps();
            }
            if (mr == MR) nnl_tile_core(out, rows, (size_t)out, 1, B, c0, c1);
            else nnl_tile_core(out, rows, (size_t)out, 0, B, c0, c1);
            for (int i = 0; i < mr; i++) {
                size_t at = (size_t)(b + i) * in + j;
                __m512 g0 = x ? relu_mask(c0[i], x + at, k0) : c0[i];
                __m512 g1 = x ? relu_mask(c1[i], x + at + 16, k1) : c1[i];
                _mm512_mask_storeu_ps(dx + at, k0, g0);
                _mm512_mask_storeu_ps(dx + at + 16, k1, g1);
            }
        }
    }
}
#endif
