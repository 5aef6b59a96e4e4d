/* tests/test_scenario.c: the scenario parser: defaults and presets, --set overrides, the
 * round trip through scenario_format, and every class of bad input with its exit code and its
 * "FILE:LINE: what; fix" message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "scenario.h"

#define BASE                                                                                   \
    "[model]\nlayers = 8\nhidden = 64\nheads = 4\nseq_len = 32\nvocab = 128\n"  /* lines 1-6 */ \
    "[batch]\nmicro_batches = 4\n"                                              /* lines 7-8 */ \
    "[pipeline]\nstages = 4\nschedule = 1f1b\n"                                 /* 9-11 */      \
    "[hardware]\ngpu = h100\n"                                                  /* 12-13 */

static char err[SCN_ERR_MAX];

static int parse(const char *text, Scenario *s, int nsets, ...) {
    const char *sets[8];
    va_list ap;
    va_start(ap, nsets);
    for (int i = 0; i < nsets; i++) sets[i] = va_arg(ap, const char *);
    va_end(ap);
    return scenario_parse(text, "t.scn", sets, nsets, s, err);
}

/* Parses text (with up to 2 overrides) expecting status 2 and an error containing want. */
static void expect_error(const char *text, const char *set, const char *want) {
    Scenario s;
    int rc = set ? parse(text, &s, 1, set) : parse(text, &s, 0);
    if (rc != 2 || !strstr(err, want))
        fail_msg("rc %d, error '%s', wanted '%s'", rc, err, want);
    scenario_free(&s);
}

static void test_defaults_and_presets(void **state) {
    (void)state;
    Scenario s;
    assert_int_equal(parse(BASE, &s, 0), 0);
    assert_string_equal(s.model.name, "t");
    assert_int_equal(s.model.ffn_hidden, 256);
    assert_int_equal(s.model.dtype, DTYPE_BF16);
    assert_int_equal(s.batch.micro_batch_size, 1);
    assert_int_equal(s.batch.iterations, 1);
    assert_int_equal(s.pipeline.chunks, 1);
    assert_int_equal(s.pipeline.partition, PART_UNIFORM);
    assert_true(s.hw.peak_tflops == 989 && s.hw.memory_gib == 80 && s.hw.efficiency == 0.5);
    assert_int_equal(s.hw.gpus_per_node, 8);
    assert_true(s.net.intra_bandwidth_gbs == 450 && s.net.inter_bandwidth_gbs == 50);
    assert_true(s.net.intra_latency_us == 10 && s.net.inter_latency_us == 20);
    assert_true(s.costs.forward_ms < 0 && s.costs.comm_ms < 0);
    scenario_free(&s);
    assert_int_equal(parse(BASE "[model]\n", &s, 0), 0); // a section may be repeated
    scenario_free(&s);
    assert_int_equal(parse(BASE, &s, 1, "model.dtype=fp32"), 0);
    assert_true(s.hw.peak_tflops == 495); // TF32 peak for fp32 models
    scenario_free(&s);
    assert_int_equal(parse(BASE, &s, 2, "hardware.gpu = a100", "hardware.peak_tflops=100"), 0);
    assert_true(s.hw.peak_tflops == 100 && s.hw.memory_gib == 80 && s.net.intra_bandwidth_gbs == 300);
    scenario_free(&s);
}

static void test_overrides_last_wins(void **state) {
    (void)state;
    Scenario s;
    assert_int_equal(parse(BASE, &s, 2, "batch.micro_batches=16", "batch.micro_batches = 64"), 0);
    assert_int_equal(s.batch.micro_batches, 64);
    scenario_free(&s);
    assert_int_equal(parse(BASE "[costs]\nforward_ms = 1.5\nbackward_ms = 3\n", &s, 0), 0);
    assert_true(s.costs.forward_ms == 1.5 && s.costs.backward_ms == 3 && s.costs.weight_ms == 0);
    scenario_free(&s);
    assert_int_equal(parse(BASE, &s, 1, "pipeline.partition=1,2,3,2"), 0);
    assert_int_equal(s.pipeline.partition, PART_EXPLICIT);
    assert_int_equal(s.pipeline.npartition, 4);
    assert_int_equal(s.pipeline.partition_layers[2], 3);
    scenario_free(&s);
}

