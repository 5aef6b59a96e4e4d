/* sim/cli/pexec.c: the pexec command: the same scenario and the same checked Program as psim,
 * run for real (exec/exec.h), measured, stored and printed like psim's runs (sim/run/run.h),
 * so the two can be compared. Started plainly, it runs one thread per worker (CPU: p d c t of
 * them, one per pipeline device, replica, context rank and tensor rank) or per GPU (--backend
 * cuda, one replica without tensor or context parallelism); started by mpirun (a build with
 * MPI), one rank per worker or GPU, rank 0 storing and printing. With the data-parallel tail
 * (d c > 1 or costs.optimizer_ms set, as psim's) every iteration ends with the gradient
 * all-reduces over the replicas and their context ranks and an SGD step of learning rate
 * PEXEC_SGD_LR. Exit statuses as psim's; a run that fails while it runs (a receive that
 * mismatches, a watchdog that fires, a peer that died) is an executor failure, 1, with host
 * and rank in the message, and is stored as failed with the rows measured until then.
 * With the CUDA backend the run also stores the CUDA, NCCL and cuBLAS versions, the GPUs and
 * how they were partitioned (metrics and environment). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef PIPESIM_MPI
#include <mpi.h>
#endif

#include "exec/exec.h"
#ifdef PIPESIM_CUDA
#include "exec/cuda.h"
#endif
#include "kernels/layer.h"
#include "sim/model/cost.h"
#include "sim/run/run.h"
#include "sim/sched/sched_file.h"

#ifdef PIPESIM_MPI
/* mpirun ends every rank with SIGTERM (then SIGKILL 1 s later) as soon as one rank dies,
 * unless started with --enable-recovery; each rank then says so in one line. Silent once the
 * rank reported a failure itself (MPI_Abort ends the job the same way). */
static volatile sig_atomic_t ending;
static char term_msg[512];

static void on_term(int sig) {
    (void)sig;
    if (!ending && write(2, term_msg, strlen(term_msg)) < 0) _exit(1);
    _exit(1);
}

static void on_term_install(int rank) {
    char host[64] = "?";
    gethostname(host, sizeof host - 1);
    snprintf(term_msg, sizeof term_msg, "pexec: rank %d on %s: ended by mpirun (SIGTERM) "
             "before this rank finished: another rank died or ended the job, or mpirun was "
             "interrupted; if a rank died, nothing is stored (under mpirun --enable-recovery "
             "the survivors end on the watchdog and rank 0 stores the run as failed); when "
             "rank 0 reported a failure first, its line says whether it stored the run\n",
             rank, host);
    signal(SIGTERM, on_term);
}
#endif

/* The SGD step's learning rate: small, so a run of a few iterations stays near its start,
 * but really applied to the weights. */
#define PEXEC_SGD_LR 1e-3f

/* PEXEC_GRADS_OUT=PREFIX (for tests): after a complete run every worker of this process
 * writes its layers to PREFIX.W (W its worker index): one line per element, "g STAGE LAYER
 * WEIGHT INDEX VALUE" for the gradients and "w ..." for the weights, %.9g. 0, or 1 with a
 * message. */
static int layers_out(Exec *ex, const Run *r, const char *prefix) {
    int32_t D = (int32_t)scenario_data(&r->scn), T = (int32_t)scenario_tensor(&r->scn);
    int32_t C = (int32_t)scenario_context(&r->scn);
    for (int32_t w = 0; w < exec_workers(ex); w++) {
        if (!exec_worker_here(ex, w)) continue;
        int32_t trank = w % T, crank = w / T % C, replica = w / (T * C) % D, d = w / (D * C * T);
        char path[4096], why[256];
        snprintf(path, sizeof path, "%s.%d", prefix, w);
        FILE *f = fopen(path, "w");
        if (!f) return fprintf(stderr, "pexec: PEXEC_GRADS_OUT: cannot write %s\n", path), 1;
        LayerShape sh = exec_shape(ex, trank);
        int rc = 0;
        for (int32_t st = 0; st < r->plan.stages && rc == 0; st++) {
            if (r->prog.device_of[st] != d) continue;
            for (int32_t k = 0; k < r->plan.layers[st] && rc == 0; k++) {
                Layer l;
                if ((rc = layer_init(&l, &sh, 0)) != 0) break;
                rc = exec_layer_of(ex, replica, crank, trank, st, k, &l, why, sizeof why);
                for (int b = 0; b < LAYER_WEIGHTS && rc == 0; b++) {
                    int64_t n = layer_buf_elems(&sh, (LayerBuf)(LB_FIRST_GRAD + b));
                    for (int64_t e = 0; e < n; e++)
                        fprintf(f, "g %d %d %d %lld %.9g\nw %d %d %d %lld %.9g\n", st, k, b,
                                (long long)e, (double)l.g[b][e], st, k, b, (long long)e,
                                (double)l.w[b][e]);
                }
                layer_free(&l);
            }
        }
        if (fclose(f) != 0 || rc != 0)
            return fprintf(stderr, "pexec: PEXEC_GRADS_OUT: cannot write %s\n", path), 1;
    }
    return 0;
}

