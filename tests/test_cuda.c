/* tests/test_cuda.c: the CUDA backend. Everywhere: the layer's op lists (sim/model/layer_ops.h)
 * count the closed-form FLOPs the cost model prices, and executed in fp32 by a plain reference
 * here they give the CPU twin's outputs and gradients, also as the column-major calls cuBLAS gets (so
 * their shapes, strides and offsets, and the mapping onto cuBLAS, are the twin's math); devices map k to a GPU as psim's devices_per_gpu says; the key parses. With
 * the backend built: the versions and NCCL environment are read without a GPU, and a missing
 * GPU is reported with cudaGetDeviceCount's reason. On a GPU (skipped otherwise, saying why):
 * the CUDA layer against the CPU twin within bf16 tolerance, and a 2-stage 1F1B (green
 * contexts, then streams) and a 4-stage ZB-H1 sharing one GPU give the gradients of the
 * one-device run. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sim/model/cost.h"
#include "kernels/layer.h"
#include "sim/model/layer_ops.h"
#include "exec/cuda.h"
#include "sim/scenario/scenario.h"
#include "sim/sched/schedule.h"

#ifdef PIPESIM_CUDA
#include <cuda_runtime_api.h>
#include <nccl.h>

#include "kernels/layer_cuda.h"
#endif

static const LayerShape SMALL = {.samples = 2, .seq = 5, .hidden = 8, .heads = 2, .ffn = 12,
                                 .dropout = 0.2f};

static void fill(float *v, int64_t n, uint32_t seed) {
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        v[i] = (float)(seed >> 8) / (float)(1u << 24) - 0.5f;
    }
}

/* ---- the op lists ---- */

/* The lists count the closed forms (Narayanan et al. 2021; Qi et al. 2023, Table 1: with
 * linear = 8bsh^2 + 4bshf and attention = 4bs^2h, F = linear + attention, B = linear +
 * 2 attention, W = linear; 24bsh^2 + 4bs^2h forward when f = 4h, 1.374 TFLOP for a GPT-3 13B
 * layer on one 2048-token sample), and the cost model prices exactly the lists. */
static void test_ops_flops_equal_closed_form(void **state) {
    (void)state;
#define SHAPE(b, s, h, a, f) {.samples = b, .seq = s, .hidden = h, .heads = a, .ffn = f}
    static const LayerShape shapes[] = {SHAPE(1, 2048, 5120, 40, 20480), SHAPE(4, 1024, 768, 12, 3072),
                                        SHAPE(2, 5, 8, 2, 12), SHAPE(3, 7, 12, 3, 5)};
#undef SHAPE
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const LayerShape *sh = &shapes[i];
        double bs = (double)sh->samples * sh->seq, h = sh->hidden;
        double linear = 8 * bs * h * h + 4 * bs * h * sh->ffn, attention = 4 * bs * sh->seq * h;
        assert_true(layer_ops_flops(sh, OP_F) == linear + attention); // integer-valued: exact
        assert_true(layer_ops_flops(sh, OP_B) == linear + 2 * attention);
        assert_true(layer_ops_flops(sh, OP_W) == linear);
        ScnModel m = {.seq_len = sh->seq, .hidden = sh->hidden, .heads = sh->heads,
                      .ffn_hidden = sh->ffn};
        double f, b, w;
        cost_layer_flops(&m, sh->samples, &f, &b, &w);
        assert_true(f == linear + attention && b == linear + 2 * attention && w == linear);
    }
    assert_true(fabs(layer_ops_flops(&shapes[0], OP_F) / 1e12 - 1.374) < 5e-4);
    LayerOp ops[LAYER_OPS_MAX];
    assert_int_equal(layer_ops(&SMALL, OP_BW, ops), -1);
}

static int count_gemms(OpKind pass) {
    LayerOp ops[LAYER_OPS_MAX];
    int n = layer_ops(&SMALL, pass, ops), g = 0;
    for (int i = 0; i < n; i++) g += ops[i].kernel == LK_GEMM;
    return g;
}

/* Ops of kernel k in pass's list for shape sh. */
static int count_kernel(const LayerShape *sh, OpKind pass, LayerKernel k) {
    LayerOp ops[LAYER_OPS_MAX];
    int n = layer_ops(sh, pass, ops), c = 0;
    for (int i = 0; i < n; i++) c += ops[i].kernel == k;
    return c;
}

