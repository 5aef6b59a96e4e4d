/* tests/test_sched_dual.c: DualPipe and DualPipeV against DeepSeek-V3 Table 2, exactly, at zero
 * communication. Bubble = the largest gap between a device's span and its busy time (the
 * devices at the pipe ends have it): (PP/2 - 1)(F&B + B - 3W) for DualPipe, (p - 1)(...) for
 * DualPipeV (its PP = 2p stages on p devices), in DeepSeek's terms (B the full backward) with
 * F&B unset, and with pipesim's B when a pair hides one W. PP + 1 chunk activations in flight,
 * twice the parameters (DualPipe), the fused-pair rules of engine, checker and metrics, and
 * the schedules' constraints. */
#include <math.h>
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
#include "sim/metrics/metrics.h"
#include "sim/plan/plan.h"
#include "sim/program/program.h"
#include "sim/scenario/scenario.h"
#include "sim/sched/schedule.h"
#include "sim_fixture.h"

/* Uniform costs with the fused pair at fb ns. */
static CostModel costs(int32_t stages, int64_t f, int64_t b, int64_t w, int64_t fb) {
    CostModel c = cost_uniform(stages, f, b, w, 0, 0, 64);
    c.fused_ns = fb;
    return c;
}

static void build(const char *name, int32_t p, int32_t m, Program *pr) {
    SchedParams sp = {.devices = p, .chunks = 2, .micro_batches = m, .iterations = 1};
    SchedIssue issue;
    char why[512];
    assert_int_equal(sched_find(name)->validate(&sp, &issue), 0);
    assert_int_equal(sched_find(name)->build(&sp, pr, &issue), 0);
    if (program_check(pr, why, sizeof why) != 0) fail_msg("%s p=%d m=%d: %s", name, p, m, why);
}

/* The largest (span - busy) over the devices, busy being the union of compute rows. */
static int64_t bubble(const Program *pr, const CostModel *c) {
    Timeline tl = {0};
    char why[512];
    assert_int_equal(engine_run(pr, c, 1, &tl, why, sizeof why), 0);
    int64_t worst = 0;
    for (int32_t d = 0; d < pr->devices; d++) {
        int64_t first = INT64_MAX, last = INT64_MIN, busy = 0;
        for (size_t i = 0; i < tl.n; i++) {
            const TimelineOp *r = &tl.ops[i];
            if (r->device != d || r->stream != STREAM_COMPUTE) continue;
            int64_t from = r->start_ns > last ? r->start_ns : last;
            if (r->end_ns > from) busy += r->end_ns - from;
            if (r->start_ns < first) first = r->start_ns;
            if (r->end_ns > last) last = r->end_ns;
        }
        if (last - first - busy > worst) worst = last - first - busy;
    }
    timeline_free(&tl);
    return worst;
}

/* One DualPipe(V) bubble case: pipesim's F, B (input gradient), W and the pair's cost fb (0:
 * the default sum F + B + W); the closed form is checked with DeepSeek's b_full as B. */
typedef struct { int64_t f, b, w, fb, b_full; } BubbleCase;

static void check_bubble(const char *name, int32_t half_of, const BubbleCase *bc, size_t n) {
    for (int32_t p = 2; p <= 12; p += 2)
        for (int32_t m = 2 * p; m <= 5 * p; m += 2)
            for (size_t k = 0; k < n; k++) {
                Program pr;
                build(name, p, m, &pr);
                CostModel c = costs(2 * p, bc[k].f, bc[k].b, bc[k].w, bc[k].fb);
                int64_t fb = cost_fused_ns(&c, 0, OP_F, 0, OP_BW);
                int64_t want = (half_of ? p / 2 - 1 : p - 1) * (fb + bc[k].b_full - 3 * bc[k].w);
                int64_t got = bubble(&pr, &c);
                if (got != want) fail_msg("%s p=%d m=%d F=%lld B=%lld W=%lld F&B=%lld: bubble "
                                          "%lld, want %lld", name, p, m, (long long)bc[k].f,
                                          (long long)bc[k].b, (long long)bc[k].w, (long long)fb,
                                          (long long)got, (long long)want);
                cost_free(&c);
                program_free(&pr);
            }
}

/* Table 2 in DeepSeek's own terms: B is the full backward (pipesim's B + W) and F&B, unset,
 * is F + B + W (a dense model gains nothing from the overlap). Exact for F <= B and W <= B
 * (pipesim's B); W may exceed F. */
