/* kernels/layer_cuda.cu: the CUDA layer: a generic executor of layer_ops.h's lists (cuBLAS
 * strided-batched GEMMs, bf16 in, fp32 compute) and the memory-bound kernels, one block per
 * softmax or layer-norm row, one thread per column for the layer norms' weight gradients, and
 * grid-stride loops elsewhere. Nothing here synchronises except the upload and
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
    void *scratch[LB_FIRST_WEIGHT - LB_FIRST_SCRATCH]; // SCORE .. DX1
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

/* layer_ops.h's dropout hash, bit for bit. */
__device__ uint32_t dropout_hash(uint64_t seed, uint32_t salt, int64_t i) {
    uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (uint64_t)(i + 1) + 0xD1B54A32D192ED03ULL * salt;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return (uint32_t)((z ^ (z >> 31)) >> 32);
}

struct DropoutArgs {
    uint64_t seed;
    uint32_t salt, keep_min;
    float alpha;
    int64_t blk, stride, off;
};

__device__ float to_f(float v) { return v; }
__device__ float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ void from_f(float *p, float v) { *p = v; }
__device__ void from_f(__nv_bfloat16 *p, float v) { *p = __float2bfloat16(v); }

/* c = b + dropout(a) (b NULL: no residual), in a's and c's type. */
template <typename T>
__global__ void dropout_kernel(const T *a, const T *b, T *c, int64_t n, DropoutArgs d) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t j = (i / d.blk) * d.stride + d.off + i % d.blk;
        float v = dropout_hash(d.seed, d.salt, j) < d.keep_min ? 0.0f : to_f(a[i]) * d.alpha;
        from_f(&c[i], b ? to_f(b[i]) + v : v);
    }
}

/* Row r of x (cols wide): y = (x - mean) rstd gamma + beta, stats[2r] = mean, stats[2r+1] =
 * rstd; w is gamma then beta. */
__global__ void layernorm_fwd(const __nv_bfloat16 *x, __nv_bfloat16 *y, float *stats,
                              const __nv_bfloat16 *w, int64_t cols) {
    __shared__ float shared[32];
    int64_t r = blockIdx.x;
    const __nv_bfloat16 *xr = x + r * cols;
    float sum = 0, sq = 0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) sum += __bfloat162float(xr[j]);
    float mean = block_reduce(sum, false, shared) / (float)cols;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
        float d = __bfloat162float(xr[j]) - mean;
        sq += d * d;
    }
    float rstd = rsqrtf(block_reduce(sq, false, shared) / (float)cols + LAYER_LN_EPS);
    if (threadIdx.x == 0) stats[2 * r] = mean, stats[2 * r + 1] = rstd;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x)
        y[r * cols + j] = __float2bfloat16((__bfloat162float(xr[j]) - mean) * rstd *
                                               __bfloat162float(w[j]) + __bfloat162float(w[cols + j]));
}

/* Row r: dx = beta dx + rstd (g - mean(g) - xh mean(g xh)), g = dy gamma. */
__global__ void layernorm_bwd(const __nv_bfloat16 *dy, const __nv_bfloat16 *x, const float *stats,
                              const __nv_bfloat16 *w, __nv_bfloat16 *dx, float beta, int64_t cols) {
    __shared__ float shared[32];
    int64_t r = blockIdx.x;
    float mean = stats[2 * r], rstd = stats[2 * r + 1], sg = 0, sgx = 0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
        float g = __bfloat162float(dy[r * cols + j]) * __bfloat162float(w[j]);
        sg += g, sgx += g * (__bfloat162float(x[r * cols + j]) - mean) * rstd;
    }
    float mg = block_reduce(sg, false, shared) / (float)cols;
    float mgx = block_reduce(sgx, false, shared) / (float)cols;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
        float xh = (__bfloat162float(x[r * cols + j]) - mean) * rstd;
        float v = rstd * (__bfloat162float(dy[r * cols + j]) * __bfloat162float(w[j]) - mg - xh * mgx);
        dx[r * cols + j] = __float2bfloat16(beta != 0 ? __bfloat162float(dx[r * cols + j]) + v : v);
    }
}

