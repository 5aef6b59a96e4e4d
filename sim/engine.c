/* sim/engine.c: event queue, links and the per-device program counters. One Engine lives for
 * one engine_run call; nothing is global. */
#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { EV_ARRIVE = 0, EV_OP_END = 1 }; // order at equal times: arrivals first

typedef struct {
    int64_t time_ns; // when it happens
    uint64_t key;    // type in the top bit (arrivals first), then insertion order: ties break
    int32_t device;  // device that ends an op, or that receives
    int32_t slot;    // EV_ARRIVE: index into ready[] (stage*m + micro-batch), bit in the top
} Event;             // 24 bytes: heap moves are most of the engine's time

#define SLOT_GRAD_BIT 0x40000000 // in Event.slot: the arrival is a gradient, not an activation
#define KEY_TYPE_BIT (1ULL << 63)

enum { READY_ACT = 1, READY_GRAD = 2 };

typedef struct {
    int64_t key;     // src*p + dst + 1, 0 = empty
    int64_t free_ns; // when the link can start its next transfer
} Link;

typedef struct {
    const Program *pr;
    const CostModel *c;
    Timeline *tl;
    int32_t p, m, mb_base;
    Event *heap;
    size_t nheap, capheap;
    uint64_t seq;
    int64_t *pc;      // [p] next op index into pr->ops
    uint8_t *running; // [p] ops in progress: 0, 1, or 2 for a fused pair
    uint8_t *ready;   // [stages*m] READY_* bits of inputs that have arrived
    Link *links;      // open addressing, capacity a power of two
    size_t caplinks;
    int64_t last_ns;  // latest end of anything so far
    int oom;
    const Variability *var; // NULL: op times as the cost model gives them, no failure
    int32_t run;            // the Program run (iteration, with a flush) in progress
    VaryFailure failure;    // the failure once it has happened
} Engine;

static int ev_before(const Event *a, const Event *b) {
    return a->time_ns != b->time_ns ? a->time_ns < b->time_ns : a->key < b->key;
}

/* Pushes an event of type EV_ARRIVE or EV_OP_END. */
static void heap_push(Engine *e, Event ev, int type) {
    if (e->nheap == e->capheap) {
        size_t cap = e->capheap ? e->capheap * 2 : 64;
        Event *h = realloc(e->heap, cap * sizeof *h);
        if (!h) {
            e->oom = 1;
            return;
        }
        e->heap = h;
        e->capheap = cap;
    }
    ev.key = e->seq++ | (type == EV_OP_END ? KEY_TYPE_BIT : 0);
    size_t i = e->nheap++;
    while (i > 0 && ev_before(&ev, &e->heap[(i - 1) / 2])) {
        e->heap[i] = e->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    e->heap[i] = ev;
}

static Event heap_pop(Engine *e) {
    Event top = e->heap[0], last = e->heap[--e->nheap];
    size_t i = 0, n = e->nheap;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, best = i;
        const Event *bv = &last;
        if (l < n && ev_before(&e->heap[l], bv)) best = l, bv = &e->heap[l];
        if (r < n && ev_before(&e->heap[r], bv)) best = r;
        if (best == i) break;
        e->heap[i] = e->heap[best];
        i = best;
    }
    if (n) e->heap[i] = last;
    return top;
}

/* The directed link src -> dst, created on first use. Pipelines talk to few peers, so the
 * table stays small; lookups are O(1) expected. */
static Link *link_get(Engine *e, int32_t src, int32_t dst) {
    int64_t key = (int64_t)src * e->p + dst + 1;
    size_t mask = e->caplinks - 1, i = (size_t)(key * 0x9E3779B97F4A7C15ULL >> 17) & mask;
    while (e->links[i].key != 0 && e->links[i].key != key) i = (i + 1) & mask;
    e->links[i].key = key;
    return &e->links[i];
}

static void record(Engine *e, const TimelineOp *row) {
    if (timeline_push(e->tl, row) != 0) e->oom = 1;
    if (row->end_ns > e->last_ns) e->last_ns = row->end_ns;
}

/* Whether the input of op (on device d) has arrived. */
static int input_ready(const Engine *e, int32_t d, const ProgramOp *op) {
    int32_t st = program_stage_of(e->pr, d, op->chunk);
    int32_t in = program_input_stage(e->pr, (OpKind)op->kind, st);
    uint8_t need = op->kind == OP_F ? READY_ACT : READY_GRAD;
    return in < 0 || (e->ready[(int64_t)st * e->m + op->micro_batch] & need);
}

static void record_compute(Engine *e, int32_t d, const ProgramOp *op, int64_t start, int64_t end) {
    TimelineOp row = {.start_ns = start, .end_ns = end, .device = d, .peer = -1,
                      .micro_batch = e->mb_base + op->micro_batch, .chunk = op->chunk,
                      .kind = op->kind, .stream = STREAM_COMPUTE};
    record(e, &row);
}

