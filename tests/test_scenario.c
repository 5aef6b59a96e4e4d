/* tests/test_scenario.c: the scenario parser: defaults and presets, --set overrides, the
 * round trip through scenario_format, and every class of bad input with its exit code and its
 * "FILE:LINE: what; fix" message. Files are only touched by the scenario_load tests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <ini.h>

#include "sim/scenario/scenario.h"

#define BASE                                                                                   \
    "[model]\nlayers = 8\nhidden = 64\nheads = 4\nseq_len = 32\nvocab = 128\n"  /* lines 1-6 */ \
    "[batch]\nmicro_batches = 4\n"                                              /* lines 7-8 */ \
    "[pipeline]\nstages = 4\nschedule = 1f1b\n"                                 /* 9-11 */      \
    "[hardware]\ngpu = h100\n"                                                  /* 12-13 */

/* BASE without its [hardware] section (lines 1-11), and the same with interleaved, 16 layers,
 * chunks = 2 and m = 8 (lines 1-12). */
#define NOHW                                                                                   \
    "[model]\nlayers = 8\nhidden = 64\nheads = 4\nseq_len = 32\nvocab = 128\n"                 \
    "[batch]\nmicro_batches = 4\n[pipeline]\nstages = 4\nschedule = 1f1b\n"
#define INTERLEAVED                                                                            \
    "[model]\nlayers = 16\nhidden = 64\nheads = 4\nseq_len = 32\nvocab = 128\n"                \
    "[batch]\nmicro_batches = 8\n[pipeline]\nstages = 4\nschedule = interleaved\nchunks = 2\n" \
    "[hardware]\ngpu = h100\n"

static char err[SCN_ERR_MAX];

static int parse_as(const char *name, const char *text, Scenario *s, int nsets, va_list ap) {
    const char *sets[8];
    for (int i = 0; i < nsets; i++) sets[i] = va_arg(ap, const char *);
    return scenario_parse(text, name, sets, nsets, s, err);
}

/* Parses text as "t.scn" with nsets --set arguments. */
static int parse(const char *text, Scenario *s, int nsets, ...) {
    va_list ap;
    va_start(ap, nsets);
    int rc = parse_as("t.scn", text, s, nsets, ap);
    va_end(ap);
    return rc;
}

/* Parses text (with an optional --set) expecting status 2 and an error containing want. */
static void expect_error(const char *text, const char *set, const char *want) {
    Scenario s;
    int rc = set ? parse(text, &s, 1, set) : parse(text, &s, 0);
    if (rc != 2 || !strstr(err, want))
        fail_msg("rc %d, error '%s', wanted '%s'", rc, err, want);
    scenario_free(&s);
}

/* The same, but the error must start with want (for "t.scn:LINE: " prefixes). */
static void expect_prefix(const char *text, const char *set, const char *want) {
    Scenario s;
    int rc = set ? parse(text, &s, 1, set) : parse(text, &s, 0);
    if (rc != 2 || strncmp(err, want, strlen(want)) != 0)
        fail_msg("rc %d, error '%s', wanted it to start with '%s'", rc, err, want);
    scenario_free(&s);
}

static void expect_ok(const char *text, const char *set) {
    Scenario s;
    int rc = set ? parse(text, &s, 1, set) : parse(text, &s, 0);
    if (rc != 0) fail_msg("rc %d, error '%s'", rc, err);
    scenario_free(&s);
}

static void test_defaults_and_presets(void **state) {
    (void)state;
    Scenario s;
    assert_int_equal(parse(BASE, &s, 0), 0);
    assert_string_equal(err, "");
    assert_string_equal(s.path, "t.scn");
    assert_string_equal(s.text, BASE);
    assert_string_equal(s.model.name, "t");
    assert_int_equal(s.model.layers, 8);
    assert_int_equal(s.model.ffn_hidden, 256); // 4h
    assert_int_equal(s.model.dtype, DTYPE_BF16);
    assert_int_equal(s.batch.micro_batch_size, 1);
    assert_int_equal(s.batch.micro_batches, 4);
    assert_int_equal(s.batch.iterations, 1);
    assert_int_equal(s.pipeline.stages, 4);
    assert_string_equal(s.pipeline.schedule, "1f1b");
    assert_int_equal(s.pipeline.chunks, 1);
    assert_int_equal(s.pipeline.partition, PART_UNIFORM);
    assert_null(s.pipeline.partition_layers);
    assert_string_equal(s.pipeline.schedule_file, "");
    assert_string_equal(s.hw.gpu, "h100");
    assert_true(s.hw.peak_tflops == 989 && s.hw.memory_gib == 80 && s.hw.efficiency == 0.5);
    assert_int_equal(s.hw.gpus_per_node, 8);
    assert_true(s.net.intra_bandwidth_gbs == 450 && s.net.inter_bandwidth_gbs == 50);
    assert_true(s.net.intra_latency_us == 10 && s.net.inter_latency_us == 20);
    assert_true(s.costs.forward_ms == -1 && s.costs.backward_ms == -1);
    assert_true(s.costs.weight_ms == -1 && s.costs.comm_ms == -1);
    scenario_free(&s);

    assert_int_equal(parse(BASE "[model]\nffn_hidden = 100\n", &s, 0), 0); // repeated section
    assert_int_equal(s.model.ffn_hidden, 100);
    scenario_free(&s);
    assert_int_equal(parse(BASE, &s, 1, "model.dtype=fp32"), 0);
    assert_true(s.hw.peak_tflops == 495); // TF32 peak for fp32 models
    scenario_free(&s);
    assert_int_equal(parse(BASE, &s, 1, "model.dtype=fp16"), 0);
    assert_true(s.hw.peak_tflops == 989);
    scenario_free(&s);
    assert_int_equal(parse(BASE, &s, 2, "hardware.gpu = a100", "hardware.peak_tflops=100"), 0);
    assert_true(s.hw.peak_tflops == 100 && s.hw.memory_gib == 80 && s.net.intra_bandwidth_gbs == 300);
    assert_true(s.net.inter_bandwidth_gbs == 25);
    scenario_free(&s);
    // No preset: peak and memory as given, links 100 and 25 GB/s.
    assert_int_equal(parse(NOHW "[hardware]\npeak_tflops = 100\nmemory_gib = 24\n", &s, 0), 0);
    assert_string_equal(s.hw.gpu, "");
    assert_true(s.hw.peak_tflops == 100 && s.hw.memory_gib == 24);
    assert_true(s.net.intra_bandwidth_gbs == 100 && s.net.inter_bandwidth_gbs == 25);
    scenario_free(&s);
    // Comments, blank lines, inline comments, blanks around '=' and a BOM are all fine.
    assert_int_equal(parse("\xEF\xBB\xBF; top\n\n# hash\n" BASE "[batch]\n  iterations=3 ; three\n",
                           &s, 0), 0);
    assert_int_equal(s.batch.iterations, 3);
    scenario_free(&s);
}

