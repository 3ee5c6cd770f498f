/* The driver both fuzz targets share (fuzz_common.h). */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

int
fuzz_same_str(struct mh_str a, struct mh_str b)
{
    return a.n == b.n && !memcmp(a.s, b.s, a.n);
}

/* Sets every complete chunk's CRC to match its payload. */
static void
fix_crcs(uint8_t *d, size_t size)
{
    size_t off = MH_CAP_FILE_HEADER_LEN;
    while (off + MH_CAP_CHUNK_HEADER_LEN <= size) {
        uint32_t n = (uint32_t)d[off + 1] | (uint32_t)d[off + 2] << 8 |
                     (uint32_t)d[off + 3] << 16 | (uint32_t)d[off + 4] << 24;
        if (n > size - off - MH_CAP_CHUNK_HEADER_LEN)
            break;
        uint32_t crc = mh_crc32(0, d + off + MH_CAP_CHUNK_HEADER_LEN, n);
        for (int i = 0; i < 4; i++)
            d[off + 5 + i] = (uint8_t)(crc >> (8 * i));
        off += MH_CAP_CHUNK_HEADER_LEN + n;
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_parse_one(data, size);
    if (size > MH_CAP_FILE_HEADER_LEN) {
        uint8_t *copy = malloc(size);
        REQUIRE(copy);
        memcpy(copy, data, size);
        fix_crcs(copy, size);
        if (memcmp(copy, data, size))
            fuzz_parse_one(copy, size);
        free(copy);
    }
    return 0;
}
