/* A model's tensors as a list of named safetensors entries pointing into the model: the names
 * of nnlock's model files ("layers.I.weight"), or those of the matching PyTorch module. */
#ifndef NNL_TENSOR_LIST_H
#define NNL_TENSOR_LIST_H

#include "../nn/model.h"
#include "safetensors.h"

typedef struct nnl_tensor_list {
    nnl_st_tensor *t;
    int *layer;              /* the layer each tensor belongs to */
    int n;
} nnl_tensor_list;

/* torch 0: nnlock's names; 1: the names of the PyTorch module of the architecture (AuthNet's for
 * the lenet5 and vgg13 presets; "layers.I" for the module `nnlock export --torch` writes for any
 * other spec, one submodule per nnlock layer). The data point into m. */
int nnl_tensor_list_make(nnl_model *m, int torch, nnl_tensor_list *out);
void nnl_tensor_list_free(nnl_tensor_list *l);

#endif
