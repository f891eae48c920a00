/* F(4x4, 3x3): 6x6 input tiles, 4x4 output tiles, 36 sgemms (Lavin & Gray 2015, points
 * 0, +-1, +-2 and infinity): 2.25 multiplies per output pixel and channel pair against
 * F(2x2)'s 4 and the direct convolution's 9.
 *   B^T = | 4  0 -5  0  1  0 |   G = |  1/4    0     0  |   A^T = | 1  1  1  1  1  0 |
 *         | 0 -4 -4  1  1  0 |       | -1/6  -1/6  -1/6 |         | 0  1 -1  2 -2  0 |
 *         | 0  4 -4 -1  1  0 |       | -1/6   1/6  -1/6 |         | 0  1  1  4  4  0 |
 *         | 0 -2 -1  2  1  0 |       |  1/24  1/12  1/6 |         | 0  1 -1  8 -8  1 |
 *         | 0  2 -1 -2  1  0 |       |  1/24 -1/12  1/6 |
 *         | 0  4  0 -5  0  1 |       |  0     0     1   |
 * The coefficients up to 8 cost some accuracy: relative errors of a few 1e-7 against the
 * direct convolution's 1e-7 (test_gradcheck measures both). Each 2-D transform is two
 * passes of a 1-D one over a chunk of channels, through a small scratch block that stays
 * in L1. Layouts: wino_tiles.h. */
#include "wino_tiles.h"

#include <string.h>

/* The 1-D transforms, over n channels: input k at in + k * si, output k at out + k * so. */

/* B^T (6 -> 6) */
static inline void bt6(const float *restrict in, size_t si, float *restrict out, size_t so, int n) {
    const float *restrict d0 = in, *restrict d1 = d0 + si, *restrict d2 = d1 + si;
    const float *restrict d3 = d2 + si, *restrict d4 = d3 + si, *restrict d5 = d4 + si;
    float *restrict o0 = out, *restrict o1 = o0 + so, *restrict o2 = o1 + so;
    float *restrict o3 = o2 + so, *restrict o4 = o3 + so, *restrict o5 = o4 + so;
    #pragma omp simd
    for (int c = 0; c < n; c++) {
        float a1 = d1[c], a2 = d2[c], a3 = d3[c], a4 = d4[c];
        o0[c] = 4.0f * d0[c] - 5.0f * a2 + a4;
        o1[c] = a3 + a4 - 4.0f * (a1 + a2);
        o2[c] = 4.0f * (a1 - a2) + a4 - a3;
        o3[c] = 2.0f * (a3 - a1) + a4 - a2;
        o4[c] = 2.0f * (a1 - a3) + a4 - a2;
        o5[c] = 4.0f * a1 - 5.0f * a3 + d5[c];
    }
}

/* B (6 -> 6), the adjoint of bt6; with acc it adds onto out (which it then reads) */
#define B6_BODY(OP)                                                                          \
    for (int c = 0; c < n; c++) {                                                          \
        float a0 = t0[c], a1 = t1[c], a2 = t2[c], a3 = t3[c], a4 = t4[c], a5 = t5[c];     \
        o0[c] OP 4.0f * a0;                                                                \
        o1[c] OP 4.0f * (a2 - a1 + a5) + 2.0f * (a4 - a3);                                 \
        o2[c] OP -5.0f * a0 - 4.0f * (a1 + a2) - a3 - a4;                                  \
        o3[c] OP a1 - a2 + 2.0f * (a3 - a4) - 5.0f * a5;                                   \
        o4[c] OP a0 + a1 + a2 + a3 + a4;                                                   \
        o5[c] OP a5;                                                                       \
    }
static inline void b6(const float *restrict in, size_t si, float *restrict out, size_t so, int n, int acc) {
    const float *restrict t0 = in, *restrict t1 = t0 + si, *restrict t2 = t1 + si;
    const float *restrict t3 = t2 + si, *restrict t4 = t3 + si, *restrict t5 = t4 + si;
    float *restrict o0 = out, *restrict o1 = o0 + so, *restrict o2 = o1 + so;
    float *restrict o3 = o2 + so, *restrict o4 = o3 + so, *restrict o5 = o4 + so;
    if (acc) {
        #pragma omp simd
        B6_BODY(+=)
    } else {
        #pragma omp simd
        B6_BODY(=)
    }
}

