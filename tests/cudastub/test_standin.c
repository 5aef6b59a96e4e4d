/* tests/cudastub/test_standin.c: exec/cuda.c, the CUDA backend's own code, run on the CUDA
 * stand-in (tests/cudastub/: the runtime, cuBLAS and NCCL on the CPU, the layer on the CPU
 * twin), so its issue order, NCCL groups, copies, partition fallback, watchdog and failure
 * paths run in `make test` without a GPU. Built as build/tests/test_cuda_standin by its own
 * rule (never part of bin/pexec). Asserts: 1F1B, ZB-H1 and interleaved on 2 and 4 partitions
 * of one GPU, and 1F1B over 2 GPUs through NCCL, give the one-device run's weight gradients
 * (non-zero), one compute row per op and a send and receive row per transfer; green contexts
 * asked for fall back to streams (the stand-in's driver has none); an injected hang is named
 * by the watchdog within its time, and the run keeps the rows that completed before it; an
 * injected NCCL error fails the run with NCCL's message. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "cudastub_types.h"
#include "exec/cuda.h"
#include "kernels/layer.h"
#include "sim/sched/schedule.h"

static const LayerShape PIPE = {.samples = 1, .seq = 40, .hidden = 32, .heads = 4, .ffn = 64,
                                .dropout = 0.1f};
#define LAYERS 4
#define MB 4

static Plan plan_of(int32_t p, int32_t v) {
    Plan pl = {.devices = p, .chunks = v, .stages = p * v, .pipes = 1, .gpus_per_node = 8};
    pl.layers = calloc((size_t)pl.stages, sizeof *pl.layers);
    pl.first_layer = calloc((size_t)pl.stages, sizeof *pl.first_layer);
    assert_true(pl.layers && pl.first_layer);
    for (int32_t st = 0; st < pl.stages; st++)
        pl.layers[st] = LAYERS / pl.stages, pl.first_layer[st] = st * (LAYERS / pl.stages);
    return pl;
}

typedef struct {
    Program pr;
    Plan pl;
    Timeline tl;
    Exec *ex;
    int rc;
    char why[1024];
} Run;

static void run_of(Run *r, const char *sched, int32_t p, int32_t v, int32_t k, int hang,
                   double watchdog_s) {
    memset(r, 0, sizeof *r);
    SchedParams sp = {.devices = p, .chunks = v, .micro_batches = MB, .iterations = 1};
    SchedIssue issue;
    assert_int_equal(sched_find(sched)->build(&sp, &r->pr, &issue), 0);
    assert_int_equal(program_check(&r->pr, r->why, sizeof r->why), 0);
    r->pl = plan_of(p, v);
    ExecSpec spec = {.pr = &r->pr, .pl = &r->pl, .shape = PIPE, .seed = 9, .iterations = 1,
                     .watchdog_s = watchdog_s, .devices_per_gpu = k, .green = 1, .group = 1,
                     .warmup = 1, .hang = hang, .hang_device = p - 1};
    if (exec_create(&spec, &exec_cuda_threads, &r->ex, r->why, sizeof r->why) != 0)
        fail_msg("%s: create: %s", sched, r->why);
    r->rc = exec_run(r->ex, &r->tl, r->why, sizeof r->why);
}

static void run_free(Run *r) {
    exec_free(r->ex);
    program_free(&r->pr), plan_free(&r->pl), timeline_free(&r->tl);
}

static double grads_of(Exec *ex, int32_t stage, int32_t k, Layer *l) {
    char why[256];
    assert_int_equal(layer_init(l, &PIPE, 1), 0);
    if (exec_grads(ex, stage, k, l, why, sizeof why) != 0) fail_msg("%s", why);
    double sum = 0;
    for (int w = 0; w < LAYER_WEIGHTS; w++)
        for (int64_t i = 0; i < layer_buf_elems(&PIPE, (LayerBuf)(LB_FIRST_GRAD + w)); i++)
            sum += fabs(l->g[w][i]);
    return sum;
}

static int green_expected; // the stand-in's driver has green contexts (cudastub_green)

/* sched on p devices, v chunks each, k devices per GPU, against one device's run. */
static void expect_matches(const char *sched, int32_t p, int32_t v, int32_t k) {
    cudastub_reset(4, 0);
    Run one, many;
    run_of(&one, "1f1b", 1, 1, 1, 0, 20);
    run_of(&many, sched, p, v, k, 0, 20);
    if (one.rc || many.rc) fail_msg("%s: %s%s", sched, one.why, many.why);
    int sms = -1, gpus = 0;
    CudaPartition part = cuda_exec_partition(many.ex, &sms, &gpus);
    assert_int_equal(gpus, (p + k - 1) / k);
    if (green_expected && k > 1) { // 132 SMs in groups of 8: 1/k of them, rounded down to 8
        assert_int_equal(part, CUDA_GREEN_CONTEXTS);
        assert_int_equal(sms, (int)(132 / k / 8 * 8));
        assert_true(sms * k <= 132);
        CudastubCounts c;
        cudastub_counts(&c);
        assert_int_equal(c.sm_target_min, sms); // cuBLAS told each partition's SM count
        assert_true(c.split_sms <= 132);
    } else { // asked for, but the stand-in's driver has none: streams, no SM count
        assert_int_equal(part, k > 1 ? CUDA_STREAMS : CUDA_WHOLE_GPU);
        assert_int_equal(sms, 0);
    }
    assert_false(cudastub_thread_ctx_green()); // this thread was left in the primary context
    int32_t per = LAYERS / (p * v);
    for (int32_t g = 0; g < LAYERS; g++) {
        Layer a, b;
        double sa = grads_of(one.ex, 0, g, &a), sb = grads_of(many.ex, g / per, g % per, &b);
        assert_true(sa > 1e-3 && sb > 1e-3); // not vacuously equal
        for (int w = 0; w < LAYER_WEIGHTS; w++) {
            int64_t n = layer_buf_elems(&PIPE, (LayerBuf)(LB_FIRST_GRAD + w));
            for (int64_t i = 0; i < n; i++)
                if (fabsf(a.g[w][i] - b.g[w][i]) > 1e-4f * (1 + fabsf(a.g[w][i])))
                    fail_msg("%s: layer %d weight %d [%lld]: %g vs %g", sched, g, w, (long long)i,
                             (double)b.g[w][i], (double)a.g[w][i]);
        }
        layer_free(&a), layer_free(&b);
    }
    assert_false(cudastub_thread_ctx_green()); // exec_grads switched back too
    size_t sends = 0, recvs = 0, compute = 0;
    for (size_t i = 0; i < many.tl.n; i++) {
        const TimelineOp *o = &many.tl.ops[i];
        sends += o->stream == STREAM_SEND, recvs += o->stream == STREAM_RECV;
        compute += o->stream == STREAM_COMPUTE;
        assert_true(o->end_ns >= o->start_ns && o->start_ns >= 0);
    }
    // every stage boundary is crossed by each micro-batch's activation and gradient
    assert_int_equal(sends, (size_t)(2 * (p * v - 1) * MB));
    assert_int_equal(recvs, sends);
    assert_int_equal(compute, (size_t)many.pr.nops);
    run_free(&one), run_free(&many);
}

