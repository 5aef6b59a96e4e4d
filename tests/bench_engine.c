/* tests/bench_engine.c: `make bench`. Simulated compute ops per second of the event engine
 * (engine only, and schedule build + check + run with timeline recording), bytes per stored
 * op, and how time per op grows with p*m*v. The engine is timed twice per repetition: into a
 * fresh timeline (as psim runs it: the kernel maps and zeroes every new page on first touch)
 * and again into that timeline's memory, touched already ("warm": the engine's own cost).
 * Then the cost model's build on gpt13b, roofline against the flat model. Figures only; no
 * pass/fail. With arguments
 * (SCHEDULE P V M [REPS]) it runs that one case REPS times (default 1), for profilers:
 * valgrind --tool=callgrind build/bench_engine interleaved 64 4 1024. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim/model/cost.h"
#include "sim/engine/engine.h"
#include "sim/plan/plan.h"
#include "sim/scenario/scenario.h"
#include "sim/sched/schedule.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct {
    double build_s, check_s, run_s, warm_s; // fastest repetition of each part (shared machine)
    int64_t ops, rows;
    size_t bytes;                   // program + timeline memory
} Result;

static double min_of(double a, double b) { return a < b ? a : b; }

/* GPT-like costs: F, B, W of about 12 ms per layer block split over v chunks, transfers of a
 * 20 MiB activation inside (57 us) and across (439 us) nodes of 8. */
static CostModel bench_costs(int32_t stages, int32_t v) {
    CostModel c = {.stages = stages, .xfer_bytes = 20971520, .xfer_intra_ns = 56604,
                   .xfer_inter_ns = 439430, .gpus_per_node = 8};
    c.op_ns = calloc((size_t)stages * OP_KIND_COUNT, sizeof *c.op_ns);
    c.op_flops = calloc((size_t)stages * OP_KIND_COUNT, sizeof *c.op_flops);
    if (!c.op_ns || !c.op_flops) exit(1);
    for (int32_t s = 0; s < stages; s++) {
        int64_t *ns = &c.op_ns[s * OP_KIND_COUNT];
        ns[OP_F] = 12633000 / v + s % 3, ns[OP_B] = 13424000 / v, ns[OP_W] = 11843000 / v;
        ns[OP_BW] = ns[OP_B] + ns[OP_W];
    }
    return c;
}

/* Runs the case at least once and then until about a second has passed (at most max_reps). */
static Result bench(const char *name, int32_t p, int32_t v, int32_t m, int max_reps) {
    const Schedule *sc = sched_find(name);
    SchedParams sp = {.devices = p, .chunks = v, .micro_batches = m, .iterations = 1};
    SchedIssue issue;
    if (!sc || (sc->validate && sc->validate(&sp, &issue) != 0)) {
        fprintf(stderr, "bench_engine: %s p=%d v=%d m=%d is not a valid case\n", name, p, v, m);
        exit(2);
    }
    CostModel c = bench_costs(p * v, v);
    Result r = {.build_s = 1e30, .check_s = 1e30, .run_s = 1e30, .warm_s = 1e30};
    double t0 = now_s();
    for (int reps = 0; reps == 0 || (now_s() - t0 < 1.0 && reps < max_reps); reps++) {
        Program pr;
        Timeline tl = {0};
        char why[512];
        double a = now_s();
        if (sc->build(&sp, &pr, &issue) != 0) exit(1);
        double b = now_s();
        if (program_check(&pr, why, sizeof why) != 0) exit(1);
        double cc = now_s();
        if (engine_run(&pr, &c, 1, &tl, why, sizeof why) != 0) exit(1);
        double d = now_s();
        size_t rows = tl.n;
        tl.n = 0; // the same rows again, into memory touched already
        if (engine_run(&pr, &c, 1, &tl, why, sizeof why) != 0 || tl.n != rows) exit(1);
        double w = now_s();
        r.build_s = min_of(r.build_s, b - a), r.check_s = min_of(r.check_s, cc - b);
        r.run_s = min_of(r.run_s, d - cc), r.warm_s = min_of(r.warm_s, w - d);
        r.ops = pr.nops, r.rows = (int64_t)tl.n;
        r.bytes = (size_t)pr.nops * sizeof *pr.ops + tl.n * sizeof *tl.ops;
        program_free(&pr);
        timeline_free(&tl);
    }
    cost_free(&c);
    return r;
}

