/* im2col and its adjoint: the column matrix a convolution's sgemm multiplies, and the
 * scatter of its gradient back onto the input planes. */
#include "im2col.h"

#include <stdint.h>
#include <string.h>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

/* Where column-matrix row (ki, kj) reads one input plane: output rows [y0, y1) and
 * output columns [x0, x1) fall inside the input; elsewhere the kernel overhangs into
 * the padding. In a same-size convolution (stride 1, 2*pad = K-1) output pixel d
 * reads input pixel d + shift, so a whole row is one contiguous copy: short image
 * rows would otherwise make the copy loops all overhead. */
typedef struct taps { int y0, y1, x0, x1; long shift; } taps;

static taps taps_of(const cgeo *g, int ki, int kj) {
    taps t;
    int a = g->p - ki, b = g->h - 1 + g->p - ki;
    t.y0 = a > 0 ? (a + g->s - 1) / g->s : 0;
    t.y1 = b >= 0 ? b / g->s + 1 : 0;
    if (t.y1 > g->oh) t.y1 = g->oh;
    if (t.y1 < t.y0) t.y1 = t.y0;
    a = g->p - kj; b = g->w - 1 + g->p - kj;
    t.x0 = a > 0 ? (a + g->s - 1) / g->s : 0;
    t.x1 = b >= 0 ? b / g->s + 1 : 0;
    if (t.x1 > g->ow) t.x1 = g->ow;
    if (t.x1 < t.x0) t.x1 = t.x0;
    t.shift = (long)(ki - g->p) * g->w + (kj - g->p);
    return t;
}

static int same_size(const cgeo *g) { return g->s == 1 && 2 * g->p == g->k - 1; }

/* The contiguous span [d0, d1) of a row: the valid output rows, clipped so that the
 * input index d + shift stays inside the plane (what the clip drops is overhang). */
static void span(const cgeo *g, const taps *t, long *d0, long *d1) {
    long a = (long)t->y0 * g->ow, b = (long)t->y1 * g->ow, hw = (long)g->hw;
    if (a < -t->shift) a = -t->shift;
    if (b > hw - t->shift) b = hw - t->shift;
    if (b < a) b = a;
    *d0 = a; *d1 = b;
}

#ifdef __AVX512F__
/* A same-size tap as masked 16-float vectors over the whole plane: the valid pixels are
 * those in the span [d0, d1) and in the columns [x0, x1). Memset, memmove and a fix-up
 * loop per image row (the portable path) cost two to three times as much on 16x16 and
 * 8x8 maps, where a tap's plane is only 256 or 64 floats. The column masks repeat every
 * ow / gcd(ow, 16) vectors and are tabled once per call; masked-off lanes of a masked
 * load never fault, so the source may run past the plane's ends there. */
#define VTAP_MAX_PERIOD 64
#define VTAP_MAX_K 16

/* Fills masks[kj * per + v], the lanes of vector v (mod per) whose column is valid for
 * tap column kj, and returns the period per; 0 when the convolution is not same-size
 * or the table would not fit (the portable path then runs). */
static int vtap_table(const cgeo *g, uint16_t *masks) {
    if (!same_size(g) || g->k > VTAP_MAX_K) return 0;
    int a = g->ow, b = 16;
    while (b) { int r = a % b; a = b; b = r; }
    const int per = g->ow / a;
    if (per > VTAP_MAX_PERIOD) return 0;
    for (int kj = 0; kj < g->k; kj++) {
        const taps t = taps_of(g, 0, kj);
        for (int v = 0; v < per; v++) {
            unsigned bits = 0;
            for (int l = 0; l < 16; l++) {
                int c = (v * 16 + l) % g->ow;
                if (c >= t.x0 && c < t.x1) bits |= 1u << l;
            }
            masks[kj * per + v] = (uint16_t)bits;
        }
    }
    return per;
}

/* The column-table index after v. */
static inline long next_v(long v, int per) { return v + 1 == per ? 0 : v + 1; }

/* Lanes l of the vector at d with lo <= d + l < hi. */
static inline __mmask16 lanes_in(long d, long lo, long hi) {
    long a = lo - d, b = hi - d;
    a = a < 0 ? 0 : a > 16 ? 16 : a;
    b = b < 0 ? 0 : b > 16 ? 16 : b;
    return (__mmask16)(((1u << b) - 1) & ~((1u << a) - 1));
}

/* p + shift, computed on the address: the masked loads and stores start from vectors
 * that may lie partly outside the plane, where pointer arithmetic would be undefined.
 * Two versions, so that the writer (col2im) need not cast const away. */
