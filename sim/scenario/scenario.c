/* sim/scenario/scenario.c: scenario files read with libinih, --set overrides, defaults, GPU presets and
 * validation with "FILE:LINE: what is wrong; what would be right" messages. One table row per
 * key drives parsing, overrides, defaults, formatting and messages. Nothing here knows about
 * time or memory; plan/cost/memory give the values their meaning. */
#define _XOPEN_SOURCE 700 // realpath
#include "sim/scenario/scenario.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "sim/scenario/hf_config.h"
#include "sim/sched/schedule.h"

#define WHERE_MAX (SCN_PATH_MAX + 640)  // "FILE:LINE" or "--set ARG" (ARG cut at 600 bytes)

/* Dense peak TFLOP/s from the vendors' datasheets (bf16/fp16 tensor cores without sparsity;
 * TF32 tensor cores for fp32, except V100, which has no TF32: its fp32 peak), memory in GiB as
 * sold, NVLink/xGMI/PCIe bandwidth per direction and the per-GPU network port (GB/s):
 *   v100       NVIDIA V100 SXM2 datasheet: 125 (fp16), 15.7 (fp32), 32 GB, NVLink 300 GB/s
 *              total = 150 per direction; 100 Gb/s InfiniBand EDR port = 12.5 GB/s.
 *   a100       NVIDIA A100 datasheet (SXM 80GB): 312 bf16, 156 TF32, NVLink 600 GB/s total;
 *   a100-40g   the same for the 40 GB part; 200 Gb/s HDR port = 25 GB/s.
 *   h100       NVIDIA H100 SXM5 datasheet: 989 bf16, 495 TF32, 80 GB, NVLink 900 GB/s total;
 *              400 Gb/s NDR port = 50 GB/s.
 *   h100-pcie  NVIDIA H100 PCIe datasheet: 756 bf16, 378 TF32; PCIe Gen5 x16 64 GB/s.
 *   h200       NVIDIA H200 SXM datasheet: H100 compute, 141 GB (140 used), NVLink as H100.
 *   b200       NVIDIA DGX B200 / HGX B200 datasheet per GPU: 2.25 PF bf16, 1.1 PF TF32,
 *              180 GB, NVLink 5 1.8 TB/s total.
 *   mi300x     AMD Instinct MI300X datasheet: 1307 bf16, 653.7 TF32, 192 GB; xGMI peer
 *              link 64 GB/s per direction.
 *   cpu        a placeholder (1 TFLOP/s, 16 GiB, 10 GB/s); pexec calibration replaces it.
 * Then HBM bandwidth from the same datasheets (GB/s): V100 900, A100 80GB 2039,
 * A100 40GB 1555, H100 SXM 3350, H100 PCIe 2000, H200 4800, B200 8000, MI300X 5300; cpu 50
 * (a placeholder). The roofline's figures (cost.h):
 *   SMs (AMD: compute units) from the same datasheets and whitepapers: V100 80, A100 108,
 *     H100 SXM 132, H100 PCIe 114, H200 132, B200 148, MI300X 304;
 *   gemm_efficiency: the best-shaped bf16 GEMM's measured TFLOP/s over the peak, from the
 *     "Maximum Achievable Matmul FLOPS" table of S. Bekman, Machine Learning Engineering
 *     (github.com/stas00/ml-engineering, compute/accelerator): A100 SXM 271.2 / 312 = 0.869,
 *     H100 SXM 794.5 / 989 = 0.803 ("H200 is the same"), B200 SXM 1745 / 2250 = 0.776,
 *     MI300X 668.4 / 1300 = 0.514 (with PyTorch TunableOp); V100 and H100 PCIe are not
 *     measured there: 0.80, an assumption;
 *   launch_us: 4 µs a kernel, the order of a CUDA launch without graphs (NVIDIA, "Getting
 *     Started with CUDA Graphs", 2019, measures a few µs per short kernel); an assumption
 *     for each, which pcalibrate refits. */
static const GpuPreset PRESETS[] = {
    {"v100", 125, 15.7, 32, 150, 12.5, 900, 80, 0.80, 4},
    {"a100", 312, 156, 80, 300, 25, 2039, 108, 0.869, 4},
    {"a100-40g", 312, 156, 40, 300, 25, 1555, 108, 0.869, 4},
    {"h100", 989, 495, 80, 450, 50, 3350, 132, 0.803, 4},
    {"h100-pcie", 756, 378, 80, 64, 50, 2000, 114, 0.80, 4},
    {"h200", 989, 495, 140, 450, 50, 4800, 132, 0.803, 4},
    {"b200", 2250, 1100, 180, 900, 50, 8000, 148, 0.776, 4},
    {"mi300x", 1307, 654, 192, 64, 50, 5300, 304, 0.514, 4},
    {"cpu", 1, 1, 16, 10, 1.25, 50, 0, 1, 0},
};
#define NPRESETS (sizeof PRESETS / sizeof PRESETS[0])

const GpuPreset *gpu_preset_find(const char *name) {
    for (size_t i = 0; i < NPRESETS; i++)
        if (strcmp(PRESETS[i].name, name) == 0) return &PRESETS[i];
    return NULL;
}

const char *gpu_preset_names(void) {
    static char names[256];
    if (!names[0])
        for (size_t i = 0; i < NPRESETS; i++)
            strcat(strcat(names, i ? ", " : ""), PRESETS[i].name);
    return names;
}

static const char *const DTYPES[] = {"bf16", "fp16", "fp32"};
int dtype_bytes(Dtype d) { return d == DTYPE_FP32 ? 4 : 2; }
const char *dtype_name(Dtype d) { return (unsigned)d < 3 ? DTYPES[d] : "?"; }
static const char *const RECOMPUTES[] = {"none", "selective", "full"};
const char *recompute_name(Recompute r) { return (unsigned)r < 3 ? RECOMPUTES[r] : "?"; }
static const char *const OPTIMIZERS[] = {"adam", "sgd"};
const char *optimizer_name(Optimizer o) { return (unsigned)o < 2 ? OPTIMIZERS[o] : "?"; }
static const char *const ALLREDUCES[] = {"ring", "tree"};
const char *allreduce_name(Allreduce a) { return (unsigned)a < 2 ? ALLREDUCES[a] : "?"; }
static const char *const JITTERS[] = {"none", "normal", "lognormal"};
const char *jitter_name(Jitter j) { return (unsigned)j < 3 ? JITTERS[j] : "?"; }
static const char *const COST_MODELS[] = {"roofline", "flat"};
const char *cost_model_name(CostModelKind k) { return (unsigned)k < 2 ? COST_MODELS[k] : "?"; }
static const char *const MLPS[] = {"gelu", "swiglu"};
const char *mlp_name(MlpKind k) { return (unsigned)k < 2 ? MLPS[k] : "?"; }
static const char *const NORMS[] = {"layernorm", "rmsnorm"};
const char *norm_name(NormKind k) { return (unsigned)k < 2 ? NORMS[k] : "?"; }
static const char *const ATTENTIONS[] = {"standard", "flash"};
const char *attention_name(AttentionKind k) { return (unsigned)k < 2 ? ATTENTIONS[k] : "?"; }
static const char *const POSITIONS[] = {"learned", "rope"};
const char *position_name(PositionKind k) { return (unsigned)k < 2 ? POSITIONS[k] : "?"; }
static const char *const BOOLS[] = {"false", "true"};

/* ---- the key table ------------------------------------------------------------------------ */

typedef enum {
    T_INT, T_DOUBLE, T_NAME, T_DTYPE, T_RECOMPUTE, T_OPTIMIZER, T_PARTITION, T_SCHEDULE, T_GPU,
    T_PATH, T_TIMES, T_ALLREDUCE, T_JITTER, T_COST_MODEL,
    T_BOOL, T_MLP, T_NORM, T_ATTENTION, T_POSITION, // CHOICES: one of a list of names, an int
    T_DEVICE // T_DEVICE: a device number, -1 = none
} KeyType;
enum { RANGE_CLOSED = 0, RANGE_OPEN_LO = 1 }; // lo < x instead of lo <= x

typedef struct {
    const char *section, *key;
    KeyType type;
    size_t offset;       // field in Scenario
    const char *def;     // default as written in a file; NULL: required, or derived from other
                         // keys in fill_derived (see the comment on the row)
    bool required;
    double lo, hi;       // allowed range of numbers
    int range;
    const char *example; // a good value, for messages
} KeyDef;

/* Keys whose value is one of a list of names, kept as its index (an int field). */
typedef struct {
    KeyType type;
    const char *kind; // in messages
    const char *const *names;
    int n;
} Choice;
static const Choice CHOICES[] = {
    {T_BOOL, "value", BOOLS, 2},
    {T_MLP, "mlp", MLPS, 2},
    {T_NORM, "norm", NORMS, 2},
    {T_ATTENTION, "attention", ATTENTIONS, 2},
    {T_POSITION, "position", POSITIONS, 2},
};

static const Choice *choice_of(KeyType t) {
    for (size_t i = 0; i < sizeof CHOICES / sizeof *CHOICES; i++)
        if (CHOICES[i].type == t) return &CHOICES[i];
    return NULL;
}

