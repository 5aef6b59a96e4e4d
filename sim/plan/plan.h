/* sim/plan/plan.h: the Plan, where things go: layers to pipeline stages (uniform, an explicit
 * list, or balanced by partition.h with the caller's model of time and memory), stages to
 * devices (through the Program's placement), devices to nodes. It decides nothing about
 * time; sim/model/cost.h prices what the Plan places. */
#ifndef PIPESIM_PLAN_H
#define PIPESIM_PLAN_H

#include <stdint.h>

#include "sim/plan/partition.h"
#include "sim/program/program.h"
#include "sim/scenario/scenario.h"

typedef struct {
    int32_t devices;       // p
    int32_t chunks;        // v
    int32_t stages;        // p*v pipeline stages, 0 = embedding side, stages-1 = LM head side
    int32_t pipes;         // model copies (DualPipe: 2), each a chain of stages/pipes stages;
                           //   stage st holds the layers of model stage st % (stages/pipes)
    int64_t *layers;       // owned: [stages] transformer layers in each stage
    int64_t *first_layer;  // owned: [stages] index of the stage's first layer
    int32_t gpus_per_node; // physical GPUs per node
    int32_t devices_per_gpu; // devices sharing one GPU (0 or 1: one each)
    int32_t *device_of;    // owned: [stages] device that runs each stage (NULL: stage % devices)
    PartitionWhy balance;  // partition = balanced: why this split (zero otherwise)
} Plan;

/* plan_build splits the scenario's layers into stages: uniform, the explicit list, or
 * balanced (partition_balance with model, which may be NULL for the other two): every
 * device's memory_gib must hold the weights, gradients and optimizer state of its layers plus
 * the activations of its peak in-flight micro-batches (the model's layer_cap; with v chunks
 * each (device, chunk) stage gets 1/v of its device's memory). Returns 0; 2 when the partition
 * cannot be built (err holds "FILE: ..." with the fix); -1 when out of memory. plan_build
 * places stages as 1F1B does (stage st on device st % p; DualPipe's mirror for two copies)
 * and assumes 1F1B's min(p - d, m) micro-batches in flight on device d. */
int plan_build(const Scenario *s, const PartitionModel *model, Plan *out, char *err,
               size_t errlen);
/* plan_build for a built Program: its copies, its placement of stages on devices, its
 * weight versions, and the peak in-flight (micro-batch, chunk) count of each of its
 * (device, chunk) pairs. */
int plan_build_program(const Scenario *s, const Program *pr, const PartitionModel *model,
                       Plan *out, char *err, size_t errlen);
/* The same for a given number of model copies (a custom schedule file says it with
 * "pipes = 2"); plan_build uses the schedule's. Also returns 2 when the layers do not split
 * into the stages of one copy. */
int plan_build_copies(const Scenario *s, int32_t pipes, const PartitionModel *model, Plan *out,
                      char *err, size_t errlen);
void plan_free(Plan *pl);

/* Whether a stage holds the embedding (first of its copy) or the LM head (last of its copy). */
static inline int plan_stage_is_first(const Plan *pl, int32_t st) {
    return st % (pl->stages / pl->pipes) == 0;
}
static inline int plan_stage_is_last(const Plan *pl, int32_t st) {
    return st % (pl->stages / pl->pipes) == pl->stages / pl->pipes - 1;
}

static inline int32_t plan_node_of(const Plan *pl, int32_t device) {
    return (pl->devices_per_gpu > 1 ? device / pl->devices_per_gpu : device) / pl->gpus_per_node;
}
static inline int32_t plan_device_of(const Plan *pl, int32_t stage) {
    return pl->device_of ? pl->device_of[stage] : stage % pl->devices;
}

#endif
