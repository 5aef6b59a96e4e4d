/* exec/core.c: the executor core (core.h) and the public calls of exec.h, which hand over to
 * the backend's table. Nothing here knows threads' channels, MPI messages or CUDA streams. */
#include "exec/core.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef PIPESIM_MPI
#include <mpi.h>
#endif

/* ---- failures, time, the barrier ---- */

int exec_fail(Exec *ex, int status, const char *fmt, ...) {
    pthread_mutex_lock(&ex->mu);
    int first = !ex->failed;
    if (first) {
        ex->failed = status;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ex->why, sizeof ex->why, fmt, ap);
        va_end(ap);
    }
    pthread_cond_broadcast(&ex->bar_cv);
    pthread_mutex_unlock(&ex->mu);
    if (ex->b->wake) ex->b->wake(ex);
    return first;
}

int exec_failed(Exec *ex) {
    pthread_mutex_lock(&ex->mu);
    int f = ex->failed;
    pthread_mutex_unlock(&ex->mu);
    return f;
}

int64_t exec_now_ns(const Exec *ex) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)(t.tv_sec - ex->epoch.tv_sec) * 1000000000 + (t.tv_nsec - ex->epoch.tv_nsec);
}

int64_t exec_deadline_ns(const Exec *ex) {
    return exec_now_ns(ex) + (int64_t)(ex->spec.watchdog_s * 1e9);
}

void exec_barrier(Exec *ex) {
    pthread_mutex_lock(&ex->mu);
    int64_t gen = ex->bar_gen;
    if (++ex->bar_in == ex->bar_lanes) {
        ex->bar_in = 0, ex->bar_gen++;
        pthread_cond_broadcast(&ex->bar_cv);
    }
    while (gen == ex->bar_gen && !ex->failed) pthread_cond_wait(&ex->bar_cv, &ex->mu);
    pthread_mutex_unlock(&ex->mu);
}

/* ---- rows ---- */

TimelineOp exec_row(const Exec *ex, int32_t d, int32_t peer, OpKind kind, int32_t mb,
                    int16_t chunk, Stream stream, int64_t bytes, int64_t start, int64_t end) {
    return (TimelineOp){.start_ns = start, .end_ns = end, .bytes = bytes, .device = d,
                        .micro_batch = ex->round * ex->m + mb, .peer = peer, .chunk = chunk,
                        .kind = (uint8_t)kind, .stream = (uint8_t)stream};
}

void exec_row_push(ExecDev *dv, const TimelineOp *row) {
    if (dv->g != 0) return; // replica 0's context and tensor rank 0 stands for the others,
                            //   as in psim
    if (timeline_push(&dv->tl, row) != 0) exec_fail(dv->ex, 1, "out of memory for the timeline");
}

void exec_rows_merge(Exec *ex, Timeline *tl) {
    int full = 0;
    for (int32_t d = 0; d < ex->W; d++) {
        for (size_t i = 0; i < ex->devs[d].tl.n && !full; i++)
            if (timeline_push(tl, &ex->devs[d].tl.ops[i]) != 0)
                full = 1, exec_fail(ex, 1, "out of memory for the timeline");
        ex->devs[d].tl.n = 0;
    }
}

/* ---- rounds ---- */

typedef struct {
    Exec *ex;
    int32_t i;
    void (*lane)(Exec *ex, int32_t i);
} LaneArg;

static void *lane_main(void *arg) {
    LaneArg *a = arg;
    a->lane(a->ex, a->i);
    return NULL;
}

int exec_rounds(Exec *ex, int32_t lanes, void (*lane)(Exec *ex, int32_t i),
                void (*joined)(Exec *ex), Timeline *tl) {
    int32_t runs = ex->spec.iterations / ex->spec.pr->iterations;
    pthread_t *th = calloc((size_t)lanes, sizeof *th);
    LaneArg *args = calloc((size_t)lanes, sizeof *args);
    if (!th || !args) exec_fail(ex, 1, "out of memory for the %ss' threads", ex->b->lane);
    for (ex->round = 0; th && args && ex->round < runs && !exec_failed(ex); ex->round++) {
        int32_t started = 0;
        ex->bar_lanes = lanes, ex->bar_in = 0;
        for (int32_t i = 0; i < lanes && !exec_failed(ex); i++, started++) {
            args[i] = (LaneArg){ex, i, lane};
            if (pthread_create(&th[i], NULL, lane_main, &args[i]) != 0) {
                exec_fail(ex, 1, "cannot start the thread of %s %d", ex->b->lane, i);
                break;
            }
        }
        for (int32_t i = 0; i < started; i++) pthread_join(th[i], NULL);
        if (joined) joined(ex);
        if (tl) exec_rows_merge(ex, tl); // a failed run keeps what was measured
    }
    free(th), free(args);
    return ex->failed;
}

