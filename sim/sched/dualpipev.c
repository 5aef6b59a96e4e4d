/* sim/sched/dualpipev.c: DualPipeV, DualPipe "cut in half" (Sea AI Lab; the DualPipe
 * repository): one model copy on a V (chunk 0 of device d is stage d, chunk 1 is stage
 * 2p-1-d), every micro-batch going down chunk 0 and back up chunk 1. It runs DualPipe's eight
 * steps (dualpipe.c) with h = p and r = d over all m micro-batches. */
#include "sim/sched/schedule.h"

static int dualpipev_validate(const SchedParams *sp, SchedIssue *issue) {
    return sched_dualpipe_check("dualpipev", sp, issue);
}

static int dualpipev_build(const SchedParams *sp, Program *out, SchedIssue *issue) {
    (void)issue;
    return sched_dualpipe_program(sp, 1, out);
}

const Schedule SCHED_DUALPIPEV = {
    .name = "dualpipev",
    .summary = "DualPipeV: DualPipe cut in half onto a V, one model copy",
    .validate = dualpipev_validate,
    .build = dualpipev_build,
};