/* Every compute op's time: the cost model's base_ns through the run's jitter and straggler.
 * op is the op's index in device d's program. */
static int64_t op_duration(const Engine *e, int32_t d, int64_t op, int64_t now, int64_t base_ns) {
    return e->var ? variability_op_ns(e->var, e->run, d, op, now, base_ns) : base_ns;
}

/* Starts device d's next op at now if it is idle and the op's input has arrived; a fused
 * pair starts when both inputs have, takes the fused time and gets two rows. */
static void device_try(Engine *e, int32_t d, int64_t now) {
    const Program *pr = e->pr;
    if (e->running[d] || e->pc[d] == pr->start[d + 1]) return;
    const ProgramOp *op = &pr->ops[e->pc[d]];
    int fused = (op->flags & OPF_FUSED_NEXT) != 0; // the checker made sure op + 1 exists
    if (!input_ready(e, d, op) || (fused && !input_ready(e, d, op + 1))) return;
    int32_t st = program_stage_of(pr, d, op->chunk);
    int64_t end = now + op_duration(e, d, e->pc[d] - pr->start[d], now,
                                    fused ? cost_fused_ns(e->c, st, (OpKind)op->kind,
                                                          program_stage_of(pr, d, op[1].chunk),
                                                          (OpKind)op[1].kind)
                                          : cost_op_ns(e->c, st, (OpKind)op->kind));
    for (int k = 0; k <= fused; k++) record_compute(e, d, op + k, now, end);
    e->running[d] = (uint8_t)(1 + fused);
    e->pc[d] += 1 + fused;
    heap_push(e, (Event){.time_ns = end, .device = d}, EV_OP_END);
}

/* Device d finished op at now: hand its output to the consuming stage. */
static void op_output(Engine *e, int32_t d, const ProgramOp *op, int64_t now) {
    const Program *pr = e->pr;
    int32_t out = program_output_stage(pr, (OpKind)op->kind, program_stage_of(pr, d, op->chunk));
    if (out < 0) return;
    int32_t od, oc;
    program_device_of(pr, out, &od, &oc);
    int64_t slot = (int64_t)out * e->m + op->micro_batch;
    uint8_t bit = op->kind == OP_F ? READY_ACT : READY_GRAD;
    if (od == d) {
        e->ready[slot] |= bit;
        return;
    }
    Link *l = link_get(e, d, od);
    int64_t start = now > l->free_ns ? now : l->free_ns;
    int64_t end = start + cost_xfer_ns(e->c, d, od);
    l->free_ns = end;
    TimelineOp row = {.start_ns = start, .end_ns = end, .bytes = e->c->xfer_bytes,
                      .device = d, .peer = od, .micro_batch = e->mb_base + op->micro_batch,
                      .chunk = oc, .kind = op->kind, .stream = STREAM_SEND};
    record(e, &row);
    row.device = od, row.peer = d, row.stream = STREAM_RECV;
    record(e, &row);
    heap_push(e, (Event){.time_ns = end, .device = od,
                         .slot = (int32_t)slot | (bit == READY_GRAD ? SLOT_GRAD_BIT : 0)},
              EV_ARRIVE);
}

/* Device d finished the op (or fused pair) before its pc at now; outputs go in op order. */
static void op_finished(Engine *e, int32_t d, int64_t now) {
    int n = e->running[d];
    e->running[d] = 0;
    for (int k = n; k >= 1; k--) op_output(e, d, &e->pr->ops[e->pc[d] - k], now);
}

static void stall_report(const Engine *e, char *why, size_t len) {
    const Program *pr = e->pr;
    size_t used = 0;
    why[0] = '\0';
    for (int32_t d = 0, shown = 0; d < e->p && shown < 4; d++) {
        if (e->pc[d] == pr->start[d + 1]) continue;
        const ProgramOp *op = &pr->ops[e->pc[d]];
        if ((op->flags & OPF_FUSED_NEXT) && input_ready(e, d, op)) op++; // its pair waits
        int32_t in = program_input_stage(pr, (OpKind)op->kind,
                                         program_stage_of(pr, d, op->chunk));
        int32_t id = -1, ic = -1;
        if (in >= 0) program_device_of(pr, in, &id, &ic);
        char name[64];
        int n = snprintf(why + used, len - used, "%sdevice %d op %lld (%s) waits for %s from "
                         "device %d chunk %d",
                         shown ? "; " : "", d, (long long)(op - &pr->ops[pr->start[d]]),
                         program_op_str(op, name, sizeof name),
                         op->kind == OP_F ? "its activation" : "its gradient", id, ic);
        if (n < 0 || (size_t)n >= len - used) break;
        used += (size_t)n;
        shown++;
    }
}

