/* tests/test_memory.c: memory_compute's replay of a timeline does not depend on the order of
 * its rows: a hand-built timeline whose rows are out of time order (device 1's before device
 * 0's, a give-back and a take at one time listed take first) gives the samples worked out by
 * hand, and the engine's timelines give bit-for-bit the same samples and peaks with the rows
 * grouped device 1 first or each device's rows reversed (the merge-sort fallback). The model's
 * formulas are held to the literature in test_cost.c. */
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
#include "sim/plan/plan.h"
#include "sim/sched/schedule.h"

/* A GPT-3 13B-sized model on p H100s, without the parser. */
static Scenario scenario(int32_t p, int32_t v, int32_t m, const char *schedule) {
    Scenario s;
    memset(&s, 0, sizeof s);
    strcpy(s.model.name, "gpt13b");
    s.model.layers = 40, s.model.hidden = 5120, s.model.heads = 40, s.model.seq_len = 2048;
    s.model.vocab = 51200, s.model.ffn_hidden = 4 * 5120, s.model.dtype = DTYPE_BF16;
    s.model.bias = s.model.tied_embeddings = 1; // GPT: biases, one embedding matrix
    s.batch.micro_batch_size = 1, s.batch.micro_batches = m, s.batch.iterations = 1;
    s.pipeline.stages = p, s.pipeline.chunks = v, s.pipeline.partition = PART_UNIFORM;
    strcpy(s.pipeline.schedule, schedule);
    strcpy(s.hw.gpu, "h100");
    s.hw.peak_tflops = 989, s.hw.cost_model = COST_FLAT, s.hw.efficiency = 0.5, s.hw.memory_gib = 80, s.hw.gpus_per_node = 8;
    s.net.intra_bandwidth_gbs = 450, s.net.intra_latency_us = 10;
    s.net.inter_bandwidth_gbs = 50, s.net.inter_latency_us = 20;
    s.costs.forward_ms = s.costs.backward_ms = s.costs.weight_ms = s.costs.comm_ms = -1;
    strcpy(s.path, "test.scn");
    return s;
}

/* A scenario's Program (p devices, v chunks) and Plan; the engine's timeline when tl != NULL. */
static void build(const Scenario *s, Program *pr, Plan *pl, Timeline *tl) {
    CostPartition cp;
    char err[256];
    SchedParams sp = {.devices = (int32_t)s->pipeline.stages,
                      .chunks = (int32_t)s->pipeline.chunks,
                      .micro_batches = (int32_t)s->batch.micro_batches, .iterations = 1};
    assert_int_equal(sched_find(s->pipeline.schedule)->build(&sp, pr, NULL), 0);
    int rc = plan_build_program(s, pr, cost_partition_init(&cp, s), pl, err, sizeof err);
    if (rc != 0) print_error("%s\n", err);
    assert_int_equal(rc, 0);
    if (!tl) return;
    CostModel c;
    assert_int_equal(cost_build(s, pl, &c, err, sizeof err), 0);
    assert_int_equal(engine_run(pr, &c, 1, tl, err, sizeof err), 0);
    cost_free(&c);
}

static TimelineOp compute_row(int32_t d, int32_t mb, OpKind k, int64_t start, int64_t end) {
    return (TimelineOp){.start_ns = start, .end_ns = end, .device = d, .micro_batch = mb,
                        .peer = -1, .kind = (uint8_t)k, .stream = STREAM_COMPUTE};
}

static void assert_sample(const MemSample *x, int32_t d, int64_t t, double bytes) {
    assert_int_equal(x->device, d);
    assert_int_equal(x->t_ns, t);
    assert_int_equal(x->bytes, (int64_t)(bytes + 0.5));
}

