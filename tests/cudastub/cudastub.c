/* tests/cudastub/cudastub.c: the CUDA runtime, cuBLAS and NCCL subset of the stand-in headers,
 * on the CPU, for tests only (never linked into bin/pexec). Every stream operation executes
 * when issued, so each stream is in order and an event's time is the host clock at its
 * record. What a GPU does asynchronously is kept where the backend can see it: a stream made
 * to spin (layer_gpu_spin) is stuck until its flag is set, and so are the events recorded on
 * it, the streams that wait on those events and the receivers of its NCCL sends; queries say
 * cudaErrorNotReady until then, so the watchdog's polling sees a hang as on a GPU. Faults are
 * injected by PSIM_STUB_NCCL_FAIL (cudastub_types.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cuda.h"
#include "cuda_runtime_api.h"
#include "cublas_v2.h"
#include "nccl.h"

#define cudaErrorLaunchTimeout ((cudaError_t)702)

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static cudaError_t dev_ok(int dev);
static int inited, gpus = 4;
static int64_t nccl_fail_at; // 0: never
static CudastubCounts counts;

static void init(void) {
    if (inited) return;
    inited = 1;
    const char *g = getenv("PSIM_STUB_GPUS"), *f = getenv("PSIM_STUB_NCCL_FAIL");
    if (g && *g) gpus = atoi(g);
    if (f && *f) nccl_fail_at = atoll(f);
}

void cudastub_reset(int n, int fail_at) {
    pthread_mutex_lock(&lock);
    inited = 1, gpus = n, nccl_fail_at = fail_at;
    memset(&counts, 0, sizeof counts);
    pthread_mutex_unlock(&lock);
}

void cudastub_counts(CudastubCounts *c) {
    pthread_mutex_lock(&lock);
    *c = counts;
    pthread_mutex_unlock(&lock);
}

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void nap(void) {
    const struct timespec t = {0, 200000};
    nanosleep(&t, NULL);
}

/* ---- the runtime ---- */

struct CUstream_st {
    const volatile int *stuck; // behind a spin until *stuck != 0
};
struct CUevent_st {
    int64_t t_ns;
    int recorded;
    const volatile int *stuck;
};
static struct CUstream_st default_stream;

static cudaStream_t st_of(cudaStream_t s) { return s ? s : &default_stream; }
static int is_stuck(const volatile int *f) { return f && !*f; }

const volatile int *cudastub_stream_stuck(cudaStream_t s) {
    s = st_of(s);
    return is_stuck(s->stuck) ? s->stuck : NULL;
}

void cudastub_stream_stick(cudaStream_t s, const volatile int *flag) { st_of(s)->stuck = flag; }

const char *cudaGetErrorString(cudaError_t e) {
    switch ((int)e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInsufficientDriver: return "CUDA driver version is insufficient for CUDA "
                                             "runtime version (the CUDA stand-in, PSIM_STUB_GPUS=0)";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorNotReady: return "device not ready";
    case 702: return "the launch timed out and was terminated (a stuck stream of the stand-in)";
    default: return "unknown error";
    }
}

const char *cudaGetErrorName(cudaError_t e) {
    switch ((int)e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case 702: return "cudaErrorLaunchTimeout";
    default: return "cudaErrorUnknown";
    }
}

cudaError_t cudaGetDeviceCount(int *n) {
    pthread_mutex_lock(&lock);
    init();
    int g = gpus;
    pthread_mutex_unlock(&lock);
    if (g <= 0) return cudaErrorInsufficientDriver;
    *n = g;
    return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int *v) { return *v = CUDART_VERSION, cudaSuccess; }
cudaError_t cudaDriverGetVersion(int *v) { return *v = 12040, cudaSuccess; }

static cudaError_t dev_ok(int dev) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) return cudaErrorInsufficientDriver;
    return dev >= 0 && dev < n ? cudaSuccess : cudaErrorInvalidDevice;
}

cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *p, int dev) {
    cudaError_t e = dev_ok(dev);
    if (e != cudaSuccess) return e;
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "CUDA stand-in (CPU)");
    p->major = 9, p->minor = 0, p->multiProcessorCount = 132;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int dev) { return dev_ok(dev); }

