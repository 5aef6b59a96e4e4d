/* tests/test_cost.c: the cost, memory and metrics models against the literature:
 * Qi et al. 2023 Table 1 (F, B, W FLOPs of a layer), Narayanan et al. 2021 eq. 3 (FLOPs per
 * iteration), Korthikanti et al. 2022 eq. 1 (activation bytes), parameter counts of GPT-3
 * 13B, alpha-beta transfer times, and the metrics' definitions on a hand-checkable run. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sim/model/cost.h"
#include "sim/engine/engine.h"
#include "sim/model/memory.h"
#include "sim/metrics/memory_trace.h"
#include "sim/metrics/metrics.h"
#include "sim/plan/plan.h"
#include "sim/sched/schedule.h"

/* GPT-3 13B on p = 8 H100s, bf16, as in scenarios/gpt13b.scn, without the parser. */
static Scenario gpt13b(void) {
    Scenario s;
    memset(&s, 0, sizeof s);
    strcpy(s.model.name, "gpt13b");
    s.model.layers = 40, s.model.hidden = 5120, s.model.heads = 40, s.model.seq_len = 2048;
    s.model.vocab = 51200, s.model.ffn_hidden = 4 * 5120, s.model.dtype = DTYPE_BF16;
    s.model.bias = s.model.tied_embeddings = 1; // GPT: biases, one embedding matrix
    s.batch.micro_batch_size = 1, s.batch.micro_batches = 32, s.batch.iterations = 1;
    s.pipeline.stages = 8, s.pipeline.chunks = 1, s.pipeline.partition = PART_UNIFORM;
    strcpy(s.pipeline.schedule, "1f1b");
    strcpy(s.hw.gpu, "h100");
    s.hw.peak_tflops = 989, s.hw.cost_model = COST_FLAT, s.hw.efficiency = 0.5, s.hw.memory_gib = 80, s.hw.gpus_per_node = 4;
    s.net.intra_bandwidth_gbs = 450, s.net.intra_latency_us = 10;
    s.net.inter_bandwidth_gbs = 50, s.net.inter_latency_us = 20;
    s.costs.forward_ms = s.costs.backward_ms = s.costs.weight_ms = s.costs.comm_ms = -1;
    strcpy(s.path, "gpt13b.scn");
    return s;
}

static void assert_rel(double got, double want, double tol) {
    if (fabs(got - want) > tol * fabs(want)) fail_msg("got %.17g, want %.17g", got, want);
}

static void test_layer_flops_qi_table1(void **state) {
    (void)state; // F = 24bsh^2 + 4bs^2h, B = 24bsh^2 + 8bs^2h, W = 24bsh^2 (f = 4h)
    Scenario s = gpt13b();
    double f, b, w, B = 4, S = 2048, H = 5120;
    cost_layer_flops(&s.model, 4, &f, &b, &w);
    assert_rel(f, 24 * B * S * H * H + 4 * B * S * S * H, 1e-15);
    assert_rel(b, 24 * B * S * H * H + 8 * B * S * S * H, 1e-15);
    assert_rel(w, 24 * B * S * H * H, 1e-15);
    assert_rel(cost_head_flops(&s.model, 4), 2 * B * S * H * 51200, 1e-15);
}

static void test_iteration_flops_narayanan(void **state) {
    CostPartition cp;
    (void)state; // 72 B s l h^2 (1 + s/(6h) + V/(12hl)) per iteration, B = m*b samples
    Scenario s = gpt13b();
    Plan pl;
    CostModel c;
    char err[256];
    assert_int_equal(plan_build(&s, cost_partition_init(&cp, &s), &pl, err, sizeof err), 0);
    assert_int_equal(cost_build(&s, &pl, &c, err, sizeof err), 0);
    double total = 0;
    for (int32_t st = 0; st < c.stages; st++)
        total += cost_op_flops(&c, st, OP_F) + cost_op_flops(&c, st, OP_BW);
    double B = 32, S = 2048, L = 40, H = 5120, V = 51200;
    assert_rel(total * 32, 72 * B * S * L * H * H * (1 + S / (6 * H) + V / (12 * H * L)), 1e-12);
    cost_free(&c);
    plan_free(&pl);
}

