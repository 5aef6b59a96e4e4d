/* tests/test_search.c: the configuration search (sim/search/search.h): enumeration counts from the
 * rules' arithmetic, every point equal to simulating it on its own through psim's steps, drops
 * that really exceed memory_gib, a sorted ranking with deterministic ties, the "why" text
 * computed from the numbers, the same report whatever the number of workers, bad input. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "sim/engine/engine.h"
#include "sim/run/run.h"
#include "sim/search/search.h"

/* A small analytic model (no [costs]): 8 layers, 8 heads, 4 GPUs per node. */
static const char SCN[] = "[model]\nlayers = 8\nhidden = 256\nheads = 8\nseq_len = 128\n"
                          "vocab = 1024\n[batch]\nmicro_batches = 1\n[pipeline]\nstages = 1\n"
                          "schedule = 1f1b\n[hardware]\ngpu = h100\ngpus_per_node = 4\n";
#define LAYERS 8
#define GPN 4

/* |got - want| <= tol, with both numbers in the failure message. */
static void near(double got, double want, double tol) {
    if (!(fabs(got - want) <= tol)) fail_msg("got %.17g, want %.17g (tolerance %g)", got, want, tol);
}

static char path[64];
static const char *const MEM_SET[] = {"hardware.memory_gib=0.03"}; // some fit, some do not

