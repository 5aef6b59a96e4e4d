/* tests/test_variability.c: jitter, stragglers and failures (sim/engine/variability.h) from the
 * [variability] keys through the engine to the metrics: determinism per seed, the exact
 * no-jitter cases, the jitter's mean and CV against their definitions (5 standard errors),
 * a straggler's exact slowdown and bottleneck, and the failure's closed form
 * lost = (failure - iteration start) + restart, makespan = no-failure makespan + lost. */
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
#include "sim/program/program.h"
#include "sim/scenario/scenario.h"
#include "sim/sched/schedule.h"
#include "sim_fixture.h"
#include "sim/engine/variability.h"

#define MS 1000000LL // ns

/* tiny-1f1b: p = 4, m = 8, F = 1 ms, B = 2 ms, free transfers: 1 iteration = 33 ms. */
static const char *const TINY =
    "[model]\nlayers = 8\nhidden = 64\nheads = 4\nseq_len = 32\nvocab = 128\n"
    "[batch]\nmicro_batches = 8\n"
    "[pipeline]\nstages = 4\nschedule = 1f1b\n"
    "[hardware]\ngpu = h100\n"
    "[costs]\nforward_ms = 1\nbackward_ms = 2\ncomm_ms = 0\n";

/* One whole psim run of TINY with --set overrides (sim_fixture.h). */
static void tiny_run(Sim *x, const char *const *sets, int nsets) {
    sim_run(x, TINY, "tiny.scn", sets, nsets);
}

static int64_t makespan_ns(const Timeline *tl) {
    int64_t last = 0;
    for (size_t i = 0; i < tl->n; i++)
        if (tl->ops[i].end_ns > last) last = tl->ops[i].end_ns;
    return last; // engine timelines start at 0
}

static int same_rows(const Timeline *a, const Timeline *b) {
    return a->n == b->n && memcmp(a->ops, b->ops, a->n * sizeof *a->ops) == 0;
}

#define SETS(...) (const char *const[]){__VA_ARGS__}, \
                  (int)(sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))

/* ---- the random numbers ------------------------------------------------------------------ */

static void test_hash_is_a_function_of_every_counter(void **state) {
    (void)state;
    uint64_t h = variability_hash(7, 1, 2, 3, 0);
    assert_true(h == variability_hash(7, 1, 2, 3, 0));
    assert_true(h != variability_hash(8, 1, 2, 3, 0));
    assert_true(h != variability_hash(7, 2, 2, 3, 0));
    assert_true(h != variability_hash(7, 1, 3, 3, 0));
    assert_true(h != variability_hash(7, 1, 2, 4, 0));
    assert_true(h != variability_hash(7, 1, 2, 3, 1));
    assert_true(variability_hash(0, 0, 0, 0, 0) != 0);
}

static void test_off_and_zero_cv_give_factor_one(void **state) {
    (void)state;
    static const Jitter kinds[] = {JITTER_NONE, JITTER_NORMAL, JITTER_LOGNORMAL};
    for (int k = 0; k < 3; k++) {
        ScnVariability sv = {.jitter = kinds[k], .jitter_cv = 0, .seed = 3,
                             .straggler_device = -1, .straggler_slowdown = 1,
                             .straggler_end_ms = -1, .failure_device = -1, .failure_at_ms = -1};
        Variability v;
        variability_init(&v, &sv);
        assert_false(v.ops_vary);
        for (int64_t op = 0; op < 100; op++) {
            assert_true(variability_factor(&v, 0, 1, op) == 1.0);
            assert_int_equal(variability_op_ns(&v, 0, 1, op, 0, 1234567), 1234567);
        }
    }
}

typedef struct {
    double mean, sd, lo, hi;
} Moments;

