/* sim/sched/dualpipe.c: DualPipe (DeepSeek-V3 technical report §3.2.1, Fig. 5, Table 2; the
 * DualPipe repository's description) and the eight-step generator it shares with DualPipeV
 * (dualpipev.c). Each device works on two "phases": its near chunk (phase 0) and its
 * far chunk (phase 1), and runs eight steps whose lengths depend only on h and on its
 * distance r from the nearer end (0 <= r < h):
 *   1. 2(h-r-1) forwards of phase 0          5. h-r-1 x (full backward 1, F1 & B0)
 *   2. r+1 x (F0, F1)                         6. r+1 x (backward 1, backward 0), the second
 *   3. h-r-1 x (B1 split, W, F1)                 half of them split into B and a later W
 *   4. n-2h+r+1 x (F0 & B1, F1 & B0)          7. h-r-1 x (W, B0 split)
 *                                             8. r+1 x W
 * where "X & Y" is one fused op (OPF_FUSED_NEXT: a forward overlapped with a full backward),
 * split backwards queue their W, and each W runs the oldest queued one; n micro-batches go
 * through each phase.
 *   dualpipe   two model copies (PLACE_DUAL), p even, h = p/2, r = min(d, p-1-d); half of
 *              the m micro-batches enter at device 0 and half at device p-1, so n = m/2 and
 *              a device's near chunk is the copy whose first half it is in.
 *   dualpipev  one copy in a V (PLACE_VSHAPE), h = p, r = d, n = m (dualpipev.c).
 * Both take DeepSeek's assertions: m >= 2p (num_chunks >= 2 num_ranks) and, for dualpipe, p
 * and m even. The steps themselves would run with m/2 >= p-1 (dualpipe) or m >= 2p-1, but
 * DeepSeek never runs those, so neither does pipesim.
 * DeepSeek's code runs the middle ranks' first pair of step 4 as separate ops, to keep
 * communication off that pair; pipesim fuses it like the others (it has no all-to-all to
 * hide). Then the largest span - busy of a device is exactly (h-1)(F&B + B - 3W), Table 2's
 * bubble, in DeepSeek's terms (B the full backward, pipesim's B + W) with F&B = F + B + W (no
 * overlap gain, pipesim's default) for F, W <= pipesim's B; and with pipesim's B in B's place
 * for F&B = F + B (the pair hides one W), F = B, W <= F. */
#include <stdio.h>
#include <stdlib.h>

#include "sim/sched/schedule.h"

int sched_dualpipe_check(const char *name, const SchedParams *sp, SchedIssue *issue) {
    if (sp->chunks != 2) {
        issue->key = "pipeline.chunks";
        snprintf(issue->msg, sizeof issue->msg, "%s runs two chunks per device, not %d; set "
                 "chunks = 2", name, sp->chunks);
        return -1;
    }
    if (sp->micro_batches >= 2 * sp->devices) return 0;
    issue->key = "batch.micro_batches";
    snprintf(issue->msg, sizeof issue->msg, "%s needs at least 2 x stages = %d micro-batches "
             "(as DeepSeek's implementation asserts), and micro_batches = %d; use "
             "micro_batches = %d or more", name, 2 * sp->devices, sp->micro_batches,
             2 * sp->devices);
    return -1;
}

static int dualpipe_validate(const SchedParams *sp, SchedIssue *issue) {
    if (sp->devices % 2) {
        issue->key = "pipeline.stages";
        snprintf(issue->msg, sizeof issue->msg, "dualpipe needs an even number of stages, not "
                 "%d; use stages = %d or schedule = dualpipev", sp->devices, sp->devices + 1);
        return -1;
    }
    if (sp->micro_batches % 2) {
        issue->key = "batch.micro_batches";
        snprintf(issue->msg, sizeof issue->msg, "dualpipe feeds half of the micro-batches from "
                 "each end, so micro_batches must be even, not %d; use %d", sp->micro_batches,
                 sp->micro_batches + 1);
        return -1;
    }
    return sched_dualpipe_check("dualpipe", sp, issue);
}

