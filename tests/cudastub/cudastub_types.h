/* tests/cudastub/cudastub_types.h: the handle types the stand-in's CUDA, driver, cuBLAS and
 * NCCL headers share (a green context's stream is a runtime stream, as in CUDA). Test-only:
 * never on bin/pexec's include path. */
#ifndef PIPESIM_CUDASTUB_TYPES_H
#define PIPESIM_CUDASTUB_TYPES_H

#include <stddef.h>
#include <stdint.h>

typedef struct CUstream_st *cudaStream_t;
typedef struct CUevent_st *cudaEvent_t;

/* Test hooks (cudastub.c). The stand-in reads PSIM_STUB_GPUS (GPUs visible, default 4; 0:
 * cudaGetDeviceCount fails as without a driver), PSIM_STUB_NCCL_FAIL=N (the Nth
 * ncclSend/ncclRecv of the process returns ncclSystemError) at its first call; these override. */
void cudastub_reset(int gpus, int nccl_fail_at);
/* Green contexts: with on, cudaGetDriverEntryPointByVersion gives the driver's green-context
 * functions (a GPU of 132 SMs, partitions of multiples of 8, as an H100's); fail_fn names
 * one that then fails (NULL: none). cudastub_thread_ctx_green says whether the calling
 * thread's current context is a green one. PSIM_STUB_GREEN=1 turns them on at start. */
void cudastub_green(int on, const char *fail_fn);
int cudastub_thread_ctx_green(void);

/* Since the last reset: ncclSend/ncclRecv calls; ncclGroupStart/End groups that posted
 * calls to more than one peer; the largest number of calls in one group; calls on a stream
 * that one communicator also used for another peer (head-of-line blocking); the lowest and
 * highest version cudaGetDriverEntryPointByVersion was asked for (0: never asked). */
typedef struct {
    int64_t nccl_calls, mixed_groups, max_group, shared_streams;
    unsigned entry_version_min, entry_version_max;
    int64_t green_ctxs;      // green contexts alive
    int64_t split_sms;       // SMs handed out by the last cuDevSmResourceSplitByCount
    int64_t sm_target_min;   // smallest layer_gpu_set_sm_count since the reset (0: none)
} CudastubCounts;
void cudastub_note_sm_target(int sms); // the stand-in layer's hook
void cudastub_counts(CudastubCounts *c);

#endif
