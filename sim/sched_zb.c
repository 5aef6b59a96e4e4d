/* sim/sched_zb.c: the zero-bubble family (Qi et al. 2023, "Zero Bubble Pipeline Parallelism"):
 * the backward is split into B (input gradient, which the previous stage waits for) and W
 * (weight gradient, which nobody waits for), and W's are moved into what would be bubbles.
 *
 * zb-h1 and zb-h2 are the handcrafted schedules of Qi et al. §2.2, written as one pattern:
 * device i runs `warmup` forwards, then repeats a round of one F and one B in the given order,
 * with the W of micro-batch k right after the B of k + delay, then the last W's.
 *   zb-h1: warmup p-i-1, round F then B, delay i. 1F1B's memory (at most p micro-batches
 *          between F and W on every device); device span m(F+B+W) + (p-1)(F+B-W).
 *   zb-h2: warmup 2(p-i)-1, round B (then its due W) then F, delay 2i. 2p-1 micro-batches between F and W on
 *          every device; device span m(F+B+W) + (p-1)(F+B-2W), zero bubble when F+B = 2W.
 * Both spans hold exactly when W <= min(F, B) (true of transformer layers: F and B each
 * contain W's GEMMs) and m >= p (zb-h1) or m >= 2p-1 (zb-h2); the schedules stay valid,
 * only slower, outside that range. pipesim's bubble_rate uses the longest device span, as
 * Qi et al. do, so the parallelogram of zb-h2 counts no ramp.
 *
 * zb-v: two chunks per device in V placement (chunk 0 of device d is stage d, chunk 1 is stage
 * 2p-1-d), so a micro-batch enters and leaves the pipeline on device 0. pipesim builds it
 * with a unit-time list scheduler rather than the hand-made pattern of Qi et al. 2024: at
 * each step a free device runs an available B (deeper chunk first), else an available F
 * (deeper chunk first) while it holds fewer than 2p chunk activations (1F1B's memory: p
 * micro-batches of a whole device's layers), else a pending W. The order, not the unit
 * timing, is what the Program keeps; at F = B = W its bubble is a few chunk-ops, not zero. */
#include <stdio.h>
#include <stdlib.h>

#include "schedule.h"

static int one_chunk(const char *name, const SchedParams *sp, SchedIssue *issue) {
    if (sp->chunks == 1) return 0;
    issue->key = "pipeline.chunks";
    snprintf(issue->msg, sizeof issue->msg,
             "%s runs one model chunk per device, not %d; set chunks = 1, or use schedule = "
             "zb-v for two chunks in a V",
             name, sp->chunks);
    return -1;
}

static int zb_h1_validate(const SchedParams *sp, SchedIssue *issue) {
    return one_chunk("zb-h1", sp, issue);
}

static int zb_h2_validate(const SchedParams *sp, SchedIssue *issue) {
    return one_chunk("zb-h2", sp, issue);
}

typedef enum { ROUND_FB, ROUND_BF } Round; // FB: F, B, due W's; BF: B, due W's, F

/* The handcrafted pattern above for one device: warm-up forwards, rounds, then the W's whose
 * delay has not come. */
static void handcrafted_device(Program *out, int32_t d, int32_t warmup, Round round,
                               int32_t delay) {
    int32_t m = out->micro_batches, f = 0, b = 0, w = 0;
    if (warmup > m) warmup = m;
    while (f < warmup) program_push(out, d, OP_F, f++, 0);
    while (b < m) {
        if (round == ROUND_FB && f < m) program_push(out, d, OP_F, f++, 0);
        program_push(out, d, OP_B, b++, 0);
        while (b - w > delay) program_push(out, d, OP_W, w++, 0);
        if (round == ROUND_BF && f < m) program_push(out, d, OP_F, f++, 0);
    }
    while (w < m) program_push(out, d, OP_W, w++, 0);
}