static void test_name_default(void **state) {
    (void)state;
    static const struct { const char *path, *name; } cases[] = {
        {"dir/gpt13b.v2.scn", "gpt13b.v2"}, {"plain", "plain"}, {"my run.scn", "my_run"},
        {"a/.scn", ".scn"}, {"a/", "scenario"}, {"", "scenario"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Scenario s;
        assert_int_equal(scenario_parse(BASE, cases[i].path, NULL, 0, &s, err), 0);
        assert_string_equal(s.model.name, cases[i].name);
        scenario_free(&s);
    }
    char path[200] = "d/";
    memset(path + 2, 'n', 100);
    strcpy(path + 102, ".scn");
    Scenario s;
    assert_int_equal(scenario_parse(BASE, path, NULL, 0, &s, err), 0);
    assert_int_equal(strlen(s.model.name), SCN_NAME_MAX - 1); // cut to fit
    scenario_free(&s);
    assert_int_equal(parse(BASE "[model]\nname = gpt-3_13b+v1.0\n", &s, 0), 0);
    assert_string_equal(s.model.name, "gpt-3_13b+v1.0");
    scenario_free(&s);
}

static void test_presets(void **state) {
    (void)state;
    static const struct { const char *name; double p16, p32, mem, intra, inter; } want[] = {
        {"v100", 125, 15.7, 32, 150, 12.5},     {"a100", 312, 156, 80, 300, 25},
        {"a100-40g", 312, 156, 40, 300, 25},    {"h100", 989, 495, 80, 450, 50},
        {"h100-pcie", 756, 378, 80, 64, 50},    {"h200", 989, 495, 140, 450, 50},
        {"b200", 2250, 1100, 180, 900, 50},     {"mi300x", 1307, 654, 192, 64, 50},
        {"cpu", 1, 1, 16, 10, 1.25},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const GpuPreset *g = gpu_preset_find(want[i].name);
        assert_non_null(g);
        assert_string_equal(g->name, want[i].name);
        assert_true(g->peak_tflops_16 == want[i].p16 && g->peak_tflops_32 == want[i].p32);
        assert_true(g->memory_gib == want[i].mem && g->intra_bandwidth_gbs == want[i].intra);
        assert_true(g->inter_bandwidth_gbs == want[i].inter);
        assert_non_null(strstr(gpu_preset_names(), want[i].name));
        char set[64];
        snprintf(set, sizeof set, "hardware.gpu=%s", want[i].name);
        Scenario s;
        assert_int_equal(parse(BASE, &s, 2, set, "model.dtype=fp32"), 0);
        assert_true(s.hw.peak_tflops == want[i].p32 && s.hw.memory_gib == want[i].mem);
        assert_true(s.net.intra_bandwidth_gbs == want[i].intra);
        assert_true(s.net.inter_bandwidth_gbs == want[i].inter);
        scenario_free(&s);
    }
    assert_null(gpu_preset_find("tpu"));
    assert_null(gpu_preset_find("H100"));
    assert_string_equal(gpu_preset_names(),
                        "v100, a100, a100-40g, h100, h100-pcie, h200, b200, mi300x, cpu");
    assert_int_equal(dtype_bytes(DTYPE_BF16), 2);
    assert_int_equal(dtype_bytes(DTYPE_FP16), 2);
    assert_int_equal(dtype_bytes(DTYPE_FP32), 4);
    assert_string_equal(dtype_name(DTYPE_FP16), "fp16");
}

static void test_overrides(void **state) {
    (void)state;
    Scenario s;
    assert_int_equal(parse(BASE, &s, 2, "batch.micro_batches=16", " batch . micro_batches = 64 "), 0);
    assert_int_equal(s.batch.micro_batches, 64); // the last one wins
    scenario_free(&s);
    assert_int_equal(parse(BASE, &s, 1, "pipeline.stages=2"), 0); // overrides the file's 4
    assert_int_equal(s.pipeline.stages, 2);
    scenario_free(&s);
    assert_int_equal(parse(BASE "[costs]\nforward_ms = 1.5\nbackward_ms = 3\n", &s, 0), 0);
    assert_true(s.costs.forward_ms == 1.5 && s.costs.backward_ms == 3 && s.costs.weight_ms == 0);
    assert_true(s.costs.comm_ms == -1);
    scenario_free(&s);
    assert_int_equal(parse(BASE, &s, 1, "pipeline.partition=1, 2,3 ,2"), 0);
    assert_int_equal(s.pipeline.partition, PART_EXPLICIT);
    assert_int_equal(s.pipeline.npartition, 4);
    assert_int_equal(s.pipeline.partition_layers[0], 1);
    assert_int_equal(s.pipeline.partition_layers[2], 3);
    scenario_free(&s);
    assert_int_equal(parse(BASE "[pipeline]\npartition = 1,2,3,2\n", &s, 1, "pipeline.partition=balanced"), 0);
    assert_int_equal(s.pipeline.partition, PART_BALANCED);
    assert_null(s.pipeline.partition_layers); // the file's list was released
    scenario_free(&s);
    assert_int_equal(parse(BASE, &s, 1, "hardware.gpu=h200"), 0);
    assert_true(s.hw.memory_gib == 140);
    scenario_free(&s);
    // A value given by --set is blamed on that --set in later checks...
    expect_error(BASE, "pipeline.stages=16", "--set pipeline.stages=16: 16 stages need at least 16 layers, and layers = 8");
    expect_error(BASE, "model.heads=5", "--set model.heads=5: heads = 5 does not divide hidden = 64; use a divisor such as 4");
    // ...and one overridden twice on the last one, even when an earlier one was fine.
    Scenario t;
    assert_int_equal(parse(BASE, &t, 2, "pipeline.stages=2", "pipeline.stages=3"), 2);
    assert_string_equal(err, "--set pipeline.stages=3: 8 layers do not split evenly into 3 stages under partition = uniform; list the layers per stage (partition = 3,3,2), use partition = balanced, or make layers a multiple of 3");
    scenario_free(&t);
    // An error in the file comes before any --set.
    assert_int_equal(parse(BASE "[batch]\nmicro_batch_size = x\n", &t, 1, "batch.micro_batch_size=8"), 2);
    assert_string_equal(err, "t.scn:15: 'micro_batch_size = x' is not a whole number; write e.g. 'micro_batch_size = 1'");
    scenario_free(&t);
    // The first bad --set is reported.
    assert_int_equal(parse(BASE, &t, 2, "batch.iterations=x", "batch.iterations=y"), 2);
    assert_string_equal(err, "--set batch.iterations=x: 'x' is not a whole number; write e.g. 'batch.iterations=1'");
    scenario_free(&t);
}

/* Both Scenarios hold the same values, field by field. */
static void assert_same(const Scenario *a, const Scenario *b) {
    assert_memory_equal(&a->model, &b->model, sizeof a->model);
    assert_memory_equal(&a->batch, &b->batch, sizeof a->batch);
    assert_memory_equal(&a->hw, &b->hw, sizeof a->hw);
    assert_memory_equal(&a->net, &b->net, sizeof a->net);
    assert_memory_equal(&a->costs, &b->costs, offsetof(ScnCosts, stage_forward));
    const ScnTimeList *ta[3] = {&a->costs.stage_forward, &a->costs.stage_backward, &a->costs.stage_weight};
    const ScnTimeList *tb[3] = {&b->costs.stage_forward, &b->costs.stage_backward, &b->costs.stage_weight};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ta[i]->n, tb[i]->n);
        if (ta[i]->n) assert_memory_equal(ta[i]->ms, tb[i]->ms, (size_t)ta[i]->n * sizeof(double));
    }
    assert_int_equal(a->pipeline.stages, b->pipeline.stages);
    assert_string_equal(a->pipeline.schedule, b->pipeline.schedule);
    assert_int_equal(a->pipeline.chunks, b->pipeline.chunks);
    assert_int_equal(a->pipeline.partition, b->pipeline.partition);
    assert_int_equal(a->pipeline.npartition, b->pipeline.npartition);
    if (a->pipeline.npartition)
        assert_memory_equal(a->pipeline.partition_layers, b->pipeline.partition_layers,
                            (size_t)a->pipeline.npartition * sizeof(int64_t));
    assert_string_equal(a->pipeline.schedule_file, b->pipeline.schedule_file);
}

