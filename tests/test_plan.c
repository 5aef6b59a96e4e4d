/* tests/test_plan.c: the partitioner. partition = balanced against brute force over every
 * split of small cases (the slowest stage's F+B+W must be exactly the optimum), with mixed
 * device speeds, chunks and V-shapes, and with memory limits checked by the memory model on
 * a simulated run; the stage placement the Plan takes from the Program. */
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
#include "sim/model/memory.h"
#include "sim/metrics/memory_trace.h"
#include "sim/plan/plan.h"
#include "sim/sched/schedule.h"

static char err[SCN_ERR_MAX];

/* A scenario of L layers of width h on p devices (schedule, chunks v, vocabulary V), balanced,
 * with up to two --set overrides (NULL for none); priced by the flat model, whose closed forms
 * the tests check, unless roofline is set. */
static int roofline;
static void load(Scenario *s, int L, int h, int p, const char *sched, int v, int V,
                 const char *set1, const char *set2) {
    char text[1024];
    snprintf(text, sizeof text,
             "[model]\nlayers = %d\nhidden = %d\nheads = 16\nseq_len = %d\nvocab = %d\n"
             "[batch]\nmicro_batches = 8\n[pipeline]\nstages = %d\nschedule = %s\nchunks = %d\n"
             "partition = balanced\n[hardware]\ngpu = h100\ncost_model = %s\n", L, h, h, V, p,
             sched, v, roofline ? "roofline" : "flat");
    const char *sets[2] = {set1, set2};
    int n = set2 ? 2 : set1 ? 1 : 0;
    assert_int_equal(scenario_parse(text, "t.scn", sets, n, s, err), 0);
}

static void plan_of(const Scenario *s, Program *pr, Plan *pl) {
    CostPartition cp;
    SchedParams sp = scenario_sched_params(s);
    assert_int_equal(sched_find(s->pipeline.schedule)->build(&sp, pr, NULL), 0);
    assert_int_equal(plan_build_program(s, pr, cost_partition_init(&cp, s), pl, err, sizeof err), 0);
}

static int64_t slowest(const Scenario *s, const Plan *pl, const int64_t *layers, int32_t per) {
    int64_t worst = 0;
    for (int32_t st = 0; st < per; st++) {
        int64_t t = cost_stage_ns(s, plan_device_of(pl, st), layers[st], st == 0, st == per - 1);
        if (t > worst) worst = t;
    }
    return worst;
}

/* Whether every device's memory (memory_compute on a simulated run of this split) fits. */
static int fits(const Scenario *s, const Program *pr, const Plan *pl, const int64_t *layers) {
    Plan q = *pl;
    int64_t lay[64], first[64];
    q.layers = lay, q.first_layer = first;
    for (int32_t st = 0, next = 0; st < q.stages; next += (int32_t)lay[st], st++)
        lay[st] = layers[st], first[st] = next;
    CostModel c;
    Timeline tl = {0};
    DeviceMemory mem[64];
    assert_int_equal(cost_build(s, &q, &c, err, sizeof err), 0);
    assert_int_equal(engine_run(pr, &c, 1, &tl, err, sizeof err), 0);
    assert_int_equal(memory_compute(s, &q, pr, &tl, mem, NULL), 0);
    int ok = 1;
    for (int32_t d = 0; d < q.devices; d++) ok &= mem[d].peak_bytes <= s->device[d].memory_gib * GIB;
    timeline_free(&tl), cost_free(&c);
    return ok;
}

/* Every split of the layers into per stages (>= 1 each), by recursion over the stages. */
typedef struct {
    const Scenario *s;
    const Program *pr;
    const Plan *pl;
    int32_t per;
    int memory;       // only splits that fit count
    int64_t k[64];    // the split being built
    int64_t best;     // best slowest stage so far, -1 none
    int64_t visited;  // splits seen
} Brute;

static void brute_from(Brute *x, int32_t st, int64_t left) {
    if (st == x->per - 1) {
        x->k[st] = left;
        x->visited++;
        int64_t t = slowest(x->s, x->pl, x->k, x->per);
        if ((x->best < 0 || t < x->best) && (!x->memory || fits(x->s, x->pr, x->pl, x->k)))
            x->best = t;
        return;
    }
    for (int64_t n = 1; n <= left - (x->per - 1 - st); n++) {
        x->k[st] = n;
        brute_from(x, st + 1, left - n);
    }
}

