/* tests/test_sched_search.c: the searched zero-bubble schedules (zb-1p, zb-2p, zb-auto;
 * sim/sched/zb_auto.c) against Qi et al. 2023 and the handcrafted schedules they generalise:
 *   - Table 5's bubble rates from Table 9's profiled times (tests/data): pipesim's engine
 *     gives the 1F1B, ZB-H1 and ZB-H2 columns to the printed digit (a closed check of the
 *     engine at the paper's costs), and the searched ZB-1p and ZB-2p within 0.005 absolute;
 *   - the zero-bubble repository's ZB-2p spans at F, B, W = 5, 6, 4 (126, 484, 970 at
 *     (p, m) = (4, 8), (8, 32), (16, 64)) are not beaten by being longer;
 *   - over a grid of costs and communication, zb-1p's longest span never exceeds ZB-H1's
 *     and zb-2p's never ZB-H2's, each keeps to its activation limit (p and 2p micro-batches'
 *     activations, pipesim's accounting: F adds M_B, B keeps M_W until W), and zb-auto keeps
 *     to any limit it is given;
 *   - every searched Program passes the checker, is the same when built twice, and replays
 *     as a custom schedule file to the same timeline.
 * Memory in the paper's runs: its scheduler takes M_W = M_B / 2 (the zero-bubble repository's
 * mem_f = 2, mem_w = -1); so do these tests where the paper's figures are compared. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cost_fixture.h"
#include "zb_fixture.h"
#include "sim/engine/engine.h"
#include "sim/program/program.h"
#include "sim/sched/sched_file.h"
#include "sim/sched/schedule.h"

#define MAXP ZB_MAXP

static void build(const char *name, int32_t p, int32_t m, const SchedCost *sc, double limit,
                  Program *pr) {
    SchedParams sp = {.devices = p, .chunks = 1, .micro_batches = m, .iterations = 1,
                      .cost = sc, .activation_limit = limit};
    SchedIssue issue = {0};
    char why[512];
    assert_int_equal(sched_find(name)->validate(&sp, &issue), 0);
    if (sched_find(name)->build(&sp, pr, &issue) != 0) fail_msg("%s: %s", name, issue.msg);
    if (program_check(pr, why, sizeof why) != 0) fail_msg("%s p=%d m=%d: %s", name, p, m, why);
}

static int64_t span_of(const char *name, int32_t p, int32_t m, int64_t f, int64_t b, int64_t w,
                       int64_t x, double wp, double limit) {
    Costs c;
    costs_uniform(&c, p, f, b, w, x, wp);
    Program pr;
    build(name, p, m, &c.sc, limit, &pr);
    int64_t span = engine_span(&pr, f, b, w, x);
    program_free(&pr);
    return span;
}

static void test_table5(void **state) {
    (void)state;
    FILE *f = fopen("tests/data/qi2023_table5_table9.csv", "r");
    assert_non_null(f);
    char line[512];
    int rows = 0;
    while (fgets(line, sizeof line, f)) {
        char model[16];
        int p, m;
        double tf, tb, tw, tc, r[6];
        if (line[0] == '#' || sscanf(line, "%15[^,],%d,%d,%lf,%lf,%lf,%lf,%lf,%lf,%lf,%lf,%lf,%lf",
                                     model, &p, &m, &tf, &tb, &tw, &tc, &r[0], &r[1], &r[2],
                                     &r[3], &r[4], &r[5]) != 13)
            continue;
        // ms to ns: every figure has three decimals, so this is exact
        int64_t F = (int64_t)(tf * 1e6 + 0.5), B = (int64_t)(tb * 1e6 + 0.5);
        int64_t W = (int64_t)(tw * 1e6 + 0.5), X = (int64_t)(tc * 1e6 + 0.5);
        double ideal = (double)m * (double)(F + B + W);
        static const char *const NAMES[] = {"1f1b", NULL, "zb-h1", "zb-h2", "zb-1p", "zb-2p"};
        for (int k = 0; k < 6; k++) {
            if (!NAMES[k]) continue; // 1F1B-I: one layer per chunk, not this uniform setting
            double rate = 1 - ideal / (double)span_of(NAMES[k], p, m, F, B, W, X, 0.5, 0);
            // handcrafted: Table 5's four digits (half a unit of the last, plus rounding);
            // searched: the issue's 0.005, a heuristic's order is not the paper's
            double tol = k < 4 ? 0.00005 + 1e-9 : 0.005;
            if (rate - r[k] > tol || r[k] - rate > tol)
                fail_msg("%s p=%d m=%d %s: bubble rate %.5f, Table 5 %.4f", model, p, m,
                         NAMES[k], rate, r[k]);
        }
        rows++;
    }
    fclose(f);
    assert_int_equal(rows, 12);
}

static void test_repository_spans(void **state) {
    (void)state;
    static const int32_t CASES[3][3] = {{4, 8, 126}, {8, 32, 484}, {16, 64, 970}};
    for (int i = 0; i < 3; i++) {
        int32_t p = CASES[i][0], m = CASES[i][1];
        int64_t span = span_of("zb-2p", p, m, 5, 6, 4, 0, 0.5, 0);
        if (span > CASES[i][2]) fail_msg("zb-2p p=%d m=%d: span %lld, the repository's %d", p,
                                         m, (long long)span, CASES[i][2]);
        assert_true(span >= (int64_t)m * 15); // no order beats m(F + B + W)
        assert_true(span < span_of("zb-h2", p, m, 5, 6, 4, 0, 0.5, 0));
    }
}

/* Over the grid: searched spans against the handcrafted ones at the same costs, and the
 * limits kept. */
