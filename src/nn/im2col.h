/* im2col and its adjoint for 2-D convolutions (NCHW, zero padding, PyTorch's rules). */
#ifndef NNL_IM2COL_H
#define NNL_IM2COL_H

#include <stddef.h>

/* One convolution's geometry: input C x H x W, OC output channels, kernel K, stride S,
 * padding P, output OH x OW. */
typedef struct cgeo {
    int c, h, w, oc, k, s, p, oh, ow;
    size_t hw, ohw, ckk;
    int direct;   /* 1x1, stride 1, no padding: an image already is its column matrix */
} cgeo;

// x (C,H,W) -> col (C*K*K, H'*W') with row stride ld; zero where the kernel overhangs
void nnl_im2col(const cgeo *g, const float *restrict x, float *restrict col, size_t ld);
// dcol (C*K*K, H'*W') with row stride ld -> dx (C,H,W), overwritten: the adjoint of
// im2col. dcol is scratch and may be overwritten.
void nnl_col2im(const cgeo *g, float *restrict dcol, size_t ld, float *restrict dx);

#endif
