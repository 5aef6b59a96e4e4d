/* sim/scenario/hf_config.c: reads a Hugging Face config.json (Llama, Mistral, Qwen2, Gemma and
 * Gemma 2; the mixtures of experts Mixtral, Qwen2-MoE and DeepSeek-V3) with jansson into
 * [model] key values, checking every field. Not here: sliding-window attention (the window
 * comes back to the scenario parser, which checks it against seq_len), DeepSeek's multi-head
 * latent attention and multi-token prediction (refused through why_not: the scenario gives
 * kv_heads, head_dim and layers itself), other families (refused). */
#include "sim/scenario/hf_config.h"

#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What transformers' config class of each family assumes for a field the file leaves out
 * (LlamaConfig, MistralConfig, Qwen2Config, GemmaConfig, Gemma2Config). Every family has a
 * gated MLP (gate, up, down), RMSNorm and rotary positions. */
typedef struct {
    const char *type;
    int tied;              // tie_word_embeddings
    const char *act;       // hidden_act (Gemma: hidden_activation)
    int64_t window;        // sliding_window, tokens; 0: none
    int window_needs_flag; // the window applies only with use_sliding_window = true (Qwen2)
} Family;
static const Family FAMILIES[] = {
    {"llama", 0, "silu", 0, 0},
    {"mistral", 0, "silu", 4096, 0},
    {"qwen2", 0, "silu", 4096, 1},
    {"gemma", 1, "gelu_pytorch_tanh", 0, 0},
    {"gemma2", 1, "gelu_pytorch_tanh", 4096, 0},
    {"mixtral", 0, "silu", 0, 0},       // MixtralConfig: sliding_window None
    {"qwen2_moe", 0, "silu", 4096, 1},  // Qwen2MoeConfig
    {"deepseek_v3", 0, "silu", 0, 0},   // DeepseekV3Config
};
/* The families whose expert fields pipesim reads (the others' must say at most 1 expert). */
static int family_has_experts(const char *type) {
    return strcmp(type, "mixtral") == 0 || strcmp(type, "qwen2_moe") == 0 ||
           strcmp(type, "deepseek_v3") == 0;
}
#define NFAMILIES (sizeof FAMILIES / sizeof FAMILIES[0])
#define FAMILY_LIST "llama, mistral, qwen2, gemma, gemma2, mixtral, qwen2_moe and deepseek_v3"

/* JSON types a field may have. */
typedef enum {
    J_INT,       // a whole number
    J_INT_NULL,  // a whole number or null (null: as if absent)
    J_BOOL,
    J_STRING,
    J_STRING_NULL,
    J_NUMBER,    // whole or real
    J_ANY,       // not read: it changes neither time nor memory
    J_EXPERTS,   // a count of experts: more than 1 is a mixture of experts
    J_STRINGS,   // an array of strings
} JsonKind;

typedef struct {
    const char *name;
    JsonKind kind;
    const char *key; // the [model] key it gives, or NULL
} Field;

/* Every field pipesim knows. The first group shapes the model; the rest only matter for
 * inference, numerics or the tokenizer (accepted and ignored); the MoE group is accepted
 * only while every expert count is at most 1. Anything else is refused: a shape field read
 * as nothing would give wrong numbers. */
