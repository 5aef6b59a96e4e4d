/* tests/test_exec.c: pexec's executor core on its CPU threads backend (exec/exec.h). Every
 * schedule, pipelined over threads, gives
 * the weight gradients of the same model run on one device (the pipeline moves the right
 * tensors); the measured timeline has a row per op in each device's program order and a send
 * and a receive per transfer; a dropped send trips the watchdog and a misordered receive is
 * caught, each with a message naming the op. Data and tensor parallelism: t = 2 tensor ranks'
 * shards hold the t = 1 gradients, bit for bit the same in every run; d = 2 replicas of m
 * micro-batches hold, after their all-reduce, one replica's gradients of 2m; the SGD step is
 * w - lr g; the timeline has exactly the tensor, all-reduce and optimizer rows the design
 * says. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "exec/exec.h"
#include "sim/sched/schedule.h"

static const LayerShape SHAPE = {.samples = 1, .seq = 4, .hidden = 8, .heads = 2, .ffn = 16,
                                 .dropout = 0.1f};
#define LAYERS 4

/* A plan of LAYERS layers split evenly over p*v stages. */
static Plan plan(int32_t p, int32_t v) {
    Plan pl = {.devices = p, .chunks = v, .stages = p * v, .pipes = 1, .gpus_per_node = 8};
    pl.layers = calloc((size_t)pl.stages, sizeof *pl.layers);
    pl.first_layer = calloc((size_t)pl.stages, sizeof *pl.first_layer);
    assert_non_null(pl.layers);
    assert_non_null(pl.first_layer);
    for (int32_t st = 0; st < pl.stages; st++)
        pl.layers[st] = LAYERS / pl.stages, pl.first_layer[st] = st * (LAYERS / pl.stages);
    return pl;
}

static void build(const char *name, int32_t p, int32_t v, int32_t m, int32_t k, Program *pr) {
    SchedParams sp = {.devices = p, .chunks = v, .micro_batches = m, .iterations = k};
    SchedIssue issue;
    char why[512];
    assert_int_equal(sched_find(name)->build(&sp, pr, &issue), 0);
    assert_int_equal(program_check(pr, why, sizeof why), 0);
}

static Exec *create(const ExecSpec *spec) {
    Exec *ex;
    char why[512];
    if (exec_create(spec, &exec_cpu_threads, &ex, why, sizeof why) != 0) fail_msg("%s", why);
    return ex;
}

static Exec *start(const Program *pr, const Plan *pl, int32_t iterations, int32_t drop) {
    ExecSpec spec = {.pr = pr, .pl = pl, .shape = SHAPE, .seed = 42,
                     .iterations = iterations, .watchdog_s = 0.2, .drop_send_of = drop};
    return create(&spec);
}

/* The gradients of global layer g (0..LAYERS-1) in a run of plan pl, into out. */
static const Layer *global_layer(Exec *ex, const Plan *pl, int32_t g, Layer *out) {
    char why[512];
    assert_int_equal(layer_init(out, &SHAPE, 0), 0);
    for (int32_t st = 0; st < pl->stages; st++)
        if (g >= pl->first_layer[st] && g < pl->first_layer[st] + pl->layers[st]) {
            if (exec_grads(ex, st, (int32_t)(g - pl->first_layer[st]), out, why, sizeof why))
                fail_msg("%s", why);
            return out;
        }
    fail_msg("no stage holds layer %d", g);
    return NULL;
}

static void expect_same_grads(const Layer *a, const Layer *b, int32_t g, const char *name) {
    for (int w = 0; w < LAYER_WEIGHTS; w++) {
        const float *x = a->g[w], *y = b->g[w];
        for (int64_t i = 0; i < layer_buf_elems(&SHAPE, (LayerBuf)(LB_FIRST_GRAD + w)); i++)
            if (fabsf(x[i] - y[i]) > 1e-5f + 1e-4f * fabsf(y[i]))
                fail_msg("%s: layer %d weight %d [%lld]: %g vs one device %g", name, g, w,
                         (long long)i, (double)x[i], (double)y[i]);
    }
}

/* ---- data and tensor parallelism ---- */

/* Element e of tensor rank r's shard of weight w (of t ranks, shape sh) in the whole layer's
 * weight (Megatron: Wqkv's q, k, v blocks and W1 by columns, Wo and W2 by rows; the layer
 * norms replicated). */
static int64_t whole_index(const LayerShape *sh, int w, int32_t r, int64_t e) {
    int64_t h = sh->hidden, f = sh->ffn, t = sh->tensor, hq = h / t, fl = f / t;
    switch (LB_FIRST_WEIGHT + w) {
    case LB_WQKV: {
        int64_t i = e / (3 * hq), j = e % (3 * hq);
        return i * 3 * h + (j / hq) * h + r * hq + j % hq;
    }
    case LB_WO: return (r * hq + e / h) * h + e % h;
    case LB_W1: return (e / fl) * f + r * fl + e % fl;
    case LB_W2: return (r * fl + e / h) * h + e % h;
    default: return e;
    }
}

