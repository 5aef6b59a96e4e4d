/* sim/metrics/metrics.c: one pass over the Timeline for times, the memory model for bytes. Sums are
 * taken in integer ns and converted to ms once, so they do not drift. */
#include "sim/metrics/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t busy_ns, first_ns, last_ns;
} Span;

static double ns_to_ms(int64_t ns) { return (double)ns / 1e6; }

/* Nanoseconds of the gap [gap_from, gap_to) inside [a, b]. */
static int64_t overlap(int64_t a, int64_t b, int64_t gap_from, int64_t gap_to) {
    int64_t lo = a > gap_from ? a : gap_from, hi = b < gap_to ? b : gap_to;
    return hi > lo ? hi - lo : 0;
}

/* Iteration times: iteration k holds micro-batches [k*m, (k+1)*m) and ends with its last
 * compute op; the times are the spacings of consecutive ends less the gap between them, or
 * the makespan less the gap with one iteration. Fills iteration_ms (their mean, as the sum
 * telescopes) and their min, max and std. -1 out of memory. */
static int iteration_times(const Timeline *tl, int64_t m, int64_t iterations, int64_t makespan,
                           int64_t gap_from, int64_t gap_to, Metrics *out) {
    int64_t lost = gap_to - gap_from;
    out->iteration_ms = out->iteration_min_ms = out->iteration_max_ms = ns_to_ms(makespan - lost);
    if (iterations < 2) return 0;
    int64_t *end = calloc((size_t)iterations, sizeof *end);
    if (!end) return -1;
    for (size_t i = 0; i < tl->n; i++) {
        const TimelineOp *r = &tl->ops[i];
        int64_t k = r->micro_batch / m;
        if (r->stream == STREAM_COMPUTE && k < iterations && r->end_ns > end[k]) end[k] = r->end_ns;
    }
    int64_t n = iterations - 1, lo = INT64_MAX, hi = INT64_MIN;
    int64_t total = end[n] - end[0] - overlap(end[0], end[n], gap_from, gap_to);
    double mean = (double)total / (double)n, sq = 0;
    for (int64_t k = 1; k <= n; k++) {
        int64_t t = end[k] - end[k - 1] - overlap(end[k - 1], end[k], gap_from, gap_to);
        lo = t < lo ? t : lo, hi = t > hi ? t : hi;
        sq += ((double)t - mean) * ((double)t - mean);
    }
    out->iteration_ms = ns_to_ms(total) / (double)n;
    out->iteration_min_ms = ns_to_ms(lo), out->iteration_max_ms = ns_to_ms(hi);
    out->iteration_std_ms = sqrt(sq / (double)n) / 1e6;
    free(end);
    return 0;
}

