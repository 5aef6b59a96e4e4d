/* exec/core.h: the executor core, the contract between exec.c's public side and the backends
 * (cpu.c, cpu_mpi.c, cuda.c). The core owns what every backend does the same way: the first
 * failure wins and wakes every wait; one clock per run; the rounds (a thread per lane, the
 * join as the flush); a device's op (exec_op: where its input comes from, its layers forward
 * in order and backward in reverse with their buffers, where its output goes); the rows; the
 * synthetic batch and the weights' seeds; the rows' gather to rank 0 over MPI. A backend
 * says how data moves and ops are timed (ExecBackend) and runs the layer (ExecKernels).
 * Not for use outside exec/. */
#ifndef PIPESIM_EXEC_CORE_H
#define PIPESIM_EXEC_CORE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "exec/exec.h"

/* Data an op left for a later op: a buffer (host or device memory), what the consumer must
 * wait for before reading it (a backend's event, or NULL), and whether the consumer frees it
 * (the first stage's inputs are not freed). */
typedef struct {
    void *ptr;
    void *ready;
    int owned;
} ExecSlot;

/* One worker as the core sees it: a pipeline device of one replica, context rank and tensor
 * rank. */
typedef struct ExecDev {
    Exec *ex;
    int32_t d;        // pipeline device
    int32_t replica;  // data-parallel replica, 0 .. D-1
    int32_t crank;    // context rank, 0 .. C-1
    int32_t trank;    // tensor rank, 0 .. T-1
    int32_t dp;       // its place among the DP = D C workers that sum a chunk's gradients and
                      //   shard them (ZeRO): replica C + crank
    int32_t g;        // its group, dp T + trank: which copy of the slots, buffers, layers
    int32_t w;        // worker index, d G + g (exec.h's order; the MPI rank)
    LayerShape shape; // spec.shape with tensor = T, rank = trank, context = C and crank
    Timeline tl;      // its rows since the last merge (exec_rows_merge); group 0's only
                      //   (exec_row_push drops the others')
    LayerTiming split; // measured rounds' kernel time by pass and class (exec_split)
    double outside_ns[3]; // measured rounds' op time outside the kernels, by pass
    int32_t split_rounds; // rounds added into split (0: none measured)
    int32_t split_round;  // the last round that added
    void *be;         // the backend's state of this worker
} ExecDev;

/* The layer on one device of a backend. Each call returns 0, or -1 having called exec_fail. */
typedef struct {
    /* one layer's buffers for one micro-batch, whose dropouts draw from seed */
    int (*acts_new)(ExecDev *dv, uint64_t seed, void **acts);
    void (*acts_free)(ExecDev *dv, void *acts);
    int (*buf_new)(ExecDev *dv, void **buf);     // one activation or gradient: b s h elements
    void (*buf_free)(ExecDev *dv, void *buf);
    /* pass (OP_F, OP_B, OP_W, or OP_BW: B then W) of layer `layer` (0 .. nlayers - 1, stage st's
     * k-th is layer_at[st] + k): F and B read in and write out (distinct buffers), W neither. */
    int (*pass)(ExecDev *dv, OpKind pass, int64_t layer, void *acts, const void *in, void *out);
    /* moves the kernel time the passes added up since the last call into *take (NULL: the
     * backend does not time kernels) */
    void (*timing)(ExecDev *dv, LayerTiming *take);
} ExecKernels;

struct ExecBackend {
    const char *name;           // as stored with the run: "cpu (threads)"
    const char *lane;           // what runs in one thread of a round: "device", "GPU"
    int ranks;                  // 1: one worker per MPI rank (exec_worker_here)
    const ExecKernels *kernels;
    /* Lifecycle: create fills ex->be and every device's be (0, or 1 or 2 with why, as
     * exec_create); destroy releases them; run plays every round into tl (0, or the failure
     * status with ex->why set); settle as exec_settle (NULL: nothing to do); grads as
     * exec_grads. */
    int (*create)(Exec *ex, char *why, size_t whylen);
    void (*destroy)(Exec *ex);
    int (*run)(Exec *ex, Timeline *tl);
    int (*settle)(Exec *ex);
    int (*grads)(Exec *ex, int32_t stage, int32_t k, Layer *out, char *why, size_t whylen);
    /* exec_layer_of for worker w (NULL: the backend runs one replica without tensor
     * parallelism or the tail, and exec_create refuses them). */
    int (*layer_of)(Exec *ex, int32_t w, int32_t stage, int32_t k, Layer *out, char *why,
                    size_t whylen);
    /* Called by exec_fail after the first failure, to wake what waits (NULL: nothing blocks). */
    void (*wake)(Exec *ex);
    /* A device's op (exec_op). batch: the first stage's input for micro-batch mb. receive:
     * the input from device src (grad: a gradient, else an activation) for (stage, op's
     * micro-batch), waiting for it as the transport does. send: hands data to device dst
     * for (stage, op's micro-batch); the transport owns it from then on. span_begin and
     * span_end time the op's layers (*token carries what span_end needs; *ready: what a
     * consumer of the output waits for, or NULL). Each returns 0, or -1 having called
     * exec_fail (send: void, it fails the run itself). */
    int (*batch)(ExecDev *dv, int32_t mb, ExecSlot *out);
    int (*receive)(ExecDev *dv, int32_t src, int grad, int32_t stage, const ProgramOp *op,
                   int64_t index, ExecSlot *out);
    void (*send)(ExecDev *dv, int32_t dst, int grad, int32_t stage, const ProgramOp *op,
                 ExecSlot data);
    int (*span_begin)(ExecDev *dv, const ProgramOp *op, int64_t index, int64_t *token);
    int (*span_end)(ExecDev *dv, const ProgramOp *op, int64_t token, void **ready);
};

