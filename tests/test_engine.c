/* tests/test_engine.c: the event engine against closed forms from the literature, with exact
 * integer-ns tolerance: GPipe and 1F1B (m+p-1)(F+B) (Huang et al. 2019; Narayanan et al.
 * 2021), interleaved m(F+B) + (p-1)(F+B)/v, the per-hop communication rule, FIFO links,
 * stalls, determinism and iterations. Costs are set directly, without a scenario. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sim/model/cost.h"
#include "cost_fixture.h"
#include "sim/engine/engine.h"
#include "sim/program/program.h"
#include "sim/sched/schedule.h"

#define MS 1000000LL // ns

static void build(const char *name, int32_t p, int32_t v, int32_t m, Program *pr) {
    const Schedule *s = sched_find(name);
    assert_non_null(s);
    SchedParams sp = {.devices = p, .chunks = v, .micro_batches = m, .iterations = 1};
    SchedIssue issue;
    assert_int_equal(s->validate(&sp, &issue), 0);
    assert_int_equal(s->build(&sp, pr, &issue), 0);
    char why[512];
    assert_int_equal(program_check(pr, why, sizeof why), 0);
}

static int64_t makespan(const Timeline *tl) {
    int64_t first = INT64_MAX, last = INT64_MIN;
    for (size_t i = 0; i < tl->n; i++) {
        if (tl->ops[i].start_ns < first) first = tl->ops[i].start_ns;
        if (tl->ops[i].end_ns > last) last = tl->ops[i].end_ns;
    }
    return last - first;
}

/* Simulates and returns the makespan in ns; keeps the timeline in *tl when tl != NULL. */
static int64_t run(const char *name, int32_t p, int32_t v, int32_t m, const CostModel *c,
                   int32_t iterations, Timeline *keep) {
    Program pr;
    build(name, p, v, m, &pr);
    Timeline tl = {0};
    char why[512];
    assert_int_equal(engine_run(&pr, c, iterations, &tl, why, sizeof why), 0);
    int64_t span = makespan(&tl);
    if (keep) *keep = tl;
    else timeline_free(&tl);
    program_free(&pr);
    return span;
}

static void test_gpipe_and_1f1b_makespan(void **state) {
    (void)state;
    static const int32_t P[] = {1, 2, 4, 8, 5};
    static const int32_t M[] = {1, 3, 8, 16, 33};
    const char *names[] = {"gpipe", "1f1b"};
    for (size_t n = 0; n < 2; n++)
        for (size_t i = 0; i < 5; i++)
            for (size_t j = 0; j < 5; j++) {
                int32_t p = P[i], m = M[j];
                CostModel c = cost_uniform(p, 1 * MS, 2 * MS, 0, 0, 0, 8);
                assert_int_equal(run(names[n], p, 1, m, &c, 1, NULL), (m + p - 1) * 3 * MS);
                cost_free(&c);
            }
}

static void test_bw_split_costs_sum(void **state) {
    (void)state; // B + W run as one BW op: same makespan as B' = B + W
    CostModel c = cost_uniform(4, 3 * MS, 2 * MS, 5 * MS, 0, 0, 8);
    assert_int_equal(run("1f1b", 4, 1, 8, &c, 1, NULL), (8 + 4 - 1) * 10 * MS);
    cost_free(&c);
}

static void test_interleaved_issue_example(void **state) {
    (void)state; // p=4, m=8, v=2, F=1, B=2 per device stage: 24 + 3*3/2 = 28.5 ms
    CostModel c = cost_uniform(8, MS / 2, MS, 0, 0, 0, 8);
    assert_int_equal(run("interleaved", 4, 2, 8, &c, 1, NULL), 28500000);
    cost_free(&c);
}

