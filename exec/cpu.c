/* exec/cpu.c: the CPU backends' shared parts (cpu.h) and exec_cpu_threads: one thread per
 * worker (device, replica, context rank, tensor rank) in every round, joined at its end (the
 * flush), data between devices through in-process channels as strict as NCCL's: one ordered
 * channel per (sender, receiver, activations or gradients), and a receiver that finds another
 * message than the one it expects at the head of its channel fails (NCCL would hang or hand
 * it the wrong tensor); collectives through in-process groups that sum in member order, so a
 * run's results are the same bit for bit every time. A wait longer than the watchdog fails
 * with the op that waits, instead of hanging. */
#include "exec/cpu.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the layer on OpenBLAS ---- */

static int cpu_acts_new(ExecDev *dv, uint64_t seed, void **acts) {
    LayerActs *a = malloc(sizeof *a);
    if (a && layer_acts_init(a, &dv->shape) == 0) return a->seed = seed, *acts = a, 0;
    free(a);
    *acts = NULL;
    exec_fail(dv->ex, 1, "device %d: out of memory for activations", dv->d);
    return -1;
}

static void cpu_acts_free(ExecDev *dv, void *acts) {
    (void)dv;
    if (acts) layer_acts_free(acts);
    free(acts);
}

static int cpu_buf_new(ExecDev *dv, void **buf) {
    if ((*buf = malloc((size_t)dv->ex->floats * sizeof(float)))) return 0;
    exec_fail(dv->ex, 1, "device %d: out of memory for activations", dv->d);
    return -1;
}

static void cpu_buf_free(ExecDev *dv, void *buf) {
    (void)dv;
    free(buf);
}

/* zero = 3 (ZeRO-3, FSDP) on a layer: between passes a data group member's truth (a replica's,
 * or with context parallelism a replica's context rank's) is its shard of each weight and
 * gradient. gather: before F, B and BW the other members' shards of the weights are
 * all-gathered; scatter: W and BW compute this pass's gradient alone (the shard's sum so
 * far set aside, the buffer zeroed), reduce-scatter it over the replicas and add the shard's
 * sum back, so every micro-batch's gradient is scattered once, as ZeRO-3 does. Inside the
 * op's compute row, outside the kernel classes' split (as psim prices them). 0, or -1. */
typedef enum { Z3_GATHER, Z3_SET_ASIDE, Z3_SCATTER } Zero3Step;

static int zero3(ExecDev *dv, Layer *l, Zero3Step step, float **keep) {
    Exec *ex = dv->ex;
    const CpuState *cs = ex->be;
    for (int i = 0; i < LAYER_WEIGHTS; i++) {
        int64_t n = layer_buf_elems(&dv->shape, (LayerBuf)(LB_FIRST_GRAD + i)), lo, hi;
        cpu_shard(n, dv->dp, ex->DP, &lo, &hi);
        size_t shard = (size_t)(hi - lo) * sizeof(float);
        if (step == Z3_GATHER) {
            if (cs->zero_all_gather(dv, l->w[i], n)) return -1;
        } else if (step == Z3_SET_ASIDE) { // the shard's sum so far; the pass starts from zero
            if (!(keep[i] = malloc(shard + sizeof(float)))) return -1;
            memcpy(keep[i], l->g[i] + lo, shard);
            memset(l->g[i], 0, (size_t)n * sizeof(float));
        } else { // this pass's gradient summed over the replicas, into the shard
            if (cs->zero_reduce_scatter(dv, l->g[i], n)) return -1;
            for (int64_t e = lo; e < hi; e++) l->g[i][e] += keep[i][e - lo];
        }
    }
    return 0;
}

static int cpu_pass(ExecDev *dv, OpKind pass, int64_t layer, void *acts, const void *in,
                    void *out) {
    Exec *ex = dv->ex;
    CpuState *cs = ex->be;
    CpuDev *cd = dv->be;
    Layer *l = &cs->layers[dv->g * ex->nlayers + layer];
    int z3 = ex->spec.zero >= 3 && ex->DP > 1, rc = 0;
    float *keep[LAYER_WEIGHTS] = {0};
    int scatter = z3 && (pass == OP_W || pass == OP_BW);
    if (z3 && pass != OP_W) rc = zero3(dv, l, Z3_GATHER, keep);
    if (rc == 0 && scatter) rc = zero3(dv, l, Z3_SET_ASIDE, keep);
    if (rc == 0)
        rc = layer_pass(l, pass, acts, &cd->scratch, in, out,
                        ex->T > 1 || ex->C > 1 ? &cd->comm : NULL);
    if (rc == 0 && scatter) rc = zero3(dv, l, Z3_SCATTER, keep);
    for (int i = 0; i < LAYER_WEIGHTS; i++) free(keep[i]);
    if (rc == 0) return 0;
    if (exec_failed(ex)) return -1; // a collective failed, saying why
    return exec_fail(dv->ex, 1, "device %d: layer %lld's pass failed", dv->d, (long long)layer), -1;
}

static void cpu_timing(ExecDev *dv, LayerTiming *take) {
    CpuDev *cd = dv->be;
    *take = cd->scratch.timing;
    memset(&cd->scratch.timing, 0, sizeof cd->scratch.timing);
}