static const BubbleCase DEEPSEEK[] = {
    {3000, 3000, 1000, 0, 4000}, {1000, 2000, 1000, 0, 3000}, {1000, 3000, 2500, 0, 5500},
    {500, 4000, 4000, 0, 8000},  {1, 1000, 999, 0, 1999},     {7, 11, 5, 0, 16},
    {1000003, 1000003, 999999, 0, 2000002}};
/* The same form with pipesim's B in B's place holds when the pair hides exactly one W
 * (F&B = F + B), for F = B and W <= F. */
static const BubbleCase HIDDEN_W[] = {
    {2000, 2000, 1000, 4000, 2000}, {3000, 3000, 1000, 6000, 3000}, {3000, 3000, 3000, 6000, 3000},
    {5000, 5000, 2000, 10000, 5000}, {1000003, 1000003, 999999, 2000006, 1000003}};
#define NCASES(a) (sizeof a / sizeof a[0])

static void test_dualpipe_bubble(void **state) {
    (void)state;
    check_bubble("dualpipe", 1, DEEPSEEK, NCASES(DEEPSEEK));
    check_bubble("dualpipe", 1, HIDDEN_W, NCASES(HIDDEN_W));
}

static void test_dualpipev_bubble(void **state) {
    (void)state;
    check_bubble("dualpipev", 0, DEEPSEEK, NCASES(DEEPSEEK));
    check_bubble("dualpipev", 0, HIDDEN_W, NCASES(HIDDEN_W));
}

/* Most chunk activations device d holds at once (from F to W or BW). */
static int32_t peak_held(const Program *pr, int32_t d) {
    int32_t held = 0, peak = 0;
    for (int64_t i = pr->start[d]; i < pr->start[d + 1]; i++) {
        OpKind k = (OpKind)pr->ops[i].kind;
        held += k == OP_F ? 1 : (k == OP_W || k == OP_BW) ? -1 : 0;
        if (held > peak) peak = held;
    }
    return peak;
}

/* Table 2's PP + 1 activations per device, in chunks: a DualPipe chunk is one stage of a
 * copy (L/p layers, the unit 1F1B's p is counted in), so p + 1; a DualPipeV chunk is one of
 * its PP = 2p stages (L/2p layers), so 2p + 1. Independent of m. */
static void test_activations(void **state) {
    (void)state;
    for (int32_t p = 2; p <= 16; p += 2)
        for (int32_t m = 2 * p; m <= 6 * p; m += 2 * p) {
            Program pr;
            build("dualpipe", p, m, &pr);
            assert_int_equal(pr.pipes, 2);
            for (int32_t d = 0; d < p; d++) assert_int_equal(peak_held(&pr, d), p + 1);
            program_free(&pr);
            build("dualpipev", p, m + 1, &pr);
            for (int32_t d = 0; d < p; d++) assert_int_equal(peak_held(&pr, d), 2 * p + 1);
            program_free(&pr);
        }
}

#define DUAL_SCN(SCHED, EXTRA)                                                                 \
    "[model]\nlayers = 8\nhidden = 64\nheads = 4\nseq_len = 32\nvocab = 128\n"              \
    "[batch]\nmicro_batches = 8\n[pipeline]\nstages = 4\nchunks = 2\nschedule = " SCHED "\n" \
    "[hardware]\ngpu = h100\n[costs]\nforward_ms = 2\nbackward_ms = 2\nweight_ms = 1\n"      \
    "comm_ms = 0\n" EXTRA

/* overlap_fb_ms prices a pair (per device, each of 2 chunks half of it), and metrics count
 * the pair's interval once: busy = the device's unfused ops + its pairs x F&B, which is less
 * than the sum of its compute rows by one F&B per pair. */
static void test_metrics_count_a_pair_once(void **state) {
    (void)state;
    Sim x;
    sim_run(&x, DUAL_SCN("dualpipe", "overlap_fb_ms = 3\n"), "dual.scn", NULL, 0);
    const int64_t F = 1000000, B = 1000000, W = 500000, FB = 1500000; // ns, one chunk
    assert_int_equal(x.c.fused_ns, FB);
    const int64_t cost[OP_KIND_COUNT] = {[OP_F] = F, [OP_B] = B, [OP_W] = W, [OP_BW] = B + W};
    for (int32_t d = 0; d < x.pr.devices; d++) {
        int64_t want = 0, rows = 0, pairs = 0;
        for (int64_t i = x.pr.start[d]; i < x.pr.start[d + 1]; i++) {
            int fused = x.pr.ops[i].flags & OPF_FUSED_NEXT;
            want += fused ? FB : cost[x.pr.ops[i].kind];
            pairs += fused;
            i += fused;
        }
        for (size_t i = 0; i < x.tl.n; i++)
            if (x.tl.ops[i].device == d && x.tl.ops[i].stream == STREAM_COMPUTE)
                rows += x.tl.ops[i].end_ns - x.tl.ops[i].start_ns;
        // step 4 and 5 of the eight: 2(n - 2h + r + 1) + (h - r - 1) pairs, n = 4, h = 2
        int32_t r = d < 3 - d ? d : 3 - d;
        assert_int_equal(pairs, 2 * (4 - 4 + r + 1) + (2 - r - 1));
        assert_int_equal(rows, want + pairs * FB);
        assert_true(fabs(x.mt.dev[d].busy_ms - (double)want / 1e6) < 1e-12);
    }
    sim_free(&x);
}