static void test_ops_counts_and_bytes(void **state) {
    (void)state;
    // F: qkv, score, attn_v, out_proj, up, down; B: 4 linear dX + 4 attention; W: 4 dW
    assert_int_equal(count_gemms(OP_F), 6);
    assert_int_equal(count_gemms(OP_B), 8);
    assert_int_equal(count_gemms(OP_W), 4);
    // two layer norms in each pass; three dropouts in F and B (the two residuals fused with
    // theirs in F), none without dropout; 2 + 2 all-reduces with t = 2, none with t = 1
    LayerShape plain = SMALL, tp = SMALL;
    plain.dropout = 0, tp.tensor = 2;
    assert_int_equal(count_kernel(&SMALL, OP_F, LK_LAYERNORM), 2);
    assert_int_equal(count_kernel(&SMALL, OP_B, LK_LAYERNORM_BW), 2);
    assert_int_equal(count_kernel(&SMALL, OP_W, LK_LAYERNORM_DW), 2);
    assert_int_equal(count_kernel(&SMALL, OP_F, LK_DROPOUT) + count_kernel(&SMALL, OP_F, LK_DROPOUT_ADD), 3);
    assert_int_equal(count_kernel(&SMALL, OP_B, LK_DROPOUT), 3);
    assert_int_equal(count_kernel(&plain, OP_F, LK_DROPOUT) + count_kernel(&plain, OP_B, LK_DROPOUT), 0);
    assert_int_equal(count_kernel(&SMALL, OP_F, LK_ALLREDUCE) + count_kernel(&SMALL, OP_B, LK_ALLREDUCE), 0);
    assert_int_equal(count_kernel(&tp, OP_F, LK_ALLREDUCE), 2);
    assert_int_equal(count_kernel(&tp, OP_B, LK_ALLREDUCE), 2);
    LayerOp ops[LAYER_OPS_MAX];
    int n = layer_ops(&SMALL, OP_F, ops);
    int64_t T = 10, h = 8, s = 5, rows = 2 * 2 * 5;
    for (int i = 0; i < n; i++) {
        if (strcmp(ops[i].name, "qkv") == 0) // x and W_qkv read, qkv written, bf16
            assert_true(ops[i].bytes == 2.0 * (T * h + h * 3 * h + T * 3 * h));
        if (strcmp(ops[i].name, "out_proj") == 0) // ctx and W_o read, a written
            assert_true(ops[i].bytes == 2.0 * (T * h + h * h + T * h));
        if (strcmp(ops[i].name, "softmax") == 0) // fp32 scores in, bf16 probabilities out
            assert_true(ops[i].bytes == (double)rows * s * (4 + 2));
        if (strcmp(ops[i].name, "score") == 0) // 2 s s d per (sample, head), fp32 out
            assert_true(ops[i].flops == 2.0 * s * s * 4 * 2 * 2 &&
                        ops[i].bytes == 2 * 2 * (2.0 * s * 4 * 2 + 4.0 * s * s));
        if (strcmp(ops[i].name, "ln1") == 0) // x in, xn out (bf16), stats (fp32), gamma|beta
            assert_true(ops[i].bytes == 2.0 * 2 * T * h + 4.0 * 2 * T + 2.0 * 2 * h);
        if (strcmp(ops[i].name, "residual1") == 0) // a and x in, x1 out
            assert_true(ops[i].bytes == 2.0 * 3 * T * h);
    }
    n = layer_ops(&SMALL, OP_W, ops);
    for (int i = 0; i < n; i++) assert_int_equal(layer_buf_elem_bytes(&SMALL, ops[i].c), 4); // fp32 grads
    // a tensor-parallel rank's GEMMs are 1/t of the layer's
    for (OpKind k = OP_F; k <= OP_W; k++)
        assert_true(layer_ops_flops(&tp, k) * 2 == layer_ops_flops(&SMALL, k));
}

/* fp32 buffers for every LayerBuf of one pass, the reference executor's memory, and the
 * dropouts' seed. */
typedef struct {
    float *b[LB_COUNT + 1];
    uint64_t seed;
} RefBufs;

static void ref_gemm(RefBufs *m, const LayerOp *o) {
    for (int64_t r = 0; r < o->repeat; r++)
        for (int64_t bt = 0; bt < o->batch; bt++) {
            const float *A = m->b[o->a] + o->a_off + r * o->ra + bt * o->sa;
            const float *B = m->b[o->b] + o->b_off + r * o->rb + bt * o->sb;
            float *C = m->b[o->c] + o->c_off + r * o->rc + bt * o->sc;
            for (int64_t i = 0; i < o->M; i++)
                for (int64_t j = 0; j < o->N; j++) {
                    double acc = 0;
                    for (int64_t k = 0; k < o->K; k++)
                        acc += (double)(o->ta ? A[k * o->lda + i] : A[i * o->lda + k]) *
                               (o->tb ? B[j * o->ldb + k] : B[k * o->ldb + j]);
                    C[i * o->ldc + j] = (float)(o->alpha * acc + o->beta * C[i * o->ldc + j]);
                }
        }
}

/* The same GEMM through layer_op_gemm_call, with column-major BLAS semantics (what cuBLAS
 * receives): element (i, l) of an operand X with ld is X[i + l ld], or X[l + i ld] transposed. */
