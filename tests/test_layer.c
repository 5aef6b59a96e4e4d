/* tests/test_layer.c: the CPU twin (layer_ops' lists in fp32) against finite differences
 * (input gradient and every weight's gradient, the norms' included, of loss = sum(y R)),
 * with and without dropout, for GPT's layer and the modern one (GQA with a head dimension
 * other than h / heads, SwiGLU, RMSNorm, flash attention); flash attention computing what
 * the standard kernels compute; causality and sample independence of its attention;
 * dropouts that drop their share and the same elements in B as in F; W accumulating; and a
 * layer split over two tensor-parallel ranks (two threads, in-process collectives), with and
 * without sequence parallelism, computing the unsplit layer's output and gradients. Shapes
 * are tiny so every entry is checked. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kernels/layer.h"

static const LayerShape SH = {.samples = 2, .seq = 3, .hidden = 4, .heads = 2, .ffn = 8};
#define T 6
#define H 4

static void fill(float *v, int64_t n, uint32_t seed) {
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        v[i] = (float)(seed >> 8) / (float)(1u << 24) - 0.5f;
    }
}

/* A layer with its buffers, one pass at a time. */
typedef struct {
    Layer l;
    LayerActs a;
    LayerScratch s;
} Twin;

static void twin_init(Twin *tw, const LayerShape *sh, uint64_t seed) {
    assert_int_equal(layer_init(&tw->l, sh, seed), 0);
    assert_int_equal(layer_acts_init(&tw->a, sh), 0);
    assert_int_equal(layer_scratch_init(&tw->s, sh), 0);
    tw->a.seed = 99;
}

static void twin_free(Twin *tw) {
    layer_scratch_free(&tw->s);
    layer_acts_free(&tw->a);
    layer_free(&tw->l);
}

static void pass(Twin *tw, OpKind k, const float *in, float *out) {
    assert_int_equal(layer_pass(&tw->l, k, &tw->a, &tw->s, in, out, NULL), 0);
}

/* sum(y * r) for input x, in double. */
static double loss(Twin *tw, const float *x, const float *r) {
    float y[T * H];
    pass(tw, OP_F, x, y);
    double sum = 0;
    for (int i = 0; i < T * H; i++) sum += (double)y[i] * r[i];
    return sum;
}

static void expect_close(double num, double ana, const char *what, int w, int64_t i) {
    if (fabs(num - ana) > 2e-3 + 2e-2 * fabs(ana))
        fail_msg("%s (weight %d)[%lld]: finite difference %.6f, analytic %.6f", what, w,
                 (long long)i, num, ana);
}

/* Every gradient of the layer of shape sh against central differences. */
static void check_gradients(const LayerShape *sh) {
    Twin tw;
    twin_init(&tw, sh, 7);
    float x[T * H], r[T * H], dx[T * H], y[T * H];
    fill(x, T * H, 1), fill(r, T * H, 2);
    pass(&tw, OP_F, x, y);
    pass(&tw, OP_B, r, dx);
    pass(&tw, OP_W, NULL, NULL);
    const float eps = 1e-2f;
    for (int i = 0; i < T * H; i++) {
        float xp[T * H], xm[T * H];
        memcpy(xp, x, sizeof x), memcpy(xm, x, sizeof x);
        xp[i] += eps, xm[i] -= eps;
        expect_close((loss(&tw, xp, r) - loss(&tw, xm, r)) / (2 * eps), dx[i], "dx", -1, i);
    }
    for (int w = 0; w < LAYER_WEIGHTS; w++) {
        int64_t n = layer_buf_elems(sh, (LayerBuf)(LB_FIRST_WEIGHT + w));
        for (int64_t i = 0; i < n; i++) {
            float keep = tw.l.w[w][i];
            tw.l.w[w][i] = keep + eps;
            double up = loss(&tw, x, r);
            tw.l.w[w][i] = keep - eps;
            double down = loss(&tw, x, r);
            tw.l.w[w][i] = keep;
            expect_close((up - down) / (2 * eps), tw.l.g[w][i], "dW", w, i);
        }
    }
    twin_free(&tw);
}

static void test_gradients(void **state) {
    (void)state;
    check_gradients(&SH);
}

