/* sim/model/layer_ops.h: what a transformer layer is made of: the one description of a layer,
 * per pass (F, B, W), as a list of ops: every GEMM with its row-major shape, batch and
 * operands, and every memory-bound kernel (copy, causal softmax, GELU and their gradients)
 * with its element count, FLOPs and bytes. The executors run exactly these lists (the CPU
 * twin kernels/layer.h in fp32 on OpenBLAS, the GPU layer kernels/layer_cuda.h in bf16 on
 * cuBLAS) and the cost model (cost.h) prices them, so prediction and measurement cannot
 * drift apart. The layer is GPT's block without layer norms and dropout: causal multi-head
 * attention and a GELU MLP, each with a residual. Pure C, no I/O. */
#ifndef PIPESIM_LAYER_OPS_H
#define PIPESIM_LAYER_OPS_H

#include <stdint.h>

#include "sim/program/program.h"

#ifdef __cplusplus
extern "C" { // layer_cuda.cu runs these lists
#endif

/* One layer's shape on one micro-batch. */
typedef struct {
    int32_t samples; // b, micro-batch size
    int32_t seq;     // s, tokens per sample (attention stays inside a sample)
    int32_t hidden;  // h
    int32_t heads;   // a, divides h
    int32_t ffn;     // f, MLP width
} LayerShape;

static inline int64_t layer_tokens(const LayerShape *sh) {
    return (int64_t)sh->samples * sh->seq;
}

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

/* Sums over a pass's list: FLOPs (GEMMs only: F = linear + attention, B = linear +
 * 2 attention, W = linear, with linear = 8Th^2 + 4Thf and attention = 4Tsh for T = b s
 * tokens; exact in doubles while below 2^53) and bytes. */
double layer_ops_flops(const LayerShape *sh, OpKind pass);
double layer_ops_bytes(const LayerShape *sh, OpKind pass);

#ifdef __cplusplus
}
#endif

#endif
