/* tests/bench_engine.c: `make bench`. Simulated compute ops per second of the event engine
 * (schedule build + check + run, timeline recording included), bytes per stored op, and how
 * wall time grows with p*m*v. Figures only; no pass/fail. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cost.h"
#include "engine.h"
#include "schedule.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct {
    double build_s, check_s, run_s; // per repetition
    int64_t ops, rows;
    size_t bytes;                   // program + timeline memory
} Result;

static Result bench(const char *name, int32_t p, int32_t v, int32_t m) {
    int32_t stages = p * v;
    CostModel c = {.stages = stages, .xfer_bytes = 20971520, .xfer_intra_ns = 56604,
                   .xfer_inter_ns = 439430, .gpus_per_node = 8};
    c.op_ns = calloc((size_t)stages * OP_KIND_COUNT, sizeof *c.op_ns);
    c.op_flops = calloc((size_t)stages * OP_KIND_COUNT, sizeof *c.op_flops);
    for (int32_t s = 0; s < stages; s++) {
        int64_t *ns = &c.op_ns[s * OP_KIND_COUNT];
        ns[OP_F] = 12633000 / v + s % 3, ns[OP_B] = 13424000 / v, ns[OP_W] = 11843000 / v;
        ns[OP_BW] = ns[OP_B] + ns[OP_W];
    }
    const Schedule *sc = sched_find(name);
    SchedParams sp = {.devices = p, .chunks = v, .micro_batches = m, .iterations = 1};
    Result r = {0};
    int reps = 0;
    double t0 = now_s();
    while (reps == 0 || (now_s() - t0 < 1.0 && reps < 50)) {
        Program pr;
        Timeline tl = {0};
        char why[512];
        double a = now_s();
        if (sc->build(&sp, &pr, NULL) != 0) exit(1);
        double b = now_s();
        if (program_check(&pr, why, sizeof why) != 0) exit(1);
        double cc = now_s();
        if (engine_run(&pr, &c, 1, &tl, why, sizeof why) != 0) exit(1);
        double d = now_s();
        r.build_s += b - a, r.check_s += cc - b, r.run_s += d - cc;
        r.ops = pr.nops, r.rows = (int64_t)tl.n;
        r.bytes = (size_t)pr.nops * sizeof *pr.ops + tl.n * sizeof *tl.ops;
        program_free(&pr);
        timeline_free(&tl);
        reps++;
    }
    r.build_s /= reps, r.check_s /= reps, r.run_s /= reps;
    cost_free(&c);
    return r;
}

static void row(const char *name, int32_t p, int32_t v, int32_t m) {
    Result r = bench(name, p, v, m);
    double total = r.build_s + r.check_s + r.run_s;
    printf("%-12s %5d %3d %6d %10lld %10lld %9.2f %9.2f %12.2f %12.2f %9.1f\n", name, p, v, m,
           (long long)r.ops, (long long)r.rows, r.run_s * 1e3, total * 1e3,
           (double)r.ops / r.run_s / 1e6, (double)r.ops / total / 1e6,
           (double)r.bytes / (double)r.ops);
}

int main(void) {
    printf("# psim engine benchmark (one core). ops = compute ops; rows = timeline rows incl.\n"
           "# send/recv; run = engine only; total = build + check + run; B/op = program +\n"
           "# timeline bytes per compute op\n");
    printf("# %-10s %5s %3s %6s %10s %10s %9s %9s %12s %12s %9s\n", "schedule", "p", "v", "m",
           "ops", "rows", "run_ms", "total_ms", "Mops/s_run", "Mops/s_total", "B/op");
    row("1f1b", 8, 1, 64);
    row("gpipe", 8, 1, 64);
    row("interleaved", 8, 4, 64);
    row("1f1b", 64, 1, 1024);
    row("interleaved", 64, 4, 1024);
    printf("\n# growth: interleaved, v = 4, p*m*v doubling (time per op should stay flat)\n");
    printf("# %-10s %5s %3s %6s %10s %10s %9s %9s %12s %12s %9s\n", "schedule", "p", "v", "m",
           "ops", "rows", "run_ms", "total_ms", "Mops/s_run", "Mops/s_total", "B/op");
    for (int32_t k = 0; k < 7; k++) {
        int32_t p = 8 << (k / 2), m = (k % 2 ? 128 : 64) << (k / 2);
        row("interleaved", p, 4, m);
    }
    return 0;
}
