/* Model lifetime, the forward/backward passes and inference. */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int nnl_model_create(nnl_model **out, const char *arch, int c, int h, int w, int nclass) {
    return nnl_model_create_within(out, arch, c, h, w, nclass, SIZE_MAX);
}

int nnl_model_create_within(nnl_model **out, const char *arch, int c, int h, int w, int nclass, size_t max_floats) {
    *out = NULL;
    if (!arch) return nnl_fail(NNL_ERR_ARG, "architecture: none given");
    if (c < 1 || c > NNL_MAX_CHANNELS || h < 1 || w < 1 || h > 4096 || w > 4096)
        return nnl_fail(NNL_ERR_SHAPE, "input shape %dx%dx%d is out of range (1-%d channels, 1-4096 pixels)",
                        c, h, w, NNL_MAX_CHANNELS);
    if (nclass < 2 || nclass > NNL_MAX_CLASSES)
        return nnl_fail(NNL_ERR_ARG, "%d classes is out of range (2..%d)", nclass, NNL_MAX_CLASSES);
    nnl_model *m = calloc(1, sizeof *m);
    if (!m) return nnl_fail(NNL_ERR_NOMEM, "out of memory");
    m->input = (nnl_shape){c, h, w};
    m->nclass = nclass;
    for (int i = 0; i < NNL_MAX_CHANNELS; i++) { m->mean[i] = 0.0f; m->std[i] = 1.0f; }
    char buf[4096];
    const char *spec = nnl_arch_expand(arch, m->input, nclass, buf, sizeof buf);
    int st;
    m->arch = strdup(arch);
    m->spec = strdup(spec);
    if (!m->arch || !m->spec) { st = nnl_fail(NNL_ERR_NOMEM, "out of memory"); goto fail; }
    if ((st = nnl_model_build(m, spec))) goto fail;
    if (m->nparams + m->nstate > max_floats) {
        st = nnl_fail(NNL_ERR_SHAPE, "the architecture has %zu parameters and statistics but only %zu floats are stored",
                      m->nparams + m->nstate, max_floats);
        goto fail;
    }
    m->params = nnl_alloc(m->nparams * sizeof(float));
    m->state = nnl_alloc(m->nstate * sizeof(float));
    if (!m->params || !m->state) { st = nnl_fail(NNL_ERR_NOMEM, "out of memory for %zu parameters", m->nparams); goto fail; }
    *out = m;
    return NNL_OK;
fail:
    nnl_model_free(m);
    return st;
}

int nnl_model_replace_head(nnl_model **pm, int nclass, uint64_t seed) {
    nnl_model *m = *pm, *n;
    int st = nnl_model_create(&n, m->arch, m->input.c, m->input.h, m->input.w, nclass);
    if (st) return st;
    if (n->nlayers != m->nlayers) {
        nnl_model_free(n);
        return nnl_fail(NNL_ERR_SHAPE, "architecture '%s' has other layers for %d classes", m->arch, nclass);
    }
    nnl_model_init(n, seed);
    /* Every layer whose tensors keep their shapes keeps its weights; the rest (the layers that
     * depend on the class count: the last) start afresh from seed. */
    for (int i = 0; i < m->nlayers; i++) {
        const nnl_layer *a = &m->layers[i], *b = &n->layers[i];
        if (a->w_n != b->w_n || a->b_n != b->b_n || a->s_n != b->s_n) continue;
        memcpy(n->params + b->w_off, m->params + a->w_off, a->w_n * sizeof(float));
        memcpy(n->params + b->b_off, m->params + a->b_off, a->b_n * sizeof(float));
        memcpy(n->state + b->s_off, m->state + a->s_off, a->s_n * sizeof(float));
    }
    memcpy(n->mean, m->mean, sizeof m->mean);
    memcpy(n->std, m->std, sizeof m->std);
    for (int i = 0; i < m->nmeta; i++)
        if ((st = nnl_model_meta_set(n, m->meta_keys[i], m->meta_vals[i]))) { nnl_model_free(n); return st; }
    nnl_model_free(m);
    *pm = n;
    return NNL_OK;
}