static void test_gradients_with_dropout(void **state) {
    (void)state; // the masks are a function of the seed: the same in every call, so the
                 // layer is differentiable and B drops what F dropped
    LayerShape sh = SH;
    sh.dropout = 0.25f;
    check_gradients(&sh);
}

static void test_dropout_drops_its_share(void **state) {
    (void)state; // a layer of 64 x 64 tokens: every dropout drops p of its elements (5 sigma)
    const LayerShape sh = {.samples = 1, .seq = 64, .hidden = 64, .heads = 4, .ffn = 64,
                           .dropout = 0.2f};
    LayerOp ops[LAYER_OPS_MAX];
    int n = layer_ops(&sh, OP_F, ops), found = 0;
    for (int i = 0; i < n; i++) {
        if (ops[i].kernel != LK_DROPOUT && ops[i].kernel != LK_DROPOUT_ADD) continue;
        found++;
        int64_t dropped = 0;
        for (int64_t e = 0; e < ops[i].n; e++)
            dropped += layer_dropout_hash(5, ops[i].salt, e) < ops[i].keep_min;
        double sd = sqrt(ops[i].n * 0.2 * 0.8);
        if (fabs((double)dropped - 0.2 * (double)ops[i].n) > 5 * sd)
            fail_msg("%s dropped %lld of %lld", ops[i].name, (long long)dropped,
                     (long long)ops[i].n);
        assert_true(fabsf(ops[i].alpha - 1.25f) < 1e-6f);
    }
    assert_int_equal(found, 3); // attention, and the two residuals
}

static void test_causal_and_per_sample(void **state) {
    (void)state; // token 2 of sample 0 changes nothing before it, nor anything in sample 1
    Twin tw;
    twin_init(&tw, &SH, 3);
    float x[T * H], y0[T * H], y1[T * H];
    fill(x, T * H, 5);
    pass(&tw, OP_F, x, y0);
    for (int c = 0; c < H; c++) x[2 * H + c] += 1.0f;
    pass(&tw, OP_F, x, y1);
    assert_memory_equal(y0, y1, 2 * H * sizeof(float));               // tokens 0, 1
    assert_memory_not_equal(y0 + 2 * H, y1 + 2 * H, H * sizeof(float)); // token 2
    assert_memory_equal(y0 + 3 * H, y1 + 3 * H, 3 * H * sizeof(float)); // sample 1
    twin_free(&tw);
}

static void test_weight_gradients_accumulate(void **state) {
    (void)state;
    Twin tw;
    twin_init(&tw, &SH, 11);
    float x[T * H], r[T * H], y[T * H], dx[T * H], once[8 * H];
    fill(x, T * H, 8), fill(r, T * H, 9);
    pass(&tw, OP_F, x, y);
    pass(&tw, OP_B, r, dx);
    pass(&tw, OP_W, NULL, NULL);
    float *g2 = tw.l.g[LB_W2 - LB_FIRST_WEIGHT];
    memcpy(once, g2, sizeof once);
    pass(&tw, OP_W, NULL, NULL);
    for (int i = 0; i < 8 * H; i++) assert_true(g2[i] == 2 * once[i]);
    twin_free(&tw);
}

/* ---- a grid of c context x t tensor ranks on c t threads ---- */

/* One group of ranks meeting in process (a tensor group or a context group): each posts its
 * buffer, then all read, then a barrier before any buffer changes; sums in member order. */
typedef struct {
    pthread_barrier_t bar;
    int n;
    const float *slot[4];
} Group;

typedef struct {
    Group *tensor, *context; // this rank's two groups
    int trank, crank;
} GridComm;

static int group_allreduce(Group *g, int me, float *buf, int64_t n) {
    g->slot[me] = buf;
    pthread_barrier_wait(&g->bar);
    float *sum = malloc((size_t)n * sizeof *sum);
    for (int64_t i = 0; sum && i < n; i++) {
        sum[i] = g->slot[0][i];
        for (int k = 1; k < g->n; k++) sum[i] += g->slot[k][i];
    }
    pthread_barrier_wait(&g->bar);
    if (sum) memcpy(buf, sum, (size_t)n * sizeof *sum);
    free(sum);
    pthread_barrier_wait(&g->bar);
    return sum ? 0 : -1;
}