static int setup(void **state) {
    (void)state;
    strcpy(path, "/tmp/psim-search-XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0) return -1;
    FILE *f = fdopen(fd, "w");
    fputs(SCN, f);
    return fclose(f);
}

static int teardown(void **state) {
    (void)state;
    return remove(path);
}

static void load(const char *const *sets, int nsets, Scenario *s) {
    char err[SCN_ERR_MAX];
    assert_int_equal(scenario_load(path, sets, nsets, s, err), 0);
}

static size_t enumerate(const Scenario *s, int64_t gpus, int64_t batch, const char *schedules,
                        SearchPoint **pts) {
    char err[512];
    size_t n = 0;
    SearchSpace sp = {.gpus = gpus, .global_batch = batch, .schedules = schedules};
    assert_int_equal(search_enumerate(s, &sp, pts, &n, err, sizeof err), 0);
    return n;
}

static int64_t divisors(int64_t x) {
    int64_t k = 0;
    for (int64_t b = 1; b <= x; b++) k += x % b == 0;
    return k;
}

/* Counts the rules give, for 8 GPUs, batch B: t in {1, 2, 4} (powers of two dividing 8 heads,
 * at most 4 a node), p | 8/t, d = 8/(tp) | B, b | B/d, m = B/(db); then per schedule:
 * 1f1b and gpipe one v; zb-v v = 2 with m >= 2p and 2p <= layers; interleaved v = 2 ..
 * layers/p with p >= 2 and p | m. Three recompute modes each. */
static void test_counts_from_arithmetic(void **state) {
    (void)state;
    Scenario s;
    load(NULL, 0, &s);
    const int64_t G = 8, B = 16;
    int64_t flat = 0, zbv = 0, inter = 0;
    for (int64_t t = 1; t <= GPN; t *= 2)
        for (int64_t p = 1; p <= G / t; p++) {
            if ((G / t) % p || p > LAYERS) continue;
            int64_t d = G / t / p;
            if (B % d) continue;
            flat += divisors(B / d);
            for (int64_t b = 1; b <= B / d; b++) {
                if ((B / d) % b) continue;
                int64_t m = B / d / b;
                zbv += m >= 2 * p && 2 * p <= LAYERS;
                if (p >= 2 && m % p == 0) inter += LAYERS / p - 1;
            }
        }
    SearchPoint *pts;
    assert_int_equal(enumerate(&s, G, B, "1f1b,gpipe", &pts), 3 * 2 * flat);
    free(pts);
    assert_int_equal(enumerate(&s, G, B, "zb-v", &pts), 3 * zbv);
    for (size_t i = 0; i < 3 * (size_t)zbv; i++) {
        assert_int_equal(pts[i].cfg.chunks, 2);
        assert_int_equal(pts[i].cfg.stages * pts[i].cfg.data * pts[i].cfg.tensor, G);
        assert_int_equal(pts[i].cfg.data * pts[i].cfg.micro_batches * pts[i].cfg.micro_batch_size, B);
    }
    free(pts);
    assert_int_equal(enumerate(&s, G, B, "interleaved", &pts), 3 * inter);
    free(pts);
    scenario_free(&s);
}

/* t must divide gpus_per_node too (psim refuses a tensor group across nodes): with 6 a node,
 * t = 4 goes and t in {1, 2} stays. */
static void test_tensor_divides_node(void **state) {
    (void)state;
    static const char *const six[] = {"hardware.gpus_per_node=6"};
    Scenario s;
    load(six, 1, &s);
    int64_t flat = 0;
    for (int64_t t = 1; t <= 2; t++)
        for (int64_t p = 1; p <= 8 / t; p++)
            if ((8 / t) % p == 0) flat += divisors(16 / (8 / t / p));
    SearchPoint *pts;
    size_t n = enumerate(&s, 8, 16, "1f1b", &pts);
    assert_int_equal(n, 3 * flat);
    for (size_t i = 0; i < n; i++) assert_int_equal(6 % pts[i].cfg.tensor, 0);
    free(pts);
    scenario_free(&s);
}

/* Sequence parallelism is on for every t > 1 point unless the scenario gives it; given, every
 * t > 1 point takes the scenario's value; t = 1 points never have it. */
static void test_sequence_parallel_rule(void **state) {
    (void)state;
    static const char *const off[] = {"parallel.sequence=false"};
    for (int given = 0; given < 2; given++) {
        Scenario s;
        load(off, given, &s);
        SearchPoint *pts;
        size_t n = enumerate(&s, 8, 16, "1f1b", &pts), wide = 0;
        for (size_t i = 0; i < n; i++) {
            wide += pts[i].cfg.tensor > 1;
            assert_int_equal(pts[i].cfg.sequence, !given && pts[i].cfg.tensor > 1);
        }
        assert_true(wide > 0);
        free(pts);
        scenario_free(&s);
    }
}

/* Context parallelism: by default only widths that leave a GPU 8192 tokens of a sample or
 * more (none at this scenario's length), as listed otherwise; p d t c = gpus throughout. */
static void test_context_widths(void **state) {
    (void)state;
    static const char *const longer[] = {"model.seq_len=32768"};
    Scenario s;
    load(longer, 1, &s);
    char err[512];
    size_t n = 0;
    SearchPoint *pts;
    int seen[5] = {0};
    SearchSpace sp = {.gpus = 8, .global_batch = 16, .schedules = "1f1b"};
    assert_int_equal(search_enumerate(&s, &sp, &pts, &n, err, sizeof err), 0);
    for (size_t i = 0; i < n; i++) {
        const SearchConfig *c = &pts[i].cfg;
        assert_int_equal(c->stages * c->data * c->tensor * c->context, 8);
        assert_true(c->context == 1 || c->context == 2 || c->context == 4);
        seen[c->context]++;
    }
    assert_true(seen[1] && seen[2] && seen[4]); // 32768 / 4 = 8192: the last one allowed
    free(pts);
    sp.context = "1,8";
    assert_int_equal(search_enumerate(&s, &sp, &pts, &n, err, sizeof err), 0);
    for (size_t i = 0; i < n; i++) assert_true(pts[i].cfg.context == 1 || pts[i].cfg.context == 8);
    free(pts);
    sp.context = "3"; // 2c = 6 does not divide 32768
    assert_int_equal(search_enumerate(&s, &sp, &pts, &n, err, sizeof err), 2);
    assert_non_null(strstr(err, "--context 3"));
    scenario_free(&s);
    load(NULL, 0, &s); // this scenario's own length: no context parallelism by default
    sp.context = NULL;
    assert_int_equal(search_enumerate(&s, &sp, &pts, &n, err, sizeof err), 0);
    for (size_t i = 0; i < n; i++) assert_int_equal(pts[i].cfg.context, 1);
    free(pts);
    scenario_free(&s);
}

/* psim's steps for one point, written out here (not through search.c): load with the
 * overrides, build and check, engine, metrics. */
static void simulate_alone(const SearchConfig *c, Metrics *mt, double *makespan) {
    char sets[SEARCH_NSETS][SEARCH_SET_MAX];
    int k = search_point_sets(c, sets);
    RunOptions o;
    memset(&o, 0, sizeof o);
    o.prog = "psim", o.scenario = path, o.quiet = 1, o.scale = 1;
    o.sets[o.nsets++] = MEM_SET[0];
    for (int i = 0; i < k; i++) o.sets[o.nsets++] = sets[i];
    Run r = {0};
    char err[512];
    assert_int_equal(run_prepare(&o, &r), 0);
    assert_int_equal(engine_run(&r.prog, &r.cost, (int32_t)r.scn.batch.iterations, &r.tl, err,
                                sizeof err), 0);
    assert_int_equal(metrics_compute(&r.scn, &r.plan, &r.prog, &r.cost, &r.tl, mt), 0);
    *makespan = mt->makespan_ms;
    run_free(&r);
}

static void test_every_point_as_psim_runs_it(void **state) {
    (void)state;
    Scenario s;
    load(MEM_SET, 1, &s);
    SearchPoint *pts;
    size_t n = enumerate(&s, 8, 16, "1f1b,zb-h2,zb-v,interleaved", &pts);
    assert_int_equal(search_run(path, MEM_SET, 1, pts, n, 2, NULL), 0);
    size_t c[5], *order = malloc(n * sizeof *order);
    search_count(pts, n, c);
    assert_int_equal(c[SEARCH_PENDING] + c[SEARCH_INVALID], 0);
    assert_true(c[SEARCH_OK] > 0 && c[SEARCH_STATIC] > 0 && c[SEARCH_MEMORY] > 0);
    size_t nrank = search_rank(pts, n, order);
    assert_int_equal(nrank, c[SEARCH_OK]);
    double best = 0;
    for (size_t i = 0; i < n; i++) {
        Metrics mt = {0};
        double makespan, peak = 0, fixed = 0;
        simulate_alone(&pts[i].cfg, &mt, &makespan);
        for (int32_t d = 0; d < mt.devices; d++) {
            const DeviceMetrics *dm = &mt.dev[d];
            peak = fmax(peak, dm->peak_memory_gib);
            fixed = fmax(fixed, dm->weights_gib + dm->grads_gib + dm->optimizer_gib);
        }
        double tokens = 16.0 * 128 / (makespan / 1e3);
        switch (pts[i].status) {
        case SEARCH_STATIC: // dropped before the engine: its static part alone is too much
            assert_true(fixed > 0.03);
            near(pts[i].static_gib, fixed, 1e-12);
            break;
        case SEARCH_MEMORY:
            assert_true(peak > 0.03 && fixed <= 0.03);
            assert_true(pts[i].peak_gib == peak);
            break;
        default:
            assert_int_equal(pts[i].status, SEARCH_OK);
            assert_true(peak <= 0.03);
            assert_true(pts[i].makespan_ms == makespan && pts[i].peak_gib == peak);
            assert_true(pts[i].bubble_rate == mt.bubble_rate && pts[i].mfu == mt.mfu);
            assert_true(pts[i].allreduce_exposed_ms == mt.allreduce_exposed_ms);
            near(pts[i].tokens_per_s, tokens, 1e-9 * tokens);
            if (pts[i].cfg.data == 1) // one replica: psim's own tokens/s
                near(pts[i].tokens_per_s, mt.throughput_tokens_per_s, 1e-9 * tokens);
            best = fmax(best, pts[i].tokens_per_s);
        }
        metrics_free(&mt);
    }
    assert_true(pts[order[0]].tokens_per_s == best);
    for (size_t k = 1; k < nrank; k++) // sorted, best first
        assert_true(pts[order[k]].tokens_per_s <= pts[order[k - 1]].tokens_per_s);
    free(order), free(pts);
    scenario_free(&s);
}

static SearchPoint ok_point(double tokens, double peak, Recompute r, int64_t b) {
    SearchPoint p = {.cfg = {.schedule = "1f1b", .stages = 4, .chunks = 1, .data = 2, .tensor = 1,
                             .micro_batch_size = b, .micro_batches = 8 / b, .recompute = r},
                     .status = SEARCH_OK, .tokens_per_s = tokens, .peak_gib = peak,
                     .makespan_ms = 4e5 / tokens, .busy_ms = 800, .bubble_rate = 0.2};
    return p;
}

static void test_rank_ties(void **state) {
    (void)state; // equal tokens/s: the lower peak first, then the earlier point
    SearchPoint pts[6] = {ok_point(100, 5, RECOMPUTE_NONE, 1), ok_point(200, 7, RECOMPUTE_NONE, 1),
                          ok_point(200, 6, RECOMPUTE_NONE, 1), ok_point(300, 9, RECOMPUTE_NONE, 1),
                          ok_point(200, 6, RECOMPUTE_NONE, 1), ok_point(900, 1, RECOMPUTE_NONE, 1)};
    pts[5].status = SEARCH_MEMORY; // not ranked, however fast
    size_t order[6];
    assert_int_equal(search_rank(pts, 6, order), 5);
    const size_t want[5] = {3, 2, 4, 1, 0};
    for (int k = 0; k < 5; k++) assert_int_equal(order[k], want[k]);
}

static void test_why_from_the_numbers(void **state) {
    (void)state;
    Scenario s;
    load(NULL, 0, &s);
    SearchPoint pts[4] = {ok_point(400, 60, RECOMPUTE_NONE, 1),
                          ok_point(300, 40, RECOMPUTE_SELECTIVE, 2),
                          ok_point(500, 90, RECOMPUTE_NONE, 1), ok_point(200, 30, RECOMPUTE_FULL, 1)};
    pts[1].busy_ms = 1000, pts[1].bubble_rate = 0.2; // span 1250, makespan 1333.3: other 83.3
    pts[2].status = SEARCH_MEMORY, pts[2].cfg.stages = 2;
    pts[3].busy_ms = 1200;
    size_t order[4], nrank = search_rank(pts, 4, order);
    char *text;
    size_t len;
    FILE *f = open_memstream(&text, &len);
    search_why(f, &s, pts, 4, order, nrank);
    fclose(f);
    assert_non_null(strstr(text, "#2 differs in b=2 (not 1), m=4 (not 8), recompute selective "
                                 "(not none): 25.00 % fewer tokens/s; its iteration is +333.3 ms "
                                 "(compute +200.0, bubble +50.0, other +83.3 ms"));
    assert_non_null(strstr(text, "the same with recompute full: fits (30.0 GiB) but gives 50.00 % "
                                 "fewer tokens/s (compute +400.0 ms)"));
    assert_null(strstr(text, "the same with recompute selective")); // #2 differs in b and m too
    assert_non_null(strstr(text, "memory decides: 1f1b p=2 v=1 d=2 t=1 b=1 m=8 recompute=none "
                                 "would give 25.00 % more tokens/s but needs 90.0 GiB"));
    free(text);
    scenario_free(&s);
}

static char *report(const SearchPoint *in, size_t n, const Scenario *s, int jobs) {
    SearchPoint *pts = malloc(n * sizeof *pts);
    size_t *order = malloc(n * sizeof *order), len;
    memcpy(pts, in, n * sizeof *pts);
    assert_int_equal(search_run(path, MEM_SET, 1, pts, n, jobs, NULL), 0);
    char *text;
    FILE *f = open_memstream(&text, &len);
    SearchSpace sp = {.gpus = 8, .global_batch = 16};
    search_report(f, path, MEM_SET, 1, s, &sp, pts, n, order, search_rank(pts, n, order), 5);
    fclose(f);
    free(pts), free(order);
    return text;
}

static void test_same_report_any_workers(void **state) {
    (void)state;
    Scenario s;
    load(MEM_SET, 1, &s);
    SearchPoint *pts;
    size_t n = enumerate(&s, 8, 16, NULL, &pts);
    char *a = report(pts, n, &s, 1), *b = report(pts, n, &s, 3);
    assert_string_equal(a, b);
    assert_non_null(strstr(a, "\npsim --set hardware.memory_gib=0.03 --set pipeline.schedule="));
    free(a), free(b), free(pts);
    scenario_free(&s);
}

static void test_bad_input(void **state) {
    (void)state;
    Scenario s;
    load(NULL, 0, &s);
    char err[512];
    SearchPoint *pts = NULL;
    size_t n = 0;
    SearchSpace sp = {.gpus = 8, .global_batch = 16, .schedules = "1f1b,pipedream"};
    assert_int_equal(search_enumerate(&s, &sp, &pts, &n, err, sizeof err), 2);
    assert_non_null(strstr(err, "pipedream is left out of searches: it is asynchronous"));
    sp.schedules = "1f1b,onef1b";
    assert_int_equal(search_enumerate(&s, &sp, &pts, &n, err, sizeof err), 2);
    assert_non_null(strstr(err, "onef1b is not a schedule"));
    sp = (SearchSpace){.gpus = 1024, .global_batch = 8}; // p <= 8, t <= 4: d >= 32 > 8
    assert_int_equal(search_enumerate(&s, &sp, &pts, &n, err, sizeof err), 2);
    assert_non_null(strstr(err, "no configuration of 1024 GPUs runs a global batch of 8"));
    assert_null(pts);
    scenario_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_counts_from_arithmetic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tensor_divides_node, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sequence_parallel_rule, setup, teardown),
        cmocka_unit_test_setup_teardown(test_context_widths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_point_as_psim_runs_it, setup, teardown),
        cmocka_unit_test(test_rank_ties),
        cmocka_unit_test_setup_teardown(test_why_from_the_numbers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_report_any_workers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