static int run_iteration(Engine *e, int32_t k, int64_t t0, char *why, size_t whylen) {
    const Program *pr = e->pr;
    e->mb_base = k * e->m;
    e->run = k;
    memset(e->running, 0, (size_t)e->p);
    memset(e->ready, 0, (size_t)program_stages(pr) * (size_t)e->m);
    for (int32_t d = 0; d < e->p; d++) e->pc[d] = pr->start[d];
    for (int32_t d = 0; d < e->p; d++) device_try(e, d, t0);
    while (e->nheap > 0 && !e->oom) {
        Event ev = heap_pop(e);
        if (ev.key & KEY_TYPE_BIT) { // an op ended
            op_finished(e, ev.device, ev.time_ns);
            device_try(e, ev.device, ev.time_ns);
        } else {
            e->ready[ev.slot & ~SLOT_GRAD_BIT] |= ev.slot & SLOT_GRAD_BIT ? READY_GRAD : READY_ACT;
            device_try(e, ev.device, ev.time_ns);
        }
    }
    if (e->oom) return -1;
    for (int32_t d = 0; d < e->p; d++) {
        if (e->pc[d] != pr->start[d + 1]) {
            stall_report(e, why, whylen);
            return -2;
        }
    }
    return 0;
}

/* Room for every row the run will add (an op each, a send and a recv per cross-device
 * output), so the timeline is allocated once: no copies while it grows, no slack. */
static int reserve_rows(const Program *pr, int32_t runs, Timeline *tl) {
    int64_t per_run = pr->nops;
    for (int32_t d = 0; d < pr->devices; d++)
        for (int64_t i = pr->start[d]; i < pr->start[d + 1]; i++) {
            const ProgramOp *op = &pr->ops[i];
            int32_t out = program_output_stage(pr, (OpKind)op->kind,
                                               program_stage_of(pr, d, op->chunk));
            per_run += out >= 0 && pr->device_of[out] != d ? 2 : 0;
        }
    return timeline_reserve(tl, tl->n + (size_t)per_run * (size_t)runs);
}

/* Rows of device d's tail: its chunks' all-reduces in order of readiness (ready[ch], the end
 * of the chunk's last backward; ties in chunk order) one at a time on the collective lane,
 * then the optimizer step once its compute (ending at done) and all-reduces are over. */
static void device_tail(Engine *e, int32_t d, const int64_t *ready, const uint8_t *kind,
                        int64_t done) {
    int32_t v = e->pr->chunks, order[SCN_MAX_CHUNKS];
    for (int32_t i = 0; i < v; i++) { // insertion sort: v is small
        int32_t j = i;
        for (; j > 0 && ready[order[j - 1]] > ready[i]; j--) order[j] = order[j - 1];
        order[j] = i;
    }
    int64_t free_ns = 0; // when the collective lane is free
    for (int32_t i = 0; i < v; i++) {
        int32_t ch = order[i], st = program_stage_of(e->pr, d, ch);
        if (ready[ch] < 0) continue; // no backward of this chunk in the run
        int64_t start = ready[ch] > free_ns ? ready[ch] : free_ns;
        TimelineOp row = {.start_ns = start, .end_ns = start + cost_allreduce_ns(e->c, d, st),
                          .bytes = e->c->grad_bytes[st], .device = d, .peer = -1,
                          .micro_batch = e->mb_base, .chunk = (int16_t)ch, .kind = kind[ch],
                          .stream = STREAM_COLLECTIVE};
        record(e, &row);
        free_ns = row.end_ns;
    }
    int64_t opt = 0;
    for (int32_t ch = 0; ch < v; ch++) opt += e->c->opt_ns[program_stage_of(e->pr, d, ch)];
    int64_t start = free_ns > done ? free_ns : done;
    TimelineOp row = {.start_ns = start, .end_ns = start + opt, .device = d, .peer = -1,
                      .micro_batch = e->mb_base, .kind = OP_BW, .stream = STREAM_OPTIMIZER};
    record(e, &row);
}

/* The data-parallel tail of the run of the Program whose rows start at tl->ops[first]
 * (cost.h): each device's gradient all-reduces and optimizer step. Overlaps the cool-down
 * where a chunk's gradients are ready early; moves last_ns, so with a flush the next
 * iteration starts when every device's optimizer step has ended. O(rows + p v^2). */