static void test_op_times_and_links(void **state) {
    CostPartition cp;
    (void)state;
    Scenario s = gpt13b();
    Plan pl;
    CostModel c;
    char err[256];
    assert_int_equal(plan_build(&s, cost_partition_init(&cp, &s), &pl, err, sizeof err), 0);
    assert_int_equal(cost_build(&s, &pl, &c, err, sizeof err), 0);
    double f, b, w;
    cost_layer_flops(&s.model, 1, &f, &b, &w);
    // 5 layers at 989 x 0.5 TFLOP/s; ns rounded to nearest
    assert_int_equal(cost_op_ns(&c, 0, OP_F), llround(5 * f / (989e12 * 0.5) * 1e9));
    assert_int_equal(cost_op_ns(&c, 3, OP_BW), cost_op_ns(&c, 3, OP_B) + cost_op_ns(&c, 3, OP_W));
    double head = cost_head_flops(&s.model, 1);
    assert_int_equal(cost_op_ns(&c, 7, OP_F), llround((5 * f + head) / (989e12 * 0.5) * 1e9));
    // one activation: b s h x 2 bytes = 20 MiB; 10 us + bytes / 450 GB/s inside a node
    assert_int_equal(c.xfer_bytes, 2048 * 5120 * 2);
    assert_int_equal(cost_xfer_ns(&c, 0, 1), llround(10e3 + 2048.0 * 5120 * 2 / 450));
    assert_int_equal(cost_xfer_ns(&c, 3, 4), llround(20e3 + 2048.0 * 5120 * 2 / 50)); // 4 per node
    assert_int_equal(cost_xfer_ns(&c, 5, 4), cost_xfer_ns(&c, 4, 5));
    cost_free(&c);
    s.costs.forward_ms = 3, s.costs.backward_ms = 5, s.costs.weight_ms = 1, s.costs.comm_ms = 0.5;
    s.pipeline.chunks = 2, s.model.layers = 48; // explicit times are per device; each chunk takes half
    plan_free(&pl);
    assert_int_equal(plan_build(&s, cost_partition_init(&cp, &s), &pl, err, sizeof err), 0);
    assert_int_equal(cost_build(&s, &pl, &c, err, sizeof err), 0);
    assert_int_equal(cost_op_ns(&c, 15, OP_F), 1500000);
    assert_int_equal(cost_op_ns(&c, 15, OP_BW), 3000000);
    assert_int_equal(cost_xfer_ns(&c, 3, 4), 500000);
    cost_free(&c);
    plan_free(&pl);
}

static void test_absurd_costs_rejected(void **state) {
    CostPartition cp;
    (void)state; // a run longer than the int64 ns clock can hold is refused, not wrapped
    Scenario s = gpt13b();
    s.hw.peak_tflops = 1e-9;
    Plan pl;
    CostModel c;
    char err[256];
    assert_int_equal(plan_build(&s, cost_partition_init(&cp, &s), &pl, err, sizeof err), 0);
    assert_int_equal(cost_build(&s, &pl, &c, err, sizeof err), 2);
    assert_non_null(strstr(err, "gpt13b.scn: the ops of this run add up to"));
    assert_non_null(strstr(err, "beyond the simulator's clock"));
    cost_free(&c);
    plan_free(&pl);
}

static void test_params_gpt13b(void **state) {
    (void)state; // 12h^2 + 13h per layer; with embeddings GPT-3 13B has about 12.9e9
    Scenario s = gpt13b();
    assert_rel(memory_layer_params(&s.model), 12.0 * 5120 * 5120 + 13.0 * 5120, 1e-15);
    double total = 40 * memory_layer_params(&s.model) + (51200.0 + 2048) * 5120 + 2 * 5120;
    assert_true(total > 12.8e9 && total < 13.0e9);
}

