/* sim/sched/zb_auto.c: the searched zero-bubble schedules (Qi et al. 2023, "Zero Bubble
 * Pipeline Parallelism", section 3): given every stage's F, B and W time, the transfer time
 * between stages and an activation memory limit, find the order of one chunk per device that
 * makes the longest device span (a device's first op start to its last op end, the cost of the
 * paper's bubble rate) shortest; ties go to the shorter makespan.
 *   zb-1p   limit p activations (p M_B, 1F1B's peak)     zb-2p  limit 2p (2p M_B)
 *   zb-auto limit [pipeline] activation_limit activations, or what memory_gib leaves after
 *           the static part when it is not given
 * Memory follows pipesim's accounting (memory.h): an F adds the stage's activation M_B, its B
 * keeps M_W of it (w_pending) until the W, the W frees the rest.
 *
 * The order is built round by round, as the paper's heuristic does, so every op's time is known
 * when it is placed (its inputs were placed before): round i places, on stages 0..p-1, the
 * forwards that bring stage s to min(m, i + K_s) forwards, then B(i) on stages p-1..0. K_s, the
 * forwards a stage runs ahead of its backwards, sets the warm-up (1F1B and ZB-H1: K_s = p-s;
 * ZB-H2: 2(p-s)-1); K is non-increasing in s, so a forward's input is always placed first.
 * Before each op a stage runs its pending W's (oldest first) that fit in the wait for the op's
 * input without delaying it, more W's where the memory limit asks (before an F that would not
 * fit), and, under an eager setting, one more W when the wait is shorter than a W (before an F
 * only, before an F and any op of the first stage, whose backwards nobody waits for, or before
 * any op): the paper's binary choices. The W's left run at the end.
 * The search: K from four starts (1F1B's, ZB-H2's, and the forwards that fill the wait for the
 * first gradient with or without one more), each under the four eager settings; then descent
 * from the best, moving one K_s, or all from a stage on, or all up to it, by +-1, 2, 4 while
 * that improves, within a fixed budget of op placements. ZB-H1 and ZB-H2, played at the same
 * costs, are candidates too when they fit the limit, so a searched schedule is never longer
 * than a handcrafted one that fits (zb-1p: ZB-H1; zb-2p: both). Cost: O(p m) a play, 16 plays
 * and the budget's.
 * Not here: several chunks per device (zb-v is handcrafted). zb-exact (zb_exact.c) finds the
 * optimum for small p and m, to measure this search against. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/sched/schedule.h"
#include "sim/sched/zb_search.h"

/* One play's state: per (stage, micro-batch) F and B end times, per stage clock and counts. */
typedef struct {
    int64_t *fend, *bend;  // [s*m + j]
    int64_t *e, *first;    // [s] when the stage is free; its first op's start
    double *mem;           // [s] activation bytes held
    int32_t *nf, *nb, *nw; // [s] F's, B's and W's placed
    ProgramOp *ops;        // [s*3m + k], NULL: times only
    int64_t span, makespan;
} Play;

enum { EAGER_NEVER, EAGER_BEFORE_F, EAGER_FIRST_STAGE, EAGER_ALWAYS, EAGER_COUNT };

static void put(const Zb *z, Play *pl, int32_t s, OpKind kind, int64_t ready) {
    int32_t m = z->m, j = kind == OP_F ? pl->nf[s]++ : kind == OP_B ? pl->nb[s]++ : pl->nw[s]++;
    int64_t cost = kind == OP_F ? z->f[s] : kind == OP_B ? z->b[s] : z->w[s];
    int64_t start = ready > pl->e[s] ? ready : pl->e[s];
    if (pl->first[s] == INT64_MAX) pl->first[s] = start;
    pl->e[s] = start + cost;
    if (kind == OP_F) pl->fend[(int64_t)s * m + j] = pl->e[s], pl->mem[s] += z->act[s];
    if (kind == OP_B) pl->bend[(int64_t)s * m + j] = pl->e[s], pl->mem[s] += z->wp[s] - z->act[s];
    if (kind == OP_W) pl->mem[s] -= z->wp[s];
    if (pl->ops) {
        int64_t k = pl->nf[s] + pl->nb[s] + pl->nw[s] - 1;
        pl->ops[(int64_t)s * 3 * m + k] = (ProgramOp){.micro_batch = j, .kind = (uint8_t)kind};
    }
}

