/* tests/test_hetero.c: heterogeneous devices and links: [device.N] and [link.A-B] sections
 * (resolution, --set, round trip, FILE:LINE errors), devices_per_gpu partitions of one GPU,
 * and what they do to op and transfer times (alpha-beta in integer ns, checked exactly) and to
 * the bottleneck the metrics name. */
#include <math.h>
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
#include "sim/metrics/metrics.h"
#include "sim/plan/plan.h"
#include "sim/sched/schedule.h"

#include "priced_fixture.h"

/* 8 layers of h = 1024 on p = 4 H100s (lines 1-13), 1F1B, m = 8. */
#define BASE                                                                                   \
    "[model]\nlayers = 8\nhidden = 1024\nheads = 16\nseq_len = 1024\nvocab = 32000\n"          \
    "[batch]\nmicro_batches = 8\n"                                                             \
    "[pipeline]\nstages = 4\nschedule = 1f1b\n"                                                \
    "[hardware]\ngpu = h100\n"

static char err[SCN_ERR_MAX];

static int parse(const char *text, Scenario *s, int nsets, ...) {
    const char *sets[8];
    va_list ap;
    va_start(ap, nsets);
    for (int i = 0; i < nsets; i++) sets[i] = va_arg(ap, const char *);
    va_end(ap);
    return scenario_parse(text, "t.scn", sets, nsets, s, err);
}

static void expect_prefix(const char *text, const char *set, const char *want) {
    Scenario s;
    int rc = set ? parse(text, &s, 1, set) : parse(text, &s, 0);
    if (rc != 2 || strncmp(err, want, strlen(want)) != 0)
        fail_msg("rc %d, error '%s', wanted it to start with '%s'", rc, err, want);
    scenario_free(&s);
}

/* Priced with the flat model (peak x efficiency), whose closed forms these tests check. */
static void price(Priced *x, const char *text, const char *set) {
    const char *sets[2] = {"hardware.cost_model=flat", set};
    priced_build(x, text, "t.scn", sets, set ? 2 : 1);
}

/* latency + bytes / bandwidth in ns, as the cost model rounds it. */
static int64_t alpha_beta(double latency_us, double bandwidth_gbs, int64_t bytes) {
    return llround(latency_us * 1e3 + (double)bytes / bandwidth_gbs);
}

static void test_device_sections_resolve(void **state) {
    (void)state;
    Scenario s;
    assert_int_equal(parse(BASE "[device.2]\ngpu = a100\n[device.1]\npeak_tflops = 100\n"
                           "efficiency = 0.4\nmemory_gib = 24\n", &s, 1,
                           "device.3.peak_tflops=495"), 0);
    assert_true(s.device[0].peak_tflops == 989 && s.device[0].efficiency == 0.5 &&
                s.device[0].memory_gib == 80 && !s.device[0].overridden);
    assert_true(s.device[1].peak_tflops == 100 && s.device[1].efficiency == 0.4 &&
                s.device[1].memory_gib == 24 && s.device[1].overridden);
    assert_string_equal(s.device[2].gpu, "a100");
    assert_true(s.device[2].peak_tflops == 312 && s.device[2].memory_gib == 80 &&
                s.device[2].efficiency == 0.5);
    assert_true(s.device[3].peak_tflops == 495 && s.device[3].memory_gib == 80);
    scenario_free(&s);
    // a preset and an explicit figure: the figure wins whatever the order
    assert_int_equal(parse(BASE "[device.0]\npeak_tflops = 7\ngpu = v100\n", &s, 0), 0);
    assert_true(s.device[0].peak_tflops == 7 && s.device[0].memory_gib == 32);
    scenario_free(&s);
    // a later --set wins over the file
    assert_int_equal(parse(BASE "[device.0]\npeak_tflops = 7\n", &s, 2, "device.0.peak_tflops=8",
                           "device.0.peak_tflops=9"), 0);
    assert_true(s.device[0].peak_tflops == 9);
    scenario_free(&s);
}

