/* exec/exec.h: pexec's executor: a checked Program run for real, every op measured, the
 * measured Timeline in psim's format. One core (exec/core.h: the rounds, a device's op from
 * its input through its layers to its output, failures, the watchdog's clock, the rows)
 * runs every backend; a backend is a const ExecBackend, one file each:
 *   exec_cpu_threads  one thread per device, the CPU twin (kernels/layer.h) on OpenBLAS, data
 *                     through in-process channels as strict as NCCL's (exec/cpu.c);
 *   exec_cpu_ranks    one MPI rank per device, MPI point-to-point (exec/cpu_mpi.c; builds with
 *                     PIPESIM_MPI);
 *   exec_cuda_threads one thread per GPU, k devices per GPU as SM partitions, NCCL between
 *                     GPUs (exec/cuda.c; builds with nvcc, PIPESIM_CUDA);
 *   exec_cuda_ranks   the same with one MPI rank per GPU (PIPESIM_CUDA and PIPESIM_MPI).
 * Failures never hang: a receive that finds another message than the Program says, a peer
 * that died, stalled or lost a message (the watchdog), a thread or memory failure end the
 * run with a message naming the device and op, and the rows measured until then are kept.
 *
 * Data, context and tensor parallelism (the CPU backends): with d replicas, c context ranks
 * and t tensor ranks the run has p d c t workers, worker w = ((device d + replica) c +
 * context rank) t + tensor rank (Megatron's order, as psim numbers GPUs: tensor fastest, then
 * context, data, pipeline; under MPI, rank w). Each replica runs the same Program on its own
 * micro-batches (replica r's micro-batch j is the batch of sample r m + j), each context rank
 * its two zigzag chunks of every sample (layer_position), each tensor rank its Megatron shard
 * of every layer; a pass's tensor collectives run over the t ranks of its (device, replica,
 * context rank), its K/V all-gather and dK/dV reduce-scatter over the c context ranks of its
 * (device, replica, tensor rank). With the tail, a chunk's gradients are summed over the d c
 * workers of its (device, tensor rank) (the replicas and their context ranks hold the same
 * weights) after its last backward, then every layer takes an SGD step. The measured
 * Timeline holds replica 0's context rank 0's tensor rank 0's rows (the view psim simulates;
 * the others run the same ops): compute, transfers, a `tensor` row per tensor-parallel
 * collective (inside its compute row; the K/V exchange has none, as psim places none), an
 * `allreduce` row per chunk and an `optimizer` row per device and iteration. */
#ifndef PIPESIM_EXEC_H
#define PIPESIM_EXEC_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/layer.h"
#include "sim/plan/plan.h"
#include "sim/program/program.h"
#include "sim/program/timeline.h"

