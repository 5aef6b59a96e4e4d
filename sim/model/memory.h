/* sim/model/memory.h: what a device holds: parameters (and the extra weight versions
 * asynchronous schedules keep), gradients and optimizer state, and the activations one
 * (micro-batch, chunk) keeps from its forward to its backward (Korthikanti et al. 2022, with
 * the recompute modes of the scenario). With tensor parallelism t every figure is one GPU's
 * share (Korthikanti et al. 2022, with or without sequence parallelism). Data parallelism keeps full
 * weights, gradients and optimizer state on every replica unless [parallel] zero shards them
 * over the d replicas (Rajbhandari et al. 2020, Figure 1; memory_per_param): zero = 1 holds
 * 1/d of the optimizer state, 2 also 1/d of the gradients, 3 also 1/d of the weights, i.e.
 * (2 + 2 + K) Psi, (2 + 2) Psi + K Psi / d, 2 Psi + (2 + K) Psi / d and (2 + 2 + K) Psi / d
 * bytes for Psi parameters in 16 bits (K = 12, mixed-precision Adam). Transients: zero = 2's
 * full-gradient bucket before its reduce-scatter is ignored (a bucket is a small part of a
 * stage); zero = 3 counts one unit's gathered weights (gather_bytes: the largest of a layer, the
 * embedding or the LM head of the device's stages, full, less the shard already held) as held
 * all the time, since some unit is gathered whenever the device computes (FSDP's prefetch of the
 * next unit, which would double it, is not counted). Memory over a run, replayed from a
 * Timeline, is sim/metrics/memory_trace.h. */
#ifndef PIPESIM_MEMORY_H
#define PIPESIM_MEMORY_H

#include <stdint.h>

#include "sim/plan/plan.h"
#include "sim/program/program.h"
#include "sim/scenario/scenario.h"

#define GIB (1024.0 * 1024.0 * 1024.0)

typedef struct {
    double params;             // parameters held
    int32_t weight_versions;   // weight copies kept (stashing, double buffering), >= 1
    double weight_bytes;       // in the model's dtype, all versions
    double grad_bytes;
    double optimizer_bytes;
    double expert_params;      // of params, the routed experts' (1/e of each MoE layer's),
                               //   whose ZeRO shards span the d/e ranks holding the same
                               //   experts
    double gather_bytes;       // zero = 3: one unit's weights gathered for its pass (transient,
                               //   counted as held); 0 otherwise
    double activation_bytes;   // peak over the run
    int32_t peak_activations;  // most (micro-batch, chunk) activations held at once
    double peak_bytes;         // most bytes held at once: the static part + activations
} DeviceMemory;

/* Parameters of one transformer layer, with q = heads x head_dim and k = kv_heads x head_dim:
 * attention h(2q + 2k) (Wq, Wk, Wv, Wo) + biases q + 2k + h; MLP 2hf (gelu) or 3hf (swiglu)
 * + biases f + h or 2f + h; two norms of 2h (layer norm) or h (RMSNorm). GPT (f = 4h, q = k =
 * h, biases, layer norms): 12h^2 + 13h. */
double memory_layer_params(const ScnModel *m);
/* The input embedding: V h, plus s h learned positions (none with rope). */
double memory_embedding_params(const ScnModel *m);
/* The LM head as the last stage holds it: the output embedding V h (with tied embeddings a
 * copy of the input's, as Megatron-LM keeps it when the two ends sit on different stages) and
 * the final norm. */
double memory_head_params(const ScnModel *m);
/* The model's parameters, each counted once (a tied output embedding is the input's):
 * L layers + the embedding + the final norm (+ V h when untied). Llama 3 8B: 8.03e9. */
double memory_model_params(const ScnModel *m);