static int zb_h1_build(const SchedParams *sp, Program *out, SchedIssue *issue) {
    (void)issue;
    int32_t p = sp->devices, m = sp->micro_batches;
    if (program_init(out, p, 1, m, PLACE_LOOPED, (int64_t)p * m * 3) != 0) return -1;
    for (int32_t i = 0; i < p; i++) handcrafted_device(out, i, p - i - 1, ROUND_FB, i);
    program_end(out);
    return 0;
}

static int zb_h2_build(const SchedParams *sp, Program *out, SchedIssue *issue) {
    (void)issue;
    int32_t p = sp->devices, m = sp->micro_batches;
    if (program_init(out, p, 1, m, PLACE_LOOPED, (int64_t)p * m * 3) != 0) return -1;
    for (int32_t i = 0; i < p; i++) handcrafted_device(out, i, 2 * (p - i) - 1, ROUND_BF, 2 * i);
    program_end(out);
    return 0;
}

static int zb_v_validate(const SchedParams *sp, SchedIssue *issue) {
    if (sp->chunks == 2) return 0;
    issue->key = "pipeline.chunks";
    snprintf(issue->msg, sizeof issue->msg,
             "zb-v places two model chunks per device in a V, not %d; set chunks = 2",
             sp->chunks);
    return -1;
}

/* The list scheduler's state: per stage the next F, B and W micro-batch, and the unit step
 * at which each (stage, micro-batch) F and B output became available (-1: not yet). */
typedef struct {
    int32_t p, m, S;
    int32_t *next[OP_KIND_COUNT]; // [S] next micro-batch for F, B, W
    int64_t *done_f, *done_b;     // [S*m] step at which the output exists, -1 not yet
    int32_t *held;                // [p] chunk activations between F and W
    int64_t *busy;                // [p] step at which the device is free
} VState;

/* Whether (kind, stage) can run its next micro-batch at step t. */
static int v_ready(const VState *v, OpKind kind, int32_t s, int64_t t) {
    int32_t j = v->next[kind][s];
    if (kind == OP_F) {
        if (j >= v->m) return 0;
        return s == 0 || (v->done_f[(int64_t)(s - 1) * v->m + j] >= 0 &&
                          v->done_f[(int64_t)(s - 1) * v->m + j] <= t);
    }
    if (kind == OP_B) {
        if (j >= v->next[OP_F][s]) return 0;
        int64_t r = s == v->S - 1 ? v->done_f[(int64_t)s * v->m + j]
                                  : v->done_b[(int64_t)(s + 1) * v->m + j];
        return r >= 0 && r <= t;
    }
    return j < v->next[OP_B][s];
}

/* Device d's pick at step t: B (deeper chunk first), F under the memory cap (deeper chunk
 * first), else W (shallower chunk first). Returns 1 and sets kind/stage, or 0 to stay idle. */
static int v_pick(const VState *v, int32_t d, int64_t t, OpKind *kind, int32_t *stage) {
    int32_t deep = 2 * v->p - 1 - d, shallow = d;
    const int32_t order[2] = {deep, shallow};
    for (int k = 0; k < 2; k++)
        if (v_ready(v, OP_B, order[k], t)) return *kind = OP_B, *stage = order[k], 1;
    if (v->held[d] < 2 * v->p)
        for (int k = 0; k < 2; k++)
            if (v_ready(v, OP_F, order[k], t)) return *kind = OP_F, *stage = order[k], 1;
    for (int k = 1; k >= 0; k--)
        if (v_ready(v, OP_W, order[k], t)) return *kind = OP_W, *stage = order[k], 1;
    return 0;
}

static void v_free(VState *v) {
    for (int k = 0; k < OP_KIND_COUNT; k++) free(v->next[k]);
    free(v->done_f), free(v->done_b), free(v->held), free(v->busy);
}

/* Runs the list scheduler, pushing each device's ops in the order chosen. Devices are filled
 * in device order, so the choices are first recorded per device and pushed at the end. */
