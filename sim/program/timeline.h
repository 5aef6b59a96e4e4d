/* sim/program/timeline.h: the Timeline, the one record type that psim (predicted) and pexec
 * (measured) both produce: one row per compute op or transfer end on one device.
 * It holds data only; the engine (sim/engine/) and the executor (exec/) produce it, traces/store.h
 * stores it. */
#ifndef PIPESIM_TIMELINE_H
#define PIPESIM_TIMELINE_H

#include <stddef.h>
#include <stdint.h>

#include "sim/program/program.h" // OpKind


/* Which lane of a device a row belongs to. A transfer appears twice: once as SEND on the
 * producing device and once as RECV on the consuming device. COLLECTIVE rows are the
 * data-parallel gradient all-reduces of a chunk (kind: the backward whose gradients they
 * reduce, W or BW; bytes: the gradient bytes); an OPTIMIZER row is a device's optimizer step
 * (kind BW), which starts after the device's compute and all-reduces of the iteration. A
 * TENSOR row is one tensor-parallel all-reduce inside a layer's pass (kind: the op whose pass
 * it is in, F, B, W or BW; bytes: the buffer summed); TENSOR_GATHER and TENSOR_SCATTER rows
 * are sequence parallelism's all-gathers and reduce-scatters (bytes: the whole sequence's
 * buffer, gathered or reduced). Each lies within its op's compute row, so it is a part of the
 * compute time, not more of it (pexec measures them; psim places them as the roofline prices
 * them inside the op). With [parallel] zero >= 1 a chunk's all-reduce is a REDUCE_SCATTER row
 * (kind W or BW, as the all-reduce's) before the optimizer step and an ALL_GATHER row of its
 * updated parameters after it (kind F: the forward that needs them); both carry the chunk's
 * gradient bytes. */
typedef enum {
    STREAM_COMPUTE = 0, STREAM_SEND = 1, STREAM_RECV = 2, STREAM_COLLECTIVE = 3,
    STREAM_OPTIMIZER = 4, STREAM_TENSOR = 5, STREAM_TENSOR_GATHER = 6, STREAM_TENSOR_SCATTER = 7,
    STREAM_REDUCE_SCATTER = 8, STREAM_ALL_GATHER = 9, STREAM_EXPERT = 10,
    STREAM_COUNT
} Stream;
/* The data-parallel tail's rows (all-reduce, optimizer, reduce-scatter, all-gather), which
 * come after the compute of an iteration; tensor rows lie inside compute rows. */
static inline int stream_is_tail(int s) {
    return s == STREAM_COLLECTIVE || s == STREAM_OPTIMIZER || s == STREAM_REDUCE_SCATTER ||
           s == STREAM_ALL_GATHER;
}

/* A collective's row inside a compute row: tensor-parallel, of any of the three kinds, or an
 * MoE layer's expert-parallel all-to-all (EXPERT: dispatch or combine, F and B; bytes: what
 * one rank sends). */
static inline int stream_is_tensor(int s) {
    return s == STREAM_TENSOR || s == STREAM_TENSOR_GATHER || s == STREAM_TENSOR_SCATTER ||
           s == STREAM_EXPERT;
}

typedef struct {
    int64_t start_ns;    // ns since the run's epoch
    int64_t end_ns;      // ns since the run's epoch, >= start_ns
    int64_t bytes;       // bytes moved (transfers), 0 for compute
    int32_t device;      // 0..devices-1
    int32_t micro_batch; // 0..m*iterations-1 (iteration k's micro-batch j is k*m + j)
    int32_t peer;        // device at the other end of a transfer, -1 for compute
    int16_t chunk;       // model chunk on this device, 0..v-1 (for transfers: the consumer's chunk)
    uint8_t kind;        // OpKind (for transfers: the kind of the op that produced the data)
    uint8_t stream;      // Stream
} TimelineOp;

typedef struct {
    TimelineOp *ops; // owned, n used of cap
    size_t n;
    size_t cap;
} Timeline;

/* Memory over time: a device holds `bytes` from t_ns until its next sample. Predicted by
 * psim's memory model (sim/metrics/memory_trace.h); pexec may measure the same. */
typedef struct {
    int64_t t_ns;   // ns since the run's epoch
    int64_t bytes;  // everything the device holds from t_ns on
    int32_t device;
} MemSample;

typedef struct {
    MemSample *s; // owned, n used of cap
    size_t n;
    size_t cap;
} MemTrace;

/* timeline_push appends one row, growing geometrically; returns 0, or -1 when out of memory
 * (the timeline is left as it was). Inline: the engine pushes a row per op and transfer.
 * timeline_grow is its slow path. timeline_free releases the rows and zeroes the struct. */
int timeline_grow(Timeline *t);
/* timeline_reserve makes room for at least cap rows in all; 0, or -1 when out of memory.
 * Room of 4 MiB or more is aligned to 2 MiB and advised for huge pages (fewer page faults on
 * first touch; at most 2 MiB of slack). */
int timeline_reserve(Timeline *t, size_t cap);
static inline int timeline_push(Timeline *t, const TimelineOp *op) {
    if (t->n == t->cap && timeline_grow(t) != 0) return -1;
    t->ops[t->n++] = *op;
    return 0;
}
void timeline_free(Timeline *t);

/* The longest device span of t's compute rows over devices 0..devices-1 (first start to last
 * end on one device: what bubble_rate divides by, as Qi et al. count it), in ns; *makespan,
 * when not NULL, gets the first start to the last end over all of them. O(rows). */
int64_t timeline_longest_span(const Timeline *t, int32_t devices, int64_t *makespan);
/* The same for memory samples. */
int memtrace_push(MemTrace *m, const MemSample *s);
void memtrace_free(MemTrace *m);

/* Names used in storage, JSON and tables: "compute", "send", "recv", "allreduce", "optimizer",
 * "tensor", "reduce_scatter", "all_gather" (op kinds: program.h). stream_parse returns the Stream, or -1 for an unknown name. */
const char *stream_name(Stream s);
int stream_parse(const char *name);

#endif
