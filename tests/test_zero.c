/* tests/test_zero.c: [parallel] zero (ZeRO, Rajbhandari et al. 2020) against closed forms: the
 * paper's Figure 1 example (7.5B parameters over Nd = 64: 120, 31.4, 16.6 and 1.9 GB a GPU),
 * the ring reduce-scatter and all-gather that add up to the all-reduce exactly, the optimizer
 * step on a 1/d shard, 1F1B's iteration with the tail split around the step, ZeRO-3's exposed
 * collectives inside every op, and the inputs the parser refuses. */
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
#include "sim/model/memory.h"
#include "sim_fixture.h"
#include "tiny_fixture.h"


/* GPT-3 13B on H100s, analytic costs, 8 replicas of each pipeline rank fill a node. */
static const char GPT13B[] =
    "[model]\nlayers = 40\nhidden = 5120\nheads = 40\nseq_len = 2048\nvocab = 51200\n"
    "[batch]\nmicro_batches = 16\n"
    "[pipeline]\nstages = 8\nschedule = 1f1b\n"
    "[parallel]\ndata = 8\n"
    "[hardware]\ngpu = h100\nefficiency = 0.55\n";

/* The paper's model: Psi = 37 (12h^2 + 13h) + (V + s)h + Vh + 2h = 7,500,410,880 parameters
 * with h = 4096, V = 5000, s = 2048, on one stage (p = 1, so every parameter is on the GPU),
 * Nd = 64, mixed-precision Adam (K = 12). */
static const char PAPER[] =
    "[model]\nlayers = 37\nhidden = 4096\nheads = 32\nseq_len = 2048\nvocab = 5000\n"
    "[batch]\nmicro_batches = 1\n"
    "[pipeline]\nstages = 1\nschedule = 1f1b\n"
    "[parallel]\ndata = 64\n"
    "[hardware]\ngpu = h100\ngpus_per_node = 8\n";

static double ring_rs(double k, double lat_us, double bw_gbs, double bytes) {
    return (k - 1) * lat_us * 1e3 + (k - 1) / k * bytes / bw_gbs;
}

static const TimelineOp *row_of(const Sim *x, Stream s, int32_t d, int32_t ch) {
    const TimelineOp *found = NULL;
    for (size_t i = 0; i < x->tl.n; i++) {
        const TimelineOp *r = &x->tl.ops[i];
        if (r->stream == s && r->device == d && r->chunk == ch &&
            r->micro_batch < x->s.batch.micro_batches) {
            assert_null(found);
            found = r;
        }
    }
    assert_non_null(found);
    return found;
}

static int64_t count_rows(const Sim *x, Stream s) {
    int64_t n = 0;
    for (size_t i = 0; i < x->tl.n; i++) n += x->tl.ops[i].stream == s;
    return n;
}

static void test_paper_figure_1(void **state) {
    (void)state;
    static const char *const want[4] = {"120", "31.4", "16.6", "1.9"}; // GB = 1e9 bytes
    static const char *const fmt[4] = {"%.0f", "%.1f", "%.1f", "%.1f"};
    for (int z = 0; z < 4; z++) {
        char set[32], got[32];
        snprintf(set, sizeof set, "parallel.zero=%d", z);
        const char *sets[] = {set};
        Sim x;
        sim_run(&x, PAPER, "paper.scn", sets, 1);
        DeviceMemory dm;
        memory_device_static(&x.s, &x.pl, &x.pr, 0, &dm);
        double psi = dm.params, nd = 64, k = 12;
        assert_true(fabs(psi - 7500410880.0) < 1);
        double bytes = dm.weight_bytes + dm.grad_bytes + dm.optimizer_bytes;
        double formula = z == 0 ? (2 + 2 + k) * psi
                         : z == 1 ? (2 + 2) * psi + k * psi / nd
                         : z == 2 ? 2 * psi + (2 + k) * psi / nd
                                  : (2 + 2 + k) * psi / nd;
        assert_true(fabs(bytes - formula) < 1e-12 * formula);
        snprintf(got, sizeof got, fmt[z], bytes / 1e9);
        if (strcmp(got, want[z]) != 0) fail_msg("zero = %d: %s GB, the paper says %s", z, got, want[z]);
        // the transient: one layer's full weights less the shard held (zero = 3 only)
        double layer = 12.0 * 4096 * 4096 + 13 * 4096;
        double gather = z == 3 ? (1 - 1 / nd) * layer * 2 : 0;
        assert_true(fabs(dm.gather_bytes - gather) <= 1e-12 * layer);
        assert_true(fabs(memory_static_bytes(&dm) - bytes - gather) < 1e-3);
        assert_true(fabs(x.mt.dev[0].gather_gib * GIB - gather) < 1e-3);
        sim_free(&x);
    }
}

