/* sim/model/layer_ops.c: the op lists of a layer's F, B and W passes: attention as strided
 * batches over heads repeated over samples. Nothing here runs a kernel. */
#include "sim/model/layer_ops.h"

#include <math.h>
#include <string.h>

int layer_buf_elem_bytes(LayerBuf b) {
    return b == LB_SCORE || b == LB_DPROB || b >= LB_GQKV ? 4 : 2;
}

int64_t layer_buf_elems(const LayerShape *sh, LayerBuf b) {
    int64_t T = layer_tokens(sh), h = sh->hidden, f = sh->ffn;
    int64_t att = (int64_t)sh->samples * sh->heads * sh->seq * sh->seq;
    static const struct { LayerBuf b; int what; } table[] = {
        {LB_IN, 0}, {LB_OUT, 0}, {LB_X, 0}, {LB_CTX, 0}, {LB_X1, 0}, {LB_DY, 0}, {LB_DX1, 0},
        {LB_DCTX, 0}, {LB_QKV, 1}, {LB_DQKV, 1}, {LB_U, 2}, {LB_GELU, 2}, {LB_DU, 2},
        {LB_DGELU, 2}, {LB_PROB, 3}, {LB_SCORE, 3}, {LB_DPROB, 3}, {LB_DSCORE, 3},
        {LB_WQKV, 4}, {LB_GQKV, 4}, {LB_WO, 5}, {LB_GO, 5}, {LB_W1, 6}, {LB_G1, 6},
        {LB_W2, 6}, {LB_G2, 6}};
    int64_t n[] = {T * h, T * 3 * h, T * f, att, 3 * h * h, h * h, h * f};
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (table[i].b == b) return n[table[i].what];
    return 0;
}

/* Bytes an op's operand touches: rows x cols elements per matrix, batch*repeat matrices. */
static double operand_bytes(LayerBuf b, int64_t rows, int64_t cols, int64_t count) {
    return (double)rows * (double)cols * (double)count * layer_buf_elem_bytes(b);
}

static LayerOp gemm(const char *name, int ta, int tb, int64_t M, int64_t N, int64_t K,
                    float alpha, LayerBuf a, int64_t lda, LayerBuf b, int64_t ldb, float beta,
                    LayerBuf c, int64_t ldc) {
    return (LayerOp){.name = name, .kernel = LK_GEMM, .ta = (uint8_t)ta, .tb = (uint8_t)tb,
                     .a = a, .b = b, .c = c, .M = M, .N = N, .K = K, .lda = lda, .ldb = ldb,
                     .ldc = ldc, .batch = 1, .repeat = 1, .alpha = alpha, .beta = beta};
}

/* Makes a GEMM an attention one: batch over heads, repeat over samples. */
static LayerOp heads(LayerOp o, const LayerShape *sh, int64_t offs[3], int64_t sab[3],
                     int64_t rab[3]) {
    o.a_off = offs[0], o.b_off = offs[1], o.c_off = offs[2];
    o.batch = sh->heads, o.sa = sab[0], o.sb = sab[1], o.sc = sab[2];
    o.repeat = sh->samples, o.ra = rab[0], o.rb = rab[1], o.rc = rab[2];
    return o;
}

static LayerOp elementwise(const char *name, LayerKernel k, LayerBuf a, LayerBuf b, LayerBuf c,
                           int64_t n, int64_t cols) {
    return (LayerOp){.name = name, .kernel = (uint8_t)k, .a = a, .b = b, .c = c, .n = n,
                     .cols = cols, .batch = 1, .repeat = 1};
}

/* Fills flops and bytes. */
static void count(LayerOp *o) {
    if (o->kernel != LK_GEMM) {
        int64_t elems = o->kernel == LK_SOFTMAX || o->kernel == LK_SOFTMAX_BW ? o->n * o->cols
                                                                               : o->n;
        int reads = o->kernel == LK_SOFTMAX_BW || o->kernel == LK_GELU_BW ? 2 : 1;
        o->bytes = operand_bytes(o->a, elems, 1, 1) + operand_bytes(o->c, elems, 1, 1);
        if (reads == 2) o->bytes += operand_bytes(o->b, elems, 1, 1);
        return;
    }
    int64_t cnt = o->batch * o->repeat;
    o->flops = 2.0 * (double)o->M * (double)o->N * (double)o->K * (double)cnt;
    o->bytes = operand_bytes(o->a, o->M, o->K, cnt) + operand_bytes(o->b, o->K, o->N, cnt) +
               operand_bytes(o->c, o->M, o->N, cnt) * (o->beta != 0 ? 2 : 1);
}