const ExecKernels cpu_kernels = {cpu_acts_new, cpu_acts_free, cpu_buf_new, cpu_buf_free,
                                 cpu_pass, cpu_timing};

/* ---- the tensor-parallel all-reduces of a pass, each a row ---- */

/* One tensor collective's row: bytes of the whole buffer (the all-gather's output, the
 * reduce-scatter's input), as the cost model sizes it. */
static void tensor_row(ExecDev *dv, Stream stream, int64_t bytes, int64_t t0) {
    Exec *ex = dv->ex;
    const ProgramOp *op = ((CpuDev *)dv->be)->op;
    TimelineOp row = exec_row(ex, dv->d, -1, (OpKind)op->kind, op->micro_batch, op->chunk,
                              stream, bytes, t0, exec_now_ns(ex));
    exec_row_push(dv, &row);
}

static int cpu_tensor_allreduce(void *ctx, float *buf, int64_t n) {
    ExecDev *dv = ctx;
    int64_t t0 = exec_now_ns(dv->ex);
    if (((CpuState *)dv->ex->be)->allreduce(dv, CPU_OVER_TENSOR, buf, n) != 0) return -1;
    tensor_row(dv, STREAM_TENSOR, n * (int64_t)sizeof(float), t0);
    return 0;
}

static int cpu_tensor_allgather(void *ctx, const float *in, float *out, int64_t n) {
    ExecDev *dv = ctx;
    int64_t t0 = exec_now_ns(dv->ex);
    if (((CpuState *)dv->ex->be)->allgather(dv, CPU_OVER_TENSOR, in, out, n) != 0) return -1;
    tensor_row(dv, STREAM_TENSOR_GATHER, dv->ex->T * n * (int64_t)sizeof(float), t0);
    return 0;
}

static int cpu_tensor_reduce_scatter(void *ctx, const float *in, float *out, int64_t n) {
    ExecDev *dv = ctx;
    int64_t t0 = exec_now_ns(dv->ex);
    if (((CpuState *)dv->ex->be)->reduce_scatter(dv, CPU_OVER_TENSOR, in, out, n) != 0) return -1;
    tensor_row(dv, STREAM_TENSOR_SCATTER, dv->ex->T * n * (int64_t)sizeof(float), t0);
    return 0;
}

/* Context parallelism's K/V exchange over the context group: no row of its own (psim places
 * none), its time inside the op's compute row and the kernel split's comm class. */
static int cpu_context_allgather(void *ctx, const float *in, float *out, int64_t n) {
    ExecDev *dv = ctx;
    return ((CpuState *)dv->ex->be)->allgather(dv, CPU_OVER_CONTEXT, in, out, n);
}

static int cpu_context_reduce_scatter(void *ctx, const float *in, float *out, int64_t n) {
    ExecDev *dv = ctx;
    return ((CpuState *)dv->ex->be)->reduce_scatter(dv, CPU_OVER_CONTEXT, in, out, n);
}

/* ---- state, data, timing ---- */

int cpu_create(Exec *ex, int (*mine)(const Exec *ex, int32_t w), char *why, size_t whylen) {
    CpuState *cs = ex->be;
    int64_t all = ex->G * ex->nlayers;
    cs->layers = calloc((size_t)(all ? all : 1), sizeof *cs->layers);
    int rc = cs->layers ? 0 : -1;
    for (int32_t w = 0; rc == 0 && w < ex->W; w++) {
        ExecDev *dv = &ex->devs[w];
        CpuDev *cd = calloc(1, sizeof *cd);
        dv->be = cd;
        if (!cd || ((!mine || mine(ex, w)) && layer_scratch_init(&cd->scratch, &dv->shape)))
            rc = -1;
        if (cd)
            cd->comm = (LayerComm){dv, cpu_tensor_allreduce, cpu_tensor_allgather,
                                   cpu_tensor_reduce_scatter, cpu_context_allgather,
                                   cpu_context_reduce_scatter};
        if (cd && !(cd->last_bw = malloc((size_t)ex->spec.pr->chunks * sizeof *cd->last_bw)))
            rc = -1;
    }
    const Program *pr = ex->spec.pr;
    for (int32_t g = 0; rc == 0 && g < ex->G; g++)
        for (int32_t st = 0; rc == 0 && st < ex->S; st++)
            for (int64_t k = 0; rc == 0 && k < ex->spec.pl->layers[st]; k++) {
                ExecDev *dv = exec_worker(ex, pr->device_of[st], g);
                if (!mine || mine(ex, dv->w))
                    rc = layer_init(&cs->layers[g * ex->nlayers + ex->layer_at[st] + k],
                                    &dv->shape, exec_layer_seed(ex, st, k));
            }
    if (rc == 0) return 0;
    snprintf(why, whylen, "out of memory for the model's %lld layers; try --scale",
             (long long)(ex->nlayers / ex->spec.pr->pipes));
    return 1;
}