/* ---- a device's op ---- */

/* Runs op's layers: forward in order, backward (B, W) in reverse. *in (owned or not) is
 * replaced by the output (W: left alone). Two buffers take turns: a layer's owned input
 * becomes the next one's output. */
static int layers_run(ExecDev *dv, const ProgramOp *op, int32_t st, ExecSlot *in) {
    Exec *ex = dv->ex;
    const ExecKernels *k = ex->b->kernels;
    int64_t nl = ex->spec.pl->layers[st];
    int64_t slot = ((int64_t)dv->g * ex->S + st) * ex->m + op->micro_batch;
    if (op->kind == OP_F) { // taken now; on failure exec_release gives them back
        void **acts = calloc((size_t)(nl ? nl : 1), sizeof *acts);
        if (!acts) return exec_fail(ex, 1, "device %d: out of memory for activations", dv->d), -1;
        ex->acts[slot] = acts;
        int64_t mb = ((int64_t)ex->round * ex->D + dv->replica) * ex->m + op->micro_batch; // its
                  // number in the run: replicas draw their own dropouts, a replica's context
                  // ranks its (their masks drawn at their tokens' positions)
        for (int64_t i = 0; i < nl; i++)
            if (k->acts_new(dv, layer_pass_seed(exec_layer_seed(ex, st, i), mb), &acts[i]) != 0)
                return -1;
    }
    void **acts = ex->acts[slot], *spare = NULL;
    int rc = 0;
    for (int64_t i = 0; i < nl && rc == 0; i++) {
        int64_t l = op->kind == OP_F ? i : nl - 1 - i;
        void *next = NULL;
        if (op->kind != OP_W) {
            if (spare) next = spare, spare = NULL;
            else if (k->buf_new(dv, &next) != 0) rc = -1;
        }
        if (rc == 0)
            rc = k->pass(dv, (OpKind)op->kind, ex->layer_at[st] + l, acts[l], in->ptr, next);
        if (rc != 0 && next) k->buf_free(dv, next);
        if (rc == 0 && next) {
            if (in->owned) spare = in->ptr;
            *in = (ExecSlot){next, NULL, 1};
        }
    }
    if (spare) k->buf_free(dv, spare);
    if (rc != 0) return -1;
    if (op->kind == OP_W || op->kind == OP_BW) {
        for (int64_t i = 0; i < nl; i++) k->acts_free(dv, acts[i]);
        free(acts);
        ex->acts[slot] = NULL;
    }
    return 0;
}

/* The input of op at stage st: the batch for a pipe's first forward, data this device kept
 * (its own output, the loss gradient), or a receive. */
static int op_input(ExecDev *dv, const ProgramOp *op, int32_t st, int64_t index, ExecSlot *in) {
    Exec *ex = dv->ex;
    const Program *pr = ex->spec.pr;
    int grad = op->kind != OP_F;
    int32_t from = program_input_stage(pr, (OpKind)op->kind, st);
    if (from < 0 && !grad) return ex->b->batch(dv, op->micro_batch, in);
    if (from >= 0 && pr->device_of[from] != dv->d)
        return ex->b->receive(dv, pr->device_of[from], grad, st, op, index, in);
    ExecSlot *kept = exec_slot_of(ex, dv->g, st, op->micro_batch, grad);
    *in = *kept, *kept = (ExecSlot){0};
    if (in->ptr) return 0;
    char name[64];
    exec_fail(ex, 1, "device %d op %lld (%s): no input was kept for it", dv->d, (long long)index,
              program_op_str(op, name, sizeof name));
    return -1;
}

