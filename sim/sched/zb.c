/* sim/sched/zb.c: the zero-bubble family (Qi et al. 2023, "Zero Bubble Pipeline Parallelism"):
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
 * contain W's GEMMs) and m >= p (zb-h1) or m >= 2p-1 (zb-h2); for any ratio the spans are
 * m(F+B+W) + (p-1) max(F+B-W, B) (zb-h1) and m(F+B+W) + (p-1) max(F+B-2W, B-F, 0) (zb-h2):
 * device 0, holding p (2p-1) forwards, waits for its first gradient, which needs p forwards and
 * p-1 backwards. The schedules stay valid, only slower, for fewer micro-batches. pipesim's
 * bubble_rate uses the longest device span, as Qi et al. do, so the parallelogram of zb-h2
 * counts no ramp.
 *
 * zb-v: two chunks per device in V placement (chunk 0 of device d is stage d, chunk 1 is stage
 * 2p-1-d), so a micro-batch enters and leaves the pipeline on device 0, the layout of Qi et
 * al. 2024 ("Pipeline Parallelism with Controllable Memory"). Device d runs 2p warm-up
 * forwards, chunk 0 leading chunk 1 by up to 2(p-d)-1 micro-batches; then triplets of a B, its
 * W and a forward (B's take chunk 1 while it leads chunk 0 by fewer than p-d micro-batches,
 * forwards keep chunk 0 ahead by up to p-d, and once chunk 0 has no forwards left a chunk-1
 * forward follows only a chunk-0 backward); then the last backwards as soon as their
 * gradients arrive, with the pending W's filling the waits (placed by replaying the order at
 * unit cost). It holds at most 2p chunk activations (1F1B's memory: p micro-batches of a whole
 * device's layers), and with m >= 2p and F = B = W every device is busy for its whole span:
 * longest span m(F+B+W), makespan m(F+B+W) + (p-1)F/2 (F, B, W of a whole device; a chunk op
 * costs half). It needs m >= 2p: with fewer, the warm-up outruns the micro-batches. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "sim/sched/schedule.h"

int sched_one_chunk(const char *name, const SchedParams *sp, SchedIssue *issue) {
    if (sp->chunks == 1) return 0;
    issue->key = "pipeline.chunks";
    snprintf(issue->msg, sizeof issue->msg,
             "%s runs one model chunk per device, not %d; set chunks = 1, or use schedule = "
             "zb-v for two chunks in a V",
             name, sp->chunks);
    return -1;
}

static int zb_h1_validate(const SchedParams *sp, SchedIssue *issue) {
    return sched_one_chunk("zb-h1", sp, issue);
}

static int zb_h2_validate(const SchedParams *sp, SchedIssue *issue) {
    return sched_one_chunk("zb-h2", sp, issue);
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
    if (sp->chunks != 2) {
        issue->key = "pipeline.chunks";
        snprintf(issue->msg, sizeof issue->msg,
                 "zb-v places two model chunks per device in a V, not %d; set chunks = 2",
                 sp->chunks);
        return -1;
    }
    if (sp->micro_batches < 2 * sp->devices) {
        issue->key = "batch.micro_batches";
        snprintf(issue->msg, sizeof issue->msg,
                 "zb-v needs at least 2 x stages = %d micro-batches to fill its V, not %d; set "
                 "micro_batches = %d or more, or use schedule = zb-h1",
                 2 * sp->devices, sp->micro_batches, 2 * sp->devices);
        return -1;
    }
    return 0;
}

static ProgramOp v_op(OpKind kind, int32_t mb, int32_t chunk) {
    return (ProgramOp){.micro_batch = mb, .chunk = (int16_t)chunk, .kind = (uint8_t)kind};
}

/* Device d's 2m forwards (fs) and 2m backwards (bs) in the order it runs them. Forwards:
 * chunk 0 leads chunk 1 by up to 2(p-d)-1 micro-batches during the 2p warm-up forwards and
 * by up to p-d after; backwards: chunk 1 leads chunk 0 by up to p-d. */
static void v_sequences(int32_t p, int32_t m, int32_t d, ProgramOp *fs, ProgramOp *bs) {
    int32_t a = 0, b = 0; // chunk-0 and chunk-1 ops so far
    for (int32_t k = 0; k < 2 * m; k++) {
        int32_t lead = k < 2 * p ? 2 * (p - d) - 1 : p - d;
        fs[k] = a < m && a - b < lead ? v_op(OP_F, a++, 0) : v_op(OP_F, b++, 1);
    }
    a = b = 0;
    for (int32_t k = 0; k < 2 * m; k++)
        bs[k] = b < m && b - a < p - d ? v_op(OP_B, b++, 1) : v_op(OP_B, a++, 0);
}

/* Fills plan (room for 6m ops) with device d's fixed order: 2p warm-up forwards, then
 * triplets of a B, its W and the next forward; once chunk 0 has no forwards left, a chunk-1
 * forward follows only a chunk-0 backward. Then the backwards left, whose W's the list
 * scheduler places. Returns the length of the fixed part; *len gets the whole plan's. */
static int64_t v_plan(int32_t p, int32_t m, int32_t d, ProgramOp *fs, ProgramOp *bs,
                      ProgramOp *plan, int64_t *len) {
    v_sequences(p, m, d, fs, bs);
    int64_t n = 0, f = 0, k = 0;
    int32_t a_left = m; // chunk-0 forwards not yet in the plan
    for (; f < 2 * p; f++) a_left -= fs[f].chunk == 0, plan[n++] = fs[f];
    for (; f < 2 * m; k++) {
        plan[n++] = bs[k];
        plan[n++] = v_op(OP_W, bs[k].micro_batch, bs[k].chunk);
        if (a_left > 0 || bs[k].chunk == 0) a_left -= fs[f].chunk == 0, plan[n++] = fs[f++];
    }
    int64_t fixed = n;
    for (; k < 2 * m; k++) plan[n++] = bs[k];
    *len = n;
    return fixed;
}