/* After a failed run: says why (with host or rank), stores the run as failed with its rows
 * (rank 0), and on ranks waits until rank 0 has stored it. Returns 1. */
static int failed_run(const RunOptions *o, Run *r, Exec *ex, int mpi, int rank,
                      const char *why) {
    char error[1024], host[64] = "?";
    gethostname(host, sizeof host - 1);
    if (mpi) snprintf(error, sizeof error, "%s", why); // "rank R on HOST: ..."
    else snprintf(error, sizeof error, "host %s: %s", host, why);
    fprintf(stderr, "pexec: %s: %s\n", r->scn.path, error);
#ifdef PIPESIM_MPI
    ending = 1;
#endif
    if (rank == 0) run_store_failed(o, r, error);
#ifdef PIPESIM_MPI
    if (mpi && ex && exec_settle(ex) != 0)
        fprintf(stderr, "pexec: rank %d on %s: rank 0 never confirmed storing the run (it died "
                "or stalled), so it is not stored\n", rank, host);
#else
    (void)ex;
#endif
    return 1;
}

#ifdef PIPESIM_MPI
/* Under mpirun every rank parses the scenario itself: ranks started with different --set
 * values, or a different file, would run different programs and meet only at the watchdog.
 * Each rank's resolved scenario (scenario_format: every key as it was taken) is compared
 * with rank 0's; on any difference every rank returns 2 and rank 0 names the first rank and
 * line that differ. rc is this rank's status so far (a rank that could not parse differs). */
