/* tests/test_dp.c: data and tensor parallelism against closed forms, exact in integer ns:
 * each chunk's gradient all-reduce is the alpha-beta ring (or tree) formula on the stage's
 * gradient bytes, over intra- or inter-node links as Megatron's placement puts the replicas;
 * a 1F1B pipeline with d replicas ends at (m+p-1)(F+B) + exposed all-reduce + optimizer step;
 * interleaving hides the later chunks' all-reduces in the cool-down; free communication makes
 * tokens/s scale by d; t = 2 halves the GEMM time and gives Korthikanti's per-GPU memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sim/model/cost.h"
#include "sim/engine/engine.h"
#include "sim/model/memory.h"
#include "sim/metrics/metrics.h"
#include "sim/plan/plan.h"
#include "sim/program/program.h"
#include "sim/scenario/scenario.h"
#include "sim/sched/schedule.h"
#include "sim_fixture.h"
#include "tiny_fixture.h"


/* GPT-3 13B on H100s, analytic costs. */
static const char GPT13B[] =
    "[model]\nlayers = 40\nhidden = 5120\nheads = 40\nseq_len = 2048\nvocab = 51200\n"
    "[batch]\nmicro_batches = 16\n"
    "[pipeline]\nstages = 8\nschedule = 1f1b\n"
    "[hardware]\ngpu = h100\nefficiency = 0.55\n";

static int64_t makespan_ns(const Sim *x) {
    int64_t first = INT64_MAX, last = INT64_MIN;
    for (size_t i = 0; i < x->tl.n; i++) {
        if (x->tl.ops[i].start_ns < first) first = x->tl.ops[i].start_ns;
        if (x->tl.ops[i].end_ns > last) last = x->tl.ops[i].end_ns;
    }
    return last - first;
}

/* The collective row of (device, chunk) in iteration 0 (there is exactly one). */
static const TimelineOp *allreduce_row(const Sim *x, int32_t d, int32_t ch) {
    const TimelineOp *found = NULL;
    for (size_t i = 0; i < x->tl.n; i++) {
        const TimelineOp *r = &x->tl.ops[i];
        if (r->stream == STREAM_COLLECTIVE && r->device == d && r->chunk == ch &&
            r->micro_batch < x->s.batch.micro_batches) {
            assert_null(found);
            found = r;
        }
    }
    assert_non_null(found);
    return found;
}

/* Gradient bytes of a stage of the tiny model, written out: 2 layers of 12h^2 + 13h (f = 4h)
 * plus the embedding (V + s)h on the first stage, the output embedding Vh + 2h on the last,
 * bf16, divided by t. */
static double tiny_grad_bytes(int32_t stage, int32_t stages, double t) {
    double h = 256, params = 2 * (12 * h * h + 13 * h);
    if (stage == 0) params += (1024 + 128) * h;
    if (stage == stages - 1) params += 1024 * h + 2 * h;
    return 2 * params / t;
}

static int64_t ring_ns(double k, double lat_us, double bw_gbs, double bytes) {
    return llround(2 * (k - 1) * lat_us * 1e3 + 2 * (k - 1) / k * bytes / bw_gbs);
}

static void test_ring_formula_intra_and_inter(void **state) {
    (void)state;
    // d = 3, 8 GPUs a node: pipeline ranks take GPUs 0-2, 3-5, 6-8, 9-11, so the replicas of
    // rank 2 straddle two nodes and those of the others share one
    const char *sets[] = {"parallel.data=3"};
    Sim x;
    sim_run(&x, TINY, "dp.scn", sets, 1);
    static const int inter[4] = {0, 0, 1, 0};
    for (int32_t d = 0; d < 4; d++) {
        const TimelineOp *r = allreduce_row(&x, d, 0);
        double bytes = tiny_grad_bytes(d, 4, 1);
        int64_t want = inter[d] ? ring_ns(3, 15, 40, bytes) : ring_ns(3, 5, 400, bytes);
        assert_int_equal(r->end_ns - r->start_ns, want);
        assert_int_equal(r->bytes, (int64_t)bytes);
        assert_int_equal(cost_dp_inter(&x.c, d), inter[d]);
    }
    sim_free(&x);
    // d = 2, t = 2 on 4-GPU nodes: stride 4, each rank's replicas fill one node
    const char *sets2[] = {"parallel.data=2", "parallel.tensor=2", "hardware.gpus_per_node=4"};
    sim_run(&x, TINY, "dp.scn", sets2, 3);
    for (int32_t d = 0; d < 4; d++) {
        const TimelineOp *r = allreduce_row(&x, d, 0);
        assert_int_equal(r->end_ns - r->start_ns, ring_ns(2, 5, 400, tiny_grad_bytes(d, 4, 2)));
    }
    sim_free(&x);
}

