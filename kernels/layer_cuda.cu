/* kernels/layer_cuda.cu: the CUDA layer: a generic executor of layer_ops.h's lists (cuBLAS
 * strided-batched GEMMs, bf16 in, fp32 compute) and the memory-bound kernels, one block per
 * softmax row and grid-stride loops elsewhere. Nothing here synchronises except the upload and
 * download of weights; nothing launches on the default stream. */
#include "kernels/layer_cuda.h"

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WORKSPACE_BYTES (32u << 20) // cuBLAS workspace per stream
#define GELU_C 0.7978845608028654f  // sqrt(2/pi), as layer.c

struct LayerGpuCtx {
    LayerShape sh;
    cudaStream_t stream;
    cublasHandle_t blas;
    void *workspace;                                  // WORKSPACE_BYTES
    void *scratch[LB_FIRST_WEIGHT - LB_FIRST_SCRATCH]; // SCORE .. DCTX
};

static int say(char *why, size_t len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
    return -1;
}

#define CUDA_TRY(call, what)                                                                  \
    do {                                                                                      \
        cudaError_t e_ = (call);                                                              \
        if (e_ != cudaSuccess)                                                                \
            return say(why, whylen, "%s: %s (%s)", what, cudaGetErrorString(e_),              \
                       cudaGetErrorName(e_));                                                 \
    } while (0)

#define BLAS_TRY(call, what)                                                                  \
    do {                                                                                      \
        cublasStatus_t s_ = (call);                                                           \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                      \
            return say(why, whylen, "%s: cuBLAS %s", what, cublasGetStatusString(s_));        \
    } while (0)