static void test_interleaved_bubble_closed_form(void **state) {
    (void)state;
    static const int32_t cases[][3] = {{2, 2, 2}, {2, 4, 3}, {4, 4, 2}, {4, 8, 4}, {4, 16, 2},
                                       {8, 16, 2}, {8, 32, 5}, {3, 9, 3}, {8, 8, 4}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int32_t p = cases[i][0], m = cases[i][1], v = cases[i][2];
        int64_t f = 60 * MS, b = 120 * MS; // per device; divisible by every v above
        CostModel c = cost_uniform(p * v, f / v, b / v, 0, 0, 0, 8);
        int64_t want = m * (f + b) + (p - 1) * (f + b) / v;
        assert_int_equal(run("interleaved", p, v, m, &c, 1, NULL), want);
        cost_free(&c);
    }
}

/* Most activations held at once per device, from the timeline: +1 at F, -1 at BW. */
static void peak_in_flight(const Timeline *tl, int32_t p, int32_t *peak) {
    int32_t *held = calloc((size_t)p, sizeof *held);
    memset(peak, 0, (size_t)p * sizeof *peak);
    for (size_t i = 0; i < tl->n; i++) { // rows of one device are in time order
        const TimelineOp *r = &tl->ops[i];
        if (r->stream != STREAM_COMPUTE) continue;
        held[r->device] += r->kind == OP_F ? 1 : -1;
        if (held[r->device] > peak[r->device]) peak[r->device] = held[r->device];
    }
    free(held);
}

static void test_peak_in_flight(void **state) {
    (void)state;
    int32_t p = 6, m = 10, peak[6];
    CostModel c = cost_uniform(p, MS, 2 * MS, 0, 0, 0, 8);
    Timeline tl;
    run("1f1b", p, 1, m, &c, 1, &tl);
    peak_in_flight(&tl, p, peak);
    for (int32_t s = 0; s < p; s++) assert_int_equal(peak[s], p - s);
    timeline_free(&tl);
    run("gpipe", p, 1, m, &c, 1, &tl);
    peak_in_flight(&tl, p, peak);
    for (int32_t s = 0; s < p; s++) assert_int_equal(peak[s], m);
    timeline_free(&tl);
    cost_free(&c);
}

static void test_every_op_once(void **state) {
    (void)state;
    int32_t p = 4, v = 3, m = 8;
    CostModel c = cost_uniform(p * v, MS, 2 * MS, 0, MS / 10, MS / 10, 8);
    Timeline tl;
    run("interleaved", p, v, m, &c, 1, &tl);
    uint8_t *seen = calloc((size_t)(p * v * m * 2), 1);
    size_t compute = 0, sends = 0, recvs = 0;
    for (size_t i = 0; i < tl.n; i++) {
        const TimelineOp *r = &tl.ops[i];
        if (r->stream == STREAM_SEND) sends++;
        if (r->stream == STREAM_RECV) recvs++;
        if (r->stream != STREAM_COMPUTE) continue;
        compute++;
        size_t k = ((size_t)(r->device * v + r->chunk) * m + r->micro_batch) * 2 +
                   (r->kind == OP_BW);
        assert_int_equal(seen[k], 0);
        seen[k] = 1;
    }
    assert_int_equal(compute, (size_t)(2 * p * v * m));
    // every stage boundary is crossed once forward and once backward per micro-batch
    assert_int_equal(sends, (size_t)(2 * (p * v - 1) * m));
    assert_int_equal(recvs, sends);
    free(seen);
    timeline_free(&tl);
    cost_free(&c);
}

static void test_comm_per_hop_rule(void **state) {
    (void)state; // GPipe: each hop adds its transfer time once forward and once backward
    int32_t p = 4;
    int64_t x = MS / 4, a = MS / 10, b = MS / 2;
    for (int32_t m = 1; m <= 16; m *= 2) {
        CostModel c = cost_uniform(p, MS, 2 * MS, 0, x, x, 8);
        int64_t base = (m + p - 1) * 3 * MS;
        assert_int_equal(run("gpipe", p, 1, m, &c, 1, NULL), base + 2 * (p - 1) * x);
        // 1F1B equals it for m <= 2; beyond, a backward that waits for its gradient also
        // holds back the forward ordered behind it (see the steady-state test)
        if (m <= 2) assert_int_equal(run("1f1b", p, 1, m, &c, 1, NULL), base + 2 * (p - 1) * x);
        cost_free(&c);
        // nodes of 2 devices: hops 0-1 and 2-3 are intra (a), 1-2 inter (b)
        c = cost_uniform(p, MS, 2 * MS, 0, a, b, 2);
        assert_int_equal(run("gpipe", p, 1, m, &c, 1, NULL), base + 2 * (2 * a + b));
        cost_free(&c);
    }
}

