/* traces/compare.h: what a Timeline says about op, transfer and collective times, for
 * comparing a predicted run with a measured one and for calibrating the cost model from a
 * measured run.
 * Works on Timelines only (from the store or in memory). */
#ifndef PIPESIM_COMPARE_H
#define PIPESIM_COMPARE_H

#include <stdint.h>

#include "sim/program/timeline.h"

typedef struct {
    int32_t devices, chunks;
    double *op_ms;     // owned: [(device*chunks + chunk)*OP_KIND_COUNT + kind] mean compute ms
    int64_t *op_n;     // owned: same layout, ops counted
    double kind_ms[OP_KIND_COUNT]; // mean over every device and chunk
    double kind_sd_ms[OP_KIND_COUNT]; // their standard deviation (the spread of repeats)
    int64_t kind_n[OP_KIND_COUNT];
    double *link_ms;   // owned: [src*devices + dst] mean transfer ms on that link
    int64_t *link_n;   // owned: same layout
    double xfer_ms;    // mean transfer (recv row: send start to data received)
    int64_t xfers;
    double lane_ms[STREAM_COUNT]; // mean row of the collective lanes (STREAM_COLLECTIVE: a
    int64_t lane_n[STREAM_COUNT]; //   chunk's gradient all-reduce, STREAM_OPTIMIZER: a step,
                                  //   STREAM_TENSOR: one tensor-parallel all-reduce,
                                  //   STREAM_REDUCE_SCATTER, STREAM_ALL_GATHER: ZeRO's); 0 rows
                                  //   for the other streams
    double makespan_ms; // last end - first start over the rows counted
} TimelineStats;

/* timeline_stats summarises tl for devices x chunks. With iterations > 1 the first iteration
 * (micro-batches below m) is left out as warm-up. Returns 0, or -1 when out of memory or when
 * no row is left. */
int timeline_stats(const Timeline *tl, int32_t devices, int32_t chunks, int32_t m,
                   int32_t iterations, TimelineStats *out);
void timeline_stats_free(TimelineStats *st);

/* Relative error of measured against predicted: (predicted - measured) / measured; 0 when
 * both are 0. */
double compare_error(double predicted, double measured);

#endif