#define F(field) offsetof(Scenario, field)
static const KeyDef KEYS[] = {
    {"model", "name", T_NAME, F(model.name), NULL, false, 0, 0, 0, "gpt13b"}, // file's basename
    {"model", "layers", T_INT, F(model.layers), NULL, true, 1, 1e5, 0, "40"},
    {"model", "hidden", T_INT, F(model.hidden), NULL, true, 1, 1 << 20, 0, "5120"},
    {"model", "heads", T_INT, F(model.heads), NULL, true, 1, 1 << 16, 0, "40"},
    {"model", "kv_heads", T_INT, F(model.kv_heads), NULL, false, 1, 1 << 16, 0, "8"}, // heads
    {"model", "head_dim", T_INT, F(model.head_dim), NULL, false, 1, 1 << 16, 0, "128"}, // hidden / heads
    {"model", "seq_len", T_INT, F(model.seq_len), NULL, true, 1, 1 << 24, 0, "2048"},
    {"model", "vocab", T_INT, F(model.vocab), NULL, true, 1, 1 << 24, 0, "51200"},
    {"model", "ffn_hidden", T_INT, F(model.ffn_hidden), NULL, false, 1, 1 << 24, 0, "20480"}, // 4h
    {"model", "mlp", T_MLP, F(model.mlp), "gelu", false, 0, 0, 0, "swiglu"},
    {"model", "norm", T_NORM, F(model.norm), "layernorm", false, 0, 0, 0, "rmsnorm"},
    {"model", "attention", T_ATTENTION, F(model.attention), "standard", false, 0, 0, 0, "flash"},
    {"model", "position", T_POSITION, F(model.position), "learned", false, 0, 0, 0, "rope"},
    {"model", "tied_embeddings", T_BOOL, F(model.tied_embeddings), "true", false, 0, 0, 0, "false"},
    {"model", "bias", T_BOOL, F(model.bias), "true", false, 0, 0, 0, "false"},
    {"model", "dtype", T_DTYPE, F(model.dtype), "bf16", false, 0, 0, 0, "bf16"},
    {"model", "recompute", T_RECOMPUTE, F(model.recompute), "none", false, 0, 0, 0, "selective"},
    {"model", "optimizer", T_OPTIMIZER, F(model.optimizer), "adam", false, 0, 0, 0, "adam"},
    {"model", "dropout", T_DOUBLE, F(model.dropout), "0", false, 0, 0.95, 0, "0.1"},
    {"model", "experts", T_INT, F(model.experts), "0", false, 0, 1 << 16, 0, "256"},
    {"model", "experts_per_token", T_INT, F(model.experts_per_token), "0", false, 0, 1 << 16, 0, "8"},
    {"model", "shared_experts", T_INT, F(model.shared_experts), "0", false, 0, 1 << 16, 0, "1"},
    {"model", "expert_ffn_hidden", T_INT, F(model.expert_ffn_hidden), NULL, false, 1, 1 << 24, 0, "2048"}, // ffn_hidden
    {"model", "first_dense_layers", T_INT, F(model.first_dense_layers), "0", false, 0, 1e5, 0, "3"},
    {"model", "moe_layer_freq", T_INT, F(model.moe_layer_freq), "1", false, 1, 1e5, 0, "1"},
    {"model", "capacity_factor", T_DOUBLE, F(model.capacity_factor), "0", false, 0, 1e4, 0, "1.25"},
    {"model", "expert_hot_share", T_DOUBLE, F(model.expert_hot_share), "0", false, 0, 1, 0, "0.01"},
    {"model", "hf_config", T_PATH, F(hf_config), NULL, false, 0, 0, 0, "llama3-8b.json"}, // none
    {"batch", "micro_batch_size", T_INT, F(batch.micro_batch_size), "1", false, 1, 1 << 16, 0, "1"},
    {"batch", "micro_batches", T_INT, F(batch.micro_batches), NULL, true, 1, SCN_MAX_MICRO_BATCHES, 0, "32"},
    {"batch", "iterations", T_INT, F(batch.iterations), "1", false, 1, SCN_MAX_ITERATIONS, 0, "1"},
    {"pipeline", "stages", T_INT, F(pipeline.stages), NULL, true, 1, SCN_MAX_STAGES, 0, "8"},
    {"pipeline", "schedule", T_SCHEDULE, F(pipeline.schedule), NULL, true, 0, 0, 0, "1f1b"},
    {"pipeline", "chunks", T_INT, F(pipeline.chunks), "1", false, 1, SCN_MAX_CHUNKS, 0, "1"},
    {"pipeline", "partition", T_PARTITION, F(pipeline.partition), "uniform", false, 0, 0, 0, "uniform"},
    {"pipeline", "schedule_file", T_PATH, F(pipeline.schedule_file), NULL, false, 0, 0, 0, "my.sched"}, // none
    {"pipeline", "activation_limit", T_DOUBLE, F(pipeline.activation_limit), "0", false, 0, 1 << 20, 0, "16"},
    {"parallel", "data", T_INT, F(parallel.data), "1", false, 1, 1 << 20, 0, "8"},
    {"parallel", "tensor", T_INT, F(parallel.tensor), "1", false, 1, 1 << 10, 0, "8"},
    {"parallel", "allreduce", T_ALLREDUCE, F(parallel.allreduce), "ring", false, 0, 0, 0, "ring"},
    {"parallel", "tp_overlap", T_DOUBLE, F(parallel.tp_overlap), "0", false, 0, 1, 0, "0.5"},
    {"parallel", "sequence", T_BOOL, F(parallel.sequence), "false", false, 0, 0, 0, "true"},
    {"parallel", "zero", T_INT, F(parallel.zero), "0", false, 0, 3, 0, "1"},
    {"parallel", "context", T_INT, F(parallel.context), "1", false, 1, 1 << 16, 0, "16"},
    {"parallel", "expert", T_INT, F(parallel.expert), "1", false, 1, 1 << 16, 0, "64"},
    {"parallel", "expert_node_limit", T_INT, F(parallel.expert_node_limit), "0", false, 0, 1 << 16, 0, "4"},
    {"parallel", "expert_comm_sms", T_INT, F(parallel.expert_comm_sms), "20", false, 0, 1 << 20, 0, "20"},
    {"hardware", "gpu", T_GPU, F(hw.gpu), NULL, false, 0, 0, 0, "h100"}, // none
    {"hardware", "peak_tflops", T_DOUBLE, F(hw.peak_tflops), NULL, false, 0, 1e6, RANGE_OPEN_LO, "989"}, // preset
    {"hardware", "cost_model", T_COST_MODEL, F(hw.cost_model), "roofline", false, 0, 0, 0, "roofline"},
    {"hardware", "efficiency", T_DOUBLE, F(hw.efficiency), "0.5", false, 0, 1, RANGE_OPEN_LO, "0.5"},
    {"hardware", "gemm_efficiency", T_DOUBLE, F(hw.gemm_efficiency), NULL, false, 0, 1, RANGE_OPEN_LO, "0.8"}, // preset or 0.8
    {"hardware", "memory_efficiency", T_DOUBLE, F(hw.memory_efficiency), "0.9", false, 0, 1, RANGE_OPEN_LO, "0.9"},
    {"hardware", "launch_us", T_DOUBLE, F(hw.launch_us), NULL, false, 0, 1e6, 0, "4"}, // preset or 4
    {"hardware", "op_overhead_us", T_DOUBLE, F(hw.op_overhead_us), "0", false, 0, 1e9, 0, "20"},
    {"hardware", "sms", T_INT, F(hw.sms), NULL, false, 0, 1 << 20, 0, "132"}, // preset or 0
    {"hardware", "memory_gib", T_DOUBLE, F(hw.memory_gib), NULL, false, 0, 1e6, RANGE_OPEN_LO, "80"}, // preset
    {"hardware", "gpus_per_node", T_INT, F(hw.gpus_per_node), "8", false, 1, 1 << 20, 0, "8"},
    {"hardware", "hbm_bandwidth_gbs", T_DOUBLE, F(hw.hbm_bandwidth_gbs), NULL, false, 0, 1e6, RANGE_OPEN_LO, "3350"}, // preset or 1000
    {"hardware", "devices_per_gpu", T_INT, F(hw.devices_per_gpu), "1", false, 1, SCN_MAX_STAGES, 0, "2"},
    {"network", "intra_bandwidth_gbs", T_DOUBLE, F(net.intra_bandwidth_gbs), NULL, false, 0, 1e6, RANGE_OPEN_LO, "450"}, // preset or 100
    {"network", "intra_latency_us", T_DOUBLE, F(net.intra_latency_us), "10", false, 0, 1e9, 0, "10"},
    {"network", "inter_bandwidth_gbs", T_DOUBLE, F(net.inter_bandwidth_gbs), NULL, false, 0, 1e6, RANGE_OPEN_LO, "50"}, // preset or 25
    {"network", "inter_latency_us", T_DOUBLE, F(net.inter_latency_us), "20", false, 0, 1e9, 0, "20"},
    {"network", "same_gpu_bandwidth_gbs", T_DOUBLE, F(net.same_gpu_bandwidth_gbs), NULL, false, 0, 1e6, RANGE_OPEN_LO, "1675"}, // preset HBM / 2, or 1000
    {"network", "same_gpu_latency_us", T_DOUBLE, F(net.same_gpu_latency_us), "5", false, 0, 1e9, 0, "5"},
    {"network", "collective_latency_us", T_DOUBLE, F(net.collective_latency_us), "2", false, 0, 1e9, 0, "2"},
    {"network", "collective_efficiency", T_DOUBLE, F(net.collective_efficiency), "0.8", false, 0, 1, RANGE_OPEN_LO, "0.8"},
    // [costs]: -1 stands for "not given" (the analytic model is used); weight_ms becomes 0
    // when forward_ms is given without it.
    {"costs", "forward_ms", T_DOUBLE, F(costs.forward_ms), "-1", false, 0, 1e9, RANGE_OPEN_LO, "12.5"},
    {"costs", "backward_ms", T_DOUBLE, F(costs.backward_ms), "-1", false, 0, 1e9, 0, "25"},
    {"costs", "weight_ms", T_DOUBLE, F(costs.weight_ms), "-1", false, 0, 1e9, 0, "12"},
    {"costs", "comm_ms", T_DOUBLE, F(costs.comm_ms), "-1", false, 0, 1e9, 0, "0.05"},
    {"costs", "overlap_fb_ms", T_DOUBLE, F(costs.overlap_fb_ms), "-1", false, 0, 1e9, RANGE_OPEN_LO, "30"},
    {"costs", "optimizer_ms", T_DOUBLE, F(costs.optimizer_ms), "-1", false, 0, 1e9, 0, "5"},
    {"costs", "allreduce_ms", T_DOUBLE, F(costs.allreduce_ms), "-1", false, 0, 1e9, 0, "2"},
    {"costs", "stage_forward_ms", T_TIMES, F(costs.stage_forward), NULL, false, 0, 1e9, 0, "3,3,4,4"}, // none
    {"costs", "stage_backward_ms", T_TIMES, F(costs.stage_backward), NULL, false, 0, 1e9, 0, "6,6,8,8"}, // none
    {"costs", "stage_weight_ms", T_TIMES, F(costs.stage_weight), NULL, false, 0, 1e9, 0, "3,3,4,4"}, // none
    {"costs", "scale_forward", T_TIMES, F(costs.scale_forward), NULL, false, 0, 1e9, 0, "1.2,2,5,1,1"}, // none
    {"costs", "scale_backward", T_TIMES, F(costs.scale_backward), NULL, false, 0, 1e9, 0, "1.2,2,5,1,1"}, // none
    {"costs", "scale_weight", T_TIMES, F(costs.scale_weight), NULL, false, 0, 1e9, 0, "1.2,2,5,1,1"}, // none
    // [variability]: -1 stands for "none" (devices) and "not given" (times)
    {"variability", "jitter", T_JITTER, F(var.jitter), "none", false, 0, 0, 0, "lognormal"},
    {"variability", "jitter_cv", T_DOUBLE, F(var.jitter_cv), "0", false, 0, 4, 0, "0.05"},
    {"variability", "seed", T_INT, F(var.seed), "1", false, 0, 0x1p53, 0, "42"},
    {"variability", "straggler_device", T_DEVICE, F(var.straggler_device), "-1", false, 0, SCN_MAX_STAGES - 1, 0, "3"},
    {"variability", "straggler_slowdown", T_DOUBLE, F(var.straggler_slowdown), "1", false, 1, 1000, 0, "2"},
    {"variability", "straggler_start_ms", T_DOUBLE, F(var.straggler_start_ms), "0", false, 0, 1e12, 0, "0"},
    {"variability", "straggler_end_ms", T_DOUBLE, F(var.straggler_end_ms), "-1", false, 0, 1e12, RANGE_OPEN_LO, "1000"}, // the end of the run
    {"variability", "failure_device", T_DEVICE, F(var.failure_device), "-1", false, 0, SCN_MAX_STAGES - 1, 0, "0"},
    {"variability", "failure_at_ms", T_DOUBLE, F(var.failure_at_ms), "-1", false, 0, 1e12, 0, "500"},
    {"variability", "restart_ms", T_DOUBLE, F(var.restart_ms), "0", false, 0, 1e12, 0, "30000"},
};
#undef F
#define NKEYS ((int)(sizeof KEYS / sizeof KEYS[0]))

/* Numbered sections: [device.N] (N = pipeline device 0..p-1) and [link.A-B] (devices A and
 * B, both directions). Their rows' offsets are into ScnDevice and ScnLink. A value is kept as
 * text until the whole file and every --set are read, since p may come later. */
typedef enum { SEC_DEVICE = 1, SEC_LINK = 2 } NumberedKind;
#define D(field) offsetof(ScnDevice, field)
static const KeyDef DEVICE_KEYS[] = {
    {"device.N", "gpu", T_GPU, D(gpu), NULL, false, 0, 0, 0, "a100"},
    {"device.N", "peak_tflops", T_DOUBLE, D(peak_tflops), NULL, false, 0, 1e6, RANGE_OPEN_LO, "312"},
    {"device.N", "efficiency", T_DOUBLE, D(efficiency), NULL, false, 0, 1, RANGE_OPEN_LO, "0.5"},
    {"device.N", "memory_gib", T_DOUBLE, D(memory_gib), NULL, false, 0, 1e6, RANGE_OPEN_LO, "80"},
    {"device.N", "gemm_efficiency", T_DOUBLE, D(gemm_efficiency), NULL, false, 0, 1, RANGE_OPEN_LO, "0.8"},
    {"device.N", "hbm_bandwidth_gbs", T_DOUBLE, D(hbm_bandwidth_gbs), NULL, false, 0, 1e6, RANGE_OPEN_LO, "2039"},
    {"device.N", "sms", T_INT, D(sms), NULL, false, 0, 1 << 20, 0, "108"},
};
#undef D
static const KeyDef LINK_KEYS[] = {
    {"link.A-B", "bandwidth_gbs", T_DOUBLE, offsetof(ScnLink, bandwidth_gbs), NULL, false, 0, 1e6, RANGE_OPEN_LO, "25"},
    {"link.A-B", "latency_us", T_DOUBLE, offsetof(ScnLink, latency_us), NULL, false, 0, 1e9, 0, "10"},
};
#define NDEVICE_KEYS ((int)(sizeof DEVICE_KEYS / sizeof DEVICE_KEYS[0]))
#define NLINK_KEYS ((int)(sizeof LINK_KEYS / sizeof LINK_KEYS[0]))

/* One key of a numbered section, as given. */
typedef struct {
    int kind;     // NumberedKind
    int64_t a, b; // device (b = 0), or the link's two devices as written
    int key;      // row in DEVICE_KEYS or LINK_KEYS
    int line;     // > 0 file line, < 0: -(index+1) of --set
    int seq;      // order given (file, then --set): a later --set wins
    char *value;  // owned copy
} Numbered;
static const char *const SECTIONS[] = {"model", "batch", "pipeline", "parallel", "hardware",
                                       "network", "costs", "variability"};
#define NSECTIONS ((int)(sizeof SECTIONS / sizeof SECTIONS[0]))
#define SECTION_LIST "[model], [batch], [pipeline], [parallel], [hardware], [network], [costs], " \
                     "[variability], [device.N] and [link.A-B]"

/* ---- parser state ------------------------------------------------------------------------- */

typedef struct {
    Scenario *s;
    const char *name;                // file name in messages
    const char *text;                // whole file
    size_t pos;                      // reader position in text
    int line;                        // line the reader served last
    int key_line[NKEYS];             // 0 not given, > 0 file line, < 0: -(index+1) of --set
    const char *const *sets;         // the --set arguments
    int section_line[NSECTIONS];     // first header line of each section, 0 when absent
    char *err;                       // SCN_ERR_MAX bytes; first error wins
    bool failed;
    bool in_file;                    // values come from the file (not --set)
    Numbered *num;                   // owned: keys of [device.N] and [link.A-B] sections
    int nnum, num_cap;
    const char *hf_field[NKEYS];     // the config.json field that gave the key, or NULL
    char path_shown[SCN_PATH_MAX];   // the last path set, as joined before realpath
    char hf_shown[SCN_PATH_MAX];     // hf_config as the messages name it
    int64_t hf_window;               // the config's sliding window (tokens), 0: none
    int64_t hf_max_position;         // its max_position_embeddings, 0: none
} Parser;

