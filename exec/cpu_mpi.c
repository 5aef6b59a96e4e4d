/* exec/cpu_mpi.c: exec_cpu_ranks: one worker (device, replica, context rank, tensor rank) per
 * MPI rank, rank = worker index (exec.h), the collectives on communicators split per tensor,
 * data and context group (MPI_Iallreduce and its kin, polled under the watchdog; MPI
 * initialised with MPI_THREAD_SERIALIZED, MPI_ERRORS_RETURN on MPI_COMM_WORLD), MPI
 * point-to-point as the transport, the ranks' clocks aligned to rank 0's (ping-pongs before
 * and after the run), rank 0 gathering every rank's rows. Failures end every rank within
 * about the watchdog time: the rank that finds one tells the others (they stop with "rank R
 * on HOST stopped: ..."), every surviving rank sends rank 0 its rows and its reason, and rank
 * 0 (if alive) waits up to 2 x watchdog + 1 s for them; its message then names the first
 * rank's own fault and the ranks that never reported (dead or stalled). Also the links'
 * latency and bandwidth fit. */
#ifdef PIPESIM_MPI
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exec/cpu.h"

typedef struct {
    CpuState cpu;           // first: the CPU backends' shared state
    pthread_mutex_t mpi_mu; // one thread in MPI at a time (worker or progress thread)
    int progress_stop;      // tells the progress thread to end (under mpi_mu)
    int64_t *clock_off;     // [rank] that rank's clock minus rank 0's, ns
    int by_notice;          // the failure is another rank's, told to this one
    int32_t size;           // ranks
    char host[64];          // this rank's host name, for messages
    int *reported;          // rank 0 after a failure: [rank] 1 when it sent its report
    MPI_Request notice;     // a failure notice from any rank (posted while the run runs)
    char notice_in[512];
    MPI_Comm over[CPU_OVER_COUNT]; // CpuOver: this rank's tensor, data and context groups
                            //   (MPI_COMM_NULL for a group of one)
} Ranks;

/* ---- the transport: tag 0 carries activations, tag 1 gradients, so MPI's per-(source, tag)
 * order is NCCL's per-channel order. Sends do not block (two ranks sending to each other would
 * deadlock under rendezvous); their buffers are freed as they complete. ---- */

typedef struct {
    int32_t stage, mb;  // the consumer's stage and micro-batch
    int64_t sent_ns;    // on the sender's clock
} WireHeader;

typedef struct Pending {
    struct Pending *next;
    MPI_Request req;
    char *buf;
} Pending;

static size_t wire_bytes(const Exec *ex) {
    return sizeof(WireHeader) + (size_t)ex->floats * sizeof(float);
}

/* MPI_Test under the MPI lock: 1 done, 0 not yet, -1 MPI reported an error (e.g. the peer's
 * connection closed). */
static int mpi_test(Ranks *rs, MPI_Request *req) {
    int done = 0;
    pthread_mutex_lock(&rs->mpi_mu);
    int rc = MPI_Test(req, &done, MPI_STATUS_IGNORE);
    pthread_mutex_unlock(&rs->mpi_mu);
    return rc != MPI_SUCCESS ? -1 : done;
}

/* A failure notice from another rank, if one came: this rank stops too, saying why. */
static void mpi_check_notice(Exec *ex) {
    Ranks *rs = ex->be;
    if (rs->notice == MPI_REQUEST_NULL || mpi_test(rs, &rs->notice) != 1) return;
    rs->notice_in[sizeof rs->notice_in - 1] = '\0';
    if (exec_fail(ex, 1, "rank %d on %.63s stopped: %.400s", ex->rank, rs->host, rs->notice_in))
        rs->by_notice = 1;
}