/* The best slowest stage over every split; with memory, of those that fit (-1: none). */
static int64_t brute_count(const Scenario *s, const Program *pr, const Plan *pl, int32_t per,
                           int memory, int64_t *visited) {
    Brute x = {.s = s, .pr = pr, .pl = pl, .per = per, .memory = memory, .best = -1};
    brute_from(&x, 0, s->model.layers);
    if (visited) *visited = x.visited;
    return x.best;
}

static int64_t brute(const Scenario *s, const Program *pr, const Plan *pl, int32_t per, int memory) {
    return brute_count(s, pr, pl, per, memory, NULL);
}

static void check_split(const Scenario *s, const Plan *pl, int32_t per) {
    int64_t sum = 0;
    for (int32_t st = 0; st < per; st++) assert_true(pl->layers[st] >= 1), sum += pl->layers[st];
    assert_int_equal(sum, s->model.layers);
    assert_int_equal(slowest(s, pl, pl->layers, per), pl->balance.bottleneck_ns);
    assert_int_equal(cost_stage_ns(s, plan_device_of(pl, pl->balance.bottleneck_stage),
                                   pl->layers[pl->balance.bottleneck_stage],
                                   pl->balance.bottleneck_stage == 0,
                                   pl->balance.bottleneck_stage == per - 1), pl->balance.bottleneck_ns);
}

static void test_brute_force_counts_splits(void **state) {
    (void)state; // the enumerator itself: C(L-1, per-1) splits, and the nested loops' optimum
    Scenario s;
    Program pr;
    Plan pl;
    load(&s, 9, 256, 4, "1f1b", 1, 128, NULL, NULL);
    plan_of(&s, &pr, &pl);
    int64_t k[4], L = 9, best = -1, visited = 0;
    for (k[0] = 1; k[0] <= L - 3; k[0]++)
        for (k[1] = 1; k[0] + k[1] <= L - 2; k[1]++)
            for (k[2] = 1; k[0] + k[1] + k[2] <= L - 1; k[2]++) {
                k[3] = L - k[0] - k[1] - k[2];
                int64_t t = slowest(&s, &pl, k, 4);
                if (best < 0 || t < best) best = t;
            }
    assert_int_equal(brute_count(&s, &pr, &pl, 4, 0, &visited), best);
    assert_int_equal(visited, 56); // C(8, 3)
    plan_free(&pl), program_free(&pr), scenario_free(&s);
}

static void test_balanced_model_stays_uniform(void **state) {
    (void)state; // a light head and equal devices: balanced is uniform
    Scenario s;
    Program pr;
    Plan pl;
    load(&s, 8, 1024, 4, "1f1b", 1, 128, NULL, NULL);
    plan_of(&s, &pr, &pl);
    for (int32_t st = 0; st < 4; st++) assert_int_equal(pl.layers[st], 2);
    check_split(&s, &pl, 4);
    assert_int_equal(pl.balance.bottleneck_ns, pl.balance.even_ns);
    assert_int_equal(pl.balance.bottleneck_stage, 3); // the head's few FLOPs break the tie
    plan_free(&pl), program_free(&pr), scenario_free(&s);
}

static void test_heavy_head(void **state) {
    (void)state; // a 256k vocabulary: the last stage takes fewer layers, the optimum exactly
    Scenario s;
    Program pr;
    Plan pl;
    load(&s, 12, 1024, 4, "1f1b", 1, 256000, NULL, NULL);
    plan_of(&s, &pr, &pl);
    check_split(&s, &pl, 4);
    assert_true(pl.layers[3] < 3);
    int64_t even[4] = {3, 3, 3, 3};
    assert_int_equal(pl.balance.even_ns, slowest(&s, &pl, even, 4));
    assert_true(pl.balance.bottleneck_ns < pl.balance.even_ns);
    assert_int_equal(pl.balance.bottleneck_ns, brute(&s, &pr, &pl, 4, 0));
    plan_free(&pl), program_free(&pr), scenario_free(&s);
}