static int dp_tail(Engine *e, size_t first) {
    int32_t v = e->pr->chunks;
    int64_t *ready = malloc((size_t)e->p * (size_t)v * sizeof *ready);
    int64_t *done = malloc((size_t)e->p * sizeof *done);
    uint8_t *kind = malloc((size_t)e->p * (size_t)v);
    if (!ready || !done || !kind) e->oom = 1;
    for (int64_t i = 0; !e->oom && i < (int64_t)e->p * v; i++) ready[i] = -1, kind[i] = OP_BW;
    for (int32_t d = 0; !e->oom && d < e->p; d++) done[d] = -1;
    for (size_t i = first; !e->oom && i < e->tl->n; i++) {
        const TimelineOp *r = &e->tl->ops[i];
        if (r->stream != STREAM_COMPUTE) continue;
        if (r->end_ns > done[r->device]) done[r->device] = r->end_ns;
        int64_t at = (int64_t)r->device * v + r->chunk;
        if ((r->kind == OP_W || r->kind == OP_BW) && r->end_ns > ready[at])
            ready[at] = r->end_ns, kind[at] = r->kind;
    }
    for (int32_t d = 0; !e->oom && d < e->p; d++)
        if (done[d] >= 0) device_tail(e, d, &ready[(int64_t)d * v], &kind[(int64_t)d * v], done[d]);
    free(ready), free(done), free(kind);
    return e->oom ? -1 : 0;
}

/* Whether the failure falls inside the run just played, which started at t0. */
static int failure_hits(const Engine *e, int64_t t0) {
    const Variability *v = e->var;
    return v && v->failure_device >= 0 && !e->failure.happened && v->failure_at_ns >= t0 &&
           v->failure_at_ns < e->last_ns;
}

/* Plays run k from t0 with its data-parallel tail (a failure during the tail loses the
 * iteration too). */
static int run_attempt(Engine *e, int32_t k, int64_t t0, char *why, size_t whylen) {
    size_t first = e->tl->n;
    int rc = run_iteration(e, k, t0, why, whylen);
    if (rc == 0 && e->c->tail) rc = dp_tail(e, first);
    return rc;
}

/* Plays run k from the latest end. When the failure falls inside it, the attempt is lost:
 * its rows go, nothing is left in flight, and run k is played again from the checkpoint (its
 * start t0) + the lost time, drawing the same jitter. */
static int run_checkpointed(Engine *e, int32_t k, char *why, size_t whylen) {
    size_t rows = e->tl->n;
    int64_t t0 = e->last_ns;
    int rc = run_attempt(e, k, t0, why, whylen);
    if (rc != 0 || !failure_hits(e, t0)) return rc;
    const Variability *v = e->var;
    e->failure = (VaryFailure){.happened = 1, .device = v->failure_device,
                               .iteration = k * e->pr->iterations, .checkpoint_ns = t0,
                               .at_ns = v->failure_at_ns, .restart_ns = v->restart_ns,
                               .lost_ns = v->failure_at_ns - t0 + v->restart_ns};
    e->tl->n = rows;
    for (size_t i = 0; i < e->caplinks; i++) e->links[i].free_ns = 0;
    e->last_ns = t0 + e->failure.lost_ns;
    return run_attempt(e, k, e->last_ns, why, whylen);
}

int engine_run(const Program *pr, const CostModel *c, int32_t iterations, Timeline *tl,
               char *why, size_t whylen) {
    return engine_run_varied(pr, c, NULL, iterations, tl, NULL, why, whylen);
}

int engine_run_varied(const Program *pr, const CostModel *c, const Variability *var,
                      int32_t iterations, Timeline *tl, VaryFailure *failure, char *why,
                      size_t whylen) {
    Engine e = {.pr = pr, .c = c, .tl = tl, .p = pr->devices, .m = pr->micro_batches,
                .var = var && (var->ops_vary || var->failure_device >= 0) ? var : NULL};
    // Data only crosses stage boundaries, so there are at most 2*stages directed links.
    e.caplinks = 16;
    while (e.caplinks < (size_t)program_stages(pr) * 4) e.caplinks *= 2;
    e.pc = malloc((size_t)e.p * sizeof *e.pc);
    e.running = malloc((size_t)e.p);
    e.ready = malloc((size_t)program_stages(pr) * (size_t)e.m + 1);
    e.links = calloc(e.caplinks, sizeof *e.links);
    int rc = (!e.pc || !e.running || !e.ready || !e.links) ? -1 : 0;
    int32_t runs = iterations / pr->iterations;
    if (rc == 0) rc = reserve_rows(pr, runs, tl);
    if (rc == 0 && c->tail) // each run's tail: an all-reduce per stage, a step per device
        rc = timeline_reserve(tl, tl->cap + (size_t)(program_stages(pr) + e.p) * (size_t)runs);
    for (int32_t k = 0; k < runs && rc == 0; k++)
        rc = run_checkpointed(&e, k, why, whylen);
    if (failure) *failure = e.failure;
    free(e.heap), free(e.pc), free(e.running), free(e.ready), free(e.links);
    return rc;
}
