/* Branch-free float exp and normal CDF that the compiler vectorises (libm's expf and
 * erff are scalar calls: they made GELU 12% of an airbench training step). Both are
 * accurate to a few float ulps, relative, across their whole range, tails included. */
#ifndef NNL_NN_FASTMATH_H
#define NNL_NN_FASTMATH_H

#include <stdint.h>
#include <string.h>

/* e^a: a = n ln2 + r with |r| <= ln2/2 (Cody-Waite, two-part ln2), e^r by Cephes's
 * degree-7 polynomial, 2^n built in the exponent bits. n comes from the magic-number
 * rounding trick, not a float-to-int conversion (undefined for NaN in C). Clamped to
 * the normal range: below e^-87 it returns about 1.6e-38 instead of 0. NaN stays NaN. */
static inline float nnl_exp_approx(float a) {
    a = a < -87.0f ? -87.0f : a;
    a = a > 88.0f ? 88.0f : a;
    const float magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float k = a * 1.44269504088896341f + magic;
    int32_t ki;
    memcpy(&ki, &k, sizeof ki);
    float n = k - magic;
    float r = a - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    uint32_t bits = (uint32_t)(ki - 0x4B400000 + 127) << 23;
    float s;
    memcpy(&s, &bits, sizeof s);
    return p * s;
}

/* Phi(x) = P(N(0,1) <= x) = erfc(-x / sqrt 2) / 2, with erfc from the Chebyshev fit in
 * Numerical Recipes (fractional error below 1.2e-7 everywhere): computing erfc of |z|
 * directly keeps both tails accurate, where 1 + erf(z) would cancel. */
static inline float nnl_phi_approx(float x) {
    float z = x * 0.70710678118654752f;
    float az = z < 0.0f ? -z : z;
    float t = 1.0f / (1.0f + 0.5f * az);
    float p = 0.17087277f;
    p = p * t - 0.82215223f;
    p = p * t + 1.48851587f;
    p = p * t - 1.13520398f;
    p = p * t + 0.27886807f;
    p = p * t - 0.18628806f;
    p = p * t + 0.09678418f;
    p = p * t + 0.37409196f;
    p = p * t + 1.00002368f;
    p = p * t - 1.26551223f;
    float c = t * nnl_exp_approx(p - az * az); /* erfc(|z|) */
    return z < 0.0f ? 0.5f * c : 1.0f - 0.5f * c;
}

#endif