/* text (with up to 2 overrides) -> Scenario -> scenario_format -> Scenario: the same values,
 * and formatting again gives the same text. Returns the first text (caller frees). */
static char *round_trip(const char *text, int nsets, const char *set1, const char *set2) {
    Scenario a, b;
    if (parse(text, &a, nsets, set1, set2) != 0) fail_msg("%s", err);
    char *out = scenario_format(&a);
    assert_non_null(out);
    if (scenario_parse(out, "again.scn", NULL, 0, &b, err) != 0) {
        print_message("%s\n", out);
        fail_msg("%s", err);
    }
    assert_same(&a, &b);
    char *again = scenario_format(&b);
    assert_string_equal(out, again);
    free(again);
    scenario_free(&a);
    scenario_free(&b);
    return out;
}

static void test_format_round_trip(void **state) {
    (void)state;
    char *t = round_trip(BASE, 0, NULL, NULL);
    // Every section and key shows; keys without a value as comments.
    static const char *const lines[] = {
        "[model]\nname = t\nlayers = 8\nhidden = 64\nheads = 4\nkv_heads = 4\nhead_dim = 16\n"
        "seq_len = 32\nvocab = 128\nffn_hidden = 256\nmlp = gelu\nnorm = layernorm\n"
        "attention = standard\nposition = learned\ntied_embeddings = true\nbias = true\n"
        "dtype = bf16\n",
        "[batch]\nmicro_batch_size = 1\nmicro_batches = 4\niterations = 1\n",
        "[pipeline]\nstages = 4\nschedule = 1f1b\nchunks = 1\npartition = uniform\n"
        "; schedule_file = (not given)\n",
        "[hardware]\ngpu = h100\npeak_tflops = 989\ncost_model = roofline\n; efficiency = 0.5\n"
        "gemm_efficiency = 0.803\nmemory_efficiency = 0.9\nlaunch_us = 4\nop_overhead_us = 0\n"
        "sms = 132\nmemory_gib = 80\ngpus_per_node = 8\n",
        "[network]\nintra_bandwidth_gbs = 450\nintra_latency_us = 10\ninter_bandwidth_gbs = 50\n"
        "inter_latency_us = 20\n",
        "[costs]\n; forward_ms = (not given)\n; backward_ms = (not given)\n"
        "; weight_ms = (not given)\n; comm_ms = (not given)\n",
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        if (!strstr(t, lines[i])) {
            print_message("missing\n%s\nin\n%s\n", lines[i], t);
            fail();
        }
    free(t);

    t = round_trip(BASE "[costs]\nforward_ms = 0.1\nbackward_ms = 0.30000000000000004\n"
                   "comm_ms = 1e-3\n[network]\ninter_latency_us = 7.25\n",
                   2, "pipeline.partition = 2, 2,1,3", "model.name=my-model.v2");
    assert_non_null(strstr(t, "backward_ms = 0.30000000000000004\n")); // exact, not 0.3
    assert_non_null(strstr(t, "forward_ms = 0.1\n"));                  // shortest, not 0.1000..01
    assert_non_null(strstr(t, "weight_ms = 0\n"));
    assert_non_null(strstr(t, "partition = 2,2,1,3\n"));
    assert_non_null(strstr(t, "name = my-model.v2\n"));
    free(t);
    t = round_trip(BASE, 2, "hardware.gpu=v100", "model.dtype=fp32");
    assert_non_null(strstr(t, "peak_tflops = 15.7\n"));
    free(t);
    free(round_trip(NOHW "[hardware]\npeak_tflops = 123.456\nmemory_gib = 0.1\nefficiency = 1\n", 0, NULL, NULL));
    free(round_trip(INTERLEAVED "[pipeline]\npartition = balanced\n", 1, "hardware.efficiency=0.3333333333333333", NULL));
    free(round_trip(BASE, 2, "network.intra_latency_us=0", "costs.comm_ms=2.5e-6"));
    t = round_trip(BASE "[costs]\nstage_forward_ms = 1, 2.5,0.1,3\nstage_backward_ms = 2,5,0.2,6\n",
                   0, NULL, NULL);
    assert_non_null(strstr(t, "stage_forward_ms = 1,2.5,0.1,3\nstage_backward_ms = 2,5,0.2,6\n"
                              "; stage_weight_ms = (not given)\n"));
    free(t);
}

static void test_stage_times(void **state) {
    (void)state; // per-stage [costs]: both lists, one entry per stage, not with forward_ms
    expect_error(BASE, "costs.stage_forward_ms=1,2,3,4",
                 "--set costs.stage_forward_ms=1,2,3,4: stage_forward_ms needs stage_backward_ms too");
    expect_error(BASE "[costs]\nstage_backward_ms = 1,1,1,1\n", NULL,
                 "t.scn:15: stage_backward_ms needs stage_forward_ms too");
    expect_error(BASE "[costs]\nstage_forward_ms = 1,1,1\nstage_backward_ms = 1,1,1,1\n", NULL,
                 "t.scn:15: stage_forward_ms lists 3 times but the pipeline has 4 stages");
    expect_error(BASE "[costs]\nstage_forward_ms = 1,1,1,1\nstage_backward_ms = 1,-1,1,1\n", NULL,
                 "t.scn:16: 'stage_backward_ms = 1,-1,1,1' is not valid: entry 2 is -1; each time must be between 0");
    expect_error(BASE "[costs]\nstage_forward_ms = 1,,1,1\n", NULL,
                 "t.scn:15: 'stage_forward_ms = 1,,1,1' is not valid: entry 2 is not a number");
    expect_error(BASE "[costs]\nforward_ms = 1\nbackward_ms = 2\nstage_forward_ms = 1,1,1,1\n"
                 "stage_backward_ms = 1,1,1,1\n", NULL,
                 "stage_forward_ms and forward_ms both price the ops");
}

static void test_unknown_names(void **state) {
    (void)state;
    expect_prefix(BASE "[pipeline]\nstagez = 4\n", NULL, "t.scn:15: unknown key 'stagez' in [pipeline]; did you mean 'stages'?");
    expect_prefix(BASE "[pipeline]\nflavour = 4\n", NULL, "t.scn:15: unknown key 'flavour' in [pipeline]; the keys of [pipeline] are stages, schedule, chunks, partition, schedule_file");
    expect_prefix(BASE "[pipeline]\nmicro_batches = 4\n", NULL, "t.scn:15: unknown key 'micro_batches' in [pipeline]; it belongs in [batch]");
    expect_prefix(BASE "[pipeline]\n= 4\n", NULL, "t.scn:15: a value without a key name; write 'key = value'");
    expect_prefix(BASE "[pipelines]\n", NULL, "t.scn:14: unknown section [pipelines]; did you mean [pipeline]?");
    expect_prefix(BASE "[optimizer]\nlr = 1\n", NULL, "t.scn:14: unknown section [optimizer]; the sections are [model], [batch], [pipeline], [parallel], [hardware], [network], [costs], [variability], [device.N] and [link.A-B]");
    expect_prefix("[Model]\n" BASE, NULL, "t.scn:1: unknown section [Model]; did you mean [model]?");
    expect_prefix(BASE "  [ hardware ]\n", NULL, "t.scn:14: unknown section [ hardware ]; did you mean [hardware]?");
    expect_prefix("layers = 3\n" BASE, NULL, "t.scn:1: 'layers' comes before any [section]");
    expect_prefix(BASE, "pipeline.stagez=4", "--set pipeline.stagez=4: unknown key 'stagez' in [pipeline]; did you mean 'stages'?");
    expect_prefix(BASE, "pipe.stages=4", "--set pipe.stages=4: unknown section [pipe]; the sections are");
    expect_prefix(BASE, "hardwar.gpu=a100", "--set hardwar.gpu=a100: unknown section [hardwar]; did you mean [hardware]?");
    expect_prefix(BASE, "stages=4", "--set stages=4: expected SECTION.KEY=VALUE; write e.g. --set batch.micro_batches=64");
    expect_prefix(BASE, "pipeline.stages", "--set pipeline.stages: expected SECTION.KEY=VALUE");
    expect_prefix(BASE, "", "--set : expected SECTION.KEY=VALUE");
    expect_prefix(BASE, "pipeline.schedule=zb-h9", "--set pipeline.schedule=zb-h9: unknown schedule 'zb-h9'; available: gpipe, 1f1b, interleaved");
    expect_prefix(BASE "[pipeline]\nschedule = foo\n", NULL, "t.scn:15: 'schedule' is given twice"); // duplicate first
    expect_prefix(NOHW "[pipeline]\n[hardware]\ngpu = tpu\n", NULL, "t.scn:14: unknown gpu 'tpu'; use one of v100, a100, a100-40g, h100, h100-pcie, h200, b200, mi300x, cpu, or leave gpu out and give peak_tflops and memory_gib");
    expect_prefix(BASE "[model]\ndtype = int8\n", NULL, "t.scn:15: unknown dtype 'int8'; use bf16, fp16 or fp32");
    expect_error(BASE, "model.dtype=BF16", "unknown dtype 'BF16'");
    expect_prefix(BASE, "model.name=a b", "--set model.name=a b: 'a b' is not a plain name; use up to 63 letters, digits and . _ + -, e.g. 'model.name=gpt13b'");
    expect_prefix(BASE "[model]\nname = \"x\"\n", NULL, "t.scn:15: 'name = \"x\"' is not a plain name");
    char longname[100] = "model.name=";
    memset(longname + strlen(longname), 'a', 64);
    expect_error(BASE, longname, "is not a plain name; use up to 63");
    longname[strlen(longname) - 1] = '\0'; // 63 letters fit
    expect_ok(BASE, longname);
}

static void test_bad_numbers(void **state) {
    (void)state;
    expect_prefix(BASE "[pipeline]\nchunks = two\n", NULL, "t.scn:15: 'chunks = two' is not a whole number; write e.g. 'chunks = 1'");
    const char *eight = "[model]\nlayers = 8\nhidden = 64\nheads = 4\nseq_len = 32\nvocab = 128\n"
                        "[batch]\nmicro_batches = 4\n[pipeline]\nstages = eight\n";
    expect_prefix(eight, NULL, "t.scn:10: 'stages = eight' is not a whole number; write e.g. 'stages = 8'");
    expect_prefix(BASE, "pipeline.stages=x", "--set pipeline.stages=x: 'x' is not a whole number; write e.g. 'pipeline.stages=8'");
    static const char *const not_whole[] = {"4.5", "", "0x10", "4 4", "4x", "1e3", "four", "-", "+"};
    for (size_t i = 0; i < sizeof not_whole / sizeof not_whole[0]; i++) {
        char set[64], want[128];
        snprintf(set, sizeof set, "pipeline.stages=%s", not_whole[i]);
        snprintf(want, sizeof want, "--set %s: '%s' is not a whole number", set, not_whole[i]);
        expect_prefix(BASE, set, want);
    }
    expect_prefix(BASE "[pipeline]\nchunks =\n", NULL, "t.scn:15: 'chunks = ' is not a whole number");
    static const char *const not_number[] = {"nan", "inf", "-inf", "NaN", "0.5x", "", ". 5", "0,5"};
    for (size_t i = 0; i < sizeof not_number / sizeof not_number[0]; i++) {
        char set[64], want[128];
        snprintf(set, sizeof set, "hardware.efficiency=%s", not_number[i]);
        snprintf(want, sizeof want, "--set %s: '%s' is not a number; write e.g. 'hardware.efficiency=0.5'", set, not_number[i]);
        expect_prefix(BASE, set, want);
    }
    expect_prefix(BASE "[network]\nintra_latency_us = fast\n", NULL, "t.scn:15: 'intra_latency_us = fast' is not a number; write e.g. 'intra_latency_us = 10'");
    expect_ok(BASE, "hardware.efficiency=5e-1");
    // a number too small for a double underflows towards 0: a number, which the range judges
    expect_ok(BASE, "hardware.efficiency=1e-308");
    expect_prefix(BASE, "hardware.efficiency=1e-999", "--set hardware.efficiency=1e-999: '1e-999' "
                  "is out of range; efficiency must be above 0 and at most 1");
    expect_ok(BASE, "pipeline.stages=+2");
    // numbers too large for their type are out of range, not malformed
    static const char *const huge[][2] = {
        {"pipeline.stages=99999999999999999999", "'99999999999999999999' is out of range; stages must be at least 1 and at most 4096"},
        {"pipeline.stages=-99999999999999999999", "'-99999999999999999999' is out of range; stages"},
        {"pipeline.stages=+99999999999999999999", "'+99999999999999999999' is out of range; stages"},
        {"hardware.efficiency=1e999", "'1e999' is out of range; efficiency must be above 0 and at most 1"},
        {"hardware.efficiency=-1e999", "'-1e999' is out of range; efficiency"}};
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        char want[160];
        snprintf(want, sizeof want, "--set %s: %s", huge[i][0], huge[i][1]);
        expect_prefix(BASE, huge[i][0], want);
    }
}

