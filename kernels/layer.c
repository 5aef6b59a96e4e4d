/* kernels/layer.c: the CPU twin: runs layer_ops' lists in fp32. A GEMM op is one cblas_sgemm
 * (row-major) per (repeat, batch) matrix, i.e. per (sample, head) for attention; the
 * elementwise kernels are loops. No layer norm, dropout or bias: the lists have none. */
#define _GNU_SOURCE // OpenBLAS's cblas.h declares thread-affinity calls with cpu_set_t
#include "kernels/layer.h"

#include <sched.h> // cpu_set_t, which cblas.h uses without including it
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

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

/* Allocates bufs[0 .. n) as buffers first, first + 1, ... (zeroed); -1 out of memory. */
static int bufs_init(float **bufs, int n, LayerBuf first, const LayerShape *sh) {
    for (int i = 0; i < n; i++) bufs[i] = NULL;
    for (int i = 0; i < n; i++)
        if (!(bufs[i] = calloc((size_t)layer_buf_elems(sh, (LayerBuf)(first + i)), sizeof(float))))
            return -1;
    return 0;
}

static void bufs_free(float **bufs, int n) {
    for (int i = 0; i < n; i++) free(bufs[i]), bufs[i] = NULL;
}

enum { NACTS = LB_FIRST_SCRATCH - LB_FIRST_ACT, NSCRATCH = LB_FIRST_WEIGHT - LB_FIRST_SCRATCH };

int layer_acts_init(LayerActs *a, const LayerShape *sh) {
    if (bufs_init(a->buf, NACTS, LB_FIRST_ACT, sh) == 0) return 0;
    layer_acts_free(a);
    return -1;
}
void layer_acts_free(LayerActs *a) { bufs_free(a->buf, NACTS); }

int layer_scratch_init(LayerScratch *s, const LayerShape *sh) {
    if (bufs_init(s->buf, NSCRATCH, LB_FIRST_SCRATCH, sh) == 0) return 0;
    layer_scratch_free(s);
    return -1;
}
void layer_scratch_free(LayerScratch *s) { bufs_free(s->buf, NSCRATCH); }

/* The memory of one pass: every buffer an op may name. */
typedef struct {
    float *b[LB_COUNT];
} PassBufs;

static PassBufs pass_bufs(Layer *l, LayerActs *a, LayerScratch *s, const float *in, float *out) {
    PassBufs m = {{0}};
    m.b[LB_IN] = (float *)in, m.b[LB_OUT] = out; // IN is only ever read
    for (int i = 0; i < NACTS; i++) m.b[LB_FIRST_ACT + i] = a->buf[i];
    for (int i = 0; i < NSCRATCH; i++) m.b[LB_FIRST_SCRATCH + i] = s->buf[i];
    float *w[] = {l->w_qkv, l->w_o, l->w_1, l->w_2, l->g_qkv, l->g_o, l->g_1, l->g_2};
    for (int i = 0; i < 8; i++) m.b[LB_WQKV + i] = w[i];
    return m;
}

static void gemm(const PassBufs *m, const LayerOp *o) {
    for (int64_t r = 0; r < o->repeat; r++)
        for (int64_t bt = 0; bt < o->batch; bt++)
            cblas_sgemm(CblasRowMajor, o->ta ? CblasTrans : CblasNoTrans,
                        o->tb ? CblasTrans : CblasNoTrans, (int)o->M, (int)o->N, (int)o->K,
                        o->alpha, m->b[o->a] + o->a_off + r * o->ra + bt * o->sa, (int)o->lda,
                        m->b[o->b] + o->b_off + r * o->rb + bt * o->sb, (int)o->ldb, o->beta,
                        m->b[o->c] + o->c_off + r * o->rc + bt * o->sc, (int)o->ldc);
}

#define GELU_C 0.7978845608028654f // sqrt(2/pi)

static float gelu(float u) { return 0.5f * u * (1.0f + tanhf(GELU_C * (u + 0.044715f * u * u * u))); }

static float gelu_grad(float u) {
    float t = tanhf(GELU_C * (u + 0.044715f * u * u * u));
    return 0.5f * (1.0f + t) + 0.5f * u * (1.0f - t * t) * GELU_C * (1.0f + 3 * 0.044715f * u * u);
}

/* Rows of a causal softmax over s columns: row r is query position i = r mod s, entries past
 * i are masked out (0). */
static void softmax(const float *score, float *prob, int64_t rows, int64_t s) {
    for (int64_t r = 0; r < rows; r++) {
        const float *in = score + r * s;
        float *out = prob + r * s, mx = in[0], sum = 0;
        int64_t i = r % s;
        for (int64_t j = 1; j <= i; j++) mx = in[j] > mx ? in[j] : mx;
        for (int64_t j = 0; j <= i; j++) sum += out[j] = expf(in[j] - mx);
        for (int64_t j = 0; j <= i; j++) out[j] /= sum;
        for (int64_t j = i + 1; j < s; j++) out[j] = 0;
    }
}

/* dS = P (dP - rowsum(dP P)) scale, per row. */
static void softmax_bw(const float *p, const float *dp, float *ds, int64_t rows, int64_t s,
                       float scale) {
    for (int64_t r = 0; r < rows; r++) {
        int64_t i = r % s, at = r * s;
        float dot = 0;
        for (int64_t j = 0; j <= i; j++) dot += dp[at + j] * p[at + j];
        for (int64_t j = 0; j < s; j++) ds[at + j] = p[at + j] * (dp[at + j] - dot) * scale;
    }
}

static void run_op(const PassBufs *m, const LayerOp *o) {
    const float *a = m->b[o->a], *b = m->b[o->b];
    float *c = m->b[o->c];
    switch ((LayerKernel)o->kernel) {
    case LK_GEMM: gemm(m, o); break;
    case LK_COPY: memcpy(c, a, (size_t)o->n * sizeof *c); break;
    case LK_SOFTMAX: softmax(a, c, o->n, o->cols); break;
    case LK_SOFTMAX_BW: softmax_bw(a, b, c, o->n, o->cols, o->alpha); break;
    case LK_GELU: for (int64_t i = 0; i < o->n; i++) c[i] = gelu(a[i]); break;
    case LK_GELU_BW: for (int64_t i = 0; i < o->n; i++) c[i] = a[i] * gelu_grad(b[i]); break;
    }
}

void layer_pass(Layer *l, OpKind pass, LayerActs *a, LayerScratch *s, const float *in,
                float *out) {
    if (pass == OP_BW) {
        layer_pass(l, OP_B, a, s, in, out);
        layer_pass(l, OP_W, a, s, NULL, NULL);
        return;
    }
    LayerOp ops[LAYER_OPS_MAX];
    int n = layer_ops(&l->sh, pass, ops);
    PassBufs m = pass_bufs(l, a, s, in, out);
    for (int i = 0; i < n; i++) run_op(&m, &ops[i]);
}

void layer_op_gemm_call(const LayerOp *o, LayerGemmCall *g) {
    *g = (LayerGemmCall){.transa = o->tb, .transb = o->ta, .m = o->N, .n = o->M, .k = o->K,
                         .first = o->b, .second = o->a, .c = o->c,
                         .first_off = o->b_off, .second_off = o->a_off, .c_off = o->c_off,
                         .ld_first = o->ldb, .ld_second = o->lda, .ldc = o->ldc,
                         .s_first = o->sb, .s_second = o->sa, .sc = o->sc,
                         .r_first = o->rb, .r_second = o->ra, .rc = o->rc};
}