/* Table 2's 2x parameters: each DualPipe device holds a stage of both copies, 2L/p layers,
 * twice 1F1B's L/p; DualPipeV's two chunks of the one copy hold L/p, as 1F1B does. */
static void test_parameters(void **state) {
    (void)state;
    static const struct { const char *sched; int32_t layers; } cases[] = {
        {"dualpipe", 2 * 8 / 4}, {"dualpipev", 8 / 4}, {"zb-v", 8 / 4}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char text[1024];
        snprintf(text, sizeof text, DUAL_SCN("%s", ""), cases[k].sched);
        Sim x;
        sim_run(&x, text, "dual.scn", NULL, 0);
        for (int32_t d = 0; d < 4; d++) assert_int_equal(x.mt.dev[d].layers, cases[k].layers);
        sim_free(&x);
    }
}

static void test_fused_pair_in_engine(void **state) {
    (void)state; // device 1 fuses F of mb 1 with BW of mb 0: it waits for both inputs
    Program pr;
    assert_int_equal(program_init(&pr, 2, 1, 2, PLACE_LOOPED, 8), 0);
    program_push(&pr, 0, OP_F, 0, 0);
    program_push(&pr, 0, OP_F, 1, 0);
    program_push(&pr, 0, OP_BW, 0, 0);
    program_push(&pr, 0, OP_BW, 1, 0);
    program_push(&pr, 1, OP_F, 0, 0);
    program_push(&pr, 1, OP_F, 1, 0);
    pr.ops[pr.nops - 1].flags = OPF_FUSED_NEXT;
    program_push(&pr, 1, OP_BW, 0, 0);
    program_push(&pr, 1, OP_BW, 1, 0);
    program_end(&pr);
    char why[512];
    assert_int_equal(program_check(&pr, why, sizeof why), 0);
    // F = 10, BW = 30, F&B = 25, transfers 5: device 1 gets mb 1 at 10 + 10 + 5 = 25, and
    // has mb 0's F done at 25, so the pair runs 25..50, then BW of mb 1 50..80
    CostModel c = costs(2, 10, 20, 10, 25);
    c.xfer_intra_ns = c.xfer_inter_ns = 5;
    Timeline tl = {0};
    assert_int_equal(engine_run(&pr, &c, 1, &tl, why, sizeof why), 0);
    int pair = 0;
    for (size_t i = 0; i < tl.n; i++) {
        const TimelineOp *r = &tl.ops[i];
        if (r->device != 1 || r->stream != STREAM_COMPUTE || r->start_ns != 25) continue;
        assert_int_equal(r->end_ns, 50);
        pair++;
    }
    assert_int_equal(pair, 2);
    int64_t last = 0;
    for (size_t i = 0; i < tl.n; i++)
        if (tl.ops[i].end_ns > last) last = tl.ops[i].end_ns;
    // device 0: BW mb 0 gets its gradient at 55, 55..85; BW mb 1 at 85 (arrived 85) .. 115
    assert_int_equal(last, 115);
    timeline_free(&tl);
    cost_free(&c);
    program_free(&pr);
}

