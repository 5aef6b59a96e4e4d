/* sim/model/memory.c: what a stage holds: parameters, gradients, optimizer state and the
 * activations of one micro-batch, per layer and per stage (Korthikanti et al. 2022). No time
 * here: memory over a run is sim/metrics/memory_trace.c. */
#include "sim/model/memory.h"

#include <stdlib.h>
#include <string.h>

/* One norm's parameters: gamma and beta (layer norm) or gamma (RMSNorm), h each. */
static double norm_params(const ScnModel *m) {
    return (m->norm == NORM_RMSNORM ? 1.0 : 2.0) * (double)m->hidden;
}

double memory_layer_params(const ScnModel *m) {
    double h = (double)m->hidden, f = (double)m->ffn_hidden, hq = (double)scenario_attn_width(m);
    double hkv = (double)(scenario_kv_heads(m) * scenario_head_dim(m)), bias = m->bias ? 1 : 0;
    double attention = h * (2.0 * hq + 2.0 * hkv) + bias * (hq + 2.0 * hkv + h);
    double mlp = m->mlp == MLP_SWIGLU ? 3.0 * h * f + bias * (2.0 * f + h)
                                      : 2.0 * h * f + bias * (f + h);
    double norms = 2.0 * norm_params(m);
    return attention + mlp + norms;
}

double memory_embedding_params(const ScnModel *m) {
    double h = (double)m->hidden;
    return (double)m->vocab * h + (m->position == POSITION_LEARNED ? (double)m->seq_len * h : 0);
}

double memory_head_params(const ScnModel *m) {
    return (double)m->vocab * (double)m->hidden + norm_params(m);
}

double memory_model_params(const ScnModel *m) {
    double head = memory_head_params(m) - (m->tied_embeddings ? (double)m->vocab * (double)m->hidden : 0);
    return (double)m->layers * memory_layer_params(m) + memory_embedding_params(m) + head;
}

double memory_layer_activation_bytes(const ScnModel *m, int64_t b) {
    return memory_layer_activation_bytes_sp(m, b, 1, 0);
}

double memory_layer_activation_bytes_tp(const ScnModel *m, int64_t b, int64_t t) {
    return memory_layer_activation_bytes_sp(m, b, t, 0);
}

/* Bytes per token of one layer's kept activations for 16-bit types, by part: what every
 * tensor-parallel rank keeps whole (the residual stream's: norm inputs and outputs, the two
 * hidden dropouts' masks; 1/t of it with sequence parallelism), what it keeps 1/t of (q, k
 * and v, attention's output, the MLP's activations), and the attention core (s x s scores
 * per head, 1/t). */
typedef struct { double stream, split, core; } ActParts;

static ActParts act_parts(const ScnModel *m) {
    double h = (double)m->hidden, s = (double)m->seq_len, a = (double)m->heads;
    double q = (double)scenario_attn_width(m);
    double k = (double)(scenario_kv_heads(m) * scenario_head_dim(m)), f = (double)m->ffn_hidden;
    double drop = m->dropout > 0 ? 1 : 0;
    ActParts p = {.stream = 8.0 * h + 2.0 * drop * h,
                  .split = 2.0 * (q + 2.0 * k) + 2.0 * q + (m->mlp == MLP_SWIGLU ? 6.0 : 4.0) * f};
    // standard: softmax output (2 bytes), with dropout its mask (1) and output (2);
    // flash: a log-sum-exp (fp32) per query and head
    p.core = m->attention == ATTENTION_FLASH ? 4.0 * a : (2.0 + 3.0 * drop) * a * s;
    return p;
}

double memory_layer_activation_bytes_sp(const ScnModel *m, int64_t b, int64_t t, int sp) {
    double tp = (double)(t > 1 ? t : 1), sigma = sp && t > 1 ? tp : 1;
    ActParts p = act_parts(m);
    double per_token = m->recompute == RECOMPUTE_FULL ? 2.0 * (double)m->hidden / sigma
                       : p.stream / sigma + p.split / tp +
                             (m->recompute == RECOMPUTE_SELECTIVE ? 0 : p.core / tp);
    return (double)m->seq_len * (double)b * per_token * (dtype_bytes(m->dtype) / 2.0);
}

double memory_optimizer_bytes_per_param(const ScnModel *m) {
    int fp32 = dtype_bytes(m->dtype) == 4;
    if (m->optimizer == OPTIMIZER_SGD) return fp32 ? 4.0 : 8.0;
    return fp32 ? 8.0 : 12.0;
}

double memory_layer_w_pending_bytes(const ScnModel *m, int64_t b) {
    return memory_layer_w_pending_bytes_sp(m, b, 1, 0);
}

double memory_layer_w_pending_bytes_tp(const ScnModel *m, int64_t b, int64_t t) {
    return memory_layer_w_pending_bytes_sp(m, b, t, 0);
}

double memory_layer_w_pending_bytes_sp(const ScnModel *m, int64_t b, int64_t t, int sp) {
    double h = (double)m->hidden, f = (double)m->ffn_hidden, tp = (double)(t > 1 ? t : 1);
    double q = (double)scenario_attn_width(m), sigma = sp && t > 1 ? tp : 1;
    double k = (double)(scenario_kv_heads(m) * scenario_head_dim(m));
    double fw = m->mlp == MLP_SWIGLU ? 2.0 * f : f;
    double elems = 2.0 * h / sigma + 2.0 * h + (2.0 * q + 2.0 * k + f + fw) / tp;
    double bytes = dtype_bytes(m->dtype) * (double)m->seq_len * (double)b * elems;
    double act = memory_layer_activation_bytes_sp(m, b, t, sp);
    return bytes < act ? bytes : act;
}