static int fail(Parser *P, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Records the first error as "WHERE: message", control characters the user wrote shown as
 * '?' so the message stays one printable line. Returns 0 (inih's "stop this line"). */
static int fail(Parser *P, const char *where, const char *fmt, ...) {
    if (P->failed) return 0;
    P->failed = true;
    int n = snprintf(P->err, SCN_ERR_MAX, "%s: ", where);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && n < SCN_ERR_MAX) vsnprintf(P->err + n, (size_t)(SCN_ERR_MAX - n), fmt, ap);
    va_end(ap);
    for (char *c = P->err; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
    return 0;
}

/* Records msg, already "WHERE: what; fix", as the first error (hf_config.h's messages). */
static int fail_text(Parser *P, const char *msg) {
    char where[WHERE_MAX];
    const char *colon = strstr(msg, ": ");
    size_t n = colon ? (size_t)(colon - msg) : 0;
    snprintf(where, sizeof where, "%.*s", (int)(n < sizeof where ? n : sizeof where - 1), msg);
    return fail(P, where, "%s", colon ? colon + 2 : msg);
}

static const char *where_line(const Parser *P, int line, char *buf) {
    snprintf(buf, WHERE_MAX, "%s:%d", P->name, line);
    return buf;
}

static const char *where_set(const Parser *P, int idx, char *buf) {
    snprintf(buf, WHERE_MAX, "--set %.600s", P->sets[idx]);
    return buf;
}

static int key_index(const char *section, const char *key) {
    for (int k = 0; k < NKEYS; k++)
        if (strcmp(KEYS[k].section, section) == 0 && strcmp(KEYS[k].key, key) == 0) return k;
    return -1;
}

static int section_index(const char *section) {
    for (int i = 0; i < NSECTIONS; i++)
        if (strcmp(SECTIONS[i], section) == 0) return i;
    return -1;
}

/* "pipeline.stages" -> its row, or -1. */
static int key_named(const char *full) {
    const char *dot = full ? strchr(full, '.') : NULL;
    char sec[16];
    if (!dot || dot - full >= (long)sizeof sec) return -1;
    snprintf(sec, sizeof sec, "%.*s", (int)(dot - full), full);
    return key_index(sec, dot + 1);
}

/* Where a key was given: "FILE:LINE", "--set ARG", "CONFIG.json: FIELD" for one the
 * hf_config gave, or for a key not given the line of its section's header (line 1 when the
 * section is absent too). */
static const char *where_key(const Parser *P, int k, char *buf) {
    int line = P->key_line[k];
    if (P->hf_field[k]) {
        snprintf(buf, WHERE_MAX, "%.900s: %s", P->hf_shown, P->hf_field[k]);
        return buf;
    }
    if (line < 0) return where_set(P, -line - 1, buf);
    if (line == 0) line = P->section_line[section_index(KEYS[k].section)];
    return where_line(P, line > 0 ? line : 1, buf);
}

/* Levenshtein distance of two short names, for "did you mean". */
static int edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) return 99;
    int row[64];
    for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[lb];
}

#define NEAR_ENOUGH 3 // a name this many edits or more away is not suggested

static int unknown_section(Parser *P, const char *where, const char *section) {
    const char *best = NULL;
    int bestd = NEAR_ENOUGH;
    for (int i = 0; i < NSECTIONS; i++) {
        int d = edit_distance(section, SECTIONS[i]);
        if (d < bestd) bestd = d, best = SECTIONS[i];
    }
    if (best)
        return fail(P, where, "unknown section [%.64s]; did you mean [%s]?", section, best);
    return fail(P, where, "unknown section [%.64s]; the sections are " SECTION_LIST, section);
}

/* An unknown key in a section whose keys are the rows of tab named table_section ("device.N"
 * for every [device.N]). */
static int unknown_key_in(Parser *P, const char *where, const char *section, const char *key,
                          const KeyDef *tab, int n, const char *table_section) {
    if (!key[0])
        return fail(P, where, "a value without a key name; write 'key = value'");
    const char *best = NULL;
    int bestd = NEAR_ENOUGH;
    char list[512] = "";
    for (int k = 0; k < n; k++) {
        if (strcmp(tab[k].section, table_section) != 0) continue;
        int d = edit_distance(key, tab[k].key);
        if (d < bestd) bestd = d, best = tab[k].key;
        strcat(strcat(list, list[0] ? ", " : ""), tab[k].key);
    }
    if (best) return fail(P, where, "unknown key '%.64s' in [%s]; did you mean '%s'?", key, section, best);
    if (tab != KEYS)
        return fail(P, where, "unknown key '%.64s' in [%s]; the keys of [%s] are %s", key,
                    section, table_section, list);
    for (int k = 0; k < NKEYS; k++)
        if (strcmp(KEYS[k].key, key) == 0)
            return fail(P, where, "unknown key '%s' in [%s]; it belongs in [%s]", key, section,
                        KEYS[k].section);
    return fail(P, where, "unknown key '%s' in [%s]; the keys of [%s] are %s", key, section, section, list);
}

static int unknown_key(Parser *P, const char *where, const char *section, const char *key) {
    return unknown_key_in(P, where, section, key, KEYS, NKEYS, section);
}

/* A whole number of 1..9 digits at *c, advancing *c; false when there is none. */
static bool section_number(const char **c, int64_t *out) {
    int n = 0;
    for (*out = 0; isdigit((unsigned char)**c) && n < 9; (*c)++, n++) *out = *out * 10 + (**c - '0');
    return n > 0 && !isdigit((unsigned char)**c);
}

/* "device.3" -> SEC_DEVICE with *a = 3; "link.0-1" -> SEC_LINK with *a = 0, *b = 1; 0 for a
 * name that is neither; -SEC_DEVICE or -SEC_LINK for a name that starts like one but is not
 * written right ("device", "device.x", "link.2"). */
static int numbered_section(const char *name, int64_t *a, int64_t *b) {
    *a = *b = 0;
    const char *c = name;
    if (strncmp(name, "device", 6) == 0) {
        c += 6;
        return *c++ == '.' && section_number(&c, a) && !*c ? SEC_DEVICE : -SEC_DEVICE;
    }
    if (strncmp(name, "link", 4) == 0) {
        c += 4;
        return *c++ == '.' && section_number(&c, a) && *c++ == '-' && section_number(&c, b) &&
                       !*c ? SEC_LINK : -SEC_LINK;
    }
    return 0;
}

/* Checks a section name that is none of SECTIONS: a numbered one returns its kind (> 0);
 * anything else fails with the fix and returns 0. */
static int check_numbered(Parser *P, const char *where, const char *section, int64_t *a,
                          int64_t *b) {
    int kind = numbered_section(section, a, b);
    if (kind == -SEC_DEVICE)
        return fail(P, where, "section [%.64s] is not valid; write [device.N] with N the "
                    "pipeline device it sets (0 .. stages-1), e.g. [device.0]", section);
    if (kind == -SEC_LINK)
        return fail(P, where, "section [%.64s] is not valid; write [link.A-B] with the two "
                    "devices it joins, e.g. [link.0-1]", section);
    if (kind == SEC_LINK && *a == *b)
        return fail(P, where, "[%.64s] joins device %lld to itself; a link joins two "
                    "different devices, e.g. [link.%lld-%lld]", section, (long long)*a,
                    (long long)*a, (long long)*a + 1);
    if (kind == 0) return unknown_section(P, where, section);
    return kind;
}

/* Keeps a key of a numbered section for resolve_numbered. Returns 1, or 0 after fail(). */
static int keep_numbered(Parser *P, const char *where, const char *section, const char *key,
                         const char *value, int line) {
    int64_t a, b;
    int kind = check_numbered(P, where, section, &a, &b);
    if (!kind) return 0;
    const KeyDef *tab = kind == SEC_DEVICE ? DEVICE_KEYS : LINK_KEYS;
    int n = kind == SEC_DEVICE ? NDEVICE_KEYS : NLINK_KEYS, k = 0;
    while (k < n && strcmp(tab[k].key, key) != 0) k++;
    if (k == n) return unknown_key_in(P, where, section, key, tab, n, tab[0].section);
    if (P->nnum == P->num_cap) {
        int cap = P->num_cap ? 2 * P->num_cap : 16;
        Numbered *grown = realloc(P->num, (size_t)cap * sizeof *grown);
        if (!grown) return fail(P, where, "out of memory");
        P->num = grown, P->num_cap = cap;
    }
    char *copy = strdup(value);
    if (!copy) return fail(P, where, "out of memory");
    if (kind == SEC_LINK && a > b) { int64_t x = a; a = b, b = x; } // one link, both directions
    P->num[P->nnum] = (Numbered){kind, a, b, k, line, P->nnum, copy};
    P->nnum++;
    return 1;
}

/* ---- values ------------------------------------------------------------------------------- */

/* A value as the user wrote it, for messages: "'stages = eight'" in a file, "'eight'" in a
 * --set (whose argument is already in front of the message). */
static const char *quoted(const Parser *P, const KeyDef *kd, const char *v, char *buf, size_t n) {
    if (P->in_file) snprintf(buf, n, "'%s = %.200s'", kd->key, v);
    else snprintf(buf, n, "'%.200s'", v);
    return buf;
}

/* A good way to write this key, for messages: "'stages = 8'" or "'pipeline.stages=8'". */
static const char *example(const Parser *P, const KeyDef *kd, const char *v, char *buf, size_t n) {
    if (P->in_file) snprintf(buf, n, "'%s = %s'", kd->key, v);
    else snprintf(buf, n, "'%s.%s=%s'", kd->section, kd->key, v);
    return buf;
}

static bool plain_name(const char *v) {
    if (!*v) return false;
    for (; *v; v++)
        if (!isalnum((unsigned char)*v) && !strchr("._+-", *v)) return false;
    return true;
}

static bool parse_int(const char *v, int64_t *out) {
    if (!*v || isspace((unsigned char)*v)) return false;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || *end) return false;
    *out = x;
    return true;
}

static bool parse_double(const char *v, double *out) {
    if (!*v || isspace((unsigned char)*v)) return false;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    // ERANGE with a tiny result is an underflow (1e-308, 1e-400): a number, near 0; ERANGE
    // with a huge one is too_large's case
    if ((errno && !(errno == ERANGE && fabs(x) < 1)) || *end || !isfinite(x)) return false;
    *out = x;
    return true;
}

/* A value written as a number too large for its type (digits past int64, or past a double:
 * 1e400): out of range, not malformed. Returns it as a double (infinite past a double), or 0
 * when v is not such a number. */
static double too_large(const char *v, bool whole) {
    const char *digits = v + (*v == '-' || *v == '+');
    if (!*v || isspace((unsigned char)*v) ||
        (whole && (!*digits || strspn(digits, "0123456789") != strlen(digits))))
        return 0;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    bool over = whole ? fabs(x) >= 9.2e18 : errno == ERANGE && fabs(x) >= HUGE_VAL;
    return *end == '\0' && over ? x : 0;
}

static int check_range(Parser *P, const char *where, const KeyDef *kd, double x,
                       const char *v) {
    bool low = kd->range == RANGE_OPEN_LO ? x <= kd->lo : x < kd->lo;
    if (!low && x <= kd->hi) return 1;
    char q[256], e[160];
    return fail(P, where, "%s is out of range; %s must be %s %.15g and at most %.15g, e.g. %s",
                quoted(P, kd, v, q, sizeof q), kd->key,
                kd->range == RANGE_OPEN_LO ? "above" : "at least", kd->lo, kd->hi,
                example(P, kd, kd->example, e, sizeof e));
}

/* Splits "5,5,6" into a malloc'd array. Returns 0, -1 when out of memory, or the 1-based
 * position of the first entry that is not a whole number (*n is then that position). */
/* Parses a comma-separated list with parse_one into a malloc'd array of elem-byte items.
 * Returns 0; -1 out of memory; k > 0 when item k (1-based) is not valid. */
static int parse_items(const char *v, size_t elem, bool (*parse_one)(const char *, void *),
                       void **out, int64_t *n) {
    size_t cap = 1;
    for (const char *c = v; *c; c++) cap += *c == ',';
    char *a = malloc(cap * elem);
    if (!a) return -1;
    *n = 0;
    for (const char *c = v;; c++) {
        char item[32] = "";
        size_t len = strcspn(c, ",");
        const char *s = c, *e = c + len;
        while (s < e && isspace((unsigned char)*s)) s++;
        while (e > s && isspace((unsigned char)e[-1])) e--;
        if ((size_t)(e - s) < sizeof item) memcpy(item, s, (size_t)(e - s));
        if ((size_t)(e - s) >= sizeof item || !parse_one(item, a + (size_t)*n * elem)) {
            free(a);
            return (int)++*n;
        }
        ++*n;
        c += len;
        if (*c == '\0') break;
    }
    *out = a;
    return 0;
}

static bool parse_int_item(const char *v, void *out) { return parse_int(v, out); }
static bool parse_double_item(const char *v, void *out) { return parse_double(v, out); }

static int parse_list(const char *v, int64_t **out, int64_t *n) {
    return parse_items(v, sizeof **out, parse_int_item, (void **)out, n);
}

/* A list of stage times: numbers of ms, each in the key's range. */
static int set_times(Parser *P, const char *where, const KeyDef *kd, ScnTimeList *t,
                     const char *v) {
    char q[256], e[160];
    free(t->ms);
    t->ms = NULL, t->n = 0;
    int bad = parse_items(v, sizeof *t->ms, parse_double_item, (void **)&t->ms, &t->n);
    if (bad < 0) return fail(P, where, "out of memory");
    int factors = strncmp(kd->key, "scale_", 6) == 0; // the class factors, not times
    if (bad > 0)
        return fail(P, where, "%s is not valid: entry %d is not a number; write %s, e.g. %s",
                    quoted(P, kd, v, q, sizeof q), bad,
                    factors ? "one factor per kernel class (gemm, attention, memory, tp_comm, "
                              "launch)"
                            : "one time in ms per pipeline stage",
                    example(P, kd, kd->example, e, sizeof e));
    for (int64_t i = 0; i < t->n; i++)
        if (!(t->ms[i] >= kd->lo && t->ms[i] <= kd->hi))
            return fail(P, where, "%s is not valid: entry %lld is %g; each %s must be between "
                        "%g and %g%s", quoted(P, kd, v, q, sizeof q), (long long)i + 1,
                        t->ms[i], factors ? "factor" : "time", kd->lo, kd->hi,
                        factors ? "" : " ms");
    return 1;
}