/* One device's generator: phase -> (chunk, first micro-batch), counters, and the W queue. */
typedef struct {
    Program *out;
    int32_t d;
    int32_t chunk[2], mb0[2]; // phase -> chunk on this device, micro-batch offset
    int32_t nf[2], nb[2];     // next forward / backward per phase
    ProgramOp *wq;            // queued W's, FIFO
    int32_t whead, wtail;
} Gen;

static void fwd(Gen *g, int c, int fused) {
    program_push(g->out, g->d, OP_F, g->mb0[c] + g->nf[c]++, g->chunk[c]);
    if (fused) g->out->ops[g->out->nops - 1].flags = OPF_FUSED_NEXT;
}

static void bwd(Gen *g, int c, int split) {
    int32_t mb = g->mb0[c] + g->nb[c]++;
    program_push(g->out, g->d, split ? OP_B : OP_BW, mb, g->chunk[c]);
    if (split) g->wq[g->wtail++] = (ProgramOp){.micro_batch = mb, .chunk = (int16_t)g->chunk[c]};
}

static void weight(Gen *g) {
    ProgramOp w = g->wq[g->whead++];
    program_push(g->out, g->d, OP_W, w.micro_batch, w.chunk);
}

/* F of phase cf fused with the full backward of phase cb. */
static void fused(Gen *g, int cf, int cb) {
    fwd(g, cf, 1);
    bwd(g, cb, 0);
}

static void eight_steps(Gen *g, int32_t h, int32_t r, int32_t n) {
    for (int32_t i = 0; i < 2 * (h - r - 1); i++) fwd(g, 0, 0);
    for (int32_t i = 0; i < r + 1; i++) fwd(g, 0, 0), fwd(g, 1, 0);
    for (int32_t i = 0; i < h - r - 1; i++) bwd(g, 1, 1), weight(g), fwd(g, 1, 0);
    for (int32_t i = 0; i < n - 2 * h + r + 1; i++) fused(g, 0, 1), fused(g, 1, 0);
    for (int32_t i = 0; i < h - r - 1; i++) bwd(g, 1, 0), fused(g, 1, 0);
    int split = 0;
    for (int32_t i = 0; i < r + 1; i++) {
        if (i == (r + 1) / 2 && r % 2 == 1) split = 1;
        bwd(g, 1, split);
        if (i == (r + 1) / 2 && r % 2 == 0) split = 1;
        bwd(g, 0, split);
    }
    for (int32_t i = 0; i < h - r - 1; i++) weight(g), bwd(g, 0, 1);
    for (int32_t i = 0; i < r + 1; i++) weight(g);
}

int sched_dualpipe_program(const SchedParams *sp, int32_t copies, Program *out) {
    int dual = copies == 2;
    int32_t p = sp->devices, m = sp->micro_batches, n = dual ? m / 2 : m, h = dual ? p / 2 : p;
    if (program_init(out, p, 2, m, dual ? PLACE_DUAL : PLACE_VSHAPE, (int64_t)6 * n * p) != 0)
        return -1;
    Gen g = {.out = out, .wq = malloc((size_t)(2 * n + 1) * sizeof *g.wq)};
    if (!g.wq) {
        program_free(out);
        return -1;
    }
    for (int32_t d = 0; d < p; d++) {
        int second = dual && d >= h; // its near chunk is copy 1
        g.d = d;
        g.nf[0] = g.nf[1] = g.nb[0] = g.nb[1] = g.whead = g.wtail = 0;
        for (int c = 0; c < 2; c++) {
            g.chunk[c] = c ^ second;
            g.mb0[c] = dual ? g.chunk[c] * n : 0; // copy k runs micro-batches [k n, (k+1) n)
        }
        eight_steps(&g, h, dual ? (d < p - 1 - d ? d : p - 1 - d) : d, n);
    }
    free(g.wq);
    program_end(out);
    return 0;
}

static int dualpipe_build(const SchedParams *sp, Program *out, SchedIssue *issue) {
    (void)issue;
    return sched_dualpipe_program(sp, 2, out);
}

const Schedule SCHED_DUALPIPE = {
    .name = "dualpipe",
    .summary = "DualPipe: two model copies fed from both ends, overlapped F&B (DeepSeek-V3)",
    .pipes = 2,
    .validate = dualpipe_validate,
    .build = dualpipe_build,
};
