/* exec/cuda.c: exec_cuda_threads and exec_cuda_ranks (cuda.h): the global issue order, GPU
 * setup (partitions, streams, weights, communicator), one issuing thread per GPU with its NCCL
 * groups and same-GPU copies, the poll-and-abort watchdog, and the rows read back from CUDA
 * events; with MPI, one rank per GPU and rank 0 gathering the rows. A compute op is the
 * core's (exec_op) with this file's kernels, data and event spans. Not here: CUDA graphs,
 * CUPTI, clock alignment across nodes (each rank's clock starts after a barrier). */
#include "exec/cuda.h"

#include <cublas_v2.h>
#include <cuda.h> // driver types only: its functions come from cudaGetDriverEntryPointByVersion
#include <cuda_runtime_api.h>
#include <math.h>
#include <nccl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef PIPESIM_MPI
#include <mpi.h>
#endif

#include "exec/core.h"
#include "exec/issue_order.h"
#include "kernels/layer_cuda.h"

extern char **environ;

/* A timed span: two events against an epoch, and the row they fill. */
typedef struct {
    cudaEvent_t a, b;
    int32_t epoch;         // index into Gpu.epochs
    int64_t op;            // device op index for the watchdog's message, -1 for a transfer
    TimelineOp row;
} Rec;

typedef struct {
    uint8_t send;
    int32_t peer;          // NCCL rank
    void *ptr;
    cudaEvent_t ready;     // send: the producer's end
    int64_t slot;          // recv: where the data goes
    TimelineOp row;
} Pend;

typedef struct {
    cudaEvent_t *ev;             // created in one context, n used of cap
    int64_t n, cap;
} EvPool;

struct Gpu;

/* A pipeline device (ExecDev.be): its partition of its GPU. */
typedef struct {
    struct Gpu *g;
    int32_t d;                   // pipeline device
    cudaStream_t compute, copy;  // copy: same-GPU transfers out of this device
    CUgreenCtx green;            // NULL without green contexts
    CUcontext ctx;               // the green context as a context, current while issuing its
                                 //   work (NULL: the primary context)
    LayerGpuCtx *lctx;
    int32_t epoch;               // its compute stream's epoch in Gpu.epochs
} Part;

typedef struct Gpu {
    Exec *ex;
    int32_t index;               // GPU index = NCCL rank
    int ordinal;                 // CUDA device
    ncclComm_t comm;             // NULL with one GPU
    cudaStream_t comm_stream;    // NCCL's warm-up and this GPU's epoch
    cudaStream_t *peer_stream;   // [ngpus] NCCL transfers to and from each peer GPU (its link),
                                 //   so one neighbour's transfer never waits behind another's
    Part *parts;
    int32_t nparts, first;       // devices first .. first + nparts - 1
    void **inputs;               // [m] first-stage inputs on this GPU, bf16, or NULL
    cudaEvent_t *epochs;         // [nparts + 1]: each part's compute stream, then comm_stream
    int64_t *epoch_ns;           // [nparts + 1] host time of each epoch, ns since run start
    EvPool *pools;               // [nparts + 1]: events of each part's context, then primary
    CUcontext primary;           // the device's primary context (green contexts only)
    int32_t cur;                 // whose context is current: part index, nparts primary, -1 unknown
    Rec *recs;
    int64_t nrec, reccap;
    uint8_t *done;               // [reccap] round_wait: recs[i] completed
    Pend *pend;
    int32_t npend, pendcap;
    ExecSlot *outbox;            // [S m 2] data produced here, waiting for its transfer
                                 //   (ready: a cudaEvent_t)
} Gpu;

/* The backend's state (Exec.be). Delivered data lands in the core's slots (exec_slot),
 * written and read by the consumer's GPU; ready there is a cudaEvent_t. */
typedef struct {
    int32_t k, ngpus;            // devices per GPU, GPUs in all
    int32_t lo, hi;              // the GPUs this process drives (all, or its rank's)
    int mpi;                     // this process is NCCL rank ex->rank, one per GPU
    int64_t bytes;               // one activation or gradient: T h bf16
    IssueItem *order;            // the global issue order (issue_order.h)
    int64_t norder;
    Gpu *gpus;
    LayerGpu *layers;            // [nlayers] every stage's layers, on its GPU
    CudaPartition partition;
    int sms;                     // SMs of one green partition
    volatile int *hang_flag;     // spec.hang: mapped host flag the stuck op waits on
    int64_t released_ns;         //   when it was set (ns since run start): what ends later ran
                                 //   after the failure and is not the failed run's
    void *hang_flag_dev;         //   the same, as a device pointer
} Cuda;

#define CS(ex) ((Cuda *)(ex)->be)

/* CUDA/NCCL checks inside the backend: record the failure (status 1) and return -1. */
#define CUDA_OK(ex, call)                                                                      \
    do {                                                                                       \
        cudaError_t e_ = (call);                                                               \
        if (e_ != cudaSuccess) {                                                               \
            exec_fail(ex, 1, "%s:%d: %s: %s (%s)", __FILE__, __LINE__, #call,                  \
                      cudaGetErrorString(e_), cudaGetErrorName(e_));                           \
            return -1;                                                                         \
        }                                                                                      \
    } while (0)

#define NCCL_OK(ex, call)                                                                      \
    do {                                                                                       \
        ncclResult_t r_ = (call);                                                              \
        if (r_ != ncclSuccess && r_ != ncclInProgress) {                                       \
            exec_fail(ex, 1, "%s:%d: %s: %s", __FILE__, __LINE__, #call,                       \
                      ncclGetErrorString(r_));                                                 \
            return -1;                                                                         \
        }                                                                                      \
    } while (0)

/* ---- environment ---- */

int cuda_device_count(char *why, size_t whylen) {
    int n = 0; // cudaGetDeviceCount leaves it untouched when there is no driver
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        snprintf(why, whylen, "cudaGetDeviceCount: %s (%s, error %d)", cudaGetErrorString(e),
                 cudaGetErrorName(e), (int)e);
        return 0;
    }
    if (n <= 0) snprintf(why, whylen, "cudaGetDeviceCount: no devices");
    return n > 0 ? n : 0;
}

void cuda_versions(CudaVersions *v) {
    memset(v, 0, sizeof *v);
    cudaRuntimeGetVersion(&v->runtime);
    if (cudaDriverGetVersion(&v->driver) != cudaSuccess) v->driver = 0;
    if (ncclGetVersion(&v->nccl) != ncclSuccess) v->nccl = 0;
    int major = 0, minor = 0, patch = 0;
    cublasGetProperty(MAJOR_VERSION, &major);
    cublasGetProperty(MINOR_VERSION, &minor);
    cublasGetProperty(PATCH_LEVEL, &patch);
    v->cublas = major * 10000 + minor * 100 + patch;
}

void cuda_versions_text(const CudaVersions *v, CudaVersionText *t) {
    snprintf(t->runtime, sizeof t->runtime, "%d.%d", v->runtime / 1000, v->runtime % 1000 / 10);
    if (v->driver > 0)
        snprintf(t->driver, sizeof t->driver, "%d.%d", v->driver / 1000, v->driver % 1000 / 10);
    else
        snprintf(t->driver, sizeof t->driver, "none");
    int major = v->nccl >= 20900 ? v->nccl / 10000 : v->nccl / 1000; // NCCL 2.9 widened minor
    int rest = v->nccl >= 20900 ? v->nccl % 10000 : v->nccl % 1000;
    snprintf(t->nccl, sizeof t->nccl, "%d.%d.%d", major, rest / 100, rest % 100);
    snprintf(t->cublas, sizeof t->cublas, "%d.%d.%d", v->cublas / 10000, v->cublas % 10000 / 100,
             v->cublas % 100);
}

