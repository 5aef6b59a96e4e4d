/* tests/fuzz_scenario.c: libFuzzer target for the scenario parser (make fuzz). Any input must
 * be parsed or rejected without a crash, a leak or undefined behaviour; one that parses must
 * format to text that parses again to the same text (the store keeps resolved scenarios). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/scenario/scenario.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1), err[SCN_ERR_MAX];
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    Scenario s, again;
    if (scenario_parse(text, "fuzz.scn", NULL, 0, &s, err) == 0) {
        char *out = scenario_format(&s), *out2 = NULL;
        if (out && scenario_parse(out, "again.scn", NULL, 0, &again, err) != 0) {
            fprintf(stderr, "formatted scenario does not parse: %s\n%s\n", err, out);
            abort();
        }
        if (out && !(out2 = scenario_format(&again))) abort();
        if (out && strcmp(out, out2) != 0) {
            fprintf(stderr, "format is not stable:\n%s\n---\n%s\n", out, out2);
            abort();
        }
        if (out) scenario_free(&again);
        free(out), free(out2);
    }
    scenario_free(&s);
    free(text);
    return 0;
}
