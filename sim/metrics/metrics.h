/* sim/metrics/metrics.h: the numbers DESIGN.md promises, computed from a Timeline (predicted or
 * measured) and the scenario. Definitions:
 *   makespan   = last end - first start over every device and lane;
 *   iteration time = the spacing of iteration ends (an iteration ends with its last compute
 *                op); with a flush this is makespan / iterations, without one (async) it
 *                leaves out the start-up ramp, which is paid once;
 *   cost       = the longest device span (its last compute end - its first compute start);
 *   bubble_rate  = 1 - mean busy / cost (GPipe; Qi et al. 2023);
 *   bubble_ideal = (cost - mean busy) / mean busy (Narayanan et al. 2021);
 *   idle_ms of a device = makespan - its busy time;
 *   TFLOP/s per GPU = model FLOPs (no recompute, all d replicas) / makespan / (p d t);
 *   MFU = that / peak; tokens/s count every replica;
 *   exposed all-reduce of an iteration = its end - max over devices of (compute end +
 *                optimizer step): the part of the all-reduces the cool-down did not hide;
 *   iteration_min/max/std_ms = over the iteration times iteration_ms averages (the spacings
 *                of consecutive iteration ends; the makespan with 1 iteration); std is the
 *                population standard deviation.
 * With a failure (variability.h) the timeline has a gap [checkpoint, checkpoint + lost):
 * makespan, throughput, TFLOP/s and MFU include it (wall-clock truth), lost_ms reports it,
 * and everything that describes the schedule leaves it out: spans (so cost and the bubble),
 * idle_ms = makespan - lost - busy, and the iteration times. */
#ifndef PIPESIM_METRICS_H
#define PIPESIM_METRICS_H

#include <stdint.h>

#include "sim/model/cost.h"
#include "sim/metrics/memory_trace.h"
#include "sim/program/program.h"
#include "sim/scenario/scenario.h"
#include "sim/program/timeline.h"
#include "sim/engine/variability.h"

typedef struct {
    double busy_ms;          // compute time
    double idle_ms;          // makespan - busy
    double span_ms;          // last compute end - first compute start on this device
    int32_t peak_activations;
    double peak_memory_gib;  // weights + grads + optimizer + peak activations
    double weights_gib, grads_gib, optimizer_gib, activations_gib; // ZeRO's shards with zero
    double gather_gib;       // zero = 3: the gathered unit's weights peak_memory_gib counts
    int32_t layers;          // transformer layers held (all chunks)
    int32_t weight_versions; // weight copies kept at once (async schedules stash them)
    int32_t staleness;       // weight updates between a micro-batch's forward and the update
                             //   its gradient is applied to: weight_versions - 1
} DeviceMetrics;

typedef struct {
    double makespan_ms;
    double iteration_ms;             // steady state: (end of the last iteration - end of the
                                     //   first) / (iterations - 1); makespan with 1 iteration
    double iteration_min_ms;         // shortest, longest iteration time among those
    double iteration_max_ms;         //   iteration_ms averages
    double iteration_std_ms;         // their population standard deviation, ms
    double lost_ms;                  // to the failure: (failure - checkpoint) + restart, 0 none
    int32_t failed_iteration;        // the iteration lost and run again, -1 none
    double bubble_rate;
    double bubble_ideal;
    double throughput_tokens_per_s;
    double tflops_per_gpu;
    double mfu;
    double model_flops;              // per iteration, all devices of all d replicas
    double hardware_flops;           // the same with the recomputation's FLOPs (what the
                                     //   GPUs execute; Narayanan et al. 2021, eq. 3)
    double hardware_tflops_per_gpu;  // hardware_flops / makespan / (p d t), TFLOP/s: the
                                     //   "achieved TFLOP/s per GPU" of Megatron-LM's tables
    double peak_tflops;              // per device, as used for MFU (the mean over mixed
                                     //   devices; a 1/devices_per_gpu share of a GPU)
    int64_t ops;                     // compute ops simulated
    int64_t transfers;               // cross-device transfers
    int32_t bottleneck;              // device with the most busy time
    int32_t devices;                 // p, pipeline devices simulated (one replica, one
                                     //   tensor rank: the others run the same timeline)
    int64_t devices_total;           // p x d x t, every GPU of the run
    int64_t global_batch;            // samples per iteration over all replicas, d x m x b
    double allreduce_ms;             // per iteration (mean): the longest device's gradient
                                     //   all-reduce time on its collective lane
    double allreduce_exposed_ms;     // per iteration (mean): how much later the iteration
                                     //   ends than it would with free all-reduces
    double optimizer_ms;             // per iteration (mean): the longest optimizer step
    double reduce_scatter_ms;        // per iteration (mean), zero >= 1: the longest device's
                                     //   gradient reduce-scatters (zero 1, 2: its tail rows;
                                     //   3: those inside its compute ops); allreduce_ms is
                                     //   then 0 and allreduce_exposed_ms the exposed part of
                                     //   the tail's reduce-scatters and all-gathers
    double all_gather_ms;            // per iteration (mean), zero >= 1: the same for the
                                     //   parameter all-gathers
    int32_t zero;                    // the ZeRO stage (scenario_zero), 0..3
    DeviceMetrics *dev;              // owned: [devices]
    MemTrace mem;                    // owned: every device's memory over the run
} Metrics;

/* metrics_compute fills out; returns 0, or -1 when out of memory. */
int metrics_compute(const Scenario *s, const Plan *pl, const Program *pr, const CostModel *c,
                    const Timeline *tl, Metrics *out);
/* The same for a timeline with a failure's gap in it (failure NULL or !happened: none). */
int metrics_compute_lost(const Scenario *s, const Plan *pl, const Program *pr,
                         const CostModel *c, const Timeline *tl, const VaryFailure *failure,
                         Metrics *out);
void metrics_free(Metrics *mt);

#endif
