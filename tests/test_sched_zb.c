/* tests/test_sched_zb.c: the zero-bubble schedules against Qi et al. 2023 (Table 2 and §2.3),
 * exactly, at zero communication: the longest device span of ZB-H1 is m(F+B+W) + (p-1)(F+B-W)
 * and of ZB-H2 m(F+B+W) + (p-1)(F+B-2W) whenever W <= min(F, B) and m >= p (H1) or
 * m >= 2p-1 (H2), and for any ratio the bounds that take over when W is larger (below);
 * ZB-H1 keeps 1F1B's p micro-batches between F and W on every device, ZB-H2 2p-1; ZB-V keeps
 * 1F1B's memory (2p half-size chunk activations on every device) and at F = B = W has no
 * bubble: longest span m(F+B+W), makespan m(F+B+W) + (p-1)F/2. */
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

static void build(const char *name, int32_t p, int32_t v, int32_t m, Program *pr) {
    SchedParams sp = {.devices = p, .chunks = v, .micro_batches = m, .iterations = 1};
    SchedIssue issue;
    char why[512];
    assert_int_equal(sched_find(name)->validate(&sp, &issue), 0);
    assert_int_equal(sched_find(name)->build(&sp, pr, &issue), 0);
    if (program_check(pr, why, sizeof why) != 0) fail_msg("%s p=%d m=%d: %s", name, p, m, why);
}

/* The longest device span (first compute start to last compute end on one device), the
 * "cost" that bubble_rate divides by; *whole, when not NULL, gets the makespan (first start
 * to last end over all devices). */
static int64_t spans(const char *name, int32_t p, int32_t v, int32_t m, int64_t f, int64_t b,
                     int64_t w, int64_t xfer, int64_t *whole) {
    Program pr;
    build(name, p, v, m, &pr);
    CostModel c = cost_uniform(p * v, f, b, w, xfer, xfer, 8);
    Timeline tl = {0};
    char why[512];
    assert_int_equal(engine_run(&pr, &c, 1, &tl, why, sizeof why), 0);
    int64_t span = timeline_longest_span(&tl, p, whole);
    timeline_free(&tl);
    cost_free(&c);
    program_free(&pr);
    return span;
}

static int64_t longest_span(const char *name, int32_t p, int32_t v, int32_t m, int64_t f,
                            int64_t b, int64_t w, int64_t xfer) {
    return spans(name, p, v, m, f, b, w, xfer, NULL);
}

/* Most (micro-batch, chunk) activations device d holds at once: from F to W, or, with
 * until_b, from F to B (what B needs; Qi et al.'s M_B). */
static int32_t peak_held(const Program *pr, int32_t d, int until_b) {
    int32_t held = 0, peak = 0;
    for (int64_t i = pr->start[d]; i < pr->start[d + 1]; i++) {
        OpKind k = (OpKind)pr->ops[i].kind;
        held += k == OP_F ? 1 : k == (until_b ? OP_B : OP_W) ? -1 : 0;
        if (held > peak) peak = held;
    }
    return peak;
}

/* F, B, W triples with W <= min(F, B), odd values so that no coincidence hides an error. */
static const int64_t RATIOS[][3] = {{1000003, 1000003, 1000003}, {2000003, 2000017, 1000001},
                                    {3000017, 2000003, 1000033}, {1000003, 3000017, 1000003},
                                    {1500007, 1700009, 1300021}};
#define NRATIOS (sizeof RATIOS / sizeof RATIOS[0])

/* W larger than F, B or both, where the paper's forms would undercut what is possible. */
static const int64_t WIDE_W[][3] = {{1000003, 1000003, 2000003}, {3000017, 1000003, 2000003},
                                    {1000003, 3000017, 2000003}, {2000003, 1000001, 5000011}};
#define NWIDE (sizeof WIDE_W / sizeof WIDE_W[0])

static int64_t max2(int64_t a, int64_t b) { return a > b ? a : b; }
static int64_t max3(int64_t a, int64_t b, int64_t c) { return max2(max2(a, b), c); }