static void test_activations_korthikanti(void **state) {
    (void)state; // sbh(34 + 5as/h) bytes per layer for 16-bit, doubled for fp32, with
                 // dropout as in Korthikanti et al. 2022
    Scenario s = gpt13b();
    s.model.dropout = 0.1;
    double want = 2048.0 * 2 * 5120 * (34 + 5.0 * 40 * 2048 / 5120);
    assert_rel(memory_layer_activation_bytes(&s.model, 2), want, 1e-15);
    s.model.dtype = DTYPE_FP32;
    assert_rel(memory_layer_activation_bytes(&s.model, 2), 2 * want, 1e-15);
    s.model.dtype = DTYPE_BF16; // eq. 2 and 3: selective 34sbh, full 2sbh
    s.model.recompute = RECOMPUTE_SELECTIVE;
    assert_rel(memory_layer_activation_bytes(&s.model, 2), 2048.0 * 2 * 5120 * 34, 1e-15);
    s.model.recompute = RECOMPUTE_FULL;
    assert_rel(memory_layer_activation_bytes(&s.model, 2), 2048.0 * 2 * 5120 * 2, 1e-15);
}

static void test_recompute_time(void **state) {
    CostPartition cp;
    (void)state; // full recompute adds one forward to B, selective the attention core
    Scenario s = gpt13b();
    Plan pl;
    CostModel base, c;
    char err[256];
    assert_int_equal(plan_build(&s, cost_partition_init(&cp, &s), &pl, err, sizeof err), 0);
    assert_int_equal(cost_build(&s, &pl, &base, err, sizeof err), 0);
    s.model.recompute = RECOMPUTE_FULL;
    assert_int_equal(cost_build(&s, &pl, &c, err, sizeof err), 0);
    for (int32_t st = 0; st < 7; st++) { // no LM head here: B grows by exactly F
        assert_int_equal(cost_op_ns(&c, st, OP_B), cost_op_ns(&base, st, OP_B) + cost_op_ns(&base, st, OP_F));
        assert_int_equal(cost_op_ns(&c, st, OP_BW), cost_op_ns(&c, st, OP_B) + cost_op_ns(&c, st, OP_W));
        assert_int_equal(cost_op_ns(&c, st, OP_W), cost_op_ns(&base, st, OP_W));
        assert_rel(cost_op_flops(&c, st, OP_B), cost_op_flops(&base, st, OP_B), 0); // model FLOPs
    }
    cost_free(&c);
    s.model.recompute = RECOMPUTE_SELECTIVE; // 5 layers x 4bs^2h at peak x efficiency
    assert_int_equal(cost_build(&s, &pl, &c, err, sizeof err), 0);
    double extra = 5 * 4.0 * 2048 * 2048 * 5120 / (s.hw.peak_tflops * 1e3 * s.hw.efficiency);
    assert_in_range(cost_op_ns(&c, 2, OP_B) - cost_op_ns(&base, 2, OP_B), (int64_t)extra - 1,
                    (int64_t)extra + 1);
    cost_free(&c);
    // per-stage [costs] price each stage as listed, with no division by chunks
    s.model.recompute = RECOMPUTE_NONE;
    double fw[8] = {1, 2, 3, 4, 5, 6, 7, 8.5}, bw[8] = {2, 4, 6, 8, 10, 12, 14, 17};
    s.costs.stage_forward = (ScnTimeList){fw, 8}, s.costs.stage_backward = (ScnTimeList){bw, 8};
    assert_int_equal(cost_build(&s, &pl, &c, err, sizeof err), 0);
    for (int32_t st = 0; st < 8; st++) {
        assert_int_equal(cost_op_ns(&c, st, OP_F), llround(fw[st] * 1e6));
        assert_int_equal(cost_op_ns(&c, st, OP_BW), llround(bw[st] * 1e6));
        assert_int_equal(cost_op_ns(&c, st, OP_W), 0);
    }
    cost_free(&c);
    s.costs.stage_forward = s.costs.stage_backward = (ScnTimeList){NULL, 0};
    // with measured [costs]: full recompute adds forward_ms to backward on head-free stages
    s.costs.forward_ms = 4, s.costs.backward_ms = 6, s.costs.weight_ms = 2;
    s.model.recompute = RECOMPUTE_FULL;
    assert_int_equal(cost_build(&s, &pl, &c, err, sizeof err), 0);
    assert_int_equal(cost_op_ns(&c, 1, OP_B), 10000000);
    cost_free(&c);
    cost_free(&base);
    plan_free(&pl);
}