static int ranks_agree(int rc, const Run *r, int rank, int size) {
    char *mine = rc == 0 ? scenario_format(&r->scn) : NULL;
    long long len = mine ? (long long)strlen(mine) : -1;
    long long *lens = malloc((size_t)size * sizeof *lens);
    if (!lens || MPI_Allgather(&len, 1, MPI_LONG_LONG, lens, 1, MPI_LONG_LONG,
                               MPI_COMM_WORLD) != MPI_SUCCESS) {
        free(mine), free(lens);
        return 1;
    }
    char *first = malloc((size_t)(lens[0] > 0 ? lens[0] : 0) + 1);
    int ok = first != NULL && lens[0] >= 0;
    if (ok && rank == 0) memcpy(first, mine, (size_t)lens[0] + 1);
    if (ok) MPI_Bcast(first, (int)lens[0] + 1, MPI_CHAR, 0, MPI_COMM_WORLD);
    int differs = !ok || !mine || strcmp(mine, first) != 0, any = 0;
    MPI_Allreduce(&differs, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (any) { // say where: this rank's first line that is not rank 0's
        char what[256] = "";
        if (differs && rank != 0 && mine && ok) {
            const char *a = first, *b = mine;
            int line = 1;
            while (*a && *a == *b) line += *a == '\n', a++, b++;
            while (a > first && a[-1] != '\n') a--, b--;
            snprintf(what, sizeof what, "rank %d's resolved scenario differs at line %d: rank 0 "
                     "has '%.*s', rank %d '%.*s'", rank, line, (int)strcspn(a, "\n"), a, rank,
                     (int)strcspn(b, "\n"), b);
        } else if (differs && rank != 0) {
            snprintf(what, sizeof what, "rank %d could not load the scenario", rank);
        }
        char *all = calloc((size_t)size, sizeof what);
        if (all)
            MPI_Gather(what, sizeof what, MPI_CHAR, all, sizeof what, MPI_CHAR, 0, MPI_COMM_WORLD);
        for (int k = 1; rank == 0 && all && k < size; k++)
            if (all[(size_t)k * sizeof what]) {
                fprintf(stderr, "pexec: %s: the ranks were started with different scenarios "
                        "(each rank must get the same file and --set options): %s\n",
                        r->scn.path, all + (size_t)k * sizeof what);
                break;
            }
        free(all);
    }
    free(mine), free(first), free(lens);
    return any ? (rc ? rc : 2) : rc;
}
#endif

/* What a CPU run ran on, beside every run's pairs (runenv_add_base): the backend, OpenBLAS's
 * build, the MPI library of a build with MPI (callable before MPI_Init), and the OPENBLAS_* and
 * OMP_* variables that steer the BLAS threads. Collected before the run, so a failed run
 * carries it too. Returns 0, or 1 out of memory. */
static int cpu_env(RunEnv *env) {
    int rc = runenv_add(env, "blas_config", layer_blas_config());
#ifdef PIPESIM_MPI
    char lib[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    if (rc == 0 && MPI_Get_library_version(lib, &len) == MPI_SUCCESS)
        rc = runenv_add(env, "mpi_library", lib);
#endif
    if (rc == 0) rc = runenv_add_vars(env, "OPENBLAS_") < 0 ? -1 : 0;
    if (rc == 0) rc = runenv_add_vars(env, "OMP_") < 0 ? -1 : 0;
    return rc != 0;
}

#ifdef PIPESIM_CUDA
/* PEXEC_CUDA_PARTITION=streams turns green contexts off; PEXEC_NCCL_GROUP=0 posts each
 * transfer in its own NCCL group. */
static int env_is(const char *name, const char *value) {
    const char *v = getenv(name);
    return v && strcmp(v, value) == 0;
}

/* The versions and partitioning as run metrics (numbers). */
static void cuda_metrics(Run *r, const Exec *ex) {
    CudaVersions v;
    cuda_versions(&v);
    int sms = 0, gpus = 0;
    CudaPartition part = cuda_exec_partition(ex, &sms, &gpus);
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
static int cuda_env(RunEnv *env, const Exec *ex) {
    CudaVersions v;
    CudaVersionText t;
    cuda_versions(&v);
    cuda_versions_text(&v, &t);
    const char *const pairs[][2] = {{"cuda_runtime", t.runtime}, {"cuda_driver", t.driver},
                                    {"nccl", t.nccl}, {"cublas", t.cublas}};
    int rc = 0;
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0] && rc == 0; i++)
        rc = runenv_add(env, pairs[i][0], pairs[i][1]);
    enum { MAX_GPUS = 64 }; // named one by one; more than this in one process is not seen
    int gpu[MAX_GPUS], ordinal[MAX_GPUS];
    int n = cuda_exec_gpus_used(ex, gpu, ordinal, MAX_GPUS);
    for (int i = 0; i < n && rc == 0; i++) { // under MPI: this rank's GPU
        char key[48], name[256], cc[16], why[256];
        int major = 0, minor = 0;
        if (cuda_gpu_describe(ordinal[i], name, sizeof name, &major, &minor, why, sizeof why))
            snprintf(name, sizeof name, "? (%.200s)", why);
        snprintf(cc, sizeof cc, "%d.%d", major, minor);
        snprintf(key, sizeof key, "gpu%d_name", gpu[i]);
        rc = runenv_add(env, key, name);
        snprintf(key, sizeof key, "gpu%d_compute_capability", gpu[i]);
        if (rc == 0) rc = runenv_add(env, key, cc);
    }
    if (rc == 0) rc = runenv_add_vars(env, "NCCL_") < 0 ? -1 : 0;
    if (rc == 0) rc = runenv_add_vars(env, "CUDA_") < 0 ? -1 : 0;
    return rc;
}

static void cuda_print_environment(const Exec *ex) {
    static const char *parts[] = {"whole GPU per device", "streams sharing each GPU (no green "
                                  "contexts: SMs are not partitioned)", "green contexts"};
    CudaVersions v;
    cuda_versions(&v);
    int sms = 0, gpus = 0;
    CudaPartition part = cuda_exec_partition(ex, &sms, &gpus);
    fprintf(stderr, "pexec: CUDA runtime %d, driver %d, NCCL %d, cuBLAS %d; %d GPU(s), %s",
            v.runtime, v.driver, v.nccl, v.cublas, gpus, parts[part]);
    if (sms) fprintf(stderr, " of %d SMs each", sms);
    char env[2048];
    size_t n = cuda_nccl_env(env, sizeof env);
    fprintf(stderr, "\n%s%s", n ? "pexec: NCCL environment:\n" : "", env);
}
#endif

/* The backend --backend and the launch ask for, or NULL with a message (exit status in *rc). */
static const ExecBackend *backend_of(const RunOptions *o, int mpi, int *rc) {
    (void)mpi; // unused in a build without MPI (with CUDA or not)
    *rc = 1;
    if (o->backend == RUN_BACKEND_CPU) {
#ifdef PIPESIM_MPI
        if (mpi) return &exec_cpu_ranks;
#endif
        return &exec_cpu_threads;
    }
#ifdef PIPESIM_CUDA
    char why[512];
    if (o->drop_send >= 0 || o->rendezvous) {
        fprintf(stderr, "pexec: --%s is the CPU backend's (its channels); drop it or use "
                "--backend cpu\n", o->drop_send >= 0 ? "drop-send" : "rendezvous");
        *rc = 2;
        return NULL;
    }
    if (o->kill_after > 0) { // refused rather than silently ignored, until the CUDA lanes have it
        fprintf(stderr, "pexec: --%s is the CPU backend's fault injection (not implemented "
                "on the CUDA backend); drop it or use --backend cpu\n",
                o->stall ? "stall-after" : "kill-after");
        *rc = 2;
        return NULL;
    }
    if (cuda_device_count(why, sizeof why) == 0) {
        fprintf(stderr, "pexec: --backend cuda: no CUDA device visible (%s); run on a machine "
                "with an NVIDIA GPU or use --backend cpu\n", why);
        return NULL;
    }
#ifdef PIPESIM_MPI
    if (mpi) return &exec_cuda_ranks;
#endif
    return &exec_cuda_threads;
#else
    fprintf(stderr, "pexec: --backend cuda: this pexec was built without the CUDA backend (nvcc "
                    "was not found at build time); install the CUDA toolkit and rebuild (make "
                    "clean all CUDA_HOME=...), or use --backend cpu\n");
    return NULL;
#endif
}

/* The measured split of every device's time (exec_split) into r->split and r->pass_split,
 * as psim's prediction is laid out; left NULL when some device's was not measured here (CUDA,
 * a device of another MPI rank). Returns 0, or -1 when out of memory. */
static int measured_split(Run *r, const Exec *ex) {
    int32_t p = r->prog.devices;
    double *sp = calloc((size_t)p * COST_SPLIT, sizeof *sp);
    double *ps = calloc((size_t)p * 3 * COST_SPLIT, sizeof *ps);
    if (!sp || !ps) return free(sp), free(ps), fprintf(stderr, "pexec: out of memory\n"), -1;
    for (int32_t d = 0; d < p; d++) {
        double ms[3][LC_COUNT + 1];
        if (exec_split(ex, d, ms) != 0) return free(sp), free(ps), 0;
        for (int pass = 0; pass < 3; pass++)
            for (int i = 0; i < COST_SPLIT; i++) {
                ps[(d * 3 + pass) * COST_SPLIT + i] = ms[pass][i];
                sp[d * COST_SPLIT + i] += ms[pass][i];
            }
    }
    r->split = sp, r->pass_split = ps;
    return 0;
}

/* Bytes of memory the system can still give (MemAvailable), or -1 when unknown. */
static double host_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    double kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %lf kB", &kib) == 1) break;
    if (f) fclose(f);
    return kib < 0 ? -1 : kib * 1024;
}

