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
    /* Messages quote names and values read from files: a control byte (an escape
     * sequence, a newline) must neither reach the terminal nor break the one-line rule. */
    for (char *p = last_msg; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f) *p = '?';
    return status;
}

void nnl_first_error_init(nnl_first_error *e, int64_t n) {
    e->index = n;
    e->status = NNL_OK;
    e->msg[0] = 0;
}

int nnl_first_error_skip(nnl_first_error *e, int64_t i) {
    int64_t cur;
#pragma omp atomic read
    cur = e->index;
    return i > cur;
}

void nnl_first_error_record(nnl_first_error *e, int64_t i, int status) {
#pragma omp critical(nnl_first_error)
    if (i < e->index) {
        e->status = status;
        snprintf(e->msg, sizeof e->msg, "%s", last_msg);
#pragma omp atomic write
        e->index = i;
    }
}

int nnl_first_error_status(const nnl_first_error *e) {
    return e->status == NNL_OK ? NNL_OK : nnl_fail(e->status, "%s", e->msg);
}
