/* sim/model/layer_ops.c: the op lists of a layer's F, B and W passes (layer_ops.h): attention
 * as strided batches over this rank's heads repeated over samples, the residuals as fused
 * dropout-adds, the layer norms with their statistics kept for B and W. Nothing here runs a
 * kernel. */
#include "sim/model/layer_ops.h"

#include <math.h>
#include <string.h>

/* A shape's dimensions on one tensor-parallel rank. */
typedef struct {
    int64_t T, h, s, b;  // tokens, hidden, sequence, samples
    int64_t Tn;          // tokens of the residual stream here: T, or T/t (sequence parallel)
    int64_t hl, kl, g;   // this rank's query heads, key/value heads, query heads per kv head
    int64_t hd, hq, hk;  // head dimension; this rank's query width hl hd and kv width kl hd
    int64_t fl, fw;      // this rank's MLP columns; the width of u (2 fl with SwiGLU)
    int64_t ld;          // row length of qkv: hq + 2 hk
    int64_t ss, as;      // one head's scores s^2; one sample's scores of all local heads
    int64_t nst;         // statistics per norm row: 2 (mean, rstd) or 1 (RMSNorm's rstd)
    int64_t c, sq;       // context-parallel ranks; this rank's queries of a sample, s / c
    int t, drop, sp;     // tensor-parallel ranks; whether the dropouts run; sequence parallel
    int flash;
    // where attention finds the keys and values and puts their gradients: in qkv itself, or
    // (context parallel) in KV and DKV, all of the sequence's: buffers, column of K and of V,
    // row length
    LayerBuf kv, dkv;
    int64_t koff, voff, kld;
    // the MoE block (moe): routed experts, top-k, the local experts E/e, the tokens each
    // computes (T k e / E, the balanced share), one expert's width and its up width
    int moe;
    int64_t E, k, El, Mx, fe, fwe;
} Dims;

static Dims dims_of(const LayerShape *sh) {
    Dims d = {.T = layer_tokens(sh), .h = sh->hidden, .s = sh->seq, .b = sh->samples,
              .Tn = layer_rows(sh), .t = layer_tp(sh), .drop = sh->dropout > 0,
              .sp = sh->seqpar && layer_tp(sh) > 1, .flash = sh->flash != 0};
    int64_t kv = sh->kv_heads > 0 ? sh->kv_heads : sh->heads;
    d.hd = sh->head_dim > 0 ? sh->head_dim : sh->hidden / sh->heads;
    d.hl = sh->heads / d.t, d.kl = kv / d.t > 0 ? kv / d.t : 1, d.g = d.hl / d.kl;
    d.hq = d.hl * d.hd, d.hk = d.kl * d.hd, d.ld = d.hq + 2 * d.hk;
    d.fl = sh->ffn / d.t, d.fw = sh->swiglu ? 2 * d.fl : d.fl;
    d.c = sh->context > 1 ? sh->context : 1, d.sq = d.s / d.c;
    d.ss = d.sq * d.s, d.as = d.hl * d.ss, d.nst = sh->rms ? 1 : 2;
    int cp = d.c > 1;
    d.kv = cp ? LB_KV : LB_QKV, d.dkv = cp ? LB_DKV : LB_DQKV;
    d.koff = cp ? 0 : d.hq, d.voff = d.koff + d.hk, d.kld = cp ? 2 * d.hk : d.ld;
    if (sh->moe && sh->experts > 0) { // the shared experts are the dense MLP's W1/W2
        int64_t e = sh->expert > 1 ? sh->expert : 1;
        d.moe = 1, d.E = sh->experts, d.k = sh->topk, d.El = d.E / e;
        d.Mx = d.T * d.k * e / d.E, d.fe = sh->expert_ffn, d.fwe = sh->swiglu ? 2 * d.fe : d.fe;
        d.fl = (int64_t)sh->shared * d.fe / d.t, d.fw = sh->swiglu ? 2 * d.fl : d.fl;
    }
    return d;
}

int layer_buf_elem_bytes(const LayerShape *sh, LayerBuf b) {
    int fp32 = b == LB_SCORE || b == LB_DPROBD || b == LB_DPROB || b == LB_ST1 || b == LB_ST2 ||
               b == LB_LSE || (b >= LB_FIRST_GRAD && b < LB_LAYER_END) || b == LB_LOGITS ||
               b == LB_GVOCAB || b == LB_ROUTE || b == LB_DROUTE || b == LB_GWR ||
               b == LB_GE1 || b == LB_GE2;
    return fp32 ? 4 : sh->elem > 0 ? sh->elem : 2;
}

int64_t layer_buf_elems(const LayerShape *sh, LayerBuf b) {
    Dims d = dims_of(sh);
    switch (b) {
    case LB_QKV: case LB_DQKV: return d.T * d.ld;
    case LB_CTX: case LB_DCTX: return d.T * d.hq;
    case LB_U: case LB_DU: return d.T * d.fw;
    case LB_GELU: case LB_DGELU: return d.T * d.fl;
    case LB_PROB: case LB_SCORE: case LB_DPROB: case LB_DSCORE: return d.flash ? 0 : d.b * d.as;
    case LB_PROBD: case LB_DPROBD: return d.drop && !d.flash ? d.b * d.as : 0; // with dropout
    case LB_LSE: return d.flash ? d.b * d.hl * d.sq : 0;
    case LB_KV: case LB_DKV: return d.c > 1 ? d.b * d.s * 2 * d.hk : 0;
    case LB_ST1: case LB_ST2: return d.nst * d.Tn;
    case LB_WQKV: case LB_GQKV: return d.h * d.ld;
    case LB_WO: case LB_GO: return d.hq * d.h;
    case LB_W1: case LB_G1: return d.h * d.fw;
    case LB_W2: case LB_G2: return d.fl * d.h;
    case LB_LN1: case LB_LN2: case LB_GLN1: case LB_GLN2: return d.nst * d.h;
    case LB_FULL: return d.sp ? d.T * d.h : 0;
    case LB_DO: case LB_DA: return d.T * d.h; // the full sequence, for W
    case LB_LOGITS: return d.T * (sh->vocab / d.t);
    case LB_WVOCAB: case LB_GVOCAB: return d.h * (sh->vocab / d.t);
    case LB_ROUTE: case LB_DROUTE: return d.T * d.E;
    case LB_DISP: case LB_DDISP: case LB_EO: case LB_DEO: return d.El * d.Mx * d.h;
    case LB_EU: case LB_DEU: return d.El * d.Mx * d.fwe;
    case LB_EG: case LB_DEG: return d.El * d.Mx * d.fe;
    case LB_WR: case LB_GWR: return d.moe ? d.h * d.E : 0;
    case LB_WE1: case LB_GE1: return d.El * d.h * d.fwe;
    case LB_WE2: case LB_GE2: return d.El * d.fe * d.h;
    case LB_COUNT: return 0;
    default: return d.Tn * d.h; // IN, OUT, X, XN1, X1, XN2, DXN2, DXN1, DX1, A, O
    }
}

