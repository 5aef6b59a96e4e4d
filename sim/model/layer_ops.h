/* sim/model/layer_ops.h: what a transformer layer is made of: the one description of a layer,
 * per pass (F, B, W), as a list of ops: every GEMM with its row-major shape, batch and
 * operands, every memory-bound kernel (layer norm, softmax, GELU, dropout, residual adds and
 * their gradients) with its element count, and every tensor-parallel all-reduce, each with
 * its FLOPs and bytes. The executors run exactly these lists (the CPU twin kernels/layer.h in
 * fp32 on OpenBLAS, the GPU layer kernels/layer_cuda.h in bf16 on cuBLAS) and the cost model
 * (cost.h) prices them, so prediction and measurement cannot drift apart.
 *
 * The layer is the pre-norm block as Megatron-LM runs it (GPT's by default):
 *   F:  xn1 = N1(x); qkv = xn1 Wqkv; P = softmax_causal(q k^T / sqrt(d)); Pd = dropout(P);
 *       ctx = Pd v; a = ctx Wo; [all-reduce a]; x1 = x + dropout(a);
 *       xn2 = N2(x1); u = xn2 W1; g = act(u); o = g W2; [all-reduce o]; y = x1 + dropout(o)
 *   B:  the input gradient, keeping what W needs;  W: the weight gradients (GEMMs and the
 *       norms' gamma and beta).
 * The shape's options: grouped-query attention (kv_heads < heads: each key/value head serves
 * heads / kv_heads query heads, so K and V are narrower and shared), any head dimension,
 * SwiGLU (u holds gate | up, g = SiLU(gate) up), RMSNorm (no mean, no beta), flash attention
 * (one fused kernel each way that keeps no s x s scores, only a log-sum-exp per query and
 * head, and recomputes the probabilities in B).
 * With t-way tensor parallelism (Megatron: Wqkv and W1 split by columns, Wo and W2 by rows)
 * one rank runs heads/t query heads, kv_heads/t key/value heads and ffn/t MLP columns and
 * all-reduces a and o in F and the input gradients of the two column-parallel GEMMs in B;
 * norms and dropouts run on the whole hidden width on every rank. With sequence parallelism
 * (Korthikanti et al. 2022) the layer's input and output, the norms, dropouts and residuals
 * hold this rank's T/t tokens (rows rank T/t .. of the micro-batch's T = b s): each
 * all-reduce becomes a reduce-scatter, an all-gather brings the full sequence before each
 * column-parallel GEMM (of the norms' outputs in F and again in W, of the output gradients
 * in B), as Megatron-LM does. With c-way context parallelism (the Llama 3 report's
 * all-gather form) a rank holds s/c tokens of each sample, two zigzag chunks
 * (layer_position): its keys and values are all-gathered over the c ranks before attention
 * (KV) and their gradients reduce-scattered back after it (DKV), and every causal mask is by
 * position in the whole sample. No biases (they fuse into the kernels around them). Pure
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
    int32_t kv_heads; // key/value heads (GQA), divide heads and are divided by t; 0: heads
    int32_t head_dim; // 0: hidden / heads
    uint8_t swiglu;   // MLP: SiLU(gate) x up, W1 = gate | up (2 ffn/t columns on a rank)
    uint8_t rms;      // RMSNorm: y = x rstd gamma (no mean, no beta)
    uint8_t flash;    // fused attention (LK_FLASH, LK_FLASH_BW); needs dropout = 0
    uint8_t seqpar;   // sequence parallelism (t > 1, t divides b s)
    int32_t context;  // c, context parallelism: this rank's s/c tokens of each sample attend to
                      //   all s keys and values, all-gathered over the c ranks (the CPU twin
                      //   runs it; the GPU layer does not); 0 or 1: none
    int32_t crank;    // this context rank, 0 .. c-1: which two of each sample's 2c chunks it
                      //   holds (layer_position)
    // Mixture of experts (moe = 1: this layer's MLP is the MoE block, layer_ops.c's moe_*):
    // a router GEMM (h x E, fp32 logits) and its top-k; the shared experts as one MLP of
    // shared x expert_ffn columns in W1/W2 (every token); the routed tokens permuted into
    // expert order (dispatch), all-to-all to the e expert ranks when expert > 1, the local
    // E/e experts as grouped GEMMs (one launch, E/e matrices of T k e / E tokens each, the
    // balanced share), back by all-to-all and un-permuted with the gate weights (combine).
    // Executors do not run it (pexec refuses MoE shapes); the cost model prices it.
    uint8_t moe;
    int32_t experts;     // E, routed experts of the layer
    int32_t topk;        // k, experts per token
    int32_t shared;      // shared experts
    int32_t expert_ffn;  // one expert's MLP width
    int32_t expert;      // e, expert-parallel ranks (divides E); 0 or 1: none
    float expert_work;   // the busiest expert rank's routed tokens / the balanced T k (the
                         //   imbalance or capacity padding, >= 1; 0: 1): scales the expert
                         //   GEMMs' executed work and the all-to-all's bytes
} LayerShape;

/* Context parallelism's zigzag split (the Llama 3 report): each sample's s tokens are 2c
 * chunks of s/(2c), context rank r holds chunks r and 2c-1-r, in that order, so causal
 * attention's work is the same on every rank. The position in its sample of rank r's token q
 * (0 .. s/c - 1 of each sample); q itself when c <= 1. */
