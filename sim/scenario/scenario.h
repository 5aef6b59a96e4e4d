/* sim/scenario/scenario.h: a scenario file (INI, read with libinih) turned into a checked Scenario.
 * Parsing, --set overrides, defaults, GPU presets and validation live here; what the values
 * mean for time and memory lives in plan/cost/memory. Keys and units: shared DESIGN.md. */
#ifndef PIPESIM_SCENARIO_H
#define PIPESIM_SCENARIO_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sim/sched/schedule.h"

#define SCN_NAME_MAX 64
#define SCN_PATH_MAX 1024
#define SCN_ERR_MAX 1024
#define SCN_MAX_STAGES 4096 // p
#define SCN_MAX_CHUNKS 64   // v
#define SCN_MAX_MICRO_BATCHES (1 << 20)
#define SCN_MAX_ITERATIONS 100000
#define SCN_MAX_OPS 200000000LL // p*v*m*iterations*2 compute ops simulated at most
#define SCN_LINE_MAX 65536             // bytes per scenario line or --set argument, newline excluded
#define SCN_FILE_MAX (16 * 1024 * 1024) // bytes per scenario file; a larger one is bad input (2)

typedef enum { DTYPE_BF16 = 0, DTYPE_FP16, DTYPE_FP32 } Dtype;
typedef enum { PART_UNIFORM = 0, PART_BALANCED, PART_EXPLICIT } PartitionKind;
/* Activation recomputation (Korthikanti et al. 2022): none keeps every activation; selective
 * recomputes the attention core (softmax, dropout, attention over V) in the backward; full
 * keeps only each layer's input and reruns the layer's forward in the backward. */
typedef enum { RECOMPUTE_NONE = 0, RECOMPUTE_SELECTIVE, RECOMPUTE_FULL } Recompute;
/* Optimizer state per parameter beside the dtype's weights and gradients: mixed-precision
 * Adam keeps fp32 master weights, momentum and variance; SGD with momentum keeps fp32 master
 * weights and momentum (for fp32 models no separate master copy). */
typedef enum { OPTIMIZER_ADAM = 0, OPTIMIZER_SGD } Optimizer;
/* The layer's parts (layer_ops.h has what each runs): the MLP as GPT's GELU between two
 * matrices, or SwiGLU's three (gate and up, SiLU(gate) x up, down); the norms as layer norm
 * (gamma, beta) or RMSNorm (gamma); attention as separate score, softmax and context kernels
 * that keep the s x s probabilities, or one fused flash-attention kernel that keeps only a
 * log-sum-exp per query; positions as a learned table of s x h or rotary (no parameters). */
typedef enum { MLP_GELU = 0, MLP_SWIGLU } MlpKind;
typedef enum { NORM_LAYERNORM = 0, NORM_RMSNORM } NormKind;
typedef enum { ATTENTION_STANDARD = 0, ATTENTION_FLASH } AttentionKind;
typedef enum { POSITION_LEARNED = 0, POSITION_ROPE } PositionKind;

typedef struct {
    char name[SCN_NAME_MAX];
    int64_t layers;     // transformer layers L
    int64_t hidden;     // h
    int64_t heads;      // a, query heads
    int64_t kv_heads;   // key/value heads, divides a (GQA; 1: MQA); default a
    int64_t head_dim;   // d_head; default h / a (then a divides h)
    int64_t seq_len;    // s, tokens per sample
    int64_t vocab;      // V
    int64_t ffn_hidden; // f, default 4h (swiglu: the width of each of gate and up)
    MlpKind mlp;        // default gelu
    NormKind norm;      // default layernorm
    AttentionKind attention; // default standard
    PositionKind position;   // default learned
    int tied_embeddings; // the LM head uses the input embedding's matrix (1, default) or its own
    int bias;           // the linear layers have biases (1, default: GPT) or none (Llama)
    Dtype dtype;        // activations and weights in compute
    Recompute recompute;
    Optimizer optimizer;
    double dropout;     // probability of the attention and hidden dropouts, [0, 1); default 0
    // Mixture of experts (layer_ops.h has what an MoE layer runs; 0 experts: every layer dense).
    // Layer i (0-based) is an MoE layer when experts > 0, i >= first_dense_layers and
    // i % moe_layer_freq == 0 (DeepSeek-V3's and Qwen-MoE's rule); its MLP is a router over
    // `experts` routed experts of which each token takes experts_per_token (top-k), plus
    // shared_experts that every token takes, each expert an MLP of expert_ffn_hidden (the
    // model's mlp kind). The other layers keep the dense MLP of ffn_hidden.
    int64_t experts;            // E, routed experts per MoE layer; default 0 (dense)
    int64_t experts_per_token;  // k, top-k; 1..E, required with experts > 0
    int64_t shared_experts;     // default 0
    int64_t expert_ffn_hidden;  // default ffn_hidden
    int64_t first_dense_layers; // default 0
    int64_t moe_layer_freq;     // default 1
    double capacity_factor;     // 0 (default): dropless; > 0: every expert computes exactly
                                //   capacity_factor x its balanced share of tokens (padded,
                                //   the excess dropped: GShard, Switch)
    double expert_hot_share;    // the hottest expert's share of the routed tokens, [1/E, 1];
                                //   0 (default): balanced, 1/E
} ScnModel;