/* Simulates schedule `name` on s and fills mem[] and trace from the predicted timeline. */
static void simulate_memory(const Scenario *s, const char *name, int32_t v, DeviceMemory *mem,
                            MemTrace *trace) {
    CostPartition cp;
    Plan pl;
    Program pr;
    CostModel c;
    Timeline tl = {0};
    char err[256];
    assert_int_equal(plan_build(s, cost_partition_init(&cp, s), &pl, err, sizeof err), 0);
    SchedParams sp = {.devices = (int32_t)s->pipeline.stages, .chunks = v,
                      .micro_batches = (int32_t)s->batch.micro_batches,
                      .iterations = (int32_t)s->batch.iterations};
    assert_int_equal(sched_find(name)->build(&sp, &pr, NULL), 0);
    assert_int_equal(cost_build(s, &pl, &c, err, sizeof err), 0);
    assert_int_equal(engine_run(&pr, &c, (int32_t)s->batch.iterations, &tl, err, sizeof err), 0);
    assert_int_equal(memory_compute(s, &pl, &pr, &tl, mem, trace), 0);
    timeline_free(&tl);
    cost_free(&c);
    program_free(&pr);
    plan_free(&pl);
}

static void test_memory_per_device(void **state) {
    (void)state; // 1F1B: device d holds p-d micro-batches; 16 bytes of state per parameter
    Scenario s = gpt13b();
    DeviceMemory mem[8];
    MemTrace trace = {0};
    simulate_memory(&s, "1f1b", 1, mem, &trace);
    double layer = memory_layer_activation_bytes(&s.model, 1), sbh = 2048.0 * 5120;
    double lp = memory_layer_params(&s.model);
    assert_rel(mem[3].params, 5 * lp, 1e-15);
    assert_rel(mem[3].weight_bytes + mem[3].grad_bytes + mem[3].optimizer_bytes, 16 * 5 * lp, 1e-15);
    for (int d = 0; d < 8; d++) assert_int_equal(mem[d].peak_activations, 8 - d);
    assert_rel(mem[3].activation_bytes, 5 * 5 * layer, 1e-12);
    assert_rel(mem[0].params, 5 * lp + (51200.0 + 2048) * 5120, 1e-15);
    assert_rel(mem[0].activation_bytes, 8 * (5 * layer + sbh), 1e-12);
    assert_rel(mem[7].params, 5 * lp + 51200.0 * 5120 + 2 * 5120, 1e-15);
    assert_rel(mem[7].activation_bytes, 5 * layer + 4 * sbh * (1 + 51200.0 / 5120), 1e-12);
    assert_rel(mem[7].peak_bytes,
               mem[7].weight_bytes + mem[7].grad_bytes + mem[7].optimizer_bytes + mem[7].activation_bytes,
               1e-15);
    // the trace: per device in time order, peaking at peak_bytes, back to the static part
    int64_t last_t[8], last_b[8], top[8] = {0};
    for (int d = 0; d < 8; d++) last_t[d] = -1;
    for (size_t i = 0; i < trace.n; i++) {
        const MemSample *x = &trace.s[i];
        assert_true(x->t_ns > last_t[x->device]);
        last_t[x->device] = x->t_ns, last_b[x->device] = x->bytes;
        if (x->bytes > top[x->device]) top[x->device] = x->bytes;
    }
    for (int d = 0; d < 8; d++) {
        assert_int_equal(top[d], (int64_t)(mem[d].peak_bytes + 0.5));
        assert_int_equal(last_b[d], (int64_t)(mem[d].weight_bytes + mem[d].grad_bytes +
                                              mem[d].optimizer_bytes + 0.5));
    }
    memtrace_free(&trace);
    // GPipe holds every micro-batch
    simulate_memory(&s, "gpipe", 1, mem, NULL);
    for (int d = 0; d < 8; d++) assert_int_equal(mem[d].peak_activations, 32);
}