/* Mixture of experts (experts > 0): an MoE layer holds attention and norms as a dense layer,
 * a router of h E, and E routed plus shared experts, each an MLP of expert_ffn_hidden (2hf_e
 * or 3hf_e with SwiGLU, + biases); a token activates the router, its k routed and the shared
 * experts. memory_moe_expert_params is the routed experts' part (what expert parallelism
 * splits over e). The model's totals count the dense layers (first_dense_layers, and those
 * moe_layer_freq skips) with the dense MLP of ffn_hidden. DeepSeek-V3: 671B total, 37B
 * activated (tests/test_moe.c). */
double memory_moe_layer_params(const ScnModel *m);
double memory_moe_layer_active_params(const ScnModel *m);
double memory_moe_expert_params(const ScnModel *m);
double memory_model_active_params(const ScnModel *m);
/* Activation bytes one MoE layer keeps per micro-batch of b samples (16-bit types; t = 1, as
 * scenario.c requires for experts): the dense layer's with its MLP part replaced by the
 * router's fp32 logits (4E a token), the shared experts' MLP activations, and per routed copy
 * (k a token, the balanced share) the dispatched input and the expert's output (2h each) and
 * the expert's up output and activation (6f_e SwiGLU, 4f_e GELU). */
double memory_moe_layer_activation_bytes(const ScnModel *m, int64_t b, int64_t c);

/* Activation bytes one layer keeps for one micro-batch of b samples until its backward, for
 * 16-bit types (doubled for fp32), on one of t tensor-parallel GPUs, with sequence
 * parallelism when sp (Korthikanti et al. 2022, generalised to the model's shapes): per token
 *   stream / t' + split / t + core / t,   t' = t with sequence parallelism, else 1,
 *   stream = 8h (the two norms' inputs and outputs) + 2h with dropout (the two masks),
 *   split  = 2(q + 2k) (q, k, v) + 2q (attention's output) + 4f (GELU's input and output;
 *            SwiGLU 6f: gate, up and their product),
 *   core   = 2as (the softmax output) + 3as with dropout (its mask and output), or 4a for
 *            flash attention (a log-sum-exp per query and head),
 * with q = heads x head_dim, k = kv_heads x head_dim, a = heads. Selective recomputation
 * drops core, full keeps only the layer's input, 2h / t'. GPT with dropout (q = k = h, f =
 * 4h) gives Table 2: sbh(10 + 24/t + 5as/(ht)); sequence parallel sbh(34/t + 5as/(ht));
 * selective sbh(10 + 24/t) and sbh(34/t); t = 1: sbh(34 + 5as/h) (eqs. 1-3); full 2sbh
 * (2sbh/t sequence parallel: the input kept is this rank's tokens). Without dropout the
 * masks and the dropout's output are not kept (PyTorch returns the input for p = 0). */
double memory_layer_activation_bytes(const ScnModel *m, int64_t b);
double memory_layer_activation_bytes_tp(const ScnModel *m, int64_t b, int64_t t);
double memory_layer_activation_bytes_sp(const ScnModel *m, int64_t b, int64_t t, int sp);
/* With c-way context parallelism: a rank keeps its s/c tokens' share, 1/c of the above (the
 * attention core's s x s scores are its s/c queries' against every key), plus the whole
 * sequence's all-gathered keys and values for B, 2 x 2 s b k / t bytes for 16-bit types. */
double memory_layer_activation_bytes_cp(const ScnModel *m, int64_t b, int64_t t, int sp,
                                        int64_t c);

/* Bytes of one layer's activations a split backward keeps from B until W: the inputs of the
 * four weight GEMMs and the gradients of their outputs (Qi et al. 2023 section 2.3: M_W <
 * M_B). With t-way tensor parallelism the norms' outputs (whole, or 1/t with sequence
 * parallelism, which gathers them again in W) and the output gradients of the attention-out
 * and MLP-out GEMMs (2h a token, whole) stay, the rest is split: 2sb(2h/t' + 2h + (2q + 2k +
 * f + f_up)/t) bytes for 16-bit types (f_up = f, or 2f with SwiGLU), at most the layer's
 * activations; GPT: 2sb(8h + 2f), 32sbh when f = 4h and t = 1. */