/* ---- the driver's green contexts (cuda.h's types), when turned on ---- */

struct CUctx_st {
    int green;
};
struct CUgreenCtx_st {
    struct CUctx_st ctx;
};
struct CUdevResourceDesc_st {
    unsigned sms;
};
static struct CUctx_st primary_ctx;
static _Thread_local CUcontext thread_ctx; // NULL: the primary
static int green_on = -1;
static char green_fail[64];
#define STUB_SMS 132u
#define STUB_GRAIN 8u

void cudastub_green(int on, const char *fail_fn) {
    pthread_mutex_lock(&lock);
    green_on = on;
    snprintf(green_fail, sizeof green_fail, "%s", fail_fn ? fail_fn : "");
    pthread_mutex_unlock(&lock);
}

int cudastub_thread_ctx_green(void) { return thread_ctx && thread_ctx->green; }

void cudastub_note_sm_target(int sms) {
    pthread_mutex_lock(&lock);
    if (!counts.sm_target_min || sms < counts.sm_target_min) counts.sm_target_min = sms;
    pthread_mutex_unlock(&lock);
}

static int fails(const char *fn) {
    pthread_mutex_lock(&lock);
    int f = strcmp(green_fail, fn) == 0;
    pthread_mutex_unlock(&lock);
    return f;
}
#define FAIL_IF(name) if (fails(name)) return 1

static CUresult st_device_get(CUdevice *d, int ordinal) {
    FAIL_IF("cuDeviceGet");
    return dev_ok(ordinal) == cudaSuccess ? (*d = ordinal, CUDA_SUCCESS) : 101;
}
static CUresult st_get_resource(CUdevice d, CUdevResource *r, CUdevResourceType t) {
    FAIL_IF("cuDeviceGetDevResource");
    (void)d;
    memset(r, 0, sizeof *r);
    r->type = t, r->sm.smCount = STUB_SMS, r->sm.minSmPartitionSize = STUB_GRAIN;
    r->sm.smCoscheduledAlignment = STUB_GRAIN;
    return CUDA_SUCCESS;
}
/* As the driver: groups of minCount rounded up to the grain, as many as fit (at most *n). */
static CUresult st_split(CUdevResource *result, unsigned *n, const CUdevResource *in,
                         CUdevResource *rest, unsigned flags, unsigned min_count) {
    FAIL_IF("cuDevSmResourceSplitByCount");
    (void)flags;
    unsigned per = (min_count + STUB_GRAIN - 1) / STUB_GRAIN * STUB_GRAIN;
    if (per == 0 || per > in->sm.smCount) return 1;
    unsigned fit = in->sm.smCount / per, g = *n < fit ? *n : fit;
    for (unsigned i = 0; result && i < g; i++) result[i] = *in, result[i].sm.smCount = per;
    if (rest) *rest = *in, rest->sm.smCount = in->sm.smCount - g * per;
    *n = g;
    pthread_mutex_lock(&lock);
    counts.split_sms = (int64_t)g * per;
    pthread_mutex_unlock(&lock);
    return CUDA_SUCCESS;
}
static CUresult st_gen_desc(CUdevResourceDesc *desc, CUdevResource *res, unsigned n) {
    FAIL_IF("cuDevResourceGenerateDesc");
    *desc = calloc(1, sizeof **desc);
    if (!*desc) return 2;
    for (unsigned i = 0; i < n; i++) (*desc)->sms += res[i].sm.smCount;
    return CUDA_SUCCESS;
}
static CUresult st_green_create(CUgreenCtx *g, CUdevResourceDesc desc, CUdevice d, unsigned f) {
    FAIL_IF("cuGreenCtxCreate");
    (void)d, (void)f;
    free(desc); // the stand-in's descriptor is the green context's to keep; none needed after
    *g = calloc(1, sizeof **g);
    if (!*g) return 2;
    (*g)->ctx.green = 1;
    pthread_mutex_lock(&lock);
    counts.green_ctxs++;
    pthread_mutex_unlock(&lock);
    return CUDA_SUCCESS;
}
static CUresult st_green_stream(CUstream *s, CUgreenCtx g, unsigned flags, int prio) {
    FAIL_IF("cuGreenCtxStreamCreate");
    (void)g, (void)prio;
    return cudaStreamCreateWithFlags(s, flags) == cudaSuccess ? CUDA_SUCCESS : 2;
}
static CUresult st_green_destroy(CUgreenCtx g) {
    if (!g) return 1;
    free(g);
    pthread_mutex_lock(&lock);
    counts.green_ctxs--;
    pthread_mutex_unlock(&lock);
    return CUDA_SUCCESS;
}
static CUresult st_ctx_from_green(CUcontext *c, CUgreenCtx g) {
    FAIL_IF("cuCtxFromGreenCtx");
    *c = &g->ctx;
    return CUDA_SUCCESS;
}
static CUresult st_ctx_get(CUcontext *c) {
    FAIL_IF("cuCtxGetCurrent");
    *c = thread_ctx ? thread_ctx : &primary_ctx;
    return CUDA_SUCCESS;
}
static CUresult st_ctx_set(CUcontext c) {
    FAIL_IF("cuCtxSetCurrent");
    thread_ctx = c == &primary_ctx ? NULL : c;
    return CUDA_SUCCESS;
}

