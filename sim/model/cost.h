/* sim/model/cost.h: what each op and transfer costs. A stage's op is the layer's op list
 * (layer_ops.h: GEMMs, attention, the memory-bound kernels and the tensor-parallel
 * all-reduces) times its layers, plus the LM head on a last stage and the embedding on a
 * first one, priced kernel by kernel as a roofline (hardware.cost_model = roofline, the
 * default):
 *   GEMM    max(FLOPs / (peak x gemm_efficiency x quantisation x depth), bytes / bandwidth)
 *           + launch, where quantisation is the best, over a few tile shapes, of the share of
 *           the padded tiles and of the last wave of tiles over the SMs that does useful work,
 *           and depth = K / (K + 64) (a tile's prologue and epilogue, relative to the large K
 *           of the measured GEMMs);
 *   memory  bytes / (hbm_bandwidth x memory_efficiency) + launch;
 *   all-reduce (tensor-parallel, t GPUs of a node) a ring: 2(t-1) collective_latency +
 *           2(t-1)/t bytes / (intra_bandwidth x collective_efficiency) + launch, of which
 *           tp_overlap is hidden behind compute;
 * plus op_overhead_us per pipeline op. Recomputation reruns the whole forward (full) or its
 * attention core (selective) in B. cost_model = flat prices a stage's FLOPs at peak x
 * efficiency instead (the FLOPs of Narayanan et al. 2021, the F/B/W split of Qi et al. 2023
 * Table 1), with Megatron's 2 + 2 all-reduces a layer. [costs] replaces the times with
 * measured ones. Transfers are alpha-beta: latency + bytes / bandwidth of the link between the
 * two devices (a [link.A-B] override, else same GPU, same node or across nodes), or the fixed
 * comm_ms. Data parallelism (d replicas) adds each chunk's gradient all-reduce and an optimizer
 * step. With [parallel] zero (Rajbhandari et al. 2020; Megatron-LM's distributed optimizer):
 *   zero = 1, 2: each chunk's all-reduce becomes a ring reduce-scatter of its gradients (when
 *     its last backward ends, overlapping the cool-down as the all-reduce did), the optimizer
 *     step updates the device's 1/d shard (opt_ns / d), and then an all-gather of the updated
 *     parameters (same bytes) runs for each chunk, in chunk order, exposed: the next
 *     iteration's forward needs them. A ring reduce-scatter or all-gather of n bytes moves
 *     (k-1)/k n per GPU in k-1 steps, (k-1) alpha + (k-1)/k n / beta: half the ring
 *     all-reduce, and the all-gather is priced as the ring all-reduce less the reduce-scatter
 *     (both rounded once), so RS + AG = AR exactly. NCCL has no tree reduce-scatter or
 *     all-gather, so allreduce = tree only changes zero = 0. [costs] allreduce_ms is split in
 *     the same two parts. zero = 2 communicates as zero = 1 (its gradient shards only save
 *     memory here; a real ZeRO-2 that drops the full gradient reduce-scatters every
 *     micro-batch, which is not priced).
 *   zero = 3: also the weights are sharded, so every op gathers its chunk's weights over the
 *     d replicas before it runs (F and B an all-gather; W none, it needs no weights) and
 *     reduce-scatters its weight gradients after (W, BW), each a ring collective of the
 *     chunk's parameter bytes on the d replicas' links (intra-node when they share a node,
 *     as the all-reduce). They are priced EXPOSED, inside the op's time (z3_ns, added to
 *     op_ns): no prefetch behind the previous op's compute, so the figure is the upper bound
 *     FSDP's prefetching works down from; the op's split by kernel class leaves them out. The
 *     iteration's tail is then only the sharded optimizer step (the next forward gathers). */
#ifndef PIPESIM_COST_H
#define PIPESIM_COST_H

#include <stddef.h>
#include <stdint.h>

#include "sim/model/layer_ops.h"
#include "sim/plan/plan.h"
#include "sim/program/program.h"
#include "sim/scenario/scenario.h"

/* A [link.A-B] override in CostModel's open-addressed table: a < b; a = -1 marks a free slot. */
typedef struct {
    int32_t a, b;
    int64_t ns; // one transfer either way
} CostLink;

