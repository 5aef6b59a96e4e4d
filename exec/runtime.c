/* exec/runtime.c: worker threads, strict in-process channels and the watchdog. Each run of
 * the Program starts one thread per device and joins them, which is the flush between
 * iterations. Data a device hands to itself (V-shapes, the last stage's loss gradient) stays
 * in the worker; only cross-device data goes through a channel. */
#include "exec/runtime.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef PIPESIM_MPI
#include <mpi.h>
#endif

typedef struct Message {
    struct Message *next;
    int32_t stage, mb;  // the consumer's stage and micro-batch
    int64_t sent_ns;    // when the send started
    int64_t done_ns;    // when the data was in the channel (in process: the transfer's end)
    float *data;        // owned: one activation or gradient
} Message;

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;      // a message came, or (rendezvous) one was taken
    Message *head, *tail;
    int64_t pushed, taken;  // messages sent and received so far
} Channel;

typedef struct Transport Transport;

struct Runtime {
    RuntimeSpec spec;
    int32_t p, S, m;
    int64_t floats;         // floats in one activation or gradient: b*s*h
    int64_t nlayers;        // layers of all stages
    Layer *layers;          // owned: every stage's layers back to back
    int64_t *layer_at;      // owned: [S] index of the stage's first layer in layers
    Channel *ch;            // owned: [(src*p + dst)*2 + (gradient)]
    pthread_mutex_t mu;     // guards failed and why
    int failed;             // 0, or the status runtime_run returns
    char why[512];
    struct timespec epoch;  // the run's time zero
    int32_t round;          // which run of the Program (micro-batches are recorded + round*m)
    const struct Transport *tx; // threads (runtime_run) or MPI ranks (runtime_run_rank)
    pthread_mutex_t mpi_mu; // MPI: one thread in MPI at a time (worker or progress thread)
    int progress_stop;      // MPI: tells the progress thread to end (under mpi_mu)
    int64_t *clock_off;     // MPI: [rank] that rank's clock minus rank 0's, ns
    int64_t drift_ns;       // MPI: largest change of an offset between start and end
    int by_notice;          // MPI: the failure is another rank's, told to this one
    int32_t rank, size;     // MPI: this rank and the number of ranks
    char host[64];          // MPI: this rank's host name, for messages
    int *reported;          // MPI, rank 0 after a failure: [rank] 1 when it sent its report
#ifdef PIPESIM_MPI
    MPI_Request notice;     // a failure notice from any rank (posted while the run runs)
    char notice_in[512];
#endif
};

typedef struct {
    Runtime *rt;
    int32_t d;
    int sent;               // messages sent, for the fault injection
    int stopped;            // the device died or stalled early (--kill/stall-after), threads
    Timeline tl;            // this device's rows
    LayerActs **acts;       // [S*m]: the stage's layers' buffers from F until W or BW
    LayerScratch scratch;   // the device's scratch for one pass
    float **held;           // [(S*m)*2]: data this device handed itself, [0] act, [1] grad
    struct Pending *pending; // MPI: sends still in flight
} Worker;

static int64_t now_ns(const Runtime *rt) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)(t.tv_sec - rt->epoch.tv_sec) * 1000000000 + (t.tv_nsec - rt->epoch.tv_nsec);
}

/* Records the first failure and wakes every waiting worker so they stop. Returns 1 when this
 * was the first. */
