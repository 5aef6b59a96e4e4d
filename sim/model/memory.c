/* sim/model/memory.c: static memory per device, then the activations replayed from the Timeline as
 * take/give-back events in (device, time, gives before takes) order: bucketed by device and
 * sorted per device, linear for the nearly sorted rows the engine emits. */
#include "sim/model/memory.h"

#include <stdlib.h>
#include <string.h>

double memory_layer_params(const ScnModel *m) {
    double h = (double)m->hidden, f = (double)m->ffn_hidden;
    return 4.0 * h * h + 4.0 * h + 2.0 * h * f + f + h + 4.0 * h;
}

double memory_layer_activation_bytes(const ScnModel *m, int64_t b) {
    return memory_layer_activation_bytes_tp(m, b, 1);
}

double memory_layer_activation_bytes_tp(const ScnModel *m, int64_t b, int64_t t) {
    double s = (double)m->seq_len, h = (double)m->hidden, a = (double)m->heads, tp = (double)t;
    double per_sbh = m->recompute == RECOMPUTE_FULL        ? 2.0
                     : m->recompute == RECOMPUTE_SELECTIVE ? 10.0 + 24.0 / tp
                                                           : 10.0 + 24.0 / tp + 5.0 * a * s / (h * tp);
    return s * (double)b * h * per_sbh * (dtype_bytes(m->dtype) / 2.0);
}

double memory_optimizer_bytes_per_param(const ScnModel *m) {
    int fp32 = dtype_bytes(m->dtype) == 4;
    if (m->optimizer == OPTIMIZER_SGD) return fp32 ? 4.0 : 8.0;
    return fp32 ? 8.0 : 12.0;
}

double memory_layer_w_pending_bytes(const ScnModel *m, int64_t b) {
    return memory_layer_w_pending_bytes_tp(m, b, 1);
}

double memory_layer_w_pending_bytes_tp(const ScnModel *m, int64_t b, int64_t t) {
    double sb = (double)m->seq_len * (double)b, h = (double)m->hidden, f = (double)m->ffn_hidden;
    double bytes = dtype_bytes(m->dtype) * sb * (4.0 * h + (4.0 * h + 2.0 * f) / (double)t);
    double act = memory_layer_activation_bytes_tp(m, b, t);
    return bytes < act ? bytes : act;
}

/* Parameters one GPU holds for nlayers layers (+ the embedding when first, the LM head and
 * final norm when last): a 1/t share with tensor parallelism. */
static double stage_params(const Scenario *s, int64_t nlayers, int first, int last) {
    const ScnModel *m = &s->model;
    double h = (double)m->hidden, params = (double)nlayers * memory_layer_params(m);
    if (first) params += ((double)m->vocab + (double)m->seq_len) * h;
    if (last) params += (double)m->vocab * h + 2.0 * h;
    return params / (double)scenario_tensor(s);
}

void memory_stage_footprint(const Scenario *s, int64_t nlayers, int first, int last,
                            double *params, double *act, double *w_pending) {
    const ScnModel *m = &s->model;
    double h = (double)m->hidden, sq = (double)m->seq_len, b = (double)s->batch.micro_batch_size;
    double layers = (double)nlayers, ends = 0, t = (double)scenario_tensor(s);
    *params = stage_params(s, nlayers, first, last);
    if (first) ends += sq * b * h;
    if (last) ends += 4.0 * sq * b * h * (1.0 + (double)m->vocab / (h * t));
    int64_t tp = scenario_tensor(s), mb = s->batch.micro_batch_size;
    *act = layers * memory_layer_activation_bytes_tp(m, mb, tp) + ends;
    *w_pending = layers * memory_layer_w_pending_bytes_tp(m, mb, tp) + ends;
}

int64_t memory_stage_layer_cap(const Scenario *s, const PartitionStage *st) {
    double gib = s->device ? s->device[st->device].memory_gib : s->hw.memory_gib;
    double wb = dtype_bytes(s->model.dtype), ver = st->weight_versions;
    double per_param = wb * ver + wb + memory_optimizer_bytes_per_param(&s->model);
    double p1, a1, w1, p0, a0, w0;
    memory_stage_footprint(s, 1, st->first, st->last, &p1, &a1, &w1);
    memory_stage_footprint(s, 0, st->first, st->last, &p0, &a0, &w0);
    double fixed = p0 * per_param + st->inflight * a0;           // embedding / head
    double layer = (p1 - p0) * per_param + st->inflight * (a1 - a0);
    double room = gib * GIB / st->chunks - fixed;
    return room < layer ? 0 : (int64_t)(room / layer);
}