static void test_partition_lists(void **state) {
    (void)state;
    expect_prefix(BASE "[pipeline]\npartition = 4,x,4\n", NULL, "t.scn:15: 'partition = 4,x,4' is not valid: entry 2 is not a whole number; write uniform, balanced, or the layers of each stage, e.g. 'partition = 5,5,5,5,5,5,5,5'");
    expect_prefix(BASE, "pipeline.partition=4,,4", "--set pipeline.partition=4,,4: '4,,4' is not valid: entry 2 is not a whole number; write uniform, balanced, or the layers of each stage, e.g. 'pipeline.partition=5,5,5,5,5,5,5,5'");
    expect_error(BASE, "pipeline.partition=2,2,2,", "entry 4 is not a whole number");
    expect_error(BASE, "pipeline.partition=2,2.5,2,2", "entry 2 is not a whole number");
    expect_error(BASE, "pipeline.partition=even", "'even' is not valid: entry 1 is not a whole number");
    expect_error(BASE, "pipeline.partition=2,2,99999999999999999999,2", "entry 3 is not a whole number");
    expect_prefix(BASE "[pipeline]\npartition = 4,0,4\n", NULL, "t.scn:15: 'partition = 4,0,4' is not valid: entry 2 is 0; every stage needs at least 1 layer");
    expect_error(BASE, "pipeline.partition=3,3,-1,3", "'3,3,-1,3' is not valid: entry 3 is -1");
    expect_prefix(BASE "[pipeline]\npartition = 1,2,3\n", NULL, "t.scn:15: partition lists 3 stages but the pipeline has 4 (stages × chunks, chunk-major); give 4 counts, e.g. partition = 2,2,2,2");
    expect_prefix(BASE "[pipeline]\npartition = 1,2,3,1\n", NULL, "t.scn:15: partition covers 7 layers but the model has layers = 8; every layer must be in exactly one stage, e.g. partition = 2,2,2,2");
    expect_error(BASE, "pipeline.partition=3,3,3,3", "partition covers more than 8 layers");
    // Entries this large would overflow a plain sum.
    expect_error(BASE, "pipeline.partition=9223372036854775807,9223372036854775807,1,1",
                 "--set pipeline.partition=9223372036854775807,9223372036854775807,1,1: partition covers more than 8 layers");
    // The count is p*v, chunk-major.
    Scenario s;
    assert_int_equal(parse(INTERLEAVED, &s, 1, "pipeline.partition=1,2,3,2,2,2,2,2"), 0);
    assert_int_equal(s.pipeline.npartition, 8);
    scenario_free(&s);
    expect_error(INTERLEAVED, "pipeline.partition=4,4,4,4", "partition lists 4 stages but the pipeline has 8");
    // A list as long as 1024 stages fits on one line and in one --set.
    char *big = malloc(8 * 1024 + 64), *set = malloc(8 * 1024 + 64);
    strcpy(big, "[model]\nlayers = 2048\nhidden = 64\nheads = 4\nseq_len = 32\nvocab = 128\n"
                "[batch]\nmicro_batches = 4\n[pipeline]\nstages = 1024\nschedule = gpipe\n"
                "[hardware]\ngpu = h100\n");
    strcpy(set, "pipeline.partition=");
    for (int i = 0; i < 1024; i++) strcat(set, i ? ",2" : "2");
    assert_int_equal(parse(big, &s, 1, set), 0);
    assert_int_equal(s.pipeline.npartition, 1024);
    assert_int_equal(s.pipeline.partition_layers[1023], 2);
    scenario_free(&s);
    strcat(big, "[pipeline]\npartition = ");
    strcat(big, set + strlen("pipeline.partition="));
    strcat(big, "\n");
    assert_int_equal(parse(big, &s, 0), 0);
    assert_int_equal(s.pipeline.npartition, 1024);
    scenario_free(&s);
    free(big);
    free(set);
}

