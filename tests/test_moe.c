/* tests/test_moe.c: mixture of experts and expert parallelism against published numbers and
 * closed forms. Parameters: DeepSeek-V3's 671B total and 36.6B activated (DeepSeek-AI 2024,
 * arXiv 2412.19437, Table/section 4.2: "671B total parameters, of which 37B are activated";
 * the DeepSeek-V3 repository's README_WEIGHTS.md: "Total parameters: 671B, Activation
 * parameters: 36.6B (including 0.9B for the output Head)", i.e. without the input embedding
 * table, which a token only indexes; the report's 37B is that 36.6B rounded up) and Mixtral 8x7B's 46.7B total and 12.9B active per token
 * (Mistral AI, "Mixtral of experts", 2023; embeddings counted). The published figures are
 * rounded (671B to the billion: +-0.075%; 46.7B, 12.9B and 36.6B to 0.1B: +-0.11%, +-0.39%,
 * +-0.14%; Qwen1.5-MoE's below), so each tolerance is its rounding plus what the model leaves out (DeepSeek-V3's
 * MLA approximated by GQA of equal projection parameters, scenarios/deepseek-v3.scn: 0.05%).
 * FLOPs: the MoE block's extra over the dense MLP, 2T(hE + (k + s) 3 h f_e - 3 h f) a pass,
 * exact. The all-to-all: the alpha-beta formula for its placement (cost.h), inside one node,
 * across nodes and mixed, and as psim's timeline rows. 1F1B pays it exposed (one stage:
 * makespan = m (F + BW), F holding 2 all-to-alls a MoE layer); DualPipe's fused pairs hide it
 * behind the other micro-batch's computation slowed by 132 / (132 - 20); memory with 1/e of
 * the experts and their ZeRO shards over d / e; the imbalance knob's straggler factor. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "sim_fixture.h"
#include "sim/model/layer_ops.h"
#include "sim/model/memory.h"
#include "sim/search/search.h"

#define DSV3 "scenarios/deepseek-v3.scn"
#define MIXTRAL "scenarios/mixtral-8x7b.scn"

static void assert_near_rel(double got, double want, double tol, const char *what) {
    if (!(fabs(got - want) <= tol * fabs(want)))
        fail_msg("%s: %.6g, want %.6g within %.3g%% (off by %.3g%%)", what, got, want, 100 * tol,
                 100 * (got - want) / want);
}

static void load(Scenario *s, const char *path, const char *const *sets, int n) {
    char err[SCN_ERR_MAX];
    if (scenario_load(path, sets, n, s, err) != 0) fail_msg("scenario: %s", err);
}

static void test_published_parameter_counts(void **state) {
    (void)state;
    Scenario s;
    load(&s, DSV3, NULL, 0);
    const ScnModel *m = &s.model;
    double emb = (double)m->vocab * (double)m->hidden;
    assert_near_rel(memory_model_params(m), 671e9, 0.00075 + 0.0005, "DeepSeek-V3 total");
    assert_near_rel(memory_model_active_params(m) - emb, 36.6e9, 0.0014 + 0.0005,
                    "DeepSeek-V3 activated (without the input embedding)");
    assert_int_equal(scenario_moe_layers(m, 0, m->layers), 58);
    assert_false(scenario_is_moe_layer(m, 2));
    assert_true(scenario_is_moe_layer(m, 3));
    scenario_free(&s);
    load(&s, MIXTRAL, NULL, 0);
    assert_near_rel(memory_model_params(&s.model), 46.7e9, 0.0011, "Mixtral total");
    assert_near_rel(memory_model_active_params(&s.model), 12.9e9, 0.0039, "Mixtral active");
    // Qwen1.5-MoE-A2.7B (the Qwen team's model card and blog, 2024: "14.3B parameters in total
    // and 2.7B activated"; rounded to 0.1B: +-0.35% and +-1.9%), read from its shipped config
    // (the shared expert of 5632 = 4 experts of 1408); its q, k, v biases and the shared
    // expert's gate (under 0.01%) are left out
    Scenario q;
    const char *qwen[] = {"model.hf_config=scenarios/qwen1.5-moe-a2.7b.json", "parallel.expert=4"};
    load(&q, MIXTRAL, qwen, 2);
    assert_int_equal(q.model.experts, 60);
    assert_int_equal(q.model.shared_experts, 4);
    assert_near_rel(memory_model_params(&q.model), 14.3e9, 0.0035 + 0.0001, "Qwen1.5-MoE total");
    assert_near_rel(memory_model_active_params(&q.model), 2.7e9, 0.019, "Qwen1.5-MoE active");
    scenario_free(&q);
    // a dense model's activated parameters are all of them
    s.model.experts = 0;
    assert_true(memory_model_active_params(&s.model) == memory_model_params(&s.model));
    scenario_free(&s);
}

/* The MoE block's FLOPs over the dense MLP's: router 2ThE, the k routed and s shared experts'
 * SwiGLU 2T (k + s) 3 h f_e, less the dense MLP's 2T 3 h f, in each of F, B and W; expert
 * parallelism leaves one rank's FLOPs as they are (balanced: T k tokens a rank). */
