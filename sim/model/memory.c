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

/* One MLP of width f (an expert's, or the dense layer's). */
static double mlp_params(const ScnModel *m, double f) {
    double h = (double)m->hidden, bias = m->bias ? 1 : 0;
    return m->mlp == MLP_SWIGLU ? 3.0 * h * f + bias * (2.0 * f + h) : 2.0 * h * f + bias * (f + h);
}

static double expert_ffn(const ScnModel *m) {
    return (double)(m->expert_ffn_hidden > 0 ? m->expert_ffn_hidden : m->ffn_hidden);
}

/* An MoE layer's parameters with `experts` of its MLPs counted (all, or those a token uses). */
static double moe_layer(const ScnModel *m, double experts) {
    double dense_mlp = mlp_params(m, (double)m->ffn_hidden);
    double router = (double)m->hidden * (double)m->experts;
    return memory_layer_params(m) - dense_mlp + router + experts * mlp_params(m, expert_ffn(m));
}

double memory_moe_layer_params(const ScnModel *m) {
    return moe_layer(m, (double)(m->experts + m->shared_experts));
}

double memory_moe_layer_active_params(const ScnModel *m) {
    return moe_layer(m, (double)(m->experts_per_token + m->shared_experts));
}

double memory_moe_expert_params(const ScnModel *m) {
    return (double)m->experts * mlp_params(m, expert_ffn(m));
}

/* The L layers' parameters: dense ones and MoE ones, each kind counted once. */
static double layers_params(const ScnModel *m, double moe_layer_params) {
    double nm = (double)scenario_moe_layers(m, 0, m->layers);
    return ((double)m->layers - nm) * memory_layer_params(m) + nm * moe_layer_params;
}

static double model_params(const ScnModel *m, double layers) {
    double head = memory_head_params(m) - (m->tied_embeddings ? (double)m->vocab * (double)m->hidden : 0);
    return layers + memory_embedding_params(m) + head;
}

double memory_model_params(const ScnModel *m) {
    if (m->experts <= 0) return model_params(m, (double)m->layers * memory_layer_params(m));
    return model_params(m, layers_params(m, memory_moe_layer_params(m)));
}

