/* sim/sched/zb_exact.c: zb-exact, the optimal one-chunk zero-bubble order for small p and m,
 * to measure the heuristic (zb_auto.c) against: the same problem (every stage's F, B and W
 * time, the transfers, each device's activation limit under pipesim's accounting) and the
 * same objective (the longest device span), solved exactly by branch and bound.
 *
 * What is searched: every device's order (an interleaving of its F's, B's and W's, each kind
 * in micro-batch order: the micro-batches are alike, so this loses no optimum and removes
 * their m! symmetries), each op as early as its inputs and its device allow, as the engine
 * plays it. The search runs the devices forward in time: the free device with the earliest
 * clock chooses its next kind (W, B or F, those still to run whose memory fits); when the
 * op's input is not yet placed the device waits for it, and the op is placed as soon as its
 * producer is. Each order is one path, so the search is exhaustive.
 * The heuristic's order is the first incumbent; a branch is cut when a lower bound on its
 * longest span is no shorter than the incumbent's. The bound, for every device s:
 *   - its remaining ops one after another from its clock, and its last B no earlier than the
 *     forward chain to the last stage and back;
 *   - its next B (B_j, j its backwards so far) no earlier than F_j's chain down and B_j's back
 *     up allow; before B_j it can run only the forwards its memory holds after its pending
 *     W's, so every B, the W's of those B's and the other forwards follow B_j's start; before
 *     its first F that wait is the round trip from its F_0, less the forwards it can run.
 * The answer is optimal when the search ends within EXACT_NODE_LIMIT nodes (a count, not a
 * time: the same on every machine, about a second on one core); else the schedule is refused
 * (exit 2) rather than reported optimal. Ties keep the heuristic's order. Sizes: p <= 8,
 * m <= 16. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/sched/schedule.h"
#include "sim/sched/zb_search.h"

#define EXACT_MAX_P 8
#define EXACT_MAX_M 16
#define EXACT_NODE_LIMIT 20000000L

enum { KF, KB, KW, KNONE = -1 };

typedef struct {
    const Zb *z;
    int32_t p, m;
    int32_t *nf, *nb, *nw;   // [s] ops placed
    int64_t *e, *first;      // [s] clock (when the device is free), first op's start
    double *mem;             // [s] activation bytes held
    int *wait;               // [s] kind the device waits to run, KNONE
    int64_t *fend, *bend;    // [s*m + j] F_j, B_j end on s
    int8_t *cur, *best_ord;  // [s*3m + k] the path's kinds; the best order's
    int32_t *ncur;           // [s] kinds on the path
    int64_t *ef;             // [s] scratch for the bound
    int64_t best;            // the incumbent's longest span
    long nodes;
    int improved, bounded;   // bounded 0: no cut but the incumbent's (tests: exhaustive)
} Bb;

static int64_t cost_of(const Zb *z, int32_t s, int k) {
    return k == KF ? z->f[s] : k == KB ? z->b[s] : z->w[s];
}

static int64_t remaining(const Bb *t, int32_t s) {
    const Zb *z = t->z;
    return (int64_t)(t->m - t->nf[s]) * z->f[s] + (int64_t)(t->m - t->nb[s]) * z->b[s] +
           (int64_t)(t->m - t->nw[s]) * z->w[s];
}

/* When the device's next op of kind k may start by its input: >= 0 that time, -1 its input is
 * not placed yet, -2 the kind cannot come next (none left, memory, or its own F first). */
static int64_t ready(const Bb *t, int32_t s, int k) {
    const Zb *z = t->z;
    int32_t m = t->m;
    if (k == KF) {
        if (t->nf[s] >= m || t->mem[s] + z->act[s] > z->limit[s] * (1 + 1e-9)) return -2;
        if (s == 0) return 0;
        return t->nf[s - 1] > t->nf[s] ? t->fend[(s - 1) * m + t->nf[s]] + z->x[s - 1] : -1;
    }
    if (k == KB) {
        if (t->nb[s] >= t->nf[s]) return -2;
        int64_t r = t->fend[s * m + t->nb[s]];
        if (s == t->p - 1) return r;
        if (t->nb[s + 1] <= t->nb[s]) return -1;
        int64_t q = t->bend[(s + 1) * m + t->nb[s]] + z->x[s];
        return q > r ? q : r;
    }
    return t->nw[s] < t->nb[s] ? t->bend[s * m + t->nw[s]] : -2;
}

