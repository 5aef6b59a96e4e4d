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
    int64_t hl, hd, hq;  // this rank's heads, head dimension, this rank's attention width
    int64_t fl;          // this rank's MLP columns
    int64_t ld;          // row length of qkv: 3 hq
    int64_t ss, as;      // one head's scores s^2; one sample's scores of all local heads
    int t, drop;         // tensor-parallel ranks; whether the dropouts run
} Dims;

static Dims dims_of(const LayerShape *sh) {
    Dims d = {.T = layer_tokens(sh), .h = sh->hidden, .s = sh->seq, .b = sh->samples,
              .t = layer_tp(sh), .drop = sh->dropout > 0};
    d.hl = sh->heads / d.t, d.hd = sh->hidden / sh->heads, d.hq = d.hl * d.hd;
    d.fl = sh->ffn / d.t, d.ld = 3 * d.hq, d.ss = d.s * d.s, d.as = d.hl * d.ss;
    return d;
}

int layer_buf_elem_bytes(const LayerShape *sh, LayerBuf b) {
    int fp32 = b == LB_SCORE || b == LB_DPROBD || b == LB_DPROB || b == LB_ST1 || b == LB_ST2 ||
               (b >= LB_FIRST_GRAD && b < LB_LAYER_END) || b == LB_LOGITS || b == LB_GVOCAB;
    return fp32 ? 4 : sh->elem > 0 ? sh->elem : 2;
}