static void test_moe_flops_closed_form(void **state) {
    (void)state;
    const char *paths[] = {DSV3, MIXTRAL};
    for (int i = 0; i < 2; i++) {
        Scenario s;
        load(&s, paths[i], NULL, 0);
        const ScnModel *m = &s.model;
        LayerShape dense = cost_model_shape(m, 1), moe = cost_model_moe_shape(m, 1);
        double T = (double)m->seq_len, h = (double)m->hidden, E = (double)m->experts;
        double k = (double)m->experts_per_token, sh = (double)m->shared_experts;
        double fe = (double)m->expert_ffn_hidden, f = (double)m->ffn_hidden;
        double extra = 2 * T * (h * E + (k + sh) * 3 * h * fe - 3 * h * f);
        for (int p = 0; p < 3; p++) {
            double d = layer_ops_flops(&moe, (OpKind)p) - layer_ops_flops(&dense, (OpKind)p);
            if (fabs(d - extra) > 1e-12 * extra) fail_msg("%s pass %d: %.17g, want %.17g", paths[i], p, d, extra);
        }
        LayerShape ep = cost_moe_shape(&s); // e > 1: the grouped GEMMs of E/e experts
        for (int p = 0; p < 3; p++)
            assert_true(layer_ops_flops(&ep, (OpKind)p) == layer_ops_flops(&moe, (OpKind)p));
        LayerOp ops[LAYER_OPS_MAX];
        int n = layer_ops(&ep, OP_F, ops), a2a = 0, grouped = 0;
        assert_true(n <= LAYER_OPS_MAX);
        for (int j = 0; j < n; j++) {
            a2a += ops[j].kernel == LK_ALLTOALL;
            if (strcmp(ops[j].name, "experts_up") == 0) {
                grouped = 1;
                assert_int_equal(ops[j].batch, m->experts / s.parallel.expert);
                assert_int_equal(ops[j].M, m->seq_len * m->experts_per_token * s.parallel.expert / m->experts);
            }
        }
        assert_int_equal(a2a, 2); // dispatch and combine
        assert_true(grouped);
        assert_true(layer_ops(&ep, OP_B, ops) <= LAYER_OPS_MAX);
        scenario_free(&s);
    }
}

/* The formula of cost.h, written out: m of the e ranks in a node. */
static double a2a_formula(const Scenario *s, double bytes, int64_t m) {
    double e = (double)s->parallel.expert, eff = s->net.collective_efficiency;
    double intra = m > 1 ? s->net.collective_latency_us * 1e3 +
                               bytes * (double)(m - 1) / e / (s->net.intra_bandwidth_gbs * eff)
                         : 0;
    double inter = e > (double)m ? s->net.inter_latency_us * 1e3 +
                                       bytes * (e - (double)m) / e / (s->net.inter_bandwidth_gbs * eff)
                                 : 0;
    return intra > inter ? intra : inter;
}