/* Sample moments of n factors of op times base_ns (so through the ns rounding). */
static Moments sample(const Variability *v, int64_t n, int64_t base_ns) {
    double sum = 0, sq = 0, lo = INFINITY, hi = 0;
    for (int64_t i = 0; i < n; i++) {
        double f = (double)variability_op_ns(v, i / 1000, (int32_t)(i % 7), i % 1000, 0,
                                             base_ns) / (double)base_ns;
        sum += f, sq += f * f;
        lo = f < lo ? f : lo, hi = f > hi ? f : hi;
    }
    double mean = sum / (double)n;
    return (Moments){mean, sqrt((sq - (double)n * mean * mean) / (double)(n - 1)), lo, hi};
}

static Variability jitter(Jitter kind, double cv, int64_t seed) {
    ScnVariability sv = {.jitter = kind, .jitter_cv = cv, .seed = seed, .straggler_device = -1,
                         .straggler_slowdown = 1, .straggler_end_ms = -1,
                         .failure_device = -1, .failure_at_ms = -1};
    Variability v;
    variability_init(&v, &sv);
    return v;
}

/* Tolerances: 5 standard errors of n independent draws. The mean's is sd / sqrt(n); the
 * sample standard deviation's is sd sqrt((kurtosis - 1) / (4n)) (delta method). The clamped
 * normal's kurtosis is below the normal's 3, so 3 is conservative; the lognormal's is
 * w^4 + 2w^3 + 3w^2 - 3 with w = 1 + cv^2. */
static void check_moments(Moments m, double mean, double sd, double kurtosis, int64_t n) {
    double se_mean = sd / sqrt((double)n), se_sd = sd * sqrt((kurtosis - 1) / (4.0 * n));
    if (fabs(m.mean - mean) > 5 * se_mean)
        fail_msg("mean %.6f, want %.6f +- %.6f", m.mean, mean, 5 * se_mean);
    if (fabs(m.sd - sd) > 5 * se_sd) fail_msg("sd %.6f, want %.6f +- %.6f", m.sd, sd, 5 * se_sd);
}

static void test_normal_jitter_mean_and_cv(void **state) {
    (void)state; // sd of clamp(z, -3, 3): E = (2Phi(3) - 1) - 6 phi(3) + 9 P(|z| > 3)
    double phi3 = exp(-4.5) / sqrt(2 * 3.14159265358979323846), tail = erfc(3 / sqrt(2.0));
    double clamp_sd = sqrt((1 - tail) - 6 * phi3 + 9 * tail);
    assert_true(fabs(clamp_sd - 0.99750) < 1e-5);
    const int64_t n = 200000;
    for (int seed = 1; seed <= 2; seed++) {
        Variability v = jitter(JITTER_NORMAL, 0.2, seed);
        Moments m = sample(&v, n, 10 * MS);
        check_moments(m, 1.0, 0.2 * clamp_sd, 3.0, n);
        assert_true(m.lo >= 1 - 3 * 0.2 - 1e-9 && m.hi <= 1 + 3 * 0.2 + 1e-9);
        assert_true(m.lo < 0.5 && m.hi > 1.5); // the clamp is reached, not just the bulk
    }
}

static void test_lognormal_jitter_mean_and_cv(void **state) {
    (void)state;
    const int64_t n = 200000;
    static const double cvs[] = {0.05, 0.5, 1.0};
    for (int i = 0; i < 3; i++) {
        double cv = cvs[i], w = 1 + cv * cv;
        Variability v = jitter(JITTER_LOGNORMAL, cv, 11);
        Moments m = sample(&v, n, 10 * MS);
        check_moments(m, 1.0, cv, w * w * w * w + 2 * w * w * w + 3 * w * w - 3, n);
        assert_true(m.lo > 0);
    }
}

static void test_tiny_ops_stay_positive(void **state) {
    (void)state; // a 1 ns op under wide jitter rounds to 1 ns at least, never 0
    Variability v = jitter(JITTER_LOGNORMAL, 4.0, 5);
    for (int64_t op = 0; op < 10000; op++) assert_true(variability_op_ns(&v, 0, 0, op, 0, 1) >= 1);
    assert_int_equal(variability_op_ns(&v, 0, 0, 0, 0, 0), 0); // a zero-time op stays zero
}