static void test_grid(void **state) {
    (void)state;
    static const int64_t FBW[][3] = {{1, 1, 1}, {5, 6, 4}, {3, 5, 2}, {4, 4, 6}, {2, 3, 1},
                                     {18522, 18086, 9337}};
    static const int32_t PS[] = {2, 3, 4, 6, 8};
    static const double WPS[] = {0.5, 1.0, 0.0};
    int cases = 0, shorter = 0;
    for (size_t c = 0; c < sizeof FBW / sizeof FBW[0]; c++)
        for (size_t pi = 0; pi < sizeof PS / sizeof PS[0]; pi++)
            for (int32_t mk = 0; mk < 4; mk++)
                for (int64_t x = 0; x <= FBW[c][0]; x += FBW[c][0])
                    for (size_t wi = 0; wi < sizeof WPS / sizeof WPS[0]; wi++) {
                        int32_t p = PS[pi], m = mk == 0 ? p : mk == 1 ? 2 * p : mk == 2 ? 3 * p + 1 : 4 * p;
                        int64_t f = FBW[c][0], b = FBW[c][1], w = FBW[c][2];
                        double wp = WPS[wi];
                        Costs cs;
                        costs_uniform(&cs, p, f, b, w, x, wp);
                        const char *pairs[2][2] = {{"zb-1p", "zb-h1"}, {"zb-2p", "zb-h2"}};
                        for (int k = 0; k < 2; k++) {
                            Program pr, hand;
                            build(pairs[k][0], p, m, &cs.sc, 0, &pr);
                            build(pairs[k][1], p, m, &cs.sc, 0, &hand);
                            int64_t s = engine_span(&pr, f, b, w, x), h = engine_span(&hand, f, b, w, x);
                            if (s > h)
                                fail_msg("%s p=%d m=%d F,B,W=%lld,%lld,%lld x=%lld wp=%.1f: "
                                         "span %lld, %s's %lld", pairs[k][0], p, m, (long long)f,
                                         (long long)b, (long long)w, (long long)x, wp,
                                         (long long)s, pairs[k][1], (long long)h);
                            shorter += s < h;
                            double lim = (k + 1) * (double)p; // p and 2p activations
                            double peak = peak_activation(&pr, wp);
                            if (peak > lim + 1e-9)
                                fail_msg("%s p=%d m=%d: peak %.2f activations over %.0f",
                                         pairs[k][0], p, m, peak, lim);
                            program_free(&pr), program_free(&hand);
                        }
                        cases++;
                    }
    assert_int_equal(cases, 6 * 5 * 4 * 2 * 3);
    // the search is not the handcrafted order in disguise: it is shorter in many cases
    print_message("searched shorter than handcrafted in %d of %d comparisons\n", shorter, 2 * cases);
    assert_true(shorter > cases / 2);
}

