/* sim/engine/variability.h: what makes a simulated run differ from the cost model's averages:
 * seeded jitter on compute op times, one straggler device, one device failure with restart.
 * Transfers are not jittered; the engine (engine.h) asks op_ns for every compute op's time
 * and plays the failure at the iteration level.
 *
 * Jitter: op time = base x factor, rounded to integer ns (at least 1 ns when base > 0). The
 *   factor has mean 1 and coefficient of variation cv:
 *     normal    factor = 1 + cv z, z standard normal clamped to [-3, 3] (cv <= 0.3, so the
 *               factor stays >= 0.1; the clamp is symmetric, so the mean stays 1 and the
 *               standard deviation is cv sqrt(E[clamp(z)^2]) = 0.99750 cv);
 *     lognormal factor = exp(mu + sigma z), sigma^2 = ln(1 + cv^2), mu = -sigma^2 / 2.
 *   z comes from Box-Muller on two uniforms hashed from (seed, run, device, op): a
 *   counter-based generator, so an op's factor does not depend on the order events are
 *   processed in, the same seed gives the same run bit for bit and a re-run iteration draws
 *   the same factors again.
 * Straggler: an op of the straggler device that STARTS in [start, end) takes slowdown x its
 *   (jittered) time, all of it, even past end; an op that starts before start runs at full
 *   speed, even into the window.
 * Failure: a synchronous pipeline stops when any device fails. At failure_at the attempt in
 *   progress (everything since the last flush, i.e. that iteration's start: the checkpoint)
 *   is lost, the job pays restart and runs that iteration again, starting at
 *   failure_at + restart. lost = (failure_at - checkpoint) + restart; with no straggler
 *   window (fixed in time, the shifted re-run may meet it differently) the makespan is the
 *   failure-free one + lost, jitter or not. The lost attempt's rows are dropped from the
 *   Timeline, which keeps a gap [checkpoint, checkpoint + lost). Async schedules (no flush
 *   inside the Program) have their only checkpoint at the start of the run, so a failure
 *   loses everything before it. A failure time after the run's end does nothing
 *   (happened = 0). */
#ifndef PIPESIM_VARIABILITY_H
#define PIPESIM_VARIABILITY_H

#include <stdint.h>

#include "sim/scenario/scenario.h"

typedef struct {
    Jitter jitter;
    double cv;              // coefficient of variation of the factor
    double mu, sigma;       // lognormal: ln(factor) ~ normal(mu, sigma^2)
    uint64_t seed;
    int ops_vary;           // jitter or a straggler: op times differ from the cost model's
    int32_t straggler;      // device, -1: none
    double slowdown;        // factor >= 1
    int64_t slow_from_ns;   // window [from, until), ns since the run's epoch
    int64_t slow_until_ns;  //   INT64_MAX: the end of the run
    int32_t failure_device; // -1: none
    int64_t failure_at_ns;  // ns since the run's epoch
    int64_t restart_ns;     // ns to restart from the checkpoint
} Variability;

/* The failure as the engine played it (all zero when none happened). */
typedef struct {
    int happened;
    int32_t device;         // the device that failed
    int32_t iteration;      // the iteration lost and run again (async: the run's first)
    int64_t checkpoint_ns;  // start of the lost attempt, ns since the run's epoch
    int64_t at_ns;          // when the device failed, ns since the run's epoch
    int64_t restart_ns;     // ns paid to restart
    int64_t lost_ns;        // (at - checkpoint) + restart: the re-run starts at checkpoint + lost
} VaryFailure;

/* variability_init converts the scenario's [variability] (ms) into v (ns). */
void variability_init(Variability *v, const ScnVariability *s);

/* The hash behind every random number: splitmix64 chained over (seed, run, device, op,
 * draw); uniform over 64 bits, a pure function of its arguments. */
uint64_t variability_hash(uint64_t seed, int64_t run, int64_t device, int64_t op, int64_t draw);

/* The jitter factor of op `op` (index in device's program) in Program run `run`: 1 exactly
 * when jitter is none or cv is 0. */
double variability_factor(const Variability *v, int64_t run, int32_t device, int64_t op);

/* The time of that op when it starts at start_ns and the cost model gives base_ns: base
 * times its jitter factor, times slowdown when device is the straggler and start_ns falls in
 * the window; integer ns, >= 1 when base_ns > 0. base_ns itself when !v->ops_vary. */
int64_t variability_op_ns(const Variability *v, int64_t run, int32_t device, int64_t op,
                          int64_t start_ns, int64_t base_ns);

#endif