static void test_out_of_range(void **state) {
    (void)state;
    expect_prefix(BASE, "pipeline.stages=0", "--set pipeline.stages=0: '0' is out of range; stages must be at least 1 and at most 4096, e.g. 'pipeline.stages=8'");
    expect_prefix(BASE "[pipeline]\nchunks = -1\n", NULL, "t.scn:15: 'chunks = -1' is out of range; chunks must be at least 1 and at most 64, e.g. 'chunks = 1'");
    expect_error(BASE, "model.hidden=-64", "'-64' is out of range; hidden must be at least 1");
    expect_error(BASE, "model.layers=0", "layers must be at least 1");
    expect_error(BASE, "model.seq_len=0", "seq_len must be at least 1");
    expect_error(BASE, "model.vocab=-1", "vocab must be at least 1");
    expect_error(BASE, "model.heads=0", "heads must be at least 1");
    expect_error(BASE, "model.ffn_hidden=0", "ffn_hidden must be at least 1");
    expect_error(BASE, "batch.micro_batch_size=0", "micro_batch_size must be at least 1");
    expect_error(BASE, "hardware.gpus_per_node=0", "gpus_per_node must be at least 1");
    expect_error(BASE, "hardware.efficiency=1.5", "efficiency must be above 0 and at most 1");
    expect_error(BASE, "hardware.efficiency=0", "'0' is out of range");
    expect_error(BASE, "hardware.efficiency=-0.1", "'-0.1' is out of range");
    expect_ok(BASE, "hardware.efficiency=1");
    expect_error(BASE, "hardware.peak_tflops=0", "peak_tflops must be above 0");
    expect_error(BASE, "hardware.memory_gib=-80", "memory_gib must be above 0");
    expect_error(BASE, "network.intra_latency_us=-1", "intra_latency_us must be at least 0");
    expect_error(BASE, "network.inter_latency_us=-1e-9", "inter_latency_us must be at least 0");
    expect_error(BASE, "network.intra_bandwidth_gbs=0", "intra_bandwidth_gbs must be above 0");
    expect_error(BASE, "network.inter_bandwidth_gbs=0", "inter_bandwidth_gbs must be above 0");
    expect_ok(BASE, "network.inter_latency_us=0");
    // The caps of scenario.h, each with its limit.
    expect_error(BASE, "batch.micro_batches=1048577", "micro_batches must be at least 1 and at most 1048576");
    expect_ok(BASE, "batch.micro_batches=1048576");
    expect_error(BASE, "pipeline.stages=4097", "stages must be at least 1 and at most 4096");
    expect_error(BASE, "pipeline.chunks=65", "chunks must be at least 1 and at most 64");
    expect_error(BASE, "batch.iterations=100001", "iterations must be at least 1 and at most 100000");
    expect_error(BASE, "batch.iterations=0", "iterations must be at least 1");
    expect_error(BASE, "costs.comm_ms=-0.5", "comm_ms must be at least 0");
    Scenario s; // p*v*m*iterations*2 = 4*2*1048576*100*2 ops
    assert_int_equal(parse(INTERLEAVED, &s, 2, "batch.micro_batches=1048576", "batch.iterations=100"), 2);
    assert_string_equal(err, "--set batch.iterations=100: this run has 1.68e+09 ops (2 x stages x chunks x micro_batches x iterations); at most 200000000, so use fewer micro_batches or iterations");
    scenario_free(&s);
    expect_ok(BASE, "batch.iterations=100"); // 2*4*4*100 ops
    assert_int_equal(parse(BASE, &s, 3, "batch.micro_batch_size=65536", "model.seq_len=16777216",
                           "model.hidden=1048576"), 2);
    assert_non_null(strstr(err, "--set model.hidden=1048576: one activation (micro_batch_size x seq_len x hidden) would be"));
    scenario_free(&s);
}