static Exec *start_parallel(const Program *pr, const Plan *pl, int32_t d, int32_t t, int tail,
                            float lr, float dropout, int32_t iterations) {
    ExecSpec spec = {.pr = pr, .pl = pl, .shape = SHAPE, .seed = 42, .iterations = iterations,
                     .watchdog_s = 5, .drop_send_of = -1, .data = d, .tensor = t,
                     .tail = tail, .lr = lr};
    spec.shape.dropout = dropout;
    return create(&spec);
}

/* Stage st's k-th layer as (replica, context rank crank, trank) holds it, into out (allocated
 * here); layer_read: context rank 0's. */
static void layer_read_at(Exec *ex, int32_t replica, int32_t crank, int32_t trank, int32_t st,
                          int32_t k, Layer *out) {
    char why[512];
    LayerShape sh = exec_shape(ex, trank);
    assert_int_equal(layer_init(out, &sh, 0), 0);
    if (exec_layer_of(ex, replica, crank, trank, st, k, out, why, sizeof why) != 0)
        fail_msg("%s", why);
}

static void layer_read(Exec *ex, int32_t replica, int32_t trank, int32_t st, int32_t k,
                       Layer *out) {
    layer_read_at(ex, replica, 0, trank, st, k, out);
}

/* t = 2 against t = 1 (1F1B and interleaved, p = 2, dropout on): every shard's gradients are
 * the whole layer's at its elements within 1e-5 + 1e-4 |g| (fp32 sums in another order), and
 * a second t = 2 run gives the same bits (the all-reduce sums in rank order). */
static void test_tensor_ranks_match_one(void **state) {
    (void)state;
    static const struct { const char *name; int32_t v; } cases[] = {{"1f1b", 1},
                                                                    {"interleaved", 2}};
    char why[512];
    double most = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        Program pr;
        Plan pl = plan(2, cases[c].v);
        build(cases[c].name, 2, cases[c].v, 4, 1, &pr);
        Exec *one = start_parallel(&pr, &pl, 1, 1, 0, 0, 0.1f, 1);
        Exec *two = start_parallel(&pr, &pl, 1, 2, 0, 0, 0.1f, 1);
        Exec *again = start_parallel(&pr, &pl, 1, 2, 0, 0, 0.1f, 1);
        Timeline t1 = {0}, t2 = {0}, t3 = {0};
        assert_int_equal(exec_run(one, &t1, why, sizeof why), 0);
        if (exec_run(two, &t2, why, sizeof why) != 0) fail_msg("%s", why);
        if (exec_run(again, &t3, why, sizeof why) != 0) fail_msg("%s", why);
        for (int32_t st = 0; st < pl.stages; st++)
            for (int32_t k = 0; k < pl.layers[st]; k++) {
                Layer whole;
                layer_read(one, 0, 0, st, k, &whole);
                for (int32_t r = 0; r < 2; r++) {
                    Layer a, b;
                    layer_read(two, 0, r, st, k, &a);
                    layer_read(again, 0, r, st, k, &b);
                    for (int w = 0; w < LAYER_WEIGHTS; w++)
                        for (int64_t e = 0; e < layer_buf_elems(&a.sh, (LayerBuf)(LB_FIRST_GRAD + w)); e++) {
                            float x = a.g[w][e], y = whole.g[w][whole_index(&a.sh, w, r, e)];
                            if (fabsf(x - y) > most) most = fabsf(x - y);
                            if (fabsf(x - y) > 1e-5f + 1e-4f * fabsf(y))
                                fail_msg("%s: stage %d layer %d rank %d weight %d [%lld]: %g, "
                                         "t = 1 %g", cases[c].name, st, k, r, w, (long long)e,
                                         (double)x, (double)y);
                            if (memcmp(&a.g[w][e], &b.g[w][e], sizeof(float)) != 0)
                                fail_msg("%s: two t = 2 runs differ", cases[c].name);
                        }
                    layer_free(&a), layer_free(&b);
                }
                layer_free(&whole);
            }
        timeline_free(&t1), timeline_free(&t2), timeline_free(&t3);
        exec_free(one), exec_free(two), exec_free(again);
        program_free(&pr), plan_free(&pl);
    }
    print_message("max |t=2 - t=1| weight gradient: %.3g\n", most);
}

/* d = 2 replicas of m = 2 micro-batches with the tail (lr 0: the weights stay): after the
 * all-reduce both replicas hold, bit for bit, the same gradients, which are one replica's of
 * m = 4 (the same samples) within 1e-5 + 1e-4 |g|; with t = 2 as well, each shard's. */
