/* sim/plan.c: layer-to-stage partitions: uniform, explicit (the scenario parser has already
 * checked that it covers every layer exactly once) or balanced. */
#include "plan.h"

#include "cost.h"
#include "schedule.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* partition = balanced: the layers of one model copy over `per` stages so that the slowest
 * stage is as fast as it can be. Every layer costs the same (F + B + W FLOPs) and the last
 * stage also runs the LM head, so the last stage takes k layers and the others share the rest
 * evenly (earlier stages take the odd ones); k is the one that minimises the slowest stage,
 * the fewest layers on the last stage among equals. O(layers). */
static void balance(const Scenario *s, int32_t per, int64_t *layers) {
    int64_t L = s->model.layers;
    if (per == 1) {
        layers[0] = L;
        return;
    }
    double f, b, w;
    cost_layer_flops(&s->model, s->batch.micro_batch_size, &f, &b, &w);
    double a = f + b + w, head = 3.0 * cost_head_flops(&s->model, s->batch.micro_batch_size);
    int64_t best_k = 1;
    double best = -1;
    for (int64_t k = 1; k <= L - (per - 1); k++) {
        int64_t rest = L - k, others = (rest + per - 2) / (per - 1); // ceil over per-1 stages
        double slowest = (double)k * a + head > (double)others * a ? (double)k * a + head
                                                                   : (double)others * a;
        if (best < 0 || slowest < best) best = slowest, best_k = k;
    }
    int64_t rest = L - best_k;
    for (int32_t i = 0; i < per - 1; i++)
        layers[i] = rest / (per - 1) + (i < rest % (per - 1));
    layers[per - 1] = best_k;
}

int plan_build(const Scenario *s, Plan *out, char *err, size_t errlen) {
    return plan_build_copies(s, sched_pipes(s->pipeline.schedule), out, err, errlen);
}

int plan_build_copies(const Scenario *s, int32_t pipes, Plan *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    out->devices = (int32_t)s->pipeline.stages;
    out->chunks = (int32_t)s->pipeline.chunks;
    out->stages = out->devices * out->chunks;
    out->pipes = pipes;
    out->gpus_per_node = (int32_t)s->hw.gpus_per_node;
    int32_t per = out->stages / out->pipes; // stages of one model copy
    int explicit = s->pipeline.partition == PART_EXPLICIT;
    int uniform = s->pipeline.partition == PART_UNIFORM;
    if ((explicit && s->pipeline.npartition != per) || (uniform && s->model.layers % per) ||
        s->model.layers < per) {
        snprintf(err, errlen,
                 "%s: the schedule runs %d model copies of %d stages each, so %s; list %d "
                 "layer counts, one per stage of a copy",
                 s->path, out->pipes, per,
                 explicit  ? "partition has the wrong number of entries"
                 : uniform ? "the layers do not split evenly under partition = uniform"
                           : "there are fewer layers than stages",
                 per);
        return 2;
    }
    out->layers = calloc((size_t)out->stages, sizeof *out->layers);
    out->first_layer = calloc((size_t)out->stages, sizeof *out->first_layer);
    if (!out->layers || !out->first_layer) {
        plan_free(out);
        return -1;
    }
    if (!uniform && !explicit) balance(s, per, out->layers); // the first copy's stages
    int64_t next = 0;
    for (int32_t st = 0; st < out->stages; st++) {
        if (st % per == 0) next = 0;
        out->layers[st] = explicit ? s->pipeline.partition_layers[st % per]
                          : uniform ? s->model.layers / per
                                    : out->layers[st % per];
        out->first_layer[st] = next;
        next += out->layers[st];
    }
    return 0;
}

void plan_free(Plan *pl) {
    free(pl->layers);
    free(pl->first_layer);
    memset(pl, 0, sizeof *pl);
}