double memory_stage_params(const Scenario *s, const Plan *pl, int32_t st) {
    return stage_params(s, pl->layers[st], plan_stage_is_first(pl, st), plan_stage_is_last(pl, st));
}

static void stage_footprint(const Scenario *s, const Plan *pl, int32_t st, double *params,
                            double *act, double *w_pending) {
    memory_stage_footprint(s, pl->layers[st], plan_stage_is_first(pl, st),
                           plan_stage_is_last(pl, st), params, act, w_pending);
}

static void static_memory(const Scenario *s, const Plan *pl, const Program *pr, int32_t d,
                          DeviceMemory *dm) {
    int wb = dtype_bytes(s->model.dtype);
    memset(dm, 0, sizeof *dm);
    for (int32_t c = 0; c < pr->chunks; c++) {
        double params, act, pending;
        stage_footprint(s, pl, program_stage_of(pr, d, c), &params, &act, &pending);
        dm->params += params;
    }
    dm->weight_versions = pr->weight_versions ? pr->weight_versions[d] : 1;
    dm->weight_bytes = dm->params * wb * dm->weight_versions;
    dm->grad_bytes = dm->params * wb;
    dm->optimizer_bytes = dm->params * memory_optimizer_bytes_per_param(&s->model);
}

typedef struct {
    int64_t t_ns;  // ns since the run's epoch
    int32_t take;  // +1 an activation is taken, -1 given back, 0 shrunk to its W part
    double bytes;  // taken (> 0) or given back (< 0)
} MemEvent;

/* Every device's events, in order: device d's are ev[first[d]] .. ev[first[d + 1] - 1]. */
typedef struct {
    MemEvent *ev;  // first[devices] events
    size_t *first; // devices + 1 offsets
} MemEvents;

/* The order events are applied in on one device: time, then gives before takes. */
static int event_before(const MemEvent *a, const MemEvent *b) {
    return a->t_ns != b->t_ns ? a->t_ns < b->t_ns : a->bytes < b->bytes;
}

/* Stable bottom-up merge sort of a[n] with the room tmp[n]: O(n log n), the fallback. */
static void events_merge_sort(MemEvent *a, MemEvent *tmp, size_t n) {
    MemEvent *src = a, *dst = tmp;
    for (size_t w = 1; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) dst[k++] = event_before(&src[j], &src[i]) ? src[j++] : src[i++];
            while (i < mid) dst[k++] = src[i++];
            while (j < hi) dst[k++] = src[j++];
        }
        MemEvent *x = src;
        src = dst, dst = x;
    }
    if (src != a) memcpy(a, src, n * sizeof *a);
}

/* Sorts one device's events stably by event_before. The engine emits a device's compute rows
 * in start order and they do not overlap (a fused pair shares one interval), so its events
 * come nearly sorted: an insertion sort fixes the few pairs out of order in O(n + moves). A
 * producer that breaks that (moves past 4n + 64) gets the merge sort instead, which finishes
 * stably from the partly sorted state. 0, or -1 out of memory. */
static int events_sort(MemEvent *a, size_t n) {
    size_t moves = 0, budget = 4 * n + 64;
    for (size_t i = 1; i < n && moves <= budget; i++) {
        if (!event_before(&a[i], &a[i - 1])) continue;
        MemEvent x = a[i];
        size_t j = i;
        for (; j > 0 && event_before(&x, &a[j - 1]); j--) a[j] = a[j - 1];
        a[j] = x;
        moves += i - j;
    }
    if (moves <= budget) return 0;
    MemEvent *tmp = malloc(n * sizeof *tmp);
    if (!tmp) return -1;
    events_merge_sort(a, tmp, n);
    free(tmp);
    return 0;
}

/* The take/give-back event of compute row r on a stage holding a[0] bytes of activations per
 * micro-batch, a[1] of them from B to W. */
