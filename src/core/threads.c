#include "nnlock.h"
#include "../nn/layer.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

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
    /* "Haswell" is what OpenBLAS falls back to on this CPU anyway, and some machine
     * images export it; treat it like unset. Any other choice is the user's. */
    const char *e = getenv("OPENBLAS_CORETYPE");
    if (e && *e && strcasecmp(e, "Haswell") != 0) return 0;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") ? 1 : 0;
}

/* libgomp's idle threads spin for a long time (GOMP_SPINCOUNT 300000 by default) before
 * they sleep. On a machine with other work, a spinning thread holds the core its descheduled
 * team-mate needs, and training ran 30x slower here (465 against 14,400 images/s for the
 * mlp). A short spin costs about 1% on a quiet machine and gives 2,700 under the same load. */
static int wants_spincount(void) {
    return !getenv("GOMP_SPINCOUNT") && !getenv("OMP_WAIT_POLICY");
}

void nnl_blas_reexec(char **argv) {
    if (getenv("NNL_NO_REEXEC")) return;
    int blas = nnl_blas_wants_skylakex(), spin = wants_spincount();
    if (!blas && !spin) return;
    if (blas) setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
    if (spin) setenv("GOMP_SPINCOUNT", "2000", 1);
    setenv("NNL_NO_REEXEC", "1", 1);
    execv("/proc/self/exe", argv);
}
