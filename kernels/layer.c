/* kernels/layer.c: the CPU twin of the synthetic layer: every GEMM through cblas_sgemm
 * (row-major), attention per (sample, head) on strided views of qkv, GELU by the tanh
 * approximation. No layer norm, dropout or bias: they are memory-bound and the cost model
 * folds them into its efficiency factor. */
#define _GNU_SOURCE // OpenBLAS's cblas.h declares thread-affinity calls with cpu_set_t
#include "kernels/layer.h"

#include <sched.h> // cpu_set_t, which cblas.h uses without including it
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* C (M, N) = alpha op(A) op(B) + beta C, row-major, op = transpose when ta / tb. */
static void mm(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
               int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

/* splitmix64: a small, good, seedable generator for the weights. */
static uint64_t next_u64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static float *fill(int64_t n, int64_t fan_in, uint64_t *seed) {
    float *w = malloc((size_t)n * sizeof *w);
    float scale = 1.0f / sqrtf((float)fan_in);
    for (int64_t i = 0; w && i < n; i++)
        w[i] = scale * (2.0f * (float)(next_u64(seed) >> 40) / (float)(1 << 24) - 1.0f);
    return w;
}

void layer_set_blas_threads(int n) { openblas_set_num_threads(n); }
const char *layer_blas_config(void) { return openblas_get_config(); }

int layer_init(Layer *l, const LayerShape *sh, uint64_t seed) {
    memset(l, 0, sizeof *l);
    l->sh = *sh;
    int64_t h = sh->hidden, f = sh->ffn;
    l->w_qkv = fill(h * 3 * h, h, &seed);
    l->w_o = fill(h * h, h, &seed);
    l->w_1 = fill(h * f, h, &seed);
    l->w_2 = fill(f * h, f, &seed);
    l->g_qkv = calloc((size_t)(h * 3 * h), sizeof(float));
    l->g_o = calloc((size_t)(h * h), sizeof(float));
    l->g_1 = calloc((size_t)(h * f), sizeof(float));
    l->g_2 = calloc((size_t)(f * h), sizeof(float));
    if (l->w_qkv && l->w_o && l->w_1 && l->w_2 && l->g_qkv && l->g_o && l->g_1 && l->g_2)
        return 0;
    layer_free(l);
    return -1;
}

void layer_free(Layer *l) {
    float **p[] = {&l->w_qkv, &l->w_o, &l->w_1, &l->w_2, &l->g_qkv, &l->g_o, &l->g_1, &l->g_2};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) free(*p[i]);
    memset(l, 0, sizeof *l);
}

int layer_acts_init(LayerActs *a, const LayerShape *sh) {
    memset(a, 0, sizeof *a);
    int64_t T = layer_tokens(sh), h = sh->hidden, f = sh->ffn, s = sh->seq;
    struct { float **p; int64_t n; } bufs[] = {
        {&a->x, T * h},     {&a->qkv, T * 3 * h}, {&a->prob, (int64_t)sh->samples * sh->heads * s * s},
        {&a->ctx, T * h},   {&a->x1, T * h},      {&a->u, T * f},
        {&a->gelu, T * f},  {&a->d_y, T * h},     {&a->d_u, T * f},
        {&a->d_x1, T * h},  {&a->d_qkv, T * 3 * h}, {&a->tmp, T * (f + h) + s * s}};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        *bufs[i].p = calloc((size_t)bufs[i].n, sizeof(float));
        if (!*bufs[i].p) {
            layer_acts_free(a);
            return -1;
        }
    }
    return 0;
}

void layer_acts_free(LayerActs *a) {
    float **p[] = {&a->x, &a->qkv, &a->prob, &a->ctx, &a->x1, &a->u,
                   &a->gelu, &a->d_y, &a->d_u, &a->d_x1, &a->d_qkv, &a->tmp};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) free(*p[i]);
    memset(a, 0, sizeof *a);
}

#define GELU_C 0.7978845608028654f // sqrt(2/pi)

static float gelu(float u) { return 0.5f * u * (1.0f + tanhf(GELU_C * (u + 0.044715f * u * u * u))); }

static float gelu_grad(float u) {
    float t = tanhf(GELU_C * (u + 0.044715f * u * u * u));
    return 0.5f * (1.0f + t) + 0.5f * u * (1.0f - t * t) * GELU_C * (1.0f + 3 * 0.044715f * u * u);
}

/* Row i of a causal softmax over s scores: entries past i are masked out (0). */
static void softmax_causal_row(float *row, int64_t i, int64_t s) {
    float mx = row[0], sum = 0;
    for (int64_t j = 1; j <= i; j++) mx = row[j] > mx ? row[j] : mx;
    for (int64_t j = 0; j <= i; j++) sum += row[j] = expf(row[j] - mx);
    for (int64_t j = 0; j <= i; j++) row[j] /= sum;
    for (int64_t j = i + 1; j < s; j++) row[j] = 0;
}