static void test_layer_cap_grows_with_zero(void **state) {
    (void)state; // the partitioner's cap: more layers fit as more is sharded
    int64_t cap[4];
    for (int z = 0; z < 4; z++) {
        char set[32];
        snprintf(set, sizeof set, "parallel.zero=%d", z);
        const char *sets[] = {set};
        Scenario s;
        char err[SCN_ERR_MAX];
        assert_int_equal(scenario_parse(GPT13B, "g.scn", sets, 1, &s, err), 0);
        PartitionStage st = {.device = 0, .first = 0, .last = 0, .chunks = 1,
                             .weight_versions = 1, .inflight = 0};
        cap[z] = memory_stage_layer_cap(&s, &st);
        // no activations: 80 GiB over the per-layer bytes, less the gathered layer for zero 3
        double layer = 12.0 * 5120 * 5120 + 13 * 5120, d = 8;
        double per = z == 0 ? 16 : z == 1 ? 4 + 12 / d : z == 2 ? 2 + 14 / d : 16 / d;
        double room = 80 * GIB - (z == 3 ? (1 - 1 / d) * 2 * layer : 0);
        assert_int_equal(cap[z], (int64_t)(room / (layer * per)));
        scenario_free(&s);
    }
    assert_true(cap[0] < cap[1] && cap[1] < cap[2] && cap[2] < cap[3]);
}

static void test_reduce_scatter_plus_all_gather_is_all_reduce(void **state) {
    (void)state; // d = 3: rank 2's replicas straddle two nodes (test_dp.c), the rest share one
    const char *sets[] = {"parallel.data=3", "parallel.zero=1", "parallel.allreduce=tree"};
    const char *sets0[] = {"parallel.data=3", "parallel.allreduce=ring"};
    Sim x, r;
    sim_run(&x, TINY, "z.scn", sets, 3);
    sim_run(&r, TINY, "z.scn", sets0, 2);
    static const int inter[4] = {0, 0, 1, 0};
    for (int32_t d = 0; d < 4; d++) {
        const TimelineOp *rs = row_of(&x, STREAM_REDUCE_SCATTER, d, 0);
        const TimelineOp *ag = row_of(&x, STREAM_ALL_GATHER, d, 0);
        const TimelineOp *ar = row_of(&r, STREAM_COLLECTIVE, d, 0);
        int64_t want_rs = llround(inter[d] ? ring_rs(3, 15, 40, (double)rs->bytes)
                                           : ring_rs(3, 5, 400, (double)rs->bytes));
        assert_int_equal(rs->end_ns - rs->start_ns, want_rs); // ring even with allreduce = tree
        assert_int_equal((rs->end_ns - rs->start_ns) + (ag->end_ns - ag->start_ns),
                         ar->end_ns - ar->start_ns);
        assert_true(llabs((ag->end_ns - ag->start_ns) - want_rs) <= 1);
        assert_int_equal(rs->bytes, ar->bytes);
        assert_int_equal(ag->bytes, ar->bytes);
        assert_int_equal(rs->kind, OP_BW);
        assert_int_equal(ag->kind, OP_F);
    }
    assert_int_equal(count_rows(&x, STREAM_COLLECTIVE), 0); // no all-reduce left
    assert_true(x.mt.allreduce_ms == 0);
    assert_true(fabs(x.mt.reduce_scatter_ms + x.mt.all_gather_ms - r.mt.allreduce_ms) < 1e-6 + 1e-12);
    sim_free(&x);
    sim_free(&r);
    // [costs] allreduce_ms is split in two halves
    const char *fixed[] = {"parallel.data=2", "parallel.zero=2", "costs.allreduce_ms=0.25"};
    sim_run(&x, TINY, "z.scn", fixed, 3);
    const TimelineOp *rs = row_of(&x, STREAM_REDUCE_SCATTER, 1, 0), *ag = row_of(&x, STREAM_ALL_GATHER, 1, 0);
    assert_int_equal(rs->end_ns - rs->start_ns, 125000);
    assert_int_equal(ag->end_ns - ag->start_ns, 125000);
    sim_free(&x);
}

