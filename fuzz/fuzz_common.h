/* What the libFuzzer targets for the capture and heap dump readers share
 * (`make fuzz`): the check that traps, and the driver that parses each
 * input twice, as it is and with its chunks' CRCs made right (a mutated
 * byte nearly always breaks the CRC and would keep the fuzzer out of the
 * record parsers). */
#ifndef MH_FUZZ_COMMON_H
#define MH_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "../src/format/capture.h"

#define REQUIRE(cond)                                                         \
    do {                                                                      \
        if (!(cond))                                                          \
            __builtin_trap();                                                 \
    } while (0)

/* What the targets let an input decompress on top of the readers' ratio
 * (MH_CAP_INFLATE_RATIO times its size): far below the CLI's allowance,
 * so no input spends the fuzzer's time inflating zeros. */
#define FUZZ_INFLATE_FIXED ((uint64_t)1 << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Each target's own: parses one input and checks what it got. */
void fuzz_parse_one(const uint8_t *data, size_t size);

/* Two strings of the same bytes. */
int fuzz_same_str(struct mh_str a, struct mh_str b);

#endif