static int group_allgather(Group *g, int me, const float *in, float *out, int64_t n) {
    g->slot[me] = in;
    pthread_barrier_wait(&g->bar);
    for (int k = 0; k < g->n; k++) memcpy(out + k * n, g->slot[k], (size_t)n * sizeof *out);
    pthread_barrier_wait(&g->bar);
    return 0;
}

static int group_reduce_scatter(Group *g, int me, const float *in, float *out, int64_t n) {
    g->slot[me] = in;
    pthread_barrier_wait(&g->bar);
    for (int64_t i = 0; i < n; i++) {
        out[i] = g->slot[0][me * n + i];
        for (int k = 1; k < g->n; k++) out[i] += g->slot[k][me * n + i];
    }
    pthread_barrier_wait(&g->bar);
    return 0;
}

static int grid_allreduce(void *ctx, float *buf, int64_t n) {
    GridComm *c = ctx;
    return group_allreduce(c->tensor, c->trank, buf, n);
}
static int grid_allgather(void *ctx, const float *in, float *out, int64_t n) {
    GridComm *c = ctx;
    return group_allgather(c->tensor, c->trank, in, out, n);
}
static int grid_reduce_scatter(void *ctx, const float *in, float *out, int64_t n) {
    GridComm *c = ctx;
    return group_reduce_scatter(c->tensor, c->trank, in, out, n);
}
static int grid_context_allgather(void *ctx, const float *in, float *out, int64_t n) {
    GridComm *c = ctx;
    return group_allgather(c->context, c->crank, in, out, n);
}
static int grid_context_reduce_scatter(void *ctx, const float *in, float *out, int64_t n) {
    GridComm *c = ctx;
    return group_reduce_scatter(c->context, c->crank, in, out, n);
}

typedef struct {
    Twin tw;
    GridComm gc;
    float *x, *r, *y, *dx; // owned: this rank's rows of the input and output gradient, outputs
    int64_t rows;          // of the residual stream here
    int rc;
} Rank;

static void *rank_main(void *arg) {
    Rank *k = arg;
    LayerComm comm = {&k->gc, grid_allreduce, grid_allgather, grid_reduce_scatter,
                      grid_context_allgather, grid_context_reduce_scatter};
    k->rc = layer_pass(&k->tw.l, OP_F, &k->tw.a, &k->tw.s, k->x, k->y, &comm);
    if (!k->rc) k->rc = layer_pass(&k->tw.l, OP_B, &k->tw.a, &k->tw.s, k->r, k->dx, &comm);
    if (!k->rc) k->rc = layer_pass(&k->tw.l, OP_W, &k->tw.a, &k->tw.s, NULL, NULL, &comm);
    return NULL;
}

/* The widths of shape sh's whole layer: query and key/value widths, MLP width. */
typedef struct { int64_t h, q, kv, f, up; } Widths;

static Widths widths_of(const LayerShape *sh) {
    int64_t hd = sh->head_dim > 0 ? sh->head_dim : sh->hidden / sh->heads;
    return (Widths){sh->hidden, sh->heads * hd, (sh->kv_heads > 0 ? sh->kv_heads : sh->heads) * hd,
                    sh->ffn, sh->swiglu ? 2 : 1};
}

/* Element (i, j) of rank r's shard (of t) of weight w, in the whole layer's weight. */
static int64_t whole_index(const LayerShape *sh, int t, int w, int r, int64_t i, int64_t j) {
    Widths W = widths_of(sh);
    int64_t hq = W.q / t, hk = W.kv / t, fl = W.f / t;
    switch (LB_FIRST_WEIGHT + w) {
    case LB_WQKV: // q, k, v blocks
        return i * (W.q + 2 * W.kv) + (j < hq ? r * hq + j : j < hq + hk ? W.q + r * hk + j - hq
                                                          : W.q + W.kv + r * hk + j - hq - hk);
    case LB_WO: return (r * hq + i) * W.h + j;
    case LB_W1: return i * W.f * W.up + (j < fl ? r * fl + j : W.f + r * fl + j - fl);
    case LB_W2: return (r * fl + i) * W.h + j;
    default: return i * 0 + j; // the norms: replicated
    }
}