/* Frees the sends that completed; with all, waits for every one. Takes the MPI lock. */
static void mpi_reap(ExecDev *dv, int all) {
    Ranks *rs = dv->ex->be;
    CpuDev *cd = dv->be;
    pthread_mutex_lock(&rs->mpi_mu);
    for (Pending **pp = &cd->pending; *pp;) {
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
    pthread_mutex_unlock(&rs->mpi_mu);
}

/* Open MPI moves a large message only while its sender or receiver is inside MPI, so a send
 * would wait for the sender's next op otherwise: this thread keeps testing the pending sends
 * while the worker computes, as NCCL's own stream would carry them. */
static void *mpi_progress(void *arg) {
    ExecDev *dv = arg;
    Ranks *rs = dv->ex->be;
    const struct timespec nap = {0, 50000};
    for (;;) {
        pthread_mutex_lock(&rs->mpi_mu);
        int stop = rs->progress_stop;
        pthread_mutex_unlock(&rs->mpi_mu);
        if (stop) return NULL;
        mpi_reap(dv, 0);
        mpi_check_notice(dv->ex);
        nanosleep(&nap, NULL);
    }
}

static void ranks_send(ExecDev *dv, int32_t dst, int grad, int32_t stage, const ProgramOp *op,
                       ExecSlot data) {
    Exec *ex = dv->ex;
    Ranks *rs = ex->be;
    CpuDev *cd = dv->be;
    if (cpu_send_dropped(dv, data.ptr)) return;
    int64_t t0 = exec_now_ns(ex);
    Pending *p = malloc(sizeof *p);
    char *buf = malloc(wire_bytes(ex));
    if (!p || !buf) {
        free(p), free(buf), free(data.ptr);
        exec_fail(ex, 1, "device %d: out of memory sending", dv->d);
        return;
    }
    WireHeader h = {.stage = stage, .mb = op->micro_batch, .sent_ns = t0};
    memcpy(buf, &h, sizeof h);
    memcpy(buf + sizeof h, data.ptr, (size_t)ex->floats * sizeof(float));
    free(data.ptr);
    int rdv = ex->spec.rendezvous;
    pthread_mutex_lock(&rs->mpi_mu);
    if (rdv) // synchronous: complete once the receive has matched
        MPI_Issend(buf, (int)wire_bytes(ex), MPI_BYTE, exec_worker(ex, dst, dv->g)->w, grad,
                   MPI_COMM_WORLD, &p->req);
    else
        MPI_Isend(buf, (int)wire_bytes(ex), MPI_BYTE, exec_worker(ex, dst, dv->g)->w, grad,
                  MPI_COMM_WORLD, &p->req);
    MPI_Request *req = &p->req;
    p->buf = buf, p->next = cd->pending, cd->pending = p;
    int done = 0;
    if (rdv) MPI_Test(req, &done, MPI_STATUS_IGNORE); // before reap may free it
    pthread_mutex_unlock(&rs->mpi_mu);
    int64_t deadline = exec_deadline_ns(ex);
    const struct timespec nap = {0, 20000};
    while (rdv && !done) { // wait until the send left the pending list
        pthread_mutex_lock(&rs->mpi_mu);
        done = 1;
        for (Pending *q = cd->pending; q; q = q->next)
            if (q == p) {
                MPI_Test(&q->req, &done, MPI_STATUS_IGNORE);
                break;
            }
        pthread_mutex_unlock(&rs->mpi_mu);
        if (!done && exec_failed(ex)) return; // another rank failed: stop waiting
        if (!done && exec_now_ns(ex) > deadline) {
            cpu_not_taken(dv, op, grad, dst);
            return; // the rank aborts; the request dies with it
        }
        if (!done) nanosleep(&nap, NULL);
    }
    cpu_xfer_row(dv, dst, op, stage, STREAM_SEND, t0, exec_now_ns(ex));
    mpi_reap(dv, 0);
}

static int ranks_receive(ExecDev *dv, int32_t src, int grad, int32_t stage, const ProgramOp *op,
                         int64_t index, ExecSlot *out) {
    Exec *ex = dv->ex;
    Ranks *rs = ex->be;
    char *buf = malloc(wire_bytes(ex));
    float *data = malloc((size_t)ex->floats * sizeof *data);
    if (!buf || !data) {
        free(buf), free(data);
        exec_fail(ex, 1, "device %d: out of memory receiving", dv->d);
        return -1;
    }
    MPI_Request req;
    pthread_mutex_lock(&rs->mpi_mu);
    int from = exec_worker(ex, src, dv->g)->w; // src's rank in this group
    MPI_Irecv(buf, (int)wire_bytes(ex), MPI_BYTE, from, grad, MPI_COMM_WORLD, &req);
    pthread_mutex_unlock(&rs->mpi_mu);
    int64_t deadline = exec_deadline_ns(ex);
    const struct timespec nap = {0, 20000}; // 20 us between polls
    int got;
    while (!(got = mpi_test(rs, &req))) {
        if (exec_now_ns(ex) > deadline || exec_failed(ex)) { // too late, or another rank failed
            pthread_mutex_lock(&rs->mpi_mu);
            MPI_Cancel(&req);
            MPI_Request_free(&req);
            pthread_mutex_unlock(&rs->mpi_mu);
            free(buf), free(data);
            if (!exec_failed(ex)) cpu_timed_out(dv, index, op, grad, src);
            return -1;
        }
        nanosleep(&nap, NULL);
    }
    if (got < 0) {
        free(buf), free(data);
        exec_fail(ex, 1, "device %d op %lld: MPI failed receiving from device %d (it may have "
                  "died)", dv->d, (long long)index, src);
        return -1;
    }
    WireHeader h;
    memcpy(&h, buf, sizeof h);
    memcpy(data, buf + sizeof h, (size_t)ex->floats * sizeof(float));
    free(buf);
    if (h.stage != stage || h.mb != op->micro_batch) {
        free(data);
        cpu_mismatch(dv, index, op, grad, src, h.stage, h.mb, stage);
        return -1;
    }
    int64_t sent = h.sent_ns - rs->clock_off[from] + rs->clock_off[ex->rank]; // on this clock
    cpu_xfer_row(dv, src, op, stage, STREAM_RECV, sent, exec_now_ns(ex));
    *out = (ExecSlot){data, NULL, 1};
    return 0;
}

/* ---- the all-reduces ---- */

/* Waits for a posted collective (rc: what posting it returned) under the watchdog. 0, or -1
 * with the run failed. */
static int ranks_wait(ExecDev *dv, CpuOver over, int rc, MPI_Request *req, const char *what) {
    Exec *ex = dv->ex;
    Ranks *rs = ex->be;
    int64_t deadline = exec_deadline_ns(ex);
    const struct timespec nap = {0, 20000};
    int done = rc == MPI_SUCCESS ? 0 : -1;
    while (done == 0 && !exec_failed(ex) && exec_now_ns(ex) < deadline) {
        done = mpi_test(rs, req);
        if (!done) nanosleep(&nap, NULL);
    }
    if (done == 1) return 0;
    if (done < 0)
        exec_fail(ex, 1, "device %d (replica %d, context rank %d, tensor rank %d): MPI failed "
                  "in the %s (a peer may have died)", dv->d, dv->replica, dv->crank, dv->trank,
                  what);
    else if (!exec_failed(ex))
        cpu_group_timed_out(dv, over);
    return -1; // a pending collective is left behind: the job ends
}

static int ranks_allreduce(ExecDev *dv, CpuOver over, float *buf, int64_t n) {
    Ranks *rs = dv->ex->be;
    if (rs->over[over] == MPI_COMM_NULL) return 0; // a group of one
    MPI_Request req;
    pthread_mutex_lock(&rs->mpi_mu);
    int rc = MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, rs->over[over], &req);
    pthread_mutex_unlock(&rs->mpi_mu);
    return ranks_wait(dv, over, rc, &req, "all-reduce");
}

