/* kernels/layer.c: the CPU twin: runs layer_ops' lists in fp32. A GEMM op is one cblas_sgemm
 * (row-major) per (repeat, batch) matrix, i.e. per (sample, head) for attention; the row and
 * elementwise kernels are loops; a collective is the caller's (LayerComm), context
 * parallelism's K/V exchange packed here into the contiguous blocks it moves. */
#define _GNU_SOURCE // OpenBLAS's cblas.h declares thread-affinity calls with cpu_set_t
#include "kernels/layer.h"

#include <sched.h> // cpu_set_t, which cblas.h uses without including it
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* splitmix64: a small, good, seedable generator for the weights. */
static uint64_t next_u64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* A uniform draw in [-1, 1). */
static float draw(uint64_t *seed) {
    return 2.0f * (float)(next_u64(seed) >> 40) / (float)(1 << 24) - 1.0f;
}

void layer_set_blas_threads(int n) { openblas_set_num_threads(n); }
const char *layer_blas_config(void) { return openblas_get_config(); }

/* The whole layer's weight w (rows x cols, scale 1/sqrt(fan_in)) drawn from the stream, and
 * this rank's block of it: rows [r0, r0 + nr) and, of each row, the column ranges cr[k] =
 * {first, count} (k < ncr, in increasing order: qkv's q, k and v, SwiGLU's gate and up). */
static void draw_shard(uint64_t *seed, int64_t rows, int64_t cols, int64_t fan_in, float *dst,
                       int64_t r0, int64_t nr, const int64_t (*cr)[2], int ncr) {
    float scale = 1.0f / sqrtf((float)fan_in);
    int64_t k = 0;
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0, at = 0; j < cols; j++) {
            float v = scale * draw(seed);
            while (at < ncr && j >= cr[at][0] + cr[at][1]) at++;
            if (i >= r0 && i < r0 + nr && at < ncr && j >= cr[at][0]) dst[k++] = v;
        }
}

int layer_init(Layer *l, const LayerShape *sh, uint64_t seed) {
    memset(l, 0, sizeof *l);
    l->sh = *sh;
    for (int i = 0; i < LAYER_WEIGHTS; i++) {
        size_t n = (size_t)layer_buf_elems(sh, (LayerBuf)(LB_FIRST_WEIGHT + i));
        l->w[i] = malloc(n * sizeof(float));
        l->g[i] = calloc(n, sizeof(float));
        if (!l->w[i] || !l->g[i]) {
            layer_free(l);
            return -1;
        }
    }
    int64_t h = sh->hidden, f = sh->ffn, t = layer_tp(sh), r = sh->rank % t;
    int64_t hd = sh->head_dim > 0 ? sh->head_dim : h / sh->heads;
    int64_t Q = sh->heads * hd, KV = (sh->kv_heads > 0 ? sh->kv_heads : sh->heads) * hd;
    int64_t hq = Q / t, hk = KV / t, fl = f / t, up = sh->swiglu ? 2 * f : f;
    const int64_t qkv[3][2] = {{r * hq, hq}, {Q + r * hk, hk}, {Q + KV + r * hk, hk}};
    const int64_t mlp[2][2] = {{r * fl, fl}, {f + r * fl, fl}}, all[1][2] = {{0, h}};
    draw_shard(&seed, h, Q + 2 * KV, h, l->w[LB_WQKV - LB_FIRST_WEIGHT], 0, h, qkv, 3);
    draw_shard(&seed, Q, h, Q, l->w[LB_WO - LB_FIRST_WEIGHT], r * hq, hq, all, 1);
    draw_shard(&seed, h, up, h, l->w[LB_W1 - LB_FIRST_WEIGHT], 0, h, mlp, sh->swiglu ? 2 : 1);
    draw_shard(&seed, f, h, f, l->w[LB_W2 - LB_FIRST_WEIGHT], r * fl, fl, all, 1);
    for (int k = 0; k < 2; k++) { // gamma near 1, beta near 0: not the identity, to be tested
        float *ln = l->w[LB_LN1 + k - LB_FIRST_WEIGHT];
        for (int64_t i = 0; i < h; i++) ln[i] = 1.0f + 0.1f * draw(&seed);
        for (int64_t i = 0; i < h && !sh->rms; i++) ln[h + i] = 0.1f * draw(&seed);
    }
    return 0;
}