typedef struct {
    int64_t micro_batch_size; // b, samples per micro-batch
    int64_t micro_batches;    // m per iteration
    int64_t iterations;       // default 1
} ScnBatch;

typedef struct {
    int64_t stages;                 // p, = devices in the pipeline
    char schedule[SCN_NAME_MAX];    // gpipe, 1f1b, interleaved, ... (see schedule.h)
    int64_t chunks;                 // v, model chunks per device, default 1
    PartitionKind partition;        // uniform (default), balanced, explicit
    int64_t *partition_layers;      // owned; explicit: p*v counts, one per virtual stage in
                                    // pipeline order (chunk-major: c*p + device); else NULL
    int64_t npartition;             // entries in partition_layers
    char schedule_file[SCN_PATH_MAX]; // custom: path to open (a relative path in the file is
                                      // taken from the scenario's directory), else ""
    double activation_limit;        // zb-auto: micro-batches' activations a device may hold;
                                    //   0 (default): what memory_gib leaves after the static part
} ScnPipeline;

/* Factors in each of [costs] scale_forward, scale_backward, scale_weight: one per kernel class
 * of cost.h's split (gemm, attention, memory, tp_comm, launch). */
#define COST_SCALES 5

/* How an op's time is priced (cost.h): each kernel of the layer's op list as a roofline
 * (default), or the whole stage's FLOPs at peak x efficiency (the old single guess). */
typedef enum { COST_ROOFLINE = 0, COST_FLAT } CostModelKind;

typedef struct {
    char gpu[SCN_NAME_MAX]; // preset name
    double peak_tflops;     // TFLOP/s, dense, for the model's dtype; default from preset
    CostModelKind cost_model;
    double efficiency;      // cost_model = flat: achieved fraction of peak, (0, 1]
    double gemm_efficiency; // roofline: fraction of peak the best-shaped large GEMMs reach,
                            //   (0, 1]; default from preset (published MAMF figures)
    double memory_efficiency; // roofline: fraction of hbm_bandwidth_gbs memory-bound kernels
                              //   reach, (0, 1]; default 0.9
    double launch_us;       // roofline: fixed cost of each kernel, µs; default from preset
    double op_overhead_us;  // roofline: fixed cost of each pipeline op (the host's dispatch
                            //   of a micro-batch chunk), µs; default 0
    int64_t sms;            // roofline: streaming multiprocessors (compute units) for wave
                            //   quantization; default from preset, 0: none
    double memory_gib;      // GiB per device; default from preset
    int64_t gpus_per_node;  // physical GPUs per node, default 8
    int64_t devices_per_gpu; // k pipeline devices sharing one physical GPU, each in its own SM
                             //   partition with 1/k of its peak and memory; default 1
    double hbm_bandwidth_gbs; // GB/s of device memory (the optimizer step's speed); preset
} ScnHardware;

/* One pipeline device as priced: [hardware]'s GPU unless a [device.N] section says otherwise.
 * A figure taken from [hardware] or a preset is the physical GPU's divided by
 * devices_per_gpu; peak_tflops and memory_gib written in [device.N] are the device's own. */
typedef struct {
    char gpu[SCN_NAME_MAX]; // [device.N] gpu preset, "" = [hardware]'s GPU
    double peak_tflops;     // TFLOP/s of this device (its share of the GPU), dense, model dtype
    double efficiency;      // cost_model = flat: achieved fraction of peak, (0, 1]
    double memory_gib;      // GiB this device may use
    double gemm_efficiency; // roofline: as [hardware]'s, for this device's GPU
    double hbm_bandwidth_gbs; // GB/s of this device's memory (its share of the GPU's)
    int64_t sms;            // SMs of this device (its share of the GPU's)
    int overridden;         // a [device.N] section names it (scenario_format writes it back)
} ScnDevice;

