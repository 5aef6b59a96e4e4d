/* sim/engine/engine.c: event queues, links and the per-device program counters. One Engine lives for
 * one engine_run call; nothing is global. Not here: costs (cost.h), metrics (metrics.h). */
#include "sim/engine/engine.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { READY_ACT = 1, READY_GRAD = 2 };

/* Where an op of one kind on one (device, chunk) gets its input and sends its output, worked
 * out once per run so the per-event work is a table lookup (no stage arithmetic, no link
 * hash). Indexed [(device*chunks + chunk)*OP_KIND_COUNT + kind]. */
typedef struct {
    int32_t stage;     // stage of this (device, chunk)
    int32_t in_base;   // ready[] index of micro-batch 0 of the input, -1 when there is none
    int32_t out_base;  // ready[] index of micro-batch 0 at the consumer, -1 for no output
    int32_t out_dev;   // consumer's device
    int32_t link;      // index into Engine.link_free, -1 when the consumer is on this device
    int16_t out_chunk; // consumer's chunk on out_dev
    uint8_t need;      // READY_* bit the input sets
    uint8_t give;      // READY_* bit the output sets
    int64_t xfer_ns;   // one transfer over link
} Flow;                // 32 bytes

typedef struct {
    int64_t time_ns; // when the transfer has arrived
    uint64_t seq;    // insertion order among arrivals: ties break by it
    int32_t device;  // the receiving device
    int32_t slot;    // ready[] index of the (stage, micro-batch) it completes
    int32_t bit;     // READY_* bit it sets
} Arrival;

/* An op end in the winner tree: a device's leaf, or a copy of the earliest leaf below a node.
 * key = insertion order << END_DEV_BITS | device: ties on end_ns break by insertion order,
 * and every key is distinct (an idle device's too), so a node's winner is known by its key. */
typedef struct {
    int64_t end_ns; // when the device's running op ends; INT64_MAX when idle
    uint64_t key;   // (op ends inserted before this one) << END_DEV_BITS | device; idle:
                    //   END_IDLE | device, above every running op's key
} OpEnd;            // 16 bytes

#define END_DEV_BITS 24 // devices < 2^24; op ends inserted < 2^40 (engine_run asserts both)
#define END_IDLE (UINT64_MAX << END_DEV_BITS)
#define END_DEVICE(key) ((int32_t)((key) & ((1u << END_DEV_BITS) - 1)))

typedef struct {
    int64_t pc;      // next op index into pr->ops
    int64_t stop;    // pr->start[d + 1]: one past the device's last op
    int32_t running; // ops in progress: 0, 1, or 2 for a fused pair
} Device;

typedef struct {
    const Program *pr;
    const CostModel *c;
    Timeline *tl;
    TimelineOp *row, *row_end; // next row to write, end of the room; tl->n catches up in
                               //   rows_room and when engine_run returns (NULL: no room yet)
    int32_t p, v, m, mb_base;
    int32_t leaves;      // op-end tree leaves: a power of two >= max(p, 2)
    Flow *flow;          // [p*chunks*OP_KIND_COUNT]
    int64_t *link_free;  // [links] ns when each directed link can start its next transfer
    int32_t nlinks;
    Device *dev;         // [p]
    uint8_t *ready;      // [stages*m] READY_* bits of inputs that have arrived
    OpEnd *tree;         // [2*leaves] winner tree: device d's op end at leaves + d (idle
                         //   past p); node i < leaves holds the earliest of its children
                         //   2i and 2i+1; tree[1] is the earliest of all
    uint64_t end_count;  // op ends inserted so far
    Arrival *arr;        // binary heap of transfers in flight
    size_t narr, caparr;
    uint64_t arr_count;  // arrivals inserted so far
    int64_t last_ns;     // latest end of anything so far
    const Variability *var; // NULL: op times as the cost model gives them, no failure
    int32_t run;            // the Program run (iteration, with a flush) in progress
    VaryFailure failure;    // the failure once it has happened
    int oom;
} Engine;

/* ---- op ends: a winner tree over the devices, one leaf each ------------------------------ */

static int end_before(const OpEnd *a, const OpEnd *b) {
    return a->end_ns != b->end_ns ? a->end_ns < b->end_ns : a->key < b->key;
}