static void test_memory_options(void **state) {
    (void)state;
    Scenario s = gpt13b();
    DeviceMemory base[8], mem[8];
    simulate_memory(&s, "1f1b", 1, base, NULL);
    s.model.optimizer = OPTIMIZER_SGD; // 2 + 2 + 8 bytes per parameter
    simulate_memory(&s, "1f1b", 1, mem, NULL);
    assert_rel(mem[3].optimizer_bytes, 8 * mem[3].params, 1e-15);
    s.model.optimizer = OPTIMIZER_ADAM;
    s.batch.iterations = 2; // PipeDream: p - d weight versions of the dtype's weights
    simulate_memory(&s, "pipedream", 1, mem, NULL);
    for (int d = 0; d < 8; d++) {
        assert_int_equal(mem[d].weight_versions, 8 - d);
        assert_rel(mem[d].weight_bytes, (8 - d) * base[d].weight_bytes, 1e-15);
        assert_rel(mem[d].grad_bytes, base[d].grad_bytes, 1e-15);
        assert_int_equal(mem[d].peak_activations, 8 - d);
    }
    simulate_memory(&s, "pipedream-2bw", 1, mem, NULL);
    for (int d = 0; d < 8; d++) assert_rel(mem[d].weight_bytes, 2 * base[d].weight_bytes, 1e-15);
    // zero bubble (Qi et al. §2.3): W keeps the GEMM inputs and output gradients, 32sbh per
    // layer; ZB-H1 peaks like 1F1B (p M_B on device 0), ZB-H2 at (2p - 1) M_B
    s.batch.iterations = 1;
    assert_rel(memory_layer_w_pending_bytes(&s.model, 1), 32.0 * 2048 * 5120, 1e-15);
    double m_b = 5 * memory_layer_activation_bytes(&s.model, 1) + 2048.0 * 5120; // device 0
    simulate_memory(&s, "zb-h1", 1, mem, NULL);
    assert_rel(mem[0].activation_bytes, base[0].activation_bytes, 1e-12);
    assert_rel(mem[0].activation_bytes, 8 * m_b, 1e-12);
    assert_int_equal(mem[7].peak_activations, 8); // W delayed by 7: one whole, 7 W parts
    double head = 4.0 * 2048 * 5120 * (1 + 51200.0 / 5120);
    assert_rel(mem[7].activation_bytes, base[7].activation_bytes + 7 * (5 * 32.0 * 2048 * 5120 + head),
               1e-12);
    simulate_memory(&s, "zb-h2", 1, mem, NULL);
    assert_rel(mem[0].activation_bytes, 15 * m_b, 1e-12);
    // full recompute keeps 2sbh per layer: stage 3 holds 5 micro-batches of 5 layers
    s.batch.iterations = 1;
    s.model.recompute = RECOMPUTE_FULL;
    simulate_memory(&s, "1f1b", 1, mem, NULL);
    assert_rel(mem[3].activation_bytes, 5 * 5 * 2.0 * 2048 * 5120, 1e-12);
}

static void test_metrics_definitions(void **state) {
    CostPartition cp;
    (void)state; // GPipe with F=1, B=2 ms: bubble_rate (p-1)/(m+p-1), ideal (p-1)/m, idle
    Scenario s = gpt13b();
    s.pipeline.stages = 4, s.batch.micro_batches = 6;
    s.costs.forward_ms = 1, s.costs.backward_ms = 2, s.costs.weight_ms = 0, s.costs.comm_ms = 0;
    Plan pl;
    Program pr;
    CostModel c;
    Timeline tl = {0};
    Metrics mt;
    char err[256];
    assert_int_equal(plan_build(&s, cost_partition_init(&cp, &s), &pl, err, sizeof err), 0);
    SchedParams sp = {.devices = 4, .chunks = 1, .micro_batches = 6, .iterations = 1};
    assert_int_equal(sched_find("gpipe")->build(&sp, &pr, NULL), 0);
    assert_int_equal(cost_build(&s, &pl, &c, err, sizeof err), 0);
    assert_int_equal(engine_run(&pr, &c, 1, &tl, err, sizeof err), 0);
    assert_int_equal(metrics_compute(&s, &pl, &pr, &c, &tl, &mt), 0);
    assert_rel(mt.makespan_ms, 27.0, 1e-15);
    assert_rel(mt.bubble_rate, 3.0 / 9.0, 1e-15);
    assert_rel(mt.bubble_ideal, 3.0 / 6.0, 1e-15);
    assert_rel(mt.dev[2].busy_ms, 18.0, 1e-15);
    assert_rel(mt.dev[2].idle_ms, 9.0, 1e-15);
    assert_int_equal(mt.ops, 48);
    assert_rel(mt.throughput_tokens_per_s, 6 * 2048 / 0.027, 1e-12);
    assert_rel(mt.tflops_per_gpu, mt.model_flops / 0.027 / 4 / 1e12, 1e-12);
    assert_rel(mt.mfu, mt.tflops_per_gpu / 989, 1e-12);
    metrics_free(&mt);
    timeline_free(&tl);
    cost_free(&c);
    program_free(&pr);
    plan_free(&pl);
}