static void free_runtime(nnl_model *m) {
    if (m->acts)
        for (int i = 0; i <= m->nlayers; i++) nnl_free(m->acts[i]);
    if (m->dacts)
        for (int i = 0; i <= m->nlayers; i++) nnl_free(m->dacts[i]);
    if (m->skipgrad)
        for (int i = 0; i <= m->nlayers; i++) nnl_free(m->skipgrad[i]);
    free(m->acts); free(m->dacts); free(m->skipgrad);
    nnl_free(m->save); nnl_free(m->work); nnl_free(m->grads); nnl_free(m->wpack);
    m->acts = m->dacts = m->skipgrad = NULL;
    m->save = m->work = m->grads = m->wpack = NULL;
    m->wpack_ok = 0;
    m->max_batch = 0;
}

void nnl_model_free(nnl_model *m) {
    if (!m) return;
    free_runtime(m);
    free(m->layers);
    nnl_free(m->params); nnl_free(m->state);
    if (m->class_names)
        for (int i = 0; i < m->nclass; i++) free(m->class_names[i]);
    free(m->class_names);
    for (int i = 0; i < m->nmeta; i++) { free(m->meta_keys[i]); free(m->meta_vals[i]); }
    free(m->arch); free(m->spec);
    free(m);
}

int nnl_model_init(nnl_model *m, uint64_t seed) {
    for (int i = 0; i < m->nlayers; i++) {
        nnl_layer *L = &m->layers[i];
        /* One stream per layer: adding a layer does not reshuffle the others' weights. */
        nnl_rng r = nnl_rng_derive(seed, 0x1000 + (uint64_t)i);
        nnl_layer_ops_of(L->kind)->init(L, m->params, m->state, &r);
    }
    return NNL_OK;
}

/* An add or a recall reads an earlier activation (L->src) and sends it gradient. */
static int reads_skip(const nnl_layer *L) { return L->kind == NNL_L_ADD || L->kind == NNL_L_RECALL; }

static int tapped(const nnl_model *m, int act) {
    for (int t = 0; t < m->ntaps; t++)
        if (m->taps[t].act == act) return 1;
    return 0;
}

/* Which optimisations this model runs with. A ReLU right after a batch-norm is folded into it:
 * each pass over a large activation costs as much as the arithmetic on it, and this saves one
 * forward and one backward pass per pair. Not when something reads the batch-norm's own output,
 * which the fold leaves unwritten: an add layer, or a name given to it (@name). The dense-chain
 * fast path leaves the input of each ReLU unwritten too, fuses the optimizer step for every
 * layer and does not know about frozen layers: a name on such an input, or a frozen layer,
 * turns it off. */
static void choose_paths(nnl_model *m) {
    int nl = m->nlayers;
    for (int i = 0; i < nl; i++) m->layers[i].relu = m->layers[i].folded = 0;
    for (int i = 0; i + 1 < nl; i++) {
        nnl_layer *L = &m->layers[i], *R = &m->layers[i + 1];
        if (L->kind != NNL_L_BATCHNORM || R->kind != NNL_L_RELU) continue;
        int read = tapped(m, i + 1);
        for (int j = 0; j < nl; j++) read |= reads_skip(&m->layers[j]) && m->layers[j].src == i + 1;
        if (!read) L->relu = R->folded = 1;
    }
    m->fold = 1;
    m->chain = nnl_dense_chain_ok(m) && m->frozen == 0;
    for (int i = 0; m->chain && i + 1 < nl; i++)
        if (m->layers[i + 1].kind == NNL_L_RELU && tapped(m, i + 1)) m->chain = 0;
}

