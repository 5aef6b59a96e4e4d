/* kernels/layer_cuda.h: the layer on an NVIDIA GPU: the op lists of layer_ops.h run with bf16
 * storage and fp32 accumulation (cuBLAS GEMMs in CUBLAS_COMPUTE_32F, attention as strided
 * batches over heads; layer norms, causal softmax, GELU, dropouts, residual adds and their
 * gradients as our kernels; tensor-parallel all-reduces through the caller's collective), the
 * same math as the CPU twin layer.c, so results compare within bf16 rounding. Weight
 * gradients accumulate in fp32. Every call is asynchronous on the context's stream. Only
 * built when nvcc is found (PIPESIM_CUDA). Not here: fused epilogues, flash attention, CUDA
 * graphs. */
#ifndef PIPESIM_LAYER_CUDA_H
#define PIPESIM_LAYER_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/layer.h"
#include "sim/model/layer_ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One stream's context: its cuBLAS handle (bound to the stream, with a 32 MiB workspace) and
 * the scratch buffers of one pass (SCORE .. DX1), so passes on one stream run one at a time.
 * stream is a cudaStream_t (void * keeps this header free of CUDA's). */
typedef struct LayerGpuCtx LayerGpuCtx;

/* A layer's (one tensor-parallel rank's) weights and gradients on the current device, in
 * LayerBuf order as the CPU twin's Layer: bf16 weights, fp32 gradients (W accumulates). */
typedef struct {
    LayerShape sh;
    void *w[LAYER_WEIGHTS];  // device, bf16
    float *g[LAYER_WEIGHTS]; // device, fp32
} LayerGpu;

/* One micro-batch's buffers (LB_X .. LB_DXN1) on the device, and its dropouts' seed. */
typedef struct {
    void *buf[LB_FIRST_SCRATCH - LB_FIRST_ACT];
    uint64_t seed;
} LayerGpuActs;

/* The tensor-parallel all-reduce of a pass: sums buf (n elements of bf16) over the t ranks in
 * place, ordered on stream (a cudaStream_t). Returns 0, or -1 with why. */
typedef struct {
    void *ctx;
    int (*allreduce)(void *ctx, void *buf, int64_t n, void *stream, char *why, size_t whylen);
} LayerGpuComm;

/* The calls return 0, or -1 with a one-line reason ("cublasGemmStridedBatchedEx(qkv): ...")
 * in why. */
int layer_gpu_ctx_create(LayerGpuCtx **out, const LayerShape *sh, void *stream, char *why,
                         size_t whylen);
void layer_gpu_ctx_free(LayerGpuCtx *c);
/* Tells cuBLAS the context's stream runs on a partition of sms SMs (cublasSetSmCountTarget),
 * so its kernels are sized for the partition rather than the whole GPU. */
int layer_gpu_set_sm_count(LayerGpuCtx *c, int sms, char *why, size_t whylen);

/* Uploads the CPU twin's weights (rounded to bf16) and zeroes the gradients; synchronous. */
int layer_gpu_upload(LayerGpuCtx *c, const Layer *cpu, LayerGpu *out, char *why, size_t whylen);
void layer_gpu_free(LayerGpu *l);
/* Downloads the fp32 gradients into cpu->g (synchronises the stream). */
int layer_gpu_grads(LayerGpuCtx *c, const LayerGpu *l, Layer *cpu, char *why, size_t whylen);

/* Stream-ordered allocation of a micro-batch's buffers (cudaMallocAsync) and their release. */
int layer_gpu_acts_alloc(LayerGpuCtx *c, LayerGpuActs *a, char *why, size_t whylen);
void layer_gpu_acts_free(LayerGpuCtx *c, LayerGpuActs *a);

/* The passes, as layer.h's (OP_F, OP_B, OP_W; OP_BW is B then W): F reads x (T, h) and
 * writes y; B reads d_y, writes d_x; W adds to l->g. in and out are device bf16 buffers of
 * T h elements that may not alias. comm serves the all-reduces (NULL when t = 1). */
int layer_gpu_pass(LayerGpuCtx *c, OpKind pass, LayerGpu *l, LayerGpuActs *a, const void *in,
                   void *out, const LayerGpuComm *comm, char *why, size_t whylen);

/* Times each op of a pass alone: one untimed run of the whole pass, then every op `reps`
 * times between two events; ms[i] (room for LAYER_OPS_MAX) gets op i's mean. Returns the
 * number of ops (layer_ops' order), or -1 with why. Synchronises the stream. */
int layer_gpu_pass_profile(LayerGpuCtx *c, OpKind pass, LayerGpu *l, LayerGpuActs *a,
                           const void *in, void *out, const LayerGpuComm *comm, int reps,
                           double *ms, char *why, size_t whylen);

/* Fault injection for the watchdog's tests: a one-thread kernel on stream that spins until
 * *flag (mapped host memory, cudaHostAllocMapped) is nonzero. */
int layer_gpu_spin(void *stream, const volatile int *flag, char *why, size_t whylen);

/* Host conversions, round to nearest even (the same as the device's __float2bfloat16). */
uint16_t layer_bf16_from_float(float f);
float layer_bf16_to_float(uint16_t b);

#ifdef __cplusplus
}
#endif
#endif
