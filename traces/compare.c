/* traces/compare.c: one pass over a Timeline's rows; means kept as sums until the end. */
#include "traces/compare.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int timeline_stats(const Timeline *tl, int32_t devices, int32_t chunks, int32_t m,
                   int32_t iterations, TimelineStats *out) {
    memset(out, 0, sizeof *out);
    out->devices = devices, out->chunks = chunks;
    size_t cells = (size_t)devices * (size_t)chunks * OP_KIND_COUNT;
    out->op_ms = calloc(cells, sizeof *out->op_ms);
    out->op_n = calloc(cells, sizeof *out->op_n);
    size_t links = (size_t)devices * (size_t)devices;
    out->link_ms = calloc(links, sizeof *out->link_ms);
    out->link_n = calloc(links, sizeof *out->link_n);
    if (!out->op_ms || !out->op_n || !out->link_ms || !out->link_n) {
        timeline_stats_free(out);
        return -1;
    }
    int32_t skip = iterations > 1 ? m : 0; // the first iteration warms caches and threads
    int64_t first = INT64_MAX, last = INT64_MIN;
    double xfer_ns = 0, sq[OP_KIND_COUNT] = {0};
    for (size_t i = 0; i < tl->n; i++) {
        const TimelineOp *r = &tl->ops[i];
        if (r->micro_batch < skip || r->device < 0 || r->device >= devices || r->chunk < 0 ||
            r->chunk >= chunks || r->kind >= OP_KIND_COUNT)
            continue;
        if (r->start_ns < first) first = r->start_ns;
        if (r->end_ns > last) last = r->end_ns;
        double ns = (double)(r->end_ns - r->start_ns);
        if (r->stream == STREAM_RECV && r->peer >= 0 && r->peer < devices) {
            xfer_ns += ns, out->xfers++;
            size_t l = (size_t)r->peer * (size_t)devices + (size_t)r->device;
            out->link_ms[l] += ns / 1e6, out->link_n[l]++;
        } else if (stream_is_tail(r->stream) || stream_is_tensor(r->stream)) {
            out->lane_ms[r->stream] += ns / 1e6, out->lane_n[r->stream]++;
        } else if (r->stream == STREAM_COMPUTE) {
            size_t k = ((size_t)r->device * (size_t)chunks + (size_t)r->chunk) * OP_KIND_COUNT + r->kind;
            out->op_ms[k] += ns / 1e6, out->op_n[k]++;
            out->kind_ms[r->kind] += ns / 1e6, out->kind_n[r->kind]++;
            sq[r->kind] += (ns / 1e6) * (ns / 1e6);
        }
    }
    if (first > last) {
        timeline_stats_free(out);
        return -1;
    }
    for (size_t k = 0; k < cells; k++)
        if (out->op_n[k]) out->op_ms[k] /= (double)out->op_n[k];
    for (size_t l = 0; l < links; l++)
        if (out->link_n[l]) out->link_ms[l] /= (double)out->link_n[l];
    for (int k = 0; k < OP_KIND_COUNT; k++) {
        if (!out->kind_n[k]) continue;
        double n = (double)out->kind_n[k], mean = out->kind_ms[k] / n, var = sq[k] / n - mean * mean;
        out->kind_ms[k] = mean;
        out->kind_sd_ms[k] = var > 0 ? sqrt(var) : 0;
    }
    out->xfer_ms = out->xfers ? xfer_ns / 1e6 / (double)out->xfers : 0;
    for (int k = 0; k < STREAM_COUNT; k++)
        if (out->lane_n[k]) out->lane_ms[k] /= (double)out->lane_n[k];
    out->makespan_ms = (double)(last - first) / 1e6;
    return 0;
}

void timeline_stats_free(TimelineStats *st) {
    free(st->op_ms);
    free(st->op_n);
    free(st->link_ms);
    free(st->link_n);
    memset(st, 0, sizeof *st);
}

double compare_error(double predicted, double measured) {
    if (measured == 0) return predicted == 0 ? 0 : INFINITY;
    return (predicted - measured) / measured;
}
