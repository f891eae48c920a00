#include "layer.h"

const nnl_layer_ops *nnl_layer_ops_of(int kind) {
    switch (kind) {
    case NNL_L_DENSE: return &nnl_dense_ops;
    case NNL_L_CONV2D: return &nnl_conv2d_ops;
    case NNL_L_MAXPOOL: return &nnl_maxpool_ops;
    case NNL_L_AVGPOOL: return &nnl_avgpool_ops;
    case NNL_L_GAP: return &nnl_gap_ops;
    case NNL_L_BATCHNORM: return &nnl_batchnorm_ops;
    case NNL_L_RELU: return &nnl_relu_ops;
    case NNL_L_DROPOUT: return &nnl_dropout_ops;
    case NNL_L_FLATTEN: return &nnl_flatten_ops;
    case NNL_L_ADD: return &nnl_add_ops;
    case NNL_L_RECALL: return &nnl_recall_ops;
    case NNL_L_GELU: return &nnl_gelu_ops;
    case NNL_L_SCALE: return &nnl_scale_ops;
    default: return NULL;
    }
}