static const Field FIELDS[] = {
    {"model_type", J_STRING, NULL},
    {"num_hidden_layers", J_INT, "layers"},
    {"hidden_size", J_INT, "hidden"},
    {"num_attention_heads", J_INT, "heads"},
    {"num_key_value_heads", J_INT_NULL, "kv_heads"},
    {"head_dim", J_INT_NULL, "head_dim"},
    {"vocab_size", J_INT, "vocab"},
    {"intermediate_size", J_INT, "ffn_hidden"},
    {"hidden_act", J_STRING, "mlp"},
    {"hidden_activation", J_STRING_NULL, "mlp"}, // Gemma: wins over hidden_act when set
    {"tie_word_embeddings", J_BOOL, "tied_embeddings"},
    {"attention_bias", J_BOOL, "bias"},
    {"mlp_bias", J_BOOL, "bias"},
    {"torch_dtype", J_STRING_NULL, "dtype"},
    {"dtype", J_STRING_NULL, "dtype"}, // transformers 4.56+ writes this name
    {"attention_dropout", J_NUMBER, "dropout"},
    {"max_position_embeddings", J_INT, NULL},
    {"sliding_window", J_INT_NULL, NULL},
    {"use_sliding_window", J_BOOL, NULL},
    {"layer_types", J_STRINGS, NULL},
    // accepted, not read
    {"architectures", J_ANY, NULL},
    {"_name_or_path", J_ANY, NULL},
    {"transformers_version", J_ANY, NULL},
    {"auto_map", J_ANY, NULL},
    {"bos_token_id", J_ANY, NULL},
    {"eos_token_id", J_ANY, NULL},
    {"pad_token_id", J_ANY, NULL},
    {"initializer_range", J_ANY, NULL},
    {"rms_norm_eps", J_ANY, NULL},
    {"rope_theta", J_ANY, NULL},
    {"rope_scaling", J_ANY, NULL},
    {"use_cache", J_ANY, NULL},
    {"pretraining_tp", J_ANY, NULL},
    {"max_window_layers", J_ANY, NULL},       // Qwen2: which layers a window would apply to
    {"attn_logit_softcapping", J_ANY, NULL},  // Gemma 2: elementwise tanh, not priced
    {"final_logit_softcapping", J_ANY, NULL},
    {"query_pre_attn_scalar", J_ANY, NULL},   // Gemma 2: the softmax scale
    {"cache_implementation", J_ANY, NULL},
    // mixture of experts (emit_moe maps them; only the families of family_has_experts may
    // have more than one expert)
    {"num_local_experts", J_EXPERTS, "experts"},   // Mixtral
    {"num_experts", J_EXPERTS, "experts"},         // Qwen2-MoE
    {"n_routed_experts", J_EXPERTS, "experts"},    // DeepSeek
    {"n_shared_experts", J_INT_NULL, "shared_experts"},
    {"num_experts_per_tok", J_INT_NULL, "experts_per_token"},
    {"moe_intermediate_size", J_INT_NULL, "expert_ffn_hidden"},
    {"shared_expert_intermediate_size", J_INT_NULL, NULL}, // Qwen2-MoE: shared_experts of it
    {"first_k_dense_replace", J_INT_NULL, "first_dense_layers"},
    {"moe_layer_freq", J_INT_NULL, "moe_layer_freq"},
    {"decoder_sparse_step", J_INT_NULL, NULL},     // Qwen2-MoE: (i + 1) % step == 0
    {"mlp_only_layers", J_ANY, NULL},              // Qwen2-MoE: dense layers (a prefix is read)
    {"norm_topk_prob", J_ANY, NULL},
    {"router_aux_loss_coef", J_ANY, NULL},
    {"output_router_logits", J_ANY, NULL},
    {"router_jitter_noise", J_ANY, NULL},
    {"routed_scaling_factor", J_ANY, NULL},        // DeepSeek: the gate weights' scale
    {"scoring_func", J_ANY, NULL},                 //   sigmoid gates: elementwise, as softmax
    {"topk_method", J_ANY, NULL},                  //   group-limited routing: which experts,
    {"n_group", J_ANY, NULL},                      //   not how many
    {"topk_group", J_ANY, NULL},
    {"aux_loss_alpha", J_ANY, NULL},
    {"seq_aux", J_ANY, NULL},
    {"ep_size", J_ANY, NULL},                      //   inference's expert parallelism
    {"quantization_config", J_ANY, NULL},          //   the released FP8 weights' format
    // DeepSeek's multi-head latent attention and multi-token prediction: refused through
    // why_not on kv_heads, head_dim and layers, which the scenario may give itself
    {"q_lora_rank", J_INT_NULL, NULL},
    {"kv_lora_rank", J_INT_NULL, NULL},
    {"qk_nope_head_dim", J_INT_NULL, NULL},
    {"qk_rope_head_dim", J_INT_NULL, NULL},
    {"v_head_dim", J_INT_NULL, NULL},
    {"num_nextn_predict_layers", J_INT_NULL, NULL},
};
#define NFIELDS (sizeof FIELDS / sizeof FIELDS[0])
#define SHAPE_FIELDS "num_hidden_layers, hidden_size, num_attention_heads, " \
                     "num_key_value_heads, head_dim, intermediate_size, vocab_size, hidden_act, " \
                     "tie_word_embeddings, attention_bias, mlp_bias, torch_dtype, " \
                     "attention_dropout"