/* A [link.A-B] override: the link between devices a and b, both directions (a < b). A key not
 * given (< 0) keeps the figure the pair has without the override (same GPU, intra or inter). */
typedef struct {
    int32_t a, b;         // devices, a < b
    double bandwidth_gbs; // GB/s per direction, < 0: the pair's default
    double latency_us;    // µs per transfer, < 0: the pair's default
} ScnLink;

/* Parallelism around the pipeline: d data-parallel replicas of the whole pipeline and t-way
 * tensor parallelism inside each stage (devices in all: p x d x t). */
/* Algorithm of the data-parallel gradient all-reduce (cost.h has the formulas): NCCL's ring,
 * or its double binary tree. */
typedef enum { ALLREDUCE_RING = 0, ALLREDUCE_TREE } Allreduce;

typedef struct {
    int64_t data;        // d, pipeline replicas, default 1
    int64_t tensor;      // t, devices sharing each stage's layers, default 1, <= gpus_per_node
    Allreduce allreduce; // gradient all-reduce across the d replicas, default ring
    double tp_overlap;   // roofline: share of the tensor-parallel all-reduces hidden behind
                         //   the layer's compute, [0, 1], default 0 (Megatron-LM 2021)
    int sequence;        // sequence parallelism (Korthikanti et al. 2022) with t > 1: norms
                         //   and dropouts on s/t tokens, each all-reduce a reduce-scatter
                         //   and an all-gather; default 0
    int64_t zero;        // ZeRO stage over the d replicas (Rajbhandari et al. 2020), 0..3:
                         //   1 shards the optimizer state, 2 also the gradients, 3 also the
                         //   weights (memory.h, cost.h); needs d > 1 when > 0; default 0
    int sequence_given;  // the file or a --set gives sequence (else pplan turns it on with t > 1)
    int64_t context;     // c, context parallelism: every sample's tokens split over c GPUs
                         //   (2c chunks, rank i taking chunks i and 2c - 1 - i, so causal
                         //   attention's work is even), keys and values all-gathered as in
                         //   the Llama 3 report; default 1
    int64_t expert;      // e, expert parallelism: each MoE layer's E experts spread over e of
                         //   the d data-parallel ranks (consecutive data ranks: GPUs c t
                         //   apart), E/e each, tokens dispatched and combined by all-to-all;
                         //   divides d and E; default 1
    int64_t expert_node_limit; // DeepSeek-V3's node-limited routing: a token goes to at most
                         //   this many nodes, once over the network to each, then over NVLink
                         //   to its experts there (cost.h); 0 (default): every routed copy
                         //   sent on its own (Megatron-LM's all-to-all)
    int64_t expert_comm_sms; // SMs the all-to-all takes from computation while DualPipe's F&B
                         //   pairs overlap it (DeepSeek-V3: 20 of 132); default 20
} ScnParallel;

typedef struct {
    double intra_bandwidth_gbs; // GB/s (1e9 bytes/s) per direction between devices of a node
    double intra_latency_us;    // µs per transfer
    double inter_bandwidth_gbs; // GB/s per direction between nodes
    double inter_latency_us;    // µs per transfer
    double same_gpu_bandwidth_gbs; // GB/s of a device-memory copy between two partitions of
                                   //   one GPU (devices_per_gpu > 1); default: the preset's
                                   //   HBM bandwidth / 2 (a copy reads and writes each byte)
    double same_gpu_latency_us;    // µs per such copy (launch and event wait), default 5
    double collective_latency_us;  // µs per step of a collective inside a node (a ring's
                                   //   2(t-1) steps; NCCL over NVLink), default 2
    double collective_efficiency;  // fraction of the links' bandwidth collectives reach,
                                   //   (0, 1], default 0.8
} ScnNetwork;

/* A list of times in ms, e.g. one per pipeline stage; n = 0 when not given. */
typedef struct {
    double *ms;  // owned
    int64_t n;
} ScnTimeList;