double memory_layer_w_pending_bytes(const ScnModel *m, int64_t b);
double memory_layer_w_pending_bytes_tp(const ScnModel *m, int64_t b, int64_t t);
double memory_layer_w_pending_bytes_sp(const ScnModel *m, int64_t b, int64_t t, int sp);

/* Parameters one GPU holds for stage st: its layers, the embedding (V + s)h on a first stage,
 * the output embedding Vh and final norm 2h on a last stage, all divided by the tensor
 * parallelism t (Megatron splits the layers' GEMMs and the vocabulary; the small replicated
 * norms and biases are counted as split too). */
double memory_stage_params(const Scenario *s, const Plan *pl, int32_t st);

/* Optimizer state bytes per parameter (scenario.h's Optimizer): Adam 12 for 16-bit models
 * (fp32 master, momentum, variance), 8 for fp32; SGD with momentum 8 and 4. */
double memory_optimizer_bytes_per_param(const ScnModel *m);

/* Bytes one GPU holds per parameter of its stages: weights (weight_versions copies, in the
 * dtype), gradients (dtype) and optimizer state, each divided by d where the scenario's ZeRO
 * stage shards it (scenario_zero: 1 optimizer, 2 also gradients, 3 also weights). */
typedef struct {
    double weight, grad, optimizer; // bytes per parameter
} MemoryPerParam;
void memory_per_param(const Scenario *s, int32_t weight_versions, MemoryPerParam *out);
/* The same for the routed experts' parameters with expert parallelism: ZeRO shards them over
 * the d c / e GPUs that hold the same experts. */
void memory_per_expert_param(const Scenario *s, int32_t weight_versions, MemoryPerParam *out);

/* zero = 3: bytes of the largest unit (a layer; the embedding on a first stage, the LM head on
 * a last one) of a stage of nlayers layers gathered for its pass: its full weights on one of t
 * tensor-parallel GPUs less the 1/d shard held, (1 - 1/d) x params / t x dtype bytes. 0 for
 * zero < 3. */
double memory_zero_gather_bytes(const Scenario *s, int64_t nlayers, int first, int last);

/* Parameters of a stage of nlayers layers (with the embedding when first, the output
 * embedding and final layer norm when last), the activation bytes it keeps per micro-batch,
 * and the part of them a split backward keeps from B to W (the embedding's and the LM head's
 * activations stay whole until W). */
void memory_stage_footprint(const Scenario *s, int64_t nlayers, int first, int last,
                            double *params, double *act, double *w_pending);

/* The most layers a stage can hold in its device's memory_gib / chunks: weights (all its
 * versions), gradients and optimizer state of each layer, plus the activations of its
 * in-flight micro-batches, after the embedding's or LM head's share (a bound: split-backward
 * activations counted whole until W). partition.h's layer_cap. */
int64_t memory_stage_layer_cap(const Scenario *s, const PartitionStage *st);

/* memory_stage_footprint for stage st of the plan (its layers; first and last of its copy). */
void memory_plan_footprint(const Scenario *s, const Plan *pl, int32_t st, double *params,
                           double *act, double *w_pending);

/* The static part of device d's memory (everything but activations, which are zero): the
 * parameters of its stages and their weights (weight_versions copies), gradients and
 * optimizer state as memory_per_param shards them, and zero = 3's gathered unit (the
 * largest over its stages). */
void memory_device_static(const Scenario *s, const Plan *pl, const Program *pr, int32_t d,
                          DeviceMemory *dm);

/* What the static part adds up to: weights + gradients + optimizer state + gathered weights,
 * bytes. Everything that sums the static part (the memory trace, pplan's static drop) calls
 * this. */
static inline double memory_static_bytes(const DeviceMemory *dm) {
    return dm->weight_bytes + dm->grad_bytes + dm->optimizer_bytes + dm->gather_bytes;
}

#endif
