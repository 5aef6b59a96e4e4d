/* exec/cpu.c: the CPU backends' shared parts (cpu.h) and exec_cpu_threads: one worker thread
 * per device in every round, joined at its end (the flush), data between devices through
 * in-process channels as strict as NCCL's: one ordered channel per (sender, receiver,
 * activations or gradients), and a receiver that finds another message than the one it
 * expects at the head of its channel fails (NCCL would hang or hand it the wrong tensor). A
 * wait longer than the watchdog fails with the op that waits, instead of hanging. */
#include "exec/cpu.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the layer on OpenBLAS ---- */

static int cpu_acts_new(ExecDev *dv, uint64_t seed, void **acts) {
    LayerActs *a = malloc(sizeof *a);
    if (a && layer_acts_init(a, &dv->ex->spec.shape) == 0) return a->seed = seed, *acts = a, 0;
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

static int cpu_pass(ExecDev *dv, OpKind pass, int64_t layer, void *acts, const void *in,
                    void *out) {
    CpuState *cs = dv->ex->be;
    if (layer_pass(&cs->layers[layer], pass, acts, &((CpuDev *)dv->be)->scratch, in, out, NULL) == 0)
        return 0;
    return exec_fail(dv->ex, 1, "device %d: layer %lld's pass failed", dv->d, (long long)layer), -1;
}

const ExecKernels cpu_kernels = {cpu_acts_new, cpu_acts_free, cpu_buf_new, cpu_buf_free,
                                 cpu_pass};

/* ---- state, data, timing ---- */

int cpu_create(Exec *ex, int (*mine)(const Exec *ex, int32_t d), char *why, size_t whylen) {
    CpuState *cs = ex->be;
    cs->layers = calloc((size_t)(ex->nlayers ? ex->nlayers : 1), sizeof *cs->layers);
    int rc = cs->layers ? 0 : -1;
    for (int32_t d = 0; rc == 0 && d < ex->p; d++) {
        CpuDev *cd = calloc(1, sizeof *cd);
        ex->devs[d].be = cd;
        if (!cd || ((!mine || mine(ex, d)) && layer_scratch_init(&cd->scratch, &ex->spec.shape)))
            rc = -1;
    }
    const Program *pr = ex->spec.pr;
    for (int32_t st = 0; rc == 0 && st < ex->S; st++)
        for (int64_t k = 0; rc == 0 && k < ex->spec.pl->layers[st]; k++)
            if (!mine || mine(ex, pr->device_of[st]))
                rc = layer_init(&cs->layers[ex->layer_at[st] + k], &ex->spec.shape,
                                exec_layer_seed(ex, st, k));
    if (rc == 0) return 0;
    snprintf(why, whylen, "out of memory for the model's %lld layers; try --scale",
             (long long)(ex->nlayers / ex->spec.pr->pipes));
    return 1;
}

void cpu_destroy(Exec *ex) {
    CpuState *cs = ex->be;
    if (!cs) return;
    exec_release(ex);
    for (int64_t i = 0; cs->layers && i < ex->nlayers; i++) layer_free(&cs->layers[i]);
    for (int32_t d = 0; ex->devs && d < ex->p; d++) {
        CpuDev *cd = ex->devs[d].be;
        if (cd) layer_scratch_free(&cd->scratch);
        free(cd);
        ex->devs[d].be = NULL;
    }
    free(cs->layers);
}

int cpu_grads(Exec *ex, int32_t stage, int32_t k, Layer *out, char *why, size_t whylen) {
    const Layer *l = &((CpuState *)ex->be)->layers[ex->layer_at[stage] + k];
    if (!l->g[0]) // on ranks, only this rank's stages have layers
        return snprintf(why, whylen, "stage %d runs on device %d, not on this rank (%d)", stage,
                        ex->spec.pr->device_of[stage], ex->rank), -1;
    for (int i = 0; i < LAYER_WEIGHTS; i++)
        memcpy(out->g[i], l->g[i],
               (size_t)layer_buf_elems(&l->sh, (LayerBuf)(LB_FIRST_GRAD + i)) * sizeof(float));
    return 0;
}

int cpu_batch(ExecDev *dv, int32_t mb, ExecSlot *out) {
    float *x = malloc((size_t)dv->ex->floats * sizeof *x);
    if (!x) return exec_fail(dv->ex, 1, "device %d: out of memory", dv->d), -1;
    exec_batch_fill(mb, x, dv->ex->floats);
    *out = (ExecSlot){x, NULL, 1};
    return 0;
}

int cpu_span_begin(ExecDev *dv, const ProgramOp *op, int64_t index, int64_t *token) {
    (void)op, (void)index;
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
    if (dv->d != dv->ex->spec.drop_send_of || cd->sent++ != 0) return 0;
    free(data); // the injected fault
    return 1;
}

void cpu_device_ops(ExecDev *dv) {
    Exec *ex = dv->ex;
    const ExecSpec *sp = &ex->spec;
    int64_t n = program_len(sp->pr, dv->d);
    ((CpuDev *)dv->be)->sent = 0;
    for (int64_t i = 0; i < n && !exec_failed(ex); i++) {
        if (dv->d == sp->kill_device && sp->kill_after > 0 &&
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

static Channel *channel(Exec *ex, int32_t src, int32_t dst, int grad) {
    return &((CpuState *)ex->be)->ch[((int64_t)src * ex->p + dst) * 2 + grad];
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
    CpuState *cs = ex->be;
    for (int64_t i = 0; cs && cs->ch && i < (int64_t)ex->p * ex->p * 2; i++) {
        pthread_mutex_lock(&cs->ch[i].mu);
        pthread_cond_broadcast(&cs->ch[i].cv);
        pthread_mutex_unlock(&cs->ch[i].mu);
    }
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
    Channel *c = channel(ex, dv->d, dst, grad);
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
    Channel *c = channel(ex, src, dv->d, grad);
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

static int threads_create(Exec *ex, char *why, size_t whylen) {
    CpuState *cs = ex->be = calloc(1, sizeof *cs);
    if (!cs) return snprintf(why, whylen, "out of host memory"), 1;
    cs->ch = calloc((size_t)ex->p * ex->p * 2, sizeof *cs->ch);
    if (!cs->ch) return snprintf(why, whylen, "out of host memory"), 1;
    for (int64_t i = 0; i < (int64_t)ex->p * ex->p * 2; i++) {
        pthread_mutex_init(&cs->ch[i].mu, NULL);
        pthread_cond_init(&cs->ch[i].cv, NULL);
    }
    return cpu_create(ex, NULL, why, whylen);
}

static void threads_destroy(Exec *ex) {
    CpuState *cs = ex->be;
    if (!cs) return;
    cpu_destroy(ex);
    for (int64_t i = 0; cs->ch && i < (int64_t)ex->p * ex->p * 2; i++) {
        for (Message *m = cs->ch[i].head, *n; m; m = n) n = m->next, free(m->data), free(m);
        pthread_mutex_destroy(&cs->ch[i].mu);
        pthread_cond_destroy(&cs->ch[i].cv);
    }
    free(cs->ch);
    free(cs);
    ex->be = NULL;
}

static void threads_lane(Exec *ex, int32_t d) { cpu_device_ops(&ex->devs[d]); }

/* After a round's join: a device that ended early may have left no peer waiting on it (its
 * last ops feed no one), so the join is where it is found. */
static void threads_joined(Exec *ex) {
    for (int32_t d = 0; d < ex->p; d++) {
        CpuDev *cd = ex->devs[d].be;
        if (cd->stopped)
            exec_fail(ex, 1, "device %d's thread %s after %lld ops (--%s-after), before its "
                      "last op", d, ex->spec.stall ? "stalled" : "ended",
                      (long long)ex->spec.kill_after, ex->spec.stall ? "stall" : "kill");
        cd->stopped = 0;
    }
}

static int threads_run(Exec *ex, Timeline *tl) {
    clock_gettime(CLOCK_MONOTONIC, &ex->epoch);
    return exec_rounds(ex, ex->p, threads_lane, threads_joined, tl);
}

const ExecBackend exec_cpu_threads = {
    .name = "cpu (threads)", .lane = "device", .kernels = &cpu_kernels,
    .create = threads_create, .destroy = threads_destroy, .run = threads_run,
    .grads = cpu_grads, .wake = threads_wake,
    .batch = cpu_batch, .receive = threads_receive, .send = threads_send,
    .span_begin = cpu_span_begin, .span_end = cpu_span_end,
};
