/* kernels/layer.h: the CPU twin of the layer pexec runs: an executor of the op lists of
 * sim/model/layer_ops.h in fp32, every GEMM through cblas_sgemm (row-major), the memory-bound
 * kernels as plain loops (GELU by its tanh approximation), the tensor-parallel all-reduces
 * through the caller's collective. The lists are the cost model's, so measured times map
 * onto it. Single-threaded callers: the BLAS thread count is the caller's business (pexec
 * runs one worker per device). Also the column-major form of a GEMM op that cuBLAS receives
 * (layer_cuda.h runs it; plain C so the mapping is tested without a GPU). */
#ifndef PIPESIM_LAYER_H
#define PIPESIM_LAYER_H

#include <stdint.h>

#include "sim/model/layer_ops.h"

#ifdef __cplusplus
extern "C" { // layer_cuda.cu maps GEMMs with layer_op_gemm_call
#endif

/* One tensor-parallel rank's weights and their gradients (row-major; x W multiplies from the
 * right), LAYER_WEIGHTS of each, in LayerBuf order (w[b - LB_FIRST_WEIGHT]): Wqkv (h, (q +
 * 2k)/t for query and key/value widths q and k), Wo (q/t, h), W1 (h, f/t; SwiGLU: gate | up,
 * 2f/t), W2 (f/t, h), and the two norms' gamma|beta (2h; RMSNorm: gamma, h). */
typedef struct {
    LayerShape sh;
    float *w[LAYER_WEIGHTS]; // owned
    float *g[LAYER_WEIGHTS]; // owned: the same shapes; W accumulates into them
} Layer;

/* What one micro-batch keeps between its passes: buffers LB_X .. LB_DXN1 of layer_ops.h
 * (buf[b - LB_FIRST_ACT], layer_buf_elems floats each), and the seed of its dropouts
 * (layer_pass_seed: the same in its F, B and W). */
typedef struct {
    float *buf[LB_FIRST_SCRATCH - LB_FIRST_ACT]; // owned
    uint64_t seed;
} LayerActs;

/* Where a device's passes spent their time: ns by pass (OP_F, OP_B, OP_W) and kernel class
 * (layer_ops' LayerClass), added up by every layer_pass until the caller takes and zeroes it. */
typedef struct {
    double ns[3][LC_COUNT];
} LayerTiming;

/* A device's scratch for one pass at a time: LB_SCORE .. LB_DX1 (buf[b - LB_FIRST_SCRATCH]),
 * context parallelism's staging for its K/V exchange (the collectives move contiguous
 * blocks in rank order: every rank's b s/c rows of the K and V columns, then this rank's),
 * and the time its passes took. */
typedef struct {
    float *buf[LB_FIRST_WEIGHT - LB_FIRST_SCRATCH]; // owned
    float *kv_stage; // owned: (c + 1) b s/c 2k/t floats for kv width k; NULL when c <= 1
    LayerTiming timing;
} LayerScratch;

/* The collectives of a pass (layer_ops' ALLREDUCE, ALLGATHER and REDUCE_SCATTER): over the
 * t tensor ranks, allreduce sums buf (n floats) in place; allgather puts every rank's in (n
 * floats) into out (t n, rank order); reduce_scatter puts this rank's n floats of the sum of
 * every rank's in (t n) into out. context_allgather and context_reduce_scatter are the same
 * two over the c context ranks (c n, rank order), for the K/V exchange. Each returns 0, or
 * -1 (the pass stops). */
typedef struct {
    void *ctx;
    int (*allreduce)(void *ctx, float *buf, int64_t n);
    int (*allgather)(void *ctx, const float *in, float *out, int64_t n);
    int (*reduce_scatter)(void *ctx, const float *in, float *out, int64_t n);
    int (*context_allgather)(void *ctx, const float *in, float *out, int64_t n);
    int (*context_reduce_scatter)(void *ctx, const float *in, float *out, int64_t n);
} LayerComm;

/* Threads the BLAS library may use inside one call (pexec runs one worker per device, so 1). */
void layer_set_blas_threads(int n);
/* The BLAS library's build as it describes itself (OpenBLAS's openblas_get_config(), e.g.
 * "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64"); a static string. */
const char *layer_blas_config(void);

/* layer_init fills rank sh->rank's shard of the layer whose whole weights come, in a fixed
 * order, from a deterministic pseudo-random stream of seed (scale 1/sqrt(fan-in); gamma near
 * 1, beta near 0), so every tensor-parallel split of one seed is the same layer; gradients
 * zero. Returns 0, or -1 when out of memory (the layer is then safe to free). layer_free
 * releases and zeroes. */
int layer_init(Layer *l, const LayerShape *sh, uint64_t seed);
void layer_free(Layer *l);

/* Allocate (zeroed) and release one micro-batch's buffers and one device's scratch (their
 * sizes: layer_buf_elems). Return 0, or -1 when out of memory (then safe to free). */
int layer_acts_init(LayerActs *a, const LayerShape *sh);
void layer_acts_free(LayerActs *a);
int layer_scratch_init(LayerScratch *s, const LayerShape *sh);
void layer_scratch_free(LayerScratch *s);

/* Runs pass (OP_F, OP_B or OP_W; OP_BW is B then W) of layer_ops' list with a's seed:
 *   F: out = the layer's output for input in (T, h), keeping in a what the backward needs;
 *   B: from the output gradient in (T, h), the input gradient out (T, h), keeping in a what
 *      W needs;
 *   W: adds this micro-batch's weight gradients to l->g (in and out unused, may be NULL).
 * T is this rank's tokens (layer_rows): with context parallelism the rows of its two zigzag
 * chunks of each sample, in that order (layer_position). out may not alias in. comm serves
 * the collectives (NULL when the shape has t = 1 and c = 1). Returns 0, or -1 when a
 * collective failed. */
int layer_pass(Layer *l, OpKind pass, LayerActs *a, LayerScratch *s, const float *in, float *out,
               const LayerComm *comm);

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
