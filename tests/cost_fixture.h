/* tests/cost_fixture.h: a CostModel set by hand for engine tests: every stage costs f, b, w
 * ns for F, B, W (BW = b + w) per micro-batch and chunk; transfers take intra or inter ns
 * with gpus_per_node devices per node; a fused pair costs the sum of its ops (set fused_ns
 * to change that). Include after cmocka.h; release with cost_free. */
#ifndef PIPESIM_TESTS_COST_FIXTURE_H
#define PIPESIM_TESTS_COST_FIXTURE_H

#include <stdlib.h>

#include "sim/model/cost.h"

static inline CostModel cost_uniform(int32_t stages, int64_t f, int64_t b, int64_t w,
                                     int64_t intra, int64_t inter, int32_t gpus_per_node) {
    CostModel c = {.stages = stages, .xfer_bytes = 1024, .xfer_intra_ns = intra,
                   .xfer_inter_ns = inter, .gpus_per_node = gpus_per_node};
    c.op_ns = calloc((size_t)stages * OP_KIND_COUNT, sizeof *c.op_ns);
    c.op_flops = calloc((size_t)stages * OP_KIND_COUNT, sizeof *c.op_flops);
    assert_non_null(c.op_ns);
    assert_non_null(c.op_flops);
    for (int32_t s = 0; s < stages; s++) {
        int64_t *ns = &c.op_ns[s * OP_KIND_COUNT];
        ns[OP_F] = f, ns[OP_B] = b, ns[OP_W] = w, ns[OP_BW] = b + w;
    }
    return c;
}

#endif