static void test_1f1b_two_partitions(void **state) { (void)state, expect_matches("1f1b", 2, 1, 2); }
static void test_zb_h1_four_partitions(void **state) { (void)state, expect_matches("zb-h1", 4, 1, 4); }
static void test_interleaved_two_partitions(void **state) {
    (void)state, expect_matches("interleaved", 2, 2, 2);
}
static void test_1f1b_four_partitions(void **state) { (void)state, expect_matches("1f1b", 4, 1, 4); }
/* Two GPUs: the transfers are NCCL sends and receives between the stand-in's communicators. */
static void test_1f1b_two_gpus_nccl(void **state) {
    (void)state;
    expect_matches("1f1b", 2, 1, 1);
    CudastubCounts c;
    cudastub_counts(&c);
    assert_true(c.nccl_calls >= 2 * MB * 2); // each transfer's two halves (and the warm-up)
}
static void test_zb_h1_two_gpus_two_partitions(void **state) {
    (void)state, expect_matches("zb-h1", 4, 1, 2);
}

/* Four GPUs in a line: each middle GPU sends to and receives from two peers. A group holds
 * only the calls that must be posted together, one peer's (a send and a receive that would
 * deadlock posted apart), and each peer has its own stream, so a transfer to one neighbour
 * never waits behind one to the other (Megatron-LM's and PyTorch's P2P). */
static void test_nccl_groups_and_streams_per_peer(void **state) {
    (void)state;
    expect_matches("1f1b", 4, 1, 1);
    CudastubCounts c;
    cudastub_counts(&c);
    assert_true(c.nccl_calls >= 2 * 3 * MB * 2);
    assert_int_equal(c.mixed_groups, 0);
    assert_int_equal(c.shared_streams, 0);
}

/* The green-context driver functions are asked for at CUDA 12.4's version, the one that
 * introduced them, not the runtime's (a newer runtime's signatures may differ). */
static void test_driver_entry_points_at_12_4(void **state) {
    (void)state;
    expect_matches("1f1b", 2, 1, 2); // asks for green contexts, falls back
    CudastubCounts c;
    cudastub_counts(&c);
    assert_int_equal(c.entry_version_min, 12040);
    assert_int_equal(c.entry_version_max, 12040);
}

/* With the driver's green contexts: 2 and 4 partitions of 64 and 32 SMs, cuBLAS told so,
 * the main thread back in the primary context, every green context destroyed at the end. */
