#include "core.h"
#include "../nn/layer.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

static int g_threads = 0;

/* OpenBLAS gives every thread a 128 MiB buffer (mmap'd when it starts the thread: when it
 * is loaded, for as many threads as cores, and when the count is raised) and, when the
 * address-space limit (ulimit -v) refuses one, retries forever: -t 32 under `ulimit -v 4G`
 * hung. So the room for the threads it does not have yet is probed first, with a buffer
 * and a stack each, by reserving that much address space and releasing it at once. */
#define BLAS_THREAD_BYTES ((size_t)144 << 20)
static int g_blas_started = 0; /* the most threads OpenBLAS has had buffers for */

int nnl_set_threads(int n) {
    if (n <= 0) n = omp_get_num_procs();
    if (g_blas_started == 0) g_blas_started = openblas_get_num_threads();
    struct rlimit rl;
    if (n > g_blas_started && getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        size_t need = (size_t)(n - g_blas_started) * BLAS_THREAD_BYTES;
        void *p = mmap(NULL, need, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED)
            return nnl_fail(NNL_ERR_NOMEM,
                            "%d threads need about %zu MB more address space for OpenBLAS's buffers than the "
                            "limit leaves (ulimit -v %llu kB): use fewer threads or raise the limit",
                            n, need >> 20, (unsigned long long)(rl.rlim_cur >> 10));
        munmap(p, need);
    }
    if (n > g_blas_started) g_blas_started = n;
    g_threads = n;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
    return NNL_OK;
}

int nnl_cores(void) { return omp_get_num_procs(); }

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