typedef struct {
    int32_t stages;
    int64_t *op_ns;       // owned: [stage*OP_KIND_COUNT + kind] ns of one op on one micro-batch;
                          //   BW = B + W
    double *op_flops;     // owned: same layout, model FLOPs of that op (no recompute)
    double *op_hw_flops;  // owned: same layout, FLOPs it executes (recomputation included)
    double *op_split;     // owned: [(stage*OP_KIND_COUNT + kind) * COST_SPLIT + class] ns of
                          //   the op by LayerClass, then launch and per-op overhead
                          //   (roofline only; flat and measured [costs]: all 0)
    int64_t xfer_bytes;   // bytes of one activation or gradient crossing a stage boundary
                          //   (one tensor rank's: s/t tokens with sequence parallelism)
    int64_t xfer_intra_ns; // ns of one transfer between devices of one node
    int64_t xfer_inter_ns; // ns of one transfer between nodes
    int32_t gpus_per_node; // physical GPUs per node
    int32_t devices_per_gpu; // devices sharing one GPU (SM partitions); 0 or 1: one each
    int64_t xfer_same_gpu_ns; // ns of one copy between two partitions of one GPU
    CostLink *links;       // owned: [link_mask + 1] slots, NULL when no [link.A-B] is given
    uint32_t link_mask;    // slots - 1 (a power of two, at least twice the links)
    int64_t fused_ns;     // one overlapped F&B pair (OPF_FUSED_NEXT); 0: the two ops' sum
    // Placement as in Megatron-LM (tensor rank fastest, then context, data, pipeline): GPU =
    // pipeline_rank * stride + data_rank * c t + context_rank * t + tensor_rank, node = GPU /
    // gpus_per_node. The engine simulates data replica 0, context and tensor rank 0; all
    // replicas run the same timeline.
    int64_t stride;       // GPUs between consecutive pipeline ranks, d c t (0 or 1: adjacent)
    // The data-parallel tail of each iteration (tail = 1 when d > 1 or optimizer_ms > 0):
    // every chunk's gradient all-reduce over the d replicas, then the optimizer step.
    int32_t tail;
    int32_t data;         // d c: the replicas and their context ranks in each all-reduce
    int64_t *grad_bytes;  // owned, [stage] (NULL when !tail): gradient bytes a GPU all-reduces
                          //   for the stage, its parameters x dtype bytes / t
    int64_t *ar_ns;       // owned, [2*stage + inter]: ns of that all-reduce when the d replicas
                          //   share a node (inter = 0) or not (1)
    int64_t *opt_ns;      // owned, [stage]: ns of the optimizer step of the stage's parameters
                          //   (of its 1/d shard with zero >= 1)
    int32_t zero;         // scenario_zero: 0 all-reduce; >= 1 reduce-scatter + all-gather
    int64_t *rs_ns;       // owned, [2*stage + inter] (NULL unless zero >= 1): the ring
                          //   reduce-scatter of the stage's gradients (grad_bytes) over d
    int64_t *ag_ns;       // owned, same layout: the ring all-gather of its parameters,
                          //   ring all-reduce - rs_ns, so rs_ns + ag_ns is the ring all-reduce
    int64_t *z3_ns;       // owned, [stage*OP_KIND_COUNT + kind] (NULL unless zero = 3): the
                          //   exposed ZeRO-3 collectives op_ns includes: F, B one all-gather,
                          //   W one reduce-scatter, BW both, on the stage's device's links
    int64_t tp_ar_ns;     // one tensor-parallel all-reduce of an activation (t GPUs), in F, B
    // Mixture of experts with expert parallelism (e > 1, roofline): the all-to-all time inside
    // each op (its MoE layers' dispatch and combine, exposed in op_ns, as 1F1B and interleaved
    // pay it), which DualPipe's overlapped F&B pairs hide behind the other op's computation
    // (cost_fused_ns), and the slowdown of that computation while communication holds
    // expert_comm_sms of the GPU's SMs: sms / (sms - expert_comm_sms).
    int64_t *a2a_ns;      // owned, [stage*OP_KIND_COUNT + kind] (NULL without e > 1)
    double overlap_slowdown; // >= 1
} CostModel;

/* An op's time split: the LayerClasses (GEMM, attention, memory-bound, tensor-parallel
 * communication exposed), then the kernels' launches and the per-op overhead. */
#define COST_SPLIT (LC_COUNT + 1)
#define COST_LAUNCH LC_COUNT
static inline const double *cost_op_split(const CostModel *c, int32_t stage, OpKind kind) {
    return &c->op_split[((int64_t)stage * OP_KIND_COUNT + kind) * COST_SPLIT];
}
const char *cost_split_name(int i); // "gemm", "attention", "memory", "tp_comm", "launch"

