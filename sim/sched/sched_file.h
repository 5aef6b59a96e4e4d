/* sim/sched/sched_file.h: schedule files, the text form of a Program, compatible with PyTorch
 * pipelining's CSV action format: one line per device (rank), actions separated by commas
 * and/or spaces, each STAGE KIND MICROBATCH with no spaces ("0F0", "3I2", "3W2", "1B5").
 *   KIND: F forward; I input gradient (pipesim's B); W weight gradient; B full backward
 *         (pipesim's BW; "BW" is accepted too).
 *   STAGE is the global pipeline stage (0 holds the first layers); the stages a device lists,
 *   in ascending order, are its chunks 0, 1, ...
 *   '#' starts a comment; blank lines are skipped; "None", empty cells and PyTorch's
 *   communication and sharding actions (SEND_F, RECV_B, UNSHARD, ...) are ignored, since
 *   transfers are implied by stage placement.
 * pipesim's extensions, which PyTorch's reader does not know (sched_file_write uses them only
 * when the Program needs them):
 *   "A&B", two actions joined by '&' (no spaces): a fused pair run as one overlapped op
 *   (OPF_FUSED_NEXT on A; DualPipe's F&B), e.g. "0F3&7B1";
 *   directive lines "key = value" before or between the action lines, starting with a
 *   lower-case word: "pipes = 2" (two model copies, as DualPipe: the stages split into two
 *   chains of p*v/2, micro-batch j runs in copy j / (m/2); needs m and p*v even),
 *   "iterations = K" (the file covers K iterations, micro-batches 0 .. K*m-1, with no flush)
 *   and "weight_versions = V0,V1,..." (weight copies each device keeps). */
#ifndef PIPESIM_SCHED_FILE_H
#define PIPESIM_SCHED_FILE_H

#include <stdio.h>

#include "sim/program/program.h"
#include "sim/sched/schedule.h"

/* sched_file_parse reads text (named name in messages) into out for the given p, v and m.
 * Returns 0; -1 out of memory; 2 for bad input with err = "NAME:LINE: what; fix" (unknown
 * action, micro-batch out of range, wrong device count, a stage on two devices or none, a
 * device with a chunk count other than v). The result still needs program_check. */
int sched_file_parse(const char *text, const char *name, const SchedParams *sp, Program *out,
                     char *err, size_t errlen);

/* sched_file_write prints pr in the format above, with a '#' header naming what it is. */
void sched_file_write(FILE *f, const Program *pr, const char *header);

#endif