static void test_format_round_trip(void **state) {
    (void)state;
    Scenario a, b;
    assert_int_equal(parse(BASE "[costs]\nforward_ms = 0.1\nbackward_ms = 0.30000000000000004\n"
                           "comm_ms = 1e-3\n[network]\ninter_latency_us = 7.25\n",
                           &a, 2, "pipeline.partition = 2, 2,1,3", "model.name=my-model.v2"),
                     0);
    char *text = scenario_format(&a);
    assert_non_null(text);
    assert_int_equal(scenario_parse(text, "again.scn", NULL, 0, &b, err), 0);
    assert_string_equal(b.model.name, "my-model.v2");
    assert_memory_equal(&a.model, &b.model, sizeof a.model);
    assert_memory_equal(&a.batch, &b.batch, sizeof a.batch);
    assert_memory_equal(&a.hw, &b.hw, sizeof a.hw);
    assert_memory_equal(&a.net, &b.net, sizeof a.net);
    assert_memory_equal(&a.costs, &b.costs, sizeof a.costs);
    assert_string_equal(a.pipeline.schedule, b.pipeline.schedule);
    assert_int_equal(b.pipeline.npartition, 4);
    assert_memory_equal(a.pipeline.partition_layers, b.pipeline.partition_layers, 4 * sizeof(int64_t));
    free(text);
    scenario_free(&a);
    scenario_free(&b);
}

static void test_unknown_names(void **state) {
    (void)state;
    expect_error(BASE "[pipeline]\nstagez = 4\n", NULL, "t.scn:15: unknown key 'stagez' in [pipeline]; did you mean 'stages'?");
    expect_error(BASE "[pipeline]\nflavour = 4\n", NULL, "t.scn:15: unknown key 'flavour' in [pipeline]; the keys of [pipeline] are stages, schedule, chunks, partition");
    expect_error(BASE "[pipelines]\n", NULL, "t.scn:14: unknown section [pipelines]");
    expect_error("layers = 3\n" BASE, NULL, "t.scn:1: 'layers' comes before any [section]");
    expect_error(BASE, "pipeline.stagez=4", "--set pipeline.stagez=4: unknown key 'stagez' in [pipeline]; did you mean 'stages'?");
    expect_error(BASE, "pipe.stages=4", "--set pipe.stages=4: unknown section 'pipe'");
    expect_error(BASE, "stages=4", "--set stages=4: expected SECTION.KEY=VALUE");
    expect_error(BASE, "pipeline.schedule=zb-h9", "unknown schedule 'zb-h9'; available: gpipe, 1f1b, interleaved");
    expect_error(BASE, "hardware.gpu=tpu", "unknown gpu 'tpu'; use one of v100, a100");
    expect_error(BASE, "model.dtype=int8", "unknown dtype 'int8'; use bf16, fp16 or fp32");
    expect_error(BASE, "model.name=a b", "is not a plain name");
    expect_error(BASE, "model.name=\"x\"", "is not a plain name");
}

static void test_bad_numbers(void **state) {
    (void)state;
    expect_error(BASE "[pipeline]\nchunks = two\n", NULL, "t.scn:15: 'chunks = two' is not a whole number; write e.g. 'chunks = 1'");
    expect_error(BASE, "pipeline.stages=x", "--set pipeline.stages=x: 'stages = x' is not a whole number");
    expect_error(BASE, "pipeline.stages=4.5", "is not a whole number");
    expect_error(BASE, "pipeline.stages=", "'stages = ' is not a whole number");
    expect_error(BASE, "pipeline.stages=99999999999999999999", "is not a whole number");
    expect_error(BASE, "hardware.efficiency=nan", "'efficiency = nan' is not a number");
    expect_error(BASE, "hardware.efficiency=inf", "is not a number");
    expect_error(BASE, "hardware.efficiency=0.5x", "is not a number");
    expect_error(BASE, "pipeline.partition=4,x,4", "'partition = 4,x,4' is not valid");
    expect_error(BASE, "pipeline.partition=4,0,4", "is not valid");
    expect_error(BASE, "pipeline.partition=4,,4", "is not valid");
}