/* ---- building ops ---- */

typedef struct {
    const LayerShape *sh;
    Dims d;
    LayerOp *o;
    int n;
} List;

static LayerOp *push(List *l, LayerOp op) {
    op.batch = op.batch ? op.batch : 1;
    op.repeat = op.repeat ? op.repeat : 1;
    op.group = op.group ? op.group : 1;
    op.work = 1;
    l->o[l->n] = op;
    return &l->o[l->n++];
}

static void gemm(List *l, const char *name, LayerClass cls, int ta, int tb, int64_t M, int64_t N,
                 int64_t K, float alpha, LayerBuf a, int64_t lda, LayerBuf b, int64_t ldb,
                 float beta, LayerBuf c, int64_t ldc) {
    push(l, (LayerOp){.name = name, .kernel = LK_GEMM, .cls = (uint8_t)cls, .ta = (uint8_t)ta,
                      .tb = (uint8_t)tb, .a = a, .b = b, .c = c, .d = LB_COUNT, .w = LB_COUNT,
                      .kv = LB_COUNT, .dkv = LB_COUNT, .M = M, .N = N, .K = K, .lda = lda,
                      .ldb = ldb, .ldc = ldc, .alpha = alpha, .beta = beta});
}

/* An attention GEMM of one (sample, local query head): batched over heads, repeated over
 * samples, with operand offsets offs, batch strides sab and repeat strides rab (a, b, c);
 * the operands flagged in grouped (1 a, 2 b, 4 c) are the head's key/value group's. */
static void heads(List *l, const char *name, int ta, int tb, int64_t M, int64_t N, int64_t K,
                  float alpha, LayerBuf a, int64_t lda, LayerBuf b, int64_t ldb, LayerBuf c,
                  int64_t ldc, const int64_t offs[3], const int64_t sab[3], const int64_t rab[3],
                  int grouped) {
    gemm(l, name, LC_ATTENTION, ta, tb, M, N, K, alpha, a, lda, b, ldb, 0, c, ldc);
    LayerOp *o = &l->o[l->n - 1];
    o->a_off = offs[0], o->b_off = offs[1], o->c_off = offs[2];
    o->batch = l->d.hl, o->sa = sab[0], o->sb = sab[1], o->sc = sab[2];
    o->repeat = l->d.b, o->ra = rab[0], o->rb = rab[1], o->rc = rab[2];
    o->group = l->d.g, o->grouped = (uint8_t)(l->d.g > 1 ? grouped : 0);
}

static LayerOp *elementwise(List *l, const char *name, LayerKernel k, LayerClass cls, LayerBuf a,
                            LayerBuf b, LayerBuf c, int64_t n, int64_t cols) {
    return push(l, (LayerOp){.name = name, .kernel = (uint8_t)k, .cls = (uint8_t)cls, .a = a,
                             .b = b, .c = c, .d = LB_COUNT, .w = LB_COUNT, .kv = LB_COUNT,
                             .dkv = LB_COUNT, .n = n, .cols = cols});
}

static void dropout(List *l, const char *name, LayerKernel k, LayerClass cls, LayerBuf a,
                    LayerBuf b, LayerBuf c, int64_t n, uint32_t salt) {
    float p = l->sh->dropout > 0 ? l->sh->dropout : 0;
    LayerOp *o = elementwise(l, name, k, cls, a, b, c, n, 0);
    const Dims *d = &l->d;
    o->p = p, o->salt = salt, o->alpha = 1.0f / (1.0f - p);
    // a hidden dropout draws the masks of its rows of the whole micro-batch (sequence parallel:
    // this rank's T/t), so every split drops what the unsplit layer drops
    o->mask_blk = n, o->mask_stride = 0, o->mask_off = d->sp ? (l->sh->rank % d->t) * n : 0;
    if (salt == 0) { // the attention scores: this rank's heads of each sample, among all heads
        o->mask_blk = d->as, o->mask_stride = d->as * d->t;
        o->mask_off = (int64_t)(l->sh->rank % d->t) * d->as;
    }
    if (d->c > 1) o->mask_row = salt == 0 ? d->s : d->h; // a query's scores, or a token's row
    double keep = floor((double)p * 4294967296.0);
    o->keep_min = keep >= 4294967295.0 ? 4294967295u : (uint32_t)keep;
}

