/* sim/sched/gpipe.c: GPipe (Huang et al. 2019): every device runs all m forwards, then all m
 * backwards (in micro-batch order), one chunk per device. Peak in-flight activations: m. */
#include <stdio.h>

#include "sim/sched/schedule.h"

static int gpipe_validate(const SchedParams *sp, SchedIssue *issue) {
    if (sp->chunks != 1) {
        issue->key = "pipeline.chunks";
        snprintf(issue->msg, sizeof issue->msg,
                 "gpipe runs one model chunk per device, not %d; set chunks = 1 or use "
                 "schedule = interleaved",
                 sp->chunks);
        return -1;
    }
    return 0;
}

static int gpipe_build(const SchedParams *sp, Program *out, SchedIssue *issue) {
    (void)issue;
    int32_t p = sp->devices, m = sp->micro_batches;
    if (program_init(out, p, 1, m, PLACE_LOOPED, (int64_t)p * m * 2) != 0) return -1;
    for (int32_t d = 0; d < p; d++) {
        for (int32_t i = 0; i < m; i++) program_push(out, d, OP_F, i, 0);
        for (int32_t i = 0; i < m; i++) program_push(out, d, OP_BW, i, 0);
    }
    program_end(out);
    return 0;
}

const Schedule SCHED_GPIPE = {
    .name = "gpipe",
    .summary = "all forwards, then all backwards (Huang et al. 2019); holds m activations",
    .validate = gpipe_validate,
    .build = gpipe_build,
};