static void test_out_of_range(void **state) {
    (void)state;
    expect_error(BASE, "pipeline.stages=0", "'stages = 0' is out of range; stages must be at least 1");
    expect_error(BASE, "model.hidden=-64", "'hidden = -64' is out of range");
    expect_error(BASE, "hardware.efficiency=1.5", "efficiency must be above 0 and at most 1");
    expect_error(BASE, "hardware.efficiency=0", "'efficiency = 0' is out of range");
    expect_error(BASE, "network.intra_latency_us=-1", "intra_latency_us must be at least 0");
    expect_error(BASE, "network.inter_bandwidth_gbs=0", "inter_bandwidth_gbs must be above 0");
    expect_error(BASE, "batch.micro_batches=1000000000000", "micro_batches must be at least 1 and at most 1048576");
    expect_error(BASE, "pipeline.stages=5000", "at most 4096");
    expect_error(BASE, "pipeline.chunks=65", "at most 64");
    expect_error(BASE, "batch.iterations=0", "iterations must be at least 1");
    expect_error(BASE, "costs.comm_ms=-0.5", "comm_ms must be at least 0");
}

static void test_missing_keys(void **state) {
    (void)state;
    const char *no_layers = "[model]\nhidden = 64\nheads = 4\nseq_len = 32\nvocab = 128\n"
                            "[batch]\nmicro_batches = 4\n[pipeline]\nstages = 4\nschedule = 1f1b\n"
                            "[hardware]\ngpu = h100\n";
    expect_error(no_layers, NULL, "t.scn:1: missing key 'layers' in [model]; add e.g. 'layers = 40'");
    const char *no_batch = "[model]\nlayers = 8\nhidden = 64\nheads = 4\nseq_len = 32\nvocab = 128\n"
                           "[pipeline]\nstages = 4\nschedule = 1f1b\n[hardware]\ngpu = h100\n";
    expect_error(no_batch, NULL, "t.scn:1: missing section [batch]; add it with at least 'micro_batches = 32'");
    const char *no_sched = "[model]\nlayers = 8\nhidden = 64\nheads = 4\nseq_len = 32\nvocab = 128\n"
                           "[batch]\nmicro_batches = 4\n[pipeline]\nstages = 4\n[hardware]\ngpu = h100\n";
    expect_error(no_sched, NULL, "t.scn:9: missing key 'schedule' in [pipeline]");
    const char *no_gpu = "[model]\nlayers = 8\nhidden = 64\nheads = 4\nseq_len = 32\nvocab = 128\n"
                         "[batch]\nmicro_batches = 4\n[pipeline]\nstages = 4\nschedule = 1f1b\n"
                         "[hardware]\npeak_tflops = 100\n";
    expect_error(no_gpu, NULL, "t.scn:12: [hardware] needs a gpu preset");
    expect_error(no_gpu, NULL, "'memory_gib' is missing");
    Scenario s;
    assert_int_equal(parse(no_gpu, &s, 1, "hardware.memory_gib=24"), 0);
    assert_true(s.hw.peak_tflops == 100 && s.net.intra_bandwidth_gbs == 100);
    scenario_free(&s);
    expect_error("", NULL, "t.scn:1: missing section [model]");
}

static void test_syntax_and_duplicates(void **state) {
    (void)state;
    expect_error(BASE "[pipeline]\nstages = 2\n", NULL, "t.scn:15: 'stages' is given twice (first at line 10); keep one");
    expect_error(BASE "this is not ini\n", NULL, "t.scn:14: expected 'key = value', '[section]'");
    expect_error(BASE "[batch\n", NULL, "t.scn:14:");
    char *big = malloc(70000 + sizeof BASE);
    strcpy(big, BASE "[model]\nname = ");
    memset(big + strlen(big), 'x', 69000);
    strcpy(big + strlen(big) - 1, "\n");
    expect_error(big, NULL, "t.scn:15: line is longer than 65536 bytes");
    free(big);
    char garbage[4096];
    unsigned x = 12345;
    for (size_t i = 0; i + 1 < sizeof garbage; i++) {
        x = x * 1103515245u + 12345u;
        garbage[i] = (char)(1 + (x >> 16) % 255); // no NUL
    }
    garbage[sizeof garbage - 1] = '\0';
    Scenario s;
    assert_int_equal(parse(garbage, &s, 0), 2);
    assert_true(strncmp(err, "t.scn:", 6) == 0);
    scenario_free(&s);
}