static void test_tree_formula(void **state) {
    (void)state; // NCCL's double binary tree: 2 ceil(log2 d) alpha + 2n / beta
    const char *sets[] = {"parallel.data=5", "parallel.allreduce=tree",
                          "hardware.gpus_per_node=64"};
    Sim x;
    sim_run(&x, TINY, "dp.scn", sets, 3);
    double bytes = tiny_grad_bytes(1, 4, 1);
    const TimelineOp *r = allreduce_row(&x, 1, 0);
    assert_int_equal(r->end_ns - r->start_ns, llround(2 * 3 * 5e3 + 2 * bytes / 400));
    assert_int_equal(cost_allreduce_formula_ns(ALLREDUCE_TREE, 1, 5, 400, bytes), 0);
    sim_free(&x);
}

static void test_pipeline_hops_follow_placement(void **state) {
    (void)state; // with d x t = 4 two pipeline ranks share a node, with 8 none do
    const char *sets4[] = {"parallel.data=4"};
    const char *sets8[] = {"parallel.data=4", "parallel.tensor=2"};
    char links[sizeof TINY]; // TINY with alpha-beta transfers
    snprintf(links, sizeof links, "%.*s", (int)(strstr(TINY, "comm_ms") - TINY), TINY);
    Sim x;
    sim_run(&x, links, "dp.scn", sets4, 1);
    assert_int_equal(cost_xfer_ns(&x.c, 0, 1), x.c.xfer_intra_ns);
    assert_int_equal(cost_xfer_ns(&x.c, 1, 2), x.c.xfer_inter_ns);
    sim_free(&x);
    sim_run(&x, links, "dp.scn", sets8, 2);
    for (int32_t d = 0; d < 3; d++) assert_int_equal(cost_xfer_ns(&x.c, d, d + 1), x.c.xfer_inter_ns);
    int64_t sends = 0;
    for (size_t i = 0; i < x.tl.n; i++)
        if (x.tl.ops[i].stream == STREAM_SEND) {
            assert_int_equal(x.tl.ops[i].end_ns - x.tl.ops[i].start_ns, x.c.xfer_inter_ns);
            sends++;
        }
    assert_int_equal(sends, 2 * 3 * 8);
    sim_free(&x);
}

static void test_1f1b_makespan_closed_form(void **state) {
    (void)state; // (m+p-1)(F+B) + device 0's all-reduce (it ends last) + the optimizer step
    const char *sets[] = {"parallel.data=4", "costs.optimizer_ms=3", "batch.iterations=2"};
    Sim x;
    sim_run(&x, TINY, "dp.scn", sets, 3);
    int64_t ar0 = ring_ns(4, 5, 400, tiny_grad_bytes(0, 4, 1)), opt = 3000000;
    int64_t iteration = 33000000 + ar0 + opt;
    assert_int_equal(makespan_ns(&x), 2 * iteration);
    assert_true(fabs(x.mt.allreduce_exposed_ms - (double)ar0 / 1e6) < 1e-12);
    assert_true(fabs(x.mt.allreduce_ms - (double)ar0 / 1e6) < 1e-12); // stage 0 is largest
    assert_true(fabs(x.mt.optimizer_ms - 3.0) < 1e-12);
    assert_true(fabs(x.mt.iteration_ms - (double)iteration / 1e6) < 1e-9);
    assert_int_equal(x.tl.n, x.tl.cap); // the tail's rows were reserved with the rest
    for (size_t i = 0; i < x.tl.n; i++) // iteration 1 starts after every optimizer step
        if (x.tl.ops[i].micro_batch >= 8) assert_true(x.tl.ops[i].start_ns >= iteration);
    sim_free(&x);
}

