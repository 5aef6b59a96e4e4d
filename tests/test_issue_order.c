/* tests/test_issue_order.c: the global issue order of the CUDA backend, for every schedule:
 * each device's ops keep their order, every op comes after the op producing its input, each
 * cross-device transfer comes right after its producer and before its consumer, and every
 * input crosses exactly once; a Program with a cycle is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "exec/issue_order.h"
#include "sim/sched/schedule.h"

static void build(const char *name, int32_t p, int32_t v, int32_t m, Program *pr) {
    SchedParams sp = {.devices = p, .chunks = v, .micro_batches = m, .iterations = 1};
    SchedIssue issue;
    char why[512];
    assert_int_equal(sched_find(name)->build(&sp, pr, &issue), 0);
    if (program_check(pr, why, sizeof why) != 0) fail_msg("%s: %s", name, why);
}

/* Position in the order of the compute op (stage, mb, kinds), or -1. */
static int64_t find_op(const IssueItem *it, int64_t n, int32_t stage, int32_t mb, int kind) {
    for (int64_t i = 0; i < n; i++)
        if (!it[i].xfer && it[i].stage == stage && it[i].mb == mb &&
            (it[i].kind == kind || (kind == OP_B && it[i].kind == OP_BW)))
            return i;
    return -1;
}

static void check_order(const char *name, const Program *pr) {
    IssueItem *it;
    int64_t n;
    assert_int_equal(issue_order_build(pr, &it, &n), 0);
    int64_t *next = calloc((size_t)pr->devices, sizeof *next), computes = 0, xfers = 0, needed = 0;
    assert_non_null(next);
    for (int32_t d = 0; d < pr->devices; d++) next[d] = pr->start[d];
    for (int64_t i = 0; i < n; i++) {
        if (it[i].xfer) { // right after its producer, which is on the sender
            xfers++;
            assert_true(i > 0 && !it[i - 1].xfer && it[i - 1].dev == it[i].dev &&
                        it[i - 1].mb == it[i].mb && it[i - 1].kind == it[i].kind);
            assert_int_equal(pr->device_of[it[i].stage], it[i].dst);
            continue;
        }
        computes++;
        if (it[i].op != next[it[i].dev]++) fail_msg("%s: device %d out of its order", name, it[i].dev);
        int32_t in = program_input_stage(pr, (OpKind)it[i].kind, it[i].stage);
        if (in < 0) continue;
        int64_t prod = find_op(it, n, in, it[i].mb, it[i].kind == OP_F ? OP_F : OP_B);
        if (prod < 0 || prod > i) fail_msg("%s: item %lld before its producer", name, (long long)i);
        if (pr->device_of[in] == it[i].dev) continue;
        needed++;
        int found = 0;
        for (int64_t j = prod + 1; j < i; j++)
            found += it[j].xfer && it[j].stage == it[i].stage && it[j].mb == it[i].mb &&
                     it[j].grad == (it[i].kind != OP_F) && it[j].dst == it[i].dev;
        if (found != 1) fail_msg("%s: item %lld has %d transfers of its input", name, (long long)i, found);
    }
    assert_int_equal(computes, pr->nops);
    assert_int_equal(xfers, needed);
    free(next), free(it);
}

static void test_every_schedule(void **state) {
    (void)state;
    static const struct { const char *name; int32_t p, v, m; } cases[] = {
        {"gpipe", 4, 1, 8},     {"1f1b", 4, 1, 8},      {"1f1b", 4, 1, 2},  {"interleaved", 4, 2, 8},
        {"zb-h1", 4, 1, 8},     {"zb-h2", 4, 1, 8},     {"zb-v", 4, 2, 8},  {"dualpipev", 4, 2, 8},
        {"dualpipe", 4, 2, 8},  {"pipedream", 4, 1, 8}, {"1f1b", 1, 1, 4},  {"zb-1p", 4, 1, 8},
        {"zb-2p", 4, 1, 8}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        Program pr;
        build(cases[c].name, cases[c].p, cases[c].v, cases[c].m, &pr);
        check_order(cases[c].name, &pr);
        program_free(&pr);
    }
}

/* 1F1B on 2 devices, m = 1: F0 (dev 0), xfer, F0 (dev 1), B0 (dev 1), xfer, B0 (dev 0). */
static void test_one_microbatch_closed_form(void **state) {
    (void)state;
    Program pr;
    build("1f1b", 2, 1, 1, &pr);
    IssueItem *it;
    int64_t n;
    assert_int_equal(issue_order_build(&pr, &it, &n), 0);
    assert_int_equal(n, 6);
    const int xfer[] = {0, 1, 0, 0, 1, 0}, dev[] = {0, 0, 1, 1, 1, 0};
    for (int i = 0; i < 6; i++) {
        assert_int_equal(it[i].xfer, xfer[i]);
        assert_int_equal(it[i].dev, dev[i]);
    }
    assert_int_equal(it[1].dst, 1);
    assert_int_equal(it[4].dst, 0);
    assert_int_equal(it[4].grad, 1);
    free(it);
    program_free(&pr);
}

static void test_cycle_refused(void **state) {
    (void)state;
    Program pr; // device 0 wants the gradient before it sent the activation it comes from
    assert_int_equal(program_init(&pr, 2, 1, 1, PLACE_LOOPED, 4), 0);
    program_push(&pr, 0, OP_BW, 0, 0);
    program_push(&pr, 0, OP_F, 0, 0);
    program_push(&pr, 1, OP_F, 0, 0);
    program_push(&pr, 1, OP_BW, 0, 0);
    program_end(&pr);
    IssueItem *it = (IssueItem *)1;
    int64_t n = 5;
    assert_int_equal(issue_order_build(&pr, &it, &n), -2);
    assert_null(it);
    assert_int_equal(n, 0);
    program_free(&pr);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_schedule),
        cmocka_unit_test(test_one_microbatch_closed_form),
        cmocka_unit_test(test_cycle_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
