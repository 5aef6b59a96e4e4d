/* tests/tiny_fixture.h: the scenario test_dp.c and test_zero.c both time by hand. p = 4 stages
 * of 2 layers, F = 1 ms, B = 2 ms per micro-batch for a device, m = 8, free pipeline
 * transfers: 1F1B takes (m+p-1)(F+B) = 33 ms. */
#ifndef PIPESIM_TESTS_TINY_FIXTURE_H
#define PIPESIM_TESTS_TINY_FIXTURE_H

static const char TINY[] =
    "[model]\nlayers = 8\nhidden = 256\nheads = 4\nseq_len = 128\nvocab = 1024\n"
    "[batch]\nmicro_batches = 8\n"
    "[pipeline]\nstages = 4\nschedule = 1f1b\n"
    "[hardware]\ngpu = h100\ngpus_per_node = 8\n"
    "[network]\nintra_bandwidth_gbs = 400\nintra_latency_us = 5\n"
    "inter_bandwidth_gbs = 40\ninter_latency_us = 15\n"
    "[costs]\nforward_ms = 1\nbackward_ms = 2\ncomm_ms = 0\n";

#endif