static int set_partition(Parser *P, const char *where, const KeyDef *kd, const char *v) {
    ScnPipeline *pl = &P->s->pipeline;
    free(pl->partition_layers);
    pl->partition_layers = NULL;
    pl->npartition = 0;
    if (strcmp(v, "uniform") == 0) return pl->partition = PART_UNIFORM, 1;
    if (strcmp(v, "balanced") == 0) return pl->partition = PART_BALANCED, 1;
    char q[256], e[160];
    int64_t n = 0, *a = NULL;
    int bad = parse_list(v, &a, &n);
    if (bad < 0) return fail(P, where, "out of memory");
    if (bad > 0)
        return fail(P, where, "%s is not valid: entry %d is not a whole number; write uniform, "
                    "balanced, or the layers of each stage, e.g. %s", quoted(P, kd, v, q, sizeof q),
                    bad, example(P, kd, "5,5,5,5,5,5,5,5", e, sizeof e));
    pl->partition = PART_EXPLICIT;
    pl->partition_layers = a;
    pl->npartition = n;
    for (int64_t i = 0; i < n; i++)
        if (a[i] < 1)
            return fail(P, where, "%s is not valid: entry %lld is %lld; every stage needs at "
                        "least 1 layer", quoted(P, kd, v, q, sizeof q), (long long)i + 1,
                        (long long)a[i]);
    return 1;
}

/* A relative path written in the file is taken from the scenario's directory; one given with
 * --set from the current directory. */
static int set_path(Parser *P, const char *where, char *field, const char *v) {
    const char *slash = strrchr(P->name, '/');
    int dir = P->in_file && v[0] != '/' && slash ? (int)(slash - P->name) + 1 : 0;
    if (!v[0] || (size_t)dir + strlen(v) >= SCN_PATH_MAX)
        return fail(P, where, "'%.200s' is not a usable path; give a file name shorter than %d "
                    "bytes", v, SCN_PATH_MAX);
    snprintf(field, SCN_PATH_MAX, "%.*s%s", dir, P->name, v);
    strcpy(P->path_shown, field);
    char *abs = realpath(field, NULL); // stored absolute, so a resolved scenario works anywhere
    if (abs && strlen(abs) < SCN_PATH_MAX) strcpy(field, abs);
    free(abs);
    return 1;
}

/* Stores one value of row kd into field; shared by file lines, --set and numbered sections.
 * Returns 1, or 0 after fail(). */
#define NNAMES(a) ((int)(sizeof(a) / sizeof(a)[0]))

/* v as one of an enum's n names: *index is its position, or the error "unknown KIND 'V'; use
 * A, B or C". Returns 1, or 0 after fail. */
static int set_name(Parser *P, const char *where, const char *kind, const char *v,
                    const char *const *names, int n, int *index) {
    char list[128] = "";
    for (int t = 0; t < n; t++) {
        if (strcmp(v, names[t]) == 0) return *index = t, 1;
        size_t at = strlen(list);
        snprintf(list + at, sizeof list - at, "%s%s", t == 0 ? "" : t == n - 1 ? " or " : ", ",
                 names[t]);
    }
    return fail(P, where, "unknown %s '%.200s'; use %s", kind, v, list);
}

static int set_field(Parser *P, const KeyDef *kd, void *field, const char *where, const char *v) {
    char q[256], e[160];
    int64_t i;
    double d;
    int t;
    switch (kd->type) {
    case T_DEVICE:
        if (!parse_int(v, &i) || i < 0)
            return fail(P, where, "%s is not a device number; give one of 0 .. stages-1, e.g. "
                        "%s, or leave the key out for none", quoted(P, kd, v, q, sizeof q),
                        example(P, kd, kd->example, e, sizeof e));
        if (!check_range(P, where, kd, (double)i, v)) return 0;
        *(int64_t *)field = i;
        return 1;
    case T_INT:
        if (!parse_int(v, &i) && too_large(v, true) != 0)
            return check_range(P, where, kd, too_large(v, true), v);
        if (!parse_int(v, &i))
            return fail(P, where, "%s is not a whole number; write e.g. %s",
                        quoted(P, kd, v, q, sizeof q), example(P, kd, kd->example, e, sizeof e));
        if (!check_range(P, where, kd, (double)i, v)) return 0;
        *(int64_t *)field = i;
        return 1;
    case T_DOUBLE:
        if (!parse_double(v, &d) && too_large(v, false) != 0)
            return check_range(P, where, kd, too_large(v, false), v);
        if (!parse_double(v, &d))
            return fail(P, where, "%s is not a number; write e.g. %s",
                        quoted(P, kd, v, q, sizeof q), example(P, kd, kd->example, e, sizeof e));
        if (!check_range(P, where, kd, d, v)) return 0;
        *(double *)field = d;
        return 1;
    case T_DTYPE:
        if (!set_name(P, where, "dtype", v, DTYPES, NNAMES(DTYPES), &t)) return 0;
        return *(Dtype *)field = (Dtype)t, 1;
    case T_RECOMPUTE:
        if (!set_name(P, where, "recompute", v, RECOMPUTES, NNAMES(RECOMPUTES), &t)) return 0;
        return *(Recompute *)field = (Recompute)t, 1;
    case T_OPTIMIZER:
        if (!set_name(P, where, "optimizer", v, OPTIMIZERS, NNAMES(OPTIMIZERS), &t)) return 0;
        return *(Optimizer *)field = (Optimizer)t, 1;
    case T_ALLREDUCE:
        if (!set_name(P, where, "allreduce", v, ALLREDUCES, NNAMES(ALLREDUCES), &t)) return 0;
        return *(Allreduce *)field = (Allreduce)t, 1;
    case T_JITTER:
        if (!set_name(P, where, "jitter", v, JITTERS, NNAMES(JITTERS), &t)) return 0;
        return *(Jitter *)field = (Jitter)t, 1;
    case T_COST_MODEL:
        if (!set_name(P, where, "cost_model", v, COST_MODELS, NNAMES(COST_MODELS), &t)) return 0;
        return *(CostModelKind *)field = (CostModelKind)t, 1;
    case T_BOOL: case T_MLP: case T_NORM: case T_ATTENTION: case T_POSITION: {
        const Choice *c = choice_of(kd->type);
        if (!set_name(P, where, c->kind, v, c->names, c->n, &t)) return 0;
        return *(int *)field = t, 1;
    }
    case T_PARTITION:
        return set_partition(P, where, kd, v);
    case T_TIMES:
        return set_times(P, where, kd, (ScnTimeList *)field, v);
    case T_GPU:
        if (!gpu_preset_find(v))
            return fail(P, where, "unknown gpu '%.200s'; use one of %s, or leave gpu out and "
                        "give peak_tflops and memory_gib", v, gpu_preset_names());
        break;
    case T_SCHEDULE:
        if (!sched_find(v))
            return fail(P, where, "unknown schedule '%.200s'; available: %s", v, sched_names());
        break;
    case T_PATH:
        return set_path(P, where, (char *)field, v);
    case T_NAME:
        if (!plain_name(v) || strlen(v) >= SCN_NAME_MAX)
            return fail(P, where, "%s is not a plain name; use up to %d letters, digits and "
                        ". _ + -, e.g. %s", quoted(P, kd, v, q, sizeof q), SCN_NAME_MAX - 1,
                        example(P, kd, kd->example, e, sizeof e));
        break;
    }
    strcpy((char *)field, v); // names were checked above to fit SCN_NAME_MAX
    return 1;
}

static int set_value(Parser *P, int k, const char *where, const char *v) {
    int ok = set_field(P, &KEYS[k], (char *)P->s + KEYS[k].offset, where, v);
    if (ok && KEYS[k].offset == offsetof(Scenario, hf_config)) strcpy(P->hf_shown, P->path_shown);
    return ok;
}

/* ---- reading the file with libinih -------------------------------------------------------- */

/* A "[name]" header line (after blanks and, on line 1, a UTF-8 BOM): checks the name, notes
 * where the section starts. A line with '[' but no ']' is left to inih to reject. */
static bool check_header(Parser *P, const char *line) {
    if (P->line == 1 && strncmp(line, "\xEF\xBB\xBF", 3) == 0) line += 3;
    while (*line == ' ' || *line == '\t') line++;
    const char *close = *line == '[' ? strchr(line, ']') : NULL;
    if (!close) return true;
    char name[72] = "", where[WHERE_MAX];
    size_t n = (size_t)(close - line - 1);
    memcpy(name, line + 1, n < sizeof name - 1 ? n : sizeof name - 1);
    int sec = section_index(name);
    int64_t a, b;
    if (sec < 0) return check_numbered(P, where_line(P, P->line, where), name, &a, &b);
    if (P->section_line[sec] == 0) P->section_line[sec] = P->line;
    return true;
}

/* ini_reader: serves one line of P->text, counts lines, rejects over-long lines and unknown
 * sections (even empty ones, which inih never reports). */
static char *read_line(char *str, int num, void *stream) {
    Parser *P = stream;
    if (P->failed || P->text[P->pos] == '\0') return NULL;
    const char *start = P->text + P->pos, *nl = strchr(start, '\n');
    size_t len = nl ? (size_t)(nl - start) : strlen(start); // newline excluded
    P->line++;
    if (len > SCN_LINE_MAX || len + 2 > (size_t)num) {
        char where[WHERE_MAX];
        fail(P, where_line(P, P->line, where), "line is longer than %d bytes; split it or "
             "shorten it", SCN_LINE_MAX);
        return NULL;
    }
    len += nl != NULL;
    memcpy(str, start, len);
    str[len] = '\0';
    P->pos += len;
    return check_header(P, str) ? str : NULL;
}

static int on_key(void *user, const char *section, const char *key, const char *value) {
    Parser *P = user;
    char where[WHERE_MAX];
    where_line(P, P->line, where);
    if (P->failed) return 0;
    if (!section[0]) return fail(P, where, "'%s' comes before any [section]; put it under the "
                                 "section it belongs to, e.g. [model]", key);
    if (section_index(section) < 0) return keep_numbered(P, where, section, key, value, P->line);
    int k = key_index(section, key);
    if (k < 0) return unknown_key(P, where, section, key);
    if (P->key_line[k] > 0)
        return fail(P, where, "'%s' is given twice (first at line %d); keep one", key,
                    P->key_line[k]);
    P->key_line[k] = P->line;
    return set_value(P, k, where, value);
}

/* Runs inih over P->text with the settings this parser relies on (one key per line, long
 * lines, stop at the first error), then puts inih's process-wide settings back. */
static void parse_text(Parser *P) {
    bool multiline = ini_allow_multiline, stack = ini_use_stack, realloc_ = ini_allow_realloc,
         stop = ini_stop_on_first_error, novalue = ini_allow_no_value;
    int max_line = ini_max_line, initial = ini_initial_alloc;
    ini_allow_multiline = false; // every key on its own line, so it has its own line number
    ini_use_stack = false;
    ini_allow_realloc = false;
    ini_stop_on_first_error = true;
    ini_allow_no_value = false;
    ini_initial_alloc = ini_max_line = SCN_LINE_MAX + 2; // the line, its newline and NUL
    P->in_file = true;
    int rc = ini_parse_stream(read_line, P, on_key, P);
    P->in_file = false;
    ini_allow_multiline = multiline, ini_use_stack = stack, ini_allow_realloc = realloc_;
    ini_stop_on_first_error = stop, ini_allow_no_value = novalue;
    ini_max_line = max_line, ini_initial_alloc = initial;
    char where[WHERE_MAX];
    if (rc > 0 && !P->failed)
        fail(P, where_line(P, rc, where), "expected 'key = value' or '[section]'; comments "
             "start with ; or #");
    else if (rc < 0 && !P->failed)
        fail(P, P->name, "out of memory while parsing");
}

/* Trims blanks at both ends of s in place. */
static char *trim(char *s) {
    while (*s == ' ' || *s == '\t') s++;
    for (char *e = s + strlen(s); e > s && (e[-1] == ' ' || e[-1] == '\t'); e--) e[-1] = '\0';
    return s;
}

static int apply_set(Parser *P, int idx) {
    char where[WHERE_MAX];
    const char *arg = P->sets[idx];
    where_set(P, idx, where);
    if (strlen(arg) > SCN_LINE_MAX)
        return fail(P, where, "longer than %d bytes; shorten it", SCN_LINE_MAX);
    char *buf = strdup(arg);
    if (!buf) return fail(P, where, "out of memory");
    char *eq = strchr(buf, '='), *dot = NULL; // the last dot before '=': device.3.peak_tflops
    for (char *c = buf; eq && c < eq; c++)
        if (*c == '.') dot = c;
    int ok = 0;
    if (!eq || !dot) {
        fail(P, where, "expected SECTION.KEY=VALUE; write e.g. --set batch.micro_batches=64");
    } else {
        *eq = *dot = '\0';
        char *sec = trim(buf), *key = trim(dot + 1), *val = trim(eq + 1);
        int k = key_index(sec, key);
        if (section_index(sec) < 0) ok = keep_numbered(P, where, sec, key, val, -(idx + 1));
        else if (k < 0) unknown_key(P, where, sec, key);
        else {
            P->key_line[k] = -(idx + 1);
            ok = set_value(P, k, where, val);
        }
    }
    free(buf);
    return ok;
}

/* ---- defaults and validation -------------------------------------------------------------- */