static int ranks_allgather(ExecDev *dv, CpuOver over, const float *in, float *out, int64_t n) {
    Ranks *rs = dv->ex->be;
    if (rs->over[over] == MPI_COMM_NULL) return memcpy(out, in, (size_t)n * sizeof *out), 0;
    MPI_Request req;
    pthread_mutex_lock(&rs->mpi_mu);
    int rc = MPI_Iallgather(in, (int)n, MPI_FLOAT, out, (int)n, MPI_FLOAT, rs->over[over], &req);
    pthread_mutex_unlock(&rs->mpi_mu);
    return ranks_wait(dv, over, rc, &req, "all-gather");
}

static int ranks_reduce_scatter(ExecDev *dv, CpuOver over, const float *in, float *out,
                                int64_t n) {
    Ranks *rs = dv->ex->be;
    if (rs->over[over] == MPI_COMM_NULL) return memcpy(out, in, (size_t)n * sizeof *out), 0;
    MPI_Request req;
    pthread_mutex_lock(&rs->mpi_mu);
    int rc = MPI_Ireduce_scatter_block(in, out, (int)n, MPI_FLOAT, MPI_SUM, rs->over[over], &req);
    pthread_mutex_unlock(&rs->mpi_mu);
    return ranks_wait(dv, over, rc, &req, "reduce-scatter");
}