int nnl_model_prepare(nnl_model *m, int batch) {
    if (batch < 1) return nnl_fail(NNL_ERR_ARG, "batch size %d must be at least 1", batch);
    /* Workspaces hold per-thread slices, so a new thread count needs new ones. */
    if (batch <= m->max_batch && m->threads == nnl_threads()) return NNL_OK;
    if (batch < m->max_batch) batch = m->max_batch;
    free_runtime(m);
    int nl = m->nlayers;
    m->acts = calloc((size_t)nl + 1, sizeof(float *));
    m->dacts = calloc((size_t)nl + 1, sizeof(float *));
    m->skipgrad = calloc((size_t)nl + 1, sizeof(float *));
    m->grads = nnl_alloc(m->nparams * sizeof(float));
    if (!m->acts || !m->dacts || !m->skipgrad || !m->grads) goto nomem;
    size_t save_total = 0, work = 0;
    for (int i = 0; i < nl; i++) {
        const nnl_layer_ops *ops = nnl_layer_ops_of(m->layers[i].kind);
        save_total += (ops->save_floats(&m->layers[i], batch) + 15) & ~(size_t)15;
        size_t wf = ops->work_floats(&m->layers[i], batch);
        if (wf > work) work = wf;
    }
    if (nnl_dense_chain_ok(m)) {
        size_t cw = nnl_dense_chain_work(m, batch), wp = nnl_dense_chain_wpack(m);
        if (cw > work) work = cw;
        if (wp && !(m->wpack = nnl_alloc(wp * sizeof(float)))) goto nomem;
    }
    m->save = nnl_alloc(save_total * sizeof(float));
    m->work = nnl_alloc(work * sizeof(float));
    m->work_n = work;
    if (!m->save || !m->work) goto nomem;
    size_t off = 0;
    for (int i = 0; i <= nl; i++) {
        nnl_shape s = i == 0 ? m->input : m->layers[i - 1].out;
        size_t n = (size_t)batch * nnl_shape_size(s);
        m->acts[i] = nnl_alloc(n * sizeof(float));
        m->dacts[i] = nnl_alloc(n * sizeof(float));  /* dacts[0]: for input_grad */
        if (!m->acts[i] || !m->dacts[i]) goto nomem;
        if (i < nl) {
            nnl_layer *L = &m->layers[i];
            L->save = m->save + off;
            off += (nnl_layer_ops_of(L->kind)->save_floats(L, batch) + 15) & ~(size_t)15;
        }
    }
    for (int i = 0; i < nl; i++) {
        nnl_layer *L = &m->layers[i];
        if (!reads_skip(L)) continue;
        L->skip = m->acts[L->src];
        if (L->src > 0 && !m->skipgrad[L->src]) {
            m->skipgrad[L->src] = nnl_alloc((size_t)batch * nnl_shape_size(m->layers[L->src - 1].out) * sizeof(float));
            if (!m->skipgrad[L->src]) goto nomem;
        }
        L->dskip = L->src > 0 ? m->skipgrad[L->src] : NULL;
    }
    m->max_batch = batch;
    m->threads = nnl_threads();
    choose_paths(m);
    return NNL_OK;
nomem:
    free_runtime(m);
    return nnl_fail(NNL_ERR_NOMEM, "out of memory for batch size %d", batch);
}

nnl_pass nnl_model_pass(nnl_model *m, int n, int training, uint64_t seed, uint64_t step, float bn_momentum) {
    nnl_pass P = {0};
    P.n = n; P.training = training;
    P.params = m->params; P.grads = m->grads; P.state = m->state;
    P.work = m->work; P.seed = seed; P.step = step;
    P.bn_momentum = bn_momentum; P.bn_eps = 1e-5f;
    return P;
}

const float *nnl_model_forward(nnl_model *m, const float *x, int n, int training, uint64_t seed,
                               uint64_t step, float bn_momentum) {
    if (x != m->acts[0]) memcpy(m->acts[0], x, (size_t)n * nnl_shape_size(m->input) * sizeof(float));
    nnl_pass P = nnl_model_pass(m, n, training, seed, step, bn_momentum);
    m->last_training = training;
    m->last_seed = seed;
    m->last_step = step;
    if (m->chain) {
        nnl_dense_chain_forward(m, n);
        return m->acts[m->nlayers];
    }
    for (int i = 0; i < m->nlayers; i++) nnl_model_layer_forward(m, &P, i);
    return m->acts[m->nlayers];
}

void nnl_model_zero_grad(nnl_model *m) { memset(m->grads, 0, m->nparams * sizeof(float)); }

/* Layer i forward; fold 0 runs a folded batch-norm + ReLU pair as two layers. */
static void layer_forward(nnl_model *m, const nnl_pass *P, int i, int fold) {
    nnl_layer *L = &m->layers[i];
    if (fold && L->folded) return;
    nnl_pass Q = *P;
    Q.relu = fold && L->relu;
    if (i < m->frozen) Q.training = 0;
    nnl_layer_ops_of(L->kind)->forward(L, &Q, m->acts[i], m->acts[i + (Q.relu ? 2 : 1)]);
}