/* Where op's output goes: dropped (the first stage's input gradient), kept on this device
 * (for its own next stage, or the last stage's loss gradient d(|y|^2 / 2) / dy = y for its
 * own B), or sent. */
static void op_output(ExecDev *dv, const ProgramOp *op, int32_t st, ExecSlot out) {
    Exec *ex = dv->ex;
    const Program *pr = ex->spec.pr;
    int grad = op->kind != OP_F;
    int32_t to = program_output_stage(pr, (OpKind)op->kind, st);
    if (to < 0 && grad) {
        if (out.owned) ex->b->kernels->buf_free(dv, out.ptr);
        return;
    }
    if (to < 0 || pr->device_of[to] == dv->d) {
        *exec_slot_of(ex, dv->g, to < 0 ? st : to, op->micro_batch, to < 0 ? 1 : grad) =
            (ExecSlot){out.ptr, NULL, out.owned};
        return;
    }
    ex->b->send(dv, pr->device_of[to], grad, to, op, out);
}

static void split_add(ExecDev *dv, const ProgramOp *op, double op_ns);

int exec_op(ExecDev *dv, int64_t index) {
    Exec *ex = dv->ex;
    const Program *pr = ex->spec.pr;
    const ProgramOp *op = &pr->ops[pr->start[dv->d] + index];
    int32_t st = program_stage_of(pr, dv->d, op->chunk);
    ExecSlot data = {0};
    int64_t token = 0;
    void *ready = NULL;
    if (op->kind != OP_W && op_input(dv, op, st, index, &data) != 0) return -1;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (ex->b->span_begin(dv, op, index, &token) != 0 || layers_run(dv, op, st, &data) != 0 ||
        ex->b->span_end(dv, op, token, &ready) != 0) {
        if (data.ptr && data.owned) ex->b->kernels->buf_free(dv, data.ptr);
        return -1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    split_add(dv, op, (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec));
    if (op->kind != OP_W) op_output(dv, op, st, (ExecSlot){data.ptr, ready, data.owned});
    return 0;
}

/* Adds an op's kernel time (taken from the backend) and its time outside the kernels to the
 * device's split, unless the round is the warm-up (round 0 of several) or the worker is not
 * the one whose rows are stored. */
static void split_add(ExecDev *dv, const ProgramOp *op, double op_ns) {
    Exec *ex = dv->ex;
    const ExecKernels *k = ex->b->kernels;
    if (!k->timing) return;
    LayerTiming t;
    k->timing(dv, &t);
    int32_t runs = ex->spec.iterations / ex->spec.pr->iterations;
    if (dv->g != 0 || (runs > 1 && ex->round == 0)) return;
    double kernels = 0;
    for (int p = 0; p < 3; p++)
        for (int c = 0; c < LC_COUNT; c++) dv->split.ns[p][c] += t.ns[p][c], kernels += t.ns[p][c];
    int pass = op->kind == OP_F ? 0 : op->kind == OP_W ? 2 : 1;
    dv->outside_ns[pass] += op_ns > kernels ? op_ns - kernels : 0;
    if (dv->split_rounds == 0 || dv->split_round != ex->round)
        dv->split_rounds++, dv->split_round = ex->round;
}

double exec_host_bytes(const ExecSpec *spec, int per_worker) {
    const Program *pr = spec->pr;
    int32_t S = program_stages(pr), t = spec->tensor > 1 ? spec->tensor : 1;
    int32_t d = spec->data > 1 ? spec->data : 1, c = spec->context > 1 ? spec->context : 1;
    LayerShape sh = spec->shape;
    sh.tensor = t, sh.rank = 0, sh.context = c, sh.crank = 0;
    double weights = 0, acts = 0, scratch = 0, data = 4.0 * (double)layer_rows(&sh) * sh.hidden;
    for (int b = LB_FIRST_WEIGHT; b < LB_LAYER_END; b++) weights += 4.0 * (double)layer_buf_elems(&sh, (LayerBuf)b);
    for (int b = LB_FIRST_ACT; b < LB_FIRST_SCRATCH; b++) acts += 4.0 * (double)layer_buf_elems(&sh, (LayerBuf)b);
    for (int b = LB_FIRST_SCRATCH; b < LB_FIRST_WEIGHT; b++) scratch += 4.0 * (double)layer_buf_elems(&sh, (LayerBuf)b);
    scratch += 4.0 * (double)layer_buf_elems(&sh, LB_KV) * (c + 1) / c; // the K/V staging
    int64_t *now = calloc((size_t)S, sizeof *now), *peak = calloc((size_t)S, sizeof *peak);
    if (!now || !peak) return free(now), free(peak), 0;
    double total = 0, most = 0;
    for (int32_t dv = 0; dv < pr->devices; dv++) {
        for (int64_t i = pr->start[dv]; i < pr->start[dv + 1]; i++) {
            const ProgramOp *op = &pr->ops[i];
            int32_t st = program_stage_of(pr, dv, op->chunk);
            if (op->kind == OP_F && ++now[st] > peak[st]) peak[st] = now[st];
            if (op->kind == OP_BW || op->kind == OP_W) now[st]--;
        }
        double mine = scratch + 2 * data;
        for (int32_t st = 0; st < S; st++)
            if (pr->device_of[st] == dv)
                mine += (double)spec->pl->layers[st] * (weights + (double)peak[st] * acts) +
                        (double)peak[st] * 2 * data; // its kept outputs and their gradients
        total += mine * d * c * t;
        if (mine > most) most = mine;
    }
    free(now), free(peak);
    return per_worker ? most : total;
}

int exec_split(const Exec *ex, int32_t d, double pass_ms[3][LC_COUNT + 1]) {
    if (d < 0 || d >= ex->spec.pr->devices || !ex->b->kernels->timing) return -1;
    const ExecDev *dv = exec_worker((Exec *)ex, d, 0); // group 0: here, or gathered to MPI
                                                       // rank 0
    if (!dv || dv->split_rounds == 0) return -1;
    double per = (double)dv->split_rounds * ex->spec.pr->iterations * 1e6; // ns -> ms per iteration
    for (int p = 0; p < 3; p++) {
        for (int c = 0; c < LC_COUNT; c++) pass_ms[p][c] = dv->split.ns[p][c] / per;
        pass_ms[p][LC_COUNT] = dv->outside_ns[p] / per;
    }
    return 0;
}

void exec_release(Exec *ex) {
    const ExecKernels *k = ex->b->kernels;
    const Program *pr = ex->spec.pr;
    for (int32_t g = 0; ex->acts && g < ex->G; g++)
        for (int32_t st = 0; st < ex->S; st++)
            for (int32_t mb = 0; mb < ex->m; mb++) {
                int64_t at = ((int64_t)g * ex->S + st) * ex->m + mb;
                void **acts = ex->acts[at];
                ExecDev *dv = exec_worker(ex, pr->device_of[st], g);
                for (int64_t i = 0; acts && i < ex->spec.pl->layers[st]; i++)
                    k->acts_free(dv, acts[i]);
                free(acts);
                ex->acts[at] = NULL;
                for (int gr = 0; ex->slots && gr < 2; gr++) {
                    ExecSlot *s = exec_slot_of(ex, g, st, mb, gr);
                    if (s->ptr && s->owned) k->buf_free(dv, s->ptr);
                    *s = (ExecSlot){0};
                }
            }
}

/* ---- what every backend computes alike ---- */

void exec_batch_fill(int32_t mb, float *x, int64_t n) {
    uint32_t s = 2654435761u * (uint32_t)(mb + 1);
    for (int64_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)(s >> 8) / (float)(1u << 24) - 0.5f;
    }
}

