/* Architecture specs: presets and the comma-separated layer language.
 *
 *   dense<N> | dense [b0]       fully connected (N units; bare = number of classes; b0: no bias)
 *   conv<OC>k<K>[s<S>][p<P>][b0][i][w]
 *                               2-D convolution (stride 1, no padding by default); b0: no bias,
 *                               i: identity initialisation, t: PyTorch's default initialisation
 *                               (bound 1/sqrt(fan_in), not He's), w: a whitening layer (its
 *                               weights come from the data's patch covariance and are not trained)
 *   maxpool<K>[s<S>]            max pooling (stride = K by default); avgpool likewise
 *   gap                         global average pooling
 *   bn | bnb                    batch normalisation; bnb: its scale fixed at 1 (only the bias learns)
 *   relu | gelu | flatten       activations (GELU as PyTorch's default, with erf), reshape
 *   scale<F>                    multiplies by the constant F (e.g. scale0.111111)
 *   dropout<P>                  dropout with probability P (e.g. dropout0.5)
 *   @name                       names the current activation
 *   add@name                    adds the named activation (residual connection)
 *   ^name                       continues from the named activation (a second path from it:
 *                               a projection shortcut is "@x, ..., @main, ^x, conv..k1, bn, add@main")
 */
#include "model.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *nnl_arch_expand(const char *arch, nnl_shape in, int nclass, char *buf, size_t size) {
    (void)nclass;
    if (strcmp(arch, "mlp") == 0) {
        /* M-LOCK's network: five dense layers, 900 hidden units, ReLU. */
        snprintf(buf, size, "dense900,relu,dense900,relu,dense900,relu,dense900,relu,dense");
        return buf;
    }
    if (strcmp(arch, "cnn") == 0) {
        snprintf(buf, size, "conv32k3p1,bn,relu,maxpool2,conv64k3p1,bn,relu,maxpool2,"
                            "conv128k3p1,bn,relu,maxpool2,flatten,dense256,relu,dense");
        return buf;
    }
    if (strcmp(arch, "resnet9") == 0) {
        /* The DAWNBench CIFAR-10 ResNet-9 (Myrtle.ai): prep, three stages, two residual
         * blocks, global max pooling (4x4 at 32x32 inputs; average pooling otherwise). */
        snprintf(buf, size,
                 "conv64k3p1,bn,relu,"
                 "conv128k3p1,bn,relu,maxpool2,@r1,conv128k3p1,bn,relu,conv128k3p1,bn,relu,add@r1,"
                 "conv256k3p1,bn,relu,maxpool2,"
                 "conv512k3p1,bn,relu,maxpool2,@r3,conv512k3p1,bn,relu,conv512k3p1,bn,relu,add@r3,"
                 "%s,flatten,dense", in.h == 32 && in.w == 32 ? "maxpool4" : "gap");
        return buf;
    }
    if (strcmp(arch, "airbench") == 0) {
        /* airbench94 (Keller Jordan): a 2x2 whitening convolution (24 filters from the data, not
         * trained) and GELU, three groups of conv-pool-bn-gelu-conv-bn-gelu (64, 256, 256 channels;
         * convolutions without bias, identity-initialised; batch-norms with their scale fixed),
         * global max pooling, a linear layer without bias, scaled by 1/9. @gate (a gate lock's, 256x8x8
         * for 32x32 images) after the second group: a name changes no tensor. */
        snprintf(buf, size,
                 "conv%dk2w,gelu,"
                 "conv64k3p1b0it,maxpool2,bnb,gelu,conv64k3p1b0it,bnb,gelu,"
                 "conv256k3p1b0it,maxpool2,bnb,gelu,conv256k3p1b0it,bnb,gelu,@gate,"
                 "conv256k3p1b0it,maxpool2,bnb,gelu,conv256k3p1b0it,bnb,gelu,"
                 "%s,flatten,denseb0t,scale0.111111111",
                 2 * in.c * 4, in.h == 32 && in.w == 32 ? "maxpool3" : "gap");
        return buf;
    }
    if (strcmp(arch, "lenet5") == 0) {
        /* LeNet-5 as AuthNet's code has it (ReLU, average pooling, no third 5x5 block before
         * the 120 filters), for 32x32 inputs; a 28x28 image (MNIST) gets a padding of 2 on the
         * first convolution, the same as padding the normalised image to 32x32 with zeros.
         * @gate: the gate lock's gate, 16x5x5, after the second convolution block. */
        int pad = in.h == 28 && in.w == 28 ? 2 : 0;
        snprintf(buf, size, "conv6k5p%d,relu,avgpool2,conv16k5,relu,avgpool2,@gate,conv120k5,relu,flatten,"
                            "dense84,relu,dense", pad);
        return buf;
    }
    if (strcmp(arch, "resnet18") == 0) {
        /* The common CIFAR ResNet-18 (kuangliu/pytorch-cifar's layout): a 3x3 stem, four stages of
         * two basic blocks (64, 128, 256, 512 channels; stride 2 from the second stage on, with a
         * 1x1 convolution + batch-norm shortcut where the shape changes), average pooling, linear.
         * @gate: the output of the third stage (256x8x8 for 32x32 images). */
        static const int ch[4] = {64, 128, 256, 512};
        size_t pos = 0;
        int cin = 64, b = 0;
        pos += (size_t)snprintf(buf + pos, size - pos, "conv64k3p1b0,bn,relu");
        for (int st = 0; st < 4; st++)
            for (int k = 0; k < 2 && pos < size; k++, b++) {
                int s = st > 0 && k == 0 ? 2 : 1, c = ch[st];
                pos += (size_t)snprintf(buf + pos, size - pos, ",@b%di,conv%dk3s%dp1b0,bn,relu,conv%dk3p1b0,bn", b, c, s, c);
                if (pos < size && (s != 1 || cin != c))
                    pos += (size_t)snprintf(buf + pos, size - pos, ",@b%dm,^b%di,conv%dk1s%db0,bn,add@b%dm", b, b, c, s, b);
                else if (pos < size)
                    pos += (size_t)snprintf(buf + pos, size - pos, ",add@b%di", b);
                if (pos < size) pos += (size_t)snprintf(buf + pos, size - pos, ",relu%s", st == 2 && k == 1 ? ",@gate" : "");
                cin = c;
            }
        if (pos < size) snprintf(buf + pos, size - pos, ",%s,flatten,dense", in.h == 32 && in.w == 32 ? "avgpool4" : "gap");
        return buf;
    }
    if (strcmp(arch, "vgg13") == 0) {
        /* AuthNet's VGG-13 (models/VGG.py): 3x3 convolutions with bias, batch-norm, ReLU; the
         * head's 64,64,M,128,128,M,256,256,M ends at @gate (256x4x4 for 32x32 images), the tail's
         * 512,512,M,512,512,M, then fc1 (100 units) and fc2 with nothing between them. */
        snprintf(buf, size,
                 "conv64k3p1,bn,relu,conv64k3p1,bn,relu,maxpool2,conv128k3p1,bn,relu,conv128k3p1,bn,relu,maxpool2,"
                 "conv256k3p1,bn,relu,conv256k3p1,bn,relu,maxpool2,@gate,"
                 "conv512k3p1,bn,relu,conv512k3p1,bn,relu,maxpool2,conv512k3p1,bn,relu,conv512k3p1,bn,relu,maxpool2,"
                 "flatten,dense100,dense");
        return buf;
    }
    if (strcmp(arch, "vgg") == 0) {
        /* VGG-11 with batch-norm, sized for 32x32 images (the gate lock's network). */
        snprintf(buf, size,
                 "conv64k3p1,bn,relu,maxpool2,conv128k3p1,bn,relu,maxpool2,"
                 "conv256k3p1,bn,relu,conv256k3p1,bn,relu,maxpool2,"
                 "conv512k3p1,bn,relu,conv512k3p1,bn,relu,maxpool2,"
                 "conv512k3p1,bn,relu,conv512k3p1,bn,relu,%s,flatten,dense512,relu,dense",
                 in.h >= 32 && in.w >= 32 ? "maxpool2,gap" : "gap");
        return buf;
    }
    return arch;
}

