/* tests/test_hf.c: [model] hf_config (sim/scenario/hf_config.h): the shipped Llama 3 configs
 * give the published parameter counts, the scenario's keys and --sets win over the config's,
 * Mistral, Qwen2 and Gemma configs map as their families do, every class of bad config is
 * exit status 2 with the file and the field in the message, and the resolved text stands
 * without the JSON. Configs are written to a temporary folder; the shipped ones are read from
 * scenarios/ (make test runs from the repository's root). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "sim/model/memory.h"
#include "sim/scenario/scenario.h"

static char err[SCN_ERR_MAX];
static char dir[64]; // the temporary folder, made by setup

/* The [batch], [pipeline] and [hardware] every scenario here shares. */
#define REST "[batch]\nmicro_batches = 4\n[pipeline]\nstages = 2\nschedule = 1f1b\n[hardware]\ngpu = h100\n"

/* A small Llama: 4 layers of hidden 256, 8 heads of 32 (2 key/value heads), SwiGLU of 688. */
#define LLAMA                                                                                  \
    "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\",\n"                 \
    " \"num_hidden_layers\": 4, \"hidden_size\": 256, \"num_attention_heads\": 8,\n"          \
    " \"num_key_value_heads\": 2, \"intermediate_size\": 688, \"vocab_size\": 1000,\n"        \
    " \"max_position_embeddings\": 4096, \"rms_norm_eps\": 1e-05, \"rope_theta\": 500000.0,\n" \
    " \"hidden_act\": \"silu\", \"torch_dtype\": \"bfloat16\"}\n"

