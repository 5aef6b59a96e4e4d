/* sim/engine.h: the discrete-event engine. It plays a checked Program with the costs of a
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

#include "cost.h"
#include "program.h"
#include "timeline.h"
#include "variability.h"

/* Event order (total, so runs are bit-for-bit repeatable): by time, then transfer arrivals
 * before op ends, then insertion sequence. The queue is a binary heap holding at most one op
 * end per device plus the transfers in flight: O(log(p + transfers in flight)) per event, and
 * O(1) other work per op, so a run is linear in the number of ops up to that log factor. */

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