static int64_t w_ready(const Zb *z, const Play *pl, int32_t s) {
    return pl->bend[(int64_t)s * z->m + pl->nw[s]];
}

/* Places the op of this kind on stage s, its input ready at `ready`, after the W's that fill
 * the wait (and those memory or the eager setting asks for). Returns 0, or -1 when an F does
 * not fit the limit even with every W done. */
static int place(const Zb *z, Play *pl, int32_t s, OpKind kind, int64_t ready, int eager) {
    while (pl->nw[s] < pl->nb[s] && pl->e[s] + z->w[s] <= ready) put(z, pl, s, OP_W, w_ready(z, pl, s));
    if (pl->nw[s] < pl->nb[s] && pl->e[s] < ready &&
        (eager == EAGER_ALWAYS || (eager != EAGER_NEVER && kind == OP_F) ||
         (eager == EAGER_FIRST_STAGE && s == 0)))
        put(z, pl, s, OP_W, w_ready(z, pl, s));
    if (kind == OP_F)
        while (pl->mem[s] + z->act[s] > z->limit[s] * (1 + 1e-9)) {
            if (pl->nw[s] >= pl->nb[s]) return -1;
            put(z, pl, s, OP_W, w_ready(z, pl, s));
        }
    put(z, pl, s, kind, ready);
    return 0;
}

static void play_reset(const Zb *z, Play *pl) {
    size_t p = (size_t)z->p;
    for (size_t i = 0; i < p * (size_t)z->m; i++) pl->fend[i] = pl->bend[i] = INT64_MAX;
    for (size_t s = 0; s < p; s++)
        pl->e[s] = 0, pl->first[s] = INT64_MAX, pl->mem[s] = 0, pl->nf[s] = pl->nb[s] = pl->nw[s] = 0;
}

static void play_spans(const Zb *z, Play *pl) {
    int64_t lo = INT64_MAX, hi = 0;
    pl->span = 0;
    for (int32_t s = 0; s < z->p; s++) {
        if (pl->e[s] - pl->first[s] > pl->span) pl->span = pl->e[s] - pl->first[s];
        if (pl->first[s] < lo) lo = pl->first[s];
        if (pl->e[s] > hi) hi = pl->e[s];
    }
    pl->makespan = hi - lo;
}

/* Plays the rounds for warm-ups K under one eager setting (see place). Returns 0, or -1 when
 * memory runs out (the limit is below what K needs). */
static int play(const Zb *z, const int32_t *K, int eager, Play *pl) {
    int32_t p = z->p, m = z->m;
    play_reset(z, pl);
    for (int32_t i = 0; i < m; i++) {
        for (int32_t s = 0; s < p; s++) {
            int32_t target = i + K[s] < m ? i + K[s] : m;
            while (pl->nf[s] < target) {
                int64_t r = s == 0 ? 0 : pl->fend[(int64_t)(s - 1) * m + pl->nf[s]] + z->x[s - 1];
                if (place(z, pl, s, OP_F, r, eager) != 0) return -1;
            }
        }
        for (int32_t s = p - 1; s >= 0; s--) {
            int64_t r = pl->fend[(int64_t)s * m + i];
            if (s < p - 1 && pl->bend[(int64_t)(s + 1) * m + i] + z->x[s] > r)
                r = pl->bend[(int64_t)(s + 1) * m + i] + z->x[s];
            if (place(z, pl, s, OP_B, r, eager) != 0) return -1;
        }
    }
    for (int32_t s = 0; s < p; s++)
        while (pl->nw[s] < m) put(z, pl, s, OP_W, w_ready(z, pl, s));
    play_spans(z, pl);
    return 0;
}

/* Times a handcrafted Program (one chunk, whole stage per device, split backward) at z's costs
 * with each device's order kept, each op as early as its inputs allow. Returns 0 with the
 * spans in pl, -1 when it does not fit the limit or cannot complete. */