void layer_free(Layer *l) {
    for (int i = 0; i < LAYER_WEIGHTS; i++) free(l->w[i]), free(l->g[i]);
    memset(l, 0, sizeof *l);
}

/* Allocates bufs[0 .. n) as buffers first, first + 1, ... (zeroed); -1 out of memory. */
static int bufs_init(float **bufs, int n, LayerBuf first, const LayerShape *sh) {
    for (int i = 0; i < n; i++) bufs[i] = NULL;
    for (int i = 0; i < n; i++) {
        size_t elems = (size_t)layer_buf_elems(sh, (LayerBuf)(first + i));
        if (!(bufs[i] = calloc(elems ? elems : 1, sizeof(float)))) return -1;
    }
    return 0;
}

static void bufs_free(float **bufs, int n) {
    for (int i = 0; i < n; i++) free(bufs[i]), bufs[i] = NULL;
}

enum { NACTS = LB_FIRST_SCRATCH - LB_FIRST_ACT, NSCRATCH = LB_FIRST_WEIGHT - LB_FIRST_SCRATCH };

int layer_acts_init(LayerActs *a, const LayerShape *sh) {
    a->seed = 0;
    if (bufs_init(a->buf, NACTS, LB_FIRST_ACT, sh) == 0) return 0;
    layer_acts_free(a);
    return -1;
}
void layer_acts_free(LayerActs *a) { bufs_free(a->buf, NACTS); }

int layer_scratch_init(LayerScratch *s, const LayerShape *sh) {
    int64_t kv = layer_buf_elems(sh, LB_KV), c = sh->context > 1 ? sh->context : 1;
    s->kv_stage = kv ? malloc((size_t)(kv + kv / c) * sizeof(float)) : NULL;
    if (bufs_init(s->buf, NSCRATCH, LB_FIRST_SCRATCH, sh) == 0 && (!kv || s->kv_stage)) return 0;
    layer_scratch_free(s);
    return -1;
}
void layer_scratch_free(LayerScratch *s) {
    bufs_free(s->buf, NSCRATCH);
    free(s->kv_stage), s->kv_stage = NULL;
}

/* The memory of one pass: every buffer an op may name, the K/V exchange's staging, the shape
 * (the positions of its tokens) and its dropouts' seed. */
typedef struct {
    float *b[LB_COUNT + 1]; // [LB_COUNT]: NULL, for an operand an op does not use
    float *stage;
    const LayerShape *sh;
    uint64_t seed;
} PassBufs;

static PassBufs pass_bufs(Layer *l, LayerActs *a, LayerScratch *s, const float *in, float *out) {
    PassBufs m = {{0}, s->kv_stage, &l->sh, a->seed};
    m.b[LB_IN] = (float *)in, m.b[LB_OUT] = out; // IN is only ever read
    for (int i = 0; i < NACTS; i++) m.b[LB_FIRST_ACT + i] = a->buf[i];
    for (int i = 0; i < NSCRATCH; i++) m.b[LB_FIRST_SCRATCH + i] = s->buf[i];
    for (int i = 0; i < LAYER_WEIGHTS; i++)
        m.b[LB_FIRST_WEIGHT + i] = l->w[i], m.b[LB_FIRST_GRAD + i] = l->g[i];
    return m;
}

/* Matrix bt of an operand: its own, or its group's when flagged in o->grouped. */
static int64_t mat(const LayerOp *o, int flag, int64_t bt) {
    return o->grouped & flag ? bt / o->group : bt;
}

static void gemm(const PassBufs *m, const LayerOp *o) {
    for (int64_t r = 0; r < o->repeat; r++)
        for (int64_t bt = 0; bt < o->batch; bt++) {
            float beta = o->grouped & 4 && bt % o->group ? 1.0f : o->beta; // the group adds up
            cblas_sgemm(CblasRowMajor, o->ta ? CblasTrans : CblasNoTrans,
                        o->tb ? CblasTrans : CblasNoTrans, (int)o->M, (int)o->N, (int)o->K,
                        o->alpha, m->b[o->a] + o->a_off + r * o->ra + mat(o, 1, bt) * o->sa,
                        (int)o->lda, m->b[o->b] + o->b_off + r * o->rb + mat(o, 2, bt) * o->sb,
                        (int)o->ldb, beta,
                        m->b[o->c] + o->c_off + r * o->rc + mat(o, 4, bt) * o->sc, (int)o->ldc);
        }
}

