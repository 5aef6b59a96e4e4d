/* tests/test_sched_file.c: schedule files: every built-in schedule written and read back
 * gives the same Program and the same timeline; PyTorch-style rows with communication
 * actions and None cells are read; every class of bad file is rejected with its line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sim/model/cost.h"
#include "sim/engine/engine.h"
#include "sim/sched/sched_file.h"

static char err[512];

static char *dump(const Program *pr) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    sched_file_write(f, pr, "test");
    fclose(f);
    return buf;
}

static void run(const Program *pr, Timeline *tl) {
    int32_t S = program_stages(pr);
    CostModel c = {.stages = S, .xfer_bytes = 1, .xfer_intra_ns = 70001, .xfer_inter_ns = 90001,
                   .gpus_per_node = 2};
    c.op_ns = calloc((size_t)S * OP_KIND_COUNT, sizeof *c.op_ns);
    c.op_flops = calloc((size_t)S * OP_KIND_COUNT, sizeof *c.op_flops);
    for (int32_t s = 0; s < S; s++) {
        int64_t *ns = &c.op_ns[s * OP_KIND_COUNT];
        ns[OP_F] = 1000003 + 7 * s, ns[OP_B] = 1000033, ns[OP_W] = 900001, ns[OP_BW] = 1900034;
    }
    memset(tl, 0, sizeof *tl);
    assert_int_equal(engine_run(pr, &c, pr->iterations, tl, err, sizeof err), 0);
    cost_free(&c);
}

static void test_builtins_round_trip(void **state) {
    (void)state;
    static const struct { const char *name; int32_t p, v, m, k; } cases[] = {
        {"gpipe", 4, 1, 6, 1}, {"1f1b", 8, 1, 13, 1}, {"1f1b", 1, 1, 3, 1},
        {"interleaved", 4, 2, 8, 1}, {"interleaved", 3, 4, 9, 1}, {"interleaved", 2, 3, 2, 1},
        {"zb-h1", 4, 1, 9, 1}, {"zb-h2", 5, 1, 12, 1}, {"zb-v", 4, 2, 10, 1}, {"zb-v", 1, 2, 3, 1},
        {"pipedream", 4, 1, 5, 3}, {"pipedream-2bw", 3, 1, 4, 2}, {"dualpipe", 4, 2, 8, 1},
        {"dualpipe", 6, 2, 14, 1}, {"dualpipev", 4, 2, 9, 1}, {"zb-1p", 4, 1, 9, 1},
        {"zb-2p", 5, 1, 12, 1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        SchedParams sp = {.devices = cases[i].p, .chunks = cases[i].v, .micro_batches = cases[i].m,
                          .iterations = cases[i].k};
        SchedIssue issue;
        Program a, b;
        assert_int_equal(sched_find(cases[i].name)->build(&sp, &a, &issue), 0);
        char *text = dump(&a);
        assert_int_equal(sched_file_parse(text, "x.sched", &sp, &b, err, sizeof err), 0);
        assert_int_equal(program_check(&b, err, sizeof err), 0);
        assert_int_equal(a.nops, b.nops);
        assert_memory_equal(a.start, b.start, (size_t)(a.devices + 1) * sizeof *a.start);
        assert_memory_equal(a.ops, b.ops, (size_t)a.nops * sizeof *a.ops);
        assert_memory_equal(a.stage_of, b.stage_of, (size_t)program_stages(&a) * sizeof(int32_t));
        assert_int_equal(a.pipes, b.pipes);
        assert_int_equal(a.iterations, b.iterations);
        assert_int_equal(a.weight_versions == NULL, b.weight_versions == NULL);
        if (a.weight_versions)
            assert_memory_equal(a.weight_versions, b.weight_versions, (size_t)a.devices * sizeof(int32_t));
        Timeline ta, tb;
        run(&a, &ta);
        run(&b, &tb);
        assert_int_equal(ta.n, tb.n);
        assert_memory_equal(ta.ops, tb.ops, ta.n * sizeof *ta.ops);
        timeline_free(&ta);
        timeline_free(&tb);
        free(text);
        program_free(&a);
        program_free(&b);
    }
}

static void test_pytorch_style_rows(void **state) {
    (void)state; // V-shaped placement taken from the rows, split backward, comms ignored
    const char *text = "# p = 2, v = 2, m = 1: stages 0 and 3 on rank 0, 1 and 2 on rank 1\n"
                       "0F0, 0SEND_F0, None, 3RECV_F0, 3F0, 3I0, 3W0, 0RECV_B0, 0I0, 0W0\n"
                       "\n"
                       "1F0,2F0 , 2B0  1B0   # comment\n";
    SchedParams sp = {.devices = 2, .chunks = 2, .micro_batches = 1, .iterations = 1};
    Program pr;
    assert_int_equal(sched_file_parse(text, "v.csv", &sp, &pr, err, sizeof err), 0);
    assert_int_equal(program_check(&pr, err, sizeof err), 0);
    assert_int_equal(program_len(&pr, 0), 6);
    assert_int_equal(program_len(&pr, 1), 4);
    assert_int_equal(program_stage_of(&pr, 0, 1), 3);
    assert_int_equal(program_stage_of(&pr, 1, 0), 1);
    assert_int_equal(pr.ops[pr.start[0] + 2].kind, OP_B);
    assert_int_equal(pr.ops[pr.start[0] + 2].chunk, 1);
    assert_int_equal(pr.ops[pr.start[1] + 3].kind, OP_BW);
    program_free(&pr);
}

static void expect_bad(const char *text, int32_t p, int32_t v, int32_t m, const char *want) {
    SchedParams sp = {.devices = p, .chunks = v, .micro_batches = m, .iterations = 1};
    Program pr;
    int rc = sched_file_parse(text, "s.sched", &sp, &pr, err, sizeof err);
    if (rc != 2 || !strstr(err, want)) fail_msg("rc %d, '%s', wanted '%s'", rc, err, want);
    program_free(&pr);
}

static void test_bad_files(void **state) {
    (void)state;
    expect_bad("0F0,0B0\n1F0,1X0\n", 2, 1, 1, "s.sched:2: '1X0' is not an action; write STAGE KIND MICROBATCH");
    expect_bad("0F0,0B0\nF0\n", 2, 1, 1, "s.sched:2: 'F0' is not an action");
    expect_bad("0F0,0B0\n1F0,1B\n", 2, 1, 1, "s.sched:2: '1B' is not an action");
    expect_bad("0F0,0B0\n1F1,1B1\n", 2, 1, 1, "s.sched:2: micro-batch 1 is out of range: micro_batches = 1");
    expect_bad("0F0,0B0\n2F0,2B0\n", 2, 1, 1, "s.sched:2: stage 2 does not exist: the pipeline has 2 stages");
    expect_bad("0F0,0B0\n0F0,1F0\n", 2, 1, 1, "s.sched:2: stage 0 is already on the device of line 1");
    expect_bad("0F0,0B0\n", 2, 1, 1, "s.sched:1: the file lists 1 devices but stages = 2");
    expect_bad("0F0\n1F0\n2F0\n", 2, 1, 1, "s.sched:3: more device lines than stages = 2");
    expect_bad("0F0,1F0,0B0,1B0\n2F0,2B0\n", 2, 1, 1, "stage 2 does not exist");
    expect_bad("0F0,0B0,1F0,1B0\n2F0,2B0\n", 2, 2, 1, "s.sched:1: no device runs stage 3");
    expect_bad("0F0,0B0,1F0,1B0,2F0\n3F0\n", 2, 2, 1, "s.sched:1: this device runs more than chunks = 2 stages");
    expect_bad("0F0\n1F0,2F0,3F0\n", 2, 2, 1, "s.sched:2: this device runs more than chunks = 2 stages (stage 3 is one too many)");
    // directives and fused pairs
    expect_bad("pipes = 3\n0F0,0B0\n1F0,1B0\n", 2, 1, 2, "s.sched:1: pipes = 3: use 1, or 2");
    expect_bad("pipes = 2\n0F0,0B0\n1F0,1B0\n", 2, 1, 1, "s.sched:1: pipes = 2: use 1, or 2 with an even micro_batches");
    expect_bad("iterations = 2\n0F0\n1F0\n", 2, 1, 1, "s.sched:1: the file covers 2 iterations, so iterations must be a multiple of 2, not 1");
    expect_bad("weight_versions = 2\n0F0\n1F0\n", 2, 1, 1, "s.sched:1: weight_versions needs 2 counts of 1 or more");
    expect_bad("weight_versions = 2,0\n0F0\n1F0\n", 2, 1, 1, "weight_versions needs 2 counts");
    expect_bad("stagez = 2\n0F0\n1F0\n", 2, 1, 1, "s.sched:1: 'stagez = 2' is not a directive; use pipes = N");
    expect_bad("0F0&None,0B0\n1F0\n", 2, 1, 1, "s.sched:1: 'None' is not an action; write STAGE KIND MICROBATCH such as 0F3, 2I3, 2W3 or 1B0 (KIND is F, I, W or B), or two joined by &");
}

static void test_directives_and_pairs(void **state) {
    (void)state; // iterations stretch the micro-batch range; '&' fuses; versions are kept
    SchedParams sp = {.devices = 2, .chunks = 1, .micro_batches = 1, .iterations = 2};
    Program pr;
    const char *text = "iterations = 2  # two iterations, no flush\nweight_versions = 2, 1\n"
                       "0F0,0F1,0B0,0B1\n1F0,1F1&1B0,1B1\n";
    assert_int_equal(sched_file_parse(text, "d.sched", &sp, &pr, err, sizeof err), 0);
    assert_int_equal(program_check(&pr, err, sizeof err), 0);
    assert_int_equal(pr.iterations, 2);
    assert_int_equal(pr.micro_batches, 2);
    assert_int_equal(pr.weight_versions[0], 2);
    assert_int_equal(pr.weight_versions[1], 1);
    assert_int_equal(pr.ops[pr.start[1] + 1].flags, OPF_FUSED_NEXT);
    assert_int_equal(pr.ops[pr.start[1] + 2].flags, 0);
    char *back = dump(&pr);
    assert_non_null(strstr(back, "iterations = 2\nweight_versions = 2,1\n0F0,0F1,0B0,0B1\n1F0,1F1&1B0,1B1\n"));
    free(back);
    program_free(&pr);
}

static void test_checker_names_missing_op(void **state) {
    (void)state; // a file that parses but lacks a backward fails the Program check
    SchedParams sp = {.devices = 2, .chunks = 1, .micro_batches = 2, .iterations = 1};
    Program pr;
    assert_int_equal(sched_file_parse("0F0,0F1,0B0,0B1\n1F0,1B0,1F1\n", "s", &sp, &pr, err, sizeof err), 0);
    assert_int_equal(program_check(&pr, err, sizeof err), -1);
    assert_non_null(strstr(err, "device 1 has no B or BW for mb 1 chunk 0 (stage 1)"));
    program_free(&pr);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtins_round_trip),
        cmocka_unit_test(test_pytorch_style_rows),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_directives_and_pairs),
        cmocka_unit_test(test_checker_names_missing_op),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
