/* sim/plan.h: the Plan, where things go: layers to pipeline stages (uniform or an explicit
 * list), stages to devices (through the Program's placement), devices to nodes. It decides
 * nothing about time; cost.h prices what the Plan places. */
#ifndef PIPESIM_PLAN_H
#define PIPESIM_PLAN_H

#include <stdint.h>

#include "scenario.h"

typedef struct {
    int32_t devices;       // p
    int32_t chunks;        // v
    int32_t stages;        // p*v pipeline stages, 0 = embedding side, stages-1 = LM head side
    int32_t pipes;         // model copies (DualPipe: 2), each a chain of stages/pipes stages;
                           //   stage st holds the layers of model stage st % (stages/pipes)
    int64_t *layers;       // owned: [stages] transformer layers in each stage
    int64_t *first_layer;  // owned: [stages] index of the stage's first layer
    int32_t gpus_per_node; // devices d and e share a node when d/gpus_per_node == e/...
} Plan;

/* plan_build splits the scenario's layers into stages: uniform, the explicit list, or balanced
 * (the slowest stage as fast as it can be, counting the LM head on the last stage). Returns
 * 0; 2 when the partition cannot be built (err holds "FILE: ..." with the fix); -1 when out
 * of memory. */
int plan_build(const Scenario *s, Plan *out, char *err, size_t errlen);
/* The same for a given number of model copies (a custom schedule file says it with
 * "pipes = 2"); plan_build uses the schedule's. Also returns 2 when the layers do not split
 * into the stages of one copy. */
int plan_build_copies(const Scenario *s, int32_t pipes, Plan *out, char *err, size_t errlen);
void plan_free(Plan *pl);

/* Whether a stage holds the embedding (first of its copy) or the LM head (last of its copy). */
static inline int plan_stage_is_first(const Plan *pl, int32_t st) {
    return st % (pl->stages / pl->pipes) == 0;
}
static inline int plan_stage_is_last(const Plan *pl, int32_t st) {
    return st % (pl->stages / pl->pipes) == pl->stages / pl->pipes - 1;
}

static inline int32_t plan_node_of(const Plan *pl, int32_t device) {
    return device / pl->gpus_per_node;
}

#endif