/* ---- through the engine ------------------------------------------------------------------- */

static void test_same_seed_same_timeline_other_seed_other_makespan(void **state) {
    (void)state;
    Sim a, b, c;
    tiny_run(&a, SETS("batch.iterations=3", "variability.jitter=lognormal",
                     "variability.jitter_cv=0.1", "variability.seed=42"));
    tiny_run(&b, SETS("batch.iterations=3", "variability.jitter=lognormal",
                     "variability.jitter_cv=0.1", "variability.seed=42"));
    tiny_run(&c, SETS("batch.iterations=3", "variability.jitter=lognormal",
                     "variability.jitter_cv=0.1", "variability.seed=43"));
    assert_true(same_rows(&a.tl, &b.tl));
    assert_true(a.mt.makespan_ms == b.mt.makespan_ms);
    assert_true(makespan_ns(&a.tl) != makespan_ns(&c.tl));
    assert_true(makespan_ns(&a.tl) != 99 * MS); // and the jitter did something
    sim_free(&a), sim_free(&b), sim_free(&c);
}

static void test_zero_cv_is_no_jitter_row_for_row(void **state) {
    (void)state;
    Sim none, zn, zl;
    tiny_run(&none, SETS("batch.iterations=2"));
    tiny_run(&zn, SETS("batch.iterations=2", "variability.jitter=normal"));
    tiny_run(&zl, SETS("batch.iterations=2", "variability.jitter=lognormal",
                      "variability.jitter_cv=0", "variability.seed=9"));
    assert_true(same_rows(&none.tl, &zn.tl));
    assert_true(same_rows(&none.tl, &zl.tl));
    assert_int_equal(makespan_ns(&none.tl), 66 * MS);
    sim_free(&none), sim_free(&zn), sim_free(&zl);
}

/* Every compute row lasts exactly variability_op_ns of its own (run, device, op index),
 * whatever order the engine met it in: the k-th compute row of a device in a run is its op k. */
static void check_rows_keyed(const Sim *x) {
    int64_t next[4][3] = {{0}};
    for (size_t i = 0; i < x->tl.n; i++) {
        const TimelineOp *r = &x->tl.ops[i];
        if (r->stream != STREAM_COMPUTE) continue;
        int64_t run = r->micro_batch / x->s.batch.micro_batches;
        int64_t op = next[r->device][run]++;
        int64_t want = variability_op_ns(&x->var, run, r->device, op, r->start_ns,
                                         cost_op_ns(&x->c, r->device, (OpKind)r->kind));
        if (r->end_ns - r->start_ns != want)
            fail_msg("device %d run %lld op %lld: %lld ns, want %lld", r->device,
                     (long long)run, (long long)op, (long long)(r->end_ns - r->start_ns),
                     (long long)want);
    }
}

static void test_every_op_time_comes_from_its_counter(void **state) {
    (void)state;
    Sim x;
    tiny_run(&x, SETS("batch.iterations=3", "variability.jitter=normal",
                     "variability.jitter_cv=0.3", "variability.seed=5"));
    check_rows_keyed(&x);
    sim_free(&x);
}

/* The compute durations of each device in its op order (p = 4, 32 ops each). */
static void durations(const Timeline *tl, int64_t dur[4][32]) {
    int n[4] = {0};
    for (size_t i = 0; i < tl->n; i++) {
        const TimelineOp *r = &tl->ops[i];
        if (r->stream != STREAM_COMPUTE) continue;
        assert_in_range(n[r->device], 0, 31);
        dur[r->device][n[r->device]++] = r->end_ns - r->start_ns;
    }
    for (int d = 0; d < 4; d++) assert_int_equal(n[d], 32);
}

