/* CRC-32 for chunk checksums: zlib's implementation, which is fast and
 * well kept; only the length type needs bridging. */
#include <zlib.h>

#include "../util/msg.h"
#include "capture.h"

uint32_t
mh_crc32(uint32_t crc, const uint8_t *p, size_t n)
{
    /* zlib answers a NULL buffer with the initial value, not `crc`. */
    if (n == 0)
        return crc;
    return (uint32_t)crc32_z(crc, p, n);
}