static void test_replicas_sum(void **state) {
    (void)state;
    char why[512];
    for (int32_t t = 1; t <= 2; t++) {
        Program p2, p4;
        Plan pl = plan(2, 1);
        build("1f1b", 2, 1, 2, 1, &p2);
        build("1f1b", 2, 1, 4, 1, &p4);
        Exec *dp = start_parallel(&p2, &pl, 2, t, 1, 0, 0.1f, 1);
        Exec *big = start_parallel(&p4, &pl, 1, t, 0, 0, 0.1f, 1);
        Timeline ta = {0}, tb = {0};
        if (exec_run(dp, &ta, why, sizeof why) != 0) fail_msg("%s", why);
        if (exec_run(big, &tb, why, sizeof why) != 0) fail_msg("%s", why);
        for (int32_t st = 0; st < 2; st++)
            for (int32_t k = 0; k < pl.layers[st]; k++)
                for (int32_t r = 0; r < t; r++) {
                    Layer a, b, ref;
                    layer_read(dp, 0, r, st, k, &a);
                    layer_read(dp, 1, r, st, k, &b);
                    layer_read(big, 0, r, st, k, &ref);
                    for (int w = 0; w < LAYER_WEIGHTS; w++) {
                        int64_t n = layer_buf_elems(&a.sh, (LayerBuf)(LB_FIRST_GRAD + w));
                        if (memcmp(a.g[w], b.g[w], (size_t)n * sizeof(float)) != 0)
                            fail_msg("t = %d: the replicas' gradients differ after the "
                                     "all-reduce", t);
                        for (int64_t e = 0; e < n; e++)
                            if (fabsf(a.g[w][e] - ref.g[w][e]) > 1e-5f + 1e-4f * fabsf(ref.g[w][e]))
                                fail_msg("t = %d stage %d layer %d weight %d [%lld]: %g, m = 4 "
                                         "%g", t, st, k, w, (long long)e, (double)a.g[w][e],
                                         (double)ref.g[w][e]);
                    }
                    layer_free(&a), layer_free(&b), layer_free(&ref);
                }
        timeline_free(&ta), timeline_free(&tb);
        exec_free(dp), exec_free(big);
        program_free(&p2), program_free(&p4), plan_free(&pl);
    }
}

/* The SGD step: after one iteration every weight is its initial value (layer_init of the same
 * seed and shard) minus lr g, g the all-reduced gradient read back, within 1e-6 (1 + |w|)
 * (the same float expression; the bound allows a compiler's fused multiply-add), and some
 * weight moved. Without dropout, two iterations with lr 0 leave one iteration's gradients
 * (each starts from zero). */
static void test_sgd_step(void **state) {
    (void)state;
    char why[512];
    const float lr = 0.01f;
    Program pr;
    Plan pl = plan(2, 1);
    build("1f1b", 2, 1, 2, 1, &pr);
    Exec *ex = start_parallel(&pr, &pl, 2, 2, 1, lr, 0.1f, 1);
    Timeline tl = {0};
    if (exec_run(ex, &tl, why, sizeof why) != 0) fail_msg("%s", why);
    int moved = 0;
    for (int32_t st = 0; st < 2; st++)
        for (int32_t k = 0; k < pl.layers[st]; k++)
            for (int32_t rep = 0; rep < 2; rep++)
                for (int32_t r = 0; r < 2; r++) {
                    Layer now, init;
                    LayerShape sh = exec_shape(ex, r);
                    layer_read(ex, rep, r, st, k, &now);
                    assert_int_equal(layer_init(&init, &sh, 42 + (uint64_t)pl.first_layer[st] + k), 0);
                    for (int w = 0; w < LAYER_WEIGHTS; w++)
                        for (int64_t e = 0; e < layer_buf_elems(&sh, (LayerBuf)(LB_FIRST_WEIGHT + w)); e++) {
                            float want = init.w[w][e] - lr * now.g[w][e];
                            if (fabsf(now.w[w][e] - want) > 1e-6f * (1 + fabsf(want)))
                                fail_msg("stage %d layer %d replica %d rank %d weight %d [%lld]: "
                                         "%.9g, w0 - lr g = %.9g", st, k, rep, r, w,
                                         (long long)e, (double)now.w[w][e], (double)want);
                            moved += now.w[w][e] != init.w[w][e];
                        }
                    layer_free(&now), layer_free(&init);
                }
    assert_true(moved > 0);
    timeline_free(&tl);
    exec_free(ex);
    Exec *one = start_parallel(&pr, &pl, 2, 1, 1, 0, 0, 1);
    Exec *two = start_parallel(&pr, &pl, 2, 1, 1, 0, 0, 2);
    Timeline t1 = {0}, t2 = {0};
    assert_int_equal(exec_run(one, &t1, why, sizeof why), 0);
    assert_int_equal(exec_run(two, &t2, why, sizeof why), 0);
    for (int32_t st = 0; st < 2; st++) {
        Layer a, b;
        layer_read(one, 0, 0, st, 0, &a);
        layer_read(two, 0, 0, st, 0, &b);
        for (int w = 0; w < LAYER_WEIGHTS; w++)
            assert_memory_equal(a.g[w], b.g[w], (size_t)layer_buf_elems(&a.sh,
                                (LayerBuf)(LB_FIRST_GRAD + w)) * sizeof(float));
        layer_free(&a), layer_free(&b);
    }
    timeline_free(&t1), timeline_free(&t2);
    exec_free(one), exec_free(two);
    program_free(&pr), plan_free(&pl);
}

