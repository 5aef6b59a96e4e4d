/* sim/scenario/hf_config.h: a Hugging Face config.json of the Llama, Mistral, Qwen2 or Gemma
 * families, or of the mixtures of experts Mixtral, Qwen2-MoE and DeepSeek-V3, read into the [model] keys it implies. This file only reads and checks the JSON;
 * which value wins (the scenario's keys over the config's over the defaults) is the scenario
 * parser's business (scenario.c). No printing: errors come back as one line in err. */
#ifndef PIPESIM_HF_CONFIG_H
#define PIPESIM_HF_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "sim/scenario/scenario.h"

#define HF_MAX_VALUES 24
#define HF_FILE_MAX (1024 * 1024) // bytes; a config.json is about 1 KiB

/* One [model] key as the config gives it. */
typedef struct {
    const char *key;   // [model] key: "layers", "kv_heads", "mlp", ... (static string)
    const char *field; // the config.json field it comes from: "num_hidden_layers" (static)
    char value[64];    // as a scenario file would write it: "32", "swiglu", "false"
    char why_not[512]; // non-empty: the config's value has no pipesim equivalent; applying it
                       //   is bad input with this message (what is wrong; what would be
                       //   right), which a scenario that gives the key itself never sees
} HfValue;

typedef struct {
    HfValue v[HF_MAX_VALUES]; // in [model] key order
    int n;
    char model_type[32];      // "llama", "mistral", "qwen2", "gemma" or "gemma2"
    int64_t max_position;     // max_position_embeddings (the model's limit, not the training
                              //   sequence length), 0 when absent
    int64_t sliding_window;   // tokens some layers attend to (Mistral v0.1, Gemma 2), 0: every
                              //   layer attends to the whole sequence
} HfConfig;

/* hf_config_read reads the JSON at path (named shown in messages) into out. Returns 0; 1 when
 * the file cannot be read (err: "cannot read 'SHOWN': reason", for the caller to place); 2 for
 * bad input, with err one line "SHOWN: what is wrong; what would be right" ("SHOWN:LINE:COL:
 * ..." for malformed JSON): an unknown field, a field of the wrong JSON type, a mixture of
 * experts outside mixtral, qwen2_moe and deepseek_v3, a model_type other than the eight. */
int hf_config_read(const char *path, const char *shown, HfConfig *out, char err[SCN_ERR_MAX]);

/* hf_config_parse is hf_config_read on n bytes already in memory (any bytes: a NUL or more
 * than HF_FILE_MAX of them is bad input). Returns 0 or 2. */
int hf_config_parse(const char *text, size_t n, const char *shown, HfConfig *out,
                    char err[SCN_ERR_MAX]);

/* The config.json field a [model] key comes from ("layers" -> "num_hidden_layers"), or NULL
 * for a key no config gives (seq_len: the training sequence length is the scenario's). */
const char *hf_config_field_of(const char *key);

#endif