static void test_checker_rejects_bad_pairs(void **state) {
    (void)state; // one device, one stage: ops (kind, micro-batch), the flag on op `fuse`
    static const struct { int kind[2], mb[2], fuse, flag; const char *want; } cases[] = {
        {{OP_F, OP_F}, {0, 1}, 0, OPF_FUSED_NEXT, "is fused with an op that is not its counterpart"},
        {{OP_F, OP_W}, {0, 1}, 0, OPF_FUSED_NEXT, "is fused with an op that is not its counterpart"},
        {{OP_F, OP_BW}, {1, 0}, 1, OPF_FUSED_NEXT, "is fused with a next op that does not exist"},
        {{OP_F, OP_BW}, {1, 0}, 0, 4, "has unknown flags"},
        {{OP_F, OP_BW}, {0, 0}, 0, OPF_FUSED_NEXT, "fused ops would wait on each other"},
        {{OP_B, OP_F}, {0, 0}, 0, OPF_FUSED_NEXT, "fused ops would wait on each other"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Program pr;
        assert_int_equal(program_init(&pr, 1, 1, 2, PLACE_LOOPED, 4), 0);
        for (int k = 0; k < 2; k++) program_push(&pr, 0, (OpKind)cases[i].kind[k], cases[i].mb[k], 0);
        pr.ops[cases[i].fuse].flags = (uint8_t)cases[i].flag;
        program_end(&pr);
        char why[512];
        assert_int_equal(program_check(&pr, why, sizeof why), -1);
        if (!strstr(why, cases[i].want)) fail_msg("case %zu: '%s'", i, why);
        program_free(&pr);
    }
}

/* A whole program that fuses a micro-batch's last forward with its own loss backward is
 * rejected by name, where without the rule it would only be a deadlock. */
static void test_checker_rejects_self_pair(void **state) {
    (void)state;
    Program pr;
    assert_int_equal(program_init(&pr, 2, 1, 2, PLACE_LOOPED, 8), 0);
    static const int ops[2][4][2] = {{{OP_F, 0}, {OP_F, 1}, {OP_BW, 1}, {OP_BW, 0}},
                                     {{OP_F, 0}, {OP_F, 1}, {OP_BW, 1}, {OP_BW, 0}}};
    for (int32_t d = 0; d < 2; d++)
        for (int k = 0; k < 4; k++) program_push(&pr, d, (OpKind)ops[d][k][0], ops[d][k][1], 0);
    char why[512];
    program_end(&pr);
    assert_int_equal(program_check(&pr, why, sizeof why), 0); // unfused it is fine
    pr.ops[pr.start[1] + 1].flags = OPF_FUSED_NEXT;           // F of mb 1 & BW of mb 1
    assert_int_equal(program_check(&pr, why, sizeof why), -1);
    assert_non_null(strstr(why, "device 1 op 1"));
    assert_non_null(strstr(why, "fused ops would wait on each other"));
    program_free(&pr);
}

/* DeepSeek's assertions: p even (dualpipe), m even (dualpipe), m >= 2p (both); chunks = 2. */
static void test_constraints(void **state) {
    (void)state;
    SchedIssue issue = {0};
    SchedParams sp = {.devices = 3, .chunks = 2, .micro_batches = 8, .iterations = 1};
    assert_int_equal(sched_find("dualpipe")->validate(&sp, &issue), -1);
    assert_string_equal(issue.key, "pipeline.stages");
    sp.devices = 4, sp.micro_batches = 9;
    assert_int_equal(sched_find("dualpipe")->validate(&sp, &issue), -1);
    assert_string_equal(issue.key, "batch.micro_batches");
    assert_non_null(strstr(issue.msg, "must be even"));
    sp.micro_batches = 6; // the eight steps would run (m/2 >= p-1), DeepSeek's code would not
    assert_int_equal(sched_find("dualpipe")->validate(&sp, &issue), -1);
    assert_string_equal(issue.key, "batch.micro_batches");
    assert_non_null(strstr(issue.msg, "use micro_batches = 8 or more"));
    sp.micro_batches = 7;
    assert_int_equal(sched_find("dualpipev")->validate(&sp, &issue), -1);
    assert_non_null(strstr(issue.msg, "use micro_batches = 8 or more"));
    sp.micro_batches = 8;
    assert_int_equal(sched_find("dualpipe")->validate(&sp, &issue), 0);
    assert_int_equal(sched_find("dualpipev")->validate(&sp, &issue), 0);
    sp.devices = 3, sp.micro_batches = 6; // dualpipev takes odd p
    assert_int_equal(sched_find("dualpipev")->validate(&sp, &issue), 0);
    sp.chunks = 1;
    assert_int_equal(sched_find("dualpipev")->validate(&sp, &issue), -1);
    assert_string_equal(issue.key, "pipeline.chunks");
    sp.devices = 4, sp.micro_batches = 8;
    assert_int_equal(sched_find("dualpipe")->validate(&sp, &issue), -1);
    assert_string_equal(issue.key, "pipeline.chunks");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dualpipe_bubble),      cmocka_unit_test(test_dualpipev_bubble),
        cmocka_unit_test(test_activations),          cmocka_unit_test(test_fused_pair_in_engine),
        cmocka_unit_test(test_checker_rejects_bad_pairs), cmocka_unit_test(test_checker_rejects_self_pair),
        cmocka_unit_test(test_constraints),          cmocka_unit_test(test_metrics_count_a_pair_once),
        cmocka_unit_test(test_parameters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