/* The rows of 1F1B p = 2, m = 2, d = 2, t = 2, two layers a stage, with the tail, two
 * iterations (replica 0's tensor rank 0 only): per iteration, 4 compute rows a device, 2
 * transfers each way a hop (4 send and 4 recv rows), 2 tensor rows per layer in each F and
 * BW (2 x 2 x 4 = 16 a device), one allreduce row a device (v = 1) after its last BW, and one
 * optimizer row a device after that; each tensor row inside its op's compute row. */
static void test_parallel_rows(void **state) {
    (void)state;
    char why[512];
    Program pr;
    Plan pl = plan(2, 1);
    build("1f1b", 2, 1, 2, 1, &pr);
    Exec *ex = start_parallel(&pr, &pl, 2, 2, 1, 0.001f, 0.1f, 2);
    Timeline tl = {0};
    if (exec_run(ex, &tl, why, sizeof why) != 0) fail_msg("%s", why);
    int n[STREAM_COUNT] = {0};
    for (size_t i = 0; i < tl.n; i++) n[tl.ops[i].stream]++;
    assert_int_equal(n[STREAM_COMPUTE], 2 * 2 * 4);
    assert_int_equal(n[STREAM_SEND], 2 * 4);
    assert_int_equal(n[STREAM_RECV], 2 * 4);
    assert_int_equal(n[STREAM_TENSOR], 2 * 2 * 16);
    assert_int_equal(n[STREAM_COLLECTIVE], 2 * 2);
    assert_int_equal(n[STREAM_OPTIMIZER], 2 * 2);
    assert_int_equal(tl.n, 2 * (8 + 4 + 4 + 32 + 2 + 2));
    for (size_t i = 0; i < tl.n; i++) {
        const TimelineOp *r = &tl.ops[i];
        assert_true(r->device >= 0 && r->device < 2);
        if (r->stream == STREAM_TENSOR) {
            int inside = 0;
            for (size_t j = 0; j < tl.n && !inside; j++) {
                const TimelineOp *c = &tl.ops[j];
                inside = c->stream == STREAM_COMPUTE && c->device == r->device &&
                         c->micro_batch == r->micro_batch && c->kind == r->kind &&
                         c->start_ns <= r->start_ns && r->end_ns <= c->end_ns;
            }
            assert_true(inside);
            assert_true(r->kind == OP_F || r->kind == OP_BW);
            assert_int_equal(r->bytes, (int64_t)SHAPE.seq * SHAPE.hidden * 4);
        }
        if (r->stream == STREAM_COLLECTIVE || r->stream == STREAM_OPTIMIZER) {
            int64_t last = 0; // after the device's compute of that iteration
            for (size_t j = 0; j < tl.n; j++)
                if (tl.ops[j].stream == STREAM_COMPUTE && tl.ops[j].device == r->device &&
                    tl.ops[j].micro_batch / 2 == r->micro_batch / 2 && tl.ops[j].end_ns > last)
                    last = tl.ops[j].end_ns;
            assert_true(r->start_ns >= last);
            assert_int_equal(r->kind, OP_BW);
            assert_int_equal(r->micro_batch % 2, 0);
        }
    }
    timeline_free(&tl);
    exec_free(ex);
    program_free(&pr), plan_free(&pl);
}

/* Bad parallel input: t must divide heads and ffn (status 2, saying so). */
static void test_parallel_bad_tensor(void **state) {
    (void)state;
    Program pr;
    Plan pl = plan(1, 1);
    build("1f1b", 1, 1, 1, 1, &pr);
    ExecSpec spec = {.pr = &pr, .pl = &pl, .shape = SHAPE, .seed = 42, .iterations = 1,
                     .watchdog_s = 1, .drop_send_of = -1, .tensor = 3};
    Exec *ex;
    char why[512];
    assert_int_equal(exec_create(&spec, &exec_cpu_threads, &ex, why, sizeof why), 2);
    assert_null(ex);
    if (!strstr(why, "parallel.tensor = 3 must divide model.heads (2)")) fail_msg("got '%s'", why);
    program_free(&pr), plan_free(&pl);
}