/* The layer's norm (layer norm or RMSNorm) of kind k, one of F, B, W, over the stream's rows. */
static void norm(List *l, const char *name, OpKind k, LayerBuf a, LayerBuf b, LayerBuf c,
                 LayerBuf stats, LayerBuf w, float beta) {
    static const LayerKernel kinds[2][3] = {{LK_LAYERNORM, LK_LAYERNORM_BW, LK_LAYERNORM_DW},
                                            {LK_RMSNORM, LK_RMSNORM_BW, LK_RMSNORM_DW}};
    LayerOp *o = elementwise(l, name, kinds[l->sh->rms != 0][k], LC_MEMORY, a, b, c, l->d.Tn,
                             l->d.h);
    o->d = stats, o->w = w, o->beta = beta;
}

static void allreduce(List *l, const char *name, LayerBuf c) {
    if (l->d.t > 1) elementwise(l, name, LK_ALLREDUCE, LC_COMM, c, c, c, l->d.T * l->d.h, 0);
}

/* Sequence parallelism's collectives over the hidden width: this rank's T/t rows of a to all
 * T rows of c, and the sum of a's T rows to this rank's T/t of c. */
static void allgather(List *l, const char *name, LayerBuf a, LayerBuf c) {
    elementwise(l, name, LK_ALLGATHER, LC_COMM, a, a, c, l->d.Tn * l->d.h, 0);
}
static void reduce_scatter(List *l, const char *name, LayerBuf a, LayerBuf c) {
    elementwise(l, name, LK_REDUCE_SCATTER, LC_COMM, a, a, c, l->d.Tn * l->d.h, 0);
}

/* A column-parallel GEMM's input: the norm's output itself, or (sequence parallel) its
 * all-gather into FULL. */
static LayerBuf gathered(List *l, const char *name, LayerBuf local) {
    if (!l->d.sp) return local;
    allgather(l, name, local, LB_FULL);
    return LB_FULL;
}

/* Where a row-parallel GEMM writes its partial sum (FULL with sequence parallelism), and the
 * collective that makes it whole in out: an all-reduce in place, or a reduce-scatter. */
static LayerBuf partial(List *l, LayerBuf out) { return l->d.sp ? LB_FULL : out; }
static void reduce(List *l, const char *ar_name, const char *rs_name, LayerBuf out) {
    if (l->d.sp) reduce_scatter(l, rs_name, LB_FULL, out);
    else allreduce(l, ar_name, out);
}

/* ---- attention ---- */

/* Context parallelism's exchange: every rank's keys and values to all c (F), their
 * gradients summed back to the rank whose tokens they are (B). */
static void context_collective(List *l, const char *name, LayerKernel k, LayerBuf a, LayerBuf c) {
    const Dims *d = &l->d;
    if (d->c <= 1) return;
    LayerOp *o = elementwise(l, name, k, LC_COMM, a, a, c, d->T * 2 * d->hk, 0);
    o->over = 1, o->N = 2 * d->hk; // K then V of each row: qkv's columns hq .. hq + 2 hk
    if (k == LK_ALLGATHER) o->a_off = d->hq, o->lda = d->ld, o->ldc = o->N;
    else o->c_off = d->hq, o->ldc = d->ld, o->lda = o->N;
}

static void attention_forward(List *l) {
    const Dims *d = &l->d;
    int64_t s = d->s, sq = d->sq, ld = d->ld, hq = d->hq, hk = d->hk, hd = d->hd, kld = d->kld;
    float scale = 1.0f / sqrtf((float)hd);
    context_collective(l, "kv_allgather", LK_ALLGATHER, LB_QKV, LB_KV);
    if (d->flash) {
        LayerOp *o = elementwise(l, "flash_attn", LK_FLASH, LC_ATTENTION, LB_QKV, d->kv, LB_CTX,
                                 d->b * d->hl * sq, s);
        o->d = LB_LSE, o->M = sq, o->N = hk, o->K = hd, o->b_off = hq, o->lda = ld, o->ldc = hq;
        o->batch = d->hl, o->repeat = d->b, o->ra = sq * ld, o->rc = sq * hq, o->alpha = scale;
        o->group = d->g, o->grouped = 2;
        o->kv = d->kv, o->kv_off = d->koff, o->kv_ld = kld, o->kv_rs = s * kld;
        return;
    }
    LayerBuf probs = d->drop ? LB_PROBD : LB_PROB; // what attention multiplies V by
    heads(l, "score", 0, 1, sq, s, hd, scale, LB_QKV, ld, d->kv, kld, LB_SCORE, s,
          (int64_t[]){0, d->koff, 0}, (int64_t[]){hd, hd, d->ss},
          (int64_t[]){sq * ld, s * kld, d->as}, 2);
    elementwise(l, "softmax", LK_SOFTMAX, LC_ATTENTION, LB_SCORE, LB_SCORE, LB_PROB,
                d->b * d->hl * sq, s)->M = sq;
    if (d->drop)
        dropout(l, "attn_dropout", LK_DROPOUT, LC_ATTENTION, LB_PROB, LB_PROB, LB_PROBD,
                d->b * d->as, 0);
    heads(l, "attn_v", 0, 0, sq, hd, s, 1, probs, s, d->kv, kld, LB_CTX, hq,
          (int64_t[]){0, d->voff, 0}, (int64_t[]){d->ss, hd, hd},
          (int64_t[]){d->as, s * kld, sq * hq}, 2);
}

