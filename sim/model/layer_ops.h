/* sim/model/layer_ops.h: what a transformer layer is made of: the one description of a layer,
 * per pass (F, B, W), as a list of ops: every GEMM with its row-major shape, batch and
 * operands, every memory-bound kernel (layer norm, softmax, GELU, dropout, residual adds and
 * their gradients) with its element count, and every tensor-parallel all-reduce, each with
 * its FLOPs and bytes. The executors run exactly these lists (the CPU twin kernels/layer.h in
 * fp32 on OpenBLAS, the GPU layer kernels/layer_cuda.h in bf16 on cuBLAS) and the cost model
 * (cost.h) prices them, so prediction and measurement cannot drift apart.
 *
 * The layer is GPT's pre-norm block as Megatron-LM runs it without sequence parallelism:
 *   F:  xn1 = LN1(x); qkv = xn1 Wqkv; P = softmax_causal(q k^T / sqrt(d)); Pd = dropout(P);
 *       ctx = Pd v; a = ctx Wo; [all-reduce a]; x1 = x + dropout(a);
 *       xn2 = LN2(x1); u = xn2 W1; g = GELU(u); o = g W2; [all-reduce o]; y = x1 + dropout(o)
 *   B:  the input gradient, keeping what W needs;  W: the weight gradients (GEMMs and the
 *       layer norms' gamma and beta).
 * With t-way tensor parallelism (Megatron: Wqkv and W1 split by columns, Wo and W2 by rows)
 * one rank runs heads/t heads and ffn/t MLP columns and all-reduces a and o in F and the
 * input gradients of the two column-parallel GEMMs in B; layer norms and dropouts run on the
 * whole hidden width on every rank. No biases (they fuse into the kernels around them). Pure
 * C, no I/O. */
#ifndef PIPESIM_LAYER_OPS_H
#define PIPESIM_LAYER_OPS_H

#include <stdint.h>

#include "sim/program/program.h"

