/*
 * The inner product shared by the dense-chain forward pass (dense_fwd.c) and input
 * gradient (dense_dx.c): a tile of MR rows x 32 columns,
 *     c[i][j] += sum_k a_i[k] * B[k][j],
 * where a_i are MR rows of a matrix read in place (each float broadcast once) and B is a
 * packed panel of 32-float rows (two aligned vector loads per k). 2 x MR accumulators
 * and three working registers fill the 32 vector registers.
 *
 * A full tile names its rows by four pointers and a row stride (rows 3j, 3j+1, 3j+2 are
 * p[j], p[j] + ld, p[j] + 2 ld): x86 addresses those with one stride register, where
 * twelve separate pointers would not fit in the general registers and would be reloaded
 * from the stack on every k. A partial tile gives its rows one by one.
 */
#ifndef NNL_DENSE_TILE_H
#define NNL_DENSE_TILE_H

#include <stddef.h>
#include <string.h>

#define NNL_TILE_MR 12
#define NNL_TILE_NR 32

/* width floats of src, then zeros up to full. full is a constant at every call, so a
 * whole row is a fixed-size copy the compiler inlines instead of a libc call. */
static inline __attribute__((always_inline)) void nnl_copy_pad(float *o, const float *src, int width,
                                                             const int full) {
    if (width == full) { memcpy(o, src, (size_t)full * sizeof(float)); return; }
    memcpy(o, src, (size_t)width * sizeof(float));
    memset(o + width, 0, (size_t)(full - width) * sizeof(float));
}

#ifdef __AVX512F__
#include <immintrin.h>

/* The lanes of a 32-column strip's two vectors that lie before the row's end, `left`
 * columns after the strip's start. */
static inline void nnl_tile_masks(int left, __mmask16 *k0, __mmask16 *k1) {
    *k0 = left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1);
    *k1 = left >= 32 ? 0xffff : left <= 16 ? 0 : (__mmask16)((1u << (left - 16)) - 1);
}

static inline __attribute__((always_inline)) void nnl_tile_core(int K, const float *const *rows, size_t ld,
                                                               int full, const float *B, __m512 *c0,
                                                               __m512 *c1) {
    enum { MR = NNL_TILE_MR };
    if (full) {
        const float *p0 = rows[0], *p3 = rows[3], *p6 = rows[6], *p9 = rows[9];
        for (int k = 0; k < K; k++, B += NNL_TILE_NR, p0++, p3++, p6++, p9++) {
            __m512 b0 = _mm512_load_ps(B), b1 = _mm512_load_ps(B + 16);
            const float *p[4] = {p0, p3, p6, p9};
            #pragma GCC unroll 12
            for (int i = 0; i < MR; i++) {
                __m512 a = _mm512_set1_ps(p[i / 3][(i % 3) * ld]);
                c0[i] = _mm512_fmadd_ps(a, b0, c0[i]);
                c1[i] = _mm512_fmadd_ps(a, b1, c1[i]);
            }
        }
        return;
    }
    for (int k = 0; k < K; k++, B += NNL_TILE_NR) {
        __m512 b0 = _mm512_load_ps(B), b1 = _mm512_load_ps(B + 16);
        #pragma GCC unroll 12
        for (int i = 0; i < MR; i++) {
            __m512 a = _mm512_set1_ps(rows[i][k]);
            c0[i] = _mm512_fmadd_ps(a, b0, c0[i]);
            c1[i] = _mm512_fmadd_ps(a, b1, c1[i]);
        }
    }
}
#endif

#endif
