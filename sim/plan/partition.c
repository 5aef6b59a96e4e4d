/* sim/plan/partition.c: the balanced partition (partition.h): binary search on the slowest
 * stage's integer ns with a per-stage capacity check, then water-filling among the optimal
 * splits. Times and memory come from the caller's PartitionModel. */
#include "sim/plan/partition.h"

#include <stdlib.h>

typedef struct {
    int64_t L;                // layers to place
    const PartitionModel *m;
    const PartitionStage *st; // [per]
    int32_t per;              // stages of one copy
} Balance;

static int64_t stage_ns(const Balance *b, int32_t st, int64_t k) {
    return b->m->stage_ns(b->m->ctx, &b->st[st], k);
}

/* Most layers (0 .. L) stage st runs within T ns and its memory cap (mcap < 0: none). */
static int64_t time_cap(const Balance *b, int32_t st, int64_t T, int64_t mcap) {
    int64_t lo = 0, hi = b->L - (b->per - 1); // t_st(lo) <= T is kept
    if (mcap >= 0 && mcap < hi) hi = mcap;
    if (hi < 1 || stage_ns(b, st, 1) > T) return 0;
    lo = 1;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo + 1) / 2;
        if (stage_ns(b, st, mid) <= T) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

/* Fills cap[per] for T; returns whether a split of the L layers fits them. */
static int feasible(const Balance *b, const int64_t *mcap, int64_t T, int64_t *cap) {
    int64_t sum = 0;
    for (int32_t st = 0; st < b->per; st++) {
        cap[st] = time_cap(b, st, T, mcap[st]);
        if (cap[st] < 1) return 0;
        sum += cap[st];
    }
    return sum >= b->L;
}

/* The smallest T (ns) that some split meets, with cap[] filled for it; -1 when none does. */
static int64_t optimum(const Balance *b, const int64_t *mcap, int64_t *cap) {
    int64_t lo = 0, hi = 0; // feasible(hi) when anything is; lo - 1 is not
    for (int32_t st = 0; st < b->per; st++) {
        int64_t t = stage_ns(b, st, b->L - (b->per - 1));
        if (t > hi) hi = t;
    }
    if (!feasible(b, mcap, hi, cap)) return -1;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (feasible(b, mcap, mid, cap)) hi = mid;
        else lo = mid + 1;
    }
    feasible(b, mcap, lo, cap);
    return lo;
}

/* Layers stage st takes at level T: as many as run within T ns, at least 1, at most its
 * memory cap. */
static int64_t level_take(const Balance *b, const int64_t *mcap, int32_t st, int64_t T) {
    int64_t k = time_cap(b, st, T, mcap[st]);
    return k < 1 ? 1 : k;
}

static int64_t level_sum(const Balance *b, const int64_t *mcap, int64_t T) {
    int64_t sum = 0;
    for (int32_t st = 0; st < b->per; st++) sum += level_take(b, mcap, st, T);
    return sum;
}

/* Water-filling among the optimal splits: the smallest level T2 at which stages filled up to
 * T2 (each at least 1 layer) hold all the layers; every stage takes what fits below T2, and
 * the few layers left go to the stages that reach T2 exactly, earlier stages first. When a
 * stage's minimum forces the optimum (an LM head alone on a slow device), the others still
 * come out even in time, not in layers. Its slowest stage is the optimum T: at T2 no stage
 * passes T2 except those held at 1 layer, which every split has. O(S log L log T). */
static void split_level(const Balance *b, const int64_t *mcap, int64_t T, int64_t *layers) {
    int64_t lo = 0, hi = T, L = b->L;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (level_sum(b, mcap, mid) >= L) hi = mid;
        else lo = mid + 1;
    }
    int64_t left = L;
    for (int32_t st = 0; st < b->per; st++) left -= layers[st] = level_take(b, mcap, st, lo - 1);
    for (int32_t st = 0; st < b->per && left > 0; st++) {
        int64_t more = level_take(b, mcap, st, lo) - layers[st];
        if (more > left) more = left;
        layers[st] += more, left -= more;
    }
}

/* The slowest stage of a split: its time, and the stage in *at. */
static int64_t slowest(const Balance *b, const int64_t *layers, int32_t *at) {
    int64_t worst = -1;
    for (int32_t st = 0; st < b->per; st++) {
        int64_t t = stage_ns(b, st, layers[st]);
        if (t > worst) worst = t, *at = st;
    }
    return worst;
}

int partition_balance(int64_t L, const PartitionModel *m, const PartitionStage *stages, int32_t per,
                      int64_t *layers, PartitionWhy *why) {
    Balance bal = {L, m, stages, per}, *b = &bal;
    int64_t *mcap = calloc((size_t)per, sizeof *mcap), *cap = calloc((size_t)per, sizeof *cap);
    int64_t *even = calloc((size_t)per, sizeof *even);
    if (!mcap || !cap || !even) {
        free(mcap), free(cap), free(even);
        return -1;
    }
    for (int32_t st = 0; st < per; st++) {
        mcap[st] = -1;
        even[st] = L / per + (st < L % per);
    }
    int32_t at = 0;
    why->even_ns = slowest(b, even, &at);
    why->unlimited_ns = optimum(b, mcap, cap); // no memory bound: always feasible
    why->memory_device = -1;
    why->fits_memory = 1;
    for (int32_t st = 0; st < per; st++) mcap[st] = m->layer_cap(m->ctx, &stages[st]);
    int64_t T = optimum(b, mcap, cap);
    if (T < 0) { // nothing fits: balance on time alone
        why->fits_memory = 0;
        for (int32_t st = 0; st < per; st++) mcap[st] = -1;
        T = why->unlimited_ns;
    }
    split_level(b, mcap, T, layers);
    why->bottleneck_ns = slowest(b, layers, &why->bottleneck_stage);
    for (int32_t st = 0; st < per; st++) // memory binds: the stage could take more in time
        if (mcap[st] >= 0 && mcap[st] < time_cap(b, st, why->bottleneck_ns, -1)) {
            why->memory_device = stages[st].device;
            break;
        }
    free(mcap), free(cap), free(even);
    return 0;
}
