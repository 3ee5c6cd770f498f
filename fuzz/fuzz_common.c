/* The driver both fuzz targets share (fuzz_common.h). */
#include <stdlib.h>
#include <string.h>

#include "../src/format/chunk.h"
#include "fuzz_common.h"

int
fuzz_same_str(struct mh_str a, struct mh_str b)
{
    return a.n == b.n && !memcmp(a.s, b.s, a.n);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_parse_one(data, size);
    if (size > MH_CAP_FILE_HEADER_LEN) {
        uint8_t *copy = malloc(size);
        REQUIRE(copy);
        memcpy(copy, data, size);
        mh_chunks_reseal(copy, size);
        if (memcmp(copy, data, size))
            fuzz_parse_one(copy, size);
        free(copy);
    }
    return 0;
}