static void ref_gemm_colmajor(RefBufs *m, const LayerOp *o) {
    LayerGemmCall g;
    layer_op_gemm_call(o, &g);
    for (int64_t r = 0; r < o->repeat; r++)
        for (int64_t bt = 0; bt < o->batch; bt++) {
            const float *A = m->b[g.first] + g.first_off + r * g.r_first + bt * g.s_first;
            const float *B = m->b[g.second] + g.second_off + r * g.r_second + bt * g.s_second;
            float *C = m->b[g.c] + g.c_off + r * g.rc + bt * g.sc;
            for (int64_t i = 0; i < g.m; i++)
                for (int64_t j = 0; j < g.n; j++) {
                    double acc = 0;
                    for (int64_t l = 0; l < g.k; l++)
                        acc += (double)(g.transa ? A[l + i * g.ld_first] : A[i + l * g.ld_first]) *
                               (g.transb ? B[j + l * g.ld_second] : B[l + j * g.ld_second]);
                    C[i + j * g.ldc] = (float)(o->alpha * acc + o->beta * C[i + j * g.ldc]);
                }
        }
}

static int colmajor; // ref_op runs GEMMs as cuBLAS gets them

static float gelu(float u) { return 0.5f * u * (1.0f + tanhf(0.7978845608f * (u + 0.044715f * u * u * u))); }
static float gelu_grad(float u) {
    float t = tanhf(0.7978845608f * (u + 0.044715f * u * u * u));
    return 0.5f * (1 + t) + 0.5f * u * (1 - t * t) * 0.7978845608f * (1 + 3 * 0.044715f * u * u);
}

/* The kept share of element i of a dropout op, from the mask's definition in layer_ops.h. */
static double ref_keep(const RefBufs *m, const LayerOp *o, int64_t i) {
    int64_t j = (i / o->mask_blk) * o->mask_stride + o->mask_off + i % o->mask_blk;
    uint64_t z = m->seed + 0x9E3779B97F4A7C15ULL * (uint64_t)(j + 1) + 0xD1B54A32D192ED03ULL * o->salt;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    double u = (double)(uint32_t)((z ^ (z >> 31)) >> 32) / 4294967296.0;
    return u < o->p ? 0 : 1 / (1 - (double)o->p);
}

static void ref_layernorm(const RefBufs *m, const LayerOp *o) {
    const float *x = m->b[o->a], *w = m->b[o->w];
    float *y = m->b[o->c], *st = m->b[o->d];
    int64_t n = o->cols;
    for (int64_t r = 0; r < o->n; r++) {
        double mean = 0, var = 0;
        for (int64_t j = 0; j < n; j++) mean += x[r * n + j];
        mean /= (double)n;
        for (int64_t j = 0; j < n; j++) var += (x[r * n + j] - mean) * (x[r * n + j] - mean);
        double rstd = 1 / sqrt(var / (double)n + LAYER_LN_EPS);
        st[2 * r] = (float)mean, st[2 * r + 1] = (float)rstd;
        for (int64_t j = 0; j < n; j++)
            y[r * n + j] = (float)((x[r * n + j] - mean) * rstd * w[j] + w[n + j]);
    }
}

/* LAYERNORM_BW (dw 0) or LAYERNORM_DW (dw 1), in double. */
static void ref_layernorm_bw(const RefBufs *m, const LayerOp *o, int dw) {
    const float *dy = m->b[o->a], *x = m->b[o->b], *st = m->b[o->d], *w = m->b[o->w];
    float *c = m->b[o->c];
    int64_t n = o->cols;
    for (int64_t r = 0; r < o->n; r++) {
        double mean = st[2 * r], rstd = st[2 * r + 1], sg = 0, sgx = 0;
        for (int64_t j = 0; j < n && !dw; j++) {
            double g = (double)dy[r * n + j] * w[j];
            sg += g, sgx += g * (x[r * n + j] - mean) * rstd;
        }
        for (int64_t j = 0; j < n; j++) {
            double xh = (x[r * n + j] - mean) * rstd;
            if (dw) {
                c[j] += (float)(dy[r * n + j] * xh), c[n + j] += dy[r * n + j];
                continue;
            }
            double v = rstd * ((double)dy[r * n + j] * w[j] - sg / n - xh * sgx / n);
            c[r * n + j] = (float)(o->beta != 0 ? c[r * n + j] + v : v);
        }
    }
}