/* A lower bound on the longest span of any completion of the path (see the top). */
static int64_t bound(Bb *t) {
    const Zb *z = t->z;
    int32_t p = t->p, m = t->m;
    int64_t lb = 0, *lf = t->ef, next = 0;
    for (int32_t s = 0; s < p; s++) { // the last F's earliest end, down the chain
        int32_t rf = m - t->nf[s];
        lf[s] = rf ? t->e[s] + rf * z->f[s] : t->fend[s * m + m - 1];
        if (rf && s > 0 && lf[s - 1] + z->x[s - 1] + z->f[s] > lf[s])
            lf[s] = lf[s - 1] + z->x[s - 1] + z->f[s];
    }
    for (int32_t s = p - 1; s >= 0; s--) { // the last B's earliest end, back up
        int32_t rb = m - t->nb[s], rf = m - t->nf[s];
        int64_t lastb = rb ? t->e[s] + rf * z->f[s] + rb * z->b[s] : t->bend[s * m + m - 1];
        if (rb && lf[s] + z->b[s] > lastb) lastb = lf[s] + z->b[s];
        if (rb && s < p - 1 && next + z->x[s] + z->b[s] > lastb) lastb = next + z->x[s] + z->b[s];
        next = lastb;
        int64_t end = t->e[s] + remaining(t, s);
        if (t->nw[s] < m && lastb + z->w[s] > end) end = lastb + z->w[s];
        int64_t span = t->first[s] == INT64_MAX ? remaining(t, s) : end - t->first[s];
        if (span > lb) lb = span;
    }
    for (int32_t s = 0; s < p; s++) { // the next B's wait
        int32_t j = t->nb[s];
        if (j >= m) continue;
        for (int32_t u = 0; u < p; u++) { // F_j's earliest end on every stage
            if (t->nf[u] > j) {
                lf[u] = t->fend[u * m + j];
                continue;
            }
            lf[u] = t->e[u] + (int64_t)(j - t->nf[u] + 1) * z->f[u];
            if (u > 0 && lf[u - 1] + z->x[u - 1] + z->f[u] > lf[u]) lf[u] = lf[u - 1] + z->x[u - 1] + z->f[u];
        }
        int64_t bend = 0; // B_j's earliest end, from the last stage up to s
        for (int32_t u = p - 1; u >= s; u--) {
            int64_t st;
            if (t->nb[u] > j) {
                st = t->bend[u * m + j] - z->b[u];
            } else {
                st = lf[u] > t->e[u] ? lf[u] : t->e[u];
                if (u < p - 1 && bend + z->x[u] > st) st = bend + z->x[u];
            }
            bend = st + z->b[u];
        }
        int32_t rf = m - t->nf[s], rb = m - t->nb[s];
        double after_w = t->mem[s] - (t->nb[s] - t->nw[s]) * z->wp[s];
        int64_t cf = (int64_t)((z->limit[s] - after_w) / z->act[s] + 1e-9);
        cf = cf < 0 ? 0 : cf > rf ? rf : cf;
        int64_t after = (int64_t)rb * (z->b[s] + z->w[s]) + (rf - cf) * z->f[s], span;
        if (t->first[s] != INT64_MAX) {
            span = bend - z->b[s] + after - t->first[s];
        } else {
            int64_t trip = 0; // F_0's start to B_0's start on s: down and back up
            for (int32_t u = s; u < p; u++) trip += z->f[u] + (u > s ? z->x[u - 1] : 0);
            for (int32_t u = s + 1; u < p; u++) trip += z->b[u] + z->x[u - 1];
            span = (trip > cf * z->f[s] ? trip : cf * z->f[s]) + after;
        }
        if (span > lb) lb = span;
    }
    return lb;
}

static void search(Bb *t);

/* Runs kind k on s at its input's time r (or the device's clock), searches on, and undoes. */
static void place(Bb *t, int32_t s, int k, int64_t r) {
    const Zb *z = t->z;
    int32_t m = t->m;
    int64_t start = r > t->e[s] ? r : t->e[s], old_e = t->e[s], old_first = t->first[s];
    double old_mem = t->mem[s];
    int old_wait = t->wait[s];
    if (t->first[s] == INT64_MAX) t->first[s] = start;
    t->e[s] = start + cost_of(z, s, k);
    t->wait[s] = KNONE;
    if (k == KF) t->fend[s * m + t->nf[s]++] = t->e[s], t->mem[s] += z->act[s];
    else if (k == KB) t->bend[s * m + t->nb[s]++] = t->e[s], t->mem[s] += z->wp[s] - z->act[s];
    else t->nw[s]++, t->mem[s] -= z->wp[s];
    t->cur[(int64_t)s * 3 * m + t->ncur[s]++] = (int8_t)k;
    search(t);
    t->ncur[s]--;
    if (k == KF) t->nf[s]--;
    else if (k == KB) t->nb[s]--;
    else t->nw[s]--;
    t->e[s] = old_e, t->first[s] = old_first, t->mem[s] = old_mem, t->wait[s] = old_wait;
}