static float dot(const float *x, const float *y, int64_t n) {
    float s = 0;
    for (int64_t k = 0; k < n; k++) s += x[k] * y[k];
    return s;
}

/* Flash attention on the CPU: one (sample, head) at a time, FLASH_BQ queries at a time. A
 * block's scores against the keys up to its last query's position (the causal blocks only)
 * are one sgemm into a FLASH_BQ x s scratch, softmax rows within it (the log-sum-exp kept),
 * the context another sgemm: no s x s buffer, and the work of causal flash attention (half
 * the score blocks). A block never straddles two of context parallelism's chunks, so its
 * queries' positions follow one another. B rebuilds each block's probabilities from the
 * log-sum-exp and runs the four gradient GEMMs on it. Returns 0, or -1 out of memory. */
#define FLASH_BQ 64

static void sgemm(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *a,
                  int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (int)M, (int)N, (int)K, alpha, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
}

/* Queries of the block that starts at q0: up to FLASH_BQ, within its run of consecutive
 * positions (a sample's sq queries, or with context parallelism each of its two chunks). */
static int64_t flash_block(const LayerShape *sh, int64_t sq, int64_t q0) {
    int64_t run = sh->context > 1 ? sq / 2 : sq, left = run - q0 % run;
    return left < FLASH_BQ ? left : FLASH_BQ;
}

static int flash(const LayerShape *sh, const LayerOp *o, const float *qkv, const float *kvb,
                 float *ctx, float *lse) {
    int64_t sq = o->M, s = o->cols, hd = o->K;
    float *sc = malloc((size_t)(FLASH_BQ * s) * sizeof *sc);
    if (!sc) return -1;
    for (int64_t r = 0; r < o->repeat; r++)
        for (int64_t i = 0; i < o->batch; i++) {
            const float *q = qkv + r * o->ra + i * hd;
            const float *k = kvb + r * o->kv_rs + o->kv_off + mat(o, 2, i) * hd, *v = k + o->N;
            float *out = ctx + r * o->rc + i * hd, *l = lse + (r * o->batch + i) * sq;
            for (int64_t q0 = 0, nq; q0 < sq; q0 += nq) {
                nq = flash_block(sh, sq, q0);
                int64_t p0 = layer_position(sh, q0), nk = p0 + nq; // keys 0 .. its last position
                sgemm(0, 1, nq, nk, hd, o->alpha, q + q0 * o->lda, o->lda, k, o->kv_ld, 0, sc, nk);
                for (int64_t x = 0; x < nq; x++) { // row x is at position p0 + x: keys 0 .. p0 + x
                    float *row = sc + x * nk, mx = -INFINITY, sum = 0;
                    int64_t last = p0 + x;
                    for (int64_t y = 0; y <= last; y++) mx = row[y] > mx ? row[y] : mx;
                    for (int64_t y = 0; y <= last; y++) sum += row[y] = expf(row[y] - mx);
                    for (int64_t y = 0; y <= last; y++) row[y] /= sum;
                    for (int64_t y = last + 1; y < nk; y++) row[y] = 0;
                    l[q0 + x] = mx + logf(sum);
                }
                sgemm(0, 0, nq, hd, nk, 1, sc, nk, v, o->kv_ld, 0, out + q0 * o->ldc, o->ldc);
            }
        }
    free(sc);
    return 0;
}

/* Its gradient, a block of queries at a time: P from the log-sum-exp, dV += P^T dO,
 * dP = dO V^T, dS = P (dP - rowsum(dO O)) scale, dQ = dS K, dK += dS^T Q (the group's query
 * heads add up into their key/value head); dq into dqkv (laid out as qkv), dK and dV into
 * dkvb (laid out as kvb; dqkv itself without context parallelism). */
