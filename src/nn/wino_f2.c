/* F(2x2, 3x3): 4x4 input tiles, 2x2 output tiles, 16 sgemms (Lavin & Gray 2015):
 *     y = A^T [ (G g G^T) . (B^T d B) ] A
 *   B^T = | 1  0 -1  0 |    G = | 1    0    0  |    A^T = | 1  1  1  0 |
 *         | 0  1  1  0 |        | 1/2  1/2  1/2 |          | 0  1 -1 -1 |
 *         | 0 -1  1  0 |        | 1/2 -1/2  1/2 |
 *         | 0  1  0 -1 |        | 0    0    1  |
 * Every coefficient is 0, 1/2 or 1: the transforms are adds only, and the result is as
 * accurate as the direct convolution's. Layouts: wino_tiles.h. */
#include "wino_tiles.h"

/* U[xi][o][c] = (G w[o][c] G^T)[xi] for the output channels [o0, o1). */
static void f2_weights(const cgeo *g, const float *w, float *u, int o0, int o1) {
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

/* One image's tiles into V. */
static void f2_input(const wgeo *q, int C, const float *restrict xp, float *restrict v, size_t xs, float *tmp) {
    (void)tmp;
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
static void f2_output(const wgeo *q, int OC, const float *restrict m, size_t xs, const float *restrict bias,
                      float *restrict yp, float *tmp) {
    (void)tmp;
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
static void f2_grad(const wgeo *q, int OC, const float *restrict gp, float *restrict dm, size_t xs, float *tmp) {
    (void)tmp;
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
static void f2_grad_input(const wgeo *q, int C, const float *restrict v, size_t xs, float *restrict xp,
                          float *tmp) {
    (void)tmp;
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


/* w9 += G^T dU G for one filter. */
static void f2_weights_grad(const float *d, float *dst) {
    float r[3][4];
    for (int j = 0; j < 4; j++) {
        r[0][j] = d[j] + 0.5f * (d[4 + j] + d[8 + j]);
        r[1][j] = 0.5f * (d[4 + j] - d[8 + j]);
        r[2][j] = 0.5f * (d[4 + j] + d[8 + j]) + d[12 + j];
    }
    for (int k = 0; k < 3; k++) {
        dst[3 * k + 0] += r[k][0] + 0.5f * (r[k][1] + r[k][2]);
        dst[3 * k + 1] += 0.5f * (r[k][1] - r[k][2]);
        dst[3 * k + 2] += 0.5f * (r[k][1] + r[k][2]) + r[k][3];
    }
}

const wino_variant nnl_wino_f2 = {2, f2_weights, f2_weights_grad, f2_input, f2_output, f2_grad, f2_grad_input};