/* Leaf d's key changed: replay its path to the root, stopping at a node that keeps the same
 * winner with the same key (nothing above can change then). O(log p). */
static void ends_update(Engine *e, int32_t d) {
    OpEnd *tree = e->tree;
    int32_t i = e->leaves + d;
    OpEnd w = tree[i];
    while (i > 1) {
        const OpEnd *sib = &tree[i ^ 1];
        if (end_before(sib, &w)) w = *sib;
        i >>= 1;
        uint64_t old = tree[i].key;
        tree[i] = w;
        if (old == w.key) return;
    }
}

static void ends_set(Engine *e, int32_t d, int64_t end) {
    e->tree[e->leaves + d] = (OpEnd){.end_ns = end,
                                     .key = e->end_count++ << END_DEV_BITS | (uint64_t)d};
}

static void ends_clear(Engine *e, int32_t d) {
    e->tree[e->leaves + d] = (OpEnd){.end_ns = INT64_MAX, .key = END_IDLE | (uint64_t)d};
}

/* ---- arrivals: a binary heap, O(log transfers in flight) a push or a pop ----------------- */

static int arr_before(const Arrival *a, const Arrival *b) {
    return a->time_ns != b->time_ns ? a->time_ns < b->time_ns : a->seq < b->seq;
}