static void test_1f1b_steady_state_with_comm(void **state) {
    (void)state; // stage 0 keeps p micro-batches in flight over a round trip of p(F+B) plus
    // 2(p-1) hops, so in steady state p more micro-batches cost p(F+B) + 2(p-1)c exactly
    static const int32_t P[] = {2, 3, 4, 6, 8};
    for (size_t i = 0; i < 5; i++) {
        int32_t p = P[i];
        int64_t x = MS / 4;
        CostModel c = cost_uniform(p, MS, 2 * MS, 0, x, x, 8);
        for (int32_t m = 2 * p; m <= 4 * p; m += p) {
            int64_t d = run("1f1b", p, 1, m + p, &c, 1, NULL) - run("1f1b", p, 1, m, &c, 1, NULL);
            assert_int_equal(d, p * 3 * MS + 2 * (p - 1) * x);
        }
        cost_free(&c);
    }
}

static void test_fifo_link_queueing(void **state) {
    (void)state; // transfers (3 ms) slower than forwards (1 ms) queue on the link; by hand:
    // fwd link arrivals 4,7,10,13; stage 1 F ends 14, B 14-22; grads sent 16,18,20,22 arrive
    // 19,22,25,28; stage 0 B ends 21,24,27,30.
    CostModel c = cost_uniform(2, MS, 2 * MS, 0, 3 * MS, 3 * MS, 8);
    Timeline tl;
    assert_int_equal(run("gpipe", 2, 1, 4, &c, 1, &tl), 30 * MS);
    int64_t want_recv_f[] = {4, 7, 10, 13}, want_recv_b[] = {19, 22, 25, 28};
    int nf = 0, nb = 0;
    for (size_t i = 0; i < tl.n; i++) {
        const TimelineOp *r = &tl.ops[i];
        if (r->stream != STREAM_RECV) continue;
        if (r->kind == OP_F) assert_int_equal(r->end_ns, want_recv_f[nf++] * MS);
        else assert_int_equal(r->end_ns, want_recv_b[nb++] * MS);
        assert_int_equal(r->end_ns - r->start_ns, 3 * MS);
    }
    assert_int_equal(nf, 4);
    assert_int_equal(nb, 4);
    timeline_free(&tl);
    cost_free(&c);
}

static void test_iterations_flush(void **state) {
    (void)state;
    CostModel c = cost_uniform(4, MS, 2 * MS, 0, MS / 10, MS / 10, 8);
    int64_t one = run("1f1b", 4, 1, 8, &c, 1, NULL);
    Timeline tl;
    assert_int_equal(run("1f1b", 4, 1, 8, &c, 3, &tl), 3 * one);
    cost_free(&c);
    int32_t max_mb = 0;
    for (size_t i = 0; i < tl.n; i++)
        if (tl.ops[i].micro_batch > max_mb) max_mb = tl.ops[i].micro_batch;
    assert_int_equal(max_mb, 3 * 8 - 1);
    timeline_free(&tl);
}

static void test_deterministic(void **state) {
    (void)state;
    CostModel c = cost_uniform(8, 700001, 1300007, 0, 123457, 654321, 2);
    Timeline a, b;
    run("interleaved", 4, 2, 12, &c, 2, &a);
    run("interleaved", 4, 2, 12, &c, 2, &b);
    assert_int_equal(a.n, b.n);
    assert_memory_equal(a.ops, b.ops, a.n * sizeof *a.ops);
    timeline_free(&a);
    timeline_free(&b);
    cost_free(&c);
}

