/* The backward pass and the optimizer step of one batch. */
#include "step.h"

#include <string.h>

typedef struct { const nnl_optim *opt; float *params; const float *grads; float lr; } update_ctx;

static void update_slice(void *user, size_t begin, size_t end) {
    const update_ctx *u = user;
    nnl_optim_update_range(u->opt, u->params, u->grads, u->lr, begin, end);
}

void nnl_backward_step(nnl_model *m, nnl_optim *opt, const float *dlogits, int n, float lr) {
    if (m->chain) {
        /* dense-only networks: backward and the update in one parallel region, each layer's
         * parameters updated as soon as nobody reads them any more */
        memcpy(m->dacts[m->nlayers], dlogits, (size_t)n * m->nclass * sizeof(float));
        if (nnl_optim_fusable(opt)) {
            nnl_sgd_fused f = nnl_optim_fused_begin(opt, m->params, lr);
            nnl_dense_chain_backward(m, n, &f, NULL, NULL);
        } else {
            nnl_optim_begin_step(opt);
            update_ctx u = {opt, m->params, m->grads, lr};
            nnl_dense_chain_backward(m, n, NULL, update_slice, &u);
        }
        return;
    }
    nnl_model_backward_fresh(m, dlogits, n);
    nnl_optim_step(opt, m->params, m->grads, lr);
}