/* The defaults written in the table; they cannot fail. */
static void init_defaults(Parser *P) {
    for (int k = 0; k < NKEYS; k++) {
        const KeyDef *kd = &KEYS[k];
        void *field = (char *)P->s + kd->offset;
        if (!kd->def) continue;
        if (kd->type == T_INT || kd->type == T_DEVICE)
            *(int64_t *)field = strtoll(kd->def, NULL, 10); // T_DEVICE -1: none
        else if (kd->type == T_DOUBLE) *(double *)field = strtod(kd->def, NULL); // -1: unset
        else set_value(P, k, "default", kd->def);
    }
}

/* Key k has a value from the file, a --set or the hf_config (not a default). */
static bool given(const Parser *P, int k) { return P->key_line[k] != 0 || P->hf_field[k]; }
#define GIVEN(P, sec, key) given(P, key_index(sec, key))

/* Where to blame a bad combination of n keys ("section.key"): the one given by the latest
 * --set, else the first of them given in the file, else the first. */
static const char *blame(const Parser *P, char *w, int n, ...) {
    int best = -1, first_given = -1, first = -1;
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        int k = key_named(va_arg(ap, const char *));
        if (first < 0) first = k;
        if (P->key_line[k] < 0 && (best < 0 || P->key_line[k] < P->key_line[best])) best = k;
        if ((P->key_line[k] > 0 || P->hf_field[k]) && first_given < 0) first_given = k;
    }
    va_end(ap);
    return where_key(P, best >= 0 ? best : first_given >= 0 ? first_given : first, w);
}

/* "dir/gpt13b.v2.scn" -> "gpt13b.v2": the basename without its extension, cut to fit, other
 * characters than letters, digits and . _ + - replaced by '_'. */
static void default_name(const char *path, char name[SCN_NAME_MAX]) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    size_t n = dot && dot > base ? (size_t)(dot - base) : strlen(base);
    if (n > SCN_NAME_MAX - 1) n = SCN_NAME_MAX - 1;
    for (size_t i = 0; i < n; i++)
        name[i] = isalnum((unsigned char)base[i]) || strchr("._+-", base[i]) ? base[i] : '_';
    name[n] = '\0';
    if (n == 0) strcpy(name, "scenario");
}

/* hardware.efficiency or some [device.N] efficiency is in the file or a --set. */
static int efficiency_given(const Parser *P) {
    if (GIVEN(P, "hardware", "efficiency")) return 1;
    for (int i = 0; i < P->nnum; i++)
        if (P->num[i].kind == SEC_DEVICE && strcmp(DEVICE_KEYS[P->num[i].key].key, "efficiency") == 0)
            return 1;
    return 0;
}

/* [model] hf_config: the config's values for the [model] keys the file and the --sets did not
 * give, each marked as the config's (so fill_derived's defaults leave it alone and messages
 * name the config's field). Runs after the file and every --set, before fill_derived. */
static int apply_hf(Parser *P) {
    char w[WHERE_MAX], msg[SCN_ERR_MAX];
    HfConfig hf;
    int rc = hf_config_read(P->s->hf_config, P->hf_shown, &hf, msg);
    if (rc == 1)
        return fail(P, where_key(P, key_index("model", "hf_config"), w), "%s; give the path "
                    "of a Hugging Face config.json (in a scenario file, relative to its "
                    "directory)", msg);
    if (rc) return fail_text(P, msg);
    for (int i = 0; i < hf.n; i++) {
        const HfValue *v = &hf.v[i];
        int k = key_index("model", v->key);
        if (given(P, k)) continue; // the scenario's own key wins
        snprintf(w, sizeof w, "%.900s: %s", P->hf_shown, v->field);
        if (v->why_not[0]) return fail(P, w, "%s", v->why_not);
        if (!set_value(P, k, w, v->value)) return 0;
        P->hf_field[k] = v->field;
    }
    P->hf_window = hf.sliding_window;
    P->hf_max_position = hf.max_position;
    return 1;
}

static void fill_derived(Parser *P) {
    Scenario *s = P->s;
    if (!GIVEN(P, "model", "name")) default_name(P->name, s->model.name);
    if (!GIVEN(P, "model", "ffn_hidden")) s->model.ffn_hidden = 4 * s->model.hidden;
    if (!GIVEN(P, "model", "expert_ffn_hidden")) s->model.expert_ffn_hidden = s->model.ffn_hidden;
    s->parallel.sequence_given = GIVEN(P, "parallel", "sequence");
    if (!GIVEN(P, "model", "kv_heads")) s->model.kv_heads = s->model.heads;
    if (!GIVEN(P, "model", "head_dim") && s->model.heads > 0)
        s->model.head_dim = s->model.hidden / s->model.heads;
    const GpuPreset *g = s->hw.gpu[0] ? gpu_preset_find(s->hw.gpu) : NULL;
    if (!GIVEN(P, "hardware", "peak_tflops") && g)
        s->hw.peak_tflops = s->model.dtype == DTYPE_FP32 ? g->peak_tflops_32 : g->peak_tflops_16;
    if (!GIVEN(P, "hardware", "memory_gib") && g) s->hw.memory_gib = g->memory_gib;
    if (!GIVEN(P, "network", "intra_bandwidth_gbs"))
        s->net.intra_bandwidth_gbs = g ? g->intra_bandwidth_gbs : 100;
    if (!GIVEN(P, "hardware", "hbm_bandwidth_gbs"))
        s->hw.hbm_bandwidth_gbs = g ? g->hbm_bandwidth_gbs : 1000;
    if (!GIVEN(P, "network", "inter_bandwidth_gbs"))
        s->net.inter_bandwidth_gbs = g ? g->inter_bandwidth_gbs : 25;
    if (!GIVEN(P, "network", "same_gpu_bandwidth_gbs"))
        s->net.same_gpu_bandwidth_gbs = g ? g->hbm_bandwidth_gbs / 2 : 1000;
    if (!GIVEN(P, "hardware", "gemm_efficiency")) s->hw.gemm_efficiency = g ? g->gemm_efficiency : 0.8;
    if (!GIVEN(P, "hardware", "launch_us")) s->hw.launch_us = g ? g->launch_us : 4;
    if (!GIVEN(P, "hardware", "sms")) s->hw.sms = g ? g->sms : 0;
    // A file that tunes the single efficiency (every scenario before the roofline) keeps its
    // meaning: efficiency without cost_model asks for the flat model.
    if (!GIVEN(P, "hardware", "cost_model") && efficiency_given(P)) s->hw.cost_model = COST_FLAT;
    if (s->costs.forward_ms >= 0 && s->costs.weight_ms < 0) s->costs.weight_ms = 0;
}

/* A required [model] key that neither the scenario nor its hf_config gives. */
static int missing_beside_hf(Parser *P, int k) {
    char w[WHERE_MAX], limit[96] = "";
    const KeyDef *kd = &KEYS[k];
    const char *field = hf_config_field_of(kd->key);
    if (field)
        return fail(P, where_key(P, k, w), "missing key '%s' in [model], and %s has no %s "
                    "either; add e.g. '%s = %s' under [model]", kd->key, P->hf_shown, field,
                    kd->key, kd->example);
    if (P->hf_max_position > 0)
        snprintf(limit, sizeof limit, " (its max_position_embeddings = %lld is the model's "
                 "limit)", (long long)P->hf_max_position);
    return fail(P, where_key(P, k, w), "missing key '%s' in [model]: the training sequence "
                "length comes from the scenario, not from %s%s; add e.g. '%s = %lld' under "
                "[model]", kd->key, P->hf_shown, limit, kd->key,
                (long long)(P->hf_max_position > 0 && P->hf_max_position < 8192
                                ? P->hf_max_position : 8192));
}

static int check_required(Parser *P) {
    char w[WHERE_MAX];
    for (int k = 0; k < NKEYS; k++) {
        if (!KEYS[k].required || given(P, k)) continue;
        if (P->s->hf_config[0] && strcmp(KEYS[k].section, "model") == 0)
            return missing_beside_hf(P, k);
        int sec = section_index(KEYS[k].section);
        if (P->section_line[sec] == 0)
            return fail(P, where_key(P, k, w), "missing section [%s]; add it with at least "
                        "'%s = %s'", KEYS[k].section, KEYS[k].key, KEYS[k].example);
        return fail(P, where_key(P, k, w), "missing key '%s' in [%s]; add e.g. '%s = %s'",
                    KEYS[k].key, KEYS[k].section, KEYS[k].key, KEYS[k].example);
    }
    if (P->s->hw.gpu[0] == '\0') {
        const char *need = !GIVEN(P, "hardware", "peak_tflops") ? "peak_tflops"
                           : !GIVEN(P, "hardware", "memory_gib") ? "memory_gib" : NULL;
        if (need)
            return fail(P, where_key(P, key_index("hardware", "gpu"), w), "[hardware] has no "
                        "gpu preset and no %s; name a preset (gpu = %s) or give peak_tflops "
                        "and memory_gib", need, gpu_preset_names());
    }
    return 1;
}

/* stage_*_ms: forward and backward together, one entry per pipeline stage, instead of the
 * per-device times. */
static int check_stage_times(Parser *P) {
    char w[WHERE_MAX];
    const ScnCosts *c = &P->s->costs;
    const ScnTimeList *t[3] = {&c->stage_forward, &c->stage_backward, &c->stage_weight};
    static const char *const names[3] = {"stage_forward_ms", "stage_backward_ms", "stage_weight_ms"};
    if (!t[0]->n && !t[1]->n && !t[2]->n) return 1;
    if (!t[0]->n || !t[1]->n) {
        int missing = t[0]->n ? 1 : 0, given = t[0]->n ? 0 : t[1]->n ? 1 : 2;
        return fail(P, where_key(P, key_index("costs", names[given]), w),
                    "%s needs %s too (stage_weight_ms is optional)", names[given],
                    names[missing]);
    }
    if (GIVEN(P, "costs", "forward_ms") || GIVEN(P, "costs", "backward_ms") ||
        GIVEN(P, "costs", "weight_ms"))
        return fail(P, where_key(P, key_index("costs", "stage_forward_ms"), w),
                    "stage_forward_ms and forward_ms both price the ops; give the per-stage "
                    "lists or forward_ms, backward_ms and weight_ms, not both");
    int64_t S = P->s->pipeline.stages * P->s->pipeline.chunks;
    for (int i = 0; i < 3; i++)
        if (t[i]->n && t[i]->n != S)
            return fail(P, where_key(P, key_index("costs", names[i]), w),
                        "%s lists %lld times but the pipeline has %lld stages (stages x "
                        "chunks); give one per stage", names[i], (long long)t[i]->n, (long long)S);
    return 1;
}

/* scale_*: five factors each (one per kernel class), and only where the roofline prices the
 * ops: measured times and the flat model have no classes to scale. */
static int check_scales(Parser *P) {
    char w[WHERE_MAX];
    const ScnCosts *c = &P->s->costs;
    const ScnTimeList *t[3] = {&c->scale_forward, &c->scale_backward, &c->scale_weight};
    static const char *const names[3] = {"scale_forward", "scale_backward", "scale_weight"};
    for (int i = 0; i < 3; i++) {
        if (!t[i]->n) continue;
        int k = key_index("costs", names[i]);
        if (t[i]->n != COST_SCALES)
            return fail(P, where_key(P, k, w), "%s lists %lld factors; give %d, one per kernel "
                        "class: gemm, attention, memory, tp_comm, launch (e.g. '%s = %s')",
                        names[i], (long long)t[i]->n, COST_SCALES, names[i], KEYS[k].example);
        if (P->s->hw.cost_model != COST_ROOFLINE)
            return fail(P, where_key(P, k, w), "%s scales the roofline's kernel classes; the "
                        "flat model has none (drop it, or use cost_model = roofline)", names[i]);
        if (c->forward_ms >= 0 || c->stage_forward.n)
            return fail(P, where_key(P, k, w), "%s scales the roofline's times, but measured "
                        "[costs] times replace them; give one or the other", names[i]);
    }
    return 1;
}

/* A [costs] time above 0 that rounds to 0 ns (the engine's clock) would make ops free: a
 * run with makespan 0 and infinite throughput. */
static int check_not_zero(Parser *P) {
    char w[WHERE_MAX];
    for (int k = 0; k < NKEYS; k++) {
        const KeyDef *kd = &KEYS[k];
        if (strcmp(kd->section, "costs") != 0 || P->key_line[k] == 0) continue;
        const void *field = (const char *)P->s + kd->offset;
        if (kd->type == T_DOUBLE) {
            double x = *(const double *)field;
            if (x > 0 && x < 0.5e-6)
                return fail(P, where_key(P, k, w), "%s = %g ms rounds to 0 ns, the simulator's "
                            "clock step; give at least 1e-6 ms (1 ns), or 0", kd->key, x);
        } else if (kd->type == T_TIMES && strncmp(kd->key, "scale_", 6) != 0) {
            const ScnTimeList *t = field;
            for (int64_t i = 0; i < t->n; i++)
                if (t->ms[i] > 0 && t->ms[i] < 0.5e-6)
                    return fail(P, where_key(P, k, w), "%s entry %lld = %g ms rounds to 0 ns, "
                                "the simulator's clock step; give at least 1e-6 ms (1 ns), or 0",
                                kd->key, (long long)i + 1, t->ms[i]);
        }
    }
    return 1;
}