/* Refuses (1, with what it needs and a --scale that would fit) a run whose buffers the host
 * cannot hold, before allocating any: otherwise it grows until the kernel kills it. */
static int host_memory_refused(const ExecSpec *spec, int mpi, int32_t scale) {
    double need = exec_host_bytes(spec, mpi), have = host_available();
    if (have < 0 || need <= have) return 0;
    int32_t k = 2;
    for (; k <= 4096; k *= 2) {
        ExecSpec small = *spec;
        small.shape.hidden /= k, small.shape.ffn /= k, small.shape.seq /= k;
        small.shape.heads = spec->shape.heads / k > 0 ? spec->shape.heads / k : 1;
        if (small.shape.hidden < 1 || small.shape.seq < 1 || exec_host_bytes(&small, mpi) <= have)
            break;
    }
    fprintf(stderr, "pexec: this run needs about %.1f GiB of host memory%s (fp32 weights, "
            "gradients and activations in flight), more than the %.1f GiB available; try "
            "--scale %d%s\n", need / 1073741824.0, mpi ? " on one rank" : "",
            have / 1073741824.0, k * scale, scale > 1 ? " (in all)" : "");
    return 1;
}

/* Runs r's Program on the backend --backend asks for (as MPI rank `rank` when mpi); fills
 * r->tl (on rank 0 under MPI), its environment and extra metrics. Returns an exit status. */