void cpu_destroy(Exec *ex) {
    CpuState *cs = ex->be;
    if (!cs) return;
    exec_release(ex);
    for (int64_t i = 0; cs->layers && i < ex->G * ex->nlayers; i++) layer_free(&cs->layers[i]);
    for (int32_t w = 0; ex->devs && w < ex->W; w++) {
        CpuDev *cd = ex->devs[w].be;
        if (cd) layer_scratch_free(&cd->scratch), free(cd->last_bw);
        free(cd);
        ex->devs[w].be = NULL;
    }
    free(cs->layers);
}

/* Copies worker w's stage's k-th layer's gradients (and, with weights, its weights). */
static int cpu_copy(Exec *ex, int32_t w, int32_t stage, int32_t k, Layer *out, int weights,
                    char *why, size_t whylen) {
    const Layer *l = &((CpuState *)ex->be)->layers[ex->devs[w].g * ex->nlayers +
                                                    ex->layer_at[stage] + k];
    if (!l->g[0]) // on ranks, only this rank's stages have layers
        return snprintf(why, whylen, "stage %d runs on worker %d, not on this rank (%d)", stage,
                        w, ex->rank), -1;
    for (int i = 0; i < LAYER_WEIGHTS; i++) {
        size_t n = (size_t)layer_buf_elems(&l->sh, (LayerBuf)(LB_FIRST_GRAD + i));
        memcpy(out->g[i], l->g[i], n * sizeof(float));
        if (weights) memcpy(out->w[i], l->w[i], n * sizeof(float));
    }
    return 0;
}

int cpu_grads(Exec *ex, int32_t stage, int32_t k, Layer *out, char *why, size_t whylen) {
    return cpu_copy(ex, exec_worker(ex, ex->spec.pr->device_of[stage], 0)->w, stage, k, out, 0,
                    why, whylen);
}

int cpu_layer_of(Exec *ex, int32_t w, int32_t stage, int32_t k, Layer *out, char *why,
                 size_t whylen) {
    return cpu_copy(ex, w, stage, k, out, 1, why, whylen);
}

/* The micro-batch's input: each replica its own; with context parallelism a context rank's
 * two zigzag chunks of each sample (layer_position), and with sequence parallelism a tensor
 * rank's rows of those, so every split runs the same model on the same data. */
int cpu_batch(ExecDev *dv, int32_t mb, ExecSlot *out) {
    const LayerShape *sh = &dv->shape;
    int64_t h = sh->hidden, s = sh->seq, all = (int64_t)sh->samples * s * h, n = dv->ex->floats;
    int64_t sq = s / dv->ex->C, mine = layer_tokens(sh);
    float *x = malloc((size_t)all * sizeof *x);
    if (!x) return exec_fail(dv->ex, 1, "device %d: out of memory", dv->d), -1;
    exec_batch_fill(dv->replica * dv->ex->m + mb, x, all);
    for (int64_t t = 0; dv->ex->C > 1 && t < mine; t++) // rows only move down: in place
        memmove(x + t * h, x + ((t / sq) * s + layer_position(sh, t % sq)) * h,
                (size_t)h * sizeof *x);
    if (n < mine * h) memmove(x, x + (int64_t)dv->trank * n, (size_t)n * sizeof *x);
    *out = (ExecSlot){x, NULL, 1};
    return 0;
}

int cpu_span_begin(ExecDev *dv, const ProgramOp *op, int64_t index, int64_t *token) {
    (void)index;
    ((CpuDev *)dv->be)->op = op;
    *token = exec_now_ns(dv->ex);
    return 0;
}

int cpu_span_end(ExecDev *dv, const ProgramOp *op, int64_t token, void **ready) {
    TimelineOp row = exec_row(dv->ex, dv->d, -1, (OpKind)op->kind, op->micro_batch, op->chunk,
                              STREAM_COMPUTE, 0, token, exec_now_ns(dv->ex));
    exec_row_push(dv, &row);
    *ready = NULL;
    return 0;
}

void cpu_xfer_row(ExecDev *dv, int32_t peer, const ProgramOp *op, int32_t stage, Stream stream,
                  int64_t start, int64_t end) {
    Exec *ex = dv->ex;
    TimelineOp row = exec_row(ex, dv->d, peer, (OpKind)op->kind, op->micro_batch,
                              (int16_t)ex->spec.pr->chunk_of[stage], stream,
                              ex->floats * (int64_t)sizeof(float), start, end);
    exec_row_push(dv, &row);
}

int cpu_send_dropped(ExecDev *dv, void *data) {
    CpuDev *cd = dv->be;
    if (dv->d != dv->ex->spec.drop_send_of || dv->g != 0 || cd->sent++ != 0) return 0; // its
                                                                 // replica 0 tensor rank 0
    free(data); // the injected fault
    return 1;
}

/* ---- the data-parallel tail ---- */

void cpu_group_timed_out(ExecDev *dv, CpuOver over) {
    static const char *const what[CPU_OVER_COUNT][2] = {
        {"tensor-parallel collective", "tensor ranks"},
        {"data-parallel gradient collective", "replicas and context ranks"},
        {"context-parallel key/value exchange", "context ranks"}};
    exec_fail(dv->ex, 1, "device %d (replica %d, context rank %d, tensor rank %d) waited %g s at "
              "a %s for its %s (watchdog): one of them died, stalled or failed", dv->d,
              dv->replica, dv->crank, dv->trank, dv->ex->spec.watchdog_s, what[over][0],
              what[over][1]);
}