static void search(Bb *t) {
    if (++t->nodes > EXACT_NODE_LIMIT) return;
    int32_t p = t->p, m = t->m;
    for (int32_t s = 0; s < p; s++) // a waiting device whose input has come runs it
        if (t->wait[s] != KNONE) {
            int64_t r = ready(t, s, t->wait[s]);
            if (r >= 0) {
                place(t, s, t->wait[s], r);
                return;
            }
        }
    int32_t pick = -1, done = 1;
    for (int32_t s = 0; s < p; s++) {
        if (t->nw[s] < m) done = 0;
        if (t->wait[s] == KNONE && t->ncur[s] < 3 * m && (pick < 0 || t->e[s] < t->e[pick]))
            pick = s;
    }
    if (done) {
        int64_t span = 0;
        for (int32_t s = 0; s < p; s++)
            if (t->e[s] - t->first[s] > span) span = t->e[s] - t->first[s];
        if (span < t->best) {
            t->best = span, t->improved = 1;
            memcpy(t->best_ord, t->cur, (size_t)p * 3 * (size_t)m);
        }
        return;
    }
    if (pick < 0) return; // every device waits on another: no order
    if (t->bounded && bound(t) >= t->best) return;
    static const int KINDS[] = {KW, KB, KF};
    for (size_t i = 0; i < sizeof KINDS / sizeof KINDS[0]; i++) {
        int64_t r = ready(t, pick, KINDS[i]);
        if (r == -2) continue;
        if (r >= 0) {
            place(t, pick, KINDS[i], r);
        } else {
            t->wait[pick] = KINDS[i];
            search(t);
            t->wait[pick] = KNONE;
        }
    }
}

/* The longest span (ns) of pr's orders, each op as early as it can run: what the search
 * measures, for the heuristic's incumbent. -1 when the orders do not complete. */
static int64_t longest_span(const Zb *z, const Program *pr) {
    int32_t p = z->p, m = z->m;
    int64_t *fe = malloc((size_t)p * m * sizeof *fe), *be = malloc((size_t)p * m * sizeof *be);
    int64_t *e = calloc((size_t)p, sizeof *e), *first = malloc((size_t)p * sizeof *first);
    int64_t *at = calloc((size_t)p, sizeof *at), span = -1;
    int32_t *n = calloc((size_t)p * 3, sizeof *n);
    if (!fe || !be || !e || !first || !at || !n) goto done;
    for (int64_t i = 0; i < (int64_t)p * m; i++) fe[i] = be[i] = INT64_MAX;
    for (int32_t s = 0; s < p; s++) first[s] = INT64_MAX;
    int64_t left = pr->nops;
    for (int progress = 1; left > 0 && progress;) {
        progress = 0;
        for (int32_t s = 0; s < p; s++)
            for (; pr->start[s] + at[s] < pr->start[s + 1]; at[s]++) {
                const ProgramOp *op = &pr->ops[pr->start[s] + at[s]];
                int k = op->kind == OP_F ? KF : op->kind == OP_B ? KB : KW;
                int32_t j = op->micro_batch;
                int64_t r = 0;
                if (k == KF && s > 0) r = fe[(s - 1) * m + j] == INT64_MAX ? -1 : fe[(s - 1) * m + j] + z->x[s - 1];
                if (k == KB) {
                    r = fe[s * m + j] == INT64_MAX ? -1 : fe[s * m + j];
                    if (r >= 0 && s < p - 1)
                        r = be[(s + 1) * m + j] == INT64_MAX ? -1
                            : be[(s + 1) * m + j] + z->x[s] > r ? be[(s + 1) * m + j] + z->x[s] : r;
                }
                if (k == KW) r = be[s * m + j] == INT64_MAX ? -1 : be[s * m + j];
                if (r < 0) break;
                int64_t start = r > e[s] ? r : e[s];
                if (first[s] == INT64_MAX) first[s] = start;
                e[s] = start + cost_of(z, s, k);
                if (k == KF) fe[s * m + j] = e[s];
                if (k == KB) be[s * m + j] = e[s];
                left--, progress = 1;
            }
    }
    if (left > 0) goto done;
    span = 0;
    for (int32_t s = 0; s < p; s++) span = e[s] - first[s] > span ? e[s] - first[s] : span;
done:
    free(fe), free(be), free(e), free(first), free(at), free(n);
    return span;
}