static void test_devices_per_gpu(void **state) {
    (void)state; // two partitions per GPU: half the peak and memory, unless written per device
    Scenario s;
    assert_int_equal(parse(BASE "devices_per_gpu = 2\n[device.1]\nmemory_gib = 50\n[device.3]\n"
                           "gpu = a100\n", &s, 0), 0);
    assert_true(s.device[0].peak_tflops == 989.0 / 2 && s.device[0].memory_gib == 40);
    assert_true(s.device[1].peak_tflops == 989.0 / 2 && s.device[1].memory_gib == 50);
    assert_true(s.device[3].peak_tflops == 156 && s.device[3].memory_gib == 40);
    assert_true(s.net.same_gpu_bandwidth_gbs == 3350.0 / 2 && s.net.same_gpu_latency_us == 5);
    scenario_free(&s);
    assert_int_equal(parse(BASE, &s, 0), 0);
    assert_int_equal(s.hw.devices_per_gpu, 1);
    scenario_free(&s);
}

static void test_round_trip(void **state) {
    (void)state; // format -> parse -> format is stable, and the figures survive
    Scenario s, again;
    assert_int_equal(parse(BASE "devices_per_gpu = 2\n[device.2]\ngpu = a100\nefficiency = "
                           "0.3333333333333333\n[link.2-1]\nbandwidth_gbs = 12.5\n[link.0-3]\n"
                           "latency_us = 0\n", &s, 1, "device.3.peak_tflops=495"), 0);
    char *t1 = scenario_format(&s);
    assert_non_null(strstr(t1, "\n[device.2]\ngpu = a100\npeak_tflops = 156\n"));
    assert_non_null(strstr(t1, "\n[device.3]\n; gpu = (not given)\npeak_tflops = 495\n"));
    assert_non_null(strstr(t1, "\n[link.1-2]\nbandwidth_gbs = 12.5\n; latency_us = (not given)\n"));
    assert_non_null(strstr(t1, "\n[link.0-3]\n; bandwidth_gbs = (not given)\nlatency_us = 0\n"));
    assert_int_equal(scenario_parse(t1, "again.scn", NULL, 0, &again, err), 0);
    char *t2 = scenario_format(&again);
    assert_string_equal(t1, t2);
    for (int d = 0; d < 4; d++)
        assert_memory_equal(&s.device[d], &again.device[d], sizeof s.device[d]);
    assert_int_equal(again.nlinks, 2);
    free(t1), free(t2);
    scenario_free(&s), scenario_free(&again);
}

static void test_bad_sections(void **state) {
    (void)state; // FILE:LINE, what is wrong, what would be right
    expect_prefix(BASE "[device.4]\ngpu = a100\n", NULL,
                  "t.scn:15: [device.4] names device 4, but stages = 4 numbers the pipeline's "
                  "devices 0 .. 3; use a device below 4 or more stages");
    expect_prefix(BASE "[device.x]\ngpu = a100\n", NULL,
                  "t.scn:14: section [device.x] is not valid; write [device.N] with N the "
                  "pipeline device it sets (0 .. stages-1), e.g. [device.0]");
    expect_prefix(BASE "[device]\n", NULL, "t.scn:14: section [device] is not valid");
    expect_prefix(BASE "[device.1x]\n", NULL, "t.scn:14: section [device.1x] is not valid");
    expect_prefix(BASE "[link.1]\n", NULL, "t.scn:14: section [link.1] is not valid; write "
                  "[link.A-B] with the two devices it joins, e.g. [link.0-1]");
    expect_prefix(BASE "[link.2-2]\n", NULL, "t.scn:14: [link.2-2] joins device 2 to itself");
    expect_prefix(BASE "[link.0-9]\nlatency_us = 1\n", NULL, "t.scn:15: [link.0-9] names device 9");
    expect_prefix(BASE "[device.1]\npeak_tflop = 3\n", NULL,
                  "t.scn:15: unknown key 'peak_tflop' in [device.1]; did you mean 'peak_tflops'?");
    expect_prefix(BASE "[link.0-1]\nspeed = 3\n", NULL, "t.scn:15: unknown key 'speed' in "
                  "[link.0-1]; the keys of [link.A-B] are bandwidth_gbs, latency_us");
    expect_prefix(BASE "[device.1]\ngpu = a100\n[device.1]\ngpu = h100\n", NULL,
                  "t.scn:17: 'gpu' of this device is given twice (first at line 15); keep one");
    expect_prefix(BASE "[link.0-1]\nlatency_us = 1\n[link.1-0]\nlatency_us = 2\n", NULL,
                  "t.scn:17: 'latency_us' of this link is given twice (first at line 15)");
    expect_prefix(BASE "[device.1]\npeak_tflops = -3\n", NULL, "t.scn:15: 'peak_tflops = -3' is "
                  "out of range; peak_tflops must be above 0");
    expect_prefix(BASE "[device.1]\ngpu = tpu\n", NULL, "t.scn:15: unknown gpu 'tpu'");
    expect_prefix(BASE "[devise.1]\n", NULL, "t.scn:14: unknown section [devise.1]");
    expect_prefix(BASE, "device.9.gpu=a100", "--set device.9.gpu=a100: [device.9] names device 9");
    expect_prefix(BASE, "device.1.bogus=1", "--set device.1.bogus=1: unknown key 'bogus' in [device.1]");
    expect_prefix(BASE "devices_per_gpu = 3\n", NULL, "t.scn:14: stages = 4 is not a multiple "
                  "of devices_per_gpu = 3");
    expect_prefix(BASE "[costs]\ncomm_ms = 1\n[link.0-1]\nlatency_us = 1\n", NULL,
                  "t.scn:15: comm_ms fixes every transfer, so the [link.0-1] figures would not "
                  "be used");
}