/* Worker dv's layers of stage st. */
static Layer *stage_layers(ExecDev *dv, int32_t st) {
    Exec *ex = dv->ex;
    return &((CpuState *)ex->be)->layers[dv->g * ex->nlayers + ex->layer_at[st]];
}

/* The data-parallel collective of chunk ch over the replicas and their context ranks (the
 * DP workers that hold the chunk's weights), one row (bytes: the chunk's
 * fp32 buffers): after its last backward (op) the gradients all-reduced (zero = 0: an
 * allreduce row) or reduce-scattered (a reduce_scatter row); with zero after the step its
 * weights all-gathered (gather: an all_gather row, kind F). With sequence parallelism the
 * norms' gradients of each tensor rank cover its tokens only: they are summed over the
 * tensor ranks first (as Megatron-LM does before the optimizer), so every rank steps the
 * same gamma and beta. */
static int chunk_collective(ExecDev *dv, const ProgramOp *op, int32_t ch, int gather) {
    Exec *ex = dv->ex;
    const CpuState *cs = ex->be;
    int32_t st = program_stage_of(ex->spec.pr, dv->d, ch), zero = ex->spec.zero;
    Layer *l = stage_layers(dv, st);
    int64_t t0 = exec_now_ns(ex), bytes = 0;
    for (int64_t k = 0; k < ex->spec.pl->layers[st]; k++)
        for (int i = 0; i < LAYER_WEIGHTS; i++) {
            int64_t n = layer_buf_elems(&dv->shape, (LayerBuf)(LB_FIRST_GRAD + i));
            bytes += n * (int64_t)sizeof(float);
            int norm = LB_FIRST_GRAD + i == LB_GLN1 || LB_FIRST_GRAD + i == LB_GLN2;
            if (!gather && norm && dv->shape.seqpar && ex->T > 1 &&
                cs->allreduce(dv, CPU_OVER_TENSOR, l[k].g[i], n))
                return -1;
            if (ex->DP < 2 || zero >= 3) continue; // zero 3 scattered inside every W and BW
            int rc = gather ? cs->zero_all_gather(dv, l[k].w[i], n)
                     : zero ? cs->zero_reduce_scatter(dv, l[k].g[i], n)
                            : cs->allreduce(dv, CPU_OVER_DATA, l[k].g[i], n);
            if (rc) return -1;
        }
    if (zero >= 3 && ex->DP > 1) return 0; // no tail collective of its own: no row
    Stream s = gather ? STREAM_ALL_GATHER : zero ? STREAM_REDUCE_SCATTER : STREAM_COLLECTIVE;
    TimelineOp row = exec_row(ex, dv->d, -1, gather ? OP_F : (OpKind)op->kind, 0, (int16_t)ch,
                              s, bytes, t0, exec_now_ns(ex));
    exec_row_push(dv, &row);
    return 0;
}

/* Every layer of the worker's chunks steps w -= lr g (with zero >= 1 on the replica's shard
 * of each buffer only): one optimizer row. With clear, the gradients are zeroed instead
 * (before the round's first op). */
static void sgd_step(ExecDev *dv, int clear) {
    Exec *ex = dv->ex;
    float lr = ex->spec.lr;
    int64_t t0 = exec_now_ns(ex);
    for (int32_t ch = 0; ch < ex->spec.pr->chunks; ch++) {
        int32_t st = program_stage_of(ex->spec.pr, dv->d, ch);
        Layer *l = stage_layers(dv, st);
        for (int64_t k = 0; k < ex->spec.pl->layers[st]; k++)
            for (int i = 0; i < LAYER_WEIGHTS; i++) {
                int64_t n = layer_buf_elems(&dv->shape, (LayerBuf)(LB_FIRST_GRAD + i)), lo = 0,
                        hi = n;
                float *w = l[k].w[i], *g = l[k].g[i];
                if (ex->spec.zero && ex->DP > 1) cpu_shard(n, dv->dp, ex->DP, &lo, &hi);
                if (clear) memset(g, 0, (size_t)n * sizeof *g);
                else
                    for (int64_t e = lo; e < hi; e++) w[e] -= lr * g[e];
            }
    }
    if (clear) return;
    TimelineOp row = exec_row(ex, dv->d, -1, OP_BW, 0, 0, STREAM_OPTIMIZER, 0, t0,
                              exec_now_ns(ex));
    exec_row_push(dv, &row);
}

/* The index of each chunk's last backward (W or BW) in device d's program (-1: none). */
static void last_backwards(const Program *pr, int32_t d, int64_t *last) {
    for (int32_t ch = 0; ch < pr->chunks; ch++) last[ch] = -1;
    for (int64_t i = 0; i < program_len(pr, d); i++) {
        const ProgramOp *op = &pr->ops[pr->start[d] + i];
        if (op->kind == OP_W || op->kind == OP_BW) last[op->chunk] = i;
    }
}