/* The shards of n elements over the DP members of the data group (the data communicator's
 * ranks, key = dp): counts and displacements, in ints for MPI. */
static int shard_counts(const Exec *ex, int64_t n, int **counts, int **displs) {
    *counts = malloc((size_t)ex->DP * sizeof **counts);
    *displs = malloc((size_t)ex->DP * sizeof **displs);
    if (!*counts || !*displs) return free(*counts), free(*displs), -1;
    for (int32_t r = 0; r < ex->DP; r++) {
        int64_t lo, hi;
        cpu_shard(n, r, ex->DP, &lo, &hi);
        (*counts)[r] = (int)(hi - lo), (*displs)[r] = (int)lo;
    }
    return 0;
}

/* zero >= 1: MPI_Ireduce_scatter into a scratch shard, copied back to this member's shard
 * of buf (MPI_IN_PLACE would put it at buf's start). */
static int ranks_zero_reduce_scatter(ExecDev *dv, float *buf, int64_t n) {
    Exec *ex = dv->ex;
    Ranks *rs = ex->be;
    if (rs->over[CPU_OVER_DATA] == MPI_COMM_NULL) return 0;
    int *counts, *displs;
    if (shard_counts(ex, n, &counts, &displs) != 0) return exec_fail(ex, 1, "out of host memory"), -1;
    int mine = counts[dv->dp], at = displs[dv->dp];
    float *shard = malloc((size_t)(mine ? mine : 1) * sizeof *shard);
    int rc = -1;
    if (shard) {
        MPI_Request req = MPI_REQUEST_NULL;
        pthread_mutex_lock(&rs->mpi_mu);
        int e = MPI_Ireduce_scatter(buf, shard, counts, MPI_FLOAT, MPI_SUM,
                                    rs->over[CPU_OVER_DATA], &req);
        pthread_mutex_unlock(&rs->mpi_mu);
        rc = ranks_wait(dv, CPU_OVER_DATA, e, &req, "reduce-scatter");
        if (rc == 0) memcpy(buf + at, shard, (size_t)mine * sizeof *buf);
    } else {
        exec_fail(ex, 1, "out of host memory");
    }
    if (rc == 0) free(shard); // else MPI may still write it: the job ends, the shard leaks
    free(counts), free(displs);
    return rc;
}

/* The all-gather of every member's shard, in place (MPI_Iallgatherv). */
static int ranks_zero_all_gather(ExecDev *dv, float *buf, int64_t n) {
    Exec *ex = dv->ex;
    Ranks *rs = ex->be;
    if (rs->over[CPU_OVER_DATA] == MPI_COMM_NULL) return 0;
    int *counts, *displs;
    if (shard_counts(ex, n, &counts, &displs) != 0) return exec_fail(ex, 1, "out of host memory"), -1;
    MPI_Request req = MPI_REQUEST_NULL;
    pthread_mutex_lock(&rs->mpi_mu);
    int e = MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, counts, displs, MPI_FLOAT,
                            rs->over[CPU_OVER_DATA], &req);
    pthread_mutex_unlock(&rs->mpi_mu);
    int rc = ranks_wait(dv, CPU_OVER_DATA, e, &req, "all-gather");
    free(counts), free(displs);
    return rc;
}

/* This rank's tensor, data and context communicators (every rank calls it: MPI_Comm_split is
 * collective), each ranked by the member's place in its group. 0, or -1. */
static int split_groups(Exec *ex, Ranks *rs) {
    const ExecDev *me = &ex->devs[ex->rank];
    int color[CPU_OVER_COUNT] = {me->d * ex->DP + me->dp, me->d * ex->T + me->trank,
                                 (me->d * ex->D + me->replica) * ex->T + me->trank};
    int key[CPU_OVER_COUNT] = {me->trank, me->dp, me->crank};
    int size[CPU_OVER_COUNT] = {ex->T, ex->DP, ex->C};
    for (int o = 0; o < CPU_OVER_COUNT; o++) {
        rs->over[o] = MPI_COMM_NULL;
        if (MPI_Comm_split(MPI_COMM_WORLD, size[o] > 1 ? color[o] : MPI_UNDEFINED, key[o],
                           &rs->over[o]) != MPI_SUCCESS)
            return -1;
    }
    return 0;
}

