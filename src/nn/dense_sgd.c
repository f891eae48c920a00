/*
 * A dense layer's weight gradient with the SGD step fused in, for the dense-chain
 * backward pass. For `rows` rows of W (the caller's share of output features) and all
 * `in` columns, over a batch of n:
 *     g = dy^T x;  acc += g;  w -= lr * acc;  acc = mu * acc + wd * w
 * (acc is the optimizer's fused state, see optim.c). Done as a separate pass, the step
 * streams the weights and the optimizer state through memory once more after the
 * product, about an eighth of an `mlp` training step. Here each tile of g is finished
 * while it is still in registers, and the product hides the step's loads and stores.
 *
 * The operands are first packed so that the kernel reads both sequentially: x in strips
 * of 32 columns (batch-major), dy^T in tiles of 12 rows. Every g is a plain sum over the
 * batch in order, and every weight takes the same vector arithmetic wherever its tile
 * falls (partial tiles are masked, not done in scalar code), so the result does not depend
 * on how rows are shared between threads.
 */
#include "dense_tile.h"
#include "model.h"

#include <cblas.h>

#define MR NNL_TILE_MR   /* rows of a tile: 2 x 12 accumulators, 2 loads of x, 1 broadcast */
#define NR NNL_TILE_NR   /* columns of a strip */

static inline void sgd_one(float g, float *w, float *acc, const nnl_sgd_fused *f) {
    float b = *acc + g, p = *w - f->lr * b;
    *w = p;
    *acc = f->mu * b + f->wd * p;
}

void nnl_sgd_fused_apply(const float *g, float *w, float *acc, size_t n, const nnl_sgd_fused *f) {
    for (size_t i = 0; i < n; i++) sgd_one(g ? g[i] : 0.0f, w + i, acc + i, f);
}

size_t nnl_dense_pack_x_floats(int n, int in) { return (size_t)(in + NR - 1) / NR * NR * n; }
size_t nnl_dense_pack_dy_floats(int n, int rows) { return (size_t)(rows + MR - 1) / MR * MR * n; }

void nnl_dense_pack_x(int n, const float *x, int in, int s0, int s1, float *xp) {
#ifndef __AVX512F__
    (void)n; (void)x; (void)in; (void)s0; (void)s1; (void)xp;
    return;   /* the BLAS fallback reads x itself */
#endif
    for (int s = s0; s < s1; s++) {
        int j = s * NR, w = in - j < NR ? in - j : NR;
        float *o = xp + (size_t)s * NR * n;
        for (int k = 0; k < n; k++, o += NR) nnl_copy_pad(o, x + (size_t)k * in + j, w, NR);
    }
}

int nnl_dense_x_strips(int in) { return (in + NR - 1) / NR; }

#ifdef __AVX512F__
/* Returns the new weights, zero outside k. */
static inline __attribute__((always_inline)) __m512 sgd_vec(__m512 g, float *w, float *acc, __mmask16 k,
                                                          const nnl_sgd_fused *f) {
    int full = k == 0xffff;   /* plain loads and stores where the whole vector is in the row */
    __m512 b = _mm512_add_ps(full ? _mm512_loadu_ps(acc) : _mm512_maskz_loadu_ps(k, acc), g);
    __m512 p = _mm512_sub_ps(full ? _mm512_loadu_ps(w) : _mm512_maskz_loadu_ps(k, w), _mm512_mul_ps(_mm512_set1_ps(f->lr), b));
    __m512 a = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(f->mu), b), _mm512_mul_ps(_mm512_set1_ps(f->wd), p));
    if (full) {
        _mm512_storeu_ps(w, p);
        _mm512_storeu_ps(acc, a);
    } else {
        _mm512_mask_storeu_ps(w, k, p);
        _mm512_mask_storeu_ps(acc, k, a);
    }
    return _mm512_maskz_mov_ps(k, p);
}

/* One MR x NR tile of g from packed operands, then the step on its mr valid rows and the
 * columns in masks k0, k1; the new weights also go to wp (rows of NR floats) unless NULL. */