static void attention_backward(List *l) {
    const Dims *d = &l->d;
    int64_t s = d->s, sq = d->sq, ld = d->ld, hq = d->hq, hk = d->hk, hd = d->hd, kld = d->kld;
    int64_t dkoff = d->c > 1 ? 0 : hq; // in DKV or in DQKV
    float scale = 1.0f / sqrtf((float)hd);
    if (d->flash) {
        LayerOp *o = elementwise(l, "flash_attn_bw", LK_FLASH_BW, LC_ATTENTION, LB_QKV, LB_DCTX,
                                 LB_DQKV, d->b * d->hl * sq, s);
        o->d = LB_LSE, o->w = LB_CTX, o->M = sq, o->N = hk, o->K = hd, o->b_off = hq;
        o->lda = ld, o->ldb = hq, o->ldc = ld, o->batch = d->hl, o->repeat = d->b;
        o->ra = sq * ld, o->rb = sq * hq, o->rc = sq * ld, o->alpha = scale;
        o->group = d->g, o->grouped = 2;
        o->kv = d->kv, o->dkv = d->dkv, o->kv_off = d->koff, o->kv_ld = kld, o->kv_rs = s * kld;
    } else {
        LayerBuf probs = d->drop ? LB_PROBD : LB_PROB, dprobs = d->drop ? LB_DPROBD : LB_DPROB;
        heads(l, "attn_dv", 1, 0, s, hd, sq, 1, probs, s, LB_DCTX, hq, d->dkv, kld,
              (int64_t[]){0, 0, dkoff + hk}, (int64_t[]){d->ss, hd, hd},
              (int64_t[]){d->as, sq * hq, s * kld}, 4);
        heads(l, "attn_dprob", 0, 1, sq, s, hd, 1, LB_DCTX, hq, d->kv, kld, dprobs, s,
              (int64_t[]){0, d->voff, 0}, (int64_t[]){hd, hd, d->ss},
              (int64_t[]){sq * hq, s * kld, d->as}, 2);
        if (d->drop)
            dropout(l, "attn_dropout_bw", LK_DROPOUT, LC_ATTENTION, LB_DPROBD, LB_DPROBD,
                    LB_DPROB, d->b * d->as, 0);
        LayerOp *sm = elementwise(l, "softmax_bw", LK_SOFTMAX_BW, LC_ATTENTION, LB_PROB,
                                  LB_DPROB, LB_DSCORE, d->b * d->hl * sq, s);
        sm->alpha = scale, sm->M = sq;
        heads(l, "attn_dq", 0, 0, sq, hd, s, 1, LB_DSCORE, s, d->kv, kld, LB_DQKV, ld,
              (int64_t[]){0, d->koff, 0}, (int64_t[]){d->ss, hd, hd},
              (int64_t[]){d->as, s * kld, sq * ld}, 2);
        heads(l, "attn_dk", 1, 0, s, hd, sq, 1, LB_DSCORE, s, LB_QKV, ld, d->dkv, kld,
              (int64_t[]){0, 0, dkoff}, (int64_t[]){d->ss, hd, hd},
              (int64_t[]){d->as, sq * ld, s * kld}, 4);
    }
    context_collective(l, "kv_grad_reduce_scatter", LK_REDUCE_SCATTER, LB_DKV, LB_DQKV);
}

/* ---- the MoE block (moe) ---- */

/* One grouped GEMM over the E/e local experts: `El` matrices, operands `sa`, `sb`, `sc`
 * elements apart, its executed work the busiest rank's share (expert_work). */
static void experts_gemm(List *l, const char *name, int ta, int tb, int64_t M, int64_t N,
                         int64_t K, LayerBuf a, int64_t lda, LayerBuf b, int64_t ldb, float beta,
                         LayerBuf c, int64_t ldc) {
    gemm(l, name, LC_GEMM, ta, tb, M, N, K, 1, a, lda, b, ldb, beta, c, ldc);
    LayerOp *o = &l->o[l->n - 1];
    o->batch = l->d.El;
    o->sa = M * K, o->sb = K * N, o->sc = M * N;
    o->work = l->sh->expert_work > 0 ? l->sh->expert_work : 1;
}

/* The expert-parallel exchange of buf (this rank's T k rows of h), when e > 1. */
static void alltoall(List *l, const char *name, LayerBuf buf) {
    if (l->sh->expert <= 1) return;
    LayerOp *o = elementwise(l, name, LK_ALLTOALL, LC_COMM, buf, buf, buf,
                             l->d.El * l->d.Mx * l->d.h, 0);
    o->work = l->sh->expert_work > 0 ? l->sh->expert_work : 1;
}

static void moe_forward(List *l, LayerBuf in2) {
    const Dims *d = &l->d;
    int64_t T = d->T, h = d->h, E = d->E, Tk = d->El * d->Mx, fe = d->fe, fwe = d->fwe;
    gemm(l, "router", LC_GEMM, 0, 0, T, E, h, 1, in2, h, LB_WR, E, 0, LB_ROUTE, E);
    elementwise(l, "route_topk", LK_ROUTE, LC_MEMORY, LB_ROUTE, LB_ROUTE, LB_ROUTE, T, E);
    if (d->fl > 0) { // the shared experts, into O
        gemm(l, "shared_up", LC_GEMM, 0, 0, T, d->fw, h, 1, in2, h, LB_W1, d->fw, 0, LB_U, d->fw);
        if (l->sh->swiglu) elementwise(l, "shared_swiglu", LK_SWIGLU, LC_MEMORY, LB_U, LB_U, LB_GELU, T, d->fl);
        else elementwise(l, "shared_gelu", LK_GELU, LC_MEMORY, LB_U, LB_U, LB_GELU, T * d->fl, 0);
        gemm(l, "shared_down", LC_GEMM, 0, 0, T, h, d->fl, 1, LB_GELU, d->fl, LB_W2, h, 0, LB_O, h);
    }
    elementwise(l, "dispatch_permute", LK_PERMUTE, LC_MEMORY, in2, in2, LB_DISP, Tk * h, 0);
    alltoall(l, "dispatch_alltoall", LB_DISP);
    experts_gemm(l, "experts_up", 0, 0, d->Mx, fwe, h, LB_DISP, h, LB_WE1, fwe, 0, LB_EU, fwe);
    if (l->sh->swiglu) elementwise(l, "experts_swiglu", LK_SWIGLU, LC_MEMORY, LB_EU, LB_EU, LB_EG, Tk, fe);
    else elementwise(l, "experts_gelu", LK_GELU, LC_MEMORY, LB_EU, LB_EU, LB_EG, Tk * fe, 0);
    experts_gemm(l, "experts_down", 0, 0, d->Mx, h, fe, LB_EG, fe, LB_WE2, h, 0, LB_EO, h);
    alltoall(l, "combine_alltoall", LB_EO);
    LayerOp *c = elementwise(l, "combine", LK_PERMUTE, LC_MEMORY, LB_EO, LB_O, LB_O, Tk * h, 0);
    c->beta = d->fl > 0; // adds to the shared experts' output
}

