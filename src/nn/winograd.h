/* The 3x3, stride-1 convolution by Winograd's minimal filtering F(2x2, 3x3) or F(4x4, 3x3)
 * (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2015): each m x m
 * block of outputs costs (m+2)^2 multiplies per channel pair instead of 9 m^2, done as
 * (m+2)^2 sgemms over all the tiles of a group of images. Backward is the exact adjoint
 * of that forward, also as sgemms in the transformed domain. A kernel behind conv2d.c,
 * which decides when it runs. */
#ifndef NNL_WINOGRAD_H
#define NNL_WINOGRAD_H

#include "im2col.h"

#include <stddef.h>

/* Whether the kernel computes this convolution at all (3x3, stride 1, padding 0..2). */
int nnl_wino_fits(const cgeo *g);
/* Which kernel conv2d.c runs where this one fits: -1 its own choice, 0 im2col, 1 F(2x2),
 * 2 F(4x4).
 * Set only by tests and benchmarks, which compare the two, before any model runs. */
extern int nnl_wino_mode;
/* conv2d.c's choice for a convolution this kernel fits. */
int nnl_wino_pays(const cgeo *g);
/* Work floats for a batch of n on t threads. */
size_t nnl_wino_work_floats(const cgeo *g, int n, int t);
// x (N,C,H,W), w (OC,C,3,3), bias (OC or NULL) -> y (N,OC,H',W'), on t threads
void nnl_wino_forward(const cgeo *g, int n, int t, const float *x, const float *w, const float *bias,
                      float *y, float *work);
// dy (N,OC,H',W') -> gw (OC,C,3,3) +=, gb (OC, or NULL) +=, dx (N,C,H,W) overwritten (if dx)
void nnl_wino_backward(const cgeo *g, int n, int t, const float *x, const float *w, const float *dy,
                       float *dx, float *gw, float *gb, float *work);

#endif