static void test_optimizer_step_on_a_shard(void **state) {
    (void)state; // memory-bound: the same bytes / d, rounded once; [costs] optimizer_ms / d
    const char *z0[] = {"parallel.zero=0"}, *z1[] = {"parallel.zero=1"};
    Sim a, b;
    sim_run(&a, GPT13B, "g.scn", z0, 1);
    sim_run(&b, GPT13B, "g.scn", z1, 1);
    for (int32_t st = 0; st < 8; st++)
        assert_true(llabs(8 * b.c.opt_ns[st] - a.c.opt_ns[st]) <= 8);
    assert_true(fabs(b.mt.optimizer_ms * 8 - a.mt.optimizer_ms) < 1e-5);
    // memory per device: optimizer state / 8, weights and gradients whole (zero = 1)
    assert_true(fabs(b.mt.dev[0].optimizer_gib * 8 - a.mt.dev[0].optimizer_gib) < 1e-9);
    assert_true(b.mt.dev[0].weights_gib == a.mt.dev[0].weights_gib);
    assert_true(b.mt.dev[0].grads_gib == a.mt.dev[0].grads_gib);
    sim_free(&a);
    sim_free(&b);
    const char *m[] = {"parallel.data=4", "parallel.zero=1", "costs.optimizer_ms=3"};
    sim_run(&a, TINY, "z.scn", m, 3);
    assert_int_equal(a.c.opt_ns[0], 750000);
    sim_free(&a);
    // d = 1, c = 8: the 8 context ranks hold the same weights, so zero = 1 shards over them
    const char *c0[] = {"parallel.data=1", "parallel.context=8", "parallel.zero=0"};
    const char *c1[] = {"parallel.data=1", "parallel.context=8", "parallel.zero=1"};
    sim_run(&a, PAPER, "p.scn", c0, 3);
    sim_run(&b, PAPER, "p.scn", c1, 3);
    assert_int_equal(b.mt.zero, 1);
    assert_true(b.c.zero == 1 && b.mt.allreduce_ms == 0 && b.mt.reduce_scatter_ms > 0);
    assert_true(llabs(8 * b.c.opt_ns[0] - a.c.opt_ns[0]) <= 8);
    sim_free(&a);
    sim_free(&b);
}

static void test_1f1b_iteration_closed_form(void **state) {
    (void)state; // (m+p-1)(F+B) + device 0's reduce-scatter + its step / d + its all-gather
    const char *sets[] = {"parallel.data=4", "parallel.zero=1", "costs.optimizer_ms=3",
                          "batch.iterations=2"};
    Sim x;
    sim_run(&x, TINY, "z.scn", sets, 4);
    const TimelineOp *rs = row_of(&x, STREAM_REDUCE_SCATTER, 0, 0);
    const TimelineOp *ag = row_of(&x, STREAM_ALL_GATHER, 0, 0);
    const TimelineOp *opt = row_of(&x, STREAM_OPTIMIZER, 0, 0);
    int64_t rs_ns = rs->end_ns - rs->start_ns, ag_ns = ag->end_ns - ag->start_ns;
    int64_t iteration = 33000000 + rs_ns + 750000 + ag_ns;
    assert_int_equal(rs->start_ns, 33000000);
    assert_int_equal(opt->start_ns, rs->end_ns);
    assert_int_equal(ag->start_ns, opt->end_ns); // the gather waits for the updated shard
    int64_t last = 0;
    for (size_t i = 0; i < x.tl.n; i++)
        if (x.tl.ops[i].end_ns > last) last = x.tl.ops[i].end_ns;
    assert_int_equal(last, 2 * iteration);
    assert_true(fabs(x.mt.allreduce_exposed_ms - (double)(rs_ns + ag_ns) / 1e6) < 1e-12);
    assert_true(fabs(x.mt.optimizer_ms - 0.75) < 1e-12);
    assert_int_equal(x.tl.n, x.tl.cap); // the tail's rows were reserved with the rest
    for (size_t i = 0; i < x.tl.n; i++) // iteration 1 starts after every all-gather
        if (x.tl.ops[i].micro_batch >= 8 && x.tl.ops[i].stream == STREAM_COMPUTE)
            assert_true(x.tl.ops[i].start_ns >= iteration);
    sim_free(&x);
}