static int play_program(const Zb *z, const Program *pr, Play *pl) {
    int32_t p = z->p, m = z->m;
    play_reset(z, pl);
    int64_t left = pr->nops, *at = calloc((size_t)p, sizeof *at);
    if (!at) return -1;
    for (int progress = 1; left > 0 && progress;) {
        progress = 0;
        for (int32_t s = 0; s < p; s++)
            for (; pr->start[s] + at[s] < pr->start[s + 1]; at[s]++) {
                const ProgramOp *op = &pr->ops[pr->start[s] + at[s]];
                int64_t j = op->micro_batch, r = 0;
                if (op->kind == OP_F && s > 0) r = pl->fend[(s - 1) * m + j];
                if (op->kind == OP_B && s < p - 1) r = pl->bend[(s + 1) * m + j];
                if (op->kind == OP_W) r = pl->bend[s * m + j];
                if (r == INT64_MAX || op->kind == OP_BW || j != (op->kind == OP_F ? pl->nf[s]
                                                      : op->kind == OP_B ? pl->nb[s] : pl->nw[s]))
                    break; // waits for an input (or is not in micro-batch order: not ours)
                if (op->kind != OP_W && ((op->kind == OP_F && s > 0) || (op->kind == OP_B && s < p - 1)))
                    r += z->x[op->kind == OP_F ? s - 1 : s];
                if (op->kind == OP_B && pl->fend[s * m + j] > r) r = pl->fend[s * m + j];
                put(z, pl, s, (OpKind)op->kind, r);
                if (pl->mem[s] > z->limit[s] * (1 + 1e-9)) return free(at), -1;
                left--, progress = 1;
            }
    }
    free(at);
    if (left > 0) return -1;
    play_spans(z, pl);
    return 0;
}

static int better(int64_t span, int64_t makespan, int64_t best_span, int64_t best_makespan) {
    return span < best_span || (span == best_span && makespan < best_makespan);
}

/* Best eager setting for K (only: that one; -1 all): its spans in *span, *makespan
 * (INT64_MAX when none fits). Returns the setting, or -1. */
static int best_eager(const Zb *z, const int32_t *K, Play *pl, int64_t *span, int64_t *makespan,
                      int only) {
    int best = -1;
    *span = *makespan = INT64_MAX;
    for (int e = only < 0 ? 0 : only; e < (only < 0 ? EAGER_COUNT : only + 1); e++)
        if (play(z, K, e, pl) == 0 &&
            better(pl->span, pl->makespan, *span, *makespan))
            *span = pl->span, *makespan = pl->makespan, best = e;
    return best;
}

/* Makes K feasible for the round order: 1 <= K_s <= cap_s and non-increasing in s. */
static void clamp_warmups(int32_t p, const int32_t *cap, int32_t *K) {
    for (int32_t s = 0; s < p; s++) {
        if (K[s] > cap[s]) K[s] = cap[s];
        if (s > 0 && K[s] > K[s - 1]) K[s] = K[s - 1];
        if (K[s] < 1) K[s] = 1;
    }
}

/* Op placements the descent may spend (a play places 3pm): a fixed count, not a time, so the
 * result is the same on every machine; about 10 ms on one core. At (16, 64) it allows some
 * 650 plays, at (64, 256) 40. */
#define DESCENT_BUDGET 500000

typedef struct {
    int32_t *K, *cap, *tryK;
    int64_t plays_left;    // descent plays still allowed
    int eager;
    int64_t span, makespan;
} Search;

/* Warm-ups that fill each stage's wait for its first gradient (the paper's warm-up, section
 * 3.1): from the last stage back, the forwards stage s can run from its first one (when the
 * forward chain reaches it) until B(0) arrives from stage s + 1 as delayed by that stage's own
 * warm-up; `over` 0 takes the most that end before it arrives, 1 one more (the paper's binary
 * choice: a bubble shorter than F before B(0) instead of a delay). */
static void fill_warmups(const Zb *z, const int32_t *cap, int over, int32_t *K) {
    int32_t p = z->p;
    int64_t reach = 0, b0_end = 0; // when the F chain reaches stage s; B(0) ends on stage s + 1
    int64_t *at = malloc((size_t)p * sizeof *at);
    if (!at) {
        for (int32_t s = 0; s < p; s++) K[s] = p - s;
        return;
    }
    for (int32_t s = 0; s < p; s++) at[s] = reach, reach += z->f[s] + z->x[s];
    for (int32_t s = p - 1; s >= 0; s--) {
        int64_t arrive = s == p - 1 ? at[s] + z->f[s] : b0_end + z->x[s], f = z->f[s] > 0 ? z->f[s] : 1;
        int64_t k = arrive > at[s] ? (arrive - at[s]) / f : 1;
        if (over && at[s] + k * f < arrive) k++;
        if (k < 1) k = 1;
        if (k > cap[s]) k = cap[s];
        int64_t ready = at[s] + k * f > arrive ? at[s] + k * f : arrive;
        b0_end = ready + z->b[s];
        K[s] = (int32_t)k;
    }
    free(at);
}

