/* The gradient with respect to the input, compared with PyTorch on identical weights: LeNet-5
 * and VGG-13 (AuthNet's layouts, through export and the generated module), a spec with a
 * residual, GELU and average pooling; in evaluation mode, and in training mode with the layers
 * below the gate frozen (their batch-norms in evaluation mode). Where a max-pool or a ReLU is
 * within rounding of a tie (1e-4 of the layer's scale), the reference takes nnlock's decision,
 * as test_torch_ref does: such a near-tie is decided by rounding, and the other choice moves a
 * gradient far from where a wrong formula would. The reference runs in
 * tests/ref/torch_grad.py with /usr/bin/python3; without python3-torch the test is skipped (77)
 * unless NNL_REQUIRE_TORCH=1. */
#include "nn/model.h"
#include "testutil.h"

#include <unistd.h>

static nnl_rng g_rng = {4242};
static float urand(float lo, float hi) { return lo + (hi - lo) * nnl_rng_uniform(&g_rng); }

static int skip_or_fail(const char *why) {
    const char *req = getenv("NNL_REQUIRE_TORCH");
    if (req && !strcmp(req, "1")) { fprintf(stderr, "test_torch_grad: %s, and NNL_REQUIRE_TORCH=1: failing\n", why); return 1; }
    fprintf(stderr, "test_torch_grad: SKIPPED: %s\n", why);
    return 77;
}

/* One case: the model, its export, the inputs and nnlock's results in DIR/NAME.* */
static void write_case(const char *dir, const char *name, const char *arch, int c, int h, int w, int nclass, int training,
                       const char *freeze) {
    nnl_model *m;
    if (nnl_model_create(&m, arch, c, h, w, nclass) != NNL_OK) { fprintf(stderr, "%s: %s\n", name, nnl_errmsg()); exit(2); }
    nnl_model_init(m, 3);
    for (int i = 0; i < m->nlayers; i++) {
        nnl_layer *L = &m->layers[i];
        if (L->kind != NNL_L_BATCHNORM) continue;
        for (int k = 0; k < L->in.c; k++) {
            m->state[L->s_off + k] = urand(-0.2f, 0.2f);
            m->state[L->s_off + L->in.c + k] = urand(0.5f, 1.5f);
            m->params[L->w_off + k] = urand(0.5f, 1.5f);
            m->params[L->b_off + k] = urand(-0.2f, 0.2f);
        }
    }
    /* 8 images: a batch-norm in training mode on VGG-13's 2x2 maps normalises over 32 values */
    int n = 8;
    CHECK(nnl_model_prepare(m, n) == NNL_OK);
    if (freeze) CHECK(nnl_model_freeze(m, freeze) == NNL_OK);
    nnl_model_set_input_grad(m, 1);
    size_t in = (size_t)n * c * h * w, k = (size_t)n * nclass;
    float *x = malloc(in * sizeof *x), *r = malloc(k * sizeof *r), *z = malloc(k * sizeof *z);
    for (size_t i = 0; i < in; i++) x[i] = urand(-1.5f, 1.5f);
    for (size_t i = 0; i < k; i++) r[i] = urand(-1.0f, 1.0f);
    memcpy(z, nnl_model_forward(m, x, n, training, 1, 1, 0.0f), k * sizeof *z);
    nnl_model_backward_fresh(m, r, n);
    char path[600];
    snprintf(path, sizeof path, "%s/%s.safetensors", dir, name);
    CHECK(nnl_model_export_torch(m, path) == NNL_OK);
    snprintf(path, sizeof path, "%s/%s.py", dir, name);
    CHECK(nnl_model_write_torch_module(m, path) == NNL_OK);
    snprintf(path, sizeof path, "%s/%s.bin", dir, name);
    FILE *f = fopen(path, "wb");
    int32_t hdr[7] = {n, c, h, w, nclass, training, nnl_model_frozen_layers(m)};
    CHECK(f && fwrite(hdr, sizeof hdr, 1, f) == 1 && fwrite(x, sizeof *x, in, f) == in && fwrite(r, sizeof *r, k, f) == k &&
          fwrite(z, sizeof *z, k, f) == k && fwrite(nnl_model_input_grad(m), sizeof(float), in, f) == in);
    /* every max-pool's choices (an index into its input plane per output), for the reference
     * to take the same ones: a near-tie decided the other way in float64 moves a gradient */
    for (int i = 0; f && i < m->nlayers; i++) {
        const nnl_layer *L = &m->layers[i];
        size_t cnt = (size_t)n * nnl_shape_size(L->out);
        if (L->kind == NNL_L_MAXPOOL) CHECK(fwrite(L->save, sizeof(int32_t), cnt, f) == cnt);
        if (L->kind == NNL_L_RELU) {
            /* and every ReLU's: 1 where it passed its input (its output is > 0) */
            int32_t *mask = malloc(cnt * sizeof *mask);
            for (size_t j = 0; j < cnt; j++) mask[j] = m->acts[i + 1][j] > 0.0f;
            CHECK(fwrite(mask, sizeof *mask, cnt, f) == cnt);
            free(mask);
        }
    }
    if (f) CHECK(fclose(f) == 0);
    free(x); free(r); free(z);
    nnl_model_free(m);
}

