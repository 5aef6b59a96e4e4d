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
/* Since the last reset: ncclSend/ncclRecv calls; ncclGroupStart/End groups that posted
 * calls to more than one peer; the largest number of calls in one group; calls on a stream
 * that one communicator also used for another peer (head-of-line blocking); the lowest and
 * highest version cudaGetDriverEntryPointByVersion was asked for (0: never asked). */
typedef struct {
    int64_t nccl_calls, mixed_groups, max_group, shared_streams;
    unsigned entry_version_min, entry_version_max;
} CudastubCounts;
void cudastub_counts(CudastubCounts *c);

#endif