/* ---- context parallelism ---- */

/* 1F1B p = 2, m = 4 on c context ranks (and t tensor ranks), dropout on; with the tail at lr 0
 * (the gradients summed over the context ranks, the weights left alone). */
static Exec *start_context(const Program *pr, const Plan *pl, int32_t c, int32_t t, int tail) {
    ExecSpec spec = {.pr = pr, .pl = pl, .shape = SHAPE, .seed = 42, .iterations = 1,
                     .watchdog_s = 5, .drop_send_of = -1, .tensor = t, .context = c,
                     .tail = tail, .lr = 0};
    return create(&spec);
}

/* c = 2 context ranks, alone and with t = 2: after the gradients' sum over the two context
 * ranks (each saw its two zigzag chunks of every sample) both hold, bit for bit, the same
 * gradients, which are the c = 1 run's within 1e-5 + 1e-4 |g| (fp32 sums in another order);
 * the rows are c = 1's (the same compute, transfer and tensor rows: the K/V exchange has
 * none, as psim places none) plus the tail's, and each transfer moves half the tokens. */
static void test_context_ranks_match_one(void **state) {
    (void)state;
    char why[512];
    for (int32_t t = 1; t <= 2; t++) {
        Program pr;
        Plan pl = plan(2, 1);
        build("1f1b", 2, 1, 4, 1, &pr);
        Exec *one = start_context(&pr, &pl, 1, t, 0), *cp = start_context(&pr, &pl, 2, t, 1);
        Timeline t1 = {0}, t2 = {0};
        if (exec_run(one, &t1, why, sizeof why) != 0) fail_msg("%s", why);
        if (exec_run(cp, &t2, why, sizeof why) != 0) fail_msg("%s", why);
        for (int32_t st = 0; st < 2; st++)
            for (int32_t k = 0; k < pl.layers[st]; k++)
                for (int32_t r = 0; r < t; r++) {
                    Layer ref, a, b;
                    layer_read(one, 0, r, st, k, &ref);
                    layer_read_at(cp, 0, 0, r, st, k, &a);
                    layer_read_at(cp, 0, 1, r, st, k, &b);
                    for (int w = 0; w < LAYER_WEIGHTS; w++) {
                        int64_t n = layer_buf_elems(&a.sh, (LayerBuf)(LB_FIRST_GRAD + w));
                        if (memcmp(a.g[w], b.g[w], (size_t)n * sizeof(float)) != 0)
                            fail_msg("t = %d: the context ranks' gradients differ after the "
                                     "sum", t);
                        for (int64_t e = 0; e < n; e++)
                            if (fabsf(a.g[w][e] - ref.g[w][e]) > 1e-5f + 1e-4f * fabsf(ref.g[w][e]))
                                fail_msg("t = %d stage %d layer %d weight %d [%lld]: c = 2 %g, "
                                         "c = 1 %g", t, st, k, w, (long long)e,
                                         (double)a.g[w][e], (double)ref.g[w][e]);
                    }
                    layer_free(&ref), layer_free(&a), layer_free(&b);
                }
        int n1[STREAM_COUNT] = {0}, n2[STREAM_COUNT] = {0};
        for (size_t i = 0; i < t1.n; i++) n1[t1.ops[i].stream]++;
        for (size_t i = 0; i < t2.n; i++) {
            n2[t2.ops[i].stream]++;
            if (t2.ops[i].stream == STREAM_SEND)
                assert_int_equal(t2.ops[i].bytes, (int64_t)SHAPE.seq / 2 * SHAPE.hidden * 4);
        }
        for (int k = 0; k < STREAM_COUNT; k++)
            assert_int_equal(n2[k], n1[k] + (k == STREAM_COLLECTIVE || k == STREAM_OPTIMIZER) * 2);
        // 2 devices x 4 micro-batches x (F, BW) x 2 layers x 2 all-reduces
        assert_int_equal(n1[STREAM_TENSOR], t > 1 ? 2 * 4 * 2 * 2 * 2 : 0);
        timeline_free(&t1), timeline_free(&t2);
        exec_free(one), exec_free(cp);
        program_free(&pr), plan_free(&pl);
    }
}

/* Bad context input: 2c must divide the sequence (status 2, saying so). */
static void test_context_bad_split(void **state) {
    (void)state;
    Program pr;
    Plan pl = plan(1, 1);
    build("1f1b", 1, 1, 1, 1, &pr);
    ExecSpec spec = {.pr = &pr, .pl = &pl, .shape = SHAPE, .seed = 42, .iterations = 1,
                     .watchdog_s = 1, .drop_send_of = -1, .context = 4};
    Exec *ex;
    char why[512];
    assert_int_equal(exec_create(&spec, &exec_cpu_threads, &ex, why, sizeof why), 2);
    assert_null(ex);
    if (!strstr(why, "parallel.context = 4 splits each sample into 2 x 4 chunks, but seq_len = 4"))
        fail_msg("got '%s'", why);
    program_free(&pr), plan_free(&pl);
}