static void ref_op(RefBufs *m, const LayerOp *o) {
    const float *a = m->b[o->a], *b = m->b[o->b];
    float *c = m->b[o->c];
    int64_t s = o->cols;
    switch ((LayerKernel)o->kernel) {
    case LK_DROPOUT: for (int64_t i = 0; i < o->n; i++) c[i] = (float)(a[i] * ref_keep(m, o, i)); break;
    case LK_DROPOUT_ADD:
        for (int64_t i = 0; i < o->n; i++) c[i] = (float)(b[i] + a[i] * ref_keep(m, o, i));
        break;
    case LK_LAYERNORM: ref_layernorm(m, o); break;
    case LK_LAYERNORM_BW: ref_layernorm_bw(m, o, 0); break;
    case LK_LAYERNORM_DW: ref_layernorm_bw(m, o, 1); break;
    case LK_ALLREDUCE: break; // one rank: the sum is the buffer
    case LK_COUNT: fail_msg("unknown kernel in %s", o->name); break;
    case LK_SWIGLU: case LK_SWIGLU_BW: case LK_RMSNORM: case LK_RMSNORM_BW: case LK_RMSNORM_DW:
    case LK_FLASH: case LK_FLASH_BW: case LK_ALLGATHER: case LK_REDUCE_SCATTER:
    case LK_ROUTE: case LK_PERMUTE: case LK_ALLTOALL:
        fail_msg("%s: the reference runs GPT's layer only", o->name); // test_layer checks these
        break;
    case LK_GEMM: colmajor ? ref_gemm_colmajor(m, o) : ref_gemm(m, o); break;
    case LK_COPY: memcpy(c, a, (size_t)o->n * sizeof *c); break;
    case LK_GELU: for (int64_t i = 0; i < o->n; i++) c[i] = gelu(a[i]); break;
    case LK_GELU_BW: for (int64_t i = 0; i < o->n; i++) c[i] = a[i] * gelu_grad(b[i]); break;
    case LK_SOFTMAX:
        for (int64_t r = 0; r < o->n; r++) {
            int64_t i = r % s;
            double mx = a[r * s], sum = 0;
            for (int64_t j = 0; j <= i; j++) mx = fmax(mx, a[r * s + j]);
            for (int64_t j = 0; j <= i; j++) sum += exp(a[r * s + j] - mx);
            for (int64_t j = 0; j < s; j++)
                c[r * s + j] = j <= i ? (float)(exp(a[r * s + j] - mx) / sum) : 0;
        }
        break;
    case LK_SOFTMAX_BW:
        for (int64_t r = 0; r < o->n; r++) {
            double dot = 0;
            for (int64_t j = 0; j < s; j++) dot += (double)a[r * s + j] * b[r * s + j];
            for (int64_t j = 0; j < s; j++)
                c[r * s + j] = (float)(a[r * s + j] * (b[r * s + j] - dot) * o->alpha);
        }
        break;
    }
}

static void ref_pass(RefBufs *m, OpKind pass) {
    LayerOp ops[LAYER_OPS_MAX];
    int n = layer_ops(&SMALL, pass, ops);
    for (int i = 0; i < n; i++) ref_op(m, &ops[i]);
}

static void expect_near(const float *got, const float *want, int64_t n, float tol, const char *what) {
    float scale = 0;
    for (int64_t i = 0; i < n; i++) scale = fmaxf(scale, fabsf(want[i]));
    if (!(scale > 0)) // all-zero output would equal an all-zero reference: not a test
        fail_msg("%s: the reference is all zero (or NaN), so the comparison would pass vacuously", what);
    for (int64_t i = 0; i < n; i++)
        if (fabsf(got[i] - want[i]) > tol * (scale > 0 ? scale : 1))
            fail_msg("%s[%lld]: %g, want %g (max |want| %g, tolerance %g of it)", what,
                     (long long)i, (double)got[i], (double)want[i], (double)scale, (double)tol);
}

/* The CPU twin's F (x -> y), B (dy -> dx) and W of layer l on one micro-batch. */
static void twin_passes(Layer *l, LayerActs *acts, const float *x, const float *dy, float *y,
                        float *dx) {
    LayerScratch scr;
    assert_int_equal(layer_scratch_init(&scr, &l->sh), 0);
    assert_int_equal(layer_pass(l, OP_F, acts, &scr, x, y, NULL), 0);
    assert_int_equal(layer_pass(l, OP_B, acts, &scr, dy, dx, NULL), 0);
    assert_int_equal(layer_pass(l, OP_W, acts, &scr, NULL, NULL, NULL), 0);
    layer_scratch_free(&scr);
}

/* The lists, run by the reference above, are the CPU twin's F, B and W. */
static void test_ops_reproduce_cpu_twin(void **state) {
    (void)state;
    Layer l;
    LayerActs acts;
    assert_int_equal(layer_init(&l, &SMALL, 3), 0);
    assert_int_equal(layer_acts_init(&acts, &SMALL), 0);
    int64_t th = layer_tokens(&SMALL) * SMALL.hidden;
    float *x = malloc((size_t)th * sizeof *x), *dy = malloc((size_t)th * sizeof *dy);
    float *y = malloc((size_t)th * sizeof *y), *dx = malloc((size_t)th * sizeof *dx);
    assert_true(x && dy && y && dx);
    fill(x, th, 1), fill(dy, th, 2);
    acts.seed = 77;
    twin_passes(&l, &acts, x, dy, y, dx);

    RefBufs m = {{0}, 77};
    for (int b = 0; b < LB_COUNT; b++) {
        m.b[b] = calloc((size_t)layer_buf_elems(&SMALL, (LayerBuf)b) + 1, sizeof(float));
        assert_non_null(m.b[b]);
    }
    for (int k = 0; k < LAYER_WEIGHTS; k++)
        memcpy(m.b[LB_FIRST_WEIGHT + k], l.w[k],
               (size_t)layer_buf_elems(&SMALL, (LayerBuf)(LB_FIRST_WEIGHT + k)) * sizeof(float));
    memcpy(m.b[LB_IN], x, (size_t)th * sizeof *x);
    ref_pass(&m, OP_F);
    expect_near(m.b[LB_OUT], y, th, 1e-5f, "F output");
    memcpy(m.b[LB_IN], dy, (size_t)th * sizeof *dy);
    ref_pass(&m, OP_B);
    expect_near(m.b[LB_OUT], dx, th, 1e-5f, "B input gradient");
    ref_pass(&m, OP_W);
    for (int k = 0; k < LAYER_WEIGHTS; k++)
        expect_near(m.b[LB_FIRST_GRAD + k], l.g[k],
                    layer_buf_elems(&SMALL, (LayerBuf)(LB_FIRST_GRAD + k)), 1e-5f, "W gradient");
    for (int b = 0; b < LB_COUNT; b++) free(m.b[b]);
    free(x), free(dy), free(y), free(dx);
    layer_acts_free(&acts);
    layer_free(&l);
}

