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
/* ncclSend/ncclRecv calls so far, ncclGroupStart/End pairs that posted both a send and a
 * receive to different peers, and the largest number of calls in one group. */
typedef struct {
    int64_t nccl_calls, mixed_groups, max_group;
} CudastubCounts;
void cudastub_counts(CudastubCounts *c);

#endif
