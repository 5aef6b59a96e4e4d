/* sim/plan/partition.h: partition = balanced, the layer-to-stage search. The layers of one
 * model copy go to its stages in order so that the slowest stage's F + B + W is as small as
 * it can be, within what each stage's device can hold. The search knows nothing of FLOPs,
 * bytes or devices: the model above it (sim/model/cost.h, cost_partition_init) says what a
 * stage of k layers costs and how many layers fit, as qsort takes its comparator. */
#ifndef PIPESIM_PARTITION_H
#define PIPESIM_PARTITION_H

#include <stdint.h>

/* One stage of the copy as the model sees it. */
typedef struct {
    int32_t device;          // pipeline device that runs the stage
    int first, last;         // holds the embedding / the LM head (first or last of its copy)
    int32_t inflight;        // most micro-batches whose activations it holds at once
    int32_t weight_versions; // weight copies its device keeps (stashing schedules), >= 1
    int32_t chunks;          // stages its device runs (v); each gets 1/v of its memory
} PartitionStage;

/* What the search asks of the model; ctx is the model's own (borrowed for the search). Both
 * are pure functions of their arguments, called O(n log L log T) times, so they should be
 * cheap (sim/model/cost.h prices a layer once and scales it).
 * stage_ns: ns of F + B + W of `layers` layers of one micro-batch on the stage; it must not
 *   fall as layers grow.
 * layer_cap: the most layers the stage can hold within its share of its device's memory, or
 *   -1 for no bound. */
typedef struct {
    const void *ctx;
    int64_t (*stage_ns)(const void *ctx, const PartitionStage *st, int64_t layers);
    int64_t (*layer_cap)(const void *ctx, const PartitionStage *st);
} PartitionModel;

/* Why the balanced split is what it is. */
typedef struct {
    int32_t bottleneck_stage; // stage with the slowest F + B + W
    int64_t bottleneck_ns;    // its F + B + W per micro-batch: the optimum
    int64_t even_ns;          // the slowest stage of an even split of the layers, for comparison
    int64_t unlimited_ns;     // the optimum without memory limits (< bottleneck_ns: memory
                              //   forced this split)
    int32_t memory_device;    // the first device whose memory keeps a stage below what the
                              //   slowest stage's time allows it, or -1
    int fits_memory;          // 0: no split fits every device's memory (balanced on time only)
} PartitionWhy;

/* partition_balance splits L layers over the n stages (each >= 1 layer; n <= L) into
 * layers[n]. For a bound T on the slowest stage each stage can take at most
 * cap(T) = max{k : stage_ns(k) <= T, k <= layer_cap} layers, and a split exists iff every
 * cap >= 1 and they sum to the layers or more (per-stage boxes plus the sum), so the smallest
 * feasible T, found by binary search over integer ns, is the exact optimum. Among optimal
 * splits it takes the water-filled one (the other stages as even in time as they can be).
 * When no split fits memory it balances on time alone (why->fits_memory = 0).
 * O(n log L log T) calls of stage_ns for L layers and T the slowest possible stage in ns.
 * Returns 0, or -1 out of memory. */
int partition_balance(int64_t L, const PartitionModel *m, const PartitionStage *stages, int32_t n,
                      int64_t *layers, PartitionWhy *why);

#endif