/* A^T (6 -> 4), plus a per-channel bias when bias is not NULL */
static inline void at6(const float *restrict in, size_t si, float *restrict out, size_t so, int n,
                       const float *restrict bias) {
    const float *restrict m0 = in, *restrict m1 = m0 + si, *restrict m2 = m1 + si;
    const float *restrict m3 = m2 + si, *restrict m4 = m3 + si, *restrict m5 = m4 + si;
    float *restrict o0 = out, *restrict o1 = o0 + so, *restrict o2 = o1 + so, *restrict o3 = o2 + so;
    #pragma omp simd
    for (int c = 0; c < n; c++) {
        float b = bias ? bias[c] : 0.0f;
        float p = m1[c] + m2[c], q = m1[c] - m2[c], r = m3[c] + m4[c], s = m3[c] - m4[c];
        o0[c] = m0[c] + p + r + b;
        o1[c] = q + 2.0f * s + b;
        o2[c] = p + 4.0f * r + b;
        o3[c] = q + 8.0f * s + m5[c] + b;
    }
}

/* A (4 -> 6), the adjoint of at6 */
static inline void a6(const float *restrict in, size_t si, float *restrict out, size_t so, int n) {
    const float *restrict y0 = in, *restrict y1 = y0 + si, *restrict y2 = y1 + si, *restrict y3 = y2 + si;
    float *restrict o0 = out, *restrict o1 = o0 + so, *restrict o2 = o1 + so;
    float *restrict o3 = o2 + so, *restrict o4 = o3 + so, *restrict o5 = o4 + so;
    #pragma omp simd
    for (int c = 0; c < n; c++) {
        float a = y0[c], b = y1[c], d = y2[c], e = y3[c];
        o0[c] = a;
        o1[c] = a + b + d + e;
        o2[c] = a - b + d - e;
        o3[c] = a + 2.0f * b + 4.0f * d + 8.0f * e;
        o4[c] = a - 2.0f * b + 4.0f * d - 8.0f * e;
        o5[c] = e;
    }
}

/* G (3 -> 6) on one filter row or column, and its adjoint G^T (6 -> 3) */
static void g6(const float *g, int gs, float *u, int us) {
    float a = g[0], b = g[gs], c = g[2 * gs];
    u[0] = a / 4.0f;
    u[us] = -(a + b + c) / 6.0f;
    u[2 * us] = -(a - b + c) / 6.0f;
    u[3 * us] = a / 24.0f + b / 12.0f + c / 6.0f;
    u[4 * us] = a / 24.0f - b / 12.0f + c / 6.0f;
    u[5 * us] = c;
}
static void g6t(const float *d, int ds, float *r, int rs) {
    float d0 = d[0], d1 = d[ds], d2 = d[2 * ds], d3 = d[3 * ds], d4 = d[4 * ds], d5 = d[5 * ds];
    r[0] = d0 / 4.0f - (d1 + d2) / 6.0f + (d3 + d4) / 24.0f;
    r[rs] = (d2 - d1) / 6.0f + (d3 - d4) / 12.0f;
    r[2 * rs] = (d3 + d4 - d1 - d2) / 6.0f + d5;
}

static void f4_weights(const cgeo *g, const float *w, float *u, int o0, int o1) {
    const size_t xs = (size_t)g->oc * g->c;
    for (int o = o0; o < o1; o++)
        for (int c = 0; c < g->c; c++) {
            const float *f = w + ((size_t)o * g->c + c) * 9;
            float t[6][3], v[6][6];
            for (int l = 0; l < 3; l++) g6(f + l, 3, &t[0][l], 3);     /* G g */
            for (int i = 0; i < 6; i++) g6(t[i], 1, v[i], 1);          /* (G g) G^T */
            float *dst = u + (size_t)o * g->c + c;
            for (int i = 0; i < 6; i++)
                for (int j = 0; j < 6; j++) dst[(size_t)(6 * i + j) * xs] = v[i][j];
        }
}

static void f4_weights_grad(const float *d, float *dst) {
    float r[3][6], s[3][3];
    for (int j = 0; j < 6; j++) g6t(d + j, 6, &r[0][j], 6);            /* G^T dU */
    for (int k = 0; k < 3; k++) g6t(r[k], 1, s[k], 1);                 /* (G^T dU) G */
    for (int k = 0; k < 3; k++)
        for (int l = 0; l < 3; l++) dst[3 * k + l] += s[k][l];
}