/* Column j over the rows: dgamma[j] += sum dy xh, dbeta[j] += sum dy (g: 2 cols, fp32). */
__global__ void layernorm_dw(const __nv_bfloat16 *dy, const __nv_bfloat16 *x, const float *stats,
                             float *g, int64_t rows, int64_t cols) {
    for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < cols;
         j += (int64_t)gridDim.x * blockDim.x) {
        float dg = 0, db = 0;
        for (int64_t r = 0; r < rows; r++) {
            float d = __bfloat162float(dy[r * cols + j]);
            dg += d * (__bfloat162float(x[r * cols + j]) - stats[2 * r]) * stats[2 * r + 1];
            db += d;
        }
        g[j] += dg, g[cols + j] += db;
    }
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

extern "C" int layer_gpu_set_sm_count(LayerGpuCtx *c, int sms, char *why, size_t whylen) {
    BLAS_TRY(cublasSetSmCountTarget(c->blas, sms), "cublasSetSmCountTarget");
    return 0;
}

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
    for (int b = LB_FIRST_SCRATCH; b < LB_FIRST_WEIGHT; b++) {
        size_t bytes = (size_t)layer_buf_elems(sh, (LayerBuf)b) *
                       (size_t)layer_buf_elem_bytes(sh, (LayerBuf)b);
        if (bytes) CUDA_TRY(cudaMalloc(&c->scratch[b - LB_FIRST_SCRATCH], bytes),
                            "cudaMalloc(layer scratch)");
    }
    return 0;
}

extern "C" void layer_gpu_ctx_free(LayerGpuCtx *c) {
    if (!c) return;
    if (c->blas) cublasDestroy(c->blas);
    cudaFree(c->workspace);
    for (int i = 0; i < LB_FIRST_WEIGHT - LB_FIRST_SCRATCH; i++) cudaFree(c->scratch[i]);
    free(c);
}

