#include "core.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char last_msg[512];

const char *nnl_strerror(int status) {
    switch (status) {
#define NNL_X_CASE(name, text) case name: return text;
        NNL_STATUS_TABLE(NNL_X_CASE)
#undef NNL_X_CASE
    default: return "unknown error";
    }
}

const char *nnl_errmsg(void) { return last_msg; }

void nnl_clear_error(void) { last_msg[0] = 0; }

int nnl_fail(int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_msg, sizeof last_msg, fmt, ap);
    va_end(ap);
    return status;
}