static void arr_push(Engine *e, Arrival a) {
    if (e->narr == e->caparr) {
        size_t cap = e->caparr ? e->caparr * 2 : 64;
        Arrival *h = realloc(e->arr, cap * sizeof *h);
        if (!h) {
            e->oom = 1;
            return;
        }
        e->arr = h;
        e->caparr = cap;
    }
    a.seq = e->arr_count++;
    size_t i = e->narr++;
    while (i > 0 && arr_before(&a, &e->arr[(i - 1) / 2])) {
        e->arr[i] = e->arr[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    e->arr[i] = a;
}

static Arrival arr_pop(Engine *e) {
    Arrival top = e->arr[0], last = e->arr[--e->narr];
    size_t i = 0, n = e->narr;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, best = i;
        const Arrival *bv = &last;
        if (l < n && arr_before(&e->arr[l], bv)) best = l, bv = &e->arr[l];
        if (r < n && arr_before(&e->arr[r], bv)) best = r;
        if (best == i) break;
        e->arr[i] = e->arr[best];
        i = best;
    }
    if (n) e->arr[i] = last;
    return top;
}

/* ---- rows ------------------------------------------------------------------------------ */

/* Brings tl->n up to the cursor and makes room for `rows` more rows after it. 0, or -1 (and
 * oom) when out of memory. */
static int rows_room(Engine *e, size_t rows) {
    Timeline *tl = e->tl;
    if (e->row) tl->n = (size_t)(e->row - tl->ops);
    if (tl->cap - tl->n < rows && timeline_reserve(tl, tl->n + rows) != 0) {
        e->oom = 1;
        return -1;
    }
    if (tl->ops) e->row = tl->ops + tl->n, e->row_end = tl->ops + tl->cap; // else no room yet
    return 0;
}

/* Every row goes through record() (never timeline_push while an Engine runs): it writes
 * through the cursor into the room run_iteration reserved, grows the timeline past it, and
 * moves last_ns. */
static inline void record(Engine *e, const TimelineOp *row) {
    // past the reserved room (rows added outside the op loop): grow by half, amortised O(1)
    if (e->row == e->row_end && rows_room(e, e->tl->cap / 2 + 1024) != 0) return;
    *e->row++ = *row;
    if (row->end_ns > e->last_ns) e->last_ns = row->end_ns;
}

/* ---- devices --------------------------------------------------------------------------- */

static const Flow *op_flow(const Engine *e, int32_t d, const ProgramOp *op) {
    return &e->flow[((int64_t)d * e->v + op->chunk) * OP_KIND_COUNT + op->kind];
}

/* Whether the input of op (on device d) has arrived. */
static int input_ready(const Engine *e, int32_t d, const ProgramOp *op) {
    const Flow *f = op_flow(e, d, op);
    return f->in_base < 0 || (e->ready[f->in_base + op->micro_batch] & f->need);
}

/* Every compute op's time: the cost model's base_ns through the run's jitter and straggler.
 * op is the op's index in device d's program. */
static int64_t op_duration(const Engine *e, int32_t d, int64_t op, int64_t now, int64_t base_ns) {
    return e->var ? variability_op_ns(e->var, e->run, d, op, now, base_ns) : base_ns;
}

/* Starts device d's next op at now if it is idle and the op's input has arrived; a fused
 * pair starts when both inputs have, takes the fused time and gets two rows. Returns whether
 * it started one (the caller then updates d's leaf of the op-end tree). */
static int device_try(Engine *e, int32_t d, int64_t now) {
    const Program *pr = e->pr;
    Device *dv = &e->dev[d];
    if (dv->running || dv->pc == dv->stop) return 0;
    const ProgramOp *op = &pr->ops[dv->pc];
    int fused = (op->flags & OPF_FUSED_NEXT) != 0; // the checker made sure op + 1 exists
    if (!input_ready(e, d, op) || (fused && !input_ready(e, d, op + 1))) return 0;
    int32_t st = op_flow(e, d, op)->stage;
    int64_t base = fused ? cost_fused_ns(e->c, st, (OpKind)op->kind, op_flow(e, d, op + 1)->stage,
                                         (OpKind)op[1].kind)
                         : cost_op_ns(e->c, st, (OpKind)op->kind);
    int64_t end = now + op_duration(e, d, dv->pc - pr->start[d], now, base);
    for (int k = 0; k <= fused; k++) {
        TimelineOp row = {.start_ns = now, .end_ns = end, .device = d, .peer = -1,
                          .micro_batch = e->mb_base + op[k].micro_batch, .chunk = op[k].chunk,
                          .kind = op[k].kind, .stream = STREAM_COMPUTE};
        record(e, &row);
    }
    dv->running = 1 + fused;
    dv->pc += 1 + fused;
    ends_set(e, d, end);
    return 1;
}

/* Device d finished op at now: hand its output to the consuming stage. */
static void op_output(Engine *e, int32_t d, const ProgramOp *op, int64_t now) {
    const Flow *f = op_flow(e, d, op);
    if (f->out_base < 0) return;
    int32_t slot = f->out_base + op->micro_batch;
    if (f->link < 0) {
        e->ready[slot] |= f->give;
        return;
    }
    int64_t *free_ns = &e->link_free[f->link];
    int64_t start = now > *free_ns ? now : *free_ns;
    int64_t end = start + f->xfer_ns;
    *free_ns = end;
    TimelineOp row = {.start_ns = start, .end_ns = end, .bytes = e->c->xfer_bytes,
                      .device = d, .peer = f->out_dev, .micro_batch = e->mb_base + op->micro_batch,
                      .chunk = f->out_chunk, .kind = op->kind, .stream = STREAM_SEND};
    record(e, &row);
    row.device = f->out_dev, row.peer = d, row.stream = STREAM_RECV;
    record(e, &row);
    // An arrival's one effect is the ready bit, which only its device's next start reads. A
    // device busy until the arrival or later cannot start before its op ends, and that op end
    // comes after the arrival in event order, so the bit can be set now: no event needed.
    if (e->dev[f->out_dev].running && e->tree[e->leaves + f->out_dev].end_ns >= end) {
        e->ready[slot] |= f->give;
        return;
    }
    arr_push(e, (Arrival){.time_ns = end, .device = f->out_dev, .slot = slot, .bit = f->give});
}

/* Device d finished the op (or fused pair) before its pc at now; outputs go in op order. */
static void op_finished(Engine *e, int32_t d, int64_t now) {
    Device *dv = &e->dev[d];
    int n = dv->running;
    dv->running = 0;
    ends_clear(e, d);
    for (int k = n; k >= 1; k--) op_output(e, d, &e->pr->ops[dv->pc - k], now);
}

static void stall_report(const Engine *e, char *why, size_t len) {
    const Program *pr = e->pr;
    size_t used = 0;
    why[0] = '\0';
    for (int32_t d = 0, shown = 0; d < e->p && shown < 4; d++) {
        if (e->dev[d].pc == e->dev[d].stop) continue;
        const ProgramOp *op = &pr->ops[e->dev[d].pc];
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

/* Plays every event of one run of the Program, earliest first: the earliest arrival when it
 * is no later than the earliest op end (arrivals first at equal times), else that op end. */
static void run_events(Engine *e) {
    while (!e->oom) {
        const OpEnd *first = &e->tree[1];
        int32_t d = END_DEVICE(first->key);
        int op_due = first->key < END_IDLE;
        if (e->narr > 0 && (!op_due || e->arr[0].time_ns <= first->end_ns)) {
            Arrival a = arr_pop(e);
            e->ready[a.slot] |= (uint8_t)a.bit;
            if (device_try(e, a.device, a.time_ns)) ends_update(e, a.device);
        } else if (op_due) {
            int64_t now = first->end_ns;
            op_finished(e, d, now);
            device_try(e, d, now);
            ends_update(e, d); // a new end, or idle
        } else {
            return;
        }
    }
}

/* Rows one run of the Program adds: an op each, a send and a recv per cross-device output. */
static int64_t rows_per_run(const Engine *e) {
    const Program *pr = e->pr;
    int64_t rows = pr->nops;
    for (int32_t d = 0; d < pr->devices; d++)
        for (int64_t i = pr->start[d]; i < pr->start[d + 1]; i++)
            rows += op_flow(e, d, &pr->ops[i])->link >= 0 ? 2 : 0;
    return rows;
}

/* One run of the Program from t0; rows_left = rows all remaining runs add (room for them is
 * made once, so the timeline is allocated once: no copies while it grows, no slack). */
static int run_iteration(Engine *e, int32_t k, int64_t t0, size_t rows_left, char *why,
                         size_t whylen) {
    const Program *pr = e->pr;
    if (rows_room(e, rows_left) != 0) return -1;
    e->run = k;
    e->mb_base = k * e->m;
    memset(e->ready, 0, (size_t)program_stages(pr) * (size_t)e->m);
    for (int32_t d = 0; d < e->p; d++)
        e->dev[d] = (Device){.pc = pr->start[d], .stop = pr->start[d + 1]};
    for (int32_t d = 0; d < e->p; d++)
        if (device_try(e, d, t0)) ends_update(e, d);
    run_events(e);
    if (e->oom) return -1;
    for (int32_t d = 0; d < e->p; d++) {
        if (e->dev[d].pc != e->dev[d].stop) {
            stall_report(e, why, whylen);
            return -2;
        }
    }
    return 0;
}

/* Rows in the timeline so far (tl->n lags the cursor while the engine runs). */
static size_t rows_now(const Engine *e) {
    return e->row ? (size_t)(e->row - e->tl->ops) : e->tl->n;
}

/* Rows of device d's tail: its chunks' all-reduces in order of readiness (ready[ch], the end
 * of the chunk's last backward; ties in chunk order) one at a time on the collective lane,
 * then the optimizer step once its compute (ending at done) and all-reduces are over. With
 * zero = 1 or 2 each all-reduce is a reduce-scatter, and after the (sharded) step each chunk's
 * parameters are all-gathered, in chunk order, on the same lane; zero = 3 has its collectives
 * inside the ops, so its tail is the step alone (cost.h). */
static void device_tail(Engine *e, int32_t d, const int64_t *ready, const uint8_t *kind,
                        int64_t done) {
    int32_t zero = e->c->zero;
    int32_t v = e->pr->chunks, order[SCN_MAX_CHUNKS];
    for (int32_t i = 0; i < v; i++) { // insertion sort: v is small
        int32_t j = i;
        for (; j > 0 && ready[order[j - 1]] > ready[i]; j--) order[j] = order[j - 1];
        order[j] = i;
    }
    int64_t free_ns = 0; // when the collective lane is free
    for (int32_t i = 0; i < v; i++) {
        int32_t ch = order[i], st = program_stage_of(e->pr, d, ch);
        if (ready[ch] < 0 || zero >= 3) continue; // no backward of this chunk in the run (or
                                                  // zero 3, which scatters inside the ops)
        int64_t start = ready[ch] > free_ns ? ready[ch] : free_ns;
        int64_t ns = zero ? cost_reduce_scatter_ns(e->c, d, st) : cost_allreduce_ns(e->c, d, st);
        TimelineOp row = {.start_ns = start, .end_ns = start + ns,
                          .bytes = e->c->grad_bytes[st], .device = d, .peer = -1,
                          .micro_batch = e->mb_base, .chunk = (int16_t)ch, .kind = kind[ch],
                          .stream = zero ? STREAM_REDUCE_SCATTER : STREAM_COLLECTIVE};
        record(e, &row);
        free_ns = row.end_ns;
    }
    int64_t opt = 0;
    for (int32_t ch = 0; ch < v; ch++) opt += e->c->opt_ns[program_stage_of(e->pr, d, ch)];
    int64_t start = free_ns > done ? free_ns : done;
    TimelineOp row = {.start_ns = start, .end_ns = start + opt, .device = d, .peer = -1,
                      .micro_batch = e->mb_base, .kind = OP_BW, .stream = STREAM_OPTIMIZER};
    record(e, &row);
    free_ns = row.end_ns;
    for (int32_t ch = 0; zero > 0 && zero < 3 && ch < v; ch++) {
        if (ready[ch] < 0) continue;
        int32_t st = program_stage_of(e->pr, d, ch);
        TimelineOp ag = {.start_ns = free_ns, .end_ns = free_ns + cost_all_gather_ns(e->c, d, st),
                         .bytes = e->c->grad_bytes[st], .device = d, .peer = -1,
                         .micro_batch = e->mb_base, .chunk = (int16_t)ch, .kind = OP_F,
                         .stream = STREAM_ALL_GATHER};
        record(e, &ag);
        free_ns = ag.end_ns;
    }
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
    for (size_t i = first, n = rows_now(e); !e->oom && i < n; i++) {
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
static int run_attempt(Engine *e, int32_t k, int64_t t0, size_t rows_left, char *why,
                       size_t whylen) {
    size_t first = rows_now(e);
    int rc = run_iteration(e, k, t0, rows_left, why, whylen);
    if (rc == 0 && e->c->tail) rc = dp_tail(e, first);
    return rc;
}

/* Plays run k from the latest end. When the failure falls inside it, the attempt is lost:
 * its rows go, nothing is left in flight, and run k is played again from the checkpoint (its
 * start t0) + the lost time, drawing the same jitter. */
static int run_checkpointed(Engine *e, int32_t k, size_t rows_left, char *why, size_t whylen) {
    size_t rows = rows_now(e);
    int64_t t0 = e->last_ns;
    int rc = run_attempt(e, k, t0, rows_left, why, whylen);
    if (rc != 0 || !failure_hits(e, t0)) return rc;
    const Variability *v = e->var;
    e->failure = (VaryFailure){.happened = 1, .device = v->failure_device,
                               .iteration = k * e->pr->iterations, .checkpoint_ns = t0,
                               .at_ns = v->failure_at_ns, .restart_ns = v->restart_ns,
                               .lost_ns = v->failure_at_ns - t0 + v->restart_ns};
    e->tl->n = rows, e->row = e->tl->ops + rows;
    for (int32_t i = 0; i < e->nlinks; i++) e->link_free[i] = 0;
    e->last_ns = t0 + e->failure.lost_ns;
    return run_attempt(e, k, e->last_ns, rows_left, why, whylen);
}

/* Index of the directed link src -> dst in link_free, numbered on first use through a small
 * open-addressing table keys[] (capacity cap, a power of two; 0 = empty). */
static int32_t link_index(Engine *e, int64_t *keys, int32_t *ids, size_t cap, int32_t src,
                          int32_t dst) {
    int64_t key = (int64_t)src * e->p + dst + 1;
    size_t i = (size_t)(key * 0x9E3779B97F4A7C15ULL >> 17) & (cap - 1);
    while (keys[i] != 0 && keys[i] != key) i = (i + 1) & (cap - 1);
    if (keys[i] == 0) keys[i] = key, ids[i] = e->nlinks++;
    return ids[i];
}

static Flow flow_of(Engine *e, int32_t d, int32_t chunk, OpKind kind, int64_t *keys,
                    int32_t *ids, size_t cap) {
    const Program *pr = e->pr;
    int32_t st = program_stage_of(pr, d, chunk);
    int32_t in = program_input_stage(pr, kind, st), out = program_output_stage(pr, kind, st);
    Flow f = {.stage = st, .in_base = in >= 0 ? st * e->m : -1, .out_base = -1, .link = -1,
              .need = kind == OP_F ? READY_ACT : READY_GRAD,
              .give = kind == OP_F ? READY_ACT : READY_GRAD};
    if (out < 0) return f;
    int32_t od, oc;
    program_device_of(pr, out, &od, &oc);
    f.out_base = out * e->m, f.out_dev = od, f.out_chunk = (int16_t)oc;
    if (od != d) {
        f.link = link_index(e, keys, ids, cap, d, od);
        f.xfer_ns = cost_xfer_ns(e->c, d, od);
    }
    return f;
}

/* The Flow table and the links it names. Data only crosses stage boundaries, so there are
 * at most 2*stages directed links. */
static int flows_build(Engine *e) {
    const Program *pr = e->pr;
    size_t cap = 16, nflow = (size_t)e->p * (size_t)pr->chunks * OP_KIND_COUNT;
    while (cap < (size_t)program_stages(pr) * 4) cap *= 2;
    int64_t *keys = calloc(cap, sizeof *keys);
    int32_t *ids = malloc(cap * sizeof *ids);
    e->flow = malloc(nflow * sizeof *e->flow);
    int rc = keys && ids && e->flow ? 0 : -1;
    for (int32_t d = 0; d < e->p && rc == 0; d++)
        for (int32_t c = 0; c < pr->chunks; c++)
            for (int k = 0; k < OP_KIND_COUNT; k++)
                e->flow[((size_t)d * pr->chunks + c) * OP_KIND_COUNT + k] =
                    flow_of(e, d, c, (OpKind)k, keys, ids, cap);
    if (rc == 0) e->link_free = calloc((size_t)e->nlinks + 1, sizeof *e->link_free);
    free(keys), free(ids);
    return rc == 0 && e->link_free ? 0 : -1;
}

/* Every device idle, and the winner tree over them. */
static int ends_build(Engine *e) {
    e->leaves = 2;
    while (e->leaves < e->p) e->leaves *= 2;
    e->tree = malloc(2 * (size_t)e->leaves * sizeof *e->tree);
    if (!e->tree) return -1;
    for (int32_t d = 0; d < e->leaves; d++) ends_clear(e, d);
    for (int32_t i = e->leaves - 1; i >= 1; i--) e->tree[i] = e->tree[2 * i]; // all idle
    return 0;
}

int engine_run(const Program *pr, const CostModel *c, int32_t iterations, Timeline *tl,
               char *why, size_t whylen) {
    return engine_run_varied(pr, c, NULL, iterations, tl, NULL, why, whylen);
}

int engine_run_varied(const Program *pr, const CostModel *c, const Variability *var,
                      int32_t iterations, Timeline *tl, VaryFailure *failure, char *why,
                      size_t whylen) {
    Engine e = {.pr = pr, .c = c, .tl = tl, .p = pr->devices, .v = pr->chunks,
                .m = pr->micro_batches,
                .var = var && (var->ops_vary || var->failure_device >= 0) ? var : NULL};
    e.dev = malloc((size_t)e.p * sizeof *e.dev + 1);
    e.ready = malloc((size_t)program_stages(pr) * (size_t)e.m + 1);
    int rc = e.dev && e.ready && flows_build(&e) == 0 && ends_build(&e) == 0 ? 0 : -1;
    int32_t runs = iterations / pr->iterations;
    // OpEnd keys: the scenario limits (4096 devices, 2e8 ops) are far inside these.
    assert(e.p < (1 << END_DEV_BITS) &&
           (double)pr->nops * runs < (double)(1ULL << (64 - END_DEV_BITS)));
    // each run's rows, with a tail also an all-reduce (ZeRO: a reduce-scatter and an
    // all-gather) per stage and a step per device
    size_t per_run = rc == 0 ? (size_t)rows_per_run(&e) : 0;
    if (c->tail) per_run += (size_t)(c->zero ? 2 : 1) * (size_t)program_stages(pr) + (size_t)e.p;
    for (int32_t k = 0; k < runs && rc == 0; k++)
        rc = run_checkpointed(&e, k, per_run * (size_t)(runs - k), why, whylen);
    if (e.row) tl->n = (size_t)(e.row - tl->ops);
    if (failure) *failure = e.failure;
    free(e.dev), free(e.ready), free(e.flow), free(e.link_free), free(e.tree);
    free(e.arr);
    return rc;
}