void cpu_device_ops(ExecDev *dv) {
    Exec *ex = dv->ex;
    const ExecSpec *sp = &ex->spec;
    int64_t n = program_len(sp->pr, dv->d), *last = ((CpuDev *)dv->be)->last_bw;
    ((CpuDev *)dv->be)->sent = 0;
    if (sp->tail) last_backwards(sp->pr, dv->d, last), sgd_step(dv, 1);
    for (int64_t i = 0; i < n && !exec_failed(ex); i++) {
        if (dv->d == sp->kill_device && dv->g == 0 && sp->kill_after > 0 &&
            ex->round * n + i == sp->kill_after) { // the injected fault
            if (ex->b != &exec_cpu_threads) raise(sp->stall ? SIGSTOP : SIGKILL); // a rank dies
            const struct timespec nap = {0, 1000000};                 //   or stops, telling no one
            int64_t until = exec_deadline_ns(ex);
            while (sp->stall && !exec_failed(ex) && exec_now_ns(ex) < until) // a thread stalls
                nanosleep(&nap, NULL); // (for a watchdog at most, when no peer waits on it)
            ((CpuDev *)dv->be)->stopped = 1; // or ends, telling no one; its peers' watchdogs
            return;                            //   find out
        }
        if (exec_op(dv, i) != 0) break;
        const ProgramOp *op = &sp->pr->ops[sp->pr->start[dv->d] + i];
        if (sp->tail && last[op->chunk] == i && chunk_collective(dv, op, op->chunk, 0) != 0)
            break;
    }
    if (sp->tail && !exec_failed(ex)) sgd_step(dv, 0);
    int z3 = sp->zero >= 3 && ex->DP > 1; // its next F gathers; after the last round the model
    int final = ex->round == sp->iterations / sp->pr->iterations - 1; // is made whole, untimed
    for (int32_t ch = 0; sp->tail && sp->zero && ch < sp->pr->chunks && !exec_failed(ex); ch++) {
        if (last[ch] < 0) continue;
        if (z3 && final) {
            int32_t st = program_stage_of(sp->pr, dv->d, ch);
            Layer *l = stage_layers(dv, st);
            for (int64_t k = 0; k < sp->pl->layers[st]; k++)
                if (zero3(dv, &l[k], Z3_GATHER, NULL) != 0) return;
        } else if (!z3 && chunk_collective(dv, NULL, ch, 1) != 0) {
            break;
        }
    }
}

/* ---- threads: in-process channels ---- */

typedef struct Message {
    struct Message *next;
    int32_t stage, mb;  // the consumer's stage and micro-batch
    int64_t sent_ns;    // when the send started
    int64_t done_ns;    // when the data was in the channel (the transfer's end)
    float *data;        // owned: one activation or gradient
} Message;

struct Channel {
    pthread_mutex_t mu;
    pthread_cond_t cv;      // a message came, or (rendezvous) one was taken
    Message *head, *tail;
    int64_t pushed, taken;  // messages sent and received so far
};

/* The channel from pipeline device src to dst of group g. */
static Channel *channel(Exec *ex, int32_t g, int32_t src, int32_t dst, int grad) {
    int64_t s = exec_worker(ex, src, g)->w, d = exec_worker(ex, dst, g)->w;
    return &((CpuState *)ex->be)->ch[(s * ex->W + d) * 2 + grad];
}

/* An all-reduce group in process: its members post their buffers, each sums a slice of them
 * in member order (0, 1, ...) into the shared sum, and each copies the sum back: the same
 * bits on every member and in every run. Three meetings per call (post, sum, copy), so no
 * member overwrites what another still reads. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;  // a meeting completed, or the run failed
    int32_t n, in;      // members; how many are at the meeting
    int64_t gen;        // meetings completed
    float **buf;        // owned: [n] the posted buffers
    float *sum;         // owned: room for the largest buffer
} Group;

typedef struct {
    CpuState cpu;       // first: the CPU backends' shared state
    Group *tensor;      // owned: [p DP] the T tensor ranks of (device, replica, context rank),
                        //   then the others in the same array:
    Group *data;        //   [p T] the DP = D C workers of (device, tensor rank), member dp
    Group *context;     //   [p D T] the C context ranks of (device, replica, tensor rank)
    int64_t ngroups;    // p DP + p T + p D T
} Threads;

static int64_t group_room(const Exec *ex) {
    LayerShape sh = exec_shape(ex, 0);
    int64_t most = ex->floats;
    for (int i = 0; i < LAYER_WEIGHTS; i++) {
        int64_t n = layer_buf_elems(&sh, (LayerBuf)(LB_FIRST_GRAD + i));
        if (n > most) most = n;
    }
    return most;
}

/* The absolute CLOCK_REALTIME time the watchdog allows a wait started now to last. */
static struct timespec watchdog_deadline(const Exec *ex) {
    struct timespec d;
    clock_gettime(CLOCK_REALTIME, &d);
    double whole = (double)d.tv_nsec / 1e9 + ex->spec.watchdog_s;
    d.tv_sec += (time_t)whole, d.tv_nsec = (long)((whole - (double)(time_t)whole) * 1e9);
    return d;
}

