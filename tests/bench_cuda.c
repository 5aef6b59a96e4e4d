/* tests/bench_cuda.c: make bench on a GPU: every op of the synthetic layer's F, B and W alone
 * on the whole GPU (the CUDA layer, bf16), as achieved TFLOP/s (GEMMs) and GB/s (the
 * memory-bound kernels) from layer_ops' counts, for a GPT shape; then the passes' totals
 * against the peak given (default 989 TFLOP/s, H100/H200 dense bf16). Usage: bench_cuda
 * [b s h heads f [peak_tflops]]. Without a GPU it says so and exits 0. */
#include <stdio.h>
#include <stdlib.h>

#include <cuda_runtime_api.h>

#include "kernels/layer_cuda.h"
#include "exec/cuda.h"

int main(int argc, char **argv) {
    LayerShape sh = {.samples = 1, .seq = 2048, .hidden = 2048, .heads = 16, .ffn = 8192};
    double peak = 989;
    if (argc >= 6) {
        sh = (LayerShape){.samples = atoi(argv[1]), .seq = atoi(argv[2]), .hidden = atoi(argv[3]),
                          .heads = atoi(argv[4]), .ffn = atoi(argv[5])};
        if (argc >= 7) peak = atof(argv[6]);
    }
    char why[256];
    if (cuda_device_count(why, sizeof why) == 0) {
        printf("# bench_cuda: skipped: no CUDA device visible (%s)\n", why);
        return 0;
    }
    cudaStream_t st;
    LayerGpuCtx *c = NULL;
    Layer cpu;
    LayerGpu l;
    LayerGpuActs a;
    void *x = NULL, *y = NULL;
    size_t bytes = (size_t)layer_tokens(&sh) * (size_t)sh.hidden * 2;
    if (cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking) != cudaSuccess ||
        layer_init(&cpu, &sh, 1) != 0 || layer_gpu_ctx_create(&c, &sh, st, why, sizeof why) != 0 ||
        layer_gpu_upload(c, &cpu, &l, why, sizeof why) != 0 ||
        layer_gpu_acts_alloc(c, &a, why, sizeof why) != 0 || cudaMalloc(&x, bytes) != cudaSuccess ||
        cudaMalloc(&y, bytes) != cudaSuccess || cudaMemset(x, 0, bytes) != cudaSuccess) {
        fprintf(stderr, "bench_cuda: setup: %s\n", why);
        return 1;
    }
    printf("# shape b=%d s=%d h=%d heads=%d f=%d, bf16, fp32 accumulation, whole GPU\n",
           sh.samples, sh.seq, sh.hidden, sh.heads, sh.ffn);
    printf("# %-4s %-12s %10s %10s %10s %10s %8s\n", "pass", "op", "GFLOP", "MB", "ms",
           "TFLOP/s", "GB/s");
    static const OpKind passes[] = {OP_F, OP_B, OP_W};
    for (int p = 0; p < 3; p++) {
        LayerOp ops[LAYER_OPS_MAX];
        double ms[LAYER_OPS_MAX], total = 0;
        int n = layer_ops(&sh, passes[p], ops);
        if (layer_gpu_pass_profile(c, passes[p], &l, &a, x, y, NULL, 10, ms, why, sizeof why) != n) {
            fprintf(stderr, "bench_cuda: %s\n", why);
            return 1;
        }
        for (int i = 0; i < n; i++) {
            total += ms[i];
            printf("  %-4s %-12s %10.3f %10.2f %10.4f %10.1f %8.0f\n", op_kind_name(passes[p]),
                   ops[i].name, ops[i].flops / 1e9, ops[i].bytes / 1e6, ms[i],
                   ops[i].flops / (ms[i] * 1e9), ops[i].bytes / (ms[i] * 1e6));
        }
        double fl = layer_ops_flops(&sh, passes[p]);
        printf("  %-4s %-12s %10.3f %10s %10.4f %10.1f   %.1f %% of %.0f TFLOP/s peak\n",
               op_kind_name(passes[p]), "(pass)", fl / 1e9, "", total, fl / (total * 1e9),
               100 * fl / (total * 1e9) / peak, peak);
    }
    return 0;
}