typedef struct {
    const Program *pr;       // checked (program_check)
    const Plan *pl;          // layers per stage, from the same scenario
    LayerShape shape;        // one layer's shape (b, s, h, a, f), possibly scaled down
    uint64_t seed;           // weights of global layer k of copy c come from seed + c*2^20 + k
    int32_t iterations;      // as engine_run: the Program is run iterations / pr->iterations
                             //   times, with a flush (every device meets) between runs
    double watchdog_s;       // longest wait for one message, or (CUDA) with no op completing,
                             //   before failing; > 0
    // fault injection for tests (CPU backends; a device's replica 0 tensor rank 0)
    int32_t drop_send_of;    // this device never sends its first message (-1: none)
    int rendezvous;          // a send completes only once its receive has taken it, as a
                             //   blocking NCCL send on the compute stream would
    int32_t kill_device;     // this device dies once it has run kill_after ops (counted over
    int64_t kill_after;      //   all iterations; 0: never): an MPI rank kills itself with
                             //   SIGKILL, a thread ends silently
    int stall;               // with kill_*: the device stalls instead (a rank stops itself
                             //   with SIGSTOP, a thread waits until the run has failed)
    // the CUDA backends
    int32_t devices_per_gpu; // k >= 1 pipeline devices share one GPU (0: 1)
    int green;               // try green contexts for k > 1 (else streams)
    int group;               // group a GPU's neighbouring NCCL sends and receives (else one
                             //   ncclGroupStart/End per transfer)
    int warmup;              // passes and NCCL connections run once before the first epoch
    int hang;                // fault injection: device hang_device's first op waits until the
    int32_t hang_device;     //   watchdog fires (which then releases it)
    // data, context and tensor parallelism (the CPU backends; the others refuse them, status 2)
    int32_t data;            // d replicas of the pipeline (0: 1)
    int32_t tensor;          // t tensor ranks per stage (0: 1; divides heads and ffn); a
                             //   worker's shape is shape with tensor = t and its rank
    int32_t context;         // c context ranks per stage and replica (0: 1; 2c divides seq): a
                             //   worker's shape has context = c and its context rank
    int tail;                // iterations end with the data-parallel tail: after a chunk's
                             //   last backward (W or BW) its gradients are summed over the d c
                             //   workers, after the device's last op every layer steps
                             //   w -= lr g, and the next iteration starts from zero gradients
    float lr;                // the SGD step's learning rate (tail only)
    int32_t zero;            // [parallel] zero with d c > 1 (CPU backends): 1 and 2 reduce-
                             //   scatter a chunk's gradients instead (the k-th of the d c workers,
                             //   k = replica c + context rank, keeps the sum of its shard,
                             //   elements [n k / dc, n (k+1) / dc) of every buffer), step
                             //   only that shard, then all-gather every chunk's weights; the
                             //   buffers stay whole in memory. 3 gathers each layer's weights
                             //   before its F, B and BW and reduce-scatters each W's and BW's
                             //   own gradients (exec/cpu.c zero3), no tail collective
} ExecSpec;

typedef struct Exec Exec;
typedef struct ExecBackend ExecBackend;

extern const ExecBackend exec_cpu_threads;
#ifdef PIPESIM_MPI
extern const ExecBackend exec_cpu_ranks;
#endif
#ifdef PIPESIM_CUDA
extern const ExecBackend exec_cuda_threads;
#ifdef PIPESIM_MPI
extern const ExecBackend exec_cuda_ranks;
#endif
#endif

/* The backend's name as stored with the run (run_env "backend"), e.g. "cpu (threads)". */
const char *exec_backend_name(const ExecBackend *b);

/* exec_create allocates every device's layers (the weights of the whole model), its buffers
 * and the backend's transport (channels, MPI, GPUs and NCCL communicators). Under MPI every
 * rank calls it. Returns 0 and *out; else 1 with why for an environment failure (memory, too
 * few GPUs, a CUDA or NCCL error) or 2 for a launch that does not fit the Program (a wrong
 * rank count); *out is then NULL. */
int exec_create(const ExecSpec *spec, const ExecBackend *b, Exec **out, char *why,
                size_t whylen);
void exec_free(Exec *ex);

/* exec_run plays the Program spec.iterations / pr->iterations times and appends the measured
 * rows to tl (ns since the run's start): a compute row per op, a send and a recv row per
 * transfer (in process both span the hand-over into the channel, so time a receiver then
 * waits is idle, not transfer; on MPI ranks the recv row runs from the send's start to the
 * receiver having the data; on a GPU each spans its NCCL group or copy). Under MPI rank 0
 * gets every rank's rows, moved onto its clock. Returns 0, or 1 with why ("device 1 op 4 (F
 * mb 2 chunk 0): ...", on MPI ranks "rank R on HOST: ..." naming the ranks that never
 * reported) when the run failed; tl then holds the rows measured before the failure (on
 * GPUs: those of the rounds that completed, since an aborted round's events are not read
 * back). After a failure on MPI ranks every rank calls exec_settle, rank 0 once it has stored
 * the run, and then MPI_Abort. */