/* The same, with every GEMM as the column-major call cuBLAS gets. */
static void test_ops_as_cublas_calls_reproduce_cpu_twin(void **state) {
    colmajor = 1;
    test_ops_reproduce_cpu_twin(state);
    colmajor = 0;
}

/* ---- device mapping and the scenario key ---- */

static void test_devices_per_gpu_mapping(void **state) {
    (void)state;
    for (int32_t d = 0; d < 4; d++) { // 4 devices on one H100/H200, one SM partition each
        assert_int_equal(cuda_gpu_of(d, 4), 0);
        assert_int_equal(cuda_partition_of(d, 4), d);
    }
    assert_int_equal(cuda_gpu_of(5, 4), 1);
    assert_int_equal(cuda_partition_of(5, 4), 1);
    assert_int_equal(cuda_gpus_needed(4, 4), 1);
    assert_int_equal(cuda_gpus_needed(8, 4), 2);
    assert_int_equal(cuda_gpus_needed(5, 2), 3);
    assert_int_equal(cuda_gpus_needed(8, 1), 8);
}

static void test_devices_per_gpu_key(void **state) {
    (void)state;
    const char *text = "[model]\nlayers = 4\nhidden = 64\nheads = 4\nseq_len = 16\nvocab = 64\n"
                       "[batch]\nmicro_batches = 8\n[pipeline]\nstages = 4\nschedule = 1f1b\n[hardware]\ngpu = h100\n";
    Scenario s;
    char err[SCN_ERR_MAX];
    if (scenario_parse(text, "t.scn", NULL, 0, &s, err) != 0) fail_msg("%s", err);
    assert_int_equal(s.hw.devices_per_gpu, 1);
    scenario_free(&s);
    const char *four[] = {"hardware.devices_per_gpu=4"};
    assert_int_equal(scenario_parse(text, "t.scn", four, 1, &s, err), 0);
    assert_int_equal(s.hw.devices_per_gpu, 4);
    scenario_free(&s);
    const char *zero[] = {"hardware.devices_per_gpu=0"};
    assert_int_equal(scenario_parse(text, "t.scn", zero, 1, &s, err), 2);
    assert_non_null(strstr(err, "devices_per_gpu"));
    scenario_free(&s);
}

#ifdef PIPESIM_CUDA
/* ---- the backend, without a GPU ---- */

static void test_versions(void **state) {
    (void)state;
    CudaVersions v;
    cuda_versions(&v);
    assert_true(v.nccl >= NCCL_VERSION_CODE); // the library loaded: the header's or newer
    assert_int_equal(v.runtime, CUDART_VERSION);
    assert_true(v.cublas >= 10000);
}

/* The version codes as text: closed forms of their encodings, NCCL's both sides of 2.9. */
static void test_versions_text(void **state) {
    (void)state;
    CudaVersionText t;
    cuda_versions_text(&(CudaVersions){.runtime = 12040, .driver = 13000, .nccl = 22809,
                                       .cublas = 120405}, &t);
    assert_string_equal(t.runtime, "12.4");
    assert_string_equal(t.driver, "13.0");
    assert_string_equal(t.nccl, "2.28.9");
    assert_string_equal(t.cublas, "12.4.5");
    cuda_versions_text(&(CudaVersions){.runtime = 11080, .driver = 0, .nccl = 2804,
                                       .cublas = 110000}, &t);
    assert_string_equal(t.runtime, "11.8");
    assert_string_equal(t.driver, "none");
    assert_string_equal(t.nccl, "2.8.4");
    assert_string_equal(t.cublas, "11.0.0");
    CudaVersions v;
    cuda_versions(&v);
    cuda_versions_text(&v, &t);
    char want[16];
    snprintf(want, sizeof want, "%d.%d.%d", NCCL_MAJOR, NCCL_MINOR, NCCL_PATCH);
    assert_string_equal(t.nccl, want); // the library pexec loads is the header's
}