extern "C" uint16_t layer_bf16_from_float(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0; // NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

extern "C" float layer_bf16_to_float(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* ---- kernels ---- */

__device__ float block_reduce(float v, bool is_max, float *shared) {
    for (int o = 16; o > 0; o >>= 1) {
        float w = __shfl_xor_sync(0xffffffffu, v, o);
        v = is_max ? fmaxf(v, w) : v + w;
    }
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
    __syncthreads(); // shared may still be read from a previous reduction
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    v = lane < warps ? shared[lane] : (is_max ? -INFINITY : 0.0f);
    for (int o = 16; o > 0; o >>= 1) {
        float w = __shfl_xor_sync(0xffffffffu, v, o);
        v = is_max ? fmaxf(v, w) : v + w;
    }
    return v;
}

/* Row r of the (rows, s) scores is query position i = r mod s: entries past i are masked. */
__global__ void softmax_causal(const float *score, __nv_bfloat16 *prob, int64_t s) {
    __shared__ float shared[32];
    int64_t r = blockIdx.x, i = r % s;
    const float *row = score + r * s;
    float mx = -INFINITY, sum = 0;
    for (int64_t j = threadIdx.x; j <= i; j += blockDim.x) mx = fmaxf(mx, row[j]);
    mx = block_reduce(mx, true, shared);
    for (int64_t j = threadIdx.x; j <= i; j += blockDim.x) sum += __expf(row[j] - mx);
    sum = block_reduce(sum, false, shared);
    for (int64_t j = threadIdx.x; j < s; j += blockDim.x)
        prob[r * s + j] = __float2bfloat16(j <= i ? __expf(row[j] - mx) / sum : 0.0f);
}

/* dS = P (dP - rowsum(dP P)) scale, per row. */
__global__ void softmax_causal_bw(const __nv_bfloat16 *prob, const float *dprob,
                                  __nv_bfloat16 *dscore, int64_t s, float scale) {
    __shared__ float shared[32];
    int64_t r = blockIdx.x, i = r % s;
    float dot = 0;
    for (int64_t j = threadIdx.x; j <= i; j += blockDim.x)
        dot += dprob[r * s + j] * __bfloat162float(prob[r * s + j]);
    dot = block_reduce(dot, false, shared);
    for (int64_t j = threadIdx.x; j < s; j += blockDim.x) {
        float p = __bfloat162float(prob[r * s + j]);
        dscore[r * s + j] = __float2bfloat16(p * (dprob[r * s + j] - dot) * scale);
    }
}

__device__ float gelu_tanh(float u) {
    return 0.5f * u * (1.0f + tanhf(GELU_C * (u + 0.044715f * u * u * u)));
}

__device__ float gelu_tanh_grad(float u) {
    float t = tanhf(GELU_C * (u + 0.044715f * u * u * u));
    return 0.5f * (1.0f + t) + 0.5f * u * (1.0f - t * t) * GELU_C * (1.0f + 3 * 0.044715f * u * u);
}

__global__ void gelu_fwd(const __nv_bfloat16 *u, __nv_bfloat16 *g, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        g[i] = __float2bfloat16(gelu_tanh(__bfloat162float(u[i])));
}

__global__ void gelu_bwd(const __nv_bfloat16 *dg, const __nv_bfloat16 *u, __nv_bfloat16 *du,
                         int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        du[i] = __float2bfloat16(__bfloat162float(dg[i]) * gelu_tanh_grad(__bfloat162float(u[i])));
}

__global__ void spin_until(const volatile int *flag) {
    while (*flag == 0) __nanosleep(1000);
}

extern "C" int layer_gpu_spin(void *stream, const volatile int *flag, char *why, size_t whylen) {
    spin_until<<<1, 1, 0, (cudaStream_t)stream>>>(flag);
    CUDA_TRY(cudaGetLastError(), "spin_until");
    return 0;
}

/* ---- context, weights, activations ---- */

extern "C" int layer_gpu_ctx_create(LayerGpuCtx **out, const LayerShape *sh, void *stream,
                                    char *why, size_t whylen) {
    LayerGpuCtx *c = (LayerGpuCtx *)calloc(1, sizeof *c);
    *out = NULL;
    if (!c) return say(why, whylen, "out of host memory");
    c->sh = *sh;
    c->stream = (cudaStream_t)stream;
    *out = c; // freed by the caller on failure too
    BLAS_TRY(cublasCreate(&c->blas), "cublasCreate");
    BLAS_TRY(cublasSetStream(c->blas, c->stream), "cublasSetStream");
    CUDA_TRY(cudaMalloc(&c->workspace, WORKSPACE_BYTES), "cudaMalloc(cuBLAS workspace)");
    BLAS_TRY(cublasSetWorkspace(c->blas, c->workspace, WORKSPACE_BYTES), "cublasSetWorkspace");
    for (int b = LB_FIRST_SCRATCH; b < LB_FIRST_WEIGHT; b++)
        CUDA_TRY(cudaMalloc(&c->scratch[b - LB_FIRST_SCRATCH],
                            (size_t)layer_buf_elems(sh, (LayerBuf)b) *
                                (size_t)layer_buf_elem_bytes((LayerBuf)b)),
                 "cudaMalloc(layer scratch)");
    return 0;
}

extern "C" void layer_gpu_ctx_free(LayerGpuCtx *c) {
    if (!c) return;
    if (c->blas) cublasDestroy(c->blas);
    cudaFree(c->workspace);
    for (int i = 0; i < LB_FIRST_WEIGHT - LB_FIRST_SCRATCH; i++) cudaFree(c->scratch[i]);
    free(c);
}

static const LayerBuf WEIGHTS[4] = {LB_WQKV, LB_WO, LB_W1, LB_W2};

extern "C" int layer_gpu_upload(LayerGpuCtx *c, const Layer *cpu, LayerGpu *out, char *why,
                                size_t whylen) {
    memset(out, 0, sizeof *out);
    out->sh = cpu->sh;
    const float *src[4] = {cpu->w_qkv, cpu->w_o, cpu->w_1, cpu->w_2};
    for (int k = 0; k < 4; k++) {
        int64_t n = layer_buf_elems(&cpu->sh, WEIGHTS[k]);
        uint16_t *host = (uint16_t *)malloc((size_t)n * sizeof *host);
        if (!host) return say(why, whylen, "out of host memory for the weights");
        for (int64_t i = 0; i < n; i++) host[i] = layer_bf16_from_float(src[k][i]);
        cudaError_t e = cudaMalloc(&out->w[k], (size_t)n * 2);
        if (e == cudaSuccess) e = cudaMemcpyAsync(out->w[k], host, (size_t)n * 2,
                                                  cudaMemcpyHostToDevice, c->stream);
        if (e == cudaSuccess) e = cudaStreamSynchronize(c->stream);
        free(host);
        CUDA_TRY(e, "uploading weights");
        CUDA_TRY(cudaMalloc((void **)&out->g[k], (size_t)n * sizeof(float)), "cudaMalloc(gradients)");
        CUDA_TRY(cudaMemsetAsync(out->g[k], 0, (size_t)n * sizeof(float), c->stream),
                 "zeroing gradients");
    }
    return 0;
}

extern "C" void layer_gpu_free(LayerGpu *l) {
    for (int k = 0; k < 4; k++) cudaFree(l->w[k]), cudaFree(l->g[k]);
    memset(l, 0, sizeof *l);
}

extern "C" int layer_gpu_grads(LayerGpuCtx *c, const LayerGpu *l, Layer *cpu, char *why,
                               size_t whylen) {
    float *dst[4] = {cpu->g_qkv, cpu->g_o, cpu->g_1, cpu->g_2};
    for (int k = 0; k < 4; k++)
        CUDA_TRY(cudaMemcpyAsync(dst[k], l->g[k],
                                 (size_t)layer_buf_elems(&l->sh, WEIGHTS[k]) * sizeof(float),
                                 cudaMemcpyDeviceToHost, c->stream),
                 "downloading gradients");
    CUDA_TRY(cudaStreamSynchronize(c->stream), "downloading gradients");
    return 0;
}

extern "C" int layer_gpu_acts_alloc(LayerGpuCtx *c, LayerGpuActs *a, char *why, size_t whylen) {
    memset(a, 0, sizeof *a);
    for (int b = LB_FIRST_ACT; b < LB_FIRST_SCRATCH; b++)
        CUDA_TRY(cudaMallocAsync(&a->buf[b - LB_FIRST_ACT],
                                 (size_t)layer_buf_elems(&c->sh, (LayerBuf)b) *
                                     (size_t)layer_buf_elem_bytes((LayerBuf)b),
                                 c->stream),
                 "cudaMallocAsync(activations)");
    return 0;
}

extern "C" void layer_gpu_acts_free(LayerGpuCtx *c, LayerGpuActs *a) {
    for (int i = 0; i < LB_FIRST_SCRATCH - LB_FIRST_ACT; i++)
        if (a->buf[i]) cudaFreeAsync(a->buf[i], c->stream);
    memset(a, 0, sizeof *a);
}

/* ---- the executor of an op list ---- */

typedef struct {
    LayerGpuCtx *c;
    LayerGpu *l;
    LayerGpuActs *a;
    const void *in;
    void *out;
} Bufs;

static char *buf_ptr(const Bufs *b, LayerBuf which) {
    if (which == LB_IN) return (char *)b->in;
    if (which == LB_OUT) return (char *)b->out;
    if (which < LB_FIRST_SCRATCH) return (char *)b->a->buf[which - LB_FIRST_ACT];
    if (which < LB_FIRST_WEIGHT) return (char *)b->c->scratch[which - LB_FIRST_SCRATCH];
    if (which < LB_GQKV) return (char *)b->l->w[which - LB_WQKV];
    return (char *)b->l->g[which - LB_GQKV];
}

static cudaDataType_t buf_type(LayerBuf b) {
    return layer_buf_elem_bytes(b) == 4 ? CUDA_R_32F : CUDA_R_16BF;
}

/* The op as layer_op_gemm_call maps it onto column-major cuBLAS, once per repeat. */
static int run_gemm(const Bufs *b, const LayerOp *o, char *why, size_t whylen) {
    LayerGemmCall g;
    layer_op_gemm_call(o, &g);
    char *F = buf_ptr(b, g.first), *S = buf_ptr(b, g.second), *C = buf_ptr(b, g.c);
    int ef = layer_buf_elem_bytes(g.first), es = layer_buf_elem_bytes(g.second),
        ec = layer_buf_elem_bytes(g.c);
    char what[64];
    snprintf(what, sizeof what, "cublasGemmStridedBatchedEx(%s)", o->name);
    for (int64_t r = 0; r < o->repeat; r++) {
        const char *pf = F + (g.first_off + r * g.r_first) * ef;
        const char *ps = S + (g.second_off + r * g.r_second) * es;
        char *pc = C + (g.c_off + r * g.rc) * ec;
        BLAS_TRY(cublasGemmStridedBatchedEx(
                     b->c->blas, g.transa ? CUBLAS_OP_T : CUBLAS_OP_N,
                     g.transb ? CUBLAS_OP_T : CUBLAS_OP_N, (int)g.m, (int)g.n, (int)g.k,
                     &o->alpha, pf, buf_type(g.first), (int)g.ld_first, g.s_first, ps,
                     buf_type(g.second), (int)g.ld_second, g.s_second, &o->beta, pc,
                     buf_type(g.c), (int)g.ldc, g.sc, (int)o->batch, CUBLAS_COMPUTE_32F,
                     CUBLAS_GEMM_DEFAULT),
                 what);
    }
    return 0;
}

static int run_elementwise(const Bufs *b, const LayerOp *o, char *why, size_t whylen) {
    cudaStream_t st = b->c->stream;
    char *A = buf_ptr(b, o->a), *B = buf_ptr(b, o->b), *C = buf_ptr(b, o->c);
    int grid = (int)((o->n + 255) / 256 < 65536 ? (o->n + 255) / 256 : 65536);
    switch ((LayerKernel)o->kernel) {
    case LK_COPY:
        CUDA_TRY(cudaMemcpyAsync(C, A, (size_t)o->n * 2, cudaMemcpyDeviceToDevice, st), o->name);
        return 0;
    case LK_SOFTMAX:
        softmax_causal<<<(unsigned)o->n, 256, 0, st>>>((const float *)A, (__nv_bfloat16 *)C,
                                                         o->cols);
        break;
    case LK_SOFTMAX_BW:
        softmax_causal_bw<<<(unsigned)o->n, 256, 0, st>>>(
            (const __nv_bfloat16 *)A, (const float *)B, (__nv_bfloat16 *)C, o->cols, o->alpha);
        break;
    case LK_GELU:
        gelu_fwd<<<grid, 256, 0, st>>>((const __nv_bfloat16 *)A, (__nv_bfloat16 *)C, o->n);
        break;
    case LK_GELU_BW:
        gelu_bwd<<<grid, 256, 0, st>>>((const __nv_bfloat16 *)A, (const __nv_bfloat16 *)B,
                                       (__nv_bfloat16 *)C, o->n);
        break;
    case LK_GEMM:
        return run_gemm(b, o, why, whylen);
    }
    CUDA_TRY(cudaGetLastError(), o->name);
    return 0;
}

extern "C" int layer_gpu_pass(LayerGpuCtx *c, OpKind pass, LayerGpu *l, LayerGpuActs *a,
                              const void *in, void *out, char *why, size_t whylen) {
    LayerOp ops[LAYER_OPS_MAX];
    int n = layer_ops(&c->sh, pass, ops);
    if (n < 0) return say(why, whylen, "layer_gpu_pass: kind %d is not F, B or W", (int)pass);
    Bufs b = {c, l, a, in, out};
    for (int i = 0; i < n; i++)
        if (run_elementwise(&b, &ops[i], why, whylen) != 0) return -1;
    return 0;
}

extern "C" int layer_gpu_pass_profile(LayerGpuCtx *c, OpKind pass, LayerGpu *l, LayerGpuActs *a,
                                      const void *in, void *out, int reps, double *ms,
                                      char *why, size_t whylen) {
    LayerOp ops[LAYER_OPS_MAX];
    int n = layer_ops(&c->sh, pass, ops);
    if (n < 0 || reps < 1) return say(why, whylen, "layer_gpu_pass_profile: bad pass or reps");
    if (layer_gpu_pass(c, pass, l, a, in, out, why, whylen) != 0) return -1;
    cudaEvent_t t0, t1;
    CUDA_TRY(cudaEventCreate(&t0), "cudaEventCreate");
    CUDA_TRY(cudaEventCreate(&t1), "cudaEventCreate");
    Bufs b = {c, l, a, in, out};
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        float t = 0;
        cudaEventRecord(t0, c->stream);
        for (int r = 0; r < reps && rc == 0; r++) rc = run_elementwise(&b, &ops[i], why, whylen);
        cudaEventRecord(t1, c->stream);
        cudaError_t e = cudaEventSynchronize(t1);
        if (e == cudaSuccess) e = cudaEventElapsedTime(&t, t0, t1);
        if (rc == 0 && e != cudaSuccess)
            rc = say(why, whylen, "timing %s: %s", ops[i].name, cudaGetErrorString(e));
        ms[i] = (double)t / reps;
    }
    cudaEventDestroy(t0), cudaEventDestroy(t1);
    return rc == 0 ? n : -1;
}