static void moe_backward_input(List *l) {
    const Dims *d = &l->d;
    int64_t T = d->T, h = d->h, E = d->E, Tk = d->El * d->Mx, fe = d->fe, fwe = d->fwe;
    if (d->fl > 0) {
        gemm(l, "shared_down_dx", LC_GEMM, 0, 1, T, d->fl, h, 1, LB_DO, h, LB_W2, h, 0, LB_DGELU, d->fl);
        if (l->sh->swiglu)
            elementwise(l, "shared_swiglu_bw", LK_SWIGLU_BW, LC_MEMORY, LB_DGELU, LB_U, LB_DU, T, d->fl);
        else elementwise(l, "shared_gelu_bw", LK_GELU_BW, LC_MEMORY, LB_DGELU, LB_U, LB_DU, T * d->fl, 0);
        gemm(l, "shared_up_dx", LC_GEMM, 0, 1, T, h, d->fw, 1, LB_DU, d->fw, LB_W1, d->fw, 0, LB_DXN2, h);
    }
    elementwise(l, "combine_bw", LK_PERMUTE, LC_MEMORY, LB_DO, LB_DO, LB_DEO, Tk * h, 0);
    alltoall(l, "combine_alltoall_bw", LB_DEO);
    experts_gemm(l, "experts_down_dx", 0, 1, d->Mx, fe, h, LB_DEO, h, LB_WE2, h, 0, LB_DEG, fe);
    if (l->sh->swiglu)
        elementwise(l, "experts_swiglu_bw", LK_SWIGLU_BW, LC_MEMORY, LB_DEG, LB_EU, LB_DEU, Tk, fe);
    else elementwise(l, "experts_gelu_bw", LK_GELU_BW, LC_MEMORY, LB_DEG, LB_EU, LB_DEU, Tk * fe, 0);
    experts_gemm(l, "experts_up_dx", 0, 1, d->Mx, h, fwe, LB_DEU, fwe, LB_WE1, fwe, 0, LB_DDISP, h);
    alltoall(l, "dispatch_alltoall_bw", LB_DDISP);
    LayerOp *p = elementwise(l, "dispatch_bw", LK_PERMUTE, LC_MEMORY, LB_DDISP, LB_DXN2, LB_DXN2,
                             Tk * h, 0);
    p->beta = d->fl > 0;
    elementwise(l, "route_bw", LK_ROUTE, LC_MEMORY, LB_DROUTE, LB_ROUTE, LB_DROUTE, T, E);
    gemm(l, "router_dx", LC_GEMM, 0, 1, T, h, E, 1, LB_DROUTE, E, LB_WR, E, 1, LB_DXN2, h);
}

static void moe_backward_weight(List *l, LayerBuf in2) {
    const Dims *d = &l->d;
    int64_t T = d->T, h = d->h, E = d->E, fe = d->fe, fwe = d->fwe;
    experts_gemm(l, "experts_down_dw", 1, 0, fe, h, d->Mx, LB_EG, fe, LB_DEO, h, 1, LB_GE2, h);
    experts_gemm(l, "experts_up_dw", 1, 0, h, fwe, d->Mx, LB_DISP, h, LB_DEU, fwe, 1, LB_GE1, fwe);
    gemm(l, "router_dw", LC_GEMM, 1, 0, h, E, T, 1, in2, h, LB_DROUTE, E, 1, LB_GWR, E);
    if (d->fl > 0) {
        gemm(l, "shared_down_dw", LC_GEMM, 1, 0, d->fl, h, T, 1, LB_GELU, d->fl, LB_DO, h, 1, LB_G2, h);
        gemm(l, "shared_up_dw", LC_GEMM, 1, 0, h, d->fw, T, 1, in2, h, LB_DU, d->fw, 1, LB_G1, d->fw);
    }
}

/* ---- the passes ---- */

static void forward(List *l) {
    const Dims *d = &l->d;
    int64_t T = d->T, Tn = d->Tn, h = d->h, ld = d->ld, hq = d->hq, fl = d->fl, fw = d->fw;
    elementwise(l, "copy_x", LK_COPY, LC_MEMORY, LB_IN, LB_IN, LB_X, Tn * h, 0);
    norm(l, "ln1", OP_F, LB_X, LB_X, LB_XN1, LB_ST1, LB_LN1, 0);
    LayerBuf in1 = gathered(l, "ln1_allgather", LB_XN1);
    gemm(l, "qkv", LC_GEMM, 0, 0, T, ld, h, 1, in1, h, LB_WQKV, ld, 0, LB_QKV, ld);
    attention_forward(l);
    gemm(l, "out_proj", LC_GEMM, 0, 0, T, h, hq, 1, LB_CTX, hq, LB_WO, h, 0, partial(l, LB_A), h);
    reduce(l, "out_proj_allreduce", "out_proj_reduce_scatter", LB_A);
    dropout(l, "residual1", LK_DROPOUT_ADD, LC_MEMORY, LB_A, LB_X, LB_X1, Tn * h, 1);
    norm(l, "ln2", OP_F, LB_X1, LB_X1, LB_XN2, LB_ST2, LB_LN2, 0);
    LayerBuf in2 = gathered(l, "ln2_allgather", LB_XN2);
    if (d->moe) {
        moe_forward(l, in2);
    } else {
        gemm(l, "mlp_up", LC_GEMM, 0, 0, T, fw, h, 1, in2, h, LB_W1, fw, 0, LB_U, fw);
        if (l->sh->swiglu) elementwise(l, "swiglu", LK_SWIGLU, LC_MEMORY, LB_U, LB_U, LB_GELU, T, fl);
        else elementwise(l, "gelu", LK_GELU, LC_MEMORY, LB_U, LB_U, LB_GELU, T * fl, 0);
        gemm(l, "mlp_down", LC_GEMM, 0, 0, T, h, fl, 1, LB_GELU, fl, LB_W2, h, 0, partial(l, LB_O), h);
        reduce(l, "mlp_down_allreduce", "mlp_down_reduce_scatter", LB_O);
    }
    dropout(l, "residual2", LK_DROPOUT_ADD, LC_MEMORY, LB_O, LB_X1, LB_OUT, Tn * h, 2);
}