static void test_interleaved_hides_the_later_chunk(void **state) {
    (void)state; // v = 2: chunk 1's all-reduce runs in the cool-down, chunk 0's is exposed
    const char *sets[] = {"parallel.data=2", "pipeline.schedule=interleaved",
                          "pipeline.chunks=2", "costs.allreduce_ms=0.25", "costs.optimizer_ms=0"};
    Sim x;
    sim_run(&x, TINY, "dp.scn", sets, 5);
    int64_t A = 250000, pipeline = 8 * 3000000 + 3 * 3000000 / 2; // m(F+B) + (p-1)(F+B)/v
    assert_int_equal(makespan_ns(&x), pipeline + A);
    const TimelineOp *late = allreduce_row(&x, 0, 1), *last = allreduce_row(&x, 0, 0);
    assert_true(late->end_ns <= pipeline); // inside the cool-down
    assert_int_equal(last->start_ns, pipeline);
    assert_true(fabs(x.mt.allreduce_ms - 2 * 0.25) < 1e-12);
    assert_true(fabs(x.mt.allreduce_exposed_ms - 0.25) < 1e-12); // total - exposed = A
    assert_true(x.mt.allreduce_exposed_ms < x.mt.allreduce_ms);
    sim_free(&x);
    // the same with v = 1: nothing to hide it behind
    const char *sets1[] = {"parallel.data=2", "costs.allreduce_ms=0.25", "costs.optimizer_ms=0"};
    sim_run(&x, TINY, "dp.scn", sets1, 3);
    assert_true(fabs(x.mt.allreduce_exposed_ms - x.mt.allreduce_ms) < 1e-12);
    sim_free(&x);
}

static void test_tokens_scale_with_d_when_comm_is_free(void **state) {
    (void)state;
    const char *one[] = {"parallel.data=1"};
    const char *four[] = {"parallel.data=4", "costs.allreduce_ms=0", "costs.optimizer_ms=0"};
    Sim a, b;
    sim_run(&a, TINY, "dp.scn", one, 1);
    sim_run(&b, TINY, "dp.scn", four, 3);
    assert_int_equal(makespan_ns(&a), makespan_ns(&b));
    assert_true(fabs(b.mt.throughput_tokens_per_s - 4 * a.mt.throughput_tokens_per_s) <
                1e-9 * b.mt.throughput_tokens_per_s);
    assert_true(fabs(b.mt.tflops_per_gpu - a.mt.tflops_per_gpu) < 1e-12 * a.mt.tflops_per_gpu);
    assert_int_equal(b.mt.devices_total, 16);
    assert_int_equal(b.mt.global_batch, 4 * 8);
    assert_int_equal(a.mt.devices_total, 4);
    assert_int_equal(a.c.tail, 0); // d = 1: no tail rows at all
    for (size_t i = 0; i < a.tl.n; i++) assert_true(a.tl.ops[i].stream <= STREAM_RECV);
    sim_free(&a);
    sim_free(&b);
}

static void test_tensor_halves_gemm_time(void **state) {
    (void)state; // F = flops/(2 rate) + 2 activation all-reduces a layer; W has no comm
    const char *t2[] = {"parallel.tensor=2"};
    Sim a, b;
    sim_run(&a, GPT13B, "dp.scn", NULL, 0);
    sim_run(&b, GPT13B, "dp.scn", t2, 1);
    double rate = 989 * 0.55 * 1e3, bytes = 2048.0 * 5120 * 2; // FLOP/ns; b s h bf16
    int64_t tp = llround(2 * 1 * 10e3 + 2 * 1.0 / 2 * bytes / 450); // ring over 2, NVLink
    assert_int_equal(b.c.tp_ar_ns, tp);
    for (int32_t st = 0; st < 7; st++) {
        double f = cost_op_flops(&a.c, st, OP_F), w = cost_op_flops(&a.c, st, OP_W);
        assert_int_equal(cost_op_ns(&b.c, st, OP_F), llround(f / 2 / rate) + 2 * 5 * tp);
        assert_int_equal(cost_op_ns(&b.c, st, OP_W), llround(w / 2 / rate));
        assert_true(llabs(2 * cost_op_ns(&b.c, st, OP_W) - cost_op_ns(&a.c, st, OP_W)) <= 1);
        assert_true(cost_op_flops(&b.c, st, OP_F) == f); // model FLOPs stay whole
    }
    for (int32_t d = 0; d < 8; d++) { // weights, gradients, optimizer state: / t
        assert_true(fabs(b.mt.dev[d].weights_gib - a.mt.dev[d].weights_gib / 2) <
                    1e-12 * a.mt.dev[d].weights_gib);
        assert_true(fabs(b.mt.dev[d].optimizer_gib - a.mt.dev[d].optimizer_gib / 2) <
                    1e-12 * a.mt.dev[d].optimizer_gib);
    }
    assert_int_equal(b.mt.devices_total, 16);
    sim_free(&a);
    sim_free(&b);
}

