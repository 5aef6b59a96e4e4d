/* tests/test_exec.c: pexec's executor core on its CPU threads backend (exec/exec.h). Every
 * schedule, pipelined over threads, gives
 * the weight gradients of the same model run on one device (the pipeline moves the right
 * tensors); the measured timeline has a row per op in each device's program order and a send
 * and a receive per transfer; a dropped send trips the watchdog and a misordered receive is
 * caught, each with a message naming the op. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "exec/exec.h"
#include "sim/sched/schedule.h"

static const LayerShape SHAPE = {.samples = 1, .seq = 4, .hidden = 8, .heads = 2, .ffn = 16,
                                 .dropout = 0.1f};
#define LAYERS 4

/* A plan of LAYERS layers split evenly over p*v stages. */
static Plan plan(int32_t p, int32_t v) {
    Plan pl = {.devices = p, .chunks = v, .stages = p * v, .pipes = 1, .gpus_per_node = 8};
    pl.layers = calloc((size_t)pl.stages, sizeof *pl.layers);
    pl.first_layer = calloc((size_t)pl.stages, sizeof *pl.first_layer);
    assert_non_null(pl.layers);
    assert_non_null(pl.first_layer);
    for (int32_t st = 0; st < pl.stages; st++)
        pl.layers[st] = LAYERS / pl.stages, pl.first_layer[st] = st * (LAYERS / pl.stages);
    return pl;
}

static void build(const char *name, int32_t p, int32_t v, int32_t m, int32_t k, Program *pr) {
    SchedParams sp = {.devices = p, .chunks = v, .micro_batches = m, .iterations = k};
    SchedIssue issue;
    char why[512];
    assert_int_equal(sched_find(name)->build(&sp, pr, &issue), 0);
    assert_int_equal(program_check(pr, why, sizeof why), 0);
}

static Exec *create(const ExecSpec *spec) {
    Exec *ex;
    char why[512];
    if (exec_create(spec, &exec_cpu_threads, &ex, why, sizeof why) != 0) fail_msg("%s", why);
    return ex;
}

static Exec *start(const Program *pr, const Plan *pl, int32_t iterations, int32_t drop) {
    ExecSpec spec = {.pr = pr, .pl = pl, .shape = SHAPE, .seed = 42,
                     .iterations = iterations, .watchdog_s = 0.2, .drop_send_of = drop};
    return create(&spec);
}

/* The gradients of global layer g (0..LAYERS-1) in a run of plan pl, into out. */
static const Layer *global_layer(Exec *ex, const Plan *pl, int32_t g, Layer *out) {
    char why[512];
    assert_int_equal(layer_init(out, &SHAPE, 0), 0);
    for (int32_t st = 0; st < pl->stages; st++)
        if (g >= pl->first_layer[st] && g < pl->first_layer[st] + pl->layers[st]) {
            if (exec_grads(ex, st, (int32_t)(g - pl->first_layer[st]), out, why, sizeof why))
                fail_msg("%s", why);
            return out;
        }
    fail_msg("no stage holds layer %d", g);
    return NULL;
}

static void expect_same_grads(const Layer *a, const Layer *b, int32_t g, const char *name) {
    for (int w = 0; w < LAYER_WEIGHTS; w++) {
        const float *x = a->g[w], *y = b->g[w];
        for (int64_t i = 0; i < layer_buf_elems(&SHAPE, (LayerBuf)(LB_FIRST_GRAD + w)); i++)
            if (fabsf(x[i] - y[i]) > 1e-5f + 1e-4f * fabsf(y[i]))
                fail_msg("%s: layer %d weight %d [%lld]: %g vs one device %g", name, g, w,
                         (long long)i, (double)x[i], (double)y[i]);
    }
}