static void test_zb_h1_bubble(void **state) {
    (void)state;
    static const int32_t P[] = {1, 2, 3, 4, 6, 8};
    for (size_t i = 0; i < 6; i++) {
        int32_t p = P[i];
        const int32_t M[] = {p, p + 1, 2 * p, 3 * p + 1};
        for (size_t j = 0; j < 4; j++)
            for (size_t r = 0; r < NRATIOS; r++) {
                int64_t F = RATIOS[r][0], B = RATIOS[r][1], W = RATIOS[r][2], m = M[j];
                int64_t want = m * (F + B + W) + (p - 1) * (F + B - W);
                assert_int_equal(longest_span("zb-h1", p, 1, (int32_t)m, F, B, W, 0), want);
            }
    }
}

/* Any ratio: device 0 holds at most p activations, so it waits (p-1)B for its first gradient,
 * and the last device cannot start before (p-1)F; ZB-H1 meets both bounds exactly:
 * longest span m(F+B+W) + (p-1) max(F+B-W, B), makespan m(F+B+W) + (p-1) max(F+B-W, F, B). */
static void test_zb_h1_any_ratio(void **state) {
    (void)state;
    static const int32_t P[] = {2, 3, 5, 8};
    for (size_t i = 0; i < 4; i++) {
        int32_t p = P[i];
        const int32_t M[] = {p, 2 * p + 1, 3 * p};
        for (size_t j = 0; j < 3; j++)
            for (size_t r = 0; r < NWIDE + NRATIOS; r++) {
                const int64_t *t = r < NWIDE ? WIDE_W[r] : RATIOS[r - NWIDE];
                int64_t F = t[0], B = t[1], W = t[2], m = M[j], whole;
                int64_t span = spans("zb-h1", p, 1, (int32_t)m, F, B, W, 0, &whole);
                assert_int_equal(span, m * (F + B + W) + (p - 1) * max2(F + B - W, B));
                assert_int_equal(whole, m * (F + B + W) + (p - 1) * max3(F + B - W, F, B));
            }
    }
}

/* Any ratio: device 0 runs 2p-1 forwards before its first gradient, which needs p forwards
 * and p-1 backwards, so it waits (p-1)(B-F) when B > F; ZB-H2's longest span is exactly
 * m(F+B+W) + (p-1) max(F+B-2W, B-F, 0). */
static void test_zb_h2_any_ratio(void **state) {
    (void)state;
    static const int32_t P[] = {2, 3, 5, 8};
    for (size_t i = 0; i < 4; i++) {
        int32_t p = P[i];
        const int32_t M[] = {2 * p - 1, 3 * p + 2};
        for (size_t j = 0; j < 2; j++)
            for (size_t r = 0; r < NWIDE + NRATIOS; r++) {
                const int64_t *t = r < NWIDE ? WIDE_W[r] : RATIOS[r - NWIDE];
                int64_t F = t[0], B = t[1], W = t[2], m = M[j];
                int64_t want = m * (F + B + W) + (p - 1) * max3(F + B - 2 * W, B - F, 0);
                assert_int_equal(longest_span("zb-h2", p, 1, (int32_t)m, F, B, W, 0), want);
            }
    }
}

static void test_zb_h2_bubble(void **state) {
    (void)state;
    static const int32_t P[] = {1, 2, 3, 4, 6, 8};
    for (size_t i = 0; i < 6; i++) {
        int32_t p = P[i];
        const int32_t M[] = {2 * p - 1, 2 * p, 3 * p + 1, 4 * p};
        for (size_t j = 0; j < 4; j++)
            for (size_t r = 0; r < NRATIOS; r++) {
                int64_t F = RATIOS[r][0], B = RATIOS[r][1], W = RATIOS[r][2], m = M[j];
                int64_t want = m * (F + B + W) + (p - 1) * (F + B - 2 * W);
                assert_int_equal(longest_span("zb-h2", p, 1, (int32_t)m, F, B, W, 0), want);
            }
    }
    // F = B = W: zero bubble, every device busy for its whole span
    assert_int_equal(longest_span("zb-h2", 4, 1, 12, 1000, 1000, 1000, 0), 12 * 3000);
}