/* The layer's shape (layer_ops.h) for model m on micro-batches of b samples, without
 * parallelism; and as one tensor-parallel rank of scenario s runs it (t, sequence
 * parallelism, rank 0). */
LayerShape cost_model_shape(const ScnModel *m, int64_t b);
LayerShape cost_layer_shape(const Scenario *s);
/* An MoE layer's shape (moe = 1; experts, top-k, shared, expert width) for model m without
 * parallelism, and as one rank of scenario s runs it (with e and the busiest rank's
 * expert_work: capacity_factor when given, else from expert_hot_share: the rank holding the
 * hottest expert gets e (hot + (E/e - 1)(1 - hot)/(E - 1)) of the balanced T k). */
LayerShape cost_model_moe_shape(const ScnModel *m, int64_t b);
LayerShape cost_moe_shape(const Scenario *s);
double cost_expert_work(const Scenario *s);

/* FLOPs of one transformer layer on one micro-batch of b samples, for F, B (input gradient)
 * and W (weight gradient): the sums of the layer's op lists (layer_ops_flops), i.e. for GPT
 * with linear = 8bsh^2 + 4bshf and attention = 4bs^2h, F = linear + attention, B = linear +
 * 2 attention, W = linear (24bsh^2 + ... when f = 4h); layer_ops.h has the general form. */
void cost_layer_flops(const ScnModel *m, int64_t b, double *f, double *bwd, double *w);

/* FLOPs of the LM head (logits, 2bshV) on one micro-batch for F, B and W each. The embedding
 * lookup is a gather and costs no FLOPs. */
double cost_head_flops(const ScnModel *m, int64_t b);

/* cost_build prices every stage of the plan. Returns 0; 2 when the whole run would not fit the
 * integer-ns clock (about 146 years; err says which figure is absurd); -1 out of memory. */
int cost_build(const Scenario *s, const Plan *pl, CostModel *out, char *err, size_t errlen);
void cost_free(CostModel *c);

static inline int64_t cost_op_ns(const CostModel *c, int32_t stage, OpKind kind) {
    return c->op_ns[(int64_t)stage * OP_KIND_COUNT + kind];
}
static inline double cost_op_flops(const CostModel *c, int32_t stage, OpKind kind) {
    return c->op_flops[(int64_t)stage * OP_KIND_COUNT + kind];
}
static inline int64_t cost_a2a_ns(const CostModel *c, int32_t stage, OpKind kind) {
    return c->a2a_ns ? c->a2a_ns[(int64_t)stage * OP_KIND_COUNT + kind] : 0;
}
/* Time of an overlapped pair (DualPipe's F&B): [costs] overlap_fb_ms when given; else, when
 * the two ops hold expert-parallel all-to-alls, the longer of their computation (the ops less
 * their all-to-alls, slowed by overlap_slowdown: the SMs communication takes) and their
 * all-to-alls (one micro-batch's run while the other computes, DeepSeek-V3 section 3.2.1);
 * else the sum of the two ops. Two compute streams on one GPU share its tensor cores, so a
 * dense model gains nothing from the overlap. */
static inline int64_t cost_fused_ns(const CostModel *c, int32_t stage_a, OpKind kind_a,
                                    int32_t stage_b, OpKind kind_b) {
    if (c->fused_ns > 0) return c->fused_ns;
    int64_t ops = cost_op_ns(c, stage_a, kind_a) + cost_op_ns(c, stage_b, kind_b);
    int64_t a2a = cost_a2a_ns(c, stage_a, kind_a) + cost_a2a_ns(c, stage_b, kind_b);
    if (a2a <= 0) return ops;
    double compute = (double)(ops - a2a) * c->overlap_slowdown;
    return compute > (double)a2a ? (int64_t)(compute + 0.5) : a2a;
}

/* The physical GPU of pipeline device d (data replica 0, tensor rank 0): d * stride with data
 * or tensor parallelism, d / devices_per_gpu when devices share GPUs (the scenario never
 * allows both), and its node. */
static inline int64_t cost_gpu_of(const CostModel *c, int32_t d) {
    if (c->devices_per_gpu > 1) return d / c->devices_per_gpu;
    return (int64_t)d * (c->stride > 1 ? c->stride : 1);
}
static inline int64_t cost_node_of(const CostModel *c, int32_t d) {
    return cost_gpu_of(c, d) / c->gpus_per_node;
}