/* The unit-time replay: when each (stage, micro-batch) F and B ended, INT64_MAX until then. */
typedef struct {
    int32_t p, m;
    int64_t *f_end, *b_end; // [stage*m + mb]
} VClock;

static int32_t v_stage(int32_t p, int32_t d, int32_t chunk) {
    return chunk == 0 ? d : 2 * p - 1 - d;
}

/* Whether op can start on device d at step t: its input exists, and for W its B has run. */
static int v_ready(const VClock *c, int32_t d, const ProgramOp *op, int64_t t) {
    int32_t s = v_stage(c->p, d, op->chunk), m = c->m, j = op->micro_batch;
    if (op->kind == OP_F) return s == 0 || c->f_end[(int64_t)(s - 1) * m + j] <= t;
    if (op->kind == OP_W) return c->b_end[(int64_t)s * m + j] <= t;
    return c->f_end[(int64_t)s * m + j] <= t &&
           (s == 2 * c->p - 1 || c->b_end[(int64_t)(s + 1) * m + j] <= t);
}

/* One device's place in its plan: next plan op, and the next tail B whose W is pending. */
typedef struct {
    int64_t next, fixed, len, next_w, placed;
} VCursor;

/* The op device d runs at step t, or NULL to wait: the fixed part strictly in order; in the
 * tail a B whose gradient has arrived, else the oldest pending W. */
static const ProgramOp *v_pick(const VClock *c, int32_t d, const ProgramOp *plan, VCursor *u,
                               int64_t t, ProgramOp *w) {
    if (u->next < u->len && v_ready(c, d, &plan[u->next], t)) return &plan[u->next++];
    if (u->next <= u->fixed || u->next_w >= u->next) return NULL;
    *w = v_op(OP_W, plan[u->next_w].micro_batch, plan[u->next_w].chunk);
    if (!v_ready(c, d, w, t)) return NULL;
    u->next_w++;
    return w;
}

/* Replays every device's plan at unit cost, recording the order into ops ([device][6m]).
 * Returns 0, or -1 if a step and the one before placed nothing (a bug, not a wait). */
static int v_replay(VClock *c, const ProgramOp *plans, VCursor *cur, ProgramOp *ops) {
    int32_t p = c->p, m = c->m;
    int64_t left = (int64_t)6 * m * p, last = 0;
    for (int64_t t = 0; left > 0; t++) {
        if (t > last + 1) return -1;
        for (int32_t d = 0; d < p; d++) {
            ProgramOp w;
            const ProgramOp *op = v_pick(c, d, &plans[(int64_t)d * 6 * m], &cur[d], t, &w);
            if (!op) continue;
            int64_t *end = op->kind == OP_F ? c->f_end : op->kind == OP_B ? c->b_end : NULL;
            if (end) end[(int64_t)v_stage(p, d, op->chunk) * m + op->micro_batch] = t + 1;
            ops[(int64_t)d * 6 * m + cur[d].placed++] = *op;
            left--, last = t;
        }
    }
    return 0;
}

static int zb_v_build(const SchedParams *sp, Program *out, SchedIssue *issue) {
    int32_t p = sp->devices, m = sp->micro_batches;
    size_t per_dev = (size_t)6 * (size_t)m, ends = (size_t)2 * (size_t)p * (size_t)m;
    VClock c = {.p = p, .m = m};
    c.f_end = malloc(ends * sizeof *c.f_end);
    c.b_end = malloc(ends * sizeof *c.b_end);
    ProgramOp *plans = malloc(per_dev * (size_t)p * sizeof *plans);
    ProgramOp *ops = malloc(per_dev * (size_t)p * sizeof *ops);
    ProgramOp *seq = malloc((size_t)4 * (size_t)m * sizeof *seq); // fs then bs
    VCursor *cur = calloc((size_t)p, sizeof *cur);
    int rc = -1;
    if (!c.f_end || !c.b_end || !plans || !ops || !seq || !cur) goto done;
    for (size_t i = 0; i < ends; i++) c.f_end[i] = c.b_end[i] = INT64_MAX;
    for (int32_t d = 0; d < p; d++) {
        cur[d].fixed = v_plan(p, m, d, seq, seq + 2 * m, &plans[d * per_dev], &cur[d].len);
        cur[d].next_w = cur[d].fixed;
    }
    if (v_replay(&c, plans, cur, ops) != 0) {
        issue->key = "pipeline.schedule";
        snprintf(issue->msg, sizeof issue->msg,
                 "zb-v's order stalled at p = %d, m = %d; please report it", p, m);
        rc = 2;
        goto done;
    }
    if (program_init(out, p, 2, m, PLACE_VSHAPE, (int64_t)per_dev * p) != 0) goto done;
    for (int32_t d = 0; d < p; d++)
        for (size_t k = 0; k < per_dev; k++) {
            const ProgramOp *op = &ops[d * per_dev + k];
            program_push(out, d, (OpKind)op->kind, op->micro_batch, op->chunk);
        }
    program_end(out);
    rc = 0;
done:
    free(c.f_end), free(c.b_end), free(plans), free(ops), free(seq), free(cur);
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