int cuda_gpu_describe(int gpu, char *name, size_t namelen, int *cc_major, int *cc_minor,
                      char *why, size_t whylen) {
    struct cudaDeviceProp p;
    cudaError_t e = cudaGetDeviceProperties(&p, gpu);
    if (e != cudaSuccess) {
        snprintf(why, whylen, "cudaGetDeviceProperties(%d): %s (%s)", gpu, cudaGetErrorString(e),
                 cudaGetErrorName(e));
        return -1;
    }
    snprintf(name, namelen, "%s", p.name);
    *cc_major = p.major, *cc_minor = p.minor;
    return 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

size_t cuda_nccl_env(char *buf, size_t buflen) {
    size_t n = 0, len = 0;
    for (char **e = environ; *e; e++) n += strncmp(*e, "NCCL_", 5) == 0;
    const char **vars = malloc((n ? n : 1) * sizeof *vars);
    if (buflen) buf[0] = '\0';
    if (!vars) return 0;
    n = 0;
    for (char **e = environ; *e; e++)
        if (strncmp(*e, "NCCL_", 5) == 0) vars[n++] = *e;
    qsort(vars, n, sizeof *vars, cmp_str);
    for (size_t i = 0; i < n && len + 1 < buflen; i++) {
        int w = snprintf(buf + len, buflen - len, "%s\n", vars[i]);
        len = w < 0 ? len : len + (size_t)w < buflen ? len + (size_t)w : buflen - 1;
    }
    free(vars);
    return len;
}

/* ---- per-GPU resources ---- */

typedef CUresult (*FnCtxSet)(CUcontext);
typedef CUresult (*FnCtxGet)(CUcontext *);
typedef CUresult (*FnCtxFromGreen)(CUcontext *, CUgreenCtx);
static void *driver_fn(const char *name);
static int streams_sync(struct Gpu *g);

/* Makes part `which`'s context current (nparts: the primary one): the driver wants an event
 * and the stream it is recorded on in one context, and green streams run their context's
 * work. A no-op without green contexts. */
static void ctx_use(Gpu *g, int32_t which) {
    static FnCtxSet set;
    if (!g->primary || which == g->cur) return;
    if (!set) set = (FnCtxSet)driver_fn("cuCtxSetCurrent");
    CUcontext c = which < g->nparts && g->parts[which].ctx ? g->parts[which].ctx : g->primary;
    if (set && set(c) == CUDA_SUCCESS) g->cur = which;
}

/* An event of the context of epoch `which` (a part, or nparts for the primary streams). */
static cudaEvent_t ev_get(Gpu *g, int32_t which) {
    EvPool *p = &g->pools[which];
    if (p->n == p->cap) {
        int64_t cap = p->cap ? 2 * p->cap : 256;
        cudaEvent_t *ev = realloc(p->ev, (size_t)cap * sizeof *ev);
        if (!ev) return NULL;
        p->ev = ev;
        int32_t was = g->cur;
        ctx_use(g, which);
        for (; p->cap < cap; p->cap++)
            if (cudaEventCreate(&p->ev[p->cap]) != cudaSuccess) return NULL;
        ctx_use(g, was < 0 ? g->nparts : was);
    }
    return p->ev[p->n++];
}

static Rec *rec_new(Gpu *g, int32_t epoch, int64_t op, const TimelineOp *row) {
    if (g->nrec == g->reccap) {
        int64_t cap = g->reccap ? 2 * g->reccap : 256;
        Rec *r = realloc(g->recs, (size_t)cap * sizeof *r);
        if (r) g->recs = r;
        uint8_t *d = r ? realloc(g->done, (size_t)cap) : NULL;
        if (!d) return NULL;
        g->done = d, g->reccap = cap;
    }
    Rec *r = &g->recs[g->nrec];
    *r = (Rec){.a = ev_get(g, epoch), .b = ev_get(g, epoch), .epoch = epoch, .op = op, .row = *row};
    if (!r->a || !r->b) return NULL;
    g->nrec++;
    return r;
}

typedef CUresult (*FnDeviceGet)(CUdevice *, int);
typedef CUresult (*FnGetDevResource)(CUdevice, CUdevResource *, CUdevResourceType);
typedef CUresult (*FnSmSplit)(CUdevResource *, unsigned *, const CUdevResource *,
                              CUdevResource *, unsigned, unsigned);
typedef CUresult (*FnGenerateDesc)(CUdevResourceDesc *, CUdevResource *, unsigned);
typedef CUresult (*FnGreenCreate)(CUgreenCtx *, CUdevResourceDesc, CUdevice, unsigned);
typedef CUresult (*FnGreenStream)(CUstream *, CUgreenCtx, unsigned, int);
typedef CUresult (*FnGreenDestroy)(CUgreenCtx);

/* A driver function as CUDA 12.4 defined it (the version that introduced green contexts and
 * the newest signature this file calls it with; asking at the runtime's version could give a
 * later, different ABI of the same name), or NULL. */
#define DRIVER_API_VERSION 12040
static void *driver_fn(const char *name) {
    void *fn = NULL;
    enum cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;
    if (cudaGetDriverEntryPointByVersion(name, &fn, DRIVER_API_VERSION, cudaEnableDefault, &q) !=
            cudaSuccess || q != cudaDriverEntryPointSuccess)
        return NULL;
    return fn;
}

/* Splits GPU g's SMs into nparts green contexts with a compute stream each. Returns the SMs
 * of one partition, or 0 (nothing created) when the driver cannot. */
static int green_split(Gpu *g) {
    FnDeviceGet dev_get = (FnDeviceGet)driver_fn("cuDeviceGet");
    FnGetDevResource get_res = (FnGetDevResource)driver_fn("cuDeviceGetDevResource");
    FnSmSplit split = (FnSmSplit)driver_fn("cuDevSmResourceSplitByCount");
    FnGenerateDesc gen = (FnGenerateDesc)driver_fn("cuDevResourceGenerateDesc");
    FnGreenCreate create = (FnGreenCreate)driver_fn("cuGreenCtxCreate");
    FnGreenStream stream = (FnGreenStream)driver_fn("cuGreenCtxStreamCreate");
    CUdevice dev;
    CUdevResource all, parts[64];
    if (!dev_get || !get_res || !split || !gen || !create || !stream || g->nparts > 64 ||
        dev_get(&dev, g->ordinal) != CUDA_SUCCESS ||
        get_res(dev, &all, CU_DEV_RESOURCE_TYPE_SM) != CUDA_SUCCESS)
        return 0;
    unsigned align = all.sm.smCoscheduledAlignment > all.sm.minSmPartitionSize
                         ? all.sm.smCoscheduledAlignment : all.sm.minSmPartitionSize;
    unsigned per = all.sm.smCount / (unsigned)g->nparts; // rounded down: k groups must fit
    per = align ? per / align * align : per;
    unsigned n = (unsigned)g->nparts;
    if (per == 0 || split(parts, &n, &all, NULL, 0, per) != CUDA_SUCCESS || n < (unsigned)g->nparts)
        return 0;
    unsigned used = 0; // the driver rounds a group up to its granularity: k of them must fit
    for (int32_t i = 0; i < g->nparts; i++) used += parts[i].sm.smCount;
    if (used > all.sm.smCount || parts[0].sm.smCount == 0) return 0;
    for (int32_t i = 0; i < g->nparts; i++) {
        CUdevResourceDesc desc;
        if (gen(&desc, &parts[i], 1) != CUDA_SUCCESS ||
            create(&g->parts[i].green, desc, dev, CU_GREEN_CTX_DEFAULT_STREAM) != CUDA_SUCCESS ||
            stream((CUstream *)&g->parts[i].compute, g->parts[i].green, CU_STREAM_NON_BLOCKING,
                   0) != CUDA_SUCCESS) {
            FnGreenDestroy destroy = (FnGreenDestroy)driver_fn("cuGreenCtxDestroy");
            for (int32_t j = 0; j <= i; j++) {
                if (g->parts[j].compute) cudaStreamDestroy(g->parts[j].compute);
                if (g->parts[j].green && destroy) destroy(g->parts[j].green);
                g->parts[j].compute = NULL, g->parts[j].green = NULL;
            }
            return 0;
        }
    }
    /* Every partition needs its context (its events and work are issued with it current) and
     * the primary one to return to: without all of them the split is not usable, and is
     * undone rather than reported as green contexts. */
    FnCtxFromGreen to_ctx = (FnCtxFromGreen)driver_fn("cuCtxFromGreenCtx");
    FnCtxGet get_ctx = (FnCtxGet)driver_fn("cuCtxGetCurrent");
    int ok = to_ctx && get_ctx && driver_fn("cuCtxSetCurrent") && get_ctx(&g->primary) == CUDA_SUCCESS;
    for (int32_t i = 0; ok && i < g->nparts; i++)
        ok = to_ctx(&g->parts[i].ctx, g->parts[i].green) == CUDA_SUCCESS && g->parts[i].ctx;
    if (!ok) {
        FnGreenDestroy destroy = (FnGreenDestroy)driver_fn("cuGreenCtxDestroy");
        for (int32_t j = 0; j < g->nparts; j++) {
            if (g->parts[j].compute) cudaStreamDestroy(g->parts[j].compute);
            if (g->parts[j].green && destroy) destroy(g->parts[j].green);
            g->parts[j].compute = NULL, g->parts[j].green = NULL, g->parts[j].ctx = NULL;
        }
        g->primary = NULL;
        return 0;
    }
    g->cur = g->nparts;
    return (int)parts[0].sm.smCount;
}

/* The first-stage inputs on this GPU: the core's deterministic batch per micro-batch, in
 * bf16. */
static int upload_inputs(Exec *ex, Gpu *g) {
    const Program *pr = ex->spec.pr;
    int64_t n = ex->floats;
    float *x = malloc((size_t)n * sizeof *x);
    uint16_t *host = malloc((size_t)n * sizeof *host);
    g->inputs = calloc((size_t)ex->m, sizeof *g->inputs);
    if (!x || !host || !g->inputs)
        return free(x), free(host), exec_fail(ex, 1, "out of host memory"), -1;
    for (int32_t mb = 0; mb < ex->m; mb++) {
        int32_t first = program_mb_pipe(pr, mb) * program_pipe_stages(pr);
        int32_t d = pr->device_of[first];
        if (d < g->first || d >= g->first + g->nparts) continue;
        exec_batch_fill(mb, x, n);
        for (int64_t i = 0; i < n; i++) host[i] = layer_bf16_from_float(x[i]);
        cudaError_t e = cudaMalloc(&g->inputs[mb], (size_t)CS(ex)->bytes);
        if (e == cudaSuccess)
            e = cudaMemcpy(g->inputs[mb], host, (size_t)CS(ex)->bytes, cudaMemcpyHostToDevice);
        if (e != cudaSuccess) {
            free(x), free(host);
            exec_fail(ex, 1, "GPU %d: uploading the inputs: %s", g->ordinal, cudaGetErrorString(e));
            return -1;
        }
    }
    free(x), free(host);
    return 0;
}

static int gpu_setup(Exec *ex, Gpu *g, char *why, size_t whylen) {
    Cuda *cs = CS(ex);
    CUDA_OK(ex, cudaSetDevice(g->ordinal));
    CUDA_OK(ex, cudaFree(0)); // creates the primary context
    cudaMemPool_t pool;       // keep freed buffers in the pool instead of unmapping them
    uint64_t keep = UINT64_MAX;
    CUDA_OK(ex, cudaDeviceGetDefaultMemPool(&pool, g->ordinal));
    CUDA_OK(ex, cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep));
    CUDA_OK(ex, cudaStreamCreateWithFlags(&g->comm_stream, cudaStreamNonBlocking));
    g->peer_stream = calloc((size_t)cs->ngpus, sizeof *g->peer_stream);
    if (!g->peer_stream) return exec_fail(ex, 1, "out of host memory"), -1;
    for (int32_t q = 0; q < cs->ngpus; q++)
        if (q != g->index)
            CUDA_OK(ex, cudaStreamCreateWithFlags(&g->peer_stream[q], cudaStreamNonBlocking));
    int sms = g->nparts > 1 && ex->spec.green ? green_split(g) : 0;
    if (g->index == cs->lo)
        cs->partition = g->nparts == 1 ? CUDA_WHOLE_GPU : sms ? CUDA_GREEN_CONTEXTS : CUDA_STREAMS;
    if (g->index == cs->lo) cs->sms = sms;
    for (int32_t i = 0; i < g->nparts; i++) {
        Part *pt = &g->parts[i];
        pt->g = g, pt->d = g->first + i;
        if (!sms) CUDA_OK(ex, cudaStreamCreateWithFlags(&pt->compute, cudaStreamNonBlocking));
        ctx_use(g, g->nparts);
        CUDA_OK(ex, cudaStreamCreateWithFlags(&pt->copy, cudaStreamNonBlocking));
        ctx_use(g, i);
        if (layer_gpu_ctx_create(&pt->lctx, &ex->spec.shape, pt->compute, why, whylen) != 0 ||
            (sms && layer_gpu_set_sm_count(pt->lctx, sms, why, whylen) != 0))
            return exec_fail(ex, 1, "GPU %d: %s", g->ordinal, why), -1;
    }
    ctx_use(g, g->nparts);
    g->pools = calloc((size_t)g->nparts + 1, sizeof *g->pools);
    g->epochs = calloc((size_t)g->nparts + 1, sizeof *g->epochs);
    g->epoch_ns = calloc((size_t)g->nparts + 1, sizeof *g->epoch_ns);
    g->outbox = calloc((size_t)ex->S * ex->m * 2, sizeof *g->outbox);
    if (!g->pools || !g->epochs || !g->epoch_ns || !g->outbox)
        return exec_fail(ex, 1, "out of host memory"), -1;
    for (int32_t i = 0; i <= g->nparts; i++) {
        ctx_use(g, i);
        CUDA_OK(ex, cudaEventCreate(&g->epochs[i]));
    }
    ctx_use(g, g->nparts);
    for (int32_t i = 0; i < g->nparts; i++) g->parts[i].epoch = i;
    return upload_inputs(ex, g);
}

