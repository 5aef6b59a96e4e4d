/* sim/memory.c: static memory per device, then the activations replayed from the Timeline as
 * take/give-back events sorted by (device, time, gives before takes). */
#include "memory.h"

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
    int64_t t_ns;
    int32_t device;
    int32_t take;  // +1 an activation is taken, -1 given back, 0 shrunk to its W part
    double bytes;  // taken (> 0) or given back (< 0)
} MemEvent;

static int event_cmp(const void *pa, const void *pb) {
    const MemEvent *a = pa, *b = pb;
    if (a->device != b->device) return a->device < b->device ? -1 : 1;
    if (a->t_ns != b->t_ns) return a->t_ns < b->t_ns ? -1 : 1;
    return (a->bytes > b->bytes) - (a->bytes < b->bytes); // give backs first
}

/* The take/give-back events of the compute rows; *n gets their number. NULL out of memory. */
static MemEvent *activation_events(const Scenario *s, const Plan *pl, const Program *pr,
                                   const Timeline *tl, size_t *n) {
    double *act = malloc((size_t)pl->stages * 2 * sizeof *act); // [st][0 whole, 1 W part]
    MemEvent *ev = malloc((tl->n ? tl->n : 1) * sizeof *ev);
    *n = 0;
    if (!act || !ev) {
        free(act), free(ev);
        return NULL;
    }
    for (int32_t st = 0; st < pl->stages; st++) {
        double params;
        stage_footprint(s, pl, st, &params, &act[2 * st], &act[2 * st + 1]);
    }
    for (size_t i = 0; i < tl->n; i++) {
        const TimelineOp *r = &tl->ops[i];
        if (r->stream != STREAM_COMPUTE) continue;
        const double *a = &act[2 * program_stage_of(pr, r->device, r->chunk)];
        MemEvent e = {.t_ns = r->end_ns, .device = r->device};
        switch ((OpKind)r->kind) {
        case OP_F: e.t_ns = r->start_ns, e.take = 1, e.bytes = a[0]; break;
        case OP_B: e.take = 0, e.bytes = a[1] - a[0]; break;
        case OP_W: e.take = -1, e.bytes = -a[1]; break;
        default: e.take = -1, e.bytes = -a[0]; break;
        }
        ev[(*n)++] = e;
    }
    free(act);
    qsort(ev, *n, sizeof *ev, event_cmp);
    return ev;
}

static int sample(MemTrace *trace, int64_t t, int32_t d, double bytes) {
    if (!trace) return 0;
    MemSample x = {.t_ns = t, .device = d, .bytes = (int64_t)(bytes + 0.5)};
    return memtrace_push(trace, &x);
}

int memory_compute(const Scenario *s, const Plan *pl, const Program *pr, const Timeline *tl,
                   DeviceMemory *out, MemTrace *trace) {
    size_t n;
    MemEvent *ev = activation_events(s, pl, pr, tl, &n);
    if (!ev) return -1;
    int rc = 0;
    size_t i = 0;
    for (int32_t d = 0; d < pr->devices && rc == 0; d++) {
        DeviceMemory *dm = &out[d];
        static_memory(s, pl, pr, d, dm);
        double fixed = dm->weight_bytes + dm->grad_bytes + dm->optimizer_bytes, bytes = 0;
        int32_t held = 0;
        if (i == n || ev[i].device != d || ev[i].t_ns > 0) rc = sample(trace, 0, d, fixed);
        while (i < n && ev[i].device == d && rc == 0) {
            int64_t t = ev[i].t_ns;
            for (; i < n && ev[i].device == d && ev[i].t_ns == t; i++) {
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
    free(ev);
    return rc;
}
