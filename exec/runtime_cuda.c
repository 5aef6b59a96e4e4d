/* exec/runtime_cuda.c: the CUDA backend (runtime_cuda.h): the global issue order, GPU setup
 * (partitions, streams, weights, communicator), one issuing thread per GPU with its NCCL
 * groups and same-GPU copies, the poll-and-abort watchdog, and the rows read back from CUDA
 * events; with MPI, one rank per GPU and rank 0 gathering the rows. Not here: CUDA graphs,
 * CUPTI, clock alignment across nodes (each rank's clock starts after a barrier). */
#include "exec/runtime_cuda.h"

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

#ifdef PIPESIM_MPI
#include <mpi.h>
#endif

#include "exec/issue_order.h"
#include "kernels/layer_cuda.h"

extern char **environ;

typedef struct {
    void *ptr;             // device bf16, T h elements
    cudaEvent_t ready;     // recorded once ptr holds the data, or NULL (same stream)
    int owned;             // freed once consumed (the first stage's inputs are not)
} Slot;

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

typedef struct {
    int32_t d;                   // pipeline device
    cudaStream_t compute, copy;  // copy: same-GPU transfers out of this device
    CUgreenCtx green;            // NULL without green contexts
    CUcontext ctx;               // the green context as a context, current while issuing its
                                 //   work (NULL: the primary context)
    LayerGpuCtx *lctx;
    int32_t epoch;               // its compute stream's epoch in Gpu.epochs
} Part;

typedef struct Gpu {
    struct CudaRuntime *rt;
    int32_t index;               // GPU index = NCCL rank
    int ordinal;                 // CUDA device
    ncclComm_t comm;             // NULL with one GPU
    cudaStream_t comm_stream;    // NCCL and this GPU's epoch
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
    Pend *pend;
    int32_t npend, pendcap;
    Slot *outbox;                // [S m 2] data produced here, waiting for its transfer
    Timeline tl;
} Gpu;

struct CudaRuntime {
    CudaSpec spec;
    int32_t p, S, m, k, ngpus;
    int32_t lo, hi;              // the GPUs this process drives (all, or its rank's)
    int mpi, rank;               // MPI: this process is NCCL rank `rank`, one per GPU
    int64_t bytes;               // one activation or gradient: T h bf16
    IssueItem *order;         // the global issue order (issue_order.h)
    int64_t norder;
    Gpu *gpus;
    LayerGpu *layers;            // every stage's layers, on its GPU
    int64_t *layer_at, nlayers;
    Slot *slots;                 // [(stage m + mb) 2 + grad], written and read by the consumer's GPU
    LayerGpuActs **acts;         // [stage m + mb] -> layers' buffers from F to W/BW
    CudaPartition partition;
    int sms;                     // SMs of one green partition
    pthread_barrier_t barrier;
    pthread_mutex_t mu;
    int failed;
    char why[512];
    struct timespec t0;
    int32_t round;
    volatile int *hang_flag;     // spec.hang: mapped host flag the stuck op waits on
    void *hang_flag_dev;         //   the same, as a device pointer
};

static int64_t now_ns(const CudaRuntime *rt) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)(t.tv_sec - rt->t0.tv_sec) * 1000000000 + (t.tv_nsec - rt->t0.tv_nsec);
}

