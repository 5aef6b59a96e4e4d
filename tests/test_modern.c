/* tests/test_modern.c: the models people train now, end to end through psim's steps: Llama 3.1
 * 405B in the Llama 3 report's layout (tensor 8 with sequence parallelism, pipeline 16,
 * data 128, selective recomputation, optimizer state and gradients sharded) fits an 80 GiB
 * H100, and what sequence parallelism and ZeRO each save is exactly what the formulas say:
 * the residual stream's 8h bytes a token (norms' inputs and outputs, no dropout) kept whole
 * instead of 1/t, and 12 bytes of Adam state and 2 of bf16 gradient a parameter kept whole
 * instead of 1/d. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "sim_fixture.h"
#include "sim/model/memory.h"

#define LLAMA405 "scenarios/llama3-405b.scn"

static void test_405b_fits_and_each_saving_is_the_formulas(void **state) {
    (void)state;
    Sim base, no_sp, no_zero;
    sim_run_file(&base, LLAMA405, NULL, 0);
    const char *sp_off[] = {"parallel.sequence=false"}, *zero_off[] = {"parallel.zero=0"};
    sim_run_file(&no_sp, LLAMA405, sp_off, 1);
    sim_run_file(&no_zero, LLAMA405, zero_off, 1);
    const ScnModel *m = &base.s.model;
    double s = (double)m->seq_len, h = (double)m->hidden, t = 8, d = 128;
    for (int32_t dev = 0; dev < base.mt.devices; dev++) {
        const DeviceMetrics *a = &base.mt.dev[dev], *b = &no_sp.mt.dev[dev], *c = &no_zero.mt.dev[dev];
        if (a->peak_memory_gib >= 80)
            fail_msg("device %d needs %.2f GiB of 80", dev, a->peak_memory_gib);
        // without sequence parallelism every held (micro-batch, chunk) keeps its layers' norm
        // inputs and outputs whole: 8h bytes a token, (1 - 1/t) more (the layers in between
        // are the same; device 0 and 15 also hold the embedding's or head's part)
        if (dev > 0 && dev < 15) {
            double layers_per_chunk = 4, extra = (double)a->peak_activations * layers_per_chunk *
                                                 s * 8 * h * (1 - 1 / t);
            double got = (b->activations_gib - a->activations_gib) * GIB;
            if (fabs(got - extra) > 1e-9 * extra)
                fail_msg("device %d: sequence parallelism saves %.6g bytes, the formula %.6g", dev, got, extra);
            assert_int_equal(b->peak_activations, a->peak_activations);
        }
        // without ZeRO the Adam state (12 bytes a parameter) and the gradients (2) are whole
        double params = a->weights_gib * GIB / 2; // bf16 weights
        double extra = 14 * params * (1 - 1 / d);
        double got = (c->optimizer_gib + c->grads_gib - a->optimizer_gib - a->grads_gib) * GIB;
        if (fabs(got - extra) > 1e-9 * extra)
            fail_msg("device %d: ZeRO-2 saves %.6g bytes, the formula %.6g", dev, got, extra);
        assert_true(b->peak_memory_gib > a->peak_memory_gib && c->peak_memory_gib > a->peak_memory_gib);
    }
    assert_true(no_zero.mt.dev[1].peak_memory_gib > 80); // neither saving can be left out
    assert_true(no_sp.mt.dev[1].peak_memory_gib > 80);
    // the layout of the report: 16,384 GPUs, 16M tokens a step
    assert_int_equal(base.mt.devices_total, 16384);
    assert_int_equal(base.mt.global_batch * m->seq_len, 16777216);
    sim_free(&base), sim_free(&no_sp), sim_free(&no_zero);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_405b_fits_and_each_saving_is_the_formulas),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