/* Parses a non-negative integer at *s; advances *s. Returns -1 if none. */
static long parse_int(const char **s) {
    if (!isdigit((unsigned char)**s)) return -1;
    errno = 0;
    char *end;
    long v = strtol(*s, &end, 10);
    if (errno || v > 1000000) return -2;
    *s = end;
    return v;
}

typedef struct tap { char name[32]; int act; } tap;

static int bad(const char *tok, const char *why) {
    return nnl_fail(NNL_ERR_ARG, "architecture: bad layer '%s': %s", tok, why);
}

/* Parses one token into L (kind and hyper-parameters). */
static int parse_token(const char *tok, int nclass, nnl_layer *L, const char **tapname) {
    const char *s = tok;
    *tapname = NULL;
    memset(L, 0, sizeof *L);
    if (strncmp(s, "dense", 5) == 0) {
        s += 5;
        L->kind = NNL_L_DENSE;
        L->units = nclass;
        if (isdigit((unsigned char)*s)) {
            long u = parse_int(&s);
            if (u < 1) return bad(tok, "expected dense<units>, e.g. dense256");
            L->units = (int)u;
        }
        for (; *s; s++) {
            if (s[0] == 'b' && s[1] == '0') { L->nobias = 1; s++; }
            else if (*s == 't') L->torch_init = 1;
            else return bad(tok, "expected dense<units>[b0][t], e.g. dense256, denseb0 (no bias), densebt (PyTorch's init)");
        }
        return NNL_OK;
    }
    if (strncmp(s, "conv", 4) == 0) {
        s += 4;
        L->kind = NNL_L_CONV2D;
        long oc = parse_int(&s);
        if (oc < 1 || *s != 'k') return bad(tok, "expected conv<channels>k<kernel>[s<stride>][p<pad>], e.g. conv32k3p1");
        s++;
        long k = parse_int(&s);
        if (k < 1) return bad(tok, "missing kernel size after 'k'");
        L->units = (int)oc; L->k = (int)k; L->stride = 1; L->pad = 0;
        while (*s) {
            char c = *s++;
            if (c == 'i') { L->ident = 1; continue; }
            if (c == 't') { L->torch_init = 1; continue; }
            if (c == 'w') { L->whiten = L->fixed_w = 1; continue; }
            long v = parse_int(&s);
            if (v < 0) return bad(tok, "expected a number after 's', 'p' or 'b'");
            if (c == 's') L->stride = (int)v;
            else if (c == 'p') L->pad = (int)v;
            else if (c == 'b' && v <= 1) L->nobias = v == 0;
            else return bad(tok, "unknown conv option (use s<stride>, p<pad>, b0 (no bias), i (identity init), t (PyTorch's "
                                 "init), w (whitening))");
        }
        return NNL_OK;
    }
    if (strncmp(s, "maxpool", 7) == 0 || strncmp(s, "avgpool", 7) == 0) {
        L->kind = s[0] == 'm' ? NNL_L_MAXPOOL : NNL_L_AVGPOOL;
        s += 7;
        long k = parse_int(&s);
        if (k < 1) return bad(tok, "expected maxpool<k>[s<stride>], e.g. maxpool2");
        L->k = (int)k; L->stride = (int)k;
        if (*s == 's') {
            s++;
            long v = parse_int(&s);
            if (v < 1) return bad(tok, "expected a stride after 's'");
            L->stride = (int)v;
        }
        if (*s) return bad(tok, "trailing characters");
        return NNL_OK;
    }
    if (strncmp(s, "dropout", 7) == 0) {
        s += 7;
        char *end;
        double p = strtod(s, &end);
        if (end == s || *end || !(p >= 0.0 && p < 1.0)) return bad(tok, "expected dropout<p> with 0 <= p < 1, e.g. dropout0.5");
        L->kind = NNL_L_DROPOUT; L->p = (float)p;
        return NNL_OK;
    }
    if (strcmp(s, "gap") == 0) { L->kind = NNL_L_GAP; return NNL_OK; }
    if (strcmp(s, "bn") == 0) { L->kind = NNL_L_BATCHNORM; return NNL_OK; }
    if (strcmp(s, "bnb") == 0) { L->kind = NNL_L_BATCHNORM; L->fixed_w = 1; return NNL_OK; }
    if (strcmp(s, "relu") == 0) { L->kind = NNL_L_RELU; return NNL_OK; }
    if (strcmp(s, "gelu") == 0) { L->kind = NNL_L_GELU; return NNL_OK; }
    if (strncmp(s, "scale", 5) == 0) {
        s += 5;
        char *end;
        double f = strtod(s, &end);
        if (end == s || *end || !(f > 0.0 && f < 1e6)) return bad(tok, "expected scale<factor> with a positive factor, e.g. scale0.111111");
        L->kind = NNL_L_SCALE; L->p = (float)f;
        return NNL_OK;
    }
    if (strcmp(s, "flatten") == 0) { L->kind = NNL_L_FLATTEN; return NNL_OK; }
    if (strncmp(s, "add@", 4) == 0 && s[4]) { L->kind = NNL_L_ADD; *tapname = s + 4; return NNL_OK; }
    if (s[0] == '@' && s[1]) { L->kind = 0; *tapname = s + 1; return NNL_OK; }
    if (s[0] == '^' && s[1]) { L->kind = NNL_L_RECALL; *tapname = s + 1; return NNL_OK; }
    return bad(tok, "unknown layer (see `nnlock help arch`)");
}

