/* sim/cost.c: analytic op costs. Only dense GEMM FLOPs are counted (layer norms, softmax and
 * GELU are memory-bound and folded into the efficiency factor); the clock is integer ns. */
#include "cost.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cost_layer_flops(const ScnModel *m, int64_t b, double *f, double *bwd, double *w) {
    double bs = (double)b * (double)m->seq_len, h = (double)m->hidden;
    double linear = 8.0 * bs * h * h + 4.0 * bs * h * (double)m->ffn_hidden;
    double attention = 4.0 * bs * (double)m->seq_len * h;
    *f = linear + attention;
    *bwd = linear + 2.0 * attention;
    *w = linear;
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

/* FLOPs of F, B, W and BW of n layers (and the LM head when head) on one micro-batch. */
static void stage_flops(const Scenario *s, double n, int head, double fl[OP_KIND_COUNT]) {
    double lf, lb, lw;
    cost_layer_flops(&s->model, s->batch.micro_batch_size, &lf, &lb, &lw);
    double h = head ? cost_head_flops(&s->model, s->batch.micro_batch_size) : 0.0;
    fl[OP_F] = n * lf + h;
    fl[OP_B] = n * lb + h;
    fl[OP_W] = n * lw + h;
    fl[OP_BW] = fl[OP_B] + fl[OP_W];
}

int64_t cost_stage_ns(const Scenario *s, int32_t device, int64_t layers, int head) {
    double fl[OP_KIND_COUNT], lf, lb, lw, rate = device_rate(s, device), n = (double)layers;
    stage_flops(s, n, head, fl);
    cost_layer_flops(&s->model, s->batch.micro_batch_size, &lf, &lb, &lw);
    int64_t f = flops_to_ns(fl[OP_F], rate);
    return f + flops_to_ns(fl[OP_B], rate) + flops_to_ns(fl[OP_W], rate) +
           recompute_ns(s, n * lf, n * (lb - lf), fl[OP_F], f);
}

static void price_stage(const Scenario *s, const Plan *pl, int32_t st, CostModel *c) {
    double lf, lb, lw;
    cost_layer_flops(&s->model, s->batch.micro_batch_size, &lf, &lb, &lw);
    double n = (double)pl->layers[st], rate = device_rate(s, plan_device_of(pl, st));
    double *fl = &c->op_flops[(int64_t)st * OP_KIND_COUNT];
    stage_flops(s, n, plan_stage_is_last(pl, st), fl);

    int64_t *ns = &c->op_ns[(int64_t)st * OP_KIND_COUNT];
    const ScnCosts *k = &s->costs;
    if (k->stage_forward.n) { // measured per stage
        ns[OP_F] = ms_to_ns(k->stage_forward.ms[st]);
        ns[OP_B] = ms_to_ns(k->stage_backward.ms[st]);
        ns[OP_W] = k->stage_weight.n ? ms_to_ns(k->stage_weight.ms[st]) : 0;
    } else if (s->costs.forward_ms >= 0) { // measured stage times: each chunk takes 1/v of them
        ns[OP_F] = ms_to_ns(s->costs.forward_ms / pl->chunks);
        ns[OP_B] = ms_to_ns(s->costs.backward_ms / pl->chunks);
        ns[OP_W] = ms_to_ns(s->costs.weight_ms / pl->chunks);
    } else {
        ns[OP_F] = flops_to_ns(fl[OP_F], rate);
        ns[OP_B] = flops_to_ns(fl[OP_B], rate);
        ns[OP_W] = flops_to_ns(fl[OP_W], rate);
    }
    ns[OP_B] += recompute_ns(s, n * lf, n * (lb - lf), fl[OP_F], ns[OP_F]);
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
    if (total < 0x1p60) return 0;
    snprintf(err, errlen, "%s: the ops of this run add up to %.3g s, beyond the simulator's "
             "clock (2^60 ns, 36 years); check peak_tflops, efficiency, bandwidths and [costs]",
             s->path, total / 1e9);
    return 2;
}

/* The latency and bandwidth a pair has without an override (the class cost_pair_ns picks). */
static void pair_figures(const Scenario *s, const CostModel *c, int32_t a, int32_t b,
                         double *latency_us, double *bandwidth_gbs) {
    const ScnNetwork *n = &s->net;
    int32_t k = c->devices_per_gpu > 1 ? c->devices_per_gpu : 1;
    int same = k > 1 && a / k == b / k;
    int intra = !same && a / k / c->gpus_per_node == b / k / c->gpus_per_node;
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
    out->op_ns = calloc((size_t)pl->stages * OP_KIND_COUNT, sizeof *out->op_ns);
    out->op_flops = calloc((size_t)pl->stages * OP_KIND_COUNT, sizeof *out->op_flops);
    if (!out->op_ns || !out->op_flops) {
        cost_free(out);
        return -1;
    }
    for (int32_t st = 0; st < pl->stages; st++) price_stage(s, pl, st, out);
    out->xfer_bytes = s->batch.micro_batch_size * s->model.seq_len * s->model.hidden *
                      dtype_bytes(s->model.dtype);
    out->gpus_per_node = pl->gpus_per_node;
    out->devices_per_gpu = (int32_t)s->hw.devices_per_gpu;
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
    free(c->links);
    memset(c, 0, sizeof *c);
}
