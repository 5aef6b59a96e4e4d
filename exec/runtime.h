/* exec/runtime.h: pexec's runtime on CPU threads: one worker thread per device runs its Program
 * in order with real work (the synthetic layer of kernels/layer.h on every layer of the
 * stage), and activations and gradients really move between devices through in-process
 * channels as strict as NCCL's: one ordered channel per (sender, receiver, activations or
 * gradients), and a receiver that finds another message than the one it expects at the head
 * of its channel fails (NCCL would hang or hand it the wrong tensor). A receive that waits
 * longer than the watchdog fails with the ops that wait, instead of hanging. The measured
 * Timeline has psim's format, so both can be stored and compared. With MPI (PIPESIM_MPI) the
 * same runtime runs one device per rank, and ends every rank when one fails or dies. */
#ifndef PIPESIM_RUNTIME_H
#define PIPESIM_RUNTIME_H

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
                             //   times, with a flush (all workers meet) between runs
    double watchdog_s;       // longest wait for one message before failing, > 0
    int32_t drop_send_of;    // fault injection for tests: this device never sends its first
                             //   message (-1: none)
    int rendezvous;          // a send completes only once its receive has taken it, as a
                             //   blocking NCCL send on the compute stream would
    int32_t kill_device;     // fault injection for tests: this device dies once it has run
    int64_t kill_after;      //   kill_after ops (counted over all iterations; 0: never): an
                             //   MPI rank kills itself with SIGKILL, a thread ends silently
    int stall;               // with kill_*: the device stalls instead (a rank stops itself
                             //   with SIGSTOP, a thread waits until the run has failed)
} RuntimeSpec;

typedef struct Runtime Runtime;

/* runtime_create allocates every device's layers (the weights of the whole model) and the
 * channels. Returns 0, or -1 when out of memory. */
int runtime_create(const RuntimeSpec *spec, Runtime **out);
void runtime_free(Runtime *rt);

/* runtime_run runs the Program on one thread per device and appends the measured rows to tl
 * (compute rows per op; a send and a recv row per transfer, both spanning the hand-over into
 * the channel: time a receiver then waits is idle, not transfer; on MPI ranks the receive
 * row runs from the send's start to the receiver having the data, so it includes any time the
 * message waited for its receiver), times in ns since the run's start. Returns 0, or 1 with why
 * ("device 1 op 4 (F mb 2 chunk 0): ...") when the run failed: a receive found the wrong
 * message, the watchdog fired (a peer died, stalled or lost a message), a device's thread
 * ended early, or a thread or memory failed. On failure tl still holds every row measured
 * before it, so the run can be stored as failed. */
int runtime_run(Runtime *rt, Timeline *tl, char *why, size_t whylen);

/* runtime_run_rank: this process is one rank of an MPI job with one rank per device (MPI
 * initialised, size = devices): it runs its own device's ops with MPI point-to-point as the
 * transport, aligns the ranks' clocks to rank 0's (ping-pongs before and after the run), and
 * rank 0 gets every rank's rows in tl.
 * Returns as runtime_run, why starting "rank R on HOST: ". Failures end every rank within
 * about the watchdog time: the rank that finds one tells the others (they stop with "rank R
 * on HOST stopped: ..."), every surviving rank sends rank 0 its rows and its reason, and rank
 * 0 (if alive) waits up to 2 x watchdog + 1 s for them; why then names the first rank's own
 * fault and the ranks that never reported (dead or stalled), and tl holds the rows of the
 * ranks that did. After a failure every rank must call runtime_rank_settle (rank 0 once it
 * has stored the run) and then MPI_Abort. Only in builds with PIPESIM_MPI (MPI initialised
 * with MPI_THREAD_SERIALIZED, MPI_ERRORS_RETURN on MPI_COMM_WORLD). */
int runtime_run_rank(Runtime *rt, Timeline *tl, char *why, size_t whylen);

/* runtime_rank_settle, after a failed runtime_run_rank: rank 0 tells the ranks that reported
 * that the run is stored; the others wait for that (up to 2 x watchdog + 10 s), so that none
 * ends the job before rank 0 has stored it. Returns 0, or -1 when rank 0 never answered (it
 * died: nothing is stored). Only in builds with PIPESIM_MPI. */
int runtime_rank_settle(Runtime *rt);

/* runtime_probe_links (MPI ranks, every rank calls it): times messages from one byte-size
 * ladder (an activation, halved down to 1/64 of it) between each pair of neighbouring ranks
 * and fits latency + bytes / bandwidth by least squares; rank 0 gets the fit. Returns 0, or
 * -1 when out of memory. Only in builds with PIPESIM_MPI. */
int runtime_probe_links(Runtime *rt, double *latency_us, double *bandwidth_gbs);

/* After runtime_run_rank: how far the ranks' clock offsets moved between the measurements
 * before and after the run (rows are placed with the mean of the two), ns; 0 for threads. */
int64_t runtime_clock_drift_ns(const Runtime *rt);

/* The layer a stage's k-th layer is (for checking gradients), or NULL. */
Layer *runtime_layer(Runtime *rt, int32_t stage, int32_t k);

#endif