void nnl_model_layer_forward(nnl_model *m, const nnl_pass *P, int i) { layer_forward(m, P, i, m->fold); }

void nnl_model_forward_range(nnl_model *m, const nnl_pass *P, int from, int to) {
    for (int i = from; i < to; i++) {
        /* a pair is fused only when both its layers are in the range */
        int fold = m->fold && !(m->layers[i].relu && i + 1 >= to) && !(m->layers[i].folded && i == from);
        layer_forward(m, P, i, fold);
    }
}

void nnl_model_backward_begin(nnl_model *m, const float *dlogits, int n) {
    for (int i = 1; i <= m->nlayers; i++)
        if (m->skipgrad[i]) memset(m->skipgrad[i], 0, (size_t)n * nnl_shape_size(m->layers[i - 1].out) * sizeof(float));
    memcpy(m->dacts[m->nlayers], dlogits, (size_t)n * m->nclass * sizeof(float));
}

static void layer_backward(nnl_model *m, const nnl_pass *P, int i, int fold) {
    nnl_layer *L = &m->layers[i];
    float *dy = m->dacts[i + 1];
    if (m->skipgrad[i + 1]) {
        size_t cnt = (size_t)P->n * nnl_shape_size(L->out);
        const float *sg = m->skipgrad[i + 1];
        for (size_t j = 0; j < cnt; j++) dy[j] += sg[j];
    }
    if (fold && L->folded) return;
    const nnl_layer_ops *ops = nnl_layer_ops_of(L->kind);
    if (P->grad_assign && !ops->assigns_grads && L->w_n + L->b_n > 0)
        memset(m->grads + L->w_off, 0, (L->w_n + L->b_n) * sizeof(float)); /* w and b are adjacent */
    nnl_pass Q = *P;
    Q.relu = fold && L->relu;
    if (i < m->frozen) Q.training = 0;
    const float *y = m->acts[i + 1];
    if (Q.relu) { y = m->acts[i + 2]; dy = m->dacts[i + 2]; }
    ops->backward(L, &Q, m->acts[i], y, dy, i > 0 || m->input_grad ? m->dacts[i] : NULL);
}

void nnl_model_layer_backward(nnl_model *m, const nnl_pass *P, int i) { layer_backward(m, P, i, m->fold); }

void nnl_model_backward_range(nnl_model *m, const nnl_pass *P, int from, int to) {
    /* An activation's skip gradient starts at zero in the range that holds the highest add
     * layer reading it (the first to add to it going down), and is added to its activation's
     * gradient in whichever range comes down to it: a tail's residual reaching into the head. */
    for (int a = 1; a <= m->nlayers; a++) {
        if (!m->skipgrad[a]) continue;
        int top = -1;
        for (int j = 0; j < m->nlayers; j++)
            if (reads_skip(&m->layers[j]) && m->layers[j].src == a) top = j;
        if (top >= from && top < to)
            memset(m->skipgrad[a], 0, (size_t)P->n * nnl_shape_size(m->layers[a - 1].out) * sizeof(float));
    }
    for (int i = to - 1; i >= from; i--) {
        int fold = m->fold && !(m->layers[i].relu && i + 1 >= to) && !(m->layers[i].folded && i == from);
        layer_backward(m, P, i, fold);
    }
}

int nnl_model_tap_act(const nnl_model *m, const char *name) {
    for (int t = 0; name && t < m->ntaps; t++)
        if (!strcmp(m->taps[t].name, name)) return m->taps[t].act;
    return -1;
}

nnl_shape nnl_model_act_shape(const nnl_model *m, int a) { return a == 0 ? m->input : m->layers[a - 1].out; }

void nnl_model_params_changed(nnl_model *m) { m->wpack_ok = 0; }

const float *nnl_model_act(const nnl_model *m, const char *name, int *c, int *h, int *w) {
    int a = nnl_model_tap_act(m, name);
    if (a < 0 || !m->acts) return NULL;
    nnl_shape s = nnl_model_act_shape(m, a);
    if (c) *c = s.c;
    if (h) *h = s.h;
    if (w) *w = s.w;
    return m->acts[a];
}