/* Causal attention of every (sample, head): ctx = softmax(Q K^T / sqrt(d)) V. */
static void attention_forward(const LayerShape *sh, LayerActs *a) {
    int64_t s = sh->seq, h = sh->hidden, d = h / sh->heads, ld = 3 * h;
    float scale = 1.0f / sqrtf((float)d);
    for (int64_t b = 0; b < sh->samples; b++)
        for (int64_t k = 0; k < sh->heads; k++) {
            const float *q = a->qkv + b * s * ld + k * d, *key = q + h, *v = q + 2 * h;
            float *p = a->prob + (b * sh->heads + k) * s * s;
            mm(0, 1, s, s, d, scale, q, ld, key, ld, 0, p, s);
            for (int64_t i = 0; i < s; i++) softmax_causal_row(p + i * s, i, s);
            mm(0, 0, s, d, s, 1, p, s, v, ld, 0, a->ctx + b * s * h + k * d, h);
        }
}

/* From d_ctx (T, h) to d_qkv, per (sample, head): dV = P^T dC, dP = dC V^T,
 * dS = P (dP - rowsum(dP P)) / sqrt(d), dQ = dS K, dK = dS^T Q. */
static void attention_backward(const LayerShape *sh, LayerActs *a, const float *d_ctx) {
    int64_t s = sh->seq, h = sh->hidden, d = h / sh->heads, ld = 3 * h;
    float scale = 1.0f / sqrtf((float)d);
    float *dp = a->tmp + layer_tokens(sh) * (sh->ffn + h);
    for (int64_t b = 0; b < sh->samples; b++)
        for (int64_t k = 0; k < sh->heads; k++) {
            const float *q = a->qkv + b * s * ld + k * d, *key = q + h, *v = q + 2 * h;
            const float *p = a->prob + (b * sh->heads + k) * s * s;
            const float *dc = d_ctx + b * s * h + k * d;
            float *dq = a->d_qkv + b * s * ld + k * d, *dk = dq + h, *dv = dq + 2 * h;
            mm(1, 0, s, d, s, 1, p, s, dc, h, 0, dv, ld);
            mm(0, 1, s, s, d, 1, dc, h, v, ld, 0, dp, s);
            for (int64_t i = 0; i < s; i++) {
                float dot = 0;
                for (int64_t j = 0; j <= i; j++) dot += dp[i * s + j] * p[i * s + j];
                for (int64_t j = 0; j < s; j++)
                    dp[i * s + j] = p[i * s + j] * (dp[i * s + j] - dot) * scale;
            }
            mm(0, 0, s, d, s, 1, dp, s, key, ld, 0, dq, ld);
            mm(1, 0, s, d, s, 1, dp, s, q, ld, 0, dk, ld);
        }
}

void layer_forward(const Layer *l, LayerActs *a, const float *x, float *y) {
    const LayerShape *sh = &l->sh;
    int64_t T = layer_tokens(sh), h = sh->hidden, f = sh->ffn;
    memcpy(a->x, x, (size_t)(T * h) * sizeof *x);
    mm(0, 0, T, 3 * h, h, 1, x, h, l->w_qkv, 3 * h, 0, a->qkv, 3 * h);
    attention_forward(sh, a);
    memcpy(a->x1, x, (size_t)(T * h) * sizeof *x);
    mm(0, 0, T, h, h, 1, a->ctx, h, l->w_o, h, 1, a->x1, h);
    mm(0, 0, T, f, h, 1, a->x1, h, l->w_1, f, 0, a->u, f);
    for (int64_t i = 0; i < T * f; i++) a->gelu[i] = gelu(a->u[i]);
    memcpy(y, a->x1, (size_t)(T * h) * sizeof *y);
    mm(0, 0, T, h, f, 1, a->gelu, f, l->w_2, h, 1, y, h);
}

void layer_backward_input(const Layer *l, LayerActs *a, const float *d_y, float *d_x) {
    const LayerShape *sh = &l->sh;
    int64_t T = layer_tokens(sh), h = sh->hidden, f = sh->ffn;
    float *d_gelu = a->tmp, *d_ctx = a->tmp + T * f;
    memcpy(a->d_y, d_y, (size_t)(T * h) * sizeof *d_y);
    mm(0, 1, T, f, h, 1, d_y, h, l->w_2, h, 0, d_gelu, f);
    for (int64_t i = 0; i < T * f; i++) a->d_u[i] = d_gelu[i] * gelu_grad(a->u[i]);
    memcpy(a->d_x1, d_y, (size_t)(T * h) * sizeof *d_y);
    mm(0, 1, T, h, f, 1, a->d_u, f, l->w_1, f, 1, a->d_x1, h);
    mm(0, 1, T, h, h, 1, a->d_x1, h, l->w_o, h, 0, d_ctx, h);
    attention_backward(sh, a, d_ctx);
    memcpy(d_x, a->d_x1, (size_t)(T * h) * sizeof *d_x);
    mm(0, 1, T, h, 3 * h, 1, a->d_qkv, 3 * h, l->w_qkv, 3 * h, 1, d_x, h);
}

void layer_backward_weight(Layer *l, const LayerActs *a) {
    const LayerShape *sh = &l->sh;
    int64_t T = layer_tokens(sh), h = sh->hidden, f = sh->ffn;
    mm(1, 0, f, h, T, 1, a->gelu, f, a->d_y, h, 1, l->g_2, h);
    mm(1, 0, h, f, T, 1, a->x1, h, a->d_u, f, 1, l->g_1, f);
    mm(1, 0, h, h, T, 1, a->ctx, h, a->d_x1, h, 1, l->g_o, h);
    mm(1, 0, h, 3 * h, T, 1, a->x, h, a->d_qkv, 3 * h, 1, l->g_qkv, 3 * h);
}
