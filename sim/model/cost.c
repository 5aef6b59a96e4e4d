/* sim/model/cost.c: op costs (cost.h): the roofline over the layer's op list, or the flat
 * FLOPs-at-efficiency model; measured [costs]; transfers; the data-parallel all-reduces and
 * optimizer step. The clock is integer ns; a stage's op is rounded once. */
#include "sim/model/cost.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/model/layer_ops.h"
#include "sim/model/memory.h"

LayerShape cost_model_shape(const ScnModel *m, int64_t b) {
    return (LayerShape){.samples = (int32_t)b, .seq = (int32_t)m->seq_len,
                        .hidden = (int32_t)m->hidden, .heads = (int32_t)m->heads,
                        .ffn = (int32_t)m->ffn_hidden, .dropout = (float)m->dropout,
                        .elem = dtype_bytes(m->dtype), .vocab = (int32_t)m->vocab,
                        .kv_heads = (int32_t)scenario_kv_heads(m),
                        .head_dim = (int32_t)scenario_head_dim(m),
                        .swiglu = m->mlp == MLP_SWIGLU, .rms = m->norm == NORM_RMSNORM,
                        .flash = m->attention == ATTENTION_FLASH};
}

LayerShape cost_layer_shape(const Scenario *s) {
    LayerShape sh = cost_model_shape(&s->model, s->batch.micro_batch_size);
    sh.tensor = (int32_t)scenario_tensor(s);
    sh.seqpar = s->parallel.sequence && sh.tensor > 1;
    sh.context = (int32_t)scenario_context(s);
    return sh;
}

LayerShape cost_model_moe_shape(const ScnModel *m, int64_t b) {
    LayerShape sh = cost_model_shape(m, b);
    sh.moe = m->experts > 0;
    sh.experts = (int32_t)m->experts, sh.topk = (int32_t)m->experts_per_token;
    sh.shared = (int32_t)m->shared_experts;
    sh.expert_ffn = (int32_t)(m->expert_ffn_hidden > 0 ? m->expert_ffn_hidden : m->ffn_hidden);
    return sh;
}

double cost_expert_work(const Scenario *s) {
    const ScnModel *m = &s->model;
    if (m->capacity_factor > 0) return m->capacity_factor; // every expert padded to capacity
    double E = (double)m->experts, e = (double)scenario_expert(s), hot = m->expert_hot_share;
    if (E <= 1 || hot * E <= 1) return 1;
    double w = e * (hot + (E / e - 1) * (1 - hot) / (E - 1));
    return w > 1 ? w : 1;
}

LayerShape cost_moe_shape(const Scenario *s) {
    LayerShape sh = cost_layer_shape(s), m = cost_model_moe_shape(&s->model, s->batch.micro_batch_size);
    sh.moe = m.moe, sh.experts = m.experts, sh.topk = m.topk, sh.shared = m.shared;
    sh.expert_ffn = m.expert_ffn;
    sh.expert = (int32_t)scenario_expert(s);
    sh.expert_work = (float)cost_expert_work(s);
    return sh;
}

double cost_alltoall_ns(const Scenario *s, double bytes) {
    int64_t e = scenario_expert(s);
    if (e < 2) return 0;
    int64_t spacing = scenario_context(s) * scenario_tensor(s), G = s->hw.gpus_per_node;
    int64_t m = spacing > G ? 1 : G / spacing; // group members in a node
    if (m > e) m = e;
    const ScnNetwork *n = &s->net;
    double intra = 0, inter = 0, E = (double)e;
    int64_t M = s->parallel.expert_node_limit, k = s->model.experts_per_token > 0 ? s->model.experts_per_token : 1;
    if (M > 0 && e > m) { // node-limited: once a node over the network, then NVLink
        double nodes = (double)((e + m - 1) / m), one = bytes / (double)k, kk = (double)k;
        double reach = (double)(M < k ? M : k);
        if (reach > nodes) reach = nodes;
        double bw_i = n->intra_bandwidth_gbs * n->collective_efficiency;
        double bw_n = n->inter_bandwidth_gbs * n->collective_efficiency;
        intra = m > 1 ? n->collective_latency_us * 1e3 + kk * (double)(m - 1) / (double)m * one / bw_i : 0;
        inter = n->inter_latency_us * 1e3 + reach * (nodes - 1) / nodes * one / bw_n;
        return intra > inter ? intra : inter;
    }
    if (m > 1)
        intra = n->collective_latency_us * 1e3 +
                bytes * (double)(m - 1) / E / (n->intra_bandwidth_gbs * n->collective_efficiency);
    if (e > m)
        inter = n->inter_latency_us * 1e3 +
                bytes * (double)(e - m) / E / (n->inter_bandwidth_gbs * n->collective_efficiency);
    return intra > inter ? intra : inter;
}

void cost_layer_flops(const ScnModel *m, int64_t b, double *f, double *bwd, double *w) {
    LayerShape sh = cost_model_shape(m, b);
    *f = layer_ops_flops(&sh, OP_F);
    *bwd = layer_ops_flops(&sh, OP_B);
    *w = layer_ops_flops(&sh, OP_W);
}

double cost_head_flops(const ScnModel *m, int64_t b) {
    return 2.0 * (double)b * (double)m->seq_len * (double)m->hidden * (double)m->vocab;
}

/* ns for a time given in ms by the user, or for flops at the achieved rate. Times beyond
 * 2^60 ns saturate there, and check_clock then rejects the run. */
static int64_t to_ns(double ns) { return ns < 0x1p60 ? llround(ns) : (int64_t)1 << 60; }

static int64_t ms_to_ns(double ms) { return to_ns(ms * 1e6); }

/* FLOP/ns device d achieves: its peak x efficiency (TFLOP/s = 1e3 FLOP/ns); [hardware]'s for
 * a Scenario filled in by hand without per-device figures. */
static double device_rate(const Scenario *s, int32_t d) {
    if (s->device) return s->device[d].peak_tflops * s->device[d].efficiency * 1e3;
    return s->hw.peak_tflops * s->hw.efficiency * 1e3;
}