static void threads_wake(Exec *ex) {
    Threads *ts = ex->be;
    CpuState *cs = ex->be;
    for (int64_t i = 0; cs && cs->ch && i < (int64_t)ex->W * ex->W * 2; i++) {
        pthread_mutex_lock(&cs->ch[i].mu);
        pthread_cond_broadcast(&cs->ch[i].cv);
        pthread_mutex_unlock(&cs->ch[i].mu);
    }
    for (int64_t i = 0; ts && ts->tensor && i < ts->ngroups; i++) {
        pthread_mutex_lock(&ts->tensor[i].mu);
        pthread_cond_broadcast(&ts->tensor[i].cv);
        pthread_mutex_unlock(&ts->tensor[i].mu);
    }
}

/* Waits until every member of gr has come (0), the run failed or the watchdog fired (-1). */
static int group_meet(ExecDev *dv, Group *gr, CpuOver over) {
    Exec *ex = dv->ex;
    struct timespec deadline = watchdog_deadline(ex);
    int rc = 0;
    pthread_mutex_lock(&gr->mu);
    int64_t gen = gr->gen;
    if (++gr->in == gr->n) gr->in = 0, gr->gen++, pthread_cond_broadcast(&gr->cv);
    while (gen == gr->gen && !exec_failed(ex) && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&gr->cv, &gr->mu, &deadline);
    int met = gen != gr->gen;
    pthread_mutex_unlock(&gr->mu);
    if (!met && rc == ETIMEDOUT) cpu_group_timed_out(dv, over);
    return met ? 0 : -1;
}

static Group *threads_group(ExecDev *dv, CpuOver over, int32_t *me) {
    Exec *ex = dv->ex;
    Threads *ts = ex->be;
    *me = over == CPU_OVER_TENSOR ? dv->trank : over == CPU_OVER_DATA ? dv->dp : dv->crank;
    if (over == CPU_OVER_TENSOR) return &ts->tensor[(int64_t)dv->d * ex->DP + dv->dp];
    if (over == CPU_OVER_DATA) return &ts->data[(int64_t)dv->d * ex->T + dv->trank];
    return &ts->context[((int64_t)dv->d * ex->D + dv->replica) * ex->T + dv->trank];
}

static int threads_allreduce(ExecDev *dv, CpuOver over, float *buf, int64_t n) {
    int32_t me;
    Group *gr = threads_group(dv, over, &me);
    gr->buf[me] = buf;
    if (group_meet(dv, gr, over) != 0) return -1;
    for (int64_t i = n * me / gr->n; i < n * (me + 1) / gr->n; i++) {
        float s = gr->buf[0][i];
        for (int32_t k = 1; k < gr->n; k++) s += gr->buf[k][i];
        gr->sum[i] = s;
    }
    if (group_meet(dv, gr, over) != 0) return -1;
    memcpy(buf, gr->sum, (size_t)n * sizeof *buf);
    return group_meet(dv, gr, over);
}

/* Two meetings each (post, then done reading): every member's in stays put until all have
 * read it. The reduce-scatter sums in member order, as the all-reduce does, so its block is
 * the all-reduce's to the bit. */
static int threads_allgather(ExecDev *dv, CpuOver over, const float *in, float *out, int64_t n) {
    int32_t me;
    Group *gr = threads_group(dv, over, &me);
    gr->buf[me] = (float *)in; // only read
    if (group_meet(dv, gr, over) != 0) return -1;
    for (int32_t k = 0; k < gr->n; k++) memcpy(out + k * n, gr->buf[k], (size_t)n * sizeof *out);
    return group_meet(dv, gr, over);
}

static int threads_reduce_scatter(ExecDev *dv, CpuOver over, const float *in, float *out,
                                  int64_t n) {
    int32_t me;
    Group *gr = threads_group(dv, over, &me);
    gr->buf[me] = (float *)in; // only read
    if (group_meet(dv, gr, over) != 0) return -1;
    for (int64_t i = 0; i < n; i++) {
        float s = gr->buf[0][me * n + i];
        for (int32_t k = 1; k < gr->n; k++) s += gr->buf[k][me * n + i];
        out[i] = s;
    }
    return group_meet(dv, gr, over);
}

/* zero >= 1: the data group's reduce-scatter, each member summing its own shard of every
 * member's buffer in member order (threads_allreduce's sums, bit for bit) into the group's
 * sum, then taking it back; each reads only its shard of the sum, so two meetings suffice. */
static int threads_zero_reduce_scatter(ExecDev *dv, float *buf, int64_t n) {
    Exec *ex = dv->ex;
    Group *gr = &((Threads *)ex->be)->data[(int64_t)dv->d * ex->T + dv->trank];
    int64_t lo, hi;
    cpu_shard(n, dv->dp, gr->n, &lo, &hi);
    gr->buf[dv->dp] = buf;
    if (group_meet(dv, gr, CPU_OVER_DATA) != 0) return -1;
    for (int64_t i = lo; i < hi; i++) {
        float s = gr->buf[0][i];
        for (int32_t k = 1; k < gr->n; k++) s += gr->buf[k][i];
        gr->sum[i] = s;
    }
    if (group_meet(dv, gr, CPU_OVER_DATA) != 0) return -1; // every shard read
    memcpy(buf + lo, gr->sum + lo, (size_t)(hi - lo) * sizeof *buf);
    return 0;
}