static void test_input_arriving_as_its_op_ends(void **state) {
    (void)state; // GPipe p=2 m=2, F = B = transfer = 1 ms. Device 1's F mb 0 runs 2-3 ms and
    // mb 1's activation (sent 2-3, the link busy 1-2 with mb 0) arrives at 3 ms exactly:
    // arrivals come before op ends at equal times, so F mb 1 starts at 3 ms, not later.
    CostModel c = cost_uniform(2, MS, MS, 0, MS, MS, 8);
    Timeline tl;
    assert_int_equal(run("gpipe", 2, 1, 2, &c, 1, &tl), (2 + 2 - 1) * 2 * MS + 2 * MS);
    int found = 0;
    for (size_t i = 0; i < tl.n; i++) {
        const TimelineOp *r = &tl.ops[i];
        if (r->device != 1 || r->kind != OP_F || r->micro_batch != 1) continue;
        if (r->stream == STREAM_RECV) assert_int_equal(r->end_ns, 3 * MS), found++;
        if (r->stream == STREAM_COMPUTE) assert_int_equal(r->start_ns, 3 * MS), found++;
    }
    assert_int_equal(found, 2);
    timeline_free(&tl);
    cost_free(&c);
}

static void test_appends_after_earlier_rows(void **state) {
    (void)state; // rows already there stay, and the run's rows follow exactly as in an empty
    // timeline, whether the timeline is full (no room left) or has room to spare
    CostModel c = cost_uniform(8, 700001, 1300007, 0, 123457, 654321, 2);
    Program pr;
    build("interleaved", 4, 2, 12, &pr);
    char why[512];
    Timeline fresh = {0};
    assert_int_equal(engine_run(&pr, &c, 2, &fresh, why, sizeof why), 0);
    for (size_t spare = 0; spare <= 100000; spare += 100000) {
        Timeline tl = {0};
        assert_int_equal(timeline_reserve(&tl, 5 + spare), 0);
        for (int i = 0; i < 5; i++) {
            TimelineOp r = {.start_ns = i, .end_ns = 100 * MS + i, .device = i, .peer = -1};
            assert_int_equal(timeline_push(&tl, &r), 0);
        }
        assert_int_equal(engine_run(&pr, &c, 2, &tl, why, sizeof why), 0);
        assert_int_equal(tl.n, 5 + fresh.n);
        for (int i = 0; i < 5; i++) assert_int_equal(tl.ops[i].end_ns, 100 * MS + i);
        assert_memory_equal(tl.ops + 5, fresh.ops, fresh.n * sizeof *fresh.ops);
        timeline_free(&tl);
    }
    timeline_free(&fresh);
    program_free(&pr);
    cost_free(&c);
}

/* Two devices, two micro-batches, in an order that can never finish: device 1 wants mb 1
 * first, which device 0 only forwards after the backward of mb 0. */
static void deadlocked(Program *pr) {
    assert_int_equal(program_init(pr, 2, 1, 2, PLACE_LOOPED, 8), 0);
    static const int ops[2][4][2] = {{{OP_F, 0}, {OP_BW, 0}, {OP_F, 1}, {OP_BW, 1}},
                                     {{OP_F, 1}, {OP_BW, 1}, {OP_F, 0}, {OP_BW, 0}}};
    for (int d = 0; d < 2; d++)
        for (int i = 0; i < 4; i++) program_push(pr, d, ops[d][i][0], ops[d][i][1], 0);
    program_end(pr);
}

static void test_checker_rejects_deadlock(void **state) {
    (void)state;
    Program pr;
    deadlocked(&pr);
    char why[512];
    assert_int_equal(program_check(&pr, why, sizeof why), -1);
    assert_non_null(strstr(why, "deadlock"));
    assert_non_null(strstr(why, "device 0 op 1 (BW mb 0 chunk 0)"));
    program_free(&pr);
}

