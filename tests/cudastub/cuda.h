/* tests/cudastub/cuda.h: the driver API types exec/cuda.c names (its functions are looked up
 * at run time; the stand-in has none, so the green-context fallback runs). Test-only. */
#ifndef PIPESIM_CUDASTUB_CUDA_H
#define PIPESIM_CUDASTUB_CUDA_H

#include "cudastub_types.h"

typedef int CUresult;
#define CUDA_SUCCESS 0
typedef int CUdevice;
typedef struct CUctx_st *CUcontext;
typedef struct CUgreenCtx_st *CUgreenCtx;
typedef struct CUstream_st *CUstream;
typedef struct CUdevResourceDesc_st *CUdevResourceDesc;
typedef enum { CU_DEV_RESOURCE_TYPE_SM = 1 } CUdevResourceType;
typedef struct {
    unsigned int smCount, minSmPartitionSize, smCoscheduledAlignment;
} CUdevSmResource;
typedef struct {
    CUdevResourceType type;
    CUdevSmResource sm;
} CUdevResource;
#define CU_GREEN_CTX_DEFAULT_STREAM 1
#define CU_STREAM_NON_BLOCKING 1

#endif