static int fail(Runtime *rt, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(Runtime *rt, int status, const char *fmt, ...) {
    pthread_mutex_lock(&rt->mu);
    int first = !rt->failed;
    if (first) {
        rt->failed = status;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(rt->why, sizeof rt->why, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&rt->mu);
    for (int64_t i = 0; i < (int64_t)rt->p * rt->p * 2; i++) {
        pthread_mutex_lock(&rt->ch[i].mu);
        pthread_cond_broadcast(&rt->ch[i].cv);
        pthread_mutex_unlock(&rt->ch[i].mu);
    }
    return first;
}

static int failed(Runtime *rt) {
    pthread_mutex_lock(&rt->mu);
    int f = rt->failed;
    pthread_mutex_unlock(&rt->mu);
    return f;
}

static void record(Worker *w, int64_t start, int64_t end, int32_t device, int32_t peer,
                   const ProgramOp *op, int16_t chunk, Stream stream, int64_t bytes) {
    TimelineOp row = {.start_ns = start, .end_ns = end, .bytes = bytes, .device = device,
                      .micro_batch = w->rt->round * w->rt->m + op->micro_batch, .peer = peer,
                      .chunk = chunk, .kind = op->kind, .stream = (uint8_t)stream};
    if (timeline_push(&w->tl, &row) != 0) fail(w->rt, 1, "out of memory for the timeline");
}

static Channel *channel(Runtime *rt, int32_t src, int32_t dst, int grad) {
    return &rt->ch[((int64_t)src * rt->p + dst) * 2 + grad];
}

/* The absolute CLOCK_REALTIME time the watchdog allows a wait started now to last. */
static struct timespec watchdog_deadline(const Runtime *rt) {
    struct timespec d;
    clock_gettime(CLOCK_REALTIME, &d);
    double whole = (double)d.tv_nsec / 1e9 + rt->spec.watchdog_s;
    d.tv_sec += (time_t)whole, d.tv_nsec = (long)((whole - (double)(time_t)whole) * 1e9);
    return d;
}

static void not_taken(Worker *w, const ProgramOp *op, int grad, int32_t dst) {
    char name[64];
    fail(w->rt, 1, "device %d (%s) waited %g s for device %d to take its %s (watchdog; with "
         "--rendezvous a send completes only when its receive is posted, as a blocking NCCL "
         "send does: this order needs sends and receives posted together)", w->d,
         program_op_str(op, name, sizeof name), w->rt->spec.watchdog_s, dst,
         grad ? "gradient" : "activation");
}

static void mismatch(Worker *w, int64_t index, const ProgramOp *op, int grad, int32_t src,
                     int32_t got_stage, int32_t got_mb, int32_t stage) {
    char name[64];
    fail(w->rt, 1, "device %d op %lld (%s): the next %s from device %d is for stage %d mb %d, "
         "not stage %d mb %d; NCCL pairs sends and receives in order, so this schedule would "
         "hang or swap tensors", w->d, (long long)index, program_op_str(op, name, sizeof name),
         grad ? "gradient" : "activation", src, got_stage, got_mb, stage, op->micro_batch);
}

static void timed_out(Worker *w, int64_t index, const ProgramOp *op, int grad, int32_t src) {
    char name[64];
    fail(w->rt, 1, "device %d op %lld (%s) waited %g s for its %s from device %d (watchdog); "
         "device %d never sent it: it died, stalled or lost the message", w->d, (long long)index,
         program_op_str(op, name, sizeof name), w->rt->spec.watchdog_s,
         grad ? "gradient" : "activation", src, src);
}

/* Hands data (owned) for (stage, mb) to device dst. */
static void thread_send(Worker *w, int32_t dst, int grad, int32_t stage, const ProgramOp *op,
                 float *data) {
    Runtime *rt = w->rt;
    int64_t t0 = now_ns(rt);
    Message *msg = malloc(sizeof *msg);
    if (!msg) {
        free(data);
        fail(rt, 1, "device %d: out of memory sending", w->d);
        return;
    }
    *msg = (Message){.stage = stage, .mb = op->micro_batch, .sent_ns = t0, .data = data};
    Channel *c = channel(rt, w->d, dst, grad);
    pthread_mutex_lock(&c->mu);
    if (c->tail) c->tail->next = msg;
    else c->head = msg;
    c->tail = msg;
    int64_t done = msg->done_ns = now_ns(rt); // msg is the receiver's once unlocked
    int64_t seq = c->pushed++;
    pthread_cond_broadcast(&c->cv);
    int rc = 0;
    struct timespec deadline = watchdog_deadline(rt);
    while (rt->spec.rendezvous && c->taken <= seq && !failed(rt) && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&c->cv, &c->mu, &deadline);
    pthread_mutex_unlock(&c->mu);
    if (rc == ETIMEDOUT) not_taken(w, op, grad, dst);
    record(w, t0, done, w->d, dst, op, (int16_t)rt->spec.pr->chunk_of[stage], STREAM_SEND,
           rt->floats * (int64_t)sizeof(float));
}

/* Takes the next message from src, which must be for (stage, op's mb); NULL on failure. */
static float *thread_receive(Worker *w, int32_t src, int grad, int32_t stage, const ProgramOp *op,
                      int64_t index) {
    Runtime *rt = w->rt;
    Channel *c = channel(rt, src, w->d, grad);
    struct timespec deadline = watchdog_deadline(rt);
    pthread_mutex_lock(&c->mu);
    int rc = 0;
    while (!c->head && !failed(rt) && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&c->cv, &c->mu, &deadline);
    Message *msg = c->head;
    if (msg && (msg->stage != stage || msg->mb != op->micro_batch)) {
        int32_t got_stage = msg->stage, got_mb = msg->mb;
        pthread_mutex_unlock(&c->mu);
        mismatch(w, index, op, grad, src, got_stage, got_mb, stage);
        return NULL;
    }
    if (msg) {
        c->head = msg->next;
        if (!c->head) c->tail = NULL;
        c->taken++;
        pthread_cond_broadcast(&c->cv); // a rendezvous sender may wait for this
    }
    pthread_mutex_unlock(&c->mu);
    if (!msg) {
        if (rc == ETIMEDOUT) timed_out(w, index, op, grad, src);
        return NULL;
    }
    float *data = msg->data; // the transfer ended when it was queued; waiting is idle time
    record(w, msg->sent_ns, msg->done_ns, w->d, src, op, (int16_t)rt->spec.pr->chunk_of[stage],
           STREAM_RECV, rt->floats * (int64_t)sizeof(float));
    free(msg);
    return data;
}


#ifdef PIPESIM_MPI
/* ---- MPI ranks: one device per rank, point-to-point with MPI_Isend/MPI_Irecv. Tag 0 carries
 * activations, tag 1 gradients, so MPI's per-(source, tag) order is NCCL's per-channel order.
 * Sends do not block (two ranks sending to each other would deadlock under rendezvous); their
 * buffers are freed as they complete. ---- */

typedef struct {
    int32_t stage, mb;  // the consumer's stage and micro-batch
    int64_t sent_ns;    // on the sender's clock
} WireHeader;

typedef struct Pending {
    struct Pending *next;
    MPI_Request req;
    char *buf;
} Pending;

static size_t wire_bytes(const Runtime *rt) {
    return sizeof(WireHeader) + (size_t)rt->floats * sizeof(float);
}

/* MPI_Test under the MPI lock: 1 done, 0 not yet, -1 MPI reported an error (MPI_ERRORS_RETURN;
 * e.g. the peer's connection closed). */
static int mpi_test(Runtime *rt, MPI_Request *req) {
    int done = 0;
    pthread_mutex_lock(&rt->mpi_mu);
    int rc = MPI_Test(req, &done, MPI_STATUS_IGNORE);
    pthread_mutex_unlock(&rt->mpi_mu);
    return rc != MPI_SUCCESS ? -1 : done;
}

/* A failure notice from another rank, if one came: this rank stops too, saying why. */
static void mpi_check_notice(Runtime *rt) {
    if (rt->notice == MPI_REQUEST_NULL || mpi_test(rt, &rt->notice) != 1) return;
    rt->notice_in[sizeof rt->notice_in - 1] = '\0';
    if (fail(rt, 1, "rank %d on %.63s stopped: %.400s", rt->rank, rt->host, rt->notice_in))
        rt->by_notice = 1;
}

/* Frees the sends that completed; with all, waits for every one. Takes the MPI lock. */
static void mpi_reap(Worker *w, int all) {
    pthread_mutex_lock(&w->rt->mpi_mu);
    for (Pending **pp = &w->pending; *pp;) {
        int done = 0;
        if (all) MPI_Wait(&(*pp)->req, MPI_STATUS_IGNORE), done = 1;
        else MPI_Test(&(*pp)->req, &done, MPI_STATUS_IGNORE);
        if (!done) {
            pp = &(*pp)->next;
            continue;
        }
        Pending *p = *pp;
        *pp = p->next;
        free(p->buf), free(p);
    }
    pthread_mutex_unlock(&w->rt->mpi_mu);
}

/* Open MPI moves a large message only while its sender or receiver is inside MPI, so a send
 * would wait for the sender's next op otherwise: this thread keeps testing the pending sends
 * while the worker computes, as NCCL's own stream would carry them. */
static void *mpi_progress(void *arg) {
    Worker *w = arg;
    const struct timespec nap = {0, 50000};
    for (;;) {
        pthread_mutex_lock(&w->rt->mpi_mu);
        int stop = w->rt->progress_stop;
        pthread_mutex_unlock(&w->rt->mpi_mu);
        if (stop) return NULL;
        mpi_reap(w, 0);
        mpi_check_notice(w->rt);
        nanosleep(&nap, NULL);
    }
}

static void mpi_send(Worker *w, int32_t dst, int grad, int32_t stage, const ProgramOp *op,
                     float *data) {
    Runtime *rt = w->rt;
    int64_t t0 = now_ns(rt);
    Pending *p = malloc(sizeof *p);
    char *buf = malloc(wire_bytes(rt));
    if (!p || !buf) {
        free(p), free(buf), free(data);
        fail(rt, 1, "device %d: out of memory sending", w->d);
        return;
    }
    WireHeader h = {.stage = stage, .mb = op->micro_batch, .sent_ns = t0};
    memcpy(buf, &h, sizeof h);
    memcpy(buf + sizeof h, data, (size_t)rt->floats * sizeof(float));
    free(data);
    pthread_mutex_lock(&rt->mpi_mu);
    if (rt->spec.rendezvous) // synchronous: complete once the receive has matched
        MPI_Issend(buf, (int)wire_bytes(rt), MPI_BYTE, dst, grad, MPI_COMM_WORLD, &p->req);
    else
        MPI_Isend(buf, (int)wire_bytes(rt), MPI_BYTE, dst, grad, MPI_COMM_WORLD, &p->req);
    MPI_Request *req = &p->req;
    p->buf = buf, p->next = w->pending, w->pending = p;
    int done = 0;
    if (rt->spec.rendezvous) MPI_Test(req, &done, MPI_STATUS_IGNORE); // before reap may free it
    pthread_mutex_unlock(&rt->mpi_mu);
    int64_t deadline = now_ns(rt) + (int64_t)(rt->spec.watchdog_s * 1e9);
    const struct timespec nap = {0, 20000};
    while (rt->spec.rendezvous && !done) { // wait until the send left the pending list
        pthread_mutex_lock(&rt->mpi_mu);
        done = 1;
        for (Pending *q = w->pending; q; q = q->next)
            if (q == p) {
                MPI_Test(&q->req, &done, MPI_STATUS_IGNORE);
                break;
            }
        pthread_mutex_unlock(&rt->mpi_mu);
        if (!done && failed(rt)) return; // another rank failed: stop waiting
        if (!done && now_ns(rt) > deadline) {
            not_taken(w, op, grad, dst);
            return; // the rank aborts; the request dies with it
        }
        if (!done) nanosleep(&nap, NULL);
    }
    record(w, t0, now_ns(rt), w->d, dst, op, (int16_t)rt->spec.pr->chunk_of[stage], STREAM_SEND,
           rt->floats * (int64_t)sizeof(float));
    mpi_reap(w, 0);
}

static float *mpi_receive(Worker *w, int32_t src, int grad, int32_t stage, const ProgramOp *op,
                          int64_t index) {
    Runtime *rt = w->rt;
    char *buf = malloc(wire_bytes(rt));
    float *data = malloc((size_t)rt->floats * sizeof *data);
    if (!buf || !data) {
        free(buf), free(data);
        fail(rt, 1, "device %d: out of memory receiving", w->d);
        return NULL;
    }
    MPI_Request req;
    pthread_mutex_lock(&rt->mpi_mu);
    MPI_Irecv(buf, (int)wire_bytes(rt), MPI_BYTE, src, grad, MPI_COMM_WORLD, &req);
    pthread_mutex_unlock(&rt->mpi_mu);
    int64_t deadline = now_ns(rt) + (int64_t)(rt->spec.watchdog_s * 1e9);
    const struct timespec nap = {0, 20000}; // 20 us between polls
    int got;
    while (!(got = mpi_test(rt, &req))) {
        if (now_ns(rt) > deadline || failed(rt)) { // too late, or another rank failed
            pthread_mutex_lock(&rt->mpi_mu);
            MPI_Cancel(&req);
            MPI_Request_free(&req);
            pthread_mutex_unlock(&rt->mpi_mu);
            free(buf), free(data);
            if (!failed(rt)) timed_out(w, index, op, grad, src);
            return NULL;
        }
        nanosleep(&nap, NULL);
    }
    if (got < 0) {
        free(buf), free(data);
        fail(rt, 1, "device %d op %lld: MPI failed receiving from device %d (it may have died)",
             w->d, (long long)index, src);
        return NULL;
    }
    WireHeader h;
    memcpy(&h, buf, sizeof h);
    memcpy(data, buf + sizeof h, (size_t)rt->floats * sizeof(float));
    free(buf);
    if (h.stage != stage || h.mb != op->micro_batch) {
        free(data);
        mismatch(w, index, op, grad, src, h.stage, h.mb, stage);
        return NULL;
    }
    int64_t sent = h.sent_ns - rt->clock_off[src] + rt->clock_off[w->d]; // on this clock
    record(w, sent, now_ns(rt), w->d, src, op, (int16_t)rt->spec.pr->chunk_of[stage],
           STREAM_RECV, rt->floats * (int64_t)sizeof(float));
    return data;
}
#endif

/* The transports: how a worker hands data (owned) for (stage, op's micro-batch) to device
 * dst on channel grad, and takes the next message from src, which must be for (stage, op's
 * micro-batch); receive returns NULL on failure, having called fail. */
struct Transport {
    const char *name;
    void (*send)(Worker *w, int32_t dst, int grad, int32_t stage, const ProgramOp *op,
                 float *data);
    float *(*receive)(Worker *w, int32_t src, int grad, int32_t stage, const ProgramOp *op,
                      int64_t index);
};

static const Transport THREADS = {"threads", thread_send, thread_receive};
#ifdef PIPESIM_MPI
static const Transport MPI_RANKS = {"mpi", mpi_send, mpi_receive};
#endif

static void send(Worker *w, int32_t dst, int grad, int32_t stage, const ProgramOp *op,
                 float *data) {
    if (w->d == w->rt->spec.drop_send_of && w->sent++ == 0) { // the injected fault
        free(data);
        return;
    }
    w->rt->tx->send(w, dst, grad, stage, op, data);
}

static float *receive(Worker *w, int32_t src, int grad, int32_t stage, const ProgramOp *op,
                      int64_t index) {
    return w->rt->tx->receive(w, src, grad, stage, op, index);
}

/* The input of op at stage st: the synthetic batch for a pipe's first forward, data this
 * device kept, or a message. Owned by the caller; NULL on failure. */
static float *input(Worker *w, const ProgramOp *op, int32_t st, int64_t index) {
    Runtime *rt = w->rt;
    const Program *pr = rt->spec.pr;
    int grad = op->kind != OP_F;
    int32_t in = program_input_stage(pr, (OpKind)op->kind, st);
    float **kept = &w->held[((int64_t)st * rt->m + op->micro_batch) * 2 + grad];
    if (in < 0 && !grad) { // a deterministic batch per micro-batch
        float *x = malloc((size_t)rt->floats * sizeof *x);
        uint32_t s = 2654435761u * (uint32_t)(op->micro_batch + 1);
        for (int64_t i = 0; x && i < rt->floats; i++) {
            s = s * 1664525u + 1013904223u;
            x[i] = (float)(s >> 8) / (float)(1u << 24) - 0.5f;
        }
        return x;
    }
    if (in < 0 || pr->device_of[in] == w->d) { // the loss gradient, or handed to itself
        float *x = *kept;
        *kept = NULL;
        return x;
    }
    return receive(w, pr->device_of[in], grad, st, op, index);
}

/* Where op's output goes: kept, sent, or (the first stage's input gradient) dropped. */
static void output(Worker *w, const ProgramOp *op, int32_t st, float *data) {
    Runtime *rt = w->rt;
    const Program *pr = rt->spec.pr;
    int grad = op->kind != OP_F;
    int32_t out = program_output_stage(pr, (OpKind)op->kind, st);
    if (out < 0 && grad) {
        free(data);
        return;
    }
    if (out < 0) out = st; // the last stage's loss: d(|y|^2 / 2) / dy = y, for its own B
    if (pr->device_of[out] == w->d || out == st) {
        w->held[((int64_t)out * rt->m + op->micro_batch) * 2 + (out == st ? 1 : grad)] = data;
        return;
    }
    send(w, pr->device_of[out], grad, out, op, data);
}

/* Runs op's layers: forward in order, backward (B, W) in reverse. */
static int compute(Worker *w, const ProgramOp *op, int32_t st, float **data) {
    Runtime *rt = w->rt;
    int64_t nl = rt->spec.pl->layers[st], slot = (int64_t)st * rt->m + op->micro_batch;
    Layer *layers = &rt->layers[rt->layer_at[st]];
    if (op->kind == OP_F) {
        LayerActs *acts = calloc((size_t)nl, sizeof *acts);
        if (!acts) return -1;
        w->acts[slot] = acts;
        for (int64_t k = 0; k < nl; k++)
            if (layer_acts_init(&acts[k], &rt->spec.shape) != 0) return -1;
    }
    LayerActs *acts = w->acts[slot];
    float *next = NULL;
    if (op->kind != OP_W && !(next = malloc((size_t)rt->floats * sizeof *next))) return -1;
    for (int64_t i = 0; i < nl; i++) {
        int64_t k = op->kind == OP_F ? i : nl - 1 - i;
        layer_pass(&layers[k], (OpKind)op->kind, &acts[k], &w->scratch, *data, next);
        if (next) {
            float *t = *data;
            *data = next, next = t;
        }
    }
    free(next);
    if (op->kind == OP_W || op->kind == OP_BW) {
        for (int64_t k = 0; k < nl; k++) layer_acts_free(&acts[k]);
        free(acts);
        w->acts[slot] = NULL;
    }
    return 0;
}

static void *worker_main(void *arg) {
    Worker *w = arg;
    Runtime *rt = w->rt;
    const Program *pr = rt->spec.pr;
    int64_t n = pr->start[w->d + 1] - pr->start[w->d];
    for (int64_t i = pr->start[w->d]; i < pr->start[w->d + 1] && !failed(rt); i++) {
        if (w->d == rt->spec.kill_device && rt->spec.kill_after > 0 &&
            rt->round * n + i - pr->start[w->d] == rt->spec.kill_after) { // the injected fault
            if (rt->tx != &THREADS) raise(rt->spec.stall ? SIGSTOP : SIGKILL); // a rank: dies
            const struct timespec nap = {0, 1000000};     //   or stops, telling no one
            int64_t until = now_ns(rt) + (int64_t)(rt->spec.watchdog_s * 1e9);
            while (rt->spec.stall && !failed(rt) && now_ns(rt) < until) // a thread: stalls (for
                nanosleep(&nap, NULL); // a watchdog at most, when no peer waits on it)
            w->stopped = 1; // or ends, telling no one; its peers' watchdogs find out
            return NULL;
        }
        const ProgramOp *op = &pr->ops[i];
        int32_t st = program_stage_of(pr, w->d, op->chunk);
        float *data = op->kind == OP_W ? NULL : input(w, op, st, i - pr->start[w->d]);
        if (op->kind != OP_W && !data) {
            if (!failed(rt)) fail(rt, 1, "device %d: out of memory", w->d);
            break;
        }
        int64_t t0 = now_ns(rt);
        if (compute(w, op, st, &data) != 0) {
            free(data);
            fail(rt, 1, "device %d: out of memory for activations", w->d);
            break;
        }
        record(w, t0, now_ns(rt), w->d, -1, op, op->chunk, STREAM_COMPUTE, 0);
        if (data) output(w, op, st, data);
    }
    return NULL;
}

int runtime_create(const RuntimeSpec *spec, Runtime **out) {
    Runtime *rt = calloc(1, sizeof *rt);
    *out = NULL;
    if (!rt) return -1;
    rt->spec = *spec;
    rt->p = spec->pr->devices, rt->S = program_stages(spec->pr), rt->m = spec->pr->micro_batches;
    rt->floats = layer_tokens(&spec->shape) * spec->shape.hidden;
    rt->layer_at = malloc((size_t)rt->S * sizeof *rt->layer_at);
    for (int32_t st = 0; rt->layer_at && st < rt->S; st++)
        rt->layer_at[st] = rt->nlayers, rt->nlayers += spec->pl->layers[st];
    rt->layers = calloc((size_t)(rt->nlayers ? rt->nlayers : 1), sizeof *rt->layers);
    rt->ch = calloc((size_t)rt->p * rt->p * 2, sizeof *rt->ch);
    pthread_mutex_init(&rt->mu, NULL);
    pthread_mutex_init(&rt->mpi_mu, NULL);
    for (int64_t i = 0; rt->ch && i < (int64_t)rt->p * rt->p * 2; i++) {
        pthread_mutex_init(&rt->ch[i].mu, NULL);
        pthread_cond_init(&rt->ch[i].cv, NULL);
    }
    int rc = rt->layer_at && rt->layers && rt->ch ? 0 : -1;
    int32_t per = rt->S / spec->pr->pipes; // stages of one model copy
    for (int32_t st = 0; rc == 0 && st < rt->S; st++)
        for (int64_t k = 0; rc == 0 && k < spec->pl->layers[st]; k++) {
            uint64_t copy = (uint64_t)(st / per);
            uint64_t layer = (uint64_t)(spec->pl->first_layer[st] + k);
            rc = layer_init(&rt->layers[rt->layer_at[st] + k], &spec->shape,
                            spec->seed + (copy << 20) + layer);
        }
    if (rc != 0) {
        runtime_free(rt);
        return -1;
    }
    *out = rt;
    return 0;
}

void runtime_free(Runtime *rt) {
    if (!rt) return;
    for (int64_t i = 0; rt->ch && i < (int64_t)rt->p * rt->p * 2; i++) {
        for (Message *m = rt->ch[i].head, *n; m; m = n) n = m->next, free(m->data), free(m);
        pthread_mutex_destroy(&rt->ch[i].mu);
        pthread_cond_destroy(&rt->ch[i].cv);
    }
    for (int64_t i = 0; rt->layers && i < rt->nlayers; i++) layer_free(&rt->layers[i]);
    pthread_mutex_destroy(&rt->mu);
    pthread_mutex_destroy(&rt->mpi_mu);
    free(rt->layers), free(rt->layer_at), free(rt->ch), free(rt->clock_off), free(rt->reported);
    free(rt);
}

int64_t runtime_clock_drift_ns(const Runtime *rt) { return rt->drift_ns; }

Layer *runtime_layer(Runtime *rt, int32_t stage, int32_t k) {
    if (stage < 0 || stage >= rt->S || k < 0 || k >= rt->spec.pl->layers[stage]) return NULL;
    return &rt->layers[rt->layer_at[stage] + k];
}

/* Releases what a worker still holds (after a failure) and its rows. */
static void worker_free(Worker *w, int64_t slots) {
    for (int64_t i = 0; w->acts && i < slots; i++) {
        if (!w->acts[i]) continue;
        int64_t nl = w->rt->spec.pl->layers[i / w->rt->m];
        for (int64_t k = 0; k < nl; k++) layer_acts_free(&w->acts[i][k]);
        free(w->acts[i]);
    }
    for (int64_t i = 0; w->held && i < 2 * slots; i++) free(w->held[i]);
    free(w->acts), free(w->held);
    layer_scratch_free(&w->scratch);
    timeline_free(&w->tl);
}

/* One run of the Program: a thread per device, joined at the end (the flush). */
static int run_once(Runtime *rt, Timeline *tl) {
    int64_t slots = (int64_t)rt->S * rt->m;
    Worker *w = calloc((size_t)rt->p, sizeof *w);
    pthread_t *th = calloc((size_t)rt->p, sizeof *th);
    int32_t started = 0;
    if (!w || !th) fail(rt, 1, "out of memory for the workers");
    for (int32_t d = 0; w && th && d < rt->p && !failed(rt); d++) {
        w[d] = (Worker){.rt = rt, .d = d, .acts = calloc((size_t)slots, sizeof(LayerActs *)),
                        .held = calloc((size_t)slots * 2, sizeof(float *))};
        if (!w[d].acts || !w[d].held || layer_scratch_init(&w[d].scratch, &rt->spec.shape) != 0)
            fail(rt, 1, "out of memory for the workers");
        else if (pthread_create(&th[d], NULL, worker_main, &w[d]) != 0)
            fail(rt, 1, "cannot start the thread of device %d", d);
        else started++;
    }
    for (int32_t d = 0; d < started; d++) pthread_join(th[d], NULL);
    for (int32_t d = 0; d < started; d++)
        if (w[d].stopped) // its peers may not have waited on it (its last ops feed no one)
            fail(rt, 1, "device %d's thread %s after %lld ops (--%s-after), before its last op",
                 d, rt->spec.stall ? "stalled" : "ended", (long long)rt->spec.kill_after,
                 rt->spec.stall ? "stall" : "kill");
    for (int32_t d = 0; w && d < rt->p; d++) { // a failed run keeps what was measured
        int full = 0;
        for (size_t i = 0; i < w[d].tl.n && !full; i++)
            if (timeline_push(tl, &w[d].tl.ops[i]) != 0)
                full = 1, fail(rt, 1, "out of memory for the timeline");
        worker_free(&w[d], slots);
    }
    free(w), free(th);
    return failed(rt);
}

int runtime_run(Runtime *rt, Timeline *tl, char *why, size_t whylen) {
    rt->tx = &THREADS;
    clock_gettime(CLOCK_MONOTONIC, &rt->epoch);
    int rc = 0;
    int32_t runs = rt->spec.iterations / rt->spec.pr->iterations;
    for (rt->round = 0; rc == 0 && rt->round < runs; rt->round++) rc = run_once(rt, tl);
    if (rc) snprintf(why, whylen, "%s", rt->why);
    return rc;
}

#ifdef PIPESIM_MPI
/* Each rank's clock against rank 0's: the ping-pong with the shortest round trip of eight,
 * offset = remote time - midpoint of the local send and receive (Cristian's method). */
static void measure_offsets(Runtime *rt, int rank, int size, int64_t *off) {
    for (int r = 1; r < size; r++) {
        int64_t best = INT64_MAX, t0, t1, tr = 0;
        for (int k = 0; k < 8; k++) {
            if (rank == 0) {
                t0 = now_ns(rt);
                MPI_Send(&t0, 1, MPI_INT64_T, r, 200, MPI_COMM_WORLD);
                MPI_Recv(&tr, 1, MPI_INT64_T, r, 201, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                t1 = now_ns(rt);
                if (t1 - t0 < best) best = t1 - t0, off[r] = tr - (t0 + t1) / 2;
            } else if (rank == r) {
                MPI_Recv(&t0, 1, MPI_INT64_T, 0, 200, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                tr = now_ns(rt);
                MPI_Send(&tr, 1, MPI_INT64_T, 0, 201, MPI_COMM_WORLD);
            }
        }
    }
    MPI_Bcast(off, size, MPI_INT64_T, 0, MPI_COMM_WORLD);
}

/* Rank 0 collects every rank's rows, moved onto its own clock. */
static int gather_rows(Runtime *rt, int rank, int size, const Timeline *mine, Timeline *tl) {
    if (rank != 0) {
        int64_t n = (int64_t)mine->n;
        MPI_Send(&n, 1, MPI_INT64_T, 0, 100, MPI_COMM_WORLD);
        MPI_Send(mine->ops, (int)(mine->n * sizeof *mine->ops), MPI_BYTE, 0, 101, MPI_COMM_WORLD);
        return 0;
    }
    for (size_t i = 0; i < mine->n; i++)
        if (timeline_push(tl, &mine->ops[i]) != 0) return -1;
    for (int r = 1; r < size; r++) {
        int64_t n;
        MPI_Recv(&n, 1, MPI_INT64_T, r, 100, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        TimelineOp *rows = malloc((size_t)(n ? n : 1) * sizeof *rows);
        if (!rows) return -1;
        MPI_Recv(rows, (int)((size_t)n * sizeof *rows), MPI_BYTE, r, 101, MPI_COMM_WORLD,
                 MPI_STATUS_IGNORE);
        for (int64_t i = 0; i < n; i++) {
            rows[i].start_ns -= rt->clock_off[r], rows[i].end_ns -= rt->clock_off[r];
            if (timeline_push(tl, &rows[i]) != 0) return free(rows), -1;
        }
        free(rows);
    }
    return 0;
}

/* ---- failures on ranks: a rank that finds a fault tells every other rank (a notice), every
 * survivor reports its rows and reason to rank 0, rank 0 stores the run and releases them.
 * Every wait is bounded, since a dead or stalled rank answers nothing. ---- */

enum { TAG_NOTICE = 400, TAG_REPORT = 410, TAG_ROWS = 411, TAG_RELEASE = 420 };

typedef struct {
    int32_t own;   // 1: the rank found the fault itself; 0: it stopped on a notice
    int32_t pad;
    int64_t rows;  // TimelineOp rows sent after this
    char why[512];
} Report;

/* How long the ranks wait for each other once a run failed, ns: every survivor notices a
 * fault within one watchdog of its last message, and a notice takes far less than a second. */
static int64_t settle_ns(const Runtime *rt) { return (int64_t)((2 * rt->spec.watchdog_s + 1) * 1e9); }

/* Polls req until done or deadline (ns on rt's clock); 1 done, 0 not (req still active). */
static int mpi_wait_until(Runtime *rt, MPI_Request *req, int64_t deadline) {
    const struct timespec nap = {0, 200000};
    int done;
    while (!(done = mpi_test(rt, req)) && now_ns(rt) < deadline) nanosleep(&nap, NULL);
    return done == 1;
}

static void mpi_drop(Runtime *rt, MPI_Request *req) {
    if (*req == MPI_REQUEST_NULL) return;
    pthread_mutex_lock(&rt->mpi_mu);
    MPI_Cancel(req);
    MPI_Request_free(req);
    pthread_mutex_unlock(&rt->mpi_mu);
}

/* This rank found a fault: tell every other rank, without waiting for any (one may be dead). */
static void mpi_notify(Runtime *rt) {
    static char out[512]; // lives until the process ends, as the sends may
    snprintf(out, sizeof out, "rank %d on %.63s: %.400s", rt->rank, rt->host, rt->why);
    for (int r = 0; r < rt->size; r++) {
        if (r == rt->rank) continue;
        MPI_Request req;
        MPI_Isend(out, (int)sizeof out, MPI_CHAR, r, TAG_NOTICE, MPI_COMM_WORLD, &req);
        MPI_Request_free(&req); // small enough to go eagerly; completion is not awaited
    }
}

/* A rank other than 0 sends its reason and rows to rank 0, bounded by the settle time. */
static void mpi_report(Runtime *rt, const Timeline *mine) {
    Report rep = {.own = !rt->by_notice, .rows = (int64_t)mine->n};
    snprintf(rep.why, sizeof rep.why, "%s", rt->why);
    MPI_Request req[2];
    MPI_Isend(&rep, (int)sizeof rep, MPI_BYTE, 0, TAG_REPORT, MPI_COMM_WORLD, &req[0]);
    MPI_Isend(mine->ops, (int)(mine->n * sizeof *mine->ops), MPI_BYTE, 0, TAG_ROWS,
              MPI_COMM_WORLD, &req[1]);
    int64_t deadline = now_ns(rt) + settle_ns(rt);
    for (int i = 0; i < 2; i++)
        if (!mpi_wait_until(rt, &req[i], deadline)) mpi_drop(rt, &req[i]);
}

/* Rank 0 takes the survivors' reports: their rows join tl (on rank 0's clock), and why becomes
 * the first rank's own fault plus the ranks that never reported. */
static void mpi_collect(Runtime *rt, const Timeline *mine, Timeline *tl) {
    int size = rt->size;
    Report *rep = calloc((size_t)size, sizeof *rep);
    MPI_Request *req = calloc((size_t)size, sizeof *req);
    rt->reported = calloc((size_t)size, sizeof *rt->reported);
    if (!rep || !req || !rt->reported) {
        free(rep), free(req);
        return;
    }
    int64_t deadline = now_ns(rt) + settle_ns(rt);
    for (int r = 1; r < size; r++)
        MPI_Irecv(&rep[r], (int)sizeof rep[r], MPI_BYTE, r, TAG_REPORT, MPI_COMM_WORLD, &req[r]);
    for (int r = 1; r < size; r++)
        if (!(rt->reported[r] = mpi_wait_until(rt, &req[r], deadline))) mpi_drop(rt, &req[r]);
    for (size_t i = 0; i < mine->n; i++) timeline_push(tl, &mine->ops[i]);
    for (int r = 1; r < size; r++) {
        TimelineOp *rows = rt->reported[r] ? malloc((size_t)(rep[r].rows + 1) * sizeof *rows) : NULL;
        if (!rows) continue;
        MPI_Request q;
        MPI_Irecv(rows, (int)((size_t)rep[r].rows * sizeof *rows), MPI_BYTE, r, TAG_ROWS,
                  MPI_COMM_WORLD, &q);
        if (mpi_wait_until(rt, &q, deadline))
            for (int64_t i = 0; i < rep[r].rows; i++) {
                rows[i].start_ns -= rt->clock_off[r], rows[i].end_ns -= rt->clock_off[r];
                timeline_push(tl, &rows[i]);
            }
        else
            mpi_drop(rt, &q);
        free(rows);
    }
    char why[sizeof rt->why];
    snprintf(why, sizeof why, "%s", rt->why);
    for (int r = 1; rt->by_notice && r < size; r++) // the fault as the rank that found it says
        if (rt->reported[r] && rep[r].own) {
            snprintf(why, sizeof why, "%.*s", (int)sizeof rep[r].why - 1, rep[r].why);
            break;
        }
    for (int r = 1; r < size; r++) {
        size_t n = strlen(why);
        if (!rt->reported[r] && n + 1 < sizeof why)
            snprintf(why + n, sizeof why - n, "; rank %d did not report within %.1f s (it died "
                     "or stalled; its rows are missing)", r, (double)settle_ns(rt) / 1e9);
    }
    memcpy(rt->why, why, sizeof why);
    free(rep), free(req);
}

int runtime_rank_settle(Runtime *rt) {
    static const char token = 1;
    if (rt->rank == 0) {
        for (int r = 1; r < rt->size; r++) {
            if (!rt->reported || !rt->reported[r]) continue;
            MPI_Request req;
            MPI_Isend(&token, 1, MPI_CHAR, r, TAG_RELEASE, MPI_COMM_WORLD, &req);
            if (!mpi_wait_until(rt, &req, now_ns(rt) + 1000000000)) mpi_drop(rt, &req);
        }
        return 0;
    }
    char got;
    MPI_Request req;
    MPI_Irecv(&got, 1, MPI_CHAR, 0, TAG_RELEASE, MPI_COMM_WORLD, &req);
    if (mpi_wait_until(rt, &req, now_ns(rt) + settle_ns(rt) + 10000000000)) return 0;
    mpi_drop(rt, &req);
    return -1;
}

/* The flush between runs of the Program (pending sends complete meanwhile, on the progress
 * thread), bounded by the watchdog. 0, or -1 with the run failed. */
static int mpi_flush(Runtime *rt) {
    MPI_Request req;
    pthread_mutex_lock(&rt->mpi_mu);
    MPI_Ibarrier(MPI_COMM_WORLD, &req);
    pthread_mutex_unlock(&rt->mpi_mu);
    int64_t deadline = now_ns(rt) + (int64_t)(rt->spec.watchdog_s * 1e9);
    const struct timespec nap = {0, 20000};
    int done;
    while (!(done = mpi_test(rt, &req)) && !failed(rt) && now_ns(rt) < deadline)
        nanosleep(&nap, NULL);
    if (done == 1) return 0;
    fail(rt, 1, "device %d waited %g s at the flush after iteration %d for the other ranks "
         "(watchdog): one of them died or stalled", rt->rank, rt->spec.watchdog_s, rt->round);
    return -1; // the barrier is left behind: the job ends
}

/* After a failure: tell the others if the fault is this rank's, then report to rank 0 or
 * collect the reports (rank 0). */
static void mpi_fail_run(Runtime *rt, const Timeline *mine, Timeline *tl) {
    char own[sizeof rt->why];
    if (!rt->by_notice) { // name the rank in its own reason
        snprintf(own, sizeof own, "rank %d on %.63s: %.400s", rt->rank, rt->host, rt->why);
        mpi_notify(rt);
        memcpy(rt->why, own, sizeof own);
    }
    mpi_drop(rt, &rt->notice);
    if (rt->rank != 0) mpi_report(rt, mine);
    else mpi_collect(rt, mine, tl);
}

int runtime_run_rank(Runtime *rt, Timeline *tl, char *why, size_t whylen) {
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    rt->rank = rank, rt->size = size;
    rt->notice = MPI_REQUEST_NULL;
    if (gethostname(rt->host, sizeof rt->host - 1) != 0) snprintf(rt->host, sizeof rt->host, "?");
    int64_t slots = (int64_t)rt->S * rt->m;
    rt->tx = &MPI_RANKS;
    rt->clock_off = calloc((size_t)size, sizeof *rt->clock_off);
    Worker w = {.rt = rt, .d = rank, .acts = calloc((size_t)slots, sizeof(LayerActs *)),
                .held = calloc((size_t)slots * 2, sizeof(float *))};
    if (!rt->clock_off || !w.acts || !w.held || layer_scratch_init(&w.scratch, &rt->spec.shape) != 0)
        fail(rt, 1, "rank %d: out of memory", rank);
    MPI_Barrier(MPI_COMM_WORLD);
    clock_gettime(CLOCK_MONOTONIC, &rt->epoch);
    if (!failed(rt)) measure_offsets(rt, rank, size, rt->clock_off);
    MPI_Irecv(rt->notice_in, (int)sizeof rt->notice_in, MPI_CHAR, MPI_ANY_SOURCE, TAG_NOTICE,
              MPI_COMM_WORLD, &rt->notice);
    int32_t runs = rt->spec.iterations / rt->spec.pr->iterations;
    pthread_t progress;
    rt->progress_stop = 0;
    int helping = !failed(rt) && pthread_create(&progress, NULL, mpi_progress, &w) == 0;
    for (rt->round = 0; !failed(rt) && rt->round < runs; rt->round++) {
        worker_main(&w);
        if (failed(rt) || mpi_flush(rt) != 0) break;
    }
    if (helping) {
        pthread_mutex_lock(&rt->mpi_mu);
        rt->progress_stop = 1;
        pthread_mutex_unlock(&rt->mpi_mu);
        pthread_join(progress, NULL);
    }
    if (failed(rt)) {
        mpi_fail_run(rt, &w.tl, tl);
        worker_free(&w, slots);
        snprintf(why, whylen, "%s", rt->why);
        return 1;
    }
    mpi_drop(rt, &rt->notice);
    mpi_reap(&w, 1);
    int64_t *end_off = calloc((size_t)size, sizeof *end_off);
    if (!end_off) fail(rt, 1, "rank %d: out of memory", rank);
    if (!failed(rt)) { // again at the end: rows move by the mean offset, the change is drift
        measure_offsets(rt, rank, size, end_off);
        for (int r = 0; r < size; r++) {
            int64_t change = end_off[r] - rt->clock_off[r];
            if (llabs(change) > rt->drift_ns) rt->drift_ns = llabs(change);
            rt->clock_off[r] += change / 2;
        }
    }
    free(end_off);
    if (!failed(rt) && gather_rows(rt, rank, size, &w.tl, tl) != 0)
        fail(rt, 1, "rank 0: out of memory for the timeline");
    worker_free(&w, slots);
    int rc = failed(rt);
    if (rc) snprintf(why, whylen, "rank %d on %.63s: %.400s", rank, rt->host, rt->why);
    return rc;
}
#endif

#ifdef PIPESIM_MPI
/* One-way time of a message of `bytes` from rank a to rank b: the shortest of five round
 * trips, halved. Both ranks call it; the result is a's. */
static double one_way_us(int rank, int a, int b, char *buf, int bytes) {
    double best = 1e300;
    for (int k = 0; k < 5; k++) {
        double t0 = MPI_Wtime();
        if (rank == a) {
            MPI_Send(buf, bytes, MPI_BYTE, b, 300, MPI_COMM_WORLD);
            MPI_Recv(buf, bytes, MPI_BYTE, b, 301, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        } else if (rank == b) {
            MPI_Recv(buf, bytes, MPI_BYTE, a, 300, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            MPI_Send(buf, bytes, MPI_BYTE, a, 301, MPI_COMM_WORLD);
        }
        double t = (MPI_Wtime() - t0) * 1e6 / 2;
        if (t < best) best = t;
    }
    return best;
}

int runtime_probe_links(Runtime *rt, double *latency_us, double *bandwidth_gbs) {
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int top = (int)(rt->floats * (int64_t)sizeof(float)); // one activation
    char *buf = calloc((size_t)top, 1);
    int ok = buf != NULL, all = 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
    if (!all) return free(buf), -1;
    // least squares of t = latency + bytes / bandwidth over every neighbour pair and size
    double n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (int a = 0; a + 1 < size; a++)
        for (int bytes = top; bytes >= 64 && bytes * 64 >= top; bytes /= 2) {
            double t = one_way_us(rank, a, a + 1, buf, bytes);
            if (rank == a) n++, sx += bytes, sy += t, sxx += (double)bytes * bytes, sxy += bytes * t;
        }
    free(buf);
    double local[5] = {n, sx, sy, sxx, sxy}, sum[5];
    MPI_Reduce(local, sum, 5, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
    if (rank != 0) return 0;
    double den = sum[0] * sum[3] - sum[1] * sum[1];
    double slope = den > 0 ? (sum[0] * sum[4] - sum[1] * sum[2]) / den : 0; // us per byte
    *latency_us = sum[0] > 0 ? (sum[2] - slope * sum[1]) / sum[0] : 0;
    if (*latency_us < 0) *latency_us = 0;
    *bandwidth_gbs = slope > 0 ? 1e-3 / slope : 1e6; // bytes/us -> GB/s
    return 0;
}
#endif