static int64_t shard_cols(const LayerShape *sh, int t, int w) {
    Widths W = widths_of(sh);
    switch (LB_FIRST_WEIGHT + w) {
    case LB_WQKV: return (W.q + 2 * W.kv) / t;
    case LB_W1: return W.f * W.up / t;
    case LB_LN1: case LB_LN2: return layer_buf_elems(sh, (LayerBuf)(LB_FIRST_WEIGHT + w));
    default: return W.h;
    }
}

/* Within 1e-5 (1 + |want|): the splits sum the same products in another order (a weight
 * gradient over T/c tokens per context rank, then over the ranks; K's and V's gradients over
 * each rank's queries, then reduce-scattered; a row-parallel GEMM over t partial sums), each
 * fp32 sum off by a few ulps (1.2e-7 each), far below the bound; a wrong mask, position or
 * row is off by the size of the values themselves. */
static int close_to(float got, float want) { return fabsf(got - want) <= 1e-5f * (1 + fabsf(want)); }

/* The whole micro-batch's row of rank (crank, trank)'s row e of the residual stream: its
 * tensor rank's share of the context rank's tokens (sequence parallel), at its position. */
static int64_t whole_row(const LayerShape *sh, int64_t rows, int64_t e) {
    int64_t tok = (sh->seqpar && sh->tensor > 1 ? sh->rank * rows : 0) + e;
    int64_t c = sh->context > 1 ? sh->context : 1, sq = sh->seq / c;
    return (tok / sq) * sh->seq + layer_position(sh, tok % sq);
}

/* The layer of shape one split over c context x t tensor ranks (sequence parallel when sp:
 * each tensor rank takes 1/t of its context rank's tokens) computes the unsplit layer's
 * outputs and gradients: each rank's output and input gradient rows are the whole layer's
 * rows at their tokens' positions; its weights are the whole layer's shards; its GEMM
 * gradients, summed over the c context ranks (each saw its tokens only), the whole's
 * shards; its norms' gradients, summed over the context ranks (and the tensor ranks when
 * sequence parallel), the whole's. */