static void test_missing_keys(void **state) {
    (void)state;
    const char *no_layers = "[model]\nhidden = 64\nheads = 4\nseq_len = 32\nvocab = 128\n"
                            "[batch]\nmicro_batches = 4\n[pipeline]\nstages = 4\nschedule = 1f1b\n"
                            "[hardware]\ngpu = h100\n";
    expect_prefix(no_layers, NULL, "t.scn:1: missing key 'layers' in [model]; add e.g. 'layers = 40'");
    expect_ok(no_layers, "model.layers=8"); // a --set can supply it
    const char *no_batch = "; comment\n[model]\nlayers = 8\nhidden = 64\nheads = 4\nseq_len = 32\n"
                           "vocab = 128\n[pipeline]\nstages = 4\nschedule = 1f1b\n[hardware]\ngpu = h100\n";
    expect_prefix(no_batch, NULL, "t.scn:1: missing section [batch]; add it with at least 'micro_batches = 32'");
    const char *no_sched = "[model]\nlayers = 8\nhidden = 64\nheads = 4\nseq_len = 32\nvocab = 128\n"
                           "[batch]\nmicro_batches = 4\n[pipeline]\nstages = 4\n[hardware]\ngpu = h100\n";
    expect_prefix(no_sched, NULL, "t.scn:9: missing key 'schedule' in [pipeline]; add e.g. 'schedule = 1f1b'");
    expect_prefix(NOHW "[hardware]\npeak_tflops = 100\n", NULL, "t.scn:12: [hardware] has no gpu preset and no memory_gib; name a preset (gpu = v100, a100, a100-40g, h100, h100-pcie, h200, b200, mi300x, cpu) or give peak_tflops and memory_gib");
    expect_prefix(NOHW "[hardware]\nmemory_gib = 24\n", NULL, "t.scn:12: [hardware] has no gpu preset and no peak_tflops");
    expect_prefix(NOHW, NULL, "t.scn:1: [hardware] has no gpu preset and no peak_tflops");
    expect_ok(NOHW "[hardware]\npeak_tflops = 100\n", "hardware.memory_gib=24");
    expect_prefix("", NULL, "t.scn:1: missing section [model]");
    expect_prefix("\n\n[model]\n", NULL, "t.scn:3: missing key 'layers' in [model]");
}

static void test_costs(void **state) {
    (void)state;
    expect_prefix(BASE "[costs]\nbackward_ms = 2\n", NULL, "t.scn:15: 'backward_ms' needs forward_ms too; give forward_ms and backward_ms");
    expect_prefix(BASE "[costs]\nweight_ms = 2\n", NULL, "t.scn:15: 'weight_ms' needs forward_ms too");
    expect_prefix(BASE "[costs]\nforward_ms = 2\n", NULL, "t.scn:15: forward_ms needs backward_ms too; add e.g. 'backward_ms = 4'");
    expect_prefix(BASE "[costs]\nforward_ms = 0\nbackward_ms = 1\n", NULL, "t.scn:15: 'forward_ms = 0' is out of range; forward_ms must be above 0");
    expect_error(BASE "[costs]\nforward_ms = 1\nbackward_ms = -1\n", NULL, "t.scn:16: 'backward_ms = -1' is out of range");
    expect_ok(BASE "[costs]\nforward_ms = 1\nbackward_ms = 0\n", NULL);
    expect_ok(BASE "[costs]\ncomm_ms = 0\n", NULL); // comm_ms alone is fine
    Scenario s;
    assert_int_equal(parse(BASE "[costs]\nforward_ms = 1\nbackward_ms = 1\nweight_ms = 0.5\n", &s, 0), 0);
    assert_true(s.costs.weight_ms == 0.5 && s.costs.comm_ms == -1);
    scenario_free(&s);
    expect_ok(BASE "[costs]\nforward_ms = 1\n", "costs.backward_ms=2");
}

static void test_syntax_and_duplicates(void **state) {
    (void)state;
    expect_prefix(BASE "[pipeline]\nstages = 2\n", NULL, "t.scn:15: 'stages' is given twice (first at line 10); keep one");
    expect_prefix(BASE "this is not ini\n", NULL, "t.scn:14: expected 'key = value' or '[section]'");
    expect_prefix(BASE "[batch\nmicro_batch_size = 1\n", NULL, "t.scn:14: expected 'key = value' or '[section]'");
    // The first error wins, even when later lines are bad in other ways.
    expect_prefix(BASE "oops\n[nope]\nstagez = 1\n", NULL, "t.scn:14: expected 'key = value'");
    expect_prefix(BASE "[pipeline]\nstagez = 1\noops\n", NULL, "t.scn:15: unknown key 'stagez'");
    // An empty unknown section at the end is still reported.
    expect_prefix(BASE "\n[extra]", NULL, "t.scn:15: unknown section [extra]");
    // Lines end with \n, \r\n or the end of the text; a continuation-like indent is a new key.
    expect_ok("[model]\r\nlayers = 8\r\nhidden = 64\r\nheads = 4\r\nseq_len = 32\r\nvocab = 128\r\n"
              "[batch]\r\nmicro_batches = 4\r\n[pipeline]\r\nstages = 4\r\nschedule = 1f1b\r\n"
              "[hardware]\r\ngpu = h100", NULL);
    expect_prefix(BASE "[pipeline]\nchunks = 1\n  2\n", NULL, "t.scn:16: expected 'key = value'");
    expect_prefix(BASE "[pipeline]\nchunks = 1\n  stages = 2\n", NULL, "t.scn:16: 'stages' is given twice");
}

