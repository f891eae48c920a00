#include "nnlock.h"
#include "../nn/layer.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

static int g_threads = 0;

void nnl_set_threads(int n) {
    if (n <= 0) n = omp_get_num_procs();
    g_threads = n;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int nnl_get_threads(void) { return g_threads > 0 ? g_threads : omp_get_max_threads(); }

int nnl_threads(void) { return nnl_get_threads(); }

int nnl_blas_wants_skylakex(void) {
    const char *e = getenv("OPENBLAS_CORETYPE");
    if (e && *e) return 0;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") ? 1 : 0;
}
