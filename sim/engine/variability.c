/* sim/engine/variability.c: the jitter factors (a counter-based hash, Box-Muller, the normal and
 * lognormal models), the straggler window and the scenario's ms in ns. The failure itself
 * is played by the engine (engine.c); its definition is in variability.h. */
#include "sim/engine/variability.h"

#include <math.h>

#define TWO_PI 6.283185307179586476925286766559
#define NORMAL_CLAMP 3.0 // normal jitter's deviate is kept in [-3, 3]
#define MAX_NS 0x1p60    // longest op time, as cost.c's clock limit

static int64_t ms_to_ns(double ms) {
    return ms < MAX_NS / 1e6 ? llround(ms * 1e6) : (int64_t)1 << 60;
}

void variability_init(Variability *v, const ScnVariability *s) {
    double var = log1p(s->jitter_cv * s->jitter_cv); // lognormal sigma^2
    *v = (Variability){
        .jitter = s->jitter, .cv = s->jitter_cv, .sigma = sqrt(var), .mu = -var / 2,
        .seed = (uint64_t)s->seed, .straggler = (int32_t)s->straggler_device,
        .slowdown = s->straggler_slowdown, .slow_from_ns = ms_to_ns(s->straggler_start_ms),
        .slow_until_ns = s->straggler_end_ms < 0 ? INT64_MAX : ms_to_ns(s->straggler_end_ms),
        .failure_device = (int32_t)s->failure_device,
        .failure_at_ns = s->failure_at_ms < 0 ? 0 : ms_to_ns(s->failure_at_ms),
        .restart_ns = ms_to_ns(s->restart_ms)};
    v->ops_vary = (v->jitter != JITTER_NONE && v->cv > 0) || v->straggler >= 0;
}

/* splitmix64's output function (Steele, Lea and Flood 2014): a bijection of 64 bits whose
 * outputs for consecutive inputs look independent. */
static uint64_t mix(uint64_t x) {
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

uint64_t variability_hash(uint64_t seed, int64_t run, int64_t device, int64_t op, int64_t draw) {
    uint64_t h = mix(seed);
    h = mix(h ^ (uint64_t)run);
    h = mix(h ^ (uint64_t)device);
    h = mix(h ^ (uint64_t)op);
    return mix(h ^ (uint64_t)draw);
}

/* A standard normal deviate from two hashed uniforms: u1 in (0, 1], u2 in [0, 1). */
static double normal_deviate(const Variability *v, int64_t run, int32_t device, int64_t op) {
    double u1 = (double)((variability_hash(v->seed, run, device, op, 0) >> 11) + 1) * 0x1p-53;
    double u2 = (double)(variability_hash(v->seed, run, device, op, 1) >> 11) * 0x1p-53;
    return sqrt(-2.0 * log(u1)) * cos(TWO_PI * u2);
}

double variability_factor(const Variability *v, int64_t run, int32_t device, int64_t op) {
    if (v->jitter == JITTER_NONE || v->cv == 0) return 1.0;
    double z = normal_deviate(v, run, device, op);
    if (v->jitter == JITTER_LOGNORMAL) return exp(v->mu + v->sigma * z);
    z = z < -NORMAL_CLAMP ? -NORMAL_CLAMP : z > NORMAL_CLAMP ? NORMAL_CLAMP : z;
    return 1.0 + v->cv * z;
}

int64_t variability_op_ns(const Variability *v, int64_t run, int32_t device, int64_t op,
                          int64_t start_ns, int64_t base_ns) {
    if (!v->ops_vary || base_ns <= 0) return base_ns;
    double t = (double)base_ns * variability_factor(v, run, device, op);
    if (device == v->straggler && start_ns >= v->slow_from_ns && start_ns < v->slow_until_ns)
        t *= v->slowdown;
    if (t >= MAX_NS) return (int64_t)1 << 60;
    int64_t ns = llround(t);
    return ns > 0 ? ns : 1;
}