static void header(void) {
    printf("# %-10s %4s %2s %5s %8s %8s %8s %8s %8s %8s %8s %8s %7s %7s %6s\n", "schedule", "p",
           "v", "m", "ops", "rows", "run_ms", "warm_ms", "total_ms", "Mop/s", "Mop/s_w",
           "Mop/s_t", "ns/op", "ns/op_w", "B/op");
}

static void row(const char *name, int32_t p, int32_t v, int32_t m, int max_reps) {
    Result r = bench(name, p, v, m, max_reps);
    double total = r.build_s + r.check_s + r.run_s;
    double ops = (double)r.ops;
    printf("%-12s %4d %2d %5d %8lld %8lld %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f %7.1f %7.1f %6.1f\n",
           name, p, v, m, (long long)r.ops, (long long)r.rows, r.run_s * 1e3, r.warm_s * 1e3,
           total * 1e3, ops / r.run_s / 1e6, ops / r.warm_s / 1e6, ops / total / 1e6,
           r.run_s * 1e9 / ops, r.warm_s * 1e9 / ops, (double)r.bytes / ops);
}

/* The cost model's build for gpt13b on p = 8 (interleaved, 5 chunks, partition = balanced:
 * the partitioner's stage times and every (stage, kind) priced once), fastest of reps, in us;
 * -1 when the scenario cannot be built. */
static double cost_build_us(const char *model, int reps) {
    const char *sets[] = {model, "pipeline.schedule=interleaved", "pipeline.chunks=5",
                          "pipeline.partition=balanced"};
    char err[SCN_ERR_MAX];
    Scenario s;
    Program pr;
    SchedParams sp;
    if (scenario_load("scenarios/gpt13b.scn", sets, 4, &s, err) != 0) return -1;
    sp = scenario_sched_params(&s);
    if (sched_find(s.pipeline.schedule)->build(&sp, &pr, NULL) != 0) return scenario_free(&s), -1;
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        CostPartition cp;
        Plan pl;
        CostModel c;
        double t0 = now_s();
        int bad = plan_build_program(&s, &pr, cost_partition_init(&cp, &s), &pl, err, sizeof err) ||
                  cost_build(&s, &pl, &c, err, sizeof err);
        double t = now_s() - t0;
        if (bad) return program_free(&pr), scenario_free(&s), -1;
        best = min_of(best, t);
        cost_free(&c), plan_free(&pl);
    }
    program_free(&pr), scenario_free(&s);
    return best * 1e6;
}

/* The searched schedule's build (its whole search) at F, B, W = 5, 6, 4 ns, no transfer time,
 * M_W = M_B / 2: fastest of up to 50 in about 1 s, in ms; and the longest device span found. */
static double search_ms(const char *name, int32_t p, int32_t m, double limit, int64_t *span) {
    int64_t ns[256 * OP_KIND_COUNT], xfer[256] = {0};
    double act[256], wp[256];
    for (int32_t s = 0; s < p; s++) {
        int64_t *n = &ns[s * OP_KIND_COUNT];
        n[OP_F] = 5, n[OP_B] = 6, n[OP_W] = 4, n[OP_BW] = 10, act[s] = 1, wp[s] = 0.5;
    }
    SchedCost sc = {.stages = p, .op_ns = ns, .xfer_ns = xfer, .act = act, .w_pending = wp};
    SchedParams sp = {.devices = p, .chunks = 1, .micro_batches = m, .iterations = 1, .cost = &sc,
                      .activation_limit = limit};
    double best = 1e30, spent = 0;
    *span = -1;
    for (int r = 0; r < 50 && spent < 1.0; r++) {
        Program pr;
        SchedIssue issue;
        double t0 = now_s();
        if (sched_find(name)->build(&sp, &pr, &issue) != 0) return -1;
        double t = now_s() - t0;
        spent += t, best = min_of(best, t);
        if (*span < 0) {
            CostModel c = bench_costs(p, 1);
            for (int32_t s = 0; s < p; s++) memcpy(&c.op_ns[s * OP_KIND_COUNT], &ns[s * OP_KIND_COUNT], sizeof ns[0] * OP_KIND_COUNT);
            c.xfer_intra_ns = c.xfer_inter_ns = 0;
            Timeline tl = {0};
            char why[256];
            if (engine_run(&pr, &c, 1, &tl, why, sizeof why) == 0)
                *span = timeline_longest_span(&tl, p, NULL);
            timeline_free(&tl), cost_free(&c);
        }
        program_free(&pr);
    }
    return best * 1e3;
}