/* Parameters one GPU holds for nlayers layers (+ the embedding when first, the LM head and
 * final norm when last): a 1/t share with tensor parallelism. */
static double stage_params(const Scenario *s, int64_t nlayers, int first, int last) {
    const ScnModel *m = &s->model;
    double params = (double)nlayers * memory_layer_params(m);
    if (first) params += memory_embedding_params(m);
    if (last) params += memory_head_params(m); // tied: a copy on the last stage (Megatron)
    return params / (double)scenario_tensor(s);
}

void memory_stage_footprint(const Scenario *s, int64_t nlayers, int first, int last,
                            double *params, double *act, double *w_pending) {
    const ScnModel *m = &s->model;
    double h = (double)m->hidden, sq = (double)m->seq_len, b = (double)s->batch.micro_batch_size;
    double layers = (double)nlayers, ends = 0, t = (double)scenario_tensor(s);
    *params = stage_params(s, nlayers, first, last);
    if (first) ends += sq * b * h;
    if (last) ends += 4.0 * sq * b * h * (1.0 + (double)m->vocab / (h * t));
    int64_t tp = scenario_tensor(s), mb = s->batch.micro_batch_size, c = scenario_context(s);
    int sp = s->parallel.sequence;
    ends /= (double)c; // a context rank's tokens
    *act = layers * memory_layer_activation_bytes_cp(m, mb, tp, sp, c) + ends;
    *w_pending = layers * memory_layer_w_pending_bytes_sp(m, mb, tp, sp) / (double)c + ends;
}

double memory_layer_activation_bytes_cp(const ScnModel *m, int64_t b, int64_t t, int sp,
                                        int64_t c) {
    double act = memory_layer_activation_bytes_sp(m, b, t, sp);
    if (c <= 1) return act;
    double kv = (double)(scenario_kv_heads(m) * scenario_head_dim(m)); // K and V, each kv wide
    double tp = (double)(t > 1 ? t : 1);
    return act / (double)c + 2.0 * 2.0 * kv / tp * (double)m->seq_len * (double)b *
                                 (dtype_bytes(m->dtype) / 2.0);
}

void memory_per_param(const Scenario *s, int32_t weight_versions, MemoryPerParam *out) {
    double wb = dtype_bytes(s->model.dtype), d = (double)scenario_dp_group(s);
    int64_t z = scenario_zero(s);
    out->weight = wb * weight_versions / (z >= 3 ? d : 1.0);
    out->grad = wb / (z >= 2 ? d : 1.0);
    out->optimizer = memory_optimizer_bytes_per_param(&s->model) / (z >= 1 ? d : 1.0);
}

double memory_zero_gather_bytes(const Scenario *s, int64_t nlayers, int first, int last) {
    if (scenario_zero(s) < 3) return 0;
    const ScnModel *m = &s->model;
    double unit = nlayers > 0 ? memory_layer_params(m) : 0;
    if (first && memory_embedding_params(m) > unit) unit = memory_embedding_params(m);
    if (last && memory_head_params(m) > unit) unit = memory_head_params(m);
    double d = (double)scenario_dp_group(s);
    return (1.0 - 1.0 / d) * unit / (double)scenario_tensor(s) * dtype_bytes(m->dtype);
}

int64_t memory_stage_layer_cap(const Scenario *s, const PartitionStage *st) {
    double gib = s->device ? s->device[st->device].memory_gib : s->hw.memory_gib;
    MemoryPerParam pp;
    memory_per_param(s, st->weight_versions, &pp);
    double per_param = pp.weight + pp.grad + pp.optimizer;
    double p1, a1, w1, p0, a0, w0;
    memory_stage_footprint(s, 1, st->first, st->last, &p1, &a1, &w1);
    memory_stage_footprint(s, 0, st->first, st->last, &p0, &a0, &w0);
    double fixed = p0 * per_param + st->inflight * a0 +            // embedding / head
                   memory_zero_gather_bytes(s, 1, st->first, st->last); // zero = 3: a unit
    double layer = (p1 - p0) * per_param + st->inflight * (a1 - a0);
    double room = gib * GIB / st->chunks - fixed;
    return room < layer ? 0 : (int64_t)(room / layer);
}

double memory_stage_params(const Scenario *s, const Plan *pl, int32_t st) {
    return stage_params(s, pl->layers[st], plan_stage_is_first(pl, st), plan_stage_is_last(pl, st));
}

void memory_plan_footprint(const Scenario *s, const Plan *pl, int32_t st, double *params,
                           double *act, double *w_pending) {
    memory_stage_footprint(s, pl->layers[st], plan_stage_is_first(pl, st),
                           plan_stage_is_last(pl, st), params, act, w_pending);
}

void memory_device_static(const Scenario *s, const Plan *pl, const Program *pr, int32_t d,
                          DeviceMemory *dm) {
    memset(dm, 0, sizeof *dm);
    for (int32_t c = 0; c < pr->chunks; c++) {
        double params, act, pending;
        int32_t st = program_stage_of(pr, d, c);
        memory_plan_footprint(s, pl, st, &params, &act, &pending);
        dm->params += params;
        double gather = memory_zero_gather_bytes(s, pl->layers[st], plan_stage_is_first(pl, st),
                                                 plan_stage_is_last(pl, st));
        if (gather > dm->gather_bytes) dm->gather_bytes = gather;
    }
    dm->weight_versions = pr->weight_versions ? pr->weight_versions[d] : 1;
    MemoryPerParam pp;
    memory_per_param(s, dm->weight_versions, &pp);
    dm->weight_bytes = dm->params * pp.weight;
    dm->grad_bytes = dm->params * pp.grad;
    dm->optimizer_bytes = dm->params * pp.optimizer;
}