int64_t layer_buf_elems(const LayerShape *sh, LayerBuf b) {
    Dims d = dims_of(sh);
    switch (b) {
    case LB_QKV: case LB_DQKV: return d.T * d.ld;
    case LB_CTX: case LB_DCTX: return d.T * d.hq;
    case LB_U: case LB_GELU: case LB_DU: case LB_DGELU: return d.T * d.fl;
    case LB_PROB: case LB_SCORE: case LB_DPROB: case LB_DSCORE: return d.b * d.as;
    case LB_PROBD: case LB_DPROBD: return d.drop ? d.b * d.as : 0; // only with dropout
    case LB_ST1: case LB_ST2: return 2 * d.T;
    case LB_WQKV: case LB_GQKV: return d.h * d.ld;
    case LB_WO: case LB_GO: return d.hq * d.h;
    case LB_W1: case LB_G1: case LB_W2: case LB_G2: return d.h * d.fl;
    case LB_LN1: case LB_LN2: case LB_GLN1: case LB_GLN2: return 2 * d.h;
    case LB_LOGITS: return d.T * (sh->vocab / d.t);
    case LB_WVOCAB: case LB_GVOCAB: return d.h * (sh->vocab / d.t);
    case LB_COUNT: return 0;
    default: return d.T * d.h; // IN, OUT, X, XN1, X1, XN2, DO, DXN2, DA, DXN1, A, O, DX1
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
    l->o[l->n] = op;
    return &l->o[l->n++];
}

static void gemm(List *l, const char *name, LayerClass cls, int ta, int tb, int64_t M, int64_t N,
                 int64_t K, float alpha, LayerBuf a, int64_t lda, LayerBuf b, int64_t ldb,
                 float beta, LayerBuf c, int64_t ldc) {
    push(l, (LayerOp){.name = name, .kernel = LK_GEMM, .cls = (uint8_t)cls, .ta = (uint8_t)ta,
                      .tb = (uint8_t)tb, .a = a, .b = b, .c = c, .d = LB_COUNT, .w = LB_COUNT,
                      .M = M, .N = N, .K = K, .lda = lda, .ldb = ldb, .ldc = ldc,
                      .alpha = alpha, .beta = beta});
}

/* An attention GEMM of one (sample, local head): batched over heads, repeated over samples,
 * with operand offsets offs, batch strides sab and repeat strides rab (a, b, c). */
static void heads(List *l, const char *name, int ta, int tb, int64_t M, int64_t N, int64_t K,
                  float alpha, LayerBuf a, int64_t lda, LayerBuf b, int64_t ldb, LayerBuf c,
                  int64_t ldc, const int64_t offs[3], const int64_t sab[3], const int64_t rab[3]) {
    gemm(l, name, LC_ATTENTION, ta, tb, M, N, K, alpha, a, lda, b, ldb, 0, c, ldc);
    LayerOp *o = &l->o[l->n - 1];
    o->a_off = offs[0], o->b_off = offs[1], o->c_off = offs[2];
    o->batch = l->d.hl, o->sa = sab[0], o->sb = sab[1], o->sc = sab[2];
    o->repeat = l->d.b, o->ra = rab[0], o->rb = rab[1], o->rc = rab[2];
}

static LayerOp *elementwise(List *l, const char *name, LayerKernel k, LayerClass cls, LayerBuf a,
                            LayerBuf b, LayerBuf c, int64_t n, int64_t cols) {
    return push(l, (LayerOp){.name = name, .kernel = (uint8_t)k, .cls = (uint8_t)cls, .a = a,
                             .b = b, .c = c, .d = LB_COUNT, .w = LB_COUNT, .n = n,
                             .cols = cols});
}

static void dropout(List *l, const char *name, LayerKernel k, LayerClass cls, LayerBuf a,
                    LayerBuf b, LayerBuf c, int64_t n, uint32_t salt) {
    float p = l->sh->dropout > 0 ? l->sh->dropout : 0;
    LayerOp *o = elementwise(l, name, k, cls, a, b, c, n, 0);
    o->p = p, o->salt = salt, o->alpha = 1.0f / (1.0f - p);
    o->mask_blk = n, o->mask_stride = 0, o->mask_off = 0;
    if (salt == 0) { // the attention scores: this rank's heads of each sample, among all heads
        const Dims *d = &l->d;
        o->mask_blk = d->as, o->mask_stride = d->as * d->t;
        o->mask_off = (int64_t)(l->sh->rank % d->t) * d->as;
    }
    double keep = floor((double)p * 4294967296.0);
    o->keep_min = keep >= 4294967295.0 ? 4294967295u : (uint32_t)keep;
}

static void layernorm(List *l, const char *name, LayerKernel k, LayerBuf a, LayerBuf b,
                      LayerBuf c, LayerBuf stats, LayerBuf w, float beta) {
    LayerOp *o = elementwise(l, name, k, LC_MEMORY, a, b, c, l->d.T, l->d.h);
    o->d = stats, o->w = w, o->beta = beta;
}

static void allreduce(List *l, const char *name, LayerBuf c) {
    if (l->d.t > 1) elementwise(l, name, LK_ALLREDUCE, LC_COMM, c, c, c, l->d.T * l->d.h, 0);
}

/* ---- the passes ---- */

static void forward(List *l) {
    const Dims *d = &l->d;
    int64_t T = d->T, h = d->h, s = d->s, ld = d->ld, hq = d->hq, hd = d->hd;
    float scale = 1.0f / sqrtf((float)hd);
    LayerBuf probs = d->drop ? LB_PROBD : LB_PROB; // what attention multiplies V by
    elementwise(l, "copy_x", LK_COPY, LC_MEMORY, LB_IN, LB_IN, LB_X, T * h, 0);
    layernorm(l, "ln1", LK_LAYERNORM, LB_X, LB_X, LB_XN1, LB_ST1, LB_LN1, 0);
    gemm(l, "qkv", LC_GEMM, 0, 0, T, ld, h, 1, LB_XN1, h, LB_WQKV, ld, 0, LB_QKV, ld);
    heads(l, "score", 0, 1, s, s, hd, scale, LB_QKV, ld, LB_QKV, ld, LB_SCORE, s,
          (int64_t[]){0, hq, 0}, (int64_t[]){hd, hd, d->ss}, (int64_t[]){s * ld, s * ld, d->as});
    elementwise(l, "softmax", LK_SOFTMAX, LC_ATTENTION, LB_SCORE, LB_SCORE, LB_PROB,
                d->b * d->hl * s, s);
    if (d->drop)
        dropout(l, "attn_dropout", LK_DROPOUT, LC_ATTENTION, LB_PROB, LB_PROB, LB_PROBD,
                d->b * d->as, 0);
    heads(l, "attn_v", 0, 0, s, hd, s, 1, probs, s, LB_QKV, ld, LB_CTX, hq,
          (int64_t[]){0, 2 * hq, 0}, (int64_t[]){d->ss, hd, hd},
          (int64_t[]){d->as, s * ld, s * hq});
    gemm(l, "out_proj", LC_GEMM, 0, 0, T, h, hq, 1, LB_CTX, hq, LB_WO, h, 0, LB_A, h);
    allreduce(l, "out_proj_allreduce", LB_A);
    dropout(l, "residual1", LK_DROPOUT_ADD, LC_MEMORY, LB_A, LB_X, LB_X1, T * h, 1);
    layernorm(l, "ln2", LK_LAYERNORM, LB_X1, LB_X1, LB_XN2, LB_ST2, LB_LN2, 0);
    gemm(l, "mlp_up", LC_GEMM, 0, 0, T, d->fl, h, 1, LB_XN2, h, LB_W1, d->fl, 0, LB_U, d->fl);
    elementwise(l, "gelu", LK_GELU, LC_MEMORY, LB_U, LB_U, LB_GELU, T * d->fl, 0);
    gemm(l, "mlp_down", LC_GEMM, 0, 0, T, h, d->fl, 1, LB_GELU, d->fl, LB_W2, h, 0, LB_O, h);
    allreduce(l, "mlp_down_allreduce", LB_O);
    dropout(l, "residual2", LK_DROPOUT_ADD, LC_MEMORY, LB_O, LB_X1, LB_OUT, T * h, 2);
}

static void backward_input(List *l) {
    const Dims *d = &l->d;
    int64_t T = d->T, h = d->h, s = d->s, ld = d->ld, hq = d->hq, hd = d->hd, fl = d->fl;
    float scale = 1.0f / sqrtf((float)hd);
    LayerBuf probs = d->drop ? LB_PROBD : LB_PROB, dprobs = d->drop ? LB_DPROBD : LB_DPROB;
    if (d->drop) dropout(l, "mlp_dropout_bw", LK_DROPOUT, LC_MEMORY, LB_IN, LB_IN, LB_DO, T * h, 2);
    else elementwise(l, "copy_dy", LK_COPY, LC_MEMORY, LB_IN, LB_IN, LB_DO, T * h, 0);
    gemm(l, "mlp_down_dx", LC_GEMM, 0, 1, T, fl, h, 1, LB_DO, h, LB_W2, h, 0, LB_DGELU, fl);
    elementwise(l, "gelu_bw", LK_GELU_BW, LC_MEMORY, LB_DGELU, LB_U, LB_DU, T * fl, 0);
    gemm(l, "mlp_up_dx", LC_GEMM, 0, 1, T, h, fl, 1, LB_DU, fl, LB_W1, fl, 0, LB_DXN2, h);
    allreduce(l, "mlp_up_dx_allreduce", LB_DXN2);
    elementwise(l, "copy_dx1", LK_COPY, LC_MEMORY, LB_IN, LB_IN, LB_DX1, T * h, 0);
    layernorm(l, "ln2_bw", LK_LAYERNORM_BW, LB_DXN2, LB_X1, LB_DX1, LB_ST2, LB_LN2, 1);
    if (d->drop) dropout(l, "attn_out_dropout_bw", LK_DROPOUT, LC_MEMORY, LB_DX1, LB_DX1, LB_DA, T * h, 1);
    else elementwise(l, "copy_da", LK_COPY, LC_MEMORY, LB_DX1, LB_DX1, LB_DA, T * h, 0);
    gemm(l, "out_proj_dx", LC_GEMM, 0, 1, T, hq, h, 1, LB_DA, h, LB_WO, h, 0, LB_DCTX, hq);
    heads(l, "attn_dv", 1, 0, s, hd, s, 1, probs, s, LB_DCTX, hq, LB_DQKV, ld,
          (int64_t[]){0, 0, 2 * hq}, (int64_t[]){d->ss, hd, hd},
          (int64_t[]){d->as, s * hq, s * ld});
    heads(l, "attn_dprob", 0, 1, s, s, hd, 1, LB_DCTX, hq, LB_QKV, ld, dprobs, s,
          (int64_t[]){0, 2 * hq, 0}, (int64_t[]){hd, hd, d->ss},
          (int64_t[]){s * hq, s * ld, d->as});
    if (d->drop)
        dropout(l, "attn_dropout_bw", LK_DROPOUT, LC_ATTENTION, LB_DPROBD, LB_DPROBD, LB_DPROB,
                d->b * d->as, 0);
    LayerOp *sm = elementwise(l, "softmax_bw", LK_SOFTMAX_BW, LC_ATTENTION, LB_PROB, LB_DPROB,
                              LB_DSCORE, d->b * d->hl * s, s);
    sm->alpha = scale;
    heads(l, "attn_dq", 0, 0, s, hd, s, 1, LB_DSCORE, s, LB_QKV, ld, LB_DQKV, ld,
          (int64_t[]){0, hq, 0}, (int64_t[]){d->ss, hd, hd},
          (int64_t[]){d->as, s * ld, s * ld});
    heads(l, "attn_dk", 1, 0, s, hd, s, 1, LB_DSCORE, s, LB_QKV, ld, LB_DQKV, ld,
          (int64_t[]){0, 0, hq}, (int64_t[]){d->ss, hd, hd},
          (int64_t[]){d->as, s * ld, s * ld});
    gemm(l, "qkv_dx", LC_GEMM, 0, 1, T, h, ld, 1, LB_DQKV, ld, LB_WQKV, ld, 0, LB_DXN1, h);
    allreduce(l, "qkv_dx_allreduce", LB_DXN1);
    elementwise(l, "copy_dx", LK_COPY, LC_MEMORY, LB_DX1, LB_DX1, LB_OUT, T * h, 0);
    layernorm(l, "ln1_bw", LK_LAYERNORM_BW, LB_DXN1, LB_X, LB_OUT, LB_ST1, LB_LN1, 1);
}

static void backward_weight(List *l) {
    const Dims *d = &l->d;
    int64_t T = d->T, h = d->h, ld = d->ld, hq = d->hq, fl = d->fl;
    gemm(l, "mlp_down_dw", LC_GEMM, 1, 0, fl, h, T, 1, LB_GELU, fl, LB_DO, h, 1, LB_G2, h);
    gemm(l, "mlp_up_dw", LC_GEMM, 1, 0, h, fl, T, 1, LB_XN2, h, LB_DU, fl, 1, LB_G1, fl);
    layernorm(l, "ln2_dw", LK_LAYERNORM_DW, LB_DXN2, LB_X1, LB_GLN2, LB_ST2, LB_COUNT, 1);
    gemm(l, "out_proj_dw", LC_GEMM, 1, 0, hq, h, T, 1, LB_CTX, hq, LB_DA, h, 1, LB_GO, h);
    gemm(l, "qkv_dw", LC_GEMM, 1, 0, h, ld, T, 1, LB_XN1, h, LB_DQKV, ld, 1, LB_GQKV, ld);
    layernorm(l, "ln1_dw", LK_LAYERNORM_DW, LB_DXN1, LB_X, LB_GLN1, LB_ST1, LB_COUNT, 1);
}

/* ---- around the layers ---- */

static void count(const LayerShape *sh, LayerOp *o);

static void head_lists(List *l, OpKind pass) {
    const Dims *d = &l->d;
    int64_t T = d->T, h = d->h, Vl = l->sh->vocab / d->t;
    if (pass == OP_F) {
        layernorm(l, "ln_final", LK_LAYERNORM, LB_IN, LB_IN, LB_XN1, LB_ST1, LB_LN1, 0);
        gemm(l, "logits", LC_GEMM, 0, 0, T, Vl, h, 1, LB_XN1, h, LB_WVOCAB, Vl, 0, LB_LOGITS, Vl);
        elementwise(l, "cross_entropy", LK_SOFTMAX, LC_MEMORY, LB_LOGITS, LB_LOGITS, LB_LOGITS,
                    T, Vl);
        for (int i = 0; i < 3 && d->t > 1; i++) // max, sum and the target's logit per token
            elementwise(l, "cross_entropy_allreduce", LK_ALLREDUCE, LC_COMM, LB_ST1, LB_ST1,
                        LB_ST1, T / 2 + 1, 0);
    } else if (pass == OP_B) {
        elementwise(l, "cross_entropy_bw", LK_COPY, LC_MEMORY, LB_LOGITS, LB_LOGITS, LB_LOGITS,
                    T * Vl, 0);
        gemm(l, "logits_dx", LC_GEMM, 0, 1, T, h, Vl, 1, LB_LOGITS, Vl, LB_WVOCAB, Vl, 0, LB_DXN1, h);
        allreduce(l, "logits_dx_allreduce", LB_DXN1);
        layernorm(l, "ln_final_bw", LK_LAYERNORM_BW, LB_DXN1, LB_X, LB_OUT, LB_ST1, LB_LN1, 0);
    } else if (pass == OP_W) {
        gemm(l, "logits_dw", LC_GEMM, 1, 0, h, Vl, T, 1, LB_XN1, h, LB_LOGITS, Vl, 1, LB_GVOCAB, Vl);
        layernorm(l, "ln_final_dw", LK_LAYERNORM_DW, LB_DXN1, LB_X, LB_GLN1, LB_ST1, LB_COUNT, 1);
    }
}

static void embed_lists(List *l, OpKind pass) {
    const Dims *d = &l->d;
    int64_t T = d->T, h = d->h;
    if (pass == OP_F) {
        elementwise(l, "embedding", LK_COPY, LC_MEMORY, LB_WVOCAB, LB_WVOCAB, LB_OUT, T * h, 0);
        allreduce(l, "embedding_allreduce", LB_OUT);
    } else if (pass == OP_W) {
        LayerOp *o = elementwise(l, "embedding_dw", LK_DROPOUT_ADD, LC_MEMORY, LB_IN, LB_GVOCAB,
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

static void count(const LayerShape *sh, LayerOp *o) {
    double n = (double)o->n, cells = o->cols ? n * (double)o->cols : n;
    switch ((LayerKernel)o->kernel) {
    case LK_GEMM: {
        double cnt = (double)(o->batch * o->repeat);
        o->flops = 2.0 * (double)o->M * (double)o->N * (double)o->K * cnt;
        o->bytes = bytes_of(sh, o->a, (double)o->M * (double)o->K * cnt) +
                   bytes_of(sh, o->b, (double)o->K * (double)o->N * cnt) +
                   bytes_of(sh, o->c, (double)o->M * (double)o->N * cnt) * (o->beta != 0 ? 2 : 1);
        return;
    }
    case LK_SOFTMAX_BW: case LK_GELU_BW: case LK_DROPOUT_ADD:
        o->bytes = bytes_of(sh, o->a, cells) + bytes_of(sh, o->b, cells) + bytes_of(sh, o->c, cells);
        return;
    case LK_LAYERNORM:
        o->bytes = bytes_of(sh, o->a, cells) + bytes_of(sh, o->c, cells) +
                   bytes_of(sh, o->d, 2 * n) + bytes_of(sh, o->w, 2.0 * (double)o->cols);
        return;
    case LK_LAYERNORM_BW:
        o->bytes = bytes_of(sh, o->a, cells) + bytes_of(sh, o->b, cells) +
                   bytes_of(sh, o->c, cells) * (o->beta != 0 ? 2 : 1) +
                   bytes_of(sh, o->d, 2 * n) + bytes_of(sh, o->w, (double)o->cols);
        return;
    case LK_LAYERNORM_DW:
        o->bytes = bytes_of(sh, o->a, cells) + bytes_of(sh, o->b, cells) +
                   bytes_of(sh, o->d, 2 * n) + 2 * bytes_of(sh, o->c, 2.0 * (double)o->cols);
        return;
    case LK_ALLREDUCE:
        o->bytes = bytes_of(sh, o->c, n);
        return;
    default: // COPY, SOFTMAX, GELU, DROPOUT: read a, write c
        o->bytes = bytes_of(sh, o->a, cells) + bytes_of(sh, o->c, cells);
        return;
    }
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
