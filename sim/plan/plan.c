/* sim/plan/plan.c: layer-to-stage partitions: uniform, explicit (the scenario parser has already
 * checked that it covers every layer exactly once) or balanced over each stage's device
 * speed and memory; and which device runs each stage. No timing beyond cost_stage_ns. */
#include "sim/plan/plan.h"

#include "sim/model/cost.h"
#include "sim/model/memory.h"
#include "sim/sched/schedule.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- partition = balanced ------------------------------------------------------------------
 * The layers of one model copy go to its `per` stages in order, each stage st getting k_st >= 1
 * layers, sum L. Stage st runs on device d(st) at that device's speed, so its time
 * t_st(k) = cost_stage_ns(d(st), k, LM head if last) rises with k, and so does its memory
 * m_st(k) = k x (per-layer weights + grads + optimizer + in-flight x activations) + the
 * embedding's or head's share. For a bound T on the slowest stage, each stage can take at
 * most cap_st(T) = max{k : t_st(k) <= T, m_st(k) <= its budget} layers, and a split exists iff
 * every cap_st >= 1 and sum cap_st >= L (the constraints are per-stage boxes plus the sum), so
 * the smallest feasible T, found by binary search over integer ns, is the exact optimum. */

typedef struct {
    const Scenario *s;
    int32_t per;            // stages of one copy
    int32_t v;              // stages per device (memory is shared by them)
    const int32_t *device;  // [per] device of each stage
    const int32_t *inflight; // [per] peak micro-batches in flight at each stage
    const int32_t *versions; // [devices] weight copies kept, NULL: 1
    int use_memory;
} Balance;

/* Most layers stage st can hold within its device's memory_gib / v (-1: no bound). */
static int64_t memory_cap(const Balance *b, int32_t st) {
    const Scenario *s = b->s;
    int32_t d = b->device[st];
    if (!b->use_memory) return -1;
    double gib = s->device ? s->device[d].memory_gib : s->hw.memory_gib;
    double wb = dtype_bytes(s->model.dtype), ver = b->versions ? b->versions[d] : 1;
    double per_param = wb * ver + wb + memory_optimizer_bytes_per_param(&s->model);
    double p1, a1, w1, p0, a0, w0;
    memory_stage_footprint(s, 1, st == 0, st == b->per - 1, &p1, &a1, &w1);
    memory_stage_footprint(s, 0, st == 0, st == b->per - 1, &p0, &a0, &w0);
    double fixed = p0 * per_param + b->inflight[st] * a0;           // embedding / head
    double layer = (p1 - p0) * per_param + b->inflight[st] * (a1 - a0);
    double room = gib * GIB / b->v - fixed;
    return room < layer ? 0 : (int64_t)(room / layer);
}

static int64_t stage_ns(const Balance *b, int32_t st, int64_t k) {
    return cost_stage_ns(b->s, b->device[st], k, st == b->per - 1);
}

/* Most layers (0 .. L) stage st runs within T ns and its memory cap (mcap < 0: none). */
static int64_t time_cap(const Balance *b, int32_t st, int64_t T, int64_t mcap) {
    int64_t lo = 0, hi = b->s->model.layers - (b->per - 1); // t_st(lo) <= T is kept
    if (mcap >= 0 && mcap < hi) hi = mcap;
    if (hi < 1 || stage_ns(b, st, 1) > T) return 0;
    lo = 1;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo + 1) / 2;
        if (stage_ns(b, st, mid) <= T) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

/* Fills cap[per] for T; returns whether a split of the L layers fits them. */
static int feasible(const Balance *b, const int64_t *mcap, int64_t T, int64_t *cap) {
    int64_t sum = 0;
    for (int32_t st = 0; st < b->per; st++) {
        cap[st] = time_cap(b, st, T, mcap[st]);
        if (cap[st] < 1) return 0;
        sum += cap[st];
    }
    return sum >= b->s->model.layers;
}

/* The smallest T (ns) that some split meets, with cap[] filled for it; -1 when none does. */
static int64_t optimum(const Balance *b, const int64_t *mcap, int64_t *cap) {
    int64_t lo = 0, hi = 0; // feasible(hi) when anything is; lo - 1 is not
    for (int32_t st = 0; st < b->per; st++) {
        int64_t t = stage_ns(b, st, b->s->model.layers - (b->per - 1));
        if (t > hi) hi = t;
    }
    if (!feasible(b, mcap, hi, cap)) return -1;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (feasible(b, mcap, mid, cap)) hi = mid;
        else lo = mid + 1;
    }
    feasible(b, mcap, lo, cap);
    return lo;
}

/* Layers stage st takes at level T: as many as run within T ns, at least 1, at most its
 * memory cap. */
