/* fuzz_member_of.c -- libFuzzer target: the member_of expression parser (API input) and its evaluation
 * against a few node attribute sets. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "placement.h"

static json_t *attrs[3];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!attrs[0]) {
        attrs[0] = json_pack("{s:s,s:s}", "zone", "a", "disk", "ssd");
        attrs[1] = json_pack("{s:s}", "ecs.instance-type", "t3.small");
        attrs[2] = json_object();
    }
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = 0; /* the API hands over NUL-terminated JSON strings */
    char *err = NULL;
    struct pl_expr *e = pl_expr_parse(text, &err);
    if (e) {
        for (int i = 0; i < 3; i++)
            pl_expr_eval(e, attrs[i]);
        pl_expr_free(e);
    } else if (!err || !strstr(err, "at position")) {
        abort(); /* a refusal always says where */
    }
    free(err);
    free(text);
    return 0;
}