static void test_engine_reports_stall(void **state) {
    (void)state; // the engine, given an unchecked program, names what waits instead of hanging
    Program pr;
    deadlocked(&pr);
    CostModel c = cost_uniform(2, MS, 2 * MS, 0, 0, 0, 8);
    Timeline tl = {0};
    char why[512];
    assert_int_equal(engine_run(&pr, &c, 1, &tl, why, sizeof why), -2);
    assert_non_null(strstr(why, "device 0 op 1 (BW mb 0 chunk 0) waits for its gradient from device 1"));
    assert_non_null(strstr(why, "device 1 op 0 (F mb 1 chunk 0) waits for its activation from device 0"));
    timeline_free(&tl);
    cost_free(&c);
    program_free(&pr);
}

static void test_checker_rejects_nccl_misorder(void **state) {
    (void)state; // device 1 takes mb 1 before mb 0: psim could run it, NCCL would not
    Program pr;
    assert_int_equal(program_init(&pr, 2, 1, 2, PLACE_LOOPED, 8), 0);
    static const int ops[2][4][2] = {{{OP_F, 0}, {OP_F, 1}, {OP_BW, 0}, {OP_BW, 1}},
                                     {{OP_F, 1}, {OP_F, 0}, {OP_BW, 1}, {OP_BW, 0}}};
    for (int d = 0; d < 2; d++)
        for (int i = 0; i < 4; i++) program_push(&pr, d, ops[d][i][0], ops[d][i][1], 0);
    program_end(&pr);
    char why[512];
    assert_int_equal(program_check(&pr, why, sizeof why), -1);
    assert_non_null(strstr(why, "device 0 op 2 (BW mb 0 chunk 0): takes gradient message 1 of device 1's "
                                "sends to it as its receive 0; NCCL pairs sends and receives"));
    program_free(&pr);
}