/* The gradient of a residual's dropout, from src (this rank's rows) into the full dst that
 * the row-parallel GEMM's input gradient and W need (all-gathered with sequence parallelism,
 * through the free scratch tmp). */
static void dropout_grad(List *l, const char *drop_name, const char *copy_name,
                         const char *gather_name, LayerBuf src, LayerBuf tmp, LayerBuf dst,
                         uint32_t salt) {
    const Dims *d = &l->d;
    LayerBuf local = d->sp ? tmp : dst;
    if (d->drop) dropout(l, drop_name, LK_DROPOUT, LC_MEMORY, src, src, local, d->Tn * d->h, salt);
    else if (!d->sp) elementwise(l, copy_name, LK_COPY, LC_MEMORY, src, src, dst, d->T * d->h, 0);
    if (d->sp) allgather(l, gather_name, d->drop ? tmp : src, dst);
}

static void backward_input(List *l) {
    const Dims *d = &l->d;
    int64_t T = d->T, Tn = d->Tn, h = d->h, ld = d->ld, hq = d->hq, fl = d->fl, fw = d->fw;
    dropout_grad(l, "mlp_dropout_bw", "copy_dy", "dy_allgather", LB_IN, LB_A, LB_DO, 2);
    if (d->moe) {
        moe_backward_input(l);
    } else {
        gemm(l, "mlp_down_dx", LC_GEMM, 0, 1, T, fl, h, 1, LB_DO, h, LB_W2, h, 0, LB_DGELU, fl);
        if (l->sh->swiglu)
            elementwise(l, "swiglu_bw", LK_SWIGLU_BW, LC_MEMORY, LB_DGELU, LB_U, LB_DU, T, fl);
        else elementwise(l, "gelu_bw", LK_GELU_BW, LC_MEMORY, LB_DGELU, LB_U, LB_DU, T * fl, 0);
        gemm(l, "mlp_up_dx", LC_GEMM, 0, 1, T, h, fw, 1, LB_DU, fw, LB_W1, fw, 0, partial(l, LB_DXN2), h);
        reduce(l, "mlp_up_dx_allreduce", "mlp_up_dx_reduce_scatter", LB_DXN2);
    }
    elementwise(l, "copy_dx1", LK_COPY, LC_MEMORY, LB_IN, LB_IN, LB_DX1, Tn * h, 0);
    norm(l, "ln2_bw", OP_B, LB_DXN2, LB_X1, LB_DX1, LB_ST2, LB_LN2, 1);
    dropout_grad(l, "attn_out_dropout_bw", "copy_da", "dx1_allgather", LB_DX1, LB_O, LB_DA, 1);
    gemm(l, "out_proj_dx", LC_GEMM, 0, 1, T, hq, h, 1, LB_DA, h, LB_WO, h, 0, LB_DCTX, hq);
    attention_backward(l);
    gemm(l, "qkv_dx", LC_GEMM, 0, 1, T, h, ld, 1, LB_DQKV, ld, LB_WQKV, ld, 0, partial(l, LB_DXN1), h);
    reduce(l, "qkv_dx_allreduce", "qkv_dx_reduce_scatter", LB_DXN1);
    elementwise(l, "copy_dx", LK_COPY, LC_MEMORY, LB_DX1, LB_DX1, LB_OUT, Tn * h, 0);
    norm(l, "ln1_bw", OP_B, LB_DXN1, LB_X, LB_OUT, LB_ST1, LB_LN1, 1);
}

static void backward_weight(List *l) {
    const Dims *d = &l->d;
    int64_t T = d->T, h = d->h, ld = d->ld, hq = d->hq, fl = d->fl, fw = d->fw;
    if (d->moe) {
        moe_backward_weight(l, LB_XN2); // no sequence parallelism with experts (scenario.c)
    } else {
        gemm(l, "mlp_down_dw", LC_GEMM, 1, 0, fl, h, T, 1, LB_GELU, fl, LB_DO, h, 1, LB_G2, h);
        LayerBuf in2 = gathered(l, "ln2_allgather_w", LB_XN2);
        gemm(l, "mlp_up_dw", LC_GEMM, 1, 0, h, fw, T, 1, in2, h, LB_DU, fw, 1, LB_G1, fw);
    }
    norm(l, "ln2_dw", OP_W, LB_DXN2, LB_X1, LB_GLN2, LB_ST2, LB_COUNT, 1);
    gemm(l, "out_proj_dw", LC_GEMM, 1, 0, hq, h, T, 1, LB_CTX, hq, LB_DA, h, 1, LB_GO, h);
    LayerBuf in1 = gathered(l, "ln1_allgather_w", LB_XN1);
    gemm(l, "qkv_dw", LC_GEMM, 1, 0, h, ld, T, 1, in1, h, LB_DQKV, ld, 1, LB_GQKV, ld);
    norm(l, "ln1_dw", OP_W, LB_DXN1, LB_X, LB_GLN1, LB_ST1, LB_COUNT, 1);
}

