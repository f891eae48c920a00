/* Softmax cross-entropy. Serial on purpose: it is tiny next to the layers, and a
 * fixed summation order keeps the reported loss reproducible. */
#include "model.h"

#include <math.h>

double nnl_softmax_xent(const float *logits, const int32_t *labels, const float *soft, int n,
                        int k, float smoothing, float *dlogits, int64_t *correct) {
    double total = 0.0;
    int64_t ok = 0;
    float off = smoothing / (float)k, on = 1.0f - smoothing;
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * k;
        const float *t = soft ? soft + (size_t)i * k : NULL;
        int best = 0, target = t ? 0 : labels[i];
        float zmax = z[0];
        for (int j = 1; j < k; j++)
            if (z[j] > zmax) { zmax = z[j]; best = j; }
        if (t) {
            for (int j = 1; j < k; j++)
                if (t[j] > t[target]) target = j;
        }
        if (best == target) ok++;
        double sum = 0.0;
        for (int j = 0; j < k; j++) sum += exp((double)(z[j] - zmax));
        double lse = (double)zmax + log(sum);
        double li = 0.0;
        for (int j = 0; j < k; j++) {
            float tj = t ? t[j] : (j == target ? 1.0f : 0.0f);
            tj = on * tj + off;
            double p = exp((double)z[j] - lse);
            li -= (double)tj * ((double)z[j] - lse);
            if (dlogits) dlogits[(size_t)i * k + j] = (float)((p - (double)tj) / n);
        }
        total += li;
    }
    if (correct) *correct += ok;
    return n > 0 ? total / n : 0.0;
}