static int64_t flops_to_ns(double flops, double rate) { return to_ns(flops / rate); }

static int64_t link_ns(double latency_us, double bandwidth_gbs, int64_t bytes) {
    return to_ns(latency_us * 1e3 + (double)bytes / bandwidth_gbs); // GB/s = bytes/ns
}

/* Time the backward spends recomputing (Korthikanti et al. 2022): full reruns the layers'
 * forward (layer_f FLOPs; the LM head is not recomputed), selective the attention core
 * (attention FLOPs, 4bs^2h per layer). It goes into B, which needs the activations first
 * (W uses what B rebuilt). Priced as that share of the stage's forward time, so measured
 * [costs] scale the same way as the analytic model. Model FLOPs (MFU) leave it out. */
static int64_t recompute_ns(const Scenario *s, double layer_f, double attention, double f_flops,
                            int64_t f_ns) {
    double extra = s->model.recompute == RECOMPUTE_FULL        ? layer_f
                   : s->model.recompute == RECOMPUTE_SELECTIVE ? attention
                                                               : 0.0;
    return to_ns((double)f_ns * extra / f_flops);
}

int64_t cost_allreduce_formula_ns(Allreduce algo, int64_t k, double latency_us,
                                  double bandwidth_gbs, double bytes) {
    if (k < 2) return 0;
    double alpha = latency_us * 1e3, n = bytes / bandwidth_gbs; // ns; GB/s = bytes/ns
    if (algo == ALLREDUCE_TREE) {
        int steps = 0;
        while (((int64_t)1 << steps) < k) steps++; // ceil(log2 k)
        return to_ns(2.0 * steps * alpha + 2.0 * n);
    }
    double km1 = (double)(k - 1);
    return to_ns(2.0 * km1 * alpha + 2.0 * km1 / (double)k * n);
}

int64_t cost_reduce_scatter_formula_ns(int64_t k, double latency_us, double bandwidth_gbs,
                                       double bytes) {
    if (k < 2) return 0;
    double alpha = latency_us * 1e3, n = bytes / bandwidth_gbs, km1 = (double)(k - 1);
    return to_ns(km1 * alpha + km1 / (double)k * n);
}

/* One tensor-parallel all-reduce of an activation (b*s*h elements) over the t GPUs of a node. */
static int64_t tp_allreduce_ns(const Scenario *s) {
    double bytes = (double)s->batch.micro_batch_size * (double)s->model.seq_len *
                   (double)s->model.hidden * dtype_bytes(s->model.dtype);
    return cost_allreduce_formula_ns(ALLREDUCE_RING, scenario_tensor(s), s->net.intra_latency_us,
                                     s->net.intra_bandwidth_gbs, bytes);
}

/* Megatron-LM's tensor parallelism (Shoeybi et al. 2019): every GEMM is split over t GPUs, and
 * each layer all-reduces its activation twice in the forward (after attention and after the
 * MLP) and its input gradient twice in the backward, a ring over t GPUs of one node on b*s*h
 * elements. Applied to the analytic model only: measured [costs] are one GPU's times as run.
 * rate is the device's FLOP/ns. */
static int64_t tp_time(const Scenario *s, double layers, double flops, int allreduces,
                       double rate, int64_t tp_ar_ns) {
    double t = (double)scenario_tensor(s);
    return flops_to_ns(flops / t, rate) + (int64_t)allreduces * (int64_t)layers * tp_ar_ns;
}

/* ---- the roofline ---------------------------------------------------------------------- */

const char *cost_split_name(int i) {
    static const char *const NAMES[COST_SPLIT] = {"gemm", "attention", "memory", "tp_comm",
                                                 "launch"};
    return (unsigned)i < COST_SPLIT ? NAMES[i] : "?";
}

/* One device's figures, as the roofline prices a kernel. */
typedef struct {
    double peak;      // FLOP/ns at the dense peak for the dtype (TFLOP/s = 1e3 FLOP/ns)
    double gemm_eff;  // fraction of it the best-shaped large GEMMs reach
    double bw;        // bytes/ns memory-bound kernels reach
    double launch_ns; // fixed cost of a kernel
    int64_t sms;      // 0: no wave quantisation
} Roof;

static Roof roof_of(const Scenario *s, int32_t d) {
    const ScnHardware *h = &s->hw;
    const ScnDevice *dv = s->device ? &s->device[d] : NULL;
    double k = h->devices_per_gpu > 1 ? (double)h->devices_per_gpu : 1;
    return (Roof){.peak = (dv ? dv->peak_tflops : h->peak_tflops) * 1e3,
                  .gemm_eff = dv ? dv->gemm_efficiency : h->gemm_efficiency,
                  .bw = (dv ? dv->hbm_bandwidth_gbs : h->hbm_bandwidth_gbs / k) *
                        h->memory_efficiency,
                  .launch_ns = h->launch_us * 1e3,
                  .sms = dv ? dv->sms : (int64_t)((double)h->sms / k)};
}

static int roof_same(const Roof *a, const Roof *b) {
    return a->peak == b->peak && a->gemm_eff == b->gemm_eff && a->bw == b->bw &&
           a->launch_ns == b->launch_ns && a->sms == b->sms;
}

/* The share of a GEMM's tiles' work that is useful (padding of partial tiles, the idle SMs
 * of the last wave), for the best of a few tile shapes (the smaller ones a little less
 * efficient per tile, as their operands are reused less), one launch of `batch` matrices. */
static double gemm_quantisation(const Roof *r, const LayerOp *o) {
    static const struct { double m, n, eff; } TILES[] = {
        {128, 256, 1}, {256, 128, 1}, {128, 128, 0.9}, {64, 128, 0.75}, {128, 64, 0.75}};
    if (r->sms <= 0) return 1;
    double M = (double)o->M, N = (double)o->N, best = 0;
    for (size_t i = 0; i < sizeof TILES / sizeof TILES[0]; i++) {
        double nm = ceil(M / TILES[i].m), nn = ceil(N / TILES[i].n);
        double tiles = nm * nn * (double)o->batch, waves = ceil(tiles / (double)r->sms);
        double q = M * N / (nm * TILES[i].m * nn * TILES[i].n) * tiles / (waves * (double)r->sms);
        if (q * TILES[i].eff > best) best = q * TILES[i].eff;
    }
    return best;
}