static void test_alltoall_by_placement(void **state) {
    (void)state;
    // Mixtral: T k h bf16 = 4096 x 2 x 4096 x 2 bytes a rank dispatches per layer
    double bytes = 4096.0 * 2 * 4096 * 2;
    struct { const char *sets[3]; int n; int64_t m; const char *what; } cases[] = {
        {{"parallel.expert=8"}, 1, 8, "intra: 8 ranks in a node of 8"},
        {{"parallel.expert=8", "hardware.gpus_per_node=1"}, 2, 1, "inter: one GPU a node"},
        {{"parallel.expert=8", "hardware.gpus_per_node=4"}, 2, 4, "mixed: 8 ranks over two nodes of 4"},
        {{"parallel.expert=4", "hardware.gpus_per_node=2"}, 2, 2, "mixed: 4 ranks over nodes of 2"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Sim x;
        sim_run_file(&x, MIXTRAL, cases[i].sets, cases[i].n);
        double want = a2a_formula(&x.s, bytes, cases[i].m);
        double got = cost_alltoall_ns(&x.s, bytes);
        if (fabs(got - want) > 1e-9 * want) fail_msg("%s: %.9g ns, want %.9g", cases[i].what, got, want);
        // the priced all-to-alls inside the ops: 2 a MoE layer in F (dispatch, combine) and 2 in
        // B, 8 MoE layers a stage, each its formula's time (one rounding per op)
        assert_true(llabs(cost_a2a_ns(&x.c, 1, OP_F) - llround(8 * 2 * want)) <= 1);
        assert_true(llabs(cost_a2a_ns(&x.c, 1, OP_BW) - llround(8 * 2 * want)) <= 1);
        assert_int_equal(cost_a2a_ns(&x.c, 1, OP_W), 0);
        sim_free(&x);
    }
    // node-limited routing (expert_node_limit = M): one copy a node over the network to
    // min(M, k, N) of the N = 4 nodes, (N - 1)/N of them remote, then k (m - 1)/m copies
    // over NVLink; here e = 8 over nodes of 2 GPUs, k = 2, M = 1 and M = 4 (k caps it)
    for (int M = 1; M <= 4; M += 3) {
        char lim[64];
        snprintf(lim, sizeof lim, "parallel.expert_node_limit=%d", M);
        const char *sets[] = {"hardware.gpus_per_node=2", lim};
        Sim y;
        sim_run_file(&y, MIXTRAL, sets, 2);
        double one = bytes / 2, reach = M < 2 ? M : 2, eff = y.s.net.collective_efficiency;
        double intra = y.s.net.collective_latency_us * 1e3 + 2 * 0.5 * one / (y.s.net.intra_bandwidth_gbs * eff);
        double inter = y.s.net.inter_latency_us * 1e3 + reach * 0.75 * one / (y.s.net.inter_bandwidth_gbs * eff);
        double want = intra > inter ? intra : inter, got = cost_alltoall_ns(&y.s, bytes);
        if (fabs(got - want) > 1e-9 * want) fail_msg("node limit %d: %.9g ns, want %.9g", M, got, want);
        if (M == 1) assert_true(got < a2a_formula(&y.s, bytes, 2)); // fewer bytes cross the network
        sim_free(&y);
    }
    // e = 1: no all-to-all
    Sim x;
    const char *one[] = {"parallel.expert=1"};
    sim_run_file(&x, MIXTRAL, one, 1);
    assert_true(cost_alltoall_ns(&x.s, bytes) == 0);
    assert_null(x.c.a2a_ns);
    sim_free(&x);
}

/* 1F1B on one stage runs its ops back to back, m (F + BW), and each F holds its MoE layers'
 * all-to-alls exposed: F(e = 8) - F(all-to-all nearly free) is exactly their difference. */
static void test_1f1b_pays_the_alltoall_exposed(void **state) {
    (void)state;
    const char *base[] = {"pipeline.stages=1", "batch.micro_batches=4"};
    const char *cheap[] = {"pipeline.stages=1", "batch.micro_batches=4", "network.collective_latency_us=0",
                           "network.intra_bandwidth_gbs=1e6"};
    Sim a, b;
    sim_run_file(&a, MIXTRAL, base, 2);
    sim_run_file(&b, MIXTRAL, cheap, 4);
    double bytes = 4096.0 * 2 * 4096 * 2;
    double d = 32 * 2 * (cost_alltoall_ns(&a.s, bytes) - cost_alltoall_ns(&b.s, bytes));
    assert_true(d > 1e6); // 64 all-to-alls of 0.16 ms against nearly nothing
    assert_true(fabs((double)(cost_op_ns(&a.c, 0, OP_F) - cost_op_ns(&b.c, 0, OP_F)) - d) <= 1);
    assert_true(fabs((double)(cost_op_ns(&a.c, 0, OP_BW) - cost_op_ns(&b.c, 0, OP_BW)) - d) <= 2);
    int64_t end = 0;
    for (size_t i = 0; i < a.tl.n; i++)
        if (a.tl.ops[i].stream == STREAM_COMPUTE && a.tl.ops[i].end_ns > end) end = a.tl.ops[i].end_ns;
    assert_int_equal(end, 4 * (cost_op_ns(&a.c, 0, OP_F) + cost_op_ns(&a.c, 0, OP_BW)));
    sim_free(&a), sim_free(&b);
}

/* DualPipe's fused F&B pair: max((F + BW - their all-to-alls) x 132 / 112, the all-to-alls),
 * overlap_fb_ms overriding it; on DeepSeek-V3 it beats 1F1B by more than the bubble does,
 * the more the larger the all-to-all, and with expert = 1 (no all-to-all) the pairs are plain
 * sums and only the bubble's difference is left. */
static void test_dualpipe_hides_the_alltoall(void **state) {
    (void)state;
    Sim dual;
    sim_run_file(&dual, DSV3, NULL, 0);
    const CostModel *c = &dual.c;
    assert_true(fabs(c->overlap_slowdown - 132.0 / 112.0) < 1e-15);
    for (int32_t st = 1; st < 3; st++) {
        int64_t f = cost_op_ns(c, st, OP_F), bw = cost_op_ns(c, st, OP_BW);
        int64_t af = cost_a2a_ns(c, st, OP_F), ab = cost_a2a_ns(c, st, OP_BW);
        assert_true(af > 0 && ab > 0);
        double compute = (double)(f + bw - af - ab) * 132.0 / 112.0;
        double want = compute > (double)(af + ab) ? compute : (double)(af + ab);
        assert_true(fabs((double)cost_fused_ns(c, st, OP_F, st, OP_BW) - want) <= 1);
        assert_true(cost_fused_ns(c, st, OP_F, st, OP_BW) < f + bw); // the overlap gains
    }
    Sim over;
    const char *ov[] = {"costs.overlap_fb_ms=30"};
    sim_run_file(&over, DSV3, ov, 1);
    assert_int_equal(cost_fused_ns(&over.c, 1, OP_F, 1, OP_BW), 15000000); // 30 ms / 2 chunks
    const char *f1[] = {"pipeline.schedule=1f1b", "pipeline.chunks=1"};
    Sim one;
    sim_run_file(&one, DSV3, f1, 2);
    double gain = one.mt.makespan_ms / dual.mt.makespan_ms;
    const char *dense_e[] = {"parallel.expert=1"}, *dense_f1[] = {"parallel.expert=1",
                                                                  "pipeline.schedule=1f1b",
                                                                  "pipeline.chunks=1"};
    Sim dual1, one1;
    sim_run_file(&dual1, DSV3, dense_e, 1);
    sim_run_file(&one1, DSV3, dense_f1, 3);
    for (int32_t st = 0; st < dual1.c.stages; st++)
        assert_int_equal(cost_fused_ns(&dual1.c, st, OP_F, st, OP_BW),
                         cost_op_ns(&dual1.c, st, OP_F) + cost_op_ns(&dual1.c, st, OP_BW));
    double gain_free = one1.mt.makespan_ms / dual1.mt.makespan_ms;
    // without node-limited routing twice the bytes cross the network: more to hide
    const char *big_d[] = {"parallel.expert_node_limit=0"}, *big_f1[] = {"parallel.expert_node_limit=0",
                                                                        "pipeline.schedule=1f1b",
                                                                        "pipeline.chunks=1"};
    Sim dual2, one2;
    sim_run_file(&dual2, DSV3, big_d, 1);
    sim_run_file(&one2, DSV3, big_f1, 3);
    double gain_big = one2.mt.makespan_ms / dual2.mt.makespan_ms;
    print_message("DeepSeek-V3: 1F1B / DualPipe %.4f without node-limited routing, %.4f with it, "
                  "%.4f without all-to-all\n", gain_big, gain, gain_free);
    assert_true(gain_big > gain && gain > gain_free); // the more all-to-all, the more DualPipe gains
    assert_true(gain > 1.1 * gain_free);
    assert_true(gain_free > 0.9 && gain_free < 1.1); // without it only the bubbles differ
    sim_free(&dual), sim_free(&over), sim_free(&one), sim_free(&dual1), sim_free(&one1);
    sim_free(&dual2), sim_free(&one2);
}

/* The expert all-to-alls' places inside an op (what psim's expert rows show, sim/run's
 * tensor_rows): 2 per MoE layer of the stage in F and in BW, one after another inside the op,
 * each as long as the formula, with the bytes a rank sends. */
static void test_expert_rows(void **state) {
    (void)state;
    Sim x;
    sim_run_file(&x, MIXTRAL, NULL, 0);
    CostSpan sp[64];
    int n = cost_op_allreduces(&x.s, &x.pl, 1, OP_F, sp, 64);
    assert_int_equal(n, 16);
    double bytes = 4096.0 * 2 * 4096 * 2, want = cost_alltoall_ns(&x.s, bytes);
    for (int i = 0; i < n; i++) {
        assert_int_equal(sp[i].kernel, LK_ALLTOALL);
        assert_true(sp[i].bytes == bytes && fabs(sp[i].ns - want) < 1e-9 * want);
        if (i) assert_true(sp[i].start_ns > sp[i - 1].start_ns + sp[i - 1].ns);
    }
    assert_true(sp[n - 1].start_ns + sp[n - 1].ns < (double)cost_op_ns(&x.c, 1, OP_F));
    assert_int_equal(cost_op_allreduces(&x.s, &x.pl, 1, OP_BW, sp, 64), 16);
    assert_int_equal(cost_op_allreduces(&x.s, &x.pl, 1, OP_W, sp, 64), 0);
    sim_free(&x);
}

/* One GPU holds 1/e of each MoE layer's routed experts; ZeRO-1 shards their optimizer state
 * over the d/e GPUs holding the same experts, the rest over all d. */
static void test_memory_with_expert_parallelism(void **state) {
    (void)state;
    const char *e1[] = {"parallel.expert=1"};
    Sim a, b;
    sim_run_file(&a, MIXTRAL, NULL, 0); // e = 8, d = 16, 8 MoE layers a stage
    sim_run_file(&b, MIXTRAL, e1, 1);
    const ScnModel *m = &a.s.model;
    double experts = memory_moe_expert_params(m), layer = memory_moe_layer_params(m);
    assert_true(experts == 8.0 * 3 * 4096 * 14336);
    double other = 8 * (layer - experts), mine = 8 * experts / 8;
    assert_near_rel(a.mt.dev[1].weights_gib * GIB, 2 * (other + mine), 1e-12, "weights, e = 8");
    assert_near_rel(b.mt.dev[1].weights_gib * GIB, 2 * (other + 8 * experts), 1e-12, "weights, e = 1");
    assert_near_rel(a.mt.dev[1].optimizer_gib * GIB, 12 * other / 16 + 12 * mine / 2, 1e-12,
                    "ZeRO-1 optimizer, e = 8");
    assert_near_rel(b.mt.dev[1].optimizer_gib * GIB, 12 * (other + 8 * experts) / 16, 1e-12,
                    "ZeRO-1 optimizer, e = 1");
    sim_free(&a), sim_free(&b);
}

/* The straggler: the rank holding the hottest expert (share hot of the routed tokens) gets
 * e (hot + (E/e - 1)(1 - hot)/(E - 1)) of the balanced load; its expert GEMMs and all-to-alls
 * scale by it; capacity_factor pads every expert to cf x the balanced share instead. */
static void test_imbalance(void **state) {
    (void)state;
    Scenario s;
    const char *hot[] = {"model.expert_hot_share=0.02"};
    load(&s, DSV3, hot, 1);
    double w = 64 * (0.02 + (256.0 / 64 - 1) * 0.98 / 255);
    assert_true(fabs(cost_expert_work(&s) - w) < 1e-12);
    LayerShape sh = cost_moe_shape(&s);
    LayerOp ops[LAYER_OPS_MAX];
    int n = layer_ops(&sh, OP_F, ops), scaled = 0;
    for (int i = 0; i < n; i++)
        if (strncmp(ops[i].name, "experts_", 8) == 0 && ops[i].kernel == LK_GEMM)
            scaled += fabs(ops[i].work - w) < 1e-6;
    assert_int_equal(scaled, 2);
    s.parallel.expert = 1; // one GPU computes every expert: no straggler
    assert_true(cost_expert_work(&s) == 1);
    s.model.expert_hot_share = 0, s.model.capacity_factor = 1.25;
    assert_true(cost_expert_work(&s) == 1.25);
    scenario_free(&s);
    Sim a, b;
    sim_run_file(&a, DSV3, NULL, 0);
    sim_run_file(&b, DSV3, hot, 1);
    assert_true(cost_op_ns(&b.c, 1, OP_F) > cost_op_ns(&a.c, 1, OP_F));
    assert_true(cost_a2a_ns(&b.c, 1, OP_F) > 1.9 * (double)cost_a2a_ns(&a.c, 1, OP_F));
    assert_true(b.mt.makespan_ms > a.mt.makespan_ms);
    sim_free(&a), sim_free(&b);
}

/* Bytes per kernel of the MoE block (bf16 activations and weights, fp32 router logits), one
 * rank of Mixtral with e = 8 (E/e = 1 local expert of T k e / E = 8192 tokens), and an MoE
 * layer's kept activations over the dense layer's: 4E + k (4h + 6 f_e) + 6 s f_e - 6 f bytes a
 * token (SwiGLU, no recomputation). */
static void test_moe_bytes_and_activations(void **state) {
    (void)state;
    Scenario s;
    load(&s, MIXTRAL, NULL, 0);
    LayerShape sh = cost_moe_shape(&s);
    LayerOp ops[LAYER_OPS_MAX];
    int n = layer_ops(&sh, OP_F, ops), seen = 0;
    double T = 4096, h = 4096, E = 8, k = 2, fe = 14336, Tk = T * k;
    for (int i = 0; i < n; i++) {
        const LayerOp *o = &ops[i];
        double want = -1;
        if (!strcmp(o->name, "router")) want = 2 * (T * h + h * E) + 4 * T * E;
        if (!strcmp(o->name, "route_topk")) want = 4 * T * E + 8 * T * k;
        if (!strcmp(o->name, "dispatch_permute")) want = 2 * T * h + 2 * Tk * h;
        if (!strcmp(o->name, "dispatch_alltoall") || !strcmp(o->name, "combine_alltoall")) want = 2 * Tk * h;
        if (!strcmp(o->name, "experts_up")) want = 2 * (Tk * h + h * 2 * fe + Tk * 2 * fe);
        if (!strcmp(o->name, "experts_down")) want = 2 * (Tk * fe + fe * h + Tk * h);
        if (!strcmp(o->name, "combine")) want = 2 * Tk * h + 2 * T * h; // no shared expert
        if (want < 0) continue;
        seen++;
        if (o->bytes != want) fail_msg("%s: %.17g bytes, want %.17g", o->name, o->bytes, want);
    }
    assert_int_equal(seen, 8);
    s.model.recompute = RECOMPUTE_NONE;
    double extra = 4 * E + k * (4 * h + 6 * fe) - 6 * 14336.0;
    double got = memory_moe_layer_activation_bytes(&s.model, 1, 1) - memory_layer_activation_bytes(&s.model, 1);
    assert_true(fabs(got - T * extra) <= 1e-12 * T * extra);
    s.model.recompute = RECOMPUTE_FULL; // only the layer's input, as a dense layer
    assert_true(memory_moe_layer_activation_bytes(&s.model, 1, 1) == memory_layer_activation_bytes(&s.model, 1));
    scenario_free(&s);
}

/* pplan's space for an MoE model: t = 1 only, and each configuration once per power of two e
 * dividing both experts (8) and d; e is set on every point (a dense model's points set none). */
static void test_search_space(void **state) {
    (void)state;
    Scenario s;
    load(&s, MIXTRAL, NULL, 0);
    SearchSpace sp = {.gpus = 64, .global_batch = 256, .schedules = "1f1b", .zero = "0,1"};
    SearchPoint *pts;
    size_t n;
    char err[256];
    assert_int_equal(search_enumerate(&s, &sp, &pts, &n, err, sizeof err), 0);
    size_t ones = 0, want = 0;
    for (size_t i = 0; i < n; i++) {
        const SearchConfig *c = &pts[i].cfg;
        assert_int_equal(c->tensor, 1);
        assert_true(c->expert >= 1 && 8 % c->expert == 0 && c->data % c->expert == 0);
        assert_true((c->expert & (c->expert - 1)) == 0);
        if (c->expert != 1) continue;
        ones++;
        for (int64_t e = 1; e <= 8; e *= 2) want += c->data % e == 0;
    }
    assert_true(ones > 0);
    assert_int_equal(n, want);
    char sets[SEARCH_NSETS][SEARCH_SET_MAX];
    int k = search_point_sets(&pts[n - 1].cfg, sets);
    char last[SEARCH_SET_MAX];
    snprintf(last, sizeof last, "parallel.expert=%d", pts[n - 1].cfg.expert);
    assert_string_equal(sets[k - 1], last);
    free(pts);
    s.model.experts = 0, s.parallel.expert = 1; // dense: no e, and t > 1 searched
    assert_int_equal(search_enumerate(&s, &sp, &pts, &n, err, sizeof err), 0);
    int any_t = 0;
    for (size_t i = 0; i < n; i++) any_t |= pts[i].cfg.tensor > 1, assert_int_equal(pts[i].cfg.expert, 0);
    assert_true(any_t);
    assert_int_equal(search_point_sets(&pts[0].cfg, sets), SEARCH_NSETS - 1);
    free(pts);
    scenario_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_published_parameter_counts),
        cmocka_unit_test(test_moe_flops_closed_form),
        cmocka_unit_test(test_alltoall_by_placement),
        cmocka_unit_test(test_1f1b_pays_the_alltoall_exposed),
        cmocka_unit_test(test_dualpipe_hides_the_alltoall),
        cmocka_unit_test(test_expert_rows),
        cmocka_unit_test(test_memory_with_expert_parallelism),
        cmocka_unit_test(test_imbalance),
        cmocka_unit_test(test_moe_bytes_and_activations),
        cmocka_unit_test(test_search_space),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