static uintptr_t shifted_addr(uintptr_t p, long shift) {
    return p + (uintptr_t)(intptr_t)(shift * (long)sizeof(float));
}
static const float *shifted(const float *p, long shift) { return (const float *)shifted_addr((uintptr_t)p, shift); }
static float *shifted_w(float *p, long shift) { return (float *)shifted_addr((uintptr_t)p, shift); }

/* The vectors [a, b) that lie wholly inside the span [d0, d1): they need only the
 * column table, while the few that straddle its ends also need the span test per lane. */
typedef struct vrange { long a, b; } vrange;

static vrange inner(long d0, long d1) {
    vrange r = {(d0 + 15) / 16 * 16, d1 / 16 * 16};
    if (r.b < r.a) r.b = r.a;
    return r;
}

/* Tap (ki, kj) of every channel: channel c reads plane x + c*hw and writes row
 * col + c*K*K*ld. The span and the masks are the same for all channels. */
static void im2col_tap_avx512(const cgeo *g, const taps *t, const uint16_t *cm, int per, const float *x,
                              float *col, size_t ld) {
    long d0, d1;
    span(g, t, &d0, &d1);
    const long ohw = (long)g->ohw;
    const vrange in = inner(d0, d1);
    const size_t rs = (size_t)g->k * g->k * ld;
    for (int c = 0; c < g->c; c++) {
        const float *src = shifted(x + (size_t)c * g->hw, t->shift);
        float *row = col + (size_t)c * rs;
        long d = 0, v = 0;
        for (; d < in.a; d += 16, v = next_v(v, per))
            _mm512_mask_storeu_ps(row + d, lanes_in(d, 0, ohw),
                                  _mm512_maskz_loadu_ps(cm[v] & lanes_in(d, d0, d1), shifted(src, d)));
        for (; d < in.b; d += 16, v = next_v(v, per))
            _mm512_storeu_ps(row + d, _mm512_maskz_loadu_ps(cm[v], shifted(src, d)));
        for (; d < ohw; d += 16, v = next_v(v, per))
            _mm512_mask_storeu_ps(row + d, lanes_in(d, 0, ohw),
                                  _mm512_maskz_loadu_ps(cm[v] & lanes_in(d, d0, d1), shifted(src, d)));
    }
}

static inline void add_masked(float *o, const float *r, __mmask16 m) {
    _mm512_mask_storeu_ps(o, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, o), _mm512_maskz_loadu_ps(m, r)));
}

/* The adjoint: channel c's row adds into plane dx + c*hw. */
static void col2im_tap_avx512(const cgeo *g, const taps *t, const uint16_t *cm, int per, const float *col,
                              size_t ld, float *dx) {
    long d0, d1;
    span(g, t, &d0, &d1);
    const vrange in = inner(d0, d1);
    const size_t rs = (size_t)g->k * g->k * ld;
    for (int c = 0; c < g->c; c++) {
        float *dst = shifted_w(dx + (size_t)c * g->hw, t->shift);
        const float *row = col + (size_t)c * rs;
        long d = d0 / 16 * 16, v = (d0 / 16) % per;
        for (; d < in.a && d < d1; d += 16, v = next_v(v, per))
            add_masked(shifted_w(dst, d), row + d, cm[v] & lanes_in(d, d0, d1));
        for (; d < in.b; d += 16, v = next_v(v, per))
            add_masked(shifted_w(dst, d), row + d, cm[v]);
        for (; d < d1; d += 16, v = next_v(v, per))
            add_masked(shifted_w(dst, d), row + d, cm[v] & lanes_in(d, d0, d1));
    }
}
#endif