/* Whether the d replicas of pipeline device d (GPUs d*stride .. d*stride + stride - 1) span
 * more than one node, so their all-reduce crosses the inter-node links. */
static inline int cost_dp_inter(const CostModel *c, int32_t d) {
    int64_t gpus = c->stride > 1 ? c->stride : 1, first = (int64_t)d * gpus;
    return first / c->gpus_per_node != (first + gpus - 1) / c->gpus_per_node;
}

/* Time of the gradient all-reduce of stage st, held by pipeline device d (tail only). */
static inline int64_t cost_allreduce_ns(const CostModel *c, int32_t d, int32_t st) {
    return c->ar_ns[2 * (int64_t)st + cost_dp_inter(c, d)];
}

/* zero >= 1: the reduce-scatter of stage st's gradients and the all-gather of its
 * parameters, held by pipeline device d (rs_ns, ag_ns on the links cost_dp_inter picks). */
static inline int64_t cost_reduce_scatter_ns(const CostModel *c, int32_t d, int32_t st) {
    return c->rs_ns[2 * (int64_t)st + cost_dp_inter(c, d)];
}
static inline int64_t cost_all_gather_ns(const CostModel *c, int32_t d, int32_t st) {
    return c->ag_ns[2 * (int64_t)st + cost_dp_inter(c, d)];
}
/* zero = 3: ns of the collectives inside one op of kind on stage st (0 otherwise). */
static inline int64_t cost_zero3_ns(const CostModel *c, int32_t st, OpKind kind) {
    return c->z3_ns ? c->z3_ns[(int64_t)st * OP_KIND_COUNT + kind] : 0;
}

/* Ring reduce-scatter (equally all-gather) of n bytes over k GPUs: k-1 steps, (k-1)/k n sent
 * per GPU: (k-1) alpha + (k-1)/k n / beta, rounded to ns once; 0 for k = 1. Half of the ring
 * all-reduce below before rounding; cost_build prices the all-gather as the ring all-reduce
 * less this, so the two add up to the all-reduce exactly. */
int64_t cost_reduce_scatter_formula_ns(int64_t k, double latency_us, double bandwidth_gbs,
                                       double bytes);

/* All-reduce of n bytes over k GPUs on links of latency_us and bandwidth_gbs (alpha-beta):
 * ring (NCCL's ring: a reduce-scatter and an all-gather, 2(k-1) steps of n/k bytes)
 *   2(k-1) alpha + 2(k-1)/k n / beta;
 * tree (NCCL's double binary tree, Sanders et al. 2009; NCCL 2.4: log-depth latency at full
 *   bandwidth; each GPU sends and receives about n in the reduce and again in the broadcast)
 *   2 ceil(log2 k) alpha + 2 n / beta.
 * 0 for k = 1. Rounded to ns once. */
int64_t cost_allreduce_formula_ns(Allreduce algo, int64_t k, double latency_us,
                                  double bandwidth_gbs, double bytes);

/* The expert-parallel all-to-all of `bytes` (what one rank sends, its own share included)
 * over the e ranks of an expert group: each peer gets bytes / e. The group's ranks are e
 * consecutive data-parallel ranks, `spacing` = c t GPUs apart, so m = min(e, gpus_per_node /
 * spacing) of them share a node (1 when spacing > gpus_per_node): m - 1 peers over NVLink, e -
 * m over the network, both at once (NCCL posts every send together), so
 *   max(collective_latency + (m - 1)/e bytes / (intra_bw x eff),
 *       inter_latency      + (e - m)/e bytes / (inter_bw x eff)),
 * a term only when it has peers; 0 for e = 1. With [parallel] expert_node_limit = M and the
 * group over N = e / m nodes (DeepSeek-V3 section 3.2.2: a token goes to at most M nodes,
 * once over InfiniBand to each, then over NVLink to its experts there), one copy of a token
 * (bytes / k) crosses the network to each of min(M, k, N) nodes, (N - 1)/N of them remote on
 * average, and each of its k copies but the one landing on its target GPU moves over NVLink:
 *   max(collective_latency + k (m - 1)/m bytes/k / (intra_bw x eff),
 *       inter_latency      + min(M, k, N) (N - 1)/N bytes/k / (inter_bw x eff)).
 * Returns ns, not rounded (the op is rounded once). */
double cost_alltoall_ns(const Scenario *s, double bytes);

/* One tensor-parallel all-reduce inside an op: its start (ns from the op's start), duration
 * and bytes, as the roofline prices the op's kernels one after another. */
