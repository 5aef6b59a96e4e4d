/* sim/memory.c: static memory per device and peak activations by walking each device's
 * program in order (ops on one device never overlap, so program order is time order). */
#include "memory.h"

#include <stdlib.h>
#include <string.h>

double memory_layer_params(const ScnModel *m) {
    double h = (double)m->hidden, f = (double)m->ffn_hidden;
    return 4.0 * h * h + 4.0 * h + 2.0 * h * f + f + h + 4.0 * h;
}

double memory_layer_activation_bytes(const ScnModel *m, int64_t b) {
    double s = (double)m->seq_len, h = (double)m->hidden, a = (double)m->heads;
    return s * (double)b * h * (34.0 + 5.0 * a * s / h) * (dtype_bytes(m->dtype) / 2.0);
}

/* Parameters and activation bytes of one stage (per micro-batch). */
static void stage_footprint(const Scenario *s, const Plan *pl, int32_t st, double *params,
                            double *act) {
    const ScnModel *m = &s->model;
    double h = (double)m->hidden, sq = (double)m->seq_len, b = (double)s->batch.micro_batch_size;
    double layers = (double)pl->layers[st];
    *params = layers * memory_layer_params(m);
    *act = layers * memory_layer_activation_bytes(m, s->batch.micro_batch_size);
    if (plan_stage_is_first(pl, st)) {
        *params += ((double)m->vocab + sq) * h;
        *act += sq * b * h;
    }
    if (plan_stage_is_last(pl, st)) {
        *params += (double)m->vocab * h + 2.0 * h;
        *act += 4.0 * sq * b * h * (1.0 + (double)m->vocab / h);
    }
}

void memory_estimate(const Scenario *s, const Plan *pl, const Program *pr, DeviceMemory *out) {
    int wb = dtype_bytes(s->model.dtype);
    double opt_per_param = wb == 4 ? 8.0 : 12.0;
    for (int32_t d = 0; d < pr->devices; d++) {
        DeviceMemory *dm = &out[d];
        memset(dm, 0, sizeof *dm);
        for (int32_t c = 0; c < pr->chunks; c++) {
            double params, act;
            stage_footprint(s, pl, program_stage_of(pr, d, c), &params, &act);
            dm->params += params;
        }
        dm->weight_versions = pr->weight_versions ? pr->weight_versions[d] : 1;
        dm->weight_bytes = dm->params * wb * dm->weight_versions;
        dm->grad_bytes = dm->params * wb;
        dm->optimizer_bytes = dm->params * opt_per_param;
        int32_t held = 0;
        double bytes = 0;
        for (int64_t i = pr->start[d]; i < pr->start[d + 1]; i++) {
            const ProgramOp *op = &pr->ops[i];
            if (op->kind == OP_B) continue;
            double params, act;
            stage_footprint(s, pl, program_stage_of(pr, d, op->chunk), &params, &act);
            if (op->kind == OP_F) {
                held++, bytes += act;
                if (held > dm->peak_activations) dm->peak_activations = held;
                if (bytes > dm->activation_bytes) dm->activation_bytes = bytes;
            } else {
                held--, bytes -= act;
            }
        }
        dm->peak_bytes = dm->weight_bytes + dm->grad_bytes + dm->optimizer_bytes +
                         dm->activation_bytes;
    }
}