static void test_nccl_env_recorded(void **state) {
    (void)state;
    setenv("NCCL_ZZ_TEST", "7", 1);
    setenv("NCCL_AA_TEST", "x y", 1);
    char buf[4096];
    size_t n = cuda_nccl_env(buf, sizeof buf);
    assert_int_equal(n, strlen(buf));
    const char *a = strstr(buf, "NCCL_AA_TEST=x y\n"), *z = strstr(buf, "NCCL_ZZ_TEST=7\n");
    assert_true(a && z && a < z); // sorted
    char tiny[8];
    assert_int_equal(cuda_nccl_env(tiny, sizeof tiny), 7);
    unsetenv("NCCL_ZZ_TEST"), unsetenv("NCCL_AA_TEST");
}

/* How many GPUs; skips the calling test, with cudaGetDeviceCount's reason, when none. */
static int gpus_or_skip(void) {
    char why[256];
    int n = cuda_device_count(why, sizeof why);
    if (n == 0) {
        printf("# skipped: no CUDA device visible (%s)\n", why);
        skip();
    }
    return n;
}

static void test_no_device_says_why(void **state) {
    (void)state;
    char why[256] = "";
    int n = cuda_device_count(why, sizeof why);
    if (n > 0) {
        printf("# skipped: %d CUDA device(s) visible, nothing to report\n", n);
        skip();
    }
    assert_non_null(strstr(why, "cudaGetDeviceCount"));
}

/* ---- on a GPU ---- */

static void round_bf16(float *v, int64_t n) {
    for (int64_t i = 0; i < n; i++) v[i] = layer_bf16_to_float(layer_bf16_from_float(v[i]));
}

static void test_bf16_rounding(void **state) {
    (void)state;
    assert_int_equal(layer_bf16_from_float(1.0f), 0x3f80);
    assert_int_equal(layer_bf16_from_float(-2.0f), 0xc000);
    float halfway = layer_bf16_to_float(0x3f80) + 0x1p-8f; // ties go to the even 0x3f80
    assert_int_equal(layer_bf16_from_float(halfway), 0x3f80);
    assert_true(layer_bf16_to_float(layer_bf16_from_float(3.14159f)) == 3.140625f);
}

static void *upload_bf16(const float *v, int64_t n) {
    uint16_t *h = malloc((size_t)n * 2);
    void *d = NULL;
    assert_non_null(h);
    for (int64_t i = 0; i < n; i++) h[i] = layer_bf16_from_float(v[i]);
    assert_int_equal(cudaMalloc(&d, (size_t)n * 2), cudaSuccess);
    assert_int_equal(cudaMemcpy(d, h, (size_t)n * 2, cudaMemcpyHostToDevice), cudaSuccess);
    free(h);
    return d;
}

static void download_bf16(const void *d, float *v, int64_t n) {
    uint16_t *h = malloc((size_t)n * 2);
    assert_non_null(h);
    assert_int_equal(cudaMemcpy(h, d, (size_t)n * 2, cudaMemcpyDeviceToHost), cudaSuccess);
    for (int64_t i = 0; i < n; i++) v[i] = layer_bf16_to_float(h[i]);
    free(h);
}

/* The CUDA layer's F, B and W against the CPU twin on bf16-exact weights and inputs. */
static void test_gpu_layer_matches_cpu_twin(void **state) {
    (void)state;
    gpus_or_skip();
    // seq > 32: the softmax kernel's loop over a row runs more than once per lane
    const LayerShape sh = {.samples = 2, .seq = 48, .hidden = 64, .heads = 4, .ffn = 256,
                           .dropout = 0.1f};
    Layer cpu, back;
    LayerActs acts;
    assert_int_equal(layer_init(&cpu, &sh, 11), 0);
    assert_int_equal(layer_init(&back, &sh, 11), 0);
    assert_int_equal(layer_acts_init(&acts, &sh), 0);
    int64_t th = layer_tokens(&sh) * sh.hidden;
    for (int k = 0; k < LAYER_WEIGHTS; k++)
        round_bf16(cpu.w[k], layer_buf_elems(&sh, (LayerBuf)(LB_FIRST_WEIGHT + k)));
    acts.seed = 5;
    float *x = malloc((size_t)th * 4), *dy = malloc((size_t)th * 4), *y = malloc((size_t)th * 4),
          *dx = malloc((size_t)th * 4), *got = malloc((size_t)th * 4);
    assert_true(x && dy && y && dx && got);
    fill(x, th, 5), fill(dy, th, 6);
    round_bf16(x, th), round_bf16(dy, th);
    twin_passes(&cpu, &acts, x, dy, y, dx);

    cudaStream_t st;
    assert_int_equal(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking), cudaSuccess);
    char why[256];
    LayerGpuCtx *c = NULL;
    LayerGpu gl;
    LayerGpuActs ga;
    if (layer_gpu_ctx_create(&c, &sh, st, why, sizeof why) != 0 ||
        layer_gpu_upload(c, &cpu, &gl, why, sizeof why) != 0 ||
        layer_gpu_acts_alloc(c, &ga, why, sizeof why) != 0)
        fail_msg("%s", why);
    ga.seed = 5;
    void *dx_in = upload_bf16(x, th), *d_dy = upload_bf16(dy, th), *d_out = NULL;
    assert_int_equal(cudaMalloc(&d_out, (size_t)th * 2), cudaSuccess);
    if (layer_gpu_pass(c, OP_F, &gl, &ga, dx_in, d_out, NULL, why, sizeof why) != 0)
        fail_msg("%s", why);
    assert_int_equal(cudaStreamSynchronize(st), cudaSuccess);
    download_bf16(d_out, got, th);
    expect_near(got, y, th, 3e-2f, "GPU F output");
    if (layer_gpu_pass(c, OP_B, &gl, &ga, d_dy, d_out, NULL, why, sizeof why) != 0 ||
        layer_gpu_pass(c, OP_W, &gl, &ga, NULL, NULL, NULL, why, sizeof why) != 0)
        fail_msg("%s", why);
    assert_int_equal(cudaStreamSynchronize(st), cudaSuccess);
    download_bf16(d_out, got, th);
    expect_near(got, dx, th, 3e-2f, "GPU B input gradient");
    if (layer_gpu_grads(c, &gl, &back, why, sizeof why) != 0) fail_msg("%s", why);
    for (int k = 0; k < LAYER_WEIGHTS; k++)
        expect_near(back.g[k], cpu.g[k], layer_buf_elems(&sh, (LayerBuf)(LB_FIRST_GRAD + k)),
                    3e-2f, "GPU weight gradient");
    layer_gpu_acts_free(c, &ga);
    assert_int_equal(cudaStreamSynchronize(st), cudaSuccess);
    layer_gpu_free(&gl);
    layer_gpu_ctx_free(c);
    cudaFree(dx_in), cudaFree(d_dy), cudaFree(d_out);
    cudaStreamDestroy(st);
    free(x), free(dy), free(y), free(dx), free(got);
    layer_acts_free(&acts);
    layer_free(&cpu), layer_free(&back);
}