int exec_run(Exec *ex, Timeline *tl, char *why, size_t whylen);

/* After a failed exec_run on CPU ranks: rank 0 tells the ranks that reported that the run is
 * stored; the others wait for that (up to 2 x watchdog + 10 s), so that none ends the job
 * before rank 0 has stored it. Returns 0, or -1 when rank 0 never answered (it died: nothing
 * is stored). 0 at once for the other backends. */
int exec_settle(Exec *ex);

/* This process's MPI rank (0 without MPI). */
int exec_rank(const Exec *ex);

/* Copies the fp32 weight gradients of stage's k-th layer (worker group 0: replica 0, context
 * and tensor rank 0) into
 * out->g_* (out allocated with that rank's shape, exec_shape(ex, 0), e.g. by layer_init). 0,
 * or -1 with why. */
int exec_grads(Exec *ex, int32_t stage, int32_t k, Layer *out, char *why, size_t whylen);

/* Copies the weights and gradients of stage's k-th layer as replica `replica`'s context rank
 * `crank`'s tensor rank `trank` holds them into out (allocated with exec_shape(ex, trank)).
 * 0, or -1 with why: no such layer or rank, a layer of another MPI rank, or a backend that
 * cannot (CUDA). */
int exec_layer_of(Exec *ex, int32_t replica, int32_t crank, int32_t trank, int32_t stage,
                  int32_t k, Layer *out, char *why, size_t whylen);

/* Where pipeline device d's measured ops spent their time, per iteration (the first round
 * left out as warm-up when there are several, as the stored rows' statistics do): ms by pass
 * (OP_F, OP_B, OP_W: a BW op's B and W apart) and kernel class (LayerClass, the all-reduces
 * in LC_COMM), then at [pass][LC_COUNT] the ops' time outside their layers' kernels (the
 * executor's per-op work; a BW op's goes with B). Replica 0's tensor rank 0, as the rows.
 * Under MPI rank 0 has every rank's (gathered after the run). Returns 0, or -1 when not
 * measured: a backend without kernel timing (CUDA), or a device of another rank on a rank
 * other than 0. */
int exec_split(const Exec *ex, int32_t d, double pass_ms[3][LC_COUNT + 1]);

/* Host bytes the CPU backends would hold at their peak for spec, all workers together
 * (threads) or the largest one (per_worker, an MPI rank): every worker's layers (fp32
 * weights and gradients of its tensor-parallel shard), the activations of each stage's most
 * micro-batches in flight (an F takes them, its BW or W gives them back, in the Program's
 * order), a device's scratch and the data buffers of the kept and moving activations. An
 * estimate made before allocating, so a run that cannot fit is refused instead of killed. */
double exec_host_bytes(const ExecSpec *spec, int per_worker);

/* The layer shape tensor rank trank runs: spec.shape with tensor = t, rank = trank, context
 * = c and context rank 0 (the others' differ only in crank, which sizes nothing). */
LayerShape exec_shape(const Exec *ex, int32_t trank);

/* Workers (p d c t) and whether worker w runs in this process (all of them with threads, one
 * under MPI). */
int32_t exec_workers(const Exec *ex);
int exec_worker_here(const Exec *ex, int32_t w);

/* After exec_run on CPU ranks: how far the ranks' clock offsets moved between the
 * measurements before and after the run (rows are placed with the mean of the two), ns; 0
 * for the other backends. */
int64_t exec_clock_drift_ns(const Exec *ex);

#ifdef PIPESIM_MPI
/* exec_probe_links (CPU ranks, every rank calls it): times messages from one byte-size ladder
 * (an activation, halved down to 1/64 of it) between each pair of neighbouring ranks and fits
 * latency + bytes / bandwidth by least squares; rank 0 gets the fit. Returns 0, or -1 when out
 * of memory. */
int exec_probe_links(Exec *ex, double *latency_us, double *bandwidth_gbs);
#endif

#endif