static void check_grid(LayerShape one, int c, int t, int sp) {
    int64_t H_ = one.hidden, all = (int64_t)one.samples * one.seq;
    float *x = malloc((size_t)(4 * all * H_) * sizeof *x), *r = x + all * H_;
    float *y = r + all * H_, *dx = y + all * H_;
    assert_non_null(x);
    fill(x, all * H_, 3), fill(r, all * H_, 4);
    Twin whole;
    twin_init(&whole, &one, 21);
    pass(&whole, OP_F, x, y);
    pass(&whole, OP_B, r, dx);
    pass(&whole, OP_W, NULL, NULL);
    Group tg[4], cg[4]; // tensor group of each context rank, context group of each tensor rank
    for (int i = 0; i < c; i++) tg[i].n = t, pthread_barrier_init(&tg[i].bar, NULL, (unsigned)t);
    for (int i = 0; i < t; i++) cg[i].n = c, pthread_barrier_init(&cg[i].bar, NULL, (unsigned)c);
    Rank k[8];
    pthread_t th[8];
    int n = c * t;
    for (int i = 0; i < n; i++) {
        LayerShape sh = one;
        sh.context = c, sh.crank = i / t, sh.tensor = t, sh.rank = i % t, sh.seqpar = (uint8_t)sp;
        twin_init(&k[i].tw, &sh, 21);
        k[i].gc = (GridComm){&tg[sh.crank], &cg[sh.rank], sh.rank, sh.crank};
        k[i].rows = layer_rows(&sh);
        k[i].x = malloc((size_t)(4 * k[i].rows * H_) * sizeof(float));
        assert_non_null(k[i].x);
        k[i].r = k[i].x + k[i].rows * H_, k[i].y = k[i].r + k[i].rows * H_;
        k[i].dx = k[i].y + k[i].rows * H_;
        for (int64_t e = 0; e < k[i].rows; e++) {
            int64_t at = whole_row(&sh, k[i].rows, e) * H_;
            memcpy(k[i].x + e * H_, x + at, (size_t)H_ * sizeof *x);
            memcpy(k[i].r + e * H_, r + at, (size_t)H_ * sizeof *r);
        }
    }
    for (int i = 0; i < n; i++) assert_int_equal(pthread_create(&th[i], NULL, rank_main, &k[i]), 0);
    for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < n; i++) {
        const LayerShape *sh = &k[i].tw.l.sh;
        assert_int_equal(k[i].rc, 0);
        for (int64_t e = 0; e < k[i].rows * H_; e++) {
            int64_t at = whole_row(sh, k[i].rows, e / H_) * H_ + e % H_;
            if (!close_to(k[i].y[e], y[at]) || !close_to(k[i].dx[e], dx[at]))
                fail_msg("c %d t %d rank (%d, %d) row element %lld: y %g dx %g, the whole "
                         "layer's %g %g", c, t, sh->crank, sh->rank, (long long)e,
                         (double)k[i].y[e], (double)k[i].dx[e], (double)y[at], (double)dx[at]);
        }
        for (int w = 0; w < LAYER_WEIGHTS; w++) {
            int64_t cnt = layer_buf_elems(sh, (LayerBuf)(LB_FIRST_WEIGHT + w));
            int norm = LB_FIRST_WEIGHT + w == LB_LN1 || LB_FIRST_WEIGHT + w == LB_LN2;
            for (int64_t e = 0; e < cnt; e++) {
                int64_t cols = shard_cols(&one, t, w);
                int64_t j = whole_index(&one, t, w, sh->rank, e / cols, e % cols);
                float g = 0;
                for (int q = 0; q < n; q++) // the same shard on the other context ranks
                    if (k[q].tw.l.sh.rank == sh->rank || (sp && t > 1 && norm))
                        g += k[q].tw.l.g[w][e];
                if (k[i].tw.l.w[w][e] != whole.l.w[w][j])
                    fail_msg("rank %d weight %d [%lld] is not the whole layer's", i, w, (long long)e);
                if (!close_to(g, whole.l.g[w][j]))
                    fail_msg("c %d t %d rank (%d, %d) gradient %d [%lld]: %g, the whole "
                             "layer's %g", c, t, sh->crank, sh->rank, w, (long long)e, (double)g,
                             (double)whole.l.g[w][j]);
            }
        }
    }
    for (int i = 0; i < n; i++) twin_free(&k[i].tw), free(k[i].x);
    for (int i = 0; i < c; i++) pthread_barrier_destroy(&tg[i].bar);
    for (int i = 0; i < t; i++) pthread_barrier_destroy(&cg[i].bar);
    twin_free(&whole);
    free(x);
}

/* Two tensor-parallel ranks (sequence parallel when sp) compute the unsplit layer. */
static void check_two_ranks(LayerShape one, int sp) { check_grid(one, 1, 2, sp); }

static void test_two_tensor_ranks_equal_one(void **state) {
    (void)state;
    LayerShape sh = SH;
    sh.dropout = 0.25f;
    check_two_ranks(sh, 0);
}

/* ---- the modern layer: GQA, SwiGLU, RMSNorm, flash attention, sequence parallelism ---- */

/* Two query heads sharing one key/value head of width 3 (not h / heads), SwiGLU, RMSNorm. */
static const LayerShape MODERN = {.samples = 2, .seq = 3, .hidden = 4, .heads = 2, .ffn = 8,
                                  .kv_heads = 1, .head_dim = 3, .swiglu = 1, .rms = 1};

static void test_gradients_modern(void **state) {
    (void)state;
    check_gradients(&MODERN);
    LayerShape flash = MODERN;
    flash.flash = 1;
    check_gradients(&flash);
    LayerShape drop = MODERN; // GQA's grouped GEMMs with the attention dropout
    drop.dropout = 0.25f;
    check_gradients(&drop);
}

