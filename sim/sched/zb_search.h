/* sim/sched/zb_search.h: what the searched zero-bubble schedules share (zb_auto.c's heuristic,
 * zb_exact.c's exact search): the problem, one chunk per device, as both read it. Internal to
 * sim/sched/. */
#ifndef PIPESIM_ZB_SEARCH_H
#define PIPESIM_ZB_SEARCH_H

#include <stdint.h>

#include "sim/sched/schedule.h"

/* The problem: p stages (one per device), m micro-batches, per stage costs and memory. */
typedef struct {
    int32_t p, m;
    int64_t *f, *b, *w, *x; // [p] ns; x[s]: stage s <-> s + 1 transfer, x[p-1] = 0
    double *act, *wp, *limit; // [p] bytes: F keeps, B keeps until W, most held at once
} Zb;

/* The problem from sp: costs (or unit costs) and each device's limit, `limit` activations of
 * its stage (0: cost->room, at least one activation). Returns 0, -1 out of memory, 2 with
 * issue when the limit is unknown (name is the schedule, for the message). */
int zb_problem_init(const SchedParams *sp, const char *name, double limit, Zb *z,
                    SchedIssue *issue);
void zb_problem_free(Zb *z);

/* The heuristic (zb_auto.c): the best order it finds under `limit` (as zb_problem_init), or
 * ZB-H1 or ZB-H2 when one fits and is at least as short. Returns 0, -1, or 2 with issue. */
int zb_search_build(const SchedParams *sp, const char *name, double limit, Program *out,
                    SchedIssue *issue);

/* zb-exact's search (zb_exact.c): the order of least longest span under the same limit, the
 * heuristic's when none is shorter; bounded 0 cuts nothing but what the incumbent's span
 * allows (exhaustive: the tests' check of the bound on small cases). The nodes visited into
 * *nodes (may be NULL). Returns 0, -1, or 2 with issue (the node limit reached). */
int zb_exact_search(const SchedParams *sp, int bounded, Program *out, long *nodes,
                    SchedIssue *issue);

#endif