static void test_auto_limits(void **state) {
    (void)state;
    const int32_t p = 6, m = 24;
    Costs cs;
    costs_uniform(&cs, p, 5, 6, 4, 1, 0.5);
    for (double lim = 1; lim <= 2.0 * p; lim += 0.5) {
        Program pr;
        build("zb-auto", p, m, &cs.sc, lim, &pr);
        double peak = peak_activation(&pr, 0.5);
        if (peak > lim + 1e-9) fail_msg("zb-auto limit %.1f: peak %.2f", lim, peak);
        assert_true(engine_span(&pr, 5, 6, 4, 1) >= (int64_t)m * 15);
        program_free(&pr);
    }
    // the most memory gives what zb-2p gives (the same limit, the same search)
    Program a, b;
    build("zb-auto", p, m, &cs.sc, 2.0 * p, &a);
    build("zb-2p", p, m, &cs.sc, 0, &b);
    assert_int_equal(a.nops, b.nops);
    assert_memory_equal(a.ops, b.ops, (size_t)a.nops * sizeof *a.ops);
    program_free(&a), program_free(&b);
    // a room in bytes: 3.5 activations of 2 bytes leave 3 micro-batches in flight at most
    double room[MAXP];
    for (int32_t s = 0; s < p; s++) cs.act[s] = 2, cs.wp[s] = 1, room[s] = 7;
    cs.sc.room = room;
    Program r;
    build("zb-auto", p, m, &cs.sc, 0, &r);
    assert_true(peak_activation(&r, 0.5) <= 3.5 + 1e-9);
    program_free(&r);
}

static void test_replay_and_determinism(void **state) {
    (void)state;
    const char *names[] = {"zb-1p", "zb-2p"};
    for (int k = 0; k < 2; k++) {
        const int32_t p = 5, m = 17;
        Costs cs;
        costs_uniform(&cs, p, 7, 9, 5, 2, 0.5);
        Program a, b, c;
        build(names[k], p, m, &cs.sc, 0, &a);
        build(names[k], p, m, &cs.sc, 0, &b);
        assert_int_equal(a.nops, b.nops);
        assert_memory_equal(a.ops, b.ops, (size_t)a.nops * sizeof *a.ops);
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        assert_non_null(f);
        sched_file_write(f, &a, names[k]);
        fclose(f);
        SchedParams sp = {.devices = p, .chunks = 1, .micro_batches = m, .iterations = 1};
        char err[512];
        assert_int_equal(sched_file_parse(text, "dump", &sp, &c, err, sizeof err), 0);
        free(text);
        assert_int_equal(c.nops, a.nops);
        for (int64_t i = 0; i < a.nops; i++) {
            assert_int_equal(c.ops[i].kind, a.ops[i].kind);
            assert_int_equal(c.ops[i].micro_batch, a.ops[i].micro_batch);
        }
        assert_int_equal(engine_span(&c, 7, 9, 5, 2), engine_span(&a, 7, 9, 5, 2));
        program_free(&a), program_free(&b), program_free(&c);
    }
}

static void test_refusals(void **state) {
    (void)state;
    SchedParams sp = {.devices = 4, .chunks = 2, .micro_batches = 8, .iterations = 1};
    SchedIssue issue = {0};
    assert_int_equal(sched_find("zb-2p")->validate(&sp, &issue), -1);
    assert_string_equal(issue.key, "pipeline.chunks");
    sp.chunks = 1;
    Program pr;
    // zb-auto with neither a limit nor a memory figure cannot choose
    assert_int_equal(sched_find("zb-auto")->build(&sp, &pr, &issue), 2);
    assert_string_equal(issue.key, "pipeline.activation_limit");
    assert_non_null(strstr(issue.msg, "activation_limit"));
    assert_true(sched_searched("zb-auto") && sched_searched("zb-1p") && !sched_searched("zb-h1"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table5),       cmocka_unit_test(test_repository_spans),
        cmocka_unit_test(test_grid),         cmocka_unit_test(test_auto_limits),
        cmocka_unit_test(test_replay_and_determinism), cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
