/* tests/test_modern.c: the models people train now, end to end through psim's steps: Llama 3.1
 * 405B in the Llama 3 report's layout (tensor 8 with sequence parallelism, pipeline 16,
 * data 128, selective recomputation, optimizer state and gradients sharded) fits an 80 GiB
 * H100, and what sequence parallelism and ZeRO each save is exactly what the formulas say:
 * the residual stream's 8h bytes a token (norms' inputs and outputs, no dropout) kept whole
 * instead of 1/t, and 12 bytes of Adam state and 2 of bf16 gradient a parameter kept whole
 * instead of 1/d. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "sim_fixture.h"
#include "sim/model/layer_ops.h"
#include "sim/model/memory.h"

#define LLAMA405 "scenarios/llama3-405b.scn"

static void test_405b_fits_and_each_saving_is_the_formulas(void **state) {
    (void)state;
    Sim base, no_sp, no_zero;
    sim_run_file(&base, LLAMA405, NULL, 0);
    const char *sp_off[] = {"parallel.sequence=false"}, *zero_off[] = {"parallel.zero=0"};
    sim_run_file(&no_sp, LLAMA405, sp_off, 1);
    sim_run_file(&no_zero, LLAMA405, zero_off, 1);
    const ScnModel *m = &base.s.model;
    double s = (double)m->seq_len, h = (double)m->hidden, t = 8, d = 128;
    for (int32_t dev = 0; dev < base.mt.devices; dev++) {
        const DeviceMetrics *a = &base.mt.dev[dev], *b = &no_sp.mt.dev[dev], *c = &no_zero.mt.dev[dev];
        if (a->peak_memory_gib >= 80)
            fail_msg("device %d needs %.2f GiB of 80", dev, a->peak_memory_gib);
        // without sequence parallelism every held (micro-batch, chunk) keeps its layers' norm
        // inputs and outputs whole: 8h bytes a token, (1 - 1/t) more (the layers in between
        // are the same; device 0 and 15 also hold the embedding's or head's part)
        if (dev > 0 && dev < 15) {
            double layers_per_chunk = 4, extra = (double)a->peak_activations * layers_per_chunk *
                                                 s * 8 * h * (1 - 1 / t);
            double got = (b->activations_gib - a->activations_gib) * GIB;
            if (fabs(got - extra) > 1e-9 * extra)
                fail_msg("device %d: sequence parallelism saves %.6g bytes, the formula %.6g", dev, got, extra);
            assert_int_equal(b->peak_activations, a->peak_activations);
        }
        // without ZeRO the Adam state (12 bytes a parameter) and the gradients (2) are whole
        double params = a->weights_gib * GIB / 2; // bf16 weights
        double extra = 14 * params * (1 - 1 / d);
        double got = (c->optimizer_gib + c->grads_gib - a->optimizer_gib - a->grads_gib) * GIB;
        if (fabs(got - extra) > 1e-9 * extra)
            fail_msg("device %d: ZeRO-2 saves %.6g bytes, the formula %.6g", dev, got, extra);
        assert_true(b->peak_memory_gib > a->peak_memory_gib && c->peak_memory_gib > a->peak_memory_gib);
    }
    assert_true(no_zero.mt.dev[1].peak_memory_gib > 80); // neither saving can be left out
    assert_true(no_sp.mt.dev[1].peak_memory_gib > 80);
    // the layout of the report: 16,384 GPUs, 16M tokens a step
    assert_int_equal(base.mt.devices_total, 16384);
    assert_int_equal(base.mt.global_batch * m->seq_len, 16777216);
    sim_free(&base), sim_free(&no_sp), sim_free(&no_zero);
}

/* Context parallelism: a rank runs 1/c of every GEMM and of causal attention (its s/c
 * queries against all s keys), all-gathers K and V in F and reduce-scatters their gradients
 * in B (c n elements of each), and keeps 1/c of the activations plus the gathered K and V. */