static const LayerShape PIPE = {.samples = 1, .seq = 48, .hidden = 64, .heads = 4, .ffn = 256};
#define PIPE_LAYERS 4

static Plan plan_of(int32_t p) {
    Plan pl = {.devices = p, .chunks = 1, .stages = p, .pipes = 1, .gpus_per_node = 8};
    pl.layers = calloc((size_t)p, sizeof *pl.layers);
    pl.first_layer = calloc((size_t)p, sizeof *pl.first_layer);
    assert_true(pl.layers && pl.first_layer);
    for (int32_t st = 0; st < p; st++)
        pl.layers[st] = PIPE_LAYERS / p, pl.first_layer[st] = st * (PIPE_LAYERS / p);
    return pl;
}

/* Runs sched on p devices sharing GPUs k at a time (green contexts when green, else
 * streams); returns the runtime, for its gradients. */
static Exec *run_pipeline(const char *sched, int32_t p, int32_t k, int green, Program *pr,
                          Plan *pl, Timeline *tl) {
    SchedParams sp = {.devices = p, .chunks = 1, .micro_batches = 4, .iterations = 1};
    SchedIssue issue;
    char why[512];
    assert_int_equal(sched_find(sched)->build(&sp, pr, &issue), 0);
    assert_int_equal(program_check(pr, why, sizeof why), 0);
    *pl = plan_of(p);
    ExecSpec spec = {.pr = pr, .pl = pl, .shape = PIPE, .seed = 9, .iterations = 1,
                     .watchdog_s = 20, .devices_per_gpu = k, .green = green, .group = 1,
                     .warmup = 1};
    Exec *rt = NULL;
    if (exec_create(&spec, &exec_cuda_threads, &rt, why, sizeof why) != 0)
        fail_msg("create: %s", why);
    if (exec_run(rt, tl, why, sizeof why) != 0) fail_msg("%s: run: %s", sched, why);
    return rt;
}

/* sched on p devices of one GPU gives the one-device run's gradients; one compute row per
 * op, a send and a receive row per transfer (2(p-1) per micro-batch). */