/* The starting warm-ups (1F1B's, ZB-H2's and the two fills), the best under each setting into
 * se. (The memory cap and the fills with appendix B's p-1-s more forwards never won over the
 * tests' grid and Table 5 and pplan's gpt13b search, so they are not tried.) */
static void search_starts(const Zb *z, Play *pl, Search *se) {
    int32_t p = z->p;
    for (int start = 0; start < 4; start++) {
        for (int32_t s = 0; s < p; s++) {
            int64_t k = start == 0 ? p - s : 2 * (p - s) - 1;
            se->tryK[s] = (int32_t)(k < z->m ? k : z->m);
        }
        if (start >= 2) fill_warmups(z, se->cap, start - 2, se->tryK);
        clamp_warmups(p, se->cap, se->tryK);
        int64_t span, makespan;
        int e = best_eager(z, se->tryK, pl, &span, &makespan, -1);
        if (e >= 0 && better(span, makespan, se->span, se->makespan)) {
            memcpy(se->K, se->tryK, (size_t)p * sizeof *se->K);
            se->span = span, se->makespan = makespan, se->eager = e;
        }
    }
}

/* Tries K with K_s moved by `step` for s in [lo, hi]; keeps it when it is feasible and
 * better. Returns whether it did. */
static int try_move(const Zb *z, Play *pl, Search *se, int32_t lo, int32_t hi, int32_t step) {
    int32_t p = z->p;
    if (se->plays_left <= 0) return 0;
    memcpy(se->tryK, se->K, (size_t)p * sizeof *se->K);
    for (int32_t s = lo; s <= hi; s++) {
        int32_t v = se->K[s] + step;
        if (v < 1 || v > se->cap[s]) return 0;
        se->tryK[s] = v;
    }
    for (int32_t s = 1; s < p; s++)
        if (se->tryK[s] > se->tryK[s - 1]) return 0;
    int64_t span, makespan;
    se->plays_left--;
    if (best_eager(z, se->tryK, pl, &span, &makespan, se->eager) < 0 ||
        !better(span, makespan, se->span, se->makespan))
        return 0;
    memcpy(se->K, se->tryK, (size_t)p * sizeof *se->K);
    se->span = span, se->makespan = makespan;
    return 1;
}

/* Descent from se's best: one warm-up, or every warm-up from a stage on, or up to a stage,
 * moved by +-1, 2, 4 while that improves; then every eager setting again. */
static void search_descend(const Zb *z, Play *pl, Search *se) {
    static const int32_t STEPS[] = {1, -1, 2, -2, 4, -4};
    int32_t p = z->p;
    se->plays_left = DESCENT_BUDGET / (3 * (int64_t)p * z->m) + 1;
    for (int pass = 0, improved = 1; improved && pass < 8 && se->plays_left > 0; pass++) {
        improved = 0;
        for (int32_t s = 0; s < p; s++)
            for (size_t k = 0; k < sizeof STEPS / sizeof STEPS[0]; k++)
                improved |= try_move(z, pl, se, s, s, STEPS[k]) ||
                            try_move(z, pl, se, s, p - 1, STEPS[k]) ||
                            try_move(z, pl, se, 0, s, STEPS[k]);
    }
    int64_t span, makespan;
    int e = best_eager(z, se->K, pl, &span, &makespan, -1);
    if (e >= 0 && better(span, makespan, se->span, se->makespan))
        se->span = span, se->makespan = makespan, se->eager = e;
}

void zb_problem_free(Zb *z) {
    free(z->f), free(z->b), free(z->w), free(z->x), free(z->act), free(z->wp), free(z->limit);
}

/* The problem from sp: costs (or unit costs) and each device's limit, `limit` activations of
 * its stage (0: cost->room, at least one activation). Returns 0, -1 out of memory, 2 with
 * issue when the limit is unknown. */