/* ---- clocks ---- */

/* Each rank's clock against rank 0's: the ping-pong with the shortest round trip of eight,
 * offset = remote time - midpoint of the local send and receive (Cristian's method). */
static void measure_offsets(Exec *ex, int64_t *off) {
    int rank = ex->rank, size = ((Ranks *)ex->be)->size;
    for (int r = 1; r < size; r++) {
        int64_t best = INT64_MAX, t0, t1, tr = 0;
        for (int k = 0; k < 8; k++) {
            if (rank == 0) {
                t0 = exec_now_ns(ex);
                MPI_Send(&t0, 1, MPI_INT64_T, r, 200, MPI_COMM_WORLD);
                MPI_Recv(&tr, 1, MPI_INT64_T, r, 201, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                t1 = exec_now_ns(ex);
                if (t1 - t0 < best) best = t1 - t0, off[r] = tr - (t0 + t1) / 2;
            } else if (rank == r) {
                MPI_Recv(&t0, 1, MPI_INT64_T, 0, 200, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                tr = exec_now_ns(ex);
                MPI_Send(&tr, 1, MPI_INT64_T, 0, 201, MPI_COMM_WORLD);
            }
        }
    }
    MPI_Bcast(off, size, MPI_INT64_T, 0, MPI_COMM_WORLD);
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
static int64_t settle_ns(const Exec *ex) { return (int64_t)((2 * ex->spec.watchdog_s + 1) * 1e9); }

/* Polls req until done or deadline (ns on the run's clock); 1 done, 0 not (req still active). */
static int mpi_wait_until(Exec *ex, MPI_Request *req, int64_t deadline) {
    const struct timespec nap = {0, 200000};
    int done;
    while (!(done = mpi_test(ex->be, req)) && exec_now_ns(ex) < deadline) nanosleep(&nap, NULL);
    return done == 1;
}

static void mpi_drop(Ranks *rs, MPI_Request *req) {
    if (*req == MPI_REQUEST_NULL) return;
    pthread_mutex_lock(&rs->mpi_mu);
    MPI_Cancel(req);
    MPI_Request_free(req);
    pthread_mutex_unlock(&rs->mpi_mu);
}

/* This rank found a fault: tell every other rank, without waiting for any (one may be dead). */
static void mpi_notify(Exec *ex) {
    static char out[512]; // lives until the process ends, as the sends may
    Ranks *rs = ex->be;
    snprintf(out, sizeof out, "rank %d on %.63s: %.400s", ex->rank, rs->host, ex->why);
    for (int r = 0; r < rs->size; r++) {
        if (r == ex->rank) continue;
        MPI_Request req;
        MPI_Isend(out, (int)sizeof out, MPI_CHAR, r, TAG_NOTICE, MPI_COMM_WORLD, &req);
        MPI_Request_free(&req); // small enough to go eagerly; completion is not awaited
    }
}

/* A rank other than 0 sends its reason and rows to rank 0, bounded by the settle time. */
static void mpi_report(Exec *ex, const Timeline *mine) {
    Ranks *rs = ex->be;
    Report rep = {.own = !rs->by_notice, .rows = (int64_t)mine->n};
    snprintf(rep.why, sizeof rep.why, "%s", ex->why);
    MPI_Request req[2];
    MPI_Isend(&rep, (int)sizeof rep, MPI_BYTE, 0, TAG_REPORT, MPI_COMM_WORLD, &req[0]);
    MPI_Isend(mine->ops, (int)(mine->n * sizeof *mine->ops), MPI_BYTE, 0, TAG_ROWS,
              MPI_COMM_WORLD, &req[1]);
    int64_t deadline = exec_now_ns(ex) + settle_ns(ex);
    for (int i = 0; i < 2; i++)
        if (!mpi_wait_until(ex, &req[i], deadline)) mpi_drop(rs, &req[i]);
}

/* Rank 0 takes the survivors' reports: their rows join tl (on rank 0's clock), and why becomes
 * the first rank's own fault plus the ranks that never reported. */
static void mpi_collect(Exec *ex, const Timeline *mine, Timeline *tl) {
    Ranks *rs = ex->be;
    int size = rs->size;
    Report *rep = calloc((size_t)size, sizeof *rep);
    MPI_Request *req = calloc((size_t)size, sizeof *req);
    rs->reported = calloc((size_t)size, sizeof *rs->reported);
    if (!rep || !req || !rs->reported) {
        free(rep), free(req);
        return;
    }
    int64_t deadline = exec_now_ns(ex) + settle_ns(ex);
    for (int r = 1; r < size; r++)
        MPI_Irecv(&rep[r], (int)sizeof rep[r], MPI_BYTE, r, TAG_REPORT, MPI_COMM_WORLD, &req[r]);
    for (int r = 1; r < size; r++)
        if (!(rs->reported[r] = mpi_wait_until(ex, &req[r], deadline))) mpi_drop(rs, &req[r]);
    for (size_t i = 0; i < mine->n; i++) timeline_push(tl, &mine->ops[i]);
    for (int r = 1; r < size; r++) {
        TimelineOp *rows = rs->reported[r] ? malloc((size_t)(rep[r].rows + 1) * sizeof *rows) : NULL;
        if (!rows) continue;
        MPI_Request q;
        MPI_Irecv(rows, (int)((size_t)rep[r].rows * sizeof *rows), MPI_BYTE, r, TAG_ROWS,
                  MPI_COMM_WORLD, &q);
        if (mpi_wait_until(ex, &q, deadline))
            for (int64_t i = 0; i < rep[r].rows; i++) {
                rows[i].start_ns -= rs->clock_off[r], rows[i].end_ns -= rs->clock_off[r];
                timeline_push(tl, &rows[i]);
            }
        else
            mpi_drop(rs, &q);
        free(rows);
    }
    char why[sizeof ex->why];
    snprintf(why, sizeof why, "%s", ex->why);
    for (int r = 1; rs->by_notice && r < size; r++) // the fault as the rank that found it says
        if (rs->reported[r] && rep[r].own) {
            snprintf(why, sizeof why, "%.*s", (int)sizeof rep[r].why - 1, rep[r].why);
            break;
        }
    for (int r = 1; r < size; r++) {
        size_t n = strlen(why);
        if (!rs->reported[r] && n + 1 < sizeof why)
            snprintf(why + n, sizeof why - n, "; rank %d did not report within %.1f s (it died "
                     "or stalled; its rows are missing)", r, (double)settle_ns(ex) / 1e9);
    }
    memcpy(ex->why, why, sizeof why);
    free(rep), free(req);
}

static int ranks_settle(Exec *ex) {
    static const char token = 1;
    Ranks *rs = ex->be;
    if (ex->rank == 0) {
        for (int r = 1; r < rs->size; r++) {
            if (!rs->reported || !rs->reported[r]) continue;
            MPI_Request req;
            MPI_Isend(&token, 1, MPI_CHAR, r, TAG_RELEASE, MPI_COMM_WORLD, &req);
            if (!mpi_wait_until(ex, &req, exec_now_ns(ex) + 1000000000)) mpi_drop(rs, &req);
        }
        return 0;
    }
    char got;
    MPI_Request req;
    MPI_Irecv(&got, 1, MPI_CHAR, 0, TAG_RELEASE, MPI_COMM_WORLD, &req);
    if (mpi_wait_until(ex, &req, exec_now_ns(ex) + settle_ns(ex) + 10000000000)) return 0;
    mpi_drop(rs, &req);
    return -1;
}

/* The flush between runs of the Program (pending sends complete meanwhile, on the progress
 * thread), bounded by the watchdog. 0, or -1 with the run failed. */
static int mpi_flush(Exec *ex) {
    Ranks *rs = ex->be;
    MPI_Request req;
    pthread_mutex_lock(&rs->mpi_mu);
    MPI_Ibarrier(MPI_COMM_WORLD, &req);
    pthread_mutex_unlock(&rs->mpi_mu);
    int64_t deadline = exec_deadline_ns(ex);
    const struct timespec nap = {0, 20000};
    int done;
    while (!(done = mpi_test(rs, &req)) && !exec_failed(ex) && exec_now_ns(ex) < deadline)
        nanosleep(&nap, NULL);
    if (done == 1) return 0;
    exec_fail(ex, 1, "device %d waited %g s at the flush after iteration %d for the other ranks "
              "(watchdog): one of them died or stalled", ex->rank, ex->spec.watchdog_s, ex->round);
    return -1; // the barrier is left behind: the job ends
}

/* After a failure: tell the others if the fault is this rank's, then report to rank 0 or
 * collect the reports (rank 0). */
static void mpi_fail_run(Exec *ex, const Timeline *mine, Timeline *tl) {
    Ranks *rs = ex->be;
    char own[sizeof ex->why];
    if (!rs->by_notice) { // name the rank in its own reason
        snprintf(own, sizeof own, "rank %d on %.63s: %.400s", ex->rank, rs->host, ex->why);
        mpi_notify(ex);
        memcpy(ex->why, own, sizeof own);
    }
    mpi_drop(rs, &rs->notice);
    if (ex->rank != 0) mpi_report(ex, mine);
    else mpi_collect(ex, mine, tl);
}

/* ---- the backend ---- */

static int ranks_mine(const Exec *ex, int32_t w) { return w == ex->rank; }

static int ranks_create(Exec *ex, char *why, size_t whylen) {
    Ranks *rs = ex->be = calloc(1, sizeof *rs);
    if (!rs) return snprintf(why, whylen, "out of host memory"), 1;
    int size;
    MPI_Comm_rank(MPI_COMM_WORLD, &ex->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    rs->size = size;
    pthread_mutex_init(&rs->mpi_mu, NULL);
    rs->notice = MPI_REQUEST_NULL;
    if (gethostname(rs->host, sizeof rs->host - 1) != 0) snprintf(rs->host, sizeof rs->host, "?");
    for (int o = 0; o < CPU_OVER_COUNT; o++) rs->over[o] = MPI_COMM_NULL;
    if (size != ex->W)
        return snprintf(why, whylen, "mpirun started %d ranks but the run has stages x data x "
                        "context x tensor = %d x %d x %d x %d = %d workers; use mpirun -np %d",
                        size, ex->p, ex->D, ex->C, ex->T, ex->W, ex->W), 2;
    rs->cpu.allreduce = ranks_allreduce;
    rs->cpu.allgather = ranks_allgather;
    rs->cpu.reduce_scatter = ranks_reduce_scatter;
    rs->cpu.zero_reduce_scatter = ranks_zero_reduce_scatter;
    rs->cpu.zero_all_gather = ranks_zero_all_gather;
    if (split_groups(ex, rs) != 0)
        return snprintf(why, whylen, "rank %d: MPI_Comm_split failed", ex->rank), 1;
    rs->clock_off = calloc((size_t)size, sizeof *rs->clock_off);
    if (!rs->clock_off) return snprintf(why, whylen, "out of host memory"), 1;
    return cpu_create(ex, ranks_mine, why, whylen);
}

static void ranks_destroy(Exec *ex) {
    Ranks *rs = ex->be;
    if (!rs) return;
    cpu_destroy(ex);
    for (int o = 0; o < CPU_OVER_COUNT; o++)
        if (rs->over[o] != MPI_COMM_NULL && !ex->failed) MPI_Comm_free(&rs->over[o]);
    pthread_mutex_destroy(&rs->mpi_mu);
    free(rs->clock_off), free(rs->reported);
    free(rs);
    ex->be = NULL;
}

/* Every rank's kernel split (exec_split) to rank 0, into its copy of that worker (a message
 * of SPLIT_DOUBLES from each rank). */
enum { SPLIT_DOUBLES = 3 * LC_COUNT + 3 + 1, TAG_SPLIT = 102 };
static void split_gather(Exec *ex, int size) {
    double x[SPLIT_DOUBLES];
    if (ex->rank != 0) {
        const ExecDev *me = &ex->devs[ex->rank];
        memcpy(x, me->split.ns, sizeof me->split.ns);
        for (int p = 0; p < 3; p++) x[3 * LC_COUNT + p] = me->outside_ns[p];
        x[SPLIT_DOUBLES - 1] = me->split_rounds;
        MPI_Send(x, SPLIT_DOUBLES, MPI_DOUBLE, 0, TAG_SPLIT, MPI_COMM_WORLD);
        return;
    }
    for (int r = 1; r < size; r++) {
        ExecDev *dv = &ex->devs[r];
        MPI_Recv(x, SPLIT_DOUBLES, MPI_DOUBLE, r, TAG_SPLIT, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        memcpy(dv->split.ns, x, sizeof dv->split.ns);
        for (int p = 0; p < 3; p++) dv->outside_ns[p] = x[3 * LC_COUNT + p];
        dv->split_rounds = (int32_t)x[SPLIT_DOUBLES - 1];
    }
}

static int ranks_run(Exec *ex, Timeline *tl) {
    Ranks *rs = ex->be;
    ExecDev *dv = &ex->devs[ex->rank];
    MPI_Barrier(MPI_COMM_WORLD);
    clock_gettime(CLOCK_MONOTONIC, &ex->epoch);
    if (!exec_failed(ex)) measure_offsets(ex, rs->clock_off);
    MPI_Irecv(rs->notice_in, (int)sizeof rs->notice_in, MPI_CHAR, MPI_ANY_SOURCE, TAG_NOTICE,
              MPI_COMM_WORLD, &rs->notice);
    int32_t runs = ex->spec.iterations / ex->spec.pr->iterations;
    pthread_t progress;
    rs->progress_stop = 0;
    int helping = !exec_failed(ex) && pthread_create(&progress, NULL, mpi_progress, dv) == 0;
    for (ex->round = 0; !exec_failed(ex) && ex->round < runs; ex->round++) {
        cpu_device_ops(dv);
        if (exec_failed(ex) || mpi_flush(ex) != 0) break;
    }
    if (helping) {
        pthread_mutex_lock(&rs->mpi_mu);
        rs->progress_stop = 1;
        pthread_mutex_unlock(&rs->mpi_mu);
        pthread_join(progress, NULL);
    }
    if (exec_failed(ex)) {
        mpi_fail_run(ex, &dv->tl, tl);
        return ex->failed;
    }
    mpi_drop(rs, &rs->notice);
    mpi_reap(dv, 1);
    int64_t *end_off = calloc((size_t)rs->size, sizeof *end_off);
    if (!end_off) exec_fail(ex, 1, "rank %d: out of memory", ex->rank);
    if (!exec_failed(ex)) { // again at the end: rows move by the mean offset, the change is drift
        measure_offsets(ex, end_off);
        for (int r = 0; r < rs->size; r++) {
            int64_t change = end_off[r] - rs->clock_off[r];
            if (llabs(change) > ex->drift_ns) ex->drift_ns = llabs(change);
            rs->clock_off[r] += change / 2;
        }
    }
    free(end_off);
    if (!exec_failed(ex) && exec_mpi_gather(ex, &dv->tl, tl, rs->clock_off) != 0)
        exec_fail(ex, 1, "rank 0: out of memory for the timeline");
    if (!exec_failed(ex)) split_gather(ex, rs->size);
    if (ex->failed) { // name the rank, as a failure during the run is named
        char own[sizeof ex->why];
        snprintf(own, sizeof own, "rank %d on %.63s: %.400s", ex->rank, rs->host, ex->why);
        memcpy(ex->why, own, sizeof own);
    }
    return ex->failed;
}

const ExecBackend exec_cpu_ranks = {
    .name = "cpu (MPI ranks)", .lane = "rank", .ranks = 1, .kernels = &cpu_kernels,
    .create = ranks_create, .destroy = ranks_destroy, .run = ranks_run, .settle = ranks_settle,
    .grads = cpu_grads, .layer_of = cpu_layer_of,
    .batch = cpu_batch, .receive = ranks_receive, .send = ranks_send,
    .span_begin = cpu_span_begin, .span_end = cpu_span_end,
};

/* ---- the links ---- */

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

int exec_probe_links(Exec *ex, double *latency_us, double *bandwidth_gbs) {
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int top = (int)(ex->floats * (int64_t)sizeof(float)); // one activation
    char *buf = calloc((size_t)top, 1);
    int ok = buf != NULL, all = 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
    if (!all) return free(buf), -1;
    // least squares of t = latency + bytes / bandwidth over every neighbour pair and size
    double n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (int a = 0; a + ex->G < size; a++) // pipeline neighbours: worker a and a + G
        for (int bytes = top; bytes >= 64 && bytes * 64 >= top; bytes /= 2) {
            double t = one_way_us(rank, a, a + ex->G, buf, bytes);
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