/* The achievable rate of a kernel with inner dimension K (FLOP/ns): a long reduction keeps
 * the tensor cores fed, a short one (attention's head dimension) less so, K / (K + 64)
 * against a 4096-deep GEMM's. */
static double depth_rate(const Roof *r, int64_t K) {
    double depth = (double)K / ((double)K + 64) / (4096.0 / (4096.0 + 64));
    return r->peak * r->gemm_eff * (depth < 1 ? depth : 1);
}

/* A kernel's time (ns, without its launch): a GEMM at its shape's share of the achievable
 * rate unless its bytes take longer; flash attention likewise at its head dimension's rate
 * for the FLOPs it executes; a ring collective over the t GPUs of a node (an all-reduce
 * 2(t - 1) steps moving 2(t - 1)/t of the buffer, an all-gather or a reduce-scatter half of
 * that), or over the c context ranks (c - 1 steps, NVLink while t c GPUs fit a node, else
 * the network's latency and bandwidth; tp_overlap does not hide it); else its bytes at the
 * memory bandwidth. */
static double kernel_ns(const Scenario *s, const Roof *r, const LayerOp *o) {
    if (o->kernel == LK_GEMM || o->kernel == LK_FLASH || o->kernel == LK_FLASH_BW) {
        double rate = depth_rate(r, o->K) * (o->kernel == LK_GEMM ? gemm_quantisation(r, o) : 1);
        double compute = o->flops * o->work / rate, memory = o->bytes / r->bw;
        return compute > memory ? compute : memory;
    }
    if (o->kernel == LK_ALLTOALL) return cost_alltoall_ns(s, o->bytes * o->work);
    if (layer_kernel_is_collective(o->kernel)) { // a ring over the k ranks of its group
        double t = (double)scenario_tensor(s), c = (double)scenario_context(s);
        double k = o->over ? c : t;
        int inter = o->over && t * c > (double)s->hw.gpus_per_node; // context leaves the node
        double bw = (inter ? s->net.inter_bandwidth_gbs : s->net.intra_bandwidth_gbs) *
                    s->net.collective_efficiency;
        double lat = inter ? s->net.inter_latency_us : s->net.collective_latency_us;
        double steps = (o->kernel == LK_ALLREDUCE ? 2 : 1) * (k - 1);
        double ring = steps * (lat * 1e3 + o->bytes / k / bw);
        return o->over ? ring : ring * (1 - s->parallel.tp_overlap);
    }
    return o->bytes / r->bw;
}

/* Adds the ops' times into split (by class; launches in COST_LAUNCH); with only_attention,
 * only the attention core (selective recomputation reruns it). */
static void price_ops(const Scenario *s, const Roof *r, const LayerOp *ops, int n,
                      int only_attention, double *split) {
    for (int i = 0; i < n; i++) {
        if (only_attention && ops[i].cls != LC_ATTENTION) continue;
        split[ops[i].cls] += kernel_ns(s, r, &ops[i]);
        split[COST_LAUNCH] += r->launch_ns * (double)ops[i].repeat;
    }
}

/* [costs] scale_* factor of class i in pass k (1 when not given). */
static double pass_scale(const Scenario *s, OpKind k, int i) {
    const ScnTimeList *t = k == OP_F   ? &s->costs.scale_forward
                           : k == OP_B ? &s->costs.scale_backward
                                       : &s->costs.scale_weight;
    return t->n == COST_SPLIT ? t->ms[i] : 1.0;
}

/* Prices every pass on a device of figures r. */
static void prices_of(const Scenario *s, const Roof *r, CostPrices *out) {
    memset(out, 0, sizeof *out);
    LayerShape sh = cost_layer_shape(s);
    LayerOp ops[LAYER_OPS_MAX];
    for (int k = 0; k < 3; k++) {
        price_ops(s, r, ops, layer_ops(&sh, (OpKind)k, ops), 0, out->layer[k]);
        price_ops(s, r, ops, layer_head_ops(&sh, (OpKind)k, ops), 0, out->head[k]);
        price_ops(s, r, ops, layer_embed_ops(&sh, (OpKind)k, ops), 0, out->embed[k]);
    }
    if (s->model.recompute != RECOMPUTE_NONE)
        price_ops(s, r, ops, layer_ops(&sh, OP_F, ops),
                  s->model.recompute == RECOMPUTE_SELECTIVE, out->recompute);
    if (s->model.experts > 0) { // an MoE layer's passes, and the all-to-alls among them
        LayerShape ms = cost_moe_shape(s);
        for (int k = 0; k < 3; k++) {
            int n = layer_ops(&ms, (OpKind)k, ops);
            price_ops(s, r, ops, n, 0, out->moe[k]);
            for (int i = 0; i < n; i++)
                if (ops[i].kernel == LK_ALLTOALL)
                    out->moe_a2a[k] += pass_scale(s, (OpKind)k, LC_COMM) * kernel_ns(s, r, &ops[i]);
        }
        if (s->model.recompute != RECOMPUTE_NONE)
            price_ops(s, r, ops, layer_ops(&ms, OP_F, ops),
                      s->model.recompute == RECOMPUTE_SELECTIVE, out->moe_recompute);
    }
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < COST_SPLIT; i++) {
            double f = pass_scale(s, (OpKind)k, i);
            out->sum_layer[k] += f * out->layer[k][i];
            out->sum_head[k] += f * out->head[k][i];
            out->sum_embed[k] += f * out->embed[k][i];
            out->sum_moe[k] += f * out->moe[k][i];
            if (k == OP_F) out->sum_recompute += f * out->recompute[i];
            if (k == OP_F) out->sum_moe_recompute += f * out->moe_recompute[i];
        }
}

/* ---- the tensor-parallel all-reduces' places inside an op (psim's tensor rows) ---------- */