static void fail(CudaRuntime *rt, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(CudaRuntime *rt, int status, const char *fmt, ...) {
    pthread_mutex_lock(&rt->mu);
    if (!rt->failed) {
        rt->failed = status;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(rt->why, sizeof rt->why, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&rt->mu);
}

static int failed(CudaRuntime *rt) {
    pthread_mutex_lock(&rt->mu);
    int f = rt->failed;
    pthread_mutex_unlock(&rt->mu);
    return f;
}

/* CUDA/NCCL checks inside the runtime: record the failure (status 1) and return -1. */
#define CUDA_OK(rt, call)                                                                      \
    do {                                                                                       \
        cudaError_t e_ = (call);                                                               \
        if (e_ != cudaSuccess) {                                                               \
            fail(rt, 1, "%s:%d: %s: %s (%s)", __FILE__, __LINE__, #call,                       \
                 cudaGetErrorString(e_), cudaGetErrorName(e_));                                \
            return -1;                                                                         \
        }                                                                                      \
    } while (0)

#define NCCL_OK(rt, call)                                                                      \
    do {                                                                                       \
        ncclResult_t r_ = (call);                                                              \
        if (r_ != ncclSuccess && r_ != ncclInProgress) {                                       \
            fail(rt, 1, "%s:%d: %s: %s", __FILE__, __LINE__, #call, ncclGetErrorString(r_));   \
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
        if (!r) return NULL;
        g->recs = r, g->reccap = cap;
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

/* A driver function with the signature of the cuda.h we were compiled with (the runtime
 * already needs a driver at least that new), or NULL. */
static void *driver_fn(const char *name) {
    void *fn = NULL;
    enum cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;
    if (cudaGetDriverEntryPointByVersion(name, &fn, CUDART_VERSION, cudaEnableDefault, &q) !=
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
    FnCtxFromGreen to_ctx = (FnCtxFromGreen)driver_fn("cuCtxFromGreenCtx");
    FnCtxGet get_ctx = (FnCtxGet)driver_fn("cuCtxGetCurrent");
    for (int32_t i = 0; to_ctx && i < g->nparts; i++)
        if (to_ctx(&g->parts[i].ctx, g->parts[i].green) != CUDA_SUCCESS) g->parts[i].ctx = NULL;
    if (!get_ctx || get_ctx(&g->primary) != CUDA_SUCCESS) g->primary = NULL;
    g->cur = g->nparts;
    return (int)parts[0].sm.smCount;
}

/* A deterministic batch per micro-batch, the CPU runtime's (runtime.c), in bf16. */
static int upload_inputs(CudaRuntime *rt, Gpu *g) {
    const Program *pr = rt->spec.pr;
    int64_t n = rt->bytes / 2;
    uint16_t *host = malloc((size_t)rt->bytes);
    g->inputs = calloc((size_t)rt->m, sizeof *g->inputs);
    if (!host || !g->inputs) return free(host), fail(rt, 1, "out of host memory"), -1;
    for (int32_t mb = 0; mb < rt->m; mb++) {
        int32_t first = program_mb_pipe(pr, mb) * program_pipe_stages(pr);
        int32_t d = pr->device_of[first];
        if (d < g->first || d >= g->first + g->nparts) continue;
        uint32_t s = 2654435761u * (uint32_t)(mb + 1);
        for (int64_t i = 0; i < n; i++) {
            s = s * 1664525u + 1013904223u;
            host[i] = layer_bf16_from_float((float)(s >> 8) / (float)(1u << 24) - 0.5f);
        }
        cudaError_t e = cudaMalloc(&g->inputs[mb], (size_t)rt->bytes);
        if (e == cudaSuccess)
            e = cudaMemcpy(g->inputs[mb], host, (size_t)rt->bytes, cudaMemcpyHostToDevice);
        if (e != cudaSuccess) {
            free(host);
            fail(rt, 1, "GPU %d: uploading the inputs: %s", g->ordinal, cudaGetErrorString(e));
            return -1;
        }
    }
    free(host);
    return 0;
}

static int gpu_setup(CudaRuntime *rt, Gpu *g, char *why, size_t whylen) {
    CUDA_OK(rt, cudaSetDevice(g->ordinal));
    CUDA_OK(rt, cudaFree(0)); // creates the primary context
    cudaMemPool_t pool;       // keep freed buffers in the pool instead of unmapping them
    uint64_t keep = UINT64_MAX;
    CUDA_OK(rt, cudaDeviceGetDefaultMemPool(&pool, g->ordinal));
    CUDA_OK(rt, cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep));
    CUDA_OK(rt, cudaStreamCreateWithFlags(&g->comm_stream, cudaStreamNonBlocking));
    int sms = g->nparts > 1 && rt->spec.green ? green_split(g) : 0;
    if (g->index == rt->lo)
        rt->partition = g->nparts == 1 ? CUDA_WHOLE_GPU : sms ? CUDA_GREEN_CONTEXTS : CUDA_STREAMS;
    if (g->index == rt->lo) rt->sms = sms;
    for (int32_t i = 0; i < g->nparts; i++) {
        Part *pt = &g->parts[i];
        pt->d = g->first + i;
        if (!sms) CUDA_OK(rt, cudaStreamCreateWithFlags(&pt->compute, cudaStreamNonBlocking));
        ctx_use(g, g->nparts);
        CUDA_OK(rt, cudaStreamCreateWithFlags(&pt->copy, cudaStreamNonBlocking));
        ctx_use(g, i);
        if (layer_gpu_ctx_create(&pt->lctx, &rt->spec.shape, pt->compute, why, whylen) != 0)
            return fail(rt, 1, "GPU %d: %s", g->ordinal, why), -1;
    }
    ctx_use(g, g->nparts);
    g->pools = calloc((size_t)g->nparts + 1, sizeof *g->pools);
    g->epochs = calloc((size_t)g->nparts + 1, sizeof *g->epochs);
    g->epoch_ns = calloc((size_t)g->nparts + 1, sizeof *g->epoch_ns);
    g->outbox = calloc((size_t)rt->S * rt->m * 2, sizeof *g->outbox);
    if (!g->pools || !g->epochs || !g->epoch_ns || !g->outbox)
        return fail(rt, 1, "out of host memory"), -1;
    for (int32_t i = 0; i <= g->nparts; i++) {
        ctx_use(g, i);
        CUDA_OK(rt, cudaEventCreate(&g->epochs[i]));
    }
    ctx_use(g, g->nparts);
    for (int32_t i = 0; i < g->nparts; i++) g->parts[i].epoch = i;
    return upload_inputs(rt, g);
}

/* Uploads every stage's layers (the CPU twin's weights, runtime.c's seeds) to its GPU. */
static int layers_upload(CudaRuntime *rt, char *why, size_t whylen) {
    const Program *pr = rt->spec.pr;
    const Plan *pl = rt->spec.pl;
    int32_t per = rt->S / pr->pipes;
    for (int32_t st = 0; st < rt->S; st++) {
        int32_t d = pr->device_of[st];
        Gpu *g = &rt->gpus[cuda_gpu_of(d, rt->k)];
        Part *pt = &g->parts[d - g->first];
        if (g->index < rt->lo || g->index >= rt->hi) continue; // another rank's
        CUDA_OK(rt, cudaSetDevice(g->ordinal));
        g->cur = -1;
        ctx_use(g, d - g->first);
        for (int64_t k = 0; k < pl->layers[st]; k++) {
            Layer cpu;
            uint64_t copy = (uint64_t)(st / per), layer = (uint64_t)(pl->first_layer[st] + k);
            if (layer_init(&cpu, &rt->spec.shape, rt->spec.seed + (copy << 20) + layer) != 0)
                return fail(rt, 1, "out of host memory for the weights"), -1;
            int rc = layer_gpu_upload(pt->lctx, &cpu, &rt->layers[rt->layer_at[st] + k], why,
                                      whylen);
            layer_free(&cpu);
            if (rc != 0) return fail(rt, 1, "GPU %d: %s", g->ordinal, why), -1;
        }
    }
    return 0;
}

/* Waits for a non-blocking communicator to finish its last call, within the watchdog. */
static int nccl_settle(CudaRuntime *rt, ncclComm_t comm, const char *what) {
    int64_t deadline = now_ns(rt) + (int64_t)(rt->spec.watchdog_s * 1e9);
    const struct timespec nap = {0, 50000};
    for (;;) {
        ncclResult_t st = ncclInProgress;
        ncclResult_t r = ncclCommGetAsyncError(comm, &st);
        if (r != ncclSuccess || (st != ncclSuccess && st != ncclInProgress)) {
            fail(rt, 1, "%s: %s", what, ncclGetErrorString(r != ncclSuccess ? r : st));
            return -1;
        }
        if (st == ncclSuccess) return 0;
        if (now_ns(rt) > deadline || failed(rt)) {
            fail(rt, 1, "%s did not finish within %g s (watchdog); aborted the communicator",
                 what, rt->spec.watchdog_s);
            ncclCommAbort(comm);
            return -1;
        }
        nanosleep(&nap, NULL);
    }
}

/* One rank per GPU, all in this process: grouped ncclCommInitRankConfig, non-blocking. */
static int comms_init(CudaRuntime *rt) {
    if (rt->ngpus < 2) return 0; // every transfer stays on the GPU
    ncclUniqueId id;
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
#ifdef PIPESIM_MPI
    if (rt->mpi) { // rank 0's id reaches every rank; each initialises its own rank
        if (rt->rank == 0) NCCL_OK(rt, ncclGetUniqueId(&id));
        MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
        Gpu *g = &rt->gpus[rt->rank];
        CUDA_OK(rt, cudaSetDevice(g->ordinal));
        NCCL_OK(rt, ncclCommInitRankConfig(&g->comm, rt->ngpus, id, rt->rank, &config));
        return nccl_settle(rt, g->comm, "ncclCommInitRankConfig");
    }
#endif
    NCCL_OK(rt, ncclGetUniqueId(&id));
    NCCL_OK(rt, ncclGroupStart());
    for (int32_t i = 0; i < rt->ngpus; i++) {
        CUDA_OK(rt, cudaSetDevice(rt->gpus[i].ordinal));
        NCCL_OK(rt, ncclCommInitRankConfig(&rt->gpus[i].comm, rt->ngpus, id, i, &config));
    }
    NCCL_OK(rt, ncclGroupEnd());
    for (int32_t i = 0; i < rt->ngpus; i++)
        if (nccl_settle(rt, rt->gpus[i].comm, "ncclCommInitRankConfig") != 0) return -1;
    return 0;
}

/* rank < 0: this process drives every GPU; else it is MPI rank `rank` of `size` on the GPU
 * of its node-local rank `local`. */
static int create(const CudaSpec *spec, CudaRuntime **out, int rank, int size, int local,
                  char *why, size_t whylen) {
    *out = NULL;
    CudaRuntime *rt = calloc(1, sizeof *rt);
    if (!rt) return snprintf(why, whylen, "out of host memory"), 1;
    rt->spec = *spec;
    const Program *pr = spec->pr;
    rt->p = pr->devices, rt->S = program_stages(pr), rt->m = pr->micro_batches;
    rt->k = spec->devices_per_gpu > 0 ? spec->devices_per_gpu : 1;
    rt->ngpus = cuda_gpus_needed(rt->p, rt->k);
    rt->bytes = layer_tokens(&spec->shape) * spec->shape.hidden * 2;
    rt->mpi = rank >= 0, rt->rank = rank < 0 ? 0 : rank;
    rt->lo = rt->mpi ? rank : 0, rt->hi = rt->mpi ? rank + 1 : rt->ngpus;
    pthread_mutex_init(&rt->mu, NULL);
    pthread_barrier_init(&rt->barrier, NULL, (unsigned)(rt->hi - rt->lo));
    clock_gettime(CLOCK_MONOTONIC, &rt->t0);
    *out = rt; // freed by the caller whatever happens
    if (rt->mpi && size != rt->ngpus) {
        snprintf(why, whylen, "mpirun started %d ranks, but %d pipeline devices at "
                 "hardware.devices_per_gpu = %d need %d GPUs, one rank each; use mpirun -np %d",
                 size, rt->p, rt->k, rt->ngpus, rt->ngpus);
        return 2;
    }
    char devwhy[256];
    int visible = cuda_device_count(devwhy, sizeof devwhy);
    if (rt->mpi ? visible == 0 : visible < rt->ngpus) {
        snprintf(why, whylen, "%d pipeline devices at hardware.devices_per_gpu = %d need %d "
                 "GPUs, %d visible%s%s; raise devices_per_gpu or use a larger machine", rt->p,
                 rt->k, rt->ngpus, visible, visible ? "" : ": ", visible ? "" : devwhy);
        return 1;
    }
    int rc = issue_order_build(pr, &rt->order, &rt->norder);
    if (rc != 0) return snprintf(why, whylen, rc == -1 ? "out of host memory"
                                 : "the Program cannot complete (program_check should have said)"), 1;
    rt->layer_at = malloc((size_t)rt->S * sizeof *rt->layer_at);
    for (int32_t st = 0; rt->layer_at && st < rt->S; st++)
        rt->layer_at[st] = rt->nlayers, rt->nlayers += spec->pl->layers[st];
    rt->layers = calloc((size_t)rt->nlayers + 1, sizeof *rt->layers);
    rt->slots = calloc((size_t)rt->S * rt->m * 2, sizeof *rt->slots);
    rt->acts = calloc((size_t)rt->S * rt->m, sizeof *rt->acts);
    rt->gpus = calloc((size_t)rt->ngpus, sizeof *rt->gpus);
    if (!rt->layer_at || !rt->layers || !rt->slots || !rt->acts || !rt->gpus)
        return snprintf(why, whylen, "out of host memory"), 1;
    for (int32_t i = 0; i < rt->ngpus; i++) {
        Gpu *g = &rt->gpus[i];
        g->rt = rt, g->index = i, g->ordinal = rt->mpi ? local % visible : i, g->first = i * rt->k;
        g->nparts = rt->p - g->first < rt->k ? rt->p - g->first : rt->k;
        g->parts = calloc((size_t)g->nparts, sizeof *g->parts);
        if (!g->parts) return snprintf(why, whylen, "out of host memory"), 1;
    }
    for (int32_t i = rt->lo; i < rt->hi && !failed(rt); i++) gpu_setup(rt, &rt->gpus[i], why, whylen);
    if (!failed(rt) && spec->hang) {
        void *h = NULL;
        if (cudaHostAlloc(&h, sizeof(int), cudaHostAllocMapped) != cudaSuccess ||
            cudaHostGetDevicePointer(&rt->hang_flag_dev, h, 0) != cudaSuccess)
            fail(rt, 1, "cudaHostAlloc(mapped) for the injected hang failed");
        rt->hang_flag = h;
        if (h) *rt->hang_flag = 0;
    }
    if (!failed(rt)) layers_upload(rt, why, whylen);
    if (!failed(rt)) comms_init(rt);
    if (failed(rt)) return snprintf(why, whylen, "%s", rt->why), 1;
    return 0;
}

int cuda_runtime_create(const CudaSpec *spec, CudaRuntime **out, char *why, size_t whylen) {
    return create(spec, out, -1, 0, 0, why, whylen);
}

#ifdef PIPESIM_MPI
int cuda_runtime_create_rank(const CudaSpec *spec, CudaRuntime **out, char *why, size_t whylen) {
    int rank, size, local;
    MPI_Comm node;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &local);
    MPI_Comm_free(&node);
    int rc = create(spec, out, rank, size, local, why, whylen), worst = rc;
    MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD); // all go on, or none
    if (rc == 0 && worst != 0) snprintf(why, whylen, "another rank failed to start");
    return rc ? rc : worst;
}
#endif

int cuda_runtime_rank(const CudaRuntime *rt) { return rt->rank; }

CudaPartition cuda_runtime_partition(const CudaRuntime *rt, int *sms_per_device, int *gpus) {
    if (sms_per_device) *sms_per_device = rt->sms;
    if (gpus) *gpus = rt->ngpus;
    return rt->partition;
}

int cuda_runtime_gpus_used(const CudaRuntime *rt, int *gpu, int *ordinal, int max) {
    int n = 0;
    for (int32_t i = rt->lo; rt->gpus && i < rt->hi && n < max; i++, n++)
        gpu[n] = rt->gpus[i].index, ordinal[n] = rt->gpus[i].ordinal;
    return n;
}

int cuda_runtime_grads(CudaRuntime *rt, int32_t stage, int32_t k, Layer *cpu, char *why,
                       size_t whylen) {
    if (stage < 0 || stage >= rt->S || k < 0 || k >= rt->spec.pl->layers[stage])
        return snprintf(why, whylen, "no layer %d of stage %d", k, stage), -1;
    int32_t d = rt->spec.pr->device_of[stage];
    Gpu *g = &rt->gpus[cuda_gpu_of(d, rt->k)];
    if (cudaSetDevice(g->ordinal) != cudaSuccess)
        return snprintf(why, whylen, "cudaSetDevice failed"), -1;
    g->cur = -1;
    ctx_use(g, d - g->first);
    return layer_gpu_grads(g->parts[d - g->first].lctx, &rt->layers[rt->layer_at[stage] + k],
                           cpu, why, whylen);
}

void cuda_runtime_free(CudaRuntime *rt) {
    if (!rt) return;
    int clean = !rt->failed; // after an abort, streams may never drain: leave it to exit
    FnGreenDestroy destroy = (FnGreenDestroy)driver_fn("cuGreenCtxDestroy");
    for (int32_t i = rt->lo; rt->gpus && i < rt->hi; i++) {
        Gpu *g = &rt->gpus[i];
        if (clean && cudaSetDevice(g->ordinal) == cudaSuccess) {
            g->cur = -1;
            streams_sync(g);
            for (int32_t mb = 0; g->inputs && mb < rt->m; mb++) cudaFree(g->inputs[mb]);
            for (int32_t q = 0; g->pools && q <= g->nparts; q++)
                for (int64_t e = 0; e < g->pools[q].cap; e++) cudaEventDestroy(g->pools[q].ev[e]);
            for (int32_t e = 0; g->epochs && e <= g->nparts; e++) cudaEventDestroy(g->epochs[e]);
            for (int32_t j = 0; j < g->nparts; j++) {
                Part *pt = &g->parts[j];
                ctx_use(g, j);
                layer_gpu_ctx_free(pt->lctx);
                ctx_use(g, g->nparts);
                if (pt->compute) cudaStreamDestroy(pt->compute);
                if (pt->copy) cudaStreamDestroy(pt->copy);
                if (pt->green && destroy) destroy(pt->green);
            }
            if (g->comm_stream) cudaStreamDestroy(g->comm_stream);
        }
        if (g->comm) clean ? ncclCommDestroy(g->comm) : ncclCommAbort(g->comm);
        for (int32_t q = 0; g->pools && q <= g->nparts; q++) free(g->pools[q].ev);
        free(g->parts), free(g->inputs), free(g->epochs), free(g->epoch_ns), free(g->pools);
        free(g->recs), free(g->pend), free(g->outbox);
        timeline_free(&g->tl);
    }
    for (int64_t i = 0; clean && rt->layers && i < rt->nlayers; i++) {
        int32_t st = 0;
        while (st + 1 < rt->S && rt->layer_at[st + 1] <= i) st++;
        int32_t d = rt->spec.pr->device_of[st], gi = cuda_gpu_of(d, rt->k);
        if (gi >= rt->lo && gi < rt->hi && cudaSetDevice(rt->gpus[gi].ordinal) == cudaSuccess)
            layer_gpu_free(&rt->layers[i]);
    }
    if (rt->hang_flag) cudaFreeHost((void *)rt->hang_flag);
    pthread_mutex_destroy(&rt->mu);
    pthread_barrier_destroy(&rt->barrier);
    free(rt->order), free(rt->layers), free(rt->layer_at), free(rt->slots), free(rt->acts);
    free(rt->gpus), free(rt);
}

/* ---- issuing one round ---- */

static int64_t slot_of(const CudaRuntime *rt, int32_t stage, int32_t mb, int grad) {
    return ((int64_t)stage * rt->m + mb) * 2 + grad;
}

static TimelineOp row_of(const CudaRuntime *rt, int32_t device, int32_t peer, const IssueItem *it,
                         int16_t chunk, Stream stream, int64_t bytes) {
    return (TimelineOp){.bytes = bytes, .device = device, .peer = peer, .chunk = chunk,
                        .micro_batch = rt->round * rt->m + it->mb, .kind = it->kind,
                        .stream = (uint8_t)stream};
}

/* Runs op's layers on its device's stream: F in order, B/W/BW in reverse; *data (owned or not)
 * is replaced by the output (NULL for W). */
static int run_layers(CudaRuntime *rt, Part *pt, const IssueItem *it, void **data, int *owned) {
    int64_t nl = rt->spec.pl->layers[it->stage], slot = (int64_t)it->stage * rt->m + it->mb;
    LayerGpu *layers = &rt->layers[rt->layer_at[it->stage]];
    char why[256];
    if (it->kind == OP_F) {
        rt->acts[slot] = calloc((size_t)(nl ? nl : 1), sizeof(LayerGpuActs));
        if (!rt->acts[slot]) return fail(rt, 1, "out of host memory"), -1;
        for (int64_t k = 0; k < nl; k++)
            if (layer_gpu_acts_alloc(pt->lctx, &rt->acts[slot][k], why, sizeof why) != 0)
                return fail(rt, 1, "device %d: %s", pt->d, why), -1;
    }
    LayerGpuActs *acts = rt->acts[slot];
    for (int64_t i = 0; i < nl; i++) {
        int64_t k = it->kind == OP_F ? i : nl - 1 - i;
        void *next = NULL;
        if (it->kind != OP_W) CUDA_OK(rt, cudaMallocAsync(&next, (size_t)rt->bytes, pt->compute));
        int rc = 0;
        if (it->kind == OP_F || it->kind == OP_B || it->kind == OP_BW)
            rc = layer_gpu_pass(pt->lctx, it->kind == OP_F ? OP_F : OP_B, &layers[k], &acts[k],
                                *data, next, why, sizeof why);
        if (rc == 0 && (it->kind == OP_W || it->kind == OP_BW))
            rc = layer_gpu_pass(pt->lctx, OP_W, &layers[k], &acts[k], NULL, NULL, why, sizeof why);
        if (rc != 0) return fail(rt, 1, "device %d: %s", pt->d, why), -1;
        if (next) {
            if (*owned) CUDA_OK(rt, cudaFreeAsync(*data, pt->compute));
            *data = next, *owned = 1;
        }
    }
    if (it->kind == OP_W || it->kind == OP_BW) {
        for (int64_t k = 0; k < nl; k++) layer_gpu_acts_free(pt->lctx, &acts[k]);
        free(acts);
        rt->acts[slot] = NULL;
    }
    return 0;
}

static int issue_compute(Gpu *g, const IssueItem *it) {
    CudaRuntime *rt = g->rt;
    const Program *pr = rt->spec.pr;
    Part *pt = &g->parts[it->dev - g->first];
    const ProgramOp *op = &pr->ops[it->op];
    void *data = NULL;
    ctx_use(g, it->dev - g->first);
    int owned = 0;
    if (it->kind != OP_W) {
        int grad = it->kind != OP_F;
        int32_t in = program_input_stage(pr, (OpKind)it->kind, it->stage);
        if (in < 0 && !grad) {
            data = g->inputs[it->mb];
        } else {
            Slot *s = &rt->slots[slot_of(rt, it->stage, it->mb, grad)];
            data = s->ptr, owned = s->owned;
            if (s->ready) CUDA_OK(rt, cudaStreamWaitEvent(pt->compute, s->ready, 0));
            *s = (Slot){0};
        }
        if (!data) return fail(rt, 1, "device %d: no input for op %lld", it->dev,
                               (long long)(it->op - pr->start[it->dev])), -1;
    }
    TimelineOp row = row_of(rt, it->dev, -1, it, op->chunk, STREAM_COMPUTE, 0);
    Rec *r = rec_new(g, pt->epoch, it->op - pr->start[it->dev], &row);
    if (!r) return fail(rt, 1, "out of memory for events"), -1;
    CUDA_OK(rt, cudaEventRecord(r->a, pt->compute));
    char why[128];
    if (rt->hang_flag && it->dev == rt->spec.hang_device && it->op == pr->start[it->dev] &&
        rt->round == 0 && layer_gpu_spin(pt->compute, rt->hang_flag_dev, why, sizeof why) != 0)
        return fail(rt, 1, "%s", why), -1;
    if (run_layers(rt, pt, it, &data, &owned) != 0) return -1;
    CUDA_OK(rt, cudaEventRecord(r->b, pt->compute));
    if (it->kind == OP_W) return 0;
    int grad = it->kind != OP_F;
    int32_t out = program_output_stage(pr, (OpKind)it->kind, it->stage);
    if (out < 0 && grad) { // the first stage's input gradient: nobody takes it
        if (owned) CUDA_OK(rt, cudaFreeAsync(data, pt->compute));
        return 0;
    }
    if (out < 0) // the loss gradient d(|y|^2 / 2) / dy = y, for this stage's own B
        return rt->slots[slot_of(rt, it->stage, it->mb, 1)] = (Slot){data, NULL, owned}, 0;
    if (pr->device_of[out] == it->dev)
        return rt->slots[slot_of(rt, out, it->mb, grad)] = (Slot){data, NULL, owned}, 0;
    g->outbox[slot_of(rt, out, it->mb, grad)] = (Slot){data, r->b, owned};
    return 0;
}

/* Between two devices of this GPU: a copy on the producer's copy stream. */
static int issue_local(Gpu *g, const IssueItem *it) {
    CudaRuntime *rt = g->rt;
    Part *src = &g->parts[it->dev - g->first];
    int64_t si = slot_of(rt, it->stage, it->mb, it->grad);
    Slot o = g->outbox[si];
    ctx_use(g, g->nparts);
    g->outbox[si] = (Slot){0};
    int16_t chunk = (int16_t)rt->spec.pr->chunk_of[it->stage];
    TimelineOp send = row_of(rt, it->dev, it->dst, it, chunk, STREAM_SEND, rt->bytes);
    TimelineOp recv = row_of(rt, it->dst, it->dev, it, chunk, STREAM_RECV, rt->bytes);
    Rec *rs = rec_new(g, g->nparts, -1, &send);
    if (!rs) return fail(rt, 1, "out of memory for events"), -1;
    cudaEvent_t a = rs->a, b = rs->b; // rs moves when recs grow
    void *dst = NULL;
    CUDA_OK(rt, cudaStreamWaitEvent(src->copy, o.ready, 0));
    CUDA_OK(rt, cudaEventRecord(a, src->copy));
    CUDA_OK(rt, cudaMallocAsync(&dst, (size_t)rt->bytes, src->copy));
    CUDA_OK(rt, cudaMemcpyAsync(dst, o.ptr, (size_t)rt->bytes, cudaMemcpyDeviceToDevice, src->copy));
    if (o.owned) CUDA_OK(rt, cudaFreeAsync(o.ptr, src->copy));
    CUDA_OK(rt, cudaEventRecord(b, src->copy));
    Rec *rr = rec_new(g, g->nparts, -1, &recv);
    if (!rr) return fail(rt, 1, "out of memory for events"), -1;
    rr->a = a, rr->b = b; // the same span on both devices
    rt->slots[si] = (Slot){dst, b, 1};
    return 0;
}

/* Adds this GPU's half of a transfer to another GPU to the group being built. */
static int pend_add(Gpu *g, const IssueItem *it, int send) {
    CudaRuntime *rt = g->rt;
    if (g->npend == g->pendcap) {
        int32_t cap = g->pendcap ? 2 * g->pendcap : 16;
        Pend *p = realloc(g->pend, (size_t)cap * sizeof *p);
        if (!p) return fail(rt, 1, "out of host memory"), -1;
        g->pend = p, g->pendcap = cap;
    }
    int64_t si = slot_of(rt, it->stage, it->mb, it->grad);
    int16_t chunk = (int16_t)rt->spec.pr->chunk_of[it->stage];
    Pend *p = &g->pend[g->npend++];
    ctx_use(g, g->nparts);
    int32_t me = send ? it->dev : it->dst, peer = send ? it->dst : it->dev;
    *p = (Pend){.send = (uint8_t)send, .peer = cuda_gpu_of(peer, rt->k), .slot = si,
                .row = row_of(rt, me, peer, it, chunk, send ? STREAM_SEND : STREAM_RECV,
                              rt->bytes)};
    if (send) {
        Slot o = g->outbox[si];
        g->outbox[si] = (Slot){0};
        p->ptr = o.ptr, p->ready = o.ready;
        if (!o.owned) { // never happens (outputs are fresh buffers), but NCCL must not free it
            void *copy = NULL;
            CUDA_OK(rt, cudaMallocAsync(&copy, (size_t)rt->bytes, g->comm_stream));
            CUDA_OK(rt, cudaStreamWaitEvent(g->comm_stream, o.ready, 0));
            CUDA_OK(rt, cudaMemcpyAsync(copy, o.ptr, (size_t)rt->bytes, cudaMemcpyDeviceToDevice,
                                        g->comm_stream));
            p->ptr = copy;
        }
    } else {
        CUDA_OK(rt, cudaMallocAsync(&p->ptr, (size_t)rt->bytes, g->comm_stream));
    }
    return 0;
}

/* Posts the pending sends and receives as one NCCL group on the comm stream, timed as one
 * span: each transfer's rows cover the whole group. */
static int group_flush(Gpu *g) {
    CudaRuntime *rt = g->rt;
    if (g->npend == 0) return 0;
    ctx_use(g, g->nparts);
    for (int32_t i = 0; i < g->npend; i++)
        if (g->pend[i].send) CUDA_OK(rt, cudaStreamWaitEvent(g->comm_stream, g->pend[i].ready, 0));
    Rec *r0 = rec_new(g, g->nparts, -1, &g->pend[0].row);
    if (!r0) return fail(rt, 1, "out of memory for events"), -1;
    cudaEvent_t a = r0->a, b = r0->b; // r0 moves when recs grow
    CUDA_OK(rt, cudaEventRecord(a, g->comm_stream));
    NCCL_OK(rt, ncclGroupStart());
    for (int32_t i = 0; i < g->npend; i++) {
        Pend *p = &g->pend[i];
        size_t count = (size_t)rt->bytes / 2;
        if (p->send) NCCL_OK(rt, ncclSend(p->ptr, count, ncclBfloat16, p->peer, g->comm, g->comm_stream));
        else NCCL_OK(rt, ncclRecv(p->ptr, count, ncclBfloat16, p->peer, g->comm, g->comm_stream));
    }
    NCCL_OK(rt, ncclGroupEnd());
    if (nccl_settle(rt, g->comm, "ncclGroupEnd") != 0) return -1;
    CUDA_OK(rt, cudaEventRecord(b, g->comm_stream));
    for (int32_t i = 0; i < g->npend; i++) {
        Pend *p = &g->pend[i];
        Rec *r = i == 0 ? NULL : rec_new(g, g->nparts, -1, &p->row);
        if (i > 0 && !r) return fail(rt, 1, "out of memory for events"), -1;
        if (r) r->a = a, r->b = b; // every transfer of the group spans the group
        if (p->send) CUDA_OK(rt, cudaFreeAsync(p->ptr, g->comm_stream));
        else rt->slots[p->slot] = (Slot){p->ptr, b, 1};
    }
    g->npend = 0;
    return 0;
}

static int issue_item(Gpu *g, const IssueItem *it) {
    int here = it->dev >= g->first && it->dev < g->first + g->nparts;
    int there = it->xfer && it->dst >= g->first && it->dst < g->first + g->nparts;
    if (!it->xfer) return here ? (group_flush(g) != 0 ? -1 : issue_compute(g, it)) : 0;
    if (here && there) return issue_local(g, it);
    if (!here && !there) return 0;
    if (pend_add(g, it, here) != 0) return -1;
    return g->rt->spec.group ? 0 : group_flush(g);
}

/* ---- waiting, the watchdog, the rows ---- */

static void abort_comm(Gpu *g) {
    if (g->comm) ncclCommAbort(g->comm);
    g->comm = NULL;
}

/* Polls every recorded span until all completed; aborts the communicator when nothing
 * completes for watchdog_s, on an asynchronous NCCL error, or when another GPU failed. */
static int round_wait(Gpu *g) {
    CudaRuntime *rt = g->rt;
    uint8_t *done = calloc((size_t)g->nrec + 1, 1);
    if (!done) return fail(rt, 1, "out of host memory"), -1;
    int64_t left = g->nrec, last = now_ns(rt);
    const struct timespec nap = {0, 50000};
    while (left > 0) {
        int64_t before = left;
        for (int64_t i = 0; i < g->nrec; i++) {
            if (done[i]) continue;
            cudaError_t e = cudaEventQuery(g->recs[i].b);
            if (e == cudaSuccess) done[i] = 1, left--;
            else if (e != cudaErrorNotReady) {
                fail(rt, 1, "GPU %d: %s", g->ordinal, cudaGetErrorString(e));
                break;
            }
        }
        ncclResult_t st = ncclSuccess;
        if (g->comm && ncclCommGetAsyncError(g->comm, &st) == ncclSuccess && st != ncclSuccess &&
            st != ncclInProgress)
            fail(rt, 1, "GPU %d: NCCL: %s", g->ordinal, ncclGetErrorString(st));
        if (left < before) last = now_ns(rt);
        if (left > 0 && now_ns(rt) - last > (int64_t)(rt->spec.watchdog_s * 1e9)) {
            for (int64_t i = 0; i < g->nrec; i++) {
                if (done[i]) continue;
                char name[64] = "a transfer";
                const TimelineOp *row = &g->recs[i].row;
                if (g->recs[i].op >= 0)
                    program_op_str(&rt->spec.pr->ops[rt->spec.pr->start[row->device] + g->recs[i].op],
                                   name, sizeof name);
                fail(rt, 1, "device %d op %lld (%s) did not complete within %g s (watchdog; "
                     "a peer never posted its matching send or receive, or a kernel hung); "
                     "aborted the NCCL communicator of every GPU", row->device,
                     (long long)g->recs[i].op, name, rt->spec.watchdog_s);
                break;
            }
        }
        if (failed(rt)) break;
        if (left > 0) nanosleep(&nap, NULL);
    }
    free(done);
    if (failed(rt) && rt->hang_flag) *rt->hang_flag = 1; // the injected hang ends with the run
    if (failed(rt)) abort_comm(g);
    return failed(rt) ? -1 : 0;
}

static int rows_collect(Gpu *g) {
    CudaRuntime *rt = g->rt;
    for (int64_t i = 0; i < g->nrec; i++) {
        Rec *r = &g->recs[i];
        float a = 0, b = 0;
        CUDA_OK(rt, cudaEventElapsedTime(&a, g->epochs[r->epoch], r->a));
        CUDA_OK(rt, cudaEventElapsedTime(&b, g->epochs[r->epoch], r->b));
        TimelineOp row = r->row;
        row.start_ns = g->epoch_ns[r->epoch] + llround((double)a * 1e6);
        row.end_ns = g->epoch_ns[r->epoch] + llround((double)b * 1e6);
        if (row.end_ns < row.start_ns) row.end_ns = row.start_ns;
        if (timeline_push(&g->tl, &row) != 0) return fail(rt, 1, "out of memory for rows"), -1;
    }
    return 0;
}

/* Waits for every stream of this GPU (green contexts' included, which a device-wide
 * synchronize of the primary context might not cover). */
static int streams_sync(Gpu *g) {
    CudaRuntime *rt = g->rt;
    for (int32_t i = 0; i < g->nparts; i++) {
        ctx_use(g, i);
        CUDA_OK(rt, cudaStreamSynchronize(g->parts[i].compute));
        CUDA_OK(rt, cudaStreamSynchronize(g->parts[i].copy));
    }
    ctx_use(g, g->nparts);
    CUDA_OK(rt, cudaStreamSynchronize(g->comm_stream));
    return 0;
}

/* Records this GPU's epochs, one per stream context, each stamped with the host clock once it
 * completed (the GPU is idle, so that is within a launch latency of the epoch). */
static int epochs_record(Gpu *g) {
    CudaRuntime *rt = g->rt;
    if (streams_sync(g) != 0) return -1;
    for (int32_t i = 0; i <= g->nparts; i++) {
        cudaStream_t s = i < g->nparts ? g->parts[i].compute : g->comm_stream;
        ctx_use(g, i);
        CUDA_OK(rt, cudaEventRecord(g->epochs[i], s));
        CUDA_OK(rt, cudaEventSynchronize(g->epochs[i]));
        g->epoch_ns[i] = now_ns(rt);
    }
    return 0;
}

/* Untimed: one F, B and W pass per device (cuBLAS picks and loads its kernels) and one
 * exchange with every GPU this one talks to (NCCL connects lazily), then zero gradients. */
static int warmup(Gpu *g) {
    CudaRuntime *rt = g->rt;
    char why[256];
    for (int32_t i = 0; i < g->nparts && rt->spec.warmup; i++) {
        Part *pt = &g->parts[i];
        LayerGpuActs a;
        ctx_use(g, i);
        void *x = NULL, *y = NULL;
        int32_t st = -1;
        for (int32_t s = 0; s < rt->S && st < 0; s++)
            if (rt->spec.pr->device_of[s] == pt->d && rt->spec.pl->layers[s] > 0) st = s;
        if (st < 0) continue;
        LayerGpu *l = &rt->layers[rt->layer_at[st]];
        CUDA_OK(rt, cudaMallocAsync(&x, (size_t)rt->bytes, pt->compute));
        CUDA_OK(rt, cudaMallocAsync(&y, (size_t)rt->bytes, pt->compute));
        CUDA_OK(rt, cudaMemsetAsync(x, 0, (size_t)rt->bytes, pt->compute));
        if (layer_gpu_acts_alloc(pt->lctx, &a, why, sizeof why) != 0 ||
            layer_gpu_pass(pt->lctx, OP_F, l, &a, x, y, why, sizeof why) != 0 ||
            layer_gpu_pass(pt->lctx, OP_B, l, &a, x, y, why, sizeof why) != 0 ||
            layer_gpu_pass(pt->lctx, OP_W, l, &a, NULL, NULL, why, sizeof why) != 0)
            return fail(rt, 1, "device %d warm-up: %s", pt->d, why), -1;
        layer_gpu_acts_free(pt->lctx, &a);
        CUDA_OK(rt, cudaFreeAsync(x, pt->compute));
        CUDA_OK(rt, cudaFreeAsync(y, pt->compute));
        for (int32_t s = 0; s < rt->S; s++)
            for (int64_t k = 0; rt->spec.pr->device_of[s] == pt->d && k < rt->spec.pl->layers[s]; k++)
                for (int w = 0; w < 4; w++) {
                    LayerGpu *lk = &rt->layers[rt->layer_at[s] + k];
                    LayerBuf gb = (LayerBuf)(LB_GQKV + w);
                    CUDA_OK(rt, cudaMemsetAsync(lk->g[w], 0, (size_t)layer_buf_elems(&lk->sh, gb) * 4,
                                                pt->compute));
                }
    }
    ctx_use(g, g->nparts);
    if (g->comm && rt->spec.warmup) {
        uint8_t *peer = calloc((size_t)rt->ngpus, 1);
        void *buf = NULL;
        if (!peer) return fail(rt, 1, "out of host memory"), -1;
        for (int64_t i = 0; i < rt->norder; i++) {
            const IssueItem *it = &rt->order[i];
            int32_t a = cuda_gpu_of(it->dev, rt->k), b = cuda_gpu_of(it->dst, rt->k);
            if (it->xfer && a != b && (a == g->index || b == g->index)) peer[a == g->index ? b : a] = 1;
        }
        CUDA_OK(rt, cudaMalloc(&buf, (size_t)2 * rt->ngpus * 2));
        NCCL_OK(rt, ncclGroupStart());
        for (int32_t q = 0; q < rt->ngpus; q++) {
            if (!peer[q]) continue;
            NCCL_OK(rt, ncclSend((char *)buf + 4 * q, 1, ncclBfloat16, q, g->comm, g->comm_stream));
            NCCL_OK(rt, ncclRecv((char *)buf + 4 * q + 2, 1, ncclBfloat16, q, g->comm, g->comm_stream));
        }
        NCCL_OK(rt, ncclGroupEnd());
        free(peer);
        if (nccl_settle(rt, g->comm, "NCCL warm-up exchange") != 0) return -1;
        g->nrec = 0;
        TimelineOp none = {0};
        Rec *r = rec_new(g, g->nparts, -1, &none);
        if (!r) return fail(rt, 1, "out of memory for events"), -1;
        CUDA_OK(rt, cudaEventRecord(r->b, g->comm_stream));
        int rc = round_wait(g);
        cudaFree(buf);
        if (rc != 0) return -1;
    }
    return streams_sync(g);
}

static void *gpu_main(void *arg) {
    Gpu *g = arg;
    CudaRuntime *rt = g->rt;
    if (cudaSetDevice(g->ordinal) != cudaSuccess) fail(rt, 1, "GPU %d: cudaSetDevice", g->ordinal);
    g->cur = -1; // a new thread: make the contexts current again as work is issued
    if (rt->round == 0 && !failed(rt)) warmup(g);
    pthread_barrier_wait(&rt->barrier); // the epochs of all GPUs within one launch latency
#ifdef PIPESIM_MPI
    if (rt->mpi) MPI_Barrier(MPI_COMM_WORLD);
#endif
    if (!failed(rt)) epochs_record(g);
    for (int32_t q = 0; q <= g->nparts; q++) g->pools[q].n = 0;
    g->nrec = 0, g->npend = 0;
    for (int64_t i = 0; i < rt->norder && !failed(rt); i++)
        if (issue_item(g, &rt->order[i]) != 0) break;
    if (!failed(rt)) group_flush(g);
    round_wait(g); // also when another GPU failed: aborts this one's communicator
    if (!failed(rt)) rows_collect(g);
    return NULL;
}

#ifdef PIPESIM_MPI
/* Rank 0 collects every rank's rows (each on its own clock, started after a barrier). */
static int gather_rows(CudaRuntime *rt, const Timeline *mine, Timeline *tl) {
    if (rt->rank != 0) {
        int64_t n = (int64_t)mine->n;
        MPI_Send(&n, 1, MPI_INT64_T, 0, 100, MPI_COMM_WORLD);
        MPI_Send(mine->ops, (int)(mine->n * sizeof *mine->ops), MPI_BYTE, 0, 101, MPI_COMM_WORLD);
        return 0;
    }
    int rc = 0;
    for (size_t i = 0; i < mine->n && rc == 0; i++) rc = timeline_push(tl, &mine->ops[i]);
    for (int r = 1; r < rt->ngpus; r++) {
        int64_t n;
        MPI_Recv(&n, 1, MPI_INT64_T, r, 100, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        TimelineOp *rows = malloc((size_t)(n ? n : 1) * sizeof *rows);
        if (!rows) return -1; // the rank aborts the job
        MPI_Recv(rows, (int)((size_t)n * sizeof *rows), MPI_BYTE, r, 101, MPI_COMM_WORLD,
                 MPI_STATUS_IGNORE);
        for (int64_t i = 0; i < n && rc == 0; i++) rc = timeline_push(tl, &rows[i]);
        free(rows);
    }
    return rc;
}
#endif

int cuda_runtime_run(CudaRuntime *rt, Timeline *tl, char *why, size_t whylen) {
    int32_t runs = rt->spec.iterations / rt->spec.pr->iterations, mine = rt->hi - rt->lo;
    pthread_t *th = calloc((size_t)mine, sizeof *th);
    if (!th) return snprintf(why, whylen, "out of host memory"), 1;
#ifdef PIPESIM_MPI
    if (rt->mpi) MPI_Barrier(MPI_COMM_WORLD); // every rank's clock starts together
#endif
    clock_gettime(CLOCK_MONOTONIC, &rt->t0);
    for (rt->round = 0; rt->round < runs && !failed(rt); rt->round++) {
        int32_t started = 0;
        for (int32_t i = 0; i < mine; i++, started++)
            if (pthread_create(&th[i], NULL, gpu_main, &rt->gpus[rt->lo + i]) != 0) {
                fail(rt, 1, "cannot start the thread of GPU %d", rt->lo + i);
                break;
            }
        if (started < mine) { // the barrier would wait for them forever
            for (int32_t i = 0; i < started; i++) pthread_cancel(th[i]);
        }
        for (int32_t i = 0; i < started; i++) pthread_join(th[i], NULL);
    }
    free(th);
#ifdef PIPESIM_MPI
    if (rt->mpi) { // all ranks agree whether the run stands before gathering it
        int bad = failed(rt), any = bad;
        MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
        if (any && !bad) fail(rt, any, "another rank failed (its message says why)");
        if (!any && gather_rows(rt, &rt->gpus[rt->rank].tl, tl) != 0)
            fail(rt, 1, "rank %d: out of memory for the timeline", rt->rank);
        if (rt->failed) snprintf(why, whylen, "%s", rt->why);
        return rt->failed;
    }
#endif
    for (int32_t i = rt->lo; i < rt->hi && !failed(rt); i++) {
        Gpu *g = &rt->gpus[i];
        for (size_t j = 0; j < g->tl.n; j++)
            if (timeline_push(tl, &g->tl.ops[j]) != 0) fail(rt, 1, "out of memory for the timeline");
        g->tl.n = 0;
    }
    if (rt->failed) snprintf(why, whylen, "%s", rt->why);
    return rt->failed;
}