/* Uploads every stage's layers (the CPU twin's weights, the core's seeds) to its GPU. */
static int layers_upload(Exec *ex, char *why, size_t whylen) {
    Cuda *cs = CS(ex);
    const Program *pr = ex->spec.pr;
    const Plan *pl = ex->spec.pl;
    for (int32_t st = 0; st < ex->S; st++) {
        int32_t d = pr->device_of[st];
        Gpu *g = &cs->gpus[cuda_gpu_of(d, cs->k)];
        Part *pt = &g->parts[d - g->first];
        if (g->index < cs->lo || g->index >= cs->hi) continue; // another rank's
        CUDA_OK(ex, cudaSetDevice(g->ordinal));
        g->cur = -1;
        ctx_use(g, d - g->first);
        for (int64_t k = 0; k < pl->layers[st]; k++) {
            Layer cpu;
            if (layer_init(&cpu, &ex->spec.shape, exec_layer_seed(ex, st, k)) != 0)
                return exec_fail(ex, 1, "out of host memory for the weights"), -1;
            int rc = layer_gpu_upload(pt->lctx, &cpu, &cs->layers[ex->layer_at[st] + k], why,
                                      whylen);
            layer_free(&cpu);
            if (rc != 0) return exec_fail(ex, 1, "GPU %d: %s", g->ordinal, why), -1;
        }
        ctx_use(g, g->nparts); // the caller's thread keeps no green context current
    }
    return 0;
}

