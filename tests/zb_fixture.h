/* tests/zb_fixture.h: what the searched-schedule tests (test_sched_search.c,
 * test_sched_exact.c) set uniform costs and measure a one-chunk Program by: its longest device span played by the
 * engine at uniform costs, and the most activation a device holds along its order. Include
 * after cmocka.h and cost_fixture.h. */
#ifndef PIPESIM_TESTS_ZB_FIXTURE_H
#define PIPESIM_TESTS_ZB_FIXTURE_H

#include "sim/engine/engine.h"
#include "sim/program/program.h"
#include "sim/sched/schedule.h"

#define ZB_MAXP 64

/* Uniform stages: F, B, W ns each, a transfer of x ns between neighbours, an activation of 1
 * of which B keeps wp until W; sc points into the struct (do not copy it). */
typedef struct {
    int64_t ns[ZB_MAXP * OP_KIND_COUNT], xfer[ZB_MAXP];
    double act[ZB_MAXP], wp[ZB_MAXP];
    SchedCost sc;
} Costs;

static inline void costs_uniform(Costs *c, int32_t p, int64_t f, int64_t b, int64_t w,
                                 int64_t x, double wp) {
    for (int32_t s = 0; s < p; s++) {
        int64_t *n = &c->ns[s * OP_KIND_COUNT];
        n[OP_F] = f, n[OP_B] = b, n[OP_W] = w, n[OP_BW] = b + w;
        c->xfer[s] = x, c->act[s] = 1, c->wp[s] = wp;
    }
    c->sc = (SchedCost){.stages = p, .op_ns = c->ns, .xfer_ns = c->xfer, .act = c->act,
                        .w_pending = c->wp};
}

/* The longest device span of pr played by the engine at uniform costs (transfer x ns). */
static inline int64_t engine_span(const Program *pr, int64_t f, int64_t b, int64_t w, int64_t x) {
    CostModel c = cost_uniform(pr->devices, f, b, w, x, x, 1 << 20);
    Timeline tl = {0};
    char why[512];
    assert_int_equal(engine_run(pr, &c, 1, &tl, why, sizeof why), 0);
    int64_t span = timeline_longest_span(&tl, pr->devices, NULL);
    timeline_free(&tl);
    cost_free(&c);
    return span;
}

/* Most activation held on any device along its order, in M_B: F +1, B -1 + wp, W -wp, BW -1. */
static inline double peak_activation(const Program *pr, double wp) {
    double peak = 0;
    for (int32_t d = 0; d < pr->devices; d++) {
        double held = 0;
        for (int64_t i = pr->start[d]; i < pr->start[d + 1]; i++) {
            OpKind k = (OpKind)pr->ops[i].kind;
            held += k == OP_F ? 1 : k == OP_B ? wp - 1 : k == OP_W ? -wp : -1;
            if (held > peak) peak = held;
        }
    }
    return peak;
}

#endif
