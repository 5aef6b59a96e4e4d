/* sim/sched/pipedream.c: the asynchronous schedules, PipeDream (Narayanan et al. 2019) and
 * PipeDream-2BW (Narayanan et al. 2021, "Memory-Efficient Pipeline-Parallel DNN Training").
 * Both run 1F1B over the micro-batches of every iteration back to back, with no flush: the
 * start-up ramp is paid once, so K iterations of m micro-batches take (K*m + p - 1)(F + B) on
 * balanced stages. They differ in the weights they keep, which the ordering does not show:
 *   pipedream      updates after every micro-batch and stashes the version each in-flight
 *                  micro-batch did its forward with: device d keeps min(p - d, K*m) versions,
 *                  and a gradient is applied p - d - 1 updates late;
 *   pipedream-2bw  double-buffers: a new version every m micro-batches, exactly two kept,
 *                  gradients applied one update (one iteration) late. */
#include <stdio.h>
#include <stdlib.h>

#include "sim/sched/schedule.h"

static int async_validate(const SchedParams *sp, SchedIssue *issue) {
    if (sp->chunks != 1) {
        issue->key = "pipeline.chunks";
        snprintf(issue->msg, sizeof issue->msg,
                 "the asynchronous schedules run one model chunk per device, not %d; set "
                 "chunks = 1",
                 sp->chunks);
        return -1;
    }
    return 0;
}

/* 1F1B over all K*m micro-batches as one Program covering every iteration. */
static int async_build(const SchedParams *sp, Program *out, int double_buffered) {
    int32_t p = sp->devices, m = sp->micro_batches * sp->iterations;
    if (program_init(out, p, 1, m, PLACE_LOOPED, (int64_t)p * m * 2) != 0) return -1;
    out->iterations = sp->iterations;
    out->weight_versions = malloc((size_t)p * sizeof *out->weight_versions);
    if (!out->weight_versions) {
        program_free(out);
        return -1;
    }
    for (int32_t d = 0; d < p; d++) {
        int32_t held = sched_1f1b_device(out, d); // each held micro-batch has its version
        out->weight_versions[d] = double_buffered ? 2 : held;
    }
    program_end(out);
    return 0;
}

static int pipedream_build(const SchedParams *sp, Program *out, SchedIssue *issue) {
    (void)issue;
    return async_build(sp, out, 0);
}

static int pipedream_2bw_build(const SchedParams *sp, Program *out, SchedIssue *issue) {
    (void)issue;
    return async_build(sp, out, 1);
}

const Schedule SCHED_PIPEDREAM = {
    .name = "pipedream",
    .summary = "asynchronous 1F1B, no flush, weight stashing (PipeDream)",
    .validate = async_validate,
    .build = pipedream_build,
};

const Schedule SCHED_PIPEDREAM_2BW = {
    .name = "pipedream-2bw",
    .summary = "asynchronous 1F1B, no flush, two weight versions (PipeDream-2BW)",
    .validate = async_validate,
    .build = pipedream_2bw_build,
};