int nnl_model_build(nnl_model *m, const char *spec) {
    size_t len = strlen(spec);
    if (len == 0) return nnl_fail(NNL_ERR_ARG, "architecture: empty spec");
    if (len > 4096) return nnl_fail(NNL_ERR_ARG, "architecture: spec longer than 4096 characters");
    char *copy = strdup(spec);
    nnl_layer *layers = calloc(NNL_MAX_LAYERS, sizeof *layers);
    tap taps[NNL_MAX_TAPS];
    int ntaps = 0, n = 0, st = NNL_OK;
    if (!copy || !layers) { st = nnl_fail(NNL_ERR_NOMEM, "out of memory"); goto done; }
    nnl_shape cur = m->input;
    size_t poff = 0, soff = 0;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*tok)) tok++;
        for (char *e = tok + strlen(tok); e > tok && isspace((unsigned char)e[-1]);) *--e = 0;
        nnl_layer L;
        const char *tname;
        if ((st = parse_token(tok, m->nclass, &L, &tname))) goto done;
        if (L.kind == 0) {
            if (ntaps == NNL_MAX_TAPS) { st = bad(tok, "more than 32 named activations"); goto done; }
            if (strlen(tname) >= sizeof taps[0].name) { st = bad(tok, "name too long"); goto done; }
            for (int t = 0; t < ntaps; t++)
                if (!strcmp(taps[t].name, tname)) { st = bad(tok, "name used twice"); goto done; }
            snprintf(taps[ntaps].name, sizeof taps[ntaps].name, "%s", tname);
            taps[ntaps++].act = n;
            continue;
        }
        if (n == NNL_MAX_LAYERS) { st = nnl_fail(NNL_ERR_ARG, "architecture: more than %d layers", NNL_MAX_LAYERS); goto done; }
        L.in = cur;
        L.index = n;
        if (L.kind == NNL_L_RECALL) {
            int found = -1;
            for (int t = 0; t < ntaps; t++)
                if (!strcmp(taps[t].name, tname)) found = taps[t].act;
            if (found < 0) { st = bad(tok, "no activation of that name before it (name one with @name)"); goto done; }
            L.src = found;
            L.out = found == 0 ? m->input : layers[found - 1].out;
        }
        if (L.kind == NNL_L_ADD) {
            int found = -1;
            for (int t = 0; t < ntaps; t++)
                if (!strcmp(taps[t].name, tname)) found = taps[t].act;
            if (found < 0) { st = bad(tok, "no activation of that name before it (name one with @name)"); goto done; }
            nnl_shape s = found == 0 ? m->input : layers[found - 1].out;
            if (s.c != cur.c || s.h != cur.h || s.w != cur.w) {
                st = nnl_fail(NNL_ERR_SHAPE, "architecture: '%s' adds a %dx%dx%d activation to a %dx%dx%d one",
                              tok, s.c, s.h, s.w, cur.c, cur.h, cur.w);
                goto done;
            }
            L.src = found;
        }
        const nnl_layer_ops *ops = nnl_layer_ops_of(L.kind);
        if ((st = ops->setup(&L))) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", nnl_errmsg());
            st = nnl_fail(st, "architecture: layer %d '%s' on a %dx%dx%d input: %s", n + 1, tok,
                          cur.c, cur.h, cur.w, msg);
            goto done;
        }
        L.w_off = poff; poff += L.w_n;
        L.b_off = poff; poff += L.b_n;
        L.s_off = soff; soff += L.s_n;
        if (poff > ((size_t)1 << 31)) { st = nnl_fail(NNL_ERR_ARG, "architecture: more than 2^31 parameters"); goto done; }
        cur = L.out;
        layers[n++] = L;
    }
    if (n == 0) { st = nnl_fail(NNL_ERR_ARG, "architecture: no layers in '%s'", spec); goto done; }
    if (nnl_shape_size(cur) != (size_t)m->nclass) {
        st = nnl_fail(NNL_ERR_SHAPE, "architecture: the last layer gives %dx%dx%d outputs, but there are %d classes "
                      "(end the spec with a bare 'dense')", cur.c, cur.h, cur.w, m->nclass);
        goto done;
    }
    m->layers = layers; layers = NULL;
    m->nlayers = n;
    m->ntaps = ntaps;
    for (int t = 0; t < ntaps; t++) {
        memcpy(m->taps[t].name, taps[t].name, sizeof m->taps[t].name);  /* both 32 bytes, NUL-terminated */
        m->taps[t].act = taps[t].act;
    }
    m->nparams = poff;
    m->nstate = soff;
done:
    free(copy);
    free(layers);
    return st;
}
