/* tests/cudastub/cublas_v2.h: the cuBLAS entry points exec/cuda.c calls (the layer's GEMMs are
 * the stand-in layer's, on OpenBLAS). Test-only. */
#ifndef PIPESIM_CUDASTUB_CUBLAS_H
#define PIPESIM_CUDASTUB_CUBLAS_H

#include "cudastub_types.h"

typedef enum { CUBLAS_STATUS_SUCCESS = 0, CUBLAS_STATUS_NOT_SUPPORTED = 15 } cublasStatus_t;
typedef enum { MAJOR_VERSION, MINOR_VERSION, PATCH_LEVEL } libraryPropertyType;
cublasStatus_t cublasGetProperty(libraryPropertyType type, int *value);

#endif