int main(void) {
    if (access("/usr/bin/python3", X_OK) != 0) return skip_or_fail("/usr/bin/python3 is not installed");
    if (system("/usr/bin/python3 -c 'import torch, numpy' 2>/dev/null") != 0) return skip_or_fail("no python3-torch");
    nnl_set_threads(2);
    const char *dir = nnl_test_tmpdir();
    const char *res = "conv6k3p1,bn,relu,@r,conv6k3p1,bn,@gate,gelu,conv6k3p1b0,add@r,avgpool2,conv8k3p1,bn,relu,gap,flatten,dense";
    write_case(dir, "lenet5_eval", "lenet5", 1, 28, 28, 10, 0, NULL);
    write_case(dir, "lenet5_frozen", "lenet5", 1, 28, 28, 10, 1, "gate");
    write_case(dir, "vgg13_eval", "vgg13", 3, 32, 32, 10, 0, NULL);
    write_case(dir, "vgg13_frozen", "vgg13", 3, 32, 32, 10, 1, "gate");
    write_case(dir, "res_eval", res, 3, 8, 8, 5, 0, NULL);
    write_case(dir, "res_train", res, 3, 8, 8, 5, 1, NULL);
    write_case(dir, "res_frozen", res, 3, 8, 8, 5, 1, "gate");
    write_case(dir, "mlp_chain", "dense16,relu,dense12,relu,dense", 1, 4, 5, 4, 1, NULL);
    write_case(dir, "resnet18_eval", "resnet18", 3, 32, 32, 10, 0, NULL);
    write_case(dir, "resnet18_frozen", "resnet18", 3, 32, 32, 10, 1, "gate");
    write_case(dir, "proj_train", "conv4k3p1,bn,relu,@x,conv6k3s2p1b0,bn,relu,conv6k3p1b0,bn,@m,^x,conv6k1s2b0,bn,add@m,relu,"
               "gap,flatten,dense", 3, 8, 8, 5, 1, NULL);
    if (nnl_test_failures) return nnl_test_finish("test_torch_grad");
    const char *src = getenv("NNL_SOURCE_DIR");
    char script[1024], cmd[4096];
    if (src && *src) snprintf(script, sizeof script, "%s/tests/ref/torch_grad.py", src);
    else {
        snprintf(script, sizeof script, "%s", __FILE__);
        char *slash = strrchr(script, '/');
        snprintf(slash ? slash + 1 : script, sizeof script - (size_t)(slash ? slash + 1 - script : 0), "ref/torch_grad.py");
    }
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' '%s' lenet5_eval lenet5_frozen vgg13_eval vgg13_frozen res_eval "
             "res_train res_frozen mlp_chain resnet18_eval resnet18_frozen proj_train", script, dir);
    int rc = system(cmd);
    CHECK_MSG(rc == 0, "PyTorch disagrees (see above), status %d", rc);
    return nnl_test_finish("test_torch_grad");
}