static const struct {
    const char *name;
    void *fn;
} driver_fns[] = {
    {"cuDeviceGet", (void *)st_device_get}, {"cuDeviceGetDevResource", (void *)st_get_resource},
    {"cuDevSmResourceSplitByCount", (void *)st_split},
    {"cuDevResourceGenerateDesc", (void *)st_gen_desc},
    {"cuGreenCtxCreate", (void *)st_green_create},
    {"cuGreenCtxStreamCreate", (void *)st_green_stream},
    {"cuGreenCtxDestroy", (void *)st_green_destroy},
    {"cuCtxFromGreenCtx", (void *)st_ctx_from_green}, {"cuCtxGetCurrent", (void *)st_ctx_get},
    {"cuCtxSetCurrent", (void *)st_ctx_set},
};

/* The driver's functions when green contexts are on (else none: exec/cuda.c falls back from
 * green contexts to streams). Records the versions asked for. */
cudaError_t cudaGetDriverEntryPointByVersion(const char *symbol, void **fn, unsigned int version,
                                             unsigned long long flags,
                                             enum cudaDriverEntryPointQueryResult *status) {
    (void)flags;
    pthread_mutex_lock(&lock);
    if (green_on < 0) {
        const char *g = getenv("PSIM_STUB_GREEN");
        green_on = g && strcmp(g, "1") == 0;
    }
    int on = green_on;
    if (!counts.entry_version_min || version < counts.entry_version_min)
        counts.entry_version_min = version;
    if (version > counts.entry_version_max) counts.entry_version_max = version;
    pthread_mutex_unlock(&lock);
    *fn = NULL;
    if (status) *status = cudaDriverEntryPointSymbolNotFound;
    for (size_t i = 0; on && version >= 12040 && i < sizeof driver_fns / sizeof driver_fns[0]; i++)
        if (strcmp(symbol, driver_fns[i].name) == 0) {
            *fn = driver_fns[i].fn;
            if (status) *status = cudaDriverEntryPointSuccess;
        }
    return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned int flags) {
    (void)flags;
    *s = calloc(1, sizeof **s);
    return *s ? cudaSuccess : cudaErrorMemoryAllocation;
}

cudaError_t cudaStreamDestroy(cudaStream_t s) {
    if (s != &default_stream) free(s);
    return cudaSuccess;
}

/* A stuck stream blocks its caller as on a GPU, but not forever: a test must end. */
static cudaError_t wait_free(const volatile int *f) {
    int64_t until = now_ns() + 60 * (int64_t)1000000000;
    while (is_stuck(f))
        if (now_ns() > until) return cudaErrorLaunchTimeout;
        else nap();
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t s) { return wait_free(st_of(s)->stuck); }

cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned int flags) {
    (void)flags;
    if (!e) return cudaErrorInvalidValue;
    if (is_stuck(e->stuck)) st_of(s)->stuck = e->stuck;
    return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t *e) {
    *e = calloc(1, sizeof **e);
    return *e ? cudaSuccess : cudaErrorMemoryAllocation;
}