static void test_hand_built_rows_out_of_order(void **state) {
    (void)state;
    Scenario s = scenario(2, 1, 2, "1f1b");
    Program pr;
    Plan pl;
    build(&s, &pr, &pl, NULL);
    double a[2], w, params;
    for (int32_t st = 0; st < 2; st++)
        memory_stage_footprint(&s, pl.layers[st], st == 0, st == 1, &params, &a[st], &w);
    // device 1's rows first, its F at 40 listed before the BW that gives back at 40, a send
    // row in between (left out), device 0's last
    TimelineOp rows[] = {
        compute_row(1, 1, OP_F, 40, 50),  compute_row(1, 0, OP_F, 10, 20),
        compute_row(1, 0, OP_BW, 20, 40), compute_row(1, 1, OP_BW, 50, 70),
        {.start_ns = 10, .end_ns = 12, .bytes = 64, .device = 0, .peer = 1, .stream = STREAM_SEND},
        compute_row(0, 1, OP_F, 10, 20),  compute_row(0, 0, OP_F, 0, 10),
        compute_row(0, 0, OP_BW, 40, 60), compute_row(0, 1, OP_BW, 60, 80),
    };
    Timeline tl = {.ops = rows, .n = sizeof rows / sizeof rows[0], .cap = 0};
    DeviceMemory mem[2];
    MemTrace trace = {0};
    assert_int_equal(memory_compute(&s, &pl, &pr, &tl, mem, &trace), 0);
    double f0 = mem[0].weight_bytes + mem[0].grad_bytes + mem[0].optimizer_bytes;
    double f1 = mem[1].weight_bytes + mem[1].grad_bytes + mem[1].optimizer_bytes;
    assert_int_equal(trace.n, 8);
    // device 0: its first F at 0 takes the place of the static sample
    assert_sample(&trace.s[0], 0, 0, f0 + a[0]);
    assert_sample(&trace.s[1], 0, 10, f0 + 2 * a[0]);
    assert_sample(&trace.s[2], 0, 60, f0 + a[0]);
    assert_sample(&trace.s[3], 0, 80, f0);
    // device 1: the give-back at 40 goes before the take, so no spike to 2 activations
    assert_sample(&trace.s[4], 1, 0, f1);
    assert_sample(&trace.s[5], 1, 10, f1 + a[1]);
    assert_sample(&trace.s[6], 1, 40, f1 + a[1]);
    assert_sample(&trace.s[7], 1, 70, f1);
    assert_int_equal(mem[0].peak_activations, 2);
    assert_int_equal(mem[1].peak_activations, 1);
    assert_true(mem[0].activation_bytes == 2 * a[0]);
    assert_true(mem[1].activation_bytes == a[1]);
    assert_true(mem[1].peak_bytes == f1 + a[1]);
    memtrace_free(&trace);
    program_free(&pr);
    plan_free(&pl);
}

/* The samples and DeviceMemory of tl's rows in the order order[] (NULL: as they are). */
static void replay(const Scenario *s, const Plan *pl, const Program *pr, const Timeline *tl,
                   const size_t *order, DeviceMemory *mem, MemTrace *trace) {
    Timeline re = {.ops = malloc(tl->n * sizeof *re.ops), .n = tl->n, .cap = tl->n};
    assert_non_null(re.ops);
    for (size_t i = 0; i < tl->n; i++) re.ops[i] = tl->ops[order ? order[i] : i];
    memset(mem, 0, (size_t)pr->devices * sizeof *mem);
    assert_int_equal(memory_compute(s, pl, pr, &re, mem, trace), 0);
    timeline_free(&re);
}

/* Row order: every row of the last device first, then the one before, ... (devices
 * descending, rows in engine order within a device), or with reverse each device's rows from
 * last to first. */
static size_t *device_order(const Timeline *tl, int32_t devices, int reverse) {
    size_t *order = malloc(tl->n * sizeof *order), k = 0;
    assert_non_null(order);
    for (int32_t d = devices - 1; d >= 0; d--)
        for (size_t j = 0; j < tl->n; j++) {
            size_t i = reverse ? tl->n - 1 - j : j;
            if (tl->ops[i].device == d) order[k++] = i;
        }
    assert_int_equal(k, tl->n);
    return order;
}

static void assert_same_replay(const char *schedule, int32_t p, int32_t v, int32_t m) {
    Scenario s = scenario(p, v, m, schedule);
    Program pr;
    Plan pl;
    Timeline tl = {0};
    build(&s, &pr, &pl, &tl);
    DeviceMemory want[8], got[8];
    MemTrace wt = {0};
    replay(&s, &pl, &pr, &tl, NULL, want, &wt);
    assert_true(wt.n > (size_t)p); // activations were taken
    for (int reverse = 0; reverse <= 1; reverse++) {
        size_t *order = device_order(&tl, p, reverse);
        MemTrace gt = {0};
        replay(&s, &pl, &pr, &tl, order, got, &gt);
        assert_int_equal(gt.n, wt.n);
        assert_memory_equal(gt.s, wt.s, wt.n * sizeof *wt.s);
        assert_memory_equal(got, want, (size_t)p * sizeof *want);
        memtrace_free(&gt);
        free(order);
    }
    memtrace_free(&wt);
    timeline_free(&tl);
    program_free(&pr);
    plan_free(&pl);
}

static void test_1f1b_any_row_order(void **state) {
    (void)state;
    assert_same_replay("1f1b", 8, 1, 32);
}

static void test_zb_h1_split_backward_any_row_order(void **state) {
    (void)state; // B shrinks an activation to its W part, W gives the rest back
    assert_same_replay("zb-h1", 4, 1, 16);
}

static void test_dualpipe_fused_pairs_any_row_order(void **state) {
    (void)state; // fused F&B pairs: two rows on one interval, the B's event before the F's
    assert_same_replay("dualpipe", 4, 2, 16);
}

static void test_interleaved_any_row_order(void **state) {
    (void)state;
    assert_same_replay("interleaved", 4, 2, 8);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_built_rows_out_of_order),
        cmocka_unit_test(test_1f1b_any_row_order),
        cmocka_unit_test(test_zb_h1_split_backward_any_row_order),
        cmocka_unit_test(test_dualpipe_fused_pairs_any_row_order),
        cmocka_unit_test(test_interleaved_any_row_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