struct Exec {
    ExecSpec spec;
    const ExecBackend *b;
    int32_t p, S, m;          // devices, stages, micro-batches of one Program run
    int32_t D, C, T;          // replicas, context ranks, tensor ranks
    int32_t DP, G, W;         // workers summing a gradient D C, groups D C T, workers p G
    int64_t floats;           // elements of one activation or gradient: b s h (a rank's
                              //   s/c tokens with context, s/(c t) sequence parallel)
    int64_t nlayers;          // layers of all stages
    int64_t *layer_at;        // owned: [S] index of the stage's first layer
    ExecDev *devs;            // owned: [W] by worker index
    void ***acts;             // owned: [G S m] the (group, stage, micro-batch)'s layers'
                              //   buffers from its F to its W or BW, one kernels->acts_new
                              //   handle a layer
    ExecSlot *slots;          // owned: [exec_slot_of] data waiting for its consumer on the
                              //   consumer's worker (kept or, CUDA, delivered)
    int32_t round;            // which run of the Program (rows' micro-batches are + round m)
    struct timespec epoch;    // the run's time zero (CLOCK_MONOTONIC)
    int rank;                 // MPI rank, 0 without MPI
    int64_t drift_ns;         // CPU ranks: largest move of a clock offset during the run
    pthread_mutex_t mu;       // guards failed, why and the barrier
    int failed;               // 0, or the status exec_run returns
    char why[512];
    pthread_cond_t bar_cv;    // exec_barrier: lanes of the round waiting
    int32_t bar_lanes, bar_in;
    int64_t bar_gen;
    void *be;                 // the backend's state
};

/* ---- failures and time ---- */

/* Records the first failure (status, message), tells the backend to wake its waits and
 * releases the barrier. Returns 1 when this was the first. */
int exec_fail(Exec *ex, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int exec_failed(Exec *ex);

/* ns since ex->epoch (CLOCK_MONOTONIC); the watchdog's deadline from now. */
int64_t exec_now_ns(const Exec *ex);
int64_t exec_deadline_ns(const Exec *ex);

/* Waits until every lane of the round has called it, or the run failed (then at once). */
void exec_barrier(Exec *ex);

/* ---- rounds, ops and rows ---- */

/* Plays the rounds on threads: each round starts one thread per lane running lane(ex, i),
 * joins them all (the flush), calls joined(ex) (may be NULL) and, when tl is not NULL, moves
 * every device's rows into it (exec_rows_merge). Stops after a failed round. Returns
 * ex->failed. */
int exec_rounds(Exec *ex, int32_t lanes, void (*lane)(Exec *ex, int32_t i),
                void (*joined)(Exec *ex), Timeline *tl);

/* Runs device dv's op at index (0-based in the device's program) of the current round: its
 * input (the batch, data kept on this device, or a receive), its layers (forward in order,
 * backward in reverse: buffers taken at F and given back at W or BW), timed by the backend's
 * span, then its output (dropped, kept, or sent). Returns 0, or -1 with the run failed. */
int exec_op(ExecDev *dv, int64_t index);

/* A row of device d: the op's kind and micro-batch (+ round m), chunk, stream, peer (-1 for
 * compute), bytes and times; and pushing it to a device's rows (fails the run when out of
 * memory). */
TimelineOp exec_row(const Exec *ex, int32_t d, int32_t peer, OpKind kind, int32_t mb,
                    int16_t chunk, Stream stream, int64_t bytes, int64_t start, int64_t end);
void exec_row_push(ExecDev *dv, const TimelineOp *row);
/* Appends every device's rows to tl in device order and empties them (fails the run when out
 * of memory). */
void exec_rows_merge(Exec *ex, Timeline *tl);

/* The slot of group g's data for (stage, micro-batch), activation or gradient; exec_slot is
 * group 0's (the only one of a backend without data or tensor parallelism). */
static inline ExecSlot *exec_slot_of(Exec *ex, int32_t g, int32_t stage, int32_t mb, int grad) {
    return &ex->slots[(((int64_t)g * ex->S + stage) * ex->m + mb) * 2 + grad];
}
static inline ExecSlot *exec_slot(Exec *ex, int32_t stage, int32_t mb, int grad) {
    return exec_slot_of(ex, 0, stage, mb, grad);
}
/* The worker of pipeline device d in group g. */
static inline ExecDev *exec_worker(Exec *ex, int32_t d, int32_t g) {
    return &ex->devs[(int64_t)d * ex->G + g];
}

/* Releases what a failed run left in the slots and buffers (backends call it from destroy
 * when their memory can still be freed). */
void exec_release(Exec *ex);

/* ---- what every backend computes alike ---- */

/* The deterministic first-stage input of sample batch mb (replica r's micro-batch j is
 * r m + j): n values in [-0.5, 0.5). */
void exec_batch_fill(int32_t mb, float *x, int64_t n);

/* The seed of stage st's k-th layer: spec.seed + copy * 2^20 + global layer index. */
uint64_t exec_layer_seed(const Exec *ex, int32_t stage, int64_t k);

#ifdef PIPESIM_MPI
/* Rank 0 collects every rank's rows (mine: this rank's), each moved by -clock_off[rank]
 * (NULL: not moved), into tl; the others send theirs. 0, or -1 out of memory on rank 0. */
int exec_mpi_gather(const Exec *ex, const Timeline *mine, Timeline *tl, const int64_t *clock_off);
#endif

#endif