typedef struct {
    const Scenario *s;
    Roof r;
    CostSpan *out;
    int n, max;
    double at; // ns from the op's start
} SpanWalk;

/* Walks ops of pass (for its class factors) as they run, one after another, noting each
 * all-reduce; with only_attention, only the attention core (selective recomputation). */
static void walk_ops(SpanWalk *w, const LayerOp *ops, int n, OpKind pass, int only_attention) {
    for (int i = 0; i < n; i++) {
        if (only_attention && ops[i].cls != LC_ATTENTION) continue;
        double f = pass_scale(w->s, pass, ops[i].cls), l = pass_scale(w->s, pass, COST_LAUNCH);
        double t = f * kernel_ns(w->s, &w->r, &ops[i]);
        w->at += l * w->r.launch_ns * (double)ops[i].repeat;
        if (layer_kernel_is_collective(ops[i].kernel) && !ops[i].over && w->n++ < w->max)
            w->out[w->n - 1] = (CostSpan){.start_ns = w->at, .ns = t, .bytes = ops[i].bytes,
                                          .kernel = ops[i].kernel};
        w->at += t;
    }
}

/* One pass (F, B or W) of a stage: the head and embedding around its layers as the pass runs
 * them (F: embedding, layers, head; B and W: head, layers in reverse, embedding), B with its
 * recomputation of each layer's forward first. */
static void walk_pass(SpanWalk *w, const LayerShape *sh, OpKind pass, int64_t first_layer,
                      int64_t layers, int first, int last) {
    LayerOp ops[LAYER_OPS_MAX], re[LAYER_OPS_MAX], edge[LAYER_OPS_MAX];
    LayerOp mops[LAYER_OPS_MAX], mre[LAYER_OPS_MAX];
    LayerShape ms = cost_moe_shape(w->s);
    int n = layer_ops(sh, pass, ops), nre = layer_ops(sh, OP_F, re);
    int mn = ms.moe ? layer_ops(&ms, pass, mops) : 0, mnre = ms.moe ? layer_ops(&ms, OP_F, mre) : 0;
    Recompute rc = w->s->model.recompute;
    if (pass == OP_F && first) walk_ops(w, edge, layer_embed_ops(sh, OP_F, edge), OP_F, 0);
    if (pass != OP_F && last) walk_ops(w, edge, layer_head_ops(sh, pass, edge), pass, 0);
    for (int64_t k = 0; k < layers; k++) { // B and W run the layers in reverse
        int64_t i = pass == OP_F ? first_layer + k : first_layer + layers - 1 - k;
        int moe = scenario_is_moe_layer(&w->s->model, i);
        if (pass == OP_B && rc != RECOMPUTE_NONE)
            walk_ops(w, moe ? mre : re, moe ? mnre : nre, OP_F, rc == RECOMPUTE_SELECTIVE);
        walk_ops(w, moe ? mops : ops, moe ? mn : n, pass, 0);
    }
    if (pass == OP_F && last) walk_ops(w, edge, layer_head_ops(sh, OP_F, edge), OP_F, 0);
    if (pass != OP_F && first) walk_ops(w, edge, layer_embed_ops(sh, pass, edge), pass, 0);
}

int cost_op_allreduces(const Scenario *s, const Plan *pl, int32_t st, OpKind kind,
                       CostSpan *out, int max) {
    if (s->hw.cost_model != COST_ROOFLINE || (scenario_tensor(s) <= 1 && scenario_expert(s) <= 1) ||
        s->costs.forward_ms >= 0 || s->costs.stage_forward.n)
        return 0;
    SpanWalk w = {.s = s, .r = roof_of(s, plan_device_of(pl, st)), .out = out, .max = max,
                  .at = s->hw.op_overhead_us * 1e3};
    LayerShape sh = cost_layer_shape(s);
    int first = plan_stage_is_first(pl, st), last = plan_stage_is_last(pl, st);
    int64_t fl = pl->first_layer[st];
    if (kind != OP_W) walk_pass(&w, &sh, kind == OP_F ? OP_F : OP_B, fl, pl->layers[st], first, last);
    if (kind == OP_W || kind == OP_BW) // W's collectives: sequence parallelism's all-gathers
        walk_pass(&w, &sh, OP_W, fl, pl->layers[st], first, last);
    return w.n;
}

/* The split of a stage's F, B and W for n layers (first: with the embedding, last: with the
 * LM head), with the per-op overhead; BW is B and W as one op. */
static void stage_split(const Scenario *s, const CostPrices *pr, double n, double nm, int first,
                        int last, double split[OP_KIND_COUNT][COST_SPLIT]) {
    memset(split, 0, sizeof(double) * OP_KIND_COUNT * COST_SPLIT);
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < COST_SPLIT; i++) // B's recomputation reruns F's kernels
            split[k][i] = pass_scale(s, (OpKind)k, i) *
                              ((n - nm) * pr->layer[k][i] + nm * pr->moe[k][i] +
                               (first ? pr->embed[k][i] : 0) + (last ? pr->head[k][i] : 0)) +
                          (k == OP_B ? pass_scale(s, OP_F, i) * ((n - nm) * pr->recompute[i] +
                                                                 nm * pr->moe_recompute[i])
                                     : 0);
    double over = s->hw.op_overhead_us * 1e3;
    for (int i = 0; i < COST_SPLIT; i++) split[OP_BW][i] = split[OP_B][i] + split[OP_W][i];
    for (int k = 0; k < OP_KIND_COUNT; k++) split[k][COST_LAUNCH] += over;
}

static int64_t split_ns(const double *split) {
    double t = 0;
    for (int i = 0; i < COST_SPLIT; i++) t += split[i];
    return to_ns(t);
}

/* A stage's F + B + W on device prices pr (what partition = balanced evens out). */
static int64_t roofline_stage_ns(const Scenario *s, const CostPrices *pr, int64_t layers,
                                 int64_t moe_layers, int first, int last) {
    double n = (double)layers, nm = (double)moe_layers, over = s->hw.op_overhead_us * 1e3;
    int64_t t = 0;
    for (int k = 0; k < 3; k++)
        t += to_ns((n - nm) * pr->sum_layer[k] + nm * pr->sum_moe[k] +
                   (k == OP_B ? (n - nm) * pr->sum_recompute + nm * pr->sum_moe_recompute : 0) +
                   (first ? pr->sum_embed[k] : 0) + (last ? pr->sum_head[k] : 0) + over);
    return t;
}