int nnl_model_tap_names(const nnl_model *m, char *buf, size_t size) {
    size_t pos = 0;
    if (size) buf[0] = 0;
    for (int t = 0; t < m->ntaps; t++) {
        int k = snprintf(buf + pos, pos < size ? size - pos : 0, "%s%s", t ? ", " : "", m->taps[t].name);
        if (k > 0) pos += (size_t)k;
    }
    return m->ntaps;
}

int nnl_model_find_tap(const nnl_model *m, const char *name, int *act) {
    if ((*act = nnl_model_tap_act(m, name)) >= 0) return NNL_OK;
    char names[512];
    if (nnl_model_tap_names(m, names, sizeof names))
        return nnl_fail(NNL_ERR_ARG, "the model has no activation named '%s' (it names: %s)", name ? name : "", names);
    return nnl_fail(NNL_ERR_ARG, "the model has no activation named '%s' (its architecture names none: "
                    "name one with @NAME in the spec)", name ? name : "");
}

int nnl_model_freeze(nnl_model *m, const char *below) {
    int a = 0, st;
    if (below && *below && (st = nnl_model_find_tap(m, below, &a))) return st;
    m->frozen = a;
    if (m->acts) choose_paths(m);
    return NNL_OK;
}

int nnl_model_frozen_layers(const nnl_model *m) { return m->frozen; }

void nnl_model_set_input_grad(nnl_model *m, int on) { m->input_grad = on != 0; }

const float *nnl_model_input_grad(const nnl_model *m) { return m->input_grad && m->dacts ? m->dacts[0] : NULL; }

static void backward(nnl_model *m, const float *dlogits, int n, int assign) {
    nnl_pass P = nnl_model_pass(m, n, m->last_training, m->last_seed, m->last_step, 0.0f);
    P.grad_assign = assign;
    nnl_model_backward_begin(m, dlogits, n);
    /* Below the frozen layers nothing needs a gradient unless the input does: their weights do
     * not train, so the pass stops there (a gate lock's tail trains at the tail's cost) and
     * their gradients are zero. A layer's parameters all lie before the next layer's. */
    int stop = m->input_grad ? 0 : m->frozen;
    if (stop > 0 && stop < m->nlayers && assign) memset(m->grads, 0, m->layers[stop].w_off * sizeof(float));
    for (int i = m->nlayers - 1; i >= stop; i--) nnl_model_layer_backward(m, &P, i);
}

void nnl_model_backward(nnl_model *m, const float *dlogits, int n) { backward(m, dlogits, n, 0); }

void nnl_model_backward_fresh(nnl_model *m, const float *dlogits, int n) { backward(m, dlogits, n, 1); }

void nnl_model_normalize(const nnl_model *m, const uint8_t *px, int64_t n, float *x) {
    size_t plane = (size_t)m->input.h * m->input.w;
    int c = m->input.c;
    float scale[NNL_MAX_CHANNELS], shift[NNL_MAX_CHANNELS];
    for (int k = 0; k < c; k++) {
        scale[k] = 1.0f / (255.0f * m->std[k]);
        shift[k] = -m->mean[k] / m->std[k];
    }
    #pragma omp parallel for schedule(static) num_threads(nnl_threads()) if (n * (int64_t)plane * c > 100000)
    for (int64_t i = 0; i < n; i++)
        for (int k = 0; k < c; k++) {
            const uint8_t *p = px + ((size_t)i * c + k) * plane;
            float *o = x + ((size_t)i * c + k) * plane;
            for (size_t j = 0; j < plane; j++) o[j] = (float)p[j] * scale[k] + shift[k];
        }
}

void nnl_model_eval_hooks(const nnl_hooks *hooks, uint8_t *px, int64_t n, int c, int h, int w, int64_t first,
                          const int32_t *labels, float *soft) {
    if (!hooks || !hooks->sample) return;
    size_t in = (size_t)c * h * w;
    for (int64_t j = 0; j < n; j++)
        hooks->sample(hooks->user, px + (size_t)j * in, c, h, w, first + j, labels ? labels[j] : 0,
                      nnl_mix64(NNL_EVAL_HOOK_SEED ^ (uint64_t)(first + j)), soft);
}