static int zb_exact_validate(const SchedParams *sp, SchedIssue *issue) {
    if (sched_one_chunk("zb-exact", sp, issue) != 0) return -1;
    int32_t p = sp->devices, m = sp->micro_batches;
    if (p > EXACT_MAX_P || m > EXACT_MAX_M) {
        issue->key = p > EXACT_MAX_P ? "pipeline.stages" : "batch.micro_batches";
        snprintf(issue->msg, sizeof issue->msg, "zb-exact searches p <= %d stages and m <= %d "
                 "micro-batches (here p = %d, m = %d: the orders grow as 3^(3pm)); use zb-auto, "
                 "the heuristic, for larger pipelines", EXACT_MAX_P, EXACT_MAX_M, p, m);
        return -1;
    }
    return 0;
}

int zb_exact_search(const SchedParams *sp, int bounded, Program *out, long *nodes,
                    SchedIssue *issue) {
    Zb z;
    int rc = zb_problem_init(sp, "zb-exact", sp->activation_limit, &z, issue);
    if (rc != 0) return rc;
    Program heur = {0};
    rc = zb_search_build(sp, "zb-exact", sp->activation_limit, &heur, issue);
    if (rc != 0) return zb_problem_free(&z), rc;
    int32_t p = z.p, m = z.m;
    size_t ps = (size_t)p, pm = ps * (size_t)m;
    Bb t = {.z = &z, .p = p, .m = m, .nf = calloc(ps, sizeof(int32_t)),
            .nb = calloc(ps, sizeof(int32_t)), .nw = calloc(ps, sizeof(int32_t)),
            .e = calloc(ps, sizeof(int64_t)), .first = malloc(ps * sizeof(int64_t)),
            .mem = calloc(ps, sizeof(double)), .wait = malloc(ps * sizeof(int)),
            .fend = malloc(pm * sizeof(int64_t)), .bend = malloc(pm * sizeof(int64_t)),
            .cur = malloc(pm * 3), .best_ord = malloc(pm * 3), .ncur = calloc(ps, sizeof(int32_t)),
            .ef = malloc(ps * sizeof(int64_t)), .bounded = bounded};
    rc = -1;
    if (!t.nf || !t.nb || !t.nw || !t.e || !t.first || !t.mem || !t.wait || !t.fend || !t.bend ||
        !t.cur || !t.best_ord || !t.ncur || !t.ef)
        goto done;
    for (int32_t s = 0; s < p; s++) t.first[s] = INT64_MAX, t.wait[s] = KNONE;
    t.best = longest_span(&z, &heur);
    if (t.best < 0) goto done; // the heuristic's order always completes
    search(&t);
    if (nodes) *nodes = t.nodes;
    if (t.nodes > EXACT_NODE_LIMIT) {
        issue->key = "batch.micro_batches";
        snprintf(issue->msg, sizeof issue->msg, "zb-exact could not prove an order optimal "
                 "within %ld branch-and-bound nodes at p = %d, m = %d (the best it found spans "
                 "%lld ns, the heuristic's %lld); use fewer micro-batches or stages, or zb-auto",
                 EXACT_NODE_LIMIT, p, m, (long long)t.best, (long long)longest_span(&z, &heur));
        rc = 2;
        goto done;
    }
    if (!t.improved) {
        *out = heur, heur = (Program){0};
        rc = 0;
        goto done;
    }
    if (program_init(out, p, 1, m, PLACE_LOOPED, (int64_t)pm * 3) != 0) goto done;
    static const OpKind KIND[] = {OP_F, OP_B, OP_W};
    for (int32_t s = 0; s < p; s++) {
        int32_t n[3] = {0, 0, 0};
        for (int64_t k = 0; k < 3 * (int64_t)m; k++) {
            int kind = t.best_ord[(int64_t)s * 3 * m + k];
            program_push(out, s, KIND[kind], n[kind]++, 0);
        }
    }
    program_end(out);
    rc = 0;
done:
    if (heur.ops) program_free(&heur);
    free(t.nf), free(t.nb), free(t.nw), free(t.e), free(t.first), free(t.mem), free(t.wait);
    free(t.fend), free(t.bend), free(t.cur), free(t.best_ord), free(t.ncur), free(t.ef);
    zb_problem_free(&z);
    return rc;
}

static int zb_exact_build(const SchedParams *sp, Program *out, SchedIssue *issue) {
    return zb_exact_search(sp, 1, out, NULL, issue);
}

const Schedule SCHED_ZB_EXACT = {
    .name = "zb-exact",
    .stand_in = "zb-h1",
    .summary = "zero bubble, the optimal order for small p and m (branch and bound), zb-auto's limit",
    .searched = 1,
    .validate = zb_exact_validate,
    .build = zb_exact_build,
};
