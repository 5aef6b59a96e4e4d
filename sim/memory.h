/* sim/memory.h: a first per-device memory estimate: parameters, gradients and optimizer state
 * of the layers a device holds, plus the activations of the micro-batches it holds at once
 * (Korthikanti et al. 2022, no tensor or sequence parallelism, no recompute). Memory over
 * time, recompute and zero-bubble W buffers come later. */
#ifndef PIPESIM_MEMORY_H
#define PIPESIM_MEMORY_H

#include <stdint.h>

#include "plan.h"
#include "program.h"
#include "scenario.h"

#define GIB (1024.0 * 1024.0 * 1024.0)

/* Mixed-precision Adam (Rajbhandari et al. 2020): 16-bit weights and gradients, fp32 master
 * weights, momentum and variance = 2 + 2 + 12 bytes per parameter; for fp32 models 4 + 4 + 8. */
typedef struct {
    double params;             // parameters held
    int32_t weight_versions;   // weight copies kept (stashing, double buffering), >= 1
    double weight_bytes;       // in the model's dtype, all versions
    double grad_bytes;
    double optimizer_bytes;
    double activation_bytes;   // peak over the device's program
    int32_t peak_activations;  // most (micro-batch, chunk) activations held at once
    double peak_bytes;         // weights + gradients + optimizer + peak activations
} DeviceMemory;

/* Parameters of one transformer layer: 4h^2 + 4h (attention) + 2hf + f + h (MLP) + 4h (two
 * layer norms); 12h^2 + 13h when f = 4h. */
double memory_layer_params(const ScnModel *m);

/* Activation bytes one layer keeps for one micro-batch of b samples until its backward:
 * sbh(34 + 5as/h) for 16-bit types (Korthikanti et al. 2022, eq. 1), doubled for fp32. */
double memory_layer_activation_bytes(const ScnModel *m, int64_t b);

/* memory_estimate fills out[devices] from the plan and the order of the device's ops:
 * stage 0 also holds the embedding (V + s)h and its dropout mask sbh; the last stage holds
 * the (tied) output embedding Vh and final layer norm 2h, and keeps 4sbh(1 + V/h) bytes of
 * head activations (layer-norm and logits inputs, fp32 logits). An activation is held from the
 * start of its F to the end of its BW (or W). */
void memory_estimate(const Scenario *s, const Plan *pl, const Program *pr, DeviceMemory *out);

#endif