static void tile(int n, const float *ap, const float *bp, float *w, float *acc, int ld, int mr,
                 __mmask16 k0, __mmask16 k1, const float *nw, const float *nacc, float *wp,
                 const nnl_sgd_fused *s) {
    __m512 c0[MR], c1[MR];
    #pragma GCC unroll 12
    for (int i = 0; i < MR; i++) c0[i] = c1[i] = _mm512_setzero_ps();
    for (int k = 0; k < n; k++, ap += MR, bp += NR) {
        /* The next tile's weights and state come from memory in rows far apart, which no
         * hardware prefetcher follows. A row's 32 floats touch up to 3 cache lines (rows
         * need not start on a line): its first, middle and last float cover them. */
        if (k < 2 * MR) {
            const float *row = (k & 1 ? nacc : nw) + (size_t)(k >> 1) * ld;
            _mm_prefetch((const char *)row, _MM_HINT_T0);
            _mm_prefetch((const char *)(row + 16), _MM_HINT_T0);
            _mm_prefetch((const char *)(row + 31), _MM_HINT_T0);
        }
        __m512 b0 = _mm512_loadu_ps(bp), b1 = _mm512_loadu_ps(bp + 16);
        #pragma GCC unroll 12
        for (int i = 0; i < MR; i++) {
            __m512 a = _mm512_set1_ps(ap[i]);
            c0[i] = _mm512_fmadd_ps(a, b0, c0[i]);
            c1[i] = _mm512_fmadd_ps(a, b1, c1[i]);
        }
    }
    #pragma GCC unroll 12
    for (int i = 0; i < MR; i++) {
        if (i >= mr) break;
        size_t o = (size_t)i * ld;
        __m512 p0 = sgd_vec(c0[i], w + o, acc + o, k0, s), p1 = sgd_vec(c1[i], w + o + 16, acc + o + 16, k1, s);
        if (wp) {
            _mm512_store_ps(wp + (size_t)i * NR, p0);
            _mm512_store_ps(wp + (size_t)i * NR + 16, p1);
        }
    }
}
#endif

void nnl_dense_dw_sgd(int n, const float *dy, int ldy, const float *xp, const float *x, int in, int rows,
                      float *w, float *acc, float *ap, float *wp, size_t wps, const nnl_sgd_fused *f) {
    if (rows <= 0) return;
#ifdef __AVX512F__
    (void)x;
    /* dy^T in tiles of MR rows, batch-major, zero-padded */
    for (int r = 0; r < rows; r += MR) {
        int h = rows - r < MR ? rows - r : MR;
        float *o = ap + (size_t)r * n;
        for (int k = 0; k < n; k++, o += MR) nnl_copy_pad(o, dy + (size_t)k * ldy + r, h, MR);
    }
    for (int r = 0; r < rows; r += MR) {
        int mr = rows - r < MR ? rows - r : MR;
        for (int j = 0; j < in; j += NR) {
            __mmask16 k0, k1;
            nnl_tile_masks(in - j, &k0, &k1);
            size_t o = (size_t)r * in + j;
            /* the next tile: the next strip, or the first of the next rows. A partial last
             * tile prefetches rows past the end, which is harmless: prefetches never fault. */
            size_t no = j + NR < in ? o + NR : r + MR < rows ? (size_t)(r + MR) * in : o;
            float *wpt = wp ? wp + (size_t)(j / NR) * wps + (size_t)r * NR : NULL;
            tile(n, ap + (size_t)r * n, xp + (size_t)j * n, w + o, acc + o, in, mr, k0, k1, w + no, acc + no, wpt, f);
        }
    }
#else
    (void)xp; (void)ap; (void)wp; (void)wps;
    /* acc += g by the BLAS (beta = 1), then the step as its own pass */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, rows, in, n, 1.0f, dy, ldy, x, in, 1.0f, acc, in);
    nnl_sgd_fused_apply(NULL, w, acc, (size_t)rows * in, f);
#endif
}