static void test_long_lines_and_garbage(void **state) {
    (void)state;
    // A 10000-byte comment and a 10000-byte value are ordinary lines; line numbers stay right.
    size_t n = 10000;
    char *text = malloc(sizeof BASE + 2 * n + 64);
    memset(text, ';', n);
    strcpy(text + n, "\n" BASE);
    expect_ok(text, NULL);
    strcpy(text + n, "\n" BASE "[model]\nname = ");
    size_t at = strlen(text);
    memset(text + at, 'x', n);
    strcpy(text + at + n, "\n");
    expect_prefix(text, NULL, "t.scn:16: 'name = xxxxxxxx");
    assert_non_null(strstr(err, "' is not a plain name"));
    assert_true(strlen(err) < SCN_ERR_MAX - 1); // the value was cut, not the sentence
    free(text);
    // Past 65536 bytes a line is refused with its number.
    char *big = malloc(70000 + sizeof BASE + 32);
    strcpy(big, BASE "[model]\nname = ");
    at = strlen(big);
    memset(big + at, 'x', 69000);
    strcpy(big + at + 69000, "\n");
    expect_prefix(big, NULL, "t.scn:15: line is longer than 65536 bytes; split it or shorten it");
    big[strlen(big) - 1] = '\0'; // also without a final newline
    expect_prefix(big, NULL, "t.scn:15: line is longer than 65536 bytes");
    memset(big, ';', 65536); // exactly the limit is fine
    strcpy(big + 65536, "\n" BASE);
    expect_ok(big, NULL);
    big[65536] = ';';
    strcpy(big + 65537, "\n" BASE);
    expect_prefix(big, NULL, "t.scn:1: line is longer than 65536 bytes");
    free(big);
    char *longset = malloc(70000);
    strcpy(longset, "model.name=");
    memset(longset + 11, 'y', 69000);
    longset[69011] = '\0';
    Scenario s;
    assert_int_equal(parse(BASE, &s, 1, longset), 2);
    assert_non_null(strstr(err, ": longer than 65536 bytes"));
    assert_int_equal(strncmp(err, "--set model.name=yyyy", 21), 0);
    scenario_free(&s);
    free(longset);
    // Binary garbage (any byte but NUL) gets an error with a file name and line, never a crash.
    char garbage[4096];
    unsigned x = 12345;
    for (int round = 0; round < 200; round++) {
        for (size_t i = 0; i + 1 < sizeof garbage; i++) {
            x = x * 1103515245u + 12345u;
            garbage[i] = (char)(1 + (x >> 16) % 255);
            if (round % 2 && i % 37 == 0) garbage[i] = (char)"\n[]=;"[(x >> 8) % 5];
        }
        garbage[sizeof garbage - 1] = '\0';
        assert_int_equal(parse(garbage, &s, 0), 2);
        assert_int_equal(strncmp(err, "t.scn:", 6), 0);
        scenario_free(&s);
    }
    // Garbage after a valid prefix: blamed on its own line.
    char mixed[sizeof BASE + 16] = BASE;
    strcat(mixed, "\x01\x02\xff\xfe\n");
    expect_prefix(mixed, NULL, "t.scn:14: expected 'key = value'");
    // Control characters the user wrote are shown as '?', so the message stays one line.
    expect_prefix(BASE "[mo\x01\x1b[2Jdel]\n", NULL, "t.scn:14: unknown section [mo??[2Jdel]");
    expect_prefix(BASE, "model.name=a\tb", "--set model.name=a?b: 'a?b' is not a plain name");
}

static void test_combinations(void **state) {
    (void)state;
    expect_prefix("[model]\nlayers = 8\nhidden = 60\nheads = 8\nseq_len = 32\nvocab = 128\n"
                  "[batch]\nmicro_batches = 4\n[pipeline]\nstages = 4\nschedule = 1f1b\n"
                  "[hardware]\ngpu = h100\n", NULL,
                  "t.scn:4: heads = 8 does not divide hidden = 60; use a divisor such as 6");
    expect_prefix(BASE, "model.layers=9", "--set model.layers=9: 9 layers do not split evenly into 4 stages under partition = uniform; list the layers per stage (partition = 3,2,2,2), use partition = balanced, or make layers a multiple of 4");
    expect_prefix("[model]\nlayers = 10\nhidden = 64\nheads = 4\nseq_len = 32\nvocab = 128\n"
                  "[batch]\nmicro_batches = 4\n[pipeline]\nstages = 4\nschedule = 1f1b\n"
                  "[hardware]\ngpu = h100\n", NULL, "t.scn:2: 10 layers do not split evenly into 4 stages");
    expect_prefix(BASE "[pipeline]\npartition = uniform\n", "model.layers=10", "--set model.layers=10: 10 layers do not split evenly");
    expect_prefix("[model]\nlayers = 10\nhidden = 64\nheads = 4\nseq_len = 32\nvocab = 128\n"
                  "[batch]\nmicro_batches = 4\n[pipeline]\nstages = 4\nschedule = 1f1b\n"
                  "partition = uniform\n[hardware]\ngpu = h100\n", NULL, "t.scn:12: 10 layers do not split evenly");
    expect_prefix(BASE "[pipeline]\npartition = 2,2,2,2\n", "pipeline.stages=2", "--set pipeline.stages=2: partition lists 4 stages but the pipeline has 2");
    expect_prefix(BASE, "model.hidden=62", "--set model.hidden=62: heads = 4 does not divide hidden = 62; use a divisor such as 2");
    expect_ok(BASE "[pipeline]\npartition = balanced\n", "model.layers=10");
    expect_prefix(INTERLEAVED, "model.layers=20", "--set model.layers=20: 20 layers do not split evenly into 4 stages × 2 chunks under partition = uniform; list the layers per stage (partition = 3,3,3,3,2,2,2,2)");
    expect_prefix(BASE "[pipeline]\nstages = 16\n", NULL, "t.scn:15: 'stages' is given twice");
    expect_prefix("[model]\nlayers = 8\nhidden = 64\nheads = 4\nseq_len = 32\nvocab = 128\n"
                  "[batch]\nmicro_batches = 4\n[pipeline]\nstages = 16\nschedule = 1f1b\n"
                  "[hardware]\ngpu = h100\n", NULL, "t.scn:10: 16 stages need at least 16 layers, and layers = 8; use fewer stages");
    expect_prefix(INTERLEAVED, "pipeline.chunks=5", "--set pipeline.chunks=5: 4 stages × 5 chunks need at least 20 layers, and layers = 16; use fewer stages or chunks");
    expect_prefix(INTERLEAVED, "model.layers=12", "--set model.layers=12: 12 layers do not split evenly into 4 stages × 2 chunks");
    // The schedule decides what it can run; its message is blamed on the key it names.
    expect_prefix(BASE, "pipeline.chunks=2", "--set pipeline.chunks=2: 1f1b runs one model chunk per device");
    expect_prefix(BASE "[pipeline]\nchunks = 2\n", NULL, "t.scn:15: 1f1b runs one model chunk per device");
    expect_prefix(BASE, "pipeline.chunks=3", "--set pipeline.chunks=3: 1f1b runs one model chunk per device"); // not "8 layers < 12"
    expect_prefix(BASE, "pipeline.schedule=interleaved", "t.scn:9: interleaved needs at least 2 model chunks"); // chunks not given: its section's line
    expect_prefix(INTERLEAVED, "batch.micro_batches=6", "--set batch.micro_batches=6: interleaved needs micro_batches to be a multiple of stages (4), not 6");
    expect_prefix("[model]\nlayers = 16\nhidden = 64\nheads = 4\nseq_len = 32\nvocab = 128\n"
                  "[batch]\nmicro_batches = 6\n[pipeline]\nstages = 4\nschedule = interleaved\n"
                  "chunks = 2\n[hardware]\ngpu = h100\n", NULL, "t.scn:8: interleaved needs micro_batches to be a multiple of stages (4)");
    expect_ok(INTERLEAVED, NULL);
    expect_ok(BASE, "pipeline.schedule=gpipe");
    expect_prefix(BASE, "pipeline.schedule=custom", "t.scn:9: schedule = custom needs schedule_file");
    expect_prefix(BASE "[pipeline]\nschedule_file = x.sched\n", NULL, "t.scn:15: schedule_file is only read with schedule = custom");
}