static void test_pipelines_match_one_device(void **state) {
    (void)state;
    static const struct { const char *name; int32_t p, v, m; } cases[] = {
        {"gpipe", 2, 1, 4},       {"1f1b", 4, 1, 4},  {"interleaved", 2, 2, 4},
        {"zb-h1", 2, 1, 4},       {"zb-h2", 4, 1, 4}, {"zb-v", 2, 2, 4},
        {"dualpipev", 2, 2, 4},   {"pipedream", 2, 1, 4}, {"zb-1p", 2, 1, 4},
        {"zb-2p", 4, 1, 4}};
    char why[512];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int32_t m = cases[c].m;
        Program one, many;
        Plan pl1 = plan(1, 1), pln = plan(cases[c].p, cases[c].v);
        build("1f1b", 1, 1, m, 1, &one);
        build(cases[c].name, cases[c].p, cases[c].v, m, 1, &many);
        Exec *r1 = start(&one, &pl1, 1, -1), *rn = start(&many, &pln, 1, -1);
        Timeline t1 = {0}, tn = {0};
        assert_int_equal(exec_run(r1, &t1, why, sizeof why), 0);
        if (exec_run(rn, &tn, why, sizeof why) != 0) fail_msg("%s: %s", cases[c].name, why);
        for (int32_t g = 0; g < LAYERS; g++) {
            Layer a, b;
            expect_same_grads(global_layer(rn, &pln, g, &a), global_layer(r1, &pl1, g, &b), g,
                              cases[c].name);
            layer_free(&a), layer_free(&b);
        }
        timeline_free(&t1), timeline_free(&tn);
        exec_free(r1), exec_free(rn);
        program_free(&one), program_free(&many);
        plan_free(&pl1), plan_free(&pln);
    }
}

static int by_start(const void *a, const void *b) {
    const TimelineOp *x = a, *y = b;
    if (x->device != y->device) return x->device - y->device;
    return (x->start_ns > y->start_ns) - (x->start_ns < y->start_ns);
}

static void test_timeline_rows(void **state) {
    (void)state; // 1F1B, p = 4, m = 3, two iterations: rows per op, per transfer, in order
    Program pr;
    Plan pl = plan(4, 1);
    build("1f1b", 4, 1, 3, 1, &pr);
    Exec *rt = start(&pr, &pl, 2, -1);
    Timeline tl = {0};
    char why[512];
    assert_int_equal(exec_run(rt, &tl, why, sizeof why), 0);
    TimelineOp *compute = malloc(tl.n * sizeof *compute);
    size_t nc = 0, sends = 0, recvs = 0;
    for (size_t i = 0; i < tl.n; i++) {
        assert_true(tl.ops[i].start_ns >= 0 && tl.ops[i].end_ns >= tl.ops[i].start_ns);
        if (tl.ops[i].stream == STREAM_COMPUTE) compute[nc++] = tl.ops[i];
        sends += tl.ops[i].stream == STREAM_SEND, recvs += tl.ops[i].stream == STREAM_RECV;
    }
    assert_int_equal(nc, 2 * pr.nops);
    assert_int_equal(sends, 2 * 2 * 3 * 3); // iterations x 2(p-1)m
    assert_int_equal(recvs, sends);
    qsort(compute, nc, sizeof *compute, by_start);
    size_t k = 0;
    for (int32_t d = 0; d < 4; d++)
        for (int32_t it = 0; it < 2; it++)
            for (int64_t i = pr.start[d]; i < pr.start[d + 1]; i++, k++) {
                assert_int_equal(compute[k].device, d);
                assert_int_equal(compute[k].kind, pr.ops[i].kind);
                assert_int_equal(compute[k].micro_batch, it * 3 + pr.ops[i].micro_batch);
            }
    free(compute);
    timeline_free(&tl);
    exec_free(rt);
    program_free(&pr);
    plan_free(&pl);
}

/* The kernel split (exec_split) accounts for the measured ops: over the rounds after the
 * warm-up, a device's kernels by pass and class plus its time outside them add up to its
 * compute rows (within 10%: the two clock reads around an op's span sit just outside the
 * rows', and these ops take microseconds); F, B and W each have GEMM time; W no attention;
 * no all-reduce with t = 1. */
