/* libFuzzer target: the model loader (safetensors container + nnlock's structure
 * checks) must refuse any malformed input cleanly, never crash. */
#include "nn/model.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    nnl_model *m = NULL;
    if (nnl_model_from_memory(&m, data, size) == NNL_OK) {
        if (!m) abort();
        /* A model that loads must also run. */
        int c, h, w;
        nnl_model_input_shape(m, &c, &h, &w);
        if ((size_t)c * h * w <= 4096 && nnl_model_param_count(m) < (1u << 20)) {
            uint8_t px[4096] = {0};
            int32_t pred;
            if (nnl_model_predict(m, px, 1, NULL, &pred) != NNL_OK) abort();
        }
        nnl_model_free(m);
    }
    return 0;
}