static void f4_input(const wgeo *q, int C, const float *restrict xp, float *restrict v, size_t xs, float *tmp) {
    const size_t row = (size_t)q->pw * C;
    for (int ty = 0; ty < q->th; ty++)
        for (int tx = 0; tx < q->tw; tx++) {
            const size_t tile = (size_t)ty * q->tw + tx;
            for (int c0 = 0; c0 < C; c0 += WINO_CHUNK) {
                int n = C - c0 < WINO_CHUNK ? C - c0 : WINO_CHUNK;
                const float *b = xp + (size_t)4 * ty * row + (size_t)4 * tx * C + c0;
                for (int j = 0; j < 6; j++) bt6(b + (size_t)j * C, row, tmp + (size_t)j * n, (size_t)6 * n, n);
                for (int i = 0; i < 6; i++)
                    bt6(tmp + (size_t)6 * i * n, (size_t)n, v + (size_t)(6 * i) * xs + tile * C + c0, xs, n);
            }
        }
}

static void f4_output(const wgeo *q, int OC, const float *restrict m, size_t xs, const float *restrict bias,
                      float *restrict yp, float *tmp) {
    const size_t row = (size_t)4 * q->tw * OC;
    for (int ty = 0; ty < q->th; ty++)
        for (int tx = 0; tx < q->tw; tx++) {
            const size_t tile = (size_t)ty * q->tw + tx;
            for (int o0 = 0; o0 < OC; o0 += WINO_CHUNK) {
                int n = OC - o0 < WINO_CHUNK ? OC - o0 : WINO_CHUNK;
                for (int j = 0; j < 6; j++)
                    at6(m + (size_t)j * xs + tile * OC + o0, (size_t)6 * xs, tmp + (size_t)j * n, (size_t)6 * n, n,
                        NULL);
                float *y = yp + (size_t)4 * ty * row + (size_t)4 * tx * OC + o0;
                for (int a = 0; a < 4; a++)
                    at6(tmp + (size_t)6 * a * n, (size_t)n, y + (size_t)a * row, (size_t)OC, n,
                        bias ? bias + o0 : NULL);
            }
        }
}

static void f4_grad(const wgeo *q, int OC, const float *restrict gp, float *restrict dm, size_t xs, float *tmp) {
    const size_t row = (size_t)4 * q->tw * OC;
    for (int ty = 0; ty < q->th; ty++)
        for (int tx = 0; tx < q->tw; tx++) {
            const size_t tile = (size_t)ty * q->tw + tx;
            for (int o0 = 0; o0 < OC; o0 += WINO_CHUNK) {
                int n = OC - o0 < WINO_CHUNK ? OC - o0 : WINO_CHUNK;
                const float *b = gp + (size_t)4 * ty * row + (size_t)4 * tx * OC + o0;
                for (int j = 0; j < 4; j++) a6(b + (size_t)j * OC, row, tmp + (size_t)j * n, (size_t)4 * n, n);
                for (int i = 0; i < 6; i++)
                    a6(tmp + (size_t)4 * i * n, (size_t)n, dm + (size_t)(6 * i) * xs + tile * OC + o0, xs, n);
            }
        }
}

static void f4_grad_input(const wgeo *q, int C, const float *restrict v, size_t xs, float *restrict xp,
                          float *tmp) {
    const size_t row = (size_t)q->pw * C;
    for (int ty = 0; ty < q->th; ty++)
        for (int tx = 0; tx < q->tw; tx++) {
            const size_t tile = (size_t)ty * q->tw + tx;
            for (int c0 = 0; c0 < C; c0 += WINO_CHUNK) {
                int n = C - c0 < WINO_CHUNK ? C - c0 : WINO_CHUNK;
                for (int i = 0; i < 6; i++)
                    b6(v + (size_t)(6 * i) * xs + tile * C + c0, xs, tmp + (size_t)6 * i * n, (size_t)n, n, 0);
                float *b = xp + (size_t)4 * ty * row + (size_t)4 * tx * C + c0;
                for (int j = 0; j < 6; j++) b6(tmp + (size_t)j * n, (size_t)6 * n, b + (size_t)j * C, row, n, 1);
            }
        }
}

const wino_variant nnl_wino_f4 = {4, f4_weights, f4_weights_grad, f4_input, f4_output, f4_grad, f4_grad_input};