/* Waits for a non-blocking communicator to finish its last call, within the watchdog. */
static int nccl_settle(Exec *ex, ncclComm_t comm, const char *what) {
    int64_t deadline = exec_deadline_ns(ex);
    const struct timespec nap = {0, 50000};
    for (;;) {
        ncclResult_t st = ncclInProgress;
        ncclResult_t r = ncclCommGetAsyncError(comm, &st);
        if (r != ncclSuccess || (st != ncclSuccess && st != ncclInProgress)) {
            exec_fail(ex, 1, "%s: %s", what, ncclGetErrorString(r != ncclSuccess ? r : st));
            return -1;
        }
        if (st == ncclSuccess) return 0;
        if (exec_now_ns(ex) > deadline || exec_failed(ex)) {
            exec_fail(ex, 1, "%s did not finish within %g s (watchdog); aborted the communicator",
                      what, ex->spec.watchdog_s);
            ncclCommAbort(comm);
            return -1;
        }
        nanosleep(&nap, NULL);
    }
}

/* One rank per GPU, all in this process: grouped ncclCommInitRankConfig, non-blocking. */
static int comms_init(Exec *ex) {
    Cuda *cs = CS(ex);
    if (cs->ngpus < 2) return 0; // every transfer stays on the GPU
    ncclUniqueId id;
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
#ifdef PIPESIM_MPI
    if (cs->mpi) { // rank 0's id reaches every rank; each initialises its own rank
        if (ex->rank == 0) NCCL_OK(ex, ncclGetUniqueId(&id));
        MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
        Gpu *g = &cs->gpus[ex->rank];
        CUDA_OK(ex, cudaSetDevice(g->ordinal));
        NCCL_OK(ex, ncclCommInitRankConfig(&g->comm, cs->ngpus, id, ex->rank, &config));
        return nccl_settle(ex, g->comm, "ncclCommInitRankConfig");
    }
#endif
    NCCL_OK(ex, ncclGetUniqueId(&id));
    NCCL_OK(ex, ncclGroupStart());
    for (int32_t i = 0; i < cs->ngpus; i++) {
        CUDA_OK(ex, cudaSetDevice(cs->gpus[i].ordinal));
        NCCL_OK(ex, ncclCommInitRankConfig(&cs->gpus[i].comm, cs->ngpus, id, i, &config));
    }
    NCCL_OK(ex, ncclGroupEnd());
    for (int32_t i = 0; i < cs->ngpus; i++)
        if (nccl_settle(ex, cs->gpus[i].comm, "ncclCommInitRankConfig") != 0) return -1;
    return 0;
}

/* rank < 0: this process drives every GPU; else it is MPI rank `rank` of `size` on the GPU
 * of its node-local rank `local`. */
static int create(Exec *ex, int rank, int size, int local, char *why, size_t whylen) {
    if (!layer_shape_is_gpt(&ex->spec.shape))
        return snprintf(why, whylen, "the CUDA backend runs GPT's layer only (multi-head "
                        "attention, GELU, layer norm, standard attention, no sequence "
                        "parallelism); run this model with --backend cpu"), 2;
    Cuda *cs = ex->be = calloc(1, sizeof *cs);
    if (!cs) return snprintf(why, whylen, "out of host memory"), 1;
    const Program *pr = ex->spec.pr;
    cs->k = ex->spec.devices_per_gpu > 0 ? ex->spec.devices_per_gpu : 1;
    cs->ngpus = cuda_gpus_needed(ex->p, cs->k);
    cs->bytes = ex->floats * 2;
    cs->mpi = rank >= 0, ex->rank = rank < 0 ? 0 : rank;
    cs->lo = cs->mpi ? rank : 0, cs->hi = cs->mpi ? rank + 1 : cs->ngpus;
    if (cs->mpi && size != cs->ngpus) {
        snprintf(why, whylen, "mpirun started %d ranks, but %d pipeline devices at "
                 "hardware.devices_per_gpu = %d need %d GPUs, one rank each; use mpirun -np %d",
                 size, ex->p, cs->k, cs->ngpus, cs->ngpus);
        return 2;
    }
    char devwhy[256];
    int visible = cuda_device_count(devwhy, sizeof devwhy);
    if (cs->mpi ? visible == 0 : visible < cs->ngpus) {
        snprintf(why, whylen, "%d pipeline devices at hardware.devices_per_gpu = %d need %d "
                 "GPUs, %d visible%s%s; raise devices_per_gpu or use a larger machine", ex->p,
                 cs->k, cs->ngpus, visible, visible ? "" : ": ", visible ? "" : devwhy);
        return 1;
    }
    int rc = issue_order_build(pr, &cs->order, &cs->norder);
    if (rc != 0) return snprintf(why, whylen, rc == -1 ? "out of host memory"
                                 : "the Program cannot complete (program_check should have said)"), 1;
    cs->layers = calloc((size_t)ex->nlayers + 1, sizeof *cs->layers);
    cs->gpus = calloc((size_t)cs->ngpus, sizeof *cs->gpus);
    if (!cs->layers || !cs->gpus) return snprintf(why, whylen, "out of host memory"), 1;
    for (int32_t i = 0; i < cs->ngpus; i++) {
        Gpu *g = &cs->gpus[i];
        g->ex = ex, g->index = i, g->ordinal = cs->mpi ? local % visible : i, g->first = i * cs->k;
        g->nparts = ex->p - g->first < cs->k ? ex->p - g->first : cs->k;
        g->parts = calloc((size_t)g->nparts, sizeof *g->parts);
        if (!g->parts) return snprintf(why, whylen, "out of host memory"), 1;
        for (int32_t j = 0; j < g->nparts; j++) ex->devs[g->first + j].be = &g->parts[j];
    }
    for (int32_t i = cs->lo; i < cs->hi && !exec_failed(ex); i++)
        gpu_setup(ex, &cs->gpus[i], why, whylen);
    if (!exec_failed(ex) && ex->spec.hang) {
        void *h = NULL;
        if (cudaHostAlloc(&h, sizeof(int), cudaHostAllocMapped) != cudaSuccess ||
            cudaHostGetDevicePointer(&cs->hang_flag_dev, h, 0) != cudaSuccess)
            exec_fail(ex, 1, "cudaHostAlloc(mapped) for the injected hang failed");
        cs->hang_flag = h;
        if (h) *cs->hang_flag = 0;
    }
    if (!exec_failed(ex)) layers_upload(ex, why, whylen);
    if (!exec_failed(ex)) comms_init(ex);
    if (exec_failed(ex)) return snprintf(why, whylen, "%s", ex->why), 1;
    return 0;
}

static int cuda_create_threads(Exec *ex, char *why, size_t whylen) {
    return create(ex, -1, 0, 0, why, whylen);
}

#ifdef PIPESIM_MPI
static int cuda_create_ranks(Exec *ex, char *why, size_t whylen) {
    int rank, size, local;
    MPI_Comm node;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &local);
    MPI_Comm_free(&node);
    int rc = create(ex, rank, size, local, why, whylen), worst = rc;
    MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD); // all go on, or none
    if (rc == 0 && worst != 0) snprintf(why, whylen, "another rank failed to start");
    return rc ? rc : worst;
}
#endif

CudaPartition cuda_exec_partition(const Exec *ex, int *sms_per_device, int *gpus) {
    const Cuda *cs = ex->be;
    if (sms_per_device) *sms_per_device = cs->sms;
    if (gpus) *gpus = cs->ngpus;
    return cs->partition;
}

int cuda_exec_gpus_used(const Exec *ex, int *gpu, int *ordinal, int max) {
    const Cuda *cs = ex->be;
    int n = 0;
    for (int32_t i = cs->lo; cs->gpus && i < cs->hi && n < max; i++, n++)
        gpu[n] = cs->gpus[i].index, ordinal[n] = cs->gpus[i].ordinal;
    return n;
}

