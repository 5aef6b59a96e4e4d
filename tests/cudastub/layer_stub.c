/* tests/cudastub/layer_stub.c: kernels/layer_cuda.h for the CUDA stand-in (tests only): the
 * layer's passes run by the CPU twin (layer_pass) on fp32 copies of the bf16 weights, with the
 * pass's input and output in bf16 as the GPU layer keeps them, so the backend's data path
 * (bf16 activations through copies and NCCL) is the GPU's and its results the twin's within
 * bf16 rounding. layer_gpu_spin sticks the stream (cuda_runtime_api.h of the stand-in). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_runtime_api.h"
#include "kernels/layer_cuda.h"

struct LayerGpuCtx {
    LayerShape sh;
    cudaStream_t stream;
    LayerScratch s;
    float *in, *out; // T h each: the pass's bf16 input and output as fp32
};

static int say(char *why, size_t whylen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
    return -1;
}

uint16_t layer_bf16_from_float(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0; // NaN
    u += 0x7fffu + ((u >> 16) & 1u); // round to nearest even
    return (uint16_t)(u >> 16);
}

float layer_bf16_to_float(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static int64_t io_elems(const LayerShape *sh) { return layer_rows(sh) * sh->hidden; }

int layer_gpu_ctx_create(LayerGpuCtx **out, const LayerShape *sh, void *stream, char *why,
                         size_t whylen) {
    LayerGpuCtx *c = calloc(1, sizeof *c);
    *out = c;
    if (!c) return say(why, whylen, "layer_gpu_ctx_create: out of host memory");
    c->sh = *sh, c->stream = stream;
    c->in = malloc((size_t)io_elems(sh) * sizeof *c->in);
    c->out = malloc((size_t)io_elems(sh) * sizeof *c->out);
    if (!c->in || !c->out || layer_scratch_init(&c->s, sh) != 0)
        return say(why, whylen, "layer_gpu_ctx_create: out of host memory");
    return 0;
}

int layer_gpu_set_sm_count(LayerGpuCtx *c, int sms, char *why, size_t whylen) {
    (void)c;
    if (sms <= 0) return say(why, whylen, "cublasSetSmCountTarget: %d SMs", sms);
    cudastub_note_sm_target(sms);
    return 0;
}

void layer_gpu_ctx_free(LayerGpuCtx *c) {
    if (!c) return;
    layer_scratch_free(&c->s);
    free(c->in), free(c->out), free(c);
}

int layer_gpu_upload(LayerGpuCtx *c, const Layer *cpu, LayerGpu *out, char *why, size_t whylen) {
    memset(out, 0, sizeof *out);
    out->sh = c->sh;
    for (int k = 0; k < LAYER_WEIGHTS; k++) {
        int64_t n = layer_buf_elems(&c->sh, (LayerBuf)(LB_FIRST_WEIGHT + k));
        float *w = malloc((size_t)(n ? n : 1) * sizeof *w);
        out->w[k] = w;
        out->g[k] = calloc((size_t)(n ? n : 1), sizeof *out->g[k]);
        if (!w || !out->g[k]) return say(why, whylen, "layer_gpu_upload: out of memory");
        for (int64_t i = 0; i < n; i++) w[i] = layer_bf16_to_float(layer_bf16_from_float(cpu->w[k][i]));
    }
    return 0;
}

void layer_gpu_free(LayerGpu *l) {
    for (int k = 0; k < LAYER_WEIGHTS; k++) free(l->w[k]), free(l->g[k]);
    memset(l, 0, sizeof *l);
}

int layer_gpu_grads(LayerGpuCtx *c, const LayerGpu *l, Layer *cpu, char *why, size_t whylen) {
    if (cudaStreamSynchronize(c->stream) != cudaSuccess)
        return say(why, whylen, "layer_gpu_grads: the stream did not finish");
    for (int k = 0; k < LAYER_WEIGHTS; k++)
        memcpy(cpu->g[k], l->g[k],
               (size_t)layer_buf_elems(&c->sh, (LayerBuf)(LB_FIRST_GRAD + k)) * sizeof(float));
    return 0;
}

int layer_gpu_acts_alloc(LayerGpuCtx *c, LayerGpuActs *a, char *why, size_t whylen) {
    memset(a, 0, sizeof *a);
    for (int b = LB_FIRST_ACT; b < LB_FIRST_SCRATCH; b++) {
        int64_t n = layer_buf_elems(&c->sh, (LayerBuf)b);
        a->buf[b - LB_FIRST_ACT] = calloc((size_t)(n ? n : 1), sizeof(float));
        if (!a->buf[b - LB_FIRST_ACT]) return say(why, whylen, "layer_gpu_acts_alloc: out of memory");
    }
    return 0;
}

void layer_gpu_acts_free(LayerGpuCtx *c, LayerGpuActs *a) {
    (void)c;
    for (int b = 0; b < LB_FIRST_SCRATCH - LB_FIRST_ACT; b++) free(a->buf[b]), a->buf[b] = NULL;
}

int layer_gpu_pass(LayerGpuCtx *c, OpKind pass, LayerGpu *l, LayerGpuActs *a, const void *in,
                   void *out, const LayerGpuComm *comm, char *why, size_t whylen) {
    if (comm) return say(why, whylen, "layer_gpu_pass: the stand-in has no tensor parallelism");
    if (pass == OP_BW)
        return layer_gpu_pass(c, OP_B, l, a, in, out, comm, why, whylen) != 0
                   ? -1 : layer_gpu_pass(c, OP_W, l, a, NULL, NULL, comm, why, whylen);
    Layer v = {.sh = l->sh};
    LayerActs acts = {.seed = a->seed};
    for (int k = 0; k < LAYER_WEIGHTS; k++) v.w[k] = l->w[k], v.g[k] = l->g[k];
    for (int b = 0; b < LB_FIRST_SCRATCH - LB_FIRST_ACT; b++) acts.buf[b] = a->buf[b];
    int64_t n = io_elems(&c->sh);
    if (pass != OP_W) {
        if (!in || !out) return say(why, whylen, "layer_gpu_pass: no input or output buffer");
        for (int64_t i = 0; i < n; i++) c->in[i] = layer_bf16_to_float(((const uint16_t *)in)[i]);
    }
    if (layer_pass(&v, pass, &acts, &c->s, pass == OP_W ? NULL : c->in,
                   pass == OP_W ? NULL : c->out, NULL) != 0)
        return say(why, whylen, "layer_pass failed");
    if (pass != OP_W)
        for (int64_t i = 0; i < n; i++) ((uint16_t *)out)[i] = layer_bf16_from_float(c->out[i]);
    return 0;
}

int layer_gpu_pass_profile(LayerGpuCtx *c, OpKind pass, LayerGpu *l, LayerGpuActs *a,
                           const void *in, void *out, const LayerGpuComm *comm, int reps,
                           double *ms, char *why, size_t whylen) {
    (void)c, (void)pass, (void)l, (void)a, (void)in, (void)out, (void)comm, (void)reps, (void)ms;
    return say(why, whylen, "layer_gpu_pass_profile: not in the CUDA stand-in");
}

int layer_gpu_spin(void *stream, const volatile int *flag, char *why, size_t whylen) {
    (void)why, (void)whylen;
    cudastub_stream_stick(stream, flag);
    return 0;
}
