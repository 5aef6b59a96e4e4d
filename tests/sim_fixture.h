/* tests/sim_fixture.h: one whole psim run of a scenario text, every part kept for the test
 * to inspect: parsed with --set overrides, the schedule's Program built and checked, plan,
 * cost, the engine (with the scenario's [variability], off unless it asks) and the metrics.
 * Each step must succeed. Include after cmocka.h; release with sim_free. */
#ifndef PIPESIM_TESTS_SIM_FIXTURE_H
#define PIPESIM_TESTS_SIM_FIXTURE_H

#include <string.h>

#include "sim/model/cost.h"
#include "sim/engine/engine.h"
#include "sim/metrics/metrics.h"
#include "sim/plan/plan.h"
#include "sim/program/program.h"
#include "sim/scenario/scenario.h"
#include "sim/sched/schedule.h"
#include "sim/engine/variability.h"

typedef struct {
    Scenario s;
    Plan pl;
    Program pr;
    CostModel c;
    Variability var;
    Timeline tl;
    VaryFailure failure;
    Metrics mt;
} Sim;

static inline void sim_steps(Sim *x);

/* name stands in for the file name in messages. */
static inline void sim_run(Sim *x, const char *text, const char *name, const char *const *sets,
                           int nsets) {
    char err[SCN_ERR_MAX];
    memset(x, 0, sizeof *x);
    if (scenario_parse(text, name, sets, nsets, &x->s, err) != 0) fail_msg("scenario: %s", err);
    sim_steps(x);
}

/* The same for a scenario file (its relative paths, e.g. hf_config, from its directory). */
static inline void sim_run_file(Sim *x, const char *path, const char *const *sets, int nsets) {
    char err[SCN_ERR_MAX];
    memset(x, 0, sizeof *x);
    if (scenario_load(path, sets, nsets, &x->s, err) != 0) fail_msg("scenario: %s", err);
    sim_steps(x);
}

static inline void sim_steps(Sim *x) {
    char err[SCN_ERR_MAX];
    CostPartition cp;
    SchedParams sp = scenario_sched_params(&x->s);
    SchedIssue issue;
    const Schedule *sc = sched_find(x->s.pipeline.schedule);
    assert_int_equal(sc->validate(&sp, &issue), 0);
    assert_int_equal(sc->build(&sp, &x->pr, &issue), 0);
    assert_int_equal(program_check(&x->pr, err, sizeof err), 0);
    assert_int_equal(plan_build_copies(&x->s, x->pr.pipes, cost_partition_init(&cp, &x->s), &x->pl, err, sizeof err), 0);
    assert_int_equal(cost_build(&x->s, &x->pl, &x->c, err, sizeof err), 0);
    variability_init(&x->var, &x->s.var);
    assert_int_equal(engine_run_varied(&x->pr, &x->c, &x->var, (int32_t)x->s.batch.iterations,
                                       &x->tl, &x->failure, err, sizeof err), 0);
    assert_int_equal(metrics_compute_lost(&x->s, &x->pl, &x->pr, &x->c, &x->tl, &x->failure,
                                          &x->mt), 0);
}

static inline void sim_free(Sim *x) {
    metrics_free(&x->mt);
    timeline_free(&x->tl);
    cost_free(&x->c);
    program_free(&x->pr);
    plan_free(&x->pl);
    scenario_free(&x->s);
}

#endif