static void test_half_peak_device(void **state) {
    (void)state; // one device at half peak gets fewer layers; the optimum, for every device
                 // and head size
    const int vocab[3] = {128, 32000, 256000};
    for (int slow = 0; slow < 4; slow++)
        for (int vi = 0; vi < 3; vi++) {
            char set[64];
            snprintf(set, sizeof set, "device.%d.peak_tflops=494.5", slow);
            Scenario s;
            Program pr;
            Plan pl;
            load(&s, 16, 1024, 4, "1f1b", 1, vocab[vi], set, NULL);
            plan_of(&s, &pr, &pl);
            check_split(&s, &pl, 4);
            assert_int_equal(pl.balance.bottleneck_ns, brute(&s, &pr, &pl, 4, 0));
            for (int32_t st = 0; st < 3; st++) // the head stage may be lighter anyway
                if (st != slow && slow != 3) assert_true(pl.layers[slow] < pl.layers[st]);
            assert_int_equal(pl.balance.memory_device, -1);
            plan_free(&pl), program_free(&pr), scenario_free(&s);
        }
}

static void test_chunks_and_vshape(void **state) {
    (void)state; // with v chunks every (device, chunk) stage is balanced on its device
    Scenario s;
    Program pr;
    Plan pl;
    load(&s, 10, 1024, 2, "interleaved", 2, 32000, "device.1.peak_tflops=300", NULL);
    plan_of(&s, &pr, &pl);
    for (int32_t st = 0; st < 4; st++) assert_int_equal(plan_device_of(&pl, st), st % 2);
    check_split(&s, &pl, 4);
    assert_int_equal(pl.balance.bottleneck_ns, brute(&s, &pr, &pl, 4, 0));
    assert_true(pl.layers[1] < pl.layers[0]);
    plan_free(&pl), program_free(&pr), scenario_free(&s);
    // zb-v's V: stages 0 and 3 on device 0, 1 and 2 on device 1
    load(&s, 10, 1024, 2, "zb-v", 2, 32000, "device.0.peak_tflops=300",
         "batch.micro_batches=8");
    plan_of(&s, &pr, &pl);
    const int32_t want[4] = {0, 1, 1, 0};
    for (int32_t st = 0; st < 4; st++) assert_int_equal(plan_device_of(&pl, st), want[st]);
    check_split(&s, &pl, 4);
    assert_int_equal(pl.balance.bottleneck_ns, brute(&s, &pr, &pl, 4, 0));
    CostModel c;
    assert_int_equal(cost_build(&s, &pl, &c, err, sizeof err), 0);
    // stage 3 runs on the slow device 0: priced at its rate
    double fl = cost_op_flops(&c, 3, OP_F);
    assert_int_equal(cost_op_ns(&c, 3, OP_F), (int64_t)(fl / (300 * 0.5 * 1e3) + 0.5));
    cost_free(&c), plan_free(&pl), program_free(&pr), scenario_free(&s);
}

/* --set device.0.memory_gib=X with room for the state and 2 in-flight micro-batches (1F1B on
 * p = 2) of k + 1/2 layers on the first stage. */
static void memory_for(const Scenario *s, double k, char *set, size_t n) {
    double p1, a1, w1, p0, a0, w0;
    memory_stage_footprint(s, 1, 1, 0, &p1, &a1, &w1);
    memory_stage_footprint(s, 0, 1, 0, &p0, &a0, &w0);
    double per_layer = (p1 - p0) * 16 + 2 * (a1 - a0), fixed = p0 * 16 + 2 * a0; // Adam, bf16
    snprintf(set, n, "device.0.memory_gib=%.6f", (fixed + (k + 0.5) * per_layer) / GIB);
}

/* The balanced partition is the optimum under the roofline's stage times too (embedding on
 * the first stage, head on the last, a device at a third of the peak), as brute force finds. */
static void test_roofline_partition_is_optimal(void **state) {
    (void)state;
    const char *sets[][2] = {{NULL, NULL},
                             {"device.1.peak_tflops=330", NULL},
                             {"device.0.gpu=a100", "model.vocab=128000"}};
    roofline = 1;
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) {
        Scenario s;
        Program pr;
        Plan pl;
        load(&s, 12, 2048, 3, "1f1b", 1, 51200, sets[i][0], sets[i][1]);
        plan_of(&s, &pr, &pl);
        check_split(&s, &pl, 3);
        assert_int_equal(pl.balance.bottleneck_ns, brute(&s, &pr, &pl, 3, 0));
        if (i == 1) assert_true(pl.layers[1] < pl.layers[0]); // the slow device takes fewer
        plan_free(&pl), program_free(&pr), scenario_free(&s);
    }
    roofline = 0;
}