static inline int64_t layer_zigzag(int64_t s, int64_t c, int64_t r, int64_t q) {
    if (c <= 1) return q;
    int64_t chunk = s / (2 * c);
    return q < chunk ? r * chunk + q : (2 * c - 1 - r) * chunk + q - chunk;
}
/* The position of this rank's token q in its sample: causal masks (the softmax's and flash
 * attention's) and the dropouts' masks follow it. */
static inline int64_t layer_position(const LayerShape *sh, int64_t q) {
    return layer_zigzag(sh->seq, sh->context, sh->crank, q);
}

/* Tokens of one micro-batch on this rank: b s, or b s / c with context parallelism. */
static inline int64_t layer_tokens(const LayerShape *sh) {
    return (int64_t)sh->samples * sh->seq / (sh->context > 1 ? sh->context : 1);
}
static inline int32_t layer_tp(const LayerShape *sh) { return sh->tensor > 1 ? sh->tensor : 1; }
/* Tokens of this rank's residual stream: T, or T/t with sequence parallelism. */
static inline int64_t layer_rows(const LayerShape *sh) {
    return sh->seqpar && layer_tp(sh) > 1 ? layer_tokens(sh) / layer_tp(sh) : layer_tokens(sh);
}

/* The buffers an op reads and writes. IN/OUT are the pass's input and output (x and y for F,
 * dy and dx for B). Then what a micro-batch keeps from F (X .. LSE) and from B for W (DO ..
 * DXN1), a device's scratch for one pass (SCORE .. FULL), and the layer's weights and their
 * gradients. LN1/LN2 hold gamma then beta (2h; RMSNorm: gamma, h); ST1/ST2 a norm's mean and
 * 1/std per token (2 per row, interleaved; RMSNorm: 1/rms, 1 per row); LSE flash attention's
 * log-sum-exp per (sample, head, query). FULL is sequence parallelism's full-sequence
 * scratch: an all-gathered input or a partial sum before its reduce-scatter. KV and DKV are
 * context parallelism's: every rank's keys and values of the whole sequence (b s x 2 kv
 * width: each row K then V, each sample's s rows in position order; kept for B) and their
 * gradients before the reduce-scatter, laid out alike. Element counts: layer_buf_elems. */
typedef enum {
    LB_IN, LB_OUT,
    LB_X, LB_XN1, LB_ST1, LB_QKV, LB_PROB, LB_PROBD, LB_CTX, LB_X1, LB_XN2, LB_ST2, LB_U,
    LB_GELU, LB_LSE, LB_KV,
    LB_DO, LB_DU, LB_DXN2, LB_DA, LB_DQKV, LB_DXN1,
    LB_SCORE, LB_DPROBD, LB_DPROB, LB_DSCORE, LB_DGELU, LB_DCTX, LB_A, LB_O, LB_DX1, LB_FULL,
    LB_DKV,
    LB_WQKV, LB_WO, LB_W1, LB_W2, LB_LN1, LB_LN2,
    LB_GQKV, LB_GO, LB_G1, LB_G2, LB_GLN1, LB_GLN2,
    LB_LOGITS, LB_WVOCAB, LB_GVOCAB, // the LM head's and embedding's (layer_head_ops)
    // the MoE block's (moe = 1; 0 elements otherwise): router logits (fp32, T x E) and their
    // gradient, the dispatched tokens (T k x h), the experts' up output (T k x 2f_e with
    // SwiGLU), activation (T k x f_e) and down output (T k x h), their gradients, the router's
    // and the local experts' weights and weight gradients
    LB_ROUTE, LB_DROUTE, LB_DISP, LB_DDISP, LB_EU, LB_DEU, LB_EG, LB_DEG, LB_EO, LB_DEO,
    LB_WR, LB_WE1, LB_WE2, LB_GWR, LB_GE1, LB_GE2,
    LB_COUNT
} LayerBuf;

