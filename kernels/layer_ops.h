/* kernels/layer_ops.h: the synthetic layer (layer.h) as a list of GPU ops per pass: every GEMM
 * with its row-major shape, batch and operands, and every memory-bound kernel (copy, causal
 * softmax, GELU and their gradients) with its element count. The CUDA layer
 * (layer_cuda.h) executes exactly these lists, so their FLOP counts are the ones that run; the
 * GEMMs are those of the CPU twin and sim/cost.h. Pure C: no CUDA needed to build or test it. */
#ifndef PIPESIM_LAYER_OPS_H
#define PIPESIM_LAYER_OPS_H

#include <stdint.h>

#include "kernels/layer.h"
#include "sim/program/program.h"

#ifdef __cplusplus
extern "C" { // layer_cuda.cu runs these lists
#endif

/* The buffers an op reads and writes. IN/OUT are the pass's input and output (x and y for F,
 * d_y and d_x for B); the rest are the micro-batch's (LayerActs' names), the device's scratch
 * (SCORE .. DCTX) and the layer's weights and gradients. */
typedef enum {
    LB_IN, LB_OUT,
    LB_X, LB_QKV, LB_PROB, LB_CTX, LB_X1, LB_U, LB_GELU, LB_DY, LB_DU, LB_DX1, LB_DQKV,
    LB_SCORE, LB_DPROB, LB_DSCORE, LB_DGELU, LB_DCTX,
    LB_WQKV, LB_WO, LB_W1, LB_W2, LB_GQKV, LB_GO, LB_G1, LB_G2,
    LB_COUNT
} LayerBuf;

#define LB_FIRST_ACT LB_X        // first of a micro-batch's buffers
#define LB_FIRST_SCRATCH LB_SCORE // first of the device's scratch
#define LB_FIRST_WEIGHT LB_WQKV  // first of the layer's weights

typedef enum { LK_GEMM, LK_COPY, LK_SOFTMAX, LK_SOFTMAX_BW, LK_GELU, LK_GELU_BW } LayerKernel;

/* One op. GEMM: C (M, N) = alpha op(A) op(B) + beta C, row-major, op = transpose when ta/tb,
 * `batch` strided matrices per launch (heads; strides sa, sb, sc in elements) and `repeat`
 * launches (samples; strides ra, rb, rc), A/B/C at element offsets a_off/b_off/c_off of their
 * buffers. Elementwise: c = f(a[, b]) over n elements (softmax: rows of `cols`). */
typedef struct {
    const char *name;     // "qkv", "score", "softmax", ...
    uint8_t kernel;       // LayerKernel
    uint8_t ta, tb;
    LayerBuf a, b, c;     // b unused by COPY, SOFTMAX, GELU
    int64_t a_off, b_off, c_off;
    int64_t M, N, K, lda, ldb, ldc;
    int64_t batch, sa, sb, sc;
    int64_t repeat, ra, rb, rc;
    float alpha, beta;
    int64_t n;            // elementwise: elements written; softmax: rows
    int64_t cols;         // softmax: row length (s); rows index i mod s is the query position
    double flops;         // GEMM: 2 M N K batch repeat; elementwise: 0 (the cost model's FLOPs)
    double bytes;         // least memory traffic: operands read once, C written (and read
                          //   when beta != 0), at each buffer's element size
} LayerOp;

#define LAYER_OPS_MAX 16

/* Bytes of one element of buffer b on the GPU: 4 for SCORE, DPROB and the weight gradients
 * (fp32), 2 for the rest (bf16). */
int layer_buf_elem_bytes(LayerBuf b);

/* Elements of buffer b for shape sh (IN/OUT: T h). */
int64_t layer_buf_elems(const LayerShape *sh, LayerBuf b);

/* layer_ops fills ops (room for LAYER_OPS_MAX) with pass's list (OP_F, OP_B or OP_W; OP_BW is
 * B then W, call twice) and returns how many; -1 for another kind. */
int layer_ops(const LayerShape *sh, OpKind pass, LayerOp *ops);

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

/* Sums over a pass's list: FLOPs (equals cost_layer_flops' F, B or W) and bytes. */
double layer_ops_flops(const LayerShape *sh, OpKind pass);
double layer_ops_bytes(const LayerShape *sh, OpKind pass);

#ifdef __cplusplus
}
#endif

#endif