static void test_factors_do_not_follow_the_event_order(void **state) {
    (void)state; // slower transfers reorder the events; each op keeps its own factor
    Sim a, b;
    tiny_run(&a, SETS("batch.iterations=2", "variability.jitter=lognormal",
                     "variability.jitter_cv=0.2"));
    tiny_run(&b, SETS("batch.iterations=2", "variability.jitter=lognormal",
                     "variability.jitter_cv=0.2", "costs.comm_ms=0.37"));
    int64_t da[4][32], db[4][32];
    durations(&a.tl, da), durations(&b.tl, db);
    assert_memory_equal(da, db, sizeof da);
    int moved = 0;
    for (size_t i = 0; i < a.tl.n && i < b.tl.n; i++)
        moved += a.tl.ops[i].start_ns != b.tl.ops[i].start_ns;
    assert_true(moved > 0 && makespan_ns(&b.tl) > makespan_ns(&a.tl));
    sim_free(&a), sim_free(&b);
}

static void test_iteration_spread(void **state) {
    (void)state; // without jitter every iteration takes 33 ms; with it, min <= mean <= max
    Sim flat, jit;
    tiny_run(&flat, SETS("batch.iterations=4"));
    assert_true(flat.mt.iteration_min_ms == 33 && flat.mt.iteration_max_ms == 33);
    assert_true(flat.mt.iteration_std_ms == 0 && flat.mt.iteration_ms == 33);
    tiny_run(&jit, SETS("batch.iterations=4", "variability.jitter=lognormal",
                       "variability.jitter_cv=0.2"));
    int64_t end[4] = {0}; // the ends, independently of metrics.c
    for (size_t i = 0; i < jit.tl.n; i++) {
        const TimelineOp *r = &jit.tl.ops[i];
        if (r->stream == STREAM_COMPUTE && r->end_ns > end[r->micro_batch / 8])
            end[r->micro_batch / 8] = r->end_ns;
    }
    double t[3], mean = 0, sq = 0, lo = INFINITY, hi = 0;
    for (int k = 0; k < 3; k++) {
        t[k] = (double)(end[k + 1] - end[k]) / 1e6;
        mean += t[k] / 3, lo = fmin(lo, t[k]), hi = fmax(hi, t[k]);
    }
    for (int k = 0; k < 3; k++) sq += (t[k] - mean) * (t[k] - mean);
    assert_true(jit.mt.iteration_min_ms == lo && jit.mt.iteration_max_ms == hi);
    assert_true(fabs(jit.mt.iteration_ms - mean) < 1e-12 * mean);
    assert_true(fabs(jit.mt.iteration_std_ms - sqrt(sq / 3)) < 1e-9);
    assert_true(lo < hi && jit.mt.iteration_std_ms > 0);
    sim_free(&flat), sim_free(&jit);
}

/* ---- stragglers ---------------------------------------------------------------------------- */

static void test_straggler_doubles_its_ops_and_is_the_bottleneck(void **state) {
    (void)state;
    for (int32_t s = 0; s < 4; s++) {
        char dev[64];
        snprintf(dev, sizeof dev, "variability.straggler_device=%d", s);
        Sim x;
        tiny_run(&x, SETS("batch.iterations=2", dev, "variability.straggler_slowdown=2"));
        for (size_t i = 0; i < x.tl.n; i++) {
            const TimelineOp *r = &x.tl.ops[i];
            if (r->stream != STREAM_COMPUTE) continue;
            int64_t base = cost_op_ns(&x.c, r->device, (OpKind)r->kind);
            assert_int_equal(r->end_ns - r->start_ns, r->device == s ? 2 * base : base);
        }
        assert_int_equal(x.mt.bottleneck, s);
        assert_true(x.mt.dev[s].busy_ms == 2 * 48.0);
        assert_true(x.mt.dev[(s + 1) % 4].busy_ms == 48.0);
        sim_free(&x);
    }
}