static int cuda_grads(Exec *ex, int32_t stage, int32_t k, Layer *cpu, char *why, size_t whylen) {
    Cuda *cs = CS(ex);
    int32_t d = ex->spec.pr->device_of[stage];
    Gpu *g = &cs->gpus[cuda_gpu_of(d, cs->k)];
    if (cudaSetDevice(g->ordinal) != cudaSuccess)
        return snprintf(why, whylen, "cudaSetDevice failed"), -1;
    g->cur = -1;
    ctx_use(g, d - g->first);
    int rc = layer_gpu_grads(g->parts[d - g->first].lctx, &cs->layers[ex->layer_at[stage] + k],
                             cpu, why, whylen);
    ctx_use(g, g->nparts); // back to the primary context: the caller's thread keeps no green one
    return rc;
}

static void cuda_destroy(Exec *ex) {
    Cuda *cs = ex->be;
    if (!cs) return;
    int clean = !ex->failed; // after an abort, streams may never drain: leave it to exit
    FnGreenDestroy destroy = (FnGreenDestroy)driver_fn("cuGreenCtxDestroy");
    for (int32_t i = cs->lo; cs->gpus && i < cs->hi; i++) {
        Gpu *g = &cs->gpus[i];
        if (clean && g->parts && cudaSetDevice(g->ordinal) == cudaSuccess) {
            g->cur = -1;
            streams_sync(g);
            for (int32_t mb = 0; g->inputs && mb < ex->m; mb++) cudaFree(g->inputs[mb]);
            for (int32_t q = 0; g->pools && q <= g->nparts; q++)
                for (int64_t e = 0; e < g->pools[q].cap; e++) cudaEventDestroy(g->pools[q].ev[e]);
            for (int32_t e = 0; g->epochs && e <= g->nparts; e++) cudaEventDestroy(g->epochs[e]);
            for (int32_t j = 0; g->parts && j < g->nparts; j++) {
                Part *pt = &g->parts[j];
                ctx_use(g, j);
                layer_gpu_ctx_free(pt->lctx);
                ctx_use(g, g->nparts);
                if (pt->compute) cudaStreamDestroy(pt->compute);
                if (pt->copy) cudaStreamDestroy(pt->copy);
                if (pt->green && destroy) destroy(pt->green);
            }
            if (g->comm_stream) cudaStreamDestroy(g->comm_stream);
            for (int32_t q = 0; g->peer_stream && q < cs->ngpus; q++)
                if (g->peer_stream[q]) cudaStreamDestroy(g->peer_stream[q]);
        }
        if (g->comm) clean ? ncclCommDestroy(g->comm) : ncclCommAbort(g->comm);
        for (int32_t q = 0; g->pools && q <= g->nparts; q++) free(g->pools[q].ev);
        free(g->inputs), free(g->epochs), free(g->epoch_ns), free(g->pools);
        free(g->recs), free(g->done), free(g->pend), free(g->outbox), free(g->peer_stream);
    }
    for (int64_t i = 0; clean && cs->layers && i < ex->nlayers; i++) {
        int32_t st = 0;
        while (st + 1 < ex->S && ex->layer_at[st + 1] <= i) st++;
        int32_t d = ex->spec.pr->device_of[st], gi = cuda_gpu_of(d, cs->k);
        if (gi >= cs->lo && gi < cs->hi && cudaSetDevice(cs->gpus[gi].ordinal) == cudaSuccess)
            layer_gpu_free(&cs->layers[i]);
    }
    if (cs->hang_flag) cudaFreeHost((void *)cs->hang_flag);
    for (int32_t i = 0; cs->gpus && i < cs->ngpus; i++) free(cs->gpus[i].parts);
    for (int32_t d = 0; d < ex->p; d++) ex->devs[d].be = NULL;
    free(cs->order), free(cs->layers), free(cs->gpus), free(cs);
    ex->be = NULL;
}

/* ---- a compute op: the core's exec_op with these kernels, data and spans ---- */

static Part *part_of(ExecDev *dv) { return dv->be; }

static int cuda_acts_new(ExecDev *dv, uint64_t seed, void **acts) {
    char why[256];
    LayerGpuActs *a = calloc(1, sizeof *a);
    *acts = a;
    if (!a) return exec_fail(dv->ex, 1, "out of host memory"), -1;
    if (layer_gpu_acts_alloc(part_of(dv)->lctx, a, why, sizeof why) != 0)
        return exec_fail(dv->ex, 1, "device %d: %s", dv->d, why), -1;
    a->seed = seed;
    return 0;
}

static void cuda_acts_free(ExecDev *dv, void *acts) {
    if (acts) layer_gpu_acts_free(part_of(dv)->lctx, acts);
    free(acts);
}

static int cuda_buf_new(ExecDev *dv, void **buf) {
    CUDA_OK(dv->ex, cudaMallocAsync(buf, (size_t)CS(dv->ex)->bytes, part_of(dv)->compute));
    return 0;
}

static void cuda_buf_free(ExecDev *dv, void *buf) {
    cudaError_t e = cudaFreeAsync(buf, part_of(dv)->compute);
    if (e != cudaSuccess)
        exec_fail(dv->ex, 1, "device %d: cudaFreeAsync: %s (%s)", dv->d, cudaGetErrorString(e),
                  cudaGetErrorName(e));
}

static int cuda_pass(ExecDev *dv, OpKind pass, int64_t layer, void *acts, const void *in,
                     void *out) {
    Part *pt = part_of(dv);
    LayerGpu *l = &CS(dv->ex)->layers[layer];
    char why[256];
    if (layer_gpu_pass(pt->lctx, pass, l, acts, in, out, NULL, why, sizeof why) != 0)
        return exec_fail(dv->ex, 1, "device %d: %s", dv->d, why), -1;
    return 0;
}

static const ExecKernels cuda_kernels = {cuda_acts_new, cuda_acts_free, cuda_buf_new,
                                         cuda_buf_free, cuda_pass, NULL}; // no kernel timing yet

static int cuda_batch(ExecDev *dv, int32_t mb, ExecSlot *out) {
    Gpu *g = part_of(dv)->g;
    *out = (ExecSlot){g->inputs[mb], NULL, 0};
    if (out->ptr) return 0;
    return exec_fail(dv->ex, 1, "device %d: no input for micro-batch %d", dv->d, mb), -1;
}

/* Delivered data is in the slot already (a transfer item before this op put it there): the
 * device's stream waits for its event. */
static int cuda_receive(ExecDev *dv, int32_t src, int grad, int32_t stage, const ProgramOp *op,
                        int64_t index, ExecSlot *out) {
    (void)src;
    ExecSlot *s = exec_slot(dv->ex, stage, op->micro_batch, grad);
    *out = (ExecSlot){s->ptr, NULL, s->owned};
    if (s->ready) CUDA_OK(dv->ex, cudaStreamWaitEvent(part_of(dv)->compute, s->ready, 0));
    *s = (ExecSlot){0};
    if (out->ptr) return 0;
    return exec_fail(dv->ex, 1, "device %d: no input for op %lld", dv->d, (long long)index), -1;
}

/* Into this GPU's outbox: the transfer item that follows in the issue order posts it. */
static void cuda_send(ExecDev *dv, int32_t dst, int grad, int32_t stage, const ProgramOp *op,
                      ExecSlot data) {
    (void)dst;
    Exec *ex = dv->ex;
    part_of(dv)->g->outbox[((int64_t)stage * ex->m + op->micro_batch) * 2 + grad] = data;
}

static int cuda_span_begin(ExecDev *dv, const ProgramOp *op, int64_t index, int64_t *token) {
    Exec *ex = dv->ex;
    Cuda *cs = CS(ex);
    Part *pt = part_of(dv);
    Gpu *g = pt->g;
    TimelineOp row = exec_row(ex, dv->d, -1, (OpKind)op->kind, op->micro_batch, op->chunk,
                              STREAM_COMPUTE, 0, 0, 0);
    Rec *r = rec_new(g, pt->epoch, index, &row);
    if (!r) return exec_fail(ex, 1, "out of memory for events"), -1;
    *token = g->nrec - 1;
    CUDA_OK(ex, cudaEventRecord(r->a, pt->compute));
    char why[128];
    if (cs->hang_flag && dv->d == ex->spec.hang_device && index == 0 && ex->round == 0 &&
        layer_gpu_spin(pt->compute, cs->hang_flag_dev, why, sizeof why) != 0)
        return exec_fail(ex, 1, "%s", why), -1;
    return 0;
}