static void test_explicit_partition(void **state) {
    CostPartition cp;
    (void)state;
    Scenario s = gpt13b();
    int64_t parts[8] = {4, 5, 5, 6, 6, 5, 5, 4};
    s.pipeline.partition = PART_EXPLICIT, s.pipeline.partition_layers = parts;
    s.pipeline.npartition = 8;
    Plan pl;
    char err[256];
    assert_int_equal(plan_build(&s, cost_partition_init(&cp, &s), &pl, err, sizeof err), 0);
    assert_int_equal(pl.layers[3], 6);
    assert_int_equal(pl.first_layer[4], 4 + 5 + 5 + 6);
    plan_free(&pl);
    plan_free(&pl);
}

/* The slowest stage's FLOPs (F + B + W of its layers, the LM head on the last). */
static double slowest_stage(const Scenario *s, const Plan *pl) {
    double f, b, w, worst = 0;
    cost_layer_flops(&s->model, 1, &f, &b, &w);
    for (int32_t st = 0; st < pl->stages; st++) {
        double t = (double)pl->layers[st] * (f + b + w) +
                   (st == pl->stages - 1 ? 3 * cost_head_flops(&s->model, 1) : 0);
        if (t > worst) worst = t;
    }
    return worst;
}

static void test_balanced_partition(void **state) {
    CostPartition cp;
    (void)state;
    Scenario s = gpt13b();
    Plan uni, bal;
    char err[256];
    // gpt13b's head is lighter than a layer: balanced is uniform
    s.pipeline.partition = PART_BALANCED;
    assert_int_equal(plan_build(&s, cost_partition_init(&cp, &s), &bal, err, sizeof err), 0);
    for (int32_t st = 0; st < 8; st++) assert_int_equal(bal.layers[st], 5);
    plan_free(&bal);
    // a 256k vocabulary makes the head worth several layers: the last stage gets fewer, and
    // no split of 40 layers has a faster slowest stage (checked against every k)
    s.model.vocab = 256000;
    assert_int_equal(plan_build(&s, cost_partition_init(&cp, &s), &bal, err, sizeof err), 0);
    s.pipeline.partition = PART_UNIFORM;
    assert_int_equal(plan_build(&s, cost_partition_init(&cp, &s), &uni, err, sizeof err), 0);
    int64_t sum = 0;
    for (int32_t st = 0; st < 8; st++) sum += bal.layers[st], assert_true(bal.layers[st] >= 1);
    assert_int_equal(sum, 40);
    assert_true(bal.layers[7] < 5);
    assert_true(slowest_stage(&s, &bal) < slowest_stage(&s, &uni));
    for (int64_t k = 1; k <= 33; k++) { // any last-stage count with the rest spread evenly
        for (int32_t st = 0; st < 7; st++) uni.layers[st] = (40 - k) / 7 + (st < (40 - k) % 7);
        uni.layers[7] = k;
        assert_true(slowest_stage(&s, &bal) <= slowest_stage(&s, &uni));
    }
    plan_free(&uni), plan_free(&bal);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layer_flops_qi_table1),
        cmocka_unit_test(test_iteration_flops_narayanan),
        cmocka_unit_test(test_op_times_and_links),
        cmocka_unit_test(test_absurd_costs_rejected),
        cmocka_unit_test(test_balanced_partition),
        cmocka_unit_test(test_params_gpt13b),
        cmocka_unit_test(test_activations_korthikanti),
        cmocka_unit_test(test_memory_per_device),
        cmocka_unit_test(test_memory_options),
        cmocka_unit_test(test_recompute_time),
        cmocka_unit_test(test_metrics_definitions),
        cmocka_unit_test(test_explicit_partition),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