static void test_straggler_window_counts_an_op_by_its_start(void **state) {
    (void)state; // window [10, 20) ms on device 1: ops starting inside take 3x, even past 20
    Sim x;
    tiny_run(&x, SETS("variability.straggler_device=1", "variability.straggler_slowdown=3",
                     "variability.straggler_start_ms=10", "variability.straggler_end_ms=20"));
    int slow = 0, straddle = 0;
    for (size_t i = 0; i < x.tl.n; i++) {
        const TimelineOp *r = &x.tl.ops[i];
        if (r->stream != STREAM_COMPUTE) continue;
        int64_t base = cost_op_ns(&x.c, r->device, (OpKind)r->kind);
        int in = r->device == 1 && r->start_ns >= 10 * MS && r->start_ns < 20 * MS;
        assert_int_equal(r->end_ns - r->start_ns, in ? 3 * base : base);
        slow += in;
        straddle += in && r->end_ns > 20 * MS;
        if (r->device == 1 && r->start_ns < 10 * MS && r->end_ns > 10 * MS) straddle++;
    }
    assert_true(slow > 0 && straddle > 0);
    sim_free(&x);
}

/* ---- failures ------------------------------------------------------------------------------ */

static void test_failure_closed_form(void **state) {
    (void)state; // 3 iterations of 33 ms; device 2 fails at 40 ms, in iteration 1 (33 .. 66)
    Sim base, x;
    tiny_run(&base, SETS("batch.iterations=3"));
    tiny_run(&x, SETS("batch.iterations=3", "variability.failure_device=2",
                     "variability.failure_at_ms=40", "variability.restart_ms=5"));
    assert_true(x.failure.happened);
    assert_int_equal(x.failure.iteration, 1);
    assert_int_equal(x.failure.checkpoint_ns, 33 * MS);
    assert_int_equal(x.failure.lost_ns, (40 - 33 + 5) * MS);
    assert_int_equal(makespan_ns(&x.tl), makespan_ns(&base.tl) + x.failure.lost_ns);
    assert_true(x.mt.lost_ms == 12 && x.mt.makespan_ms == 111 && x.mt.failed_iteration == 1);
    // the schedule's own figures leave the lost time out
    assert_true(x.mt.bubble_rate == base.mt.bubble_rate);
    assert_true(x.mt.iteration_ms == 33 && x.mt.iteration_max_ms == 33);
    for (int d = 0; d < 4; d++) {
        assert_true(x.mt.dev[d].busy_ms == base.mt.dev[d].busy_ms);
        assert_true(x.mt.dev[d].idle_ms == base.mt.dev[d].idle_ms);
    }
    assert_true(x.mt.throughput_tokens_per_s < base.mt.throughput_tokens_per_s);
    sim_free(&base), sim_free(&x);
}

static void test_failure_with_jitter_shifts_the_rest_exactly(void **state) {
    (void)state; // the re-run draws the same factors, so everything after moves by lost
    Sim base, x;
    tiny_run(&base, SETS("batch.iterations=3", "variability.jitter=lognormal",
                        "variability.jitter_cv=0.3", "variability.seed=77"));
    int64_t t1 = 0; // iteration 1 starts where iteration 0 ended
    for (size_t i = 0; i < base.tl.n; i++) {
        const TimelineOp *r = &base.tl.ops[i];
        if (r->micro_batch < 8 && r->end_ns > t1) t1 = r->end_ns;
    }
    char at[64];
    snprintf(at, sizeof at, "variability.failure_at_ms=%.6f", (double)(t1 + 3300000) / 1e6);
    tiny_run(&x, SETS("batch.iterations=3", "variability.jitter=lognormal",
                     "variability.jitter_cv=0.3", "variability.seed=77",
                     "variability.failure_device=0", at, "variability.restart_ms=7"));
    int64_t lost = 3300000 + 7 * MS;
    assert_int_equal(x.failure.checkpoint_ns, t1);
    assert_int_equal(x.failure.lost_ns, lost);
    assert_int_equal(makespan_ns(&x.tl), makespan_ns(&base.tl) + lost);
    assert_int_equal(x.tl.n, base.tl.n);
    for (size_t i = 0; i < x.tl.n; i++) {
        TimelineOp r = base.tl.ops[i];
        if (r.micro_batch >= 8) r.start_ns += lost, r.end_ns += lost;
        assert_memory_equal(&r, &x.tl.ops[i], sizeof r);
    }
    assert_true(fabs(x.mt.iteration_ms - base.mt.iteration_ms) < 1e-12);
    assert_true(fabs(x.mt.bubble_rate - base.mt.bubble_rate) < 1e-15);
    sim_free(&base), sim_free(&x);
}