/* The MoE layers the balanced search and the analytic stage time count in `layers` layers:
 * all of them for an MoE model (the search does not know where a stage starts, so it prices
 * every layer as the costlier MoE layer), none for a dense one. */
static int64_t search_moe_layers(const Scenario *s, int64_t layers) {
    return s->model.experts > 0 ? layers : 0;
}

/* The prices of device d: from cp's cache of the first kinds of device, else made in spare. */
static const CostPrices *cached_prices(const CostPartition *cp, int32_t d, CostPrices *spare) {
    Roof r = roof_of(cp->s, d);
    for (int32_t i = 0; i < cp->cached; i++) {
        Roof q = roof_of(cp->s, cp->device[i]);
        if (roof_same(&r, &q)) return &cp->prices[i];
    }
    prices_of(cp->s, &r, spare);
    return spare;
}

/* Fills cp's cache with the prices of the first COST_PRICE_CACHE kinds of device. */
static void prices_cache(CostPartition *cp) {
    cp->cached = 0;
    for (int32_t d = 0; d < (int32_t)cp->s->pipeline.stages && cp->cached < COST_PRICE_CACHE; d++) {
        Roof r = roof_of(cp->s, d);
        int known = 0;
        for (int32_t i = 0; i < cp->cached && !known; i++) {
            Roof q = roof_of(cp->s, cp->device[i]);
            known = roof_same(&r, &q);
        }
        if (known) continue;
        prices_of(cp->s, &r, &cp->prices[cp->cached]);
        cp->device[cp->cached++] = d;
    }
}

void cost_flops_init(CostFlops *out, const Scenario *s) {
    cost_layer_flops(&s->model, s->batch.micro_batch_size, &out->f, &out->b, &out->w);
    out->head = cost_head_flops(&s->model, s->batch.micro_batch_size);
    out->moe_f = out->moe_b = out->moe_w = 0;
    if (s->model.experts > 0) { // one rank's balanced T k routed tokens, whatever e is
        LayerShape ms = cost_model_moe_shape(&s->model, s->batch.micro_batch_size);
        out->moe_f = layer_ops_flops(&ms, OP_F);
        out->moe_b = layer_ops_flops(&ms, OP_B);
        out->moe_w = layer_ops_flops(&ms, OP_W);
    }
}

/* FLOPs of F, B, W and BW of n layers, nm of them MoE layers (and the LM head when head) on
 * one micro-batch. */
static void stage_flops(const CostFlops *lf, double n, double nm, int head,
                        double fl[OP_KIND_COUNT]) {
    double h = head ? lf->head : 0.0;
    fl[OP_F] = (n - nm) * lf->f + nm * lf->moe_f + h;
    fl[OP_B] = (n - nm) * lf->b + nm * lf->moe_b + h;
    fl[OP_W] = (n - nm) * lf->w + nm * lf->moe_w + h;
    fl[OP_BW] = fl[OP_B] + fl[OP_W];
}

/* The analytic F, B and W times of n layers with FLOPs fl on a device of rate FLOP/ns, with
 * tensor parallelism's share and its all-reduces (tp_ar_ns each); no recomputation. */
static void analytic_ns(const Scenario *s, double n, const double *fl, double rate,
                        int64_t tp_ar_ns, int64_t *ns) {
    ns[OP_F] = tp_time(s, n, fl[OP_F], 2, rate, tp_ar_ns);
    ns[OP_B] = tp_time(s, n, fl[OP_B], 2, rate, tp_ar_ns);
    ns[OP_W] = tp_time(s, n, fl[OP_W], 0, rate, tp_ar_ns);
}

/* A layer's recomputation in B (recompute_ns) for n layers (nm of them MoE) whose forward
 * takes f_ns; B - F is the attention core's FLOPs in either kind of layer. */
static int64_t stage_recompute_ns(const Scenario *s, const CostFlops *lf, double n, double nm,
                                  const double *fl, int64_t f_ns) {
    return recompute_ns(s, (n - nm) * lf->f + nm * lf->moe_f,
                        (n - nm) * (lf->b - lf->f) + nm * (lf->moe_b - lf->moe_f), fl[OP_F], f_ns);
}

/* cost_stage_ns of the flat model with the layer's FLOPs and the tensor-parallel all-reduce
 * already priced. */
static int64_t stage_ns(const Scenario *s, const CostFlops *lf, int64_t tp_ar_ns, int32_t device,
                        int64_t layers, int head) {
    double fl[OP_KIND_COUNT], n = (double)layers, nm = (double)search_moe_layers(s, layers);
    int64_t ns[OP_KIND_COUNT];
    stage_flops(lf, n, nm, head, fl);
    analytic_ns(s, n, fl, device_rate(s, device), tp_ar_ns, ns);
    return ns[OP_F] + ns[OP_B] + ns[OP_W] + stage_recompute_ns(s, lf, n, nm, fl, ns[OP_F]);
}

int64_t cost_stage_ns(const Scenario *s, int32_t device, int64_t layers, int first, int head) {
    CostFlops lf;
    cost_flops_init(&lf, s);
    if (s->hw.cost_model == COST_FLAT) return stage_ns(s, &lf, tp_allreduce_ns(s), device, layers, head);
    Roof r = roof_of(s, device);
    CostPrices pr;
    prices_of(s, &r, &pr);
    return roofline_stage_ns(s, &pr, layers, search_moe_layers(s, layers), first, head);
}

static int64_t partition_stage_ns(const void *ctx, const PartitionStage *st, int64_t layers) {
    const CostPartition *cp = ctx;
    if (cp->s->hw.cost_model == COST_FLAT)
        return stage_ns(cp->s, &cp->flops, cp->tp_ar_ns, st->device, layers, st->last);
    CostPrices spare;
    return roofline_stage_ns(cp->s, cached_prices(cp, st->device, &spare), layers,
                             search_moe_layers(cp->s, layers), st->first, st->last);
}