static MemEvent row_event(const TimelineOp *r, const double *a) {
    switch ((OpKind)r->kind) {
    case OP_F: return (MemEvent){.t_ns = r->start_ns, .take = 1, .bytes = a[0]};
    case OP_B: return (MemEvent){.t_ns = r->end_ns, .take = 0, .bytes = a[1] - a[0]};
    case OP_W: return (MemEvent){.t_ns = r->end_ns, .take = -1, .bytes = -a[1]};
    default: return (MemEvent){.t_ns = r->end_ns, .take = -1, .bytes = -a[0]};
    }
}

/* The take/give-back events of the compute rows, bucketed by device in row order (a counting
 * pass, then a placing pass), then sorted per device: O(n) for the engine's timelines,
 * O(n log n) at worst. Rows of devices outside 0..devices-1 are left out. 0, or -1 out of
 * memory. */
static int activation_events(const Scenario *s, const Plan *pl, const Program *pr,
                             const Timeline *tl, MemEvents *out) {
    int32_t p = pr->devices;
    double *act = malloc((size_t)pl->stages * 2 * sizeof *act); // [st][0 whole, 1 W part]
    size_t *first = calloc((size_t)p + 1, sizeof *first);
    size_t *next = malloc(((size_t)p + 1) * sizeof *next);
    int rc = act && first && next ? 0 : -1;
    for (int32_t st = 0; rc == 0 && st < pl->stages; st++) {
        double params;
        stage_footprint(s, pl, st, &params, &act[2 * st], &act[2 * st + 1]);
    }
    for (size_t i = 0; rc == 0 && i < tl->n; i++) {
        const TimelineOp *r = &tl->ops[i];
        if (r->stream == STREAM_COMPUTE && r->device >= 0 && r->device < p) first[r->device + 1]++;
    }
    for (int32_t d = 0; rc == 0 && d < p; d++) first[d + 1] += first[d];
    MemEvent *ev = rc == 0 ? malloc((first[p] ? first[p] : 1) * sizeof *ev) : NULL;
    if (!ev) rc = -1;
    if (rc == 0) memcpy(next, first, ((size_t)p + 1) * sizeof *next);
    for (size_t i = 0; rc == 0 && i < tl->n; i++) {
        const TimelineOp *r = &tl->ops[i];
        if (r->stream != STREAM_COMPUTE || r->device < 0 || r->device >= p) continue;
        ev[next[r->device]++] = row_event(r, &act[2 * program_stage_of(pr, r->device, r->chunk)]);
    }
    for (int32_t d = 0; rc == 0 && d < p; d++) rc = events_sort(&ev[first[d]], first[d + 1] - first[d]);
    free(act), free(next);
    if (rc != 0) {
        free(first), free(ev);
        return -1;
    }
    *out = (MemEvents){.ev = ev, .first = first};
    return 0;
}

static int sample(MemTrace *trace, int64_t t, int32_t d, double bytes) {
    if (!trace) return 0;
    MemSample x = {.t_ns = t, .device = d, .bytes = (int64_t)(bytes + 0.5)};
    return memtrace_push(trace, &x);
}

int memory_compute(const Scenario *s, const Plan *pl, const Program *pr, const Timeline *tl,
                   DeviceMemory *out, MemTrace *trace) {
    MemEvents me;
    if (activation_events(s, pl, pr, tl, &me) != 0) return -1;
    int rc = 0;
    for (int32_t d = 0; d < pr->devices && rc == 0; d++) {
        DeviceMemory *dm = &out[d];
        static_memory(s, pl, pr, d, dm);
        double fixed = dm->weight_bytes + dm->grad_bytes + dm->optimizer_bytes, bytes = 0;
        int32_t held = 0;
        const MemEvent *ev = me.ev;
        size_t i = me.first[d], n = me.first[d + 1];
        if (i == n || ev[i].t_ns > 0) rc = sample(trace, 0, d, fixed);
        while (i < n && rc == 0) {
            int64_t t = ev[i].t_ns;
            for (; i < n && ev[i].t_ns == t; i++) {
                held += ev[i].take;
                bytes += ev[i].bytes;
                if (held > dm->peak_activations) dm->peak_activations = held;
                if (bytes > dm->activation_bytes) dm->activation_bytes = bytes;
            }
            if (held == 0) bytes = 0; // no rounding residue once everything is given back
            rc = sample(trace, t, d, fixed + bytes);
        }
        dm->peak_bytes = fixed + dm->activation_bytes;
    }
    free(me.ev), free(me.first);
    return rc;
}