/* ---- around the layers ---- */

static void count(const LayerShape *sh, LayerOp *o);

static void head_lists(List *l, OpKind pass) {
    const Dims *d = &l->d;
    int64_t T = d->T, h = d->h, Vl = l->sh->vocab / d->t;
    if (pass == OP_F) {
        norm(l, "ln_final", OP_F, LB_IN, LB_IN, LB_XN1, LB_ST1, LB_LN1, 0);
        LayerBuf in = gathered(l, "ln_final_allgather", LB_XN1);
        gemm(l, "logits", LC_GEMM, 0, 0, T, Vl, h, 1, in, h, LB_WVOCAB, Vl, 0, LB_LOGITS, Vl);
        elementwise(l, "cross_entropy", LK_SOFTMAX, LC_MEMORY, LB_LOGITS, LB_LOGITS, LB_LOGITS,
                    T, Vl);
        for (int i = 0; i < 3 && d->t > 1; i++) // max, sum and the target's logit per token
            elementwise(l, "cross_entropy_allreduce", LK_ALLREDUCE, LC_COMM, LB_ST1, LB_ST1,
                        LB_ST1, T / 2 + 1, 0);
    } else if (pass == OP_B) {
        elementwise(l, "cross_entropy_bw", LK_COPY, LC_MEMORY, LB_LOGITS, LB_LOGITS, LB_LOGITS,
                    T * Vl, 0);
        gemm(l, "logits_dx", LC_GEMM, 0, 1, T, h, Vl, 1, LB_LOGITS, Vl, LB_WVOCAB, Vl, 0,
             partial(l, LB_DXN1), h);
        reduce(l, "logits_dx_allreduce", "logits_dx_reduce_scatter", LB_DXN1);
        norm(l, "ln_final_bw", OP_B, LB_DXN1, LB_X, LB_OUT, LB_ST1, LB_LN1, 0);
    } else if (pass == OP_W) {
        LayerBuf in = gathered(l, "ln_final_allgather_w", LB_XN1);
        gemm(l, "logits_dw", LC_GEMM, 1, 0, h, Vl, T, 1, in, h, LB_LOGITS, Vl, 1, LB_GVOCAB, Vl);
        norm(l, "ln_final_dw", OP_W, LB_DXN1, LB_X, LB_GLN1, LB_ST1, LB_COUNT, 1);
    }
}

static void embed_lists(List *l, OpKind pass) {
    const Dims *d = &l->d;
    int64_t T = d->T, h = d->h;
    if (pass == OP_F) {
        elementwise(l, "embedding", LK_COPY, LC_MEMORY, LB_WVOCAB, LB_WVOCAB, partial(l, LB_OUT),
                    T * h, 0);
        reduce(l, "embedding_allreduce", "embedding_reduce_scatter", LB_OUT);
    } else if (pass == OP_W) {
        LayerBuf in = gathered(l, "embedding_dy_allgather", LB_IN);
        LayerOp *o = elementwise(l, "embedding_dw", LK_DROPOUT_ADD, LC_MEMORY, in, LB_GVOCAB,
                                 LB_GVOCAB, T * h, 0); // the rows' gradients added in
        o->alpha = 1, o->mask_blk = o->n;
    }
}

static int around(const LayerShape *sh, OpKind pass, LayerOp *ops, int head) {
    if (pass != OP_F && pass != OP_B && pass != OP_W) return -1;
    List l = {.sh = sh, .d = dims_of(sh), .o = ops};
    if (head) head_lists(&l, pass);
    else embed_lists(&l, pass);
    for (int i = 0; i < l.n; i++) count(sh, &ops[i]);
    return l.n;
}

int layer_head_ops(const LayerShape *sh, OpKind pass, LayerOp *ops) { return around(sh, pass, ops, 1); }
int layer_embed_ops(const LayerShape *sh, OpKind pass, LayerOp *ops) { return around(sh, pass, ops, 0); }

/* ---- FLOPs and bytes ---- */

static double bytes_of(const LayerShape *sh, LayerBuf b, double elems) {
    return b == LB_COUNT ? 0 : elems * layer_buf_elem_bytes(sh, b);
}

/* Bytes of `mats` matrices of an operand, `groups` of them distinct when grouped. */
static double operand_bytes(const LayerShape *sh, const LayerOp *o, LayerBuf b, int flag,
                            double elems) {
    double mats = (double)(o->batch * o->repeat);
    if (o->grouped & flag) mats /= (double)o->group;
    return bytes_of(sh, b, elems * mats);
}