static void test_failure_in_the_first_iteration_and_after_the_end(void **state) {
    (void)state;
    Sim first, late, base;
    tiny_run(&base, SETS("batch.iterations=2"));
    tiny_run(&first, SETS("batch.iterations=2", "variability.failure_device=3",
                         "variability.failure_at_ms=0.5", "variability.restart_ms=2"));
    assert_int_equal(first.failure.lost_ns, 2500000);
    assert_true(first.mt.makespan_ms == 68.5 && first.mt.lost_ms == 2.5);
    assert_true(first.mt.iteration_ms == 33 && first.mt.failed_iteration == 0);
    tiny_run(&late, SETS("batch.iterations=2", "variability.failure_device=3",
                        "variability.failure_at_ms=66", "variability.restart_ms=2"));
    assert_false(late.failure.happened); // the run ends at 66 ms: [start, end) misses it
    assert_true(same_rows(&late.tl, &base.tl) && late.mt.lost_ms == 0);
    assert_int_equal(late.mt.failed_iteration, -1);
    sim_free(&first), sim_free(&late), sim_free(&base);
}

static void test_async_failure_loses_everything_before_it(void **state) {
    (void)state; // pipedream, 3 iterations: (3m+p-1)(F+B) = 81 ms, no flush to restart from
    Sim x;
    tiny_run(&x, SETS("pipeline.schedule=pipedream", "batch.iterations=3",
                     "variability.failure_device=1", "variability.failure_at_ms=50",
                     "variability.restart_ms=4"));
    assert_int_equal(x.failure.checkpoint_ns, 0);
    assert_int_equal(x.failure.lost_ns, 54 * MS);
    assert_true(x.mt.makespan_ms == 81 + 54 && x.mt.iteration_ms == 24);
    sim_free(&x);
}

/* ---- the keys ------------------------------------------------------------------------------ */

static void test_defaults_are_off_and_format_reads_back(void **state) {
    (void)state;
    Scenario s, again;
    char err[SCN_ERR_MAX];
    assert_int_equal(scenario_parse(TINY, "tiny.scn", NULL, 0, &s, err), 0);
    assert_int_equal(s.var.jitter, JITTER_NONE);
    assert_true(s.var.straggler_device == -1 && s.var.failure_device == -1);
    scenario_free(&s);
    const char *const sets[] = {"variability.jitter=normal", "variability.jitter_cv=0.125",
                                "variability.seed=9007199254740992",
                                "variability.straggler_device=3",
                                "variability.straggler_slowdown=1.5",
                                "variability.straggler_start_ms=2.5",
                                "variability.straggler_end_ms=30",
                                "variability.failure_device=0", "variability.failure_at_ms=40",
                                "variability.restart_ms=1000"};
    assert_int_equal(scenario_parse(TINY, "tiny.scn", sets, 10, &s, err), 0);
    char *text = scenario_format(&s);
    assert_non_null(strstr(text, "[variability]\njitter = normal\njitter_cv = 0.125\n"
                                 "seed = 9007199254740992\nstraggler_device = 3\n"));
    assert_int_equal(scenario_parse(text, "again.scn", NULL, 0, &again, err), 0);
    char *text2 = scenario_format(&again);
    assert_string_equal(text, text2);
    assert_true(again.var.straggler_end_ms == 30 && again.var.restart_ms == 1000);
    free(text), free(text2);
    scenario_free(&s), scenario_free(&again);
    assert_int_equal(scenario_parse(TINY, "tiny.scn", NULL, 0, &s, err), 0);
    text = scenario_format(&s); // defaults: devices and times as comments, still readable
    assert_non_null(strstr(text, "; straggler_device = (not given)\n"));
    assert_int_equal(scenario_parse(text, "again.scn", NULL, 0, &again, err), 0);
    free(text);
    scenario_free(&s), scenario_free(&again);
}

