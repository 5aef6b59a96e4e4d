/* exec/pexec_cuda.h: pexec --backend cuda: the Program of a prepared Run on NVIDIA GPUs
 * (exec/runtime_cuda.h), filling r->tl, r->extra and r->env (versions as text, GPUs, NCCL_* and
 * CUDA_* variables) like the CPU path. Built only with nvcc
 * (PIPESIM_CUDA); pexec.c says so when it is missing. */
#ifndef PIPESIM_PEXEC_CUDA_H
#define PIPESIM_PEXEC_CUDA_H

#include "sim/run/run.h"

/* mpi: this process is one rank of an mpirun job (one rank per GPU; builds with PIPESIM_MPI),
 * rank 0 getting the rows. Returns an exit status: 0; 1 when no GPU is visible ("pexec: --backend cuda: no CUDA device
 * visible (...)"), too few GPUs, or a CUDA/NCCL failure; 2 when the watchdog fired or for
 * --drop-send/--rendezvous (the CPU backend's). Nothing is
 * stored here (run_report stores after a 0). */
int pexec_cuda_execute(const RunOptions *o, Run *r, int mpi);

#endif