static int64_t level_take(const Balance *b, const int64_t *mcap, int32_t st, int64_t T) {
    int64_t k = time_cap(b, st, T, mcap[st]);
    return k < 1 ? 1 : k;
}

static int64_t level_sum(const Balance *b, const int64_t *mcap, int64_t T) {
    int64_t sum = 0;
    for (int32_t st = 0; st < b->per; st++) sum += level_take(b, mcap, st, T);
    return sum;
}

/* Water-filling among the optimal splits: the smallest level T2 at which stages filled up to
 * T2 (each at least 1 layer) hold all the layers; every stage takes what fits below T2, and
 * the few layers left go to the stages that reach T2 exactly, earlier stages first. When a
 * stage's minimum forces the optimum (an LM head alone on a slow device), the others still
 * come out even in time, not in layers. Its slowest stage is the optimum T: at T2 no stage
 * passes T2 except those held at 1 layer, which every split has. O(S log L log T). */
static void split_level(const Balance *b, const int64_t *mcap, int64_t T, int64_t *layers) {
    int64_t lo = 0, hi = T, L = b->s->model.layers;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (level_sum(b, mcap, mid) >= L) hi = mid;
        else lo = mid + 1;
    }
    int64_t left = L;
    for (int32_t st = 0; st < b->per; st++) left -= layers[st] = level_take(b, mcap, st, lo - 1);
    for (int32_t st = 0; st < b->per && left > 0; st++) {
        int64_t more = level_take(b, mcap, st, lo) - layers[st];
        if (more > left) more = left;
        layers[st] += more, left -= more;
    }
}

/* The slowest stage of a split: its time, and the stage in *at. */
static int64_t slowest(const Balance *b, const int64_t *layers, int32_t *at) {
    int64_t worst = -1;
    for (int32_t st = 0; st < b->per; st++) {
        int64_t t = stage_ns(b, st, layers[st]);
        if (t > worst) worst = t, *at = st;
    }
    return worst;
}

/* Balances the first copy's stages into pl->layers[0 .. per) and notes why in pl. */
static int balance(Balance *b, Plan *pl) {
    int32_t per = b->per;
    int64_t *mcap = calloc((size_t)per, sizeof *mcap), *cap = calloc((size_t)per, sizeof *cap);
    int64_t *even = calloc((size_t)per, sizeof *even);
    if (!mcap || !cap || !even) {
        free(mcap), free(cap), free(even);
        return -1;
    }
    for (int32_t st = 0; st < per; st++) {
        mcap[st] = -1;
        even[st] = b->s->model.layers / per + (st < b->s->model.layers % per);
    }
    int32_t at = 0;
    pl->even_ns = slowest(b, even, &at);
    pl->unlimited_ns = optimum(b, mcap, cap); // no memory bound: always feasible
    pl->memory_device = -1;
    pl->fits_memory = 1;
    for (int32_t st = 0; st < per; st++) mcap[st] = memory_cap(b, st);
    int64_t T = optimum(b, mcap, cap);
    if (T < 0) { // nothing fits: balance on time alone
        pl->fits_memory = 0;
        for (int32_t st = 0; st < per; st++) mcap[st] = -1;
        T = pl->unlimited_ns;
    }
    split_level(b, mcap, T, pl->layers);
    pl->bottleneck_ns = slowest(b, pl->layers, &pl->bottleneck_stage);
    for (int32_t st = 0; st < per; st++) // memory binds: the stage could take more in time
        if (mcap[st] >= 0 && mcap[st] < time_cap(b, st, pl->bottleneck_ns, -1)) {
            pl->memory_device = b->device[st];
            break;
        }
    free(mcap), free(cap), free(even);
    return 0;
}

int plan_build(const Scenario *s, Plan *out, char *err, size_t errlen) {
    return plan_build_copies(s, sched_pipes(s->pipeline.schedule), out, err, errlen);
}

/* Checks the partition against the copies and allocates out. Returns 0, 2 or -1. */
static int plan_init(const Scenario *s, int32_t pipes, Plan *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    out->devices = (int32_t)s->pipeline.stages;
    out->chunks = (int32_t)s->pipeline.chunks;
    out->stages = out->devices * out->chunks;
    out->pipes = pipes;
    out->gpus_per_node = (int32_t)s->hw.gpus_per_node;
    out->devices_per_gpu = s->hw.devices_per_gpu > 1 ? (int32_t)s->hw.devices_per_gpu : 1;
    out->memory_device = -1;
    int32_t per = out->stages / out->pipes; // stages of one model copy
    int explicit = s->pipeline.partition == PART_EXPLICIT;
    int uniform = s->pipeline.partition == PART_UNIFORM;
    if ((explicit && s->pipeline.npartition != per) || (uniform && s->model.layers % per) ||
        s->model.layers < per) {
        snprintf(err, errlen,
                 "%s: the schedule runs %d model copies of %d stages each, so %s; list %d "
                 "layer counts, one per stage of a copy",
                 s->path, out->pipes, per,
                 explicit  ? "partition has the wrong number of entries"
                 : uniform ? "the layers do not split evenly under partition = uniform"
                           : "there are fewer layers than stages",
                 per);
        return 2;
    }
    out->layers = calloc((size_t)out->stages, sizeof *out->layers);
    out->first_layer = calloc((size_t)out->stages, sizeof *out->first_layer);
    out->device_of = calloc((size_t)out->stages, sizeof *out->device_of);
    if (!out->layers || !out->first_layer || !out->device_of) {
        plan_free(out);
        return -1;
    }
    return 0;
}