static int cuda_span_end(ExecDev *dv, const ProgramOp *op, int64_t token, void **ready) {
    (void)op;
    Part *pt = part_of(dv);
    cudaEvent_t b = pt->g->recs[token].b;
    CUDA_OK(dv->ex, cudaEventRecord(b, pt->compute));
    *ready = b;
    return 0;
}

/* ---- transfers ---- */

/* Between two devices of this GPU: a copy on the producer's copy stream. */
static int issue_local(Gpu *g, const IssueItem *it) {
    Exec *ex = g->ex;
    Cuda *cs = CS(ex);
    Part *src = &g->parts[it->dev - g->first];
    int64_t si = ((int64_t)it->stage * ex->m + it->mb) * 2 + it->grad;
    ExecSlot o = g->outbox[si];
    ctx_use(g, g->nparts);
    g->outbox[si] = (ExecSlot){0};
    int16_t chunk = (int16_t)ex->spec.pr->chunk_of[it->stage];
    TimelineOp send = exec_row(ex, it->dev, it->dst, (OpKind)it->kind, it->mb, chunk, STREAM_SEND,
                               cs->bytes, 0, 0);
    TimelineOp recv = exec_row(ex, it->dst, it->dev, (OpKind)it->kind, it->mb, chunk, STREAM_RECV,
                               cs->bytes, 0, 0);
    Rec *rs = rec_new(g, g->nparts, -1, &send);
    if (!rs) return exec_fail(ex, 1, "out of memory for events"), -1;
    cudaEvent_t a = rs->a, b = rs->b; // rs moves when recs grow
    void *dst = NULL;
    CUDA_OK(ex, cudaStreamWaitEvent(src->copy, o.ready, 0));
    CUDA_OK(ex, cudaEventRecord(a, src->copy));
    CUDA_OK(ex, cudaMallocAsync(&dst, (size_t)cs->bytes, src->copy));
    CUDA_OK(ex, cudaMemcpyAsync(dst, o.ptr, (size_t)cs->bytes, cudaMemcpyDeviceToDevice, src->copy));
    if (o.owned) CUDA_OK(ex, cudaFreeAsync(o.ptr, src->copy));
    CUDA_OK(ex, cudaEventRecord(b, src->copy));
    Rec *rr = rec_new(g, g->nparts, -1, &recv);
    if (!rr) return exec_fail(ex, 1, "out of memory for events"), -1;
    rr->a = a, rr->b = b; // the same span on both devices
    *exec_slot(ex, it->stage, it->mb, it->grad) = (ExecSlot){dst, b, 1};
    return 0;
}

/* Adds this GPU's half of a transfer to another GPU to the group being built. */
static int pend_add(Gpu *g, const IssueItem *it, int send) {
    Exec *ex = g->ex;
    Cuda *cs = CS(ex);
    if (g->npend == g->pendcap) {
        int32_t cap = g->pendcap ? 2 * g->pendcap : 16;
        Pend *p = realloc(g->pend, (size_t)cap * sizeof *p);
        if (!p) return exec_fail(ex, 1, "out of host memory"), -1;
        g->pend = p, g->pendcap = cap;
    }
    int64_t si = ((int64_t)it->stage * ex->m + it->mb) * 2 + it->grad;
    int16_t chunk = (int16_t)ex->spec.pr->chunk_of[it->stage];
    Pend *p = &g->pend[g->npend++];
    ctx_use(g, g->nparts);
    int32_t me = send ? it->dev : it->dst, peer = send ? it->dst : it->dev;
    cudaStream_t ps = g->peer_stream[cuda_gpu_of(peer, cs->k)];
    *p = (Pend){.send = (uint8_t)send, .peer = cuda_gpu_of(peer, cs->k), .slot = si,
                .row = exec_row(ex, me, peer, (OpKind)it->kind, it->mb, chunk,
                                send ? STREAM_SEND : STREAM_RECV, cs->bytes, 0, 0)};
    if (send) {
        ExecSlot o = g->outbox[si];
        g->outbox[si] = (ExecSlot){0};
        p->ptr = o.ptr, p->ready = o.ready;
        if (!o.owned) { // never happens (outputs are fresh buffers), but NCCL must not free it
            void *copy = NULL;
            CUDA_OK(ex, cudaMallocAsync(&copy, (size_t)cs->bytes, ps));
            CUDA_OK(ex, cudaStreamWaitEvent(ps, o.ready, 0));
            CUDA_OK(ex, cudaMemcpyAsync(copy, o.ptr, (size_t)cs->bytes, cudaMemcpyDeviceToDevice,
                                        ps));
            p->ptr = copy;
        }
    } else {
        CUDA_OK(ex, cudaMallocAsync(&p->ptr, (size_t)cs->bytes, ps));
    }
    return 0;
}

/* Posts the pending calls to one peer GPU as one NCCL group on that peer's stream, timed as
 * one span (each transfer's rows cover its group). Only a peer's send and receive must be
 * posted together (two GPUs that each post their send first would wait on each other); a
 * group spanning peers would make a transfer to one neighbour wait for the other's. */
static int peer_flush(Gpu *g, int32_t peer) {
    Exec *ex = g->ex;
    Cuda *cs = CS(ex);
    cudaStream_t ps = g->peer_stream[peer];
    int32_t first = -1;
    for (int32_t i = 0; i < g->npend && first < 0; i++)
        if (g->pend[i].peer == peer) first = i;
    if (first < 0) return 0;
    for (int32_t i = first; i < g->npend; i++)
        if (g->pend[i].peer == peer && g->pend[i].send)
            CUDA_OK(ex, cudaStreamWaitEvent(ps, g->pend[i].ready, 0));
    Rec *r0 = rec_new(g, g->nparts, -1, &g->pend[first].row);
    if (!r0) return exec_fail(ex, 1, "out of memory for events"), -1;
    cudaEvent_t a = r0->a, b = r0->b; // r0 moves when recs grow
    CUDA_OK(ex, cudaEventRecord(a, ps));
    NCCL_OK(ex, ncclGroupStart());
    for (int32_t i = first; i < g->npend; i++) {
        Pend *p = &g->pend[i];
        size_t count = (size_t)cs->bytes / 2;
        if (p->peer != peer) continue;
        if (p->send) NCCL_OK(ex, ncclSend(p->ptr, count, ncclBfloat16, p->peer, g->comm, ps));
        else NCCL_OK(ex, ncclRecv(p->ptr, count, ncclBfloat16, p->peer, g->comm, ps));
    }
    NCCL_OK(ex, ncclGroupEnd());
    if (nccl_settle(ex, g->comm, "ncclGroupEnd") != 0) return -1;
    CUDA_OK(ex, cudaEventRecord(b, ps));
    for (int32_t i = first; i < g->npend; i++) {
        Pend *p = &g->pend[i];
        if (p->peer != peer) continue;
        Rec *r = i == first ? NULL : rec_new(g, g->nparts, -1, &p->row);
        if (i > first && !r) return exec_fail(ex, 1, "out of memory for events"), -1;
        if (r) r->a = a, r->b = b; // every transfer of the group spans the group
        if (p->send) CUDA_OK(ex, cudaFreeAsync(p->ptr, ps));
        else ex->slots[p->slot] = (ExecSlot){p->ptr, b, 1};
    }
    return 0;
}

/* Posts the pending sends and receives, a group per peer GPU in the order of each peer's
 * first call (the issue order, so both ends post a link's groups in the same order). */
