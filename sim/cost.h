/* sim/cost.h: what each op and transfer costs. Analytic FLOPs of a GPT layer (Narayanan et al.
 * 2021; the F/B/W split of Qi et al. 2023 Table 1) plus the LM head on the last stage, divided
 * by peak x efficiency; [costs] replaces the times with measured ones. Transfers are alpha-beta:
 * latency + bytes / bandwidth of the link between the two devices, or the fixed comm_ms.
 * Data parallelism (d replicas) adds each chunk's gradient all-reduce and an optimizer step;
 * tensor parallelism (t) divides the GEMM time by t and adds Megatron's activation
 * all-reduces (2 in F, 2 in B per layer). */
#ifndef PIPESIM_COST_H
#define PIPESIM_COST_H

#include <stddef.h>
#include <stdint.h>

#include "plan.h"
#include "scenario.h"
#include "timeline.h"

typedef struct {
    int32_t stages;
    int64_t *op_ns;       // owned: [stage*OP_KIND_COUNT + kind] ns of one op on one micro-batch;
                          //   BW = B + W
    double *op_flops;     // owned: same layout, model FLOPs of that op (no recompute)
    int64_t xfer_bytes;   // bytes of one activation or gradient crossing a stage boundary
    int64_t xfer_intra_ns; // ns of one transfer between devices of one node
    int64_t xfer_inter_ns; // ns of one transfer between nodes
    int32_t gpus_per_node;
    int64_t fused_ns;     // one overlapped F&B pair (OPF_FUSED_NEXT); 0: the two ops' sum
    // Placement as in Megatron-LM (tensor rank fastest, then data, then pipeline): GPU =
    // pipeline_rank * stride + data_rank * t + tensor_rank, node = GPU / gpus_per_node. The
    // engine simulates data replica 0, tensor rank 0; all replicas run the same timeline.
    int64_t stride;       // GPUs between consecutive pipeline ranks, d * t (0 or 1: adjacent)
    // The data-parallel tail of each iteration (tail = 1 when d > 1 or optimizer_ms > 0):
    // every chunk's gradient all-reduce over the d replicas, then the optimizer step.
    int32_t tail;
    int32_t data;         // d, replicas in each all-reduce
    int64_t *grad_bytes;  // owned, [stage] (NULL when !tail): gradient bytes a GPU all-reduces
                          //   for the stage, its parameters x dtype bytes / t
    int64_t *ar_ns;       // owned, [2*stage + inter]: ns of that all-reduce when the d replicas
                          //   share a node (inter = 0) or not (1)
    int64_t *opt_ns;      // owned, [stage]: ns of the optimizer step of the stage's parameters
    int64_t tp_ar_ns;     // one tensor-parallel all-reduce of an activation (t GPUs), in F, B
} CostModel;

/* FLOPs of one transformer layer on one micro-batch of b samples, for F, B (input gradient)
 * and W (weight gradient): with linear = 8bsh^2 + 4bshf and attention = 4bs^2h,
 * F = linear + attention, B = linear + 2 attention, W = linear (24bsh^2 + ... when f = 4h). */
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
/* Time of an overlapped pair (DualPipe's F&B): [costs] overlap_fb_ms when given, else the sum
 * of the two ops. Two compute streams on one GPU share its tensor cores, so a dense model
 * gains nothing from the overlap; DualPipe's gain is hiding MoE all-to-all and pipeline
 * transfers, which a measured overlap_fb_ms can express. */
static inline int64_t cost_fused_ns(const CostModel *c, int32_t stage_a, OpKind kind_a,
                                    int32_t stage_b, OpKind kind_b) {
    return c->fused_ns > 0 ? c->fused_ns
                           : cost_op_ns(c, stage_a, kind_a) + cost_op_ns(c, stage_b, kind_b);
}

/* The node of pipeline device d's first GPU (data replica 0, tensor rank 0). */
static inline int64_t cost_node_of(const CostModel *c, int32_t d) {
    return (int64_t)d * (c->stride > 1 ? c->stride : 1) / c->gpus_per_node;
}

/* Time of one transfer from device a to device b (a != b). */
static inline int64_t cost_xfer_ns(const CostModel *c, int32_t a, int32_t b) {
    return cost_node_of(c, a) == cost_node_of(c, b) ? c->xfer_intra_ns : c->xfer_inter_ns;
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

/* All-reduce of n bytes over k GPUs on links of latency_us and bandwidth_gbs (alpha-beta):
 * ring (NCCL's ring: a reduce-scatter and an all-gather, 2(k-1) steps of n/k bytes)
 *   2(k-1) alpha + 2(k-1)/k n / beta;
 * tree (NCCL's double binary tree, Sanders et al. 2009; NCCL 2.4: log-depth latency at full
 *   bandwidth; each GPU sends and receives about n in the reduce and again in the broadcast)
 *   2 ceil(log2 k) alpha + 2 n / beta.
 * 0 for k = 1. Rounded to ns once. */
int64_t cost_allreduce_formula_ns(Allreduce algo, int64_t k, double latency_us,
                                  double bandwidth_gbs, double bytes);

#endif