static void test_zero3_collectives_inside_ops(void **state) {
    (void)state; // F, B gather the chunk's weights, W scatters its gradients, BW both: exposed
    const char *z0[] = {"parallel.zero=0"}, *z3[] = {"parallel.zero=3"};
    Sim a, b;
    sim_run(&a, GPT13B, "g.scn", z0, 1);
    sim_run(&b, GPT13B, "g.scn", z3, 1);
    for (int32_t st = 0; st < 8; st++) {
        double bytes = (double)b.c.grad_bytes[st]; // 8 replicas in one node: NVLink
        int64_t rs = llround(ring_rs(8, 10, 450, bytes));
        int64_t ar = cost_allreduce_formula_ns(ALLREDUCE_RING, 8, 10, 450, bytes), ag = ar - rs;
        assert_int_equal(cost_op_ns(&b.c, st, OP_F) - cost_op_ns(&a.c, st, OP_F), ag);
        assert_int_equal(cost_op_ns(&b.c, st, OP_B) - cost_op_ns(&a.c, st, OP_B), ag);
        assert_int_equal(cost_op_ns(&b.c, st, OP_W) - cost_op_ns(&a.c, st, OP_W), rs);
        assert_int_equal(cost_op_ns(&b.c, st, OP_BW) - cost_op_ns(&a.c, st, OP_BW), ag + rs);
    }
    // no tail collectives: the next forward gathers; per iteration, m = 16 micro-batches of
    // device 0 gather twice and scatter once
    assert_int_equal(count_rows(&b, STREAM_REDUCE_SCATTER) + count_rows(&b, STREAM_ALL_GATHER) +
                         count_rows(&b, STREAM_COLLECTIVE), 0);
    assert_int_equal(count_rows(&b, STREAM_OPTIMIZER), 8);
    double ag0 = (double)cost_zero3_ns(&b.c, 0, OP_F), rs0 = (double)cost_zero3_ns(&b.c, 0, OP_W);
    assert_true(fabs(b.mt.all_gather_ms - 16 * 2 * ag0 / 1e6) < 1e-9); // stage 0 is largest
    assert_true(fabs(b.mt.reduce_scatter_ms - 16 * rs0 / 1e6) < 1e-9);
    assert_true(b.mt.makespan_ms > a.mt.makespan_ms);
    assert_true(fabs(b.mt.dev[0].weights_gib * 8 - a.mt.dev[0].weights_gib) < 1e-9);
    sim_free(&a);
    sim_free(&b);
}

static void expect_rejected(const char *const *sets, int n, const char *text_part) {
    Scenario s;
    char err[SCN_ERR_MAX];
    assert_int_equal(scenario_parse(GPT13B, "g.scn", sets, n, &s, err), 2);
    if (!strstr(err, text_part)) fail_msg("'%s' lacks '%s'", err, text_part);
    scenario_free(&s);
}

static void test_bad_input_and_round_trip(void **state) {
    (void)state;
    const char *d1[] = {"parallel.data=1", "parallel.zero=2"};
    expect_rejected(d1, 2, "--set parallel.zero=2: zero = 2 shards over the data-parallel "
                           "replicas, but data = 1; use data > 1 or zero = 0");
    const char *big[] = {"parallel.zero=4"};
    expect_rejected(big, 1, "zero");
    const char *async[] = {"parallel.zero=1", "pipeline.schedule=pipedream"};
    expect_rejected(async, 2, "asynchronous schedules");
    const char *file_line =
        "[model]\nlayers = 4\nhidden = 64\nheads = 4\nseq_len = 16\nvocab = 64\n"
        "[batch]\nmicro_batches = 4\n[pipeline]\nstages = 2\nschedule = 1f1b\n"
        "[parallel]\nzero = 1\n[hardware]\ngpu = h100\n";
    Scenario s;
    char err[SCN_ERR_MAX];
    assert_int_equal(scenario_parse(file_line, "f.scn", NULL, 0, &s, err), 2);
    assert_non_null(strstr(err, "f.scn:13: zero = 1 shards"));
    scenario_free(&s);
    // scenario_format writes zero back and the text parses to the same level
    const char *z3[] = {"parallel.zero=3"};
    assert_int_equal(scenario_parse(GPT13B, "g.scn", z3, 1, &s, err), 0);
    char *text = scenario_format(&s);
    assert_non_null(strstr(text, "\nzero = 3\n"));
    Scenario back;
    assert_int_equal(scenario_parse(text, "back.scn", NULL, 0, &back, err), 0);
    assert_int_equal(back.parallel.zero, 3);
    assert_int_equal(scenario_zero(&back), 3);
    free(text);
    scenario_free(&s);
    scenario_free(&back);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paper_figure_1),
        cmocka_unit_test(test_layer_cap_grows_with_zero),
        cmocka_unit_test(test_reduce_scatter_plus_all_gather_is_all_reduce),
        cmocka_unit_test(test_optimizer_step_on_a_shard),
        cmocka_unit_test(test_1f1b_iteration_closed_form),
        cmocka_unit_test(test_zero3_collectives_inside_ops),
        cmocka_unit_test(test_bad_input_and_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