static int flash_bw(const LayerShape *sh, const LayerOp *o, const float *qkv, const float *kvb,
                    const float *dctx, const float *ctx, const float *lse, float *dqkv,
                    float *dkvb) {
    int64_t sq = o->M, s = o->cols, hd = o->K;
    float *p = malloc((size_t)(2 * FLASH_BQ * s) * sizeof *p), *dp = p ? p + FLASH_BQ * s : NULL;
    if (!p) return -1;
    memset(dqkv, 0, (size_t)(o->repeat * sq * o->ldc) * sizeof *dqkv);
    if (dkvb != dqkv) memset(dkvb, 0, (size_t)(o->repeat * o->kv_rs) * sizeof *dkvb);
    for (int64_t r = 0; r < o->repeat; r++)
        for (int64_t i = 0; i < o->batch; i++) {
            int64_t kv = r * o->kv_rs + o->kv_off + mat(o, 2, i) * hd;
            const float *q = qkv + r * o->ra + i * hd, *k = kvb + kv, *v = k + o->N;
            const float *dout = dctx + r * o->rb + i * hd, *out = ctx + r * o->rb + i * hd;
            const float *l = lse + (r * o->batch + i) * sq;
            float *dq = dqkv + r * o->rc + i * hd, *dk = dkvb + kv, *dv = dk + o->N;
            for (int64_t q0 = 0, nq; q0 < sq; q0 += nq) {
                nq = flash_block(sh, sq, q0);
                int64_t p0 = layer_position(sh, q0), nk = p0 + nq;
                const float *qb = q + q0 * o->lda, *dob = dout + q0 * o->ldb;
                sgemm(0, 1, nq, nk, hd, o->alpha, qb, o->lda, k, o->kv_ld, 0, p, nk);
                sgemm(0, 1, nq, nk, hd, 1, dob, o->ldb, v, o->kv_ld, 0, dp, nk);
                for (int64_t x = 0; x < nq; x++) {
                    float *pr = p + x * nk, *dpr = dp + x * nk;
                    float D = dot(dob + x * o->ldb, out + (q0 + x) * o->ldb, hd);
                    int64_t last = p0 + x;
                    for (int64_t y = 0; y < nk; y++) {
                        float pv = y <= last ? expf(pr[y] - l[q0 + x]) : 0;
                        pr[y] = pv, dpr[y] = pv * (dpr[y] - D) * o->alpha;
                    }
                }
                sgemm(1, 0, nk, hd, nq, 1, p, nk, dob, o->ldb, 1, dv, o->kv_ld);
                sgemm(0, 0, nq, hd, nk, 1, dp, nk, k, o->kv_ld, 1, dq + q0 * o->ldc, o->ldc);
                sgemm(1, 0, nk, hd, nq, 1, dp, nk, qb, o->lda, 1, dk, o->kv_ld);
            }
        }
    free(p);
    return 0;
}

/* ---- context parallelism's K/V exchange ---- */

/* The row in KV (each sample's s rows in position order) of context rank r's row t. */
static int64_t kv_row(const LayerShape *sh, int64_t r, int64_t t) {
    int64_t sq = sh->seq / sh->context;
    return (t / sq) * sh->seq + layer_zigzag(sh->seq, sh->context, r, t % sq);
}

/* F: this rank's K and V columns packed after the staging's c blocks, all-gathered into them
 * (rank order), and every rank's rows laid into KV at their positions. */
static int kv_allgather(const PassBufs *m, const LayerOp *o, const LayerComm *comm) {
    const LayerShape *sh = m->sh;
    int64_t w = o->N, rows = o->n / w, c = sh->context;
    const float *a = m->b[o->a];
    float *all = m->stage, *mine = all + c * o->n, *kv = m->b[o->c];
    for (int64_t t = 0; t < rows; t++)
        memcpy(mine + t * w, a + t * o->lda + o->a_off, (size_t)w * sizeof *mine);
    if (!comm || !comm->context_allgather || comm->context_allgather(comm->ctx, mine, all, o->n))
        return -1;
    for (int64_t r = 0; r < c; r++)
        for (int64_t t = 0; t < rows; t++)
            memcpy(kv + kv_row(sh, r, t) * o->ldc, all + (r * rows + t) * w, (size_t)w * sizeof *kv);
    return 0;
}

/* B: the gradients of every rank's rows taken from DKV in rank order, reduce-scattered (this
 * rank's rows summed over the ranks), and put into DQKV's K and V columns. */
static int kv_reduce_scatter(const PassBufs *m, const LayerOp *o, const LayerComm *comm) {
    const LayerShape *sh = m->sh;
    int64_t w = o->N, rows = o->n / w, c = sh->context;
    const float *dkv = m->b[o->a];
    float *all = m->stage, *mine = all + c * o->n, *dqkv = m->b[o->c];
    for (int64_t r = 0; r < c; r++)
        for (int64_t t = 0; t < rows; t++)
            memcpy(all + (r * rows + t) * w, dkv + kv_row(sh, r, t) * o->lda, (size_t)w * sizeof *all);
    if (!comm || !comm->context_reduce_scatter ||
        comm->context_reduce_scatter(comm->ctx, all, mine, o->n))
        return -1;
    for (int64_t t = 0; t < rows; t++)
        memcpy(dqkv + t * o->ldc + o->c_off, mine + t * w, (size_t)w * sizeof *dqkv);
    return 0;
}