static int execute(const RunOptions *o, Run *r, int mpi, int rank) {
    int rc;
    if (o->backend == RUN_BACKEND_CUDA && !getenv("CUDA_DEVICE_MAX_CONNECTIONS")) {
        /* One hardware work queue per stream the backend issues to on a GPU (a compute and a
         * copy stream per partition, one per peer GPU, the warm-up's), within CUDA's 8 .. 32,
         * so that streams do not share queues and serialise; set before CUDA starts. A user's
         * own value stands (the run stores the CUDA_* variables). */
        int64_t k = r->scn.hw.devices_per_gpu > 0 ? r->scn.hw.devices_per_gpu : 1;
        int64_t gpus = (r->plan.devices + k - 1) / k, n = 2 * k + gpus;
        char v[16];
        snprintf(v, sizeof v, "%lld", (long long)(n < 8 ? 8 : n > 32 ? 32 : n));
        setenv("CUDA_DEVICE_MAX_CONNECTIONS", v, 0);
    }
    const ExecBackend *b = backend_of(o, mpi, &rc);
    if (!b) return rc;
    const ScnModel *m = &r->scn.model;
    ExecSpec spec = {.pr = &r->prog, .pl = &r->plan, .seed = 1,
                     .shape = cost_model_shape(m, r->scn.batch.micro_batch_size),
                     .iterations = (int32_t)r->scn.batch.iterations,
                     .watchdog_s = o->watchdog_s, .drop_send_of = o->drop_send,
                     .rendezvous = o->rendezvous, .kill_device = o->kill_device,
                     .kill_after = o->kill_after, .stall = o->stall,
                     .devices_per_gpu = (int32_t)r->scn.hw.devices_per_gpu, .warmup = 1,
                     .data = (int32_t)scenario_data(&r->scn),
                     .tensor = (int32_t)scenario_tensor(&r->scn),
                     .context = (int32_t)scenario_context(&r->scn),
                     .tail = scenario_has_tail(&r->scn), .lr = PEXEC_SGD_LR,
                     .zero = (int32_t)scenario_zero(&r->scn)};
    int cuda = o->backend == RUN_BACKEND_CUDA;
#ifdef PIPESIM_CUDA
    spec.green = !env_is("PEXEC_CUDA_PARTITION", "streams");
    spec.group = !env_is("PEXEC_NCCL_GROUP", "0");
#endif
    layer_set_blas_threads(1);
    if (runenv_add(&r->env, "backend", exec_backend_name(b)) != 0 || (!cuda && cpu_env(&r->env)))
        return fprintf(stderr, "pexec: out of memory\n"), 1;
    spec.shape.elem = 0, spec.shape.vocab = 0; // the executors' own (fp32), no LM head yet
    spec.shape.seqpar = r->scn.parallel.sequence && spec.tensor > 1;
    if (!cuda && host_memory_refused(&spec, mpi, o->scale)) return 1;
    char why[512];
    Exec *ex = NULL;
    rc = exec_create(&spec, b, &ex, why, sizeof why);
#ifdef PIPESIM_CUDA
    if (rc == 0 && cuda && cuda_env(&r->env, ex) != 0) rc = 1, snprintf(why, sizeof why, "out of host memory");
#endif
    if (rc != 0) {
        if (cuda) fprintf(stderr, "pexec: --backend cuda: %s: %s\n", r->scn.path, why);
        else fprintf(stderr, "pexec: %s\n", why);
        exec_free(ex);
        return rc;
    }
#ifdef PIPESIM_CUDA
    if (cuda && !o->quiet && exec_rank(ex) == 0) cuda_print_environment(ex);
#endif
    double t0 = run_now_ms();
    rc = exec_run(ex, &r->tl, why, sizeof why);
    r->wall_ms = run_now_ms() - t0;
    if (mpi && !cuda && rank == 0 && rc == 0 && !o->quiet)
        fprintf(stderr, "pexec: the ranks' clocks drifted %.1f us apart during the run\n",
                (double)exec_clock_drift_ns(ex) / 1e3);
#ifdef PIPESIM_MPI
    double lat = 0, bw = 0; // the links, fitted after the run so they do not disturb it
    if (mpi && !cuda && rc == 0 && exec_probe_links(ex, &lat, &bw) == 0 && rank == 0) {
        r->extra[r->nextra++] = (StoreMetric){"link_latency_us", lat};
        r->extra[r->nextra++] = (StoreMetric){"link_bandwidth_gbs", bw};
    }
#endif
#ifdef PIPESIM_CUDA
    if (cuda && rc == 0) cuda_metrics(r, ex);
#endif
    if (rc == 0 && rank == 0 && measured_split(r, ex) != 0) rc = 1;
    const char *grads = getenv("PEXEC_GRADS_OUT");
    if (rc == 0 && grads && *grads) rc = layers_out(ex, r, grads);
    else if (rc != 0) rc = failed_run(o, r, ex, mpi, rank, why);
    exec_free(ex);
    return rc;
}