static int say(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* err = the message, control characters (a field name may hold "\n") shown as '?' so it stays
 * one printable line. Returns 2. */
static int say(char *err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, SCN_ERR_MAX, fmt, ap);
    va_end(ap);
    for (char *c = err; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
    return 2;
}

const char *hf_config_field_of(const char *key) {
    for (size_t i = 0; i < NFIELDS; i++)
        if (FIELDS[i].key && strcmp(FIELDS[i].key, key) == 0) return FIELDS[i].name;
    return NULL;
}

static const Field *field_find(const char *name) {
    for (size_t i = 0; i < NFIELDS; i++)
        if (strcmp(FIELDS[i].name, name) == 0) return &FIELDS[i];
    return NULL;
}

static const char *json_kind_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "a whole number";
    case JSON_REAL: return "a real number";
    case JSON_TRUE: case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

/* Whether v has the type kind asks for; else err names the field and the type wanted. */
static int check_type(const char *shown, const char *name, JsonKind kind, const json_t *v,
                      char *err) {
    const char *want = NULL, *example = "";
    switch (kind) {
    case J_INT: if (!json_is_integer(v)) want = "a whole number", example = "32"; break;
    case J_INT_NULL: case J_EXPERTS:
        if (!json_is_integer(v) && !json_is_null(v)) want = "a whole number or null", example = "8";
        break;
    case J_BOOL: if (!json_is_boolean(v)) want = "true or false", example = "false"; break;
    case J_STRING: if (!json_is_string(v)) want = "a string", example = "\"silu\""; break;
    case J_STRING_NULL:
        if (!json_is_string(v) && !json_is_null(v)) want = "a string or null", example = "\"bfloat16\"";
        break;
    case J_NUMBER: if (!json_is_number(v)) want = "a number", example = "0.0"; break;
    case J_STRINGS: {
        size_t i;
        json_t *e;
        if (!json_is_array(v)) want = "an array of strings", example = "[\"full_attention\"]";
        json_array_foreach(v, i, e)
            if (!want && (!json_is_string(e) || (strcmp(json_string_value(e), "full_attention") != 0 &&
                                                 strcmp(json_string_value(e), "sliding_attention") != 0)))
                return say(err, "%s: field '%s' has entry %zu of %s; each must be "
                           "\"full_attention\" or \"sliding_attention\"", shown, name, i + 1,
                           json_is_string(e) ? "another name" : json_kind_name(e));
        break;
    }
    case J_ANY: break;
    }
    if (!want) return 0;
    return say(err, "%s: field '%s' is %s; it must be %s, e.g. \"%s\": %s", shown, name,
               json_kind_name(v), want, name, example);
}

static const json_t *get(const json_t *root, const char *name) {
    const json_t *v = json_object_get(root, name);
    return v && !json_is_null(v) ? v : NULL;
}

/* Appends one [model] value; value NULL leaves it to why_not. */
static HfValue *emit(HfConfig *out, const char *key, const char *field, const char *value) {
    assert(out->n < HF_MAX_VALUES); // map_fields emits at most one value per [model] key: 20
    HfValue *v = &out->v[out->n++];
    *v = (HfValue){.key = key, .field = field};
    if (value) snprintf(v->value, sizeof v->value, "%s", value);
    return v;
}

static void emit_int(HfConfig *out, const json_t *root, const char *name, const char *key) {
    const json_t *v = get(root, name);
    char text[32];
    if (!v) return;
    snprintf(text, sizeof text, "%lld", (long long)json_integer_value(v));
    emit(out, key, name, text);
}

/* mlp from the activation. Every family's MLP is gated: SiLU makes it SwiGLU; a GELU (Gemma)
 * makes it GeGLU, which pipesim has not: the same three matrices, so the same parameters and
 * GEMMs, and an elementwise activation of the same bytes, but not the same model, so the user
 * has to say mlp = swiglu to have it priced so. */
static void emit_mlp(HfConfig *out, const json_t *root, const Family *fam) {
    const char *field = "hidden_act", *act = fam->act;
    const json_t *ha = get(root, "hidden_act"), *hv = get(root, "hidden_activation");
    if (hv && strncmp(fam->type, "gemma", 5) == 0) field = "hidden_activation", act = json_string_value(hv);
    else if (ha) act = json_string_value(ha);
    else field = "model_type"; // the family's default
    if (strcmp(act, "silu") == 0 || strcmp(act, "swish") == 0) {
        emit(out, "mlp", field, "swiglu");
        return;
    }
    HfValue *v = emit(out, "mlp", field, NULL);
    char what[128];
    if (strcmp(field, "model_type") == 0) // no activation field: the family's default
        snprintf(what, sizeof what, "%s's default activation '%s' (the file has no hidden_act)",
                 fam->type, act);
    else
        snprintf(what, sizeof what, "%s '%.64s'", field, act);
    snprintf(v->why_not, sizeof v->why_not,
             "%s makes %s's gated MLP %s, which pipesim does not model; give [model] mlp = "
             "swiglu to price it as SwiGLU (the same three matrices and memory; only the "
             "elementwise activation differs)", what, fam->type,
             strncmp(act, "gelu", 4) == 0 ? "a GeGLU" : "something other than SwiGLU");
}

/* dtype from torch_dtype (or transformers 4.56's dtype). */
static void emit_dtype(HfConfig *out, const json_t *root) {
    static const char *const names[][2] = {{"bfloat16", "bf16"}, {"float16", "fp16"}, {"float32", "fp32"}};
    const char *field = get(root, "torch_dtype") ? "torch_dtype" : "dtype";
    const json_t *v = get(root, field);
    if (!v) return;
    for (size_t i = 0; i < 3; i++)
        if (strcmp(json_string_value(v), names[i][0]) == 0) {
            emit(out, "dtype", field, names[i][1]);
            return;
        }
    HfValue *hv = emit(out, "dtype", field, NULL);
    snprintf(hv->why_not, sizeof hv->why_not, "%s '%.64s' is not a training dtype pipesim "
             "models (bfloat16, float16, float32); give [model] dtype = bf16, fp16 or fp32",
             field, json_string_value(v));
}

/* The layers' attention window: sliding_window (or the family's default), where it applies. */
static int64_t window_of(const json_t *root, const Family *fam) {
    const json_t *w = json_object_get(root, "sliding_window"), *types = get(root, "layer_types");
    int64_t window = !w ? fam->window : json_is_integer(w) ? json_integer_value(w) : 0;
    if (window <= 0) return 0;
    if (types) {
        size_t i;
        json_t *e;
        json_array_foreach(types, i, e)
            if (strcmp(json_string_value(e), "sliding_attention") == 0) return window;
        return 0;
    }
    if (fam->window_needs_flag && !json_is_true(json_object_get(root, "use_sliding_window")))
        return 0;
    return window;
}

/* Checks every field of root, the expert counts first (a mixture of experts outside the
 * families whose expert fields pipesim reads is named as such, whatever other fields of its
 * family come before); returns 0 or 2 with err set. */
static int check_fields(const json_t *root, const char *shown, char *err) {
    const char *name;
    json_t *v;
    const json_t *t = get(root, "model_type");
    int moe_family = t && json_is_string(t) && family_has_experts(json_string_value(t));
    for (size_t i = 0; i < NFIELDS; i++) {
        v = json_object_get(root, FIELDS[i].name);
        if (FIELDS[i].kind != J_EXPERTS || !v) continue;
        if (check_type(shown, FIELDS[i].name, J_EXPERTS, v, err)) return 2;
        if (json_is_integer(v) && json_integer_value(v) > 1 && !moe_family)
            return say(err, "%s: %s = %lld makes this a mixture of experts, which pipesim "
                       "reads from mixtral, qwen2_moe and deepseek_v3 configs only; give "
                       "that model_type, or write the [model] keys (experts, "
                       "experts_per_token, ...) in the scenario", shown, FIELDS[i].name,
                       (long long)json_integer_value(v));
    }
    json_object_foreach((json_t *)root, name, v) { // the file's order: the first bad one is named
        const Field *f = field_find(name);
        if (!f)
            return say(err, "%s: unknown field '%.64s'; pipesim reads the %s fields (" SHAPE_FIELDS
                       ", and ones that change neither time nor memory, such as rope_theta) and "
                       "refuses others, since a shape it ignored would give wrong numbers: "
                       "remove the field, or write the [model] keys in the scenario instead",
                       shown, name, FAMILY_LIST);
        if (check_type(shown, name, f->kind, v, err)) return 2;
    }
    return 0;
}

static const Family *family_of(const json_t *root, const char *shown, char *err) {
    const json_t *t = get(root, "model_type");
    if (!t) {
        say(err, "%s: no model_type; pipesim maps the %s families and needs to know which "
            "(e.g. \"model_type\": \"llama\")", shown, FAMILY_LIST);
        return NULL;
    }
    for (size_t i = 0; i < NFAMILIES; i++)
        if (strcmp(json_string_value(t), FAMILIES[i].type) == 0) return &FAMILIES[i];
    say(err, "%s: model_type '%.64s' is not one pipesim maps; it reads %s configs (for "
        "another model, write its [model] keys in the scenario)", shown,
        json_string_value(t), FAMILY_LIST);
    return NULL;
}

/* A value pipesim cannot take from the config: key from field, refused with why. */
static void emit_refused(HfConfig *out, const char *key, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void emit_refused(HfConfig *out, const char *key, const char *field, const char *fmt, ...) {
    HfValue *v = emit(out, key, field, NULL);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->why_not, sizeof v->why_not, fmt, ap);
    va_end(ap);
}

static long long int_of(const json_t *root, const char *name) {
    const json_t *v = get(root, name);
    return v ? (long long)json_integer_value(v) : 0;
}

/* The MoE keys of the three families (DeepseekV3Config, MixtralConfig, Qwen2MoeConfig):
 * Mixtral's experts are intermediate_size wide; Qwen2-MoE's one shared expert of
 * shared_expert_intermediate_size is shared_experts of moe_intermediate_size (the same
 * matrices stacked; its sigmoid gate, h parameters, is left out), its mlp_only_layers read
 * when they are the first layers; DeepSeek's layer i is MoE when i >= first_k_dense_replace and
 * i % moe_layer_freq == 0, pipesim's rule. */
static void emit_moe(HfConfig *out, const json_t *root, const Family *fam) {
    const char *ef = strcmp(fam->type, "mixtral") == 0 ? "num_local_experts"
                     : strcmp(fam->type, "qwen2_moe") == 0 ? "num_experts" : "n_routed_experts";
    if (int_of(root, ef) <= 1) return; // a dense model
    emit_int(out, root, ef, "experts");
    emit_int(out, root, "num_experts_per_tok", "experts_per_token");
    if (strcmp(fam->type, "deepseek_v3") == 0) emit_int(out, root, "n_shared_experts", "shared_experts");
    long long fe = int_of(root, "moe_intermediate_size"), sie = int_of(root, "shared_expert_intermediate_size");
    if (strcmp(fam->type, "qwen2_moe") == 0 && sie > 0) {
        char text[32];
        snprintf(text, sizeof text, "%lld", fe > 0 ? sie / fe : 0);
        if (fe > 0 && sie % fe == 0) emit(out, "shared_experts", "shared_expert_intermediate_size", text);
        else
            emit_refused(out, "shared_experts", "shared_expert_intermediate_size",
                         "shared_expert_intermediate_size = %lld is not a multiple of "
                         "moe_intermediate_size = %lld, and pipesim's shared experts are "
                         "expert_ffn_hidden wide; give [model] shared_experts (the nearest "
                         "whole number of experts)", sie, fe);
    }
    if (strcmp(fam->type, "mixtral") == 0) emit_int(out, root, "intermediate_size", "expert_ffn_hidden");
    else emit_int(out, root, "moe_intermediate_size", "expert_ffn_hidden");
    if (strcmp(fam->type, "deepseek_v3") == 0) {
        emit_int(out, root, "first_k_dense_replace", "first_dense_layers");
        emit_int(out, root, "moe_layer_freq", "moe_layer_freq");
    }
    if (strcmp(fam->type, "qwen2_moe") == 0) {
        const json_t *dense = get(root, "mlp_only_layers");
        size_t n = json_is_array(dense) ? json_array_size(dense) : 0, i;
        json_t *e;
        int prefix = 1;
        json_array_foreach(dense, i, e) prefix &= json_is_integer(e) && json_integer_value(e) == (json_int_t)i;
        char text[32];
        snprintf(text, sizeof text, "%zu", n);
        if (dense && !json_is_array(dense)) prefix = 0;
        if (prefix && n) emit(out, "first_dense_layers", "mlp_only_layers", text);
        else if (!prefix)
            emit_refused(out, "first_dense_layers", "mlp_only_layers", "mlp_only_layers is not "
                         "the list of the first layers [0, 1, ..., k-1], the only dense layers "
                         "pipesim places; give [model] first_dense_layers and moe_layer_freq");
        long long step = int_of(root, "decoder_sparse_step");
        if (step > 1)
            emit_refused(out, "moe_layer_freq", "decoder_sparse_step", "decoder_sparse_step = "
                         "%lld makes layer i sparse when (i + 1) %% %lld == 0, and pipesim's MoE "
                         "layers are those with i %% moe_layer_freq == 0; give [model] "
                         "moe_layer_freq and first_dense_layers for the nearest layout", step, step);
    }
}

/* Fills out from a checked root. */
static void map_fields(const json_t *root, const Family *fam, HfConfig *out) {
    long long mtp = int_of(root, "num_nextn_predict_layers");
    if (mtp > 0)
        emit_refused(out, "layers", "num_nextn_predict_layers", "num_nextn_predict_layers = %lld: "
                     "DeepSeek's multi-token prediction (%lld more layer(s) and an LM head in "
                     "training) is not modelled; give [model] layers = %lld to simulate the "
                     "main model without it", mtp, mtp, int_of(root, "num_hidden_layers"));
    else emit_int(out, root, "num_hidden_layers", "layers");
    emit_int(out, root, "hidden_size", "hidden");
    emit_int(out, root, "num_attention_heads", "heads");
    if (get(root, "kv_lora_rank") || get(root, "q_lora_rank")) { // DeepSeek's MLA
        const char *why = "DeepSeek's multi-head latent attention (q_lora_rank = %lld, "
                          "kv_lora_rank = %lld, heads of %lld + %lld rotary dims, values of %lld) "
                          "is not modelled; give [model] kv_heads and head_dim of a grouped-query "
                          "attention with as many projection parameters (DeepSeek-V3: kv_heads = 8, "
                          "head_dim = 96, scenarios/deepseek-v3.scn)";
        emit_refused(out, "kv_heads", "kv_lora_rank", why, int_of(root, "q_lora_rank"),
                     int_of(root, "kv_lora_rank"), int_of(root, "qk_nope_head_dim"),
                     int_of(root, "qk_rope_head_dim"), int_of(root, "v_head_dim"));
        emit_refused(out, "head_dim", "kv_lora_rank", why, int_of(root, "q_lora_rank"),
                     int_of(root, "kv_lora_rank"), int_of(root, "qk_nope_head_dim"),
                     int_of(root, "qk_rope_head_dim"), int_of(root, "v_head_dim"));
    } else {
        emit_int(out, root, "num_key_value_heads", "kv_heads"); // absent or null: heads
        emit_int(out, root, "head_dim", "head_dim");            // absent or null: hidden / heads
    }
    emit_int(out, root, "vocab_size", "vocab");
    emit_int(out, root, "intermediate_size", "ffn_hidden");
    emit_mlp(out, root, fam);
    emit(out, "norm", "model_type", "rmsnorm");
    emit(out, "position", "model_type", "rope");
    const json_t *tied = get(root, "tie_word_embeddings");
    emit(out, "tied_embeddings", tied ? "tie_word_embeddings" : "model_type",
         (tied ? json_is_true(tied) : fam->tied) ? "true" : "false");
    // pipesim's bias is all or nothing: true when either group has biases (the other group's
    // are O(h) a layer, under 0.01% of the parameters). Qwen2's q, k and v biases are not in
    // its config (no attention_bias field) and stay out: q + 2k values a layer, 0.006% of
    // Qwen2-0.5B's parameters and less for the larger ones.
    const json_t *ab = get(root, "attention_bias"), *mb = get(root, "mlp_bias");
    emit(out, "bias", ab ? "attention_bias" : mb ? "mlp_bias" : "model_type",
         json_is_true(ab) || json_is_true(mb) ? "true" : "false");
    emit_dtype(out, root);
    const json_t *drop = get(root, "attention_dropout");
    if (drop) {
        char text[32];
        snprintf(text, sizeof text, "%.17g", json_number_value(drop));
        emit(out, "dropout", "attention_dropout", text);
    }
    emit_moe(out, root, fam);
    snprintf(out->model_type, sizeof out->model_type, "%s", fam->type);
    const json_t *maxpos = get(root, "max_position_embeddings");
    out->max_position = maxpos ? (int64_t)json_integer_value(maxpos) : 0;
    out->sliding_window = window_of(root, fam);
}

/* The file's bytes (at most HF_FILE_MAX + 1 of them) in *text (caller frees), *n of them.
 * Returns 0, or 1 with err set when the file cannot be read. */
static int slurp(const char *path, const char *shown, char **text, size_t *n, char *err) {
    FILE *f = fopen(path, "rb");
    *text = NULL;
    if (!f) return snprintf(err, SCN_ERR_MAX, "cannot read '%s': %s", shown, strerror(errno)), 1;
    char *buf = malloc(HF_FILE_MAX + 1);
    *n = buf ? fread(buf, 1, HF_FILE_MAX + 1, f) : 0;
    int bad = ferror(f) ? errno : 0; // EISDIR: a folder
    fclose(f);
    if (!buf || bad) {
        free(buf);
        return snprintf(err, SCN_ERR_MAX, "cannot read '%s': %s", shown,
                        buf ? strerror(bad) : "out of memory"), 1;
    }
    *text = buf; // not NUL-terminated: jansson takes the length; past HF_FILE_MAX is refused
    return 0;
}

int hf_config_read(const char *path, const char *shown, HfConfig *out, char err[SCN_ERR_MAX]) {
    memset(out, 0, sizeof *out);
    err[0] = '\0';
    char *text;
    size_t n;
    int rc = slurp(path, shown, &text, &n, err);
    if (rc) return rc;
    rc = hf_config_parse(text, n, shown, out, err);
    free(text);
    return rc;
}

int hf_config_parse(const char *text, size_t n, const char *shown, HfConfig *out,
                    char err[SCN_ERR_MAX]) {
    memset(out, 0, sizeof *out);
    err[0] = '\0';
    if (n > HF_FILE_MAX)
        return say(err, "%s: larger than %d KiB; a config.json is a short JSON object", shown,
                   HF_FILE_MAX >> 10);
    if (memchr(text, '\0', n))
        return say(err, "%s: contains a NUL byte; a config.json is a text file", shown);
    int rc = 0;
    json_error_t je;
    json_t *root = json_loadb(text, n, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return say(err, "%s:%d:%d: %s; a config.json is one JSON object of \"field\": value "
                   "pairs", shown, je.line, je.column, je.text);
    const Family *fam = NULL;
    if (!json_is_object(root))
        rc = say(err, "%s: the file is %s; a config.json is one JSON object of \"field\": "
                 "value pairs", shown, json_kind_name(root));
    else if (!(rc = check_fields(root, shown, err)) && (fam = family_of(root, shown, err)))
        map_fields(root, fam, out);
    else if (!rc)
        rc = 2; // family_of said why
    json_decref(root);
    return rc;
}