/* The all-gather: every member copies the others' shards out of their buffers, and none
 * leaves (to post another buffer) before all have copied. */
static int threads_zero_all_gather(ExecDev *dv, float *buf, int64_t n) {
    Exec *ex = dv->ex;
    Group *gr = &((Threads *)ex->be)->data[(int64_t)dv->d * ex->T + dv->trank];
    gr->buf[dv->dp] = buf;
    if (group_meet(dv, gr, CPU_OVER_DATA) != 0) return -1;
    for (int32_t k = 0; k < gr->n; k++) {
        int64_t lo, hi;
        cpu_shard(n, k, gr->n, &lo, &hi);
        if (k != dv->dp) memcpy(buf + lo, gr->buf[k] + lo, (size_t)(hi - lo) * sizeof *buf);
    }
    return group_meet(dv, gr, CPU_OVER_DATA);
}

void cpu_not_taken(ExecDev *dv, const ProgramOp *op, int grad, int32_t dst) {
    char name[64];
    exec_fail(dv->ex, 1, "device %d (%s) waited %g s for device %d to take its %s (watchdog; "
              "with --rendezvous a send completes only when its receive is posted, as a "
              "blocking NCCL send does: this order needs sends and receives posted together)",
              dv->d, program_op_str(op, name, sizeof name), dv->ex->spec.watchdog_s, dst,
              grad ? "gradient" : "activation");
}

void cpu_mismatch(ExecDev *dv, int64_t index, const ProgramOp *op, int grad, int32_t src,
                  int32_t got_stage, int32_t got_mb, int32_t stage) {
    char name[64];
    exec_fail(dv->ex, 1, "device %d op %lld (%s): the next %s from device %d is for stage %d "
              "mb %d, not stage %d mb %d; NCCL pairs sends and receives in order, so this "
              "schedule would hang or swap tensors", dv->d, (long long)index,
              program_op_str(op, name, sizeof name), grad ? "gradient" : "activation", src,
              got_stage, got_mb, stage, op->micro_batch);
}

void cpu_timed_out(ExecDev *dv, int64_t index, const ProgramOp *op, int grad, int32_t src) {
    char name[64];
    exec_fail(dv->ex, 1, "device %d op %lld (%s) waited %g s for its %s from device %d "
              "(watchdog); device %d never sent it: it died, stalled or lost the message",
              dv->d, (long long)index, program_op_str(op, name, sizeof name),
              dv->ex->spec.watchdog_s, grad ? "gradient" : "activation", src, src);
}

static void threads_send(ExecDev *dv, int32_t dst, int grad, int32_t stage, const ProgramOp *op,
                         ExecSlot data) {
    Exec *ex = dv->ex;
    if (cpu_send_dropped(dv, data.ptr)) return;
    int64_t t0 = exec_now_ns(ex);
    Message *msg = malloc(sizeof *msg);
    if (!msg) {
        free(data.ptr);
        exec_fail(ex, 1, "device %d: out of memory sending", dv->d);
        return;
    }
    *msg = (Message){.stage = stage, .mb = op->micro_batch, .sent_ns = t0, .data = data.ptr};
    Channel *c = channel(ex, dv->g, dv->d, dst, grad);
    pthread_mutex_lock(&c->mu);
    if (c->tail) c->tail->next = msg;
    else c->head = msg;
    c->tail = msg;
    int64_t done = msg->done_ns = exec_now_ns(ex); // msg is the receiver's once unlocked
    int64_t seq = c->pushed++;
    pthread_cond_broadcast(&c->cv);
    int rc = 0;
    struct timespec deadline = watchdog_deadline(ex);
    while (ex->spec.rendezvous && c->taken <= seq && !exec_failed(ex) && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&c->cv, &c->mu, &deadline);
    pthread_mutex_unlock(&c->mu);
    if (rc == ETIMEDOUT) cpu_not_taken(dv, op, grad, dst);
    cpu_xfer_row(dv, dst, op, stage, STREAM_SEND, t0, done);
}

static int threads_receive(ExecDev *dv, int32_t src, int grad, int32_t stage, const ProgramOp *op,
                           int64_t index, ExecSlot *out) {
    Exec *ex = dv->ex;
    Channel *c = channel(ex, dv->g, src, dv->d, grad);
    struct timespec deadline = watchdog_deadline(ex);
    pthread_mutex_lock(&c->mu);
    int rc = 0;
    while (!c->head && !exec_failed(ex) && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&c->cv, &c->mu, &deadline);
    Message *msg = c->head;
    if (msg && (msg->stage != stage || msg->mb != op->micro_batch)) {
        int32_t got_stage = msg->stage, got_mb = msg->mb;
        pthread_mutex_unlock(&c->mu);
        cpu_mismatch(dv, index, op, grad, src, got_stage, got_mb, stage);
        return -1;
    }
    if (msg) {
        c->head = msg->next;
        if (!c->head) c->tail = NULL;
        c->taken++;
        pthread_cond_broadcast(&c->cv); // a rendezvous sender may wait for this
    }
    pthread_mutex_unlock(&c->mu);
    if (!msg) {
        if (rc == ETIMEDOUT) cpu_timed_out(dv, index, op, grad, src);
        return -1;
    }
    // the transfer ended when it was queued; waiting for it is idle time
    cpu_xfer_row(dv, src, op, stage, STREAM_RECV, msg->sent_ns, msg->done_ns);
    *out = (ExecSlot){msg->data, NULL, 1};
    free(msg);
    return 0;
}

