/* exec/cpu.h: what the two CPU backends share (threads in exec/cpu.c, MPI ranks in
 * exec/cpu_mpi.c): the layer on OpenBLAS, a device's state, its ops in program order with the
 * fault injection, host-clock spans. Not for use outside exec/. */
#ifndef PIPESIM_EXEC_CPU_H
#define PIPESIM_EXEC_CPU_H

#include "exec/core.h"

typedef struct Channel Channel;
struct Pending;

/* Every CPU backend's state starts with this (ex->be). */
typedef struct {
    Layer *layers;          // owned: [nlayers] every stage's layers back to back (this
                            //   process's devices' only, on MPI ranks)
    Channel *ch;            // owned, threads: [(src*p + dst)*2 + gradient]
} CpuState;

/* A device's state (ExecDev.be). */
typedef struct {
    LayerScratch scratch;   // one pass at a time
    int sent;               // messages sent this round, for --drop-send
    int stopped;            // died or stalled early (--kill/stall-after), threads
    struct Pending *pending; // MPI: sends still in flight
} CpuDev;

extern const ExecKernels cpu_kernels;

/* Allocates the layers of the stages on devices for which mine(d) holds (every device when
 * NULL) and each device's state. 0, or 1 with why. cpu_destroy releases it all. */
int cpu_create(Exec *ex, int (*mine)(const Exec *ex, int32_t d), char *why, size_t whylen);
void cpu_destroy(Exec *ex);
int cpu_grads(Exec *ex, int32_t stage, int32_t k, Layer *out, char *why, size_t whylen);

int cpu_batch(ExecDev *dv, int32_t mb, ExecSlot *out);
int cpu_span_begin(ExecDev *dv, const ProgramOp *op, int64_t index, int64_t *token);
int cpu_span_end(ExecDev *dv, const ProgramOp *op, int64_t token, void **ready);

/* --drop-send: whether this send is the one the device loses (data is then freed). */
int cpu_send_dropped(ExecDev *dv, void *data);

/* Device dv's ops of this round in program order; with --kill-after or --stall-after it dies
 * (a rank: SIGKILL, a thread: returns) or stalls there (a rank: SIGSTOP; a thread: waits until
 * the run failed, at most one watchdog) telling no one. */
void cpu_device_ops(ExecDev *dv);

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
