/* tests/test_layer.c: the CPU twin (layer_ops' lists in fp32) against finite differences
 * (input gradient and every weight's gradient, the layer norms' included, of loss = sum(y R)),
 * with and without dropout; causality and sample independence of its attention; dropouts
 * that drop their share and the same elements in B as in F; W accumulating; and a layer split
 * over two tensor-parallel ranks (two threads, an in-process all-reduce) computing exactly the
 * unsplit layer's output and gradients. Shapes are tiny so every entry is checked. */
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

/* ---- two tensor-parallel ranks on two threads ---- */

typedef struct {
    pthread_barrier_t bar;
    float *slot[2];
    int64_t n;
} Pair;

typedef struct {
    Pair *pair;
    int rank;
} PairComm;

/* Sums the two ranks' buffers: each posts its buffer, both add the other's into a copy of
 * their own, then both write back (three barriers, so neither overwrites what the other
 * still reads). */
static int pair_allreduce(void *ctx, float *buf, int64_t n) {
    PairComm *c = ctx;
    Pair *p = c->pair;
    p->slot[c->rank] = buf, p->n = n;
    pthread_barrier_wait(&p->bar);
    float *mine = malloc((size_t)n * sizeof *mine);
    const float *other = p->slot[1 - c->rank];
    for (int64_t i = 0; mine && i < n; i++) mine[i] = buf[i] + other[i];
    pthread_barrier_wait(&p->bar);
    if (mine) memcpy(buf, mine, (size_t)n * sizeof *mine);
    free(mine);
    pthread_barrier_wait(&p->bar);
    return mine ? 0 : -1;
}

typedef struct {
    Twin tw;
    PairComm pc;
    const float *x, *r;
    float y[T * H], dx[T * H];
    int rc;
} Rank;

static void *rank_main(void *arg) {
    Rank *k = arg;
    LayerComm comm = {&k->pc, pair_allreduce};
    k->rc = layer_pass(&k->tw.l, OP_F, &k->tw.a, &k->tw.s, k->x, k->y, &comm);
    if (!k->rc) k->rc = layer_pass(&k->tw.l, OP_B, &k->tw.a, &k->tw.s, k->r, k->dx, &comm);
    if (!k->rc) k->rc = layer_pass(&k->tw.l, OP_W, &k->tw.a, &k->tw.s, NULL, NULL, &comm);
    return NULL;
}

/* Element (i, j) of rank r's shard of weight w, in the whole layer's weight (rows, cols). */
static int64_t whole_index(int w, int r, int64_t i, int64_t j) {
    int64_t h = H, hq = H / 2, fl = 4;
    switch (LB_FIRST_WEIGHT + w) {
    case LB_WQKV: return i * 3 * h + (j / hq) * h + r * hq + j % hq; // q, k, v blocks
    case LB_WO: return (r * hq + i) * h + j;
    case LB_W1: return i * 8 + r * fl + j;
    case LB_W2: return (r * fl + i) * h + j;
    default: return i * 0 + j; // the layer norms: replicated
    }
}

static int64_t shard_cols(int w) {
    static const int64_t cols[LAYER_WEIGHTS] = {3 * H / 2, H, 4, H, 2 * H, 2 * H};
    return cols[w];
}

static void test_two_tensor_ranks_equal_one(void **state) {
    (void)state;
    LayerShape one = SH, two = SH;
    one.dropout = two.dropout = 0.25f;
    two.tensor = 2;
    float x[T * H], r[T * H];
    fill(x, T * H, 3), fill(r, T * H, 4);
    Twin whole;
    twin_init(&whole, &one, 21);
    float y[T * H], dx[T * H];
    pass(&whole, OP_F, x, y);
    pass(&whole, OP_B, r, dx);
    pass(&whole, OP_W, NULL, NULL);
    Pair pair;
    pthread_barrier_init(&pair.bar, NULL, 2);
    Rank k[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        LayerShape sh = two;
        sh.rank = i;
        twin_init(&k[i].tw, &sh, 21);
        k[i].pc = (PairComm){&pair, i};
        k[i].x = x, k[i].r = r;
        assert_int_equal(pthread_create(&th[i], NULL, rank_main, &k[i]), 0);
    }
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(k[i].rc, 0);
        for (int e = 0; e < T * H; e++) {
            assert_true(fabsf(k[i].y[e] - y[e]) <= 1e-5f * (1 + fabsf(y[e])));
            assert_true(fabsf(k[i].dx[e] - dx[e]) <= 1e-5f * (1 + fabsf(dx[e])));
        }
        for (int w = 0; w < LAYER_WEIGHTS; w++) {
            int64_t n = layer_buf_elems(&k[i].tw.l.sh, (LayerBuf)(LB_FIRST_WEIGHT + w));
            for (int64_t e = 0; e < n; e++) {
                int64_t at = whole_index(w, i, e / shard_cols(w), e % shard_cols(w));
                if (fabsf(k[i].tw.l.w[w][e] - whole.l.w[w][at]) > 0)
                    fail_msg("rank %d weight %d [%lld] is not the whole layer's", i, w, (long long)e);
                if (fabsf(k[i].tw.l.g[w][e] - whole.l.g[w][at]) > 1e-5f * (1 + fabsf(whole.l.g[w][at])))
                    fail_msg("rank %d gradient %d [%lld]: %g, the whole layer's %g", i, w,
                             (long long)e, (double)k[i].tw.l.g[w][e], (double)whole.l.g[w][at]);
            }
        }
        twin_free(&k[i].tw);
    }
    pthread_barrier_destroy(&pair.bar);
    twin_free(&whole);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradients),
        cmocka_unit_test(test_gradients_with_dropout),
        cmocka_unit_test(test_dropout_drops_its_share),
        cmocka_unit_test(test_causal_and_per_sample),
        cmocka_unit_test(test_weight_gradients_accumulate),
        cmocka_unit_test(test_two_tensor_ranks_equal_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