double memory_model_active_params(const ScnModel *m) {
    if (m->experts <= 0) return memory_model_params(m);
    return model_params(m, layers_params(m, memory_moe_layer_active_params(m)));
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

double memory_moe_layer_activation_bytes(const ScnModel *m, int64_t b, int64_t c) {
    if (m->recompute == RECOMPUTE_FULL) return memory_layer_activation_bytes_cp(m, b, 1, 0, c);
    double h = (double)m->hidden, fe = expert_ffn(m), k = (double)m->experts_per_token;
    double fs = (double)m->shared_experts * fe, up = m->mlp == MLP_SWIGLU ? 6.0 : 4.0;
    double dense_mlp = up * (double)m->ffn_hidden;
    double moe_mlp = 4.0 * (double)m->experts + up * fs + k * (4.0 * h + up * fe);
    double cc = (double)(c > 1 ? c : 1);
    return memory_layer_activation_bytes_cp(m, b, 1, 0, c) +
           (moe_mlp - dense_mlp) * (double)m->seq_len * (double)b / cc * (dtype_bytes(m->dtype) / 2.0);
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

/* An MoE layer's parameters on one GPU: all but the routed experts, and 1/e of those. */
static double moe_layer_gpu_params(const Scenario *s) {
    const ScnModel *m = &s->model;
    return memory_moe_layer_params(m) -
           memory_moe_expert_params(m) * (1.0 - 1.0 / (double)scenario_expert(s));
}

/* Parameters one GPU holds for nlayers layers, nm of them MoE layers (+ the embedding when
 * first, the LM head and final norm when last): a 1/t share with tensor parallelism; into
 * *experts (when not NULL) the routed experts' part. */
static double stage_params(const Scenario *s, int64_t nlayers, int64_t nm, int first, int last,
                           double *experts) {
    const ScnModel *m = &s->model;
    double params = (double)nlayers * memory_layer_params(m);
    if (nm > 0) // the dense MLPs of those layers replaced by the MoE block
        params = (double)(nlayers - nm) * memory_layer_params(m) + (double)nm * moe_layer_gpu_params(s);
    if (experts)
        *experts = nm > 0 ? (double)nm * memory_moe_expert_params(m) / (double)scenario_expert(s) : 0;
    if (first) params += memory_embedding_params(m);
    if (last) params += memory_head_params(m); // tied: a copy on the last stage (Megatron)
    return params / (double)scenario_tensor(s);
}

/* memory_stage_footprint with nm of the nlayers layers MoE layers. */
static void stage_footprint(const Scenario *s, int64_t nlayers, int64_t nm, int first, int last,
                            double *params, double *act, double *w_pending) {
    const ScnModel *m = &s->model;
    double h = (double)m->hidden, sq = (double)m->seq_len, b = (double)s->batch.micro_batch_size;
    double layers = (double)(nlayers - nm), ends = 0, t = (double)scenario_tensor(s);
    *params = stage_params(s, nlayers, nm, first, last, NULL);
    if (first) ends += sq * b * h;
    if (last) ends += 4.0 * sq * b * h * (1.0 + (double)m->vocab / (h * t));
    int64_t tp = scenario_tensor(s), mb = s->batch.micro_batch_size, c = scenario_context(s);
    int sp = s->parallel.sequence;
    ends /= (double)c; // a context rank's tokens
    *act = layers * memory_layer_activation_bytes_cp(m, mb, tp, sp, c) + ends;
    *w_pending = layers * memory_layer_w_pending_bytes_sp(m, mb, tp, sp) / (double)c + ends;
    if (nm > 0) { // an MoE layer keeps its activations from B to W (a bound)
        double moe = (double)nm * memory_moe_layer_activation_bytes(m, mb, c);
        *act += moe, *w_pending += moe;
    }
}

/* The MoE layers among a stage's nlayers when where it starts is not known (the balanced
 * search's layer cap): all of them, the costlier kind. */
void memory_stage_footprint(const Scenario *s, int64_t nlayers, int first, int last,
                            double *params, double *act, double *w_pending) {
    stage_footprint(s, nlayers, s->model.experts > 0 ? nlayers : 0, first, last, params, act,
                    w_pending);
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

static void per_param(const Scenario *s, int32_t weight_versions, double d, MemoryPerParam *out) {
    double wb = dtype_bytes(s->model.dtype);
    int64_t z = scenario_zero(s);
    out->weight = wb * weight_versions / (z >= 3 ? d : 1.0);
    out->grad = wb / (z >= 2 ? d : 1.0);
    out->optimizer = memory_optimizer_bytes_per_param(&s->model) / (z >= 1 ? d : 1.0);
}

void memory_per_param(const Scenario *s, int32_t weight_versions, MemoryPerParam *out) {
    per_param(s, weight_versions, (double)scenario_dp_group(s), out);
}

void memory_per_expert_param(const Scenario *s, int32_t weight_versions, MemoryPerParam *out) {
    per_param(s, weight_versions, (double)scenario_dp_group(s) / (double)scenario_expert(s), out);
}

double memory_zero_gather_bytes(const Scenario *s, int64_t nlayers, int first, int last) {
    if (scenario_zero(s) < 3) return 0;
    const ScnModel *m = &s->model;
    double unit = nlayers > 0 ? memory_layer_params(m) : 0;
    if (nlayers > 0 && m->experts > 0 && moe_layer_gpu_params(s) > unit) unit = moe_layer_gpu_params(s);
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

static int64_t plan_moe_layers(const Scenario *s, const Plan *pl, int32_t st) {
    return scenario_moe_layers(&s->model, pl->first_layer[st], pl->layers[st]);
}

double memory_stage_params(const Scenario *s, const Plan *pl, int32_t st) {
    return stage_params(s, pl->layers[st], plan_moe_layers(s, pl, st), plan_stage_is_first(pl, st),
                        plan_stage_is_last(pl, st), NULL);
}

void memory_plan_footprint(const Scenario *s, const Plan *pl, int32_t st, double *params,
                           double *act, double *w_pending) {
    stage_footprint(s, pl->layers[st], plan_moe_layers(s, pl, st), plan_stage_is_first(pl, st),
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
        double experts = 0;
        stage_params(s, pl->layers[st], plan_moe_layers(s, pl, st), 0, 0, &experts);
        dm->expert_params += experts;
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
    if (dm->expert_params > 0) { // sharded over the d c / e GPUs with the same experts
        MemoryPerParam pe;
        memory_per_expert_param(s, dm->weight_versions, &pe);
        double dense = dm->params - dm->expert_params;
        dm->weight_bytes = dense * pp.weight + dm->expert_params * pe.weight;
        dm->grad_bytes = dense * pp.grad + dm->expert_params * pe.grad;
        dm->optimizer_bytes = dense * pp.optimizer + dm->expert_params * pe.optimizer;
    }
}