static void count(const LayerShape *sh, LayerOp *o) {
    double n = (double)o->n, cells = o->cols ? n * (double)o->cols : n;
    double t = (double)layer_tp(sh);
    switch ((LayerKernel)o->kernel) {
    case LK_GEMM: {
        double cnt = (double)(o->batch * o->repeat);
        o->flops = 2.0 * (double)o->M * (double)o->N * (double)o->K * cnt;
        o->bytes = operand_bytes(sh, o, o->a, 1, (double)o->M * (double)o->K) +
                   operand_bytes(sh, o, o->b, 2, (double)o->K * (double)o->N) +
                   operand_bytes(sh, o, o->c, 4, (double)o->M * (double)o->N) * (o->beta != 0 ? 2 : 1);
        return;
    }
    case LK_FLASH: case LK_FLASH_BW: {
        // per (sample, head): the scores' and the context's GEMMs, 2 sq sk d each for sq
        // queries and sk keys; B has four
        double heads = (double)(o->batch * o->repeat), sq = (double)o->M, sk = (double)o->cols;
        double hd = (double)o->K, T = (double)o->repeat * sq, q = T * (double)o->batch * hd;
        double qkv = bytes_of(sh, o->a, T * (double)o->lda), ctx = bytes_of(sh, LB_CTX, q);
        double lse = bytes_of(sh, o->d, heads * sq), kv = 0;
        if (o->b == LB_KV) // context parallel: the whole sequence's keys and values
            kv = bytes_of(sh, LB_KV, (double)layer_buf_elems(sh, LB_KV));
        int bw = o->kernel == LK_FLASH_BW;
        o->flops = (bw ? 8.0 : 4.0) * heads * sq * sk * hd;
        o->work = bw ? 0.625 : 0.5; // causal: half the blocks; B reruns the scores (5 of 4)
        o->bytes = bw ? 2 * (qkv + kv) + 2 * ctx + lse : qkv + kv + ctx + lse;
        return;
    }
    case LK_SOFTMAX_BW: case LK_GELU_BW: case LK_DROPOUT_ADD:
        o->bytes = bytes_of(sh, o->a, cells) + bytes_of(sh, o->b, cells) + bytes_of(sh, o->c, cells);
        return;
    case LK_SWIGLU: // reads gate and up, writes their product
        o->bytes = bytes_of(sh, o->a, 2 * cells) + bytes_of(sh, o->c, cells);
        return;
    case LK_SWIGLU_BW:
        o->bytes = bytes_of(sh, o->a, cells) + bytes_of(sh, o->b, 2 * cells) +
                   bytes_of(sh, o->c, 2 * cells);
        return;
    case LK_LAYERNORM: case LK_RMSNORM: {
        double st = o->kernel == LK_RMSNORM ? 1 : 2;
        o->bytes = bytes_of(sh, o->a, cells) + bytes_of(sh, o->c, cells) +
                   bytes_of(sh, o->d, st * n) + bytes_of(sh, o->w, st * (double)o->cols);
        return;
    }
    case LK_LAYERNORM_BW: case LK_RMSNORM_BW: {
        double st = o->kernel == LK_RMSNORM_BW ? 1 : 2;
        o->bytes = bytes_of(sh, o->a, cells) + bytes_of(sh, o->b, cells) +
                   bytes_of(sh, o->c, cells) * (o->beta != 0 ? 2 : 1) +
                   bytes_of(sh, o->d, st * n) + bytes_of(sh, o->w, (double)o->cols);
        return;
    }
    case LK_LAYERNORM_DW: case LK_RMSNORM_DW: {
        double st = o->kernel == LK_RMSNORM_DW ? 1 : 2;
        o->bytes = bytes_of(sh, o->a, cells) + bytes_of(sh, o->b, cells) +
                   bytes_of(sh, o->d, st * n) + 2 * bytes_of(sh, o->c, st * (double)o->cols);
        return;
    }
    case LK_ALLREDUCE:
        o->bytes = bytes_of(sh, o->c, n);
        return;
    case LK_ROUTE: // the logits (or their gradient) read, k (int32 index, fp32 weight) a row
        o->bytes = bytes_of(sh, o->a, cells) + 8.0 * n * (double)(sh->topk > 0 ? sh->topk : 1) +
                   (o->c == LB_DROUTE ? bytes_of(sh, o->c, cells) : 0);
        return;
    case LK_PERMUTE: { // n routed copies on the expert side, n / k on the token side, each
        // moved once; an accumulated token-side output read again
        double tok = n / (double)(sh->topk > 0 ? sh->topk : 1);
        o->bytes = bytes_of(sh, o->a, n) + bytes_of(sh, o->c, tok) +
                   (o->beta != 0 ? bytes_of(sh, o->c, tok) : 0);
        return;
    }
    case LK_ALLTOALL: // the collective's size: the buffer this rank sends
        o->bytes = bytes_of(sh, o->c, n);
        return;
    case LK_ALLGATHER: case LK_REDUCE_SCATTER: { // the collective's size: the whole buffer
        double group = o->over ? (double)(sh->context > 1 ? sh->context : 1) : t;
        o->bytes = bytes_of(sh, o->kernel == LK_ALLGATHER ? o->c : o->a, group * n);
        return;
    }
    default: // COPY, SOFTMAX, GELU, DROPOUT: read a, write c
        o->bytes = bytes_of(sh, o->a, cells) + bytes_of(sh, o->c, cells);
        return;
    }
}

int layer_shape_is_gpt(const LayerShape *sh) {
    return (sh->kv_heads <= 0 || sh->kv_heads == sh->heads) &&
           (sh->head_dim <= 0 || sh->head_dim * sh->heads == sh->hidden) && !sh->swiglu &&
           !sh->rms && !sh->flash && !sh->seqpar && sh->context <= 1 && !sh->moe;
}

int layer_kernel_is_collective(int kernel) {
    return kernel == LK_ALLREDUCE || kernel == LK_ALLGATHER || kernel == LK_REDUCE_SCATTER ||
           kernel == LK_ALLTOALL;
}

int layer_ops(const LayerShape *sh, OpKind pass, LayerOp *ops) {
    List l = {.sh = sh, .d = dims_of(sh), .o = ops};
    if (pass == OP_F) forward(&l);
    else if (pass == OP_B) backward_input(&l);
    else if (pass == OP_W) backward_weight(&l);
    else return -1;
    for (int i = 0; i < l.n; i++) count(sh, &ops[i]);
    return l.n;
}

static double sum(const LayerShape *sh, OpKind pass, int bytes) {
    LayerOp ops[LAYER_OPS_MAX];
    int n = layer_ops(sh, pass, ops);
    double t = 0;
    for (int i = 0; i < n; i++) t += bytes ? ops[i].bytes : ops[i].flops;
    return t;
}

double layer_ops_flops(const LayerShape *sh, OpKind pass) { return sum(sh, pass, 0); }
double layer_ops_bytes(const LayerShape *sh, OpKind pass) { return sum(sh, pass, 1); }