extern "C" int layer_gpu_upload(LayerGpuCtx *c, const Layer *cpu, LayerGpu *out, char *why,
                                size_t whylen) {
    memset(out, 0, sizeof *out);
    out->sh = cpu->sh;
    for (int k = 0; k < LAYER_WEIGHTS; k++) {
        int64_t n = layer_buf_elems(&cpu->sh, (LayerBuf)(LB_FIRST_WEIGHT + k));
        uint16_t *host = (uint16_t *)malloc((size_t)n * sizeof *host);
        if (!host) return say(why, whylen, "out of host memory for the weights");
        for (int64_t i = 0; i < n; i++) host[i] = layer_bf16_from_float(cpu->w[k][i]);
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
    for (int k = 0; k < LAYER_WEIGHTS; k++) cudaFree(l->w[k]), cudaFree(l->g[k]);
    memset(l, 0, sizeof *l);
}

extern "C" int layer_gpu_grads(LayerGpuCtx *c, const LayerGpu *l, Layer *cpu, char *why,
                               size_t whylen) {
    for (int k = 0; k < LAYER_WEIGHTS; k++)
        CUDA_TRY(cudaMemcpyAsync(cpu->g[k], l->g[k],
                                 (size_t)layer_buf_elems(&l->sh, (LayerBuf)(LB_FIRST_GRAD + k)) *
                                     sizeof(float),
                                 cudaMemcpyDeviceToHost, c->stream),
                 "downloading gradients");
    CUDA_TRY(cudaStreamSynchronize(c->stream), "downloading gradients");
    return 0;
}

extern "C" int layer_gpu_acts_alloc(LayerGpuCtx *c, LayerGpuActs *a, char *why, size_t whylen) {
    memset(a, 0, sizeof *a);
    for (int b = LB_FIRST_ACT; b < LB_FIRST_SCRATCH; b++) {
        size_t bytes = (size_t)layer_buf_elems(&c->sh, (LayerBuf)b) *
                       (size_t)layer_buf_elem_bytes(&c->sh, (LayerBuf)b);
        if (bytes) CUDA_TRY(cudaMallocAsync(&a->buf[b - LB_FIRST_ACT], bytes, c->stream),
                            "cudaMallocAsync(activations)");
    }
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
    const LayerGpuComm *comm;
} Bufs;

static char *buf_ptr(const Bufs *b, LayerBuf which) {
    if (which == LB_IN) return (char *)b->in;
    if (which == LB_OUT) return (char *)b->out;
    if (which >= LB_COUNT) return NULL;
    if (which < LB_FIRST_SCRATCH) return (char *)b->a->buf[which - LB_FIRST_ACT];
    if (which < LB_FIRST_WEIGHT) return (char *)b->c->scratch[which - LB_FIRST_SCRATCH];
    if (which < LB_FIRST_GRAD) return (char *)b->l->w[which - LB_FIRST_WEIGHT];
    return (char *)b->l->g[which - LB_FIRST_GRAD];
}

static cudaDataType_t buf_type(const LayerShape *sh, LayerBuf b) {
    return layer_buf_elem_bytes(sh, b) == 4 ? CUDA_R_32F : CUDA_R_16BF;
}

/* The op as layer_op_gemm_call maps it onto column-major cuBLAS, once per repeat. */
static int run_gemm(const Bufs *b, const LayerOp *o, char *why, size_t whylen) {
    LayerGemmCall g;
    layer_op_gemm_call(o, &g);
    char *F = buf_ptr(b, g.first), *S = buf_ptr(b, g.second), *C = buf_ptr(b, g.c);
    const LayerShape *sh = &b->c->sh;
    int ef = layer_buf_elem_bytes(sh, g.first), es = layer_buf_elem_bytes(sh, g.second),
        ec = layer_buf_elem_bytes(sh, g.c);
    char what[64];
    snprintf(what, sizeof what, "cublasGemmStridedBatchedEx(%s)", o->name);
    for (int64_t r = 0; r < o->repeat; r++) {
        const char *pf = F + (g.first_off + r * g.r_first) * ef;
        const char *ps = S + (g.second_off + r * g.r_second) * es;
        char *pc = C + (g.c_off + r * g.rc) * ec;
        BLAS_TRY(cublasGemmStridedBatchedEx(
                     b->c->blas, g.transa ? CUBLAS_OP_T : CUBLAS_OP_N,
                     g.transb ? CUBLAS_OP_T : CUBLAS_OP_N, (int)g.m, (int)g.n, (int)g.k,
                     &o->alpha, pf, buf_type(sh, g.first), (int)g.ld_first, g.s_first, ps,
                     buf_type(sh, g.second), (int)g.ld_second, g.s_second, &o->beta, pc,
                     buf_type(sh, g.c), (int)g.ldc, g.sc, (int)o->batch, CUBLAS_COMPUTE_32F,
                     CUBLAS_GEMM_DEFAULT),
                 what);
    }
    return 0;
}

static int run_elementwise(const Bufs *b, const LayerOp *o, char *why, size_t whylen) {
    cudaStream_t st = b->c->stream;
    const LayerShape *sh = &b->c->sh;
    char *A = buf_ptr(b, o->a), *B = buf_ptr(b, o->b), *C = buf_ptr(b, o->c);
    char *D = buf_ptr(b, o->d), *W = buf_ptr(b, o->w);
    int grid = (int)((o->n + 255) / 256 < 65536 ? (o->n + 255) / 256 : 65536);
    int cgrid = (int)((o->cols + 255) / 256 < 65536 ? (o->cols + 255) / 256 : 65536);
    DropoutArgs dr = {b->a->seed, o->salt, o->keep_min, o->alpha, o->mask_blk, o->mask_stride,
                      o->mask_off};
    switch ((LayerKernel)o->kernel) {
    case LK_COPY:
        CUDA_TRY(cudaMemcpyAsync(C, A, (size_t)o->n * (size_t)layer_buf_elem_bytes(sh, o->c),
                                 cudaMemcpyDeviceToDevice, st),
                 o->name);
        return 0;
    case LK_DROPOUT:
        if (layer_buf_elem_bytes(sh, o->c) == 4)
            dropout_kernel<float><<<grid, 256, 0, st>>>((const float *)A, (const float *)NULL,
                                                        (float *)C, o->n, dr);
        else
            dropout_kernel<__nv_bfloat16><<<grid, 256, 0, st>>>(
                (const __nv_bfloat16 *)A, (const __nv_bfloat16 *)NULL, (__nv_bfloat16 *)C, o->n, dr);
        break;
    case LK_DROPOUT_ADD:
        dropout_kernel<__nv_bfloat16><<<grid, 256, 0, st>>>(
            (const __nv_bfloat16 *)A, (const __nv_bfloat16 *)B, (__nv_bfloat16 *)C, o->n, dr);
        break;
    case LK_LAYERNORM:
        layernorm_fwd<<<(unsigned)o->n, 256, 0, st>>>((const __nv_bfloat16 *)A, (__nv_bfloat16 *)C,
                                                        (float *)D, (const __nv_bfloat16 *)W,
                                                        o->cols);
        break;
    case LK_LAYERNORM_BW:
        layernorm_bwd<<<(unsigned)o->n, 256, 0, st>>>(
            (const __nv_bfloat16 *)A, (const __nv_bfloat16 *)B, (const float *)D,
            (const __nv_bfloat16 *)W, (__nv_bfloat16 *)C, o->beta, o->cols);
        break;
    case LK_LAYERNORM_DW:
        layernorm_dw<<<cgrid, 256, 0, st>>>((const __nv_bfloat16 *)A, (const __nv_bfloat16 *)B,
                                             (const float *)D, (float *)C, o->n, o->cols);
        break;
    case LK_ALLREDUCE:
        if (!b->comm || !b->comm->allreduce)
            return say(why, whylen, "%s: tensor parallelism needs a communicator", o->name);
        return b->comm->allreduce(b->comm->ctx, C, o->n, st, why, whylen);
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
    case LK_SWIGLU: case LK_SWIGLU_BW: case LK_RMSNORM: case LK_RMSNORM_BW: case LK_RMSNORM_DW:
    case LK_FLASH: case LK_FLASH_BW: case LK_ALLGATHER: case LK_REDUCE_SCATTER:
    case LK_ROUTE: case LK_PERMUTE: case LK_ALLTOALL:
        // exec/cuda.c refuses these shapes before any pass (the CPU twin runs them)
        return say(why, whylen, "%s: not on the CUDA backend yet", o->name);
    case LK_COUNT:
        return say(why, whylen, "%s: unknown kernel", o->name);
    }
    CUDA_TRY(cudaGetLastError(), o->name);
    return 0;
}

extern "C" int layer_gpu_pass(LayerGpuCtx *c, OpKind pass, LayerGpu *l, LayerGpuActs *a,
                              const void *in, void *out, const LayerGpuComm *comm, char *why,
                              size_t whylen) {
    if (pass == OP_BW)
        return layer_gpu_pass(c, OP_B, l, a, in, out, comm, why, whylen) != 0 ? -1
               : layer_gpu_pass(c, OP_W, l, a, NULL, NULL, comm, why, whylen);
    LayerOp ops[LAYER_OPS_MAX];
    int n = layer_ops(&c->sh, pass, ops);
    if (n < 0) return say(why, whylen, "layer_gpu_pass: kind %d is not F, B or W", (int)pass);
    Bufs b = {c, l, a, in, out, comm};
    for (int i = 0; i < n; i++)
        if (run_elementwise(&b, &ops[i], why, whylen) != 0) return -1;
    return 0;
}

extern "C" int layer_gpu_pass_profile(LayerGpuCtx *c, OpKind pass, LayerGpu *l, LayerGpuActs *a,
                                      const void *in, void *out, const LayerGpuComm *comm,
                                      int reps, double *ms, char *why, size_t whylen) {
    LayerOp ops[LAYER_OPS_MAX];
    int n = layer_ops(&c->sh, pass, ops);
    if (n < 0 || reps < 1) return say(why, whylen, "layer_gpu_pass_profile: bad pass or reps");
    if (layer_gpu_pass(c, pass, l, a, in, out, comm, why, whylen) != 0) return -1;
    cudaEvent_t t0, t1;
    CUDA_TRY(cudaEventCreate(&t0), "cudaEventCreate");
    CUDA_TRY(cudaEventCreate(&t1), "cudaEventCreate");
    Bufs b = {c, l, a, in, out, comm};
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
