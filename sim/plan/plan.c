/* sim/plan/plan.c: layer-to-stage partitions: uniform, explicit (the scenario parser has already
 * checked that it covers every layer exactly once) or balanced (partition.h, with the
 * caller's model of time and memory); and which device runs each stage. No timing here. */
#include "sim/plan/plan.h"

#include <assert.h>

#include "sim/sched/schedule.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int plan_build(const Scenario *s, const PartitionModel *model, Plan *out, char *err,
               size_t errlen) {
    return plan_build_copies(s, sched_pipes(s->pipeline.schedule), model, out, err, errlen);
}

/* Checks the partition against the copies and allocates out. Returns 0, 2 or -1. */
static int plan_init(const Scenario *s, int32_t pipes, Plan *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    out->devices = (int32_t)s->pipeline.stages;
    out->chunks = (int32_t)s->pipeline.chunks;
    out->stages = out->devices * out->chunks;
    out->pipes = pipes;
    out->gpus_per_node = (int32_t)s->hw.gpus_per_node;
    out->devices_per_gpu = s->hw.devices_per_gpu > 1 ? (int32_t)s->hw.devices_per_gpu : 1;
    out->balance.memory_device = -1;
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
    out->device_of = calloc((size_t)out->stages, sizeof *out->device_of);
    if (!out->layers || !out->first_layer || !out->device_of) {
        plan_free(out);
        return -1;
    }
    return 0;
}

/* Fills layers and first_layer from the partition; balanced: the first copy's stages with
 * model, for stages whose peak in-flight micro-batches are inflight[per] and whose devices
 * keep versions[device] weight copies (NULL: one). Returns 0 or -1. */
static int plan_fill(const Scenario *s, const PartitionModel *model, const int32_t *inflight,
                     const int32_t *versions, Plan *out) {
    int32_t per = out->stages / out->pipes;
    int explicit = s->pipeline.partition == PART_EXPLICIT;
    int uniform = s->pipeline.partition == PART_UNIFORM;
    if (!uniform && !explicit) {
        assert(model); // partition = balanced needs the caller's costs
        PartitionStage *st = malloc((size_t)per * sizeof *st);
        for (int32_t i = 0; st && i < per; i++) {
            int32_t d = out->device_of[i];
            st[i] = (PartitionStage){.device = d, .first = i == 0, .last = i == per - 1,
                                     .inflight = inflight[i],
                                     .weight_versions = versions ? versions[d] : 1,
                                     .chunks = out->chunks};
        }
        int rc = st ? partition_balance(s->model.layers, model, st, per, out->layers, &out->balance) : -1;
        free(st);
        if (rc != 0) {
            plan_free(out);
            return -1;
        }
    }
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

int plan_build_copies(const Scenario *s, int32_t pipes, const PartitionModel *model, Plan *out,
                      char *err, size_t errlen) {
    int rc = plan_init(s, pipes, out, err, errlen);
    if (rc != 0) return rc;
    int32_t p = out->devices, per = out->stages / pipes;
    int32_t *inflight = malloc((size_t)per * sizeof *inflight);
    if (!inflight) {
        plan_free(out);
        return -1;
    }
    for (int32_t st = 0; st < out->stages; st++) // 1F1B's loop; DualPipe's mirrored copy
        out->device_of[st] = pipes == 2 && st >= per ? p - 1 - (st - per) : st % p;
    for (int32_t st = 0; st < per; st++) {
        int64_t left = p - out->device_of[st];
        inflight[st] = (int32_t)(left < s->batch.micro_batches ? left : s->batch.micro_batches);
    }
    rc = plan_fill(s, model, inflight, NULL, out);
    free(inflight);
    return rc;
}

/* Peak (micro-batch, chunk) activations held at each (device, chunk) in program order: an F
 * takes one, its W or BW gives it back (a B keeps it whole: the W-pending part stays). */
static int32_t *program_inflight(const Program *pr) {
    int32_t *held = calloc((size_t)program_stages(pr), sizeof *held);
    int32_t *peak = calloc((size_t)program_stages(pr), sizeof *peak);
    if (!held || !peak) {
        free(held), free(peak);
        return NULL;
    }
    for (int32_t d = 0; d < pr->devices; d++)
        for (int64_t i = pr->start[d]; i < pr->start[d + 1]; i++) {
            const ProgramOp *op = &pr->ops[i];
            int32_t at = d * pr->chunks + op->chunk;
            if (op->kind == OP_F && ++held[at] > peak[at]) peak[at] = held[at];
            if (op->kind == OP_W || op->kind == OP_BW) held[at]--;
        }
    free(held);
    return peak;
}

int plan_build_program(const Scenario *s, const Program *pr, const PartitionModel *model,
                       Plan *out, char *err, size_t errlen) {
    int rc = plan_init(s, pr->pipes, out, err, errlen);
    if (rc != 0) return rc;
    int32_t per = out->stages / out->pipes, *peak = program_inflight(pr);
    int32_t *inflight = malloc((size_t)per * sizeof *inflight);
    if (!peak || !inflight) {
        free(peak), free(inflight), plan_free(out);
        return -1;
    }
    for (int32_t st = 0; st < out->stages; st++) {
        out->device_of[st] = pr->device_of[st];
        if (st < per) inflight[st] = peak[pr->device_of[st] * pr->chunks + pr->chunk_of[st]];
    }
    rc = plan_fill(s, model, inflight, pr->weight_versions, out);
    free(peak), free(inflight);
    return rc;
}

void plan_free(Plan *pl) {
    free(pl->layers);
    free(pl->first_layer);
    free(pl->device_of);
    memset(pl, 0, sizeof *pl);
}
