/* tests/test_roofline.c: the roofline cost model against its closed forms, one term at a
 * time, by switching the others off: GEMMs at peak x gemm_efficiency (24bsh^2 per pass when
 * every depth is at least 4096 and no wave quantization), memory-bound kernels at their bytes
 * over the bandwidth, launches at launch_us each, the tensor-parallel ring all-reduce's
 * 2(t-1) steps and 2(t-1)/t of its bytes, wave quantization on a shape whose tiles are
 * counted by hand, and the per-op overhead: a chunk costs its kernels and one overhead. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sim/model/cost.h"
#include "sim/model/layer_ops.h"
#include "sim/plan/plan.h"
#include "sim/scenario/scenario.h"
#include "sim/sched/schedule.h"

#include "priced_fixture.h"

/* 6 layers on 3 stages (h = 4096: the layer's GEMMs at least 4096 deep but the attention's
 * and W's, which go through the 2048 tokens), on a GPU with peak 1000 TFLOP/s. The checks
 * read stage 1, which has neither the embedding (stage 0: its gather, scatter and
 * vocabulary-parallel all-reduce) nor the LM head (stage 2). */
#define BASE                                                                                   \
    "[model]\nlayers = 6\nhidden = 4096\nheads = 32\nseq_len = 2048\nvocab = 128\n"           \
    "[batch]\nmicro_batches = 6\n[pipeline]\nstages = 3\nschedule = 1f1b\n"                    \
    "[hardware]\ngpu = h100\npeak_tflops = 1000\ngemm_efficiency = 0.8\n"

static void price(Priced *x, const char *text, int n, ...) {
    const char *sets[8];
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) sets[i] = va_arg(ap, const char *);
    va_end(ap);
    priced_build(x, text, "t.scn", sets, n);
}

static double split(const Priced *x, int32_t st, OpKind k, int cls) {
    return cost_op_split(&x->c, st, k)[cls];
}

static void assert_rel(double got, double want, double tol) {
    if (fabs(got - want) > tol * fabs(want)) fail_msg("got %.17g, want %.17g", got, want);
}

/* The shape the cost model prices for x's scenario (one rank). */
static LayerShape shape(const Priced *x) {
    const ScnModel *m = &x->s.model;
    return (LayerShape){.samples = 1, .seq = (int32_t)m->seq_len, .hidden = (int32_t)m->hidden,
                        .heads = (int32_t)m->heads, .ffn = (int32_t)m->ffn_hidden,
                        .tensor = (int32_t)x->s.parallel.tensor, .dropout = (float)m->dropout,
                        .elem = 2, .vocab = (int32_t)m->vocab};
}

/* Sum over one layer's op list for pass k of what pick says (ops of class cls; -1: all). */
static double ops_sum(const LayerShape *sh, OpKind k, int cls, double (*pick)(const LayerOp *)) {
    LayerOp ops[LAYER_OPS_MAX];
    double sum = 0;
    for (int i = 0, n = layer_ops(sh, k, ops); i < n; i++)
        if (cls < 0 || ops[i].cls == cls) sum += pick(&ops[i]);
    return sum;
}
static double op_bytes(const LayerOp *o) { return o->bytes; }
static double op_launches(const LayerOp *o) { return (double)o->repeat; }

static void test_gemms_at_peak_times_efficiency(void **state) {
    (void)state; // no wave quantization (sms = 0): QKV, the projection and the MLP's two GEMMs
                 // are 24bsh^2 FLOPs in each of F, B and W, all at 1000 x 0.8 TFLOP/s; W's
                 // go through the 2048 tokens, depth (2048/2112) / (4096/4160)
    Priced x, y;
    price(&x, BASE, 1, "hardware.sms=0");
    double h = 4096, s = 2048, rate = 1000e12 * 0.8 / 1e9; // FLOP per ns
    double w_depth = (2048.0 / 2112) / (4096.0 / 4160);
    for (int k = OP_F; k <= OP_W; k++)
        assert_rel(split(&x, 1, (OpKind)k, LC_GEMM),
                   2 * 24 * s * h * h / rate / (k == OP_W ? w_depth : 1), 1e-12);
    // half the efficiency, twice the time
    price(&y, BASE, 2, "hardware.sms=0", "hardware.gemm_efficiency=0.4");
    assert_rel(split(&y, 1, OP_F, LC_GEMM), 2 * split(&x, 1, OP_F, LC_GEMM), 1e-12);
    priced_free(&x), priced_free(&y);
}

static void test_memory_bound_and_launches(void **state) {
    (void)state; // the layer norms, GELU, residual adds and copies at their bytes over
                 // 3350 x 0.9 GB/s (the h100 preset's HBM); every launch 4 us (its launch)
    Priced x, y;
    price(&x, BASE, 0);
    LayerShape sh = shape(&x);
    double bw = 3350 * 0.9; // bytes per ns
    for (int k = OP_F; k <= OP_W; k++) {
        assert_rel(split(&x, 1, (OpKind)k, LC_MEMORY),
                   2 * ops_sum(&sh, (OpKind)k, LC_MEMORY, op_bytes) / bw, 1e-12);
        assert_rel(split(&x, 1, (OpKind)k, COST_LAUNCH),
                   2 * ops_sum(&sh, (OpKind)k, -1, op_launches) * 4e3, 1e-12);
    }
    // launch_us = 10: only the launch class moves, by 10/4
    price(&y, BASE, 1, "hardware.launch_us=10");
    assert_rel(split(&y, 1, OP_B, COST_LAUNCH), 2.5 * split(&x, 1, OP_B, COST_LAUNCH), 1e-12);
    assert_rel(split(&y, 1, OP_B, LC_GEMM), split(&x, 1, OP_B, LC_GEMM), 1e-12);
    assert_rel(split(&y, 1, OP_B, LC_MEMORY), split(&x, 1, OP_B, LC_MEMORY), 1e-12);
    priced_free(&x), priced_free(&y);
}