int zb_problem_init(const SchedParams *sp, const char *name, double limit, Zb *z,
                    SchedIssue *issue) {
    int32_t p = sp->devices;
    const SchedCost *c = sp->cost;
    *z = (Zb){.p = p, .m = sp->micro_batches};
    z->f = malloc((size_t)p * sizeof *z->f), z->b = malloc((size_t)p * sizeof *z->b);
    z->w = malloc((size_t)p * sizeof *z->w), z->x = malloc((size_t)p * sizeof *z->x);
    z->act = malloc((size_t)p * sizeof *z->act), z->wp = malloc((size_t)p * sizeof *z->wp);
    z->limit = malloc((size_t)p * sizeof *z->limit);
    if (!z->f || !z->b || !z->w || !z->x || !z->act || !z->wp || !z->limit) return zb_problem_free(z), -1;
    for (int32_t s = 0; s < p; s++) {
        const int64_t *ns = c ? &c->op_ns[(int64_t)s * OP_KIND_COUNT] : NULL;
        z->f[s] = ns ? ns[OP_F] : 1, z->b[s] = ns ? ns[OP_B] : 1, z->w[s] = ns ? ns[OP_W] : 1;
        z->x[s] = c && c->xfer_ns && s < p - 1 ? c->xfer_ns[s] : 0;
        z->act[s] = c ? c->act[s] : 1;
        z->wp[s] = c ? c->w_pending[s] : 1;
        if (z->wp[s] > z->act[s]) z->wp[s] = z->act[s];
        if (z->act[s] <= 0) z->act[s] = 1e-30; // nothing kept: every count fits
        if (limit <= 0 && !(c && c->room)) {
            issue->key = "pipeline.activation_limit";
            snprintf(issue->msg, sizeof issue->msg, "%s needs a memory limit: set "
                     "pipeline.activation_limit (micro-batches' activations a device may hold, "
                     "e.g. %d for 1F1B's), or run it through psim, which takes it from "
                     "hardware.memory_gib", name, p);
            zb_problem_free(z);
            return 2;
        }
        // below one activation (the static part alone overflows, say) no order fits; the
        // least any schedule holds is one, and the run reports the device over its memory
        z->limit[s] = limit > 0 ? limit * z->act[s] : c->room[s];
        if (z->limit[s] < z->act[s]) z->limit[s] = z->act[s];
    }
    return 0;
}

/* Builds the best order found into out: the searched warm-ups, or ZB-H1 or ZB-H2 when one of
 * them fits the limit and is at least as short. */