typedef struct {
    double start_ns, ns, bytes;
    int kernel; // LK_ALLREDUCE, LK_ALLGATHER or LK_REDUCE_SCATTER
} CostSpan;

/* The tensor-parallel collectives inside one op of kind on stage st (one micro-batch), in the
 * order they run, at most max of them into out; returns how many there are (may exceed max).
 * 0 without tensor parallelism and with the flat model or measured [costs]; W has some only
 * with sequence parallelism (its all-gathers). */
int cost_op_allreduces(const Scenario *s, const Plan *pl, int32_t st, OpKind kind,
                       CostSpan *out, int max);

/* ns of F + B + W (with recompute) of `layers` layers on one micro-batch on device d, plus the
 * embedding when first and the LM head when head: the analytic time partition = balanced
 * evens out. Same rounding as cost_build's op times, so it equals the sum of a stage's F, B
 * and W ops without [costs]. */
int64_t cost_stage_ns(const Scenario *s, int32_t device, int64_t layers, int first, int head);

/* One layer's FLOPs on one micro-batch (cost_layer_flops: its op lists, summed once) and the
 * LM head's (cost_head_flops, for each of F, B and W). */
typedef struct {
    double f, b, w;
    double head;
    double moe_f, moe_b, moe_w; // an MoE layer's (0 for a dense model)
} CostFlops;
void cost_flops_init(CostFlops *out, const Scenario *s);

/* The roofline's prices of the passes on one kind of device (ns, not rounded, by split):
 * a layer's F, B and W and its recomputation in B, the LM head's and the embedding's; and
 * per pass their sums over the classes with [costs] scale_* applied (B's recomputation with
 * F's factors), which the partitioner's stage time adds up. */
typedef struct {
    double layer[3][COST_SPLIT], recompute[COST_SPLIT], head[3][COST_SPLIT], embed[3][COST_SPLIT];
    double sum_layer[3], sum_recompute, sum_head[3], sum_embed[3];
    // an MoE layer's (zero for a dense model), and the all-to-alls inside its passes (scaled)
    double moe[3][COST_SPLIT], moe_recompute[COST_SPLIT], sum_moe[3], sum_moe_recompute;
    double moe_a2a[3];
} CostPrices;
#define COST_PRICE_CACHE 8 // kinds of device whose prices a CostPartition keeps

/* What partition = balanced asks of the models (partition.h): a stage's F + B + W (exactly
 * cost_stage_ns on its device, with the LM head on a last stage, from prices made once per
 * kind of device) and the most layers its memory holds (memory_stage_layer_cap).
 * cost_partition_init fills cp for s (which must outlive it) and returns the model to hand to
 * plan_build. */
typedef struct {
    PartitionModel model;  // ctx: this
    const Scenario *s;
    CostFlops flops;
    int64_t tp_ar_ns;      // flat: one tensor-parallel all-reduce of an activation
    int32_t cached;        // roofline: device kinds priced
    int32_t device[COST_PRICE_CACHE]; // a device of each kind
    CostPrices prices[COST_PRICE_CACHE];
} CostPartition;
const PartitionModel *cost_partition_init(CostPartition *cp, const Scenario *s);

/* Time of one transfer between devices a and b (a != b) without overrides: a copy inside one
 * GPU, a link inside a node, or one between nodes. */
static inline int64_t cost_pair_ns(const CostModel *c, int32_t a, int32_t b) {
    if (c->devices_per_gpu > 1 && cost_gpu_of(c, a) == cost_gpu_of(c, b))
        return c->xfer_same_gpu_ns;
    return cost_node_of(c, a) == cost_node_of(c, b) ? c->xfer_intra_ns : c->xfer_inter_ns;
}

/* Time of one transfer from device a to device b (a != b): the [link.A-B] override of the pair
 * if any (found by linear probing from a hash of the pair: O(1) with the table at most half
 * full), else cost_pair_ns. */
static inline int64_t cost_xfer_ns(const CostModel *c, int32_t a, int32_t b) {
    if (c->links) {
        int32_t lo = a < b ? a : b, hi = a < b ? b : a;
        for (uint32_t i = ((uint32_t)lo * 2654435761u ^ (uint32_t)hi) & c->link_mask;
             c->links[i].a >= 0; i = (i + 1) & c->link_mask)
            if (c->links[i].a == lo && c->links[i].b == hi) return c->links[i].ns;
    }
    return cost_pair_ns(c, a, b);
}

#endif