static int setup(void **state) {
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/test_hf.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* dir/name with text (n bytes; 0: strlen) in it; returns the path (static, one at a time). */
static const char *put(const char *name, const char *text, size_t n) {
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    n = n ? n : strlen(text);
    assert_int_equal(fwrite(text, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
    return path;
}

/* Writes json as dir/cfg.json and "[model]\nhf_config = cfg.json\n" + model + REST as
 * dir/t.scn, then loads t.scn with up to 2 --sets. Returns scenario_load's status. */
static int load_with(const char *json, const char *model, Scenario *s, int nsets, ...) {
    char text[4096];
    const char *sets[2];
    va_list ap;
    va_start(ap, nsets);
    for (int i = 0; i < nsets; i++) sets[i] = va_arg(ap, const char *);
    va_end(ap);
    put("cfg.json", json, 0);
    snprintf(text, sizeof text, "[model]\nhf_config = cfg.json\n%s%s", model, REST);
    char path[256];
    snprintf(path, sizeof path, "%s", put("t.scn", text, 0));
    return scenario_load(path, sets, nsets, s, err);
}

/* json fails to load (status 2) with every one of the NULL-terminated wants in the message. */
static void expect_bad(const char *json, const char *model, ...) {
    Scenario s;
    int rc = load_with(json, model, &s, 0);
    va_list ap;
    va_start(ap, model);
    for (const char *want; (want = va_arg(ap, const char *));)
        if (rc != 2 || !strstr(err, want)) fail_msg("rc %d, error '%s', wanted '%s'", rc, err, want);
    va_end(ap);
    scenario_free(&s);
}

static void assert_near(double got, double want, double rel) {
    if (!(got > want * (1 - rel) && got < want * (1 + rel)))
        fail_msg("got %.6g, want %.6g within %g%%", got, want, rel * 100);
}

/* The shipped configs, as the scenarios load them, against the published sizes: 8.03B,
 * 70.6B and 405.9B parameters (the Hugging Face model pages of Meta-Llama-3-8B,
 * Meta-Llama-3-70B and Llama-3.1-405B), within 0.5%. */
static void test_shipped_param_counts(void **state) {
    (void)state;
    static const struct {
        const char *scn;
        double params;
        int64_t layers, hidden, heads, ffn;
    } cases[] = {
        {"scenarios/llama3-8b.scn", 8.03e9, 32, 4096, 32, 14336},
        {"scenarios/llama3-70b.scn", 70.6e9, 80, 8192, 64, 28672},
        {"scenarios/llama3-405b.scn", 405.9e9, 126, 16384, 128, 53248},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Scenario s;
        if (scenario_load(cases[i].scn, NULL, 0, &s, err) != 0) fail_msg("%s", err);
        const ScnModel *m = &s.model;
        assert_int_equal(m->layers, cases[i].layers);
        assert_int_equal(m->hidden, cases[i].hidden);
        assert_int_equal(m->heads, cases[i].heads);
        assert_int_equal(m->ffn_hidden, cases[i].ffn);
        assert_int_equal(m->kv_heads, 8);
        assert_int_equal(m->head_dim, 128); // hidden / heads: the configs have no head_dim
        assert_int_equal(m->vocab, 128256);
        assert_int_equal(m->mlp, MLP_SWIGLU);
        assert_int_equal(m->norm, NORM_RMSNORM);
        assert_int_equal(m->position, POSITION_ROPE);
        assert_int_equal(m->tied_embeddings, 0);
        assert_int_equal(m->bias, 0);
        assert_int_equal(m->dtype, DTYPE_BF16);
        assert_int_equal(m->seq_len, 8192); // the scenario's, not max_position_embeddings
        assert_non_null(strstr(s.hf_config, "/scenarios/llama3-"));
        print_message("%s: %.4g parameters\n", cases[i].scn, memory_model_params(m));
        assert_near(memory_model_params(m), cases[i].params, 0.005);
        scenario_free(&s);
    }
}

/* The scenario's keys win over the config's, a --set over both; the config's values win over
 * fill_derived's defaults, which apply only where neither gives a key. */
static void test_precedence(void **state) {
    (void)state;
    Scenario s;
    assert_int_equal(load_with(LLAMA, "seq_len = 128\n", &s, 0), 0);
    assert_int_equal(s.model.layers, 4);
    assert_int_equal(s.model.kv_heads, 2);
    assert_int_equal(s.model.ffn_hidden, 688); // not 4h = 1024
    assert_int_equal(s.model.head_dim, 32);    // derived: hidden / heads
    assert_int_equal(s.model.tied_embeddings, 0); // LlamaConfig's default, not pipesim's true
    assert_int_equal(s.model.bias, 0);
    assert_true(s.model.dropout == 0);
    assert_string_equal(s.model.name, "t"); // the scenario's file name
    scenario_free(&s);

    assert_int_equal(load_with(LLAMA, "seq_len = 128\nkv_heads = 4\nffn_hidden = 512\n", &s, 0), 0);
    assert_int_equal(s.model.kv_heads, 4);
    assert_int_equal(s.model.ffn_hidden, 512);
    assert_int_equal(s.model.layers, 4);
    scenario_free(&s);

    assert_int_equal(load_with(LLAMA, "seq_len = 128\nkv_heads = 4\n", &s, 2, "model.kv_heads=8",
                               "model.tied_embeddings=true"), 0);
    assert_int_equal(s.model.kv_heads, 8);
    assert_int_equal(s.model.tied_embeddings, 1);
    scenario_free(&s);

    // A scenario hidden over the config's: head_dim follows it (derived), ffn_hidden stays.
    assert_int_equal(load_with(LLAMA, "seq_len = 128\nhidden = 512\n", &s, 0), 0);
    assert_int_equal(s.model.hidden, 512);
    assert_int_equal(s.model.head_dim, 64);
    assert_int_equal(s.model.ffn_hidden, 688);
    scenario_free(&s);

    // Without num_key_value_heads every head has its own keys and values (MHA).
    const char *mha = "{\"model_type\": \"llama\", \"num_hidden_layers\": 2, \"hidden_size\": 64,"
                      " \"num_attention_heads\": 4, \"intermediate_size\": 172, \"vocab_size\": 100}";
    assert_int_equal(load_with(mha, "seq_len = 16\n", &s, 0), 0);
    assert_int_equal(s.model.kv_heads, 4);
    scenario_free(&s);

    // --set model.hf_config names a file from the current directory, and a --set key still
    // wins over the file's config.
    put("cfg.json", LLAMA, 0);
    char set[300], scn[256];
    snprintf(set, sizeof set, "model.hf_config=%s/cfg.json", dir);
    snprintf(scn, sizeof scn, "%s", put("plain.scn", "[model]\nseq_len = 64\n" REST, 0));
    const char *sets[2] = {set, "model.layers=2"};
    assert_int_equal(scenario_load(scn, sets, 2, &s, err), 0);
    assert_int_equal(s.model.hidden, 256);
    assert_int_equal(s.model.layers, 2);
    scenario_free(&s);
}

/* Each class of bad config: status 2, and the message names the file and the field. */
static void test_bad_configs(void **state) {
    (void)state;
    expect_bad("{\"model_type\": \"llama\", \"foo\": 1}", "seq_len = 16\n", "cfg.json: unknown field 'foo'; pipesim reads", NULL);
    expect_bad("{\"a\\nb\": 1}", "seq_len = 16\n", "cfg.json: unknown field 'a?b'", NULL); // one line
    expect_bad("{\"model_type\": \"llama\", \"hidden_size\": \"4096\"}", "seq_len = 16\n",
               "cfg.json: field 'hidden_size' is a string; it must be a whole number", NULL);
    expect_bad("{\"model_type\": \"llama\", \"hidden_size\": 4096.5}", "seq_len = 16\n",
               "field 'hidden_size' is a real number", NULL);
    expect_bad("{\"model_type\": \"llama\", \"tie_word_embeddings\": \"yes\"}", "seq_len = 16\n",
               "field 'tie_word_embeddings' is a string; it must be true or false", NULL);
    expect_bad("{\"model_type\": \"llama\", \"attention_dropout\": null}", "seq_len = 16\n",
               "field 'attention_dropout' is null; it must be a number", NULL);
    expect_bad("{\"model_type\": \"llama\", \"layer_types\": [\"full_attention\", 3]}", "seq_len = 16\n",
               "field 'layer_types' has entry 2 of a whole number; each must be \"full_attention\"", NULL);
    expect_bad("{\"model_type\": \"llama\", \"layer_types\": \"full_attention\"}", "seq_len = 16\n",
               "field 'layer_types' is a string; it must be an array of strings", NULL);
    // A mixture of experts outside the MoE families is named as such, before the fields of its
    // family pipesim lacks; DeepSeek's latent attention is refused unless the scenario gives
    // kv_heads and head_dim (test_moe_configs).
    expect_bad("{\"model_type\": \"llama\", \"num_local_experts\": 8, \"num_experts_per_tok\": 2}",
               "seq_len = 16\n", "cfg.json: num_local_experts = 8 makes this a mixture of experts",
               "mixtral, qwen2_moe and deepseek_v3", NULL);
    expect_bad("{\"kv_lora_rank\": 512, \"model_type\": \"deepseek_v3\", \"n_routed_experts\": 256}",
               "seq_len = 16\n", "cfg.json: kv_lora_rank: DeepSeek's multi-head latent attention", NULL);
    expect_bad("{\"model_type\": \"qwen2_moe\", \"num_experts\": \"60\"}", "seq_len = 16\n",
               "field 'num_experts' is a string", NULL);
    expect_bad("{\"model_type\": \"phi3\"}", "seq_len = 16\n", "cfg.json: model_type 'phi3' is not one pipesim maps", NULL);
    expect_bad("{\"hidden_size\": 64}", "seq_len = 16\n", "cfg.json: no model_type", NULL);
    // Malformed JSON: line and column.
    expect_bad("{\"model_type\": \"llama\",\n \"hidden_size\": 64,\n \"vocab_size\" 3}", "seq_len = 16\n",
               "cfg.json:3:15: ':' expected", NULL);
    expect_bad("{\"model_type\": \"llama\",\n \"model_type\": \"llama\"}", "seq_len = 16\n",
               "cfg.json:2:", "duplicate object key", NULL);
    expect_bad("[1, 2]", "seq_len = 16\n", "cfg.json: the file is an array; a config.json is one JSON object", NULL);
    expect_bad("", "seq_len = 16\n", "cfg.json:", NULL);
    // Values out of the [model] key's range, and combinations, blame the config's field.
    expect_bad("{\"model_type\": \"llama\", \"num_hidden_layers\": 0}", "seq_len = 16\n",
               "cfg.json: num_hidden_layers: '0' is out of range; layers must be at least 1", NULL);
    expect_bad("{\"model_type\": \"llama\", \"num_hidden_layers\": 2, \"hidden_size\": 64, "
               "\"num_attention_heads\": 4, \"num_key_value_heads\": 3, \"intermediate_size\": 172, "
               "\"vocab_size\": 100}", "seq_len = 16\n",
               "cfg.json: num_key_value_heads: kv_heads = 3 does not divide heads = 4", NULL);
    // What the scenario must give itself.
    expect_bad(LLAMA, "", "t.scn:1: missing key 'seq_len' in [model]", "not from",
               "max_position_embeddings = 4096 is the model's limit", NULL);
    expect_bad("{\"model_type\": \"llama\", \"num_hidden_layers\": 2, \"hidden_size\": 64, "
               "\"num_attention_heads\": 4}", "seq_len = 16\n",
               "missing key 'vocab' in [model], and", "cfg.json has no vocab_size either", NULL);
    // A dtype pipesim has not: refused unless the scenario gives its own.
    const char *fp8 = "{\"model_type\": \"llama\", \"num_hidden_layers\": 2, \"hidden_size\": 64, "
                      "\"num_attention_heads\": 4, \"intermediate_size\": 172, \"vocab_size\": 100, "
                      "\"torch_dtype\": \"float8_e4m3fn\"}";
    expect_bad(fp8, "seq_len = 16\n", "cfg.json: torch_dtype: torch_dtype 'float8_e4m3fn' is not a training dtype", NULL);
    Scenario s;
    assert_int_equal(load_with(fp8, "seq_len = 16\ndtype = fp16\n", &s, 0), 0);
    assert_int_equal(s.model.dtype, DTYPE_FP16);
    scenario_free(&s);
    // A dense config may say it has one expert.
    const char *one = "{\"model_type\": \"llama\", \"num_hidden_layers\": 2, \"hidden_size\": 64, "
                      "\"num_attention_heads\": 4, \"intermediate_size\": 172, \"vocab_size\": 100, "
                      "\"num_local_experts\": 1}";
    assert_int_equal(load_with(one, "seq_len = 16\n", &s, 0), 0);
    scenario_free(&s);
}

/* The MoE fields of the three families: Mixtral's experts intermediate_size wide,
 * Qwen2-MoE's shared expert as shared_experts of moe_intermediate_size and its
 * mlp_only_layers prefix as first_dense_layers, DeepSeek's first_k_dense_replace and
 * moe_layer_freq; what has no pipesim equivalent is refused unless the scenario says it. */
#define SMALL " \"num_hidden_layers\": 4, \"hidden_size\": 256, \"num_attention_heads\": 8, " \
              "\"intermediate_size\": 688, \"vocab_size\": 1000, \"num_experts_per_tok\": 2"
static void test_moe_configs(void **state) {
    (void)state;
    Scenario s;
    assert_int_equal(load_with("{\"model_type\": \"mixtral\", \"num_local_experts\": 8," SMALL "}",
                               "seq_len = 16\n", &s, 0), 0);
    assert_int_equal(s.model.experts, 8);
    assert_int_equal(s.model.experts_per_token, 2);
    assert_int_equal(s.model.expert_ffn_hidden, 688);
    assert_int_equal(s.model.shared_experts, 0);
    scenario_free(&s);
    const char *qwen = "{\"model_type\": \"qwen2_moe\", \"num_experts\": 6, \"moe_intermediate_size\": 64,"
                       " \"shared_expert_intermediate_size\": 128, \"mlp_only_layers\": [0, 1]," SMALL "}";
    assert_int_equal(load_with(qwen, "seq_len = 16\n", &s, 0), 0);
    assert_int_equal(s.model.experts, 6);
    assert_int_equal(s.model.expert_ffn_hidden, 64);
    assert_int_equal(s.model.shared_experts, 2);
    assert_int_equal(s.model.first_dense_layers, 2);
    assert_int_equal(scenario_moe_layers(&s.model, 0, 4), 2);
    scenario_free(&s);
    expect_bad("{\"model_type\": \"qwen2_moe\", \"num_experts\": 6, \"moe_intermediate_size\": 64,"
               " \"shared_expert_intermediate_size\": 100," SMALL "}", "seq_len = 16\n",
               "shared_expert_intermediate_size = 100 is not a multiple of moe_intermediate_size = 64", NULL);
    expect_bad("{\"model_type\": \"qwen2_moe\", \"num_experts\": 6, \"mlp_only_layers\": [1]," SMALL "}",
               "seq_len = 16\n", "mlp_only_layers is not the list of the first layers", NULL);
    expect_bad("{\"model_type\": \"qwen2_moe\", \"num_experts\": 6, \"decoder_sparse_step\": 2," SMALL "}",
               "seq_len = 16\n", "decoder_sparse_step = 2 makes layer i sparse when (i + 1) % 2 == 0", NULL);
    const char *ds = "{\"model_type\": \"deepseek_v3\", \"n_routed_experts\": 8, \"n_shared_experts\": 1,"
                     " \"moe_intermediate_size\": 64, \"first_k_dense_replace\": 1, \"moe_layer_freq\": 1,"
                     " \"kv_lora_rank\": 16, \"q_lora_rank\": 32, \"num_nextn_predict_layers\": 1," SMALL "}";
    expect_bad(ds, "seq_len = 16\nkv_heads = 8\nhead_dim = 32\n", "num_nextn_predict_layers = 1",
               "give [model] layers = 4", NULL);
    assert_int_equal(load_with(ds, "seq_len = 16\nkv_heads = 8\nhead_dim = 32\nlayers = 4\n", &s, 0), 0);
    assert_int_equal(s.model.experts, 8);
    assert_int_equal(s.model.shared_experts, 1);
    assert_int_equal(s.model.first_dense_layers, 1);
    assert_int_equal(s.model.moe_layer_freq, 1);
    assert_int_equal(s.model.expert_ffn_hidden, 64);
    assert_int_equal(s.model.ffn_hidden, 688); // the dense layers' MLP
    scenario_free(&s);
}

/* A missing or unreadable file is bad input (2), as a missing schedule_file is; a NUL byte
 * too. The message names the scenario's line and the file. */
static void test_bad_files(void **state) {
    (void)state;
    Scenario s;
    char scn[256];
    snprintf(scn, sizeof scn, "%s", put("m.scn", "[model]\nseq_len = 16\nhf_config = nope.json\n" REST, 0));
    assert_int_equal(scenario_load(scn, NULL, 0, &s, err), 2);
    if (!strstr(err, "m.scn:3: cannot read '") || !strstr(err, "/nope.json': No such file"))
        fail_msg("%s", err);
    scenario_free(&s);
    snprintf(scn, sizeof scn, "%s", put("d.scn", "[model]\nseq_len = 16\nhf_config = .\n" REST, 0));
    assert_int_equal(scenario_load(scn, NULL, 0, &s, err), 2); // a folder
    assert_non_null(strstr(err, "d.scn:3: cannot read '"));
    scenario_free(&s);
    put("nul.json", "{\"model_type\": \"llama\"}\0", 24);
    snprintf(scn, sizeof scn, "%s", put("n.scn", "[model]\nseq_len = 16\nhf_config = nul.json\n" REST, 0));
    assert_int_equal(scenario_load(scn, NULL, 0, &s, err), 2);
    assert_non_null(strstr(err, "nul.json: contains a NUL byte"));
    scenario_free(&s);
    const char *sets[1] = {"model.hf_config=/nonexistent/config.json"};
    assert_int_equal(scenario_load(scn, sets, 1, &s, err), 2);
    assert_non_null(strstr(err, "--set model.hf_config=/nonexistent/config.json: cannot read '/nonexistent/config.json'"));
    scenario_free(&s);
}

/* Mistral, Qwen2 and Gemma configs (their published shapes) map as their families do. */
static void test_families(void **state) {
    (void)state;
    Scenario s;
    // Mistral 7B v0.1: 7.24B parameters; attention over a 4096-token window.
    const char *mistral =
        "{\"architectures\": [\"MistralForCausalLM\"], \"model_type\": \"mistral\", \"hidden_act\": \"silu\","
        " \"hidden_size\": 4096, \"intermediate_size\": 14336, \"max_position_embeddings\": 32768,"
        " \"num_attention_heads\": 32, \"num_hidden_layers\": 32, \"num_key_value_heads\": 8,"
        " \"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0, \"sliding_window\": 4096,"
        " \"tie_word_embeddings\": false, \"torch_dtype\": \"bfloat16\", \"vocab_size\": 32000}";
    assert_int_equal(load_with(mistral, "seq_len = 4096\n", &s, 0), 0);
    assert_int_equal(s.model.mlp, MLP_SWIGLU);
    assert_int_equal(s.model.kv_heads, 8);
    assert_near(memory_model_params(&s.model), 7.24e9, 0.005);
    scenario_free(&s);
    expect_bad(mistral, "seq_len = 8192\n", "t.scn:3: seq_len = 8192 is longer than the sliding_window = 4096", NULL);

    // Qwen2-0.5B: tied embeddings, 494M parameters (its q, k, v biases, 27,648 values, left out).
    const char *qwen =
        "{\"architectures\": [\"Qwen2ForCausalLM\"], \"attention_dropout\": 0.0, \"bos_token_id\": 151643,"
        " \"eos_token_id\": 151643, \"hidden_act\": \"silu\", \"hidden_size\": 896, \"initializer_range\": 0.02,"
        " \"intermediate_size\": 4864, \"max_position_embeddings\": 131072, \"max_window_layers\": 24,"
        " \"model_type\": \"qwen2\", \"num_attention_heads\": 14, \"num_hidden_layers\": 24,"
        " \"num_key_value_heads\": 2, \"rms_norm_eps\": 1e-06, \"rope_theta\": 1000000.0,"
        " \"sliding_window\": 131072, \"tie_word_embeddings\": true, \"torch_dtype\": \"bfloat16\","
        " \"transformers_version\": \"4.40.1\", \"use_cache\": true, \"use_sliding_window\": false,"
        " \"vocab_size\": 151936}";
    assert_int_equal(load_with(qwen, "seq_len = 4096\n", &s, 0), 0);
    assert_int_equal(s.model.tied_embeddings, 1);
    assert_int_equal(s.model.head_dim, 64);
    assert_int_equal(s.model.kv_heads, 2);
    assert_int_equal(s.model.bias, 0);
    assert_near(memory_model_params(&s.model), 494.03e6, 0.001);
    scenario_free(&s);
    // The window is off (use_sliding_window false), so long samples are fine.
    assert_int_equal(load_with(qwen, "seq_len = 262144\n", &s, 0), 0);
    scenario_free(&s);

    // Gemma 7B: head_dim 256 with hidden 3072 and 16 heads (attention 4096 wide), tied by
    // default, 8.54B parameters; its GELU-gated MLP is refused unless the scenario says swiglu.
    const char *gemma =
        "{\"architectures\": [\"GemmaForCausalLM\"], \"attention_bias\": false, \"attention_dropout\": 0.0,"
        " \"bos_token_id\": 2, \"eos_token_id\": 1, \"head_dim\": 256, \"hidden_act\": \"gelu\","
        " \"hidden_size\": 3072, \"initializer_range\": 0.02, \"intermediate_size\": 24576,"
        " \"max_position_embeddings\": 8192, \"model_type\": \"gemma\", \"num_attention_heads\": 16,"
        " \"num_hidden_layers\": 28, \"num_key_value_heads\": 16, \"pad_token_id\": 0,"
        " \"rms_norm_eps\": 1e-06, \"rope_scaling\": null, \"rope_theta\": 10000.0,"
        " \"torch_dtype\": \"bfloat16\", \"use_cache\": true, \"vocab_size\": 256000}";
    expect_bad(gemma, "seq_len = 8192\n", "cfg.json: hidden_act: hidden_act 'gelu' makes gemma's gated MLP a GeGLU",
               "give [model] mlp = swiglu", NULL);
    assert_int_equal(load_with(gemma, "seq_len = 8192\nmlp = swiglu\n", &s, 0), 0);
    assert_int_equal(s.model.head_dim, 256);
    assert_int_equal(scenario_attn_width(&s.model), 4096);
    assert_int_equal(s.model.tied_embeddings, 1);
    assert_near(memory_model_params(&s.model), 8.54e9, 0.005);
    scenario_free(&s);

    // Gemma 2 9B: hidden_activation wins over hidden_act; every other layer has a 4096 window.
    const char *gemma2 =
        "{\"model_type\": \"gemma2\", \"attn_logit_softcapping\": 50.0, \"final_logit_softcapping\": 30.0,"
        " \"cache_implementation\": \"hybrid\", \"head_dim\": 256, \"hidden_act\": \"silu\","
        " \"hidden_activation\": \"gelu_pytorch_tanh\", \"hidden_size\": 3584, \"intermediate_size\": 14336,"
        " \"num_attention_heads\": 16, \"num_hidden_layers\": 42, \"num_key_value_heads\": 8,"
        " \"query_pre_attn_scalar\": 256, \"sliding_window\": 4096, \"vocab_size\": 256000}";
    expect_bad(gemma2, "seq_len = 4096\n", "cfg.json: hidden_activation: hidden_activation 'gelu_pytorch_tanh'", NULL);
    expect_bad(gemma2, "seq_len = 8192\nmlp = swiglu\n", "is longer than the sliding_window = 4096", NULL);
    assert_int_equal(load_with(gemma2, "seq_len = 4096\nmlp = swiglu\n", &s, 0), 0);
    assert_int_equal(s.model.kv_heads, 8);
    assert_int_equal(s.model.tied_embeddings, 1);
    scenario_free(&s);
}

/* The resolved text has every value the config gave and names the config in a comment only:
 * it parses back, without the JSON, to the same model, and formats to the same text but for
 * that comment. */
static void test_round_trip(void **state) {
    (void)state;
    Scenario a, b;
    assert_int_equal(load_with(LLAMA, "seq_len = 128\nkv_heads = 4\n", &a, 0), 0);
    char *text = scenario_format(&a);
    assert_non_null(text);
    char comment[SCN_PATH_MAX + 128];
    snprintf(comment, sizeof comment, "\n; hf_config = %s (read: its values are the [model] keys above)\n",
             a.hf_config);
    if (!strstr(text, comment) || !strstr(text, "\nffn_hidden = 688\n") ||
        !strstr(text, "\nkv_heads = 4\n") || !strstr(text, "\ntied_embeddings = false\n"))
        fail_msg("%s", text);
    char cfg[256];
    snprintf(cfg, sizeof cfg, "%s/cfg.json", dir);
    assert_int_equal(remove(cfg), 0); // the resolved text must not need it
    if (scenario_parse(text, "again.scn", NULL, 0, &b, err) != 0) fail_msg("%s", err);
    assert_string_equal(b.hf_config, "");
    assert_memory_equal(&a.model, &b.model, sizeof a.model);
    assert_memory_equal(&a.batch, &b.batch, sizeof a.batch);
    char *again = scenario_format(&b), *want = malloc(strlen(text) + 64);
    const char *at = strstr(text, comment);
    assert_non_null(again), assert_non_null(want);
    sprintf(want, "%.*s\n; hf_config = (not given)\n%s", (int)(at - text), text, at + strlen(comment));
    assert_string_equal(again, want);
    free(want), free(again), free(text);
    scenario_free(&a), scenario_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_param_counts), cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_moe_configs),
        cmocka_unit_test(test_bad_configs),          cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_families),             cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
