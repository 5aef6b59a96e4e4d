/* tests/fuzz_hf.c: libFuzzer target for Hugging Face config.json files (make fuzz): any bytes
 * must be read or refused cleanly, a refusal with one line naming the file, a read with every
 * value either written out or refused with a reason. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sim/scenario/hf_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    HfConfig hf;
    char err[SCN_ERR_MAX];
    int rc = hf_config_parse((const char *)data, size, "f.json", &hf, err);
    if (rc != 0 && rc != 2) abort();
    if (rc == 2 && (strncmp(err, "f.json", 6) != 0 || strchr(err, '\n'))) abort();
    if (rc == 0 && (err[0] || hf.n < 1 || hf.n > HF_MAX_VALUES)) abort();
    for (int i = 0; rc == 0 && i < hf.n; i++)
        if (!hf.v[i].key || !hf.v[i].field || !hf.v[i].value[0] == !hf.v[i].why_not[0]) abort();
    return 0;
}
