/* exec/cpu.h: what the two CPU backends share (threads in exec/cpu.c, MPI ranks in
 * exec/cpu_mpi.c): the layer on OpenBLAS, a worker's state, its ops in program order with the
 * fault injection and the data-parallel tail (all-reduces, SGD step), host-clock spans, the
 * tensor and data all-reduces' rows, the context group's K/V exchange. Not for use outside
 * exec/. */
#ifndef PIPESIM_EXEC_CPU_H
#define PIPESIM_EXEC_CPU_H

#include "exec/core.h"

typedef struct Channel Channel;
struct Pending;

/* Which group a collective runs over: the T tensor ranks of a (device, replica, context
 * rank); the DP = D C workers of a (device, tensor rank), member dp (the replicas and their
 * context ranks, which hold the same weights); the C context ranks of a (device, replica,
 * tensor rank), member crank. */
typedef enum {
    CPU_OVER_TENSOR = 0, CPU_OVER_DATA = 1, CPU_OVER_CONTEXT = 2, CPU_OVER_COUNT
} CpuOver;

/* Every CPU backend's state starts with this (ex->be). */
typedef struct {
    Layer *layers;          // owned: [G nlayers] group g's layers at g nlayers, every stage's
                            //   back to back (this process's worker's only, on MPI ranks)
    Channel *ch;            // owned, threads: [(src worker * W + dst worker) * 2 + gradient]
    /* The transport's all-reduce: sums buf (n floats) in place over the worker's tensor or
     * data group, the same result on every member. 0, or -1 with the run failed. */
    int (*allreduce)(ExecDev *dv, CpuOver over, float *buf, int64_t n);
    /* All-gather (in: n floats, out: group size x n, member order) and reduce-scatter (in:
     * group size x n, out: this member's n of the sum), the same contract. */
    int (*allgather)(ExecDev *dv, CpuOver over, const float *in, float *out, int64_t n);
    int (*reduce_scatter)(ExecDev *dv, CpuOver over, const float *in, float *out, int64_t n);
    /* zero >= 1, over the worker's data group: zero_reduce_scatter leaves in buf's shard of this
     * member (cpu_shard of its dp) the sum of that shard over the members, summed in member
     * order as allreduce sums it, and the rest of buf as it was; zero_all_gather copies every
     * other member's shard of its buf into this one's. 0, or -1 with the run failed. */
    int (*zero_reduce_scatter)(ExecDev *dv, float *buf, int64_t n);
    int (*zero_all_gather)(ExecDev *dv, float *buf, int64_t n);
} CpuState;

/* Member r's shard of an n-element buffer over a data group of d (the D C workers of a
 * gradient): [*lo, *hi) = [n r / d, n (r+1) / d), the slices threads_allreduce sums, so
 * shards cover the buffer once. */
static inline void cpu_shard(int64_t n, int32_t r, int32_t d, int64_t *lo, int64_t *hi) {
    *lo = n * r / d, *hi = n * (r + 1) / d;
}

/* A worker's state (ExecDev.be). */
typedef struct {
    LayerScratch scratch;   // one pass at a time
    LayerComm comm;         // the tensor and context collectives of its passes (ctx: the
                            //   ExecDev)
    const ProgramOp *op;    // the op whose layers run now (its tensor rows name it)
    int64_t *last_bw;       // owned: [chunks] the index of each chunk's last backward (W or
                            //   BW) in the device's program, -1 for none
    int sent;               // messages sent this round, for --drop-send
    int stopped;            // died or stalled early (--kill/stall-after), threads
    struct Pending *pending; // MPI: sends still in flight
} CpuDev;

extern const ExecKernels cpu_kernels;

/* Allocates the layers of the stages on workers for which mine(w) holds (every worker when
 * NULL) and each worker's state. 0, or 1 with why. cpu_destroy releases it all. */
int cpu_create(Exec *ex, int (*mine)(const Exec *ex, int32_t w), char *why, size_t whylen);
void cpu_destroy(Exec *ex);
int cpu_grads(Exec *ex, int32_t stage, int32_t k, Layer *out, char *why, size_t whylen);
int cpu_layer_of(Exec *ex, int32_t w, int32_t stage, int32_t k, Layer *out, char *why,
                 size_t whylen);

int cpu_batch(ExecDev *dv, int32_t mb, ExecSlot *out);
int cpu_span_begin(ExecDev *dv, const ProgramOp *op, int64_t index, int64_t *token);
int cpu_span_end(ExecDev *dv, const ProgramOp *op, int64_t token, void **ready);

/* --drop-send: whether this send is the one the device loses (data is then freed). */
int cpu_send_dropped(ExecDev *dv, void *data);

/* Worker dv's ops of this round in program order; with the tail, its gradients zeroed first,
 * each chunk's gradients all-reduced over the replicas after the chunk's last backward (an
 * allreduce row), and the SGD step after the last op (an optimizer row); with zero >= 1 a
 * reduce-scatter instead (a reduce_scatter row), the step on the replica's shard, then each
 * chunk's weights all-gathered in chunk order (an all_gather row, kind F). With --kill-after or
 * --stall-after the device (its replica 0's tensor rank 0) dies (a rank: SIGKILL, a thread:
 * returns) or stalls there (a rank: SIGSTOP; a thread: waits until the run failed, at most one
 * watchdog) telling no one. */
void cpu_device_ops(ExecDev *dv);

/* A tensor, data or context collective that waited past the watchdog for its group
 * (exec_fail). */
void cpu_group_timed_out(ExecDev *dv, CpuOver over);

/* The transports' failures, each naming the device and op (exec_fail): a send nobody took
 * within the watchdog (--rendezvous), a receive that found another message at the head of its
 * channel, a receive that waited past the watchdog. */
void cpu_not_taken(ExecDev *dv, const ProgramOp *op, int grad, int32_t dst);
void cpu_mismatch(ExecDev *dv, int64_t index, const ProgramOp *op, int grad, int32_t src,
                  int32_t got_stage, int32_t got_mb, int32_t stage);
void cpu_timed_out(ExecDev *dv, int64_t index, const ProgramOp *op, int grad, int32_t src);

/* A transfer's row on device d for the op's data going to or coming from peer. */
void cpu_xfer_row(ExecDev *dv, int32_t peer, const ProgramOp *op, int32_t stage, Stream stream,
                  int64_t start, int64_t end);

#endif
