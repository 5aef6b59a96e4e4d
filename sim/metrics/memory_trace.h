/* sim/metrics/memory_trace.h: memory per device over a run, the static part of the memory
 * model (sim/model/memory.h) plus the activations of every (micro-batch, chunk) in flight,
 * replayed from a Timeline, so the same code reads psim's predicted timeline or pexec's
 * measured one. */
#ifndef PIPESIM_MEMORY_TRACE_H
#define PIPESIM_MEMORY_TRACE_H

#include "sim/model/memory.h"
#include "sim/plan/plan.h"
#include "sim/program/program.h"
#include "sim/program/timeline.h"
#include "sim/scenario/scenario.h"

/* memory_compute fills out[devices] and, when trace is not NULL, appends to it the memory of
 * every device over the run: one sample at t = 0 with the static part, then one each time the
 * held bytes change. Stage 0 also holds the embedding (V + s)h and its dropout mask sbh; the
 * last stage of each model copy the (tied) output embedding Vh and final layer norm 2h, and
 * 4sbh(1 + V/h) bytes of head activations. An activation is taken when its F starts and given
 * back when its BW ends; with a split backward, B gives back all but the W-pending part
 * (memory_layer_w_pending_bytes; the embedding's and head's parts stay whole) and W the rest.
 * At equal times give-backs are applied before takes. peak_activations counts
 * (micro-batch, chunk) activations from F to W or BW. Rows may come in any order; O(n) in the
 * timeline rows when each device's compute rows come in start order without overlaps (the
 * engine's, the store's), O(n log n) at worst. Rows of devices outside 0..devices-1 are left out.
 * Returns 0, or -1 out of memory. */
int memory_compute(const Scenario *s, const Plan *pl, const Program *pr, const Timeline *tl,
                   DeviceMemory *out, MemTrace *trace);

#endif