static int group_flush(Gpu *g) {
    Exec *ex = g->ex;
    if (g->npend == 0) return 0;
    ctx_use(g, g->nparts);
    for (int32_t i = 0; i < g->npend; i++) {
        int seen = 0;
        for (int32_t j = 0; j < i && !seen; j++) seen = g->pend[j].peer == g->pend[i].peer;
        if (!seen && peer_flush(g, g->pend[i].peer) != 0) return -1;
    }
    (void)ex;
    g->npend = 0;
    return 0;
}

static int issue_item(Gpu *g, const IssueItem *it) {
    Exec *ex = g->ex;
    int here = it->dev >= g->first && it->dev < g->first + g->nparts;
    int there = it->xfer && it->dst >= g->first && it->dst < g->first + g->nparts;
    if (!it->xfer) {
        if (!here) return 0;
        if (group_flush(g) != 0) return -1;
        ctx_use(g, it->dev - g->first);
        return exec_op(&ex->devs[it->dev], it->op - ex->spec.pr->start[it->dev]);
    }
    if (here && there) return issue_local(g, it);
    if (!here && !there) return 0;
    if (pend_add(g, it, here) != 0) return -1;
    return ex->spec.group ? 0 : group_flush(g);
}

/* ---- waiting, the watchdog, the rows ---- */

static void abort_comm(Gpu *g) {
    if (g->comm) ncclCommAbort(g->comm);
    g->comm = NULL;
}

/* Polls every recorded span until all completed; aborts the communicator when nothing
 * completes for watchdog_s, on an asynchronous NCCL error, or when another GPU failed. */
static int round_wait(Gpu *g) {
    Exec *ex = g->ex;
    const Program *pr = ex->spec.pr;
    uint8_t *done = g->done;
    if (g->nrec) memset(done, 0, (size_t)g->nrec);
    int64_t left = g->nrec, last = exec_now_ns(ex);
    const struct timespec nap = {0, 50000};
    while (left > 0) { // polls once even after a failure: what completed before it is kept
        int64_t before = left;
        for (int64_t i = 0; i < g->nrec; i++) {
            if (done[i]) continue;
            cudaError_t e = cudaEventQuery(g->recs[i].b);
            if (e == cudaSuccess) done[i] = 1, left--;
            else if (e != cudaErrorNotReady) {
                exec_fail(ex, 1, "GPU %d: %s", g->ordinal, cudaGetErrorString(e));
                break;
            }
        }
        ncclResult_t st = ncclSuccess;
        if (g->comm && ncclCommGetAsyncError(g->comm, &st) == ncclSuccess && st != ncclSuccess &&
            st != ncclInProgress)
            exec_fail(ex, 1, "GPU %d: NCCL: %s", g->ordinal, ncclGetErrorString(st));
        if (left < before) last = exec_now_ns(ex);
        if (left > 0 && exec_now_ns(ex) - last > (int64_t)(ex->spec.watchdog_s * 1e9)) {
            for (int64_t i = 0; i < g->nrec; i++) {
                if (done[i]) continue;
                char name[64] = "a transfer";
                const TimelineOp *row = &g->recs[i].row;
                if (g->recs[i].op >= 0)
                    program_op_str(&pr->ops[pr->start[row->device] + g->recs[i].op], name,
                                   sizeof name);
                exec_fail(ex, 1, "device %d op %lld (%s) did not complete within %g s "
                          "(watchdog; a peer never posted its matching send or receive, or a "
                          "kernel hung); aborted the NCCL communicator of every GPU",
                          row->device, (long long)g->recs[i].op, name, ex->spec.watchdog_s);
                break;
            }
        }
        if (exec_failed(ex)) break;
        if (left > 0) nanosleep(&nap, NULL);
    }
    if (exec_failed(ex) && CS(ex)->hang_flag && !*CS(ex)->hang_flag) { // the injected hang ends
        CS(ex)->released_ns = exec_now_ns(ex);
        *CS(ex)->hang_flag = 1;
    }
    if (exec_failed(ex)) abort_comm(g);                              //   with the run
    return exec_failed(ex) ? -1 : 0;
}

/* The rows of the round, each into its device's (every row of a GPU is one of its devices').
 * After a failure, only the spans round_wait saw complete, skipping any whose times cannot be
 * read (a failed run is stored with what was measured before it failed, as on the CPU). */
static int rows_collect(Gpu *g) {
    Exec *ex = g->ex;
    int failed = exec_failed(ex);
    for (int64_t i = 0; i < g->nrec; i++) {
        Rec *r = &g->recs[i];
        float a = 0, b = 0;
        if (failed) {
            if (!g->done[i] || cudaEventElapsedTime(&a, g->epochs[r->epoch], r->a) != cudaSuccess ||
                cudaEventElapsedTime(&b, g->epochs[r->epoch], r->b) != cudaSuccess)
                continue;
        } else {
            CUDA_OK(ex, cudaEventElapsedTime(&a, g->epochs[r->epoch], r->a));
            CUDA_OK(ex, cudaEventElapsedTime(&b, g->epochs[r->epoch], r->b));
        }
        TimelineOp row = r->row;
        row.start_ns = g->epoch_ns[r->epoch] + llround((double)a * 1e6);
        row.end_ns = g->epoch_ns[r->epoch] + llround((double)b * 1e6);
        if (row.end_ns < row.start_ns) row.end_ns = row.start_ns;
        if (failed && CS(ex)->released_ns && row.end_ns > CS(ex)->released_ns) continue;
        exec_row_push(&ex->devs[row.device], &row);
    }
    return exec_failed(ex) ? -1 : 0;
}

/* Waits for every stream of this GPU (green contexts' included, which a device-wide
 * synchronize of the primary context might not cover). */
static int streams_sync(Gpu *g) {
    Exec *ex = g->ex;
    for (int32_t i = 0; i < g->nparts; i++) {
        ctx_use(g, i);
        CUDA_OK(ex, cudaStreamSynchronize(g->parts[i].compute));
        CUDA_OK(ex, cudaStreamSynchronize(g->parts[i].copy));
    }
    ctx_use(g, g->nparts);
    CUDA_OK(ex, cudaStreamSynchronize(g->comm_stream));
    for (int32_t q = 0; g->peer_stream && q < CS(ex)->ngpus; q++)
        if (g->peer_stream[q]) CUDA_OK(ex, cudaStreamSynchronize(g->peer_stream[q]));
    return 0;
}

/* Records this GPU's epochs, one per stream context, each stamped with the host clock once it
 * completed (the GPU is idle, so that is within a launch latency of the epoch). */
static int epochs_record(Gpu *g) {
    Exec *ex = g->ex;
    if (streams_sync(g) != 0) return -1;
    for (int32_t i = 0; i <= g->nparts; i++) {
        cudaStream_t s = i < g->nparts ? g->parts[i].compute : g->comm_stream;
        ctx_use(g, i);
        CUDA_OK(ex, cudaEventRecord(g->epochs[i], s));
        CUDA_OK(ex, cudaEventSynchronize(g->epochs[i]));
        g->epoch_ns[i] = exec_now_ns(ex);
    }
    return 0;
}

/* Untimed: one F, B and W pass per device (cuBLAS picks and loads its kernels) and one
 * exchange with every GPU this one talks to (NCCL connects lazily), then zero gradients. */