static void test_memory_forces_split(void **state) {
    (void)state; // device 0 too small for its time-optimal share: a slower split, still the
                 // best of those that fit (memory checked on a simulated run)
    Scenario s;
    Program pr;
    Plan free_pl, pl;
    char set[64];
    load(&s, 8, 2048, 2, "1f1b", 1, 32000, NULL, NULL);
    plan_of(&s, &pr, &free_pl);
    check_split(&s, &free_pl, 2);
    int64_t k0 = free_pl.layers[0];
    assert_true(k0 > free_pl.layers[1]); // the head stage takes fewer
    memory_for(&s, (double)k0 - 1, set, sizeof set);
    program_free(&pr), scenario_free(&s);
    load(&s, 8, 2048, 2, "1f1b", 1, 32000, set, NULL);
    plan_of(&s, &pr, &pl);
    check_split(&s, &pl, 2);
    assert_int_equal(pl.layers[0], k0 - 1);
    assert_int_equal(pl.balance.memory_device, 0);
    assert_int_equal(pl.balance.unlimited_ns, free_pl.balance.bottleneck_ns);
    assert_true(pl.balance.bottleneck_ns > pl.balance.unlimited_ns);
    assert_int_equal(pl.balance.bottleneck_stage, 1);
    assert_true(pl.balance.fits_memory);
    assert_true(fits(&s, &pr, &pl, pl.layers));
    assert_false(fits(&s, &pr, &pl, free_pl.layers));
    assert_int_equal(pl.balance.bottleneck_ns, brute(&s, &pr, &pl, 2, 1));
    plan_free(&pl), program_free(&pr), scenario_free(&s);
    // on 4 devices the same limit moves a layer at no cost in time: still the best that fits
    load(&s, 12, 2048, 4, "1f1b", 1, 32000, "device.0.memory_gib=10", "model.dropout=0.1"); // masks kept: 10 GiB binds
    plan_of(&s, &pr, &pl);
    check_split(&s, &pl, 4);
    assert_int_equal(pl.balance.memory_device, 0);
    assert_true(fits(&s, &pr, &pl, pl.layers));
    assert_int_equal(pl.balance.bottleneck_ns, brute(&s, &pr, &pl, 4, 1));
    plan_free(&pl), plan_free(&free_pl), program_free(&pr), scenario_free(&s);
}

static void test_nothing_fits(void **state) {
    (void)state; // no split fits: the time-optimal one, said so
    Scenario s;
    Program pr;
    Plan pl;
    load(&s, 12, 2048, 4, "1f1b", 1, 32000, "hardware.memory_gib=0.5", NULL);
    plan_of(&s, &pr, &pl);
    check_split(&s, &pl, 4);
    assert_false(pl.balance.fits_memory);
    assert_int_equal(pl.balance.bottleneck_ns, pl.balance.unlimited_ns);
    assert_int_equal(pl.balance.bottleneck_ns, brute(&s, &pr, &pl, 4, 0));
    plan_free(&pl), program_free(&pr), scenario_free(&s);
}

static void test_plan_build_without_program(void **state) {
    CostPartition cp;
    (void)state; // plan_build assumes 1F1B's placement and in-flight counts: the same split
    Scenario s;
    Program pr;
    Plan a, b;
    load(&s, 16, 1024, 4, "1f1b", 1, 256000, "device.1.peak_tflops=600", NULL);
    plan_of(&s, &pr, &a);
    assert_int_equal(plan_build(&s, cost_partition_init(&cp, &s), &b, err, sizeof err), 0);
    for (int32_t st = 0; st < 4; st++) {
        assert_int_equal(a.layers[st], b.layers[st]);
        assert_int_equal(plan_device_of(&b, st), st);
    }
    assert_int_equal(a.balance.bottleneck_ns, b.balance.bottleneck_ns);
    plan_free(&a), plan_free(&b), program_free(&pr), scenario_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_brute_force_counts_splits),
        cmocka_unit_test(test_balanced_model_stays_uniform),
        cmocka_unit_test(test_heavy_head),
        cmocka_unit_test(test_half_peak_device),
        cmocka_unit_test(test_chunks_and_vshape),
        cmocka_unit_test(test_roofline_partition_is_optimal),
        cmocka_unit_test(test_memory_forces_split),
        cmocka_unit_test(test_nothing_fits),
        cmocka_unit_test(test_plan_build_without_program),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
