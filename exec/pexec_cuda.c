/* exec/pexec_cuda.c: pexec's CUDA path: checks that a GPU is visible, runs the Program with
 * the CUDA runtime, and adds the versions and partitioning to the run's metrics (numbers) and
 * its environment (text: versions, GPUs, NCCL_* and CUDA_* variables; sim/runenv.h), which
 * it also prints. */
#include "exec/pexec_cuda.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec/runtime_cuda.h"

/* PEXEC_CUDA_PARTITION=streams turns green contexts off; PEXEC_NCCL_GROUP=0 posts each
 * transfer in its own NCCL group. */
static int env_is(const char *name, const char *value) {
    const char *v = getenv(name);
    return v && strcmp(v, value) == 0;
}

static void add_metrics(Run *r, const CudaRuntime *rt) {
    CudaVersions v;
    cuda_versions(&v);
    int sms = 0, gpus = 0;
    CudaPartition part = cuda_runtime_partition(rt, &sms, &gpus);
    const StoreMetric m[] = {{"cuda_runtime_version", v.runtime}, {"cuda_driver_version", v.driver},
                             {"nccl_version", v.nccl},            {"cublas_version", v.cublas},
                             {"gpus", gpus}, {"devices_per_gpu", (double)r->scn.hw.devices_per_gpu},
                             {"gpu_partition", part},             {"sms_per_device", sms}};
    for (size_t i = 0; i < sizeof m / sizeof m[0] && r->nextra < RUN_MAX_EXTRA; i++)
        r->extra[r->nextra++] = m[i];
}

/* The run's environment, before it runs (a failed run keeps it): the versions as text, the
 * GPUs this process drives (gpu<i>_name, gpu<i>_compute_capability, i the run's GPU number),
 * and the NCCL_* and CUDA_* variables. Under mpirun rank 0 stores the run, so its GPU is the one
 * named. 0, or -1 out of memory. */
static int add_env(Run *r, const CudaRuntime *rt) {
    CudaVersions v;
    CudaVersionText t;
    cuda_versions(&v);
    cuda_versions_text(&v, &t);
    const char *const pairs[][2] = {{"backend", "cuda"}, {"cuda_runtime", t.runtime},
                                    {"cuda_driver", t.driver}, {"nccl", t.nccl},
                                    {"cublas", t.cublas}};
    int rc = 0;
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0] && rc == 0; i++)
        rc = runenv_add(&r->env, pairs[i][0], pairs[i][1]);
    enum { MAX_GPUS = 64 }; // named one by one; more than this in one process is not seen
    int gpu[MAX_GPUS], ordinal[MAX_GPUS];
    int n = cuda_runtime_gpus_used(rt, gpu, ordinal, MAX_GPUS);
    for (int i = 0; i < n && rc == 0; i++) { // under MPI: this rank's GPU
        char key[48], name[256], cc[16], why[256];
        int major = 0, minor = 0;
        if (cuda_gpu_describe(ordinal[i], name, sizeof name, &major, &minor, why, sizeof why))
            snprintf(name, sizeof name, "? (%.200s)", why);
        snprintf(cc, sizeof cc, "%d.%d", major, minor);
        snprintf(key, sizeof key, "gpu%d_name", gpu[i]);
        rc = runenv_add(&r->env, key, name);
        snprintf(key, sizeof key, "gpu%d_compute_capability", gpu[i]);
        if (rc == 0) rc = runenv_add(&r->env, key, cc);
    }
    if (rc == 0) rc = runenv_add_vars(&r->env, "NCCL_") < 0 ? -1 : 0;
    if (rc == 0) rc = runenv_add_vars(&r->env, "CUDA_") < 0 ? -1 : 0;
    return rc;
}

static void print_environment(const CudaRuntime *rt) {
    static const char *parts[] = {"whole GPU per device", "streams sharing each GPU (no green "
                                  "contexts: SMs are not partitioned)", "green contexts"};
    CudaVersions v;
    cuda_versions(&v);
    int sms = 0, gpus = 0;
    CudaPartition part = cuda_runtime_partition(rt, &sms, &gpus);
    fprintf(stderr, "pexec: CUDA runtime %d, driver %d, NCCL %d, cuBLAS %d; %d GPU(s), %s",
            v.runtime, v.driver, v.nccl, v.cublas, gpus, parts[part]);
    if (sms) fprintf(stderr, " of %d SMs each", sms);
    char env[2048];
    size_t n = cuda_nccl_env(env, sizeof env);
    fprintf(stderr, "\n%s%s", n ? "pexec: NCCL environment:\n" : "", env);
}

int pexec_cuda_execute(const RunOptions *o, Run *r, int mpi) {
    char why[512];
    if (o->drop_send >= 0 || o->rendezvous) {
        fprintf(stderr, "pexec: --%s is the CPU backend's (its channels); drop it or use "
                "--backend cpu\n", o->drop_send >= 0 ? "drop-send" : "rendezvous");
        return 2;
    }
    if (cuda_device_count(why, sizeof why) == 0) {
        fprintf(stderr, "pexec: --backend cuda: no CUDA device visible (%s); run on a machine "
                "with an NVIDIA GPU or use --backend cpu\n", why);
        return 1;
    }
    const ScnModel *m = &r->scn.model;
    CudaSpec spec = {.pr = &r->prog, .pl = &r->plan, .seed = 1,
                     .shape = {.samples = (int32_t)r->scn.batch.micro_batch_size,
                               .seq = (int32_t)m->seq_len, .hidden = (int32_t)m->hidden,
                               .heads = (int32_t)m->heads, .ffn = (int32_t)m->ffn_hidden},
                     .iterations = (int32_t)r->scn.batch.iterations, .watchdog_s = o->watchdog_s,
                     .devices_per_gpu = (int32_t)r->scn.hw.devices_per_gpu,
                     .green = !env_is("PEXEC_CUDA_PARTITION", "streams"),
                     .group = !env_is("PEXEC_NCCL_GROUP", "0"), .warmup = 1};
    CudaRuntime *rt = NULL;
    int rc = 1, ran = 0;
#ifdef PIPESIM_MPI
    if (mpi) rc = cuda_runtime_create_rank(&spec, &rt, why, sizeof why);
#endif
    if (!mpi) rc = cuda_runtime_create(&spec, &rt, why, sizeof why);
    else if (!rt) snprintf(why, sizeof why, "this pexec was built without MPI");
    if (rc == 0 && add_env(r, rt) != 0) rc = 1, snprintf(why, sizeof why, "out of host memory");
    if (rc == 0) {
        if (!o->quiet && (!mpi || cuda_runtime_rank(rt) == 0)) print_environment(rt);
        double t0 = run_now_ms();
        rc = cuda_runtime_run(rt, &r->tl, why, sizeof why);
        ran = 1;
        r->wall_ms = run_now_ms() - t0;
    }
    if (rc == 0) add_metrics(r, rt);
    else fprintf(stderr, "pexec: --backend cuda: %s: %s\n", r->scn.path, why);
    if (rc != 0 && ran && (!mpi || cuda_runtime_rank(rt) == 0))
        run_store_failed(o, r, why); // the ops measured before the failure, marked failed
    cuda_runtime_free(rt);
    return rc;
}