/* Per (iteration, device) figures of the data-parallel tail, ns. */
typedef struct {
    int64_t compute_end, allreduce, optimizer, reduce_scatter, all_gather, tail_end;
} TailCell;

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* zero = 3: the collectives inside the compute rows (cost.h's z3_ns), per iteration (mean),
 * of the device with the most: an F, B or BW gathers its chunk's weights, a W or BW
 * reduce-scatters its gradients. O(rows + p). -1 out of memory. */
static int zero3_metrics(const Program *pr, const CostModel *c, const Timeline *tl,
                         int64_t iterations, Metrics *out) {
    if (!c || !c->z3_ns) return 0;
    double *sum = calloc(2 * (size_t)pr->devices, sizeof *sum); // [2d] gathers, [2d+1] scatters
    if (!sum) return -1;
    for (size_t i = 0; i < tl->n; i++) {
        const TimelineOp *r = &tl->ops[i];
        if (r->stream != STREAM_COMPUTE || r->device < 0 || r->device >= pr->devices ||
            r->chunk < 0 || r->chunk >= pr->chunks)
            continue;
        int32_t st = program_stage_of(pr, r->device, r->chunk);
        if (r->kind != OP_W) sum[2 * r->device] += (double)cost_zero3_ns(c, st, OP_F);
        if (r->kind == OP_W || r->kind == OP_BW)
            sum[2 * r->device + 1] += (double)cost_zero3_ns(c, st, OP_W);
    }
    for (int32_t d = 0; d < pr->devices; d++) {
        double ag = sum[2 * d] / 1e6 / (double)iterations, rs = sum[2 * d + 1] / 1e6 / (double)iterations;
        if (ag > out->all_gather_ms) out->all_gather_ms = ag;
        if (rs > out->reduce_scatter_ms) out->reduce_scatter_ms = rs;
    }
    free(sum);
    return 0;
}

/* allreduce_ms, allreduce_exposed_ms, optimizer_ms and zero = 1, 2's reduce_scatter_ms and
 * all_gather_ms from the tail's rows (metrics.h); all 0 without them. Memory is one cell per
 * (iteration, device), less than the timeline's own rows. -1 out of memory. */
static int tail_metrics(const Timeline *tl, int64_t m, int64_t iterations, int32_t p,
                        Metrics *out) {
    int any = 0;
    for (size_t i = 0; i < tl->n && !any; i++) // tensor rows lie inside compute rows
        any = stream_is_tail(tl->ops[i].stream);
    if (!any) return 0;
    TailCell *cell = calloc((size_t)iterations * (size_t)p, sizeof *cell);
    if (!cell) return -1;
    for (size_t i = 0; i < tl->n; i++) {
        const TimelineOp *r = &tl->ops[i];
        int64_t k = r->micro_batch / m;
        if (k >= iterations || r->device < 0 || r->device >= p) continue;
        TailCell *c = &cell[k * p + r->device];
        int64_t ns = r->end_ns - r->start_ns;
        if (r->stream == STREAM_COMPUTE) c->compute_end = max64(c->compute_end, r->end_ns);
        if (r->stream == STREAM_COLLECTIVE) c->allreduce += ns;
        if (r->stream == STREAM_OPTIMIZER) c->optimizer += ns;
        if (r->stream == STREAM_REDUCE_SCATTER) c->reduce_scatter += ns;
        if (r->stream == STREAM_ALL_GATHER) c->all_gather += ns;
        if (stream_is_tail(r->stream))
            c->tail_end = max64(c->tail_end, r->end_ns);
    }
    int64_t ar = 0, exposed = 0, opt = 0, rs = 0, ag = 0;
    for (int64_t k = 0; k < iterations; k++) {
        int64_t ar_k = 0, opt_k = 0, rs_k = 0, ag_k = 0, end = 0, base = 0;
        for (int32_t d = 0; d < p; d++) {
            const TailCell *c = &cell[k * p + d];
            ar_k = max64(ar_k, c->allreduce), opt_k = max64(opt_k, c->optimizer);
            rs_k = max64(rs_k, c->reduce_scatter), ag_k = max64(ag_k, c->all_gather);
            end = max64(end, max64(c->compute_end, c->tail_end));
            base = max64(base, c->compute_end + c->optimizer);
        }
        ar += ar_k, opt += opt_k, exposed += max64(0, end - base), rs += rs_k, ag += ag_k;
    }
    out->reduce_scatter_ms = ns_to_ms(rs) / (double)iterations;
    out->all_gather_ms = ns_to_ms(ag) / (double)iterations;
    out->allreduce_ms = ns_to_ms(ar) / (double)iterations;
    out->allreduce_exposed_ms = ns_to_ms(exposed) / (double)iterations;
    out->optimizer_ms = ns_to_ms(opt) / (double)iterations;
    free(cell);
    return 0;
}

int metrics_compute(const Scenario *s, const Plan *pl, const Program *pr, const CostModel *c,
                    const Timeline *tl, Metrics *out) {
    return metrics_compute_lost(s, pl, pr, c, tl, NULL, out);
}

int metrics_compute_lost(const Scenario *s, const Plan *pl, const Program *pr,
                         const CostModel *c, const Timeline *tl, const VaryFailure *failure,
                         Metrics *out) {
    int32_t p = pr->devices;
    int failed = failure && failure->happened;
    int64_t gap_from = failed ? failure->checkpoint_ns : 0;
    int64_t gap_to = failed ? failure->checkpoint_ns + failure->lost_ns : 0;
    memset(out, 0, sizeof *out);
    out->devices = p;
    out->lost_ms = ns_to_ms(gap_to - gap_from);
    out->failed_iteration = failed ? failure->iteration : -1;
    out->dev = calloc((size_t)p, sizeof *out->dev);
    Span *sp = malloc((size_t)p * sizeof *sp);
    DeviceMemory *mem = calloc((size_t)p, sizeof *mem);
    if (!out->dev || !sp || !mem) {
        free(sp), free(mem), metrics_free(out);
        return -1;
    }
    for (int32_t d = 0; d < p; d++) sp[d] = (Span){0, INT64_MAX, INT64_MIN};
    int64_t first = INT64_MAX, last = INT64_MIN;
    for (size_t i = 0; i < tl->n; i++) {
        const TimelineOp *r = &tl->ops[i];
        if (r->start_ns < first) first = r->start_ns;
        if (r->end_ns > last) last = r->end_ns;
        if (r->stream != STREAM_COMPUTE) {
            out->transfers += r->stream == STREAM_SEND;
            continue;
        }
        Span *x = &sp[r->device]; // busy = union of compute rows (a fused pair counts once);
        int64_t from = r->start_ns > x->last_ns ? r->start_ns : x->last_ns; // rows come in
        if (r->end_ns > from) x->busy_ns += r->end_ns - from;              // start order
        if (r->start_ns < x->first_ns) x->first_ns = r->start_ns;
        if (r->end_ns > x->last_ns) x->last_ns = r->end_ns;
        out->ops++;
    }
    if (failed && gap_from < first) first = gap_from; // a failure in the first iteration
    int64_t makespan = tl->n ? last - first : 0, cost = 0, busy_sum = 0;
    if (memory_compute(s, pl, pr, tl, mem, &out->mem) != 0) {
        free(sp), free(mem), metrics_free(out);
        return -1;
    }
    for (int32_t d = 0; d < p; d++) {
        int64_t span = sp[d].busy_ns ? sp[d].last_ns - sp[d].first_ns -
                                           overlap(sp[d].first_ns, sp[d].last_ns, gap_from, gap_to)
                                     : 0;
        if (span > cost) cost = span;
        busy_sum += sp[d].busy_ns;
        if (sp[d].busy_ns > sp[out->bottleneck].busy_ns) out->bottleneck = d;
        DeviceMetrics *dm = &out->dev[d];
        dm->busy_ms = ns_to_ms(sp[d].busy_ns);
        dm->idle_ms = ns_to_ms(makespan - (gap_to - gap_from) - sp[d].busy_ns);
        dm->span_ms = ns_to_ms(span);
        dm->peak_activations = mem[d].peak_activations;
        dm->weights_gib = mem[d].weight_bytes / GIB;
        dm->grads_gib = mem[d].grad_bytes / GIB;
        dm->optimizer_gib = mem[d].optimizer_bytes / GIB;
        dm->gather_gib = mem[d].gather_bytes / GIB;
        dm->activations_gib = mem[d].activation_bytes / GIB;
        dm->peak_memory_gib = mem[d].peak_bytes / GIB;
        dm->weight_versions = mem[d].weight_versions;
        dm->staleness = mem[d].weight_versions - 1;
        for (int32_t ch = 0; ch < pr->chunks; ch++)
            dm->layers += (int32_t)pl->layers[program_stage_of(pr, d, ch)];
    }
    double mean_busy = (double)busy_sum / p;
    out->makespan_ms = ns_to_ms(makespan);
    if (iteration_times(tl, s->batch.micro_batches, s->batch.iterations, makespan, gap_from,
                        gap_to, out) != 0) {
        free(sp), free(mem), metrics_free(out);
        return -1;
    }
    out->bubble_rate = cost ? 1.0 - mean_busy / (double)cost : 0.0;
    out->bubble_ideal = mean_busy > 0 ? ((double)cost - mean_busy) / mean_busy : 0.0;
    for (int32_t st = 0; st < c->stages; st++) {
        out->model_flops += cost_op_flops(c, st, OP_BW) + cost_op_flops(c, st, OP_F);
        out->hardware_flops += c->op_hw_flops[(int64_t)st * OP_KIND_COUNT + OP_BW] +
                               c->op_hw_flops[(int64_t)st * OP_KIND_COUNT + OP_F];
    }
    out->model_flops *= (double)s->batch.micro_batches / pl->pipes; // each copy runs m/pipes
    out->model_flops *= (double)scenario_data(s);                   // every replica
    out->hardware_flops *= (double)s->batch.micro_batches / pl->pipes;
    out->hardware_flops *= (double)scenario_data(s);
    out->devices_total = scenario_devices_total(s);
    out->zero = (int32_t)scenario_zero(s);
    out->global_batch = scenario_data(s) * s->batch.micro_batches * s->batch.micro_batch_size;
    if (tail_metrics(tl, s->batch.micro_batches, s->batch.iterations, p, out) != 0 ||
        zero3_metrics(pr, c, tl, s->batch.iterations, out) != 0) {
        free(sp), free(mem), metrics_free(out);
        return -1;
    }
    double seconds = (double)makespan / 1e9, iters = (double)s->batch.iterations;
    double tokens = iters * (double)(out->global_batch * s->model.seq_len);
    out->peak_tflops = s->hw.peak_tflops; // per device: the mean over mixed devices
    if (s->device) {
        out->peak_tflops = 0;
        for (int32_t d = 0; d < p; d++) out->peak_tflops += s->device[d].peak_tflops / p;
    }
    if (seconds > 0) {
        out->throughput_tokens_per_s = tokens / seconds;
        out->tflops_per_gpu = out->model_flops * iters / seconds / (double)out->devices_total / 1e12;
        out->mfu = out->tflops_per_gpu / out->peak_tflops;
        out->hardware_tflops_per_gpu =
            out->hardware_flops * iters / seconds / (double)out->devices_total / 1e12;
    }
    free(sp), free(mem);
    return 0;
}

void metrics_free(Metrics *mt) {
    free(mt->dev);
    memtrace_free(&mt->mem);
    memset(mt, 0, sizeof *mt);
}
