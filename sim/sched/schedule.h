/* sim/sched/schedule.h: pipeline schedules. Each schedule is one file in sim/sched/ (gpipe.c,
 * 1f1b.c, ...) that fills in a const Schedule, plus one line in the table in table.c. A
 * schedule only orders ops; timing and memory are computed elsewhere from the Program it
 * builds (docs/ARCHITECTURE.md: adding a schedule). */
#ifndef PIPESIM_SCHED_H
#define PIPESIM_SCHED_H

#include <stddef.h>
#include <stdint.h>

#include "sim/program/program.h"

/* What a searched schedule (zb-1p, zb-2p, zb-auto; zb_auto.c) orders against: every stage's
 * op times and activations, the transfer between neighbouring stages, and what each device has
 * left for activations. run.c fills it from the plan and the cost model (one stage per device:
 * these schedules run one chunk). NULL in SchedParams means unit costs: F = B = W = 1 ns, no
 * transfer time, an activation of 1 held whole until W, no memory figure. */
typedef struct {
    int32_t stages;
    const int64_t *op_ns;    // [stage*OP_KIND_COUNT + kind] ns of one op (CostModel's layout)
    const int64_t *xfer_ns;  // [stage] ns to move stage's output to stage + 1, and the gradient
                             //   back; NULL: none
    const double *act;       // [stage] bytes one micro-batch's F keeps until its B
    const double *w_pending; // [stage] bytes of those its B keeps until its W (<= act)
    const double *room;      // [device] bytes the device has for activations (memory less the
                             //   static part); NULL: not known
} SchedCost;

typedef struct {
    int32_t devices;       // p
    int32_t chunks;        // v
    int32_t micro_batches; // m per iteration
    int32_t iterations;    // iterations run; asynchronous schedules build them all into one
                           //   Program (no flush), the others build one and ignore this
    const char *file;      // schedule file for "custom" (path as opened), else NULL
    const SchedCost *cost; // searched schedules: what they order against; NULL: unit costs
    double activation_limit; // zb-auto: micro-batches' activations a device may hold (Qi et
                             //   al.'s M_limit / M_B), 0: as many as cost->room allows
} SchedParams;

/* Why a combination is impossible: the scenario key to blame (e.g. "pipeline.micro_batches")
 * and a message that says what would be right. */
typedef struct {
    const char *key;
    char msg[512];
} SchedIssue;

typedef struct {
    const char *name;    // as written in scenarios: "1f1b"
    const char *summary; // one line for --help
    int32_t pipes;       // model copies run as separate stage chains (DualPipe: 2); 0 means 1
    int searched;        // 1: the order depends on SchedParams.cost (build it with the real
                         //   costs, after the plan; run.c)
    const char *stand_in; // searched: a schedule of the same placement whose order the plan
                          //   is first priced with (run.c), so the search runs once
    /* Returns 0 when the schedule can run with these parameters, else -1 and fills issue. */
    int (*validate)(const SchedParams *sp, SchedIssue *issue);
    /* Builds the per-device Program (sp already validated). Returns 0; -1 out of memory; 2
     * when an input it reads is bad (issue->msg says "FILE:LINE: ..."; custom schedules). */
    int (*build)(const SchedParams *sp, Program *out, SchedIssue *issue);
} Schedule;

/* sched_find returns the schedule of that name, or NULL. sched_names lists the available
 * ones, comma-separated. */
const Schedule *sched_find(const char *name);
const char *sched_names(void);

/* Appends device d's 1F1B order over all of out's micro-batches (min(p-d-1, m) warm-up
 * forwards, then one forward one backward, then the remaining backwards; whole BW ops).
 * Returns the most micro-batches it holds at once, min(p-d, m). Shared by 1f1b and the
 * asynchronous schedules. */
int32_t sched_1f1b_device(Program *out, int32_t d);

/* DualPipe's eight-step generator (dualpipe.c), shared with DualPipeV: copies = 2 builds
 * DualPipe (PLACE_DUAL, half of the micro-batches from each end), copies = 1 DualPipeV
 * (PLACE_VSHAPE). sp must pass sched_dualpipe_check. Returns 0, or -1 when out of memory. */
int sched_dualpipe_program(const SchedParams *sp, int32_t copies, Program *out);
/* What both need: chunks = 2 and micro_batches >= 2 x stages (DeepSeek's assertion). Returns
 * 0, or -1 with issue naming the key (name is the schedule, for the message). */
int sched_dualpipe_check(const char *name, const SchedParams *sp, SchedIssue *issue);

/* The check of the schedules that run one chunk per device (zb.c): 0, or -1 with issue naming
 * pipeline.chunks and pointing to zb-v. */
int sched_one_chunk(const char *name, const SchedParams *sp, SchedIssue *issue);

/* Whether the named schedule orders its ops by the costs it is given (SchedParams.cost). */
int sched_searched(const char *name);

/* Model copies the named schedule runs (1 unless it says otherwise; 1 for unknown names). */
int32_t sched_pipes(const char *name);

#endif