static int forward(const LayerShape *sh, LayerOp *o) {
    int64_t T = layer_tokens(sh), h = sh->hidden, f = sh->ffn, s = sh->seq;
    int64_t d = h / sh->heads, ld = 3 * h, ss = s * s, as = sh->heads * ss;
    float scale = 1.0f / sqrtf((float)d);
    int n = 0;
    o[n++] = elementwise("copy_x", LK_COPY, LB_IN, LB_IN, LB_X, T * h, 0);
    o[n++] = gemm("qkv", 0, 0, T, 3 * h, h, 1, LB_X, h, LB_WQKV, 3 * h, 0, LB_QKV, 3 * h);
    o[n++] = heads(gemm("score", 0, 1, s, s, d, scale, LB_QKV, ld, LB_QKV, ld, 0, LB_SCORE, s),
                   sh, (int64_t[]){0, h, 0}, (int64_t[]){d, d, ss}, (int64_t[]){s * ld, s * ld, as});
    o[n++] = elementwise("softmax", LK_SOFTMAX, LB_SCORE, LB_SCORE, LB_PROB,
                         (int64_t)sh->samples * sh->heads * s, s);
    o[n++] = heads(gemm("attn_v", 0, 0, s, d, s, 1, LB_PROB, s, LB_QKV, ld, 0, LB_CTX, h), sh,
                   (int64_t[]){0, 2 * h, 0}, (int64_t[]){ss, d, d}, (int64_t[]){as, s * ld, s * h});
    o[n++] = elementwise("copy_x1", LK_COPY, LB_X, LB_X, LB_X1, T * h, 0);
    o[n++] = gemm("out_proj", 0, 0, T, h, h, 1, LB_CTX, h, LB_WO, h, 1, LB_X1, h);
    o[n++] = gemm("mlp_up", 0, 0, T, f, h, 1, LB_X1, h, LB_W1, f, 0, LB_U, f);
    o[n++] = elementwise("gelu", LK_GELU, LB_U, LB_U, LB_GELU, T * f, 0);
    o[n++] = elementwise("copy_y", LK_COPY, LB_X1, LB_X1, LB_OUT, T * h, 0);
    o[n++] = gemm("mlp_down", 0, 0, T, h, f, 1, LB_GELU, f, LB_W2, h, 1, LB_OUT, h);
    return n;
}

static int backward_input(const LayerShape *sh, LayerOp *o) {
    int64_t T = layer_tokens(sh), h = sh->hidden, f = sh->ffn, s = sh->seq;
    int64_t d = h / sh->heads, ld = 3 * h, ss = s * s, as = sh->heads * ss;
    float scale = 1.0f / sqrtf((float)d);
    int n = 0;
    o[n++] = elementwise("copy_dy", LK_COPY, LB_IN, LB_IN, LB_DY, T * h, 0);
    o[n++] = gemm("mlp_down_dx", 0, 1, T, f, h, 1, LB_DY, h, LB_W2, h, 0, LB_DGELU, f);
    o[n++] = elementwise("gelu_bw", LK_GELU_BW, LB_DGELU, LB_U, LB_DU, T * f, 0);
    o[n++] = elementwise("copy_dx1", LK_COPY, LB_DY, LB_DY, LB_DX1, T * h, 0);
    o[n++] = gemm("mlp_up_dx", 0, 1, T, h, f, 1, LB_DU, f, LB_W1, f, 1, LB_DX1, h);
    o[n++] = gemm("out_proj_dx", 0, 1, T, h, h, 1, LB_DX1, h, LB_WO, h, 0, LB_DCTX, h);
    o[n++] = heads(gemm("attn_dv", 1, 0, s, d, s, 1, LB_PROB, s, LB_DCTX, h, 0, LB_DQKV, ld), sh,
                   (int64_t[]){0, 0, 2 * h}, (int64_t[]){ss, d, d}, (int64_t[]){as, s * h, s * ld});
    o[n++] = heads(gemm("attn_dprob", 0, 1, s, s, d, 1, LB_DCTX, h, LB_QKV, ld, 0, LB_DPROB, s),
                   sh, (int64_t[]){0, 2 * h, 0}, (int64_t[]){d, d, ss}, (int64_t[]){s * h, s * ld, as});
    LayerOp sm = elementwise("softmax_bw", LK_SOFTMAX_BW, LB_PROB, LB_DPROB, LB_DSCORE,
                             (int64_t)sh->samples * sh->heads * s, s);
    sm.alpha = scale;
    o[n++] = sm;
    o[n++] = heads(gemm("attn_dq", 0, 0, s, d, s, 1, LB_DSCORE, s, LB_QKV, ld, 0, LB_DQKV, ld),
                   sh, (int64_t[]){0, h, 0}, (int64_t[]){ss, d, d}, (int64_t[]){as, s * ld, s * ld});
    o[n++] = heads(gemm("attn_dk", 1, 0, s, d, s, 1, LB_DSCORE, s, LB_QKV, ld, 0, LB_DQKV, ld),
                   sh, (int64_t[]){0, 0, h}, (int64_t[]){ss, d, d}, (int64_t[]){as, s * ld, s * ld});
    o[n++] = elementwise("copy_dx", LK_COPY, LB_DX1, LB_DX1, LB_OUT, T * h, 0);
    o[n++] = gemm("qkv_dx", 0, 1, T, h, 3 * h, 1, LB_DQKV, 3 * h, LB_WQKV, 3 * h, 1, LB_OUT, h);
    return n;
}

static int backward_weight(const LayerShape *sh, LayerOp *o) {
    int64_t T = layer_tokens(sh), h = sh->hidden, f = sh->ffn;
    int n = 0;
    o[n++] = gemm("mlp_down_dw", 1, 0, f, h, T, 1, LB_GELU, f, LB_DY, h, 1, LB_G2, h);
    o[n++] = gemm("mlp_up_dw", 1, 0, h, f, T, 1, LB_X1, h, LB_DU, f, 1, LB_G1, f);
    o[n++] = gemm("out_proj_dw", 1, 0, h, h, T, 1, LB_CTX, h, LB_DX1, h, 1, LB_GO, h);
    o[n++] = gemm("qkv_dw", 1, 0, h, 3 * h, T, 1, LB_X, h, LB_DQKV, 3 * h, 1, LB_GQKV, 3 * h);
    return n;
}

int layer_ops(const LayerShape *sh, OpKind pass, LayerOp *ops) {
    int n = pass == OP_F ? forward(sh, ops) : pass == OP_B ? backward_input(sh, ops)
          : pass == OP_W ? backward_weight(sh, ops) : -1;
    for (int i = 0; i < n; i++) count(&ops[i]);
    return n;
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
