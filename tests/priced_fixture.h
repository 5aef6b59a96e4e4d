/* tests/priced_fixture.h: a scenario text parsed with --set overrides, its schedule's Program
 * built, planned on it and priced by the cost model, each step required to succeed; what the
 * cost tests inspect. Include after cmocka.h; release with priced_free. */
#ifndef PIPESIM_TESTS_PRICED_FIXTURE_H
#define PIPESIM_TESTS_PRICED_FIXTURE_H

#include "sim/model/cost.h"
#include "sim/plan/plan.h"
#include "sim/scenario/scenario.h"
#include "sim/sched/schedule.h"

typedef struct {
    Scenario s;
    Program pr;
    Plan pl;
    CostModel c;
} Priced;

/* name stands in for the file name in messages. */
static inline void priced_build(Priced *x, const char *text, const char *name,
                                const char *const *sets, int nsets) {
    char err[SCN_ERR_MAX];
    CostPartition cp;
    if (scenario_parse(text, name, sets, nsets, &x->s, err) != 0) fail_msg("scenario: %s", err);
    SchedParams sp = scenario_sched_params(&x->s);
    assert_int_equal(sched_find(x->s.pipeline.schedule)->build(&sp, &x->pr, NULL), 0);
    if (plan_build_program(&x->s, &x->pr, cost_partition_init(&cp, &x->s), &x->pl, err, sizeof err))
        fail_msg("plan: %s", err);
    if (cost_build(&x->s, &x->pl, &x->c, err, sizeof err)) fail_msg("cost: %s", err);
}

static inline void priced_free(Priced *x) {
    cost_free(&x->c), plan_free(&x->pl), program_free(&x->pr), scenario_free(&x->s);
}

#endif