// x (C,H,W) -> col (C*K*K, H'*W') with row stride ld; zero where the kernel overhangs
void nnl_im2col(const cgeo *g, const float *restrict x, float *restrict col, size_t ld) {
    const int k = g->k, s = g->s, ow = g->ow;
    const long ohw = (long)g->ohw;
#ifdef __AVX512F__
    uint16_t cm[VTAP_MAX_K * VTAP_MAX_PERIOD];
    const int per = vtap_table(g, cm);
#endif
    for (int ki = 0; ki < k; ki++)
        for (int kj = 0; kj < k; kj++) {
            const taps t = taps_of(g, ki, kj);
#ifdef __AVX512F__
            if (per) { im2col_tap_avx512(g, &t, cm + kj * per, per, x, col + (size_t)(ki * k + kj) * ld, ld); continue; }
#endif
            for (int c = 0; c < g->c; c++) {
                float *row = col + ((size_t)(c * k + ki) * k + kj) * ld;
                const float *xp = x + (size_t)c * g->hw;
                if (same_size(g)) {
                    long d0, d1;
                    span(g, &t, &d0, &d1);
                    for (long d = 0; d < d0; d++) row[d] = 0.0f;
                    for (long d = d0; d < d1; d++) row[d] = xp[d + t.shift];
                    for (long d = d1; d < ohw; d++) row[d] = 0.0f;
                    /* The copy wrapped around the row ends: those pixels are overhang. */
                    for (int oy = t.y0; oy < t.y1; oy++) {
                        float *r = row + (size_t)oy * ow;
                        for (int j = 0; j < t.x0; j++) r[j] = 0.0f;
                        for (int j = t.x1; j < ow; j++) r[j] = 0.0f;
                    }
                    continue;
                }
                for (int oy = 0; oy < g->oh; oy++) {
                    float *r = row + (size_t)oy * ow;
                    if (oy < t.y0 || oy >= t.y1) {
                        for (int j = 0; j < ow; j++) r[j] = 0.0f;
                        continue;
                    }
                    const float *xr = xp + (size_t)(oy * s - g->p + ki) * g->w + (t.x0 * s - g->p + kj);
                    for (int j = 0; j < t.x0; j++) r[j] = 0.0f;
                    /* A literal stride of 2 lets the compiler vectorise the gather. */
                    if (s == 2) for (int j = t.x0; j < t.x1; j++) r[j] = xr[(size_t)(j - t.x0) * 2];
                    else for (int j = t.x0; j < t.x1; j++) r[j] = xr[(size_t)(j - t.x0) * s];
                    for (int j = t.x1; j < ow; j++) r[j] = 0.0f;
                }
            }
        }
}

// dcol (C*K*K, H'*W') with row stride ld -> dx (C,H,W), overwritten: the adjoint of
// im2col. dcol is scratch: its overhang entries are zeroed on the way.
void nnl_col2im(const cgeo *g, float *restrict dcol, size_t ld, float *restrict dx) {
    const int k = g->k, s = g->s, ow = g->ow;
    /* A same-size convolution's centre tap reads every input pixel once, so copying
     * it initialises dx; otherwise dx starts from zero. */
    const int centre = same_size(g);
    if (!centre) memset(dx, 0, (size_t)g->c * g->hw * sizeof(float));
    else
        for (int c = 0; c < g->c; c++)
            memcpy(dx + (size_t)c * g->hw, dcol + ((size_t)(c * k + g->p) * k + g->p) * ld, g->hw * sizeof(float));
#ifdef __AVX512F__
    uint16_t cm[VTAP_MAX_K * VTAP_MAX_PERIOD];
    const int per = vtap_table(g, cm);
#endif
    for (int ki = 0; ki < k; ki++)
        for (int kj = 0; kj < k; kj++) {
            if (centre && ki == g->p && kj == g->p) continue;
            const taps t = taps_of(g, ki, kj);
#ifdef __AVX512F__
            if (per) { col2im_tap_avx512(g, &t, cm + kj * per, per, dcol + (size_t)(ki * k + kj) * ld, ld, dx); continue; }
#endif
            for (int c = 0; c < g->c; c++) {
                float *row = dcol + ((size_t)(c * k + ki) * k + kj) * ld;
                float *xp = dx + (size_t)c * g->hw;
                if (same_size(g)) {
                    for (int oy = t.y0; oy < t.y1; oy++) {
                        float *r = row + (size_t)oy * ow;
                        for (int j = 0; j < t.x0; j++) r[j] = 0.0f;
                        for (int j = t.x1; j < ow; j++) r[j] = 0.0f;
                    }
                    long d0, d1;
                    span(g, &t, &d0, &d1);
                    float *xs = xp + t.shift;
                    for (long d = d0; d < d1; d++) xs[d] += row[d];
                    continue;
                }
                for (int oy = t.y0; oy < t.y1; oy++) {
                    const float *r = row + (size_t)oy * ow;
                    float *xr = xp + (size_t)(oy * s - g->p + ki) * g->w + (t.x0 * s - g->p + kj);
                    if (s == 2) for (int j = t.x0; j < t.x1; j++) xr[(size_t)(j - t.x0) * 2] += r[j];
                    else for (int j = t.x0; j < t.x1; j++) xr[(size_t)(j - t.x0) * s] += r[j];
                }
            }
        }
}