static void test_stage_priced_on_its_device(void **state) {
    (void)state; // device 2 at half peak: its ops take twice as long (to the rounding ns)
    Priced x, y;
    price(&x, BASE, NULL);
    price(&y, BASE, "device.2.peak_tflops=494.5");
    double rate = 989 * 0.5 * 1e3; // FLOP/ns
    for (int k = OP_F; k <= OP_W; k++) {
        assert_int_equal(cost_op_ns(&x.c, 2, (OpKind)k), llround(cost_op_flops(&x.c, 2, (OpKind)k) / rate));
        assert_int_equal(cost_op_ns(&y.c, 2, (OpKind)k), llround(cost_op_flops(&y.c, 2, (OpKind)k) / (rate / 2)));
        assert_int_equal(cost_op_ns(&y.c, 1, (OpKind)k), cost_op_ns(&x.c, 1, (OpKind)k));
    }
    assert_true(llabs(cost_op_ns(&y.c, 2, OP_F) - 2 * cost_op_ns(&x.c, 2, OP_F)) <= 1);
    assert_int_equal(cost_stage_ns(&y.s, 2, 2, 0, 0), cost_op_ns(&y.c, 2, OP_BW) + cost_op_ns(&y.c, 2, OP_F));
    priced_free(&x), priced_free(&y);
}

static void test_link_override(void **state) {
    (void)state; // [link.1-2] replaces exactly that pair's figures, both ways
    Priced x;
    price(&x, BASE "[link.1-2]\nbandwidth_gbs = 10\nlatency_us = 3\n", NULL);
    int64_t bytes = 1024 * 1024 * 2, intra = alpha_beta(10, 450, bytes);
    assert_int_equal(x.c.xfer_bytes, bytes);
    assert_int_equal(cost_xfer_ns(&x.c, 1, 2), alpha_beta(3, 10, bytes));
    assert_int_equal(cost_xfer_ns(&x.c, 2, 1), alpha_beta(3, 10, bytes));
    assert_int_equal(cost_xfer_ns(&x.c, 0, 1), intra);
    assert_int_equal(cost_xfer_ns(&x.c, 2, 3), intra);
    assert_int_equal(cost_xfer_ns(&x.c, 3, 0), intra);
    priced_free(&x);
    // a figure left out is the pair's own: here an inter-node pair keeps the NIC's bandwidth
    price(&x, BASE "gpus_per_node = 2\n[link.1-2]\nlatency_us = 1\n[link.0-1]\nbandwidth_gbs = 100\n", NULL);
    assert_int_equal(cost_xfer_ns(&x.c, 1, 2), alpha_beta(1, 50, bytes));
    assert_int_equal(cost_xfer_ns(&x.c, 0, 1), alpha_beta(10, 100, bytes));
    assert_int_equal(cost_xfer_ns(&x.c, 2, 3), intra);
    priced_free(&x);
}