static void test_tensor_parallel_ring(void **state) {
    (void)state; // t = 4 on NVLink 450 GB/s x 0.8: each of F's and B's two all-reduces of
                 // b s h bf16 bytes takes 2(t-1) x 2 us + 2(t-1)/t bytes / bw; W has none
    Priced x;
    price(&x, BASE, 1, "parallel.tensor=4");
    double bytes = 2048.0 * 4096 * 2, bw = 450 * 0.8;
    double ring = 2 * 3 * 2e3 + 2.0 * 3 / 4 * bytes / bw;
    assert_rel(split(&x, 1, OP_F, LC_COMM), 2 * 2 * ring, 1e-12);
    assert_rel(split(&x, 1, OP_B, LC_COMM), 2 * 2 * ring, 1e-12);
    assert_true(split(&x, 1, OP_W, LC_COMM) == 0);
    Priced y; // half of it hidden
    price(&y, BASE, 2, "parallel.tensor=4", "parallel.tp_overlap=0.5");
    assert_rel(split(&y, 1, OP_F, LC_COMM), 2 * ring, 1e-12);
    priced_free(&x), priced_free(&y);
}

static void test_wave_quantization(void **state) {
    (void)state; // h = 4096, t = 4 on 132 SMs, M = 2048 tokens. 128x256 tiles (weight 1):
    // the projection (N 4096, K 1024), MLP up (N 4096) and down (N 4096, K 4096) make 16 x 16
    // = 256 tiles, 2 waves of 132 = 264 slots: 256/264 (128x128 tiles: 512 in 4 waves of
    // 528, 0.9 x 512/528 = 0.873, lose). QKV (N 3072): 128x256 gives 192 tiles in 2 waves,
    // 192/264 = 0.727; 128x128 (weight 0.9) 384 tiles in 3 waves, 0.9 x 384/396 = 0.873,
    // wins. The projection's K = 1024 adds its depth factor (1024/1088) / (4096/4160).
    Priced q, flat;
    price(&q, BASE, 1, "parallel.tensor=4");
    price(&flat, BASE, 2, "parallel.tensor=4", "hardware.sms=0");
    double h = 4096, s = 2048, rate = 1000e12 * 0.8 / 1e9;
    double depth = (1024.0 / 1088) / (4096.0 / 4160);
    double qkv = 2 * s * h * 3 * h / 4, proj = 2 * s * h / 4 * h, up = 2 * s * h * h, down = up;
    double want = qkv / (rate * 0.9 * 384 / 396) + proj / (rate * 256.0 / 264 * depth) +
                  up / (rate * 256.0 / 264) + down / (rate * 256.0 / 264);
    assert_rel(split(&q, 1, OP_F, LC_GEMM), 2 * want, 1e-12);
    assert_true(split(&flat, 1, OP_F, LC_GEMM) < split(&q, 1, OP_F, LC_GEMM));
    priced_free(&q), priced_free(&flat);
}

static void test_chunks_cost_their_kernels_and_one_overhead(void **state) {
    (void)state; // interleaved v = 2 over p = 3: a chunk of 1 layer costs half a stage of 2,
                 // and with op_overhead_us = 50 each op adds 50 us once
    Priced one, two, over;
    price(&one, BASE, 0);
    price(&two, BASE, 2, "pipeline.schedule=interleaved", "pipeline.chunks=2");
    price(&over, BASE, 3, "pipeline.schedule=interleaved", "pipeline.chunks=2",
          "hardware.op_overhead_us=50");
    // stage 1 of one (layers 2-3) vs stage 1 of two (layer 1): neither has embedding or head
    for (int k = OP_F; k <= OP_W; k++) {
        int64_t a = cost_op_ns(&one.c, 1, (OpKind)k), b = cost_op_ns(&two.c, 1, (OpKind)k);
        assert_true(llabs(a - 2 * b) <= 2);
        assert_int_equal(cost_op_ns(&over.c, 1, (OpKind)k) - b, 50000);
    }
    // BW is one op: one overhead, not two
    assert_int_equal(cost_op_ns(&over.c, 1, OP_BW) - cost_op_ns(&two.c, 1, OP_BW), 50000);
    priced_free(&one), priced_free(&two), priced_free(&over);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemms_at_peak_times_efficiency),
        cmocka_unit_test(test_memory_bound_and_launches),
        cmocka_unit_test(test_tensor_parallel_ring),
        cmocka_unit_test(test_wave_quantization),
        cmocka_unit_test(test_chunks_cost_their_kernels_and_one_overhead),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