typedef struct {
    // Each is < 0 when not given. Stage times are per micro-batch for a whole device's layers.
    double forward_ms;  // F
    double backward_ms; // B (input-gradient part)
    double weight_ms;   // W (weight-gradient part); 0 when forward_ms is given and this is not
    double comm_ms;     // fixed time of every cross-device transfer (replaces alpha-beta)
    double overlap_fb_ms; // one overlapped forward-and-backward pair (DualPipe's F&B) for a
                          //   device's layers, each of v chunks 1/v; -1: F + backward
    double optimizer_ms;  // optimizer step of a device's layers (all chunks), once an
                          //   iteration after the all-reduces; -1: memory-bound estimate
    double allreduce_ms;  // fixed time of each chunk's gradient all-reduce; -1: alpha-beta
    ScnTimeList stage_forward, stage_backward, stage_weight; // per pipeline stage (p*v
                          //   entries in stage order, each that stage's op, no division by
                          //   v); when given they replace forward_ms, backward_ms, weight_ms
    ScnTimeList scale_forward, scale_backward, scale_weight; // roofline: factors on the time
                          //   of each kernel class of the pass (COST_SPLIT entries: gemm,
                          //   attention, memory, tp_comm, launch), e.g. from pcalibrate;
                          //   n = 0: all 1
} ScnCosts;

/* Op-time jitter (sim/engine/variability.h): none, or every compute op's time times a factor of
 * mean 1 and coefficient of variation jitter_cv, normal (its deviate clamped to +-3, so
 * jitter_cv <= 0.3 keeps every op above 10% of its time) or lognormal. */
typedef enum { JITTER_NONE = 0, JITTER_NORMAL, JITTER_LOGNORMAL } Jitter;

/* [variability]: jitter, one straggler device, one device failure (sim/engine/variability.h). All
 * off by default, and then the run is exactly the cost model's. */
typedef struct {
    Jitter jitter;
    double jitter_cv;          // coefficient of variation of each op's time, >= 0
    int64_t seed;              // of the counter-based random numbers, 0..2^53
    int64_t straggler_device;  // -1: none
    double straggler_slowdown; // factor >= 1 on the times of its ops that start in the window
    double straggler_start_ms; // window start, ms since the run's start
    double straggler_end_ms;   // window end (excluded), ms since the run's start; < 0: the end
    int64_t failure_device;    // -1: none
    double failure_at_ms;      // ms since the run's start; < 0: not given
    double restart_ms;         // ms to restart from the checkpoint after the failure
} ScnVariability;

typedef struct {
    ScnModel model;
    ScnBatch batch;
    ScnPipeline pipeline;
    ScnParallel parallel;
    ScnHardware hw;
    ScnNetwork net;
    ScnCosts costs;
    ScnDevice *device;       // owned: [stages] every pipeline device, resolved
    ScnLink *link;           // owned: [nlinks] [link.A-B] overrides, sorted by (a, b)
    int64_t nlinks;
    ScnVariability var;
    char path[SCN_PATH_MAX]; // file name as given, used in messages
    char hf_config[SCN_PATH_MAX]; // [model] hf_config: the Hugging Face config.json whose
                                  //   fields gave the [model] keys the scenario did not
                                  //   (absolute when it exists), "" none; where the values
                                  //   came from, not a value: scenario_format writes it as a
                                  //   comment beside the values it gave
    char *text;              // owned: the file's bytes as read (NUL-terminated)
} Scenario;

/* scenario_load reads path, applies the nsets overrides ("section.key=value", applied in
 * order after the file, so the last one wins), reads [model] hf_config when given (a Hugging
 * Face config.json, sim/scenario/hf_config.h: its fields give the [model] keys that neither
 * the file nor an override gives), fills defaults and presets, and validates.
 * Returns 0 with *out filled (release with scenario_free), 2 for bad input (err holds one
 * line "FILE:LINE: what is wrong; what would be right", "--set ARG: ..." for an override,
 * "CONFIG.json: FIELD: ..." for a value the config gave; an hf_config that cannot be read is
 * bad input too, as a schedule_file), or 1 when the file cannot be read (err says why). *out
 * is always safe to free. */
int scenario_load(const char *path, const char *const *sets, int nsets, Scenario *out,
                  char err[SCN_ERR_MAX]);

/* scenario_parse is scenario_load on text already in memory; name stands in for the path. */
int scenario_parse(const char *text, const char *name, const char *const *sets, int nsets,
                   Scenario *out, char err[SCN_ERR_MAX]);

void scenario_free(Scenario *s);

/* The schedule's parameters as this scenario gives them. */
SchedParams scenario_sched_params(const Scenario *s);

/* scenario_format writes every key with its resolved value as INI text (defaults and
 * presets filled in), then a [device.N] section with the resolved figures of every device a
 * section or --set named, and every [link.A-B] (a < b); scenario_parse reads it back to the
 * same Scenario. Returns a malloc'd string, or NULL when out of memory. */
char *scenario_format(const Scenario *s);