static void test_many_links(void **state) {
    (void)state; // every neighbour pair of 64 devices overridden: each found, others untouched
    char *text = malloc(64 * 64 + 1024);
    int n = sprintf(text, "%s", "[model]\nlayers = 64\nhidden = 64\nheads = 4\nseq_len = 32\n"
                    "vocab = 128\n[batch]\nmicro_batches = 64\n[pipeline]\nstages = 64\n"
                    "schedule = 1f1b\n[hardware]\ngpu = h100\n");
    for (int d = 0; d + 1 < 64; d++)
        n += sprintf(text + n, "[link.%d-%d]\nlatency_us = %d\n", d + 1, d, d + 1);
    Priced x;
    price(&x, text, NULL);
    int64_t bytes = x.c.xfer_bytes;
    for (int d = 0; d + 1 < 64; d++) {
        double bw = d / 8 == (d + 1) / 8 ? 450 : 50;
        assert_int_equal(cost_xfer_ns(&x.c, d, d + 1), alpha_beta(d + 1, bw, bytes));
        assert_int_equal(cost_xfer_ns(&x.c, d + 1, d), alpha_beta(d + 1, bw, bytes));
    }
    assert_int_equal(cost_xfer_ns(&x.c, 0, 2), alpha_beta(10, 450, bytes));
    assert_int_equal(cost_xfer_ns(&x.c, 0, 63), alpha_beta(20, 50, bytes));
    assert_true(x.c.link_mask + 1 >= 2 * 63);
    priced_free(&x);
    free(text);
}

/* Durations of the send rows from device a to b (a != b), in order; returns how many. */
static int sends(const Timeline *tl, int32_t a, int32_t b, int64_t *dur, int max) {
    int n = 0;
    for (size_t i = 0; i < tl->n && n < max; i++)
        if (tl->ops[i].stream == STREAM_SEND && tl->ops[i].device == a && tl->ops[i].peer == b)
            dur[n++] = tl->ops[i].end_ns - tl->ops[i].start_ns;
    return n;
}

static void test_link_changes_one_hop(void **state) {
    (void)state; // in the timeline, only transfers between 1 and 2 change, to the link's time
    Priced x, y;
    Timeline tx = {0}, ty = {0};
    price(&x, BASE, NULL);
    price(&y, BASE "[link.1-2]\nbandwidth_gbs = 5\nlatency_us = 40\n", NULL);
    assert_int_equal(engine_run(&x.pr, &x.c, 1, &tx, err, sizeof err), 0);
    assert_int_equal(engine_run(&y.pr, &y.c, 1, &ty, err, sizeof err), 0);
    int64_t link = alpha_beta(40, 5, y.c.xfer_bytes), intra = alpha_beta(10, 450, y.c.xfer_bytes);
    int64_t dx[64], dy[64];
    for (int32_t a = 0; a < 4; a++)
        for (int32_t b = 0; b < 4; b++) {
            if (a == b) continue;
            int nx = sends(&tx, a, b, dx, 64), ny = sends(&ty, a, b, dy, 64);
            assert_int_equal(nx, ny);
            assert_int_equal(nx, abs(a - b) == 1 ? 8 : 0); // m activations or gradients
            int hop = (a == 1 && b == 2) || (a == 2 && b == 1);
            for (int i = 0; i < nx; i++) {
                assert_int_equal(dx[i], intra);
                assert_int_equal(dy[i], hop ? link : intra);
            }
        }
    timeline_free(&tx), timeline_free(&ty);
    priced_free(&x), priced_free(&y);
}

/* The roofline prices a [device.N] preset with that GPU's figures (peak, achievable GEMM
 * fraction, HBM bandwidth, SMs): the a100 device's stage costs exactly what the same stage
 * costs in an all-a100 pipeline, and its neighbours keep the h100's prices. */
static void test_roofline_device_preset(void **state) {
    (void)state;
    const char *sets[3][2] = {{"hardware.cost_model=roofline", NULL},
                              {"hardware.cost_model=roofline", "hardware.gpu=a100"},
                              {"hardware.cost_model=roofline", "device.2.gpu=a100"}};
    Priced x[3]; // all h100, all a100, device 2 an a100
    for (int i = 0; i < 3; i++) priced_build(&x[i], BASE, "t.scn", sets[i], sets[i][1] ? 2 : 1);
    for (int k = OP_F; k <= OP_W; k++) {
        assert_int_equal(cost_op_ns(&x[2].c, 2, (OpKind)k), cost_op_ns(&x[1].c, 2, (OpKind)k));
        assert_int_equal(cost_op_ns(&x[2].c, 1, (OpKind)k), cost_op_ns(&x[0].c, 1, (OpKind)k));
    }
    // the a100 is slower by less than its peak says (the memory-bound kernels scale with
    // 2039 vs 3350 GB/s, the GEMMs with 0.869 x 312 vs 0.803 x 989 TFLOP/s)
    double r = (double)cost_op_ns(&x[2].c, 2, OP_F) / (double)cost_op_ns(&x[2].c, 1, OP_F);
    assert_true(r > 3350.0 / 2039 && r < 0.803 * 989 / (0.869 * 312));
    for (int i = 0; i < 3; i++) priced_free(&x[i]);
}