static void test_kernel_split(void **state) {
    (void)state;
    Program pr;
    Plan pl = plan(2, 1);
    build("1f1b", 2, 1, 4, 1, &pr);
    Exec *ex = start(&pr, &pl, 3, -1);
    Timeline tl = {0};
    char why[512];
    assert_int_equal(exec_run(ex, &tl, why, sizeof why), 0);
    for (int32_t d = 0; d < 2; d++) {
        double ms[3][LC_COUNT + 1], sum = 0, rows = 0;
        assert_int_equal(exec_split(ex, d, ms), 0);
        for (int p = 0; p < 3; p++)
            for (int c = 0; c <= LC_COUNT; c++) sum += ms[p][c];
        for (size_t i = 0; i < tl.n; i++) // rounds 1 and 2: micro-batches 4 .. 11
            if (tl.ops[i].device == d && tl.ops[i].stream == STREAM_COMPUTE &&
                tl.ops[i].micro_batch >= 4)
                rows += (double)(tl.ops[i].end_ns - tl.ops[i].start_ns) / 1e6 / 2;
        if (fabs(sum - rows) > 0.1 * rows) // measured: 0.7 % apart
            fail_msg("device %d: split %.4f ms, rows %.4f ms per iteration", d, sum, rows);
        for (int p = 0; p < 3; p++) assert_true(ms[p][LC_GEMM] > 0);
        assert_true(ms[OP_F][LC_ATTENTION] > 0 && ms[OP_B][LC_ATTENTION] > 0);
        assert_true(ms[OP_W][LC_ATTENTION] == 0);
        for (int p = 0; p < 3; p++) assert_true(ms[p][LC_COMM] == 0);
    }
    assert_int_equal(exec_split(ex, 2, (double[3][LC_COUNT + 1]){{0}}), -1);
    timeline_free(&tl);
    exec_free(ex);
    program_free(&pr);
    plan_free(&pl);
}

/* The host-memory estimate follows the activations in flight: on one device GPipe keeps all
 * m = 4 micro-batches' activations (and their kept outputs) where 1F1B keeps one; d = 2
 * doubles the whole, not one worker's. */
static void test_host_bytes(void **state) {
    (void)state;
    Program gp, ofob;
    Plan pl = plan(1, 1);
    build("gpipe", 1, 1, 4, 1, &gp);
    build("1f1b", 1, 1, 4, 1, &ofob);
    ExecSpec a = {.pr = &gp, .pl = &pl, .shape = SHAPE, .iterations = 1};
    ExecSpec b = a;
    b.pr = &ofob;
    double acts = 0, data = 4.0 * (double)layer_tokens(&SHAPE) * SHAPE.hidden;
    for (int k = LB_FIRST_ACT; k < LB_FIRST_SCRATCH; k++)
        acts += 4.0 * (double)layer_buf_elems(&SHAPE, (LayerBuf)k);
    double diff = exec_host_bytes(&a, 0) - exec_host_bytes(&b, 0);
    assert_true(fabs(diff - 3 * (LAYERS * acts + 2 * data)) < 1e-6 * diff);
    ExecSpec d2 = b;
    d2.data = 2;
    assert_true(fabs(exec_host_bytes(&d2, 0) - 2 * exec_host_bytes(&b, 0)) < 1e-9 * exec_host_bytes(&b, 0));
    assert_true(exec_host_bytes(&d2, 1) == exec_host_bytes(&b, 1)); // one worker's
    ExecSpec c2 = b; // c = 2: twice the workers, each with half the activations
    c2.context = 2;
    assert_true(exec_host_bytes(&c2, 0) > exec_host_bytes(&b, 0));
    assert_true(exec_host_bytes(&c2, 1) < exec_host_bytes(&b, 1));
    program_free(&gp), program_free(&ofob), plan_free(&pl);
}