static void test_combinations(void **state) {
    (void)state;
    expect_error(BASE, "model.heads=5", "--set model.heads=5: heads = 5 does not divide hidden = 64; use a divisor such as 4");
    expect_error("[model]\nlayers = 8\nhidden = 60\nheads = 8\nseq_len = 32\nvocab = 128\n"
                 "[batch]\nmicro_batches = 4\n[pipeline]\nstages = 4\nschedule = 1f1b\n"
                 "[hardware]\ngpu = h100\n", NULL,
                 "t.scn:4: heads = 8 does not divide hidden = 60; use a divisor such as 6");
    expect_error(BASE, "model.layers=9", "--set model.layers=9: 9 layers do not split evenly into 4 stages x 1 chunks under partition = uniform; list the layers per stage (partition = 3,2,2,2)");
    expect_error(BASE, "pipeline.stages=16", "16 stages x 1 chunks need at least 16 layers, and layers = 8");
    expect_error(BASE, "pipeline.partition=1,2,3", "partition lists 3 stages but the pipeline has 4");
    expect_error(BASE, "pipeline.partition=1,2,3,1", "partition covers 7 layers but the model has layers = 8");
    expect_error(BASE, "pipeline.chunks=2", "--set pipeline.chunks=2: 1f1b runs one model chunk per device");
    expect_error(BASE, "pipeline.schedule=interleaved", "t.scn:9: interleaved needs at least 2 model chunks"); // chunks not given: its section's line
    expect_error(BASE "[costs]\nbackward_ms = 2\n", NULL, "t.scn:15: 'backward_ms' needs forward_ms too");
    expect_error(BASE "[costs]\nforward_ms = 2\n", NULL, "t.scn:15: forward_ms needs backward_ms too; add e.g. 'backward_ms = 4'");
    expect_error(BASE "[costs]\nforward_ms = 0\nbackward_ms = 1\n", NULL, "'forward_ms = 0' is out of range");
    Scenario s;
    assert_int_equal(parse(BASE, &s, 3, "batch.micro_batch_size=65536", "model.seq_len=16777216",
                           "model.hidden=1048576"), 2);
    assert_non_null(strstr(err, "one activation (micro_batch_size x seq_len x hidden) would be"));
    scenario_free(&s);
    const char *il = BASE "[pipeline]\nschedule = interleaved\nchunks = 2\n";
    assert_int_equal(parse(il, &s, 1, "model.layers=16"), 2); // schedule given twice
    scenario_free(&s);
    const char *il2 = "[model]\nlayers = 16\nhidden = 64\nheads = 4\nseq_len = 32\nvocab = 128\n"
                      "[batch]\nmicro_batches = 6\n[pipeline]\nstages = 4\nschedule = interleaved\n"
                      "chunks = 2\n[hardware]\ngpu = h100\n";
    expect_error(il2, NULL, "t.scn:8: interleaved needs micro_batches to be a multiple of stages (4), not 6; use e.g. micro_batches = 8");
    assert_int_equal(parse(il2, &s, 1, "batch.micro_batches=8"), 0);
    scenario_free(&s);
    assert_int_equal(parse(il2, &s, 2, "batch.micro_batches=1048576", "batch.iterations=100"), 2);
    assert_non_null(strstr(err, "--set batch.micro_batches=1048576: this run has 1.68e+09 ops (2 x stages x chunks x micro_batches x iterations); at most 200000000"));
    scenario_free(&s);
}

static void test_load_files(void **state) {
    (void)state;
    Scenario s;
    assert_int_equal(scenario_load("/nonexistent/x.scn", NULL, 0, &s, err), 1);
    assert_non_null(strstr(err, "cannot read '/nonexistent/x.scn': No such file or directory"));
    scenario_free(&s);
    char path[] = "/tmp/psim-test-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "wb");
    fputs(BASE, f);
    fputc('\0', f);
    fclose(f);
    assert_int_equal(scenario_load(path, NULL, 0, &s, err), 2);
    assert_non_null(strstr(err, ":14: contains a NUL byte"));
    scenario_free(&s);
    f = fopen(path, "wb");
    fputs(BASE, f);
    fclose(f);
    assert_int_equal(scenario_load(path, NULL, 0, &s, err), 0);
    assert_string_equal(s.text, BASE);
    assert_int_equal(s.pipeline.stages, 4);
    scenario_free(&s);
    remove(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_presets), cmocka_unit_test(test_overrides_last_wins),
        cmocka_unit_test(test_format_round_trip),    cmocka_unit_test(test_unknown_names),
        cmocka_unit_test(test_bad_numbers),          cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_missing_keys),         cmocka_unit_test(test_syntax_and_duplicates),
        cmocka_unit_test(test_combinations),         cmocka_unit_test(test_load_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