#ifdef __cplusplus
extern "C" { // layer_cuda.cu runs these lists
#endif

/* One layer's shape on one micro-batch, as one tensor-parallel rank runs it. */
typedef struct {
    int32_t samples;  // b, micro-batch size
    int32_t seq;      // s, tokens per sample (attention stays inside a sample)
    int32_t hidden;   // h
    int32_t heads;    // a, the whole layer's (divides h)
    int32_t ffn;      // f, the whole layer's MLP width
    int32_t tensor;   // t, tensor-parallel ranks (divides a and f); 0 or 1: none
    int32_t rank;     // this rank, 0 .. t-1 (only the attention dropout's mask depends on it)
    float dropout;    // probability of the attention and the two hidden dropouts; 0: none
    int32_t elem;     // bytes of an activation or weight element (2: bf16/fp16, 4: fp32);
                      //   0: 2. Scores, gradients of weights and statistics are fp32.
    int32_t vocab;    // V, for the LM head's and the embedding's lists (layer_head_ops)
} LayerShape;

static inline int64_t layer_tokens(const LayerShape *sh) {
    return (int64_t)sh->samples * sh->seq;
}
static inline int32_t layer_tp(const LayerShape *sh) { return sh->tensor > 1 ? sh->tensor : 1; }

/* The buffers an op reads and writes. IN/OUT are the pass's input and output (x and y for F,
 * dy and dx for B). Then what a micro-batch keeps from F (X .. GELU) and from B for W (DO ..
 * DXN1), a device's scratch for one pass (SCORE .. DX1), and the layer's weights and their
 * gradients. LN1/LN2 hold gamma then beta (2h); ST1/ST2 a layer norm's mean and 1/std per
 * token (2T, interleaved). Element counts: layer_buf_elems. */
typedef enum {
    LB_IN, LB_OUT,
    LB_X, LB_XN1, LB_ST1, LB_QKV, LB_PROB, LB_PROBD, LB_CTX, LB_X1, LB_XN2, LB_ST2, LB_U,
    LB_GELU,
    LB_DO, LB_DU, LB_DXN2, LB_DA, LB_DQKV, LB_DXN1,
    LB_SCORE, LB_DPROBD, LB_DPROB, LB_DSCORE, LB_DGELU, LB_DCTX, LB_A, LB_O, LB_DX1,
    LB_WQKV, LB_WO, LB_W1, LB_W2, LB_LN1, LB_LN2,
    LB_GQKV, LB_GO, LB_G1, LB_G2, LB_GLN1, LB_GLN2,
    LB_LOGITS, LB_WVOCAB, LB_GVOCAB, // the LM head's and embedding's (layer_head_ops)
    LB_COUNT
} LayerBuf;

#define LB_FIRST_ACT LB_X         // first of a micro-batch's buffers
#define LB_FIRST_SCRATCH LB_SCORE // first of the device's scratch
#define LB_FIRST_WEIGHT LB_WQKV   // first of the layer's weights
#define LB_FIRST_GRAD LB_GQKV     // first of their gradients (same order as the weights)
#define LAYER_WEIGHTS (LB_FIRST_GRAD - LB_FIRST_WEIGHT)
#define LB_LAYER_END LB_LOGITS    // the layer's own buffers end here; the executors hold
                                  //   LB_IN .. LB_LAYER_END - 1

/* The kernels. n counts rows for SOFTMAX*, LAYERNORM* (cols wide each), elements otherwise.
 *   GEMM          c = alpha op(a) op(b) + beta c (below)
 *   COPY          c = a
 *   SOFTMAX       c = causal softmax of a's rows (row r is query position r mod cols)
 *   SOFTMAX_BW    c = a (b - rowsum(a b)) alpha, a the softmax output, b its gradient
 *   GELU          c = GELU(a) (tanh approximation);  GELU_BW  c = a GELU'(b)
 *   DROPOUT       c = a alpha when layer_dropout_hash(seed, salt, j) >= keep_min, else 0,
 *                 j = (i / mask_blk) mask_stride + mask_off + i % mask_blk:
 *                 the pass's seed (its layer and micro-batch), the op's salt and i alone
 *                 decide, so the same op in B (the gradient) drops the same elements
 *   DROPOUT_ADD   c = b + DROPOUT(a) (a residual)
 *   LAYERNORM     c = (a - mean) rstd gamma + beta per row, the stats into d, w = gamma|beta
 *   LAYERNORM_BW  c = beta c + rstd (g - mean(g) - xh mean(g xh)), g = a gamma, xh the
 *                 normalised b (the layer norm's input) from the stats d
 *   LAYERNORM_DW  c[0..cols) += sum over rows of a xh (d gamma), c[cols..2 cols) += sum of a
 *   ALLREDUCE     c = the sum of c over the t tensor-parallel ranks (a collective) */
typedef enum {
    LK_GEMM, LK_COPY, LK_SOFTMAX, LK_SOFTMAX_BW, LK_GELU, LK_GELU_BW, LK_DROPOUT,
    LK_DROPOUT_ADD, LK_LAYERNORM, LK_LAYERNORM_BW, LK_LAYERNORM_DW, LK_ALLREDUCE,
    LK_COUNT
} LayerKernel;

/* How the cost model groups kernels (a stage's time breakdown). */
typedef enum { LC_GEMM, LC_ATTENTION, LC_MEMORY, LC_COMM, LC_COUNT } LayerClass;

#define LAYER_LN_EPS 1e-5f

/* One op. GEMM: C (M, N) = alpha op(A) op(B) + beta C, row-major, op = transpose when ta/tb,
 * `batch` strided matrices per launch (heads; strides sa, sb, sc in elements) and `repeat`
 * launches (samples; strides ra, rb, rc), A/B/C at element offsets a_off/b_off/c_off of their
 * buffers. Elementwise and row kernels as LayerKernel says. */
typedef struct {
    const char *name;     // "qkv", "score", "softmax", ...
    uint8_t kernel;       // LayerKernel
    uint8_t cls;          // LayerClass
    uint8_t ta, tb;
    LayerBuf a, b, c;     // b unused by COPY, SOFTMAX, GELU, DROPOUT, LAYERNORM, ALLREDUCE
    LayerBuf d, w;        // layer norms: statistics and gamma|beta
    int64_t a_off, b_off, c_off;
    int64_t M, N, K, lda, ldb, ldc;
    int64_t batch, sa, sb, sc;
    int64_t repeat, ra, rb, rc;
    float alpha, beta;    // dropouts: alpha = 1 / (1 - p), the kept elements' scale
    float p;              // dropout probability
    uint32_t keep_min;    // dropouts: keep element i iff layer_dropout_hash(...) >= keep_min
                          //   (p 2^32, rounded down)
    uint32_t salt;        // which dropout (0 attention, 1 and 2 hidden)
    int64_t mask_blk, mask_stride, mask_off; // dropouts: element i draws the mask of the whole
                          //   layer's element (i / blk) stride + off + i % blk (attention on
                          //   a tensor-parallel rank: its heads among all; else i itself)
    int64_t n;            // rows (softmax, layer norm) or elements written
    int64_t cols;         // row length (softmax: s; layer norm: h)
    double flops;         // GEMM: 2 M N K batch repeat; others 0 (the model FLOPs of MFU)
    double bytes;         // least memory traffic: operands read once, results written (and
                          //   read when accumulated), at each buffer's element size; an
                          //   all-reduce: the bytes of its buffer (the collective's size)
} LayerOp;

#define LAYER_OPS_MAX 32

/* Bytes of one element of buffer b for shape sh on the GPU: 4 for scores, their gradients,
 * layer-norm statistics and the weights' gradients (fp32), sh->elem for the rest. */
int layer_buf_elem_bytes(const LayerShape *sh, LayerBuf b);

/* Elements of buffer b for shape sh, as one tensor-parallel rank holds it (IN/OUT: T h). */
int64_t layer_buf_elems(const LayerShape *sh, LayerBuf b);

/* layer_ops fills ops (room for LAYER_OPS_MAX) with pass's list (OP_F, OP_B or OP_W; OP_BW is
 * B then W, call twice) and returns how many; -1 for another kind. */
int layer_ops(const LayerShape *sh, OpKind pass, LayerOp *ops);

/* The ops around the layers that the cost model prices (the executors do not run them yet):
 * the LM head (last stage: the final layer norm, the logits GEMM against the vocabulary's
 * V/t columns, the vocabulary-parallel cross entropy with its three small all-reduces; in B
 * their gradients and the input gradient's all-reduce; in W the head's weight gradient) when
 * head, or the embedding (first stage: the lookup, its all-reduce with t > 1; in W the
 * gradient's scatter-add). Fills ops (room for LAYER_OPS_MAX), returns how many. */
int layer_head_ops(const LayerShape *sh, OpKind pass, LayerOp *ops);
int layer_embed_ops(const LayerShape *sh, OpKind pass, LayerOp *ops);

/* Sums over a pass's list: FLOPs (GEMMs only: F = (linear + attention) / t, B = (linear +
 * 2 attention) / t, W = linear / t, with linear = 8Th^2 + 4Thf and attention = 4Tsh for T =
 * b s tokens; exact in doubles while below 2^53) and bytes. */
double layer_ops_flops(const LayerShape *sh, OpKind pass);
double layer_ops_bytes(const LayerShape *sh, OpKind pass);

/* The dropout mask's hash, which every executor computes the same way: with
 *   z = seed + 0x9E3779B97F4A7C15 (i + 1) + 0xD1B54A32D192ED03 salt   (mod 2^64),
 *   z = (z ^ z >> 30) 0xBF58476D1CE4E5B9; z = (z ^ z >> 27) 0x94D049BB133111EB; z ^= z >> 31,
 * it is the top 32 bits of z (splitmix64's finaliser). */
static inline uint32_t layer_dropout_hash(uint64_t seed, uint32_t salt, int64_t i) {
    uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (uint64_t)(i + 1) + 0xD1B54A32D192ED03ULL * salt;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return (uint32_t)((z ^ (z >> 31)) >> 32);
}

/* The seed of a layer's dropouts on one micro-batch: from its weights' seed and the
 * micro-batch's number in the run. */
static inline uint64_t layer_pass_seed(uint64_t layer_seed, int64_t micro_batch) {
    return layer_seed * 0x9E3779B97F4A7C15ULL + (uint64_t)micro_batch;
}

#ifdef __cplusplus
}
#endif

#endif