static void expect_error(const char *extra, const char *want) {
    char text[2048], err[SCN_ERR_MAX];
    snprintf(text, sizeof text, "%s[variability]\n%s", TINY, extra);
    Scenario s;
    assert_int_equal(scenario_parse(text, "v.scn", NULL, 0, &s, err), 2);
    if (!strstr(err, want)) fail_msg("error '%s' lacks '%s'", err, want);
    scenario_free(&s);
}

static void test_bad_keys_name_file_and_line(void **state) {
    (void)state; // TINY has 17 lines, [variability] is line 18
    expect_error("jitter = gauss\n", "v.scn:19: unknown jitter 'gauss'; use none, normal");
    expect_error("jitter = normal\njitter_cv = 0.5\n", "v.scn:20: jitter_cv = 0.5 is too wide");
    expect_error("jitter_cv = 0.1\n", "v.scn:19: jitter_cv = 0.1 but jitter = none");
    expect_error("jitter_cv = -0.1\n", "v.scn:19: 'jitter_cv = -0.1' is out of range");
    expect_error("seed = x\n", "v.scn:19: 'seed = x' is not a whole number");
    expect_error("straggler_device = 4\n", "v.scn:19: straggler_device = 4 but the pipeline "
                                           "has devices 0 .. 3");
    expect_error("straggler_device = -1\n", "v.scn:19: 'straggler_device = -1' is not a device");
    expect_error("straggler_slowdown = 2\n", "v.scn:19: straggler_slowdown needs straggler_device");
    expect_error("straggler_device = 1\nstraggler_slowdown = 0.5\n",
                 "v.scn:20: 'straggler_slowdown = 0.5' is out of range");
    expect_error("straggler_device = 1\nstraggler_start_ms = 5\nstraggler_end_ms = 4\n",
                 "v.scn:21: straggler_end_ms = 4 is not after straggler_start_ms = 5");
    expect_error("failure_device = 1\n", "v.scn:19: failure_device needs failure_at_ms");
    expect_error("failure_at_ms = 5\n", "v.scn:19: failure_at_ms needs failure_device");
    expect_error("restart_ms = 5\n", "v.scn:19: restart_ms needs failure_device");
    expect_error("straggler = 1\n", "v.scn:19: unknown key 'straggler' in [variability]");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_is_a_function_of_every_counter),
        cmocka_unit_test(test_off_and_zero_cv_give_factor_one),
        cmocka_unit_test(test_normal_jitter_mean_and_cv),
        cmocka_unit_test(test_lognormal_jitter_mean_and_cv),
        cmocka_unit_test(test_tiny_ops_stay_positive),
        cmocka_unit_test(test_same_seed_same_timeline_other_seed_other_makespan),
        cmocka_unit_test(test_zero_cv_is_no_jitter_row_for_row),
        cmocka_unit_test(test_every_op_time_comes_from_its_counter),
        cmocka_unit_test(test_factors_do_not_follow_the_event_order),
        cmocka_unit_test(test_iteration_spread),
        cmocka_unit_test(test_straggler_doubles_its_ops_and_is_the_bottleneck),
        cmocka_unit_test(test_straggler_window_counts_an_op_by_its_start),
        cmocka_unit_test(test_failure_closed_form),
        cmocka_unit_test(test_failure_with_jitter_shifts_the_rest_exactly),
        cmocka_unit_test(test_failure_in_the_first_iteration_and_after_the_end),
        cmocka_unit_test(test_async_failure_loses_everything_before_it),
        cmocka_unit_test(test_defaults_are_off_and_format_reads_back),
        cmocka_unit_test(test_bad_keys_name_file_and_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