uint64_t exec_layer_seed(const Exec *ex, int32_t stage, int64_t k) {
    int32_t per = ex->S / ex->spec.pr->pipes; // stages of one model copy
    uint64_t copy = (uint64_t)(stage / per), layer = (uint64_t)(ex->spec.pl->first_layer[stage] + k);
    return ex->spec.seed + (copy << 20) + layer;
}

#ifdef PIPESIM_MPI
int exec_mpi_gather(const Exec *ex, const Timeline *mine, Timeline *tl, const int64_t *clock_off) {
    int size;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (ex->rank != 0) {
        int64_t n = (int64_t)mine->n;
        MPI_Send(&n, 1, MPI_INT64_T, 0, 100, MPI_COMM_WORLD);
        MPI_Send(mine->ops, (int)(mine->n * sizeof *mine->ops), MPI_BYTE, 0, 101, MPI_COMM_WORLD);
        return 0;
    }
    for (size_t i = 0; i < mine->n; i++)
        if (timeline_push(tl, &mine->ops[i]) != 0) return -1;
    for (int r = 1; r < size; r++) {
        int64_t n, off = clock_off ? clock_off[r] : 0;
        MPI_Recv(&n, 1, MPI_INT64_T, r, 100, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        TimelineOp *rows = malloc((size_t)(n ? n : 1) * sizeof *rows);
        if (!rows) return -1; // the rank aborts the job
        MPI_Recv(rows, (int)((size_t)n * sizeof *rows), MPI_BYTE, r, 101, MPI_COMM_WORLD,
                 MPI_STATUS_IGNORE);
        for (int64_t i = 0; i < n; i++) {
            rows[i].start_ns -= off, rows[i].end_ns -= off;
            if (timeline_push(tl, &rows[i]) != 0) return free(rows), -1;
        }
        free(rows);
    }
    return 0;
}
#endif

/* ---- exec.h ---- */

const char *exec_backend_name(const ExecBackend *b) { return b->name; }

int exec_create(const ExecSpec *spec, const ExecBackend *b, Exec **out, char *why,
                size_t whylen) {
    *out = NULL;
    Exec *ex = calloc(1, sizeof *ex);
    if (!ex) return snprintf(why, whylen, "out of host memory"), 1;
    ex->spec = *spec, ex->b = b;
    const Program *pr = spec->pr;
    ex->p = pr->devices, ex->S = program_stages(pr), ex->m = pr->micro_batches;
    ex->D = spec->data > 1 ? spec->data : 1, ex->T = spec->tensor > 1 ? spec->tensor : 1;
    ex->C = spec->context > 1 ? spec->context : 1;
    ex->DP = ex->D * ex->C, ex->G = ex->DP * ex->T, ex->W = ex->p * ex->G;
    LayerShape sh0 = exec_shape(ex, 0);
    ex->floats = layer_rows(&sh0) * sh0.hidden; // a tensor rank's T/t tokens when sequence parallel
    pthread_mutex_init(&ex->mu, NULL);
    pthread_cond_init(&ex->bar_cv, NULL);
    clock_gettime(CLOCK_MONOTONIC, &ex->epoch);
    ex->layer_at = malloc((size_t)ex->S * sizeof *ex->layer_at);
    for (int32_t st = 0; ex->layer_at && st < ex->S; st++)
        ex->layer_at[st] = ex->nlayers, ex->nlayers += spec->pl->layers[st];
    ex->devs = calloc((size_t)ex->W, sizeof *ex->devs);
    ex->acts = calloc((size_t)ex->G * ex->S * ex->m, sizeof *ex->acts);
    ex->slots = calloc((size_t)ex->G * ex->S * ex->m * 2, sizeof *ex->slots);
    int rc = ex->layer_at && ex->devs && ex->acts && ex->slots ? 0 : 1;
    if (rc) snprintf(why, whylen, "out of host memory");
    for (int32_t w = 0; rc == 0 && w < ex->W; w++) {
        int32_t g = w % ex->G;
        ExecDev *dv = &ex->devs[w];
        *dv = (ExecDev){.ex = ex, .d = w / ex->G, .replica = g / (ex->C * ex->T),
                        .crank = g / ex->T % ex->C, .trank = g % ex->T, .dp = g / ex->T, .g = g,
                        .w = w, .shape = exec_shape(ex, g % ex->T)};
        dv->shape.crank = dv->crank;
    }
    if (rc == 0 && (ex->G > 1 || spec->tail) && !b->layer_of)
        rc = 2, snprintf(why, whylen, "the %s backend runs one pipeline replica without tensor "
                         "or context parallelism or an optimizer step (data = %d, tensor = %d, "
                         "context = %d%s); use --backend cpu, or set parallel.data=1, "
                         "parallel.tensor=1 and parallel.context=1 and leave costs.optimizer_ms "
                         "unset", b->name, ex->D, ex->T, ex->C,
                         spec->tail ? ", with the tail" : "");
    if (rc == 0 && ex->C > 1 && spec->shape.seq % (2 * ex->C))
        rc = 2, snprintf(why, whylen, "parallel.context = %d splits each sample into 2 x %d "
                         "chunks, but seq_len = %d is not a multiple of %d; pick a context that "
                         "divides seq_len / 2", ex->C, ex->C, spec->shape.seq, 2 * ex->C);
    int kv = spec->shape.kv_heads > 0 ? spec->shape.kv_heads : spec->shape.heads;
    if (rc == 0 && (spec->shape.heads % ex->T || spec->shape.ffn % ex->T || kv % ex->T))
        rc = 2, snprintf(why, whylen, "parallel.tensor = %d must divide model.heads (%d), "
                         "model.kv_heads (%d) and model.ffn_hidden (%d); pick a divisor of all "
                         "three", ex->T, spec->shape.heads, kv, spec->shape.ffn);
    if (rc == 0 && spec->shape.seqpar && ex->T > 1 && layer_tokens(&sh0) % ex->T)
        rc = 2, snprintf(why, whylen, "parallel.sequence splits micro_batch_size x seq_len / "
                         "context = %lld tokens over tensor = %d ranks; pick a tensor that "
                         "divides them", (long long)layer_tokens(&sh0), ex->T);
    if (rc == 0) rc = b->create(ex, why, whylen);
    if (rc != 0) {
        exec_free(ex);
        return rc;
    }
    *out = ex;
    return 0;
}

void exec_free(Exec *ex) {
    if (!ex) return;
    ex->b->destroy(ex);
    for (int32_t w = 0; ex->devs && w < ex->W; w++) timeline_free(&ex->devs[w].tl);
    pthread_mutex_destroy(&ex->mu);
    pthread_cond_destroy(&ex->bar_cv);
    free(ex->layer_at), free(ex->devs), free(ex->acts), free(ex->slots);
    free(ex);
}

int exec_run(Exec *ex, Timeline *tl, char *why, size_t whylen) {
    int rc = ex->b->run(ex, tl);
    if (rc) snprintf(why, whylen, "%s", ex->why);
    return rc;
}

int exec_settle(Exec *ex) { return ex->b->settle ? ex->b->settle(ex) : 0; }

int exec_rank(const Exec *ex) { return ex->rank; }

int exec_grads(Exec *ex, int32_t stage, int32_t k, Layer *out, char *why, size_t whylen) {
    if (stage < 0 || stage >= ex->S || k < 0 || k >= ex->spec.pl->layers[stage])
        return snprintf(why, whylen, "no layer %d of stage %d", k, stage), -1;
    return ex->b->grads(ex, stage, k, out, why, whylen);
}

int exec_layer_of(Exec *ex, int32_t replica, int32_t crank, int32_t trank, int32_t stage,
                  int32_t k, Layer *out, char *why, size_t whylen) {
    if (stage < 0 || stage >= ex->S || k < 0 || k >= ex->spec.pl->layers[stage])
        return snprintf(why, whylen, "no layer %d of stage %d", k, stage), -1;
    if (replica < 0 || replica >= ex->D || crank < 0 || crank >= ex->C || trank < 0 ||
        trank >= ex->T)
        return snprintf(why, whylen, "no replica %d context rank %d tensor rank %d (data = %d, "
                        "context = %d, tensor = %d)", replica, crank, trank, ex->D, ex->C,
                        ex->T), -1;
    if (!ex->b->layer_of)
        return snprintf(why, whylen, "the %s backend does not read layers back", ex->b->name), -1;
    int32_t g = (replica * ex->C + crank) * ex->T + trank;
    int32_t w = exec_worker(ex, ex->spec.pr->device_of[stage], g)->w;
    return ex->b->layer_of(ex, w, stage, k, out, why, whylen);
}

LayerShape exec_shape(const Exec *ex, int32_t trank) {
    LayerShape sh = ex->spec.shape;
    sh.tensor = ex->T, sh.rank = trank, sh.context = ex->C, sh.crank = 0;
    return sh;
}

int32_t exec_workers(const Exec *ex) { return ex->W; }

int exec_worker_here(const Exec *ex, int32_t w) {
    return w >= 0 && w < ex->W && (!ex->b->ranks || w == ex->rank);
}

int64_t exec_clock_drift_ns(const Exec *ex) { return ex->drift_ns; }