#define LB_FIRST_ACT LB_X         // first of a micro-batch's buffers
#define LB_FIRST_SCRATCH LB_SCORE // first of the device's scratch
#define LB_FIRST_WEIGHT LB_WQKV   // first of the layer's weights
#define LB_FIRST_GRAD LB_GQKV     // first of their gradients (same order as the weights)
#define LAYER_WEIGHTS (LB_FIRST_GRAD - LB_FIRST_WEIGHT)
#define LB_LAYER_END LB_LOGITS    // the layer's own buffers end here; the executors hold
                                  //   LB_IN .. LB_LAYER_END - 1

/* The kernels. n counts rows for SOFTMAX*, *NORM* (cols wide each), elements otherwise.
 *   GEMM          c = alpha op(a) op(b) + beta c (below)
 *   COPY          c = a
 *   SOFTMAX       c = causal softmax of a's rows: row r is query q = r mod M (M = 0: cols) of
 *                 its sample and head, at position layer_position(q), and keys (columns)
 *                 past that position are masked out
 *   SOFTMAX_BW    c = a (b - rowsum(a b)) alpha, a the softmax output, b its gradient
 *   GELU          c = GELU(a) (tanh approximation);  GELU_BW  c = a GELU'(b)
 *   SWIGLU        n rows of cols: c[r, j] = SiLU(a[r, j]) a[r, cols + j] (a: gate | up)
 *   SWIGLU_BW     c[r, j] = a[r, j] up SiLU'(gate), c[r, cols + j] = a[r, j] SiLU(gate), with
 *                 gate | up = b's row r (a: the output's gradient, n x cols)
 *   DROPOUT       c = a alpha when layer_dropout_hash(seed, salt, j) >= keep_min, else 0,
 *                 j = (i / mask_blk) mask_stride + mask_off + i % mask_blk, and with
 *                 context parallelism (mask_row > 0) j's row of mask_row elements moved to
 *                 its token's position (layer_position) in the whole sequence:
 *                 the pass's seed (its layer and micro-batch), the op's salt and i alone
 *                 decide, so the same op in B (the gradient) drops the same elements, and
 *                 every split drops what the unsplit layer drops
 *   DROPOUT_ADD   c = b + DROPOUT(a) (a residual)
 *   LAYERNORM     c = (a - mean) rstd gamma + beta per row, the stats into d, w = gamma|beta
 *   LAYERNORM_BW  c = beta c + rstd (g - mean(g) - xh mean(g xh)), g = a gamma, xh the
 *                 normalised b (the layer norm's input) from the stats d
 *   LAYERNORM_DW  c[0..cols) += sum over rows of a xh (d gamma), c[cols..2 cols) += sum of a
 *   RMSNORM       c = a rstd gamma per row, rstd = 1 / sqrt(mean(a^2) + eps) into d, w = gamma
 *   RMSNORM_BW    c = beta c + rstd (g - xh mean(g xh)), g = a gamma, xh = b rstd
 *   RMSNORM_DW    c[0..cols) += sum over rows of a xh
 *   FLASH         causal attention of `batch` query heads on each of `repeat` samples in one
 *                 kernel: head i's queries at column i K of a (M a sample, ra apart, rows lda
 *                 wide; query q at position layer_position(q)), its key and value head
 *                 i / group at columns kv_off + (i / group) K and kv_off + N + (i / group) K
 *                 of kv (b = kv: qkv itself, or context parallelism's gathered KV; cols = s
 *                 keys a sample in position order, kv_rs apart, rows kv_ld wide); c (rows ldc
 *                 wide, rc apart) gets head i's context at column i K, d its log-sum-exp per
 *                 query (repeat x batch x M), alpha the scale 1 / sqrt(K)
 *   FLASH_BW      its gradient: from a (qkv), kv, w (the context), b (its gradient, ldb wide,
 *                 rb apart) and d, c = dq (laid out as a, overwritten) and dkv = the keys' and
 *                 values' gradients (laid out as kv, overwritten; dkv = c without context
 *                 parallelism), the probabilities recomputed
 *   ALLREDUCE     c = the sum of c over the t tensor-parallel ranks (a collective)
 *   ALLGATHER     c (t n elements) = every rank's a (n elements) in rank order. Over the
 *                 context ranks (over = 1): every rank's keys and values, the N = 2 kv width
 *                 columns from column a_off of a's rows (lda wide, n / N rows), into c's rows
 *                 (ldc = N wide) at their tokens' positions, each sample's s rows in position
 *                 order (KV's layout)
 *   REDUCE_SCATTER c (n elements) = this rank's n of the sum of a (t n) over the ranks. Over the
 *                 context ranks: the sum over the ranks of a (laid out as KV, lda = N wide) at
 *                 this rank's tokens' positions, into the N columns from column c_off of c's
 *                 n / N rows (ldc wide)
 *   ROUTE         the router's softmax and top-k over each of n rows of cols = E logits (B:
 *                 their gradient), reading the logits, writing k (index, weight) per row
 *   PERMUTE       n elements (the T k routed copies) moved between token order (n / k
 *                 elements: a token read or written once, its copies summed with the gate
 *                 weights) and expert order (dispatch, combine, their gradients)
 *   ALLTOALL      the n elements of c exchanged with the e expert-parallel ranks (each gets
 *                 n / e; bytes: the buffer sent, priced by cost.h's cost_alltoall_ns) */