void nnl_model_input(const nnl_model *m, const uint8_t *px, int64_t n, const nnl_hooks *hooks, int64_t first,
                     const int64_t *idx, float *x) {
    if (!hooks || !hooks->to_float) { nnl_model_normalize(m, px, n, x); return; }
    size_t plane = (size_t)m->input.h * m->input.w, in = plane * (size_t)m->input.c;
    int c = m->input.c;
    #pragma omp parallel for schedule(static) num_threads(nnl_threads()) if (n * (int64_t)in > 100000)
    for (int64_t i = 0; i < n; i++) {
        float *o = x + (size_t)i * in;
        hooks->to_float(hooks->user, px + (size_t)i * in, c, m->input.h, m->input.w, idx ? idx[i] : first + i, o);
        for (int k = 0; k < c; k++) {
            float inv = 1.0f / m->std[k], mu = m->mean[k];
            for (size_t j = 0; j < plane; j++) o[(size_t)k * plane + j] = (o[(size_t)k * plane + j] - mu) * inv;
        }
    }
}

double nnl_model_train_flops(const nnl_model *m) {
    double f = 0.0;
    for (int i = 0; i < m->nlayers; i++) {
        const nnl_layer *L = &m->layers[i];
        double macs = nnl_layer_ops_of(L->kind)->macs(L);
        /* forward + weight gradient, plus the input gradient except for the first layer */
        f += 2.0 * macs * (i == 0 ? 2.0 : 3.0);
    }
    return f;
}

int nnl_model_set_norm(nnl_model *m, const float *mean, const float *std) {
    for (int k = 0; k < m->input.c; k++) {
        if (!isfinite(mean[k]) || !isfinite(std[k]) || std[k] <= 0.0f)
            return nnl_fail(NNL_ERR_ARG, "normalisation of channel %d: mean %g, std %g (std must be > 0)",
                            k, (double)mean[k], (double)std[k]);
    }
    for (int k = 0; k < m->input.c; k++) { m->mean[k] = mean[k]; m->std[k] = std[k]; }
    return NNL_OK;
}

int nnl_model_set_class_names(nnl_model *m, char *const *names, int n) {
    if (n != m->nclass) return nnl_fail(NNL_ERR_ARG, "%d class names for %d classes", n, m->nclass);
    char **c = calloc((size_t)n, sizeof *c);
    if (!c) return nnl_fail(NNL_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++)
        if (!(c[i] = strdup(names[i] ? names[i] : ""))) {
            for (int j = 0; j < i; j++) free(c[j]);
            free(c);
            return nnl_fail(NNL_ERR_NOMEM, "out of memory");
        }
    if (m->class_names)
        for (int i = 0; i < m->nclass; i++) free(m->class_names[i]);
    free(m->class_names);
    m->class_names = c;
    return NNL_OK;
}

const char *nnl_model_class_name(const nnl_model *m, int k) {
    return m->class_names && k >= 0 && k < m->nclass ? m->class_names[k] : NULL;
}
const char *nnl_model_arch(const nnl_model *m) { return m->arch; }
void nnl_model_input_shape(const nnl_model *m, int *c, int *h, int *w) {
    *c = m->input.c; *h = m->input.h; *w = m->input.w;
}
int nnl_model_nclass(const nnl_model *m) { return m->nclass; }
size_t nnl_model_param_count(const nnl_model *m) { return m->nparams; }

void nnl_model_describe(const nnl_model *m, char *buf, size_t size) {
    size_t pos = 0;
    if (size == 0) return;
    buf[0] = 0;
#define APPEND(...) do { if (pos < size) { int k_ = snprintf(buf + pos, size - pos, __VA_ARGS__); \
    if (k_ > 0) pos += (size_t)k_; } } while (0)
    APPEND("  #  layer      output        params\n");
    APPEND("  0  input      %4dx%3dx%-3d\n", m->input.c, m->input.h, m->input.w);
    for (int i = 0; i < m->nlayers; i++) {
        const nnl_layer *L = &m->layers[i];
        char extra[48] = "";
        switch (L->kind) {
        case NNL_L_CONV2D: snprintf(extra, sizeof extra, " k%d s%d p%d", L->k, L->stride, L->pad); break;
        case NNL_L_MAXPOOL: case NNL_L_AVGPOOL: snprintf(extra, sizeof extra, " k%d s%d", L->k, L->stride); break;
        case NNL_L_DROPOUT: snprintf(extra, sizeof extra, " p=%g", (double)L->p); break;
        case NNL_L_ADD: snprintf(extra, sizeof extra, " +act%d", L->src); break;
        case NNL_L_RECALL: snprintf(extra, sizeof extra, " =act%d", L->src); break;
        default: break;
        }
        APPEND("%3d  %-9s  %4dx%3dx%-3d  %9zu%s\n", i + 1, nnl_layer_ops_of(L->kind)->name,
               L->out.c, L->out.h, L->out.w, L->w_n + L->b_n, extra);
    }