static void expect_pipeline_matches(const char *sched, int32_t p, int green) {
    Program one = {0}, many = {0};
    Plan pl1, pln;
    Timeline t1 = {0}, tn = {0};
    Exec *r1 = run_pipeline("1f1b", 1, 1, 0, &one, &pl1, &t1);
    Exec *rn = run_pipeline(sched, p, p, green, &many, &pln, &tn);
    int sms = 0, gpus = 0;
    CudaPartition part = cuda_exec_partition(rn, &sms, &gpus);
    assert_int_equal(gpus, 1);
    if (!green) assert_int_equal(part, CUDA_STREAMS);
    // asked for, green contexts must be what ran on a Hopper GPU (CUDA 12.4+ drivers have them):
    // a silent fallback to streams would measure something else; p partitions fit the GPU
    struct cudaDeviceProp prop;
    assert_int_equal(cudaGetDeviceProperties(&prop, 0), cudaSuccess);
    if (green) {
        assert_int_equal(part, CUDA_GREEN_CONTEXTS);
        assert_true(sms > 0 && sms * p <= prop.multiProcessorCount);
    }
    printf("# %s: %d devices on one GPU as %s (%d SMs each)\n", sched, p,
           part == CUDA_GREEN_CONTEXTS ? "green contexts" : "streams", sms);
    char why[256];
    int32_t per = PIPE_LAYERS / p;
    for (int32_t g = 0; g < PIPE_LAYERS; g++) {
        Layer a, b;
        assert_int_equal(layer_init(&a, &PIPE, 1), 0);
        assert_int_equal(layer_init(&b, &PIPE, 1), 0);
        if (exec_grads(r1, 0, g, &a, why, sizeof why) != 0 ||
            exec_grads(rn, g / per, g % per, &b, why, sizeof why) != 0)
            fail_msg("%s", why);
        for (int k = 0; k < LAYER_WEIGHTS; k++)
            expect_near(b.g[k], a.g[k], layer_buf_elems(&PIPE, (LayerBuf)(LB_FIRST_GRAD + k)),
                        1e-3f, "pipelined weight gradient");
        layer_free(&a), layer_free(&b);
    }
    size_t sends = 0;
    for (size_t i = 0; i < tn.n; i++) sends += tn.ops[i].stream == STREAM_SEND;
    assert_int_equal(sends, (size_t)(2 * (p - 1) * 4));
    assert_int_equal(tn.n, (size_t)many.nops + 2 * sends);
    for (size_t i = 0; i < tn.n; i++) assert_true(tn.ops[i].end_ns >= tn.ops[i].start_ns);
    exec_free(r1), exec_free(rn);
    program_free(&one), program_free(&many), plan_free(&pl1), plan_free(&pln);
    timeline_free(&t1), timeline_free(&tn);
}

static void test_gpu_two_stages_one_gpu_match_one_device(void **state) {
    (void)state;
    gpus_or_skip();
    expect_pipeline_matches("1f1b", 2, 1); // green contexts where the driver has them
    expect_pipeline_matches("1f1b", 2, 0); // plain streams
}

/* Device 1's first op never finishes on its own: the watchdog names it, status 1 (an
 * environment failure, as on the CPU backend). */
static void test_gpu_watchdog_names_the_stuck_op(void **state) {
    (void)state;
    gpus_or_skip();
    SchedParams sp = {.devices = 2, .chunks = 1, .micro_batches = 4, .iterations = 1};
    SchedIssue issue;
    Program pr;
    char why[512];
    assert_int_equal(sched_find("1f1b")->build(&sp, &pr, &issue), 0);
    Plan pl = plan_of(2);
    ExecSpec spec = {.pr = &pr, .pl = &pl, .shape = PIPE, .seed = 9, .iterations = 1,
                     .watchdog_s = 0.5, .devices_per_gpu = 2, .green = 0, .group = 1,
                     .warmup = 1, .hang = 1, .hang_device = 1};
    Exec *rt = NULL;
    Timeline tl = {0};
    if (exec_create(&spec, &exec_cuda_threads, &rt, why, sizeof why) != 0)
        fail_msg("create: %s", why);
    assert_int_equal(exec_run(rt, &tl, why, sizeof why), 1);
    if (!strstr(why, "device 1 op 0 (F mb 0 chunk 0) did not complete within 0.5 s (watchdog"))
        fail_msg("why: %s", why);
    for (size_t i = 0; i < tl.n; i++) // what completed is kept; the stuck device has no row
        assert_false(tl.ops[i].device == 1 && tl.ops[i].stream == STREAM_COMPUTE);
    assert_true(tl.n > 0);
    exec_free(rt);
    program_free(&pr), plan_free(&pl), timeline_free(&tl);
}

static void test_gpu_zb_h1_four_devices_one_gpu(void **state) {
    (void)state;
    gpus_or_skip();
    expect_pipeline_matches("zb-h1", 4, 1); // separate W ops, four partitions
}
#endif

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ops_flops_equal_closed_form),
        cmocka_unit_test(test_ops_counts_and_bytes),
        cmocka_unit_test(test_ops_reproduce_cpu_twin),
        cmocka_unit_test(test_ops_as_cublas_calls_reproduce_cpu_twin),
        cmocka_unit_test(test_devices_per_gpu_mapping),
        cmocka_unit_test(test_devices_per_gpu_key),
#ifdef PIPESIM_CUDA
        cmocka_unit_test(test_versions),
        cmocka_unit_test(test_versions_text),
        cmocka_unit_test(test_nccl_env_recorded),
        cmocka_unit_test(test_no_device_says_why),
        cmocka_unit_test(test_bf16_rounding),
        cmocka_unit_test(test_gpu_layer_matches_cpu_twin),
        cmocka_unit_test(test_gpu_two_stages_one_gpu_match_one_device),
        cmocka_unit_test(test_gpu_zb_h1_four_devices_one_gpu),
        cmocka_unit_test(test_gpu_watchdog_names_the_stuck_op),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