cudaError_t cudaEventDestroy(cudaEvent_t e) { return free(e), cudaSuccess; }

cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
    if (!e) return cudaErrorInvalidValue;
    e->t_ns = now_ns(), e->recorded = 1, e->stuck = cudastub_stream_stuck(s);
    return cudaSuccess;
}

cudaError_t cudaEventQuery(cudaEvent_t e) {
    if (!e) return cudaErrorInvalidValue;
    return is_stuck(e->stuck) ? cudaErrorNotReady : cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t e) { return e ? wait_free(e->stuck) : cudaErrorInvalidValue; }

cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b) {
    if (!a || !b || !a->recorded || !b->recorded) return cudaErrorInvalidValue;
    if (is_stuck(a->stuck) || is_stuck(b->stuck)) return cudaErrorNotReady;
    *ms = (float)((double)(b->t_ns - a->t_ns) / 1e6);
    return cudaSuccess;
}

cudaError_t cudaMalloc(void **p, size_t n) {
    *p = calloc(1, n ? n : 1);
    return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}

cudaError_t cudaFree(void *p) { return free(p), cudaSuccess; }
cudaError_t cudaMallocAsync(void **p, size_t n, cudaStream_t s) { return (void)s, cudaMalloc(p, n); }
cudaError_t cudaFreeAsync(void *p, cudaStream_t s) { return (void)s, cudaFree(p); }

cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind k) {
    (void)k;
    if (n && (!dst || !src)) return cudaErrorInvalidValue;
    memmove(dst, src, n);
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind k,
                            cudaStream_t s) {
    return (void)s, cudaMemcpy(dst, src, n, k);
}

cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t s) {
    (void)s;
    if (n && !p) return cudaErrorInvalidValue;
    memset(p, v, n);
    return cudaSuccess;
}

static int the_pool;
cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t *pool, int dev) {
    *pool = (cudaMemPool_t)&the_pool;
    return dev_ok(dev);
}

cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t pool, enum cudaMemPoolAttr a, void *v) {
    return (void)pool, (void)a, (void)v, cudaSuccess;
}

cudaError_t cudaHostAlloc(void **p, size_t n, unsigned int flags) {
    return (void)flags, cudaMalloc(p, n);
}

cudaError_t cudaHostGetDevicePointer(void **d, void *h, unsigned int flags) {
    (void)flags;
    *d = h;
    return cudaSuccess;
}

cudaError_t cudaFreeHost(void *p) { return cudaFree(p); }

cublasStatus_t cublasGetProperty(libraryPropertyType type, int *value) {
    *value = type == MAJOR_VERSION ? 12 : type == MINOR_VERSION ? 4 : 5;
    return CUBLAS_STATUS_SUCCESS;
}

/* ---- NCCL ---- */

typedef struct Msg {
    void *data;
    size_t bytes;
    const volatile int *stuck;
    struct Msg *next;
} Msg;

typedef struct Clique {
    char id[sizeof(ncclUniqueId)];
    int n, refs, aborted;
    Msg **head, **tail; // [n n]: from i to j at i * n + j
    pthread_cond_t cond;
    struct Clique *next;
} Clique;

struct ncclComm {
    Clique *cl;
    int rank;
    ncclResult_t async;
    cudaStream_t *peer_stream; // [n] the stream last used with each peer
};

static Clique *cliques;
static int64_t next_id;

typedef struct {
    int send;
    void *buf;
    size_t bytes;
    int peer;
    ncclComm_t comm;
    cudaStream_t stream;
} NcclCall;

static _Thread_local int depth;
static _Thread_local NcclCall *calls;
static _Thread_local int ncalls, callcap;

const char *ncclGetErrorString(ncclResult_t r) {
    switch (r) {
    case ncclSuccess: return "no error";
    case ncclSystemError: return "unhandled system error (injected by the CUDA stand-in)";
    case ncclInvalidArgument: return "invalid argument";
    case ncclInvalidUsage: return "invalid usage";
    case ncclRemoteError: return "remote process exited or there was a network error";
    case ncclInProgress: return "NCCL operation in progress";
    default: return "internal error";
    }
}