static void test_green_contexts(void **state) {
    (void)state;
    cudastub_green(1, NULL);
    green_expected = 1;
    expect_matches("1f1b", 2, 1, 2);
    expect_matches("zb-h1", 4, 1, 4);
    expect_matches("interleaved", 2, 2, 2);
    green_expected = 0;
    CudastubCounts c;
    cudastub_counts(&c);
    assert_int_equal(c.green_ctxs, 0);
    cudastub_green(0, NULL);
}

/* A split that cannot be used whole (a partition without its context) is undone and runs on
 * streams, not reported as green contexts. */
static void test_green_partial_failure_falls_back(void **state) {
    (void)state;
    static const char *const fns[] = {"cuCtxFromGreenCtx", "cuGreenCtxStreamCreate",
                                      "cuCtxGetCurrent"};
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
        cudastub_green(1, fns[i]);
        expect_matches("1f1b", 2, 1, 2); // asserts streams, no SMs
        CudastubCounts c;
        cudastub_counts(&c);
        if (c.green_ctxs != 0) fail_msg("%s failing left %lld green contexts", fns[i], (long long)c.green_ctxs);
    }
    cudastub_green(0, NULL);
}

static double secs(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec / 1e9;
}

/* The last device's first op never completes: the watchdog names it within about its time,
 * status 1, no rows. k devices per GPU: 2 (a copy waits on it), 1 (an NCCL peer does). */
static void expect_hang_caught(int32_t k) {
    cudastub_reset(4, 0);
    Run r;
    double t0 = secs();
    run_of(&r, "1f1b", 2, 1, k, 1, 0.5);
    double took = secs() - t0;
    assert_int_equal(r.rc, 1);
    // one GPU: its lane names the first stuck op in issue order, the hung one. Two GPUs:
    // whichever lane's watchdog fires first names its own stuck op (GPU 0's are stuck behind
    // GPU 1's), as on real GPUs
    const char *want = k > 1 ? "device 1 op 0 (F mb 0 chunk 0) did not complete within 0.5 s "
                               "(watchdog"
                             : " did not complete within 0.5 s (watchdog";
    if (!strstr(r.why, want) || (k == 1 && !strstr(r.why, "device 1 op 0 (F mb 0 chunk 0)") &&
                                 !strstr(r.why, "device 0 op ")))
        fail_msg("why: %s", r.why);
    assert_true(took < 3); // the watchdog's 0.5 s plus setup, not a later timeout
    // the failed run keeps what completed before the hang: device 0's first forwards, never
    // a row of the stuck device's compute stream
    size_t dev0 = 0;
    for (size_t i = 0; i < r.tl.n; i++) {
        assert_false(r.tl.ops[i].device == 1 && r.tl.ops[i].stream == STREAM_COMPUTE);
        dev0 += r.tl.ops[i].device == 0 && r.tl.ops[i].stream == STREAM_COMPUTE;
    }
    assert_true(dev0 >= 1);
    run_free(&r);
}

static void test_hang_caught_one_gpu(void **state) { (void)state, expect_hang_caught(2); }
static void test_hang_caught_two_gpus(void **state) { (void)state, expect_hang_caught(1); }

/* The stand-in's Nth NCCL call fails: the run fails (status 1) with NCCL's message. */
static void test_injected_nccl_error_fails_the_run(void **state) {
    (void)state;
    for (int n = 1; n <= 9; n += 4) {
        cudastub_reset(4, n);
        Run r;
        run_of(&r, "1f1b", 2, 1, 1, 0, 2);
        assert_int_equal(r.rc, 1);
        if (!strstr(r.why, "unhandled system error (injected by the CUDA stand-in)"))
            fail_msg("NCCL call %d: why: %s", n, r.why);
        run_free(&r);
    }
    cudastub_reset(4, 0);
}

/* Without a driver, the backend says so (cudaGetDeviceCount's reason) and creates nothing. */
static void test_no_driver_says_why(void **state) {
    (void)state;
    char why[256];
    cudastub_reset(0, 0);
    assert_int_equal(cuda_device_count(why, sizeof why), 0);
    assert_non_null(strstr(why, "cudaErrorInsufficientDriver"));
    cudastub_reset(4, 0);
    assert_int_equal(cuda_device_count(why, sizeof why), 4);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_driver_says_why),
        cmocka_unit_test(test_1f1b_two_partitions),
        cmocka_unit_test(test_1f1b_four_partitions),
        cmocka_unit_test(test_zb_h1_four_partitions),
        cmocka_unit_test(test_interleaved_two_partitions),
        cmocka_unit_test(test_1f1b_two_gpus_nccl),
        cmocka_unit_test(test_zb_h1_two_gpus_two_partitions),
        cmocka_unit_test(test_nccl_groups_and_streams_per_peer),
        cmocka_unit_test(test_driver_entry_points_at_12_4),
        cmocka_unit_test(test_green_contexts),
        cmocka_unit_test(test_green_partial_failure_falls_back),
        cmocka_unit_test(test_hang_caught_one_gpu),
        cmocka_unit_test(test_hang_caught_two_gpus),
        cmocka_unit_test(test_injected_nccl_error_fails_the_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