#undef APPEND
}

int nnl_model_meta_set(nnl_model *m, const char *key, const char *value) {
    if (!key || !*key || strlen(key) > 256) return nnl_fail(NNL_ERR_ARG, "metadata key must be 1-256 characters");
    if (!value) value = "";
    for (int i = 0; i < m->nmeta; i++)
        if (!strcmp(m->meta_keys[i], key)) {
            char *v = strdup(value);
            if (!v) return nnl_fail(NNL_ERR_NOMEM, "out of memory");
            free(m->meta_vals[i]);
            m->meta_vals[i] = v;
            return NNL_OK;
        }
    if (m->nmeta == NNL_MAX_META) return nnl_fail(NNL_ERR_ARG, "more than %d metadata entries", NNL_MAX_META);
    char *k = strdup(key), *v = strdup(value);
    if (!k || !v) { free(k); free(v); return nnl_fail(NNL_ERR_NOMEM, "out of memory"); }
    m->meta_keys[m->nmeta] = k;
    m->meta_vals[m->nmeta++] = v;
    return NNL_OK;
}

const char *nnl_model_meta_get(const nnl_model *m, const char *key) {
    for (int i = 0; i < m->nmeta; i++)
        if (!strcmp(m->meta_keys[i], key)) return m->meta_vals[i];
    return NULL;
}
void nnl_model_meta_remove_prefix(nnl_model *m, const char *prefix) {
    size_t n = strlen(prefix);
    int j = 0;
    for (int i = 0; i < m->nmeta; i++) {
        if (!strncmp(m->meta_keys[i], prefix, n)) { free(m->meta_keys[i]); free(m->meta_vals[i]); continue; }
        m->meta_keys[j] = m->meta_keys[i];
        m->meta_vals[j++] = m->meta_vals[i];
    }
    m->nmeta = j;
}

int nnl_model_meta_count(const nnl_model *m) { return m->nmeta; }
const char *nnl_model_meta_key(const nnl_model *m, int i) {
    return i >= 0 && i < m->nmeta ? m->meta_keys[i] : NULL;
}

int nnl_model_batch_within(const nnl_model *m, int want) {
    /* A batch holds every activation and its gradient: for resnet9 about 10 MB per image,
     * so an evaluation batch of 500 took 5 GB. Keep a fresh workspace near 512 MB; a
     * model already prepared for a larger batch keeps its own. */
    size_t per = nnl_shape_size(m->input);
    for (int i = 0; i < m->nlayers; i++) per += 2 * nnl_shape_size(m->layers[i].out);
    per *= sizeof(float);
    long cap = (long)((512u << 20) / (per ? per : 1));
    if (cap < 1) cap = 1;
    if (want > cap) want = (int)cap;
    if (m->max_batch > want) want = m->max_batch;
    return want < 1 ? 1 : want;
}

/* Inference reuses the buffers of training when there are any; otherwise it sizes them
 * for at most 256 images, never more than it needs nor than nnl_model_batch_within allows. */
static int prepare_inference(nnl_model *m, int64_t n, int *bs) {
    *bs = nnl_model_batch_within(m, n < 256 ? (int)(n > 0 ? n : 1) : 256);
    return nnl_model_prepare(m, *bs);
}