static int64_t partition_layer_cap(const void *ctx, const PartitionStage *st) {
    const CostPartition *cp = ctx;
    return memory_stage_layer_cap(cp->s, st);
}

const PartitionModel *cost_partition_init(CostPartition *cp, const Scenario *s) {
    cp->s = s;
    cost_flops_init(&cp->flops, s);
    cp->tp_ar_ns = tp_allreduce_ns(s);
    cp->cached = 0;
    if (s->hw.cost_model == COST_ROOFLINE) prices_cache(cp);
    cp->model = (PartitionModel){cp, partition_stage_ns, partition_layer_cap};
    return &cp->model;
}

/* The measured [costs] of stage st into ns (F, B, W), or 0 when none are given. */
static int measured_ns(const Scenario *s, const Plan *pl, int32_t st, int64_t *ns) {
    const ScnCosts *k = &s->costs;
    if (k->stage_forward.n) { // measured per stage
        ns[OP_F] = ms_to_ns(k->stage_forward.ms[st]);
        ns[OP_B] = ms_to_ns(k->stage_backward.ms[st]);
        ns[OP_W] = k->stage_weight.n ? ms_to_ns(k->stage_weight.ms[st]) : 0;
        return 1;
    }
    if (s->costs.forward_ms >= 0) { // measured stage times: each chunk takes 1/v of them
        ns[OP_F] = ms_to_ns(s->costs.forward_ms / pl->chunks);
        ns[OP_B] = ms_to_ns(s->costs.backward_ms / pl->chunks);
        ns[OP_W] = ms_to_ns(s->costs.weight_ms / pl->chunks);
        return 1;
    }
    return 0;
}

/* The FLOPs stage st executes in each op, its recomputation included (hardware FLOPs). */
static void stage_hw_flops(const Scenario *s, const CostFlops *lf, double n, double nm,
                           const double *fl, double *hw) {
    double extra = s->model.recompute == RECOMPUTE_FULL ? (n - nm) * lf->f + nm * lf->moe_f
                   : s->model.recompute == RECOMPUTE_SELECTIVE
                       ? (n - nm) * (lf->b - lf->f) + nm * (lf->moe_b - lf->moe_f)
                       : 0.0;
    for (int k = 0; k < OP_KIND_COUNT; k++) hw[k] = fl[k] + (k == OP_B || k == OP_BW ? extra : 0);
}

static void price_stage(const Scenario *s, const Plan *pl, const CostFlops *lf,
                        const CostPartition *cp, int32_t st, CostModel *c) {
    double n = (double)pl->layers[st];
    double nm = (double)scenario_moe_layers(&s->model, pl->first_layer[st], pl->layers[st]);
    int32_t dev = plan_device_of(pl, st);
    int64_t at = (int64_t)st * OP_KIND_COUNT;
    double *fl = &c->op_flops[at], *split = &c->op_split[at * COST_SPLIT];
    stage_flops(lf, n, nm, plan_stage_is_last(pl, st), fl);
    stage_hw_flops(s, lf, n, nm, fl, &c->op_hw_flops[at]);
    int64_t *ns = &c->op_ns[at];
    int measured = measured_ns(s, pl, st, ns);
    if (!measured && s->hw.cost_model == COST_ROOFLINE) {
        CostPrices spare;
        double sp[OP_KIND_COUNT][COST_SPLIT];
        const CostPrices *pr = cached_prices(cp, dev, &spare);
        stage_split(s, pr, n, nm, plan_stage_is_first(pl, st), plan_stage_is_last(pl, st), sp);
        for (int k = 0; k < OP_KIND_COUNT; k++) {
            memcpy(&split[k * COST_SPLIT], sp[k], sizeof sp[k]);
            if (k != OP_BW) ns[k] = split_ns(sp[k]);
        }
        if (c->a2a_ns) { // the all-to-alls inside each op, for DualPipe's overlap
            int64_t *a = &c->a2a_ns[at];
            for (int k = 0; k < 3; k++) a[k] = to_ns(nm * pr->moe_a2a[k]);
            a[OP_BW] = a[OP_B] + a[OP_W];
        }
        ns[OP_BW] = ns[OP_B] + ns[OP_W] - to_ns(s->hw.op_overhead_us * 1e3); // one op, one overhead
        return;
    }
    // flat (and measured): whole ops, no split by kernel class (op_split stays 0)
    if (!measured) analytic_ns(s, n, fl, device_rate(s, dev), c->tp_ar_ns, ns);
    ns[OP_B] += stage_recompute_ns(s, lf, n, nm, fl, ns[OP_F]);
    ns[OP_BW] = ns[OP_B] + ns[OP_W];
}

/* Simulated time is int64 ns: refuse runs whose ops and transfers add up to 2^60 ns (36
 * years) or more, so no sum in the engine or metrics can overflow. */
static int check_clock(const Scenario *s, const CostModel *c, char *err, size_t errlen) {
    double per_mb = 0;
    for (int32_t st = 0; st < c->stages; st++)
        per_mb += (double)cost_op_ns(c, st, OP_F) + (double)cost_op_ns(c, st, OP_BW);
    int64_t most = c->xfer_inter_ns > c->xfer_intra_ns ? c->xfer_inter_ns : c->xfer_intra_ns;
    if (c->xfer_same_gpu_ns > most) most = c->xfer_same_gpu_ns;
    for (uint32_t i = 0; c->links && i <= c->link_mask; i++)
        if (c->links[i].a >= 0 && c->links[i].ns > most) most = c->links[i].ns;
    double xfer = (double)most;
    per_mb += 2.0 * c->stages * xfer;
    double total = per_mb * (double)s->batch.micro_batches * (double)s->batch.iterations;
    for (int32_t st = 0; c->tail && st < c->stages; st++) // the tails, with inter links
        total += (double)(c->ar_ns[2 * st + 1] + c->ar_ns[2 * st] + c->opt_ns[st]) *
                 (double)s->batch.iterations;
    if (total < 0x1p60) return 0;
    snprintf(err, errlen, "%s: the ops of this run add up to %.3g s, beyond the simulator's "
             "clock (2^60 ns, 36 years); check peak_tflops, efficiency, bandwidths and [costs]",
             s->path, total / 1e9);
    return 2;
}