/* The tensor groups, then the data groups, then the context groups (one array): tensor
 * groups have T members, data groups DP, context groups C. 0, or -1 out of memory (destroy
 * frees what was made). */
static int groups_create(Exec *ex, Threads *ts) {
    int64_t nt = (int64_t)ex->p * ex->DP, nd = (int64_t)ex->p * ex->T;
    ts->ngroups = nt + nd + (int64_t)ex->p * ex->D * ex->T;
    ts->tensor = calloc((size_t)ts->ngroups, sizeof *ts->tensor);
    if (!ts->tensor) return -1;
    ts->data = ts->tensor + nt, ts->context = ts->data + nd;
    int64_t room = group_room(ex);
    for (int64_t i = 0; i < ts->ngroups; i++) {
        Group *gr = &ts->tensor[i];
        gr->n = i < nt ? ex->T : i < nt + nd ? ex->DP : ex->C;
        pthread_mutex_init(&gr->mu, NULL);
        pthread_cond_init(&gr->cv, NULL);
        gr->buf = calloc((size_t)gr->n, sizeof *gr->buf);
        gr->sum = gr->n > 1 ? malloc((size_t)room * sizeof *gr->sum) : NULL;
        if (!gr->buf || (gr->n > 1 && !gr->sum)) return -1;
    }
    return 0;
}

static int threads_create(Exec *ex, char *why, size_t whylen) {
    Threads *ts = ex->be = calloc(1, sizeof *ts);
    if (!ts) return snprintf(why, whylen, "out of host memory"), 1;
    CpuState *cs = &ts->cpu;
    cs->allreduce = threads_allreduce;
    cs->allgather = threads_allgather;
    cs->reduce_scatter = threads_reduce_scatter;
    cs->zero_reduce_scatter = threads_zero_reduce_scatter;
    cs->zero_all_gather = threads_zero_all_gather;
    cs->ch = calloc((size_t)ex->W * ex->W * 2, sizeof *cs->ch);
    if (!cs->ch || groups_create(ex, ts) != 0)
        return snprintf(why, whylen, "out of host memory"), 1;
    for (int64_t i = 0; i < (int64_t)ex->W * ex->W * 2; i++) {
        pthread_mutex_init(&cs->ch[i].mu, NULL);
        pthread_cond_init(&cs->ch[i].cv, NULL);
    }
    return cpu_create(ex, NULL, why, whylen);
}

static void threads_destroy(Exec *ex) {
    Threads *ts = ex->be;
    CpuState *cs = ex->be;
    if (!cs) return;
    cpu_destroy(ex);
    for (int64_t i = 0; cs->ch && i < (int64_t)ex->W * ex->W * 2; i++) {
        for (Message *m = cs->ch[i].head, *n; m; m = n) n = m->next, free(m->data), free(m);
        pthread_mutex_destroy(&cs->ch[i].mu);
        pthread_cond_destroy(&cs->ch[i].cv);
    }
    for (int64_t i = 0; ts->tensor && i < ts->ngroups; i++) {
        pthread_mutex_destroy(&ts->tensor[i].mu);
        pthread_cond_destroy(&ts->tensor[i].cv);
        free(ts->tensor[i].buf), free(ts->tensor[i].sum);
    }
    free(ts->tensor);
    free(cs->ch);
    free(ts);
    ex->be = NULL;
}

static void threads_lane(Exec *ex, int32_t w) { cpu_device_ops(&ex->devs[w]); }

/* After a round's join: a device that ended early may have left no peer waiting on it (its
 * last ops feed no one), so the join is where it is found. */
static void threads_joined(Exec *ex) {
    for (int32_t w = 0; w < ex->W; w++) {
        CpuDev *cd = ex->devs[w].be;
        int32_t d = ex->devs[w].d;
        if (cd->stopped)
            exec_fail(ex, 1, "device %d's thread %s after %lld ops (--%s-after), before its "
                      "last op", d, ex->spec.stall ? "stalled" : "ended",
                      (long long)ex->spec.kill_after, ex->spec.stall ? "stall" : "kill");
        cd->stopped = 0;
    }
}

static int threads_run(Exec *ex, Timeline *tl) {
    clock_gettime(CLOCK_MONOTONIC, &ex->epoch);
    return exec_rounds(ex, ex->W, threads_lane, threads_joined, tl);
}

const ExecBackend exec_cpu_threads = {
    .name = "cpu (threads)", .lane = "device", .kernels = &cpu_kernels,
    .create = threads_create, .destroy = threads_destroy, .run = threads_run,
    .grads = cpu_grads, .layer_of = cpu_layer_of, .wake = threads_wake,
    .batch = cpu_batch, .receive = threads_receive, .send = threads_send,
    .span_begin = cpu_span_begin, .span_end = cpu_span_end,
};