int nnl_model_logits(nnl_model *m, const float *x, int64_t n, float *logits) {
    int bs, st = prepare_inference(m, n, &bs);
    if (st) return st;
    size_t in = nnl_shape_size(m->input);
    for (int64_t i = 0; i < n; i += bs) {
        int b = (int)(n - i < bs ? n - i : bs);
        const float *z = nnl_model_forward(m, x + (size_t)i * in, b, 0, 0, 0, 0.0f);
        memcpy(logits + (size_t)i * m->nclass, z, (size_t)b * m->nclass * sizeof(float));
    }
    return NNL_OK;
}

int nnl_model_predict(nnl_model *m, const uint8_t *pixels, int64_t n, float *probs, int32_t *pred) {
    return nnl_model_predict_hooked(m, pixels, n, NULL, 0, probs, pred);
}

int nnl_model_predict_hooked(nnl_model *m, const uint8_t *pixels, int64_t n, const nnl_hooks *hooks, int64_t first,
                             float *probs, int32_t *pred) {
    int bs, st = prepare_inference(m, n, &bs);
    if (st) return st;
    size_t in = nnl_shape_size(m->input);
    int k = m->nclass;
    uint8_t *copy = NULL;
    float *soft = NULL;
    if (hooks && hooks->sample) {
        copy = malloc((size_t)bs * in);
        soft = malloc((size_t)k * sizeof *soft);
        if (!copy || !soft) { free(copy); free(soft); return nnl_fail(NNL_ERR_NOMEM, "out of memory"); }
    }
    for (int64_t i = 0; i < n; i += bs) {
        int b = (int)(n - i < bs ? n - i : bs);
        const uint8_t *px = pixels + (size_t)i * in;
        if (copy) {
            /* What nnl_evaluate gives the hook for image first + i + r of a data set. */
            memcpy(copy, px, (size_t)b * in);
            for (int r = 0; r < b; r++) {
                uint64_t index = (uint64_t)(first + i + r);
                hooks->sample(hooks->user, copy + (size_t)r * in, m->input.c, m->input.h, m->input.w, (int64_t)index, 0,
                              nnl_mix64(NNL_EVAL_HOOK_SEED ^ index), soft);
            }
            px = copy;
        }
        nnl_model_input(m, px, b, hooks, first + i, NULL, m->acts[0]);
        const float *z = nnl_model_forward(m, m->acts[0], b, 0, 0, 0, 0.0f);
        for (int r = 0; r < b; r++) {
            const float *zr = z + (size_t)r * k;
            int best = 0;
            for (int j = 1; j < k; j++) if (zr[j] > zr[best]) best = j;
            if (pred) pred[i + r] = best;
            if (probs) {
                float *pr = probs + (size_t)(i + r) * k;
                double s = 0.0;
                for (int j = 0; j < k; j++) s += exp((double)(zr[j] - zr[best]));
                for (int j = 0; j < k; j++) pr[j] = (float)(exp((double)(zr[j] - zr[best])) / s);
            }
        }
    }
    free(copy);
    free(soft);
    return NNL_OK;
}

int nnl_model_tensor_count(const nnl_model *m) {
    int n = 0;
    for (int i = 0; i < m->nlayers; i++) {
        const nnl_layer *L = &m->layers[i];
        n += (L->w_n > 0) + (L->b_n > 0) + (L->s_n > 0 ? 2 : 0);
    }
    return n;
}

/* Tensor names follow PyTorch's state_dict spelling so users recognise them. */
float *nnl_model_tensor(nnl_model *m, int idx, const char **name, size_t *count) {
    static _Thread_local char nbuf[64];
    int n = 0;
    for (int i = 0; i < m->nlayers; i++) {
        nnl_layer *L = &m->layers[i];
        struct { size_t n; float *p; const char *what; } t[4] = {
            {L->w_n, m->params + L->w_off, "weight"},
            {L->b_n, m->params + L->b_off, "bias"},
            {L->s_n / 2, m->state + L->s_off, "running_mean"},
            {L->s_n / 2, m->state + L->s_off + L->s_n / 2, "running_var"},
        };
        for (int j = 0; j < 4; j++) {
            if (t[j].n == 0) continue;
            if (n++ == idx) {
                snprintf(nbuf, sizeof nbuf, "layers.%d.%s", i, t[j].what);
                if (name) *name = nbuf;
                if (count) *count = t[j].n;
                return t[j].p;
            }
        }
    }
    return NULL;
}