/* Bytes the optimizer step moves per parameter: it reads the gradient and reads and writes
 * the weights and the optimizer state (Adam in bf16: 2 + 2(2 + 12) = 30). */
static double optimizer_traffic(const ScnModel *m) {
    double wb = dtype_bytes(m->dtype);
    return wb + 2.0 * (wb + memory_optimizer_bytes_per_param(m));
}

/* ZeRO's collectives of stage st on intra- (inter = 0) or inter-node links (1): the ring
 * reduce-scatter of its gradients and the all-gather of its parameters, from the ring
 * all-reduce so that the two add up to it; [costs] allreduce_ms is split the same way. */
static void zero_pair(const Scenario *s, double bytes, int inter, int64_t *rs, int64_t *ag) {
    const ScnNetwork *n = &s->net;
    double lat = inter ? n->inter_latency_us : n->intra_latency_us;
    double bw = inter ? n->inter_bandwidth_gbs : n->intra_bandwidth_gbs;
    int64_t d = scenario_dp_group(s); // the replicas and, with context parallelism, their c ranks
    int64_t ar = s->costs.allreduce_ms >= 0
                     ? ms_to_ns(s->costs.allreduce_ms)
                     : cost_allreduce_formula_ns(ALLREDUCE_RING, d, lat, bw, bytes);
    *rs = s->costs.allreduce_ms >= 0 ? ar / 2 : cost_reduce_scatter_formula_ns(d, lat, bw, bytes);
    *ag = ar - *rs;
}

/* zero >= 1: the reduce-scatters and all-gathers of every stage, the optimizer step on a 1/d
 * shard, and with zero = 3 the exposed collectives inside each op (cost.h), added to op_ns.
 * Needs price_tail's grad_bytes and opt_ns and the placement (stride, gpus_per_node). Returns
 * 0, or -1 out of memory. */
static int price_zero(const Scenario *s, const Plan *pl, CostModel *c) {
    c->zero = (int32_t)scenario_zero(s);
    if (!c->zero) return 0;
    c->rs_ns = calloc((size_t)pl->stages * 2, sizeof *c->rs_ns);
    c->ag_ns = calloc((size_t)pl->stages * 2, sizeof *c->ag_ns);
    if (c->zero >= 3) c->z3_ns = calloc((size_t)pl->stages * OP_KIND_COUNT, sizeof *c->z3_ns);
    if (!c->rs_ns || !c->ag_ns || (c->zero >= 3 && !c->z3_ns)) return -1;
    for (int32_t st = 0; st < pl->stages; st++) {
        for (int inter = 0; inter < 2; inter++)
            zero_pair(s, (double)c->grad_bytes[st], inter, &c->rs_ns[2 * st + inter],
                      &c->ag_ns[2 * st + inter]);
        if (c->zero < 3) continue;
        int32_t dev = plan_device_of(pl, st);
        int64_t rs = cost_reduce_scatter_ns(c, dev, st), ag = cost_all_gather_ns(c, dev, st);
        int64_t *z = &c->z3_ns[(int64_t)st * OP_KIND_COUNT], *ns = &c->op_ns[(int64_t)st * OP_KIND_COUNT];
        z[OP_F] = ag, z[OP_B] = ag, z[OP_W] = rs, z[OP_BW] = ag + rs;
        for (int k = 0; k < OP_KIND_COUNT; k++) ns[k] += z[k];
    }
    return 0;
}

/* The data-parallel tail of each stage (when d > 1 or optimizer_ms > 0): its gradient
 * all-reduce over the d replicas on intra- and inter-node links ([costs] allreduce_ms
 * replaces both), and its optimizer step, from [costs] optimizer_ms (a device's share, each
 * of v chunks 1/v) or memory-bound: the bytes it moves at the HBM bandwidth; with zero >= 1
 * a 1/d shard of either, then price_zero. Returns 0, or -1 out of memory. */
static int price_tail(const Scenario *s, const Plan *pl, CostModel *c) {
    c->tail = scenario_has_tail(s);
    c->data = (int32_t)scenario_dp_group(s);
    if (!c->tail) return 0;
    c->grad_bytes = calloc((size_t)pl->stages, sizeof *c->grad_bytes);
    c->ar_ns = calloc((size_t)pl->stages * 2, sizeof *c->ar_ns);
    c->opt_ns = calloc((size_t)pl->stages, sizeof *c->opt_ns);
    if (!c->grad_bytes || !c->ar_ns || !c->opt_ns) return -1;
    const ScnNetwork *n = &s->net;
    Allreduce a = s->parallel.allreduce;
    int64_t d = scenario_dp_group(s); // d replicas x c context ranks hold the same weights
    double shard = scenario_zero(s) >= 1 ? (double)d : 1.0; // ZeRO steps 1/d of the parameters
    for (int32_t st = 0; st < pl->stages; st++) {
        double params = memory_stage_params(s, pl, st); // one GPU's share: / t
        double bytes = params * dtype_bytes(s->model.dtype);
        c->grad_bytes[st] = (int64_t)llround(bytes);
        c->ar_ns[2 * st] = s->costs.allreduce_ms >= 0 ? ms_to_ns(s->costs.allreduce_ms)
                           : cost_allreduce_formula_ns(a, d, n->intra_latency_us,
                                                       n->intra_bandwidth_gbs, bytes);
        c->ar_ns[2 * st + 1] = s->costs.allreduce_ms >= 0 ? c->ar_ns[2 * st]
                               : cost_allreduce_formula_ns(a, d, n->inter_latency_us,
                                                           n->inter_bandwidth_gbs, bytes);
        c->opt_ns[st] = s->costs.optimizer_ms >= 0
                            ? ms_to_ns(s->costs.optimizer_ms / pl->chunks / shard)
                            : to_ns(params * optimizer_traffic(&s->model) /
                                    (s->hw.hbm_bandwidth_gbs *
                                     (s->hw.cost_model == COST_ROOFLINE ? s->hw.memory_efficiency : 1)) /
                                    shard);
    }
    return price_zero(s, pl, c);
}

