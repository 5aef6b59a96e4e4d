/* exec/issue_order.c: the global issue order (issue_order.h). */
#include "exec/issue_order.h"

#include <stdlib.h>

/* Whether op (at stage st) has its input: produced earlier in the order. */
static int op_ready(const Program *pr, const uint8_t *done, const ProgramOp *op, int32_t st) {
    int32_t in = program_input_stage(pr, (OpKind)op->kind, st);
    if (in < 0) return 1; // the first stage's batch, the loss gradient, W: local order
    const uint8_t *at = done + ((int64_t)in * pr->micro_batches + op->micro_batch) * OP_KIND_COUNT;
    return op->kind == OP_F ? at[OP_F] : at[OP_B] || at[OP_BW];
}

int issue_order_build(const Program *pr, IssueItem **items, int64_t *n) {
    int32_t p = pr->devices, m = pr->micro_batches;
    int64_t *pos = malloc((size_t)p * sizeof *pos), len = 0;
    uint8_t *done = calloc((size_t)program_stages(pr) * m * OP_KIND_COUNT, 1);
    IssueItem *it = malloc((size_t)(2 * pr->nops + 1) * sizeof *it);
    *items = NULL, *n = 0;
    if (!pos || !done || !it) return free(pos), free(done), free(it), -1;
    for (int32_t d = 0; d < p; d++) pos[d] = pr->start[d];
    int64_t placed = 0, before = -1;
    while (placed < pr->nops && placed != before) {
        before = placed;
        for (int32_t d = 0; d < p; d++)
            for (; pos[d] < pr->start[d + 1]; pos[d]++) {
                const ProgramOp *op = &pr->ops[pos[d]];
                int32_t st = program_stage_of(pr, d, op->chunk);
                if (!op_ready(pr, done, op, st)) break;
                it[len++] = (IssueItem){.kind = op->kind, .dev = d, .dst = -1, .stage = st,
                                        .mb = op->micro_batch, .op = pos[d]};
                done[((int64_t)st * m + op->micro_batch) * OP_KIND_COUNT + op->kind] = 1;
                placed++;
                int32_t out = program_output_stage(pr, (OpKind)op->kind, st);
                if (out >= 0 && pr->device_of[out] != d)
                    it[len++] = (IssueItem){.xfer = 1, .grad = op->kind != OP_F,
                                            .kind = op->kind, .dev = d,
                                            .dst = pr->device_of[out], .stage = out,
                                            .mb = op->micro_batch, .op = -1};
            }
    }
    free(pos), free(done);
    if (placed < pr->nops) return free(it), -2;
    *items = it, *n = len;
    return 0;
}