static void test_checker_rejects_bad_ops(void **state) {
    (void)state;
    struct { int ops[3][3]; int n; const char *want; } cases[] = {
        {{{OP_F, 0, 0}, {OP_F, 0, 0}, {OP_BW, 0, 0}}, 3, "device 0 op 1 (F mb 0 chunk 0): appears twice"},
        {{{OP_BW, 0, 0}, {OP_F, 0, 0}}, 2, "device 0 op 0 (BW mb 0 chunk 0): comes before its forward"},
        {{{OP_F, 0, 0}, {OP_B, 0, 0}}, 2, "device 0 has no W for mb 0 chunk 0"},
        {{{OP_F, 0, 0}}, 1, "device 0 has no B or BW for mb 0 chunk 0"},
        {{{OP_F, 0, 0}, {OP_W, 0, 0}, {OP_B, 0, 0}}, 3, "device 0 op 1 (W mb 0 chunk 0): comes before its B"},
        {{{OP_F, 0, 0}, {OP_BW, 0, 0}, {OP_F, 5, 0}}, 3, "device 0 op 2 (F mb 5 chunk 0): kind, micro-batch or chunk out of range"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Program pr;
        assert_int_equal(program_init(&pr, 1, 1, 1, PLACE_LOOPED, 3), 0);
        for (int k = 0; k < cases[i].n; k++)
            program_push(&pr, 0, cases[i].ops[k][0], cases[i].ops[k][1], cases[i].ops[k][2]);
        program_end(&pr);
        char why[512];
        assert_int_equal(program_check(&pr, why, sizeof why), -1);
        if (!strstr(why, cases[i].want)) fail_msg("case %zu: got '%s'", i, why);
        program_free(&pr);
    }
}

static void test_schedule_constraints(void **state) {
    (void)state;
    SchedIssue issue;
    SchedParams sp = {.devices = 4, .chunks = 2, .micro_batches = 6, .iterations = 1};
    assert_int_equal(sched_find("interleaved")->validate(&sp, &issue), -1);
    assert_string_equal(issue.key, "batch.micro_batches");
    assert_non_null(strstr(issue.msg, "micro_batches = 8"));
    sp.micro_batches = 8, sp.chunks = 1;
    assert_int_equal(sched_find("interleaved")->validate(&sp, &issue), -1);
    assert_string_equal(issue.key, "pipeline.chunks");
    sp.chunks = 2;
    assert_int_equal(sched_find("1f1b")->validate(&sp, &issue), -1);
    assert_int_equal(sched_find("gpipe")->validate(&sp, &issue), -1);
    assert_null(sched_find("pipedreamx"));
}

static void test_1f1b_order_matches_megatron(void **state) {
    (void)state; // p=4, m=6, device 1: 2 warm-up forwards, then F/B pairs, then 2 backwards
    Program pr;
    build("1f1b", 4, 1, 6, &pr);
    static const int want[][2] = {{OP_F, 0}, {OP_F, 1}, {OP_F, 2}, {OP_BW, 0}, {OP_F, 3},
                                  {OP_BW, 1}, {OP_F, 4}, {OP_BW, 2}, {OP_F, 5}, {OP_BW, 3},
                                  {OP_BW, 4}, {OP_BW, 5}};
    assert_int_equal(program_len(&pr, 1), 12);
    for (int i = 0; i < 12; i++) {
        const ProgramOp *op = &pr.ops[pr.start[1] + i];
        assert_int_equal(op->kind, want[i][0]);
        assert_int_equal(op->micro_batch, want[i][1]);
    }
    program_free(&pr);
}

static void test_interleaved_order_matches_megatron(void **state) {
    (void)state; // p=2, v=2, m=4: device 0 warm-up (2-0-1)*2 + (2-1)*2 = 4 forwards:
    // F mb0 c0, F mb1 c0, F mb0 c1, F mb1 c1; then F mb2 c0 / B mb0 c1, ...
    Program pr;
    build("interleaved", 2, 2, 4, &pr);
    static const int want[][3] = {{OP_F, 0, 0},  {OP_F, 1, 0},  {OP_F, 0, 1},  {OP_F, 1, 1},
                                  {OP_F, 2, 0},  {OP_BW, 0, 1}, {OP_F, 3, 0},  {OP_BW, 1, 1},
                                  {OP_F, 2, 1},  {OP_BW, 0, 0}, {OP_F, 3, 1},  {OP_BW, 1, 0},
                                  {OP_BW, 2, 1}, {OP_BW, 3, 1}, {OP_BW, 2, 0}, {OP_BW, 3, 0}};
    assert_int_equal(program_len(&pr, 0), 16);
    for (int i = 0; i < 16; i++) {
        const ProgramOp *op = &pr.ops[pr.start[0] + i];
        assert_int_equal(op->kind, want[i][0]);
        assert_int_equal(op->micro_batch, want[i][1]);
        assert_int_equal(op->chunk, want[i][2]);
    }
    program_free(&pr);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gpipe_and_1f1b_makespan),
        cmocka_unit_test(test_bw_split_costs_sum),
        cmocka_unit_test(test_interleaved_issue_example),
        cmocka_unit_test(test_interleaved_bubble_closed_form),
        cmocka_unit_test(test_peak_in_flight),
        cmocka_unit_test(test_every_op_once),
        cmocka_unit_test(test_comm_per_hop_rule),
        cmocka_unit_test(test_1f1b_steady_state_with_comm),
        cmocka_unit_test(test_fifo_link_queueing),
        cmocka_unit_test(test_iterations_flush),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_checker_rejects_deadlock),
        cmocka_unit_test(test_engine_reports_stall),
        cmocka_unit_test(test_checker_rejects_bad_ops),
        cmocka_unit_test(test_checker_rejects_nccl_misorder),
        cmocka_unit_test(test_schedule_constraints),
        cmocka_unit_test(test_1f1b_order_matches_megatron),
        cmocka_unit_test(test_interleaved_order_matches_megatron),
        cmocka_unit_test(test_input_arriving_as_its_op_ends),
        cmocka_unit_test(test_appends_after_earlier_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