#define GELU_C 0.7978845608028654f // sqrt(2/pi)

static float gelu(float u) { return 0.5f * u * (1.0f + tanhf(GELU_C * (u + 0.044715f * u * u * u))); }

static float gelu_grad(float u) {
    float t = tanhf(GELU_C * (u + 0.044715f * u * u * u));
    return 0.5f * (1.0f + t) + 0.5f * u * (1.0f - t * t) * GELU_C * (1.0f + 3 * 0.044715f * u * u);
}

static float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

/* SwiGLU over rows of gate | up (2 cols wide): c = SiLU(gate) up, and its gradient into
 * dgate | dup from the output's gradient dg. */
static void swiglu(const float *u, float *c, int64_t rows, int64_t cols) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < cols; j++) {
            float g = u[r * 2 * cols + j];
            c[r * cols + j] = g * sigmoid(g) * u[r * 2 * cols + cols + j];
        }
}

static void swiglu_bw(const float *dg, const float *u, float *du, int64_t rows, int64_t cols) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < cols; j++) {
            float g = u[r * 2 * cols + j], up = u[r * 2 * cols + cols + j], sg = sigmoid(g);
            du[r * 2 * cols + j] = dg[r * cols + j] * up * sg * (1.0f + g * (1.0f - sg));
            du[r * 2 * cols + cols + j] = dg[r * cols + j] * g * sg;
        }
}

/* RMSNorm over rows of n values: y = x rstd gamma, stats[r] = rstd = 1 / sqrt(mean(x^2) +
 * eps); its input gradient dx (= beta dx +) rstd (g - xh mean(g xh)), g = dy gamma, xh = x
 * rstd; and dgamma += sum over rows of dy xh. */
static void rmsnorm(const float *x, float *y, float *stats, const float *w, int64_t rows,
                    int64_t n) {
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * n;
        double ms = 0;
        for (int64_t j = 0; j < n; j++) ms += (double)xr[j] * xr[j];
        float rstd = 1.0f / sqrtf((float)(ms / (double)n) + LAYER_LN_EPS);
        stats[r] = rstd;
        for (int64_t j = 0; j < n; j++) y[r * n + j] = xr[j] * rstd * w[j];
    }
}

static void rmsnorm_bw(const float *dy, const float *x, const float *stats, const float *w,
                       float *dx, float beta, int64_t rows, int64_t n) {
    for (int64_t r = 0; r < rows; r++) {
        const float *dyr = dy + r * n, *xr = x + r * n;
        float rstd = stats[r];
        double sgx = 0;
        for (int64_t j = 0; j < n; j++) sgx += (double)dyr[j] * w[j] * xr[j] * rstd;
        float mgx = (float)(sgx / (double)n);
        for (int64_t j = 0; j < n; j++) {
            float v = rstd * (dyr[j] * w[j] - xr[j] * rstd * mgx);
            dx[r * n + j] = beta != 0 ? dx[r * n + j] + v : v;
        }
    }
}

static void rmsnorm_dw(const float *dy, const float *x, const float *stats, float *g,
                       int64_t rows, int64_t n) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < n; j++) g[j] += dy[r * n + j] * x[r * n + j] * stats[r];
}

/* The position of a causal softmax's row r: its query r mod M (M = 0: s) at its position. */
static int64_t row_position(const LayerShape *sh, const LayerOp *o, int64_t r) {
    return layer_position(sh, r % (o->M ? o->M : o->cols));
}

/* Rows of a causal softmax over s columns: row r's query is at position i (row_position),
 * entries past i are masked out (0). */
static void softmax(const LayerShape *sh, const LayerOp *o, const float *score, float *prob) {
    int64_t rows = o->n, s = o->cols;
    for (int64_t r = 0; r < rows; r++) {
        const float *in = score + r * s;
        float *out = prob + r * s, mx = in[0], sum = 0;
        int64_t i = row_position(sh, o, r);
        for (int64_t j = 1; j <= i; j++) mx = in[j] > mx ? in[j] : mx;
        for (int64_t j = 0; j <= i; j++) sum += out[j] = expf(in[j] - mx);
        for (int64_t j = 0; j <= i; j++) out[j] /= sum;
        for (int64_t j = i + 1; j < s; j++) out[j] = 0;
    }
}