/* Whether mpirun started this process (Open MPI's or a PMI launcher's environment). */
static int under_mpirun(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") != NULL || getenv("PMI_SIZE") != NULL;
}

int main(int argc, char **argv) {
    RunOptions o;
    int rc = run_options_parse(argc, argv, "pexec", &o);
    if (rc != 0) return rc;
    int mpi = under_mpirun(), rank = 0;
#ifdef PIPESIM_MPI
    int size = 1;
    if (mpi) {
        int provided; // a progress thread joins the worker in MPI, one at a time
        MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
        MPI_Comm_size(MPI_COMM_WORLD, &size);
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN); // a dead peer is an error
        on_term_install(rank);                                     //   code, not an abort
    }
#else
    if (mpi) {
        fprintf(stderr, "pexec: started by mpirun, but this pexec was built without MPI; "
                        "install libopenmpi-dev and rebuild (make clean all)\n");
        return 1;
    }
#endif
    Run r = {0};
    rc = run_prepare(&o, &r);
#ifdef PIPESIM_MPI
    if (mpi) rc = ranks_agree(rc, &r, rank, size);
#endif
    if (rc == 0 && !o.dump && o.backend == RUN_BACKEND_CUDA && scenario_context(&r.scn) > 1) {
        if (rank == 0)
            fprintf(stderr, "pexec: %s: parallel.context = %lld: the CUDA backend does not run "
                    "context parallelism (the GPU layer has no key/value all-gather or "
                    "position masks yet, and no NCCL collectives but sends and receives); use "
                    "--backend cpu, which runs it on threads or MPI ranks, or set "
                    "parallel.context=1\n", r.scn.path, (long long)scenario_context(&r.scn));
        rc = 2;
    }
    if (rc == 0 && !o.dump && o.backend == RUN_BACKEND_CUDA &&
        (scenario_has_tail(&r.scn) || scenario_tensor(&r.scn) > 1)) {
        if (rank == 0)
            fprintf(stderr, "pexec: %s: parallel.data = %lld, parallel.tensor = %lld%s: the CUDA "
                    "backend runs one pipeline replica without tensor parallelism or an "
                    "optimizer step (no NCCL all-reduces yet); use --backend cpu, or set "
                    "parallel.data=1 and parallel.tensor=1 and leave costs.optimizer_ms unset\n",
                    r.scn.path, (long long)r.scn.parallel.data, (long long)r.scn.parallel.tensor,
                    r.scn.costs.optimizer_ms > 0 ? ", costs.optimizer_ms set" : "");
        rc = 2;
    }
    const ScnModel *md = &r.scn.model;
    if (rc == 0 && !o.dump && md->experts > 0) { // psim prices MoE layers; no executor runs them
        if (rank == 0)
            fprintf(stderr, "pexec: %s: experts = %lld: pexec does not run mixture-of-experts "
                    "layers yet (psim simulates them); use psim, or experts = 0\n", r.scn.path,
                    (long long)md->experts);
        rc = 2;
    }
    LayerShape shape = cost_model_shape(md, 1);
    if (rc == 0 && !o.dump && o.backend == RUN_BACKEND_CUDA && !layer_shape_is_gpt(&shape)) {
        if (rank == 0)
            fprintf(stderr, "pexec: %s: kv_heads = %lld, head_dim = %lld, mlp = %s, norm = %s, "
                    "attention = %s: the CUDA backend runs GPT's layer only (multi-head "
                    "attention of width hidden, GELU, layer norm, standard attention); use "
                    "--backend cpu, which runs every layer psim prices\n", r.scn.path,
                    (long long)scenario_kv_heads(md), (long long)scenario_head_dim(md),
                    mlp_name(md->mlp), norm_name(md->norm), attention_name(md->attention));
        rc = 2;
    }
    int64_t workers = (int64_t)r.prog.devices * scenario_data(&r.scn) * // p d c t
                      scenario_context(&r.scn) * scenario_tensor(&r.scn);
