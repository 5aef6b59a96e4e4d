/* sim/engine/engine.h: the discrete-event engine. It plays a checked Program with the costs of a
 * CostModel and records the predicted Timeline. Devices run their ops strictly in order; an op
 * starts at max(device free, arrival of its input); a cross-device input travels over the
 * directed link between the two devices, which carries one transfer at a time in FIFO order
 * (a transfer holds the link for its whole latency + bytes/bandwidth). Compute and transfers
 * overlap. Iterations are separated by a flush: iteration k+1 starts when everything of
 * iteration k has ended. With a data-parallel tail (CostModel.tail) each iteration ends with
 * every chunk's gradient all-reduce (collective lane, from the end of the chunk's last
 * backward, one at a time per device) and the device's optimizer step (optimizer lane, after
 * its compute and all-reduces); the next iteration starts when all of them have ended.
 * Metrics are computed elsewhere (metrics.h). */
#ifndef PIPESIM_ENGINE_H
#define PIPESIM_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "sim/model/cost.h"
#include "sim/program/program.h"
#include "sim/program/timeline.h"
#include "sim/engine/variability.h"

/* Event order (total, so runs are bit-for-bit repeatable): by time, then transfer arrivals
 * before op ends, then insertion sequence. Two queues hold the events: op ends, at most one
 * per device, in a winner tree over the devices (O(log p) to replace a device's end), and the
 * transfers in flight in a binary heap (O(log transfers in flight) a push or pop); each step
 * takes the earlier of the two heads. An arrival's only effect is to mark the input ready,
 * which nothing reads before its device's next start; when that device is busy until the
 * arrival or later, the mark is made at once and no event is queued (same result: the
 * device's op end comes after the arrival in the order above). Inputs and outputs of each
 * (device, chunk, kind) come from a table built once per run, so other work is O(1) per op,
 * and a run is linear in the number of ops up to those log factors; memory is the Timeline's
 * rows (reserved once) plus O(p*v + stages*m) of tables. */

/* engine_run appends to tl (zeroed or holding earlier rows) one compute row per op and a
 * send and a recv row per cross-device transfer (with a tail, also per iteration one
 * collective row per (device, chunk) and one optimizer row per device), for `iterations` iterations (iteration k's
 * micro-batch j is recorded as k*m + j). A Program that covers several iterations itself
 * (pr->iterations > 1, the asynchronous schedules) is played iterations / pr->iterations
 * times, so with no flush inside it. Returns 0; -1 when out of memory; -2 when the run
 * stalls (some device waits for an input that never comes), with why naming the waiting ops
 * and what each waits for. The Program should have passed program_check. */
int engine_run(const Program *pr, const CostModel *c, int32_t iterations, Timeline *tl,
               char *why, size_t whylen);

/* engine_run_varied is engine_run with variability.h's jitter, straggler and failure (var
 * NULL, or all of them off: exactly engine_run). Every compute op's time is
 * variability_op_ns of the cost model's, keyed by (Program run, device, op index in the
 * device's program); a fused pair draws once, under its first op's index. When the failure
 * falls inside a run of the Program (an iteration, with a flush), that run's rows are
 * dropped, the links are emptied and the run is played again from failure_at + restart;
 * *failure (when not NULL) says what happened. */
int engine_run_varied(const Program *pr, const CostModel *c, const Variability *var,
                      int32_t iterations, Timeline *tl, VaryFailure *failure, char *why,
                      size_t whylen);

#endif