ncclResult_t ncclGetVersion(int *v) { return *v = NCCL_VERSION_CODE, ncclSuccess; }

ncclResult_t ncclGetUniqueId(ncclUniqueId *id) {
    pthread_mutex_lock(&lock);
    memset(id, 0, sizeof *id);
    snprintf(id->internal, sizeof id->internal, "cudastub-%lld", (long long)++next_id);
    pthread_mutex_unlock(&lock);
    return ncclSuccess;
}

ncclResult_t ncclCommInitRankConfig(ncclComm_t *comm, int nranks, ncclUniqueId id, int rank,
                                    ncclConfig_t *config) {
    (void)config;
    if (nranks < 1 || rank < 0 || rank >= nranks) return ncclInvalidArgument;
    pthread_mutex_lock(&lock);
    Clique *c = cliques;
    while (c && memcmp(c->id, id.internal, sizeof c->id) != 0) c = c->next;
    if (!c) {
        c = calloc(1, sizeof *c);
        if (c) c->head = calloc((size_t)nranks * nranks, sizeof *c->head);
        if (c) c->tail = calloc((size_t)nranks * nranks, sizeof *c->tail);
        if (!c || !c->head || !c->tail) {
            if (c) free(c->head), free(c->tail);
            free(c);
            pthread_mutex_unlock(&lock);
            return ncclSystemError;
        }
        memcpy(c->id, id.internal, sizeof c->id);
        c->n = nranks;
        pthread_cond_init(&c->cond, NULL);
        c->next = cliques, cliques = c;
    }
    *comm = calloc(1, sizeof **comm);
    if (*comm) (*comm)->cl = c, (*comm)->rank = rank, c->refs++;
    if (*comm) (*comm)->peer_stream = calloc((size_t)nranks, sizeof *(*comm)->peer_stream);
    pthread_mutex_unlock(&lock);
    return *comm ? ncclSuccess : ncclSystemError;
}

ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t *st) {
    if (!comm) return ncclInvalidArgument;
    pthread_mutex_lock(&lock);
    *st = comm->async;
    pthread_mutex_unlock(&lock);
    return ncclSuccess;
}

static void comm_release(ncclComm_t comm, int abort) {
    pthread_mutex_lock(&lock);
    Clique *c = comm->cl;
    if (abort) c->aborted = 1, pthread_cond_broadcast(&c->cond);
    if (--c->refs == 0) {
        for (Clique **p = &cliques; *p; p = &(*p)->next)
            if (*p == c) {
                *p = c->next;
                break;
            }
        for (int i = 0; i < c->n * c->n; i++)
            for (Msg *m = c->head[i], *nx; m; m = nx) nx = m->next, free(m->data), free(m);
        pthread_cond_destroy(&c->cond);
        free(c->head), free(c->tail), free(c);
    }
    pthread_mutex_unlock(&lock);
    free(comm->peer_stream), free(comm);
}

ncclResult_t ncclCommAbort(ncclComm_t comm) {
    if (comm) comm_release(comm, 1);
    return ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
    if (comm) comm_release(comm, 0);
    return ncclSuccess;
}

ncclResult_t ncclGroupStart(void) { return depth++, ncclSuccess; }

static double wait_s(void) {
    const char *w = getenv("PSIM_STUB_NCCL_WAIT_S");
    return w && *w ? atof(w) : 30;
}

/* A receive: waits for the peer's message (or the clique's abort). Called with lock held. */
static ncclResult_t recv_one(const NcclCall *k) {
    Clique *c = k->comm->cl;
    int q = k->peer * c->n + k->comm->rank;
    int64_t until = now_ns() + (int64_t)(wait_s() * 1e9);
    while (!c->head[q] && !c->aborted && now_ns() < until) {
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        t.tv_nsec += 10000000;
        if (t.tv_nsec >= 1000000000) t.tv_sec++, t.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&c->cond, &lock, &t);
    }
    Msg *m = c->head[q];
    if (!m) return k->comm->async = ncclRemoteError;
    c->head[q] = m->next;
    if (!c->head[q]) c->tail[q] = NULL;
    if (m->bytes != k->bytes) {
        free(m->data), free(m);
        return k->comm->async = ncclInvalidUsage;
    }
    memcpy(k->buf, m->data, k->bytes);
    if (is_stuck(m->stuck)) st_of(k->stream)->stuck = m->stuck;
    free(m->data), free(m);
    return ncclSuccess;
}