static void test_flash_equals_standard(void **state) {
    (void)state; // the same weights (the draw does not depend on the kernel): the same layer
    LayerShape flash = MODERN;
    flash.flash = 1;
    Twin a, b;
    twin_init(&a, &MODERN, 5), twin_init(&b, &flash, 5);
    float x[T * H], r[T * H], ya[T * H], yb[T * H], da[T * H], db[T * H];
    fill(x, T * H, 6), fill(r, T * H, 7);
    pass(&a, OP_F, x, ya), pass(&b, OP_F, x, yb);
    pass(&a, OP_B, r, da), pass(&b, OP_B, r, db);
    pass(&a, OP_W, NULL, NULL), pass(&b, OP_W, NULL, NULL);
    for (int e = 0; e < T * H; e++) assert_true(close_to(yb[e], ya[e]) && close_to(db[e], da[e]));
    for (int w = 0; w < LAYER_WEIGHTS; w++)
        for (int64_t e = 0; e < layer_buf_elems(&MODERN, (LayerBuf)(LB_FIRST_WEIGHT + w)); e++)
            assert_true(close_to(b.l.g[w][e], a.l.g[w][e]));
    assert_int_equal(layer_buf_elems(&flash, LB_SCORE), 0); // no s x s buffer kept or used
    assert_int_equal(layer_buf_elems(&flash, LB_LSE), 2 * 2 * 3);
    twin_free(&a), twin_free(&b);
}

static void test_flash_blocks_equal_standard(void **state) {
    (void)state; // 130 queries: the CPU kernel's three blocks of 64, the last one short
    const LayerShape std = {.samples = 2, .seq = 130, .hidden = 8, .heads = 2, .ffn = 16,
                            .kv_heads = 1, .head_dim = 4, .swiglu = 1, .rms = 1};
    LayerShape fl = std;
    fl.flash = 1;
    int64_t n = 2 * 130 * 8;
    float *x = malloc((size_t)n * 6 * sizeof *x), *r = x + n, *ya = r + n, *yb = ya + n;
    float *da = yb + n, *db = da + n;
    assert_non_null(x);
    fill(x, n, 11), fill(r, n, 12);
    Twin a, b;
    twin_init(&a, &std, 9), twin_init(&b, &fl, 9);
    pass(&a, OP_F, x, ya), pass(&b, OP_F, x, yb);
    pass(&a, OP_B, r, da), pass(&b, OP_B, r, db);
    pass(&a, OP_W, NULL, NULL), pass(&b, OP_W, NULL, NULL);
    for (int64_t e = 0; e < n; e++)
        if (fabsf(yb[e] - ya[e]) > 1e-5f * (1 + fabsf(ya[e])) || fabsf(db[e] - da[e]) > 1e-4f * (1 + fabsf(da[e])))
            fail_msg("element %lld: flash y %g dx %g, standard %g %g", (long long)e, (double)yb[e],
                     (double)db[e], (double)ya[e], (double)da[e]);
    for (int w = 0; w < LAYER_WEIGHTS; w++)
        for (int64_t e = 0; e < layer_buf_elems(&std, (LayerBuf)(LB_FIRST_WEIGHT + w)); e++)
            if (fabsf(b.l.g[w][e] - a.l.g[w][e]) > 1e-4f * (1 + fabsf(a.l.g[w][e])))
                fail_msg("weight %d [%lld]: flash %g, standard %g", w, (long long)e,
                         (double)b.l.g[w][e], (double)a.l.g[w][e]);
    twin_free(&a), twin_free(&b);
    free(x);
}

static void test_two_ranks_modern_and_sequence_parallel(void **state) {
    (void)state;
    LayerShape gqa = MODERN;
    gqa.kv_heads = 2; // t = 2 divides the key/value heads: one each
    check_two_ranks(gqa, 0);
    check_two_ranks(gqa, 1);
    gqa.flash = 1;
    check_two_ranks(gqa, 1);
    LayerShape gpt = SH; // GPT's layer with its dropouts, sequence parallel: the same masks
    gpt.dropout = 0.25f;
    check_two_ranks(gpt, 1);
}

static void test_sequence_parallel_ops(void **state) {
    (void)state; // F: 2 all-gathers, 2 reduce-scatters; B the same; W re-gathers the two
                 // norms' outputs (Korthikanti et al. 2022 section 4.2.2); nothing all-reduced
    LayerShape sh = MODERN;
    sh.kv_heads = 2, sh.tensor = 2, sh.seqpar = 1;
    LayerOp ops[LAYER_OPS_MAX];
    int want[3][3] = {{0, 2, 2}, {0, 2, 2}, {0, 2, 0}}; // all-reduce, all-gather, reduce-scatter
    for (int k = 0; k < 3; k++) {
        int n = layer_ops(&sh, (OpKind)k, ops), got[3] = {0, 0, 0};
        for (int i = 0; i < n; i++)
            got[0] += ops[i].kernel == LK_ALLREDUCE, got[1] += ops[i].kernel == LK_ALLGATHER,
            got[2] += ops[i].kernel == LK_REDUCE_SCATTER;
        for (int c = 0; c < 3; c++) assert_int_equal(got[c], want[k][c]);
    }
    assert_int_equal(layer_buf_elems(&sh, LB_X), T / 2 * H); // the stream: half the tokens
    assert_int_equal(layer_buf_elems(&sh, LB_DO), T * H);    // what W needs: all of them
}