/* Fills layers and first_layer from the partition (balanced: b). Returns 0 or -1. */
static int plan_fill(const Scenario *s, Balance *b, Plan *out) {
    int32_t per = out->stages / out->pipes;
    int explicit = s->pipeline.partition == PART_EXPLICIT;
    int uniform = s->pipeline.partition == PART_UNIFORM;
    if (!uniform && !explicit && balance(b, out) != 0) { // the first copy's stages
        plan_free(out);
        return -1;
    }
    int64_t next = 0;
    for (int32_t st = 0; st < out->stages; st++) {
        if (st % per == 0) next = 0;
        out->layers[st] = explicit ? s->pipeline.partition_layers[st % per]
                          : uniform ? s->model.layers / per
                                    : out->layers[st % per];
        out->first_layer[st] = next;
        next += out->layers[st];
    }
    return 0;
}

int plan_build_copies(const Scenario *s, int32_t pipes, Plan *out, char *err, size_t errlen) {
    int rc = plan_init(s, pipes, out, err, errlen);
    if (rc != 0) return rc;
    int32_t p = out->devices, per = out->stages / pipes;
    int32_t *inflight = malloc((size_t)per * sizeof *inflight);
    if (!inflight) {
        plan_free(out);
        return -1;
    }
    for (int32_t st = 0; st < out->stages; st++) // 1F1B's loop; DualPipe's mirrored copy
        out->device_of[st] = pipes == 2 && st >= per ? p - 1 - (st - per) : st % p;
    for (int32_t st = 0; st < per; st++) {
        int64_t left = p - out->device_of[st];
        inflight[st] = (int32_t)(left < s->batch.micro_batches ? left : s->batch.micro_batches);
    }
    Balance b = {s, per, out->chunks, out->device_of, inflight, NULL, 1};
    rc = plan_fill(s, &b, out);
    free(inflight);
    return rc;
}

/* Peak (micro-batch, chunk) activations held at each (device, chunk) in program order: an F
 * takes one, its W or BW gives it back (a B keeps it whole: the W-pending part stays). */
static int32_t *program_inflight(const Program *pr) {
    int32_t *held = calloc((size_t)program_stages(pr), sizeof *held);
    int32_t *peak = calloc((size_t)program_stages(pr), sizeof *peak);
    if (!held || !peak) {
        free(held), free(peak);
        return NULL;
    }
    for (int32_t d = 0; d < pr->devices; d++)
        for (int64_t i = pr->start[d]; i < pr->start[d + 1]; i++) {
            const ProgramOp *op = &pr->ops[i];
            int32_t at = d * pr->chunks + op->chunk;
            if (op->kind == OP_F && ++held[at] > peak[at]) peak[at] = held[at];
            if (op->kind == OP_W || op->kind == OP_BW) held[at]--;
        }
    free(held);
    return peak;
}

int plan_build_program(const Scenario *s, const Program *pr, Plan *out, char *err, size_t errlen) {
    int rc = plan_init(s, pr->pipes, out, err, errlen);
    if (rc != 0) return rc;
    int32_t per = out->stages / out->pipes, *peak = program_inflight(pr);
    int32_t *inflight = malloc((size_t)per * sizeof *inflight);
    if (!peak || !inflight) {
        free(peak), free(inflight), plan_free(out);
        return -1;
    }
    for (int32_t st = 0; st < out->stages; st++) {
        out->device_of[st] = pr->device_of[st];
        if (st < per) inflight[st] = peak[pr->device_of[st] * pr->chunks + pr->chunk_of[st]];
    }
    Balance b = {s, per, out->chunks, out->device_of, inflight, pr->weight_versions, 1};
    rc = plan_fill(s, &b, out);
    free(peak), free(inflight);
    return rc;
}

void plan_free(Plan *pl) {
    free(pl->layers);
    free(pl->first_layer);
    free(pl->device_of);
    memset(pl, 0, sizeof *pl);
}