static int warmup(Gpu *g) {
    Exec *ex = g->ex;
    Cuda *cs = CS(ex);
    const Program *pr = ex->spec.pr;
    const Plan *pl = ex->spec.pl;
    char why[256];
    for (int32_t i = 0; i < g->nparts && ex->spec.warmup; i++) {
        Part *pt = &g->parts[i];
        LayerGpuActs a;
        ctx_use(g, i);
        void *x = NULL, *y = NULL;
        int32_t st = -1;
        for (int32_t s = 0; s < ex->S && st < 0; s++)
            if (pr->device_of[s] == pt->d && pl->layers[s] > 0) st = s;
        if (st < 0) continue;
        LayerGpu *l = &cs->layers[ex->layer_at[st]];
        CUDA_OK(ex, cudaMallocAsync(&x, (size_t)cs->bytes, pt->compute));
        CUDA_OK(ex, cudaMallocAsync(&y, (size_t)cs->bytes, pt->compute));
        CUDA_OK(ex, cudaMemsetAsync(x, 0, (size_t)cs->bytes, pt->compute));
        if (layer_gpu_acts_alloc(pt->lctx, &a, why, sizeof why) != 0 ||
            layer_gpu_pass(pt->lctx, OP_F, l, &a, x, y, NULL, why, sizeof why) != 0 ||
            layer_gpu_pass(pt->lctx, OP_B, l, &a, x, y, NULL, why, sizeof why) != 0 ||
            layer_gpu_pass(pt->lctx, OP_W, l, &a, NULL, NULL, NULL, why, sizeof why) != 0)
            return exec_fail(ex, 1, "device %d warm-up: %s", pt->d, why), -1;
        layer_gpu_acts_free(pt->lctx, &a);
        CUDA_OK(ex, cudaFreeAsync(x, pt->compute));
        CUDA_OK(ex, cudaFreeAsync(y, pt->compute));
        for (int32_t s = 0; s < ex->S; s++)
            for (int64_t k = 0; pr->device_of[s] == pt->d && k < pl->layers[s]; k++)
                for (int w = 0; w < LAYER_WEIGHTS; w++) {
                    LayerGpu *lk = &cs->layers[ex->layer_at[s] + k];
                    LayerBuf gb = (LayerBuf)(LB_FIRST_GRAD + w);
                    CUDA_OK(ex, cudaMemsetAsync(lk->g[w], 0, (size_t)layer_buf_elems(&lk->sh, gb) * 4,
                                                pt->compute));
                }
    }
    ctx_use(g, g->nparts);
    if (g->comm && ex->spec.warmup) {
        uint8_t *peer = calloc((size_t)cs->ngpus, 1);
        void *buf = NULL;
        if (!peer) return exec_fail(ex, 1, "out of host memory"), -1;
        for (int64_t i = 0; i < cs->norder; i++) {
            const IssueItem *it = &cs->order[i];
            int32_t a = cuda_gpu_of(it->dev, cs->k), b = cuda_gpu_of(it->dst, cs->k);
            if (it->xfer && a != b && (a == g->index || b == g->index)) peer[a == g->index ? b : a] = 1;
        }
        CUDA_OK(ex, cudaMalloc(&buf, (size_t)2 * cs->ngpus * 2));
        for (int32_t q = 0; q < cs->ngpus; q++) { // a group per peer, as the timed transfers
            if (!peer[q]) continue;
            NCCL_OK(ex, ncclGroupStart());
            NCCL_OK(ex, ncclSend((char *)buf + 4 * q, 1, ncclBfloat16, q, g->comm, g->peer_stream[q]));
            NCCL_OK(ex, ncclRecv((char *)buf + 4 * q + 2, 1, ncclBfloat16, q, g->comm, g->peer_stream[q]));
            NCCL_OK(ex, ncclGroupEnd()); // a non-blocking communicator takes its next call
            if (nccl_settle(ex, g->comm, "NCCL warm-up exchange") != 0) return -1; // once settled
        }
        g->nrec = 0;
        TimelineOp none = {0};
        Rec *r = rec_new(g, g->nparts, -1, &none);
        if (!r) return exec_fail(ex, 1, "out of memory for events"), -1;
        for (int32_t q = 0; q < cs->ngpus; q++) // the comm stream's event follows every link's
            if (peer[q]) {
                cudaEvent_t e = ev_get(g, g->nparts);
                if (!e) return exec_fail(ex, 1, "out of memory for events"), -1;
                CUDA_OK(ex, cudaEventRecord(e, g->peer_stream[q]));
                CUDA_OK(ex, cudaStreamWaitEvent(g->comm_stream, e, 0));
            }
        free(peer);
        CUDA_OK(ex, cudaEventRecord(r->b, g->comm_stream));
        int rc = round_wait(g);
        cudaFree(buf);
        if (rc != 0) return -1;
    }
    return streams_sync(g);
}

/* One GPU's round: warm-up (first round), epochs aligned with the other GPUs, every item of the
 * issue order that is this GPU's, the last group, then the wait and the rows. */
static void gpu_lane(Exec *ex, int32_t i) {
    Cuda *cs = CS(ex);
    Gpu *g = &cs->gpus[cs->lo + i];
    if (cudaSetDevice(g->ordinal) != cudaSuccess) exec_fail(ex, 1, "GPU %d: cudaSetDevice", g->ordinal);
    g->cur = -1; // a new thread: make the contexts current again as work is issued
    if (ex->round == 0 && !exec_failed(ex)) warmup(g);
    exec_barrier(ex); // the epochs of all GPUs within one launch latency
#ifdef PIPESIM_MPI
    if (cs->mpi) MPI_Barrier(MPI_COMM_WORLD);
#endif
    if (!exec_failed(ex)) epochs_record(g);
    for (int32_t q = 0; q <= g->nparts; q++) g->pools[q].n = 0;
    g->nrec = 0, g->npend = 0;
    for (int64_t k = 0; k < cs->norder && !exec_failed(ex); k++)
        if (issue_item(g, &cs->order[k]) != 0) break;
    if (!exec_failed(ex)) group_flush(g);
    round_wait(g); // also when another GPU failed: aborts this one's communicator
    rows_collect(g); // after a failure, the spans that completed
}

static int cuda_run(Exec *ex, Timeline *tl) {
    Cuda *cs = CS(ex);
#ifdef PIPESIM_MPI
    if (cs->mpi) MPI_Barrier(MPI_COMM_WORLD); // every rank's clock starts together
#endif
    clock_gettime(CLOCK_MONOTONIC, &ex->epoch);
    exec_rounds(ex, cs->hi - cs->lo, gpu_lane, NULL, cs->mpi ? NULL : tl);
#ifdef PIPESIM_MPI
    if (cs->mpi) { // all ranks agree whether the run stands before gathering it
        int bad = exec_failed(ex), any = bad;
        MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
        if (any && !bad) exec_fail(ex, any, "another rank failed (its message says why)");
        Timeline mine = {0}; // this rank's devices' rows
        if (!any) exec_rows_merge(ex, &mine);
        if (!any && exec_mpi_gather(ex, &mine, tl, NULL) != 0)
            exec_fail(ex, 1, "rank %d: out of memory for the timeline", ex->rank);
        timeline_free(&mine);
        if (ex->failed) { // name the rank, as the CPU ranks do
            char own[sizeof ex->why], host[64] = "?";
            gethostname(host, sizeof host - 1);
            snprintf(own, sizeof own, "rank %d on %.63s: %.400s", ex->rank, host, ex->why);
            memcpy(ex->why, own, sizeof own);
        }
    }
#else
    (void)tl;
#endif
    return ex->failed;
}

const ExecBackend exec_cuda_threads = {
    .name = "cuda", .lane = "GPU", .kernels = &cuda_kernels,
    .create = cuda_create_threads, .destroy = cuda_destroy, .run = cuda_run, .grads = cuda_grads,
    .batch = cuda_batch, .receive = cuda_receive, .send = cuda_send,
    .span_begin = cuda_span_begin, .span_end = cuda_span_end,
};

#ifdef PIPESIM_MPI
const ExecBackend exec_cuda_ranks = {
    .name = "cuda", .lane = "GPU", .kernels = &cuda_kernels,
    .create = cuda_create_ranks, .destroy = cuda_destroy, .run = cuda_run, .grads = cuda_grads,
    .batch = cuda_batch, .receive = cuda_receive, .send = cuda_send,
    .span_begin = cuda_span_begin, .span_end = cuda_span_end,
};
#endif