static void test_pipelines_match_one_device(void **state) {
    (void)state;
    static const struct { const char *name; int32_t p, v, m; } cases[] = {
        {"gpipe", 2, 1, 4},       {"1f1b", 4, 1, 4},  {"interleaved", 2, 2, 4},
        {"zb-h1", 2, 1, 4},       {"zb-h2", 4, 1, 4}, {"zb-v", 2, 2, 4},
        {"dualpipev", 2, 2, 4},   {"pipedream", 2, 1, 4}};
    char why[512];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int32_t m = cases[c].m;
        Program one, many;
        Plan pl1 = plan(1, 1), pln = plan(cases[c].p, cases[c].v);
        build("1f1b", 1, 1, m, 1, &one);
        build(cases[c].name, cases[c].p, cases[c].v, m, 1, &many);
        Exec *r1 = start(&one, &pl1, 1, -1), *rn = start(&many, &pln, 1, -1);
        Timeline t1 = {0}, tn = {0};
        assert_int_equal(exec_run(r1, &t1, why, sizeof why), 0);
        if (exec_run(rn, &tn, why, sizeof why) != 0) fail_msg("%s: %s", cases[c].name, why);
        for (int32_t g = 0; g < LAYERS; g++) {
            Layer a, b;
            expect_same_grads(global_layer(rn, &pln, g, &a), global_layer(r1, &pl1, g, &b), g,
                              cases[c].name);
            layer_free(&a), layer_free(&b);
        }
        timeline_free(&t1), timeline_free(&tn);
        exec_free(r1), exec_free(rn);
        program_free(&one), program_free(&many);
        plan_free(&pl1), plan_free(&pln);
    }
}

static int by_start(const void *a, const void *b) {
    const TimelineOp *x = a, *y = b;
    if (x->device != y->device) return x->device - y->device;
    return (x->start_ns > y->start_ns) - (x->start_ns < y->start_ns);
}

static void test_timeline_rows(void **state) {
    (void)state; // 1F1B, p = 4, m = 3, two iterations: rows per op, per transfer, in order
    Program pr;
    Plan pl = plan(4, 1);
    build("1f1b", 4, 1, 3, 1, &pr);
    Exec *rt = start(&pr, &pl, 2, -1);
    Timeline tl = {0};
    char why[512];
    assert_int_equal(exec_run(rt, &tl, why, sizeof why), 0);
    TimelineOp *compute = malloc(tl.n * sizeof *compute);
    size_t nc = 0, sends = 0, recvs = 0;
    for (size_t i = 0; i < tl.n; i++) {
        assert_true(tl.ops[i].start_ns >= 0 && tl.ops[i].end_ns >= tl.ops[i].start_ns);
        if (tl.ops[i].stream == STREAM_COMPUTE) compute[nc++] = tl.ops[i];
        sends += tl.ops[i].stream == STREAM_SEND, recvs += tl.ops[i].stream == STREAM_RECV;
    }
    assert_int_equal(nc, 2 * pr.nops);
    assert_int_equal(sends, 2 * 2 * 3 * 3); // iterations x 2(p-1)m
    assert_int_equal(recvs, sends);
    qsort(compute, nc, sizeof *compute, by_start);
    size_t k = 0;
    for (int32_t d = 0; d < 4; d++)
        for (int32_t it = 0; it < 2; it++)
            for (int64_t i = pr.start[d]; i < pr.start[d + 1]; i++, k++) {
                assert_int_equal(compute[k].device, d);
                assert_int_equal(compute[k].kind, pr.ops[i].kind);
                assert_int_equal(compute[k].micro_batch, it * 3 + pr.ops[i].micro_batch);
            }
    free(compute);
    timeline_free(&tl);
    exec_free(rt);
    program_free(&pr);
    plan_free(&pl);
}