static int check_costs(Parser *P) {
    char w[WHERE_MAX];
    const ScnCosts *c = &P->s->costs;
    bool f = GIVEN(P, "costs", "forward_ms");
    if (!f && (GIVEN(P, "costs", "backward_ms") || GIVEN(P, "costs", "weight_ms"))) {
        int k = key_index("costs", GIVEN(P, "costs", "backward_ms") ? "backward_ms" : "weight_ms");
        return fail(P, where_key(P, k, w), "'%s' needs forward_ms too; give forward_ms and "
                    "backward_ms (per micro-batch for a whole stage), or neither", KEYS[k].key);
    }
    if (f && c->backward_ms < 0)
        return fail(P, where_key(P, key_index("costs", "forward_ms"), w),
                    "forward_ms needs backward_ms too; add e.g. 'backward_ms = %g'",
                    2 * c->forward_ms);
    return check_stage_times(P) && check_scales(P) && check_not_zero(P);
}

/* The largest divisor of n that is at most k (k >= 1). */
static int64_t divisor_below(int64_t n, int64_t k) {
    while (k > 1 && n % k != 0) k--;
    return k;
}

static int check_model(Parser *P) {
    char w[WHERE_MAX];
    const Scenario *s = P->s;
    const ScnModel *m = &s->model;
    if (m->heads % m->kv_heads != 0)
        return fail(P, blame(P, w, 2, "model.kv_heads", "model.heads"),
                    "kv_heads = %lld does not divide heads = %lld; each key/value head serves "
                    "heads / kv_heads query heads (GQA), so use a divisor such as %lld",
                    (long long)m->kv_heads, (long long)m->heads, (long long)divisor_below(m->heads, m->kv_heads));
    if (P->hf_window > 0 && m->seq_len > P->hf_window)
        return fail(P, blame(P, w, 1, "model.seq_len"), "seq_len = %lld is longer than the "
                    "sliding_window = %lld of %s, and pipesim prices every layer's attention "
                    "over the whole sequence, not over a window; use seq_len <= %lld",
                    (long long)m->seq_len, (long long)P->hf_window, P->hf_shown,
                    (long long)P->hf_window);
    if (m->attention == ATTENTION_FLASH && m->dropout > 0)
        return fail(P, blame(P, w, 2, "model.attention", "model.dropout"),
                    "attention = flash runs without the attention-probability dropout, but "
                    "dropout = %g; use dropout = 0 (as Llama, Mistral and Qwen train) or "
                    "attention = standard", m->dropout);
    if (GIVEN(P, "model", "head_dim")) {
        if ((double)m->heads * (double)m->head_dim > (double)(1 << 24))
            return fail(P, blame(P, w, 2, "model.heads", "model.head_dim"),
                        "heads x head_dim = %.0f; at most %d", (double)m->heads *
                        (double)m->head_dim, 1 << 24);
    } else if (s->model.hidden % s->model.heads != 0) {
        int64_t d = s->model.heads;
        while (s->model.hidden % d != 0) d--; // the nearest divisor below
        return fail(P, blame(P, w, 2, "model.heads", "model.hidden"),
                    "heads = %lld does not divide hidden = %lld; use a divisor such as %lld",
                    (long long)s->model.heads, (long long)s->model.hidden, (long long)d);
    }
    double act = (double)s->batch.micro_batch_size * (double)s->model.seq_len *
                 (double)s->model.hidden * dtype_bytes(s->model.dtype);
    if (act > 0x1p50)
        return fail(P, blame(P, w, 4, "batch.micro_batch_size", "model.seq_len", "model.hidden", "model.dtype"),
                    "one activation (micro_batch_size x seq_len x hidden) would be %.3g bytes; "
                    "at most 2^50", act);
    return 1;
}

/* Mixture of experts: the MoE keys need experts > 0, and then must describe a routing that
 * exists; expert parallelism splits experts and data ranks evenly. */
static int64_t gcd64(int64_t a, int64_t b) {
    while (b) {
        int64_t r = a % b;
        a = b, b = r;
    }
    return a;
}

static int check_moe(Parser *P) {
    char w[WHERE_MAX];
    const Scenario *s = P->s;
    const ScnModel *m = &s->model;
    int64_t E = m->experts, e = s->parallel.expert, d = s->parallel.data;
    if (E == 0) {
        static const char *const NEED[] = {"model.experts_per_token", "model.shared_experts",
                                           "model.first_dense_layers", "model.capacity_factor",
                                           "model.expert_hot_share", "parallel.expert",
                                           "parallel.expert_node_limit"};
        const char *bad = m->experts_per_token ? NEED[0] : m->shared_experts ? NEED[1]
                          : m->first_dense_layers ? NEED[2] : m->capacity_factor > 0 ? NEED[3]
                          : m->expert_hot_share > 0 ? NEED[4] : e > 1 ? NEED[5]
                          : s->parallel.expert_node_limit ? NEED[6] : NULL;
        if (bad)
            return fail(P, blame(P, w, 2, bad, "model.experts"),
                        "%s is a mixture-of-experts key, but experts = 0 (every layer dense); "
                        "give experts = the routed experts per MoE layer (e.g. 8), or remove "
                        "it", strchr(bad, '.') + 1);
        return 1;
    }
    if (m->experts_per_token < 1 || m->experts_per_token > E)
        return fail(P, blame(P, w, 2, "model.experts_per_token", "model.experts"),
                    "experts_per_token = %lld with experts = %lld; each token is routed to "
                    "top-k of the experts, so give 1 <= experts_per_token <= %lld (Mixtral 2, "
                    "DeepSeek-V3 8)", (long long)m->experts_per_token, (long long)E, (long long)E);
    if (scenario_moe_layers(m, 0, m->layers) == 0)
        return fail(P, blame(P, w, 3, "model.first_dense_layers", "model.moe_layer_freq", "model.layers"),
                    "first_dense_layers = %lld and moe_layer_freq = %lld leave no MoE layer "
                    "among the %lld layers; use first_dense_layers < layers (DeepSeek-V3: 3 of "
                    "61) or experts = 0", (long long)m->first_dense_layers,
                    (long long)m->moe_layer_freq, (long long)m->layers);
    if (m->expert_hot_share > 0 && m->expert_hot_share * (double)E < 1 - 1e-9)
        return fail(P, blame(P, w, 2, "model.expert_hot_share", "model.experts"),
                    "expert_hot_share = %g is below the balanced share 1/experts = %g; the "
                    "hottest expert takes at least 1/%lld of the tokens, so give 0 (balanced) "
                    "or a share in [%g, 1]", m->expert_hot_share, 1.0 / (double)E,
                    (long long)E, 1.0 / (double)E);
    if (s->parallel.tensor > 1)
        return fail(P, blame(P, w, 2, "parallel.tensor", "model.experts"),
                    "tensor = %lld with experts = %lld: pipesim does not split experts by "
                    "tensor parallelism (DeepSeek-V3 trains with none); use tensor = 1 and "
                    "expert parallelism (parallel.expert)", (long long)s->parallel.tensor,
                    (long long)E);
    if (E % e != 0 || d % e != 0)
        return fail(P, blame(P, w, 3, "parallel.expert", "model.experts", "parallel.data"),
                    "expert = %lld must divide experts = %lld (each rank holds experts / e) "
                    "and data = %lld (the e ranks are data-parallel ranks); use e.g. expert "
                    "= %lld", (long long)e, (long long)E, (long long)d,
                    (long long)divisor_below(gcd64(E, d), e));
    if (e > 1 && s->hw.cost_model == COST_FLAT)
        return fail(P, blame(P, w, 2, "parallel.expert", "hardware.cost_model"),
                    "expert = %lld is priced by the roofline's kernels (the all-to-all of "
                    "every MoE layer), but cost_model = flat; use cost_model = roofline or "
                    "expert = 1", (long long)e);
    if (s->hw.sms > 0 && s->parallel.expert_comm_sms >= s->hw.sms)
        return fail(P, blame(P, w, 2, "parallel.expert_comm_sms", "hardware.sms"),
                    "expert_comm_sms = %lld leaves no SM of the %lld for computation; use "
                    "fewer (DeepSeek-V3: 20 of 132)", (long long)s->parallel.expert_comm_sms,
                    (long long)s->hw.sms);
    return 1;
}

/* A split of L layers into S stages that works: the first L % S stages take one more. */
static void even_split(int64_t L, int64_t S, char *list, size_t n) {
    list[0] = '\0';
    for (int64_t i = 0; i < S; i++) {
        size_t at = strlen(list);
        if (at + 32 > n) {
            strcat(list, ",...");
            return;
        }
        snprintf(list + at, n - at, "%s%lld", i ? "," : "", (long long)(L / S + (i < L % S)));
    }
}

static int check_partition(Parser *P) {
    char w[WHERE_MAX], list[256], what[64];
    const Scenario *s = P->s;
    int64_t p = s->pipeline.stages, v = s->pipeline.chunks, L = s->model.layers;
    int64_t S = p * v / sched_pipes(s->pipeline.schedule); // stages of one model copy
    if (S == p) snprintf(what, sizeof what, "%lld stages", (long long)p);
    else snprintf(what, sizeof what, "%lld stages × %lld chunks", (long long)p, (long long)v);
    if (S > L)
        return fail(P, blame(P, w, 3, "pipeline.stages", "pipeline.chunks", "model.layers"),
                    "%s need at least %lld layers, and layers = %lld; use fewer stages%s", what,
                    (long long)S, (long long)L, v > 1 ? " or chunks" : "");
    // a custom schedule's file may ask for model copies ("pipes = 2"), which only plan_build
    // learns; the layer split is checked there
    int custom = strcmp(s->pipeline.schedule, "custom") == 0;
    if (s->pipeline.partition == PART_UNIFORM && L % S != 0 && !custom) {
        even_split(L, S, list, sizeof list);
        return fail(P, blame(P, w, 4, "pipeline.partition", "model.layers", "pipeline.stages", "pipeline.chunks"),
                    "%lld layers do not split evenly into %s under partition = uniform; list "
                    "the layers per stage (partition = %s), use partition = balanced, or make "
                    "layers a multiple of %lld", (long long)L, what, list, (long long)S);
    }
    if (s->pipeline.partition != PART_EXPLICIT) return 1;
    even_split(L, S, list, sizeof list);
    if (s->pipeline.npartition != S && !custom)
        return fail(P, blame(P, w, 3, "pipeline.partition", "pipeline.stages", "pipeline.chunks"), "partition lists %lld stages but the pipeline "
                    "has %lld (stages × chunks, chunk-major); give %lld counts, e.g. "
                    "partition = %s", (long long)s->pipeline.npartition, (long long)S,
                    (long long)S, list);
    int64_t sum = 0; // entries are >= 1; stop once past L, so the sum cannot overflow
    for (int64_t i = 0; i < s->pipeline.npartition && sum <= L; i++)
        sum = s->pipeline.partition_layers[i] > L ? L + 1 : sum + s->pipeline.partition_layers[i];
    if (sum != L)
        return fail(P, blame(P, w, 2, "pipeline.partition", "model.layers"), "partition covers %s%lld layers but the model "
                    "has layers = %lld; every layer must be in exactly one stage, e.g. "
                    "partition = %s", sum > L ? "more than " : "", (long long)(sum > L ? L : sum),
                    (long long)L, list);
    return 1;
}

static int check_schedule(Parser *P) {
    char w[WHERE_MAX];
    const Scenario *s = P->s;
    const Schedule *sc = sched_find(s->pipeline.schedule);
    SchedParams sp = scenario_sched_params(s);
    if (s->pipeline.schedule_file[0] && strcmp(s->pipeline.schedule, "custom") != 0)
        return fail(P, where_key(P, key_index("pipeline", "schedule_file"), w),
                    "schedule_file is only read with schedule = custom, and schedule = %s; "
                    "remove it or set schedule = custom", s->pipeline.schedule);
    if (s->pipeline.activation_limit > 0 && strcmp(s->pipeline.schedule, "zb-auto") != 0 &&
        strcmp(s->pipeline.schedule, "zb-exact") != 0)
        return fail(P, where_key(P, key_index("pipeline", "activation_limit"), w),
                    "activation_limit is only read with schedule = zb-auto or zb-exact (zb-1p "
                    "and zb-2p fix theirs at p and 2p), and schedule = %s; remove it or set "
                    "schedule = zb-auto", s->pipeline.schedule);
    if (s->pipeline.activation_limit > 0 && s->pipeline.activation_limit < 1)
        return fail(P, where_key(P, key_index("pipeline", "activation_limit"), w),
                    "activation_limit = %g holds less than one micro-batch's activations, and "
                    "every schedule needs one; use 1 or more, or 0 to take it from memory_gib",
                    s->pipeline.activation_limit);
    SchedIssue issue = {.key = "pipeline.schedule"};
    if (sc->validate(&sp, &issue) != 0) {
        int k = key_named(issue.key); // the schedule decides which key is wrong
        if (k < 0) k = key_named("pipeline.schedule");
        return fail(P, where_key(P, k, w), "%s", issue.msg);
    }
    double ops = 2.0 * (double)s->pipeline.stages * (double)s->pipeline.chunks *
                 (double)s->batch.micro_batches * (double)s->batch.iterations;
    if (ops > (double)SCN_MAX_OPS)
        return fail(P, blame(P, w, 4, "batch.micro_batches", "batch.iterations", "pipeline.stages", "pipeline.chunks"),
                    "this run has %.3g ops (2 x stages x chunks x micro_batches x iterations); "
                    "at most %lld, so use fewer micro_batches or iterations", ops,
                    (long long)SCN_MAX_OPS);
    return 1;
}

/* The asynchronous schedules update weights without a flush; their data-parallel step is
 * not modelled (PipeDream would all-reduce after every micro-batch). */
static const char *const ASYNC_SCHEDULES[] = {"pipedream", "pipedream-2bw"};