static ncclResult_t group_run(void) {
    ncclResult_t r = ncclSuccess;
    pthread_mutex_lock(&lock);
    int mixed = 0;
    for (int i = 0; i < ncalls; i++) {
        mixed |= calls[i].peer != calls[0].peer;
        ncclComm_t cm = calls[i].comm;
        for (int q = 0; cm->peer_stream && q < cm->cl->n; q++)
            counts.shared_streams += q != calls[i].peer && cm->peer_stream[q] == st_of(calls[i].stream);
        if (cm->peer_stream) cm->peer_stream[calls[i].peer] = st_of(calls[i].stream);
    }
    counts.mixed_groups += mixed;
    if (ncalls > counts.max_group) counts.max_group = ncalls;
    for (int i = 0; i < ncalls && r == ncclSuccess; i++) { // sends are buffered: post them all
        NcclCall *k = &calls[i];
        if (!k->send) continue;
        Clique *c = k->comm->cl;
        Msg *m = malloc(sizeof *m);
        void *d = malloc(k->bytes ? k->bytes : 1);
        if (!m || !d) {
            free(m), free(d), r = ncclSystemError;
            break;
        }
        memcpy(d, k->buf, k->bytes);
        *m = (Msg){d, k->bytes, cudastub_stream_stuck(k->stream), NULL};
        int q = k->comm->rank * c->n + k->peer;
        if (c->tail[q]) c->tail[q]->next = m;
        else c->head[q] = m;
        c->tail[q] = m;
        pthread_cond_broadcast(&c->cond);
    }
    for (int i = 0; i < ncalls && r == ncclSuccess; i++)
        if (!calls[i].send) r = recv_one(&calls[i]);
    pthread_mutex_unlock(&lock);
    ncalls = 0;
    return r;
}

ncclResult_t ncclGroupEnd(void) {
    if (depth == 0) return ncclInvalidUsage;
    return --depth == 0 ? group_run() : ncclSuccess;
}

static ncclResult_t post(int send, void *buf, size_t count, ncclDataType_t t, int peer,
                         ncclComm_t comm, cudaStream_t s) {
    pthread_mutex_lock(&lock);
    init();
    int64_t n = ++counts.nccl_calls;
    int fail = nccl_fail_at > 0 && n == nccl_fail_at;
    if (fail && comm) comm->async = ncclSystemError;
    pthread_mutex_unlock(&lock);
    if (fail) return ncclSystemError;
    if (!comm || peer < 0 || peer >= comm->cl->n || peer == comm->rank) return ncclInvalidArgument;
    if (ncalls == callcap) {
        int cap = callcap ? 2 * callcap : 16;
        NcclCall *c = realloc(calls, (size_t)cap * sizeof *c);
        if (!c) return ncclSystemError;
        calls = c, callcap = cap;
    }
    size_t size = t == ncclBfloat16 ? 2 : t == ncclFloat32 ? 4 : 1;
    calls[ncalls++] = (NcclCall){send, buf, count * size, peer, comm, s};
    return depth == 0 ? group_run() : ncclSuccess;
}

ncclResult_t ncclSend(const void *buf, size_t count, ncclDataType_t t, int peer, ncclComm_t comm,
                      cudaStream_t s) {
    return post(1, (void *)buf, count, t, peer, comm, s);
}

ncclResult_t ncclRecv(void *buf, size_t count, ncclDataType_t t, int peer, ncclComm_t comm,
                      cudaStream_t s) {
    return post(0, buf, count, t, peer, comm, s);
}

ncclResult_t ncclAllReduce(const void *in, void *out, size_t count, ncclDataType_t t,
                           ncclRedOp_t op, ncclComm_t comm, cudaStream_t s) {
    (void)in, (void)out, (void)count, (void)t, (void)op, (void)comm, (void)s;
    return ncclInvalidUsage; // the pipeline backend has no collectives yet
}
