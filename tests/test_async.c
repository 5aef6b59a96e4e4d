/* tests/test_async.c: the asynchronous schedules (PipeDream, PipeDream-2BW) against closed
 * forms, with exact integer-ns tolerance: K iterations with no flush take (K*m + p - 1)(F+B)
 * on balanced stages, against K(m + p - 1)(F+B) for flushed 1F1B; iterations end m(F+B)
 * apart; PipeDream stashes p - d weight versions on device d, PipeDream-2BW exactly two. */
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

static void build(const char *name, int32_t p, int32_t m, int32_t iterations, Program *pr) {
    SchedParams sp = {.devices = p, .chunks = 1, .micro_batches = m, .iterations = iterations};
    SchedIssue issue;
    char why[512];
    assert_int_equal(sched_find(name)->validate(&sp, &issue), 0);
    assert_int_equal(sched_find(name)->build(&sp, pr, &issue), 0);
    assert_int_equal(program_check(pr, why, sizeof why), 0);
}

/* Runs and returns the makespan; ends[k] gets the end of iteration k's last compute op. */
static int64_t run(const char *name, int32_t p, int32_t m, int32_t K, int64_t f, int64_t bw,
                   int64_t *ends) {
    Program pr;
    build(name, p, m, K, &pr);
    CostModel c = cost_uniform(p, f, bw, 0, 0, 0, 1);
    Timeline tl = {0};
    char why[512];
    assert_int_equal(engine_run(&pr, &c, K, &tl, why, sizeof why), 0);
    int64_t last = 0;
    for (int32_t k = 0; k < K; k++) ends[k] = 0;
    for (size_t i = 0; i < tl.n; i++) {
        const TimelineOp *r = &tl.ops[i];
        assert_int_equal(r->start_ns >= 0, 1);
        if (r->end_ns > last) last = r->end_ns;
        int64_t k = r->micro_batch / m;
        assert_in_range(k, 0, K - 1);
        if (r->end_ns > ends[k]) ends[k] = r->end_ns;
    }
    timeline_free(&tl);
    cost_free(&c);
    program_free(&pr);
    return last;
}

static void test_no_flush_pays_the_ramp_once(void **state) {
    (void)state;
    static const int32_t P[] = {1, 2, 4, 8}, M[] = {1, 4, 8, 13}, K[] = {1, 2, 5};
    const char *names[] = {"pipedream", "pipedream-2bw"};
    int64_t ends[8];
    const int64_t F = 1000003, BW = 2000017;
    for (size_t n = 0; n < 2; n++)
        for (size_t i = 0; i < 4; i++)
            for (size_t j = 0; j < 4; j++)
                for (size_t k = 0; k < 3; k++) {
                    int32_t p = P[i], m = M[j], iters = K[k];
                    int64_t want = ((int64_t)iters * m + p - 1) * (F + BW);
                    assert_int_equal(run(names[n], p, m, iters, F, BW, ends), want);
                    // flushed 1F1B pays the ramp every iteration
                    int64_t flushed = run("1f1b", p, m, iters, F, BW, ends);
                    assert_int_equal(flushed, (int64_t)iters * (m + p - 1) * (F + BW));
                }
}

static void test_steady_state_iterations_are_m_apart(void **state) {
    (void)state;
    int64_t ends[6];
    const int64_t F = 3000, BW = 7000;
    int32_t p = 4, m = 8, K = 6;
    run("pipedream", p, m, K, F, BW, ends);
    for (int32_t k = 1; k < K; k++) assert_int_equal(ends[k] - ends[k - 1], m * (F + BW));
    assert_int_equal(ends[0], (m + p - 1) * (F + BW));
    run("1f1b", p, m, K, F, BW, ends);
    for (int32_t k = 1; k < K; k++)
        assert_int_equal(ends[k] - ends[k - 1], (m + p - 1) * (F + BW));
}

static void test_weight_versions(void **state) {
    (void)state;
    Program pr;
    build("pipedream", 6, 8, 3, &pr);
    assert_non_null(pr.weight_versions);
    assert_int_equal(pr.iterations, 3);
    assert_int_equal(pr.micro_batches, 24);
    for (int32_t d = 0; d < 6; d++) assert_int_equal(pr.weight_versions[d], 6 - d);
    program_free(&pr);
    build("pipedream", 6, 2, 1, &pr); // fewer micro-batches than stages: m in flight at most
    for (int32_t d = 0; d < 6; d++) assert_int_equal(pr.weight_versions[d], 6 - d < 2 ? 6 - d : 2);
    program_free(&pr);
    build("pipedream-2bw", 6, 8, 3, &pr);
    for (int32_t d = 0; d < 6; d++) assert_int_equal(pr.weight_versions[d], 2);
    program_free(&pr);
    build("1f1b", 6, 8, 1, &pr);
    assert_null(pr.weight_versions);
    assert_int_equal(pr.iterations, 1);
    program_free(&pr);
}

static void test_chunks_rejected(void **state) {
    (void)state;
    SchedParams sp = {.devices = 4, .chunks = 2, .micro_batches = 8, .iterations = 1};
    SchedIssue issue = {0};
    assert_int_equal(sched_find("pipedream-2bw")->validate(&sp, &issue), -1);
    assert_string_equal(issue.key, "pipeline.chunks");
    assert_non_null(strstr(issue.msg, "chunks = 1"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_flush_pays_the_ramp_once),
        cmocka_unit_test(test_steady_state_iterations_are_m_apart),
        cmocka_unit_test(test_weight_versions),
        cmocka_unit_test(test_chunks_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
