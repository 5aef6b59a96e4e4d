/* sim/sched/interleaved.c: Megatron-LM's interleaved 1F1B (Narayanan et al. 2021): v model
 * chunks per device, stage = chunk*p + device. Forwards visit micro-batches in groups of p,
 * chunk by chunk; backwards the same with chunks reversed. Warm-up on device d is
 * (p-d-1)*2 + (v-1)*p forwards (all m*v when m == p), then 1F1B, then the cool-down.
 * Bubble (p-1)(F+B)/v. Needs m to be a multiple of p, as Megatron-LM does. */
#include <stdio.h>

#include "sim/sched/schedule.h"

static int interleaved_validate(const SchedParams *sp, SchedIssue *issue) {
    if (sp->chunks < 2) {
        issue->key = "pipeline.chunks";
        snprintf(issue->msg, sizeof issue->msg,
                 "interleaved needs at least 2 model chunks per device; set chunks = 2 or "
                 "more, or use schedule = 1f1b");
        return -1;
    }
    if (sp->devices < 2) {
        issue->key = "pipeline.stages";
        snprintf(issue->msg, sizeof issue->msg,
                 "interleaved needs at least 2 stages; set stages = 2 or more, or use "
                 "schedule = gpipe");
        return -1;
    }
    if (sp->micro_batches % sp->devices != 0) {
        issue->key = "batch.micro_batches";
        snprintf(issue->msg, sizeof issue->msg,
                 "interleaved needs micro_batches to be a multiple of stages (%d), not %d; "
                 "use e.g. micro_batches = %d",
                 sp->devices, sp->micro_batches,
                 (sp->micro_batches / sp->devices + 1) * sp->devices);
        return -1;
    }
    return 0;
}

/* The k-th forward (backward) of a device, as Megatron-LM numbers them. */
static void interleaved_op(int32_t k, int32_t p, int32_t v, int backward, int32_t *mb,
                           int32_t *chunk) {
    int32_t in_group = k % (p * v);
    *chunk = in_group / p;
    if (backward) *chunk = v - 1 - *chunk;
    *mb = (k / (p * v)) * p + k % p;
}

static int interleaved_build(const SchedParams *sp, Program *out, SchedIssue *issue) {
    (void)issue;
    int32_t p = sp->devices, v = sp->chunks, m = sp->micro_batches;
    int64_t total = (int64_t)m * v;
    if (program_init(out, p, v, m, PLACE_LOOPED, (int64_t)p * total * 2) != 0) return -1;
    for (int32_t d = 0; d < p; d++) {
        int64_t warmup = m == p ? total : (int64_t)(p - d - 1) * 2 + (int64_t)(v - 1) * p;
        if (warmup > total) warmup = total;
        int32_t f = 0, b = 0, mb, c;
        for (; f < warmup; f++) {
            interleaved_op(f, p, v, 0, &mb, &c);
            program_push(out, d, OP_F, mb, c);
        }
        for (; f < total; f++, b++) {
            interleaved_op(f, p, v, 0, &mb, &c);
            program_push(out, d, OP_F, mb, c);
            interleaved_op(b, p, v, 1, &mb, &c);
            program_push(out, d, OP_BW, mb, c);
        }
        for (; b < total; b++) {
            interleaved_op(b, p, v, 1, &mb, &c);
            program_push(out, d, OP_BW, mb, c);
        }
    }
    program_end(out);
    return 0;
}

const Schedule SCHED_INTERLEAVED = {
    .name = "interleaved",
    .summary = "Megatron-LM interleaved 1F1B with v chunks per device; bubble (p-1)(F+B)/v",
    .validate = interleaved_validate,
    .build = interleaved_build,
};