#ifdef PIPESIM_MPI
    if (rc == 0 && mpi && o.backend == RUN_BACKEND_CPU && size != workers) {
        if (rank == 0)
            fprintf(stderr, "pexec: %s: mpirun started %d ranks but the scenario has stages x "
                    "data x context x tensor = %d x %lld x %lld x %lld = %lld workers; use "
                    "mpirun -np %lld\n", r.scn.path, size, r.prog.devices,
                    (long long)scenario_data(&r.scn), (long long)scenario_context(&r.scn),
                    (long long)scenario_tensor(&r.scn), (long long)workers, (long long)workers);
        rc = 2;
    }
#else
    (void)workers;
#endif
    if (rc == 0 && o.kill_after > 0 && o.kill_device >= r.prog.devices) {
        if (rank == 0)
            fprintf(stderr, "pexec: --%s %d:%lld: there is no device %d (stages = %d); "
                    "give a device below %d\n", o.stall ? "stall-after" : "kill-after",
                    o.kill_device, (long long)o.kill_after,
                    o.kill_device, r.prog.devices, r.prog.devices);
        rc = 2;
    }
    if (rc == 0 && o.drop_send >= r.prog.devices) {
        if (rank == 0)
            fprintf(stderr, "pexec: --drop-send %d: there is no device %d (stages = %d); give a "
                    "device below %d\n", o.drop_send, o.drop_send, r.prog.devices,
                    r.prog.devices);
        rc = 2;
    }
    int exec_rc = 0;
    if (rc == 0 && o.dump) {
        if (rank == 0) sched_file_write(stdout, &r.prog, r.scn.model.name);
    } else if (rc == 0 && (rc = exec_rc = execute(&o, &r, mpi, rank)) == 0 && rank == 0) {
        rc = run_report(&o, &r);
    }
    run_free(&r);
#ifdef PIPESIM_MPI
    // a rank that failed while running may leave a stalled peer behind: end them all
    if (mpi && exec_rc != 0) ending = 1, MPI_Abort(MPI_COMM_WORLD, exec_rc);
    if (mpi) MPI_Finalize();
#else
    (void)exec_rc;
#endif
    return rc;
}