static void test_watchdog(void **state) {
    (void)state; // device 0 never sends the activation: a waiting op gives up, naming itself
    Program pr;
    Plan pl = plan(2, 1);
    build("1f1b", 2, 1, 1, 1, &pr);
    Exec *rt = start(&pr, &pl, 1, 0);
    Timeline tl = {0};
    char why[512];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(exec_run(rt, &tl, why, sizeof why), 1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_true((double)(t1.tv_sec - t0.tv_sec) < 5.0);
    // both devices wait (1 for the activation, 0 then for the gradient); the first to give up
    // is named
    if (!strstr(why, "device 1 op 0 (F mb 0 chunk 0) waited 0.2 s for its activation from device 0") &&
        !strstr(why, "device 0 op 1 (BW mb 0 chunk 0) waited 0.2 s for its gradient from device 1"))
        fail_msg("got '%s'", why);
    // what ran before the failure is kept: device 0's forward, and no more (its send was lost)
    assert_int_equal(tl.n, 1);
    assert_int_equal(tl.ops[0].device, 0);
    assert_int_equal(tl.ops[0].stream, STREAM_COMPUTE);
    assert_int_equal(tl.ops[0].kind, OP_F);
    timeline_free(&tl);
    exec_free(rt);
    program_free(&pr);
    plan_free(&pl);
}

/* Counts tl's rows of device d on stream st. */
static int count_rows(const Timeline *tl, int32_t d, Stream st) {
    int n = 0;
    for (size_t i = 0; i < tl->n; i++) n += tl->ops[i].device == d && tl->ops[i].stream == st;
    return n;
}

static void test_killed_device(void **state) {
    (void)state; // 1F1B, p = 2, m = 4: device 1 (F0 BW0 F1 ...) dies after 2 ops; device 0
                 // waits for the gradient of mb 1 until the watchdog names device 1
    Program pr;
    Plan pl = plan(2, 1);
    build("1f1b", 2, 1, 4, 1, &pr);
    ExecSpec spec = {.pr = &pr, .pl = &pl, .shape = SHAPE, .seed = 42, .iterations = 1,
                     .watchdog_s = 0.2, .drop_send_of = -1, .kill_device = 1, .kill_after = 2};
    Exec *rt = create(&spec);
    Timeline tl = {0};
    char why[512];
    assert_int_equal(exec_run(rt, &tl, why, sizeof why), 1);
    if (!strstr(why, "waited 0.2 s for its gradient from device 1 (watchdog); device 1 never sent it"))
        fail_msg("got '%s'", why);
    assert_int_equal(count_rows(&tl, 1, STREAM_COMPUTE), 2);
    assert_int_equal(count_rows(&tl, 0, STREAM_RECV), 1); // the gradient of mb 0 came
    timeline_free(&tl);
    exec_free(rt);
    // dying before its last op, which feeds no one (device 0's last BW): the join finds it
    spec.kill_device = 0, spec.kill_after = 7;
    rt = create(&spec);
    assert_int_equal(exec_run(rt, &tl, why, sizeof why), 1);
    if (!strstr(why, "device 0's thread ended after 7 ops (--kill-after), before its last op"))
        fail_msg("got '%s'", why);
    assert_int_equal(count_rows(&tl, 0, STREAM_COMPUTE), 7);
    assert_int_equal(count_rows(&tl, 1, STREAM_COMPUTE), 8);
    timeline_free(&tl);
    exec_free(rt);
    // stalling there instead: no peer waits on it, so it gives up after one watchdog
    spec.stall = 1;
    rt = create(&spec);
    assert_int_equal(exec_run(rt, &tl, why, sizeof why), 1);
    if (!strstr(why, "device 0's thread stalled after 7 ops (--stall-after), before its last op"))
        fail_msg("got '%s'", why);
    assert_int_equal(count_rows(&tl, 0, STREAM_COMPUTE), 7);
    timeline_free(&tl);
    exec_free(rt);
    program_free(&pr);
    plan_free(&pl);
}

static void test_misordered_receive(void **state) {
    (void)state; // device 1 takes mb 1 first: the channel's head is mb 0 (unchecked Program)
    Program pr;
    Plan pl = plan(2, 1);
    assert_int_equal(program_init(&pr, 2, 1, 2, PLACE_LOOPED, 8), 0);
    static const int ops[2][4][2] = {{{OP_F, 0}, {OP_F, 1}, {OP_BW, 0}, {OP_BW, 1}},
                                     {{OP_F, 1}, {OP_F, 0}, {OP_BW, 1}, {OP_BW, 0}}};
    for (int d = 0; d < 2; d++)
        for (int i = 0; i < 4; i++) program_push(&pr, d, ops[d][i][0], ops[d][i][1], 0);
    program_end(&pr);
    Exec *rt = start(&pr, &pl, 1, -1);
    Timeline tl = {0};
    char why[512];
    assert_int_equal(exec_run(rt, &tl, why, sizeof why), 1);
    if (!strstr(why, "device 1 op 0 (F mb 1 chunk 0): the next activation from device 0 is for "
                     "stage 1 mb 0, not stage 1 mb 1"))
        fail_msg("got '%s'", why);
    timeline_free(&tl);
    exec_free(rt);
    program_free(&pr);
    plan_free(&pl);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipelines_match_one_device),
        cmocka_unit_test(test_timeline_rows),
        cmocka_unit_test(test_kernel_split),
        cmocka_unit_test(test_host_bytes),
        cmocka_unit_test(test_watchdog),
        cmocka_unit_test(test_killed_device),
        cmocka_unit_test(test_misordered_receive),
        cmocka_unit_test(test_tensor_ranks_match_one),
        cmocka_unit_test(test_replicas_sum),
        cmocka_unit_test(test_sgd_step),
        cmocka_unit_test(test_parallel_rows),
        cmocka_unit_test(test_parallel_bad_tensor),
        cmocka_unit_test(test_context_ranks_match_one),
        cmocka_unit_test(test_context_bad_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