static void test_context_parallel_closed_forms(void **state) {
    (void)state;
    const ScnModel m = {.layers = 1, .hidden = 256, .heads = 8, .kv_heads = 2, .head_dim = 32,
                        .seq_len = 1024, .vocab = 512, .ffn_hidden = 704, .mlp = MLP_SWIGLU,
                        .norm = NORM_RMSNORM, .attention = ATTENTION_FLASH, .dtype = DTYPE_BF16};
    for (int flash = 0; flash < 2; flash++)
        for (int32_t c = 2; c <= 8; c *= 2) {
            ScnModel mm = m;
            mm.attention = flash ? ATTENTION_FLASH : ATTENTION_STANDARD;
            LayerShape one = cost_model_shape(&mm, 2), cp = one;
            one.tensor = cp.tensor = 2, cp.context = c;
            for (int k = 0; k < 3; k++) {
                double f1 = layer_ops_flops(&one, (OpKind)k), fc = layer_ops_flops(&cp, (OpKind)k);
                if (fabs(fc * c - f1) > 1e-12 * f1)
                    fail_msg("flash %d c %d pass %d: %.17g FLOPs a rank, %.17g / c", flash, c, k, fc, f1);
            }
            LayerOp ops[LAYER_OPS_MAX];
            int want[2] = {LK_ALLGATHER, LK_REDUCE_SCATTER}, found = 0;
            for (int k = 0; k < 2; k++) {
                int n = layer_ops(&cp, k ? OP_B : OP_F, ops);
                for (int i = 0; i < n; i++) {
                    if (!ops[i].over) continue;
                    found++;
                    assert_int_equal(ops[i].kernel, want[k]);
                    // this rank's b s / c tokens of K and V (2 x kv width / t), c of them moved
                    double elems = 2.0 * 1024 / c * 2 * (2 * 32 / 2);
                    assert_true(ops[i].n == (int64_t)elems);
                    assert_true(ops[i].bytes == 2.0 * c * elems);
                }
            }
            assert_int_equal(found, 2);
            for (int sp = 0; sp < 2; sp++) {
                double kv = 2.0 * 2 * (2 * 32) / 2 * 1024 * 2; // K and V of every token, / t
                double got = memory_layer_activation_bytes_cp(&mm, 2, 2, sp, c);
                double want_bytes = memory_layer_activation_bytes_sp(&mm, 2, 2, sp) / c + kv;
                assert_true(fabs(got - want_bytes) < 1e-12 * want_bytes);
            }
        }
}

/* Llama 3.1 405B at 131,072 tokens in the report's long-context layout (tensor 8, context 16,
 * pipeline 16, data 8 on 16,384 GPUs, 16M tokens a step): the middle stages fit with c = 16
 * and would need about 16 times the activations without. (The last, with the LM head's
 * logits of all 32 (micro-batch, chunk) pairs that Megatron-LM's interleaved schedule holds
 * when m = p, needs 84 GiB here; the report's own schedule orders them otherwise.) */
static void test_405b_long_context(void **state) {
    (void)state;
    const char *sets[] = {"model.seq_len=131072", "parallel.context=16", "parallel.data=8"};
    Sim x;
    sim_run_file(&x, LLAMA405, sets, 3);
    assert_int_equal(x.mt.devices_total, 16384);
    assert_int_equal(x.mt.global_batch * x.s.model.seq_len, 16777216);
    for (int32_t d = 1; d < x.mt.devices - 1; d++)
        if (x.mt.dev[d].peak_memory_gib >= 80)
            fail_msg("device %d needs %.2f GiB of 80", d, x.mt.dev[d].peak_memory_gib);
    double act = x.mt.dev[1].activations_gib;
    sim_free(&x);
    const char *one[] = {"model.seq_len=131072", "parallel.context=1", "parallel.data=128"};
    sim_run_file(&x, LLAMA405, one, 3);
    assert_true(x.mt.dev[1].activations_gib > 10 * act);
    sim_free(&x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_405b_fits_and_each_saving_is_the_formulas),
        cmocka_unit_test(test_context_parallel_closed_forms),
        cmocka_unit_test(test_405b_long_context),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