int main(int argc, char **argv) {
    if (argc >= 5) { // one case, for profilers
        header();
        row(argv[1], atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), argc > 5 ? atoi(argv[5]) : 1);
        return 0;
    }
    printf("# psim engine benchmark, one core, fastest of up to 50 repetitions in about 1 s.\n"
           "# ops = compute ops; rows = timeline rows incl. send/recv; run_ms = engine_run\n"
           "# into a fresh timeline (first touch of its pages included, as in psim); warm_ms =\n"
           "# the same into memory touched already; total_ms = schedule build + program_check\n"
           "# + run_ms; Mop/s = million compute ops per second of run (_w warm, _t total);\n"
           "# ns/op = run ns per compute op (_w warm); B/op = program + timeline bytes per op\n");
    header();
    row("1f1b", 8, 1, 64, 50);
    row("gpipe", 8, 1, 64, 50);
    row("interleaved", 8, 4, 64, 50);
    row("1f1b", 64, 1, 1024, 50);
    row("interleaved", 64, 4, 1024, 50);
    row("zb-h1", 32, 1, 256, 50);
    row("zb-h2", 32, 1, 256, 50);
    row("zb-v", 32, 2, 256, 50);
    printf("\n# growth: interleaved, v = 4, p*m*v doubling from 1k to 512k ops: ns/op_w should\n"
           "# stay flat (linear time; ns/op also pays first touch of the timeline's pages)\n");
    header();
    for (int32_t k = 0; k < 10; k++) {
        int32_t p = 4 << (k / 2), m = (k % 2 ? 64 : 32) << (k / 2);
        row("interleaved", p, 4, m, 50);
    }
    printf("\n# searched schedules: the whole search at F, B, W = 5, 6, 4, no transfer time, M_W = "
           "M_B / 2 (fastest of up to 50),\n# one core; span = longest device span found, "
           "ideal = m(F+B+W); the zero-bubble repository's ZB-2p: 126, 484, 970 at\n# the first "
           "three sizes; its Python heuristic (8 settings) took 120 ms at (16, 64) on this VM\n");
    printf("# %-8s %4s %5s %9s %8s %8s\n", "schedule", "p", "m", "ms", "span", "ideal");
    static const int32_t SIZES[4][2] = {{4, 8}, {8, 32}, {16, 64}, {32, 128}};
    for (int k = 0; k < 4; k++)
        for (int q = 0; q < 2; q++) {
            const char *name = q ? "zb-2p" : "zb-1p";
            int64_t span;
            double ms = search_ms(name, SIZES[k][0], SIZES[k][1], 0, &span);
            printf("%-10s %4d %5d %9.2f %8lld %8d\n", name, SIZES[k][0], SIZES[k][1], ms,
                   (long long)span, SIZES[k][1] * 15);
        }
    printf("\n# zb-exact under zb-1p's and zb-2p's limits (p and 2p activations), the same costs: "
           "the proved optimum\n# and its search time beside the heuristic's span; -1: not "
           "proved within the node limit\n");
    printf("# %-8s %4s %5s %6s %9s %8s %8s\n", "schedule", "p", "m", "limit", "ms", "span", "heur");
    static const int32_t SMALL[4][2] = {{2, 4}, {3, 6}, {4, 4}, {4, 8}};
    for (int k = 0; k < 4; k++)
        for (int q = 1; q <= 2; q++) {
            int64_t span, heur;
            int32_t p = SMALL[k][0], m = SMALL[k][1];
            search_ms(q == 1 ? "zb-1p" : "zb-2p", p, m, 0, &heur);
            double ms = search_ms("zb-exact", p, m, q * (double)p, &span);
            printf("%-10s %4d %5d %5dp %9.2f %8lld %8lld\n", "zb-exact", p, m, q, ms,
                   (long long)(ms < 0 ? -1 : span), (long long)heur);
        }
    double roof = cost_build_us("hardware.cost_model=roofline", 200);
    double flat = cost_build_us("hardware.efficiency=0.55", 200);
    printf("\n# cost model build, gpt13b p = 8 interleaved v = 5, balanced partition (fastest of "
           "200): roofline %.1f us, flat %.1f us (%.2fx)\n", roof, flat, flat > 0 ? roof / flat : 0);
    return 0;
}