/* dS = P (dP - rowsum(dP P)) scale, per row. */
static void softmax_bw(const LayerShape *sh, const LayerOp *o, const float *p, const float *dp,
                       float *ds) {
    int64_t rows = o->n, s = o->cols;
    float scale = o->alpha;
    for (int64_t r = 0; r < rows; r++) {
        int64_t i = row_position(sh, o, r), at = r * s;
        float dot = 0;
        for (int64_t j = 0; j <= i; j++) dot += dp[at + j] * p[at + j];
        for (int64_t j = 0; j < s; j++) ds[at + j] = p[at + j] * (dp[at + j] - dot) * scale;
    }
}

/* The element of the whole layer whose mask element i draws: (i / blk) stride + off + i % blk
 * among this context rank's tokens, and with context parallelism its row moved to its
 * token's position in the sample (rows of mask_row elements, sq of them a sample and head). */
static int64_t mask_index(const LayerShape *sh, const LayerOp *o, int64_t i) {
    int64_t j = (i / o->mask_blk) * o->mask_stride + o->mask_off + i % o->mask_blk;
    if (!o->mask_row) return j;
    int64_t row = j / o->mask_row, sq = sh->seq / sh->context;
    return ((row / sq) * sh->seq + layer_position(sh, row % sq)) * o->mask_row + j % o->mask_row;
}

/* c = a kept (x alpha) or dropped, plus b when b is given (a residual). */
static void dropout(const LayerShape *sh, const LayerOp *o, uint64_t seed, const float *a,
                    const float *b, float *c) {
    for (int64_t i = 0; i < o->n; i++) {
        int64_t j = mask_index(sh, o, i);
        float v = o->p > 0 && layer_dropout_hash(seed, o->salt, j) < o->keep_min ? 0
                  : a[i] * o->alpha;
        c[i] = b ? b[i] + v : v;
    }
}

/* Layer norm over rows of n values: y = (x - mean) rstd gamma + beta; stats[2r] = mean,
 * stats[2r + 1] = rstd. */
static void layernorm(const float *x, float *y, float *stats, const float *w, int64_t rows,
                      int64_t n) {
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * n;
        double mean = 0, var = 0;
        for (int64_t j = 0; j < n; j++) mean += xr[j];
        mean /= (double)n;
        for (int64_t j = 0; j < n; j++) var += (xr[j] - mean) * (xr[j] - mean);
        float m = (float)mean, rstd = 1.0f / sqrtf((float)(var / (double)n) + LAYER_LN_EPS);
        stats[2 * r] = m, stats[2 * r + 1] = rstd;
        for (int64_t j = 0; j < n; j++) y[r * n + j] = (xr[j] - m) * rstd * w[j] + w[n + j];
    }
}

/* dx (= beta dx +) rstd (g - mean(g) - xh mean(g xh)) with g = dy gamma. */
static void layernorm_bw(const float *dy, const float *x, const float *stats, const float *w,
                         float *dx, float beta, int64_t rows, int64_t n) {
    for (int64_t r = 0; r < rows; r++) {
        const float *dyr = dy + r * n, *xr = x + r * n;
        float m = stats[2 * r], rstd = stats[2 * r + 1];
        double sg = 0, sgx = 0;
        for (int64_t j = 0; j < n; j++) {
            double g = (double)dyr[j] * w[j], xh = (double)(xr[j] - m) * rstd;
            sg += g, sgx += g * xh;
        }
        float mg = (float)(sg / (double)n), mgx = (float)(sgx / (double)n);
        for (int64_t j = 0; j < n; j++) {
            float xh = (xr[j] - m) * rstd, v = rstd * (dyr[j] * w[j] - mg - xh * mgx);
            dx[r * n + j] = beta != 0 ? dx[r * n + j] + v : v;
        }
    }
}

/* dgamma += sum over rows of dy xh, dbeta += sum of dy. */
static void layernorm_dw(const float *dy, const float *x, const float *stats, float *g,
                         int64_t rows, int64_t n) {
    for (int64_t r = 0; r < rows; r++) {
        float m = stats[2 * r], rstd = stats[2 * r + 1];
        for (int64_t j = 0; j < n; j++) {
            g[j] += dy[r * n + j] * (x[r * n + j] - m) * rstd;
            g[n + j] += dy[r * n + j];
        }
    }
}

