/* exec/cuda.h: the CUDA backends' own side (exec.h has exec_cuda_threads and exec_cuda_ranks):
 * the checked Program on NVIDIA GPUs with the CUDA layer (kernels/layer_cuda.h). Pipeline
 * device d runs on GPU d / k as SM partition d % k
 * (k = hardware.devices_per_gpu): a green context of 1/k of the SMs when the driver has them
 * (CUDA 12.4+, reached through cudaGetDriverEntryPointByVersion, never by linking libcuda),
 * else a plain stream sharing the whole GPU. One host thread per GPU issues the ops of its k
 * devices asynchronously in one global order that every GPU derives from the Program (a
 * topological order of its ops in which each transfer follows its producer), so both ends of
 * every NCCL send/recv are posted in the same order on every channel. Transfers between GPUs
 * are ncclSend/ncclRecv on one non-blocking communicator (one rank per GPU, initialised with
 * grouped ncclCommInitRankConfig; over MPI rank 0's ncclGetUniqueId is broadcast), the sends
 * and receives to one peer GPU between two compute ops of a GPU in one ncclGroupStart/End
 * (1F1B's send-forward + receive-backward pair) on that peer's stream (one per peer); between devices of one GPU they are
 * cudaMemcpyAsync on the producer's copy stream ordered by events. Every op is timed by CUDA
 * events against one epoch event per stream context and round; a poll-and-abort watchdog
 * (cudaEventQuery, ncclCommGetAsyncError) aborts every communicator when nothing completes
 * for watchdog_s. The rest of an op (its input, layers, output) is the core's (exec_op). Only
 * built with nvcc (PIPESIM_CUDA); the inline helpers below are plain C. */
#ifndef PIPESIM_EXEC_CUDA_H
#define PIPESIM_EXEC_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "exec/exec.h"

/* Which GPU and which SM partition of it a pipeline device runs on, and the GPUs p devices
 * need, for k devices per GPU (k consecutive devices share a GPU, as psim prices them). */
static inline int32_t cuda_gpu_of(int32_t device, int32_t per_gpu) { return device / per_gpu; }
static inline int32_t cuda_partition_of(int32_t device, int32_t per_gpu) {
    return device % per_gpu;
}
static inline int32_t cuda_gpus_needed(int32_t devices, int32_t per_gpu) {
    return (devices + per_gpu - 1) / per_gpu;
}

/* How a GPU's devices share it. */
typedef enum { CUDA_WHOLE_GPU = 0, CUDA_STREAMS = 1, CUDA_GREEN_CONTEXTS = 2 } CudaPartition;

typedef struct {
    int runtime, driver;     // cudaRuntimeGetVersion, cudaDriverGetVersion (0: no driver)
    int nccl;                // ncclGetVersion, e.g. 22809
    int cublas;              // major*10000 + minor*100 + patch
} CudaVersions;

/* GPUs visible; 0 with the reason in why ("cudaGetDeviceCount: ... (cudaErrorInsufficientDriver,
 * error 35)" or "no devices"). Works on machines without a driver. */
int cuda_device_count(char *why, size_t whylen);
void cuda_versions(CudaVersions *v);
/* v as text: CUDA runtime and driver "12.4" (encoded 1000*major + 10*minor; driver 0 reads
 * "none"), NCCL "2.28.9" (major*10000 + minor*100 + patch since 2.9, major*1000 + minor*100 +
 * patch before), cuBLAS "12.4.5" (as CudaVersions encodes it). */
typedef struct {
    char runtime[40], driver[40], nccl[40], cublas[40]; // room for any three ints: -O0 builds check
} CudaVersionText;
void cuda_versions_text(const CudaVersions *v, CudaVersionText *t);
/* GPU gpu's (0-based among the visible) name, e.g. "NVIDIA H200", and compute capability,
 * e.g. 9 and 0. Returns 0, or -1 with cudaGetDeviceProperties's reason in why. */
int cuda_gpu_describe(int gpu, char *name, size_t namelen, int *cc_major, int *cc_minor,
                      char *why, size_t whylen);
/* The NCCL_* environment variables as "NAME=value" lines (sorted); returns the length written
 * (truncated to buflen - 1). */
size_t cuda_nccl_env(char *buf, size_t buflen);

/* How exec_cuda_threads or exec_cuda_ranks shared the GPUs, the SMs of one device's
 * partition (0: whole or streams) and the GPUs the run needs (ex from one of them). */
CudaPartition cuda_exec_partition(const Exec *ex, int *sms_per_device, int *gpus);

/* The GPUs this process drives (every one without MPI, its own under mpirun): writes up to
 * max of them as the run's GPU number (0-based) and the CUDA ordinal it runs on; returns how
 * many it wrote. */
int cuda_exec_gpus_used(const Exec *ex, int *gpu, int *ordinal, int max);

#endif
