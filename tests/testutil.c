#include "testutil.h"

#include <stdlib.h>
#include <string.h>

int nnl_test_failures = 0;

int nnl_test_finish(const char *name) {
    if (nnl_test_failures) {
        fprintf(stderr, "%s: %d check(s) failed\n", name, nnl_test_failures);
        return 1;
    }
    fprintf(stderr, "%s: all checks passed\n", name);
    return 0;
}

const char *nnl_test_tmpdir(void) {
    static char dir[256];
    if (!dir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/nnltest.XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(dir)) { perror("mkdtemp"); exit(2); }
    }
    return dir;
}