static int run_op(const PassBufs *m, const LayerOp *o, const LayerComm *comm) {
    const float *a = m->b[o->a], *b = m->b[o->b], *d = m->b[o->d], *w = m->b[o->w];
    float *c = m->b[o->c];
    switch ((LayerKernel)o->kernel) {
    case LK_GEMM: gemm(m, o); break;
    case LK_COPY: memcpy(c, a, (size_t)o->n * sizeof *c); break;
    case LK_SOFTMAX: softmax(m->sh, o, a, c); break;
    case LK_SOFTMAX_BW: softmax_bw(m->sh, o, a, b, c); break;
    case LK_GELU: for (int64_t i = 0; i < o->n; i++) c[i] = gelu(a[i]); break;
    case LK_GELU_BW: for (int64_t i = 0; i < o->n; i++) c[i] = a[i] * gelu_grad(b[i]); break;
    case LK_DROPOUT: dropout(m->sh, o, m->seed, a, NULL, c); break;
    case LK_DROPOUT_ADD: dropout(m->sh, o, m->seed, a, b, c); break;
    case LK_LAYERNORM: layernorm(a, c, m->b[o->d], w, o->n, o->cols); break;
    case LK_LAYERNORM_BW: layernorm_bw(a, b, d, w, c, o->beta, o->n, o->cols); break;
    case LK_LAYERNORM_DW: layernorm_dw(a, b, d, c, o->n, o->cols); break;
    case LK_SWIGLU: swiglu(a, c, o->n, o->cols); break;
    case LK_SWIGLU_BW: swiglu_bw(a, b, c, o->n, o->cols); break;
    case LK_RMSNORM: rmsnorm(a, c, m->b[o->d], w, o->n, o->cols); break;
    case LK_RMSNORM_BW: rmsnorm_bw(a, b, d, w, c, o->beta, o->n, o->cols); break;
    case LK_RMSNORM_DW: rmsnorm_dw(a, b, d, c, o->n, o->cols); break;
    case LK_FLASH: return flash(m->sh, o, a, m->b[o->kv], c, m->b[o->d]);
    case LK_FLASH_BW: return flash_bw(m->sh, o, a, m->b[o->kv], b, w, d, c, m->b[o->dkv]);
    case LK_ALLREDUCE: return comm && comm->allreduce ? comm->allreduce(comm->ctx, c, o->n) : -1;
    case LK_ALLGATHER:
        if (o->over) return kv_allgather(m, o, comm);
        return comm && comm->allgather ? comm->allgather(comm->ctx, a, c, o->n) : -1;
    case LK_REDUCE_SCATTER:
        if (o->over) return kv_reduce_scatter(m, o, comm);
        return comm && comm->reduce_scatter ? comm->reduce_scatter(comm->ctx, a, c, o->n) : -1;
    case LK_ROUTE: case LK_PERMUTE: case LK_ALLTOALL: // MoE: priced only, pexec refuses it
    case LK_COUNT: return -1;
    }
    return 0;
}

int layer_pass(Layer *l, OpKind pass, LayerActs *a, LayerScratch *s, const float *in, float *out,
               const LayerComm *comm) {
    if (pass == OP_BW)
        return layer_pass(l, OP_B, a, s, in, out, comm) != 0 ? -1
               : layer_pass(l, OP_W, a, s, NULL, NULL, comm);
    LayerOp ops[LAYER_OPS_MAX];
    int n = layer_ops(&l->sh, pass, ops);
    PassBufs m = pass_bufs(l, a, s, in, out);
    double *ns = s->timing.ns[pass];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < n; i++) {
        if (run_op(&m, &ops[i], comm) != 0) return -1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        ns[ops[i].cls] += (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
        t0 = t1;
    }
    return 0;
}

void layer_op_gemm_call(const LayerOp *o, LayerGemmCall *g) {
    *g = (LayerGemmCall){.transa = o->tb, .transb = o->ta, .m = o->N, .n = o->M, .k = o->K,
                         .first = o->b, .second = o->a, .c = o->c,
                         .first_off = o->b_off, .second_off = o->a_off, .c_off = o->c_off,
                         .ld_first = o->ldb, .ld_second = o->lda, .ldc = o->ldc,
                         .s_first = o->sb, .s_second = o->sa, .sc = o->sc,
                         .r_first = o->rb, .r_second = o->ra, .rc = o->rc};
}
