/* The tile transforms of one Winograd variant F(m x m, 3x3), for winograd.c, which runs
 * the sgemms between them. Layouts (channels innermost, see winograd.c):
 *   xp   one image zero-padded, channels last, pw pixels a row; tile (ty, tx) reads the
 *        a x a pixels from (m ty, m tx), a = m + 2;
 *   V, M entry xi (0 .. a*a-1) of every tile of a group: V[xi][tile][c], M[xi][tile][o],
 *        xs floats from one xi to the next; the pointers passed point at an image's first
 *        tile;
 *   yp, gp one image's outputs (or their gradient), channels last, m tw pixels a row,
 *        m th rows (zero past the real edge in gp);
 *   U    U[xi][o][c].
 * tmp is scratch of wino_tmp_floats(C or OC) floats. */
#ifndef NNL_WINO_TILES_H
#define NNL_WINO_TILES_H

#include "im2col.h"

#include <stddef.h>

typedef struct wgeo {
    int m, a, nx;       /* output tile side, input tile side (m + 2), entries (a * a) */
    int th, tw, ph, pw; /* tile rows and columns; the zero-padded image the tiles read */
    size_t nt;          /* tiles per image */
    int b;              /* images per group */
    size_t tmax;        /* tiles per group */
    /* per-thread slice: offsets and stride, in floats */
    size_t v, m_, du, db, xp, yp, tmp, stride;
    size_t u;           /* shared U, before the slices */
} wgeo;

/* Channels a transform handles at once (its scratch: a*a of them). */
#define WINO_CHUNK 64
static inline size_t wino_tmp_floats(void) { return (size_t)36 * WINO_CHUNK; }

typedef struct wino_variant {
    int m;
    /* U for the output channels [o0, o1) */
    void (*weights)(const cgeo *g, const float *w, float *u, int o0, int o1);
    /* w9 += G^T dU G for one filter, from its a*a entries d */
    void (*weights_grad)(const float *d, float *w9);
    void (*input)(const wgeo *q, int C, const float *xp, float *v, size_t xs, float *tmp);
    void (*output)(const wgeo *q, int OC, const float *m, size_t xs, const float *bias, float *yp, float *tmp);
    /* dM = A^T-adjoint of the output gradient */
    void (*grad)(const wgeo *q, int OC, const float *gp, float *dm, size_t xs, float *tmp);
    /* xp += the adjoint of input applied to dV */
    void (*grad_input)(const wgeo *q, int C, const float *v, size_t xs, float *xp, float *tmp);
} wino_variant;

extern const wino_variant nnl_wino_f2, nnl_wino_f4;

#endif
