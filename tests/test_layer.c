/* tests/test_layer.c: the CPU twin (layer_ops' lists in fp32) against finite differences (input and weight
 * gradients of loss = sum(y * R)), causality and sample independence of its attention, and
 * W accumulating. Shapes are tiny so every entry is checked. */
#include <math.h>
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

static void fill(float *v, int n, uint32_t seed) {
    for (int i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        v[i] = (float)(seed >> 8) / (float)(1u << 24) - 0.5f;
    }
}

/* sum(y * r) for input x, in double. */
static LayerScratch scr; // one pass at a time, as a device runs them

static double loss(Layer *l, LayerActs *a, const float *x, const float *r) {
    float y[T * H];
    layer_pass(l, OP_F, a, &scr, x, y);
    double sum = 0;
    for (int i = 0; i < T * H; i++) sum += (double)y[i] * r[i];
    return sum;
}

static void expect_close(double num, double ana, const char *what, int i) {
    if (fabs(num - ana) > 2e-3 + 2e-2 * fabs(ana))
        fail_msg("%s[%d]: finite difference %.6f, analytic %.6f", what, i, num, ana);
}

static void test_gradients(void **state) {
    (void)state;
    Layer l;
    LayerActs a;
    assert_int_equal(layer_init(&l, &SH, 7), 0);
    assert_int_equal(layer_acts_init(&a, &SH), 0);
    float x[T * H], r[T * H], dx[T * H];
    fill(x, T * H, 1), fill(r, T * H, 2);
    float y[T * H];
    layer_pass(&l, OP_F, &a, &scr, x, y);
    layer_pass(&l, OP_B, &a, &scr, r, dx);
    layer_pass(&l, OP_W, &a, &scr, NULL, NULL);
    const float eps = 1e-2f;
    for (int i = 0; i < T * H; i++) {
        float xp[T * H], xm[T * H];
        memcpy(xp, x, sizeof x), memcpy(xm, x, sizeof x);
        xp[i] += eps, xm[i] -= eps;
        expect_close((loss(&l, &a, xp, r) - loss(&l, &a, xm, r)) / (2 * eps), dx[i], "dx", i);
    }
    struct { float *w, *g; int n; const char *name; } ws[] = {
        {l.w_qkv, l.g_qkv, H * 3 * H, "W_qkv"}, {l.w_o, l.g_o, H * H, "W_o"},
        {l.w_1, l.g_1, H * 8, "W_1"}, {l.w_2, l.g_2, 8 * H, "W_2"}};
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < ws[k].n; i++) {
            float keep = ws[k].w[i];
            ws[k].w[i] = keep + eps;
            double up = loss(&l, &a, x, r);
            ws[k].w[i] = keep - eps;
            double down = loss(&l, &a, x, r);
            ws[k].w[i] = keep;
            expect_close((up - down) / (2 * eps), ws[k].g[i], ws[k].name, i);
        }
    layer_acts_free(&a);
    layer_free(&l);
}

static void test_causal_and_per_sample(void **state) {
    (void)state; // token 2 of sample 0 changes nothing before it, nor anything in sample 1
    Layer l;
    LayerActs a;
    assert_int_equal(layer_init(&l, &SH, 3), 0);
    assert_int_equal(layer_acts_init(&a, &SH), 0);
    float x[T * H], y0[T * H], y1[T * H];
    fill(x, T * H, 5);
    layer_pass(&l, OP_F, &a, &scr, x, y0);
    for (int c = 0; c < H; c++) x[2 * H + c] += 1.0f;
    layer_pass(&l, OP_F, &a, &scr, x, y1);
    assert_memory_equal(y0, y1, 2 * H * sizeof(float));               // tokens 0, 1
    assert_memory_not_equal(y0 + 2 * H, y1 + 2 * H, H * sizeof(float)); // token 2
    assert_memory_equal(y0 + 3 * H, y1 + 3 * H, 3 * H * sizeof(float)); // sample 1
    layer_acts_free(&a);
    layer_free(&l);
}

static void test_weight_gradients_accumulate(void **state) {
    (void)state;
    Layer l;
    LayerActs a;
    assert_int_equal(layer_init(&l, &SH, 11), 0);
    assert_int_equal(layer_acts_init(&a, &SH), 0);
    float x[T * H], r[T * H], y[T * H], dx[T * H], once[8 * H];
    fill(x, T * H, 8), fill(r, T * H, 9);
    layer_pass(&l, OP_F, &a, &scr, x, y);
    layer_pass(&l, OP_B, &a, &scr, r, dx);
    layer_pass(&l, OP_W, &a, &scr, NULL, NULL);
    memcpy(once, l.g_2, sizeof once);
    layer_pass(&l, OP_W, &a, &scr, NULL, NULL);
    for (int i = 0; i < 8 * H; i++) assert_true(l.g_2[i] == 2 * once[i]);
    layer_acts_free(&a);
    layer_free(&l);
}

static int scratch_up(void **state) {
    (void)state;
    return layer_scratch_init(&scr, &SH);
}

static int scratch_down(void **state) {
    (void)state;
    layer_scratch_free(&scr);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradients),
        cmocka_unit_test(test_causal_and_per_sample),
        cmocka_unit_test(test_weight_gradients_accumulate),
    };
    return cmocka_run_group_tests(tests, scratch_up, scratch_down);
}
