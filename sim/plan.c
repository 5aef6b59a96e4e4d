/* sim/plan.c: layer-to-stage partitions. The scenario parser has already checked that the
 * partition covers every layer exactly once; this file only lays it out. */
#include "plan.h"

#include "schedule.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    if (s->pipeline.partition == PART_BALANCED) {
        snprintf(err, errlen,
                 "%s: partition = balanced is not available yet; use partition = uniform or "
                 "an explicit list of %d layer counts",
                 s->path, out->stages);
        return 2;
    }
    int32_t per = out->stages / out->pipes; // stages of one model copy
    int explicit = s->pipeline.partition == PART_EXPLICIT;
    if ((explicit && s->pipeline.npartition != per) || (!explicit && s->model.layers % per)) {
        snprintf(err, errlen,
                 "%s: the schedule runs %d model copies of %d stages each, so %s; list %d "
                 "layer counts, one per stage of a copy",
                 s->path, out->pipes, per,
                 explicit ? "partition has the wrong number of entries"
                          : "the layers do not split evenly under partition = uniform",
                 per);
        return 2;
    }
    out->layers = calloc((size_t)out->stages, sizeof *out->layers);
    out->first_layer = calloc((size_t)out->stages, sizeof *out->first_layer);
    if (!out->layers || !out->first_layer) {
        plan_free(out);
        return -1;
    }
    int64_t next = 0;
    for (int32_t st = 0; st < out->stages; st++) {
        if (st % per == 0) next = 0;
        out->layers[st] = s->pipeline.partition == PART_EXPLICIT
                              ? s->pipeline.partition_layers[st % per]
                              : s->model.layers / per;
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