typedef enum {
    LK_GEMM, LK_COPY, LK_SOFTMAX, LK_SOFTMAX_BW, LK_GELU, LK_GELU_BW, LK_DROPOUT,
    LK_DROPOUT_ADD, LK_LAYERNORM, LK_LAYERNORM_BW, LK_LAYERNORM_DW, LK_ALLREDUCE,
    LK_SWIGLU, LK_SWIGLU_BW, LK_RMSNORM, LK_RMSNORM_BW, LK_RMSNORM_DW, LK_FLASH, LK_FLASH_BW,
    LK_ALLGATHER, LK_REDUCE_SCATTER,
    LK_ROUTE, LK_PERMUTE, LK_ALLTOALL, // the MoE block's (priced only; no executor runs them)
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
    int64_t group;        // GEMM, FLASH: batch entry i reads matrix i / group of each operand
                          //   flagged in grouped (GQA's shared keys and values); 0: 1
    uint8_t grouped;      // 1 a, 2 b, 4 c; a grouped c accumulates (the group's first entry
                          //   with beta, the others add)
    uint8_t over;         // collectives: 0 the t tensor ranks, 1 the c context ranks
    LayerBuf kv, dkv;     // FLASH, FLASH_BW: the keys' and values' buffer, FLASH_BW also their
                          //   gradients' (QKV and DQKV, or context parallelism's KV and DKV)
    int64_t kv_off, kv_ld, kv_rs; // their layout: the first key column, the row length, the
                          //   elements from one sample's keys to the next
    float alpha, beta;    // dropouts: alpha = 1 / (1 - p), the kept elements' scale
    float p;              // dropout probability
    uint32_t keep_min;    // dropouts: keep element i iff layer_dropout_hash(...) >= keep_min
                          //   (p 2^32, rounded down)
    uint32_t salt;        // which dropout (0 attention, 1 and 2 hidden)
    int64_t mask_blk, mask_stride, mask_off; // dropouts: element i draws the mask of the whole
                          //   layer's element (i / blk) stride + off + i % blk (attention on
                          //   a tensor-parallel rank: its heads among all; else i itself)
    int64_t mask_row;     // dropouts with context parallelism: elements a token's row (h, or s
                          //   for the attention scores), whose rows move to their positions;
                          //   0: none
    int64_t n;            // rows (softmax, layer norm) or elements written
    int64_t cols;         // row length (softmax: s; layer norm: h)
    double flops;         // GEMM: 2 M N K batch repeat; FLASH: its two GEMMs', FLASH_BW
                          //   its four (as the unfused kernels); others 0 (the model FLOPs
                          //   of MFU)
    double work;          // the FLOPs the kernel executes / flops: 1, but flash attention
                          //   skips the causal mask's upper blocks (F 1/2) and recomputes
                          //   the scores in B (5/4 x 1/2); the cost model times work x flops
    double bytes;         // least memory traffic: operands read once, results written (and
                          //   read when accumulated), at each buffer's element size; an
                          //   all-reduce: the bytes of its buffer (the collective's size)
} LayerOp;

#define LAYER_OPS_MAX 48

/* Bytes of one element of buffer b for shape sh on the GPU: 4 for scores, their gradients,
 * norm statistics, log-sum-exps and the weights' gradients (fp32), sh->elem for the rest. */
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

/* Whether sh is GPT's layer (multi-head attention of width hidden, GELU, layer norm, standard
 * attention, no sequence or context parallelism): all the CUDA backend runs. */
int layer_shape_is_gpt(const LayerShape *sh);

/* Whether a kernel is a tensor-parallel collective (all-reduce, all-gather, reduce-scatter). */
int layer_kernel_is_collective(int kernel);

/* Sums over a pass's list: FLOPs (GEMMs and flash attention: F = (linear + attention) / t,
 * B = (linear + 2 attention) / t, W = linear / t, with linear = 2T(2hq + 2hk) + 2Thfm for T =
 * b s tokens, q and k the query and key/value widths, m = 2 (GELU) or 3 (SwiGLU), and
 * attention = 4Tsq: GPT's 8Th^2 + 4Thf and 4Tsh; exact in doubles while below 2^53) and
 * bytes. */
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