/* ---- context parallelism: c ranks each holding two zigzag chunks of every sample ---- */

static void test_zigzag_positions(void **state) {
    (void)state; // s = 8 in 2c = 4 chunks of 2: rank 0 holds chunks 0 and 3, rank 1 chunks 1, 2
    LayerShape sh = {.samples = 1, .seq = 8, .hidden = 4, .heads = 2, .ffn = 8, .context = 2};
    const int64_t want[2][4] = {{0, 1, 6, 7}, {2, 3, 4, 5}};
    for (int r = 0; r < 2; r++)
        for (int64_t q = 0; q < 4; q++) {
            sh.crank = r;
            assert_int_equal(layer_position(&sh, q), want[r][q]);
        }
    sh.context = 1;
    assert_int_equal(layer_position(&sh, 5), 5);
    assert_int_equal(layer_zigzag(16, 4, 1, 2), 12); // c = 4: rank 1 holds chunks 1 and 6
    assert_int_equal(layer_zigzag(16, 4, 1, 3), 13);
}

/* c = 2 (and 4) context ranks, alone and with t = 2 tensor ranks (with and without sequence
 * parallelism), compute the unsplit layer: GPT's with its dropouts (standard attention: the
 * score, softmax and context kernels, masks drawn by position), and the modern one with GQA
 * (two query heads a key/value head on every rank) in standard and flash attention. */
static void test_context_ranks_equal_one(void **state) {
    (void)state;
    LayerShape gpt = {.samples = 2, .seq = 8, .hidden = 4, .heads = 2, .ffn = 8, .dropout = 0.25f};
    check_grid(gpt, 2, 1, 0);
    check_grid(gpt, 4, 1, 0);
    check_grid(gpt, 2, 2, 0);
    check_grid(gpt, 2, 2, 1);
    LayerShape gqa = {.samples = 2, .seq = 8, .hidden = 8, .heads = 4, .ffn = 8, .kv_heads = 2,
                      .head_dim = 3, .swiglu = 1, .rms = 1};
    for (int flash = 0; flash <= 1; flash++) {
        gqa.flash = (uint8_t)flash;
        check_grid(gqa, 2, 1, 0);
        check_grid(gqa, 2, 2, 0);
        check_grid(gqa, 2, 2, 1);
    }
}

static void test_context_flash_blocks(void **state) {
    (void)state; // chunks of 65 tokens: each runs one block of 64 queries and one of 1, against
                 // the keys up to the block's last position
    const LayerShape fl = {.samples = 2, .seq = 260, .hidden = 8, .heads = 2, .ffn = 16,
                           .kv_heads = 1, .head_dim = 4, .swiglu = 1, .rms = 1, .flash = 1};
    check_grid(fl, 2, 1, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradients),
        cmocka_unit_test(test_gradients_with_dropout),
        cmocka_unit_test(test_dropout_drops_its_share),
        cmocka_unit_test(test_causal_and_per_sample),
        cmocka_unit_test(test_weight_gradients_accumulate),
        cmocka_unit_test(test_two_tensor_ranks_equal_one),
        cmocka_unit_test(test_gradients_modern),
        cmocka_unit_test(test_flash_equals_standard),
        cmocka_unit_test(test_flash_blocks_equal_standard),
        cmocka_unit_test(test_two_ranks_modern_and_sequence_parallel),
        cmocka_unit_test(test_sequence_parallel_ops),
        cmocka_unit_test(test_zigzag_positions),
        cmocka_unit_test(test_context_ranks_equal_one),
        cmocka_unit_test(test_context_flash_blocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