/* Tensor parallelism splits every layer over t GPUs of one node (its all-reduces run on
 * NVLink each layer), so t divides the heads, the MLP width and the GPUs of a node. */
static int check_parallel(Parser *P) {
    char w[WHERE_MAX];
    const Scenario *s = P->s;
    int64_t t = s->parallel.tensor, d = s->parallel.data;
    if (t > s->hw.gpus_per_node)
        return fail(P, blame(P, w, 2, "parallel.tensor", "hardware.gpus_per_node"),
                    "tensor = %lld is more than gpus_per_node = %lld; tensor-parallel GPUs "
                    "all-reduce every layer and must share a node: use tensor <= %lld and more "
                    "stages or data replicas", (long long)t, (long long)s->hw.gpus_per_node,
                    (long long)s->hw.gpus_per_node);
    if (s->hw.gpus_per_node % t != 0)
        return fail(P, blame(P, w, 2, "parallel.tensor", "hardware.gpus_per_node"),
                    "tensor = %lld does not divide gpus_per_node = %lld, so some tensor-parallel "
                    "groups would straddle two nodes; use a divisor of gpus_per_node",
                    (long long)t, (long long)s->hw.gpus_per_node);
    if (s->model.heads % t != 0 || s->model.ffn_hidden % t != 0)
        return fail(P, blame(P, w, 3, "parallel.tensor", "model.heads", "model.ffn_hidden"),
                    "tensor = %lld does not divide heads = %lld and ffn_hidden = %lld; each "
                    "tensor-parallel GPU takes heads / t heads and ffn_hidden / t columns, so "
                    "use a tensor that divides both", (long long)t, (long long)s->model.heads,
                    (long long)s->model.ffn_hidden);
    if (s->model.kv_heads % t != 0)
        return fail(P, blame(P, w, 2, "parallel.tensor", "model.kv_heads"),
                    "tensor = %lld does not divide kv_heads = %lld; each tensor-parallel GPU "
                    "takes kv_heads / t key/value heads (Megatron-LM does not replicate them), "
                    "so use a tensor that divides kv_heads", (long long)t,
                    (long long)s->model.kv_heads);
    if (s->parallel.sequence && t == 1)
        return fail(P, blame(P, w, 2, "parallel.sequence", "parallel.tensor"),
                    "sequence = true splits the tokens over the tensor-parallel GPUs, but "
                    "tensor = 1; use tensor > 1 or sequence = false");
    if (s->parallel.sequence && s->model.seq_len % t != 0)
        return fail(P, blame(P, w, 3, "parallel.sequence", "model.seq_len", "parallel.tensor"),
                    "sequence = true gives each of the tensor = %lld GPUs seq_len / t tokens, "
                    "but %lld does not divide evenly; use a tensor that divides seq_len",
                    (long long)t, (long long)s->model.seq_len);
    int64_t c = s->parallel.context;
    if ((double)s->pipeline.stages * (double)d * (double)t * (double)c > (double)(1 << 24))
        return fail(P, blame(P, w, 4, "parallel.data", "parallel.tensor", "parallel.context",
                             "pipeline.stages"),
                    "stages x data x tensor x context = %.0f devices; at most %d, so use fewer",
                    (double)s->pipeline.stages * (double)d * (double)t * (double)c, 1 << 24);
    if (s->hw.devices_per_gpu > 1 && d * t * c > 1)
        return fail(P, blame(P, w, 4, "hardware.devices_per_gpu", "parallel.data",
                             "parallel.tensor", "parallel.context"),
                    "devices_per_gpu = %lld puts several pipeline devices on one GPU, but data "
                    "= %lld, tensor = %lld and context = %lld need a GPU for each replica and "
                    "rank; use devices_per_gpu = 1, or data = tensor = context = 1",
                    (long long)s->hw.devices_per_gpu, (long long)d, (long long)t, (long long)c);
    if (c > 1 && s->model.seq_len % (2 * c) != 0)
        return fail(P, blame(P, w, 2, "parallel.context", "model.seq_len"),
                    "context = %lld splits each sample into 2 x %lld chunks (rank i takes "
                    "chunks i and 2c - 1 - i, so causal attention's work is even), but "
                    "seq_len = %lld is not a multiple of %lld; use a context that divides "
                    "seq_len / 2", (long long)c, (long long)c, (long long)s->model.seq_len,
                    (long long)(2 * c));
    if (c > 1 && s->hw.cost_model == COST_FLAT)
        return fail(P, blame(P, w, 2, "parallel.context", "hardware.cost_model"),
                    "context = %lld is priced by the roofline's kernels (attention of s/c "
                    "queries against every key, the key/value all-gather), but cost_model = "
                    "flat; use cost_model = roofline or context = 1", (long long)c);
    if (s->parallel.zero > 0 && d * c == 1)
        return fail(P, blame(P, w, 2, "parallel.zero", "parallel.data"),
                    "zero = %lld shards over the data-parallel replicas, but data = 1; use "
                    "data > 1 or zero = 0", (long long)s->parallel.zero);
    bool tail = scenario_has_tail(s);
    for (size_t i = 0; tail && i < sizeof ASYNC_SCHEDULES / sizeof *ASYNC_SCHEDULES; i++)
        if (strcmp(s->pipeline.schedule, ASYNC_SCHEDULES[i]) == 0)
            return fail(P, blame(P, w, 3, "parallel.data", "costs.optimizer_ms",
                                 "pipeline.schedule"),
                        "%s = %g with schedule = %s: the asynchronous schedules have no flush "
                        "for the gradient all-reduce and optimizer step, which pipesim does "
                        "not model for them; use data = 1 without optimizer_ms, or a flushed "
                        "schedule (1f1b, interleaved, zb-h1, ...)",
                        d > 1 ? "data" : "optimizer_ms",
                        d > 1 ? (double)d : s->costs.optimizer_ms, s->pipeline.schedule);
    return 1;
}

/* ---- numbered sections ------------------------------------------------------------------ */

static const char *where_numbered(const Parser *P, const Numbered *n, char *buf) {
    return n->line > 0 ? where_line(P, n->line, buf) : where_set(P, -n->line - 1, buf);
}

static int numbered_cmp(const void *pa, const void *pb) {
    const Numbered *x = pa, *y = pb;
    int64_t kx[5] = {x->kind, x->a, x->b, x->key, x->seq}, ky[5] = {y->kind, y->a, y->b, y->key, y->seq};
    for (int i = 0; i < 5; i++)
        if (kx[i] != ky[i]) return kx[i] < ky[i] ? -1 : 1;
    return 0;
}

/* Every device number in range (checked in the order given, so the first wrong line is the
 * one named), and devices_per_gpu a divisor of stages. */
static int check_numbered_range(Parser *P) {
    char w[WHERE_MAX];
    int64_t p = P->s->pipeline.stages, k = P->s->hw.devices_per_gpu;
    for (int i = 0; i < P->nnum; i++) {
        const Numbered *n = &P->num[i];
        int64_t hi = n->a > n->b ? n->a : n->b;
        char name[48];
        if (n->kind == SEC_DEVICE) snprintf(name, sizeof name, "device.%lld", (long long)n->a);
        else snprintf(name, sizeof name, "link.%lld-%lld", (long long)n->a, (long long)n->b);
        if (hi >= p)
            return fail(P, where_numbered(P, n, w), "[%s] names device %lld, but stages = "
                        "%lld numbers the pipeline's devices 0 .. %lld; use a device below "
                        "%lld or more stages", name, (long long)hi, (long long)p,
                        (long long)p - 1, (long long)p);
    }
    if (p % k != 0)
        return fail(P, blame(P, w, 2, "hardware.devices_per_gpu", "pipeline.stages"),
                    "stages = %lld is not a multiple of devices_per_gpu = %lld; groups of "
                    "devices_per_gpu consecutive devices share one GPU, e.g. devices_per_gpu = "
                    "%lld puts them all on one", (long long)p, (long long)k, (long long)p);
    return 1;
}

/* A key given twice in the file (the list is sorted, so repeats are neighbours). */
static int check_numbered_twice(Parser *P) {
    char w[WHERE_MAX];
    for (int i = 1; i < P->nnum; i++) {
        const Numbered *x = &P->num[i - 1], *y = &P->num[i];
        if (x->kind != y->kind || x->a != y->a || x->b != y->b || x->key != y->key ||
            x->line <= 0 || y->line <= 0)
            continue;
        int device = y->kind == SEC_DEVICE;
        const char *key = (device ? DEVICE_KEYS : LINK_KEYS)[y->key].key;
        return fail(P, where_line(P, y->line, w), "'%s' of this %s is given twice (first at "
                    "line %d); keep one", key, device ? "device" : "link", x->line);
    }
    return 1;
}

/* One device: [hardware]'s GPU shared devices_per_gpu ways, then the section's preset (also
 * shared), then the figures it writes, as they are. */
static void resolve_device(const Scenario *s, const ScnDevice *given, unsigned mask, ScnDevice *d) {
    double k = (double)s->hw.devices_per_gpu;
    *d = (ScnDevice){.peak_tflops = s->hw.peak_tflops / k, .efficiency = s->hw.efficiency,
                     .memory_gib = s->hw.memory_gib / k, .gemm_efficiency = s->hw.gemm_efficiency,
                     .hbm_bandwidth_gbs = s->hw.hbm_bandwidth_gbs / k,
                     .sms = s->hw.sms / (int64_t)k, .overridden = mask != 0};
    const GpuPreset *g = mask & 1 ? gpu_preset_find(given->gpu) : NULL;
    if (g) {
        strcpy(d->gpu, g->name);
        d->peak_tflops = (s->model.dtype == DTYPE_FP32 ? g->peak_tflops_32 : g->peak_tflops_16) / k;
        d->memory_gib = g->memory_gib / k;
        d->gemm_efficiency = g->gemm_efficiency;
        d->hbm_bandwidth_gbs = g->hbm_bandwidth_gbs / k;
        d->sms = g->sms / (int64_t)k;
    }
    if (mask & 2) d->peak_tflops = given->peak_tflops;
    if (mask & 4) d->efficiency = given->efficiency;
    if (mask & 8) d->memory_gib = given->memory_gib;
    if (mask & 16) d->gemm_efficiency = given->gemm_efficiency;
    if (mask & 32) d->hbm_bandwidth_gbs = given->hbm_bandwidth_gbs;
    if (mask & 64) d->sms = given->sms;
}

/* Applies the sorted numbered keys: s->device[p] for every device, s->link[] for every pair
 * named. O(n log n) in the keys given. */
static int resolve_numbered(Parser *P) {
    Scenario *s = P->s;
    int64_t p = s->pipeline.stages;
    if (!check_numbered_range(P)) return 0;
    if (P->nnum) qsort(P->num, (size_t)P->nnum, sizeof *P->num, numbered_cmp);
    if (!check_numbered_twice(P)) return 0;
    s->device = calloc((size_t)p, sizeof *s->device);
    s->link = calloc((size_t)P->nnum + 1, sizeof *s->link);
    if (!s->device || !s->link) return fail(P, P->name, "out of memory");
    char w[WHERE_MAX];
    int i = 0, ok = 1;
    for (int64_t d = 0; d < p && ok; d++) {
        ScnDevice given = {0};
        unsigned mask = 0;
        for (; ok && i < P->nnum && P->num[i].kind == SEC_DEVICE && P->num[i].a == d; i++) {
            const Numbered *n = &P->num[i];
            const KeyDef *kd = &DEVICE_KEYS[n->key];
            P->in_file = n->line > 0;
            ok = set_field(P, kd, (char *)&given + kd->offset, where_numbered(P, n, w), n->value);
            mask |= 1u << n->key;
        }
        resolve_device(s, &given, mask, &s->device[d]);
    }
    for (; ok && i < P->nnum; i++) {
        const Numbered *n = &P->num[i];
        ScnLink *l = s->nlinks ? &s->link[s->nlinks - 1] : NULL;
        if (!l || l->a != n->a || l->b != n->b) {
            l = &s->link[s->nlinks++];
            *l = (ScnLink){(int32_t)n->a, (int32_t)n->b, -1, -1};
        }
        const KeyDef *kd = &LINK_KEYS[n->key];
        P->in_file = n->line > 0;
        ok = set_field(P, kd, (char *)l + kd->offset, where_numbered(P, n, w), n->value);
    }
    P->in_file = false;
    if (ok && s->nlinks && s->costs.comm_ms >= 0)
        return fail(P, where_key(P, key_index("costs", "comm_ms"), w), "comm_ms fixes every "
                    "transfer, so the [link.%d-%d] figures would not be used; remove comm_ms or "
                    "the [link.A-B] sections", s->link[0].a, s->link[0].b);
    return ok;
}

/* [variability]: the jitter fits its model, the straggler's and the failure's keys come with
 * their device, and the devices are in the pipeline. Checked on values, not on which keys
 * were written, so a formatted scenario (every key written) reads back. */