static void test_korthikanti_activations(void **state) {
    (void)state; // Korthikanti et al. 2022 Table 2, every row, for GPT-3 13B with dropout
                 // (their model): bytes a layer in 16 bits, exact up to rounding
    Scenario s;
    char err[SCN_ERR_MAX];
    const char *drop[] = {"model.dropout=0.1"};
    assert_int_equal(scenario_parse(GPT13B, "g.scn", drop, 1, &s, err), 0);
    double sbh = 2048.0 * 1 * 5120, as_h = 40.0 * 2048 / 5120;
    for (int64_t t = 1; t <= 8; t *= 2)
        for (int sp = 0; sp <= (t > 1); sp++) {
            double rows[3] = {sp ? 34.0 / t + 5 * as_h / t : 10 + 24.0 / t + 5 * as_h / t, // none
                              sp ? 34.0 / t : 10 + 24.0 / t,                              // selective
                              sp ? 2.0 / t : 2};  // full: the layer's input (this rank's tokens)
            for (int rc = 0; rc < 3; rc++) {
                s.model.recompute = (Recompute)rc;
                double got = memory_layer_activation_bytes_sp(&s.model, 1, t, sp);
                if (fabs(got - sbh * rows[rc]) > 1e-14 * got)
                    fail_msg("t %lld sp %d recompute %d: %.17g bytes, Table 2 %.17g",
                             (long long)t, sp, rc, got, sbh * rows[rc]);
            }
        }
    s.model.recompute = RECOMPUTE_NONE;
    assert_true(memory_layer_activation_bytes_tp(&s.model, 1, 4) ==
                memory_layer_activation_bytes_sp(&s.model, 1, 4, 0));
    assert_true(memory_layer_activation_bytes_tp(&s.model, 1, 1) ==
                memory_layer_activation_bytes(&s.model, 1));
    s.model.dropout = 0; // no masks, no dropout output: 2 of the 10 and 3 of the 5as/h go
    assert_true(fabs(memory_layer_activation_bytes_tp(&s.model, 1, 4) -
                     sbh * (8 + 24.0 / 4 + 2 * as_h / 4)) < 1e-14 * sbh);
    scenario_free(&s);
    // through the engine: the last device of 1F1B holds one micro-batch, 5 layers + the head
    const char *t4[] = {"parallel.tensor=4", "model.dropout=0.1"};
    Sim x;
    sim_run(&x, GPT13B, "dp.scn", t4, 2);
    double head = 4 * sbh * (1 + 51200.0 / (5120 * 4));
    double want = 5 * sbh * (10 + 24.0 / 4 + 5 * as_h / 4) + head;
    assert_true(fabs(x.mt.dev[7].activations_gib * GIB - want) < 1e-9 * want);
    sim_free(&x);
}

static void expect_rejected(const char *set, const char *text_part) {
    Scenario s;
    char err[SCN_ERR_MAX];
    const char *sets[] = {set};
    assert_int_equal(scenario_parse(GPT13B, "g.scn", sets, 1, &s, err), 2);
    if (!strstr(err, text_part)) fail_msg("'%s' lacks '%s'", err, text_part);
    scenario_free(&s);
}

static void test_bad_combinations_rejected(void **state) {
    (void)state;
    expect_rejected("parallel.tensor=16", "tensor = 16 is more than gpus_per_node = 8");
    expect_rejected("parallel.tensor=3", "tensor = 3 does not divide gpus_per_node = 8");
    const char *sets5[] = {"parallel.tensor=16", "hardware.gpus_per_node=16"};
    Scenario s5;
    char err5[SCN_ERR_MAX];
    assert_int_equal(scenario_parse(GPT13B, "g.scn", sets5, 2, &s5, err5), 2);
    assert_non_null(strstr(err5, "does not divide heads = 40"));
    scenario_free(&s5);
    expect_rejected("parallel.allreduce=butterfly", "use ring or tree");
    Scenario s;
    char err[SCN_ERR_MAX];
    const char *sets[] = {"pipeline.schedule=pipedream-2bw", "parallel.data=2"};
    assert_int_equal(scenario_parse(GPT13B, "g.scn", sets, 2, &s, err), 2);
    assert_non_null(strstr(err, "--set parallel.data=2"));
    assert_non_null(strstr(err, "asynchronous schedules"));
    scenario_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_formula_intra_and_inter),
        cmocka_unit_test(test_tree_formula),
        cmocka_unit_test(test_pipeline_hops_follow_placement),
        cmocka_unit_test(test_1f1b_makespan_closed_form),
        cmocka_unit_test(test_interleaved_hides_the_later_chunk),
        cmocka_unit_test(test_tokens_scale_with_d_when_comm_is_free),
        cmocka_unit_test(test_tensor_halves_gemm_time),
        cmocka_unit_test(test_korthikanti_activations),
        cmocka_unit_test(test_bad_combinations_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