int zb_search_build(const SchedParams *sp, const char *name, double limit, Program *out,
                    SchedIssue *issue) {
    Zb z;
    int rc = zb_problem_init(sp, name, limit, &z, issue);
    if (rc != 0) return rc;
    int32_t p = z.p, m = z.m;
    size_t pm = (size_t)p * (size_t)m;
    Play pl = {.fend = malloc(pm * sizeof *pl.fend), .bend = malloc(pm * sizeof *pl.bend),
               .e = malloc((size_t)p * sizeof *pl.e), .first = malloc((size_t)p * sizeof *pl.first),
               .mem = malloc((size_t)p * sizeof *pl.mem), .nf = malloc((size_t)p * sizeof *pl.nf),
               .nb = malloc((size_t)p * sizeof *pl.nb), .nw = malloc((size_t)p * sizeof *pl.nw)};
    Search se = {.K = malloc((size_t)p * sizeof *se.K), .cap = malloc((size_t)p * sizeof *se.cap),
                 .tryK = malloc((size_t)p * sizeof *se.tryK), .eager = -1,
                 .span = INT64_MAX, .makespan = INT64_MAX};
    ProgramOp *ops = malloc(pm * 3 * sizeof *ops);
    Program hp = {0};
    int64_t hand_span = INT64_MAX, hand_makespan = INT64_MAX;
    rc = -1;
    if (!pl.fend || !pl.bend || !pl.e || !pl.first || !pl.mem || !pl.nf || !pl.nb || !pl.nw ||
        !se.K || !se.cap || !se.tryK || !ops)
        goto done;
    for (int32_t s = 0; s < p; s++) {
        double cap = floor(z.limit[s] / z.act[s] * (1 + 1e-9));
        se.cap[s] = cap < m ? (int32_t)cap : m;
    }
    search_starts(&z, &pl, &se);
    search_descend(&z, &pl, &se);
    int use_hand = 0; // ZB-H1 and ZB-H2 at the same costs, when they fit the limit
    static const char *const HANDS[] = {"zb-h1", "zb-h2"};
    for (size_t h = 0; h < sizeof HANDS / sizeof HANDS[0]; h++) {
        SchedParams hsp = *sp;
        Program cand;
        if (sched_find(HANDS[h])->build(&hsp, &cand, issue) != 0) goto done;
        int take = play_program(&z, &cand, &pl) == 0 &&
                   (use_hand ? better(pl.span, pl.makespan, hand_span, hand_makespan)
                             : se.eager < 0 || !better(se.span, se.makespan, pl.span, pl.makespan));
        if (take) {
            if (use_hand) program_free(&hp);
            hp = cand, use_hand = 1, hand_span = pl.span, hand_makespan = pl.makespan;
        } else {
            program_free(&cand);
        }
    }
    if (!use_hand && se.eager < 0) { // cannot happen: K = 1 everywhere fits any limit >= act
        issue->key = "pipeline.schedule";
        snprintf(issue->msg, sizeof issue->msg, "%s found no order at p = %d, m = %d; please "
                 "report it", name, p, m);
        rc = 2;
        goto done;
    }
    if (use_hand) {
        *out = hp, hp = (Program){0};
        rc = 0;
        goto done;
    }
    pl.ops = ops;
    play(&z, se.K, se.eager, &pl);
    if (program_init(out, p, 1, m, PLACE_LOOPED, (int64_t)pm * 3) != 0) goto done;
    for (int32_t s = 0; s < p; s++)
        for (int64_t k = 0; k < 3 * (int64_t)m; k++) {
            const ProgramOp *op = &ops[(int64_t)s * 3 * m + k];
            program_push(out, s, (OpKind)op->kind, op->micro_batch, 0);
        }
    program_end(out);
    rc = 0;
done:
    if (hp.ops) program_free(&hp);
    free(pl.fend), free(pl.bend), free(pl.e), free(pl.first), free(pl.mem), free(pl.nf),
        free(pl.nb), free(pl.nw), free(se.K), free(se.cap), free(se.tryK), free(ops);
    zb_problem_free(&z);
    return rc;
}

static int zb_1p_validate(const SchedParams *sp, SchedIssue *issue) {
    return sched_one_chunk("zb-1p", sp, issue);
}
static int zb_2p_validate(const SchedParams *sp, SchedIssue *issue) {
    return sched_one_chunk("zb-2p", sp, issue);
}
static int zb_auto_validate(const SchedParams *sp, SchedIssue *issue) {
    return sched_one_chunk("zb-auto", sp, issue);
}

static int zb_1p_build(const SchedParams *sp, Program *out, SchedIssue *issue) {
    return zb_search_build(sp, "zb-1p", sp->devices, out, issue);
}
static int zb_2p_build(const SchedParams *sp, Program *out, SchedIssue *issue) {
    return zb_search_build(sp, "zb-2p", 2.0 * sp->devices, out, issue);
}
static int zb_auto_build(const SchedParams *sp, Program *out, SchedIssue *issue) {
    return zb_search_build(sp, "zb-auto", sp->activation_limit, out, issue);
}

const Schedule SCHED_ZB_1P = {
    .name = "zb-1p",
    .stand_in = "zb-h1",
    .summary = "zero bubble, searched at the costs under 1F1B's memory, p activations (Qi et al.)",
    .searched = 1,
    .validate = zb_1p_validate,
    .build = zb_1p_build,
};

const Schedule SCHED_ZB_2P = {
    .name = "zb-2p",
    .stand_in = "zb-h1",
    .summary = "zero bubble, searched at the costs under twice 1F1B's memory (Qi et al.)",
    .searched = 1,
    .validate = zb_2p_validate,
    .build = zb_2p_build,
};

const Schedule SCHED_ZB_AUTO = {
    .name = "zb-auto",
    .stand_in = "zb-h1",
    .summary = "zero bubble, searched under pipeline.activation_limit or what memory_gib leaves",
    .searched = 1,
    .validate = zb_auto_validate,
    .build = zb_auto_build,
};