static int check_variability(Parser *P) {
    char w[WHERE_MAX];
    const ScnVariability *v = &P->s->var;
    int64_t p = P->s->pipeline.stages;
    if (v->jitter == JITTER_NONE && v->jitter_cv > 0)
        return fail(P, blame(P, w, 2, "variability.jitter_cv", "variability.jitter"),
                    "jitter_cv = %g but jitter = none; set jitter = normal or lognormal, or "
                    "leave jitter_cv out", v->jitter_cv);
    if (v->jitter == JITTER_NORMAL && v->jitter_cv > 0.3)
        return fail(P, blame(P, w, 2, "variability.jitter_cv", "variability.jitter"),
                    "jitter_cv = %g is too wide for jitter = normal (its deviate is clamped to "
                    "+-3, so at most 0.3 keeps every op above 10%% of its time); use jitter = "
                    "lognormal for a wider spread", v->jitter_cv);
    static const char *const devs[2] = {"straggler_device", "failure_device"};
    int64_t dev[2] = {v->straggler_device, v->failure_device};
    for (int i = 0; i < 2; i++)
        if (dev[i] >= p)
            return fail(P, blame(P, w, 2, i ? "variability.failure_device"
                                            : "variability.straggler_device", "pipeline.stages"),
                        "%s = %lld but the pipeline has devices 0 .. %lld; give one of them",
                        devs[i], (long long)dev[i], (long long)(p - 1));
    const char *lonely = v->straggler_device >= 0 ? NULL
                       : v->straggler_slowdown != 1 ? "straggler_slowdown"
                       : v->straggler_start_ms != 0 ? "straggler_start_ms"
                       : v->straggler_end_ms >= 0 ? "straggler_end_ms" : NULL;
    if (lonely)
        return fail(P, where_key(P, key_index("variability", lonely), w), "%s needs "
                    "straggler_device; name the slow device, e.g. 'straggler_device = 3'",
                    lonely);
    if (v->straggler_end_ms >= 0 && v->straggler_end_ms <= v->straggler_start_ms)
        return fail(P, blame(P, w, 2, "variability.straggler_end_ms",
                             "variability.straggler_start_ms"),
                    "straggler_end_ms = %g is not after straggler_start_ms = %g; the window is "
                    "[start, end), or leave straggler_end_ms out for the rest of the run",
                    v->straggler_end_ms, v->straggler_start_ms);
    lonely = v->failure_device >= 0 ? (v->failure_at_ms < 0 ? "failure_device" : NULL)
           : v->failure_at_ms >= 0 ? "failure_at_ms" : v->restart_ms > 0 ? "restart_ms" : NULL;
    if (lonely)
        return fail(P, where_key(P, key_index("variability", lonely), w), "%s needs %s; a "
                    "failure is 'failure_device = 0', 'failure_at_ms = 500' (ms since the run's "
                    "start) and optionally 'restart_ms = 30000'", lonely,
                    v->failure_device >= 0 ? "failure_at_ms" : "failure_device");
    return 1;
}

/* The two cost models' keys do not mix: efficiency is the flat model's one factor. */
static int check_cost_model(Parser *P) {
    char w[WHERE_MAX];
    if (P->s->hw.cost_model == COST_ROOFLINE && efficiency_given(P))
        return fail(P, blame(P, w, 2, "hardware.cost_model", "hardware.efficiency"),
                    "efficiency is the flat cost model's single factor and cost_model = "
                    "roofline prices each kernel; drop efficiency (gemm_efficiency and "
                    "memory_efficiency tune the roofline) or set cost_model = flat");
    return 1;
}

static int validate(Parser *P) {
    // The schedule speaks before the partition: "1f1b runs one chunk" beats "40 layers do not
    // split into 16 stages" when chunks = 2 was the mistake.
    return check_required(P) && resolve_numbered(P) && check_cost_model(P) && check_costs(P) && check_model(P) &&
           check_schedule(P) && check_partition(P) && check_parallel(P) && check_moe(P) && check_variability(P);
}

/* ---- public ------------------------------------------------------------------------------- */

SchedParams scenario_sched_params(const Scenario *s) {
    return (SchedParams){.devices = (int32_t)s->pipeline.stages,
                         .chunks = (int32_t)s->pipeline.chunks,
                         .micro_batches = (int32_t)s->batch.micro_batches,
                         .iterations = (int32_t)s->batch.iterations,
                         .file = s->pipeline.schedule_file,
                         .activation_limit = s->pipeline.activation_limit};
}

int scenario_parse(const char *text, const char *name, const char *const *sets, int nsets,
                   Scenario *out, char err[SCN_ERR_MAX]) {
    memset(out, 0, sizeof *out);
    err[0] = '\0';
    snprintf(out->path, sizeof out->path, "%s", name);
    Parser P = {.s = out, .name = out->path, .text = text, .sets = sets, .err = err};
    init_defaults(&P);
    out->text = strdup(text);
    if (!out->text) return fail(&P, name, "out of memory"), 1;
    parse_text(&P);
    for (int i = 0; i < nsets && !P.failed; i++) apply_set(&P, i);
    if (!P.failed && out->hf_config[0]) apply_hf(&P);
    if (!P.failed) fill_derived(&P);
    if (!P.failed) validate(&P);
    for (int i = 0; i < P.nnum; i++) free(P.num[i].value);
    free(P.num);
    return P.failed ? 2 : 0;
}

int scenario_load(const char *path, const char *const *sets, int nsets, Scenario *out,
                  char err[SCN_ERR_MAX]) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, SCN_ERR_MAX, "cannot read '%s': %s", path, strerror(errno));
        return 1;
    }
    char *text = malloc(SCN_FILE_MAX + 1);
    size_t n = text ? fread(text, 1, SCN_FILE_MAX + 1, f) : 0;
    int bad = ferror(f) ? errno : 0;
    fclose(f);
    int rc = 0;
    if (!text || bad) {
        snprintf(err, SCN_ERR_MAX, "cannot read '%s': %s", path,
                 text ? strerror(bad) : "out of memory");
        rc = 1;
    } else if (n > SCN_FILE_MAX) {
        snprintf(err, SCN_ERR_MAX, "%s: larger than %d MiB; a scenario is a short text file",
                 path, SCN_FILE_MAX >> 20);
        rc = 2;
    } else if (memchr(text, '\0', n)) {
        size_t at = (size_t)((char *)memchr(text, '\0', n) - text);
        int line = 1;
        for (size_t i = 0; i < at; i++) line += text[i] == '\n';
        snprintf(err, SCN_ERR_MAX, "%s:%d: contains a NUL byte; a scenario is a text file "
                 "(INI: [section] and key = value lines)", path, line);
        rc = 2;
    } else {
        text[n] = '\0';
        rc = scenario_parse(text, path, sets, nsets, out, err);
    }
    free(text);
    return rc;
}

void scenario_free(Scenario *s) {
    free(s->text);
    free(s->pipeline.partition_layers);
    free(s->costs.stage_forward.ms), free(s->costs.stage_backward.ms);
    free(s->costs.stage_weight.ms);
    free(s->costs.scale_forward.ms), free(s->costs.scale_backward.ms);
    free(s->costs.scale_weight.ms);
    free(s->device), free(s->link);
    memset(s, 0, sizeof *s);
}

/* Appends printf output to a growing string; *buf becomes NULL when out of memory. */
static void append(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void append(char **buf, size_t *len, size_t *cap, const char *fmt, ...) {
    if (!*buf) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(*buf + *len, *cap - *len, fmt, ap);
        va_end(ap);
        if (n < 0) return;
        if ((size_t)n < *cap - *len) {
            *len += (size_t)n;
            return;
        }
        char *grown = realloc(*buf, *cap * 2 + (size_t)n);
        if (!grown) {
            free(*buf);
            *buf = NULL;
            return;
        }
        *buf = grown;
        *cap = *cap * 2 + (size_t)n;
    }
}

/* The shortest %g text that reads back as exactly x ("15.7", not "15.699999999999999"), in
 * exponent form only where %.17g would use it too ("80", not "8e+01"). */
static void format_double(double x, char buf[32]) {
    char full[32];
    snprintf(full, sizeof full, "%.17g", x);
    for (int prec = 1; prec < 17; prec++) {
        snprintf(buf, 32, "%.*g", prec, x);
        if (strtod(buf, NULL) == x && (!strchr(buf, 'e') || strchr(full, 'e'))) return;
    }
    strcpy(buf, full);
}

/* One key of a numbered section: a name, or a number (< 0: not given, written as a comment). */
/* With the roofline, efficiency (the flat model's factor) is written as a comment: given
 * together with cost_model = roofline it is an error. */
static bool flat_only(const Scenario *s, const KeyDef *kd) {
    return s->hw.cost_model == COST_ROOFLINE && strcmp(kd->key, "efficiency") == 0;
}

static void format_sub(char **buf, size_t *len, size_t *cap, const KeyDef *kd, const void *rec,
                       bool comment) {
    const void *field = (const char *)rec + kd->offset;
    char num[32];
    if (comment) append(buf, len, cap, "; ");
    if (kd->type == T_GPU) {
        const char *g = field;
        append(buf, len, cap, g[0] ? "%s = %s\n" : "; %s = (not given)\n", kd->key, g);
        return;
    }
    if (kd->type == T_INT) {
        append(buf, len, cap, "%s = %lld\n", kd->key, (long long)*(const int64_t *)field);
        return;
    }
    double x = *(const double *)field;
    format_double(x, num);
    append(buf, len, cap, x < 0 ? "; %s = (not given)\n" : "%s = %s\n", kd->key, num);
}

/* [device.N] for every device a section named, with its resolved figures (read back as
 * given, so the text stays stable), and [link.A-B] for every link override. */
static void format_numbered(const Scenario *s, char **buf, size_t *len, size_t *cap) {
    for (int64_t d = 0; d < s->pipeline.stages && s->device; d++) {
        if (!s->device[d].overridden) continue;
        append(buf, len, cap, "\n[device.%lld]\n", (long long)d);
        for (int k = 0; k < NDEVICE_KEYS; k++)
            format_sub(buf, len, cap, &DEVICE_KEYS[k], &s->device[d], flat_only(s, &DEVICE_KEYS[k]));
    }
    for (int64_t i = 0; i < s->nlinks; i++) {
        append(buf, len, cap, "\n[link.%d-%d]\n", s->link[i].a, s->link[i].b);
        for (int k = 0; k < NLINK_KEYS; k++)
            format_sub(buf, len, cap, &LINK_KEYS[k], &s->link[i], false);
    }
}

/* Keys without a value (unset costs, no gpu preset, no schedule file) are written as comments,
 * so every key and section shows and the text still reads back to the same Scenario. */
char *scenario_format(const Scenario *s) {
    size_t len = 0, cap = 2048;
    char *buf = malloc(cap), num[32];
    const char *section = "";
    for (int k = 0; k < NKEYS && buf; k++) {
        const KeyDef *kd = &KEYS[k];
        const void *field = (const char *)s + kd->offset;
        if (strcmp(section, kd->section) != 0)
            append(&buf, &len, &cap, "%s[%s]\n", len ? "\n" : "", section = kd->section);
        bool unset = (kd->type == T_DOUBLE && *(const double *)field < 0) ||
                     (kd->type == T_TIMES && ((const ScnTimeList *)field)->n == 0) ||
                     ((kd->type == T_GPU || kd->type == T_PATH) && !*(const char *)field) ||
                     (kd->type == T_DEVICE && *(const int64_t *)field < 0);
        bool comment = unset || flat_only(s, kd) || kd->offset == offsetof(Scenario, hf_config);
        append(&buf, &len, &cap, "%s%s =", comment ? "; " : "", kd->key);
        if (unset) {
            append(&buf, &len, &cap, " (not given)\n");
            continue;
        }
        if (kd->offset == offsetof(Scenario, hf_config)) { // read: its values are the keys above
            append(&buf, &len, &cap, " %s (read: its values are the [model] keys above)\n",
                   s->hf_config);
            continue;
        }
        switch (kd->type) {
        case T_INT:
        case T_DEVICE:
            append(&buf, &len, &cap, " %lld\n", (long long)*(const int64_t *)field);
            break;
        case T_JITTER: append(&buf, &len, &cap, " %s\n", jitter_name(s->var.jitter)); break;
        case T_BOOL: case T_MLP: case T_NORM: case T_ATTENTION: case T_POSITION: {
            const Choice *c = choice_of(kd->type);
            int i = *(const int *)field;
            append(&buf, &len, &cap, " %s\n", i >= 0 && i < c->n ? c->names[i] : "?");
            break;
        }
        case T_COST_MODEL:
            append(&buf, &len, &cap, " %s\n", cost_model_name(s->hw.cost_model));
            break;
        case T_DOUBLE:
            format_double(*(const double *)field, num);
            append(&buf, &len, &cap, " %s\n", num);
            break;
        case T_DTYPE: append(&buf, &len, &cap, " %s\n", dtype_name(s->model.dtype)); break;
        case T_RECOMPUTE:
            append(&buf, &len, &cap, " %s\n", recompute_name(s->model.recompute));
            break;
        case T_TIMES: {
            const ScnTimeList *t = field;
            for (int64_t i = 0; i < t->n; i++) {
                format_double(t->ms[i], num);
                append(&buf, &len, &cap, "%s%s", i ? "," : " ", num);
            }
            append(&buf, &len, &cap, "\n");
            break;
        }
        case T_OPTIMIZER:
            append(&buf, &len, &cap, " %s\n", optimizer_name(s->model.optimizer));
            break;
        case T_ALLREDUCE:
            append(&buf, &len, &cap, " %s\n", allreduce_name(s->parallel.allreduce));
            break;
        case T_PARTITION:
            if (s->pipeline.partition != PART_EXPLICIT) {
                append(&buf, &len, &cap, " %s\n",
                       s->pipeline.partition == PART_UNIFORM ? "uniform" : "balanced");
                break;
            }
            for (int64_t i = 0; i < s->pipeline.npartition; i++)
                append(&buf, &len, &cap, "%s%lld", i ? "," : " ",
                       (long long)s->pipeline.partition_layers[i]);
            append(&buf, &len, &cap, "\n");
            break;
        default: append(&buf, &len, &cap, " %s\n", (const char *)field); break;
        }
    }
    format_numbered(s, &buf, &len, &cap);
    return buf;
}