/* The latency and bandwidth a pair has without an override (the class cost_pair_ns picks). */
static void pair_figures(const Scenario *s, const CostModel *c, int32_t a, int32_t b,
                         double *latency_us, double *bandwidth_gbs) {
    const ScnNetwork *n = &s->net;
    int same = c->devices_per_gpu > 1 && cost_gpu_of(c, a) == cost_gpu_of(c, b);
    int intra = !same && cost_node_of(c, a) == cost_node_of(c, b);
    *latency_us = same ? n->same_gpu_latency_us : intra ? n->intra_latency_us : n->inter_latency_us;
    *bandwidth_gbs = same ? n->same_gpu_bandwidth_gbs
                     : intra ? n->intra_bandwidth_gbs : n->inter_bandwidth_gbs;
}

/* The [link.A-B] overrides in an open-addressed table at most half full (cost_xfer_ns). A
 * figure the section leaves out is the pair's own. Returns 0, or -1 out of memory. */
static int build_links(const Scenario *s, CostModel *c) {
    uint32_t slots = 2;
    while (slots < 2 * (uint64_t)s->nlinks) slots *= 2;
    c->links = malloc(slots * sizeof *c->links);
    if (!c->links) return -1;
    c->link_mask = slots - 1;
    for (uint32_t i = 0; i < slots; i++) c->links[i].a = -1;
    for (int64_t k = 0; k < s->nlinks; k++) {
        const ScnLink *l = &s->link[k];
        double lat, bw;
        pair_figures(s, c, l->a, l->b, &lat, &bw);
        if (l->latency_us >= 0) lat = l->latency_us;
        if (l->bandwidth_gbs >= 0) bw = l->bandwidth_gbs;
        uint32_t i = ((uint32_t)l->a * 2654435761u ^ (uint32_t)l->b) & c->link_mask;
        while (c->links[i].a >= 0) i = (i + 1) & c->link_mask; // pairs are unique
        c->links[i] = (CostLink){l->a, l->b, link_ns(lat, bw, c->xfer_bytes)};
    }
    return 0;
}

int cost_build(const Scenario *s, const Plan *pl, CostModel *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    out->stages = pl->stages;
    size_t ops = (size_t)pl->stages * OP_KIND_COUNT;
    out->op_ns = calloc(ops, sizeof *out->op_ns);
    out->op_flops = calloc(ops, sizeof *out->op_flops);
    out->op_hw_flops = calloc(ops, sizeof *out->op_hw_flops);
    out->op_split = calloc(ops * COST_SPLIT, sizeof *out->op_split);
    out->overlap_slowdown = 1;
    if (s->model.experts > 0 && scenario_expert(s) > 1 && s->hw.cost_model == COST_ROOFLINE) {
        out->a2a_ns = calloc(ops, sizeof *out->a2a_ns);
        int64_t sms = s->hw.sms, comm = s->parallel.expert_comm_sms;
        if (sms > comm && comm > 0) out->overlap_slowdown = (double)sms / (double)(sms - comm);
    }
    int moe_oom = s->model.experts > 0 && scenario_expert(s) > 1 &&
                  s->hw.cost_model == COST_ROOFLINE && !out->a2a_ns;
    if (!out->op_ns || !out->op_flops || !out->op_hw_flops || !out->op_split || moe_oom) {
        cost_free(out);
        return -1;
    }
    LayerShape sh = cost_layer_shape(s); // sequence parallel: each rank sends its s/t tokens
    out->xfer_bytes = layer_rows(&sh) * s->model.hidden * dtype_bytes(s->model.dtype);
    out->stride = scenario_data(s) * scenario_context(s) * scenario_tensor(s);
    out->tp_ar_ns = tp_allreduce_ns(s);
    CostPartition cp; // the roofline's prices of each kind of device, made once
    cost_partition_init(&cp, s);
    for (int32_t st = 0; st < pl->stages; st++) price_stage(s, pl, &cp.flops, &cp, st, out);
    out->gpus_per_node = pl->gpus_per_node; // price_tail's ZeRO-3 part places the replicas
    out->devices_per_gpu = (int32_t)s->hw.devices_per_gpu;
    if (price_tail(s, pl, out) != 0) {
        cost_free(out);
        return -1;
    }

    if (s->costs.overlap_fb_ms > 0) out->fused_ns = ms_to_ns(s->costs.overlap_fb_ms / pl->chunks);
    if (s->costs.comm_ms >= 0) {
        out->xfer_intra_ns = out->xfer_inter_ns = out->xfer_same_gpu_ns = ms_to_ns(s->costs.comm_ms);
    } else {
        out->xfer_intra_ns =
            link_ns(s->net.intra_latency_us, s->net.intra_bandwidth_gbs, out->xfer_bytes);
        out->xfer_inter_ns =
            link_ns(s->net.inter_latency_us, s->net.inter_bandwidth_gbs, out->xfer_bytes);
        if (out->devices_per_gpu > 1)
            out->xfer_same_gpu_ns = link_ns(s->net.same_gpu_latency_us,
                                            s->net.same_gpu_bandwidth_gbs, out->xfer_bytes);
    }
    if (s->nlinks && build_links(s, out) != 0) {
        cost_free(out);
        return -1;
    }
    return check_clock(s, out, err, errlen);
}

void cost_free(CostModel *c) {
    free(c->op_ns);
    free(c->op_flops);
    free(c->op_hw_flops), free(c->op_split);
    free(c->grad_bytes), free(c->ar_ns), free(c->opt_ns);
    free(c->rs_ns), free(c->ag_ns), free(c->z3_ns);
    free(c->links), free(c->a2a_ns);
    memset(c, 0, sizeof *c);
}