static void test_watchdog(void **state) {
    (void)state; // device 0 never sends the activation: a waiting op gives up, naming itself
    Program pr;
    Plan pl = plan(2, 1);
    build("1f1b", 2, 1, 1, 1, &pr);
    Exec *rt = start(&pr, &pl, 1, 0);
    Timeline tl = {0};
    char why[512];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(exec_run(rt, &tl, why, sizeof why), 1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_true((double)(t1.tv_sec - t0.tv_sec) < 5.0);
    // both devices wait (1 for the activation, 0 then for the gradient); the first to give up
    // is named
    if (!strstr(why, "device 1 op 0 (F mb 0 chunk 0) waited 0.2 s for its activation from device 0") &&
        !strstr(why, "device 0 op 1 (BW mb 0 chunk 0) waited 0.2 s for its gradient from device 1"))
        fail_msg("got '%s'", why);
    // what ran before the failure is kept: device 0's forward, and no more (its send was lost)
    assert_int_equal(tl.n, 1);
    assert_int_equal(tl.ops[0].device, 0);
    assert_int_equal(tl.ops[0].stream, STREAM_COMPUTE);
    assert_int_equal(tl.ops[0].kind, OP_F);
    timeline_free(&tl);
    exec_free(rt);
    program_free(&pr);
    plan_free(&pl);
}

/* Counts tl's rows of device d on stream st. */
static int count_rows(const Timeline *tl, int32_t d, Stream st) {
    int n = 0;
    for (size_t i = 0; i < tl->n; i++) n += tl->ops[i].device == d && tl->ops[i].stream == st;
    return n;
}

static void test_killed_device(void **state) {
    (void)state; // 1F1B, p = 2, m = 4: device 1 (F0 BW0 F1 ...) dies after 2 ops; device 0
                 // waits for the gradient of mb 1 until the watchdog names device 1
    Program pr;
    Plan pl = plan(2, 1);
    build("1f1b", 2, 1, 4, 1, &pr);
    ExecSpec spec = {.pr = &pr, .pl = &pl, .shape = SHAPE, .seed = 42, .iterations = 1,
                     .watchdog_s = 0.2, .drop_send_of = -1, .kill_device = 1, .kill_after = 2};
    Exec *rt = create(&spec);
    Timeline tl = {0};
    char why[512];
    assert_int_equal(exec_run(rt, &tl, why, sizeof why), 1);
    if (!strstr(why, "waited 0.2 s for its gradient from device 1 (watchdog); device 1 never sent it"))
        fail_msg("got '%s'", why);
    assert_int_equal(count_rows(&tl, 1, STREAM_COMPUTE), 2);
    assert_int_equal(count_rows(&tl, 0, STREAM_RECV), 1); // the gradient of mb 0 came
    timeline_free(&tl);
    exec_free(rt);
    // dying before its last op, which feeds no one (device 0's last BW): the join finds it
    spec.kill_device = 0, spec.kill_after = 7;
    rt = create(&spec);
    assert_int_equal(exec_run(rt, &tl, why, sizeof why), 1);
    if (!strstr(why, "device 0's thread ended after 7 ops (--kill-after), before its last op"))
        fail_msg("got '%s'", why);
    assert_int_equal(count_rows(&tl, 0, STREAM_COMPUTE), 7);
    assert_int_equal(count_rows(&tl, 1, STREAM_COMPUTE), 8);
    timeline_free(&tl);
    exec_free(rt);
    // stalling there instead: no peer waits on it, so it gives up after one watchdog
    spec.stall = 1;
    rt = create(&spec);
    assert_int_equal(exec_run(rt, &tl, why, sizeof why), 1);
    if (!strstr(why, "device 0's thread stalled after 7 ops (--stall-after), before its last op"))
        fail_msg("got '%s'", why);
    assert_int_equal(count_rows(&tl, 0, STREAM_COMPUTE), 7);
    timeline_free(&tl);
    exec_free(rt);
    program_free(&pr);
    plan_free(&pl);
}

static void test_misordered_receive(void **state) {
    (void)state; // device 1 takes mb 1 first: the channel's head is mb 0 (unchecked Program)
    Program pr;
    Plan pl = plan(2, 1);
    assert_int_equal(program_init(&pr, 2, 1, 2, PLACE_LOOPED, 8), 0);
    static const int ops[2][4][2] = {{{OP_F, 0}, {OP_F, 1}, {OP_BW, 0}, {OP_BW, 1}},
                                     {{OP_F, 1}, {OP_F, 0}, {OP_BW, 1}, {OP_BW, 0}}};
    for (int d = 0; d < 2; d++)
        for (int i = 0; i < 4; i++) program_push(&pr, d, ops[d][i][0], ops[d][i][1], 0);
    program_end(&pr);
    Exec *rt = start(&pr, &pl, 1, -1);
    Timeline tl = {0};
    char why[512];
    assert_int_equal(exec_run(rt, &tl, why, sizeof why), 1);
    if (!strstr(why, "device 1 op 0 (F mb 1 chunk 0): the next activation from device 0 is for "
                     "stage 1 mb 0, not stage 1 mb 1"))
        fail_msg("got '%s'", why);
    timeline_free(&tl);
    exec_free(rt);
    program_free(&pr);
    plan_free(&pl);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipelines_match_one_device),
        cmocka_unit_test(test_timeline_rows),
        cmocka_unit_test(test_watchdog),
        cmocka_unit_test(test_killed_device),
        cmocka_unit_test(test_misordered_receive),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
