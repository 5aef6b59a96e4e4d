/* kernels/layer.h: the synthetic transformer layer pexec runs, CPU twin (fp32, OpenBLAS). A
 * GPT block without layer norms and dropout: causal multi-head attention and a GELU MLP, each
 * with a residual. Its GEMMs are exactly the ones sim/cost.h counts, so measured times map
 * onto the cost model: forward = linear + attention, input gradient (B) = linear +
 * 2 attention, weight gradient (W) = linear, with linear = 8Th^2 + 4Thf and attention = 4Tsh
 * FLOPs for T = b*s tokens. Single-threaded callers: the BLAS thread count is the caller's
 * business (pexec runs one worker per device). */
#ifndef PIPESIM_LAYER_H
#define PIPESIM_LAYER_H

#include <stdint.h>

typedef struct {
    int32_t samples; // b, micro-batch size
    int32_t seq;     // s, tokens per sample (attention stays inside a sample)
    int32_t hidden;  // h
    int32_t heads;   // a, divides h
    int32_t ffn;     // f
} LayerShape;

static inline int64_t layer_tokens(const LayerShape *sh) {
    return (int64_t)sh->samples * sh->seq;
}

/* Weights and their gradients (row-major; x W multiplies from the right). */
typedef struct {
    LayerShape sh;
    float *w_qkv, *w_o, *w_1, *w_2; // owned: (h, 3h), (h, h), (h, f), (f, h)
    float *g_qkv, *g_o, *g_1, *g_2; // owned: the same shapes; W accumulates into them
} Layer;

/* What one micro-batch keeps between its passes. F fills the first group, B the second
 * (what W needs: the inputs of the four weight GEMMs are in the first group, the gradients of
 * their outputs in the second). T = b*s. */
typedef struct {
    float *x;     // (T, h)    layer input
    float *qkv;   // (T, 3h)   x W_qkv
    float *prob;  // (b, a, s, s) causal softmax of the attention scores
    float *ctx;   // (T, h)    attention output, heads side by side
    float *x1;    // (T, h)    x + ctx W_o
    float *u;     // (T, f)    x1 W_1, before GELU
    float *gelu;  // (T, f)    GELU(u)
    float *d_y;   // (T, h)    gradient of the layer output (for W_2)
    float *d_u;   // (T, f)    gradient before GELU (for W_1)
    float *d_x1;  // (T, h)    gradient of x1 (for W_o)
    float *d_qkv; // (T, 3h)   gradient of qkv (for W_qkv)
    float *tmp;   // (T, f + h) + (s, s) scratch
} LayerActs;

/* Threads the BLAS library may use inside one call (pexec runs one worker per device, so 1). */
void layer_set_blas_threads(int n);
/* The BLAS library's build as it describes itself (OpenBLAS's openblas_get_config(), e.g.
 * "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64"); a static string. */
const char *layer_blas_config(void);

/* layer_init allocates and fills the weights with a deterministic pseudo-random scale
 * 1/sqrt(fan-in) from seed, gradients zero. Returns 0, or -1 when out of memory (the layer is
 * then safe to free). layer_free releases and zeroes. */
int layer_init(Layer *l, const LayerShape *sh, uint64_t seed);
void layer_free(Layer *l);

/* layer_acts_init allocates one micro-batch's buffers (about T(13h + 4f) + b*a*s^2 floats).
 * Returns 0, or -1 when out of memory. */
int layer_acts_init(LayerActs *a, const LayerShape *sh);
void layer_acts_free(LayerActs *a);

/* F: y = x1 + GELU(x1 W_1) W_2 with x1 = x + Attn(x W_qkv) W_o. Copies x (T, h) into acts
 * and writes y (T, h); y may not alias x. */
void layer_forward(const Layer *l, LayerActs *acts, const float *x, float *y);

/* B: from the output gradient d_y (T, h), the input gradient d_x (T, h), keeping what W
 * needs in acts. d_x may not alias d_y. */
void layer_backward_input(const Layer *l, LayerActs *acts, const float *d_y, float *d_x);

/* W: adds this micro-batch's weight gradients to l->g_*. */
void layer_backward_weight(Layer *l, const LayerActs *acts);

#endif