static int zb_v_build(const SchedParams *sp, Program *out, SchedIssue *issue) {
    int32_t p = sp->devices, m = sp->micro_batches, S = 2 * p;
    int64_t per_dev = (int64_t)6 * m, total = per_dev * p;
    VState v = {.p = p, .m = m, .S = S};
    for (int k = 0; k < OP_KIND_COUNT; k++) v.next[k] = calloc((size_t)S, sizeof *v.next[k]);
    v.done_f = malloc((size_t)S * (size_t)m * sizeof *v.done_f);
    v.done_b = malloc((size_t)S * (size_t)m * sizeof *v.done_b);
    v.held = calloc((size_t)p, sizeof *v.held);
    v.busy = calloc((size_t)p, sizeof *v.busy);
    ProgramOp *picked = malloc((size_t)total * sizeof *picked); // [device][k]
    int64_t *n = calloc((size_t)p, sizeof *n);
    int rc = -1;
    if (!v.next[OP_F] || !v.next[OP_B] || !v.next[OP_W] || !v.next[OP_BW] || !v.done_f ||
        !v.done_b || !v.held || !v.busy || !picked || !n)
        goto done;
    for (int64_t i = 0; i < (int64_t)S * m; i++) v.done_f[i] = v.done_b[i] = -1;
    int64_t placed = 0, idle_steps = 0;
    for (int64_t t = 0; placed < total; t++) {
        int64_t before = placed;
        for (int32_t d = 0; d < p; d++) {
            OpKind kind;
            int32_t s;
            if (v.busy[d] > t || !v_pick(&v, d, t, &kind, &s)) continue;
            int32_t j = v.next[kind][s]++;
            if (kind == OP_F) v.done_f[(int64_t)s * m + j] = t + 1, v.held[d]++;
            if (kind == OP_B) v.done_b[(int64_t)s * m + j] = t + 1;
            if (kind == OP_W) v.held[d]--;
            v.busy[d] = t + 1;
            picked[(int64_t)d * per_dev + n[d]++] =
                (ProgramOp){.micro_batch = j, .chunk = (int16_t)(s < p ? 0 : 1),
                            .kind = (uint8_t)kind};
            placed++;
        }
        idle_steps = placed == before ? idle_steps + 1 : 0;
        if (idle_steps > 1) { // nothing ran and nothing is in flight: cannot happen
            issue->key = "pipeline.schedule";
            snprintf(issue->msg, sizeof issue->msg,
                     "zb-v's list scheduler stalled at p = %d, m = %d; please report it", p, m);
            rc = 2;
            goto done;
        }
    }
    if (program_init(out, p, 2, m, PLACE_VSHAPE, total) != 0) goto done;
    for (int32_t d = 0; d < p; d++)
        for (int64_t k = 0; k < n[d]; k++) {
            const ProgramOp *op = &picked[(int64_t)d * per_dev + k];
            program_push(out, d, (OpKind)op->kind, op->micro_batch, op->chunk);
        }
    program_end(out);
    rc = 0;
done:
    v_free(&v);
    free(picked), free(n);
    return rc;
}

const Schedule SCHED_ZB_H1 = {
    .name = "zb-h1",
    .summary = "zero bubble H1: split backward, W delayed into the drain, 1F1B memory (Qi et al.)",
    .validate = zb_h1_validate,
    .build = zb_h1_build,
};

const Schedule SCHED_ZB_H2 = {
    .name = "zb-h2",
    .summary = "zero bubble H2: extra warm-up forwards, W's fill the drain, 2p-1 in flight",
    .validate = zb_h2_validate,
    .build = zb_h2_build,
};

const Schedule SCHED_ZB_V = {
    .name = "zb-v",
    .summary = "zero bubble V: two chunks per device in a V, 1F1B memory (list-scheduled)",
    .validate = zb_v_validate,
    .build = zb_v_build,
};