static void test_inih_settings_restored(void **state) {
    (void)state;
    int max_line = ini_max_line;
    bool multiline = ini_allow_multiline, stop = ini_stop_on_first_error;
    Scenario s;
    assert_int_equal(parse(BASE, &s, 0), 0);
    scenario_free(&s);
    assert_int_equal(ini_max_line, max_line);
    assert_int_equal(ini_allow_multiline, multiline);
    assert_int_equal(ini_stop_on_first_error, stop);
}

static void test_free_is_safe(void **state) {
    (void)state;
    Scenario s;
    memset(&s, 0, sizeof s);
    scenario_free(&s);
    scenario_free(&s);
    assert_int_equal(parse(BASE, &s, 1, "pipeline.partition=2,2,2,2"), 0);
    scenario_free(&s);
    assert_null(s.pipeline.partition_layers);
    assert_null(s.text);
    scenario_free(&s); // twice is fine: it zeroes the struct
    assert_int_equal(parse(BASE "[pipeline]\npartition = 2,2,2,2\nchunks = x\n", &s, 0), 2);
    scenario_free(&s); // a partly filled one too
}

static void write_file(const char *path, const char *text, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static void test_load_files(void **state) {
    (void)state;
    Scenario s;
    assert_int_equal(scenario_load("/nonexistent/x.scn", NULL, 0, &s, err), 1);
    assert_string_equal(err, "cannot read '/nonexistent/x.scn': No such file or directory");
    scenario_free(&s);
    char dir[] = "/tmp/psim-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], sched[256];
    snprintf(path, sizeof path, "%s/tiny.v1.scn", dir);
    snprintf(sched, sizeof sched, "%s/my.sched", dir);

    write_file(path, BASE "\0", sizeof BASE);
    assert_int_equal(scenario_load(path, NULL, 0, &s, err), 2);
    assert_non_null(strstr(err, "/tiny.v1.scn:14: contains a NUL byte"));
    scenario_free(&s);

    write_file(path, BASE, strlen(BASE));
    const char *sets[] = {"batch.micro_batches=8"};
    assert_int_equal(scenario_load(path, sets, 1, &s, err), 0);
    assert_string_equal(s.text, BASE);
    assert_string_equal(s.path, path);
    assert_string_equal(s.model.name, "tiny.v1");
    assert_int_equal(s.batch.micro_batches, 8);
    scenario_free(&s);
    const char *bad[] = {"batch.micro_batches=0"};
    assert_int_equal(scenario_load(path, bad, 1, &s, err), 2);
    assert_non_null(strstr(err, "--set batch.micro_batches=0: '0' is out of range"));
    scenario_free(&s);

    // A relative schedule_file is taken from the scenario's directory.
    const char *custom = BASE "[pipeline]\nschedule_file = my.sched\n";
    write_file(path, custom, strlen(custom));
    const char *use_custom[] = {"pipeline.schedule=custom"};
    assert_int_equal(scenario_load(path, use_custom, 1, &s, err), 0);
    assert_string_equal(s.pipeline.schedule_file, sched);
    scenario_free(&s);

    // Over 16 MiB: refused as bad input.
    size_t huge = 16 * 1024 * 1024 + 1;
    char *text = malloc(huge);
    memset(text, ';', huge);
    memcpy(text, BASE, strlen(BASE));
    for (size_t i = strlen(BASE) + 100; i < huge; i += 100) text[i] = '\n';
    write_file(path, text, huge);
    assert_int_equal(scenario_load(path, NULL, 0, &s, err), 2);
    assert_non_null(strstr(err, "larger than 16 MiB"));
    scenario_free(&s);
    write_file(path, text, huge - 2); // just under: fine
    assert_int_equal(scenario_load(path, NULL, 0, &s, err), 0);
    scenario_free(&s);
    free(text);

    // A directory cannot be read.
    assert_int_equal(scenario_load(dir, NULL, 0, &s, err), 1);
    assert_non_null(strstr(err, "cannot read '"));
    scenario_free(&s);
    remove(path);
    rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_presets), cmocka_unit_test(test_name_default),
        cmocka_unit_test(test_presets),              cmocka_unit_test(test_overrides),
        cmocka_unit_test(test_format_round_trip),
        cmocka_unit_test(test_stage_times),    cmocka_unit_test(test_unknown_names),
        cmocka_unit_test(test_bad_numbers),          cmocka_unit_test(test_partition_lists),
        cmocka_unit_test(test_out_of_range),         cmocka_unit_test(test_missing_keys),
        cmocka_unit_test(test_costs),                cmocka_unit_test(test_syntax_and_duplicates),
        cmocka_unit_test(test_long_lines_and_garbage), cmocka_unit_test(test_combinations),
        cmocka_unit_test(test_inih_settings_restored), cmocka_unit_test(test_free_is_safe),
        cmocka_unit_test(test_load_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