static void test_same_gpu_partitions(void **state) {
    (void)state; // devices_per_gpu = 2: half the peak, and a device-memory copy inside a GPU
    Priced one, two;
    price(&one, BASE, NULL);
    price(&two, BASE "devices_per_gpu = 2\ngpus_per_node = 1\n", NULL);
    int64_t bytes = two.c.xfer_bytes;
    assert_int_equal(cost_xfer_ns(&two.c, 0, 1), alpha_beta(5, 3350.0 / 2, bytes));
    assert_int_equal(cost_xfer_ns(&two.c, 3, 2), alpha_beta(5, 3350.0 / 2, bytes));
    assert_int_equal(cost_xfer_ns(&two.c, 1, 2), alpha_beta(20, 50, bytes)); // GPUs 0, 1: nodes 0, 1
    for (int32_t st = 0; st < 4; st++)
        assert_int_equal(cost_op_ns(&two.c, st, OP_F),
                         llround(cost_op_flops(&two.c, st, OP_F) / (989.0 / 2 * 0.5 * 1e3)));
    assert_true(llabs(cost_op_ns(&two.c, 1, OP_BW) - 2 * cost_op_ns(&one.c, 1, OP_BW)) <= 2);
    assert_int_equal(plan_node_of(&two.pl, 3), 1);
    priced_free(&two);
    // one GPU for the whole pipeline (what pexec --backend cuda runs on a single GPU), with
    // the copy's figures given
    price(&two, BASE "devices_per_gpu = 4\n[network]\nsame_gpu_bandwidth_gbs = 1000\n"
          "same_gpu_latency_us = 2\n", NULL);
    for (int32_t a = 0; a < 3; a++) assert_int_equal(cost_xfer_ns(&two.c, a, a + 1), alpha_beta(2, 1000, bytes));
    assert_true(two.s.device[0].peak_tflops == 989.0 / 4 && two.s.device[0].memory_gib == 20);
    priced_free(&two), priced_free(&one);
}

static void test_slow_device_is_bottleneck(void **state) {
    (void)state; // a device at half the others' speed is the one the metrics name (a small
                 // vocabulary, so the LM head does not make the last stage the slowest)
    const char *small_head =
        "[model]\nlayers = 8\nhidden = 1024\nheads = 16\nseq_len = 1024\nvocab = 1024\n"
        "[batch]\nmicro_batches = 8\n[pipeline]\nstages = 4\nschedule = 1f1b\n"
        "[hardware]\ngpu = h100\n";
    for (int32_t slow = 0; slow < 4; slow++) {
        char set[64];
        snprintf(set, sizeof set, "device.%d.efficiency=0.25", slow);
        Priced x;
        Timeline tl = {0};
        Metrics mt;
        price(&x, small_head, set);
        assert_int_equal(engine_run(&x.pr, &x.c, 1, &tl, err, sizeof err), 0);
        assert_int_equal(metrics_compute(&x.s, &x.pl, &x.pr, &x.c, &tl, &mt), 0);
        assert_int_equal(mt.bottleneck, slow);
        assert_true(fabs(mt.peak_tflops - 989) < 1e-9); // the mean of the devices' peaks
        // every op of the slow stage takes twice its time on the others (to 1 ns)
        int32_t other = (slow + 1) % 3; // a stage without the LM head
        for (int k = OP_F; k <= OP_W; k++)
            assert_true(llabs(cost_op_ns(&x.c, slow, (OpKind)k) - 2 * cost_op_ns(&x.c, other, (OpKind)k)) <= 1 ||
                        slow == 3);
        metrics_free(&mt), timeline_free(&tl), priced_free(&x);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device_sections_resolve),
        cmocka_unit_test(test_devices_per_gpu),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_bad_sections),
        cmocka_unit_test(test_stage_priced_on_its_device),
        cmocka_unit_test(test_link_override),
        cmocka_unit_test(test_many_links),
        cmocka_unit_test(test_link_changes_one_hop),
        cmocka_unit_test(test_same_gpu_partitions),
        cmocka_unit_test(test_roofline_device_preset),
        cmocka_unit_test(test_slow_device_is_bottleneck),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