static void test_zb_memory(void **state) {
    (void)state;
    for (int32_t p = 1; p <= 8; p++) {
        Program h1, h2;
        build("zb-h1", p, 1, 4 * p, &h1);
        build("zb-h2", p, 1, 4 * p, &h2);
        for (int32_t d = 0; d < p; d++) {
            assert_int_equal(peak_held(&h1, d, 0), p);           // p M_B, as 1F1B
            assert_int_equal(peak_held(&h1, d, 1), p - d);       // 1F1B's F..B window
            assert_int_equal(peak_held(&h2, d, 0), 2 * p - 1);   // (2p-1) M_B
            assert_int_equal(peak_held(&h2, d, 1), 2 * (p - d) - 1);
        }
        program_free(&h1);
        program_free(&h2);
    }
}

static void test_zb_v(void **state) {
    (void)state;
    for (int32_t p = 1; p <= 9; p++) {
        const int32_t M[] = {2 * p, 2 * p + 1, 3 * p, 4 * p + 3};
        for (size_t j = 0; j < 4; j++) {
            int32_t m = M[j];
            Program v;
            build("zb-v", p, 2, m, &v);
            for (int32_t d = 0; d < p; d++) // 2p half-device chunks = 1F1B's p micro-batches
                assert_int_equal(peak_held(&v, d, 0), 2 * p);
            program_free(&v);
            // a chunk op costs c, so a whole device's F = B = W = 2c: every device busy for
            // its whole span m(F+B+W); device d starts d chunk forwards late
            int64_t c = 1000003, whole;
            int64_t span = spans("zb-v", p, 2, m, c, c, c, 0, &whole);
            assert_int_equal(span, (int64_t)m * 6 * c);
            assert_int_equal(whole, (int64_t)m * 6 * c + (p - 1) * c);
        }
    }
}

static void test_comm_only_delays(void **state) {
    (void)state;
    const char *names[] = {"zb-h1", "zb-h2", "zb-v"};
    for (int n = 0; n < 3; n++) {
        int32_t v = n == 2 ? 2 : 1;
        int64_t quiet = longest_span(names[n], 4, v, 12, 3000, 3000, 2000, 0);
        int64_t busy = longest_span(names[n], 4, v, 12, 3000, 3000, 2000, 700);
        assert_in_range(busy, quiet, quiet + 2 * 8 * 12 * 700);
    }
}

static void test_zb_constraints(void **state) {
    (void)state;
    SchedIssue issue = {0};
    SchedParams two = {.devices = 4, .chunks = 2, .micro_batches = 8, .iterations = 1};
    SchedParams one = {.devices = 4, .chunks = 1, .micro_batches = 8, .iterations = 1};
    assert_int_equal(sched_find("zb-h1")->validate(&two, &issue), -1);
    assert_string_equal(issue.key, "pipeline.chunks");
    assert_int_equal(sched_find("zb-h2")->validate(&two, &issue), -1);
    assert_int_equal(sched_find("zb-v")->validate(&one, &issue), -1);
    assert_non_null(strstr(issue.msg, "set chunks = 2"));
    assert_int_equal(sched_find("zb-v")->validate(&two, &issue), 0);
    SchedParams few = {.devices = 4, .chunks = 2, .micro_batches = 7, .iterations = 1};
    assert_int_equal(sched_find("zb-v")->validate(&few, &issue), -1);
    assert_string_equal(issue.key, "batch.micro_batches");
    assert_non_null(strstr(issue.msg, "micro_batches = 8"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zb_h1_bubble),  cmocka_unit_test(test_zb_h1_any_ratio),
        cmocka_unit_test(test_zb_h2_bubble),  cmocka_unit_test(test_zb_h2_any_ratio),
        cmocka_unit_test(test_zb_memory),     cmocka_unit_test(test_zb_v),
        cmocka_unit_test(test_comm_only_delays), cmocka_unit_test(test_zb_constraints),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