/* Bytes per element of a dtype (2 for bf16/fp16, 4 for fp32) and its name. */
int dtype_bytes(Dtype d);
const char *dtype_name(Dtype d);
const char *recompute_name(Recompute r);
const char *optimizer_name(Optimizer o);
const char *allreduce_name(Allreduce a);
const char *mlp_name(MlpKind k);
const char *norm_name(NormKind k);
const char *attention_name(AttentionKind k);
const char *position_name(PositionKind k);
/* kv_heads and head_dim, read as their defaults (heads, hidden / heads) when 0 (a ScnModel
 * built by hand), and query heads x head dimension: attention's width (h for GPT). */
static inline int64_t scenario_kv_heads(const ScnModel *m) {
    return m->kv_heads > 0 ? m->kv_heads : m->heads;
}
static inline int64_t scenario_head_dim(const ScnModel *m) {
    return m->head_dim > 0 ? m->head_dim : m->heads > 0 ? m->hidden / m->heads : 0;
}
static inline int64_t scenario_attn_width(const ScnModel *m) {
    return m->heads * scenario_head_dim(m);
}
/* Mixture of experts: whether layer i is an MoE layer, how many of the n layers from `first`
 * are, and e (1 when not set). */
static inline int scenario_is_moe_layer(const ScnModel *m, int64_t i) {
    int64_t freq = m->moe_layer_freq > 1 ? m->moe_layer_freq : 1;
    return m->experts > 0 && i >= m->first_dense_layers && i % freq == 0;
}
static inline int64_t scenario_moe_layers(const ScnModel *m, int64_t first, int64_t n) {
    int64_t k = 0;
    for (int64_t i = first; m->experts > 0 && i < first + n; i++) k += scenario_is_moe_layer(m, i);
    return k;
}
static inline int64_t scenario_expert(const Scenario *s) {
    return s->parallel.expert > 1 ? s->parallel.expert : 1;
}
/* d and t, read as 1 when not set (a Scenario built by hand, zeroed), and the devices in
 * all, p x d x t. */
static inline int64_t scenario_data(const Scenario *s) {
    return s->parallel.data > 1 ? s->parallel.data : 1;
}
static inline int64_t scenario_tensor(const Scenario *s) {
    return s->parallel.tensor > 1 ? s->parallel.tensor : 1;
}
static inline int64_t scenario_context(const Scenario *s) {
    return s->parallel.context > 1 ? s->parallel.context : 1;
}
static inline int64_t scenario_devices_total(const Scenario *s) {
    return s->pipeline.stages * scenario_data(s) * scenario_tensor(s) * scenario_context(s);
}
/* The GPUs that hold the same weights of a stage and tensor rank and sum their gradients:
 * the d replicas times the c context ranks (Megatron-LM's data-parallel group with context
 * parallelism); ZeRO shards over them. */
static inline int64_t scenario_dp_group(const Scenario *s) {
    return scenario_data(s) * scenario_context(s);
}
/* The ZeRO stage the run shards with: parallel.zero over the d c > 1 GPUs of the gradient
 * group, else 0 (nothing to shard over; the parser refuses zero > 0 with d c = 1, a
 * hand-built Scenario may have it). */
static inline int64_t scenario_zero(const Scenario *s) {
    return scenario_dp_group(s) > 1 ? s->parallel.zero : 0;
}
/* Whether iterations end with the data-parallel tail (all-reduces, optimizer step). */
static inline int scenario_has_tail(const Scenario *s) {
    return scenario_dp_group(s) > 1 || s->costs.optimizer_ms > 0;
}
const char *jitter_name(Jitter j);
const char *cost_model_name(CostModelKind k);

/* GPU presets: peak dense TFLOP/s for 16-bit and for fp32 (TF32 tensor cores) inputs, memory,
 * and default link figures. gpu_preset_find returns NULL for an unknown name. */
typedef struct {
    const char *name;
    double peak_tflops_16; // dense bf16/fp16 TFLOP/s
    double peak_tflops_32; // dense TF32 TFLOP/s, used for dtype = fp32
    double memory_gib;
    double intra_bandwidth_gbs; // per direction (NVLink)
    double inter_bandwidth_gbs; // per GPU NIC
    double hbm_bandwidth_gbs;   // device memory bandwidth (the optimizer step's speed); a
                                //   same-GPU copy gets half of it
    int sms;                    // streaming multiprocessors (AMD: compute units); 0 for cpu
    double gemm_efficiency;     // measured best-shape bf16 GEMM TFLOP/s / peak (MAMF)
    double launch_us;           // fixed cost of a kernel launch, µs
} GpuPreset;

const GpuPreset *gpu_preset_find(const char *name);
/* Comma-separated list of preset names, for messages and --help. */
const char *gpu_preset_names(void);

#endif
