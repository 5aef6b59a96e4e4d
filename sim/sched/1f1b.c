/* sim/sched/1f1b.c: 1F1B as in PipeDream-Flush / Megatron-LM's non-interleaved schedule:
 * device d runs min(p-d-1, m) warm-up forwards, then alternates one forward and one backward,
 * then drains the remaining backwards. Peak in-flight activations on device d: min(p-d, m). */
#include <stdio.h>

#include "sim/sched/schedule.h"

static int f1b1_validate(const SchedParams *sp, SchedIssue *issue) {
    if (sp->chunks != 1) {
        issue->key = "pipeline.chunks";
        snprintf(issue->msg, sizeof issue->msg,
                 "1f1b runs one model chunk per device, not %d; set chunks = 1 or use "
                 "schedule = interleaved",
                 sp->chunks);
        return -1;
    }
    return 0;
}

int32_t sched_1f1b_device(Program *out, int32_t d) {
    int32_t p = out->devices, m = out->micro_batches;
    int32_t warmup = p - d - 1 < m ? p - d - 1 : m;
    int32_t f = 0, b = 0;
    while (f < warmup) program_push(out, d, OP_F, f++, 0);
    while (f < m) {
        program_push(out, d, OP_F, f++, 0);
        program_push(out, d, OP_BW, b++, 0);
    }
    while (b < m) program_push(out, d, OP_BW, b++, 0);
    return warmup + 1 < m ? warmup + 1 : m;
}

static int f1b1_build(const SchedParams *sp, Program *out, SchedIssue *issue) {
    (void)issue;
    int32_t p = sp->devices, m = sp->micro_batches;
    if (program_init(out, p, 1, m, PLACE_LOOPED, (int64_t)p * m * 2) != 0) return -1;
    for (int32_t d = 0; d < p; d++) sched_1f1b_device(out, d);
    program_end(out);
    return 0;
}

const Schedule SCHED_1F1B = {
    .name = "1f1b",
    .summary = "one forward one backward, flush per iteration (PipeDream-Flush, Megatron-LM)",
    .validate = f1b1_validate,
    .build = f1b1_build,
};
