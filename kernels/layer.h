/* kernels/layer.h: the CPU twin of the layer pexec runs: an executor of the op lists of
 * sim/model/layer_ops.h in fp32, every GEMM through cblas_sgemm (row-major), the memory-bound
 * kernels as plain loops (GELU by its tanh approximation). The lists are the cost model's, so
 * measured times map onto it: F = linear + attention, B = linear + 2 attention, W = linear.
 * Single-threaded callers: the BLAS thread count is the caller's business (pexec runs one
 * worker per device). Also the column-major form of a GEMM op that cuBLAS receives
 * (layer_cuda.h runs it; plain C so the mapping is tested without a GPU). */
#ifndef PIPESIM_LAYER_H
#define PIPESIM_LAYER_H

#include <stdint.h>

#include "sim/model/layer_ops.h"

#ifdef __cplusplus
extern "C" { // layer_cuda.cu maps GEMMs with layer_op_gemm_call
#endif

/* Weights and their gradients (row-major; x W multiplies from the right). */
typedef struct {
    LayerShape sh;
    float *w_qkv, *w_o, *w_1, *w_2; // owned: (h, 3h), (h, h), (h, f), (f, h)
    float *g_qkv, *g_o, *g_1, *g_2; // owned: the same shapes; W accumulates into them
} Layer;

/* What one micro-batch keeps between its passes: buffers LB_X .. LB_DQKV of layer_ops.h
 * (buf[b - LB_FIRST_ACT], layer_buf_elems floats each). F fills x .. gelu, B the gradients
 * W needs (d_y, d_u, d_x1, d_qkv). */
typedef struct {
    float *buf[LB_FIRST_SCRATCH - LB_FIRST_ACT]; // owned
} LayerActs;

/* A device's scratch for one pass at a time: LB_SCORE .. LB_DCTX (buf[b - LB_FIRST_SCRATCH]). */
typedef struct {
    float *buf[LB_FIRST_WEIGHT - LB_FIRST_SCRATCH]; // owned
} LayerScratch;

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

/* Allocate (zeroed) and release one micro-batch's buffers, T(11h + 3f) + b a s^2 floats, and
 * one device's scratch, 3 b a s^2 + T(f + h) floats. Return 0, or -1 when out of memory
 * (then safe to free). */
int layer_acts_init(LayerActs *a, const LayerShape *sh);
void layer_acts_free(LayerActs *a);
int layer_scratch_init(LayerScratch *s, const LayerShape *sh);
void layer_scratch_free(LayerScratch *s);

/* Runs pass (OP_F, OP_B or OP_W; OP_BW is B then W) of layer_ops' list:
 *   F: out = x1 + GELU(x1 W_1) W_2 with x1 = in + Attn(in W_qkv) W_o, keeping in acts what
 *      the backward needs; in and out are (T, h);
 *   B: from the output gradient in (T, h), the input gradient out (T, h), keeping in acts
 *      what W needs;
 *   W: adds this micro-batch's weight gradients to l->g_* (in and out unused, may be NULL).
 * out may not alias in. */
void layer_pass(Layer *l, OpKind pass, LayerActs *a, LayerScratch *s, const float *in,
                float *out);

/* A GEMM op as a column-major BLAS (cuBLAS) call: row-major C = op(A) op(B) is column-major
 * C^T = op(B)^T op(A)^T, so the call multiplies first the row-major B, then A, with m = N,
 * n = M. Repeat r of the op uses first + r * repeat stride for each operand. */
typedef struct {
    int transa, transb;          // 1: transpose the first / second operand
    int64_t m, n, k;             // column-major C (m, n) = op(first) (m, k) op(second) (k, n)
    LayerBuf first, second, c;
    int64_t first_off, second_off, c_off;  // elements
    int64_t ld_first, ld_second, ldc;
    int64_t s_first, s_second, sc;         // batch strides, elements
    int64_t r_first, r_second, rc;         // repeat strides, elements
} LayerGemmCall;

void layer_op_gemm_call(const LayerOp *o, LayerGemmCall *g);

#ifdef __cplusplus
}
#endif

#endif
